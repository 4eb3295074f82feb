//! Section `capture`: `doh-trace read` of packet captures, side by side with tshark on the
//! same files.
//!
//! - DoH: real clients (httpx on OpenSSL, several HTTP/2 connections, POST and GET, keys
//!   logged) against the lab's unbound, captured by dumpcap on the lab's loopback; `read
//!   --keylog` against `tshark -o tls.keylog_file:` decoding the same DNS responses, which
//!   both must count alike; the ratio of their rates (CPU time of each process).
//! - Skipped traffic: large HTTPS downloads (curl from `openssl s_server -WWW`, keys logged)
//!   captured beside a few DoH lookups; MB of capture per CPU second of `read --keylog`, and
//!   tshark's rate on the same file without decryption.
//! - Memory: peak RSS of `read` on synthetic captures of 10 000 concurrent TLS flows
//!   ([`super::flowgen`]) of two sizes, and tshark's on the smaller one.
//!
//! Captures are cached in target/bench-capture, keyed by their parameters (and
//! [`CACHE_VERSION`]), so a rerun measures the same files without making them again.
//! Every figure is measured in this run; only the targets are constants.

use std::{
    fs::File,
    io::{BufRead as _, BufReader},
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context as _, Result};
use doh_trace_tests::{signal, Lab, UNBOUND_URL};
use serde_json::Value;

use super::{
    decode::{mib, thousands, timeval, tshark_version, verdict, wait4, Pin},
    flowgen, Clock,
};

/// doh-trace's rate over tshark's on the same encrypted DoH capture.
const TSHARK_RATIO_TARGET: f64 = 50.0;
/// MB (10^6 bytes) of capture per CPU second, mostly skipped traffic.
const SKIP_TARGET_MB_S: f64 = 500.0;
/// Peak RSS reading 10 000 concurrent flows.
const RSS_TARGET_MIB: f64 = 128.0;
/// Concurrent flows of the memory case.
const FLOWS: usize = 10_000;
/// Bumped when what a cached capture holds changes.
const CACHE_VERSION: u32 = 2;
/// The DoH server in the lab, for the clients (unbound: tests/lab/unbound.conf.in).
const UNBOUND_CONF: &str = "\nserver:\n  incoming-num-tcp: 256\n";
/// The HTTPS server of the bulk downloads, in the lab.
const BULK_PORT: u16 = 9443;

/// Sizes of one run.
struct Sizes {
    /// DoH connections and lookups on each.
    doh_connections: usize,
    doh_lookups: usize,
    /// Bulk downloads and MiB each.
    downloads: usize,
    download_mib: usize,
    /// The two synthetic captures' sizes, MiB.
    flow_sizes_mib: [u64; 2],
    /// Runs of each doh-trace measurement (the fastest reported).
    runs: usize,
    /// tshark on the bulk capture gives up after this long.
    tshark_bulk_timeout: Duration,
}

const QUICK: Sizes = Sizes {
    doh_connections: 8,
    doh_lookups: 500,
    downloads: 4,
    download_mib: 64,
    flow_sizes_mib: [256, 1024],
    runs: 1,
    tshark_bulk_timeout: Duration::from_secs(120),
};
const FULL: Sizes = Sizes {
    doh_connections: 16,
    doh_lookups: 1_250,
    downloads: 16,
    download_mib: 64,
    flow_sizes_mib: [512, 2048],
    runs: 3,
    tshark_bulk_timeout: Duration::from_secs(600),
};

