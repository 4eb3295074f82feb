//! DoH over one HTTP/1.1 client connection: requests and responses paired in order (keep-alive
//! and pipelining), and the switch to HTTP/2 when the server grants `Upgrade: h2c`.

use std::collections::VecDeque;

use crate::{
    counters::DecodeCounters,
    proto::{
        doh::{
            self,
            client_h2::H2Client,
            exchange::{append_bounded, new_stream, DohStream, Finished, Outcome, ResponseHead},
            DohRequest,
        },
        http1::{H1Error, H1Event, Http1Decoder},
        http2::HeaderFields,
        Bytes, ClientDecoder, Exchanges, Fed, FirstRequest, Seen, LATE_WRITE_NS,
    },
    source::Direction,
};

/// Most requests awaiting responses that are tracked.
pub const MAX_QUEUED: usize = 1024;

/// A request: the DoH exchange it starts, or `None` when it is not DoH (kept to pair in order).
type Exchange = Option<DohStream>;

/// Requests awaiting responses, in order. At most [`MAX_QUEUED`] are kept; beyond that only
/// their number is, so later responses still pair with the right requests.
#[derive(Default)]
struct RequestQueue {
    slots: VecDeque<Slot>,
    kept: usize,
    /// Heap bytes the kept exchanges hold ([`DohStream::held_bytes`]), kept up to date by
    /// every change so the memory budget reads it in constant time.
    held: usize,
}

// Kept slots are the common case and are bounded by MAX_QUEUED; runs of skipped requests are
// merged into one slot, so boxing the large variant would only add an allocation per request.
#[allow(
    clippy::large_enum_variant,
    reason = "kept slots are the common case, bounded by MAX_QUEUED"
)]
enum Slot {
    Kept(Exchange),
    /// This many requests over the limit, in a row.
    Skipped(u64),
}

impl RequestQueue {
    fn push(&mut self, ex: Exchange, counters: &mut DecodeCounters) {
        if self.kept < MAX_QUEUED {
            self.kept += 1;
            self.held += ex.as_ref().map_or(0, DohStream::held_bytes);
            self.slots.push_back(Slot::Kept(ex));
            return;
        }
        if ex.is_some() {
            counters.streams_over_limit += 1;
        }
        match self.slots.back_mut() {
            Some(Slot::Skipped(n)) => *n += 1,
            _ => self.slots.push_back(Slot::Skipped(1)),
        }
    }

    /// Changes the DoH exchange the next response answers, if it is one that is kept.
    fn update_front(&mut self, change: impl FnOnce(&mut DohStream)) {
        if let Some(Slot::Kept(Some(s))) = self.slots.front_mut() {
            let before = s.held_bytes();
            change(s);
            self.held = self.held - before + s.held_bytes();
        }
    }

    /// Takes the request the next response answers (`None`: not DoH, or not kept).
    fn pop_front(&mut self) -> Exchange {
        match self.slots.front_mut()? {
            Slot::Skipped(n) if *n > 1 => {
                *n -= 1;
                None
            }
            Slot::Skipped(_) => {
                self.slots.pop_front();
                None
            }
            Slot::Kept(_) => {
                self.kept -= 1;
                let ex = match self.slots.pop_front() {
                    Some(Slot::Kept(ex)) => ex,
                    _ => None,
                };
                self.held -= ex.as_ref().map_or(0, DohStream::held_bytes);
                ex
            }
        }
    }

    /// Takes out the kept DoH exchanges that satisfy `pick`, oldest first; their places stay
    /// in the queue, so later responses still pair with the right requests.
    fn take_where(&mut self, pick: impl Fn(&DohStream) -> bool) -> Vec<DohStream> {
        let mut taken = Vec::new();
        for slot in &mut self.slots {
            if let Slot::Kept(ex) = slot {
                if ex.as_ref().is_some_and(&pick) {
                    let s = ex.take().expect("checked");
                    self.held -= s.held_bytes();
                    taken.push(s);
                }
            }
        }
        taken
    }

    /// Heap bytes held: the exchanges and the queue's slots.
    fn held_bytes(&self) -> usize {
        self.held + self.slots.capacity() * std::mem::size_of::<Slot>()
    }
}

