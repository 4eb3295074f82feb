//! Connections opening and ending, processes exec'ing and exiting, and time passing.

use crate::{
    lookup::{
        connection::{ClosedBy, ConnectionRecord},
        opaque, Endpoint,
    },
    proto::Seen,
    source::{ConnId, ConnInfo, ConnKey, Layer, Meta, SocketType},
};

use super::{
    state::{Conn, Proto},
    Pipeline, STREAM_TIMEOUT_NS,
};

/// When and by which thread an event was seen.
pub(super) fn seen(meta: &Meta) -> Seen {
    Seen {
        ts_ns: meta.ts_ns,
        tid: meta.tid,
    }
}

impl Pipeline {
    /// A socket connected or accepted.
    pub(super) fn on_open(&mut self, c: ConnInfo) {
        // A capture's flow: its packets gave both ends (asked before the flow's id is
        // forgotten below; flow ids are never reused).
        let flow_local = match c.id {
            ConnId::Flow(flow) => self.procs.flow_ends(flow).map(|e| e.local),
            ConnId::Fd(_) | ConnId::TlsObject(_) => None,
        };
        // A new socket on a reused fd: whatever was there before has ended.
        self.end_id(c.meta.pid, c.id, seen(&c.meta), ClosedBy::Replaced);
        self.make_room();
        let key = ConnKey {
            pid: c.meta.pid,
            id: c.id,
            layer: Layer::Socket,
        };
        let mut conn = Box::new(Conn::new(Some(c.peer), c.sock_type));
        conn.ends.local = flow_local;
        conn.times.opened_ns = Some(c.meta.ts_ns);
        conn.uid = c.meta.uid;
        conn.thread_comm = c.comm;
        if c.sock_type == SocketType::Datagram {
            // QUIC to a DoQ port or to a well-known resolver: opaque, only counted once its
            // first datagram (the client Initial: server name, ALPN) has been read.
            if let Some(transport) = opaque::quic_candidate(&self.resolvers, c.peer) {
                conn.tls.opaque = Some(transport);
                conn.tls.quic_initial_pending = true;
                conn.proto = Proto::Ignored;
            }
        }
        self.conns.insert(key, conn);
        // The earliest moment to learn who this is: short-lived clients may be gone by
        // the time their lookup completes. Cached per process, so read once.
        let _ = self.procs.leader_comm(c.meta.pid);
        let _ = self.procs.context(c.meta.pid, c.meta.uid);
    }

    /// A connection closed.
    pub(super) fn on_close(&mut self, meta: Meta, id: ConnId) {
        if let ConnId::Fd(fd) = id {
            self.binder.socket_closed(meta.pid, fd);
        }
        self.end_id(meta.pid, id, seen(&meta), ClosedBy::Process);
    }

    /// Byte totals of a counted connection, just before its close.
    pub(super) fn on_counted(&mut self, pid: u32, id: ConnId, sent: u64, received: u64) {
        let key = ConnKey {
            pid,
            id,
            layer: Layer::Socket,
        };
        if let Some(conn) = self.conns.get_mut(&key) {
            conn.tls.counted = Some((sent, received));
        }
    }

    /// A TLS object whose calls made no socket syscall turned out to be socket `id`'s (its
    /// ClientHello went out there): what was decoded as the object goes on as the socket's TLS
    /// layer, with the socket's ends and server name, and the socket is no opaque candidate.
    pub(super) fn on_tls_bind(&mut self, pid: u32, id: ConnId, tls_obj: u64) {
        let socket = ConnKey {
            pid,
            id,
            layer: Layer::Socket,
        };
        let (peer, opened, hello) = match self.conns.get_mut(&socket) {
            Some(s) => {
                s.tls.plaintext_seen = true;
                (s.ends.peer, s.times.opened_ns, s.tls.hello.clone())
            }
            None => (None, None, None),
        };
        let from = ConnKey {
            pid,
            id: ConnId::TlsObject(tls_obj),
            layer: Layer::Tls,
        };
        let to = ConnKey {
            pid,
            id,
            layer: Layer::Tls,
        };
        let Some(mut conn) = self.conns.remove(&from) else {
            return;
        };
        if self.conns.contains(&to) {
            // The socket's layer already has plaintext of its own: keep that one.
            return;
        }
        conn.ends.peer = conn.ends.peer.or(peer);
        conn.times.opened_ns = conn.times.opened_ns.or(opened);
        if conn.tls.hello.is_none() {
            conn.tls.hello = hello;
        }
        if let ConnId::Fd(fd) = id {
            if let Some(ends) = self.procs.socket_ends(pid, fd) {
                conn.ends.peer = conn.ends.peer.or(Some(ends.remote));
                conn.ends.local = Some(ends.local);
            }
        }
        self.policy.rekeyed(to, &conn.capture);
        self.conns.insert(to, conn);
    }

