//! Every type that crosses the kernel↔user boundary, defined once.
//!
//! The eBPF program writes these records into one ring buffer; the userspace loader reads them
//! back as bytes and decodes them with [`EventKind::try_from`] on the leading `kind` word — a
//! kernel value is never transmuted into a Rust enum. All records are `#[repr(C)]`, made of
//! fixed-width integers only, padded explicitly, and size-checked at compile time.
#![no_std]

/// Bytes of plaintext carried by one [`DataEvent`]. A power of two (the eBPF side masks with it).
pub const CHUNK_SIZE: usize = 4096;
/// At most this many chunks are emitted for one TLS call (so 64 KiB); the rest of a larger call
/// is counted in [`Stat::TruncatedBytes`] and visible to userspace as a gap (offset + total_len).
pub const MAX_CHUNKS_PER_CALL: u32 = 16;
/// With `--pid`, up to this many processes are compared inline by the syscall programs (a
/// global array the loader fills); more go to a hash map, which costs every other process one
/// map lookup per syscall.
pub const SCOPE_INLINE_PIDS: usize = 8;
/// Length of a kernel task name (`TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;

/// The libssl functions whose entry and return the OpenSSL uprobes hook: `SSL_write`,
/// `SSL_read`, `SSL_write_ex`, `SSL_read_ex`. The loader's probe table names them from here,
/// and so does `cargo xtask bench`, whose bare-uprobe floor must probe the same functions.
pub const OPENSSL_FUNCTIONS: [&str; 4] = ["SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex"];

/// A kernel tracepoint the tracer attaches; its eBPF program has the tracepoint's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracepoint {
    /// The tracefs category (`syscalls`, `sched`).
    pub category: &'static str,
    /// The tracepoint, and the name of the program attached to it.
    pub name: &'static str,
}

impl Tracepoint {
    const fn syscall(name: &'static str) -> Tracepoint {
        Tracepoint {
            category: "syscalls",
            name,
        }
    }

    const fn sched(name: &'static str) -> Tracepoint {
        Tracepoint {
            category: "sched",
            name,
        }
    }
}

/// Every tracepoint the tracer attaches (all required; present on every kernel ≥ 4.x). The
/// syscall ones fire for every process, also with `--pid`; `cargo xtask bench` attaches empty
/// programs to the same list for the floor that costs other processes.
pub const TRACEPOINTS: [Tracepoint; 31] = [
    Tracepoint::syscall("sys_enter_write"),
    Tracepoint::syscall("sys_exit_write"),
    Tracepoint::syscall("sys_enter_writev"),
    Tracepoint::syscall("sys_exit_writev"),
    Tracepoint::syscall("sys_enter_sendto"),
    Tracepoint::syscall("sys_exit_sendto"),
    Tracepoint::syscall("sys_enter_sendmsg"),
    Tracepoint::syscall("sys_exit_sendmsg"),
    Tracepoint::syscall("sys_enter_sendmmsg"),
    Tracepoint::syscall("sys_exit_sendmmsg"),
    Tracepoint::syscall("sys_enter_read"),
    Tracepoint::syscall("sys_exit_read"),
    Tracepoint::syscall("sys_enter_readv"),
    Tracepoint::syscall("sys_exit_readv"),
    Tracepoint::syscall("sys_enter_recvfrom"),
    Tracepoint::syscall("sys_exit_recvfrom"),
    Tracepoint::syscall("sys_enter_recvmsg"),
    Tracepoint::syscall("sys_exit_recvmsg"),
    Tracepoint::syscall("sys_enter_recvmmsg"),
    Tracepoint::syscall("sys_exit_recvmmsg"),
    Tracepoint::syscall("sys_enter_socket"),
    Tracepoint::syscall("sys_exit_socket"),
    Tracepoint::syscall("sys_enter_connect"),
    Tracepoint::syscall("sys_exit_connect"),
    Tracepoint::syscall("sys_enter_accept4"),
    Tracepoint::syscall("sys_exit_accept4"),
    Tracepoint::syscall("sys_enter_accept"),
    Tracepoint::syscall("sys_exit_accept"),
    Tracepoint::syscall("sys_enter_close"),
    Tracepoint::sched("sched_process_exit"),
    Tracepoint::sched("sched_process_exec"),
];

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

