//! Privileged end to end: the tracer under a load it is behind with, writing to a stdout nobody
//! reads. A real flood of classic DNS through unbound fills the ring buffer while the tracer is
//! stopped (SIGSTOP), and keeps coming after; the tracer's stdout is a pipe the test never
//! reads. The event loop must still serve everything else: the metrics endpoint answers, a
//! lookup left unanswered times out on the one-second tick, SIGTERM is acted on within a
//! second, the output it could not write is counted, and every probe is detached at exit.

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Stdio},
    sync::{mpsc, Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use doh_trace_tests::{
    loaded_bpf_program_names, require_e2e, signal, tracer_binary, Lab, OUR_PROGRAM_PREFIXES,
};

/// How long the tracer waits for an answer (the pipeline's `STREAM_TIMEOUT_NS`).
const STREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// Asks unbound classic DNS questions one after the other, as fast as one Python process can
/// (each answer before the next question), until killed. Its name (comm) is `dnsflood`.
const FLOOD: &str = r#"
import ctypes, socket, struct
ctypes.CDLL(None).prctl(15, b"dnsflood", 0, 0, 0)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
s.connect(("127.0.0.1", 5301))
i = 0
while True:
    i = (i + 1) & 0xFFFF
    s.send(struct.pack(">HHHHHH", i, 0x0100, 1, 0, 0, 0) + b"\x03www\x03doh\x04test\x00\x00\x01\x00\x01")
    try:
        s.recv(512)
    except socket.timeout:
        pass
"#;

/// Asks one question of a port where nobody answers, and keeps its socket open: only the
/// tracer's timeout can end that lookup. Its name is `silentq`.
const SILENT: &str = r#"
import ctypes, socket, struct, sys, time
ctypes.CDLL(None).prctl(15, b"silentq", 0, 0, 0)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(struct.pack(">HHHHHH", 4242, 0x0100, 1, 0, 0, 0) + b"\x05never\x03doh\x04test\x00\x00\x01\x00\x01", ("127.0.0.1", 5399))
print("sent", flush=True)
time.sleep(600)
"#;

/// Scrapes the tracer's metrics from inside the lab's network namespace.
fn scrape(lab: &Lab, port: u16) -> Option<String> {
    let out = lab
        .command("curl")
        .args(["-s", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{port}/metrics"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Kills and reaps a helper process of the test.
fn end(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn behind_a_flood_and_an_unread_stdout_the_tracer_still_times_out_lookups_and_stops_at_once() {
    require_e2e!("curl", "python3");
    let lab = Lab::with_unbound().unwrap();
    let metrics_port = 9853;

    // The tracer in the lab's namespace (its metrics endpoint listens there); it traces the
    // whole host all the same. stdout is a pipe this test holds and never reads.
    let mut tracer = lab
        .command(tracer_binary().to_str().unwrap())
        .args(["--json", "--ring-buffer", "64M", "--dns-port", "5301"])
        .args(["--dns-port", "5399", "--metrics"])
        .arg(format!("127.0.0.1:{metrics_port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _unread_stdout = tracer.stdout.take().unwrap();
    let stderr = Arc::new(Mutex::new(Vec::<(Instant, String)>::new()));
    let (ready_tx, ready) = mpsc::channel();
    {
        let stderr = stderr.clone();
        let err = tracer.stderr.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[tracer] {line}");
                if line.starts_with("ready") {
                    let _ = ready_tx.send(());
                }
                stderr.lock().unwrap().push((Instant::now(), line));
            }
        });
    }
    ready
        .recv_timeout(Duration::from_secs(120))
        .expect("the tracer never said ready");
    let said = |needle: &str| {
        stderr
            .lock()
            .unwrap()
            .iter()
            .find(|(_, l)| l.contains(needle))
            .map(|(at, l)| (*at, l.clone()))
    };

    // The flood runs for the whole test; for 3 s of it the tracer is stopped, so that the ring
    // buffer holds a backlog when it runs again.
    let flood = lab.command("python3").args(["-c", FLOOD]).spawn().unwrap();
    thread::sleep(Duration::from_secs(1));
    signal(&tracer, libc::SIGSTOP);
    thread::sleep(Duration::from_secs(3));
    signal(&tracer, libc::SIGCONT);

    let mut silent = lab
        .command("python3")
        .args(["-c", SILENT])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(silent.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "sent");
    let asked = Instant::now();

    // The metrics server and the one-second tick are served behind the load: the flood's
    // lookups are counted, and the unanswered question times out.
    let timed_out = r#"comm="silentq",rcode="none",status="timeout"} 1"#;
    let mut last = None;
    while asked.elapsed() < STREAM_TIMEOUT + Duration::from_secs(15) {
        last = scrape(&lab, metrics_port);
        if last.as_deref().is_some_and(|m| m.contains(timed_out)) {
            break;
        }
        thread::sleep(Duration::from_secs(1));
    }
    let metrics = last.expect("the metrics endpoint never answered behind the load");
    assert!(metrics.contains(timed_out), "{metrics}");
    assert!(
        metrics.contains(r#"comm="dnsflood",rcode="NOERROR",status="ok"}"#),
        "{metrics}"
    );
    // The lines stdout's reader never took are counted where a `-q` deployment looks.
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("doh_trace_output_dropped_lines_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no dropped-lines counter: {metrics}"));
    assert!(dropped > 0, "{metrics}");
    eprintln!(
        "timeout reported {:?} after the question (the timeout is {STREAM_TIMEOUT:?})",
        asked.elapsed()
    );

    // SIGTERM with the flood still on and stdout still unread: acted on at once.
    let sent = Instant::now();
    signal(&tracer, libc::SIGTERM);
    let deadline = sent + Duration::from_secs(10);
    let stopping = loop {
        if let Some((at, _)) = said("doh-trace: stopping: detaching") {
            break at;
        }
        assert!(Instant::now() < deadline, "SIGTERM was not acted on");
        thread::sleep(Duration::from_millis(10));
    };
    let reaction = stopping.saturating_duration_since(sent);
    eprintln!("SIGTERM acted on after {reaction:?}");
    assert!(
        reaction < Duration::from_secs(1),
        "SIGTERM waited {reaction:?}"
    );
    let status = tracer.wait().unwrap();
    let exited = sent.elapsed();
    end(flood);
    end(silent);
    assert!(status.success(), "tracer exit {status:?}");
    eprintln!("tracer gone {exited:?} after SIGTERM (the kernel detaches probes one by one)");

    let (_, dropped) = said("output lines dropped (stdout's reader did not keep up)")
        .expect("the lines stdout did not take are counted at exit");
    let n: u64 = dropped
        .trim_start_matches("doh-trace: ")
        .trim_start_matches("status: ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(n > 0, "{dropped}");
    assert!(said("stopped, all probes detached").is_some());
    let left: Vec<String> = loaded_bpf_program_names()
        .expect("bpftool")
        .into_iter()
        .filter(|n| OUR_PROGRAM_PREFIXES.iter().any(|p| n.starts_with(p)))
        .collect();
    assert!(left.is_empty(), "programs left loaded: {left:?}");
}
