//! The [`Breaker`] handle: what users hold and share. The state machine
//! behind it is in `raw.rs`, outcome recording in `record.rs`.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::fmt;

use crate::Clock;
use crate::call::CircuitOpen;
use crate::sync::Ordering;

use super::config::{Config, EventFn, StateChangeFn};
use super::raw::Shared;
use super::state::{Mode, Word};
use super::{
    BreakerBuilder, BreakerPermit, CircuitBreaker, CircuitBreakerStats, CircuitState, NotOk,
    OwnedBreakerPermit,
};

/// A circuit breaker's state, shareable by several combinators.
///
/// One `Breaker` can [`guard`](Breaker::guard) any number of combinators:
/// their outcomes feed one state machine, and when it opens all of them are
/// rejected, as one connection pool guards several endpoints of the same
/// service. Cloning a `Breaker` gives another handle to the same state.
/// [`circuit_breaker`](crate::CircuitBreaker::builder) builds a breaker for
/// a single combinator.
///
/// One state means one health: share a breaker only between calls to the
/// same dependency. Two routes to services of different health behind one
/// breaker mix their outcomes, and with the default consecutive-failure
/// policy ([`failure_threshold`](BreakerBuilder::failure_threshold)) every
/// success on the healthy route ends the failing route's streak, so the
/// circuit may never open. Give each dependency its own breaker, or, if
/// one must be shared, judge it by a rate over a window
/// ([`failure_rate`](BreakerBuilder::failure_rate) with a
/// [`sliding_window`](BreakerBuilder::sliding_window)), which a minority of
/// successes does not reset:
///
/// ```
/// use kompoz_core::{CircuitState, ClockExt, ManualClock, SlidingWindow};
///
/// let clock = ManualClock::new();
/// let streak = clock.shared_breaker().failure_threshold(3).build()?;
/// let rate = clock
///     .shared_breaker()
///     .failure_rate(50.0)
///     .sliding_window(SlidingWindow::Count(10))
///     .minimum_calls(6)
///     .build()?;
/// for breaker in [&streak, &rate] {
///     // `/users` fails twice, `/health` passes, `/users` fails twice more.
///     for ok in [false, false, true, false, false, true] {
///         let _ = clock.block_on(breaker.call(|| async move { if ok { Ok(()) } else { Err(()) } }));
///     }
/// }
/// assert_eq!(streak.state(), CircuitState::Closed); // never 3 in a row
/// assert_eq!(rate.state(), CircuitState::Open); // 4 failures in 6 calls
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
///
/// Code that makes its calls itself (a future returning `Result`, a tower
/// service) asks the same breaker for a permit per call with
/// [`try_acquire`](Self::try_acquire) (or
/// [`try_acquire_owned`](Self::try_acquire_owned)) and records the outcome
/// on it; a refusal is a [`CircuitOpen`](crate::call::CircuitOpen) saying
/// when a call may pass again. Permits and guarded combinators feed one
/// state machine.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::{ClockExt, rule, CircuitState, Combinator, ManualClock};
///
/// let clock = ManualClock::new();
/// let service = clock.shared_breaker()
///     .failure_threshold(2)
///     .recovery_timeout(Duration::from_secs(10))
///     .build()?;
/// let read = service.guard(rule(async |id: &u32| *id != 0));
/// let write = service.guard(rule(async |_: &u32| false));
///
/// futures::executor::block_on(async {
///     assert!(!write.run(1).await.0);
///     assert!(!write.run(2).await.0);            // two failures in a row: open
///     assert_eq!(service.state(), CircuitState::Open);
///     assert_eq!(read.run(7).await, (false, 7)); // `read` is rejected too
///
///     clock.advance(Duration::from_secs(10));
///     assert!(read.run(7).await.0);               // the probe passes: closed
///     assert_eq!(service.state(), CircuitState::Closed);
/// });
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
pub struct Breaker<K> {
    shared: Arc<Shared<K>>,
}

