//! pcapng output: every lookup becomes a synthetic DNS-over-UDP query packet and, when an
//! answer arrived, a response packet, so that Wireshark/tshark can show DoH lookups with their
//! usual DNS dissector.
//!
//! File layout: one Section Header Block, one Interface Description Block with
//! `LINKTYPE_RAW` (101: each packet starts with its IPv4 or IPv6 header), then one Enhanced
//! Packet Block per packet, each with an `opt_comment` describing the lookup
//! (`packet=query pid=1234 comm=curl transport=doh server=127.0.0.1:8443 url=... status=ok`).
//! Everything is written little-endian (readers follow the byte-order magic).
//!
//! Addresses: the client is `Lookup.client` and the server `Lookup.server`. An unknown side
//! is the unspecified address (`0.0.0.0` or `::`, matching the other side's family; IPv4 when
//! both are unknown) with port 0. The server's UDP port is always **53**, whatever port the
//! DoH resolver listens on (443, 8443...): dissectors recognise DNS over UDP by port 53 only,
//! and the real resolver address and port are in the comment (`server=`). The client keeps its
//! real port (0 when unknown).
//!
//! Timestamps (microseconds): the response at `Lookup.time`, the query `latency_ms` earlier.
//! A `time` that is not RFC 3339 becomes the Unix epoch and the comment says `time=unparsed`.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::synthesize::synthesize_dns;
use crate::lookup::Lookup;

/// `LINKTYPE_RAW`: packets are bare IPv4/IPv6 datagrams.
pub const LINKTYPE_RAW: u16 = 101;
const SHB_TYPE: u32 = 0x0A0D_0D0A;
const IDB_TYPE: u32 = 0x0000_0001;
const EPB_TYPE: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const OPT_ENDOFOPT: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
/// UDP port of the synthetic server side.
pub const DNS_PORT: u16 = 53;
/// Largest UDP payload that fits an IPv4 datagram (and, with room to spare, an IPv6 one).
const MAX_UDP_PAYLOAD: usize = 65_535 - 20 - 8;

