//! The call API: resilience for calls that return a `Result`.
//!
//! The algebra runs `(bool, ctx)` combinators; most Rust code holds
//! something else — a closure that makes a future returning
//! `Result<T, E>`. A [`Policy`] stacks the same resilience layers around
//! such calls and returns `Result<T, Error<E>>`, where [`Error`] says which
//! layer refused the call, with the figures to act on, or carries the
//! operation's own error.
//!
//! ```
//! use core::time::Duration;
//! use kompoz_core::call::Error;
//! use kompoz_core::{Backoff, ClockExt, ConfigError, ManualClock};
//!
//! #[derive(Debug)]
//! struct FetchError(String); // neither `Clone` nor `Copy` is needed
//!
//! async fn fetch(url: &str) -> Result<String, FetchError> {
//!     Ok(format!("<html>{url}</html>"))
//! }
//!
//! let clock = ManualClock::new(); // a runtime's clock in an application
//! let breaker = clock.shared_breaker().failure_threshold(5).build()?;
//! let policy = clock
//!     .policy()
//!     .limit_to(10)?
//!     .retry(3)?
//!     .backoff(Backoff::exponential(Duration::from_millis(100), 2.0, Duration::from_secs(1))?)
//!     .breaker(&breaker)
//!     .timeout(Duration::from_secs(2))?;
//!
//! let url = "https://example.com";
//! match clock.block_on(policy.call(|| fetch(url))) {
//!     Ok(body) => assert_eq!(body, "<html>https://example.com</html>"),
//!     Err(Error::Inner(FetchError(why))) => panic!("failed three times: {why}"),
//!     Err(refused) => panic!("not tried: {refused:?}"),
//! }
//! # Ok::<(), ConfigError>(())
//! ```
//!
//! One-layer calls need no policy: [`Breaker::call`](crate::Breaker::call),
//! [`Semaphore::call`](crate::Semaphore::call),
//! [`RateLimiter::call`](crate::RateLimiter::call).
//!
//! The [`Breaker`](crate::Breaker), the pool ([`Semaphore`](crate::Semaphore))
//! and the rate limiter a policy is given are shared, not copied: the same
//! objects may guard combinators of the algebra and other policies at the
//! same time, with one state.
//!
//! # The error
//!
//! [`Error<E>`] says why a call failed:
//!
//! | variant | refused by | carries |
//! |---|---|---|
//! | [`Error::Inner`] | nobody: the operation ran and failed | the operation's `E` |
//! | [`Error::CircuitOpen`] | a circuit breaker | [`CircuitOpen`]: the state, and when a call may pass again |
//! | [`Error::PoolFull`] | a concurrency limit (bulkhead) | [`PoolFull`]: how long the call waited |
//! | [`Error::RateLimited`] | a rate limit | [`RateLimitExceeded`]: the earliest admission |
//! | [`Error::TimedOut`] | a timeout | [`TimedOut`]: after how long |
//!
//! The refusal structs are plain values with public constructors, so that
//! integrations (tower layers, shared-state back ends) build the same errors
//! as the core's own layers.
//!
//!
//! # Layer order
//!
//! A policy is written outermost first: each builder method adds a layer
//! inside the ones before it, and a call meets them in the order written.
//! The recommended stack, and the order the methods are listed in:
//!
//! ```text
//! rate_limit → limit → retry → breaker → timeout → the operation
//! ```
//!
//! - **The limits outermost.** A rate limit or a pool admits a *call*,
//!   once, whatever happens inside: a call's retries do not queue again
//!   for a permit or spend another slot of the rate, so a retry storm
//!   cannot exceed the limits, and a call refused by them is refused
//!   before anything is tried.
//! - **The retry outside the breaker.** Each attempt asks the breaker;
//!   while it is open, the attempt is refused with
//!   [`Error::CircuitOpen`], and refusals are not retried by default
//!   ([`Policy::retry_error_if`] asks for it, and then waits until the
//!   refusal's [`retry_at`](Error::retry_at)). Each attempt's outcome is
//!   one sample for the breaker, so a failing service opens it within
//!   `failure_threshold` attempts, not calls.
//! - **The timeout inside the breaker.** A hung attempt then ends as
//!   [`Error::TimedOut`], which the breaker counts as a failure; the
//!   timeout bounds each attempt, and the retry's back-off comes on top.
//!
//! Other orders are allowed and mean something else:
//!
//! | order | what it means |
//! |---|---|
//! | `timeout` outside `retry` | one deadline for the whole call, back-off included: attempts stop when it passes |
//! | `timeout` outside `breaker` | the breaker never sees the timeout (the attempt is dropped, which it counts as nothing): a service that hangs never opens it |
//! | `breaker` outside `retry` | the breaker sees one outcome per call (after all its attempts), and an open circuit refuses the whole call |
//! | `limit` inside `retry` | every attempt waits for a permit again; a permit is free during back-off |
//! | `limit` inside `breaker` | in reject or bounded-wait mode, and not under a timeout: a full pool is not a failure and counts as nothing, but the breaker admits calls (and half-open probes) that then wait in the pool |
//! | `rate_limit` inside `retry` | every attempt spends a slot of the rate |
//! | `limit` or `rate_limit` inside `timeout` | the wait for a permit or a slot counts against the attempt's deadline: a long queue ends as [`Error::TimedOut`], and with a breaker outside the timeout that counts as a failure, so local queueing can open the circuit |
//!
//! The breaker layer counts an [`Error::Inner`] (by default; see
//! [`Policy::failure_if_err`]) and an [`Error::TimedOut`] as failures,
//! and a refusal by a layer inside it as nothing.
//!
//! # Cost
//!
//! A call allocates nothing: the policy's layers are one nested state
//! machine over the operation's future, and a permit is held in it. A
//! call's future is `Send` when the policy's parts (its clock's sleep
//! included) and the operation's future are; `T` and `E` are never cloned.
//!
//! # The primitives under a call
//!
//! Each layer's object exposes the step a call API needs, usable on its own:
//!
//! - a circuit breaker: [`Breaker::try_acquire`](crate::Breaker::try_acquire)
//!   gives a permit (or a [`CircuitOpen`]); the permit records the outcome
//!   with `success()` / `failure()`, and a permit dropped unused is a
//!   cancelled call (nothing counted, a probe slot given back);
//! - a pool: [`Semaphore::try_acquire_owned`](crate::Semaphore::try_acquire_owned)
//!   and [`Semaphore::acquire_owned`](crate::Semaphore::acquire_owned), whose
//!   permits are `'static`;
//! - a rate limit: [`RateLimiter::check`](crate::RateLimiter::check) (or a
//!   [`RateLimitExceeded`] naming the earliest admission) and
//!   [`RateLimiter::reserve`](crate::RateLimiter::reserve).
//!
//! The same `Breaker`, pool and `RateLimiter` objects guard combinators of
//! the algebra at the same time: one budget, two faces.
//!
//! # Examples
//!
//! A breaker guarding a `Result`-returning call by hand:
//!
//! ```
//! use kompoz_core::{call::Error, ClockExt, CircuitState, ManualClock};
//!
//! #[derive(Debug)]
//! struct Refused;
//!
//! async fn fetch(up: bool) -> Result<&'static str, Refused> {
//!     if up { Ok("body") } else { Err(Refused) }
//! }
//!
//! let breaker = ManualClock::new().shared_breaker().failure_threshold(1).build()?;
//! let guarded = async |up: bool| -> Result<&'static str, Error<Refused>> {
//!     let permit = breaker.try_acquire()?; // a `CircuitOpen` becomes `Error::CircuitOpen`
//!     let result = fetch(up).await;
//!     permit.record(result.is_err());
//!     result.map_err(Error::Inner)
//! };
//!
//! futures::executor::block_on(async {
//!     assert!(matches!(guarded(false).await, Err(Error::Inner(Refused))));
//!     let refused = guarded(true).await.unwrap_err();
//!     assert!(refused.is_refusal());
//!     assert!(matches!(refused, Error::CircuitOpen(open) if open.state() == CircuitState::Open));
//! });
//! # Ok::<(), kompoz_core::ConfigError>(())
//! ```

mod breaker;
mod error;
mod limit;
mod operation;
mod policy;
mod predicate;
mod rate_limit;
mod retry;
mod timeout;

pub use breaker::BreakerLayer;
pub use error::{CircuitOpen, Error, PoolFull, RateLimitExceeded, TimedOut};
pub use limit::LimitLayer;
pub use operation::Operation;
pub use policy::{Identity, Layer, Policy, Stack};
pub use predicate::{Always, Never, Predicate};
pub use rate_limit::RateLimitLayer;
pub use retry::{DefaultRetry, RetryDecision, RetryErrorIf, RetryHook, RetryIf, RetryLayer};
pub use timeout::TimeoutLayer;
