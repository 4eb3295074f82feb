//! The userspace pipeline: ring-buffer records in, lookup records and capture decisions out.
//!
//! Keeps one [`Conn`] per (process, socket fd, layer) — the layer being TLS plaintext or the
//! socket's own bytes — or per (process, TLS object) when the fd is unknown. Each direction's
//! chunks are checked for gaps; the first bytes decide what the connection carries
//! ([`sniff`]); HTTP/2 client connections are decoded by [`doh_h2::H2Client`]. The same code runs
//! live and on recorded streams; only the [`ProcessInfo`] differs.

pub mod connections;
pub mod dns_plain;
pub mod doh_h1;
pub mod doh_h2;
mod lookups;
mod opaque_conns;
mod reassembly;
pub mod relay;
pub mod sniff;

use std::{net::SocketAddr, sync::Arc};

use doh_trace_common::{
    Source, CAPTURE_COUNT, CAPTURE_SOCK_FULL, CAPTURE_SOCK_SKIP, CAPTURE_TLS_FULL,
    CAPTURE_TLS_SKIP, COMM_LEN,
};

use crate::{
    clock::Clock,
    counters::DecodeCounters,
    event::{self, comm_str, DataChunk, Datagram, Direction, Event, SocketType},
    http2::H2Error,
    lookup::{Endpoint, Lookup},
    opaque::{ClientHelloInfo, ResolverList},
    procinfo::ProcessInfo,
};
use connections::{ClosedBy, ConnectionRecord};
use dns_plain::{DnsClient, DnsFinished, Framing};
use doh_h1::H1Client;
use doh_h2::{Finished, FirstRequest, H2Client, Seen};
use lookups::{dns_lookup, to_lookup, ConnFacts, Judged};
use reassembly::CallSequence;
use relay::RelayIndex;
use sniff::{Sniffer, Verdict};

/// Which bytes of a socket a connection state decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// Plaintext from a hooked TLS library.
    Tls,
    /// The socket's own bytes (cleartext protocols).
    Socket,
}

/// What identifies the connection within the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnId {
    /// A socket fd.
    Fd(i32),
    /// A TLS library object whose fd was never seen.
    TlsObject(u64),
}

/// Identity of a traced connection state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub pid: u32,
    pub id: ConnId,
    pub layer: Layer,
}

/// What the pipeline concluded about a connection: the eBPF side copies all of it
/// (`CAPTURE_*_FULL`) or none of it (`CAPTURE_*_SKIP`) from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureDecision {
    pub key: ConnKey,
    /// `CAPTURE_*` bits to set.
    pub policy: u32,
}

impl CaptureDecision {
    /// The (pid, fd) the eBPF capture map is keyed by, if the connection has an fd.
    pub fn fd(&self) -> Option<(u32, i32)> {
        match self.key.id {
            ConnId::Fd(fd) => Some((self.key.pid, fd)),
            ConnId::TlsObject(_) => None,
        }
    }
}

/// What a connection's bytes turned out to be.
enum Proto {
    /// Waiting for enough bytes to decide.
    Sniffing(Sniffer),
    /// This process is the HTTP/2 client: decode DoH.
    H2Client(Box<H2Client>),
    /// This process is the HTTP/1.1 client: decode DoH.
    H1Client(Box<H1Client>),
    /// This process is a classic DNS or DoT client.
    Dns(Box<DnsClient>),
    /// TLS on the socket: reading the client's ClientHello (server name, ALPN), kept here
    /// until complete (bounded by what the kernel copies while unclassified).
    TlsHello(Vec<u8>),
    /// Not decoded (server side, not DNS, or failed); bytes are dropped on arrival.
    Ignored,
}

struct Conn {
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
    egress: CallSequence,
    ingress: CallSequence,
    proto: Proto,
    /// Finished streams of a mid-stream connection that were not DNS.
    non_dns_streams: u32,
    /// A capture decision was already sent.
    decided: bool,
    /// That decision was to copy everything.
    copy_all: bool,
    /// Counted as a mid-stream HTTP/2 client before its role was known.
    counted_mid_stream: bool,
    uid: u32,
    thread_comm: [u8; COMM_LEN],
    /// connect()/accept() time, when seen.
    opened_ns: Option<u64>,
    /// First and last data seen.
    first_data_ns: Option<u64>,
    last_data_ns: u64,
    /// Lookups reported from this connection.
    lookups: u32,
    /// `"h2"` or `"http/1.1"` once decoded.
    proto_version: Option<&'static str>,
    /// The lookup transport once decoded (`doh`, `dot`, `dns-udp`, `dns-tcp`).
    transport: Option<&'static str>,
    /// TCP or UDP, when the kernel saw the socket created.
    sock_type: SocketType,
    /// Socket layer: TLS plaintext of this socket was seen from a hooked library.
    tls_seen: bool,
    /// TLS layer: the library whose plaintext this is.
    tls_library: Option<&'static str>,
    /// Socket layer: the TLS ClientHello this process sent.
    hello: Option<ClientHelloInfo>,
    /// Socket layer: reported as this opaque transport when it ends without plaintext.
    opaque: Option<&'static str>,
    /// Bytes sent and received, from the kernel's count (opaque candidates).
    bytes: Option<(u64, u64)>,
    /// Socket layer: bytes sent and received that were copied (before any capture decision).
    copied: (u64, u64),
    /// The last lookup's resolver match, reused while what it was matched on stays the same.
    resolver_memo: Option<Box<ResolverMemo>>,
    /// The last DoH request's URL, shared by the lookups that used the same one.
    last_url: Option<Arc<str>>,
    /// `peer` and `local` as reported, formatted once: `(peer, local, server, client)`.
    endpoints: Option<Box<EndpointMemo>>,
}

