//! Retry with back-off: [`Retry`] (kompoz's `AsyncRetry`).

use crate::observe::{Event, Observer};
use core::fmt;
use core::time::Duration;

use crate::clock::duration_to_nanos;
use crate::{Clock, Combinator, ConfigError};

mod backoff;

pub use backoff::Jitter;
pub(crate) use backoff::{Backoff as Schedule, SplitMix};

/// How long a [`Retry`] waits between attempts: a validated value.
///
/// Delays are whole nanoseconds and saturate, so they never overflow
/// however many attempts run. Durations beyond `u64::MAX` nanoseconds
/// (about 584 years) count as that much.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::{Backoff, ConfigError};
///
/// let backoff = Backoff::exponential(Duration::from_millis(100), 2.0, Duration::from_secs(10))?;
/// # let _ = backoff;
///
/// let err = Backoff::exponential(Duration::from_millis(100), 0.5, Duration::from_secs(10)).unwrap_err();
/// assert_eq!(err.parameter(), "factor");
/// # Ok::<(), ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff(Schedule);

impl Backoff {
    /// No wait between attempts (the default, as kompoz's `backoff=0`).
    pub const NONE: Backoff = Backoff(Schedule::Fixed(0));

    /// The same `delay` after every failure.
    pub fn fixed(delay: Duration) -> Self {
        Backoff(Schedule::Fixed(duration_to_nanos(delay)))
    }

    /// `base` after the first failure, then `factor` times the previous
    /// delay after each further one, never more than `max_delay`:
    /// `base, base·factor, base·factor², …, max_delay, max_delay, …`.
    /// kompoz's `exponential=True` is `factor = 2.0` with no cap.
    ///
    /// The `n`-th delay is `base·factorⁿ` rounded down to whole nanoseconds
    /// (grown unrounded, so a 1 ns base with factor 1.5 waits 1, 1, 2, 3,
    /// 5, 7, 11 ns, …) and saturates at `max_delay`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `factor` if it is below 1 or not
    /// finite, or `max_delay` if it is below `base`.
    pub fn exponential(
        base: Duration,
        factor: f64,
        max_delay: Duration,
    ) -> Result<Self, ConfigError> {
        // Written so that NaN fails too.
        if !(factor >= 1.0 && factor.is_finite()) {
            return Err(ConfigError::invalid(
                "factor",
                factor,
                "a finite number of at least 1",
            ));
        }
        if max_delay < base {
            return Err(ConfigError::invalid(
                "max_delay",
                max_delay,
                "at least the base delay",
            ));
        }
        Ok(Backoff(Schedule::Exponential {
            base: duration_to_nanos(base),
            factor,
            max: duration_to_nanos(max_delay),
        }))
    }
}

impl Backoff {
    /// The schedule behind it, for the call API's retry layer.
    pub(crate) fn schedule(self) -> Schedule {
        self.0
    }

    /// The wait after failed attempt `attempt` (counted from 1) before the
    /// next one, as a [`Retry`] with this back-off and no jitter waits it.
    /// Retry loops outside the algebra (a tower layer, say) compute their
    /// delays with it. Attempt 0 is read as attempt 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz_core::Backoff;
    ///
    /// let b = Backoff::exponential(Duration::from_millis(100), 2.0, Duration::from_millis(300))?;
    /// let ms = |n| b.delay(n).as_millis();
    /// assert_eq!((ms(1), ms(2), ms(3), ms(40)), (100, 200, 300, 300));
    /// assert_eq!(Backoff::fixed(Duration::from_secs(1)).delay(7), Duration::from_secs(1));
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    ///
    /// It walks the schedule up to `attempt` and stops early once the delay
    /// reaches the cap, or, with `factor` 1, after the second delay (the
    /// sequence is constant from there on), so a huge `attempt` costs at
    /// most the steps to the cap.
    pub fn delay(&self, attempt: u32) -> Duration {
        let (max, factor) = match self.0 {
            Schedule::Fixed(delay) => return Duration::from_nanos(delay),
            Schedule::Exponential { max, factor, .. } => (max, factor),
        };
        // With factor 1 the delay is only rounded once, by the first advance.
        let attempt = if factor == 1.0 {
            attempt.min(2)
        } else {
            attempt
        };
        let mut delays = self.0.delays();
        // Once capped it stays there: no need to walk the remaining attempts.
        for _ in 1..attempt {
            if delays.current() >= max {
                break;
            }
            delays.advance();
        }
        Duration::from_nanos(delays.current())
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::NONE
    }
}

