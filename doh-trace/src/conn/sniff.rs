//! Deciding from a connection's first bytes what it carries and which side this process is
//! on. Undecided bytes are kept (bounded) so the chosen decoder sees them from the start.

use crate::{
    proto::{
        dns::client::{framed, looks_like_query, looks_like_response, Framing},
        http2::{direction::plausible_frames, PREFACE},
        Bytes, Seen,
    },
    source::Direction,
};

/// Most bytes kept while undecided; past it the connection is not decoded.
pub const MAX_SNIFF_BYTES: usize = 32 * 1024;
/// Bytes of each direction's start kept for matching.
const HEAD_KEEP: usize = 24;

/// The methods a request line may start with (then a space).
pub const HTTP1_METHODS: &[&[u8]] = &[
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

/// A piece of bytes kept while undecided, with where it was in its I/O call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub dir: Direction,
    /// The bytes begin an I/O call.
    pub call_start: bool,
    /// The bytes end an I/O call.
    pub call_end: bool,
    /// Where a datagram went to or came from, when not the connection's peer.
    pub peer: Option<std::net::SocketAddr>,
    pub seen: Seen,
    pub bytes: Vec<u8>,
}

/// What a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Need more bytes.
    Undecided,
    /// This process sent the HTTP/2 preface.
    H2Client,
    /// This process received the HTTP/2 preface.
    H2Server,
    /// HTTP/2 frames without a preface: the connection was already open.
    H2MidStream,
    /// This process sent an HTTP/1.x request.
    Http1Client,
    /// This process received an HTTP/1.x request, or sent a response.
    Http1Server,
    /// TLS records (ciphertext) on the socket.
    Tls,
    /// This process sent a DNS query (classic DNS, or DoT inside TLS plaintext).
    DnsClient(Framing),
    /// This process received a DNS query or sent an answer.
    DnsServer,
    /// None of the above.
    Other,
}

#[derive(Debug, Default)]
struct Start {
    head: Vec<u8>,
    /// Whether the first I/O call seen in this direction began with plausible HTTP/2 frames.
    plausible_frames: Option<bool>,
}

/// Both directions' first bytes and everything seen while undecided.
#[derive(Debug, Default)]
pub struct Sniffer {
    egress: Start,
    ingress: Start,
    pieces: Vec<Piece>,
    kept: usize,
    /// The socket is a datagram socket: each I/O call is one message.
    datagram: bool,
}

fn is_prefix_of(bytes: &[u8], whole: &[u8]) -> bool {
    let n = bytes.len().min(whole.len());
    bytes[..n] == whole[..n]
}

fn is_tls_record(b: &[u8]) -> bool {
    b.len() >= 3 && (0x14..=0x17).contains(&b[0]) && b[1] == 0x03 && b[2] <= 0x04
}

enum Match {
    Yes,
    Maybe,
    No,
}

fn http1_request(b: &[u8]) -> Match {
    if HTTP1_METHODS.iter().any(|m| b.starts_with(m)) {
        Match::Yes
    } else if !b.is_empty() && b.len() < 8 && HTTP1_METHODS.iter().any(|m| is_prefix_of(b, m)) {
        Match::Maybe
    } else {
        Match::No
    }
}

impl Sniffer {
    /// A sniffer for a datagram (UDP) socket, where messages are not length-framed.
    pub fn for_datagrams() -> Self {
        Sniffer {
            datagram: true,
            ..Sniffer::default()
        }
    }

    /// The bytes this process sent first (up to the kept head).
    pub fn egress_head(&self) -> &[u8] {
        &self.egress.head
    }

    /// Keeps the bytes and says what is known now.
    pub fn feed(&mut self, b: &Bytes<'_>, seen: Seen) -> Verdict {
        let (dir, call_start, bytes) = (b.dir, b.call_start, b.bytes);
        let start = match dir {
            Direction::Egress => &mut self.egress,
            Direction::Ingress => &mut self.ingress,
        };
        if start.plausible_frames.is_none() && call_start {
            start.plausible_frames = Some(plausible_frames(bytes));
        }
        let take = (HEAD_KEEP - start.head.len()).min(bytes.len());
        start.head.extend_from_slice(&bytes[..take]);
        self.kept += bytes.len();
        if self.kept > MAX_SNIFF_BYTES {
            return Verdict::Other;
        }
        self.pieces.push(Piece {
            dir,
            call_start,
            call_end: b.call_end,
            peer: b.peer,
            seen,
            bytes: bytes.to_vec(),
        });
        self.decide()
    }

    /// Heap bytes held, in constant time (`kept` counts the pieces' bytes).
    pub fn held_bytes(&self) -> usize {
        self.egress.head.capacity()
            + self.ingress.head.capacity()
            + self.kept
            + self.pieces.capacity() * std::mem::size_of::<Piece>()
    }

    /// The bytes kept so far, in arrival order.
    pub fn take_pieces(&mut self) -> Vec<Piece> {
        self.kept = 0;
        std::mem::take(&mut self.pieces)
    }

