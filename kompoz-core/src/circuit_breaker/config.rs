//! Building a breaker: [`BreakerBuilder`], and the validated configuration.

use alloc::boxed::Box;
use core::fmt;
use core::time::Duration;

use crate::clock::duration_to_nanos;
use crate::{Clock, ConfigError};

use super::state::COUNTER_MAX;
use super::{Breaker, BreakerEvent, CircuitBreakerStats, CircuitState, SlidingWindow};

pub(crate) type StateChangeFn =
    dyn Fn(CircuitState, CircuitState, &CircuitBreakerStats) + Send + Sync;
pub(crate) type EventFn = dyn Fn(&BreakerEvent) + Send + Sync;

/// The reference's default `failure_threshold`.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
/// The reference's default `recovery_timeout`: 30 seconds.
pub const DEFAULT_RECOVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// The reference's default `half_open_max_calls`.
pub const DEFAULT_HALF_OPEN_MAX_CALLS: u32 = 1;
/// The sliding window a rate policy uses unless told otherwise: the last 100 calls.
pub const DEFAULT_SLIDING_WINDOW: SlidingWindow = SlidingWindow::Count(100);
/// The fewest calls a window must hold before its rates can trip the
/// breaker, unless told otherwise (capped at a count window's size).
pub const DEFAULT_MINIMUM_CALLS: u32 = 100;

const MAX_COUNT_WINDOW: u32 = 1_000_000;
const MAX_BUCKETS: u32 = 100_000;

/// Configures a shared [`Breaker`]; [`build`](BreakerBuilder::build)
/// validates everything at once.
///
/// The same methods exist on [`CircuitBreakerBuilder`](super::CircuitBreakerBuilder),
/// which builds a breaker together with the one combinator it guards.
/// Defaults are the reference's: 5 consecutive failures open the circuit,
/// 30 s later one probe is let through.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::{ClockExt, ManualClock, SlidingWindow};
///
/// let breaker = ManualClock::new().shared_breaker()
///     .failure_rate(50.0)
///     .sliding_window(SlidingWindow::Count(20))
///     .minimum_calls(10)
///     .recovery_timeout(Duration::from_secs(5))
///     .backoff(2.0, Duration::from_secs(300))
///     .build()?;
/// # let _ = breaker;
///
/// let err = ManualClock::new().shared_breaker().failure_rate(120.0).build().unwrap_err();
/// assert_eq!(err.to_string(), "invalid `failure_rate`: 120.0 (expected a percentage in (0, 100])");
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
#[must_use = "a builder does nothing until `.build()?` makes the `Breaker`"]
pub struct BreakerBuilder<K> {
    clock: K,
    failure_threshold: Option<u32>,
    recovery_timeout: Duration,
    half_open_max_calls: u32,
    failure_rate: Option<f64>,
    slow_calls: Option<(Duration, f64)>,
    window: Option<SlidingWindow>,
    minimum_calls: Option<u32>,
    backoff: Option<(f64, Duration)>,
    jitter: f64,
    jitter_seed: Option<u64>,
    exact_success_time: bool,
    exact_failure_time: bool,
    count_successes: bool,
    on_state_change: Option<Box<StateChangeFn>>,
    on_event: Option<Box<EventFn>>,
}

impl<K> BreakerBuilder<K> {
    pub(crate) fn new(clock: K) -> Self {
        BreakerBuilder {
            clock,
            failure_threshold: None,
            recovery_timeout: DEFAULT_RECOVERY_TIMEOUT,
            half_open_max_calls: DEFAULT_HALF_OPEN_MAX_CALLS,
            failure_rate: None,
            slow_calls: None,
            window: None,
            minimum_calls: None,
            backoff: None,
            jitter: 0.0,
            jitter_seed: None,
            exact_success_time: false,
            exact_failure_time: false,
            count_successes: true,
            on_state_change: None,
            on_event: None,
        }
    }

