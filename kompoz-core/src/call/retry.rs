//! The retry layer: [`RetryLayer`], added by [`Policy::retry`], with its
//! decision ([`RetryDecision`]) and hook ([`RetryHook`]).

use core::fmt;
use core::time::Duration;

use super::{Error, Layer, Operation, Policy, Predicate, Stack};
use crate::clock::duration_to_nanos;
use crate::observe::{Event, Observable, Observer, error_kind};
use crate::retry::{Schedule, SplitMix};
use crate::{Backoff, Clock, ConfigError, Jitter};

/// Calls the layers inside it again while an attempt fails with an error
/// its decision retries, up to `max_attempts` attempts in all, waiting the
/// back-off's delay between them.
///
/// By default the operation's own errors ([`Error::Inner`]) and timeouts
/// are retried, refusals (an open circuit, a full pool, a rate limit) are
/// not: a refusal says that another attempt now would be refused too.
/// [`Policy::retry_if`] narrows the operation's errors,
/// [`Policy::retry_error_if`] decides over every [`Error`]. A refusal that
/// is retried waits at least until its [`retry_at`](Error::retry_at).
pub struct RetryLayer<K, R = DefaultRetry, H = ()> {
    clock: K,
    max_attempts: u32,
    backoff: Schedule,
    jitter: Jitter,
    rng: SplitMix,
    decision: R,
    on_retry: H,
    observer: Observer,
}

/// Which failed attempts a [`RetryLayer`] tries again.
pub trait RetryDecision<E> {
    /// Whether an attempt that failed with `error` is tried again (when
    /// attempts are left).
    fn should_retry(&self, error: &Error<E>) -> bool;
}

/// The default decision: the operation's own errors and timeouts are
/// retried, refusals are not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DefaultRetry;

impl<E> RetryDecision<E> for DefaultRetry {
    #[inline]
    fn should_retry(&self, error: &Error<E>) -> bool {
        matches!(error, Error::Inner(_) | Error::TimedOut(_))
    }
}

/// The decision of [`Policy::retry_if`]: the operation's errors that the
/// predicate accepts, and timeouts.
#[derive(Clone, Copy, Debug)]
pub struct RetryIf<P>(P);

impl<E, P: Predicate<E>> RetryDecision<E> for RetryIf<P> {
    #[inline]
    fn should_retry(&self, error: &Error<E>) -> bool {
        match error {
            Error::Inner(e) => self.0.test(e),
            Error::TimedOut(_) => true,
            _ => false,
        }
    }
}

/// The decision of [`Policy::retry_error_if`]: the predicate over the
/// whole [`Error`].
#[derive(Clone, Copy, Debug)]
pub struct RetryErrorIf<P>(P);

impl<E, P: Predicate<Error<E>>> RetryDecision<E> for RetryErrorIf<P> {
    #[inline]
    fn should_retry(&self, error: &Error<E>) -> bool {
        self.0.test(error)
    }
}

/// Told before each retry: the attempt that failed (1 for the first), the
/// delay before the next one, and the error.
pub trait RetryHook<E> {
    /// Called before the layer waits `delay` and tries again.
    fn on_retry(&self, attempt: u32, delay: Duration, error: &Error<E>);
}

impl<E> RetryHook<E> for () {
    #[inline]
    fn on_retry(&self, _: u32, _: Duration, _: &Error<E>) {}
}

impl<E, F: Fn(u32, Duration, &Error<E>)> RetryHook<E> for F {
    #[inline]
    fn on_retry(&self, attempt: u32, delay: Duration, error: &Error<E>) {
        self(attempt, delay, error)
    }
}

impl<K> RetryLayer<K> {
    /// Up to `max_attempts` attempts in all, with no delay between them.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `max_attempts` if it is zero.
    pub fn new(max_attempts: u32, clock: K) -> Result<Self, ConfigError> {
        if max_attempts == 0 {
            return Err(ConfigError::invalid(
                "max_attempts",
                max_attempts,
                "at least 1",
            ));
        }
        Ok(RetryLayer {
            clock,
            max_attempts,
            backoff: Backoff::NONE.schedule(),
            jitter: Jitter::None,
            rng: SplitMix::from_entropy(),
            decision: DefaultRetry,
            on_retry: (),
            observer: Observer::new(),
        })
    }
}

impl<K, R, H> RetryLayer<K, R, H> {
    /// The most attempts a call makes.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    fn with<R2, H2>(self, f: impl FnOnce(R, H) -> (R2, H2)) -> RetryLayer<K, R2, H2> {
        let (decision, on_retry) = f(self.decision, self.on_retry);
        RetryLayer {
            clock: self.clock,
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            jitter: self.jitter,
            rng: self.rng,
            decision,
            on_retry,
            observer: self.observer,
        }
    }
}

impl<T, E, K, R, H> Layer<T, E> for RetryLayer<K, R, H>
where
    K: Clock,
    R: RetryDecision<E>,
    H: RetryHook<E>,
{
    async fn call<O>(&self, mut op: O) -> Result<T, Error<E>>
    where
        O: Operation<Output = T, Error = E>,
    {
        let mut attempt = 1;
        let mut delays = self.backoff.delays();
        loop {
            let error = match op.invoke().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            if attempt >= self.max_attempts || !self.decision.should_retry(&error) {
                return Err(error);
            }
            let mut wait = self.jitter.apply(delays.current(), &self.rng);
            if let Some(at) = error.retry_at() {
                // A refusal retried on request: no sooner than it may pass.
                wait = wait.max(duration_to_nanos(at - self.clock.now()));
            }
            self.observer.emit(|| Event::Retry {
                attempt,
                delay: Duration::from_nanos(wait),
                error: error_kind(&error),
            });
            self.on_retry
                .on_retry(attempt, Duration::from_nanos(wait), &error);
            drop(error);
            if wait > 0 {
                self.clock.sleep(Duration::from_nanos(wait)).await;
            }
            delays.advance();
            attempt += 1;
        }
    }
}

