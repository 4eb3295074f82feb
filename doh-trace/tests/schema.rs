//! The JSON output against its published schema (docs/schema/lookup.v1.schema.json): every
//! recorded record, every record the pipeline produces when replaying the recorded event
//! streams, hand-made records for the null and non-DoH cases, and records the schema must
//! reject.

use std::path::PathBuf;
use std::sync::OnceLock;

use boon::{Compiler, SchemaIndex, Schemas};
use doh_trace::lookup::Status;
use doh_trace::pipeline::replay;
use serde_json::{json, Value};

const SCHEMA_ID: &str = "https://doh-trace.invalid/schema/lookup.v1.json";
const SCHEMA: &str = include_str!("../../docs/schema/lookup.v1.schema.json");

fn schema_json() -> Value {
    serde_json::from_str(SCHEMA).expect("the schema is JSON")
}

fn compiled() -> &'static (Schemas, SchemaIndex) {
    static COMPILED: OnceLock<(Schemas, SchemaIndex)> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let mut schemas = Schemas::new();
        let mut compiler = Compiler::new();
        compiler.enable_format_assertions();
        compiler
            .add_resource(SCHEMA_ID, schema_json())
            .expect("schema resource");
        let index = compiler
            .compile(SCHEMA_ID, &mut schemas)
            .unwrap_or_else(|e| panic!("the schema does not compile: {e:#}"));
        (schemas, index)
    })
}

/// The validation errors for `v`, if any.
fn errors(v: &Value) -> Option<String> {
    let (schemas, index) = compiled();
    schemas.validate(v, *index).err().map(|e| format!("{e:#}"))
}

fn assert_valid(v: &Value) {
    if let Some(e) = errors(v) {
        panic!("record does not match the schema:\n{e}\nrecord: {v}");
    }
}

fn assert_invalid(v: &Value, why: &str) {
    assert!(
        errors(v).is_some(),
        "the schema accepted a record with {why}: {v}"
    );
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn fixtures_ending(suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(suffix)))
        .collect();
    v.sort();
    v
}

/// A valid DoH record over HTTP/2, answered; the hand-made cases start from it.
fn base() -> Value {
    json!({
        "answers": ["192.0.2.10", "192.0.2.11"],
        "authority": "doh.test:8443",
        "client": {"ip": "127.0.0.1", "port": 49390},
        "comm": "curl",
        "dns_id": 0,
        "headers_known": true,
        "http_status": 200,
        "http_version": "h2",
        "latency_ms": 1.772864,
        "method": "POST",
        "pid": 31531,
        "qname": "www.doh.test",
        "qtype": "A",
        "rcode": "NOERROR",
        "server": {"ip": "127.0.0.1", "port": 8443},
        "status": "ok",
        "stream_id": 1,
        "tid": 31532,
        "time": "2026-11-22T14:00:56.782304Z",
        "transport": "doh",
        "uid": 1000,
        "url": "https://doh.test:8443/dns-query"
    })
}

/// `base()` with `changes` merged in (a null value sets the field to null).
fn with(changes: Value) -> Value {
    let mut v = base();
    for (k, val) in changes.as_object().unwrap() {
        v[k] = val.clone();
    }
    v
}

/// `base()` without `fields`.
fn without(mut v: Value, fields: &[&str]) -> Value {
    for f in fields {
        v.as_object_mut().unwrap().remove(*f);
    }
    v
}

#[test]
fn the_schema_is_a_valid_draft_2020_12_schema_with_documented_properties() {
    compiled();
    let s = schema_json();
    assert_eq!(s["$id"], SCHEMA_ID);
    assert_eq!(s["additionalProperties"], false);
    for (name, prop) in s["properties"].as_object().unwrap() {
        assert!(
            prop["description"].as_str().is_some_and(|d| !d.is_empty()),
            "property `{name}` has no description"
        );
    }
}

#[test]
fn every_status_spelling_is_in_the_schema() {
    let s = schema_json();
    let allowed = s["properties"]["status"]["enum"].as_array().unwrap();
    for status in [
        Status::Ok,
        Status::HttpError,
        Status::Reset,
        Status::Unanswered,
        Status::MalformedAnswer,
        Status::Timeout,
        Status::Opaque,
    ] {
        let spelled = serde_json::to_value(status).unwrap();
        assert_eq!(spelled, status.as_str());
        assert!(allowed.contains(&spelled), "{spelled} is not in the schema");
    }
    assert_eq!(allowed.len(), 7, "the schema lists a status the tool lacks");
}

