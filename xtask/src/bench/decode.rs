//! Section `decode`: the userspace decoder alone, no root needed. Real HTTP/2 DoH traffic from
//! the `h2` crate (doh-trace/examples/bench_traffic.rs) is replayed with `doh-trace replay`:
//!
//! - throughput: lookups per second of one replay on one core (many connections interleaved);
//! - against tshark: the same traffic as a cleartext h2c pcap, decoded to DNS answers by
//!   tshark, and the same file's recording by doh-trace, both on the same core;
//! - memory: peak RSS of replaying 10,000 DoH connections left open with a query in flight,
//!   next to replaying a one-lookup recording.
//!
//! Every figure is measured in this run; only the targets are constants.

use std::{
    fs::File,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{bail, ensure, Context as _, Result};

/// Lookups per second of one replay on one core.
const THROUGHPUT_TARGET: f64 = 1_000_000.0;
/// doh-trace lookups/s over tshark lookups/s on the same traffic.
const TSHARK_RATIO_TARGET: f64 = 50.0;
/// Peak RSS with 10,000 open DoH connections.
const RSS_TARGET_MIB: f64 = 64.0;
/// Open connections of the memory case.
const OPEN_CONNECTIONS: usize = 10_000;
/// Connections live at once in the throughput and tshark cases.
const CONNECTIONS: usize = 64;
/// The core every measured process is pinned to.
const CORE: &str = "0";

/// Sizes of one run.
struct Sizes {
    /// Lookups per connection of the throughput recording.
    lookups: usize,
    /// Lookups per connection of the (smaller) traffic given to tshark.
    tshark_lookups: usize,
    /// Runs of each measurement (the fastest is reported).
    runs: usize,
}

const QUICK: Sizes = Sizes {
    lookups: 1_563,
    tshark_lookups: 200,
    runs: 2,
};
const FULL: Sizes = Sizes {
    lookups: 31_250,
    tshark_lookups: 2_000,
    runs: 3,
};

/// Runs the section.
pub fn run(quick: bool, tracer: &Path) -> Result<()> {
    let sizes = if quick { &QUICK } else { &FULL };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf();
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => root.join(t),
        None => root.join("target"),
    };
    let traffic = build_traffic(&root, &target)?;
    let dir = target.join("bench-decode");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let pin = Pin::detect();

    println!("decode: doh-trace replay of real h2 DoH traffic (bench_traffic), no root needed");
    println!(
        "  tracer {} ({}); {}",
        tracer.display(),
        age(tracer),
        pin.describe()
    );

    // Throughput.
    let big = dir.join("throughput.dtr");
    let t = generate(&traffic, CONNECTIONS, sizes.lookups, false, &big, None)?;
    progress(&format!(
        "replaying {} lookups ({} runs)",
        t.lookups, sizes.runs
    ));
    let r = replay_best(&pin, tracer, &big, &dir, sizes.runs, t.lookups)?;
    let rate = t.lookups as f64 / r.wall.as_secs_f64();
    println!(
        "  throughput: {} lookups on {CONNECTIONS} interleaved connections ({} events, {:.1} MiB \
         of plaintext) in {:.3} s (best of {}, {:.3} s CPU): {} lookups/s, {:.0} MiB/s",
        t.lookups,
        t.events,
        mib(t.plaintext_bytes),
        r.wall.as_secs_f64(),
        sizes.runs,
        r.cpu.as_secs_f64(),
        thousands(rate),
        mib(t.plaintext_bytes) / r.wall.as_secs_f64(),
    );
    verdict(
        "    lookups/s",
        rate >= THROUGHPUT_TARGET,
        &format!("≥ {}", thousands(THROUGHPUT_TARGET)),
    );
    std::fs::remove_file(&big).ok();

    // Side by side with tshark, on the same (smaller) traffic.
    tshark_section(&pin, tracer, &traffic, &dir, sizes)?;

    // Memory.
    let open = dir.join("open.dtr");
    let tiny = dir.join("tiny.dtr");
    generate(&traffic, OPEN_CONNECTIONS, 1, true, &open, None)?;
    generate(&traffic, 1, 1, false, &tiny, None)?;
    progress("replaying the open connections");
    let base = replay(&pin, tracer, &tiny, &dir, Some(1))?;
    let full = replay(&pin, tracer, &open, &dir, Some(0))?;
    let rss = full.max_rss_kib as f64 / 1024.0;
    println!(
        "  memory: {OPEN_CONNECTIONS} open DoH connections, one query in flight on each: peak RSS \
         {rss:.1} MiB (a one-lookup replay: {:.1} MiB; {:.1} KiB more per connection)",
        base.max_rss_kib as f64 / 1024.0,
        full.max_rss_kib.saturating_sub(base.max_rss_kib) as f64 / OPEN_CONNECTIONS as f64,
    );
    verdict(
        "    peak RSS",
        rss <= RSS_TARGET_MIB,
        &format!("≤ {RSS_TARGET_MIB} MiB"),
    );
    std::fs::remove_file(&open).ok();
    std::fs::remove_file(&tiny).ok();
    Ok(())
}

