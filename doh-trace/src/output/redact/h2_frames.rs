//! HTTP/2 frames as a recording writes them: whole frames of at most the default frame size,
//! and header blocks made only of HPACK literals without indexing (RFC 7541 §6.2.2), so a
//! reader's dynamic table never changes and no header of another stream is needed to decode
//! them. Hand-written: the writing half of an HPACK codec is these ten lines (string
//! literals with a 7-bit length prefix, no Huffman), and the one crate here only decodes.

use crate::proto::http2::{
    frame::{
        DEFAULT_MAX_FRAME_SIZE, END_HEADERS, END_STREAM, SETTINGS_HEADER_TABLE_SIZE,
        SETTINGS_MAX_FRAME_SIZE,
    },
    HeaderFields,
};

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const MAX_PAYLOAD: usize = DEFAULT_MAX_FRAME_SIZE as usize;

/// Appends one frame.
fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    debug_assert!(payload.len() <= MAX_PAYLOAD);
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
}

/// An HPACK integer with a 7-bit prefix and the H bit clear (RFC 7541 §5.1).
fn hpack_len(out: &mut Vec<u8>, mut n: usize) {
    if n < 127 {
        out.push(n as u8);
        return;
    }
    out.push(127);
    n -= 127;
    while n >= 128 {
        out.push((n % 128) as u8 | 0x80);
        n /= 128;
    }
    out.push(n as u8);
}

/// One field as a literal without indexing, with a new name.
fn literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0x00);
    hpack_len(out, name.len());
    out.extend_from_slice(name.as_bytes());
    hpack_len(out, value.len());
    out.extend_from_slice(value.as_bytes());
}

/// The header block of the fields a DoH decoder reads, pseudo-headers first.
pub fn header_block(f: &HeaderFields) -> Vec<u8> {
    let mut block = Vec::new();
    let fields: [(&str, Option<&str>); 7] = [
        (":method", f.method.as_deref()),
        (":scheme", f.scheme.as_deref()),
        (":authority", f.authority.as_deref()),
        (":path", f.path.as_deref()),
        (":status", f.status.as_deref()),
        ("content-type", f.content_type.as_deref()),
        ("accept", f.accept.as_deref()),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            literal(&mut block, name, value);
        }
    }
    block
}

/// A HEADERS frame (and CONTINUATIONs when the block is longer than a frame).
pub fn headers(out: &mut Vec<u8>, stream: u32, block: &[u8], end_stream: bool) {
    let end = if end_stream { END_STREAM } else { 0 };
    let mut pieces = block.chunks(MAX_PAYLOAD).peekable();
    let first = pieces.next().unwrap_or(&[]);
    let last = pieces.peek().is_none();
    frame(
        out,
        HEADERS,
        end | if last { END_HEADERS } else { 0 },
        stream,
        first,
    );
    while let Some(piece) = pieces.next() {
        let last = pieces.peek().is_none();
        frame(
            out,
            CONTINUATION,
            if last { END_HEADERS } else { 0 },
            stream,
            piece,
        );
    }
}

/// DATA frames carrying `bytes` (one empty frame when there are none).
pub fn data(out: &mut Vec<u8>, stream: u32, bytes: &[u8], end_stream: bool) {
    let end = if end_stream { END_STREAM } else { 0 };
    if bytes.is_empty() {
        return frame(out, DATA, end, stream, &[]);
    }
    let mut pieces = bytes.chunks(MAX_PAYLOAD).peekable();
    while let Some(piece) = pieces.next() {
        let flags = if pieces.peek().is_none() { end } else { 0 };
        frame(out, DATA, flags, stream, piece);
    }
}

/// A SETTINGS frame with the two settings a decoder follows.
pub fn settings(out: &mut Vec<u8>, header_table_size: Option<u32>, max_frame_size: Option<u32>) {
    let mut payload = Vec::new();
    for (id, value) in [
        (SETTINGS_HEADER_TABLE_SIZE, header_table_size),
        (SETTINGS_MAX_FRAME_SIZE, max_frame_size),
    ] {
        if let Some(v) = value {
            payload.extend_from_slice(&id.to_be_bytes());
            payload.extend_from_slice(&v.to_be_bytes());
        }
    }
    frame(out, SETTINGS, 0, 0, &payload);
}

/// RST_STREAM with its error code.
pub fn rst_stream(out: &mut Vec<u8>, stream: u32, code: u32) {
    frame(out, RST_STREAM, 0, stream, &code.to_be_bytes());
}

/// GOAWAY without debug data (which may hold any text).
pub fn goaway(out: &mut Vec<u8>, last_stream: u32, code: u32) {
    let mut payload = [0u8; 8];
    payload[..4].copy_from_slice(&(last_stream & 0x7fff_ffff).to_be_bytes());
    payload[4..].copy_from_slice(&code.to_be_bytes());
    frame(out, GOAWAY, 0, 0, &payload);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http2::{DirectionDecoder, H2Event, PREFACE};

    fn decode(bytes: &[u8]) -> Vec<String> {
        let mut d = DirectionDecoder::client_to_server();
        let mut seen = Vec::new();
        d.feed(bytes, &mut |ev| seen.push(format!("{ev:?}")))
            .unwrap();
        seen
    }

    #[test]
    fn frames_decode_with_the_decoder_and_an_independent_hpack() {
        let fields = HeaderFields {
            method: Some("POST".into()),
            scheme: Some("https".into()),
            authority: Some("doh.test:8443".into()),
            path: Some(format!("/{}", "p".repeat(300)).into()),
            content_type: Some("application/dns-message".into()),
            accept: Some("application/dns-message".into()),
            ..Default::default()
        };
        let block = header_block(&fields);
        // loona-hpack, a decoder of its own, reads the same fields.
        let decoded = loona_hpack::Decoder::new().decode(&block).unwrap();
        assert_eq!(decoded.len(), 6);
        assert_eq!(decoded[3].1.len(), 301);
        let mut out = PREFACE.to_vec();
        settings(&mut out, Some(0), Some(16_384));
        headers(&mut out, 1, &block, false);
        data(&mut out, 1, &vec![7u8; 20_000], true);
        rst_stream(&mut out, 3, 8);
        goaway(&mut out, 3, 0);
        let seen = decode(&out);
        assert!(
            seen[0].starts_with("Settings { header_table_size: Some(0)"),
            "{seen:?}"
        );
        assert!(seen[1].starts_with("Headers { stream: 1,"), "{seen:?}");
        assert!(seen[1].contains("doh.test:8443"), "{seen:?}");
        let data_bytes: usize = {
            let mut d = DirectionDecoder::client_to_server();
            let mut n = 0;
            d.feed(&out, &mut |ev| {
                if let H2Event::Data { bytes, .. } = ev {
                    n += bytes.len();
                }
            })
            .unwrap();
            n
        };
        assert_eq!(data_bytes, 20_000);
        assert!(seen.iter().any(|e| e == "RstStream { stream: 3, code: 8 }"));
        assert!(seen
            .iter()
            .any(|e| e.starts_with("GoAway { last_stream: 3")));
    }

    #[test]
    fn a_block_longer_than_a_frame_goes_on_in_continuations() {
        let fields = HeaderFields {
            method: Some("GET".into()),
            path: Some(format!("/dns-query?dns={}", "A".repeat(40_000)).into()),
            ..Default::default()
        };
        let mut out = PREFACE.to_vec();
        headers(&mut out, 5, &header_block(&fields), true);
        let seen = decode(&out);
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(seen[0].contains("end_stream: true"));
    }
}