/// Writes lookups as pcapng packets to `W`.
pub struct PcapngWriter<W: Write> {
    out: W,
    ip_id: u16,
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the section header and the interface description; packets follow.
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut shb = Vec::with_capacity(64);
        shb.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes()); // major version
        shb.extend_from_slice(&0u16.to_le_bytes()); // minor version
        shb.extend_from_slice(&(-1i64).to_le_bytes()); // section length: not given
        push_option(&mut shb, SHB_USERAPPL, b"doh-trace");
        push_option(&mut shb, OPT_ENDOFOPT, b"");
        write_block(&mut out, SHB_TYPE, &shb)?;

        let mut idb = Vec::with_capacity(32);
        idb.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
        idb.extend_from_slice(&0u16.to_le_bytes()); // reserved
        idb.extend_from_slice(&0u32.to_le_bytes()); // snaplen: no limit
        push_option(&mut idb, IF_NAME, b"doh-trace");
        push_option(&mut idb, OPT_ENDOFOPT, b"");
        write_block(&mut out, IDB_TYPE, &idb)?;
        Ok(PcapngWriter { out, ip_id: 0 })
    }

    /// Writes the lookup's query packet and, when `answer` is given, its response packet.
    /// `query` and `answer` are the DNS messages exactly as carried over DoH.
    pub fn write_lookup(
        &mut self,
        l: &Lookup,
        query: &[u8],
        answer: Option<&[u8]>,
    ) -> io::Result<()> {
        self.write_pair(l, query, answer, "")
    }

    /// Like [`write_lookup`](Self::write_lookup) when the DNS bytes are not available: builds
    /// a query from `qname`/`qtype`/`dns_id` and, for lookups with an rcode, a response with
    /// that rcode and the A/AAAA answers. Other answers are omitted and counted in the comment
    /// (`synthesized=1 omitted_answers=N`).
    pub fn write_lookup_synthesized(&mut self, l: &Lookup) -> io::Result<()> {
        let dns = synthesize_dns(l)?;
        let note = format!(" synthesized=1 omitted_answers={}", dns.omitted_answers);
        self.write_pair(l, &dns.query, dns.answer.as_deref(), &note)
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Gives the underlying writer back (unflushed).
    pub fn into_inner(self) -> W {
        self.out
    }

    fn write_pair(
        &mut self,
        l: &Lookup,
        query: &[u8],
        answer: Option<&[u8]>,
        note: &str,
    ) -> io::Result<()> {
        let (client, server) = endpoints(l);
        let (answer_us, time_ok) = match humantime::parse_rfc3339_weak(&l.time) {
            Ok(t) => (micros_since_epoch(t), true),
            Err(_) => (0, false),
        };
        let latency_us = match l.latency_ms {
            Some(ms) if ms.is_finite() && ms > 0.0 => {
                (ms * 1000.0).round().min(u64::MAX as f64) as u64
            }
            _ => 0,
        };
        let query_us = answer_us.saturating_sub(latency_us);
        let base = describe(l, time_ok);

        let (q, q_cut) = truncate(query);
        let pkt = udp_packet(client, server, self.next_id(), q);
        let comment = format!("packet=query {base}{note}{}", cut_note(q_cut));
        self.write_epb(query_us, &pkt, &comment)?;

        if let Some(answer) = answer {
            let (a, a_cut) = truncate(answer);
            let pkt = udp_packet(server, client, self.next_id(), a);
            let comment = format!("packet=answer {base}{note}{}", cut_note(a_cut));
            self.write_epb(answer_us, &pkt, &comment)?;
        }
        Ok(())
    }

    fn next_id(&mut self) -> u16 {
        self.ip_id = self.ip_id.wrapping_add(1);
        self.ip_id
    }

    fn write_epb(&mut self, ts_us: u64, packet: &[u8], comment: &str) -> io::Result<()> {
        let mut body = Vec::with_capacity(packet.len() + comment.len() + 40);
        body.extend_from_slice(&0u32.to_le_bytes()); // interface id
        body.extend_from_slice(&((ts_us >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(ts_us as u32).to_le_bytes());
        let len = u32::try_from(packet.len()).unwrap_or(u32::MAX);
        body.extend_from_slice(&len.to_le_bytes()); // captured length
        body.extend_from_slice(&len.to_le_bytes()); // original length
        body.extend_from_slice(packet);
        pad4(&mut body);
        push_option(
            &mut body,
            OPT_COMMENT,
            clip_utf8(comment, u16::MAX as usize).as_bytes(),
        );
        push_option(&mut body, OPT_ENDOFOPT, b"");
        write_block(&mut self.out, EPB_TYPE, &body)
    }
}

/// Writes one block: type, total length, `body` (already padded to 4), total length again.
fn write_block(out: &mut impl Write, block_type: u32, body: &[u8]) -> io::Result<()> {
    let total = u32::try_from(body.len() + 12)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pcapng block too large"))?;
    let mut block = Vec::with_capacity(body.len() + 12);
    block.extend_from_slice(&block_type.to_le_bytes());
    block.extend_from_slice(&total.to_le_bytes());
    block.extend_from_slice(body);
    block.extend_from_slice(&total.to_le_bytes());
    out.write_all(&block)
}

/// Appends an option (code, length, value padded to 4). `value` must be < 64 KiB.
fn push_option(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    let value = &value[..value.len().min(u16::MAX as usize)];
    buf.extend_from_slice(&code.to_le_bytes());
    buf.extend_from_slice(&(value.len() as u16).to_le_bytes());
    buf.extend_from_slice(value);
    pad4(buf);
}

fn pad4(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn clip_utf8(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn truncate(payload: &[u8]) -> (&[u8], usize) {
    let keep = payload.len().min(MAX_UDP_PAYLOAD);
    (&payload[..keep], payload.len() - keep)
}

fn cut_note(cut: usize) -> String {
    if cut == 0 {
        String::new()
    } else {
        format!(" payload_truncated_bytes={cut}")
    }
}

fn micros_since_epoch(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// (client, server) socket addresses of the synthetic packets, in one address family.
fn endpoints(l: &Lookup) -> ((IpAddr, u16), (IpAddr, u16)) {
    let parse = |e: &Option<crate::lookup::Endpoint>| {
        e.as_ref().and_then(|e| {
            e.ip.parse::<IpAddr>()
                .ok()
                .map(|ip| (ip.to_canonical(), e.port))
        })
    };
    let client = parse(&l.client);
    let server = parse(&l.server).map(|(ip, _)| ip);
    let v6 = match (client, server) {
        (Some((c, _)), Some(s)) => c.is_ipv6() || s.is_ipv6(),
        (Some((c, _)), None) => c.is_ipv6(),
        (None, Some(s)) => s.is_ipv6(),
        (None, None) => false,
    };
    let family = |ip: Option<IpAddr>| match (ip, v6) {
        (Some(IpAddr::V4(a)), true) => IpAddr::V6(a.to_ipv6_mapped()),
        (Some(ip), _) => ip,
        (None, true) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        (None, false) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    let (cip, cport) = client.map_or((None, 0), |(ip, port)| (Some(ip), port));
    ((family(cip), cport), (family(server), DNS_PORT))
}

/// An IPv4 or IPv6 UDP datagram with valid checksums. Both addresses have one family.
fn udp_packet(src: (IpAddr, u16), dst: (IpAddr, u16), ip_id: u16, payload: &[u8]) -> Vec<u8> {
    let udp_len = (payload.len() + 8) as u16; // payload ≤ MAX_UDP_PAYLOAD
    let mut udp = Vec::with_capacity(payload.len() + 8);
    udp.extend_from_slice(&src.1.to_be_bytes());
    udp.extend_from_slice(&dst.1.to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);

    let mut pseudo = Vec::with_capacity(40);
    let mut pkt = Vec::with_capacity(udp.len() + 40);
    match (src.0, dst.0) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&[0, 17]);
            pseudo.extend_from_slice(&udp_len.to_be_bytes());
            pkt.extend_from_slice(&[0x45, 0]);
            pkt.extend_from_slice(&(udp_len + 20).to_be_bytes());
            pkt.extend_from_slice(&ip_id.to_be_bytes());
            pkt.extend_from_slice(&[0x40, 0, 64, 17, 0, 0]); // DF, TTL 64, UDP, checksum
            pkt.extend_from_slice(&s.octets());
            pkt.extend_from_slice(&d.octets());
            let sum = checksum(&[&pkt]);
            pkt[10..12].copy_from_slice(&sum.to_be_bytes());
        }
        (s, d) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V6(a) => a.octets(),
                IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            };
            pseudo.extend_from_slice(&v6(s));
            pseudo.extend_from_slice(&v6(d));
            pseudo.extend_from_slice(&u32::from(udp_len).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 17]);
            pkt.extend_from_slice(&[0x60, 0, 0, 0]);
            pkt.extend_from_slice(&udp_len.to_be_bytes());
            pkt.extend_from_slice(&[17, 64]); // next header UDP, hop limit 64
            pkt.extend_from_slice(&v6(s));
            pkt.extend_from_slice(&v6(d));
        }
    }
    let sum = match checksum(&[&pseudo, &udp]) {
        0 => 0xFFFF, // 0 means "no checksum" in UDP
        s => s,
    };
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
    pkt.extend_from_slice(&udp);
    pkt
}

