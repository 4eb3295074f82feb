//! Incremental HTTP/2 decoding of one direction of one connection.
//!
//! Bytes arrive in arbitrary slices (TLS call boundaries are not frame boundaries). Control
//! frames and header blocks are buffered up to fixed limits; DATA payloads are streamed through
//! without buffering, with padding removed. Header blocks are reassembled across CONTINUATION
//! frames and decoded with this direction's own HPACK state, including blocks of PUSH_PROMISE
//! frames (decoded to keep the table in sync, then ignored).
//!
//! A decoder made with [`DirectionDecoder::mid_stream`] joins a connection whose start it did
//! not see: it waits for an I/O call that starts with plausible frame heads
//! ([`DirectionDecoder::try_sync`]), then decodes frames as usual, except that header blocks
//! are reported as [`H2Event::HeadersUnknown`] — the HPACK dynamic table is unknown, so no
//! header value is ever guessed.

use super::{
    frame::{self, Head, Kind, HEAD_LEN},
    hpack::{HeaderDecoder, HeaderFields},
    PREFACE,
};

/// Largest non-DATA frame payload buffered (SETTINGS_MAX_FRAME_SIZE is 16 KiB by default).
pub const MAX_BUFFERED_FRAME: u32 = 64 * 1024;
/// Largest header block reassembled from HEADERS/PUSH_PROMISE + CONTINUATION frames.
pub const MAX_HEADER_BLOCK: usize = 256 * 1024;

/// Something that happened in this direction, in wire order.
#[derive(Debug, PartialEq, Eq)]
pub enum H2Event<'a> {
    /// A complete header block on a stream (request, response or trailers).
    Headers {
        stream: u32,
        fields: HeaderFields,
        end_stream: bool,
    },
    /// A header block that cannot be decoded because the connection was joined mid-stream.
    HeadersUnknown { stream: u32, end_stream: bool },
    /// A piece of a DATA frame's payload (padding removed); `end_stream` on the last piece
    /// of a frame that carries END_STREAM.
    Data {
        stream: u32,
        bytes: &'a [u8],
        end_stream: bool,
    },
    /// RST_STREAM with its error code.
    RstStream { stream: u32, code: u32 },
    /// GOAWAY with the last stream the sender will process.
    GoAway { last_stream: u32, code: u32 },
    /// A non-ACK SETTINGS frame, with the values of SETTINGS_HEADER_TABLE_SIZE and
    /// SETTINGS_MAX_FRAME_SIZE if it set them.
    Settings {
        header_table_size: Option<u32>,
        max_frame_size: Option<u32>,
    },
}

/// Why this direction can no longer be decoded. Once returned, the decoder stays failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum H2Error {
    #[error("connection preface does not match")]
    BadPreface,
    #[error("{kind:?} frame of {len} bytes exceeds the buffering limit")]
    FrameTooLarge { kind: Kind, len: u32 },
    #[error("header block exceeds {MAX_HEADER_BLOCK} bytes")]
    HeaderBlockTooLarge,
    #[error("expected CONTINUATION of stream {expected}, got {got:?} on stream {stream}")]
    ExpectedContinuation {
        expected: u32,
        got: Kind,
        stream: u32,
    },
    #[error("CONTINUATION without a header block in progress")]
    UnexpectedContinuation,
    #[error("malformed {0:?} frame")]
    Malformed(Kind),
    #[error("HPACK: {0}")]
    Hpack(String),
    #[error("decoder failed earlier")]
    Failed,
}

#[derive(Debug)]
enum State {
    /// Joined mid-stream: waiting for an I/O call that starts at a frame boundary.
    Hunting,
    /// Matching the client preface; `usize` bytes matched so far.
    Preface(usize),
    /// Collecting the 9-byte head.
    Head,
    /// Collecting the payload of a buffered frame.
    Payload(Head),
    /// DATA frame with PADDED: waiting for the pad-length byte; the `u32` is the frame length.
    DataPadLen(Head),
    /// Streaming DATA payload; then skipping `pad` bytes.
    DataBody {
        stream: u32,
        data_left: u32,
        pad: u32,
        end_stream: bool,
    },
    /// Skipping bytes (padding, or frames not worth buffering).
    Skip(u32),
    Failed,
}

