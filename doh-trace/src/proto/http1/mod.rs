//! Incremental HTTP/1.1 decoding of one direction of one connection (RFC 9112).
//!
//! Bytes arrive in arbitrary slices (TLS call boundaries are not message boundaries). Heads are
//! read one line at a time into a buffer bounded by [`MAX_HEAD`]; only the fields in
//! [`HeaderFields`] are kept, every other header value is dropped as soon as its line has been
//! looked at. Bodies are streamed through as [`H1Event::Body`] slices of the input (chunk framing
//! removed, content codings such as gzip left as they are) and never buffered, so no length
//! field, however large, makes the decoder allocate.
//!
//! Message framing follows RFC 9112 §6.3:
//! - requests: `Transfer-Encoding` ending in `chunked`, else `Content-Length`, else no body (a
//!   request whose transfer coding does not end in `chunked` is an error);
//! - responses: none for responses to HEAD, 1xx, 204 and 304; then chunked, then
//!   `Content-Length`; otherwise (no length, or a transfer coding other than a final `chunked`)
//!   the body runs until the connection closes. Such a body is reported as [`H1Event::Body`]
//!   events with no [`H1Event::End`]: the caller ends the message when the connection closes
//!   ([`Http1Decoder::reads_until_close`] says when that is the case).
//!
//! Interim responses (1xx other than 101) are reported as `Head` + `End` and leave the queued
//! request method for the final response. A `101` whose Upgrade is h2c is reported as `Head` +
//! [`H1Event::Switched`]; a `101` to anything else and a 2xx response to CONNECT are reported
//! (`Head` + `End`) and then fail the decoder ([`H1Error::UnsupportedUpgrade`],
//! [`H1Error::Tunnel`]): what follows is not HTTP/1. The request side never switches by itself:
//! after the 101 the client sends the HTTP/2 connection preface, which is
//! [`H1Error::Http2Preface`] if fed here; the caller moves the client direction to HTTP/2 when
//! the response side reports `Switched`.
//!
//! Keep-alive and pipelining need nothing special: messages follow each other in the byte
//! stream. The response side needs the request methods, in order, through
//! [`Http1Decoder::expect_response_to`].

mod error;
mod head;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_hostile;

use std::collections::VecDeque;

pub use crate::proto::http2::HeaderFields;
pub use error::H1Error;
use head::{chunk_size, split_header, HeaderLine, MessageHead};

/// Largest request/status line + header section (and, separately, trailer section), CRLFs
/// included.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header lines in one head (and, separately, trailer lines after a chunked body).
pub const MAX_HEADER_LINES: usize = 200;
/// Longest chunk-size line (size, extensions and CRLF).
pub const MAX_CHUNK_LINE: usize = 1024;
/// Most request methods queued for responses not yet seen; further ones are not queued and
/// their responses are decoded as responses to GET.
pub const MAX_PENDING_REQUESTS: usize = 1024;

/// Something that happened in this direction, in wire order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum H1Event<'a> {
    /// A complete request or response head: method, path (the request target; for an
    /// absolute-form target its path, with `scheme` and `authority` taken from it), authority
    /// (from Host), status (the response code as text), content_type and accept.
    /// `upgrade_h2c`: the head has `Upgrade: h2c` together with `Connection: upgrade` (set on
    /// the request that asks for the upgrade, and on a 101 response that grants it and says so).
    Head {
        fields: HeaderFields,
        upgrade_h2c: bool,
    },
    /// A piece of the message body (chunk framing removed).
    Body(&'a [u8]),
    /// The current message is complete (Content-Length reached, zero chunk + trailers read, or
    /// no body by the rules of RFC 9112 §6.3). Not sent for bodies that run until the
    /// connection closes.
    End,
    /// Response side: a `101 Switching Protocols` head whose Upgrade is h2c was read (reported
    /// just before, as a `Head` with no `End`); everything after it in this direction is
    /// HTTP/2. `feed` returns the count consumed up to the end of that head and consumes
    /// nothing more, ever.
    Switched,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Requests,
    Responses,
}

