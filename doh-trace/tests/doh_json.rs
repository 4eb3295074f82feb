//! The JSON DoH API (Google's `/resolve`, Cloudflare's `application/dns-json`) over HTTP/2 and
//! HTTP/1.1: names, types, answers behind a CNAME, NXDOMAIN and latencies.
//!
//! Every connection is scripted as the kernel reports it (connect, data chunks of each I/O
//! call, close, exit) and run with its calls whole, in 1-byte and in 7-byte calls, with
//! identical lookups, counters and capture decisions. Bytes are written by hand in the shapes
//! real clients and servers send (`support::clients`); the JSON-over-HTTP/2 connection is recorded
//! from the `h2` crate.

mod support;

use bytes::Bytes;
use doh_trace::source::Direction;
use doh_trace_common::{Source, CAPTURE_TLS_FULL};
use support::{clients::*, frames::*, h2_runner::*, kernel::*, Call, Expect};

// ===== JSON DoH =====

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

fn json_wants(conv: &Conv, h2: Option<&[Call]>, latencies: [f64; 3]) -> Vec<Expect> {
    let base = |qname: &str, qtype: &str, path: &str, i: usize| {
        let mut w = want(conv, qname, qtype).get().latency(Some(latencies[i]));
        w.url = Some(format!("https://{TLS_AUTH}{path}"));
        if h2.is_some() {
            w = w.h2(1 + 2 * i as u32);
        }
        w
    };
    vec![
        Expect {
            answers: vec![AAAA_ANS.into()],
            ..base("www.doh.test", "AAAA", "/resolve", 0)
        },
        Expect {
            answers: vec!["edge.doh.test.".into(), A_ANS.into()],
            ..base("www.doh.test", "A", "/dns-query", 1)
        },
        Expect {
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
    let out = located_frames(&calls, Direction::Egress);
    let inn = located_frames(&calls, Direction::Ingress);
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
