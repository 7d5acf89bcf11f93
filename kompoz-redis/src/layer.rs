//! The shared objects as layers of kompoz's call API
//! ([`kompoz_core::call::Policy`]): [`SharedRateLimitLayer`],
//! [`SharedBreakerLayer`], [`SharedLimitLayer`], and [`SharedPolicyExt`],
//! which adds them to a policy as `.rate_limit(&l)`, `.breaker(&b)` and
//! `.limit(&p)` add the local ones.

use std::fmt;
use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use kompoz_core::call::{
    Always, CircuitOpen, Error, Layer, Never, Operation, Policy, Predicate, Stack,
};

use crate::{SharedBreaker, SharedBreakerPermit, SharedPool, SharedRateLimiter};

/// Admits each attempt of the layers inside it through a
/// [`SharedRateLimiter`], by the limiter's [`LimitMode`](kompoz_core::LimitMode)
/// (as [`SharedRateLimiter::acquire`]); a refusal is
/// [`Error::RateLimited`] and the operation does not start. Added by
/// [`SharedPolicyExt::shared_rate_limit`] or
/// `policy.layer(limiter.layer())`.
///
/// A call dropped while it waits for its slot gives the slot back, as the
/// limiter's own `acquire` does.
#[derive(Clone, Debug)]
pub struct SharedRateLimitLayer {
    limiter: SharedRateLimiter,
}

impl SharedRateLimitLayer {
    /// A layer admitting through `limiter` (a handle to the same shared
    /// budget, not a copy).
    pub fn new(limiter: &SharedRateLimiter) -> Self {
        SharedRateLimitLayer {
            limiter: limiter.clone(),
        }
    }

    /// The limiter it admits through.
    pub fn limiter(&self) -> &SharedRateLimiter {
        &self.limiter
    }
}

impl<T, E> Layer<T, E> for SharedRateLimitLayer {
    async fn call<O>(&self, mut op: O) -> Result<T, Error<E>>
    where
        O: Operation<Output = T, Error = E>,
    {
        self.limiter.acquire().await?;
        op.invoke().await
    }
}

/// Runs each attempt of the layers inside it holding a lease of a
/// [`SharedPool`], taken by the pool's mode (as [`SharedPool::acquire`]);
/// a refusal is [`Error::PoolFull`] and the operation does not start. The
/// lease is given back when the attempt ends, or is dropped. Added by
/// [`SharedPolicyExt::shared_limit`] or `policy.layer(pool.layer())`.
#[derive(Clone, Debug)]
pub struct SharedLimitLayer {
    pool: SharedPool,
}

impl SharedLimitLayer {
    /// A layer taking its leases from `pool` (a handle to the same fleet
    /// pool, not a copy).
    pub fn new(pool: &SharedPool) -> Self {
        SharedLimitLayer { pool: pool.clone() }
    }

    /// The pool it takes leases from.
    pub fn pool(&self) -> &SharedPool {
        &self.pool
    }
}

impl<T, E> Layer<T, E> for SharedLimitLayer {
    async fn call<O>(&self, mut op: O) -> Result<T, Error<E>>
    where
        O: Operation<Output = T, Error = E>,
    {
        let _lease = self.pool.acquire().await?;
        op.invoke().await
    }
}

/// Guards the layers inside it with a [`SharedBreaker`]: while the fleet's
/// circuit is open an attempt is refused at once with
/// [`Error::CircuitOpen`]; an attempt let through is reported as the
/// breaker's success or failure. Added by
/// [`SharedPolicyExt::shared_breaker`] or `policy.layer(breaker.layer())`;
/// tune the classification on the layer before adding it
/// (`breaker.layer().failure_if_err(..)`).
///
/// It classifies as the local
/// [`BreakerLayer`](kompoz_core::call::BreakerLayer) does. A failure is an
/// `Err` the error predicate accepts (by default every [`Error::Inner`]),
/// a timeout from a layer inside, an `Ok` the value predicate accepts (by
/// default none), or an operation that panics. A refusal by a layer inside
/// (a pool, a rate limit, another breaker) never reached the service and
/// counts as nothing, as does a call dropped before it finished; either
/// gives a half-open probe slot back. A predicate that panics counts as
/// nothing too.
///
/// A failure or a probe's outcome waits for its round trip
/// ([`SharedBreakerPermit::finish`]), so the replica's view shows a trip
/// it caused before the call returns; a CLOSED success makes none.
pub struct SharedBreakerLayer<FE = Always, FO = Never> {
    breaker: SharedBreaker,
    err_is_failure: FE,
    ok_is_failure: FO,
}

