//! Process context for a lookup, read from /proc: executable, command line, user, parent,
//! cgroup and — when the cgroup path shows one — the container (docker, containerd, cri-o,
//! podman) or Kubernetes pod the process runs in.
//!
//! The parsers are pure functions over file contents so they can be tested with real-looking
//! input; [`read_context`] ties them to a procfs root. Nothing here panics on odd input, and no
//! read allocates more than [`MAX_READ`] bytes per /proc file.

mod cgroup;

pub use cgroup::{parse_cgroup, CgroupInfo};

use std::{
    collections::HashMap,
    fs::File,
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// What doh-trace reports about the process that made a lookup.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessContext {
    /// Target of `/proc/PID/exe` (a `" (deleted)"` suffix is kept as the kernel prints it).
    pub exe: Option<String>,
    /// `/proc/PID/cmdline` as arguments, truncated by [`parse_cmdline`]; None when unreadable or
    /// empty (kernel threads, zombies).
    pub cmdline: Option<Vec<String>>,
    /// User name of the real uid.
    pub user: Option<String>,
    /// Parent process id from `/proc/PID/stat`.
    pub ppid: Option<u32>,
    /// The cgroup path (see [`parse_cgroup`]).
    pub cgroup: Option<String>,
    /// Container id (12 to 64 lowercase hex digits) found in the cgroup path.
    pub container_id: Option<String>,
    /// `"docker"`, `"containerd"`, `"cri-o"`, `"podman"` or `"kubernetes"` (a pod is present).
    pub container_runtime: Option<String>,
    /// Kubernetes pod UID (with `-`, as the API shows it).
    pub pod_uid: Option<String>,
}

/// Most bytes read from any one /proc file.
pub const MAX_READ: u64 = 64 * 1024;
/// Most arguments kept from a command line (a final `"…"` marks truncation).
pub const MAX_ARGS: usize = 64;
/// Most bytes of arguments kept from a command line.
pub const MAX_CMDLINE_BYTES: usize = 4096;
/// The element appended to a truncated command line.
pub const TRUNCATED: &str = "…";

/// The parent pid from the text of `/proc/PID/stat`. The process name is between the first
/// `(` and the *last* `)`, and may itself hold spaces and parentheses.
pub fn parse_ppid(proc_pid_stat_text: &str) -> Option<u32> {
    let after = &proc_pid_stat_text[proc_pid_stat_text.rfind(')')? + 1..];
    let mut fields = after.split_ascii_whitespace();
    let _state = fields.next()?;
    fields.next()?.parse().ok()
}

/// Splits `/proc/PID/cmdline` on NUL (one trailing NUL ends the last argument; empty
/// arguments are kept), decoding lossily. Keeps at most [`MAX_ARGS`] arguments and
/// [`MAX_CMDLINE_BYTES`] bytes of them (the last kept argument may be cut at a character
/// boundary); when anything was dropped a final [`TRUNCATED`] element is appended.
pub fn parse_cmdline(raw: &[u8]) -> Vec<String> {
    let mut args = Vec::new();
    if raw.is_empty() {
        return args;
    }
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    let mut budget = MAX_CMDLINE_BYTES;
    for (n, part) in raw.split(|&b| b == 0).enumerate() {
        if n == MAX_ARGS {
            args.push(TRUNCATED.to_string());
            break;
        }
        let arg = String::from_utf8_lossy(part);
        if arg.len() > budget {
            let mut cut = budget;
            while !arg.is_char_boundary(cut) {
                cut -= 1;
            }
            if cut > 0 {
                args.push(arg[..cut].to_string());
            }
            args.push(TRUNCATED.to_string());
            break;
        }
        budget -= arg.len();
        args.push(arg.into_owned());
    }
    args
}

/// Reads at most [`MAX_READ`] bytes of a file.
fn read_capped(path: &Path) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    File::open(path)
        .ok()?
        .take(MAX_READ)
        .read_to_end(&mut buf)
        .ok()?;
    Some(buf)
}

