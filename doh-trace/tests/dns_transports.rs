//! Classic DNS (UDP, TCP), DoT, opaque connections and relayed lookups through the pipeline, from
//! kernel events as the eBPF side emits them, carrying DNS messages built by hickory-proto and a
//! real ClientHello (kdig/GnuTLS, tests/fixtures/client_hello).

mod support;

use std::net::SocketAddr;

use doh_trace::{
    lookup::{Lookup, Status},
    pipeline::Pipeline,
    source::{ConnId, ConnInfo, DataChunk, Datagram, Direction, Event, Meta, SocketType},
};
use doh_trace_common::{Source, CAPTURE_COUNT, CAPTURE_SOCK_FULL, CAPTURE_SOCK_SKIP, COMM_LEN};
use hickory_proto::rr::RecordType;
use support::{answer, pipeline, query};

/// Events of one process, with a clock that advances 1 ms per event.
struct Proc {
    pid: u32,
    comm: [u8; COMM_LEN],
    ts: u64,
}

impl Proc {
    fn new(pid: u32, name: &str) -> Proc {
        let mut comm = [0u8; COMM_LEN];
        comm[..name.len()].copy_from_slice(name.as_bytes());
        Proc {
            pid,
            comm,
            ts: 1_000_000_000,
        }
    }
    fn meta(&mut self) -> Meta {
        self.ts += 1_000_000;
        Meta {
            pid: self.pid,
            tid: self.pid,
            uid: 0,
            ts_ns: self.ts,
        }
    }
    fn connect(&mut self, p: &mut Pipeline, fd: i32, peer: &str, sock_type: SocketType) {
        let meta = self.meta();
        p.handle_event(Event::Conn(ConnInfo {
            meta,
            id: ConnId::Fd(fd),
            accepted: false,
            sock_type,
            peer: peer.parse().unwrap(),
            comm: self.comm,
        }));
    }
    /// One I/O call's bytes (a datagram on a UDP socket), cut into `slice`-byte chunks.
    fn io(&mut self, p: &mut Pipeline, fd: i32, source: Source, dir: Direction, bytes: &[u8]) {
        let meta = self.meta();
        p.handle_event(Event::Data(DataChunk {
            meta,
            id: ConnId::Fd(fd),
            layer: support::layer_of(source),
            library: source.library(),
            direction: dir,
            total_len: bytes.len() as u32,
            offset: 0,
            comm: self.comm,
            bytes,
        }));
    }
    /// A socket call of which the kernel copied only the first `copied` bytes: its copy
    /// budget ran out in it (the calls after it are then not seen at all).
    fn io_cut(&mut self, p: &mut Pipeline, fd: i32, dir: Direction, bytes: &[u8], copied: usize) {
        let meta = self.meta();
        p.handle_event(Event::Data(DataChunk {
            meta,
            id: ConnId::Fd(fd),
            layer: support::layer_of(Source::Socket),
            library: Source::Socket.library(),
            direction: dir,
            total_len: bytes.len() as u32,
            offset: 0,
            comm: self.comm,
            bytes: &bytes[..copied],
        }));
    }
    fn datagram(&mut self, p: &mut Pipeline, fd: i32, dir: Direction, peer: &str, bytes: &[u8]) {
        let meta = self.meta();
        p.handle_event(Event::Datagram(Datagram {
            meta,
            id: ConnId::Fd(fd),
            direction: dir,
            peer: peer.parse().unwrap(),
            total_len: bytes.len() as u32,
            comm: self.comm,
            bytes,
        }));
    }
    fn close(&mut self, p: &mut Pipeline, fd: i32) {
        let meta = self.meta();
        p.handle_event(Event::Close {
            meta,
            id: ConnId::Fd(fd),
        });
    }
}

fn framed(msgs: &[&[u8]]) -> Vec<u8> {
    msgs.iter()
        .flat_map(|m| [&(m.len() as u16).to_be_bytes()[..], m].concat())
        .collect()
}

