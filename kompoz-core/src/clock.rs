//! Time, abstracted: the [`Clock`] trait and the [`Instant`] it measures in.
//!
//! Every combinator that needs time (timeouts, bounded waits, circuit-breaker
//! recovery, retry back-off, rate limits) is generic over a [`Clock`], so the
//! same logic runs on tokio, async-std, smol, `futures-timer`, a hardware tick
//! counter, or the deterministic [`ManualClock`] in tests.

use core::fmt;
use core::future::Future;
use core::ops::{Add, Sub};
use core::time::Duration;

#[cfg(feature = "std")]
mod manual;
#[cfg(feature = "std")]
pub use manual::{ManualClock, ManualSleep};

#[cfg(feature = "fast-clock")]
mod fast;
#[cfg(feature = "fast-clock")]
pub use fast::{FastClock, FastSleep};

#[cfg(feature = "futures-timer")]
mod futures_timer;
#[cfg(feature = "futures-timer")]
pub use self::futures_timer::FuturesTimerClock;

/// A point in time on one [`Clock`]: nanoseconds since that clock's origin.
///
/// Instants from different clocks are not comparable. The representation is a
/// single `u64` so that combinators can keep times in atomics; it covers more
/// than 584 years from the clock's origin. Arithmetic saturates instead of
/// overflowing or panicking.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::Instant;
///
/// let start = Instant::from_nanos(1_000);
/// let later = start + Duration::from_micros(2);
/// assert_eq!(later.duration_since(start), Duration::from_micros(2));
/// assert_eq!(start.duration_since(later), Duration::ZERO); // saturates
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant {
    nanos: u64,
}

impl Instant {
    /// The clock's origin.
    pub const ZERO: Instant = Instant { nanos: 0 };

    /// The instant `nanos` nanoseconds after the clock's origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Instant { nanos }
    }

    /// Nanoseconds since the clock's origin.
    pub const fn as_nanos(self) -> u64 {
        self.nanos
    }

    /// The instant `elapsed` after the clock's origin, saturating at `u64::MAX` nanoseconds.
    #[inline]
    pub fn from_duration(elapsed: Duration) -> Self {
        Instant {
            nanos: duration_to_nanos(elapsed),
        }
    }

    /// Time since the origin as a [`Duration`].
    pub const fn as_duration(self) -> Duration {
        Duration::from_nanos(self.nanos)
    }

    /// How long after `earlier` this instant is; zero if `earlier` is later.
    pub const fn duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.nanos.saturating_sub(earlier.nanos))
    }

    /// `self + d`, or `None` if it would not fit.
    pub fn checked_add(self, d: Duration) -> Option<Instant> {
        let d = u64::try_from(d.as_nanos()).ok()?;
        self.nanos.checked_add(d).map(Instant::from_nanos)
    }

    /// `self + d`, saturating at the largest representable instant.
    pub fn saturating_add(self, d: Duration) -> Instant {
        Instant::from_nanos(self.nanos.saturating_add(duration_to_nanos(d)))
    }
}

#[cfg(feature = "std")]
impl Instant {
    /// The instant of a [`std::time::Instant`] on the process-wide timeline
    /// that every `std`-based clock of kompoz shares (`TokioClock`,
    /// `SmolClock`, `AsyncStdClock`, [`FuturesTimerClock`]), so instants from
    /// any of them compare.
    ///
    /// The timeline's origin lies a day before its first use (or at boot, if
    /// that is later), so a clock that starts behind real time — tokio's
    /// paused clock starts when its runtime is built — still reads distinct,
    /// increasing instants instead of a saturated zero.
    ///
    /// ```
    /// use kompoz_core::Instant;
    ///
    /// let a = std::time::Instant::now();
    /// let b = a + std::time::Duration::from_millis(3);
    /// assert_eq!(Instant::from_std(b).duration_since(Instant::from_std(a)).as_millis(), 3);
    /// ```
    // Inlined into the runtime crates' `now()`: every OPEN rejection reads
    // the clock, so the conversion is on that path.
    #[inline]
    pub fn from_std(instant: std::time::Instant) -> Instant {
        Instant::from_duration(instant.saturating_duration_since(process_origin()))
    }
}

