//! Ring-buffer record decoding: any bytes, never a panic; accepted records are self-consistent.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(doh_trace::source::Event::Data(d)) = doh_trace::source::kernel::decode(data) {
        assert!(d.bytes.len() <= doh_trace_common::CHUNK_SIZE);
        assert!(d.offset as usize + d.bytes.len() <= d.total_len as usize);
    }
});
