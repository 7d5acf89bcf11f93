//! The breaker layer: [`BreakerLayer`], added by [`Policy::breaker`], and
//! [`Breaker::call`], the breaker alone.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use super::{Always, Error, Layer, Never, Operation, Policy, Predicate, Stack};
use crate::call::operation::FnOperation;
use crate::circuit_breaker::BreakerPermit;
use crate::{Breaker, Clock};

/// Guards the layers inside it with a [`Breaker`]: an open circuit refuses
/// an attempt at once with [`Error::CircuitOpen`]; an attempt let through
/// is recorded as the breaker's success or failure.
///
/// What counts as a failure: an `Err` the error predicate accepts (by
/// default every [`Error::Inner`]), a timeout from a layer inside, an `Ok`
/// the value predicate accepts (by default none), and an operation that
/// panics. A refusal by a layer inside (a pool, a rate limit, another
/// breaker) never reached the service and counts as nothing, as does a
/// call dropped before it finished; either gives a half-open probe slot
/// back. A predicate that panics counts as nothing too.
///
/// The same [`Breaker`] may guard algebra combinators
/// ([`Breaker::guard`]) and other policies at the same time.
pub struct BreakerLayer<K, FE = Always, FO = Never> {
    breaker: Breaker<K>,
    err_is_failure: FE,
    ok_is_failure: FO,
}

impl<K> BreakerLayer<K> {
    /// A layer guarding with `breaker`, with the default classification.
    pub fn new(breaker: &Breaker<K>) -> Self {
        BreakerLayer {
            breaker: breaker.clone(),
            err_is_failure: Always,
            ok_is_failure: Never,
        }
    }
}

impl<K, FE, FO> BreakerLayer<K, FE, FO> {
    /// The breaker it guards with.
    pub fn breaker(&self) -> &Breaker<K> {
        &self.breaker
    }
}

impl<T, E, K, FE, FO> Layer<T, E> for BreakerLayer<K, FE, FO>
where
    K: Clock,
    FE: Predicate<E>,
    FO: Predicate<T>,
{
    #[inline]
    fn call<O>(&self, op: O) -> impl Future<Output = Result<T, Error<E>>>
    where
        O: Operation<Output = T, Error = E>,
    {
        guarded(&self.breaker, &self.err_is_failure, &self.ok_is_failure, op)
    }
}

/// The breaker's part of a call, shared by the layer and [`Breaker::call`].
async fn guarded<T, E, K, FE, FO, O>(
    breaker: &Breaker<K>,
    err_is_failure: &FE,
    ok_is_failure: &FO,
    mut op: O,
) -> Result<T, Error<E>>
where
    K: Clock,
    FE: Predicate<E>,
    FO: Predicate<T>,
    O: Operation<Output = T, Error = E>,
{
    // Marked while the operation makes its future too: a closure that
    // panics before returning one is the attempt's failure.
    let mut held = Held {
        permit: Some(breaker.try_acquire()?),
        polling: true,
    };
    let fut = op.invoke();
    held.polling = false;
    let out = Watched {
        fut,
        held: &mut held,
    }
    .await;
    // Classified outside the attempt's polls: a predicate that panics
    // drops the permit (nothing counted), it does not count as a
    // failure of the operation.
    let failure = match &out {
        Ok(value) => Some(ok_is_failure.test(value)),
        Err(Error::Inner(error)) => Some(err_is_failure.test(error)),
        Err(Error::TimedOut(_)) => Some(true),
        Err(_) => None,
    };
    if let (Some(permit), Some(failure)) = (held.permit.take(), failure) {
        permit.record(failure);
    }
    out
}

/// The permit of an admitted attempt, and whether the attempt is being
/// polled: dropped while it is, the attempt panicked.
struct Held<'a, K: Clock> {
    permit: Option<BreakerPermit<'a, K>>,
    polling: bool,
}

impl<K: Clock> Drop for Held<'_, K> {
    fn drop(&mut self) {
        // Dropped mid-poll only by a panic's unwinding: the operation
        // failed. Dropped between polls, the call was cancelled: the
        // permit's own drop counts nothing and gives a probe slot back.
        if self.polling {
            if let Some(permit) = self.permit.take() {
                permit.failure();
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// An attempt's future, marking its polls in [`Held`].
    struct Watched<'h, 'a, F, K: Clock> {
        #[pin]
        fut: F,
        held: &'h mut Held<'a, K>,
    }
}

impl<F: Future, K: Clock> Future for Watched<'_, '_, F, K> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        this.held.polling = true;
        let poll = this.fut.poll(cx);
        this.held.polling = false;
        poll
    }
}

impl<K: Clone, FE: Clone, FO: Clone> Clone for BreakerLayer<K, FE, FO> {
    fn clone(&self) -> Self {
        BreakerLayer {
            breaker: self.breaker.clone(),
            err_is_failure: self.err_is_failure.clone(),
            ok_is_failure: self.ok_is_failure.clone(),
        }
    }
}

