//! Harness for doh-trace's privileged end-to-end tests: a private network namespace with real
//! DoH servers from Debian packages, real clients run inside it, and the real tracer binary
//! (with its real eBPF programs) watching from outside.
//!
//! Skipping: a test whose prerequisites are missing prints `SKIPPED: <why>` — unless
//! `DOH_TRACE_E2E=require` is set (CI sets it), in which case a missing prerequisite fails.

pub mod debian;
pub mod docker;
mod firefox;

pub use firefox::{firefox_command, firefox_profile, web_server, FIREFOX_PAGE};

use std::{
    ffi::OsStr,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        mpsc, Arc, Mutex, OnceLock,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

/// The Debian python3 that has dnspython, httpx and h2 (not a pyenv/venv one on PATH).
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// What is missing for the end-to-end tests to run, if anything.
pub fn missing_prerequisites(extra_programs: &[&str]) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some(
            "not root: the tracer needs CAP_BPF/CAP_PERFMON and the lab a network namespace".into(),
        );
    }
    for p in ["unbound", "curl", "openssl", "unshare", "nsenter", "ip"]
        .iter()
        .chain(extra_programs)
    {
        if which(p).is_none() {
            return Some(format!(
                "`{p}` is not installed (scripts/setup.sh installs it)"
            ));
        }
    }
    if !tracer_binary().exists() {
        return Some(format!(
            "no tracer binary at {} (build it: cargo xtask build-ebpf && cargo build --release)",
            tracer_binary().display()
        ));
    }
    None
}

/// Skips (prints why) or, under `DOH_TRACE_E2E=require`, fails the calling test.
pub fn skip_or_fail(why: &str) {
    if std::env::var("DOH_TRACE_E2E").as_deref() == Ok("require") {
        panic!("end-to-end test required (DOH_TRACE_E2E=require) but cannot run: {why}");
    }
    eprintln!("SKIPPED: {why}");
}

/// Returns early from a test (after printing why) when the environment cannot run it.
#[macro_export]
macro_rules! require_e2e {
    ($($extra:expr),*) => {
        if let Some(why) = $crate::missing_prerequisites(&[$($extra),*]) {
            $crate::skip_or_fail(&why);
            return;
        }
    };
}

fn which(program: &str) -> Option<PathBuf> {
    if program.starts_with('/') {
        return Path::new(program).exists().then(|| PathBuf::from(program));
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(program))
        .find(|p| p.exists())
}

