//! `cargo xtask build-ebpf`: compiles doh-trace-ebpf for `bpfel-unknown-none` with nightly.
//!
//! The object lands in `target/bpfel-unknown-none/release/doh-trace`, where doh-trace's build
//! script picks it up and embeds it.

use std::{path::PathBuf, process::Command};

use anyhow::{bail, Context as _, Result};

/// Options of `build-ebpf`.
#[derive(clap::Args)]
pub struct Options {
    /// Build a debug object instead of release (the verifier rarely accepts one; for inspection).
    #[arg(long)]
    pub debug: bool,
}

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
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
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root.join("doh-trace-ebpf"))
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .args([
            "+nightly",
            "build",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
        ]);
    if !opts.debug {
        cmd.arg("--release");
    }
    // The target directory is the workspace's, so doh-trace/build.rs finds the object.
    cmd.env("CARGO_TARGET_DIR", root.join("target"));
    let status = cmd
        .status()
        .context("running cargo +nightly (is rustup installed?)")?;
    if !status.success() {
        bail!("eBPF build failed ({status})");
    }
    let profile = if opts.debug { "debug" } else { "release" };
    let obj = root
        .join("target/bpfel-unknown-none")
        .join(profile)
        .join("doh-trace");
    eprintln!("xtask: eBPF object at {}", obj.display());
    Ok(())
}
