//! [`Error<E>`] and the refusals it carries.

use core::fmt;
use core::time::Duration;

use crate::{CircuitState, Instant};

/// What a call through a resilience layer (or a stack of them) returns on
/// failure: the operation's own error, or the refusal of the layer that did
/// not let it run (or stopped it).
///
/// `Clone`, `PartialEq` and `Eq` when `E` is. `Display` prints one line: for
/// [`Inner`](Error::Inner), the inner error's own message; for a refusal,
/// which layer refused and its figures. With `std`, `Inner` is transparent,
/// as `thiserror`'s `#[error(transparent)]`: since `Display` already prints
/// the inner error, `source()` is the inner error's own source, so a chain
/// reporter (`anyhow`'s `{:#}`, `eyre`) prints the message once. For a
/// refusal, `source()` is `None`.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::call::{Error, PoolFull, TimedOut};
///
/// let timed_out: Error<std::io::Error> = TimedOut::new(Duration::from_secs(2)).into();
/// assert!(timed_out.is_refusal());
/// assert_eq!(timed_out.to_string(), "timed out after 2s");
///
/// let full: Error<&str> = Error::from(PoolFull::new(Duration::ZERO));
/// assert_eq!(full.retry_at(), None);
///
/// let inner: Error<&str> = Error::Inner("connection reset");
/// assert_eq!(inner.inner(), Some(&"connection reset"));
/// assert_eq!(inner.map_inner(str::len).into_inner(), Some(16));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error<E> {
    /// The operation ran and failed with its own error (after any retries).
    Inner(E),
    /// The breaker refused an attempt. Under a retry layer, earlier attempts
    /// of the same call may have run (and opened the breaker): the refusal
    /// that stops the retries is the call's outcome, and their errors are
    /// dropped. Not "never tried", only "stopped by an open circuit".
    CircuitOpen(CircuitOpen),
    /// The pool had no permit (reject mode) or the wait bound passed.
    PoolFull(PoolFull),
    /// The rate limit refused the call.
    RateLimited(RateLimitExceeded),
    /// The operation did not finish in time. Under a retry layer, this is
    /// the last attempt's timeout: every attempt ran.
    TimedOut(TimedOut),
}

impl<E> Error<E> {
    /// Whether a layer refused (or stopped) the call: every variant but
    /// [`Inner`](Error::Inner).
    pub fn is_refusal(&self) -> bool {
        !matches!(self, Error::Inner(_))
    }

    /// The operation's own error, if it ran and failed.
    pub fn inner(&self) -> Option<&E> {
        match self {
            Error::Inner(e) => Some(e),
            _ => None,
        }
    }

    /// The operation's own error, by value, if it ran and failed.
    pub fn into_inner(self) -> Option<E> {
        match self {
            Error::Inner(e) => Some(e),
            _ => None,
        }
    }

    /// Maps the operation's error with `f`; refusals are kept as they are.
    pub fn map_inner<F>(self, f: impl FnOnce(E) -> F) -> Error<F> {
        match self {
            Error::Inner(e) => Error::Inner(f(e)),
            Error::CircuitOpen(r) => Error::CircuitOpen(r),
            Error::PoolFull(r) => Error::PoolFull(r),
            Error::RateLimited(r) => Error::RateLimited(r),
            Error::TimedOut(r) => Error::TimedOut(r),
        }
    }

    /// When the refusing layer says a new try may pass (on that layer's
    /// clock): a breaker's open deadline, a rate limit's earliest admission.
    /// `None` when no layer said (an inner error, a full pool, a timeout, a
    /// breaker forced open or half-open with its probe slots taken).
    pub fn retry_at(&self) -> Option<Instant> {
        match self {
            Error::CircuitOpen(r) => r.retry_at(),
            Error::RateLimited(r) => Some(r.retry_at()),
            _ => None,
        }
    }

