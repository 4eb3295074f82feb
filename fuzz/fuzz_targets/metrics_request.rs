//! The metrics server's request parser on arbitrary bytes, as anyone who can reach the port
//! sends them: only a whole head whose request line is `GET /metrics` is served.
#![no_main]
use doh_trace::output::metrics_request::{head_complete, route, Scrape, MAX_REQUEST};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let scrape = route(data);
    let head = &data[..data.len().min(MAX_REQUEST)];
    if scrape != Scrape::Bad {
        assert!(head_complete(head));
    }
    if scrape == Scrape::Metrics {
        assert!(data.starts_with(b"GET /metrics"));
    }
});
