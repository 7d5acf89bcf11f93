//! [`ClockExt`]: every time-taking constructor, as a method of the clock.

use core::time::Duration;

use crate::{
    Breaker, BreakerBuilder, CircuitBreaker, CircuitBreakerBuilder, Clock, ConfigError, Limited,
    Policy, RateLimit, RateLimited, RateLimiter, Registry, Retry, Timeout,
};

/// The constructors of every combinator that takes time, on the clock that
/// times it: write a policy once, generic over `K: Clock`, and run it on
/// tokio, async-std, smol, `futures-timer`, bare metal, or under
/// [`ManualClock`](crate::ManualClock) in a test.
///
/// The methods carry the reference's names (`with_timeout`, `limited`,
/// `circuit_breaker`, …). The runtime crates' free functions of the same
/// names are these methods with the runtime's clock plugged in:
/// `kompoz_tokio::with_timeout(a, d)` is `TokioClock.with_timeout(a, d)`.
///
/// Implemented for every [`Clock`]; bring it into scope with
/// `use kompoz_core::ClockExt` (or a runtime crate's `prelude`).
///
/// # Examples
///
/// One policy function, used under virtual time here and with `TokioClock`,
/// `SmolClock`, … in an application:
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::{rule, Clock, ClockExt, Combinator, ConfigError, ManualClock};
///
/// /// limit ∘ breaker ∘ timeout ∘ retry around a check, on any clock.
/// fn policy<K: Clock>(clock: &K) -> Result<impl Combinator<u32>, ConfigError> {
///     let check = rule(async |n: &u32| *n % 2 == 0);
///     let retried = clock.retry(check, 3)?.fixed(Duration::from_millis(10));
///     let timed = clock.with_timeout(retried, Duration::from_secs(1))?;
///     let guarded = clock.circuit_breaker(timed).failure_threshold(5).build()?;
///     clock.limited(guarded, 8)
/// }
///
/// let clock = ManualClock::new();
/// let policy = policy(&clock)?;
/// assert_eq!(clock.block_on(policy.run(4)), (true, 4));
/// assert_eq!(clock.block_on(policy.run(3)), (false, 3));
/// // Two waits of 10 ms between the three attempts, in virtual time.
/// assert_eq!(clock.now().as_duration(), Duration::from_millis(20));
/// # Ok::<(), ConfigError>(())
/// ```
///
/// A policy whose calls are spawned on a multi-threaded runtime bounds its
/// clock by [`SendClock`](crate::SendClock), takes its parts as
/// `impl SendCombinator<C>` (put in with `.send_part()`), wraps the stack
/// with [`spawnable!`](crate::spawnable!), and takes the breaker it guards
/// with, so that the application and its tests can watch it:
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::{
///     rule_fn, spawnable, Breaker, CircuitState, ClockExt, ConfigError, ManualClock, SendClock,
///     SendCombinator,
/// };
///
/// fn policy<K: SendClock>(
///     clock: &K,
///     breaker: &Breaker<K>,
///     check: impl SendCombinator<u32>,
/// ) -> Result<impl SendCombinator<u32>, ConfigError> {
///     let retried = clock.retry(check.send_part(), 3)?.fixed(Duration::from_millis(10));
///     let timed = clock.with_timeout(retried, Duration::from_secs(1))?;
///     Ok(spawnable!(clock.limited(breaker.guard(timed), 8)?))
/// }
///
/// let clock = ManualClock::new();
/// let breaker = clock.shared_breaker().failure_threshold(2).build()?;
/// let api = policy(&clock, &breaker, rule_fn(|n: &u32| {
///     let even = *n % 2 == 0;
///     async move { even }
/// }))?;
/// // `run_send(ctx)` is `Send + 'static`: `tokio::spawn(api.run_send(4))` on tokio.
/// assert_eq!(clock.block_on(api.run_send(4)), (true, 4));
/// assert_eq!(clock.block_on(api.run_send(3)), (false, 3));
/// assert_eq!(breaker.state(), CircuitState::Closed); // one failure of two
/// # Ok::<(), ConfigError>(())
/// ```
pub trait ClockExt: Clock {
    /// An empty call [`Policy`] on this clock: add layers outermost first
    /// (`.limit_to(10)?.retry(3)?.breaker(&breaker).timeout(d)?`), then
    /// `policy.call(|| fetch(url)).await` returns `Result<T, Error<E>>`.
    /// See the [`call`](crate::call) module for the layers and their order.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz_core::call::Error;
    /// use kompoz_core::{Clock, ClockExt, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let policy = clock.policy().retry(2)?.timeout(Duration::from_millis(50))?;
    /// // A hung operation: two attempts time out, in 100 ms of virtual time.
    /// let hung = clock.block_on(policy.call(|| {
    ///     let sleep = clock.sleep(Duration::from_secs(60));
    ///     async move { sleep.await; Ok::<_, ()>(()) }
    /// }));
    /// assert!(matches!(hung, Err(Error::TimedOut(t)) if t.after() == Duration::from_millis(50)));
    /// assert_eq!(clock.now().as_duration(), Duration::from_millis(100));
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    fn policy(&self) -> Policy<Self> {
        Policy::new(self.clone())
    }

    /// Wraps `inner` so that a call that has not finished within `timeout`
    /// is dropped and returns `(false, ctx)` (kompoz's `with_timeout`).
    ///
    /// Set a hook for timed-out contexts with
    /// [`.on_timeout(handle_timeout)`](Timeout::on_timeout); see [`Timeout`]
    /// for the semantics, per-call outcomes and examples.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `timeout` if it is zero.
    fn with_timeout<A>(
        &self,
        inner: A,
        timeout: Duration,
    ) -> Result<Timeout<A, Self>, ConfigError> {
        Timeout::new(inner, timeout, self.clone())
    }

    /// Lets at most `max_concurrent` calls into `inner` at once; the others
    /// wait in arrival order (kompoz's `limited`).
    ///
    /// Bulkhead modes: [`.reject_when_full()`](Limited::reject_when_full),
    /// [`.wait_at_most(bound)`](Limited::wait_at_most). See [`Limited`] for
    /// the semantics and examples.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `max_concurrent` if it is zero.
    fn limited<A>(&self, inner: A, max_concurrent: usize) -> Result<Limited<A, Self>, ConfigError> {
        Limited::new(inner, max_concurrent, self.clone())
    }

    /// As [`limited`](Self::limited), with the pool named `name` in the
    /// process-wide [`Registry::global`]: limiters named alike share one pool
    /// (kompoz's `limited(..., name="api_pool")`).
    ///
    /// # Errors
    ///
    /// A zero `max_concurrent`, an empty `name`, or a name in use with
    /// another capacity ([`ConfigError::NameConflict`]).
    #[cfg(feature = "std")]
    fn limited_named<A>(
        &self,
        inner: A,
        max_concurrent: usize,
        name: &str,
    ) -> Result<Limited<A, Self>, ConfigError> {
        self.limited_named_in(inner, max_concurrent, name, Registry::global())
    }

    /// As [`limited_named`](Self::limited_named), with the pool taken from
    /// `registry` instead of the process-wide one (to isolate pools, e.g.
    /// per test).
    ///
    /// # Errors
    ///
    /// As [`limited_named`](Self::limited_named).
    fn limited_named_in<A>(
        &self,
        inner: A,
        max_concurrent: usize,
        name: &str,
        registry: &Registry,
    ) -> Result<Limited<A, Self>, ConfigError> {
        Limited::named(inner, max_concurrent, name, registry, self.clone())
    }

    /// Guards `inner` with a circuit breaker of its own (the reference's
    /// `circuit_breaker`).
    ///
    /// Returns a builder with the reference's defaults (5 consecutive
    /// failures open the circuit, 30 s later one probe is let through);
    /// finish with `.build()?`, which validates every setting at once. See
    /// [`CircuitBreaker`] for the policies and examples.
    fn circuit_breaker<I>(&self, inner: I) -> CircuitBreakerBuilder<I, Self> {
        CircuitBreaker::builder(inner, self.clone())
    }

    /// A circuit breaker that several combinators share, each guarded with
    /// [`Breaker::guard`]. Finish with `.build()?`.
    fn shared_breaker(&self) -> BreakerBuilder<Self> {
        Breaker::builder(self.clone())
    }

    /// Retries `inner` up to `max_attempts` runs in all while it fails
    /// (kompoz's `AsyncRetry`), with no delay until one is configured
    /// ([`.fixed(d)`](Retry::fixed),
    /// [`.backoff(Backoff::exponential(..)?)`](Retry::backoff)). See
    /// [`Retry`].
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `max_attempts` if it is zero.
    fn retry<A>(&self, inner: A, max_attempts: u32) -> Result<Retry<A, Self>, ConfigError> {
        Retry::new(inner, max_attempts, self.clone())
    }

    /// Lets calls into `inner` at most at `limit`'s rate; by default a call
    /// over the rate waits for its slot. See [`RateLimited`].
    fn rate_limited<A>(&self, inner: A, limit: RateLimit) -> RateLimited<A, Self> {
        RateLimited::new(inner, limit, self.clone())
    }

    /// As [`rate_limited`](Self::rate_limited), with the limit named `name`
    /// in the process-wide [`Registry::global`]: limiters named alike share
    /// one budget.
    ///
    /// # Errors
    ///
    /// An empty `name`, or a name in use with another limit or clock type
    /// ([`ConfigError::NameConflict`]).
    #[cfg(feature = "std")]
    fn rate_limited_named<A>(
        &self,
        inner: A,
        limit: RateLimit,
        name: &str,
    ) -> Result<RateLimited<A, Self>, ConfigError>
    where
        Self: Send + Sync + 'static,
    {
        self.rate_limited_named_in(inner, limit, name, Registry::global())
    }

    /// As [`rate_limited_named`](Self::rate_limited_named), with the limit
    /// taken from `registry` instead of the process-wide one.
    ///
    /// # Errors
    ///
    /// As [`rate_limited_named`](Self::rate_limited_named).
    fn rate_limited_named_in<A>(
        &self,
        inner: A,
        limit: RateLimit,
        name: &str,
        registry: &Registry,
    ) -> Result<RateLimited<A, Self>, ConfigError>
    where
        Self: Send + Sync + 'static,
    {
        RateLimited::named(inner, limit, name, registry, self.clone())
    }

    /// A rate-limit budget of its own, as a handle: admit calls made by hand
    /// with [`check`](RateLimiter::check) and
    /// [`reserve`](RateLimiter::reserve), and guard combinators with
    /// [`guard`](RateLimiter::guard), all on one budget. See [`RateLimiter`].
    fn rate_limiter(&self, limit: RateLimit) -> RateLimiter<Self> {
        RateLimiter::new(limit, self.clone())
    }

    /// As [`rate_limiter`](Self::rate_limiter), with the budget named `name`
    /// in the process-wide [`Registry::global`]: the same budget as
    /// [`rate_limited_named`](Self::rate_limited_named) with that name.
    ///
    /// # Errors
    ///
    /// As [`rate_limited_named`](Self::rate_limited_named).
    ///
    /// # Examples
    ///
    /// ```
    /// use kompoz_core::{ClockExt, rule, Combinator, ManualClock, RateLimit};
    ///
    /// let clock = ManualClock::new();
    /// let limit = RateLimit::per_minute(1)?;
    /// let budget = clock.rate_limiter_named(limit, "doc-example-search")?;
    /// let search = clock.rate_limited_named(rule(async |_: &()| true), limit, "doc-example-search")?
    ///     .reject_when_full();
    /// assert!(budget.check().is_ok());
    /// assert!(!futures::executor::block_on(search.run(())).0); // one budget: spent
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    #[cfg(feature = "std")]
    fn rate_limiter_named(
        &self,
        limit: RateLimit,
        name: &str,
    ) -> Result<RateLimiter<Self>, ConfigError>
    where
        Self: Send + Sync + 'static,
    {
        self.rate_limiter_named_in(limit, name, Registry::global())
    }

    /// As [`rate_limiter_named`](Self::rate_limiter_named), with the budget
    /// taken from `registry` instead of the process-wide one.
    ///
    /// # Errors
    ///
    /// As [`rate_limited_named`](Self::rate_limited_named).
    fn rate_limiter_named_in(
        &self,
        limit: RateLimit,
        name: &str,
        registry: &Registry,
    ) -> Result<RateLimiter<Self>, ConfigError>
    where
        Self: Send + Sync + 'static,
    {
        RateLimiter::named(limit, name, registry, self.clone())
    }
}

impl<K: Clock> ClockExt for K {}
