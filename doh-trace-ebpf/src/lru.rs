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

/// Sets `key` to `value`, counting the entry if it is new: for keys that are usually new
/// (calls in progress, a new socket).
#[inline(always)]
pub fn set<K, V: Copy>(map: &LruHashMap<K, V>, which: LruMap, key: &K, value: &V) {
    if map.insert(key, value, BPF_NOEXIST as u64).is_ok() {
        count(which.created_slot());
    } else if let Some(old) = map.get_ptr_mut(key) {
        // In place: replacing an LRU element takes a new one from the free list.
        unsafe { *old = *value };
    }
}

/// Sets `key` to `value` for keys that are usually there already (a TLS object's socket, set
/// on every call): one lookup and a store then, a counted insert otherwise.
#[inline(always)]
pub fn update<K, V: Copy>(map: &LruHashMap<K, V>, which: LruMap, key: &K, value: &V) {
    match map.get_ptr_mut(key) {
        Some(old) => unsafe { *old = *value },
        None => {
            if map.insert(key, value, BPF_NOEXIST as u64).is_ok() {
                count(which.created_slot());
            }
        }
    }
}

/// Creates `key` with `value` unless it is there (a set-once marker), counting it.
#[inline(always)]
pub fn mark<K, V>(map: &LruHashMap<K, V>, which: LruMap, key: &K, value: &V) {
    if unsafe { map.get(key) }.is_none() && map.insert(key, value, BPF_NOEXIST as u64).is_ok() {
        count(which.created_slot());
    }
}

/// Removes `key` if a lookup finds it (for keys usually absent: a delete takes the bucket's
/// lock even when it finds nothing, a lookup does not), counting it.
#[inline(always)]
pub fn remove_if_there<K, V>(map: &LruHashMap<K, V>, which: LruMap, key: &K) {
    if unsafe { map.get(key) }.is_some() {
        remove(map, which, key);
    }
}

/// Removes `key`, counting it if it was there.
#[inline(always)]
pub fn remove<K, V>(map: &LruHashMap<K, V>, which: LruMap, key: &K) {
    if map.remove(key).is_ok() {
        count(which.removed_slot());
    }
}
