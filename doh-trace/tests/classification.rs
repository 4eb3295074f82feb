//! Which connections are DoH clients: a connection whose first request is not DoH is skipped,
//! the server side of a connection is not reported, and TLS records on a plain socket are
//! skipped (capture decisions included).
//!
//! Every connection is scripted as the kernel reports it (connect, data chunks of each I/O
//! call, close, exit) and run with its calls whole, in 1-byte and in 7-byte calls, with
//! identical lookups, counters and capture decisions. Bytes are written by hand in the shapes
//! real clients and servers send (`support::clients`).

mod support;

use doh_trace::counters::DecodeCounters;
use doh_trace_common::{Source, CAPTURE_SOCK_SKIP, CAPTURE_TLS_SKIP};
use support::{answer, clients::*, kernel::*};

// ===== classification =====

#[test]
fn h1_connection_whose_first_request_is_not_doh_is_skipped() {
    let body = br#"{"user":"alice","password":"hunter2"}"#;
    let req = cat(&[
        format!(
            "POST /api/v1/login?next=%2Fsecret-dashboard HTTP/1.1\r\nHost: {TLS_AUTH}\r\n\
             User-Agent: curl/7.88.1\r\nAccept: */*\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
        body,
    ]);
    let resp_body = b"{\"token\":\"eyJ-very-private\"}";
    let conv = curl_tls()
        .send(req)
        .recv(h2o_response("200 OK", "application/json", resp_body));
    check(
        &conv,
        &[],
        &DecodeCounters {
            h1_client_conns: 1,
            non_dns_conns: 1,
            ..Default::default()
        },
        &[conv.decision(CAPTURE_TLS_SKIP)],
        &[
            b"/api/v1/login",
            b"secret-dashboard",
            b"hunter2",
            b"alice",
            b"eyJ-very-private",
        ],
    );
}

#[test]
fn h1_server_side_connection_is_not_reported() {
    // The traced process is the DoH server: the request is read, the answer written.
    let q = qa("server.doh.test");
    let conv = Conv::new(4700, 11, "h2o", Source::OpenSsl)
        .recv(curl_post(TLS_AUTH, &q))
        .send(dns_ok(&answer(&q)));
    check(
        &conv,
        &[],
        &DecodeCounters {
            server_side_conns: 1,
            ..Default::default()
        },
        &[conv.decision(CAPTURE_TLS_SKIP)],
        &[b"server.doh.test"],
    );
}

#[test]
fn h1_server_side_non_doh_request_is_not_reported() {
    let conv = Conv::new(4701, 12, "nginx", Source::Socket)
        .recv("GET /admin/secret-report.pdf HTTP/1.1\r\nHost: intranet\r\n\r\n")
        .send(h2o_response(
            "200 OK",
            "application/pdf",
            b"%PDF-confidential",
        ));
    check(
        &conv,
        &[],
        &DecodeCounters {
            server_side_conns: 1,
            ..Default::default()
        },
        &[conv.decision(CAPTURE_SOCK_SKIP)],
        &[b"secret-report", b"admin", b"confidential"],
    );
}

#[test]
fn tls_records_on_a_socket_are_skipped() {
    // A ClientHello and ServerHello of a TLS stack that is not hooked (ciphertext only). The
    // hello's body is filler, not a parseable ClientHello: that is counted, and the socket is
    // skipped all the same.
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x00, 0xf4, 0x01, 0x00, 0x00, 0xf0, 0x03, 0x03,
    ];
    hello.extend((0..0xf4 - 6).map(|i| (i * 37 % 251) as u8));
    let mut server_hello = vec![
        0x16, 0x03, 0x03, 0x00, 0x7a, 0x02, 0x00, 0x00, 0x76, 0x03, 0x03,
    ];
    server_hello.extend((0..0x7a - 6).map(|i| (i * 53 % 251) as u8));
    let conv = Conv::new(4800, 13, "rustls-app", Source::Socket)
        .peer(TLS_PEER)
        .send(hello)
        .recv(server_hello);
    check(
        &conv,
        &[],
        &DecodeCounters {
            tls_on_socket_conns: 1,
            bad_client_hellos: 1,
            ..Default::default()
        },
        &[conv.decision(CAPTURE_SOCK_SKIP)],
        &[],
    );
}
