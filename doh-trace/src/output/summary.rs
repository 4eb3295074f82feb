//! The per-process summary printed when the tracer stops: lookups, failures, latency
//! percentiles and resolvers used, for each process seen.

use std::{
    borrow::Cow,
    collections::{btree_map::Entry, BTreeMap, BTreeSet},
    sync::Arc,
};

use crate::lookup::Lookup;

/// Most processes summarised (the rest are counted together).
const MAX_PROCESSES: usize = 10_000;
/// Latency samples kept per process (the first ones; enough for stable percentiles).
const MAX_SAMPLES: usize = 100_000;

#[derive(Debug, Default)]
struct PerProcess {
    lookups: u64,
    failures: u64,
    latencies_ms: Vec<f64>,
    resolvers: BTreeSet<String>,
    /// The URL last added to `resolvers` (a connection's lookups share one).
    last_url: Option<Arc<str>>,
}

/// A process: its pid and name.
type ProcessKey = (u32, Arc<str>);

/// Accumulates lookups for the exit summary.
#[derive(Debug, Default)]
pub struct Summary {
    processes: Vec<(ProcessKey, PerProcess)>,
    /// Where each process is in `processes`.
    index: BTreeMap<ProcessKey, usize>,
    /// The last lookup's process (lookups come in runs from one connection).
    last: Option<usize>,
    others: u64,
}

/// The nearest-rank percentile `p` of `values` (which it reorders: a selection, not a sort).
fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * values.len() as f64).ceil().max(1.0) as usize;
    let (_, &mut value, _) =
        values.select_nth_unstable_by(rank.min(values.len()) - 1, f64::total_cmp);
    Some(value)
}

impl Summary {
    /// Counts one lookup.
    pub fn add(&mut self, l: &Lookup) {
        // A capture's records have no process: counted per client address (pid shown as -).
        let (key_pid, key_comm) = match (l.has_process(), &l.client) {
            (true, _) => (l.pid, l.comm.clone()),
            (false, Some(client)) => (0, client.ip.clone()),
            (false, None) => (0, Arc::from("?")),
        };
        let same = |&i: &usize| {
            let (pid, comm) = &self.processes[i].0;
            *pid == key_pid && *comm == key_comm
        };
        let i = match self.last.filter(same) {
            Some(i) => i,
            None => {
                let known = self.processes.len();
                match self.index.entry((key_pid, key_comm)) {
                    Entry::Occupied(i) => *i.get(),
                    Entry::Vacant(_) if known >= MAX_PROCESSES => {
                        self.others += 1;
                        return;
                    }
                    Entry::Vacant(i) => {
                        self.processes
                            .push((i.key().clone(), PerProcess::default()));
                        *i.insert(known)
                    }
                }
            }
        };
        self.last = Some(i);
        let p = &mut self.processes[i].1;
        p.lookups += 1;
        p.failures += u64::from(l.failed());
        if let Some(ms) = l.latency_ms {
            if p.latencies_ms.len() < MAX_SAMPLES {
                p.latencies_ms.push(ms);
            }
        }
        if let (Some(url), Some(last)) = (&l.url, &p.last_url) {
            if Arc::ptr_eq(url, last) {
                return;
            }
        }
        p.last_url = l.url.clone();
        let resolver = match (&l.url, &l.server) {
            (Some(url), _) => Cow::Borrowed(&**url),
            (None, Some(s)) if s.ip.contains(':') => format!("[{}]:{}", s.ip, s.port).into(),
            (None, Some(s)) => format!("{}:{}", s.ip, s.port).into(),
            (None, None) => "?".into(),
        };
        if p.resolvers.len() < 16 && !p.resolvers.contains(&*resolver) {
            p.resolvers.insert(resolver.into_owned());
        }
    }

