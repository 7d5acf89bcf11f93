//! [`CircuitBreakerLayer`]: one shared [`Breaker`] guarding any number of
//! services, with a response classifier.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use kompoz_core::call::{CircuitOpen, Error};
use kompoz_core::circuit_breaker::OwnedBreakerPermit;
use kompoz_core::{Breaker, Clock};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::StackError;

/// Decides whether a response counts as a failure for the breaker.
///
/// Implemented by [`ErrOnly`] (the default: every `Err`, refusals of inner
/// layers and timeouts included, is a failure; every `Ok` a success) and by
/// every closure `Fn(&Result<T, Error<E>>) -> bool`, such as "an HTTP 5xx is
/// a failure too":
///
/// ```
/// use std::convert::Infallible;
/// use axum::{body::Body, http::{Response, StatusCode}};
/// use kompoz_core::call::Error;
/// use kompoz_tower::Classify;
///
/// let classify = |result: &Result<Response<Body>, Error<Infallible>>| match result {
///     Ok(response) => response.status().is_server_error(),
///     Err(_) => true,
/// };
/// let bad_gateway = Response::builder().status(StatusCode::BAD_GATEWAY).body(Body::empty()).unwrap();
/// assert!(classify.is_failure(&Ok(bad_gateway)));
/// assert!(!classify.is_failure(&Ok(Response::new(Body::empty()))));
/// ```
pub trait Classify<T, E> {
    /// Whether `result` is a failure.
    fn is_failure(&self, result: &Result<T, Error<E>>) -> bool;
}

/// The default [`Classify`]: an `Err` is a failure, an `Ok` a success.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrOnly;

impl<T, E> Classify<T, E> for ErrOnly {
    #[inline]
    fn is_failure(&self, result: &Result<T, Error<E>>) -> bool {
        result.is_err()
    }
}

impl<T, E, F> Classify<T, E> for F
where
    F: Fn(&Result<T, Error<E>>) -> bool,
{
    #[inline]
    fn is_failure(&self, result: &Result<T, Error<E>>) -> bool {
        self(result)
    }
}

/// Guards the services below with a [`Breaker`]: while it is open, calls
/// fail with [`Error::CircuitOpen`] without reaching them.
///
/// The breaker is a shared handle: every service built by this layer, every
/// clone of those services, and every other layer or kompoz combinator
/// given the same `Breaker` (`breaker.guard(..)`) counts into one state.
/// Its policy (thresholds, failure rate, recovery, probes, callbacks) is the
/// core's; see [`Breaker`] and its builder.
///
/// # `poll_ready` and `call`
///
/// `poll_ready` asks the breaker whether it would admit a call *before*
/// asking the inner service whether it is ready; `call` takes the permit
/// (in HALF_OPEN, a probe slot). Nothing is held in between.
///
/// - Would admit: `poll_ready` waits for the inner service's readiness
///   (a limit's permit, say). `call` then takes the permit and moves it
///   into the response future, which records the outcome when the response
///   is in. If the breaker opened while the request waited (queued at a
///   limit below it), `call` refuses with [`Error::CircuitOpen`] and the
///   request never reaches the upstream.
/// - Refuses: `poll_ready` is ready at once without touching the inner
///   service, and the `call` that follows fails with
///   [`Error::CircuitOpen`]. An open circuit fails fast: a refused request
///   never waits for, nor holds, capacity below it. The refusal is not an
///   error of `poll_ready` itself, which in tower would mark the service
///   as broken for good. A later `poll_ready` decides again, so a service
///   readied while the circuit was open is not refused forever.
///
/// Why the permit is taken in `call`: tower lets a caller ready a service
/// and call it much later, or never (a balancer keeps every readied
/// endpoint in its ready set). A permit held across that gap would hold
/// the only HALF_OPEN probe slot with no request running on it, and start
/// a slow-call clock before the call. The limit, by contrast, takes its
/// permit in `poll_ready`: that is its backpressure.
///
/// A permit is never leaked: a response future dropped before its answer
/// (a client gone, an outer timeout) gives the permit back without an
/// outcome, so a probe slot returns to the breaker. A panic of the inner
/// response future counts as a failure (as in kompoz's combinator); a
/// panicking classifier records nothing. An error of the inner service's
/// `poll_ready` is classified and recorded like a response.
///
/// # Examples
///
/// One breaker for two services; an HTTP-like status of 500 and up counts
/// as a failure:
///
/// ```
/// use kompoz_core::{call::Error, CircuitState, ClockExt, ManualClock};
/// use kompoz_tower::CircuitBreakerLayer;
/// use tower::{service_fn, Layer, ServiceExt};
///
/// let clock = ManualClock::new();
/// let breaker = clock.shared_breaker().failure_threshold(2).build()?;
/// let layer = CircuitBreakerLayer::new(&breaker)
///     .failure_if(|r: &Result<u16, Error<std::io::Error>>| !matches!(r, Ok(s) if *s < 500));
///
/// let status = |code: u16| service_fn(move |_: ()| async move { Ok::<_, std::io::Error>(code) });
/// let (a, b) = (layer.layer(status(503)), layer.layer(status(502)));
///
/// clock.block_on(async {
///     assert_eq!(a.clone().oneshot(()).await.unwrap(), 503); // answered, but a failure
///     assert_eq!(b.clone().oneshot(()).await.unwrap(), 502); // second failure: opens
///     assert_eq!(breaker.state(), CircuitState::Open);
///     assert!(matches!(a.oneshot(()).await, Err(Error::CircuitOpen(_))));
/// });
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
pub struct CircuitBreakerLayer<K, C = ErrOnly> {
    breaker: Breaker<K>,
    classify: C,
}

