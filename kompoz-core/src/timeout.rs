//! Timeouts: [`Timeout`], built by
//! [`clock.with_timeout(inner, d)`](crate::ClockExt::with_timeout) on any
//! [`Clock`] (the runtime crates' `with_timeout`), and what a call did,
//! [`TimeoutOutcome`].

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use crate::sync::{AtomicU64, Ordering};
use crate::{Clock, Combinator, ConfigError};

/// A combinator that gives up on its inner combinator after a duration
/// (kompoz's `with_timeout`).
///
/// If the inner call has not finished within the duration, its future is
/// dropped — whatever it held (a [`Limited`](crate::Limited) permit, a
/// connection) is released at once — and the call returns `(false, ctx)`,
/// with `ctx` the context the call *started* with, passed through the
/// [`on_timeout`](Self::on_timeout) hook if one is set.
///
/// # Observing timeouts
///
/// The reference's `ctx.timed_out` flag on a shared object is racy when one
/// wrapper serves many tasks. Here each call can report its own outcome with
/// [`run_with_outcome`](Self::run_with_outcome), and
/// [`timeouts`](Self::timeouts) counts the calls that timed out.
///
/// # Cost
///
/// - The context is cloned once per call, before the inner call starts,
///   because the inner call consumes it and a timed-out call must hand the
///   original back (hence `C: Clone`). Pass an `Arc` for heavy contexts.
/// - The inner future is polled first; the clock is neither read nor asked
///   for a timer unless the inner future is still pending after its first
///   poll. The duration is measured from that first poll.
///
/// # Examples
///
/// The reference's first example, on a [`ManualClock`](crate::ManualClock)
/// (with a runtime crate this is `with_timeout(slow_api_check,
/// Duration::from_secs(5))?`):
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::{ClockExt, rule, Clock, Combinator, ManualClock};
///
/// # #[derive(Clone)] struct Ctx { id: u32 }
/// # let clock = ManualClock::new();
/// # let api_clock = clock.clone();
/// # let api = move |id: u32| { let c = api_clock.clone(); async move { c.sleep(Duration::from_secs(60)).await; id > 0 } };
/// let slow_api_check = rule(async |ctx: &Ctx| api(ctx.id).await);
///
/// // Timeout after 5 seconds
/// let check = clock.with_timeout(slow_api_check, Duration::from_secs(5))?;
///
/// # let ctx = Ctx { id: 7 };
/// let (result, _ctx) = futures::executor::block_on(async {
///     futures::join!(check.run(ctx), async { clock.advance(Duration::from_secs(5)) }).0
/// });
/// assert!(!result);
/// assert_eq!(check.timeouts(), 1);
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
pub struct Timeout<A, K, H = ()> {
    inner: A,
    duration: Duration,
    clock: K,
    on_timeout: H,
    timeouts: AtomicU64,
}

/// What happened to one call through a [`Timeout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeoutOutcome {
    /// The inner combinator finished in time with this verdict.
    Completed(bool),
    /// The inner combinator did not finish in time and was dropped.
    TimedOut,
}

impl TimeoutOutcome {
    /// Whether the call timed out.
    pub fn is_timed_out(self) -> bool {
        self == TimeoutOutcome::TimedOut
    }

    /// The verdict the call returned: the inner verdict, `false` on timeout.
    pub fn passed(self) -> bool {
        self == TimeoutOutcome::Completed(true)
    }
}

/// What a [`Timeout`] does with the context of a call that timed out.
///
/// Implemented by `()` (hand the context back unchanged) and by every
/// `Fn(C) -> C`.
pub trait TimeoutHook<C> {
    /// Turns the context a timed-out call started with into the one it returns.
    fn on_timeout(&self, ctx: C) -> C;
}

impl<C> TimeoutHook<C> for () {
    fn on_timeout(&self, ctx: C) -> C {
        ctx
    }
}

impl<C, F: Fn(C) -> C> TimeoutHook<C> for F {
    fn on_timeout(&self, ctx: C) -> C {
        self(ctx)
    }
}

impl<A, K: Clock> Timeout<A, K> {
    /// Wraps `inner` so that calls give up after `timeout` on `clock`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `timeout` if it is zero.
    pub fn new(inner: A, timeout: Duration, clock: K) -> Result<Self, ConfigError> {
        if timeout.is_zero() {
            return Err(ConfigError::invalid(
                "timeout",
                timeout,
                "a duration greater than zero",
            ));
        }
        Ok(Timeout {
            inner,
            duration: timeout,
            clock,
            on_timeout: (),
            timeouts: AtomicU64::new(0),
        })
    }
}

