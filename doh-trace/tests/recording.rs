//! What a recording holds (no root): the real fixtures recorded again through the live loop's
//! `Recorder` replay to exactly the lookups they gave; an HTTP/2 connection of a real `h2`
//! client and server, and an HTTP/1.1 keep-alive connection, that carry a page with secret
//! paths, headers and bodies beside their DoH requests are recorded with their DoH exchanges
//! only — every lookup still replays, no byte of the page reaches the file.

mod support;

use std::io::BufReader;

use doh_trace::{
    clock::Clock,
    conn::binding::BindChange,
    output::recording::Recorder,
    pipeline::{replay, Pipeline},
    process::NoProcessInfo,
    source::recording::{
        read_header, read_record, write_header, Header, Record, RecordedProcessInfo,
    },
};
use doh_trace_common::{
    CloseEvent, ConnEvent, EventHeader, EventKind, Source, AF_INET, CHUNK_SIZE, COMM_LEN,
    CONN_CONNECT, DATA_EVENT_HEADER_SIZE, DIR_EGRESS, DIR_INGRESS,
};
use serde_json::Value;
use support::{clients, h2_runner, Call};

const PID: u32 = 4100;

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(format!("{name}.dtr"))
}

/// The live loop's recording steps for one raw event: the pipeline, then its TLS bindings,
/// the event with the facts learnt, the decisions made.
fn record_event(
    p: &mut Pipeline,
    rec: &mut Recorder,
    raw: &[u8],
    facts: Vec<Record>,
    out: &mut Vec<u8>,
) {
    p.handle_record(raw);
    let decisions: Vec<_> = p.drain_decisions().collect();
    for change in p.drain_bind_changes().collect::<Vec<_>>() {
        match change {
            BindChange::Bound { meta, tls_obj, fd } => rec.bound(&meta, tls_obj, fd, out).unwrap(),
            BindChange::Unbound { pid, tls_obj } => rec.unbound(pid, tls_obj),
        }
    }
    rec.offer(raw, facts, out).unwrap();
    for d in &decisions {
        rec.decided(d, out).unwrap();
    }
    let _ = p.drain_lookups().count();
}

/// A fixture recorded again, as `doh-trace record` would have written it now.
fn rerecord(name: &str) -> Vec<u8> {
    let mut r = BufReader::new(std::fs::File::open(fixture(name)).unwrap());
    let header = read_header(&mut r).unwrap();
    let mut out = Vec::new();
    write_header(&mut out, header).unwrap();
    let mut p = Pipeline::new(
        Box::new(RecordedProcessInfo::default()),
        Clock::with_offset(header.clock_offset_ns.into()),
    );
    let mut rec = Recorder::default();
    let mut facts = Vec::new();
    while let Some(record) = read_record(&mut r).unwrap() {
        match record {
            Record::Event(raw) => {
                record_event(&mut p, &mut rec, &raw, std::mem::take(&mut facts), &mut out)
            }
            Record::ProcessName { pid, ref name } => {
                p.process_info().remember_name(pid, name.clone());
                facts.push(record);
            }
            Record::SocketEnds { pid, fd, ends } => {
                p.process_info().remember_socket(pid, fd, ends);
                facts.push(record);
            }
            Record::ProcessContext { pid, ref context } => {
                p.process_info().remember_context(pid, context.clone());
                facts.push(record);
            }
        }
    }
    out
}

fn lookups(recording: &[u8]) -> Vec<Value> {
    let mut out = Vec::new();
    replay::replay(recording, |l| {
        out.push(serde_json::to_value(&l).unwrap());
        Ok(true)
    })
    .unwrap();
    out
}

#[test]
fn real_fixtures_recorded_again_replay_to_the_same_lookups() {
    for name in [
        "curl-python-unbound",
        "curl-http1-h2c-dnsdist",
        "python-mid-stream-unbound",
    ] {
        let original = std::fs::read(fixture(name)).unwrap();
        let again = rerecord(name);
        let (want, got) = (lookups(&original), lookups(&again));
        assert!(!want.is_empty(), "{name}");
        assert_eq!(got, want, "{name}: the lookups, field for field");
        eprintln!(
            "{name}: {} bytes recorded, {} recorded again",
            original.len(),
            again.len()
        );
    }
}

