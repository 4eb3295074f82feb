//! Section `overhead`: what a hooked TLS call costs with doh-trace attached, against the floor
//! any uprobe+uretprobe on the same four libssl functions costs (bpftrace, empty probes).
//!
//! A C ping-pong (xtask/bench/ssl_loop.c, compiled here against the system libssl) runs in a
//! private network namespace in five interleaved modes: (a) untraced, (b) empty probes,
//! (c) doh-trace, (d) doh-trace `--pid` of another, idle process, (e) empty programs on the
//! tracepoints doh-trace attaches. Each round trip is four hooked calls (client SSL_write,
//! server SSL_read, server SSL_write, client SSL_read).
//!
//! (e) is the floor of (d): once any program sits on a syscall tracepoint, every process's
//! syscalls take the kernel's slow path and run it, whatever the program then filters. How
//! much of (d) is doh-trace's own programs is measured directly, with the kernel's run-time
//! statistics, in a short extra run of modes d and e.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
};

use anyhow::{bail, Context as _, Result};
use doh_trace_tests::Lab;

use super::{
    bpf_stats::{self, RunTime, StatsOn},
    median,
    procs::{self, Bpftrace, Guard, StopSummary, TracerProc},
    Clock, Profile, SETTLE,
};

const SOURCE: &str = include_str!("../../bench/ssl_loop.c");
const SIZES: [usize; 2] = [64, 16384];
/// Targets for time(c)/time(b), per size.
const TRACER_VS_FLOOR_TARGET: [f64; 2] = [1.10, 1.25];
/// time(d)/time(a) should be 1.00; this much above counts as noise.
const OTHER_PID_TOLERANCE: f64 = 1.03;
/// The loop size and seconds of the extra run that reads the programs' run time (d, e).
const STATS_SIZE: usize = 16384;
const STATS_SECONDS: f64 = 1.0;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Untraced,
    Floor,
    Tracer,
    TracerOtherPid,
    TracepointFloor,
}

const MODES: [Mode; 5] = [
    Mode::Untraced,
    Mode::Floor,
    Mode::Tracer,
    Mode::TracerOtherPid,
    Mode::TracepointFloor,
];

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Untraced => "a  untraced",
            Mode::Floor => "b  empty uprobes+uretprobes (bpftrace)",
            Mode::Tracer => "c  doh-trace",
            Mode::TracerOtherPid => "d  doh-trace --pid <other, idle process>",
            Mode::TracepointFloor => "e  empty tracepoint programs (bpftrace)",
        }
    }

    /// Whether the extra run reads its tracepoint programs' run time.
    fn reads_program_time(self) -> bool {
        matches!(self, Mode::TracerOtherPid | Mode::TracepointFloor)
    }

    /// Whether `profile` runs this mode.
    fn runs_in(self, profile: &Profile) -> bool {
        profile.tracepoint_floor || self != Mode::TracepointFloor
    }
}

/// One ssl_loop run.
struct Sample {
    rate: f64,
    round_trips: u64,
}

/// What runs alongside the loop in one mode.
enum Env {
    Nothing,
    Floor(Bpftrace),
    Tracer(TracerProc),
}

impl Env {
    fn start(mode: Mode, tracer: &Path, libssl: &Path, idle_pid: u32) -> Result<Env> {
        let env = match mode {
            Mode::Untraced => Env::Nothing,
            Mode::Floor => Env::Floor(Bpftrace::uprobes(libssl)?),
            Mode::Tracer => Env::Tracer(TracerProc::start(tracer, &[], Stdio::null())?),
            Mode::TracerOtherPid => Env::Tracer(TracerProc::start(
                tracer,
                &["--pid", &idle_pid.to_string()],
                Stdio::null(),
            )?),
            Mode::TracepointFloor => Env::Floor(Bpftrace::tracepoints()?),
        };
        Ok(env)
    }

    fn pid(&self) -> Option<u32> {
        match self {
            Env::Nothing => None,
            Env::Floor(b) => Some(b.pid()),
            Env::Tracer(t) => Some(t.pid()),
        }
    }

    /// Starts stopping it without waiting (the tracer detaches slowly); `stop` then waits.
    fn interrupt(&mut self) {
        if let Env::Tracer(t) = self {
            t.interrupt();
        }
    }

    fn stop(self) -> Result<Option<StopSummary>> {
        match self {
            Env::Nothing => Ok(None),
            Env::Floor(b) => b.stop().map(|()| None),
            Env::Tracer(t) => t.stop().map(Some),
        }
    }
}

