//! Per-thread and per-object state the eBPF programs keep between a call's entry and its
//! return: TLS calls, socket I/O outside TLS calls, pending connect/accept.

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
/// [`SockIo::mode`]: a tracked connection whose bytes are only counted ([`CAPTURE_COUNT`](crate::CAPTURE_COUNT)).
pub const IO_COUNT_ONLY: u32 = 1;
/// [`SockIo::mode`]: an untracked socket: copied as a [`DatagramEvent`](crate::DatagramEvent) if the peer address is
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
    /// [`DIR_EGRESS`](crate::DIR_EGRESS) or [`DIR_INGRESS`](crate::DIR_INGRESS).
    pub direction: u32,
    /// `IO_FLAT`, `IO_IOVEC`, `IO_MSG` or `IO_MMSG`.
    pub shape: u32,
    /// `IO_COPY`, `IO_COUNT_ONLY` or `IO_DATAGRAM`.
    pub mode: u32,
}

/// Most iovec entries of one call whose bytes are copied (one chunk of each); the rest is
/// counted in [`Stat::TruncatedBytes`](crate::Stat::TruncatedBytes).
pub const MAX_IOV: u32 = 8;
/// Most messages of one `sendmmsg`/`recvmmsg` that are looked at (the first chunk of the first
/// iovec of each); later ones are counted in [`Stat::VectoredIoSkipped`](crate::Stat::VectoredIoSkipped).
pub const MAX_MMSG: u32 = 8;

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
    /// [`DIR_EGRESS`](crate::DIR_EGRESS) or [`DIR_INGRESS`](crate::DIR_INGRESS).
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
    /// [`CONN_CONNECT`](crate::CONN_CONNECT) or [`CONN_ACCEPT`](crate::CONN_ACCEPT).
    pub how: u32,
}

const _: () = assert!(core::mem::size_of::<TlsCall>() == 32);
const _: () = assert!(core::mem::size_of::<TlsObjKey>() == 16);
const _: () = assert!(core::mem::size_of::<PendingSockCall>() == 16);
const _: () = assert!(core::mem::size_of::<SockIo>() == 32);
