//! Lookups relayed through a local resolver: a client asks a resolver on loopback (a stub,
//! dnsmasq, dnsdist, a DoH proxy), which asks upstream. The two lookups are linked by question
//! and time: the upstream lookup must start while the client's query waits for its answer, in
//! another process. Every candidate is named, up to [`MAX_RELAY_PEERS`] in each direction;
//! more than one makes the link ambiguous, and those beyond the cap are counted
//! (`relay_ambiguous`), not listed: a busy stub with thousands of clients asking the same
//! name would otherwise copy all of them into every upstream lookup.

use std::{collections::VecDeque, net::SocketAddr, sync::Arc};

use crate::{
    lookup::{Endpoint, Lookup, RelayPeer},
    proto::dns::{
        client::{is_local, PendingQuery},
        DnsSummary,
    },
};

/// Most client queries to local resolvers remembered at once (the oldest are forgotten).
const MAX_WAITING: usize = 4096;
/// Most peers listed in a lookup's `upstream` or `relayed_for` (and kept per waiting query).
pub const MAX_RELAY_PEERS: usize = 8;
/// An upstream lookup started at most this long after the client's query (ns).
const MAX_RELAY_DELAY_NS: u64 = 10_000_000_000;

/// A client query to a local resolver, waiting for its answer.
#[derive(Debug)]
struct Waiting {
    pid: u32,
    comm: Arc<str>,
    transport: &'static str,
    server: SocketAddr,
    question: DnsSummary,
    sent_ns: u64,
    /// Upstream lookups made for it so far.
    upstream: Vec<RelayPeer>,
}

/// Client queries to local resolvers, for linking.
#[derive(Debug, Default)]
pub struct RelayIndex {
    waiting: VecDeque<Waiting>,
}

impl RelayIndex {
    fn find(&self, pid: u32, q: &PendingQuery) -> Option<usize> {
        self.waiting.iter().position(|w| {
            w.pid == pid
                && Some(w.server) == q.server
                && w.question.id == q.question.id
                && w.question.asks(&q.question.qname, &q.question.qtype)
        })
    }

    /// Remembers a client query just sent, if it went to a local resolver.
    pub fn query_sent(
        &mut self,
        pid: u32,
        comm: &Arc<str>,
        transport: &'static str,
        q: &PendingQuery,
    ) {
        let Some(server) = q.server.filter(is_local) else {
            return;
        };
        if self.waiting.len() >= MAX_WAITING {
            self.waiting.pop_front();
        }
        self.waiting.push_back(Waiting {
            pid,
            comm: comm.clone(),
            transport,
            server,
            question: q.question.clone(),
            sent_ns: q.sent.ts_ns,
            upstream: Vec::new(),
        });
    }

    /// Forgets a client query once its lookup was reported.
    pub fn query_done(&mut self, pid: u32, q: &PendingQuery) {
        if let Some(i) = self.find(pid, q) {
            self.waiting.remove(i);
        }
    }

    /// Links a lookup about to be reported, sent at `sent_ns`: as an upstream lookup, it names
    /// the clients waiting for the same question; as a client's lookup to a local resolver, it
    /// names the upstream lookups made for it. Returns the peers beyond [`MAX_RELAY_PEERS`]
    /// that matched but were not listed (here or in a waiting query's list).
    pub fn link(&mut self, l: &mut Lookup, sent_ns: u64) -> u64 {
        let (Some(qname), Some(qtype)) = (l.qname.as_deref(), l.qtype.as_deref()) else {
            return 0;
        };
        let mut unlisted = 0;
        let me = || RelayPeer {
            pid: l.pid,
            comm: l.comm.clone(),
            transport: l.transport,
            server: l.server.clone(),
            server_name: l
                .url
                .as_deref()
                .or(l.server_name.as_deref())
                .map(str::to_owned),
        };
        let mut clients = Vec::new();
        for w in self.waiting.iter_mut() {
            if w.pid != l.pid
                && w.question.asks(qname, qtype)
                && w.sent_ns <= sent_ns
                && sent_ns - w.sent_ns <= MAX_RELAY_DELAY_NS
            {
                if w.upstream.len() < MAX_RELAY_PEERS {
                    w.upstream.push(me());
                } else {
                    unlisted += 1;
                }
                if clients.len() >= MAX_RELAY_PEERS {
                    unlisted += 1;
                    continue;
                }
                clients.push(RelayPeer {
                    pid: w.pid,
                    comm: w.comm.clone(),
                    transport: w.transport,
                    server: Some(Endpoint::from(w.server)),
                    server_name: None,
                });
            }
        }
        let mine = self.waiting.iter().find(|w| {
            w.pid == l.pid
                && Some(Endpoint::from(w.server)) == l.server
                && Some(w.question.id) == l.dns_id
                && w.question.asks(qname, qtype)
        });
        let upstream = mine.map(|w| w.upstream.clone()).unwrap_or_default();
        let ambiguous = clients.len() > 1 || upstream.len() > 1;
        if !clients.is_empty() {
            l.relayed_for = Some(clients);
        }
        if !upstream.is_empty() {
            l.upstream = Some(upstream);
        }
        if l.relayed_for.is_some() || l.upstream.is_some() {
            l.relay_ambiguous = Some(ambiguous);
        }
        unlisted
    }
}