type EndpointMemo = (
    Option<SocketAddr>,
    Option<SocketAddr>,
    Option<Endpoint>,
    Option<Endpoint>,
);

/// What [`Pipeline::resolver_of`] was asked and answered for a connection's last lookup.
struct ResolverMemo {
    /// The ClientHello's server name it was matched on, shared by the connection's lookups.
    server_name: Option<Arc<str>>,
    authority: Option<Arc<str>>,
    server: Option<Endpoint>,
    resolver: Option<Arc<str>>,
}

impl Conn {
    /// A connection not yet classified; a datagram socket's messages are its I/O calls.
    fn new(peer: Option<SocketAddr>, sock_type: SocketType) -> Self {
        let sniffer = match sock_type {
            SocketType::Datagram => Sniffer::for_datagrams(),
            SocketType::Stream | SocketType::Unknown => Sniffer::default(),
        };
        Conn {
            peer,
            local: None,
            egress: CallSequence::default(),
            ingress: CallSequence::default(),
            proto: Proto::Sniffing(sniffer),
            non_dns_streams: 0,
            decided: false,
            copy_all: false,
            counted_mid_stream: false,
            opened_ns: None,
            first_data_ns: None,
            last_data_ns: 0,
            lookups: 0,
            proto_version: None,
            transport: None,
            sock_type,
            tls_seen: false,
            tls_library: None,
            hello: None,
            opaque: None,
            bytes: None,
            copied: (0, 0),
            resolver_memo: None,
            last_url: None,
            endpoints: None,
            uid: 0,
            thread_comm: [0; COMM_LEN],
        }
    }

    /// The connection's ends as lookups report them (formatted again only when they change).
    fn endpoints(&mut self) -> (Option<Endpoint>, Option<Endpoint>) {
        match &self.endpoints {
            Some(m) if m.0 == self.peer && m.1 == self.local => {
                let (_, _, server, client) = &**m;
                (server.clone(), client.clone())
            }
            _ => {
                let server = self.peer.map(Endpoint::from);
                let client = self.local.map(Endpoint::from);
                self.endpoints = Some(Box::new((
                    self.peer,
                    self.local,
                    server.clone(),
                    client.clone(),
                )));
                (server, client)
            }
        }
    }

    /// Stops decoding: open exchanges end unanswered, later bytes are dropped on arrival.
    /// Returns false if decoding had already stopped.
    fn stop_decoding(
        &mut self,
        seen: Seen,
        finished: &mut Vec<Finished>,
        dns_finished: &mut Vec<DnsFinished>,
    ) -> bool {
        match &mut self.proto {
            Proto::H2Client(h2) => h2.close(seen, finished),
            Proto::H1Client(h1) => h1.close(seen, finished),
            Proto::Dns(dns) => dns.close(seen, dns_finished),
            Proto::Sniffing(_) | Proto::TlsHello(_) | Proto::Ignored => {}
        }
        !matches!(
            std::mem::replace(&mut self.proto, Proto::Ignored),
            Proto::Ignored
        )
    }
}

/// Bytes of one direction handed to a sniffer or decoder, with where they sit in their I/O
/// call (for datagrams: the call is the message).
pub struct Bytes<'a> {
    pub dir: Direction,
    pub bytes: &'a [u8],
    pub call_start: bool,
    pub call_end: bool,
    /// Where a datagram went to or came from, when it is not the connection's peer.
    pub peer: Option<SocketAddr>,
}

/// Most connections tracked at once; beyond it the stalest is dropped.
pub const MAX_CONNS: usize = 65536;
/// A DoH exchange without an answer after this long is reported as timed out.
pub const STREAM_TIMEOUT_NS: u64 = 30_000_000_000;
/// A mid-stream connection whose first this many exchanges were not DNS is dropped.
const MID_STREAM_PATIENCE: u32 = 8;

/// Ring-buffer records → lookups and capture decisions.
pub struct Pipeline {
    /// Hashed with foldhash (randomly seeded per process), as the streams of each connection.
    conns: foldhash::HashMap<ConnKey, Conn>,
    procs: Box<dyn ProcessInfo>,
    clock: Clock,
    counters: DecodeCounters,
    /// Boxed: a record (several hundred bytes) is built once and moves by pointer until it is
    /// written; moving it by value through emit, this queue and the writer was ~2 % of replay.
    #[allow(clippy::vec_box)]
    out: Vec<Box<Lookup>>,
    out_conns: Vec<ConnectionRecord>,
    decisions: Vec<CaptureDecision>,
    finished: Vec<Finished>,
    dns_finished: Vec<DnsFinished>,
    last_tick_ns: u64,
    resolvers: ResolverList,
    relay: RelayIndex,
}

