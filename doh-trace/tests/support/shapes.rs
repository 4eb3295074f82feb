//! The HTTP/2 shape checks: a connection (recorded by [`super::h2_runner`], re-framed, or
//! crafted with [`super::frames`]) fed through the whole pipeline at every slicing, whose
//! lookups and counters must be exactly the expected ones; the expected DoH lookups of the test
//! server; and [`Crafted`], a crafted connection with HPACK state for each direction.

use doh_trace::{
    counters::DecodeCounters,
    lookup::Lookup,
    pipeline::Pipeline,
    source::{ConnId, Direction, Event, Meta},
};
use hickory_proto::rr::RecordType;

use super::{
    dns::query,
    exchange,
    expect::{summaries, summary, Expect},
    feed,
    frames::*,
    pipeline, Call, Req,
};

pub const PID: u32 = 4242;
pub const FD: i32 = 7;
/// Whole calls, 5-byte pieces, 1-byte pieces.
pub const SLICES: [usize; 3] = [usize::MAX, 5, 1];
pub const AUTHORITY: &str = "doh.test:8443";
pub const URL: &str = "https://doh.test:8443/dns-query";
pub const A_ANSWER: &str = "192.0.2.10";
pub const AAAA_ANSWER: &str = "2001:db8::10";

// ===== expected lookups =====

/// An answered POST lookup: NOERROR, HTTP 200, no answers yet.
pub fn lk(stream: u32, qname: &str, qtype: &str) -> Expect {
    Expect {
        stream_id: Some(stream),
        qname: Some(qname.into()),
        qtype: Some(qtype.into()),
        status: "ok".into(),
        answers: vec![],
        http_status: Some(200),
        rcode: Some("NOERROR".into()),
        method: Some("POST".into()),
        dns_id: Some(0),
        authority: Some(AUTHORITY.into()),
        url: Some(URL.into()),
        ..Default::default()
    }
}

/// The test server's A answer.
pub fn a(stream: u32, qname: &str) -> Expect {
    lk(stream, qname, "A").answers(&[A_ANSWER])
}

/// The test server's AAAA answer.
pub fn aaaa(stream: u32, qname: &str) -> Expect {
    lk(stream, qname, "AAAA").answers(&[AAAA_ANSWER])
}

/// The test server's NXDOMAIN answer (for `nx.` names).
pub fn nxdomain(stream: u32, qname: &str, qtype: &str) -> Expect {
    let mut l = lk(stream, qname, qtype);
    l.rcode = Some("NXDOMAIN".into());
    l
}

// ===== running the pipeline =====

/// Feeds `calls` at every slicing and checks that the lookups are exactly `want` and that the
/// counters are clean (one HTTP/2 client connection, one lookup per expected lookup).
pub fn check(calls: &[Call], want: Vec<Expect>) -> Vec<Vec<Lookup>> {
    check_full(calls, want, &SLICES, |_| {}, |_| {})
}

/// [`check`] with more: `slices`, `after` runs on the pipeline after the bytes (close events),
/// `adjust` edits the expected counters.
pub fn check_full(
    calls: &[Call],
    mut want: Vec<Expect>,
    slices: &[usize],
    after: impl Fn(&mut Pipeline),
    adjust: impl Fn(&mut DecodeCounters),
) -> Vec<Vec<Lookup>> {
    want.sort_by_key(|l| l.stream_id);
    let mut expected = DecodeCounters {
        h2_client_conns: 1,
        lookups: want.len() as u64,
        ..Default::default()
    };
    adjust(&mut expected);
    assert_valid_hpack(calls);
    let mut all = Vec::new();
    for &slice in slices {
        let mut p = pipeline();
        feed(&mut p, calls, PID, FD, slice);
        after(&mut p);
        let lookups: Vec<Lookup> = p.drain_lookups().map(|l| *l).collect();
        let mut got: Vec<Expect> = lookups.iter().map(Expect::of_json).collect();
        got.sort_by_key(|l| l.stream_id);
        assert_eq!(
            got,
            want,
            "lookups, calls re-sliced at {slice} bytes; counters {:?}",
            p.counters()
        );
        let summarised: Vec<Expect> = summary(&lookups)
            .into_iter()
            .map(Expect::shortened)
            .collect();
        assert_eq!(summarised, summaries(want.clone()), "slice {slice}");
        for l in &lookups {
            let v = serde_json::to_value(l).unwrap();
            assert_eq!(
                (v["pid"].as_u64(), v["tid"].as_u64(), v["comm"].as_str()),
                (Some(PID.into()), Some((PID + 1).into()), Some("client"))
            );
            let answered = matches!(
                v["status"].as_str(),
                Some("ok" | "http-error" | "malformed-answer")
            );
            assert_eq!(
                l.latency_ms.is_some(),
                answered,
                "latency only for answered lookups: {v}"
            );
        }
        let mut c = p.counters().clone();
        c.events = 0;
        assert_eq!(c, expected, "counters, calls re-sliced at {slice} bytes");
        all.push(lookups);
    }
    all
}

