//! The JSON line of a [`Lookup`], written straight into a byte buffer.
//!
//! It is byte for byte what `serde_json::to_writer(lookup)` writes (a test holds the two
//! together for a record with every field set), only cheaper: keys are constants, and a string
//! value with nothing to escape is copied whole. Whatever needs escaping, numbers, and the rare
//! nested values (relay peers, ALPN, command lines) go through serde_json itself, so JSON
//! escaping and number formatting stay serde_json's. One difference: a record read from a
//! packet capture ([`Origin::Capture`]) has no process, and its `pid`, `tid`, `uid` and `comm`
//! are written as null here (serde would write the placeholders).

use std::sync::Arc;

use serde::Serialize;

use crate::{
    lookup::{Endpoint, Lookup, Origin},
    process::context::ProcessContext,
    proto::dns::Mnemonic,
};

/// `,"name":` as one constant (the names are plain ASCII with nothing to escape).
macro_rules! key {
    ($out:expr, $name:literal) => {
        $out.extend_from_slice(concat!(",\"", $name, "\":").as_bytes())
    };
}

/// `,"name":"text"`: the key and the opening quote as one constant, then the text.
macro_rules! key_string {
    ($out:expr, $name:literal, $text:expr) => {{
        $out.extend_from_slice(concat!(",\"", $name, "\":\"").as_bytes());
        string_rest($out, $text);
    }};
}

/// `,"name":"text"`, or `,"name":null` (one constant) when there is no text.
macro_rules! key_opt_string {
    ($out:expr, $name:literal, $text:expr) => {
        match $text {
            Some(text) => key_string!($out, $name, text),
            None => $out.extend_from_slice(concat!(",\"", $name, "\":null").as_bytes()),
        }
    };
}

/// The fields from `uid` to `headers_known`, which the lookups of one connection share (and
/// are written together, in this order).
#[derive(Debug)]
struct ConnFields {
    origin: Origin,
    uid: u32,
    comm: Arc<str>,
    transport: &'static str,
    server: Option<Endpoint>,
    client: Option<Endpoint>,
    authority: Option<Arc<str>>,
    url: Option<Arc<str>>,
    method: Option<Mnemonic>,
    http_version: Option<&'static str>,
    headers_known: Option<bool>,
}

impl ConnFields {
    fn of(l: &Lookup) -> Self {
        ConnFields {
            origin: l.origin,
            uid: l.uid,
            comm: l.comm.clone(),
            transport: l.transport,
            server: l.server.clone(),
            client: l.client.clone(),
            authority: l.authority.clone(),
            url: l.url.clone(),
            method: l.method.clone(),
            http_version: l.http_version,
            headers_known: l.headers_known,
        }
    }

    /// Whether `l` has these values (shared strings and constants compare by address first).
    fn are_those_of(&self, l: &Lookup) -> bool {
        /// Equal text: nearly always the same constant.
        fn same(a: Option<&str>, b: Option<&str>) -> bool {
            match (a, b) {
                (Some(a), Some(b)) => std::ptr::eq(a, b) || a == b,
                (a, b) => a.is_none() && b.is_none(),
            }
        }
        self.origin == l.origin
            && self.uid == l.uid
            && self.comm == l.comm
            && same(Some(self.transport), Some(l.transport))
            && self.server == l.server
            && self.client == l.client
            && self.authority == l.authority
            && self.url == l.url
            && same(self.method.as_deref(), l.method.as_deref())
            && same(self.http_version, l.http_version)
            && self.headers_known == l.headers_known
    }
}

/// Writes JSON lines. The text of the fields a connection's lookups share, and of the
/// process context, is kept from the last line and copied while the next lookup's values are
/// the same; lookups come in runs from one connection (the ones a read completed).
#[derive(Debug, Default)]
pub struct JsonWriter {
    shared: Option<(ConnFields, Vec<u8>)>,
    /// A process's context is one `Arc` that never changes: the same `Arc`, the same text.
    context: Option<(Arc<ProcessContext>, Vec<u8>)>,
}

/// Appends the text `memo` keeps when `same` holds for its key, else renders it with `render`,
/// and keeps it under `key()`.
fn copy_or_render<K>(
    memo: &mut Option<(K, Vec<u8>)>,
    out: &mut Vec<u8>,
    same: impl FnOnce(&K) -> bool,
    key: impl FnOnce() -> K,
    render: impl FnOnce(&mut Vec<u8>),
) {
    match memo {
        Some((k, text)) if same(k) => out.extend_from_slice(text),
        memo => {
            let start = out.len();
            render(out);
            let mut text = memo.take().map(|(_, text)| text).unwrap_or_default();
            text.clear();
            text.extend_from_slice(&out[start..]);
            *memo = Some((key(), text));
        }
    }
}

