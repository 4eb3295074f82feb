//! Building events and putting them on the ring buffer; counting what could not be.

use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_ns,
    generated::bpf_probe_read_user,
};
use doh_trace_common::{
    Capture, CloseEvent, ConnEvent, DataEvent, EventHeader, EventKind, ExitEvent, Source, Stat,
    CAPTURE_SOCK_FULL, CAPTURE_SOCK_SKIP, CAPTURE_TLS_FULL, CAPTURE_TLS_SKIP, CHUNK_SIZE, COMM_LEN,
    DATA_BUDGET_CUT, DATA_EVENT_HEADER_SIZE, MAX_CHUNKS_PER_CALL, UNCLASSIFIED_BUDGET,
};

use crate::maps::{fd_key, CAPTURE, EVENTS, SCRATCH, STATS, TRACKED_FDS, TRACKED_TGIDS};

/// Adds `by` to a per-CPU counter.
#[inline(always)]
pub fn bump(stat: Stat, by: u64) {
    if let Some(slot) = STATS.get_ptr_mut(stat as u32) {
        unsafe { *slot += by };
    }
}

/// The common header for an event of `kind` produced by the current task.
#[inline(always)]
pub fn header(kind: EventKind) -> EventHeader {
    let pid_tgid = bpf_get_current_pid_tgid();
    EventHeader {
        kind: kind as u32,
        tgid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        uid: bpf_get_current_uid_gid() as u32,
        ts_ns: unsafe { bpf_ktime_get_ns() },
    }
}

#[inline(always)]
fn comm() -> [u8; COMM_LEN] {
    bpf_get_current_comm().unwrap_or([0; COMM_LEN])
}

/// Remembers that userspace knows about this socket, so its close is reported.
#[inline(always)]
pub fn track_fd(tgid: u32, fd: i32) {
    if fd >= 0 {
        let _ = TRACKED_FDS.insert(&fd_key(tgid, fd), &1, 0);
    }
    let _ = TRACKED_TGIDS.insert(&tgid, &1, 0);
}

/// Whether userspace asked to stop copying socket bytes of this connection.
#[inline(always)]
pub fn socket_bytes_skipped(key: u64) -> bool {
    unsafe { CAPTURE.get(&key) }.is_some_and(|c| c.policy & CAPTURE_SOCK_SKIP != 0)
}

