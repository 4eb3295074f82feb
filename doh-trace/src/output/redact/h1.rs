//! An HTTP/1.1 connection as a recording keeps it: its DoH requests and their responses.
//!
//! Both directions are decoded with the pipeline's [`Http1Decoder`]; each DoH message is
//! written again from what was decoded (request line or status, Host, Content-Type, Accept,
//! the body with a Content-Length), and every other message, with its response, leaves
//! nothing: keep-alive neighbours' paths, cookies, authorisation headers and bodies never
//! reach the file. An h2c upgrade is written as one (its 101 too), then the connection goes on
//! as HTTP/2 ([`super::h2::H2Redactor::upgraded`]).

use std::collections::VecDeque;

use crate::proto::{
    doh,
    http1::{H1Event, Http1Decoder, MAX_PENDING_REQUESTS},
    http2::HeaderFields,
};

use super::h2::Unkeepable;

/// Longest body of a DoH message kept; a longer one is no DNS message, and not kept.
pub const MAX_BODY: usize = 64 * 1024;

/// A message being read.
struct Message {
    fields: HeaderFields,
    upgrade_h2c: bool,
    keep: bool,
    body: Vec<u8>,
}

impl Message {
    fn new(fields: HeaderFields, upgrade_h2c: bool, keep: bool) -> Self {
        Message {
            fields,
            upgrade_h2c,
            keep,
            body: Vec::new(),
        }
    }

    fn body(&mut self, bytes: &[u8]) {
        if !self.keep {
            return;
        }
        if self.body.len() + bytes.len() > MAX_BODY {
            self.keep = false;
            self.body = Vec::new();
            return;
        }
        self.body.extend_from_slice(bytes);
    }
}

/// The response side granted an h2c upgrade: the rest is HTTP/2.
pub struct Switch {
    /// The upgrading request was DoH (its answer comes on stream 1).
    pub doh: bool,
    /// Bytes of the response direction after the 101.
    pub consumed: usize,
}

/// One HTTP/1.1 client connection's redaction (egress is the client's side).
pub struct H1Redactor {
    requests: Http1Decoder,
    responses: Http1Decoder,
    /// Whether each request whose response has not ended is kept, oldest first.
    waiting: VecDeque<bool>,
    request: Option<Message>,
    response: Option<Message>,
}

impl Default for H1Redactor {
    fn default() -> Self {
        H1Redactor {
            requests: Http1Decoder::requests(),
            responses: Http1Decoder::responses(),
            waiting: VecDeque::new(),
            request: None,
            response: None,
        }
    }
}

impl H1Redactor {
    /// Bytes memory held.
    pub fn buffered(&self) -> usize {
        self.requests.buffered()
            + self.responses.buffered()
            + self.waiting.capacity()
            + [&self.request, &self.response]
                .iter()
                .filter_map(|m| m.as_ref())
                .map(|m| m.body.capacity())
                .sum::<usize>()
    }

    /// The connection closed: a kept response whose body the close delimits (no length, no
    /// chunks) is complete now, and is appended to `out` — delimited by the close again, so
    /// that it ends when the recorded close comes, as it did.
    pub fn close(&mut self, out: &mut Vec<u8>) {
        if !self.responses.reads_until_close() {
            return;
        }
        if let Some(m) = self.response.take() {
            if m.keep {
                write_response(out, &m, true);
            }
            self.waiting.pop_front();
        }
    }

