//! The per-connection view (`--connections`): one record per DNS-carrying connection when it
//! ends, so users can see clients that open a new TLS connection per lookup.

use std::sync::Arc;

use serde::Serialize;

use crate::{clock::Rfc3339, lookup::Endpoint};

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClosedBy {
    /// The process called close() on the socket.
    Process,
    /// The process exited with the socket open.
    Exit,
    /// The fd was reused for a new connection without a close being seen.
    Replaced,
    /// The tracer dropped it to stay within its connection limit.
    Evicted,
}

/// One DNS-carrying connection, reported when it ends (`docs/schema/connection.v1.schema.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionRecord {
    /// When the connection ended (RFC 3339, UTC).
    pub time: Rfc3339,
    /// The process; null for a connection read from a packet capture (no process is known).
    pub pid: Option<u32>,
    pub uid: Option<u32>,
    pub comm: Option<Arc<str>>,
    /// `doh`, `dot`, `dns-udp`, `dns-tcp` or an opaque transport.
    pub transport: &'static str,
    /// `"h2"` or `"http/1.1"` (the last one used, after an h2c upgrade "h2"); None without HTTP.
    pub http_version: Option<&'static str>,
    /// Whether the bytes were TLS plaintext (false: a cleartext socket).
    pub tls: bool,
    pub server: Option<Endpoint>,
    pub client: Option<Endpoint>,
    /// When connect()/accept() returned, if the tracer saw it.
    pub opened: Option<Rfc3339>,
    /// From connect() to the first application data: the TCP and TLS handshakes.
    pub handshake_ms: Option<f64>,
    /// Lookups the connection carried.
    pub lookups: u32,
    /// From connect() (or the first data seen) to the end.
    pub lifetime_ms: f64,
    /// From the last data to the end.
    pub idle_ms: f64,
    pub closed_by: ClosedBy,
    /// The connection was already open when the tracer started.
    pub joined_mid_stream: bool,
}
