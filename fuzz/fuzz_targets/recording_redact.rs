//! What a recording keeps of a DNS connection (`output::redact`) on arbitrary plaintext: calls
//! of either direction and layer, cut anywhere. Every record written instead of the raw one
//! must decode as a data record of the same connection, and so must what the close writes.
#![no_main]
use doh_trace::{
    output::redact::{ConnRedactor, Redacted},
    source::{kernel, ConnId, DataChunk, Direction, Event, Layer, Meta},
};
use doh_trace_common::{
    DataEvent, EventKind, Source, COMM_LEN, DATA_EVENT_HEADER_SIZE, DIR_EGRESS, DIR_INGRESS,
};
use libfuzzer_sys::fuzz_target;
use std::mem::offset_of;

fuzz_target!(|data: &[u8]| {
    let mut r = ConnRedactor::default();
    let mut rest = data;
    while rest.len() >= 3 {
        let (flags, len) = (rest[0], usize::from(u16::from_be_bytes([rest[1], rest[2]])));
        let bytes = &rest[3..(3 + len).min(rest.len())];
        rest = &rest[(3 + len).min(rest.len())..];
        let total = bytes.len() as u32 + if flags & 4 != 0 { 1 } else { 0 };
        let d = DataChunk {
            meta: Meta {
                pid: 1,
                tid: 1,
                uid: 0,
                ts_ns: 1,
            },
            id: ConnId::Fd(3),
            layer: if flags & 1 != 0 {
                Layer::Socket
            } else {
                Layer::Tls
            },
            library: None,
            direction: if flags & 2 != 0 {
                Direction::Ingress
            } else {
                Direction::Egress
            },
            total_len: total,
            offset: 0,
            comm: [0; COMM_LEN],
            bytes,
        };
        // The raw record head `with_bytes` copies: a data record of OpenSSL, this direction.
        let mut raw = vec![0u8; DATA_EVENT_HEADER_SIZE];
        raw[..4].copy_from_slice(&(EventKind::Data as u32).to_ne_bytes());
        let source = if flags & 1 != 0 {
            Source::Socket
        } else {
            Source::OpenSsl
        };
        raw[offset_of!(DataEvent, source)..][..4].copy_from_slice(&(source as u32).to_ne_bytes());
        let dir = if flags & 2 != 0 {
            DIR_INGRESS
        } else {
            DIR_EGRESS
        };
        raw[offset_of!(DataEvent, direction)..][..4].copy_from_slice(&dir.to_ne_bytes());
        if let Redacted::Records(records) = r.redact(&raw, &d) {
            for rec in records {
                assert!(matches!(kernel::decode(&rec), Ok(Event::Data(_))));
            }
        }
        assert!(r.buffered() < 64 << 20);
    }
    // The close: what it completes (an HTTP/1.1 response it delimits) is ingress data.
    for rec in r.close() {
        match kernel::decode(&rec) {
            Ok(Event::Data(d)) => assert_eq!(d.direction, Direction::Ingress),
            other => panic!("not a data record: {other:?}"),
        }
    }
});
