//! Processes the benchmark starts and watches: the tracer (ready line, stop summary), bpftrace
//! with empty probes (the floor), idle helpers; /proc figures (CPU time, peak RSS); and the
//! check that no tracer or bpftrace program stays loaded. Every child is stopped by its PID,
//! also when the benchmark fails half-way (Drop).

use std::{
    io::{BufRead as _, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{mpsc, Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
// The libssl functions and tracepoints doh-trace hooks: the floors probe the same.
use doh_trace_common::{OPENSSL_FUNCTIONS, TRACEPOINTS};
use serde_json::Value;

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill on the PID of a child we spawned and have not reaped yet.
    unsafe { libc::kill(pid as i32, sig) };
}

/// Sends `sig` (unless None: already sent), waits up to `grace`, then SIGKILLs; returns
/// whether it exited by itself.
fn stop_child(child: &mut Child, sig: Option<i32>, grace: Duration) -> bool {
    if let Ok(Some(_)) = child.try_wait() {
        return true;
    }
    if let Some(sig) = sig {
        signal(child.id(), sig);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// A child killed (SIGTERM, then SIGKILL) when dropped.
pub struct Guard(pub Child);

impl Guard {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        stop_child(&mut self.0, Some(libc::SIGTERM), Duration::from_secs(5));
    }
}

/// Reads `reader` line by line on a thread: every line goes to `sink`, and the first line
/// for which `signal_on` holds is also sent on the returned channel.
fn collect_lines(
    reader: impl Read + Send + 'static,
    sink: Arc<Mutex<Vec<String>>>,
    signal_on: impl Fn(&str) -> bool + Send + 'static,
) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(|l| l.ok()) {
            if signal_on(&line) {
                let _ = tx.send(line.clone());
            }
            sink.lock().unwrap().push(line);
        }
    });
    rx
}

/// The tracer, started with its real eBPF programs.
pub struct TracerProc {
    child: Option<Child>,
    interrupted: bool,
    stderr: Arc<Mutex<Vec<String>>>,
    /// Its `ready: …` line.
    pub ready: String,
}

/// What the tracer said when it stopped.
pub struct StopSummary {
    /// Its stderr from the `stopped, all probes detached` line on.
    pub lines: Vec<String>,
    /// "N TLS library calls captured by the uprobes".
    pub tls_calls: u64,
    /// "N events lost (ring buffer full)" (absent: 0).
    pub ringbuf_drops: u64,
    /// `status:` lines it printed while running (new problems).
    pub status_lines: Vec<String>,
}

