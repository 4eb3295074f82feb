//! Privileged end to end, differential against Wireshark: real DoH clients with
//! `SSLKEYLOGFILE` (curl on OpenSSL, kdig on GnuTLS, python httpx on OpenSSL, POST and GET)
//! captured by dumpcap on the lab namespace's loopback; `tshark -o tls.keylog_file:KEYS` and
//! `doh-trace read --keylog KEYS` must find the same DNS responses (name, type, id, rcode, A and
//! AAAA answers) — and the same again with the keys embedded by `editcap --inject-secrets`.
//!
//! Run as root (a network namespace); tshark, dumpcap and editcap are Debian's.

use std::{
    net::IpAddr,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use doh_trace_tests::{curl_doh, python_doh_client, require_e2e, run_client, signal, Lab};
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

/// tshark's DNS responses in `capture`, decrypted with `keys` if given.
fn tshark(capture: &Path, keys: Option<&Path>) -> Answers {
    let mut c = Command::new("tshark");
    c.arg("-r").arg(capture);
    if let Some(k) = keys {
        c.arg("-o").arg(format!("tls.keylog_file:{}", k.display()));
    }
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

#[test]
fn decrypted_doh_captures_match_tshark() {
    require_e2e!("dumpcap", "tshark", "editcap", "kdig");
    let lab = Lab::with_unbound().unwrap();
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
    let mut kdig = lab.command("kdig");
    kdig.env("SSLKEYLOGFILE", &keys)
        .args(["@127.0.0.1", "-p", "8443", "+https"])
        .arg(format!("+tls-ca={}", lab.ca().display()))
        .args(["www.doh.test", "AAAA", "+short"]);
    let mut python = python_doh_client(&lab, &["nx.doh.test/A", "www.doh.test/A/get"]);
    python.env("SSLKEYLOGFILE", &keys);
    // One TLS 1.2 connection (AES-GCM or ChaCha20, as OpenSSL and unbound agree).
    let mut tls12 = lab.command(doh_trace_tests::SYSTEM_PYTHON);
    tls12
        .arg("-c")
        .arg(TLS12_CLIENT)
        .arg(lab.ca())
        .arg(&keys)
        .arg("https://127.0.0.1:8443/dns-query");
    for (what, cmd) in [
        ("curl", curl),
        ("kdig", kdig),
        ("python", python),
        ("python TLS 1.2", tls12),
    ] {
        let (_, status, out, _) = run_client(cmd).unwrap();
        // curl's page fetch fails (nothing serves it); its DoH lookups are what count.
        assert!(status.success() || what == "curl", "{what}: {out}");
    }
    std::thread::sleep(Duration::from_millis(500));
    signal(&dumpcap, libc::SIGINT);
    assert!(dumpcap.wait().unwrap().success());

    let want = tshark(&capture, Some(&keys));
    assert!(want.len() >= 6, "tshark found too little: {want:?}");
    assert!(
        tshark(&capture, None).is_empty(),
        "without keys nothing is readable: the traffic really is TLS"
    );
    let (got, records) = ours(&capture, Some(&keys));
    assert_eq!(got, want, "doh-trace read --keylog vs tshark");
    for r in records.iter().filter(|r| r["rcode"].is_string()) {
        assert_eq!(r["tls_library"], "keylog", "{r}");
        assert_eq!(r["transport"], "doh", "{r}");
        assert_eq!(r["origin"], "capture", "{r}");
        assert_eq!(r["server"]["port"], 8443, "{r}");
    }
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