/// Runs the section.
pub fn run(quick: bool, tracer: &Path, clock: &Clock) -> Result<()> {
    let sizes = if quick { &QUICK } else { &FULL };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf();
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => root.join(t),
        None => root.join("target"),
    };
    let dir = target.join("bench-capture");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    let pin = Pin::detect();
    let version = tshark_version().unwrap_or_else(|| "tshark ?".into());
    println!("== capture: doh-trace read of packet captures, beside {version} ==");
    println!(
        "  captures cached in {} (reused when there); {}",
        dir.display(),
        pin.describe()
    );

    // 1. Encrypted DoH against tshark.
    let doh = doh_capture(&dir, sizes, clock)?;
    clock.progress("capture: reading the DoH capture (doh-trace, tshark)");
    let ours = best_of(sizes.runs, || {
        read(&pin, tracer, &doh.pcap, Some(&doh.keys), &dir)
    })?;
    let theirs =
        tshark(&pin, &doh.pcap, Some(&doh.keys), &dir, None)?.context("tshark did not finish")?;
    let bytes = file_len(&doh.pcap)?;
    println!(
        "  DoH, encrypted: {} lookups by httpx ({} HTTP/2 connections, POST and GET) to \
         unbound, {:.1} MiB, {} packets; key log given (--keylog / -o tls.keylog_file:)",
        doh.responses,
        sizes.doh_connections,
        mib(bytes),
        ours.packets
    );
    for (who, r) in [("doh-trace read", &ours), ("tshark", &theirs)] {
        println!(
            "    {who:14} {:>7} DNS responses, {:.3} s CPU ({:.3} s wall): {} responses/s, \
             peak RSS {:.1} MiB",
            r.responses,
            r.cpu_s(),
            r.wall.as_secs_f64(),
            thousands(r.responses as f64 / r.cpu_s()),
            r.rss_mib()
        );
    }
    ensure!(
        ours.responses == theirs.responses && ours.responses == doh.responses,
        "DNS responses differ: doh-trace {}, tshark {}, the clients got {}",
        ours.responses,
        theirs.responses,
        doh.responses
    );
    println!(
        "    same count on both sides and the clients' ({})",
        doh.responses
    );
    let ratio = theirs.cpu_s() / ours.cpu_s();
    verdict(
        &format!("    doh-trace/tshark {ratio:.1}× (CPU time)"),
        ratio >= TSHARK_RATIO_TARGET,
        &format!("≥ {TSHARK_RATIO_TARGET}×"),
    );

    // 2. Mostly skipped traffic.
    let bulk = bulk_capture(&dir, sizes, clock)?;
    clock.progress("capture: reading the bulk capture");
    let bytes = file_len(&bulk.pcap)?;
    let ours = best_of(sizes.runs, || {
        read(&pin, tracer, &bulk.pcap, Some(&bulk.keys), &dir)
    })?;
    ensure!(
        ours.responses == bulk.responses,
        "doh-trace found {} DNS responses in the bulk capture, the clients got {}",
        ours.responses,
        bulk.responses
    );
    let our_rate = bytes as f64 / 1e6 / ours.cpu_s();
    println!(
        "  skipped traffic: {} HTTPS downloads of {} MiB (curl ← openssl s_server, keys \
         logged; MTU 1500, no GSO) beside {} DoH lookups: {:.1} MiB, {} packets",
        sizes.downloads,
        sizes.download_mib,
        bulk.responses,
        mib(bytes),
        ours.packets,
    );
    println!(
        "    doh-trace read --keylog: {:.3} s CPU ({:.3} s wall): {our_rate:.0} MB/s per core, \
         {} DNS responses, peak RSS {:.1} MiB",
        ours.cpu_s(),
        ours.wall.as_secs_f64(),
        ours.responses,
        ours.rss_mib()
    );
    verdict(
        "    MB/s per core",
        our_rate >= SKIP_TARGET_MB_S,
        &format!("≥ {SKIP_TARGET_MB_S}"),
    );
    clock.progress("capture: tshark on the bulk capture (no key log)");
    match tshark(
        &pin,
        &bulk.pcap,
        None,
        &dir,
        Some(sizes.tshark_bulk_timeout),
    )? {
        Some(t) => println!(
            "    tshark, no key log (TCP and TLS records dissected, nothing decrypted): {:.3} s \
             CPU: {:.0} MB/s per core, peak RSS {:.1} MiB; doh-trace/tshark {:.1}×",
            t.cpu_s(),
            bytes as f64 / 1e6 / t.cpu_s(),
            t.rss_mib(),
            t.cpu_s() / ours.cpu_s()
        ),
        None => println!(
            "    tshark, no key log: did not finish within {} s (stopped)",
            sizes.tshark_bulk_timeout.as_secs()
        ),
    }

    // 3. Memory with 10 000 concurrent flows, two file sizes.
    let [small, large] = sizes.flow_sizes_mib;
    let hello = hello_payloads(&doh.pcap)?;
    let mut rows = Vec::new();
    for size in [small, large] {
        let path = flows_capture(&dir, size, &hello, clock)?;
        clock.progress(&format!("capture: reading {FLOWS} flows, {size} MiB"));
        let r = read(&pin, tracer, &path, None, &dir)?;
        ensure!(
            r.tcp_flows == FLOWS as u64 && !r.evicted,
            "read saw {} TCP flows (evicted: {}), expected {FLOWS}",
            r.tcp_flows,
            r.evicted
        );
        rows.push((size, file_len(&path)?, r, path));
    }
    println!(
        "  memory: synthetic captures of {FLOWS} concurrent TLS flows to port 443 (all open from \
         the first round to the last; no key log){}",
        if quick {
            format!("; quick sizes, --full reads {} MiB", FULL.flow_sizes_mib[1])
        } else {
            String::new()
        }
    );
    for (_, bytes, r, _) in &rows {
        println!(
            "    {:7.1} MiB, {:>9} packets: doh-trace peak RSS {:.1} MiB ({:.3} s CPU, {:.0} MB/s)",
            mib(*bytes),
            r.packets,
            r.rss_mib(),
            r.cpu_s(),
            *bytes as f64 / 1e6 / r.cpu_s()
        );
    }
    let peak = rows
        .iter()
        .map(|(_, _, r, _)| r.rss_mib())
        .fold(0.0, f64::max);
    println!(
        "    RSS at {} MiB over RSS at {} MiB: {:.2}",
        large,
        small,
        rows[1].2.rss_mib() / rows[0].2.rss_mib()
    );
    verdict(
        &format!("    peak RSS {peak:.1} MiB"),
        peak < RSS_TARGET_MIB,
        &format!("< {RSS_TARGET_MIB} MiB"),
    );
    clock.progress(&format!("capture: tshark on the {small} MiB flows capture"));
    match tshark(
        &pin,
        &rows[0].3,
        None,
        &dir,
        Some(sizes.tshark_bulk_timeout),
    )? {
        Some(t) => println!(
            "    tshark, same {small} MiB file: peak RSS {:.1} MiB ({:.3} s CPU)",
            t.rss_mib(),
            t.cpu_s()
        ),
        None => println!(
            "    tshark, same {small} MiB file: did not finish within {} s (stopped)",
            sizes.tshark_bulk_timeout.as_secs()
        ),
    }
    Ok(())
}

