//! HTTP/2 header blocks in HEADERS + CONTINUATION frames: split by `h2` itself, re-framed at
//! awkward places (inside Huffman strings and integers), crafted without Huffman, and single
//! HEADERS frames over 16 KiB and over 64 KiB once a peer raised SETTINGS_MAX_FRAME_SIZE.
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

// ===== 1. CONTINUATION =====

/// A header block larger than SETTINGS_MAX_FRAME_SIZE (16 KiB unless raised) is sent as
/// HEADERS + CONTINUATION by every implementation (nghttp2, Go, h2); big cookies and
/// tracing headers do it in the wild. Here `h2` splits both directions itself, inside the
/// Huffman-coded filler value.
#[test]
fn t2_h2_splits_large_header_blocks_into_continuations() {
    // Filler values of lowercase letters and digits Huffman-code to 5-6 bits per octet.
    let filler = |n: usize| -> String {
        (0..n)
            .map(|i| (b"abcdefghijklmnopqrstuvwxyz0123456789"[(i * 7 + i / 36) % 36]) as char)
            .collect()
    };
    let calls = record_h2(
        h2::client::Builder::new(),
        h2::server::Builder::new(),
        move |conn| {
            Box::pin(serve_queries(conn, move |q, mut respond| async move {
                let mut head = dns_response_head(200);
                if qname_of(&q).starts_with("cont1") {
                    head.headers_mut()
                        .insert("x-server-filler", filler(27_000).parse().unwrap());
                }
                let mut send = respond.send_response(head, false).unwrap();
                send.send_data(Bytes::from(answer_for(&q)), true).unwrap();
            }))
        },
        move |mut client, _| {
            Box::pin(async move {
                let mut resps = Vec::new();
                for (name, filler_len) in [
                    ("cont1.doh.test", 27_000),
                    ("plain.doh.test", 0),
                    ("cont3.doh.test", 75_000),
                ] {
                    ready(&mut client).await;
                    let mut req = post_request();
                    if filler_len > 0 {
                        req.headers_mut()
                            .insert("x-filler", filler(filler_len).parse().unwrap());
                    }
                    let (resp, mut send) = client.send_request(req, false).unwrap();
                    send.send_data(Bytes::from(query(name, RecordType::A, 0)), true)
                        .unwrap();
                    resps.push(resp);
                }
                for r in resps {
                    response_body(r).await.expect("answered");
                }
            })
        },
    );
    // The shapes are there: 1 CONTINUATION on stream 1 and 3 on stream 5 out, 1 on stream 1
    // in, each split inside a Huffman-coded string.
    let conts = |dir, stream| {
        frames_of(&calls, dir)
            .iter()
            .filter(|f| f.kind == CONTINUATION && f.stream == stream)
            .count()
    };
    assert_eq!(
        (
            conts(Direction::Egress, 1),
            conts(Direction::Egress, 3),
            conts(Direction::Egress, 5)
        ),
        (1, 0, 3)
    );
    assert_eq!(conts(Direction::Ingress, 1), 1);
    for dir in [Direction::Egress, Direction::Ingress] {
        let frames = frames_of(&calls, dir);
        let first = frames
            .iter()
            .find(|f| f.kind == HEADERS && !f.has(END_HEADERS))
            .unwrap();
        let block = &header_blocks(&calls, dir)
            .into_iter()
            .find(|(s, _, _)| *s == first.stream)
            .unwrap()
            .2;
        let cut = first.fragment().len();
        assert!(
            hpack_walk(block)
                .iter()
                .flat_map(|f| f.strings.clone())
                .any(|s| s.huffman && s.start < cut && cut < s.end),
            "{dir:?}: the frame boundary falls inside a Huffman string"
        );
    }
    check(
        &calls,
        vec![
            a(1, "cont1.doh.test"),
            a(3, "plain.doh.test"),
            a(5, "cont3.doh.test"),
        ],
    );
}

/// Cut points that make decoding hard: an empty HEADERS fragment, the middle of the first
/// Huffman string, inside a multi-octet string length, between a length and its octets, and an
/// empty last CONTINUATION. Returns cuts for `n` CONTINUATIONs.
fn awkward_cuts(block: &[u8], n: usize) -> Vec<usize> {
    let fields = hpack_walk(block);
    let strings: Vec<HpString> = fields.iter().flat_map(|f| f.strings.clone()).collect();
    let mut cands = Vec::new();
    if let Some(s) = strings.iter().find(|s| s.huffman) {
        cands.push((s.start + s.end) / 2);
    }
    if let Some(s) = strings.iter().find(|s| s.start - s.len_at > 1) {
        cands.push(s.len_at + 1);
    }
    if let Some(s) = strings.last() {
        cands.push(s.start);
    }
    cands.push(0);
    cands.push(block.len());
    cands.extend(fields.iter().map(|f| f.start));
    cands.truncate(n);
    cands.sort();
    cands
}