fn lookups(p: &mut Pipeline) -> Vec<Lookup> {
    p.drain_lookups().map(|l| *l).collect()
}

fn server(l: &Lookup) -> SocketAddr {
    let s = l.server.as_ref().expect("server");
    SocketAddr::new(s.ip.parse().unwrap(), s.port)
}

#[test]
fn udp_queries_pair_by_id_and_question_and_retransmissions_count_once() {
    let mut p = pipeline();
    let mut dig = Proc::new(10, "dig");
    dig.connect(&mut p, 5, "192.0.2.53:53", SocketType::Datagram);
    let a = query("www.doh.test.", RecordType::A, 0x1111);
    let aaaa = query("www.doh.test.", RecordType::AAAA, 0x2222);
    for q in [&a, &aaaa, &a] {
        dig.io(&mut p, 5, Source::Socket, Direction::Egress, q);
    }
    // Answers out of order.
    dig.io(
        &mut p,
        5,
        Source::Socket,
        Direction::Ingress,
        &answer(&aaaa),
    );
    dig.io(&mut p, 5, Source::Socket, Direction::Ingress, &answer(&a));
    // Taken while the socket is open: a closed socket's decisions never reach the kernel.
    let decisions: Vec<_> = p.drain_decisions().collect();
    dig.close(&mut p, 5);
    let got = lookups(&mut p);
    assert_eq!(got.len(), 2, "{got:#?}");
    for (l, qtype, id, ans) in [
        (&got[0], "AAAA", 0x2222, "2001:db8::10"),
        (&got[1], "A", 0x1111, "192.0.2.10"),
    ] {
        assert_eq!(l.transport, "dns-udp");
        assert_eq!(l.name(), "www.doh.test");
        assert_eq!(l.qtype.as_deref(), Some(qtype));
        assert_eq!(l.dns_id, Some(id));
        assert_eq!(l.status, Status::Ok);
        assert_eq!(l.answers[..], [ans.to_string()]);
        assert_eq!(server(l), "192.0.2.53:53".parse().unwrap());
        assert_eq!((l.pid, &*l.comm), (10, "dig"));
        assert!(l.http_version.is_none() && l.url.is_none());
    }
    assert_eq!(p.counters().dns_client_conns, 1);
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].policy, CAPTURE_SOCK_FULL);
}

/// A fast client on a connected UDP socket can spend the kernel's copy budget for unclassified
/// connections before the tracer's decision to copy everything reaches the kernel: one call is
/// cut, the next few are not seen, then every call is copied. Seen in a real flood (one
/// Python client, 29 000 lookups/s): before, decoding stopped at the cut and 273 of 300 000
/// lookups were reported while the kernel went on copying every datagram for nothing.
#[test]
fn a_udp_socket_cut_by_the_copy_budget_goes_on_being_decoded_from_the_next_datagram() {
    let mut p = pipeline();
    let mut c = Proc::new(11, "dnsflood");
    c.connect(&mut p, 3, "127.0.0.1:5301", SocketType::Datagram);
    let q: Vec<Vec<u8>> = (1..=4)
        .map(|id| query("www.doh.test.", RecordType::A, id))
        .collect();
    c.io(&mut p, 3, Source::Socket, Direction::Egress, &q[0]);
    c.io(
        &mut p,
        3,
        Source::Socket,
        Direction::Ingress,
        &answer(&q[0]),
    );
    c.io(&mut p, 3, Source::Socket, Direction::Egress, &q[1]);
    // The budget ends inside query 2's answer; query 3 and its answer are not seen.
    c.io_cut(&mut p, 3, Direction::Ingress, &answer(&q[1]), 5);
    c.io(&mut p, 3, Source::Socket, Direction::Egress, &q[3]);
    c.io(
        &mut p,
        3,
        Source::Socket,
        Direction::Ingress,
        &answer(&q[3]),
    );
    let got = lookups(&mut p);
    let ids: Vec<_> = got.iter().map(|l| (l.dns_id, l.status)).collect();
    assert_eq!(
        ids,
        [(Some(1), Status::Ok), (Some(4), Status::Ok)],
        "{got:#?}"
    );
    assert!(got
        .iter()
        .all(|l| server(l) == "127.0.0.1:5301".parse().unwrap()));
    assert_eq!((p.counters().gaps, p.counters().resyncs), (1, 1));
    // Still copied in full: no decision to stop.
    let policies: Vec<_> = p.drain_decisions().map(|d| d.policy).collect();
    assert_eq!(policies, [CAPTURE_SOCK_FULL]);

    // Query 2's answer was in the bytes not copied: it did not time out, it went unseen.
    p.tick(c.ts + 31_000_000_000);
    let late = lookups(&mut p);
    assert_eq!(late.len(), 1, "{late:#?}");
    assert_eq!(
        (late[0].dns_id, late[0].status),
        (Some(2), Status::Unanswered)
    );
}