fn skip_bit(layer: Layer) -> u32 {
    match layer {
        Layer::Tls => CAPTURE_TLS_SKIP,
        Layer::Socket => CAPTURE_SOCK_SKIP,
    }
}

fn full_bit(layer: Layer) -> u32 {
    match layer {
        Layer::Tls => CAPTURE_TLS_FULL,
        Layer::Socket => CAPTURE_SOCK_FULL,
    }
}

impl Pipeline {
    /// A pipeline reading process facts from `procs` and converting times with `clock`.
    pub fn new(procs: Box<dyn ProcessInfo>, clock: Clock) -> Self {
        Pipeline {
            conns: Default::default(),
            procs,
            clock,
            counters: DecodeCounters::default(),
            out: Vec::new(),
            out_conns: Vec::new(),
            decisions: Vec::new(),
            finished: Vec::new(),
            dns_finished: Vec::new(),
            last_tick_ns: 0,
            resolvers: ResolverList::builtin(),
            relay: RelayIndex::default(),
        }
    }

    /// Uses this list of well-known resolvers (built-in plus the user's) for opaque
    /// connections and the `resolver` field.
    pub fn set_resolvers(&mut self, resolvers: ResolverList) {
        self.resolvers = resolvers;
    }

    /// Process facts (the recorder asks for names of processes it writes).
    pub fn process_info(&mut self) -> &mut dyn ProcessInfo {
        self.procs.as_mut()
    }

    /// Counters so far.
    pub fn counters(&self) -> &DecodeCounters {
        &self.counters
    }