/// A cached capture made by real clients.
struct Captured {
    pcap: PathBuf,
    keys: PathBuf,
    /// DNS responses the clients received.
    responses: usize,
}

/// The cache entry `name`: (capture, key log, the clients' response count), if complete.
fn cached(dir: &Path, name: &str) -> Option<Captured> {
    let pcap = dir.join(format!("{name}.pcapng"));
    let keys = dir.join(format!("{name}.keys"));
    let count = std::fs::read_to_string(dir.join(format!("{name}.responses"))).ok()?;
    (pcap.is_file() && keys.is_file()).then_some(Captured {
        pcap,
        keys,
        responses: count.trim().parse().ok()?,
    })
}

/// Writes the cache entry's count last: an interrupted capture is not reused.
fn store(dir: &Path, name: &str, responses: usize) -> Result<Captured> {
    let count = dir.join(format!("{name}.responses"));
    write_private(&count, format!("{responses}\n").as_bytes())?;
    cached(dir, name).context("the capture just made is not in the cache")
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let mut f = File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

/// An empty file of mode 0600 (a key log the clients append to).
fn private_empty(path: &Path) -> Result<()> {
    let _ = std::fs::remove_file(path);
    write_private(path, b"")
}

/// dumpcap on the lab's loopback, writing `pcap`; returns once the file exists.
fn start_dumpcap(lab: &Lab, pcap: &Path) -> Result<Child> {
    let _ = std::fs::remove_file(pcap);
    let mut child = lab
        .command("dumpcap")
        .args(["-q", "-i", "lo", "-B", "256", "-w"])
        .arg(pcap)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting dumpcap")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pcap.exists() {
        if Instant::now() > deadline || child.try_wait()?.is_some() {
            let _ = child.kill();
            let _ = child.wait();
            bail!("dumpcap did not start writing {}", pcap.display());
        }
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_millis(500));
    Ok(child)
}

