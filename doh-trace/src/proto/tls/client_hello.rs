//! The server name (SNI) and ALPN list from the first bytes a TLS client sends on a TCP
//! connection.
//!
//! Input is the start of the client's byte stream: TLS records (RFC 8446 §5.1) carrying a
//! ClientHello that may be split across several handshake records and may be cut short,
//! because the tracer captures only the first bytes of a connection. The records are
//! reassembled here (bounded by [`MAX_HANDSHAKE_LEN`]); the ClientHello itself, the extension
//! framing and the `server_name` (RFC 6066 §3) and ALPN (RFC 7301) extensions are parsed with
//! rusticata's `tls-parser`. No other extension is interpreted.
//!
//! The bytes are untrusted: nothing here panics, and allocation is bounded by a small multiple
//! of the input length. [`HelloParse::NeedMore`] means "a plausible prefix so far": the record
//! and handshake headers seen are those of a ClientHello, but the message is incomplete.
//!
//! With Encrypted Client Hello (ECH), the name seen here is the outer, public name of the ECH
//! provider, not the name the client is really visiting.

use std::borrow::Cow;

use tls_parser::{
    parse_tls_extension_alpn_content, parse_tls_extension_sni_content, parse_tls_extension_unknown,
    parse_tls_handshake_client_hello, parse_tls_record_header, SNIType, TlsExtension,
    TlsExtensionType, MAX_RECORD_LEN,
};

/// Largest ClientHello handshake message (4-byte header included) that is reassembled; a
/// handshake header announcing more gives [`HelloParse::NotClientHello`]`("too large")`.
pub const MAX_HANDSHAKE_LEN: usize = 64 * 1024;
/// Most ALPN protocol identifiers kept in [`ClientHelloInfo::alpn`].
pub const MAX_ALPN: usize = 16;

const RECORD_HEADER_LEN: usize = 5;
const HANDSHAKE_HEADER_LEN: usize = 4;
const RECORD_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const HANDSHAKE_SERVER_HELLO: u8 = 2;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;

/// What a ClientHello says about where the client is going.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHelloInfo {
    /// The first `host_name` entry of the `server_name` extension, as sent (case kept, one
    /// trailing dot removed), if there is one and it is a syntactically valid ASCII host name.
    pub server_name: Option<String>,
    /// The ALPN protocol identifiers offered, in order: at most [`MAX_ALPN`], each non-empty
    /// printable ASCII; other identifiers (GREASE values, binary) are skipped.
    pub alpn: Vec<String>,
    /// The client random: 32 bytes the client's TLS library also keeps in its connection
    /// object (how objects on memory BIOs are bound to their socket, `pipeline/binding.rs`).
    pub random: [u8; 32],
}

/// The result of looking at the first bytes of a TCP connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloParse {
    /// A whole ClientHello was found.
    Complete(ClientHelloInfo),
    /// What is there so far is a plausible start of a ClientHello; more bytes are needed.
    NeedMore,
    /// The bytes are not (the start of) a TLS ClientHello; the reason is for logs.
    NotClientHello(&'static str),
}

/// Parses the start of a client's TCP byte stream as a TLS ClientHello.
///
/// Only the first handshake message matters: bytes after it (a ChangeCipherSpec, early data)
/// are not looked at. Calling again with a longer prefix of the same stream is how to resume
/// after [`HelloParse::NeedMore`].
pub fn parse_client_hello(bytes: &[u8]) -> HelloParse {
    match reassemble(bytes) {
        Ok(message) => parse_message(&message),
        Err(verdict) => verdict,
    }
}

