//! A module exposing utilities for encoding and decoding Huffman-coded octet
//! strings, under the Huffman code defined by HPACK.
//! (HPACK-draft-10, Appendix B)

use std::sync::OnceLock;

#[derive(thiserror::Error, PartialEq, Copy, Clone, Debug)]
#[non_exhaustive]
pub enum HuffmanDecoderError {
    /// Any padding strictly larger than 7 bits MUST be interpreted as an error
    #[error("Padding too large")]
    PaddingTooLarge,
    /// Any padding that does not correspond to the most significant bits of
    /// EOS MUST be interpreted as an error.
    #[error("Invalid padding")]
    InvalidPadding,
    /// If EOS is ever found in the string, it causes an error.
    #[error("EOS in string")]
    EOSInString,
}

/// The type that represents the result of the `decode` method of the
/// `HuffmanDecoder`.
pub type HuffmanDecoderResult = Result<Vec<u8>, HuffmanDecoderError>;

/// The longest code in the HPACK Huffman code (EOS and a few control octets).
const MAX_CODE_LEN: usize = 30;

/// The HPACK Huffman code is canonical (RFC 7541 Appendix B): within each code
/// length, codes are consecutive and ordered by symbol, and all codes of one
/// length, left-aligned, sort below all longer ones. The length of the next
/// code in a left-aligned window of input bits is therefore the first length
/// whose limit the window is below, and its symbol is found by subtraction.
///
/// Patched for doh-trace: upstream rebuilt a two-level `HashMap` of all 257
/// codes for every Huffman-coded string and hashed once per input bit, which
/// made Huffman decoding ~80 % of a DoH decoder's time. This table is built
/// once per process; codes of up to 8 bits (the letters, digits and common
/// punctuation) are read with one lookup of the window's top octet.
struct Canonical {
    /// The first (smallest) code of each length.
    first_code: [u32; MAX_CODE_LEN + 1],
    /// One past the last code of each length, left-aligned in 32 bits: a
    /// left-aligned window below `limit[len]` (and not below `limit[len - 1]`)
    /// starts with a code of length `len`.
    limit: [u64; MAX_CODE_LEN + 1],
    /// Where each length's symbols start in `symbols`.
    offset: [usize; MAX_CODE_LEN + 1],
    /// Symbols ordered by (code length, code).
    symbols: Vec<u16>,
    /// For each value of a window's top octet that starts with a code of at
    /// most 8 bits: `len << 9 | symbol`; 0 for the others.
    short: [u16; 256],
}

/// Codes at most this long are found through `Canonical::short`.
const SHORT_LEN: usize = 8;

impl Canonical {
    fn from_table(table: &[(u32, u8)]) -> Canonical {
        assert_eq!(table.len(), 257, "the HPACK Huffman code has 257 symbols");
        let mut count = [0u32; MAX_CODE_LEN + 1];
        for &(_, len) in table {
            count[len as usize] += 1;
        }
        let mut offset = [0usize; MAX_CODE_LEN + 1];
        let mut first_code = [0u32; MAX_CODE_LEN + 1];
        let mut limit = [0u64; MAX_CODE_LEN + 1];
        let mut code = 0u32;
        let mut at = 0usize;
        for len in 1..=MAX_CODE_LEN {
            code = (code + count[len - 1]) << 1;
            first_code[len] = code;
            limit[len] = u64::from(code + count[len]) << (32 - len);
            offset[len] = at;
            at += count[len] as usize;
        }
        assert_eq!(
            limit[MAX_CODE_LEN],
            1 << 32,
            "the HPACK Huffman code is complete"
        );
        let mut symbols = vec![0u16; table.len()];
        let mut short = [0u16; 256];
        for (symbol, &(code, len)) in table.iter().enumerate() {
            let len = len as usize;
            let index = code.wrapping_sub(first_code[len]);
            assert!(index < count[len], "the HPACK Huffman code is canonical");
            symbols[offset[len] + index as usize] = symbol as u16;
            if len <= SHORT_LEN {
                let first = (code as usize) << (SHORT_LEN - len);
                short[first..first + (1 << (SHORT_LEN - len))]
                    .fill((len as u16) << 9 | symbol as u16);
            }
        }
        Canonical {
            first_code,
            limit,
            offset,
            symbols,
            short,
        }
    }

