//! The capture policy: how much of each connection the kernel copies to the tracer.
//!
//! The whole loop, end to end:
//!
//! 1. **Kernel, unclassified**: the eBPF side copies the first [`doh_trace_common::UNCLASSIFIED_BUDGET`] bytes of
//!    every connection per layer (TLS plaintext, socket bytes), counting the rest
//!    (`doh-trace-ebpf/src/capture.rs`, keyed by `tgid << 32 | fd` in the `CAPTURE` map).
//! 2. **Userspace decides** (this module): once the pipeline knows what a connection carries,
//!    it makes one [`CaptureDecision`] per connection layer — copy everything (it carries DNS),
//!    copy nothing (not DNS, the server side, undecodable), or copy nothing but count the bytes
//!    (an opaque encrypted-DNS candidate, reported with its byte totals when it closes).
//!    A connection whose decoding stops after it was told to copy everything is told to stop.
//! 3. **Applied**: the live loop hands the decisions to the kernel
//!    ([`KernelCapture::set_policy`], the loader's CAPTURE map update); a recording writes
//!    only the events of connections decided to carry DNS; a replay ignores them.
//!
//! The policy bits are `doh_trace_common::CAPTURE_*`, shared with the eBPF side.

use doh_trace_common::{
    CAPTURE_COUNT, CAPTURE_SOCK_FULL, CAPTURE_SOCK_SKIP, CAPTURE_TLS_FULL, CAPTURE_TLS_SKIP,
};

use crate::source::{ConnId, ConnKey, Layer};

/// What the pipeline concluded about a connection layer: the eBPF side copies all of it
/// (`CAPTURE_*_FULL`) or none of it (`CAPTURE_*_SKIP`, with `CAPTURE_COUNT` to count) from
/// now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureDecision {
    pub key: ConnKey,
    /// `CAPTURE_*` bits to set.
    pub policy: u32,
}

impl CaptureDecision {
    /// Whether the connection carries DNS (copied in full) or is an opaque DNS candidate
    /// (counted): what a recording keeps.
    pub fn keeps(&self) -> bool {
        self.policy & (CAPTURE_TLS_FULL | CAPTURE_SOCK_FULL | CAPTURE_COUNT) != 0
    }
}

/// Where decisions are applied: the kernel's capture map.
pub trait KernelCapture {
    /// Sets `policy` bits for the socket `fd` of process `pid`.
    fn set_policy(&mut self, pid: u32, fd: i32, policy: u32) -> anyhow::Result<()>;
}

/// Drops the decisions, among those not yet applied, of socket `id` of `pid`: it closed, or a
/// new socket took its descriptor (the kernel forgot the old socket's state then; applied
/// afterwards, they would be the next socket's). The live loop applies decisions once per
/// pass over the ring buffer and calls this for every close and open it reads meanwhile.
pub fn forget_socket(decisions: &mut Vec<CaptureDecision>, pid: u32, id: ConnId) {
    decisions.retain(|d| !(d.key.pid == pid && d.key.id == id));
}

/// Applies decisions to the kernel. A connection that is gone already is not an error: a
/// failed update only costs bytes copied for nothing.
pub fn apply(decisions: &[CaptureDecision], kernel: &mut impl KernelCapture) {
    for d in decisions {
        // A TLS object without a socket has no kernel state: its plaintext is copied whole
        // until it is bound to its socket (`conn/binding.rs`), then by the socket's policy.
        if let ConnId::Fd(fd) = d.key.id {
            let _ = kernel.set_policy(d.key.pid, fd, d.policy);
        }
    }
}

/// What was decided about one connection layer so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct CaptureState {
    /// A decision was made.
    decided: bool,
    /// That decision was to copy everything.
    copy_all: bool,
    /// The bits decided, last.
    policy: u32,
}

impl CaptureState {
    /// Whether a decision was made.
    pub fn decided(&self) -> bool {
        self.decided
    }

    /// The `CAPTURE_*` bits decided last, once a decision was made.
    pub fn decision(&self) -> Option<u32> {
        self.decided.then_some(self.policy)
    }
}

fn skip_bit(layer: Layer) -> u32 {
    match layer {
        Layer::Tls => CAPTURE_TLS_SKIP,
        Layer::Socket => CAPTURE_SOCK_SKIP,
    }
}