/// Collects the first handshake message from the handshake records at the start of `bytes`,
/// checking every header on the way. Borrows when the message fits in the first record.
fn reassemble(mut rest: &[u8]) -> Result<Cow<'_, [u8]>, HelloParse> {
    let mut message: Cow<'_, [u8]> = Cow::Borrowed(&[]);
    loop {
        let fragment_len = match record_header(rest, message.is_empty())? {
            Some(len) => len,
            None => return Err(HelloParse::NeedMore),
        };
        let body = &rest[RECORD_HEADER_LEN..];
        let fragment = &body[..fragment_len.min(body.len())];
        if message.is_empty() {
            message = Cow::Borrowed(fragment);
        } else {
            message.to_mut().extend_from_slice(fragment);
        }
        if let Some(total) = handshake_header(&message)? {
            if message.len() >= total {
                return Ok(match message {
                    Cow::Borrowed(m) => Cow::Borrowed(&m[..total]),
                    Cow::Owned(mut m) => {
                        m.truncate(total);
                        Cow::Owned(m)
                    }
                });
            }
        }
        if fragment.len() < fragment_len {
            return Err(HelloParse::NeedMore);
        }
        rest = &body[fragment_len..];
    }
}

/// Checks the record header at the start of `bytes` (as much of it as there is). Returns the
/// record's length once the whole header is there, `None` if the header is incomplete.
fn record_header(bytes: &[u8], first: bool) -> Result<Option<usize>, HelloParse> {
    let not = HelloParse::NotClientHello;
    match bytes.first() {
        Some(&t) if t != RECORD_HANDSHAKE => {
            return Err(if t & 0x80 != 0 && first {
                not("SSLv2-style record")
            } else if first {
                not("not a TLS handshake record")
            } else {
                not("non-handshake record before the end of the ClientHello")
            });
        }
        _ => {}
    }
    // Record versions: 3.0 (SSLv3) to 3.4; clients use 3.1 or 3.3 (RFC 8446 §5.1).
    if bytes.get(1).is_some_and(|&major| major != 3) {
        return Err(not("not a TLS record version"));
    }
    if bytes.get(2).is_some_and(|&minor| minor > 4) {
        return Err(not("not a TLS record version"));
    }
    if bytes.len() < RECORD_HEADER_LEN {
        return Ok(None);
    }
    let Ok((_, header)) = parse_tls_record_header(bytes) else {
        return Err(not("bad TLS record header"));
    };
    match header.len {
        0 => Err(not("empty handshake record")),
        len if len > MAX_RECORD_LEN => Err(not("TLS record too long")),
        len => Ok(Some(usize::from(len))),
    }
}

/// Checks the handshake header at the start of `message` (as much of it as there is). Returns
/// the whole message's length once its header is there.
fn handshake_header(message: &[u8]) -> Result<Option<usize>, HelloParse> {
    let not = HelloParse::NotClientHello;
    match message.first() {
        Some(&HANDSHAKE_CLIENT_HELLO) | None => {}
        Some(&HANDSHAKE_SERVER_HELLO) => return Err(not("a ServerHello, not a ClientHello")),
        Some(_) => return Err(not("handshake message is not a ClientHello")),
    }
    // Checks run in stream order, so that the verdict does not depend on where input was cut.
    let Some(len) = message.get(1..HANDSHAKE_HEADER_LEN) else {
        return Ok(None);
    };
    let total = HANDSHAKE_HEADER_LEN
        + (usize::from(len[0]) << 16 | usize::from(len[1]) << 8 | usize::from(len[2]));
    if total > MAX_HANDSHAKE_LEN {
        return Err(not("too large"));
    }
    // legacy_version, the first field of the ClientHello body: major version 3. (A byte past
    // the end of the message is not the message's.)
    if total > HANDSHAKE_HEADER_LEN
        && message
            .get(HANDSHAKE_HEADER_LEN)
            .is_some_and(|&major| major != 3)
    {
        return Err(not("not a TLS ClientHello version"));
    }
    Ok(Some(total))
}

