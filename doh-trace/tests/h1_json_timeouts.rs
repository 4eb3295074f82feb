//! Pipeline-level tests for HTTP/1.1 DoH (over TLS and cleartext), the h2c upgrade and h2c
//! with prior knowledge, the JSON API over HTTP/2 and HTTP/1.1, timeouts and unanswered
//! queries, and connection classification. Every connection is scripted as the kernel reports
//! it (connect, data chunks of each I/O call, close, exit) and run with its calls whole, in
//! 1-byte and in 7-byte calls, with identical lookups, counters and capture decisions.
//!
//! Bytes are written by hand in the shapes curl 7.88, Python httpx, h2o and dnsdist 1.7 send,
//! except the JSON-over-HTTP/2 connection, which is recorded from the `h2` crate.

mod support;

use base64::Engine as _;
use bytes::Bytes;
use doh_trace::{counters::DecodeCounters, source::Direction};
use doh_trace_common::{
    Source, CAPTURE_SOCK_FULL, CAPTURE_SOCK_SKIP, CAPTURE_TLS_FULL, CAPTURE_TLS_SKIP,
};
use hickory_proto::rr::RecordType;
use support::{
    answer,
    frames::{self, *},
    kernel::*,
    query, Call,
};

const TLS_PEER: &str = "127.0.0.1:8443";
const TLS_AUTH: &str = "doh.test:8443";
const TLS_URL: &str = "https://doh.test:8443/dns-query";
const CLEAR_PEER: &str = "127.0.0.1:8053";
const CLEAR_AUTH: &str = "doh.test:8053";
const CLEAR_URL: &str = "http://doh.test:8053/dns-query";
const A_ANS: &str = "192.0.2.10";
const AAAA_ANS: &str = "2001:db8::10";

// ===== bytes =====

