//! Privileged end to end: the memory budget under a real flood. One local process (`h2cflood`)
//! opens four cleartext HTTP/2 (h2c) connections to a loopback server that reads and discards
//! everything, and on each opens 1024 DoH POST streams whose bodies (60 KiB each) never end:
//! within every per-connection bound, ~240 MiB that the decoders would hold. Beside it, curl
//! and python look up names through the lab's unbound over DoH. Under `--memory-budget 16M`
//! the tracer's peak RSS stays within a stated bound of what it was when ready, the flood's
//! connections are dropped and counted, and every normal lookup is reported once with its
//! resolver. The same run with an effectively unlimited budget shows what the bound prevents.

use std::{
    process::{Child, Stdio},
    time::Duration,
};

use doh_trace_tests::{
    count, curl_doh, python_doh_client, require_e2e, run_client, Lab, Tracer, UNBOUND_URL,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);
const MIB: u64 = 1 << 20;

/// Reads and discards whatever its clients send (h2c in name only: it never answers).
const SINK: &str = r#"
import socket, threading
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 18081))
srv.listen(16)
print("listening", flush=True)
def drain(c):
    while c.recv(1 << 20):
        pass
while True:
    c, _ = srv.accept()
    threading.Thread(target=drain, args=(c,), daemon=True).start()
"#;

/// Four h2c connections, 1024 DoH POST streams on each, four 15 KiB DATA frames per stream
/// and never END_STREAM; then it waits, connections open, until killed. Its name is
/// `h2cflood`.
const FLOOD: &str = r#"
import ctypes, socket, struct, time
ctypes.CDLL(None).prctl(15, b"h2cflood", 0, 0, 0)
def frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload
def lit(index, value):  # literal without indexing, indexed name (RFC 7541 6.2.2)
    return bytes([index]) + bytes([len(value)]) + value
block = b"\x83\x86" + lit(4, b"/dns-query") + lit(1, b"flood.test") + bytes([0x0f, 0x10]) + bytes([23]) + b"application/dns-message"
conns = []
for _ in range(4):
    s = socket.create_connection(("127.0.0.1", 18081))
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b""))
    conns.append(s)
chunk = bytes(15 * 1024)
for s in conns:
    for i in range(1024):
        stream = 2 * i + 1
        out = frame(1, 4, stream, block) + b"".join(frame(0, 0, stream, chunk) for _ in range(4))
        s.sendall(out)
        if i % 4 == 0:
            time.sleep(0.002)  # ~100 MB/s: the tracer keeps up, so it is memory, not loss
print("flooded", flush=True)
time.sleep(600)
"#;

/// Peak and current resident set size of `pid` in bytes (VmHWM, VmRSS).
fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in {status}"))
            * 1024
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn end(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits for `child` to print `line` on stdout.
fn wait_line(child: &mut Child, line: &str) {
    use std::io::{BufRead as _, BufReader};
    let out = child.stdout.as_mut().unwrap();
    let mut got = String::new();
    BufReader::new(out).read_line(&mut got).unwrap();
    assert_eq!(got.trim(), line, "the helper said {got:?}");
}

/// What one run measured.
struct Run {
    /// Peak RSS growth after ready (VmHWM at the end minus VmRSS when ready).
    growth: u64,
    stderr: Vec<String>,
    seen: Vec<Value>,
    normal: Vec<(u32, &'static str)>,
}

/// The flood beside normal clients, under `budget` (a `--memory-budget` value).
fn run(lab: &Lab, budget: &str) -> Run {
    let mut sink = lab
        .command("python3")
        .args(["-c", SINK])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_line(&mut sink, "listening");
    let mut tracer = Tracer::start(&["--memory-budget", budget]).unwrap();
    let (_, ready_rss) = rss(tracer.pid());
    let mut flood = lab
        .command("python3")
        .args(["-c", FLOOD])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut normal = Vec::new();
    // Normal clients while the flood goes on, and after it.
    for host in ["www.doh.test", "loop.doh.test"] {
        let (pid, _, _, _) = run_client(curl_doh(lab, host)).unwrap();
        normal.push((pid, "curl"));
    }
    wait_line(&mut flood, "flooded");
    let (pid, status, _, _) = run_client(python_doh_client(
        lab,
        &["www.doh.test/A", "nx.doh.test/AAAA"],
    ))
    .unwrap();
    assert!(status.success());
    normal.push((pid, "python3"));
    let (pid, _, _, _) = run_client(curl_doh(lab, "www.doh.test")).unwrap();
    normal.push((pid, "curl"));
    tracer.wait_for(WAIT, |seen| {
        normal.iter().all(|(pid, _)| count(seen, *pid) >= 2)
    });
    tracer.wait_for(Duration::from_millis(500), |_| false);
    let (hwm, _) = rss(tracer.pid());
    let stderr = tracer.stop_cleanly(libc::SIGINT);
    end(flood);
    end(sink);
    Run {
        growth: hwm.saturating_sub(ready_rss),
        stderr,
        seen: tracer.seen.clone(),
        normal,
    }
}

#[test]
fn under_a_flood_of_open_h2c_streams_memory_stays_in_budget_and_normal_lookups_are_reported() {
    require_e2e!("curl", "python3");
    let lab = Lab::with_unbound().unwrap();

    let bounded = run(&lab, "16M");
    let unbounded = run(&lab, "1T");
    eprintln!(
        "peak RSS growth after ready: {:.1} MiB with --memory-budget 16M, {:.1} MiB with 1T",
        bounded.growth as f64 / MIB as f64,
        unbounded.growth as f64 / MIB as f64,
    );

    // Every normal lookup, once, with its resolver (curl: A and AAAA; python: two).
    for (pid, comm) in &bounded.normal {
        let mine: Vec<&Value> = bounded.seen.iter().filter(|v| v["pid"] == *pid).collect();
        assert_eq!(mine.len(), 2, "{comm} {pid}: {mine:#?}");
        for l in mine {
            assert_eq!(l["comm"], *comm, "{l}");
            assert_eq!(l["transport"], "doh", "{l}");
            assert_eq!(l["server"]["ip"], "127.0.0.1", "{l}");
            assert_eq!(l["server"]["port"], 8443, "{l}");
            assert_eq!(l["url"], UNBOUND_URL, "{l}");
            assert!(l["rcode"].is_string(), "{l}");
        }
    }
    // Nothing of the flood is reported: its streams never ended.
    assert!(
        !bounded.seen.iter().any(|v| v["comm"] == "h2cflood"),
        "{:#?}",
        bounded.seen
    );
    let said = |run: &Run, needle: &str| run.stderr.iter().any(|l| l.contains(needle));
    assert!(
        said(&bounded, "connections dropped over the memory budget"),
        "{:#?}",
        bounded.stderr
    );
    assert!(
        said(&bounded, "(memory budget 16 MiB); "),
        "{:#?}",
        bounded.stderr
    );
    // The bound: the budget, and as much again for everything else (allocator slack, the
    // ring buffer's pages the reader touched).
    assert!(
        bounded.growth < 32 * MIB,
        "peak RSS grew {} bytes under a 16 MiB budget",
        bounded.growth
    );
    // Without the budget the same flood costs the tracer far more: the bound is its doing.
    assert!(
        unbounded.growth > 120 * MIB,
        "peak RSS grew only {} bytes without a budget",
        unbounded.growth
    );
    assert!(!said(
        &unbounded,
        "connections dropped over the memory budget"
    ));
}
