//! Privileged end to end: the runtimes most DoH comes from, whose TLS does not talk to the
//! socket inside the TLS call — OpenSSL on memory BIOs (Python asyncio's `SSLObject`, BIND 9.18's
//! dig) and Node.js (its own BIO, and OpenSSL inside the `node` executable). Every lookup must
//! carry its resolver (`server`), and no connection whose plaintext was decoded may also be
//! reported opaque.
//!
//! Run as root, one test at a time (each starts its own tracer, which sees every process).

use std::time::Duration;

use doh_trace_tests::{require_e2e, run_client, Lab, Tracer, SYSTEM_PYTHON};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn of(seen: &[Value], pid: u32) -> Vec<&Value> {
    seen.iter().filter(|v| v["pid"] == pid).collect()
}

/// The port in a lookup's `authority` (`127.0.0.1:8444`).
fn authority_port(l: &Value) -> u64 {
    l["authority"]
        .as_str()
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("no authority port: {l}"))
}

/// No record of `pid` is an opaque one (its plaintext was decoded, so the connection is not
/// reported a second time).
fn none_opaque(seen: &[Value], pid: u32) {
    for l in of(seen, pid) {
        let t = l["transport"].as_str().unwrap_or("");
        assert!(!t.ends_with("-opaque"), "reported opaque too: {l}");
    }
}

#[test]
fn asyncio_with_two_resolvers_at_once_in_one_thread_names_each_lookups_resolver() {
    require_e2e!(SYSTEM_PYTHON);
    let lab = Lab::with_unbound_and_dnsdist().unwrap();
    let mut tracer = Tracer::start(&[]).unwrap();

    // Two HTTP/2 connections (unbound on 8443, dnsdist on 8444) open at once in one thread,
    // each carrying the same two questions: equal sizes, interleaved.
    let mut py = lab.command(SYSTEM_PYTHON);
    py.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/lab/asyncio_doh_client.py"
    ))
    .arg(lab.ca())
    .arg("https://127.0.0.1:8443/dns-query,https://127.0.0.1:8444/dns-query")
    .args(["www.doh.test/A", "www.doh.test/AAAA"]);
    let (pid, status, out, _) = run_client(py).unwrap();
    assert!(status.success(), "asyncio client: {out}");
    assert_eq!(out.lines().count(), 4, "{out}");

    tracer.wait_for(WAIT, |seen| of(seen, pid).len() >= 4);
    tracer.wait_for(Duration::from_millis(500), |_| false);
    let stderr = tracer.stop_cleanly(libc::SIGINT);
    let mine = of(&tracer.seen, pid);
    assert_eq!(mine.len(), 4, "{mine:#?}\n{stderr:#?}");
    let mut ports: Vec<u64> = Vec::new();
    for l in &mine {
        assert_eq!(l["status"], "ok", "{l}");
        assert_eq!(l["transport"], "doh", "{l}");
        assert_eq!(l["tls_library"], "openssl", "{l}");
        assert_eq!(l["server"]["ip"], "127.0.0.1", "{l}");
        // The resolver this request went to (its :authority) is the server reported.
        assert_eq!(l["server"]["port"], authority_port(l), "{l}");
        ports.push(authority_port(l));
    }
    ports.sort();
    assert_eq!(ports, [8443, 8443, 8444, 8444]);
    none_opaque(&tracer.seen, pid);
}