/// The test input itself is sound: every header block of each direction decodes, in wire
/// order, with an independent HPACK decoder (loona-hpack) that has no size limit.
pub fn assert_valid_hpack(calls: &[Call]) {
    for dir in [Direction::Egress, Direction::Ingress] {
        let mut dec = loona_hpack::Decoder::new();
        for (stream, _, block) in header_blocks(calls, dir) {
            if let Err(e) = dec.decode(&block) {
                panic!("test input: {dir:?} block on stream {stream} does not decode: {e:?}");
            }
        }
    }
}

/// A close of the connection's socket, after everything fed.
pub fn close_socket(p: &mut Pipeline) {
    p.handle_event(Event::Close {
        meta: Meta {
            pid: PID,
            tid: PID + 1,
            uid: 1000,
            ts_ns: 10_000_000_000,
        },
        id: ConnId::Fd(FD),
    });
}

/// The h2 exchange most re-framing tests start from: three POSTs and a GET on one connection.
pub fn four_lookups() -> (Vec<Call>, Vec<Expect>) {
    let calls = exchange(
        vec![
            Req::post(query("www.doh.test", RecordType::A, 0)),
            Req::post(query("www.doh.test", RecordType::AAAA, 0)),
            Req::post(query("nx.doh.test", RecordType::A, 0)),
            Req::get(&query("get.doh.test", RecordType::A, 0)),
        ],
        200,
    );
    let want = vec![
        a(1, "www.doh.test"),
        aaaa(3, "www.doh.test"),
        nxdomain(5, "nx.doh.test", "A"),
        a(7, "get.doh.test").get(),
    ];
    (calls, want)
}

/// How many frames of `kind` a direction carries.
pub fn count(calls: &[Call], dir: Direction, kind: u8) -> usize {
    frames_of(calls, dir)
        .iter()
        .filter(|f| f.kind == kind)
        .count()
}

// ===== crafted connections =====

/// A crafted connection: preface and SETTINGS exchanged, HPACK encoders (loona-hpack, no
/// Huffman) for each direction, and independent decoders that check every crafted block.
pub struct Crafted {
    pub s: Script,
    req_enc: loona_hpack::Encoder<'static>,
    resp_enc: loona_hpack::Encoder<'static>,
    req_dec: loona_hpack::Decoder<'static>,
    resp_dec: loona_hpack::Decoder<'static>,
}

impl Crafted {
    /// The client's preface with `client_settings`, the server's SETTINGS (`server_settings`)
    /// and both ACKs.
    pub fn new(client_settings: &[(u16, u32)], server_settings: &[(u16, u32)]) -> Crafted {
        let mut s = Script::client_preface(client_settings);
        s.recv_bytes(server_start(server_settings));
        s.send(&[settings_ack()]);
        Crafted {
            s,
            req_enc: loona_hpack::Encoder::new(),
            resp_enc: loona_hpack::Encoder::new(),
            req_dec: loona_hpack::Decoder::new(),
            resp_dec: loona_hpack::Decoder::new(),
        }
    }

    /// A DoH POST request block (plain literals, a custom header that loona indexes).
    pub fn post_block(&mut self) -> Vec<u8> {
        self.request_block("POST", "/dns-query")
    }

    /// A DoH GET request block for `query`.
    pub fn get_block(&mut self, q: &[u8]) -> Vec<u8> {
        use base64::Engine as _;
        let path = format!(
            "/dns-query?dns={}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(q)
        );
        self.request_block("GET", &path)
    }

    fn request_block(&mut self, method: &str, path: &str) -> Vec<u8> {
        let mut fields = vec![
            (":method", method),
            (":scheme", "https"),
            (":authority", AUTHORITY),
            (":path", path),
            ("accept", "application/dns-message"),
        ];
        if method == "POST" {
            fields.push(("content-type", "application/dns-message"));
        }
        fields.push(("x-client", "crafted-shape-test"));
        let block = loona_block(&mut self.req_enc, &fields);
        self.check_request(&block);
        block
    }

    /// Checks a request block with the independent decoder (keeping its state in step).
    pub fn check_request(&mut self, block: &[u8]) -> Vec<(String, String)> {
        decode_block(&mut self.req_dec, block)
    }

    /// A response block with `status` (plain literals, a custom header that loona indexes).
    pub fn response_block(&mut self, status: &str) -> Vec<u8> {
        let block = loona_block(
            &mut self.resp_enc,
            &[
                (":status", status),
                ("content-type", "application/dns-message"),
                ("x-resolver", "crafted"),
            ],
        );
        self.check_response(&block);
        block
    }

    pub fn check_response(&mut self, block: &[u8]) -> Vec<(String, String)> {
        decode_block(&mut self.resp_dec, block)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.s.calls()
    }
}
