//! Socket syscalls (tracepoints): which fd a TLS call used, the bytes of socket I/O made
//! outside TLS calls on tracked internet sockets (bounded by the capture policy), connect/accept
//! peers, closes.
//!
//! Syscall tracepoint records hold the `__syscall_nr` at offset 8 and the arguments as 8-byte
//! slots from offset 16; `sys_exit_*` records hold `ret` at offset 16.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user},
    macros::tracepoint,
    programs::TracePointContext,
};
use doh_trace_common::{
    PendingSockCall, SockIo, Source, Stat, AF_INET, AF_INET6, CONN_ACCEPT, CONN_CONNECT,
    DIR_EGRESS, DIR_INGRESS,
};

use crate::{
    emit::{bump, emit_close, emit_conn, emit_data, socket_bytes_skipped, DataSpec},
    maps::{fd_key, tracer_tgid, CAPTURE, SOCK_CALLS, SOCK_IO, TLS_CALLS, TRACKED_FDS},
};

const ARG0: usize = 16;
const ARG1: usize = 24;
const RET: usize = 16;
const EINPROGRESS: i64 = 115;

#[inline(always)]
fn arg_u64(ctx: &TracePointContext, offset: usize) -> u64 {
    unsafe { ctx.read_at::<u64>(offset) }.unwrap_or(0)
}

/// How an I/O syscall's buffer is passed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Buffer {
    /// One buffer in the second argument: its bytes are captured outside TLS calls.
    Flat,
    /// An iovec or msghdr: not captured (counted when it concerns a tracked socket).
    Vectored,
}

/// At I/O syscall entry: inside a TLS call of the same direction, records the fd the call
/// uses; outside TLS calls, on a tracked internet socket whose bytes are still wanted, saves
/// the buffer for the exit tracepoint.
#[inline(always)]
fn io_enter(ctx: &TracePointContext, direction: u32, buffer: Buffer) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let fd = arg_u64(ctx, ARG0) as i32;
    if let Some(call) = TLS_CALLS.get_ptr_mut(&pid_tgid) {
        let call = unsafe { &mut *call };
        if call.direction == direction && call.fd < 0 {
            call.fd = fd;
        }
        return 0;
    }
    let tgid = (pid_tgid >> 32) as u32;
    if tgid == tracer_tgid() {
        return 0;
    }
    let key = fd_key(tgid, fd);
    if unsafe { TRACKED_FDS.get(&key) }.is_none() || socket_bytes_skipped(key) {
        return 0;
    }
    match buffer {
        Buffer::Vectored => bump(Stat::VectoredIoSkipped, 1),
        Buffer::Flat => {
            let io = SockIo {
                buf: arg_u64(ctx, ARG1),
                fd,
                direction,
            };
            let _ = SOCK_IO.insert(&pid_tgid, &io, 0);
        }
    }
    0
}

/// At I/O syscall exit: emits the bytes transferred by a saved socket read/write.
#[inline(always)]
fn io_exit(ctx: &TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(io) = (unsafe { SOCK_IO.get(&pid_tgid) }).copied() else {
        return 0;
    };
    let _ = SOCK_IO.remove(&pid_tgid);
    let ret = arg_u64(ctx, RET) as i64;
    if ret <= 0 || io.buf == 0 {
        return 0;
    }
    let total = if ret > u32::MAX as i64 {
        u32::MAX
    } else {
        ret as u32
    };
    emit_data(&DataSpec {
        source: Source::Socket as u32,
        direction: io.direction,
        flags: 0,
        fd: io.fd,
        tls_obj: 0,
        buf: io.buf,
        total_len: total,
    });
    0
}

/// ssize_t write(int fd, const void *buf, size_t count)
#[tracepoint]
pub fn sys_enter_write(ctx: TracePointContext) -> u32 {
    io_enter(&ctx, DIR_EGRESS, Buffer::Flat)
}

/// Return of write.
#[tracepoint]
pub fn sys_exit_write(ctx: TracePointContext) -> u32 {
    io_exit(&ctx)
}

/// ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
#[tracepoint]
pub fn sys_enter_writev(ctx: TracePointContext) -> u32 {
    io_enter(&ctx, DIR_EGRESS, Buffer::Vectored)
}

