//! Live TLS decryption with a key log (`doh-trace --keylog`): the socket bytes of DoH/DoT
//! candidates whose plaintext no hook delivers (Chromium's static BoringSSL, Java, rustls,
//! any unhooked stack that honours `SSLKEYLOGFILE`), decrypted beside the pipeline.
//!
//! It sits between the ring buffer and the [`Pipeline`]. Socket bytes go to the pipeline as
//! they are; a connection whose first bytes are a client's TLS handshake record also goes
//! through a [`TlsDecryptor`], whose plaintext enters the pipeline as the connection's TLS
//! layer with `tls_library: "keylog"` — as a hook's would, so the decoders, the pairing and the
//! records are the same. Which connections, and how the kernel copies them:
//!
//! - The pipeline reads the ClientHello and decides the socket's capture (count its bytes if
//!   it is an opaque encrypted-DNS candidate, else skip it). [`LiveDecryption::kernel_decisions`]
//!   sees that decision before the kernel does: a candidate (the pipeline's, or ALPN `h2` to
//!   port 443) is copied whole instead while it is decrypted; anything else is left alone.
//! - A hook's plaintext on the same socket (seen before any application data is decrypted:
//!   a hooked SSL_write copies its plaintext before the write that sends it) hands the
//!   connection to the hook; the pipeline also keeps one source per connection's plaintext.
//! - Decryption stops — and the kernel is given the pipeline's own decision back — when the
//!   plaintext is found not to be DNS, when no key came for [`KEY_PATIENCE_NS`] or
//!   [`MAX_UNDECRYPTED`] bytes, when bytes were lost, or when the TLS could not be decrypted.
//!   A connection never decrypted is reported as the opaque record it would have been.
//!
//! Keys arrive on their own (a FIFO or a growing file, [`crate::source::keylog_file`]); records
//! waiting for their key are decrypted when it comes.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    fmt,
};

use doh_trace_common::{
    CAPTURE_COUNT, CAPTURE_SOCK_FULL, CAPTURE_SOCK_SKIP, CAPTURE_TLS_SKIP, COMM_LEN,
};

use super::{memory::MemoryBudget, Pipeline};
use crate::{
    conn::{
        policy::{self, CaptureDecision},
        sequence::CallSequence,
    },
    proto::tls::decrypt::{DecryptStatus, KeyLog, KeyLogStats, Plaintext, TlsDecryptor},
    source::{ConnId, ConnInfo, ConnKey, DataChunk, Direction, Event, Layer, Meta},
};

/// A connection whose key has not come after this long is left undecrypted.
pub const KEY_PATIENCE_NS: u64 = 10_000_000_000;
/// A connection closed while waiting for its key waits this much longer.
pub const KEY_AFTER_CLOSE_NS: u64 = 2_000_000_000;
/// Nor after this many of its bytes without plaintext.
pub const MAX_UNDECRYPTED: u64 = 256 * 1024;
/// Most connections decrypted at once; beyond it new ones are left undecrypted (counted).
pub const MAX_DECRYPTING: usize = 4096;
/// Connections that failed to decrypt described on stderr; the rest are only counted.
const FAILURES_SHOWN: u64 = 8;

/// What the live key-log decryption did, by connection.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeylogCounters {
    /// Connections whose socket bytes were decrypted (DoH/DoT candidates no hook covered).
    pub candidates: u64,
    /// Of those, connections with plaintext decrypted.
    pub decrypted: u64,
    /// Left to a hook that delivered their plaintext.
    pub hooked: u64,
    /// No key came in time.
    pub no_key: u64,
    /// A cipher suite not implemented.
    pub unsupported_cipher: u64,
    /// Their handshake was not seen, or bytes of them were lost.
    pub incomplete: u64,
    /// Records that did not decrypt or parse.
    pub failed: u64,
    /// Those by reason ([`DecryptStatus::as_str`]).
    pub failed_by: BTreeMap<&'static str, u64>,
    /// Decrypted in part: a later record failed (counted in `decrypted`, not in `failed`).
    pub failed_after_data: u64,
    /// Decrypted, and not DNS: no longer copied.
    pub not_dns: u64,
    /// Decrypted, and closed without application data (a preconnection).
    pub empty: u64,
    /// Not decrypted because [`MAX_DECRYPTING`] were.
    pub over_limit: u64,
    /// Decryption stopped because the connections waiting for keys held more than the
    /// memory budget together (see [`LiveDecryption::set_memory_budget`]), and their bytes.
    pub over_budget: u64,
    pub over_budget_bytes: u64,
}