/// The tracer under test: `$DOH_TRACE_BIN`, else the workspace's release build.
pub fn tracer_binary() -> PathBuf {
    std::env::var_os("DOH_TRACE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/doh-trace")
        })
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Sends `sig` to a process we started, by its PID.
pub fn signal(child: &Child, sig: i32) {
    // SAFETY: kill on a PID we spawned and have not reaped.
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// A network namespace with loopback up, real servers inside it, and a private work dir.
pub struct Lab {
    pub dir: PathBuf,
    holder: Child,
    servers: Vec<Child>,
}

static LAB_SEQ: AtomicU32 = AtomicU32::new(0);

impl Lab {
    /// A lab with unbound serving DoH on 127.0.0.1:8443 and [::1]:8443.
    pub fn with_unbound() -> Result<Lab> {
        Lab::with_unbound_extra("")
    }

    /// [`Lab::with_unbound`] with `extra` appended to unbound.conf, e.g. a second `server:`
    /// clause raising limits for load runs (`cargo xtask bench`).
    pub fn with_unbound_extra(extra: &str) -> Result<Lab> {
        let mut lab = Lab::empty()?;
        let template = format!("{}{extra}", include_str!("../lab/unbound.conf.in"));
        let conf = lab.config("unbound.conf", &template)?;
        lab.start_server(
            "unbound",
            &[OsStr::new("-d"), OsStr::new("-c"), conf.as_os_str()],
            &[8443],
        )?;
        Ok(lab)
    }

    /// unbound as above, plus dnsdist (h2o) serving DoH over TLS on 127.0.0.1:8444 (HTTP/1.1
    /// and HTTP/2) and in cleartext on 127.0.0.1:8081 (HTTP/1.1, h2c upgrade, h2c prior
    /// knowledge), forwarding to unbound.
    pub fn with_unbound_and_dnsdist() -> Result<Lab> {
        let mut lab = Lab::with_unbound()?;
        let conf = lab.config("dnsdist.conf", include_str!("../lab/dnsdist.conf.in"))?;
        let args = [
            OsStr::new("-C"),
            conf.as_os_str(),
            OsStr::new("--supervised"),
            OsStr::new("--disable-syslog"),
        ];
        lab.start_server("dnsdist", &args, &[8444, 8081])?;
        Ok(lab)
    }

    /// unbound, plus two dnsdist instances acting as local resolvers that clients ask in plain
    /// DNS: one on 127.0.0.1:53 forwarding upstream over DoH, one on 127.0.0.1:5354
    /// forwarding over DoT (tests/lab/relay-*.conf.in).
    pub fn with_relays() -> Result<Lab> {
        let mut lab = Lab::with_unbound()?;
        lab.wait_listening(8853, Duration::from_secs(30))?;
        for (name, template, port) in [
            (
                "relay-doh.conf",
                include_str!("../lab/relay-doh.conf.in"),
                53,
            ),
            (
                "relay-dot.conf",
                include_str!("../lab/relay-dot.conf.in"),
                5354,
            ),
        ] {
            let conf = lab.config(name, template)?;
            let args = [
                OsStr::new("-C"),
                conf.as_os_str(),
                OsStr::new("--supervised"),
                OsStr::new("--disable-syslog"),
            ];
            lab.start_server("dnsdist", &args, &[port])?;
        }
        Ok(lab)
    }

    /// Writes a config template into the work directory, `@W@` replaced by its path.
    fn config(&self, name: &str, template: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        std::fs::write(&path, template.replace("@W@", self.dir.to_str().unwrap()))?;
        Ok(path)
    }

    /// Starts a server inside the namespace (output to `NAME.log`) and waits for its ports.
    fn start_server(&mut self, program: &str, args: &[&OsStr], ports: &[u16]) -> Result<()> {
        let log = std::fs::File::create(self.dir.join(format!("{program}.log")))?;
        let child = self
            .command(program)
            .args(args)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {program}"))?;
        self.servers.push(child);
        for port in ports {
            self.wait_listening(*port, Duration::from_secs(30))?;
        }
        Ok(())
    }

    /// A namespace and work directory with a test PKI, no servers yet.
    pub fn empty() -> Result<Lab> {
        let dir = std::env::temp_dir().join(format!(
            "doh-trace-e2e-{}-{}",
            std::process::id(),
            LAB_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        make_pki(&dir.join("pki"))?;
        let holder = Command::new("unshare")
            .args([
                "-n",
                "--",
                "sh",
                "-c",
                "ip link set lo up && exec sleep 3600",
            ])
            .spawn()
            .context("creating a network namespace (unshare -n)")?;
        let lab = Lab {
            dir,
            holder,
            servers: Vec::new(),
        };
        // Wait until the holder is inside its namespace with loopback up.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ns = std::fs::read_link(format!("/proc/{}/ns/net", lab.holder.id())).ok();
            let ours = std::fs::read_link("/proc/self/ns/net").ok();
            // The holder execs `sleep` only after `ip link set lo up` succeeded.
            let lo_up = std::fs::read_to_string(format!("/proc/{}/comm", lab.holder.id()))
                .is_ok_and(|c| c.trim() == "sleep");
            if ns.is_some() && ns != ours && lo_up {
                break;
            }
            if Instant::now() > deadline {
                bail!("network namespace did not come up");
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(lab)
    }

    /// A command that runs inside the lab's network namespace. `nsenter` execs the program,
    /// so the spawned child's PID is the program's PID.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/proc/{}/ns/net", self.holder.id()))
            .arg("--")
            .arg(program);
        c
    }

    /// The namespace's `/proc/PID/ns/net` link (for `nsenter --net=`).
    pub fn net_ns(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.holder.id()))
    }

    /// The test CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("pki/ca.pem")
    }

    /// Waits until something in the namespace listens on TCP `port`.
    pub fn wait_listening(&self, port: u16, timeout: Duration) -> Result<()> {
        self.wait_bound(&["tcp", "tcp6"], "0A", port, timeout)
    }

    /// Waits until something in the namespace has UDP `port` bound.
    pub fn wait_listening_udp(&self, port: u16, timeout: Duration) -> Result<()> {
        self.wait_bound(&["udp", "udp6"], "07", port, timeout)
    }

    /// Waits for a socket on local `port` in state `state` (0A = TCP LISTEN, 07 = UDP bound)
    /// in one of the namespace's /proc/net `tables`.
    fn wait_bound(&self, tables: &[&str], state: &str, port: u16, timeout: Duration) -> Result<()> {
        let needle = format!(":{port:04X} ");
        let deadline = Instant::now() + timeout;
        loop {
            for table in tables {
                let text =
                    std::fs::read_to_string(format!("/proc/{}/net/{table}", self.holder.id()))
                        .unwrap_or_default();
                // state 0A = LISTEN
                if text
                    .lines()
                    .any(|l| l.contains(&needle) && l.split_whitespace().nth(3) == Some(state))
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = ["unbound.log", "dnsdist.log"]
                    .iter()
                    .filter_map(|f| std::fs::read_to_string(self.dir.join(f)).ok())
                    .collect();
                bail!(
                    "nothing listens on port {port} in the lab; server logs:\n{}",
                    logs.join("\n")
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for s in &mut self.servers {
            signal(s, libc::SIGTERM);
            let _ = s.wait();
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A CA and a leaf for doh.test/localhost/127.0.0.1/::1 (some TLS stacks reject a CA cert
/// used as the server certificate, so the server gets a proper leaf).
fn make_pki(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let d = |f: &str| dir.join(f);
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
        ])
        .arg(d("ca.key"))
        .arg("-out")
        .arg(d("ca.pem"))
        .args(["-days", "30", "-subj", "/CN=doh-trace test CA"])
        .args([
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]))?;
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
        ])
        .arg(d("server.key"))
        .arg("-out")
        .arg(d("server.csr"))
        .args(["-subj", "/CN=doh.test"]))?;
    std::fs::write(
        d("server.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n\
         subjectAltName=DNS:doh.test,DNS:localhost,DNS:dns.google,IP:127.0.0.1,IP:::1\n",
    )?;
    run(Command::new("openssl")
        .args(["x509", "-req", "-in"])
        .arg(d("server.csr"))
        .arg("-CA")
        .arg(d("ca.pem"))
        .arg("-CAkey")
        .arg(d("ca.key"))
        .arg("-CAcreateserial")
        .arg("-out")
        .arg(d("server.pem"))
        .args(["-days", "30", "-extfile"])
        .arg(d("server.ext")))?;
    let chain = [std::fs::read(d("server.pem"))?, std::fs::read(d("ca.pem"))?].concat();
    std::fs::write(d("server-chain.pem"), chain)?;
    Ok(())
}

/// The record schemas (docs/schema/*.v1.schema.json), compiled once: (lookup, connection).
fn schemas() -> &'static (boon::Schemas, boon::SchemaIndex, boon::SchemaIndex) {
    static SCHEMAS: OnceLock<(boon::Schemas, boon::SchemaIndex, boon::SchemaIndex)> =
        OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        compiler.enable_format_assertions();
        let mut compile = |id: &str, text: &str| {
            let json: Value = serde_json::from_str(text).expect("schema is JSON");
            compiler.add_resource(id, json).expect("schema resource");
            compiler
                .compile(id, &mut schemas)
                .unwrap_or_else(|e| panic!("{id} does not compile: {e:#}"))
        };
        let lookup = compile(
            "https://doh-trace.invalid/schema/lookup.v1.json",
            include_str!("../../docs/schema/lookup.v1.schema.json"),
        );
        let connection = compile(
            "https://doh-trace.invalid/schema/connection.v1.json",
            include_str!("../../docs/schema/connection.v1.schema.json"),
        );
        (schemas, lookup, connection)
    })
}

