//! Classic DNS (UDP datagrams, TCP with 2-byte length framing) and DNS over TLS (the same
//! framing inside TLS plaintext): cutting a connection's bytes into DNS messages and pairing each
//! query with its answer by (server, DNS id, question).

use std::{collections::VecDeque, net::SocketAddr};

use crate::{
    counters::DecodeCounters,
    proto::{
        dns::{self, DnsSummary},
        Bytes, ClientDecoder, Exchanges, Fed, FirstRequest, Seen, LATE_WRITE_NS,
    },
    source::Direction,
};

/// How messages are delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One message per datagram (per I/O call).
    Datagram,
    /// Each message preceded by its length in two bytes (RFC 1035 4.2.2, RFC 7858).
    Stream,
}

/// Most queries waiting for an answer on one connection or socket; older ones end unanswered.
pub const MAX_PENDING: usize = 256;
/// Largest DNS message (the 2-byte length's limit).
const MAX_MESSAGE: usize = 65535;

/// A query waiting for its answer.
#[derive(Debug, Clone)]
pub struct PendingQuery {
    /// Where it was sent (the datagram's destination, or the connection's peer).
    pub server: Option<SocketAddr>,
    pub question: DnsSummary,
    pub bytes: Vec<u8>,
    pub sent: Seen,
    /// Times the same query was sent again before an answer (UDP retransmission).
    pub resent: u32,
    /// Datagrams coming in were lost while it waited: its answer may have been one of them,
    /// so without an answer it is `Unanswered`, not `TimedOut` (the server may have answered).
    pub answer_maybe_lost: bool,
}

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsOutcome {
    Answered,
    /// The connection closed or the process exited first.
    Unanswered,
    TimedOut,
}

/// A finished exchange.
#[derive(Debug, Clone)]
pub struct DnsFinished {
    pub query: PendingQuery,
    /// The answer's summary and bytes, when it came.
    pub answer: Option<(DnsSummary, Vec<u8>)>,
    pub outcome: DnsOutcome,
    pub ended: Seen,
}

/// This process answers DNS on the connection rather than asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this process is the DNS server on this connection")]
pub struct ServerSide;

/// One direction's bytes while a stream message is incomplete.
#[derive(Debug, Default)]
struct Assembly {
    buf: Vec<u8>,
}

/// Answers that matched no query are kept this long, at most this many per connection.
const MAX_EARLY_ANSWERS: usize = 16;

/// An answer read before its query was reported (see [`LATE_WRITE_NS`]), kept for the query.
#[derive(Debug)]
struct EarlyAnswer {
    peer: Option<SocketAddr>,
    summary: DnsSummary,
    bytes: Vec<u8>,
    seen: Seen,
}

impl PendingQuery {
    /// Heap bytes it holds, and its size.
    fn held_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.bytes.capacity() + self.question.held_bytes()
    }
}

impl EarlyAnswer {
    /// Heap bytes it holds, and its size.
    fn held_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.bytes.capacity() + self.summary.held_bytes()
    }
}

/// A DNS client connection (or unconnected socket) being decoded.
#[derive(Debug)]
pub struct DnsClient {
    framing: Framing,
    egress: Assembly,
    ingress: Assembly,
    pending: VecDeque<PendingQuery>,
    early: VecDeque<EarlyAnswer>,
    /// What `pending` and `early` hold (their `held_bytes`), kept up to date by every change
    /// so the memory budget reads it in constant time.
    held: usize,
}

