//! Every type that crosses the kernel↔user boundary, defined once.
//!
//! The eBPF program writes these records into one ring buffer; the userspace loader reads them
//! back as bytes and decodes them with [`EventKind::try_from`] on the leading `kind` word — a
//! kernel value is never transmuted into a Rust enum. All records are `#[repr(C)]`, made of
//! fixed-width integers only, padded explicitly, and size-checked at compile time.
#![no_std]

/// Bytes of plaintext carried by one [`DataEvent`]. A power of two (the eBPF side masks with it).
pub const CHUNK_SIZE: usize = 4096;
/// At most this many chunks are emitted for one TLS call (so 64 KiB); the rest of a larger call
/// is counted in [`Stat::TruncatedBytes`] and visible to userspace as a gap (offset + total_len).
pub const MAX_CHUNKS_PER_CALL: u32 = 16;
/// With `--pid`, up to this many processes are compared inline by the syscall programs (a
/// global array the loader fills); more go to a hash map, which costs every other process one
/// map lookup per syscall.
pub const SCOPE_INLINE_PIDS: usize = 8;
/// Length of a kernel task name (`TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;

mod calls;
mod capture;
pub mod names;
mod probes;
mod records;
mod stats;

pub use calls::*;
pub use capture::*;
pub use probes::*;
pub use records::*;
pub use stats::*;

const _: () = assert!(CHUNK_SIZE.is_power_of_two());

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are repr(C), made of integers and integer arrays, with no implicit
    // padding (checked by the size asserts above), so every bit pattern is valid.
    unsafe impl aya::Pod for super::TlsCall {}
    unsafe impl aya::Pod for super::TlsObjKey {}
    unsafe impl aya::Pod for super::PendingSockCall {}
    unsafe impl aya::Pod for super::Capture {}
    unsafe impl aya::Pod for super::SockIo {}
}
