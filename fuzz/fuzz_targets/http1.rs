//! HTTP/1.1 decoding, both directions, fed in slices whose sizes come from the input; the
//! response side is told the methods the request side decoded (HEAD and CONNECT rules).
#![no_main]
use doh_trace::proto::http1::{H1Event, Http1Decoder, MAX_HEAD};
use libfuzzer_sys::fuzz_target;

/// Feeds `input` in `slice`-byte pieces; returns the request methods seen.
fn drive(dec: &mut Http1Decoder, input: &[u8], slice: usize) -> Vec<String> {
    let mut methods = Vec::new();
    let mut switched = false;
    for piece in input.chunks(slice) {
        let mut on_event = |ev: H1Event<'_>| match ev {
            H1Event::Head { fields, .. } => methods.extend(fields.method.map(|m| m.into_owned())),
            H1Event::Body(b) => assert!(!b.is_empty() && b.len() <= piece.len()),
            H1Event::Switched => switched = true,
            H1Event::End => {}
        };
        match dec.feed(piece, &mut on_event) {
            Ok(n) => {
                assert!(n <= piece.len());
                if switched {
                    assert!(dec.switched());
                    assert_eq!(
                        dec.feed(piece, &mut |_| panic!("event after Switched")),
                        Ok(0)
                    );
                    break;
                }
                assert_eq!(n, piece.len());
            }
            Err(_) => {
                assert!(dec.failed());
                assert!(dec.feed(piece, &mut |_| panic!("event after Err")).is_err());
                break;
            }
        }
        assert!(dec.buffered() <= MAX_HEAD + 16 * 1024, "bounded buffering");
    }
    methods
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let slice = usize::from(cut).max(1);
    let methods = drive(&mut Http1Decoder::requests(), rest, slice);
    let mut responses = Http1Decoder::responses();
    for m in &methods {
        responses.expect_response_to(m);
    }
    if cut & 1 == 1 {
        responses.expect_response_to("HEAD");
    }
    drive(&mut responses, rest, slice);
});