    /// Opens the circuit after this many failures in a row while CLOSED; a
    /// success resets the count. Default 5, valid 1 to 65535.
    ///
    /// This is the default policy. With [`failure_rate`](Self::failure_rate)
    /// it is off unless set explicitly, and then both apply.
    pub fn failure_threshold(mut self, failures: u32) -> Self {
        self.failure_threshold = Some(failures);
        self
    }

    /// How long the circuit stays OPEN before the next call is let through as
    /// a probe. Default 30 s; must be greater than zero. With
    /// [`backoff`](Self::backoff) this is the first open period.
    ///
    /// Durations here and in the other settings are kept in whole
    /// nanoseconds of the clock, up to `u64::MAX` (about 584 years); a longer
    /// one counts as that much. A circuit opened for that long, or until past
    /// the clock's last instant, stays open for as long as the clock runs.
    pub fn recovery_timeout(mut self, timeout: Duration) -> Self {
        self.recovery_timeout = timeout;
        self
    }

    /// How many probes may run at once in HALF_OPEN, and how many must
    /// succeed to close the circuit. Default 1, valid 1 to 65535.
    pub fn half_open_max_calls(mut self, calls: u32) -> Self {
        self.half_open_max_calls = calls;
        self
    }

    /// Called once per state transition with the old state, the new one and
    /// a [`stats`](Breaker::stats) snapshot taken when the callback is called
    /// (after the change; under concurrent calls, later changes may show).
    ///
    /// It runs after the transition is in place, with no internal lock held
    /// (so it may call `state()`, `stats()`, even `reset()`), on the task
    /// that caused the transition or, when another task is delivering
    /// state changes at that moment, on that one. Calls never overlap and
    /// come in the order the transitions happened: a `reset()` from inside
    /// the callback is reported after the transition being reported.
    ///
    /// A panicking callback does not wedge the breaker: the transition
    /// stands, a probe slot taken for the call is given back, the other
    /// notifications are still delivered, then the panic resumes on the
    /// caller. If the call was already unwinding from another panic (its
    /// inner combinator panicked), the callback's panic is dropped and the
    /// first one goes on. Without `std` (no way to catch a panic) the
    /// notifications left are delivered by the next one that comes.
    pub fn on_state_change<F>(mut self, callback: F) -> Self
    where
        F: Fn(CircuitState, CircuitState, &CircuitBreakerStats) + Send + Sync + 'static,
    {
        self.on_state_change = Some(Box::new(callback));
        self
    }

    /// Subscribes to every [`BreakerEvent`]: outcomes, slow calls,
    /// rejections and state changes. Without a subscriber no event is built.
    ///
    /// `StateChange` events are delivered with
    /// [`on_state_change`](Self::on_state_change) (never overlapping, in the
    /// order the transitions happened). A call's own events — its outcome,
    /// a slow call, a rejection — are delivered by the task that made the
    /// call, after the outcome is recorded and before the state change it
    /// caused is reported from that task; calls on other tasks may deliver
    /// theirs at the same time, so the subscriber must be `Sync` (it is) and
    /// may see events of concurrent calls interleaved. A panicking
    /// subscriber is resumed on the caller after the rest are delivered.
    /// Nothing is queued per call, so a slow subscriber slows only the calls
    /// whose events it is handling.
    pub fn on_event<F>(mut self, subscriber: F) -> Self
    where
        F: Fn(&BreakerEvent) + Send + Sync + 'static,
    {
        self.on_event = Some(Box::new(subscriber));
        self
    }

    /// Opens the circuit when failures make up at least `percent` of the
    /// calls in the [`sliding_window`](Self::sliding_window), once it holds
    /// at least [`minimum_calls`](Self::minimum_calls). Valid in (0, 100].
    ///
    /// Turns the default consecutive-failure policy off unless
    /// [`failure_threshold`](Self::failure_threshold) is also set.
    pub fn failure_rate(mut self, percent: f64) -> Self {
        self.failure_rate = Some(percent);
        self
    }