/// Both directions of an HTTP/1.1 connection on which this process is the client.
pub struct H1Client {
    requests: Http1Decoder,
    responses: Http1Decoder,
    /// The request being read.
    building: Option<Exchange>,
    /// The response to the request being read has ended already (its last write was reported
    /// after the response was read, see `DohStream::answered`): when the request ends, it is
    /// finished, not queued.
    building_answered: bool,
    /// Requests sent, oldest first, awaiting responses.
    queue: RequestQueue,
    /// The response being read is an interim (1xx) one.
    interim: bool,
    first: FirstRequest,
}

impl Default for H1Client {
    fn default() -> Self {
        Self::new()
    }
}

impl H1Client {
    /// A connection observed from its first byte.
    pub fn new() -> Self {
        H1Client {
            requests: Http1Decoder::requests(),
            responses: Http1Decoder::responses(),
            building: None,
            building_answered: false,
            queue: RequestQueue::default(),
            interim: false,
            first: FirstRequest::Pending,
        }
    }

    /// Decodes bytes of `dir`. Returns the HTTP/2 connection this one became, if the server
    /// granted an h2c upgrade (the bytes after the 101 have already been fed to it).
    pub fn decode(
        &mut self,
        dir: Direction,
        bytes: &[u8],
        seen: Seen,
        counters: &mut DecodeCounters,
        done: &mut Vec<Finished>,
    ) -> Result<Option<Box<H2Client>>, H1Error> {
        let H1Client {
            requests,
            responses,
            building,
            building_answered,
            queue,
            interim,
            first,
        } = self;
        match dir {
            Direction::Egress => {
                requests.feed(bytes, &mut |ev| match ev {
                    H1Event::Head { fields, .. } => {
                        let method = fields.method.clone().unwrap_or_default();
                        responses.expect_response_to(&method);
                        *building = Some(exchange(fields, seen, first, counters));
                    }
                    H1Event::Body(b) => {
                        if let Some(Some(s)) = building {
                            if s.form == Some(DohRequest::Post) {
                                append_bounded(&mut s.body, b, &mut s.oversized);
                            }
                        }
                    }
                    H1Event::End => {
                        if let Some(mut ex) = building.take() {
                            if let Some(s) = ex.as_mut() {
                                s.sent = Some(seen);
                            }
                            if std::mem::take(building_answered) {
                                if let Some(s) = ex.filter(|s| s.answered.is_some()) {
                                    let ended = s.answered.unwrap_or(seen);
                                    done.push(Finished {
                                        stream: Box::new(s),
                                        outcome: Outcome::Answered,
                                        ended,
                                    });
                                }
                            } else {
                                queue.push(ex, counters);
                            }
                        }
                    }
                    H1Event::Switched => {}
                })?;
                Ok(None)
            }
            Direction::Ingress => {
                let mut switched = false;
                let used = responses.feed(bytes, &mut |ev| match ev {
                    H1Event::Head { fields, .. } => {
                        let head = ResponseHead::of(&fields);
                        let code = head.status.unwrap_or(0);
                        *interim = (100..200).contains(&code) && code != 101;
                        // A 101's real answer comes on HTTP/2 stream 1.
                        if !*interim && code != 101 {
                            answering(queue, building, |s| s.response = Some(head));
                        }
                    }
                    H1Event::Body(b) => answering(queue, building, |s| {
                        append_bounded(&mut s.answer, b, &mut s.oversized)
                    }),
                    H1Event::End => {
                        if std::mem::take(interim) {
                            return;
                        }
                        if queue.slots.is_empty() && building.is_some() {
                            // The answer to the request still being written.
                            *building_answered = true;
                            if let Some(Some(s)) = building {
                                s.answered = Some(seen);
                            }
                        } else if let Some(s) = queue.pop_front() {
                            done.push(Finished {
                                stream: Box::new(s),
                                outcome: Outcome::Answered,
                                ended: seen,
                            });
                        }
                    }
                    H1Event::Switched => switched = true,
                })?;
                if !switched {
                    return Ok(None);
                }
                // 101 to h2c: the upgrade request's response comes on HTTP/2 stream 1.
                let upgrade = queue.pop_front();
                let mut h2 = Box::new(H2Client::upgraded(upgrade));
                h2.decode(
                    Direction::Ingress,
                    &bytes[used..],
                    true,
                    seen,
                    counters,
                    done,
                )
                .map_err(|_| H1Error::Failed)?;
                Ok(Some(h2))
            }
        }
    }

