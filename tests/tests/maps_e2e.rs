//! Privileged end to end: the eBPF side's LRU maps when they fill. A full LRU map makes room by
//! evicting an entry without telling anyone; the tracer counts every entry its maps create and
//! remove, and shows what went beyond a map's capacity as evictions, live on a status line and
//! in its exit summary. Entries of processes that exited without closing their sockets are
//! swept (they would otherwise fill the maps and count as evictions of live state).
//!
//! Real processes open real sockets: SOCK_TYPES holds one entry per internet socket (65 536).

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use doh_trace_tests::{python_doh_client, require_e2e, run_client, Lab, Tracer, SYSTEM_PYTHON};

/// Entries of the SOCK_TYPES map (`LruMap::SockTypes.capacity()`).
const SOCK_TYPES_CAPACITY: u64 = 65_536;

/// Opens `n` UDP sockets, says so on stdout, and holds them until stdin closes; then exits
/// without closing them (as a killed or `_exit`ing process does).
const HOLD_SOCKETS: &str = r#"
import os, resource, socket, sys
n = int(sys.argv[1])
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
print("open", len(held), flush=True)
sys.stdin.read()
os._exit(0)
"#;

/// Sockets one process may hold: its hard descriptor limit (which root cannot raise without
/// CAP_SYS_RESOURCE, missing on some CI machines), less a margin.
fn per_process() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim.rlim_max.saturating_sub(100).clamp(1000, 50_000)
}

/// Processes holding `n` open UDP sockets between them (returned once all are open).
fn hold_sockets(n: u64) -> Vec<Child> {
    let each = per_process();
    let mut children = Vec::new();
    let mut left = n;
    while left > 0 {
        let k = left.min(each);
        left -= k;
        let mut child = Command::new(SYSTEM_PYTHON)
            .args(["-c", HOLD_SOCKETS, &k.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting python");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            format!("open {k}"),
            "python opened its sockets"
        );
        children.push(child);
    }
    children
}

/// Lets [`hold_sockets`] processes exit (without closing their sockets).
fn release(children: Vec<Child>) {
    for mut child in children {
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
    }
}

/// The number in a `doh-trace: [status: ]N entries evicted from the full MAP map` line.
fn evicted(line: &str, map: &str) -> Option<u64> {
    let rest = line.strip_prefix("doh-trace: ")?;
    let rest = rest.strip_prefix("status: ").unwrap_or(rest);
    let (n, label) = rest.split_once(' ')?;
    label
        .starts_with(&format!("entries evicted from the full {map} map"))
        .then(|| n.parse().ok())
        .flatten()
}

#[test]
fn a_full_socket_map_counts_its_evictions_and_a_dead_processs_entries_do_not() {
    require_e2e!(SYSTEM_PYTHON);
    let lab = Lab::with_unbound().unwrap();
    let mut tracer = Tracer::start(&[]).unwrap();

    // 40 000 sockets, then their process exits without closing them: more than half the map,
    // so the tracer sweeps it (within its 10-s sweep interval) and removes them.
    release(hold_sockets(40_000));
    std::thread::sleep(Duration::from_secs(13));
    // 40 000 more, held: 80 000 entries created in all, but no live entry was evicted.
    let second = hold_sockets(40_000);
    assert!(
        !tracer.wait_for_stderr(
            Duration::from_secs(3),
            "entries evicted from the full SOCK_TYPES map"
        ),
        "a dead process's entries were counted as evictions"
    );

    // 30 000 more beside them: 70 000 live sockets, 4 464 beyond the map's capacity.
    let third = hold_sockets(30_000);
    assert!(
        tracer.wait_for_stderr(
            Duration::from_secs(10),
            "entries evicted from the full SOCK_TYPES map"
        ),
        "no live status line about the evictions"
    );
    release(third);
    release(second);

    // The tracer goes on: a DoH client's lookup is reported with its resolver.
    let (pid, status, _, _) = run_client(python_doh_client(&lab, &["after.doh.test/A"])).unwrap();
    assert!(status.success());
    tracer.wait_for(Duration::from_secs(15), |seen| {
        seen.iter().any(|l| l["pid"] == pid)
    });
    let l = tracer
        .seen
        .iter()
        .find(|l| l["pid"] == pid && l["qname"] == "after.doh.test")
        .expect("the lookup after the flood was reported");
    assert_eq!(l["server"]["port"], 8443, "{l}");

    let stderr = tracer.stop_cleanly(libc::SIGINT);
    let n = stderr
        .iter()
        .filter(|l| !l.contains("status: "))
        .find_map(|l| evicted(l, "SOCK_TYPES"))
        .unwrap_or_else(|| panic!("no evictions in the exit summary: {stderr:#?}"));
    // 70 000 − 65 536 = 4 464 at least; other processes' sockets (the lab's servers, the
    // client) may add a few.
    let beyond = 70_000 - SOCK_TYPES_CAPACITY;
    assert!(
        (beyond..beyond + 1000).contains(&n),
        "{n} evictions counted, {beyond} expected: {stderr:#?}"
    );
}
