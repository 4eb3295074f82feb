//! Capture decisions reach the kernel once per pass over the ring buffer, keyed by process and
//! descriptor. A socket can close, and a new socket take its descriptor, within one pass: a
//! decision made for the old socket must not become the new one's (the kernel forgot the old
//! socket's state at its close). Here the old socket carried a web request (to be skipped)
//! and the new one carries classic DNS over TCP (to be copied whole).

mod support;

use doh_trace::source::{ConnId, ConnInfo, Event, SocketType};
use doh_trace_common::{Source, CAPTURE_SOCK_FULL, CAPTURE_SOCK_SKIP};
use hickory_proto::rr::RecordType;
use support::{dns::query, hostile::*, pipeline};

fn socket(fd: i32) -> Side {
    Side {
        pid: PID,
        fd,
        source: Source::Socket,
    }
}

fn connect(p: &mut doh_trace::pipeline::Pipeline, w: &mut Wire, s: Side, peer: &str) {
    w.ts += 1000;
    p.handle_event(Event::Conn(ConnInfo {
        meta: w.meta(s),
        id: ConnId::Fd(s.fd),
        accepted: false,
        sock_type: SocketType::Stream,
        peer: peer.parse().unwrap(),
        comm: *b"client\0\0\0\0\0\0\0\0\0\0",
    }));
}

/// A close within the same pass (`Wire::close` would end the pass first).
fn close(p: &mut doh_trace::pipeline::Pipeline, w: &mut Wire, s: Side) {
    w.ts += 1000;
    p.handle_event(Event::Close {
        meta: w.meta(s),
        id: ConnId::Fd(s.fd),
    });
}

#[test]
fn a_decision_for_a_socket_gone_within_the_pass_is_not_its_descriptors_next_sockets() {
    let mut p = pipeline();
    let mut w = Wire::new();
    let s = socket(5);
    connect(&mut p, &mut w, s, "127.0.0.1:80");
    w.send(
        &mut p,
        s,
        E,
        b"GET /index.html HTTP/1.1\r\nHost: example.test\r\n\r\n",
    );
    // Decided (skip), but not yet applied: the pass goes on.
    close(&mut p, &mut w, s);
    connect(&mut p, &mut w, s, "127.0.0.1:53");
    // The pass ends before the new socket said anything: nothing may reach the kernel for
    // descriptor 5 (a skip would hide every byte of the new socket).
    assert_eq!(decided(&p.drain_decisions().collect::<Vec<_>>()), vec![]);
    let q = query("www.doh.test", RecordType::A, 9);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend(&q);
    w.send(&mut p, s, E, &framed);
    let decisions = decided(&p.drain_decisions().collect::<Vec<_>>());
    assert_eq!(decisions, vec![(5, CAPTURE_SOCK_FULL)]);
}

#[test]
fn a_decision_made_before_a_pass_ends_is_kept_while_its_socket_is_open() {
    let mut p = pipeline();
    let mut w = Wire::new();
    let s = socket(6);
    connect(&mut p, &mut w, s, "127.0.0.1:80");
    w.send(
        &mut p,
        s,
        E,
        b"GET /index.html HTTP/1.1\r\nHost: example.test\r\n\r\n",
    );
    // Another socket's close does not touch it.
    close(&mut p, &mut w, socket(7));
    let decisions = decided(&p.drain_decisions().collect::<Vec<_>>());
    assert_eq!(decisions, vec![(6, CAPTURE_SOCK_SKIP)]);
}
