//! Privileged end to end: every TLS stack doh-trace hooks, each with a real client of that
//! stack, and each client's lookups attributed to its own PID — GnuTLS (kdig over DoH and DoT,
//! and a client that corks its writes), Go crypto/tls (dnss, started after the tracer, so
//! hooked when it exec'd), NSS (Firefox ESR, headless, TRR-only to the lab; its DoH socket
//! lives in the parent process's Socket Thread), and per-process hooks with `--pid`.
//!
//! Run as root, one test at a time (each starts its own tracer, which sees every process).

use std::{
    process::{Child, Stdio},
    time::Duration,
};

use doh_trace_tests::{
    brief, firefox_command, firefox_profile, require_e2e, run_client, signal, summary_count,
    web_server, Lab, Tracer, SYSTEM_PYTHON,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn of(seen: &[Value], pid: u32) -> Vec<&Value> {
    seen.iter().filter(|v| v["pid"] == pid).collect()
}

/// The lookups of `pid` for `qname`/`qtype`.
fn lookups<'a>(seen: &'a [Value], pid: u32, qname: &str, qtype: &str) -> Vec<&'a Value> {
    seen.iter()
        .filter(|v| v["pid"] == pid && v["qname"] == qname && v["qtype"] == qtype)
        .collect()
}

/// The one lookup of `pid` for `qname`/`qtype`, answered, over `transport`.
fn one<'a>(seen: &'a [Value], pid: u32, qname: &str, qtype: &str, transport: &str) -> &'a Value {
    let found = lookups(seen, pid, qname, qtype);
    assert_eq!(
        found.len(),
        1,
        "{qname} {qtype} of {pid} once; everything seen:\n{}",
        brief(seen)
    );
    let l = found[0];
    assert_eq!(l["status"], "ok", "{l}");
    assert_eq!(l["rcode"], "NOERROR", "{l}");
    assert_eq!(l["transport"], transport, "{l}");
    l
}

/// The start-up report names `stack` hooked in a file whose path contains `file`.
fn reported_hooked(stderr: &[String], stack: &str, file: &str) -> bool {
    stderr
        .iter()
        .any(|l| l.contains(&format!("hooked {stack}")) && l.contains(file))
}

fn kdig(lab: &Lab, mode: &str, port: &str, qname: &str, qtype: &str) -> std::process::Command {
    let mut kdig = lab.command("kdig");
    kdig.args(["@127.0.0.1", "-p", port, mode, "+tls-hostname=doh.test"])
        .arg(format!("+tls-ca={}", lab.ca().display()))
        .args([qname, qtype, "+short"]);
    kdig
}

#[test]
fn gnutls_clients_lookups_over_doh_and_dot_are_attributed_to_them() {
    require_e2e!("kdig");
    let lab = Lab::with_unbound().unwrap();
    lab.wait_listening(8853, Duration::from_secs(30)).unwrap();
    let mut tracer = Tracer::start(&[]).unwrap();

    // kdig (started after the tracer) does DoH with nghttp2 over GnuTLS, corking each frame.
    let (doh_pid, status, out, _) =
        run_client(kdig(&lab, "+https", "8443", "www.doh.test", "AAAA")).unwrap();
    assert!(
        status.success() && out.contains("2001:db8::10"),
        "kdig: {out}"
    );
    // ... and DoT, corking the length prefix and the message.
    let (dot_pid, status, out, _) =
        run_client(kdig(&lab, "+tls", "8853", "txt.doh.test", "TXT")).unwrap();
    assert!(
        status.success() && out.contains("hello-from-unbound"),
        "kdig: {out}"
    );

    tracer.wait_for(WAIT, |seen| {
        !lookups(seen, doh_pid, "www.doh.test", "AAAA").is_empty()
            && !lookups(seen, dot_pid, "txt.doh.test", "TXT").is_empty()
    });
    tracer.wait_for(Duration::from_millis(500), |_| false);
    let stderr = tracer.stop_cleanly(libc::SIGINT);
    assert!(
        reported_hooked(&stderr, "gnutls", "libgnutls.so.30"),
        "{stderr:#?}"
    );

    let l = one(&tracer.seen, doh_pid, "www.doh.test", "AAAA", "doh");
    assert_eq!(l["comm"], "kdig", "{l}");
    assert_eq!(l["tls_library"], "gnutls", "{l}");
    assert_eq!(l["method"], "POST", "{l}");
    assert_eq!(l["server"]["port"], 8443, "{l}");
    assert_eq!(l["answers"][0], "2001:db8::10", "{l}");
    assert_eq!(of(&tracer.seen, doh_pid).len(), 1, "{:#?}", tracer.seen);

    let l = one(&tracer.seen, dot_pid, "txt.doh.test", "TXT", "dot");
    assert_eq!(l["tls_library"], "gnutls", "{l}");
    assert_eq!(l["server"]["port"], 8853, "{l}");
    assert_eq!(of(&tracer.seen, dot_pid).len(), 1, "{:#?}", tracer.seen);
}