/// How many of a call's `total` bytes may be copied, by the connection's capture policy:
/// all when classified as DNS, none when classified as not DNS, and while unclassified what is
/// left of [`UNCLASSIFIED_BUDGET`] for this layer.
#[inline(always)]
fn allowance(tgid: u32, fd: i32, source: u32, total: u32) -> u32 {
    if fd < 0 {
        return total;
    }
    let key = fd_key(tgid, fd);
    if unsafe { CAPTURE.get(&key) }.is_none() {
        let _ = CAPTURE.insert(&key, &Capture::default(), 0);
    }
    let Some(cap) = CAPTURE.get_ptr_mut(&key) else {
        return total;
    };
    let cap = unsafe { &mut *cap };
    let tls = source != Source::Socket as u32;
    let (skip, full) = if tls {
        (CAPTURE_TLS_SKIP, CAPTURE_TLS_FULL)
    } else {
        (CAPTURE_SOCK_SKIP, CAPTURE_SOCK_FULL)
    };
    if cap.policy & skip != 0 {
        return 0;
    }
    if cap.policy & full != 0 {
        return total;
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
    n
}

/// Describes where a call's bytes are and which connection they belong to.
pub struct DataSpec {
    pub source: u32,
    pub direction: u32,
    pub flags: u32,
    pub fd: i32,
    pub tls_obj: u64,
    pub buf: u64,
    pub total_len: u32,
}

/// Copies a call's bytes to the ring buffer in chunks of at most `CHUNK_SIZE` bytes, as far as
/// the connection's capture policy allows. Bytes past `MAX_CHUNKS_PER_CALL` chunks are counted
/// as truncated; lost chunks are counted.
#[inline(always)]
pub fn emit_data(d: &DataSpec) {
    let Some(ev) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let ev: &mut DataEvent = unsafe { &mut *ev };
    ev.header = header(EventKind::Data);
    let allowed = allowance(ev.header.tgid, d.fd, d.source, d.total_len);
    if allowed == 0 {
        return;
    }
    ev.fd = d.fd;
    ev.source = d.source;
    ev.direction = d.direction;
    ev.flags = d.flags
        | if allowed < d.total_len {
            DATA_BUDGET_CUT
        } else {
            0
        };
    ev.tls_obj = d.tls_obj;
    ev.total_len = d.total_len;
    ev._pad = 0;
    ev.comm = comm();
    track_fd(ev.header.tgid, d.fd);
    if d.source != Source::Socket as u32 {
        bump(Stat::TlsCalls, 1);
    }

    let total = allowed;
    let mut i: u32 = 0;
    while i < MAX_CHUNKS_PER_CALL {
        let offset = i * CHUNK_SIZE as u32;
        if offset >= total {
            return;
        }
        let mut len = total - offset;
        if len > CHUNK_SIZE as u32 {
            len = CHUNK_SIZE as u32;
        }
        ev.offset = offset;
        ev.len = len;
        let src = (d.buf + offset as u64) as *const core::ffi::c_void;
        let dst = ev.data.as_mut_ptr() as *mut core::ffi::c_void;
        // `len` is in 1..=CHUNK_SIZE; the mask restates that bound for the verifier.
        let n = len & (2 * CHUNK_SIZE as u32 - 1);
        let n = if n > CHUNK_SIZE as u32 {
            CHUNK_SIZE as u32
        } else {
            n
        };
        if unsafe { bpf_probe_read_user(dst, n, src) } != 0 {
            bump(Stat::ReadErrors, 1);
        } else {
            let size = DATA_EVENT_HEADER_SIZE + n as usize;
            let bytes =
                unsafe { core::slice::from_raw_parts(ev as *const DataEvent as *const u8, size) };
            if EVENTS.output::<[u8]>(bytes, 0).is_err() {
                bump(Stat::RingbufDrops, 1);
            }
        }
        i += 1;
    }
    let copied = MAX_CHUNKS_PER_CALL * CHUNK_SIZE as u32;
    if total > copied {
        bump(Stat::TruncatedBytes, (total - copied) as u64);
    }
}

/// Puts a fixed-size record on the ring buffer, counting a drop when it is full.
#[inline(always)]
fn output<T: 'static>(value: T) {
    match EVENTS.reserve::<T>(0) {
        Some(mut slot) => {
            slot.write(value);
            slot.submit(0);
        }
        None => bump(Stat::RingbufDrops, 1),
    }
}

/// Reports a connected or accepted internet socket.
#[inline(always)]
pub fn emit_conn(fd: i32, how: u32, ret: i32, family: u16, port: u16, addr: [u8; 16]) {
    let header = header(EventKind::Conn);
    track_fd(header.tgid, fd);
    // A new socket on this fd starts unclassified.
    let _ = CAPTURE.remove(&fd_key(header.tgid, fd));
    output(ConnEvent {
        header,
        fd,
        how,
        ret,
        family,
        port,
        addr,
        comm: comm(),
    });
}

/// Reports the close of a tracked socket fd.
#[inline(always)]
pub fn emit_close(fd: i32) {
    output(CloseEvent {
        header: header(EventKind::Close),
        fd,
        _pad: 0,
    });
}

/// Reports the exit of a tracked process.
#[inline(always)]
pub fn emit_exit() {
    output(ExitEvent {
        header: header(EventKind::Exit),
    });
}

/// Reports that a tracked process exec'd (a header-only record).
#[inline(always)]
pub fn emit_exec() {
    output(ExitEvent {
        header: header(EventKind::Exec),
    });
}
