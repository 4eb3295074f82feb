//! `cargo xtask build-ebpf`: compiles doh-trace-ebpf for `bpfel-unknown-none` with nightly —
//! the same build doh-trace's build script runs when the eBPF sources change
//! (`xtask/ebpf-build`). The object lands in `target/ebpf/bpfel-unknown-none/release/doh-trace`.

use std::path::PathBuf;

use anyhow::Result;
use doh_trace_ebpf_build::{build, Layout};

pub use doh_trace_ebpf_build::pick_toolchain;

/// Options of `build-ebpf`.
#[derive(clap::Args)]
pub struct Options {
    /// Nightly toolchain to use (default: the first of `nightly`, `nightly-2026-05-20` whose
    /// LLVM matches bpf-linker's).
    #[arg(long)]
    pub toolchain: Option<String>,
}

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

/// Runs the nightly build of the eBPF crate, showing cargo's output.
pub fn run(opts: &Options) -> Result<()> {
    let obj = build(
        &Layout::new(workspace_root()),
        opts.toolchain.as_deref(),
        |line| eprintln!("{line}"),
    )?;
    eprintln!("xtask: eBPF object at {}", obj.display());
    Ok(())
}