#[test]
fn corked_gnutls_writes_are_reported_once() {
    require_e2e!(SYSTEM_PYTHON);
    let lab = Lab::with_unbound().unwrap();
    lab.wait_listening(8853, Duration::from_secs(30)).unwrap();
    let mut tracer = Tracer::start(&[]).unwrap();

    // Each query: cork, send the length, send the message, uncork — gnutls_record_send sees
    // every byte twice (buffered, then flushed inside uncork).
    let mut py = lab.command(SYSTEM_PYTHON);
    py.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/lab/gnutls_cork_dot.py"
    ))
    .arg("--ca")
    .arg(lab.ca())
    .args([
        "--server",
        "127.0.0.1",
        "--port",
        "8853",
        "--name",
        "doh.test",
    ])
    .args(["www.doh.test:A", "www.doh.test:AAAA", "txt.doh.test:TXT"]);
    let (pid, status, out, _) = run_client(py).unwrap();
    assert!(status.success(), "client: {out}");

    tracer.wait_for(WAIT, |seen| of(seen, pid).len() >= 3);
    tracer.wait_for(Duration::from_millis(500), |_| false);
    let stderr = tracer.stop_cleanly(libc::SIGINT);

    for (qname, qtype) in [
        ("www.doh.test", "A"),
        ("www.doh.test", "AAAA"),
        ("txt.doh.test", "TXT"),
    ] {
        let l = one(&tracer.seen, pid, qname, qtype, "dot");
        assert_eq!(l["tls_library"], "gnutls", "{l}");
    }
    assert_eq!(
        of(&tracer.seen, pid).len(),
        3,
        "no query reported twice: {:#?}",
        tracer.seen
    );
    // Nothing was misframed: a doubled query would have broken the DoT framing.
    assert!(
        !stderr.iter().any(|l| l.contains("malformed")),
        "{stderr:#?}"
    );
}

/// dnss (Go): a DNS-to-DoH proxy on 127.0.0.1:5355 upstream to unbound's DoH endpoint.
fn start_dnss(lab: &Lab) -> Child {
    let child = lab
        .command("dnss")
        .args([
            "--enable_dns_to_https",
            "--dns_listen_addr=127.0.0.1:5355",
            "--https_upstream=https://127.0.0.1:8443/dns-query",
            "--monitoring_listen_addr=",
        ])
        .env("SSL_CERT_FILE", lab.ca())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting dnss");
    lab.wait_listening_udp(5355, Duration::from_secs(20))
        .expect("dnss listening");
    child
}