#[test]
fn a_tcp_dns_stream_that_loses_bytes_stops_being_decoded_and_copied() {
    let mut p = pipeline();
    let mut c = Proc::new(12, "client");
    c.connect(&mut p, 4, "192.0.2.53:53", SocketType::Stream);
    let a = framed(&[&query("www.doh.test.", RecordType::A, 1)]);
    c.io(&mut p, 4, Source::Socket, Direction::Egress, &a);
    c.io_cut(&mut p, 4, Direction::Egress, &a, 3);
    c.io(&mut p, 4, Source::Socket, Direction::Egress, &a);
    assert_eq!(p.counters().gaps, 1);
    let policies: Vec<_> = p.drain_decisions().map(|d| d.policy).collect();
    assert_eq!(policies, [CAPTURE_SOCK_FULL, CAPTURE_SOCK_SKIP]);
}

#[test]
fn tcp_and_dot_streams_are_cut_by_their_length_prefix_in_any_slicing() {
    let a = query("www.doh.test.", RecordType::A, 7);
    let nx = query("nx.doh.test.", RecordType::A, 8);
    let out = framed(&[&a, &nx]);
    let back = framed(&[&answer(&nx), &answer(&a)]);
    for (source, transport) in [(Source::Socket, "dns-tcp"), (Source::OpenSsl, "dot")] {
        for slice in [1, 3, 1000] {
            let mut p = pipeline();
            let mut c = Proc::new(20, "client");
            c.connect(&mut p, 4, "192.0.2.53:853", SocketType::Stream);
            for piece in out.chunks(slice) {
                c.io(&mut p, 4, source, Direction::Egress, piece);
            }
            for piece in back.chunks(slice) {
                c.io(&mut p, 4, source, Direction::Ingress, piece);
            }
            let got = lookups(&mut p);
            assert_eq!(got.len(), 2, "{transport} slice {slice}: {got:#?}");
            assert!(got
                .iter()
                .all(|l| l.transport == transport && l.status == Status::Ok));
            let nx = got.iter().find(|l| l.dns_id == Some(8)).unwrap();
            assert_eq!(nx.rcode.as_deref(), Some("NXDOMAIN"));
            assert_eq!(p.counters().bad_dns_messages, 0);
        }
    }
}

#[test]
fn a_process_receiving_queries_is_a_server_and_reports_nothing() {
    let mut p = pipeline();
    let mut srv = Proc::new(30, "unbound");
    srv.connect(&mut p, 9, "192.0.2.99:40000", SocketType::Stream);
    let q = query("www.doh.test.", RecordType::A, 1);
    srv.io(
        &mut p,
        9,
        Source::Socket,
        Direction::Ingress,
        &framed(&[&q]),
    );
    srv.io(
        &mut p,
        9,
        Source::Socket,
        Direction::Egress,
        &framed(&[&answer(&q)]),
    );
    assert!(lookups(&mut p).is_empty());
    assert_eq!(p.counters().server_side_conns, 1);
    let d: Vec<_> = p.drain_decisions().collect();
    assert_eq!(d[0].policy, CAPTURE_SOCK_SKIP);
}

