//! Rate limits: [`RateLimited`], at most N calls per period by GCRA, over
//! a [`RateLimiter`] budget that can be shared by handle or by name through a
//! [`Registry`].

use crate::observe::Event;
use core::fmt;
use core::time::Duration;

#[cfg(doc)]
use crate::LimitMode;
use crate::limiter::{Admission, LimitOutcome};
use crate::{Clock, Combinator, ConfigError, Registry};

mod gcra;
mod limiter;
mod reservation;

pub(crate) use gcra::Gcra;
pub use limiter::RateLimiter;
pub use reservation::{OwnedRateReservation, OwnedRateWait, RateReservation, RateWait};

/// A rate: at most `rate` calls per `period`, with a burst allowance.
///
/// Calls are spaced by the *emission interval* `period / rate`. With the
/// default burst of 1 they are evenly spaced, so no window of one `period`
/// ever holds more than `rate` calls. A burst of `b`
/// ([`with_burst`](Self::with_burst)) lets up to `b`
/// calls through at once after a quiet spell (the budget refills at one call
/// per interval, up to `b`); a window of one period then holds at most
/// `rate + b − 1` calls. governor's `Quota::per_second(n)` is
/// `RateLimit::with_burst(n, Duration::from_secs(1), n)?`.
///
/// The interval is rounded *up* to whole nanoseconds: rounding can only make
/// a call wait up to a nanosecond longer, never let one through early, so the
/// limit is never exceeded (`new(2, 3 ns)` spaces calls 2 ns apart).
///
/// Every limit fits the clock's range: one interval times the burst (how far
/// ahead of the clock the limit's bookkeeping may run) must stay within
/// `u64::MAX / 2` nanoseconds, about 292 years; longer ones are refused at
/// construction rather than saturated (a saturated limit would admit every
/// call).
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::RateLimit;
///
/// let limit = RateLimit::with_burst(10, Duration::from_secs(1), 5)?;
/// assert_eq!(limit.emission_interval(), Duration::from_millis(100));
///
/// let err = RateLimit::new(0, Duration::from_secs(1)).unwrap_err();
/// assert_eq!(err.to_string(), "invalid `rate`: 0 (expected at least 1)");
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateLimit {
    rate: u32,
    period: Duration,
    burst: u32,
}

impl RateLimit {
    /// At most `rate` calls per `period`, evenly spaced, with **no burst**:
    /// one call every `period / rate`, so calls arriving together are
    /// spread out (waited or refused), even after a quiet spell. For up to
    /// `n` calls at once, use [`with_burst`](Self::with_burst).
    ///
    /// # Errors
    ///
    /// A zero `rate` or `period`, a `rate` above one call per nanosecond
    /// of `period`, or a `period / rate` beyond about 292 years (see the
    /// type's docs).
    pub fn new(rate: u32, period: Duration) -> Result<Self, ConfigError> {
        if rate == 0 {
            return Err(ConfigError::invalid("rate", rate, "at least 1"));
        }
        if period.is_zero() {
            return Err(ConfigError::invalid(
                "period",
                period,
                "a duration greater than zero",
            ));
        }
        if period.as_nanos() / u128::from(rate) == 0 {
            return Err(ConfigError::invalid(
                "rate",
                rate,
                "at most one call per nanosecond of the period",
            ));
        }
        if interval_nanos(rate, period) > MAX_SPAN_NANOS {
            return Err(ConfigError::invalid(
                "period",
                period,
                "at most about 292 years per call (period / rate within u64::MAX / 2 nanoseconds)",
            ));
        }
        Ok(RateLimit {
            rate,
            period,
            burst: 1,
        })
    }

    /// At most `rate` calls per second, with **no burst**: one call every
    /// `1 s / rate` (`per_second(50)` admits one call per 20 ms, so 20
    /// calls at once are not all admitted). For governor's
    /// `Quota::per_second(n)`, which admits `n` at once, use
    /// [`with_burst(n, Duration::from_secs(1), n)`](Self::with_burst).
    ///
    /// # Errors
    ///
    /// A zero `rate`.
    pub fn per_second(rate: u32) -> Result<Self, ConfigError> {
        Self::new(rate, Duration::from_secs(1))
    }

    /// At most `rate` calls per minute, with **no burst**: one call every
    /// `60 s / rate`. For bursts, use [`with_burst`](Self::with_burst).
    ///
    /// # Errors
    ///
    /// A zero `rate`.
    pub fn per_minute(rate: u32) -> Result<Self, ConfigError> {
        Self::new(rate, Duration::from_secs(60))
    }