#[test]
fn a_go_program_started_after_the_tracer_has_its_lookups_attributed() {
    require_e2e!("dnss", "dig");
    let lab = Lab::with_unbound().unwrap();
    let mut tracer = Tracer::start(&[]).unwrap();

    // dnss is a stripped Go 1.19 binary: crypto/tls is found through .gopclntab at its exec.
    let mut dnss = start_dnss(&lab);
    let dnss_pid = dnss.id();
    // Hooking at exec takes the tracer a moment (reading .gopclntab, disassembling the RETs;
    // seconds under the VM matrix's emulation). A lookup dnss makes before the hook is in place
    // is not seen, so ask only once the tracer says dnss is hooked.
    assert!(
        tracer.wait_for_stderr(WAIT, "hooked go crypto/tls"),
        "the tracer never said it hooked dnss within {WAIT:?}"
    );
    let ask = |qtype: &str| {
        let mut dig = lab.command("dig");
        dig.args([
            "@127.0.0.1",
            "-p",
            "5355",
            "+tries=1",
            "+time=5",
            "www.doh.test",
            qtype,
        ]);
        run_client(dig).unwrap()
    };
    let (dig_pid, status, out, _) = ask("A");
    assert!(status.success() && out.contains("192.0.2.10"), "dig: {out}");
    let (_, status, out, _) = ask("AAAA");
    assert!(
        status.success() && out.contains("2001:db8::10"),
        "dig: {out}"
    );

    tracer.wait_for(WAIT, |seen| {
        !lookups(seen, dnss_pid, "www.doh.test", "A").is_empty()
            && !lookups(seen, dnss_pid, "www.doh.test", "AAAA").is_empty()
    });
    tracer.wait_for(Duration::from_millis(500), |_| false);
    signal(&dnss, libc::SIGTERM);
    let _ = dnss.wait();
    // Nobody runs /usr/bin/dnss any more: its hooks are released (swept every 10 s).
    assert!(
        tracer.wait_for_stderr(Duration::from_secs(25), "released go crypto/tls"),
        "dnss's hooks were not released"
    );
    let stderr = tracer.stop_cleanly(libc::SIGINT);
    assert!(
        reported_hooked(&stderr, "go crypto/tls", "dnss"),
        "{stderr:#?}"
    );

    for qtype in ["A", "AAAA"] {
        let l = one(&tracer.seen, dnss_pid, "www.doh.test", qtype, "doh");
        assert_eq!(l["comm"], "dnss", "{l}");
        assert_eq!(l["tls_library"], "go", "{l}");
        assert_eq!(l["server"]["port"], 8443, "{l}");
        assert_eq!(l["url"], "https://127.0.0.1:8443/dns-query", "{l}");
    }
    // dig asked dnss in classic DNS: its lookup is linked to dnss's DoH lookup.
    let l = one(&tracer.seen, dig_pid, "www.doh.test", "A", "dns-udp");
    assert_eq!(l["upstream"][0]["pid"], dnss_pid, "{l}");
    assert_eq!(l["upstream"][0]["transport"], "doh", "{l}");
}