impl<K: fmt::Debug, FE, FO> fmt::Debug for BreakerLayer<K, FE, FO> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerLayer")
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

impl<K: Clock, S> Policy<K, S> {
    /// Adds a circuit breaker: `breaker` guards the layers added after
    /// this one. An open circuit refuses with [`Error::CircuitOpen`];
    /// which outcomes count as failures: see [`BreakerLayer`], and tune it
    /// with [`failure_if_err`](Policy::failure_if_err) and
    /// [`failure_if_ok`](Policy::failure_if_ok).
    ///
    /// The breaker is shared, not copied: its state, statistics and
    /// listeners are the same for every policy and combinator it guards.
    ///
    /// # Examples
    ///
    /// ```
    /// use kompoz_core::call::Error;
    /// use kompoz_core::{CircuitState, ClockExt, ManualClock};
    ///
    /// #[derive(Debug)]
    /// enum DbError { Unavailable, Conflict }
    ///
    /// let clock = ManualClock::new();
    /// let breaker = clock.shared_breaker().failure_threshold(2).build()?;
    /// let policy = clock
    ///     .policy()
    ///     .breaker(&breaker)
    ///     // A conflict is the caller's problem, not a sign the database is down.
    ///     .failure_if_err(|e: &DbError| matches!(e, DbError::Unavailable));
    ///
    /// for _ in 0..3 {
    ///     let _ = clock.block_on(policy.call(|| async { Err::<(), _>(DbError::Conflict) }));
    /// }
    /// assert_eq!(breaker.state(), CircuitState::Closed);
    ///
    /// for _ in 0..2 {
    ///     let _ = clock.block_on(policy.call(|| async { Err::<(), _>(DbError::Unavailable) }));
    /// }
    /// let refused = clock.block_on(policy.call(|| async { Ok::<_, DbError>(()) }));
    /// assert!(matches!(refused, Err(Error::CircuitOpen(open)) if open.state() == CircuitState::Open));
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    pub fn breaker(self, breaker: &Breaker<K>) -> Policy<K, Stack<S, BreakerLayer<K>>> {
        self.layer(BreakerLayer::new(breaker))
    }
}

/// The settings of the breaker layer just added.
impl<K, S, FE, FO> Policy<K, Stack<S, BreakerLayer<K, FE, FO>>> {
    /// Which of the operation's errors count as the breaker's failures
    /// (by default all): the others count as successes. Timeouts from a
    /// layer inside are failures whatever it says.
    pub fn failure_if_err<P>(self, predicate: P) -> Policy<K, Stack<S, BreakerLayer<K, P, FO>>> {
        self.map_last(|layer| BreakerLayer {
            breaker: layer.breaker,
            err_is_failure: predicate,
            ok_is_failure: layer.ok_is_failure,
        })
    }

    /// Which values count as the breaker's failures (by default none): a
    /// call that returns one still returns it.
    ///
    /// # Examples
    ///
    /// ```
    /// use kompoz_core::{CircuitState, ClockExt, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let breaker = clock.shared_breaker().failure_threshold(1).build()?;
    /// // A 503 page is a sign the service is down, though fetching it worked.
    /// let policy = clock.policy().breaker(&breaker).failure_if_ok(|status: &u16| *status == 503);
    /// let page = clock.block_on(policy.call(|| async { Ok::<u16, ()>(503) }));
    /// assert_eq!(page, Ok(503));
    /// assert_eq!(breaker.state(), CircuitState::Open);
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    pub fn failure_if_ok<P>(self, predicate: P) -> Policy<K, Stack<S, BreakerLayer<K, FE, P>>> {
        self.map_last(|layer| BreakerLayer {
            breaker: layer.breaker,
            err_is_failure: layer.err_is_failure,
            ok_is_failure: predicate,
        })
    }
}

impl<K: Clock> Breaker<K> {
    /// Calls `operation` guarded by this breaker alone: refused with
    /// [`Error::CircuitOpen`] while the circuit is open, otherwise its
    /// `Err` counted as a failure and its `Ok` as a success. For other
    /// classifications, or more layers, use a
    /// [`Policy`](crate::call::Policy).
    ///
    /// # Examples
    ///
    /// ```
    /// use kompoz_core::call::Error;
    /// use kompoz_core::{ClockExt, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let breaker = clock.shared_breaker().failure_threshold(1).build()?;
    /// let failed = clock.block_on(breaker.call(|| async { Err::<u32, _>("down") }));
    /// assert!(matches!(failed, Err(Error::Inner("down"))));
    /// let refused = clock.block_on(breaker.call(|| async { Ok::<u32, &str>(1) }));
    /// assert!(matches!(refused, Err(Error::CircuitOpen(_))));
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    pub async fn call<F, Fut, T, E>(&self, operation: F) -> Result<T, Error<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        guarded(self, &Always, &Never, FnOperation(operation)).await
    }
}
