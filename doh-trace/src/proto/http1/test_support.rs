//! Test harness for the HTTP/1.1 decoder: feeds inputs whole, 1 byte and 7 bytes at a time,
//! checks the decoder's invariants on the way and collects owned events for comparison.

use super::*;

/// An owned [`H1Event`], with consecutive body pieces merged (slicing changes the pieces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ev {
    Head(HeaderFields, bool),
    Body(Vec<u8>),
    End,
    Switched,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) struct Run {
    pub events: Vec<Ev>,
    /// Bytes consumed over all successful feed calls.
    pub consumed: usize,
    pub error: Option<H1Error>,
}

fn push(events: &mut Vec<Ev>, ev: H1Event<'_>) {
    match ev {
        H1Event::Body(b) => {
            assert!(!b.is_empty(), "no empty body events");
            if let Some(Ev::Body(prev)) = events.last_mut() {
                prev.extend_from_slice(b);
            } else {
                events.push(Ev::Body(b.to_vec()));
            }
        }
        H1Event::Head {
            fields,
            upgrade_h2c,
        } => events.push(Ev::Head(fields, upgrade_h2c)),
        H1Event::End => events.push(Ev::End),
        H1Event::Switched => events.push(Ev::Switched),
    }
}

/// Feeds `input` in `slice`-byte pieces to a fresh decoder from `make`.
pub(super) fn run_sliced(make: &dyn Fn() -> Http1Decoder, input: &[u8], slice: usize) -> Run {
    let mut d = make();
    let mut run = Run {
        events: Vec::new(),
        consumed: 0,
        error: None,
    };
    for piece in input.chunks(slice) {
        let events = &mut run.events;
        match d.feed(piece, &mut |ev| push(events, ev)) {
            Ok(n) => {
                assert!(n <= piece.len());
                run.consumed += n;
                if d.switched() {
                    assert_eq!(
                        d.feed(b"\0\0\x04", &mut |_| panic!("after Switched")),
                        Ok(0)
                    );
                    break;
                }
                assert_eq!(n, piece.len(), "everything consumed unless switched");
            }
            Err(e) => {
                assert!(d.failed());
                assert_eq!(
                    d.feed(b"GET", &mut |_| panic!("after Err")),
                    Err(H1Error::Failed)
                );
                run.error = Some(e);
                break;
            }
        }
        assert!(d.buffered() <= MAX_HEAD + 64 * 1024, "bounded buffering");
    }
    run
}

/// Runs `input` whole, 1 byte at a time and in 7-byte slices; all three must agree.
pub(super) fn run(make: &dyn Fn() -> Http1Decoder, input: &[u8]) -> Run {
    let whole = run_sliced(make, input, input.len().max(1));
    for slice in [1, 7] {
        let r = run_sliced(make, input, slice);
        assert_eq!(
            (&r.events, &r.error),
            (&whole.events, &whole.error),
            "{slice}-byte slices"
        );
        if r.error.is_none() {
            assert_eq!(r.consumed, whole.consumed, "{slice}-byte slices");
        }
    }
    whole
}

pub(super) fn requests() -> Http1Decoder {
    Http1Decoder::requests()
}

/// A response decoder that was told about `methods`.
pub(super) fn responses_to(methods: &'static [&'static str]) -> impl Fn() -> Http1Decoder {
    move || {
        let mut d = Http1Decoder::responses();
        for m in methods {
            d.expect_response_to(m);
        }
        d
    }
}

pub(super) fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}
