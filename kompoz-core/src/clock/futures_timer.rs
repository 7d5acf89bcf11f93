//! A clock for any executor, over `futures-timer`.

use core::time::Duration;

use super::{Clock, Instant};

/// A [`Clock`] over [`futures_timer::Delay`] and [`std::time::Instant`].
///
/// `futures-timer` runs its own timer thread, so this clock works under any
/// executor — `futures::executor::block_on` included — for applications that
/// embed kompoz without a large runtime. Instants are on the process-wide
/// timeline of [`Instant::from_std`].
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::{Clock, FuturesTimerClock};
///
/// futures::executor::block_on(async {
///     let clock = FuturesTimerClock;
///     let start = clock.now();
///     clock.sleep(Duration::from_millis(5)).await;
///     assert!(clock.now().duration_since(start) >= Duration::from_millis(5));
/// });
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct FuturesTimerClock;

impl Clock for FuturesTimerClock {
    type Sleep = futures_timer::Delay;

    #[inline]
    fn now(&self) -> Instant {
        Instant::from_std(std::time::Instant::now())
    }

    fn sleep(&self, duration: Duration) -> futures_timer::Delay {
        futures_timer::Delay::new(duration)
    }
}
