//! Packet captures as a source: a pcap or pcapng file (gzip-compressed or not) read packet by
//! packet into the pipeline's [`Event`](crate::source::Event)s, one layer per file:
//!
//! - [`file`]: the container (pcap, pcapng, gzip), packets with their link type and time,
//!   and the TLS key logs pcapng files embed;
//! - [`link`]: Ethernet and VLAN tags, Linux cooked captures, raw IP, BSD loopback;
//! - [`ip`]: IPv4 and IPv6 (fragments reassembled, extension headers skipped), TCP and UDP
//!   headers;
//! - [`tcp`]: one direction of a TCP connection put back in order, holes reported;
//! - [`flows`]: connections and conversations with client and server told apart, as events.
//!
//! A capture knows no process: its events carry pid 0, the pipeline is told its records come
//! from a capture ([`crate::lookup::Origin::Capture`]) and writes the process fields as null.
//! Every bound (fragments, held segments, flows) drops what does not fit and counts it.

pub mod file;
pub mod flows;
pub mod ip;
pub mod link;
pub mod tcp;

use std::{fmt, io::Read};

pub use file::CaptureError;
use file::{CaptureFile, Item};
use flows::{FlowCounters, Flows, Sink};
use ip::{IpCounters, IpLayer};
use link::Network;

/// What the capture reader counts, besides the flows' counters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PacketCounters {
    /// Packets read, and their captured bytes.
    pub packets: u64,
    pub bytes: u64,
    /// Packets the capture cut short of their length on the wire (snap length).
    pub cut_packets: u64,
    /// Frames carrying no IP, frames shorter than their link header, link types not read.
    pub not_ip: u64,
    pub link_truncated: u64,
    pub unknown_link_type: u64,
    /// TLS key logs embedded in the file (pcapng Decryption Secrets Blocks).
    pub key_logs: u64,
}

/// A capture file being read into events.
pub struct CaptureSource {
    file: CaptureFile,
    ip: IpLayer,
    flows: Flows,
    packets: PacketCounters,
    last_ts_ns: u64,
}

/// Everything a capture's reading counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureCounters {
    pub packets: PacketCounters,
    pub ip: IpCounters,
    pub flows: FlowCounters,
    /// The file ended inside a block.
    pub file_truncated: bool,
    /// Packets of interfaces the file never described.
    pub unknown_interface: u64,
    /// Packets dated past 2262 (clamped to it).
    pub clamped_times: u64,
}

impl CaptureSource {
    /// Reads the file's header.
    pub fn open(r: impl Read + Send + 'static) -> Result<Self, CaptureError> {
        Self::with_flows(r, Flows::default())
    }

    /// [`CaptureSource::open`] with a flow table of its own (tests of its bound).
    pub fn with_flows(r: impl Read + Send + 'static, flows: Flows) -> Result<Self, CaptureError> {
        Ok(CaptureSource {
            file: CaptureFile::open(r)?,
            ip: IpLayer::default(),
            flows,
            packets: PacketCounters::default(),
            last_ts_ns: 0,
        })
    }

    /// Bytes read from the file so far.
    pub fn bytes_read(&self) -> u64 {
        self.file.bytes_read()
    }

    /// Packets read so far.
    pub fn packets(&self) -> u64 {
        self.packets.packets
    }

    /// The time of the last packet read (Unix nanoseconds).
    pub fn last_ts_ns(&self) -> u64 {
        self.last_ts_ns
    }

    /// The pipeline's decision about a flow's socket bytes (`CAPTURE_*` bits): skipped flows
    /// are only counted from now on.
    pub fn set_policy(&mut self, flow: u64, policy: u32) {
        self.flows.set_policy(flow, policy);
    }

    /// Reads the next block: its events go to `sink`, an embedded key log to `key_log`.
    /// False at the end of the file.
    pub fn next(
        &mut self,
        sink: &mut dyn Sink,
        key_log: &mut dyn FnMut(&[u8]),
    ) -> Result<bool, CaptureError> {
        let (ip, flows, counters, last_ts) = (
            &mut self.ip,
            &mut self.flows,
            &mut self.packets,
            &mut self.last_ts_ns,
        );
        self.file.next(&mut |item| match item {
            Item::Packet(p) => {
                counters.packets += 1;
                counters.bytes += p.data.len() as u64;
                if (p.data.len() as u64) < u64::from(p.orig_len) {
                    counters.cut_packets += 1;
                }
                *last_ts = (*last_ts).max(p.ts_ns);
                match link::network(p.linktype, p.data) {
                    Network::Ip(packet) => {
                        if let Some(t) = ip.transport(packet, p.ts_ns) {
                            flows.packet(&t, p.ts_ns, sink);
                        }
                    }
                    Network::NotIp => counters.not_ip += 1,
                    Network::Truncated => counters.link_truncated += 1,
                    Network::UnknownLinkType => counters.unknown_link_type += 1,
                }
            }
            Item::KeyLog(text) => {
                counters.key_logs += 1;
                key_log(text);
            }
            Item::Other => {}
        })
    }

    /// The file is read: every flow still open ends (at the last packet's time).
    pub fn finish(&mut self, sink: &mut dyn Sink) {
        self.flows.finish(self.last_ts_ns, sink);
    }

    /// What was counted.
    pub fn counters(&self) -> CaptureCounters {
        CaptureCounters {
            packets: self.packets.clone(),
            ip: self.ip.counters.clone(),
            flows: self.flows.counters.clone(),
            file_truncated: self.file.truncated,
            unknown_interface: self.file.unknown_interface,
            clamped_times: self.file.clamped_times,
        }
    }

    /// Bytes held in fragments and out-of-order segments.
    pub fn held_bytes(&self) -> usize {
        self.ip.held() + self.flows.held_bytes()
    }
}

impl fmt::Display for CaptureCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (p, ip, fl) = (&self.packets, &self.ip, &self.flows);
        write!(
            f,
            "{} packets ({} bytes), {} TCP and {} UDP flows ({} joined mid-stream)",
            p.packets, p.bytes, fl.tcp_flows, fl.udp_flows, fl.joined_mid_stream
        )?;
        let mut lost = Vec::new();
        let mut note = |n: u64, what: &str| {
            if n > 0 {
                lost.push(format!("{n} {what}"));
            }
        };
        note(p.cut_packets, "packets cut by the snap length");
        note(fl.streams.holes, "TCP holes");
        note(fl.streams.missing_bytes, "TCP bytes missing");
        note(fl.streams.out_of_order, "segments out of order");
        note(fl.streams.duplicate_bytes, "bytes retransmitted");
        note(ip.fragments, "IP fragments");
        note(ip.reassembled, "datagrams reassembled");
        note(ip.fragments_dropped, "fragments dropped");
        note(ip.malformed, "malformed packets");
        note(p.not_ip + ip.other_protocol, "packets not TCP/UDP");
        note(p.link_truncated, "frames shorter than their link header");
        note(p.unknown_link_type, "frames of unknown link types");
        note(self.unknown_interface, "packets of undescribed interfaces");
        note(self.clamped_times, "packet times past 2262 (clamped)");
        note(fl.idle_closed, "flows closed idle");
        note(fl.evicted, "flows evicted (table full)");
        note(p.key_logs, "embedded key logs");
        if self.file_truncated {
            lost.push("the file ends mid-block".into());
        }
        if !lost.is_empty() {
            write!(f, "; {}", lost.join(", "))?;
        }
        Ok(())
    }
}
