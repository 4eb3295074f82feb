//! An HTTP/2 connection as a recording keeps it: its DoH exchanges and nothing else.
//!
//! Both directions are decoded as the pipeline decodes them ([`DirectionDecoder`]); what is
//! written is rebuilt from what was decoded: the preface, SETTINGS (the two values a decoder
//! follows), and for each DoH stream its header fields as the DoH decoder reads them
//! (method, scheme, authority, path, status, content type, accept: literals that leave the
//! dynamic table alone, see [`super::h2_frames`]), its DATA, RST_STREAM and GOAWAY without
//! debug data. Other streams — a page, an API call, their cookies, authorisation headers,
//! paths and bodies — leave nothing. A connection joined mid-stream has no known headers: a
//! stream's bodies are kept only when each is one DNS message, under an empty header block
//! (which a mid-stream decoder reads as unknown headers, as it did live).

use std::collections::HashMap;

use hickory_proto::op::Message;

use super::h2_frames;
use crate::proto::{
    doh,
    http2::{DirectionDecoder, H2Event, HeaderFields, PREFACE},
};

/// Most streams whose class is remembered at once; beyond it the connection is not kept.
pub const MAX_STREAMS: usize = 4096;
/// Most bytes of one stream's body held back, mid-stream, until it is known to be DNS.
pub const MAX_HELD_BODY: usize = 64 * 1024;
/// Most bytes of all such bodies held back at once; beyond it the connection is not kept.
pub const MAX_HELD_TOTAL: usize = 256 * 1024;

/// What a stream is, to the recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Doh,
    Other,
    /// Headers unknown (joined mid-stream): bodies kept when they are DNS messages.
    Unknown,
    /// Headers unknown, and a body too long for DNS: its ends are kept, empty.
    UnknownLong,
}

/// Why the rest of a connection cannot be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unkeepable;

/// One HTTP/2 client connection's redaction (egress is the client's side).
pub struct H2Redactor {
    egress: DirectionDecoder,
    ingress: DirectionDecoder,
    mid_stream: bool,
    preface_written: bool,
    streams: HashMap<u32, Class>,
    /// Mid-stream bodies held until their END_STREAM: (stream, egress) → bytes.
    held: HashMap<(u32, bool), Vec<u8>>,
}

impl H2Redactor {
    /// From the connection's start (egress begins with the preface), or joined mid-stream.
    pub fn new(mid_stream: bool) -> Self {
        let (egress, ingress) = match mid_stream {
            true => (
                DirectionDecoder::mid_stream(),
                DirectionDecoder::mid_stream(),
            ),
            false => (
                DirectionDecoder::client_to_server(),
                DirectionDecoder::server_to_client(),
            ),
        };
        H2Redactor {
            egress,
            ingress,
            mid_stream,
            preface_written: mid_stream,
            streams: HashMap::new(),
            held: HashMap::new(),
        }
    }

    /// After an h2c upgrade: stream 1 is the upgrading request, of class `doh`.
    pub fn upgraded(doh: bool) -> Self {
        let mut r = Self::new(false);
        r.streams
            .insert(1, if doh { Class::Doh } else { Class::Other });
        r
    }

    /// Bytes memory held.
    pub fn buffered(&self) -> usize {
        self.egress.buffered()
            + self.ingress.buffered()
            + self.held.values().map(Vec::capacity).sum::<usize>()
            + self.streams.capacity() * 8
    }

