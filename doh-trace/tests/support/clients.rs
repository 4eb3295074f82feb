//! Bytes as real clients and servers send them, written by hand: HTTP/1.1 in the shapes curl
//! 7.88, Python httpx and h2o send, HTTP/2 as curl (nghttp2) and dnsdist send it, bare
//! HTTP/1.1 DoH messages; and the lookups and counters the pipeline should report for such a
//! scripted connection ([`super::kernel::Conv`]).

use base64::Engine as _;
use doh_trace::counters::DecodeCounters;
use doh_trace_common::Source;
use hickory_proto::rr::RecordType;

use super::{dns::query, expect::Expect, frames::*, kernel::Conv};

pub const TLS_PEER: &str = "127.0.0.1:8443";
pub const TLS_AUTH: &str = "doh.test:8443";
pub const TLS_URL: &str = "https://doh.test:8443/dns-query";
pub const CLEAR_PEER: &str = "127.0.0.1:8053";
pub const CLEAR_AUTH: &str = "doh.test:8053";
pub const CLEAR_URL: &str = "http://doh.test:8053/dns-query";
pub const A_ANS: &str = "192.0.2.10";
pub const AAAA_ANS: &str = "2001:db8::10";

// ===== bytes =====

pub fn b64(q: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(q)
}

pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// curl 7.88 `--doh-url` over HTTP/1.1: a POST whose head and body go out in one write.
pub fn curl_post(host: &str, q: &[u8]) -> Vec<u8> {
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
pub fn curl_get(host: &str, q: &[u8]) -> Vec<u8> {
    format!(
        "GET /dns-query?dns={} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/7.88.1\r\n\
         Accept: application/dns-message\r\n\r\n",
        b64(q)
    )
    .into_bytes()
}

/// h2o 2.2 answering over HTTP/1.1 with Content-Length.
pub fn h2o_response(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
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

pub fn dns_ok(body: &[u8]) -> Vec<u8> {
    h2o_response("200 OK", "application/dns-message", body)
}

/// A chunked response head (as h2o sends when the handler streams).
pub fn chunked_head(content_type: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nDate: Tue, 14 May 2024 10:00:00 GMT\r\nConnection: keep-alive\r\n\
         Server: h2o/2.2.6\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes()
}

pub fn chunk(data: &[u8]) -> Vec<u8> {
    cat(&[format!("{:x}\r\n", data.len()).as_bytes(), data, b"\r\n"])
}

/// A whole chunked body in chunks of `at` bytes, with the last-chunk and no trailers.
pub fn chunked_body(data: &[u8], at: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in data.chunks(at) {
        out.extend(chunk(c));
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

pub fn qa(name: &str) -> Vec<u8> {
    query(name, RecordType::A, 0)
}

pub fn qaaaa(name: &str) -> Vec<u8> {
    query(name, RecordType::AAAA, 0)
}

// ===== HTTP/2 bytes =====

/// curl 7.88 (nghttp2) opening an HTTP/2 connection: preface, SETTINGS, WINDOW_UPDATE.
pub fn curl_h2_preface() -> Vec<u8> {
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
pub fn dnsdist_settings() -> Frame {
    settings(&[(SETTINGS_MAX_CONCURRENT_STREAMS, 100)])
}

/// A request HEADERS (+ DATA with the query for a POST) as curl sends it.
pub fn h2_request(
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
    let frames = match post {
        Some(q) => message_frames(stream, &block, q),
        None => header_frames(
            stream,
            &block,
            &[],
            HeadersOpts {
                end_stream: true,
                ..Default::default()
            },
        ),
    };
    encode_all(&frames)
}

/// A 200 response with the DNS answer, as dnsdist sends it.
pub fn h2_response(enc: &mut loona_hpack::Encoder<'_>, stream: u32, body: &[u8]) -> Vec<u8> {
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
    encode_all(&message_frames(stream, &block, body))
}

// ===== expected lookups and counters =====

/// An answered POST over HTTP/1.1 through TLS to [`TLS_URL`], 1 ms after it was sent.
pub fn want(conv: &Conv, qname: &str, qtype: &str) -> Expect {
    let tls = conv.source.is_tls();
    Expect {
        qname: Some(qname.into()),
        qtype: Some(qtype.into()),
        status: "ok".into(),
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

pub fn a(conv: &Conv, qname: &str) -> Expect {
    Expect {
        answers: vec![A_ANS.into()],
        ..want(conv, qname, "A")
    }
}

pub fn aaaa(conv: &Conv, qname: &str) -> Expect {
    Expect {
        answers: vec![AAAA_ANS.into()],
        ..want(conv, qname, "AAAA")
    }
}

pub fn h1_counters(lookups: u64) -> DecodeCounters {
    DecodeCounters {
        h1_client_conns: 1,
        lookups,
        ..Default::default()
    }
}

pub fn h2_counters(lookups: u64) -> DecodeCounters {
    DecodeCounters {
        h2_client_conns: 1,
        lookups,
        ..Default::default()
    }
}

pub fn curl_tls() -> Conv {
    Conv::new(4100, 5, "curl", Source::OpenSsl).peer(TLS_PEER)
}

// ===== bare HTTP/1.1 =====

/// A bare DoH POST over HTTP/1.1: Host, Content-Type, Accept and Content-Length only.
pub fn bare_post(q: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST /dns-query HTTP/1.1\r\nHost: doh.test\r\nContent-Type: application/dns-message\r\n\
         Accept: application/dns-message\r\nContent-Length: {}\r\n\r\n",
        q.len()
    )
    .into_bytes();
    r.extend_from_slice(q);
    r
}

/// A bare 200 answer over HTTP/1.1: Content-Type and Content-Length only.
pub fn bare_answer(a: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/dns-message\r\nContent-Length: {}\r\n\r\n",
        a.len()
    )
    .into_bytes();
    r.extend_from_slice(a);
    r
}
