//! [`LimitLayer`]: at most `n` requests in flight, shared by name across
//! services and routes, with backpressure in `poll_ready`.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;
use std::sync::Arc;

use kompoz_core::call::{Error, PoolFull};
use kompoz_core::limiter::{AcquireOwned, OwnedSemaphorePermit};
use kompoz_core::{ConfigError, Registry, Semaphore};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::StackError;

/// Lets at most `max_concurrent` requests into the services below at once,
/// from a [`Semaphore`] of its own or shared by name (kompoz's
/// `limited_named`): every service (and every clone of it) built from
/// layers naming the same pool shares its permits, across routes.
///
/// # Backpressure
///
/// As tower's `ConcurrencyLimit`: `poll_ready` takes an owned permit,
/// waiting in the pool's FIFO queue (returning `Pending`) while none is
/// free, and only then asks the inner service whether it is ready; `call`
/// moves the permit into the response future, which gives it back when it
/// completes or is dropped. A service readied but never called gives its
/// permit back when it is dropped, and so does a service dropped while it
/// waits. Each clone waits for its own permit.
///
/// With [`reject_when_full`](Self::reject_when_full) (a bulkhead that sheds
/// load, for servers) `poll_ready` never waits: with no free permit it is
/// ready at once, and the `call` that follows fails with
/// [`Error::PoolFull`] without reaching the inner service. Refusing in
/// `call` rather than failing `poll_ready` keeps the service usable: in
/// tower an error from `poll_ready` means the service is broken for good
/// (a `Buffer` or balancer drops it). A later `poll_ready` tries again,
/// so a service readied while the pool was full is not refused forever.
///
/// # Examples
///
/// Two routes drawing on one pool of 8 permits:
///
/// ```
/// use kompoz_core::Registry;
/// use kompoz_tower::LimitLayer;
/// use tower::Layer;
///
/// let registry = Registry::new(); // or `LimitLayer::named` on the process-wide registry
/// let users = LimitLayer::named_in("upstream", 8, &registry)?;
/// let orders = LimitLayer::named_in("upstream", 8, &registry)?.reject_when_full();
/// assert!(std::sync::Arc::ptr_eq(users.pool(), orders.pool()));
///
/// // A name asked for again with another capacity is a configuration error.
/// let err = LimitLayer::named_in("upstream", 4, &registry).unwrap_err();
/// assert_eq!(err.parameter(), "max_concurrent");
/// # let _ = users.layer(tower::service_fn(|_: ()| async { Ok::<_, std::io::Error>(()) }));
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct LimitLayer {
    pool: Arc<Semaphore>,
    reject: bool,
}

impl LimitLayer {
    /// A pool of its own with `max_concurrent` permits; services built by
    /// this layer (and their clones) share it.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `max_concurrent` if it is zero or
    /// above [`Semaphore::MAX_PERMITS`].
    pub fn new(max_concurrent: usize) -> Result<Self, ConfigError> {
        if max_concurrent == 0 || max_concurrent > Semaphore::MAX_PERMITS {
            return Err(ConfigError::invalid(
                "max_concurrent",
                max_concurrent,
                "at least 1 and at most usize::MAX / 2",
            ));
        }
        Ok(Self::with_pool(Arc::new(Semaphore::new(max_concurrent)?)))
    }

    /// The pool named `name` in the process-wide [`Registry::global`],
    /// with `max_concurrent` permits: shared with every limiter of that
    /// name, tower layer or kompoz combinator.
    ///
    /// # Errors
    ///
    /// As [`Registry::pool`]: a zero `max_concurrent`, an empty `name`, or
    /// a name in use with another capacity.
    pub fn named(name: &str, max_concurrent: usize) -> Result<Self, ConfigError> {
        Self::named_in(name, max_concurrent, Registry::global())
    }

    /// As [`named`](Self::named), in `registry`.
    ///
    /// # Errors
    ///
    /// As [`named`](Self::named).
    pub fn named_in(
        name: &str,
        max_concurrent: usize,
        registry: &Registry,
    ) -> Result<Self, ConfigError> {
        Ok(Self::with_pool(registry.pool(name, max_concurrent)?))
    }

    /// The permits of `pool`, shared by hand.
    pub fn with_pool(pool: Arc<Semaphore>) -> Self {
        LimitLayer {
            pool,
            reject: false,
        }
    }

    /// Sheds load instead of waiting: with no free permit, the call fails
    /// with [`Error::PoolFull`] (waited: zero) at once.
    pub fn reject_when_full(mut self) -> Self {
        self.reject = true;
        self
    }

