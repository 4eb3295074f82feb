//! Protocol decoders: bytes of one connection in, exchanges (a query and its answer) out.
//!
//! [`http1`] and [`http2`] decode HTTP per direction; [`doh`] turns HTTP exchanges into DoH
//! ones (its client decoders [`doh::client_h2`] and [`doh::client_h1`]); [`dns`] parses DNS
//! messages and decodes classic DNS and DoT clients ([`dns::client`]); [`tls`] reads the TLS
//! ClientHello. The client decoders share one interface, [`ClientDecoder`].

pub mod dns;
pub mod doh;
pub mod http1;
pub mod http2;
pub mod tls;

use std::net::SocketAddr;

use crate::{counters::DecodeCounters, source::Direction};
use dns::client::{DnsFinished, PendingQuery};
use doh::exchange::Finished;

/// How long an answer waits for the request or query that brought it, when the hooks report
/// that request's last write after the answer was read. They report a write when its call
/// returns, and the writing thread can return after another thread has read the whole answer
/// (Go writes and reads on different goroutines).
pub const LATE_WRITE_NS: u64 = 2_000_000_000;

/// When and by which thread something was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub ts_ns: u64,
    pub tid: u32,
}

/// Bytes of one direction handed to a sniffer or decoder, with where they sit in their I/O
/// call (for datagrams: the call is the message).
pub struct Bytes<'a> {
    pub dir: Direction,
    pub bytes: &'a [u8],
    pub call_start: bool,
    pub call_end: bool,
    /// Where a datagram went to or came from, when it is not the connection's peer.
    pub peer: Option<SocketAddr>,
}

/// What client decoders hand back: finished exchanges, and the queries just sent to local
/// resolvers (to link the lookups those resolvers make upstream).
#[derive(Debug, Default)]
pub struct Exchanges {
    /// Finished DoH exchanges (HTTP/2, HTTP/1.1).
    pub doh: Vec<Finished>,
    /// Finished classic DNS and DoT exchanges.
    pub dns: Vec<DnsFinished>,
    /// Queries just sent to a resolver on loopback, in order.
    pub sent_to_local: Vec<PendingQuery>,
    /// DNS answers found to match no query (by `expire` and `close`), for the counters.
    pub unmatched_dns_answers: u64,
}

impl Exchanges {
    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.doh.is_empty() && self.dns.is_empty() && self.sent_to_local.is_empty()
    }
}

/// What the first request on a connection said about it (for capture minimisation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstRequest {
    /// No request yet.
    Pending,
    /// The first request carried DNS (DoH; any query of a DNS client).
    Dns,
    /// The first request was something else.
    NotDns,
}

/// What decoding some bytes led to.
pub enum Fed {
    /// Decoding goes on.
    Going,
    /// The bytes show this process answering: it is the server side of the connection.
    ServerSide,
    /// The connection cannot be decoded any further (the decoder counted why).
    Failed,
    /// The connection switched protocols (an `h2c` upgrade): this decoder takes over.
    Switched(Box<dyn ClientDecoder>),
}

/// A decoder of the client side of one connection: the HTTP/2 and HTTP/1.1 DoH decoders
/// and the classic DNS / DoT one.
pub trait ClientDecoder {
    /// Decodes bytes of one direction; finished exchanges go to `out`.
    fn feed(
        &mut self,
        b: &Bytes<'_>,
        seen: Seen,
        counters: &mut DecodeCounters,
        out: &mut Exchanges,
    ) -> Fed;

    /// What the connection's first request said, once there was one.
    fn first_request(&self) -> FirstRequest;

    /// Ends exchanges that started more than `timeout_ns` before `now_ns`.
    fn expire(&mut self, now_ns: u64, timeout_ns: u64, out: &mut Exchanges);

    /// The connection is gone: open exchanges end (unanswered, or answered by the close).
    fn close(&mut self, seen: Seen, out: &mut Exchanges);

    /// Bytes of `dir` were lost. Returns whether decoding goes on (from the next boundary it
    /// can find); when it does not, the connection is no longer decoded.
    fn lost_bytes(&mut self, _dir: Direction) -> bool {
        false
    }

    /// Heap bytes the decoder holds, at most (buffers, compression state, open exchanges),
    /// in constant time: the pipeline's memory budget asks after every event.
    fn held_bytes(&self) -> usize;

    /// Whether datagrams (on a socket without a tracked connection) are its bytes.
    fn accepts_datagrams(&self) -> bool {
        false
    }
}