impl TracerProc {
    /// Starts `bin --json ARGS` with stdout to `stdout` and waits for `ready:` on stderr.
    pub fn start(bin: &Path, args: &[&str], stdout: Stdio) -> Result<TracerProc> {
        let mut child = Command::new(bin)
            .arg("--json")
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let ready = collect_lines(child.stderr.take().unwrap(), stderr.clone(), |l| {
            l.starts_with("ready")
        });
        let mut t = TracerProc {
            child: Some(child),
            interrupted: false,
            stderr,
            ready: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(line) = ready.recv_timeout(Duration::from_millis(100)) {
                t.ready = line;
                return Ok(t);
            }
            let exited = t.child.as_mut().unwrap().try_wait()?.is_some();
            if exited || Instant::now() > deadline {
                drop(t.child.take().map(Guard));
                bail!(
                    "the tracer never said ready; stderr:\n{}",
                    t.stderr.lock().unwrap().join("\n")
                );
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends SIGINT without waiting: it detaches its probes (slow) while the caller goes on;
    /// [`TracerProc::stop`] then waits for the exit.
    pub fn interrupt(&mut self) {
        if let Some(c) = &self.child {
            if !self.interrupted {
                signal(c.id(), libc::SIGINT);
                self.interrupted = true;
            }
        }
    }

    /// Stops it with SIGINT (unless [`TracerProc::interrupt`] did), checks it exited cleanly,
    /// and parses its stop summary.
    pub fn stop(mut self) -> Result<StopSummary> {
        let mut child = self.child.take().unwrap();
        let sig = (!self.interrupted).then_some(libc::SIGINT);
        if !stop_child(&mut child, sig, Duration::from_secs(30)) {
            bail!("the tracer did not exit within 30 s of SIGINT (killed)");
        }
        let status = child.wait()?;
        // The stderr thread ends at EOF; give it a moment to push the last lines.
        thread::sleep(Duration::from_millis(200));
        let all = self.stderr.lock().unwrap().clone();
        if !status.success() {
            bail!(
                "the tracer exited with {status}; stderr:\n{}",
                all.join("\n")
            );
        }
        let Some(start) = all
            .iter()
            .position(|l| l.contains("stopped, all probes detached"))
        else {
            bail!(
                "the tracer printed no stop summary; stderr:\n{}",
                all.join("\n")
            );
        };
        let lines = all[start..].to_vec();
        let count = |label: &str| {
            lines
                .iter()
                .find_map(|l| l.strip_prefix("doh-trace: ")?.strip_suffix(label))
                .and_then(|n| n.trim().parse().ok())
        };
        let Some(tls_calls) = count("TLS library calls captured by the uprobes") else {
            bail!("no TLS-call count in the tracer's stop summary: {lines:?}");
        };
        Ok(StopSummary {
            tls_calls,
            ringbuf_drops: count("events lost (ring buffer full)").unwrap_or(0),
            status_lines: all
                .iter()
                .filter(|l| l.starts_with("doh-trace: status:"))
                .cloned()
                .collect(),
            lines,
        })
    }
}

impl Drop for TracerProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let sig = (!self.interrupted).then_some(libc::SIGINT);
            stop_child(&mut c, sig, Duration::from_secs(30));
        }
    }
}

/// bpftrace with empty probes: a floor the tracer is measured against.
pub struct Bpftrace {
    child: Option<Child>,
    /// The probes it attached (verified with `bpftool perf`).
    pub probes: usize,
}

impl Bpftrace {
    /// Empty uprobes and uretprobes on [`OPENSSL_FUNCTIONS`] in `libssl`: the floor every
    /// uprobe tracer of those calls pays.
    pub fn uprobes(libssl: &Path) -> Result<Bpftrace> {
        let lib = libssl.display();
        let script: String = OPENSSL_FUNCTIONS
            .iter()
            .map(|f| format!("uprobe:{lib}:{f} {{}} uretprobe:{lib}:{f} {{}} "))
            .collect();
        Self::start(
            &script,
            2 * OPENSSL_FUNCTIONS.len(),
            &["uprobe", "uretprobe"],
        )
    }

    /// Empty programs on every tracepoint the tracer attaches ([`TRACEPOINTS`]): the floor its
    /// syscall tracepoints cost every process, traced or not.
    pub fn tracepoints() -> Result<Bpftrace> {
        let script: String = TRACEPOINTS
            .iter()
            .map(|tp| format!("tracepoint:{}:{} {{}} ", tp.category, tp.name))
            .collect();
        Self::start(&script, TRACEPOINTS.len(), &["tracepoint"])
    }

