//! # kompoz-async-std
//!
//! [`kompoz-core`](kompoz_core)'s combinators with async-std's timer plugged
//! in. `use kompoz_async_std::*;` gives the whole API: the algebra, the types,
//! and the time-taking constructors (`with_timeout`, `circuit_breaker`, …)
//! already running on [`AsyncStdClock`].
//!
//! async-std is discontinued upstream (RUSTSEC-2025-0052 recommends smol).
//! This crate stays for applications that still run on it; new code should
//! prefer [`kompoz-smol`](https://docs.rs/kompoz-smol) or
//! [`kompoz-tokio`](https://docs.rs/kompoz-tokio).
//!
//! ```
//! use std::time::Duration;
//! use kompoz_async_std::{AsyncStdClock, Clock};
//!
//! async_std::task::block_on(async {
//!     let clock = AsyncStdClock::new();
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

/// A [`Clock`] over [`std::time::Instant`] and async-std's timer (the
/// `async-io` reactor that async-std's own `task::sleep` waits on).
///
/// Instants are on the process-wide timeline of [`Instant::from_std`], so
/// every `AsyncStdClock` agrees, wherever it was created.
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncStdClock;

impl AsyncStdClock {
    /// The clock (a unit value; every `AsyncStdClock` reads the same time).
    pub fn new() -> Self {
        AsyncStdClock
    }
}

/// The future returned by [`AsyncStdClock::sleep`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct AsyncStdSleep(async_io::Timer);

impl Future for AsyncStdSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(drop)
    }
}

impl Clock for AsyncStdClock {
    type Sleep = AsyncStdSleep;

    #[inline]
    fn now(&self) -> Instant {
        Instant::from_std(std::time::Instant::now())
    }

    fn sleep(&self, duration: Duration) -> AsyncStdSleep {
        AsyncStdSleep(async_io::Timer::after(duration))
    }
}

kompoz_core::__runtime_api!(crate::AsyncStdClock);
