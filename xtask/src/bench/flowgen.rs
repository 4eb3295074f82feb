//! A synthetic capture of many concurrent TLS flows, for the capture section's memory figure
//! (real clients cannot open 10 000 connections at once here quickly): a classic pcap of
//! Ethernet/IPv4/TCP to port 443 with valid checksums, every flow's three-way handshake, then
//! a real client's ClientHello and a real server's first flight (copied from the benchmark's
//! own capture of httpx and unbound), then TLS application-data records both ways, with
//! correct sequence and acknowledgement numbers, interleaved round by round so that every flow
//! is open from the first round to the last; then each flow's FIN exchange.

use std::{
    fs::File,
    io::{BufWriter, Write},
    net::Ipv4Addr,
    os::unix::fs::OpenOptionsExt as _,
    path::Path,
};

use anyhow::{Context as _, Result};

/// TCP payload of a full segment (Ethernet MTU 1500 less IPv4 and TCP headers and options).
const MSS: usize = 1448;
/// Application-data records the server sends (TLS's largest plaintext, plus an AEAD tag).
const RECORD: usize = 16_384 + 17;
/// A client request record every this many server segments, and an ACK every `ACK_EVERY`.
const REQUEST_EVERY: usize = 32;
const ACK_EVERY: usize = 2;
const REQUEST: usize = 120;

const SYN: u8 = 0x02;
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// What was written.
pub struct Written {
    pub packets: u64,
    pub bytes: u64,
}

/// One flow's sequence numbers and where it is in its current server record.
struct Flow {
    client: (Ipv4Addr, u16),
    client_seq: u32,
    server_seq: u32,
    /// Where the server is in its current record (header included).
    record_at: usize,
}

/// Writes `flows` concurrent flows to `path` (mode 0600) until it holds about `size` bytes.
pub fn write(
    path: &Path,
    flows: usize,
    size: u64,
    client_hello: &[u8],
    server_flight: &[u8],
) -> Result<Written> {
    let file = File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let mut w = Pcap::new(BufWriter::with_capacity(4 << 20, file))?;
    let server = (Ipv4Addr::new(10, 1, 0, 1), 443);
    let mut all: Vec<Flow> = (0..flows)
        .map(|i| Flow {
            client: (
                Ipv4Addr::new(10, 0, (i / 250) as u8, (i % 250 + 1) as u8),
                40_000 + (i % 20_000) as u16,
            ),
            client_seq: 0x1000_0000u32.wrapping_mul(i as u32 + 1),
            server_seq: 0x7000_0000u32.wrapping_add((i as u32).wrapping_mul(0x0101_0101)),
            record_at: 0,
        })
        .collect();
    // Filler for record bodies: content does not matter (the keys are not given), but it
    // should not be all zeros.
    let filler: Vec<u8> = (0..RECORD)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0])
        .collect();
    // One server record, header and body; the server sends it again and again.
    let mut record = vec![0x17, 0x03, 0x03];
    record.extend_from_slice(&(RECORD as u16).to_be_bytes());
    record.extend_from_slice(&filler);

    // Handshakes, then the ClientHello and the server's first flight, flow by flow.
    for f in &mut all {
        let c = f.client;
        w.segment(c, server, f.client_seq, 0, SYN, &[])?;
        f.client_seq = f.client_seq.wrapping_add(1);
        w.segment(server, c, f.server_seq, f.client_seq, SYN | ACK, &[])?;
        f.server_seq = f.server_seq.wrapping_add(1);
        w.segment(c, server, f.client_seq, f.server_seq, ACK, &[])?;
    }
    for f in &mut all {
        let c = f.client;
        for chunk in client_hello.chunks(MSS) {
            w.segment(c, server, f.client_seq, f.server_seq, PSH | ACK, chunk)?;
            f.client_seq = f.client_seq.wrapping_add(chunk.len() as u32);
        }
        for chunk in server_flight.chunks(MSS) {
            w.segment(server, c, f.server_seq, f.client_seq, PSH | ACK, chunk)?;
            f.server_seq = f.server_seq.wrapping_add(chunk.len() as u32);
        }
    }
    // Rounds of application data: every flow one server segment per round.
    let mut segment = Vec::with_capacity(MSS);
    let mut round = 0usize;
    // What the closing exchange adds: four segments of 54 bytes per flow, and their headers.
    let closing = flows as u64 * 4 * (16 + 54);
    while w.bytes + closing < size {
        for f in &mut all {
            if w.bytes + closing >= size {
                break;
            }
            let c = f.client;
            if round.is_multiple_of(REQUEST_EVERY) {
                let mut req = vec![0x17, 0x03, 0x03];
                req.extend_from_slice(&(REQUEST as u16).to_be_bytes());
                req.extend_from_slice(&filler[..REQUEST]);
                w.segment(c, server, f.client_seq, f.server_seq, PSH | ACK, &req)?;
                f.client_seq = f.client_seq.wrapping_add(req.len() as u32);
            }
            segment.clear();
            while segment.len() < MSS {
                let n = (MSS - segment.len()).min(record.len() - f.record_at);
                segment.extend_from_slice(&record[f.record_at..f.record_at + n]);
                f.record_at = (f.record_at + n) % record.len();
            }
            w.segment(server, c, f.server_seq, f.client_seq, ACK, &segment)?;
            f.server_seq = f.server_seq.wrapping_add(segment.len() as u32);
            if round % ACK_EVERY == ACK_EVERY - 1 {
                w.segment(c, server, f.client_seq, f.server_seq, ACK, &[])?;
            }
        }
        round += 1;
    }
    // The closes: the client's FIN, the server's FIN+ACK, the last ACK.
    for f in &mut all {
        let c = f.client;
        w.segment(c, server, f.client_seq, f.server_seq, FIN | ACK, &[])?;
        f.client_seq = f.client_seq.wrapping_add(1);
        w.segment(server, c, f.server_seq, f.client_seq, ACK, &[])?;
        w.segment(server, c, f.server_seq, f.client_seq, FIN | ACK, &[])?;
        f.server_seq = f.server_seq.wrapping_add(1);
        w.segment(c, server, f.client_seq, f.server_seq, ACK, &[])?;
    }
    w.finish()
}

