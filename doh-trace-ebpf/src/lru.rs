//! Counted inserts and removes on the LRU maps: each entry a map creates or removes is counted
//! in its two `STATS` slots ([`LruMap`]), so userspace can tell how many a full map evicted.

use aya_ebpf::{bindings::BPF_NOEXIST, maps::LruHashMap};
use doh_trace_common::LruMap;

use crate::maps::STATS;

/// Adds one to a `STATS` slot.
#[inline(always)]
fn count(slot: u32) {
    if let Some(n) = STATS.get_ptr_mut(slot) {
        unsafe { *n += 1 };
    }
}

/// Sets `key` to `value`, counting the entry if it is new.
#[inline(always)]
pub fn set<K, V>(map: &LruHashMap<K, V>, which: LruMap, key: &K, value: &V) {
    if map.insert(key, value, BPF_NOEXIST as u64).is_ok() {
        count(which.created_slot());
    } else {
        let _ = map.insert(key, value, 0);
    }
}

/// Creates `key` with `value` unless it is there (a set-once marker), counting it.
#[inline(always)]
pub fn mark<K, V>(map: &LruHashMap<K, V>, which: LruMap, key: &K, value: &V) {
    if unsafe { map.get(key) }.is_none() && map.insert(key, value, BPF_NOEXIST as u64).is_ok() {
        count(which.created_slot());
    }
}

/// Removes `key`, counting it if it was there.
#[inline(always)]
pub fn remove<K, V>(map: &LruHashMap<K, V>, which: LruMap, key: &K) {
    if map.remove(key).is_ok() {
        count(which.removed_slot());
    }
}