#[test]
fn every_recorded_record_matches_the_schema() {
    let files = fixtures_ending(".expected.jsonl");
    assert!(!files.is_empty(), "no fixtures in {:?}", fixtures_dir());
    let mut n = 0;
    for f in files {
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", f.display()));
            if let Some(e) = errors(&v) {
                panic!("{}: record does not match:\n{e}\n{line}", f.display());
            }
            n += 1;
        }
    }
    assert!(n >= 10, "only {n} records");
}

#[test]
fn every_replayed_lookup_matches_the_schema() {
    let files = fixtures_ending(".dtr");
    assert!(!files.is_empty(), "no recordings in {:?}", fixtures_dir());
    let mut n = 0;
    for f in files {
        let r = std::io::BufReader::new(std::fs::File::open(&f).unwrap());
        replay::replay(r, |l| {
            let v = serde_json::to_value(&l).unwrap();
            if let Some(e) = errors(&v) {
                panic!("{}: replayed lookup does not match:\n{e}\n{v}", f.display());
            }
            n += 1;
            Ok(true)
        })
        .unwrap_or_else(|e| panic!("{}: {e:?}", f.display()));
    }
    assert!(n >= 10, "only {n} lookups");
}

#[test]
fn doh_records_with_nulls_and_failures_match() {
    let cases = [
        // Joined mid-stream: the request headers are unknown, and so are both ends.
        with(json!({
            "headers_known": false, "method": null, "authority": null, "url": null,
            "http_status": null, "server": null, "client": null, "stream_id": 3
        })),
        // The connection closed with the query unanswered.
        with(json!({
            "status": "unanswered", "rcode": null, "answers": [], "latency_ms": null,
            "http_status": null
        })),
        with(json!({
            "status": "reset", "rcode": null, "answers": [], "latency_ms": null,
            "http_status": null
        })),
        // HTTP/1.1 timing out: no stream id, no response.
        with(json!({
            "status": "timeout", "rcode": null, "answers": [], "latency_ms": null,
            "http_status": null, "http_version": "http/1.1", "stream_id": null
        })),
        with(json!({
            "status": "http-error", "rcode": null, "answers": [], "http_status": 503,
            "method": "GET"
        })),
        with(json!({
            "status": "malformed-answer", "rcode": null, "answers": [], "http_status": 200
        })),
        // An empty NXDOMAIN answer over IPv6, a zero latency, an unnamed rcode.
        with(json!({
            "rcode": "NXDOMAIN", "answers": [], "latency_ms": 0,
            "server": {"ip": "::1", "port": 443}, "client": {"ip": "2001:db8::1", "port": 0}
        })),
        with(json!({"rcode": "RCODE4000", "qtype": "TYPE65280", "dns_id": 65535})),
        // Process context, present and null.
        with(json!({
            "exe": "/usr/bin/curl", "cmdline": ["curl", "-s", "https://example.com/"],
            "user": "alice", "ppid": 1, "cgroup": "/system.slice/foo.service",
            "container_id": "0123456789abcdef", "container_runtime": "containerd",
            "pod_uid": "0c6f1f3e-3b0b-4c8a-9d7e-1f2a3b4c5d6e"
        })),
        with(json!({
            "exe": null, "cmdline": null, "user": null, "ppid": null, "cgroup": null,
            "container_id": null, "container_runtime": null, "pod_uid": null
        })),
        with(json!({"cmdline": []})),
    ];
    for v in &cases {
        assert_valid(v);
    }
}

