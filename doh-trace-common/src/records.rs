//! The records of the ring buffer: a common header, then one record per [`EventKind`]
//! (plaintext chunks, connections, closes, datagrams, byte totals, exits and execs), with the
//! field values they use.

use crate::{CHUNK_SIZE, COMM_LEN};

/// Which record follows the [`EventHeader`]. Decoded with `TryFrom<u32>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum EventKind {
    /// A chunk of plaintext passed through a hooked TLS call: [`DataEvent`].
    Data = 1,
    /// A socket connected or accepted with an internet address: [`ConnEvent`].
    Conn = 2,
    /// A tracked socket fd was closed: [`CloseEvent`].
    Close = 3,
    /// A whole process (thread group) exited: [`ExitEvent`].
    Exit = 4,
    /// A traced process called execve: its name, executable and command line changed
    /// ([`ExitEvent`] layout: the header alone).
    Exec = 5,
    /// A DNS datagram on a socket without a tracked connection (`sendto`/`sendmsg` to, or
    /// `recvfrom`/`recvmsg` from, a DNS port): [`DatagramEvent`].
    Datagram = 6,
    /// Byte totals of a connection userspace asked to count, sent just before its
    /// [`CloseEvent`]: [`ConnBytesEvent`].
    ConnBytes = 7,
    /// A TLS object whose ciphertext travels through a memory or custom BIO was found to be a
    /// socket's: its ClientHello went out on that socket ([`TlsBindEvent`]). Made by userspace
    /// (which finds the binding), in the same format, so that recordings replay it.
    TlsBind = 8,
}

impl TryFrom<u32> for EventKind {
    type Error = u32;
    fn try_from(v: u32) -> Result<Self, u32> {
        Ok(match v {
            1 => EventKind::Data,
            2 => EventKind::Conn,
            3 => EventKind::Close,
            4 => EventKind::Exit,
            5 => EventKind::Exec,
            6 => EventKind::Datagram,
            7 => EventKind::ConnBytes,
            8 => EventKind::TlsBind,
            other => return Err(other),
        })
    }
}

/// Direction of plaintext relative to the traced process.
pub const DIR_EGRESS: u32 = 0;
/// Bytes the traced process received (SSL_read and friends).
pub const DIR_INGRESS: u32 = 1;

/// The library/hook family a [`DataEvent`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Source {
    /// OpenSSL's `SSL_write`/`SSL_read` and their `_ex` forms (libssl.so.3, libssl.so.1.1).
    OpenSsl = 1,
    /// Bytes of socket I/O (`write`/`read`/`sendto`/`recvfrom`, their vectored forms and
    /// `sendmmsg`/`recvmmsg`) on a connected internet socket made outside any TLS call:
    /// cleartext protocols (h2c, HTTP/1.1, DNS over UDP and TCP) — or ciphertext of TLS stacks
    /// that are not hooked, which userspace recognises and stops.
    Socket = 2,
    /// GnuTLS's `gnutls_record_send`/`gnutls_record_recv` (libgnutls.so.30). Sends made while
    /// the session is corked are emitted when `gnutls_record_uncork` flushes them, once.
    GnuTls = 3,
    /// NSPR's `PR_Write`/`PR_Read`/`PR_Send`/`PR_Recv` (libnspr4.so) on a socket: the NSS TLS
    /// layer's plaintext (Firefox, Thunderbird).
    Nspr = 4,
    /// Go's `crypto/tls.(*Conn).Write`/`Read`, probed at entry and at every RET.
    GoTls = 5,
}

impl Source {
    /// Whether the bytes are TLS plaintext (as opposed to bytes on the socket itself).
    pub fn is_tls(self) -> bool {
        !matches!(self, Source::Socket)
    }

    /// The TLS library family, as shown to users; None for socket bytes.
    pub fn library(self) -> Option<&'static str> {
        match self {
            Source::OpenSsl => Some("openssl"),
            Source::Socket => None,
            Source::GnuTls => Some("gnutls"),
            Source::Nspr => Some("nss"),
            Source::GoTls => Some("go"),
        }
    }
}

