//! [`Policy`]: a stack of layers, built outermost first, that calls
//! closures; [`Layer`] and [`Stack`], what it is made of.

use core::fmt;
use core::future::Future;

use super::operation::FnOperation;
use super::{Error, Operation};
use crate::Clock;

/// One resilience layer of a [`Policy`]: it calls an [`Operation`] (once,
/// or again for a retry) and may refuse, time out or classify the attempt.
///
/// The layers of this module implement it for every `T` and `E` their
/// settings accept (a classification predicate over `&MyError` makes a
/// breaker layer a `Layer<T, MyError>` only).
pub trait Layer<T, E> {
    /// Calls `op` through this layer.
    fn call<O>(&self, op: O) -> impl Future<Output = Result<T, Error<E>>>
    where
        O: Operation<Output = T, Error = E>;
}

/// The empty stack a [`Policy`] starts from: calls the operation once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Identity;

impl<T, E> Layer<T, E> for Identity {
    #[inline]
    async fn call<O>(&self, mut op: O) -> Result<T, Error<E>>
    where
        O: Operation<Output = T, Error = E>,
    {
        op.invoke().await
    }
}

/// Two layers, `outer` calling through `inner`: what each builder method
/// of [`Policy`] adds (`Stack<Stack<Identity, Limit>, Retry>` is
/// `limit ∘ retry`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Stack<Outer, Inner> {
    outer: Outer,
    inner: Inner,
}

impl<Outer, Inner> Stack<Outer, Inner> {
    /// `outer` calling through `inner`.
    pub fn new(outer: Outer, inner: Inner) -> Self {
        Stack { outer, inner }
    }

    /// The outer part.
    pub fn outer(&self) -> &Outer {
        &self.outer
    }

    /// The inner part: the layer added last.
    pub fn inner(&self) -> &Inner {
        &self.inner
    }

    pub(crate) fn inner_mut(&mut self) -> &mut Inner {
        &mut self.inner
    }

    pub(crate) fn map_inner<I2>(self, f: impl FnOnce(Inner) -> I2) -> Stack<Outer, I2> {
        Stack {
            outer: self.outer,
            inner: f(self.inner),
        }
    }
}

impl<T, E, Outer, Inner> Layer<T, E> for Stack<Outer, Inner>
where
    Outer: Layer<T, E>,
    Inner: Layer<T, E>,
{
    #[inline]
    fn call<O>(&self, op: O) -> impl Future<Output = Result<T, Error<E>>>
    where
        O: Operation<Output = T, Error = E>,
    {
        self.outer.call(Through {
            layer: &self.inner,
            op,
        })
    }
}

/// The operation an outer layer calls: `op` through `layer`.
struct Through<'a, L, O> {
    layer: &'a L,
    op: O,
}

impl<T, E, L, O> Operation for Through<'_, L, O>
where
    L: Layer<T, E>,
    O: Operation<Output = T, Error = E>,
{
    type Output = T;
    type Error = E;

    #[inline]
    fn invoke(&mut self) -> impl Future<Output = Result<T, Error<E>>> {
        self.layer.call(&mut self.op)
    }
}