/// dig (BIND 9.18) over DoH (POST and GET) and DoT: its network manager runs OpenSSL on BIO
/// pairs.
#[test]
fn bind_dig_over_doh_and_dot_names_the_resolver_and_is_not_also_opaque() {
    require_e2e!("dig");
    let lab = Lab::with_unbound().unwrap();
    lab.wait_listening(8853, Duration::from_secs(30)).unwrap();
    let mut tracer = Tracer::start(&[]).unwrap();
    let dig = |mode: &str, port: &str, qtype: &str| {
        let mut c = lab.command("dig");
        c.args(["@127.0.0.1", "-p", port, mode])
            .arg(format!("+tls-ca={}", lab.ca().display()))
            .args(["+tls-hostname=doh.test", "www.doh.test", qtype, "+short"]);
        c
    };
    let mut pids = Vec::new();
    for (mode, port, qtype, transport, method) in [
        ("+https", "8443", "A", "doh", Some("POST")),
        ("+https-get", "8443", "AAAA", "doh", Some("GET")),
        ("+tls", "8853", "A", "dot", None),
    ] {
        let (pid, status, out, _) = run_client(dig(mode, port, qtype)).unwrap();
        assert!(
            status.success() && !out.trim().is_empty(),
            "dig {mode}: {out}"
        );
        pids.push((pid, port, qtype, transport, method));
    }
    tracer.wait_for(WAIT, |seen| {
        pids.iter().all(|(p, ..)| !of(seen, *p).is_empty())
    });
    tracer.wait_for(Duration::from_millis(1000), |_| false);
    let stderr = tracer.stop_cleanly(libc::SIGINT);
    for (pid, port, qtype, transport, method) in pids {
        let mine = of(&tracer.seen, pid);
        assert_eq!(
            mine.len(),
            1,
            "dig {transport} {qtype}: {mine:#?}\n{stderr:#?}"
        );
        let l = mine[0];
        assert_eq!(l["qname"], "www.doh.test", "{l}");
        assert_eq!(l["qtype"], qtype, "{l}");
        assert_eq!(l["status"], "ok", "{l}");
        assert_eq!(l["transport"], transport, "{l}");
        assert_eq!(l["comm"], "dig", "{l}");
        assert_eq!(l["server"]["ip"], "127.0.0.1", "{l}");
        assert_eq!(l["server"]["port"], port.parse::<u64>().unwrap(), "{l}");
        if let Some(m) = method {
            assert_eq!(l["method"], m, "{l}");
        }
        none_opaque(&tracer.seen, pid);
    }
}

/// Node.js 20: OpenSSL inside the `node` executable (resolved from that file's own symbol
/// table), on Node's own BIO. A node process running when the tracer starts has the executable
/// hooked at start (hooks are per file), so the short-lived client that follows is traced from
/// its first call; a node started alone after the tracer is hooked when its exec is seen, which
/// can be after a client this quick has finished.
#[test]
fn node_http2_doh_is_hooked_in_its_own_executable_and_names_the_resolver() {
    require_e2e!("node");
    let lab = Lab::with_unbound().unwrap();
    let mut keeper = lab.command("node");
    keeper.args(["-e", "setTimeout(() => {}, 120000)"]);
    let mut keeper = keeper.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut tracer = Tracer::start(&[]).unwrap();
    let mut node = lab.command("node");
    node.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/lab/node_doh_client.js"
    ))
    .arg(lab.ca())
    .arg("https://127.0.0.1:8443/dns-query")
    .args(["www.doh.test/A", "www.doh.test/AAAA", "nx.doh.test/A"]);
    let (pid, status, out, _) = run_client(node).unwrap();
    assert!(status.success(), "node client: {out}");
    assert_eq!(out.lines().count(), 3, "{out}");
    tracer.wait_for(WAIT, |seen| of(seen, pid).len() >= 3);
    tracer.wait_for(Duration::from_millis(500), |_| false);
    let stderr = tracer.stop_cleanly(libc::SIGINT);
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("hooked openssl") && l.contains("node")),
        "{stderr:#?}"
    );
    let mine = of(&tracer.seen, pid);
    assert_eq!(mine.len(), 3, "{mine:#?}\n{stderr:#?}");
    let mut got: Vec<(String, String, String)> = Vec::new();
    for l in &mine {
        assert_eq!(l["transport"], "doh", "{l}");
        assert_eq!(l["tls_library"], "openssl", "{l}");
        assert_eq!(l["method"], "POST", "{l}");
        assert_eq!(l["server"]["ip"], "127.0.0.1", "{l}");
        assert_eq!(l["server"]["port"], 8443, "{l}");
        got.push((
            l["qname"].as_str().unwrap_or("").to_string(),
            l["qtype"].as_str().unwrap_or("").to_string(),
            l["rcode"].as_str().unwrap_or("").to_string(),
        ));
    }
    got.sort();
    let want = |n: &str, t: &str, r: &str| (n.to_string(), t.to_string(), r.to_string());
    assert_eq!(
        got,
        [
            want("nx.doh.test", "A", "NXDOMAIN"),
            want("www.doh.test", "A", "NOERROR"),
            want("www.doh.test", "AAAA", "NOERROR"),
        ]
    );
    none_opaque(&tracer.seen, pid);
    let _ = keeper.kill();
    let _ = keeper.wait();
}
