//! [`CircuitBreakerBuilder`]: the [`BreakerBuilder`] settings for a breaker
//! that guards one combinator, plus the combinator's own options.

use core::fmt;

use crate::{Clock, Combinator, ConfigError};

use super::{
    BreakerBuilder, BreakerEvent, CircuitBreaker, CircuitBreakerStats, CircuitState, NotOk,
    SlidingWindow,
};

/// Builds a [`CircuitBreaker`] around one combinator: the
/// [`BreakerBuilder`] settings plus [`failure_if`](Self::failure_if).
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::{ClockExt, rule, ManualClock, SlidingWindow};
///
/// let protected = ManualClock::new().circuit_breaker(rule(async |n: &u32| *n % 7 != 0))
///     .failure_rate(50.0)
///     .sliding_window(SlidingWindow::Time { duration: Duration::from_secs(60), buckets: 6 })
///     .minimum_calls(20)
///     .slow_calls(Duration::from_secs(2), 80.0)
///     .half_open_max_calls(3)
///     .build()?;
/// # let _ = protected;
///
/// let err = ManualClock::new().circuit_breaker(rule(async |_: &u32| true))
///     .failure_threshold(0)
///     .build()
///     .unwrap_err();
/// assert_eq!(err.parameter(), "failure_threshold");
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
#[must_use = "a builder guards nothing until `.build()?` makes the `CircuitBreaker`"]
pub struct CircuitBreakerBuilder<I, K, P = NotOk, H = ()> {
    pub(super) inner: I,
    pub(super) predicate: P,
    pub(super) on_rejected: H,
    pub(super) config: BreakerBuilder<K>,
}

macro_rules! forward {
    ($( $name:ident ( $($arg:ident : $ty:ty),* ) ),* $(,)?) => {
        $(
            #[doc = concat!("See [`BreakerBuilder::", stringify!($name), "`].")]
            pub fn $name(mut self, $($arg: $ty),*) -> Self {
                self.config = self.config.$name($($arg),*);
                self
            }
        )*
    };
}

impl<I, K, P, H> CircuitBreakerBuilder<I, K, P, H> {
    forward! {
        failure_threshold(failures: u32),
        recovery_timeout(timeout: core::time::Duration),
        half_open_max_calls(calls: u32),
        failure_rate(percent: f64),
        slow_calls(threshold: core::time::Duration, rate_percent: f64),
        sliding_window(window: SlidingWindow),
        minimum_calls(calls: u32),
        backoff(factor: f64, max: core::time::Duration),
        jitter_fraction(fraction: f64),
        jitter_seed(seed: u64),
        exact_success_time(exact: bool),
        exact_failure_time(exact: bool),
        count_successes(count: bool),
    }

    /// See [`BreakerBuilder::on_state_change`].
    pub fn on_state_change<F>(mut self, callback: F) -> Self
    where
        F: Fn(CircuitState, CircuitState, &CircuitBreakerStats) + Send + Sync + 'static,
    {
        self.config = self.config.on_state_change(callback);
        self
    }

    /// See [`BreakerBuilder::on_event`].
    pub fn on_event<F>(mut self, subscriber: F) -> Self
    where
        F: Fn(&BreakerEvent) + Send + Sync + 'static,
    {
        self.config = self.config.on_event(subscriber);
        self
    }

    /// Counts an outcome as a failure when `predicate(ok, &ctx)` says so
    /// (default: when `ok == false`). See [`CircuitBreaker::failure_if`].
    pub fn failure_if<C, Q>(self, predicate: Q) -> CircuitBreakerBuilder<I, K, Q, H>
    where
        I: Combinator<C>,
        Q: Fn(bool, &C) -> bool,
    {
        CircuitBreakerBuilder {
            inner: self.inner,
            predicate,
            on_rejected: self.on_rejected,
            config: self.config,
        }
    }

    /// Sets what a refused call does with its context (default: hands it
    /// back unchanged). See [`CircuitBreaker::on_rejected`].
    pub fn on_rejected<C, H2>(self, hook: H2) -> CircuitBreakerBuilder<I, K, P, H2>
    where
        I: Combinator<C>,
        H2: Fn(C) -> C,
    {
        CircuitBreakerBuilder {
            inner: self.inner,
            predicate: self.predicate,
            on_rejected: hook,
            config: self.config,
        }
    }

    /// Validates the configuration and builds the guarded combinator.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first parameter out of range and its value.
    pub fn build(self) -> Result<CircuitBreaker<I, K, P, H>, ConfigError>
    where
        K: Clock,
    {
        let breaker = self.config.build()?;
        Ok(CircuitBreaker {
            inner: self.inner,
            breaker,
            predicate: self.predicate,
            on_rejected: self.on_rejected,
        })
    }
}

impl<I: fmt::Debug, K: fmt::Debug, P: fmt::Debug, H> fmt::Debug
    for CircuitBreakerBuilder<I, K, P, H>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerBuilder")
            .field("inner", &self.inner)
            .field("predicate", &self.predicate)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
