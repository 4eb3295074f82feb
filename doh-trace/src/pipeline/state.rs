//! What the pipeline keeps per connection layer: its decoder, and the facts its lookups and
//! connection record are made of.

use std::{net::SocketAddr, sync::Arc};

use doh_trace_common::COMM_LEN;

use crate::{
    conn::{policy::CaptureState, sequence::CallSequence, sniff::Sniffer},
    counters::ClientClass,
    lookup::Endpoint,
    proto::{tls::ClientHelloInfo, ClientDecoder, Exchanges, Seen},
    source::{Direction, SocketType},
};

/// What a connection's bytes turned out to be.
pub(super) enum Proto {
    /// Waiting for enough bytes to decide.
    Sniffing(Sniffer),
    /// This process is the client of a protocol carrying DNS (DoH over HTTP/2 or HTTP/1.1,
    /// classic DNS, DoT): decoded.
    Client(Box<dyn ClientDecoder>),
    /// TLS on the socket: reading the client's ClientHello (server name, ALPN), kept here
    /// until complete (bounded by what the kernel copies while unclassified).
    TlsHello(Vec<u8>),
    /// Not decoded (server side, not DNS, or failed); bytes are dropped on arrival.
    Ignored,
}

/// The connection's two ends, and their text as lookups report it (formatted again only when
/// they change).
#[derive(Default)]
pub(super) struct Ends {
    pub peer: Option<SocketAddr>,
    pub local: Option<SocketAddr>,
    memo: Option<Box<EndsMemo>>,
}

/// `peer` and `local` as last reported, and their text.
struct EndsMemo {
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
    server: Option<Endpoint>,
    client: Option<Endpoint>,
}

impl Ends {
    /// The resolver end and the local end as lookups report them.
    pub fn endpoints(&mut self) -> (Option<Endpoint>, Option<Endpoint>) {
        match &self.memo {
            Some(m) if m.peer == self.peer && m.local == self.local => {
                (m.server.clone(), m.client.clone())
            }
            _ => {
                let server = self.peer.map(Endpoint::from);
                let client = self.local.map(Endpoint::from);
                self.memo = Some(Box::new(EndsMemo {
                    peer: self.peer,
                    local: self.local,
                    server: server.clone(),
                    client: client.clone(),
                }));
                (server, client)
            }
        }
    }
}

/// When the connection opened and carried bytes.
#[derive(Default)]
pub(super) struct Times {
    /// connect()/accept() time, when seen.
    pub opened_ns: Option<u64>,
    /// First and last data seen.
    pub first_data_ns: Option<u64>,
    pub last_data_ns: u64,
}

/// TLS facts of the connection, and what makes it an opaque encrypted-DNS candidate.
#[derive(Default)]
pub(super) struct TlsFacts {
    /// Socket layer: TLS plaintext of this socket was seen from a hooked library.
    pub plaintext_seen: bool,
    /// Socket layer: its TLS was decrypted with a key log (even if it carried no data): not
    /// an opaque connection.
    pub decrypted: bool,
    /// TLS layer: the library whose plaintext this is.
    pub library: Option<&'static str>,
    /// The TLS ClientHello this process sent (socket layer; inherited by the TLS layer).
    pub hello: Option<ClientHelloInfo>,
    /// Socket layer: reported as this opaque transport when it ends without plaintext.
    pub opaque: Option<&'static str>,
    /// Socket layer: a QUIC candidate whose first datagram (the client Initial, read for its
    /// server name and ALPN) has not been seen yet.
    pub quic_initial_pending: bool,
    /// Bytes sent and received, from the kernel's count (opaque candidates).
    pub counted: Option<(u64, u64)>,
    /// Socket layer: bytes sent and received that were copied (before any capture decision).
    pub copied: (u64, u64),
}

