//! HTTP/2 shapes for the decoder tests, made three ways:
//!
//! - crafted byte by byte: frame builders (RFC 9113 §4.1, §6) and header blocks encoded without
//!   Huffman, by hand or with `loona_hpack::Encoder`;
//! - malformed on purpose: a frame head alone ([`raw_head`]), with any length, type and
//!   stream bits, to put in front of whatever bytes a test wants;
//! - re-framed: an exchange recorded by [`super::h2_runner`] split into frames per direction,
//!   each frame rewritten (flags added, blocks split into CONTINUATIONs, frames inserted) and
//!   put back into calls at the point where the original frame was complete, so causality
//!   between the directions is kept.
//!
//! A structural HPACK walker ([`hpack_walk`]) finds where each field and string of a block lies
//! (and whether the string is Huffman-coded), so that blocks can be split at chosen places.

use doh_trace::source::Direction;

use super::Call;

// ===== frame types and flags =====

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PUSH_PROMISE: u8 = 0x5;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY_FLAG: u8 = 0x20;

pub const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
pub const SETTINGS_ENABLE_PUSH: u16 = 0x2;
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;

/// RST_STREAM / GOAWAY error codes used by the tests.
pub const NO_ERROR: u32 = 0x0;
pub const INTERNAL_ERROR: u32 = 0x2;
pub const REFUSED_STREAM: u32 = 0x7;
pub const CANCEL: u32 = 0x8;

/// The client connection preface.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One frame: type, flags, stream and the whole payload (padding and priority fields included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn new(kind: u8, flags: u8, stream: u32, payload: Vec<u8>) -> Frame {
        Frame {
            kind,
            flags,
            stream,
            payload,
        }
    }

    /// The 9-byte head followed by the payload.
    pub fn encode(&self) -> Vec<u8> {
        let len = self.payload.len();
        assert!(len < 1 << 24, "frame payload of {len} bytes");
        let mut out = Vec::with_capacity(9 + len);
        out.extend_from_slice(&raw_head(
            len as u32,
            self.kind,
            self.flags,
            self.stream & 0x7fff_ffff,
        ));
        out.extend_from_slice(&self.payload);
        out
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// HEADERS, PUSH_PROMISE or CONTINUATION without END_HEADERS: only a CONTINUATION of the
    /// same stream may follow (RFC 9113 §6.10).
    pub fn opens_header_block(&self) -> bool {
        matches!(self.kind, HEADERS | PUSH_PROMISE | CONTINUATION) && !self.has(END_HEADERS)
    }

    /// The header block fragment of a HEADERS, PUSH_PROMISE or CONTINUATION frame, without
    /// pad length, priority fields, promised stream id and padding.
    pub fn fragment(&self) -> &[u8] {
        let mut p = &self.payload[..];
        let mut pad = 0;
        if matches!(self.kind, HEADERS | PUSH_PROMISE) && self.has(PADDED) {
            pad = p[0] as usize;
            p = &p[1..];
        }
        if self.kind == HEADERS && self.has(PRIORITY_FLAG) {
            p = &p[5..];
        }
        if self.kind == PUSH_PROMISE {
            p = &p[4..];
        }
        &p[..p.len() - pad]
    }

    /// The data of a DATA frame without pad length and padding.
    pub fn data(&self) -> &[u8] {
        assert_eq!(self.kind, DATA);
        if self.has(PADDED) {
            let pad = self.payload[0] as usize;
            &self.payload[1..self.payload.len() - pad]
        } else {
            &self.payload
        }
    }
}

/// The frames one after the other.
pub fn encode_all(frames: &[Frame]) -> Vec<u8> {
    frames.iter().flat_map(Frame::encode).collect()
}

/// A frame head alone: the low 24 bits of `len`, and `stream` with its reserved bit as given,
/// whatever follows it.
pub fn raw_head(len: u32, kind: u8, flags: u8, stream: u32) -> [u8; 9] {
    let l = len.to_be_bytes();
    let s = stream.to_be_bytes();
    [l[1], l[2], l[3], kind, flags, s[0], s[1], s[2], s[3]]
}