/// ssize_t sendto(int fd, const void *buf, size_t len, int flags, ...)
#[tracepoint]
pub fn sys_enter_sendto(ctx: TracePointContext) -> u32 {
    io_enter(&ctx, DIR_EGRESS, Buffer::Flat)
}

/// Return of sendto.
#[tracepoint]
pub fn sys_exit_sendto(ctx: TracePointContext) -> u32 {
    io_exit(&ctx)
}

/// ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
#[tracepoint]
pub fn sys_enter_sendmsg(ctx: TracePointContext) -> u32 {
    io_enter(&ctx, DIR_EGRESS, Buffer::Vectored)
}

/// ssize_t read(int fd, void *buf, size_t count)
#[tracepoint]
pub fn sys_enter_read(ctx: TracePointContext) -> u32 {
    io_enter(&ctx, DIR_INGRESS, Buffer::Flat)
}

/// Return of read.
#[tracepoint]
pub fn sys_exit_read(ctx: TracePointContext) -> u32 {
    io_exit(&ctx)
}

/// ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
#[tracepoint]
pub fn sys_enter_readv(ctx: TracePointContext) -> u32 {
    io_enter(&ctx, DIR_INGRESS, Buffer::Vectored)
}

/// ssize_t recvfrom(int fd, void *buf, size_t len, int flags, ...)
#[tracepoint]
pub fn sys_enter_recvfrom(ctx: TracePointContext) -> u32 {
    io_enter(&ctx, DIR_INGRESS, Buffer::Flat)
}

/// Return of recvfrom.
#[tracepoint]
pub fn sys_exit_recvfrom(ctx: TracePointContext) -> u32 {
    io_exit(&ctx)
}

/// ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
#[tracepoint]
pub fn sys_enter_recvmsg(ctx: TracePointContext) -> u32 {
    io_enter(&ctx, DIR_INGRESS, Buffer::Vectored)
}

/// Saves connect/accept arguments for the exit tracepoint.
#[inline(always)]
fn save_sock_call(ctx: &TracePointContext, how: u32) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 == tracer_tgid() {
        return 0;
    }
    let pending = PendingSockCall {
        addr_ptr: arg_u64(ctx, ARG1),
        fd: arg_u64(ctx, ARG0) as i32,
        how,
    };
    let _ = SOCK_CALLS.insert(&pid_tgid, &pending, 0);
    0
}

/// Emits a connection event if the finished connect/accept involved an internet address.
#[inline(always)]
fn finish_sock_call(ctx: &TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(call) = (unsafe { SOCK_CALLS.get(&pid_tgid) }).copied() else {
        return 0;
    };
    let _ = SOCK_CALLS.remove(&pid_tgid);
    let ret = arg_u64(ctx, RET) as i64;
    let fd = match call.how {
        CONN_CONNECT if ret == 0 || ret == -EINPROGRESS => call.fd,
        CONN_ACCEPT if ret >= 0 => ret as i32,
        _ => return 0,
    };
    if call.addr_ptr == 0 {
        return 0;
    }
    let Ok(family) = (unsafe { bpf_probe_read_user(call.addr_ptr as *const u16) }) else {
        return 0;
    };
    let port = unsafe { bpf_probe_read_user((call.addr_ptr + 2) as *const u16) }
        .map(u16::from_be)
        .unwrap_or(0);
    let mut addr = [0u8; 16];
    match family {
        // struct sockaddr_in { u16 family; be16 port; u8 addr[4]; ... }
        AF_INET => {
            if let Ok(a) = unsafe { bpf_probe_read_user((call.addr_ptr + 4) as *const [u8; 4]) } {
                addr[..4].copy_from_slice(&a);
            }
        }
        // struct sockaddr_in6 { u16 family; be16 port; u32 flowinfo; u8 addr[16]; ... }
        AF_INET6 => {
            if let Ok(a) = unsafe { bpf_probe_read_user((call.addr_ptr + 8) as *const [u8; 16]) } {
                addr = a;
            }
        }
        _ => return 0,
    }
    emit_conn(fd, call.how, ret as i32, family, port, addr);
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
    let fd = arg_u64(&ctx, ARG0) as i32;
    let key = (pid_tgid & 0xffff_ffff_0000_0000) | fd as u32 as u64;
    if unsafe { TRACKED_FDS.get(&key) }.is_some() {
        let _ = TRACKED_FDS.remove(&key);
        let _ = CAPTURE.remove(&key);
        emit_close(fd);
    }
    0
}
