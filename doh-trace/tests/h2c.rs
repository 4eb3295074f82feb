//! Cleartext HTTP/2 (h2c): the HTTP/1.1 Upgrade answered on stream 1 then HTTP/2 on stream 3,
//! and HTTP/2 with prior knowledge on a cleartext socket.
//!
//! Every connection is scripted as the kernel reports it (connect, data chunks of each I/O
//! call, close, exit) and run with its calls whole, in 1-byte and in 7-byte calls, with
//! identical lookups, counters and capture decisions. Bytes are written by hand in the shapes
//! real clients and servers send (`support::clients`).

mod support;

use doh_trace::counters::DecodeCounters;
use doh_trace_common::{Source, CAPTURE_SOCK_FULL};
use support::{answer, clients::*, frames::*, kernel::*};

// ===== 1. h2c upgrade =====

#[test]
fn h2c_upgrade_answers_on_stream_1_then_http2_on_stream_3() {
    let (q1, q3) = (qa("www.doh.test"), qaaaa("www.doh.test"));
    let client_settings = settings(&[
        (SETTINGS_MAX_CONCURRENT_STREAMS, 100),
        (SETTINGS_INITIAL_WINDOW_SIZE, 10 * 1024 * 1024),
        (SETTINGS_ENABLE_PUSH, 0),
    ]);
    let upgrade = format!(
        "GET /dns-query?dns={} HTTP/1.1\r\nHost: {CLEAR_AUTH}\r\nUser-Agent: curl/7.88.1\r\n\
         Accept: application/dns-message\r\nConnection: Upgrade, HTTP2-Settings\r\n\
         Upgrade: h2c\r\nHTTP2-Settings: {}\r\n\r\n",
        b64(&q1),
        b64(&client_settings.payload)
    );
    let mut server_enc = loona_hpack::Encoder::new();
    let mut client_enc = loona_hpack::Encoder::new();
    let switched = cat(&[
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
        &encode_all(&[settings(&[
            (SETTINGS_MAX_CONCURRENT_STREAMS, 100),
            (SETTINGS_INITIAL_WINDOW_SIZE, 16 * 1024 * 1024),
        ])]),
        &h2_response(&mut server_enc, 1, &answer(&q1)),
    ]);
    let conv = Conv::new(4300, 7, "curl", Source::Socket)
        .peer(CLEAR_PEER)
        .send(upgrade)
        .recv(switched)
        .send(cat(&[
            PREFACE,
            &encode_all(&[client_settings.clone(), settings_ack()]),
        ]))
        .send(h2_request(
            &mut client_enc,
            3,
            "http",
            CLEAR_AUTH,
            Some(&q3),
            None,
        ))
        .recv(cat(&[
            &settings_ack().encode(),
            &h2_response(&mut server_enc, 3, &answer(&q3)),
        ]));
    check(
        &conv,
        &[
            a(&conv, "www.doh.test").get().h2(1),
            aaaa(&conv, "www.doh.test").h2(3),
        ],
        &DecodeCounters {
            h1_client_conns: 1,
            h2c_upgrades: 1,
            lookups: 2,
            ..Default::default()
        },
        &[conv.decision(CAPTURE_SOCK_FULL)],
        &[],
    );
}

// ===== 2. h2c with prior knowledge =====

#[test]
fn h2c_prior_knowledge_on_a_cleartext_socket() {
    let q = qa("www.doh.test");
    let mut client_enc = loona_hpack::Encoder::new();
    let mut server_enc = loona_hpack::Encoder::new();
    let conv = Conv::new(4400, 8, "curl", Source::Socket)
        .peer(CLEAR_PEER)
        .send(cat(&[
            &curl_h2_preface(),
            &h2_request(&mut client_enc, 1, "http", CLEAR_AUTH, None, Some(&q)),
        ]))
        .recv(cat(&[
            &encode_all(&[dnsdist_settings(), settings_ack()]),
            &h2_response(&mut server_enc, 1, &answer(&q)),
        ]))
        .send(settings_ack().encode());
    check(
        &conv,
        &[a(&conv, "www.doh.test").get().h2(1)],
        &h2_counters(1),
        &[conv.decision(CAPTURE_SOCK_FULL)],
        &[],
    );
}
