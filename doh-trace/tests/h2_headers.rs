//! HTTP/2 HEADERS frames a DoH decoder meets: the PRIORITY and PADDED flags on request and
//! response HEADERS, and what the response HEADERS say — non-2xx statuses and informational
//! (1xx) heads before the final one.
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
use support::{dns::*, frames::*, h2_runner::*, shapes::*, *};

// ===== 1. HEADERS with PRIORITY and PADDED flags =====

/// Rewrites every HEADERS frame of a recorded exchange with `opts(dir, nth HEADERS of dir)`.
fn restyle_all(calls: &[Call], opts: impl Fn(Direction, usize) -> HeadersOpts) -> Vec<Call> {
    let (mut n_out, mut n_in) = (0, 0);
    reframe(calls, |dir, f| {
        if f.kind != HEADERS {
            return vec![f];
        }
        let n = match dir {
            Direction::Egress => &mut n_out,
            Direction::Ingress => &mut n_in,
        };
        *n += 1;
        vec![restyle_headers(&f, opts(dir, *n - 1))]
    })
}

/// The same HEADERS frame with the padding and priority fields of `opts` (END_STREAM and
/// END_HEADERS kept).
fn restyle_headers(f: &Frame, opts: HeadersOpts) -> Frame {
    assert_eq!(f.kind, HEADERS);
    let opts = HeadersOpts {
        end_stream: f.has(END_STREAM),
        ..opts
    };
    let mut g = header_frames(f.stream, f.fragment(), &[], opts).remove(0);
    if !f.has(END_HEADERS) {
        g.flags &= !END_HEADERS;
    }
    g
}

/// Crafted requests (no Huffman) with `opts` on each request's HEADERS: a POST with its body,
/// a GET, and a POST whose response HEADERS also carry `opts`.
fn crafted_with_headers_opts(opts: [HeadersOpts; 3]) -> (Vec<Call>, Vec<Expect>) {
    let mut c = Crafted::new(
        &[(SETTINGS_ENABLE_PUSH, 0)],
        &[(SETTINGS_MAX_CONCURRENT_STREAMS, 100)],
    );
    let q1 = query("crafted.doh.test", RecordType::A, 0x1111);
    let q3 = query("crafted.doh.test", RecordType::AAAA, 0x3333);
    let q5 = query("nx.doh.test", RecordType::AAAA, 0x5555);
    let b1 = c.post_block();
    let b3 = c.get_block(&q3);
    let b5 = c.post_block();
    c.s.send(&header_frames(1, &b1, &[], opts[0]))
        .send(&[data(1, &q1, true)]);
    c.s.send(&header_frames(
        3,
        &b3,
        &[],
        HeadersOpts {
            end_stream: true,
            ..opts[1]
        },
    ));
    c.s.send(&header_frames(5, &b5, &[], opts[2]))
        .send(&[data(5, &q5, true)]);
    // Encoded in the order they are sent (HPACK state follows the wire).
    let r3 = c.response_block("200");
    let r1 = c.response_block("200");
    let r5 = c.response_block("200");
    c.s.recv(&header_frames(3, &r3, &[], HeadersOpts::default()))
        .recv(&[data(3, &answer(&q3), true)]);
    c.s.recv(&header_frames(1, &r1, &[], HeadersOpts::default()))
        .recv(&[data(1, &answer(&q1), true)]);
    c.s.recv(&header_frames(
        5,
        &r5,
        &[],
        HeadersOpts {
            end_stream: false,
            ..opts[2]
        },
    ))
    .recv(&[data(5, &answer(&q5), true)]);
    let want = vec![
        a(1, "crafted.doh.test").id(0x1111),
        aaaa(3, "crafted.doh.test").get().id(0x3333),
        nxdomain(5, "nx.doh.test", "AAAA").id(0x5555),
    ];
    (c.calls(), want)
}

