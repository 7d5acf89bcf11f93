//! Circuit breaker: stop calling a service that keeps failing, probe it
//! after a while, and resume when it recovers. The user-facing docs (states,
//! policies, guarantees) are on [`CircuitBreaker`].
//!
//! Where things are: the combinator is here; in `circuit_breaker/`,
//! `breaker.rs` holds the shared [`Breaker`] handle, `raw.rs` its state
//! machine (layout, admission, transitions), `record.rs` outcome
//! recording, `state.rs` the packed state word, `notify.rs` the delivery of
//! transitions to listeners, `future.rs` an admitted call's future,
//! `permit.rs` the call guard and permits, `outcome.rs` the failure
//! predicate, the reported outcome and the refusal hook, `config.rs` and
//! `builder.rs` the builders, `stats.rs`, `events.rs` and `window.rs` what
//! their names say.

use core::fmt;
use core::future::Future;

use crate::{Clock, Combinator};

mod breaker;
mod builder;
mod config;
mod events;
mod future;
mod notify;
mod outcome;
mod permit;
mod raw;
mod record;
mod state;
mod stats;
mod window;

pub use breaker::Breaker;
pub use builder::CircuitBreakerBuilder;
pub use config::{
    BreakerBuilder, DEFAULT_FAILURE_THRESHOLD, DEFAULT_HALF_OPEN_MAX_CALLS, DEFAULT_MINIMUM_CALLS,
    DEFAULT_RECOVERY_TIMEOUT, DEFAULT_SLIDING_WINDOW,
};
pub use events::BreakerEvent;
pub use outcome::{BreakerOutcome, FailurePredicate, NotOk, RejectedHook};
pub use permit::{BreakerPermit, OwnedBreakerPermit};
pub use state::CircuitState;
pub use stats::{CircuitBreakerStats, WindowStats};
pub use window::SlidingWindow;

