//! Privileged end to end: the real tracer and its eBPF programs, unbound serving DoH on
//! loopback in a private network namespace, and real OpenSSL clients — curl (SSL_write /
//! SSL_read) and CPython via dnspython+httpx (SSL_write_ex / SSL_read_ex).
//!
//! Run as root, one test at a time (each starts its own tracer, which sees every process).

use std::time::Duration;

use doh_trace_tests::{
    count, curl_doh, python_doh_client, require_e2e, run_client, summary_count, Lab, Tracer,
    SYSTEM_PYTHON,
};
use serde_json::Value;

use doh_trace_tests::UNBOUND_URL as URL;
const WAIT: Duration = Duration::from_secs(15);
/// Names of doh-trace's programs as the kernel keeps them (15 characters at most).
fn find<'a>(seen: &'a [Value], pid: u32, qname: &str, qtype: &str) -> Vec<&'a Value> {
    seen.iter()
        .filter(|v| v["pid"] == pid && v["qname"] == qname && v["qtype"] == qtype)
        .collect()
}

fn assert_common_fields(l: &Value, comm: &str) {
    assert_eq!(l["comm"], comm, "{l}");
    assert_eq!(l["transport"], "doh", "{l}");
    assert_eq!(l["server"]["ip"], "127.0.0.1", "{l}");
    assert_eq!(l["server"]["port"], 8443, "{l}");
    assert_eq!(l["authority"], "127.0.0.1:8443", "{l}");
    assert_eq!(l["url"], URL, "{l}");
    assert_eq!(l["status"], "ok", "{l}");
    assert_eq!(l["http_status"], 200, "{l}");
    assert!(l["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{l}");
    assert!(
        l["time"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.contains('T')),
        "{l}"
    );
    assert!(l["tid"].as_u64().is_some_and(|t| t > 0), "{l}");
}

#[test]
fn curl_lookups_appear_once_each_with_curls_pid_and_name() {
    require_e2e!();
    let lab = Lab::with_unbound().unwrap();
    let mut tracer = Tracer::start(&[]).unwrap();

    // curl resolves through DoH (A and AAAA), then fails to connect: only the lookups matter.
    let (pid_loop, _, _, ended) = run_client(curl_doh(&lab, "loop.doh.test")).unwrap();
    tracer.wait_for(WAIT, |seen| count(seen, pid_loop) >= 2);
    eprintln!(
        "first curl's lookups were printed {:?} after curl exited",
        ended.elapsed()
    );
    let (pid_www, _, _, _) = run_client(curl_doh(&lab, "www.doh.test")).unwrap();
    tracer.wait_for(WAIT, |seen| count(seen, pid_www) >= 2);
    // A duplicate would arrive right behind the originals; give it the chance.
    tracer.wait_for(Duration::from_millis(500), |_| false);
    tracer.stop_cleanly(libc::SIGINT);

    for (pid, host, a, aaaa) in [
        (pid_loop, "loop.doh.test", "127.0.0.1", "::1"),
        (pid_www, "www.doh.test", "192.0.2.10", "2001:db8::10"),
    ] {
        assert_eq!(
            count(&tracer.seen, pid),
            2,
            "exactly A and AAAA for {host}: {:#?}",
            tracer.seen
        );
        for (qtype, answer) in [("A", a), ("AAAA", aaaa)] {
            let l = find(&tracer.seen, pid, host, qtype);
            assert_eq!(l.len(), 1, "{host} {qtype} once: {:#?}", tracer.seen);
            assert_common_fields(l[0], "curl");
            assert_eq!(l[0]["rcode"], "NOERROR");
            assert_eq!(l[0]["answers"], serde_json::json!([answer]));
            assert_eq!(l[0]["method"], "POST");
        }
    }
}

#[test]
fn python_ssl_ex_client_lookups_are_attributed_including_get_and_nxdomain() {
    require_e2e!(SYSTEM_PYTHON);
    let lab = Lab::with_unbound().unwrap();
    let mut tracer = Tracer::start(&[]).unwrap();
    let py = python_doh_client(
        &lab,
        &[
            "www.doh.test/A",
            "www.doh.test/AAAA/get",
            "txt.doh.test/TXT",
            "nx.doh.test/A",
        ],
    );
    let (pid, status, out, _) = run_client(py).unwrap();
    assert!(status.success(), "client failed: {out}");
    assert_eq!(
        out.lines().count(),
        4,
        "the client itself got four answers: {out}"
    );
    tracer.wait_for(WAIT, |seen| count(seen, pid) >= 4);
    tracer.wait_for(Duration::from_millis(500), |_| false);
    tracer.stop_cleanly(libc::SIGTERM);

    assert_eq!(count(&tracer.seen, pid), 4, "{:#?}", tracer.seen);
    let cases = [
        ("www.doh.test", "A", "POST", "NOERROR", vec!["192.0.2.10"]),
        (
            "www.doh.test",
            "AAAA",
            "GET",
            "NOERROR",
            vec!["2001:db8::10"],
        ),
        (
            "txt.doh.test",
            "TXT",
            "POST",
            "NOERROR",
            vec!["hello-from-unbound"],
        ),
        ("nx.doh.test", "A", "POST", "NXDOMAIN", vec![]),
    ];
    for (qname, qtype, method, rcode, answers) in cases {
        let l = find(&tracer.seen, pid, qname, qtype);
        assert_eq!(l.len(), 1, "{qname} {qtype} once: {:#?}", tracer.seen);
        assert_common_fields(l[0], "python3");
        assert_eq!(l[0]["method"], method, "{}", l[0]);
        assert_eq!(l[0]["rcode"], rcode, "{}", l[0]);
        assert_eq!(l[0]["answers"], serde_json::json!(answers), "{}", l[0]);
        assert_ne!(l[0]["dns_id"], Value::Null);
    }
}

#[test]
fn ordinary_https_requests_over_http2_produce_no_lookups_and_leak_nothing() {
    require_e2e!();
    let lab = Lab::with_unbound().unwrap();
    let mut tracer = Tracer::start(&[]).unwrap();
    let secret = "x-doh-trace-secret-7d1f";

    let mut page = lab.command("curl");
    page.args(["-sS", "--http2", "--max-time", "10", "--cacert"])
        .arg(lab.ca())
        .arg(format!("https://127.0.0.1:8443/private/{secret}.html"));
    let (pid_page, _, _, _) = run_client(page).unwrap();
    let mut upload = lab.command("curl");
    upload
        .args(["-sS", "--http2", "--max-time", "10", "--cacert"])
        .arg(lab.ca())
        .args(["-H", "content-type: application/json", "--data-binary"])
        .arg(format!("{{\"password\":\"{secret}\"}}"))
        .arg("https://127.0.0.1:8443/upload");
    let (pid_upload, _, _, _) = run_client(upload).unwrap();
    // A DoH lookup afterwards proves the tracer was watching all along.
    let (pid_doh, _, _, _) = run_client(curl_doh(&lab, "www.doh.test")).unwrap();
    tracer.wait_for(WAIT, |seen| count(seen, pid_doh) >= 2);
    tracer.wait_for(Duration::from_millis(500), |_| false);
    let stderr = tracer.stop_cleanly(libc::SIGINT);

    assert_eq!(
        count(&tracer.seen, pid_doh),
        2,
        "control lookups: {:#?}",
        tracer.seen
    );
    assert_eq!(count(&tracer.seen, pid_page), 0, "{:#?}", tracer.seen);
    assert_eq!(count(&tracer.seen, pid_upload), 0, "{:#?}", tracer.seen);
    let everything = format!("{:?}{}", tracer.seen, stderr.join("\n"));
    assert!(
        !everything.contains(secret),
        "non-DNS plaintext leaked into output"
    );
    assert!(
        summary_count(&stderr, " HTTP/2 client connections") >= 3,
        "the non-DNS connections were decoded too: {stderr:?}"
    );
    assert!(
        summary_count(&stderr, " classified not DNS") >= 2,
        "and classified as not DNS: {stderr:?}"
    );
}
