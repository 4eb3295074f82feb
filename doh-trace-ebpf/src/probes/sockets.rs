//! Socket syscalls (tracepoints): which fd a TLS call used, the bytes of socket I/O made
//! outside TLS calls on tracked internet sockets (bounded by the capture policy), connect/accept
//! peers, closes.
//!
//! Syscall tracepoint records hold the `__syscall_nr` at offset 8 and the arguments as 8-byte
//! slots from offset 16; `sys_exit_*` records hold `ret` at offset 16.

use aya_ebpf::{
    bindings::pt_regs,
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_kernel, bpf_probe_read_user,
        generated::{bpf_get_current_task_btf, bpf_task_pt_regs},
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use doh_trace_common::{
    LruMap, PendingSockCall, SockIo, Source, Stat, TlsCall, TlsObjKey, AF_INET, AF_INET6,
    CAPTURE_COUNT, CHUNK_SIZE, CONN_ACCEPT, CONN_CONNECT, CONN_TYPE_SHIFT, DIR_EGRESS, DIR_INGRESS,
    IO_COPY, IO_COUNT_ONLY, IO_DATAGRAM, IO_FLAT, IO_IOVEC, IO_MMSG, IO_MSG, MAX_CHUNKS_PER_CALL,
    MAX_IOV, MAX_MMSG, SOCK_DGRAM, SOCK_STREAM,
};

use crate::{
    capture::{count_bytes, tracked_socket_mode},
    emit::{
        begin_call, bump, emit_chunk, emit_close, emit_conn, emit_conn_bytes, emit_datagram,
        emit_range, is_dns_port, read_sockaddr, DataSpec,
    },
    lru,
    maps::{
        fd_key, in_scope, CAPTURE, GO_CALLS, GO_TGIDS, SOCKETS_OPENING, SOCK_CALLS, SOCK_IO,
        SOCK_TYPES, TLS_CALLS, TRACKED_FDS,
    },
};

const ARG0: usize = 16;
const ARG1: usize = 24;
const ARG2: usize = 32;
const ARG3: usize = 40;
const ARG4: usize = 48;
const RET: usize = 16;
const EINPROGRESS: i64 = 115;
/// `MSG_PEEK`: the bytes stay queued and are read again, so a peek is never copied nor counted
/// (Chromium checks an idle socket with a one-byte peek; resolvers peek a datagram's size).
const MSG_PEEK: u64 = 0x2;

/// `struct msghdr` (user ABI, 64-bit): `msg_name` at 0, `msg_iov` at 16, `msg_iovlen` at 24.
const MSG_NAME: u64 = 0;
const MSG_IOV: u64 = 16;
const MSG_IOVLEN: u64 = 24;
/// `struct mmsghdr`: a msghdr (56 bytes), then `unsigned int msg_len`; 64 bytes in all.
const MMSG_LEN: u64 = 56;
const MMSG_SIZE: u64 = 64;

#[inline(always)]
fn arg_u64(ctx: &TracePointContext, offset: usize) -> u64 {
    unsafe { ctx.read_at::<u64>(offset) }.unwrap_or(0)
}

#[inline(always)]
fn user_u64(addr: u64) -> Option<u64> {
    unsafe { bpf_probe_read_user(addr as *const u64) }.ok()
}

/// At I/O syscall entry: inside a TLS call of the same direction, records the fd the call
/// uses. Outside TLS calls, saves what the exit tracepoint needs: on a tracked internet socket
/// whose bytes are still wanted (or counted), the buffer; on an untracked socket, a datagram
/// that may be going to or coming from a DNS port. `addr_slot` is the tracepoint offset of a
/// flat call's `struct sockaddr *` argument (sendto, recvfrom) or of readv/writev's iovec
/// count, or 0; `flags_slot` that of a receive's `flags` (a peek moves nothing), or 0.
#[inline(always)]
fn io_enter(
    ctx: &TracePointContext,
    direction: u32,
    shape: u32,
    addr_slot: usize,
    flags_slot: usize,
) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if !in_scope(tgid) {
        return 0;
    }
    let fd = arg_u64(ctx, ARG0) as i32;
    if let Some(call) = TLS_CALLS.get_ptr_mut(pid_tgid) {
        let call = unsafe { &mut *call };
        if call.direction == direction && call.fd < 0 {
            call.fd = fd;
        }
        return 0;
    }
    if unsafe { GO_TGIDS.get(tgid) }.is_some() {
        if let Some(call) = current_go_call(tgid) {
            let call = unsafe { &mut *call };
            if call.direction == direction && call.fd < 0 {
                call.fd = fd;
            }
            return 0;
        }
    }
    if flags_slot != 0 && arg_u64(ctx, flags_slot) & MSG_PEEK != 0 {
        return 0;
    }
    let key = fd_key(tgid, fd);
    let mode = if unsafe { TRACKED_FDS.get(key) }.is_some() {
        match tracked_socket_mode(key) {
            Some(mode) => mode,
            None => return 0,
        }
    } else {
        IO_DATAGRAM
    };
    let io = SockIo {
        buf: arg_u64(ctx, ARG1),
        addr: if addr_slot != 0 {
            arg_u64(ctx, addr_slot)
        } else {
            0
        },
        fd,
        direction,
        shape,
        mode,
    };
    if mode == IO_DATAGRAM && !datagram_may_be_dns(&io) {
        return 0;
    }
    lru::set(&SOCK_IO, LruMap::SockIo, &pid_tgid, &io);
    0
}

