//! Tests of the HTTP/1.1 decoder on DoH traffic as curl, dnsdist (h2o) and Python httpx send
//! it; each input is also fed 1 byte and 7 bytes at a time and must give the same events.

use super::test_support::{cat, requests, responses_to, run, Ev};
use super::*;
use crate::proto::{dns, doh};

/// `www.doh.test A` as curl and dnspython send it (id 0, RD): 30 bytes.
pub(super) const QUERY: &[u8] = b"\x00\x00\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\
\x03www\x03doh\x04test\x00\x00\x01\x00\x01";
/// The same query, base64url without padding (RFC 8484 GET).
const QUERY_B64: &str = "AAABAAABAAAAAAAAA3d3dwNkb2gEdGVzdAAAAQAB";

/// The answer: `www.doh.test A 192.0.2.16`, 46 bytes.
fn answer() -> Vec<u8> {
    let mut a = QUERY.to_vec();
    a[2] = 0x81;
    a[3] = 0x80;
    a[7] = 1;
    a.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\xc0\x00\x02\x10");
    a
}

fn head(ev: &Ev) -> &HeaderFields {
    match ev {
        Ev::Head(f, _) => f,
        other => panic!("expected a head, got {other:?}"),
    }
}

const CURL_POST: &[u8] = b"POST /dns-query HTTP/1.1\r\n\
Host: doh.test:8443\r\n\
Accept: */*\r\n\
Content-Type: application/dns-message\r\n\
Content-Length: 30\r\n\
\r\n";

const H2O_OK: &[u8] = b"HTTP/1.1 200 OK\r\n\
Date: Tue, 14 May 2024 13:25:41 GMT\r\n\
Connection: keep-alive\r\n\
Content-Length: 46\r\n\
Server: h2o/dnsdist\r\n\
content-type: application/dns-message\r\n\
cache-control: max-age=300\r\n\
\r\n";

#[test]
fn curl_post_request_and_dnsdist_h2o_response() {
    let r = run(&requests, &cat(&[CURL_POST, QUERY]));
    assert_eq!(r.error, None);
    let fields = HeaderFields {
        method: Some("POST".into()),
        path: Some("/dns-query".into()),
        authority: Some("doh.test:8443".into()),
        content_type: Some("application/dns-message".into()),
        accept: Some("*/*".into()),
        ..Default::default()
    };
    assert_eq!(
        r.events,
        vec![
            Ev::Head(fields.clone(), false),
            Ev::Body(QUERY.to_vec()),
            Ev::End
        ]
    );
    assert_eq!(doh::classify(&fields), Some(Ok(doh::DohRequest::Post)));

    let r = run(&responses_to(&["POST"]), &cat(&[H2O_OK, &answer()]));
    assert_eq!(r.error, None);
    assert_eq!(r.events.len(), 3);
    let f = head(&r.events[0]);
    assert_eq!(f.status.as_deref(), Some("200"));
    assert_eq!(f.content_type.as_deref(), Some("application/dns-message"));
    let Ev::Body(body) = &r.events[1] else {
        panic!()
    };
    let s = dns::summarize(body).unwrap();
    assert_eq!(
        (&*s.rcode, s.answers.clone()),
        ("NOERROR", ["192.0.2.16".to_owned()].into())
    );
    assert_eq!(r.events[2], Ev::End);
}