    /// Ends exchanges that started more than `timeout_ns` before `now_ns`. Their place in the
    /// queue is kept, so a late response still pairs with the right request. An answered
    /// request whose end did not come within [`LATE_WRITE_NS`] is judged without it.
    pub fn expire(&mut self, now_ns: u64, timeout_ns: u64, done: &mut Vec<Finished>) {
        if let Some(slot) = self.building.as_mut() {
            if slot
                .as_ref()
                .and_then(|s| s.answered)
                .is_some_and(|at| now_ns.saturating_sub(at.ts_ns) > LATE_WRITE_NS)
            {
                let stream = slot.take().expect("checked");
                let ended = stream.answered.expect("checked");
                done.push(Finished {
                    stream: Box::new(stream),
                    outcome: Outcome::Answered,
                    ended,
                });
            }
        }
        let old = self
            .queue
            .take_where(|s| now_ns.saturating_sub(s.started.ts_ns) > timeout_ns);
        done.extend(old.into_iter().map(|stream| Finished {
            stream: Box::new(stream),
            outcome: Outcome::TimedOut,
            ended: Seen {
                ts_ns: now_ns,
                tid: 0,
            },
        }));
    }

    /// The connection is gone: a response delimited by the close is complete; other
    /// requests, and one still being sent, end unanswered.
    pub fn close(&mut self, seen: Seen, done: &mut Vec<Finished>) {
        if self.responses.reads_until_close() {
            if let Some(s) = self.queue.pop_front() {
                done.push(Finished {
                    stream: Box::new(s),
                    outcome: Outcome::Answered,
                    ended: seen,
                });
            }
        }
        let open = self.queue.take_where(|_| true);
        let building = self.building.take().flatten();
        for s in open.into_iter().chain(building) {
            let (outcome, ended) = match s.answered {
                Some(at) => (Outcome::Answered, at),
                None => (Outcome::Unanswered, seen),
            };
            done.push(Finished {
                stream: Box::new(s),
                outcome,
                ended,
            });
        }
    }
}

impl ClientDecoder for H1Client {
    fn feed(
        &mut self,
        b: &Bytes<'_>,
        seen: Seen,
        counters: &mut DecodeCounters,
        out: &mut Exchanges,
    ) -> Fed {
        match self.decode(b.dir, b.bytes, seen, counters, &mut out.doh) {
            Ok(Some(h2)) => {
                counters.h2c_upgrades += 1;
                Fed::Switched(h2)
            }
            Ok(None) => Fed::Going,
            Err(_) => {
                counters.h1_errors += 1;
                Fed::Failed
            }
        }
    }

    fn first_request(&self) -> FirstRequest {
        self.first
    }

    fn expire(&mut self, now_ns: u64, timeout_ns: u64, out: &mut Exchanges) {
        H1Client::expire(self, now_ns, timeout_ns, &mut out.doh);
    }

    fn close(&mut self, seen: Seen, out: &mut Exchanges) {
        H1Client::close(self, seen, &mut out.doh);
    }

    fn held_bytes(&self) -> usize {
        let building = match &self.building {
            Some(Some(s)) => s.held_bytes(),
            Some(None) | None => 0,
        };
        self.requests.held_bytes()
            + self.responses.held_bytes()
            + building
            + self.queue.held_bytes()
    }
}

/// Changes the exchange the next response answers: the oldest queued request, or, with none
/// queued, the one still being written (its answer can be read before its last write is
/// reported).
fn answering(
    queue: &mut RequestQueue,
    building: &mut Option<Exchange>,
    change: impl FnOnce(&mut DohStream),
) {
    if queue.slots.is_empty() {
        if let Some(Some(s)) = building {
            change(s);
        }
    } else {
        queue.update_front(change);
    }
}

/// The exchange a request head starts.
fn exchange(
    fields: HeaderFields,
    seen: Seen,
    first: &mut FirstRequest,
    counters: &mut DecodeCounters,
) -> Exchange {
    let form = match doh::classify(&fields) {
        None => {
            if *first == FirstRequest::Pending {
                *first = FirstRequest::NotDns;
            }
            return None;
        }
        Some(Err(_)) => {
            counters.bad_queries += 1;
            return None;
        }
        Some(Ok(form)) => form,
    };
    if *first == FirstRequest::Pending {
        *first = FirstRequest::Dns;
    }
    let mut s = new_stream(0, fields, Some(form), false, seen);
    s.http_version = "http/1.1";
    Some(s)
}