/// Re-runs an inner combinator while it fails, waiting between attempts.
///
/// Each attempt runs on a clone of the context the call started with
/// (so `C: Clone`), up to `max_attempts` runs in all. The first success
/// returns `(true, ctx)` with that attempt's context; when every attempt
/// fails, the last attempt's `(false, ctx)` is returned. The waits go through
/// the [`Clock`], so under [`ManualClock`](crate::ManualClock) tests see the
/// exact delays.
///
/// - Delays ([`backoff`](Self::backoff)): none by default (kompoz's
///   `backoff=0`), [`Backoff::fixed`] ([`fixed`](Self::fixed) for short), or
///   [`Backoff::exponential`] from a base by a factor, capped.
///   The arithmetic saturates: no attempt number makes a delay overflow, wrap
///   or turn negative.
/// - [`jitter`](Self::jitter): [`Jitter::Full`] (a uniform delay in
///   `[0, delay]`) or kompoz's [`Jitter::Additive`], from a small seeded
///   generator ([`jitter_seed`](Self::jitter_seed) makes it reproducible).
/// - [`on_retry`](Self::on_retry)`(attempt, delay)`: kompoz's observability
///   hook, called after failed attempt `attempt` (counted from 1) and before
///   the wait of `delay` that precedes the next attempt.
/// - [`stop_if`](Self::stop_if): gives up early on a failed attempt whose
///   context says retrying is pointless.
/// - [`run_with_info`](Self::run_with_info): kompoz's `run_with_info`, which
///   also reports how many attempts ran.
///
/// Dropping the future cancels whatever it is doing: the running attempt or
/// the pending wait.
///
/// Built by [`clock.retry(inner, max_attempts)`](crate::ClockExt::retry)
/// (the runtime crates' `retry`).
///
/// # Examples
///
/// ```
/// use core::pin::pin;
/// use core::time::Duration;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use futures::FutureExt;
/// use kompoz_core::{rule, Backoff, Clock, ClockExt, ManualClock};
///
/// let clock = ManualClock::new();
/// let calls = AtomicU32::new(0);
/// // Fails twice, then passes.
/// let flaky = rule(async |_: &()| calls.fetch_add(1, Ordering::SeqCst) >= 2);
///
/// let fetch = clock.retry(flaky, 5)?
///     .backoff(Backoff::exponential(Duration::from_millis(100), 2.0, Duration::from_secs(1))?)
///     .on_retry(|attempt, delay| println!("attempt {attempt} failed, retrying in {delay:?}"));
///
/// let mut run = pin!(fetch.run_with_info(()));
/// let info = loop {
///     if let Some(info) = (&mut run).now_or_never() {
///         break info;
///     }
///     clock.advance_to_next_deadline(); // let virtual time pass
/// };
/// assert!(info.ok);
/// assert_eq!(info.attempts, 3);
/// // Waited 100 ms after the first failure and 200 ms after the second.
/// assert_eq!(clock.now().as_duration(), Duration::from_millis(300));
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
pub struct Retry<A, K, H = (), S = ()> {
    inner: A,
    max_attempts: u32,
    backoff: Schedule,
    jitter: Jitter,
    rng: SplitMix,
    clock: K,
    on_retry: H,
    stop_if: S,
    observer: Observer,
}

/// What a retried call did: its verdict and context, and how many attempts
/// ran (kompoz's `RetryResult`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryInfo<C> {
    /// The verdict: `true` if an attempt passed.
    pub ok: bool,
    /// The context of the attempt that decided the outcome: the one that
    /// passed, the one [`stop_if`](Retry::stop_if) stopped at, or the last.
    pub ctx: C,
    /// How many attempts ran, from 1 to `max_attempts`.
    pub attempts: u32,
    /// `true` if [`stop_if`](Retry::stop_if) ended the retries before
    /// `max_attempts` ran.
    pub stopped_early: bool,
}

/// The [`on_retry`](Retry::on_retry) hook: implemented for `()` (no hook)
/// and for closures `Fn(u32, Duration)`.
pub trait OnRetry {
    /// Called after failed attempt `attempt` (from 1) and before waiting
    /// `delay` for the next one.
    fn on_retry(&self, attempt: u32, delay: Duration);
}

impl OnRetry for () {
    fn on_retry(&self, _: u32, _: Duration) {}
}

impl<F: Fn(u32, Duration)> OnRetry for F {
    fn on_retry(&self, attempt: u32, delay: Duration) {
        self(attempt, delay)
    }
}

/// A retry hook that may read the failed attempt's context: what
/// [`Retry`] calls. Every [`OnRetry`] hook is one (it ignores the
/// context); [`on_retry_with`](Retry::on_retry_with) sets one that reads
/// it.
pub trait OnRetryWith<C> {
    /// Called after failed attempt `attempt` (from 1), whose context is
    /// `ctx`, and before waiting `delay` for the next one.
    fn on_retry(&self, attempt: u32, delay: Duration, ctx: &C);
}

impl<C, H: OnRetry> OnRetryWith<C> for H {
    #[inline]
    fn on_retry(&self, attempt: u32, delay: Duration, _: &C) {
        OnRetry::on_retry(self, attempt, delay);
    }
}