/// The Go crypto/tls call of the goroutine running on this thread, if it is in one: the
/// goroutine is R14 of the user registers saved at syscall entry (Go's ABIInternal keeps `g`
/// there, and the runtime's syscall wrappers leave it alone).
#[inline(always)]
fn current_go_call(tgid: u32) -> Option<*mut TlsCall> {
    // SAFETY: helpers valid in tracing programs; the result is read with probe_read_kernel.
    let g = unsafe {
        let task = bpf_get_current_task_btf();
        let regs = bpf_task_pt_regs(task) as *const pt_regs;
        if regs.is_null() {
            return None;
        }
        bpf_probe_read_kernel(core::ptr::addr_of!((*regs).r14)).ok()?
    };
    let key = TlsObjKey {
        tgid,
        _pad: 0,
        tls_obj: g,
    };
    GO_CALLS.get_ptr_mut(key)
}

/// For an untracked socket, whether the call can be a DNS datagram: it names a peer address,
/// and (for a send, where the address is already filled in) that address is on a DNS port.
#[inline(always)]
fn datagram_may_be_dns(io: &SockIo) -> bool {
    let name = match io.shape {
        IO_FLAT => io.addr,
        IO_MSG => user_u64(io.buf + MSG_NAME).unwrap_or(0),
        // Each message names its own peer: looked at, message by message, at exit.
        IO_MMSG => return true,
        _ => 0,
    };
    if name == 0 {
        return false;
    }
    if io.direction == DIR_INGRESS {
        // Filled in by the kernel: known at exit.
        return true;
    }
    read_sockaddr(name).is_some_and(|p| is_dns_port(p.port))
}

/// The bytes of a finished call on a tracked socket: copied as far as the capture policy
/// allows, in order, as one call — from a flat buffer (`iov` 0, in up to
/// `MAX_CHUNKS_PER_CALL` chunks) or from the first `ENTRIES` entries of an iovec array (one
/// chunk of each entry; what an entry holds beyond it is counted, and userspace sees the gap).
/// One chunk per entry keeps the loop flat enough for the verifier.
#[inline(always)]
fn copy_call<const ENTRIES: u32>(io: &SockIo, iov: u64, iovcnt: u64, total: u32) {
    let spec = DataSpec {
        source: Source::Socket as u32,
        direction: io.direction,
        flags: 0,
        fd: io.fd,
        tls_obj: 0,
        buf: io.buf,
        total_len: total,
    };
    let Some((ev, allowed, wake)) = begin_call(&spec) else {
        return;
    };
    if iov == 0 {
        let mut chunks = MAX_CHUNKS_PER_CALL;
        let done = emit_range(ev, io.buf, 0, allowed, &mut chunks, wake);
        if allowed > done {
            bump(Stat::TruncatedBytes, (allowed - done) as u64);
        }
        return;
    }
    // Position in the call of the next entry's first byte; bytes cut from entries.
    let mut pos: u32 = 0;
    let mut cut: u32 = 0;
    let mut i: u32 = 0;
    while i < ENTRIES {
        if pos >= allowed || i as u64 >= iovcnt {
            break;
        }
        let entry = iov + 16 * i as u64;
        let (Some(base), Some(len)) = (user_u64(entry), user_u64(entry + 8)) else {
            bump(Stat::VectoredIoSkipped, 1);
            break;
        };
        let left = allowed - pos;
        let part = if len < left as u64 { len as u32 } else { left };
        let n = if part > CHUNK_SIZE as u32 {
            CHUNK_SIZE as u32
        } else {
            part
        };
        if n > 0 {
            emit_chunk(ev, base, pos, n, wake);
        }
        cut += part - n;
        pos += part;
        i += 1;
    }
    // Bytes of entries cut at one chunk, or past the entries looked at.
    let lost = cut as u64 + (allowed - pos) as u64;
    if lost > 0 {
        bump(Stat::TruncatedBytes, lost);
    }
}