// ===== frame builders =====

/// The client's first write: the preface and its SETTINGS.
pub fn client_start(params: &[(u16, u32)]) -> Vec<u8> {
    let mut b = PREFACE.to_vec();
    b.extend(settings(params).encode());
    b
}

/// The server's first write: its SETTINGS and the ACK of the client's.
pub fn server_start(params: &[(u16, u32)]) -> Vec<u8> {
    encode_all(&[settings(params), settings_ack()])
}

pub fn settings(params: &[(u16, u32)]) -> Frame {
    let mut p = Vec::new();
    for &(id, value) in params {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&value.to_be_bytes());
    }
    Frame::new(SETTINGS, 0, 0, p)
}

pub fn settings_ack() -> Frame {
    Frame::new(SETTINGS, ACK, 0, Vec::new())
}

pub fn ping(opaque: [u8; 8], ack: bool) -> Frame {
    Frame::new(PING, if ack { ACK } else { 0 }, 0, opaque.to_vec())
}

pub fn window_update(stream: u32, increment: u32) -> Frame {
    Frame::new(WINDOW_UPDATE, 0, stream, increment.to_be_bytes().to_vec())
}

/// A PRIORITY frame (type 0x2), as Firefox sent for its dependency-tree "group" streams.
pub fn priority_frame(stream: u32, dep: u32, exclusive: bool, weight: u8) -> Frame {
    Frame::new(
        PRIORITY,
        0,
        stream,
        priority_fields(dep, exclusive, weight).to_vec(),
    )
}

pub fn rst_stream(stream: u32, code: u32) -> Frame {
    Frame::new(RST_STREAM, 0, stream, code.to_be_bytes().to_vec())
}

pub fn goaway(last_stream: u32, code: u32, debug: &[u8]) -> Frame {
    let mut p = last_stream.to_be_bytes().to_vec();
    p.extend_from_slice(&code.to_be_bytes());
    p.extend_from_slice(debug);
    Frame::new(GOAWAY, 0, 0, p)
}

pub fn unknown(kind: u8, flags: u8, stream: u32, payload: Vec<u8>) -> Frame {
    Frame::new(kind, flags, stream, payload)
}

pub fn data(stream: u32, bytes: &[u8], end_stream: bool) -> Frame {
    Frame::new(
        DATA,
        if end_stream { END_STREAM } else { 0 },
        stream,
        bytes.to_vec(),
    )
}

/// A PADDED DATA frame with `pad` zero octets of padding.
pub fn data_padded(stream: u32, bytes: &[u8], pad: u8, end_stream: bool) -> Frame {
    let mut p = vec![pad];
    p.extend_from_slice(bytes);
    p.resize(p.len() + pad as usize, 0);
    Frame::new(
        DATA,
        PADDED | if end_stream { END_STREAM } else { 0 },
        stream,
        p,
    )
}

/// HEADERS priority fields: exclusive bit + stream dependency, then weight (RFC 9113 §6.2).
pub fn priority_fields(dep: u32, exclusive: bool, weight: u8) -> [u8; 5] {
    let d = (dep & 0x7fff_ffff) | if exclusive { 0x8000_0000 } else { 0 };
    let b = d.to_be_bytes();
    [b[0], b[1], b[2], b[3], weight]
}

/// Options of the first frame of a header block.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeadersOpts {
    pub end_stream: bool,
    /// PADDED with this many octets of padding.
    pub pad: Option<u8>,
    /// PRIORITY with (dependency, exclusive, weight).
    pub priority: Option<(u32, bool, u8)>,
}

