//! [`RateLimiter`]: one rate limit's budget as a shareable handle. The
//! reservations it hands out are in `reservation.rs`.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use core::fmt;
use core::time::Duration;

use super::gcra::{Gcra, NamedClock, Reservation};
use super::reservation::{OwnedRateReservation, RateReservation, Reserved};
use super::{RateLimit, RateLimited};
use crate::call::RateLimitExceeded;
use crate::clock::duration_to_nanos;
use crate::{Clock, ConfigError, Instant, Registry};

/// A rate limit's budget, shareable: the state behind [`RateLimited`], as a
/// handle of its own.
///
/// One `RateLimiter` can [`guard`](Self::guard) any number of combinators
/// and admit calls made by hand ([`check`](Self::check),
/// [`reserve`](Self::reserve)) at the same time: all of them draw on one
/// budget. Cloning it gives another handle to the same budget. Build one
/// with [`clock.rate_limiter(limit)`](crate::ClockExt::rate_limiter), or
/// share one by name through a [`Registry`]
/// ([`clock.rate_limiter_named(limit, name)`](crate::ClockExt::rate_limiter_named)).
///
/// The budget is kept by GCRA (see [`RateLimited`]): admitting a call is one
/// clock read and one compare-and-swap, with no lock and no allocation.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::{ClockExt, rule, Combinator, ManualClock, RateLimit};
///
/// let clock = ManualClock::new();
/// let limiter = clock.rate_limiter(RateLimit::per_second(2)?);
/// let api = limiter.guard(rule(async |_: &u32| true)).reject_when_full();
///
/// assert!(limiter.check().is_ok()); // a call made by hand takes a slot...
/// futures::executor::block_on(async {
///     assert!(!api.run(1).await.0); // ...so the combinator's call waits its turn
/// });
/// let refused = limiter.check().unwrap_err();
/// assert_eq!(refused.retry_at().as_duration(), Duration::from_millis(500));
/// clock.advance(Duration::from_millis(500));
/// assert!(limiter.check().is_ok());
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
pub struct RateLimiter<K> {
    pub(super) state: Arc<Gcra>,
    pub(super) clock: K,
}

impl<K: Clone> Clone for RateLimiter<K> {
    fn clone(&self) -> Self {
        RateLimiter {
            state: Arc::clone(&self.state),
            clock: self.clock.clone(),
        }
    }
}

impl<K: Clock> RateLimiter<K> {
    /// A budget of its own for `limit`, timed by `clock`.
    pub fn new(limit: RateLimit, clock: K) -> Self {
        RateLimiter {
            state: Arc::new(Gcra::new(limit, None)),
            clock,
        }
    }

    /// The budget named `name` in `registry` (created with `limit` if the
    /// name is not in use): every limiter and combinator built with the same
    /// name shares it.
    ///
    /// The handle reads time from the clock the name was first registered
    /// with (a clone of it), so that all users of the name agree on the time;
    /// `clock` is used only when the name is new.
    ///
    /// # Errors
    ///
    /// - [`ConfigError::Invalid`] for an empty `name`.
    /// - [`ConfigError::NameConflict`] if `name` is in use with another
    ///   [`RateLimit`] (naming the first setting that differs) or with
    ///   another clock type (`clock`).
    pub fn named(
        limit: RateLimit,
        name: &str,
        registry: &Registry,
        clock: K,
    ) -> Result<Self, ConfigError>
    where
        K: Send + Sync + 'static,
    {
        let requested = core::any::type_name::<K>();
        let state = registry.rate_limits().get_or_create(
            name,
            |existing| check_same(name, existing, limit, requested),
            || {
                Gcra::new(
                    limit,
                    Some(NamedClock {
                        clock: Box::new(clock.clone()),
                        type_name: requested,
                        name: String::from(name),
                    }),
                )
            },
        )?;
        // `check_same` made sure the downcast succeeds.
        let shared_clock = state
            .named_clock()
            .and_then(|named| named.clock.downcast_ref::<K>())
            .cloned()
            .unwrap_or(clock);
        Ok(RateLimiter {
            state,
            clock: shared_clock,
        })
    }

    /// Admits one call now, or refuses it with the earliest instant a call
    /// would be admitted. Never waits. An admitted call has spent its slot.
    ///
    /// # Errors
    ///
    /// [`RateLimitExceeded`] when the budget is spent; its
    /// [`retry_at`](RateLimitExceeded::retry_at) is the earliest instant a
    /// call would be admitted on [`clock`](Self::clock) (if no other call
    /// takes that slot first). Nothing is reserved.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz_core::{ClockExt, ManualClock, RateLimit};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = clock.rate_limiter(RateLimit::with_burst(10, Duration::from_secs(1), 2)?);
    /// assert!(limiter.check().is_ok());
    /// assert!(limiter.check().is_ok()); // the burst
    /// let refused = limiter.check().unwrap_err();
    /// assert_eq!(refused.retry_at().as_duration(), Duration::from_millis(100));
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    #[inline]
    pub fn check(&self) -> Result<(), RateLimitExceeded> {
        self.reserve_nanos(0).map(RateReservation::commit)
    }

