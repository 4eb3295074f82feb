//! Privileged end to end, differential against Wireshark: real DoH and DoT clients with
//! `SSLKEYLOGFILE`, all in one capture by dumpcap on the lab namespace's loopback —
//!
//! - curl on OpenSSL (DoH),
//! - kdig on GnuTLS, over DoH (port 8443) and over DoT (port 8853),
//! - python httpx on OpenSSL, POST and GET, and once with TLS at most 1.2,
//! - Firefox ESR headless on its bundled NSS (DoH, TRR only), fetching a page on
//!   loop.doh.test (it may ask HTTPS records too).
//!
//! `tshark -o tls.keylog_file:KEYS` and `doh-trace read --keylog KEYS` must find the same DNS
//! responses (name, type, id, rcode, A and AAAA answers) — and the same again with the keys
//! embedded by `editcap --inject-secrets`. tshark dissects DoT only on port 853 by itself, so
//! every tshark run is told port 8853 is TLS carrying DNS.
//!
//! BIND 9.18's dig is not among the clients: with `SSLKEYLOGFILE` set it never opens the file;
//! libisc sends the secrets to dig's debug log on stderr, each line prefixed with a timestamp,
//! which is not a key log file.
//!
//! Run as root (a network namespace); tshark, dumpcap and editcap are Debian's.

use std::{
    net::IpAddr,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use doh_trace_tests::{
    curl_doh, firefox_command, firefox_profile, python_doh_client, require_e2e, run_client, signal,
    web_server, Lab, SYSTEM_PYTHON,
};
use serde_json::Value;

/// What both sides are compared on: (qname, qtype, id, rcode, A/AAAA answers).
type Answer = (String, u16, u16, u16, Vec<String>);

/// The responses, sorted (a multiset: two clients may ask the same with the same id).
type Answers = Vec<Answer>;

fn sorted(mut v: Answers) -> Answers {
    v.sort();
    v
}

fn qtype_number(m: &str) -> u16 {
    match m {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "SOA" => 6,
        "PTR" => 12,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        "SRV" => 33,
        "HTTPS" => 65,
        other => other
            .strip_prefix("TYPE")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    }
}

fn rcode_number(m: &str) -> u16 {
    match m {
        "NOERROR" => 0,
        "FORMERR" => 1,
        "SERVFAIL" => 2,
        "NXDOMAIN" => 3,
        "NOTIMP" => 4,
        "REFUSED" => 5,
        _ => 255,
    }
}

fn sorted_ips<'a>(it: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut v: Vec<String> = it
        .filter_map(|s| s.parse::<IpAddr>().ok().map(|ip| ip.to_string()))
        .collect();
    v.sort();
    v
}

/// tshark's decode-as options for DoT on the lab's port 8853 (it knows only 853). With tshark
/// 4.0.17, `tls.port==8853,dns` alone is enough and `tcp.port==8853,tls` alone is not (the DoT
/// answers are missing from its output); both are passed.
const DOT_DECODE_AS: [&str; 4] = ["-d", "tcp.port==8853,tls", "-d", "tls.port==8853,dns"];

/// The lines of the key log `keys` that hold a secret (`CLIENT_RANDOM`, `*_SECRET`).
fn secret_lines(keys: &Path) -> usize {
    std::fs::read_to_string(keys)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("CLIENT_RANDOM ") || l.contains("_SECRET "))
        .count()
}

/// tshark's DNS responses in `capture`, decrypted with `keys` if given.
fn tshark(capture: &Path, keys: Option<&Path>) -> Answers {
    let mut c = Command::new("tshark");
    c.arg("-r").arg(capture);
    if let Some(k) = keys {
        c.arg("-o").arg(format!("tls.keylog_file:{}", k.display()));
    }
    // The lab's DoT port: TLS over that TCP port, DNS inside that TLS.
    c.args(DOT_DECODE_AS);
    let out = c
        .args(["-Y", "dns.flags.response == 1", "-T", "fields"])
        .args([
            "-E",
            "aggregator=,",
            "-e",
            "dns.qry.name",
            "-e",
            "dns.qry.type",
        ])
        .args([
            "-e",
            "dns.id",
            "-e",
            "dns.flags.rcode",
            "-e",
            "dns.a",
            "-e",
            "dns.aaaa",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            (
                f[0].to_string(),
                f[1].parse().unwrap(),
                u16::from_str_radix(f[2].trim_start_matches("0x"), 16).unwrap(),
                f[3].parse().unwrap(),
                sorted_ips(f[4..].iter().flat_map(|s| s.split(','))),
            )
        })
        .collect();
    sorted(all)
}