impl<K> CircuitBreakerLayer<K> {
    /// Guards with `breaker` (a handle on the same breaker is kept); every
    /// `Err` counts as a failure.
    pub fn new(breaker: &Breaker<K>) -> Self {
        CircuitBreakerLayer {
            breaker: breaker.clone(),
            classify: ErrOnly,
        }
    }
}

impl<K, C> CircuitBreakerLayer<K, C> {
    /// Classifies responses with `classify` instead: `true` is a failure.
    /// Give the closure's argument type (`&Result<Response, Error<E>>`).
    pub fn failure_if<C2>(self, classify: C2) -> CircuitBreakerLayer<K, C2> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classify,
        }
    }

    /// The breaker.
    pub fn breaker(&self) -> &Breaker<K> {
        &self.breaker
    }
}

impl<K, C: Clone> Clone for CircuitBreakerLayer<K, C> {
    fn clone(&self) -> Self {
        CircuitBreakerLayer {
            breaker: self.breaker.clone(),
            classify: self.classify.clone(),
        }
    }
}

impl<K: fmt::Debug, C> fmt::Debug for CircuitBreakerLayer<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

impl<S, K: Clock, C: Clone> Layer<S> for CircuitBreakerLayer<K, C> {
    type Service = CircuitBreaker<S, K, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker {
            inner,
            breaker: self.breaker.clone(),
            classify: self.classify.clone(),
            state: Admission::Undecided,
        }
    }
}

/// The service of [`CircuitBreakerLayer`].
pub struct CircuitBreaker<S, K: Clock, C = ErrOnly> {
    inner: S,
    breaker: Breaker<K>,
    classify: C,
    state: Admission,
}

/// What the last `poll_ready` found. No permit is held between
/// `poll_ready` and `call`.
enum Admission {
    /// No ready `poll_ready` since the last call.
    Undecided,
    /// The breaker would admit and the inner service is ready.
    Ready,
    /// The breaker refused: the next `call` fails with this, fast.
    Refused(CircuitOpen),
}

impl<S, K: Clock, C> CircuitBreaker<S, K, C> {
    /// The breaker.
    pub fn breaker(&self) -> &Breaker<K> {
        &self.breaker
    }

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

impl<S: Clone, K: Clock, C: Clone> Clone for CircuitBreaker<S, K, C> {
    /// A service on the same breaker, with no admission decided yet.
    fn clone(&self) -> Self {
        CircuitBreaker {
            inner: self.inner.clone(),
            breaker: self.breaker.clone(),
            classify: self.classify.clone(),
            state: Admission::Undecided,
        }
    }
}

impl<S: fmt::Debug, K: Clock + fmt::Debug, C> fmt::Debug for CircuitBreaker<S, K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            Admission::Undecided => "undecided",
            Admission::Ready => "ready",
            Admission::Refused(_) => "refused",
        };
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker)
            .field("admission", &state)
            .finish_non_exhaustive()
    }
}

