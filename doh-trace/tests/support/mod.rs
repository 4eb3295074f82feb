//! Test support, one module per kind: DNS messages ([`dns`]); HTTP/2 frames and HPACK blocks,
//! crafted byte by byte or re-framed ([`frames`]); the one in-memory `h2` runner
//! ([`h2_runner`]); HTTP/1.1 and HTTP/2 bytes as real clients and servers send them
//! ([`clients`]); the one way of stating an expected lookup ([`expect`]); the HTTP/2 shape
//! checks ([`shapes`]); kernel-scripted connections ([`kernel`]); and the hostile-input harness
//! ([`hostile`]). Here: recorded calls, and feeding them to a pipeline as kernel data events.
#![allow(
    dead_code,
    reason = "each test binary uses its own part of the shared support module"
)]

pub mod clients;
pub mod dns;
pub mod expect;
pub mod frames;
pub mod h2_runner;
pub mod hostile;
pub mod kernel;
pub mod shapes;

use doh_trace::{
    clock::Clock,
    pipeline::Pipeline,
    process::NoProcessInfo,
    source::{ConnId, DataChunk, Direction, Event, Layer, Meta},
};
use doh_trace_common::Source;

#[allow(
    unused_imports,
    reason = "the names most test files use; each uses its own part"
)]
pub use {
    dns::{answer, query},
    expect::{summary, Expect},
    h2_runner::{exchange, Req},
};

/// One I/O call as the traced process made it.
#[derive(Debug, Clone)]
pub struct Call {
    pub dir: Direction,
    pub bytes: Vec<u8>,
}

/// The connection layer a hook family's bytes belong to.
pub fn layer_of(source: Source) -> Layer {
    if source.is_tls() {
        Layer::Tls
    } else {
        Layer::Socket
    }
}

/// Feeds recorded calls to a pipeline as kernel data events of process `pid` on `fd`,
/// re-sliced into calls of at most `slice` bytes (TLS call boundaries are arbitrary).
pub fn feed(p: &mut Pipeline, calls: &[Call], pid: u32, fd: i32, slice: usize) {
    let mut ts = 1_000_000u64;
    for call in calls {
        for piece in call.bytes.chunks(slice) {
            ts += 1000;
            p.handle_event(Event::Data(DataChunk {
                meta: Meta {
                    pid,
                    tid: pid + 1,
                    uid: 1000,
                    ts_ns: ts,
                },
                id: ConnId::Fd(fd),
                layer: Layer::Tls,
                library: Source::OpenSsl.library(),
                direction: call.dir,
                total_len: piece.len() as u32,
                offset: 0,
                comm: *b"client\0\0\0\0\0\0\0\0\0\0",
                bytes: piece,
            }));
        }
    }
}

/// Feeds each call whole as one kernel data event (pid 1, fd 3), except call `lossy`, which
/// arrives only from its middle on, as when its first chunks were lost in the ring buffer.
pub fn feed_losing_first_half_of(p: &mut Pipeline, calls: &[Call], lossy: usize) {
    for (i, call) in calls.iter().enumerate() {
        let cut = if i == lossy { call.bytes.len() / 2 } else { 0 };
        p.handle_event(Event::Data(DataChunk {
            meta: Meta {
                pid: 1,
                tid: 1,
                uid: 0,
                ts_ns: i as u64,
            },
            id: ConnId::Fd(3),
            layer: Layer::Tls,
            library: Source::OpenSsl.library(),
            direction: call.dir,
            total_len: call.bytes.len() as u32,
            offset: cut as u32,
            comm: [0; 16],
            bytes: &call.bytes[cut..],
        }));
    }
}

/// A pipeline with no /proc behind it.
pub fn pipeline() -> Pipeline {
    Pipeline::new(Box::new(NoProcessInfo), Clock::with_offset(0))
}
