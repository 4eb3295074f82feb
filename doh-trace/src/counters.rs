//! Counters of everything the pipeline could not decode or had to drop, so that nothing is
//! lost silently. Shown on stderr while running and in the exit summary.

use std::fmt;

/// Userspace decoding counters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DecodeCounters {
    /// Ring-buffer records decoded.
    pub events: u64,
    /// Records that could not be decoded at all.
    pub bad_events: u64,
    /// Connections with chunks missing inside or between I/O calls.
    pub gaps: u64,
    /// HTTP/2 connections that went on decoding after a gap, from the next frame boundary.
    pub resyncs: u64,
    /// HTTP/2 client connections decoded (from their start or joined mid-stream).
    pub h2_client_conns: u64,
    /// Of those, connections joined mid-stream (headers unknown).
    pub mid_stream_conns: u64,
    /// HTTP/1.1 client connections decoded.
    pub h1_client_conns: u64,
    /// HTTP/1.1 connections upgraded to HTTP/2 (h2c).
    pub h2c_upgrades: u64,
    /// Connections dropped because their HTTP/1.1 framing was malformed.
    pub h1_errors: u64,
    /// Connections where this process is the server side (not reported).
    pub server_side_conns: u64,
    /// Connections classified as not carrying DNS (no longer copied or decoded).
    pub non_dns_conns: u64,
    /// Sockets whose own bytes are TLS records (their plaintext comes from the TLS hooks).
    pub tls_on_socket_conns: u64,
    /// Connections in a protocol doh-trace does not decode.
    pub undecoded_conns: u64,
    /// Connections dropped from decoding because their HTTP/2 framing was malformed.
    pub h2_errors: u64,
    /// Connections dropped because a header block could not be HPACK-decoded.
    pub hpack_errors: u64,
    /// DoH requests whose query could not be recovered (bad base64, not DNS).
    pub bad_queries: u64,
    /// DoH answers that were not parseable DNS.
    pub bad_answers: u64,
    /// DoH bodies larger than a DNS message can be.
    pub oversized_bodies: u64,
    /// DoH streams not tracked because a connection had too many open.
    pub streams_over_limit: u64,
    /// Classic DNS (UDP/TCP) and DoT client connections decoded.
    pub dns_client_conns: u64,
    /// DNS messages (classic DNS, DoT) that could not be parsed.
    pub bad_dns_messages: u64,
    /// DNS answers that matched no query waiting on their socket.
    pub unmatched_dns_answers: u64,
    /// DNS queries ended early because their socket had too many waiting.
    pub dns_pending_overflow: u64,
    /// Encrypted DNS connections reported without plaintext (opaque).
    pub opaque_conns: u64,
    /// TLS ClientHellos on sockets that could not be parsed.
    pub bad_client_hellos: u64,
    /// TLS objects on memory or custom BIOs bound to their socket by their client random.
    pub tls_bound: u64,
    /// TLS objects without a socket syscall whose socket was not found (their lookups have no
    /// server address).
    pub tls_unbound: u64,
    /// TLS object bindings forgotten because too many were kept.
    pub tls_bindings_evicted: u64,
    /// TLS plaintext chunks dropped because another source (a hook, or the key log) already
    /// delivered that connection's plaintext.
    pub tls_source_conflicts: u64,
    /// Relay peers (clients of a local resolver, or its upstream lookups) that matched a
    /// lookup beyond the most listed (`lookup::relay::MAX_RELAY_PEERS`).
    pub relay_ambiguous: u64,
    /// Connections whose decoding stopped because the decoding state of all connections
    /// together went over the memory budget (`pipeline::memory`), and the bytes they held.
    pub memory_dropped_conns: u64,
    pub memory_dropped_bytes: u64,
    /// Lookups reported.
    pub lookups: u64,
}

/// What a connection decoded as a client was counted as when it was classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientClass {
    /// An HTTP/2 client, seen from its start or joined mid-stream.
    H2 { mid_stream: bool },
    /// An HTTP/1.1 client.
    H1,
    /// A classic DNS or DoT client.
    Dns,
}

impl DecodeCounters {
    /// Counts a connection classified as a client of this kind.
    pub fn client(&mut self, class: ClientClass) {
        match class {
            ClientClass::H2 { mid_stream } => {
                self.h2_client_conns += 1;
                self.mid_stream_conns += u64::from(mid_stream);
            }
            ClientClass::H1 => self.h1_client_conns += 1,
            ClientClass::Dns => self.dns_client_conns += 1,
        }
    }

    /// A connection turned out to be the server side: counted as that, and no longer as the
    /// client it was counted as (`was`), if any.
    pub fn turned_server(&mut self, was: Option<ClientClass>) {
        match was {
            Some(ClientClass::H2 { mid_stream }) => {
                self.h2_client_conns -= 1;
                self.mid_stream_conns -= u64::from(mid_stream);
            }
            Some(ClientClass::H1) => self.h1_client_conns -= 1,
            Some(ClientClass::Dns) => self.dns_client_conns -= 1,
            None => {}
        }
        self.server_side_conns += 1;
    }

    /// Counters that mean something was lost or undecodable, with their labels.
    pub fn problems(&self) -> Vec<(&'static str, u64)> {
        [
            ("undecodable events", self.bad_events),
            ("connections with lost bytes", self.gaps),
            ("malformed HTTP/2 connections", self.h2_errors),
            ("malformed HTTP/1.1 connections", self.h1_errors),
            ("HPACK failures", self.hpack_errors),
            ("unrecoverable DoH queries", self.bad_queries),
            ("unparseable DoH answers", self.bad_answers),
            ("oversized DoH bodies", self.oversized_bodies),
            ("DoH streams over limit", self.streams_over_limit),
            ("unparseable DNS messages", self.bad_dns_messages),
            ("DNS answers without a query", self.unmatched_dns_answers),
            (
                "DNS queries over the per-socket limit",
                self.dns_pending_overflow,
            ),
            ("unparseable TLS ClientHellos", self.bad_client_hellos),
            (
                "TLS objects on memory BIOs whose socket was not found",
                self.tls_unbound,
            ),
            ("TLS object bindings evicted", self.tls_bindings_evicted),
            (
                "TLS plaintext chunks from a second source",
                self.tls_source_conflicts,
            ),
            (
                "relay peers beyond the listed 8 (relay_ambiguous)",
                self.relay_ambiguous,
            ),
            (
                "connections dropped over the memory budget",
                self.memory_dropped_conns,
            ),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
    }
}

impl fmt::Display for DecodeCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} lookups, {} events, {} HTTP/2 client connections ({} joined mid-stream), \
             {} HTTP/1.1 client connections ({} upgraded to h2c), \
             {} DNS/DoT client sockets, {} opaque encrypted DNS connections, \
             {} classified not DNS, {} server-side (not reported), {} TLS sockets, \
             {} in protocols not decoded, {} TLS objects bound to their socket",
            self.lookups,
            self.events,
            self.h2_client_conns,
            self.mid_stream_conns,
            self.h1_client_conns,
            self.h2c_upgrades,
            self.dns_client_conns,
            self.opaque_conns,
            self.non_dns_conns,
            self.server_side_conns,
            self.tls_on_socket_conns,
            self.undecoded_conns,
            self.tls_bound,
        )?;
        for (label, n) in self.problems() {
            write!(f, ", {n} {label}")?;
        }
        Ok(())
    }
}