impl<K: Clone, R: Clone, H: Clone> Clone for RetryLayer<K, R, H> {
    fn clone(&self) -> Self {
        RetryLayer {
            clock: self.clock.clone(),
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            jitter: self.jitter,
            rng: self.rng.clone(),
            decision: self.decision.clone(),
            on_retry: self.on_retry.clone(),
            observer: self.observer.clone(),
        }
    }
}

impl<K, R, H> Observable for RetryLayer<K, R, H> {
    fn observer_mut(&mut self) -> &mut Observer {
        &mut self.observer
    }
}

impl<K, R, H> fmt::Debug for RetryLayer<K, R, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("jitter", &self.jitter)
            .field("observer", &self.observer)
            .finish_non_exhaustive()
    }
}

impl<K: Clock, S> Policy<K, S> {
    /// Adds a retry: up to `max_attempts` attempts in all through the
    /// layers added after it, with no delay until
    /// [`backoff`](Policy::backoff) or [`fixed`](Policy::fixed) sets one.
    /// Which errors are retried: see [`RetryLayer`].
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `max_attempts` if it is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz_core::call::Error;
    /// use kompoz_core::{Backoff, Clock, ClockExt, ManualClock};
    ///
    /// #[derive(Debug)]
    /// enum ApiError { Busy, NotFound }
    ///
    /// let clock = ManualClock::new();
    /// let policy = clock
    ///     .policy()
    ///     .retry(4)?
    ///     .backoff(Backoff::exponential(Duration::from_millis(100), 2.0, Duration::from_secs(1))?)
    ///     .retry_if(|e: &ApiError| matches!(e, ApiError::Busy))
    ///     .on_retry(|attempt, delay, error: &Error<ApiError>| {
    ///         println!("attempt {attempt} failed ({error:?}); next in {delay:?}");
    ///     });
    ///
    /// // Busy is retried: four attempts, 100 + 200 + 400 ms apart.
    /// let busy = clock.block_on(policy.call(|| async { Err::<(), _>(ApiError::Busy) }));
    /// assert!(matches!(busy, Err(Error::Inner(ApiError::Busy))));
    /// assert_eq!(clock.now().as_duration(), Duration::from_millis(700));
    ///
    /// // NotFound is not: one attempt.
    /// let gone = clock.block_on(policy.call(|| async { Err::<(), _>(ApiError::NotFound) }));
    /// assert!(matches!(gone, Err(Error::Inner(ApiError::NotFound))));
    /// assert_eq!(clock.now().as_duration(), Duration::from_millis(700));
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    pub fn retry(
        self,
        max_attempts: u32,
    ) -> Result<Policy<K, Stack<S, RetryLayer<K>>>, ConfigError> {
        let layer = RetryLayer::new(max_attempts, self.clock().clone())?;
        Ok(self.layer(layer))
    }
}

/// The settings of the retry layer just added.
impl<K, S, R, H> Policy<K, Stack<S, RetryLayer<K, R, H>>> {
    /// The delays between attempts (see [`Backoff`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz_core::{Backoff, Clock, ClockExt, Jitter, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let ms = Duration::from_millis;
    /// let policy = clock.policy().retry(4)?.backoff(Backoff::exponential(ms(10), 3.0, ms(50))?);
    /// let _ = clock.block_on(policy.call(|| async { Err::<(), _>("down") }));
    /// assert_eq!(clock.now().as_duration(), ms(10 + 30 + 50)); // capped at 50 ms
    ///
    /// // Jittered: each delay drawn from [0, delay], reproducibly seeded.
    /// let spread = clock.policy().retry(4)?.fixed(ms(10)).jitter(Jitter::Full).jitter_seed(7);
    /// # let _ = spread;
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.last_mut().backoff = backoff.schedule();
        self
    }

    /// The same `delay` between every two attempts.
    pub fn fixed(self, delay: Duration) -> Self {
        self.backoff(Backoff::fixed(delay))
    }

    /// Randomises each delay (see [`Jitter`]).
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.last_mut().jitter = jitter;
        self
    }

    /// Seeds the jitter's random source, for reproducible delays.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.last_mut().rng.reseed(seed);
        self
    }

    /// Retries only the operation's errors that `predicate` accepts (and
    /// timeouts); refusals stay unretried. Replaces an earlier
    /// [`retry_error_if`](Self::retry_error_if).
    // The type says which layer changed: spelled out, not aliased.
    #[allow(clippy::type_complexity)]
    pub fn retry_if<P>(self, predicate: P) -> Policy<K, Stack<S, RetryLayer<K, RetryIf<P>, H>>> {
        self.map_last(|layer| layer.with(|_, hook| (RetryIf(predicate), hook)))
    }

    /// Retries the attempts whose [`Error`] `predicate` accepts, refusals
    /// included (a refused attempt is retried no sooner than its
    /// [`retry_at`](Error::retry_at)). Replaces an earlier
    /// [`retry_if`](Self::retry_if).
    #[allow(clippy::type_complexity)]
    pub fn retry_error_if<P>(
        self,
        predicate: P,
    ) -> Policy<K, Stack<S, RetryLayer<K, RetryErrorIf<P>, H>>> {
        self.map_last(|layer| layer.with(|_, hook| (RetryErrorIf(predicate), hook)))
    }

    /// Calls `hook(attempt, delay, &error)` before each retry.
    pub fn on_retry<H2>(self, hook: H2) -> Policy<K, Stack<S, RetryLayer<K, R, H2>>> {
        self.map_last(|layer| layer.with(|decision, _| (decision, hook)))
    }
}