    fn get() -> &'static Canonical {
        static CANONICAL: OnceLock<Canonical> = OnceLock::new();
        CANONICAL.get_or_init(|| Canonical::from_table(HUFFMAN_CODE_TABLE))
    }

    /// The symbol whose code starts `window` (32 input bits, left-aligned),
    /// and that code's length.
    #[inline]
    fn next(&self, window: u32) -> (u16, usize) {
        let short = self.short[(window >> 24) as usize];
        if short != 0 {
            return (short & 0x1ff, usize::from(short >> 9));
        }
        let mut len = SHORT_LEN + 1;
        // The code is complete, so `limit[MAX_CODE_LEN]` (2^32) ends the scan.
        while u64::from(window) >= self.limit[len] {
            len += 1;
        }
        let index = (window >> (32 - len)) - self.first_code[len];
        (self.symbols[self.offset[len] + index as usize], len)
    }
}

/// A Huffman code decoder for the HPACK code (RFC 7541 Appendix B).
pub struct HuffmanDecoder {
    code: &'static Canonical,
}

impl Default for HuffmanDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl HuffmanDecoder {
    /// Constructs a new HuffmanDecoder with the default Huffman code table, as
    /// defined in the HPACK-draft-10, Appendix B.
    pub fn new() -> HuffmanDecoder {
        HuffmanDecoder {
            code: Canonical::get(),
        }
    }

    /// Decodes the buffer `buf` into a newly allocated `Vec`.
    ///
    /// It assumes that the entire buffer should be considered as the Huffman
    /// encoding of an octet string and handles the padding rules
    /// accordingly.
    pub fn decode(&mut self, buf: &[u8]) -> HuffmanDecoderResult {
        let mut result = Vec::new();
        self.decode_into(buf, &mut result)?;
        Ok(result)
    }

    /// Decodes the buffer `buf`, appending the octets to `out` (patched for
    /// doh-trace: lets a caller reuse one buffer for strings it does not
    /// keep). On error, `out` holds whatever was decoded before it.
    pub fn decode_into(
        &mut self,
        buf: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), HuffmanDecoderError> {
        // The shortest code has 5 bits.
        out.reserve(buf.len() * 8 / 5);
        let mut input = buf.iter();
        // Input bits not yet decoded, left-aligned; `held` of them are valid.
        let mut bits: u64 = 0;
        let mut held: usize = 0;
        loop {
            while held <= 56 {
                match input.next() {
                    Some(&octet) => {
                        bits |= u64::from(octet) << (56 - held);
                        held += 8;
                    }
                    None => break,
                }
            }
            if held == 0 {
                return Ok(());
            }
            // Past the end of the input, read ones (the padding EOS prefix).
            let padding = u64::MAX.checked_shr(held as u32).unwrap_or(0);
            let window = ((bits | padding) >> 32) as u32;
            let (symbol, len) = self.code.next(window);
            if len > held {
                // The remaining bits are not a whole code: they are padding,
                // which must be at most 7 bits of the EOS prefix (all ones).
                if held > 7 {
                    return Err(HuffmanDecoderError::PaddingTooLarge);
                }
                if bits >> (64 - held) != (1u64 << held) - 1 {
                    return Err(HuffmanDecoderError::InvalidPadding);
                }
                return Ok(());
            }
            if symbol == 256 {
                return Err(HuffmanDecoderError::EOSInString);
            }
            out.push(symbol as u8);
            bits <<= len;
            held -= len;
        }
    }
}