/// Splits `block` at `cuts` (offsets into the block, ascending, may repeat or be 0 / len for
/// empty fragments): the first fragment goes in a HEADERS frame, the others in CONTINUATION
/// frames, END_HEADERS on the last.
pub fn header_frames(stream: u32, block: &[u8], cuts: &[usize], opts: HeadersOpts) -> Vec<Frame> {
    let frags = split_at_cuts(block, cuts);
    let last = frags.len() - 1;
    let mut out = Vec::new();
    for (i, frag) in frags.into_iter().enumerate() {
        let end_headers = if i == last { END_HEADERS } else { 0 };
        if i == 0 {
            let mut flags = end_headers;
            let mut p = Vec::new();
            if opts.end_stream {
                flags |= END_STREAM;
            }
            if let Some(pad) = opts.pad {
                flags |= PADDED;
                p.push(pad);
            }
            if let Some((dep, excl, weight)) = opts.priority {
                flags |= PRIORITY_FLAG;
                p.extend_from_slice(&priority_fields(dep, excl, weight));
            }
            p.extend_from_slice(frag);
            p.resize(p.len() + opts.pad.unwrap_or(0) as usize, 0);
            out.push(Frame::new(HEADERS, flags, stream, p));
        } else {
            out.push(Frame::new(CONTINUATION, end_headers, stream, frag.to_vec()));
        }
    }
    out
}

/// A PUSH_PROMISE on `stream` promising `promised`, its block split like [`header_frames`].
pub fn push_promise_frames(
    stream: u32,
    promised: u32,
    block: &[u8],
    cuts: &[usize],
    pad: Option<u8>,
) -> Vec<Frame> {
    let frags = split_at_cuts(block, cuts);
    let last = frags.len() - 1;
    let mut out = Vec::new();
    for (i, frag) in frags.into_iter().enumerate() {
        let end_headers = if i == last { END_HEADERS } else { 0 };
        if i == 0 {
            let mut flags = end_headers;
            let mut p = Vec::new();
            if let Some(pad) = pad {
                flags |= PADDED;
                p.push(pad);
            }
            p.extend_from_slice(&(promised & 0x7fff_ffff).to_be_bytes());
            p.extend_from_slice(frag);
            p.resize(p.len() + pad.unwrap_or(0) as usize, 0);
            out.push(Frame::new(PUSH_PROMISE, flags, stream, p));
        } else {
            out.push(Frame::new(CONTINUATION, end_headers, stream, frag.to_vec()));
        }
    }
    out
}

/// A whole message: HEADERS (END_HEADERS) with `block`, then one DATA frame with `body` and
/// END_STREAM.
pub fn message_frames(stream: u32, block: &[u8], body: &[u8]) -> Vec<Frame> {
    let mut f = header_frames(stream, block, &[], HeadersOpts::default());
    f.push(data(stream, body, true));
    f
}

fn split_at_cuts<'a>(block: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut frags = Vec::new();
    let mut at = 0;
    for &c in cuts {
        assert!(
            c >= at && c <= block.len(),
            "cut {c} after {at} in {}",
            block.len()
        );
        frags.push(&block[at..c]);
        at = c;
    }
    frags.push(&block[at..]);
    frags
}

// ===== parsing recorded bytes =====

/// A frame and where it starts and ends in its direction's byte stream (egress offsets count
/// the preface).
#[derive(Debug, Clone)]
pub struct Located {
    pub frame: Frame,
    pub start: usize,
    pub end: usize,
}

/// All bytes of one direction, calls concatenated.
pub fn direction_bytes(calls: &[Call], dir: Direction) -> Vec<u8> {
    calls
        .iter()
        .filter(|c| c.dir == dir)
        .flat_map(|c| c.bytes.iter().copied())
        .collect()
}

/// Every complete frame of one direction, located.
pub fn located_frames(calls: &[Call], dir: Direction) -> Vec<Located> {
    let bytes = direction_bytes(calls, dir);
    let mut at = if dir == Direction::Egress {
        assert_eq!(&bytes[..24], PREFACE, "egress starts with the preface");
        24
    } else {
        0
    };
    let mut out = Vec::new();
    while bytes.len() - at >= 9 {
        let len = u32::from_be_bytes([0, bytes[at], bytes[at + 1], bytes[at + 2]]) as usize;
        if bytes.len() - at - 9 < len {
            break;
        }
        let frame = Frame::new(
            bytes[at + 3],
            bytes[at + 4],
            u32::from_be_bytes(bytes[at + 5..at + 9].try_into().unwrap()) & 0x7fff_ffff,
            bytes[at + 9..at + 9 + len].to_vec(),
        );
        out.push(Located {
            frame,
            start: at,
            end: at + 9 + len,
        });
        at += 9 + len;
    }
    out
}

