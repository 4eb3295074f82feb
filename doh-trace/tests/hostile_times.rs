//! Times from a hostile recording (any u64, going backwards, near u64::MAX) through the
//! pipeline in a debug build, where an overflowing `+` or `-` panics: timeouts (time +
//! duration), latencies (answer − query), relay windows (upstream − client query), connection
//! lifetimes and idle times (close − open, close − last data), the tick deadline, and the byte
//! totals of an opaque connection (the kernel's count + the bytes copied before it counted).
//! Every lookup comes out with a finite, non-negative latency, and nothing panics.

mod support;

use doh_trace::{
    lookup::Lookup,
    pipeline::Pipeline,
    source::{ConnId, ConnInfo, DataChunk, Datagram, Direction, Event, Layer, Meta, SocketType},
};
use doh_trace_common::{Source, COMM_LEN};
use hickory_proto::rr::RecordType;
use support::{answer, pipeline, query};

fn meta(pid: u32, ts_ns: u64) -> Meta {
    Meta {
        pid,
        tid: pid,
        uid: 0,
        ts_ns,
    }
}

fn comm() -> [u8; COMM_LEN] {
    let mut c = [0u8; COMM_LEN];
    c[..3].copy_from_slice(b"dig");
    c
}

fn datagram(p: &mut Pipeline, pid: u32, ts: u64, dir: Direction, peer: &str, bytes: &[u8]) {
    p.handle_event(Event::Datagram(Datagram {
        meta: meta(pid, ts),
        id: ConnId::Fd(3),
        direction: dir,
        peer: peer.parse().unwrap(),
        total_len: bytes.len() as u32,
        comm: comm(),
        bytes,
    }));
}

fn stream(p: &mut Pipeline, pid: u32, ts: u64, dir: Direction, bytes: &[u8]) {
    p.handle_event(Event::Data(DataChunk {
        meta: meta(pid, ts),
        id: ConnId::Fd(4),
        layer: Layer::Socket,
        library: Source::Socket.library(),
        direction: dir,
        total_len: bytes.len() as u32,
        offset: 0,
        comm: comm(),
        bytes,
    }));
}

fn framed(m: &[u8]) -> Vec<u8> {
    [&(m.len() as u16).to_be_bytes()[..], m].concat()
}

fn sane(lookups: &[Lookup]) {
    for l in lookups {
        if let Some(ms) = l.latency_ms {
            assert!(ms.is_finite() && ms >= 0.0, "{l:#?}");
        }
    }
}

#[test]
fn times_anywhere_in_u64_never_overflow() {
    let times: [(u64, u64); 6] = [
        (1_000, 0),                     // the answer before the query
        (u64::MAX, 0),                  // from the end of time back to its start
        (0, u64::MAX),                  // the longest latency there is
        (u64::MAX - 1, u64::MAX),       // at the end of time
        (i64::MAX as u64, u64::MAX),    // past the clamp of capture times
        (5_000_000_000, 4_999_999_999), // a nanosecond backwards
    ];
    for (n, &(sent, answered)) in times.iter().enumerate() {
        let mut p = pipeline();
        let pid = 10 + n as u32;
        // UDP to a local stub, which asks upstream over TCP at another time.
        let q = query("t.doh.test.", RecordType::A, 0x1000 + n as u16);
        datagram(&mut p, pid, sent, Direction::Egress, "127.0.0.53:53", &q);
        p.handle_event(Event::Conn(ConnInfo {
            meta: meta(99, answered),
            id: ConnId::Fd(4),
            accepted: false,
            sock_type: SocketType::Stream,
            peer: "192.0.2.53:53".parse().unwrap(),
            comm: comm(),
        }));
        let up = query("t.doh.test.", RecordType::A, 0x2000 + n as u16);
        stream(&mut p, 99, answered, Direction::Egress, &framed(&up));
        stream(&mut p, 99, sent, Direction::Ingress, &framed(&answer(&up)));
        datagram(
            &mut p,
            pid,
            answered,
            Direction::Ingress,
            "127.0.0.53:53",
            &answer(&q),
        );
        // A query never answered, then time jumps both ways.
        let lost = query("lost.doh.test.", RecordType::A, 0x3000);
        datagram(&mut p, pid, sent, Direction::Egress, "127.0.0.53:53", &lost);
        for now in [answered, sent, u64::MAX, 0, u64::MAX] {
            p.tick(now);
        }
        p.handle_event(Event::Close {
            meta: meta(99, 0),
            id: ConnId::Fd(4),
        });
        p.handle_event(Event::Exit {
            meta: meta(pid, sent.wrapping_sub(1)),
        });
        let got: Vec<Lookup> = p.drain_lookups().map(|l| *l).collect();
        sane(&got);
        assert!(got.len() >= 2, "{sent} → {answered}: {got:#?}");
        let conns: Vec<_> = p.drain_connections().collect();
        for c in conns {
            assert!(c.lifetime_ms.is_finite() && c.lifetime_ms >= 0.0, "{c:?}");
            assert!(c.idle_ms.is_finite() && c.idle_ms >= 0.0, "{c:?}");
        }
    }
}

/// An opaque DoH connection whose byte totals (a `ConnBytes` record: the kernel's count, any
/// u64 in a recording) are added to the bytes copied before counting began. This overflowed
/// (`attempt to add with overflow` in report.rs) before the sum saturated.
#[test]
fn opaque_byte_totals_near_u64_max_saturate() {
    let hello = include_bytes!("fixtures/client_hello/gnutls_kdig_https.bin");
    let mut p = pipeline();
    p.handle_event(Event::Conn(ConnInfo {
        meta: meta(70, 1_000),
        id: ConnId::Fd(4),
        accepted: false,
        sock_type: SocketType::Stream,
        peer: "1.1.1.1:443".parse().unwrap(),
        comm: comm(),
    }));
    stream(&mut p, 70, 2_000, Direction::Egress, hello);
    p.handle_event(Event::ConnBytes {
        meta: meta(70, 3_000),
        id: ConnId::Fd(4),
        sent: u64::MAX,
        received: u64::MAX - 1,
    });
    p.handle_event(Event::Close {
        meta: meta(70, 4_000),
        id: ConnId::Fd(4),
    });
    let got: Vec<Lookup> = p.drain_lookups().map(|l| *l).collect();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].transport, "doh-opaque");
    assert_eq!(got[0].bytes_sent, Some(u64::MAX));
    assert_eq!(got[0].bytes_received, Some(u64::MAX - 1));
}
