//! DoH over one HTTP/2 client connection: both directions decoded, requests classified,
//! queries paired with answers by stream id (never by DNS id).
//!
//! A connection joined mid-stream has no usable request headers: every stream is tracked with
//! an unknown form, and the pipeline decides from the bodies (DNS messages or not) whether it
//! was a lookup.

use crate::{
    counters::DecodeCounters,
    proto::{
        doh::{
            self,
            exchange::append_bounded,
            exchange::{new_stream, DohStream, Finished, Outcome, ResponseHead},
            DohRequest,
        },
        http2::{DirectionDecoder, H2Error, H2Event, HeaderFields},
        Bytes, ClientDecoder, Exchanges, Fed, FirstRequest, Seen, LATE_WRITE_NS,
    },
    source::Direction,
};

/// Most DoH streams tracked at once on one connection.
pub const MAX_STREAMS: usize = 1024;

/// Open exchanges by stream id, and the heap bytes they hold (kept up to date by every change,
/// so the memory budget reads it in constant time).
#[derive(Default)]
struct Streams {
    /// Boxed so the map's spare capacity costs a pointer each. Hashed with foldhash (randomly
    /// seeded per process): SipHash was ~3 % of replay time, and the peer-chosen ids are
    /// bounded by [`MAX_STREAMS`] per connection anyway.
    map: foldhash::HashMap<u32, Box<DohStream>>,
    /// What the exchanges in `map` hold: their size and [`DohStream::held_bytes`].
    held: usize,
}

/// What one exchange in [`Streams`] costs.
fn stream_bytes(s: &DohStream) -> usize {
    std::mem::size_of::<DohStream>() + s.held_bytes()
}

impl Streams {
    fn len(&self) -> usize {
        self.map.len()
    }

    fn contains_key(&self, id: &u32) -> bool {
        self.map.contains_key(id)
    }

    fn insert(&mut self, id: u32, s: Box<DohStream>) {
        self.held += stream_bytes(&s);
        if let Some(old) = self.map.insert(id, s) {
            self.held -= stream_bytes(&old);
        }
    }

    fn remove(&mut self, id: &u32) -> Option<Box<DohStream>> {
        let s = self.map.remove(id)?;
        self.held -= stream_bytes(&s);
        Some(s)
    }

    /// Changes the exchange of stream `id`, if open; `None` if not.
    fn update<R>(&mut self, id: u32, change: impl FnOnce(&mut DohStream) -> R) -> Option<R> {
        let s = self.map.get_mut(&id)?;
        let before = stream_bytes(s);
        let r = change(s);
        self.held = self.held - before + stream_bytes(s);
        Some(r)
    }

    fn values(&self) -> impl Iterator<Item = &DohStream> {
        self.map.values().map(|s| &**s)
    }

    /// Takes every exchange out.
    #[allow(
        clippy::vec_box,
        reason = "they leave in the boxes `Finished` holds, unmoved"
    )]
    fn take_all(&mut self) -> Vec<Box<DohStream>> {
        self.held = 0;
        self.map.drain().map(|(_, s)| s).collect()
    }

    /// Heap bytes held: the exchanges and the map's slots.
    fn held_bytes(&self) -> usize {
        self.held + self.map.capacity() * (std::mem::size_of::<(u32, Box<DohStream>)>() + 1)
    }
}

/// Both directions of an HTTP/2 connection on which this process is the client.
pub struct H2Client {
    egress: DirectionDecoder,
    ingress: DirectionDecoder,
    streams: Streams,
    first: FirstRequest,
}

impl Default for H2Client {
    fn default() -> Self {
        Self::new()
    }
}

impl H2Client {
    /// A connection observed from its first byte.
    pub fn new() -> Self {
        Self::with(
            DirectionDecoder::client_to_server(),
            DirectionDecoder::server_to_client(),
        )
    }

    /// A connection joined mid-stream (its preface and HPACK history were not seen).
    pub fn mid_stream() -> Self {
        Self::with(
            DirectionDecoder::mid_stream(),
            DirectionDecoder::mid_stream(),
        )
    }

    /// An `h2c` connection upgraded from HTTP/1.1: stream 1 carries the response to the
    /// upgrade request (`None` when that request was not DoH).
    pub fn upgraded(request: Option<DohStream>) -> Self {
        let mut c = Self::new();
        c.first = if request.is_some() {
            FirstRequest::Dns
        } else {
            FirstRequest::NotDns
        };
        if let Some(r) = request {
            c.streams.insert(
                1,
                Box::new(DohStream {
                    stream_id: 1,
                    http_version: "h2",
                    ..r
                }),
            );
        }
        c
    }

