//! The lookup record: one DNS question and its answer (or why there is none), as printed.

use std::{net::SocketAddr, sync::Arc};

use serde::Serialize;

use crate::{
    clock::Rfc3339,
    process::context::ProcessContext,
    proto::dns::{ip_text, Answers, Mnemonic},
};

pub mod connection;
pub mod judge;
pub mod opaque;
pub mod relay;
pub mod resolvers;

/// How a lookup ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// An answer was received and parsed.
    Ok,
    /// The HTTP response was not 2xx; `http_status` says which.
    HttpError,
    /// The stream was reset before an answer arrived.
    Reset,
    /// The connection closed or the process exited with the query unanswered; or, over UDP,
    /// no answer came and bytes the tracer lost meanwhile may have held it.
    #[default]
    Unanswered,
    /// A 2xx response whose body is not a DNS message.
    MalformedAnswer,
    /// No answer within the stream timeout.
    Timeout,
    /// An encrypted DNS connection seen without its plaintext: it ended, nothing more is known.
    Opaque,
}

impl Status {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::HttpError => "http-error",
            Status::Reset => "reset",
            Status::Unanswered => "unanswered",
            Status::MalformedAnswer => "malformed-answer",
            Status::Timeout => "timeout",
            Status::Opaque => "opaque",
        }
    }
}

/// Where a record's facts come from: a traced process, or packets read from a capture file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// A process the tracer saw (live, or a recording of it): pid, tid, uid and comm are real.
    #[default]
    Process,
    /// Packets of a capture file: no process is known, so pid, tid, uid and comm are written
    /// as null (their numbers in the record are placeholders, never shown).
    Capture,
}

impl Origin {
    /// Whether the record's process fields are real.
    pub fn is_process(&self) -> bool {
        *self == Origin::Process
    }
}

/// A resolver address. The text is shared: every lookup on a connection carries the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub ip: Arc<str>,
    pub port: u16,
}

impl From<SocketAddr> for Endpoint {
    fn from(a: SocketAddr) -> Self {
        Endpoint {
            ip: ip_text(a.ip()).into(),
            port: a.port(),
        }
    }
}

/// The other end of a relayed lookup: the client that asked a local resolver, or the upstream
/// lookup that resolver made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RelayPeer {
    pub pid: u32,
    pub comm: Arc<str>,
    pub transport: &'static str,
    pub server: Option<Endpoint>,
    /// The DoH URL or TLS server name of an upstream lookup, when known.
    pub server_name: Option<String>,
}

/// One DNS lookup as doh-trace reports it (the JSON-lines schema). `Default` is an empty,
/// unanswered record for builders to fill in.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Lookup {
    /// When the answer arrived (or the lookup ended), RFC 3339, UTC.
    pub time: Rfc3339,
    /// Process id (thread-group id) that made the lookup.
    pub pid: u32,
    /// Thread that sent the query.
    pub tid: u32,
    /// Real uid of the process.
    pub uid: u32,
    /// Process name (the thread-group leader's); shared by the process's lookups.
    pub comm: Arc<str>,
    /// `doh`, `dot`, `dns-udp`, `dns-tcp`, or `doh-opaque`/`dot-opaque`/`doq-opaque` for
    /// encrypted connections seen without their plaintext.
    pub transport: &'static str,
    /// Resolver address, when known.
    pub server: Option<Endpoint>,
    /// The local end of the connection, when known.
    pub client: Option<Endpoint>,
    /// HTTP `:authority`.
    pub authority: Option<Arc<str>>,
    /// Resolver URL without the query string.
    pub url: Option<Arc<str>>,
    /// `POST` or `GET`; null when the request headers are unknown.
    pub method: Option<Mnemonic>,
    /// `"h2"` or `"http/1.1"` (DoH only).
    pub http_version: Option<&'static str>,
    /// False when the connection was joined mid-stream and its request headers (method,
    /// authority, path) could not be decoded; nothing is guessed in their place (DoH only).
    pub headers_known: Option<bool>,
    /// HTTP/2 stream the exchange used (null for HTTP/1.1).
    pub stream_id: Option<u32>,
    /// Question name (None for opaque transports).
    pub qname: Option<Arc<str>>,
    /// Question type mnemonic.
    pub qtype: Option<Mnemonic>,
    /// DNS message id of the query.
    pub dns_id: Option<u16>,
    /// Response code mnemonic, when an answer was parsed.
    pub rcode: Option<Mnemonic>,
    /// Answer records in presentation format.
    pub answers: Answers,
    /// Time from the query being sent to the answer being read, in milliseconds.
    pub latency_ms: Option<f64>,
    /// How the lookup ended.
    pub status: Status,
    /// HTTP status of the response, when one arrived.
    pub http_status: Option<u16>,
    /// TLS server name (SNI) the client asked for, when its ClientHello was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<Arc<str>>,
    /// The hooked TLS library whose plaintext carried the lookup (`openssl`, `gnutls`, `nss`,
    /// `go`); absent for cleartext and opaque transports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_library: Option<&'static str>,
    /// ALPN protocols the client offered, when its ClientHello was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpn: Option<Vec<String>>,
    /// The well-known public resolver the server name or address belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolver: Option<Arc<str>>,
    /// Opaque transports: bytes the process sent and received on the connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_sent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_received: Option<u64>,
    /// Opaque transports: how long the connection lasted, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// This lookup was made by a local resolver on behalf of these clients (matched by
    /// question and time window).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relayed_for: Option<Vec<RelayPeer>>,
    /// The local resolver this lookup went to asked upstream like this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<Vec<RelayPeer>>,
    /// More than one candidate matched the relay link (so it may be wrong).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_ambiguous: Option<bool>,
    /// `"capture"` for records read from a packet capture (whose pid, tid, uid and comm are
    /// null); absent for traced processes.
    #[serde(skip_serializing_if = "Origin::is_process")]
    pub origin: Origin,
    /// Executable, command line, user, parent, cgroup and container of the process.
    #[serde(flatten)]
    pub context: Arc<ProcessContext>,
    /// The DNS query as sent (wire format; empty for the JSON API). Not in the JSON output;
    /// used for pcapng.
    #[serde(skip)]
    pub dns_query: Vec<u8>,
    /// The DNS answer as received, when it was a wire-format DNS message.
    #[serde(skip)]
    pub dns_answer: Option<Vec<u8>>,
    /// Kernel time (CLOCK_MONOTONIC ns) the query was sent; not in the JSON output.
    #[serde(skip)]
    pub sent_ns: u64,
}

impl Lookup {
    /// Whether the record comes from a process the tracer saw (not from a capture file).
    pub fn has_process(&self) -> bool {
        self.origin.is_process()
    }

    /// The question name, or "" when unknown (opaque transports).
    pub fn name(&self) -> &str {
        self.qname.as_deref().unwrap_or("")
    }

    /// What the RESULT column shows: the rcode, or how the lookup failed.
    pub fn result(&self) -> String {
        match self.status {
            Status::Ok => self.rcode.as_deref().unwrap_or_default().to_owned(),
            Status::HttpError => format!("HTTP {}", self.http_status.unwrap_or(0)),
            other => other.as_str().to_string(),
        }
    }

    /// Whether the lookup failed: no usable answer (any status but ok), or an error rcode.
    /// NXDOMAIN is an answer, not a failure.
    pub fn failed(&self) -> bool {
        self.status != Status::Ok
            || !matches!(self.rcode.as_deref(), Some("NOERROR") | Some("NXDOMAIN"))
    }
}