/// A resilience policy for calls that return a `Result`: layers stacked
/// outermost first, then [`call`](Policy::call)ed with a closure that makes
/// the future.
///
/// Start from the clock ([`clock.policy()`](crate::ClockExt::policy), or a
/// runtime crate's `policy()`), add layers in the order a call meets them
/// — [`rate_limit`](Policy::rate_limit), [`limit`](Policy::limit),
/// [`retry`](Policy::retry), [`breaker`](Policy::breaker),
/// [`timeout`](Policy::timeout) — and tune each right after adding it
/// (`.retry(3)?.backoff(..)`, `.breaker(&b).failure_if_err(..)`,
/// `.limit(&pool).reject_when_full()`). Settings that can be wrong return
/// [`ConfigError`](crate::ConfigError) when the layer is added. The
/// [module docs](super) explain the order.
///
/// A call returns the operation's value, or an [`Error`] saying which layer
/// refused or that the operation failed with its own error. `T` and `E`
/// need not be `Clone`; a call allocates nothing; its future is `Send`
/// when the policy's parts and the operation's future are.
///
/// A call borrows the policy: to spawn calls, share it in an `Arc`
/// (`tokio::spawn(async move { policy.call(|| fetch(url)).await })` with
/// `policy` an `Arc<Policy<..>>` clone).
///
/// The policy's type names its layers, outermost first, so a function
/// that builds one for any clock can return it (a type alias keeps it
/// short), and the calls of the policy it returns for `TokioClock` can be
/// spawned. Returning `Policy<K, impl Layer<T, E>>` instead hides whether
/// the calls are `Send`: they run on the caller's task, but
/// `tokio::spawn` of one fails at the spawn site ("future cannot be sent
/// between threads safely"), with nothing pointing at the function. Name
/// the type instead, as below. A classification closure has no name; a
/// `fn` item's pointer type does (`BreakerLayer<K, fn(&MyError) -> bool>`,
/// given `.failure_if_err(is_5xx as fn(&MyError) -> bool)`).
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::call::{Identity, LimitLayer, Policy, RetryLayer, Stack, TimeoutLayer};
/// use kompoz_core::{Clock, ClockExt, ConfigError, ManualClock};
///
/// type Api<K> = Policy<K, Stack<Stack<Stack<Identity, LimitLayer<K>>, RetryLayer<K>>, TimeoutLayer<K>>>;
///
/// fn api<K: Clock>(clock: &K) -> Result<Api<K>, ConfigError> {
///     clock.policy().limit_to(10)?.retry(3)?.timeout(Duration::from_secs(1))
/// }
///
/// let clock = ManualClock::new();
/// let api = api(&clock)?;
/// assert_eq!(clock.block_on(api.call(|| async { Ok::<_, ()>(7) })).unwrap(), 7);
/// # Ok::<(), ConfigError>(())
/// ```
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::call::Error;
/// use kompoz_core::{Clock, ClockExt, ConfigError, ManualClock};
///
/// #[derive(Debug)]
/// struct Unavailable;
///
/// let clock = ManualClock::new();
/// let breaker = clock.shared_breaker().failure_threshold(3).build()?;
/// let policy = clock
///     .policy()
///     .limit_to(8)?
///     .retry(3)?
///     .fixed(Duration::from_millis(100))
///     .breaker(&breaker)
///     .timeout(Duration::from_secs(1))?;
///
/// let mut tries = 0;
/// let result = clock.block_on(policy.call(|| {
///     tries += 1;
///     let up = tries == 3;
///     async move { if up { Ok("body") } else { Err(Unavailable) } }
/// }));
/// assert_eq!(result.unwrap(), "body"); // the third attempt passed
/// assert_eq!(clock.now().as_duration(), Duration::from_millis(200));
///
/// // Down: three failed attempts fail the call and open the breaker…
/// let down = clock.block_on(policy.call(|| async { Err::<(), _>(Unavailable) }));
/// assert!(matches!(down, Err(Error::Inner(Unavailable))));
/// // …which refuses the next call at once, without trying it.
/// let refused = clock.block_on(policy.call(|| async { Ok::<_, Unavailable>(()) }));
/// assert!(matches!(refused, Err(Error::CircuitOpen(_))), "{refused:?}");
/// # Ok::<(), ConfigError>(())
/// ```
pub struct Policy<K, S = Identity> {
    clock: K,
    stack: S,
}

impl<K: Clock> Policy<K> {
    /// An empty policy on `clock`: calls pass straight through until layers
    /// are added.
    pub fn new(clock: K) -> Self {
        Policy {
            clock,
            stack: Identity,
        }
    }
}

impl<K, S> Policy<K, S> {
    /// Calls `operation` through the stack: `operation()` makes the future
    /// of one attempt (a retry layer calls it again).
    ///
    /// Returns the value of the attempt that passed, or an [`Error`]:
    /// [`Error::Inner`] with the operation's own error (the last attempt's,
    /// after any retries), or the refusal of the layer that stopped the
    /// call. The last attempt decides: when a retry's earlier attempts
    /// failed and opened a breaker inside it, the next attempt is refused
    /// and the call returns [`Error::CircuitOpen`] (the operation did run);
    /// [`Error::TimedOut`] from a timeout inside the retry means the last
    /// attempt ran out of time.
    ///
    /// # Examples
    ///
    /// ```
    /// use kompoz_core::call::Error;
    /// use kompoz_core::{ClockExt, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let breaker = clock.shared_breaker().failure_threshold(2).build()?;
    /// let policy = clock.policy().retry(3)?.breaker(&breaker);
    ///
    /// let mut runs = 0;
    /// let out = clock.block_on(policy.call(|| {
    ///     runs += 1; // the closure makes each attempt's future
    ///     async { Err::<String, _>("connection refused") }
    /// }));
    /// // Two attempts failed and opened the breaker, which refused the third.
    /// assert!(matches!(out, Err(Error::CircuitOpen(_))));
    /// assert_eq!(runs, 2);
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    #[inline]
    pub fn call<F, Fut, T, E>(&self, operation: F) -> impl Future<Output = Result<T, Error<E>>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        S: Layer<T, E>,
    {
        self.stack.call(FnOperation(operation))
    }

