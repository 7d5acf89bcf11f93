//! A snapshot of a breaker's bookkeeping: [`CircuitBreakerStats`].

use core::time::Duration;

use crate::Instant;

use crate::Clock;
use crate::sync::{AtomicU64, Ordering};

use super::CircuitState;
use super::raw::{NEVER, Shared};
use super::state::{Mode, View};

/// What `stats()` returns: the reference's `get_stats()` fields and more.
///
/// Counts run from when the breaker was built or last `reset()`. A result
/// that arrives after the state it was admitted in has ended (a slow call
/// that began before a trip or a `reset()`) is ignored entirely: it is in no
/// count and moves no state.
///
/// # Timestamps
///
/// Times are on the breaker's [`Clock`](crate::Clock).
/// In an automatic CLOSED circuit neither a success nor a failure reads the
/// clock unless something needs the time (see *Speed* on
/// [`CircuitBreaker`](crate::CircuitBreaker)), so by default both timestamps are those of the
/// most recent outcome that *changed something* or was timed anyway:
///
/// - `last_success_time`: the first success after a failure (it ends the
///   streak), a half-open probe's success, or any success when the call was
///   timed anyway (a slow-call policy, a time-based window or an event
///   subscriber). It says "succeeding since at least then".
/// - `last_failure_time`: the first failure of a streak (the first after a
///   success, a `reset()` or the circuit closing), the failure that trips the
///   circuit, a half-open probe's failure, any failure while the circuit is
///   forced closed, or any failure when the call was timed anyway. While a
///   streak goes on it says "failing since at least then"; once the circuit
///   has opened it is the time of the trip.
///
/// Build with `exact_success_time(true)` or `exact_failure_time(true)` to
/// stamp every success or every failure, at the cost of one clock read per
/// such call.
///
/// # Examples
///
/// ```
/// use kompoz_core::{ClockExt, rule, CircuitState, Combinator, ManualClock};
///
/// let protected = ManualClock::new().circuit_breaker(rule(async |n: &i32| *n > 0))
///     .build()?;
/// futures::executor::block_on(async {
///     protected.run(1).await;
///     protected.run(-1).await;
/// });
/// let stats = protected.stats();
/// assert_eq!(stats.state, CircuitState::Closed);
/// assert_eq!((stats.success_count, stats.failure_count), (1, 1));
/// assert_eq!(stats.consecutive_failures, 1);
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CircuitBreakerStats {
    /// The state at the time of the snapshot.
    pub state: CircuitState,
    /// Whether the state was set by hand (`force_open()` / `force_closed()`).
    pub forced: bool,
    /// Calls that counted as failures.
    pub failure_count: u64,
    /// Calls that counted as successes (always 0 when built with
    /// `count_successes(false)`).
    pub success_count: u64,
    /// Calls refused without running the inner combinator.
    pub rejected_count: u64,
    /// Calls that took at least the slow-call threshold (zero without a
    /// slow-call policy).
    pub slow_call_count: u64,
    /// Failures in a row in the current CLOSED period (what the default
    /// policy compares with `failure_threshold`). Counts up to 65535, the
    /// largest threshold; with only a rate policy it stays there.
    pub consecutive_failures: u32,
    /// Probe successes so far in the current HALF_OPEN period.
    pub half_open_successes: u32,
    /// Probes running now in the current HALF_OPEN period.
    pub half_open_in_flight: u32,
    /// When the last failure was recorded (see the type's docs for how
    /// precisely).
    pub last_failure_time: Option<Instant>,
    /// When the last success was recorded (see the type's docs for how
    /// precisely).
    pub last_success_time: Option<Instant>,
    /// While OPEN (not forced): when the next call will be admitted as a probe.
    pub open_until: Option<Instant>,
    /// How long the next trip would open the circuit for, before jitter:
    /// `recovery_timeout`, growing with repeated trips under back-off.
    pub next_open_duration: Duration,
    /// Trips since the circuit last closed: 0 when CLOSED and never tripped
    /// since, 1 after the first trip, 2 when a probe failed once, …
    pub consecutive_opens: u32,
    /// The sliding window's contents, when a rate policy is configured.
    pub window: Option<WindowStats>,
}

/// The sliding window's contents (calls in the current CLOSED period that
/// are still inside the window).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct WindowStats {
    /// Calls in the window.
    pub calls: u32,
    /// Of those, failures.
    pub failures: u32,
    /// Of those, slow calls.
    pub slow_calls: u32,
}

impl WindowStats {
    /// Failures as a percentage of the calls in the window (0 when empty).
    pub fn failure_rate(&self) -> f64 {
        percent(self.failures, self.calls)
    }

    /// Slow calls as a percentage of the calls in the window (0 when empty).
    pub fn slow_call_rate(&self) -> f64 {
        percent(self.slow_calls, self.calls)
    }
}

fn percent(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        f64::from(part) * 100.0 / f64::from(whole)
    }
}

impl<K: Clock> Shared<K> {
    pub(crate) fn stats(&self) -> CircuitBreakerStats {
        let (trips, window) = {
            let locked = self.locked.lock();
            let window = locked.window.as_ref().map(|w| {
                let now = if w.needs_time() {
                    self.clock.now()
                } else {
                    Instant::ZERO
                };
                w.totals(now)
            });
            (locked.trips, window)
        };
        let word = self.load();
        let instant = |stamp: &AtomicU64| match stamp.load(Ordering::Relaxed) {
            NEVER => None,
            nanos => Some(Instant::from_nanos(nanos - 1)),
        };
        let state = word.state();
        let open = state == CircuitState::Open && word.mode() == Mode::Auto;
        let (consecutive_failures, half_open_successes, half_open_in_flight) = match word.view() {
            View::Closed { failure_streak } => (failure_streak, 0, 0),
            View::Open => (0, 0, 0),
            View::HalfOpen {
                in_flight,
                successes,
            } => (0, successes, in_flight),
        };
        CircuitBreakerStats {
            state,
            forced: word.mode() != Mode::Auto,
            failure_count: self.failures.load(Ordering::Relaxed),
            success_count: self.successes.load(Ordering::Relaxed),
            rejected_count: self.rejected.load(Ordering::Relaxed),
            slow_call_count: self.slow_calls.load(Ordering::Relaxed),
            consecutive_failures,
            half_open_successes,
            half_open_in_flight,
            last_failure_time: instant(&self.last_failure),
            last_success_time: instant(&self.last_success),
            open_until: open.then(|| Instant::from_nanos(self.open_until.load(Ordering::Relaxed))),
            next_open_duration: Duration::from_nanos(self.config.open_nanos(trips)),
            consecutive_opens: trips,
            window,
        }
    }
}