    /// Lookups completed since the last call.
    pub fn drain_lookups(&mut self) -> std::vec::Drain<'_, Box<Lookup>> {
        self.out.drain(..)
    }

    /// Records of DNS-carrying connections that ended since the last call.
    pub fn drain_connections(&mut self) -> std::vec::Drain<'_, ConnectionRecord> {
        self.out_conns.drain(..)
    }

    /// Capture decisions made since the last call (to apply to the eBPF side).
    pub fn drain_decisions(&mut self) -> std::vec::Drain<'_, CaptureDecision> {
        self.decisions.drain(..)
    }

    /// Handles one raw ring-buffer record.
    pub fn handle_record(&mut self, raw: &[u8]) {
        self.counters.events += 1;
        match event::decode(raw) {
            Ok(ev) => self.handle_event(ev),
            Err(_) => self.counters.bad_events += 1,
        }
    }

    /// Handles one decoded event.
    pub fn handle_event(&mut self, ev: Event<'_>) {
        let ts = match &ev {
            Event::Data(d) => d.meta.ts_ns,
            Event::Conn(c) => c.meta.ts_ns,
            Event::Datagram(d) => d.meta.ts_ns,
            Event::Close { meta, .. }
            | Event::ConnBytes { meta, .. }
            | Event::Exit { meta }
            | Event::Exec { meta } => meta.ts_ns,
        };
        if ts > self.last_tick_ns + 1_000_000_000 {
            self.tick(ts);
        }
        match ev {
            Event::Data(chunk) => self.on_data(chunk),
            Event::Datagram(d) => self.on_datagram(d),
            Event::ConnBytes {
                meta,
                fd,
                sent,
                received,
            } => {
                let key = ConnKey {
                    pid: meta.pid,
                    id: ConnId::Fd(fd),
                    layer: Layer::Socket,
                };
                if let Some(conn) = self.conns.get_mut(&key) {
                    conn.bytes = Some((sent, received));
                }
            }
            Event::Conn(c) => {
                let seen = Seen {
                    ts_ns: c.meta.ts_ns,
                    tid: c.meta.tid,
                };
                // A new socket on a reused fd: whatever was there before has ended.
                self.end_fd(c.meta.pid, c.fd, seen, ClosedBy::Replaced);
                self.make_room();
                let key = ConnKey {
                    pid: c.meta.pid,
                    id: ConnId::Fd(c.fd),
                    layer: Layer::Socket,
                };
                let mut conn = Conn::new(Some(c.peer), c.sock_type);
                conn.opened_ns = Some(c.meta.ts_ns);
                conn.uid = c.meta.uid;
                conn.thread_comm = c.comm;
                if c.sock_type == SocketType::Datagram {
                    // QUIC to a DoQ port or to a well-known resolver: opaque, only counted.
                    if let Some(transport) = opaque_conns::quic_candidate(&self.resolvers, c.peer) {
                        conn.opaque = Some(transport);
                        conn.proto = Proto::Ignored;
                        self.decide(key, &mut conn, CAPTURE_SOCK_SKIP | CAPTURE_COUNT);
                    }
                }
                self.conns.insert(key, conn);
                // The earliest moment to learn who this is: short-lived clients may be gone by
                // the time their lookup completes. Cached per process, so read once.
                let _ = self.procs.leader_comm(c.meta.pid);
                let _ = self.procs.context(c.meta.pid, c.meta.uid);
            }
            Event::Close { meta, fd } => self.end_fd(
                meta.pid,
                fd,
                Seen {
                    ts_ns: meta.ts_ns,
                    tid: meta.tid,
                },
                ClosedBy::Process,
            ),
            Event::Exec { meta } => {
                // New program, same process: name, executable and command line changed. Every
                // exec is reported (for hook discovery); only known processes are re-read.
                if self.procs.forget(meta.pid) {
                    let _ = self.procs.leader_comm(meta.pid);
                    let _ = self.procs.context(meta.pid, meta.uid);
                }
            }
            Event::Exit { meta } => {
                let keys: Vec<ConnKey> = self
                    .conns
                    .keys()
                    .filter(|k| k.pid == meta.pid)
                    .copied()
                    .collect();
                for key in keys {
                    self.end_conn(
                        key,
                        Seen {
                            ts_ns: meta.ts_ns,
                            tid: meta.tid,
                        },
                        ClosedBy::Exit,
                    );
                }
                self.procs.forget(meta.pid);
            }
        }
    }

    /// Time passes (kernel monotonic ns): exchanges without an answer for too long end.
    pub fn tick(&mut self, now_ns: u64) {
        self.last_tick_ns = now_ns;
        let keys: Vec<ConnKey> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                matches!(
                    c.proto,
                    Proto::H2Client(_) | Proto::H1Client(_) | Proto::Dns(_)
                )
            })
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            let mut conn = self.conns.remove(&key).expect("listed");
            match &mut conn.proto {
                Proto::H2Client(h2) => h2.expire(now_ns, STREAM_TIMEOUT_NS, &mut self.finished),
                Proto::H1Client(h1) => h1.expire(now_ns, STREAM_TIMEOUT_NS, &mut self.finished),
                Proto::Dns(dns) => dns.expire(now_ns, STREAM_TIMEOUT_NS, &mut self.dns_finished),
                Proto::Sniffing(_) | Proto::TlsHello(_) | Proto::Ignored => {}
            }
            self.flush_finished(key, &mut conn);
            self.conns.insert(key, conn);
        }
    }

    fn end_fd(&mut self, pid: u32, fd: i32, seen: Seen, how: ClosedBy) {
        self.procs.forget_socket(pid, fd);
        for layer in [Layer::Tls, Layer::Socket] {
            self.end_conn(
                ConnKey {
                    pid,
                    id: ConnId::Fd(fd),
                    layer,
                },
                seen,
                how,
            );
        }
    }

    fn make_room(&mut self) {
        if self.conns.len() >= MAX_CONNS {
            // Drop ignored connections first; they hold no lookups.
            self.conns.retain(|_, c| !matches!(c.proto, Proto::Ignored));
            if self.conns.len() >= MAX_CONNS {
                let key = *self.conns.keys().next().expect("non-empty");
                let now = self.last_tick_ns;
                self.end_conn(key, Seen { ts_ns: now, tid: 0 }, ClosedBy::Evicted);
            }
        }
    }

    fn end_conn(&mut self, key: ConnKey, seen: Seen, how: ClosedBy) {
        let Some(mut conn) = self.conns.remove(&key) else {
            return;
        };
        conn.stop_decoding(seen, &mut self.finished, &mut self.dns_finished);
        self.flush_finished(key, &mut conn);
        if conn.opaque.is_some() && !conn.tls_seen {
            self.report_opaque(key, &mut conn, seen);
        }
        if conn.lookups > 0 {
            let record = self.connection_record(key, &conn, seen.ts_ns, how);
            self.out_conns.push(record);
        }
    }

    /// The per-connection record of a connection that carried lookups.
    fn connection_record(
        &mut self,
        key: ConnKey,
        conn: &Conn,
        end_ns: u64,
        how: ClosedBy,
    ) -> ConnectionRecord {
        let ms = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1e6;
        let start = conn.opened_ns.or(conn.first_data_ns).unwrap_or(end_ns);
        let comm = self.process_name(key.pid, conn);
        ConnectionRecord {
            time: self.clock.rfc3339(end_ns),
            pid: key.pid,
            uid: conn.uid,
            comm,
            transport: conn.opaque.or(conn.transport).unwrap_or("doh"),
            http_version: conn.proto_version,
            tls: key.layer == Layer::Tls,
            server: conn.peer.map(Endpoint::from),
            client: conn.local.map(Endpoint::from),
            opened: conn.opened_ns.map(|t| self.clock.rfc3339(t)),
            handshake_ms: conn
                .opened_ns
                .zip(conn.first_data_ns)
                .map(|(o, f)| ms(o, f)),
            lookups: conn.lookups,
            lifetime_ms: ms(start, end_ns),
            idle_ms: ms(conn.last_data_ns.max(start), end_ns),
            closed_by: how,
            joined_mid_stream: conn.counted_mid_stream,
        }
    }

    fn decide(&mut self, key: ConnKey, conn: &mut Conn, policy: u32) {
        if conn.decided {
            return;
        }
        conn.decided = true;
        conn.copy_all = policy & full_bit(key.layer) != 0;
        self.decisions.push(CaptureDecision { key, policy });
    }

    fn on_data(&mut self, chunk: DataChunk<'_>) {
        let pid = chunk.meta.pid;
        let layer = layer_of(chunk.source);
        let id = if chunk.fd >= 0 {
            ConnId::Fd(chunk.fd)
        } else {
            ConnId::TlsObject(chunk.tls_obj)
        };
        let key = ConnKey { pid, id, layer };
        if !self.conns.contains_key(&key) {
            self.make_room();
        }
        // TLS plaintext inherits the peer, open time and TLS server name learnt on the socket.
        let socket = self.conns.get_mut(&ConnKey {
            layer: Layer::Socket,
            ..key
        });
        let (peer, opened, hello, sock_type) = match socket {
            Some(c) => {
                if layer == Layer::Tls {
                    c.tls_seen = true;
                }
                (c.peer, c.opened_ns, c.hello.clone(), c.sock_type)
            }
            None => (None, None, None, SocketType::Unknown),
        };
        let mut conn = self.conns.remove(&key).unwrap_or_else(|| {
            // TLS plaintext is a stream whatever the socket below it.
            let own_type = match layer {
                Layer::Socket => sock_type,
                Layer::Tls => SocketType::Unknown,
            };
            let mut c = Conn::new(peer, own_type);
            c.opened_ns = opened;
            c
        });
        if layer == Layer::Tls && conn.hello.is_none() {
            conn.hello = hello;
        }
        if layer == Layer::Tls {
            conn.tls_library = chunk.source.library();
        }
        conn.uid = chunk.meta.uid;
        if layer == Layer::Socket {
            // Bytes copied before the kernel was told to count (or skip) this socket.
            match chunk.direction {
                Direction::Egress => conn.copied.0 += chunk.bytes.len() as u64,
                Direction::Ingress => conn.copied.1 += chunk.bytes.len() as u64,
            }
        }
        conn.first_data_ns.get_or_insert(chunk.meta.ts_ns);
        conn.last_data_ns = chunk.meta.ts_ns;
        conn.thread_comm = chunk.comm;
        let seen = Seen {
            ts_ns: chunk.meta.ts_ns,
            tid: chunk.meta.tid,
        };
        let seq = match chunk.direction {
            Direction::Egress => &mut conn.egress,
            Direction::Ingress => &mut conn.ingress,
        };
        if !seq.accept(chunk.offset, chunk.bytes.len() as u32, chunk.total_len) {
            if let Proto::H2Client(h2) = &mut conn.proto {
                // Bytes of this direction were lost: it goes on from the next frame boundary
                // with its HPACK state unknown; the other direction is unaffected.
                h2.resync(chunk.direction);
                self.counters.gaps += 1;
                self.counters.resyncs += 1;
            } else if conn.stop_decoding(seen, &mut self.finished, &mut self.dns_finished) {
                self.counters.gaps += 1;
            }
        }
        let call_start = chunk.offset == 0;
        let call_end = chunk.offset as usize + chunk.bytes.len() >= chunk.total_len as usize;
        let bytes = Bytes {
            dir: chunk.direction,
            bytes: chunk.bytes,
            call_start,
            call_end,
            peer: None,
        };
        match &mut conn.proto {
            Proto::Ignored => {}
            Proto::Sniffing(sniff) => {
                let verdict = sniff.feed(&bytes, seen);
                self.on_verdict(key, &mut conn, verdict);
            }
            Proto::TlsHello(buf) => {
                if chunk.direction == Direction::Egress {
                    buf.extend_from_slice(chunk.bytes);
                    self.read_client_hello(key, &mut conn);
                }
            }
            Proto::H2Client(_) | Proto::H1Client(_) | Proto::Dns(_) => {
                self.feed_decoder(key, &mut conn, bytes, seen)
            }
        }
        self.flush_finished(key, &mut conn);
        self.conns.insert(key, conn);
    }

    fn on_verdict(&mut self, key: ConnKey, conn: &mut Conn, verdict: Verdict) {
        let c = &mut self.counters;
        let proto = match verdict {
            Verdict::Undecided => return,
            Verdict::H2Client => {
                c.h2_client_conns += 1;
                Proto::H2Client(Box::default())
            }
            Verdict::H2MidStream => {
                c.h2_client_conns += 1;
                c.mid_stream_conns += 1;
                conn.counted_mid_stream = true;
                Proto::H2Client(Box::new(H2Client::mid_stream()))
            }
            Verdict::H2Server | Verdict::Http1Server => {
                c.server_side_conns += 1;
                return self.ignore(key, conn);
            }
            Verdict::Tls => {
                c.tls_on_socket_conns += 1;
                let Proto::Sniffing(sniff) = &mut conn.proto else {
                    unreachable!("sniffing")
                };
                let hello: Vec<u8> = sniff
                    .take_pieces()
                    .into_iter()
                    .filter(|p| p.dir == Direction::Egress)
                    .flat_map(|p| p.bytes)
                    .collect();
                conn.proto = Proto::TlsHello(hello);
                return self.read_client_hello(key, conn);
            }
            Verdict::DnsServer => {
                c.server_side_conns += 1;
                return self.ignore(key, conn);
            }
            Verdict::DnsClient(framing) => {
                c.dns_client_conns += 1;
                conn.transport = Some(match (key.layer, framing) {
                    (Layer::Tls, _) => "dot",
                    (Layer::Socket, Framing::Datagram) => "dns-udp",
                    (Layer::Socket, Framing::Stream) => "dns-tcp",
                });
                Proto::Dns(Box::new(DnsClient::new(framing)))
            }
            Verdict::Http1Client => {
                c.h1_client_conns += 1;
                Proto::H1Client(Box::default())
            }
            Verdict::Other => {
                c.undecoded_conns += 1;
                return self.ignore(key, conn);
            }
        };
        let Proto::Sniffing(sniff) = &mut conn.proto else {
            unreachable!("sniffing")
        };
        let pieces = sniff.take_pieces();
        match &proto {
            Proto::H1Client(_) => {
                conn.proto_version = Some("http/1.1");
                conn.transport = Some("doh");
            }
            Proto::H2Client(_) => {
                conn.proto_version = Some("h2");
                conn.transport = Some("doh");
            }
            _ => {}
        }
        conn.proto = proto;
        // The process and connection are alive right now: learn what /proc knows.
        let _ = self.procs.leader_comm(key.pid);
        let _ = self.procs.context(key.pid, conn.uid);
        if let ConnId::Fd(fd) = key.id {
            if let Some(ends) = self.procs.socket_ends(key.pid, fd) {
                conn.peer = conn.peer.or(Some(ends.remote));
                conn.local = Some(ends.local);
            }
        }
        for p in pieces {
            let bytes = Bytes {
                dir: p.dir,
                bytes: &p.bytes,
                call_start: p.call_start,
                call_end: p.call_end,
                peer: p.peer,
            };
            self.feed_decoder(key, conn, bytes, p.seen);
        }
    }

    fn ignore(&mut self, key: ConnKey, conn: &mut Conn) {
        conn.proto = Proto::Ignored;
        self.decide(key, conn, skip_bit(key.layer));
    }

    /// Feeds bytes to the connection's decoder, then acts on what it learnt: errors stop
    /// decoding (counted), the first request classifies the connection, an h2c upgrade
    /// switches decoders.
    fn feed_decoder(&mut self, key: ConnKey, conn: &mut Conn, b: Bytes<'_>, seen: Seen) {
        let (counters, finished) = (&mut self.counters, &mut self.finished);
        let (dir, bytes, call_start) = (b.dir, b.bytes, b.call_start);
        let (first, failed) = match &mut conn.proto {
            Proto::Dns(dns) => {
                let peer = b.peer.or(conn.peer);
                let r = dns.feed(
                    dir,
                    bytes,
                    call_start,
                    b.call_end,
                    peer,
                    seen,
                    counters,
                    &mut self.dns_finished,
                );
                let Ok(sent) = r else {
                    // Sends answers or receives queries: a server after all.
                    counters.dns_client_conns -= 1;
                    counters.server_side_conns += 1;
                    conn.stop_decoding(seen, &mut Vec::new(), &mut Vec::new());
                    conn.decided = false;
                    return self.decide(key, conn, skip_bit(key.layer));
                };
                // The queries just sent are the last ones waiting; those to a local resolver
                // wait for relay links.
                let mut to_local: Vec<_> = dns
                    .pending()
                    .rev()
                    .take(sent)
                    .filter(|q| q.server.as_ref().is_some_and(relay::is_local))
                    .cloned()
                    .collect();
                if !to_local.is_empty() {
                    to_local.reverse();
                    let comm = self.process_name(key.pid, conn);
                    let transport = conn.transport.unwrap_or("dns-udp");
                    for q in &to_local {
                        self.relay.query_sent(key.pid, &comm, transport, q);
                    }
                }
                (FirstRequest::Doh, false)
            }
            Proto::H2Client(h2) => {
                let r = h2.feed(dir, bytes, call_start, seen, counters, finished);
                if let Err(e) = &r {
                    match e {
                        H2Error::Hpack(_) => counters.hpack_errors += 1,
                        _ => counters.h2_errors += 1,
                    }
                }
                (h2.first_request(), r.is_err())
            }
            Proto::H1Client(h1) => match h1.feed(dir, bytes, seen, counters, finished) {
                Ok(Some(h2)) => {
                    counters.h2c_upgrades += 1;
                    conn.proto_version = Some("h2");
                    let first = h2.first_request();
                    conn.proto = Proto::H2Client(h2);
                    (first, false)
                }
                Ok(None) => (h1.first_request(), false),
                Err(_) => {
                    counters.h1_errors += 1;
                    (h1.first_request(), true)
                }
            },
            Proto::Sniffing(_) | Proto::TlsHello(_) | Proto::Ignored => return,
        };
        if failed {
            conn.stop_decoding(seen, &mut self.finished, &mut self.dns_finished);
            // Nothing more will be decoded: if the kernel was told to copy everything, tell it
            // to stop (the skip bit wins over the full one).
            if conn.decided && conn.copy_all {
                conn.copy_all = false;
                self.decisions.push(CaptureDecision {
                    key,
                    policy: skip_bit(key.layer),
                });
            }
            return;
        }
        match first {
            FirstRequest::Doh => self.decide(key, conn, full_bit(key.layer)),
            FirstRequest::NotDoh if !conn.decided => {
                // Classified by its first request: not DNS. Stop copying and decoding it.
                self.counters.non_dns_conns += 1;
                conn.stop_decoding(seen, &mut self.finished, &mut self.dns_finished);
                self.decide(key, conn, skip_bit(key.layer));
            }
            FirstRequest::NotDoh | FirstRequest::Pending => {}
        }
    }

    /// Turns finished exchanges into lookup records.
    fn flush_finished(&mut self, key: ConnKey, conn: &mut Conn) {
        if self.finished.is_empty() && self.dns_finished.is_empty() {
            return;
        }
        let comm = self.process_name(key.pid, conn);
        let context = self.procs.context(key.pid, conn.uid);
        let (server, client) = conn.endpoints();
        let facts = ConnFacts {
            pid: key.pid,
            comm: &comm,
            uid: conn.uid,
            server,
            client,
            tls: key.layer == Layer::Tls,
            context: &context,
        };
        let mut finished = std::mem::take(&mut self.finished);
        for f in finished.drain(..) {
            let ended = f.ended;
            match to_lookup(
                f,
                &facts,
                &mut conn.last_url,
                &self.clock,
                &mut self.counters,
            ) {
                Judged::Lookup(lookup) => {
                    self.emit(lookup, conn);
                    self.decide(key, conn, full_bit(key.layer));
                }
                Judged::NotDns => {
                    conn.non_dns_streams += 1;
                    if conn.non_dns_streams >= MID_STREAM_PATIENCE && !conn.decided {
                        self.counters.non_dns_conns += 1;
                        conn.stop_decoding(ended, &mut Vec::new(), &mut Vec::new());
                        self.decide(key, conn, skip_bit(key.layer));
                    }
                }
                Judged::ServerSide => {
                    if std::mem::take(&mut conn.counted_mid_stream) {
                        // Counted as a client while its role was unknown.
                        self.counters.h2_client_conns -= 1;
                        self.counters.mid_stream_conns -= 1;
                    }
                    self.counters.server_side_conns += 1;
                    conn.stop_decoding(ended, &mut Vec::new(), &mut Vec::new());
                    self.decide(key, conn, skip_bit(key.layer));
                }
                Judged::Dropped => {}
            }
        }
        let mut dns_finished = std::mem::take(&mut self.dns_finished);
        for f in dns_finished.drain(..) {
            let transport = conn.transport.unwrap_or("dns-udp");
            let lookup = dns_lookup(&f, &facts, transport, &self.clock);
            self.emit(Box::new(lookup), conn);
            self.relay.query_done(key.pid, &f.query);
        }
        // Keep the buffers' capacity for the next flush (nothing above adds to them).
        if self.finished.is_empty() {
            self.finished = finished;
        }
        if self.dns_finished.is_empty() {
            self.dns_finished = dns_finished;
        }
    }
}

