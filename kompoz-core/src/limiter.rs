//! Concurrency limits: [`Limited`] over a fair [`Semaphore`], with pools
//! shared by name through a [`Registry`].

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use core::fmt;
use core::time::Duration;

use crate::timeout::within;
use crate::{Clock, Combinator, ConfigError, Registry};

mod mode;
mod semaphore;
mod waiters;

pub(crate) use mode::{Admission, admission_methods};
pub use mode::{LimitMode, LimitOutcome};

pub(crate) use semaphore::check_capacity;
pub use semaphore::{Acquire, AcquireOwned, OwnedSemaphorePermit, Semaphore, SemaphorePermit};

/// A combinator that lets at most `max_concurrent` calls into its inner
/// combinator at once (kompoz's `limited`); the others wait their turn in
/// arrival order.
///
/// The permits come from a [`Semaphore`], private to this limiter or shared
/// by name with other limiters through a [`Registry`] (kompoz's
/// `name="api_pool"`). A permit comes back when the call completes, when its
/// future is dropped (while waiting or while running), and when the inner
/// combinator panics.
///
/// By default a call waits for a permit as long as it takes; see
/// [`reject_when_full`](Self::reject_when_full) and
/// [`wait_at_most`](Self::wait_at_most) for the bulkhead modes.
///
/// # Examples
///
/// The reference's "Concurrency Limiting" example (with a runtime crate the
/// limiter is `limited(api_check, 5)?`):
///
/// ```
/// use core::time::Duration;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use kompoz_core::{ClockExt, rule, Clock, Combinator, ManualClock};
///
/// # // A `block_on` that moves the `ManualClock` whenever the future waits.
/// # fn block_on<F: std::future::Future>(clock: &ManualClock, fut: F) -> F::Output {
/// #     let mut fut = std::pin::pin!(fut);
/// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
/// #     loop {
/// #         if let std::task::Poll::Ready(out) = fut.as_mut().poll(&mut cx) { return out; }
/// #         clock.advance_to_next_deadline().expect("stalled");
/// #     }
/// # }
/// let clock = ManualClock::new();
/// let (inside, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
/// let api_check = rule(async |ctx: &u32| {
///     peak.fetch_max(inside.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
///     clock.sleep(Duration::from_millis(100)).await; // the API call
///     inside.fetch_sub(1, Ordering::SeqCst);
///     *ctx > 0
/// });
///
/// // Max 5 concurrent API calls
/// let limited_api = clock.limited(api_check, 5)?;
///
/// // Run many tasks, but only 5 at a time
/// let many_contexts = 1..=20;
/// let results = block_on(
///     &clock,
///     futures::future::join_all(many_contexts.map(|ctx| limited_api.run(ctx))),
/// );
/// assert!(results.iter().all(|(ok, _)| *ok));
/// assert_eq!(peak.load(Ordering::SeqCst), 5);
/// assert_eq!(clock.now().as_duration(), Duration::from_millis(400)); // 4 rounds of 5
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
pub struct Limited<A, K> {
    inner: A,
    pool: Arc<Semaphore>,
    name: Option<String>,
    admission: Admission,
    clock: K,
}

impl<A, K: Clock> Limited<A, K> {
    /// Limits `inner` to `max_concurrent` calls at once, with a pool of its
    /// own. `clock` times [`wait_at_most`](Self::wait_at_most).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `max_concurrent` if it is zero.
    pub fn new(inner: A, max_concurrent: usize, clock: K) -> Result<Self, ConfigError> {
        check_capacity("max_concurrent", max_concurrent)?;
        Ok(Self::from_pool(
            inner,
            Arc::new(Semaphore::with_valid_capacity(max_concurrent)),
            None,
            clock,
        ))
    }

    /// Limits `inner` with the pool named `name` in `registry`, which has
    /// `max_concurrent` permits (created if the name is not in use).
    /// Limiters built with the same name share the pool.
    ///
    /// # Errors
    ///
    /// As [`Registry::pool`]: a zero `max_concurrent`, an empty `name`, or a
    /// name in use with another capacity.
    ///
    /// # Examples
    ///
    /// The reference's "Shared Semaphores" example (with a runtime crate this
    /// is `limited_named(api_check_a, 10, "api_pool")?`, on the process-wide
    /// registry):
    ///
    /// ```
    /// use kompoz_core::{ClockExt, rule, Combinator, ManualClock, Registry};
    ///
    /// # let clock = ManualClock::new();
    /// # let registry = Registry::new();
    /// # let api_check_a = rule(async |_: &u32| true);
    /// # let api_check_b = rule(async |_: &u32| true);
    /// // Shared limit across multiple combinators
    /// let check_a = clock.limited_named_in(api_check_a, 10, "api_pool", &registry)?;
    /// let check_b = clock.limited_named_in(api_check_b, 10, "api_pool", &registry)?;
    /// // check_a and check_b share the same 10-slot semaphore
    /// assert!(std::sync::Arc::ptr_eq(check_a.pool(), check_b.pool()));
    ///
    /// futures::executor::block_on(async {
    ///     let permit = check_a.pool().acquire().await;
    ///     assert_eq!(check_b.available(), 9);
    ///     drop(permit);
    ///     assert!(check_b.run(1).await.0);
    /// });
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    pub fn named(
        inner: A,
        max_concurrent: usize,
        name: &str,
        registry: &Registry,
        clock: K,
    ) -> Result<Self, ConfigError> {
        let pool = registry.pool(name, max_concurrent)?;
        Ok(Self::from_pool(inner, pool, Some(name.into()), clock))
    }

