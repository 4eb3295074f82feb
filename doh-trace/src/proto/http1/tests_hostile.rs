//! Tests of the HTTP/1.1 decoder on hostile input: oversized heads, header floods, overflowing
//! lengths and chunk sizes, garbage. Each must be an error (never a panic) with bounded memory.

use super::test_support::{cat, requests, responses_to, run, run_sliced, Ev};
use super::tests::QUERY;
use super::*;

fn err_of(make: &dyn Fn() -> Http1Decoder, input: &[u8]) -> H1Error {
    let r = run(make, input);
    r.error
        .unwrap_or_else(|| panic!("expected an error, got {:?}", r.events))
}

#[test]
fn a_70_kib_header_is_refused_and_memory_stays_bounded() {
    let mut input = b"GET /dns-query HTTP/1.1\r\nX-Big: ".to_vec();
    input.resize(input.len() + 70 * 1024, b'a');
    input.extend_from_slice(b"\r\n\r\n");
    assert_eq!(err_of(&requests, &input), H1Error::HeadTooLarge);

    let mut d = Http1Decoder::requests();
    let mut max = 0;
    for piece in input.chunks(4096) {
        if d.feed(piece, &mut |_| {}).is_err() {
            break;
        }
        max = max.max(d.buffered());
    }
    assert!(max <= 2 * MAX_HEAD, "buffered {max}");
    assert!(d.failed());
    assert_eq!(d.buffered(), 0, "buffers dropped on failure");
}

#[test]
fn a_head_of_exactly_64_kib_is_accepted_one_more_byte_is_not() {
    let start = b"GET / HTTP/1.1\r\nX-Pad: ";
    let end = b"\r\n\r\n";
    let mut input = start.to_vec();
    input.resize(MAX_HEAD - end.len(), b'p');
    input.extend_from_slice(end);
    assert_eq!(input.len(), MAX_HEAD);
    let r = run(&requests, &input);
    assert_eq!(r.error, None);
    assert!(matches!(r.events[..], [Ev::Head(..), Ev::End]));
    input.insert(start.len(), b'p');
    assert_eq!(err_of(&requests, &input), H1Error::HeadTooLarge);
}

