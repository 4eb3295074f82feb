//! The JSON line of a [`Lookup`], written straight into a byte buffer.
//!
//! It is byte for byte what `serde_json::to_writer(lookup)` writes (a test holds the two
//! together for a record with every field set), only cheaper: keys are constants, and a string
//! value with nothing to escape is copied whole. Whatever needs escaping, numbers, and the rare
//! nested values (relay peers, ALPN, command lines) go through serde_json itself, so JSON
//! escaping and number formatting stay serde_json's.

use serde::Serialize;

use crate::{
    context::ProcessContext,
    lookup::{Endpoint, Lookup},
};

/// `,"name":` as one constant (the names are plain ASCII with nothing to escape).
macro_rules! key {
    ($out:expr, $name:literal) => {
        $out.extend_from_slice(concat!(",\"", $name, "\":").as_bytes())
    };
}

/// Appends `l` as one JSON object followed by a newline.
pub fn write_lookup(out: &mut Vec<u8>, l: &Lookup) {
    out.extend_from_slice(b"{\"time\":");
    string(out, &l.time);
    key!(out, "pid");
    value(out, &l.pid);
    key!(out, "tid");
    value(out, &l.tid);
    key!(out, "uid");
    value(out, &l.uid);
    key!(out, "comm");
    string(out, &l.comm);
    key!(out, "transport");
    string(out, l.transport);
    key!(out, "server");
    endpoint(out, l.server.as_ref());
    key!(out, "client");
    endpoint(out, l.client.as_ref());
    key!(out, "authority");
    opt_string(out, l.authority.as_deref());
    key!(out, "url");
    opt_string(out, l.url.as_deref());
    key!(out, "method");
    opt_string(out, l.method.as_deref());
    key!(out, "http_version");
    opt_string(out, l.http_version);
    key!(out, "headers_known");
    value(out, &l.headers_known);
    key!(out, "stream_id");
    value(out, &l.stream_id);
    key!(out, "qname");
    opt_string(out, l.qname.as_deref());
    key!(out, "qtype");
    opt_string(out, l.qtype.as_deref());
    key!(out, "dns_id");
    value(out, &l.dns_id);
    key!(out, "rcode");
    opt_string(out, l.rcode.as_deref());
    key!(out, "answers");
    out.push(b'[');
    for (i, a) in l.answers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, a);
    }
    out.push(b']');
    key!(out, "latency_ms");
    value(out, &l.latency_ms);
    key!(out, "status");
    string(out, l.status.as_str());
    key!(out, "http_status");
    value(out, &l.http_status);
    if let Some(v) = &l.server_name {
        key!(out, "server_name");
        string(out, v);
    }
    if let Some(v) = l.tls_library {
        key!(out, "tls_library");
        string(out, v);
    }
    if let Some(v) = &l.alpn {
        key!(out, "alpn");
        value(out, v);
    }
    if let Some(v) = &l.resolver {
        key!(out, "resolver");
        string(out, v);
    }
    if let Some(v) = &l.bytes_sent {
        key!(out, "bytes_sent");
        value(out, v);
    }
    if let Some(v) = &l.bytes_received {
        key!(out, "bytes_received");
        value(out, v);
    }
    if let Some(v) = &l.duration_ms {
        key!(out, "duration_ms");
        value(out, v);
    }
    if let Some(v) = &l.relayed_for {
        key!(out, "relayed_for");
        value(out, v);
    }
    if let Some(v) = &l.upstream {
        key!(out, "upstream");
        value(out, v);
    }
    if let Some(v) = &l.relay_ambiguous {
        key!(out, "relay_ambiguous");
        value(out, v);
    }
    context(out, &l.context);
    out.extend_from_slice(b"}\n");
}

/// The flattened process context, as `#[serde(flatten)]` lays it out.
fn context(out: &mut Vec<u8>, c: &ProcessContext) {
    key!(out, "exe");
    opt_string(out, c.exe.as_deref());
    key!(out, "cmdline");
    value(out, &c.cmdline);
    key!(out, "user");
    opt_string(out, c.user.as_deref());
    key!(out, "ppid");
    value(out, &c.ppid);
    key!(out, "cgroup");
    opt_string(out, c.cgroup.as_deref());
    key!(out, "container_id");
    opt_string(out, c.container_id.as_deref());
    key!(out, "container_runtime");
    opt_string(out, c.container_runtime.as_deref());
    key!(out, "pod_uid");
    opt_string(out, c.pod_uid.as_deref());
}