impl KeylogCounters {
    /// What went wrong, for the status lines.
    pub fn problems(&self) -> Vec<(&'static str, u64)> {
        [
            ("key-log connections without their key", self.no_key),
            (
                "key-log connections with an unsupported cipher",
                self.unsupported_cipher,
            ),
            ("key-log connections incomplete", self.incomplete),
            ("key-log connections that failed to decrypt", self.failed),
            (
                "key-log connections that failed after their first data",
                self.failed_after_data,
            ),
            ("key-log connections over the limit", self.over_limit),
            (
                "key-log connections dropped over the memory budget",
                self.over_budget,
            ),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
    }
}

impl fmt::Display for KeylogCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} candidate connections, {} decrypted ({} without data), {} left to hooks, {} \
             not DNS; not decrypted: {} no key, {} unsupported cipher, {} incomplete, {} \
             failed",
            self.candidates,
            self.decrypted,
            self.empty,
            self.hooked,
            self.not_dns,
            self.no_key,
            self.unsupported_cipher,
            self.incomplete,
            self.failed,
        )?;
        if !self.failed_by.is_empty() {
            let why: Vec<String> = self
                .failed_by
                .iter()
                .map(|(reason, n)| format!("{n} {reason}"))
                .collect();
            write!(f, " ({})", why.join(", "))?;
        }
        write!(f, ", {} over the limit", self.over_limit)?;
        if self.over_budget > 0 {
            write!(
                f,
                ", {} over the memory budget ({} bytes)",
                self.over_budget, self.over_budget_bytes
            )?;
        }
        if self.failed_after_data > 0 {
            write!(
                f,
                "; {} decrypted in part (a later record failed)",
                self.failed_after_data
            )?;
        }
        Ok(())
    }
}

/// One connection being decrypted.
struct Decrypting {
    dec: Box<TlsDecryptor>,
    /// Egress, ingress.
    calls: [CallSequence; 2],
    /// The pipeline's decision for the socket, given back to the kernel when decryption
    /// stops; None until the pipeline has read the ClientHello.
    socket_policy: Option<u32>,
    /// Plaintext went to the pipeline.
    emitted: bool,
    /// Its records decrypted (the key fit), told to the pipeline.
    reached: bool,
    /// Bytes fed, and when the first were.
    fed: u64,
    first_ns: u64,
    /// The last chunk's facts: plaintext decrypted when its key arrives is dated by them.
    meta: Meta,
    comm: [u8; COMM_LEN],
}

/// How a connection's decryption ended.
enum Ended {
    /// Its plaintext was not DNS (the socket is skipped).
    NotDns,
    /// A hook delivers its plaintext.
    Hooked,
    /// Its bytes waiting for a key were dropped over the memory budget.
    OverBudget,
    /// Decryption stopped with this status.
    Status(DecryptStatus),
}

/// A close (or a process's exit) held back until a key comes.
#[derive(Debug, Clone, Copy)]
struct Held {
    meta: Meta,
    /// The connection closed; None: the process exited.
    close: Option<ConnId>,
    deadline_ns: u64,
}

/// The live key-log decryption beside a pipeline.
#[derive(Default)]
pub struct LiveDecryption {
    /// Closes and exits waiting for keys, in arrival order.
    held: VecDeque<Held>,
    keys: KeyLog,
    conns: HashMap<(u32, ConnId), Decrypting>,
    counters: KeylogCounters,
    /// Decisions of its own (decryptions that stopped), for the kernel.
    pending: Vec<CaptureDecision>,
    plaintext: Vec<Plaintext>,
    /// What the decryptors may hold together, and the most they held at a check.
    memory: MemoryBudget,
    /// Bytes fed since what the decryptors hold was last summed.
    fed_since_check: usize,
}

impl LiveDecryption {
    pub fn counters(&self) -> &KeylogCounters {
        &self.counters
    }

    /// Bounds what the decryptors hold together (records waiting for their key, mostly) to
    /// `limit` bytes: beyond it, the largest processes' largest connections stop being
    /// decrypted (counted). Their buffers grow by at most what is fed (and a capacity's
    /// doubling), so the sum is taken after every 1/64 of the budget fed, not per event.
    pub fn set_memory_budget(&mut self, limit: usize) {
        self.memory.limit = limit;
    }

    /// The memory budget, and the most the decryptors held at a check.
    pub fn memory(&self) -> MemoryBudget {
        self.memory
    }

    /// What the key log's lines were.
    pub fn key_stats(&self) -> KeyLogStats {
        self.keys.stats()
    }

    /// Connections being decrypted now.
    pub fn decrypting(&self) -> usize {
        self.conns.len()
    }

