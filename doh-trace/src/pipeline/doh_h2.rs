//! DoH over one HTTP/2 client connection: both directions decoded, requests classified,
//! queries paired with answers by stream id (never by DNS id).

use std::collections::HashMap;

use crate::{
    counters::DecodeCounters,
    doh::{self, DohRequest, MAX_DNS_MESSAGE},
    event::Direction,
    http2::{DirectionDecoder, H2Error, H2Event, HeaderFields},
};

/// Most DoH streams tracked at once on one connection.
pub const MAX_STREAMS: usize = 1024;

/// When and by which thread something was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub ts_ns: u64,
    pub tid: u32,
}

/// A DoH exchange in progress or finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DohStream {
    pub stream_id: u32,
    pub request: HeaderFields,
    pub form: DohRequest,
    /// POST body so far (for GET the query is in `form`).
    pub body: Vec<u8>,
    /// When the request started.
    pub started: Seen,
    /// When the request was complete (END_STREAM sent).
    pub sent: Option<Seen>,
    pub response: Option<HeaderFields>,
    pub answer: Vec<u8>,
    /// A body grew past what a DNS message can be; the rest was not kept.
    pub oversized: bool,
}

impl DohStream {
    /// The DNS query bytes.
    pub fn query(&self) -> &[u8] {
        match &self.form {
            DohRequest::Get(q) => q,
            DohRequest::Post => &self.body,
        }
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
}

/// A finished exchange, ready to become a lookup record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub stream: DohStream,
    pub outcome: Outcome,
    pub ended: Seen,
}

/// Both directions of an HTTP/2 connection on which this process is the client.
pub struct H2Client {
    egress: DirectionDecoder,
    ingress: DirectionDecoder,
    streams: HashMap<u32, DohStream>,
}

impl Default for H2Client {
    fn default() -> Self {
        Self::new()
    }
}

fn append_bounded(buf: &mut Vec<u8>, bytes: &[u8], oversized: &mut bool) {
    if buf.len() + bytes.len() > MAX_DNS_MESSAGE {
        *oversized = true;
    } else {
        buf.extend_from_slice(bytes);
    }
}

impl H2Client {
    /// A connection observed from its first byte.
    pub fn new() -> Self {
        H2Client {
            egress: DirectionDecoder::client_to_server(),
            ingress: DirectionDecoder::server_to_client(),
            streams: HashMap::new(),
        }
    }

    /// Decodes the next plaintext bytes in `dir`; finished exchanges are pushed to `done`.
    pub fn feed(
        &mut self,
        dir: Direction,
        bytes: &[u8],
        seen: Seen,
        counters: &mut DecodeCounters,
        done: &mut Vec<Finished>,
    ) -> Result<(), H2Error> {
        let H2Client {
            egress,
            ingress,
            streams,
        } = self;
        let (decoder, other) = match dir {
            Direction::Egress => (egress, ingress),
            Direction::Ingress => (ingress, egress),
        };
        decoder.feed(bytes, &mut |ev| match ev {
            H2Event::Settings {
                header_table_size: Some(size),
            } => other.allow_table_size(size),
            H2Event::Settings {
                header_table_size: None,
            }
            | H2Event::GoAway { .. } => {}
            H2Event::RstStream { stream, .. } => {
                if let Some(s) = streams.remove(&stream) {
                    done.push(Finished {
                        stream: s,
                        outcome: Outcome::Reset,
                        ended: seen,
                    });
                }
            }
            H2Event::Headers {
                stream,
                fields,
                end_stream,
            } => match dir {
                Direction::Egress => {
                    on_request_headers(streams, stream, fields, end_stream, seen, counters)
                }
                Direction::Ingress => {
                    let Some(s) = streams.get_mut(&stream) else {
                        return;
                    };
                    let informational = fields
                        .status_code()
                        .is_some_and(|c| (100..200).contains(&c));
                    if s.response.is_none() && !informational {
                        s.response = Some(fields);
                    }
                    if end_stream {
                        finish(streams, stream, seen, done);
                    }
                }
            },
            H2Event::Data {
                stream,
                bytes,
                end_stream,
            } => {
                let Some(s) = streams.get_mut(&stream) else {
                    return;
                };
                match dir {
                    Direction::Egress => {
                        if s.form == DohRequest::Post {
                            append_bounded(&mut s.body, bytes, &mut s.oversized);
                        }
                        if end_stream {
                            s.sent = Some(seen);
                        }
                    }
                    Direction::Ingress => {
                        append_bounded(&mut s.answer, bytes, &mut s.oversized);
                        if end_stream {
                            finish(streams, stream, seen, done);
                        }
                    }
                }
            }
        })
    }

    /// The connection is gone: every open exchange ends unanswered.
    pub fn close(&mut self, seen: Seen, done: &mut Vec<Finished>) {
        let mut open: Vec<DohStream> = self.streams.drain().map(|(_, s)| s).collect();
        open.sort_by_key(|s| s.stream_id);
        done.extend(open.into_iter().map(|stream| Finished {
            stream,
            outcome: Outcome::Unanswered,
            ended: seen,
        }));
    }
}

fn on_request_headers(
    streams: &mut HashMap<u32, DohStream>,
    stream: u32,
    fields: HeaderFields,
    end_stream: bool,
    seen: Seen,
    counters: &mut DecodeCounters,
) {
    if let Some(s) = streams.get_mut(&stream) {
        // Request trailers.
        if end_stream {
            s.sent = Some(seen);
        }
        return;
    }
    let form = match doh::classify(&fields) {
        None => return,
        Some(Err(_)) => {
            counters.bad_queries += 1;
            return;
        }
        Some(Ok(form)) => form,
    };
    if streams.len() >= MAX_STREAMS {
        counters.streams_over_limit += 1;
        return;
    }
    streams.insert(
        stream,
        DohStream {
            stream_id: stream,
            request: fields,
            form,
            body: Vec::new(),
            started: seen,
            sent: end_stream.then_some(seen),
            response: None,
            answer: Vec::new(),
            oversized: false,
        },
    );
}

fn finish(
    streams: &mut HashMap<u32, DohStream>,
    stream: u32,
    seen: Seen,
    done: &mut Vec<Finished>,
) {
    if let Some(s) = streams.remove(&stream) {
        done.push(Finished {
            stream: s,
            outcome: Outcome::Answered,
            ended: seen,
        });
    }
}
