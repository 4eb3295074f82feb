//! `cargo xtask lint`: what CI checks besides the tests — formatting (`cargo fmt --check`, the
//! workspace and the eBPF crate), clippy with warnings as errors in two passes as
//! aya-template does (userspace on the host, then the eBPF crate with nightly for
//! `bpfel-unknown-none`), and the module graph of doh-trace (no import circles, [`modules`]).

mod modules;

use std::process::Command;

use anyhow::{bail, Context as _, Result};

use crate::build_ebpf::{pick_toolchain, workspace_root};

fn run_step(what: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("lint: {what}");
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Runs every check; fails on the first that fails.
pub fn run() -> Result<()> {
    let root = workspace_root();
    let nightly = pick_toolchain(None)?;
    run_step(
        "cargo fmt --check (workspace)",
        Command::new("cargo")
            .current_dir(&root)
            .args(["fmt", "--all", "--check"]),
    )?;
    run_step(
        "cargo fmt --check (eBPF crate)",
        Command::new("cargo")
            .current_dir(root.join("doh-trace-ebpf"))
            .env_remove("RUSTUP_TOOLCHAIN")
            .arg(format!("+{nightly}"))
            .args(["fmt", "--check"]),
    )?;
    run_step(
        "cargo clippy (userspace, all targets)",
        Command::new("cargo").current_dir(&root).args([
            "clippy",
            "--locked",
            "--workspace",
            "--exclude",
            "doh-trace-ebpf",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    run_step(
        "cargo clippy (eBPF crate, bpfel-unknown-none)",
        Command::new("cargo")
            .current_dir(root.join("doh-trace-ebpf"))
            .env_remove("RUSTUP_TOOLCHAIN")
            .env("CARGO_TARGET_DIR", root.join("target/ebpf"))
            .env("CARGO_PROFILE_RELEASE_LTO", "false")
            .arg(format!("+{nightly}"))
            .args([
                "clippy",
                "--release",
                "--target",
                "bpfel-unknown-none",
                "-Z",
                "build-std=core",
                "--",
                "-D",
                "warnings",
            ]),
    )?;
    eprintln!("lint: module graph");
    modules::run(&root)
}