/// tshark and doh-trace on the same traffic: a pcap and a recording written together.
fn tshark_section(
    pin: &Pin,
    tracer: &Path,
    traffic: &Path,
    dir: &Path,
    sizes: &Sizes,
) -> Result<()> {
    let Some(version) = tshark_version() else {
        println!("  tshark: not installed; comparison skipped");
        return Ok(());
    };
    let rec = dir.join("tshark.dtr");
    let pcap = dir.join("tshark.pcap");
    let t = generate(
        traffic,
        CONNECTIONS,
        sizes.tshark_lookups,
        false,
        &rec,
        Some(&pcap),
    )?;
    progress(&format!("tshark on {} lookups", t.lookups));
    let mut tshark_wall = Duration::MAX;
    for _ in 0..sizes.runs {
        let (answers, wall) = tshark(pin, &pcap)?;
        ensure!(
            answers == t.lookups,
            "tshark decoded {answers} DNS answers from {}, expected {}",
            pcap.display(),
            t.lookups
        );
        tshark_wall = tshark_wall.min(wall);
    }
    let ours = replay_best(pin, tracer, &rec, dir, sizes.runs, t.lookups)?;
    let tshark_rate = t.lookups as f64 / tshark_wall.as_secs_f64();
    let our_rate = t.lookups as f64 / ours.wall.as_secs_f64();
    let ratio = our_rate / tshark_rate;
    println!(
        "  against {version}: the same traffic, smaller ({CONNECTIONS} connections × {} lookups = \
         {}; tshark is slow), as cleartext h2c pcap (`-d tcp.port==443,http2`) and as a \
         recording; best of {}:",
        sizes.tshark_lookups, t.lookups, sizes.runs
    );
    println!(
        "    tshark    {} answers in {:.3} s: {} lookups/s",
        t.lookups,
        tshark_wall.as_secs_f64(),
        thousands(tshark_rate)
    );
    println!(
        "    doh-trace {} lookups in {:.3} s: {} lookups/s",
        t.lookups,
        ours.wall.as_secs_f64(),
        thousands(our_rate)
    );
    verdict(
        &format!("    doh-trace/tshark {ratio:.1}×"),
        ratio >= TSHARK_RATIO_TARGET,
        &format!("≥ {TSHARK_RATIO_TARGET}×"),
    );
    std::fs::remove_file(&rec).ok();
    std::fs::remove_file(&pcap).ok();
    Ok(())
}

/// Builds the traffic generator; returns its path.
fn build_traffic(root: &Path, target: &Path) -> Result<PathBuf> {
    progress("building the traffic generator (cargo build --release --example bench_traffic)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--quiet", "--release", "-p", "doh-trace"])
        .args(["--example", "bench_traffic"])
        .status()
        .context("running cargo build")?;
    let traffic = target.join("release/examples/bench_traffic");
    if !status.success() || !traffic.exists() {
        bail!("building failed ({status}); expected {}", traffic.display());
    }
    Ok(traffic)
}

/// Totals of generated traffic, as bench_traffic prints them.
struct Traffic {
    lookups: usize,
    events: u64,
    plaintext_bytes: u64,
}

fn generate(
    traffic: &Path,
    connections: usize,
    lookups: usize,
    open: bool,
    rec: &Path,
    pcap: Option<&Path>,
) -> Result<Traffic> {
    progress(&if open {
        format!("generating {connections} open connections, one query in flight on each")
    } else {
        format!("generating {connections} connections × {lookups} lookups")
    });
    let mut cmd = Command::new(traffic);
    cmd.arg("--connections")
        .arg(connections.to_string())
        .arg("--lookups-per-connection")
        .arg(lookups.to_string())
        .arg("--recording")
        .arg(rec);
    if open {
        cmd.arg("--open");
    }
    if let Some(p) = pcap {
        cmd.arg("--pcap").arg(p);
    }
    let out = cmd.output().context("running bench_traffic")?;
    if !out.status.success() {
        bail!(
            "bench_traffic failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| -> Result<u64> {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {key}= in bench_traffic's output {text:?}"))
    };
    let t = Traffic {
        lookups: field("lookups")? as usize,
        events: field("events")?,
        plaintext_bytes: field("plaintext_bytes")?,
    };
    let want = if open { 0 } else { connections * lookups };
    ensure!(
        t.lookups == want,
        "bench_traffic made {} lookups, asked for {want}",
        t.lookups
    );
    Ok(t)
}

/// One measured replay.
struct Replay {
    wall: Duration,
    cpu: Duration,
    max_rss_kib: u64,
}

/// The fastest of `runs` replays, each checked to report `lookups` answered lookups.
fn replay_best(
    pin: &Pin,
    tracer: &Path,
    rec: &Path,
    dir: &Path,
    runs: usize,
    lookups: usize,
) -> Result<Replay> {
    let mut best: Option<Replay> = None;
    for _ in 0..runs {
        let r = replay(pin, tracer, rec, dir, Some(lookups))?;
        if best.as_ref().is_none_or(|b| r.wall < b.wall) {
            best = Some(r);
        }
    }
    best.context("no runs")
}

