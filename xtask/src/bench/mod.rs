//! `cargo xtask bench`: measures the tracer side by side with baselines in one run and prints a
//! report. Sections: `overhead` (cost per hooked TLS call against the bare-uprobe floor),
//! `load` (sustained DoH load through libssl: nothing lost, CPU and memory of the tracer) and
//! `decode` (replay throughput on one core against tshark, memory of 10,000 open connections)
//! and `capture` (`read` of packet captures against tshark, skipped traffic, memory of 10,000
//! concurrent flows).
//!
//! The machine is noisy, so what matters are ratios of runs interleaved in the same
//! invocation, not absolute numbers. Every figure printed is measured in this run.

mod bpf_stats;
mod capture;
mod decode;
mod flowgen;
mod load;
mod overhead;
mod procs;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

/// Options of `bench`.
#[derive(clap::Args)]
pub struct Options {
    /// Short runs (the default): 1 round of 1.5 s per mode and size, 6 s of load, 100k lookups
    /// replayed; under a minute.
    #[arg(long, conflicts_with = "full")]
    pub quick: bool,
    /// Long runs: 5 rounds of 10 s per mode and size (medians reported), 60 s of load.
    #[arg(long)]
    pub full: bool,
    /// Run only this section.
    #[arg(long, value_enum)]
    pub only: Option<Section>,
}

/// A section of the report.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    /// Hooked-call overhead against empty uprobes (bpftrace) and no tracing.
    Overhead,
    /// Sustained DoH load (h2load → unbound) with the tracer running.
    Load,
    /// Replay decode throughput against tshark, and memory with 10,000 open connections.
    Decode,
    /// `read` of packet captures against tshark: encrypted DoH, skipped traffic, memory.
    Capture,
}

/// How long each part runs.
pub struct Profile {
    pub name: &'static str,
    /// Rounds of interleaved overhead modes (medians over rounds).
    pub rounds: usize,
    /// Seconds of each TLS loop run (one mode, one size).
    pub loop_seconds: f64,
    /// Whether the overhead section also runs mode (e), empty programs on the tracer's
    /// tracepoints, and reads the run time of (d)'s and (e)'s programs.
    pub tracepoint_floor: bool,
    /// `--warm-up-time` of the timed h2load runs in ms (not counted in their rates).
    pub h2load_warm_up_ms: u32,
    /// Counted seconds of each context run of the load (untraced, empty uprobes).
    pub context_seconds: u32,
    /// Whether the load also runs with empty uprobes only (bpftrace) for context.
    pub load_floor_run: bool,
    /// Counted seconds of the traced run that sizes the measured one (its lookups are not
    /// counted).
    pub sizing_seconds: u32,
    /// Seconds of the measured h2load run.
    pub load_seconds: u32,
    /// Seconds the tracer is watched idle before the load.
    pub idle_seconds: u32,
}

const QUICK: Profile = Profile {
    name: "quick",
    rounds: 1,
    loop_seconds: 1.5,
    tracepoint_floor: false,
    h2load_warm_up_ms: 500,
    context_seconds: 1,
    load_floor_run: false,
    sizing_seconds: 1,
    load_seconds: 6,
    idle_seconds: 1,
};

const FULL: Profile = Profile {
    name: "full",
    rounds: 5,
    loop_seconds: 10.0,
    tracepoint_floor: true,
    h2load_warm_up_ms: 2000,
    context_seconds: 8,
    load_floor_run: true,
    sizing_seconds: 3,
    load_seconds: 60,
    idle_seconds: 10,
};

/// (program, Debian package) each section runs, besides the tracer.
const OVERHEAD_TOOLS: &[(&str, &str)] = &[
    ("cc", "build-essential"),
    ("ldd", "libc-bin"),
    ("bpftrace", "bpftrace"),
];
const LOAD_TOOLS: &[(&str, &str)] = &[
    ("h2load", "nghttp2-client"),
    ("unbound", "unbound"),
    ("ldd", "libc-bin"),
    ("bpftrace", "bpftrace"),
];
const DECODE_TOOLS: &[(&str, &str)] = &[("tshark", "tshark"), ("taskset", "util-linux")];
const CAPTURE_TOOLS: &[(&str, &str)] = &[
    ("tshark", "tshark"),
    ("dumpcap", "tshark"),
    ("taskset", "util-linux"),
    ("unbound", "unbound"),
    ("curl", "curl"),
    (
        doh_trace_tests::SYSTEM_PYTHON,
        "python3-httpx python3-h2 python3-dnspython",
    ),
];
/// All: the lab (namespace, test PKI) and the leftover-program check.
const COMMON_TOOLS: &[(&str, &str)] = &[
    ("openssl", "openssl"),
    ("unshare", "util-linux"),
    ("nsenter", "util-linux"),
    ("ip", "iproute2"),
    ("bpftool", "bpftool"),
];

