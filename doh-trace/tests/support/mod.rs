//! Test support: real HTTP/2 traffic from the `h2` crate (an independent implementation),
//! recorded at the client's I/O boundary exactly as TLS-call plaintext would be, and fed to the
//! pipeline as kernel data events.
#![allow(
    dead_code,
    reason = "each test binary uses its own part of the shared support module"
)]

pub mod frames;
pub mod kernel;

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use bytes::Bytes;
use doh_trace::{
    clock::Clock,
    lookup::Lookup,
    pipeline::Pipeline,
    process::NoProcessInfo,
    source::{ConnId, DataChunk, Direction, Event, Layer, Meta},
};
use doh_trace_common::Source;
use hickory_proto::{
    op::{Message, MessageType, OpCode, Query, ResponseCode},
    rr::{rdata, Name, RData, Record, RecordType},
};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

/// One I/O call as the traced process made it.
#[derive(Debug, Clone)]
pub struct Call {
    pub dir: Direction,
    pub bytes: Vec<u8>,
}

/// Wraps the client's stream and records every read and write call.
pub struct Recorder {
    inner: DuplexStream,
    log: Arc<Mutex<Vec<Call>>>,
}

impl Recorder {
    /// Records the calls made on `inner` into `log`.
    pub fn new(inner: DuplexStream, log: Arc<Mutex<Vec<Call>>>) -> Recorder {
        Recorder { inner, log }
    }
}

impl AsyncRead for Recorder {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let got = buf.filled()[before..].to_vec();
        if !got.is_empty() {
            self.log.lock().unwrap().push(Call {
                dir: Direction::Ingress,
                bytes: got,
            });
        }
        r
    }
}

impl AsyncWrite for Recorder {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.log.lock().unwrap().push(Call {
                dir: Direction::Egress,
                bytes: buf[..*n].to_vec(),
            });
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The connection layer a hook family's bytes belong to.
pub fn layer_of(source: Source) -> Layer {
    if source.is_tls() {
        Layer::Tls
    } else {
        Layer::Socket
    }
}

/// A DNS query for `name`/`rtype` with `id`.
pub fn query(name: &str, rtype: RecordType, id: u16) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    m.to_vec().unwrap()
}

/// The answer the test server gives: fixed addresses for A/AAAA, NXDOMAIN for `nx.` names.
pub fn answer(query_bytes: &[u8]) -> Vec<u8> {
    let q = Message::from_vec(query_bytes).unwrap();
    let mut m = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = true;
    let question = q.queries[0].clone();
    let name = question.name().clone();
    if name.to_ascii().starts_with("nx.") {
        m.metadata.response_code = ResponseCode::NXDomain;
    } else {
        match question.query_type() {
            RecordType::A => {
                m.add_answer(Record::from_rdata(
                    name.clone(),
                    300,
                    RData::A(rdata::A::new(192, 0, 2, 10)),
                ));
            }
            RecordType::AAAA => {
                let ip: std::net::Ipv6Addr = "2001:db8::10".parse().unwrap();
                m.add_answer(Record::from_rdata(
                    name.clone(),
                    300,
                    RData::AAAA(rdata::AAAA(ip)),
                ));
            }
            _ => {}
        }
    }
    m.add_query(question);
    m.to_vec().unwrap()
}

/// One request the client makes.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: &'static str,
    pub path: String,
    pub content_type: Option<&'static str>,
    pub body: Vec<u8>,
    /// Send the body as this many DATA frames, the last one empty with END_STREAM.
    pub split_body: bool,
}

impl Req {
    pub fn post(q: Vec<u8>) -> Req {
        Req {
            method: "POST",
            path: "/dns-query".into(),
            content_type: Some("application/dns-message"),
            body: q,
            split_body: false,
        }
    }
    pub fn get(q: &[u8]) -> Req {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(q);
        Req {
            method: "GET",
            path: format!("/dns-query?dns={b64}"),
            content_type: None,
            body: Vec::new(),
            split_body: false,
        }
    }
}

