//! [`RetryLayer`]: re-sends a request while a [`RetryPolicy`] says so,
//! waiting on a kompoz [`Clock`] between attempts.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use core::time::Duration;

use kompoz_core::call::Error;
use kompoz_core::{Backoff, Clock, ConfigError};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::StackError;

/// Whether (and when) a request is tried again, given what its last
/// attempt returned.
///
/// `E` is the leaf's error: the policy sees the stack's flat
/// `Result<Response, Error<E>>`, so it can tell an operation's error from a
/// refusal of a layer below (an open breaker, a full pool), which is
/// usually not worth retrying.
///
/// # Examples
///
/// HTTP requests have bodies that cannot be cloned; a policy can re-send
/// the ones without a body and let the others fail:
///
/// ```
/// use std::time::Duration;
/// use axum::{body::Body, http::{Method, Request, Response}};
/// use kompoz_core::call::Error;
/// use kompoz_tower::RetryPolicy;
///
/// #[derive(Clone)]
/// struct RetryGets;
///
/// impl<E> RetryPolicy<Request<Body>, Response<Body>, E> for RetryGets {
///     fn retry(&self, attempt: u32, _: &Request<Body>, result: &Result<Response<Body>, Error<E>>) -> Option<Duration> {
///         let failed = match result {
///             Ok(response) => response.status().is_server_error(),
///             Err(error) => !error.is_refusal(),
///         };
///         (failed && attempt < 3).then_some(Duration::from_millis(50))
///     }
///
///     fn clone_request(&self, request: &Request<Body>) -> Option<Request<Body>> {
///         (request.method() == Method::GET).then(|| {
///             let mut copy = Request::new(Body::empty());
///             *copy.uri_mut() = request.uri().clone();
///             *copy.headers_mut() = request.headers().clone();
///             copy
///         })
///     }
/// }
///
/// let get = Request::get("/items/7").body(Body::empty()).unwrap();
/// let post = Request::post("/items").body(Body::from("{}")).unwrap();
/// let copy = |r| RetryPolicy::<_, Response<Body>, std::io::Error>::clone_request(&RetryGets, r);
/// assert!(copy(&get).is_some());
/// assert!(copy(&post).is_none());
/// ```
pub trait RetryPolicy<Req, Res, E> {
    /// After attempt `attempt` (counted from 1) returned `result`: `Some(delay)`
    /// to try again after `delay`, `None` to return `result`.
    fn retry(
        &self,
        attempt: u32,
        request: &Req,
        result: &Result<Res, Error<E>>,
    ) -> Option<Duration>;

    /// A copy of `request` for a further attempt, taken before each
    /// attempt; `None` if it cannot be re-sent (that attempt is then the
    /// last).
    fn clone_request(&self, request: &Req) -> Option<Req>;
}

/// Which results [`Attempts`] retries: implemented by [`Retryable`] and by
/// every closure `Fn(&Result<T, Error<E>>) -> bool`.
pub trait RetryIf<T, E> {
    /// Whether `result` is worth another attempt.
    fn retry_if(&self, result: &Result<T, Error<E>>) -> bool;
}

/// The default [`RetryIf`]: the operation's own errors and timeouts are
/// retried; refusals of a breaker, a pool or a rate limit below are not
/// (trying again at once would be refused again, and would add load where
/// a layer just shed it); `Ok` is not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retryable;

impl<T, E> RetryIf<T, E> for Retryable {
    #[inline]
    fn retry_if(&self, result: &Result<T, Error<E>>) -> bool {
        matches!(result, Err(Error::Inner(_) | Error::TimedOut(_)))
    }
}

impl<T, E, F> RetryIf<T, E> for F
where
    F: Fn(&Result<T, Error<E>>) -> bool,
{
    #[inline]
    fn retry_if(&self, result: &Result<T, Error<E>>) -> bool {
        self(result)
    }
}

