//! Terminal escapes chosen by a remote DNS server (TXT and CAA data) or by a local user (the
//! process name) go through the pipeline as real bytes and reach the text line, the connection
//! line and the exit summary only escaped; JSON keeps them, escaped as JSON does.

mod support;

use doh_trace::{
    lookup::Lookup,
    output::{json_line::JsonWriter, summary::Summary, text},
    pipeline::Pipeline,
    source::{ConnId, ConnInfo, DataChunk, Direction, Event, Layer, Meta, SocketType},
};
use doh_trace_common::COMM_LEN;
use hickory_proto::{
    op::{Message, MessageType, OpCode},
    rr::{rdata, Name, RData, Record, RecordType},
};
use support::{pipeline, query};

/// Clears the screen, retitles the terminal, moves the cursor (8-bit CSI) and rubs out.
const HOSTILE: &str = "\x1b[2J\x1b]0;pwned\x07\u{9b}1A\x08\x7f";
/// The process name: a colour escape and a carriage return in 15 bytes.
const COMM: &[u8] = b"ev\x1b[31mil\rcat";

/// A TXT answer carrying [`HOSTILE`], and a CAA record (tag `tbs`, an unknown property whose
/// value is any octets) carrying it too, appended on the wire.
fn hostile_answer(q: &[u8]) -> Vec<u8> {
    let q = Message::from_vec(q).unwrap();
    let mut m = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
    let question = q.queries[0].clone();
    let name: Name = question.name().clone();
    m.add_query(question);
    m.add_answer(Record::from_rdata(
        name,
        60,
        RData::TXT(rdata::TXT::new(vec![HOSTILE.to_string()])),
    ));
    let mut wire = m.to_vec().unwrap();
    // ANCOUNT 1 → 2, then: owner = the question's name (pointer to offset 12), CAA, IN, TTL
    // 60, and the data: flags 0, tag length 3, "tbs", the value.
    wire[7] += 1;
    let data = [&[0u8, 3][..], b"tbs", HOSTILE.as_bytes()].concat();
    wire.extend_from_slice(&[0xc0, 12, 1, 1, 0, 1, 0, 0, 0, 60]);
    wire.extend_from_slice(&(data.len() as u16).to_be_bytes());
    wire.extend_from_slice(&data);
    wire
}

/// One UDP lookup of `evil.test` TXT by the process [`COMM`], answered by [`hostile_answer`].
fn hostile_lookup(p: &mut Pipeline) -> Lookup {
    let mut comm = [0u8; COMM_LEN];
    comm[..COMM.len()].copy_from_slice(COMM);
    let meta = |ts| Meta {
        pid: 66,
        tid: 66,
        uid: 1000,
        ts_ns: ts,
    };
    p.handle_event(Event::Conn(ConnInfo {
        meta: meta(1_000_000_000),
        id: ConnId::Fd(5),
        accepted: false,
        sock_type: SocketType::Datagram,
        peer: "192.0.2.53:53".parse().unwrap(),
        comm,
    }));
    let q = query("evil.test.", RecordType::TXT, 0x4242);
    let a = hostile_answer(&q);
    for (ts, dir, bytes) in [
        (1_001_000_000, Direction::Egress, &q),
        (1_002_000_000, Direction::Ingress, &a),
    ] {
        p.handle_event(Event::Data(DataChunk {
            meta: meta(ts),
            id: ConnId::Fd(5),
            layer: Layer::Socket,
            library: doh_trace_common::Source::Socket.library(),
            direction: dir,
            total_len: bytes.len() as u32,
            offset: 0,
            comm,
            bytes,
        }));
    }
    p.handle_event(Event::Close {
        meta: meta(1_003_000_000),
        id: ConnId::Fd(5),
    });
    let mut got: Vec<Lookup> = p.drain_lookups().map(|l| *l).collect();
    assert_eq!(got.len(), 1, "{got:#?}");
    got.remove(0)
}

/// Whether `s` holds a C0 or C1 control character or DEL.
fn has_control(s: &str) -> bool {
    s.chars()
        .any(|c| matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'))
}

#[test]
fn hostile_answers_and_process_names_reach_the_terminal_escaped() {
    let mut p = pipeline();
    let l = hostile_lookup(&mut p);
    // The bytes went through as they came: the lookup holds them raw.
    assert_eq!(l.answers.len(), 2, "{l:#?}");
    assert!(l.answers.iter().all(|a| a.contains(HOSTILE)), "{l:#?}");
    assert!(l.comm.contains('\x1b'), "{:?}", l.comm);

    let line = text::lookup_line(&l, false);
    assert!(!has_control(&line), "{line:?}");
    assert!(line.contains("ev\\x1b[31mi"), "the name, escaped: {line:?}");
    assert!(
        line.contains("\\x1b[2J\\x1b"),
        "the TXT data, escaped: {line:?}"
    );
    // Coloured, the only escapes are the tracer's own.
    let coloured = text::lookup_line(&l, true);
    assert_eq!(coloured.matches('\x1b').count(), 0, "{coloured:?}");

    let mut summary = Summary::default();
    summary.add(&l);
    for row in summary.render() {
        assert!(!has_control(&row), "{row:?}");
    }
    assert!(summary.render()[1].contains("ev\\x1b[31mil\\x0dcat"));

    // JSON keeps the text: decoded, it is the same string; raw, no C0 byte is in the line.
    let mut json = Vec::new();
    JsonWriter::default().write_lookup(&mut json, &l);
    assert!(!json.iter().any(|&b| b < 0x20 && b != b'\n'), "{json:?}");
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["comm"].as_str().unwrap().as_bytes(), COMM);
    assert!(v["answers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a.as_str().unwrap().contains(HOSTILE)));
}

#[test]
fn connection_lines_escape_the_process_name() {
    let mut p = pipeline();
    let _ = hostile_lookup(&mut p);
    let conns: Vec<_> = p.drain_connections().collect();
    assert_eq!(conns.len(), 1);
    let line = text::connection_line(&conns[0]);
    assert!(!has_control(&line), "{line:?}");
    assert!(line.contains("ev\\x1b[31mil\\x0dcat"), "{line:?}");
}