#[test]
fn other_transports_need_no_http_fields() {
    let http = [
        "authority",
        "url",
        "method",
        "http_version",
        "headers_known",
        "stream_id",
        "http_status",
    ];
    for transport in ["dot", "dns-udp", "dns-tcp"] {
        assert_valid(&without(with(json!({ "transport": transport })), &http));
        // Present but null is fine too.
        let nulls: serde_json::Map<String, Value> =
            http.iter().map(|f| (f.to_string(), Value::Null)).collect();
        let mut v = with(json!({ "transport": transport }));
        v.as_object_mut().unwrap().extend(nulls);
        assert_valid(&v);
    }
    // Opaque transports: who talked to which resolver, nothing about the question.
    for transport in ["doh-opaque", "dot-opaque", "doq-opaque"] {
        let minimal = json!({
            "time": "2026-11-22T14:00:56Z", "pid": 1, "tid": 1, "uid": 0, "comm": "firefox",
            "transport": transport, "status": "opaque", "duration_ms": 12.5,
            "server": {"ip": "9.9.9.9", "port": 853}, "client": null
        });
        assert_valid(&minimal);
        // An opaque record never claims a question, an answer or an ordinary outcome.
        let mut claims = minimal.clone();
        claims["qname"] = json!("www.example");
        assert_invalid(&claims, "an opaque record with a question");
        let mut claims = minimal.clone();
        claims["status"] = json!("ok");
        assert_invalid(&claims, "an opaque record that says ok");
        let mut with_nulls = minimal.clone();
        for f in [
            "qname",
            "qtype",
            "dns_id",
            "rcode",
            "latency_ms",
            "http_version",
        ] {
            with_nulls[f] = Value::Null;
        }
        with_nulls["answers"] = json!([]);
        assert_valid(&with_nulls);
    }
}

#[test]
fn the_schema_rejects_what_the_tool_never_prints() {
    let cases: Vec<(Value, &str)> = vec![
        (with(json!({"qclass": "IN"})), "an unknown field"),
        (with(json!({"status": "failed"})), "an unknown status"),
        (with(json!({"status": "OK"})), "a status in the wrong case"),
        (
            with(json!({"server": {"ip": "127.0.0.1", "port": 70000}})),
            "a port of 70000",
        ),
        (
            with(json!({"client": {"ip": "127.0.0.1", "port": -1}})),
            "a negative port",
        ),
        (
            with(json!({"server": {"ip": "127.0.0.1", "port": 443, "scope": 1}})),
            "an unknown endpoint field",
        ),
        (
            with(json!({"server": {"ip": "doh.test", "port": 443}})),
            "a host name as the address",
        ),
        (with(json!({"transport": "dns"})), "an unknown transport"),
        (
            with(json!({"http_version": "h3"})),
            "an unknown HTTP version",
        ),
        (
            with(json!({"http_version": null})),
            "a DoH record without HTTP version",
        ),
        (
            with(json!({"time": "2026-11-22T14:00:56.782304+00:00"})),
            "a time not in UTC `Z` form",
        ),
        (
            with(json!({"time": "2026-13-22T14:00:56Z"})),
            "an impossible date",
        ),
        (with(json!({"pid": -1})), "a negative pid"),
        (with(json!({"uid": 4294967296u64})), "a uid beyond u32"),
        (with(json!({"dns_id": 65536})), "a DNS id beyond u16"),
        (with(json!({"answers": [1]})), "a non-string answer"),
        (with(json!({"answers": null})), "null answers"),
        (with(json!({"latency_ms": -0.5})), "a negative latency"),
        (with(json!({"cmdline": "curl -s"})), "a command line string"),
        (with(json!({"ppid": "1"})), "a ppid string"),
        (without(base(), &["qname"]), "a DoH record without qname"),
        (
            without(base(), &["stream_id"]),
            "a DoH record without stream_id",
        ),
        (without(base(), &["time"]), "no time"),
        (
            with(json!({"http_version": "http/1.1"})),
            "an HTTP/1.1 record with a stream id",
        ),
        (
            with(json!({"stream_id": null})),
            "an HTTP/2 record without stream id",
        ),
        (
            with(json!({"headers_known": false})),
            "unknown headers but a method and URL",
        ),
        (with(json!({"rcode": null})), "an `ok` lookup without rcode"),
        (
            with(json!({"status": "unanswered", "rcode": null, "latency_ms": null})),
            "an unanswered lookup with answers",
        ),
        (
            with(json!({"status": "http-error", "rcode": null, "answers": [], "http_status": 200})),
            "an HTTP error with a 2xx status",
        ),
        (
            with(json!({
                "status": "timeout", "rcode": null, "answers": [], "http_status": null
            })),
            "a timed-out lookup with a latency",
        ),
    ];
    assert_valid(&base());
    for (v, why) in &cases {
        assert_invalid(v, why);
    }
}