/// Reads everything for `pid` under `proc_root` (normally "/proc"); user names come from
/// `users`. Missing files (process gone, permission) leave fields None; never panics.
/// `user` depends only on `uid`, so it is filled even when the process is gone.
pub fn read_context(proc_root: &Path, pid: u32, uid: u32, users: &mut UserNames) -> ProcessContext {
    let dir = proc_root.join(pid.to_string());
    let exe = std::fs::read_link(dir.join("exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    let cmdline = read_capped(&dir.join("cmdline"))
        .map(|raw| parse_cmdline(&raw))
        .filter(|args| !args.is_empty());
    let ppid =
        read_capped(&dir.join("stat")).and_then(|raw| parse_ppid(&String::from_utf8_lossy(&raw)));
    let cg = read_capped(&dir.join("cgroup"))
        .map(|raw| parse_cgroup(&String::from_utf8_lossy(&raw)))
        .unwrap_or_default();
    ProcessContext {
        exe,
        cmdline,
        user: users.name(uid),
        ppid,
        cgroup: cg.path,
        container_id: cg.container_id,
        container_runtime: cg.runtime,
        pod_uid: cg.pod_uid,
    }
}

/// Most users kept from a passwd file.
const MAX_USERS: usize = 16384;
/// Longest passwd line considered (longer ones are skipped).
const MAX_PASSWD_LINE: usize = 4096;
/// Longest user name kept.
const MAX_USER_NAME: usize = 256;
/// Most bytes read from a passwd file.
const MAX_PASSWD_READ: u64 = 16 * 1024 * 1024;

/// uid → name from an /etc/passwd-format file, read lazily once and re-read at most every
/// 60 s when a uid is not found; the cache holds at most 16384 users.
#[derive(Debug)]
pub struct UserNames {
    path: PathBuf,
    names: HashMap<u32, String>,
    loaded: Option<Instant>,
    reload_after: Duration,
}

impl UserNames {
    /// Names from the passwd-format file at `path` (read on first use).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        UserNames {
            path: path.into(),
            names: HashMap::new(),
            loaded: None,
            reload_after: Duration::from_secs(60),
        }
    }

    /// Names from `/etc/passwd`.
    pub fn system() -> Self {
        Self::new("/etc/passwd")
    }

    /// The name of `uid`, if the file has it.
    pub fn name(&mut self, uid: u32) -> Option<String> {
        let reload = match self.loaded {
            None => true,
            Some(at) => !self.names.contains_key(&uid) && at.elapsed() >= self.reload_after,
        };
        if reload {
            self.names = File::open(&self.path)
                .map(|f| parse_passwd(BufReader::new(f.take(MAX_PASSWD_READ))))
                .unwrap_or_default();
            self.loaded = Some(Instant::now());
        }
        self.names.get(&uid).cloned()
    }
}

/// uid → name from passwd-format lines; comments, malformed and overlong lines are skipped,
/// and the first entry for a uid wins (as getpwuid does).
pub fn parse_passwd(mut reader: impl BufRead) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    let mut line = Vec::new();
    while let Some(fits) = read_line_capped(&mut reader, &mut line, MAX_PASSWD_LINE) {
        if names.len() >= MAX_USERS {
            break;
        }
        if !fits {
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches('\r');
        if text.trim_start().starts_with('#') {
            continue;
        }
        let mut fields = text.split(':');
        let (Some(name), Some(_pw), Some(uid)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let usable = !name.is_empty()
            && name.len() <= MAX_USER_NAME
            && !name.starts_with(['+', '-'])
            && !name.chars().any(|c| c.is_control() || c.is_whitespace());
        if let (true, Ok(uid)) = (usable, uid.parse::<u32>()) {
            names.entry(uid).or_insert_with(|| name.to_string());
        }
    }
    names
}

/// Reads one line (without its `\n`) into `buf`, keeping at most `cap` bytes. None at end of
/// input (or on an error); Some(false) when the line was longer than `cap` (`buf` is empty).
fn read_line_capped(reader: &mut impl BufRead, buf: &mut Vec<u8>, cap: usize) -> Option<bool> {
    buf.clear();
    let mut seen = false;
    let mut fits = true;
    loop {
        let avail = reader.fill_buf().ok()?;
        if avail.is_empty() {
            return seen.then_some(fits);
        }
        seen = true;
        let (chunk, used, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (&avail[..i], i + 1, true),
            None => (avail, avail.len(), false),
        };
        if fits && buf.len() + chunk.len() <= cap {
            buf.extend_from_slice(chunk);
        } else {
            fits = false;
            buf.clear();
        }
        reader.consume(used);
        if done {
            return Some(fits);
        }
    }
}

#[cfg(test)]
mod tests;
