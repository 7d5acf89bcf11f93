//! Leaves that change a context: [`transform`] and [`try_transform`].

use core::fmt;
use core::future::Future;

use crate::{Combinator, SendCombinator};

/// A context transformation, built by [`transform`]. Always passes.
#[derive(Clone, Copy)]
pub struct Transform<F> {
    map: F,
}

/// A combinator from an async function `C -> C` (kompoz's `@async_transform`).
///
/// A transform takes the context by value and returns the new one, where
/// [`rule`](crate::rule) and [`rule_fn`](crate::rule_fn) borrow it:
/// `transform(async |n: u32| n * 10)`, not `|n: &u32|`. The annotation is
/// optional where the context's type is known from elsewhere. For spawned
/// calls use [`transform_fn`].
///
/// # Examples
///
/// ```
/// use kompoz_core::{transform, Combinator};
///
/// let double = transform(async |n: i32| n * 2);
/// assert_eq!(futures::executor::block_on(double.run(21)), (true, 42));
/// ```
///
/// Written with a borrowed context, the closure is read as `&u32 -> &u32`,
/// and rustc reports its body: "mismatched types: expected `&u32`, found
/// `u32`" (followed by a hint about pinning async blocks, which does not
/// apply). The fix is to take the context by value:
///
/// ```compile_fail,E0308
/// use kompoz_core::{transform, Combinator};
///
/// let times_ten = transform(async |n: &u32| *n * 10);
/// # let _ = futures::executor::block_on(times_ten.run(&2));
/// ```
pub fn transform<C, F>(map: F) -> Transform<F>
where
    F: AsyncFn(C) -> C,
{
    Transform { map }
}

impl<C, F> Combinator<C> for Transform<F>
where
    F: AsyncFn(C) -> C,
{
    async fn run(&self, ctx: C) -> (bool, C) {
        (true, (self.map)(ctx).await)
    }
}

impl<F> fmt::Debug for Transform<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Transform")
    }
}

/// A context transformation from an ordinary closure, built by
/// [`transform_fn`]. Always passes.
#[derive(Clone, Copy)]
pub struct TransformFn<F> {
    map: F,
}

/// A transform from an ordinary closure `C -> impl Future<Output = C>`.
///
/// As [`rule_fn`](crate::rule_fn) is to [`rule`](crate::rule): the future is
/// a plain type, so captured references keep the call's future `Send`; one
/// whose future is `Send + 'static` is a [`SendCombinator`] (see
/// [`spawnable!`](crate::spawnable!) for spawning).
///
/// # Examples
///
/// ```
/// use kompoz_core::{transform_fn, Combinator};
///
/// static SUFFIX: &str = ".json";
/// let with_suffix = transform_fn(|path: String| async move { path + SUFFIX });
/// let (ok, path) = futures::executor::block_on(with_suffix.run("users".to_string()));
/// assert!(ok);
/// assert_eq!(path, "users.json");
/// ```
pub fn transform_fn<C, F, Fut>(map: F) -> TransformFn<F>
where
    F: Fn(C) -> Fut,
    Fut: Future<Output = C>,
{
    TransformFn { map }
}

impl<C, F, Fut> Combinator<C> for TransformFn<F>
where
    F: Fn(C) -> Fut,
    Fut: Future<Output = C>,
{
    // An `async move` block: the future's auto traits are those of `Fut`.
    #[allow(clippy::manual_async_fn)]
    fn run(&self, ctx: C) -> impl Future<Output = (bool, C)> {
        async move { (true, (self.map)(ctx).await) }
    }
}

/// A `transform_fn` leaf whose future is `Send + 'static` can be passed
/// where a [`SendCombinator`] is asked for. `run_send` calls the closure at
/// once and returns its future.
impl<C, F, Fut> SendCombinator<C> for TransformFn<F>
where
    C: Send + 'static,
    F: Fn(C) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = C> + Send + 'static,
{
    fn run_send(&self, ctx: C) -> impl Future<Output = (bool, C)> + Send + 'static {
        let map = (self.map)(ctx);
        async move { (true, map.await) }
    }
}

impl<F> fmt::Debug for TransformFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TransformFn")
    }
}