/// Stops dumpcap (SIGINT, by its PID) and makes its file private.
fn stop_dumpcap(child: Child, pcap: &Path) -> Result<()> {
    thread::sleep(Duration::from_millis(500));
    signal(&child, libc::SIGINT);
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "dumpcap failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::set_permissions(pcap, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// Runs the python DoH clients in the lab; returns the responses they got.
fn doh_clients(lab: &Lab, keys: &Path, connections: usize, lookups: usize) -> Result<usize> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/doh_clients.py");
    let out = lab
        .command(doh_trace_tests::SYSTEM_PYTHON)
        .arg(script)
        .arg(lab.ca())
        .arg(UNBOUND_URL)
        .arg(keys)
        .arg(connections.to_string())
        .arg(lookups.to_string())
        .stdin(Stdio::null())
        .output()
        .context("running the DoH clients")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "the DoH clients failed ({}): {text} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text.split_whitespace()
        .find_map(|kv| kv.strip_prefix("responses=")?.parse().ok())
        .with_context(|| format!("no responses= in {text:?}"))
}

/// The encrypted DoH capture, made unless cached.
fn doh_capture(dir: &Path, sizes: &Sizes, clock: &Clock) -> Result<Captured> {
    let name = format!(
        "doh-v{CACHE_VERSION}-{}x{}",
        sizes.doh_connections, sizes.doh_lookups
    );
    if let Some(c) = cached(dir, &name) {
        return Ok(c);
    }
    clock.progress(&format!(
        "capture: making {name}: dumpcap on the lab's loopback, {} httpx connections × {} \
         lookups",
        sizes.doh_connections, sizes.doh_lookups
    ));
    let lab = Lab::with_unbound_extra(UNBOUND_CONF).context("starting unbound in a lab")?;
    let pcap = dir.join(format!("{name}.pcapng"));
    let keys = dir.join(format!("{name}.keys"));
    private_empty(&keys)?;
    let dumpcap = start_dumpcap(&lab, &pcap)?;
    let responses = doh_clients(&lab, &keys, sizes.doh_connections, sizes.doh_lookups);
    stop_dumpcap(dumpcap, &pcap)?;
    let responses = responses?;
    ensure!(
        responses == sizes.doh_connections * sizes.doh_lookups,
        "the clients got {responses} responses, expected {}",
        sizes.doh_connections * sizes.doh_lookups
    );
    store(dir, &name, responses)
}