    /// The next piece of the key log (split anywhere); connections waiting for a key that
    /// came are decrypted now.
    pub fn add_keys(&mut self, pipeline: &mut Pipeline, chunk: &[u8]) {
        // A TLS 1.3 connection's secrets come line by line: any new one may open records.
        let before = self.keys.stats().added;
        self.keys.add_chunk(chunk);
        if self.keys.stats().added == before {
            return;
        }
        let waiting: Vec<(u32, ConnId)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.dec.status() == DecryptStatus::NoKey)
            .map(|(k, _)| *k)
            .collect();
        for k in waiting {
            self.feed(pipeline, k, true, &[]);
        }
        self.release(
            pipeline,
            |_, c| c.is_none_or(|c| c.dec.status() != DecryptStatus::NoKey),
            None,
        );
    }

    /// Handles one raw ring-buffer record: the pipeline's, and decryption of socket bytes.
    pub fn handle_record(&mut self, pipeline: &mut Pipeline, raw: &[u8]) {
        if let Some(ev) = pipeline.decode_record(raw) {
            self.handle_event(pipeline, ev);
        }
    }

    /// Handles one event.
    pub fn handle_event(&mut self, pipeline: &mut Pipeline, ev: Event<'_>) {
        // The descriptor of a held close used again (a new socket's connect, bytes, datagram
        // or TLS binding): the old connection ends first.
        let reused = match &ev {
            Event::Data(d) => Some(d.id),
            Event::Conn(c) => Some(c.id),
            Event::Datagram(d) => Some(d.id),
            Event::TlsBind { id, .. } => Some(*id),
            _ => None,
        };
        // A socket closed, or its descriptor taken by a new one: decisions of ours for the old
        // socket not yet given to the kernel would be the new socket's (the kernel forgot the
        // old one's state at its close).
        if let Event::Close { meta, id } | Event::Conn(ConnInfo { meta, id, .. }) = &ev {
            policy::forget_socket(&mut self.pending, meta.pid, *id);
        }
        if let Some(id) = reused {
            let pid = ev.meta().pid;
            if self.is_held(pid, id) {
                self.release(
                    pipeline,
                    |h, _| h.meta.pid == pid && h.close == Some(id),
                    None,
                );
            }
        }
        match ev {
            Event::Data(d) if d.layer == Layer::Socket => {
                pipeline.handle_event(Event::Data(d.clone()));
                self.socket_bytes(pipeline, &d);
            }
            Event::Close { meta, id } => {
                let k = (meta.pid, id);
                let waiting = self.conns.get(&k).is_some_and(|c| {
                    c.dec.status() == DecryptStatus::NoKey
                        // Decrypted in part (one direction's key came, the other's not yet:
                        // a key log is written line by line); or a candidate; or one that
                        // would be once the pipeline's decision, made in this same pass,
                        // reaches `kernel_decisions`.
                        && (c.emitted
                            || c.socket_policy.is_some()
                            || pipeline
                                .socket_view(k.0, k.1)
                                .and_then(|v| v.policy)
                                .is_some_and(|policy| is_candidate(pipeline, k, c, policy)))
                });
                if waiting {
                    // Closed before its key was read (a client writes the key log as it
                    // handshakes, but the FIFO is read on its own): the close waits a little.
                    // A short connection (Chromium's) opens, says hello and closes within one
                    // pass of the ring, before its candidacy is settled: it waits too.
                    self.held.push_back(Held {
                        meta,
                        close: Some(id),
                        deadline_ns: meta.ts_ns.saturating_add(KEY_AFTER_CLOSE_NS),
                    });
                    return;
                }
                self.close(pipeline, meta, id);
            }
            Event::Exit { meta } => {
                if self.held.iter().any(|h| h.meta.pid == meta.pid) {
                    // After its connections' held closes.
                    let deadline_ns = self
                        .held
                        .iter()
                        .filter(|h| h.meta.pid == meta.pid)
                        .map(|h| h.deadline_ns)
                        .max()
                        .unwrap_or(meta.ts_ns);
                    self.held.push_back(Held {
                        meta,
                        close: None,
                        deadline_ns,
                    });
                    return;
                }
                self.exit(pipeline, meta);
            }
            Event::Data(d) => {
                // A hook's plaintext of a connection being decrypted: the hook has it.
                let k = (d.meta.pid, d.id);
                let hooked = self.conns.get(&k).is_some_and(|c| !c.emitted);
                pipeline.handle_event(Event::Data(d));
                if hooked {
                    self.stop(k, Ended::Hooked);
                }
            }
            ev => pipeline.handle_event(ev),
        }
    }

    /// Gives up on connections whose key has not come (called every second).
    pub fn tick(&mut self, pipeline: &mut Pipeline, now_ns: u64) {
        self.release(pipeline, |h, _| h.deadline_ns <= now_ns, Some(now_ns));
        let late: Vec<(u32, ConnId)> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.reached && now_ns.saturating_sub(c.first_ns) > KEY_PATIENCE_NS)
            .map(|(k, _)| *k)
            .collect();
        for k in late {
            self.stop(k, Ended::Status(DecryptStatus::NoKey));
        }
    }

    /// The pipeline's capture decisions as the kernel must apply them: a candidate being
    /// decrypted is copied whole instead of counted; a decrypted connection found not to be
    /// DNS has its socket skipped; decryptions that stopped give the kernel the pipeline's
    /// decision back.
    pub fn kernel_decisions(&mut self, pipeline: &Pipeline, decisions: &mut Vec<CaptureDecision>) {
        for d in decisions.iter_mut() {
            let k = (d.key.pid, d.key.id);
            let Some(c) = self.conns.get_mut(&k) else {
                continue;
            };
            match d.key.layer {
                Layer::Socket if c.socket_policy.is_none() => {
                    if is_candidate(pipeline, k, c, d.policy) {
                        self.counters.candidates += 1;
                        c.socket_policy = Some(d.policy);
                        d.policy = CAPTURE_SOCK_FULL;
                    } else {
                        // Not a candidate: the pipeline's decision stands.
                        self.conns.remove(&k);
                    }
                }
                Layer::Socket => {
                    // Decrypting: the socket keeps coming; this is what it gets afterwards.
                    c.socket_policy = Some(d.policy);
                    d.policy = CAPTURE_SOCK_FULL;
                }
                Layer::Tls if c.emitted && d.policy & CAPTURE_TLS_SKIP != 0 => {
                    if let Some(c) = self.conns.remove(&k) {
                        self.ended(Ended::NotDns, &c);
                    }
                    *d = CaptureDecision {
                        key: ConnKey {
                            layer: Layer::Socket,
                            ..d.key
                        },
                        policy: CAPTURE_SOCK_SKIP,
                    };
                }
                Layer::Tls => {}
            }
        }
        decisions.append(&mut self.pending);
    }

    fn is_held(&self, pid: u32, id: ConnId) -> bool {
        !self.held.is_empty()
            && self
                .held
                .iter()
                .any(|h| h.meta.pid == pid && h.close == Some(id))
    }

    /// Lets the held closes that `ready` picks (given the held close and its connection) go to
    /// the pipeline, in order; then each held exit whose process has no close held any more, or
    /// whose deadline has passed by `now_ns` (ending its process's closes first).
    fn release(
        &mut self,
        pipeline: &mut Pipeline,
        ready: impl Fn(&Held, Option<&Decrypting>) -> bool,
        now_ns: Option<u64>,
    ) {
        if self.held.is_empty() {
            return;
        }
        let mut kept = VecDeque::new();
        for h in std::mem::take(&mut self.held) {
            match h.close {
                Some(id) if ready(&h, self.conns.get(&(h.meta.pid, id))) => {
                    self.close(pipeline, h.meta, id)
                }
                _ => kept.push_back(h),
            }
        }
        let mut left: VecDeque<Held> = VecDeque::new();
        while let Some(h) = kept.pop_front() {
            if h.close.is_none() {
                let pid = h.meta.pid;
                let due = now_ns.is_some_and(|now| h.deadline_ns <= now);
                let mine = |k: &Held| k.meta.pid == pid && k.close.is_some();
                if due || !left.iter().chain(kept.iter()).any(mine) {
                    let closes: Vec<Held> = left
                        .iter()
                        .chain(kept.iter())
                        .filter(|k| mine(k))
                        .copied()
                        .collect();
                    left.retain(|k| !mine(k));
                    kept.retain(|k| !mine(k));
                    for k in closes {
                        if let Some(id) = k.close {
                            self.close(pipeline, k.meta, id);
                        }
                    }
                    self.exit(pipeline, h.meta);
                    continue;
                }
            }
            left.push_back(h);
        }
        self.held = left;
    }

    /// A connection's close, to the decryption and then to the pipeline.
    fn close(&mut self, pipeline: &mut Pipeline, meta: Meta, id: ConnId) {
        if let Some(mut c) = self.conns.remove(&(meta.pid, id)) {
            c.dec.close();
            let how = Self::how_it_ended(pipeline, meta.pid, id, &c);
            self.ended(how, &c);
        }
        pipeline.handle_event(Event::Close { meta, id });
    }

    /// How a connection that ends now ended: given to a hook if one delivered its plaintext
    /// (its socket's ciphertext then stops coming), else its decryption status.
    fn how_it_ended(pipeline: &Pipeline, pid: u32, id: ConnId, c: &Decrypting) -> Ended {
        let hooked = !c.emitted
            && pipeline
                .socket_view(pid, id)
                .is_some_and(|v| v.plaintext_seen);
        match hooked {
            true => Ended::Hooked,
            false => Ended::Status(c.dec.status()),
        }
    }

    /// A process's exit, to the decryption and then to the pipeline.
    fn exit(&mut self, pipeline: &mut Pipeline, meta: Meta) {
        let gone: Vec<(u32, ConnId)> = self
            .conns
            .keys()
            .filter(|(pid, _)| *pid == meta.pid)
            .copied()
            .collect();
        for k in gone {
            if let Some(c) = self.conns.remove(&k) {
                let how = Self::how_it_ended(pipeline, k.0, k.1, &c);
                self.ended(how, &c);
            }
        }
        pipeline.handle_event(Event::Exit { meta });
    }

    /// Socket bytes the pipeline has just handled.
    fn socket_bytes(&mut self, pipeline: &mut Pipeline, d: &DataChunk<'_>) {
        let k = (d.meta.pid, d.id);
        let egress = d.direction == Direction::Egress;
        if !self.conns.contains_key(&k) {
            // A connection's very first bytes, a client's TLS handshake record: decrypted
            // while the pipeline reads its ClientHello and decides.
            let first = pipeline
                .socket_view(d.meta.pid, d.id)
                .is_some_and(|v| v.copied == (d.bytes.len() as u64, 0));
            if !(egress && d.offset == 0 && first && d.bytes.first() == Some(&0x16)) {
                return;
            }
            if self.conns.len() >= MAX_DECRYPTING {
                self.counters.over_limit += 1;
                return;
            }
            self.conns.insert(
                k,
                Decrypting {
                    dec: Box::default(),
                    calls: Default::default(),
                    socket_policy: None,
                    emitted: false,
                    reached: false,
                    fed: 0,
                    first_ns: d.meta.ts_ns,
                    meta: d.meta,
                    comm: d.comm,
                },
            );
        }
        let Some(c) = self.conns.get_mut(&k) else {
            return;
        };
        if !c.emitted
            && pipeline
                .socket_view(d.meta.pid, d.id)
                .is_some_and(|v| v.plaintext_seen)
        {
            self.stop(k, Ended::Hooked);
            return;
        }
        let len = d.bytes.len() as u32;
        if !c.calls[usize::from(!egress)].accept(d.offset, len, d.total_len) {
            self.stop(k, Ended::Status(DecryptStatus::MissingHandshake));
            return;
        }
        c.meta = d.meta;
        c.comm = d.comm;
        self.feed(pipeline, k, egress, d.bytes);
    }

    /// Feeds one direction's next bytes (none: only retries records waiting for a key) and
    /// hands the plaintext to the pipeline.
    fn feed(&mut self, pipeline: &mut Pipeline, k: (u32, ConnId), egress: bool, bytes: &[u8]) {
        let Some(c) = self.conns.get_mut(&k) else {
            return;
        };
        c.fed = c.fed.saturating_add(bytes.len() as u64);
        c.dec.feed(egress, bytes, &self.keys, &mut self.plaintext);
        self.fed_since_check += bytes.len();
        let (meta, comm) = (c.meta, c.comm);
        if !self.plaintext.is_empty() {
            c.emitted = true;
        }
        let stalled = !c.reached && !c.emitted && c.fed > MAX_UNDECRYPTED;
        let status = c.dec.status();
        if status == DecryptStatus::Decrypting && !c.reached {
            c.reached = true;
            pipeline.socket_decrypted(k.0, k.1);
        }
        for p in std::mem::take(&mut self.plaintext) {
            pipeline.handle_event(Event::Data(plaintext_chunk(meta, k.1, comm, &p)));
        }
        match status {
            DecryptStatus::NotTls
            | DecryptStatus::UnsupportedCipher(_)
            | DecryptStatus::MissingHandshake
            | DecryptStatus::Failed(_) => self.stop(k, Ended::Status(status)),
            _ if stalled => self.stop(k, Ended::Status(DecryptStatus::NoKey)),
            _ => {}
        }
        if self.fed_since_check >= self.memory.limit / 64 {
            self.check_memory();
        }
    }

    /// Sums what the decryptors hold; beyond the budget, stops the largest connections of
    /// the processes holding most (see [`MemoryBudget::to_drop`]).
    fn check_memory(&mut self) {
        self.fed_since_check = 0;
        let held: usize = self.conns.values().map(|c| c.dec.held_bytes()).sum();
        if !self.memory.over(held) {
            return;
        }
        let states = self.conns.iter().map(|(k, c)| {
            let key = ConnKey {
                pid: k.0,
                id: k.1,
                layer: Layer::Socket,
            };
            (key, c.dec.held_bytes())
        });
        for (key, bytes) in self.memory.to_drop(states, held) {
            self.counters.over_budget += 1;
            self.counters.over_budget_bytes += bytes as u64;
            self.stop((key.pid, key.id), Ended::OverBudget);
        }
    }

    /// Ends a connection's decryption: counted, and its socket given the pipeline's decision.
    fn stop(&mut self, k: (u32, ConnId), how: Ended) {
        let Some(c) = self.conns.remove(&k) else {
            return;
        };
        // A socket whose close is held is closed already: nothing to tell the kernel.
        if let Some(policy) = c.socket_policy.filter(|_| !self.is_held(k.0, k.1)) {
            self.pending.push(CaptureDecision {
                key: ConnKey {
                    pid: k.0,
                    id: k.1,
                    layer: Layer::Socket,
                },
                policy,
            });
        }
        self.ended(how, &c);
    }

    /// Counts how a candidate's decryption ended (other connections were never counted).
    fn ended(&mut self, how: Ended, conn: &Decrypting) {
        if conn.socket_policy.is_none() {
            return;
        }
        if let Ended::Status(status @ (DecryptStatus::Failed(_) | DecryptStatus::NotTls)) = how {
            let shown = self.counters.failed + self.counters.failed_after_data;
            if conn.emitted {
                self.counters.failed_after_data += 1;
            }
            if shown < FAILURES_SHOWN {
                // Counted below; the first few also say where (no byte of the connection).
                eprintln!(
                    "doh-trace: key log: could not decrypt {}a connection of pid {} ({}, {}): {}",
                    if conn.emitted { "the rest of " } else { "" },
                    conn.meta.pid,
                    conn.dec.sni().unwrap_or("no server name"),
                    status.as_str(),
                    conn.dec.progress()
                );
            }
        }
        let emitted = conn.emitted;
        let c = &mut self.counters;
        if emitted || conn.reached && !matches!(how, Ended::Hooked) {
            c.decrypted += 1;
        }
        match how {
            Ended::NotDns => c.not_dns += 1,
            Ended::Hooked => c.hooked += 1,
            // Counted where it was decided.
            Ended::OverBudget => {}
            Ended::Status(_) if emitted => {}
            Ended::Status(DecryptStatus::Decrypting) => c.empty += 1,
            Ended::Status(DecryptStatus::UnsupportedCipher(_)) => c.unsupported_cipher += 1,
            Ended::Status(DecryptStatus::MissingHandshake) => c.incomplete += 1,
            Ended::Status(status @ DecryptStatus::Failed(_)) => {
                c.failed += 1;
                *c.failed_by.entry(status.as_str()).or_default() += 1;
            }
            Ended::Status(DecryptStatus::NoKey) => c.no_key += 1,
            // Closed before its handshake reached encrypted records.
            Ended::Status(DecryptStatus::WaitingForHandshake) => c.incomplete += 1,
            // Its first record looked like TLS and the rest did not parse.
            Ended::Status(DecryptStatus::NotTls) => {
                c.failed += 1;
                *c.failed_by.entry("not_tls").or_default() += 1;
            }
        }
    }
}

