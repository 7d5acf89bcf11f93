//! The rate-limit layer: [`RateLimitLayer`], added by
//! [`Policy::rate_limit`] (a shared budget) or [`Policy::rate_limit_to`]
//! (its own); and [`RateLimiter::call`].

use core::fmt;
use core::future::Future;
use core::time::Duration;

use super::{Error, Layer, Operation, Policy, Stack};
use crate::call::operation::FnOperation;
use crate::observe::{Event, Observable, Observer};
use crate::{Clock, ConfigError, LimitMode, RateLimit, RateLimiter, Registry};

/// Lets calls into the layers inside it at most at its [`RateLimiter`]'s
/// rate. By default a call over the rate waits for its slot;
/// [`reject_when_full`](Policy::reject_when_full) refuses it at once and
/// [`wait_at_most`](Policy::wait_at_most) when its slot is further away
/// than a bound, with [`Error::RateLimited`] naming the earliest instant a
/// call would be admitted.
///
/// A call spends one slot, whatever happens inside; a call dropped while
/// it waits for its slot gives the slot back.
pub struct RateLimitLayer<K> {
    limiter: RateLimiter<K>,
    mode: LimitMode,
    observer: Observer,
}

impl<K: Clone> RateLimitLayer<K> {
    /// A layer spending `limiter`'s budget, waiting for its slots.
    pub fn new(limiter: &RateLimiter<K>) -> Self {
        let mut observer = Observer::new();
        if let Some(name) = limiter.name() {
            observer.set_name(name);
        }
        RateLimitLayer {
            limiter: limiter.clone(),
            mode: LimitMode::Wait,
            observer,
        }
    }
}

impl<K> RateLimitLayer<K> {
    /// The budget it spends.
    pub fn limiter(&self) -> &RateLimiter<K> {
        &self.limiter
    }

    /// What a call over the rate does.
    pub fn mode(&self) -> LimitMode {
        self.mode
    }
}

impl<T, E, K: Clock> Layer<T, E> for RateLimitLayer<K> {
    #[inline]
    fn call<O>(&self, op: O) -> impl Future<Output = Result<T, Error<E>>>
    where
        O: Operation<Output = T, Error = E>,
    {
        rate_limited(&self.limiter, self.mode, Some(&self.observer), op)
    }
}

#[inline]
async fn rate_limited<T, E, K: Clock, O>(
    limiter: &RateLimiter<K>,
    mode: LimitMode,
    observer: Option<&Observer>,
    mut op: O,
) -> Result<T, Error<E>>
where
    O: Operation<Output = T, Error = E>,
{
    let slot = match limiter.reserve(mode.max_wait()) {
        Ok(slot) => slot,
        Err(refused) => {
            if let Some(observer) = observer {
                observer.emit(|| Event::RateRefused {
                    retry_at: refused.retry_at(),
                });
            }
            return Err(refused.into());
        }
    };
    let waited = slot.wait_nanos();
    if waited == 0 {
        slot.commit();
    } else {
        // Dropped while it sleeps, the reservation gives its slot back.
        slot.wait().await;
        if let Some(observer) = observer {
            observer.emit(|| Event::RateWaited {
                waited: Duration::from_nanos(waited),
            });
        }
    }
    op.invoke().await
}

impl<K: Clone> Clone for RateLimitLayer<K> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            limiter: self.limiter.clone(),
            mode: self.mode,
            observer: self.observer.clone(),
        }
    }
}

impl<K> Observable for RateLimitLayer<K> {
    fn observer_mut(&mut self) -> &mut Observer {
        &mut self.observer
    }
}

impl<K> fmt::Debug for RateLimitLayer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.limiter)
            .field("mode", &self.mode)
            .field("observer", &self.observer)
            .finish()
    }
}

impl<K: Clock, S> Policy<K, S> {
    /// Adds a rate limit spending `limiter`'s budget, shared with every
    /// policy and [`RateLimited`](crate::RateLimited) combinator
    /// ([`RateLimiter::guard`]) that spends it. A call over the rate waits
    /// for its slot unless [`reject_when_full`](Policy::reject_when_full)
    /// or [`wait_at_most`](Policy::wait_at_most) says otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz_core::call::Error;
    /// use kompoz_core::{ClockExt, ManualClock, RateLimit};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = clock.rate_limiter(RateLimit::per_second(2)?);
    /// let policy = clock.policy().rate_limit(&limiter).reject_when_full();
    ///
    /// assert!(clock.block_on(policy.call(|| async { Ok::<_, ()>(()) })).is_ok());
    /// match clock.block_on(policy.call(|| async { Ok::<_, ()>(()) })) {
    ///     Err(Error::RateLimited(limited)) => {
    ///         assert_eq!(limited.retry_at().as_duration(), Duration::from_millis(500));
    ///     }
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    pub fn rate_limit(self, limiter: &RateLimiter<K>) -> Policy<K, Stack<S, RateLimitLayer<K>>> {
        self.layer(RateLimitLayer::new(limiter))
    }