/// Panics with the validation errors and the line when a record printed by the tracer does
/// not match its schema (connection records, from `--connections`, carry `closed_by`).
fn check_record(v: &Value, line: &str) {
    let (schemas, lookup, connection) = schemas();
    let (index, file) = if v.get("closed_by").is_some() {
        (connection, "connection.v1.schema.json")
    } else {
        (lookup, "lookup.v1.schema.json")
    };
    if let Err(e) = schemas.validate(v, *index) {
        panic!(
            "tracer printed a record that does not match docs/schema/{file}:\n{e:#}\nline: {line}"
        );
    }
}

/// The real tracer, running with its real eBPF programs.
pub struct Tracer {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// Every JSON line seen so far.
    pub seen: Vec<Value>,
}

impl Tracer {
    /// Starts `doh-trace --json ARGS` and waits for its `ready` line.
    pub fn start(args: &[&str]) -> Result<Tracer> {
        let mut cmd = Command::new(tracer_binary());
        cmd.arg("--json").args(args);
        Tracer::spawn(cmd)
    }

    /// Starts `cmd`, a tracer printing JSON lines on stdout and its `ready` line on stderr
    /// (the binary itself, or e.g. `docker run` of the image in the foreground), and waits
    /// for that line.
    pub fn spawn(mut cmd: Command) -> Result<Tracer> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {:?}", cmd.get_program()))?;
        let (tx, stdout) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
                eprintln!("[tracer] {line}");
                if line.starts_with("ready") {
                    let _ = ready_tx.send(());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let mut t = Tracer {
            child,
            stdout,
            stderr,
            seen: Vec::new(),
        };
        match ready_rx.recv_timeout(Duration::from_secs(120)) {
            Ok(()) => Ok(t),
            Err(_) => {
                let _ = t.child.kill();
                let _ = t.child.wait();
                bail!(
                    "tracer never said ready; stderr:\n{}",
                    t.stderr.lock().unwrap().join("\n")
                )
            }
        }
    }

