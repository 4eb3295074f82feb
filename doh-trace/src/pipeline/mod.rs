//! The userspace pipeline: ring-buffer records in, lookup records out.
//!
//! Keeps one [`Conn`] per (process, socket fd) — or per (process, TLS object) when the fd is
//! unknown — checks that each direction's chunks arrive without gaps, recognises the HTTP/2
//! client preface, and hands the bytes to [`doh_h2::H2Client`]. The same code runs live and on
//! recorded streams; only the [`ProcessInfo`] differs.

pub mod doh_h2;
mod reassembly;
mod sniff;

use std::{collections::HashMap, net::SocketAddr};

use crate::{
    clock::Clock,
    counters::DecodeCounters,
    dns, doh,
    event::{self, comm_str, DataChunk, Direction, Event},
    http2::{H2Error, PREFACE},
    lookup::{Endpoint, Lookup, Status},
    procinfo::ProcessInfo,
};
use doh_h2::{Finished, H2Client, Outcome, Seen};
use reassembly::CallSequence;
use sniff::{Sniffer, Verdict};

/// Identity of a traced connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnKey {
    /// Process and socket fd.
    Fd { pid: u32, fd: i32 },
    /// Process and TLS library object, when no fd was ever seen.
    TlsObject { pid: u32, obj: u64 },
}

impl ConnKey {
    fn pid(&self) -> u32 {
        match *self {
            ConnKey::Fd { pid, .. } | ConnKey::TlsObject { pid, .. } => pid,
        }
    }
}

/// What a connection's plaintext turned out to be.
enum Proto {
    /// Waiting for enough bytes to recognise the HTTP/2 preface.
    Sniffing(Sniffer),
    /// This process is the HTTP/2 client: decode DoH.
    H2Client(Box<H2Client>),
    /// Not decoded (server side, not HTTP/2, or failed); bytes are dropped on arrival.
    Ignored,
}

struct Conn {
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
    egress: CallSequence,
    ingress: CallSequence,
    proto: Proto,
    uid: u32,
    thread_comm: [u8; doh_trace_common::COMM_LEN],
}

impl Conn {
    /// Stops decoding: open exchanges end unanswered, later bytes are dropped on arrival.
    /// Returns false if decoding had already stopped.
    fn stop_decoding(&mut self, seen: Seen, finished: &mut Vec<Finished>) -> bool {
        if let Proto::H2Client(h2) = &mut self.proto {
            h2.close(seen, finished);
        }
        !matches!(
            std::mem::replace(&mut self.proto, Proto::Ignored),
            Proto::Ignored
        )
    }

    fn new(peer: Option<SocketAddr>) -> Self {
        Conn {
            peer,
            local: None,
            egress: CallSequence::default(),
            ingress: CallSequence::default(),
            proto: Proto::Sniffing(Sniffer::default()),
            uid: 0,
            thread_comm: [0; doh_trace_common::COMM_LEN],
        }
    }
}

/// Most connections tracked at once; beyond it the stalest is dropped.
pub const MAX_CONNS: usize = 65536;

/// Ring-buffer records → lookups.
pub struct Pipeline {
    conns: HashMap<ConnKey, Conn>,
    procs: Box<dyn ProcessInfo>,
    clock: Clock,
    counters: DecodeCounters,
    out: Vec<Lookup>,
    finished: Vec<Finished>,
}

