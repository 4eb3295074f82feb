//! The per-process summary printed when the tracer stops: lookups, failures, latency
//! percentiles and resolvers used, for each process seen. Process names and resolvers are
//! escaped ([`escape_controls`]): other users and remote servers chose them.

use std::{
    borrow::Cow,
    collections::{btree_map::Entry, BTreeMap, BTreeSet},
    sync::Arc,
};

use super::escape::escape_controls;
use crate::lookup::Lookup;

/// Most processes summarised (the rest are counted together).
const MAX_PROCESSES: usize = 4096;
/// Latency samples kept per process (the first ones; enough for stable percentiles).
const MAX_SAMPLES: usize = 10_000;
/// Latency samples kept in all (8 MB); later ones are counted, not kept.
const MAX_TOTAL_SAMPLES: usize = 1_000_000;
/// Resolvers named per process; more are counted.
const MAX_RESOLVERS: usize = 8;
/// Longest resolver text kept (bytes; a URL is the client's to make long).
const MAX_RESOLVER_LEN: usize = 128;

#[derive(Debug, Default)]
struct PerProcess {
    lookups: u64,
    failures: u64,
    latencies_ms: Vec<f64>,
    resolvers: BTreeSet<String>,
    /// Lookups to resolvers beyond the [`MAX_RESOLVERS`] named (each run of one counted once).
    more_resolvers: u64,
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
    /// Lookups of processes beyond [`MAX_PROCESSES`].
    others: u64,
    /// Latency samples kept, in all processes.
    samples: usize,
    /// Latency samples not kept (beyond [`MAX_SAMPLES`] or [`MAX_TOTAL_SAMPLES`]).
    samples_dropped: u64,
}

/// `s` cut to at most `max` bytes (at a character boundary, ending in `…`).
fn cut(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut end = max - '…'.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &s[..end]))
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
            if p.latencies_ms.len() < MAX_SAMPLES && self.samples < MAX_TOTAL_SAMPLES {
                p.latencies_ms.push(ms);
                self.samples += 1;
            } else {
                self.samples_dropped += 1;
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
        let resolver = cut(&resolver, MAX_RESOLVER_LEN);
        if !p.resolvers.contains(resolver.as_ref()) {
            if p.resolvers.len() < MAX_RESOLVERS {
                p.resolvers.insert(resolver.into_owned());
            } else {
                p.more_resolvers += 1;
            }
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
            let comm = escape_controls(comm);
            let mut resolvers = p.resolvers.iter().cloned().collect::<Vec<_>>().join(", ");
            if p.more_resolvers > 0 {
                resolvers.push_str(&format!(" (+{} lookups to others)", p.more_resolvers));
            }
            out.push(format!(
                "{pid:>7} {comm:<15} {:>7} {:>7} {:>9} {:>9}  {}",
                p.lookups,
                p.failures,
                fmt(percentile(&mut lat, 50.0)),
                fmt(percentile(&mut lat, 99.0)),
                escape_controls(&resolvers)
            ));
        }
        if self.others > 0 {
            out.push(format!(
                "(and {} lookups of further processes)",
                self.others
            ));
        }
        if self.samples_dropped > 0 {
            out.push(format!(
                "({} latencies beyond the {MAX_TOTAL_SAMPLES} kept are not in the percentiles)",
                self.samples_dropped
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

    /// Memory stays bounded whatever the lookups: processes, latency samples, resolvers per
    /// process and their length are capped, and what was left out is counted and shown.
    #[test]
    fn what_the_summary_keeps_is_bounded_and_the_rest_counted() {
        let mut s = Summary::default();
        let comm: Arc<str> = "client".into();
        let long = format!("https://{}.test/dns-query", "a".repeat(100_000));
        let urls: Vec<Arc<str>> = (0..20)
            .map(|i| format!("https://r{i}.test/dns-query").into())
            .chain([long.into()])
            .collect();
        let mut l = crate::output::sample_lookup("x.test", "A", Some("NOERROR"), &[]);
        for pid in 0..(MAX_PROCESSES as u32 + 100) {
            for n in 0..300 {
                l.pid = pid + 1;
                l.comm = comm.clone();
                l.latency_ms = Some(f64::from(n));
                l.url = Some(urls[n as usize % urls.len()].clone());
                s.add(&l);
            }
        }
        assert_eq!(s.processes.len(), MAX_PROCESSES);
        assert_eq!(s.others, 100 * 300);
        let kept: usize = s.processes.iter().map(|(_, p)| p.latencies_ms.len()).sum();
        assert_eq!(kept, MAX_TOTAL_SAMPLES);
        assert_eq!(s.samples, kept);
        assert_eq!(
            s.samples_dropped,
            (MAX_PROCESSES * 300).saturating_sub(MAX_TOTAL_SAMPLES) as u64
        );
        for (_, p) in &s.processes {
            assert!(p.resolvers.len() <= MAX_RESOLVERS);
            assert!(p.resolvers.iter().all(|r| r.len() <= MAX_RESOLVER_LEN));
        }
        let first = &s.processes[0].1;
        // 21 resolvers seen, 8 named: each of the other 13 counted each time its run began.
        assert_eq!(first.resolvers.len(), MAX_RESOLVERS);
        assert!(first.more_resolvers >= 13, "{}", first.more_resolvers);
        let rows = s.render();
        assert!(rows[1].contains("lookups to others)"), "{}", rows[1]);
        assert!(rows
            .iter()
            .any(|r| r.contains("lookups of further processes")));
        assert!(rows.iter().any(|r| r.contains("latencies beyond")));
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
