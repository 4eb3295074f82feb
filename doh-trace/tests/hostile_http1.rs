//! Hostile HTTP/1.1, replayed through the whole pipeline without root: long lines, tiny and
//! endless chunked bodies and pipelining past the queue limit are bounded and counted, and never
//! pair a query with another answer.
//!
//! Every test drives one `Pipeline` with kernel-shaped data events of an attacking connection
//! and, in the same pipeline, a normal DoH connection of a real `h2` client and server on
//! another fd, whose lookups must still be reported exactly; the pipeline's heap growth is
//! measured with a counting global allocator and must stay below `support::hostile::BOUND`
//! while far more input than that is fed. Tests share the allocator's counters, so they run
//! one at a time.

mod support;

use doh_trace::lookup::Lookup;
use doh_trace_common::CAPTURE_TLS_FULL;
use hickory_proto::rr::RecordType;
use support::{clients::*, dns::*, expect::summaries, hostile::*, *};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

// ===== hostile HTTP/1.1 =====

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
        .flat_map(|i| bare_post(&query(&format!("p{i}.h1.test"), RecordType::A, i as u16)))
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
    w.send(&mut p, chunks, I, &bare_answer(&answer(&q_chunked)));
    w.send(&mut p, chunks, E, &bare_post(&q_after));
    w.send(&mut p, chunks, I, &bare_answer(&answer(&q_after)));
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
    let (lookups, decisions) = outputs(&mut p, &mut w);
    assert_eq!(c_long.h1_errors, 1, "the 10 MiB line: {c_long:?}");
    let (unanswered, other): (Vec<Lookup>, Vec<Lookup>) =
        lookups.into_iter().partition(|l| l.name().starts_with('p'));
    assert_eq!(
        summary(&other),
        vec![Expect::brief("after.h1.test", "A", "ok", &["192.0.2.10"])],
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
    let want = summaries(
        (0..1024).map(|i| Expect::brief(&format!("p{i}.h1.test"), "A", "unanswered", &[])),
    );
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
    let reqs: Vec<u8> = (0..n).flat_map(|i| bare_post(&q(i))).collect();
    w.send(&mut p, conn, E, &reqs);
    // The server answers the first request; the client sends one more; the server answers
    // all the others in order.
    w.send(&mut p, conn, I, &bare_answer(&answer_ip(&q(0), ip(0))));
    w.send(&mut p, conn, E, &bare_post(&q(n)));
    for i in 1..=n {
        w.send(&mut p, conn, I, &bare_answer(&answer_ip(&q(i), ip(i))));
        if i % 100 == 0 {
            normal.step(&mut w, &mut p);
        }
    }
    normal.finish(&mut w, &mut p);
    w.close(&mut p, conn);
    let peak = mem.peak();
    assert!(peak < BOUND, "{peak}");

    let c = p.counters().clone();
    let (lookups, _) = outputs(&mut p, &mut w);
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
