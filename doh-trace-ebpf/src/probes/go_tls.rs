//! Go crypto/tls: plaintext of `(*tls.Conn).Write` and `(*tls.Conn).Read`.
//!
//! Go moves goroutine stacks, so return probes (which rewrite the return address on the stack)
//! crash Go programs: the loader puts `go_tls_*_enter` on each function's entry and
//! `go_tls_return` on every RET instruction of its body (found by disassembly in userspace).
//! Go ≥ 1.17 passes arguments in registers (ABIInternal): receiver in RAX, the slice's pointer
//! and length in RBX and RCX, the int result in RAX; R14 always holds the running goroutine
//! (`g`). A goroutine can block inside the call and resume on another thread, so calls are
//! keyed by (process, goroutine) rather than by thread; the syscall hooks find the goroutine of
//! the current thread in R14 of the user registers saved at syscall entry, which is how the
//! socket fd of the call is learnt without any Go struct offsets.

use aya_ebpf::{
    bindings::pt_regs, helpers::bpf_get_current_pid_tgid, macros::uprobe, programs::ProbeContext,
};
use doh_trace_common::{LruMap, Source, TlsObjKey, DIR_EGRESS, DIR_INGRESS};

use super::tls_call::{finish, is_tracer, save, FdRule};
use crate::{
    lru,
    maps::{GO_CALLS, GO_TGIDS},
};

#[inline(always)]
fn regs(ctx: &ProbeContext) -> &pt_regs {
    unsafe { &*ctx.regs }
}

#[inline(always)]
fn enter(ctx: &ProbeContext, direction: u32) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if is_tracer(pid_tgid) {
        return 0;
    }
    let r = regs(ctx);
    let (conn, buf, len, g) = (r.rax, r.rbx, r.rcx, r.r14);
    if conn == 0 || buf == 0 || len == 0 || g == 0 {
        return 0;
    }
    let tgid = (pid_tgid >> 32) as u32;
    lru::mark(&GO_TGIDS, LruMap::GoTgids, &tgid, &1);
    let key = TlsObjKey {
        tgid,
        _pad: 0,
        tls_obj: g,
    };
    save(&GO_CALLS, LruMap::GoCalls, &key, conn, buf, 0, direction);
    0
}

/// func (c *Conn) Write(b []byte) (int, error) — at entry.
#[uprobe]
pub fn go_tls_write_enter(ctx: ProbeContext) -> u32 {
    enter(&ctx, DIR_EGRESS)
}

/// func (c *Conn) Read(b []byte) (int, error) — at entry.
#[uprobe]
pub fn go_tls_read_enter(ctx: ProbeContext) -> u32 {
    enter(&ctx, DIR_INGRESS)
}

/// At each RET of Write or Read: RAX holds the byte count.
#[uprobe]
pub fn go_tls_return(ctx: ProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let r = regs(&ctx);
    let (n, g) = (r.rax as i64, r.r14);
    let tgid = (pid_tgid >> 32) as u32;
    let key = TlsObjKey {
        tgid,
        _pad: 0,
        tls_obj: g,
    };
    let Some(call) = (unsafe { GO_CALLS.get(key) }).copied() else {
        return 0;
    };
    lru::remove(&GO_CALLS, LruMap::GoCalls, &key);
    if n <= 0 {
        return 0;
    }
    finish(tgid, &call, n as u64, Source::GoTls, FdRule::Any);
    0
}
