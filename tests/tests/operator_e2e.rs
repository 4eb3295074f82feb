//! Privileged end to end, operator experience: filters (a filtered-out process's lookups never
//! appear), process context, the per-connection view and the exit summary, with real clients.

use std::{path::PathBuf, process::Child, time::Duration};

use doh_trace_tests::{
    count, curl_doh, python_doh_client, require_e2e, run_client, start_until_first_done, Lab,
    Tracer, SYSTEM_PYTHON, UNBOUND_URL,
};

fn python_lookup(lab: &Lab, spec: &str) -> u32 {
    run_client(python_doh_client(lab, &[spec])).unwrap().0
}

/// Starts python3 (dnspython) running `before`, printing "first done", waiting for the file it
/// returns to exist, then running `after`; returns once "first done" is printed. Both parts may
/// call `lookup(name, rtype)` (DoH to unbound) and use `CA` and `URL`.
fn start_python_until_go(lab: &Lab, before: &str, after: &str) -> (Child, PathBuf) {
    let go = lab.dir.join("go");
    let script = format!(
        "import os, sys, time, dns.message, dns.query\n\
         CA = '{ca}'\n\
         URL = '{UNBOUND_URL}'\n\
         def lookup(name, rtype):\n    \
             dns.query.https(dns.message.make_query(name, rtype), URL, verify=CA, timeout=10)\n\
         {before}\
         print('first done', flush=True)\n\
         while not os.path.exists('{go}'): time.sleep(0.05)\n\
         {after}",
        ca = lab.ca().display(),
        go = go.display(),
    );
    let mut py = lab.command(SYSTEM_PYTHON);
    py.args(["-c", &script]).stderr(std::process::Stdio::null());
    (start_until_first_done(py), go)
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

#[test]
fn uid_and_pid_filters_and_context_refreshed_on_exec() {
    require_e2e!(SYSTEM_PYTHON, "setpriv");
    let lab = Lab::with_unbound().unwrap();

    // --uid: the same lookup by root and by nobody; only nobody's appear.
    let mut tracer = Tracer::start(&["--uid", "65534"]).unwrap();
    let (root_pid, _, _, _) = run_client(curl_doh(&lab, "www.doh.test")).unwrap();
    let mut as_nobody = lab.command("setpriv");
    as_nobody.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
        "curl",
        "-sS",
        "--max-time",
        "10",
        "--cacert",
    ]);
    as_nobody
        .arg(lab.ca())
        .args(["--doh-url", UNBOUND_URL, "http://loop.doh.test:18080/"]);
    let (nobody_pid, _, _, _) = run_client(as_nobody).unwrap();
    tracer.wait_for(Duration::from_secs(15), |seen| count(seen, nobody_pid) >= 2);
    tracer.wait_for(Duration::from_millis(500), |_| false);
    tracer.stop(libc::SIGINT).unwrap();
    assert_eq!(count(&tracer.seen, root_pid), 0, "{:#?}", tracer.seen);
    assert_eq!(count(&tracer.seen, nobody_pid), 2, "{:#?}", tracer.seen);
    for l in &tracer.seen {
        assert_eq!(
            (l["uid"].as_u64(), l["user"].as_str()),
            (Some(65534), Some("nobody")),
            "{l}"
        );
        assert_eq!(
            l["comm"], "curl",
            "setpriv exec'd curl in the same process: {l}"
        );
    }

    // --pid, and a process that execs: python3 looks up, then becomes curl, which looks up.
    // Started before the tracer: the filter must still catch its later lookups.
    let (mut child, go) = start_python_until_go(
        &lab,
        "lookup('txt.doh.test', 'TXT')\n",
        "lookup('nx.doh.test', 'A')\n\
         time.sleep(0.5)\n\
         os.execv('/usr/bin/curl', ['curl', '-sS', '--max-time', '10', '--cacert', CA, '--doh-url', URL, 'http://www.doh.test:18080/'])\n",
    );
    let pid = child.id();
    let mut tracer = Tracer::start(&["--pid", &pid.to_string()]).unwrap();
    let (other_pid, _, _, _) = run_client(curl_doh(&lab, "loop.doh.test")).unwrap();
    std::fs::write(&go, b"").unwrap();
    tracer.wait_for(Duration::from_secs(15), |seen| count(seen, pid) >= 3);
    let _ = child.wait();
    tracer.wait_for(Duration::from_millis(500), |_| false);
    tracer.stop(libc::SIGINT).unwrap();
    assert_eq!(
        count(&tracer.seen, other_pid),
        0,
        "--pid filters other processes out"
    );
    let mine: Vec<_> = tracer.seen.iter().filter(|v| v["pid"] == pid).collect();
    assert_eq!(mine.len(), 3, "{mine:#?}");
    for l in &mine {
        // The syscall programs traced the named process too: the resolver from its connect.
        assert_eq!(l["server"]["port"], 8443, "{l}");
    }
    let before = mine
        .iter()
        .find(|l| l["qname"] == "nx.doh.test")
        .expect("python's lookup");
    assert_eq!(before["comm"], "python3", "{before}");
    assert!(
        before["exe"]
            .as_str()
            .is_some_and(|e| e.contains("python3")),
        "{before}"
    );
    for l in mine.iter().filter(|l| l["qname"] == "www.doh.test") {
        // After execve the same pid is curl: name, executable and command line were re-read.
        assert_eq!(l["comm"], "curl", "{l}");
        assert_eq!(l["exe"], "/usr/bin/curl", "{l}");
        assert_eq!(l["cmdline"][0], "curl", "{l}");
    }
}