/// Capture policy bit: copy no more TLS plaintext of this connection (not DNS).
pub const CAPTURE_TLS_SKIP: u32 = 1;
/// Capture policy bit: copy all TLS plaintext of this connection (it carries DNS).
pub const CAPTURE_TLS_FULL: u32 = 2;
/// Capture policy bit: copy no more socket bytes of this connection (TLS ciphertext, not DNS).
pub const CAPTURE_SOCK_SKIP: u32 = 4;
/// Capture policy bit: copy all socket bytes of this connection (cleartext DNS carrier).
pub const CAPTURE_SOCK_FULL: u32 = 8;
/// Capture policy bit: count the bytes sent and received on this socket (copied or not) and
/// report the totals in a [`ConnBytesEvent`] when it closes (opaque encrypted DNS).
pub const CAPTURE_COUNT: u32 = 16;
/// Bytes per layer (TLS plaintext, socket bytes) copied from a connection userspace has not
/// classified yet; the rest is counted in [`Stat::UnclassifiedBytes`].
pub const UNCLASSIFIED_BUDGET: u32 = 16 * 1024;

/// Per-connection capture state (CAPTURE map, key `tgid << 32 | fd`). Userspace sets `policy`
/// once it knows what the connection carries; the eBPF side counts what it copied before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Capture {
    /// `CAPTURE_*` bits.
    pub policy: u32,
    /// TLS plaintext bytes copied while unclassified.
    pub tls_copied: u32,
    /// Socket bytes copied while unclassified.
    pub sock_copied: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
    /// Bytes sent on the socket while [`CAPTURE_COUNT`] was set.
    pub sent: u64,
    /// Bytes received on the socket while [`CAPTURE_COUNT`] was set.
    pub received: u64,
}

/// [`SockIo::shape`]: one flat buffer (`read`, `write`, `sendto`, `recvfrom`).
pub const IO_FLAT: u32 = 0;
/// [`SockIo::shape`]: an iovec array (`readv`, `writev`).
pub const IO_IOVEC: u32 = 1;
/// [`SockIo::shape`]: one `struct msghdr` (`sendmsg`, `recvmsg`).
pub const IO_MSG: u32 = 2;
/// [`SockIo::shape`]: an array of `struct mmsghdr` (`sendmmsg`, `recvmmsg`).
pub const IO_MMSG: u32 = 3;

/// [`SockIo::mode`]: a tracked connection whose bytes are copied (as far as its policy allows).
pub const IO_COPY: u32 = 0;
/// [`SockIo::mode`]: a tracked connection whose bytes are only counted ([`CAPTURE_COUNT`]).
pub const IO_COUNT_ONLY: u32 = 1;
/// [`SockIo::mode`]: an untracked socket: copied as a [`DatagramEvent`] if the peer address is
/// on a DNS port.
pub const IO_DATAGRAM: u32 = 2;

/// A socket read/write in progress outside TLS calls, saved at syscall entry.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct SockIo {
    /// The caller's buffer, iovec array, msghdr or mmsghdr array (by `shape`).
    pub buf: u64,
    /// For flat calls: the user pointer to the peer `struct sockaddr` (`sendto`'s destination,
    /// `recvfrom`'s source), or 0. For `readv`/`writev`: the iovec count.
    pub addr: u64,
    /// The socket fd.
    pub fd: i32,
    /// [`DIR_EGRESS`] or [`DIR_INGRESS`].
    pub direction: u32,
    /// `IO_FLAT`, `IO_IOVEC`, `IO_MSG` or `IO_MMSG`.
    pub shape: u32,
    /// `IO_COPY`, `IO_COUNT_ONLY` or `IO_DATAGRAM`.
    pub mode: u32,
}

/// Most iovec entries of one call whose bytes are copied (one chunk of each); the rest is
/// counted in [`Stat::TruncatedBytes`].
pub const MAX_IOV: u32 = 8;
/// Most messages of one `sendmmsg`/`recvmmsg` that are looked at (the first chunk of the first
/// iovec of each); later ones are counted in [`Stat::VectoredIoSkipped`].
pub const MAX_MMSG: u32 = 8;

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
/// unclassified and over [`UNCLASSIFIED_BUDGET`] (the chunks stop before `total_len`).
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

/// Totals of a counted connection ([`CAPTURE_COUNT`]), reported just before it closes.
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

/// A thread group exited (its last thread is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct ExitEvent {
    /// `kind` is [`EventKind::Exit`].
    pub header: EventHeader,
}

