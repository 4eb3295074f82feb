//! Connections scripted as the kernel reports them: a connect, I/O calls of the traced process
//! (each delivered as `CHUNK_SIZE` chunks with consistent `offset`/`total_len`, or re-sliced
//! into separate smaller calls), time passing, close and exit. [`check`] runs a script at every
//! slicing and compares lookups, counters and capture decisions with what is expected.

use std::net::SocketAddr;

use doh_trace::{
    conn::policy::CaptureDecision,
    counters::DecodeCounters,
    lookup::Lookup,
    output::text::lookup_line,
    pipeline::Pipeline,
    source::{ConnId, ConnInfo, ConnKey, DataChunk, Direction, Event, Layer, Meta},
};
use doh_trace_common::{Source, CHUNK_SIZE, COMM_LEN};

use super::{expect::Expect, pipeline};

/// One thing that happens, in order.
#[derive(Debug, Clone)]
pub enum Step {
    /// A write call of the traced process.
    Send(Vec<u8>),
    /// A read call of the traced process.
    Recv(Vec<u8>),
    /// Time passes (ns) before the next step.
    Wait(u64),
    /// The traced process closes the socket.
    Close,
    /// The traced process exits.
    Exit,
    /// Another process exits (an event that only moves the pipeline's clock).
    Unrelated,
    /// `Pipeline::tick` at the current time.
    Tick,
}

/// A scripted connection of one process.
#[derive(Debug, Clone)]
pub struct Conv {
    pub pid: u32,
    pub fd: i32,
    pub comm: &'static str,
    pub source: Source,
    /// Peer reported by a connect event before the first step, if any.
    pub peer: Option<SocketAddr>,
    pub steps: Vec<Step>,
}

/// Nanoseconds between consecutive steps.
pub const STEP_NS: u64 = 1_000_000;
/// Timestamp of the first step.
pub const START_NS: u64 = 5_000_000_000;

impl Conv {
    pub fn new(pid: u32, fd: i32, comm: &'static str, source: Source) -> Conv {
        Conv {
            pid,
            fd,
            comm,
            source,
            peer: None,
            steps: Vec::new(),
        }
    }
    pub fn peer(mut self, peer: &str) -> Conv {
        self.peer = Some(peer.parse().unwrap());
        self
    }
    pub fn send(mut self, bytes: impl AsRef<[u8]>) -> Conv {
        self.steps.push(Step::Send(bytes.as_ref().to_vec()));
        self
    }
    pub fn recv(mut self, bytes: impl AsRef<[u8]>) -> Conv {
        self.steps.push(Step::Recv(bytes.as_ref().to_vec()));
        self
    }
    pub fn step(mut self, s: Step) -> Conv {
        self.steps.push(s);
        self
    }
    /// The capture key of this connection.
    pub fn key(&self) -> ConnKey {
        ConnKey {
            pid: self.pid,
            id: ConnId::Fd(self.fd),
            layer: if self.source.is_tls() {
                Layer::Tls
            } else {
                Layer::Socket
            },
        }
    }
    /// The capture decision `policy` for this connection.
    pub fn decision(&self, policy: u32) -> CaptureDecision {
        CaptureDecision {
            key: self.key(),
            policy,
        }
    }
    /// Timestamp of step `i` (steps are `STEP_NS` apart; `Wait` adds its time).
    pub fn ts_of(&self, i: usize) -> u64 {
        let mut ts = START_NS;
        for s in &self.steps[..i] {
            ts += match s {
                Step::Wait(ns) => *ns,
                _ => STEP_NS,
            };
        }
        ts
    }
}

/// How calls are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slicing {
    /// Each call whole (in `CHUNK_SIZE` chunks, as the eBPF side emits them).
    Whole,
    /// Each call re-sliced into separate calls of at most this many bytes.
    Calls(usize),
}

/// Whole calls, 1-byte calls, 7-byte calls.
pub const SLICINGS: [Slicing; 3] = [Slicing::Whole, Slicing::Calls(1), Slicing::Calls(7)];

fn comm_bytes(comm: &str) -> [u8; COMM_LEN] {
    let mut c = [0u8; COMM_LEN];
    let n = comm.len().min(COMM_LEN - 1);
    c[..n].copy_from_slice(&comm.as_bytes()[..n]);
    c
}

/// Feeds one call as kernel data events.
fn data_call(p: &mut Pipeline, conv: &Conv, dir: Direction, ts: u64, call: &[u8]) {
    let total = call.len() as u32;
    for (i, chunk) in call.chunks(CHUNK_SIZE).enumerate() {
        p.handle_event(Event::Data(DataChunk {
            meta: Meta {
                pid: conv.pid,
                tid: conv.pid + 1,
                uid: 1000,
                ts_ns: ts,
            },
            id: ConnId::Fd(conv.fd),
            layer: super::layer_of(conv.source),
            library: conv.source.library(),
            direction: dir,
            total_len: total,
            offset: (i * CHUNK_SIZE) as u32,
            comm: comm_bytes(conv.comm),
            bytes: chunk,
        }));
    }
}

