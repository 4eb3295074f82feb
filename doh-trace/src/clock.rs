//! Kernel timestamps (CLOCK_MONOTONIC, as `bpf_ktime_get_ns` gives) to wall-clock time.

use std::{
    cell::Cell,
    fmt,
    ops::Deref,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Serialize, Serializer};

/// RFC 3339 text of a record's time. The `YYYY-MM-DDTHH:MM:SS.ffffffZ` form every time up to
/// the year 9999 takes is held inline, so a record's time costs no allocation.
#[derive(Clone)]
pub struct Rfc3339(Repr);

#[derive(Clone)]
enum Repr {
    /// 27 octets of ASCII digits and `-:.TZ`: only [`Clock::rfc3339`] makes these.
    Inline([u8; 27]),
    /// Any other text (years past 9999, tests).
    Text(Box<str>),
}

impl Rfc3339 {
    /// The inline form's octets: ASCII digits and `-:.TZ`, nothing JSON would escape.
    pub fn inline(&self) -> Option<&[u8; 27]> {
        match &self.0 {
            Repr::Inline(text) => Some(text),
            Repr::Text(_) => None,
        }
    }
}

impl Deref for Rfc3339 {
    type Target = str;

    fn deref(&self) -> &str {
        match &self.0 {
            // Only ever ASCII (see `Clock::rfc3339`), so never the empty fallback.
            Repr::Inline(text) => std::str::from_utf8(text).unwrap_or_default(),
            Repr::Text(text) => text,
        }
    }
}

impl Default for Rfc3339 {
    fn default() -> Self {
        Rfc3339(Repr::Text(Box::default()))
    }
}

impl From<&str> for Rfc3339 {
    fn from(text: &str) -> Self {
        Rfc3339(Repr::Text(text.into()))
    }
}

impl PartialEq for Rfc3339 {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self)
    }
}

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

    /// RFC 3339 text (UTC, microseconds) of a kernel timestamp. The date and time of day are
    /// formatted once per second (per thread) and reused; only the microseconds change.
    pub fn rfc3339(&self, ts_ns: u64) -> Rfc3339 {
        thread_local! {
            /// The whole second last formatted, and its `YYYY-MM-DDTHH:MM:SS`.
            static SECOND: Cell<Option<(u64, [u8; 19])>> = const { Cell::new(None) };
        }
        let since_epoch = self
            .wall(ts_ns)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let secs = since_epoch.as_secs();
        let prefix = match SECOND.get() {
            Some((s, prefix)) if s == secs => prefix,
            _ => {
                let text =
                    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs))
                        .to_string();
                let mut prefix = [0u8; 19];
                match text.as_bytes().get(..19) {
                    Some(date_time) => prefix.copy_from_slice(date_time),
                    // Years past 9999: not worth a cache.
                    None => {
                        let text = humantime::format_rfc3339_micros(self.wall(ts_ns)).to_string();
                        return Rfc3339(Repr::Text(text.into()));
                    }
                }
                SECOND.set(Some((secs, prefix)));
                prefix
            }
        };
        let mut text = [0u8; 27];
        text[..19].copy_from_slice(&prefix);
        text[19] = b'.';
        let mut micros = since_epoch.subsec_micros();
        for digit in text[20..26].iter_mut().rev() {
            *digit = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        text[26] = b'Z';
        Rfc3339(Repr::Inline(text))
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
    fn formats_like_humantime_across_seconds() {
        let c = Clock::with_offset(1_700_000_000_000_000_000);
        for ts in [
            0,
            5,
            999_999_999,
            1_000_000_000,
            1_000_001_000,
            86_400_000_000_123,
            7,
        ] {
            let want = humantime::format_rfc3339_micros(c.wall(ts)).to_string();
            assert_eq!(&*c.rfc3339(ts), want);
        }
        let far = Clock::with_offset(300_000_000_000_000_000_000);
        let want = humantime::format_rfc3339_micros(far.wall(1)).to_string();
        assert_eq!(&*far.rfc3339(1), want);
    }

    #[test]
    fn formats_kernel_time_as_rfc3339() {
        let c = Clock::with_offset(1_700_000_000_000_000_000 - 5_000);
        assert_eq!(
            &*c.rfc3339(5_000 + 123_456_000),
            "2023-11-14T22:13:20.123456Z"
        );
    }
}
