//! Maps shared by the probes, and the tracer-owned globals set at load time.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use doh_trace_common::{
    Capture, DataEvent, DatagramEvent, LruMap, PendingSockCall, SockIo, TlsCall, TlsObjKey,
    SCOPE_INLINE_PIDS, STAT_SLOTS,
};

/// Thread-group id of the tracer itself; its own calls are never traced. Set by the loader.
#[unsafe(no_mangle)]
static TRACER_TGID: u32 = 0;

/// The tracer's tgid, read so the compiler cannot constant-fold the loader-patched value.
#[inline(always)]
pub fn tracer_tgid() -> u32 {
    unsafe { core::ptr::read_volatile(&TRACER_TGID) }
}

/// How many processes the user named (`--pid`); 0 traces every process. Set by the loader.
#[unsafe(no_mangle)]
static SCOPE_PID_COUNT: u32 = 0;

/// The named processes when there are at most [`SCOPE_INLINE_PIDS`] of them, compared inline:
/// every other process then leaves the syscall programs without a map lookup. Set by the loader.
#[unsafe(no_mangle)]
static SCOPE_PIDS: [u32; SCOPE_INLINE_PIDS] = [0; SCOPE_INLINE_PIDS];

/// The named processes when there are more than [`SCOPE_INLINE_PIDS`]. Filled by the loader.
#[map]
pub static SCOPE_TGIDS: HashMap<u32, u8> = HashMap::with_max_entries(1024, 0);

/// Whether `tgid` is one the tracer watches: the tracer itself never, with `--pid` only the
/// named processes, otherwise every process. Every syscall program asks this first, so that
/// with `--pid` the processes not named cost as little as the tracepoint itself.
#[inline(always)]
pub fn in_scope(tgid: u32) -> bool {
    if tgid == tracer_tgid() {
        return false;
    }
    // SAFETY: reads of loader-patched globals; volatile so they are not constant-folded.
    let named = unsafe { core::ptr::read_volatile(&SCOPE_PID_COUNT) } as usize;
    if named == 0 {
        return true;
    }
    if named > SCOPE_INLINE_PIDS {
        return unsafe { SCOPE_TGIDS.get(tgid) }.is_some();
    }
    let mut i = 0;
    while i < SCOPE_INLINE_PIDS {
        if i < named && unsafe { core::ptr::read_volatile(&SCOPE_PIDS[i]) } == tgid {
            return true;
        }
        i += 1;
    }
    false
}

/// The single ring buffer every event goes through (keeps global order).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(8 * 1024 * 1024, 0);

/// Entry 0 is non-zero while the tracer drains [`EVENTS`] on its own timer: only then may a
/// record be submitted without waking it. The tracer sets it while records flow and clears it
/// when idle, so an idle tracer is not woken by a timer.
#[map]
pub static DRAINING: Array<u32> = Array::with_max_entries(1, 0);

/// Whether the tracer is draining the ring buffer on its timer.
#[inline(always)]
pub fn tracer_draining() -> bool {
    DRAINING.get(0).is_some_and(|on| *on != 0)
}

/// Per-CPU counters: `doh_trace_common::Stat`, then each `LruMap`'s created/removed entries.
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STAT_SLOTS, 0);

/// Scratch space for building one data event (too large for the 512-byte eBPF stack).
#[map]
pub static SCRATCH: PerCpuArray<DataEvent> = PerCpuArray::with_max_entries(1, 0);

/// Scratch space for building one datagram event.
#[map]
pub static DGRAM_SCRATCH: PerCpuArray<DatagramEvent> = PerCpuArray::with_max_entries(1, 0);

/// Ports whose datagrams are DNS (53 and any the user added). Filled by the loader.
#[map]
pub static DNS_PORTS: HashMap<u16, u8> = HashMap::with_max_entries(64, 0);

/// `socket()` calls in progress for internet sockets, keyed by pid_tgid: the socket type.
#[map]
pub static SOCKETS_OPENING: LruHashMap<u64, u32> =
    LruHashMap::with_max_entries(LruMap::SocketsOpening.capacity(), 0);

/// Type (`SOCK_STREAM`/`SOCK_DGRAM`) of internet sockets created while tracing
/// (key: tgid << 32 | fd).
#[map]
pub static SOCK_TYPES: LruHashMap<u64, u32> =
    LruHashMap::with_max_entries(LruMap::SockTypes.capacity(), 0);

/// TLS calls in progress, keyed by pid_tgid (one per thread). LRU, so entries of threads that
/// never returned (killed mid-call) cannot fill it.
#[map]
pub static TLS_CALLS: LruHashMap<u64, TlsCall> =
    LruHashMap::with_max_entries(LruMap::TlsCalls.capacity(), 0);

/// Go crypto/tls calls in progress, keyed by (tgid, goroutine): a goroutine may block in the
/// call and resume on another thread.
#[map]
pub static GO_CALLS: LruHashMap<TlsObjKey, TlsCall> =
    LruHashMap::with_max_entries(LruMap::GoCalls.capacity(), 0);

/// Processes that have made Go crypto/tls calls: their syscalls look up the running goroutine.
#[map]
pub static GO_TGIDS: LruHashMap<u32, u8> =
    LruHashMap::with_max_entries(LruMap::GoTgids.capacity(), 0);

/// Corked GnuTLS sessions (key: tgid, session): their sends are emitted when uncorked.
#[map]
pub static GNUTLS_CORKED: LruHashMap<TlsObjKey, u8> =
    LruHashMap::with_max_entries(LruMap::GnutlsCorked.capacity(), 0);

/// Last socket fd seen for a TLS object, for reads served from the library's buffer.
#[map]
pub static TLS_FDS: LruHashMap<TlsObjKey, i32> =
    LruHashMap::with_max_entries(LruMap::TlsFds.capacity(), 0);

/// connect/accept calls in progress, keyed by pid_tgid (LRU for the same reason).
#[map]
pub static SOCK_CALLS: LruHashMap<u64, PendingSockCall> =
    LruHashMap::with_max_entries(LruMap::SockCalls.capacity(), 0);

/// Socket fds the tracer has reported (key: tgid << 32 | fd); their close is reported too.
#[map]
pub static TRACKED_FDS: LruHashMap<u64, u8> =
    LruHashMap::with_max_entries(LruMap::TrackedFds.capacity(), 0);

/// Processes the tracer has reported on; their exit is reported too.
#[map]
pub static TRACKED_TGIDS: LruHashMap<u32, u8> =
    LruHashMap::with_max_entries(LruMap::TrackedTgids.capacity(), 0);

/// Per-connection capture policy and unclassified-byte counters (key: tgid << 32 | fd).
#[map]
pub static CAPTURE: LruHashMap<u64, Capture> =
    LruHashMap::with_max_entries(LruMap::Capture.capacity(), 0);

/// Socket reads/writes outside TLS calls in progress, keyed by pid_tgid.
#[map]
pub static SOCK_IO: LruHashMap<u64, SockIo> =
    LruHashMap::with_max_entries(LruMap::SockIo.capacity(), 0);

/// Key of the per-connection maps.
#[inline(always)]
pub fn fd_key(tgid: u32, fd: i32) -> u64 {
    ((tgid as u64) << 32) | fd as u32 as u64
}
