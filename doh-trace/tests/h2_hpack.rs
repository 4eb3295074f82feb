//! HPACK state across HTTP/2 header blocks: dynamic table sizes lowered and raised through
//! SETTINGS_HEADER_TABLE_SIZE and size updates, and each direction keeping its own table.
//!
//! Each test feeds a connection through the whole pipeline — bytes of a real `h2` client and
//! server (an independent implementation, recorded at the client's I/O boundary), those bytes
//! re-framed, or frames crafted byte by byte — and checks the exact lookups and counters with
//! the calls re-sliced into whole calls, 5-byte and 1-byte pieces (TLS call boundaries are
//! arbitrary). Crafted header blocks are never Huffman-coded; Huffman-coded blocks come from
//! `h2`, re-framed where a test needs a shape `h2` does not send.

mod support;

use doh_trace::source::Direction;
use hickory_proto::rr::RecordType;
use support::{dns::*, frames::*, h2_runner::*, shapes::*};

// ===== 1. HPACK dynamic table sizes and per-direction state =====

/// Each `h2` peer lowers the other's table: the server advertises SETTINGS_HEADER_TABLE_SIZE
/// 300 and the client 0, so each encoder starts its next block with a size update, then the
/// client's 300-octet table evicts entries (every request adds an `x-request-id`) and the
/// server stops indexing. Later requests are mostly dynamic-table indexes.
#[test]
fn t3_h2_peers_lower_header_table_sizes() {
    let reqs = [
        post("www.doh.test", RecordType::A),
        post("www.doh.test", RecordType::AAAA),
        get("get.doh.test", RecordType::AAAA),
        post("nx.doh.test", RecordType::A),
        post("www.doh.test", RecordType::A),
        post("www.doh.test", RecordType::AAAA),
        post("www.doh.test", RecordType::A),
    ];
    let mut client = h2::client::Builder::new();
    client.header_table_size(0);
    let mut server = h2::server::Builder::new();
    server.header_table_size(300);
    let calls = record_h2(client, server, doh_server, move |mut client, _| {
        Box::pin(async move {
            let mut resps = Vec::new();
            for (i, q) in reqs.iter().enumerate() {
                let id = vec![("x-request-id", format!("{i:04}"))];
                resps.push(send_q_with(&mut client, q, &id).await);
                settle().await;
            }
            for r in resps {
                response_body(r).await.expect("answered");
            }
        })
    });
    // The shapes: a size update to 300 opens a request block, a size update to 0 the first
    // response block; later requests use dynamic-table indexes.
    let out = header_blocks(&calls, Direction::Egress);
    let opens = |b: &[u8]| hpack_walk(b).first().map(|f| (f.kind, f.index));
    let updates: Vec<_> = out
        .iter()
        .filter_map(|b| opens(&b.2))
        .filter(|o| o.0 == 's')
        .collect();
    assert_eq!(updates, vec![('s', 300)], "{out:?}");
    assert_eq!(
        opens(&header_blocks(&calls, Direction::Ingress)[0].2),
        Some(('s', 0))
    );
    let dynamic_refs = |b: &[u8]| {
        hpack_walk(b)
            .iter()
            .filter(|f| f.kind == 'i' && f.index > 61)
            .count()
    };
    assert!(dynamic_refs(&out[4].2) >= 3);
    // The 300-octet table evicts: a later request adds `:authority` again.
    assert!(out[1..].iter().any(|b| hpack_walk(&b.2)
        .iter()
        .any(|f| f.kind == 'a' && f.index == st::AUTHORITY)));
    check(
        &calls,
        vec![
            a(1, "www.doh.test"),
            aaaa(3, "www.doh.test"),
            aaaa(5, "get.doh.test").get(),
            nxdomain(7, "nx.doh.test", "A"),
            a(9, "www.doh.test"),
            aaaa(11, "www.doh.test"),
            a(13, "www.doh.test"),
        ],
    );
}

