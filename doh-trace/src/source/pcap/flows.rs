//! Flows: the TCP connections and UDP conversations of a capture, each with its client and
//! server told apart, made into the pipeline's [`Event`]s — a connection opening
//! ([`Event::Conn`], the peer being the server), its bytes per direction ([`Event::Data`] on
//! the socket layer, egress being client → server, a hole shown as a chunk that does not
//! start its call), datagrams ([`Event::Datagram`]), byte totals and the close. Flows end on
//! FIN from both sides or RST, after an idle time, or when the table is full (counted).

use std::net::SocketAddr;

use foldhash::HashMap;

use doh_trace_common::{CAPTURE_SOCK_FULL, CAPTURE_SOCK_SKIP, COMM_LEN};

use crate::process::SocketEnds;
use crate::source::{
    ConnId, ConnInfo, DataChunk, Datagram, Direction, Event, Layer, Meta, SocketType,
};

use super::{
    ip::{flags, Kind, Transport},
    tcp::{Delivery, Stream, StreamCounters},
};

/// A flow without packets for this long (capture time) is closed.
pub const IDLE_TTL_NS: u64 = 300_000_000_000;
/// Flows tracked at once by default.
pub const MAX_FLOWS: usize = 65_536;

/// Ports servers listen on: the side using one is the server of a flow whose start was not
/// captured.
const SERVER_PORTS: [u16; 12] = [
    53, 80, 443, 853, 5353, 8053, 8080, 8443, 5053, 3000, 784, 8853,
];

/// What the flow table counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlowCounters {
    pub tcp_flows: u64,
    pub udp_flows: u64,
    /// TCP flows whose SYN was not captured (joined mid-stream).
    pub joined_mid_stream: u64,
    /// Flows closed for being idle, and for the table being full.
    pub idle_closed: u64,
    pub evicted: u64,
    /// Every direction's reassembly counters, summed as flows end.
    pub streams: StreamCounters,
    /// Payload bytes delivered to the pipeline, and not (flows it had no use for).
    pub delivered_bytes: u64,
    pub skipped_bytes: u64,
}

/// (client, server) ordered as (lower, higher) so both directions find the flow, and whether
/// it is TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FlowKey(SocketAddr, SocketAddr, bool);

/// Hashed as three words rather than field by field through `SocketAddr`'s derived `Hash`
/// (which was ~2.5 % of reading a DoH capture); equal keys give equal words.
impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let ip = |a: &SocketAddr| match a {
            SocketAddr::V4(v4) => u128::from(v4.ip().to_bits()),
            SocketAddr::V6(v6) => v6.ip().to_bits(),
        };
        h.write_u128(ip(&self.0));
        h.write_u128(ip(&self.1));
        h.write_u64(
            u64::from(self.0.port()) << 17 | u64::from(self.1.port()) << 1 | u64::from(self.2),
        );
    }
}

/// One TCP connection or UDP conversation.
struct Flow {
    id: u64,
    client: SocketAddr,
    server: SocketAddr,
    tcp: bool,
    to_server: Stream,
    to_client: Stream,
    fin: (bool, bool),
    last_ns: u64,
    /// The pipeline has no use for its bytes: only counted.
    skip: bool,
    /// Bytes not delivered (sent, received).
    withheld: (u64, u64),
}

/// The flows of a capture.
pub struct Flows {
    flows: HashMap<FlowKey, Flow>,
    /// Flow id → its key, for the pipeline's decisions.
    ids: HashMap<u64, FlowKey>,
    next_id: u64,
    max_flows: usize,
    last_sweep_ns: u64,
    pub counters: FlowCounters,
}