    /// How long from `now` until a new try may pass: [`retry_at`](Self::retry_at)
    /// less `now` (zero once it has passed), for an HTTP `Retry-After`.
    /// `now` is read from the clock of the policy that refused
    /// (`policy.clock().now()`, `clock.now()`): the instants of different
    /// clocks do not compare. `None` when no layer said.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz_core::call::Error;
    /// use kompoz_core::{Clock, ClockExt, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let breaker = clock
    ///     .shared_breaker()
    ///     .failure_threshold(1)
    ///     .recovery_timeout(Duration::from_secs(30))
    ///     .build()?;
    /// let policy = clock.policy().breaker(&breaker);
    /// let _ = clock.block_on(policy.call(|| async { Err::<(), _>("down") }));
    /// clock.advance(Duration::from_secs(10));
    ///
    /// let refused = clock.block_on(policy.call(|| async { Ok::<_, &str>(()) })).unwrap_err();
    /// let retry_after = refused.retry_after(policy.clock().now());
    /// assert_eq!(retry_after, Some(Duration::from_secs(20)));
    /// // e.g. `Retry-After: 20`, rounded up to whole seconds:
    /// let secs = retry_after.map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
    /// assert_eq!(secs, Some(20));
    /// assert_eq!(refused.to_string(), "circuit breaker open");
    /// assert_eq!(Error::Inner("down").retry_after(clock.now()), None);
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    pub fn retry_after(&self, now: Instant) -> Option<Duration> {
        self.retry_at().map(|at| at.duration_since(now))
    }
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Inner(e) => e.fmt(f),
            Error::CircuitOpen(r) => r.fmt(f),
            Error::PoolFull(r) => r.fmt(f),
            Error::RateLimited(r) => r.fmt(f),
            Error::TimedOut(r) => r.fmt(f),
        }
    }
}

#[cfg(feature = "std")]
impl<E: std::error::Error + 'static> std::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Inner(e) => e.source(),
            _ => None,
        }
    }
}

macro_rules! refusal_from {
    ($($ty:ident => $variant:ident),* $(,)?) => {
        $(
            impl<E> From<$ty> for Error<E> {
                fn from(refusal: $ty) -> Self {
                    Error::$variant(refusal)
                }
            }

            #[cfg(feature = "std")]
            impl std::error::Error for $ty {}
        )*
    };
}

refusal_from! {
    CircuitOpen => CircuitOpen,
    PoolFull => PoolFull,
    RateLimitExceeded => RateLimited,
    TimedOut => TimedOut,
}

/// A circuit breaker refused the call.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::{call::CircuitOpen, CircuitState, Instant};
///
/// let open = CircuitOpen::new(CircuitState::Open, Some(Instant::from_nanos(30_000_000_000)));
/// assert_eq!(open.retry_at().map(Instant::as_duration), Some(Duration::from_secs(30)));
/// assert_eq!(open.retry_after(Instant::from_nanos(12_000_000_000)), Some(Duration::from_secs(18)));
/// // The instant is on the breaker's clock: a message says only the state.
/// assert_eq!(open.to_string(), "circuit breaker open");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CircuitOpen {
    state: CircuitState,
    retry_at: Option<Instant>,
}

impl CircuitOpen {
    /// A refusal in `state` (`Open`, or `HalfOpen` when every probe slot is
    /// taken); `retry_at` is when the open period ends, if it ends by itself.
    pub const fn new(state: CircuitState, retry_at: Option<Instant>) -> Self {
        CircuitOpen { state, retry_at }
    }

    /// The state that refused: [`Open`](CircuitState::Open), or
    /// [`HalfOpen`](CircuitState::HalfOpen) when its probe slots are taken.
    pub const fn state(&self) -> CircuitState {
        self.state
    }

    /// When the open period ends (on the breaker's clock) and the next call
    /// becomes a probe. `None` when the circuit was forced open (it stays
    /// open until reset) or is half-open (it waits for its probes).
    pub const fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// How long from `now` (read from the breaker's clock) until the open
    /// period ends, zero once it has; `None` when it does not end by itself.
    pub const fn retry_after(&self, now: Instant) -> Option<Duration> {
        match self.retry_at {
            Some(at) => Some(at.duration_since(now)),
            None => None,
        }
    }
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.state, self.retry_at) {
            (CircuitState::HalfOpen, _) => {
                f.write_str("circuit breaker half-open: every probe slot is taken")
            }
            // No instant: it is on the breaker's clock (for a tokio clock,
            // time since an arbitrary origin), telling nothing to a reader.
            // `retry_after(now)` gives the wait.
            _ => f.write_str("circuit breaker open"),
        }
    }
}

/// A concurrency limit (bulkhead) refused the call: no permit was free, or
/// none came within the wait bound.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::call::PoolFull;
///
/// assert_eq!(PoolFull::new(Duration::ZERO).to_string(), "pool full: no permit free");
/// assert_eq!(
///     PoolFull::new(Duration::from_millis(250)).to_string(),
///     "pool full: no permit within 250ms",
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolFull {
    waited: Duration,
}