impl SharedBreakerLayer {
    /// A layer guarding with `breaker`, with the default classification.
    pub fn new(breaker: &SharedBreaker) -> Self {
        SharedBreakerLayer {
            breaker: breaker.clone(),
            err_is_failure: Always,
            ok_is_failure: Never,
        }
    }
}

impl<FE, FO> SharedBreakerLayer<FE, FO> {
    /// The breaker it guards with.
    pub fn breaker(&self) -> &SharedBreaker {
        &self.breaker
    }

    /// Which of the operation's errors count as the breaker's failures
    /// (by default all): the others count as successes. Timeouts from a
    /// layer inside are failures whatever it says.
    pub fn failure_if_err<P>(self, predicate: P) -> SharedBreakerLayer<P, FO> {
        SharedBreakerLayer {
            breaker: self.breaker,
            err_is_failure: predicate,
            ok_is_failure: self.ok_is_failure,
        }
    }

    /// Which values count as the breaker's failures (by default none): a
    /// call that returns one still returns it.
    pub fn failure_if_ok<P>(self, predicate: P) -> SharedBreakerLayer<FE, P> {
        SharedBreakerLayer {
            breaker: self.breaker,
            err_is_failure: self.err_is_failure,
            ok_is_failure: predicate,
        }
    }
}

impl<T, E, FE, FO> Layer<T, E> for SharedBreakerLayer<FE, FO>
where
    FE: Predicate<E>,
    FO: Predicate<T>,
{
    async fn call<O>(&self, mut op: O) -> Result<T, Error<E>>
    where
        O: Operation<Output = T, Error = E>,
    {
        let (out, permit) = Held::admit(&self.breaker).await?.run(op.invoke()).await;
        // Classified outside the attempt's polls: a predicate that panics
        // drops the permit (nothing counted), it does not count as a
        // failure of the operation.
        let failure = match &out {
            Ok(value) => Some(self.ok_is_failure.test(value)),
            Err(Error::Inner(error)) => Some(self.err_is_failure.test(error)),
            Err(Error::TimedOut(_)) => Some(true),
            Err(_) => None,
        };
        if let (Some(permit), Some(failure)) = (permit, failure) {
            permit.finish(failure).await;
        }
        out
    }
}

impl<FE: Clone, FO: Clone> Clone for SharedBreakerLayer<FE, FO> {
    fn clone(&self) -> Self {
        SharedBreakerLayer {
            breaker: self.breaker.clone(),
            err_is_failure: self.err_is_failure.clone(),
            ok_is_failure: self.ok_is_failure.clone(),
        }
    }
}

impl<FE, FO> fmt::Debug for SharedBreakerLayer<FE, FO> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBreakerLayer")
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

/// An attempt admitted by a [`SharedBreaker`]: its permit, and whether
/// the attempt is being polled. Dropped while it is, the attempt panicked
/// and a failure is reported; dropped between polls, the call was
/// cancelled (the permit's own drop: nothing counted, a probe slot given
/// back). Shared by the layer and the algebra's
/// [`SharedCircuitBreaker`](crate::SharedCircuitBreaker).
pub(crate) struct Held {
    permit: Option<SharedBreakerPermit>,
    polling: bool,
}

