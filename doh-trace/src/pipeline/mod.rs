//! The pipeline: a source's [`Event`]s in, lookup records, connection records and capture
//! decisions out.
//!
//! It keeps one connection state per (process, connection, layer) in a [`ConnTable`] — the
//! layer being TLS plaintext or the socket's own bytes. Each direction's chunks are checked for
//! gaps ([`crate::conn::sequence`]); the first bytes decide what the connection carries
//! ([`crate::conn::sniff`]); a client decoder ([`crate::proto::ClientDecoder`]) turns its bytes
//! into exchanges, which [`crate::lookup::judge`] turns into lookups; what the kernel should
//! copy is decided by [`crate::conn::policy`]. The same code runs live, on recordings and on
//! any other source; only the [`ProcessInfo`] differs.
//!
//! The handlers: `bytes` (data and datagrams, classification, decoders), `binding` (TLS objects
//! on memory BIOs found their socket), `lifecycle`
//! (connections opening and ending, processes, time), `report` (exchanges into records).

mod binding;
mod bytes;
pub mod capture;
pub mod keylog;
mod lifecycle;
pub mod memory;
pub mod replay;
mod report;
mod state;

use crate::{
    clock::Clock,
    conn::{
        binding::TlsBinder,
        policy::{CaptureDecision, CapturePolicy},
        table::ConnTable,
    },
    counters::DecodeCounters,
    lookup::{
        connection::ConnectionRecord, relay::RelayIndex, resolvers::ResolverList, Lookup, Origin,
    },
    process::ProcessInfo,
    proto::Exchanges,
    source::{kernel, ConnId, ConnKey, Event, Layer},
};
use memory::MemoryBudget;
use state::{Conn, Proto};
use std::net::SocketAddr;

/// A DoH exchange without an answer after this long is reported as timed out.
pub const STREAM_TIMEOUT_NS: u64 = 30_000_000_000;
/// A mid-stream connection whose first this many exchanges were not DNS is dropped.
const MID_STREAM_PATIENCE: u32 = 8;

/// What the pipeline knows of one socket (see [`Pipeline::socket_view`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketView {
    /// Its peer, when known.
    pub peer: Option<SocketAddr>,
    /// TLS plaintext of it came in (from a hook, or decrypted with a key log).
    pub plaintext_seen: bool,
    /// Bytes of it sent and received that were copied to the tracer.
    pub copied: (u64, u64),
    /// The `CAPTURE_*` bits decided for it, once decided (the kernel may not have them yet).
    pub policy: Option<u32>,
}

/// What a pipeline is set up with besides its source: the well-known resolvers and the
/// memory budget. A resolver list alone converts into settings with the default budget.
#[derive(Debug, Clone)]
pub struct Settings {
    pub resolvers: ResolverList,
    /// See [`Pipeline::set_memory_budget`].
    pub memory_budget: usize,
}

impl From<ResolverList> for Settings {
    fn from(resolvers: ResolverList) -> Self {
        Settings {
            resolvers,
            memory_budget: memory::DEFAULT_BUDGET,
        }
    }
}

/// Source events → lookups and capture decisions.
pub struct Pipeline {
    /// Boxed: a connection's state (about a kilobyte) is taken out of the table and put back
    /// for every event; moving it by value was ~10 % of reading a DoH capture.
    #[allow(
        clippy::box_collection,
        reason = "the state moves by pointer, not by value (measured)"
    )]
    conns: ConnTable<Box<Conn>>,
    procs: Box<dyn ProcessInfo>,
    clock: Clock,
    counters: DecodeCounters,
    /// Boxed: a record (several hundred bytes) is built once and moves by pointer until it is
    /// written; moving it by value through emit, this queue and the writer was ~2 % of replay.
    #[allow(
        clippy::vec_box,
        reason = "a record moves by pointer, not by value (measured)"
    )]
    out: Vec<Box<Lookup>>,
    out_conns: Vec<ConnectionRecord>,
    policy: CapturePolicy,
    /// What decoders finished, waiting to become records (kept to reuse the buffers).
    exchanges: Exchanges,
    last_tick_ns: u64,
    resolvers: ResolverList,
    relay: RelayIndex,
    /// TLS objects on memory and custom BIOs, bound to their sockets.
    binder: TlsBinder,
    /// Whether the events come from processes or from a packet capture.
    origin: Origin,
    /// The bound on what the connections' decoding state holds together.
    memory: MemoryBudget,
}

impl Pipeline {
    /// A pipeline reading process facts from `procs` and converting times with `clock`.
    pub fn new(procs: Box<dyn ProcessInfo>, clock: Clock) -> Self {
        Pipeline {
            // Ignored connections hold no lookups: dropped first when the table is full.
            conns: ConnTable::new(|c| matches!(c.proto, Proto::Ignored), |c| c.held_bytes()),
            procs,
            clock,
            counters: DecodeCounters::default(),
            out: Vec::new(),
            out_conns: Vec::new(),
            policy: CapturePolicy::default(),
            exchanges: Exchanges::default(),
            last_tick_ns: 0,
            resolvers: ResolverList::builtin(),
            relay: RelayIndex::default(),
            binder: TlsBinder::default(),
            origin: Origin::Process,
            memory: MemoryBudget::default(),
        }
    }

