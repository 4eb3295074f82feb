//! The whole userspace pipeline on one connection: sniffing, HTTP/2, DoH extraction, DNS.
//! Input: a sequence of [direction+length byte][bytes] calls, after a valid preface half the time.
#![no_main]
use doh_trace::{
    clock::Clock,
    pipeline::Pipeline,
    process::NoProcessInfo,
    source::{ConnId, DataChunk, Direction, Event, Layer, Meta},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut p = Pipeline::new(Box::new(NoProcessInfo), Clock::with_offset(0));
    let mut calls: Vec<(Direction, Vec<u8>)> = Vec::new();
    if data.first().is_some_and(|b| b & 0x80 != 0) {
        calls.push((Direction::Egress, doh_trace::proto::http2::PREFACE.to_vec()));
    }
    let mut rest = data.get(1..).unwrap_or(&[]);
    while let Some((&h, tail)) = rest.split_first() {
        let len = usize::from(h & 0x7f).min(tail.len());
        let dir = if h & 0x80 != 0 { Direction::Ingress } else { Direction::Egress };
        calls.push((dir, tail[..len].to_vec()));
        rest = &tail[len..];
    }
    for (i, (dir, bytes)) in calls.iter().enumerate() {
        p.handle_event(Event::Data(DataChunk {
            meta: Meta { pid: 1, tid: 1, uid: 0, ts_ns: i as u64 },
            id: ConnId::Fd(3),
            layer: Layer::Tls,
            library: Some("openssl"),
            direction: *dir,
            total_len: bytes.len() as u32,
            offset: 0,
            comm: [0; 16],
            bytes,
        }));
        let _ = p.drain_lookups().count();
    }
    p.handle_event(Event::Close { meta: Meta { pid: 1, tid: 1, uid: 0, ts_ns: u64::MAX }, id: ConnId::Fd(3) });
    let _ = p.drain_lookups().count();
});
