//! Detaching probes off the event loop.
//!
//! Closing a probe's perf event makes the kernel wait for a grace period before it returns
//! (`tracepoint_synchronize_unregister`, under the kernel's `event_mutex`, so closes from
//! several threads still run one after the other): 40–130 ms per probe on CI's machine
//! (strace of the tracer's exit; 22 uprobes and 31 tracepoints took 5.0–5.4 s). Hooks released
//! while tracing (a Go binary's 17 uprobes: 1.4 s) are therefore closed on a thread of their
//! own, so that the event loop goes on reading the ring buffer meanwhile.

use std::thread::{self, JoinHandle};

/// A link to close (an aya `UProbeLink` or `TracePointLink`): dropping it detaches the probe.
pub type OwnedLink = Box<dyn Send>;

/// Links being closed in the background, waited for at exit so that "all probes detached" is
/// true when it is said.
#[derive(Default)]
pub struct Detacher {
    closing: Vec<JoinHandle<()>>,
}

impl Detacher {
    /// Starts closing `links` on a thread of their own; returns at once. Should no thread
    /// start, they are closed here.
    pub fn close_later(&mut self, links: Vec<OwnedLink>) {
        self.closing.retain(|h| !h.is_finished());
        if links.is_empty() {
            return;
        }
        if let Ok(h) = thread::Builder::new()
            .name("detach".into())
            .spawn(move || drop(links))
        {
            self.closing.push(h);
        }
    }

    /// Closes `links` and waits for every batch still closing in the background.
    pub fn close_all(&mut self, links: Vec<OwnedLink>) {
        drop(links);
        for h in self.closing.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{
        sync::{
            atomic::{AtomicUsize, Ordering},
            Arc,
        },
        time::Duration,
    };

    /// Counts its drops, each taking `wait` (as a perf event's close waits for the kernel).
    struct Slow {
        wait: Duration,
        dropped: Arc<AtomicUsize>,
    }

    impl Drop for Slow {
        fn drop(&mut self) {
            thread::sleep(self.wait);
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn slow(n: usize, wait: Duration, dropped: &Arc<AtomicUsize>) -> Vec<OwnedLink> {
        (0..n)
            .map(|_| {
                Box::new(Slow {
                    wait,
                    dropped: dropped.clone(),
                }) as OwnedLink
            })
            .collect()
    }

    #[test]
    fn close_all_closes_every_link_and_the_background_ones_before_returning() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let mut d = Detacher::default();
        d.close_later(slow(5, Duration::from_millis(50), &dropped));
        d.close_all(slow(10, Duration::from_millis(1), &dropped));
        assert_eq!(dropped.load(Ordering::SeqCst), 15);
        assert!(d.closing.is_empty());
    }

    #[test]
    fn close_later_returns_before_the_links_are_closed() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let mut d = Detacher::default();
        d.close_later(slow(3, Duration::from_millis(200), &dropped));
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            0,
            "closed on the caller's thread"
        );
        d.close_all(Vec::new());
        assert_eq!(dropped.load(Ordering::SeqCst), 3);
    }
}