    fn with(egress: DirectionDecoder, ingress: DirectionDecoder) -> Self {
        H2Client {
            egress,
            ingress,
            streams: Streams::default(),
            first: FirstRequest::Pending,
        }
    }

    /// Bytes of `dir` were lost: that direction resynchronises at the next frame boundary and
    /// its header blocks are unknown from then on. Open exchanges stay open.
    pub fn resync(&mut self, dir: Direction) {
        match dir {
            Direction::Egress => self.egress = DirectionDecoder::mid_stream(),
            Direction::Ingress => self.ingress = DirectionDecoder::mid_stream(),
        }
    }

    /// Decodes the next bytes in `dir`; `call_start` says they begin an I/O call (where a
    /// mid-stream decoder may find a frame boundary). Finished exchanges go to `done`.
    pub fn decode(
        &mut self,
        dir: Direction,
        bytes: &[u8],
        call_start: bool,
        seen: Seen,
        counters: &mut DecodeCounters,
        done: &mut Vec<Finished>,
    ) -> Result<(), H2Error> {
        let H2Client {
            egress,
            ingress,
            streams,
            first,
        } = self;
        let (decoder, other) = match dir {
            Direction::Egress => (egress, ingress),
            Direction::Ingress => (ingress, egress),
        };
        if call_start {
            decoder.try_sync(bytes);
        }
        decoder.feed(bytes, &mut |ev| match ev {
            H2Event::Settings {
                header_table_size,
                max_frame_size,
            } => {
                other.follow_peer_settings(header_table_size, max_frame_size);
            }
            H2Event::GoAway { .. } => {}
            H2Event::RstStream { stream, .. } => {
                if let Some(s) = streams.remove(&stream) {
                    // Reset after its whole answer came (see `DohStream::answered`): answered.
                    let (outcome, ended) = match s.answered {
                        Some(at) => (Outcome::Answered, at),
                        None => (Outcome::Reset, seen),
                    };
                    done.push(Finished {
                        stream: s,
                        outcome,
                        ended,
                    });
                }
            }
            H2Event::Headers {
                stream,
                fields,
                end_stream,
            } => match dir {
                Direction::Egress => on_request_headers(
                    streams, first, stream, fields, end_stream, seen, counters, done,
                ),
                Direction::Ingress => {
                    on_response_headers(streams, stream, Some(fields), end_stream, seen, done)
                }
            },
            H2Event::HeadersUnknown { stream, end_stream } => match dir {
                Direction::Egress => {
                    if !streams.contains_key(&stream) && streams.len() < MAX_STREAMS {
                        streams.insert(
                            stream,
                            Box::new(new_stream(
                                stream,
                                HeaderFields::default(),
                                None,
                                end_stream,
                                seen,
                            )),
                        );
                    } else if end_stream {
                        request_ended(streams, stream, seen, done);
                    }
                }
                Direction::Ingress => {
                    on_response_headers(streams, stream, None, end_stream, seen, done)
                }
            },
            H2Event::Data {
                stream,
                bytes,
                end_stream,
            } => {
                let kept = streams.update(stream, |s| match dir {
                    // A GET carries its query in the path; only other bodies are kept.
                    Direction::Egress => {
                        if matches!(s.form, Some(DohRequest::Post) | None) {
                            append_bounded(&mut s.body, bytes, &mut s.oversized);
                        }
                    }
                    Direction::Ingress => append_bounded(&mut s.answer, bytes, &mut s.oversized),
                });
                if kept.is_none() || !end_stream {
                    return;
                }
                match dir {
                    Direction::Egress => request_ended(streams, stream, seen, done),
                    Direction::Ingress => answered(streams, stream, seen, done),
                }
            }
        })
    }

    /// Ends exchanges that started more than `timeout_ns` before `now_ns`, and answered ones
    /// whose request's end did not come within [`LATE_WRITE_NS`].
    pub fn expire(&mut self, now_ns: u64, timeout_ns: u64, done: &mut Vec<Finished>) {
        let mut old: Vec<(u32, Outcome, Seen)> = self
            .streams
            .values()
            .filter_map(|s| match s.answered {
                Some(at) if now_ns.saturating_sub(at.ts_ns) > LATE_WRITE_NS => {
                    Some((s.stream_id, Outcome::Answered, at))
                }
                Some(_) => None,
                None => (now_ns.saturating_sub(s.started.ts_ns) > timeout_ns).then_some((
                    s.stream_id,
                    Outcome::TimedOut,
                    Seen {
                        ts_ns: now_ns,
                        tid: 0,
                    },
                )),
            })
            .collect();
        old.sort_by_key(|(id, _, _)| *id);
        for (id, outcome, ended) in old {
            finish(&mut self.streams, id, outcome, ended, done);
        }
    }

