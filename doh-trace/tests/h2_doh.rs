//! DoH over HTTP/2 from real `h2` client/server bytes, through the whole userspace pipeline.

mod support;

use doh_trace::{lookup::Status, source::Direction};
use hickory_proto::rr::RecordType;
use support::*;

#[test]
fn interleaved_post_queries_are_paired_by_stream_in_any_slicing() {
    let calls = exchange(
        vec![
            Req::post(query("www.doh.test", RecordType::A, 0)),
            Req::post(query("www.doh.test", RecordType::AAAA, 0)),
            Req::post(query("nx.doh.test", RecordType::A, 0)),
        ],
        200,
    );
    let want = vec![
        (
            "nx.doh.test".to_string(),
            "A".to_string(),
            "ok".to_string(),
            vec![],
        ),
        (
            "www.doh.test".into(),
            "A".into(),
            "ok".into(),
            vec!["192.0.2.10".to_string()],
        ),
        (
            "www.doh.test".into(),
            "AAAA".into(),
            "ok".into(),
            vec!["2001:db8::10".to_string()],
        ),
    ];
    for slice in [usize::MAX, 1, 7, 100] {
        let mut p = pipeline();
        feed(&mut p, &calls, 4242, 5, slice);
        let lookups: Vec<_> = p.drain_lookups().map(|l| *l).collect();
        assert_eq!(summary(&lookups), want, "slice {slice}");
        for l in &lookups {
            assert_eq!((l.pid, l.tid, &*l.comm), (4242, 4243, "client"));
            assert_eq!(l.authority.as_deref(), Some("doh.test:8443"));
            assert_eq!(l.url.as_deref(), Some("https://doh.test:8443/dns-query"));
            assert_eq!(l.method.as_deref(), Some("POST"));
            assert!(l.latency_ms.is_some());
        }
        let nx = lookups
            .iter()
            .find(|l| l.qname.as_deref() == Some("nx.doh.test"))
            .unwrap();
        assert_eq!(nx.rcode.as_deref(), Some("NXDOMAIN"));
        let mut streams: Vec<u32> = lookups.iter().filter_map(|l| l.stream_id).collect();
        streams.sort();
        assert_eq!(streams, vec![1, 3, 5], "one lookup per stream");
        assert_eq!(p.counters().h2_client_conns, 1);
        assert!(p.counters().problems().is_empty(), "{:?}", p.counters());
    }
}

#[test]
fn random_dns_ids_and_split_bodies_with_empty_end_stream_data() {
    let mut req = Req::post(query("www.doh.test", RecordType::A, 0xbeef));
    req.split_body = true;
    let calls = exchange(vec![req], 200);
    let mut p = pipeline();
    feed(&mut p, &calls, 1, 3, usize::MAX);
    let l: Vec<_> = p.drain_lookups().map(|l| *l).collect();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].dns_id, Some(0xbeef));
    assert_eq!(l[0].answers[..], ["192.0.2.10"]);
}

#[test]
fn get_queries_are_decoded_from_the_path() {
    let calls = exchange(
        vec![
            Req::get(&query("www.doh.test", RecordType::AAAA, 0)),
            Req::get(&query("www.doh.test", RecordType::A, 0)),
        ],
        200,
    );
    let mut p = pipeline();
    feed(&mut p, &calls, 9, 3, 13);
    let l: Vec<_> = p.drain_lookups().map(|l| *l).collect();
    assert_eq!(summary(&l).len(), 2);
    assert!(l.iter().all(|l| l.method.as_deref() == Some("GET")
        && l.url.as_deref() == Some("https://doh.test:8443/dns-query")));
}

#[test]
fn ordinary_http2_requests_produce_no_lookups() {
    let page = Req {
        method: "GET",
        path: "/index.html".into(),
        content_type: None,
        body: vec![],
        split_body: false,
    };
    let upload = Req {
        method: "POST",
        path: "/upload".into(),
        content_type: Some("application/json"),
        body: br#"{"password":"hunter2"}"#.to_vec(),
        split_body: false,
    };
    let calls = exchange(vec![page, upload], 200);
    let mut p = pipeline();
    feed(&mut p, &calls, 9, 3, usize::MAX);
    assert_eq!(p.drain_lookups().count(), 0);
    assert_eq!(
        p.counters().h2_client_conns,
        1,
        "the connection was decoded, just not DNS"
    );
}