impl<A, K, H> Timeout<A, K, H> {
    /// Sets what a timed-out call does with its context (kompoz's
    /// `on_timeout=`): `hook` gets the context the call started with and
    /// returns the one the call hands back.
    ///
    /// # Examples
    ///
    /// The reference's second example:
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz_core::{ClockExt, rule, Clock, Combinator, ManualClock};
    ///
    /// #[derive(Clone, Debug)]
    /// struct Ctx { id: u32, timed_out: bool }
    ///
    /// # let clock = ManualClock::new();
    /// # let api_clock = clock.clone();
    /// # let api = move |id: u32| { let c = api_clock.clone(); async move { c.sleep(Duration::from_secs(60)).await; id > 0 } };
    /// let slow_api_check = rule(async |ctx: &Ctx| api(ctx.id).await);
    ///
    /// // With custom timeout handler
    /// fn handle_timeout(mut ctx: Ctx) -> Ctx {
    ///     ctx.timed_out = true;
    ///     ctx
    /// }
    ///
    /// let check = clock.with_timeout(slow_api_check, Duration::from_secs(5))?
    ///     .on_timeout(handle_timeout);
    ///
    /// # let ctx = Ctx { id: 7, timed_out: false };
    /// let (result, ctx) = futures::executor::block_on(async {
    ///     futures::join!(check.run(ctx), async { clock.advance(Duration::from_secs(5)) }).0
    /// });
    /// assert!(!result);
    /// assert!(ctx.timed_out);
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    ///
    /// The context's type comes from the inner combinator, so a closure
    /// needs no annotation: `.on_timeout(|mut ctx| { ctx.timed_out = true; ctx })`.
    pub fn on_timeout<C, H2>(self, hook: H2) -> Timeout<A, K, H2>
    where
        A: Combinator<C>,
        H2: Fn(C) -> C,
    {
        Timeout {
            inner: self.inner,
            duration: self.duration,
            clock: self.clock,
            on_timeout: hook,
            timeouts: self.timeouts,
        }
    }

    /// The time each call is given.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// How many calls have timed out so far.
    pub fn timeouts(&self) -> u64 {
        self.timeouts.load(Ordering::Relaxed)
    }

    /// The clock timing the calls.
    pub fn clock(&self) -> &K {
        &self.clock
    }

    crate::combinator::inner_access!(A, "wrapped");
}

impl<A, K: Clock, H> Timeout<A, K, H> {
    /// Runs one call and says whether it completed (with which verdict) or
    /// timed out. Safe to call from many tasks at once: each call gets its
    /// own outcome.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz_core::{ClockExt, rule, Clock, ManualClock, timeout::TimeoutOutcome};
    ///
    /// let clock = ManualClock::new();
    /// let c = clock.clone();
    /// // Even numbers answer at once, odd ones after a minute.
    /// let check = rule(async move |n: &u32| {
    ///     if n % 2 == 1 {
    ///         c.sleep(Duration::from_secs(60)).await;
    ///     }
    ///     true
    /// });
    /// let check = clock.with_timeout(check, Duration::from_secs(1))?;
    ///
    /// let outcomes = futures::executor::block_on(async {
    ///     let calls = futures::future::join_all((0..4).map(|n| check.run_with_outcome(n)));
    ///     futures::join!(calls, async { clock.advance(Duration::from_secs(1)) }).0
    /// });
    /// assert_eq!(outcomes, [
    ///     (TimeoutOutcome::Completed(true), 0),
    ///     (TimeoutOutcome::TimedOut, 1),
    ///     (TimeoutOutcome::Completed(true), 2),
    ///     (TimeoutOutcome::TimedOut, 3),
    /// ]);
    /// assert_eq!(check.timeouts(), 2);
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    pub async fn run_with_outcome<C>(&self, ctx: C) -> (TimeoutOutcome, C)
    where
        A: Combinator<C>,
        H: TimeoutHook<C>,
        C: Clone,
    {
        let original = ctx.clone();
        match within(self.inner.run(ctx), &self.clock, self.duration).await {
            Some((ok, ctx)) => (TimeoutOutcome::Completed(ok), ctx),
            None => {
                // `within` has dropped the inner future by now.
                self.timeouts.fetch_add(1, Ordering::Relaxed);
                (
                    TimeoutOutcome::TimedOut,
                    self.on_timeout.on_timeout(original),
                )
            }
        }
    }
}

impl<C, A, K, H> Combinator<C> for Timeout<A, K, H>
where
    A: Combinator<C>,
    K: Clock,
    H: TimeoutHook<C>,
    C: Clone,
{
    async fn run(&self, ctx: C) -> (bool, C) {
        let (outcome, ctx) = self.run_with_outcome(ctx).await;
        (outcome.passed(), ctx)
    }
}

/// Runs `fut` for at most `limit` on `clock`: `Some(output)` if it finished,
/// `None` (with `fut` dropped) if the time ran out first.
///
/// `fut` is polled before any timer exists; the sleep is created (and the
/// clock read) only if `fut` is pending on its first poll, so a future that
/// is ready at once costs no timer.
pub(crate) fn within<F: Future, K: Clock>(fut: F, clock: &K, limit: Duration) -> Within<'_, F, K> {
    Within {
        fut,
        sleep: None,
        clock,
        limit,
    }
}

pin_project_lite::pin_project! {
    /// The future of [`within`]. It owns the inner future and the timer, so
    /// an `async fn` awaiting it holds no borrow of its own state across the
    /// await (which Miri's aliasing models would reject).
    pub(crate) struct Within<'a, F, K: Clock> {
        #[pin]
        fut: F,
        #[pin]
        sleep: Option<K::Sleep>,
        clock: &'a K,
        limit: Duration,
    }
}

impl<F: Future, K: Clock> Future for Within<'_, F, K> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(out) = this.fut.poll(cx) {
            return Poll::Ready(Some(out));
        }
        if this.sleep.is_none() {
            this.sleep.set(Some(this.clock.sleep(*this.limit)));
        }
        match this.sleep.as_pin_mut().map(|timer| timer.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(None),
            _ => Poll::Pending,
        }
    }
}

impl<A: fmt::Debug, K, H> fmt::Debug for Timeout<A, K, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("inner", &self.inner)
            .field("duration", &self.duration)
            .field("timeouts", &self.timeouts())
            .finish_non_exhaustive()
    }
}

crate::impl_ops!([A, K, H] Timeout<A, K, H>);
