//! Calls that return a value: the typed error a resilience layer fails with.
//!
//! The algebra's combinators answer `(bool, ctx)`. Code that holds a future
//! returning `Result<T, E>` wants to know *why* a call failed: the operation's
//! own error, or a layer that refused to run it. [`Error<E>`] says which:
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

mod error;

pub use error::{CircuitOpen, Error, PoolFull, RateLimitExceeded, TimedOut};