#[test]
fn unconnected_udp_pairs_answers_with_the_server_they_came_from() {
    let mut p = pipeline();
    let mut py = Proc::new(40, "python3");
    // The same id to two servers: each answer goes with its own server's query.
    let q = query("www.doh.test.", RecordType::A, 0x4242);
    py.datagram(&mut p, 3, Direction::Egress, "192.0.2.1:53", &q);
    py.datagram(&mut p, 3, Direction::Egress, "192.0.2.2:53", &q);
    py.datagram(&mut p, 3, Direction::Ingress, "192.0.2.2:53", &answer(&q));
    let got = lookups(&mut p);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(server(&got[0]), "192.0.2.2:53".parse().unwrap());
    // An answer nobody asked that server for is not paired; it waits for a query reported
    // late (tests/late_writes.rs), and is counted once none can come.
    py.datagram(&mut p, 3, Direction::Ingress, "192.0.2.3:53", &answer(&q));
    assert!(lookups(&mut p).is_empty());
    assert_eq!(p.counters().unmatched_dns_answers, 0);
    // The other query ends unanswered when the process exits.
    let meta = py.meta();
    p.handle_event(Event::Exit { meta });
    let got = lookups(&mut p);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].status, Status::Unanswered);
    assert_eq!(server(&got[0]), "192.0.2.1:53".parse().unwrap());
    assert_eq!(p.counters().unmatched_dns_answers, 1);
}

#[test]
fn relayed_lookups_name_each_other_and_say_when_the_link_is_ambiguous() {
    let mut p = pipeline();
    let q1 = query("www.doh.test.", RecordType::A, 0x0101);
    let q2 = query("www.doh.test.", RecordType::A, 0x0202);
    let (mut c1, mut c2) = (Proc::new(51, "curl"), Proc::new(52, "wget"));
    let mut relay = Proc::new(60, "dnsmasq");
    c1.datagram(&mut p, 3, Direction::Egress, "127.0.0.53:53", &q1);
    // Only one client waits: an unambiguous link.
    let up = query("www.doh.test.", RecordType::A, 0x7777);
    relay.ts = c1.ts;
    relay.connect(&mut p, 8, "192.0.2.53:853", SocketType::Stream);
    relay.io(
        &mut p,
        8,
        Source::OpenSsl,
        Direction::Egress,
        &framed(&[&up]),
    );
    relay.io(
        &mut p,
        8,
        Source::OpenSsl,
        Direction::Ingress,
        &framed(&[&answer(&up)]),
    );
    let upstream = lookups(&mut p);
    assert_eq!(upstream.len(), 1);
    let u = &upstream[0];
    assert_eq!(u.transport, "dot");
    let clients = u.relayed_for.as_ref().expect("relayed_for");
    assert_eq!(
        (clients.len(), clients[0].pid, clients[0].transport),
        (1, 51, "dns-udp")
    );
    assert_eq!(u.relay_ambiguous, Some(false));
    c1.ts = relay.ts;
    c1.datagram(&mut p, 3, Direction::Ingress, "127.0.0.53:53", &answer(&q1));
    let client = lookups(&mut p);
    let up = client[0].upstream.as_ref().expect("upstream");
    assert_eq!((up.len(), up[0].pid, up[0].transport), (1, 60, "dot"));
    assert_eq!(server(&client[0]), "127.0.0.53:53".parse().unwrap());

    // Two clients wait for the same question: both are named, and the link is ambiguous.
    c1.datagram(&mut p, 3, Direction::Egress, "127.0.0.53:53", &q1);
    c2.ts = c1.ts;
    c2.datagram(&mut p, 4, Direction::Egress, "127.0.0.53:53", &q2);
    relay.ts = c2.ts;
    let up2 = query("www.doh.test.", RecordType::A, 0x7778);
    relay.io(
        &mut p,
        8,
        Source::OpenSsl,
        Direction::Egress,
        &framed(&[&up2]),
    );
    relay.io(
        &mut p,
        8,
        Source::OpenSsl,
        Direction::Ingress,
        &framed(&[&answer(&up2)]),
    );
    let u = lookups(&mut p);
    let pids: Vec<u32> = u[0]
        .relayed_for
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.pid)
        .collect();
    assert_eq!(pids, vec![51, 52]);
    assert_eq!(u[0].relay_ambiguous, Some(true));
    // A lookup to a server that is not local names no upstream.
    assert!(u[0].upstream.is_none());
}