pub use capture::{wait4_main, Wait4Options};

/// Runs the benchmark.
pub fn run(opts: &Options) -> Result<()> {
    let profile = if opts.full { &FULL } else { &QUICK };
    let sections: Vec<Section> = match opts.only {
        Some(s) => vec![s],
        None => vec![
            Section::Overhead,
            Section::Load,
            Section::Decode,
            Section::Capture,
        ],
    };
    preflight(&sections)?;
    let tracer = tracer_binary()?;
    // The capture section loads no BPF program: alone, it does not mind other tracers.
    let checks = sections.iter().any(|s| *s != Section::Capture);
    if checks {
        procs::check_no_leftovers().context("before the benchmark")?;
    }

    println!(
        "doh-trace bench ({}), tracer {}, {} CPUs, kernel {}",
        profile.name,
        tracer.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel_release()
    );
    println!(
        "Figures are from this run; compare ratios of interleaved runs, not absolute numbers."
    );
    let clock = Clock(Instant::now());
    for s in sections {
        println!();
        match s {
            Section::Overhead => overhead::run(profile, &tracer, &clock)?,
            Section::Load => load::run(profile, &tracer, &clock)?,
            Section::Decode => decode::run(!opts.full, &tracer)?,
            Section::Capture => capture::run(!opts.full, &tracer, &clock)?,
        }
        if checks {
            procs::check_no_leftovers().context("after the section")?;
        }
    }
    clock.progress(if checks {
        "done; no tracer or bpftrace program left loaded"
    } else {
        "done"
    });
    Ok(())
}

/// Fails, saying what is missing, unless we are root and every tool the sections run exists.
fn preflight(sections: &[Section]) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "cannot run the benchmark: not root (the tracer and bpftrace load eBPF programs, \
             the lab needs a network namespace); run it as root"
        );
    }
    let mut missing = Vec::new();
    for s in sections {
        let tools = match s {
            Section::Overhead => OVERHEAD_TOOLS,
            Section::Load => LOAD_TOOLS,
            Section::Decode => DECODE_TOOLS,
            Section::Capture => CAPTURE_TOOLS,
        };
        for (program, package) in COMMON_TOOLS.iter().chain(tools) {
            let found = procs::on_path(program).is_ok()
                || ["/usr/sbin", "/sbin"]
                    .iter()
                    .any(|d| Path::new(d).join(program).is_file());
            let entry = format!("{program} (Debian package {package})");
            if !found && !missing.contains(&entry) {
                missing.push(entry);
            }
        }
    }
    if sections.contains(&Section::Overhead) && !Path::new("/usr/include/openssl/ssl.h").exists() {
        missing.push("OpenSSL headers (Debian package libssl-dev)".into());
    }
    if !missing.is_empty() {
        bail!(
            "cannot run the benchmark, missing: {} (scripts/setup.sh installs them all)",
            missing.join(", ")
        );
    }
    Ok(())
}

/// The release tracer the end-to-end harness uses. Unless `$DOH_TRACE_BIN` names one, the
/// workspace's is brought up to date first (`cargo build --release -p doh-trace`, a no-op when
/// it is), so the figures always describe the checked-out code, never a stale build.
fn tracer_binary() -> Result<PathBuf> {
    let bin = doh_trace_tests::tracer_binary();
    if std::env::var_os("DOH_TRACE_BIN").is_none() {
        eprintln!("xtask: building the tracer (cargo build --release -p doh-trace)");
        let status = Command::new("cargo")
            .current_dir(crate::build_ebpf::workspace_root())
            .args(["build", "--release", "-p", "doh-trace"])
            .status()
            .context("running cargo build")?;
        if !status.success() {
            bail!("building the tracer failed ({status})");
        }
    }
    if !bin.exists() {
        bail!("no tracer at {}", bin.display());
    }
    Ok(bin.canonicalize().unwrap_or(bin))
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// The median of `v` (mean of the middle two for an even count); NaN when empty.
pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// How long to let a freshly attached tracer or bpftrace settle before measuring.
pub const SETTLE: Duration = Duration::from_millis(300);

/// Progress lines on stderr, stamped with the time since the benchmark started.
pub struct Clock(Instant);

impl Clock {
    pub fn progress(&self, what: &str) {
        eprintln!("[{:5.1} s] {what}", self.0.elapsed().as_secs_f64());
    }
}
