//! Kernel timestamps (CLOCK_MONOTONIC, as `bpf_ktime_get_ns` gives) to wall-clock time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Maps monotonic nanoseconds to wall-clock time using one offset sampled at start.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Unix-epoch nanoseconds minus monotonic nanoseconds.
    offset_ns: i128,
}

impl Clock {
    /// Samples both clocks now.
    pub fn now() -> Self {
        let mono = monotonic_ns();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        Clock {
            offset_ns: wall as i128 - mono as i128,
        }
    }

    /// A clock with a known offset (replays, tests).
    pub fn with_offset(offset_ns: i128) -> Self {
        Clock { offset_ns }
    }

    /// Unix-epoch nanoseconds minus monotonic nanoseconds.
    pub fn offset_ns(&self) -> i128 {
        self.offset_ns
    }

    /// Wall-clock time of a kernel timestamp.
    pub fn wall(&self, ts_ns: u64) -> SystemTime {
        let unix = (ts_ns as i128 + self.offset_ns).max(0) as u128;
        UNIX_EPOCH + Duration::from_nanos(unix.min(u64::MAX as u128) as u64)
    }

    /// RFC 3339 text (UTC, microseconds) of a kernel timestamp.
    pub fn rfc3339(&self, ts_ns: u64) -> String {
        humantime::format_rfc3339_micros(self.wall(ts_ns)).to_string()
    }
}

/// CLOCK_MONOTONIC now, in nanoseconds.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_kernel_time_as_rfc3339() {
        let c = Clock::with_offset(1_700_000_000_000_000_000 - 5_000);
        assert_eq!(
            c.rfc3339(5_000 + 123_456_000),
            "2023-11-14T22:13:20.123456Z"
        );
    }
}
