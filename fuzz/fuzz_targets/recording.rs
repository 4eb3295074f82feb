//! `doh-trace replay` on arbitrary files: a valid header followed by fuzzed records, so the
//! record reader, event decoding and the whole pipeline see hostile recordings.
#![no_main]
use doh_trace::{
    pipeline::replay,
    source::recording::{self, Header},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut file = Vec::new();
    recording::write_header(&mut file, Header { clock_offset_ns: 0 }).unwrap();
    file.extend_from_slice(data);
    let mut n = 0u32;
    let _ = replay::replay(&file[..], |_| {
        n += 1;
        Ok(n < 10_000)
    });
});
