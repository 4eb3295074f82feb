//! Regenerates the recorded event streams in tests/fixtures/ that the replay tests (no root)
//! run on: real clients against real servers, recorded by the real tracer. Run as root with
//! `cargo test -p doh-trace-tests --test fixtures_gen -- --ignored --test-threads=1`.
//! Each fixture `NAME.dtr` comes with `NAME.expected.jsonl`: the lookups the live tracer
//! printed while recording.

use std::{path::PathBuf, time::Duration};

use doh_trace_tests::{
    curl_doh, curl_doh_post, dns_query, keepalive_client, python_doh_client, run_client,
    start_until_first_done, Lab, Tracer,
};
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures"))
}

/// Records while `drive` runs clients; `n` lookups of the returned pids are awaited.
fn record(name: &str, lab: &Lab, n: usize, drive: impl FnOnce(&Lab) -> Vec<u32>) {
    std::fs::create_dir_all(fixtures()).unwrap();
    let file = fixtures().join(format!("{name}.dtr"));
    let mut tracer = Tracer::start(&["record", "-o", file.to_str().unwrap()]).unwrap();
    let pids = drive(lab);
    tracer.wait_for(Duration::from_secs(20), |seen| {
        seen.iter()
            .filter(|v| pids.iter().any(|p| v["pid"] == *p))
            .count()
            >= n
    });
    tracer.wait_for(Duration::from_millis(500), |_| false);
    let (status, _) = tracer.stop(libc::SIGINT).unwrap();
    assert!(status.success());
    let mine: Vec<&Value> = tracer
        .seen
        .iter()
        .filter(|v| pids.iter().any(|p| v["pid"] == *p))
        .collect();
    assert_eq!(mine.len(), n, "{mine:#?}");
    let lines: Vec<String> = mine.iter().map(|v| v.to_string()).collect();
    std::fs::write(
        fixtures().join(format!("{name}.expected.jsonl")),
        lines.join("\n") + "\n",
    )
    .unwrap();
}

#[test]
#[ignore = "regenerates the committed replay fixtures; needs root"]
fn regenerate_openssl_clients_against_unbound() {
    let lab = Lab::with_unbound().unwrap();
    record("curl-python-unbound", &lab, 6, |lab| {
        let (p1, _, _, _) = run_client(curl_doh(lab, "www.doh.test")).unwrap();
        let py = python_doh_client(
            lab,
            &[
                "www.doh.test/A",
                "www.doh.test/AAAA/get",
                "txt.doh.test/TXT",
                "nx.doh.test/A",
            ],
        );
        let (p2, _, _, _) = run_client(py).unwrap();
        vec![p1, p2]
    });
}

#[test]
#[ignore = "regenerates the committed replay fixtures; needs root"]
fn regenerate_http1_and_h2c_against_dnsdist() {
    let lab = Lab::with_unbound_and_dnsdist().unwrap();
    let body = lab.dir.join("query.bin");
    std::fs::write(&body, dns_query("www.doh.test")).unwrap();
    record("curl-http1-h2c-dnsdist", &lab, 3, |lab| {
        let post =
            |args: &[&str], url: &str| run_client(curl_doh_post(lab, &body, args, url)).unwrap().0;
        vec![
            post(&["--http1.1"], "https://127.0.0.1:8444/dns-query"),
            post(&["--http1.1"], "http://127.0.0.1:8081/dns-query"),
            post(
                &["--http2-prior-knowledge"],
                "http://127.0.0.1:8081/dns-query",
            ),
        ]
    });
}

#[test]
#[ignore = "regenerates the committed replay fixtures; needs root"]
fn regenerate_mid_stream_join() {
    let lab = Lab::with_unbound().unwrap();
    let go = lab.dir.join("go");
    let specs = [
        "www.doh.test/A",
        "www.doh.test/AAAA",
        "txt.doh.test/TXT/get",
        "nx.doh.test/A",
    ];
    let mut child = start_until_first_done(keepalive_client(&lab, &go, &specs));
    let pid = child.id();
    record("python-mid-stream-unbound", &lab, 3, |_| {
        std::fs::write(&go, b"").unwrap();
        assert!(child.wait().unwrap().success());
        vec![pid]
    });
}
