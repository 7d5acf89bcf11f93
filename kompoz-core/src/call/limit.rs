//! The concurrency-limit layer: [`LimitLayer`], added by [`Policy::limit`]
//! (a shared pool), [`Policy::limit_to`] (its own) or
//! [`Policy::limit_named`] (a named one); and [`Semaphore::call`].

use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::time::Duration;

use super::{Error, Layer, Operation, Policy, PoolFull, Stack};
use crate::call::operation::FnOperation;
use crate::limiter::check_capacity;
use crate::observe::{Event, Observable, Observer};
use crate::timeout::within;
use crate::{Clock, ConfigError, LimitMode, Registry, Semaphore};

/// Lets at most the pool's capacity of calls into the layers inside it at
/// once. By default the others wait in arrival order;
/// [`reject_when_full`](Policy::reject_when_full) refuses them at once and
/// [`wait_at_most`](Policy::wait_at_most) after a bound, with
/// [`Error::PoolFull`].
///
/// The permit is held from admission until the call through the inner
/// layers ends (all its retries, when the limit is outside the retry), and
/// given back when the call completes, is dropped, or panics.
pub struct LimitLayer<K> {
    pool: Arc<Semaphore>,
    mode: LimitMode,
    clock: K,
    observer: Observer,
}

impl<K> LimitLayer<K> {
    /// A layer taking its permits from `pool`, waiting for them.
    pub fn new(pool: &Arc<Semaphore>, clock: K) -> Self {
        LimitLayer {
            pool: Arc::clone(pool),
            mode: LimitMode::Wait,
            clock,
            observer: Observer::new(),
        }
    }

    /// The pool it takes its permits from.
    pub fn pool(&self) -> &Arc<Semaphore> {
        &self.pool
    }

    /// What a call does when the pool is full.
    pub fn mode(&self) -> LimitMode {
        self.mode
    }
}

impl<T, E, K: Clock> Layer<T, E> for LimitLayer<K> {
    #[inline]
    fn call<O>(&self, op: O) -> impl Future<Output = Result<T, Error<E>>>
    where
        O: Operation<Output = T, Error = E>,
    {
        limited(self, op)
    }
}

#[inline]
async fn limited<T, E, K: Clock, O>(layer: &LimitLayer<K>, mut op: O) -> Result<T, Error<E>>
where
    O: Operation<Output = T, Error = E>,
{
    let (pool, clock, observer) = (&*layer.pool, &layer.clock, &layer.observer);
    // Held across the inner call; dropped on completion, on cancellation
    // and during a panic's unwinding.
    let _permit = match pool.try_acquire() {
        Some(permit) => permit,
        None => {
            let refused = |waited| {
                observer.emit(|| Event::PoolRefused { waited });
                Err(PoolFull::new(waited).into())
            };
            // The clock is read only when someone listens for the wait.
            let since = observer.listening().then(|| clock.now());
            let permit = match layer.mode {
                LimitMode::Reject => return refused(Duration::ZERO),
                LimitMode::Wait => pool.acquire().await,
                LimitMode::WaitAtMost(bound) => match within(pool.acquire(), clock, bound).await {
                    Some(permit) => permit,
                    None => return refused(bound),
                },
            };
            if let Some(since) = since {
                let waited = clock.now().duration_since(since);
                observer.emit(|| Event::PoolWaited { waited });
            }
            permit
        }
    };
    op.invoke().await
}

impl<K: Clone> Clone for LimitLayer<K> {
    fn clone(&self) -> Self {
        LimitLayer {
            pool: Arc::clone(&self.pool),
            mode: self.mode,
            clock: self.clock.clone(),
            observer: self.observer.clone(),
        }
    }
}

impl<K> Observable for LimitLayer<K> {
    fn observer_mut(&mut self) -> &mut Observer {
        &mut self.observer
    }
}

impl<K> fmt::Debug for LimitLayer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitLayer")
            .field("pool", &self.pool)
            .field("mode", &self.mode)
            .field("observer", &self.observer)
            .finish_non_exhaustive()
    }
}

impl<K: Clock, S> Policy<K, S> {
    /// Adds a concurrency limit over `pool`, shared with whatever else
    /// takes permits from it (other policies, [`Limited`](crate::Limited)
    /// combinators built [`with_pool`](crate::Limited::with_pool)). Calls
    /// wait for a permit in arrival order unless
    /// [`reject_when_full`](Policy::reject_when_full) or
    /// [`wait_at_most`](Policy::wait_at_most) says otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kompoz_core::call::Error;
    /// use kompoz_core::{ClockExt, ManualClock, Semaphore};
    ///
    /// let clock = ManualClock::new();
    /// let pool = Arc::new(Semaphore::new(1)?);
    /// let policy = clock.policy().limit(&pool).reject_when_full();
    ///
    /// let held = pool.try_acquire().unwrap(); // the only permit, taken elsewhere
    /// let full = clock.block_on(policy.call(|| async { Ok::<_, ()>(1) }));
    /// assert!(matches!(full, Err(Error::PoolFull(_))));
    /// drop(held);
    /// assert_eq!(clock.block_on(policy.call(|| async { Ok::<_, ()>(1) })).unwrap(), 1);
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    pub fn limit(self, pool: &Arc<Semaphore>) -> Policy<K, Stack<S, LimitLayer<K>>> {
        let layer = LimitLayer::new(pool, self.clock().clone());
        self.layer(layer)
    }

