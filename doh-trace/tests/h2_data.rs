//! HTTP/2 DATA frames: queries and answers split over frames, empty frames carrying
//! END_STREAM, PADDED frames, and answers larger than a frame and a read.
//!
//! Each test feeds a connection through the whole pipeline — bytes of a real `h2` client and
//! server (an independent implementation, recorded at the client's I/O boundary), those bytes
//! re-framed, or frames crafted byte by byte — and checks the exact lookups and counters with
//! the calls re-sliced into whole calls, 5-byte and 1-byte pieces (TLS call boundaries are
//! arbitrary). Crafted header blocks are never Huffman-coded; Huffman-coded blocks come from
//! `h2`, re-framed where a test needs a shape `h2` does not send.

mod support;

use bytes::Bytes;
use doh_trace::source::Direction;
use hickory_proto::rr::RecordType;
use support::{dns::*, frames::*, h2_runner::*, shapes::*};

// ===== 1. DATA =====

/// Queries and answers in several DATA frames (h2 sends one frame per `send_data`): a POST
/// body in three frames, answers in two; the calls are re-sliced as well.
#[test]
fn t4_query_and_answer_split_over_data_frames() {
    let names = ["split-a.doh.test", "split-b.doh.test"];
    let calls = record_h2(
        h2::client::Builder::new(),
        h2::server::Builder::new(),
        |conn| {
            Box::pin(serve_queries(conn, |q, mut respond| async move {
                let ans = answer_for(&q);
                let mut send = respond
                    .send_response(dns_response_head(200), false)
                    .unwrap();
                let (x, y) = ans.split_at(ans.len() / 3);
                send.send_data(Bytes::copy_from_slice(x), false).unwrap();
                send.send_data(Bytes::copy_from_slice(y), true).unwrap();
            }))
        },
        move |mut client, _| {
            Box::pin(async move {
                let mut resps = Vec::new();
                for (i, name) in names.iter().enumerate() {
                    ready(&mut client).await;
                    let q = query(
                        name,
                        [RecordType::A, RecordType::AAAA][i],
                        0x4000 + i as u16,
                    );
                    let (resp, mut send) = client.send_request(post_request(), false).unwrap();
                    send.send_data(Bytes::copy_from_slice(&q[..5]), false)
                        .unwrap();
                    send.send_data(Bytes::copy_from_slice(&q[5..12]), false)
                        .unwrap();
                    send.send_data(Bytes::copy_from_slice(&q[12..]), true)
                        .unwrap();
                    resps.push(resp);
                }
                for r in resps {
                    response_body(r).await.expect("answered");
                }
            })
        },
    );
    let datas = |dir, stream| {
        frames_of(&calls, dir)
            .iter()
            .filter(|f| f.kind == DATA && f.stream == stream && !f.payload.is_empty())
            .count()
    };
    assert_eq!(
        (datas(Direction::Egress, 1), datas(Direction::Egress, 3)),
        (3, 3)
    );
    assert_eq!(
        (datas(Direction::Ingress, 1), datas(Direction::Ingress, 3)),
        (2, 2)
    );
    check(
        &calls,
        vec![a(1, names[0]).id(0x4000), aaaa(3, names[1]).id(0x4001)],
    );
}

/// A body whose last DATA frame is empty and carries only END_STREAM: Go's net/http server ends
/// a response this way when the handler returns after its body was flushed, hyper when a
/// streamed body ends; hyper/reqwest clients end a streamed request body the same way. The
/// answer is complete only at the empty frame, and the query counts as sent only at the empty
/// frame out (the latency is checked to the nanosecond for each slicing).
#[test]
fn t4_empty_data_frames_with_end_stream_end_query_and_answer() {
    let calls = record_h2(
        h2::client::Builder::new(),
        h2::server::Builder::new(),
        |conn| {
            Box::pin(serve_queries(conn, |q, mut respond| async move {
                let ans = answer_for(&q);
                let mut send = respond
                    .send_response(dns_response_head(200), false)
                    .unwrap();
                send.send_data(Bytes::from(ans), false).unwrap();
                settle().await;
                send.send_data(Bytes::new(), true).unwrap();
            }))
        },
        |mut client, _| {
            Box::pin(async move {
                ready(&mut client).await;
                let q = query("empty-end.doh.test", RecordType::AAAA, 0x0e0e);
                let (resp, mut send) = client.send_request(post_request(), false).unwrap();
                send.send_data(Bytes::from(q), false).unwrap();
                settle().await;
                send.send_data(Bytes::new(), true).unwrap();
                response_body(resp).await.expect("answered");
            })
        },
    );
    // The empty END_STREAM frames are there, each in a call of its own.
    let empty_end = |dir| {
        located_frames(&calls, dir)
            .into_iter()
            .find(|l| l.frame.kind == DATA && l.frame.payload.is_empty())
            .filter(|l| l.frame.has(END_STREAM))
            .expect("empty DATA with END_STREAM")
    };
    let (sent, answered) = (empty_end(Direction::Egress), empty_end(Direction::Ingress));
    assert!(frames_of(&calls, Direction::Ingress)
        .iter()
        .any(|f| f.kind == DATA && !f.payload.is_empty() && !f.has(END_STREAM)));
    let all = check(&calls, vec![aaaa(1, "empty-end.doh.test").id(0x0e0e)]);
    for (lookups, slice) in all.iter().zip(SLICES) {
        let want_ns = feed_ts(&calls, slice, Direction::Ingress, answered.end - 1)
            - feed_ts(&calls, slice, Direction::Egress, sent.end - 1);
        assert_eq!(
            lookups[0].latency_ms,
            Some(want_ns as f64 / 1e6),
            "latency from the empty END_STREAM frame out to the one in, slice {slice}"
        );
    }
}

