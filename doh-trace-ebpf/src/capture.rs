//! The capture policy's kernel half: how many of a call's bytes may be copied, by what
//! userspace decided about the connection (`doh-trace/src/conn/policy.rs` describes the whole
//! loop), and the byte totals of counted connections. State is per connection in the `CAPTURE`
//! map, keyed by `tgid << 32 | fd`.

use doh_trace_common::{
    Capture, LruMap, Source, Stat, CAPTURE_COUNT, CAPTURE_SOCK_FULL, CAPTURE_SOCK_SKIP,
    CAPTURE_TLS_FULL, CAPTURE_TLS_SKIP, DIR_EGRESS, IO_COPY, IO_COUNT_ONLY, UNCLASSIFIED_BUDGET,
};

use crate::{
    emit::{bump, Wake},
    lru,
    maps::{fd_key, CAPTURE},
};

/// How many of a call's `total` bytes may be copied, by the connection's capture policy:
/// all when classified as DNS, none when classified as not DNS, and while unclassified what is
/// left of [`UNCLASSIFIED_BUDGET`] for this layer. Only bytes of a connection classified as DNS
/// wait for a batch.
#[inline(always)]
pub fn allowance(tgid: u32, fd: i32, source: u32, total: u32) -> (u32, Wake) {
    if fd < 0 {
        return (total, Wake::Now);
    }
    let key = fd_key(tgid, fd);
    lru::mark(&CAPTURE, LruMap::Capture, &key, &Capture::default());
    let Some(cap) = CAPTURE.get_ptr_mut(key) else {
        return (total, Wake::Now);
    };
    let cap = unsafe { &mut *cap };
    let tls = source != Source::Socket as u32;
    let (skip, full) = if tls {
        (CAPTURE_TLS_SKIP, CAPTURE_TLS_FULL)
    } else {
        (CAPTURE_SOCK_SKIP, CAPTURE_SOCK_FULL)
    };
    if cap.policy & skip != 0 {
        return (0, Wake::Batched);
    }
    if cap.policy & full != 0 {
        return (total, Wake::Batched);
    }
    let copied = if tls { cap.tls_copied } else { cap.sock_copied };
    let left = UNCLASSIFIED_BUDGET.saturating_sub(copied);
    let n = if total < left { total } else { left };
    if tls {
        cap.tls_copied = copied + n;
    } else {
        cap.sock_copied = copied + n;
    }
    if n < total {
        bump(Stat::UnclassifiedBytes, (total - n) as u64);
    }
    (n, Wake::Now)
}

/// Adds a finished call's bytes to a counted connection's totals.
#[inline(always)]
pub fn count_bytes(key: u64, direction: u32, n: u64) {
    if let Some(cap) = CAPTURE.get_ptr_mut(key) {
        let cap = unsafe { &mut *cap };
        if cap.policy & CAPTURE_COUNT != 0 {
            if direction == DIR_EGRESS {
                cap.sent += n;
            } else {
                cap.received += n;
            }
        }
    }
}

/// How the bytes of a socket I/O call outside TLS calls are handled on a tracked connection:
/// copied (`IO_COPY`, as far as [`allowance`] allows), only counted (`IO_COUNT_ONLY`), or not
/// at all (None) once userspace said it wants none of them.
#[inline(always)]
pub fn tracked_socket_mode(key: u64) -> Option<u32> {
    match unsafe { CAPTURE.get(key) } {
        Some(c) if c.policy & CAPTURE_SOCK_SKIP != 0 => {
            (c.policy & CAPTURE_COUNT != 0).then_some(IO_COUNT_ONLY)
        }
        _ => Some(IO_COPY),
    }
}