/// One message of a finished `sendmsg`/`recvmsg`/`sendmmsg`/`recvmmsg`: `total` bytes moved
/// through the msghdr at `msg`.
#[inline(always)]
fn finish_msg<const ENTRIES: u32>(io: &SockIo, msg: u64, total: u32) {
    let iov = user_u64(msg + MSG_IOV).unwrap_or(0);
    let iovcnt = user_u64(msg + MSG_IOVLEN).unwrap_or(0);
    if iov == 0 {
        bump(Stat::VectoredIoSkipped, 1);
        return;
    }
    if io.mode == IO_COPY {
        copy_call::<ENTRIES>(io, iov, iovcnt, total);
        return;
    }
    // Untracked: a datagram, if its peer is on a DNS port. DNS messages sit in the first iovec.
    let Some(peer) = read_sockaddr(user_u64(msg + MSG_NAME).unwrap_or(0)) else {
        return;
    };
    if !is_dns_port(peer.port) {
        return;
    }
    let (Some(base), Some(len)) = (user_u64(iov), user_u64(iov + 8)) else {
        bump(Stat::VectoredIoSkipped, 1);
        return;
    };
    let avail = if len > total as u64 {
        total
    } else {
        len as u32
    };
    emit_datagram(io.fd, io.direction, &peer, base, avail, total);
}

/// At I/O syscall exit: the call saved at entry, if any, with its return value (None when
/// nothing was moved). Counts the bytes of counted connections.
#[inline(always)]
fn io_exit_begin(ctx: &TracePointContext) -> Option<(SockIo, u32)> {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !in_scope((pid_tgid >> 32) as u32) {
        return None;
    }
    let io = (unsafe { SOCK_IO.get(pid_tgid) }).copied()?;
    lru::remove(&SOCK_IO, LruMap::SockIo, &pid_tgid);
    let ret = arg_u64(ctx, RET) as i64;
    if ret <= 0 || io.buf == 0 {
        return None;
    }
    let ret = if ret > u32::MAX as i64 {
        u32::MAX
    } else {
        ret as u32
    };
    Some((io, ret))
}

#[inline(always)]
fn key_of(io: &SockIo) -> u64 {
    fd_key((bpf_get_current_pid_tgid() >> 32) as u32, io.fd)
}

/// Exit of read/write/sendto/recvfrom.
#[inline(always)]
fn io_exit_flat(ctx: &TracePointContext) -> u32 {
    let Some((io, ret)) = io_exit_begin(ctx) else {
        return 0;
    };
    match io.mode {
        IO_COPY => {
            count_bytes(key_of(&io), io.direction, ret as u64);
            copy_call::<0>(&io, 0, 0, ret);
        }
        IO_COUNT_ONLY => count_bytes(key_of(&io), io.direction, ret as u64),
        _ => {
            if let Some(peer) = read_sockaddr(io.addr) {
                if is_dns_port(peer.port) {
                    emit_datagram(io.fd, io.direction, &peer, io.buf, ret, ret);
                }
            }
        }
    }
    0
}

