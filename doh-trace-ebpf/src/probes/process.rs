//! Process lifetime: tells userspace when a process it has state for is gone, and when any
//! process exec'd.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};
use doh_trace_common::LruMap;

use crate::{
    emit::{emit_exec, emit_exit},
    lru,
    maps::{in_scope, TRACKED_TGIDS},
};

/// sched:sched_process_exit — reported when the thread-group leader exits (portable across
/// kernels; newer ones also carry `group_dead`, older ones do not).
#[tracepoint]
pub fn sched_process_exit(_ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if tgid != pid_tgid as u32 || !in_scope(tgid) {
        return 0;
    }
    if unsafe { TRACKED_TGIDS.get(tgid) }.is_some() {
        lru::remove(&TRACKED_TGIDS, LruMap::TrackedTgids, &tgid);
        emit_exit();
    }
    0
}

/// sched:sched_process_exec — every exec in scope is reported: userspace hooks the TLS stacks
/// the new program carries (Go, static libraries) and re-reads a known process's context.
#[tracepoint]
pub fn sched_process_exec(_ctx: TracePointContext) -> u32 {
    if in_scope((bpf_get_current_pid_tgid() >> 32) as u32) {
        emit_exec();
    }
    0
}