    /// Adds a rate limit with a budget of its own, at `limit`'s rate.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz_core::{ClockExt, ManualClock, RateLimit};
    ///
    /// let clock = ManualClock::new();
    /// // One call every 100 ms; a call over the rate is refused, not delayed.
    /// let policy = clock.policy().rate_limit_to(RateLimit::per_second(10)?).reject_when_full();
    /// let call = || clock.block_on(policy.call(|| async { Ok::<_, ()>(()) }));
    /// assert!(call().is_ok());
    /// let refused = call();
    /// assert_eq!(
    ///     refused.unwrap_err().retry_at().map(|at| at.as_duration()),
    ///     Some(Duration::from_millis(100)),
    /// );
    /// clock.advance(Duration::from_millis(100));
    /// assert!(call().is_ok());
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    pub fn rate_limit_to(self, limit: RateLimit) -> Policy<K, Stack<S, RateLimitLayer<K>>> {
        let limiter = RateLimiter::new(limit, self.clock().clone());
        self.rate_limit(&limiter)
    }

    /// Adds a rate limit spending the budget named `name` in the
    /// process-wide [`Registry::global`], shared with every limiter of that
    /// name.
    ///
    /// # Errors
    ///
    /// An empty `name`, or a name in use with another limit or clock type
    /// ([`ConfigError::NameConflict`]).
    #[cfg(feature = "std")]
    pub fn rate_limit_named(
        self,
        limit: RateLimit,
        name: &str,
    ) -> Result<Policy<K, Stack<S, RateLimitLayer<K>>>, ConfigError>
    where
        K: Send + Sync + 'static,
    {
        self.rate_limit_named_in(limit, name, Registry::global())
    }

    /// As [`rate_limit_named`](Self::rate_limit_named), with the budget
    /// taken from `registry`.
    ///
    /// # Errors
    ///
    /// As [`rate_limit_named`](Self::rate_limit_named).
    pub fn rate_limit_named_in(
        self,
        limit: RateLimit,
        name: &str,
        registry: &Registry,
    ) -> Result<Policy<K, Stack<S, RateLimitLayer<K>>>, ConfigError>
    where
        K: Send + Sync + 'static,
    {
        let limiter = RateLimiter::named(limit, name, registry, self.clock().clone())?;
        Ok(self.rate_limit(&limiter))
    }
}

/// The settings of the rate-limit layer just added.
impl<K, S> Policy<K, Stack<S, RateLimitLayer<K>>> {
    /// Refuses a call over the rate at once with [`Error::RateLimited`].
    pub fn reject_when_full(self) -> Self {
        self.rate_limit_mode(LimitMode::Reject)
    }

    /// Lets a call wait for its slot at most `bound`; one whose slot is
    /// further away is refused at once with [`Error::RateLimited`].
    pub fn wait_at_most(self, bound: Duration) -> Self {
        self.rate_limit_mode(LimitMode::WaitAtMost(bound))
    }

    /// What a call over the rate does (see [`LimitMode`]).
    pub fn rate_limit_mode(mut self, mode: LimitMode) -> Self {
        self.last_mut().mode = mode.normalized();
        self
    }
}

impl<K: Clock> RateLimiter<K> {
    /// Calls `operation` in the next slot of this budget, waiting for it on
    /// the limiter's clock (a call dropped while it waits gives its slot
    /// back). The result is the operation's, its error in
    /// [`Error::Inner`]. To refuse instead of waiting, or for more layers,
    /// use a [`Policy`].
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz_core::{Clock, ClockExt, ManualClock, RateLimit};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = clock.rate_limiter(RateLimit::per_second(4)?);
    /// for _ in 0..3 {
    ///     clock.block_on(limiter.call(|| async { Ok::<_, ()>(()) })).unwrap();
    /// }
    /// assert_eq!(clock.now().as_duration(), Duration::from_millis(500));
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    pub async fn call<F, Fut, T, E>(&self, operation: F) -> Result<T, Error<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        rate_limited(self, LimitMode::Wait, None, FnOperation(operation)).await
    }
}