impl TryFrom<u32> for Source {
    type Error = u32;
    fn try_from(v: u32) -> Result<Self, u32> {
        match v {
            1 => Ok(Source::OpenSsl),
            2 => Ok(Source::Socket),
            3 => Ok(Source::GnuTls),
            4 => Ok(Source::Nspr),
            5 => Ok(Source::GoTls),
            other => Err(other),
        }
    }
}

/// How a [`ConnEvent`] came about.
pub const CONN_CONNECT: u32 = 1;
/// The socket was returned by `accept`/`accept4`.
pub const CONN_ACCEPT: u32 = 2;
/// [`ConnEvent::how`] carries the socket type in the bits from this one up: `(how >> 8) & 0xff`
/// is `SOCK_STREAM`, `SOCK_DGRAM`, or 0 when the socket was created before tracing started.
/// (The low byte is `CONN_CONNECT` or `CONN_ACCEPT`; recordings made before the type was added
/// have 0 there.)
pub const CONN_TYPE_SHIFT: u32 = 8;
/// `SOCK_STREAM` (TCP).
pub const SOCK_STREAM: u32 = 1;
/// `SOCK_DGRAM` (UDP).
pub const SOCK_DGRAM: u32 = 2;

/// Address family values as the kernel uses them.
pub const AF_INET: u16 = 2;
/// IPv6 address family.
pub const AF_INET6: u16 = 10;

/// Set in [`DataEvent::flags`] when the socket fd was not seen during the call and was taken
/// from the last fd known for the same TLS object (a read served from the library's buffer).
pub const DATA_FD_FROM_CACHE: u32 = 1;
/// Set in [`DataEvent::flags`] when no fd at all is known for the TLS object (`fd` is -1).
pub const DATA_FD_UNKNOWN: u32 = 2;
/// Set in [`DataEvent::flags`] when the call was cut short because its connection is
/// unclassified and over [`UNCLASSIFIED_BUDGET`](crate::UNCLASSIFIED_BUDGET) (the chunks stop before `total_len`).
pub const DATA_BUDGET_CUT: u32 = 4;

/// Common prefix of every record in the ring buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct EventHeader {
    /// An [`EventKind`] value.
    pub kind: u32,
    /// Thread-group id (what userspace calls the PID).
    pub tgid: u32,
    /// Thread id.
    pub tid: u32,
    /// Real uid of the task.
    pub uid: u32,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) when the event was produced.
    pub ts_ns: u64,
}

/// One chunk of plaintext from a TLS call.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct DataEvent {
    /// `kind` is [`EventKind::Data`].
    pub header: EventHeader,
    /// The socket fd behind the TLS object, or -1 (see [`DATA_FD_UNKNOWN`]).
    pub fd: i32,
    /// A [`Source`] value.
    pub source: u32,
    /// [`DIR_EGRESS`] or [`DIR_INGRESS`].
    pub direction: u32,
    /// `DATA_FD_*` bits.
    pub flags: u32,
    /// Address of the library's connection object (`SSL *`), stable for a TLS session.
    pub tls_obj: u64,
    /// Bytes the call transferred in total (from its return value).
    pub total_len: u32,
    /// Offset of this chunk within the call's bytes.
    pub offset: u32,
    /// Valid bytes in `data` (≤ [`CHUNK_SIZE`]).
    pub len: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
    /// Calling thread's name.
    pub comm: [u8; COMM_LEN],
    /// The plaintext; only `len` bytes are meaningful. The ring buffer record is truncated to
    /// `DATA_EVENT_HEADER_SIZE + len` bytes, so readers must not expect the full array.
    pub data: [u8; CHUNK_SIZE],
}

/// Size of a [`DataEvent`] without its `data` array: what precedes the plaintext bytes.
pub const DATA_EVENT_HEADER_SIZE: usize = core::mem::size_of::<DataEvent>() - CHUNK_SIZE;

/// A socket that was connected or accepted with an IPv4/IPv6 peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct ConnEvent {
    /// `kind` is [`EventKind::Conn`].
    pub header: EventHeader,
    /// The socket fd.
    pub fd: i32,
    /// [`CONN_CONNECT`] or [`CONN_ACCEPT`], with the socket type above [`CONN_TYPE_SHIFT`].
    pub how: u32,
    /// The syscall's return value (0 or -EINPROGRESS for connect, the new fd for accept).
    pub ret: i32,
    /// [`AF_INET`] or [`AF_INET6`].
    pub family: u16,
    /// Peer port, host byte order.
    pub port: u16,
    /// Peer address: 4 bytes for IPv4, 16 for IPv6, network order.
    pub addr: [u8; 16],
    /// Calling thread's name.
    pub comm: [u8; COMM_LEN],
}