impl Pipeline {
    /// Completes a lookup with what the connection and the other lookups tell, and reports it.
    fn emit(&mut self, mut lookup: Box<Lookup>, conn: &mut Conn) {
        self.counters.lookups += 1;
        conn.lookups += 1;
        lookup.tls_library = conn.tls_library;
        // The ClientHello's name, when there was one, else what the record already says.
        let hello_name = conn.hello.as_ref().map(|h| h.server_name.as_deref());
        let memo = conn.resolver_memo.as_deref().filter(|m| {
            m.server_name.as_deref() == hello_name.unwrap_or(lookup.server_name.as_deref())
                && m.authority == lookup.authority
                && m.server == lookup.server
        });
        match memo {
            Some(m) => {
                if hello_name.is_some() {
                    lookup.server_name = m.server_name.clone();
                }
                lookup.resolver = m.resolver.clone();
            }
            None => {
                if let Some(name) = hello_name {
                    lookup.server_name = name.map(Arc::from);
                }
                lookup.resolver = self.resolver_of(&lookup).map(Arc::from);
                conn.resolver_memo = Some(Box::new(ResolverMemo {
                    server_name: lookup.server_name.clone(),
                    authority: lookup.authority.clone(),
                    server: lookup.server.clone(),
                    resolver: lookup.resolver.clone(),
                }));
            }
        }
        let sent_ns = lookup.sent_ns;
        self.relay.link(&mut lookup, sent_ns);
        self.out.push(lookup);
    }

