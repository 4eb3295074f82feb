//! HTTP/2 stream lifecycle: many streams open at once and answered in any order, RST_STREAM
//! from either side, GOAWAY letting processed streams finish, and server push (PUSH_PROMISE)
//! that is not a lookup but keeps HPACK in step.
//!
//! Each test feeds a connection through the whole pipeline — bytes of a real `h2` client and
//! server (an independent implementation, recorded at the client's I/O boundary), those bytes
//! re-framed, or frames crafted byte by byte — and checks the exact lookups and counters with
//! the calls re-sliced into whole calls, 5-byte and 1-byte pieces (TLS call boundaries are
//! arbitrary). Crafted header blocks are never Huffman-coded; Huffman-coded blocks come from
//! `h2`, re-framed where a test needs a shape `h2` does not send.

mod support;

use std::future::poll_fn;

use bytes::Bytes;
use doh_trace::source::Direction;
use hickory_proto::rr::RecordType;
use support::{dns::*, frames::*, h2_runner::*, shapes::*};
use tokio::sync::mpsc;

// ===== 1. many streams, answers in any order =====

/// Eight lookups open at once on one connection (POST and GET, all DNS id 0 as RFC 8484
/// recommends, so only the stream id pairs them): request bodies sent in reverse order and in
/// two frames each, interleaved between streams; answers sent in reverse order of requests,
/// the two big TXT answers interleaved frame by frame with each other.
#[test]
fn t5_many_streams_interleaved_and_answered_in_reverse_order() {
    let reqs = vec![
        post("s1.doh.test", RecordType::A),
        get("s3.doh.test", RecordType::AAAA),
        post("big.doh.test", RecordType::TXT),
        post("nx.doh.test", RecordType::AAAA),
        get("big.doh.test", RecordType::TXT),
        post("s11.doh.test", RecordType::AAAA),
        get("s13.doh.test", RecordType::A),
        post("s15.doh.test", RecordType::A),
    ];
    let n = reqs.len();
    let mut client = h2::client::Builder::new();
    client
        .initial_window_size(1 << 20)
        .initial_connection_window_size(1 << 22);
    let calls = record_h2(
        client,
        h2::server::Builder::new(),
        move |conn| {
            Box::pin(async move {
                let (tx, mut rx) = mpsc::unbounded_channel();
                let coordinator = tokio::spawn(async move {
                    let mut got = Vec::new();
                    while got.len() < n {
                        got.push(rx.recv().await.unwrap());
                    }
                    got.sort_by_key(
                        |(id, _, _): &(u32, Vec<u8>, h2::server::SendResponse<Bytes>)| {
                            std::cmp::Reverse(*id)
                        },
                    );
                    let mut sends = Vec::new();
                    for (_, q, respond) in &mut got {
                        let send = respond
                            .send_response(dns_response_head(200), false)
                            .unwrap();
                        sends.push((send, answer_for(q.as_slice())));
                    }
                    // Round-robin 4000-octet pieces: the big answers interleave.
                    let mut at = 0;
                    while sends.iter().any(|(_, a)| at < a.len()) {
                        for (send, a) in &mut sends {
                            if at < a.len() {
                                let end = (at + 4000).min(a.len());
                                send.send_data(Bytes::copy_from_slice(&a[at..end]), end == a.len())
                                    .unwrap();
                            }
                        }
                        at += 4000;
                        settle().await;
                    }
                    settle().await;
                });
                serve_queries(conn, move |q, respond| {
                    let tx = tx.clone();
                    async move {
                        let id = u32::from(respond.stream_id());
                        tx.send((id, q, respond)).ok().unwrap();
                    }
                })
                .await;
                let _ = coordinator.await;
            })
        },
        move |mut client, _| {
            Box::pin(async move {
                let mut resps = Vec::new();
                let mut bodies = Vec::new();
                for q in &reqs {
                    ready(&mut client).await;
                    match q {
                        Q::Post(body) => {
                            let (resp, send) = client.send_request(post_request(), false).unwrap();
                            bodies.push((send, body.clone()));
                            resps.push(resp);
                        }
                        Q::Get(_) => resps.push(send_q(&mut client, q).await),
                    }
                }
                settle().await;
                // First halves in reverse order, then second halves in reverse order.
                for (send, body) in bodies.iter_mut().rev() {
                    send.send_data(Bytes::copy_from_slice(&body[..body.len() / 2]), false)
                        .unwrap();
                }
                settle().await;
                for (send, body) in bodies.iter_mut().rev() {
                    send.send_data(Bytes::copy_from_slice(&body[body.len() / 2..]), true)
                        .unwrap();
                }
                let tasks: Vec<_> = resps
                    .into_iter()
                    .map(|r| tokio::spawn(async move { response_body(r).await.expect("answered") }))
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            })
        },
    );
    // The shapes: responses begin in reverse order of requests, DATA of streams 9 and 5 (the
    // big answers) alternate, and request bodies interleave.
    let ingress = frames_of(&calls, Direction::Ingress);
    let heads: Vec<u32> = ingress
        .iter()
        .filter(|f| f.kind == HEADERS)
        .map(|f| f.stream)
        .collect();
    assert_eq!(heads, vec![15, 13, 11, 9, 7, 5, 3, 1]);
    let big_data: Vec<u32> = ingress
        .iter()
        .filter(|f| f.kind == DATA && (f.stream == 5 || f.stream == 9))
        .map(|f| f.stream)
        .collect();
    assert!(
        big_data.windows(3).any(|w| w[0] != w[1] && w[1] != w[2]),
        "{big_data:?}"
    );
    let body_order: Vec<u32> = frames_of(&calls, Direction::Egress)
        .iter()
        .filter(|f| f.kind == DATA)
        .map(|f| f.stream)
        .collect();
    assert_eq!(body_order, vec![15, 11, 7, 5, 1, 15, 11, 7, 5, 1]);
    let txt = big_txt_shown("big.doh.test");
    check(
        &calls,
        vec![
            a(1, "s1.doh.test"),
            aaaa(3, "s3.doh.test").get(),
            lk(5, "big.doh.test", "TXT").answers(&[&txt]),
            nxdomain(7, "nx.doh.test", "AAAA"),
            lk(9, "big.doh.test", "TXT").answers(&[&txt]).get(),
            aaaa(11, "s11.doh.test"),
            a(13, "s13.doh.test").get(),
            a(15, "s15.doh.test"),
        ],
    );
}