#[test]
fn httpx_keep_alive_with_two_pipelined_requests_in_one_slice() {
    let get = format!(
        "GET /dns-query?dns={QUERY_B64} HTTP/1.1\r\n\
Host: doh.test:8443\r\n\
accept: application/dns-message\r\n\
Accept-Encoding: gzip, deflate\r\n\
Connection: keep-alive\r\n\
User-Agent: python-httpx/0.27.0\r\n\r\n"
    );
    let post = b"POST /dns-query HTTP/1.1\r\n\
Host: doh.test:8443\r\n\
Accept-Encoding: gzip, deflate\r\n\
Connection: keep-alive\r\n\
User-Agent: python-httpx/0.27.0\r\n\
accept: application/dns-message\r\n\
content-type: application/dns-message\r\n\
content-length: 30\r\n\r\n";
    let r = run(&requests, &cat(&[get.as_bytes(), post, QUERY]));
    assert_eq!(r.error, None);
    assert_eq!(r.events.len(), 5, "{:?}", r.events);
    let g = head(&r.events[0]);
    assert_eq!(g.method.as_deref(), Some("GET"));
    assert_eq!(g.accept.as_deref(), Some("application/dns-message"));
    assert_eq!(
        doh::classify(g),
        Some(Ok(doh::DohRequest::Get(QUERY.to_vec())))
    );
    assert_eq!(r.events[1], Ev::End, "a GET without length has no body");
    assert_eq!(head(&r.events[2]).method.as_deref(), Some("POST"));
    assert_eq!(r.events[3..], [Ev::Body(QUERY.to_vec()), Ev::End]);
}

