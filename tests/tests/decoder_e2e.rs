//! Privileged end to end, decoder depth: joining a connection opened before the tracer,
//! capture minimisation of non-DNS connections, and record → replay with real clients.

use std::{process::Command, time::Duration};

use doh_trace_tests::{
    count, curl_doh, curl_doh_post, dns_query, keepalive_client, python_doh_client, require_e2e,
    run_client, start_until_first_done, summary_count, tracer_binary, Lab, Tracer, SYSTEM_PYTHON,
    UNBOUND_URL,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

#[test]
fn a_connection_opened_before_the_tracer_is_decoded_without_guessing_headers() {
    require_e2e!(SYSTEM_PYTHON);
    let lab = Lab::with_unbound().unwrap();
    let go = lab.dir.join("go");
    // The client makes one lookup, then waits on one open HTTP/2 connection for `go`.
    let specs = [
        "www.doh.test/A",
        "www.doh.test/AAAA",
        "txt.doh.test/TXT/get",
        "nx.doh.test/A",
    ];
    let mut child = start_until_first_done(keepalive_client(&lab, &go, &specs));
    let pid = child.id();
    let mut tracer = Tracer::start(&[]).unwrap();
    std::fs::write(&go, b"").unwrap();
    tracer.wait_for(WAIT, |seen| count(seen, pid) >= 3);
    assert!(child.wait().unwrap().success());
    tracer.wait_for(Duration::from_millis(500), |_| false);
    let (status, stderr) = tracer.stop(libc::SIGINT).unwrap();
    assert!(status.success());

    let mine: Vec<&Value> = tracer.seen.iter().filter(|v| v["pid"] == pid).collect();
    assert_eq!(
        mine.len(),
        3,
        "the three lookups after the tracer started: {mine:#?}"
    );
    let expect = [
        ("www.doh.test", "AAAA", "NOERROR", vec!["2001:db8::10"]),
        ("txt.doh.test", "TXT", "NOERROR", vec!["hello-from-unbound"]),
        ("nx.doh.test", "A", "NXDOMAIN", vec![]),
    ];
    for (qname, qtype, rcode, answers) in expect {
        let l = mine
            .iter()
            .find(|v| v["qname"] == qname && v["qtype"] == qtype)
            .unwrap_or_else(|| panic!("{qname} {qtype}: {mine:#?}"));
        assert_eq!(l["comm"], "python3");
        assert_eq!(l["rcode"], rcode);
        assert_eq!(l["answers"], serde_json::json!(answers));
        // Joined mid-stream: the HPACK state is unknown, so no header value is invented.
        assert_eq!(l["headers_known"], false, "{l}");
        assert_eq!(l["method"], Value::Null, "{l}");
        assert_eq!(l["authority"], Value::Null, "{l}");
        assert_eq!(l["url"], Value::Null, "{l}");
        assert_eq!(
            l["server"]["port"], 8443,
            "the peer still comes from the socket"
        );
    }
    assert_eq!(
        summary_count(&stderr, " joined mid-stream"),
        1,
        "{stderr:?}"
    );
}

#[test]
fn non_dns_connections_stop_being_copied_once_classified() {
    require_e2e!();
    let lab = Lab::with_unbound().unwrap();
    let body = lab.dir.join("upload.bin");
    // 1 MiB of non-DNS request body over one HTTP/2 connection.
    std::fs::write(&body, vec![b'x'; 1 << 20]).unwrap();
    let mut tracer = Tracer::start(&[]).unwrap();
    let mut upload = lab.command("curl");
    upload
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "--http2",
            "--max-time",
            "20",
            "--cacert",
        ])
        .arg(lab.ca())
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg("https://127.0.0.1:8443/upload");
    let (pid_upload, status, _, _) = run_client(upload).unwrap();
    assert!(status.success());
    // Control: a DoH lookup is still decoded in full.
    let (pid_doh, _, _, _) = run_client(curl_doh(&lab, "www.doh.test")).unwrap();
    tracer.wait_for(WAIT, |seen| count(seen, pid_doh) >= 2);
    let (_, stderr) = tracer.stop(libc::SIGINT).unwrap();
    assert_eq!(count(&tracer.seen, pid_upload), 0);
    assert_eq!(count(&tracer.seen, pid_doh), 2);
    // Copying all of it would take at least 256 events of 4 KiB; classification stops it
    // after the first request (the unclassified budget is 16 KiB per connection and layer).
    let events = summary_count(&stderr, " events");
    assert!(
        events < 200,
        "non-DNS bytes kept being copied: {events} events; {stderr:?}"
    );
    assert!(
        summary_count(&stderr, " classified not DNS") >= 1,
        "{stderr:?}"
    );
}

