//! HTTP/2 framing + HPACK, both directions, fed in slices whose sizes come from the input.
#![no_main]
use doh_trace::proto::http2::DirectionDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let slice = usize::from(cut).max(1);
    for mut dec in [DirectionDecoder::client_to_server(), DirectionDecoder::server_to_client()] {
        let mut input = rest.to_vec();
        if cut & 1 == 1 {
            // Also explore past the preface check.
            let mut with_preface = doh_trace::proto::http2::PREFACE.to_vec();
            with_preface.extend_from_slice(&input);
            input = with_preface;
        }
        for piece in input.chunks(slice) {
            if dec.feed(piece, &mut |_ev| {}).is_err() {
                assert!(dec.failed());
                break;
            }
        }
        assert!(dec.buffered() <= 2 * 1024 * 1024, "bounded buffering");
    }
});