/// A stub with many clients asking one name, and asking upstream many times while one
/// client waits: each list names at most 8 peers; the rest are counted (`relay_ambiguous`).
#[test]
fn relay_lists_are_capped_and_the_rest_counted() {
    let mut p = pipeline();
    let mut clients: Vec<Proc> = (0..20).map(|i| Proc::new(100 + i, "client")).collect();
    let mut relay = Proc::new(60, "dnsmasq");
    let mut ts = 1_000_000_000;
    for (i, c) in clients.iter_mut().enumerate() {
        c.ts = ts;
        let q = query("busy.doh.test.", RecordType::A, 0x100 + i as u16);
        c.datagram(&mut p, 3, Direction::Egress, "127.0.0.53:53", &q);
        ts = c.ts;
    }
    relay.ts = ts;
    relay.connect(&mut p, 8, "192.0.2.53:853", SocketType::Stream);
    // Twelve upstream lookups while the clients wait.
    for n in 0..12u16 {
        let up = query("busy.doh.test.", RecordType::A, 0x7000 + n);
        relay.io(
            &mut p,
            8,
            Source::OpenSsl,
            Direction::Egress,
            &framed(&[&up]),
        );
        relay.io(
            &mut p,
            8,
            Source::OpenSsl,
            Direction::Ingress,
            &framed(&[&answer(&up)]),
        );
    }
    let upstream = lookups(&mut p);
    assert_eq!(upstream.len(), 12);
    for u in &upstream {
        let named = u.relayed_for.as_ref().expect("relayed_for");
        assert_eq!(named.len(), 8, "{named:#?}");
        assert_eq!(named[0].pid, 100);
        assert_eq!(u.relay_ambiguous, Some(true));
    }
    // 12 lookups × 12 clients not named; and each of the 20 waiting clients keeps 8 of the
    // 12 upstream lookups: 20 × 4 more.
    assert_eq!(p.counters().relay_ambiguous, 12 * 12 + 20 * 4);
    let c = &mut clients[0];
    c.ts = relay.ts;
    let q = query("busy.doh.test.", RecordType::A, 0x100);
    c.datagram(&mut p, 3, Direction::Ingress, "127.0.0.53:53", &answer(&q));
    let got = lookups(&mut p);
    assert_eq!(got.len(), 1);
    let up = got[0].upstream.as_ref().expect("upstream");
    assert_eq!(up.len(), 8);
    assert_eq!(got[0].relay_ambiguous, Some(true));
    assert!(p
        .counters()
        .problems()
        .iter()
        .any(|(label, n)| label.contains("relay_ambiguous") && *n == 12 * 12 + 20 * 4));
}

#[test]
fn an_unhooked_tls_client_of_a_listed_resolver_becomes_one_opaque_record() {
    let hello = include_bytes!("fixtures/client_hello/gnutls_kdig_https.bin");
    let mut p = pipeline();
    let mut kdig = Proc::new(70, "kdig");
    kdig.connect(&mut p, 6, "1.1.1.1:443", SocketType::Stream);
    kdig.io(&mut p, 6, Source::Socket, Direction::Egress, hello);
    let d: Vec<_> = p.drain_decisions().collect();
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0].policy,
        CAPTURE_SOCK_SKIP | CAPTURE_COUNT,
        "stop copying, keep counting"
    );
    let meta = kdig.meta();
    p.handle_event(Event::ConnBytes {
        meta,
        id: ConnId::Fd(6),
        sent: 1000,
        received: 5000,
    });
    kdig.close(&mut p, 6);
    let got = lookups(&mut p);
    assert_eq!(got.len(), 1, "{got:#?}");
    let l = &got[0];
    assert_eq!(l.transport, "doh-opaque");
    assert_eq!(l.status, Status::Opaque);
    assert_eq!(l.resolver.as_deref(), Some("Cloudflare DNS"));
    assert!(l.qname.is_none() && l.rcode.is_none() && l.answers.is_empty());
    assert_eq!(l.alpn.as_deref(), Some(&["h2".to_string()][..]));
    assert_eq!(
        l.bytes_sent,
        Some(1000 + hello.len() as u64),
        "counted + copied"
    );
    assert_eq!(l.bytes_received, Some(5000));
    assert!(l.duration_ms.is_some_and(|ms| ms > 0.0));
    assert_eq!(p.counters().opaque_conns, 1);
}