    /// Collects lookups until `done(all lookups so far)` holds or `timeout` passes; returns
    /// every lookup seen so far.
    pub fn wait_for(&mut self, timeout: Duration, done: impl Fn(&[Value]) -> bool) -> &[Value] {
        let deadline = Instant::now() + timeout;
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if let Ok(line) = self.stdout.recv_timeout(left) {
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                check_record(&v, &line);
                self.seen.push(v);
            }
        }
        &self.seen
    }

    /// Waits until the tracer's stderr has a line containing `needle` (true) or `timeout`
    /// passes (false).
    pub fn wait_for_stderr(&self, timeout: Duration, needle: &str) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(needle))
            {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Lookups of process `pid` seen so far.
    pub fn of_pid(&self, pid: u32) -> Vec<&Value> {
        self.seen.iter().filter(|v| v["pid"] == pid).collect()
    }

    /// The tracer's process id (for /proc/PID/status).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `sig` to the tracer without waiting (e.g. SIGSTOP/SIGCONT to stall its reader).
    pub fn signal(&self, sig: i32) {
        signal(&self.child, sig);
    }

    /// Stops the tracer with `sig`, checks it exited cleanly and said so, and that none of its
    /// programs is left loaded (bpftool); returns its stderr.
    pub fn stop_cleanly(&mut self, sig: i32) -> Vec<String> {
        let (status, stderr) = self.stop(sig).unwrap();
        assert!(
            status.success(),
            "tracer exit {status:?}; stderr:\n{}",
            stderr.join("\n")
        );
        assert!(
            stderr
                .iter()
                .any(|l| l.contains("stopped, all probes detached")),
            "{stderr:?}"
        );
        assert_no_program_left();
        stderr
    }

    /// Sends `sig`, waits for the exit, and returns the exit status and all of stderr.
    pub fn stop(&mut self, sig: i32) -> Result<(ExitStatus, Vec<String>)> {
        signal(&self.child, sig);
        self.wait_exit(Duration::from_secs(30))
            .with_context(|| format!("after signal {sig}"))
    }

    /// Waits up to `timeout` for the tracer to exit (stopped by other means, e.g. `docker
    /// stop`), and returns the exit status and all of stderr; kills it if it does not.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<(ExitStatus, Vec<String>)> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait()? {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("tracer did not exit within {} s", timeout.as_secs());
            }
            thread::sleep(Duration::from_millis(50));
        };
        // Drain what is left of stdout.
        while let Ok(line) = self.stdout.recv_timeout(Duration::from_millis(200)) {
            if let Ok(v) = serde_json::from_str(&line) {
                check_record(&v, &line);
                self.seen.push(v);
            }
        }
        thread::sleep(Duration::from_millis(100));
        let err = self.stderr.lock().unwrap().clone();
        Ok((status, err))
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            signal(&self.child, libc::SIGTERM);
            let _ = self.child.wait();
        }
    }
}

