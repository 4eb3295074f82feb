//! Where the pipeline's input comes from: connection facts and bytes, whatever produced them.
//!
//! A source tells the pipeline who did something (process, thread, uid, when), on which
//! connection, in which direction, with which bytes, and where bytes were lost; connections
//! opening and closing, processes exiting. That is [`Event`], the seam every source feeds:
//!
//! - [`kernel`]: the eBPF programs' ring-buffer records (the live tracer) — one encoding of
//!   these events, decoded record by record;
//! - [`recording`]: the same records written to a file by `doh-trace record`, read back;
//! - [`pcap`]: packets of a pcap or pcapng file (`doh-trace read`): TCP reassembled, UDP,
//!   no process.
//!
//! A new source produces [`Event`]s and hands them to
//! [`crate::pipeline::Pipeline::handle_event`]; nothing downstream needs to know where they
//! came from. What the pipeline decides about a connection comes back as
//! [`crate::conn::policy::CaptureDecision`]s, which a source may use to stop delivering the
//! bytes of connections that carry no DNS.

pub mod kernel;
pub mod keylog_file;
pub mod pcap;
pub mod recording;

use std::net::SocketAddr;

use doh_trace_common::COMM_LEN;

/// Direction of bytes relative to the traced process (for a capture: relative to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Written by the process.
    Egress,
    /// Read by the process.
    Ingress,
}

/// Who produced an event, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Process id (thread-group id).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Real uid.
    pub uid: u32,
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
}

/// Which bytes of a connection: what the TLS library handed over, or the socket's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// Plaintext from a hooked TLS library.
    Tls,
    /// The socket's own bytes (cleartext protocols, or TLS records).
    Socket,
}

/// What identifies a connection within its process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnId {
    /// A socket fd.
    Fd(i32),
    /// A TLS library object whose fd was never seen.
    TlsObject(u64),
    /// A TCP or UDP flow of a packet capture (no process, no fd): numbered by the reader.
    Flow(u64),
}

/// Identity of one layer of one connection: what the pipeline keeps state for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub pid: u32,
    pub id: ConnId,
    pub layer: Layer,
}

/// The type of an internet socket, when the source saw it created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketType {
    /// TCP.
    Stream,
    /// UDP.
    Datagram,
    /// Created before tracing started (or recorded by an older version).
    Unknown,
}

/// A piece of one direction of a connection's bytes: one I/O call, or a chunk of one.
/// `offset` and `total_len` place it in its call, so that lost chunks show as gaps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataChunk<'a> {
    pub meta: Meta,
    pub id: ConnId,
    pub layer: Layer,
    /// The TLS library whose plaintext this is (`openssl`, `gnutls`, `nss`, `go`); None for
    /// socket bytes.
    pub library: Option<&'static str>,
    pub direction: Direction,
    /// Bytes the call moved in all.
    pub total_len: u32,
    /// Where these bytes begin within the call.
    pub offset: u32,
    /// The calling thread's name.
    pub comm: [u8; COMM_LEN],
    pub bytes: &'a [u8],
}

/// A connected or accepted internet socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    pub meta: Meta,
    pub id: ConnId,
    pub accepted: bool,
    pub sock_type: SocketType,
    pub peer: SocketAddr,
    pub comm: [u8; COMM_LEN],
}

/// A DNS datagram on a socket without a tracked connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram<'a> {
    pub meta: Meta,
    pub id: ConnId,
    pub direction: Direction,
    /// Where it went to or came from.
    pub peer: SocketAddr,
    /// Size of the whole datagram; `bytes` may be shorter (cut at 4 KiB or at its first iovec).
    pub total_len: u32,
    pub comm: [u8; COMM_LEN],
    pub bytes: &'a [u8],
}

/// What a source reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    Data(DataChunk<'a>),
    Conn(ConnInfo),
    Close {
        meta: Meta,
        id: ConnId,
    },
    Datagram(Datagram<'a>),
    /// Byte totals of a counted connection, just before its close.
    ConnBytes {
        meta: Meta,
        id: ConnId,
        sent: u64,
        received: u64,
    },
    Exit {
        meta: Meta,
    },
    Exec {
        meta: Meta,
    },
    /// TLS plaintext seen as the TLS object `tls_obj` (its calls made no socket syscall) is
    /// connection `id`'s: the object's ClientHello went out on it.
    TlsBind {
        meta: Meta,
        id: ConnId,
        tls_obj: u64,
    },
}

impl Event<'_> {
    /// Who produced the event, and when.
    pub fn meta(&self) -> &Meta {
        match self {
            Event::Data(d) => &d.meta,
            Event::Conn(c) => &c.meta,
            Event::Datagram(d) => &d.meta,
            Event::Close { meta, .. }
            | Event::ConnBytes { meta, .. }
            | Event::Exit { meta }
            | Event::Exec { meta }
            | Event::TlsBind { meta, .. } => meta,
        }
    }

    /// The connection layer whose bytes this is, for events that carry connection bytes.
    pub fn data_key(&self) -> Option<ConnKey> {
        let Event::Data(d) = self else { return None };
        Some(ConnKey {
            pid: d.meta.pid,
            id: d.id,
            layer: d.layer,
        })
    }
}

/// A kernel task name as text (up to the first NUL, lossily decoded).
pub fn comm_str(comm: &[u8; COMM_LEN]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
    String::from_utf8_lossy(&comm[..end]).into_owned()
}