    /// The pool.
    pub fn pool(&self) -> &Arc<Semaphore> {
        &self.pool
    }
}

impl<S> Layer<S> for LimitLayer {
    type Service = Limit<S>;

    fn layer(&self, inner: S) -> Limit<S> {
        Limit {
            inner,
            pool: self.pool.clone(),
            reject: self.reject,
            state: State::Idle,
        }
    }
}

/// The service of [`LimitLayer`].
pub struct Limit<S> {
    inner: S,
    pool: Arc<Semaphore>,
    reject: bool,
    state: State,
}

enum State {
    /// No permit, no decision.
    Idle,
    /// Queued in the pool (wait mode).
    Waiting(AcquireOwned),
    /// Holding the permit the next call will carry.
    Ready(OwnedSemaphorePermit),
    /// Reject mode found the pool full: the next call fails (the next
    /// `poll_ready` tries again).
    Full,
}

impl<S> Limit<S> {
    /// The pool.
    pub fn pool(&self) -> &Arc<Semaphore> {
        &self.pool
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, by value (a permit it held is given back).
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone> Clone for Limit<S> {
    /// A service on the same pool, holding no permit yet.
    fn clone(&self) -> Self {
        Limit {
            inner: self.inner.clone(),
            pool: self.pool.clone(),
            reject: self.reject,
            state: State::Idle,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Limit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Idle => "idle",
            State::Waiting(_) => "waiting",
            State::Ready(_) => "ready",
            State::Full => "full",
        };
        f.debug_struct("Limit")
            .field("inner", &self.inner)
            .field("pool", &self.pool)
            .field("reject_when_full", &self.reject)
            .field("state", &state)
            .finish()
    }
}

impl<S, R> Service<R> for Limit<S>
where
    S: Service<R>,
    S::Error: StackError,
{
    type Response = S::Response;
    type Error = Error<<S::Error as StackError>::Inner>;
    type Future = LimitFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        loop {
            match &mut self.state {
                State::Idle => {
                    self.state = match self.pool.try_acquire_owned() {
                        Some(permit) => State::Ready(permit),
                        None if self.reject => State::Full,
                        None => State::Waiting(self.pool.acquire_owned()),
                    }
                }
                State::Waiting(acquire) => match Pin::new(acquire).poll(cx) {
                    Poll::Ready(permit) => self.state = State::Ready(permit),
                    Poll::Pending => return Poll::Pending,
                },
                State::Ready(_) => {
                    return self.inner.poll_ready(cx).map_err(StackError::into_error);
                }
                // Decided again: a permit may have freed since.
                State::Full => match self.pool.try_acquire_owned() {
                    Some(permit) => self.state = State::Ready(permit),
                    None => return Poll::Ready(Ok(())),
                },
            }
        }
    }

    fn call(&mut self, request: R) -> Self::Future {
        let permit = match core::mem::replace(&mut self.state, State::Idle) {
            State::Ready(permit) => permit,
            // `call` without a ready `poll_ready` breaks tower's contract;
            // refuse rather than panic or run past the limit.
            State::Full | State::Idle | State::Waiting(_) => {
                return LimitFuture::refused(PoolFull::new(Duration::ZERO));
            }
        };
        LimitFuture {
            inner: Some(self.inner.call(request)),
            permit: Some(permit),
            refused: None,
        }
    }
}

pin_project! {
    /// The response future of [`Limit`]: holds the permit until the
    /// response is ready or the future is dropped.
    pub struct LimitFuture<F> {
        #[pin]
        inner: Option<F>,
        permit: Option<OwnedSemaphorePermit>,
        refused: Option<PoolFull>,
    }
}

impl<F> LimitFuture<F> {
    fn refused(full: PoolFull) -> Self {
        LimitFuture {
            inner: None,
            permit: None,
            refused: Some(full),
        }
    }
}

impl<F, T, E> Future for LimitFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: StackError,
{
    type Output = Result<T, Error<E::Inner>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.as_pin_mut() {
            Some(inner) => {
                let result = core::task::ready!(inner.poll(cx));
                // Free the slot as soon as the answer is in.
                drop(this.permit.take());
                Poll::Ready(result.map_err(StackError::into_error))
            }
            None => Poll::Ready(Err(this
                .refused
                .take()
                .unwrap_or(PoolFull::new(Duration::ZERO))
                .into())),
        }
    }
}

impl<F> fmt::Debug for LimitFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitFuture")
            .field("holds_permit", &self.permit.is_some())
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}