    /// Calls `op` through the stack: [`call`](Self::call) for an
    /// [`Operation`] that is not a closure.
    #[inline]
    pub fn call_operation<O>(
        &self,
        op: O,
    ) -> impl Future<Output = Result<O::Output, Error<O::Error>>>
    where
        O: Operation,
        S: Layer<O::Output, O::Error>,
    {
        self.stack.call(op)
    }

    /// The clock the layers are timed by.
    pub fn clock(&self) -> &K {
        &self.clock
    }

    /// The layers: a [`Stack`] whose [`inner`](Stack::inner) is the layer
    /// added last.
    pub fn layers(&self) -> &S {
        &self.stack
    }

    /// `layer` added inside the others.
    pub fn layer<L>(self, layer: L) -> Policy<K, Stack<S, L>> {
        Policy {
            clock: self.clock,
            stack: Stack::new(self.stack, layer),
        }
    }
}

impl<K, S, L> Policy<K, Stack<S, L>> {
    /// Changes the layer added last (its settings).
    pub(crate) fn map_last<L2>(self, f: impl FnOnce(L) -> L2) -> Policy<K, Stack<S, L2>> {
        Policy {
            clock: self.clock,
            stack: self.stack.map_inner(f),
        }
    }

    pub(crate) fn last_mut(&mut self) -> &mut L {
        self.stack.inner_mut()
    }
}

/// Names and subscribers, for the layer just added (see
/// [`observe`](crate::observe)).
impl<K, S, L: crate::observe::Observable> Policy<K, Stack<S, L>> {
    /// Names the layer just added: the `name` of its events, its `tracing`
    /// events' `name` field and its metrics' `name` label. A layer added with
    /// `limit_named(_in)`, or over a `RateLimiter::named` budget, already
    /// carries that name; a pool passed with `.limit(&pool)` does not (a
    /// `Semaphore` has no name).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use std::sync::{Arc, Mutex};
    /// use kompoz_core::observe::Event;
    /// use kompoz_core::{Clock, ClockExt, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = Arc::clone(&seen);
    /// let policy = clock
    ///     .policy()
    ///     .timeout(Duration::from_secs(2))?
    ///     .name("payments")
    ///     .on_event(move |name: &str, e: &Event| log.lock().unwrap().push(format!("{name}: {e}")));
    /// let _ = clock.block_on(policy.call(|| {
    ///     let sleep = clock.sleep(Duration::from_secs(60));
    ///     async move { sleep.await; Ok::<_, ()>(()) }
    /// }));
    /// assert_eq!(*seen.lock().unwrap(), ["payments: timed out after 2s"]);
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    pub fn name(mut self, name: &str) -> Self {
        self.last_mut().observer_mut().set_name(name);
        self
    }

    /// Calls `subscriber(name, &event)` for each event of the layer just
    /// added (see [`Event`](crate::observe::Event)). It runs on the call
    /// path: keep it short.
    pub fn on_event<F>(mut self, subscriber: F) -> Self
    where
        F: Fn(&str, &crate::observe::Event) + Send + Sync + 'static,
    {
        self.last_mut().observer_mut().set_subscriber(subscriber);
        self
    }
}

impl<K: Clone, S: Clone> Clone for Policy<K, S> {
    fn clone(&self) -> Self {
        Policy {
            clock: self.clock.clone(),
            stack: self.stack.clone(),
        }
    }
}

impl<K, S: fmt::Debug> fmt::Debug for Policy<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("layers", &self.stack)
            .finish_non_exhaustive()
    }
}