static HUFFMAN_CODE_TABLE: &[(u32, u8)] = &[
    (0x1ff8, 13),
    (0x7fffd8, 23),
    (0xfffffe2, 28),
    (0xfffffe3, 28),
    (0xfffffe4, 28),
    (0xfffffe5, 28),
    (0xfffffe6, 28),
    (0xfffffe7, 28),
    (0xfffffe8, 28),
    (0xffffea, 24),
    (0x3ffffffc, 30),
    (0xfffffe9, 28),
    (0xfffffea, 28),
    (0x3ffffffd, 30),
    (0xfffffeb, 28),
    (0xfffffec, 28),
    (0xfffffed, 28),
    (0xfffffee, 28),
    (0xfffffef, 28),
    (0xffffff0, 28),
    (0xffffff1, 28),
    (0xffffff2, 28),
    (0x3ffffffe, 30),
    (0xffffff3, 28),
    (0xffffff4, 28),
    (0xffffff5, 28),
    (0xffffff6, 28),
    (0xffffff7, 28),
    (0xffffff8, 28),
    (0xffffff9, 28),
    (0xffffffa, 28),
    (0xffffffb, 28),
    (0x14, 6),
    (0x3f8, 10),
    (0x3f9, 10),
    (0xffa, 12),
    (0x1ff9, 13),
    (0x15, 6),
    (0xf8, 8),
    (0x7fa, 11),
    (0x3fa, 10),
    (0x3fb, 10),
    (0xf9, 8),
    (0x7fb, 11),
    (0xfa, 8),
    (0x16, 6),
    (0x17, 6),
    (0x18, 6),
    (0x0, 5),
    (0x1, 5),
    (0x2, 5),
    (0x19, 6),
    (0x1a, 6),
    (0x1b, 6),
    (0x1c, 6),
    (0x1d, 6),
    (0x1e, 6),
    (0x1f, 6),
    (0x5c, 7),
    (0xfb, 8),
    (0x7ffc, 15),
    (0x20, 6),
    (0xffb, 12),
    (0x3fc, 10),
    (0x1ffa, 13),
    (0x21, 6),
    (0x5d, 7),
    (0x5e, 7),
    (0x5f, 7),
    (0x60, 7),
    (0x61, 7),
    (0x62, 7),
    (0x63, 7),
    (0x64, 7),
    (0x65, 7),
    (0x66, 7),
    (0x67, 7),
    (0x68, 7),
    (0x69, 7),
    (0x6a, 7),
    (0x6b, 7),
    (0x6c, 7),
    (0x6d, 7),
    (0x6e, 7),
    (0x6f, 7),
    (0x70, 7),
    (0x71, 7),
    (0x72, 7),
    (0xfc, 8),
    (0x73, 7),
    (0xfd, 8),
    (0x1ffb, 13),
    (0x7fff0, 19),
    (0x1ffc, 13),
    (0x3ffc, 14),
    (0x22, 6),
    (0x7ffd, 15),
    (0x3, 5),
    (0x23, 6),
    (0x4, 5),
    (0x24, 6),
    (0x5, 5),
    (0x25, 6),
    (0x26, 6),
    (0x27, 6),
    (0x6, 5),
    (0x74, 7),
    (0x75, 7),
    (0x28, 6),
    (0x29, 6),
    (0x2a, 6),
    (0x7, 5),
    (0x2b, 6),
    (0x76, 7),
    (0x2c, 6),
    (0x8, 5),
    (0x9, 5),
    (0x2d, 6),
    (0x77, 7),
    (0x78, 7),
    (0x79, 7),
    (0x7a, 7),
    (0x7b, 7),
    (0x7ffe, 15),
    (0x7fc, 11),
    (0x3ffd, 14),
    (0x1ffd, 13),
    (0xffffffc, 28),
    (0xfffe6, 20),
    (0x3fffd2, 22),
    (0xfffe7, 20),
    (0xfffe8, 20),
    (0x3fffd3, 22),
    (0x3fffd4, 22),
    (0x3fffd5, 22),
    (0x7fffd9, 23),
    (0x3fffd6, 22),
    (0x7fffda, 23),
    (0x7fffdb, 23),
    (0x7fffdc, 23),
    (0x7fffdd, 23),
    (0x7fffde, 23),
    (0xffffeb, 24),
    (0x7fffdf, 23),
    (0xffffec, 24),
    (0xffffed, 24),
    (0x3fffd7, 22),
    (0x7fffe0, 23),
    (0xffffee, 24),
    (0x7fffe1, 23),
    (0x7fffe2, 23),
    (0x7fffe3, 23),
    (0x7fffe4, 23),
    (0x1fffdc, 21),
    (0x3fffd8, 22),
    (0x7fffe5, 23),
    (0x3fffd9, 22),
    (0x7fffe6, 23),
    (0x7fffe7, 23),
    (0xffffef, 24),
    (0x3fffda, 22),
    (0x1fffdd, 21),
    (0xfffe9, 20),
    (0x3fffdb, 22),
    (0x3fffdc, 22),
    (0x7fffe8, 23),
    (0x7fffe9, 23),
    (0x1fffde, 21),
    (0x7fffea, 23),
    (0x3fffdd, 22),
    (0x3fffde, 22),
    (0xfffff0, 24),
    (0x1fffdf, 21),
    (0x3fffdf, 22),
    (0x7fffeb, 23),
    (0x7fffec, 23),
    (0x1fffe0, 21),
    (0x1fffe1, 21),
    (0x3fffe0, 22),
    (0x1fffe2, 21),
    (0x7fffed, 23),
    (0x3fffe1, 22),
    (0x7fffee, 23),
    (0x7fffef, 23),
    (0xfffea, 20),
    (0x3fffe2, 22),
    (0x3fffe3, 22),
    (0x3fffe4, 22),
    (0x7ffff0, 23),
    (0x3fffe5, 22),
    (0x3fffe6, 22),
    (0x7ffff1, 23),
    (0x3ffffe0, 26),
    (0x3ffffe1, 26),
    (0xfffeb, 20),
    (0x7fff1, 19),
    (0x3fffe7, 22),
    (0x7ffff2, 23),
    (0x3fffe8, 22),
    (0x1ffffec, 25),
    (0x3ffffe2, 26),
    (0x3ffffe3, 26),
    (0x3ffffe4, 26),
    (0x7ffffde, 27),
    (0x7ffffdf, 27),
    (0x3ffffe5, 26),
    (0xfffff1, 24),
    (0x1ffffed, 25),
    (0x7fff2, 19),
    (0x1fffe3, 21),
    (0x3ffffe6, 26),
    (0x7ffffe0, 27),
    (0x7ffffe1, 27),
    (0x3ffffe7, 26),
    (0x7ffffe2, 27),
    (0xfffff2, 24),
    (0x1fffe4, 21),
    (0x1fffe5, 21),
    (0x3ffffe8, 26),
    (0x3ffffe9, 26),
    (0xffffffd, 28),
    (0x7ffffe3, 27),
    (0x7ffffe4, 27),
    (0x7ffffe5, 27),
    (0xfffec, 20),
    (0xfffff3, 24),
    (0xfffed, 20),
    (0x1fffe6, 21),
    (0x3fffe9, 22),
    (0x1fffe7, 21),
    (0x1fffe8, 21),
    (0x7ffff3, 23),
    (0x3fffea, 22),
    (0x3fffeb, 22),
    (0x1ffffee, 25),
    (0x1ffffef, 25),
    (0xfffff4, 24),
    (0xfffff5, 24),
    (0x3ffffea, 26),
    (0x7ffff4, 23),
    (0x3ffffeb, 26),
    (0x7ffffe6, 27),
    (0x3ffffec, 26),
    (0x3ffffed, 26),
    (0x7ffffe7, 27),
    (0x7ffffe8, 27),
    (0x7ffffe9, 27),
    (0x7ffffea, 27),
    (0x7ffffeb, 27),
    (0xffffffe, 28),
    (0x7ffffec, 27),
    (0x7ffffed, 27),
    (0x7ffffee, 27),
    (0x7ffffef, 27),
    (0x7fffff0, 27),
    (0x3ffffee, 26),
    (0x3fffffff, 30),
];