#[cfg(feature = "std")]
impl Instant {
    /// The [`std::time::Instant`] this instant stands for, when it was read
    /// from a clock on the process-wide timeline (`TokioClock`, `SmolClock`,
    /// `AsyncStdClock`, [`FuturesTimerClock`]; see [`StdClock`]): the
    /// inverse of [`from_std`](Instant::from_std). For an instant of another
    /// clock ([`ManualClock`], a tick counter) the result means nothing.
    ///
    /// ```
    /// use kompoz_core::Instant;
    ///
    /// let now = std::time::Instant::now();
    /// let back = Instant::from_std(now).to_std();
    /// assert!(back.max(now) - back.min(now) < std::time::Duration::from_micros(1));
    /// ```
    pub fn to_std(self) -> std::time::Instant {
        process_origin() + self.as_duration()
    }
}

/// A [`Clock`] whose instants lie on the process-wide timeline of
/// [`Instant::from_std`]: its instants convert to [`std::time::Instant`].
/// Implemented by the runtime crates' clocks and [`FuturesTimerClock`].
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::{Clock, Instant, StdClock};
///
/// // A std-based clock of one's own (kompoz-tokio's `TokioClock` is one).
/// #[derive(Clone)]
/// struct SystemClock;
/// impl Clock for SystemClock {
///     type Sleep = core::future::Ready<()>; // (a real one sleeps)
///     fn now(&self) -> Instant { Instant::from_std(std::time::Instant::now()) }
///     fn sleep(&self, _: Duration) -> Self::Sleep { core::future::ready(()) }
/// }
/// impl StdClock for SystemClock {}
///
/// let clock = SystemClock;
/// let then = clock.now();
/// assert!(clock.to_std(then) <= std::time::Instant::now());
/// assert!(clock.elapsed(then) < Duration::from_secs(60));
/// ```
#[cfg(feature = "std")]
pub trait StdClock: Clock {
    /// `instant` as a [`std::time::Instant`].
    fn to_std(&self, instant: Instant) -> std::time::Instant {
        instant.to_std()
    }

    /// The time since `instant` on this clock (zero if it lies ahead).
    fn elapsed(&self, instant: Instant) -> Duration {
        self.now().duration_since(instant)
    }
}

#[cfg(feature = "futures-timer")]
impl StdClock for FuturesTimerClock {}

#[cfg(feature = "std")]
#[inline]
fn process_origin() -> std::time::Instant {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(|| {
        let now = std::time::Instant::now();
        [86_400, 3_600, 60, 1]
            .into_iter()
            .find_map(|secs| now.checked_sub(Duration::from_secs(secs)))
            .unwrap_or(now)
    })
}