impl<S, R, K, C> Service<R> for CircuitBreaker<S, K, C>
where
    S: Service<R>,
    S::Error: StackError,
    K: Clock,
    C: Classify<S::Response, <S::Error as StackError>::Inner> + Clone,
{
    type Response = S::Response;
    type Error = Error<<S::Error as StackError>::Inner>;
    type Future = BreakerFuture<S::Future, K, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Would the breaker admit a call now? A permit taken and dropped
        // without an outcome counts nothing and gives a probe slot back, so
        // nothing is held across the return; `call` takes the real permit.
        // Decided on every `poll_ready`: a refusal is not sticky.
        match self.breaker.try_acquire() {
            Ok(peek) => drop(peek),
            Err(open) => {
                // Fail fast: do not wait for (or hold) capacity below.
                self.state = Admission::Refused(open);
                return Poll::Ready(Ok(()));
            }
        }
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                self.state = Admission::Ready;
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                self.state = Admission::Undecided;
                Poll::Pending
            }
            Poll::Ready(Err(e)) => {
                self.state = Admission::Undecided;
                let failed: Result<S::Response, Self::Error> = Err(e.into_error());
                if let Ok(permit) = self.breaker.try_acquire_owned() {
                    permit.record(self.classify.is_failure(&failed));
                }
                Poll::Ready(failed.map(drop))
            }
        }
    }

    fn call(&mut self, request: R) -> Self::Future {
        // The permit is taken here, when the call starts: a request that
        // waited for the inner service (queued at a limit) while the
        // circuit opened is refused now instead of reaching the upstream,
        // and a readied service that is never called (kept in a balancer's
        // ready set) holds no probe slot. (`call` without `poll_ready`
        // breaks tower's contract; it is decided the same way.)
        let permit = match core::mem::replace(&mut self.state, Admission::Undecided) {
            Admission::Refused(open) => return BreakerFuture::refused(open, &self.classify),
            Admission::Ready | Admission::Undecided => match self.breaker.try_acquire_owned() {
                Ok(permit) => permit,
                Err(open) => return BreakerFuture::refused(open, &self.classify),
            },
        };
        BreakerFuture {
            inner: Some(self.inner.call(request)),
            permit: Some(permit),
            refused: None,
            classify: self.classify.clone(),
        }
    }
}

pin_project! {
    /// The response future of [`CircuitBreaker`]: records the outcome in
    /// the breaker when the response is in; dropped before that, it gives
    /// the permit back without one.
    pub struct BreakerFuture<F, K: Clock, C> {
        #[pin]
        inner: Option<F>,
        permit: Option<OwnedBreakerPermit<K>>,
        refused: Option<CircuitOpen>,
        classify: C,
    }
}

impl<F, K: Clock, C: Clone> BreakerFuture<F, K, C> {
    fn refused(open: CircuitOpen, classify: &C) -> Self {
        BreakerFuture {
            inner: None,
            permit: None,
            refused: Some(open),
            classify: classify.clone(),
        }
    }
}

impl<F, T, E, K, C> Future for BreakerFuture<F, K, C>
where
    F: Future<Output = Result<T, E>>,
    E: StackError,
    K: Clock,
    C: Classify<T, E::Inner>,
{
    type Output = Result<T, Error<E::Inner>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(Err(match this.refused.take() {
                Some(open) => open.into(),
                None => CircuitOpen::new(kompoz_core::CircuitState::Open, None).into(),
            }));
        };
        // A panic of the inner future is the call's failure, as in kompoz's
        // combinator: the guard records it while the panic unwinds.
        let polled = {
            let _unwinding = FailOnUnwind::new(this.permit);
            inner.poll(cx)
        };
        let result = core::task::ready!(polled).map_err(StackError::into_error);
        if let Some(permit) = this.permit.take() {
            // A panicking classifier unwinds past the permit: dropped, it
            // gives the slot back without an outcome.
            permit.record(this.classify.is_failure(&result));
        }
        Poll::Ready(result)
    }
}

/// Records the call's failure if it is dropped by a panic that began after
/// it was made: the inner future panicked in `poll`.
struct FailOnUnwind<'a, K: Clock> {
    permit: &'a mut Option<OwnedBreakerPermit<K>>,
    already_panicking: bool,
}

impl<'a, K: Clock> FailOnUnwind<'a, K> {
    fn new(permit: &'a mut Option<OwnedBreakerPermit<K>>) -> Self {
        FailOnUnwind {
            permit,
            already_panicking: std::thread::panicking(),
        }
    }
}

impl<K: Clock> Drop for FailOnUnwind<'_, K> {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.already_panicking {
            if let Some(permit) = self.permit.take() {
                permit.failure();
            }
        }
    }
}

impl<F, K: Clock, C> fmt::Debug for BreakerFuture<F, K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerFuture")
            .field("holds_permit", &self.permit.is_some())
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}