/// Per-CPU counters the eBPF side keeps (index into the `STATS` per-CPU array).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Stat {
    /// Ring buffer reservations that failed: events lost.
    RingbufDrops = 0,
    /// Plaintext bytes beyond [`MAX_CHUNKS_PER_CALL`] chunks that were not copied.
    TruncatedBytes = 1,
    /// `bpf_probe_read_user` failures while copying plaintext (chunk not emitted).
    ReadErrors = 2,
    /// TLS calls whose socket fd could not be determined.
    UnknownFd = 3,
    /// TLS calls that returned data and were emitted.
    TlsCalls = 4,
    /// Bytes not copied because their connection was still unclassified after
    /// [`UNCLASSIFIED_BUDGET`] bytes.
    UnclassifiedBytes = 5,
    /// Vectored socket calls outside TLS whose iovec or msghdr could not be read, and messages
    /// of `sendmmsg`/`recvmmsg` past [`MAX_MMSG`] (their bytes were not copied).
    VectoredIoSkipped = 6,
    /// DNS datagrams copied from sockets without a tracked connection.
    Datagrams = 7,
}

/// Number of [`Stat`] slots.
pub const STAT_COUNT: u32 = 8;

impl Stat {
    /// Every counter, in index order.
    pub const ALL: [Stat; STAT_COUNT as usize] = [
        Stat::RingbufDrops,
        Stat::TruncatedBytes,
        Stat::ReadErrors,
        Stat::UnknownFd,
        Stat::TlsCalls,
        Stat::UnclassifiedBytes,
        Stat::VectoredIoSkipped,
        Stat::Datagrams,
    ];
}

/// Per-thread state of a TLS call between its entry and return probes.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct TlsCall {
    /// The library's connection object.
    pub tls_obj: u64,
    /// The caller's buffer.
    pub buf: u64,
    /// For `_ex` forms: where the library stores the byte count; 0 otherwise.
    pub count_ptr: u64,
    /// Socket fd seen in a matching syscall during the call, or -1.
    pub fd: i32,
    /// [`DIR_EGRESS`] or [`DIR_INGRESS`].
    pub direction: u32,
}

/// Key of per-process maps keyed by an object address: a TLS library's connection object
/// (`SSL *`, `gnutls_session_t`, `PRFileDesc *`, Go `*tls.Conn`) or a goroutine (`g *`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct TlsObjKey {
    /// Thread-group id.
    pub tgid: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
    /// The object's address.
    pub tls_obj: u64,
}

/// Arguments of a pending `connect`/`accept` saved at syscall entry.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct PendingSockCall {
    /// User pointer to the `struct sockaddr`.
    pub addr_ptr: u64,
    /// Socket fd (connect) or listening fd (accept).
    pub fd: i32,
    /// [`CONN_CONNECT`] or [`CONN_ACCEPT`].
    pub how: u32,
}

const _: () = assert!(core::mem::size_of::<EventHeader>() == 24);
const _: () = assert!(core::mem::size_of::<DataEvent>() == 24 + 40 + COMM_LEN + CHUNK_SIZE);
const _: () = assert!(DATA_EVENT_HEADER_SIZE == 80);
const _: () = assert!(core::mem::size_of::<ConnEvent>() == 24 + 16 + 16 + COMM_LEN);
const _: () = assert!(core::mem::size_of::<CloseEvent>() == 32);
const _: () = assert!(core::mem::size_of::<ExitEvent>() == 24);
const _: () = assert!(core::mem::size_of::<TlsCall>() == 32);
const _: () = assert!(core::mem::size_of::<TlsObjKey>() == 16);
const _: () = assert!(core::mem::size_of::<PendingSockCall>() == 16);
const _: () = assert!(core::mem::size_of::<Capture>() == 32);
const _: () = assert!(core::mem::size_of::<SockIo>() == 32);
const _: () = assert!(DATAGRAM_EVENT_HEADER_SIZE == 80);
const _: () =
    assert!(core::mem::size_of::<DatagramEvent>() == DATAGRAM_EVENT_HEADER_SIZE + CHUNK_SIZE);
const _: () = assert!(core::mem::size_of::<ConnBytesEvent>() == 48);
const _: () = assert!(CHUNK_SIZE.is_power_of_two());

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are repr(C), made of integers and integer arrays, with no implicit
    // padding (checked by the size asserts above), so every bit pattern is valid.
    unsafe impl aya::Pod for super::TlsCall {}
    unsafe impl aya::Pod for super::TlsObjKey {}
    unsafe impl aya::Pod for super::PendingSockCall {}
    unsafe impl aya::Pod for super::Capture {}
    unsafe impl aya::Pod for super::SockIo {}
}
