//! TCP reassembly of one direction on arbitrary segments (sequence numbers, captured and wire
//! lengths): never a panic, never more held than its bound, and the bytes delivered never
//! more than the stream's span.
#![no_main]
use doh_trace::source::pcap::tcp::{Stream, MAX_HELD};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut s = Stream::default();
    let mut delivered = 0u64;
    let mut rest = data;
    if let [a, b, c, d, tail @ ..] = rest {
        s.syn(u32::from_le_bytes([*a, *b, *c, *d]));
        rest = tail;
    }
    while let [a, b, c, d, len, extra, tail @ ..] = rest {
        let seq = u32::from_le_bytes([*a, *b, *c, *d]);
        let take = usize::from(*len).min(tail.len());
        let (bytes, next) = tail.split_at(take);
        let wire = take + usize::from(*extra) * 64;
        s.segment(seq, bytes, wire, &mut |d| delivered += d.bytes.len() as u64);
        assert!(s.held_bytes() <= MAX_HELD);
        rest = next;
    }
    s.finish(&mut |d| delivered += d.bytes.len() as u64);
    assert!(delivered <= data.len() as u64);
});
