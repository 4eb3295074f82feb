//! Privileged end to end, beyond DoH: classic DNS over UDP and TCP (dig, dnspython), DNS over
//! TLS (dnspython through OpenSSL), lookups relayed by local resolvers (dnsdist forwarding
//! upstream over DoH and over DoT), and an encrypted DNS connection whose TLS library is not
//! hooked (kdig, with GnuTLS hooks turned off), reported opaque — all in one schema, each with the client's PID.
//!
//! Run as root, one test at a time (each starts its own tracer, which sees every process).

use std::time::Duration;

use doh_trace_tests::{require_e2e, run_client, Lab, Tracer, SYSTEM_PYTHON};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

fn of(seen: &[Value], pid: u32) -> Vec<&Value> {
    seen.iter().filter(|v| v["pid"] == pid).collect()
}

/// The one lookup of `pid` for `qname`/`qtype`, checked to be complete and `ok`.
fn one<'a>(seen: &'a [Value], pid: u32, qname: &str, qtype: &str) -> &'a Value {
    let found: Vec<_> = seen
        .iter()
        .filter(|v| v["pid"] == pid && v["qname"] == qname && v["qtype"] == qtype)
        .collect();
    assert_eq!(found.len(), 1, "{qname} {qtype} of {pid} once: {seen:#?}");
    let l = found[0];
    assert_eq!(l["status"], "ok", "{l}");
    assert_eq!(l["rcode"], "NOERROR", "{l}");
    assert!(l["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{l}");
    assert!(l["tid"].as_u64().is_some_and(|t| t > 0), "{l}");
    if l["transport"] != "doh" {
        assert!(l["http_version"].is_null() && l["url"].is_null(), "{l}");
    }
    l
}

fn dig(lab: &Lab, args: &[&str]) -> u32 {
    let mut c = lab.command("dig");
    c.args(["+tries=1", "+time=5", "@127.0.0.1"]).args(args);
    let (pid, status, out, _) = run_client(c).unwrap();
    assert!(
        status.success() && !out.trim().is_empty(),
        "dig {args:?}: {out}"
    );
    pid
}

#[test]
fn classic_dns_over_udp_and_tcp_and_dot_are_attributed() {
    require_e2e!("dig");
    let lab = Lab::with_unbound().unwrap();
    lab.wait_listening(8853, WAIT).unwrap();
    // dnspython's UDP client sends from an unconnected socket: its datagrams are matched by
    // port, so the lab's plain-DNS port is added.
    let mut tracer = Tracer::start(&["--dns-port", "5301"]).unwrap();

    // dig (BIND's libuv network manager): connected UDP, then TCP with 2-byte framing.
    let dig_udp = dig(&lab, &["-p", "5301", "www.doh.test", "A", "+short"]);
    let dig_tcp = dig(
        &lab,
        &["-p", "5301", "+tcp", "www.doh.test", "AAAA", "+short"],
    );
    // CPython: sendto/recvfrom on an unconnected UDP socket, then DoT through OpenSSL
    // (SSL_write_ex/SSL_read_ex) with pipelined queries on one connection.
    let script = r#"
import socket, ssl, sys, dns.message, dns.query, dns.rdatatype
ca = sys.argv[1]
q = dns.message.make_query("txt.doh.test", "TXT", id=0x5151)
print(dns.query.udp(q, "127.0.0.1", port=5301, timeout=5).answer)
ctx = ssl.create_default_context(cafile=ca)
with socket.create_connection(("127.0.0.1", 8853)) as raw:
    with ctx.wrap_socket(raw, server_hostname="doh.test") as tls:
        wire = b""
        for i, (name, qtype) in enumerate([("www.doh.test", "A"), ("www.doh.test", "AAAA")]):
            m = dns.message.make_query(name, qtype, id=0x7000 + i).to_wire()
            wire += len(m).to_bytes(2, "big") + m
        tls.sendall(wire)   # both queries in one write: pipelined
        for _ in range(2):
            size = int.from_bytes(tls.recv(2), "big")
            body = b""
            while len(body) < size:
                body += tls.recv(size - len(body))
            print(dns.message.from_wire(body).answer)
"#;
    let mut py = lab.command(SYSTEM_PYTHON);
    py.args(["-c", script]).arg(lab.ca());
    let (py_pid, status, out, _) = run_client(py).unwrap();
    assert!(status.success(), "python: {out}");

    tracer.wait_for(WAIT, |seen| {
        of(seen, dig_udp).len() + of(seen, dig_tcp).len() + of(seen, py_pid).len() >= 5
    });
    tracer.wait_for(Duration::from_millis(500), |_| false);
    tracer.stop_cleanly(libc::SIGINT);
    let seen = &tracer.seen;

    let l = one(seen, dig_udp, "www.doh.test", "A");
    assert_eq!(l["comm"], "dig", "{l}");
    assert_eq!(l["transport"], "dns-udp", "{l}");
    assert_eq!(l["server"]["port"], 5301, "{l}");
    assert_eq!(l["answers"], serde_json::json!(["192.0.2.10"]), "{l}");
    assert_eq!(of(seen, dig_udp).len(), 1, "{seen:#?}");

    let l = one(seen, dig_tcp, "www.doh.test", "AAAA");
    assert_eq!(l["transport"], "dns-tcp", "{l}");
    assert_eq!(l["server"]["port"], 5301, "{l}");
    assert_eq!(l["answers"], serde_json::json!(["2001:db8::10"]), "{l}");
    assert_eq!(of(seen, dig_tcp).len(), 1, "{seen:#?}");

    let l = one(seen, py_pid, "txt.doh.test", "TXT");
    assert_eq!(l["comm"], "python3", "{l}");
    assert_eq!(l["transport"], "dns-udp", "{l}");
    assert_eq!(l["dns_id"], 0x5151, "{l}");
    assert_eq!(l["server"]["ip"], "127.0.0.1", "{l}");
    assert_eq!(l["server"]["port"], 5301, "{l}");
    assert_eq!(
        l["answers"],
        serde_json::json!(["hello-from-unbound"]),
        "{l}"
    );

    for (qtype, id, answer) in [
        ("A", 0x7000, "192.0.2.10"),
        ("AAAA", 0x7001, "2001:db8::10"),
    ] {
        let l = one(seen, py_pid, "www.doh.test", qtype);
        assert_eq!(l["transport"], "dot", "{l}");
        assert_eq!(l["dns_id"], id, "{l}");
        assert_eq!(l["server"]["port"], 8853, "{l}");
        assert_eq!(
            l["server_name"], "doh.test",
            "SNI read from the ClientHello: {l}"
        );
        assert_eq!(l["answers"], serde_json::json!([answer]), "{l}");
    }
    assert_eq!(of(seen, py_pid).len(), 3, "{seen:#?}");
}

