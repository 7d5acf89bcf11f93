//! [`RateLimitLayer`]: a shared (optionally named) rate budget, decided in
//! `poll_ready`.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use kompoz_core::call::{Error, RateLimitExceeded};
use kompoz_core::rate_limit::OwnedRateReservation;
use kompoz_core::{Clock, RateLimiter};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::StackError;

/// Lets requests through at most at a [`RateLimiter`]'s rate; a request
/// over it fails with [`Error::RateLimited`], whose
/// [`retry_at`](Error::retry_at) is the earliest instant a request would be
/// admitted (an HTTP server turns it into `429` and `Retry-After`).
///
/// The limiter is a shared handle: the services built by this layer, their
/// clones, other layers and kompoz combinators given the same limiter — or
/// the same name, through [`RateLimiter::named`] — spend one budget.
///
/// # `poll_ready` and `call`
///
/// `poll_ready` asks the limiter first, before the inner service is asked
/// whether it is ready, and decides again each time it is called (a
/// refusal is not sticky).
///
/// - By default (reject mode): a slot free now? Then `poll_ready` waits for
///   the inner service's readiness and `call` takes the slot — if it is
///   still free then; otherwise that `call` is refused. Nothing is held in
///   between, so a readied service that is never called (kept in a
///   balancer's ready set) holds no slot.
/// - Over the rate: `poll_ready` is ready at once without touching the
///   inner service, and the `call` that follows fails with
///   [`Error::RateLimited`] (refused in `call`, not as an error of
///   `poll_ready`, which tower reads as a broken service).
/// - With [`wait_at_most(bound)`](Self::wait_at_most): a request whose slot
///   starts within `bound` reserves it and waits for it in `poll_ready`
///   (`Pending`: backpressure, as tower's own rate limit; the reservation
///   is its place in the queue), then goes on, and `call` spends it. One
///   whose slot is further off is refused as above. A service readied but
///   dropped before `call` gives its slot back (when no later slot was
///   reserved since); one readied and kept idle holds that one slot.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use kompoz_core::{call::Error, ClockExt, ManualClock, RateLimit};
/// use kompoz_tower::RateLimitLayer;
/// use tower::{service_fn, Layer, ServiceExt};
///
/// let clock = ManualClock::new();
/// let limiter = clock.rate_limiter(RateLimit::per_second(2)?);
/// let api = RateLimitLayer::new(&limiter)
///     .layer(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) }));
///
/// clock.block_on(async {
///     assert!(api.clone().oneshot(1).await.is_ok());
///     let refused = api.clone().oneshot(2).await.unwrap_err();
///     assert!(matches!(refused, Error::RateLimited(_)));
///     assert_eq!(refused.retry_at().unwrap().as_duration(), Duration::from_millis(500));
/// });
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
pub struct RateLimitLayer<K> {
    limiter: RateLimiter<K>,
    max_wait: Duration,
}

impl<K: Clock> RateLimitLayer<K> {
    /// Spends `limiter`'s budget (a handle on it is kept); requests over the
    /// rate are refused at once.
    pub fn new(limiter: &RateLimiter<K>) -> Self {
        RateLimitLayer {
            limiter: limiter.clone(),
            max_wait: Duration::ZERO,
        }
    }

    /// A request whose slot starts within `bound` waits for it in
    /// `poll_ready` instead of being refused. Zero (the default) refuses
    /// at once.
    pub fn wait_at_most(mut self, bound: Duration) -> Self {
        self.max_wait = bound;
        self
    }

    /// The limiter.
    pub fn limiter(&self) -> &RateLimiter<K> {
        &self.limiter
    }
}

impl<K: Clone> Clone for RateLimitLayer<K> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            limiter: self.limiter.clone(),
            max_wait: self.max_wait,
        }
    }
}

impl<K> fmt::Debug for RateLimitLayer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.limiter)
            .field("max_wait", &self.max_wait)
            .finish()
    }
}

impl<S, K: Clock> Layer<S> for RateLimitLayer<K> {
    type Service = RateLimit<S, K>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            limiter: self.limiter.clone(),
            max_wait: self.max_wait,
            state: Slot::Undecided,
        }
    }
}

/// The service of [`RateLimitLayer`].
pub struct RateLimit<S, K: Clock> {
    inner: S,
    limiter: RateLimiter<K>,
    max_wait: Duration,
    state: Slot<K>,
}

enum Slot<K: Clock> {
    Undecided,
    /// Reserved for later: sleeping until it starts.
    Waiting(OwnedRateReservation<K>, Pin<Box<K::Sleep>>),
    /// Reserved and due: the next call spends it (wait mode).
    Due(OwnedRateReservation<K>),
    /// A slot was free and the inner service is ready: the next call
    /// takes a slot if one is still free (reject mode).
    Ready,
    Refused(RateLimitExceeded),
}

