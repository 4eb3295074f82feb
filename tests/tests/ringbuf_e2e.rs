//! Privileged end to end: a full ring buffer. The tracer's reader is stalled (SIGSTOP) with a
//! small ring buffer while a real OpenSSL DoH client runs: the client must finish unslowed
//! (eBPF programs drop events instead of waiting), and the tracer must count and show the drops
//! once it runs again — live on a status line and in its exit summary — and keep decoding.

use std::time::{Duration, Instant};

use doh_trace_tests::{count, python_doh_client, require_e2e, run_client, Lab, Tracer};

const WAIT: Duration = Duration::from_secs(15);

/// The number in a `doh-trace: N events lost (ring buffer full)` line, if there is one.
fn events_lost(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("doh-trace: ")?;
    let rest = rest.strip_prefix("status: ").unwrap_or(rest);
    let (n, label) = rest.split_once(' ')?;
    label
        .starts_with("events lost (ring buffer full)")
        .then(|| n.parse().ok())
        .flatten()
}

#[test]
fn a_full_ring_buffer_drops_counted_events_and_never_blocks_the_traced_program() {
    require_e2e!();
    let lab = Lab::with_unbound().unwrap();
    // 32 KiB: room for a few lookups' events, not for a hundred.
    let mut tracer = Tracer::start(&["--ring-buffer", "32K"]).unwrap();

    // Baseline: the same client with the reader running, for comparison.
    let specs: Vec<String> = (0..100).map(|i| format!("n{i}.doh.test/A")).collect();
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    let started = Instant::now();
    let (_, status, _, _) = run_client(python_doh_client(&lab, &specs)).unwrap();
    let baseline = started.elapsed();
    assert!(status.success(), "baseline client failed");

    tracer.signal(libc::SIGSTOP);
    let started = Instant::now();
    let (stalled_pid, status, _, _) = run_client(python_doh_client(&lab, &specs)).unwrap();
    let stalled_for = started.elapsed();
    tracer.signal(libc::SIGCONT);
    assert!(
        status.success(),
        "the client failed while the tracer was stalled"
    );
    eprintln!(
        "100 DoH lookups took {baseline:?} with the tracer reading, {stalled_for:?} with its reader stopped"
    );
    // Only a hang detector: a program blocked on the full buffer would never finish.
    assert!(
        stalled_for < Duration::from_secs(60),
        "the traced client was held up while the ring buffer was full: {stalled_for:?}"
    );

    // The status line names the loss as soon as the reader runs again.
    assert!(
        tracer.wait_for_stderr(WAIT, "events lost (ring buffer full)"),
        "no live status line about lost events"
    );
    // Decoding goes on after the loss: a fresh client is reported in full.
    let (after_pid, status, _, _) = run_client(python_doh_client(
        &lab,
        &["after.doh.test/A", "after.doh.test/AAAA"],
    ))
    .unwrap();
    assert!(status.success());
    tracer.wait_for(WAIT, |seen| count(seen, after_pid) >= 2);

    let stderr = tracer.stop_cleanly(libc::SIGINT);
    let lost: Vec<u64> = stderr.iter().filter_map(|l| events_lost(l)).collect();
    assert!(
        lost.iter().any(|&n| n > 0),
        "events lost are counted and shown: {stderr:#?}"
    );
    assert_eq!(count(&tracer.seen, after_pid), 2, "{:#?}", tracer.seen);
    eprintln!(
        "stalled client: {} of 100 lookups still reported; lost-event lines: {lost:?}",
        count(&tracer.seen, stalled_pid)
    );
}
