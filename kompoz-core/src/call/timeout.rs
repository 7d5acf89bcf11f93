//! The timeout layer: [`TimeoutLayer`], added by
//! [`Policy::timeout`].

use core::fmt;
use core::time::Duration;

use super::{Error, Layer, Operation, Policy, Stack, TimedOut};
use crate::timeout::within;
use crate::{Clock, ConfigError};

/// Gives each attempt that reaches it `duration` to finish; an attempt
/// still pending then is dropped and fails with [`Error::TimedOut`].
///
/// No timer is armed for an attempt that finishes on its first poll.
#[derive(Clone)]
pub struct TimeoutLayer<K> {
    clock: K,
    duration: Duration,
}

impl<K> TimeoutLayer<K> {
    /// The time each attempt is given.
    pub fn duration(&self) -> Duration {
        self.duration
    }
}

impl<K: Clock> TimeoutLayer<K> {
    /// A timeout of `duration` on `clock`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `timeout` if `duration` is zero.
    pub fn new(duration: Duration, clock: K) -> Result<Self, ConfigError> {
        if duration.is_zero() {
            return Err(ConfigError::invalid(
                "timeout",
                duration,
                "a duration greater than zero",
            ));
        }
        Ok(TimeoutLayer { clock, duration })
    }
}

impl<T, E, K: Clock> Layer<T, E> for TimeoutLayer<K> {
    #[inline]
    async fn call<O>(&self, mut op: O) -> Result<T, Error<E>>
    where
        O: Operation<Output = T, Error = E>,
    {
        match within(op.invoke(), &self.clock, self.duration).await {
            Some(out) => out,
            None => Err(Error::TimedOut(TimedOut::new(self.duration))),
        }
    }
}

impl<K> fmt::Debug for TimeoutLayer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutLayer")
            .field("duration", &self.duration)
            .finish_non_exhaustive()
    }
}

impl<K: Clock, S> Policy<K, S> {
    /// Adds a timeout: an attempt that has not finished `duration` after it
    /// reached this layer is dropped and fails with
    /// [`Error::TimedOut`]. Inside a breaker a timeout counts as the
    /// breaker's failure; inside a retry it is retried.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `timeout` if `duration` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz_core::call::Error;
    /// use kompoz_core::{Clock, ClockExt, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let policy = clock.policy().timeout(Duration::from_secs(2))?;
    /// let hangs = clock.block_on(policy.call(|| {
    ///     let sleep = clock.sleep(Duration::from_secs(60));
    ///     async move { sleep.await; Ok::<_, ()>("late") }
    /// }));
    /// match hangs {
    ///     Err(Error::TimedOut(t)) => assert_eq!(t.after(), Duration::from_secs(2)),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    pub fn timeout(
        self,
        duration: Duration,
    ) -> Result<Policy<K, Stack<S, TimeoutLayer<K>>>, ConfigError> {
        let layer = TimeoutLayer::new(duration, self.clock().clone())?;
        Ok(self.layer(layer))
    }
}