impl<S, K: Clock> RateLimit<S, K> {
    /// The limiter.
    pub fn limiter(&self) -> &RateLimiter<K> {
        &self.limiter
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, by value (a slot it reserved is given back).
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, K: Clock> Clone for RateLimit<S, K> {
    /// A service on the same budget, with no slot reserved yet.
    fn clone(&self) -> Self {
        RateLimit {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
            max_wait: self.max_wait,
            state: Slot::Undecided,
        }
    }
}

impl<S: fmt::Debug, K: Clock> fmt::Debug for RateLimit<S, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            Slot::Undecided => "undecided",
            Slot::Waiting(..) => "waiting",
            Slot::Due(_) => "due",
            Slot::Ready => "ready",
            Slot::Refused(_) => "refused",
        };
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("limiter", &self.limiter)
            .field("max_wait", &self.max_wait)
            .field("slot", &state)
            .finish()
    }
}

impl<S, R, K> Service<R> for RateLimit<S, K>
where
    S: Service<R>,
    S::Error: StackError,
    K: Clock,
{
    type Response = S::Response;
    type Error = Error<<S::Error as StackError>::Inner>;
    type Future = RateLimitFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        loop {
            match &mut self.state {
                // Decided on every `poll_ready`: a refusal is not sticky.
                Slot::Undecided | Slot::Ready | Slot::Refused(_) if self.max_wait.is_zero() => {
                    // Reject mode: would a slot be free now? The reservation
                    // is dropped at once (given back), so a readied service
                    // that is never called holds no slot; `call` takes it.
                    match self.limiter.reserve_owned(Duration::ZERO) {
                        Err(exceeded) => {
                            self.state = Slot::Refused(exceeded);
                            return Poll::Ready(Ok(()));
                        }
                        Ok(peek) => drop(peek),
                    }
                    self.state = Slot::Undecided;
                    core::task::ready!(self.inner.poll_ready(cx))
                        .map_err(StackError::into_error)?;
                    self.state = Slot::Ready;
                    return Poll::Ready(Ok(()));
                }
                Slot::Undecided | Slot::Ready | Slot::Refused(_) => {
                    // Wait mode: the reservation is the request's place in
                    // the queue, held while it sleeps and until `call`.
                    self.state = match self.limiter.reserve_owned(self.max_wait) {
                        Err(exceeded) => {
                            self.state = Slot::Refused(exceeded);
                            return Poll::Ready(Ok(()));
                        }
                        Ok(slot) => {
                            let clock = self.limiter.clock();
                            let wait = slot.ready_at().duration_since(clock.now());
                            if wait.is_zero() {
                                Slot::Due(slot)
                            } else {
                                Slot::Waiting(slot, Box::pin(clock.sleep(wait)))
                            }
                        }
                    }
                }
                Slot::Waiting(_, sleep) => {
                    core::task::ready!(sleep.as_mut().poll(cx));
                    if let Slot::Waiting(slot, _) =
                        core::mem::replace(&mut self.state, Slot::Undecided)
                    {
                        self.state = Slot::Due(slot);
                    }
                }
                Slot::Due(_) => return self.inner.poll_ready(cx).map_err(StackError::into_error),
            }
        }
    }

    fn call(&mut self, request: R) -> Self::Future {
        match core::mem::replace(&mut self.state, Slot::Undecided) {
            Slot::Due(slot) => {
                slot.commit();
                RateLimitFuture {
                    inner: Some(self.inner.call(request)),
                    refused: None,
                }
            }
            Slot::Refused(exceeded) => RateLimitFuture::refused(exceeded),
            // Reject mode takes its slot now, if one is still free. (And
            // `call` without a ready `poll_ready`, which breaks tower's
            // contract: admit only a slot that is due now.)
            Slot::Ready | Slot::Undecided | Slot::Waiting(..) => match self.limiter.check() {
                Ok(()) => RateLimitFuture {
                    inner: Some(self.inner.call(request)),
                    refused: None,
                },
                Err(exceeded) => RateLimitFuture::refused(exceeded),
            },
        }
    }
}

pin_project! {
    /// The response future of [`RateLimit`].
    pub struct RateLimitFuture<F> {
        #[pin]
        inner: Option<F>,
        refused: Option<RateLimitExceeded>,
    }
}

impl<F> RateLimitFuture<F> {
    fn refused(exceeded: RateLimitExceeded) -> Self {
        RateLimitFuture {
            inner: None,
            refused: Some(exceeded),
        }
    }
}

impl<F, T, E> Future for RateLimitFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: StackError,
{
    type Output = Result<T, Error<E::Inner>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.as_pin_mut() {
            Some(inner) => inner.poll(cx).map_err(StackError::into_error),
            None => match this.refused.take() {
                Some(exceeded) => Poll::Ready(Err(exceeded.into())),
                // Polled again after its answer: stay pending, as a spent future may.
                None => Poll::Pending,
            },
        }
    }
}

impl<F> fmt::Debug for RateLimitFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitFuture")
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}
