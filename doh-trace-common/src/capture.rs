//! The capture policy's kernel half: the bits userspace sets per connection, the budget of an
//! unclassified connection, and the per-connection state of the `CAPTURE` map.

/// Capture policy bit: copy no more TLS plaintext of this connection (not DNS).
pub const CAPTURE_TLS_SKIP: u32 = 1;
/// Capture policy bit: copy all TLS plaintext of this connection (it carries DNS).
pub const CAPTURE_TLS_FULL: u32 = 2;
/// Capture policy bit: copy no more socket bytes of this connection (TLS ciphertext, not DNS).
pub const CAPTURE_SOCK_SKIP: u32 = 4;
/// Capture policy bit: copy all socket bytes of this connection (cleartext DNS carrier).
pub const CAPTURE_SOCK_FULL: u32 = 8;
/// Capture policy bit: count the bytes sent and received on this socket (copied or not) and
/// report the totals in a [`ConnBytesEvent`](crate::ConnBytesEvent) when it closes (opaque encrypted DNS).
pub const CAPTURE_COUNT: u32 = 16;
/// Bytes per layer (TLS plaintext, socket bytes) copied from a connection userspace has not
/// classified yet; the rest is counted in [`Stat::UnclassifiedBytes`](crate::Stat::UnclassifiedBytes).
pub const UNCLASSIFIED_BUDGET: u32 = 16 * 1024;

/// Per-connection capture state (CAPTURE map, key `tgid << 32 | fd`). Userspace sets `policy`
/// once it knows what the connection carries; the eBPF side counts what it copied before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Capture {
    /// `CAPTURE_*` bits.
    pub policy: u32,
    /// TLS plaintext bytes copied while unclassified.
    pub tls_copied: u32,
    /// Socket bytes copied while unclassified.
    pub sock_copied: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
    /// Bytes sent on the socket while [`CAPTURE_COUNT`] was set.
    pub sent: u64,
    /// Bytes received on the socket while [`CAPTURE_COUNT`] was set.
    pub received: u64,
}

const _: () = assert!(core::mem::size_of::<Capture>() == 32);
