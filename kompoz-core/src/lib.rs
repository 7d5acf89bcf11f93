//! # kompoz-core
//!
//! Async combinators and resilience utilities — timeouts, concurrency limits
//! with shared named pools, circuit breakers, retry, rate limits and parallel
//! AND/OR — as one algebra, with no runtime in sight.
//!
//! This crate holds all the logic and is `#![no_std]` (with `alloc`). Time
//! comes through the [`Clock`] trait; pick the crate for your runtime to get a
//! clock plugged in:
//!
//! | runtime | crate |
//! |---|---|
//! | tokio | [`kompoz-tokio`](https://docs.rs/kompoz-tokio) |
//! | async-std | [`kompoz-async-std`](https://docs.rs/kompoz-async-std) |
//! | smol / async-io | [`kompoz-smol`](https://docs.rs/kompoz-smol) |
//! | any executor, no big runtime | this crate with the `futures-timer` feature |
//! | tests | this crate's [`ManualClock`] |
//! | embedded | this crate without default features, and your own [`Clock`] |
//!
//! ## The algebra
//!
//! A [`Combinator`] runs on a context and returns `(ok, ctx)`. Leaves come from
//! async closures ([`rule`], [`transform`], [`try_transform`], [`rule_args`])
//! or from ordinary closures returning futures ([`rule_fn`],
//! [`transform_fn`], whose futures stay `Send` when they capture
//! references); `&`, `|`, `!`, `>>` and [`if_else`](Combinator::if_else)
//! compose them with kompoz's semantics.
//!
//! ```
//! use kompoz_core::{rule, transform, Combinator};
//!
//! struct Order { total: u32, paid: bool, shipped: bool }
//!
//! let ship = (rule(async |o: &Order| o.paid) & !rule(async |o: &Order| o.total == 0))
//!     >> transform(async |mut o: Order| { o.shipped = true; o });
//!
//! let (ok, order) = futures::executor::block_on(ship.run(Order { total: 5, paid: true, shipped: false }));
//! assert!(ok && order.shipped);
//! ```
//!
//! ## Resilience, on any clock
//!
//! Every combinator that takes time is built by a method of the clock
//! ([`ClockExt`]): `clock.with_timeout(..)?`, `clock.limited(..)?`,
//! `clock.circuit_breaker(..).build()?`, `clock.retry(..)?`,
//! `clock.rate_limited(..)`. A policy written once against `K: Clock` runs on
//! every runtime and, in tests, under [`ManualClock`]. Constructors validate
//! their arguments and builders validate in `build()`; setters never fail.
//! [`prelude`] holds what most code imports.
//!
//! ## Features
//!
//! - `std` (default): [`ManualClock`], process-wide registries, panic-aware
//!   bookkeeping.
//! - `futures-timer`: [`FuturesTimerClock`], a clock for any executor.
//! - `fast-clock`: [`FastClock`], `now()` from the CPU's time-stamp counter
//!   for the paths that read the clock on every call (not for paused time).

#![no_std]
// On docs.rs, rustdoc marks each item that needs a feature (`std`,
// `futures-timer`, `fast-clock`).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod combinator;
mod error;
mod registry;
mod rng;
mod sync;

pub mod algebra;
pub mod boxed;
pub mod call;
pub mod circuit_breaker;
pub mod clock;
mod clock_ext;
pub mod limiter;
pub mod observe;
pub mod parallel;
pub mod prelude;
pub mod rate_limit;
pub mod retry;
mod rule;
pub mod spawnable;
pub mod timeout;
mod transform;

// The public surface, listed: what an application names. Types it rarely
// names (the algebra's nodes, outcomes, hooks, futures, events) live in
// their modules: `kompoz_core::timeout::TimeoutOutcome`, ...

/// The leaves' types: what [`rule`], [`rule_fn`], [`rule_args`],
/// [`transform`], [`transform_fn`] and [`try_transform`] return.
pub mod leaf {
    pub use crate::rule::{Rule, RuleArgs, RuleFn, RuleWith};
    pub use crate::transform::{ErrorHook, Transform, TransformFn, TryTransform};
}

// The algebra and its leaves.
pub use algebra::not;
pub use boxed::{BoxCombinator, DynCombinator, LocalBoxCombinator};
pub use combinator::Combinator;
pub use parallel::{parallel_and, parallel_or};
pub use rule::{rule, rule_args, rule_fn};
pub use spawnable::SendCombinator;
pub use transform::{transform, transform_fn, try_transform};

// Time.
#[cfg(feature = "fast-clock")]
pub use clock::FastClock;
#[cfg(feature = "futures-timer")]
pub use clock::FuturesTimerClock;
#[cfg(feature = "std")]
pub use clock::ManualClock;
#[cfg(feature = "std")]
pub use clock::StdClock;
pub use clock::{Clock, Instant, SendClock};
pub use clock_ext::ClockExt;

// The resilience combinators, their builders and their values.
pub use call::{Error, Policy};
pub use circuit_breaker::{
    Breaker, BreakerBuilder, BreakerPermit, CircuitBreaker, CircuitBreakerBuilder,
    CircuitBreakerStats, CircuitState, OwnedBreakerPermit, SlidingWindow,
};
pub use error::ConfigError;
pub use limiter::{LimitMode, Limited, Semaphore};
pub use rate_limit::{RateLimit, RateLimited, RateLimiter};
pub use registry::Registry;
pub use retry::{Backoff, Jitter, Retry};
pub use timeout::Timeout;

#[cfg(feature = "futures-timer")]
pub mod futures_timer;

#[doc(hidden)]
pub mod __private {
    pub use alloc::sync::Arc;
}
