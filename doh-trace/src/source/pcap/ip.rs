//! The network and transport headers: IPv4 (options, fragments reassembled within bounds) and
//! IPv6 (extension headers skipped, fragments reassembled alike), then the TCP or UDP header.
//! A packet cut short by the capture's snap length still says how long its payload was, so
//! the layers above know how many bytes they miss.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

/// Datagrams being reassembled at once; beyond it new fragments are dropped (counted).
const MAX_PENDING: usize = 256;
/// Largest reassembled datagram.
const MAX_DATAGRAM: usize = 65_535;
/// Fragments kept of one datagram.
const MAX_PIECES: usize = 64;
/// A datagram whose fragments have not all come within this long is given up (counted).
const FRAGMENT_TTL_NS: u64 = 30_000_000_000;
/// IPv6 extension headers walked before giving up.
const MAX_EXTENSIONS: usize = 8;

const TCP: u8 = 6;
const UDP: u8 = 17;

/// What the IP layer counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IpCounters {
    /// Packets whose IP or transport header was malformed or cut.
    pub malformed: u64,
    /// Packets of other protocols (ICMP, …).
    pub other_protocol: u64,
    /// Fragments seen, and datagrams rebuilt from them.
    pub fragments: u64,
    pub reassembled: u64,
    /// Fragments dropped: too many datagrams pending, too large, overlapping, or timed out.
    pub fragments_dropped: u64,
}

/// A transport segment or datagram.
#[derive(Debug, PartialEq, Eq)]
pub struct Transport<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub kind: Kind,
    /// The payload as captured.
    pub payload: &'a [u8],
    /// The payload's length on the wire (longer than `payload` when the capture cut it).
    pub wire_len: usize,
}

/// TCP with its header fields, or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tcp { seq: u32, ack: u32, flags: u8 },
    Udp,
}

/// TCP flags.
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;
}

/// A fragmented datagram being put back together.
struct Pending {
    first_ns: u64,
    /// (offset, bytes) in arrival order.
    pieces: Vec<(usize, Vec<u8>)>,
    /// The length, once the last fragment came.
    total: Option<usize>,
    /// Bytes held.
    held: usize,
}

/// (source, destination, identification, protocol) of a fragmented datagram.
type FragKey = (IpAddr, IpAddr, u32, u8);

/// The IP layer's state: fragments waiting for the rest of their datagram.
#[derive(Default)]
pub struct IpLayer {
    pending: HashMap<FragKey, Pending>,
    pub counters: IpCounters,
    /// The last reassembled datagram (the transport header borrows from it).
    rebuilt: Vec<u8>,
}

/// Where an IP packet's payload is.
struct Ip<'a> {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    payload: &'a [u8],
    wire_len: usize,
    /// (offset, more fragments, id) when it is a fragment.
    fragment: Option<(usize, bool, u32)>,
}

impl IpLayer {
    /// The transport segment of an IP packet, once whole; None for packets that are not TCP
    /// or UDP, malformed ones, and fragments still waiting for the rest (each counted).
    pub fn transport<'a>(&'a mut self, packet: &'a [u8], ts_ns: u64) -> Option<Transport<'a>> {
        let Some(ip) = parse_ip(packet) else {
            self.counters.malformed += 1;
            return None;
        };
        if ip.proto != TCP && ip.proto != UDP {
            self.counters.other_protocol += 1;
            return None;
        }
        let (payload, wire_len) = match ip.fragment {
            None => (ip.payload, ip.wire_len),
            Some((offset, more, id)) => {
                self.counters.fragments += 1;
                if ip.payload.len() < ip.wire_len {
                    // A fragment cut by the snap length cannot be put back.
                    self.counters.fragments_dropped += 1;
                    return None;
                }
                let key = (ip.src, ip.dst, id, ip.proto);
                if !self.add_fragment(key, offset, more, ip.payload, ts_ns) {
                    return None;
                }
                (&self.rebuilt[..], self.rebuilt.len())
            }
        };
        let t = parse_transport(ip.src, ip.dst, ip.proto, payload, wire_len);
        if t.is_none() {
            self.counters.malformed += 1;
        }
        t
    }