    /// A call that takes at least `threshold` is slow; the circuit opens when
    /// slow calls make up at least `rate_percent` of the calls in the
    /// window (once it holds [`minimum_calls`](Self::minimum_calls)), and a
    /// slow probe reopens it. A threshold beyond about 584 years (`u64::MAX`
    /// nanoseconds) marks no call slow. Calls are timed (two clock reads) only when
    /// this is set. `threshold` must be greater than zero, `rate_percent`
    /// in (0, 100].
    pub fn slow_calls(mut self, threshold: Duration, rate_percent: f64) -> Self {
        self.slow_calls = Some((threshold, rate_percent));
        self
    }

    /// Which calls the rate policies look at. Default: the last 100 calls.
    pub fn sliding_window(mut self, window: SlidingWindow) -> Self {
        self.window = Some(window);
        self
    }

    /// The fewest calls the window must hold before a rate can open the
    /// circuit. Default 100, capped at a count window's size; at least 1 and
    /// no more than a count window's size.
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.minimum_calls = Some(calls);
        self
    }

    /// Open periods grow with repeated trips: the `n`-th trip since the
    /// circuit last closed opens it for
    /// `min(recovery_timeout × factor^(n-1), max)`. A probe's failure counts
    /// as a trip; closing starts again from `recovery_timeout`. `factor` must
    /// be finite and at least 1, `max` at least `recovery_timeout`.
    pub fn backoff(mut self, factor: f64, max: Duration) -> Self {
        self.backoff = Some((factor, max));
        self
    }

    /// Spreads each open period uniformly over `±fraction` of its length
    /// (still capped by the back-off's `max`), so that many instances of a
    /// service do not probe in step. `fraction` in [0, 1]; default 0.
    ///
    /// With `std` the random source is seeded per breaker from the process's
    /// hasher seed; without it, and for reproducible tests, set
    /// [`jitter_seed`](Self::jitter_seed).
    pub fn jitter_fraction(mut self, fraction: f64) -> Self {
        self.jitter = fraction;
        self
    }

    /// Seeds the jitter's random source (a SplitMix64 generator).
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = Some(seed);
        self
    }

    /// Stamps `last_success_time` on every success (one clock read per call)
    /// instead of only on successes that change something. Default off;
    /// see [`CircuitBreakerStats`].
    pub fn exact_success_time(mut self, exact: bool) -> Self {
        self.exact_success_time = exact;
        self
    }

    /// Stamps `last_failure_time` on every failure (one clock read per
    /// failure) instead of only on failures that change something or are
    /// timed anyway. Default off; see [`CircuitBreakerStats`].
    pub fn exact_failure_time(mut self, exact: bool) -> Self {
        self.exact_failure_time = exact;
        self
    }

    /// Whether `success_count` counts successes. Default `true`.
    ///
    /// Counting is one atomic add per success, the largest single cost of a
    /// healthy CLOSED call (see *Speed* on [`CircuitBreaker`](crate::CircuitBreaker)).
    /// With `false`, `success_count` stays 0; everything else is
    /// unchanged (a success still ends a failure streak, counts in a sliding
    /// window and toward closing a half-open circuit, stamps
    /// `last_success_time` as usual and is reported to `on_event`).
    pub fn count_successes(mut self, count: bool) -> Self {
        self.count_successes = count;
        self
    }

    /// Validates the configuration and builds the breaker.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first parameter out of range and its value.
    pub fn build(self) -> Result<Breaker<K>, ConfigError>
    where
        K: Clock,
    {
        let config = self.validate()?;
        Ok(Breaker::from_parts(
            config,
            self.clock,
            self.on_state_change,
            self.on_event,
        ))
    }

    fn validate(&self) -> Result<Config, ConfigError> {
        if let Some(t) = self.failure_threshold {
            if !(1..=COUNTER_MAX).contains(&t) {
                return Err(ConfigError::invalid(
                    "failure_threshold",
                    t,
                    "between 1 and 65535",
                ));
            }
        }
        if self.recovery_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "recovery_timeout",
                self.recovery_timeout,
                "greater than zero",
            ));
        }
        if !(1..=COUNTER_MAX).contains(&self.half_open_max_calls) {
            return Err(ConfigError::invalid(
                "half_open_max_calls",
                self.half_open_max_calls,
                "between 1 and 65535",
            ));
        }
        if let Some(rate) = self.failure_rate {
            check_percent("failure_rate", rate)?;
        }
        if let Some((threshold, rate)) = self.slow_calls {
            if threshold.is_zero() {
                return Err(ConfigError::invalid(
                    "slow_call_threshold",
                    threshold,
                    "greater than zero",
                ));
            }
            check_percent("slow_call_rate", rate)?;
        }
        let rated = self.failure_rate.is_some() || self.slow_calls.is_some();
        if let (false, Some(window)) = (rated, self.window) {
            return Err(ConfigError::invalid(
                "sliding_window",
                window,
                "a failure_rate or slow_calls policy to use it",
            ));
        }
        if let (false, Some(calls)) = (rated, self.minimum_calls) {
            return Err(ConfigError::invalid(
                "minimum_calls",
                calls,
                "a failure_rate or slow_calls policy to use it",
            ));
        }
        let window = self.window.unwrap_or(DEFAULT_SLIDING_WINDOW);
        match window {
            SlidingWindow::Count(n) if !(1..=MAX_COUNT_WINDOW).contains(&n) => {
                return Err(ConfigError::invalid(
                    "sliding_window",
                    window,
                    "a count between 1 and 1000000",
                ));
            }
            SlidingWindow::Time { duration, .. } if duration.is_zero() => {
                return Err(ConfigError::invalid(
                    "sliding_window",
                    window,
                    "a duration greater than zero",
                ));
            }
            SlidingWindow::Time { duration, buckets }
                if buckets == 0
                    || buckets > MAX_BUCKETS
                    || u64::from(buckets) > duration_to_nanos(duration) =>
            {
                return Err(ConfigError::invalid(
                    "sliding_window",
                    window,
                    "between 1 and 100000 buckets, each at least 1 ns long",
                ));
            }
            _ => {}
        }
        let minimum_calls = match (self.minimum_calls, window) {
            (Some(0), _) => {
                return Err(ConfigError::invalid("minimum_calls", 0u32, "at least 1"));
            }
            (Some(m), SlidingWindow::Count(n)) if m > n => {
                return Err(ConfigError::invalid(
                    "minimum_calls",
                    m,
                    "no more than the count window's size",
                ));
            }
            (Some(m), _) => m,
            (None, SlidingWindow::Count(n)) => DEFAULT_MINIMUM_CALLS.min(n),
            (None, SlidingWindow::Time { .. }) => DEFAULT_MINIMUM_CALLS,
        };
        if let Some((factor, max)) = self.backoff {
            if !(factor.is_finite() && factor >= 1.0) {
                return Err(ConfigError::invalid(
                    "backoff_factor",
                    factor,
                    "a finite number of at least 1.0",
                ));
            }
            if max < self.recovery_timeout {
                return Err(ConfigError::invalid(
                    "backoff_max",
                    max,
                    "at least recovery_timeout",
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(ConfigError::invalid(
                "jitter_fraction",
                self.jitter,
                "a fraction in [0, 1]",
            ));
        }
        let consecutive = match (self.failure_threshold, self.failure_rate) {
            (Some(t), _) => Some(t),
            (None, None) => Some(DEFAULT_FAILURE_THRESHOLD),
            (None, Some(_)) => None,
        };
        Ok(Config {
            consecutive,
            recovery_nanos: duration_to_nanos(self.recovery_timeout),
            half_open_max: self.half_open_max_calls,
            rates: rated.then_some(Rates {
                window,
                minimum_calls,
                failure_rate: self.failure_rate,
                slow_rate: self.slow_calls.map(|(_, rate)| rate),
            }),
            slow_nanos: self.slow_calls.map(|(t, _)| duration_to_nanos(t)),
            backoff: self
                .backoff
                .map(|(factor, max)| (factor, duration_to_nanos(max))),
            jitter: self.jitter,
            jitter_seed: self.jitter_seed.unwrap_or_else(crate::rng::entropy_seed),
            exact_success_time: self.exact_success_time,
            exact_failure_time: self.exact_failure_time,
            count_successes: self.count_successes,
        })
    }
}

fn check_percent(parameter: &'static str, value: f64) -> Result<(), ConfigError> {
    if value > 0.0 && value <= 100.0 {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            parameter,
            value,
            "a percentage in (0, 100]",
        ))
    }
}