    /// Starts `script` and returns once its `want` probes are attached (its "Attaching N
    /// probes..." line and N perf links of `kinds` held by its PID in `bpftool perf list`).
    fn start(script: &str, want: usize, kinds: &[&str]) -> Result<Bpftrace> {
        let mut child = Command::new("bpftrace")
            .args(["-e", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting bpftrace")?;
        let out = Arc::new(Mutex::new(Vec::new()));
        let attaching = collect_lines(child.stdout.take().unwrap(), out.clone(), |l| {
            l.starts_with("Attaching")
        });
        let _ = collect_lines(child.stderr.take().unwrap(), out.clone(), |_| false);
        let mut b = Bpftrace {
            child: Some(child),
            probes: 0,
        };
        let line = attaching
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| {
                anyhow::anyhow!(
                    "bpftrace did not start attaching; output:\n{}",
                    out.lock().unwrap().join("\n")
                )
            })?;
        if line != format!("Attaching {want} probes...") {
            bail!("bpftrace said {line:?}, expected {want} probes");
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            b.probes = perf_links_of(b.pid(), kinds)?.len();
            if b.probes == want {
                return Ok(b);
            }
            if b.child.as_mut().unwrap().try_wait()?.is_some() || Instant::now() > deadline {
                bail!(
                    "bpftrace attached {} of {want} probes; output:\n{}",
                    b.probes,
                    out.lock().unwrap().join("\n")
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Stops it with SIGINT (it detaches and exits).
    pub fn stop(mut self) -> Result<()> {
        let mut child = self.child.take().unwrap();
        if !stop_child(&mut child, Some(libc::SIGINT), Duration::from_secs(20)) {
            bail!("bpftrace did not exit within 20 s of SIGINT (killed)");
        }
        Ok(())
    }
}

impl Drop for Bpftrace {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, Some(libc::SIGINT), Duration::from_secs(20));
        }
    }
}

/// The ids of the programs behind the perf links of `kinds` (`uprobe`, `tracepoint`...) held by
/// process `pid` (`bpftool -j perf list`).
fn perf_links_of(pid: u32, kinds: &[&str]) -> Result<Vec<u64>> {
    let out = Command::new("bpftool")
        .args(["-j", "perf", "list"])
        .output()
        .context("running bpftool perf list")?;
    let v: Value = serde_json::from_slice(&out.stdout).context("parsing bpftool perf list")?;
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .filter(|l| {
                    l["pid"] == pid && l["fd_type"].as_str().is_some_and(|k| kinds.contains(&k))
                })
                .filter_map(|l| l["prog_id"].as_u64())
                .collect()
        })
        .unwrap_or_default())
}

/// Fails when a tracer or bpftrace program is still loaded (`bpftool prog show`).
pub fn check_no_leftovers() -> Result<()> {
    let names = doh_trace_tests::loaded_bpf_program_names()
        .context("bpftool could not list the loaded BPF programs")?;
    let left: Vec<&String> = names
        .iter()
        .filter(|n| {
            doh_trace_tests::OUR_PROGRAM_PREFIXES
                .iter()
                .any(|p| n.starts_with(p))
                || OPENSSL_FUNCTIONS.contains(&n.as_str())
        })
        .collect();
    if !left.is_empty() {
        bail!("tracer or bpftrace programs are still loaded: {left:?}");
    }
    Ok(())
}

/// The libssl `exe` loads (from ldd), canonical, so probes go on the very file it maps.
pub fn libssl_of(exe: &Path) -> Result<PathBuf> {
    let out = Command::new("ldd")
        .arg(exe)
        .output()
        .context("running ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let path = text
        .lines()
        .find(|l| l.trim_start().starts_with("libssl.so"))
        .and_then(|l| l.split("=>").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .with_context(|| format!("{} does not load a libssl (ldd):\n{text}", exe.display()))?;
    Ok(Path::new(path).canonicalize()?)
}

/// `program` found on PATH.
pub fn on_path(program: &str) -> Result<PathBuf> {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(program))
                .find(|p| p.is_file())
        })
        .with_context(|| format!("`{program}` is not on PATH"))
}

/// User + system CPU time of process `pid` so far, in seconds (/proc/PID/stat).
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').context("malformed /proc/PID/stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    Ok(ticks as f64 / hz as f64)
}

/// CPU time (scheduler nanoseconds, finer than `cpu_seconds`' clock ticks) and voluntary
/// context switches (each a sleep it woke from), summed over the threads of `pid`.
pub fn cpu_ns_and_wakeups(pid: u32) -> Result<(u64, u64)> {
    let (mut ns, mut wakeups) = (0u64, 0u64);
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let dir = task?.path();
        let schedstat = std::fs::read_to_string(dir.join("schedstat"))?;
        ns += schedstat
            .split_whitespace()
            .next()
            .context("empty schedstat")?
            .parse::<u64>()?;
        let status = std::fs::read_to_string(dir.join("status"))?;
        wakeups += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .context("no voluntary_ctxt_switches")?
            .trim()
            .parse::<u64>()?;
    }
    Ok((ns, wakeups))
}

/// Peak resident set size of process `pid` in KiB (VmHWM in /proc/PID/status).
pub fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/PID/status")
}