#[test]
fn a_thousand_headers_are_refused() {
    let mut input = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..1000 {
        input.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    input.extend_from_slice(b"\r\n");
    assert_eq!(err_of(&responses_to(&[]), &input), H1Error::TooManyHeaders);

    // 200 lines are fine.
    let mut ok = b"GET / HTTP/1.1\r\n".to_vec();
    for _ in 0..MAX_HEADER_LINES {
        ok.extend_from_slice(b"A: b\r\n");
    }
    ok.extend_from_slice(b"\r\n");
    assert_eq!(run(&requests, &ok).error, None);
}

const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

#[test]
fn overflowing_and_malformed_chunk_sizes_are_refused() {
    for size in [
        &b"ffffffffffffffffff"[..],
        b"10000000000000000",
        b"-1",
        b"+5",
        b"0x10",
        b"",
        b" 5",
        b"5 x",
        b"g",
    ] {
        let input = cat(&[CHUNKED, size, b"\r\nhello\r\n0\r\n\r\n"]);
        assert_eq!(
            err_of(&responses_to(&[]), &input),
            H1Error::BadChunkSize,
            "{}",
            String::from_utf8_lossy(size)
        );
    }
    let long_ext = cat(&[CHUNKED, b"5;", &[b'x'; MAX_CHUNK_LINE], b"\r\nhello\r\n"]);
    assert_eq!(
        err_of(&responses_to(&[]), &long_ext),
        H1Error::ChunkLineTooLong
    );
    let bad_end = cat(&[CHUNKED, b"5\r\nhelloXX\r\n"]);
    assert_eq!(err_of(&responses_to(&[]), &bad_end), H1Error::BadChunkEnd);
}

#[test]
fn the_largest_chunk_size_streams_without_allocating() {
    let input = cat(&[CHUNKED, b"ffffffffffffffff\r\n", &[7u8; 10_000]]);
    let r = run(&responses_to(&[]), &input);
    assert_eq!(r.error, None);
    assert_eq!(r.events[1], Ev::Body(vec![7; 10_000]));
    let mut d = Http1Decoder::responses();
    d.feed(&input, &mut |_| {}).unwrap();
    assert!(d.buffered() < 4096);
}

#[test]
fn negative_overflowing_and_conflicting_content_lengths_are_refused() {
    for (value, want) in [
        ("-1", H1Error::BadContentLength),
        ("+30", H1Error::BadContentLength),
        ("99999999999999999999999", H1Error::BadContentLength),
        ("18446744073709551616", H1Error::BadContentLength),
        ("", H1Error::BadContentLength),
        ("3 0", H1Error::BadContentLength),
        ("0x1e", H1Error::BadContentLength),
        ("30,", H1Error::BadContentLength),
        ("30, 31", H1Error::ConflictingContentLength),
    ] {
        let input = format!("POST / HTTP/1.1\r\nContent-Length: {value}\r\n\r\n");
        assert_eq!(err_of(&requests, input.as_bytes()), want, "{value:?}");
    }
    let twice = b"POST / HTTP/1.1\r\nContent-Length: 30\r\ncontent-length: 31\r\n\r\n";
    assert_eq!(err_of(&requests, twice), H1Error::ConflictingContentLength);
    let folded = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n 0\r\n\r\n";
    assert_eq!(err_of(&requests, folded), H1Error::FoldedFraming);

    // u64::MAX is a valid length: streamed, nothing allocated for it.
    let huge = cat(&[
        b"POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n",
        QUERY,
    ]);
    let r = run(&requests, &huge);
    assert_eq!(r.error, None);
    assert_eq!(r.events[1..], [Ev::Body(QUERY.to_vec())]);
}

#[test]
fn garbage_is_an_error() {
    let tls_client_hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n";
    let all_bytes: Vec<u8> = (0..=255).collect();
    let cases: [(&[u8], H1Error); 11] = [
        (tls_client_hello, H1Error::BadRequestLine),
        (b"hello world\r\n\r\n", H1Error::BadRequestLine),
        (&all_bytes, H1Error::BadRequestLine),
        (b"GET /\r\n\r\n", H1Error::BadRequestLine),
        (b"GET  / HTTP/1.1\r\n\r\n", H1Error::BadRequestLine),
        (b"GET / HTTP/1.1 x\r\n\r\n", H1Error::BadRequestLine),
        (b"GET / HTTP/3.0\r\n\r\n", H1Error::BadVersion),
        (b"G(T / HTTP/1.1\r\n\r\n", H1Error::BadRequestLine),
        (
            b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
            H1Error::BadHeaderLine,
        ),
        (
            b"GET / HTTP/1.1\r\nName : v\r\n\r\n",
            H1Error::BadHeaderLine,
        ),
        (
            b"GET / HTTP/1.1\r\n folded first\r\n\r\n",
            H1Error::BadHeaderLine,
        ),
    ];
    for (input, want) in cases {
        assert_eq!(err_of(&requests, input), want, "{}", input.escape_ascii());
    }
    let responses: [(&[u8], H1Error); 6] = [
        (b"HTTP/1.1 2x0 OK\r\n\r\n", H1Error::BadStatusLine),
        (b"HTTP/1.1 20\r\n\r\n", H1Error::BadStatusLine),
        (b"HTTP/1.1 2000 OK\r\n\r\n", H1Error::BadStatusLine),
        (b"HTTP/1.1 099 x\r\n\r\n", H1Error::BadStatusLine),
        (b"GET / HTTP/1.1\r\n\r\n", H1Error::BadVersion),
        (b"HTTP/2 200\r\n\r\n", H1Error::BadVersion),
    ];
    for (input, want) in responses {
        assert_eq!(
            err_of(&responses_to(&[]), input),
            want,
            "{}",
            input.escape_ascii()
        );
    }
}

#[test]
fn trailer_floods_are_refused() {
    let mut many = cat(&[CHUNKED, b"0\r\n"]);
    for _ in 0..=MAX_HEADER_LINES {
        many.extend_from_slice(b"T: v\r\n");
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(err_of(&responses_to(&[]), &many), H1Error::TooManyHeaders);
    let mut big = cat(&[CHUNKED, b"0\r\nT: "]);
    big.resize(big.len() + MAX_HEAD, b't');
    assert_eq!(err_of(&responses_to(&[]), &big), H1Error::TrailersTooLarge);
}

#[test]
fn the_request_queue_is_bounded() {
    let mut d = Http1Decoder::responses();
    for _ in 0..100_000 {
        d.expect_response_to("HEAD");
    }
    assert!(d.buffered() <= MAX_PENDING_REQUESTS * 2);
}

/// A small deterministic fuzzer: mutations of real messages, fed in several slicings, must
/// never panic, must agree across slicings and must leave the decoder failed after an error.
#[test]
fn mutated_real_messages_never_panic() {
    let seeds: [&[u8]; 4] = [
        b"POST /dns-query HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x\r\nhello\r\n0\r\nT: 1\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n\0\0",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.0 200 OK\r\n\r\nrest",
    ];
    let alphabet = b"\r\n :;,0123456789abcdefHTP/1.chunkedContent-Length\x00\xff";
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..3000 {
        let mut input = seeds[round % seeds.len()].to_vec();
        for _ in 0..(next() % 6) {
            let pos = (next() as usize) % (input.len() + 1);
            let b = alphabet[(next() as usize) % alphabet.len()];
            match next() % 3 {
                0 => input.insert(pos, b),
                1 if pos < input.len() => {
                    input.remove(pos);
                }
                _ if pos < input.len() => input[pos] = b,
                _ => {}
            }
        }
        let make: &dyn Fn() -> Http1Decoder = if round % 2 == 0 {
            &requests
        } else {
            &responses_to(&["GET", "HEAD", "POST"])
        };
        let whole = run_sliced(make, &input, input.len().max(1));
        let slice = (next() % 13) as usize + 1;
        let r = run_sliced(make, &input, slice);
        assert_eq!((r.events, r.error), (whole.events, whole.error));
    }
}