// ===== 2. RST_STREAM, GOAWAY, PUSH_PROMISE =====

/// RST_STREAM ends a lookup as "reset" whichever side sends it: the server refuses a stream
/// (REFUSED_STREAM, as nginx does past its concurrent-stream limit) before answering, or
/// resets after the response HEADERS (INTERNAL_ERROR); the client cancels (CANCEL, what
/// browsers send for abandoned requests and `h2` for a dropped response).
#[test]
fn t6_rst_stream_from_either_side_before_the_answer() {
    let calls = record_h2(
        h2::client::Builder::new(),
        h2::server::Builder::new(),
        |conn| {
            Box::pin(serve_queries(conn, |q, mut respond| async move {
                match qname_of(&q).as_str() {
                    "refused.doh.test" => respond.send_reset(h2::Reason::REFUSED_STREAM),
                    "half.doh.test" => {
                        let mut send = respond
                            .send_response(dns_response_head(200), false)
                            .unwrap();
                        settle().await;
                        send.send_reset(h2::Reason::INTERNAL_ERROR);
                    }
                    "cancel.doh.test" => {
                        // Wait for the client's RST_STREAM, then try to answer anyway.
                        let _ = poll_fn(|cx| respond.poll_reset(cx)).await;
                        let _ = respond.send_response(dns_response_head(200), true);
                    }
                    _ => {
                        let mut send = respond
                            .send_response(dns_response_head(200), false)
                            .unwrap();
                        send.send_data(Bytes::from(answer_for(&q)), true).unwrap();
                    }
                }
            }))
        },
        |mut client, _| {
            Box::pin(async move {
                let r1 = send_q(&mut client, &post("refused.doh.test", RecordType::A)).await;
                let r3 = send_q(&mut client, &post("half.doh.test", RecordType::AAAA)).await;
                ready(&mut client).await;
                let (r5, s5) = client.send_request(post_request(), false).unwrap();
                let r7 = send_q(&mut client, &post("www.doh.test", RecordType::A)).await;
                assert!(response_body(r1).await.is_none());
                assert!(response_body(r3).await.is_none());
                // The cancelled request: its body is sent, then the client gives up.
                let mut s5 = s5;
                s5.send_data(
                    Bytes::from(query("cancel.doh.test", RecordType::A, 0)),
                    true,
                )
                .unwrap();
                settle().await;
                drop(r5);
                drop(s5);
                settle().await;
                assert!(response_body(r7).await.is_some());
            })
        },
    );
    let rst = |dir| -> Vec<(u32, u32)> {
        frames_of(&calls, dir)
            .iter()
            .filter(|f| f.kind == RST_STREAM)
            .map(|f| {
                (
                    f.stream,
                    u32::from_be_bytes(f.payload[..4].try_into().unwrap()),
                )
            })
            .collect()
    };
    assert_eq!(
        rst(Direction::Ingress),
        vec![(1, REFUSED_STREAM), (3, INTERNAL_ERROR)]
    );
    assert_eq!(rst(Direction::Egress), vec![(5, CANCEL)]);
    check(
        &calls,
        vec![
            lk(1, "refused.doh.test", "A").reset(None),
            lk(3, "half.doh.test", "AAAA").reset(Some(200)),
            lk(5, "cancel.doh.test", "A").reset(None),
            a(7, "www.doh.test"),
        ],
    );
}