    /// The next bytes of one direction (`call_start`: they begin an I/O call); what the
    /// recording keeps of them is appended to `out`.
    pub fn feed(
        &mut self,
        egress: bool,
        bytes: &[u8],
        call_start: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), Unkeepable> {
        if egress && !self.preface_written {
            self.preface_written = true;
            out.extend_from_slice(PREFACE);
        }
        let H2Redactor {
            egress: e,
            ingress: i,
            mid_stream,
            streams,
            held,
            ..
        } = self;
        let (decoder, other) = if egress { (e, i) } else { (i, e) };
        if call_start {
            decoder.try_sync(bytes);
        }
        let mut over = false;
        let r = decoder.feed(bytes, &mut |ev| match ev {
            H2Event::Settings {
                header_table_size,
                max_frame_size,
            } => {
                other.follow_peer_settings(header_table_size, max_frame_size);
                h2_frames::settings(out, header_table_size, max_frame_size);
            }
            H2Event::Headers {
                stream,
                fields,
                end_stream,
            } => {
                let class = match (egress, streams.get(&stream)) {
                    (_, Some(c)) => Some(*c),
                    (true, None) => {
                        if streams.len() >= MAX_STREAMS {
                            over = true;
                            return;
                        }
                        let c = match doh::classify(&fields) {
                            Some(_) => Class::Doh,
                            None => Class::Other,
                        };
                        streams.insert(stream, c);
                        Some(c)
                    }
                    // A response to no request seen, or a pushed stream.
                    (false, None) => None,
                };
                if class == Some(Class::Doh) {
                    headers(out, stream, &fields, end_stream);
                }
                if !egress && end_stream {
                    streams.remove(&stream);
                }
            }
            H2Event::HeadersUnknown { stream, end_stream } => {
                if egress && !streams.contains_key(&stream) {
                    if streams.len() >= MAX_STREAMS {
                        over = true;
                        return;
                    }
                    streams.insert(stream, Class::Unknown);
                }
                if matches!(
                    streams.get(&stream),
                    Some(Class::Unknown | Class::UnknownLong)
                ) {
                    h2_frames::headers(out, stream, &[], false);
                    if end_stream {
                        h2_frames::data(out, stream, &[], true);
                    }
                }
                if !egress && end_stream {
                    streams.remove(&stream);
                }
            }
            H2Event::Data {
                stream,
                bytes,
                end_stream,
            } => match streams.get(&stream) {
                Some(Class::Doh) => {
                    h2_frames::data(out, stream, bytes, end_stream);
                    if !egress && end_stream {
                        streams.remove(&stream);
                    }
                }
                Some(Class::Unknown) if *mid_stream => {
                    let body = held.entry((stream, egress)).or_default();
                    if body.len() + bytes.len() > MAX_HELD_BODY {
                        // Too long to be one DNS message: nothing of it is kept.
                        held.remove(&(stream, egress));
                        held.remove(&(stream, !egress));
                        streams.insert(stream, Class::UnknownLong);
                        if end_stream {
                            unknown_body_ends(out, streams, stream, egress, &[]);
                        }
                        return;
                    }
                    body.extend_from_slice(bytes);
                    if held.values().map(Vec::len).sum::<usize>() > MAX_HELD_TOTAL {
                        over = true;
                        return;
                    }
                    if end_stream {
                        let body = held.remove(&(stream, egress)).unwrap_or_default();
                        // A body that is not DNS ends empty, as the decoder then judges it.
                        let dns = Message::from_vec(&body).is_ok();
                        unknown_body_ends(
                            out,
                            streams,
                            stream,
                            egress,
                            if dns { &body } else { &[] },
                        );
                    }
                }
                Some(Class::UnknownLong) if end_stream => {
                    unknown_body_ends(out, streams, stream, egress, &[]);
                }
                Some(_) | None => {
                    if !egress && end_stream {
                        streams.remove(&stream);
                    }
                }
            },
            H2Event::RstStream { stream, code } => {
                held.remove(&(stream, true));
                held.remove(&(stream, false));
                if let Some(c) = streams.remove(&stream) {
                    if c != Class::Other {
                        // A DoH stream's, or one whose headers are unknown.
                        h2_frames::rst_stream(out, stream, code);
                    }
                }
            }
            H2Event::GoAway { last_stream, code } => {
                h2_frames::goaway(out, last_stream, code);
            }
        });
        match (r, over) {
            (Ok(()), false) => Ok(()),
            _ => Err(Unkeepable),
        }
    }
}

/// A mid-stream body's end: `body` (a DNS message, or nothing) with END_STREAM.
fn unknown_body_ends(
    out: &mut Vec<u8>,
    streams: &mut HashMap<u32, Class>,
    stream: u32,
    egress: bool,
    body: &[u8],
) {
    h2_frames::data(out, stream, body, true);
    if !egress {
        streams.remove(&stream);
    }
}

/// A DoH stream's HEADERS, with only the fields the DoH decoder reads.
fn headers(out: &mut Vec<u8>, stream: u32, fields: &HeaderFields, end_stream: bool) {
    h2_frames::headers(out, stream, &h2_frames::header_block(fields), end_stream);
}