#[test]
fn lookups_relayed_through_local_resolvers_name_both_ends() {
    require_e2e!("dig", "dnsdist");
    let lab = Lab::with_relays().unwrap();
    let mut tracer = Tracer::start(&[]).unwrap();

    // dig → dnsdist on :53 → DoH upstream; dig → dnsdist on :5354 → DoT upstream.
    let via_doh = dig(&lab, &["loop.doh.test", "A", "+short"]);
    let via_dot = dig(&lab, &["-p", "5354", "www.doh.test", "AAAA", "+short"]);
    let relayed = |seen: &[Value], pid: u32| {
        seen.iter().any(|v| {
            v["relayed_for"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["pid"] == pid))
        })
    };
    tracer.wait_for(WAIT, |seen| {
        relayed(seen, via_doh)
            && relayed(seen, via_dot)
            && !of(seen, via_doh).is_empty()
            && !of(seen, via_dot).is_empty()
    });
    tracer.stop_cleanly(libc::SIGINT);
    let seen = &tracer.seen;

    for (client, qname, qtype, port, upstream, upstream_port) in [
        (via_doh, "loop.doh.test", "A", 53, "doh", 8443),
        (via_dot, "www.doh.test", "AAAA", 5354, "dot", 8853),
    ] {
        // The client's lookup names the upstream transport and server.
        let l = one(seen, client, qname, qtype);
        assert_eq!(l["transport"], "dns-udp", "{l}");
        assert_eq!(l["server"]["port"], port, "{l}");
        let up = l["upstream"]
            .as_array()
            .unwrap_or_else(|| panic!("no upstream: {l}"));
        assert_eq!(up.len(), 1, "{l}");
        assert_eq!(up[0]["comm"], "dnsdist", "{l}");
        assert_eq!(up[0]["transport"], upstream, "{l}");
        assert_eq!(up[0]["server"]["port"], upstream_port, "{l}");
        assert_eq!(l["relay_ambiguous"], false, "{l}");
        // The resolver's upstream lookup names the client.
        let relay_pid = up[0]["pid"].as_u64().unwrap() as u32;
        let u = one(seen, relay_pid, qname, qtype);
        assert_eq!(u["transport"], upstream, "{u}");
        let clients = u["relayed_for"].as_array().unwrap_or_else(|| panic!("{u}"));
        assert_eq!(clients.len(), 1, "{u}");
        assert_eq!(clients[0]["pid"], client, "{u}");
        assert_eq!(clients[0]["comm"], "dig", "{u}");
        assert_eq!(clients[0]["server"]["port"], port, "{u}");
    }
}

