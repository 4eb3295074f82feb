//! The /proc and /etc parsers on arbitrary bytes — files other users write or shape: a
//! process's maps (its mapped paths), net/tcp and tcp6, cgroup (a delegated subtree's names),
//! stat (the process name inside it), cmdline, comm and passwd; cgroup also for its net_cls
//! and net_prio paths. Every parser sees every input; what comes out stays within the bounds
//! each one documents.
#![no_main]
use doh_trace::{
    hooks::procs::MapsLine,
    process::{
        context::{parse_cgroup, parse_cmdline, parse_passwd, parse_ppid, MAX_ARGS},
        find_in_tcp_table,
        net_class::NetClass,
    },
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        if let Some(m) = MapsLine::parse(line) {
            assert!(line.contains(m.range) && line.contains(m.path));
        }
    }
    // The inode of the first line that has one, and one that is nowhere.
    let inode = text
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(9))
        .and_then(|i| i.parse().ok())
        .unwrap_or(0);
    let _ = find_in_tcp_table(&text, inode);
    let _ = find_in_tcp_table(&text, u64::MAX);
    let info = parse_cgroup(&text);
    if let Some(id) = &info.container_id {
        assert!((12..=64).contains(&id.len()), "{id}");
        assert!(info
            .path
            .as_deref()
            .is_some_and(|p| p.contains(id.as_str())));
    }
    if let Some(uid) = &info.pod_uid {
        assert!((32..=36).contains(&uid.len()), "{uid}");
    }
    // The same cgroups keep a socket's tags; the text's and no hierarchy's differ only if
    // the text puts a process in net_cls or net_prio.
    let class = NetClass::parse(&text);
    assert!(class.same_tags(&NetClass::parse(&text)));
    if !text.contains("net_cls") && !text.contains("net_prio") {
        assert!(class.same_tags(&NetClass::default()));
    }
    let _ = parse_ppid(&text);
    let args = parse_cmdline(data);
    assert!(args.len() <= MAX_ARGS + 1);
    let users = parse_passwd(data);
    assert!(users
        .values()
        .all(|name| !name.is_empty() && name.len() <= 256));
});