/// Nanoseconds in `d`, saturating at `u64::MAX`.
#[inline]
pub(crate) fn duration_to_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Add<Duration> for Instant {
    type Output = Instant;
    /// Saturating addition.
    fn add(self, rhs: Duration) -> Instant {
        self.saturating_add(rhs)
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturating difference, as [`Instant::duration_since`].
    fn sub(self, rhs: Instant) -> Duration {
        self.duration_since(rhs)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instant({:?})", self.as_duration())
    }
}

/// A source of time: what the combinators read and wait on.
///
/// # Contract
///
/// Implementations MUST keep these promises; the combinators rely on them and
/// do not check them on the hot path.
///
/// - [`now`](Clock::now) MUST be monotonic: a call that happens after another
///   (on any thread) MUST NOT return an earlier instant. Wall-clock time is not
///   acceptable: a clock that jumps back makes rate limits reject spuriously and
///   breakers stay open too long. (The opt-in `FastClock` keeps this per
///   thread and relaxes it across threads by the time a synchronisation
///   takes; its docs say what that does.)
/// - [`now`](Clock::now) MUST NOT fail, block, or panic, and SHOULD be cheap:
///   some combinators read it once per call.
/// - The future from [`sleep`](Clock::sleep) MUST complete once at least the
///   requested duration has passed on this clock (as seen by `now`), and MUST NOT
///   complete earlier. It MUST NOT fail or panic. Dropping it MUST cancel the
///   wait and release whatever it registered.
/// - A clock is a cheap handle: cloning it MUST give a handle to the same
///   time source.
///
/// # Examples
///
/// A clock over a hardware-style tick counter (here, a plain atomic):
///
/// ```
/// use core::future::Future;
/// use core::pin::Pin;
/// use core::sync::atomic::{AtomicU64, Ordering};
/// use core::task::{Context, Poll};
/// use core::time::Duration;
/// use kompoz_core::{Clock, Instant};
///
/// static TICKS_US: AtomicU64 = AtomicU64::new(0); // advanced by a timer interrupt
///
/// #[derive(Clone, Debug)]
/// struct TickClock;
///
/// struct TickSleep { until: Instant }
///
/// impl Future for TickSleep {
///     type Output = ();
///     fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
///         if TickClock.now() >= self.until {
///             Poll::Ready(())
///         } else {
///             cx.waker().wake_by_ref(); // busy-poll; a real driver arms an alarm
///             Poll::Pending
///         }
///     }
/// }
///
/// impl Clock for TickClock {
///     type Sleep = TickSleep;
///     fn now(&self) -> Instant {
///         Instant::from_nanos(TICKS_US.load(Ordering::Acquire) * 1_000)
///     }
///     fn sleep(&self, duration: Duration) -> TickSleep {
///         TickSleep { until: self.now() + duration }
///     }
/// }
///
/// TICKS_US.store(5, Ordering::Release);
/// assert_eq!(TickClock.now(), Instant::from_nanos(5_000));
/// ```
pub trait Clock: Clone {
    /// The future returned by [`sleep`](Clock::sleep).
    type Sleep: Future<Output = ()>;

    /// The current instant. Monotonic; never fails.
    fn now(&self) -> Instant;

    /// A future that completes once `duration` has passed on this clock.
    fn sleep(&self, duration: Duration) -> Self::Sleep;
}

/// A [`Clock`] usable across threads: `Send + Sync + 'static`, with sleeps
/// that are `Send`. Every such clock implements it (`TokioClock`,
/// `SmolClock`, `AsyncStdClock`, `FuturesTimerClock`, `ManualClock`,
/// `FastClock` over any of them); nothing to implement by hand.
///
/// Bound a generic policy by `K: SendClock` instead of `K: Clock` when its
/// calls must be spawned: inside the function the compiler then knows that
/// every timer the stack waits on can cross threads, so
/// [`spawnable!`](crate::spawnable!) can check the stack there and the
/// function can return `impl SendCombinator<C>`. See
/// [`SendCombinator`](crate::SendCombinator) for the whole pattern.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::{spawnable, ClockExt, ConfigError, ManualClock, SendClock, SendCombinator};
///
/// fn policy<K: SendClock>(
///     clock: &K,
///     check: impl SendCombinator<u32>,
/// ) -> Result<impl SendCombinator<u32>, ConfigError> {
///     let timed = clock.with_timeout(check.send_part(), Duration::from_secs(1))?;
///     Ok(spawnable!(clock.limited(timed, 4)?))
/// }
///
/// let clock = ManualClock::new();
/// let api = policy(&clock, kompoz_core::rule_fn(|n: &u32| {
///     let n = *n;
///     async move { n > 0 }
/// }))?;
/// let call = std::thread::spawn(move || clock.block_on(api.run_send(7)));
/// assert_eq!(call.join().unwrap(), (true, 7));
/// # Ok::<(), ConfigError>(())
/// ```
///
/// With `K: Clock` alone the clock's `Sleep` may be anything, so the same
/// function is refused ("`<K as Clock>::Sleep` cannot be sent between
/// threads safely"):
///
/// ```compile_fail,E0277
/// use core::time::Duration;
/// use kompoz_core::{spawnable, Clock, ClockExt, ConfigError, SendCombinator};
///
/// fn policy<K: Clock + Send + Sync + 'static>(
///     clock: &K,
///     check: impl SendCombinator<u32>,
/// ) -> Result<impl SendCombinator<u32>, ConfigError> {
///     let timed = clock.with_timeout(check.send_part(), Duration::from_secs(1))?;
///     Ok(spawnable!(clock.limited(timed, 4)?))
/// }
/// ```
pub trait SendClock: Clock<Sleep: Send> + Send + Sync + 'static {}

impl<K> SendClock for K where K: Clock<Sleep: Send> + Send + Sync + 'static {}