/// The ready-made [`RetryPolicy`]: up to `max_attempts` attempts in all,
/// waiting as a kompoz [`Backoff`] says between them, for requests that are
/// `Clone`; which results are retried is [`Retryable`] unless
/// [`retry_if`](Self::retry_if) says otherwise.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use kompoz_core::{Backoff, Clock, ManualClock};
/// use kompoz_tower::{Attempts, RetryLayer};
/// use tower::{service_fn, Layer, ServiceExt};
///
/// let clock = ManualClock::new();
/// let calls = Arc::new(AtomicU32::new(0));
/// let counted = calls.clone();
/// // Fails twice, then answers.
/// let flaky = service_fn(move |n: u32| {
///     let attempt = counted.fetch_add(1, Ordering::SeqCst);
///     async move { if attempt < 2 { Err(std::io::Error::other("reset")) } else { Ok(n * 2) } }
/// });
/// let policy = Attempts::new(5)?.backoff(Backoff::fixed(Duration::from_millis(100)));
/// let retried = RetryLayer::new(policy, clock.clone()).layer(flaky);
///
/// assert_eq!(clock.block_on(retried.oneshot(21)).unwrap(), 42);
/// assert_eq!(calls.load(Ordering::SeqCst), 3);
/// assert_eq!(clock.now().as_duration(), Duration::from_millis(200)); // two waits
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Attempts<F = Retryable> {
    max_attempts: u32,
    backoff: Backoff,
    retry_if: F,
}

impl Attempts {
    /// Up to `max_attempts` attempts in all (at least 1), no wait between
    /// them until a [`backoff`](Self::backoff) is set.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `max_attempts` if it is zero.
    pub fn new(max_attempts: u32) -> Result<Self, ConfigError> {
        if max_attempts == 0 {
            return Err(ConfigError::invalid(
                "max_attempts",
                max_attempts,
                "at least 1",
            ));
        }
        Ok(Attempts {
            max_attempts,
            backoff: Backoff::NONE,
            retry_if: Retryable,
        })
    }
}

impl<F> Attempts<F> {
    /// Waits between attempts as `backoff` says ([`Backoff::delay`]).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Retries the results for which `retry_if` returns `true` instead.
    /// Give the closure's argument type (`&Result<Response, Error<E>>`).
    pub fn retry_if<F2>(self, retry_if: F2) -> Attempts<F2> {
        Attempts {
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            retry_if,
        }
    }

    /// The most attempts a request gets.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }
}

impl<Req: Clone, Res, E, F: RetryIf<Res, E>> RetryPolicy<Req, Res, E> for Attempts<F> {
    fn retry(&self, attempt: u32, _: &Req, result: &Result<Res, Error<E>>) -> Option<Duration> {
        (attempt < self.max_attempts && self.retry_if.retry_if(result))
            .then(|| self.backoff.delay(attempt))
    }

    fn clone_request(&self, request: &Req) -> Option<Req> {
        Some(request.clone())
    }
}

/// Re-sends a request through the services below while its
/// [`RetryPolicy`] says so, waiting on `clock` between attempts.
///
/// Each further attempt goes through the inner service's `poll_ready`
/// again, so the layers below decide afresh: a limit takes a new permit, a
/// breaker admits (or refuses) each attempt on its own. Put the retry
/// *outside* the breaker: an attempt the breaker refuses comes back as
/// [`Error::CircuitOpen`], which the default policy does not retry.
///
/// As tower's own retry, the service below must be `Clone` (each response
/// future drives a clone for its further attempts). Dropping the response
/// future drops the attempt or the wait in progress.
#[derive(Clone, Debug)]
pub struct RetryLayer<P, K> {
    policy: P,
    clock: K,
}

impl<P, K: Clock> RetryLayer<P, K> {
    /// Retries as `policy` says, waiting on `clock`.
    pub fn new(policy: P, clock: K) -> Self {
        RetryLayer { policy, clock }
    }
}

impl<S, P: Clone, K: Clock> Layer<S> for RetryLayer<P, K> {
    type Service = Retry<S, P, K>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry {
            inner,
            policy: self.policy.clone(),
            clock: self.clock.clone(),
        }
    }
}

