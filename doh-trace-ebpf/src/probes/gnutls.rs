//! GnuTLS (libgnutls.so.30): plaintext of `gnutls_record_send` and `gnutls_record_recv`.
//!
//! A corked session (`gnutls_record_cork`) makes `gnutls_record_send` only append to a
//! buffer; `gnutls_record_uncork` then sends that buffer through `gnutls_record_send` again.
//! Sends on a corked session are therefore not emitted: the same bytes are emitted once, when
//! uncork flushes them (with the socket write that tells which fd they go to).

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use doh_trace_common::{LruMap, Source, TlsObjKey, DIR_EGRESS, DIR_INGRESS};

use super::tls_call::{enter_thread, finish, is_tracer, take_thread_call, FdRule};
use crate::{lru, maps::GNUTLS_CORKED};

#[inline(always)]
fn session_key(pid_tgid: u64, session: u64) -> TlsObjKey {
    TlsObjKey {
        tgid: (pid_tgid >> 32) as u32,
        _pad: 0,
        tls_obj: session,
    }
}

#[inline(always)]
fn enter(ctx: &ProbeContext, direction: u32) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let session: u64 = ctx.arg(0).unwrap_or(0);
    let buf: u64 = ctx.arg(1).unwrap_or(0);
    if direction == DIR_EGRESS
        && unsafe { GNUTLS_CORKED.get(session_key(pid_tgid, session)) }.is_some()
    {
        // Buffered only; uncork sends these bytes again.
        return 0;
    }
    enter_thread(pid_tgid, session, buf, 0, direction);
    0
}

/// ssize_t gnutls_record_send(gnutls_session_t session, const void *data, size_t data_size)
#[uprobe]
pub fn gnutls_record_send_enter(ctx: ProbeContext) -> u32 {
    enter(&ctx, DIR_EGRESS)
}

/// ssize_t gnutls_record_recv(gnutls_session_t session, void *data, size_t data_size)
#[uprobe]
pub fn gnutls_record_recv_enter(ctx: ProbeContext) -> u32 {
    enter(&ctx, DIR_INGRESS)
}

/// Return of gnutls_record_send / gnutls_record_recv: the byte count, or < 0 on error.
#[uretprobe]
pub fn gnutls_record_exit(ctx: RetProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(call) = take_thread_call(pid_tgid) else {
        return 0;
    };
    let ret: i64 = ctx.ret::<i64>();
    if ret <= 0 {
        return 0;
    }
    finish(
        (pid_tgid >> 32) as u32,
        &call,
        ret as u64,
        Source::GnuTls,
        FdRule::Any,
    );
    0
}

/// void gnutls_record_cork(gnutls_session_t session)
#[uprobe]
pub fn gnutls_record_cork_enter(ctx: ProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let session: u64 = ctx.arg(0).unwrap_or(0);
    if session != 0 && !is_tracer(pid_tgid) {
        lru::mark(
            &GNUTLS_CORKED,
            LruMap::GnutlsCorked,
            &session_key(pid_tgid, session),
            &1,
        );
    }
    0
}

/// int gnutls_record_uncork(gnutls_session_t session, unsigned int flags): its own calls to
/// gnutls_record_send carry the buffered bytes, and are emitted.
#[uprobe]
pub fn gnutls_record_uncork_enter(ctx: ProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let session: u64 = ctx.arg(0).unwrap_or(0);
    if session != 0 {
        lru::remove(
            &GNUTLS_CORKED,
            LruMap::GnutlsCorked,
            &session_key(pid_tgid, session),
        );
    }
    0
}