/// `doh-trace read`'s lookups of `capture`, and the records themselves.
fn ours(capture: &Path, keys: Option<&Path>) -> (Answers, Vec<Value>) {
    let mut c = Command::new(doh_trace_tests::tracer_binary());
    c.arg("read").arg(capture).args(["--json", "-q"]);
    if let Some(k) = keys {
        c.arg("--keylog").arg(k);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let set = records
        .iter()
        .filter_map(|v| {
            let s = |k: &str| v[k].as_str();
            Some((
                s("qname")?.trim_end_matches('.').to_string(),
                qtype_number(s("qtype")?),
                v["dns_id"].as_u64()? as u16,
                rcode_number(s("rcode")?),
                sorted_ips(v["answers"].as_array()?.iter().filter_map(|a| a.as_str())),
            ))
        })
        .collect();
    (sorted(set), records)
}

/// httpx over HTTP/2 with TLS at most 1.2, its keys logged: a POST of `www.doh.test AAAA`.
const TLS12_CLIENT: &str = r#"
import ssl, sys, httpx, dns.message
ca, keys, url = sys.argv[1:4]
ctx = ssl.create_default_context(cafile=ca)
ctx.maximum_version = ssl.TLSVersion.TLSv1_2
ctx.keylog_filename = keys
q = dns.message.make_query("www.doh.test", "AAAA")
with httpx.Client(http2=True, verify=ctx) as c:
    r = c.post(url, content=q.to_wire(), headers={"content-type": "application/dns-message"})
    print(r.http_version, dns.message.from_wire(r.content).answer)
"#;

/// Firefox headless on `profile`, its keys logged to `keys`, until it has fetched the lab's page
/// (so it has resolved loop.doh.test over DoH), then stopped with SIGTERM.
fn run_firefox(lab: &Lab, profile: &Path, keys: &Path) {
    let web_log = lab.dir.join("http-server.log");
    let mut web = web_server(lab, Some(&web_log));
    let mut firefox = firefox_command(lab, profile)
        .env("SSLKEYLOGFILE", keys)
        .spawn()
        .unwrap();
    // No tracer to tell when it resolved: the GET reaching the page server says it has.
    let deadline = Instant::now() + Duration::from_secs(90);
    let fetched = loop {
        let log = std::fs::read_to_string(&web_log).unwrap_or_default();
        if log.contains("\"GET / ") {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // A moment for a lookup still answering (AAAA after A, HTTPS records).
    std::thread::sleep(Duration::from_millis(1500));
    signal(&firefox, libc::SIGTERM);
    let _ = firefox.wait();
    signal(&web, libc::SIGTERM);
    let _ = web.wait();
    assert!(
        fetched,
        "Firefox never fetched {}",
        doh_trace_tests::FIREFOX_PAGE
    );
}

#[test]
fn decrypted_doh_captures_match_tshark() {
    require_e2e!(
        "dumpcap",
        "tshark",
        "editcap",
        "kdig",
        "firefox-esr",
        "certutil",
        SYSTEM_PYTHON
    );
    let lab = Lab::with_unbound().unwrap();
    lab.wait_listening(8853, Duration::from_secs(30)).unwrap();
    let profile = firefox_profile(&lab);
    let capture = lab.dir.join("doh.pcapng");
    let keys = lab.dir.join("keys.log");
    let mut dumpcap = lab
        .command("dumpcap")
        .args(["-q", "-i", "lo", "-w"])
        .arg(&capture)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !capture.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));

    let mut curl = curl_doh(&lab, "www.doh.test");
    curl.env("SSLKEYLOGFILE", &keys);
    let kdig = |mode: &str, port: &str, qtype: &str| {
        let mut kdig = lab.command("kdig");
        kdig.env("SSLKEYLOGFILE", &keys)
            .args(["@127.0.0.1", "-p", port, mode, "+tls-hostname=doh.test"])
            .arg(format!("+tls-ca={}", lab.ca().display()))
            .args(["www.doh.test", qtype, "+short"]);
        kdig
    };
    let mut python = python_doh_client(&lab, &["nx.doh.test/A", "www.doh.test/A/get"]);
    python.env("SSLKEYLOGFILE", &keys);
    // One TLS 1.2 connection (AES-GCM or ChaCha20, as OpenSSL and unbound agree).
    let mut tls12 = lab.command(SYSTEM_PYTHON);
    tls12
        .arg("-c")
        .arg(TLS12_CLIENT)
        .arg(lab.ca())
        .arg(&keys)
        .arg("https://127.0.0.1:8443/dns-query");
    for (what, cmd) in [
        ("curl", curl),
        ("kdig", kdig("+https", "8443", "AAAA")),
        ("kdig DoT", kdig("+tls", "8853", "A")),
        ("python", python),
        ("python TLS 1.2", tls12),
    ] {
        let before = secret_lines(&keys);
        let (_, status, out, _) = run_client(cmd).unwrap();
        // curl's page fetch fails (nothing serves it); its DoH lookups are what count.
        assert!(status.success() || what == "curl", "{what}: {out}");
        assert!(secret_lines(&keys) > before, "{what} logged no secret");
    }
    let before = secret_lines(&keys);
    run_firefox(&lab, &profile, &keys);
    assert!(
        secret_lines(&keys) > before,
        "Firefox (NSS) logged no secret"
    );
    std::thread::sleep(Duration::from_millis(500));
    signal(&dumpcap, libc::SIGINT);
    assert!(dumpcap.wait().unwrap().success());

    let want = tshark(&capture, Some(&keys));
    assert!(want.len() >= 9, "tshark found too little: {want:?}");
    let has = |qname: &str, qtype: u16, answer: &str| {
        want.iter()
            .any(|w| w.0 == qname && w.1 == qtype && w.3 == 0 && w.4 == [answer])
    };
    // kdig's DoT answer, and Firefox's A and AAAA of the page's host.
    assert!(has("www.doh.test", 1, "192.0.2.10"), "{want:?}");
    assert!(has("loop.doh.test", 1, "127.0.0.1"), "{want:?}");
    assert!(has("loop.doh.test", 28, "::1"), "{want:?}");
    assert!(
        tshark(&capture, None).is_empty(),
        "without keys nothing is readable: the traffic really is TLS"
    );
    let (got, records) = ours(&capture, Some(&keys));
    assert_eq!(got, want, "doh-trace read --keylog vs tshark");
    let mut dot = 0;
    for r in records.iter().filter(|r| r["rcode"].is_string()) {
        assert_eq!(r["tls_library"], "keylog", "{r}");
        assert_eq!(r["origin"], "capture", "{r}");
        match r["transport"].as_str() {
            Some("doh") => assert_eq!(r["server"]["port"], 8443, "{r}"),
            Some("dot") => {
                assert_eq!(r["server"]["port"], 8853, "{r}");
                assert_eq!(r["qname"], "www.doh.test", "{r}");
                assert_eq!(r["qtype"], "A", "{r}");
                dot += 1;
            }
            _ => panic!("neither DoH nor DoT: {r}"),
        }
    }
    assert_eq!(dot, 1, "kdig's one DoT lookup: {records:#?}");
    // Without keys: no lookup, opaque records at most (the lab's resolver is not listed).
    let (none, _) = ours(&capture, None);
    assert!(none.is_empty(), "{none:?}");

    // The keys embedded in the file.
    let embedded = lab.dir.join("doh-with-keys.pcapng");
    let ok = Command::new("editcap")
        .arg("--inject-secrets")
        .arg(format!("tls,{}", keys.display()))
        .arg(&capture)
        .arg(&embedded)
        .status()
        .unwrap()
        .success();
    assert!(ok, "editcap --inject-secrets");
    assert_eq!(
        tshark(&embedded, None),
        want,
        "tshark reads the embedded keys"
    );
    let (got, _) = ours(&embedded, None);
    assert_eq!(got, want, "doh-trace read with the embedded keys vs tshark");
}
