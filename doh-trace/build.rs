//! Embeds the eBPF object built by `cargo xtask build-ebpf`.
//!
//! The object is looked up at `$DOH_TRACE_EBPF_OBJECT`, else at
//! `<workspace>/target/bpfel-unknown-none/release/doh-trace`. Without it the library still
//! builds (parsers, replay, fuzzing), and the tracer refuses to start with a message naming the
//! command to run.
use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(doh_trace_has_ebpf)");
    println!("cargo:rerun-if-env-changed=DOH_TRACE_EBPF_OBJECT");
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let object = env::var_os("DOH_TRACE_EBPF_OBJECT")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target/bpfel-unknown-none/release/doh-trace"));
    println!("cargo:rerun-if-changed={}", object.display());
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("doh-trace.bpf.o");
    match fs::read(&object) {
        Ok(bytes) => {
            fs::write(&out, bytes).expect("write OUT_DIR object");
            println!("cargo:rustc-cfg=doh_trace_has_ebpf");
        }
        Err(_) => {
            fs::write(&out, b"").expect("write OUT_DIR placeholder");
            println!(
                "cargo:warning=no eBPF object at {} (run `cargo xtask build-ebpf`): \
                 this build can replay and decode but cannot trace",
                object.display()
            );
        }
    }
}
