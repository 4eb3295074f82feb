//! doh-trace's eBPF object: TLS plaintext and socket identity into one ring buffer.
//!
//! One module per hook family (`probes/`), shared maps in [`maps`], event emission in [`emit`],
//! the capture policy's kernel half in [`capture`], counted LRU map updates in [`lru`].
//! Every record layout lives in `doh-trace-common`.
#![no_std]
#![no_main]

mod capture;
mod emit;
mod lru;
mod maps;
mod probes;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // eBPF has no unwinding; code is written so that no panic path survives optimisation.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