impl<K: fmt::Debug> fmt::Debug for BreakerBuilder<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerBuilder")
            .field("clock", &self.clock)
            .field("failure_threshold", &self.failure_threshold)
            .field("recovery_timeout", &self.recovery_timeout)
            .field("half_open_max_calls", &self.half_open_max_calls)
            .field("failure_rate", &self.failure_rate)
            .field("slow_calls", &self.slow_calls)
            .field("sliding_window", &self.window)
            .field("minimum_calls", &self.minimum_calls)
            .field("backoff", &self.backoff)
            .field("jitter_fraction", &self.jitter)
            .field("exact_success_time", &self.exact_success_time)
            .field("exact_failure_time", &self.exact_failure_time)
            .field("count_successes", &self.count_successes)
            .field("on_state_change", &self.on_state_change.is_some())
            .field("on_event", &self.on_event.is_some())
            .finish_non_exhaustive()
    }
}

/// A validated configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    /// The consecutive-failure threshold, when that policy is on.
    pub(crate) consecutive: Option<u32>,
    pub(crate) recovery_nanos: u64,
    pub(crate) half_open_max: u32,
    pub(crate) rates: Option<Rates>,
    pub(crate) slow_nanos: Option<u64>,
    /// `(factor, max_nanos)`.
    pub(crate) backoff: Option<(f64, u64)>,
    pub(crate) jitter: f64,
    pub(crate) jitter_seed: u64,
    pub(crate) exact_success_time: bool,
    pub(crate) exact_failure_time: bool,
    pub(crate) count_successes: bool,
}