impl DnsClient {
    pub fn new(framing: Framing) -> Self {
        DnsClient {
            framing,
            egress: Assembly::default(),
            ingress: Assembly::default(),
            pending: VecDeque::new(),
            early: VecDeque::new(),
            held: 0,
        }
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Takes bytes of one direction. For datagrams, `call_start` marks the start of a datagram
    /// and `call_end` its end; a stream ignores both. `peer` is where a datagram went to or came
    /// from (the connection's peer otherwise). Returns how many new queries it sent: they are
    /// the last ones in [`DnsClient::pending`].
    #[allow(
        clippy::too_many_arguments,
        reason = "one datagram's or stream slice's facts, all needed to pair it"
    )]
    pub fn decode(
        &mut self,
        dir: Direction,
        bytes: &[u8],
        call_start: bool,
        call_end: bool,
        peer: Option<SocketAddr>,
        seen: Seen,
        counters: &mut DecodeCounters,
        finished: &mut Vec<DnsFinished>,
    ) -> Result<usize, ServerSide> {
        let asm = match dir {
            Direction::Egress => &mut self.egress,
            Direction::Ingress => &mut self.ingress,
        };
        let mut messages = Vec::new();
        match self.framing {
            Framing::Datagram => {
                if call_start && !asm.buf.is_empty() {
                    // The previous datagram's end never came (lost chunk).
                    counters.bad_dns_messages += 1;
                    asm.buf.clear();
                }
                if asm.buf.len() + bytes.len() <= MAX_MESSAGE {
                    asm.buf.extend_from_slice(bytes);
                }
                if call_end {
                    messages.push(std::mem::take(&mut asm.buf));
                }
            }
            Framing::Stream => {
                asm.buf.extend_from_slice(bytes);
                let mut at = 0;
                while asm.buf.len() - at >= 2 {
                    let len = usize::from(u16::from_be_bytes([asm.buf[at], asm.buf[at + 1]]));
                    if asm.buf.len() - at - 2 < len {
                        break;
                    }
                    messages.push(asm.buf[at + 2..at + 2 + len].to_vec());
                    at += 2 + len;
                }
                asm.buf.drain(..at);
            }
        }
        let mut sent = 0;
        for msg in messages {
            sent += usize::from(self.message(dir, msg, peer, seen, counters, finished)?);
        }
        Ok(sent)
    }

    fn message(
        &mut self,
        dir: Direction,
        bytes: Vec<u8>,
        peer: Option<SocketAddr>,
        seen: Seen,
        counters: &mut DecodeCounters,
        finished: &mut Vec<DnsFinished>,
    ) -> Result<bool, ServerSide> {
        let Ok(summary) = dns::summarize(&bytes) else {
            counters.bad_dns_messages += 1;
            return Ok(false);
        };
        match (dir, summary.is_response) {
            (Direction::Egress, false) => {
                let same = |p: &PendingQuery| {
                    p.server == peer
                        && p.question.id == summary.id
                        && p.question.asks(&summary.qname, &summary.qtype)
                };
                if let Some(p) = self.pending.iter_mut().find(|p| same(p)) {
                    p.resent += 1;
                    return Ok(false);
                }
                // Its answer came first: the query's write was reported late.
                let answered = self.early.iter().position(|a| {
                    (a.peer.is_none() || peer.is_none() || a.peer == peer)
                        && a.summary.id == summary.id
                        && summary.asks(&a.summary.qname, &a.summary.qtype)
                });
                if let Some(i) = answered {
                    let a = self.early.remove(i).expect("found");
                    self.held -= a.held_bytes();
                    finished.push(DnsFinished {
                        query: PendingQuery {
                            server: peer,
                            question: summary,
                            bytes,
                            sent: seen,
                            resent: 0,
                            answer_maybe_lost: false,
                        },
                        answer: Some((a.summary, a.bytes)),
                        outcome: DnsOutcome::Answered,
                        ended: a.seen,
                    });
                    return Ok(false);
                }
                if self.pending.len() >= MAX_PENDING {
                    counters.dns_pending_overflow += 1;
                    let oldest = self.pending.pop_front().expect("full");
                    self.held -= oldest.held_bytes();
                    finished.push(DnsFinished {
                        query: oldest,
                        answer: None,
                        outcome: DnsOutcome::Unanswered,
                        ended: seen,
                    });
                }
                let query = PendingQuery {
                    server: peer,
                    question: summary,
                    bytes,
                    sent: seen,
                    resent: 0,
                    answer_maybe_lost: false,
                };
                self.held += query.held_bytes();
                self.pending.push_back(query);
                Ok(true)
            }
            (Direction::Ingress, true) => {
                let found = self.pending.iter().position(|p| {
                    (p.server.is_none() || peer.is_none() || p.server == peer)
                        && p.question.id == summary.id
                        && p.question.asks(&summary.qname, &summary.qtype)
                });
                match found {
                    Some(i) => {
                        let query = self.pending.remove(i).expect("found");
                        self.held -= query.held_bytes();
                        finished.push(DnsFinished {
                            query,
                            answer: Some((summary, bytes)),
                            outcome: DnsOutcome::Answered,
                            ended: seen,
                        });
                    }
                    None => {
                        // Its query may be reported yet (a late write): kept for a moment.
                        if self.early.len() >= MAX_EARLY_ANSWERS {
                            if let Some(a) = self.early.pop_front() {
                                self.held -= a.held_bytes();
                            }
                            counters.unmatched_dns_answers += 1;
                        }
                        let early = EarlyAnswer {
                            peer,
                            summary,
                            bytes,
                            seen,
                        };
                        self.held += early.held_bytes();
                        self.early.push_back(early);
                    }
                }
                Ok(false)
            }
            // Sending answers or receiving queries: a server.
            _ => Err(ServerSide),
        }
    }

    /// Ends queries unanswered for longer than `timeout_ns`; answers whose query did not come
    /// within [`LATE_WRITE_NS`] are counted unmatched.
    pub fn expire(
        &mut self,
        now_ns: u64,
        timeout_ns: u64,
        finished: &mut Vec<DnsFinished>,
        counters: &mut DecodeCounters,
    ) {
        while self
            .early
            .front()
            .is_some_and(|a| now_ns.saturating_sub(a.seen.ts_ns) > LATE_WRITE_NS)
        {
            if let Some(a) = self.early.pop_front() {
                self.held -= a.held_bytes();
            }
            counters.unmatched_dns_answers += 1;
        }
        while self
            .pending
            .front()
            .is_some_and(|p| now_ns.saturating_sub(p.sent.ts_ns) > timeout_ns)
        {
            let query = self.pending.pop_front().expect("non-empty");
            self.held -= query.held_bytes();
            let outcome = if query.answer_maybe_lost {
                DnsOutcome::Unanswered
            } else {
                DnsOutcome::TimedOut
            };
            finished.push(DnsFinished {
                query,
                answer: None,
                outcome,
                ended: Seen {
                    ts_ns: now_ns,
                    tid: 0,
                },
            });
        }
    }

    /// The connection ended: every open query ends unanswered, and every answer kept for a
    /// query is unmatched.
    pub fn close(
        &mut self,
        seen: Seen,
        finished: &mut Vec<DnsFinished>,
        counters: &mut DecodeCounters,
    ) {
        counters.unmatched_dns_answers += self.early.drain(..).count() as u64;
        self.held = 0;
        for query in self.pending.drain(..) {
            finished.push(DnsFinished {
                query,
                answer: None,
                outcome: DnsOutcome::Unanswered,
                ended: seen,
            });
        }
    }

    /// Queries waiting for answers.
    pub fn pending(&self) -> impl DoubleEndedIterator<Item = &PendingQuery> {
        self.pending.iter()
    }
}