/// GOAWAY does not end the streams it lets finish. `h2`'s graceful shutdown (what servers do
/// on reload or after a request budget, e.g. nginx's `keepalive_requests`) sends GOAWAY with
/// the largest stream id and a PING, then GOAWAY with the last stream processed, then answers.
/// Crafted: a GOAWAY whose last stream id excludes an open stream, a client GOAWAY, an answer
/// after both; the excluded stream ends "unanswered" when the socket closes.
#[test]
fn t6_goaway_lets_processed_streams_finish() {
    let calls = record_h2(
        h2::client::Builder::new(),
        h2::server::Builder::new(),
        |mut conn| {
            Box::pin(async move {
                let mut pending = Vec::new();
                while pending.len() < 2 {
                    pending.push(conn.accept().await.unwrap().unwrap());
                }
                conn.graceful_shutdown();
                for (req, respond) in pending {
                    tokio::spawn(async move {
                        settle().await;
                        answer_doh(req, respond).await;
                    });
                }
                while let Some(r) = conn.accept().await {
                    let Ok((req, respond)) = r else { break };
                    tokio::spawn(answer_doh(req, respond));
                }
            })
        },
        client_sends(vec![
            post("before-goaway.doh.test", RecordType::A),
            get("before-goaway.doh.test", RecordType::AAAA),
        ]),
    );
    let ingress = frames_of(&calls, Direction::Ingress);
    let goaway_at = ingress
        .iter()
        .position(|f| f.kind == GOAWAY)
        .expect("GOAWAY");
    let first_answer = ingress.iter().position(|f| f.kind == HEADERS).unwrap();
    assert!(goaway_at < first_answer, "the answers come after GOAWAY");
    assert!(count(&calls, Direction::Ingress, GOAWAY) >= 1);
    check(
        &calls,
        vec![
            a(1, "before-goaway.doh.test"),
            aaaa(3, "before-goaway.doh.test").get(),
        ],
    );

    let mut c = Crafted::new(&[], &[]);
    let q1 = query("kept.doh.test", RecordType::A, 0);
    let q3 = query("dropped.doh.test", RecordType::A, 0);
    let (b1, b3) = (c.post_block(), c.post_block());
    c.s.send(&header_frames(1, &b1, &[], HeadersOpts::default()))
        .send(&[data(1, &q1, true)]);
    c.s.send(&header_frames(3, &b3, &[], HeadersOpts::default()))
        .send(&[data(3, &q3, true)]);
    c.s.recv(&[goaway(1, NO_ERROR, b"shutting down")]);
    c.s.send(&[goaway(0, NO_ERROR, b"")]);
    let r1 = c.response_block("200");
    c.s.recv(&header_frames(1, &r1, &[], HeadersOpts::default()))
        .recv(&[data(1, &answer(&q1), true)]);
    check_full(
        &c.calls(),
        vec![
            a(1, "kept.doh.test"),
            lk(3, "dropped.doh.test", "A").unanswered(),
        ],
        &SLICES,
        close_socket,
        |_| {},
    );
}

