//! `doh-trace read` on arbitrary files: the pcap/pcapng/gzip reader, the link, IP and TCP
//! layers and the whole pipeline behind them see hostile captures. The input is read as is
//! and, so that the fuzzer gets past the headers, also as the packets of a valid pcapng
//! section (an Ethernet and a raw-IP interface), each packet a length-prefixed piece of it.
#![no_main]
use std::io::Cursor;

use doh_trace::{lookup::resolvers::ResolverList, pipeline::capture::read_capture};
use libfuzzer_sys::fuzz_target;

fn read(bytes: Vec<u8>) {
    let mut n = 0u32;
    let _ = read_capture(
        Cursor::new(bytes),
        ResolverList::builtin(),
        Vec::new(),
        |p| {
            n += p.drain_lookups().count() as u32;
            Ok(n < 10_000)
        },
        |_| {},
    );
}

/// A pcapng block of `kind` with `body`, padded.
fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    let padded = body.len().div_ceil(4) * 4;
    let len = (12 + padded) as u32;
    out.extend(kind.to_le_bytes());
    out.extend(len.to_le_bytes());
    out.extend(body);
    out.resize(out.len() + padded - body.len(), 0);
    out.extend(len.to_le_bytes());
}

fuzz_target!(|data: &[u8]| {
    read(data.to_vec());
    let mut file = Vec::new();
    block(&mut file, 0x0a0d_0d0a, &[0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    block(&mut file, 1, &[1, 0, 0, 0, 0, 0, 4, 0]);
    block(&mut file, 1, &[101, 0, 0, 0, 0, 0, 4, 0]);
    let mut rest = data;
    let mut ts = 0u32;
    while let [len, iface, tail @ ..] = rest {
        let take = usize::from(*len).min(tail.len());
        let (pkt, next) = tail.split_at(take);
        ts = ts.wrapping_add(u32::from(*iface) << 12);
        let mut body = Vec::new();
        body.extend(u32::from(iface & 1).to_le_bytes());
        body.extend(0u32.to_le_bytes());
        body.extend(ts.to_le_bytes());
        body.extend((pkt.len() as u32).to_le_bytes());
        body.extend((pkt.len() as u32 + u32::from(iface >> 7)).to_le_bytes());
        body.extend(pkt);
        block(&mut file, 6, &body);
        rest = next;
    }
    read(file);
});