/// Where a flow's events go, and its ends (told before its first event).
pub trait Sink {
    fn flow_ends(&mut self, flow: u64, ends: SocketEnds);
    fn event(&mut self, ev: Event<'_>);
}

fn meta(ts_ns: u64) -> Meta {
    Meta {
        pid: 0,
        tid: 0,
        uid: 0,
        ts_ns,
    }
}

const NO_COMM: [u8; COMM_LEN] = [0; COMM_LEN];

fn key_of(a: SocketAddr, b: SocketAddr, tcp: bool) -> FlowKey {
    if a <= b {
        FlowKey(a, b, tcp)
    } else {
        FlowKey(b, a, tcp)
    }
}

/// Whether `src` is the client of a flow whose start was not seen: the side not on a server
/// port, else the one on the higher (ephemeral) port.
fn src_is_client(src: SocketAddr, dst: SocketAddr) -> bool {
    let server = |a: SocketAddr| SERVER_PORTS.contains(&a.port());
    match (server(src), server(dst)) {
        (false, true) => true,
        (true, false) => false,
        _ => src.port() >= dst.port(),
    }
}

impl Default for Flows {
    fn default() -> Self {
        Self::with_capacity(MAX_FLOWS)
    }
}

impl Flows {
    /// A table of at most `max_flows` flows at once.
    pub fn with_capacity(max_flows: usize) -> Self {
        Flows {
            flows: HashMap::default(),
            ids: HashMap::default(),
            next_id: 1,
            max_flows: max_flows.max(1),
            last_sweep_ns: 0,
            counters: FlowCounters::default(),
        }
    }

    /// Flows open now.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether no flow is open.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Bytes held in reassembly buffers.
    pub fn held_bytes(&self) -> usize {
        self.flows
            .values()
            .map(|f| f.to_server.held_bytes() + f.to_client.held_bytes())
            .sum()
    }

    /// The pipeline's decision about a flow's socket bytes (`CAPTURE_*` bits).
    pub fn set_policy(&mut self, flow: u64, policy: u32) {
        let Some(key) = self.ids.get(&flow) else {
            return;
        };
        if let Some(f) = self.flows.get_mut(key) {
            if policy & CAPTURE_SOCK_SKIP != 0 {
                f.skip = true;
            } else if policy & CAPTURE_SOCK_FULL != 0 {
                f.skip = false;
            }
        }
    }

    /// One transport segment or datagram at `ts_ns`.
    pub fn packet(&mut self, t: &Transport<'_>, ts_ns: u64, sink: &mut dyn Sink) {
        if ts_ns > self.last_sweep_ns.saturating_add(1_000_000_000) {
            self.sweep(ts_ns, sink);
        }
        let tcp = matches!(t.kind, Kind::Tcp { .. });
        let key = key_of(t.src, t.dst, tcp);
        if !self.flows.contains_key(&key) {
            let Some(flow) = self.open(t, ts_ns, sink) else {
                return;
            };
            self.ids.insert(flow.id, key);
            self.flows.insert(key, flow);
        }
        let Some(flow) = self.flows.get_mut(&key) else {
            return;
        };
        flow.last_ns = ts_ns;
        let dir = if t.src == flow.client {
            Direction::Egress
        } else {
            Direction::Ingress
        };
        let m = meta(ts_ns);
        match t.kind {
            Kind::Udp => {
                if flow.skip {
                    withhold(&mut flow.withheld, dir, t.wire_len, &mut self.counters);
                    return;
                }
                self.counters.delivered_bytes += t.payload.len() as u64;
                sink.event(Event::Datagram(Datagram {
                    meta: m,
                    id: ConnId::Flow(flow.id),
                    direction: dir,
                    peer: flow.server,
                    total_len: t.wire_len.min(u32::MAX as usize) as u32,
                    comm: NO_COMM,
                    bytes: t.payload,
                }));
            }
            Kind::Tcp { seq, ack, flags: f } => {
                let (stream, other) = match dir {
                    Direction::Egress => (&mut flow.to_server, &mut flow.to_client),
                    Direction::Ingress => (&mut flow.to_client, &mut flow.to_server),
                };
                if f & flags::SYN != 0 {
                    stream.syn(seq);
                }
                let data_seq = if f & flags::SYN != 0 {
                    seq.wrapping_add(1)
                } else {
                    seq
                };
                if flow.skip {
                    withhold(&mut flow.withheld, dir, t.wire_len, &mut self.counters);
                } else if t.wire_len > 0 {
                    let (id, counters) = (flow.id, &mut self.counters);
                    stream.segment(data_seq, t.payload, t.wire_len, &mut |d| {
                        counters.delivered_bytes += d.bytes.len() as u64;
                        sink.event(data_event(m, id, dir, d));
                    });
                }
                if !flow.skip {
                    if f & flags::FIN != 0 {
                        stream.fin(data_seq.wrapping_add(t.wire_len as u32));
                    }
                    if f & flags::ACK != 0 && other.started() {
                        other.acked(ack);
                    }
                }
                let done = f & flags::RST != 0 || {
                    if f & flags::FIN != 0 {
                        match dir {
                            Direction::Egress => flow.fin.0 = true,
                            Direction::Ingress => flow.fin.1 = true,
                        }
                    }
                    flow.fin.0 && flow.fin.1
                };
                if done {
                    if let Some(flow) = self.flows.remove(&key) {
                        self.close(flow, ts_ns, sink);
                    }
                }
            }
        }
    }