    /// Reserves the next slot if it starts within `max_wait`; the call may
    /// start at the reservation's [`ready_at`](RateReservation::ready_at).
    ///
    /// Waiting calls are served in reservation order. Dropping the
    /// reservation before it is used (by [`wait`](RateReservation::wait)
    /// completing, or [`commit`](RateReservation::commit)) gives the slot
    /// back if no later slot was reserved meanwhile; otherwise the slot stays
    /// spent (the later callers already wait for theirs). Either way the
    /// limit is never exceeded.
    ///
    /// # Errors
    ///
    /// [`RateLimitExceeded`] if the next slot starts later than
    /// `now + max_wait`; its [`retry_at`](RateLimitExceeded::retry_at) is
    /// that slot's start. Nothing is reserved.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz_core::{Clock, ClockExt, ManualClock, RateLimit};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = clock.rate_limiter(RateLimit::per_second(4)?);
    /// limiter.check()?;
    ///
    /// let slot = limiter.reserve(Duration::from_secs(1))?;
    /// assert_eq!(slot.ready_at().as_duration(), Duration::from_millis(250));
    /// drop(slot); // not used: given back
    ///
    /// let slot = limiter.reserve(Duration::from_secs(1))?;
    /// assert_eq!(slot.ready_at().as_duration(), Duration::from_millis(250));
    /// assert!(limiter.reserve(Duration::from_millis(100)).is_err()); // the next is at 500 ms
    /// clock.block_on(slot.wait()); // sleeps on the clock until 250 ms
    /// assert_eq!(clock.now().as_duration(), Duration::from_millis(250));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reserve(&self, max_wait: Duration) -> Result<RateReservation<'_, K>, RateLimitExceeded> {
        self.reserve_nanos(duration_to_nanos(max_wait))
    }

    /// As [`reserve`](Self::reserve), with a reservation that holds a handle
    /// to the budget (`'static` when the clock is).
    ///
    /// # Errors
    ///
    /// As [`reserve`](Self::reserve).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz_core::{ClockExt, ManualClock, RateLimit};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = clock.rate_limiter(RateLimit::per_second(1)?);
    /// let slot = limiter.reserve_owned(Duration::ZERO)?;
    /// let waited = std::thread::spawn(move || futures::executor::block_on(slot.wait()));
    /// waited.join().unwrap(); // the slot was due at once
    /// assert!(limiter.check().is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reserve_owned(
        &self,
        max_wait: Duration,
    ) -> Result<OwnedRateReservation<K>, RateLimitExceeded> {
        let reservation = self.reserve_raw(duration_to_nanos(max_wait))?;
        Ok(OwnedRateReservation {
            limiter: self.clone(),
            slot: Reserved::new(reservation),
        })
    }

    #[inline]
    pub(crate) fn reserve_nanos(
        &self,
        max_wait: u64,
    ) -> Result<RateReservation<'_, K>, RateLimitExceeded> {
        let reservation = self.reserve_raw(max_wait)?;
        Ok(RateReservation {
            limiter: self,
            slot: Reserved::new(reservation),
        })
    }

    #[inline]
    fn reserve_raw(&self, max_wait: u64) -> Result<Reservation, RateLimitExceeded> {
        self.state
            .reserve(&self.clock, max_wait)
            .map_err(|start| RateLimitExceeded::new(Instant::from_nanos(start)))
    }

    /// Guards `inner` with this budget: a [`RateLimited`] combinator that
    /// waits for its slot by default (see its modes).
    pub fn guard<A>(&self, inner: A) -> RateLimited<A, K> {
        RateLimited::from_limiter(inner, self.clone())
    }
}

impl<K> RateLimiter<K> {
    /// The rate limit.
    pub fn limit(&self) -> RateLimit {
        self.state.limit()
    }

    /// The name the budget is shared under, if it came from a [`Registry`].
    pub fn name(&self) -> Option<&str> {
        self.state.named_clock().map(|named| named.name.as_str())
    }

    /// The clock the budget is kept on (for a named budget: a clone of the
    /// clock the name was first registered with).
    pub fn clock(&self) -> &K {
        &self.clock
    }

    /// Whether `self` and `other` are handles to the same budget.
    pub fn same_as(&self, other: &RateLimiter<K>) -> bool {
        Arc::ptr_eq(&self.state, &other.state)
    }
}

impl<K> fmt::Debug for RateLimiter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("limit", &self.state.limit())
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

/// Whether a name registered as `existing` can serve a request for `limit`
/// on a clock of type `clock_type`.
fn check_same(
    name: &str,
    existing: &Gcra,
    limit: RateLimit,
    clock_type: &'static str,
) -> Result<(), ConfigError> {
    let have = existing.limit();
    // The first setting that differs is named.
    macro_rules! same {
        ($($field:ident),*) => {$(
            if have.$field != limit.$field {
                return Err(ConfigError::name_conflict(
                    name,
                    stringify!($field),
                    have.$field,
                    limit.$field,
                ));
            }
        )*};
    }
    same!(rate, period, burst);
    match existing.named_clock() {
        Some(named) if named.type_name == clock_type => Ok(()),
        Some(named) => Err(ConfigError::name_conflict(
            name,
            "clock",
            named.type_name,
            clock_type,
        )),
        None => Ok(()),
    }
}