impl ClientDecoder for DnsClient {
    fn feed(
        &mut self,
        b: &Bytes<'_>,
        seen: Seen,
        counters: &mut DecodeCounters,
        out: &mut Exchanges,
    ) -> Fed {
        let sent = match self.decode(
            b.dir,
            b.bytes,
            b.call_start,
            b.call_end,
            b.peer,
            seen,
            counters,
            &mut out.dns,
        ) {
            Ok(sent) => sent,
            // Sends answers or receives queries: a server after all.
            Err(ServerSide) => return Fed::ServerSide,
        };
        // The queries just sent are the last ones waiting; those to a local resolver wait for
        // relay links.
        let first_new = out.sent_to_local.len();
        out.sent_to_local.extend(
            self.pending
                .iter()
                .rev()
                .take(sent)
                .filter(|q| q.server.as_ref().is_some_and(is_local))
                .cloned(),
        );
        out.sent_to_local[first_new..].reverse();
        Fed::Going
    }

    fn first_request(&self) -> FirstRequest {
        // Every message a DNS client sends is a query.
        FirstRequest::Dns
    }

    fn held_bytes(&self) -> usize {
        self.egress.buf.capacity()
            + self.ingress.buf.capacity()
            + self.held
            + (self.pending.capacity() - self.pending.len()) * std::mem::size_of::<PendingQuery>()
            + (self.early.capacity() - self.early.len()) * std::mem::size_of::<EarlyAnswer>()
    }