struct PendingBlock {
    stream: u32,
    end_stream: bool,
    /// PUSH_PROMISE blocks are decoded (HPACK sync) but not reported.
    report: bool,
    block: Vec<u8>,
}

/// Decoder of one direction's frames.
pub struct DirectionDecoder {
    state: State,
    /// Partial head or buffered payload.
    buf: Vec<u8>,
    hpack: HeaderDecoder,
    /// False when joined mid-stream: header blocks are not decodable.
    hpack_known: bool,
    /// The largest frame the receiving peer accepts (its SETTINGS_MAX_FRAME_SIZE); a larger
    /// frame is a connection error (RFC 9113 §4.2), so random bytes cannot pass as frames.
    max_frame: u32,
    pending: Option<PendingBlock>,
}

/// Largest frame a peer may send without having raised SETTINGS_MAX_FRAME_SIZE.
const DEFAULT_MAX_FRAME: u32 = frame::DEFAULT_MAX_FRAME_SIZE;
/// Largest frame accepted on a connection joined mid-stream (its SETTINGS were not seen).
const MID_STREAM_MAX_FRAME: u32 = 1 << 20;

/// Whether `bytes` start with frame heads a real peer would send: known types, lengths within
/// the default maximum, stream ids where the type needs them (and none where it must not).
/// Every complete frame in `bytes` is checked; a final partial frame is allowed.
pub fn plausible_frames(mut bytes: &[u8]) -> bool {
    let mut frames = 0;
    while bytes.len() >= HEAD_LEN {
        let head = Head::parse(bytes[..HEAD_LEN].try_into().expect("9 bytes"));
        if bytes[5] & 0x80 != 0 || head.len > DEFAULT_MAX_FRAME {
            return false;
        }
        let ok = match head.kind {
            Kind::Data | Kind::Headers | Kind::Continuation | Kind::RstStream | Kind::Priority => {
                head.stream != 0
            }
            Kind::Settings => head.stream == 0 && head.len.is_multiple_of(6),
            Kind::Ping => head.stream == 0 && head.len == 8,
            Kind::GoAway => head.stream == 0 && head.len >= 8,
            Kind::WindowUpdate => head.len == 4,
            Kind::PushPromise => head.stream != 0 && head.len >= 4,
            Kind::Unknown(_) => false,
        };
        if !ok {
            return false;
        }
        frames += 1;
        let end = HEAD_LEN + head.len as usize;
        if end >= bytes.len() {
            return true;
        }
        bytes = &bytes[end..];
    }
    frames > 0 && bytes.is_empty()
}

impl DirectionDecoder {
    /// A decoder for the client→server direction, starting at the connection preface.
    pub fn client_to_server() -> Self {
        Self::with_state(State::Preface(0))
    }

    /// A decoder for the server→client direction, starting at the first frame.
    pub fn server_to_client() -> Self {
        Self::with_state(State::Head)
    }

    /// A decoder for a direction whose start was not seen (see the module docs).
    pub fn mid_stream() -> Self {
        // The negotiated maximum was not seen: allow what peers commonly raise it to.
        DirectionDecoder {
            hpack_known: false,
            max_frame: MID_STREAM_MAX_FRAME,
            ..Self::with_state(State::Hunting)
        }
    }

    fn with_state(state: State) -> Self {
        DirectionDecoder {
            state,
            buf: Vec::new(),
            hpack: HeaderDecoder::new(),
            hpack_known: true,
            max_frame: frame::DEFAULT_MAX_FRAME_SIZE,
            pending: None,
        }
    }

    /// Whether the decoder is still waiting for a frame boundary.
    pub fn hunting(&self) -> bool {
        matches!(self.state, State::Hunting)
    }