/// The count in the tracer's "N TLS library calls captured by the uprobes" line.
fn tls_calls(stderr: &[String]) -> u64 {
    stderr
        .iter()
        .find_map(|l| {
            l.strip_prefix("doh-trace: ")?
                .strip_suffix(" TLS library calls captured by the uprobes")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no TLS call count: {stderr:#?}"))
}

#[test]
fn with_pid_only_that_process_is_hooked() {
    require_e2e!("curl", SYSTEM_PYTHON);
    let lab = Lab::with_unbound().unwrap();
    let go = lab.dir.join("go");
    // The chosen process waits, then execs curl (same pid): hooks bound to a process follow
    // it across exec.
    let waiter = format!(
        "import os,sys,time\nwhile not os.path.exists({go:?}): time.sleep(0.02)\nos.execvp(sys.argv[1], sys.argv[1:])",
        go = go.display().to_string()
    );
    let curl = doh_trace_tests::curl_doh(&lab, "www.doh.test");
    let mut chosen = lab.command(SYSTEM_PYTHON);
    chosen
        .args(["-c", &waiter])
        .arg(curl.get_program())
        .args(curl.get_args())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut chosen = chosen.spawn().unwrap();
    let pid = chosen.id();
    let mut tracer = Tracer::start(&["--pid", &pid.to_string()]).unwrap();

    // Another OpenSSL client, busy while the chosen one runs: 12 lookups, not hooked at all.
    let specs = ["www.doh.test/A", "www.doh.test/AAAA"].repeat(6);
    let (other, status, out, _) =
        run_client(doh_trace_tests::python_doh_client(&lab, &specs)).unwrap();
    assert!(status.success(), "other client: {out}");
    std::fs::write(&go, b"").unwrap();
    let _ = chosen.wait();

    tracer.wait_for(WAIT, |seen| {
        !lookups(seen, pid, "www.doh.test", "A").is_empty()
    });
    tracer.wait_for(Duration::from_millis(500), |_| false);
    let stderr = tracer.stop_cleanly(libc::SIGINT);

    assert!(
        stderr
            .iter()
            .any(|l| l.contains("hooked openssl") && l.ends_with(&format!("for pid {pid}"))),
        "{stderr:#?}"
    );
    assert!(
        !stderr
            .iter()
            .any(|l| l.contains("hooked") && !l.contains("for pid")),
        "nothing hooked for every process: {stderr:#?}"
    );
    let l = one(&tracer.seen, pid, "www.doh.test", "A", "doh");
    assert_eq!(l["comm"], "curl", "{l}");
    assert_eq!(l["tls_library"], "openssl", "{l}");
    assert!(of(&tracer.seen, other).is_empty(), "{:#?}", tracer.seen);
    // The other client's 12 lookups took at least 24 TLS calls; the uprobes saw only curl's
    // (two DoH lookups and its HTTP request at most: a handful).
    let calls = tls_calls(&stderr);
    assert!(calls > 0 && calls < 20, "{calls} TLS calls captured");
    // The syscall programs ignore every other process too: unbound's side of the
    // connections (server-side) and the other client's sockets never reached userspace.
    assert_eq!(
        summary_count(&stderr, "server-side"),
        0,
        "other processes' sockets were traced: {stderr:#?}"
    );
    // curl's A and AAAA may each have a connection; the other client opened 12.
    assert!(
        summary_count(&stderr, "HTTP/2 client connections") <= 2,
        "only curl's DoH connections: {stderr:#?}"
    );
}

/// Every descendant of `pid` (Firefox's content and socket processes).
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
            .unwrap_or_default();
        found.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
        i += 1;
    }
    found
}

#[test]
fn firefox_lookups_over_doh_through_nss_are_attributed_to_it() {
    require_e2e!("firefox-esr", "certutil", SYSTEM_PYTHON);
    let lab = Lab::with_unbound().unwrap();
    let profile = firefox_profile(&lab);
    // Something to fetch on loop.doh.test (127.0.0.1), which Firefox must resolve first.
    let mut web = web_server(&lab, None);
    let mut tracer = Tracer::start(&[]).unwrap();

    let mut firefox = firefox_command(&lab, &profile).spawn().unwrap();
    let firefox_pid = firefox.id();

    let answered = |seen: &[Value], qtype: &str| {
        seen.iter().any(|v| {
            v["qname"] == "loop.doh.test"
                && v["qtype"] == qtype
                && v["comm"] == "firefox-esr"
                && v["status"] == "ok"
        })
    };
    tracer.wait_for(Duration::from_secs(90), |seen| {
        answered(seen, "A") && answered(seen, "AAAA")
    });
    let family = descendants(firefox_pid);
    // Its children (forkserver, content and socket processes) exit with it.
    signal(&firefox, libc::SIGTERM);
    let _ = firefox.wait();
    signal(&web, libc::SIGTERM);
    let _ = web.wait();
    tracer.wait_for(Duration::from_millis(500), |_| false);
    let stderr = tracer.stop_cleanly(libc::SIGINT);
    assert!(
        reported_hooked(&stderr, "nss", "libnspr4.so"),
        "{stderr:#?}"
    );
    // Firefox peeks (PR_Recv with PR_MSG_PEEK) before reading: a peeked byte copied as if read
    // would corrupt its HTTP/2 stream.
    assert!(
        !stderr.iter().any(|l| l.contains("malformed")),
        "{stderr:#?}"
    );

    let ours: Vec<&Value> = tracer
        .seen
        .iter()
        .filter(|v| v["qname"] == "loop.doh.test" && v["comm"] == "firefox-esr")
        .collect();
    assert!(!ours.is_empty(), "{:#?}", tracer.seen);
    for l in &ours {
        let pid = l["pid"].as_u64().unwrap() as u32;
        assert!(
            family.contains(&pid),
            "pid {pid} not Firefox's: {family:?} {l}"
        );
        assert_eq!(l["transport"], "doh", "{l}");
        assert_eq!(l["tls_library"], "nss", "{l}");
        assert_eq!(l["server"]["port"], 8443, "{l}");
        // Firefox also asks for HTTPS records, which may still be in flight when it is
        // stopped (then reported unanswered).
        assert!(l["status"] == "ok" || l["status"] == "unanswered", "{l}");
    }
    for (qtype, answer) in [("A", "127.0.0.1"), ("AAAA", "::1")] {
        let l = ours
            .iter()
            .find(|l| l["qtype"] == qtype && l["status"] == "ok")
            .unwrap_or_else(|| panic!("an answered {qtype} lookup: {ours:#?}"));
        assert_eq!(l["rcode"], "NOERROR", "{l}");
        assert_eq!(l["answers"][0], answer, "{l}");
    }
}
