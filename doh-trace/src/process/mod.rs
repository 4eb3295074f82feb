//! What the tracer learns about processes and sockets from /proc (names, socket addresses).
//!
//! Behind a trait so replays and tests run without a live /proc.

pub mod context;
mod memory;
pub mod net_class;
mod pidfd;

use context::{read_context, ProcessContext, UserNames};
use net_class::NetClass;

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::PathBuf,
    sync::Arc,
};

/// Both ends of a TCP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketEnds {
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// Source of process and socket facts.
pub trait ProcessInfo {
    /// The thread-group leader's name (`/proc/PID/comm`).
    fn leader_comm(&mut self, pid: u32) -> Option<Arc<str>>;
    /// The addresses of the TCP socket behind `fd` in process `pid`.
    fn socket_ends(&mut self, pid: u32, fd: i32) -> Option<SocketEnds>;
    /// The process is gone (or exec'd); forget what was cached about it. Returns whether
    /// anything was.
    fn forget(&mut self, pid: u32) -> bool;
    /// Executable, command line, user, parent and container of `pid` (real uid `uid`).
    fn context(&mut self, _pid: u32, _uid: u32) -> Arc<ProcessContext> {
        Arc::default()
    }
    /// Context learnt elsewhere (a recording); sources that read /proc ignore it.
    fn remember_context(&mut self, _pid: u32, _context: ProcessContext) {}
    /// A name learnt elsewhere (a recording); sources that read /proc ignore it.
    fn remember_name(&mut self, _pid: u32, _name: String) {}
    /// The socket behind `fd` is gone (the fd may be reused for another socket).
    fn forget_socket(&mut self, _pid: u32, _fd: i32) {}
    /// A socket's addresses learnt elsewhere (a recording); /proc sources ignore it.
    fn remember_socket(&mut self, _pid: u32, _fd: i32, _ends: SocketEnds) {}
    /// Copies `buf.len()` bytes of process `pid`'s memory at `addr` into `buf`, as far as they
    /// are readable: how many were. Sources without live processes read nothing.
    fn read_memory(&mut self, _pid: u32, _addr: u64, _buf: &mut [u8]) -> usize {
        0
    }
    /// The addresses of a packet capture's flow (`ConnId::Flow`), as its packets gave them.
    fn flow_ends(&mut self, _flow: u64) -> Option<SocketEnds> {
        None
    }
    /// The capture's flow is gone.
    fn forget_flow(&mut self, _flow: u64) {}
    /// A capture's flow and its ends, as its packets gave them; other sources ignore it.
    fn remember_flow(&mut self, _flow: u64, _ends: SocketEnds) {}
}

/// No /proc at all: replays and unit tests. Names fall back to the kernel's thread names.
#[derive(Debug, Default)]
pub struct NoProcessInfo;

impl ProcessInfo for NoProcessInfo {
    fn leader_comm(&mut self, _pid: u32) -> Option<Arc<str>> {
        None
    }
    fn socket_ends(&mut self, _pid: u32, _fd: i32) -> Option<SocketEnds> {
        None
    }
    fn forget(&mut self, _pid: u32) -> bool {
        false
    }
}

/// Reads the live /proc (or another procfs root), caching process names.
#[derive(Debug)]
pub struct LiveProcessInfo {
    root: PathBuf,
    /// `root` is this host's /proc (processes' memory can be read, their sockets asked).
    own_procfs: bool,
    /// With `own_procfs`, the tracer's own `net_cls`/`net_prio` cgroups: a socket's ends may
    /// be asked of a duplicate of it where that keeps its tags (see [`net_class`]).
    own_class: Option<NetClass>,
    comms: HashMap<u32, Arc<str>>,
    contexts: HashMap<u32, Arc<ProcessContext>>,
    /// Per process: whether a duplicate of its sockets keeps their cgroup-v1 tags.
    keeps_tags: HashMap<u32, bool>,
    users: UserNames,
}

/// Upper bound of cached process names (evicted wholesale beyond it).
const MAX_CACHED: usize = 65536;

impl LiveProcessInfo {
    /// Uses `/proc`.
    pub fn new() -> Self {
        LiveProcessInfo {
            own_procfs: true,
            // Unreadable: no duplicate is ever taken.
            own_class: NetClass::of(std::path::Path::new("/proc"), "self"),
            ..Self::with_root("/proc")
        }
    }

    /// Uses another procfs mount.
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        LiveProcessInfo {
            root: root.into(),
            own_procfs: false,
            own_class: None,
            comms: HashMap::new(),
            contexts: HashMap::new(),
            keeps_tags: HashMap::new(),
            users: UserNames::system(),
        }
    }
}

impl Default for LiveProcessInfo {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessInfo for LiveProcessInfo {
    fn leader_comm(&mut self, pid: u32) -> Option<Arc<str>> {
        if let Some(c) = self.comms.get(&pid) {
            return Some(c.clone());
        }
        let raw = std::fs::read(self.root.join(pid.to_string()).join("comm")).ok()?;
        let comm: Arc<str> = String::from_utf8_lossy(&raw).trim_end_matches('\n').into();
        if self.comms.len() >= MAX_CACHED {
            self.comms.clear();
        }
        self.comms.insert(pid, comm.clone());
        Some(comm)
    }

