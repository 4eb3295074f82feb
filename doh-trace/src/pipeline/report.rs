//! Finished exchanges into records: judged, completed with what the connection tells (its
//! ends, TLS server name, library, resolver), linked to relayed lookups, and queued.

use std::sync::Arc;

use crate::{
    lookup::{
        judge::{dns_lookup, to_lookup, ConnFacts, Judged},
        Endpoint, Lookup, Status,
    },
    proto::Seen,
    source::{comm_str, ConnKey, Layer},
};

use super::{
    state::{Conn, ResolverMemo},
    Pipeline,
};

impl Pipeline {
    /// Turns the exchanges decoders finished into lookup records.
    pub(super) fn flush_finished(&mut self, key: ConnKey, conn: &mut Conn) {
        self.counters.unmatched_dns_answers +=
            std::mem::take(&mut self.exchanges.unmatched_dns_answers);
        if self.exchanges.doh.is_empty() && self.exchanges.dns.is_empty() {
            return;
        }
        let comm = self.process_name(key.pid, conn);
        let context = self.procs.context(key.pid, conn.uid);
        let (server, client) = conn.ends.endpoints();
        let facts = ConnFacts {
            pid: key.pid,
            comm: &comm,
            uid: conn.uid,
            server,
            client,
            tls: key.layer == Layer::Tls,
            context: &context,
        };
        let mut doh = std::mem::take(&mut self.exchanges.doh);
        for f in doh.drain(..) {
            let ended = f.ended;
            match to_lookup(
                f,
                &facts,
                &mut conn.reported.last_url,
                &self.clock,
                &mut self.counters,
            ) {
                Judged::Lookup(lookup) => {
                    self.emit(lookup, conn);
                    self.policy.copy_all(key, &mut conn.capture);
                }
                Judged::NotDns => self.not_dns_stream(key, conn, ended),
                Judged::ServerSide => {
                    // Counted as a client while its role was unknown.
                    self.counters.turned_server(conn.class.take());
                    conn.drop_decoder(ended);
                    self.policy.skip(key, &mut conn.capture);
                }
                Judged::Dropped => {}
            }
        }
        let mut dns = std::mem::take(&mut self.exchanges.dns);
        for f in dns.drain(..) {
            let transport = conn.reported.transport.unwrap_or("dns-udp");
            let lookup = dns_lookup(&f, &facts, transport, &self.clock);
            self.emit(Box::new(lookup), conn);
            self.relay.query_done(key.pid, &f.query);
        }
        // Keep the buffers' capacity for the next flush (nothing above adds to them).
        if self.exchanges.doh.is_empty() {
            self.exchanges.doh = doh;
        }
        if self.exchanges.dns.is_empty() {
            self.exchanges.dns = dns;
        }
    }

    /// Completes a lookup with what the connection and the other lookups tell, and reports it.
    fn emit(&mut self, mut lookup: Box<Lookup>, conn: &mut Conn) {
        self.counters.lookups += 1;
        conn.reported.lookups += 1;
        lookup.origin = self.origin;
        lookup.tls_library = conn.tls.library;
        // The ClientHello's name, when there was one, else what the record already says.
        let hello_name = conn.tls.hello.as_ref().map(|h| h.server_name.as_deref());
        let memo = conn.reported.resolver_memo.as_deref().filter(|m| {
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
                conn.reported.resolver_memo = Some(Box::new(ResolverMemo {
                    server_name: lookup.server_name.clone(),
                    authority: lookup.authority.clone(),
                    server: lookup.server.clone(),
                    resolver: lookup.resolver.clone(),
                }));
            }
        }
        let sent_ns = lookup.sent_ns;
        self.counters.relay_ambiguous += self.relay.link(&mut lookup, sent_ns);
        self.out.push(lookup);
    }

    /// The process's name: its leader's, else that of the thread seen on the connection.
    pub(super) fn process_name(&mut self, pid: u32, conn: &Conn) -> Arc<str> {
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

    /// An opaque candidate ended without its plaintext being seen: report the connection.
    pub(super) fn report_opaque(&mut self, key: ConnKey, conn: &mut Conn, seen: Seen) {
        let Some(transport) = conn.tls.opaque else {
            return;
        };
        self.counters.opaque_conns += 1;
        let comm = self.process_name(key.pid, conn);
        let context = self.procs.context(key.pid, conn.uid);
        let times = &conn.times;
        let start = times
            .opened_ns
            .or(times.first_data_ns)
            .unwrap_or(seen.ts_ns);
        let (counted, copied) = (conn.tls.counted, conn.tls.copied);
        let lookup = Lookup {
            time: self.clock.rfc3339(seen.ts_ns),
            pid: key.pid,
            tid: seen.tid,
            uid: conn.uid,
            comm,
            transport,
            server: conn.ends.peer.map(Endpoint::from),
            client: conn.ends.local.map(Endpoint::from),
            alpn: conn.tls.hello.as_ref().map(|h| h.alpn.clone()),
            // The kernel's totals are a recording's to make up: any u64.
            bytes_sent: counted.map(|b| b.0.saturating_add(copied.0)),
            bytes_received: counted.map(|b| b.1.saturating_add(copied.1)),
            duration_ms: Some(seen.ts_ns.saturating_sub(start) as f64 / 1e6),
            status: Status::Opaque,
            sent_ns: start,
            context,
            ..Default::default()
        };
        self.emit(Box::new(lookup), conn);
    }
}