/// `doh-trace replay FILE --json > /dev/null` on the pinned core. With `expect`, its exit
/// summary must count exactly that many lookups, none failed.
fn replay(
    pin: &Pin,
    tracer: &Path,
    rec: &Path,
    dir: &Path,
    expect: Option<usize>,
) -> Result<Replay> {
    let err_path = dir.join("replay.stderr");
    let mut cmd = pin.command(tracer);
    cmd.arg("replay")
        .arg(rec)
        .arg("--json")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&err_path)?);
    let started = Instant::now();
    let child = cmd.spawn().with_context(|| format!("running {cmd:?}"))?;
    let (status, usage) = wait4(child.id())?;
    let wall = started.elapsed();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    ensure!(
        status == 0,
        "{} replay {} failed (wait status {status}): {stderr}",
        tracer.display(),
        rec.display()
    );
    if let Some(want) = expect {
        let prefix = format!("doh-trace: replayed {}: ", rec.display());
        let counted: Option<usize> = stderr
            .lines()
            .find_map(|l| l.strip_prefix(&prefix)?.split(' ').next()?.parse().ok());
        // The per-process table: PID PROCESS LOOKUPS FAILED P50 P99 RESOLVERS.
        let (mut listed, mut failed) = (0, 0);
        for row in stderr
            .lines()
            .skip_while(|l| !l.contains(" LOOKUPS "))
            .skip(1)
        {
            let cols: Vec<&str> = row.split_whitespace().collect();
            if let [_, _, n, f, ..] = cols[..] {
                listed += n.parse::<usize>().unwrap_or(0);
                failed += f.parse::<usize>().unwrap_or(0);
            }
        }
        ensure!(
            counted == Some(want) && (want == 0 || (listed == want && failed == 0)),
            "replay of {} reported {counted:?} lookups ({listed} listed, {failed} failed), \
             expected {want} answered: {stderr}",
            rec.display()
        );
    }
    Ok(Replay {
        wall,
        cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss.max(0) as u64,
    })
}

/// tshark's DNS answers in `pcap` (DoH: HTTP/2 DATA of type application/dns-message), and its
/// wall time.
fn tshark(pin: &Pin, pcap: &Path) -> Result<(usize, Duration)> {
    let mut cmd = pin.command(Path::new("tshark"));
    cmd.arg("-r")
        .arg(pcap)
        .args([
            "-n",
            "-d",
            "tcp.port==443,http2",
            "-Y",
            "dns.flags.response == 1",
            "-T",
            "fields",
            "-e",
            "dns.id",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let started = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("running {cmd:?}"))?;
    // One line per packet; a packet carrying several answers lists their ids comma-separated.
    let mut answers = 0;
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        answers += line.split(',').filter(|id| !id.trim().is_empty()).count();
    }
    let status = child.wait()?;
    let wall = started.elapsed();
    ensure!(status.success(), "tshark failed ({status})");
    Ok((answers, wall))
}

pub(super) fn tshark_version() -> Option<String> {
    let out = Command::new("tshark").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next()?;
    // "TShark (Wireshark) 4.0.17 (Git v4.0.17 ...)."
    let v = first.split_whitespace().nth(2).unwrap_or("?");
    Some(format!("tshark {v}"))
}

/// Pinning measured processes to one core with taskset, when it is there.
pub(super) struct Pin {
    taskset: bool,
}

impl Pin {
    pub(super) fn detect() -> Pin {
        Pin {
            taskset: Command::new("taskset")
                .arg("-V")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
        }
    }

    pub(super) fn describe(&self) -> String {
        if self.taskset {
            format!("measured processes pinned to core {CORE} (taskset)")
        } else {
            "taskset missing: measured processes NOT pinned to one core".into()
        }
    }

    /// `program` on the pinned core (taskset execs it: same pid, same rusage).
    pub(super) fn command(&self, program: &Path) -> Command {
        if self.taskset {
            let mut c = Command::new("taskset");
            c.args(["-c", CORE]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }
}

/// Waits for `pid` and returns its wait status and resource usage.
pub(super) fn wait4(pid: u32) -> Result<(i32, libc::rusage)> {
    let mut status = 0;
    // SAFETY: rusage is plain data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to locals; pid is our child, not yet waited for.
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if r == pid as libc::pid_t {
            return Ok((status, usage));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e).context("wait4");
        }
    }
}

pub(super) fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
}

pub(super) fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

/// `1234567.8` as `1 234 568`.
pub(super) fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

pub(super) fn verdict(what: &str, met: bool, target: &str) {
    println!(
        "{what}: target {target}: {}",
        if met { "met" } else { "MISSED" }
    );
}

/// How long ago `path` was built.
pub(super) fn age(path: &Path) -> String {
    let built = std::fs::metadata(path).and_then(|m| m.modified());
    match built
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
    {
        Some(d) if d.as_secs() < 120 => format!("built {} s ago", d.as_secs()),
        Some(d) => format!("built {} min ago", d.as_secs() / 60),
        None => "build time unknown".into(),
    }
}

fn progress(what: &str) {
    eprintln!("[decode] {what}");
}
