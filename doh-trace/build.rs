//! Builds the eBPF object when its sources change, and embeds it.
//!
//! The build is the one `cargo xtask build-ebpf` runs (`xtask/ebpf-build`), into
//! `target/ebpf/`; after it, `cargo build` finds the object fresh and embeds it. Edit a file
//! under `doh-trace-ebpf/src` (or the shared records) and the next `cargo build` rebuilds it.
//!
//! - `DOH_TRACE_SKIP_EBPF_BUILD=1`: no build; whatever object `target/ebpf` holds is embedded
//!   (the tracer's tests then fail if it is older than its sources).
//! - `DOH_TRACE_EBPF_OBJECT=PATH`: embed that object instead.
//! - fuzz builds (`cfg(fuzzing)`) never build it: fuzz targets do not load the tracer.
//!
//! When no object can be had (no nightly or bpf-linker), the library and the binary still
//! build — they can replay and decode, not trace — with a warning saying why.
use std::{env, fs, path::PathBuf};

use doh_trace_ebpf_build::{build, built_from, Layout};

fn main() {
    println!("cargo:rerun-if-env-changed=DOH_TRACE_EBPF_OBJECT");
    println!("cargo:rerun-if-env-changed=DOH_TRACE_SKIP_EBPF_BUILD");
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .parent()
        .expect("doh-trace is inside the workspace");
    let layout = Layout::new(root);
    println!("cargo:rustc-env=DOH_TRACE_WORKSPACE={}", root.display());
    let skip = env::var_os("DOH_TRACE_SKIP_EBPF_BUILD").is_some_and(|v| v != "0")
        || env::var_os("CARGO_CFG_FUZZING").is_some();
    let object = match env::var_os("DOH_TRACE_EBPF_OBJECT") {
        Some(path) => {
            let path = PathBuf::from(path);
            println!("cargo:rerun-if-changed={}", path.display());
            Some(path)
        }
        None if skip => {
            println!("cargo:rerun-if-changed={}", layout.object().display());
            Some(layout.object())
        }
        None => {
            for source in layout.sources() {
                println!("cargo:rerun-if-changed={}", source.display());
            }
            let mut output = Vec::new();
            match build(&layout, None, |line| output.push(line.to_string())) {
                Ok(path) => Some(path),
                Err(e) => {
                    for line in output.iter().rev().take(30).rev() {
                        println!("cargo:warning={line}");
                    }
                    println!(
                        "cargo:warning=could not build the eBPF object: {e}; this build can \
                         replay and decode but cannot trace"
                    );
                    None
                }
            }
        }
    };
    // The hash of the sources the embedded object was built from ("unknown": not built here).
    let built = object
        .as_ref()
        .filter(|p| **p == layout.object())
        .and_then(|_| built_from(&layout))
        .map_or_else(|| "unknown".to_string(), |h| format!("{h:016x}"));
    println!("cargo:rustc-env=DOH_TRACE_EBPF_BUILT_FROM={built}");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("doh-trace.bpf.o");
    match object.map(fs::read) {
        Some(Ok(bytes)) => fs::write(&out, bytes).expect("write OUT_DIR object"),
        Some(Err(e)) => {
            println!("cargo:warning=no eBPF object to embed ({e}): run `cargo xtask build-ebpf`");
            fs::write(&out, b"").expect("write OUT_DIR placeholder");
        }
        None => fs::write(&out, b"").expect("write OUT_DIR placeholder"),
    }
}