    fn decide(&self) -> Verdict {
        let (e, i) = (&self.egress.head[..], &self.ingress.head[..]);
        if self.datagram {
            if looks_like_query(e) {
                return Verdict::DnsClient(Framing::Datagram);
            }
            if looks_like_query(i) || looks_like_response(e) {
                return Verdict::DnsServer;
            }
            // An answer to a query sent before tracing started: wait for the next query.
            if e.is_empty() && looks_like_response(i) {
                return Verdict::Undecided;
            }
            return Verdict::Other;
        }
        if e.len() == PREFACE.len() && e == PREFACE {
            return Verdict::H2Client;
        }
        if i.len() == PREFACE.len() && i == PREFACE {
            return Verdict::H2Server;
        }
        if is_tls_record(e) || is_tls_record(i) {
            return Verdict::Tls;
        }
        match http1_request(e) {
            Match::Yes => return Verdict::Http1Client,
            Match::Maybe => return Verdict::Undecided,
            Match::No => {}
        }
        match http1_request(i) {
            Match::Yes => return Verdict::Http1Server,
            // A request arriving in short reads, before this side said anything.
            Match::Maybe if e.is_empty() => return Verdict::Undecided,
            Match::Maybe | Match::No => {}
        }
        if e.starts_with(b"HTTP/1.") {
            return Verdict::Http1Server;
        }
        // DNS over TCP or TLS: a 2-byte length, then a DNS header.
        if framed(e, looks_like_query) {
            return Verdict::DnsClient(Framing::Stream);
        }
        if framed(i, looks_like_query) || framed(e, looks_like_response) {
            return Verdict::DnsServer;
        }
        if e.len() < 14 && e.len() >= 2 && u16::from_be_bytes([e[0], e[1]]) >= 17 && i.is_empty() {
            // Maybe a DNS header still arriving.
            return Verdict::Undecided;
        }
        // A preface still arriving in pieces.
        if !e.is_empty() && is_prefix_of(e, PREFACE) || !i.is_empty() && is_prefix_of(i, PREFACE) {
            return Verdict::Undecided;
        }
        let plausible = self.egress.plausible_frames == Some(true)
            || self.ingress.plausible_frames == Some(true);
        if plausible {
            // A server may send its SETTINGS before reading the preface: wait for both sides.
            return if e.is_empty() || i.is_empty() {
                Verdict::Undecided
            } else {
                Verdict::H2MidStream
            };
        }
        if e.is_empty() && i.len() < 3 || i.is_empty() && e.len() < 3 {
            return Verdict::Undecided;
        }
        Verdict::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Seen = Seen { ts_ns: 0, tid: 0 };

    fn feed(s: &mut Sniffer, dir: Direction, call_start: bool, bytes: &[u8]) -> Verdict {
        let b = Bytes {
            dir,
            bytes,
            call_start,
            call_end: true,
            peer: None,
        };
        s.feed(&b, T)
    }

    #[test]
    fn a_preface_in_pieces_makes_a_client() {
        let mut s = Sniffer::default();
        assert_eq!(
            feed(&mut s, Direction::Egress, true, &PREFACE[..10]),
            Verdict::Undecided
        );
        assert_eq!(
            feed(&mut s, Direction::Egress, false, &PREFACE[10..]),
            Verdict::H2Client
        );
        assert_eq!(s.take_pieces().len(), 2);
    }

    #[test]
    fn a_server_that_speaks_first_is_still_a_server() {
        let mut s = Sniffer::default();
        let settings = [0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100];
        assert_eq!(
            feed(&mut s, Direction::Egress, true, &settings),
            Verdict::Undecided
        );
        assert_eq!(
            feed(&mut s, Direction::Ingress, true, PREFACE),
            Verdict::H2Server
        );
    }

    #[test]
    fn frames_in_both_directions_without_a_preface_are_mid_stream() {
        let mut s = Sniffer::default();
        let ping = [0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(
            feed(&mut s, Direction::Egress, true, &ping),
            Verdict::Undecided
        );
        assert_eq!(
            feed(&mut s, Direction::Ingress, true, &ping),
            Verdict::H2MidStream
        );
    }

    #[test]
    fn recognises_http1_tls_and_other() {
        let mut s = Sniffer::default();
        assert_eq!(
            feed(&mut s, Direction::Egress, true, b"PO"),
            Verdict::Undecided
        );
        assert_eq!(
            feed(
                &mut s,
                Direction::Egress,
                false,
                b"ST /dns-query HTTP/1.1\r\n"
            ),
            Verdict::Http1Client
        );
        let mut s = Sniffer::default();
        assert_eq!(
            feed(
                &mut s,
                Direction::Egress,
                true,
                &[0x16, 0x03, 0x01, 0x02, 0x00]
            ),
            Verdict::Tls
        );
        let mut s = Sniffer::default();
        assert_eq!(
            feed(&mut s, Direction::Ingress, true, b"SSH-2.0-OpenSSH_9.2\r\n"),
            Verdict::Other
        );
    }
}
