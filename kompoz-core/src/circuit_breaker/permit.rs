//! Admitted calls: the drop guard the combinator's future and the permits
//! share ([`Call`]), and the permits themselves ([`BreakerPermit`],
//! [`OwnedBreakerPermit`]).

use alloc::sync::Arc;
use core::fmt;

use super::raw::{Shared, Ticket};
use crate::Clock;

/// A reference to a breaker's shared state: borrowed (the combinator, a
/// [`BreakerPermit`]) or owned (an [`OwnedBreakerPermit`]).
pub(crate) trait SharedRef {
    type Clock: Clock;
    fn shared(&self) -> &Shared<Self::Clock>;
}

impl<K: Clock> SharedRef for &Shared<K> {
    type Clock = K;
    #[inline(always)]
    fn shared(&self) -> &Shared<K> {
        self
    }
}

impl<K: Clock> SharedRef for Arc<Shared<K>> {
    type Clock = K;
    #[inline(always)]
    fn shared(&self) -> &Shared<K> {
        self
    }
}

/// Where an admitted call is, for its drop guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Between polls of the inner future (or, for a permit, anywhere before
    /// its outcome is recorded): a drop now is a cancellation.
    Suspended,
    /// Inside a poll of the inner future: a drop now is its panic unwinding.
    Polling,
    /// The outcome is recorded.
    Finished,
}

/// An admitted call in progress: if it is dropped before it finishes
/// (cancelled, or unwinding from a panic of the inner combinator), the
/// breaker hears of it.
pub(crate) struct Call<R: SharedRef> {
    pub(crate) shared: R,
    pub(crate) ticket: Ticket,
    pub(crate) stage: Stage,
}

impl<R: SharedRef> Call<R> {
    /// A guard for a call just admitted with `ticket`, which owns the ticket
    /// from here on: dropped before [`finish`](Self::finish), the call is
    /// cancelled.
    #[inline]
    pub(crate) fn new(shared: R, ticket: Ticket) -> Self {
        Call {
            shared,
            ticket,
            stage: Stage::Suspended,
        }
    }

    /// Records the call's outcome, then tells the listeners.
    #[inline]
    pub(crate) fn finish(&mut self, failure: bool) {
        let pending = self.shared.shared().complete(self.ticket, failure);
        // Settled before any listener runs: a listener's panic unwinding
        // through here must not give the probe slot back a second time.
        self.stage = Stage::Finished;
        if let Some(pending) = pending {
            self.shared.shared().deliver(pending);
        }
    }
}

impl<R: SharedRef> Drop for Call<R> {
    #[inline]
    fn drop(&mut self) {
        match self.stage {
            Stage::Finished => {}
            Stage::Polling => self.shared.shared().inner_panicked(self.ticket),
            Stage::Suspended => self.shared.shared().abandon(self.ticket),
        }
    }
}

/// What both permits offer: recording the outcome and asking whether the
/// call is a probe.
macro_rules! permit_methods {
    () => {
        /// The call succeeded.
        #[inline]
        pub fn success(self) {
            self.record(false);
        }

        /// The call failed.
        #[inline]
        pub fn failure(self) {
            self.record(true);
        }

        /// The call ended, as a failure if `failure` is true.
        #[inline]
        pub fn record(mut self, failure: bool) {
            self.call.finish(failure);
        }

        /// Whether this call is a half-open probe (its outcome closes or
        /// reopens the circuit).
        pub fn is_probe(&self) -> bool {
            self.call.ticket.probe()
        }
    };
}

/// Permission from a [`Breaker`](crate::Breaker) to make one call, from
/// [`Breaker::try_acquire`](crate::Breaker::try_acquire).
///
/// Make the call, then say how it went with [`success`](Self::success),
/// [`failure`](Self::failure) or [`record`](Self::record). A permit dropped
/// without an outcome is a cancelled call: nothing is counted and a
/// half-open probe gives its slot back — also when a panic unwinds between
/// the acquisition and the record. As with the combinator, an outcome from
/// a permit taken before a state change (a trip, a reset) is ignored.
///
/// The task that records the outcome delivers its events to `on_event`
/// and `on_state_change` listeners.
///
/// # Examples
///
/// ```
/// use kompoz_core::{ClockExt, CircuitState, ManualClock};
///
/// let breaker = ManualClock::new().shared_breaker().failure_threshold(2).build()?;
///
/// let permit = breaker.try_acquire().expect("closed: admitted");
/// permit.failure();
/// drop(breaker.try_acquire()?); // cancelled: not counted
/// breaker.try_acquire()?.failure();
///
/// assert_eq!(breaker.state(), CircuitState::Open);
/// let refused = breaker.try_acquire().unwrap_err();
/// assert_eq!(refused.state(), CircuitState::Open);
/// assert_eq!(refused.retry_at(), breaker.stats().open_until);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a permit dropped without an outcome is a cancelled call"]
pub struct BreakerPermit<'a, K: Clock> {
    call: Call<&'a Shared<K>>,
}

impl<'a, K: Clock> BreakerPermit<'a, K> {
    pub(crate) fn new(shared: &'a Shared<K>, ticket: Ticket) -> Self {
        BreakerPermit {
            call: Call::new(shared, ticket),
        }
    }

    permit_methods!();
}

impl<K: Clock> fmt::Debug for BreakerPermit<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerPermit")
            .field("probe", &self.is_probe())
            .finish_non_exhaustive()
    }
}

/// A [`BreakerPermit`] that owns a handle to its breaker: `'static` when the
/// clock is, `Send` and `Sync` when the clock is `Send + Sync`, so it can be
/// moved into a spawned task or a response future. From
/// [`Breaker::try_acquire_owned`](crate::Breaker::try_acquire_owned).
///
/// # Examples
///
/// ```
/// use kompoz_core::{ClockExt, ManualClock};
///
/// let breaker = ManualClock::new().shared_breaker().build()?;
/// let permit = breaker.try_acquire_owned()?;
/// std::thread::spawn(move || permit.success()).join().unwrap();
/// assert_eq!(breaker.stats().success_count, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a permit dropped without an outcome is a cancelled call"]
pub struct OwnedBreakerPermit<K: Clock> {
    call: Call<Arc<Shared<K>>>,
}

impl<K: Clock> OwnedBreakerPermit<K> {
    pub(crate) fn new(shared: Arc<Shared<K>>, ticket: Ticket) -> Self {
        OwnedBreakerPermit {
            call: Call::new(shared, ticket),
        }
    }

    permit_methods!();
}

impl<K: Clock> fmt::Debug for OwnedBreakerPermit<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedBreakerPermit")
            .field("probe", &self.is_probe())
            .finish_non_exhaustive()
    }
}
