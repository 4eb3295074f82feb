//! The connections the pipeline keeps state for, by [`ConnKey`], within a bound.
//!
//! Beside the states, two indexes keep every per-event operation O(1) amortised, however many
//! connections are open:
//!
//! - by process: the keys each pid has had, so a process's exit ends its own connections
//!   without a scan of the table;
//! - by last activity: a queue of keys in the order they were last put in (the pipeline takes
//!   a state out and puts it back for every event), one for states that hold nothing worth
//!   reporting (idle) and one for the others, so a full table gives up its stalest idle state,
//!   else its stalest connection.
//!
//! The table also keeps the sum of what its states hold (as its `held` function says, asked
//! when a state is put in), so a memory budget reads it in constant time.
//!
//! Both indexes are cleaned lazily: a removed key stays in them until it is met (a queue entry
//! whose stamp is not the state's current one is stale) or until they are compacted, which
//! happens once they hold more than twice as many entries as there are states — so
//! compaction's cost is paid for by the insertions that made them grow.

use std::collections::VecDeque;

use crate::source::ConnKey;

/// Most connections tracked at once; beyond it the stalest is dropped.
pub const MAX_CONNS: usize = 65536;

/// Index entries kept beyond twice the states before a compaction is due.
const COMPACT_SLACK: usize = 64;

/// A state, the stamp of its last insertion, and what it held then.
struct Slot<V> {
    value: V,
    stamp: u64,
    held: usize,
}

/// Connection states by key, hashed with foldhash (randomly seeded per process), as the
/// streams of each connection.
pub struct ConnTable<V> {
    map: foldhash::HashMap<ConnKey, Slot<V>>,
    /// Keys each pid has had (some perhaps removed since).
    by_pid: foldhash::HashMap<u32, foldhash::HashSet<ConnKey>>,
    /// Keys by last insertion, oldest first, with the stamp they were given: idle states in
    /// `[0]`, the others in `[1]`.
    by_age: [VecDeque<(u64, ConnKey)>; 2],
    /// Entries in `by_pid`'s sets (some perhaps stale).
    indexed: usize,
    stamp: u64,
    /// Whether a state holds nothing worth reporting (dropped first, without being ended).
    idle: fn(&V) -> bool,
    /// What a state holds (heap bytes), asked when it is put in.
    size: fn(&V) -> usize,
    /// The sum of the states' `held`.
    held: usize,
}

impl<V> ConnTable<V> {
    /// An empty table; `idle` says which states hold nothing worth reporting, `size` what a
    /// state holds (in constant time: it is asked for every insertion).
    pub fn new(idle: fn(&V) -> bool, size: fn(&V) -> usize) -> Self {
        ConnTable {
            map: Default::default(),
            by_pid: Default::default(),
            by_age: Default::default(),
            indexed: 0,
            stamp: 0,
            idle,
            size,
            held: 0,
        }
    }