impl JsonWriter {
    /// Appends `l` as one JSON object followed by a newline.
    pub fn write_lookup(&mut self, out: &mut Vec<u8>, l: &Lookup) {
        out.extend_from_slice(b"{\"time\":\"");
        match l.time.inline() {
            // Nothing to escape, and no need to check that it is UTF-8.
            Some(text) => {
                out.extend_from_slice(text);
                out.push(b'"');
            }
            None => string_rest(out, &l.time),
        }
        if l.has_process() {
            key!(out, "pid");
            value(out, &l.pid);
            key!(out, "tid");
            value(out, &l.tid);
        } else {
            out.extend_from_slice(b",\"pid\":null,\"tid\":null");
        }
        copy_or_render(
            &mut self.shared,
            out,
            |fields| fields.are_those_of(l),
            || ConnFields::of(l),
            |out| write_conn_fields(out, l),
        );
        write_rest(out, l);
        copy_or_render(
            &mut self.context,
            out,
            |c| Arc::ptr_eq(c, &l.context),
            || l.context.clone(),
            |out| context(out, &l.context),
        );
        out.extend_from_slice(b"}\n");
    }
}

/// The [`ConnFields`] of `l`.
fn write_conn_fields(out: &mut Vec<u8>, l: &Lookup) {
    if l.has_process() {
        key!(out, "uid");
        value(out, &l.uid);
        key_string!(out, "comm", &l.comm);
    } else {
        out.extend_from_slice(b",\"uid\":null,\"comm\":null");
    }
    key_string!(out, "transport", l.transport);
    key!(out, "server");
    endpoint(out, l.server.as_ref());
    key!(out, "client");
    endpoint(out, l.client.as_ref());
    key_opt_string!(out, "authority", l.authority.as_deref());
    key_opt_string!(out, "url", l.url.as_deref());
    key_opt_string!(out, "method", l.method.as_deref());
    key_opt_string!(out, "http_version", l.http_version);
    key!(out, "headers_known");
    value(out, &l.headers_known);
}