/// Exit of readv/writev (tracked sockets only; the iovec count was kept in `addr`).
#[inline(always)]
fn io_exit_iovec(ctx: &TracePointContext) -> u32 {
    let Some((io, ret)) = io_exit_begin(ctx) else {
        return 0;
    };
    count_bytes(key_of(&io), io.direction, ret as u64);
    if io.mode == IO_COPY {
        copy_call::<MAX_IOV>(&io, io.buf, io.addr, ret);
    }
    0
}

/// Exit of sendmsg/recvmsg.
#[inline(always)]
fn io_exit_msg(ctx: &TracePointContext) -> u32 {
    let Some((io, ret)) = io_exit_begin(ctx) else {
        return 0;
    };
    if io.mode != IO_DATAGRAM {
        count_bytes(key_of(&io), io.direction, ret as u64);
    }
    if io.mode != IO_COUNT_ONLY {
        finish_msg::<MAX_IOV>(&io, io.buf, ret);
    }
    0
}

/// Exit of sendmmsg/recvmmsg: the return value is a message count, each message's size is in
/// its `msg_len`; of each message the first chunk of its first iovec is copied (a DNS message).
#[inline(always)]
fn io_exit_mmsg(ctx: &TracePointContext) -> u32 {
    let Some((io, ret)) = io_exit_begin(ctx) else {
        return 0;
    };
    let mut moved: u64 = 0;
    let mut i: u32 = 0;
    while i < MAX_MMSG {
        if i >= ret {
            break;
        }
        let msg = io.buf + MMSG_SIZE * i as u64;
        let len = unsafe { bpf_probe_read_user((msg + MMSG_LEN) as *const u32) }.unwrap_or(0);
        moved += len as u64;
        if io.mode != IO_COUNT_ONLY && len > 0 {
            finish_msg::<1>(&io, msg, len);
        }
        i += 1;
    }
    if ret > MAX_MMSG {
        // Messages past the ones looked at: not copied.
        bump(Stat::VectoredIoSkipped, (ret - MAX_MMSG) as u64);
    }
    if io.mode != IO_DATAGRAM {
        count_bytes(key_of(&io), io.direction, moved);
    }
    0
}

/// ssize_t write(int fd, const void *buf, size_t count)
#[tracepoint]
pub fn sys_enter_write(ctx: TracePointContext) -> u32 {
    io_enter(&ctx, DIR_EGRESS, IO_FLAT, 0, 0)
}

/// Return of write.
#[tracepoint]
pub fn sys_exit_write(ctx: TracePointContext) -> u32 {
    io_exit_flat(&ctx)
}

/// ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
#[tracepoint]
pub fn sys_enter_writev(ctx: TracePointContext) -> u32 {
    io_enter(&ctx, DIR_EGRESS, IO_IOVEC, ARG2, 0)
}

/// Return of writev.
#[tracepoint]
pub fn sys_exit_writev(ctx: TracePointContext) -> u32 {
    io_exit_iovec(&ctx)
}

/// ssize_t sendto(int fd, const void *buf, size_t len, int flags,
///                const struct sockaddr *dest_addr, socklen_t addrlen)
#[tracepoint]
pub fn sys_enter_sendto(ctx: TracePointContext) -> u32 {
    io_enter(&ctx, DIR_EGRESS, IO_FLAT, ARG4, 0)
}

/// Return of sendto.
#[tracepoint]
pub fn sys_exit_sendto(ctx: TracePointContext) -> u32 {
    io_exit_flat(&ctx)
}

/// ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
#[tracepoint]
pub fn sys_enter_sendmsg(ctx: TracePointContext) -> u32 {
    io_enter(&ctx, DIR_EGRESS, IO_MSG, 0, 0)
}

/// Return of sendmsg.
#[tracepoint]
pub fn sys_exit_sendmsg(ctx: TracePointContext) -> u32 {
    io_exit_msg(&ctx)
}

/// int sendmmsg(int fd, struct mmsghdr *msgvec, unsigned int vlen, int flags)
#[tracepoint]
pub fn sys_enter_sendmmsg(ctx: TracePointContext) -> u32 {
    io_enter(&ctx, DIR_EGRESS, IO_MMSG, 0, 0)
}