    /// Bounds what the connections' decoding state holds together to `limit` bytes (see
    /// [`memory`]; [`memory::DEFAULT_BUDGET`] unless set).
    pub fn set_memory_budget(&mut self, limit: usize) {
        self.memory.limit = limit;
    }

    /// The memory budget, and the most the decoding state held at once so far.
    pub fn memory(&self) -> MemoryBudget {
        self.memory
    }

    /// What the connections' decoding state holds now.
    pub fn memory_held(&self) -> usize {
        self.conns.held()
    }

    /// The events come from a packet capture: records say that no process is known.
    pub fn set_origin(&mut self, origin: Origin) {
        self.origin = origin;
    }

    /// Applies `settings`.
    pub fn configure(&mut self, settings: Settings) {
        self.set_resolvers(settings.resolvers);
        self.set_memory_budget(settings.memory_budget);
    }

    /// Uses this list of well-known resolvers (built-in plus the user's) for opaque
    /// connections and the `resolver` field.
    pub fn set_resolvers(&mut self, resolvers: ResolverList) {
        self.resolvers = resolvers;
    }

    /// Process facts (the recorder asks for names of processes it writes).
    pub fn process_info(&mut self) -> &mut dyn ProcessInfo {
        self.procs.as_mut()
    }

    /// Counters so far.
    pub fn counters(&self) -> &DecodeCounters {
        &self.counters
    }

    /// Lookups completed since the last call.
    pub fn drain_lookups(&mut self) -> std::vec::Drain<'_, Box<Lookup>> {
        self.out.drain(..)
    }

    /// Records of DNS-carrying connections that ended since the last call.
    pub fn drain_connections(&mut self) -> std::vec::Drain<'_, ConnectionRecord> {
        self.out_conns.drain(..)
    }

    /// Lookups and connection records completed since the last call.
    #[allow(
        clippy::type_complexity,
        reason = "two drains of disjoint fields, named by their items"
    )]
    pub fn drain_records(
        &mut self,
    ) -> (
        std::vec::Drain<'_, Box<Lookup>>,
        std::vec::Drain<'_, ConnectionRecord>,
    ) {
        (self.out.drain(..), self.out_conns.drain(..))
    }

    /// Capture decisions made since the last call (to apply to the eBPF side).
    pub fn drain_decisions(&mut self) -> std::vec::Drain<'_, CaptureDecision> {
        self.policy.drain()
    }

    /// Handles one raw ring-buffer record (the live tracer's and a recording's encoding).
    pub fn handle_record(&mut self, raw: &[u8]) {
        if let Some(ev) = self.decode_record(raw) {
            self.handle_event(ev);
        }
    }

    /// Decodes one raw ring-buffer record, counting it (and it if it is malformed), for a
    /// caller that handles the event itself (the key-log decryption beside the pipeline).
    pub fn decode_record<'a>(&mut self, raw: &'a [u8]) -> Option<Event<'a>> {
        self.counters.events += 1;
        match kernel::decode(raw) {
            Ok(ev) => Some(ev),
            Err(_) => {
                self.counters.bad_events += 1;
                None
            }
        }
    }

    /// The socket `id` of process `pid` had its TLS decrypted with a key log: its plaintext
    /// was in reach, so it is not reported as an opaque connection (whatever it carried).
    pub fn socket_decrypted(&mut self, pid: u32, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(&ConnKey {
            pid,
            id,
            layer: Layer::Socket,
        }) {
            conn.tls.decrypted = true;
        }
    }

    /// What is known of the socket `id` of process `pid`, if it is tracked.
    pub fn socket_view(&self, pid: u32, id: ConnId) -> Option<SocketView> {
        let conn = self.conns.get(&ConnKey {
            pid,
            id,
            layer: Layer::Socket,
        })?;
        Some(SocketView {
            peer: conn.ends.peer,
            plaintext_seen: conn.tls.plaintext_seen,
            copied: conn.tls.copied,
            policy: conn.capture.decision(),
        })
    }

    /// Handles one event of any source.
    pub fn handle_event(&mut self, ev: Event<'_>) {
        let ts = ev.meta().ts_ns;
        if ts > self.last_tick_ns.saturating_add(1_000_000_000) {
            self.tick(ts);
        }
        match ev {
            Event::Data(chunk) => self.on_data(chunk),
            Event::Datagram(d) => self.on_datagram(d),
            Event::ConnBytes {
                meta,
                id,
                sent,
                received,
            } => self.on_counted(meta.pid, id, sent, received),
            Event::Conn(c) => self.on_open(c),
            Event::Close { meta, id } => self.on_close(meta, id),
            Event::Exec { meta } => self.on_exec(meta),
            Event::Exit { meta } => self.on_exit(meta),
            Event::TlsBind { meta, id, tls_obj } => {
                if let ConnId::Fd(fd) = id {
                    self.binder.bind(&meta, tls_obj, fd, false);
                    self.count_bindings();
                }
                self.on_tls_bind(meta.pid, id, tls_obj)
            }
        }
    }
}