/// PADDED DATA frames (nghttp2 with a padding callback pads DATA too): pad length 0, small and
/// 255; a padded frame whose payload is all padding ending the stream; padding on real h2 DATA
/// frames (re-framed) as well as on crafted ones.
#[test]
fn t4_padded_data_frames() {
    let (calls, want) = four_lookups();
    let mut n = 0usize;
    let padded = reframe(&calls, |_, f| {
        if f.kind != DATA {
            return vec![f];
        }
        n += 1;
        vec![data_padded(
            f.stream,
            &f.payload,
            [0u8, 255, 7][n % 3],
            f.has(END_STREAM),
        )]
    });
    assert!(frames_of(&padded, Direction::Ingress)
        .iter()
        .filter(|f| f.kind == DATA)
        .all(|f| f.has(PADDED)));
    check(&padded, want);

    let mut c = Crafted::new(&[], &[]);
    let q1 = query("padded.doh.test", RecordType::A, 0xabcd);
    let q3 = query("padded.doh.test", RecordType::AAAA, 0xdcba);
    let (b1, b3) = (c.post_block(), c.post_block());
    c.s.send(&header_frames(1, &b1, &[], HeadersOpts::default()));
    c.s.send(&[
        data_padded(1, &q1[..10], 0, false),
        data_padded(1, &q1[10..], 10, false),
        data_padded(1, &[], 255, true),
    ]);
    c.s.send(&header_frames(3, &b3, &[], HeadersOpts::default()));
    c.s.send(&[data_padded(3, &q3, 1, true)]);
    let (r3, r1) = (c.response_block("200"), c.response_block("200"));
    let ans3 = answer(&q3);
    c.s.recv(&header_frames(3, &r3, &[], HeadersOpts::default()));
    c.s.recv(&[
        data_padded(3, &ans3[..20], 200, false),
        data_padded(3, &ans3[20..], 0, false),
        data_padded(3, &[], 0, true),
    ]);
    c.s.recv(&header_frames(1, &r1, &[], HeadersOpts::default()));
    c.s.recv(&[data_padded(1, &answer(&q1), 255, true)]);
    check(
        &c.calls(),
        vec![
            a(1, "padded.doh.test").id(0xabcd),
            aaaa(3, "padded.doh.test").id(0xdcba),
        ],
    );
}

/// A 40 KiB TXT answer: more than two 16 KiB DATA frames, and more than one TLS read (TLS
/// records carry at most 16 KiB of plaintext, so the calls are also re-sliced at 16384).
#[test]
fn t4_answer_larger_than_a_frame_and_a_read() {
    let calls = record_h2(
        h2::client::Builder::new(),
        h2::server::Builder::new(),
        doh_server,
        client_sends(vec![
            post("big.doh.test", RecordType::TXT),
            get("www.doh.test", RecordType::A),
            get("big.doh.test", RecordType::TXT),
        ]),
    );
    let data_frames = frames_of(&calls, Direction::Ingress)
        .into_iter()
        .filter(|f| f.kind == DATA && f.stream == 1)
        .count();
    assert!(data_frames >= 3, "{data_frames} DATA frames");
    let txt = big_txt_shown("big.doh.test");
    assert!(txt.len() >= 40_000, "{}", txt.len());
    check_full(
        &calls,
        vec![
            lk(1, "big.doh.test", "TXT").answers(&[&txt]),
            a(3, "www.doh.test").get(),
            lk(5, "big.doh.test", "TXT").answers(&[&txt]).get(),
        ],
        &[usize::MAX, 16384, 5, 1],
        |_| {},
        |_| {},
    );
}
