//! Privileged end to end: finding which socket a lookup used never changes how the traced
//! program's traffic is classified. A socket descriptor another process receives (as
//! `pidfd_getfd` gives one) is re-tagged with the receiver's cgroup-v1 `net_cls` class: had the
//! tracer taken a duplicate of the client's socket to ask its addresses, the client's later
//! packets would no longer carry its class (tc filters and `iptables -m cgroup` match on it).
//!
//! A real python DoH client (OpenSSL, httpx) runs in a `net_cls` cgroup with class 0x00100001,
//! on one HTTP/2 connection kept open across a pause; the lab namespace's iptables counts its
//! packets to unbound by class. The tracer reports every lookup with both ends of the
//! connection, and afterwards every packet the client sent still carried its class.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use doh_trace_tests::{
    count, keepalive_client, require_e2e, skip_or_fail, start_until_first_done, Lab, Tracer,
    SYSTEM_PYTHON,
};

const WAIT: Duration = Duration::from_secs(20);
const CLASS: &str = "0x00100001";

/// A `net_cls` hierarchy mounted for the test, with one cgroup of class [`CLASS`]; unmounted
/// (its cgroup removed) when dropped.
struct NetCls {
    mount: PathBuf,
    cgroup: PathBuf,
}

impl NetCls {
    fn mount() -> NetCls {
        let mount = std::env::temp_dir().join(format!("doh-trace-net-cls-{}", std::process::id()));
        std::fs::create_dir_all(&mount).unwrap();
        // Alone, or (where a hierarchy binds the two already, as systemd's v1 layout does)
        // with net_prio: a controller can only be mounted with the hierarchy it is in.
        let ok = ["net_cls", "net_cls,net_prio"].iter().any(|options| {
            Command::new("mount")
                .args(["-t", "cgroup", "-o", options, "none"])
                .arg(&mount)
                .status()
                .unwrap()
                .success()
        });
        assert!(ok, "mounting a net_cls hierarchy at {}", mount.display());
        let cgroup = mount.join("doh-trace-test");
        let _ = std::fs::create_dir(&cgroup);
        std::fs::write(cgroup.join("net_cls.classid"), CLASS).unwrap();
        NetCls { mount, cgroup }
    }
}

impl Drop for NetCls {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.cgroup).is_ok() || !self.cgroup.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("umount").arg(&self.mount).status();
        let _ = std::fs::remove_dir(&self.mount);
    }
}

/// Packets counted by each rule of the lab's OUTPUT chain, in order.
fn output_packets(lab: &Lab) -> Vec<u64> {
    let out = lab
        .command("iptables")
        .args(["-L", "OUTPUT", "-v", "-x", "-n"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    text.lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

fn iptables(lab: &Lab, args: &[&str]) {
    let ok = lab
        .command("iptables")
        .args(args)
        .status()
        .unwrap()
        .success();
    assert!(ok, "iptables {args:?}");
}

#[test]
fn asking_a_sockets_ends_leaves_its_net_cls_class_alone() {
    require_e2e!("python3", "iptables");
    let controllers = std::fs::read_to_string("/proc/cgroups").unwrap_or_default();
    if !controllers.lines().any(|l| l.starts_with("net_cls\t")) {
        return skip_or_fail("this kernel has no net_cls cgroup controller");
    }
    let lab = Lab::with_unbound().unwrap();
    let net_cls = NetCls::mount();
    // The client's packets to unbound: first those of its class, then any others.
    iptables(
        &lab,
        &[
            "-A", "OUTPUT", "-p", "tcp", "--dport", "8443", "-m", "cgroup", "--cgroup", CLASS,
            "-j", "ACCEPT",
        ],
    );
    iptables(
        &lab,
        &[
            "-A", "OUTPUT", "-p", "tcp", "--dport", "8443", "-j", "ACCEPT",
        ],
    );

    let mut tracer = Tracer::start(&[]).unwrap();
    let go = std::env::temp_dir().join(format!("doh-trace-net-cls-go-{}", std::process::id()));
    let _ = std::fs::remove_file(&go);
    // The client joins the cgroup, then execs python (same pid).
    let python = keepalive_client(
        &lab,
        &go,
        &["www.doh.test/A", "www.doh.test/AAAA", "nx.doh.test/A"],
    );
    let mut client = lab.command("sh");
    client
        .args(["-c", r#"echo $$ > "$0/cgroup.procs" && exec "$@""#])
        .arg(&net_cls.cgroup)
        .arg(SYSTEM_PYTHON)
        .args(
            python
                .get_args()
                .skip_while(|a| *a != Path::new(SYSTEM_PYTHON).as_os_str())
                .skip(1),
        );
    let mut child = start_until_first_done(client);
    let pid = child.id();
    // The first lookup is reported once its connection's ends were found.
    tracer.wait_for(WAIT, |seen| count(seen, pid) >= 1);
    std::fs::write(&go, b"").unwrap();
    assert!(child.wait().unwrap().success());
    tracer.wait_for(WAIT, |seen| count(seen, pid) >= 3);
    tracer.stop_cleanly(libc::SIGINT);
    let _ = std::fs::remove_file(&go);

    let mine: Vec<_> = tracer.seen.iter().filter(|l| l["pid"] == pid).collect();
    assert_eq!(mine.len(), 3, "{mine:#?}");
    for l in &mine {
        assert_eq!(l["server"]["ip"], "127.0.0.1", "{l}");
        assert_eq!(l["server"]["port"], 8443, "{l}");
        assert_eq!(l["client"]["ip"], "127.0.0.1", "{l}");
        assert!(l["client"]["port"].as_u64().is_some_and(|p| p > 0), "{l}");
    }
    let packets = output_packets(&lab);
    assert_eq!(packets.len(), 2, "{packets:?}");
    assert!(
        packets[0] > 10,
        "the client's packets in its class: {packets:?}"
    );
    assert_eq!(packets[1], 0, "packets that lost their class: {packets:?}");
}
