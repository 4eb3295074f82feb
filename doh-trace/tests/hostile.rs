//! Hostile input, replayed through the whole pipeline without root: every test drives one
//! `Pipeline` with kernel-shaped data events (calls of at most 64 KiB in 4 KiB chunks, as the
//! eBPF side emits them) of an attacking connection, and in the same pipeline a normal DoH
//! connection of a real `h2` client and server on another fd, whose lookups must still be
//! reported exactly. The pipeline's memory growth is measured with a counting global allocator
//! and must stay below [`BOUND`] while far more input than that is fed.
//!
//! Tests share the allocator's counters, so they run one at a time ([`serial`]).

mod support;

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::{
        atomic::{AtomicUsize, Ordering::SeqCst},
        Mutex, MutexGuard,
    },
    time::Instant,
};

use doh_trace::{
    conn::policy::CaptureDecision,
    lookup::Lookup,
    pipeline::Pipeline,
    source::{ConnId, DataChunk, Direction, Event, Meta},
};
use doh_trace_common::{
    Source, CAPTURE_TLS_FULL, CAPTURE_TLS_SKIP, CHUNK_SIZE, DATA_EVENT_HEADER_SIZE,
    MAX_CHUNKS_PER_CALL,
};
use hickory_proto::{
    op::{Message, MessageType, OpCode},
    rr::{rdata, RData, Record, RecordType},
};
use support::{frames::*, *};

// ===== memory accounting =====

/// Counts the bytes held through the global allocator, and their peak.
struct Counting;

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

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Largest growth of the heap allowed while an attack is fed.
const BOUND: usize = 8 << 20;

/// A measurement window: the heap's peak growth since [`Mem::start`].
struct Mem {
    base: usize,
}

impl Mem {
    fn start() -> Mem {
        let base = CURRENT.load(SeqCst);
        PEAK.store(base, SeqCst);
        Mem { base }
    }

    fn peak(&self) -> usize {
        PEAK.load(SeqCst).saturating_sub(self.base)
    }