/// Every complete frame of one direction.
pub fn frames_of(calls: &[Call], dir: Direction) -> Vec<Frame> {
    located_frames(calls, dir)
        .into_iter()
        .map(|l| l.frame)
        .collect()
}

/// The header blocks of one direction, reassembled: (stream, frame kind that opened it, block).
pub fn header_blocks(calls: &[Call], dir: Direction) -> Vec<(u32, u8, Vec<u8>)> {
    let mut out: Vec<(u32, u8, Vec<u8>)> = Vec::new();
    let mut open = false;
    for f in frames_of(calls, dir) {
        match f.kind {
            HEADERS | PUSH_PROMISE => {
                out.push((f.stream, f.kind, f.fragment().to_vec()));
                open = !f.has(END_HEADERS);
            }
            CONTINUATION => {
                assert!(open, "CONTINUATION without an open block");
                out.last_mut().unwrap().2.extend_from_slice(f.fragment());
                open = !f.has(END_HEADERS);
            }
            _ => {}
        }
    }
    out
}

/// Rewrites a recorded exchange frame by frame. `f` maps each frame of each direction to the
/// frames to send instead; they are emitted in a call at the point where the original frame
/// was complete. The egress preface is kept as it is.
pub fn reframe(calls: &[Call], mut f: impl FnMut(Direction, Frame) -> Vec<Frame>) -> Vec<Call> {
    let mut pending_out: Vec<u8> = Vec::new();
    let mut pending_in: Vec<u8> = Vec::new();
    let mut preface_left = PREFACE.len();
    let mut out = Vec::new();
    for call in calls {
        let buf = match call.dir {
            Direction::Egress => &mut pending_out,
            Direction::Ingress => &mut pending_in,
        };
        buf.extend_from_slice(&call.bytes);
        let mut bytes = Vec::new();
        if call.dir == Direction::Egress && preface_left > 0 {
            let n = preface_left.min(buf.len());
            bytes.extend(buf.drain(..n));
            preface_left -= n;
        }
        loop {
            if buf.len() < 9 {
                break;
            }
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            let frame = Frame::new(
                buf[3],
                buf[4],
                u32::from_be_bytes(buf[5..9].try_into().unwrap()) & 0x7fff_ffff,
                buf[9..9 + len].to_vec(),
            );
            buf.drain(..9 + len);
            for g in f(call.dir, frame) {
                bytes.extend_from_slice(&g.encode());
            }
        }
        if !bytes.is_empty() {
            out.push(Call {
                dir: call.dir,
                bytes,
            });
        }
    }
    assert!(
        pending_out.is_empty() && pending_in.is_empty(),
        "recording ends inside a frame"
    );
    out
}

/// Inserts `extra(dir, after)` after every frame of a recorded exchange, except inside header
/// blocks (where only CONTINUATION may follow).
pub fn interleave(
    calls: &[Call],
    mut extra: impl FnMut(Direction, &Frame) -> Vec<Frame>,
) -> Vec<Call> {
    reframe(calls, |dir, frame| {
        let mut v = Vec::new();
        let open = frame.opens_header_block();
        let more = if open { Vec::new() } else { extra(dir, &frame) };
        v.push(frame);
        v.extend(more);
        v
    })
}

/// The timestamp [`super::feed`] gives to the piece holding byte `offset` of direction `dir`
/// (offsets as in [`located_frames`]), when slicing calls into pieces of `slice` bytes.
pub fn feed_ts(calls: &[Call], slice: usize, dir: Direction, offset: usize) -> u64 {
    let mut ts = 1_000_000u64;
    let mut at = 0usize;
    for call in calls {
        for piece in call.bytes.chunks(slice) {
            ts += 1000;
            if call.dir == dir {
                if offset < at + piece.len() {
                    return ts;
                }
                at += piece.len();
            }
        }
    }
    panic!("offset {offset} beyond {dir:?} bytes");
}

