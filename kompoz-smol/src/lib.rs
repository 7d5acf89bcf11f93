//! # kompoz-smol
//!
//! [`kompoz-core`](kompoz_core)'s combinators with smol's timer
//! ([`async_io::Timer`]) plugged in. `use kompoz_smol::prelude::*;` brings
//! what an application needs (the traits, the leaves, the configuration
//! values, and the time-taking constructors `with_timeout`,
//! `circuit_breaker`, … on [`SmolClock`], each the [`ClockExt`] method of
//! the same name); the whole core API is at this crate's root.
//!
//! The timer is `async-io`'s, so it works under `smol`, `async-executor`, and
//! any executor that runs alongside `async-io`'s reactor. For other runtimes
//! see [`kompoz-tokio`](https://docs.rs/kompoz-tokio) and
//! [`kompoz-async-std`](https://docs.rs/kompoz-async-std).
//!
//! ```
//! use std::time::Duration;
//! use kompoz_smol::{Clock, SmolClock};
//!
//! smol::block_on(async {
//!     let clock = SmolClock::new();
//!     let start = clock.now();
//!     clock.sleep(Duration::from_millis(5)).await;
//!     assert!(clock.now().duration_since(start) >= Duration::from_millis(5));
//! });
//! ```

#![doc(test(attr(deny(warnings))))]

pub use kompoz_core::*;

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

/// A [`Clock`] over [`std::time::Instant`] and [`async_io::Timer`].
///
/// Instants are on the process-wide timeline of [`Instant::from_std`], so
/// every `SmolClock` agrees, wherever it was created.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmolClock;

impl SmolClock {
    /// The clock (a unit value; every `SmolClock` reads the same time).
    pub fn new() -> Self {
        SmolClock
    }
}

/// The future returned by [`SmolClock::sleep`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct SmolSleep(async_io::Timer);

impl Future for SmolSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(drop)
    }
}

impl Clock for SmolClock {
    type Sleep = SmolSleep;

    #[inline]
    fn now(&self) -> Instant {
        Instant::from_std(std::time::Instant::now())
    }

    fn sleep(&self, duration: Duration) -> SmolSleep {
        SmolSleep(async_io::Timer::after(duration))
    }
}

/// The names an application needs, for a glob import:
/// `use kompoz_smol::prelude::*;`.
///
/// [`kompoz_core::prelude`] (the traits, leaves, composition functions and
/// configuration values), [`SmolClock`], and the constructors on it. Nothing in it
/// is named like an item of smol (no `Instant`, `Timeout`, `Semaphore`,
/// `timeout`, `sleep`), so it sits beside smol's own glob imports; the
/// combinator types and the rest of the API are at this crate's root.
pub mod prelude {
    pub use crate::{
        SmolClock, circuit_breaker, limited, limited_named, limited_named_in, policy, rate_limited,
        rate_limited_named, rate_limited_named_in, retry, shared_breaker, with_timeout,
    };
    pub use kompoz_core::prelude::*;
}

// The reference's constructors, each a forward to the `ClockExt` method of
// the same name with this crate's clock.
/// Wraps `inner` so that a call that has not finished within `timeout` is
/// dropped and returns `(false, ctx)` (kompoz's `with_timeout`), on
/// [`SmolClock`].
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
pub fn with_timeout<A>(inner: A, timeout: Duration) -> Result<Timeout<A, SmolClock>, ConfigError> {
    SmolClock.with_timeout(inner, timeout)
}

/// Lets at most `max_concurrent` calls into `inner` at once, the others
/// waiting in arrival order (kompoz's `limited`), on [`SmolClock`].
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
pub fn limited<A>(inner: A, max_concurrent: usize) -> Result<Limited<A, SmolClock>, ConfigError> {
    SmolClock.limited(inner, max_concurrent)
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
) -> Result<Limited<A, SmolClock>, ConfigError> {
    SmolClock.limited_named(inner, max_concurrent, name)
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
) -> Result<Limited<A, SmolClock>, ConfigError> {
    SmolClock.limited_named_in(inner, max_concurrent, name, registry)
}

/// Guards `inner` with a circuit breaker of its own (the reference's
/// `circuit_breaker`), on [`SmolClock`].
///
/// Returns a builder with the reference's defaults (5 consecutive failures
/// open the circuit, 30 s later one probe is let through); finish with
/// `.build()?`. See [`CircuitBreaker`] for the policies.
/// The clock-generic form is [`ClockExt::circuit_breaker`].
pub fn circuit_breaker<I>(inner: I) -> CircuitBreakerBuilder<I, SmolClock> {
    SmolClock.circuit_breaker(inner)
}

/// A circuit breaker on [`SmolClock`] that several combinators share, each
/// guarded with [`Breaker::guard`]; finish with
/// `.build()?`. See [`ClockExt::shared_breaker`].
pub fn shared_breaker() -> BreakerBuilder<SmolClock> {
    SmolClock.shared_breaker()
}

/// An empty call [`Policy`] on [`SmolClock`]: add layers
/// outermost first, then `policy.call(|| fetch(url)).await` returns
/// `Result<T, Error<E>>`. See the [`call`] module and
/// [`ClockExt::policy`].
pub fn policy() -> Policy<SmolClock> {
    SmolClock.policy()
}

/// Retries `inner` up to `max_attempts` runs in all while it fails
/// (kompoz's `AsyncRetry`), waiting on [`SmolClock`] between attempts. See
/// [`Retry`] and [`ClockExt::retry`].
///
/// # Errors
///
/// [`ConfigError::Invalid`] naming
/// `max_attempts` if it is zero.
pub fn retry<A>(inner: A, max_attempts: u32) -> Result<Retry<A, SmolClock>, ConfigError> {
    SmolClock.retry(inner, max_attempts)
}

/// Lets calls into `inner` at most at `limit`'s rate, on [`SmolClock`]; by
/// default a call over the rate waits for its slot. See
/// [`RateLimited`] and [`ClockExt::rate_limited`].
pub fn rate_limited<A>(inner: A, limit: RateLimit) -> RateLimited<A, SmolClock> {
    SmolClock.rate_limited(inner, limit)
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
) -> Result<RateLimited<A, SmolClock>, ConfigError> {
    SmolClock.rate_limited_named(inner, limit, name)
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
) -> Result<RateLimited<A, SmolClock>, ConfigError> {
    SmolClock.rate_limited_named_in(inner, limit, name, registry)
}

/// A rate-limit budget of its own on [`SmolClock`], as a handle: admit calls
/// made by hand with [`check`](crate::RateLimiter::check) or
/// [`reserve`](crate::RateLimiter::reserve), and guard combinators with
/// [`guard`](crate::RateLimiter::guard), all on one budget. See
/// [`ClockExt::rate_limiter`].
pub fn rate_limiter(limit: RateLimit) -> crate::RateLimiter<SmolClock> {
    SmolClock.rate_limiter(limit)
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
) -> Result<crate::RateLimiter<SmolClock>, ConfigError> {
    SmolClock.rate_limiter_named(limit, name)
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
) -> Result<crate::RateLimiter<SmolClock>, ConfigError> {
    SmolClock.rate_limiter_named_in(limit, name, registry)
}