/// Real h2 blocks (Huffman) re-framed into HEADERS + 1 or 3 CONTINUATIONs split at awkward
/// places, on requests and responses. A decoder that decodes fragments one at a time, or that
/// finishes a block at the HEADERS frame, loses the lookup.
#[test]
fn t2_continuations_split_inside_huffman_strings_and_integers() {
    // A long name makes the GET's Huffman-coded :path longer than 127 octets, so its length
    // takes two octets.
    let long = "a-long-label-of-sixty-characters-for-the-huffman-path-test-01.\
                another-label-of-sixty-characters-to-make-the-path-long-02.doh.test";
    let calls = exchange(
        vec![
            Req::post(query("www.doh.test", RecordType::A, 0)),
            Req::post(query("www.doh.test", RecordType::AAAA, 0)),
            Req::get(&query(long, RecordType::A, 0)),
            Req::post(query("nx.doh.test", RecordType::A, 0)),
        ],
        200,
    );
    let mut inside_huffman = 0;
    let mut inside_integer = 0;
    let split = reframe(&calls, |dir, f| {
        if f.kind != HEADERS {
            return vec![f];
        }
        assert!(f.has(END_HEADERS));
        let block = f.fragment().to_vec();
        let n = match (dir, f.stream) {
            (Direction::Egress, 1 | 5) => 3,
            (Direction::Egress, _) => 1,
            (Direction::Ingress, 1) => 1,
            (Direction::Ingress, _) => 3,
        };
        let cuts = awkward_cuts(&block, n);
        for s in hpack_walk(&block).iter().flat_map(|f| f.strings.clone()) {
            inside_huffman += cuts
                .iter()
                .filter(|&&c| s.huffman && s.start < c && c < s.end)
                .count();
            inside_integer += cuts
                .iter()
                .filter(|&&c| s.len_at < c && c < s.start)
                .count();
        }
        header_frames(
            f.stream,
            &block,
            &cuts,
            HeadersOpts {
                end_stream: f.has(END_STREAM),
                ..Default::default()
            },
        )
    });
    assert!(
        inside_huffman >= 3 && inside_integer >= 1,
        "{inside_huffman} {inside_integer}"
    );
    assert!(count(&split, Direction::Egress, CONTINUATION) >= 8);
    assert!(count(&split, Direction::Ingress, CONTINUATION) >= 4);
    check(
        &split,
        vec![
            a(1, "www.doh.test"),
            aaaa(3, "www.doh.test"),
            a(5, long).get(),
            nxdomain(7, "nx.doh.test", "A"),
        ],
    );
}

/// Crafted blocks (no Huffman) in HEADERS + 1 CONTINUATION and HEADERS + 3 CONTINUATIONs,
/// split inside raw string literals, with PADDED and PRIORITY on the HEADERS frame (padding
/// belongs to the HEADERS frame only), and a control frame right before and after the block.
#[test]
fn t2_crafted_continuations_without_huffman() {
    let mut c = Crafted::new(&[], &[]);
    let q1 = query("one.doh.test", RecordType::A, 1);
    let q3 = query("three.doh.test", RecordType::AAAA, 3);
    let b1 = c.post_block();
    let b3 = c.get_block(&q3);
    let every = |b: &[u8], parts: usize| -> Vec<usize> {
        (1..parts).map(|i| i * b.len() / parts).collect()
    };
    c.s.send(&[window_update(0, 1 << 20)]);
    c.s.send(&header_frames(
        1,
        &b1,
        &every(&b1, 2),
        HeadersOpts::default(),
    ));
    c.s.send(&[data(1, &q1, true), ping(*b"pingpong", false)]);
    c.s.send(&header_frames(
        3,
        &b3,
        &every(&b3, 4),
        HeadersOpts {
            end_stream: true,
            pad: Some(33),
            priority: Some((1, false, 7)),
        },
    ));
    let r3 = c.response_block("200");
    let r1 = c.response_block("200");
    c.s.recv(&[ping(*b"pingpong", true)]);
    c.s.recv(&header_frames(
        3,
        &r3,
        &every(&r3, 4),
        HeadersOpts::default(),
    ));
    c.s.recv(&[data(3, &answer(&q3), true)]);
    c.s.recv(&header_frames(
        1,
        &r1,
        &every(&r1, 2),
        HeadersOpts {
            pad: Some(2),
            ..Default::default()
        },
    ));
    c.s.recv(&[data(1, &answer(&q1), true), window_update(0, 99)]);
    let calls = c.calls();
    assert_eq!(count(&calls, Direction::Egress, CONTINUATION), 1 + 3);
    assert_eq!(count(&calls, Direction::Ingress, CONTINUATION), 3 + 1);
    check(
        &calls,
        vec![
            a(1, "one.doh.test").id(1),
            aaaa(3, "three.doh.test").get().id(3),
        ],
    );
}