// ===== kernel records of one connection =====

fn header(kind: EventKind, ts_ns: u64) -> EventHeader {
    EventHeader {
        kind: kind as u32,
        tgid: PID,
        tid: PID + 1,
        uid: 1000,
        ts_ns,
    }
}

fn bytes_of<T>(v: &T) -> Vec<u8> {
    // SAFETY: plain `repr(C)` records of integers and byte arrays, read as bytes.
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, size_of::<T>()) }.to_vec()
}

fn comm() -> [u8; COMM_LEN] {
    let mut c = [0u8; COMM_LEN];
    c[..6].copy_from_slice(b"client");
    c
}

fn conn(fd: i32, port: u16) -> Vec<u8> {
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&[127, 0, 0, 1]);
    bytes_of(&ConnEvent {
        header: header(EventKind::Conn, 1),
        fd,
        how: CONN_CONNECT | (1 << doh_trace_common::CONN_TYPE_SHIFT),
        ret: 0,
        family: AF_INET,
        port,
        addr,
        comm: comm(),
    })
}

fn close(fd: i32, ts: u64) -> Vec<u8> {
    bytes_of(&CloseEvent {
        header: header(EventKind::Close, ts),
        fd,
        _pad: 0,
    })
}

/// One call's data records, as the eBPF side emits them.
fn data(fd: i32, source: Source, egress: bool, ts: u64, call: &[u8]) -> Vec<Vec<u8>> {
    let total = call.len() as u32;
    call.chunks(CHUNK_SIZE)
        .enumerate()
        .map(|(i, chunk)| {
            let mut r = bytes_of(&header(EventKind::Data, ts));
            let dir = if egress { DIR_EGRESS } else { DIR_INGRESS };
            for v in [fd as u32, source as u32, dir, 0] {
                r.extend_from_slice(&v.to_ne_bytes());
            }
            r.extend_from_slice(&0x7000u64.to_ne_bytes());
            for v in [total, (i * CHUNK_SIZE) as u32, chunk.len() as u32, 0] {
                r.extend_from_slice(&v.to_ne_bytes());
            }
            r.extend_from_slice(&comm());
            assert_eq!(r.len(), DATA_EVENT_HEADER_SIZE);
            r.extend_from_slice(chunk);
            r
        })
        .collect()
}

/// Records one connection's calls, live: what the pipeline reported and the file written.
fn record_calls(calls: &[Call], source: Source, port: u16) -> (Vec<Value>, Vec<u8>) {
    let mut p = Pipeline::new(Box::new(NoProcessInfo), Clock::with_offset(0));
    let mut rec = Recorder::default();
    let mut out = Vec::new();
    write_header(&mut out, Header { clock_offset_ns: 0 }).unwrap();
    let fd = 7;
    let mut events = vec![conn(fd, port)];
    for (i, c) in calls.iter().enumerate() {
        let egress = c.dir == doh_trace::source::Direction::Egress;
        events.extend(data(fd, source, egress, 1_000 + i as u64 * 1_000, &c.bytes));
    }
    events.push(close(fd, 1_000_000));
    let mut live = Vec::new();
    for raw in &events {
        p.handle_record(raw);
        let decisions: Vec<_> = p.drain_decisions().collect();
        rec.offer(raw, Vec::new(), &mut out).unwrap();
        for d in &decisions {
            rec.decided(d, &mut out).unwrap();
        }
        live.extend(
            p.drain_lookups()
                .map(|l| serde_json::to_value(&*l).unwrap()),
        );
    }
    (live, out)
}

/// The data records' bytes of one direction in a recording, in order.
fn recorded(file: &[u8], egress: bool) -> Vec<u8> {
    let mut r = file;
    read_header(&mut r).unwrap();
    let mut out = Vec::new();
    while let Some(rec) = read_record(&mut r).unwrap() {
        if let Record::Event(raw) = rec {
            if let Ok(doh_trace::source::Event::Data(d)) = doh_trace::source::kernel::decode(&raw) {
                if (d.direction == doh_trace::source::Direction::Egress) == egress {
                    out.extend_from_slice(d.bytes);
                }
            }
        }
    }
    out
}

