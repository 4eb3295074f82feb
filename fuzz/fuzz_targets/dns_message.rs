//! DNS parsing and DoH GET decoding of arbitrary bytes.
#![no_main]
use doh_trace::{dns, doh, http2::HeaderFields};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dns::summarize(data);
    let path = format!("/dns-query?dns={}", String::from_utf8_lossy(data));
    let req = HeaderFields { method: Some("GET".into()), path: Some(path.into()), ..Default::default() };
    if let Some(Ok(doh::DohRequest::Get(q))) = doh::classify(&req) {
        let _ = dns::summarize(&q);
    }
});