    /// The process's name: its leader's, else that of the thread seen on the connection.
    fn process_name(&mut self, pid: u32, conn: &Conn) -> Arc<str> {
        self.procs
            .leader_comm(pid)
            .unwrap_or_else(|| comm_str(&conn.thread_comm).into())
    }

    /// The well-known resolver a lookup went to, by TLS name, HTTP authority or address.
    fn resolver_of(&self, l: &Lookup) -> Option<String> {
        let host = |a: &str| a.rsplit_once(':').map_or(a, |(h, _)| h).to_string();
        l.server_name
            .iter()
            .map(|n| n.to_string())
            .chain(l.authority.as_deref().map(host))
            .find_map(|name| self.resolvers.match_name(&name).map(String::from))
            .or_else(|| {
                let ip = l.server.as_ref()?.ip.parse().ok()?;
                self.resolvers.match_addr(ip).map(String::from)
            })
    }

    /// A DNS datagram on a socket without a tracked connection: decoded per socket, paired by
    /// the datagram's peer.
    fn on_datagram(&mut self, d: Datagram<'_>) {
        let key = ConnKey {
            pid: d.meta.pid,
            id: ConnId::Fd(d.fd),
            layer: Layer::Socket,
        };
        if !self.conns.contains_key(&key) {
            self.make_room();
        }
        let mut conn = self
            .conns
            .remove(&key)
            .unwrap_or_else(|| Conn::new(None, SocketType::Datagram));
        conn.uid = d.meta.uid;
        conn.thread_comm = d.comm;
        conn.first_data_ns.get_or_insert(d.meta.ts_ns);
        conn.last_data_ns = d.meta.ts_ns;
        let seen = Seen {
            ts_ns: d.meta.ts_ns,
            tid: d.meta.tid,
        };
        let bytes = Bytes {
            dir: d.direction,
            bytes: d.bytes,
            call_start: true,
            call_end: d.bytes.len() == d.total_len as usize,
            peer: Some(d.peer),
        };
        match &mut conn.proto {
            Proto::Sniffing(sniff) => {
                let verdict = sniff.feed(&bytes, seen);
                self.on_verdict(key, &mut conn, verdict);
            }
            Proto::Dns(_) => self.feed_decoder(key, &mut conn, bytes, seen),
            _ => {}
        }
        self.flush_finished(key, &mut conn);
        self.conns.insert(key, conn);
    }

