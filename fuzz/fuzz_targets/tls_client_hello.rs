//! TLS ClientHello parsing of arbitrary bytes, as they come and re-framed as a ClientHello body
//! in handshake records of input-chosen size; every prefix answer that is not `NeedMore` must
//! be the answer for the whole input.
#![no_main]
use doh_trace::proto::tls::client_hello::{parse_client_hello, HelloParse, MAX_ALPN};
use libfuzzer_sys::fuzz_target;

fn check(data: &[u8]) {
    let whole = parse_client_hello(data);
    if let HelloParse::Complete(info) = &whole {
        assert!(info.alpn.len() <= MAX_ALPN);
        assert!(info
            .alpn
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_graphic())));
        if let Some(name) = &info.server_name {
            assert!(!name.is_empty() && name.len() <= 253 && name.is_ascii());
            assert!(!name.ends_with('.'));
        }
    }
    for cut in [data.len() / 2, data.len().saturating_sub(1)] {
        let prefix = parse_client_hello(&data[..cut]);
        if prefix != HelloParse::NeedMore {
            assert_eq!(prefix, whole, "prefix of {cut} bytes");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    // The rest of the input as a ClientHello body with correct handshake and record framing, so
    // the body and extension parsers are reached without guessing three length fields.
    if let Some((&size, body)) = data.split_first() {
        let Ok(len) = u32::try_from(body.len()) else {
            return;
        };
        let mut message = vec![1];
        message.extend_from_slice(&len.to_be_bytes()[1..]);
        message.extend_from_slice(body);
        let mut framed = Vec::with_capacity(message.len() * 6);
        for fragment in message.chunks(1 + usize::from(size) * 64) {
            framed.extend_from_slice(&[0x16, 0x03, 0x01]);
            framed.extend_from_slice(&(fragment.len() as u16).to_be_bytes());
            framed.extend_from_slice(fragment);
        }
        check(&framed);
    }
});