    /// A new flow: which side is the client, its ends told, its Conn event.
    fn open(&mut self, t: &Transport<'_>, ts_ns: u64, sink: &mut dyn Sink) -> Option<Flow> {
        let (client_is_src, tcp) = match t.kind {
            Kind::Tcp { flags: f, .. } => {
                if f & flags::RST != 0 || (f & flags::SYN == 0 && t.wire_len == 0) {
                    // A reset, or a bare ACK or FIN (the last of a flow just closed): no
                    // connection to report.
                    return None;
                }
                let c = match (f & flags::SYN != 0, f & flags::ACK != 0) {
                    (true, false) => true,
                    (true, true) => false,
                    _ => {
                        self.counters.joined_mid_stream += 1;
                        src_is_client(t.src, t.dst)
                    }
                };
                (c, true)
            }
            // A server port on one side decides; else a DNS message says by its QR bit
            // whether its sender asks or answers; else the higher port is the client's.
            Kind::Udp => {
                let server = |a: SocketAddr| SERVER_PORTS.contains(&a.port());
                let c = match (server(t.src), server(t.dst), t.payload.get(2)) {
                    (false, true, _) => true,
                    (true, false, _) => false,
                    (_, _, Some(b)) if t.payload.len() >= 12 => b & 0x80 == 0,
                    _ => t.src.port() >= t.dst.port(),
                };
                (c, false)
            }
        };
        if self.flows.len() >= self.max_flows {
            self.evict_oldest(ts_ns, sink);
        }
        let (client, server) = if client_is_src {
            (t.src, t.dst)
        } else {
            (t.dst, t.src)
        };
        let id = self.next_id;
        self.next_id += 1;
        if tcp {
            self.counters.tcp_flows += 1;
        } else {
            self.counters.udp_flows += 1;
        }
        sink.flow_ends(
            id,
            SocketEnds {
                local: client,
                remote: server,
            },
        );
        sink.event(Event::Conn(ConnInfo {
            meta: meta(ts_ns),
            id: ConnId::Flow(id),
            accepted: false,
            sock_type: if tcp {
                SocketType::Stream
            } else {
                SocketType::Datagram
            },
            peer: server,
            comm: NO_COMM,
        }));
        Some(Flow {
            id,
            client,
            server,
            tcp,
            to_server: Stream::default(),
            to_client: Stream::default(),
            fin: (false, false),
            last_ns: ts_ns,
            skip: false,
            withheld: (0, 0),
        })
    }