/// The service of [`RetryLayer`].
#[derive(Clone, Debug)]
pub struct Retry<S, P, K> {
    inner: S,
    policy: P,
    clock: K,
}

impl<S, P, K> Retry<S, P, K> {
    /// The policy.
    pub fn policy(&self) -> &P {
        &self.policy
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

impl<S, R, P, K> Service<R> for Retry<S, P, K>
where
    S: Service<R> + Clone,
    S::Error: StackError,
    P: RetryPolicy<R, S::Response, <S::Error as StackError>::Inner> + Clone,
    K: Clock,
{
    type Response = S::Response;
    type Error = Error<<S::Error as StackError>::Inner>;
    type Future = RetryFuture<S, R, P, K>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(StackError::into_error)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let next = self.policy.clone_request(&request);
        // The clone drives the further attempts; the service readied by
        // this `poll_ready` takes the first.
        let service = self.inner.clone();
        let attempt = self.inner.call(request);
        RetryFuture {
            state: State::Calling { attempt },
            service,
            next,
            policy: self.policy.clone(),
            clock: self.clock.clone(),
            attempts: 1,
        }
    }
}

pin_project! {
    #[project = StateProj]
    #[project_replace = StateTaken]
    enum State<F, Z, R> {
        // An attempt in flight.
        Calling { #[pin] attempt: F },
        // Between attempts, holding the copy for the next one.
        Waiting { #[pin] sleep: Z, request: R },
        // Waiting for the service below to be ready for the next attempt.
        Readying { request: R },
        // Only while moving from one state to the next.
        Moving,
    }
}

pin_project! {
    /// The response future of [`Retry`].
    pub struct RetryFuture<S, R, P, K>
    where
        S: Service<R>,
        K: Clock,
    {
        #[pin]
        state: State<S::Future, K::Sleep, R>,
        service: S,
        // A copy of the request for the attempt after the current one.
        next: Option<R>,
        policy: P,
        clock: K,
        attempts: u32,
    }
}

impl<S, R, P, K> Future for RetryFuture<S, R, P, K>
where
    S: Service<R>,
    S::Error: StackError,
    P: RetryPolicy<R, S::Response, <S::Error as StackError>::Inner>,
    K: Clock,
{
    type Output = Result<S::Response, Error<<S::Error as StackError>::Inner>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { attempt } => {
                    let result = ready!(attempt.poll(cx)).map_err(StackError::into_error);
                    let Some(request) = this.next.take() else {
                        return Poll::Ready(result);
                    };
                    let Some(delay) = this.policy.retry(*this.attempts, &request, &result) else {
                        return Poll::Ready(result);
                    };
                    drop(result);
                    *this.attempts += 1;
                    if delay.is_zero() {
                        this.state.set(State::Readying { request });
                    } else {
                        let sleep = this.clock.sleep(delay);
                        this.state.set(State::Waiting { sleep, request });
                    }
                }
                StateProj::Waiting { sleep, .. } => {
                    ready!(sleep.poll(cx));
                    if let StateTaken::Waiting { request, .. } =
                        this.state.as_mut().project_replace(State::Moving)
                    {
                        this.state.set(State::Readying { request });
                    }
                }
                StateProj::Readying { .. } => {
                    ready!(this.service.poll_ready(cx)).map_err(StackError::into_error)?;
                    if let StateTaken::Readying { request } =
                        this.state.as_mut().project_replace(State::Moving)
                    {
                        *this.next = this.policy.clone_request(&request);
                        let attempt = this.service.call(request);
                        this.state.set(State::Calling { attempt });
                    }
                }
                // Never observed: every path out of `Moving` sets a state.
                StateProj::Moving => return Poll::Pending,
            }
        }
    }
}

impl<S, R, P, K> fmt::Debug for RetryFuture<S, R, P, K>
where
    S: Service<R>,
    K: Clock,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryFuture")
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}