/// Runs a client to completion and returns (pid, exit status, stdout).
pub fn run_client(mut cmd: Command) -> Result<(u32, ExitStatus, String, Instant)> {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("{cmd:?}"))?;
    let pid = child.id();
    let out = child.wait_with_output()?;
    let ended = Instant::now();
    if !out.stderr.is_empty() {
        eprintln!(
            "[client {pid}] {}",
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok((
        pid,
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        ended,
    ))
}

/// Name prefixes of the tracer's eBPF programs (bpftool shows 15 characters).
pub const OUR_PROGRAM_PREFIXES: &[&str] = &[
    "openssl_ssl",
    "gnutls_record",
    "nspr_",
    "go_tls_",
    "sys_enter_",
    "sys_exit_",
    "sched_process_e",
];

/// Panics if bpftool shows one of the tracer's programs still loaded.
pub fn assert_no_program_left() {
    let names = loaded_bpf_program_names()
        .expect("bpftool lists loaded programs (scripts/setup.sh installs it)");
    let ours: Vec<_> = names
        .iter()
        .filter(|n| OUR_PROGRAM_PREFIXES.iter().any(|p| n.starts_with(p)))
        .collect();
    assert!(
        ours.is_empty(),
        "programs still loaded after exit: {ours:?}"
    );
}

/// Names of loaded BPF programs (via bpftool), to check nothing is left attached.
pub fn loaded_bpf_program_names() -> Option<Vec<String>> {
    let out = Command::new("bpftool")
        .args(["-j", "prog", "show"])
        .output()
        .ok()?;
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    Some(
        v.as_array()?
            .iter()
            .filter_map(|p| p["name"].as_str().map(String::from))
            .collect(),
    )
}

/// The DoH URL of the lab's unbound.
pub const UNBOUND_URL: &str = "https://127.0.0.1:8443/dns-query";

/// curl resolving `host` through the lab's unbound over DoH (it then fails to connect to port
/// 18080, which is fine: only the lookups matter).
pub fn curl_doh(lab: &Lab, host: &str) -> Command {
    let mut c = lab.command("curl");
    c.args([
        "-sS",
        "--connect-timeout",
        "5",
        "--max-time",
        "10",
        "--cacert",
    ])
    .arg(lab.ca())
    .args(["--doh-url", UNBOUND_URL])
    .arg(format!("http://{host}:18080/"));
    c
}

/// Lookups of process `pid` among `seen`.
pub fn count(seen: &[Value], pid: u32) -> usize {
    seen.iter().filter(|v| v["pid"] == pid).count()
}

/// The number right before `label` in the tracer's exit summary line.
pub fn summary_count(stderr: &[String], label: &str) -> u64 {
    let summary = stderr
        .iter()
        .find(|l| l.contains("stopped, all probes detached"))
        .expect("the tracer printed its exit summary");
    let end = summary
        .find(label)
        .unwrap_or_else(|| panic!("no '{label}' in {summary}"));
    let digits: String = summary[..end]
        .trim_end()
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.chars().rev().collect::<String>().parse().unwrap()
}

/// The Debian python3 DoH client (tests/lab/doh_client.py: dnspython + httpx, so OpenSSL's
/// SSL_write_ex/SSL_read_ex) looking up `specs` (`NAME/TYPE[/get]`) through the lab's unbound.
pub fn python_doh_client(lab: &Lab, specs: &[&str]) -> Command {
    let mut py = lab.command(SYSTEM_PYTHON);
    py.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/lab/doh_client.py"))
        .arg(lab.ca())
        .arg(UNBOUND_URL)
        .args(specs);
    py
}

/// The keep-alive python client (tests/lab/doh_keepalive.py): one lookup, then it waits on
/// its open HTTP/2 connection until `go` exists, then looks up the rest of `specs`.
pub fn keepalive_client(lab: &Lab, go: &Path, specs: &[&str]) -> Command {
    let mut py = lab.command(SYSTEM_PYTHON);
    py.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/lab/doh_keepalive.py"))
        .arg(lab.ca())
        .arg(UNBOUND_URL)
        .arg(go)
        .args(specs);
    py
}

/// Starts a client that prints "first done" after its first lookup, and returns once it has
/// (the rest of its stdout is read and discarded).
pub fn start_until_first_done(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::piped());
    let mut child = cmd.spawn().expect("start the client");
    let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    while !line.contains("first done") {
        line.clear();
        let n = out.read_line(&mut line).expect("read the client's stdout");
        assert!(n > 0, "the client ended before its first lookup");
    }
    // Keep reading, so the client's later prints never hit a closed pipe.
    thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    child
}