/// Whether a connection being decrypted, whose socket the pipeline decided `policy` for, is a
/// candidate: counted as an opaque encrypted-DNS candidate, or HTTP/2 to port 443 (a browser's
/// DoH resolver need not be a listed one).
fn is_candidate(pipeline: &Pipeline, k: (u32, ConnId), c: &Decrypting, policy: u32) -> bool {
    let h2_https = c
        .dec
        .client_hello()
        .is_some_and(|h| h.alpn.iter().any(|a| a == "h2"))
        && pipeline
            .socket_view(k.0, k.1)
            .and_then(|v| v.peer)
            .is_some_and(|p| p.port() == 443);
    policy & CAPTURE_COUNT != 0 || h2_https
}

/// Decrypted application data of connection `id`, as the TLS layer's bytes.
pub(crate) fn plaintext_chunk(
    meta: Meta,
    id: ConnId,
    comm: [u8; COMM_LEN],
    p: &Plaintext,
) -> DataChunk<'_> {
    let len = p.bytes.len().min(u32::MAX as usize);
    DataChunk {
        meta,
        id,
        layer: Layer::Tls,
        library: Some("keylog"),
        direction: if p.from_client {
            Direction::Egress
        } else {
            Direction::Ingress
        },
        total_len: len as u32,
        offset: 0,
        comm,
        bytes: &p.bytes[..len],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{ConnInfo, SocketType};
    use crate::{lookup::resolvers::ResolverList, pipeline::capture::capture_pipeline};

    macro_rules! fixture {
        ($name:literal) => {
            (
                include_str!(concat!("../../tests/fixtures/tls/", $name, ".trace")),
                include_str!(concat!("../../tests/fixtures/tls/", $name, ".keys")),
            )
        };
    }

    const PID: u32 = 4242;
    const FD: ConnId = ConnId::Fd(7);

    fn meta(ts_ns: u64) -> Meta {
        Meta {
            pid: PID,
            tid: PID,
            uid: 1000,
            ts_ns,
        }
    }

    /// A real TLS 1.3 connection (OpenSSL `s_client`, ALPN h2, to a DoT port) as the syscall
    /// hooks deliver it: its socket, then each chunk on the wire in order.
    fn events(trace: &str) -> Vec<(bool, Vec<u8>)> {
        trace
            .lines()
            .map(|l| {
                let (dir, hex) = l.split_once(' ').unwrap();
                let bytes = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect();
                (dir == "c", bytes)
            })
            .collect()
    }

    fn open(d: &mut LiveDecryption, p: &mut Pipeline) {
        d.handle_event(
            p,
            Event::Conn(ConnInfo {
                meta: meta(1),
                id: FD,
                accepted: false,
                sock_type: SocketType::Stream,
                peer: "127.0.0.1:853".parse().unwrap(),
                comm: [0; COMM_LEN],
            }),
        );
    }

    fn socket_chunk(d: &mut LiveDecryption, p: &mut Pipeline, i: usize, c: bool, b: &[u8]) {
        d.handle_event(
            p,
            Event::Data(DataChunk {
                meta: meta(10 + i as u64),
                id: FD,
                layer: Layer::Socket,
                library: None,
                direction: if c {
                    Direction::Egress
                } else {
                    Direction::Ingress
                },
                total_len: b.len() as u32,
                offset: 0,
                comm: [0; COMM_LEN],
                bytes: b,
            }),
        );
    }

    fn decisions(d: &mut LiveDecryption, p: &mut Pipeline) -> Vec<CaptureDecision> {
        let mut out: Vec<CaptureDecision> = p.drain_decisions().collect();
        d.kernel_decisions(p, &mut out);
        out
    }

    fn socket(policy: u32) -> CaptureDecision {
        CaptureDecision {
            key: ConnKey {
                pid: PID,
                id: FD,
                layer: Layer::Socket,
            },
            policy,
        }
    }

    #[test]
    fn a_candidate_is_copied_whole_decrypted_when_its_key_comes_and_dropped_when_not_dns() {
        let (trace, keys) = fixture!("tls13-aes128gcm");
        let mut p = capture_pipeline(ResolverList::builtin());
        let mut d = LiveDecryption::default();
        open(&mut d, &mut p);
        for (i, (c, b)) in events(trace).iter().enumerate() {
            socket_chunk(&mut d, &mut p, i, *c, b);
        }
        // The pipeline would count the DoT candidate's bytes; while it is decrypted the
        // kernel copies it whole.
        assert_eq!(decisions(&mut d, &mut p), [socket(CAPTURE_SOCK_FULL)]);
        assert_eq!(d.counters().candidates, 1);
        assert_eq!(d.decrypting(), 1, "waiting for its key");
        // The key comes after the records (a FIFO is read on its own): they are decrypted now.
        // The plaintext (`hello over tls`) is not DNS: the socket is skipped.
        d.add_keys(&mut p, keys.as_bytes());
        assert_eq!(decisions(&mut d, &mut p), [socket(CAPTURE_SOCK_SKIP)]);
        assert_eq!(d.decrypting(), 0);
        let c = d.counters();
        assert_eq!((c.decrypted, c.not_dns, c.no_key), (1, 1, 0), "{c}");
        assert_eq!(
            p.counters().undecoded_conns,
            1,
            "the plaintext reached the pipeline"
        );
        assert_eq!(p.counters().tls_source_conflicts, 0);
    }

    #[test]
    fn a_hooked_connection_is_left_to_its_hook() {
        let (trace, keys) = fixture!("tls13-aes128gcm");
        let mut p = capture_pipeline(ResolverList::builtin());
        let mut d = LiveDecryption::default();
        d.add_keys(&mut p, keys.as_bytes());
        open(&mut d, &mut p);
        let mut hooked = false;
        let mut got = Vec::new();
        for (i, (c, b)) in events(trace).iter().enumerate() {
            if *c && b.first() == Some(&0x17) && !hooked {
                // SSL_write's plaintext, copied by its uprobe before the write that sends it.
                hooked = true;
                d.handle_event(
                    &mut p,
                    Event::Data(DataChunk {
                        meta: meta(10 + i as u64),
                        id: FD,
                        layer: Layer::Tls,
                        library: Some("openssl"),
                        direction: Direction::Egress,
                        total_len: 27,
                        offset: 0,
                        comm: [0; COMM_LEN],
                        bytes: b"hello over tls\nsecond line\n",
                    }),
                );
            }
            socket_chunk(&mut d, &mut p, i, *c, b);
            // The live loop applies decisions once per pass over the ring; say, each chunk.
            got.extend(decisions(&mut d, &mut p));
        }
        // Copied whole while it was a candidate, then given the pipeline's count-only policy
        // back; the hook's plaintext was classified (not DNS: its TLS layer is skipped).
        assert!(got.contains(&socket(CAPTURE_SOCK_FULL)), "{got:?}");
        assert_eq!(
            got.last(),
            Some(&socket(CAPTURE_SOCK_SKIP | CAPTURE_COUNT)),
            "{got:?}"
        );
        let c = d.counters();
        assert_eq!((c.hooked, c.decrypted), (1, 0), "{c}");
        assert_eq!(
            p.counters().tls_source_conflicts,
            0,
            "nothing decrypted twice"
        );
        assert_eq!(p.counters().undecoded_conns, 1, "one TLS layer: the hook's");
    }

    /// Records waiting for keys that never come, on twelve connections of one process: past
    /// the budget the largest connections stop being decrypted (counted, their socket given
    /// the pipeline's decision back) and the smallest go on waiting.
    #[test]
    fn records_waiting_for_keys_are_dropped_over_the_memory_budget_largest_first() {
        let (trace, _) = fixture!("tls13-aes128gcm");
        let mut p = capture_pipeline(ResolverList::builtin());
        let mut d = LiveDecryption::default();
        let budget = 1 << 20;
        d.set_memory_budget(budget);
        let chunk = |fd: i32, i: usize, c: bool, b: &[u8]| {
            let direction = if c {
                Direction::Egress
            } else {
                Direction::Ingress
            };
            let bytes: Vec<u8> = b.to_vec();
            (fd, i, direction, bytes)
        };
        // A 16 KiB application-data record from the server, for no key that will come.
        let record = [&[0x17, 0x03, 0x03, 0x40, 0x00][..], &[0u8; 16384]].concat();
        let mut fed = Vec::new();
        for j in 1..=12 {
            let fd = 100 + j;
            for (i, (c, b)) in events(trace).iter().enumerate() {
                fed.push(chunk(fd, i, *c, b));
            }
            for _ in 0..j {
                fed.push(chunk(fd, 99, false, &record));
            }
        }
        let mut opened = std::collections::HashSet::new();
        for (fd, i, direction, bytes) in &fed {
            let id = ConnId::Fd(*fd);
            if opened.insert(*fd) {
                d.handle_event(
                    &mut p,
                    Event::Conn(ConnInfo {
                        meta: meta(1),
                        id,
                        accepted: false,
                        sock_type: SocketType::Stream,
                        peer: "127.0.0.1:853".parse().unwrap(),
                        comm: [0; COMM_LEN],
                    }),
                );
            }
            d.handle_event(
                &mut p,
                Event::Data(DataChunk {
                    meta: meta(10 + *i as u64),
                    id,
                    layer: Layer::Socket,
                    library: None,
                    direction: *direction,
                    total_len: bytes.len() as u32,
                    offset: 0,
                    comm: [0; COMM_LEN],
                    bytes,
                }),
            );
            decisions(&mut d, &mut p);
        }
        let c = d.counters().clone();
        assert_eq!(c.over_budget, 3, "{c}");
        assert!(c.over_budget_bytes > 256 * 1024, "{c}");
        assert!(d.memory().peak > budget, "{:?}", d.memory());
        let held: usize = d.conns.values().map(|c| c.dec.held_bytes()).sum();
        assert!(held <= budget, "{held}");
        assert_eq!(c.no_key, 0, "none stalled: {c}");
        // Fed one after the other, each larger than the last: once the budget is passed,
        // each new connection is the largest, and is dropped when it passes it again; the
        // last one fits in what the drops made room for.
        let mut left: Vec<i32> = d
            .conns
            .keys()
            .map(|(_, id)| match id {
                ConnId::Fd(fd) => *fd,
                _ => unreachable!(),
            })
            .collect();
        left.sort();
        assert_eq!(left, [101, 102, 103, 104, 105, 106, 107, 108, 112], "{c}");
        assert_eq!(d.decrypting() as u64 + c.over_budget, 12, "{c}");
        assert!(
            c.problems().contains(&(
                "key-log connections dropped over the memory budget",
                c.over_budget
            )),
            "{c}"
        );
    }

    #[test]
    fn a_key_that_never_comes_gives_the_socket_back_to_counting() {
        let (trace, _) = fixture!("tls12-aes128gcm");
        let mut p = capture_pipeline(ResolverList::builtin());
        let mut d = LiveDecryption::default();
        open(&mut d, &mut p);
        for (i, (c, b)) in events(trace).iter().enumerate() {
            socket_chunk(&mut d, &mut p, i, *c, b);
        }
        assert_eq!(decisions(&mut d, &mut p), [socket(CAPTURE_SOCK_FULL)]);
        d.tick(&mut p, KEY_PATIENCE_NS / 2);
        assert_eq!(d.decrypting(), 1, "still patient");
        d.tick(&mut p, KEY_PATIENCE_NS + 100);
        assert_eq!(d.decrypting(), 0);
        assert_eq!(
            decisions(&mut d, &mut p),
            [socket(CAPTURE_SOCK_SKIP | CAPTURE_COUNT)]
        );
        assert_eq!(d.counters().no_key, 1);
    }

    #[test]
    fn a_close_and_an_exit_wait_for_a_key_still_to_come() {
        let (trace, keys) = fixture!("tls13-aes128gcm");
        let mut p = capture_pipeline(ResolverList::builtin());
        let mut d = LiveDecryption::default();
        open(&mut d, &mut p);
        for (i, (c, b)) in events(trace).iter().enumerate() {
            socket_chunk(&mut d, &mut p, i, *c, b);
            decisions(&mut d, &mut p);
        }
        // The client is done and gone before its key log line is read.
        d.handle_event(
            &mut p,
            Event::Close {
                meta: meta(100),
                id: FD,
            },
        );
        d.handle_event(&mut p, Event::Exit { meta: meta(101) });
        assert_eq!(p.counters().undecoded_conns, 0);
        d.add_keys(&mut p, keys.as_bytes());
        let c = d.counters();
        assert_eq!((c.decrypted, c.no_key), (1, 0), "{c}");
        assert_eq!(p.counters().undecoded_conns, 1, "decrypted after its close");
        assert_eq!(d.decrypting(), 0);
        assert!(d.held.is_empty(), "the close and then the exit went on");

        // Without the key, the close goes on at its deadline: counted, never decrypted.
        let mut p = capture_pipeline(ResolverList::builtin());
        let mut d = LiveDecryption::default();
        open(&mut d, &mut p);
        for (i, (c, b)) in events(trace).iter().enumerate() {
            socket_chunk(&mut d, &mut p, i, *c, b);
            decisions(&mut d, &mut p);
        }
        d.handle_event(
            &mut p,
            Event::Close {
                meta: meta(100),
                id: FD,
            },
        );
        d.tick(&mut p, 100 + KEY_AFTER_CLOSE_NS / 2);
        assert_eq!(d.held.len(), 1);
        d.tick(&mut p, 100 + KEY_AFTER_CLOSE_NS);
        assert!(d.held.is_empty());
        assert_eq!(d.counters().no_key, 1);
    }

    #[test]
    fn a_close_waits_for_the_key_of_the_direction_still_locked() {
        // The client's secrets have been read, the server's last line not yet: the request is
        // decrypted, the response waits — and so does the close (else the answer is lost).
        let (trace, keys) = fixture!("tls13-aes128gcm");
        let (server_app, rest): (Vec<&str>, Vec<&str>) = keys
            .lines()
            .partition(|l| l.starts_with("SERVER_TRAFFIC_SECRET_0"));
        let mut p = capture_pipeline(ResolverList::builtin());
        let mut d = LiveDecryption::default();
        open(&mut d, &mut p);
        for (i, (c, b)) in events(trace).iter().enumerate() {
            socket_chunk(&mut d, &mut p, i, *c, b);
            decisions(&mut d, &mut p);
        }
        d.add_keys(&mut p, format!("{}\n", rest.join("\n")).as_bytes());
        assert_eq!(d.decrypting(), 1);
        d.handle_event(
            &mut p,
            Event::Close {
                meta: meta(100),
                id: FD,
            },
        );
        assert_eq!(d.held.len(), 1, "the close waits for the server's key");
        assert_eq!(d.decrypting(), 1);
        d.add_keys(&mut p, format!("{}\n", server_app[0]).as_bytes());
        assert!(d.held.is_empty(), "the close went on");
        assert_eq!(d.decrypting(), 0);
        let c = d.counters();
        assert_eq!((c.decrypted, c.no_key, c.failed), (1, 0, 0), "{c}");
    }

    #[test]
    fn a_connection_opened_and_closed_within_one_pass_waits_for_its_key() {
        // Chromium's short connections: open, handshake and close all in one pass over the
        // ring, so the close comes before `kernel_decisions` has made it a candidate.
        let (trace, keys) = fixture!("tls13-aes128gcm");
        let mut p = capture_pipeline(ResolverList::builtin());
        let mut d = LiveDecryption::default();
        open(&mut d, &mut p);
        for (i, (c, b)) in events(trace).iter().enumerate() {
            socket_chunk(&mut d, &mut p, i, *c, b);
        }
        d.handle_event(
            &mut p,
            Event::Close {
                meta: meta(100),
                id: FD,
            },
        );
        assert_eq!(d.held.len(), 1, "the close waits");
        // The end of the pass: the connection is a candidate (the kernel's entry for the fd
        // is gone with its close; the decision costs nothing).
        decisions(&mut d, &mut p);
        assert_eq!(d.counters().candidates, 1);
        d.add_keys(&mut p, keys.as_bytes());
        let c = d.counters();
        assert_eq!((c.decrypted, c.no_key), (1, 0), "{c}");
        assert_eq!(p.counters().undecoded_conns, 1, "decrypted after its close");
        assert!(d.held.is_empty());
        assert_eq!(
            p.counters().opaque_conns,
            0,
            "not reported opaque: its plaintext was decoded"
        );
    }
}
