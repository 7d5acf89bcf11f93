//! A clock that reads the CPU's counter for `now()` and sleeps on another
//! clock's timer.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;
use std::sync::OnceLock;

use super::{Clock, Instant};

/// A [`Clock`] whose [`now`](Clock::now) reads the CPU's time-stamp counter
/// (through [`quanta`]) instead of asking the operating system, and whose
/// sleeps run on the timer of `K`.
///
/// Reading the counter costs a few nanoseconds where `clock_gettime` costs
/// tens on many virtual machines, and the combinators that read the clock
/// on every call (a rate-limit check, an OPEN breaker's rejection) are
/// dominated by that read. Where the CPU has no invariant counter, `quanta`
/// falls back to the operating system's monotonic clock and this clock is
/// as fast as `K`.
///
/// Wrap the runtime's clock: `FastClock::new(TokioClock)` on tokio. Its
/// instants are on the counter's own timeline: compare them only with each
/// other.
///
/// # Not for paused time
///
/// The counter runs in real time, so this clock does **not** follow
/// `tokio::time::pause()`; in tests use the runtime's clock or
/// [`ManualClock`](crate::ManualClock), which the runtime crates'
/// constructors use by default.
///
/// # Accuracy
///
/// - A sleep completes only once this clock's `now()` has passed its
///   deadline: if `K`'s timer (the operating system's clock, adjusted by
///   NTP) fires before the counter says so, the sleep waits out the rest.
/// - **It relaxes [`Clock`]'s cross-thread monotonicity.** The counter is
///   read without a serialising instruction, as `quanta` does, and `quanta`
///   checks that the counter is invariant, not that every core's counter
///   agrees: a reading taken on one thread just after synchronising with
///   another can be older than the other thread's last reading (by the
///   synchronisation's time on CPUs whose cores share one counter, which
///   current x86 CPUs do; by the cores' skew where they do not). Each
///   thread's own readings never go back. What an older reading does here:
///   a rate-limit check is judged as if it came that much earlier (stricter,
///   never looser), an OPEN breaker rejects that much longer, and
///   differences of instants saturate at zero instead of going negative.
///   Use `K` itself where an exact cross-thread order of readings matters.
/// - The first `FastClock` of a process calibrates the counter against the
///   operating system's clock, which can take up to a few hundred
///   milliseconds; create one at start-up, not on a request's path.
///
/// # Examples
///
/// ```
/// use kompoz_core::{Clock, FastClock, ManualClock};
///
/// // Any clock's timer will do; a runtime's clock in an application.
/// let clock = FastClock::new(ManualClock::new());
/// let a = clock.now();
/// let b = clock.now();
/// assert!(b >= a);
/// ```
#[derive(Clone)]
pub struct FastClock<K> {
    timer: K,
    counter: quanta::Clock,
}

impl<K> FastClock<K> {
    /// A clock reading the CPU's counter and sleeping on `timer`'s timer.
    ///
    /// The counter is calibrated once per process, on first use.
    pub fn new(timer: K) -> Self {
        static COUNTER: OnceLock<quanta::Clock> = OnceLock::new();
        FastClock {
            timer,
            counter: COUNTER.get_or_init(quanta::Clock::new).clone(),
        }
    }

    /// The clock whose timer this clock sleeps on.
    pub fn timer(&self) -> &K {
        &self.timer
    }
}

impl<K: Default> Default for FastClock<K> {
    fn default() -> Self {
        FastClock::new(K::default())
    }
}

impl<K: fmt::Debug> fmt::Debug for FastClock<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FastClock")
            .field("timer", &self.timer)
            .finish_non_exhaustive()
    }
}

impl<K: Clock> Clock for FastClock<K> {
    type Sleep = FastSleep<K>;

    #[inline]
    fn now(&self) -> Instant {
        Instant::from_nanos(self.counter.delta_as_nanos(0, self.counter.raw()))
    }

    fn sleep(&self, duration: Duration) -> FastSleep<K> {
        FastSleep {
            deadline: self.now().saturating_add(duration),
            clock: self.clone(),
            timer: self.timer.sleep(duration),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future returned by [`FastClock::sleep`]: completes once the
    /// counter has passed the deadline.
    #[must_use = "futures do nothing unless polled"]
    pub struct FastSleep<K: Clock> {
        deadline: Instant,
        clock: FastClock<K>,
        #[pin]
        timer: K::Sleep,
    }
}

impl<K: Clock> Future for FastSleep<K> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        loop {
            if this.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = this.clock.now();
            if now >= *this.deadline {
                return Poll::Ready(());
            }
            // The timer's clock ran ahead of the counter: wait out the rest.
            let rest = this.deadline.duration_since(now);
            this.timer.set(this.clock.timer.sleep(rest));
        }
    }
}

impl<K: Clock> fmt::Debug for FastSleep<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FastSleep")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A clock whose timer fires at once, as if its time ran far ahead of
    /// the counter; counts the sleeps asked of it.
    #[derive(Clone, Default)]
    struct EarlyTimer {
        sleeps: Arc<AtomicUsize>,
    }

    impl Clock for EarlyTimer {
        type Sleep = core::future::Ready<()>;
        fn now(&self) -> Instant {
            Instant::ZERO
        }
        fn sleep(&self, _: Duration) -> core::future::Ready<()> {
            self.sleeps.fetch_add(1, Ordering::Relaxed);
            core::future::ready(())
        }
    }

    #[test]
    fn readings_never_go_back() {
        let clock = FastClock::new(EarlyTimer::default());
        let mut last = clock.now();
        for _ in 0..10_000 {
            let now = clock.now();
            assert!(now >= last, "{now:?} after {last:?}");
            last = now;
        }
    }

    #[test]
    fn a_sleep_ends_only_once_the_counter_has_passed_its_deadline() {
        let timer = EarlyTimer::default();
        let clock = FastClock::new(timer.clone());
        let wait = Duration::from_micros(200);
        let start = clock.now();
        futures::executor::block_on(clock.sleep(wait));
        assert!(clock.now().duration_since(start) >= wait);
        assert!(
            timer.sleeps.load(Ordering::Relaxed) >= 2,
            "the early timer was re-armed for the rest"
        );
    }
}