/// A classic pcap (LINKTYPE_ETHERNET, microseconds) being written.
struct Pcap {
    w: BufWriter<File>,
    frame: Vec<u8>,
    ip_id: u16,
    /// Microseconds since the Unix epoch of the next packet (10 µs apart).
    ts_us: u64,
    packets: u64,
    bytes: u64,
}

/// 2026-01-01T00:00:00Z.
const START_US: u64 = 1_767_225_600_000_000;

impl Pcap {
    fn new(mut w: BufWriter<File>) -> Result<Pcap> {
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        header.extend_from_slice(&2u16.to_le_bytes());
        header.extend_from_slice(&4u16.to_le_bytes());
        header.extend_from_slice(&0i32.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&65_535u32.to_le_bytes());
        header.extend_from_slice(&1u32.to_le_bytes());
        w.write_all(&header)?;
        Ok(Pcap {
            w,
            frame: Vec::with_capacity(2048),
            ip_id: 0,
            ts_us: START_US,
            packets: 0,
            bytes: header.len() as u64,
        })
    }

    /// One segment (no options; window 64 KiB less one).
    fn segment(
        &mut self,
        (src, sport): (Ipv4Addr, u16),
        (dst, dport): (Ipv4Addr, u16),
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) -> Result<()> {
        self.ip_id = self.ip_id.wrapping_add(1);
        let f = &mut self.frame;
        f.clear();
        // Ethernet: the server's MAC 02:00:00:00:00:01, every client's 02:00:00:00:00:02.
        let (smac, dmac) = if sport == 443 { (1, 2) } else { (2, 1) };
        f.extend_from_slice(&[2, 0, 0, 0, 0, dmac, 2, 0, 0, 0, 0, smac]);
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        let ip_start = f.len();
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&((20 + 20 + payload.len()) as u16).to_be_bytes());
        f.extend_from_slice(&self.ip_id.to_be_bytes());
        f.extend_from_slice(&[0x40, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&dst.octets());
        let ip_sum = fold(sum(0, &f[ip_start..]));
        f[ip_start + 10..ip_start + 12].copy_from_slice(&ip_sum.to_be_bytes());
        let tcp_start = f.len();
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(&(if flags & ACK != 0 { ack } else { 0 }).to_be_bytes());
        f.extend_from_slice(&[5 << 4, flags]);
        f.extend_from_slice(&65_535u16.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0]);
        f.extend_from_slice(payload);
        let mut pseudo = [0u8; 12];
        pseudo[..4].copy_from_slice(&src.octets());
        pseudo[4..8].copy_from_slice(&dst.octets());
        pseudo[9] = 6;
        pseudo[10..].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
        let tcp_sum = fold(sum(sum(0, &pseudo), &f[tcp_start..]));
        f[tcp_start + 16..tcp_start + 18].copy_from_slice(&tcp_sum.to_be_bytes());

        let len = f.len() as u32;
        let mut rec = [0u8; 16];
        rec[..4].copy_from_slice(&((self.ts_us / 1_000_000) as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&((self.ts_us % 1_000_000) as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&len.to_le_bytes());
        rec[12..].copy_from_slice(&len.to_le_bytes());
        self.w.write_all(&rec)?;
        self.w.write_all(f)?;
        self.ts_us += 10;
        self.packets += 1;
        self.bytes += 16 + u64::from(len);
        Ok(())
    }

    fn finish(mut self) -> Result<Written> {
        self.w.flush()?;
        self.w.get_ref().sync_all().ok();
        Ok(Written {
            packets: self.packets,
            bytes: self.bytes,
        })
    }
}

/// The ones'-complement sum of `bytes` as 16-bit words, added to `acc`.
fn sum(acc: u32, bytes: &[u8]) -> u32 {
    let mut acc = u64::from(acc);
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        acc += u64::from(*b) << 8;
    }
    while acc > 0xffff_ffff {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify() {
        // A known IPv4 header (RFC 1071 style): the sum over a header with its checksum is 0.
        let mut h = [
            0x45u8, 0, 0, 0x73, 0, 0, 0x40, 0, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0, 1, 0xc0, 0xa8, 0,
            0xc7,
        ];
        let s = fold(sum(0, &h));
        h[10..12].copy_from_slice(&s.to_be_bytes());
        assert_eq!(s, 0xb861);
        assert_eq!(fold(sum(0, &h)), 0);
    }
}