impl Held {
    /// Asks `breaker` to admit an attempt.
    pub(crate) async fn admit(breaker: &SharedBreaker) -> Result<Held, CircuitOpen> {
        Ok(Held {
            permit: Some(breaker.acquire().await?),
            polling: false,
        })
    }

    /// Runs the admitted `attempt`; returns its output and the permit to
    /// report it on.
    pub(crate) async fn run<F: Future>(
        mut self,
        attempt: F,
    ) -> (F::Output, Option<SharedBreakerPermit>) {
        let out = Watched {
            fut: pin!(attempt),
            polling: &mut self.polling,
        }
        .await;
        (out, self.permit.take())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // Dropped mid-poll only by a panic's unwinding: the operation
        // failed.
        if self.polling {
            if let Some(permit) = self.permit.take() {
                permit.failure();
            }
        }
    }
}

/// An attempt's future, marking its polls for [`Held`].
struct Watched<'a, F> {
    fut: Pin<&'a mut F>,
    polling: &'a mut bool,
}

impl<F: Future> Future for Watched<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        *this.polling = true;
        let poll = this.fut.as_mut().poll(cx);
        *this.polling = false;
        poll
    }
}

/// Adds the shared layers to a [`Policy`], beside the local
/// `.rate_limit(&l)`, `.breaker(&b)` and `.limit(&p)`: a call meets them
/// in the order they are written, like every layer.
///
/// ```
/// use std::time::Duration;
/// use kompoz_core::RateLimit;
/// use kompoz_core::call::Error;
/// use kompoz_redis::{Redis, SharedBreaker, SharedPolicyExt, SharedRateLimiter};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = kompoz_redis::test_server::RedisServer::start()?;
/// let redis = Redis::connect(&server.url()).await?;
/// let rate = SharedRateLimiter::builder(&redis, "api:rate", RateLimit::per_second(100)?)
///     .reject_when_full()
///     .build()
///     .await?;
/// let breaker = SharedBreaker::builder(&redis, "api:breaker").build().await?;
///
/// let policy = kompoz_tokio::policy()
///     .shared_rate_limit(&rate)
///     .retry(3)?
///     .shared_breaker(&breaker)
///     .timeout(Duration::from_secs(2))?;
/// let body: Result<&str, Error<std::io::Error>> = policy.call(|| async { Ok("body") }).await;
/// assert_eq!(body?, "body");
/// # Ok(())
/// # }
/// ```
pub trait SharedPolicyExt<K, S>: Sized {
    /// Adds `limiter`'s fleet-wide rate limit ([`SharedRateLimitLayer`]).
    fn shared_rate_limit(
        self,
        limiter: &SharedRateLimiter,
    ) -> Policy<K, Stack<S, SharedRateLimitLayer>>;

    /// Adds `breaker`, the fleet's circuit breaker, with the default
    /// classification ([`SharedBreakerLayer`]); for another, add
    /// `breaker.layer().failure_if_err(..)` with
    /// [`layer`](Policy::layer).
    fn shared_breaker(self, breaker: &SharedBreaker) -> Policy<K, Stack<S, SharedBreakerLayer>>;

    /// Adds `pool`'s fleet-wide concurrency limit ([`SharedLimitLayer`]).
    fn shared_limit(self, pool: &SharedPool) -> Policy<K, Stack<S, SharedLimitLayer>>;
}

impl<K, S> SharedPolicyExt<K, S> for Policy<K, S> {
    fn shared_rate_limit(
        self,
        limiter: &SharedRateLimiter,
    ) -> Policy<K, Stack<S, SharedRateLimitLayer>> {
        self.layer(limiter.layer())
    }

    fn shared_breaker(self, breaker: &SharedBreaker) -> Policy<K, Stack<S, SharedBreakerLayer>> {
        self.layer(breaker.layer())
    }

    fn shared_limit(self, pool: &SharedPool) -> Policy<K, Stack<S, SharedLimitLayer>> {
        self.layer(pool.layer())
    }
}
