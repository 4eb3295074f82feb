//! Building events and putting them on the ring buffer; counting what could not be.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE},
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_ns,
        generated::bpf_probe_read_user,
    },
};
use doh_trace_common::{
    Capture, CloseEvent, ConnBytesEvent, ConnEvent, DataEvent, DatagramEvent, EventHeader,
    EventKind, ExitEvent, LruMap, Source, Stat, AF_INET, AF_INET6, CHUNK_SIZE, COMM_LEN,
    DATAGRAM_EVENT_HEADER_SIZE, DATA_BUDGET_CUT, DATA_EVENT_HEADER_SIZE, MAX_CHUNKS_PER_CALL,
};

use crate::{
    capture::allowance,
    lru,
    maps::{
        fd_key, tracer_draining, CAPTURE, DGRAM_SCRATCH, DNS_PORTS, EVENTS, SCRATCH, STATS,
        TRACKED_FDS, TRACKED_TGIDS,
    },
};

/// When the tracer is woken for a record. A wakeup per record cost the tracer more CPU than
/// decoding it, so the bytes of connections already classified wait for a batch; whatever makes
/// the tracer read /proc or attach hooks wakes it at once, while the process is surely alive.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// At once: a new connection, a process's first datagram, bytes of a connection not yet
    /// classified (the tracer reads the process and socket when it classifies), an exec.
    Now,
    /// While the tracer drains the ring on its own timer (`doh-trace/src/bin/doh-trace/live/drain_timer.rs`,
    /// every 10 ms while records flow): when that timer comes, or when an eighth of the ring
    /// waits. An idle tracer has no timer and is woken at once. Order is
    /// kept: a record woken for brings every record before it.
    Batched,
}

impl Wake {
    /// The flags of `bpf_ringbuf_output`/`submit` for this record. A wakeup must be forced: the
    /// kernel's default wakes only a reader that had caught up, and one with batched records
    /// waiting has not.
    #[inline(always)]
    fn flags(self) -> u64 {
        if self == Wake::Now
            || !tracer_draining()
            || EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= EVENTS.query(BPF_RB_RING_SIZE as u64) / 8
        {
            BPF_RB_FORCE_WAKEUP as u64
        } else {
            BPF_RB_NO_WAKEUP as u64
        }
    }
}

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
        lru::mark(&TRACKED_FDS, LruMap::TrackedFds, &fd_key(tgid, fd), &1);
    }
    lru::mark(&TRACKED_TGIDS, LruMap::TrackedTgids, &tgid, &1);
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
    let Some((ev, allowed, wake)) = begin_call(d) else {
        return;
    };
    let mut chunks = MAX_CHUNKS_PER_CALL;
    let copied = emit_range(ev, d.buf, 0, allowed, &mut chunks, wake);
    if allowed > copied {
        bump(Stat::TruncatedBytes, (allowed - copied) as u64);
    }
}

