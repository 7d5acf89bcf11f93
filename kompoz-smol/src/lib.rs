//! # kompoz-smol
//!
//! [`kompoz-core`](kompoz_core)'s combinators with smol's timer
//! ([`async_io::Timer`]) plugged in. `use kompoz_smol::*;` gives the whole API:
//! the algebra, the types, and the time-taking constructors (`with_timeout`,
//! `circuit_breaker`, …) already running on [`SmolClock`].
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

kompoz_core::__runtime_api!(crate::SmolClock);