// ===== crafted connections =====

/// A connection's calls, crafted call by call.
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub calls: Vec<Call>,
}

impl Script {
    /// The client's first write: the preface and its SETTINGS ([`client_start`]).
    pub fn client_preface(params: &[(u16, u32)]) -> Script {
        Script {
            calls: vec![Call {
                dir: Direction::Egress,
                bytes: client_start(params),
            }],
        }
    }

    /// One write call with these frames.
    pub fn send(&mut self, frames: &[Frame]) -> &mut Self {
        self.send_bytes(encode_all(frames))
    }

    /// One read call with these frames.
    pub fn recv(&mut self, frames: &[Frame]) -> &mut Self {
        self.recv_bytes(encode_all(frames))
    }

    pub fn send_bytes(&mut self, bytes: Vec<u8>) -> &mut Self {
        self.calls.push(Call {
            dir: Direction::Egress,
            bytes,
        });
        self
    }

    pub fn recv_bytes(&mut self, bytes: Vec<u8>) -> &mut Self {
        self.calls.push(Call {
            dir: Direction::Ingress,
            bytes,
        });
        self
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.clone()
    }
}

// ===== HPACK, without Huffman =====

/// An HPACK integer with an `prefix`-bit prefix under `high_bits` (RFC 7541 §5.1).
pub fn hp_int(value: usize, prefix: u8, high_bits: u8) -> Vec<u8> {
    let mut v = Vec::new();
    loona_hpack::encoder::encode_integer_into(value, prefix, high_bits, &mut v).unwrap();
    v
}

/// A string literal, not Huffman-coded (RFC 7541 §5.2, H = 0).
pub fn hp_str(s: &[u8]) -> Vec<u8> {
    let mut v = hp_int(s.len(), 7, 0);
    v.extend_from_slice(s);
    v
}

/// Indexed header field (§6.1).
pub fn hp_indexed(index: usize) -> Vec<u8> {
    hp_int(index, 7, 0x80)
}

/// Dynamic table size update (§6.3).
pub fn hp_size_update(size: usize) -> Vec<u8> {
    hp_int(size, 5, 0x20)
}

/// Literal with incremental indexing, indexed name (§6.2.1).
pub fn hp_incremental(name_index: usize, value: &[u8]) -> Vec<u8> {
    let mut v = hp_int(name_index, 6, 0x40);
    v.extend(hp_str(value));
    v
}

/// Literal with incremental indexing, new name (§6.2.1).
pub fn hp_incremental_new(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut v = vec![0x40];
    v.extend(hp_str(name));
    v.extend(hp_str(value));
    v
}

/// Literal without indexing, indexed name (§6.2.2).
pub fn hp_not_indexed(name_index: usize, value: &[u8]) -> Vec<u8> {
    let mut v = hp_int(name_index, 4, 0x00);
    v.extend(hp_str(value));
    v
}

/// Literal never indexed, new name (§6.2.3).
pub fn hp_never_indexed_new(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut v = vec![0x10];
    v.extend(hp_str(name));
    v.extend(hp_str(value));
    v
}

/// Static table indexes (RFC 7541 Appendix A) used by the tests.
pub mod st {
    pub const AUTHORITY: usize = 1;
    pub const METHOD_GET: usize = 2;
    pub const METHOD_POST: usize = 3;
    pub const PATH_ROOT: usize = 4;
    pub const SCHEME_HTTPS: usize = 7;
    pub const STATUS_200: usize = 8;
    pub const STATUS_400: usize = 12;
    pub const STATUS_404: usize = 13;
    pub const STATUS_500: usize = 14;
    pub const ACCEPT: usize = 19;
    pub const CACHE_CONTROL: usize = 24;
    pub const CONTENT_LENGTH: usize = 28;
    pub const CONTENT_TYPE: usize = 31;
    pub const SERVER: usize = 54;
    pub const USER_AGENT: usize = 58;
}