#[cfg(test)]
mod tests {
    use super::HuffmanDecoder;
    use super::HuffmanDecoderError;

    /// Simple tests for the Huffman decoder -- whether it can decode a single
    /// character code represented additionally with only a single byte.
    #[test]
    fn test_huffman_code_single_byte() {
        let mut decoder = HuffmanDecoder::new();
        // (The + (2^n - 1) at the final byte is to add the correct expected
        // padding: 1s)
        {
            // We need to shift it by 3, since we need the top-order bytes to
            // start the code point.
            let hex_buffer = [(0x7 << 3) + 7];
            let expected_result = vec![b'o'];

            let result = decoder.decode(&hex_buffer).ok().unwrap();

            assert_eq!(result, expected_result);
        }
        {
            #[allow(clippy::identity_op, reason = "for communicating intent")]
            let hex_buffer = [0x0 + 7];
            let expected_result = vec![b'0'];

            let result = decoder.decode(&hex_buffer).ok().unwrap();

            assert_eq!(result, expected_result);
        }
        {
            // The length of the codepoint is 6, so we shift by two
            let hex_buffer = [(0x21 << 2) + 3];
            let expected_result = vec![b'A'];

            let result = decoder.decode(&hex_buffer).ok().unwrap();

            assert_eq!(result, expected_result);
        }
    }

