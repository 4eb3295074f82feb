//! The counters the eBPF side keeps (the `STATS` per-CPU array).

/// Per-CPU counters the eBPF side keeps (index into the `STATS` per-CPU array).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Stat {
    /// Ring buffer reservations that failed: events lost.
    RingbufDrops = 0,
    /// Plaintext bytes beyond [`MAX_CHUNKS_PER_CALL`](crate::MAX_CHUNKS_PER_CALL) chunks that were not copied.
    TruncatedBytes = 1,
    /// `bpf_probe_read_user` failures while copying plaintext (chunk not emitted).
    ReadErrors = 2,
    /// TLS calls whose socket fd could not be determined.
    UnknownFd = 3,
    /// TLS calls that returned data and were emitted.
    TlsCalls = 4,
    /// Bytes not copied because their connection was still unclassified after
    /// [`UNCLASSIFIED_BUDGET`](crate::UNCLASSIFIED_BUDGET) bytes.
    UnclassifiedBytes = 5,
    /// Vectored socket calls outside TLS whose iovec or msghdr could not be read, and messages
    /// of `sendmmsg`/`recvmmsg` past [`MAX_MMSG`](crate::MAX_MMSG) (their bytes were not copied).
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