    /// At most `rate` calls per `period`, and up to `burst` at once after a
    /// quiet spell (the budget refills at one call per `period / rate`).
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new); a zero `burst`, or one that makes
    /// `burst × period / rate` longer than about 292 years (see the type's
    /// docs).
    pub fn with_burst(rate: u32, period: Duration, burst: u32) -> Result<Self, ConfigError> {
        let limit = Self::new(rate, period)?;
        if burst == 0 {
            return Err(ConfigError::invalid("burst", burst, "at least 1"));
        }
        if interval_nanos(rate, period) * u128::from(burst) > MAX_SPAN_NANOS {
            return Err(ConfigError::invalid(
                "burst",
                burst,
                "small enough that burst × period / rate stays within about 292 years",
            ));
        }
        Ok(RateLimit { burst, ..limit })
    }

    /// Calls per period.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Calls admitted at once after a quiet spell.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The spacing between calls, `period / rate`, rounded up to whole
    /// nanoseconds.
    pub fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.interval_nanos())
    }

    fn interval_nanos(&self) -> u64 {
        // Fits: `new` refused intervals beyond `MAX_SPAN_NANOS`.
        u64::try_from(interval_nanos(self.rate, self.period)).unwrap_or(u64::MAX)
    }
}

/// The furthest ahead of the clock a limit's bookkeeping may run: one
/// interval times the burst. Half of `u64`'s range leaves the other half
/// (about 292 years) for the clock's own reading.
const MAX_SPAN_NANOS: u128 = (u64::MAX / 2) as u128;

/// `period / rate`, rounded up, in nanoseconds (`rate > 0`).
fn interval_nanos(rate: u32, period: Duration) -> u128 {
    period.as_nanos().div_ceil(u128::from(rate))
}

/// A combinator that lets calls into its inner combinator at a
/// [`RateLimit`] (the rate limiting of kompoz's concurrency guide).
///
/// The limit is enforced by GCRA, the algorithm governor uses: one atomic
/// word per limit, one clock read and one compare-and-swap per call, no
/// background task, no allocation. Time comes from the [`Clock`].
///
/// What a call does when it is over the rate is its [`LimitMode`], as for
/// [`Limited`](crate::Limited):
///
/// - [`LimitMode::Wait`] (the default): the call reserves the next free slot
///   at once and sleeps until it, so waiting calls run in the order they
///   arrived, each at its slot.
/// - [`LimitMode::Reject`] ([`reject_when_full`](Self::reject_when_full)): the
///   call returns `(false, ctx)` at once without running the inner
///   combinator.
/// - [`LimitMode::WaitAtMost`] ([`wait_at_most`](Self::wait_at_most)): the
///   call waits if its slot comes within the bound, and is rejected at once
///   otherwise (the slot is known up front, so it never waits in vain).
///
/// [`rejected`](Self::rejected) counts the rejected calls.
///
/// # Cancellation
///
/// A call dropped while waiting for its slot gives the slot back if no call
/// reserved a later slot in the meantime; otherwise the slot stays spent
/// (the later callers already wait for theirs, which cannot move). Either
/// way the limit is never exceeded. A slot whose call started is spent,
/// however the call ends.
///
/// # Shared limits
///
/// The budget is a [`RateLimiter`]: [`RateLimiter::guard`] puts several
/// combinators (and calls made by hand) on one budget.
/// [`RateLimited::named`] (the runtime crates' `rate_limited_named`) shares
/// one budget among every limiter built with the same name in a
/// [`Registry`]. A name asked for again with another [`RateLimit`] is an
/// error. Limiters sharing a name read the clock of the first one (clocks of
/// one kind may count from different origins), so they must use the same
/// clock type.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::{ClockExt, rule, Combinator, ManualClock, RateLimit};
///
/// let clock = ManualClock::new();
/// let api = rule(async |_: &u32| true);
/// // 2 calls per second; a third one at once is turned away.
/// let limited = clock.rate_limited(api, RateLimit::with_burst(2, Duration::from_secs(1), 2)?)
///     .reject_when_full();
///
/// futures::executor::block_on(async {
///     assert!(limited.run(1).await.0);
///     assert!(limited.run(2).await.0);
///     assert!(!limited.run(3).await.0); // over the rate: rejected
///     clock.advance(Duration::from_millis(500));
///     assert!(limited.run(4).await.0); // one slot refilled
/// });
/// assert_eq!(limited.rejected(), 1);
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
pub struct RateLimited<A, K> {
    inner: A,
    limiter: RateLimiter<K>,
    admission: Admission,
}

impl<A, K: Clock> RateLimited<A, K> {
    /// Limits `inner` to `limit`, with a budget of its own, timed by `clock`.
    pub fn new(inner: A, limit: RateLimit, clock: K) -> Self {
        Self::from_limiter(inner, RateLimiter::new(limit, clock))
    }