fn full_bit(layer: Layer) -> u32 {
    match layer {
        Layer::Tls => CAPTURE_TLS_FULL,
        Layer::Socket => CAPTURE_SOCK_FULL,
    }
}

/// The decisions made since they were last drained. Each connection layer gets one decision
/// (the first); only a stop can follow a decision to copy everything.
#[derive(Debug, Default)]
pub struct CapturePolicy {
    decisions: Vec<CaptureDecision>,
}

impl CapturePolicy {
    fn decide(&mut self, key: ConnKey, state: &mut CaptureState, policy: u32) {
        if state.decided {
            return;
        }
        state.decided = true;
        state.copy_all = policy & full_bit(key.layer) != 0;
        state.policy = policy;
        self.decisions.push(CaptureDecision { key, policy });
    }

    /// The connection carries DNS: copy all of it.
    pub fn copy_all(&mut self, key: ConnKey, state: &mut CaptureState) {
        self.decide(key, state, full_bit(key.layer));
    }

    /// Nothing more of the connection is wanted: copy none of it.
    pub fn skip(&mut self, key: ConnKey, state: &mut CaptureState) {
        self.decide(key, state, skip_bit(key.layer));
    }

    /// An opaque encrypted-DNS candidate (`count`) or not: copy none of its bytes, and count
    /// them when it is one.
    pub fn skip_counting(&mut self, key: ConnKey, state: &mut CaptureState, count: bool) {
        let count = if count { CAPTURE_COUNT } else { 0 };
        self.decide(key, state, skip_bit(key.layer) | count);
    }

    /// Decoding stopped for good: if the kernel was told to copy everything, it is told to
    /// stop (the skip bit wins over the full one).
    pub fn stopped(&mut self, key: ConnKey, state: &mut CaptureState) {
        if state.decided && state.copy_all {
            state.copy_all = false;
            state.policy = skip_bit(key.layer);
            self.decisions.push(CaptureDecision {
                key,
                policy: state.policy,
            });
        }
    }

    /// The connection is known by another key now (a TLS object bound to its socket): what
    /// was decided under the old one is decided again under `key`.
    pub fn rekeyed(&mut self, key: ConnKey, state: &CaptureState) {
        if state.decided {
            self.decisions.push(CaptureDecision {
                key,
                policy: state.policy,
            });
        }
    }

    /// What was decided no longer holds (a DNS client turned out to be the server): decide
    /// again from scratch.
    pub fn reconsider(state: &mut CaptureState) {
        *state = CaptureState::default();
    }

    /// Decisions made since the last call.
    /// The socket `id` of `pid` is gone (closed, or its descriptor taken by a new socket)
    /// before the decisions made for it reached the kernel: they are dropped. The kernel
    /// forgot the old socket's state at its close; applied now, they would be the next
    /// socket's on that descriptor.
    pub fn forget(&mut self, pid: u32, id: ConnId) {
        forget_socket(&mut self.decisions, pid, id);
    }

    pub fn drain(&mut self) -> std::vec::Drain<'_, CaptureDecision> {
        self.decisions.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(pid: u32, fd: i32, layer: Layer, policy: u32) -> CaptureDecision {
        CaptureDecision {
            key: ConnKey {
                pid,
                id: ConnId::Fd(fd),
                layer,
            },
            policy,
        }
    }

    /// A socket gone within a pass takes its decisions (both layers) with it; other sockets'
    /// and other processes' stay, in order.
    #[test]
    fn a_gone_socket_takes_its_pending_decisions_with_it() {
        let mut ds = vec![
            decision(1, 5, Layer::Socket, CAPTURE_SOCK_SKIP),
            decision(1, 6, Layer::Tls, CAPTURE_TLS_FULL),
            decision(1, 5, Layer::Tls, CAPTURE_TLS_FULL),
            decision(2, 5, Layer::Socket, CAPTURE_SOCK_FULL),
        ];
        forget_socket(&mut ds, 1, ConnId::Fd(5));
        assert_eq!(
            ds,
            vec![
                decision(1, 6, Layer::Tls, CAPTURE_TLS_FULL),
                decision(2, 5, Layer::Socket, CAPTURE_SOCK_FULL),
            ]
        );
    }
}
