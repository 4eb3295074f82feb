//! A connection's bytes: gaps, classification by the first bytes, the TLS ClientHello on a
//! socket, and feeding the client decoder.

use crate::{
    conn::{
        policy::CapturePolicy,
        sniff::{Piece, Verdict},
    },
    counters::ClientClass,
    lookup::opaque,
    proto::{
        dns::client::{DnsClient, Framing},
        doh::{client_h1::H1Client, client_h2::H2Client},
        tls::{client_hello, decrypt::quic::initial_client_hello, parse_client_hello, HelloParse},
        Bytes, ClientDecoder, Fed, FirstRequest, Seen,
    },
    source::{ConnId, ConnKey, DataChunk, Datagram, Direction, Layer, SocketType},
};

use super::{
    lifecycle::seen,
    state::{Conn, Proto},
    Pipeline, MID_STREAM_PATIENCE,
};

impl Pipeline {
    /// Bytes of one layer of a connection.
    pub(super) fn on_data(&mut self, chunk: DataChunk<'_>) {
        let (pid, layer) = (chunk.meta.pid, chunk.layer);
        let id = self.tls_socket(&chunk.meta, chunk.id, layer);
        let key = ConnKey { pid, id, layer };
        if !self.conns.contains(&key) {
            self.make_room();
        } else if layer == Layer::Tls
            && self
                .conns
                .get(&key)
                .is_some_and(|c| c.tls.library.is_some() && c.tls.library != chunk.library)
        {
            // One source owns a connection's plaintext: a hook attached in the middle of a
            // connection the key log decrypts (or the other way round) would repeat it.
            self.counters.tls_source_conflicts += 1;
            return;
        }
        // TLS plaintext inherits the peer, open time and TLS server name learnt on the socket.
        let socket_key = ConnKey {
            layer: Layer::Socket,
            ..key
        };
        let (peer, opened, sock_type) = match self.conns.get_mut(&socket_key) {
            Some(c) => {
                if layer == Layer::Tls {
                    c.tls.plaintext_seen = true;
                }
                (c.ends.peer, c.times.opened_ns, c.sock_type)
            }
            None => (None, None, SocketType::Unknown),
        };
        let mut conn = self.conns.remove(&key).unwrap_or_else(|| {
            // TLS plaintext is a stream whatever the socket below it.
            let own_type = match layer {
                Layer::Socket => sock_type,
                Layer::Tls => SocketType::Unknown,
            };
            let mut c = Box::new(Conn::new(peer, own_type));
            c.times.opened_ns = opened;
            c
        });
        if layer == Layer::Tls {
            if conn.tls.hello.is_none() {
                // Copied once, not for every chunk (the socket's state is still in the table:
                // only the TLS layer's was taken out).
                conn.tls.hello = self
                    .conns
                    .get(&socket_key)
                    .and_then(|c| c.tls.hello.clone());
            }
            conn.tls.library = chunk.library;
        }
        conn.uid = chunk.meta.uid;
        if layer == Layer::Socket {
            // Bytes copied before the kernel was told to count (or skip) this socket.
            match chunk.direction {
                Direction::Egress => conn.tls.copied.0 += chunk.bytes.len() as u64,
                Direction::Ingress => conn.tls.copied.1 += chunk.bytes.len() as u64,
            }
        }
        conn.times.first_data_ns.get_or_insert(chunk.meta.ts_ns);
        conn.times.last_data_ns = chunk.meta.ts_ns;
        conn.thread_comm = chunk.comm;
        let seen = seen(&chunk.meta);
        let len = chunk.bytes.len() as u32;
        if !conn
            .sequence(chunk.direction)
            .accept(chunk.offset, len, chunk.total_len)
        {
            self.lost_bytes(key, &mut conn, chunk.direction, seen);
        }
        let bytes = Bytes {
            dir: chunk.direction,
            bytes: chunk.bytes,
            call_start: chunk.offset == 0,
            call_end: chunk.offset as usize + chunk.bytes.len() >= chunk.total_len as usize,
            peer: None,
        };
        match &mut conn.proto {
            Proto::Ignored if conn.tls.quic_initial_pending => {
                if chunk.direction == Direction::Egress {
                    self.read_quic_initial(key, &mut conn, chunk.bytes);
                }
            }
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
            Proto::Client(_) => self.feed_decoder(key, &mut conn, bytes, seen),
        }
        self.flush_finished(key, &mut conn);
        self.conns.insert(key, conn);
        self.check_memory(seen);
    }