/// Prepares the scratch data event for one call: fills its header and returns it with the
/// number of the call's bytes the capture policy allows to copy (None when none) and when its
/// chunks wake the tracer.
#[inline(always)]
pub fn begin_call(d: &DataSpec) -> Option<(&'static mut DataEvent, u32, Wake)> {
    let ev = SCRATCH.get_ptr_mut(0)?;
    let ev: &mut DataEvent = unsafe { &mut *ev };
    ev.header = header(EventKind::Data);
    let (allowed, wake) = allowance(ev.header.tgid, d.fd, d.source, d.total_len);
    if allowed == 0 {
        return None;
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
    Some((ev, allowed, wake))
}

/// Emits `len` bytes at user address `buf` as the call's bytes from `offset` on, in chunks,
/// using at most `*chunks` of them (decremented). Returns how many bytes were handed out
/// (emitted or counted as lost).
#[inline(always)]
pub fn emit_range(
    ev: &mut DataEvent,
    buf: u64,
    offset: u32,
    len: u32,
    chunks: &mut u32,
    wake: Wake,
) -> u32 {
    let mut done: u32 = 0;
    let mut i: u32 = 0;
    while i < MAX_CHUNKS_PER_CALL {
        if done >= len || *chunks == 0 {
            break;
        }
        let mut n = len - done;
        if n > CHUNK_SIZE as u32 {
            n = CHUNK_SIZE as u32;
        }
        emit_chunk(ev, buf + done as u64, offset + done, n, wake);
        done += n;
        *chunks -= 1;
        i += 1;
    }
    done
}

/// Copies `n` (≤ `CHUNK_SIZE`) bytes at user address `src` into the event as the call's bytes
/// at `offset`, and puts the event on the ring buffer (failures counted).
#[inline(always)]
pub fn emit_chunk(ev: &mut DataEvent, src: u64, offset: u32, n: u32, wake: Wake) {
    ev.offset = offset;
    ev.len = n;
    let data = ev.data.as_mut_ptr();
    submit_chunk(
        ev as *const DataEvent as *const u8,
        data,
        DATA_EVENT_HEADER_SIZE,
        src,
        n,
        wake,
    );
}

/// Puts a record with a trailing data array on the ring buffer: copies `n` (≤ `CHUNK_SIZE`)
/// bytes at user address `src` into `data` (the record's array), then submits the record cut
/// after them (`header_size` bytes precede the array). Failed reads and a full ring are
/// counted. Returns whether the record was submitted.
#[inline(always)]
fn submit_chunk(
    record: *const u8,
    data: *mut u8,
    header_size: usize,
    src: u64,
    n: u32,
    wake: Wake,
) -> bool {
    // `n` is at most CHUNK_SIZE; the mask restates that bound for the verifier.
    let m = n & (2 * CHUNK_SIZE as u32 - 1);
    let m = if m > CHUNK_SIZE as u32 {
        CHUNK_SIZE as u32
    } else {
        m
    };
    if m > 0
        && unsafe {
            bpf_probe_read_user(
                data as *mut core::ffi::c_void,
                m,
                src as *const core::ffi::c_void,
            )
        } != 0
    {
        bump(Stat::ReadErrors, 1);
        return false;
    }
    let bytes = unsafe { core::slice::from_raw_parts(record, header_size + m as usize) };
    if EVENTS.output::<[u8]>(bytes, wake.flags()).is_err() {
        bump(Stat::RingbufDrops, 1);
        return false;
    }
    true
}

/// A peer address read from a user `struct sockaddr`.
#[derive(Clone, Copy)]
pub struct Peer {
    pub family: u16,
    pub port: u16,
    pub addr: [u8; 16],
}

/// Reads an IPv4/IPv6 `struct sockaddr` from user memory (None for other families).
#[inline(always)]
pub fn read_sockaddr(ptr: u64) -> Option<Peer> {
    if ptr == 0 {
        return None;
    }
    let family = unsafe { aya_ebpf::helpers::bpf_probe_read_user(ptr as *const u16) }.ok()?;
    let port = unsafe { aya_ebpf::helpers::bpf_probe_read_user((ptr + 2) as *const u16) }
        .map(u16::from_be)
        .ok()?;
    let mut addr = [0u8; 16];
    match family {
        // struct sockaddr_in { u16 family; be16 port; u8 addr[4]; ... }
        AF_INET => {
            let a = unsafe { aya_ebpf::helpers::bpf_probe_read_user((ptr + 4) as *const [u8; 4]) }
                .ok()?;
            addr[..4].copy_from_slice(&a);
        }
        // struct sockaddr_in6 { u16 family; be16 port; u32 flowinfo; u8 addr[16]; ... }
        AF_INET6 => {
            addr = unsafe { aya_ebpf::helpers::bpf_probe_read_user((ptr + 8) as *const [u8; 16]) }
                .ok()?;
        }
        _ => return None,
    }
    Some(Peer { family, port, addr })
}

/// Whether datagrams to or from this port are DNS.
#[inline(always)]
pub fn is_dns_port(port: u16) -> bool {
    unsafe { DNS_PORTS.get(port) }.is_some()
}

/// Emits one datagram exchanged with `peer` on an untracked socket: the first `CHUNK_SIZE` of
/// `avail` bytes at `buf` (the rest of `total` is counted as truncated). A process's first
/// datagram wakes the tracer at once.
#[inline(always)]
pub fn emit_datagram(fd: i32, direction: u32, peer: &Peer, buf: u64, avail: u32, total: u32) {
    let Some(ev) = DGRAM_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let ev: &mut DatagramEvent = unsafe { &mut *ev };
    ev.header = header(EventKind::Datagram);
    ev.fd = fd;
    ev.direction = direction;
    ev.family = peer.family;
    ev.port = peer.port;
    ev.addr = peer.addr;
    ev.total_len = total;
    ev._pad = 0;
    ev.comm = comm();
    let mut n = if avail < total { avail } else { total };
    if n > CHUNK_SIZE as u32 {
        n = CHUNK_SIZE as u32;
    }
    if n < total {
        bump(Stat::TruncatedBytes, (total - n) as u64);
    }
    ev.len = n;
    // A process's first datagram wakes the tracer at once (it reads the process then).
    let known = unsafe { TRACKED_TGIDS.get(ev.header.tgid) }.is_some();
    let wake = if known { Wake::Batched } else { Wake::Now };
    let data = ev.data.as_mut_ptr();
    let record = ev as *const DatagramEvent as *const u8;
    if submit_chunk(record, data, DATAGRAM_EVENT_HEADER_SIZE, buf, n, wake) {
        bump(Stat::Datagrams, 1);
        lru::mark(&TRACKED_TGIDS, LruMap::TrackedTgids, &ev.header.tgid, &1);
    }
}

/// Reports the byte totals of a counted connection that is closing.
#[inline(always)]
pub fn emit_conn_bytes(fd: i32, cap: &Capture) {
    output(
        ConnBytesEvent {
            header: header(EventKind::ConnBytes),
            fd,
            _pad: 0,
            sent: cap.sent,
            received: cap.received,
        },
        Wake::Batched,
    );
}

/// Puts a fixed-size record on the ring buffer, counting a drop when it is full.
#[inline(always)]
fn output<T: 'static>(value: T, wake: Wake) {
    match EVENTS.reserve::<T>(0) {
        Some(mut slot) => {
            slot.write(value);
            slot.submit(wake.flags());
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
    lru::remove(&CAPTURE, LruMap::Capture, &fd_key(header.tgid, fd));
    output(
        ConnEvent {
            header,
            fd,
            how,
            ret,
            family,
            port,
            addr,
            comm: comm(),
        },
        Wake::Now,
    );
}

/// Reports the close of a tracked socket fd.
#[inline(always)]
pub fn emit_close(fd: i32) {
    output(
        CloseEvent {
            header: header(EventKind::Close),
            fd,
            _pad: 0,
        },
        Wake::Batched,
    );
}

/// Reports the exit of a tracked process.
#[inline(always)]
pub fn emit_exit() {
    output(
        ExitEvent {
            header: header(EventKind::Exit),
        },
        Wake::Batched,
    );
}

/// Reports that a tracked process exec'd (a header-only record). The tracer hooks the new
/// program's TLS stacks, so it is woken at once.
#[inline(always)]
pub fn emit_exec() {
    output(
        ExitEvent {
            header: header(EventKind::Exec),
        },
        Wake::Now,
    );
}
