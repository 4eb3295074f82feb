//! The kernel's own accounting of BPF program run time (`BPF_ENABLE_STATS`): how long the
//! programs one process attached ran, and how often. Used to split what another process's
//! syscalls pay with `--pid` into the tracepoint floor and the tracer's programs.

use std::{
    collections::HashSet,
    os::fd::{FromRawFd as _, OwnedFd},
    process::Command,
};

use anyhow::{Context as _, Result};
use serde_json::Value;

/// `BPF_ENABLE_STATS` command of the bpf syscall, and its `BPF_STATS_RUN_TIME` type.
const BPF_ENABLE_STATS: libc::c_long = 32;
const BPF_STATS_RUN_TIME: u32 = 0;

/// Run-time statistics are on while this lives (the kernel turns them off when the last such
/// descriptor closes, also if the bench dies). They add two clock reads to every program run.
pub struct StatsOn {
    _fd: OwnedFd,
}

impl StatsOn {
    pub fn enable() -> Result<StatsOn> {
        // union bpf_attr { struct { __u32 type; } enable_stats; ... }: the kernel zero-fills
        // the rest of the union up to the size passed.
        let attr: u32 = BPF_STATS_RUN_TIME;
        // SAFETY: the bpf syscall reads `size_of::<u32>()` bytes of `attr`.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_ENABLE_STATS,
                &attr as *const u32,
                std::mem::size_of::<u32>() as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("BPF_ENABLE_STATS");
        }
        // SAFETY: a new descriptor the kernel just returned, owned by nobody else.
        Ok(StatsOn {
            _fd: unsafe { OwnedFd::from_raw_fd(fd as i32) },
        })
    }
}

/// Summed run time and runs of some programs.
#[derive(Clone, Copy, Default, Debug)]
pub struct RunTime {
    pub ns: u64,
    pub runs: u64,
}

impl RunTime {
    pub fn since(self, earlier: RunTime) -> RunTime {
        RunTime {
            ns: self.ns.saturating_sub(earlier.ns),
            runs: self.runs.saturating_sub(earlier.runs),
        }
    }

    pub fn ns_per_run(self) -> f64 {
        self.ns as f64 / self.runs.max(1) as f64
    }
}

/// Run time so far of the tracepoint programs process `pid` holds (as program or link
/// descriptors: the tracer holds links, bpftrace programs).
pub fn tracepoint_programs_of(pid: u32) -> Result<RunTime> {
    let ids = programs_held_by(pid)?;
    let out = Command::new("bpftool")
        .args(["-j", "prog", "show"])
        .output()
        .context("running bpftool prog show")?;
    let v: Value = serde_json::from_slice(&out.stdout).context("parsing bpftool prog show")?;
    let mut total = RunTime::default();
    for p in v.as_array().into_iter().flatten() {
        if p["type"] == "tracepoint" && p["id"].as_u64().is_some_and(|id| ids.contains(&id)) {
            total.ns += p["run_time_ns"].as_u64().unwrap_or(0);
            total.runs += p["run_cnt"].as_u64().unwrap_or(0);
        }
    }
    Ok(total)
}

/// The ids of the BPF programs behind process `pid`'s descriptors (the `prog_id:` line of
/// their /proc fdinfo).
fn programs_held_by(pid: u32) -> Result<HashSet<u64>> {
    let dir = format!("/proc/{pid}/fdinfo");
    let mut ids = HashSet::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        // A descriptor closed since the listing has no fdinfo any more.
        let Ok(text) = std::fs::read_to_string(entry?.path()) else {
            continue;
        };
        ids.extend(text.lines().find_map(|l| {
            l.strip_prefix("prog_id:")
                .and_then(|id| id.trim().parse::<u64>().ok())
        }));
    }
    Ok(ids)
}