#[test]
fn record_then_replay_without_root_gives_the_same_lookups_and_no_other_plaintext() {
    require_e2e!(SYSTEM_PYTHON);
    let lab = Lab::with_unbound().unwrap();
    let file = lab.dir.join("capture.dtr");
    let secret = "x-doh-trace-secret-recorded";
    let mut tracer = Tracer::start(&["record", "-o", file.to_str().unwrap()]).unwrap();
    let (pid_curl, _, _, _) = run_client(curl_doh(&lab, "loop.doh.test")).unwrap();
    let mut page = lab.command("curl");
    page.args([
        "-sS",
        "-o",
        "/dev/null",
        "--http2",
        "--max-time",
        "10",
        "--cacert",
    ])
    .arg(lab.ca())
    .arg(format!("https://127.0.0.1:8443/{secret}"));
    run_client(page).unwrap();
    let py = python_doh_client(&lab, &["www.doh.test/A", "www.doh.test/AAAA/get"]);
    let (pid_py, _, _, _) = run_client(py).unwrap();
    // DoH and a page on one HTTP/2 connection: the page's form (its body, on the wire as it
    // is), path, cookie and authorization must not be recorded.
    let mixed_secret = "~^|~^|~^|~^|";
    let mut mixed = lab.command(SYSTEM_PYTHON);
    mixed
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/lab/doh_and_page.py"))
        .arg(lab.ca())
        .arg(UNBOUND_URL)
        .arg("www.doh.test")
        .env("PAGE_SECRET", mixed_secret);
    let (pid_mixed, status, out, _) = run_client(mixed).unwrap();
    assert!(
        status.success() && out.contains("page "),
        "doh_and_page.py: {out}"
    );
    assert!(
        out.contains("HTTP/2 HTTP/2"),
        "one HTTP/2 connection: {out}"
    );
    tracer.wait_for(WAIT, |seen| {
        count(seen, pid_curl) >= 2 && count(seen, pid_py) >= 2 && count(seen, pid_mixed) >= 2
    });
    tracer.wait_for(Duration::from_millis(500), |_| false);
    let (status, _) = tracer.stop(libc::SIGINT).unwrap();
    assert!(status.success());
    let live: Vec<Value> = tracer
        .seen
        .iter()
        .filter(|v| v["pid"] == pid_curl || v["pid"] == pid_py || v["pid"] == pid_mixed)
        .cloned()
        .collect();
    assert_eq!(live.len(), 6, "{live:#?}");

    let raw = std::fs::read(&file).unwrap();
    for secret in [secret, mixed_secret] {
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "non-DNS plaintext was recorded: {secret}"
        );
    }

    // The recording holds every user's DNS data: created 0600, owned by root.
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    // Handed to an unprivileged user (as `sudo chown` would), replayed there: no root, no eBPF.
    std::os::unix::fs::chown(&file, Some(65534), Some(65534)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(tracer_binary())
        .args(["--json", "replay"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v["pid"] == pid_curl || v["pid"] == pid_py || v["pid"] == pid_mixed)
        .collect();
    let key = |v: &Value| {
        (
            v["pid"].to_string(),
            v["stream_id"].to_string(),
            v["qname"].to_string(),
            v["qtype"].to_string(),
        )
    };
    let mut a = live.clone();
    let mut b = replayed.clone();
    a.sort_by_key(key);
    b.sort_by_key(key);
    assert_eq!(
        a, b,
        "replay must reproduce the live lookups field for field"
    );
}

#[test]
fn http1_and_h2c_shapes_from_real_curl_against_dnsdist() {
    require_e2e!("dnsdist");
    let lab = Lab::with_unbound_and_dnsdist().unwrap();
    let body = lab.dir.join("query.bin");
    std::fs::write(&body, dns_query("www.doh.test")).unwrap();
    let b64 = {
        // base64url without padding, by hand (no extra crates in this test crate).
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let q = dns_query("loop.doh.test");
        let mut s = String::new();
        for c in q.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..=c.len() {
                s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        s
    };
    let mut tracer = Tracer::start(&[]).unwrap();
    let post =
        |args: &[&str], url: &str| run_client(curl_doh_post(&lab, &body, args, url)).unwrap();
    let (pid_h1_tls, s1, _, _) = post(&["--http1.1"], "https://127.0.0.1:8444/dns-query");
    let (pid_h1_clear, s2, _, _) = post(&["--http1.1"], "http://127.0.0.1:8081/dns-query");
    let (pid_prior, s3, _, _) = post(
        &["--http2-prior-knowledge"],
        "http://127.0.0.1:8081/dns-query",
    );
    let mut upgrade = lab.command("curl");
    upgrade
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "--max-time",
            "10",
            "--http2",
            "-H",
            "accept: application/dns-message",
        ])
        .arg(format!("http://127.0.0.1:8081/dns-query?dns={b64}"));
    let (pid_upgrade, s4, _, _) = run_client(upgrade).unwrap();
    assert!(
        s1.success() && s2.success() && s3.success() && s4.success(),
        "every curl got its answer"
    );
    let pids = [pid_h1_tls, pid_h1_clear, pid_prior, pid_upgrade];
    tracer.wait_for(WAIT, |seen| pids.iter().all(|p| count(seen, *p) >= 1));
    tracer.wait_for(Duration::from_millis(500), |_| false);
    let (status, stderr) = tracer.stop(libc::SIGINT).unwrap();
    assert!(status.success());
    let one = |pid: u32| -> &Value {
        let mine: Vec<&Value> = tracer.seen.iter().filter(|v| v["pid"] == pid).collect();
        assert_eq!(
            mine.len(),
            1,
            "exactly one lookup for {pid}: {:#?}",
            tracer.seen
        );
        mine[0]
    };
    for (pid, version, url, qname, method) in [
        (
            pid_h1_tls,
            "http/1.1",
            "https://127.0.0.1:8444/dns-query",
            "www.doh.test",
            "POST",
        ),
        (
            pid_h1_clear,
            "http/1.1",
            "http://127.0.0.1:8081/dns-query",
            "www.doh.test",
            "POST",
        ),
        (
            pid_prior,
            "h2",
            "http://127.0.0.1:8081/dns-query",
            "www.doh.test",
            "POST",
        ),
        (
            pid_upgrade,
            "h2",
            "http://127.0.0.1:8081/dns-query",
            "loop.doh.test",
            "GET",
        ),
    ] {
        let l = one(pid);
        assert_eq!(l["comm"], "curl", "{l}");
        assert_eq!(l["http_version"], version, "{l}");
        assert_eq!(l["url"], url, "{l}");
        assert_eq!(l["method"], method, "{l}");
        assert_eq!(l["qname"], qname, "{l}");
        assert_eq!(l["qtype"], "A", "{l}");
        assert_eq!(l["status"], "ok", "{l}");
        assert_eq!(l["rcode"], "NOERROR", "{l}");
        assert_eq!(l["dns_id"], 0x1234, "{l}");
        let answer = if qname == "www.doh.test" {
            "192.0.2.10"
        } else {
            "127.0.0.1"
        };
        assert_eq!(l["answers"], serde_json::json!([answer]), "{l}");
    }
    assert_eq!(
        one(pid_upgrade)["stream_id"],
        1,
        "the upgraded request is HTTP/2 stream 1"
    );
    assert_eq!(summary_count(&stderr, " upgraded to h2c"), 1, "{stderr:?}");
}
