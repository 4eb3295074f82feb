//! NSPR (libnspr4.so), under NSS: plaintext of `PR_Write`/`PR_Read`/`PR_Send`/`PR_Recv` called
//! on a TLS-layered file descriptor. Applications that bundle NSS (Firefox) still use the
//! system NSPR.
//!
//! These functions also serve files, pipes and plain sockets: only calls whose bytes went to a
//! socket the tracer knows are emitted (a file or pipe never is). On a plain socket the bytes
//! are the socket's own cleartext, which is what the socket hooks would have copied anyway
//! (they stand aside during the call, so nothing is emitted twice).

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use doh_trace_common::{Source, DIR_EGRESS, DIR_INGRESS};

use super::tls_call::{enter_thread, finish, take_thread_call, FdRule};

#[inline(always)]
fn enter(ctx: &ProbeContext, direction: u32) -> u32 {
    let fd: u64 = ctx.arg(0).unwrap_or(0);
    let buf: u64 = ctx.arg(1).unwrap_or(0);
    enter_thread(bpf_get_current_pid_tgid(), fd, buf, 0, direction);
    0
}

/// PRInt32 PR_Write(PRFileDesc *fd, const void *buf, PRInt32 amount)
/// and PR_Send(fd, buf, amount, flags, timeout)
#[uprobe]
pub fn nspr_write_enter(ctx: ProbeContext) -> u32 {
    enter(&ctx, DIR_EGRESS)
}

/// PRInt32 PR_Read(PRFileDesc *fd, void *buf, PRInt32 amount)
#[uprobe]
pub fn nspr_read_enter(ctx: ProbeContext) -> u32 {
    enter(&ctx, DIR_INGRESS)
}

/// PRInt32 PR_Recv(PRFileDesc *fd, void *buf, PRInt32 amount, PRIntn flags, PRIntervalTime
/// timeout): a peek (`PR_MSG_PEEK`, Firefox's liveness check) leaves the bytes to be read again,
/// so it is not copied.
#[uprobe]
pub fn nspr_recv_enter(ctx: ProbeContext) -> u32 {
    const PR_MSG_PEEK: u64 = 0x2;
    let flags: u64 = ctx.arg(3).unwrap_or(0);
    if flags & PR_MSG_PEEK != 0 {
        return 0;
    }
    enter(&ctx, DIR_INGRESS)
}

/// Return of the four: the byte count, or <= 0 (0 is end of stream, -1 an error).
#[uretprobe]
pub fn nspr_exit(ctx: RetProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(call) = take_thread_call(pid_tgid) else {
        return 0;
    };
    let ret = ctx.ret::<i64>() as i32;
    if ret <= 0 {
        return 0;
    }
    finish(
        (pid_tgid >> 32) as u32,
        &call,
        ret as u64,
        Source::Nspr,
        FdRule::KnownSocket,
    );
    0
}