#[test]
fn pipelined_responses_content_length_then_chunked() {
    let a = answer();
    let chunked = b"HTTP/1.1 200 OK\r\n\
Content-Type: application/dns-message\r\n\
Date: Tue, 14 May 2024 13:25:42 GMT\r\n\
Transfer-Encoding: chunked\r\n\r\n\
1e\r\n";
    let input = cat(&[
        H2O_OK,
        &a,
        chunked,
        &a[..30],
        b"\r\n10\r\n",
        &a[30..],
        b"\r\n0\r\n\r\n",
    ]);
    let r = run(&responses_to(&["GET", "POST"]), &input);
    assert_eq!(r.error, None);
    assert_eq!(r.events.len(), 6, "{:?}", r.events);
    assert_eq!(r.events[1..3], [Ev::Body(a.clone()), Ev::End]);
    assert_eq!(head(&r.events[3]).status.as_deref(), Some("200"));
    assert_eq!(r.events[4..], [Ev::Body(a), Ev::End]);
}

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let a = answer();
    let input = cat(&[
        b"HTTP/1.1 200 OK\r\ncontent-type: application/dns-message\r\n\
Transfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n",
        b"1E;name=value;quoted=\"a b\"\r\n",
        &a[..30],
        b"\r\n10 ; last\r\n",
        &a[30..],
        b"\r\n000\r\nX-Checksum: 5d41402abc4b2a76\r\nX-Other: 1\r\n  folded\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ]);
    let r = run(&responses_to(&["GET"]), &input);
    assert_eq!(r.error, None);
    assert_eq!(r.events[1..3], [Ev::Body(a), Ev::End]);
    assert_eq!(head(&r.events[3]).status.as_deref(), Some("204"));
    assert_eq!(r.events[4..], [Ev::End]);
}

#[test]
fn chunked_request_wins_over_content_length() {
    let input = cat(&[
        b"POST /dns-query HTTP/1.1\r\nHost: doh.test\r\n\
Content-Type: application/dns-message\r\nContent-Length: 5\r\n\
Transfer-Encoding: chunked\r\n\r\n1e\r\n",
        QUERY,
        b"\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: doh.test\r\n\r\n",
    ]);
    let r = run(&requests, &input);
    assert_eq!(r.error, None);
    assert_eq!(r.events[1..3], [Ev::Body(QUERY.to_vec()), Ev::End]);
    assert_eq!(head(&r.events[3]).path.as_deref(), Some("/"));
    assert_eq!(r.events.len(), 5);
}

#[test]
fn upgrade_to_h2c_hands_the_rest_to_http2() {
    let req = format!(
        "GET /dns-query?dns={QUERY_B64} HTTP/1.1\r\n\
Host: doh.test:8053\r\n\
User-Agent: curl/7.88.1\r\n\
Accept: */*\r\n\
Connection: Upgrade, HTTP2-Settings\r\n\
Upgrade: h2c\r\n\
HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
    );
    let r = run(&requests, req.as_bytes());
    assert!(
        matches!(r.events[..], [Ev::Head(_, true), Ev::End]),
        "{:?}",
        r.events
    );

    let switching =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
    // The server's first HTTP/2 frame: SETTINGS (MAX_CONCURRENT_STREAMS = 100).
    let settings = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64";
    let input = cat(&[switching, settings]);
    let r = run(&responses_to(&["GET"]), &input);
    assert_eq!(r.error, None);
    assert_eq!(r.consumed, switching.len());
    assert!(
        matches!(r.events[..], [Ev::Head(_, true), Ev::Switched]),
        "{:?}",
        r.events
    );
    assert_eq!(head(&r.events[0]).status.as_deref(), Some("101"));

    let mut d = Http1Decoder::responses();
    let n = d.feed(&input, &mut |_| {}).unwrap();
    let mut h2 = crate::proto::http2::DirectionDecoder::server_to_client();
    let mut got = Vec::new();
    h2.feed(&input[n..], &mut |ev| got.push(format!("{ev:?}")))
        .unwrap();
    assert_eq!(
        got,
        ["Settings { header_table_size: None, max_frame_size: None }"]
    );
}

#[test]
fn head_response_has_content_length_but_no_body() {
    let a = answer();
    let input = cat(&[
        b"HTTP/1.1 200 OK\r\nContent-Type: application/dns-message\r\nContent-Length: 46\r\n\r\n",
        H2O_OK,
        &a,
    ]);
    let r = run(&responses_to(&["HEAD", "GET"]), &input);
    assert_eq!(r.error, None);
    assert_eq!(r.events.len(), 5, "{:?}", r.events);
    assert_eq!(r.events[1], Ev::End);
    assert_eq!(r.events[3..], [Ev::Body(a), Ev::End]);
}

#[test]
fn interim_100_continue_does_not_take_the_queued_method() {
    let req = cat(&[
        b"POST /dns-query HTTP/1.1\r\nHost: doh.test:8443\r\nUser-Agent: curl/8.5.0\r\n\
Accept: */*\r\nContent-Type: application/dns-message\r\nContent-Length: 30\r\n\
Expect: 100-continue\r\n\r\n",
        QUERY,
    ]);
    let r = run(&requests, &req);
    assert_eq!(r.events[1..], [Ev::Body(QUERY.to_vec()), Ev::End]);

    let a = answer();
    let input = cat(&[
        b"HTTP/1.1 100 Continue\r\n\r\n",
        H2O_OK,
        &a,
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 46\r\n\r\n",
    ]);
    let r = run(&responses_to(&["POST", "HEAD"]), &input);
    assert_eq!(r.error, None);
    let statuses: Vec<_> = r
        .events
        .iter()
        .map(|e| match e {
            Ev::Head(f, _) => f.status.clone().unwrap().into_owned(),
            Ev::Body(b) => format!("body {}", b.len()),
            Ev::End => "end".into(),
            Ev::Switched => "switched".into(),
        })
        .collect();
    assert_eq!(
        statuses,
        ["100", "end", "200", "body 46", "end", "103", "end", "200", "end"],
        "the 200 after 103 answers the HEAD: no body"
    );
}

#[test]
fn no_body_for_204_and_304_even_with_content_length() {
    let input = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 46\r\n\r\n\
HTTP/1.1 204 No Content\r\nContent-Length: 46\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let r = run(&responses_to(&[]), input);
    assert_eq!(r.error, None);
    assert_eq!(r.events.iter().filter(|e| **e == Ev::End).count(), 3);
    assert_eq!(r.events.len(), 6);
}

#[test]
fn response_without_length_reads_until_close() {
    let body = br#"{"Status":0,"Answer":[]}"#;
    let head_bytes: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Type: application/dns-json\r\n\r\n";
    let input = cat(&[head_bytes, body, b"HTTP/1.1 200 OK\r\n\r\n"]);
    let r = run(&responses_to(&["GET"]), &input);
    assert_eq!(r.error, None);
    assert_eq!(
        r.events.len(),
        2,
        "no End, everything after the head is body"
    );
    assert_eq!(r.events[1], Ev::Body(input[head_bytes.len()..].to_vec()));
    let mut d = Http1Decoder::responses();
    d.feed(&input, &mut |_| {}).unwrap();
    assert!(d.reads_until_close());

    // A transfer coding that is not a final "chunked" is also delimited by the close.
    let gz =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\n\x1f\x8b\x08\x00";
    let r = run(&responses_to(&[]), gz);
    assert_eq!(r.events[1], Ev::Body(b"\x1f\x8b\x08\x00".to_vec()));
    assert_eq!(r.events.len(), 2);
}

#[test]
fn keeps_only_doh_fields_and_marks_long_values_truncated() {
    let long = "a".repeat(crate::proto::http2::hpack::MAX_VALUE_LEN + 1);
    let input = format!(
        "GET /resolve?name=example.com&type=AAAA HTTP/1.1\r\n\
hOST: dns.google\r\n\
Host: second.example\r\n\
Cookie: session=secret\r\n\
Authorization: Bearer secret\r\n\
Content-Type: application/x-www-form-urlencoded;\r\n\
\tcharset=utf-8\r\n\
Accept: {long}\r\n\
X-Empty:\r\n\r\n"
    );
    let r = run(&requests, input.as_bytes());
    assert_eq!(r.error, None);
    let want = HeaderFields {
        method: Some("GET".into()),
        path: Some("/resolve?name=example.com&type=AAAA".into()),
        authority: Some("dns.google".into()),
        content_type: Some("application/x-www-form-urlencoded; charset=utf-8".into()),
        truncated: true,
        ..Default::default()
    };
    assert_eq!(r.events, [Ev::Head(want, false), Ev::End]);
    let dbg = format!("{:?}", r.events);
    assert!(
        !dbg.contains("secret"),
        "other header values are never kept"
    );
}

#[test]
fn absolute_form_target_gives_authority_and_drops_userinfo() {
    let input = format!(
        "GET HTTPS://user:pw@doh.test:8443/dns-query?dns={QUERY_B64} HTTP/1.1\r\n\
Host: proxy.example\r\n\r\n"
    );
    let r = run(&requests, input.as_bytes());
    let f = head(&r.events[0]);
    assert_eq!(f.authority.as_deref(), Some("doh.test:8443"));
    assert_eq!(f.scheme.as_deref(), Some("https"));
    assert_eq!(
        f.path.as_deref(),
        Some(format!("/dns-query?dns={QUERY_B64}").as_str())
    );
    assert!(!format!("{f:?}").contains("pw"));
}

#[test]
fn tolerates_bare_lf_leading_empty_lines_and_repeated_lengths() {
    let input = cat(&[
        b"\r\n\nPOST /dns-query HTTP/1.0\ncontent-type: application/dns-message\n\
Content-Length: 30 , 30\ncontent-length: 30\n\n",
        QUERY,
    ]);
    let r = run(&requests, &input);
    assert_eq!(r.error, None);
    assert_eq!(r.events[1..], [Ev::Body(QUERY.to_vec()), Ev::End]);
    let r = run(
        &responses_to(&[]),
        b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(head(&r.events[0]).status.as_deref(), Some("200"));
}

#[test]
fn other_upgrades_tunnels_and_http2_are_not_http1() {
    let ws = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello";
    let r = run(&responses_to(&["GET"]), ws);
    assert_eq!(r.error, Some(H1Error::UnsupportedUpgrade));
    assert!(matches!(r.events[..], [Ev::Head(_, false), Ev::End]));

    let tunnel = b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01\x02\x00";
    let r = run(&responses_to(&["CONNECT"]), tunnel);
    assert_eq!(r.error, Some(H1Error::Tunnel));
    let r = run(
        &requests,
        b"CONNECT doh.test:443 HTTP/1.1\r\nHost: doh.test:443\r\n\r\n",
    );
    assert_eq!(
        head(&r.events[0]).authority.as_deref(),
        Some("doh.test:443")
    );
    assert_eq!(head(&r.events[0]).path, None);

    let r = run(&requests, crate::proto::http2::PREFACE);
    assert_eq!(r.error, Some(H1Error::Http2Preface));
    let r = run(
        &requests,
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    );
    assert_eq!(r.error, Some(H1Error::BadTransferEncoding));
}
