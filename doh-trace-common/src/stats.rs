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

/// The eBPF side's LRU hash maps. A full LRU map makes room by evicting its least recently
/// used entry without telling anyone, so each counts the entries it creates and removes (two
/// `STATS` slots per map, after the [`Stat`] ones): created − removed − capacity is then a
/// lower bound of its evictions, exact while the map is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum LruMap {
    /// `socket()` calls in progress (per thread).
    SocketsOpening = 0,
    /// Types of internet sockets (per socket).
    SockTypes = 1,
    /// TLS library calls in progress (per thread).
    TlsCalls = 2,
    /// Go crypto/tls calls in progress (per goroutine).
    GoCalls = 3,
    /// Processes making Go crypto/tls calls.
    GoTgids = 4,
    /// Corked GnuTLS sessions.
    GnutlsCorked = 5,
    /// The socket of each TLS object.
    TlsFds = 6,
    /// connect/accept calls in progress (per thread).
    SockCalls = 7,
    /// Sockets whose close is reported.
    TrackedFds = 8,
    /// Processes whose exit is reported.
    TrackedTgids = 9,
    /// Per-connection capture policy and byte counts.
    Capture = 10,
    /// Plain socket reads/writes in progress (per thread).
    SockIo = 11,
}

/// Number of [`LruMap`]s.
pub const LRU_MAP_COUNT: u32 = 12;

/// Slots of the `STATS` per-CPU array: the [`Stat`] counters, then two per [`LruMap`].
pub const STAT_SLOTS: u32 = STAT_COUNT + 2 * LRU_MAP_COUNT;

impl LruMap {
    /// Every LRU map, in slot order.
    pub const ALL: [LruMap; LRU_MAP_COUNT as usize] = [
        LruMap::SocketsOpening,
        LruMap::SockTypes,
        LruMap::TlsCalls,
        LruMap::GoCalls,
        LruMap::GoTgids,
        LruMap::GnutlsCorked,
        LruMap::TlsFds,
        LruMap::SockCalls,
        LruMap::TrackedFds,
        LruMap::TrackedTgids,
        LruMap::Capture,
        LruMap::SockIo,
    ];

    /// The map's `max_entries`.
    pub const fn capacity(self) -> u32 {
        match self {
            LruMap::SockTypes | LruMap::TlsFds | LruMap::TrackedFds | LruMap::Capture => 65536,
            LruMap::GoTgids => 4096,
            LruMap::SocketsOpening
            | LruMap::TlsCalls
            | LruMap::GoCalls
            | LruMap::GnutlsCorked
            | LruMap::SockCalls
            | LruMap::TrackedTgids
            | LruMap::SockIo => 16384,
        }
    }

    /// The map's name in the eBPF object (the static's identifier).
    pub const fn name(self) -> &'static str {
        match self {
            LruMap::SocketsOpening => "SOCKETS_OPENING",
            LruMap::SockTypes => "SOCK_TYPES",
            LruMap::TlsCalls => "TLS_CALLS",
            LruMap::GoCalls => "GO_CALLS",
            LruMap::GoTgids => "GO_TGIDS",
            LruMap::GnutlsCorked => "GNUTLS_CORKED",
            LruMap::TlsFds => "TLS_FDS",
            LruMap::SockCalls => "SOCK_CALLS",
            LruMap::TrackedFds => "TRACKED_FDS",
            LruMap::TrackedTgids => "TRACKED_TGIDS",
            LruMap::Capture => "CAPTURE",
            LruMap::SockIo => "SOCK_IO",
        }
    }

    /// The tracer's report line for this map's evictions (after the count), saying what an
    /// evicted entry held.
    pub const fn evicted_label(self) -> &'static str {
        match self {
            LruMap::SocketsOpening => "entries evicted from the full SOCKETS_OPENING map (socket() calls in progress)",
            LruMap::SockTypes => "entries evicted from the full SOCK_TYPES map (socket types)",
            LruMap::TlsCalls => "entries evicted from the full TLS_CALLS map (TLS calls in progress)",
            LruMap::GoCalls => "entries evicted from the full GO_CALLS map (Go TLS calls in progress)",
            LruMap::GoTgids => "entries evicted from the full GO_TGIDS map (Go TLS processes)",
            LruMap::GnutlsCorked => "entries evicted from the full GNUTLS_CORKED map (corked GnuTLS sessions)",
            LruMap::TlsFds => "entries evicted from the full TLS_FDS map (TLS objects' sockets)",
            LruMap::SockCalls => "entries evicted from the full SOCK_CALLS map (connect/accept calls in progress)",
            LruMap::TrackedFds => "entries evicted from the full TRACKED_FDS map (reported sockets, whose close is then missed)",
            LruMap::TrackedTgids => "entries evicted from the full TRACKED_TGIDS map (reported processes, whose exit is then missed)",
            LruMap::Capture => "entries evicted from the full CAPTURE map (connections' capture decisions and byte counts)",
            LruMap::SockIo => "entries evicted from the full SOCK_IO map (socket reads/writes in progress)",
        }
    }

    /// The `STATS` slot counting entries created.
    pub const fn created_slot(self) -> u32 {
        STAT_COUNT + 2 * self as u32
    }

    /// The `STATS` slot counting entries removed.
    pub const fn removed_slot(self) -> u32 {
        self.created_slot() + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lru_map_has_its_own_two_slots_after_the_counters() {
        for (i, m) in LruMap::ALL.iter().enumerate() {
            assert_eq!(*m as usize, i);
            assert_eq!(m.created_slot(), STAT_COUNT + 2 * i as u32);
            assert!(m.removed_slot() < STAT_SLOTS);
        }
    }
}