#[test]
fn a_hooked_tls_connection_to_a_listed_resolver_is_not_opaque() {
    let hello = include_bytes!("fixtures/client_hello/gnutls_kdig_https.bin");
    let mut p = pipeline();
    let mut c = Proc::new(80, "client");
    c.connect(&mut p, 6, "1.1.1.1:853", SocketType::Stream);
    c.io(&mut p, 6, Source::Socket, Direction::Egress, hello);
    // Its plaintext is seen (DoT through a hooked library): a decoded lookup, no opaque record.
    let q = query("www.doh.test.", RecordType::A, 3);
    c.io(
        &mut p,
        6,
        Source::OpenSsl,
        Direction::Egress,
        &framed(&[&q]),
    );
    c.io(
        &mut p,
        6,
        Source::OpenSsl,
        Direction::Ingress,
        &framed(&[&answer(&q)]),
    );
    c.close(&mut p, 6);
    let got = lookups(&mut p);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].transport, "dot");
    assert_eq!(got[0].server_name.as_deref(), Some("cloudflare-dns.com"));
    assert_eq!(got[0].resolver.as_deref(), Some("Cloudflare DNS"));
}

/// A TLS server's accepted socket (it sends the ServerHello) whose peer has a listed
/// resolver's address is no client of that resolver: no opaque record. The hellos are a real
/// connection's (OpenSSL `s_client` to a Python `ssl` server, tests/fixtures/tls).
#[test]
fn a_tls_server_socket_with_a_listed_peer_is_not_opaque() {
    let trace = include_str!("fixtures/tls/tls13-aes128gcm.trace");
    let hex = |l: &str| -> Vec<u8> {
        let h = &l[2..];
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    };
    let client_hello = hex(trace.lines().find(|l| l.starts_with("c ")).unwrap());
    let server_hello = hex(trace.lines().find(|l| l.starts_with("s ")).unwrap());
    let mut p = pipeline();
    let mut server = Proc::new(90, "unbound");
    let meta = server.meta();
    p.handle_event(Event::Conn(ConnInfo {
        meta,
        id: ConnId::Fd(9),
        accepted: true,
        sock_type: SocketType::Stream,
        peer: "1.1.1.1:40342".parse().unwrap(),
        comm: server.comm,
    }));
    server.io(&mut p, 9, Source::Socket, Direction::Ingress, &client_hello);
    server.io(&mut p, 9, Source::Socket, Direction::Egress, &server_hello);
    let d: Vec<_> = p.drain_decisions().collect();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].policy, CAPTURE_SOCK_SKIP, "not even counted");
    server.close(&mut p, 9);
    assert!(lookups(&mut p).is_empty());
    assert_eq!(p.counters().opaque_conns, 0);
}

