//! The hostile-input harness: a counting global allocator and measurement windows (the
//! pipeline's heap growth must stay below [`BOUND`] while far more input is fed), kernel-shaped
//! input (calls of at most 64 KiB in 4 KiB chunks, as the eBPF side emits them, streamed
//! through one reused buffer), a deterministic PRNG, and the normal DoH connection whose
//! lookups must still be reported exactly beside every attack.
//!
//! Each hostile test binary installs [`Counting`] as its `#[global_allocator]`; tests share its
//! counters, so they run one at a time ([`serial`]).

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::{
        atomic::{AtomicUsize, Ordering::SeqCst},
        Mutex, MutexGuard,
    },
};

use doh_trace::{
    conn::policy::CaptureDecision,
    lookup::Lookup,
    pipeline::Pipeline,
    source::{ConnId, DataChunk, Direction, Event, Meta},
};
use doh_trace_common::{Source, CHUNK_SIZE, MAX_CHUNKS_PER_CALL};
use hickory_proto::rr::RecordType;

use super::{
    dns::query,
    exchange,
    expect::{summary, Expect},
    frames::*,
    Call, Req,
};

// ===== memory accounting =====

/// Counts the bytes held through the global allocator, and their peak.
pub struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = CURRENT.fetch_add(n, SeqCst) + n;
    PEAK.fetch_max(now, SeqCst);
}

