//! Removing the LRU maps' entries of processes that are gone, on a thread of its own.
//!
//! A process that exits with sockets or TLS objects open leaves their entries behind (the
//! kernel closes its files without a `close` call), and an LRU map only evicts them once it is
//! full — counted then as evictions, though nothing alive lost state. So when a map's entries
//! (created − removed, from its `STATS` slots) pass half its capacity, the event loop asks this
//! thread to sweep it: list its keys (at most its capacity), and remove each whose process no
//! longer exists. What it removes is counted, so created − removed stays the map's size and a
//! count of evictions means live state went.
//!
//! The thread has its own descriptor of each map (a duplicate of the loader's), so the event
//! loop never waits for a sweep.

use std::{
    collections::HashMap,
    os::fd::AsFd as _,
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc, Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{anyhow, Context as _, Result};
use aya::{
    maps::{HashMap as BpfHashMap, Map, MapData},
    Ebpf, Pod,
};
use doh_trace_common::{
    Capture, LruMap, PendingSockCall, SockIo, TlsCall, TlsObjKey, LRU_MAP_COUNT,
};

/// A map is swept when its entries pass this share of its capacity…
const SWEEP_AT_PERCENT: u64 = 50;
/// …and not more often than this.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Entries the sweeps removed, per map (indexed by [`LruMap`]).
pub type Removed = [AtomicU64; LRU_MAP_COUNT as usize];

/// The sweeping thread and what it has removed.
pub struct MapSweep {
    requests: Option<mpsc::Sender<LruMap>>,
    thread: Option<JoinHandle<()>>,
    removed: Arc<Removed>,
    last: [Option<Instant>; LRU_MAP_COUNT as usize],
}

impl MapSweep {
    /// Starts the thread with duplicates of `ebpf`'s LRU maps.
    pub fn start(ebpf: &Ebpf) -> Result<MapSweep> {
        let mut maps = Vec::with_capacity(LRU_MAP_COUNT as usize);
        for which in LruMap::ALL {
            let map = ebpf
                .map(which.name())
                .ok_or_else(|| anyhow!("map {} missing from the eBPF object", which.name()))?;
            let Map::LruHashMap(data) = map else {
                return Err(anyhow!("map {} is not an LRU hash map", which.name()));
            };
            let fd = data
                .fd()
                .as_fd()
                .try_clone_to_owned()
                .with_context(|| format!("duplicating map {}", which.name()))?;
            maps.push((which, Map::LruHashMap(MapData::from_fd(fd)?)));
        }
        let removed: Arc<Removed> = Arc::new(Default::default());
        let (requests, asked) = mpsc::channel::<LruMap>();
        let counts = Arc::clone(&removed);
        let thread = std::thread::Builder::new()
            .name("map-sweep".into())
            .spawn(move || {
                let mut maps = maps;
                while let Ok(which) = asked.recv() {
                    if let Some((_, map)) = maps.iter_mut().find(|(w, _)| *w == which) {
                        let n = sweep(which, map, process_exists);
                        counts[which as usize].fetch_add(n, Ordering::Relaxed);
                    }
                }
            })
            .context("starting the map sweeper")?;
        Ok(MapSweep {
            requests: Some(requests),
            thread: Some(thread),
            removed,
            last: [None; LRU_MAP_COUNT as usize],
        })
    }

    /// Entries the sweeps removed from `which` so far.
    pub fn removed(&self, which: LruMap) -> u64 {
        self.removed[which as usize].load(Ordering::Relaxed)
    }

    /// Asks for a sweep of each map whose `entries` passed [`SWEEP_AT_PERCENT`] of its
    /// capacity, at most once per [`SWEEP_EVERY`].
    pub fn maybe_sweep(&mut self, entries: impl Fn(LruMap) -> u64, now: Instant) {
        for which in LruMap::ALL {
            if entries(which) * 100 < u64::from(which.capacity()) * SWEEP_AT_PERCENT {
                continue;
            }
            let last = &mut self.last[which as usize];
            if last.is_some_and(|t| now.duration_since(t) < SWEEP_EVERY) {
                continue;
            }
            *last = Some(now);
            if let Some(tx) = &self.requests {
                let _ = tx.send(which);
            }
        }
    }
}

impl Drop for MapSweep {
    fn drop(&mut self) {
        // Closing the channel ends the thread after the sweep it may be in.
        self.requests = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether process `tgid` exists (a process we may not signal exists too).
fn process_exists(tgid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(tgid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let signalled = unsafe { libc::kill(pid, 0) } == 0;
    signalled || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Sweeps one map with the key and value types its eBPF definition has; returns how many
/// entries were removed.
fn sweep(which: LruMap, map: &mut Map, exists: fn(u32) -> bool) -> u64 {
    let limit = which.capacity() as usize;
    match which {
        LruMap::SocketsOpening | LruMap::SockTypes => typed::<u64, u32>(map, limit, exists),
        LruMap::TlsCalls => typed::<u64, TlsCall>(map, limit, exists),
        LruMap::GoCalls => typed::<TlsObjKey, TlsCall>(map, limit, exists),
        LruMap::GoTgids | LruMap::TrackedTgids => typed::<u32, u8>(map, limit, exists),
        LruMap::GnutlsCorked => typed::<TlsObjKey, u8>(map, limit, exists),
        LruMap::TlsFds => typed::<TlsObjKey, i32>(map, limit, exists),
        LruMap::SockCalls => typed::<u64, PendingSockCall>(map, limit, exists),
        LruMap::TrackedFds => typed::<u64, u8>(map, limit, exists),
        LruMap::Capture => typed::<u64, Capture>(map, limit, exists),
        LruMap::SockIo => typed::<u64, SockIo>(map, limit, exists),
    }
}

/// A key type of the LRU maps: the process its entry belongs to.
trait OwnedByProcess: Pod {
    fn tgid(&self) -> u32;
}

/// A pid_tgid, or tgid << 32 | fd.
impl OwnedByProcess for u64 {
    fn tgid(&self) -> u32 {
        (*self >> 32) as u32
    }
}

impl OwnedByProcess for u32 {
    fn tgid(&self) -> u32 {
        *self
    }
}

impl OwnedByProcess for TlsObjKey {
    fn tgid(&self) -> u32 {
        self.tgid
    }
}

/// Removes the entries (at most `limit` looked at) whose process `exists` says is gone.
fn typed<K: OwnedByProcess, V: Pod>(map: &mut Map, limit: usize, exists: fn(u32) -> bool) -> u64 {
    let Ok(mut map) = BpfHashMap::<&mut MapData, K, V>::try_from(map) else {
        return 0;
    };
    // Keys first, removals after: removing the key a walk stands on restarts the walk.
    let keys: Vec<K> = map.keys().take(limit).filter_map(Result::ok).collect();
    let mut known: HashMap<u32, bool> = HashMap::new();
    let mut removed = 0;
    for key in keys {
        let tgid = key.tgid();
        let alive = *known.entry(tgid).or_insert_with(|| exists(tgid));
        if !alive && map.remove(&key).is_ok() {
            removed += 1;
        }
    }
    removed
}
