//! The pipeline's memory budget, replayed through the whole pipeline without root: one
//! process floods h2c connections with DoH streams whose bodies never end (60 KiB kept per
//! stream, 1024 streams per connection: ~60 MiB each, every per-connection bound respected),
//! beside the normal DoH connection of another process. Under a 16 MiB budget the heap stays
//! near the budget, the flood's connections are dropped and counted, and the normal lookups
//! are all reported; with no effective budget the same input holds ~250 MiB.
//!
//! The heap is measured with the counting global allocator of `support::hostile`; the tests
//! share its counters, so they run one at a time.

mod support;

use doh_trace::pipeline::Pipeline;
use doh_trace_common::{Source, CAPTURE_SOCK_FULL, CAPTURE_SOCK_SKIP, CAPTURE_TLS_FULL};
use support::{expect::summary, frames::*, hostile::*, *};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The flooding process, and its h2c connections.
const ATTACKER: u32 = 6666;
const CONNS: i32 = 4;
/// Streams per connection: as many as one connection may have open.
const STREAMS: u32 = 1024;
/// Each stream's body: four DATA frames of 15 KiB, never ended.
const FRAME_BODY: usize = 15 * 1024;
const FRAMES_PER_STREAM: usize = 4;

const MIB: usize = 1 << 20;

fn h2c(conn: i32) -> Side {
    Side {
        pid: ATTACKER,
        fd: 100 + conn,
        source: Source::Socket,
    }
}

/// Feeds the flood, with a step of the normal connection every 64 streams, then the rest of
/// the normal connection.
fn flood(p: &mut Pipeline, w: &mut Wire, normal: &mut Normal) {
    let block = plain_post_block();
    let body = vec![0u8; FRAME_BODY];
    for conn in 0..CONNS {
        let side = h2c(conn);
        w.send(p, side, E, &client_start(&[]));
        w.send(p, side, I, &server_start(&[]));
        for i in 0..STREAMS {
            let stream = 2 * i + 1;
            let mut out = encode_all(&header_frames(stream, &block, &[], HeadersOpts::default()));
            for _ in 0..FRAMES_PER_STREAM {
                out.extend(data(stream, &body, false).encode());
            }
            w.send(p, side, E, &out);
            if i % 64 == 0 {
                normal.step(w, p);
            }
        }
    }
    normal.finish(w, p);
}

#[test]
fn a_flood_of_open_streams_is_dropped_over_the_budget_and_the_normal_client_is_reported() {
    let _serial = serial();
    let budget = 16 * MIB;
    let mut p = pipeline();
    p.set_memory_budget(budget);
    let mut w = Wire::new();
    let mut normal = Normal::new();
    let mem = Mem::start();
    flood(&mut p, &mut w, &mut normal);
    let peak = mem.peak();
    let memory = p.memory();
    let c = p.counters().clone();
    eprintln!(
        "budget {} MiB: fed {:.1} MiB, peak heap growth {:.1} MiB, decoders held at most {:.1} MiB, \
         {} connections dropped holding {:.1} MiB",
        budget / MIB,
        w.fed as f64 / MIB as f64,
        peak as f64 / MIB as f64,
        memory.peak as f64 / MIB as f64,
        c.memory_dropped_conns,
        c.memory_dropped_bytes as f64 / MIB as f64,
    );
    assert!(w.fed > 14 * budget as u64, "fed {} bytes", w.fed);
    // Between two checks at most one event's growth (a 4 KiB chunk's frames).
    assert!(
        memory.peak <= budget + 256 * 1024,
        "decoders held {} bytes",
        memory.peak
    );
    assert!(peak < budget + 4 * MIB, "peak heap growth {peak} bytes");
    // Each flooding connection alone goes over the budget: each is dropped once, when it
    // holds most; then its bytes are dropped on arrival.
    assert_eq!(c.memory_dropped_conns, CONNS as u64, "{c:?}");
    assert!(
        c.memory_dropped_bytes > CONNS as u64 * (budget as u64 / 2),
        "{c:?}"
    );
    assert!(
        p.memory_held() < MIB,
        "{} held after the flood",
        p.memory_held()
    );
    let (lookups, decisions) = outputs(&mut p, &mut w);
    // Nothing of the dropped streams is reported: no lookup that did not happen.
    assert!(lookups.is_empty(), "{:?}", summary(&lookups));
    // The flood's sockets were copied whole once DoH, then no longer.
    let mut expected = vec![(7, CAPTURE_TLS_FULL)];
    for conn in 0..CONNS {
        expected.push((h2c(conn).fd, CAPTURE_SOCK_SKIP));
        expected.push((h2c(conn).fd, CAPTURE_SOCK_FULL));
    }
    expected.sort();
    assert_eq!(decisions, expected);
    let problems = c.problems();
    assert!(
        problems.contains(&("connections dropped over the memory budget", CONNS as u64)),
        "{problems:?}"
    );
}

/// The same input without an effective budget holds what the per-connection bounds allow:
/// what the test above shows is the budget's doing.
#[test]
fn without_a_budget_the_same_flood_holds_hundreds_of_mib() {
    let _serial = serial();
    let mut p = pipeline();
    p.set_memory_budget(1 << 40);
    let mut w = Wire::new();
    let mut normal = Normal::new();
    let mem = Mem::start();
    flood(&mut p, &mut w, &mut normal);
    let peak = mem.peak();
    eprintln!(
        "no budget: fed {:.1} MiB, peak heap growth {:.1} MiB, decoders held at most {:.1} MiB",
        w.fed as f64 / MIB as f64,
        peak as f64 / MIB as f64,
        p.memory().peak as f64 / MIB as f64,
    );
    assert!(peak > 200 * MIB, "peak heap growth {peak} bytes");
    // What the decoders say they hold is what the heap holds, within an eighth.
    let held = p.memory_held();
    assert!(
        held <= peak && held > peak - peak / 8,
        "held {held} of a peak {peak}"
    );
    assert_eq!(p.counters().memory_dropped_conns, 0);
    let (lookups, _) = outputs(&mut p, &mut w);
    assert!(lookups.is_empty(), "{:?}", summary(&lookups));
}
