//! `cargo xtask vm-test [KERNEL…]`: boots Debian's stock kernels under QEMU with the tracer,
//! real DoH servers and real clients inside (loopback only, no network device), runs a
//! representative subset of the privileged end-to-end tests there, and reports pass/fail and
//! the time per kernel from the serial console. Root (debootstrap, mkfs of a root's files).
//!
//! `image` builds and caches the root file system, `kernels` fetches the kernels and makes
//! their initrds, `payload` carries the binaries of this build, `boot` runs QEMU, `report`
//! reads the console; `vm-test.sh` is what runs inside.

mod boot;
mod image;
mod kernels;
mod payload;
mod report;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::build_ebpf::workspace_root;

/// The kernels booted when none is named and `$DOH_TRACE_VM_KERNELS` is unset.
const DEFAULT_KERNELS: &str = "6.1 6.12";

/// Options of `vm-test`.
#[derive(clap::Args)]
pub struct Options {
    /// Kernels: a series (`6.1`, `6.12`: Debian's newest stock amd64 image of it) or a
    /// package name (`linux-image-6.1.0-57-amd64`). Default: `$DOH_TRACE_VM_KERNELS`, else
    /// "6.1 6.12".
    pub kernels: Vec<String>,
    /// Minutes one kernel may take (boot and tests) before its VM is killed.
    #[arg(long, default_value_t = 25)]
    pub timeout_minutes: u64,
    /// VMs run at once (each emulates on one host thread).
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Only the subset's tests whose label contains one of these words (e.g. `curl`).
    #[arg(long)]
    pub only: Vec<String>,
    /// Runs each planned test this many times in one boot (labels get `.2`, `.3`, …), to
    /// tell a flaky test from a broken one.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Debian suite of the guest (must match the host's libc: the test binaries are built
    /// here).
    #[arg(long, default_value = "bookworm")]
    pub suite: String,
}

/// Runs the VM test on every kernel asked for; fails if any kernel failed.
pub fn run(opts: &Options) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("vm-test needs root (debootstrap, the guest image's file owners)");
    }
    let labels: Vec<String> = if opts.kernels.is_empty() {
        std::env::var("DOH_TRACE_VM_KERNELS")
            .unwrap_or_else(|_| DEFAULT_KERNELS.into())
            .split_whitespace()
            .map(str::to_string)
            .collect()
    } else {
        opts.kernels.clone()
    };
    let started = Instant::now();
    let workspace = workspace_root();
    let vm_dir = workspace.join("target/vm");
    let (image, built) = image::ensure(&vm_dir, &opts.suite)?;
    let image_time = started.elapsed();
    let payload = payload::build(&workspace, &vm_dir, &opts.only, opts.repeat)?;
    let kernels = labels
        .iter()
        .map(|l| kernels::prepare(&vm_dir.join("kernels"), l))
        .collect::<Result<Vec<_>>>()?;
    for k in &kernels {
        eprintln!("vm-test: {} is {} ({})", k.label, k.package, k.release);
    }
    let Some(first) = kernels.first() else {
        bail!("no kernel to boot");
    };
    std::fs::create_dir_all(vm_dir.join("logs"))?;
    let accel = boot::pick_accel(first, &vm_dir);
    let prepared = started.elapsed();
    eprintln!(
        "vm-test: image {} ({:.0} s), payload and kernels ready at {:.0} s; booting {} with {}",
        if built { "built" } else { "reused" },
        image_time.as_secs_f64(),
        prepared.as_secs_f64(),
        labels.join(", "),
        accel.name()
    );

    let timeout = Duration::from_secs(opts.timeout_minutes * 60);
    let mut failed = Vec::new();
    for group in kernels.chunks(opts.jobs.max(1)) {
        let boots: Vec<Result<boot::Boot>> = std::thread::scope(|s| {
            let handles: Vec<_> = group
                .iter()
                .map(|k| s.spawn(|| boot::boot(&vm_dir, k, &image, &payload, accel, timeout)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| bail!("boot thread panicked")))
                .collect()
        });
        for (kernel, boot) in group.iter().zip(boots) {
            let boot = boot.with_context(|| format!("booting {}", kernel.label))?;
            let log = std::fs::read_to_string(&boot.log).unwrap_or_default();
            let report = report::KernelReport::parse(&kernel.label, &log);
            println!(
                "{}",
                report.render(&kernel.label, &kernel.package, boot.elapsed, boot.timed_out)
            );
            println!("  console log: {}", boot.log.display());
            if !report.passed() {
                failed.push(kernel.label.clone());
            }
        }
    }
    println!(
        "vm-test: {} kernel(s) in {:.0} s (image {}, {:.0} s of preparation)",
        kernels.len(),
        started.elapsed().as_secs_f64(),
        if built { "built" } else { "reused" },
        prepared.as_secs_f64()
    );
    if failed.is_empty() {
        Ok(())
    } else {
        bail!("failed on {}", failed.join(", "))
    }
}

/// Runs a command, failing with its name and exit status.
fn run_checked(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{:?} failed ({status})", cmd.get_program());
    }
    Ok(())
}

/// FNV-1a: a hash that stays the same across Rust versions (cache keys on disk).
fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_hash_is_fnv1a() {
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