    /// The next bytes of one direction; what the recording keeps is appended to `out`. A
    /// granted h2c upgrade is returned (the response bytes after it are not consumed).
    pub fn feed(
        &mut self,
        egress: bool,
        bytes: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<Switch>, Unkeepable> {
        let H1Redactor {
            requests,
            responses,
            waiting,
            request,
            response,
        } = self;
        let mut over = false;
        if egress {
            requests
                .feed(bytes, &mut |ev| match ev {
                    H1Event::Head {
                        fields,
                        upgrade_h2c,
                    } => {
                        if waiting.len() >= MAX_PENDING_REQUESTS {
                            over = true;
                            return;
                        }
                        responses.expect_response_to(fields.method.as_deref().unwrap_or("GET"));
                        let keep = doh::classify(&fields).is_some();
                        waiting.push_back(keep);
                        *request = Some(Message::new(fields, upgrade_h2c, keep));
                    }
                    H1Event::Body(b) => {
                        if let Some(m) = request.as_mut() {
                            m.body(b);
                            if !m.keep {
                                if let Some(w) = waiting.back_mut() {
                                    *w = false;
                                }
                            }
                        }
                    }
                    H1Event::End => {
                        if let Some(m) = request.take() {
                            if m.keep || m.upgrade_h2c {
                                write_request(out, &m);
                            }
                        }
                    }
                    H1Event::Switched => {}
                })
                .map_err(|_| Unkeepable)?;
            return if over { Err(Unkeepable) } else { Ok(None) };
        }
        let mut switched = false;
        let consumed = responses
            .feed(bytes, &mut |ev| match ev {
                H1Event::Head { fields, .. } => {
                    let keep = waiting.front().copied().unwrap_or(false);
                    *response = Some(Message::new(fields, false, keep));
                }
                H1Event::Body(b) => {
                    if let Some(m) = response.as_mut() {
                        m.body(b);
                    }
                }
                H1Event::End => {
                    if let Some(m) = response.take() {
                        let interim = m.fields.status_code().is_some_and(|s| s < 200);
                        if m.keep {
                            write_response(out, &m, false);
                        }
                        if !interim {
                            waiting.pop_front();
                        }
                    }
                }
                H1Event::Switched => switched = true,
            })
            .map_err(|_| Unkeepable)?;
        if !switched {
            return Ok(None);
        }
        out.extend_from_slice(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
        );
        response.take();
        Ok(Some(Switch {
            doh: waiting.pop_front().unwrap_or(false),
            consumed,
        }))
    }
}

/// A request again, with only what the DoH decoder reads; an h2c upgrade that is not DoH
/// keeps its upgrade and nothing of its path.
fn write_request(out: &mut Vec<u8>, m: &Message) {
    let f = &m.fields;
    let method = f.method.as_deref().unwrap_or("GET");
    let path = match m.keep {
        true => f.path.as_deref().unwrap_or("/"),
        false => "/",
    };
    let target = match (&f.scheme, &f.authority) {
        (Some(scheme), Some(authority)) if m.keep => format!("{scheme}://{authority}{path}"),
        _ => path.to_owned(),
    };
    out.extend_from_slice(format!("{method} {target} HTTP/1.1\r\n").as_bytes());
    if let Some(host) = &f.authority {
        out.extend_from_slice(format!("Host: {host}\r\n").as_bytes());
    }
    fields(out, f);
    if m.upgrade_h2c {
        out.extend_from_slice(
            b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: \r\n",
        );
    }
    body(out, &m.body);
}

/// A DoH response again: its status, content type and body — with a Content-Length, or
/// (`close_delimited`) ended by the connection's close, as it came.
fn write_response(out: &mut Vec<u8>, m: &Message, close_delimited: bool) {
    let status = m.fields.status.as_deref().unwrap_or("200");
    out.extend_from_slice(format!("HTTP/1.1 {status} -\r\n").as_bytes());
    fields(out, &m.fields);
    if close_delimited {
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        out.extend_from_slice(&m.body);
    } else {
        body(out, &m.body);
    }
}

fn fields(out: &mut Vec<u8>, f: &HeaderFields) {
    if let Some(ct) = &f.content_type {
        out.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
    }
    if let Some(accept) = &f.accept {
        out.extend_from_slice(format!("Accept: {accept}\r\n").as_bytes());
    }
}

fn body(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
}
