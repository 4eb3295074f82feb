//! What every TLS library hook shares: saving a call's arguments at entry (per thread, or per
//! goroutine for Go), and at return turning the byte count into a data event tagged with the
//! socket the call used.
//!
//! The socket is found without library struct offsets: the I/O syscalls made during the call
//! record their fd in the saved call (see `sockets`); a call that made none (served from the
//! library's buffer, or corked) uses the last fd seen for the same library object.

use aya_ebpf::maps::LruHashMap;
use doh_trace_common::{
    LruMap, Source, Stat, TlsCall, TlsObjKey, DATA_FD_FROM_CACHE, DATA_FD_UNKNOWN,
};

use crate::{
    emit::{bump, emit_data, DataSpec},
    lru,
    maps::{fd_key, tracer_tgid, SOCK_TYPES, TLS_CALLS, TLS_FDS, TRACKED_FDS},
};

/// Whether the current process is the tracer (never traced).
#[inline(always)]
pub fn is_tracer(pid_tgid: u64) -> bool {
    (pid_tgid >> 32) as u32 == tracer_tgid()
}

/// Saves the calling thread's call to library object `obj` with buffer `buf` (the tracer's
/// own calls, and calls without an object or buffer, are not traced).
#[inline(always)]
pub fn enter_thread(pid_tgid: u64, obj: u64, buf: u64, count_ptr: u64, direction: u32) {
    if obj != 0 && buf != 0 && !is_tracer(pid_tgid) {
        save(
            &TLS_CALLS,
            LruMap::TlsCalls,
            &pid_tgid,
            obj,
            buf,
            count_ptr,
            direction,
        );
    }
}

/// The calling thread's saved call, taken out of the map.
#[inline(always)]
pub fn take_thread_call(pid_tgid: u64) -> Option<TlsCall> {
    let call = (unsafe { TLS_CALLS.get(pid_tgid) }).copied()?;
    lru::remove(&TLS_CALLS, LruMap::TlsCalls, &pid_tgid);
    Some(call)
}

/// Saves a call under `key` in `calls` (arguments already checked by the caller).
#[inline(always)]
pub fn save<K>(
    calls: &LruHashMap<K, TlsCall>,
    which: LruMap,
    key: &K,
    tls_obj: u64,
    buf: u64,
    count_ptr: u64,
    direction: u32,
) {
    let call = TlsCall {
        tls_obj,
        buf,
        count_ptr,
        fd: -1,
        direction,
    };
    lru::set(calls, which, key, &call);
}

/// Whether the library must have been talking to a socket the tracer knows (NSPR's PR_Write
/// and PR_Read also serve files and pipes, whose bytes must never be copied).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum FdRule {
    /// Any fd (the library only does TLS).
    Any,
    /// Only a socket created, connected or accepted while tracing.
    KnownSocket,
}

/// Emits the plaintext of a finished call that moved `total` bytes.
#[inline(always)]
pub fn finish(tgid: u32, call: &TlsCall, total: u64, source: Source, rule: FdRule) {
    if total == 0 {
        return;
    }
    let total = if total > u32::MAX as u64 {
        u32::MAX
    } else {
        total as u32
    };
    let key = TlsObjKey {
        tgid,
        _pad: 0,
        tls_obj: call.tls_obj,
    };
    let (fd, flags) = if call.fd >= 0 {
        if rule == FdRule::KnownSocket {
            let k = fd_key(tgid, call.fd);
            if unsafe { TRACKED_FDS.get(k) }.is_none() && unsafe { SOCK_TYPES.get(k) }.is_none() {
                return;
            }
        }
        lru::update(&TLS_FDS, LruMap::TlsFds, &key, &call.fd);
        (call.fd, 0)
    } else {
        match unsafe { TLS_FDS.get(key) } {
            Some(fd) => (*fd, DATA_FD_FROM_CACHE),
            None if rule == FdRule::KnownSocket => return,
            None => {
                bump(Stat::UnknownFd, 1);
                (-1, DATA_FD_UNKNOWN)
            }
        }
    };
    emit_data(&DataSpec {
        source: source as u32,
        direction: call.direction,
        flags,
        fd,
        tls_obj: call.tls_obj,
        buf: call.buf,
        total_len: total,
    });
}