    /// Limits `inner` with a pool you share by hand (e.g. a [`Semaphore`]
    /// also used outside any combinator).
    pub fn with_pool(inner: A, pool: Arc<Semaphore>, clock: K) -> Self {
        Self::from_pool(inner, pool, None, clock)
    }

    fn from_pool(inner: A, pool: Arc<Semaphore>, name: Option<String>, clock: K) -> Self {
        Limited {
            inner,
            pool,
            name,
            admission: Admission::default(),
            clock,
        }
    }
}

impl<A, K> Limited<A, K> {
    crate::limiter::admission_methods! {
        /// Bulkhead mode: when the pool is full, reject a call at once with
        /// `(false, ctx)` instead of queueing it. The inner combinator does not
        /// run; [`rejected`](Self::rejected) counts it.
        ///
        /// A call is also rejected while others are queued (from limiters in
        /// [`LimitMode::Wait`] sharing the pool): it never overtakes them.
        ///
        /// # Examples
        ///
        /// ```
        /// use kompoz_core::{ClockExt, rule, Combinator, ManualClock, limiter::LimitOutcome};
        ///
        /// let limiter = ManualClock::new().limited(rule(async |_: &u32| true), 1)?
        ///     .reject_when_full();
        /// futures::executor::block_on(async {
        ///     let busy = limiter.pool().acquire().await; // someone holds the only slot
        ///     assert_eq!(limiter.run_with_outcome(7).await, (LimitOutcome::Rejected, 7));
        ///     drop(busy);
        ///     assert_eq!(limiter.run(7).await, (true, 7));
        /// });
        /// assert_eq!(limiter.rejected(), 1);
        /// # Ok::<(), kompoz_core::ConfigError>(())
        /// ```
        reject_when_full;
        /// Bulkhead mode: wait at most `bound` for a permit, then reject the call
        /// with `(false, ctx)` without running the inner combinator. A rejected
        /// waiter leaves the queue; [`rejected`](Self::rejected) counts it.
        ///
        /// A zero `bound` waits not at all: it is
        /// [`reject_when_full`](Self::reject_when_full).
        wait_at_most;
        /// Sets the bulkhead mode (see [`LimitMode`]);
        /// `LimitMode::WaitAtMost(Duration::ZERO)` is [`LimitMode::Reject`].
        with_mode;
        /// The bulkhead mode.
        mode;
        /// How many calls through *this* limiter were rejected so far.
        rejected;
    }

    /// The pool's capacity: at most this many calls are inside at once
    /// (across all limiters sharing the pool).
    pub fn max_concurrent(&self) -> usize {
        self.pool.capacity()
    }

    /// Calls holding a permit of the pool right now, across all limiters
    /// sharing it (a snapshot).
    pub fn in_flight(&self) -> usize {
        self.pool.in_use()
    }

    /// Calls queued for a permit of the pool right now, across all limiters
    /// sharing it (a snapshot).
    pub fn waiting(&self) -> usize {
        self.pool.waiting()
    }

    /// Free permits of the pool right now (a snapshot).
    pub fn available(&self) -> usize {
        self.pool.available()
    }

    /// The pool's name, if it came from a [`Registry`].
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The pool this limiter draws permits from.
    pub fn pool(&self) -> &Arc<Semaphore> {
        &self.pool
    }

    crate::combinator::inner_access!(A, "wrapped");
}

impl<A, K: Clock> Limited<A, K> {
    /// Runs one call and says whether it ran (with which verdict) or was
    /// rejected. Safe to call from many tasks at once.
    pub async fn run_with_outcome<C>(&self, ctx: C) -> (LimitOutcome, C)
    where
        A: Combinator<C>,
    {
        // Uncontended: one CAS, no waiting machinery. An unbounded wait
        // awaits the semaphore's `Acquire` in place (two words, no
        // allocation: a contended pool hands permits over at the rate of
        // its callers). A bounded wait carries the clock's timer, which can
        // be large, so it is boxed to keep every call's future small; only
        // a call that must wait with a bound pays for that allocation.
        let permit = match self.pool.try_acquire() {
            Some(permit) => Some(permit),
            None => match self.admission.mode() {
                LimitMode::Reject => None,
                LimitMode::Wait => Some(self.pool.acquire().await),
                LimitMode::WaitAtMost(bound) => Box::pin(self.acquire_within(bound)).await,
            },
        };
        let Some(permit) = permit else {
            self.admission.reject();
            return (LimitOutcome::Rejected, ctx);
        };
        // Held across the inner call; dropped on completion, on
        // cancellation and during a panic's unwinding.
        let (ok, ctx) = self.inner.run(ctx).await;
        drop(permit);
        (LimitOutcome::Ran(ok), ctx)
    }

    /// A permit if one comes within `bound`; `None` rejects.
    async fn acquire_within(&self, bound: Duration) -> Option<SemaphorePermit<'_>> {
        within(self.pool.acquire(), &self.clock, bound).await
    }
}

impl<C, A, K> Combinator<C> for Limited<A, K>
where
    A: Combinator<C>,
    K: Clock,
{
    async fn run(&self, ctx: C) -> (bool, C) {
        let (outcome, ctx) = self.run_with_outcome(ctx).await;
        (outcome.passed(), ctx)
    }
}

impl<A: fmt::Debug, K> fmt::Debug for Limited<A, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limited")
            .field("inner", &self.inner)
            .field("name", &self.name)
            .field("pool", &self.pool)
            .field("mode", &self.admission.mode())
            .field("rejected", &self.rejected())
            .finish_non_exhaustive()
    }
}

crate::impl_ops!([A, K] Limited<A, K>);