/// Parses one whole ClientHello handshake message (header included), as QUIC carries it in
/// CRYPTO frames rather than TLS records.
pub fn parse_message(message: &[u8]) -> HelloParse {
    let not = HelloParse::NotClientHello;
    let body = message.get(HANDSHAKE_HEADER_LEN..).unwrap_or_default();
    let hello = match parse_tls_handshake_client_hello(body) {
        Ok(([], hello)) => hello,
        Ok(_) | Err(_) => return not("malformed ClientHello"),
    };
    if hello.version.0 >> 8 != 3 {
        return not("not a TLS ClientHello version");
    }
    let mut info = ClientHelloInfo::default();
    if let Ok(random) = <[u8; 32]>::try_from(hello.random) {
        info.random = random;
    }
    let (mut seen_sni, mut seen_alpn) = (false, false);
    let mut extensions = hello.ext.unwrap_or_default();
    while !extensions.is_empty() {
        let Ok((rest, TlsExtension::Unknown(TlsExtensionType(kind), data))) =
            parse_tls_extension_unknown(extensions)
        else {
            return not("malformed ClientHello extensions");
        };
        extensions = rest;
        // A repeated extension is a protocol error (RFC 8446 §4.2); the first one counts.
        match kind {
            EXT_SERVER_NAME if !seen_sni => {
                seen_sni = true;
                info.server_name = server_name(data);
            }
            EXT_ALPN if !seen_alpn => {
                seen_alpn = true;
                info.alpn = alpn(data);
            }
            _ => {}
        }
    }
    HelloParse::Complete(info)
}

fn server_name(data: &[u8]) -> Option<String> {
    let Ok((_, TlsExtension::SNI(names))) = parse_tls_extension_sni_content(data) else {
        return None;
    };
    let (_, name) = names
        .into_iter()
        .find(|(kind, _)| *kind == SNIType::HostName)?;
    let name = name.strip_suffix(b".").unwrap_or(name);
    is_host_name(name).then(|| String::from_utf8_lossy(name).into_owned())
}