    /// The summary table, one line per process, most lookups first.
    pub fn render(&self) -> Vec<String> {
        let mut rows: Vec<(&ProcessKey, &PerProcess)> =
            self.processes.iter().map(|(k, p)| (k, p)).collect();
        rows.sort_by(|a, b| b.1.lookups.cmp(&a.1.lookups).then(a.0.cmp(b.0)));
        let mut out = vec![format!(
            "{:>7} {:<15} {:>7} {:>7} {:>9} {:>9}  RESOLVERS",
            "PID", "PROCESS", "LOOKUPS", "FAILED", "P50", "P99"
        )];
        for ((pid, comm), p) in rows {
            let pid = match pid {
                0 => "-".to_string(),
                pid => pid.to_string(),
            };
            let mut lat = p.latencies_ms.clone();
            let fmt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |ms| format!("{ms:.1}ms"));
            out.push(format!(
                "{pid:>7} {comm:<15} {:>7} {:>7} {:>9} {:>9}  {}",
                p.lookups,
                p.failures,
                fmt(percentile(&mut lat, 50.0)),
                fmt(percentile(&mut lat, 99.0)),
                p.resolvers.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        if self.others > 0 {
            out.push(format!(
                "(and {} lookups of further processes)",
                self.others
            ));
        }
        out
    }

    /// Whether anything was counted.
    pub fn is_empty(&self) -> bool {
        self.processes.is_empty() && self.others == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs of lookups from one process and one URL, and changes of process (same pid, other
    /// name) and of URL (shared or not), are all counted where they belong.
    #[test]
    fn counts_each_process_and_its_resolvers() {
        let url: Arc<str> = "https://a.test/dns-query".into();
        let mut s = Summary::default();
        let mut add = |pid: u32, comm: &Arc<str>, url: Option<&Arc<str>>, rcode: &str| {
            let mut l = crate::output::sample_lookup("x.test", "A", Some(rcode), &[]);
            l.pid = pid;
            l.comm = comm.clone();
            l.url = url.cloned();
            s.add(&l);
        };
        let (curl, dig): (Arc<str>, Arc<str>) = ("curl".into(), "dig".into());
        add(7, &curl, Some(&url), "NOERROR");
        add(7, &curl, Some(&url), "SERVFAIL");
        add(7, &dig, Some(&url), "NOERROR");
        add(
            7,
            &curl,
            Some(&"https://a.test/dns-query".into()),
            "NOERROR",
        );
        add(
            7,
            &curl,
            Some(&"https://b.test/dns-query".into()),
            "NOERROR",
        );
        add(8, &curl, None, "NOERROR");
        add(7, &curl, Some(&url), "NOERROR");
        let rows = s.render();
        assert_eq!(rows.len(), 4, "{rows:#?}");
        let row = |pid: &str, comm: &str| {
            rows.iter()
                .find(|r| r.split_whitespace().take(2).eq([pid, comm]))
                .unwrap_or_else(|| panic!("{pid} {comm}: {rows:#?}"))
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let curl7 = row("7", "curl");
        assert_eq!(curl7[2..4], ["5", "1"], "lookups, failed");
        assert_eq!(
            curl7[6..],
            ["https://a.test/dns-query,", "https://b.test/dns-query"]
        );
        assert_eq!(row("7", "dig")[2..4], ["1", "0"]);
        assert_eq!(row("8", "curl")[6..], ["127.0.0.1:8443"]);
        assert!(
            rows[1].starts_with("      7 curl"),
            "most lookups first: {rows:#?}"
        );
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        // In any order: a selection, not a sort of sorted input.
        let mut v: Vec<f64> = (1..=100).map(|i| f64::from((i * 37) % 101)).collect();
        assert_eq!(percentile(&mut v, 50.0), Some(50.0));
        assert_eq!(percentile(&mut v, 99.0), Some(99.0));
        assert_eq!(percentile(&mut v, 100.0), Some(100.0));
        assert_eq!(percentile(&mut [3.0], 99.0), Some(3.0));
        assert_eq!(percentile(&mut [], 50.0), None);
    }
}