    /// Asserts the peak stayed below [`BOUND`] while `fed` bytes (far more) went in.
    fn check(&self, what: &str, fed: u64) {
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
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// ===== kernel-shaped input =====

const PID: u32 = 4242;
/// Largest call the eBPF side copies whole.
const MAX_CALL: usize = CHUNK_SIZE * MAX_CHUNKS_PER_CALL as usize;
const E: Direction = Direction::Egress;
const I: Direction = Direction::Ingress;

/// One side of the traced process: its socket fd and where the bytes come from.
#[derive(Debug, Clone, Copy)]
struct Side {
    pid: u32,
    fd: i32,
    source: Source,
}

const fn tls(fd: i32) -> Side {
    Side {
        pid: PID,
        fd,
        source: Source::OpenSsl,
    }
}

const NORMAL: Side = tls(7);

/// Feeds I/O calls as the kernel reports them, with one clock for all connections.
struct Wire {
    ts: u64,
    fed: u64,
}

impl Wire {
    fn new() -> Wire {
        Wire {
            ts: 5_000_000_000,
            fed: 0,
        }
    }

    fn meta(&self, s: Side) -> Meta {
        Meta {
            pid: s.pid,
            tid: s.pid + 1,
            uid: 1000,
            ts_ns: self.ts,
        }
    }

    /// One I/O call (at most 64 KiB), in 4 KiB chunks with consistent offsets.
    fn call(&mut self, p: &mut Pipeline, s: Side, dir: Direction, bytes: &[u8]) {
        assert!(bytes.len() <= MAX_CALL && !bytes.is_empty());
        self.ts += 1000;
        self.fed += bytes.len() as u64;
        let meta = self.meta(s);
        for (i, chunk) in bytes.chunks(CHUNK_SIZE).enumerate() {
            p.handle_event(Event::Data(DataChunk {
                meta,
                id: ConnId::Fd(s.fd),
                layer: support::layer_of(s.source),
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
    fn send(&mut self, p: &mut Pipeline, s: Side, dir: Direction, bytes: &[u8]) {
        for call in bytes.chunks(MAX_CALL) {
            self.call(p, s, dir, call);
        }
    }

    fn close(&mut self, p: &mut Pipeline, s: Side) {
        self.ts += 1000;
        p.handle_event(Event::Close {
            meta: self.meta(s),
            id: ConnId::Fd(s.fd),
        });
    }
}

/// Streams large inputs through one reused 64 KiB call buffer (nothing big is allocated).
struct Pump {
    buf: Vec<u8>,
    side: Side,
    dir: Direction,
}

impl Pump {
    fn new(side: Side, dir: Direction) -> Pump {
        Pump {
            buf: Vec::with_capacity(MAX_CALL),
            side,
            dir,
        }
    }

    fn put(&mut self, w: &mut Wire, p: &mut Pipeline, mut bytes: &[u8]) {
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
    fn fill(&mut self, w: &mut Wire, p: &mut Pipeline, mut n: u64, gen: &mut dyn FnMut(&mut [u8])) {
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

    fn flush(&mut self, w: &mut Wire, p: &mut Pipeline) {
        if !self.buf.is_empty() {
            w.call(p, self.side, self.dir, &self.buf);
            self.buf.clear();
        }
    }
}

fn zeros(b: &mut [u8]) {
    b.fill(0);
}

/// A deterministic PRNG (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill(&mut self, b: &mut [u8]) {
        for c in b.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ===== the normal connection =====

/// A real `h2` DoH exchange on [`NORMAL`], fed a call at a time between attack steps.
struct Normal {
    calls: Vec<Call>,
    next: usize,
}

impl Normal {
    fn new() -> Normal {
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

    fn step(&mut self, w: &mut Wire, p: &mut Pipeline) {
        if let Some(c) = self.calls.get(self.next) {
            w.send(p, NORMAL, c.dir, &c.bytes);
            self.next += 1;
        }
    }

    fn finish(&mut self, w: &mut Wire, p: &mut Pipeline) {
        while self.next < self.calls.len() {
            self.step(w, p);
        }
    }
}

type Sum = (String, String, String, Vec<String>);

fn s(qname: &str, qtype: &str, status: &str, answers: &[&str]) -> Sum {
    (
        qname.into(),
        qtype.into(),
        status.into(),
        answers.iter().map(|a| a.to_string()).collect(),
    )
}

/// Checks the normal connection's lookups; returns the others.
fn split_normal(lookups: Vec<Lookup>) -> Vec<Lookup> {
    let (normal, other): (Vec<Lookup>, Vec<Lookup>) = lookups
        .into_iter()
        .partition(|l| l.name().ends_with(".normal.test"));
    assert_eq!(
        summary(&normal),
        vec![
            s("a.normal.test", "A", "ok", &["192.0.2.10"]),
            s("b.normal.test", "AAAA", "ok", &["2001:db8::10"]),
            s("nx.normal.test", "A", "ok", &[]),
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
fn decided(ds: &[CaptureDecision]) -> Vec<(i32, u32)> {
    let mut v: Vec<(i32, u32)> = ds
        .iter()
        .map(|d| match d.key.id {
            ConnId::Fd(fd) => (fd, d.policy),
            ConnId::TlsObject(_) => panic!("no fd in {d:?}"),
        })
        .collect();
    v.sort();
    v
}

/// Everything the pipeline produced, after the normal connection finished.
fn outputs(p: &mut Pipeline) -> (Vec<Lookup>, Vec<(i32, u32)>) {
    let lookups = split_normal(p.drain_lookups().map(|l| *l).collect());
    let ds: Vec<CaptureDecision> = p.drain_decisions().collect();
    (lookups, decided(&ds))
}

// ===== crafted HTTP/2 =====

fn client_start() -> Vec<u8> {
    client_start_with(&[])
}

fn client_start_with(params: &[(u16, u32)]) -> Vec<u8> {
    let mut b = PREFACE.to_vec();
    b.extend(settings(params).encode());
    b
}

/// Both peers allow the largest frames HTTP/2 has (SETTINGS_MAX_FRAME_SIZE = 2^24-1), so
/// frames above the default 16 KiB are legal on this connection.
const BIG_FRAMES: &[(u16, u32)] = &[(
    doh_trace::proto::http2::frame::SETTINGS_MAX_FRAME_SIZE,
    (1 << 24) - 1,
)];

fn server_start(params: &[(u16, u32)]) -> Vec<u8> {
    encode_all(&[settings(params), settings_ack()])
}

/// A DoH POST request head, never Huffman-coded, nothing indexed.
fn post_block() -> Vec<u8> {
    [
        hp_indexed(st::METHOD_POST),
        hp_indexed(st::SCHEME_HTTPS),
        hp_not_indexed(st::PATH_ROOT, b"/dns-query"),
        hp_not_indexed(st::AUTHORITY, b"doh.test"),
        hp_not_indexed(st::CONTENT_TYPE, b"application/dns-message"),
    ]
    .concat()
}

fn response_block() -> Vec<u8> {
    [
        hp_indexed(st::STATUS_200),
        hp_not_indexed(st::CONTENT_TYPE, b"application/dns-message"),
    ]
    .concat()
}

/// HEADERS (END_HEADERS) + DATA(END_STREAM) of a DoH POST.
fn post_frames(stream: u32, q: &[u8]) -> Vec<u8> {
    let mut f = header_frames(stream, &post_block(), &[], HeadersOpts::default());
    f.push(data(stream, q, true));
    encode_all(&f)
}

fn answer_frames(stream: u32, a: &[u8]) -> Vec<u8> {
    let mut f = header_frames(stream, &response_block(), &[], HeadersOpts::default());
    f.push(data(stream, a, true));
    encode_all(&f)
}

/// A frame head alone.
fn head(len: u32, kind: u8, flags: u8, stream: u32) -> [u8; 9] {
    let l = len.to_be_bytes();
    let s = stream.to_be_bytes();
    [l[1], l[2], l[3], kind, flags, s[0], s[1], s[2], s[3]]
}

fn cuts(len: usize, every: usize) -> Vec<usize> {
    (every..len).step_by(every).collect()
}

// ===== DNS =====

/// An answer to `q` with one A record `ip`.
fn answer_ip(q: &[u8], ip: [u8; 4]) -> Vec<u8> {
    let q = Message::from_vec(q).unwrap();
    let mut m = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = true;
    let question = q.queries[0].clone();
    m.add_answer(Record::from_rdata(
        question.name().clone(),
        300,
        RData::A(rdata::A::new(ip[0], ip[1], ip[2], ip[3])),
    ));
    m.add_query(question);
    m.to_vec().unwrap()
}

fn dns_header(id: u16, flags: u16, qd: u16, an: u16) -> Vec<u8> {
    [id, flags, qd, an, 0, 0]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
}

fn labels(name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in name.split('.') {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

fn ptr(offset: usize) -> [u8; 2] {
    assert!(offset < 0x4000);
    [0xc0 | (offset >> 8) as u8, offset as u8]
}

/// Type A, class IN.
const A_IN: [u8; 4] = [0, 1, 0, 1];

/// A record's fixed part after its name: type, class IN, TTL 300, rdlength.
fn rr_fixed(rtype: u16, rdlen: u16) -> Vec<u8> {
    let mut v = rtype.to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 1, 0, 0, 1, 0x2c]);
    v.extend_from_slice(&rdlen.to_be_bytes());
    v
}

// ===== 1. HPACK bomb =====

#[test]
fn hpack_bomb_decodes_in_bounded_memory_and_size_updates_beyond_the_allowed_are_counted() {
    let _serial = serial();
    let mut normal = Normal::new();
    let bomb = tls(9);
    let over_default = tls(10);
    let over_settings = tls(11);

    // The table set to the 64 KiB the server allowed, filled by one 65,498-byte entry, which
    // every block then references 190,000 times: ~12 GB of header fields per 256 KiB block.
    let value = vec![b'b'; 65536 - 32 - 6];
    let refs = 190_000;
    let first_block = [
        hp_size_update(65536),
        hp_incremental_new(b"x-bomb", &value),
        post_block(),
        vec![0xbe; refs], // indexed 62: the newest dynamic entry
    ]
    .concat();
    let next_block = [post_block(), vec![0xbe; refs]].concat();
    assert!(first_block.len() <= 256 * 1024);
    let blocks: u32 = 128;
    let mut attack = Vec::new();
    for i in 0..blocks {
        let stream = 2 * i + 1;
        let block = if i == 0 { &first_block } else { &next_block };
        let q = query(&format!("bomb{i}.attack.test"), RecordType::A, i as u16);
        let mut out = encode_all(&header_frames(
            stream,
            block,
            &cuts(block.len(), 16384),
            HeadersOpts::default(),
        ));
        out.extend(data(stream, &q, true).encode());
        attack.push((out, answer_frames(stream, &answer(&q))));
    }
    let decoded = (refs * (6 + value.len())) as u64 * u64::from(blocks);
    // Size updates beyond what the receiving peer allowed (default 4096; 8192 by SETTINGS).
    let over = |size: usize, stream: u32| {
        let q = query("over.attack.test", RecordType::A, 7);
        let block = [hp_size_update(size), post_block()].concat();
        let mut out = encode_all(&header_frames(stream, &block, &[], HeadersOpts::default()));
        out.extend(data(stream, &q, true).encode());
        (out, answer_frames(stream, &answer(&q)))
    };
    let (over_default_req, over_default_resp) = over(1 << 20, 1);
    let (over_settings_req, over_settings_resp) = over(8193, 1);
    let later_q = query("later.attack.test", RecordType::A, 8);

    let mut p = pipeline();
    let mut w = Wire::new();
    let mem = Mem::start();
    let t = Instant::now();
    w.send(&mut p, bomb, E, &client_start());
    w.send(
        &mut p,
        bomb,
        I,
        &server_start(&[(SETTINGS_HEADER_TABLE_SIZE, 65536)]),
    );
    for (req, resp) in &attack {
        w.send(&mut p, bomb, E, req);
        w.send(&mut p, bomb, I, resp);
        normal.step(&mut w, &mut p);
    }
    let bomb_time = t.elapsed();

    w.send(&mut p, over_default, E, &client_start());
    w.send(&mut p, over_default, I, &server_start(&[]));
    w.send(&mut p, over_default, E, &over_default_req);
    w.send(&mut p, over_default, I, &over_default_resp);
    w.send(&mut p, over_default, E, &post_frames(3, &later_q));
    w.send(
        &mut p,
        over_default,
        I,
        &answer_frames(3, &answer(&later_q)),
    );

    w.send(&mut p, over_settings, E, &client_start());
    w.send(
        &mut p,
        over_settings,
        I,
        &server_start(&[(SETTINGS_HEADER_TABLE_SIZE, 8192)]),
    );
    w.send(&mut p, over_settings, E, &over_settings_req);
    w.send(&mut p, over_settings, I, &over_settings_resp);
    normal.finish(&mut w, &mut p);
    mem.check(
        &format!(
            "HPACK bomb ({:.0} GiB of header fields decoded in {bomb_time:?})",
            decoded as f64 / (1u64 << 30) as f64
        ),
        w.fed,
    );

    let c = p.counters().clone();
    let (lookups, decisions) = outputs(&mut p);
    let want: Vec<Sum> = {
        let mut v: Vec<Sum> = (0..blocks)
            .map(|i| s(&format!("bomb{i}.attack.test"), "A", "ok", &["192.0.2.10"]))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        summary(&lookups),
        want,
        "every bomb stream is still a lookup"
    );
    assert_eq!(
        c.hpack_errors, 2,
        "two size updates beyond the allowed: {c:?}"
    );
    assert_eq!(c.h2_errors, 0, "{c:?}");
    assert_eq!(c.h2_client_conns, 4, "{c:?}");
    assert_eq!(c.lookups, u64::from(blocks) + 3, "{c:?}");
    assert_eq!(
        decisions,
        vec![(7, CAPTURE_TLS_FULL), (9, CAPTURE_TLS_FULL)],
        "the failed connections were never classified"
    );
}

// ===== 2. endless CONTINUATION =====

#[test]
fn endless_continuation_stops_at_the_header_block_limit() {
    let _serial = serial();
    let mut normal = Normal::new();
    let grow = tls(9);
    let huge_frame = tls(10);
    let empty_flood = tls(11);

    let opening = encode_all(&[Frame::new(HEADERS, 0, 1, post_block())]);
    let cont = Frame::new(CONTINUATION, 0, 1, vec![0x40; 16384]).encode();
    // 1,000,000 empty CONTINUATIONs, ~64 KiB of them per call.
    let empty = Frame::new(CONTINUATION, 0, 1, Vec::new()).encode();
    let per_call = MAX_CALL / empty.len();
    let empty_call: Vec<u8> = empty.repeat(per_call);
    let empty_frames = 1_000_000usize;
    let q = query("cont.attack.test", RecordType::A, 2);
    let mut closing = Frame::new(CONTINUATION, END_HEADERS, 1, Vec::new()).encode();
    closing.extend(data(1, &q, true).encode());

    let mut p = pipeline();
    let mut w = Wire::new();
    let mem = Mem::start();
    // HEADERS without END_HEADERS, then 80 CONTINUATIONs of 16 KiB: 1.25 MiB of one block.
    w.send(&mut p, grow, E, &client_start());
    w.send(&mut p, grow, I, &server_start(&[]));
    w.send(&mut p, grow, E, &opening);
    for i in 0..80 {
        w.send(&mut p, grow, E, &cont);
        if i % 10 == 0 {
            normal.step(&mut w, &mut p);
        }
    }
    let after_grow = p.counters().clone();
    // A CONTINUATION announcing 2^24-1 bytes, then 16 MiB of it.
    w.send(&mut p, huge_frame, E, &client_start());
    w.send(&mut p, huge_frame, I, &server_start(&[]));
    w.send(&mut p, huge_frame, E, &opening);
    let mut pump = Pump::new(huge_frame, E);
    pump.put(&mut w, &mut p, &head((1 << 24) - 1, CONTINUATION, 0, 1));
    pump.fill(&mut w, &mut p, (1 << 24) - 1, &mut |b| b.fill(0x40));
    pump.flush(&mut w, &mut p);
    normal.step(&mut w, &mut p);
    // Empty CONTINUATIONs do not grow the block: endless, but harmless; the block then ends.
    w.send(&mut p, empty_flood, E, &client_start());
    w.send(&mut p, empty_flood, I, &server_start(&[]));
    w.send(&mut p, empty_flood, E, &opening);
    let mut sent = 0;
    while sent < empty_frames {
        let n = per_call.min(empty_frames - sent);
        w.call(&mut p, empty_flood, E, &empty_call[..n * empty.len()]);
        sent += n;
    }
    w.send(&mut p, empty_flood, E, &closing);
    w.send(&mut p, empty_flood, I, &answer_frames(1, &answer(&q)));
    normal.finish(&mut w, &mut p);
    mem.check("endless CONTINUATION", w.fed);

    assert_eq!(
        after_grow.h2_errors, 1,
        "the growing block is malformed past 256 KiB: {after_grow:?}"
    );
    let c = p.counters().clone();
    let (lookups, decisions) = outputs(&mut p);
    assert_eq!(c.h2_errors, 2, "{c:?}");
    assert_eq!(c.hpack_errors, 0, "{c:?}");
    assert_eq!(
        summary(&lookups),
        vec![s("cont.attack.test", "A", "ok", &["192.0.2.10"])]
    );
    assert_eq!(
        decisions,
        vec![(7, CAPTURE_TLS_FULL), (11, CAPTURE_TLS_FULL)]
    );
}

// ===== 3. a million streams =====

#[test]
fn a_million_unanswered_streams_are_bounded_per_connection() {
    let _serial = serial();
    let mut normal = Normal::new();
    let flood = tls(9);
    let streams: u32 = 1_000_000;
    let block = post_block();
    let frame_len = 9 + block.len();
    let per_call = MAX_CALL / frame_len;
    let mut call = Vec::with_capacity(MAX_CALL);
    let q_first = query("first.flood.test", RecordType::A, 1);
    let q_last = query("last.flood.test", RecordType::A, 2);
    let q_untracked = query("untracked.flood.test", RecordType::A, 3);
    let tail = [
        (1, &q_first),
        (2047, &q_last), // the 1024th stream: still tracked
        (2049, &q_untracked),
    ]
    .map(|(stream, q)| {
        (
            encode_all(&[data(stream, q, true)]),
            answer_frames(stream, &answer(q)),
        )
    });

    let mut p = pipeline();
    let mut w = Wire::new();
    let mem = Mem::start();
    w.send(&mut p, flood, E, &client_start());
    w.send(&mut p, flood, I, &server_start(&[]));
    let mut i = 0;
    let mut calls = 0;
    while i < streams {
        call.clear();
        while i < streams && call.len() + frame_len <= MAX_CALL {
            call.extend_from_slice(&head(block.len() as u32, HEADERS, END_HEADERS, 2 * i + 1));
            call.extend_from_slice(&block);
            i += 1;
        }
        w.call(&mut p, flood, E, &call);
        calls += 1;
        if calls % 100 == 0 {
            normal.step(&mut w, &mut p);
        }
    }
    assert!(per_call > 1000);
    for (req, resp) in &tail {
        w.send(&mut p, flood, E, req);
        w.send(&mut p, flood, I, resp);
    }
    normal.finish(&mut w, &mut p);
    w.close(&mut p, flood);
    mem.check("a million streams", w.fed);

    let c = p.counters().clone();
    let (lookups, decisions) = outputs(&mut p);
    assert_eq!(
        c.streams_over_limit,
        u64::from(streams) - 1024,
        "1024 streams tracked per connection: {c:?}"
    );
    assert_eq!(
        summary(&lookups),
        vec![
            s("first.flood.test", "A", "ok", &["192.0.2.10"]),
            s("last.flood.test", "A", "ok", &["192.0.2.10"]),
        ]
    );
    assert_eq!(
        c.bad_queries, 1022,
        "the other tracked streams end without a query at close: {c:?}"
    );
    assert_eq!((c.h2_errors, c.hpack_errors), (0, 0), "{c:?}");
    assert_eq!(
        decisions,
        vec![(7, CAPTURE_TLS_FULL), (9, CAPTURE_TLS_FULL)]
    );
}

// ===== 4. 1 GiB DATA =====

#[test]
fn gigabyte_bodies_are_capped_and_the_connection_goes_on() {
    let _serial = serial();
    let mut normal = Normal::new();
    let big = tls(9);
    let q_big = query("big.attack.test", RecordType::A, 1);
    let q_answer = query("answer.big.test", RecordType::A, 2);
    let q_after = query("after.big.test", RecordType::A, 3);
    const MAX_FRAME: u32 = (1 << 24) - 1;
    const GIB: u64 = 1 << 30;

    /// 1 GiB of DATA on `stream`: 64 frames of 2^24-1 bytes, then 64 bytes with END_STREAM.
    fn gigabyte(pump: &mut Pump, w: &mut Wire, p: &mut Pipeline, stream: u32) {
        for _ in 0..64 {
            pump.put(w, p, &head(MAX_FRAME, DATA, 0, stream));
            pump.fill(w, p, u64::from(MAX_FRAME), &mut zeros);
        }
        pump.put(w, p, &head(64, DATA, END_STREAM, stream));
        pump.fill(w, p, 64, &mut zeros);
        pump.flush(w, p);
    }

    let mut p = pipeline();
    let mut w = Wire::new();
    let mut out = Pump::new(big, E);
    let mut inn = Pump::new(big, I);
    let mem = Mem::start();
    w.send(&mut p, big, E, &client_start_with(BIG_FRAMES));
    w.send(&mut p, big, I, &server_start(BIG_FRAMES));
    // Stream 1: a 1 GiB request body.
    w.send(
        &mut p,
        big,
        E,
        &encode_all(&header_frames(
            1,
            &post_block(),
            &[],
            HeadersOpts::default(),
        )),
    );
    gigabyte(&mut out, &mut w, &mut p, 1);
    normal.step(&mut w, &mut p);
    w.send(&mut p, big, I, &answer_frames(1, &answer(&q_big)));
    // Stream 3: a 1 GiB answer.
    w.send(&mut p, big, E, &post_frames(3, &q_answer));
    w.send(
        &mut p,
        big,
        I,
        &encode_all(&header_frames(
            3,
            &response_block(),
            &[],
            HeadersOpts::default(),
        )),
    );
    gigabyte(&mut inn, &mut w, &mut p, 3);
    normal.step(&mut w, &mut p);
    // Stream 5: framing intact, decoding goes on.
    w.send(&mut p, big, E, &post_frames(5, &q_after));
    w.send(&mut p, big, I, &answer_frames(5, &answer(&q_after)));
    normal.finish(&mut w, &mut p);
    assert!(w.fed > 2 * GIB);
    mem.check("1 GiB DATA (x2)", w.fed);

    let c = p.counters().clone();
    let (lookups, decisions) = outputs(&mut p);
    assert_eq!(
        summary(&lookups),
        vec![
            s("after.big.test", "A", "ok", &["192.0.2.10"]),
            s("answer.big.test", "A", "malformed-answer", &[]),
        ]
    );
    assert_eq!(c.oversized_bodies, 2, "{c:?}");
    assert_eq!(c.bad_queries, 1, "the 1 GiB query: {c:?}");
    assert_eq!(c.bad_answers, 1, "the 1 GiB answer: {c:?}");
    assert_eq!((c.h2_errors, c.hpack_errors, c.gaps), (0, 0, 0), "{c:?}");
    assert_eq!(
        decisions,
        vec![(7, CAPTURE_TLS_FULL), (9, CAPTURE_TLS_FULL)]
    );
}

// ===== 5. garbage =====

#[test]
fn random_bytes_after_a_preface_on_a_fresh_connection_and_after_an_exchange() {
    let _serial = serial();
    let mut normal = Normal::new();
    let after_preface = tls(9);
    let fresh = tls(10);
    let after_exchange = tls(11);
    let q = query("valid.garbage.test", RecordType::A, 5);
    let valid = exchange(vec![Req::post(q)], 200);
    const GARBAGE: u64 = 32 << 20;
    let mut rng = Rng(0x5eed_0001);
    let mut gen = |b: &mut [u8]| rng.fill(b);

    let mut p = pipeline();
    let mut w = Wire::new();
    let mem = Mem::start();
    w.send(&mut p, after_preface, E, &client_start());
    w.send(&mut p, after_preface, I, &server_start(&[]));
    let mut pump = Pump::new(after_preface, E);
    pump.fill(&mut w, &mut p, GARBAGE, &mut gen);
    pump.flush(&mut w, &mut p);
    let c_preface = p.counters().clone();
    normal.step(&mut w, &mut p);

    for dir in [E, I] {
        let mut pump = Pump::new(fresh, dir);
        pump.fill(&mut w, &mut p, GARBAGE / 2, &mut gen);
        pump.flush(&mut w, &mut p);
    }
    let c_fresh = p.counters().clone();
    normal.step(&mut w, &mut p);

    for c in &valid {
        w.send(&mut p, after_exchange, c.dir, &c.bytes);
    }
    for dir in [I, E] {
        let mut pump = Pump::new(after_exchange, dir);
        pump.fill(&mut w, &mut p, GARBAGE, &mut gen);
        pump.flush(&mut w, &mut p);
    }
    normal.finish(&mut w, &mut p);
    mem.check("random bytes", w.fed);

    let c = p.counters().clone();
    eprintln!("after preface: {c_preface:?}\nfresh: {c_fresh:?}\nall: {c:?}");
    let (lookups, decisions) = outputs(&mut p);
    assert_eq!(
        summary(&lookups),
        vec![s("valid.garbage.test", "A", "ok", &["192.0.2.10"])]
    );
    assert_eq!(
        c_fresh.undecoded_conns + c_fresh.tls_on_socket_conns,
        1,
        "random bytes are no protocol: {c_fresh:?}"
    );
    assert_eq!(
        decisions,
        vec![
            (7, CAPTURE_TLS_FULL),
            (10, CAPTURE_TLS_SKIP),
            // Full after the exchange, then — decoding failed on the random bytes — skip: the
            // kernel stops copying it (listed sorted).
            (11, CAPTURE_TLS_SKIP),
            (11, CAPTURE_TLS_FULL)
        ]
    );
    // Random frame heads announce frames of megabytes (this seed: types 135, 188, 228, 227,
    // 50, 38, 131 of 0.7-11.5 MB each), far above SETTINGS_MAX_FRAME_SIZE (16,384: neither
    // side raised it), which RFC 9113 §4.2 makes a connection error. They must not be skipped
    // silently as unknown frames.
    assert_eq!(
        c_preface.h2_errors + c_preface.hpack_errors,
        1,
        "garbage after the preface drops the connection, counted: {c_preface:?}"
    );
    assert_eq!(
        c.h2_errors + c.hpack_errors,
        2,
        "garbage after an exchange drops that connection too, counted: {c:?}"
    );
}

// ===== 6. DNS compression loops and pointer chains =====

#[test]
fn dns_compression_loops_and_pointer_chains_are_malformed_never_a_panic() {
    let _serial = serial();
    let mut normal = Normal::new();
    let dns = tls(9);

    let looped_query = [
        dns_header(0x0601, 0x0100, 1, 0),
        ptr(12).to_vec(),
        A_IN.to_vec(),
    ]
    .concat();
    let forward_query = [
        dns_header(0x0605, 0x0100, 1, 0),
        ptr(0xff).to_vec(),
        A_IN.to_vec(),
    ]
    .concat();
    let long_name = [
        dns_header(0x0613, 0x0100, 1, 0),
        [[63u8].as_slice(), &[b'a'; 63]].concat().repeat(5),
        vec![0],
        A_IN.to_vec(),
    ]
    .concat();
    // An answer whose record name points at itself.
    let q3 = query("self.loop.test", RecordType::A, 0x0603);
    let mut a3 = [
        dns_header(0x0603, 0x8180, 1, 1),
        labels("self.loop.test"),
        A_IN.to_vec(),
    ]
    .concat();
    let at = a3.len();
    a3.extend(ptr(at));
    a3.extend(rr_fixed(1, 4));
    a3.extend([192, 0, 2, 3]);
    // An answer with a two-pointer loop (inside an opaque NULL record's data).
    let q7 = query("two.loop.test", RecordType::A, 0x0607);
    let mut a7 = [
        dns_header(0x0607, 0x8180, 1, 2),
        labels("two.loop.test"),
        A_IN.to_vec(),
    ]
    .concat();
    a7.extend(ptr(12));
    a7.extend(rr_fixed(10, 4)); // NULL
    let x = a7.len();
    a7.extend(ptr(x + 2));
    a7.extend(ptr(x));
    a7.extend(ptr(x));
    a7.extend(rr_fixed(1, 4));
    a7.extend([192, 0, 2, 7]);
    // A backward chain of 8,000 pointers, ending at the question name, used by 2,000 records.
    let q9 = query("chain.test", RecordType::A, 0x0609);
    let (hops, records) = (8000usize, 2000u16);
    let mut a9 = [
        dns_header(0x0609, 0x8180, 1, 1 + records),
        labels("chain.test"),
        A_IN.to_vec(),
    ]
    .concat();
    a9.extend(ptr(12));
    a9.extend(rr_fixed(10, (2 * hops) as u16));
    let chain = a9.len();
    a9.extend(ptr(12));
    for k in 1..hops {
        a9.extend(ptr(chain + 2 * (k - 1)));
    }
    let last = chain + 2 * (hops - 1);
    for r in 0..records {
        a9.extend(ptr(last));
        a9.extend(rr_fixed(1, 4));
        a9.extend([10, 9, (r >> 8) as u8, r as u8]);
    }
    assert!(a9.len() <= 65535);
    // An answer whose question name loops.
    let q11 = query("question.loop.test", RecordType::A, 0x060b);
    let a11 = [
        dns_header(0x060b, 0x8180, 1, 0),
        ptr(12).to_vec(),
        A_IN.to_vec(),
    ]
    .concat();
    let exchanges: Vec<(u32, Vec<u8>, Vec<u8>)> = vec![
        (
            1,
            looped_query.clone(),
            answer(&query("x.test", RecordType::A, 0x0601)),
        ),
        (3, q3, a3),
        (
            5,
            forward_query,
            answer(&query("y.test", RecordType::A, 0x0605)),
        ),
        (7, q7, a7),
        (9, q9, a9),
        (11, q11, a11),
        (
            13,
            long_name,
            answer(&query("z.test", RecordType::A, 0x0613)),
        ),
    ];

    let mut p = pipeline();
    let mut w = Wire::new();
    let mut seen: std::collections::BTreeMap<Sum, u32> = Default::default();
    let mut normal_lookups = Vec::new();
    let mem = Mem::start();
    let t = Instant::now();
    w.send(&mut p, dns, E, &client_start_with(BIG_FRAMES));
    w.send(&mut p, dns, I, &server_start(BIG_FRAMES));
    // Repeated on new streams until far more than the bound went in (the pointer chain, which
    // is slow to follow, only in the first round); lookups are tallied as they come.
    let mut round = 0u32;
    while w.fed < 3 * BOUND as u64 {
        for (stream, q, a) in &exchanges {
            if *stream == 9 && round > 0 {
                continue;
            }
            let id = stream + 16 * round;
            w.send(&mut p, dns, E, &post_frames(id, q));
            w.send(&mut p, dns, I, &answer_frames(id, a));
        }
        if round == 0 {
            eprintln!("first round (with the pointer chain): {:?}", t.elapsed());
        }
        normal.step(&mut w, &mut p);
        for l in p.drain_lookups() {
            if l.name().ends_with(".normal.test") {
                normal_lookups.push(*l);
            } else {
                *seen
                    .entry((
                        l.name().to_string(),
                        l.qtype.as_deref().unwrap_or_default().to_owned(),
                        l.status.as_str().to_string(),
                        // answer count and last answer (the chain has 2,001)
                        vec![
                            l.answers.len().to_string(),
                            l.answers.last().cloned().unwrap_or_default(),
                        ],
                    ))
                    .or_insert(0) += 1;
            }
        }
        round += 1;
    }
    normal.finish(&mut w, &mut p);
    let took = t.elapsed();
    mem.check(
        &format!("DNS loops and chains ({round} rounds in {took:?})"),
        w.fed,
    );

    let c = p.counters().clone();
    normal_lookups.extend(p.drain_lookups().map(|l| *l));
    assert!(split_normal(normal_lookups).is_empty());
    let decisions = decided(&p.drain_decisions().collect::<Vec<_>>());
    eprintln!("DNS lookups: {seen:?}");
    let chain: Vec<(&Sum, &u32)> = seen.iter().filter(|(k, _)| k.0 == "chain.test").collect();
    assert_eq!(chain.len(), 1, "{chain:?}");
    let chain_ok = chain[0].0 .2 == "ok";
    let chain_bad = u32::from(!chain_ok);
    let mut want = vec![
        (
            s("self.loop.test", "A", "malformed-answer", &["0", ""]),
            round,
        ),
        (
            s("two.loop.test", "A", "malformed-answer", &["0", ""]),
            round,
        ),
        (
            s("question.loop.test", "A", "malformed-answer", &["0", ""]),
            round,
        ),
        (
            // The NULL record holding the chain, then the 2,000 A records named through it.
            if chain_ok {
                s("chain.test", "A", "ok", &["2001", "10.9.7.207"])
            } else {
                s("chain.test", "A", "malformed-answer", &["0", ""])
            },
            1,
        ),
    ];
    want.sort();
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        want,
        "the looped, forward-pointing and over-long queries are dropped"
    );
    assert_eq!(c.bad_queries, u64::from(3 * round), "{c:?}");
    assert_eq!(c.bad_answers, u64::from(3 * round + chain_bad), "{c:?}");
    assert_eq!((c.h2_errors, c.hpack_errors), (0, 0), "{c:?}");
    assert_eq!(
        decisions,
        vec![(7, CAPTURE_TLS_FULL), (9, CAPTURE_TLS_FULL)]
    );
}

// ===== 7. hostile kernel records =====

/// A data record laid out as the eBPF side writes it, with every field chosen.
#[allow(
    clippy::too_many_arguments,
    reason = "a test helper that states one frame sequence in full"
)]
fn raw_data(
    kind: u32,
    fd: i32,
    source: u32,
    dir: u32,
    total: u32,
    offset: u32,
    len: u32,
    ts: u64,
    payload: &[u8],
) -> Vec<u8> {
    let mut r = Vec::with_capacity(DATA_EVENT_HEADER_SIZE + payload.len());
    for v in [kind, PID, PID + 1, 1000] {
        r.extend_from_slice(&v.to_ne_bytes());
    }
    r.extend_from_slice(&ts.to_ne_bytes());
    for v in [fd as u32, source, dir, 0] {
        r.extend_from_slice(&v.to_ne_bytes());
    }
    r.extend_from_slice(&(0x5555_0000u64 + fd as u64).to_ne_bytes());
    for v in [total, offset, len, 0] {
        r.extend_from_slice(&v.to_ne_bytes());
    }
    r.extend_from_slice(b"hostile\0\0\0\0\0\0\0\0\0");
    assert_eq!(r.len(), DATA_EVENT_HEADER_SIZE);
    r.extend_from_slice(payload);
    r
}

#[test]
fn hostile_kernel_records_are_counted_and_change_nothing() {
    let _serial = serial();
    let normal = Normal::new();
    assert_eq!(DATA_EVENT_HEADER_SIZE, 80);
    let conn_size = std::mem::size_of::<doh_trace_common::ConnEvent>();
    let close_size = std::mem::size_of::<doh_trace_common::CloseEvent>();
    let (egress, ingress) = (doh_trace_common::DIR_EGRESS, doh_trace_common::DIR_INGRESS);
    let page = vec![0x41u8; 2 * CHUNK_SIZE];
    let fd = 9;
    let mut conn_bad_family = vec![0u8; conn_size];
    conn_bad_family[..4].copy_from_slice(&2u32.to_ne_bytes());
    conn_bad_family[36..38].copy_from_slice(&1u16.to_ne_bytes()); // AF_UNIX
    let mut close_short = vec![0u8; close_size - 1];
    close_short[..4].copy_from_slice(&3u32.to_ne_bytes());
    let mut conn_short = conn_bad_family.clone();
    conn_short.truncate(conn_size - 1);
    conn_short[36..38].copy_from_slice(&2u16.to_ne_bytes());
    let ok = |kind, source, dir, total, offset, len, n: usize| {
        raw_data(kind, fd, source, dir, total, offset, len, 1, &page[..n])
    };
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("23 bytes", vec![1; 23]),
        ("header only", ok(1, 1, egress, 8, 0, 8, 0)[..24].to_vec()),
        ("data head cut", ok(1, 1, egress, 8, 0, 8, 0)[..79].to_vec()),
        ("payload cut", ok(1, 1, egress, 100, 0, 100, 50)),
        ("len 4097", ok(1, 1, egress, 4097, 0, 4097, 4097)),
        (
            "len u32::MAX",
            ok(1, 1, egress, u32::MAX, 0, u32::MAX, 4096),
        ),
        ("offset beyond total", ok(1, 1, egress, 5, 10, 0, 0)),
        (
            "offset+len beyond total",
            ok(1, 1, ingress, 4096, 1, 4096, 4096),
        ),
        (
            "offset u32::MAX",
            ok(1, 1, ingress, u32::MAX, u32::MAX, 16, 16),
        ),
        ("kind 0", ok(0, 1, egress, 4, 0, 4, 4)),
        ("kind 6", ok(6, 1, egress, 4, 0, 4, 4)),
        ("kind u32::MAX", ok(u32::MAX, 1, egress, 4, 0, 4, 4)),
        (
            "kind 1 byte-swapped",
            ok(0x0100_0000, 1, egress, 4, 0, 4, 4),
        ),
        ("source 0", ok(1, 0, egress, 4, 0, 4, 4)),
        ("source 6 (unknown)", ok(1, 6, egress, 4, 0, 4, 4)),
        ("direction 2", ok(1, 1, 2, 4, 0, 4, 4)),
        ("conn AF_UNIX", conn_bad_family),
        ("conn cut", conn_short),
        ("close cut", close_short),
    ];

    let mut p = pipeline();
    let mut rng = Rng(0x5eed_0007);
    let mut buf = vec![0u8; DATA_EVENT_HEADER_SIZE + 2 * CHUNK_SIZE];
    let mut ts = 5_000_000_000u64;
    let mut bad = 0u64;
    let mut fed = 0u64;
    let mut h = 0usize;
    let mem = Mem::start();
    let mut feed_bad = |p: &mut Pipeline, bad: &mut u64, fed: &mut u64, rng: &mut Rng| {
        // Each listed record, then random ones: random bytes with an unknown kind, and data
        // records with random fields but a len over CHUNK_SIZE.
        let (_, r) = &hostile[h % hostile.len()];
        h += 1;
        p.handle_record(r);
        *fed += r.len() as u64;
        for _ in 0..8 {
            let n = rng.below(buf.len() as u64 + 1) as usize;
            rng.fill(&mut buf[..n]);
            if n >= 4 {
                let k = u32::from_ne_bytes(buf[..4].try_into().unwrap());
                if (1..=5).contains(&k) {
                    buf[..4].copy_from_slice(&(k + 5).to_ne_bytes());
                }
            }
            p.handle_record(&buf[..n]);
            rng.fill(&mut buf);
            buf[..4].copy_from_slice(&1u32.to_ne_bytes());
            let len = CHUNK_SIZE as u32 + 1 + rng.below(u64::from(u32::MAX) - 4097) as u32;
            buf[56..60].copy_from_slice(&len.to_ne_bytes());
            p.handle_record(&buf);
            *bad += 2;
            *fed += (n + buf.len()) as u64;
        }
        *bad += 1;
    };
    // The normal connection as raw records, a hostile record after each of them.
    for call in &normal.calls {
        let dir = if call.dir == E { egress } else { ingress };
        for piece in call.bytes.chunks(MAX_CALL) {
            ts += 1000;
            for (i, chunk) in piece.chunks(CHUNK_SIZE).enumerate() {
                let r = raw_data(
                    1,
                    NORMAL.fd,
                    1,
                    dir,
                    piece.len() as u32,
                    (i * CHUNK_SIZE) as u32,
                    chunk.len() as u32,
                    ts,
                    chunk,
                );
                p.handle_record(&r);
                fed += r.len() as u64;
                feed_bad(&mut p, &mut bad, &mut fed, &mut rng);
            }
        }
    }
    let valid = p.counters().events - bad;
    // Then floods of them: 200,000 more.
    while bad < 200_000 {
        feed_bad(&mut p, &mut bad, &mut fed, &mut rng);
    }
    mem.check("hostile kernel records", fed);

    let c = p.counters().clone();
    let (lookups, decisions) = outputs(&mut p);
    assert!(lookups.is_empty(), "{lookups:?}");
    assert_eq!(c.bad_events, bad, "{c:?}");
    assert_eq!(c.events, bad + valid, "{c:?}");
    assert_eq!(c.gaps, 0, "{c:?}");
    assert_eq!(c.lookups, 3, "{c:?}");
    assert_eq!(decisions, vec![(7, CAPTURE_TLS_FULL)]);
}

// ===== 8. hostile HTTP/1.1 =====

fn h1_post(q: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST /dns-query HTTP/1.1\r\nHost: doh.test\r\nContent-Type: application/dns-message\r\n\
         Accept: application/dns-message\r\nContent-Length: {}\r\n\r\n",
        q.len()
    )
    .into_bytes();
    r.extend_from_slice(q);
    r
}

fn h1_answer(a: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/dns-message\r\nContent-Length: {}\r\n\r\n",
        a.len()
    )
    .into_bytes();
    r.extend_from_slice(a);
    r
}

#[test]
fn hostile_http1_is_bounded_and_counted() {
    let _serial = serial();
    let mut normal = Normal::new();
    let long_line = tls(9);
    let chunks = tls(10);
    let endless = tls(11);
    let pipelined = tls(12);

    let q_chunked = query("chunked.h1.test", RecordType::A, 1);
    let q_after = query("after.h1.test", RecordType::A, 2);
    let chunked_head = b"POST /dns-query HTTP/1.1\r\nHost: doh.test\r\n\
        Content-Type: application/dns-message\r\nTransfer-Encoding: chunked\r\n\r\n";
    let tiny_chunks = b"1\r\nX\r\n".repeat(100_000);
    let endless_head = b"POST /dns-query HTTP/1.1\r\nHost: doh.test\r\n\
        Content-Type: application/dns-message\r\nContent-Length: 18446744073709551615\r\n\r\n";
    let requests = 10_000u32;
    let pipelined_reqs: Vec<u8> = (0..requests)
        .flat_map(|i| h1_post(&query(&format!("p{i}.h1.test"), RecordType::A, i as u16)))
        .collect();

    let mut p = pipeline();
    let mut w = Wire::new();
    let mem = Mem::start();
    // A 10 MiB header line.
    w.send(
        &mut p,
        long_line,
        E,
        b"POST /dns-query HTTP/1.1\r\nHost: doh.test\r\nX-Long: ",
    );
    let mut pump = Pump::new(long_line, E);
    pump.fill(&mut w, &mut p, 10 << 20, &mut |b| b.fill(b'a'));
    pump.put(&mut w, &mut p, b"\r\n\r\n");
    pump.flush(&mut w, &mut p);
    let c_long = p.counters().clone();
    normal.step(&mut w, &mut p);

    // 100,000 one-byte chunks, answered; then a normal request on the same connection.
    w.send(&mut p, chunks, E, chunked_head);
    w.send(&mut p, chunks, E, &tiny_chunks);
    w.send(&mut p, chunks, E, b"0\r\n\r\n");
    w.send(&mut p, chunks, I, &h1_answer(&answer(&q_chunked)));
    w.send(&mut p, chunks, E, &h1_post(&q_after));
    w.send(&mut p, chunks, I, &h1_answer(&answer(&q_after)));
    let c_chunks = p.counters().clone();
    normal.step(&mut w, &mut p);

    // Content-Length u64::MAX, 256 MiB of it, then the connection closes.
    w.send(&mut p, endless, E, endless_head);
    let mut pump = Pump::new(endless, E);
    pump.fill(&mut w, &mut p, 256 << 20, &mut zeros);
    pump.flush(&mut w, &mut p);
    w.close(&mut p, endless);
    let c_endless = p.counters().clone();
    normal.step(&mut w, &mut p);

    // 10,000 pipelined requests, never answered; the connection closes.
    w.send(&mut p, pipelined, E, &pipelined_reqs);
    w.close(&mut p, pipelined);
    normal.finish(&mut w, &mut p);
    mem.check("hostile HTTP/1.1", w.fed);

    let c = p.counters().clone();
    eprintln!("long: {c_long:?}\nchunks: {c_chunks:?}\nendless: {c_endless:?}\nall: {c:?}");
    let (lookups, decisions) = outputs(&mut p);
    assert_eq!(c_long.h1_errors, 1, "the 10 MiB line: {c_long:?}");
    let (unanswered, other): (Vec<Lookup>, Vec<Lookup>) =
        lookups.into_iter().partition(|l| l.name().starts_with('p'));
    assert_eq!(
        summary(&other),
        vec![s("after.h1.test", "A", "ok", &["192.0.2.10"])],
        "the tiny-chunked body is oversized, the next request decodes"
    );
    assert_eq!(
        (c_chunks.oversized_bodies, c_chunks.bad_queries),
        (1, 1),
        "{c_chunks:?}"
    );
    assert_eq!(c.h1_errors, 1, "{c:?}");
    assert_eq!(
        c.streams_over_limit,
        u64::from(requests) - 1024,
        "1024 requests queued per connection: {c:?}"
    );
    let mut want: Vec<Sum> = (0..1024)
        .map(|i| s(&format!("p{i}.h1.test"), "A", "unanswered", &[]))
        .collect();
    want.sort();
    assert_eq!(summary(&unanswered), want);
    assert_eq!(
        decisions,
        vec![
            (7, CAPTURE_TLS_FULL),
            (10, CAPTURE_TLS_FULL),
            (11, CAPTURE_TLS_FULL),
            (12, CAPTURE_TLS_FULL)
        ]
    );
    assert!(
        c_endless.oversized_bodies > c_chunks.oversized_bodies,
        "the endless body (256 MiB of a Content-Length of u64::MAX) is counted oversized, \
         not dropped silently at close: {c_endless:?}"
    );
}

/// Requests pipelined past the 1024 the decoder queues must not shift the pairing of later
/// answers: every lookup's answer is the one its own request got.
#[test]
fn pipelining_past_the_queue_limit_never_pairs_a_query_with_another_answer() {
    let _serial = serial();
    let mut normal = Normal::new();
    let conn = tls(13);
    let n = 1100u32;
    let ip = |i: u32| [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
    let q = |i: u32| query(&format!("q{i}.pipe.test"), RecordType::A, i as u16);
    let mut p = pipeline();
    let mut w = Wire::new();
    let mem = Mem::start();
    let reqs: Vec<u8> = (0..n).flat_map(|i| h1_post(&q(i))).collect();
    w.send(&mut p, conn, E, &reqs);
    // The server answers the first request; the client sends one more; the server answers
    // all the others in order.
    w.send(&mut p, conn, I, &h1_answer(&answer_ip(&q(0), ip(0))));
    w.send(&mut p, conn, E, &h1_post(&q(n)));
    for i in 1..=n {
        w.send(&mut p, conn, I, &h1_answer(&answer_ip(&q(i), ip(i))));
        if i % 100 == 0 {
            normal.step(&mut w, &mut p);
        }
    }
    normal.finish(&mut w, &mut p);
    w.close(&mut p, conn);
    let peak = mem.peak();
    assert!(peak < BOUND, "{peak}");

    let c = p.counters().clone();
    let (lookups, _) = outputs(&mut p);
    let mut wrong = Vec::new();
    for l in &lookups {
        let i: u32 = l.name()[1..l.name().find('.').unwrap()].parse().unwrap();
        let [a, b, c2, d] = ip(i);
        let want = format!("{a}.{b}.{c2}.{d}");
        if l.status.as_str() == "ok" && l.answers[..] != [want.clone()] {
            wrong.push(format!(
                "{} got {:?}, its answer is {want}",
                l.name(),
                l.answers
            ));
        }
    }
    eprintln!("{c:?}; {} lookups", lookups.len());
    assert!(
        wrong.is_empty(),
        "{} lookups paired with another request's answer, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(3)]
    );
}