    /// The connection is gone: every open exchange ends unanswered (or answered, if only its
    /// request's end was missing).
    pub fn close(&mut self, seen: Seen, done: &mut Vec<Finished>) {
        let mut open = self.streams.take_all();
        open.sort_by_key(|s| s.stream_id);
        done.extend(open.into_iter().map(|stream| {
            let (outcome, ended) = match stream.answered {
                Some(at) => (Outcome::Answered, at),
                None => (Outcome::Unanswered, seen),
            };
            Finished {
                stream,
                outcome,
                ended,
            }
        }));
    }
}

impl ClientDecoder for H2Client {
    fn feed(
        &mut self,
        b: &Bytes<'_>,
        seen: Seen,
        counters: &mut DecodeCounters,
        out: &mut Exchanges,
    ) -> Fed {
        match self.decode(b.dir, b.bytes, b.call_start, seen, counters, &mut out.doh) {
            Ok(()) => Fed::Going,
            Err(e) => {
                match e {
                    H2Error::Hpack(_) => counters.hpack_errors += 1,
                    _ => counters.h2_errors += 1,
                }
                Fed::Failed
            }
        }
    }

    fn first_request(&self) -> FirstRequest {
        self.first
    }

    fn expire(&mut self, now_ns: u64, timeout_ns: u64, out: &mut Exchanges) {
        H2Client::expire(self, now_ns, timeout_ns, &mut out.doh);
    }

    fn close(&mut self, seen: Seen, out: &mut Exchanges) {
        H2Client::close(self, seen, &mut out.doh);
    }

    fn lost_bytes(&mut self, dir: Direction) -> bool {
        self.resync(dir);
        true
    }

    fn held_bytes(&self) -> usize {
        self.egress.held_bytes() + self.ingress.held_bytes() + self.streams.held_bytes()
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "the decoder's fields, borrowed apart, and the event's"
)]
fn on_request_headers(
    streams: &mut Streams,
    first: &mut FirstRequest,
    stream: u32,
    fields: HeaderFields,
    end_stream: bool,
    seen: Seen,
    counters: &mut DecodeCounters,
    done: &mut Vec<Finished>,
) {
    if streams.contains_key(&stream) {
        // Request trailers.
        if end_stream {
            request_ended(streams, stream, seen, done);
        }
        return;
    }
    let form = match doh::classify(&fields) {
        None => {
            if *first == FirstRequest::Pending {
                *first = FirstRequest::NotDns;
            }
            return;
        }
        Some(Err(_)) => {
            counters.bad_queries += 1;
            return;
        }
        Some(Ok(form)) => form,
    };
    if *first == FirstRequest::Pending {
        *first = FirstRequest::Dns;
    }
    if streams.len() >= MAX_STREAMS {
        counters.streams_over_limit += 1;
        return;
    }
    streams.insert(
        stream,
        Box::new(new_stream(stream, fields, Some(form), end_stream, seen)),
    );
}

fn on_response_headers(
    streams: &mut Streams,
    stream: u32,
    fields: Option<HeaderFields>,
    end_stream: bool,
    seen: Seen,
    done: &mut Vec<Finished>,
) {
    let open = streams.update(stream, |s| {
        if let Some(fields) = fields {
            let head = ResponseHead::of(&fields);
            let informational = head.status.is_some_and(|c| (100..200).contains(&c));
            if s.response.is_none() && !informational {
                s.response = Some(head);
            }
        }
    });
    if open.is_some() && end_stream {
        answered(streams, stream, seen, done);
    }
}

/// The response of `stream` ended: the exchange is finished, unless the request's end has not
/// been seen yet (see `DohStream::answered`).
fn answered(streams: &mut Streams, stream: u32, seen: Seen, done: &mut Vec<Finished>) {
    let waits = streams.update(stream, |s| {
        let waits = s.sent.is_none();
        if waits {
            s.answered = Some(seen);
        }
        waits
    });
    if waits == Some(false) {
        finish(streams, stream, Outcome::Answered, seen, done);
    }
}

/// The request of `stream` ended (END_STREAM sent): if its response had ended already, the
/// exchange is finished, answered then.
fn request_ended(streams: &mut Streams, stream: u32, seen: Seen, done: &mut Vec<Finished>) {
    let answered = streams.update(stream, |s| {
        s.sent = Some(seen);
        s.answered
    });
    if let Some(Some(at)) = answered {
        finish(streams, stream, Outcome::Answered, at, done);
    }
}

fn finish(
    streams: &mut Streams,
    stream: u32,
    outcome: Outcome,
    seen: Seen,
    done: &mut Vec<Finished>,
) {
    if let Some(s) = streams.remove(&stream) {
        done.push(Finished {
            stream: s,
            outcome,
            ended: seen,
        });
    }
}