/// A tracked socket fd was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct CloseEvent {
    /// `kind` is [`EventKind::Close`].
    pub header: EventHeader,
    /// The fd being closed.
    pub fd: i32,
    /// Explicit padding; always zero.
    pub _pad: u32,
}

/// One DNS datagram sent to or received from a DNS port on a socket without a tracked
/// connection (an unconnected UDP socket, or one connected before tracing started).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct DatagramEvent {
    /// `kind` is [`EventKind::Datagram`].
    pub header: EventHeader,
    /// The socket fd.
    pub fd: i32,
    /// [`DIR_EGRESS`] (sent to the address) or [`DIR_INGRESS`] (received from it).
    pub direction: u32,
    /// [`AF_INET`] or [`AF_INET6`].
    pub family: u16,
    /// Peer port, host byte order.
    pub port: u16,
    /// Peer address: 4 bytes for IPv4, 16 for IPv6, network order.
    pub addr: [u8; 16],
    /// Bytes of the datagram (from the call's return value).
    pub total_len: u32,
    /// Valid bytes in `data` (≤ [`CHUNK_SIZE`]; less than `total_len` when the datagram was
    /// larger or spread over several iovecs — the rest is counted as truncated).
    pub len: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
    /// Calling thread's name.
    pub comm: [u8; COMM_LEN],
    /// The datagram; only `len` bytes are meaningful (the record is cut after them).
    pub data: [u8; CHUNK_SIZE],
}

/// Size of a [`DatagramEvent`] without its `data` array.
pub const DATAGRAM_EVENT_HEADER_SIZE: usize = core::mem::size_of::<DatagramEvent>() - CHUNK_SIZE;

/// Totals of a counted connection ([`CAPTURE_COUNT`](crate::CAPTURE_COUNT)), reported just before it closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct ConnBytesEvent {
    /// `kind` is [`EventKind::ConnBytes`].
    pub header: EventHeader,
    /// The socket fd.
    pub fd: i32,
    /// Explicit padding; always zero.
    pub _pad: u32,
    /// Bytes sent while counted.
    pub sent: u64,
    /// Bytes received while counted.
    pub received: u64,
}

/// A TLS object bound to its socket: its TLS calls make no socket syscall (a memory BIO, a
/// BIO pair, an application BIO), but the ClientHello whose client random it holds was written
/// to socket `fd`. Its plaintext is that connection's from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct TlsBindEvent {
    /// `kind` is [`EventKind::TlsBind`].
    pub header: EventHeader,
    /// The socket fd.
    pub fd: i32,
    /// Explicit padding; always zero.
    pub _pad: u32,
    /// The library's connection object (`SSL *`).
    pub tls_obj: u64,
}

/// A thread group exited (its last thread is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct ExitEvent {
    /// `kind` is [`EventKind::Exit`].
    pub header: EventHeader,
}

const _: () = assert!(core::mem::size_of::<EventHeader>() == 24);
const _: () = assert!(core::mem::size_of::<DataEvent>() == 24 + 40 + COMM_LEN + CHUNK_SIZE);
const _: () = assert!(DATA_EVENT_HEADER_SIZE == 80);
const _: () = assert!(core::mem::size_of::<ConnEvent>() == 24 + 16 + 16 + COMM_LEN);
const _: () = assert!(core::mem::size_of::<CloseEvent>() == 32);
const _: () = assert!(core::mem::size_of::<ExitEvent>() == 24);
const _: () = assert!(DATAGRAM_EVENT_HEADER_SIZE == 80);
const _: () =
    assert!(core::mem::size_of::<DatagramEvent>() == DATAGRAM_EVENT_HEADER_SIZE + CHUNK_SIZE);
const _: () = assert!(core::mem::size_of::<ConnBytesEvent>() == 48);
const _: () = assert!(core::mem::size_of::<TlsBindEvent>() == 40);