fn shrank(n: usize) {
    CURRENT.fetch_sub(n, SeqCst);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

/// Largest growth of the heap allowed while an attack is fed.
pub const BOUND: usize = 8 << 20;

/// A measurement window: the heap's peak growth since [`Mem::start`].
pub struct Mem {
    base: usize,
}

impl Mem {
    pub fn start() -> Mem {
        let base = CURRENT.load(SeqCst);
        PEAK.store(base, SeqCst);
        Mem { base }
    }

    pub fn peak(&self) -> usize {
        PEAK.load(SeqCst).saturating_sub(self.base)
    }

    /// Asserts the peak stayed below [`BOUND`] while `fed` bytes (far more) went in.
    pub fn check(&self, what: &str, fed: u64) {
        let peak = self.peak();
        eprintln!(
            "{what}: fed {:.1} MiB, peak heap growth {:.1} KiB (bound {} MiB)",
            fed as f64 / (1 << 20) as f64,
            peak as f64 / 1024.0,
            BOUND >> 20
        );
        assert!(
            fed > 2 * BOUND as u64,
            "{what}: fed only {fed} bytes, not far more than the bound"
        );
        assert!(
            peak < BOUND,
            "{what}: peak heap growth {peak} bytes >= bound {BOUND}"
        );
    }
}

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time: the allocator's counters are global.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// ===== kernel-shaped input =====

pub const PID: u32 = 4242;
/// Largest call the eBPF side copies whole.
pub const MAX_CALL: usize = CHUNK_SIZE * MAX_CHUNKS_PER_CALL as usize;
pub const E: Direction = Direction::Egress;
pub const I: Direction = Direction::Ingress;

/// One side of the traced process: its socket fd and where the bytes come from.
#[derive(Debug, Clone, Copy)]
pub struct Side {
    pub pid: u32,
    pub fd: i32,
    pub source: Source,
}

pub const fn tls(fd: i32) -> Side {
    Side {
        pid: PID,
        fd,
        source: Source::OpenSsl,
    }
}

pub const NORMAL: Side = tls(7);

/// Feeds I/O calls as the kernel reports them, with one clock for all connections.
pub struct Wire {
    pub ts: u64,
    pub fed: u64,
    /// Capture decisions taken before each close (a closed socket's decisions not taken
    /// before its close never reach the kernel).
    pub decisions: Vec<CaptureDecision>,
}

impl Wire {
    pub fn new() -> Wire {
        Wire {
            ts: 5_000_000_000,
            fed: 0,
            decisions: Vec::new(),
        }
    }

    pub fn meta(&self, s: Side) -> Meta {
        Meta {
            pid: s.pid,
            tid: s.pid + 1,
            uid: 1000,
            ts_ns: self.ts,
        }
    }

    /// One I/O call (at most 64 KiB), in 4 KiB chunks with consistent offsets.
    pub fn call(&mut self, p: &mut Pipeline, s: Side, dir: Direction, bytes: &[u8]) {
        assert!(bytes.len() <= MAX_CALL && !bytes.is_empty());
        self.ts += 1000;
        self.fed += bytes.len() as u64;
        let meta = self.meta(s);
        for (i, chunk) in bytes.chunks(CHUNK_SIZE).enumerate() {
            p.handle_event(Event::Data(DataChunk {
                meta,
                id: ConnId::Fd(s.fd),
                layer: super::layer_of(s.source),
                library: s.source.library(),
                direction: dir,
                total_len: bytes.len() as u32,
                offset: (i * CHUNK_SIZE) as u32,
                comm: *b"hostile\0\0\0\0\0\0\0\0\0",
                bytes: chunk,
            }));
        }
    }

    /// Bytes of any length, as consecutive calls of at most 64 KiB.
    pub fn send(&mut self, p: &mut Pipeline, s: Side, dir: Direction, bytes: &[u8]) {
        for call in bytes.chunks(MAX_CALL) {
            self.call(p, s, dir, call);
        }
    }

    pub fn close(&mut self, p: &mut Pipeline, s: Side) {
        self.decisions.extend(p.drain_decisions());
        self.ts += 1000;
        p.handle_event(Event::Close {
            meta: self.meta(s),
            id: ConnId::Fd(s.fd),
        });
    }
}

/// Streams large inputs through one reused 64 KiB call buffer (nothing big is allocated).
pub struct Pump {
    buf: Vec<u8>,
    side: Side,
    dir: Direction,
}

impl Pump {
    pub fn new(side: Side, dir: Direction) -> Pump {
        Pump {
            buf: Vec::with_capacity(MAX_CALL),
            side,
            dir,
        }
    }

    pub fn put(&mut self, w: &mut Wire, p: &mut Pipeline, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let n = (MAX_CALL - self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.buf.len() == MAX_CALL {
                self.flush(w, p);
            }
        }
    }

    /// `n` bytes made by `gen` (called on each piece of the call buffer).
    pub fn fill(
        &mut self,
        w: &mut Wire,
        p: &mut Pipeline,
        mut n: u64,
        gen: &mut dyn FnMut(&mut [u8]),
    ) {
        while n > 0 {
            let start = self.buf.len();
            let k = ((MAX_CALL - start) as u64).min(n) as usize;
            self.buf.resize(start + k, 0);
            gen(&mut self.buf[start..]);
            n -= k as u64;
            if self.buf.len() == MAX_CALL {
                self.flush(w, p);
            }
        }
    }

    pub fn flush(&mut self, w: &mut Wire, p: &mut Pipeline) {
        if !self.buf.is_empty() {
            w.call(p, self.side, self.dir, &self.buf);
            self.buf.clear();
        }
    }
}

pub fn zeros(b: &mut [u8]) {
    b.fill(0);
}

/// A deterministic PRNG (SplitMix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn fill(&mut self, b: &mut [u8]) {
        for c in b.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ===== the normal connection =====

/// A real `h2` DoH exchange on [`NORMAL`], fed a call at a time between attack steps.
pub struct Normal {
    pub calls: Vec<Call>,
    pub next: usize,
}

impl Normal {
    pub fn new() -> Normal {
        let calls = exchange(
            vec![
                Req::post(query("a.normal.test", RecordType::A, 0x0a01)),
                Req::get(&query("b.normal.test", RecordType::AAAA, 0x0a02)),
                Req::post(query("nx.normal.test", RecordType::A, 0x0a03)),
            ],
            200,
        );
        Normal { calls, next: 0 }
    }

    pub fn step(&mut self, w: &mut Wire, p: &mut Pipeline) {
        if let Some(c) = self.calls.get(self.next) {
            w.send(p, NORMAL, c.dir, &c.bytes);
            self.next += 1;
        }
    }

    pub fn finish(&mut self, w: &mut Wire, p: &mut Pipeline) {
        while self.next < self.calls.len() {
            self.step(w, p);
        }
    }
}

/// Checks the normal connection's lookups; returns the others.
pub fn split_normal(lookups: Vec<Lookup>) -> Vec<Lookup> {
    let (normal, other): (Vec<Lookup>, Vec<Lookup>) = lookups
        .into_iter()
        .partition(|l| l.name().ends_with(".normal.test"));
    assert_eq!(
        summary(&normal),
        vec![
            Expect::brief("a.normal.test", "A", "ok", &["192.0.2.10"]),
            Expect::brief("b.normal.test", "AAAA", "ok", &["2001:db8::10"]),
            Expect::brief("nx.normal.test", "A", "ok", &[]),
        ],
        "the normal connection's lookups"
    );
    for l in &normal {
        assert_eq!(l.pid, PID);
        assert!(l.rcode.is_some());
        assert_eq!(l.authority.as_deref(), Some("doh.test:8443"));
    }
    other
}

/// (fd, policy) of each decision, sorted.
pub fn decided(ds: &[CaptureDecision]) -> Vec<(i32, u32)> {
    let mut v: Vec<(i32, u32)> = ds
        .iter()
        .map(|d| match d.key.id {
            ConnId::Fd(fd) => (fd, d.policy),
            ConnId::TlsObject(_) | ConnId::Flow(_) => panic!("no fd in {d:?}"),
        })
        .collect();
    v.sort();
    v
}

/// Everything the pipeline produced, after the normal connection finished.
pub fn outputs(p: &mut Pipeline, w: &mut Wire) -> (Vec<Lookup>, Vec<(i32, u32)>) {
    let lookups = split_normal(p.drain_lookups().map(|l| *l).collect());
    let mut ds: Vec<CaptureDecision> = std::mem::take(&mut w.decisions);
    ds.extend(p.drain_decisions());
    (lookups, decided(&ds))
}

// ===== crafted HTTP/2 =====

/// Both peers allow the largest frames HTTP/2 has (SETTINGS_MAX_FRAME_SIZE = 2^24-1), so
/// frames above the default 16 KiB are legal on this connection.
pub const BIG_FRAMES: &[(u16, u32)] = &[(
    doh_trace::proto::http2::frame::SETTINGS_MAX_FRAME_SIZE,
    (1 << 24) - 1,
)];

/// HEADERS (END_HEADERS) + DATA(END_STREAM) of a DoH POST ([`plain_post_block`]).
pub fn post_frames(stream: u32, q: &[u8]) -> Vec<u8> {
    encode_all(&message_frames(stream, &plain_post_block(), q))
}

/// HEADERS (END_HEADERS) + DATA(END_STREAM) of a 200 DoH answer ([`plain_response_block`]).
pub fn answer_frames(stream: u32, a: &[u8]) -> Vec<u8> {
    encode_all(&message_frames(stream, &plain_response_block(), a))
}

/// Cut points every `every` octets of a `len`-octet block.
pub fn cuts(len: usize, every: usize) -> Vec<usize> {
    (every..len).step_by(every).collect()
}