/// With more `--pid` than the syscall programs compare inline (`SCOPE_INLINE_PIDS`), they look
/// the processes up in a map: a named process is still traced through its sockets (resolver
/// address from its connect) and a process not named still never appears.
#[test]
fn pid_filter_with_more_processes_than_fit_inline() {
    require_e2e!(SYSTEM_PYTHON);
    let lab = Lab::with_unbound().unwrap();
    let (mut child, go) = start_python_until_go(&lab, "", "lookup('www.doh.test', 'A')\n");
    let pid = child.id();
    let mut idle: Vec<std::process::Child> = (0..doh_trace_common::SCOPE_INLINE_PIDS)
        .map(|_| {
            std::process::Command::new("sleep")
                .arg("60")
                .spawn()
                .unwrap()
        })
        .collect();
    let mut args: Vec<String> = Vec::new();
    for p in idle.iter().map(|c| c.id()).chain([pid]) {
        args.extend(["--pid".to_string(), p.to_string()]);
    }
    assert!(args.len() / 2 > doh_trace_common::SCOPE_INLINE_PIDS);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut tracer = Tracer::start(&args).unwrap();
    let (other_pid, _, _, _) = run_client(curl_doh(&lab, "loop.doh.test")).unwrap();
    std::fs::write(&go, b"").unwrap();
    tracer.wait_for(Duration::from_secs(15), |seen| count(seen, pid) >= 1);
    let _ = child.wait();
    tracer.wait_for(Duration::from_millis(500), |_| false);
    tracer.stop(libc::SIGINT).unwrap();
    for c in &mut idle {
        let _ = c.kill();
        let _ = c.wait();
    }
    assert_eq!(count(&tracer.seen, other_pid), 0, "{:#?}", tracer.seen);
    let mine: Vec<_> = tracer.seen.iter().filter(|v| v["pid"] == pid).collect();
    assert_eq!(mine.len(), 1, "{mine:#?}");
    let l = mine[0];
    assert_eq!(l["qname"], "www.doh.test", "{l}");
    assert_eq!(l["server"]["ip"], "127.0.0.1", "{l}");
    assert_eq!(l["server"]["port"], 8443, "{l}");
}