/// Return of sendmmsg.
#[tracepoint]
pub fn sys_exit_sendmmsg(ctx: TracePointContext) -> u32 {
    io_exit_mmsg(&ctx)
}

/// ssize_t read(int fd, void *buf, size_t count)
#[tracepoint]
pub fn sys_enter_read(ctx: TracePointContext) -> u32 {
    io_enter(&ctx, DIR_INGRESS, IO_FLAT, 0, 0)
}

/// Return of read.
#[tracepoint]
pub fn sys_exit_read(ctx: TracePointContext) -> u32 {
    io_exit_flat(&ctx)
}

/// ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
#[tracepoint]
pub fn sys_enter_readv(ctx: TracePointContext) -> u32 {
    io_enter(&ctx, DIR_INGRESS, IO_IOVEC, ARG2, 0)
}

/// Return of readv.
#[tracepoint]
pub fn sys_exit_readv(ctx: TracePointContext) -> u32 {
    io_exit_iovec(&ctx)
}

/// ssize_t recvfrom(int fd, void *buf, size_t len, int flags,
///                  struct sockaddr *src_addr, socklen_t *addrlen)
#[tracepoint]
pub fn sys_enter_recvfrom(ctx: TracePointContext) -> u32 {
    io_enter(&ctx, DIR_INGRESS, IO_FLAT, ARG4, ARG3)
}

/// Return of recvfrom.
#[tracepoint]
pub fn sys_exit_recvfrom(ctx: TracePointContext) -> u32 {
    io_exit_flat(&ctx)
}

/// ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
#[tracepoint]
pub fn sys_enter_recvmsg(ctx: TracePointContext) -> u32 {
    io_enter(&ctx, DIR_INGRESS, IO_MSG, 0, ARG2)
}

/// Return of recvmsg.
#[tracepoint]
pub fn sys_exit_recvmsg(ctx: TracePointContext) -> u32 {
    io_exit_msg(&ctx)
}

/// int recvmmsg(int fd, struct mmsghdr *msgvec, unsigned int vlen, int flags,
///              struct __kernel_timespec *timeout)
#[tracepoint]
pub fn sys_enter_recvmmsg(ctx: TracePointContext) -> u32 {
    io_enter(&ctx, DIR_INGRESS, IO_MMSG, 0, ARG3)
}

/// Return of recvmmsg.
#[tracepoint]
pub fn sys_exit_recvmmsg(ctx: TracePointContext) -> u32 {
    io_exit_mmsg(&ctx)
}

/// int socket(int family, int type, int protocol): remembers the type of internet sockets.
#[tracepoint]
pub fn sys_enter_socket(ctx: TracePointContext) -> u32 {
    let family = arg_u64(&ctx, ARG0) as u16;
    if family != AF_INET && family != AF_INET6 {
        return 0;
    }
    // SOCK_NONBLOCK and SOCK_CLOEXEC share the argument with the type.
    let sock_type = match arg_u64(&ctx, ARG1) as u32 & 0xf {
        1 => SOCK_STREAM,
        2 => SOCK_DGRAM,
        _ => return 0,
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    if !in_scope((pid_tgid >> 32) as u32) {
        return 0;
    }
    lru::set(
        &SOCKETS_OPENING,
        LruMap::SocketsOpening,
        &pid_tgid,
        &sock_type,
    );
    0
}

/// Return of socket.
#[tracepoint]
pub fn sys_exit_socket(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !in_scope((pid_tgid >> 32) as u32) {
        return 0;
    }
    let Some(sock_type) = (unsafe { SOCKETS_OPENING.get(pid_tgid) }).copied() else {
        return 0;
    };
    lru::remove(&SOCKETS_OPENING, LruMap::SocketsOpening, &pid_tgid);
    let fd = arg_u64(&ctx, RET) as i64;
    if fd >= 0 {
        lru::set(
            &SOCK_TYPES,
            LruMap::SockTypes,
            &fd_key((pid_tgid >> 32) as u32, fd as i32),
            &sock_type,
        );
    }
    0
}

/// Saves connect/accept arguments for the exit tracepoint.
#[inline(always)]
fn save_sock_call(ctx: &TracePointContext, how: u32) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !in_scope((pid_tgid >> 32) as u32) {
        return 0;
    }
    let pending = PendingSockCall {
        addr_ptr: arg_u64(ctx, ARG1),
        fd: arg_u64(ctx, ARG0) as i32,
        how,
    };
    lru::set(&SOCK_CALLS, LruMap::SockCalls, &pid_tgid, &pending);
    0
}