    /// Adds a concurrency limit of `max_concurrent` calls over a pool of
    /// its own (the reference's `limited(c, max_concurrent)`).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `max_concurrent` if it is zero (or
    /// beyond [`Semaphore::MAX_PERMITS`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz_core::call::Error;
    /// use kompoz_core::{Clock, ClockExt, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let policy = clock.policy().limit_to(1)?.wait_at_most(Duration::from_millis(20));
    /// let slow = || {
    ///     let sleep = clock.sleep(Duration::from_millis(50));
    ///     async move { sleep.await; Ok::<_, ()>("done") }
    /// };
    /// // The second call waits 20 ms for the only permit, then gives up.
    /// let (first, second) = clock.block_on(futures::future::join(policy.call(slow), policy.call(slow)));
    /// assert_eq!(first, Ok("done"));
    /// assert!(matches!(second, Err(Error::PoolFull(full)) if full.waited() == Duration::from_millis(20)));
    ///
    /// assert_eq!(clock.policy().limit_to(0).unwrap_err().parameter(), "max_concurrent");
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    pub fn limit_to(
        self,
        max_concurrent: usize,
    ) -> Result<Policy<K, Stack<S, LimitLayer<K>>>, ConfigError> {
        check_capacity("max_concurrent", max_concurrent)?;
        let pool = Arc::new(Semaphore::new(max_concurrent)?);
        Ok(self.limit(&pool))
    }

    /// Adds a concurrency limit over the pool named `name` in the
    /// process-wide [`Registry::global`], shared with every limiter and
    /// policy of that name (the reference's
    /// `limited(c, max_concurrent, name="api_pool")`).
    ///
    /// # Errors
    ///
    /// A zero `max_concurrent`, an empty `name`, or a name in use with
    /// another capacity ([`ConfigError::NameConflict`]).
    #[cfg(feature = "std")]
    pub fn limit_named(
        self,
        max_concurrent: usize,
        name: &str,
    ) -> Result<Policy<K, Stack<S, LimitLayer<K>>>, ConfigError> {
        self.limit_named_in(max_concurrent, name, Registry::global())
    }

    /// As [`limit_named`](Self::limit_named), with the pool taken from
    /// `registry`.
    ///
    /// # Errors
    ///
    /// As [`limit_named`](Self::limit_named).
    pub fn limit_named_in(
        self,
        max_concurrent: usize,
        name: &str,
        registry: &Registry,
    ) -> Result<Policy<K, Stack<S, LimitLayer<K>>>, ConfigError> {
        let pool = registry.pool(name, max_concurrent)?;
        Ok(self.limit(&pool).name(name))
    }
}

/// The settings of the limit layer just added.
impl<K, S> Policy<K, Stack<S, LimitLayer<K>>> {
    /// Refuses a call at once with [`Error::PoolFull`] when no permit is
    /// free.
    pub fn reject_when_full(self) -> Self {
        self.limit_mode(LimitMode::Reject)
    }

    /// Lets a call wait at most `bound` for a permit, then refuses it with
    /// [`Error::PoolFull`] (a zero bound refuses at once).
    pub fn wait_at_most(self, bound: Duration) -> Self {
        self.limit_mode(LimitMode::WaitAtMost(bound))
    }

    /// What a call does when the pool is full (see [`LimitMode`]).
    pub fn limit_mode(mut self, mode: LimitMode) -> Self {
        self.last_mut().mode = mode.normalized();
        self
    }
}

impl Semaphore {
    /// Calls `operation` holding one of this pool's permits, waiting for
    /// it in arrival order; the permit is given back when the call ends,
    /// is dropped, or panics. The result is the operation's, its error in
    /// [`Error::Inner`]. For bounded waits or more layers, use a
    /// [`Policy`].
    ///
    /// # Examples
    ///
    /// ```
    /// use kompoz_core::Semaphore;
    ///
    /// let pool = Semaphore::new(2)?;
    /// let out = futures::executor::block_on(pool.call(|| async { Ok::<_, ()>(pool.in_use()) }));
    /// assert_eq!(out.unwrap(), 1);
    /// assert_eq!(pool.in_use(), 0);
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    pub async fn call<F, Fut, T, E>(&self, operation: F) -> Result<T, Error<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut op = FnOperation(operation);
        let _permit = self.acquire().await;
        op.invoke().await
    }
}
