//! The timer that reads the ring buffer while records flow, so that most records need not wake
//! the tracer.
//!
//! A wakeup per record cost the tracer more CPU than decoding the record. So while the timer
//! runs, the eBPF side (`Wake` in `doh-trace-ebpf/src/emit.rs`) submits the bytes of connections
//! already classified without a wakeup, and the timer reads them every [`DRAIN_EVERY`]; records
//! that make the tracer read /proc or attach hooks still wake it at once. After
//! [`IDLE_READS`] empty reads in a row the timer stops and the eBPF side is told so: every
//! record wakes the tracer again, and an idle tracer is not woken at all.

use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};

/// How often the ring buffer is read while records flow: a lookup is shown at most this much
/// later than with a wakeup per record.
pub const DRAIN_EVERY: Duration = Duration::from_millis(10);

/// Empty timed reads in a row after which the timer stops.
pub const IDLE_READS: u32 = 3;

/// The drain timer, stopped while the tracer is idle.
#[derive(Default)]
pub struct DrainTimer {
    timer: Option<Interval>,
    /// Empty timed reads since the last one that found records.
    empty: u32,
}

impl DrainTimer {
    /// The next tick; never, while the timer is stopped.
    pub async fn tick(&mut self) {
        match &mut self.timer {
            Some(timer) => {
                timer.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    /// After a read of the ring that handled `records` (`timed`: the read was this timer's):
    /// starts the timer when records flow, stops it after [`IDLE_READS`] empty timed reads,
    /// and tells the eBPF side through `tell` (`Tracer::set_draining`). Returns true when it
    /// stopped: the ring must be read once more, for records submitted without a wakeup before
    /// the eBPF side saw the timer stop.
    pub fn after_read(
        &mut self,
        records: usize,
        timed: bool,
        mut tell: impl FnMut(bool) -> Result<()>,
    ) -> Result<bool> {
        if records > 0 {
            self.empty = 0;
            if self.timer.is_none() {
                let mut timer = interval_at(Instant::now() + DRAIN_EVERY, DRAIN_EVERY);
                timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
                self.timer = Some(timer);
                tell(true).context("starting the ring-buffer timer")?;
            }
            return Ok(false);
        }
        if !timed || self.timer.is_none() {
            return Ok(false);
        }
        self.empty += 1;
        if self.empty < IDLE_READS {
            return Ok(false);
        }
        tell(false).context("stopping the ring-buffer timer")?;
        self.timer = None;
        self.empty = 0;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `reads` (records, timed) through a timer; returns what it told the eBPF side and
    /// which reads asked for one more.
    fn run(timer: &mut DrainTimer, reads: &[(usize, bool)]) -> (Vec<bool>, Vec<bool>) {
        let mut told = Vec::new();
        let again = reads
            .iter()
            .map(|&(records, timed)| {
                timer
                    .after_read(records, timed, |on| {
                        told.push(on);
                        Ok(())
                    })
                    .unwrap()
            })
            .collect();
        (told, again)
    }

    #[tokio::test(start_paused = true)]
    async fn starts_when_records_flow_and_stops_after_empty_timed_reads() {
        let mut timer = DrainTimer::default();
        let (told, again) = run(&mut timer, &[(0, false), (5, false), (2, true), (0, true)]);
        assert_eq!(told, [true], "started once, by the first records");
        assert_eq!(again, [false; 4]);
        // Empty wakeups do not count; a read with records starts the count again.
        let (told, _) = run(&mut timer, &[(0, false), (0, true), (1, true), (0, true)]);
        assert!(told.is_empty());
        let (told, again) = run(&mut timer, &[(0, true), (0, true)]);
        assert_eq!(
            told,
            [false],
            "stopped after three empty timed reads in a row"
        );
        assert_eq!(
            again,
            [false, true],
            "the ring is read once more as it stops"
        );
        assert!(timer.timer.is_none());
        // Stopped: an empty read changes nothing, records start it again.
        let (told, _) = run(&mut timer, &[(0, true), (0, false), (3, false)]);
        assert_eq!(told, [true]);
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_every_drain_every_while_running_and_never_while_stopped() {
        let mut timer = DrainTimer::default();
        let stopped = tokio::time::timeout(Duration::from_secs(3600), timer.tick()).await;
        assert!(stopped.is_err(), "no tick while stopped");
        run(&mut timer, &[(1, false)]);
        let start = Instant::now();
        timer.tick().await;
        timer.tick().await;
        assert_eq!(start.elapsed(), 2 * DRAIN_EVERY);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_to_tell_the_kernel_is_an_error() {
        let mut timer = DrainTimer::default();
        let err = timer
            .after_read(1, false, |_| Err(anyhow::anyhow!("map gone")))
            .unwrap_err();
        assert!(format!("{err:#}").contains("map gone"), "{err:#}");
    }
}