/// A combinator guarded by a circuit breaker (the reference's
/// `circuit_breaker(...)`).
///
/// Built by [`clock.circuit_breaker(inner)`](crate::ClockExt::circuit_breaker)
/// (the runtime crates' `circuit_breaker(inner)` with their clock), or by
/// [`Breaker::guard`] to share one breaker between several combinators.
/// `run` returns the inner combinator's `(ok, ctx)`, or `(false, ctx)`
/// without running it when the breaker rejects the call. The reference's
/// breaker is the default; the policies resilience4j and Polly users grow
/// into are options on the same builder.
///
/// # States
///
/// - **CLOSED**: normal operation; calls pass through and their outcomes are
///   recorded.
/// - **OPEN**: too many failures; calls return `(false, ctx)` at once and the
///   inner combinator does not run.
/// - **HALF_OPEN**: testing whether the service recovered; a few probe
///   calls are let through.
///
/// # Policies
///
/// | policy | builder methods | semantics | default |
/// |---|---|---|---|
/// | consecutive failures | `failure_threshold(n)` | CLOSED → OPEN after `n` failures in a row; a success resets the count | on, `n = 5`; off once `failure_rate` is set, unless `failure_threshold` is set too |
/// | failure rate | `failure_rate(p)`, `sliding_window(w)`, `minimum_calls(m)` | CLOSED → OPEN when the window holds at least `m` calls and failures are at least `p` % of them | off; `w` = last 100 calls, `m` = min(100, count window) |
/// | slow-call rate | `slow_calls(t, p)` (same window) | a call taking at least `t` is slow; CLOSED → OPEN when the window holds at least `m` calls and slow ones are at least `p` % | off |
/// | recovery | `recovery_timeout(d)` | OPEN for `d`; then the next call moves it to HALF_OPEN and runs as a probe | 30 s |
/// | half-open | `half_open_max_calls(k)` | at most `k` probes at once, the rest rejected; `k` probe successes close it; a failed probe (or a slow one under a slow-call policy) reopens it | `k = 1` |
/// | back-off | `backoff(f, max)`, `jitter_fraction(j)`, `jitter_seed(s)` | the `n`-th trip since the circuit last closed opens it for `min(d × f^(n-1), max)`, spread uniformly over ± `j` of that | off |
/// | what fails | `failure_if(pred)` | `pred(ok, &ctx)` says whether an outcome is a failure; the verdict returned is still the inner one | `!ok` |
/// | manual | `force_open()`, `force_closed()`, `reset()` | isolate (reject all, never probe); disable (run all, record only, never trip); close and clear | — |
/// | events | `on_state_change(f)`, `on_event(f)` | state changes, successes, failures, slow calls, rejections | none; no cost beyond one branch |
/// | refusals | `on_rejected(hook)`; per call: `run_with_outcome` | `hook(ctx)` makes the context a refused call hands back; `run_with_outcome` tells `Rejected` from `Ran(ok)` | context handed back as it came |
///
/// Windows: [`SlidingWindow::Count`]`(n)` holds the last `n` outcomes;
/// [`SlidingWindow::Time`] holds the outcomes of the last `duration`, in
/// `buckets` buckets. A window holds the outcomes of the current CLOSED
/// period only: it is cleared whenever the circuit closes.
///
/// # Guarantees
///
/// - **No stuck HALF_OPEN.** A probe whose future is dropped (cancelled, or
///   timed out by an outer timeout) gives its slot back without an outcome;
///   a probe that panics gives it back and counts as a failure.
///   A [`BreakerPermit`] dropped without an outcome (also while a panic
///   unwinds) gives its slot back without an outcome.
/// - **Panics.** A panic of the inner combinator — in its future, or in
///   `run` itself before it returns one — counts as the call's failure. A
///   panicking failure predicate gives the call no outcome. A panicking
///   `on_state_change` or `on_event` leaves the bookkeeping done, gives a
///   probe slot it stood in front of back, and loses no notification. Every
///   panic reaches the caller (one raised while another unwinds is dropped).
/// - **Generations.** Every state change starts a new generation; a result
///   from a call admitted in an earlier one is ignored, so a slow failure
///   from before a `reset()` or a trip cannot reopen the new circuit, and a
///   slow success from before a trip cannot close it. Generations have 28
///   bits and wrap: a call still running after exactly a multiple of 2²⁸
///   (268,435,456) further state changes (every `reset()` and `force_*()`
///   counts, and each step of a trip and recovery), that ends in a period of
///   the kind it was admitted in, is taken for a call of that period. Its
///   one outcome then counts there (a failure or success more; a stale
///   probe's end frees a probe slot early, so one extra probe may run).
///   Nothing leaks or sticks.
/// - **Callbacks** fire exactly once per transition, after the new state is
///   in place, with no internal lock held, one at a time and in the order
///   the transitions happened.
/// - **Speed.** With the default policy the CLOSED path takes no lock, makes
///   no allocation and reads no clock (but for the first failure of a streak
///   and the one that trips the circuit): admission is one atomic load, a
///   success one more load and one relaxed add (no add with
///   `count_successes(false)`), a failure one more load, one relaxed add and
///   one CAS.
///
/// # Timeouts
///
/// To count slow calls as failures, put the timeout *inside* the breaker:
/// `circuit_breaker(with_timeout(call, d))`: a timed-out call returns
/// `(false, ctx)`, a failure. A timeout *around* the breaker cancels the
/// call instead: a cancelled call has no outcome (a probe's slot is given
/// back).
///
/// # Examples
///
/// The reference's *Basic Usage*, line for line (in an application,
/// `circuit_breaker` comes from `kompoz-tokio`, `kompoz-async-std`,
/// `kompoz-smol` or `kompoz_core::futures_timer`):
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::{rule, CircuitState, Combinator};
/// # use kompoz_core::{ClockExt, CircuitBreakerBuilder, ManualClock};
/// # fn circuit_breaker<I>(inner: I) -> CircuitBreakerBuilder<I, ManualClock> {
/// #     ManualClock::new().circuit_breaker(inner)
/// # }
/// # struct Ctx { id: u32 }
/// # async fn api_check(_id: u32) -> bool { false }
/// # let ctx = Ctx { id: 7 };
/// # futures::executor::block_on(async {
/// let flaky_api = rule(async |ctx: &Ctx| api_check(ctx.id).await);
///
/// let protected = circuit_breaker(flaky_api)
///     .failure_threshold(5)                      // Open after 5 failures
///     .recovery_timeout(Duration::from_secs(30)) // Try again after 30 seconds
///     .build()?;
///
/// let (ok, result) = protected.run(ctx).await;
/// # assert!(!ok);
/// # let mut result = result;
/// # for _ in 0..4 { result = protected.run(result).await.1; }
///
/// // Check circuit state
/// if protected.state() == CircuitState::Open {
///     println!("Circuit is open, service likely down");
/// }
/// # assert_eq!(protected.state(), CircuitState::Open);
///
/// // Get detailed stats
/// let stats = protected.stats();
/// println!("Failures: {}", stats.failure_count);
/// # assert_eq!(stats.failure_count, 5);
/// # let _ = result;
/// # Ok::<(), kompoz_core::ConfigError>(())
/// # })?;
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
///
/// *State Change Callbacks*:
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::{rule, CircuitBreakerStats, CircuitState, Combinator};
/// # use kompoz_core::{ClockExt, CircuitBreakerBuilder, ManualClock};
/// # fn circuit_breaker<I>(inner: I) -> CircuitBreakerBuilder<I, ManualClock> {
/// #     ManualClock::new().circuit_breaker(inner)
/// # }
/// # let flaky_api = rule(async |_: &u32| false);
///
/// fn on_state_change(old_state: CircuitState, new_state: CircuitState, stats: &CircuitBreakerStats) {
///     println!("Circuit {old_state} -> {new_state}");
/// #   assert_eq!((old_state, new_state, stats.state), (CircuitState::Closed, CircuitState::Open, CircuitState::Open));
/// }
///
/// let protected = circuit_breaker(flaky_api)
///     .failure_threshold(5)
///     .recovery_timeout(Duration::from_secs(30))
///     .on_state_change(on_state_change)
///     .build()?;
/// # futures::executor::block_on(async { for n in 0..5 { protected.run(n).await; } });
/// # assert_eq!(protected.state(), CircuitState::Open);
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
///
/// Recovery, on a [`ManualClock`](crate::ManualClock):
///
/// ```
/// use core::time::Duration;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use kompoz_core::{ClockExt, rule, CircuitState, Combinator, ManualClock};
///
/// static UP: AtomicBool = AtomicBool::new(false);
/// let clock = ManualClock::new();
/// let protected = clock.circuit_breaker(rule(async |_: &()| UP.load(Ordering::SeqCst)))
///     .failure_threshold(2)
///     .recovery_timeout(Duration::from_secs(30))
///     .build()?;
///
/// futures::executor::block_on(async {
///     protected.run(()).await;
///     protected.run(()).await;
///     assert_eq!(protected.state(), CircuitState::Open);
///
///     UP.store(true, Ordering::SeqCst);
///     assert!(!protected.run(()).await.0);          // still open: rejected
///     clock.advance(Duration::from_secs(30));
///     assert!(protected.run(()).await.0);           // the probe passes
///     assert_eq!(protected.state(), CircuitState::Closed);
/// });
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct CircuitBreaker<I, K, P = NotOk, H = ()> {
    inner: I,
    breaker: Breaker<K>,
    predicate: P,
    on_rejected: H,
}

