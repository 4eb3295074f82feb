//! Decode throughput and memory of the userspace pipeline (issue: "measure and hold speed"),
//! on real HTTP/2 DoH traffic from the `h2` crate turned into raw kernel records:
//!
//! - throughput: lookups per second through `Pipeline::handle_record`, one core;
//! - memory: heap growth with 10,000 DoH connections open at once, each with a query
//!   in flight (live heap bytes, counted by a wrapping global allocator).
//!
//! Run: `cargo bench -p doh-trace --bench decode` (prints figures; no pass/fail).

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicUsize, Ordering},
    time::Instant,
};

/// Counts live heap bytes, so memory figures are the pipeline's own, not the allocator's.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only adding a counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

use doh_trace::{clock::Clock, pipeline::Pipeline, process::NoProcessInfo, source::Direction};
use doh_trace_common::{
    DataEvent, EventHeader, CHUNK_SIZE, DATA_EVENT_HEADER_SIZE, DIR_EGRESS, DIR_INGRESS,
};
use hickory_proto::rr::RecordType;
use support::{exchange, query, Call, Req};

/// Raw ring-buffer records (as the eBPF side writes them) for one connection's calls.
fn records(calls: &[Call], pid: u32, fd: i32, ts: &mut u64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for call in calls {
        for (i, chunk) in call.bytes.chunks(CHUNK_SIZE).enumerate() {
            *ts += 1_000;
            let mut ev = DataEvent {
                header: EventHeader {
                    kind: 1,
                    tgid: pid,
                    tid: pid,
                    uid: 0,
                    ts_ns: *ts,
                },
                fd,
                source: 1,
                direction: if call.dir == Direction::Egress {
                    DIR_EGRESS
                } else {
                    DIR_INGRESS
                },
                flags: 0,
                tls_obj: fd as u64,
                total_len: call.bytes.len() as u32,
                offset: (i * CHUNK_SIZE) as u32,
                len: chunk.len() as u32,
                _pad: 0,
                comm: *b"bench\0\0\0\0\0\0\0\0\0\0\0",
                data: [0; CHUNK_SIZE],
            };
            ev.data[..chunk.len()].copy_from_slice(chunk);
            // SAFETY: DataEvent is repr(C) plain data; we copy its bytes.
            let bytes = unsafe {
                std::slice::from_raw_parts(
                    &ev as *const DataEvent as *const u8,
                    std::mem::size_of::<DataEvent>(),
                )
            };
            out.push(bytes[..DATA_EVENT_HEADER_SIZE + chunk.len()].to_vec());
        }
    }
    out
}

fn main() {
    // One real connection: 8 interleaved lookups (A and AAAA of 4 names).
    let names = [
        "www.doh.test",
        "mail.doh.test",
        "api.doh.test",
        "cdn.doh.test",
    ];
    let reqs: Vec<Req> = names
        .iter()
        .flat_map(|n| {
            [
                Req::post(query(n, RecordType::A, 0)),
                Req::post(query(n, RecordType::AAAA, 0)),
            ]
        })
        .collect();
    let per_conn = reqs.len();
    let calls = exchange(reqs, 200);

    // Throughput: 20,000 connections' records, replayed through one pipeline.
    let conns = 20_000;
    let mut ts = 0;
    let mut recs = Vec::new();
    for c in 0..conns {
        recs.extend(records(
            &calls,
            1000 + (c / 1000) as u32,
            (c % 1000) as i32 + 10,
            &mut ts,
        ));
    }
    let bytes: usize = recs.iter().map(Vec::len).sum();
    let mut best = f64::MAX;
    let mut lookups = 0;
    for _ in 0..3 {
        let mut p = Pipeline::new(Box::new(NoProcessInfo), Clock::with_offset(0));
        let t = Instant::now();
        lookups = 0;
        for r in &recs {
            p.handle_record(r);
            lookups += p.drain_lookups().count();
            let _ = p.drain_decisions();
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    assert_eq!(lookups, conns * per_conn, "every lookup decoded");
    println!(
        "throughput: {lookups} lookups from {} records ({:.1} MiB) in {best:.3} s (best of 3): {:.0} lookups/s, {:.0} MiB/s",
        recs.len(),
        bytes as f64 / 1048576.0,
        lookups as f64 / best,
        bytes as f64 / 1048576.0 / best
    );
    drop(recs);

    // Memory: 10,000 connections open at once, each with its requests sent and no answer yet.
    let open = 10_000;
    let requests_only: Vec<Call> = calls
        .iter()
        .filter(|c| c.dir == Direction::Egress)
        .cloned()
        .collect();
    let before = LIVE.load(Ordering::Relaxed);
    let mut p = Pipeline::new(Box::new(NoProcessInfo), Clock::with_offset(0));
    let mut ts = 0;
    for c in 0..open {
        for r in records(
            &requests_only,
            5000 + (c / 1000) as u32,
            (c % 1000) as i32 + 10,
            &mut ts,
        ) {
            p.handle_record(&r);
        }
    }
    let after = LIVE.load(Ordering::Relaxed);
    let grown = after.saturating_sub(before);
    println!(
        "memory: {open} open connections with {} queries in flight: heap +{:.1} MiB ({} B per connection)",
        open * per_conn,
        grown as f64 / 1048576.0,
        grown / open
    );
    assert_eq!(p.drain_lookups().count(), 0);
}
