//! The lookup record: one DNS question and its answer (or why there is none), as printed.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
};

use serde::Serialize;

use crate::{
    clock::Rfc3339,
    context::ProcessContext,
    dns::{Answers, Mnemonic},
};

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
    /// The connection closed or the process exited with the query unanswered.
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

/// An address as `Display` spells it, without `core::fmt` (it is on every lookup's path).
pub fn ip_text(ip: IpAddr) -> String {
    let mut text = String::with_capacity(39);
    match ip {
        IpAddr::V4(v4) => push_ipv4(&mut text, v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => {
                text.push_str("::ffff:");
                push_ipv4(&mut text, v4);
            }
            None => push_ipv6(&mut text, v6.segments()),
        },
    }
    text
}

fn push_ipv4(text: &mut String, v4: Ipv4Addr) {
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        // Decimal without leading zeros, a digit at a time (cheaper than a formatter call
        // for at most three digits).
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
}

/// RFC 5952 text, as `Ipv6Addr`'s `Display`: lowercase hex without leading zeros, the first
/// longest run of two or more zero groups as `::`.
fn push_ipv6(text: &mut String, groups: [u16; 8]) {
    let (mut run_at, mut run_len) = (8, 0);
    let mut i = 0;
    while i < 8 {
        let start = i;
        while i < 8 && groups[i] == 0 {
            i += 1;
        }
        if i - start > run_len.max(1) {
            (run_at, run_len) = (start, i - start);
        }
        i += 1;
    }
    let hex = |text: &mut String, g: u16| {
        let digits = (16 - g.leading_zeros()).div_ceil(4).max(1);
        for shift in (0..digits).rev() {
            let nibble = (g >> (shift * 4)) & 0xf;
            text.push(char::from(b"0123456789abcdef"[usize::from(nibble)]));
        }
    };
    let mut i = 0;
    while i < 8 {
        if i == run_at {
            text.push_str("::");
            i += run_len;
            continue;
        }
        if i > 0 && i != run_at + run_len {
            text.push(':');
        }
        hex(text, groups[i]);
        i += 1;
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

/// The column header of [`Lookup::text_line`].
pub const TEXT_HEADER: &str = "TIME             PID PROCESS         TRANSPORT  RESOLVER              NAME                           TYPE  RESULT     ANSWERS                        LATENCY";

/// Most answers shown in a text line; the rest are counted.
const SHOWN_ANSWERS: usize = 2;

/// `s` padded to `width`, or cut with a trailing `…` when longer.
fn column(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        format!("{s:<width$}")
    } else {
        let cut: String = s.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

impl Lookup {
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

    /// One aligned line under [`TEXT_HEADER`] (the default output); `color` wraps the result
    /// in ANSI colours (red for failures, yellow for NXDOMAIN).
    pub fn text_line(&self, color: bool) -> String {
        let time = self.time.get(11..23).unwrap_or(&self.time);
        let server = self
            .server
            .as_ref()
            .map_or_else(|| "?".to_string(), |s| fmt_endpoint(&s.ip, s.port));
        // The authority (or TLS server name) is shown only when it says more than the address.
        let resolver = match self.authority.as_deref().or(self.server_name.as_deref()) {
            Some(a) if a != server => format!("{server} ({a})"),
            _ => server,
        };
        let mut answers = self
            .answers
            .iter()
            .take(SHOWN_ANSWERS)
            .cloned()
            .collect::<Vec<_>>()
            .join(",");
        if self.answers.len() > SHOWN_ANSWERS {
            answers.push_str(&format!(" +{}", self.answers.len() - SHOWN_ANSWERS));
        }
        if answers.is_empty() {
            answers.push('-');
        }
        if let Some(bytes) = self.bytes_sent.zip(self.bytes_received) {
            // Opaque: no question or answer, only the connection.
            answers = format!("{}B out, {}B in", bytes.0, bytes.1);
        }
        if let Some(up) = self.upstream.as_ref().and_then(|u| u.first()) {
            answers = format!("{answers} ⇢ {} {}", up.transport, up.comm);
        }
        let latency = self
            .latency_ms
            .map_or_else(|| "-".to_string(), |l| format!("{l:.1}ms"));
        let result = column(&self.result(), 10);
        let result = match (color, crate::summary::failed(self), self.rcode.as_deref()) {
            (false, _, _) => result,
            (true, true, _) => format!("\x1b[1;31m{result}\x1b[0m"),
            (true, false, Some("NXDOMAIN")) => format!("\x1b[33m{result}\x1b[0m"),
            (true, false, _) => result,
        };
        format!(
            "{time} {pid:>7} {comm} {transport} {resolver} {qname} {qtype} {result} {answers} {latency:>8}",
            pid = self.pid,
            comm = column(&self.comm, 15),
            transport = column(self.transport, 10),
            resolver = column(&resolver, 21),
            qname = column(self.qname.as_deref().unwrap_or("?"), 30),
            qtype = column(self.qtype.as_deref().unwrap_or("-"), 5),
            answers = column(&answers, 29),
        )
    }
}

fn fmt_endpoint(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::sample_lookup;

    #[test]
    fn spells_addresses_like_display() {
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.100.9",
            "::1",
            "2001:db8::10",
            "::ffff:1.2.3.4",
            "::",
            "1::",
            "::2:0:0:3",
            "1:0:0:2:0:0:0:3",
            "1:0:2:0:3:0:4:0",
            "fe80::abcd:ef01",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::1.2.3.4",
            "64:ff9b::192.0.2.33",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string());
        }
        // Every octet value in every position.
        for octet in 0..=255u8 {
            for at in 0..4 {
                let mut octets = [1, 20, 255, 0];
                octets[at] = octet;
                let ip = IpAddr::from(octets);
                assert_eq!(ip_text(ip), ip.to_string());
            }
        }
        // Every pattern of zero groups, with varied non-zero digits.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for zeros in 0u32..256 {
            for _ in 0..8 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let mut groups = [0u16; 8];
                for (i, g) in groups.iter_mut().enumerate() {
                    if zeros & (1 << i) == 0 {
                        let width = (seed >> (i * 8)) as u16 % 4;
                        *g = ((seed >> (i * 5)) as u16 | 1) >> (width * 4);
                    }
                }
                let ip = IpAddr::from(std::net::Ipv6Addr::from(groups));
                assert_eq!(ip_text(ip), ip.to_string(), "{groups:x?}");
            }
        }
    }

    #[test]
    fn text_lines_line_up_under_the_header() {
        let mut l = sample_lookup("www.doh.test", "A", Some("NOERROR"), &["192.0.2.10"]);
        l.transport = "doh-opaque";
        let line = l.text_line(false);
        assert_eq!(
            line.chars().count(),
            TEXT_HEADER.len(),
            "{line}\n{TEXT_HEADER}"
        );
        let chars: Vec<char> = line.chars().collect();
        for col in [
            "PROCESS",
            "TRANSPORT",
            "RESOLVER",
            "NAME",
            "TYPE",
            "RESULT",
            "ANSWERS",
        ] {
            let at = TEXT_HEADER.find(col).unwrap();
            assert_eq!(
                chars[at - 1],
                ' ',
                "a column starts where {col} does:\n{line}\n{TEXT_HEADER}"
            );
            assert_ne!(
                chars[at], ' ',
                "{col} content starts there:\n{line}\n{TEXT_HEADER}"
            );
        }
    }
}