    /// Tests that the Huffman decoder can decode a single character made of
    /// multiple bytes.
    #[test]
    fn test_huffman_code_single_char_multiple_byte() {
        let mut decoder = HuffmanDecoder::new();
        // (The + (2^n - 1) at the final byte is to add the correct expected
        // padding: 1s)
        {
            let hex_buffer = [255, 160 + 15];
            let expected_result = vec![b'#'];

            let result = decoder.decode(&hex_buffer).ok().unwrap();

            assert_eq!(result, expected_result);
        }
        {
            let hex_buffer = [255, 200 + 7];
            let expected_result = vec![b'$'];

            let result = decoder.decode(&hex_buffer).ok().unwrap();

            assert_eq!(result, expected_result);
        }
        {
            let hex_buffer = [255, 255, 255, 240 + 3];
            let expected_result = vec![10];

            let result = decoder.decode(&hex_buffer).ok().unwrap();

            assert_eq!(result, expected_result);
        }
    }

    #[test]
    fn test_huffman_code_multiple_chars() {
        let mut decoder = HuffmanDecoder::new();
        {
            let hex_buffer = [254, 1];
            let expected_result = vec![b'!', b'0'];

            let result = decoder.decode(&hex_buffer).ok().unwrap();

            assert_eq!(result, expected_result);
        }
        {
            let hex_buffer = [(0x14 << 2) | 0x3, 248];
            let expected_result = vec![b' ', b'!'];

            let result = decoder.decode(&hex_buffer).ok().unwrap();

            assert_eq!(result, expected_result);
        }
    }

    /// Tests that if we find the EOS symbol in the stream, we consider it an
    /// error.
    #[test]
    fn test_eos_is_error() {
        let mut decoder = HuffmanDecoder::new();
        {
            // The EOS is an all-ones pattern of length 30
            let hex_buffer = [0xFF, 0xFF, 0xFF, 0xFF];

            let result = decoder.decode(&hex_buffer);

            assert_eq!(
                HuffmanDecoderError::EOSInString,
                match result {
                    Err(e) => e,
                    _ => panic!("Expected error due to EOS symbol in string"),
                }
            );
        }
        {
            // Full EOS after a valid character.
            let hex_buffer = [0x3F, 0xFF, 0xFF, 0xFF, 0xFF];

            let result = decoder.decode(&hex_buffer);

            assert_eq!(
                HuffmanDecoderError::EOSInString,
                match result {
                    Err(e) => e,
                    _ => panic!("Expected error due to EOS symbol in string"),
                }
            );
        }
    }

    /// Tests that when there are 7 or less padding bits, the string is
    /// correctly decoded.
    #[test]
    fn test_short_padding_okay() {
        let mut decoder = HuffmanDecoder::new();
        let hex_buffer = [0x3F];

        let result = decoder.decode(&hex_buffer);

        assert_eq!(b"o".to_vec(), result.ok().unwrap());
    }

    /// Tests that when there are more than 7 padding bits, we get an error.
    #[test]
    fn test_padding_too_long() {
        let mut decoder = HuffmanDecoder::new();
        let hex_buffer = [0x3F, 0xFF];

        let result = decoder.decode(&hex_buffer);

        assert_eq!(
            HuffmanDecoderError::PaddingTooLarge,
            match result {
                Err(e) => e,
                _ => panic!("Expected `PaddingTooLarge` error"),
            }
        );
    }

    /// Tests that when there is a certain number of padding bits that deviate
    /// from the most significant bits of the EOS symbol, we get an error.
    #[test]
    fn test_padding_invalid() {
        let mut decoder = HuffmanDecoder::new();
        {
            let hex_buffer = [0x3E];

            let result = decoder.decode(&hex_buffer);

            assert_eq!(
                HuffmanDecoderError::InvalidPadding,
                match result {
                    Err(e) => e,
                    _ => panic!("Expected `InvalidPadding` error"),
                }
            );
        }
        {
            let hex_buffer = [254, 0];

            let result = decoder.decode(&hex_buffer);

            assert_eq!(
                HuffmanDecoderError::InvalidPadding,
                match result {
                    Err(e) => e,
                    _ => panic!("Expected `InvalidPadding` error"),
                }
            );
        }
    }

