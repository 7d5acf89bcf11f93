//! What a breaker tells its subscriber: [`BreakerEvent`].

use core::time::Duration;

use super::CircuitState;

/// One thing that happened in a circuit breaker, as passed to the
/// subscriber set with `on_event`.
///
/// A breaker without a subscriber builds no events: the only cost is one
/// branch per call. With a subscriber, each call is timed (two clock reads),
/// so every outcome event carries how long the call took.
///
/// Events are delivered after the breaker's bookkeeping is done and with no
/// internal lock held, so a subscriber may read `state()` and `stats()`.
/// A call's own events (outcome, slow call, rejection) are delivered by the
/// task that made the call, before the transition it causes is reported
/// from that task; `StateChange` events one at a time, in the order the
/// transitions took place, on the task that caused them or on one
/// delivering at that moment. Events of concurrent calls may interleave.
/// Keep it short: it runs on the call path. A subscriber that panics loses no event
/// and wedges nothing (see `on_event`).
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use kompoz_core::{ClockExt, rule, Combinator, ManualClock, circuit_breaker::BreakerEvent};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let log = Arc::clone(&seen);
/// let protected = ManualClock::new().circuit_breaker(rule(async |n: &i32| *n > 0))
///     .failure_threshold(1)
///     .on_event(move |e: &BreakerEvent| log.lock().unwrap().push(e.clone()))
///     .build()?;
///
/// futures::executor::block_on(async {
///     protected.run(1).await;   // success
///     protected.run(-1).await;  // failure, trips the breaker
///     protected.run(1).await;   // rejected
/// });
/// let seen = seen.lock().unwrap();
/// assert!(matches!(seen[0], BreakerEvent::Success { .. }));
/// assert!(matches!(seen[1], BreakerEvent::Failure { .. }));
/// assert!(matches!(seen[2], BreakerEvent::StateChange { .. }));
/// assert!(matches!(seen[3], BreakerEvent::Rejected { .. }));
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerEvent {
    /// A call finished and does not count as a failure.
    Success {
        /// How long the call took.
        elapsed: Duration,
    },
    /// A call finished and counts as a failure (by default: it returned
    /// `ok == false`; see `failure_if`), or it panicked.
    Failure {
        /// How long the call took.
        elapsed: Duration,
    },
    /// A call took at least the slow-call threshold. Reported in addition to
    /// its [`Success`](BreakerEvent::Success) or
    /// [`Failure`](BreakerEvent::Failure).
    SlowCall {
        /// How long the call took.
        elapsed: Duration,
    },
    /// A call was refused without running the inner combinator.
    Rejected {
        /// The state that refused it: `Open`, or `HalfOpen` with every probe
        /// slot taken.
        state: CircuitState,
    },
    /// A call admitted in a state that has since ended (a slow call that
    /// began before a trip or a `reset()`) finished: its result is ignored
    /// (counted only in `stale_count`).
    Stale,
    /// The breaker moved from one state to another.
    StateChange {
        /// The state before.
        from: CircuitState,
        /// The state after.
        to: CircuitState,
    },
}