/// A DoH POST request block, never Huffman-coded, nothing indexed.
pub fn plain_post_block() -> Vec<u8> {
    [
        hp_indexed(st::METHOD_POST),
        hp_indexed(st::SCHEME_HTTPS),
        hp_not_indexed(st::PATH_ROOT, b"/dns-query"),
        hp_not_indexed(st::AUTHORITY, b"doh.test"),
        hp_not_indexed(st::CONTENT_TYPE, b"application/dns-message"),
    ]
    .concat()
}

/// A 200 DoH response block, never Huffman-coded, nothing indexed.
pub fn plain_response_block() -> Vec<u8> {
    [
        hp_indexed(st::STATUS_200),
        hp_not_indexed(st::CONTENT_TYPE, b"application/dns-message"),
    ]
    .concat()
}

/// Encodes fields with `loona_hpack::Encoder` (never Huffman; it indexes fields whose name is
/// in no table).
pub fn loona_block(enc: &mut loona_hpack::Encoder<'_>, fields: &[(&str, &str)]) -> Vec<u8> {
    enc.encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
}

/// Decodes a block with an independent decoder (loona-hpack with the given state), to check
/// that a crafted block is valid before the pipeline sees it.
pub fn decode_block(dec: &mut loona_hpack::Decoder<'_>, block: &[u8]) -> Vec<(String, String)> {
    dec.decode(block)
        .unwrap_or_else(|e| panic!("crafted block does not decode: {e:?}"))
        .into_iter()
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(&n).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect()
}

// ===== HPACK structure =====

/// A string literal inside a block: where its length integer starts, where its octets are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HpString {
    pub len_at: usize,
    pub start: usize,
    pub end: usize,
    pub huffman: bool,
}

/// One representation inside a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HpField {
    pub start: usize,
    pub end: usize,
    /// 'i' indexed, 'a' literal with incremental indexing, 'n' without indexing, 'v' never
    /// indexed, 's' size update.
    pub kind: char,
    /// Index of the name (or of the field for 'i', the size for 's'); 0 for a literal name.
    pub index: usize,
    pub strings: Vec<HpString>,
}

fn hp_read_int(block: &[u8], at: &mut usize, prefix: u8) -> usize {
    let mask = ((1u16 << prefix) - 1) as usize;
    let mut v = block[*at] as usize & mask;
    *at += 1;
    if v < mask {
        return v;
    }
    let mut shift = 0;
    loop {
        let b = block[*at];
        *at += 1;
        v += ((b & 0x7f) as usize) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return v;
        }
    }
}

fn hp_read_str(block: &[u8], at: &mut usize) -> HpString {
    let len_at = *at;
    let huffman = block[*at] & 0x80 != 0;
    let len = hp_read_int(block, at, 7);
    let s = HpString {
        len_at,
        start: *at,
        end: *at + len,
        huffman,
    };
    *at += len;
    s
}

/// Walks a block's representations without decoding any value.
pub fn hpack_walk(block: &[u8]) -> Vec<HpField> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < block.len() {
        let start = at;
        let b = block[at];
        let (kind, prefix) = if b & 0x80 != 0 {
            ('i', 7)
        } else if b & 0x40 != 0 {
            ('a', 6)
        } else if b & 0x20 != 0 {
            ('s', 5)
        } else if b & 0x10 != 0 {
            ('v', 4)
        } else {
            ('n', 4)
        };
        let index = hp_read_int(block, &mut at, prefix);
        let mut strings = Vec::new();
        if matches!(kind, 'a' | 'n' | 'v') {
            if index == 0 {
                strings.push(hp_read_str(block, &mut at));
            }
            strings.push(hp_read_str(block, &mut at));
        }
        out.push(HpField {
            start,
            end: at,
            kind,
            index,
            strings,
        });
    }
    out
}