    /// At the start of an I/O call: if hunting and `call_start` begins with plausible frames,
    /// start decoding here. Returns whether the decoder is (now) synchronised.
    pub fn try_sync(&mut self, call_start: &[u8]) -> bool {
        if self.hunting() && plausible_frames(call_start) {
            self.state = State::Head;
        }
        !self.hunting()
    }

    /// The other direction's SETTINGS: the table size and frame size this direction's
    /// sender may now use.
    pub fn follow_peer_settings(
        &mut self,
        header_table_size: Option<u32>,
        max_frame_size: Option<u32>,
    ) {
        if let Some(size) = header_table_size {
            self.allow_table_size(size);
        }
        if let Some(size) = max_frame_size {
            self.allow_frame_size(size);
        }
    }

    /// The peer receiving this direction advertised SETTINGS_MAX_FRAME_SIZE.
    pub fn allow_frame_size(&mut self, size: u32) {
        self.max_frame = size.clamp(frame::DEFAULT_MAX_FRAME_SIZE, frame::LARGEST_MAX_FRAME_SIZE);
    }

    /// The peer receiving this direction advertised SETTINGS_HEADER_TABLE_SIZE.
    pub fn allow_table_size(&mut self, size: u32) {
        self.hpack.allow_table_size(size);
    }

    /// Whether an earlier error stopped this decoder.
    pub fn failed(&self) -> bool {
        matches!(self.state, State::Failed)
    }

    /// Bytes currently buffered (for memory accounting).
    pub fn buffered(&self) -> usize {
        self.buf.capacity() + self.pending.as_ref().map_or(0, |p| p.block.capacity())
    }

    /// Heap bytes held, in constant time: buffers and HPACK state.
    pub fn held_bytes(&self) -> usize {
        self.buffered() + self.hpack.held_bytes()
    }