/// A peer that raised SETTINGS_MAX_FRAME_SIZE (Go's server advertises 1 MiB, nginx 16 MiB)
/// receives frames over 16 KiB: here each `h2` peer allows 1 MiB, so a 30 KiB request header
/// block and a 30 KiB response header block come in one HEADERS frame each (no CONTINUATION),
/// and the 40 KiB answer in one DATA frame.
#[test]
fn t2_raised_max_frame_size_means_frames_over_16k() {
    let filler: String = (0..30_000)
        .map(|i| (b'!' + (i % 90) as u8) as char)
        .collect();
    let server_filler = filler.clone();
    let mut client = h2::client::Builder::new();
    client.max_frame_size(1 << 20);
    let mut server = h2::server::Builder::new();
    server.max_frame_size(1 << 20);
    let calls = record_h2(
        client,
        server,
        move |conn| {
            Box::pin(serve_queries(conn, move |q, mut respond| {
                let filler = server_filler.clone();
                async move {
                    let mut head = dns_response_head(200);
                    head.headers_mut()
                        .insert("x-server-filler", filler.parse().unwrap());
                    let mut send = respond.send_response(head, false).unwrap();
                    send.send_data(Bytes::from(answer_for(&q)), true).unwrap();
                }
            }))
        },
        move |mut client, _| {
            Box::pin(async move {
                let big = [("x-filler", filler)];
                let r1 =
                    send_q_with(&mut client, &post("big.doh.test", RecordType::TXT), &big).await;
                let r3 = send_q_with(&mut client, &get("www.doh.test", RecordType::A), &big).await;
                response_body(r1).await.expect("answered");
                response_body(r3).await.expect("answered");
            })
        },
    );
    for dir in [Direction::Egress, Direction::Ingress] {
        let frames = frames_of(&calls, dir);
        assert_eq!(frames.iter().filter(|f| f.kind == CONTINUATION).count(), 0);
        assert!(frames
            .iter()
            .any(|f| f.kind == HEADERS && f.payload.len() > 16_384 && f.payload.len() < 65_536));
    }
    assert!(frames_of(&calls, Direction::Ingress)
        .iter()
        .any(|f| f.kind == DATA && f.payload.len() > 40_000));
    let txt = big_txt_shown("big.doh.test");
    check(
        &calls,
        vec![
            lk(1, "big.doh.test", "TXT").answers(&[&txt]),
            a(3, "www.doh.test").get(),
        ],
    );
}

/// Reveals a decoder limit that contradicts its own: a header block is reassembled up to
/// 256 KiB (`MAX_HEADER_BLOCK`) when it comes in CONTINUATIONs, but a single HEADERS frame of
/// more than 64 KiB (`MAX_BUFFERED_FRAME`) — legal once the server raised
/// SETTINGS_MAX_FRAME_SIZE, as `h2` sends it here — stops decoding the whole connection as
/// malformed HTTP/2. The same 100 KiB block split into CONTINUATIONs is decoded.
#[test]
fn t2_header_block_over_64k_in_one_frame() {
    let filler: String = (0..100_000)
        .map(|i| (b'!' + (i % 90) as u8) as char)
        .collect();
    let record = |max_frame: Option<u32>| {
        let filler = filler.clone();
        let mut server = h2::server::Builder::new();
        if let Some(m) = max_frame {
            server.max_frame_size(m);
        }
        record_h2(
            h2::client::Builder::new(),
            server,
            doh_server,
            move |mut client, _| {
                Box::pin(async move {
                    let big = [("x-filler", filler)];
                    let r1 =
                        send_q_with(&mut client, &post("www.doh.test", RecordType::A), &big).await;
                    let r3 = send_q(&mut client, &post("www.doh.test", RecordType::AAAA)).await;
                    response_body(r1).await.expect("answered");
                    response_body(r3).await.expect("answered");
                })
            },
        )
    };
    let want = || vec![a(1, "www.doh.test"), aaaa(3, "www.doh.test")];
    // In CONTINUATIONs (16 KiB frames): decoded.
    let split = record(None);
    assert!(count(&split, Direction::Egress, CONTINUATION) >= 5);
    check(&split, want());
    // In one HEADERS frame: the same lookups are expected.
    let one = record(Some(1 << 20));
    assert_eq!(count(&one, Direction::Egress, CONTINUATION), 0);
    assert!(frames_of(&one, Direction::Egress)
        .iter()
        .any(|f| f.kind == HEADERS && f.payload.len() > 65_536));
    check(&one, want());
}