/// Every header field of one direction of an HTTP/2 connection, decoded with loona-hpack
/// (frames split by hand: HEADERS, CONTINUATION, padding and priority).
fn header_fields(bytes: &[u8], egress: bool) -> Vec<(String, String)> {
    let mut b = bytes;
    if egress {
        b = b
            .strip_prefix(doh_trace::proto::http2::PREFACE.as_slice())
            .expect("preface");
    }
    let mut decoder = loona_hpack::Decoder::new();
    let (mut block, mut out) = (Vec::new(), Vec::new());
    while b.len() >= 9 {
        let len = usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]);
        let (kind, flags) = (b[3], b[4]);
        let mut payload = &b[9..9 + len];
        b = &b[9 + len..];
        if kind == 1 {
            if flags & 0x8 != 0 {
                let pad = usize::from(payload[0]);
                payload = &payload[1..payload.len() - pad];
            }
            if flags & 0x20 != 0 {
                payload = &payload[5..];
            }
        }
        if kind == 1 || kind == 9 {
            block.extend_from_slice(payload);
            if flags & 0x4 != 0 {
                for (n, v) in decoder.decode(&block).unwrap() {
                    out.push((
                        String::from_utf8_lossy(&n).into_owned(),
                        String::from_utf8_lossy(&v).into_owned(),
                    ));
                }
                block.clear();
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Secrets of characters whose Huffman codes are longer than a byte, so that an HPACK encoder
/// sends them as they are, and finding them in the bytes is finding them at all.
const SECRET_PATH: &str = "/~^|~^|~^|account";
const SECRET_COOKIE: &str = "~^|~^|~^|~^|session";

#[test]
fn an_h2_connection_keeps_only_its_doh_streams() {
    use bytes::Bytes;
    use hickory_proto::rr::RecordType;
    let calls = h2_runner::record_h2(
        h2::client::Builder::new(),
        h2::server::Builder::new(),
        |conn| {
            Box::pin(h2_runner::serve(conn, |req, mut respond| async move {
                if req.uri().path() == "/dns-query" {
                    return h2_runner::answer_doh(req, respond).await;
                }
                let resp = http::Response::builder()
                    .status(200)
                    .header("content-type", "text/html")
                    .header("set-cookie", SECRET_COOKIE)
                    .body(())
                    .unwrap();
                let mut send = respond.send_response(resp, false).unwrap();
                send.send_data(Bytes::from_static(b"<html>secret page</html>"), true)
                    .unwrap();
            }))
        },
        |mut client, _pings| async move {
            let a = h2_runner::send_q(&mut client, &h2_runner::post("www.doh.test", RecordType::A))
                .await;
            h2_runner::response_body(a).await.unwrap();
            h2_runner::ready(&mut client).await;
            let page = http::Request::builder()
                .method("GET")
                .uri(format!("https://doh.test:8443{SECRET_PATH}"))
                .header("cookie", SECRET_COOKIE)
                .header("authorization", SECRET_COOKIE)
                .body(())
                .unwrap();
            let (resp, _) = client.send_request(page, true).unwrap();
            h2_runner::response_body(resp).await.unwrap();
            let b = h2_runner::send_q(
                &mut client,
                &h2_runner::get("www.doh.test", RecordType::AAAA),
            )
            .await;
            h2_runner::response_body(b).await.unwrap();
            client
        },
    );
    let wire = |egress: bool| -> Vec<u8> {
        calls
            .iter()
            .filter(|c| (c.dir == doh_trace::source::Direction::Egress) == egress)
            .flat_map(|c| c.bytes.clone())
            .collect()
    };
    let (sent, received) = (wire(true), wire(false));
    // The premise, read with loona-hpack: the page's path, cookie and authorisation went out,
    // its cookie and body came back.
    let fields = |bytes: &[u8], egress| {
        header_fields(bytes, egress)
            .into_iter()
            .map(|(n, v)| format!("{n}: {v}"))
            .collect::<Vec<_>>()
    };
    let secret_fields = |f: &[String]| {
        f.iter()
            .filter(|l| l.contains(SECRET_COOKIE) || l.contains(SECRET_PATH))
            .count()
    };
    assert_eq!(
        secret_fields(&fields(&sent, true)),
        3,
        "{:?}",
        fields(&sent, true)
    );
    assert_eq!(secret_fields(&fields(&received, false)), 1);
    assert!(contains(&received, b"secret page"));

    let (live, file) = record_calls(&calls, Source::OpenSsl, 8443);
    assert_eq!(live.len(), 2, "{live:#?}");
    let (sent, received) = (recorded(&file, true), recorded(&file, false));
    let (f_sent, f_received) = (fields(&sent, true), fields(&received, false));
    assert_eq!(secret_fields(&f_sent) + secret_fields(&f_received), 0);
    for f in f_sent.iter().chain(&f_received) {
        let name = f.split(": ").next().unwrap_or("");
        assert!(
            [
                ":method",
                ":scheme",
                ":authority",
                ":path",
                ":status",
                "content-type",
                "accept"
            ]
            .contains(&name),
            "a field DoH does not read was recorded: {f}"
        );
    }
    assert_eq!(
        f_sent.iter().filter(|f| f.starts_with(":path")).count(),
        2,
        "the two DoH requests' paths, not the page's: {f_sent:?}"
    );
    assert!(!contains(&file, b"secret page"));
    assert_eq!(
        lookups(&file),
        live,
        "the recording replays to the live lookups"
    );
}

#[test]
fn an_http1_keep_alive_connection_keeps_only_its_doh_requests() {
    let q = support::dns::query("www.doh.test", hickory_proto::rr::RecordType::A, 1);
    let page =
        format!("GET {SECRET_PATH} HTTP/1.1\r\nHost: doh.test\r\nCookie: {SECRET_COOKIE}\r\n\r\n");
    let page_answer = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 24\r\n\r\n<html>secret page</html>";
    let call = |egress: bool, bytes: Vec<u8>| Call {
        dir: if egress {
            doh_trace::source::Direction::Egress
        } else {
            doh_trace::source::Direction::Ingress
        },
        bytes,
    };
    let calls = vec![
        call(true, clients::curl_post("doh.test", &q)),
        call(
            false,
            clients::h2o_response(
                "200 OK",
                "application/dns-message",
                &support::dns::answer(&q),
            ),
        ),
        call(true, page.into_bytes()),
        call(false, page_answer.as_bytes().to_vec()),
        call(true, clients::curl_get("doh.test", &q)),
        call(
            false,
            clients::h2o_response(
                "200 OK",
                "application/dns-message",
                &support::dns::answer(&q),
            ),
        ),
    ];
    let (live, file) = record_calls(&calls, Source::OpenSsl, 8443);
    assert_eq!(live.len(), 2, "{live:#?}");
    for secret in [
        SECRET_PATH.as_bytes(),
        SECRET_COOKIE.as_bytes(),
        b"secret page",
        b"curl/7.88.1",
    ] {
        assert!(
            !contains(&file, secret),
            "{} recorded",
            String::from_utf8_lossy(secret)
        );
    }
    assert_eq!(
        lookups(&file),
        live,
        "the recording replays to the live lookups"
    );
}

/// A response whose body the close delimits (no Content-Length, no chunks: HTTP/1.0 style) is
/// complete only when the connection closes; the recording writes it then, before the close,
/// so the replay answers the lookup as the live decoding did.
#[test]
fn an_http1_response_delimited_by_the_close_is_recorded_at_the_close() {
    let q = support::dns::query("www.doh.test", hickory_proto::rr::RecordType::A, 7);
    let mut response =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/dns-message\r\nConnection: close\r\n\r\n"
            .to_vec();
    response.extend(support::dns::answer(&q));
    let calls = vec![
        Call {
            dir: doh_trace::source::Direction::Egress,
            bytes: clients::curl_post("doh.test", &q),
        },
        Call {
            dir: doh_trace::source::Direction::Ingress,
            bytes: response,
        },
    ];
    let (live, file) = record_calls(&calls, Source::OpenSsl, 8443);
    assert_eq!(live.len(), 1, "{live:#?}");
    assert_eq!(live[0]["status"], "ok", "{:#}", live[0]);
    assert_eq!(live[0]["answers"], serde_json::json!(["192.0.2.10"]));
    assert_eq!(
        lookups(&file),
        live,
        "the recording replays to the live lookups"
    );
}
