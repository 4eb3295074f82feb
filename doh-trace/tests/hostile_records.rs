//! Hostile kernel records, replayed through the whole pipeline without root: data records with
//! any field chosen (lengths, offsets, kinds, directions) are counted and change nothing.
//!
//! Every test drives one `Pipeline` with kernel-shaped data events of an attacking connection
//! and, in the same pipeline, a normal DoH connection of a real `h2` client and server on
//! another fd, whose lookups must still be reported exactly; the pipeline's heap growth is
//! measured with a counting global allocator and must stay below `support::hostile::BOUND`
//! while far more input than that is fed. Tests share the allocator's counters, so they run
//! one at a time.

mod support;

use doh_trace::pipeline::Pipeline;
use doh_trace_common::{CAPTURE_TLS_FULL, CHUNK_SIZE, DATA_EVENT_HEADER_SIZE};
use support::{hostile::*, *};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

// ===== hostile kernel records =====

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
    let (lookups, decisions) = outputs(&mut p, &mut Wire::new());
    assert!(lookups.is_empty(), "{lookups:?}");
    assert_eq!(c.bad_events, bad, "{c:?}");
    assert_eq!(c.events, bad + valid, "{c:?}");
    assert_eq!(c.gaps, 0, "{c:?}");
    assert_eq!(c.lookups, 3, "{c:?}");
    assert_eq!(decisions, vec![(7, CAPTURE_TLS_FULL)]);
}
