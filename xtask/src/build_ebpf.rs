//! `cargo xtask build-ebpf`: compiles doh-trace-ebpf for `bpfel-unknown-none` with nightly.
//!
//! The object lands in `target/bpfel-unknown-none/release/doh-trace`, where doh-trace's build
//! script picks it up and embeds it. The nightly used must share its LLVM major version with
//! the LLVM bpf-linker was built against (scripts/setup.sh arranges both).

use std::{path::PathBuf, process::Command};

use anyhow::{bail, Context as _, Result};

/// LLVM major version bpf-linker is built against (scripts/setup.sh).
pub const LLVM_MAJOR: &str = "22";
/// Nightly toolchains tried in order: the default nightly, then the pinned one setup installs.
pub const NIGHTLIES: &[&str] = &["nightly", "nightly-2026-05-20"];

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

fn llvm_major(toolchain: &str) -> Option<String> {
    let out = Command::new("rustc")
        .arg(format!("+{toolchain}"))
        .arg("-vV")
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))?;
    Some(v.split('.').next()?.to_string())
}

/// The nightly to use: `explicit` if given, else the first of [`NIGHTLIES`] with LLVM 22.
pub fn pick_toolchain(explicit: Option<&str>) -> Result<String> {
    if let Some(t) = explicit {
        return Ok(t.to_string());
    }
    for t in NIGHTLIES {
        if llvm_major(t).as_deref() == Some(LLVM_MAJOR) {
            return Ok(t.to_string());
        }
    }
    bail!(
        "no nightly toolchain with LLVM {LLVM_MAJOR} found (tried {}): run scripts/setup.sh",
        NIGHTLIES.join(", ")
    )
}

/// Runs the nightly build of the eBPF crate.
pub fn run(opts: &Options) -> Result<()> {
    let root = workspace_root();
    if Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_err()
    {
        bail!("bpf-linker is not installed: run scripts/setup.sh (or see README)");
    }
    let toolchain = pick_toolchain(opts.toolchain.as_deref())?;
    let status = Command::new("cargo")
        .current_dir(root.join("doh-trace-ebpf"))
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env("CARGO_TARGET_DIR", root.join("target"))
        // The workspace's release profile uses fat LTO for the userspace tracer; bpf-linker
        // links the eBPF crate's bitcode itself.
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .arg(format!("+{toolchain}"))
        .args([
            "build",
            "--release",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
        ])
        .status()
        .context("running cargo +nightly (is rustup installed?)")?;
    if !status.success() {
        bail!("eBPF build failed ({status})");
    }
    let obj = root.join("target/bpfel-unknown-none/release/doh-trace");
    eprintln!(
        "xtask: eBPF object at {} (built with {toolchain})",
        obj.display()
    );
    Ok(())
}
