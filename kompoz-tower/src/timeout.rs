//! [`TimeoutLayer`]: a response that takes too long becomes
//! [`Error::TimedOut`].

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use core::time::Duration;

use kompoz_core::call::{Error, TimedOut};
use kompoz_core::{Clock, ConfigError};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::StackError;

/// Gives up on a response after a duration: the inner future is dropped
/// (releasing whatever it held) and the call fails with
/// [`Error::TimedOut`].
///
/// The duration runs from the response future's first poll that finds the
/// inner future pending (an answer ready at once never arms a timer). Like
/// tower's own timeout it covers the response, not the wait for readiness
/// in `poll_ready`: a limit's queue is bounded by the limit's own mode
/// ([`LimitLayer::reject_when_full`](crate::LimitLayer::reject_when_full)).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use kompoz_core::{call::Error, ManualClock};
/// use kompoz_tower::TimeoutLayer;
/// use tower::{service_fn, Layer, ServiceExt};
///
/// let clock = ManualClock::new();
/// let sleepy = clock.clone();
/// let slow = service_fn(move |_: ()| {
///     let sleepy = sleepy.clone();
///     async move {
///         kompoz_core::Clock::sleep(&sleepy, Duration::from_secs(60)).await;
///         Ok::<_, std::io::Error>("late")
///     }
/// });
/// let timed = TimeoutLayer::new(Duration::from_secs(2), clock.clone())?.layer(slow);
///
/// let answer = clock.block_on(timed.oneshot(()));
/// assert!(matches!(answer, Err(Error::TimedOut(t)) if t.after() == Duration::from_secs(2)));
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct TimeoutLayer<K> {
    after: Duration,
    clock: K,
}

impl<K: Clock> TimeoutLayer<K> {
    /// Responses give up after `timeout` on `clock`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `timeout` if it is zero.
    pub fn new(timeout: Duration, clock: K) -> Result<Self, ConfigError> {
        if timeout.is_zero() {
            return Err(ConfigError::invalid(
                "timeout",
                timeout,
                "a duration greater than zero",
            ));
        }
        Ok(TimeoutLayer {
            after: timeout,
            clock,
        })
    }

    /// The duration after which a response gives up.
    pub fn timeout(&self) -> Duration {
        self.after
    }
}

impl<S, K: Clock> Layer<S> for TimeoutLayer<K> {
    type Service = Timeout<S, K>;

    fn layer(&self, inner: S) -> Timeout<S, K> {
        Timeout {
            inner,
            after: self.after,
            clock: self.clock.clone(),
        }
    }
}

/// The service of [`TimeoutLayer`].
#[derive(Clone, Debug)]
pub struct Timeout<S, K> {
    inner: S,
    after: Duration,
    clock: K,
}

impl<S, K> Timeout<S, K> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, by value.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, R, K> Service<R> for Timeout<S, K>
where
    S: Service<R>,
    S::Error: StackError,
    K: Clock,
{
    type Response = S::Response;
    type Error = Error<<S::Error as StackError>::Inner>;
    type Future = TimeoutFuture<S::Future, K>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(StackError::into_error)
    }

    #[inline]
    fn call(&mut self, request: R) -> Self::Future {
        TimeoutFuture {
            inner: self.inner.call(request),
            sleep: None,
            clock: self.clock.clone(),
            after: self.after,
        }
    }
}

pin_project! {
    /// The response future of [`Timeout`].
    pub struct TimeoutFuture<F, K: Clock> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Option<K::Sleep>,
        clock: K,
        after: Duration,
    }
}

impl<F, T, E, K> Future for TimeoutFuture<F, K>
where
    F: Future<Output = Result<T, E>>,
    E: StackError,
    K: Clock,
{
    type Output = Result<T, Error<E::Inner>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            return Poll::Ready(result.map_err(StackError::into_error));
        }
        if this.sleep.is_none() {
            this.sleep.set(Some(this.clock.sleep(*this.after)));
        }
        if let Some(sleep) = this.sleep.as_pin_mut() {
            ready!(sleep.poll(cx));
        }
        Poll::Ready(Err(TimedOut::new(*this.after).into()))
    }
}

impl<F, K: Clock> fmt::Debug for TimeoutFuture<F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutFuture")
            .field("after", &self.after)
            .field("armed", &self.sleep.is_some())
            .finish_non_exhaustive()
    }
}
