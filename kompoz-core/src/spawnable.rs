//! [`SendCombinator`] and [`spawnable!`](crate::spawnable!): a stack whose
//! calls are `Send + 'static` futures, returned as `impl SendCombinator<C>`.

use alloc::sync::Arc;
use core::fmt;
use core::future::Future;

use crate::Combinator;

/// A combinator whose calls are `Send + 'static` futures: one that can be
/// returned as `impl SendCombinator<C>` and its calls `tokio::spawn`ed.
///
/// `impl Combinator<C>` in return position hides whether the call's future
/// is `Send` (the trait's `run` cannot promise it for every implementor), so
/// such a stack cannot be spawned. Return `impl SendCombinator<C>` instead,
/// made with [`spawnable!`](crate::spawnable!): the macro checks, where it is
/// used, that the call's future is `Send`, and names it.
///
/// What implements it: the result of [`spawnable!`](crate::spawnable!), and
/// the closure leaves [`rule_fn`](crate::rule_fn) and
/// [`transform_fn`](crate::transform_fn) whose futures are `Send + 'static`.
///
/// # One policy, every runtime, spawnable
///
/// A policy written once, generic over the clock, can return
/// `impl SendCombinator<C>` when
///
/// - its clock is bounded by [`SendClock`](crate::SendClock) (a clock whose
///   sleeps can cross threads) rather than [`Clock`](crate::Clock);
/// - its generic parts are taken as `impl SendCombinator<C>` and put into
///   the stack with [`.send_part()`](SendCombinator::send_part) (inside a
///   generic function only the bounds are known, and `run_send` is the method
///   whose future is declared `Send`);
/// - the finished stack is wrapped with `spawnable!` inside the function.
///
/// State a test wants to watch (a breaker) is made outside and passed in:
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::{
///     rule_fn, spawnable, Breaker, CircuitState, ClockExt, ConfigError, ManualClock, SendClock,
///     SendCombinator,
/// };
///
/// /// limit ∘ breaker ∘ timeout ∘ retry around `check`, on any clock.
/// fn policy<K: SendClock>(
///     clock: &K,
///     breaker: &Breaker<K>,
///     check: impl SendCombinator<u32>,
/// ) -> Result<impl SendCombinator<u32>, ConfigError> {
///     let retried = clock.retry(check.send_part(), 3)?.fixed(Duration::from_millis(10));
///     let timed = clock.with_timeout(retried, Duration::from_secs(1))?;
///     Ok(spawnable!(clock.limited(breaker.guard(timed), 8)?))
/// }
///
/// let clock = ManualClock::new();
/// let breaker = clock.shared_breaker().failure_threshold(1).build()?;
/// let down = rule_fn(|_: &u32| async { false });
/// let api = policy(&clock, &breaker, down)?;
///
/// // The call runs on another thread (virtual time skips the back-off);
/// // its three failed attempts open the breaker.
/// let (call, runner) = (api.run_send(7), clock.clone());
/// let verdict = std::thread::spawn(move || runner.block_on(call)).join().unwrap();
/// assert_eq!(verdict, (false, 7));
/// assert_eq!(breaker.state(), CircuitState::Open);
/// # Ok::<(), ConfigError>(())
/// ```
///
/// A generic part put into the stack as is (without `.send_part()`) is
/// refused at `spawnable!` with "`impl Future<Output = (bool, u32)>` cannot
/// be sent between threads safely": its `run` promises nothing about `Send`.
///
/// ```compile_fail,E0277
/// use core::time::Duration;
/// use kompoz_core::{spawnable, ClockExt, ConfigError, SendClock, SendCombinator};
///
/// fn policy<K: SendClock>(
///     clock: &K,
///     check: impl SendCombinator<u32>,
/// ) -> Result<impl SendCombinator<u32>, ConfigError> {
///     Ok(spawnable!(clock.with_timeout(check, Duration::from_secs(1))?))
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `SendCombinator<{C}>`",
    label = "its calls are not known to be `Send + 'static` futures",
    note = "wrap the concrete stack with `spawnable!(stack)` where its type is known",
    note = "leaves whose futures must be `Send` are built with `rule_fn` / `transform_fn`"
)]
pub trait SendCombinator<C>: Combinator<C> + Send + Sync + 'static {
    /// Runs the stack on `ctx`; the future owns what it needs, so it is
    /// `'static` and can be spawned. Stacks start work on the first poll;
    /// a bare `rule_fn` / `transform_fn` leaf calls its closure here, when
    /// `run_send` is called, and awaits the closure's future on the first
    /// poll.
    fn run_send(&self, ctx: C) -> impl Future<Output = (bool, C)> + Send + 'static;

    /// This combinator as a part of a stack that generic code builds, its
    /// calls going through [`run_send`](Self::run_send): a stack over the
    /// part keeps `Send` futures, so `spawnable!` accepts it inside a
    /// function generic over the part and the clock. See the
    /// [trait's docs](SendCombinator#one-policy-every-runtime-spawnable).
    ///
    /// Where the part's type is concrete, it is not needed.
    fn send_part(self) -> SendPart<Self>
    where
        Self: Sized,
    {
        SendPart { inner: self }
    }
}

/// A [`SendCombinator`] used as a part of a stack: its calls run through
/// [`run_send`](SendCombinator::run_send), whose future is known to be
/// `Send` even where the part's type is generic. Built by
/// [`SendCombinator::send_part`].
#[derive(Clone, Copy, Debug)]
pub struct SendPart<A> {
    inner: A,
}

impl<A> SendPart<A> {
    /// The wrapped combinator.
    pub fn get_ref(&self) -> &A {
        &self.inner
    }