    /// Keeps a fragment; true when it completed its datagram (then in `self.rebuilt`).
    fn add_fragment(
        &mut self,
        key: FragKey,
        offset: usize,
        more: bool,
        bytes: &[u8],
        ts_ns: u64,
    ) -> bool {
        self.expire(ts_ns);
        if !self.pending.contains_key(&key) && self.pending.len() >= MAX_PENDING {
            self.counters.fragments_dropped += 1;
            return false;
        }
        let p = self.pending.entry(key).or_insert_with(|| Pending {
            first_ns: ts_ns,
            pieces: Vec::new(),
            total: None,
            held: 0,
        });
        let end = offset + bytes.len();
        if end > MAX_DATAGRAM || p.pieces.len() >= MAX_PIECES || (!more && p.total.is_some()) {
            self.counters.fragments_dropped += 1 + p.pieces.len() as u64;
            self.pending.remove(&key);
            return false;
        }
        if !more {
            p.total = Some(end);
        }
        p.held += bytes.len();
        p.pieces.push((offset, bytes.to_vec()));
        let Some(total) = p.total else {
            return false;
        };
        // Complete when the pieces cover 0..total; the first copy of a byte wins.
        let mut order: Vec<&(usize, Vec<u8>)> = p.pieces.iter().collect();
        order.sort_by_key(|(o, _)| *o);
        let mut covered = 0;
        for (o, b) in &order {
            if *o > covered {
                return false;
            }
            covered = covered.max(o + b.len());
        }
        if covered < total {
            return false;
        }
        let p = self.pending.remove(&key).expect("present");
        self.rebuilt.clear();
        self.rebuilt.resize(total, 0);
        let mut have = vec![false; total];
        for (o, b) in &p.pieces {
            for (i, &byte) in b.iter().enumerate() {
                let at = o + i;
                if at < total && !have[at] {
                    have[at] = true;
                    self.rebuilt[at] = byte;
                }
            }
        }
        self.counters.reassembled += 1;
        true
    }

    /// Gives up datagrams whose fragments came too long ago.
    fn expire(&mut self, now_ns: u64) {
        let before = self.pending.len();
        let mut dropped = 0;
        self.pending.retain(|_, p| {
            let keep = now_ns.saturating_sub(p.first_ns) < FRAGMENT_TTL_NS;
            if !keep {
                dropped += p.pieces.len() as u64;
            }
            keep
        });
        if self.pending.len() != before {
            self.counters.fragments_dropped += dropped;
        }
    }

    /// Bytes held in fragments waiting for the rest of their datagram.
    pub fn held(&self) -> usize {
        self.pending.values().map(|p| p.held).sum()
    }
}

/// An IPv4 or IPv6 header.
fn parse_ip(p: &[u8]) -> Option<Ip<'_>> {
    match p.first()? >> 4 {
        4 => {
            let ihl = usize::from(p.first()? & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*p.get(2)?, *p.get(3)?]));
            if ihl < 20 || total < ihl || p.len() < ihl {
                return None;
            }
            let id = u32::from(u16::from_be_bytes([p[4], p[5]]));
            let frag = u16::from_be_bytes([p[6], p[7]]);
            let more = frag & 0x2000 != 0;
            let offset = usize::from(frag & 0x1fff) * 8;
            let src = IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15]));
            let dst = IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19]));
            Some(Ip {
                src,
                dst,
                proto: p[9],
                payload: &p[ihl..p.len().min(total)],
                wire_len: total - ihl,
                fragment: (more || offset != 0).then_some((offset, more, id)),
            })
        }
        6 => {
            let hdr = p.get(..40)?;
            let payload_len = usize::from(u16::from_be_bytes([hdr[4], hdr[5]]));
            let addr = |at: usize| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&hdr[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(a))
            };
            let (src, dst) = (addr(8), addr(24));
            let mut next = hdr[6];
            let mut at = 40;
            let end = 40 + payload_len;
            let mut fragment = None;
            for _ in 0..MAX_EXTENSIONS {
                match next {
                    // Hop-by-hop, routing, destination options.
                    0 | 43 | 60 => {
                        let h = p.get(at..at + 2)?;
                        next = h[0];
                        at += (usize::from(h[1]) + 1) * 8;
                    }
                    // Authentication header.
                    51 => {
                        let h = p.get(at..at + 2)?;
                        next = h[0];
                        at += (usize::from(h[1]) + 2) * 4;
                    }
                    44 => {
                        let h = p.get(at..at + 8)?;
                        next = h[0];
                        let off = u16::from_be_bytes([h[2], h[3]]);
                        let id = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
                        fragment = Some((usize::from(off & 0xfff8), off & 1 != 0, id));
                        at += 8;
                    }
                    _ => break,
                }
            }
            if at > end || at > p.len() {
                return None;
            }
            Some(Ip {
                src,
                dst,
                proto: next,
                payload: &p[at..p.len().min(end)],
                wire_len: end - at,
                fragment,
            })
        }
        _ => None,
    }
}