    /// Limits `inner` with the limit named `name` in `registry` (created with
    /// `limit` if the name is not in use): limiters built with the same name
    /// share one budget.
    ///
    /// The limiter reads time from the clock the name was first registered
    /// with (a clone of it), so that all limiters sharing it agree on the
    /// time; `clock` is used only when the name is new.
    ///
    /// # Errors
    ///
    /// - [`ConfigError::Invalid`] for an empty `name`.
    /// - [`ConfigError::NameConflict`] if `name` is in use with another
    ///   [`RateLimit`] (naming the first setting that differs) or with
    ///   another clock type (`clock`).
    ///
    /// # Examples
    ///
    /// ```
    /// use kompoz_core::{ClockExt, rule, Combinator, ManualClock, RateLimit, Registry};
    ///
    /// let registry = Registry::new();
    /// let clock = ManualClock::new();
    /// let limit = RateLimit::per_minute(1)?;
    /// let search = clock.rate_limited_named_in(rule(async |_: &()| true), limit, "api", &registry)?
    ///     .reject_when_full();
    /// let lookup = clock.rate_limited_named_in(rule(async |_: &()| true), limit, "api", &registry)?
    ///     .reject_when_full();
    ///
    /// futures::executor::block_on(async {
    ///     assert!(search.run(()).await.0);
    ///     assert!(!lookup.run(()).await.0); // the shared budget is spent
    /// });
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    pub fn named(
        inner: A,
        limit: RateLimit,
        name: &str,
        registry: &Registry,
        clock: K,
    ) -> Result<Self, ConfigError>
    where
        K: Send + Sync + 'static,
    {
        let limiter = RateLimiter::named(limit, name, registry, clock)?;
        Ok(Self::from_limiter(inner, limiter))
    }
}

impl<A, K> RateLimited<A, K> {
    pub(crate) fn from_limiter(inner: A, limiter: RateLimiter<K>) -> Self {
        let mut admission = Admission::default();
        if let Some(name) = limiter.name() {
            admission.observer_mut().set_name(name);
        }
        RateLimited {
            inner,
            limiter,
            admission,
        }
    }
}

impl<A, K> RateLimited<A, K> {
    crate::limiter::admission_methods! {
        /// Rejects a call over the rate at once with `(false, ctx)`, without
        /// running the inner combinator ([`LimitMode::Reject`]).
        reject_when_full;
        /// Lets a call over the rate wait for its slot if the slot comes within
        /// `bound`; rejects it at once otherwise ([`LimitMode::WaitAtMost`]). A
        /// zero `bound` is [`reject_when_full`](Self::reject_when_full).
        wait_at_most;
        /// Sets what a call over the rate does (see [`LimitMode`]);
        /// `LimitMode::WaitAtMost(Duration::ZERO)` is [`LimitMode::Reject`].
        with_mode;
        /// What a call over the rate does.
        mode;
        /// How many calls through this limiter were rejected.
        rejected;
    }

    /// The rate limit (shared, for a named limiter).
    pub fn limit(&self) -> RateLimit {
        self.limiter.limit()
    }

    /// The shared name, for a limiter built with [`named`](RateLimited::named).
    pub fn name(&self) -> Option<&str> {
        self.limiter.name()
    }

    /// The budget this combinator draws on (a handle: clone it, or
    /// [`guard`](RateLimiter::guard) other combinators with it, to share it).
    pub fn limiter(&self) -> &RateLimiter<K> {
        &self.limiter
    }

    crate::combinator::inner_access!(A, "limited");
}

impl<A, K: Clock> RateLimited<A, K> {
    /// Runs one call and says whether it ran (with which verdict) or was
    /// rejected. Safe to call from many tasks at once.
    pub async fn run_with_outcome<C>(&self, ctx: C) -> (LimitOutcome, C)
    where
        A: Combinator<C>,
    {
        let max_wait = self.admission.max_wait_nanos();
        let reservation = match self.limiter.reserve_nanos(max_wait) {
            Ok(reservation) => reservation,
            Err(refused) => {
                self.admission.reject(|| Event::RateRefused {
                    retry_at: refused.retry_at(),
                });
                return (LimitOutcome::Rejected, ctx);
            }
        };
        let waited = reservation.wait_nanos();
        if waited > 0 {
            // Dropped while waiting (the call was cancelled), the
            // reservation gives its slot back where it can.
            reservation.wait().await;
            self.admission.observer().emit(|| Event::RateWaited {
                waited: Duration::from_nanos(waited),
            });
        } else {
            reservation.commit();
        }
        // The slot has come: it is spent whatever the call does next.
        let (ok, ctx) = self.inner.run(ctx).await;
        (LimitOutcome::Ran(ok), ctx)
    }
}

impl<C, A, K> Combinator<C> for RateLimited<A, K>
where
    A: Combinator<C>,
    K: Clock,
{
    async fn run(&self, ctx: C) -> (bool, C) {
        let (outcome, ctx) = self.run_with_outcome(ctx).await;
        (outcome.passed(), ctx)
    }
}

impl<A: fmt::Debug, K> fmt::Debug for RateLimited<A, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimited")
            .field("inner", &self.inner)
            .field("limit", &self.limiter.limit())
            .field("name", &self.limiter.name())
            .field("mode", &self.admission.mode())
            .field("rejected", &self.rejected())
            .finish_non_exhaustive()
    }
}

crate::impl_ops!([A, K] RateLimited<A, K>);