    /// Unwraps the combinator.
    pub fn into_inner(self) -> A {
        self.inner
    }
}

impl<C, A: SendCombinator<C>> Combinator<C> for SendPart<A> {
    // Lazy, like every combinator's call: nothing runs before the first poll.
    #[allow(clippy::manual_async_fn)]
    fn run(&self, ctx: C) -> impl Future<Output = (bool, C)> {
        async move { self.inner.run_send(ctx).await }
    }
}

impl<C, A: SendCombinator<C>> SendCombinator<C> for SendPart<A> {
    fn run_send(&self, ctx: C) -> impl Future<Output = (bool, C)> + Send + 'static {
        self.inner.run_send(ctx)
    }
}

crate::impl_ops!([A] SendPart<A>);

/// A stack made spawnable by [`spawnable!`](crate::spawnable!): the
/// combinator in an [`Arc`] and the function that runs it.
///
/// Each call clones the `Arc` (one atomic increment); nothing is boxed.
pub struct Spawnable<T, F> {
    inner: Arc<T>,
    run: F,
}

impl<T, F> Spawnable<T, F> {
    /// Used by [`spawnable!`](crate::spawnable!), which writes `run`.
    #[doc(hidden)]
    pub fn __new<C, Fut>(inner: T, run: F) -> Self
    where
        F: Fn(Arc<T>, C) -> Fut,
        Fut: Future<Output = (bool, C)> + Send + 'static,
    {
        Spawnable {
            inner: Arc::new(inner),
            run,
        }
    }

    /// The wrapped combinator.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<C, T, F, Fut> Combinator<C> for Spawnable<T, F>
where
    F: Fn(Arc<T>, C) -> Fut,
    Fut: Future<Output = (bool, C)>,
{
    fn run(&self, ctx: C) -> impl Future<Output = (bool, C)> {
        (self.run)(Arc::clone(&self.inner), ctx)
    }
}

impl<C, T, F, Fut> SendCombinator<C> for Spawnable<T, F>
where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>, C) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (bool, C)> + Send + 'static,
{
    fn run_send(&self, ctx: C) -> impl Future<Output = (bool, C)> + Send + 'static {
        (self.run)(Arc::clone(&self.inner), ctx)
    }
}

impl<T: fmt::Debug, F> fmt::Debug for Spawnable<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Spawnable").field(&self.inner).finish()
    }
}

crate::impl_ops!([T, F] Spawnable<T, F>);

/// Makes a stack spawnable: its calls become `Send + 'static` futures
/// ([`run_send`](SendCombinator::run_send)), and it can be returned as
/// `impl SendCombinator<C>`.
///
/// Use it where the stack is built: on a concrete stack (the runtime's
/// clock, leaves whose futures are `Send`: [`rule_fn`](crate::rule_fn),
/// [`transform_fn`](crate::transform_fn)), or inside a function generic over
/// a [`SendClock`](crate::SendClock) whose generic parts went in with
/// [`.send_part()`](SendCombinator::send_part) (see
/// [`SendCombinator`](SendCombinator#one-policy-every-runtime-spawnable)).
/// The stack moves into an [`Arc`]; each call clones it.
///
/// # Which spawn idiom
///
/// Prefer `spawnable!` and `tokio::spawn(stack.run_send(ctx))`: the `Send`
/// check happens once, where the stack is built, and the stack can be
/// returned as `impl SendCombinator<C>` from a function. Putting a concrete
/// stack in an `Arc` yourself and spawning
/// `async move { stack.run(ctx).await }` (as in [`rule_fn`](crate::rule_fn)'s
/// example) works too, but only where the stack's type is known, and a
/// non-`Send` part is then reported at the `spawn`.
///
/// # Examples
///
/// ```
/// use core::future::Future;
/// use core::time::Duration;
/// use kompoz_core::{rule_fn, spawnable, ClockExt, ConfigError, ManualClock, SendCombinator};
///
/// fn build(clock: ManualClock) -> Result<impl SendCombinator<u32>, ConfigError> {
///     let check = rule_fn(|n: &u32| {
///         let n = *n;
///         async move { n > 0 }
///     });
///     let stack = clock.limited(clock.with_timeout(check, Duration::from_secs(1))?, 4)?;
///     Ok(spawnable!(stack))
/// }
///
/// fn spawn<F: Future + Send + 'static>(f: F) -> F { f } // `tokio::spawn`'s bounds
///
/// let stack = build(ManualClock::new())?;
/// let call = spawn(stack.run_send(7));
/// assert_eq!(futures::executor::block_on(call), (true, 7));
/// # Ok::<(), ConfigError>(())
/// ```
///
/// A part whose future is not `Send` is refused at the macro (here a leaf
/// holding an `Rc` across an await). In return position
/// (`-> impl SendCombinator<C>`) that is the only error; with the result in a
/// local binding that is later spawned, the compiler reports the `spawn`
/// too, often first.
///
/// ```compile_fail,E0277
/// use std::rc::Rc;
/// use kompoz_core::{rule_fn, spawnable, SendCombinator};
///
/// fn build() -> impl SendCombinator<u32> {
///     spawnable!(rule_fn(|n: &u32| {
///         let n = Rc::new(*n);
///         async move { *n > 0 }
///     }))
/// }
/// ```
#[macro_export]
macro_rules! spawnable {
    ($combinator:expr) => {
        $crate::spawnable::Spawnable::__new($combinator, |inner, ctx| async move {
            $crate::Combinator::run(&*inner, ctx).await
        })
    };
}
