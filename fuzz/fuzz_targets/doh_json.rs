//! JSON DoH: answer bodies of arbitrary bytes, and arbitrary query strings on `/resolve`.
#![no_main]
use doh_trace::proto::{doh::json as doh_json, http2::HeaderFields};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = doh_json::parse_json_answer(data) {
        assert!(s.is_response && !s.qname.is_empty() && !s.qtype.is_empty());
    }
    let path = format!("/resolve?{}", String::from_utf8_lossy(data));
    let req = HeaderFields {
        method: Some("GET".into()),
        path: Some(path.into()),
        ..Default::default()
    };
    if let Some(q) = doh_json::classify_json(&req) {
        assert!(!q.qname.is_empty() && !q.qtype.is_empty());
    }
});
