//! Section `load`: sustained DoH load through libssl. h2load (OpenSSL, so hooked) POSTs one
//! real DNS query per request to the lab's unbound over 64 HTTP/2 connections, rate-limited to
//! 20 000 requests/s in total, while the tracer (unfiltered, JSON to a file) runs throughout.
//! Then: requests sent and answered vs lookups the tracer reported for h2load's PID, the
//! tracer's loss counters, its CPU in cores (what it used during the measured run plus any
//! backlog it worked off after, over the run's wall time), its peak RSS, and its wakeups and CPU
//! while idle before the load (it should sleep when there is nothing to read). Short runs of the
//! same load untraced and (with --full) with empty uprobes only (bpftrace) say what the machine
//! can do.
//!
//! The measured run is `-n N` rather than `-D SECONDS`: with -D, requests still in flight at
//! the deadline are "started" but never "done", so h2load's counts and the tracer's could not
//! be compared exactly. N is sized from a short traced `-D` run to last about the profile's
//! load seconds.

use std::{
    fs::File,
    io::{BufRead as _, BufReader},
    path::Path,
    process::Stdio,
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use doh_trace_tests::{dns_query, Lab, UNBOUND_URL};

use super::{
    procs::{self, Bpftrace, TracerProc},
    Clock, Profile, SETTLE,
};

const CONNECTIONS: u32 = 64;
const TARGET_RPS: f64 = 20_000.0;
const CPU_TARGET_CORES: f64 = 0.5;
/// A name the lab's unbound answers from its local zone (tests/lab/unbound.conf.in).
const QNAME: &str = "www.doh.test";
/// unbound's default of 10 TCP/TLS connections would leave most of the 64 waiting.
const UNBOUND_LOAD_CONF: &str = "\nserver:\n  incoming-num-tcp: 256\n";

/// h2load's own counters.
struct H2load {
    pid: u32,
    started: u64,
    done: u64,
    succeeded: u64,
    failed: u64,
    errored: u64,
    timeout: u64,
    req_per_s: f64,
    finished_line: String,
    codes_line: String,
}

/// Runs the section and prints its report.
pub fn run(profile: &Profile, tracer: &Path, clock: &Clock) -> Result<()> {
    println!("== load: sustained DoH through libssl (h2load -> unbound, tracer running) ==");
    let lab = Lab::with_unbound_extra(UNBOUND_LOAD_CONF).context("starting unbound in a lab")?;
    let body = lab.dir.join("query.bin");
    std::fs::write(&body, dns_query(QNAME))?;
    let per_client = TARGET_RPS / f64::from(CONNECTIONS);
    println!(
        "h2load -c {CONNECTIONS} --rps {per_client} (= {TARGET_RPS:.0}/s in total), POST {UNBOUND_URL} ({QNAME} A)"
    );

    // What this machine can do without the tracer, for context (also warms unbound up).
    let timed = Length::Seconds(profile.h2load_warm_up_ms, profile.context_seconds);
    let untraced = h2load(&lab, &body, per_client, timed)?;
    clock.progress(&format!("untraced: {:.0} req/s", untraced.req_per_s));
    let floor = if profile.load_floor_run {
        let probes = Bpftrace::uprobes(&procs::libssl_of(&procs::on_path("h2load")?)?)?;
        thread::sleep(SETTLE);
        let h = h2load(&lab, &body, per_client, timed);
        probes.stop()?;
        let h = h?;
        clock.progress(&format!("empty uprobes: {:.0} req/s", h.req_per_s));
        format!("{:.0} req/s", h.req_per_s)
    } else {
        "not run (--full runs it)".to_string()
    };

    let out_path = lab.dir.join("lookups.jsonl");
    let t = TracerProc::start(tracer, &[], Stdio::from(File::create(&out_path)?))?;
    thread::sleep(SETTLE);
    let tracer_pid = t.pid();
    clock.progress(&t.ready);
    // Idle first: with nothing to read, the tracer should sleep (no polling timer).
    let (idle_ns0, idle_wakeups0) = procs::cpu_ns_and_wakeups(tracer_pid)?;
    thread::sleep(Duration::from_secs(profile.idle_seconds.into()));
    let (idle_ns1, idle_wakeups1) = procs::cpu_ns_and_wakeups(tracer_pid)?;
    let idle_s = f64::from(profile.idle_seconds);
    // Sums over threads: one that ended meanwhile takes its share with it.
    let idle_wakeups = idle_wakeups1.saturating_sub(idle_wakeups0) as f64 / idle_s;
    let idle_cpu_us = idle_ns1.saturating_sub(idle_ns0) as f64 / 1e3 / idle_s;
    // The measured run has a fixed request count (not -D), so every request completes and
    // the counts compare exactly; a traced timed run sizes it to last about `load_seconds`.
    let sizing = Length::Seconds(profile.h2load_warm_up_ms, profile.sizing_seconds);
    let warm = h2load(&lab, &body, per_client, sizing)?;
    let rate = warm.req_per_s.min(TARGET_RPS);
    let n = ((rate * f64::from(profile.load_seconds)) as u64).max(u64::from(CONNECTIONS));
    clock.progress(&format!(
        "traced sizing run: {:.0} req/s; measuring {n} requests",
        warm.req_per_s
    ));
    let cpu0 = procs::cpu_seconds(tracer_pid)?;
    let t0 = Instant::now();
    let h = h2load(&lab, &body, per_client, Length::Requests(n))?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = procs::cpu_seconds(tracer_pid)? - cpu0;

    // Let the tracer drain: until every request is reported, or its output stops growing.
    let mut counts = LookupCounter::open(&out_path, h.pid, warm.pid)?;
    let ended = Instant::now();
    counts.poll()?;
    let reported_at_end = counts.reported;
    let mut grew = ended;
    while counts.reported < h.started
        && grew.elapsed() < Duration::from_millis(1500)
        && ended.elapsed() < Duration::from_secs(60)
    {
        if counts.poll()? {
            grew = Instant::now();
        }
        thread::sleep(Duration::from_millis(100));
    }
    let drain = grew - ended;
    // CPU it spent after h2load ended (working off a backlog) belongs to the load too.
    let cpu_drain = procs::cpu_seconds(tracer_pid)? - cpu0 - cpu;
    let hwm_kib = procs::peak_rss_kib(tracer_pid)?;
    let summary = t.stop()?;
    counts.poll()?;
    let LookupCounter {
        reported,
        answered,
        warm: warm_reported,
        ..
    } = counts;
    clock.progress("tracer stopped");

    println!();
    println!("h2load (traced): {}", h.finished_line);
    println!("        {}", h.codes_line);
    println!(
        "        {} started, {} done, {} succeeded, {} failed, {} errored, {} timed out",
        h.started, h.done, h.succeeded, h.failed, h.errored, h.timeout
    );
    let achieved = if h.req_per_s >= TARGET_RPS * 0.98 {
        "target reached"
    } else {
        "BELOW the target"
    };
    println!(
        "achieved: {:.0} req/s of {TARGET_RPS:.0} with doh-trace ({achieved}); same load without \
         tracing: {:.0} req/s, with only empty uprobes on the 4 libssl functions: {floor}",
        h.req_per_s, untraced.req_per_s
    );
    println!(
        "tracer:   {reported} lookups reported for h2load (pid {}), {answered} answered (status ok); \
         {warm_reported} more for the sizing run",
        h.pid
    );
    let lost_sent = h.started as i64 - reported as i64;
    let lost_answered = h.succeeded as i64 - answered as i64;
    println!(
        "lost:     {lost_sent} of {} sent, {lost_answered} of {} succeeded  (target 0: {})",
        h.started,
        h.succeeded,
        if lost_sent == 0 && lost_answered == 0 {
            "met"
        } else {
            "NOT MET"
        }
    );
    println!(
        "          {} ring-buffer drops; {reported_at_end} lookups were written when h2load ended, \
         the last {:.1} s later",
        summary.ringbuf_drops,
        drain.as_secs_f64()
    );
    // Judged on all the CPU the load cost it (run + catching up) per second of load.
    let cores = (cpu + cpu_drain) / wall;
    println!(
        "CPU:      {cores:.3} cores = ({cpu:.2} s user+system during the {wall:.1} s run + {cpu_drain:.2} s \
         after it) / {wall:.1} s; {:.1} µs per request  target < {CPU_TARGET_CORES} (at the \
         achieved rate): {}",
        (cpu + cpu_drain) * 1e6 / h.done.max(1) as f64,
        if cores < CPU_TARGET_CORES {
            "met"
        } else {
            "NOT MET"
        }
    );
    let at_target = (cpu + cpu_drain) / h.done.max(1) as f64 * TARGET_RPS;
    println!(
        "          at {TARGET_RPS:.0} req/s that cost would be {at_target:.2} cores (linear \
         extrapolation, not measured): {}",
        if at_target < CPU_TARGET_CORES {
            "within target"
        } else {
            "over target"
        }
    );
    println!("peak RSS: {:.1} MiB (VmHWM)", hwm_kib as f64 / 1024.0);
    println!(
        "idle:     {idle_wakeups:.1} wakeups/s, {idle_cpu_us:.0} µs of CPU per second, over {} s \
         before the load (the host's own background activity included)",
        profile.idle_seconds
    );
    println!("tracer stop summary:");
    for line in summary.status_lines.iter().chain(&summary.lines) {
        println!("  {line}");
    }
    Ok(())
}

/// How long an h2load run lasts.
#[derive(Clone, Copy)]
enum Length {
    /// `--warm-up-time MS -D SECONDS`: the rate is measured after the warm-up (requests in
    /// flight at the end are not done).
    Seconds(u32, u32),
    /// `-n REQUESTS`.
    Requests(u64),
}

/// Runs h2load inside the lab and parses its counters.
fn h2load(lab: &Lab, body: &Path, per_client: f64, length: Length) -> Result<H2load> {
    let mut cmd = lab.command("h2load");
    match length {
        Length::Seconds(warm_up, s) => cmd
            .args(["--warm-up-time", &format!("{warm_up}ms")])
            .args(["-D", &s.to_string()]),
        Length::Requests(n) => cmd.args(["-n", &n.to_string()]),
    };
    let child = cmd
        .args(["-c", &CONNECTIONS.to_string()])
        .args(["--rps", &per_client.to_string()])
        .arg("-d")
        .arg(body)
        .args(["-H", "content-type: application/dns-message"])
        .args(["-H", "accept: application/dns-message"])
        .arg(UNBOUND_URL)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting h2load")?;
    let pid = child.id();
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "h2load failed ({}):\n{text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .map(str::to_string)
            .with_context(|| format!("no `{prefix}` line in h2load's output:\n{text}"))
    };
    let requests = line("requests:")?;
    // "requests: 10 total, 10 started, 10 done, 10 succeeded, 0 failed, 0 errored, 0 timeout"
    let count = |label: &str| -> Result<u64> {
        requests
            .split(',')
            .find_map(|part| part.trim().strip_suffix(label))
            .and_then(|n| n.trim().trim_start_matches("requests:").trim().parse().ok())
            .with_context(|| format!("no `{label}` count in {requests:?}"))
    };
    let finished_line = line("finished in")?;
    // "finished in 8.00s, 19999.88 req/s, 1.23MB/s"
    let req_per_s = finished_line
        .split(',')
        .find_map(|p| p.trim().strip_suffix(" req/s"))
        .and_then(|n| n.trim().parse().ok())
        .with_context(|| format!("no req/s in {finished_line:?}"))?;
    Ok(H2load {
        pid,
        started: count("started")?,
        done: count("done")?,
        succeeded: count("succeeded")?,
        failed: count("failed")?,
        errored: count("errored")?,
        timeout: count("timeout")?,
        req_per_s,
        finished_line,
        codes_line: line("status codes:")?,
    })
}

