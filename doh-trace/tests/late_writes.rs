//! A request's last write reported after the answer it brought. The hooks report a TLS write
//! when the call returns, and the writing thread can return after another thread has read the
//! whole response: Go's HTTP/2 client writes a request's DATA on one goroutine and reads the
//! response on another (seen with dnss under emulation, where its AAAA lookup was lost as an
//! "unrecoverable" query). The exchange waits for its request's end, then is one answered
//! lookup; a request whose end never comes is judged without it, and a connection closed
//! meanwhile still reports the answer.
//!
//! Each connection is scripted as the kernel reports it and run whole, in 1-byte and in 7-byte
//! calls (`support::kernel`).

mod support;

use doh_trace::counters::DecodeCounters;
use doh_trace_common::CAPTURE_TLS_FULL;
use support::{answer, clients::*, frames::*, kernel::*};

const SEC: u64 = 1_000_000_000;

/// curl's POST on stream 1 cut where its DATA frame starts: (HEADERS, DATA).
fn post_in_two_writes(q: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut enc = loona_hpack::Encoder::new();
    let bytes = h2_request(&mut enc, 1, "https", TLS_AUTH, Some(q), None);
    let headers_len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
    assert_eq!(bytes[3], HEADERS);
    let cut = 9 + headers_len;
    assert_eq!(bytes[cut + 3], DATA, "one HEADERS frame, then DATA");
    (bytes[..cut].to_vec(), bytes[cut..].to_vec())
}

/// The connection up to the request's HEADERS, then the whole answer read.
fn answered_before_the_request_ended() -> (Conv, Vec<u8>) {
    let q = qa("www.doh.test");
    let (headers, data) = post_in_two_writes(&q);
    let mut server_enc = loona_hpack::Encoder::new();
    let conv = curl_tls()
        .send(curl_h2_preface())
        .recv(encode_all(&[dnsdist_settings(), settings_ack()]))
        .send(cat(&[&settings_ack().encode(), &headers]))
        .recv(h2_response(&mut server_enc, 1, &answer(&q)));
    (conv, data)
}

#[test]
fn a_request_body_reported_after_its_answer_is_one_answered_lookup() {
    let (conv, data) = answered_before_the_request_ended();
    let conv = conv.send(data);
    // The latency runs from the request's first write (its HEADERS), the closest time known
    // to have been before the answer.
    check(
        &conv,
        &[a(&conv, "www.doh.test").h2(1).latency(Some(1.0))],
        &h2_counters(1),
        &[conv.decision(CAPTURE_TLS_FULL)],
        &[],
    );
}

#[test]
fn an_answered_request_whose_end_never_comes_is_judged_without_it() {
    // Two seconds later the exchange is judged: a POST without its body has no query, which
    // is counted (and nothing is made up).
    let (conv, _) = answered_before_the_request_ended();
    let conv = conv.step(Step::Wait(3 * SEC)).step(Step::Tick);
    check(
        &conv,
        &[],
        &DecodeCounters {
            bad_queries: 1,
            ..h2_counters(0)
        },
        &[conv.decision(CAPTURE_TLS_FULL)],
        &[],
    );
}

#[test]
fn a_connection_closed_before_the_request_ended_still_reports_the_answer() {
    let q = qa("www.doh.test");
    let (headers, rest) = post_in_two_writes(&q);
    // The DATA frame arrives without END_STREAM; the empty frame that ends the stream is not
    // reported before the connection closes.
    let body = &rest[9..];
    let mut server_enc = loona_hpack::Encoder::new();
    let conv = curl_tls()
        .send(curl_h2_preface())
        .recv(encode_all(&[dnsdist_settings(), settings_ack()]))
        .send(cat(&[
            &settings_ack().encode(),
            &headers,
            &encode_all(&[data(1, body, false)]),
        ]))
        .recv(h2_response(&mut server_enc, 1, &answer(&q)))
        .step(Step::Close);
    check(
        &conv,
        &[a(&conv, "www.doh.test").h2(1)],
        &h2_counters(1),
        &[conv.decision(CAPTURE_TLS_FULL)],
        &[],
    );
}

#[test]
fn an_http1_request_body_reported_after_its_answer_is_one_answered_lookup() {
    // Go's HTTP/1.1 client writes on one goroutine and reads on another, too.
    let q = qa("www.doh.test");
    let post = curl_post(TLS_AUTH, &q);
    let head_end = post.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let conv = curl_tls()
        .send(&post[..head_end])
        .recv(dns_ok(&answer(&q)))
        .send(&post[head_end..]);
    check(
        &conv,
        &[a(&conv, "www.doh.test")],
        &h1_counters(1),
        &[conv.decision(CAPTURE_TLS_FULL)],
        &[],
    );
}

#[test]
fn http1_keep_alive_pairs_in_order_around_a_late_request_end() {
    // The second request's answer is read before its body is reported; the first was
    // answered in order. Neither answer goes to the other request.
    let (q1, q2) = (qa("www.doh.test"), qaaaa("www.doh.test"));
    let second = curl_post(TLS_AUTH, &q2);
    let head_end = second.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let conv = curl_tls()
        .send(curl_post(TLS_AUTH, &q1))
        .recv(dns_ok(&answer(&q1)))
        .send(&second[..head_end])
        .recv(dns_ok(&answer(&q2)))
        .send(&second[head_end..]);
    check(
        &conv,
        &[a(&conv, "www.doh.test"), aaaa(&conv, "www.doh.test")],
        &h1_counters(2),
        &[conv.decision(CAPTURE_TLS_FULL)],
        &[],
    );
}
