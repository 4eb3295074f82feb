//! DoH over HTTP/2 from real `h2` client/server bytes, through the whole userspace pipeline:
//! POST and GET queries paired with their answers by stream, DNS ids and split bodies, HTTP/2
//! requests that are not DNS, and non-2xx answers.

mod support;

use doh_trace::lookup::Status;
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
        Expect::brief("nx.doh.test", "A", "ok", &[]),
        Expect::brief("www.doh.test", "A", "ok", &["192.0.2.10"]),
        Expect::brief("www.doh.test", "AAAA", "ok", &["2001:db8::10"]),
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