impl Pipeline {
    /// A pipeline reading process facts from `procs` and converting times with `clock`.
    pub fn new(procs: Box<dyn ProcessInfo>, clock: Clock) -> Self {
        Pipeline {
            conns: HashMap::new(),
            procs,
            clock,
            counters: DecodeCounters::default(),
            out: Vec::new(),
            finished: Vec::new(),
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> &DecodeCounters {
        &self.counters
    }

    /// Lookups completed since the last call.
    pub fn drain_lookups(&mut self) -> std::vec::Drain<'_, Lookup> {
        self.out.drain(..)
    }

    /// Handles one raw ring-buffer record.
    pub fn handle_record(&mut self, raw: &[u8]) {
        self.counters.events += 1;
        match event::decode(raw) {
            Ok(ev) => self.handle_event(ev),
            Err(_) => self.counters.bad_events += 1,
        }
    }

    /// Handles one decoded event.
    pub fn handle_event(&mut self, ev: Event<'_>) {
        match ev {
            Event::Data(chunk) => self.on_data(chunk),
            Event::Conn(c) => {
                let key = ConnKey::Fd {
                    pid: c.meta.pid,
                    fd: c.fd,
                };
                // A new socket on a reused fd: whatever was there before has ended.
                self.end_conn(
                    key,
                    Seen {
                        ts_ns: c.meta.ts_ns,
                        tid: c.meta.tid,
                    },
                );
                self.make_room();
                self.conns.insert(key, Conn::new(Some(c.peer)));
            }
            Event::Close { meta, fd } => {
                self.end_conn(
                    ConnKey::Fd { pid: meta.pid, fd },
                    Seen {
                        ts_ns: meta.ts_ns,
                        tid: meta.tid,
                    },
                );
            }
            Event::Exit { meta } => {
                let keys: Vec<ConnKey> = self
                    .conns
                    .keys()
                    .filter(|k| k.pid() == meta.pid)
                    .copied()
                    .collect();
                for key in keys {
                    self.end_conn(
                        key,
                        Seen {
                            ts_ns: meta.ts_ns,
                            tid: meta.tid,
                        },
                    );
                }
                self.procs.forget(meta.pid);
            }
        }
    }

    fn make_room(&mut self) {
        if self.conns.len() >= MAX_CONNS {
            // Drop ignored connections first; they hold no lookups.
            self.conns.retain(|_, c| !matches!(c.proto, Proto::Ignored));
            if self.conns.len() >= MAX_CONNS {
                let key = *self.conns.keys().next().expect("non-empty");
                self.end_conn(key, Seen { ts_ns: 0, tid: 0 });
            }
        }
    }

    fn end_conn(&mut self, key: ConnKey, seen: Seen) {
        let Some(mut conn) = self.conns.remove(&key) else {
            return;
        };
        conn.stop_decoding(seen, &mut self.finished);
        self.flush_finished(key, &mut conn);
    }

    fn on_data(&mut self, chunk: DataChunk<'_>) {
        let pid = chunk.meta.pid;
        let key = if chunk.fd >= 0 {
            ConnKey::Fd { pid, fd: chunk.fd }
        } else {
            ConnKey::TlsObject {
                pid,
                obj: chunk.tls_obj,
            }
        };
        if !self.conns.contains_key(&key) {
            self.make_room();
        }
        let conn = self.conns.entry(key).or_insert_with(|| Conn::new(None));
        conn.uid = chunk.meta.uid;
        conn.thread_comm = chunk.comm;
        let seq = match chunk.direction {
            Direction::Egress => &mut conn.egress,
            Direction::Ingress => &mut conn.ingress,
        };
        let seen = Seen {
            ts_ns: chunk.meta.ts_ns,
            tid: chunk.meta.tid,
        };
        if !seq.accept(chunk.offset, chunk.bytes.len() as u32, chunk.total_len)
            && conn.stop_decoding(seen, &mut self.finished)
        {
            self.counters.gaps += 1;
        }
        let dir = chunk.direction;
        let bytes = chunk.bytes;
        let counters = &mut self.counters;
        let finished = &mut self.finished;
        match &mut conn.proto {
            Proto::Ignored => {}
            Proto::Sniffing(sniff) => match sniff.feed(dir, bytes) {
                Verdict::Undecided => {}
                Verdict::NotHttp2 => {
                    counters.no_preface_conns += 1;
                    conn.proto = Proto::Ignored;
                }
                Verdict::Server => {
                    counters.h2_server_conns += 1;
                    conn.proto = Proto::Ignored;
                }
                Verdict::Client { rest } => {
                    counters.h2_client_conns += 1;
                    let mut h2 = Box::new(H2Client::new());
                    let r = h2
                        .feed(dir, PREFACE, seen, counters, finished)
                        .and_then(|()| h2.feed(dir, &bytes[rest..], seen, counters, finished));
                    conn.proto = Proto::H2Client(h2);
                    if let ConnKey::Fd { fd, .. } = key {
                        // The connection is open right now: learn its addresses while we can.
                        if let Some(ends) = self.procs.socket_ends(pid, fd) {
                            conn.peer = conn.peer.or(Some(ends.remote));
                            conn.local = Some(ends.local);
                        }
                    }
                    if let Err(e) = r {
                        fail(conn, e, seen, counters, finished);
                    }
                }
            },
            Proto::H2Client(h2) => {
                if let Err(e) = h2.feed(dir, bytes, seen, counters, finished) {
                    fail(conn, e, seen, counters, finished);
                }
            }
        }
        if !self.finished.is_empty() {
            let mut conn = self.conns.remove(&key).expect("present");
            self.flush_finished(key, &mut conn);
            self.conns.insert(key, conn);
        }
    }

    /// Turns finished exchanges into lookup records.
    fn flush_finished(&mut self, key: ConnKey, conn: &mut Conn) {
        if self.finished.is_empty() {
            return;
        }
        let pid = key.pid();
        let comm = self
            .procs
            .leader_comm(pid)
            .unwrap_or_else(|| comm_str(&conn.thread_comm));
        for f in std::mem::take(&mut self.finished) {
            if let Some(lookup) = self.lookup(pid, &comm, conn, f) {
                self.counters.lookups += 1;
                self.out.push(lookup);
            }
        }
    }

    fn lookup(&mut self, pid: u32, comm: &str, conn: &Conn, f: Finished) -> Option<Lookup> {
        let s = &f.stream;
        if s.oversized {
            self.counters.oversized_bodies += 1;
        }
        let Ok(query) = dns::summarize(s.query()) else {
            self.counters.bad_queries += 1;
            return None;
        };
        let http_status = s.response.as_ref().and_then(|r| r.status_code());
        let mut rcode = None;
        let mut answers = Vec::new();
        let status = match f.outcome {
            Outcome::Reset => Status::Reset,
            Outcome::Unanswered => Status::Unanswered,
            Outcome::Answered => match http_status {
                Some(200..=299) => match dns::summarize(&s.answer) {
                    Ok(a) => {
                        rcode = Some(a.rcode);
                        answers = a.answers;
                        Status::Ok
                    }
                    Err(_) => {
                        self.counters.bad_answers += 1;
                        Status::MalformedAnswer
                    }
                },
                _ => Status::HttpError,
            },
        };
        let sent = s.sent.unwrap_or(s.started);
        let latency_ms = (f.outcome == Outcome::Answered)
            .then(|| f.ended.ts_ns.saturating_sub(sent.ts_ns) as f64 / 1e6);
        Some(Lookup {
            time: self.clock.rfc3339(f.ended.ts_ns),
            pid,
            tid: s.started.tid,
            uid: conn.uid,
            comm: comm.to_string(),
            transport: "doh",
            server: conn.peer.map(Endpoint::from),
            client: conn.local.map(Endpoint::from),
            authority: s.request.authority.clone(),
            url: doh::url(&s.request),
            method: s.request.method.clone().unwrap_or_default(),
            http_version: "h2",
            stream_id: s.stream_id,
            qname: query.qname,
            qtype: query.qtype,
            dns_id: query.id,
            rcode,
            answers,
            latency_ms,
            status,
            http_status,
        })
    }
}

/// Stops decoding a connection after a protocol error, counting why.
fn fail(
    conn: &mut Conn,
    e: H2Error,
    seen: Seen,
    counters: &mut DecodeCounters,
    finished: &mut Vec<Finished>,
) {
    match e {
        H2Error::Hpack(_) => counters.hpack_errors += 1,
        _ => counters.h2_errors += 1,
    }
    conn.stop_decoding(seen, finished);
}
