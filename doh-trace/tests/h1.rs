//! HTTP/1.1 DoH through the pipeline, over TLS and on a cleartext socket: POST with
//! Content-Length, GET with `?dns=`, keep-alive and pipelining, chunked responses, interim
//! `100 Continue`, non-2xx answers, and a query open when the connection closes.
//!
//! Every connection is scripted as the kernel reports it (connect, data chunks of each I/O
//! call, close, exit) and run with its calls whole, in 1-byte and in 7-byte calls, with
//! identical lookups, counters and capture decisions. Bytes are written by hand in the shapes
//! real clients and servers send (`support::clients`).

mod support;

use doh_trace_common::{Source, CAPTURE_SOCK_FULL, CAPTURE_TLS_FULL};
use support::{answer, clients::*, kernel::*, Expect};

// ===== 1. HTTP/1.1 over TLS =====

#[test]
fn h1_post_with_content_length_and_a_keep_alive_second_request() {
    let (q1, q2) = (qa("www.doh.test"), qaaaa("www.doh.test"));
    let r2 = dns_ok(&answer(&q2));
    let conv = curl_tls()
        .send(curl_post(TLS_AUTH, &q1))
        .recv(dns_ok(&answer(&q1)))
        // The second response is read in two calls: head and part of the body, then the rest.
        .send(curl_post(TLS_AUTH, &q2))
        .recv(&r2[..r2.len() - 10])
        .recv(&r2[r2.len() - 10..]);
    check(
        &conv,
        &[
            a(&conv, "www.doh.test"),
            aaaa(&conv, "www.doh.test").latency(Some(2.0)),
        ],
        &h1_counters(2),
        &[conv.decision(CAPTURE_TLS_FULL)],
        &[],
    );
}

#[test]
fn h1_two_pipelined_gets_in_one_call_and_both_responses_in_one_call() {
    let (q1, q2) = (qa("www.doh.test"), qaaaa("nx.doh.test"));
    let conv = curl_tls()
        .send(cat(&[&curl_get(TLS_AUTH, &q1), &curl_get(TLS_AUTH, &q2)]))
        .recv(cat(&[&dns_ok(&answer(&q1)), &dns_ok(&answer(&q2))]));
    check(
        &conv,
        &[
            a(&conv, "www.doh.test").get(),
            Expect {
                rcode: Some("NXDOMAIN".into()),
                ..want(&conv, "nx.doh.test", "AAAA").get()
            },
        ],
        &h1_counters(2),
        &[conv.decision(CAPTURE_TLS_FULL)],
        &[],
    );
}

#[test]
fn h1_chunked_response_read_across_calls() {
    let q = qaaaa("www.doh.test");
    let body = chunked_body(&answer(&q), 16);
    let conv = curl_tls()
        .send(curl_post(TLS_AUTH, &q))
        .recv(cat(&[
            &chunked_head("application/dns-message"),
            &body[..20],
        ]))
        .recv(&body[20..]);
    check(
        &conv,
        &[aaaa(&conv, "www.doh.test").latency(Some(2.0))],
        &h1_counters(1),
        &[conv.decision(CAPTURE_TLS_FULL)],
        &[],
    );
}

#[test]
fn h1_get_with_dns_parameter() {
    let q = qa("www.doh.test");
    let conv = curl_tls()
        .send(curl_get(TLS_AUTH, &q))
        .recv(dns_ok(&answer(&q)));
    let runs = check(
        &conv,
        &[a(&conv, "www.doh.test").get()],
        &h1_counters(1),
        &[conv.decision(CAPTURE_TLS_FULL)],
        &[],
    );
    // The URL has no query string: the query itself is not in it.
    assert_private(&runs[0], &[b64(&q).as_bytes()]);
}

#[test]
fn h1_non_2xx_is_an_http_error() {
    let q = qa("www.doh.test");
    let conv = curl_tls().send(curl_post(TLS_AUTH, &q)).recv(h2o_response(
        "415 Unsupported Media Type",
        "text/plain; charset=utf-8",
        b"unsupported media type",
    ));
    check(
        &conv,
        &[Expect {
            status: "http-error".into(),
            http_status: Some(415),
            rcode: None,
            ..want(&conv, "www.doh.test", "A")
        }],
        &h1_counters(1),
        &[conv.decision(CAPTURE_TLS_FULL)],
        &[],
    );
}