/// What the response rules need to know of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestKind {
    Head,
    Connect,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the request/status line, skipping empty lines before it (RFC 9112 §2.2).
    StartLine,
    /// Reading header lines.
    Headers,
    /// Streaming a Content-Length body; bytes left.
    Fixed(u64),
    /// Reading a chunk-size line.
    ChunkSize,
    /// Streaming chunk data; bytes left in the chunk.
    ChunkData(u64),
    /// Expecting the CRLF after chunk data; `true` once the CR was seen.
    ChunkEnd(bool),
    /// Reading trailer lines after the last chunk.
    Trailers,
    /// Streaming a body delimited by the connection closing.
    UntilClose,
    /// The rest of this direction is HTTP/2.
    Switched,
    Failed,
}

/// Decoder of one direction's HTTP/1.x messages.
pub struct Http1Decoder {
    side: Side,
    state: State,
    /// The line being read (head, chunk-size or trailer line), without its end.
    line: Vec<u8>,
    /// Bytes of the current section (head, trailers, or one chunk-size line) read so far.
    section_bytes: usize,
    /// Trailer lines read.
    trailer_lines: usize,
    head: MessageHead,
    /// Response side: the requests whose responses are still to come, oldest first.
    pending: VecDeque<RequestKind>,
}

impl Http1Decoder {
    /// Client→server direction: request line + headers + body.
    pub fn requests() -> Self {
        Self::new(Side::Requests)
    }

    /// Server→client direction: status line + headers + body.
    pub fn responses() -> Self {
        Self::new(Side::Responses)
    }

    fn new(side: Side) -> Self {
        Http1Decoder {
            side,
            state: State::StartLine,
            line: Vec::new(),
            section_bytes: 0,
            trailer_lines: 0,
            head: MessageHead::default(),
            pending: VecDeque::new(),
        }
    }

    /// Response side only: the method of the next request, in the order requests were sent
    /// (pipelining). Needed for body rules (HEAD responses have no body, 2xx responses to
    /// CONNECT start a tunnel). If the queue is empty when a response arrives, GET is assumed.
    /// Ignored on the request side and beyond [`MAX_PENDING_REQUESTS`] queued requests.
    pub fn expect_response_to(&mut self, method: &str) {
        if self.side != Side::Responses || self.pending.len() >= MAX_PENDING_REQUESTS {
            return;
        }
        self.pending.push_back(match method {
            "HEAD" => RequestKind::Head,
            "CONNECT" => RequestKind::Connect,
            _ => RequestKind::Other,
        });
    }

    /// Whether an earlier error stopped this decoder (it then stays failed).
    pub fn failed(&self) -> bool {
        self.state == State::Failed
    }

    /// Whether a `Switched` event was sent: the rest of this direction is HTTP/2.
    pub fn switched(&self) -> bool {
        self.state == State::Switched
    }

    /// Whether the current message's body runs until the connection closes (its end is the
    /// close, not an `End` event).
    pub fn reads_until_close(&self) -> bool {
        self.state == State::UntilClose
    }

    /// Whether the decoder is between messages (no partial message read).
    pub fn at_message_boundary(&self) -> bool {
        self.state == State::StartLine && self.section_bytes == 0
    }

    /// Bytes currently held (for memory accounting).
    pub fn buffered(&self) -> usize {
        self.line.capacity() + self.pending.capacity() * std::mem::size_of::<RequestKind>()
    }

    /// Heap bytes held, in constant time: [`buffered`](Self::buffered) and the head being
    /// read.
    pub fn held_bytes(&self) -> usize {
        self.buffered() + self.head.fields.held_bytes()
    }