/// Counts the tracer's JSON lines as they are written: lookups of h2load's measured run
/// (`pid`), of them answered, and lookups of the sizing run (`warm_pid`).
struct LookupCounter {
    reader: BufReader<File>,
    line: String,
    pid: u32,
    warm_pid: u32,
    reported: u64,
    answered: u64,
    warm: u64,
}

impl LookupCounter {
    fn open(path: &Path, pid: u32, warm_pid: u32) -> Result<LookupCounter> {
        Ok(LookupCounter {
            reader: BufReader::new(File::open(path)?),
            line: String::new(),
            pid,
            warm_pid,
            reported: 0,
            answered: 0,
            warm: 0,
        })
    }

    /// Reads the complete lines written since the last call; true when there were any.
    fn poll(&mut self) -> Result<bool> {
        let mut any = false;
        // A line without its newline yet stays in `line` and is completed next time.
        while self.reader.read_line(&mut self.line)? > 0 {
            if !self.line.ends_with('\n') {
                break;
            }
            // Not a JSON parse: hundreds of thousands of lines must be counted in well under a
            // second, or reading them would pass for the tracer's own delay. The top-level
            // "pid" is the first one in a record (nested relay peers come later).
            let pid = top_level_pid(&self.line).with_context(|| {
                format!("the tracer printed a line without a pid: {}", self.line)
            })?;
            if pid == self.pid {
                self.reported += 1;
                if self.line.contains("\"status\":\"ok\"") {
                    self.answered += 1;
                }
            } else if pid == self.warm_pid {
                self.warm += 1;
            }
            self.line.clear();
            any = true;
        }
        Ok(any)
    }
}

/// The first `"pid":N` of a JSON line.
fn top_level_pid(line: &str) -> Option<u32> {
    let at = line.find("\"pid\":")? + "\"pid\":".len();
    let digits: &str = &line[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}
