//! The time-taking constructors with [`FuturesTimerClock`] plugged in:
//! kompoz under any executor, `futures::executor::block_on` included.
//!
//! Each function forwards to the [`ClockExt`] method of the same name.
//!
//! ```
//! use core::time::Duration;
//! use kompoz_core::{futures_timer::with_timeout, rule, Combinator};
//!
//! let check = with_timeout(rule(async |n: &u32| *n > 0), Duration::from_secs(1))?;
//! assert_eq!(futures::executor::block_on(check.run(1)), (true, 1));
//! # Ok::<(), kompoz_core::ConfigError>(())
//! ```

use core::time::Duration;

pub use crate::FuturesTimerClock;
use crate::{
    BreakerBuilder, CircuitBreakerBuilder, ClockExt, ConfigError, Limited, RateLimit, RateLimited,
    Registry, Retry, Timeout,
};

/// Wraps `inner` so that a call that has not finished within `timeout` is
/// dropped and returns `(false, ctx)` (kompoz's `with_timeout`), on
/// [`FuturesTimerClock`].
///
/// Set a hook for timed-out contexts with
/// [`.on_timeout(handle_timeout)`](crate::Timeout::on_timeout); see
/// [`Timeout`] for the semantics and per-call outcomes. The
/// clock-generic form is [`ClockExt::with_timeout`].
///
/// # Errors
///
/// [`ConfigError::Invalid`] naming `timeout` if
/// it is zero.
pub fn with_timeout<A>(
    inner: A,
    timeout: Duration,
) -> Result<Timeout<A, FuturesTimerClock>, ConfigError> {
    FuturesTimerClock.with_timeout(inner, timeout)
}

/// Lets at most `max_concurrent` calls into `inner` at once, the others
/// waiting in arrival order (kompoz's `limited`), on [`FuturesTimerClock`].
///
/// Bulkhead modes: [`.reject_when_full()`](crate::Limited::reject_when_full),
/// [`.wait_at_most(bound)`](crate::Limited::wait_at_most). See
/// [`Limited`]. The clock-generic form is
/// [`ClockExt::limited`].
///
/// # Errors
///
/// [`ConfigError::Invalid`] naming
/// `max_concurrent` if it is zero.
pub fn limited<A>(
    inner: A,
    max_concurrent: usize,
) -> Result<Limited<A, FuturesTimerClock>, ConfigError> {
    FuturesTimerClock.limited(inner, max_concurrent)
}

/// As [`limited`], with the pool named `name` in the process-wide
/// [`Registry`](crate::Registry::global): limiters named alike share one pool
/// (kompoz's `limited(..., name="api_pool")`). See
/// [`ClockExt::limited_named`].
///
/// # Errors
///
/// A zero `max_concurrent`, an empty `name`, or a name in use with another
/// capacity ([`ConfigError::NameConflict`]).
pub fn limited_named<A>(
    inner: A,
    max_concurrent: usize,
    name: &str,
) -> Result<Limited<A, FuturesTimerClock>, ConfigError> {
    FuturesTimerClock.limited_named(inner, max_concurrent, name)
}

/// As [`limited_named`], with the pool taken from `registry` instead of the
/// process-wide one. See [`ClockExt::limited_named_in`].
///
/// # Errors
///
/// As [`limited_named`].
pub fn limited_named_in<A>(
    inner: A,
    max_concurrent: usize,
    name: &str,
    registry: &Registry,
) -> Result<Limited<A, FuturesTimerClock>, ConfigError> {
    FuturesTimerClock.limited_named_in(inner, max_concurrent, name, registry)
}

/// Guards `inner` with a circuit breaker of its own (the reference's
/// `circuit_breaker`), on [`FuturesTimerClock`].
///
/// Returns a builder with the reference's defaults (5 consecutive failures
/// open the circuit, 30 s later one probe is let through); finish with
/// `.build()?`. See [`CircuitBreaker`](crate::CircuitBreaker) for the policies.
/// The clock-generic form is [`ClockExt::circuit_breaker`].
pub fn circuit_breaker<I>(inner: I) -> CircuitBreakerBuilder<I, FuturesTimerClock> {
    FuturesTimerClock.circuit_breaker(inner)
}

