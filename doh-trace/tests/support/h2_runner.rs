//! The one in-memory HTTP/2 runner: a real `h2` client and server (an independent
//! implementation) talking over an in-memory pipe, recorded at the client's I/O boundary
//! exactly as TLS-call plaintext would be ([`record_h2`]); the scenarios the tests run on it
//! ([`exchange`]: a list of requests to a DoH test server; [`client_sends`] and [`doh_server`]
//! for tests that set up the builders themselves); and request and response heads.

use std::{
    future::{poll_fn, Future},
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use bytes::Bytes;
use doh_trace::source::Direction;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

use super::{
    dns::{answer, answer_for},
    Call,
};

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

// ===== the runner =====

pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Lets the spawned connection tasks run until nothing more happens.
pub async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}

/// Runs an `h2` client and server in memory. `server` gets the server connection right after
/// the handshake; `client` gets the client handle and the client connection's ping handle
/// (the connection itself is driven by a task). Returns the client's calls once `client` is
/// done and the connection has settled. What `client` returns is dropped only after the
/// recording ends (a client that returns its handle ends without the GOAWAY the `h2` client
/// sends once no handle is left).
pub fn record_h2<F: Future>(
    client_builder: h2::client::Builder,
    server_builder: h2::server::Builder,
    server: impl FnOnce(h2::server::Connection<DuplexStream, Bytes>) -> BoxFuture + Send + 'static,
    client: impl FnOnce(h2::client::SendRequest<Bytes>, h2::PingPong) -> F,
) -> Vec<Call> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (c, s) = tokio::io::duplex(1 << 16);
        let log = Arc::new(Mutex::new(Vec::new()));
        let client_io = Recorder::new(c, log.clone());
        let server_task = tokio::spawn(async move {
            let conn = server_builder.handshake(s).await.unwrap();
            server(conn).await;
        });
        let (send, mut conn) = client_builder
            .handshake::<_, Bytes>(client_io)
            .await
            .unwrap();
        let pings = conn.ping_pong().expect("ping handle");
        let conn_task = tokio::spawn(async move {
            let _ = conn.await;
        });
        let kept = client(send, pings).await;
        settle().await;
        conn_task.abort();
        server_task.abort();
        let calls = log.lock().unwrap().clone();
        drop(kept);
        calls
    })
}

// ===== servers and clients =====

/// Serves every request with `handler`, each in its own task, until the connection ends.
pub async fn serve<F, Fut>(mut conn: h2::server::Connection<DuplexStream, Bytes>, handler: F)
where
    F: Fn(http::Request<h2::RecvStream>, h2::server::SendResponse<Bytes>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    while let Some(req) = conn.accept().await {
        let Ok((req, respond)) = req else { break };
        tokio::spawn(handler(req, respond));
    }
}

/// Serves every DoH request like [`serve`], reading it to its end first: `handler` gets the
/// request's DNS query ([`doh_query`]) and the response handle.
pub async fn serve_queries<F, Fut>(conn: h2::server::Connection<DuplexStream, Bytes>, handler: F)
where
    F: Fn(Vec<u8>, h2::server::SendResponse<Bytes>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let handler = Arc::new(handler);
    serve(conn, move |req, respond| {
        let handler = handler.clone();
        async move {
            let (parts, mut body) = req.into_parts();
            let body = read_body(&mut body).await;
            handler(doh_query(&parts, &body), respond).await;
        }
    })
    .await;
}

/// Reads a request or response body to its end, releasing flow-control capacity.
pub async fn read_body(body: &mut h2::RecvStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    out
}

/// The DNS query of a DoH request: the `?dns=` parameter of a GET, else the body.
pub fn doh_query(parts: &http::request::Parts, body: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let pq = parts.uri.path_and_query().unwrap().as_str();
    match pq.split_once("dns=") {
        Some((_, b64)) if parts.method == http::Method::GET => {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(b64)
                .unwrap()
        }
        _ => body.to_vec(),
    }
}

/// A DoH POST request head as a client sends it.
pub fn post_request() -> http::Request<()> {
    http::Request::builder()
        .method("POST")
        .uri("https://doh.test:8443/dns-query")
        .header("accept", "application/dns-message")
        .header("content-type", "application/dns-message")
        .body(())
        .unwrap()
}

/// A DoH GET request head for `query`.
pub fn get_request(query: &[u8]) -> http::Request<()> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(query);
    http::Request::builder()
        .method("GET")
        .uri(format!("https://doh.test:8443/dns-query?dns={b64}"))
        .header("accept", "application/dns-message")
        .body(())
        .unwrap()
}