fn alpn(data: &[u8]) -> Vec<String> {
    let Ok((_, TlsExtension::ALPN(protocols))) = parse_tls_extension_alpn_content(data) else {
        return Vec::new();
    };
    protocols
        .into_iter()
        .filter(|p| !p.is_empty() && p.iter().all(|b| b.is_ascii_graphic()))
        .take(MAX_ALPN)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

/// A host name in ASCII (A-labels for IDNs), no trailing dot: at most 253 bytes of dot-separated
/// labels of 1 to 63 letters, digits, `-` and `_`, none starting or ending with `-`.
pub(crate) fn is_host_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split(|&b| b == b'.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with(b"-")
                && !label.ends_with(b"-")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/client_hello/",
                $name
            ))
            .as_slice()
        };
    }

    const OPENSSL_H2: &[u8] = fixture!("openssl_sni_alpn_h2.bin");
    const OPENSSL_NO_SNI: &[u8] = fixture!("openssl_ip_literal_no_sni.bin");
    const OPENSSL_DOT: &[u8] = fixture!("openssl_dot.bin");
    const GNUTLS_DOT: &[u8] = fixture!("gnutls_kdig_dot.bin");
    const GNUTLS_HTTPS: &[u8] = fixture!("gnutls_kdig_https.bin");
    const OPENSSL_TWO_RECORDS: &[u8] = fixture!("openssl_s_client_two_records.bin");
    const JSSE_H2: &[u8] = fixture!("jsse_sni_alpn_h2.bin");
    const SERVER_HELLO: &[u8] = fixture!("openssl_server_hello.bin");

    fn complete(bytes: &[u8]) -> ClientHelloInfo {
        match parse_client_hello(bytes) {
            // The random is checked on its own (`keeps_the_client_random`).
            HelloParse::Complete(info) => ClientHelloInfo {
                random: [0; 32],
                ..info
            },
            other => panic!("expected a ClientHello, got {other:?}"),
        }
    }

    fn info(sni: Option<&str>, alpn: &[&str]) -> ClientHelloInfo {
        ClientHelloInfo {
            server_name: sni.map(str::to_owned),
            alpn: alpn.iter().map(|s| s.to_string()).collect(),
            random: [0; 32],
        }
    }

    #[test]
    fn keeps_the_client_random() {
        // Record header (5), handshake header (4), legacy version (2), then the random.
        let HelloParse::Complete(info) = parse_client_hello(OPENSSL_H2) else {
            panic!("curl's ClientHello parses");
        };
        assert_eq!(&info.random[..], &OPENSSL_H2[11..43]);
        assert_ne!(info.random, [0; 32]);
    }

    /// Every strict prefix is `NeedMore`, the whole is `want`.
    fn assert_prefixes(bytes: &[u8], want: &ClientHelloInfo) {
        for n in 0..bytes.len() {
            assert_eq!(
                parse_client_hello(&bytes[..n]),
                HelloParse::NeedMore,
                "prefix of {n} bytes"
            );
        }
        assert_eq!(&complete(bytes), want);
    }

    /// The handshake message inside the first record of a single-record hello.
    fn handshake_message(bytes: &[u8]) -> &[u8] {
        let len = usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
        assert_eq!(
            bytes.len(),
            RECORD_HEADER_LEN + len,
            "one record, nothing after it"
        );
        &bytes[RECORD_HEADER_LEN..]
    }

    /// Re-frames a handshake message into records carrying the given fragment sizes (the last
    /// record takes the remainder), with record version 3.1 like OpenSSL's first flight.
    fn reframe(message: &[u8], sizes: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = message;
        for (i, &size) in sizes.iter().chain([&usize::MAX]).enumerate() {
            let take = if i == sizes.len() {
                rest.len()
            } else {
                size.min(rest.len())
            };
            let (fragment, tail) = rest.split_at(take);
            out.extend_from_slice(&[0x16, 3, 1]);
            out.extend_from_slice(&u16::try_from(fragment.len()).unwrap().to_be_bytes());
            out.extend_from_slice(fragment);
            rest = tail;
        }
        out
    }

    #[test]
    fn openssl_sni_and_alpn_h2() {
        assert_eq!(
            complete(OPENSSL_H2),
            info(Some("dns.google"), &["h2", "http/1.1"])
        );
    }

    #[test]
    fn openssl_alpn_dot() {
        assert_eq!(
            complete(OPENSSL_DOT),
            info(Some("one.one.one.one"), &["dot"])
        );
    }

    #[test]
    fn gnutls_kdig_dot_and_https() {
        assert_eq!(complete(GNUTLS_DOT), info(Some("dns.quad9.net"), &["dot"]));
        assert_eq!(
            complete(GNUTLS_HTTPS),
            info(Some("cloudflare-dns.com"), &["h2"])
        );
    }

    #[test]
    fn jsse_sni_and_alpn_h2() {
        assert_eq!(
            complete(JSSE_H2),
            info(Some("dns.quad9.net"), &["h2", "http/1.1"])
        );
    }

    #[test]
    fn ip_literal_sends_no_sni() {
        assert_eq!(complete(OPENSSL_NO_SNI), info(None, &["h2", "http/1.1"]));
    }

    #[test]
    fn openssl_split_across_two_records_keeps_first_16_alpn() {
        // OpenSSL itself split this one (max_send_frag 512): records of 512 and 45 bytes.
        assert_eq!(OPENSSL_TWO_RECORDS[3..5], [0x02, 0x00]);
        let want = info(
            Some("dns.adguard-dns.com"),
            &[
                "h2",
                "http/1.1",
                "dot",
                "doq",
                "h3",
                "spdy/3.1",
                "acme-tls/1",
                "imap",
                "pop3",
                "managesieve",
                "xmpp-client",
                "xmpp-server",
                "ftp",
                "irc",
                "nntp",
                "sunrpc",
            ],
        );
        assert_prefixes(OPENSSL_TWO_RECORDS, &want);
    }

    #[test]
    fn every_strict_prefix_needs_more() {
        assert_prefixes(OPENSSL_H2, &info(Some("dns.google"), &["h2", "http/1.1"]));
        assert_prefixes(GNUTLS_DOT, &info(Some("dns.quad9.net"), &["dot"]));
        assert_prefixes(JSSE_H2, &info(Some("dns.quad9.net"), &["h2", "http/1.1"]));
    }

    #[test]
    fn reframed_hello_gives_the_same_answer() {
        let message = handshake_message(OPENSSL_H2);
        let want = complete(OPENSSL_H2);
        // Two records, split inside the handshake header, then inside the body.
        for split in [1, 2, 3, 4, 5, 100, message.len() - 1] {
            assert_prefixes(&reframe(message, &[split]), &want);
        }
        // One byte of handshake message per record.
        let sizes = vec![1; message.len() - 1];
        let byte_records = reframe(message, &sizes);
        assert_eq!(byte_records.len(), message.len() * 6);
        assert_prefixes(&byte_records, &want);
    }

    #[test]
    fn bytes_after_the_hello_are_not_looked_at() {
        let mut bytes = OPENSSL_H2.to_vec();
        bytes.extend_from_slice(&[0x14, 3, 3, 0, 1, 1]); // ChangeCipherSpec
        bytes.extend_from_slice(b"\x17\x03\x03garbage");
        assert_eq!(complete(&bytes), complete(OPENSSL_H2));
    }

    #[test]
    fn truncated_hello_needs_more() {
        // The tracer captures only the first bytes; a ClientHello record announcing 16 KiB of
        // which 1 KiB arrived is still a plausible prefix.
        let message = handshake_message(OPENSSL_H2);
        let mut big = message.to_vec();
        let len = 16 * 1024 - 4;
        big[1..4].copy_from_slice(&u32::try_from(len).unwrap().to_be_bytes()[1..]);
        let mut bytes = reframe(&big, &[]);
        bytes[3..5].copy_from_slice(&u16::try_from(16 * 1024).unwrap().to_be_bytes());
        assert_eq!(parse_client_hello(&bytes), HelloParse::NeedMore);
        assert_eq!(parse_client_hello(&OPENSSL_H2[..300]), HelloParse::NeedMore);
    }

    #[test]
    fn server_hello_is_not_a_client_hello() {
        assert_eq!(
            parse_client_hello(SERVER_HELLO),
            HelloParse::NotClientHello("a ServerHello, not a ClientHello")
        );
        // Decided as soon as the handshake type byte is there.
        assert_eq!(
            parse_client_hello(&SERVER_HELLO[..6]),
            HelloParse::NotClientHello("a ServerHello, not a ClientHello")
        );
        assert_eq!(parse_client_hello(&SERVER_HELLO[..5]), HelloParse::NeedMore);
    }

    #[test]
    fn http_request_and_garbage_are_not_client_hellos() {
        let http = b"GET /dns-query?dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQ HTTP/1.1\r\n\
                     Host: dns.google\r\nAccept: application/dns-message\r\n\r\n";
        assert_eq!(
            parse_client_hello(http),
            HelloParse::NotClientHello("not a TLS handshake record")
        );
        assert_eq!(
            parse_client_hello(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            HelloParse::NotClientHello("not a TLS handshake record")
        );
        // DNS over TCP: a 2-byte length, then a DNS header.
        assert_eq!(
            parse_client_hello(&[0x00, 0x1d, 0x12, 0x34, 0x01, 0x00]),
            HelloParse::NotClientHello("not a TLS handshake record")
        );
        assert!(matches!(
            parse_client_hello(&[0x80, 0x2e, 0x01]),
            HelloParse::NotClientHello(_)
        ));
        assert_eq!(
            parse_client_hello(&[0x16, 0x04]),
            HelloParse::NotClientHello("not a TLS record version")
        );
        assert_eq!(
            parse_client_hello(&[0x16, 0x03, 0x09]),
            HelloParse::NotClientHello("not a TLS record version")
        );
        assert_eq!(
            parse_client_hello(&[0x16, 0x03, 0x01, 0, 0]),
            HelloParse::NotClientHello("empty handshake record")
        );
        // A handshake record carrying a Finished message.
        assert_eq!(
            parse_client_hello(&[0x16, 0x03, 0x03, 0, 4, 20, 0, 0, 0]),
            HelloParse::NotClientHello("handshake message is not a ClientHello")
        );
        // ClientHello header, body not starting with major version 3.
        assert_eq!(
            parse_client_hello(&[0x16, 0x03, 0x01, 0, 8, 1, 0, 0, 4, 0xff]),
            HelloParse::NotClientHello("not a TLS ClientHello version")
        );
        assert_eq!(parse_client_hello(&[]), HelloParse::NeedMore);
    }

    #[test]
    fn non_handshake_record_in_the_middle() {
        let message = handshake_message(OPENSSL_H2);
        let mut bytes = reframe(&message[..100], &[]);
        bytes.extend_from_slice(&[0x15, 3, 3, 0, 2, 2, 40]); // an alert
        assert_eq!(
            parse_client_hello(&bytes),
            HelloParse::NotClientHello("non-handshake record before the end of the ClientHello")
        );
    }

    #[test]
    fn oversized_lengths() {
        // Record length beyond 2^14 + 256.
        let mut bytes = OPENSSL_H2.to_vec();
        bytes[3..5].copy_from_slice(&[0xff, 0xff]);
        assert_eq!(
            parse_client_hello(&bytes),
            HelloParse::NotClientHello("TLS record too long")
        );
        assert_eq!(
            parse_client_hello(&bytes[..5]),
            HelloParse::NotClientHello("TLS record too long")
        );
        // Handshake length of 16 MiB, refused from the header alone.
        let mut bytes = OPENSSL_H2.to_vec();
        bytes[6..9].copy_from_slice(&[0xff, 0xff, 0xff]);
        assert_eq!(
            parse_client_hello(&bytes),
            HelloParse::NotClientHello("too large")
        );
        assert_eq!(
            parse_client_hello(&bytes[..9]),
            HelloParse::NotClientHello("too large")
        );
        // Just over the cap, and exactly at it.
        let over = MAX_HANDSHAKE_LEN - HANDSHAKE_HEADER_LEN + 1;
        bytes[6..9].copy_from_slice(&u32::try_from(over).unwrap().to_be_bytes()[1..]);
        assert_eq!(
            parse_client_hello(&bytes),
            HelloParse::NotClientHello("too large")
        );
        bytes[6..9].copy_from_slice(&u32::try_from(over - 1).unwrap().to_be_bytes()[1..]);
        assert_eq!(parse_client_hello(&bytes), HelloParse::NeedMore);
    }

    #[test]
    fn verdict_does_not_depend_on_the_cut() {
        // Found by the fuzzer: a handshake length over the cap and a bad version byte after it
        // gave "too large" on 9 bytes and "not a TLS ClientHello version" on 10.
        let bytes = [
            0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00,
        ];
        for n in 9..=bytes.len() {
            assert_eq!(
                parse_client_hello(&bytes[..n]),
                HelloParse::NotClientHello("too large")
            );
        }
        // Also found by the fuzzer: an empty ClientHello followed, in the same record, by a byte
        // that is not a version; that byte is not part of the message.
        let bytes = [
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x30, 0x03,
        ];
        for n in 9..=bytes.len() {
            let verdict = parse_client_hello(&bytes[..n]);
            assert_eq!(verdict, HelloParse::NotClientHello("malformed ClientHello"));
        }
    }

    #[test]
    fn inner_lengths_that_do_not_add_up_are_malformed() {
        let message = handshake_message(OPENSSL_H2);
        // Handshake length one short of the body: the extensions no longer fit.
        let mut short = message.to_vec();
        let len = message.len() - HANDSHAKE_HEADER_LEN - 1;
        short[1..4].copy_from_slice(&u32::try_from(len).unwrap().to_be_bytes()[1..]);
        assert_eq!(
            parse_client_hello(&reframe(&short, &[])),
            HelloParse::NotClientHello("malformed ClientHello")
        );
        // Session id longer than 32 bytes.
        let mut sid = message.to_vec();
        sid[HANDSHAKE_HEADER_LEN + 34] = 33;
        assert_eq!(
            parse_client_hello(&reframe(&sid, &[])),
            HelloParse::NotClientHello("malformed ClientHello")
        );
    }

    /// A ClientHello built from the real one's fields around the given extensions block.
    fn with_extensions(extensions: &[u8]) -> Vec<u8> {
        let message = handshake_message(OPENSSL_H2);
        let body = &message[HANDSHAKE_HEADER_LEN..];
        let (_, hello) = parse_tls_handshake_client_hello(body).unwrap();
        let ext = hello.ext.unwrap();
        let prefix = &body[..body.len() - ext.len() - 2];
        let mut body = prefix.to_vec();
        body.extend_from_slice(&u16::try_from(extensions.len()).unwrap().to_be_bytes());
        body.extend_from_slice(extensions);
        let mut message = vec![HANDSHAKE_CLIENT_HELLO];
        message.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
        message.extend_from_slice(&body);
        reframe(&message, &[])
    }

    fn extension(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut out = kind.to_be_bytes().to_vec();
        out.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
        out.extend_from_slice(data);
        out
    }

    fn sni(name: &[u8]) -> Vec<u8> {
        let mut entry = vec![0];
        entry.extend_from_slice(&u16::try_from(name.len()).unwrap().to_be_bytes());
        entry.extend_from_slice(name);
        let mut data = u16::try_from(entry.len()).unwrap().to_be_bytes().to_vec();
        data.extend_from_slice(&entry);
        extension(EXT_SERVER_NAME, &data)
    }

    #[test]
    fn rebuilt_extensions_parse_like_the_original() {
        let message = handshake_message(OPENSSL_H2);
        let (_, hello) =
            parse_tls_handshake_client_hello(&message[HANDSHAKE_HEADER_LEN..]).unwrap();
        assert_eq!(with_extensions(hello.ext.unwrap()), OPENSSL_H2);
    }

    #[test]
    fn server_names_that_are_not_host_names_are_dropped() {
        for bad in [
            &b"dns.google\x1b[31m"[..],
            b"dns..google",
            b"-dns.google",
            b"dns google",
            b"d\xc3\xa9.example",
            b"",
            b".",
            &[b'a'; 64],
        ] {
            let bytes = with_extensions(&sni(bad));
            assert_eq!(complete(&bytes).server_name, None, "{bad:?}");
        }
        let long: Vec<u8> = [
            &[b'a'; 63][..],
            b".",
            &[b'b'; 63],
            b".",
            &[b'c'; 63],
            b".",
            &[b'd'; 61],
        ]
        .concat();
        assert_eq!(long.len(), 253);
        assert_eq!(
            complete(&with_extensions(&sni(&long)))
                .server_name
                .map(|s| s.len()),
            Some(253)
        );
        let too_long = [&long[..], b"e"].concat();
        assert_eq!(
            complete(&with_extensions(&sni(&too_long))).server_name,
            None
        );
        // Case is kept, the trailing dot goes.
        assert_eq!(
            complete(&with_extensions(&sni(b"DNS.Google.")))
                .server_name
                .as_deref(),
            Some("DNS.Google")
        );
    }

    #[test]
    fn first_of_repeated_extensions_wins_and_grease_alpn_is_skipped() {
        let alpn_ext = extension(EXT_ALPN, b"\x00\x0b\x02\x0a\x0a\x00\x03dot\x02h2");
        let exts = [sni(b"dns.quad9.net"), sni(b"evil.example"), alpn_ext].concat();
        assert_eq!(
            complete(&with_extensions(&exts)),
            info(Some("dns.quad9.net"), &["dot", "h2"])
        );
    }

    #[test]
    fn malformed_extension_framing() {
        let truncated = [sni(b"dns.google"), vec![0x00, 0x10, 0x00]].concat();
        assert_eq!(
            parse_client_hello(&with_extensions(&truncated)),
            HelloParse::NotClientHello("malformed ClientHello extensions")
        );
        // A bad SNI extension body loses only the name.
        let exts = [
            extension(EXT_SERVER_NAME, b"\xff"),
            extension(EXT_ALPN, b"\x00\x03\x02h2"),
        ]
        .concat();
        assert_eq!(complete(&with_extensions(&exts)), info(None, &["h2"]));
    }
}
