//! A DoH exchange, whichever HTTP version carried it: the request (headers, form, body), the
//! response (status, body), how it ended; and what a connection's first request said about it.

use crate::proto::{
    doh::json::DNS_JSON,
    doh::{DohRequest, MAX_DNS_MESSAGE},
    http2::HeaderFields,
    Seen,
};

/// A DoH exchange in progress or finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DohStream {
    pub stream_id: u32,
    /// `"h2"` or `"http/1.1"`.
    pub http_version: &'static str,
    /// Request headers; all `None` when they could not be decoded (joined mid-stream).
    pub request: HeaderFields,
    /// How the request carries its query; `None` when the headers are unknown.
    pub form: Option<DohRequest>,
    /// Request body so far (the query of a POST).
    pub body: Vec<u8>,
    /// When the request started.
    pub started: Seen,
    /// When the request was complete (END_STREAM sent).
    pub sent: Option<Seen>,
    /// When the response ended, if that came before the request was seen complete. The hooks
    /// report a write when it returns, and the writer's thread can return after another
    /// thread has read the whole response: the exchange then waits for the rest of its
    /// request, and ends answered at this time.
    pub answered: Option<Seen>,
    /// What is kept of the final response's header, once it came.
    pub response: Option<ResponseHead>,
    pub answer: Vec<u8>,
    /// A body grew past what a DNS message can be; the rest was not kept.
    pub oversized: bool,
}

/// What a DoH exchange keeps of its response's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    /// The `:status` (or HTTP/1.1 status code), when numeric.
    pub status: Option<u16>,
    /// The body is the JSON API's (`application/dns-json`), not a DNS message.
    pub json: bool,
}

impl ResponseHead {
    /// What is kept of a response with these header fields.
    pub fn of(fields: &HeaderFields) -> Self {
        ResponseHead {
            status: fields.status_code(),
            json: fields
                .content_type
                .as_deref()
                .is_some_and(|ct| ct.starts_with(DNS_JSON)),
        }
    }
}

impl DohStream {
    /// The DNS query bytes, when the request carried them.
    pub fn query(&self) -> &[u8] {
        match &self.form {
            Some(DohRequest::Get(q)) => q,
            Some(DohRequest::Json(_)) => &[],
            Some(DohRequest::Post) | None => &self.body,
        }
    }

    /// Takes the DNS query bytes out (see [`DohStream::query`]).
    pub fn take_query(&mut self) -> Vec<u8> {
        match &mut self.form {
            Some(DohRequest::Get(q)) => std::mem::take(q),
            Some(DohRequest::Json(_)) => Vec::new(),
            Some(DohRequest::Post) | None => std::mem::take(&mut self.body),
        }
    }

    /// Heap bytes the exchange holds beyond its own size: header values, query and bodies.
    pub fn held_bytes(&self) -> usize {
        let form = match &self.form {
            Some(DohRequest::Get(q)) => q.capacity(),
            Some(DohRequest::Json(j)) => j.qname.capacity(),
            Some(DohRequest::Post) | None => 0,
        };
        self.request.held_bytes() + form + self.body.capacity() + self.answer.capacity()
    }

    /// Whether the request headers were decoded.
    pub fn headers_known(&self) -> bool {
        self.form.is_some()
    }
}

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The response stream ended.
    Answered,
    /// RST_STREAM in either direction.
    Reset,
    /// The connection ended first.
    Unanswered,
    /// No answer within the stream timeout.
    TimedOut,
}

/// A finished exchange, ready to become a lookup record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub stream: Box<DohStream>,
    pub outcome: Outcome,
    pub ended: Seen,
}

/// Appends body bytes up to the largest DNS message; beyond it marks the body oversized.
pub fn append_bounded(buf: &mut Vec<u8>, bytes: &[u8], oversized: &mut bool) {
    if buf.len() + bytes.len() > MAX_DNS_MESSAGE {
        *oversized = true;
    } else if buf.capacity() == 0 {
        // The usual case, a message in one DATA frame: allocated to size, without the
        // growth path.
        *buf = bytes.to_vec();
    } else {
        buf.extend_from_slice(bytes);
    }
}

/// A new HTTP/2 exchange on stream `id`.
pub fn new_stream(
    id: u32,
    request: HeaderFields,
    form: Option<DohRequest>,
    end_stream: bool,
    seen: Seen,
) -> DohStream {
    DohStream {
        http_version: "h2",
        stream_id: id,
        request,
        form,
        body: Vec::new(),
        started: seen,
        sent: end_stream.then_some(seen),
        answered: None,
        response: None,
        answer: Vec::new(),
        oversized: false,
    }
}