/// A response head with `status` and the DoH media type.
pub fn dns_response_head(status: u16) -> http::Response<()> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/dns-message")
        .body(())
        .unwrap()
}

/// Awaits a response and reads its body; `None` if the stream was reset.
pub async fn response_body(resp: h2::client::ResponseFuture) -> Option<(u16, Vec<u8>)> {
    let resp = resp.await.ok()?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.ok()?;
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    Some((status, out))
}

/// Reads a DoH request and answers it in one DATA frame with END_STREAM ([`answer_for`]).
pub async fn answer_doh(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
) {
    let (parts, mut body) = req.into_parts();
    let body = read_body(&mut body).await;
    let q = doh_query(&parts, &body);
    let mut send = respond
        .send_response(dns_response_head(200), false)
        .unwrap();
    send.send_data(Bytes::from(answer_for(&q)), true).unwrap();
}

/// A server answering every DoH request with [`answer_doh`].
pub fn doh_server(conn: h2::server::Connection<DuplexStream, Bytes>) -> BoxFuture {
    Box::pin(serve(conn, answer_doh))
}

/// One request of a client script.
#[derive(Clone)]
pub enum Q {
    Post(Vec<u8>),
    Get(Vec<u8>),
}

/// A POST of the query for `name`/`t` (DNS id 0).
pub fn post(name: &str, t: hickory_proto::rr::RecordType) -> Q {
    Q::Post(super::dns::query(name, t, 0))
}

/// A GET of the query for `name`/`t` (DNS id 0).
pub fn get(name: &str, t: hickory_proto::rr::RecordType) -> Q {
    Q::Get(super::dns::query(name, t, 0))
}

/// Waits until the client may open a stream.
pub async fn ready(client: &mut h2::client::SendRequest<Bytes>) {
    poll_fn(|cx| client.poll_ready(cx)).await.unwrap();
}

/// Sends `q` (a POST body in one DATA frame with END_STREAM; a GET with END_STREAM on HEADERS).
pub async fn send_q(
    client: &mut h2::client::SendRequest<Bytes>,
    q: &Q,
) -> h2::client::ResponseFuture {
    send_q_with(client, q, &[]).await
}

/// [`send_q`] with extra request headers.
pub async fn send_q_with(
    client: &mut h2::client::SendRequest<Bytes>,
    q: &Q,
    headers: &[(&'static str, String)],
) -> h2::client::ResponseFuture {
    ready(client).await;
    let (mut req, body) = match q {
        Q::Post(body) => (post_request(), Some(body.clone())),
        Q::Get(query) => (get_request(query), None),
    };
    for (name, value) in headers {
        req.headers_mut().insert(*name, value.parse().unwrap());
    }
    let (resp, mut send) = client.send_request(req, body.is_none()).unwrap();
    if let Some(body) = body {
        send.send_data(Bytes::from(body), true).unwrap();
    }
    resp
}

/// A client that sends every request, then reads every response.
pub fn client_sends(
    reqs: Vec<Q>,
) -> impl FnOnce(h2::client::SendRequest<Bytes>, h2::PingPong) -> BoxFuture {
    move |mut client, _pings| {
        Box::pin(async move {
            let mut resps = Vec::new();
            for q in &reqs {
                resps.push(send_q(&mut client, q).await);
            }
            for r in resps {
                response_body(r).await.expect("answered");
            }
        })
    }
}

// ===== the plain exchange =====

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

/// [`record_h2`] with default builders: the server answers DoH on /dns-query with `status`
/// ([`answer`] if 200, else a 2-octet body), and anything else with a text body; the client
/// sends `reqs` one after the other, then reads every response. Returns the client's calls.
pub fn exchange(reqs: Vec<Req>, status: u16) -> Vec<Call> {
    record_h2(
        h2::client::Builder::new(),
        h2::server::Builder::new(),
        move |conn| {
            Box::pin(serve(conn, move |req, respond| {
                answer_with_status(req, respond, status)
            }))
        },
        move |client, _pings| send_all(client, reqs),
    )
}

/// The server of [`exchange`].
async fn answer_with_status(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    status: u16,
) {
    let (parts, mut body) = req.into_parts();
    let data = read_body(&mut body).await;
    let path = parts.uri.path_and_query().unwrap().as_str().to_string();
    let (ct, out) = if path.starts_with("/dns-query") {
        let q = doh_query(&parts, &data);
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
}

/// The client of [`exchange`]; returns its handle, so that the recording ends with the
/// connection still open.
async fn send_all(
    client: h2::client::SendRequest<Bytes>,
    reqs: Vec<Req>,
) -> h2::client::SendRequest<Bytes> {
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
        read_body(&mut resp.await.unwrap().into_body()).await;
    }
    client
}