/// The rate policies over one sliding window.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rates {
    pub(crate) window: SlidingWindow,
    pub(crate) minimum_calls: u32,
    pub(crate) failure_rate: Option<f64>,
    pub(crate) slow_rate: Option<f64>,
}

impl Config {
    /// The un-jittered open period after `trips` earlier trips since the
    /// circuit last closed.
    pub(crate) fn open_nanos(&self, trips: u32) -> u64 {
        match self.backoff {
            None => self.recovery_nanos,
            Some((factor, max)) => {
                let grown = self.recovery_nanos as f64 * powi(factor, trips);
                // `as` saturates (and maps NaN to 0, which `factor >= 1` rules
                // out). `f64` holds whole nanoseconds exactly only up to 2⁵³
                // (about 104 days): the floor keeps a rounded-down product
                // from opening the circuit for less than `recovery_timeout`.
                (grown.min(max as f64) as u64).clamp(self.recovery_nanos, max)
            }
        }
    }
}

/// `base^exp` by squaring (`f64::powi` needs `std`).
fn powi(base: f64, mut exp: u32) -> f64 {
    let (mut result, mut base) = (1.0, base);
    while exp > 0 {
        if exp & 1 == 1 {
            result *= base;
        }
        base *= base;
        exp >>= 1;
        if result.is_infinite() {
            break;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powi_matches_repeated_multiplication() {
        assert_eq!(powi(2.0, 0), 1.0);
        assert_eq!(powi(2.0, 10), 1024.0);
        assert_eq!(powi(1.5, 3), 3.375);
        assert!(powi(10.0, 400).is_infinite());
    }
}