#[test]
fn non_2xx_answers_are_failed_lookups_with_the_http_status() {
    let calls = exchange(
        vec![Req::post(query("www.doh.test", RecordType::A, 0))],
        415,
    );
    let mut p = pipeline();
    feed(&mut p, &calls, 9, 3, usize::MAX);
    let l: Vec<_> = p.drain_lookups().collect();
    assert_eq!(l.len(), 1);
    assert_eq!(
        (l[0].status, l[0].http_status, l[0].rcode.clone()),
        (Status::HttpError, Some(415), None)
    );
}

#[test]
fn the_server_side_of_a_connection_is_not_reported() {
    let calls = exchange(
        vec![Req::post(query("www.doh.test", RecordType::A, 0))],
        200,
    );
    // The server reads what the client wrote and writes what the client read.
    let mirrored: Vec<Call> = calls
        .iter()
        .map(|c| Call {
            dir: if c.dir == Direction::Egress {
                Direction::Ingress
            } else {
                Direction::Egress
            },
            bytes: c.bytes.clone(),
        })
        .collect();
    let mut p = pipeline();
    feed(&mut p, &mirrored, 9, 3, usize::MAX);
    assert_eq!(p.drain_lookups().count(), 0);
    assert_eq!(p.counters().server_side_conns, 1);
}

#[test]
fn a_malformed_connection_is_dropped_and_counted_while_others_go_on() {
    let calls = exchange(
        vec![Req::post(query("www.doh.test", RecordType::A, 0))],
        200,
    );
    let mut p = pipeline();
    // Connection 1: preface then garbage that claims to be a 16 MiB SETTINGS frame.
    let mut bad = doh_trace::proto::http2::PREFACE.to_vec();
    bad.extend_from_slice(&[0xff, 0xff, 0xff, 0x04, 0, 0, 0, 0, 0, 1, 2, 3]);
    feed(
        &mut p,
        &[Call {
            dir: Direction::Egress,
            bytes: bad,
        }],
        9,
        3,
        usize::MAX,
    );
    // Connection 2 on another fd of the same process decodes normally.
    feed(&mut p, &calls, 9, 4, usize::MAX);
    assert_eq!(p.drain_lookups().count(), 1);
    assert_eq!(p.counters().h2_errors, 1);
}

#[test]
fn a_lost_chunk_stops_decoding_that_connection_and_is_counted() {
    let calls = exchange(
        vec![Req::post(query("www.doh.test", RecordType::A, 0))],
        200,
    );
    let mut p = pipeline();
    // Every call but the third arrives whole; the third loses its first half.
    feed_losing_first_half_of(&mut p, &calls, 2);
    assert_eq!(p.counters().gaps, 1);
}

#[test]
fn after_a_gap_decoding_resumes_at_the_next_frame_boundary() {
    // Three lookups on one connection; the client sends them one after the other.
    let calls = exchange(
        vec![
            Req::post(query("www.doh.test", RecordType::A, 1)),
            Req::post(query("www.doh.test", RecordType::AAAA, 2)),
            Req::post(query("nx.doh.test", RecordType::A, 3)),
        ],
        200,
    );
    let mut p = pipeline();
    // The first ingress call (the server's SETTINGS and more) loses its first half, as when
    // the ring buffer was full; everything else arrives.
    let first_in = calls
        .iter()
        .position(|c| c.dir == Direction::Ingress)
        .unwrap();
    feed_losing_first_half_of(&mut p, &calls, first_in);
    let lookups: Vec<_> = p.drain_lookups().collect();
    assert_eq!((p.counters().gaps, p.counters().resyncs), (1, 1));
    // Only the ingress direction lost bytes: requests keep their decoded headers, answers are
    // found again from the next frame boundary (their response headers are unknown).
    assert_eq!(lookups.len(), 3, "{lookups:#?}");
    for l in &lookups {
        assert_eq!(l.status, Status::Ok, "{l:?}");
        assert!(
            l.headers_known == Some(true) && l.method.as_deref() == Some("POST"),
            "{l:?}"
        );
        assert_eq!(
            l.http_status, None,
            "response headers after the gap are not guessed"
        );
        let want = match l.dns_id.unwrap() {
            1 => ("www.doh.test", "A"),
            2 => ("www.doh.test", "AAAA"),
            3 => ("nx.doh.test", "A"),
            other => panic!("unexpected id {other}"),
        };
        assert_eq!(
            (l.qname.as_deref().unwrap(), l.qtype.as_deref().unwrap()),
            want
        );
    }
}
