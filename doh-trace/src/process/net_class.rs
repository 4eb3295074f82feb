//! Whether a duplicate of another process's socket would change how the kernel classifies
//! that socket's traffic.
//!
//! A socket descriptor received from another process (`pidfd_getfd`, like `SCM_RIGHTS`) is
//! re-tagged by the kernel (`__receive_sock`) with the receiver's cgroup-v1 `net_cls` class id
//! and `net_prio` index: after the tracer took a duplicate, the traced program's packets on
//! that socket would carry the tracer's class (tc filters, `iptables -m cgroup`) and priority
//! map. That is a no-op exactly when both processes are in the same `net_cls` and `net_prio`
//! cgroups — always the case on cgroup-v2-only hosts, where those controllers are in no
//! hierarchy. Otherwise the socket's ends are found without touching it (its inode in the
//! namespace's TCP tables).
//!
//! The rule compares cgroups, not the socket's own tags (which no interface shows): a socket
//! created before its process moved to another cgroup, or passed from another process, keeps
//! tags the comparison cannot see. Those are rare; when they occur the duplicate tags the
//! socket as the process's cgroup says, which is where its newer sockets are.

use std::io::Read as _;

/// The cgroup-v1 controllers whose tags a received socket takes.
const TAGGING: [&str; 2] = ["net_cls", "net_prio"];

/// Longest `/proc/PID/cgroup` read (a few hundred bytes in practice).
const MAX_CGROUP_FILE: u64 = 64 * 1024;

/// A process's cgroup paths under the tagging controllers (`None`: in no hierarchy).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetClass {
    paths: [Option<String>; 2],
}

impl NetClass {
    /// From the text of `/proc/PID/cgroup` (`ID:CONTROLLERS:PATH` lines).
    pub fn parse(text: &str) -> NetClass {
        let mut class = NetClass::default();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_id), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            for controller in controllers.split(',') {
                if let Some(i) = TAGGING.iter().position(|t| *t == controller) {
                    class.paths[i] = Some(path.to_owned());
                }
            }
        }
        class
    }

    /// Of process `pid` (`self` for the tracer), from its `/proc` entry; `None` if it cannot
    /// be read (the process is gone).
    pub fn of(proc_root: &std::path::Path, pid: &str) -> Option<NetClass> {
        let file = std::fs::File::open(proc_root.join(pid).join("cgroup")).ok()?;
        let mut text = String::new();
        file.take(MAX_CGROUP_FILE).read_to_string(&mut text).ok()?;
        Some(NetClass::parse(&text))
    }

    /// Whether a socket of a process in `other` keeps its tags when a process in `self`
    /// receives it.
    pub fn same_tags(&self, other: &NetClass) -> bool {
        self == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real `/proc/PID/cgroup` texts: a cgroup-v1 host with Docker (net_cls and net_prio
    /// mounted together), a host process there, and a cgroup-v2-only host.
    const V1_CONTAINER: &str = "12:pids:/docker/0f3c\n\
        11:net_cls,net_prio:/docker/0f3c\n\
        10:memory:/docker/0f3c\n\
        1:name=systemd:/docker/0f3c\n\
        0::/system.slice/docker-0f3c.scope\n";
    const V1_HOST: &str = "12:pids:/user.slice/user-0.slice/session-3.scope\n\
        11:net_cls,net_prio:/\n\
        10:memory:/user.slice/user-0.slice/session-3.scope\n\
        1:name=systemd:/user.slice/user-0.slice/session-3.scope\n\
        0::/user.slice/user-0.slice/session-3.scope\n";
    const V1_OTHER_SESSION: &str = "12:pids:/user.slice/user-1000.slice/session-9.scope\n\
        11:net_cls,net_prio:/\n\
        1:name=systemd:/user.slice/user-1000.slice/session-9.scope\n";
    const V2_ONLY: &str = "0::/user.slice/user-1000.slice/session-2.scope\n";
    const V2_OTHER: &str = "0::/system.slice/doh-trace.service\n";

    #[test]
    fn the_same_net_cls_and_net_prio_cgroups_keep_the_tags() {
        let host = NetClass::parse(V1_HOST);
        assert!(host.same_tags(&NetClass::parse(V1_OTHER_SESSION)));
        assert!(!host.same_tags(&NetClass::parse(V1_CONTAINER)));
        // Without those controllers in any hierarchy, nothing can change.
        assert!(NetClass::parse(V2_ONLY).same_tags(&NetClass::parse(V2_OTHER)));
        assert_eq!(NetClass::parse(V2_ONLY), NetClass::default());
    }

    #[test]
    fn controllers_in_separate_hierarchies_are_each_compared() {
        let a = NetClass::parse("4:net_cls:/a\n5:net_prio:/\n");
        let b = NetClass::parse("4:net_cls:/a\n5:net_prio:/b\n");
        assert!(!a.same_tags(&b));
        assert!(a.same_tags(&NetClass::parse("5:net_prio:/\n4:net_cls:/a\n")));
        // A path may hold colons; malformed lines are skipped.
        let odd = NetClass::parse("garbage\n4:net_cls:/x:y\n");
        assert_eq!(odd.paths[0].as_deref(), Some("/x:y"));
    }

    #[test]
    fn our_own_class_is_read_from_proc() {
        let me = NetClass::of(std::path::Path::new("/proc"), "self").expect("/proc/self");
        let mine = std::process::id().to_string();
        assert_eq!(NetClass::of(std::path::Path::new("/proc"), &mine), Some(me));
        assert_eq!(
            NetClass::of(std::path::Path::new("/proc"), "4294967295"),
            None
        );
    }
}