    /// A flow ends: what its streams still hold is delivered, its totals and close told.
    fn close(&mut self, mut flow: Flow, ts_ns: u64, sink: &mut dyn Sink) {
        self.ids.remove(&flow.id);
        let m = meta(ts_ns);
        if flow.tcp && !flow.skip {
            let counters = &mut self.counters;
            for (dir, stream) in [
                (Direction::Egress, &mut flow.to_server),
                (Direction::Ingress, &mut flow.to_client),
            ] {
                stream.finish(&mut |d| {
                    counters.delivered_bytes += d.bytes.len() as u64;
                    sink.event(data_event(m, flow.id, dir, d));
                });
            }
        }
        for s in [&flow.to_server, &flow.to_client] {
            let (c, t) = (&s.counters, &mut self.counters.streams);
            t.holes += c.holes;
            t.missing_bytes += c.missing_bytes;
            t.duplicate_bytes += c.duplicate_bytes;
            t.out_of_order += c.out_of_order;
        }
        sink.event(Event::ConnBytes {
            meta: m,
            id: ConnId::Flow(flow.id),
            sent: flow.withheld.0,
            received: flow.withheld.1,
        });
        sink.event(Event::Close {
            meta: m,
            id: ConnId::Flow(flow.id),
        });
    }

    /// Closes flows idle for longer than [`IDLE_TTL_NS`].
    fn sweep(&mut self, now_ns: u64, sink: &mut dyn Sink) {
        self.last_sweep_ns = now_ns;
        let idle: Vec<FlowKey> = self
            .flows
            .iter()
            .filter(|(_, f)| now_ns.saturating_sub(f.last_ns) > IDLE_TTL_NS)
            .map(|(k, _)| *k)
            .collect();
        for k in idle {
            if let Some(f) = self.flows.remove(&k) {
                self.counters.idle_closed += 1;
                self.close(f, now_ns, sink);
            }
        }
    }

    /// The table is full: the least recently active eighth of it is closed (so that a full
    /// table costs one scan per many new flows).
    fn evict_oldest(&mut self, now_ns: u64, sink: &mut dyn Sink) {
        let mut by_age: Vec<(u64, FlowKey)> =
            self.flows.iter().map(|(k, f)| (f.last_ns, *k)).collect();
        by_age.sort_unstable_by_key(|(t, _)| *t);
        let n = (self.flows.len() / 8).max(1);
        for (_, k) in by_age.into_iter().take(n) {
            if let Some(f) = self.flows.remove(&k) {
                self.counters.evicted += 1;
                self.close(f, now_ns, sink);
            }
        }
    }

    /// The capture ended: every flow still open closes.
    pub fn finish(&mut self, ts_ns: u64, sink: &mut dyn Sink) {
        let mut all: Vec<Flow> = self.flows.drain().map(|(_, f)| f).collect();
        all.sort_by_key(|f| f.id);
        for f in all {
            self.close(f, ts_ns, sink);
        }
    }
}

/// Counts bytes of a flow the pipeline has no use for.
fn withhold(withheld: &mut (u64, u64), dir: Direction, len: usize, counters: &mut FlowCounters) {
    counters.skipped_bytes += len as u64;
    match dir {
        Direction::Egress => withheld.0 += len as u64,
        Direction::Ingress => withheld.1 += len as u64,
    }
}

/// Stream bytes as the pipeline takes them: each delivery one call; after a hole, a call
/// whose first byte is missing (offset 1), which the pipeline's gap check sees.
fn data_event<'a>(m: Meta, id: u64, dir: Direction, d: Delivery<'a>) -> Event<'a> {
    let len = d.bytes.len().min(u32::MAX as usize - 1) as u32;
    let offset = u32::from(d.after_hole);
    Event::Data(DataChunk {
        meta: m,
        id: ConnId::Flow(id),
        layer: Layer::Socket,
        library: None,
        direction: dir,
        total_len: len + offset,
        offset,
        comm: NO_COMM,
        bytes: &d.bytes[..len as usize],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_of_a_flow_joined_mid_stream() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(src_is_client(a("10.0.0.1:40000"), a("10.0.0.2:443")));
        assert!(!src_is_client(a("10.0.0.2:853"), a("10.0.0.1:40000")));
        assert!(src_is_client(a("10.0.0.1:40000"), a("10.0.0.2:9999")));
        assert!(!src_is_client(a("10.0.0.1:9999"), a("10.0.0.2:40000")));
    }
}
