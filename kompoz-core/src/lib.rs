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
//! async closures ([`rule`], [`transform`], [`try_transform`], [`rule_args`]);
//! `&`, `|`, `!`, `>>` and [`if_else`](Combinator::if_else) compose them with
//! kompoz's semantics.
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
//! ## Features
//!
//! - `std` (default): [`ManualClock`], process-wide registries, panic-aware
//!   bookkeeping.
//! - `futures-timer`: [`FuturesTimerClock`], a clock for any executor.
//! - `fast-clock`: [`FastClock`], `now()` from the CPU's time-stamp counter
//!   for the paths that read the clock on every call (not for paused time).

#![no_std]
#![doc(test(attr(deny(warnings))))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod algebra;
mod boxed;
mod clock;
mod combinator;
mod error;
mod rule;
mod runtime_api;
mod sync;
mod transform;

mod circuit_breaker;
mod limiter;
mod parallel;
mod rate_limit;
mod registry;
mod retry;
mod timeout;

pub use algebra::{And, IfElse, Not, Or, Then, not};
pub use boxed::{BoxCombinator, BoxRun, DynCombinator, LocalBoxCombinator, LocalBoxRun};
#[cfg(feature = "futures-timer")]
pub use clock::FuturesTimerClock;
pub use clock::{Clock, Instant};
#[cfg(feature = "fast-clock")]
pub use clock::{FastClock, FastSleep};
#[cfg(feature = "std")]
pub use clock::{ManualClock, ManualSleep};
pub use combinator::Combinator;
pub use error::ConfigError;
pub use rule::{Rule, RuleArgs, RuleWith, rule, rule_args};
pub use transform::{ErrorHook, Transform, TryTransform, transform, try_transform};

// Each resilience module decides its public surface with `pub`; crate-private
// helpers stay `pub(crate)`.
pub use circuit_breaker::*;
pub use limiter::*;
pub use parallel::*;
pub use rate_limit::*;
pub use registry::*;
pub use retry::*;
pub use timeout::*;

/// The constructors with [`FuturesTimerClock`] plugged in: kompoz under any
/// executor, `futures::executor::block_on` included.
#[cfg(feature = "futures-timer")]
pub mod futures_timer {
    pub use crate::FuturesTimerClock;
    crate::__runtime_api!(crate::FuturesTimerClock);
}

#[doc(hidden)]
pub mod __private {
    pub use alloc::sync::Arc;
}
