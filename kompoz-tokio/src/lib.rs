//! # kompoz-tokio
//!
//! [`kompoz-core`](kompoz_core)'s combinators with tokio's timer plugged in.
//! `use kompoz_tokio::*;` gives the whole API: the algebra, the types, and the
//! time-taking constructors (`with_timeout`, `circuit_breaker`, …) already
//! running on [`TokioClock`].
//!
//! [`TokioClock`] follows `tokio::time`, so tests that call
//! `tokio::time::pause()` (or use `#[tokio::test(start_paused = true)]`) move
//! kompoz's time too. For other runtimes see
//! [`kompoz-async-std`](https://docs.rs/kompoz-async-std) and
//! [`kompoz-smol`](https://docs.rs/kompoz-smol).
//!
//! ```
//! use std::time::Duration;
//! use kompoz_tokio::{Clock, TokioClock};
//!
//! #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     let clock = TokioClock::new();
//!     let start = clock.now();
//!     clock.sleep(Duration::from_secs(60)).await; // paused time: instant
//!     assert_eq!(clock.now().duration_since(start), Duration::from_secs(60));
//! }
//! ```

//!
//! The project's README follows: the reference guide's examples (timeout,
//! concurrency limit, shared pools, circuit breaker) in Rust, run as this
//! crate's doctests.
//!
#![doc = include_str!("../../README.md")]
#![doc(test(attr(deny(warnings))))]

pub use kompoz_core::*;

use core::time::Duration;

/// A [`Clock`] over `tokio::time`: instants from [`tokio::time::Instant`]
/// (which honours paused time), sleeps from [`tokio::time::sleep`].
///
/// Sleeping needs a tokio runtime with the time driver enabled. Instants are
/// on the process-wide timeline of [`Instant::from_std`], so every
/// `TokioClock` agrees, wherever it was created.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioClock;

impl TokioClock {
    /// The clock (a unit value; every `TokioClock` reads the same time).
    pub fn new() -> Self {
        TokioClock
    }
}

impl Clock for TokioClock {
    type Sleep = tokio::time::Sleep;

    #[inline]
    fn now(&self) -> Instant {
        Instant::from_std(tokio::time::Instant::now().into_std())
    }

    fn sleep(&self, duration: Duration) -> tokio::time::Sleep {
        tokio::time::sleep(duration)
    }
}

kompoz_core::__runtime_api!(crate::TokioClock);