impl<K> Clone for Breaker<K> {
    fn clone(&self) -> Self {
        Breaker {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K> Breaker<K> {
    /// A builder with the reference's defaults and time from `clock`.
    pub fn builder(clock: K) -> BreakerBuilder<K> {
        BreakerBuilder::new(clock)
    }

    /// Guards `inner` with this breaker. Outcomes count as failures when
    /// `ok == false`; see [`CircuitBreaker::failure_if`] to change that.
    pub fn guard<I>(&self, inner: I) -> CircuitBreaker<I, K, NotOk> {
        CircuitBreaker::from_parts(inner, self.clone(), NotOk)
    }

    pub(crate) fn from_parts(
        config: Config,
        clock: K,
        on_state_change: Option<Box<StateChangeFn>>,
        on_event: Option<Box<EventFn>>,
    ) -> Self {
        Breaker {
            shared: Arc::new(Shared::new(config, clock, on_state_change, on_event)),
        }
    }

    pub(crate) fn shared(&self) -> &Shared<K> {
        &self.shared
    }

    /// Whether `self` and `other` are handles to the same breaker.
    pub fn same_as(&self, other: &Breaker<K>) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl<K: Clock> Breaker<K> {
    /// The current state (the reference's `state` property).
    ///
    /// An OPEN circuit whose recovery timeout has passed still reports
    /// `Open` until a call arrives and becomes the probe.
    pub fn state(&self) -> CircuitState {
        self.shared.load().state()
    }

    /// Asks for permission to make one call: a [`BreakerPermit`] that
    /// records the call's outcome, or the refusal, saying when a call may
    /// pass again.
    ///
    /// This is what the combinator does around each call, for code that
    /// makes its calls itself (a `Result`-returning future, a tower
    /// service). Admission costs what the combinator's does (see *Speed* on
    /// [`CircuitBreaker`]).
    ///
    /// # Errors
    ///
    /// [`CircuitOpen`] when the circuit is open (its
    /// [`retry_at`](CircuitOpen::retry_at) is the end of the open period, or
    /// `None` if it was forced open) or half-open with every probe slot taken
    /// (`retry_at` `None`). The refusal is counted in
    /// [`stats().rejected_count`](CircuitBreakerStats::rejected_count) and
    /// reported to `on_event`, as the combinator's are.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz_core::{ClockExt, CircuitState, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let breaker = clock.shared_breaker()
    ///     .failure_threshold(1)
    ///     .recovery_timeout(Duration::from_secs(5))
    ///     .build()?;
    /// breaker.try_acquire()?.failure(); // opens
    ///
    /// let refused = breaker.try_acquire().unwrap_err();
    /// assert_eq!(refused.retry_at().map(|t| t.as_duration()), Some(Duration::from_secs(5)));
    ///
    /// clock.advance(Duration::from_secs(5));
    /// let probe = breaker.try_acquire()?;
    /// assert!(probe.is_probe());
    /// drop(probe); // cancelled: the probe slot is given back
    /// assert_eq!(breaker.state(), CircuitState::HalfOpen);
    /// breaker.try_acquire()?.success(); // the next probe closes it
    /// assert_eq!(breaker.state(), CircuitState::Closed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Result<BreakerPermit<'_, K>, CircuitOpen> {
        let ticket = self.shared.acquire()?;
        Ok(BreakerPermit::new(&self.shared, ticket))
    }

    /// As [`try_acquire`](Self::try_acquire), with a permit that holds a
    /// handle to the breaker: `'static` when `K` is, `Send` when `K` is
    /// `Send + Sync`, for a call that outlives the borrow (a spawned task,
    /// a tower response future).
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire).
    ///
    /// # Examples
    ///
    /// ```
    /// use kompoz_core::{ClockExt, ManualClock};
    ///
    /// let breaker = ManualClock::new().shared_breaker().build()?;
    /// let permit = breaker.try_acquire_owned()?;
    /// let call = std::thread::spawn(move || {
    ///     let failed = false; // the call's outcome
    ///     permit.record(failed);
    /// });
    /// call.join().unwrap();
    /// assert_eq!(breaker.stats().success_count, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_acquire_owned(&self) -> Result<OwnedBreakerPermit<K>, CircuitOpen> {
        let ticket = self.shared.acquire()?;
        Ok(OwnedBreakerPermit::new(Arc::clone(&self.shared), ticket))
    }

    /// Whether the state was set by hand with [`force_open`](Self::force_open)
    /// or [`force_closed`](Self::force_closed) (and not yet [`reset`](Self::reset)).
    pub fn is_forced(&self) -> bool {
        self.shared.load().mode() != Mode::Auto
    }

    /// A snapshot of the bookkeeping (the reference's `get_stats()`).
    pub fn stats(&self) -> CircuitBreakerStats {
        self.shared.stats()
    }

    /// Closes the circuit by hand and starts afresh: counts, window and
    /// back-off are cleared, a forced state is lifted, and calls admitted
    /// before the reset no longer count.
    pub fn reset(&self) {
        self.shared
            .set_by_hand(CircuitState::Closed, Mode::Auto, true);
    }

    /// Opens the circuit by hand and keeps it open (isolation): every call is
    /// rejected and no probe is let through until [`reset`](Self::reset) or
    /// [`force_closed`](Self::force_closed). `state()` reports `Open` and
    /// [`is_forced`](Self::is_forced) `true`; `on_state_change` fires only if
    /// the state was not `Open` already. Calls admitted before no longer count.
    pub fn force_open(&self) {
        self.shared
            .set_by_hand(CircuitState::Open, Mode::ForcedOpen, false);
    }

    /// Closes the circuit by hand and keeps it closed (disabled, record
    /// only): every call runs, outcomes are counted, kept in the window and
    /// reported as events, but nothing trips it until [`reset`](Self::reset)
    /// or [`force_open`](Self::force_open). `state()` reports `Closed` and
    /// [`is_forced`](Self::is_forced) `true`.
    pub fn force_closed(&self) {
        self.shared
            .set_by_hand(CircuitState::Closed, Mode::ForcedClosed, false);
    }
}

impl<K: fmt::Debug> fmt::Debug for Breaker<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = Word(self.shared.word.load(Ordering::Acquire));
        f.debug_struct("Breaker")
            .field("state", &word.state())
            .field("mode", &word.mode())
            .field("config", &self.shared.config)
            .field("clock", &self.shared.clock)
            .finish_non_exhaustive()
    }
}