/// Each peer raises the other's table past the 4096-octet default (Chromium and Firefox
/// advertise SETTINGS_HEADER_TABLE_SIZE 65536; `h2` never encodes with more than 4096, so this
/// is crafted): the client allows 16384, the server 8192; later SETTINGS without a table size,
/// and ACKs, change nothing. Each encoder opens its first block
/// with a size update to the allowed size and then keeps more than 4096 octets of entries;
/// later blocks are nothing but indexes into them. Two size updates in a row (0, then 8192)
/// clear the table and raise it again, as an encoder does when SETTINGS changed twice.
/// Both directions add entries at the same time, so a decoder that shared one table between
/// them would resolve the same indexes to the other direction's fields.
#[test]
fn t3_crafted_peers_raise_header_tables_and_keep_separate_state() {
    let mut c = Crafted::new(
        &[(SETTINGS_HEADER_TABLE_SIZE, 16384)],
        &[(SETTINGS_HEADER_TABLE_SIZE, 8192)],
    );
    let big = |tag: char, n: usize| -> Vec<u8> { std::iter::repeat_n(tag as u8, n).collect() };
    // Request 1: size update, then every field added to the dynamic table.
    let req1 = [
        hp_size_update(8192),
        hp_indexed(st::METHOD_POST),
        hp_indexed(st::SCHEME_HTTPS),
        hp_incremental(st::AUTHORITY, AUTHORITY.as_bytes()),
        hp_incremental(st::PATH_ROOT, b"/dns-query"),
        hp_incremental(st::CONTENT_TYPE, b"application/dns-message"),
        hp_incremental(st::ACCEPT, b"application/dns-message"),
        hp_incremental_new(b"x-big-1", &big('1', 3000)),
        hp_incremental_new(b"x-big-2", &big('2', 3000)),
    ]
    .concat();
    // Dynamic table after request 1, newest first: 62 x-big-2, 63 x-big-1, 64 accept,
    // 65 content-type, 66 :path, 67 :authority. 6000+ octets: more than 4096.
    let req_indexes = [
        hp_indexed(st::METHOD_POST),
        hp_indexed(st::SCHEME_HTTPS),
        hp_indexed(67),
        hp_indexed(66),
        hp_indexed(65),
        hp_indexed(64),
    ]
    .concat();
    // Response 1: size update, :status and content-type added, plus 10000 octets of entries.
    let resp1 = [
        hp_size_update(16384),
        hp_incremental(st::STATUS_200, b"200"),
        hp_incremental(st::CONTENT_TYPE, b"application/dns-message"),
        hp_incremental_new(b"x-big-a", &big('a', 5000)),
        hp_incremental_new(b"x-big-b", &big('b', 5000)),
    ]
    .concat();
    // Server table, newest first: 62 x-big-b, 63 x-big-a, 64 content-type, 65 :status 200.
    let resp_indexes = [hp_indexed(65), hp_indexed(64)].concat();
    // Request 4: cleared (0) and raised again (8192), fields re-added.
    let req4 = [
        hp_size_update(0),
        hp_size_update(8192),
        hp_indexed(st::METHOD_POST),
        hp_indexed(st::SCHEME_HTTPS),
        hp_incremental(st::PATH_ROOT, b"/dns-query"),
        hp_incremental(st::AUTHORITY, AUTHORITY.as_bytes()),
        hp_incremental(st::CONTENT_TYPE, b"application/dns-message"),
        hp_incremental_new(b"x-big-3", &big('3', 5000)),
    ]
    .concat();
    // After request 4, newest first: 62 x-big-3, 63 content-type, 64 :authority, 65 :path.
    let req_indexes_after_clear = [
        hp_indexed(st::METHOD_POST),
        hp_indexed(st::SCHEME_HTTPS),
        hp_indexed(65),
        hp_indexed(64),
        hp_indexed(63),
    ]
    .concat();
    // The independent decoders agree these blocks say what the test means.
    for (block, want) in [(&req1, "/dns-query"), (&req_indexes, "/dns-query")] {
        let fields = c.check_request(block);
        assert!(
            fields.contains(&(":path".into(), want.into())),
            "{fields:?}"
        );
        assert!(fields.contains(&("content-type".into(), "application/dns-message".into())));
    }
    for block in [&resp1, &resp_indexes] {
        let fields = c.check_response(block);
        assert_eq!(fields[0], (":status".into(), "200".into()));
    }
    let q = |n: &str, t| query(n, t, 0);
    let (q1, q3, q5, q7) = (
        q("www.doh.test", RecordType::A),
        q("www.doh.test", RecordType::AAAA),
        q("nx.doh.test", RecordType::A),
        q("after-clear.doh.test", RecordType::A),
    );
    c.s.send(&header_frames(1, &req1, &[], HeadersOpts::default()))
        .send(&[data(1, &q1, true)]);
    // Response 1 arrives (server entries added) before request 3 is sent.
    c.s.recv(&header_frames(1, &resp1, &[], HeadersOpts::default()))
        .recv(&[data(1, &answer(&q1), true)]);
    // Later SETTINGS that change only the window (h2 and Chromium send such updates) and
    // their ACKs leave the table limits alone.
    c.s.send(&[
        settings(&[(SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20)]),
        settings_ack(),
    ]);
    c.s.recv(&[
        settings_ack(),
        settings(&[(SETTINGS_MAX_CONCURRENT_STREAMS, 250)]),
    ]);
    c.s.send(&[settings_ack()]);
    c.s.send(&header_frames(3, &req_indexes, &[], HeadersOpts::default()))
        .send(&[data(3, &q3, true)]);
    c.s.send(&header_frames(5, &req_indexes, &[], HeadersOpts::default()))
        .send(&[data(5, &q5, true)]);
    c.s.recv(&header_frames(
        5,
        &resp_indexes,
        &[],
        HeadersOpts::default(),
    ))
    .recv(&[data(5, &answer(&q5), true)]);
    c.s.recv(&header_frames(
        3,
        &resp_indexes,
        &[],
        HeadersOpts::default(),
    ))
    .recv(&[data(3, &answer(&q3), true)]);
    assert!(c
        .check_request(&req4)
        .contains(&(":path".into(), "/dns-query".into())));
    assert!(c
        .check_request(&req_indexes_after_clear)
        .contains(&(":authority".into(), AUTHORITY.into())));
    c.s.send(&header_frames(7, &req4, &[], HeadersOpts::default()))
        .send(&[data(7, &q7, true)]);
    c.s.send(&header_frames(
        9,
        &req_indexes_after_clear,
        &[],
        HeadersOpts::default(),
    ))
    .send(&[data(9, &q1, true)]);
    c.s.recv(&header_frames(
        7,
        &resp_indexes,
        &[],
        HeadersOpts::default(),
    ))
    .recv(&[data(7, &answer(&q7), true)]);
    c.s.recv(&header_frames(
        9,
        &resp_indexes,
        &[],
        HeadersOpts::default(),
    ))
    .recv(&[data(9, &answer(&q1), true)]);
    check(
        &c.calls(),
        vec![
            a(1, "www.doh.test"),
            aaaa(3, "www.doh.test"),
            nxdomain(5, "nx.doh.test", "A"),
            a(7, "after-clear.doh.test"),
            a(9, "www.doh.test"),
        ],
    );
}