    /// Feeds bytes; calls `on_event` for each event. Returns how many bytes of `input` were
    /// consumed: always `input.len()`, except after a `Switched` event (the rest is HTTP/2),
    /// from then on 0.
    pub fn feed(
        &mut self,
        input: &[u8],
        on_event: &mut dyn FnMut(H1Event<'_>),
    ) -> Result<usize, H1Error> {
        match self.state {
            State::Failed => return Err(H1Error::Failed),
            State::Switched => return Ok(0),
            _ => {}
        }
        let mut rest = input;
        match self.feed_inner(&mut rest, on_event) {
            Ok(()) => Ok(input.len().saturating_sub(rest.len())),
            Err(e) => {
                self.state = State::Failed;
                self.line = Vec::new();
                self.head = MessageHead::default();
                self.pending = VecDeque::new();
                Err(e)
            }
        }
    }

    fn feed_inner(
        &mut self,
        input: &mut &[u8],
        on_event: &mut dyn FnMut(H1Event<'_>),
    ) -> Result<(), H1Error> {
        while !input.is_empty() {
            match self.state {
                State::Failed => return Err(H1Error::Failed),
                State::Switched => return Ok(()),
                State::StartLine | State::Headers => {
                    if self.read_line(input, MAX_HEAD, H1Error::HeadTooLarge)? {
                        self.with_line(|d, line| d.head_line(line, on_event))?;
                    }
                }
                State::Trailers => {
                    if self.read_line(input, MAX_HEAD, H1Error::TrailersTooLarge)? {
                        self.with_line(|d, line| d.trailer_line(line, on_event))?;
                    }
                }
                State::ChunkSize => {
                    if self.read_line(input, MAX_CHUNK_LINE, H1Error::ChunkLineTooLong)? {
                        self.with_line(|d, line| d.chunk_size_line(line))?;
                    }
                }
                State::Fixed(left) => {
                    let left = stream(input, left, on_event);
                    if left == 0 {
                        self.end_message(on_event);
                    } else {
                        self.state = State::Fixed(left);
                    }
                }
                State::ChunkData(left) => {
                    let left = stream(input, left, on_event);
                    self.state = if left == 0 {
                        State::ChunkEnd(false)
                    } else {
                        State::ChunkData(left)
                    };
                }
                State::ChunkEnd(seen_cr) => {
                    let Some((&b, rest)) = input.split_first() else {
                        break;
                    };
                    *input = rest;
                    self.state = match (seen_cr, b) {
                        (false, b'\r') => State::ChunkEnd(true),
                        (_, b'\n') => {
                            self.section_bytes = 0;
                            State::ChunkSize
                        }
                        _ => return Err(H1Error::BadChunkEnd),
                    };
                }
                State::UntilClose => {
                    on_event(H1Event::Body(input));
                    *input = &[];
                }
            }
        }
        Ok(())
    }

    /// Moves input up to and including the next LF into `self.line`, enforcing `limit` on the
    /// section. Returns `true` when a whole line (without CR LF) is in `self.line`.
    fn read_line(
        &mut self,
        input: &mut &[u8],
        limit: usize,
        too_long: H1Error,
    ) -> Result<bool, H1Error> {
        let (taken, complete) = match input.iter().position(|&b| b == b'\n') {
            Some(lf) => (lf.saturating_add(1), true),
            None => (input.len(), false),
        };
        self.section_bytes = self.section_bytes.saturating_add(taken);
        if self.section_bytes > limit {
            return Err(too_long);
        }
        let (piece, rest) = input.split_at(taken.min(input.len()));
        *input = rest;
        self.line.extend_from_slice(piece);
        if complete {
            self.line.pop(); // LF
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
        }
        Ok(complete)
    }

    /// Runs `f` on the complete line in `self.line`, then empties the line buffer.
    fn with_line(
        &mut self,
        f: impl FnOnce(&mut Self, &[u8]) -> Result<(), H1Error>,
    ) -> Result<(), H1Error> {
        let line = std::mem::take(&mut self.line);
        let r = f(self, &line);
        self.line = line;
        self.line.clear();
        r
    }

    fn head_line(
        &mut self,
        line: &[u8],
        on_event: &mut dyn FnMut(H1Event<'_>),
    ) -> Result<(), H1Error> {
        match self.state {
            State::StartLine if line.is_empty() => Ok(()),
            State::StartLine => {
                match self.side {
                    Side::Requests => head::request_line(line, &mut self.head)?,
                    Side::Responses => head::status_line(line, &mut self.head)?,
                }
                self.state = State::Headers;
                Ok(())
            }
            _ if line.is_empty() => self.end_of_head(on_event),
            _ => self.head.header_line(line),
        }
    }

    fn trailer_line(
        &mut self,
        line: &[u8],
        on_event: &mut dyn FnMut(H1Event<'_>),
    ) -> Result<(), H1Error> {
        if line.is_empty() {
            self.end_message(on_event);
            return Ok(());
        }
        self.trailer_lines = self.trailer_lines.saturating_add(1);
        if self.trailer_lines > MAX_HEADER_LINES {
            return Err(H1Error::TooManyHeaders);
        }
        // Trailers are checked for syntax and dropped; a continuation line cannot come first.
        match split_header(line)? {
            HeaderLine::Continuation(_) if self.trailer_lines == 1 => Err(H1Error::BadHeaderLine),
            _ => Ok(()),
        }
    }

    fn chunk_size_line(&mut self, line: &[u8]) -> Result<(), H1Error> {
        let size = chunk_size(line)?;
        self.section_bytes = 0;
        self.state = if size == 0 {
            self.trailer_lines = 0;
            State::Trailers
        } else {
            State::ChunkData(size)
        };
        Ok(())
    }

    /// The empty line after the headers: reports the head and picks the body rule.
    fn end_of_head(&mut self, on_event: &mut dyn FnMut(H1Event<'_>)) -> Result<(), H1Error> {
        let head = std::mem::take(&mut self.head);
        self.section_bytes = 0;
        let upgrade_h2c = head.upgrade_h2c && head.connection_upgrade;
        let status = head.status;
        let length = head.content_length;
        let chunked = head.transfer_encoding && head.chunked_last;
        let transfer_encoding = head.transfer_encoding;
        let switch_h2c = self.side == Side::Responses && status == 101 && head.upgrade_h2c;
        on_event(H1Event::Head {
            fields: head.into_fields(),
            upgrade_h2c,
        });
        if self.side == Side::Requests {
            if transfer_encoding && !chunked {
                return Err(H1Error::BadTransferEncoding);
            }
            self.body(chunked, length, false, on_event);
            return Ok(());
        }
        if switch_h2c {
            self.state = State::Switched;
            on_event(H1Event::Switched);
            return Ok(());
        }
        if (100..200).contains(&status) && status != 101 {
            // Interim response: the final one to the same request follows.
            self.end_message(on_event);
            return Ok(());
        }
        let request = self.pending.pop_front().unwrap_or(RequestKind::Other);
        if status == 101 {
            self.end_message(on_event);
            return Err(H1Error::UnsupportedUpgrade);
        }
        if request == RequestKind::Head || status == 204 || status == 304 {
            self.end_message(on_event);
            return Ok(());
        }
        if request == RequestKind::Connect && (200..300).contains(&status) {
            self.end_message(on_event);
            return Err(H1Error::Tunnel);
        }
        self.body(chunked, length, transfer_encoding && !chunked, on_event);
        Ok(())
    }

    /// Enters the body state the framing headers call for.
    fn body(
        &mut self,
        chunked: bool,
        length: Option<u64>,
        until_close: bool,
        on_event: &mut dyn FnMut(H1Event<'_>),
    ) {
        self.state = if chunked {
            State::ChunkSize
        } else if until_close {
            State::UntilClose
        } else {
            match length {
                Some(0) => return self.end_message(on_event),
                Some(n) => State::Fixed(n),
                None if self.side == Side::Requests => return self.end_message(on_event),
                None => State::UntilClose,
            }
        };
    }

    fn end_message(&mut self, on_event: &mut dyn FnMut(H1Event<'_>)) {
        on_event(H1Event::End);
        self.state = State::StartLine;
        self.head = MessageHead::default();
        self.section_bytes = 0;
        self.trailer_lines = 0;
    }
}

/// Reports up to `left` bytes of `input` as body and advances past them; returns what is left.
fn stream(input: &mut &[u8], left: u64, on_event: &mut dyn FnMut(H1Event<'_>)) -> u64 {
    let n = usize::try_from(left).map_or(input.len(), |l| l.min(input.len()));
    let (body, rest) = input.split_at(n);
    if !body.is_empty() {
        on_event(H1Event::Body(body));
    }
    *input = rest;
    left.saturating_sub(n as u64)
}