/// Plays the steps of `convs` (one after the other, each with its own clock) into `p`; returns
/// the capture decisions, taken after every step as the live loop takes them after each pass
/// over the ring (a socket's decisions not taken before its close never reach the kernel).
pub fn play(p: &mut Pipeline, conv: &Conv, slicing: Slicing) -> Vec<CaptureDecision> {
    let mut decisions = Vec::new();
    let meta = |ts| Meta {
        pid: conv.pid,
        tid: conv.pid + 1,
        uid: 1000,
        ts_ns: ts,
    };
    if let Some(peer) = conv.peer {
        p.handle_event(Event::Conn(ConnInfo {
            meta: meta(START_NS - STEP_NS),
            id: ConnId::Fd(conv.fd),
            accepted: false,
            sock_type: doh_trace::source::SocketType::Stream,
            peer,
            comm: comm_bytes(conv.comm),
        }));
    }
    for (i, step) in conv.steps.iter().enumerate() {
        let ts = conv.ts_of(i);
        match step {
            Step::Send(b) | Step::Recv(b) => {
                let dir = if matches!(step, Step::Send(_)) {
                    Direction::Egress
                } else {
                    Direction::Ingress
                };
                match slicing {
                    Slicing::Whole => data_call(p, conv, dir, ts, b),
                    Slicing::Calls(n) => {
                        for piece in b.chunks(n) {
                            data_call(p, conv, dir, ts, piece);
                        }
                    }
                }
            }
            Step::Wait(_) => {}
            Step::Close => p.handle_event(Event::Close {
                meta: meta(ts),
                id: ConnId::Fd(conv.fd),
            }),
            Step::Exit => p.handle_event(Event::Exit { meta: meta(ts) }),
            Step::Unrelated => p.handle_event(Event::Exit {
                meta: Meta {
                    pid: 999_999,
                    tid: 999_999,
                    uid: 0,
                    ts_ns: ts,
                },
            }),
            Step::Tick => p.tick(ts),
        }
        decisions.extend(p.drain_decisions());
    }
    decisions
}

/// What one run produced.
#[derive(Debug)]
pub struct Run {
    pub lookups: Vec<Lookup>,
    pub counters: DecodeCounters,
    pub decisions: Vec<CaptureDecision>,
}

/// Plays `conv` into a fresh pipeline.
pub fn run(conv: &Conv, slicing: Slicing) -> Run {
    let mut p = pipeline();
    let mut decisions = play(&mut p, conv, slicing);
    decisions.extend(p.drain_decisions());
    Run {
        lookups: p.drain_lookups().map(|l| *l).collect(),
        counters: p.counters().clone(),
        decisions,
    }
}

/// Runs `conv` at every slicing in [`SLICINGS`]; lookups (in the order reported), counters
/// and decisions must be exactly as wanted. No field of any lookup, nor the counters or
/// decisions, may contain any of `secrets`.
pub fn check(
    conv: &Conv,
    want: &[Expect],
    counters: &DecodeCounters,
    decisions: &[CaptureDecision],
    secrets: &[&[u8]],
) -> Vec<Run> {
    let mut runs = Vec::new();
    for slicing in SLICINGS {
        let r = run(conv, slicing);
        let got: Vec<Expect> = r.lookups.iter().map(Expect::of).collect();
        assert_eq!(got, want, "lookups, {slicing:?}; counters {:?}", r.counters);
        assert_eq!(&r.counters, counters, "counters, {slicing:?}");
        assert_eq!(r.decisions, decisions, "capture decisions, {slicing:?}");
        assert_private(&r, secrets);
        runs.push(r);
    }
    runs
}

/// No output of the run contains any of `secrets`.
pub fn assert_private(r: &Run, secrets: &[&[u8]]) {
    let mut texts = vec![
        format!("{:?}", r.counters),
        r.counters.to_string(),
        format!("{:?}", r.decisions),
    ];
    for l in &r.lookups {
        texts.push(format!("{l:?}"));
        texts.push(serde_json::to_string(l).unwrap());
        texts.push(lookup_line(l, false));
    }
    for secret in secrets {
        assert!(!secret.is_empty());
        let s = String::from_utf8_lossy(secret);
        for t in &texts {
            assert!(
                !t.as_bytes().windows(secret.len()).any(|w| w == *secret),
                "output contains {s:?}: {t}"
            );
        }
    }
}