/// Server push (nginx `http2_push` before 1.25.1, h2o, Apache; browsers have since dropped
/// it): a PUSH_PROMISE carries a whole request header block — here a DoH GET — on the
/// client's stream, then the pushed response comes on an even stream. It is no lookup of the
/// client's, but its block changes the server's HPACK table: responses after it refer to
/// entries by indexes shifted by the pushed request's entries.
#[test]
fn t6_server_push_is_not_a_lookup_and_keeps_hpack_in_sync() {
    let pushed_q = query("pushed.doh.test", RecordType::A, 0);
    let mut client = h2::client::Builder::new();
    client.enable_push(true);
    let calls = record_h2(
        client,
        h2::server::Builder::new(),
        move |conn| {
            let pushed_q = pushed_q.clone();
            Box::pin(serve_queries(conn, move |q, mut respond| {
                let pushed_q = pushed_q.clone();
                async move {
                    if qname_of(&q) == "pusher.doh.test" {
                        let mut promise = get_request(&pushed_q);
                        promise
                            .headers_mut()
                            .insert("x-pushed-by", "shape-test".parse().unwrap());
                        let mut pushed = respond.push_request(promise).unwrap();
                        let mut ps = pushed.send_response(dns_response_head(200), false).unwrap();
                        ps.send_data(Bytes::from(answer(&pushed_q)), true).unwrap();
                    }
                    let mut send = respond
                        .send_response(dns_response_head(200), false)
                        .unwrap();
                    send.send_data(Bytes::from(answer_for(&q)), true).unwrap();
                }
            }))
        },
        |mut client, _| {
            Box::pin(async move {
                for q in [
                    post("first.doh.test", RecordType::A),
                    post("pusher.doh.test", RecordType::AAAA),
                ] {
                    let r = send_q(&mut client, &q).await;
                    response_body(r).await.expect("answered");
                    settle().await;
                }
                let r5 = send_q(&mut client, &post("after-push.doh.test", RecordType::AAAA)).await;
                let r7 = send_q(&mut client, &get("after-push.doh.test", RecordType::A)).await;
                response_body(r5).await.expect("answered");
                response_body(r7).await.expect("answered");
            })
        },
    );
    let ingress = frames_of(&calls, Direction::Ingress);
    let promise = ingress
        .iter()
        .find(|f| f.kind == PUSH_PROMISE)
        .expect("PUSH_PROMISE");
    assert_eq!(promise.stream, 3);
    assert!(ingress.iter().any(|f| f.kind == HEADERS && f.stream == 2));
    // The pushed request's entries shift the server's table: a later response refers to
    // content-type (added by the first response) at an index past the pushed entries.
    let later = header_blocks(&calls, Direction::Ingress)
        .into_iter()
        .find(|(s, kind, _)| *s == 5 && *kind == HEADERS)
        .unwrap()
        .2;
    assert!(
        hpack_walk(&later)
            .iter()
            .any(|f| f.kind == 'i' && f.index > 62),
        "{later:?}"
    );
    check(
        &calls,
        vec![
            a(1, "first.doh.test"),
            aaaa(3, "pusher.doh.test"),
            aaaa(5, "after-push.doh.test"),
            a(7, "after-push.doh.test").get(),
        ],
    );

    // Crafted: a PADDED PUSH_PROMISE whose block (indexed entries) continues in a
    // CONTINUATION, after a response that added entries; later responses use those entries by
    // their shifted indexes.
    use base64::Engine as _;
    let mut c = Crafted::new(&[], &[]);
    let q1 = query("first.doh.test", RecordType::A, 0);
    let q3 = query("second.doh.test", RecordType::A, 0);
    let q5 = query("third.doh.test", RecordType::AAAA, 0);
    let pushed = query("pushed.doh.test", RecordType::A, 0);
    let push_path = format!(
        "/dns-query?dns={}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&pushed)
    );
    let resp1 = [
        hp_incremental(st::STATUS_200, b"200"),
        hp_incremental(st::CONTENT_TYPE, b"application/dns-message"),
    ]
    .concat();
    // Server table: 62 content-type, 63 :status 200.
    let promise_block = [
        hp_indexed(st::METHOD_GET),
        hp_indexed(st::SCHEME_HTTPS),
        hp_incremental(st::AUTHORITY, AUTHORITY.as_bytes()),
        hp_incremental(st::PATH_ROOT, push_path.as_bytes()),
        hp_incremental(st::ACCEPT, b"application/dns-message"),
    ]
    .concat();
    // Now 62 accept, 63 :path, 64 :authority, 65 content-type, 66 :status 200.
    let resp_by_index = [hp_indexed(66), hp_indexed(65)].concat();
    c.check_response(&resp1);
    let promised = c.check_response(&promise_block);
    assert_eq!(promised[3], (":path".to_string(), push_path.clone()));
    assert_eq!(
        c.check_response(&resp_by_index),
        vec![
            (":status".to_string(), "200".to_string()),
            ("content-type".into(), "application/dns-message".into())
        ]
    );
    let b1 = c.post_block();
    c.s.send(&header_frames(1, &b1, &[], HeadersOpts::default()))
        .send(&[data(1, &q1, true)]);
    c.s.recv(&header_frames(1, &resp1, &[], HeadersOpts::default()))
        .recv(&[data(1, &answer(&q1), true)]);
    let b3 = c.post_block();
    c.s.send(&header_frames(3, &b3, &[], HeadersOpts::default()))
        .send(&[data(3, &q3, true)]);
    c.s.recv(&push_promise_frames(
        3,
        2,
        &promise_block,
        &[promise_block.len() / 2],
        Some(40),
    ));
    c.s.recv(&header_frames(
        2,
        &resp_by_index,
        &[],
        HeadersOpts::default(),
    ))
    .recv(&[data(2, &answer(&pushed), true)]);
    c.s.recv(&header_frames(
        3,
        &resp_by_index,
        &[],
        HeadersOpts::default(),
    ))
    .recv(&[data(3, &answer(&q3), true)]);
    let b5 = c.post_block();
    c.s.send(&header_frames(5, &b5, &[], HeadersOpts::default()))
        .send(&[data(5, &q5, true)]);
    c.s.recv(&header_frames(
        5,
        &resp_by_index,
        &[],
        HeadersOpts::default(),
    ))
    .recv(&[data(5, &answer(&q5), true)]);
    check(
        &c.calls(),
        vec![
            a(1, "first.doh.test"),
            a(3, "second.doh.test"),
            aaaa(5, "third.doh.test"),
        ],
    );
}