/// Emits a connection event if the finished connect/accept involved an internet address.
#[inline(always)]
fn finish_sock_call(ctx: &TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !in_scope((pid_tgid >> 32) as u32) {
        return 0;
    }
    let Some(call) = (unsafe { SOCK_CALLS.get(pid_tgid) }).copied() else {
        return 0;
    };
    lru::remove(&SOCK_CALLS, LruMap::SockCalls, &pid_tgid);
    let ret = arg_u64(ctx, RET) as i64;
    let fd = match call.how {
        CONN_CONNECT if ret == 0 || ret == -EINPROGRESS => call.fd,
        CONN_ACCEPT if ret >= 0 => ret as i32,
        _ => return 0,
    };
    let Some(peer) = read_sockaddr(call.addr_ptr) else {
        return 0;
    };
    let tgid = (pid_tgid >> 32) as u32;
    let sock_type = if call.how == CONN_ACCEPT {
        SOCK_STREAM
    } else {
        unsafe { SOCK_TYPES.get(fd_key(tgid, fd)) }
            .copied()
            .unwrap_or(0)
    };
    let how = call.how | (sock_type << CONN_TYPE_SHIFT);
    emit_conn(fd, how, ret as i32, peer.family, peer.port, peer.addr);
    0
}

/// int connect(int fd, const struct sockaddr *uservaddr, int addrlen)
#[tracepoint]
pub fn sys_enter_connect(ctx: TracePointContext) -> u32 {
    save_sock_call(&ctx, CONN_CONNECT)
}

/// Return of connect.
#[tracepoint]
pub fn sys_exit_connect(ctx: TracePointContext) -> u32 {
    finish_sock_call(&ctx)
}

/// int accept4(int fd, struct sockaddr *upeer_sockaddr, int *upeer_addrlen, int flags)
#[tracepoint]
pub fn sys_enter_accept4(ctx: TracePointContext) -> u32 {
    save_sock_call(&ctx, CONN_ACCEPT)
}

/// Return of accept4.
#[tracepoint]
pub fn sys_exit_accept4(ctx: TracePointContext) -> u32 {
    finish_sock_call(&ctx)
}

/// int accept(int fd, struct sockaddr *upeer_sockaddr, int *upeer_addrlen)
#[tracepoint]
pub fn sys_enter_accept(ctx: TracePointContext) -> u32 {
    save_sock_call(&ctx, CONN_ACCEPT)
}

/// Return of accept.
#[tracepoint]
pub fn sys_exit_accept(ctx: TracePointContext) -> u32 {
    finish_sock_call(&ctx)
}

/// int close(unsigned int fd): reported only for fds the tracer already knows.
#[tracepoint]
pub fn sys_enter_close(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !in_scope((pid_tgid >> 32) as u32) {
        return 0;
    }
    let fd = arg_u64(&ctx, ARG0) as i32;
    let key = (pid_tgid & 0xffff_ffff_0000_0000) | fd as u32 as u64;
    // The fd's socket type goes with it: left behind, it would make a file opened later on
    // the same number look like a socket (its bytes copied), and wait for the LRU to evict
    // it. (A CAPTURE entry exists only for fds whose bytes were seen, which are tracked.)
    lru::remove_if_there(&SOCK_TYPES, LruMap::SockTypes, &key);
    if unsafe { TRACKED_FDS.get(key) }.is_some() {
        lru::remove(&TRACKED_FDS, LruMap::TrackedFds, &key);
        if let Some(cap) = unsafe { CAPTURE.get(key) } {
            if cap.policy & CAPTURE_COUNT != 0 {
                emit_conn_bytes(fd, cap);
            }
        }
        lru::remove(&CAPTURE, LruMap::Capture, &key);
        emit_close(fd);
    }
    0
}