/// The TCP or UDP header of a whole datagram's payload.
fn parse_transport(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    p: &[u8],
    wire_len: usize,
) -> Option<Transport<'_>> {
    let port = |at: usize| Some(u16::from_be_bytes([*p.get(at)?, *p.get(at + 1)?]));
    let (sport, dport) = (port(0)?, port(2)?);
    let (kind, header) = match proto {
        TCP => {
            let h = p.get(..20)?;
            let seq = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
            let ack = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
            let header = usize::from(h[12] >> 4) * 4;
            if header < 20 || header > wire_len || header > p.len() {
                return None;
            }
            (
                Kind::Tcp {
                    seq,
                    ack,
                    flags: h[13],
                },
                header,
            )
        }
        UDP => {
            let len = usize::from(port(4)?);
            if len < 8 || len > wire_len || p.len() < 8 {
                return None;
            }
            return Some(Transport {
                src: SocketAddr::new(src, sport),
                dst: SocketAddr::new(dst, dport),
                kind: Kind::Udp,
                payload: &p[8..p.len().min(len)],
                wire_len: len - 8,
            });
        }
        _ => return None,
    };
    Some(Transport {
        src: SocketAddr::new(src, sport),
        dst: SocketAddr::new(dst, dport),
        kind,
        payload: &p[header..],
        wire_len: wire_len - header,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 UDP packet from 10.0.0.1:5000 to 10.0.0.2:53 carrying `payload`.
    fn udp4(payload: &[u8], id: u16, frag: u16) -> Vec<u8> {
        let total = 20 + 8 + payload.len();
        let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8];
        p.extend(id.to_be_bytes());
        p.extend(frag.to_be_bytes());
        p.extend([64, UDP, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        let ulen = 8 + payload.len() as u16;
        p.extend([0x13, 0x88, 0, 53]);
        p.extend(ulen.to_be_bytes());
        p.extend([0, 0]);
        p.extend(payload);
        p
    }

    #[test]
    fn a_whole_udp_datagram_and_a_cut_one() {
        let mut ip = IpLayer::default();
        let p = udp4(b"hello", 1, 0);
        let t = ip.transport(&p, 0).unwrap();
        assert_eq!(t.src, "10.0.0.1:5000".parse().unwrap());
        assert_eq!(t.dst.port(), 53);
        assert_eq!((t.payload, t.wire_len), (&b"hello"[..], 5));
        let t = ip.transport(&p[..30], 0).unwrap();
        assert_eq!((t.payload, t.wire_len), (&b"he"[..], 5));
        assert!(ip.transport(&p[..10], 0).is_none());
        assert_eq!(ip.counters.malformed, 1);
    }

    #[test]
    fn ipv4_fragments_out_of_order_are_put_back() {
        let whole = udp4(&[7u8; 40], 9, 0);
        // The IP payload (UDP header + 40 bytes) in two fragments of 24 and 24 bytes.
        let body = &whole[20..];
        let frag = |off: usize, more: bool, bytes: &[u8]| {
            let total = 20 + bytes.len();
            let mut p = whole[..20].to_vec();
            p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            let f = (off / 8) as u16 | if more { 0x2000 } else { 0 };
            p[6..8].copy_from_slice(&f.to_be_bytes());
            p.extend(bytes);
            p
        };
        let mut ip = IpLayer::default();
        assert!(ip.transport(&frag(24, false, &body[24..]), 0).is_none());
        let first = frag(0, true, &body[..24]);
        let t = ip.transport(&first, 1).unwrap();
        assert_eq!(t.payload, &[7u8; 40][..]);
        assert_eq!((ip.counters.fragments, ip.counters.reassembled), (2, 1));
        // A lone fragment times out.
        assert!(ip.transport(&frag(0, true, &body[..24]), 2).is_none());
        assert!(ip
            .transport(&udp4(b"x", 1, 0), 2 + FRAGMENT_TTL_NS)
            .is_some());
        let _ = ip.transport(&frag(24, true, &body[..8]), 3 + FRAGMENT_TTL_NS);
        assert_eq!(ip.counters.fragments_dropped, 1);
    }

    #[test]
    fn ipv6_extension_headers_are_skipped() {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, 0, 64];
        p.extend([0u8; 15]);
        p.push(1);
        p.extend([0u8; 15]);
        p.push(2);
        // Hop-by-hop (8 bytes) then UDP.
        let mut body = vec![UDP, 0, 0, 0, 0, 0, 0, 0];
        body.extend([0x13, 0x88, 0, 53, 0, 10, 0, 0, b'h', b'i']);
        p[4..6].copy_from_slice(&(body.len() as u16).to_be_bytes());
        p[6] = 0;
        p.extend(&body);
        let mut ip = IpLayer::default();
        let t = ip.transport(&p, 0).unwrap();
        assert_eq!(t.dst, "[::2]:53".parse().unwrap());
        assert_eq!(t.payload, b"hi");
    }
}
