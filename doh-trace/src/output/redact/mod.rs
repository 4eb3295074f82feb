//! What a recording keeps of a connection that carries DNS: only what the DNS decoding needs.
//!
//! The pipeline classifies a connection as a whole, but an HTTP/2 or keep-alive connection can
//! carry other requests beside its DoH ones. [`ConnRedactor`] decodes the plaintext again and
//! writes, in place of the raw records, records rebuilt from it: for HTTP/2 ([`h2`]) and
//! HTTP/1.1 ([`h1`]) the DoH exchanges with the header fields the DoH decoder reads; DNS over
//! TCP and TLS records (ciphertext, handshakes) as they came. Anything else, and the rest of a
//! connection after bytes were lost or its decoding failed, is not written (counted).

pub mod h1;
pub mod h2;
pub mod h2_frames;

use doh_trace_common::{CHUNK_SIZE, DATA_EVENT_HEADER_SIZE};

use crate::{
    conn::{sequence::CallSequence, sniff::HTTP1_METHODS},
    proto::http2::{direction::plausible_frames, PREFACE},
    source::{kernel, DataChunk, Direction, Layer},
};

use h1::H1Redactor;
use h2::H2Redactor;

/// What a connection is, to the recording.
enum Kind {
    /// No bytes yet.
    New,
    /// DNS over TCP, or TLS records: written as they came.
    Verbatim,
    H2(Box<H2Redactor>),
    H1(Box<H1Redactor>),
    /// Not (or no longer) kept.
    Withheld,
}

/// What to write for one raw data record.
#[derive(Debug, PartialEq, Eq)]
pub enum Redacted {
    /// The record itself.
    Verbatim,
    /// These records instead (none: nothing of it).
    Records(Vec<Vec<u8>>),
}

/// One DNS connection layer's redaction, both directions.
pub struct ConnRedactor {
    kind: Kind,
    /// Egress, ingress: a lost chunk ends the redaction (the decoders could not follow).
    calls: [CallSequence; 2],
    /// HTTP/1.1: the header of the last response data record (its process, connection and
    /// time), for a response the close completes.
    ingress_header: Vec<u8>,
}

impl std::fmt::Debug for ConnRedactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            Kind::New => "new",
            Kind::Verbatim => "verbatim",
            Kind::H2(_) => "http/2",
            Kind::H1(_) => "http/1.1",
            Kind::Withheld => "withheld",
        };
        f.debug_struct("ConnRedactor").field("kind", &kind).finish()
    }
}

impl Default for ConnRedactor {
    fn default() -> Self {
        ConnRedactor {
            kind: Kind::New,
            calls: Default::default(),
            ingress_header: Vec::new(),
        }
    }
}

impl ConnRedactor {
    /// Whether the rest of the connection is no longer written.
    pub fn withheld(&self) -> bool {
        matches!(self.kind, Kind::Withheld)
    }

    /// Bytes memory held.
    pub fn buffered(&self) -> usize {
        match &self.kind {
            Kind::H2(r) => r.buffered(),
            Kind::H1(r) => r.buffered(),
            _ => 0,
        }
    }

    /// What the recording keeps of data record `raw`, decoded as `d`.
    pub fn redact(&mut self, raw: &[u8], d: &DataChunk<'_>) -> Redacted {
        let egress = d.direction == Direction::Egress;
        if !self.calls[usize::from(!egress)].accept(d.offset, d.bytes.len() as u32, d.total_len) {
            self.kind = Kind::Withheld;
        }
        if let Kind::New = self.kind {
            self.kind = sniff(d);
        }
        let mut out = Vec::new();
        let r = match &mut self.kind {
            Kind::New | Kind::Withheld => return Redacted::Records(Vec::new()),
            Kind::Verbatim => return Redacted::Verbatim,
            Kind::H2(r) => r.feed(egress, d.bytes, d.offset == 0, &mut out),
            Kind::H1(r) => match r.feed(egress, d.bytes, &mut out) {
                Ok(None) if !egress => {
                    self.ingress_header.clear();
                    self.ingress_header
                        .extend_from_slice(&raw[..raw.len().min(DATA_EVENT_HEADER_SIZE)]);
                    Ok(())
                }
                Ok(Some(switch)) => {
                    let mut h2 = Box::new(H2Redactor::upgraded(switch.doh));
                    let rest = &d.bytes[switch.consumed.min(d.bytes.len())..];
                    let r = h2.feed(false, rest, false, &mut out);
                    self.kind = Kind::H2(h2);
                    r
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            },
        };
        if r.is_err() {
            self.kind = Kind::Withheld;
        }
        Redacted::Records(
            out.chunks(CHUNK_SIZE)
                .filter_map(|bytes| kernel::with_bytes(raw, bytes))
                .collect(),
        )
    }
}

impl ConnRedactor {
    /// The connection closed: the records of what the close completes (an HTTP/1.1 response
    /// delimited by it), to write before the close.
    pub fn close(&mut self) -> Vec<Vec<u8>> {
        let Kind::H1(r) = &mut self.kind else {
            return Vec::new();
        };
        let mut out = Vec::new();
        r.close(&mut out);
        out.chunks(CHUNK_SIZE)
            .filter_map(|bytes| kernel::with_bytes(&self.ingress_header, bytes))
            .collect()
    }
}

/// What a connection is, from its first bytes (a client's: the pipeline decodes client sides).
fn sniff(d: &DataChunk<'_>) -> Kind {
    let b = d.bytes;
    let egress = d.direction == Direction::Egress;
    let n = b.len().min(PREFACE.len());
    if egress && d.offset == 0 && n > 0 && b[..n] == PREFACE[..n] {
        return Kind::H2(Box::new(H2Redactor::new(false)));
    }
    if egress && d.offset == 0 && starts_like_request(b) {
        return Kind::H1(Box::default());
    }
    if d.layer == Layer::Socket && b.len() >= 3 && (0x14..=0x17).contains(&b[0]) && b[1] == 3 {
        // TLS records: ciphertext, and handshakes (a ClientHello names the server).
        return Kind::Verbatim;
    }
    if looks_like_dns_over_tcp(b) {
        return Kind::Verbatim;
    }
    if egress && d.offset == 0 && plausible_frames(b) {
        // An HTTP/2 connection joined mid-stream.
        return Kind::H2(Box::new(H2Redactor::new(true)));
    }
    Kind::Withheld
}

/// A request line's start: an HTTP method token, then a space.
fn starts_like_request(b: &[u8]) -> bool {
    HTTP1_METHODS.iter().any(|m| b.starts_with(m))
}

/// A DNS message with its two-byte length (RFC 1035 §4.2.2): the length covers at least a
/// header, and the header has a question or is a response.
fn looks_like_dns_over_tcp(b: &[u8]) -> bool {
    if b.len() < 14 {
        return false;
    }
    let len = usize::from(u16::from_be_bytes([b[0], b[1]]));
    let qdcount = u16::from_be_bytes([b[6], b[7]]);
    len >= 12 && (qdcount >= 1 || b[4] & 0x80 != 0)
}