/// Runs the section and prints its report.
pub fn run(profile: &Profile, tracer: &Path, clock: &Clock) -> Result<()> {
    println!("== overhead: hooked TLS calls vs the bare-uprobe floor ==");
    // A namespace with loopback up, and a test PKI (server.pem / server.key) for the loop.
    let lab = Lab::empty().context("setting up the network namespace")?;
    let exe = compile(&lab.dir)?;
    let libssl = procs::libssl_of(&exe)?;
    let cert = lab.dir.join("pki/server.pem");
    let key = lab.dir.join("pki/server.key");
    let idle = Guard(
        Command::new("sleep")
            .arg("3600")
            .spawn()
            .context("starting an idle process")?,
    );
    println!(
        "ssl_loop ({}) in a private netns, hooked library {}; {} round(s) x {:.0} s per mode and size, \
         order {}",
        exe.display(),
        libssl.display(),
        profile.rounds,
        profile.loop_seconds,
        MODES
            .iter()
            .filter(|m| m.runs_in(profile))
            .map(|m| &m.label()[..1])
            .collect::<Vec<_>>()
            .join(" ")
    );
    if profile.tracepoint_floor {
        println!(
            "then, in modes d and e, {STATS_SECONDS:.0} s of the {STATS_SIZE} B loop with the kernel's \
             BPF run-time statistics on"
        );
    } else {
        println!("(mode e, the tracepoints' floor, and the programs' run time: --full only)");
    }

    // samples[mode][size] = one Sample per round; summaries[mode] = tracer stop summaries.
    let mut samples: Vec<Vec<Vec<Sample>>> = (0..MODES.len())
        .map(|_| (0..SIZES.len()).map(|_| Vec::new()).collect())
        .collect();
    let mut summaries: Vec<Vec<StopSummary>> = (0..MODES.len()).map(|_| Vec::new()).collect();
    // program_time[mode] = (run time of its tracepoint programs, round trips) per round.
    let mut program_time: Vec<Vec<(RunTime, u64)>> = (0..MODES.len()).map(|_| Vec::new()).collect();
    // The previous mode's tracer detaches while the next mode starts up (nothing is measured
    // then); it has exited before the next measurement begins.
    let mut stopping: Option<(usize, Env)> = None;
    for round in 0..profile.rounds {
        for (m, mode) in MODES.iter().enumerate() {
            if !mode.runs_in(profile) {
                continue;
            }
            let mut env = Env::start(*mode, tracer, &libssl, idle.pid())?;
            if let Some((prev, env)) = stopping.take() {
                if let Some(summary) = env.stop()? {
                    summaries[prev].push(summary);
                }
            }
            if !matches!(env, Env::Nothing) {
                thread::sleep(SETTLE);
            }
            for (s, size) in SIZES.iter().enumerate() {
                let sample = run_loop(&lab, &exe, *size, profile.loop_seconds, &cert, &key)?;
                clock.progress(&format!(
                    "round {} {:<42} {:>5} B: {:>9.1} round trips/s",
                    round + 1,
                    mode.label(),
                    size,
                    sample.rate
                ));
                samples[m][s].push(sample);
            }
            if let (true, true, Some(pid)) = (
                profile.tracepoint_floor,
                mode.reads_program_time(),
                env.pid(),
            ) {
                let stats = StatsOn::enable()?;
                let before = bpf_stats::tracepoint_programs_of(pid)?;
                let sample = run_loop(&lab, &exe, STATS_SIZE, STATS_SECONDS, &cert, &key)?;
                let spent = bpf_stats::tracepoint_programs_of(pid)?.since(before);
                drop(stats);
                clock.progress(&format!(
                    "round {} {:<42} {:>5} B: {:.1} ns per program run",
                    round + 1,
                    mode.label(),
                    STATS_SIZE,
                    spent.ns_per_run()
                ));
                program_time[m].push((spent, sample.round_trips));
            }
            env.interrupt();
            stopping = Some((m, env));
        }
    }
    if let Some((prev, env)) = stopping.take() {
        if let Some(summary) = env.stop()? {
            summaries[prev].push(summary);
        }
    }
    drop(idle);
    report(profile, &samples, &summaries, &program_time);
    Ok(())
}

/// Compiles ssl_loop.c into `dir` with the system cc and libssl.
fn compile(dir: &Path) -> Result<PathBuf> {
    let src = dir.join("ssl_loop.c");
    let exe = dir.join("ssl_loop");
    std::fs::write(&src, SOURCE)?;
    let out = Command::new("cc")
        .args(["-O2", "-Wall", "-o"])
        .arg(&exe)
        .arg(&src)
        .args(["-lssl", "-lcrypto", "-lpthread"])
        .output()
        .context("running cc")?;
    if !out.status.success() {
        bail!(
            "compiling ssl_loop.c failed (is libssl-dev installed?):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(exe)
}

/// One run of the loop inside the lab's namespace.
fn run_loop(
    lab: &Lab,
    exe: &Path,
    size: usize,
    seconds: f64,
    cert: &Path,
    key: &Path,
) -> Result<Sample> {
    let out = lab
        .command(exe.to_str().context("non-UTF-8 temp path")?)
        .arg(size.to_string())
        .arg(seconds.to_string())
        .arg(cert)
        .arg(key)
        .stdin(Stdio::null())
        .output()
        .context("running ssl_loop")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "ssl_loop failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let field = |name: &str| {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .with_context(|| format!("no {name}= in ssl_loop's output: {text}"))
    };
    Ok(Sample {
        rate: field("rate")?.parse()?,
        round_trips: field("round_trips")?.parse()?,
    })
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT MET"
    }
}

