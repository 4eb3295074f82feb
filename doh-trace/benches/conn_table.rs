//! The connection table's per-event costs with many connections open (issue #23, item 10),
//! the old way and the new way side by side in one run, as ratios:
//!
//! - a process exit with 10,000 connections open: the keys of the exiting process found by a
//!   scan of the whole table (before) or from the per-pid index (now);
//! - a new connection at a full table (65,536): `retain` over every state and an arbitrary
//!   key (before) or the stalest key from the activity queues (now);
//! - the pipeline's whole `Exit` event with 10 and with 10,000 other connections open (now:
//!   the two should cost about the same).
//!
//! Run: `cargo bench -p doh-trace --bench conn_table` (prints figures; no pass/fail).

use std::{hint::black_box, time::Instant};

use doh_trace::{
    clock::Clock,
    conn::table::{ConnTable, MAX_CONNS},
    pipeline::Pipeline,
    process::NoProcessInfo,
    source::{ConnId, ConnInfo, ConnKey, Event, Layer, Meta, SocketType},
};
use doh_trace_common::COMM_LEN;

fn key(pid: u32, fd: i32) -> ConnKey {
    ConnKey {
        pid,
        id: ConnId::Fd(fd),
        layer: Layer::Socket,
    }
}

/// Median of `runs` timings of `f`, in nanoseconds per call of `per_run` calls.
fn median_ns(runs: usize, per_run: usize, mut f: impl FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos() as f64 / per_run as f64
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn exit_lookup() {
    // 10,000 connections of 1,000 processes.
    let mut t: ConnTable<u64> = ConnTable::new(|_| false, |_| 0);
    for fd in 0..10_000 {
        t.insert(key(fd as u32 % 1000, fd), 0);
    }
    let pids = 1000;
    let scan = median_ns(15, pids, || {
        for pid in 0..pids as u32 {
            black_box(t.keys_where(|k, _| k.pid == pid));
        }
    });
    let index = median_ns(15, pids, || {
        for pid in 0..pids as u32 {
            black_box(t.keys_of(pid, |_, _| true));
        }
    });
    println!(
        "exit, 10,000 connections open: scan {scan:.0} ns, index {index:.0} ns per exit \
         ({:.0}× less)",
        scan / index
    );
}

fn full_table() {
    let n = MAX_CONNS as i32;
    // Before: a plain map, `retain` of idle states (none here), then any key.
    let mut old: foldhash::HashMap<ConnKey, u64> = Default::default();
    let mut new: ConnTable<u64> = ConnTable::new(|_| false, |_| 0);
    for fd in 0..n {
        old.insert(key(1, fd), 0);
        new.insert(key(1, fd), 0);
    }
    let rounds = 200;
    let mut next = n;
    let before = median_ns(9, rounds, || {
        for _ in 0..rounds {
            old.retain(|_, v| black_box(*v) != 1);
            let victim = *old.keys().next().expect("full");
            old.remove(&victim);
            old.insert(key(1, next), 0);
            next += 1;
        }
    });
    let now = median_ns(9, rounds, || {
        for _ in 0..rounds {
            let victim = new.make_room().expect("full");
            new.remove(&victim);
            new.insert(key(1, next), 0);
            next += 1;
        }
    });
    println!(
        "new connection at a full table (65,536): retain {before:.0} ns, queue {now:.0} ns \
         ({:.0}× less)",
        before / now
    );
}

fn pipeline_exit(others: u32) -> f64 {
    let mut p = Pipeline::new(Box::new(NoProcessInfo), Clock::with_offset(0));
    let meta = |pid, ts| Meta {
        pid,
        tid: pid,
        uid: 0,
        ts_ns: ts,
    };
    let open = |p: &mut Pipeline, pid, fd, ts| {
        p.handle_event(Event::Conn(ConnInfo {
            meta: meta(pid, ts),
            id: ConnId::Fd(fd),
            accepted: false,
            sock_type: SocketType::Stream,
            peer: "192.0.2.1:443".parse().expect("address"),
            comm: [b'x'; COMM_LEN],
        }));
    };
    for i in 0..others {
        open(&mut p, 100_000 + i, 3, 1_000);
    }
    let exits = 1000;
    let mut pid = 1;
    median_ns(15, exits, || {
        for _ in 0..exits {
            open(&mut p, pid, 3, 2_000);
            p.handle_event(Event::Exit {
                meta: meta(pid, 2_001),
            });
            pid += 1;
        }
    })
}

fn main() {
    exit_lookup();
    full_table();
    let few = pipeline_exit(10);
    let many = pipeline_exit(10_000);
    println!(
        "pipeline open+exit of a process: {few:.0} ns with 10 others open, {many:.0} ns with \
         10,000 ({:.2}×)",
        many / few
    );
}