/// Both directions index fields at the same positions: request 1 puts `content-type:
/// application/dns-message` at index 62 of the client's table while response 1 puts
/// `content-type: text/plain` at index 62 of the server's. Request 2 says `content-type` by
/// index 62 only; decoded with the wrong table it is not DoH.
#[test]
fn t3_each_direction_keeps_its_own_hpack_table() {
    let mut c = Crafted::new(&[], &[]);
    let req1 = [
        hp_indexed(st::METHOD_POST),
        hp_indexed(st::SCHEME_HTTPS),
        hp_incremental(st::CONTENT_TYPE, b"application/dns-message"),
        hp_incremental(st::AUTHORITY, AUTHORITY.as_bytes()),
        hp_incremental(st::PATH_ROOT, b"/dns-query"),
    ]
    .concat();
    // Client table: 62 :path, 63 :authority, 64 content-type.
    let req2 = [
        hp_indexed(st::METHOD_POST),
        hp_indexed(st::SCHEME_HTTPS),
        hp_indexed(64),
        hp_indexed(63),
        hp_indexed(62),
    ]
    .concat();
    let resp1 = [
        hp_indexed(st::STATUS_200),
        hp_incremental(st::CONTENT_TYPE, b"application/dns-message"),
        hp_incremental(st::PATH_ROOT, b"/not-a-path"),
        hp_incremental(st::AUTHORITY, b"other.example"),
        hp_incremental_new(b"server", b"crafted"),
    ]
    .concat();
    // Server table: 62 server, 63 :authority other.example, 64 :path, 65 content-type.
    let resp_other = hp_not_indexed(st::STATUS_200, b"500");
    let resp2 = [hp_indexed(st::STATUS_200), hp_indexed(65), hp_indexed(62)].concat();
    c.check_request(&req1);
    assert_eq!(
        c.check_request(&req2),
        vec![
            (":method".to_string(), "POST".to_string()),
            (":scheme".into(), "https".into()),
            ("content-type".into(), "application/dns-message".into()),
            (":authority".into(), AUTHORITY.into()),
            (":path".into(), "/dns-query".into()),
        ]
    );
    c.check_response(&resp1);
    c.check_response(&resp_other);
    c.check_response(&resp2);
    let q1 = query("first.doh.test", RecordType::A, 0);
    let q3 = query("second.doh.test", RecordType::AAAA, 0);
    let q5 = query("third.doh.test", RecordType::A, 0);
    c.s.send(&header_frames(1, &req1, &[], HeadersOpts::default()))
        .send(&[data(1, &q1, true)]);
    c.s.recv(&header_frames(1, &resp1, &[], HeadersOpts::default()))
        .recv(&[data(1, &answer(&q1), true)]);
    c.s.send(&header_frames(3, &req2, &[], HeadersOpts::default()))
        .send(&[data(3, &q3, true)]);
    c.s.send(&header_frames(5, &req2, &[], HeadersOpts::default()))
        .send(&[data(5, &q5, true)]);
    c.s.recv(&header_frames(
        5,
        &resp_other,
        &[],
        HeadersOpts {
            end_stream: true,
            ..Default::default()
        },
    ));
    c.s.recv(&header_frames(3, &resp2, &[], HeadersOpts::default()))
        .recv(&[data(3, &answer(&q3), true)]);
    check(
        &c.calls(),
        vec![
            a(1, "first.doh.test"),
            aaaa(3, "second.doh.test"),
            a(5, "third.doh.test").http_error(500),
        ],
    );
}
