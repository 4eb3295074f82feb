//! Privileged end to end: the systemd unit's sandbox (packaging/systemd/doh-trace.service),
//! applied without systemd. Its own lines are read and applied as systemd would: the
//! capability bounding set (`setpriv --bounding-set`), NoNewPrivileges, LimitNOFILE (`prlimit`)
//! and the syscall filter (a seccomp allow-list of the same syscalls, the groups expanded by
//! `systemd-analyze syscall-filter`, EPERM for the rest; tests/lab/seccomp_exec.py). Under
//! them the tracer must start, report curl's and python's DoH lookups with both ends of their
//! connections, and stop cleanly with every probe detached — so the unit's set is shown to
//! be enough, not only believed to be.

use std::{process::Command, time::Duration};

use doh_trace_tests::{
    count, curl_doh, python_doh_client, require_e2e, run_client, tracer_binary, Lab, Tracer,
    SYSTEM_PYTHON,
};

const WAIT: Duration = Duration::from_secs(20);
const UNIT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../packaging/systemd/doh-trace.service"
);

/// The value of the unit's `KEY=` line (the only one of that key).
fn setting(unit: &str, key: &str) -> String {
    let values: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect();
    assert_eq!(values.len(), 1, "one {key}= line in the unit: {values:?}");
    values[0].trim().to_owned()
}

#[test]
fn the_systemd_units_capabilities_syscall_filter_and_limits_are_enough() {
    require_e2e!("curl", "python3", "setpriv", "prlimit", "systemd-analyze");
    let unit = std::fs::read_to_string(UNIT).unwrap();
    assert_eq!(setting(&unit, "NoNewPrivileges"), "yes");
    assert_eq!(setting(&unit, "SystemCallErrorNumber"), "EPERM");
    let caps: Vec<String> = setting(&unit, "CapabilityBoundingSet")
        .split_whitespace()
        .map(|c| {
            let name = c.strip_prefix("CAP_").expect("CAP_ names");
            format!("+{}", name.to_ascii_lowercase())
        })
        .collect();
    assert!(!caps.iter().any(|c| c == "+sys_resource"), "{caps:?}");
    let filter = setting(&unit, "SystemCallFilter");
    let nofile: u64 = setting(&unit, "LimitNOFILE").parse().unwrap();
    // Raising the hard limit needs CAP_SYS_RESOURCE, which systemd has and a test host may not.
    let mut hard = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct it is given.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut hard) },
        0
    );
    if hard.rlim_max < nofile {
        eprintln!(
            "LimitNOFILE={nofile} is above this host's hard limit {}: using that",
            hard.rlim_max
        );
    }
    let nofile = nofile.min(hard.rlim_max);
    let lab = Lab::with_unbound().unwrap();

    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile={nofile}:{nofile}"))
        .args(["--", "setpriv", "--no-new-privs", "--inh-caps=-all"])
        .arg(format!("--bounding-set=-all,{}", caps.join(",")))
        .args(["--", SYSTEM_PYTHON])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/lab/seccomp_exec.py"))
        .arg(&filter)
        .arg("--")
        .arg(tracer_binary())
        .arg("--json");
    let mut tracer = Tracer::spawn(cmd).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", tracer.pid())).unwrap();
    eprintln!(
        "{}",
        status
            .lines()
            .filter(|l| l.starts_with("Cap")
                || l.starts_with("NoNewPrivs")
                || l.starts_with("Seccomp:"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        status.lines().any(|l| l == "Seccomp:\t2"),
        "filtered: {status}"
    );
    assert!(status.lines().any(|l| l == "NoNewPrivs:\t1"), "{status}");

    let (curl, _, _, _) = run_client(curl_doh(&lab, "www.doh.test")).unwrap();
    let (python, status, _, _) = run_client(python_doh_client(
        &lab,
        &["www.doh.test/A", "nx.doh.test/AAAA/get"],
    ))
    .unwrap();
    assert!(status.success());
    tracer.wait_for(WAIT, |seen| {
        count(seen, curl) >= 2 && count(seen, python) >= 2
    });
    tracer.wait_for(Duration::from_millis(500), |_| false);
    let stderr = tracer.stop_cleanly(libc::SIGINT);

    for pid in [curl, python] {
        let mine: Vec<_> = tracer.seen.iter().filter(|l| l["pid"] == pid).collect();
        assert_eq!(mine.len(), 2, "{pid}: {mine:#?}");
        for l in mine {
            assert_eq!(l["server"]["port"], 8443, "{l}");
            assert!(l["client"]["port"].as_u64().is_some_and(|p| p > 0), "{l}");
            assert!(l["exe"].is_string(), "{l}");
        }
    }
    // Nothing the tracer tried was refused by the sandbox.
    let refused: Vec<&String> = stderr
        .iter()
        .filter(|l| l.contains("Operation not permitted") || l.contains("os error 1)"))
        .collect();
    assert!(refused.is_empty(), "{refused:#?}");
}
