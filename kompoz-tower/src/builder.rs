//! [`ServiceBuilderExt`]: the kompoz layers as `ServiceBuilder` methods.

use core::time::Duration;

use kompoz_core::{Breaker, Clock, ConfigError, RateLimiter};
use tower::ServiceBuilder;
use tower_layer::Stack;

use crate::{
    CircuitBreakerLayer, InnerErrorLayer, LimitLayer, RateLimitLayer, RetryLayer, TimeoutLayer,
};

/// The kompoz layers as methods of tower's `ServiceBuilder`, in the order
/// they are written (the first is outermost, as with `.layer(..)`).
///
/// The names are kompoz's (`with_timeout`, `limited`, `circuit_breaker`,
/// `rate_limited`), distinct from `ServiceBuilder`'s own `timeout`,
/// `concurrency_limit`, `rate_limit` and `retry`, which tower's features
/// may bring in. Methods that take raw settings validate them and return a
/// [`ConfigError`]; the ones that take a built `Breaker` or `RateLimiter`
/// cannot fail. Modes and classifiers are on the layers themselves: pass
/// those to `.layer(..)`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use kompoz_core::{ClockExt, ManualClock};
/// use kompoz_tower::ServiceBuilderExt;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// let clock = ManualClock::new();
/// let breaker = clock.shared_breaker().build()?;
/// let api = ServiceBuilder::new()
///     .limited(64)?
///     .circuit_breaker(&breaker)
///     .with_timeout(Duration::from_secs(2), clock.clone())?
///     .service(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n + 1) }));
/// assert_eq!(clock.block_on(api.oneshot(41)).unwrap(), 42);
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
pub trait ServiceBuilderExt<L>: Sized {
    /// Adds a [`TimeoutLayer`].
    ///
    /// # Errors
    ///
    /// As [`TimeoutLayer::new`].
    fn with_timeout<K: Clock>(
        self,
        timeout: Duration,
        clock: K,
    ) -> Result<ServiceBuilder<Stack<TimeoutLayer<K>, L>>, ConfigError>;

    /// Adds a [`LimitLayer`] with a pool of its own.
    ///
    /// # Errors
    ///
    /// As [`LimitLayer::new`].
    fn limited(
        self,
        max_concurrent: usize,
    ) -> Result<ServiceBuilder<Stack<LimitLayer, L>>, ConfigError>;

    /// Adds a [`LimitLayer`] on the pool named `name` in the process-wide
    /// registry.
    ///
    /// # Errors
    ///
    /// As [`LimitLayer::named`].
    fn limited_named(
        self,
        name: &str,
        max_concurrent: usize,
    ) -> Result<ServiceBuilder<Stack<LimitLayer, L>>, ConfigError>;

    /// Adds a [`CircuitBreakerLayer`] on `breaker`; every `Err` is a failure.
    fn circuit_breaker<K: Clock>(
        self,
        breaker: &Breaker<K>,
    ) -> ServiceBuilder<Stack<CircuitBreakerLayer<K>, L>>;

    /// Adds a [`RateLimitLayer`] on `limiter`, refusing calls over the rate.
    fn rate_limited<K: Clock>(
        self,
        limiter: &RateLimiter<K>,
    ) -> ServiceBuilder<Stack<RateLimitLayer<K>, L>>;

    /// Adds a [`RetryLayer`] with `policy`, waiting on `clock`.
    fn with_retry<P, K: Clock>(
        self,
        policy: P,
        clock: K,
    ) -> ServiceBuilder<Stack<RetryLayer<P, K>, L>>;

    /// Adds an [`InnerErrorLayer`]: put it last, right above a leaf whose
    /// error type does not implement [`StackError`](crate::StackError).
    fn inner_error(self) -> ServiceBuilder<Stack<InnerErrorLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    fn with_timeout<K: Clock>(
        self,
        timeout: Duration,
        clock: K,
    ) -> Result<ServiceBuilder<Stack<TimeoutLayer<K>, L>>, ConfigError> {
        Ok(self.layer(TimeoutLayer::new(timeout, clock)?))
    }

    fn limited(
        self,
        max_concurrent: usize,
    ) -> Result<ServiceBuilder<Stack<LimitLayer, L>>, ConfigError> {
        Ok(self.layer(LimitLayer::new(max_concurrent)?))
    }

    fn limited_named(
        self,
        name: &str,
        max_concurrent: usize,
    ) -> Result<ServiceBuilder<Stack<LimitLayer, L>>, ConfigError> {
        Ok(self.layer(LimitLayer::named(name, max_concurrent)?))
    }

    fn circuit_breaker<K: Clock>(
        self,
        breaker: &Breaker<K>,
    ) -> ServiceBuilder<Stack<CircuitBreakerLayer<K>, L>> {
        self.layer(CircuitBreakerLayer::new(breaker))
    }

    fn rate_limited<K: Clock>(
        self,
        limiter: &RateLimiter<K>,
    ) -> ServiceBuilder<Stack<RateLimitLayer<K>, L>> {
        self.layer(RateLimitLayer::new(limiter))
    }

    fn with_retry<P, K: Clock>(
        self,
        policy: P,
        clock: K,
    ) -> ServiceBuilder<Stack<RetryLayer<P, K>, L>> {
        self.layer(RetryLayer::new(policy, clock))
    }

    fn inner_error(self) -> ServiceBuilder<Stack<InnerErrorLayer, L>> {
        self.layer(InnerErrorLayer)
    }
}