fn b64(q: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(q)
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// curl 7.88 `--doh-url` over HTTP/1.1: a POST whose head and body go out in one write.
fn curl_post(host: &str, q: &[u8]) -> Vec<u8> {
    cat(&[
        format!(
            "POST /dns-query HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/7.88.1\r\n\
             Accept: */*\r\nContent-Type: application/dns-message\r\n\
             Content-Length: {}\r\n\r\n",
            q.len()
        )
        .as_bytes(),
        q,
    ])
}

/// curl 7.88 GET with `?dns=`.
fn curl_get(host: &str, q: &[u8]) -> Vec<u8> {
    format!(
        "GET /dns-query?dns={} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/7.88.1\r\n\
         Accept: application/dns-message\r\n\r\n",
        b64(q)
    )
    .into_bytes()
}

/// h2o 2.2 answering over HTTP/1.1 with Content-Length.
fn h2o_response(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    cat(&[
        format!(
            "HTTP/1.1 {status}\r\nDate: Tue, 14 May 2024 10:00:00 GMT\r\nConnection: keep-alive\r\n\
             Server: h2o/2.2.6\r\nContent-Type: {content_type}\r\nCache-Control: max-age=300\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
        body,
    ])
}

fn dns_ok(body: &[u8]) -> Vec<u8> {
    h2o_response("200 OK", "application/dns-message", body)
}

/// A chunked response head (as h2o sends when the handler streams).
fn chunked_head(content_type: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nDate: Tue, 14 May 2024 10:00:00 GMT\r\nConnection: keep-alive\r\n\
         Server: h2o/2.2.6\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes()
}

fn chunk(data: &[u8]) -> Vec<u8> {
    cat(&[format!("{:x}\r\n", data.len()).as_bytes(), data, b"\r\n"])
}

/// A whole chunked body in chunks of `at` bytes, with the last-chunk and no trailers.
fn chunked_body(data: &[u8], at: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in data.chunks(at) {
        out.extend(chunk(c));
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn qa(name: &str) -> Vec<u8> {
    query(name, RecordType::A, 0)
}

fn qaaaa(name: &str) -> Vec<u8> {
    query(name, RecordType::AAAA, 0)
}

// ===== HTTP/2 bytes =====

/// curl 7.88 (nghttp2) opening an HTTP/2 connection: preface, SETTINGS, WINDOW_UPDATE.
fn curl_h2_preface() -> Vec<u8> {
    cat(&[
        PREFACE,
        &encode_all(&[
            settings(&[
                (SETTINGS_MAX_CONCURRENT_STREAMS, 100),
                (SETTINGS_INITIAL_WINDOW_SIZE, 10 * 1024 * 1024),
                (SETTINGS_ENABLE_PUSH, 0),
            ]),
            window_update(0, 1_048_510_465),
        ]),
    ])
}

/// dnsdist 1.7 (nghttp2) server SETTINGS.
fn dnsdist_settings() -> Frame {
    settings(&[(SETTINGS_MAX_CONCURRENT_STREAMS, 100)])
}

/// A request HEADERS (+ DATA with the query for a POST) as curl sends it.
fn h2_request(
    enc: &mut loona_hpack::Encoder<'_>,
    stream: u32,
    scheme: &str,
    authority: &str,
    post: Option<&[u8]>,
    get: Option<&[u8]>,
) -> Vec<u8> {
    let path = match get {
        Some(q) => format!("/dns-query?dns={}", b64(q)),
        None => "/dns-query".to_string(),
    };
    let method = if post.is_some() { "POST" } else { "GET" };
    let len = post.map(|q| q.len().to_string()).unwrap_or_default();
    let mut fields = vec![
        (":method", method),
        (":path", path.as_str()),
        (":scheme", scheme),
        (":authority", authority),
        ("user-agent", "curl/7.88.1"),
        ("accept", "application/dns-message"),
    ];
    if post.is_some() {
        fields.push(("content-type", "application/dns-message"));
        fields.push(("content-length", len.as_str()));
    }
    let block = loona_block(enc, &fields);
    let mut frames = header_frames(
        stream,
        &block,
        &[],
        HeadersOpts {
            end_stream: post.is_none(),
            ..Default::default()
        },
    );
    if let Some(q) = post {
        frames.push(data(stream, q, true));
    }
    encode_all(&frames)
}

/// A 200 response with the DNS answer, as dnsdist sends it.
fn h2_response(enc: &mut loona_hpack::Encoder<'_>, stream: u32, body: &[u8]) -> Vec<u8> {
    let len = body.len().to_string();
    let block = loona_block(
        enc,
        &[
            (":status", "200"),
            ("server", "h2o/dnsdist"),
            ("content-type", "application/dns-message"),
            ("content-length", len.as_str()),
            ("cache-control", "max-age=300"),
        ],
    );
    let mut frames = header_frames(stream, &block, &[], HeadersOpts::default());
    frames.push(data(stream, body, true));
    encode_all(&frames)
}

// ===== expected lookups and counters =====

/// An answered POST over HTTP/1.1 through TLS to [`TLS_URL`], 1 ms after it was sent.
fn want(conv: &Conv, qname: &str, qtype: &str) -> Want {
    let tls = conv.source.is_tls();
    Want {
        qname: Some(qname.into()),
        qtype: Some(qtype.into()),
        status: "ok",
        answers: vec![],
        rcode: Some("NOERROR".into()),
        method: Some("POST".into()),
        http_version: Some("http/1.1"),
        stream_id: None,
        url: Some(if tls { TLS_URL } else { CLEAR_URL }.into()),
        authority: Some(if tls { TLS_AUTH } else { CLEAR_AUTH }.into()),
        headers_known: Some(true),
        http_status: Some(200),
        latency_ms: Some(1.0),
        dns_id: Some(0),
        pid: conv.pid,
        tid: conv.pid + 1,
        comm: conv.comm.into(),
        server: conv.peer.map(|p| p.to_string()),
    }
}

fn a(conv: &Conv, qname: &str) -> Want {
    Want {
        answers: vec![A_ANS.into()],
        ..want(conv, qname, "A")
    }
}

fn aaaa(conv: &Conv, qname: &str) -> Want {
    Want {
        answers: vec![AAAA_ANS.into()],
        ..want(conv, qname, "AAAA")
    }
}

impl WantExt for Want {
    fn get(mut self) -> Want {
        self.method = Some("GET".into());
        self
    }
    fn h2(mut self, stream: u32) -> Want {
        self.http_version = Some("h2");
        self.stream_id = Some(stream);
        self
    }
    fn latency(mut self, ms: Option<f64>) -> Want {
        self.latency_ms = ms;
        self
    }
    fn ended(mut self, status: &'static str) -> Want {
        self.status = status;
        self.rcode = None;
        self.answers.clear();
        self.http_status = None;
        self.latency_ms = None;
        self
    }
}

trait WantExt {
    fn get(self) -> Want;
    fn h2(self, stream: u32) -> Want;
    fn latency(self, ms: Option<f64>) -> Want;
    /// Ended without an answer (`timeout`, `unanswered`).
    fn ended(self, status: &'static str) -> Want;
}

fn h1_counters(lookups: u64) -> DecodeCounters {
    DecodeCounters {
        h1_client_conns: 1,
        lookups,
        ..Default::default()
    }
}

fn h2_counters(lookups: u64) -> DecodeCounters {
    DecodeCounters {
        h2_client_conns: 1,
        lookups,
        ..Default::default()
    }
}

fn curl_tls() -> Conv {
    Conv::new(4100, 5, "curl", Source::OpenSsl).peer(TLS_PEER)
}

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
            Want {
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
        &[Want {
            status: "http-error",
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
    let want: Vec<Want> = names.iter().map(|n| a(&conv, n).get()).collect();
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

// ===== 3. h2c upgrade =====

#[test]
fn h2c_upgrade_answers_on_stream_1_then_http2_on_stream_3() {
    let (q1, q3) = (qa("www.doh.test"), qaaaa("www.doh.test"));
    let client_settings = settings(&[
        (SETTINGS_MAX_CONCURRENT_STREAMS, 100),
        (SETTINGS_INITIAL_WINDOW_SIZE, 10 * 1024 * 1024),
        (SETTINGS_ENABLE_PUSH, 0),
    ]);
    let upgrade = format!(
        "GET /dns-query?dns={} HTTP/1.1\r\nHost: {CLEAR_AUTH}\r\nUser-Agent: curl/7.88.1\r\n\
         Accept: application/dns-message\r\nConnection: Upgrade, HTTP2-Settings\r\n\
         Upgrade: h2c\r\nHTTP2-Settings: {}\r\n\r\n",
        b64(&q1),
        b64(&client_settings.payload)
    );
    let mut server_enc = loona_hpack::Encoder::new();
    let mut client_enc = loona_hpack::Encoder::new();
    let switched = cat(&[
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
        &encode_all(&[settings(&[
            (SETTINGS_MAX_CONCURRENT_STREAMS, 100),
            (SETTINGS_INITIAL_WINDOW_SIZE, 16 * 1024 * 1024),
        ])]),
        &h2_response(&mut server_enc, 1, &answer(&q1)),
    ]);
    let conv = Conv::new(4300, 7, "curl", Source::Socket)
        .peer(CLEAR_PEER)
        .send(upgrade)
        .recv(switched)
        .send(cat(&[
            PREFACE,
            &encode_all(&[client_settings.clone(), settings_ack()]),
        ]))
        .send(h2_request(
            &mut client_enc,
            3,
            "http",
            CLEAR_AUTH,
            Some(&q3),
            None,
        ))
        .recv(cat(&[
            &settings_ack().encode(),
            &h2_response(&mut server_enc, 3, &answer(&q3)),
        ]));
    check(
        &conv,
        &[
            a(&conv, "www.doh.test").get().h2(1),
            aaaa(&conv, "www.doh.test").h2(3),
        ],
        &DecodeCounters {
            h1_client_conns: 1,
            h2c_upgrades: 1,
            lookups: 2,
            ..Default::default()
        },
        &[conv.decision(CAPTURE_SOCK_FULL)],
        &[],
    );
}

// ===== 4. h2c with prior knowledge =====

#[test]
fn h2c_prior_knowledge_on_a_cleartext_socket() {
    let q = qa("www.doh.test");
    let mut client_enc = loona_hpack::Encoder::new();
    let mut server_enc = loona_hpack::Encoder::new();
    let conv = Conv::new(4400, 8, "curl", Source::Socket)
        .peer(CLEAR_PEER)
        .send(cat(&[
            &curl_h2_preface(),
            &h2_request(&mut client_enc, 1, "http", CLEAR_AUTH, None, Some(&q)),
        ]))
        .recv(cat(&[
            &encode_all(&[dnsdist_settings(), settings_ack()]),
            &h2_response(&mut server_enc, 1, &answer(&q)),
        ]))
        .send(settings_ack().encode());
    check(
        &conv,
        &[a(&conv, "www.doh.test").get().h2(1)],
        &h2_counters(1),
        &[conv.decision(CAPTURE_SOCK_FULL)],
        &[],
    );
}

// ===== 5. JSON DoH =====

/// Google's answer for `www.doh.test AAAA`.
const GOOGLE_AAAA: &str = r#"{"Status":0,"TC":false,"RD":true,"RA":true,"AD":false,"CD":false,"Question":[{"name":"www.doh.test.","type":28}],"Answer":[{"name":"www.doh.test.","type":28,"TTL":300,"data":"2001:db8::10"}],"Comment":"Response from 192.0.2.53."}"#;
/// Cloudflare's answer for `www.doh.test A`, behind a CNAME.
const CLOUDFLARE_A: &str = r#"{"Status":0,"TC":false,"RD":true,"RA":true,"AD":false,"CD":false,"Question":[{"name":"www.doh.test","type":1}],"Answer":[{"name":"www.doh.test","type":5,"TTL":300,"data":"edge.doh.test."},{"name":"edge.doh.test","type":1,"TTL":60,"data":"192.0.2.10"}]}"#;
/// Cloudflare's NXDOMAIN for `nx.doh.test A`.
const CLOUDFLARE_NX: &str = r#"{"Status":3,"TC":false,"RD":true,"RA":true,"AD":false,"CD":false,"Question":[{"name":"nx.doh.test","type":1}],"Authority":[{"name":"doh.test","type":6,"TTL":1800,"data":"ns.doh.test. hostmaster.doh.test. 1 7200 3600 1209600 3600"}]}"#;

fn json_for(path: &str) -> (&'static str, &'static str) {
    if path.starts_with("/resolve?name=www.doh.test&type=AAAA") {
        ("application/json; charset=UTF-8", GOOGLE_AAAA)
    } else if path.starts_with("/dns-query?name=www.doh.test&type=A") {
        ("application/dns-json", CLOUDFLARE_A)
    } else if path.starts_with("/dns-query?name=nx.doh.test&type=A") {
        ("application/dns-json", CLOUDFLARE_NX)
    } else {
        panic!("unexpected {path}")
    }
}

/// The JSON requests: (path, accept).
const JSON_REQUESTS: [(&str, &str); 3] = [
    ("/resolve?name=www.doh.test&type=AAAA", "*/*"),
    (
        "/dns-query?name=www.doh.test&type=A",
        "application/dns-json",
    ),
    ("/dns-query?name=nx.doh.test&type=A", "application/dns-json"),
];

/// The step index of the call holding byte `offset` of direction `dir` (egress offsets count
/// the preface).
fn step_of(calls: &[Call], dir: Direction, offset: usize) -> usize {
    let mut at = 0;
    for (i, c) in calls.iter().enumerate() {
        if c.dir == dir {
            if offset < at + c.bytes.len() {
                return i;
            }
            at += c.bytes.len();
        }
    }
    panic!("offset {offset} beyond {dir:?}");
}

fn json_wants(conv: &Conv, h2: Option<&[Call]>, latencies: [f64; 3]) -> Vec<Want> {
    let base = |qname: &str, qtype: &str, path: &str, i: usize| {
        let mut w = want(conv, qname, qtype).get().latency(Some(latencies[i]));
        w.url = Some(format!("https://{TLS_AUTH}{path}"));
        if h2.is_some() {
            w = w.h2(1 + 2 * i as u32);
        }
        w
    };
    vec![
        Want {
            answers: vec![AAAA_ANS.into()],
            ..base("www.doh.test", "AAAA", "/resolve", 0)
        },
        Want {
            answers: vec!["edge.doh.test.".into(), A_ANS.into()],
            ..base("www.doh.test", "A", "/dns-query", 1)
        },
        Want {
            rcode: Some("NXDOMAIN".into()),
            ..base("nx.doh.test", "A", "/dns-query", 2)
        },
    ]
}

/// An `h2` client asking the JSON requests one after the other of an `h2` server.
fn json_h2_calls() -> Vec<Call> {
    record_h2(
        h2::client::Builder::new(),
        h2::server::Builder::new(),
        |conn| {
            Box::pin(serve(conn, |req, mut respond| async move {
                let path = req.uri().path_and_query().unwrap().as_str().to_string();
                let (ct, body) = json_for(&path);
                let head = http::Response::builder()
                    .status(200)
                    .header("content-type", ct)
                    .body(())
                    .unwrap();
                let mut send = respond.send_response(head, false).unwrap();
                send.send_data(Bytes::from_static(body.as_bytes()), true)
                    .unwrap();
            }))
        },
        |mut send, _pings| {
            Box::pin(async move {
                for (path, accept) in JSON_REQUESTS {
                    send = send.ready().await.unwrap();
                    let req = http::Request::builder()
                        .method("GET")
                        .uri(format!("https://{TLS_AUTH}{path}"))
                        .header("accept", accept)
                        .body(())
                        .unwrap();
                    let (resp, _) = send.send_request(req, true).unwrap();
                    let (status, _) = response_body(resp).await.unwrap();
                    assert_eq!(status, 200);
                }
            })
        },
    )
}

#[test]
fn json_doh_over_http2_google_and_cloudflare_style() {
    let calls = json_h2_calls();
    let mut conv = Conv::new(4500, 9, "python3", Source::OpenSsl).peer(TLS_PEER);
    for c in &calls {
        conv = match c.dir {
            Direction::Egress => conv.send(&c.bytes),
            Direction::Ingress => conv.recv(&c.bytes),
        };
    }
    // Latency: from the call that completed the request HEADERS (END_STREAM) to the call that
    // completed the response's END_STREAM DATA.
    let out = frames::located_frames(&calls, Direction::Egress);
    let inn = frames::located_frames(&calls, Direction::Ingress);
    let mut lat = [0.0; 3];
    for (i, l) in lat.iter_mut().enumerate() {
        let stream = 1 + 2 * i as u32;
        let req = out
            .iter()
            .find(|f| f.frame.stream == stream && f.frame.kind == HEADERS)
            .unwrap();
        let resp = inn
            .iter()
            .find(|f| f.frame.stream == stream && f.frame.has(END_STREAM))
            .unwrap();
        let (s0, s1) = (
            step_of(&calls, Direction::Egress, req.end - 1),
            step_of(&calls, Direction::Ingress, resp.end - 1),
        );
        *l = (conv.ts_of(s1) - conv.ts_of(s0)) as f64 / 1e6;
    }
    check(
        &conv,
        &json_wants(&conv, Some(&calls), lat),
        &h2_counters(3),
        &[conv.decision(CAPTURE_TLS_FULL)],
        &[],
    );
}

#[test]
fn json_doh_over_http1_google_and_cloudflare_style() {
    let req = |path: &str, accept: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {TLS_AUTH}\r\nAccept: {accept}\r\n\
             Accept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\
             User-Agent: python-httpx/0.27.0\r\n\r\n"
        )
    };
    let mut conv = Conv::new(4600, 10, "python3", Source::OpenSsl).peer(TLS_PEER);
    for (i, (path, accept)) in JSON_REQUESTS.iter().enumerate() {
        let (ct, body) = json_for(path);
        conv = conv.send(req(path, accept));
        conv = if i == 1 {
            conv.recv(cat(&[
                &chunked_head(ct),
                &chunked_body(body.as_bytes(), 100),
            ]))
        } else {
            conv.recv(h2o_response("200 OK", ct, body.as_bytes()))
        };
    }
    check(
        &conv,
        &json_wants(&conv, None, [1.0; 3]),
        &h1_counters(3),
        &[conv.decision(CAPTURE_TLS_FULL)],
        &[],
    );
}

// ===== 6. timeouts, close, exit =====

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

// ===== 7. classification =====

#[test]
fn h1_connection_whose_first_request_is_not_doh_is_skipped() {
    let body = br#"{"user":"alice","password":"hunter2"}"#;
    let req = cat(&[
        format!(
            "POST /api/v1/login?next=%2Fsecret-dashboard HTTP/1.1\r\nHost: {TLS_AUTH}\r\n\
             User-Agent: curl/7.88.1\r\nAccept: */*\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
        body,
    ]);
    let resp_body = b"{\"token\":\"eyJ-very-private\"}";
    let conv = curl_tls()
        .send(req)
        .recv(h2o_response("200 OK", "application/json", resp_body));
    check(
        &conv,
        &[],
        &DecodeCounters {
            h1_client_conns: 1,
            non_dns_conns: 1,
            ..Default::default()
        },
        &[conv.decision(CAPTURE_TLS_SKIP)],
        &[
            b"/api/v1/login",
            b"secret-dashboard",
            b"hunter2",
            b"alice",
            b"eyJ-very-private",
        ],
    );
}

#[test]
fn h1_server_side_connection_is_not_reported() {
    // The traced process is the DoH server: the request is read, the answer written.
    let q = qa("server.doh.test");
    let conv = Conv::new(4700, 11, "h2o", Source::OpenSsl)
        .recv(curl_post(TLS_AUTH, &q))
        .send(dns_ok(&answer(&q)));
    check(
        &conv,
        &[],
        &DecodeCounters {
            server_side_conns: 1,
            ..Default::default()
        },
        &[conv.decision(CAPTURE_TLS_SKIP)],
        &[b"server.doh.test"],
    );
}

#[test]
fn h1_server_side_non_doh_request_is_not_reported() {
    let conv = Conv::new(4701, 12, "nginx", Source::Socket)
        .recv("GET /admin/secret-report.pdf HTTP/1.1\r\nHost: intranet\r\n\r\n")
        .send(h2o_response(
            "200 OK",
            "application/pdf",
            b"%PDF-confidential",
        ));
    check(
        &conv,
        &[],
        &DecodeCounters {
            server_side_conns: 1,
            ..Default::default()
        },
        &[conv.decision(CAPTURE_SOCK_SKIP)],
        &[b"secret-report", b"admin", b"confidential"],
    );
}

#[test]
fn tls_records_on_a_socket_are_skipped() {
    // A ClientHello and ServerHello of a TLS stack that is not hooked (ciphertext only). The
    // hello's body is filler, not a parseable ClientHello: that is counted, and the socket is
    // skipped all the same.
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x00, 0xf4, 0x01, 0x00, 0x00, 0xf0, 0x03, 0x03,
    ];
    hello.extend((0..0xf4 - 6).map(|i| (i * 37 % 251) as u8));
    let mut server_hello = vec![
        0x16, 0x03, 0x03, 0x00, 0x7a, 0x02, 0x00, 0x00, 0x76, 0x03, 0x03,
    ];
    server_hello.extend((0..0x7a - 6).map(|i| (i * 53 % 251) as u8));
    let conv = Conv::new(4800, 13, "rustls-app", Source::Socket)
        .peer(TLS_PEER)
        .send(hello)
        .recv(server_hello);
    check(
        &conv,
        &[],
        &DecodeCounters {
            tls_on_socket_conns: 1,
            bad_client_hellos: 1,
            ..Default::default()
        },
        &[conv.decision(CAPTURE_SOCK_SKIP)],
        &[],
    );
}
