//! The whole userspace pipeline — sniffing, HTTP/2, HTTP/1.1, DoH extraction, DNS, the memory
//! budget — driven by a program of events on two processes' four descriptors: data on either
//! layer (TLS plaintext or the socket's own bytes) in either direction, datagrams, connects
//! (to DoH, DoT and DNS ports), closes, exits and the passing of time (timeouts). The budget
//! is set small (16 KiB) so connections are dropped over it; after every event what the
//! decoders hold stays within it.
//!
//! Input: byte 0 (bit 7: an HTTP/2 preface opens fd 0's TLS layer first), then operations of
//! one byte `[op:3][pid:1][fd:2][dir:1][layer:1]`, data and datagram operations followed by a
//! length byte and that many bytes.
#![no_main]
use doh_trace::{
    clock::Clock,
    pipeline::Pipeline,
    process::NoProcessInfo,
    source::{ConnId, ConnInfo, DataChunk, Datagram, Direction, Event, Layer, Meta, SocketType},
};
use libfuzzer_sys::fuzz_target;

const BUDGET: usize = 16 * 1024;
const PEERS: [&str; 4] = ["127.0.0.1:443", "127.0.0.1:853", "127.0.0.1:53", "[::1]:8443"];

fuzz_target!(|data: &[u8]| {
    let mut p = Pipeline::new(Box::new(NoProcessInfo), Clock::with_offset(0));
    p.set_memory_budget(BUDGET);
    let mut ts: u64 = 1_000_000_000;
    let meta = |pid: u32, ts: u64| Meta {
        pid,
        tid: pid,
        uid: 1000,
        ts_ns: ts,
    };
    if data.first().is_some_and(|b| b & 0x80 != 0) {
        p.handle_event(Event::Data(DataChunk {
            meta: meta(1, ts),
            id: ConnId::Fd(0),
            layer: Layer::Tls,
            library: Some("openssl"),
            direction: Direction::Egress,
            total_len: 24,
            offset: 0,
            comm: [0; 16],
            bytes: &doh_trace::proto::http2::PREFACE[..],
        }));
    }
    let mut rest = data.get(1..).unwrap_or(&[]);
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        ts += 1_000;
        let pid = 1 + u32::from(op >> 4 & 1);
        let fd = i32::from(op >> 2 & 3);
        let direction = if op & 2 != 0 {
            Direction::Ingress
        } else {
            Direction::Egress
        };
        let tls = op & 1 != 0;
        let peer = PEERS[usize::from(op >> 2 & 3)].parse().unwrap();
        let take = |rest: &mut &[u8]| -> Vec<u8> {
            let Some((&len, tail)) = rest.split_first() else {
                return Vec::new();
            };
            let len = usize::from(len).min(tail.len());
            let (bytes, after) = tail.split_at(len);
            *rest = after;
            bytes.to_vec()
        };
        match op >> 5 {
            0..=3 => {
                let bytes = take(&mut rest);
                // Sometimes one chunk of a longer call (a gap follows).
                let total_len = bytes.len() as u32 + u32::from(op >> 5 == 3) * 100;
                p.handle_event(Event::Data(DataChunk {
                    meta: meta(pid, ts),
                    id: ConnId::Fd(fd),
                    layer: if tls { Layer::Tls } else { Layer::Socket },
                    library: tls.then_some("openssl"),
                    direction,
                    total_len,
                    offset: 0,
                    comm: [0; 16],
                    bytes: &bytes,
                }));
            }
            4 => {
                let bytes = take(&mut rest);
                p.handle_event(Event::Datagram(Datagram {
                    meta: meta(pid, ts),
                    id: ConnId::Fd(fd),
                    direction,
                    peer,
                    total_len: bytes.len() as u32,
                    comm: [0; 16],
                    bytes: &bytes,
                }));
            }
            5 => p.handle_event(Event::Conn(ConnInfo {
                meta: meta(pid, ts),
                id: ConnId::Fd(fd),
                accepted: op & 2 != 0,
                sock_type: if tls {
                    SocketType::Datagram
                } else {
                    SocketType::Stream
                },
                peer,
                comm: [0; 16],
            })),
            6 => p.handle_event(Event::Close {
                meta: meta(pid, ts),
                id: ConnId::Fd(fd),
            }),
            _ => {
                if tls {
                    p.handle_event(Event::Exit { meta: meta(pid, ts) });
                } else {
                    // Past every timeout.
                    ts += 40_000_000_000;
                    p.tick(ts);
                }
            }
        }
        assert!(
            p.memory_held() <= BUDGET,
            "{} held over a budget of {BUDGET}",
            p.memory_held()
        );
        let _ = p.drain_records();
        let _ = p.drain_decisions().count();
    }
    for pid in [1, 2] {
        p.handle_event(Event::Exit {
            meta: meta(pid, u64::MAX),
        });
    }
    let _ = p.drain_records();
});
