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
        let process = l.has_process();
        self.matches_process(
            process.then_some(l.pid),
            process.then_some(&*l.comm),
            process.then_some(l.uid),
            l.transport,
        ) && (self.containers.is_empty()
            || l.context
                .container_id
                .as_deref()
                .is_some_and(|id| self.containers.iter().any(|c| id.starts_with(c.as_str()))))
            && (self.qnames.is_empty()
                || self
                    .qnames
                    .iter()
                    .any(|p| glob(p, l.qname.as_deref().unwrap_or(""))))
    }

    /// Whether a record of this process and transport passes the process filters (also used
    /// for connection records, which have no name or container). A record without a process
    /// (read from a packet capture) matches no process filter.
    pub fn matches_process(
        &self,
        pid: Option<u32>,
        comm: Option<&str>,
        uid: Option<u32>,
        transport: &str,
    ) -> bool {
        (self.pids.is_empty() || pid.is_some_and(|p| self.pids.contains(&p)))
            && (self.comms.is_empty() || comm.is_some_and(|n| self.comms.iter().any(|c| c == n)))
            && (self.uids.is_empty() || uid.is_some_and(|u| self.uids.contains(&u)))
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
    use crate::output::sample_lookup;
    use std::sync::Arc;

    #[test]
    fn every_filter_must_pass_and_empty_ones_pass_all() {
        let mut l = sample_lookup("www.doh.test", "A", Some("NOERROR"), &["192.0.2.10"]);
        Arc::make_mut(&mut l.context).container_id = Some("4f2a9c81d0e3".repeat(5) + "abcd");
        assert!(Filter::default().matches(&l));
        let with = |l: &Lookup, edit: &dyn Fn(&mut Filter)| {
            let mut f = Filter::default();
            edit(&mut f);
            f.matches(l)
        };
        let f = |edit: &dyn Fn(&mut Filter)| with(&l, edit);
        assert!(f(&|f| f.pids = vec![1, 1234]));
        assert!(!f(&|f| f.pids = vec![1]));
        assert!(f(&|f| f.comms = vec!["curl".into()]));
        assert!(!f(&|f| f.comms = vec!["cur".into()]), "names match whole");
        assert!(f(&|f| f.uids = vec![l.uid]));
        assert!(!f(&|f| f.uids = vec![l.uid + 1]));
        assert!(
            f(&|f| f.containers = vec!["4f2a9c81".into()]),
            "id prefix as docker ps shows it"
        );
        assert!(!f(&|f| f.containers = vec!["deadbeef".into()]));
        assert!(f(&|f| f.qnames = vec!["*.example".into(), "www.*".into()]));
        assert!(!f(&|f| f.qnames = vec!["*.example".into()]));
        assert!(f(&|f| f.transports = vec!["doh".into()]));
        assert!(!f(&|f| f.transports = vec!["dot".into()]));
        assert!(
            !f(&|f| {
                f.comms = vec!["curl".into()];
                f.pids = vec![1];
            }),
            "all filters must pass"
        );
        Arc::make_mut(&mut l.context).container_id = None;
        assert!(
            !with(&l, &|f| f.containers = vec!["4f2a".into()]),
            "not in a container"
        );
    }

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