    fn socket_ends(&mut self, pid: u32, fd: i32) -> Option<SocketEnds> {
        if self.duplicate_keeps_tags(pid) {
            if let Some(ends) = pidfd::socket_ends(pid, fd) {
                return Some(ends);
            }
        }
        // Refused, another procfs, or a duplicate would re-tag the socket: find the socket's
        // inode in the namespace's TCP tables.
        let pid_dir = self.root.join(pid.to_string());
        let link = std::fs::read_link(pid_dir.join("fd").join(fd.to_string())).ok()?;
        let inode = socket_inode(link.to_str()?)?;
        ["net/tcp", "net/tcp6"].iter().find_map(|table| {
            let text = std::fs::read_to_string(pid_dir.join(table)).ok()?;
            find_in_tcp_table(&text, inode)
        })
    }

    fn read_memory(&mut self, pid: u32, addr: u64, buf: &mut [u8]) -> usize {
        if self.own_procfs {
            memory::read(pid, addr, buf)
        } else {
            0
        }
    }

    fn forget(&mut self, pid: u32) -> bool {
        self.keeps_tags.remove(&pid);
        let comm = self.comms.remove(&pid).is_some();
        self.contexts.remove(&pid).is_some() || comm
    }

    fn context(&mut self, pid: u32, uid: u32) -> Arc<ProcessContext> {
        if let Some(c) = self.contexts.get(&pid) {
            return c.clone();
        }
        let c = Arc::new(read_context(&self.root, pid, uid, &mut self.users));
        if self.contexts.len() >= MAX_CACHED {
            self.contexts.clear();
        }
        self.contexts.insert(pid, c.clone());
        c
    }
}

impl LiveProcessInfo {
    /// Whether the ends of `pid`'s sockets may be asked of a duplicate (this host's /proc, and
    /// the duplicate would not re-tag them: [`net_class`]).
    fn duplicate_keeps_tags(&mut self, pid: u32) -> bool {
        let Some(own) = &self.own_class else {
            return false;
        };
        if let Some(keeps) = self.keeps_tags.get(&pid) {
            return *keeps;
        }
        let keeps = NetClass::of(&self.root, &pid.to_string()).is_some_and(|c| own.same_tags(&c));
        if self.keeps_tags.len() >= MAX_CACHED {
            self.keeps_tags.clear();
        }
        self.keeps_tags.insert(pid, keeps);
        keeps
    }
}

/// `socket:[12345]` → 12345.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Finds the socket with `inode` in the text of /proc/PID/net/tcp or tcp6.
pub fn find_in_tcp_table(text: &str, inode: u64) -> Option<SocketEnds> {
    text.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.get(9)?.parse::<u64>().ok()? != inode {
            return None;
        }
        Some(SocketEnds {
            local: parse_hex_addr(cols.get(1)?)?,
            remote: parse_hex_addr(cols.get(2)?)?,
        })
    })
}

/// Parses `0100007F:20FB` (IPv4) or 32 hex digits + port (IPv6) as /proc/net/tcp prints them:
/// each 32-bit word of the address in host byte order.
fn parse_hex_addr(s: &str) -> Option<SocketAddr> {
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(
            u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16)
                .ok()?
                .to_ne_bytes(),
        )
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            let v6 = Ipv6Addr::from(b);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sockets_in_proc_net_tcp_by_inode() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:E2C4 0100007F:20FB 01 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 20 4 30 10 -1\n";
        let ends = find_in_tcp_table(text, 4242).unwrap();
        assert_eq!(ends.local, "127.0.0.1:58052".parse().unwrap());
        assert_eq!(ends.remote, "127.0.0.1:8443".parse().unwrap());
        assert!(find_in_tcp_table(text, 1).is_none());
    }

    #[test]
    fn parses_ipv6_loopback() {
        let a = parse_hex_addr("00000000000000000000000001000000:20FB").unwrap();
        assert_eq!(a, "[::1]:8443".parse().unwrap());
    }

    #[test]
    fn both_ways_of_reading_a_sockets_ends_agree() {
        use std::os::fd::AsRawFd as _;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (me, fd) = (std::process::id(), client.as_raw_fd());
        let asked = LiveProcessInfo::new().socket_ends(me, fd).unwrap();
        // Another procfs root never asks the socket: this reads /proc/PID/net/tcp.
        let table = LiveProcessInfo::with_root("/proc")
            .socket_ends(me, fd)
            .unwrap();
        assert_eq!(asked, table);
        assert_eq!(asked.local, client.local_addr().unwrap());
        assert_eq!(asked.remote, client.peer_addr().unwrap());
    }

    #[test]
    fn reads_our_own_name_from_proc() {
        let mut p = LiveProcessInfo::new();
        let me = p.leader_comm(std::process::id()).unwrap();
        assert!(!me.is_empty() && !me.ends_with('\n'));
    }
}
