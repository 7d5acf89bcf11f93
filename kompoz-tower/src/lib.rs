//! # kompoz-tower
//!
//! kompoz's resilience utilities as [tower] layers, for axum, tonic, hyper
//! and every client or server built on `tower::Service`: a timeout, a
//! concurrency limit with pools shared by name, a circuit breaker shared
//! across services, a rate limit, and retry. Each fails with kompoz's typed
//! [`Error`](kompoz_core::call::Error), and a stack of them fails with *one*
//! flat `Error<E>`.
//!
//! | layer | `ServiceBuilder` method | fails with |
//! |---|---|---|
//! | [`TimeoutLayer`] | [`with_timeout(d, clock)?`](ServiceBuilderExt::with_timeout) | `Error::TimedOut` |
//! | [`LimitLayer`] | [`limited(n)?`](ServiceBuilderExt::limited), [`limited_named(name, n)?`](ServiceBuilderExt::limited_named) | `Error::PoolFull` (reject mode) |
//! | [`CircuitBreakerLayer`] | [`circuit_breaker(&breaker)`](ServiceBuilderExt::circuit_breaker) | `Error::CircuitOpen` |
//! | [`RateLimitLayer`] | [`rate_limited(&limiter)`](ServiceBuilderExt::rate_limited) | `Error::RateLimited` |
//! | [`RetryLayer`] | [`with_retry(policy, clock)`](ServiceBuilderExt::with_retry) | the last attempt's error |
//!
//! The crate is runtime-agnostic like `kompoz-core`: time comes through a
//! kompoz [`Clock`](kompoz_core::Clock) (`kompoz_tokio::TokioClock` under
//! axum, `ManualClock` in tests). The breaker, the pools and the rate
//! limiters are the core's objects: one `Breaker` can guard tower services
//! and kompoz combinators at once.
//!
//! ## Example
//!
//! A stack over a flaky service, on virtual time; the error is one flat
//! `Error<io::Error>` however many layers refuse or fail:
//!
//! ```
//! use std::io;
//! use std::time::Duration;
//! use kompoz_core::{call::Error, Backoff, CircuitState, ClockExt, ManualClock};
//! use kompoz_tower::{Attempts, ServiceBuilderExt};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! let clock = ManualClock::new();
//! let breaker = clock.shared_breaker().failure_threshold(3).build()?;
//!
//! let upstream = service_fn(|id: u32| async move {
//!     if id == 0 { Err(io::Error::other("upstream says no")) } else { Ok(format!("item {id}")) }
//! });
//! let api = ServiceBuilder::new()
//!     .limited(32)?                                     // outermost: bounds everything below
//!     .with_retry(Attempts::new(2)?.backoff(Backoff::fixed(Duration::from_millis(10))), clock.clone())
//!     .circuit_breaker(&breaker)                        // counts each attempt
//!     .with_timeout(Duration::from_secs(1), clock.clone())?
//!     .service(upstream);
//!
//! clock.block_on(async {
//!     assert_eq!(api.clone().oneshot(7).await.unwrap(), "item 7");
//!
//!     // Two attempts, both failed: the upstream's own error, not wrapped twice.
//!     let err: Error<io::Error> = api.clone().oneshot(0).await.unwrap_err();
//!     assert_eq!(err.inner().unwrap().to_string(), "upstream says no");
//!
//!     // A third failure opens the breaker; the retry does not retry its refusal.
//!     assert!(api.clone().oneshot(0).await.is_err());
//!     assert_eq!(breaker.state(), CircuitState::Open);
//!     assert!(matches!(api.clone().oneshot(7).await, Err(Error::CircuitOpen(_))));
//! });
//! # Ok::<(), kompoz_core::ConfigError>(())
//! ```
//!
//! With axum, `HandleErrorLayer` turns the refusals into responses (503 for
//! an open breaker or a full pool, 504 for a timeout, 429 with
//! `Retry-After` for a rate limit): see `examples/axum.rs`, which serves a
//! real route over loopback and drives it through an outage.
//!
//! ## One flat error
//!
//! Every kompoz service returns `Error<E>` where `E` is the error of the
//! *leaf* service at the bottom of the stack. A kompoz service does not
//! wrap an `Error<E>` coming from a kompoz layer below: it passes it on.
//! The mechanism is the trait [`StackError`], implemented by the inner
//! service's error, whose associated type `Inner` names the leaf's error:
//! `Error<E>` maps to `E` (pass on), a leaf error maps to itself (wrap in
//! `Error::Inner`).
//!
//! Why not the obvious bound, `S::Error: Into<Error<E>>` with `E` a type
//! parameter? An outer layer sees `Error<X>` from the layer below, and
//! `Error<X>` is `Into<Error<X>>` (itself) *and* `Into<Error<Error<X>>>`
//! (wrapped, given a wrapping `From`): `E` is ambiguous, so every
//! `ServiceBuilder` stack would need a type annotation. An associated type
//! is a *function* of the inner error: one answer, which the compiler
//! infers through any depth of layers. The stack's error type is then an
//! ordinary associated type, which axum's `HandleErrorLayer` takes as its
//! handler's last argument (`|err: Error<E>| async { .. }`).
//!
//! The price: Rust has no specialisation, so "any type that is not an
//! `Error<_>`" cannot be written. `StackError` is implemented for
//! `Error<E>`, [`Infallible`](core::convert::Infallible) (axum handlers and
//! routers), [`BoxError`] (tower's and hyper-util's clients) and
//! `std::io::Error`; for your own error type write
//! [`stack_error!(MyError)`](stack_error!); for a foreign one, end the stack
//! with [`.inner_error()`](ServiceBuilderExt::inner_error) right above the
//! leaf. Forgetting it is a compile error that says so — except under
//! axum's `HandleErrorLayer`, whose bound hides it: see [`StackError`] for
//! the error you get there and [`check_stack`] to bring the hint back.
//! `stack_error!` must be invoked in the crate that defines the type (the
//! orphan rule); for another crate's type, `.inner_error()`. A tower layer
//! *between* kompoz layers that boxes errors (tower's `Buffer`,
//! `LoadShed`) turns the `Error<E>` below it into a `BoxError`, which the
//! kompoz layers above carry as their `E`.
//!
//! ## `poll_ready` and `call`
//!
//! tower separates "may I send?" (`poll_ready`) from "send" (`call`). Each
//! layer takes its decision where it belongs:
//!
//! | layer | `poll_ready` | `call` / response future |
//! |---|---|---|
//! | limit | waits (`Pending`) for an owned permit, then for the inner service: backpressure, FIFO; in reject mode never waits and marks the call refused | moves the permit into the future; released on completion or drop |
//! | circuit breaker | asks whether the breaker would admit (holds nothing); refused: ready at once, *without* polling the inner service | takes the permit (a probe slot in HALF_OPEN), or refuses if the circuit opened meanwhile; admitted: the future records the classified outcome |
//! | rate limit | asks whether a slot is free (holds nothing), or reserves one due within `wait_at_most` and waits for it; over the rate: ready at once, without polling the inner service | takes (or spends the reserved) slot, or refuses |
//! | timeout | the inner service's | arms the timer when the response is pending |
//! | retry | the inner service's | each further attempt polls a clone's `poll_ready` again |
//!
//! A refusal seen by `poll_ready` is decided again by the next `poll_ready`.
//!
//! Why the breaker and the rate limit *ask* in `poll_ready`: a request
//! they will refuse must not wait for capacity below them (an open breaker
//! fails fast instead of queueing behind a limit) nor hold it (a permit
//! taken by a limit below would be tied up by a request that never runs).
//! Why they *take* in `call`: tower lets a caller ready a service and call
//! it much later or never (a balancer keeps its readied endpoints), and a
//! request may wait long in `poll_ready` (queued at a limit below). Taken
//! at `call`, a breaker permit reflects the circuit when the request
//! actually starts — requests queued while it was closed are refused once
//! it opened — and an idle readied service holds no probe slot. Only the
//! limit keeps its permit from `poll_ready` to `call`: that is its
//! backpressure, as in tower's `ConcurrencyLimit`.
//! Why they refuse in `call` and not as an error of `poll_ready`: tower
//! reads an error from `poll_ready` as a broken service (a `Buffer` or a
//! balancer drops it for good), and the refusal is about one request.
//! tower's `LoadShed` and tower-resilience's breaker make the same choice.
//!
//! ## Cancellation
//!
//! Nothing is lost when a request is dropped at any point — a client
//! hanging up, an outer timeout, a `select!`: permits, probe slots and
//! rate slots live in the response futures and the services, and go back
//! when those are dropped (a readied service never called included). A
//! breaker permit dropped before its answer counts no outcome and frees
//! its probe slot; a response future that panics counts as a failure (and
//! frees its slot too). The tests check it over real HTTP.
//!
//! ## Layer order
//!
//! As for kompoz's combinators: the limit (or rate limit) outermost, retry
//! outside the breaker (refusals are not retried by default), the timeout
//! inside the breaker (a timed-out call counts as a failure). Clones of a
//! service share every piece of state (pools, breakers, budgets); each
//! clone holds at most one permit of its own between `poll_ready` and
//! `call`.
//!
//! [tower]: https://docs.rs/tower

#![doc(test(attr(deny(warnings))))]

mod builder;
mod circuit_breaker;
mod error;
mod future;
mod limit;
mod rate_limit;
mod retry;
mod timeout;

pub use builder::ServiceBuilderExt;
pub use circuit_breaker::{BreakerFuture, CircuitBreaker, CircuitBreakerLayer, Classify, ErrOnly};
pub use error::{BoxError, InnerError, InnerErrorLayer, StackError, check_stack};
pub use future::MapInner;
pub use limit::{Limit, LimitFuture, LimitLayer};
pub use rate_limit::{RateLimit, RateLimitFuture, RateLimitLayer};
pub use retry::{Attempts, Retry, RetryFuture, RetryIf, RetryLayer, RetryPolicy, Retryable};
pub use timeout::{Timeout, TimeoutFuture, TimeoutLayer};

#[doc(hidden)]
pub mod __private {
    pub use kompoz_core::call::Error;
}