/// Runs a real h2 client and server in memory; the server answers DoH on /dns-query with
/// `status`, and anything else with a 200 text body. Returns the client's recorded calls.
pub fn exchange(reqs: Vec<Req>, status: u16) -> Vec<Call> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (c, s) = tokio::io::duplex(1 << 16);
        let log = Arc::new(Mutex::new(Vec::new()));
        let client_io = Recorder {
            inner: c,
            log: log.clone(),
        };
        let server = tokio::spawn(async move {
            let mut conn = h2::server::handshake(s).await.unwrap();
            while let Some(req) = conn.accept().await {
                let (req, mut respond) = req.unwrap();
                tokio::spawn(async move {
                    let (parts, mut body) = req.into_parts();
                    let mut data = Vec::new();
                    while let Some(chunk) = body.data().await {
                        let chunk = chunk.unwrap();
                        body.flow_control().release_capacity(chunk.len()).unwrap();
                        data.extend_from_slice(&chunk);
                    }
                    let path = parts.uri.path_and_query().unwrap().as_str().to_string();
                    let (ct, out) = if path.starts_with("/dns-query") {
                        let q = if parts.method == http::Method::GET {
                            use base64::Engine as _;
                            let b64 = path.split("dns=").nth(1).unwrap();
                            base64::engine::general_purpose::URL_SAFE_NO_PAD
                                .decode(b64)
                                .unwrap()
                        } else {
                            data
                        };
                        (
                            "application/dns-message",
                            if status == 200 {
                                answer(&q)
                            } else {
                                b"no".to_vec()
                            },
                        )
                    } else {
                        ("text/html", b"<html>secret page</html>".to_vec())
                    };
                    let resp = http::Response::builder()
                        .status(status)
                        .header("content-type", ct)
                        .body(())
                        .unwrap();
                    let mut send = respond.send_response(resp, false).unwrap();
                    send.send_data(Bytes::from(out), true).unwrap();
                });
            }
        });
        let (client, conn) = h2::client::handshake(client_io).await.unwrap();
        let conn_task = tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut client = client.ready().await.unwrap();
        let mut responses = Vec::new();
        for r in reqs {
            let mut b = http::Request::builder()
                .method(r.method)
                .uri(format!("https://doh.test:8443{}", r.path))
                .header("accept", "application/dns-message");
            if let Some(ct) = r.content_type {
                b = b.header("content-type", ct);
            }
            let empty = r.body.is_empty();
            let (resp, mut send) = client.send_request(b.body(()).unwrap(), empty).unwrap();
            if !empty {
                if r.split_body {
                    send.send_data(Bytes::from(r.body.clone()), false).unwrap();
                    send.send_data(Bytes::new(), true).unwrap();
                } else {
                    send.send_data(Bytes::from(r.body.clone()), true).unwrap();
                }
            }
            responses.push(resp);
            client = client.ready().await.unwrap();
        }
        for resp in responses {
            let mut body = resp.await.unwrap().into_body();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.unwrap();
                body.flow_control().release_capacity(chunk.len()).unwrap();
            }
        }
        drop(client);
        conn_task.abort();
        server.abort();
        let calls = log.lock().unwrap().clone();
        calls
    })
}

/// Feeds recorded calls to a pipeline as kernel data events of process `pid` on `fd`,
/// re-sliced into calls of at most `slice` bytes (TLS call boundaries are arbitrary).
pub fn feed(p: &mut Pipeline, calls: &[Call], pid: u32, fd: i32, slice: usize) {
    let mut ts = 1_000_000u64;
    for call in calls {
        for piece in call.bytes.chunks(slice) {
            ts += 1000;
            p.handle_event(Event::Data(DataChunk {
                meta: Meta {
                    pid,
                    tid: pid + 1,
                    uid: 1000,
                    ts_ns: ts,
                },
                id: ConnId::Fd(fd),
                layer: Layer::Tls,
                library: Source::OpenSsl.library(),
                direction: call.dir,
                total_len: piece.len() as u32,
                offset: 0,
                comm: *b"client\0\0\0\0\0\0\0\0\0\0",
                bytes: piece,
            }));
        }
    }
}

/// Feeds each call whole as one kernel data event (pid 1, fd 3), except call `lossy`, which
/// arrives only from its middle on, as when its first chunks were lost in the ring buffer.
pub fn feed_losing_first_half_of(p: &mut Pipeline, calls: &[Call], lossy: usize) {
    for (i, call) in calls.iter().enumerate() {
        let cut = if i == lossy { call.bytes.len() / 2 } else { 0 };
        p.handle_event(Event::Data(DataChunk {
            meta: Meta {
                pid: 1,
                tid: 1,
                uid: 0,
                ts_ns: i as u64,
            },
            id: ConnId::Fd(3),
            layer: Layer::Tls,
            library: Source::OpenSsl.library(),
            direction: call.dir,
            total_len: call.bytes.len() as u32,
            offset: cut as u32,
            comm: [0; 16],
            bytes: &call.bytes[cut..],
        }));
    }
}

/// A pipeline with no /proc behind it.
pub fn pipeline() -> Pipeline {
    Pipeline::new(Box::new(NoProcessInfo), Clock::with_offset(0))
}

/// Sorted (qname, qtype, status, answers) of lookups, for order-independent comparison.
pub fn summary(lookups: &[Lookup]) -> Vec<(String, String, String, Vec<String>)> {
    let mut v: Vec<_> = lookups
        .iter()
        .map(|l| {
            (
                l.qname.as_deref().unwrap_or_default().to_owned(),
                l.qtype.as_deref().unwrap_or_default().to_owned(),
                l.status.as_str().to_string(),
                l.answers.to_vec(),
            )
        })
        .collect();
    v.sort();
    v
}
