//! kompoz on bare metal: a [`Clock`] over a hardware-style tick counter, and
//! a sensor read guarded by a timeout and a circuit breaker.
//!
//! This example is a library (`crate-type = ["rlib"]`): it is the code a
//! firmware crate writes, built by CI for `thumbv7em-none-eabihf` with
//! `kompoz-core`'s default features off:
//!
//! ```text
//! cargo build -p kompoz-core --no-default-features --target thumbv7em-none-eabihf --example no_std_tick_clock
//! ```
//!
//! The board's timer interrupt calls [`on_tick`]; the executor (embassy,
//! RTIC, a hand-rolled one) polls [`read_guarded`].

#![no_std]

use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicU32, Ordering};
use core::task::{Context, Poll};
use core::time::Duration;

use kompoz_core::{
    CircuitBreaker, Clock, ClockExt, Combinator, ConfigError, Instant, Timeout, rule,
};

/// Ticks of a 32 kHz timer; a 32-bit counter wraps after about 36 hours, so
/// the clock widens it (see [`TickClock::now`]).
static TICKS: AtomicU32 = AtomicU32::new(0);
const TICK_HZ: u64 = 32_768;

/// Called from the timer interrupt.
pub fn on_tick() {
    TICKS.fetch_add(1, Ordering::Release);
}

/// A [`Clock`] over [`TICKS`].
#[derive(Clone, Copy, Debug, Default)]
pub struct TickClock;

impl Clock for TickClock {
    type Sleep = TickSleep;

    fn now(&self) -> Instant {
        // Monotonic as long as it is read at least once per wrap (36 h); a
        // real driver keeps an epoch counter in the overflow interrupt.
        let ticks = u64::from(TICKS.load(Ordering::Acquire));
        Instant::from_nanos(ticks * 1_000_000_000 / TICK_HZ)
    }

    fn sleep(&self, duration: Duration) -> TickSleep {
        TickSleep {
            until: self.now() + duration,
        }
    }
}

/// The future returned by [`TickClock::sleep`].
#[derive(Debug)]
pub struct TickSleep {
    until: Instant,
}

impl Future for TickSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if TickClock.now() >= self.until {
            Poll::Ready(())
        } else {
            // A real driver arms a compare interrupt that wakes this task;
            // waking at once keeps the example self-contained.
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// A sensor whose reads sometimes stall or fail; here, a register value.
static SENSOR_OK: AtomicU32 = AtomicU32::new(1);

/// The guarded read: at most 20 ms per read; three failures in a row open
/// the breaker for one second, during which reads fail at once.
pub type GuardedRead = CircuitBreaker<
    Timeout<kompoz_core::leaf::Rule<fn(&u32) -> core::future::Ready<bool>>, TickClock>,
    TickClock,
>;

fn sensor_ok(_channel: &u32) -> core::future::Ready<bool> {
    core::future::ready(SENSOR_OK.load(Ordering::Acquire) != 0)
}

/// Builds the guarded read once, at start-up.
pub fn guarded_read() -> Result<GuardedRead, ConfigError> {
    let read = rule(sensor_ok as fn(&u32) -> core::future::Ready<bool>);
    TickClock
        .circuit_breaker(TickClock.with_timeout(read, Duration::from_millis(20))?)
        .failure_threshold(3)
        .recovery_timeout(Duration::from_secs(1))
        .build()
}

/// Reads `channel` through the guard; `false` if the read failed, timed out,
/// or the breaker is open.
pub async fn read_guarded(guard: &GuardedRead, channel: u32) -> bool {
    guard.run(channel).await.0
}
