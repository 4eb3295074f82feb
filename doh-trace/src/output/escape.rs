//! Control characters made visible before text leaves the tracer for a terminal: the text
//! output, the exit summary and every stderr line that quotes what a process or the network
//! chose (process names, executable paths, command lines, HTTP authorities, TXT and CAA data
//! from a remote DNS server). A raw ESC, CSI or backspace there would let its author move the
//! cursor, rewrite earlier lines or retitle the terminal.
//!
//! C0 controls (U+0000–U+001F), DEL (U+007F) and C1 controls (U+0080–U+009F) are written as
//! `\xNN` (C0, DEL) and `\u{NN}` (C1); all other text, backslashes included, is left as it is.
//! JSON lines need none of this: serde_json writes C0 as `\u00NN`, and DEL and C1 are left to
//! the JSON reader, which decodes them to the same text.

use std::{borrow::Cow, fmt::Write as _};

/// Whether `c` is a C0 or C1 control character or DEL.
fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// `s` with its control characters escaped; borrowed when it has none (nearly always).
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\u{0}'..='\u{1f}' | '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            '\u{80}'..='\u{9f}' => {
                let _ = write!(out, "\\u{{{:02x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c0_c1_and_del_are_escaped_and_nothing_else() {
        assert!(matches!(escape_controls("curl"), Cow::Borrowed("curl")));
        assert_eq!(escape_controls("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(escape_controls("\0\t\n\r\x7f"), "\\x00\\x09\\x0a\\x0d\\x7f");
        // U+009B is the one-character CSI of an 8-bit terminal.
        assert_eq!(escape_controls("x\u{9b}31m\u{85}"), "x\\u{9b}31m\\u{85}");
        // Printable Unicode (U+00A0 and up), backslashes and quotes stay.
        assert_eq!(escape_controls("é\u{a0}\\x1b\"日本"), "é\u{a0}\\x1b\"日本");
    }
}
