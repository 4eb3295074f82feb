//! Hostile DNS inside DoH, replayed through the whole pipeline without root: compression loops,
//! forward pointers, over-long names and long pointer chains are malformed, never a panic.
//!
//! Every test drives one `Pipeline` with kernel-shaped data events of an attacking connection
//! and, in the same pipeline, a normal DoH connection of a real `h2` client and server on
//! another fd, whose lookups must still be reported exactly; the pipeline's heap growth is
//! measured with a counting global allocator and must stay below `support::hostile::BOUND`
//! while far more input than that is fed. Tests share the allocator's counters, so they run
//! one at a time.

mod support;

use std::time::Instant;

use doh_trace_common::CAPTURE_TLS_FULL;
use hickory_proto::rr::RecordType;
use support::{dns::*, frames::*, hostile::*, *};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

// ===== DNS compression loops and pointer chains =====

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
    // Each kind of lookup (name, type, status, answer count and last answer) and how often.
    let mut seen: Vec<(Expect, u32)> = Vec::new();
    let mut normal_lookups = Vec::new();
    let mem = Mem::start();
    let t = Instant::now();
    w.send(&mut p, dns, E, &client_start(BIG_FRAMES));
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
                let kind = Expect::brief(
                    l.name(),
                    l.qtype.as_deref().unwrap_or_default(),
                    l.status.as_str(),
                    // answer count and last answer (the chain has 2,001)
                    &[
                        &l.answers.len().to_string(),
                        &l.answers.last().cloned().unwrap_or_default(),
                    ],
                );
                match seen.iter_mut().find(|(k, _)| *k == kind) {
                    Some((_, n)) => *n += 1,
                    None => seen.push((kind, 1)),
                }
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
    let chain: Vec<&(Expect, u32)> = seen
        .iter()
        .filter(|(k, _)| k.qname.as_deref() == Some("chain.test"))
        .collect();
    assert_eq!(chain.len(), 1, "{chain:?}");
    let chain_ok = chain[0].0.status == "ok";
    let chain_bad = u32::from(!chain_ok);
    let mut want = vec![
        (
            Expect::brief("self.loop.test", "A", "malformed-answer", &["0", ""]),
            round,
        ),
        (
            Expect::brief("two.loop.test", "A", "malformed-answer", &["0", ""]),
            round,
        ),
        (
            Expect::brief("question.loop.test", "A", "malformed-answer", &["0", ""]),
            round,
        ),
        (
            // The NULL record holding the chain, then the 2,000 A records named through it.
            if chain_ok {
                Expect::brief("chain.test", "A", "ok", &["2001", "10.9.7.207"])
            } else {
                Expect::brief("chain.test", "A", "malformed-answer", &["0", ""])
            },
            1,
        ),
    ];
    want.sort_by(|a, b| a.0.summary_key().cmp(&b.0.summary_key()));
    seen.sort_by(|a, b| a.0.summary_key().cmp(&b.0.summary_key()));
    assert_eq!(
        seen, want,
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