/// What the connection's lookups and record report, and what they were matched on.
#[derive(Default)]
pub(super) struct Reported {
    /// Lookups reported from this connection.
    pub lookups: u32,
    /// `"h2"` or `"http/1.1"` once decoded.
    pub http_version: Option<&'static str>,
    /// The lookup transport once decoded (`doh`, `dot`, `dns-udp`, `dns-tcp`).
    pub transport: Option<&'static str>,
    /// Finished streams of a mid-stream connection that were not DNS.
    pub non_dns_streams: u32,
    /// The last lookup's resolver match, reused while what it was matched on stays the same.
    pub resolver_memo: Option<Box<ResolverMemo>>,
    /// The last DoH request's URL, shared by the lookups that used the same one.
    pub last_url: Option<Arc<str>>,
}

/// What the pipeline's resolver naming was asked and answered for a connection's last lookup.
pub(super) struct ResolverMemo {
    /// The ClientHello's server name it was matched on, shared by the connection's lookups.
    pub server_name: Option<Arc<str>>,
    pub authority: Option<Arc<str>>,
    pub server: Option<Endpoint>,
    pub resolver: Option<Arc<str>>,
}

/// One connection layer.
pub(super) struct Conn {
    pub ends: Ends,
    pub egress: CallSequence,
    pub ingress: CallSequence,
    pub proto: Proto,
    /// What the kernel was told to copy.
    pub capture: CaptureState,
    /// What the connection was counted as when classified as a client.
    pub class: Option<ClientClass>,
    /// Real uid of the process, and the name of the thread last seen on the connection.
    pub uid: u32,
    pub thread_comm: [u8; COMM_LEN],
    pub times: Times,
    /// TCP or UDP, when the kernel saw the socket created.
    pub sock_type: SocketType,
    pub tls: TlsFacts,
    pub reported: Reported,
}

impl Conn {
    /// A connection not yet classified; a datagram socket's messages are its I/O calls.
    pub fn new(peer: Option<SocketAddr>, sock_type: SocketType) -> Self {
        let sniffer = match sock_type {
            SocketType::Datagram => Sniffer::for_datagrams(),
            SocketType::Stream | SocketType::Unknown => Sniffer::default(),
        };
        Conn {
            ends: Ends {
                peer,
                ..Ends::default()
            },
            egress: CallSequence::default(),
            ingress: CallSequence::default(),
            proto: Proto::Sniffing(sniffer),
            capture: CaptureState::default(),
            class: None,
            uid: 0,
            thread_comm: [0; COMM_LEN],
            times: Times::default(),
            sock_type,
            tls: TlsFacts::default(),
            reported: Reported::default(),
        }
    }

    /// Heap bytes of the connection's decoding state, in constant time: what the memory
    /// budget counts (the state's own size is bounded by the table's bound on connections).
    pub fn held_bytes(&self) -> usize {
        match &self.proto {
            Proto::Sniffing(sniff) => sniff.held_bytes(),
            Proto::Client(decoder) => decoder.held_bytes(),
            Proto::TlsHello(buf) => buf.capacity(),
            Proto::Ignored => 0,
        }
    }

    /// The call sequence of one direction.
    pub fn sequence(&mut self, dir: Direction) -> &mut CallSequence {
        match dir {
            Direction::Egress => &mut self.egress,
            Direction::Ingress => &mut self.ingress,
        }
    }

    /// Whether the connection was counted as an HTTP/2 client joined mid-stream.
    pub fn joined_mid_stream(&self) -> bool {
        self.class == Some(ClientClass::H2 { mid_stream: true })
    }

    /// Stops decoding: open exchanges end (into `out`), later bytes are dropped on arrival.
    /// Returns false if decoding had already stopped.
    pub fn stop_decoding(&mut self, seen: Seen, out: &mut Exchanges) -> bool {
        if let Proto::Client(decoder) = &mut self.proto {
            decoder.close(seen, out);
        }
        !matches!(
            std::mem::replace(&mut self.proto, Proto::Ignored),
            Proto::Ignored
        )
    }

    /// Stops decoding without reporting what was open (the process turned out to be the
    /// server, or nothing open can be a lookup).
    pub fn drop_decoder(&mut self, seen: Seen) {
        self.stop_decoding(seen, &mut Exchanges::default());
    }
}