    /// Patched for doh-trace: every one of the 256 octets, encoded with the
    /// code table, decodes back; EOS inside a string is refused.
    #[test]
    fn every_symbol_decodes_and_eos_is_refused() {
        use super::HUFFMAN_CODE_TABLE;
        let mut decoder = HuffmanDecoder::new();
        for (symbol, &(code, len)) in HUFFMAN_CODE_TABLE.iter().enumerate() {
            // Left-align the code in a u64, pad with ones to a byte boundary.
            let bits = u64::from(code) << (64 - len as u32);
            let pad = (8 - len as u32 % 8) % 8;
            let padded = bits | (((1u64 << pad) - 1) << (64 - len as u32 - pad));
            let bytes = (len as u32 + pad) / 8;
            let buf: Vec<u8> = padded.to_be_bytes()[..bytes as usize].to_vec();
            let decoded = decoder.decode(&buf);
            if symbol == 256 {
                assert_eq!(decoded, Err(HuffmanDecoderError::EOSInString));
            } else {
                assert_eq!(decoded, Ok(vec![symbol as u8]), "symbol {symbol}");
            }
        }
    }

    /// Patched for doh-trace: the table decoder against a bit-at-a-time
    /// reference that looks every code up in `HUFFMAN_CODE_TABLE` itself, on
    /// every input of up to two octets and on pseudo-random longer ones,
    /// including the errors and the octets decoded before them.
    #[test]
    fn agrees_with_a_bitwise_reference_decoder() {
        use super::HUFFMAN_CODE_TABLE;
        use std::collections::HashMap;
        let codes: HashMap<(u32, u8), usize> = HUFFMAN_CODE_TABLE
            .iter()
            .enumerate()
            .map(|(symbol, &code)| (code, symbol))
            .collect();
        let reference = |buf: &[u8]| -> (Vec<u8>, Result<(), HuffmanDecoderError>) {
            let (mut out, mut code, mut len) = (Vec::new(), 0u32, 0u8);
            for &octet in buf {
                for shift in (0..8).rev() {
                    code = code << 1 | u32::from(octet >> shift & 1);
                    len += 1;
                    match codes.get(&(code, len)) {
                        Some(256) => return (out, Err(HuffmanDecoderError::EOSInString)),
                        Some(&symbol) => {
                            out.push(symbol as u8);
                            (code, len) = (0, 0);
                        }
                        None => {}
                    }
                }
            }
            let result = if len > 7 {
                Err(HuffmanDecoderError::PaddingTooLarge)
            } else if code != (1 << len) - 1 {
                Err(HuffmanDecoderError::InvalidPadding)
            } else {
                Ok(())
            };
            (out, result)
        };
        let check = |buf: &[u8]| {
            let mut out = Vec::new();
            let result = HuffmanDecoder::new().decode_into(buf, &mut out);
            assert_eq!((out, result), reference(buf), "input {buf:02x?}");
        };
        check(&[]);
        for a in 0..=255u8 {
            check(&[a]);
            for b in 0..=255u8 {
                check(&[a, b]);
            }
        }
        let mut decoder = HuffmanDecoder::new();
        // xorshift64: inputs of 3 to 40 octets, biased towards ones so that
        // long codes, EOS and long padding come up.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..30_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = 3 + (state % 38) as usize;
            let buf: Vec<u8> = (0..len)
                .map(|i| {
                    let r = state.rotate_left(i as u32 * 7) as u8;
                    if state >> 60 & 1 == 1 {
                        r | 0xf0
                    } else {
                        r
                    }
                })
                .collect();
            check(&buf);
            // And the valid encoding of those octets as a string.
            let (mut encoded, mut acc, mut held) = (Vec::new(), 0u64, 0u32);
            for &octet in &buf {
                let (code, len) = HUFFMAN_CODE_TABLE[usize::from(octet)];
                acc = acc << len | u64::from(code);
                held += u32::from(len);
                while held >= 8 {
                    held -= 8;
                    encoded.push((acc >> held) as u8);
                }
            }
            if held > 0 {
                encoded.push(((acc << (8 - held)) | ((1 << (8 - held)) - 1)) as u8);
            }
            let mut out = Vec::new();
            assert_eq!(decoder.decode_into(&encoded, &mut out), Ok(()));
            assert_eq!(out, buf);
            check(&encoded);
        }
    }
}