/// A circuit breaker on [`FuturesTimerClock`] that several combinators share, each
/// guarded with [`Breaker::guard`](crate::Breaker::guard); finish with
/// `.build()?`. See [`ClockExt::shared_breaker`].
pub fn shared_breaker() -> BreakerBuilder<FuturesTimerClock> {
    FuturesTimerClock.shared_breaker()
}

/// An empty call [`Policy`](crate::call::Policy) on [`FuturesTimerClock`]: add layers
/// outermost first, then `policy.call(|| fetch(url)).await` returns
/// `Result<T, Error<E>>`. See the [`call`](crate::call) module and
/// [`ClockExt::policy`].
pub fn policy() -> crate::call::Policy<FuturesTimerClock> {
    FuturesTimerClock.policy()
}

/// Retries `inner` up to `max_attempts` runs in all while it fails
/// (kompoz's `AsyncRetry`), waiting on [`FuturesTimerClock`] between attempts. See
/// [`Retry`] and [`ClockExt::retry`].
///
/// # Errors
///
/// [`ConfigError::Invalid`] naming
/// `max_attempts` if it is zero.
pub fn retry<A>(inner: A, max_attempts: u32) -> Result<Retry<A, FuturesTimerClock>, ConfigError> {
    FuturesTimerClock.retry(inner, max_attempts)
}

/// Lets calls into `inner` at most at `limit`'s rate, on [`FuturesTimerClock`]; by
/// default a call over the rate waits for its slot. See
/// [`RateLimited`] and [`ClockExt::rate_limited`].
pub fn rate_limited<A>(inner: A, limit: RateLimit) -> RateLimited<A, FuturesTimerClock> {
    FuturesTimerClock.rate_limited(inner, limit)
}

/// As [`rate_limited`], with the limit named `name` in the process-wide
/// [`Registry`](crate::Registry::global): limiters named alike share one
/// budget. See [`ClockExt::rate_limited_named`].
///
/// # Errors
///
/// An empty `name`, or a name in use with another limit
/// ([`ConfigError::NameConflict`]).
pub fn rate_limited_named<A>(
    inner: A,
    limit: RateLimit,
    name: &str,
) -> Result<RateLimited<A, FuturesTimerClock>, ConfigError> {
    FuturesTimerClock.rate_limited_named(inner, limit, name)
}

/// As [`rate_limited_named`], with the limit taken from `registry` instead
/// of the process-wide one. See [`ClockExt::rate_limited_named_in`].
///
/// # Errors
///
/// As [`rate_limited_named`].
pub fn rate_limited_named_in<A>(
    inner: A,
    limit: RateLimit,
    name: &str,
    registry: &Registry,
) -> Result<RateLimited<A, FuturesTimerClock>, ConfigError> {
    FuturesTimerClock.rate_limited_named_in(inner, limit, name, registry)
}

/// A rate-limit budget of its own on [`FuturesTimerClock`], as a handle: admit calls
/// made by hand with [`check`](crate::RateLimiter::check) or
/// [`reserve`](crate::RateLimiter::reserve), and guard combinators with
/// [`guard`](crate::RateLimiter::guard), all on one budget. See
/// [`ClockExt::rate_limiter`].
pub fn rate_limiter(limit: RateLimit) -> crate::RateLimiter<FuturesTimerClock> {
    FuturesTimerClock.rate_limiter(limit)
}

/// As [`rate_limiter`], with the budget named `name` in the process-wide
/// [`Registry`](crate::Registry::global): the same budget as
/// [`rate_limited_named`] with that name. See
/// [`ClockExt::rate_limiter_named`].
///
/// # Errors
///
/// As [`rate_limited_named`].
pub fn rate_limiter_named(
    limit: RateLimit,
    name: &str,
) -> Result<crate::RateLimiter<FuturesTimerClock>, ConfigError> {
    FuturesTimerClock.rate_limiter_named(limit, name)
}

/// As [`rate_limiter_named`], with the budget taken from `registry` instead
/// of the process-wide one. See [`ClockExt::rate_limiter_named_in`].
///
/// # Errors
///
/// As [`rate_limited_named`].
pub fn rate_limiter_named_in(
    limit: RateLimit,
    name: &str,
    registry: &Registry,
) -> Result<crate::RateLimiter<FuturesTimerClock>, ConfigError> {
    FuturesTimerClock.rate_limiter_named_in(limit, name, registry)
}
