//! The per-process summary printed when the tracer stops: lookups, failures, latency
//! percentiles and resolvers used, for each process seen.

use std::{
    borrow::Cow,
    collections::{btree_map::Entry, BTreeMap, BTreeSet},
    sync::Arc,
};

use crate::lookup::{Lookup, Status};

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
}

/// Accumulates lookups for the exit summary.
#[derive(Debug, Default)]
pub struct Summary {
    by_process: BTreeMap<(u32, Arc<str>), PerProcess>,
    others: u64,
}

/// Whether a lookup failed: no usable answer (any status but ok), or an error rcode.
/// NXDOMAIN is an answer, not a failure.
pub fn failed(l: &Lookup) -> bool {
    l.status != Status::Ok || !matches!(l.rcode.as_deref(), Some("NOERROR") | Some("NXDOMAIN"))
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

impl Summary {
    /// Counts one lookup.
    pub fn add(&mut self, l: &Lookup) {
        let processes = self.by_process.len();
        let p = match self.by_process.entry((l.pid, l.comm.clone())) {
            Entry::Occupied(p) => p.into_mut(),
            Entry::Vacant(_) if processes >= MAX_PROCESSES => {
                self.others += 1;
                return;
            }
            Entry::Vacant(p) => p.insert(PerProcess::default()),
        };
        p.lookups += 1;
        p.failures += u64::from(failed(l));
        if let Some(ms) = l.latency_ms {
            if p.latencies_ms.len() < MAX_SAMPLES {
                p.latencies_ms.push(ms);
            }
        }
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
        let mut rows: Vec<(&(u32, Arc<str>), &PerProcess)> = self.by_process.iter().collect();
        rows.sort_by(|a, b| b.1.lookups.cmp(&a.1.lookups).then(a.0.cmp(b.0)));
        let mut out = vec![format!(
            "{:>7} {:<15} {:>7} {:>7} {:>9} {:>9}  RESOLVERS",
            "PID", "PROCESS", "LOOKUPS", "FAILED", "P50", "P99"
        )];
        for ((pid, comm), p) in rows {
            let mut lat = p.latencies_ms.clone();
            lat.sort_by(f64::total_cmp);
            let fmt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |ms| format!("{ms:.1}ms"));
            out.push(format!(
                "{pid:>7} {comm:<15} {:>7} {:>7} {:>9} {:>9}  {}",
                p.lookups,
                p.failures,
                fmt(percentile(&lat, 50.0)),
                fmt(percentile(&lat, 99.0)),
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
        self.by_process.is_empty() && self.others == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&[3.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