/// Chromium sends every request HEADERS with the PRIORITY flag (an exclusive dependency on
/// the previous stream and a weight from the request priority); Firefox (before RFC 9218
/// priorities) made idle "group" streams with PRIORITY frames and sent HEADERS with PRIORITY
/// depending on them. The 5 priority octets come before the header block fragment.
#[test]
fn t1_headers_with_the_priority_flag() {
    // Real h2 blocks (Huffman), re-framed Chromium-style on requests and on responses.
    let (calls, want) = four_lookups();
    let prio = restyle_all(&calls, |dir, n| HeadersOpts {
        priority: Some(match dir {
            Direction::Egress => ((2 * n as u32).saturating_sub(1), true, 255),
            Direction::Ingress => (0, false, 15),
        }),
        ..Default::default()
    });
    assert!(frames_of(&prio, Direction::Egress)
        .iter()
        .filter(|f| f.kind == HEADERS)
        .all(|f| f.has(PRIORITY_FLAG)));
    check(&prio, want);

    // Crafted blocks (no Huffman), Firefox-style: PRIORITY frames make idle group streams,
    // requests depend on them non-exclusively.
    let (crafted, want) = crafted_with_headers_opts([
        HeadersOpts {
            priority: Some((3, false, 200)),
            ..Default::default()
        },
        HeadersOpts {
            priority: Some((7, false, 0)),
            ..Default::default()
        },
        HeadersOpts {
            priority: Some((0x7fff_ffff, true, 21)),
            ..Default::default()
        },
    ]);
    let mut groups = Script::default();
    groups.send(&[
        priority_frame(3, 0, false, 200),
        priority_frame(5, 0, false, 100),
        priority_frame(7, 0, false, 0),
        priority_frame(9, 7, false, 0),
        priority_frame(11, 3, false, 0),
    ]);
    let mut calls = crafted[..2].to_vec();
    calls.extend(groups.calls());
    calls.extend_from_slice(&crafted[2..]);
    check(&calls, want);
}

/// Padding hides the length of header blocks; nghttp2 pads HEADERS (and DATA) when the
/// application installs a padding callback (nghttpx `--padding`). The pad-length octet comes
/// first and the padding after the fragment; pad lengths 0 (flag set, no padding), 1 and 255.
#[test]
fn t1_headers_with_the_padded_flag() {
    let (calls, want) = four_lookups();
    let pads = [0u8, 1, 255, 17];
    let padded = restyle_all(&calls, |_, n| HeadersOpts {
        pad: Some(pads[n % pads.len()]),
        ..Default::default()
    });
    assert!(frames_of(&padded, Direction::Ingress)
        .iter()
        .filter(|f| f.kind == HEADERS)
        .all(|f| f.has(PADDED)));
    check(&padded, want);

    let (crafted, want) = crafted_with_headers_opts([
        HeadersOpts {
            pad: Some(0),
            ..Default::default()
        },
        HeadersOpts {
            pad: Some(255),
            ..Default::default()
        },
        HeadersOpts {
            pad: Some(9),
            ..Default::default()
        },
    ]);
    check(&crafted, want);
}

/// PADDED and PRIORITY together: pad length, then the priority fields, then the fragment,
/// then padding.
#[test]
fn t1_headers_with_padded_and_priority_flags() {
    let (calls, want) = four_lookups();
    let both = restyle_all(&calls, |_, n| HeadersOpts {
        pad: Some([3u8, 0, 200][n % 3]),
        priority: Some((0, n % 2 == 0, 42)),
        ..Default::default()
    });
    check(&both, want);

    let both_opts = |pad, dep| HeadersOpts {
        pad: Some(pad),
        priority: Some((dep, true, 255)),
        ..Default::default()
    };
    let (crafted, want) =
        crafted_with_headers_opts([both_opts(5, 0), both_opts(0, 1), both_opts(255, 3)]);
    check(&crafted, want);
}

// ===== 2. HTTP status =====

