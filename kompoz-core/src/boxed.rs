//! Type-erased combinators, for heterogeneous collections and struct fields.

use alloc::boxed::Box;
use core::fmt;
use core::future::Future;
use core::pin::Pin;

use crate::Combinator;

/// A boxed future of a combinator run, possibly not `Send`.
pub type LocalBoxRun<'a, C> = Pin<Box<dyn Future<Output = (bool, C)> + 'a>>;

/// A boxed, `Send` future of a combinator run.
pub type BoxRun<'a, C> = Pin<Box<dyn Future<Output = (bool, C)> + Send + 'a>>;

/// The dyn-compatible face of [`Combinator`]: every combinator implements it,
/// so `&dyn DynCombinator<C>` and `Box<dyn DynCombinator<C>>` work.
pub trait DynCombinator<C> {
    /// [`Combinator::run`], with the future boxed.
    fn run_boxed<'a>(&'a self, ctx: C) -> LocalBoxRun<'a, C>
    where
        C: 'a;
}

impl<C, T: Combinator<C>> DynCombinator<C> for T {
    fn run_boxed<'a>(&'a self, ctx: C) -> LocalBoxRun<'a, C>
    where
        C: 'a,
    {
        Box::pin(self.run(ctx))
    }
}

/// A type-erased combinator whose future need not be `Send`.
///
/// Built by [`Combinator::boxed_local`]. Each run allocates its future.
///
/// # Examples
///
/// ```
/// use kompoz_core::{rule, transform, Combinator, LocalBoxCombinator};
///
/// let steps: Vec<LocalBoxCombinator<'_, i32>> = vec![
///     rule(async |n: &i32| *n > 0).boxed_local(),
///     transform(async |n: i32| n * 10).boxed_local(),
/// ];
/// futures::executor::block_on(async {
///     let mut n = 4;
///     for step in &steps {
///         let (ok, next) = step.run(n).await;
///         assert!(ok);
///         n = next;
///     }
///     assert_eq!(n, 40);
/// });
/// ```
pub struct LocalBoxCombinator<'a, C> {
    inner: Box<dyn DynCombinator<C> + 'a>,
}

impl<'a, C> LocalBoxCombinator<'a, C> {
    /// Erases `combinator`'s type.
    pub fn new<T: Combinator<C> + 'a>(combinator: T) -> Self {
        LocalBoxCombinator {
            inner: Box::new(combinator),
        }
    }
}

impl<C> Combinator<C> for LocalBoxCombinator<'_, C> {
    fn run(&self, ctx: C) -> impl Future<Output = (bool, C)> {
        self.inner.run_boxed(ctx)
    }
}

impl<C> fmt::Debug for LocalBoxCombinator<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalBoxCombinator")
    }
}

/// A type-erased combinator that is `Send + Sync` and whose future is `Send`,
/// so it can be stored in structs and spawned on multi-threaded runtimes.
///
/// Build one with [`boxed!`](crate::boxed!) (any concrete combinator) or
/// [`BoxCombinator::from_fn`]. Each run allocates its future.
///
/// # Examples
///
/// ```
/// use kompoz_core::{boxed, rule, transform, BoxCombinator, Combinator};
///
/// struct Pipeline {
///     steps: Vec<BoxCombinator<u64>>,
/// }
///
/// let p = Pipeline {
///     steps: vec![
///         boxed!(rule(async |n: &u64| *n % 2 == 0)),
///         boxed!(transform(async |n: u64| n / 2)),
///     ],
/// };
/// let (ok, n) = futures::executor::block_on(p.steps[1].run(8));
/// assert!(ok && n == 4);
/// fn assert_send_sync<T: Send + Sync>(_: &T) {}
/// assert_send_sync(&p.steps);
/// ```
pub struct BoxCombinator<C> {
    run: Box<dyn Fn(C) -> BoxRun<'static, C> + Send + Sync>,
}

impl<C> BoxCombinator<C> {
    /// A combinator from a function that starts a run.
    ///
    /// ```
    /// use kompoz_core::{BoxCombinator, Combinator};
    ///
    /// let even = BoxCombinator::from_fn(|n: u32| async move { (n % 2 == 0, n) });
    /// assert_eq!(futures::executor::block_on(even.run(6)), (true, 6));
    /// ```
    pub fn from_fn<F, Fut>(start: F) -> Self
    where
        F: Fn(C) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = (bool, C)> + Send + 'static,
    {
        BoxCombinator {
            run: Box::new(move |ctx| Box::pin(start(ctx))),
        }
    }
}

impl<C> Combinator<C> for BoxCombinator<C> {
    fn run(&self, ctx: C) -> impl Future<Output = (bool, C)> {
        (self.run)(ctx)
    }
}

impl<C> fmt::Debug for BoxCombinator<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BoxCombinator")
    }
}

/// Boxes a combinator into a [`BoxCombinator`] (`Send + Sync`, `Send` future).
///
/// A macro rather than a function: whether a combinator's future is `Send`
/// can only be proven where its type is concrete, which is at the call site.
/// The combinator is shared behind an `Arc`; each run clones that `Arc` and
/// boxes the future.
///
/// See [`BoxCombinator`] for an example.
#[macro_export]
macro_rules! boxed {
    ($combinator:expr) => {{
        let inner = $crate::__private::Arc::new($combinator);
        $crate::BoxCombinator::from_fn(move |ctx| {
            let inner = $crate::__private::Arc::clone(&inner);
            async move { $crate::Combinator::run(&*inner, ctx).await }
        })
    }};
}

crate::impl_ops!(['a, C] LocalBoxCombinator<'a, C>);
crate::impl_ops!([C] BoxCombinator<C>);