crate::impl_ops!([I, K, P, H] CircuitBreaker<I, K, P, H>);

impl<I, K> CircuitBreaker<I, K, NotOk> {
    /// A builder for a breaker of its own around `inner`, with the
    /// reference's defaults and time from `clock`.
    pub fn builder(inner: I, clock: K) -> CircuitBreakerBuilder<I, K, NotOk> {
        CircuitBreakerBuilder {
            inner,
            predicate: NotOk,
            on_rejected: (),
            config: Breaker::builder(clock),
        }
    }
}

impl<I, K, P> CircuitBreaker<I, K, P> {
    pub(crate) fn from_parts(inner: I, breaker: Breaker<K>, predicate: P) -> Self {
        CircuitBreaker {
            inner,
            breaker,
            predicate,
            on_rejected: (),
        }
    }
}

impl<I, K, P, H> CircuitBreaker<I, K, P, H> {
    /// Counts an outcome as a failure when `predicate(ok, &ctx)` says so,
    /// instead of when `ok == false`. The verdict `run` returns is still the
    /// inner combinator's.
    ///
    /// # Examples
    ///
    /// ```
    /// use kompoz_core::{ClockExt, transform, Combinator, ManualClock};
    ///
    /// struct Reply { status: u16 }
    ///
    /// let breaker = ManualClock::new().shared_breaker().failure_threshold(1).build()?;
    /// // A 404 is the caller's problem, not the service's: only 5xx count.
    /// let fetch = breaker
    ///     .guard(transform(async |r: Reply| r))
    ///     .failure_if(|_ok: bool, r: &Reply| r.status >= 500);
    ///
    /// futures::executor::block_on(async {
    ///     fetch.run(Reply { status: 404 }).await;
    ///     assert_eq!(breaker.stats().failure_count, 0);
    ///     fetch.run(Reply { status: 503 }).await;
    ///     assert_eq!(breaker.stats().failure_count, 1);
    /// });
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    pub fn failure_if<C, Q>(self, predicate: Q) -> CircuitBreaker<I, K, Q, H>
    where
        I: Combinator<C>,
        Q: Fn(bool, &C) -> bool,
    {
        CircuitBreaker {
            inner: self.inner,
            breaker: self.breaker,
            predicate,
            on_rejected: self.on_rejected,
        }
    }