    /// What the states hold, by `size` when they were put in.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Every state's key and what it held when it was put in (a scan of the whole table).
    pub fn held_by_key(&self) -> impl Iterator<Item = (ConnKey, usize)> + '_ {
        self.map.iter().map(|(k, s)| (*k, s.held))
    }

    /// Connections tracked.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn contains(&self, key: &ConnKey) -> bool {
        self.map.contains_key(key)
    }

    pub fn get(&self, key: &ConnKey) -> Option<&V> {
        self.map.get(key).map(|s| &s.value)
    }

    pub fn get_mut(&mut self, key: &ConnKey) -> Option<&mut V> {
        self.map.get_mut(key).map(|s| &mut s.value)
    }

    /// Takes a connection's state out (the pipeline works on it, then puts it back).
    pub fn remove(&mut self, key: &ConnKey) -> Option<V> {
        let slot = self.map.remove(key)?;
        self.held -= slot.held;
        Some(slot.value)
    }

    /// Puts a state in: it is now the most recently active.
    pub fn insert(&mut self, key: ConnKey, value: V) {
        self.stamp += 1;
        let queue = usize::from(!(self.idle)(&value));
        self.by_age[queue].push_back((self.stamp, key));
        let held = (self.size)(&value);
        self.held += held;
        let old = self.map.insert(
            key,
            Slot {
                value,
                stamp: self.stamp,
                held,
            },
        );
        if let Some(old) = old {
            self.held -= old.held;
        }
        if self.by_pid.entry(key.pid).or_default().insert(key) {
            self.indexed += 1;
        }
        if self.by_age[0].len() + self.by_age[1].len() + self.indexed
            > 4 * self.map.len() + COMPACT_SLACK
        {
            self.compact();
        }
    }

    /// The keys of `pid`'s connections whose state satisfies `pick`; the cost is that
    /// process's connections, not the table's.
    pub fn keys_of(&self, pid: u32, pick: impl Fn(&ConnKey, &V) -> bool) -> Vec<ConnKey> {
        let Some(keys) = self.by_pid.get(&pid) else {
            return Vec::new();
        };
        keys.iter()
            .filter(|k| self.map.get(k).is_some_and(|s| pick(k, &s.value)))
            .copied()
            .collect()
    }

    /// Forgets the index of a process that is gone (its connections were removed).
    pub fn forget_pid(&mut self, pid: u32) {
        if let Some(keys) = self.by_pid.remove(&pid) {
            self.indexed -= keys.len();
        }
    }

    /// The keys of connections whose state satisfies `pick` (a scan of the whole table: for
    /// the once-a-second tick, not per event).
    pub fn keys_where(&self, pick: impl Fn(&ConnKey, &V) -> bool) -> Vec<ConnKey> {
        self.map
            .iter()
            .filter(|(k, s)| pick(k, &s.value))
            .map(|(k, _)| *k)
            .collect()
    }

    /// Makes room for one more connection: at the bound, the stalest idle state is dropped;
    /// when there is none, returns the key of the stalest connection, which the caller must
    /// end (and remove).
    pub fn make_room(&mut self) -> Option<ConnKey> {
        if self.map.len() < MAX_CONNS {
            return None;
        }
        if let Some(key) = self.pop_stalest(0) {
            let state = self.map.get(&key).expect("a live entry");
            if (self.idle)(&state.value) {
                self.remove(&key);
                return None;
            }
            // Active again since it was put in: ended, as any other.
            return Some(key);
        }
        self.pop_stalest(1)
    }

    /// The oldest key of queue `queue` whose entry is current, taken off the queue.
    fn pop_stalest(&mut self, queue: usize) -> Option<ConnKey> {
        while let Some((stamp, key)) = self.by_age[queue].pop_front() {
            if self.map.get(&key).is_some_and(|s| s.stamp == stamp) {
                return Some(key);
            }
        }
        None
    }

    /// Drops the stale entries of both indexes.
    fn compact(&mut self) {
        let map = &self.map;
        for queue in &mut self.by_age {
            queue.retain(|(stamp, key)| map.get(key).is_some_and(|s| s.stamp == *stamp));
        }
        self.by_pid.retain(|_, keys| {
            keys.retain(|k| map.contains_key(k));
            !keys.is_empty()
        });
        self.indexed = self.by_pid.values().map(|keys| keys.len()).sum();
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

    /// `true` states are idle.
    fn table() -> ConnTable<bool> {
        ConnTable::new(|idle| *idle, |idle| usize::from(!*idle))
    }

    /// A full table gives up the connection least recently active: not one of the others,
    /// and not one that was old but was active again.
    #[test]
    fn a_full_table_gives_up_its_stalest_connection() {
        let mut t = table();
        let n = MAX_CONNS as i32;
        for fd in 0..n {
            t.insert(key(fd as u32 % 100, fd), false);
        }
        // Key 0 is active again (taken out and put back, as the pipeline does per event).
        let v = t.remove(&key(0, 0)).unwrap();
        t.insert(key(0, 0), v);
        for expected in 1..50 {
            let evicted = t.make_room().expect("full");
            assert_eq!(evicted, key(expected as u32 % 100, expected));
            t.remove(&evicted);
            t.insert(key(7, n + expected), false);
        }
        assert_eq!(t.len(), MAX_CONNS);
    }

    /// Idle states go first, stalest first, without being ended; connections after them.
    #[test]
    fn idle_states_are_dropped_before_any_connection() {
        let mut t = table();
        let n = MAX_CONNS as i32;
        for fd in 0..n - 2 {
            t.insert(key(1, fd), false);
        }
        t.insert(key(2, 1), true);
        t.insert(key(2, 2), true);
        assert_eq!(t.make_room(), None);
        assert_eq!(t.len(), MAX_CONNS - 1);
        assert!(!t.contains(&key(2, 1)) && t.contains(&key(2, 2)));
        t.insert(key(3, 0), false);
        assert_eq!(t.make_room(), None);
        assert!(!t.contains(&key(2, 2)));
        t.insert(key(3, 1), false);
        assert_eq!(t.make_room(), Some(key(1, 0)));
    }

    /// What the states hold is summed as they are put in, replaced and taken out, also when
    /// a full table drops an idle state itself.
    #[test]
    fn what_the_states_hold_is_kept_summed() {
        let mut t = table();
        t.insert(key(1, 1), false);
        t.insert(key(1, 2), false);
        t.insert(key(1, 3), true);
        assert_eq!(t.held(), 2);
        t.insert(key(1, 2), true);
        assert_eq!(t.held(), 1);
        assert_eq!(t.remove(&key(1, 1)), Some(false));
        assert_eq!(t.held(), 0);
        t.insert(key(1, 1), false);
        let held: Vec<(ConnKey, usize)> = t.held_by_key().collect();
        assert_eq!(held.len(), 3);
        for k in [(key(1, 1), 1), (key(1, 2), 0), (key(1, 3), 0)] {
            assert!(held.contains(&k), "{held:?}");
        }
        for fd in 4..MAX_CONNS as i32 + 1 {
            t.insert(key(2, fd), false);
        }
        assert_eq!(t.held(), MAX_CONNS - 2);
        // Full: the stalest idle states go (they held nothing), then the stalest connection.
        for (fd, held) in [(0, MAX_CONNS - 2), (1, MAX_CONNS - 1)] {
            assert_eq!(t.make_room(), None);
            assert_eq!(t.held(), held);
            t.insert(key(3, fd), false);
        }
        assert_eq!(t.held(), MAX_CONNS);
        assert_eq!(t.make_room(), Some(key(1, 1)));
    }

    /// A process's keys come from its own index; removed keys are not among them, and the
    /// indexes stay bounded by the states however often states are taken out and put back.
    #[test]
    fn keys_of_a_process_and_bounded_indexes() {
        let mut t = table();
        for fd in 0..1000 {
            t.insert(key(fd as u32 % 10, fd), false);
        }
        let of3 = t.keys_of(3, |_, _| true);
        assert_eq!(of3.len(), 100);
        assert!(of3.iter().all(|k| k.pid == 3));
        t.remove(&key(3, 3));
        assert_eq!(t.keys_of(3, |_, _| true).len(), 99);
        assert_eq!(t.keys_of(99, |_, _| true), vec![]);
        for round in 0..100 {
            for fd in 0..1000 {
                if let Some(v) = t.remove(&key(fd as u32 % 10, fd)) {
                    t.insert(key(fd as u32 % 10, fd), v);
                }
            }
            // Short-lived connections of short-lived processes.
            t.insert(key(10_000 + round, 0), true);
            t.remove(&key(10_000 + round, 0));
        }
        let entries = t.by_age[0].len() + t.by_age[1].len() + t.indexed;
        assert!(entries <= 4 * t.len() + COMPACT_SLACK, "{entries}");
        assert!(t.by_pid.len() <= 10 + COMPACT_SLACK, "{}", t.by_pid.len());
        for pid in 0..10 {
            for k in t.keys_of(pid, |_, _| true) {
                t.remove(&k);
            }
            t.forget_pid(pid);
        }
        assert!(t.is_empty());
    }
}
