//! The pipeline's memory budget: one bound on the bytes every connection's decoding state
//! holds together (buffers, HPACK tables, open exchanges, bytes kept while classifying).
//!
//! Each decoder's own bounds multiply (streams × bodies × connections): one local user with a
//! loopback h2c server could make the tracer hold gigabytes. The connection table keeps the
//! sum of what its states hold, updated as each is put back after an event, so the budget is
//! checked after every event in constant time. Beyond the budget, the process holding most
//! gives up its largest connection, until everything held is back to three quarters of the
//! budget: a process holding little keeps decoding as long as any other holds more.

use std::collections::{BinaryHeap, HashMap};

use crate::source::ConnKey;

/// The budget unless one is set: far above what a busy host's DoH clients hold (kilobytes
/// per connection), far below the 256 MiB the DaemonSet grants the whole tracer.
pub const DEFAULT_BUDGET: usize = 64 << 20;

/// Dropping goes on until what is held is at most this part of the budget (so one connection
/// growing again does not cost a scan per event).
const DROP_TO_NUM: usize = 3;
const DROP_TO_DEN: usize = 4;

/// The budget and the most held so far.
#[derive(Debug, Clone, Copy)]
pub struct MemoryBudget {
    /// Most bytes the decoding state may hold.
    pub limit: usize,
    /// Most held at once so far (after an event, before anything was dropped for it).
    pub peak: usize,
}

impl Default for MemoryBudget {
    fn default() -> Self {
        MemoryBudget {
            limit: DEFAULT_BUDGET,
            peak: 0,
        }
    }
}

impl MemoryBudget {
    /// Notes what is held now; whether that is over the budget.
    pub fn over(&mut self, held: usize) -> bool {
        self.peak = self.peak.max(held);
        held > self.limit
    }

    /// Which connections to drop, with what each holds, for `held` (the sum over `states`) to
    /// come down to three quarters of the budget: each time, the largest connection of the
    /// process that holds most. States holding nothing are never picked.
    pub fn to_drop(
        &self,
        states: impl Iterator<Item = (ConnKey, usize)>,
        mut held: usize,
    ) -> Vec<(ConnKey, usize)> {
        let target = self.limit / DROP_TO_DEN * DROP_TO_NUM;
        let mut by_pid: HashMap<u32, (usize, Vec<(usize, ConnKey)>)> = HashMap::new();
        for (key, bytes) in states.filter(|(_, bytes)| *bytes > 0) {
            let (sum, conns) = by_pid.entry(key.pid).or_default();
            *sum += bytes;
            conns.push((bytes, key));
        }
        // Per process, its largest connection last (popped first).
        let mut heap: BinaryHeap<(usize, u32)> = BinaryHeap::new();
        for (pid, (sum, conns)) in &mut by_pid {
            conns.sort_by_key(|(bytes, _)| *bytes);
            heap.push((*sum, *pid));
        }
        let mut dropped = Vec::new();
        while held > target {
            let Some((sum, pid)) = heap.pop() else {
                break;
            };
            let conns = &mut by_pid.get_mut(&pid).expect("listed").1;
            let Some((bytes, key)) = conns.pop() else {
                continue;
            };
            held = held.saturating_sub(bytes);
            dropped.push((key, bytes));
            if !conns.is_empty() {
                heap.push((sum - bytes, pid));
            }
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{ConnId, Layer};

    fn key(pid: u32, fd: i32) -> ConnKey {
        ConnKey {
            pid,
            id: ConnId::Fd(fd),
            layer: Layer::Socket,
        }
    }

    /// The process holding most gives up its largest connections first, down to three
    /// quarters of the budget; a small process is untouched while others hold more.
    #[test]
    fn the_largest_process_gives_up_its_largest_connections_first() {
        let budget = MemoryBudget {
            limit: 1000,
            peak: 0,
        };
        let states = vec![
            (key(1, 3), 400),
            (key(1, 4), 300),
            (key(1, 5), 10),
            (key(2, 3), 250),
            (key(2, 4), 50),
            (key(3, 3), 20),
            (key(3, 4), 0),
        ];
        let held = states.iter().map(|(_, b)| b).sum();
        assert_eq!(held, 1030);
        let dropped = budget.to_drop(states.into_iter(), held);
        // 1030 > 750: pid 1 (710) gives up its 400, and 630 ≤ 750.
        assert_eq!(dropped, vec![(key(1, 3), 400)]);
    }

    /// Over and over again: each pick is the then-largest process.
    #[test]
    fn picks_follow_the_processes_as_they_shrink() {
        let budget = MemoryBudget {
            limit: 400,
            peak: 0,
        };
        let states = vec![
            (key(1, 1), 200),
            (key(1, 2), 150),
            (key(2, 1), 180),
            (key(2, 2), 20),
            (key(3, 1), 10),
        ];
        let dropped = budget.to_drop(states.into_iter(), 560);
        // 560: pid 1 (350) drops 200 → 360; pid 2 (200) drops 180 → 180 ≤ 300.
        assert_eq!(dropped, vec![(key(1, 1), 200), (key(2, 1), 180)]);
    }

    #[test]
    fn the_peak_is_kept_and_only_more_than_the_limit_is_over() {
        let mut budget = MemoryBudget {
            limit: 100,
            peak: 0,
        };
        assert!(!budget.over(100));
        assert!(budget.over(101));
        assert!(!budget.over(5));
        assert_eq!(budget.peak, 101);
    }
}