/// The fields after the [`ConnFields`], up to the process context.
fn write_rest(out: &mut Vec<u8>, l: &Lookup) {
    key!(out, "stream_id");
    value(out, &l.stream_id);
    key_opt_string!(out, "qname", l.qname.as_deref());
    key_opt_string!(out, "qtype", l.qtype.as_deref());
    key!(out, "dns_id");
    value(out, &l.dns_id);
    key_opt_string!(out, "rcode", l.rcode.as_deref());
    key!(out, "answers");
    out.push(b'[');
    for (i, a) in l.answers.iter().enumerate() {
        out.extend_from_slice(if i > 0 { b",\"" } else { b"\"" });
        string_rest(out, a);
    }
    out.push(b']');
    key!(out, "latency_ms");
    value(out, &l.latency_ms);
    key_string!(out, "status", l.status.as_str());
    key!(out, "http_status");
    value(out, &l.http_status);
    if let Some(v) = &l.server_name {
        key_string!(out, "server_name", v);
    }
    if let Some(v) = l.tls_library {
        key_string!(out, "tls_library", v);
    }
    if let Some(v) = &l.alpn {
        key!(out, "alpn");
        value(out, v);
    }
    if let Some(v) = &l.resolver {
        key_string!(out, "resolver", v);
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
    if !l.origin.is_process() {
        key!(out, "origin");
        value(out, &l.origin);
    }
}

/// The flattened process context, as `#[serde(flatten)]` lays it out.
fn context(out: &mut Vec<u8>, c: &ProcessContext) {
    key_opt_string!(out, "exe", c.exe.as_deref());
    match &c.cmdline {
        Some(args) => {
            key!(out, "cmdline");
            value(out, args);
        }
        None => out.extend_from_slice(b",\"cmdline\":null"),
    }
    key_opt_string!(out, "user", c.user.as_deref());
    key!(out, "ppid");
    value(out, &c.ppid);
    key_opt_string!(out, "cgroup", c.cgroup.as_deref());
    key_opt_string!(out, "container_id", c.container_id.as_deref());
    key_opt_string!(out, "container_runtime", c.container_runtime.as_deref());
    key_opt_string!(out, "pod_uid", c.pod_uid.as_deref());
}

fn endpoint(out: &mut Vec<u8>, e: Option<&Endpoint>) {
    match e {
        Some(e) => {
            out.extend_from_slice(b"{\"ip\":\"");
            string_rest(out, &e.ip);
            out.extend_from_slice(b",\"port\":");
            value(out, &e.port);
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// The rest of a JSON string whose opening quote `out` ends with: the text and the closing
/// quote, copied whole when the text holds no control character, quote or backslash (the
/// only bytes serde_json escapes); else the opening quote is taken back and serde_json writes
/// the whole string.
fn string_rest(out: &mut Vec<u8>, s: &str) {
    if needs_escape(s.as_bytes()) {
        debug_assert_eq!(out.last(), Some(&b'"'));
        out.pop();
        value(out, s);
    } else {
        out.reserve(s.len() + 1);
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// Whether `s` holds a byte serde_json escapes (a control character, a quote or a
/// backslash), tested eight bytes at a time: the values are too short for a vectorised scan to
/// pay off.
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH_BITS: u64 = ONES << 7;
    // The high bit of a byte set where a byte of `w` is below 0x20, a quote or a backslash
    // (exact as to whether there is any: a borrow only runs on from such a byte).
    let any = |w: u64| {
        let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w;
        below(w, 0x20)
            | below(w ^ (ONES * u64::from(b'"')), 1)
            | below(w ^ (ONES * u64::from(b'\\')), 1)
    };
    let word = |at: usize| {
        let mut w = [0; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let half = |at: usize| {
        let mut w = [0; 4];
        w.copy_from_slice(&s[at..at + 4]);
        u64::from(u32::from_le_bytes(w))
    };
    let n = s.len();
    // Every byte is in at least one word tested; short values fill a word with overlapping
    // reads, or with single bytes and `a`s.
    let found = match n {
        8.. => {
            // Word by word with an early exit (which also keeps the compiler from vectorising
            // a loop that nearly always runs once or twice), then the last eight bytes.
            let mut at = 0;
            while at + 8 < n {
                if any(word(at)) & HIGH_BITS != 0 {
                    return true;
                }
                at += 8;
            }
            any(word(n - 8))
        }
        4..8 => any(half(0) | half(n - 4) << 32),
        1..4 => {
            let bytes = u64::from(s[0]) | u64::from(s[n / 2]) << 8 | u64::from(s[n - 1]) << 16;
            any(bytes | (ONES * u64::from(b'a')) << 24)
        }
        0 => 0,
    };
    found & HIGH_BITS != 0
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
            answers: ["192.0.2.1", "\"txt with \\ quote\""]
                .map(String::from)
                .into_iter()
                .collect(),
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
            origin: Origin::Process,
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
        JsonWriter::default().write_lookup(&mut out, l);
        String::from_utf8(out).unwrap()
    }

    fn serdes(l: &Lookup) -> String {
        serde_json::to_string(l).unwrap() + "\n"
    }

    #[test]
    fn writes_what_serde_json_writes_with_every_field_set() {
        let mut l = full_lookup();
        assert_eq!(ours(&l), serdes(&l));
        // The time as the clock writes it (held inline).
        l.time = crate::clock::Clock::with_offset(0).rfc3339(1_700_000_000_123_456_000);
        assert!(l.time.inline().is_some());
        assert_eq!(ours(&l), serdes(&l));
    }

    /// A capture's record: what serde writes, but with null for the four process fields.
    #[test]
    fn a_capture_record_has_no_process() {
        let mut l = full_lookup();
        l.origin = Origin::Capture;
        let mut want: serde_json::Value = serde_json::from_str(&serdes(&l)).unwrap();
        for k in ["pid", "tid", "uid", "comm"] {
            want[k] = serde_json::Value::Null;
        }
        let line = ours(&l);
        let got: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(got, want);
        assert!(line.contains(",\"origin\":\"capture\""), "{line}");
        // A run: the shared fields of a process record are not reused for a capture's.
        let mut w = JsonWriter::default();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        w.write_lookup(&mut a, &full_lookup());
        w.write_lookup(&mut b, &l);
        assert_eq!(String::from_utf8(b).unwrap(), line);
    }

    /// One writer, a run of lookups: each line is what serde_json writes, whichever of the
    /// fields a connection's lookups share, or the process context, changes from one line to
    /// the next.
    #[test]
    fn lines_in_a_run_are_what_serde_json_writes_as_shared_fields_change() {
        let base = full_lookup();
        type Change = fn(&mut Lookup);
        let changes: [Change; 15] = [
            |_| {},
            |l| l.uid += 1,
            |l| l.comm = "other".into(),
            |l| l.comm = "we\"ird\\comm\u{1}\t".into(), // equal text, another Arc
            |l| l.transport = "dot",
            |l| l.server.as_mut().unwrap().port = 853,
            |l| l.client = None,
            |l| l.authority = None,
            |l| l.url = Some("https://dns.example:8443/other".into()),
            |l| l.method = Some("GET".into()),
            |l| l.http_version = Some("http/1.1"),
            |l| l.headers_known = Some(false),
            |l| l.tid += 1, // not shared
            |l| l.context = Arc::new(ProcessContext::default()),
            |l| l.context = Arc::new((*l.context).clone()), // equal, another Arc
        ];
        let mut writer = JsonWriter::default();
        for (i, change) in changes.iter().enumerate() {
            for l in [base.clone(), base.clone(), {
                let mut l = base.clone();
                change(&mut l);
                l
            }] {
                let mut out = Vec::new();
                writer.write_lookup(&mut out, &l);
                assert_eq!(String::from_utf8(out).unwrap(), serdes(&l), "change {i}");
            }
        }
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
    fn finds_what_needs_escaping_at_every_position() {
        let needs = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
        for len in 0..20 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut s = vec![b'x'; len];
                    s[at] = b;
                    // Neighbours that are close to the tested values but need no escaping.
                    if at > 0 {
                        s[at - 1] = 0x20;
                    }
                    assert_eq!(needs_escape(&s), needs(b), "{len} {at} {b:#x}");
                }
            }
            assert!(!needs_escape(&vec![0xff; len]));
        }
    }

    #[test]
    fn escapes_every_control_character() {
        let l = Lookup {
            qname: Some((0u8..0x80).map(char::from).collect::<String>().into()),
            ..Default::default()
        };
        assert_eq!(ours(&l), serdes(&l));
    }
}