/// The hook set by [`on_retry_with`](Retry::on_retry_with): a closure
/// `Fn(attempt, delay, &ctx)`.
#[derive(Clone, Copy)]
pub struct WithContext<F>(F);

impl<F> fmt::Debug for WithContext<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithContext").finish_non_exhaustive()
    }
}

impl<C, F: Fn(u32, Duration, &C)> OnRetryWith<C> for WithContext<F> {
    #[inline]
    fn on_retry(&self, attempt: u32, delay: Duration, ctx: &C) {
        (self.0)(attempt, delay, ctx)
    }
}

/// The [`stop_if`](Retry::stop_if) predicate: implemented for `()` (never
/// stop early) and for closures `Fn(&C) -> bool`.
pub trait StopIf<C> {
    /// `true` to give up after a failed attempt that left `ctx`.
    fn stop_if(&self, ctx: &C) -> bool;
}

impl<C> StopIf<C> for () {
    fn stop_if(&self, _: &C) -> bool {
        false
    }
}

impl<C, F: Fn(&C) -> bool> StopIf<C> for F {
    fn stop_if(&self, ctx: &C) -> bool {
        self(ctx)
    }
}

impl<A, K> Retry<A, K> {
    /// Retries `inner` up to `max_attempts` runs in all (at least 1), timed
    /// by `clock`, with no delay between attempts until one is configured.
    ///
    /// # Errors
    ///
    /// `max_attempts == 0`.
    pub fn new(inner: A, max_attempts: u32, clock: K) -> Result<Self, ConfigError> {
        if max_attempts == 0 {
            return Err(ConfigError::invalid(
                "max_attempts",
                max_attempts,
                "at least 1",
            ));
        }
        Ok(Retry {
            inner,
            max_attempts,
            backoff: Schedule::Fixed(0),
            jitter: Jitter::None,
            rng: SplitMix::from_entropy(),
            clock,
            on_retry: (),
            stop_if: (),
            observer: Observer::new(),
        })
    }
}

impl<A, K, H, S> Retry<A, K, H, S> {
    /// Names this retry: the `name` of its events (see
    /// [`observe`](crate::observe)).
    pub fn name(mut self, name: &str) -> Self {
        self.observer.set_name(name);
        self
    }

    /// Calls `subscriber(name, &event)` before each retry ([`Event::Retry`],
    /// with the error kind `"failed"`; the context goes to
    /// [`on_retry_with`](Self::on_retry_with)).
    pub fn on_event<F>(mut self, subscriber: F) -> Self
    where
        F: Fn(&str, &Event) + Send + Sync + 'static,
    {
        self.observer.set_subscriber(subscriber);
        self
    }

    /// Waits `delay` between attempts (kompoz's `backoff` without
    /// `exponential`): short for `.backoff(Backoff::fixed(delay))`. A delay
    /// beyond `u64::MAX` nanoseconds (about 584 years) waits that long.
    pub fn fixed(self, delay: Duration) -> Self {
        self.backoff(Backoff::fixed(delay))
    }