/// The bulk capture (HTTPS downloads beside a few DoH lookups), made unless cached.
fn bulk_capture(dir: &Path, sizes: &Sizes, clock: &Clock) -> Result<Captured> {
    let name = format!(
        "bulk-v{CACHE_VERSION}-{}x{}",
        sizes.downloads, sizes.download_mib
    );
    if let Some(c) = cached(dir, &name) {
        return Ok(c);
    }
    clock.progress(&format!(
        "capture: making {name}: {} HTTPS downloads of {} MiB and DoH lookups",
        sizes.downloads, sizes.download_mib
    ));
    let lab = Lab::with_unbound_extra(UNBOUND_CONF).context("starting unbound in a lab")?;
    // Ethernet-sized packets: an MTU of 1500 and no segmentation offload on the lab's
    // loopback (else TCP hands it, and dumpcap sees, segments of up to 64 KiB).
    let ok = lab
        .command("ip")
        .args(["link", "set", "lo", "mtu", "1500", "gso_max_segs", "1"])
        .status()?
        .success();
    ensure!(
        ok,
        "could not set the lab's loopback to MTU 1500 without GSO"
    );
    let www = lab.dir.join("www");
    std::fs::create_dir_all(&www)?;
    // Incompressible content, written in pieces (the bench itself stays small: see wait4_main).
    {
        use std::io::Write as _;
        let mut f = std::io::BufWriter::new(File::create(www.join("big.bin"))?);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..(sizes.download_mib << 20) / 8 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            f.write_all(&x.to_le_bytes())?;
        }
        f.flush()?;
    }
    let pki = lab.dir.join("pki");
    let mut server = lab
        .command("openssl")
        .current_dir(&www)
        .args(["s_server", "-quiet", "-WWW", "-accept"])
        .arg(format!("127.0.0.1:{BULK_PORT}"))
        .arg("-cert")
        .arg(pki.join("server-chain.pem"))
        .arg("-key")
        .arg(pki.join("server.key"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting openssl s_server")?;
    let result = (|| {
        lab.wait_listening(BULK_PORT, Duration::from_secs(20))?;
        let pcap = dir.join(format!("{name}.pcapng"));
        let keys = dir.join(format!("{name}.keys"));
        private_empty(&keys)?;
        let dumpcap = start_dumpcap(&lab, &pcap)?;
        let made = (|| {
            let responses = doh_clients(&lab, &keys, 2, 10)?;
            for _ in 0..sizes.downloads {
                let out = lab
                    .command("curl")
                    .env("SSLKEYLOGFILE", &keys)
                    .args(["-sS", "--http1.1", "-o", "/dev/null", "--cacert"])
                    .arg(lab.ca())
                    .args(["-w", "%{size_download}"])
                    .arg(format!("https://127.0.0.1:{BULK_PORT}/big.bin"))
                    .output()?;
                let got: usize = String::from_utf8_lossy(&out.stdout).trim().parse()?;
                ensure!(
                    got == sizes.download_mib << 20,
                    "curl downloaded {got} bytes: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let more = doh_clients(&lab, &keys, 1, 10)?;
            Ok(responses + more)
        })();
        stop_dumpcap(dumpcap, &pcap)?;
        store(dir, &name, made?)
    })();
    signal(&server, libc::SIGTERM);
    let _ = server.wait();
    result
}

/// The first ClientHello and the first ServerHello segment of the DoH capture, as TCP
/// payloads (tshark finds them).
fn hello_payloads(pcap: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
    let first = |filter: &str| -> Result<Vec<u8>> {
        let out = Command::new("tshark")
            .arg("-r")
            .arg(pcap)
            .args(["-n", "-Y", filter, "-T", "fields", "-e", "tcp.payload"])
            .stderr(Stdio::null())
            .output()
            .context("running tshark")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let hex: String = text
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .filter(char::is_ascii_hexdigit)
            .collect();
        ensure!(
            !hex.is_empty(),
            "no packet matches {filter} in {}",
            pcap.display()
        );
        (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(Into::into))
            .collect()
    };
    Ok((
        first("tls.handshake.type == 1")?,
        first("tls.handshake.type == 2")?,
    ))
}

/// The synthetic capture of [`FLOWS`] concurrent flows of `size_mib`, made unless cached.
fn flows_capture(
    dir: &Path,
    size_mib: u64,
    (hello, flight): &(Vec<u8>, Vec<u8>),
    clock: &Clock,
) -> Result<PathBuf> {
    let path = dir.join(format!("flows-v{CACHE_VERSION}-{FLOWS}-{size_mib}MiB.pcap"));
    let done = path.with_extension("done");
    if path.is_file() && done.is_file() {
        return Ok(path);
    }
    clock.progress(&format!(
        "capture: writing {FLOWS} concurrent flows, {size_mib} MiB"
    ));
    let _ = std::fs::remove_file(&done);
    let w = flowgen::write(&path, FLOWS, size_mib << 20, hello, flight)?;
    write_private(
        &done,
        format!("{} packets, {} bytes\n", w.packets, w.bytes).as_bytes(),
    )?;
    Ok(path)
}

fn file_len(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("{}", path.display()))?
        .len())
}

/// One measured reading of a capture.
struct Reading {
    wall: Duration,
    cpu: Duration,
    max_rss_kib: u64,
    /// DNS responses found.
    responses: usize,
    /// From doh-trace's counters (0 for tshark).
    packets: u64,
    tcp_flows: u64,
    evicted: bool,
}

impl Reading {
    fn cpu_s(&self) -> f64 {
        self.cpu.as_secs_f64().max(1e-6)
    }
    fn rss_mib(&self) -> f64 {
        self.max_rss_kib as f64 / 1024.0
    }
}

fn best_of(runs: usize, mut f: impl FnMut() -> Result<Reading>) -> Result<Reading> {
    let mut best: Option<Reading> = None;
    for _ in 0..runs.max(1) {
        let r = f()?;
        if best.as_ref().is_none_or(|b| r.cpu < b.cpu) {
            best = Some(r);
        }
    }
    best.context("no runs")
}

/// What `cargo xtask wait4` runs.
#[derive(clap::Args)]
pub struct Wait4Options {
    /// Where the result goes: `STATUS UTIME_US STIME_US MAXRSS_KIB KILLED`.
    #[arg(long)]
    out: PathBuf,
    /// SIGKILL the program after this many milliseconds.
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// The program and its arguments.
    #[arg(trailing_var_arg = true, required = true)]
    command: Vec<std::ffi::OsString>,
}

/// `cargo xtask wait4`: runs the program as its own child and writes its wait4 rusage. The
/// bench measures through it because a child's `ru_maxrss` starts from the high-water mark of
/// the memory of the process that spawned it (Linux carries it over exec): this small, freshly
/// exec'd process has a low one, the bench itself may not.
pub fn wait4_main(opts: &Wait4Options) -> Result<()> {
    let child = Command::new(&opts.command[0])
        .args(&opts.command[1..])
        .spawn()
        .with_context(|| format!("running {:?}", opts.command))?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let killer = opts.timeout_ms.map(|ms| {
        thread::spawn(move || {
            if rx.recv_timeout(Duration::from_millis(ms)).is_err() {
                // SAFETY: kill on the PID of our child; it is not reaped before this thread
                // is told to stop (below), so the PID is still its.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                true
            } else {
                false
            }
        })
    });
    let (status, usage) = wait4(pid)?;
    let _ = tx.send(());
    let killed = killer.is_some_and(|h| h.join().unwrap_or(false));
    let us = |t: libc::timeval| timeval(t).as_micros();
    write_private(
        &opts.out,
        format!(
            "{status} {} {} {} {}\n",
            us(usage.ru_utime),
            us(usage.ru_stime),
            usage.ru_maxrss.max(0),
            u8::from(killed)
        )
        .as_bytes(),
    )
}

/// What one measured run used.
struct Usage {
    wall: Duration,
    cpu: Duration,
    max_rss_kib: u64,
}

/// Runs `cmd` (stdout to `out`, stderr to `err`) under `cargo xtask wait4`; with a timeout,
/// None when it ran longer (it was stopped).
fn measure(
    cmd: Command,
    out: &Path,
    err: &Path,
    timeout: Option<Duration>,
) -> Result<Option<Usage>> {
    let usage_file = out.with_extension("usage");
    let _ = std::fs::remove_file(&usage_file);
    let mut w = Command::new(std::env::current_exe()?);
    w.arg("wait4").arg("--out").arg(&usage_file);
    if let Some(t) = timeout {
        w.arg("--timeout-ms").arg(t.as_millis().to_string());
    }
    w.arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdin(Stdio::null())
        .stdout(new_private(out)?)
        .stderr(new_private(err)?);
    let started = Instant::now();
    let status = w.status().with_context(|| format!("running {cmd:?}"))?;
    let wall = started.elapsed();
    let text = std::fs::read_to_string(&usage_file).unwrap_or_default();
    let _ = std::fs::remove_file(&usage_file);
    let f: Vec<u64> = text
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let stderr = || {
        std::fs::read_to_string(err)
            .unwrap_or_default()
            .chars()
            .take(2000)
            .collect::<String>()
    };
    let [code, utime, stime, rss, killed] = f[..] else {
        bail!(
            "{cmd:?}: no usage from the wait4 wrapper ({status}): {}",
            stderr()
        );
    };
    if killed != 0 {
        return Ok(None);
    }
    ensure!(
        status.success() && code == 0,
        "{cmd:?} failed (wait status {code}): {}",
        stderr()
    );
    Ok(Some(Usage {
        wall,
        cpu: Duration::from_micros(utime + stime),
        max_rss_kib: rss,
    }))
}

fn new_private(path: &Path) -> Result<File> {
    let _ = std::fs::remove_file(path);
    File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// `doh-trace read FILE [--keylog KEYS] --json` on the pinned core; counts the lookups with a
/// response among its records and reads its counters from stderr.
fn read(pin: &Pin, tracer: &Path, pcap: &Path, keys: Option<&Path>, dir: &Path) -> Result<Reading> {
    let (out, err) = (dir.join("read.jsonl"), dir.join("read.stderr"));
    let mut cmd = pin.command(tracer);
    cmd.arg("read").arg(pcap).arg("--json");
    if let Some(k) = keys {
        cmd.arg("--keylog").arg(k);
    }
    let u = measure(cmd, &out, &err, None)?.expect("no timeout");
    let mut responses = 0;
    for line in BufReader::new(File::open(&out)?).lines() {
        let v: Value = serde_json::from_str(&line?)?;
        if v["rcode"].is_string() {
            responses += 1;
        }
    }
    let stderr = std::fs::read_to_string(&err)?;
    // "doh-trace: read FILE: N packets (B bytes), T TCP and U UDP flows (...)...".
    let line = stderr
        .lines()
        .find(|l| l.starts_with("doh-trace: read "))
        .with_context(|| format!("no counters in read's stderr: {stderr}"))?;
    let number_before = |label: &str| -> u64 {
        line.find(label)
            .and_then(|end| line[..end].split_whitespace().last()?.parse().ok())
            .unwrap_or(0)
    };
    let _ = std::fs::remove_file(&out);
    Ok(Reading {
        wall: u.wall,
        cpu: u.cpu,
        max_rss_kib: u.max_rss_kib,
        responses,
        packets: number_before(" packets ("),
        tcp_flows: number_before(" TCP and "),
        evicted: line.contains("evicted"),
    })
}

/// tshark's DNS responses in `pcap` (`-Y 'dns.flags.response == 1'`, the fields the
/// differential test compares), decrypted with `keys` if given, on the pinned core.
fn tshark(
    pin: &Pin,
    pcap: &Path,
    keys: Option<&Path>,
    dir: &Path,
    timeout: Option<Duration>,
) -> Result<Option<Reading>> {
    let (out, err) = (dir.join("tshark.out"), dir.join("tshark.stderr"));
    let mut cmd = pin.command(Path::new("tshark"));
    cmd.arg("-r").arg(pcap).arg("-n");
    if let Some(k) = keys {
        cmd.arg("-o")
            .arg(format!("tls.keylog_file:{}", k.display()));
    }
    cmd.args(["-Y", "dns.flags.response == 1", "-T", "fields"])
        .args(["-E", "aggregator=,", "-e", "dns.id", "-e", "dns.qry.name"])
        .args(["-e", "dns.qry.type", "-e", "dns.flags.rcode"])
        .args(["-e", "dns.a", "-e", "dns.aaaa"]);
    let Some(u) = measure(cmd, &out, &err, timeout)? else {
        return Ok(None);
    };
    // One line per packet; a packet carrying several responses lists their ids
    // comma-separated in the first column.
    let mut responses = 0;
    for line in BufReader::new(File::open(&out)?).lines() {
        let line = line?;
        let ids = line.split('\t').next().unwrap_or("");
        responses += ids.split(',').filter(|id| !id.trim().is_empty()).count();
    }
    let _ = std::fs::remove_file(&out);
    Ok(Some(Reading {
        wall: u.wall,
        cpu: u.cpu,
        max_rss_kib: u.max_rss_kib,
        responses,
        packets: 0,
        tcp_flows: 0,
        evicted: false,
    }))
}