    /// Feeds the next bytes of this direction; `on_event` sees every complete event.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        on_event: &mut dyn FnMut(H2Event<'_>),
    ) -> Result<(), H2Error> {
        let r = self.feed_inner(&mut input, on_event);
        if r.is_err() {
            self.state = State::Failed;
            self.buf = Vec::new();
            self.pending = None;
        }
        r
    }

    fn feed_inner(
        &mut self,
        input: &mut &[u8],
        on_event: &mut dyn FnMut(H2Event<'_>),
    ) -> Result<(), H2Error> {
        while !input.is_empty() {
            match self.state {
                State::Failed => return Err(H2Error::Failed),
                // Bytes before a frame boundary was found are dropped.
                State::Hunting => return Ok(()),
                State::Preface(matched) => {
                    let n = (PREFACE.len() - matched).min(input.len());
                    if input[..n] != PREFACE[matched..matched + n] {
                        return Err(H2Error::BadPreface);
                    }
                    *input = &input[n..];
                    self.state = if matched + n == PREFACE.len() {
                        State::Head
                    } else {
                        State::Preface(matched + n)
                    };
                }
                State::Head => {
                    let n = (HEAD_LEN - self.buf.len()).min(input.len());
                    self.buf.extend_from_slice(&input[..n]);
                    *input = &input[n..];
                    if self.buf.len() == HEAD_LEN {
                        let head = Head::parse(self.buf[..].try_into().expect("9 bytes"));
                        self.buf.clear();
                        self.start_frame(head, on_event)?;
                    }
                }
                State::Payload(head) => {
                    let n = (head.len as usize - self.buf.len()).min(input.len());
                    self.buf.extend_from_slice(&input[..n]);
                    *input = &input[n..];
                    if self.buf.len() == head.len as usize {
                        let payload = std::mem::take(&mut self.buf);
                        self.state = State::Head;
                        self.frame(head, &payload, on_event)?;
                        self.buf = payload;
                        self.buf.clear();
                    }
                }
                State::DataPadLen(head) => {
                    let pad = u32::from(input[0]);
                    *input = &input[1..];
                    if pad + 1 > head.len {
                        return Err(H2Error::Malformed(Kind::Data));
                    }
                    let data_left = head.len - 1 - pad;
                    let end_stream = head.has(frame::END_STREAM);
                    if data_left == 0 && end_stream {
                        on_event(H2Event::Data {
                            stream: head.stream,
                            bytes: &[],
                            end_stream,
                        });
                    }
                    self.state = State::DataBody {
                        stream: head.stream,
                        data_left,
                        pad,
                        end_stream,
                    };
                    self.after_data_progress();
                }
                State::DataBody {
                    stream,
                    data_left,
                    pad,
                    end_stream,
                } => {
                    let n = (data_left as usize).min(input.len());
                    let left = data_left - n as u32;
                    self.state = State::DataBody {
                        stream,
                        data_left: left,
                        pad,
                        end_stream,
                    };
                    if n > 0 {
                        on_event(H2Event::Data {
                            stream,
                            bytes: &input[..n],
                            end_stream: end_stream && left == 0,
                        });
                        *input = &input[n..];
                    }
                    self.after_data_progress();
                }
                State::Skip(left) => {
                    let n = (left as usize).min(input.len());
                    *input = &input[n..];
                    self.state = if left as usize == n {
                        State::Head
                    } else {
                        State::Skip(left - n as u32)
                    };
                }
            }
        }
        Ok(())
    }

    /// After DATA progress: move to padding skip / next head once the payload is through.
    fn after_data_progress(&mut self) {
        if let State::DataBody {
            data_left: 0, pad, ..
        } = self.state
        {
            self.state = if pad == 0 {
                State::Head
            } else {
                State::Skip(pad)
            };
        }
    }

    fn start_frame(
        &mut self,
        head: Head,
        on_event: &mut dyn FnMut(H2Event<'_>),
    ) -> Result<(), H2Error> {
        if let Some(p) = &self.pending {
            if head.kind != Kind::Continuation || head.stream != p.stream {
                return Err(H2Error::ExpectedContinuation {
                    expected: p.stream,
                    got: head.kind,
                    stream: head.stream,
                });
            }
        }
        if head.len > self.max_frame {
            return Err(H2Error::FrameTooLarge {
                kind: head.kind,
                len: head.len,
            });
        }
        match head.kind {
            Kind::Data => {
                if head.has(frame::PADDED) {
                    if head.len == 0 {
                        return Err(H2Error::Malformed(Kind::Data));
                    }
                    self.state = State::DataPadLen(head);
                } else {
                    let end_stream = head.has(frame::END_STREAM);
                    if head.len == 0 {
                        // An empty DATA frame still ends the stream when it says so.
                        if end_stream {
                            on_event(H2Event::Data {
                                stream: head.stream,
                                bytes: &[],
                                end_stream,
                            });
                        }
                        self.state = State::Head;
                    } else {
                        self.state = State::DataBody {
                            stream: head.stream,
                            data_left: head.len,
                            pad: 0,
                            end_stream,
                        };
                    }
                }
            }
            Kind::Unknown(_) | Kind::Priority | Kind::Ping | Kind::WindowUpdate
                if head.len > MAX_BUFFERED_FRAME =>
            {
                self.state = State::Skip(head.len);
            }
            kind => {
                // Header-block frames may be as large as a whole block (peers that raised
                // SETTINGS_MAX_FRAME_SIZE send big blocks in one frame); the rest are control
                // frames, which are small.
                let limit = match kind {
                    Kind::Headers | Kind::PushPromise | Kind::Continuation => {
                        MAX_HEADER_BLOCK as u32
                    }
                    _ => MAX_BUFFERED_FRAME,
                };
                if head.len > limit {
                    return Err(H2Error::FrameTooLarge {
                        kind,
                        len: head.len,
                    });
                }
                if head.len == 0 {
                    self.frame(head, &[], on_event)?;
                } else {
                    self.state = State::Payload(head);
                }
            }
        }
        Ok(())
    }

    /// Handles a complete buffered frame.
    fn frame(
        &mut self,
        head: Head,
        payload: &[u8],
        on_event: &mut dyn FnMut(H2Event<'_>),
    ) -> Result<(), H2Error> {
        match head.kind {
            Kind::Headers => {
                let mut body = strip_padding(head, payload)?;
                if head.has(frame::PRIORITY) {
                    body = body.get(5..).ok_or(H2Error::Malformed(Kind::Headers))?;
                }
                self.begin_block(head, body, true, on_event)?;
            }
            Kind::PushPromise => {
                let body = strip_padding(head, payload)?;
                let body = body.get(4..).ok_or(H2Error::Malformed(Kind::PushPromise))?;
                self.begin_block(head, body, false, on_event)?;
            }
            Kind::Continuation => {
                let Some(p) = self.pending.as_mut() else {
                    return Err(H2Error::UnexpectedContinuation);
                };
                if p.block.len() + payload.len() > MAX_HEADER_BLOCK {
                    return Err(H2Error::HeaderBlockTooLarge);
                }
                p.block.extend_from_slice(payload);
                if head.has(frame::END_HEADERS) {
                    let p = self.pending.take().expect("checked above");
                    self.finish_block(p.stream, &p.block, p.end_stream, p.report, on_event)?;
                }
            }
            Kind::RstStream => {
                let code = be_u32(payload).ok_or(H2Error::Malformed(Kind::RstStream))?;
                on_event(H2Event::RstStream {
                    stream: head.stream,
                    code,
                });
            }
            Kind::GoAway => {
                let last = be_u32(payload).ok_or(H2Error::Malformed(Kind::GoAway))?;
                let code = be_u32(payload.get(4..).unwrap_or(&[]))
                    .ok_or(H2Error::Malformed(Kind::GoAway))?;
                on_event(H2Event::GoAway {
                    last_stream: last & 0x7fff_ffff,
                    code,
                });
            }
            Kind::Settings => {
                if head.has(frame::ACK) {
                    return Ok(());
                }
                if !payload.len().is_multiple_of(6) {
                    return Err(H2Error::Malformed(Kind::Settings));
                }
                let setting = |id: u16| {
                    payload
                        .chunks_exact(6)
                        .filter(|s| u16::from_be_bytes([s[0], s[1]]) == id)
                        .map(|s| u32::from_be_bytes([s[2], s[3], s[4], s[5]]))
                        .next_back()
                };
                let max_frame_size = setting(frame::SETTINGS_MAX_FRAME_SIZE);
                if max_frame_size.is_some_and(|m| {
                    !(frame::DEFAULT_MAX_FRAME_SIZE..=frame::LARGEST_MAX_FRAME_SIZE).contains(&m)
                }) {
                    return Err(H2Error::Malformed(Kind::Settings));
                }
                on_event(H2Event::Settings {
                    header_table_size: setting(frame::SETTINGS_HEADER_TABLE_SIZE),
                    max_frame_size,
                });
            }
            Kind::Data => unreachable!("DATA is streamed, never buffered"),
            Kind::Priority | Kind::Ping | Kind::WindowUpdate | Kind::Unknown(_) => {}
        }
        Ok(())
    }

    fn begin_block(
        &mut self,
        head: Head,
        fragment: &[u8],
        report: bool,
        on_event: &mut dyn FnMut(H2Event<'_>),
    ) -> Result<(), H2Error> {
        let end_stream = head.has(frame::END_STREAM);
        if head.has(frame::END_HEADERS) {
            return self.finish_block(head.stream, fragment, end_stream, report, on_event);
        }
        self.pending = Some(PendingBlock {
            stream: head.stream,
            end_stream,
            report,
            block: fragment.to_vec(),
        });
        Ok(())
    }

    fn finish_block(
        &mut self,
        stream: u32,
        block: &[u8],
        end_stream: bool,
        report: bool,
        on_event: &mut dyn FnMut(H2Event<'_>),
    ) -> Result<(), H2Error> {
        if !self.hpack_known {
            if report {
                on_event(H2Event::HeadersUnknown { stream, end_stream });
            }
            return Ok(());
        }
        let mut fields = HeaderFields::default();
        self.hpack
            .decode_into(block, &mut fields)
            .map_err(|e| H2Error::Hpack(e.to_string()))?;
        if report {
            on_event(H2Event::Headers {
                stream,
                fields,
                end_stream,
            });
        }
        Ok(())
    }
}

/// Removes the pad-length byte and trailing padding of a PADDED frame.
fn strip_padding(head: Head, payload: &[u8]) -> Result<&[u8], H2Error> {
    if !head.has(frame::PADDED) {
        return Ok(payload);
    }
    let (&pad, rest) = payload.split_first().ok_or(H2Error::Malformed(head.kind))?;
    let keep = rest
        .len()
        .checked_sub(pad as usize)
        .ok_or(H2Error::Malformed(head.kind))?;
    Ok(&rest[..keep])
}

fn be_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_frames_accepts_real_frame_runs_and_rejects_text() {
        // SETTINGS(0) + WINDOW_UPDATE + start of a HEADERS frame on stream 1
        let mut b = vec![0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100];
        b.extend_from_slice(&[0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
        b.extend_from_slice(&[0, 0, 20, 1, 4, 0, 0, 0, 1, 0x82]);
        assert!(plausible_frames(&b));
        assert!(!plausible_frames(b"GET / HTTP/1.1\r\nHost: x\r\n"));
        assert!(
            !plausible_frames(&[0, 0, 4, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]),
            "DATA on stream 0"
        );
        assert!(!plausible_frames(&[0, 0, 1]), "no complete head");
    }

    #[test]
    fn frames_over_the_receivers_max_frame_size_are_errors_and_within_it_are_skipped() {
        let unknown = |len: u32| {
            let mut f = vec![
                (len >> 16) as u8,
                (len >> 8) as u8,
                len as u8,
                0xfa,
                0,
                0,
                0,
                0,
                1,
            ];
            f.resize(9 + len as usize, 0x5a);
            f
        };
        let data = [0, 0, 2, 0, 1, 0, 0, 0, 1, 0xab, 0xcd];
        let mut d = DirectionDecoder::server_to_client();
        assert!(matches!(
            d.feed(&unknown(16_385), &mut |_| {}),
            Err(H2Error::FrameTooLarge { .. })
        ));
        let mut d = DirectionDecoder::server_to_client();
        d.allow_frame_size(1 << 20);
        let mut events = Vec::new();
        let input = [unknown(100_000), data.to_vec()].concat();
        for piece in input.chunks(4096) {
            d.feed(piece, &mut |e| events.push(format!("{e:?}")))
                .unwrap();
        }
        assert_eq!(
            events,
            vec!["Data { stream: 1, bytes: [171, 205], end_stream: true }".to_string()]
        );
        assert!(
            d.buffered() < 70_000,
            "a large unknown frame is skipped, not buffered"
        );
    }

    #[test]
    fn a_mid_stream_decoder_reports_headers_as_unknown_and_data_as_is() {
        let mut d = DirectionDecoder::mid_stream();
        let mut events = Vec::new();
        d.feed(&[1, 2, 3], &mut |e| events.push(format!("{e:?}")))
            .unwrap();
        assert!(
            events.is_empty() && d.hunting(),
            "bytes before a boundary are dropped"
        );
        // HEADERS (indexed :method POST from the static table, END_HEADERS) + DATA(END_STREAM)
        let call = [
            0, 0, 1, 1, 4, 0, 0, 0, 7, 0x83, 0, 0, 2, 0, 1, 0, 0, 0, 7, 0xab, 0xcd,
        ];
        assert!(d.try_sync(&call));
        d.feed(&call, &mut |e| events.push(format!("{e:?}")))
            .unwrap();
        assert_eq!(
            events,
            vec![
                "HeadersUnknown { stream: 7, end_stream: false }".to_string(),
                "Data { stream: 7, bytes: [171, 205], end_stream: true }".to_string()
            ]
        );
    }
}