/// QUIC to a DoQ port: the first datagram, RFC 9001 Appendix A.2's client Initial (real
/// protected bytes), is decrypted for the ClientHello's server name and ALPN, which the opaque
/// record carries; then the socket is only counted.
#[test]
fn a_quic_candidates_initial_names_its_server_in_the_opaque_record() {
    let hex = include_str!("fixtures/tls/rfc9001-a2-client-initial.hex").trim();
    let initial: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let mut p = pipeline();
    let mut c = Proc::new(95, "doq-client");
    c.connect(&mut p, 5, "127.0.0.1:853", SocketType::Datagram);
    assert_eq!(
        p.drain_decisions().count(),
        0,
        "undecided until its first datagram"
    );
    c.io(&mut p, 5, Source::Socket, Direction::Egress, &initial);
    let d: Vec<_> = p.drain_decisions().collect();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].policy, CAPTURE_SOCK_SKIP | CAPTURE_COUNT);
    let meta = c.meta();
    p.handle_event(Event::ConnBytes {
        meta,
        id: ConnId::Fd(5),
        sent: 5000,
        received: 3000,
    });
    c.close(&mut p, 5);
    let got = lookups(&mut p);
    assert_eq!(got.len(), 1, "{got:#?}");
    let l = &got[0];
    assert_eq!(l.transport, "doq-opaque");
    assert_eq!(l.status, Status::Opaque);
    assert_eq!(l.server_name.as_deref(), Some("example.com"));
    assert_eq!(l.alpn.as_deref(), Some(&["alpn".to_string()][..]));
    assert_eq!(
        l.bytes_sent,
        Some(5000 + initial.len() as u64),
        "counted + copied"
    );
    assert_eq!(l.bytes_received, Some(3000));
}

#[test]
fn a_dot_query_reported_after_its_answer_is_one_answered_lookup() {
    // The hooks report a write when it returns; a client writing and reading on two threads
    // can have its answer read first (tests/late_writes.rs has the DoH cases).
    let mut p = pipeline();
    let mut c = Proc::new(70, "resolver");
    c.connect(&mut p, 4, "192.0.2.53:853", SocketType::Stream);
    let (q1, q2) = (
        query("www.doh.test.", RecordType::A, 7),
        query("nx.doh.test.", RecordType::A, 8),
    );
    c.io(
        &mut p,
        4,
        Source::OpenSsl,
        Direction::Egress,
        &framed(&[&q1]),
    );
    c.io(
        &mut p,
        4,
        Source::OpenSsl,
        Direction::Ingress,
        &framed(&[&answer(&q1), &answer(&q2)]),
    );
    assert_eq!(lookups(&mut p).len(), 1, "the first query's answer");
    c.io(
        &mut p,
        4,
        Source::OpenSsl,
        Direction::Egress,
        &framed(&[&q2]),
    );
    let got = lookups(&mut p);
    assert_eq!(got.len(), 1, "{got:#?}");
    let l = &got[0];
    assert_eq!(
        (
            l.qname.as_deref(),
            l.status,
            l.transport,
            l.rcode.as_deref()
        ),
        (Some("nx.doh.test"), Status::Ok, "dot", Some("NXDOMAIN"))
    );
    assert_eq!(server(l), "192.0.2.53:853".parse().unwrap());
    // The answer was read before the query's write returned: no time between them is known.
    assert_eq!(l.latency_ms, Some(0.0));
    assert_eq!(p.counters().unmatched_dns_answers, 0);
}

#[test]
fn an_answer_whose_query_never_comes_is_counted_unmatched_two_seconds_later() {
    let mut p = pipeline();
    let mut c = Proc::new(71, "resolver");
    c.connect(&mut p, 4, "192.0.2.53:853", SocketType::Stream);
    let q = query("www.doh.test.", RecordType::A, 9);
    c.io(
        &mut p,
        4,
        Source::OpenSsl,
        Direction::Egress,
        &framed(&[&q]),
    );
    let stray = query("other.doh.test.", RecordType::A, 10);
    c.io(
        &mut p,
        4,
        Source::OpenSsl,
        Direction::Ingress,
        &framed(&[&answer(&q), &answer(&stray)]),
    );
    assert_eq!(lookups(&mut p).len(), 1);
    p.tick(c.ts + 1_000_000_000);
    assert_eq!(p.counters().unmatched_dns_answers, 0, "still waiting");
    p.tick(c.ts + 3_000_000_000);
    assert_eq!(p.counters().unmatched_dns_answers, 1);
    assert!(lookups(&mut p).is_empty(), "nothing made up");
}
