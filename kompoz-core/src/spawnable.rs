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
/// such a stack cannot be spawned. Wrap the concrete stack with
/// [`spawnable!`](crate::spawnable!) where its type is still known, and
/// return `impl SendCombinator<C>`: the macro checks there, once, that the
/// call's future is `Send`, and names it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `SendCombinator<{C}>`",
    label = "its calls are not known to be `Send + 'static` futures",
    note = "wrap the concrete stack with `spawnable!(stack)` where its type is known",
    note = "leaves whose futures must be `Send` are built with `rule_fn` / `transform_fn`"
)]
pub trait SendCombinator<C>: Combinator<C> + Send + Sync {
    /// Runs the stack on `ctx`; the future owns a handle to the stack, so
    /// it is `'static` and can be spawned.
    fn run_send(&self, ctx: C) -> impl Future<Output = (bool, C)> + Send + 'static;
}

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
    T: Send + Sync,
    F: Fn(Arc<T>, C) -> Fut + Send + Sync,
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

/// Makes a concrete stack spawnable: its calls become `Send + 'static`
/// futures, and it can be returned as `impl SendCombinator<C>`.
///
/// Use it where the stack's type is concrete (the runtime's clock, leaves
/// whose futures are `Send`: [`rule_fn`](crate::rule_fn),
/// [`transform_fn`](crate::transform_fn)). The compiler checks there that
/// the call's future is `Send`.
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
/// A part whose future is not `Send` is refused where the macro is used,
/// not at the `spawn` far away (here a leaf holding an `Rc` across an
/// await):
///
/// ```compile_fail
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