/// Internet checksum (RFC 1071) over the concatenation of `parts` (each of even length except
/// possibly the last).
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    for part in parts {
        let mut chunks = part.chunks_exact(2);
        for c in &mut chunks {
            sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u64::from(*last) << 8;
        }
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// `key=value` pairs describing the lookup, for the packet comments.
fn describe(l: &Lookup, time_ok: bool) -> String {
    let server = l.server.as_ref().map(|e| match e.ip.contains(':') {
        true => format!("[{}]:{}", e.ip, e.port),
        false => format!("{}:{}", e.ip, e.port),
    });
    let num = |n: Option<u32>| n.map(|n| n.to_string());
    // A capture's record has no process; it says where it came from instead.
    let process = l.has_process();
    let fields = [
        ("pid", num(process.then_some(l.pid))),
        ("tid", num(process.then_some(l.tid))),
        ("uid", num(process.then_some(l.uid))),
        ("comm", process.then(|| l.comm.to_string())),
        ("origin", (!process).then(|| "capture".to_string())),
        ("transport", Some(l.transport.into())),
        ("server", server),
        ("authority", l.authority.as_deref().map(str::to_owned)),
        ("url", l.url.as_deref().map(str::to_owned)),
        ("method", l.method.as_deref().map(str::to_owned)),
        ("http_version", l.http_version.map(String::from)),
        ("stream", num(l.stream_id)),
        ("qname", l.qname.as_deref().map(str::to_owned)),
        ("qtype", l.qtype.as_deref().map(str::to_owned)),
        ("status", Some(l.status.as_str().into())),
        ("rcode", l.rcode.as_deref().map(str::to_owned)),
        ("http_status", num(l.http_status.map(u32::from))),
        ("latency_ms", l.latency_ms.map(|ms| format!("{ms:.3}"))),
        ("time", (!time_ok).then(|| "unparsed".into())),
    ];
    let pairs = fields
        .iter()
        .filter_map(|(k, v)| Some(format!("{k}={}", quote(v.as_ref()?))));
    pairs.collect::<Vec<_>>().join(" ")
}

/// A comment value: as is when it is a plain token, else double-quoted with `\\`, `\"`
/// escaped and control characters written as `\u{..}`.
fn quote(v: &str) -> String {
    let plain = !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\');
    if plain {
        return v.to_string();
    }
    let mut q = String::with_capacity(v.len() + 2);
    q.push('"');
    for c in v.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if c.is_control() => q.push_str(&c.escape_unicode().to_string()),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lookup::Endpoint;
    use crate::output::sample_lookup as lookup;

    fn ep(ip: &str, port: u16) -> Option<Endpoint> {
        Some(Endpoint {
            ip: ip.into(),
            port,
        })
    }

    fn v6(mut l: Lookup) -> Lookup {
        (l.server, l.client) = (ep("::1", 443), None);
        l
    }

    fn word(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    /// (block type, body) of every block written by `f`; asserts the framing.
    fn write(f: impl FnOnce(&mut PcapngWriter<Vec<u8>>)) -> Vec<(u32, Vec<u8>)> {
        let mut w = PcapngWriter::new(Vec::new()).unwrap();
        f(&mut w);
        let (buf, mut out) = (w.into_inner(), Vec::new());
        let mut rest = &buf[..];
        while !rest.is_empty() {
            let (ty, len) = (word(rest, 0), word(rest, 4) as usize);
            assert!(
                len.is_multiple_of(4) && len >= 12 && len <= rest.len(),
                "block length {len}"
            );
            assert_eq!(word(rest, len - 4) as usize, len, "trailing block length");
            out.push((ty, rest[8..len - 4].to_vec()));
            rest = &rest[len..];
        }
        out
    }

    /// (timestamp µs, packet, comment) of an Enhanced Packet Block body.
    fn epb(body: &[u8]) -> (u64, Vec<u8>, String) {
        let ts = (u64::from(word(body, 4)) << 32) | u64::from(word(body, 8));
        let cap = word(body, 12) as usize;
        assert_eq!(cap, word(body, 16) as usize);
        let opt = 20 + cap.div_ceil(4) * 4;
        assert_eq!(u16::from_le_bytes([body[opt], body[opt + 1]]), OPT_COMMENT);
        let n = u16::from_le_bytes([body[opt + 2], body[opt + 3]]) as usize;
        let comment = String::from_utf8(body[opt + 4..opt + 4 + n].to_vec()).unwrap();
        let end = opt + 4 + n.div_ceil(4) * 4;
        assert_eq!(
            &body[end..],
            &[0, 0, 0, 0],
            "opt_endofopt closes the options"
        );
        (ts, body[20..20 + cap].to_vec(), comment)
    }

    #[test]
    fn block_layout_and_checksums() {
        let l = lookup("www.doh.test", "A", Some("NOERROR"), &["192.0.2.10"]);
        let dns = synthesize_dns(&l).unwrap();
        let (q, a) = (dns.query, dns.answer);
        let b = write(|w| {
            w.write_lookup(&l, &q, a.as_deref()).unwrap();
            w.write_lookup_synthesized(&v6(l.clone())).unwrap();
            w.write_lookup_synthesized(&lookup("x.test", "A", None, &[]))
                .unwrap();
        });
        let types: Vec<u32> = b.iter().map(|(t, _)| *t).collect();
        assert_eq!(types[..2], [SHB_TYPE, IDB_TYPE]);
        assert_eq!(types[2..], [EPB_TYPE; 5], "unanswered lookup: query only");
        assert_eq!(&b[0].1[..4], &BYTE_ORDER_MAGIC.to_le_bytes());
        assert_eq!(&b[1].1[..2], &LINKTYPE_RAW.to_le_bytes());

        let ((ts_q, pkt, comment), (ts_a, _, _)) = (epb(&b[2].1), epb(&b[3].1));
        assert_eq!((ts_a, ts_a - ts_q), (1_714_564_800_500_000, 250_000));
        let head = "packet=query pid=1234 tid=1235 uid=1000 comm=curl transport=doh \
                    server=127.0.0.1:8443 authority=dns.test url=https://dns.test/dns-query";
        assert!(comment.starts_with(head), "{comment}");
        assert!(comment.contains(" status=ok rcode=NOERROR "), "{comment}");
        // IPv4: header checksum verifies, UDP 40000 -> 53 carrying the query.
        assert_eq!((pkt[0], checksum(&[&pkt[..20]])), (0x45, 0));
        assert_eq!(
            (&pkt[20..24], &pkt[28..]),
            (&[0x9c, 0x40, 0, 53][..], &q[..])
        );
        let mut pseudo = pkt[12..20].to_vec();
        pseudo.extend_from_slice(&[0, 17, pkt[24], pkt[25]]);
        assert_eq!(checksum(&[&pseudo, &pkt[20..]]), 0);

        // IPv6 with unknown client: answer from [::1]:53 back to [::]:0.
        let (_, pkt, comment) = epb(&b[5].1);
        assert_eq!(pkt[0] >> 4, 6);
        assert_eq!(&pkt[8..24], &Ipv6Addr::LOCALHOST.octets());
        assert_eq!(&pkt[24..40], &Ipv6Addr::UNSPECIFIED.octets());
        assert_eq!(&pkt[40..44], &[0, 53, 0, 0]);
        let mut pseudo = pkt[8..40].to_vec();
        pseudo.extend_from_slice(&[0, 0, pkt[44], pkt[45], 0, 0, 0, 17]);
        assert_eq!(checksum(&[&pseudo, &pkt[40..]]), 0);
        assert!(comment.contains("server=[::1]:443"), "{comment}");
        assert!(
            comment.ends_with(" synthesized=1 omitted_answers=0"),
            "{comment}"
        );
        assert!(epb(&b[6].1).2.contains(" status=unanswered "));
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        let mut l = lookup(
            "bad..\\",
            "weird",
            Some("RCODE4000"),
            &["x", "1.2.3.4", "::1"],
        );
        (l.time, l.comm, l.latency_ms) = ("yesterday".into(), "a \"b\"\\\n".into(), Some(f64::NAN));
        (l.client, l.server) = (ep("10.0.0.1", 1), ep("not an ip", 1));
        let big = vec![0u8; 70_000];
        let b = write(|w| {
            w.write_lookup_synthesized(&l).unwrap();
            (l.server, l.latency_ms) = (ep("2001:db8::1", 443), Some(1e300));
            w.write_lookup(&l, &big, Some(&[])).unwrap();
        });
        let (ts, _, c) = epb(&b[2].1);
        assert_eq!(ts, 0);
        assert!(
            c.contains(r#"comm="a \"b\"\\\u{a}""#) && c.contains("time=unparsed"),
            "{c}"
        );
        assert!(c.ends_with("omitted_answers=1"), "{c}");
        let (_, pkt, c) = epb(&b[4].1);
        assert_eq!(pkt.len(), 40 + 8 + MAX_UDP_PAYLOAD);
        let cut = format!("payload_truncated_bytes={}", 70_000 - MAX_UDP_PAYLOAD);
        assert!(c.ends_with(&cut), "{c}");
        // Mixed families: the IPv4 client is written IPv4-mapped.
        let mapped = Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped().octets();
        assert_eq!(&pkt[8..24], &mapped);
    }

    /// tshark reads IPv4/IPv6, NOERROR/NXDOMAIN lookups with good checksums and comments.
    /// Skipped when tshark is missing, unless `DOH_TRACE_E2E=require`.
    #[test]
    fn tshark_reads_the_capture() {
        use std::process::Command;
        if Command::new("tshark").arg("--version").output().is_err() {
            let require = std::env::var("DOH_TRACE_E2E").as_deref() == Ok("require");
            assert!(!require, "tshark not installed and DOH_TRACE_E2E=require");
            println!("SKIPPED: tshark not installed");
            return;
        }
        let a = lookup(
            "www.doh.test",
            "A",
            Some("NOERROR"),
            &["192.0.2.10", "192.0.2.11"],
        );
        let aaaa = v6(lookup(
            "www.doh.test",
            "AAAA",
            Some("NOERROR"),
            &["2001:db8::10"],
        ));
        let mut nx = lookup("nx.doh.test", "A", Some("NXDOMAIN"), &[]);
        nx.comm = "python3".into();
        let mut nx6 = v6(nx.clone());
        nx6.client = ep("::1", 50000);
        let lost = lookup("lost.doh.test", "HTTPS", None, &[]);
        let path = std::env::temp_dir().join(format!("doh-trace-{}.pcapng", std::process::id()));
        let mut w = PcapngWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
        let dns = synthesize_dns(&a).unwrap();
        w.write_lookup(&a, &dns.query, dns.answer.as_deref())
            .unwrap();
        for l in [&aaaa, &nx, &nx6, &lost] {
            w.write_lookup_synthesized(l).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        // `frame.comment` is the packet-comment field in tshark 4.0 (`pkt_comment` is the
        // protocol); checksum status 1 is "Good".
        let args = "-o ip.check_checksum:TRUE -o udp.check_checksum:TRUE -Y dns -T fields \
                    -E separator=| -e dns.qry.name -e dns.flags.rcode -e dns.a -e dns.aaaa \
                    -e ipv6.src -e ip.checksum.status -e udp.checksum.status -e frame.comment";
        let out = Command::new("tshark")
            .arg("-r")
            .arg(&path)
            .args(args.split(' '))
            .output();
        let _ = std::fs::remove_file(&path);
        let out = out.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Vec<Vec<&str>> = stdout.lines().map(|l| l.split('|').collect()).collect();
        assert!(rows.iter().all(|r| r.len() == 8), "{stdout}");
        let got: Vec<String> = rows.iter().map(|r| r[..7].join("|")).collect();
        let want = [
            "www.doh.test|||||1|1", // queries have no rcode field
            "www.doh.test|0|192.0.2.10,192.0.2.11|||1|1",
            "www.doh.test||||::||1",
            "www.doh.test|0||2001:db8::10|::1||1",
            "nx.doh.test|||||1|1",
            "nx.doh.test|3||||1|1",
            "nx.doh.test||||::1||1",
            "nx.doh.test|3|||::1||1",
            "lost.doh.test|||||1|1",
        ];
        assert_eq!(got, want, "{stdout}");
        let c: Vec<&str> = rows.iter().map(|r| r[7]).collect();
        assert!(
            c[0].starts_with("packet=query pid=1234 tid=1235 uid=1000 comm=curl"),
            "{}",
            c[0]
        );
        assert!(c[5].starts_with("packet=answer pid=1234 tid=1235 uid=1000 comm=python3"));
        assert!(c[5].contains(" status=ok rcode=NXDOMAIN "), "{}", c[5]);
        assert!(c[8].contains(" qtype=HTTPS status=unanswered "), "{}", c[8]);
    }
}
