//! Which lookups the user asked to see: `--pid`, `--comm`, `--uid`, `--container`, `--qname`,
//! `--transport`. Applied before every output (stdout, pcapng, metrics).

use crate::lookup::Lookup;

/// The command line's filters; an empty list means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub pids: Vec<u32>,
    pub comms: Vec<String>,
    pub uids: Vec<u32>,
    /// Container id prefixes (at least 4 hex digits, as `docker ps` shortens them).
    pub containers: Vec<String>,
    /// Shell-style patterns (`*`, `?`), case-insensitive, matched against the whole name.
    pub qnames: Vec<String>,
    pub transports: Vec<String>,
}

impl Filter {
    /// Whether `l` passes every filter given.
    pub fn matches(&self, l: &Lookup) -> bool {
        self.matches_process(l.pid, &l.comm, l.uid, l.transport)
            && (self.containers.is_empty()
                || l.context
                    .container_id
                    .as_deref()
                    .is_some_and(|id| self.containers.iter().any(|c| id.starts_with(c.as_str()))))
            && (self.qnames.is_empty() || self.qnames.iter().any(|p| glob(p, &l.qname)))
    }

    /// Whether a record of this process and transport passes the process filters (also used
    /// for connection records, which have no name or container).
    pub fn matches_process(&self, pid: u32, comm: &str, uid: u32, transport: &str) -> bool {
        (self.pids.is_empty() || self.pids.contains(&pid))
            && (self.comms.is_empty() || self.comms.iter().any(|c| c == comm))
            && (self.uids.is_empty() || self.uids.contains(&uid))
            && (self.transports.is_empty() || self.transports.iter().any(|t| t == transport))
    }
}

/// Shell-style match of the whole `name` against `pattern` (`*` any run, `?` one character),
/// ASCII case-insensitive; a trailing dot on either side is ignored.
pub fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern
        .trim_end_matches('.')
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let n: Vec<char> = name
        .trim_end_matches('.')
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .collect();
    // Iterative matcher with backtracking to the last '*': linear-ish, no recursion.
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names_case_insensitively() {
        assert!(glob("*.doh.test", "www.doh.test"));
        assert!(glob("*.DOH.test.", "www.doh.test"));
        assert!(!glob("*.doh.test", "doh.test"));
        assert!(glob("w?w.*", "www.doh.test"));
        assert!(!glob("www", "www.doh.test"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXXbYYc") && !glob("a*b*c", "aXXbYY"));
    }
}
