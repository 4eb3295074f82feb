//! Lookups that end without an answer: timed out on a later unrelated event or on a tick, or
//! left open when the connection closes or the process exits (HTTP/2 and HTTP/1.1).
//!
//! Every connection is scripted as the kernel reports it (connect, data chunks of each I/O
//! call, close, exit) and run with its calls whole, in 1-byte and in 7-byte calls, with
//! identical lookups, counters and capture decisions. Bytes are written by hand in the shapes
//! real clients and servers send (`support::clients`).

mod support;

use doh_trace_common::CAPTURE_TLS_FULL;
use support::{answer, clients::*, frames::*, kernel::*};

// ===== timeouts, close, exit =====

/// curl on HTTP/2 over TLS: stream 1 (A) is never answered, stream 3 (AAAA) is.
fn h2_one_unanswered() -> Conv {
    let (q1, q3) = (qa("www.doh.test"), qaaaa("www.doh.test"));
    let mut client_enc = loona_hpack::Encoder::new();
    let mut server_enc = loona_hpack::Encoder::new();
    curl_tls()
        .send(curl_h2_preface())
        .recv(encode_all(&[dnsdist_settings(), settings_ack()]))
        .send(cat(&[
            &settings_ack().encode(),
            &h2_request(&mut client_enc, 1, "https", TLS_AUTH, Some(&q1), None),
        ]))
        .send(h2_request(
            &mut client_enc,
            3,
            "https",
            TLS_AUTH,
            Some(&q3),
            None,
        ))
        .recv(h2_response(&mut server_enc, 3, &answer(&q3)))
}

const SEC: u64 = 1_000_000_000;

fn check_h2_ending(conv: &Conv, ending: Option<&'static str>) {
    let mut want = vec![aaaa(conv, "www.doh.test").h2(3)];
    if let Some(status) = ending {
        want.push(a(conv, "www.doh.test").h2(1).ended(status));
    }
    check(
        conv,
        &want,
        &h2_counters(want.len() as u64),
        &[conv.decision(CAPTURE_TLS_FULL)],
        &[],
    );
}

#[test]
fn h2_unanswered_query_times_out_on_a_later_unrelated_event() {
    check_h2_ending(&h2_one_unanswered(), None);
    // 29 s later nothing has timed out yet.
    let early = h2_one_unanswered()
        .step(Step::Wait(29 * SEC))
        .step(Step::Unrelated);
    check_h2_ending(&early, None);
    let late = h2_one_unanswered()
        .step(Step::Wait(31 * SEC))
        .step(Step::Unrelated);
    check_h2_ending(&late, Some("timeout"));
}

#[test]
fn h2_unanswered_query_times_out_on_tick() {
    let conv = h2_one_unanswered()
        .step(Step::Wait(31 * SEC))
        .step(Step::Tick);
    check_h2_ending(&conv, Some("timeout"));
}

#[test]
fn h2_query_open_at_close_is_unanswered() {
    let conv = h2_one_unanswered().step(Step::Close);
    check_h2_ending(&conv, Some("unanswered"));
}

#[test]
fn h2_query_open_at_exit_is_unanswered() {
    let conv = h2_one_unanswered().step(Step::Exit);
    check_h2_ending(&conv, Some("unanswered"));
}

#[test]
fn h1_unanswered_query_times_out() {
    // The stream timeout applies to every DoH exchange, HTTP/1.1 included.
    let q = qa("www.doh.test");
    let conv = curl_tls()
        .send(curl_post(TLS_AUTH, &q))
        .step(Step::Wait(31 * SEC))
        .step(Step::Unrelated);
    check(
        &conv,
        &[want(&conv, "www.doh.test", "A").ended("timeout")],
        &h1_counters(1),
        &[conv.decision(CAPTURE_TLS_FULL)],
        &[],
    );
}
