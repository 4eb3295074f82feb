//! The connections the pipeline keeps state for, by [`ConnKey`], within a bound.

use crate::source::ConnKey;

/// Most connections tracked at once; beyond it the stalest is dropped.
pub const MAX_CONNS: usize = 65536;

/// Connection states by key, hashed with foldhash (randomly seeded per process), as the
/// streams of each connection.
pub struct ConnTable<V> {
    map: foldhash::HashMap<ConnKey, V>,
}

impl<V> Default for ConnTable<V> {
    fn default() -> Self {
        ConnTable {
            map: Default::default(),
        }
    }
}

impl<V> ConnTable<V> {
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
        self.map.get(key)
    }

    pub fn get_mut(&mut self, key: &ConnKey) -> Option<&mut V> {
        self.map.get_mut(key)
    }

    /// Takes a connection's state out (the pipeline works on it, then puts it back).
    pub fn remove(&mut self, key: &ConnKey) -> Option<V> {
        self.map.remove(key)
    }

    pub fn insert(&mut self, key: ConnKey, value: V) {
        self.map.insert(key, value);
    }

    /// The keys of connections whose state satisfies `pick`.
    pub fn keys_where(&self, pick: impl Fn(&ConnKey, &V) -> bool) -> Vec<ConnKey> {
        self.map
            .iter()
            .filter(|(k, v)| pick(k, v))
            .map(|(k, _)| *k)
            .collect()
    }

    /// Makes room for one more connection: at the bound, states that hold nothing worth
    /// reporting (`idle`) are dropped first; if that is not enough, returns the key of a
    /// connection the caller must end (and remove).
    pub fn make_room(&mut self, idle: impl Fn(&V) -> bool) -> Option<ConnKey> {
        if self.map.len() < MAX_CONNS {
            return None;
        }
        self.map.retain(|_, v| !idle(v));
        if self.map.len() < MAX_CONNS {
            return None;
        }
        self.map.keys().next().copied()
    }
}