#[test]
fn h1_expect_100_continue_with_an_interim_response() {
    let q = qa("www.doh.test");
    let head = format!(
        "POST /dns-query HTTP/1.1\r\nHost: {TLS_AUTH}\r\nUser-Agent: curl/7.88.1\r\n\
         Accept: */*\r\nContent-Type: application/dns-message\r\nContent-Length: {}\r\n\
         Expect: 100-continue\r\n\r\n",
        q.len()
    );
    let conv = curl_tls()
        .send(head)
        .recv("HTTP/1.1 100 Continue\r\n\r\n")
        .send(&q)
        .recv(dns_ok(&answer(&q)));
    check(
        &conv,
        &[a(&conv, "www.doh.test")],
        &h1_counters(1),
        &[conv.decision(CAPTURE_TLS_FULL)],
        &[],
    );
}

#[test]
fn h1_keep_alive_pairs_in_order_around_a_non_doh_request() {
    // DoH, then an ordinary page on the same connection, then DoH again, all pipelined.
    let (q1, q2) = (qa("www.doh.test"), qaaaa("www.doh.test"));
    let page = format!(
        "GET /private/inbox?session=s3cr3t-token HTTP/1.1\r\nHost: {TLS_AUTH}\r\n\
         User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n"
    );
    let page_body = b"<html>private mailbox contents</html>";
    let conv = curl_tls()
        .send(curl_post(TLS_AUTH, &q1))
        .send(page)
        .send(curl_get(TLS_AUTH, &q2))
        .recv(dns_ok(&answer(&q1)))
        .recv(h2o_response("200 OK", "text/html", page_body))
        .recv(dns_ok(&answer(&q2)));
    check(
        &conv,
        &[
            a(&conv, "www.doh.test").latency(Some(3.0)),
            aaaa(&conv, "www.doh.test").get().latency(Some(3.0)),
        ],
        &h1_counters(2),
        &[conv.decision(CAPTURE_TLS_FULL)],
        &[b"/private", b"s3cr3t-token", b"inbox", page_body],
    );
}

#[test]
fn h1_pipelined_batch_larger_than_a_kernel_chunk() {
    // 40 GETs in one write and 40 responses in one read: both calls span several
    // CHUNK_SIZE chunks (offset > 0) when delivered whole.
    let names: Vec<String> = (0..40).map(|i| format!("host{i:02}.doh.test")).collect();
    let qs: Vec<Vec<u8>> = names.iter().map(|n| qa(n)).collect();
    let reqs: Vec<u8> = qs.iter().flat_map(|q| curl_get(TLS_AUTH, q)).collect();
    let resps: Vec<u8> = qs.iter().flat_map(|q| dns_ok(&answer(q))).collect();
    assert!(reqs.len() > 4096 && resps.len() > 4096 * 2);
    let conv = curl_tls().send(reqs).recv(resps);
    let want: Vec<Expect> = names.iter().map(|n| a(&conv, n).get()).collect();
    check(
        &conv,
        &want,
        &h1_counters(40),
        &[conv.decision(CAPTURE_TLS_FULL)],
        &[],
    );
}

#[test]
fn h1_query_open_when_the_connection_closes_is_unanswered() {
    let (q1, q2) = (qa("www.doh.test"), qaaaa("www.doh.test"));
    let conv = curl_tls()
        .send(curl_post(TLS_AUTH, &q1))
        .recv(dns_ok(&answer(&q1)))
        .send(curl_post(TLS_AUTH, &q2))
        .step(Step::Close);
    check(
        &conv,
        &[
            a(&conv, "www.doh.test"),
            want(&conv, "www.doh.test", "AAAA").ended("unanswered"),
        ],
        &h1_counters(2),
        &[conv.decision(CAPTURE_TLS_FULL)],
        &[],
    );
}

// ===== 2. HTTP/1.1 cleartext =====

#[test]
fn h1_cleartext_socket_gives_http_urls() {
    // Python httpx (h11): head and body in separate writes, lower-case DoH headers.
    let q = qa("www.doh.test");
    let head = format!(
        "POST /dns-query HTTP/1.1\r\nHost: {CLEAR_AUTH}\r\nAccept-Encoding: gzip, deflate\r\n\
         Connection: keep-alive\r\nUser-Agent: python-httpx/0.27.0\r\n\
         accept: application/dns-message\r\ncontent-type: application/dns-message\r\n\
         content-length: {}\r\n\r\n",
        q.len()
    );
    let conv = Conv::new(4200, 6, "python3", Source::Socket)
        .peer(CLEAR_PEER)
        .send(head)
        .send(&q)
        .recv(dns_ok(&answer(&q)));
    check(
        &conv,
        &[a(&conv, "www.doh.test")],
        &h1_counters(1),
        &[conv.decision(CAPTURE_SOCK_FULL)],
        &[],
    );
}
