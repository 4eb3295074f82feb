//! Privileged end to end, outputs: the pcapng file (read back by Debian's tshark) and the
//! Prometheus endpoint (scraped over loopback) while real curl lookups are traced.

use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    process::Command,
    time::Duration,
};

use doh_trace_tests::{count, curl_doh, require_e2e, run_client, Lab, Tracer};

fn scrape(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

#[test]
fn pcapng_and_metrics_show_the_lookups_of_real_clients() {
    require_e2e!("tshark");
    let lab = Lab::with_unbound().unwrap();
    let pcap = lab.dir.join("lookups.pcapng");
    // A free loopback port for the metrics endpoint.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let mut tracer = Tracer::start(&["-w", pcap.to_str().unwrap(), "--metrics", &addr]).unwrap();
    let (pid, _, _, _) = run_client(curl_doh(&lab, "www.doh.test")).unwrap();
    tracer.wait_for(Duration::from_secs(15), |seen| count(seen, pid) >= 2);
    assert_eq!(count(&tracer.seen, pid), 2);

    let metrics = scrape(&addr);
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains(
            r#"doh_trace_lookups_total{transport="doh",comm="curl",rcode="NOERROR",status="ok"} 2"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("doh_trace_lookup_latency_seconds_count{transport=\"doh\"} 2"),
        "{metrics}"
    );
    let (status, _) = tracer.stop(libc::SIGINT).unwrap();
    assert!(status.success());

    let out = Command::new("tshark")
        .args(["-r"])
        .arg(&pcap)
        .args([
            "-Y",
            "dns",
            "-T",
            "fields",
            "-e",
            "dns.flags.response",
            "-e",
            "dns.qry.name",
            "-e",
            "dns.a",
            "-e",
            "dns.aaaa",
            "-e",
            "frame.comment",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 4, "a query and an answer per lookup:\n{text}");
    assert!(
        rows.iter().all(|r| r[1] == "www.doh.test"
            && r[4].contains(&format!("pid={pid}"))
            && r[4].contains("comm=curl")),
        "{text}"
    );
    let answers: Vec<&str> = rows
        .iter()
        .filter(|r| r[0] == "1" || r[0] == "True")
        .flat_map(|r| [r[2], r[3]])
        .filter(|a| !a.is_empty())
        .collect();
    assert_eq!(answers.len(), 2, "{text}");
    assert!(
        answers.contains(&"192.0.2.10") && answers.contains(&"2001:db8::10"),
        "{text}"
    );
}