fn endpoint(out: &mut Vec<u8>, e: Option<&Endpoint>) {
    match e {
        Some(e) => {
            out.extend_from_slice(b"{\"ip\":");
            string(out, &e.ip);
            out.extend_from_slice(b",\"port\":");
            value(out, &e.port);
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
    }
}

fn opt_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string: copied whole when it holds no control character, quote or backslash (the
/// only bytes serde_json escapes), else escaped by serde_json.
fn string(out: &mut Vec<u8>, s: &str) {
    // No early exit: the fold compiles to a vectorised scan.
    let escape = s
        .bytes()
        .fold(false, |e, b| e | (b < 0x20) | (b == b'"') | (b == b'\\'));
    if escape {
        value(out, s);
    } else {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// Any other value, by serde_json (writing to a Vec cannot fail, nor can serialising these
/// plain types).
fn value<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    let _ = serde_json::to_writer(out, v);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lookup::{RelayPeer, Status};
    use std::sync::Arc;

    /// Every field set (a struct literal without `..Default`, so a new field breaks this test
    /// until the writer covers it), strings that need escaping included.
    fn full_lookup() -> Lookup {
        Lookup {
            time: "2025-01-01T00:00:00.000642Z".into(),
            pid: 4_000_000,
            tid: 7,
            uid: 0,
            comm: "we\"ird\\comm\u{1}\t".into(),
            transport: "doh",
            server: Some(Endpoint {
                ip: "2001:db8::1".into(),
                port: 443,
            }),
            client: Some(Endpoint {
                ip: "127.0.0.1".into(),
                port: 65535,
            }),
            authority: Some("dns.example:8443".into()),
            url: Some("https://dns.example:8443/dns-query".into()),
            method: Some("POST".into()),
            http_version: Some("h2"),
            headers_known: Some(true),
            stream_id: Some(u32::MAX),
            qname: Some("ünïcode.example".into()),
            qtype: Some("TYPE65280".into()),
            dns_id: Some(65535),
            rcode: Some("NXDOMAIN".into()),
            answers: vec!["192.0.2.1".into(), "\"txt with \\ quote\"".into()],
            latency_ms: Some(0.123456789),
            status: Status::HttpError,
            http_status: Some(503),
            server_name: Some("dns.example".into()),
            tls_library: Some("openssl"),
            alpn: Some(vec!["h2".into(), "http/1.1".into()]),
            resolver: Some("cloudflare".into()),
            bytes_sent: Some(u64::MAX),
            bytes_received: Some(0),
            duration_ms: Some(1e21),
            relayed_for: Some(vec![RelayPeer {
                pid: 1,
                comm: "dig".into(),
                transport: "dns-udp",
                server: None,
                server_name: None,
            }]),
            upstream: Some(vec![RelayPeer {
                pid: 2,
                comm: "unbound".into(),
                transport: "doh",
                server: Some(Endpoint {
                    ip: "1.1.1.1".into(),
                    port: 443,
                }),
                server_name: Some("https://x/dns-query".into()),
            }]),
            relay_ambiguous: Some(true),
            context: Arc::new(ProcessContext {
                exe: Some("/usr/bin/x (deleted)".into()),
                cmdline: Some(vec!["x".into(), "--a=\"b\"".into(), "\u{7f}".into()]),
                user: Some("root".into()),
                ppid: Some(1),
                cgroup: Some("/system.slice/x.service".into()),
                container_id: Some("abcdef012345".into()),
                container_runtime: Some("docker".into()),
                pod_uid: Some("1-2-3".into()),
            }),
            dns_query: vec![1, 2, 3],
            dns_answer: Some(vec![4]),
            sent_ns: 5,
        }
    }

    fn ours(l: &Lookup) -> String {
        let mut out = Vec::new();
        write_lookup(&mut out, l);
        String::from_utf8(out).unwrap()
    }

    fn serdes(l: &Lookup) -> String {
        serde_json::to_string(l).unwrap() + "\n"
    }

    #[test]
    fn writes_what_serde_json_writes_with_every_field_set() {
        let l = full_lookup();
        assert_eq!(ours(&l), serdes(&l));
    }

    #[test]
    fn writes_what_serde_json_writes_with_every_optional_field_empty() {
        let l = Lookup::default();
        assert_eq!(ours(&l), serdes(&l));
        let mut l = full_lookup();
        l.latency_ms = Some(f64::NAN);
        l.answers.clear();
        l.context = Default::default();
        assert_eq!(ours(&l), serdes(&l));
    }

    #[test]
    fn escapes_every_control_character() {
        let l = Lookup {
            qname: Some((0u8..0x80).map(char::from).collect()),
            ..Default::default()
        };
        assert_eq!(ours(&l), serdes(&l));
    }
}