    /// After bytes were decoded: beyond the memory budget, the largest connections of the
    /// processes holding most stop being decoded (see [`super::memory`]); what they held, and
    /// any lookup open on them, is dropped and counted. The kernel stops copying their socket
    /// bytes (not a TLS layer's: a decision there would also end a key-log decryption of the
    /// socket below).
    fn check_memory(&mut self, seen: Seen) {
        let held = self.conns.held();
        if !self.memory.over(held) {
            return;
        }
        for (key, bytes) in self.memory.to_drop(self.conns.held_by_key(), held) {
            let Some(mut conn) = self.conns.remove(&key) else {
                continue;
            };
            conn.drop_decoder(seen);
            if key.layer == Layer::Socket {
                match conn.capture.decided() {
                    true => self.policy.stopped(key, &mut conn.capture),
                    false => self.policy.skip(key, &mut conn.capture),
                }
            }
            self.counters.memory_dropped_conns += 1;
            self.counters.memory_dropped_bytes += bytes as u64;
            self.conns.insert(key, conn);
        }
    }

    /// Bytes of one direction were lost: an HTTP/2 decoder goes on from the next frame
    /// boundary with that direction's HPACK state unknown (the other direction is unaffected),
    /// a DNS datagram decoder from the next datagram; anything else stops decoding, and the
    /// kernel stops copying it.
    fn lost_bytes(&mut self, key: ConnKey, conn: &mut Conn, dir: Direction, seen: Seen) {
        let resynced = match &mut conn.proto {
            Proto::Client(decoder) => decoder.lost_bytes(dir),
            _ => false,
        };
        if resynced {
            self.counters.gaps += 1;
            self.counters.resyncs += 1;
        } else if conn.stop_decoding(seen, &mut self.exchanges) {
            self.counters.gaps += 1;
            // A socket's bytes stop being copied. Not TLS plaintext: a decision on that layer
            // would also end a key-log decryption of the socket below (its bytes may still
            // carry lookups on other streams), and a hook's copy costs nothing once decided.
            if key.layer == Layer::Socket {
                self.policy.stopped(key, &mut conn.capture);
            }
        }
    }