/// A fallible transformation, built by [`try_transform`].
#[derive(Clone, Copy)]
pub struct TryTransform<F, H = ()> {
    update: F,
    on_error: H,
}

/// A combinator from an async, fallible update of the context in place.
///
/// `Ok(())` passes; `Err(e)` fails the call, which returns `(false, ctx)`.
/// Where kompoz keeps a shared `last_error` (which races when one transform
/// serves many tasks), the error here belongs to the call that raised it:
/// [`TryTransform::try_run`] returns it, and [`TryTransform::on_error`] hands
/// it to a hook when the transform runs deep inside a composed combinator.
///
/// The update receives `&mut C` so that the context is never lost on error
/// and no clone is needed; what the update changed before failing stays
/// changed (as with kompoz's mutable contexts).
///
/// # Examples
///
/// ```
/// use kompoz_core::{try_transform, Combinator};
///
/// let parse = try_transform(async |s: &mut String| -> Result<(), core::num::ParseIntError> {
///     let n: i64 = s.trim().parse()?;
///     *s = (n * 2).to_string();
///     Ok(())
/// });
///
/// futures::executor::block_on(async {
///     assert_eq!(parse.run("21".to_string()).await, (true, "42".to_string()));
///     let (result, ctx) = parse.try_run("x".to_string()).await;
///     assert!(result.is_err());
///     assert_eq!(ctx, "x");
/// });
/// ```
pub fn try_transform<C, E, F>(update: F) -> TryTransform<F>
where
    F: AsyncFn(&mut C) -> Result<(), E>,
{
    TryTransform {
        update,
        on_error: (),
    }
}

impl<F> TryTransform<F> {
    /// Calls `hook(&error, &ctx)` for every failed call, in the task that ran it.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use kompoz_core::{try_transform, Combinator};
    ///
    /// static ERRORS: AtomicUsize = AtomicUsize::new(0);
    /// let t = try_transform(async |n: &mut u8| n.checked_add(200).map(|v| *n = v).ok_or("overflow"))
    ///     .on_error(|e: &&str, _ctx: &u8| {
    ///         assert_eq!(*e, "overflow");
    ///         ERRORS.fetch_add(1, Ordering::Relaxed);
    ///     });
    /// assert_eq!(futures::executor::block_on(t.run(100)), (false, 100));
    /// assert_eq!(ERRORS.load(Ordering::Relaxed), 1);
    /// ```
    pub fn on_error<H>(self, hook: H) -> TryTransform<F, H> {
        TryTransform {
            update: self.update,
            on_error: hook,
        }
    }
}

/// What a [`TryTransform`] does with an error after the call failed.
pub trait ErrorHook<E, C> {
    /// Observes the error of one failed call.
    fn on_error(&self, error: &E, ctx: &C);
}

impl<E, C> ErrorHook<E, C> for () {
    fn on_error(&self, _: &E, _: &C) {}
}

impl<E, C, H: Fn(&E, &C)> ErrorHook<E, C> for H {
    fn on_error(&self, error: &E, ctx: &C) {
        self(error, ctx)
    }
}

impl<F, H> TryTransform<F, H> {
    /// Runs the update and returns its own result with the context.
    pub async fn try_run<C, E>(&self, mut ctx: C) -> (Result<(), E>, C)
    where
        F: AsyncFn(&mut C) -> Result<(), E>,
        H: ErrorHook<E, C>,
    {
        let result = (self.update)(&mut ctx).await;
        if let Err(error) = &result {
            self.on_error.on_error(error, &ctx);
        }
        (result, ctx)
    }
}

impl<C, E, F, H> Combinator<C> for TryTransform<F, H>
where
    F: AsyncFn(&mut C) -> Result<(), E>,
    H: ErrorHook<E, C>,
{
    async fn run(&self, ctx: C) -> (bool, C) {
        let (result, ctx) = self.try_run(ctx).await;
        (result.is_ok(), ctx)
    }
}

impl<F, H> fmt::Debug for TryTransform<F, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TryTransform")
    }
}

crate::impl_ops!([F] Transform<F>);
crate::impl_ops!([F] TransformFn<F>);
crate::impl_ops!([F, H] TryTransform<F, H>);