/// A DNS query for `name` type A (id 0x1234, RD) in wire format, as a DoH body.
pub fn dns_query(name: &str) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// curl POSTing the DoH body in `body` to `url`, with extra `http_args` (e.g. `--http1.1`).
pub fn curl_doh_post(lab: &Lab, body: &Path, http_args: &[&str], url: &str) -> Command {
    let mut c = lab.command("curl");
    c.args(["-sS", "-o", "/dev/null", "--max-time", "10", "--cacert"])
        .arg(lab.ca())
        .args(http_args)
        .args([
            "-H",
            "content-type: application/dns-message",
            "--data-binary",
        ])
        .arg(format!("@{}", body.display()))
        .arg(url);
    c
}

/// One line per record of `seen` (`pid comm qname qtype transport status method stream
/// client→server`), for assertion messages that must fit a VM console's tail.
pub fn brief(seen: &[Value]) -> String {
    let s = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let end = |v: &Value| {
        if v.is_null() {
            "-".to_string()
        } else {
            format!("{}:{}", s(&v["ip"]), s(&v["port"]))
        }
    };
    seen.iter()
        .map(|v| {
            format!(
                "{} {} {} {} {} {} {} {} {}→{}\n",
                s(&v["pid"]),
                s(&v["comm"]),
                s(&v["qname"]),
                s(&v["qtype"]),
                s(&v["transport"]),
                s(&v["status"]),
                s(&v["method"]),
                s(&v["stream_id"]),
                end(&v["client"]),
                end(&v["server"])
            )
        })
        .collect()
}