    /// Reads the ClientHello gathered so far: once complete (or hopeless), the socket's bytes
    /// are no longer copied; if it names a well-known resolver or a DoT port, the connection
    /// becomes an opaque candidate whose bytes the kernel counts.
    fn read_client_hello(&mut self, key: ConnKey, conn: &mut Conn) {
        let Proto::TlsHello(buf) = &conn.proto else {
            return;
        };
        match crate::opaque::parse_client_hello(buf) {
            crate::opaque::HelloParse::NeedMore => return,
            crate::opaque::HelloParse::Complete(hello) => conn.hello = Some(hello),
            crate::opaque::HelloParse::NotClientHello(_) => {
                // A server's side (ServerHello first) is no ClientHello either: only count
                // what claimed to be one.
                if buf.first() == Some(&0x16) && buf.get(5) == Some(&1) {
                    self.counters.bad_client_hellos += 1;
                }
            }
        }
        conn.proto = Proto::Ignored;
        let mut policy = skip_bit(key.layer);
        if let Some(t) =
            opaque_conns::tls_candidate(&self.resolvers, conn.peer, conn.hello.as_ref())
        {
            conn.opaque = Some(t);
            policy |= CAPTURE_COUNT;
        }
        self.decide(key, conn, policy);
    }

    /// An opaque candidate ended without its plaintext being seen: report the connection.
    fn report_opaque(&mut self, key: ConnKey, conn: &mut Conn, seen: Seen) {
        let Some(transport) = conn.opaque else {
            return;
        };
        self.counters.opaque_conns += 1;
        let comm = self.process_name(key.pid, conn);
        let context = self.procs.context(key.pid, conn.uid);
        let start = conn.opened_ns.or(conn.first_data_ns).unwrap_or(seen.ts_ns);
        let lookup = Lookup {
            time: self.clock.rfc3339(seen.ts_ns),
            pid: key.pid,
            tid: seen.tid,
            uid: conn.uid,
            comm,
            transport,
            server: conn.peer.map(Endpoint::from),
            client: conn.local.map(Endpoint::from),
            alpn: conn.hello.as_ref().map(|h| h.alpn.clone()),
            bytes_sent: conn.bytes.map(|b| b.0 + conn.copied.0),
            bytes_received: conn.bytes.map(|b| b.1 + conn.copied.1),
            duration_ms: Some(seen.ts_ns.saturating_sub(start) as f64 / 1e6),
            status: crate::lookup::Status::Opaque,
            sent_ns: start,
            context,
            ..Default::default()
        };
        self.emit(Box::new(lookup), conn);
    }
}

/// Whether bytes of this source are TLS plaintext.
pub fn layer_of(source: Source) -> Layer {
    if source.is_tls() {
        Layer::Tls
    } else {
        Layer::Socket
    }
}