/// Non-2xx responses end a lookup as "http-error" with the status: DoH servers answer 400 to a
/// malformed query, 413 to a too-large one (here without a body: END_STREAM on HEADERS), 415
/// to a wrong media type (RFC 8484 §4.2.1), 500 on failure. A crafted 404 uses the static-table entry; a
/// crafted 502 has no body and a block continued in a CONTINUATION.
#[test]
fn t7_non_2xx_responses_are_http_errors() {
    let calls = record_h2(
        h2::client::Builder::new(),
        h2::server::Builder::new(),
        |conn| {
            Box::pin(serve_queries(conn, |q, mut respond| async move {
                let name = qname_of(&q);
                let status: u16 = name[1..4].parse().unwrap_or(200);
                let head = http::Response::builder()
                    .status(status)
                    .header("content-type", "text/plain")
                    .body(())
                    .unwrap();
                if status == 413 {
                    respond.send_response(head, true).unwrap();
                } else if status == 200 {
                    let mut send = respond
                        .send_response(dns_response_head(200), false)
                        .unwrap();
                    send.send_data(Bytes::from(answer(&q)), true).unwrap();
                } else {
                    let mut send = respond.send_response(head, false).unwrap();
                    send.send_data(Bytes::from_static(b"bad request"), true)
                        .unwrap();
                }
            }))
        },
        client_sends(vec![
            post("s400.doh.test", RecordType::A),
            post("s413.doh.test", RecordType::A),
            get("s500.doh.test", RecordType::AAAA),
            post("s415.doh.test", RecordType::A),
            post("s200.doh.test", RecordType::A),
        ]),
    );
    check(
        &calls,
        vec![
            lk(1, "s400.doh.test", "A").http_error(400),
            lk(3, "s413.doh.test", "A").http_error(413),
            lk(5, "s500.doh.test", "AAAA").get().http_error(500),
            lk(7, "s415.doh.test", "A").http_error(415),
            a(9, "s200.doh.test"),
        ],
    );

    let mut c = Crafted::new(&[], &[]);
    let q1 = query("crafted.doh.test", RecordType::A, 0);
    let b1 = c.post_block();
    c.s.send(&header_frames(1, &b1, &[], HeadersOpts::default()))
        .send(&[data(1, &q1, true)]);
    let r1 = [
        hp_indexed(st::STATUS_404),
        hp_incremental(st::CONTENT_TYPE, b"text/html"),
    ]
    .concat();
    c.check_response(&r1);
    c.s.recv(&header_frames(1, &r1, &[], HeadersOpts::default()))
        .recv(&[data(1, b"<h1>not found</h1>", true)]);
    let q3 = query("crafted.doh.test", RecordType::AAAA, 0);
    let b3 = c.post_block();
    c.s.send(&header_frames(3, &b3, &[], HeadersOpts::default()))
        .send(&[data(3, &q3, true)]);
    // A 502 without a body whose block continues in a CONTINUATION: END_STREAM is on the
    // HEADERS frame, the response ends with the CONTINUATION.
    let r3 = [hp_not_indexed(st::STATUS_200, b"502"), hp_indexed(62)].concat();
    c.check_response(&r3);
    c.s.recv(&header_frames(
        3,
        &r3,
        &[2],
        HeadersOpts {
            end_stream: true,
            ..Default::default()
        },
    ));
    check(
        &c.calls(),
        vec![
            lk(1, "crafted.doh.test", "A").http_error(404),
            lk(3, "crafted.doh.test", "AAAA").http_error(502),
        ],
    );
}

/// Informational (1xx) HEADERS come before the final response on the same stream: 100
/// Continue (answer to `Expect: 100-continue`, which curl sends on large uploads; some servers
/// send it unasked) and 103 Early Hints (sent by CDNs such as Cloudflare). The final status is
/// the one that counts, 2xx or not.
#[test]
fn t7_informational_headers_before_the_final_response() {
    let calls = record_h2(
        h2::client::Builder::new(),
        h2::server::Builder::new(),
        |conn| {
            Box::pin(serve_queries(conn, |q, mut respond| async move {
                let name = qname_of(&q);
                let info = |code: u16| http::Response::builder().status(code).body(()).unwrap();
                respond.send_informational(info(100)).unwrap();
                if name.starts_with("hints") {
                    let mut hints = info(103);
                    hints
                        .headers_mut()
                        .insert("link", "</style.css>; rel=preload".parse().unwrap());
                    respond.send_informational(hints).unwrap();
                }
                let status = if name.starts_with("fail") { 500 } else { 200 };
                let mut send = respond
                    .send_response(dns_response_head(status), false)
                    .unwrap();
                send.send_data(Bytes::from(answer(&q)), true).unwrap();
            }))
        },
        client_sends(vec![
            post("continue.doh.test", RecordType::A),
            get("hints.doh.test", RecordType::AAAA),
            post("fail.doh.test", RecordType::A),
        ]),
    );
    let statuses: Vec<(u32, usize)> = header_blocks(&calls, Direction::Ingress)
        .iter()
        .map(|(s, _, _)| *s)
        .fold(Vec::new(), |mut v, s| {
            match v.iter_mut().find(|(x, _)| *x == s) {
                Some((_, n)) => *n += 1,
                None => v.push((s, 1)),
            }
            v
        });
    assert_eq!(
        statuses,
        vec![(1, 2), (3, 3), (5, 2)],
        "1xx blocks before the final ones"
    );
    check(
        &calls,
        vec![
            a(1, "continue.doh.test"),
            aaaa(3, "hints.doh.test").get(),
            lk(5, "fail.doh.test", "A").http_error(500),
        ],
    );
}