/// Prints rates, ratios (medians of per-round ratios) and whether the targets are met.
fn report(
    profile: &Profile,
    samples: &[Vec<Vec<Sample>>],
    summaries: &[Vec<StopSummary>],
    program_time: &[Vec<(RunTime, u64)>],
) {
    let medians = if profile.rounds > 1 {
        " (medians over rounds; ratios are medians of per-round ratios)"
    } else {
        " (one round: single samples, noisy; --full takes medians of 5)"
    };
    println!();
    println!("round trips/s, higher is better{medians}:");
    // time(x)/time(y) = rate(y)/rate(x), per round.
    let ratio = |x: usize, y: usize, s: usize| {
        median(
            &samples[x][s]
                .iter()
                .zip(&samples[y][s])
                .map(|(sx, sy)| sy.rate / sx.rate)
                .collect::<Vec<_>>(),
        )
    };
    let (a, b, c, d, e) = (0, 1, 2, 3, 4);
    for (s, size) in SIZES.iter().enumerate() {
        println!("  {size} B payload:");
        for (m, mode) in MODES.iter().enumerate() {
            if samples[m][s].is_empty() {
                continue;
            }
            let rate = median(&samples[m][s].iter().map(|x| x.rate).collect::<Vec<_>>());
            println!(
                "    {:<42} {:>10.1}/s  {:>8.1} µs per round trip",
                mode.label(),
                rate,
                1e6 / rate
            );
        }
        let cb = ratio(c, b, s);
        let ba = ratio(b, a, s);
        let da = ratio(d, a, s);
        let target = TRACER_VS_FLOOR_TARGET[s];
        println!(
            "    time(c)/time(b) = {cb:.3}  target <= {target:.2}: {}",
            met(cb <= target)
        );
        // Per hooked call (4 per round trip), from the median round-trip times.
        let us = |m: usize| {
            1e6 / median(&samples[m][s].iter().map(|x| x.rate).collect::<Vec<_>>()) / 4.0
        };
        println!(
            "    time(b)/time(a) = {ba:.3}  (the floor: {:.2} µs per empty uprobe+uretprobe hit)",
            us(b) - us(a)
        );
        println!(
            "    time(d)/time(a) = {da:.3}  target 1.00 (<= {OTHER_PID_TOLERANCE:.2} counted as noise): {}",
            met(da <= OTHER_PID_TOLERANCE)
        );
        if !samples[e][s].is_empty() {
            println!(
                "    time(e)/time(a) = {:.3}  (the tracepoints' floor: what any program on them \
                 costs every process; (d) cannot go below it)",
                ratio(e, a, s)
            );
            println!(
                "    time(d)/time(e) = {:.3}  (doh-trace --pid beyond that floor)",
                ratio(d, e, s)
            );
        }
        println!(
            "    doh-trace costs {:.2} µs per hooked call beyond the floor, and {:.2} µs per \
             call when it watches only another process (d)",
            us(c) - us(b),
            us(d) - us(a)
        );
    }
    // Program run time per round trip and per run, medians over rounds, for d and e.
    let per = |m: usize, f: &dyn Fn(&(RunTime, u64)) -> f64| {
        median(&program_time[m].iter().map(f).collect::<Vec<_>>())
    };
    if !program_time[d].is_empty() && !program_time[e].is_empty() {
        println!(
            "  another process's syscalls, run time of the tracepoint programs ({STATS_SIZE} B loop, \
             kernel BPF statistics, which add their own two clock reads to every run):"
        );
        for m in [d, e] {
            println!(
                "    {:<42} {:>6.1} ns per run, {:>5.1} runs and {:>5.2} µs per round trip",
                MODES[m].label(),
                per(m, &|(t, _)| t.ns_per_run()),
                per(m, &|(t, rt)| t.runs as f64 / (*rt).max(1) as f64),
                per(m, &|(t, rt)| t.ns as f64 / 1e3 / (*rt).max(1) as f64),
            );
        }
        println!(
            "    doh-trace's programs take {:.1} ns per run more than empty ones",
            per(d, &|(t, _)| t.ns_per_run()) - per(e, &|(t, _)| t.ns_per_run())
        );
    }
    println!(
        "  tracer stop summaries (hooks must fire in c, not in d; 'captured' counts calls whose \
         bytes were copied, which stops once a connection is known not to carry DNS):"
    );
    for (m, mode) in MODES.iter().enumerate() {
        if summaries[m].is_empty() {
            continue;
        }
        let round_trips: u64 = samples[m]
            .iter()
            .flat_map(|per_size| per_size.iter().map(|x| x.round_trips))
            .sum();
        let calls: u64 = summaries[m].iter().map(|s| s.tls_calls).sum();
        let drops: u64 = summaries[m].iter().map(|s| s.ringbuf_drops).sum();
        println!(
            "    {:<42} {calls} TLS library calls captured (of ~{} made), {drops} ring-buffer drops",
            mode.label(),
            4 * round_trips
        );
        for line in summaries[m].iter().flat_map(|s| &s.status_lines) {
            println!("      {line}");
        }
    }
}