    /// New program, same process: name, executable and command line changed. Every exec is
    /// reported (for hook discovery); only known processes are read again.
    pub(super) fn on_exec(&mut self, meta: Meta) {
        if self.procs.forget(meta.pid) {
            let _ = self.procs.leader_comm(meta.pid);
            let _ = self.procs.context(meta.pid, meta.uid);
        }
    }

    /// A process is gone, with every connection it had open.
    pub(super) fn on_exit(&mut self, meta: Meta) {
        for key in self.conns.keys_of(meta.pid, |_, _| true) {
            self.end_conn(key, seen(&meta), ClosedBy::Exit);
        }
        self.conns.forget_pid(meta.pid);
        self.procs.forget(meta.pid);
        self.binder.process_gone(meta.pid);
    }

    /// Time passes (kernel monotonic ns): exchanges without an answer for too long end.
    pub fn tick(&mut self, now_ns: u64) {
        self.last_tick_ns = now_ns;
        for key in self
            .conns
            .keys_where(|_, c| matches!(c.proto, Proto::Client(_)))
        {
            let mut conn = self.conns.remove(&key).expect("listed");
            if let Proto::Client(decoder) = &mut conn.proto {
                decoder.expire(now_ns, STREAM_TIMEOUT_NS, &mut self.exchanges);
            }
            self.flush_finished(key, &mut conn);
            self.conns.insert(key, conn);
        }
    }

    /// Both layers of a connection end.
    fn end_id(&mut self, pid: u32, id: ConnId, seen: Seen, how: ClosedBy) {
        if matches!(id, ConnId::Fd(_)) {
            self.policy.forget(pid, id);
        }
        match id {
            ConnId::Fd(fd) => self.procs.forget_socket(pid, fd),
            ConnId::Flow(flow) if how != ClosedBy::Replaced => self.procs.forget_flow(flow),
            ConnId::Flow(_) | ConnId::TlsObject(_) => {}
        }
        for layer in [Layer::Tls, Layer::Socket] {
            self.end_conn(ConnKey { pid, id, layer }, seen, how);
        }
    }

    /// Makes room for a new connection, ending the one the table gives up if it must.
    pub(super) fn make_room(&mut self) {
        // Ignored connections hold no lookups: the table drops them first, unreported.
        if let Some(key) = self.conns.make_room() {
            let now = self.last_tick_ns;
            self.end_conn(key, Seen { ts_ns: now, tid: 0 }, ClosedBy::Evicted);
        }
    }

    /// A connection layer ended: what was open ends unanswered, an opaque candidate is
    /// reported, and a connection that carried lookups gets its record.
    fn end_conn(&mut self, key: ConnKey, seen: Seen, how: ClosedBy) {
        let Some(mut conn) = self.conns.remove(&key) else {
            return;
        };
        conn.stop_decoding(seen, &mut self.exchanges);
        self.flush_finished(key, &mut conn);
        if conn.tls.opaque.is_some() && !conn.tls.plaintext_seen && !conn.tls.decrypted {
            self.report_opaque(key, &mut conn, seen);
        }
        if conn.reported.lookups > 0 {
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
        let times = &conn.times;
        let start = times.opened_ns.or(times.first_data_ns).unwrap_or(end_ns);
        let comm = self.process_name(key.pid, conn);
        let process = self.origin.is_process();
        ConnectionRecord {
            time: self.clock.rfc3339(end_ns),
            pid: process.then_some(key.pid),
            uid: process.then_some(conn.uid),
            comm: process.then_some(comm),
            transport: conn.tls.opaque.or(conn.reported.transport).unwrap_or("doh"),
            http_version: conn.reported.http_version,
            tls: key.layer == Layer::Tls,
            server: conn.ends.peer.map(Endpoint::from),
            client: conn.ends.local.map(Endpoint::from),
            opened: times.opened_ns.map(|t| self.clock.rfc3339(t)),
            handshake_ms: times
                .opened_ns
                .zip(times.first_data_ns)
                .map(|(o, f)| ms(o, f)),
            lookups: conn.reported.lookups,
            lifetime_ms: ms(start, end_ns),
            idle_ms: ms(times.last_data_ns.max(start), end_ns),
            closed_by: how,
            joined_mid_stream: conn.joined_mid_stream(),
        }
    }
}