    /// Sets what a refused call does with its context: `hook` gets the
    /// context of a call the breaker refused (the inner combinator did not
    /// run) and returns the one the call hands back, as
    /// [`Timeout::on_timeout`](crate::Timeout::on_timeout) does for a
    /// timed-out call. Per-call outcomes without a hook:
    /// [`run_with_outcome`](Self::run_with_outcome).
    ///
    /// # Examples
    ///
    /// ```
    /// use kompoz_core::{ClockExt, rule, Combinator, ManualClock};
    ///
    /// #[derive(Debug, PartialEq)]
    /// struct Req { id: u32, refused: bool }
    ///
    /// let breaker = ManualClock::new().shared_breaker().failure_threshold(1).build()?;
    /// let api = breaker
    ///     .guard(rule(async |_: &Req| false))
    ///     .on_rejected(|mut req: Req| { req.refused = true; req });
    ///
    /// futures::executor::block_on(async {
    ///     let (_, first) = api.run(Req { id: 1, refused: false }).await; // fails: opens
    ///     assert!(!first.refused);
    ///     let (ok, second) = api.run(Req { id: 2, refused: false }).await;
    ///     assert_eq!((ok, second), (false, Req { id: 2, refused: true }));
    /// });
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    pub fn on_rejected<C, H2>(self, hook: H2) -> CircuitBreaker<I, K, P, H2>
    where
        I: Combinator<C>,
        H2: Fn(C) -> C,
    {
        CircuitBreaker {
            inner: self.inner,
            breaker: self.breaker,
            predicate: self.predicate,
            on_rejected: hook,
        }
    }

    /// The breaker guarding this combinator (a handle: clone it to guard
    /// other combinators with the same state).
    pub fn breaker(&self) -> &Breaker<K> {
        &self.breaker
    }

    crate::combinator::inner_access!(I, "guarded");
}

impl<I, K: Clock, P, H> CircuitBreaker<I, K, P, H> {
    /// The current state. See [`Breaker::state`].
    pub fn state(&self) -> CircuitState {
        self.breaker.state()
    }

    /// A snapshot of the bookkeeping. See [`Breaker::stats`].
    pub fn stats(&self) -> CircuitBreakerStats {
        self.breaker.stats()
    }

    /// Closes the circuit and starts afresh. See [`Breaker::reset`].
    pub fn reset(&self) {
        self.breaker.reset();
    }

    /// Opens the circuit and keeps it open. See [`Breaker::force_open`].
    pub fn force_open(&self) {
        self.breaker.force_open();
    }

    /// Closes the circuit and keeps it closed, recording only. See
    /// [`Breaker::force_closed`].
    pub fn force_closed(&self) {
        self.breaker.force_closed();
    }

    /// Whether the state was set by hand. See [`Breaker::is_forced`].
    pub fn is_forced(&self) -> bool {
        self.breaker.is_forced()
    }
}

impl<I, K: Clock, P, H> CircuitBreaker<I, K, P, H> {
    /// Runs one call and says whether the breaker admitted it (and with
    /// which verdict the inner combinator answered) or refused it. Safe to
    /// call from many tasks at once: each call gets its own outcome.
    ///
    /// # Examples
    ///
    /// ```
    /// use kompoz_core::{ClockExt, rule, ManualClock, circuit_breaker::BreakerOutcome};
    ///
    /// let breaker = ManualClock::new().shared_breaker().failure_threshold(1).build()?;
    /// let api = breaker.guard(rule(async |n: &u32| *n > 0));
    ///
    /// futures::executor::block_on(async {
    ///     assert_eq!(api.run_with_outcome(0).await, (BreakerOutcome::Ran(false), 0)); // opens
    ///     assert_eq!(api.run_with_outcome(1).await, (BreakerOutcome::Rejected, 1));
    /// });
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    #[allow(clippy::manual_async_fn)]
    pub fn run_with_outcome<C>(&self, ctx: C) -> impl Future<Output = (BreakerOutcome, C)>
    where
        I: Combinator<C>,
        P: FailurePredicate<C>,
        H: RejectedHook<C>,
    {
        async move {
            let shared = self.breaker.shared();
            let Ok(ticket) = shared.acquire() else {
                return (BreakerOutcome::Rejected, self.on_rejected.on_rejected(ctx));
            };
            let (ok, ctx) = self.start(shared, ticket, ctx).await;
            (BreakerOutcome::Ran(ok), ctx)
        }
    }
}

impl<C, I, K, P, H> Combinator<C> for CircuitBreaker<I, K, P, H>
where
    I: Combinator<C>,
    K: Clock,
    P: FailurePredicate<C>,
    H: RejectedHook<C>,
{
    #[allow(clippy::manual_async_fn)]
    fn run(&self, ctx: C) -> impl Future<Output = (bool, C)> {
        // Written out rather than mapped from `run_with_outcome`: the
        // CLOSED path stays the one state machine it was.
        async move {
            let shared = self.breaker.shared();
            let Ok(ticket) = shared.acquire() else {
                return (false, self.on_rejected.on_rejected(ctx));
            };
            self.start(shared, ticket, ctx).await
        }
    }
}

impl<I: fmt::Debug, K: fmt::Debug, P: fmt::Debug, H> fmt::Debug for CircuitBreaker<I, K, P, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker)
            .field("predicate", &self.predicate)
            .finish_non_exhaustive()
    }
}