impl PoolFull {
    /// A refusal after waiting `waited` (zero when the pool rejects at once).
    pub const fn new(waited: Duration) -> Self {
        PoolFull { waited }
    }

    /// How long the call waited for a permit: zero in reject mode, the
    /// bound in bounded-wait mode.
    pub const fn waited(&self) -> Duration {
        self.waited
    }
}

impl fmt::Display for PoolFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.waited.is_zero() {
            f.write_str("pool full: no permit free")
        } else {
            write!(f, "pool full: no permit within {:?}", self.waited)
        }
    }
}

/// A rate limit refused the call.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::{call::RateLimitExceeded, Instant};
///
/// let refused = RateLimitExceeded::new(Instant::from_nanos(1_500_000_000));
/// assert_eq!(refused.retry_at().as_duration(), Duration::from_millis(1500));
/// assert_eq!(refused.retry_after(Instant::from_nanos(1_000_000_000)), Duration::from_millis(500));
/// assert_eq!(refused.to_string(), "rate limit exceeded");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateLimitExceeded {
    retry_at: Instant,
}

impl RateLimitExceeded {
    /// A refusal whose earliest admission is `retry_at`.
    pub const fn new(retry_at: Instant) -> Self {
        RateLimitExceeded { retry_at }
    }

    /// The earliest instant at which a call would be admitted (on the
    /// limiter's clock), if no other call takes the slot first.
    pub const fn retry_at(&self) -> Instant {
        self.retry_at
    }

    /// How long from `now` (read from the limiter's clock) until that
    /// admission, zero once it has passed.
    pub const fn retry_after(&self, now: Instant) -> Duration {
        self.retry_at.duration_since(now)
    }
}

impl fmt::Display for RateLimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // As for `CircuitOpen`: the instant is on the limiter's clock.
        f.write_str("rate limit exceeded")
    }
}

/// A timeout stopped the call: it had not finished after
/// [`after`](Self::after).
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::call::TimedOut;
///
/// let stopped = TimedOut::new(Duration::from_millis(100));
/// assert_eq!(stopped.after(), Duration::from_millis(100));
/// assert_eq!(stopped.to_string(), "timed out after 100ms");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimedOut {
    after: Duration,
}

impl TimedOut {
    /// A call stopped after `after`.
    pub const fn new(after: Duration) -> Self {
        TimedOut { after }
    }

    /// The time the call was given.
    pub const fn after(&self) -> Duration {
        self.after
    }
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timed out after {:?}", self.after)
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[derive(Debug, PartialEq)]
    struct Boom;
    impl fmt::Display for Boom {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("boom")
        }
    }
    impl std::error::Error for Boom {}

    #[test]
    fn source_is_the_inner_errors_own_source() {
        use std::error::Error as _;
        let inner: Error<Boom> = Error::Inner(Boom);
        assert!(inner.source().is_none(), "Boom has no source");
        assert_eq!(inner.to_string(), "boom");
        let refused: Error<Boom> = TimedOut::new(Duration::from_secs(1)).into();
        assert!(refused.source().is_none());
    }

    #[test]
    fn retry_at_follows_the_refusing_layer() {
        let at = Instant::from_nanos(7);
        let e: Error<Boom> = CircuitOpen::new(CircuitState::Open, Some(at)).into();
        assert_eq!(e.retry_at(), Some(at));
        let e: Error<Boom> = CircuitOpen::new(CircuitState::HalfOpen, None).into();
        assert_eq!(e.retry_at(), None);
        assert!(e.to_string().contains("half-open"));
        let e: Error<Boom> = RateLimitExceeded::new(at).into();
        assert_eq!(e.retry_at(), Some(at));
        let e: Error<Boom> = PoolFull::new(Duration::ZERO).into();
        assert_eq!(e.retry_at(), None);
        assert!(Error::<Boom>::Inner(Boom).retry_at().is_none());
        assert!(!Error::Inner(Boom).is_refusal());
    }

    #[test]
    fn map_inner_keeps_refusals() {
        let e: Error<u8> = PoolFull::new(Duration::from_secs(1)).into();
        assert_eq!(
            e.map_inner(u16::from),
            Error::PoolFull(PoolFull::new(Duration::from_secs(1)))
        );
        assert_eq!(Error::Inner(3u8).map_inner(u16::from), Error::Inner(3u16));
    }
}
