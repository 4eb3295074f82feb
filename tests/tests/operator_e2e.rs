//! Privileged end to end, operator experience: filters (a filtered-out process's lookups never
//! appear), process context, the per-connection view and the exit summary, with real clients.

use std::time::Duration;

use doh_trace_tests::{
    count, curl_doh, require_e2e, run_client, Lab, Tracer, SYSTEM_PYTHON, UNBOUND_URL,
};

fn python_lookup(lab: &Lab, spec: &str) -> u32 {
    let mut py = lab.command(SYSTEM_PYTHON);
    py.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/lab/doh_client.py"))
        .arg(lab.ca())
        .arg(UNBOUND_URL)
        .arg(spec);
    run_client(py).unwrap().0
}

#[test]
fn filters_keep_only_the_asked_for_lookups_and_the_context_says_who() {
    require_e2e!(SYSTEM_PYTHON);
    let lab = Lab::with_unbound().unwrap();
    let mut tracer = Tracer::start(&["--comm", "curl", "--qname", "www.*"]).unwrap();
    let (loop_pid, _, _, _) = run_client(curl_doh(&lab, "loop.doh.test")).unwrap();
    let py_pid = python_lookup(&lab, "www.doh.test/A");
    let (www_pid, _, _, _) = run_client(curl_doh(&lab, "www.doh.test")).unwrap();
    tracer.wait_for(Duration::from_secs(15), |seen| count(seen, www_pid) >= 2);
    tracer.wait_for(Duration::from_millis(700), |_| false);
    let (status, stderr) = tracer.stop(libc::SIGINT).unwrap();
    assert!(status.success());
    assert_eq!(
        count(&tracer.seen, loop_pid),
        0,
        "--qname www.* filters loop.doh.test out"
    );
    assert_eq!(
        count(&tracer.seen, py_pid),
        0,
        "--comm curl filters python3 out"
    );
    assert_eq!(tracer.seen.len(), 2, "{:#?}", tracer.seen);
    for l in &tracer.seen {
        assert_eq!(l["pid"], www_pid);
        assert!(
            l["exe"].as_str().is_some_and(|e| e.ends_with("/curl")),
            "{l}"
        );
        assert_eq!(l["cmdline"][0], "curl", "{l}");
        assert_eq!(l["user"], "root", "{l}");
        assert_eq!(
            l["ppid"],
            std::process::id(),
            "the test spawned curl (nsenter execs it): {l}"
        );
        assert!(
            l["cgroup"].as_str().is_some_and(|c| c.starts_with('/')),
            "{l}"
        );
    }
    // The exit summary: one line for curl with its two lookups through unbound.
    let row = stderr
        .iter()
        .find(|l| l.split_whitespace().next() == Some(&www_pid.to_string()))
        .unwrap_or_else(|| panic!("no summary row for {www_pid}: {stderr:#?}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!((cols[1], cols[2], cols[3]), ("curl", "2", "0"), "{row}");
    assert!(row.contains(UNBOUND_URL), "{row}");
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("PID") && l.contains("P99")),
        "{stderr:#?}"
    );
}

#[test]
fn the_connection_view_shows_one_connection_per_curl_lookup() {
    require_e2e!();
    let lab = Lab::with_unbound().unwrap();
    let mut tracer = Tracer::start(&["--connections"]).unwrap();
    let (pid, _, _, _) = run_client(curl_doh(&lab, "www.doh.test")).unwrap();
    tracer.wait_for(Duration::from_secs(15), |seen| count(seen, pid) >= 2);
    tracer.wait_for(Duration::from_millis(500), |_| false);
    let (status, _) = tracer.stop(libc::SIGINT).unwrap();
    assert!(status.success());
    let conns: Vec<_> = tracer.seen.iter().filter(|v| v["pid"] == pid).collect();
    // curl 7.88 resolves A and AAAA over two separate DoH connections.
    assert_eq!(conns.len(), 2, "{conns:#?}");
    for c in conns {
        assert_eq!(c["lookups"], 1, "{c}");
        assert_eq!(c["closed_by"], "process", "{c}");
        assert_eq!(c["http_version"], "h2", "{c}");
        assert_eq!(c["tls"], true, "{c}");
        assert_eq!(c["server"]["port"], 8443, "{c}");
        assert_eq!(c["joined_mid_stream"], false, "{c}");
        let handshake = c["handshake_ms"].as_f64().expect("connect was seen");
        let lifetime = c["lifetime_ms"].as_f64().unwrap();
        assert!(handshake > 0.0 && handshake <= lifetime, "{c}");
        assert!(c["idle_ms"].as_f64().unwrap() <= lifetime, "{c}");
    }
}