    /// How long to wait between attempts (see [`Backoff`]).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff.0;
        self
    }

    /// Randomises each delay (see [`Jitter`]); applied after the cap of
    /// [`Backoff::exponential`].
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Seeds the jitter's random source, so the delays are reproducible.
    ///
    /// Without a seed, each `Retry` is seeded from the process's hash-map
    /// randomness (with `std`) or from a counter (without `std`: pass a seed
    /// from your platform's entropy there). Concurrent calls draw from one
    /// shared sequence.
    pub fn jitter_seed(self, seed: u64) -> Self {
        self.rng.reseed(seed);
        self
    }

    /// Calls `hook(attempt, delay)` after each failed attempt that will be
    /// retried: `attempt` counts from 1, `delay` is the wait (jitter included)
    /// before the next attempt. Not called after the last attempt.
    pub fn on_retry<H2>(self, hook: H2) -> Retry<A, K, H2, S>
    where
        H2: Fn(u32, Duration),
    {
        Retry {
            inner: self.inner,
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            jitter: self.jitter,
            rng: self.rng,
            clock: self.clock,
            on_retry: hook,
            stop_if: self.stop_if,
            observer: self.observer,
        }
    }

    /// As [`on_retry`](Self::on_retry), with the failed attempt's context:
    /// `hook(attempt, delay, &ctx)`, called before that context is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use std::sync::Mutex;
    /// use kompoz_core::{transform, ClockExt, Combinator, ManualClock};
    ///
    /// #[derive(Clone, Debug)]
    /// struct Req { id: u32, status: u16 }
    ///
    /// let clock = ManualClock::new();
    /// let seen = Mutex::new(Vec::new());
    /// let call = transform(async |mut r: Req| { r.status = 503; r }) >> kompoz_core::rule(async |r: &Req| r.status == 200);
    /// let retried = clock
    ///     .retry(call, 3)?
    ///     .fixed(Duration::from_millis(10))
    ///     .on_retry_with(|attempt, _delay, r: &Req| seen.lock().unwrap().push((attempt, r.id, r.status)));
    /// let (ok, _) = clock.block_on(retried.run(Req { id: 7, status: 0 }));
    /// assert!(!ok);
    /// assert_eq!(*seen.lock().unwrap(), [(1, 7, 503), (2, 7, 503)]);
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    pub fn on_retry_with<C, F>(self, hook: F) -> Retry<A, K, WithContext<F>, S>
    where
        A: Combinator<C>,
        F: Fn(u32, Duration, &C),
    {
        Retry {
            inner: self.inner,
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            jitter: self.jitter,
            rng: self.rng,
            clock: self.clock,
            on_retry: WithContext(hook),
            stop_if: self.stop_if,
            observer: self.observer,
        }
    }

    /// Stops retrying after a failed attempt whose context makes `stop`
    /// return `true` (a permanent error, say); that attempt's `(false, ctx)`
    /// is the result. Only failed attempts are checked: a pass ends the
    /// retries anyway.
    pub fn stop_if<C, S2>(self, stop: S2) -> Retry<A, K, H, S2>
    where
        A: Combinator<C>,
        S2: Fn(&C) -> bool,
    {
        Retry {
            inner: self.inner,
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            jitter: self.jitter,
            rng: self.rng,
            clock: self.clock,
            on_retry: self.on_retry,
            stop_if: stop,
            observer: self.observer,
        }
    }

    /// The maximum number of attempts per call.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    crate::combinator::inner_access!(A, "retried");
}

impl<A, K: Clock, H, S> Retry<A, K, H, S> {
    /// Runs with retries and reports how many attempts ran (kompoz's
    /// `run_with_info`).
    ///
    /// # Examples
    ///
    /// ```
    /// use kompoz_core::{ClockExt, rule, ManualClock};
    ///
    /// let never = ManualClock::new().retry(rule(async |_: &u8| false), 3)?;
    /// let info = futures::executor::block_on(never.run_with_info(7));
    /// assert!(!info.ok);
    /// assert_eq!((info.ctx, info.attempts), (7, 3));
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    pub async fn run_with_info<C>(&self, ctx: C) -> RetryInfo<C>
    where
        C: Clone,
        A: Combinator<C>,
        S: StopIf<C>,
        H: OnRetryWith<C>,
    {
        let mut attempt = 1;
        let mut delays = self.backoff.delays();
        loop {
            if attempt >= self.max_attempts {
                // The last attempt takes the original context itself.
                let (ok, ctx) = self.inner.run(ctx).await;
                return RetryInfo {
                    ok,
                    ctx,
                    attempts: attempt,
                    stopped_early: false,
                };
            }
            let (ok, out) = self.inner.run(ctx.clone()).await;
            if ok || self.stop_if.stop_if(&out) {
                return RetryInfo {
                    ok,
                    ctx: out,
                    attempts: attempt,
                    stopped_early: !ok,
                };
            }
            let wait = self.jitter.apply(delays.current(), &self.rng);
            self.observer.emit(|| Event::Retry {
                attempt,
                delay: Duration::from_nanos(wait),
                error: "failed",
            });
            self.on_retry
                .on_retry(attempt, Duration::from_nanos(wait), &out);
            drop(out);
            if wait > 0 {
                self.clock.sleep(Duration::from_nanos(wait)).await;
            }
            delays.advance();
            attempt += 1;
        }
    }
}

impl<C, A, K, H, S> Combinator<C> for Retry<A, K, H, S>
where
    C: Clone,
    A: Combinator<C>,
    K: Clock,
    H: OnRetryWith<C>,
    S: StopIf<C>,
{
    async fn run(&self, ctx: C) -> (bool, C) {
        let info = self.run_with_info(ctx).await;
        (info.ok, info.ctx)
    }
}

impl<A: Clone, K: Clone, H: Clone, S: Clone> Clone for Retry<A, K, H, S> {
    /// A copy with the same settings; its random source continues from the
    /// same point but advances independently.
    fn clone(&self) -> Self {
        Retry {
            inner: self.inner.clone(),
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            jitter: self.jitter,
            rng: self.rng.clone(),
            clock: self.clock.clone(),
            on_retry: self.on_retry.clone(),
            stop_if: self.stop_if.clone(),
            observer: self.observer.clone(),
        }
    }
}

impl<A: fmt::Debug, K, H, S> fmt::Debug for Retry<A, K, H, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("jitter", &self.jitter)
            .finish_non_exhaustive()
    }
}

crate::impl_ops!([A, K, H, S] Retry<A, K, H, S>);