#[test]
fn an_unhooked_tls_client_of_a_listed_resolver_is_reported_opaque() {
    require_e2e!("kdig");
    let lab = Lab::with_unbound().unwrap();
    // GnuTLS left unhooked on purpose: kdig then stands for any client whose TLS stack is out
    // of reach (a stripped static library, QUIC): only its socket is seen.
    let mut tracer = Tracer::start(&["--stacks", "openssl,nss,go"]).unwrap();

    // The lab's certificate also names dns.google, standing in for the public resolver.
    let mut kdig = lab.command("kdig");
    kdig.args([
        "@127.0.0.1",
        "-p",
        "8443",
        "+https",
        "+tls-hostname=dns.google",
    ])
    .arg(format!("+tls-ca={}", lab.ca().display()))
    .args(["www.doh.test", "A", "+short"]);
    let (pid, status, out, _) = run_client(kdig).unwrap();
    assert!(
        status.success() && out.contains("192.0.2.10"),
        "kdig: {out}"
    );

    tracer.wait_for(WAIT, |seen| !of(seen, pid).is_empty());
    tracer.wait_for(Duration::from_millis(500), |_| false);
    tracer.stop_cleanly(libc::SIGINT);

    let records = of(&tracer.seen, pid);
    assert_eq!(
        records.len(),
        1,
        "one record, no invented lookups: {records:#?}"
    );
    let l = records[0];
    assert_eq!(l["comm"], "kdig", "{l}");
    assert_eq!(l["transport"], "doh-opaque", "{l}");
    assert_eq!(l["status"], "opaque", "{l}");
    assert_eq!(l["server"]["ip"], "127.0.0.1", "{l}");
    assert_eq!(l["server"]["port"], 8443, "{l}");
    assert_eq!(l["server_name"], "dns.google", "{l}");
    assert_eq!(l["resolver"], "Google Public DNS", "{l}");
    assert!(
        l["alpn"]
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p == "h2")),
        "{l}"
    );
    assert!(
        l["qname"].is_null() && l["qtype"].is_null() && l["rcode"].is_null(),
        "{l}"
    );
    // A ClientHello alone is a few hundred bytes; the whole exchange is more both ways.
    assert!(l["bytes_sent"].as_u64().is_some_and(|n| n > 300), "{l}");
    assert!(l["bytes_received"].as_u64().is_some_and(|n| n > 300), "{l}");
    assert!(l["duration_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{l}");
}

/// A peek (`MSG_PEEK`) leaves its bytes queued to be read again: the tracer must not take them
/// twice. Chromium peeks one byte of an idle socket to see whether it is still open; resolvers
/// and clients peek a datagram or a length prefix. dnspython's sockets with peeks before
/// every read: DNS over TCP (the length prefix, and one byte) and an unconnected UDP socket.
/// Without the rule, the TCP stream's bytes come twice (its second answer is lost, or wrong)
/// and the UDP answer counts once more, as an answer without a query.
#[test]
fn peeked_bytes_are_taken_once() {
    require_e2e!();
    let lab = Lab::with_unbound().unwrap();
    let mut tracer = Tracer::start(&["--dns-port", "5301"]).unwrap();
    let script = r#"
import socket, dns.message
def query(name, qtype, id):
    return dns.message.make_query(name, qtype, id=id).to_wire()
with socket.create_connection(("127.0.0.1", 5301)) as s:
    for i, qtype in enumerate(["A", "AAAA"]):
        m = query("www.doh.test", qtype, 0x6100 + i)
        s.sendall(len(m).to_bytes(2, "big") + m)
        while len(s.recv(2, socket.MSG_PEEK)) < 2:
            pass
        s.recv(1, socket.MSG_PEEK)
        size = int.from_bytes(s.recv(2), "big")
        s.recv(1, socket.MSG_PEEK)
        body = b""
        while len(body) < size:
            body += s.recv(size - len(body))
        print(dns.message.from_wire(body).answer)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(query("txt.doh.test", "TXT", 0x6200), ("127.0.0.1", 5301))
u.settimeout(5)
u.recvfrom(4096, socket.MSG_PEEK)
print(dns.message.from_wire(u.recvfrom(4096)[0]).answer)
"#;
    let mut py = lab.command(SYSTEM_PYTHON);
    py.args(["-c", script]);
    let (pid, status, out, _) = run_client(py).unwrap();
    assert!(
        status.success() && out.contains("hello-from-unbound"),
        "python: {out}"
    );
    tracer.wait_for(WAIT, |seen| of(seen, pid).len() >= 3);
    tracer.wait_for(Duration::from_millis(500), |_| false);
    let stderr = tracer.stop_cleanly(libc::SIGINT);
    let seen = &tracer.seen;

    for (qtype, id, answer) in [
        ("A", 0x6100, "192.0.2.10"),
        ("AAAA", 0x6101, "2001:db8::10"),
    ] {
        let l = one(seen, pid, "www.doh.test", qtype);
        assert_eq!(l["transport"], "dns-tcp", "{l}");
        assert_eq!(l["dns_id"], id, "{l}");
        assert_eq!(l["server"]["port"], 5301, "{l}");
        assert_eq!(l["answers"], serde_json::json!([answer]), "{l}");
    }
    let l = one(seen, pid, "txt.doh.test", "TXT");
    assert_eq!(l["transport"], "dns-udp", "{l}");
    assert_eq!(l["dns_id"], 0x6200, "{l}");
    assert_eq!(of(seen, pid).len(), 3, "{seen:#?}");
    for problem in ["DNS answers without a query", "unparseable DNS messages"] {
        assert!(
            !stderr.iter().any(|s| s.contains(problem)),
            "{problem}: {stderr:#?}"
        );
    }
}
