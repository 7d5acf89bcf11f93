//! Sliding windows over recent outcomes, for the rate policies.

use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use crate::Instant;
use crate::clock::duration_to_nanos;

use super::WindowStats;

/// Which recent calls a rate policy looks at.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::SlidingWindow;
///
/// let last_100_calls = SlidingWindow::Count(100);
/// let last_minute = SlidingWindow::Time { duration: Duration::from_secs(60), buckets: 12 };
/// # let _ = (last_100_calls, last_minute);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlidingWindow {
    /// The last `n` calls.
    Count(u32),
    /// The calls that finished in the last `duration`, kept in `buckets`
    /// buckets of `duration / buckets` each: the window slides one bucket at
    /// a time, so it covers between `duration - duration / buckets` and
    /// `duration` of history. The bucket width is rounded down to whole
    /// nanoseconds (at least 1), and a `duration` beyond `u64::MAX`
    /// nanoseconds (about 584 years) counts as that much.
    Time {
        /// How far back the window reaches.
        duration: Duration,
        /// How many buckets it is divided into.
        buckets: u32,
    },
}

/// Outcome flags in a count window's ring.
const FAILURE: u8 = 1;
const SLOW: u8 = 2;

#[derive(Debug)]
pub(crate) enum Window {
    Count {
        ring: Vec<u8>,
        next: usize,
        len: usize,
        failures: u32,
        slow: u32,
    },
    Time {
        width_nanos: u64,
        buckets: Vec<Bucket>,
    },
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Bucket {
    /// Which bucket-width slice of time (`now / width`) this bucket holds.
    epoch: u64,
    calls: u32,
    failures: u32,
    slow: u32,
}

impl Window {
    /// An empty window; `spec` was validated by the builder.
    pub(crate) fn new(spec: SlidingWindow) -> Window {
        match spec {
            SlidingWindow::Count(n) => Window::Count {
                ring: vec![0; n as usize],
                next: 0,
                len: 0,
                failures: 0,
                slow: 0,
            },
            SlidingWindow::Time { duration, buckets } => Window::Time {
                width_nanos: (duration_to_nanos(duration) / u64::from(buckets)).max(1),
                buckets: vec![Bucket::default(); buckets as usize],
            },
        }
    }

    /// Whether recording needs the time of the call's end.
    pub(crate) fn needs_time(&self) -> bool {
        matches!(self, Window::Time { .. })
    }

    pub(crate) fn clear(&mut self) {
        match self {
            Window::Count {
                ring,
                next,
                len,
                failures,
                slow,
            } => {
                ring.fill(0);
                *next = 0;
                *len = 0;
                *failures = 0;
                *slow = 0;
            }
            Window::Time { buckets, .. } => buckets.fill(Bucket::default()),
        }
    }

    /// Records one outcome that finished at `now` (ignored by count windows).
    pub(crate) fn record(&mut self, now: Instant, failure: bool, slow: bool) {
        match self {
            Window::Count {
                ring,
                next,
                len,
                failures,
                slow: slow_total,
            } => {
                let evicted = ring[*next];
                if *len == ring.len() {
                    *failures -= u32::from(evicted & FAILURE != 0);
                    *slow_total -= u32::from(evicted & SLOW != 0);
                } else {
                    *len += 1;
                }
                let flags = if failure { FAILURE } else { 0 } | if slow { SLOW } else { 0 };
                ring[*next] = flags;
                *failures += u32::from(failure);
                *slow_total += u32::from(slow);
                *next = (*next + 1) % ring.len();
            }
            Window::Time {
                width_nanos,
                buckets,
            } => {
                let epoch = now.as_nanos() / *width_nanos;
                let n = buckets.len() as u64;
                let bucket = &mut buckets[(epoch % n) as usize];
                if bucket.epoch != epoch {
                    *bucket = Bucket {
                        epoch,
                        ..Bucket::default()
                    };
                }
                // Saturating: past u32::MAX calls in one slice, `calls`
                // saturates no later than the counts within it, so a rate
                // can only read high (trip early), never low.
                bucket.calls = bucket.calls.saturating_add(1);
                bucket.failures = bucket.failures.saturating_add(u32::from(failure));
                bucket.slow = bucket.slow.saturating_add(u32::from(slow));
            }
        }
    }

    /// The calls still inside the window at `now` (ignored by count windows).
    pub(crate) fn totals(&self, now: Instant) -> WindowStats {
        match self {
            Window::Count {
                len,
                failures,
                slow,
                ..
            } => WindowStats {
                calls: *len as u32,
                failures: *failures,
                slow_calls: *slow,
            },
            Window::Time {
                width_nanos,
                buckets,
            } => {
                let current = now.as_nanos() / *width_nanos;
                let n = buckets.len() as u64;
                let mut totals = WindowStats {
                    calls: 0,
                    failures: 0,
                    slow_calls: 0,
                };
                // A bucket counts if its slice is one of the last `n`,
                // the current one included. Slices from the future cannot
                // exist: the clock is monotonic.
                for b in buckets
                    .iter()
                    .filter(|b| b.calls > 0 && b.epoch <= current && current - b.epoch < n)
                {
                    totals.calls = totals.calls.saturating_add(b.calls);
                    totals.failures = totals.failures.saturating_add(b.failures);
                    totals.slow_calls = totals.slow_calls.saturating_add(b.slow);
                }
                totals
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn count_window_keeps_the_last_n() {
        let mut w = Window::new(SlidingWindow::Count(4));
        for failure in [true, true, false, false] {
            w.record(Instant::ZERO, failure, false);
        }
        let t = w.totals(Instant::ZERO);
        assert_eq!((t.calls, t.failures, t.slow_calls), (4, 2, 0));
        // Two more successes push both failures out.
        w.record(Instant::ZERO, false, true);
        w.record(Instant::ZERO, false, false);
        let t = w.totals(Instant::ZERO);
        assert_eq!((t.calls, t.failures, t.slow_calls), (4, 0, 1));
        assert_eq!(t.slow_call_rate(), 25.0);
        w.clear();
        assert_eq!(w.totals(Instant::ZERO).calls, 0);
    }

    #[test]
    fn time_window_forgets_old_buckets() {
        // 1 s in 4 buckets of 250 ms.
        let mut w = Window::new(SlidingWindow::Time {
            duration: Duration::from_secs(1),
            buckets: 4,
        });
        w.record(at(0), true, false); // slice 0
        w.record(at(100), false, false); // slice 0
        w.record(at(600), true, true); // slice 2
        let t = w.totals(at(999)); // slices 0..=3
        assert_eq!((t.calls, t.failures, t.slow_calls), (3, 2, 1));
        let t = w.totals(at(1_000)); // slices 1..=4: slice 0 is out
        assert_eq!((t.calls, t.failures, t.slow_calls), (1, 1, 1));
        // Slice 4 reuses slice 0's bucket.
        w.record(at(1_100), false, false);
        let t = w.totals(at(1_100));
        assert_eq!((t.calls, t.failures), (2, 1));
        let t = w.totals(at(1_750)); // slices 4..=7: only the new call
        assert_eq!((t.calls, t.failures), (1, 0));
        assert_eq!(w.totals(at(10_000)).calls, 0);
    }
}