    /// Over datagrams only the datagrams whose bytes were not copied are lost: every later one
    /// is whole, so decoding goes on. A lost query leaves its answer without one (counted); an
    /// answer may have been lost too, even when the loss was seen going out (the kernel's copy
    /// budget is shared by both directions, `doh-trace-ebpf/src/capture.rs`), so the queries
    /// waiting now are no longer said to time out (see [`PendingQuery::answer_maybe_lost`]).
    /// A stream loses its message boundaries: decoding stops.
    fn lost_bytes(&mut self, dir: Direction) -> bool {
        if self.framing != Framing::Datagram {
            return false;
        }
        match dir {
            Direction::Egress => self.egress.buf.clear(),
            Direction::Ingress => self.ingress.buf.clear(),
        }
        for q in &mut self.pending {
            q.answer_maybe_lost = true;
        }
        true
    }

    fn expire(&mut self, now_ns: u64, timeout_ns: u64, out: &mut Exchanges) {
        let mut counters = DecodeCounters::default();
        DnsClient::expire(self, now_ns, timeout_ns, &mut out.dns, &mut counters);
        out.unmatched_dns_answers += counters.unmatched_dns_answers;
    }

    fn close(&mut self, seen: Seen, out: &mut Exchanges) {
        let mut counters = DecodeCounters::default();
        DnsClient::close(self, seen, &mut out.dns, &mut counters);
        out.unmatched_dns_answers += counters.unmatched_dns_answers;
    }

    fn accepts_datagrams(&self) -> bool {
        true
    }
}

/// Whether a resolver at this address is local to the host (or its network namespace).
pub fn is_local(addr: &SocketAddr) -> bool {
    match addr.ip() {
        std::net::IpAddr::V4(ip) => ip.is_loopback(),
        std::net::IpAddr::V6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Whether `b` starts like a DNS query header: one question, no answers or authority records,
/// at most one additional record (EDNS), opcode QUERY/NOTIFY/UPDATE.
pub fn looks_like_query(b: &[u8]) -> bool {
    b.len() >= 12
        && b[2] & 0x80 == 0
        && (b[2] >> 3) & 0x0f <= 5
        && b[4..6] == [0, 1]
        && b[6..10] == [0, 0, 0, 0]
        && b[10] == 0
        && b[11] <= 1
}

/// Whether `b` starts like a DNS response header with one question.
pub fn looks_like_response(b: &[u8]) -> bool {
    b.len() >= 12 && b[2] & 0x80 != 0 && b[4..6] == [0, 1]
}

/// Whether `b` starts with a 2-byte length that can hold a DNS message, then a DNS header.
pub fn framed(b: &[u8], header: fn(&[u8]) -> bool) -> bool {
    b.len() >= 14 && u16::from_be_bytes([b[0], b[1]]) >= 17 && header(&b[2..])
}
