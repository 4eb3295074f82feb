//! Hostile HTTP/2, replayed through the whole pipeline without root: an HPACK bomb and size
//! updates beyond the allowed, endless CONTINUATION, a million unanswered streams, 1 GiB DATA
//! bodies, and random bytes after a preface.
//!
//! Every test drives one `Pipeline` with kernel-shaped data events of an attacking connection
//! and, in the same pipeline, a normal DoH connection of a real `h2` client and server on
//! another fd, whose lookups must still be reported exactly; the pipeline's heap growth is
//! measured with a counting global allocator and must stay below `support::hostile::BOUND`
//! while far more input than that is fed. Tests share the allocator's counters, so they run
//! one at a time.

mod support;

use std::time::Instant;

use doh_trace::pipeline::Pipeline;
use doh_trace_common::{CAPTURE_TLS_FULL, CAPTURE_TLS_SKIP};
use hickory_proto::rr::RecordType;
use support::{dns::*, expect::summaries, frames::*, hostile::*, *};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

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
        plain_post_block(),
        vec![0xbe; refs], // indexed 62: the newest dynamic entry
    ]
    .concat();
    let next_block = [plain_post_block(), vec![0xbe; refs]].concat();
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
        let block = [hp_size_update(size), plain_post_block()].concat();
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
    w.send(&mut p, bomb, E, &client_start(&[]));
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

    w.send(&mut p, over_default, E, &client_start(&[]));
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

    w.send(&mut p, over_settings, E, &client_start(&[]));
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
    let (lookups, decisions) = outputs(&mut p, &mut w);
    let want = summaries(
        (0..blocks)
            .map(|i| Expect::brief(&format!("bomb{i}.attack.test"), "A", "ok", &["192.0.2.10"])),
    );
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

    let opening = encode_all(&[Frame::new(HEADERS, 0, 1, plain_post_block())]);
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
    w.send(&mut p, grow, E, &client_start(&[]));
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
    w.send(&mut p, huge_frame, E, &client_start(&[]));
    w.send(&mut p, huge_frame, I, &server_start(&[]));
    w.send(&mut p, huge_frame, E, &opening);
    let mut pump = Pump::new(huge_frame, E);
    pump.put(&mut w, &mut p, &raw_head((1 << 24) - 1, CONTINUATION, 0, 1));
    pump.fill(&mut w, &mut p, (1 << 24) - 1, &mut |b| b.fill(0x40));
    pump.flush(&mut w, &mut p);
    normal.step(&mut w, &mut p);
    // Empty CONTINUATIONs do not grow the block: endless, but harmless; the block then ends.
    w.send(&mut p, empty_flood, E, &client_start(&[]));
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
    let (lookups, decisions) = outputs(&mut p, &mut w);
    assert_eq!(c.h2_errors, 2, "{c:?}");
    assert_eq!(c.hpack_errors, 0, "{c:?}");
    assert_eq!(
        summary(&lookups),
        vec![Expect::brief(
            "cont.attack.test",
            "A",
            "ok",
            &["192.0.2.10"]
        )]
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
    let block = plain_post_block();
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
    w.send(&mut p, flood, E, &client_start(&[]));
    w.send(&mut p, flood, I, &server_start(&[]));
    let mut i = 0;
    let mut calls = 0;
    while i < streams {
        call.clear();
        while i < streams && call.len() + frame_len <= MAX_CALL {
            call.extend_from_slice(&raw_head(
                block.len() as u32,
                HEADERS,
                END_HEADERS,
                2 * i + 1,
            ));
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
    let (lookups, decisions) = outputs(&mut p, &mut w);
    assert_eq!(
        c.streams_over_limit,
        u64::from(streams) - 1024,
        "1024 streams tracked per connection: {c:?}"
    );
    assert_eq!(
        summary(&lookups),
        vec![
            Expect::brief("first.flood.test", "A", "ok", &["192.0.2.10"]),
            Expect::brief("last.flood.test", "A", "ok", &["192.0.2.10"]),
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
            pump.put(w, p, &raw_head(MAX_FRAME, DATA, 0, stream));
            pump.fill(w, p, u64::from(MAX_FRAME), &mut zeros);
        }
        pump.put(w, p, &raw_head(64, DATA, END_STREAM, stream));
        pump.fill(w, p, 64, &mut zeros);
        pump.flush(w, p);
    }

    let mut p = pipeline();
    let mut w = Wire::new();
    let mut out = Pump::new(big, E);
    let mut inn = Pump::new(big, I);
    let mem = Mem::start();
    w.send(&mut p, big, E, &client_start(BIG_FRAMES));
    w.send(&mut p, big, I, &server_start(BIG_FRAMES));
    // Stream 1: a 1 GiB request body.
    w.send(
        &mut p,
        big,
        E,
        &encode_all(&header_frames(
            1,
            &plain_post_block(),
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
            &plain_response_block(),
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
    let (lookups, decisions) = outputs(&mut p, &mut w);
    assert_eq!(
        summary(&lookups),
        vec![
            Expect::brief("after.big.test", "A", "ok", &["192.0.2.10"]),
            Expect::brief("answer.big.test", "A", "malformed-answer", &[]),
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
    w.send(&mut p, after_preface, E, &client_start(&[]));
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
    let (lookups, decisions) = outputs(&mut p, &mut w);
    assert_eq!(
        summary(&lookups),
        vec![Expect::brief(
            "valid.garbage.test",
            "A",
            "ok",
            &["192.0.2.10"]
        )]
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