    /// A DNS datagram on a socket without a tracked connection: decoded per socket, paired by
    /// the datagram's peer.
    pub(super) fn on_datagram(&mut self, d: Datagram<'_>) {
        let key = ConnKey {
            pid: d.meta.pid,
            id: d.id,
            layer: Layer::Socket,
        };
        if !self.conns.contains(&key) {
            self.make_room();
        }
        let mut conn = self
            .conns
            .remove(&key)
            .unwrap_or_else(|| Box::new(Conn::new(None, SocketType::Datagram)));
        conn.uid = d.meta.uid;
        conn.thread_comm = d.comm;
        conn.times.first_data_ns.get_or_insert(d.meta.ts_ns);
        conn.times.last_data_ns = d.meta.ts_ns;
        let seen = seen(&d.meta);
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
            Proto::Client(decoder) if decoder.accepts_datagrams() => {
                self.feed_decoder(key, &mut conn, bytes, seen)
            }
            _ => {}
        }
        self.flush_finished(key, &mut conn);
        self.conns.insert(key, conn);
        self.check_memory(seen);
    }

    /// Acts on what the first bytes said: a client decoder takes over (and is fed what was
    /// kept), the ClientHello is read, or the connection is ignored.
    fn on_verdict(&mut self, key: ConnKey, conn: &mut Conn, verdict: Verdict) {
        let (class, decoder, http_version, transport): (_, Box<dyn ClientDecoder>, _, _) =
            match verdict {
                Verdict::Undecided => return,
                Verdict::H2Client => (
                    ClientClass::H2 { mid_stream: false },
                    Box::<H2Client>::default(),
                    Some("h2"),
                    "doh",
                ),
                Verdict::H2MidStream => (
                    ClientClass::H2 { mid_stream: true },
                    Box::new(H2Client::mid_stream()),
                    Some("h2"),
                    "doh",
                ),
                Verdict::Http1Client => (
                    ClientClass::H1,
                    Box::<H1Client>::default(),
                    Some("http/1.1"),
                    "doh",
                ),
                Verdict::DnsClient(framing) => (
                    ClientClass::Dns,
                    Box::new(DnsClient::new(framing)),
                    None,
                    match (key.layer, framing) {
                        (Layer::Tls, _) => "dot",
                        (Layer::Socket, Framing::Datagram) => "dns-udp",
                        (Layer::Socket, Framing::Stream) => "dns-tcp",
                    },
                ),
                Verdict::H2Server | Verdict::Http1Server | Verdict::DnsServer => {
                    self.counters.server_side_conns += 1;
                    return self.ignore(key, conn);
                }
                Verdict::Other => {
                    self.counters.undecoded_conns += 1;
                    return self.ignore(key, conn);
                }
                Verdict::Tls => {
                    self.counters.tls_on_socket_conns += 1;
                    let hello: Vec<u8> = self
                        .kept_pieces(conn)
                        .into_iter()
                        .filter(|p| p.dir == Direction::Egress)
                        .flat_map(|p| p.bytes)
                        .collect();
                    conn.proto = Proto::TlsHello(hello);
                    return self.read_client_hello(key, conn);
                }
            };
        self.counters.client(class);
        conn.class = Some(class);
        conn.reported.http_version = http_version;
        conn.reported.transport = Some(transport);
        let pieces = self.kept_pieces(conn);
        conn.proto = Proto::Client(decoder);
        // The process and connection are alive right now: learn what /proc knows.
        let _ = self.procs.leader_comm(key.pid);
        let _ = self.procs.context(key.pid, conn.uid);
        let ends = match key.id {
            ConnId::Fd(fd) => self.procs.socket_ends(key.pid, fd),
            ConnId::Flow(flow) => self.procs.flow_ends(flow),
            ConnId::TlsObject(_) => None,
        };
        if let Some(ends) = ends {
            conn.ends.peer = conn.ends.peer.or(Some(ends.remote));
            conn.ends.local = Some(ends.local);
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

    /// What the sniffer kept of a connection still being sniffed.
    fn kept_pieces(&self, conn: &mut Conn) -> Vec<Piece> {
        match &mut conn.proto {
            Proto::Sniffing(sniff) => sniff.take_pieces(),
            _ => Vec::new(),
        }
    }

    /// Nothing of the connection will be decoded: dropped, and no longer copied.
    fn ignore(&mut self, key: ConnKey, conn: &mut Conn) {
        conn.proto = Proto::Ignored;
        self.policy.skip(key, &mut conn.capture);
    }

    /// Feeds bytes to the connection's decoder, then acts on what it learnt: a failure stops
    /// decoding (counted by the decoder), the first request classifies the connection, an h2c
    /// upgrade switches decoders, a client that answers was the server after all.
    fn feed_decoder(&mut self, key: ConnKey, conn: &mut Conn, mut b: Bytes<'_>, seen: Seen) {
        let Proto::Client(decoder) = &mut conn.proto else {
            return;
        };
        // A datagram's own peer, else the connection's.
        b.peer = b.peer.or(conn.ends.peer);
        let fed = decoder.feed(&b, seen, &mut self.counters, &mut self.exchanges);
        let first = match fed {
            Fed::Going => decoder.first_request(),
            Fed::Switched(h2) => {
                conn.reported.http_version = Some("h2");
                let first = h2.first_request();
                conn.proto = Proto::Client(h2);
                first
            }
            Fed::ServerSide => {
                self.counters.turned_server(conn.class.take());
                conn.drop_decoder(seen);
                CapturePolicy::reconsider(&mut conn.capture);
                return self.policy.skip(key, &mut conn.capture);
            }
            Fed::Failed => {
                conn.stop_decoding(seen, &mut self.exchanges);
                // Nothing more will be decoded: the kernel stops copying.
                return self.policy.stopped(key, &mut conn.capture);
            }
        };
        self.relay_queries_sent(key.pid, conn);
        match first {
            FirstRequest::Dns => self.policy.copy_all(key, &mut conn.capture),
            FirstRequest::NotDns if !conn.capture.decided() => {
                // Classified by its first request: not DNS. Stop copying and decoding it.
                self.counters.non_dns_conns += 1;
                conn.stop_decoding(seen, &mut self.exchanges);
                self.policy.skip(key, &mut conn.capture);
            }
            FirstRequest::NotDns | FirstRequest::Pending => {}
        }
    }

    /// Queries just sent to a local resolver wait for the lookups it makes upstream.
    fn relay_queries_sent(&mut self, pid: u32, conn: &Conn) {
        if self.exchanges.sent_to_local.is_empty() {
            return;
        }
        let comm = self.process_name(pid, conn);
        let transport = conn.reported.transport.unwrap_or("dns-udp");
        for q in self.exchanges.sent_to_local.drain(..) {
            self.relay.query_sent(pid, &comm, transport, &q);
        }
    }

    /// Reads the ClientHello gathered so far: once complete (or hopeless), the socket's bytes
    /// are no longer copied; if it names a well-known resolver or a DoT port, the connection
    /// becomes an opaque candidate whose bytes the kernel counts.
    fn read_client_hello(&mut self, key: ConnKey, conn: &mut Conn) {
        let Proto::TlsHello(buf) = &conn.proto else {
            return;
        };
        let mut server = false;
        match parse_client_hello(buf) {
            HelloParse::NeedMore => return,
            HelloParse::Complete(hello) => conn.tls.hello = Some(hello),
            HelloParse::NotClientHello(_) => {
                // A server's side (ServerHello first) is no ClientHello either: only count
                // what claimed to be one.
                if buf.first() == Some(&0x16) && buf.get(5) == Some(&1) {
                    self.counters.bad_client_hellos += 1;
                }
                server = buf.first() == Some(&0x16) && buf.get(5) == Some(&2);
            }
        }
        conn.proto = Proto::Ignored;
        // A TLS server (this side sent the ServerHello) is no client of a resolver, even
        // when its peer's address is a listed one.
        let candidate = match server {
            true => None,
            false => {
                opaque::tls_candidate(&self.resolvers, conn.ends.peer, conn.tls.hello.as_ref())
            }
        };
        conn.tls.opaque = candidate;
        self.policy
            .skip_counting(key, &mut conn.capture, candidate.is_some());
    }

    /// The first datagram a QUIC candidate sent: its client Initial's ClientHello (decrypted
    /// with the keys RFC 9001 §5.2 derives from the connection id) names the server and the
    /// ALPN of the opaque record; then the socket is only counted.
    fn read_quic_initial(&mut self, key: ConnKey, conn: &mut Conn, datagram: &[u8]) {
        conn.tls.quic_initial_pending = false;
        if let Some(message) = initial_client_hello(datagram) {
            match client_hello::parse_message(&message) {
                HelloParse::Complete(hello) => conn.tls.hello = Some(hello),
                _ => self.counters.bad_client_hellos += 1,
            }
        }
        self.policy.skip_counting(key, &mut conn.capture, true);
    }

    /// Judges finished DoH exchanges of a mid-stream connection that were not DNS: after
    /// [`MID_STREAM_PATIENCE`] of them the connection is dropped.
    pub(super) fn not_dns_stream(&mut self, key: ConnKey, conn: &mut Conn, ended: Seen) {
        conn.reported.non_dns_streams += 1;
        if conn.reported.non_dns_streams >= MID_STREAM_PATIENCE && !conn.capture.decided() {
            self.counters.non_dns_conns += 1;
            conn.drop_decoder(ended);
            self.policy.skip(key, &mut conn.capture);
        }
    }
}
