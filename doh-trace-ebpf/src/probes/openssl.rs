//! OpenSSL (libssl.so.3 / libssl.so.1.1, and the same symbols linked statically, BoringSSL
//! included): plaintext of SSL_write/SSL_read and their `_ex` forms.
//!
//! Entry probes save the call's arguments per thread; return probes read the byte count from
//! what the call returned and emit the plaintext (see `tls_call`). No OpenSSL struct offsets
//! are used.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user},
    macros::{uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use doh_trace_common::{Source, Stat, DIR_EGRESS, DIR_INGRESS};

use super::tls_call::{enter_thread, finish, take_thread_call, FdRule};
use crate::emit::bump;

#[inline(always)]
fn enter(ctx: &ProbeContext, direction: u32, is_ex: bool) -> u32 {
    let ssl: u64 = ctx.arg(0).unwrap_or(0);
    let buf: u64 = ctx.arg(1).unwrap_or(0);
    let count_ptr: u64 = if is_ex { ctx.arg(3).unwrap_or(0) } else { 0 };
    if is_ex && count_ptr == 0 {
        return 0;
    }
    enter_thread(bpf_get_current_pid_tgid(), ssl, buf, count_ptr, direction);
    0
}

/// int SSL_write(SSL *ssl, const void *buf, int num)
#[uprobe]
pub fn openssl_ssl_write_enter(ctx: ProbeContext) -> u32 {
    enter(&ctx, DIR_EGRESS, false)
}

/// int SSL_write_ex(SSL *s, const void *buf, size_t num, size_t *written)
#[uprobe]
pub fn openssl_ssl_write_ex_enter(ctx: ProbeContext) -> u32 {
    enter(&ctx, DIR_EGRESS, true)
}

/// int SSL_read(SSL *ssl, void *buf, int num)
#[uprobe]
pub fn openssl_ssl_read_enter(ctx: ProbeContext) -> u32 {
    enter(&ctx, DIR_INGRESS, false)
}

/// int SSL_read_ex(SSL *ssl, void *buf, size_t num, size_t *readbytes)
#[uprobe]
pub fn openssl_ssl_read_ex_enter(ctx: ProbeContext) -> u32 {
    enter(&ctx, DIR_INGRESS, true)
}

/// Return of SSL_write / SSL_write_ex / SSL_read / SSL_read_ex (which one is in the saved call).
#[uretprobe]
pub fn openssl_ssl_exit(ctx: RetProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(call) = take_thread_call(pid_tgid) else {
        return 0;
    };
    let ret: i64 = ctx.ret::<i64>();
    let total: u64 = if call.count_ptr != 0 {
        // int SSL_*_ex(...): 1 on success, the count is in *written / *readbytes.
        if ret as i32 != 1 {
            return 0;
        }
        match unsafe { bpf_probe_read_user(call.count_ptr as *const u64) } {
            Ok(n) => n,
            Err(_) => {
                bump(Stat::ReadErrors, 1);
                return 0;
            }
        }
    } else {
        // int SSL_write/SSL_read(...): the byte count, or <= 0 on error.
        let r = ret as i32;
        if r <= 0 {
            return 0;
        }
        r as u64
    };
    finish(
        (pid_tgid >> 32) as u32,
        &call,
        total,
        Source::OpenSsl,
        FdRule::Any,
    );
    0
}
