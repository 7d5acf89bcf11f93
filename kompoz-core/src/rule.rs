//! Leaves that check a context: [`rule`] and [`rule_args`].

use core::fmt;
use core::future::Future;

use crate::{Combinator, SendCombinator};

/// A predicate over the context, built by [`rule`].
#[derive(Clone, Copy)]
pub struct Rule<F> {
    check: F,
}

/// A rule from an async predicate over `&C` (kompoz's `@async_rule`).
///
/// The context passes through unchanged; the verdict is the predicate's.
///
/// The leaves' shapes: [`rule`] and [`rule_fn`] borrow the context
/// (`|c: &C|`); [`transform`](crate::transform) and
/// [`transform_fn`](crate::transform_fn) take it by value (`|c: C|`) and
/// return the new one. The closure's parameter needs no annotation where the
/// context's type is known from elsewhere (a `run(ctx)` call, a combinator
/// it is composed with, a function's `impl Combinator<u32>` parameter): see
/// the second example. To spawn the calls, use [`rule_fn`] (see
/// [`spawnable!`](crate::spawnable!)).
///
/// # Examples
///
/// ```
/// use kompoz_core::{rule, Combinator};
///
/// let positive = rule(async |n: &i32| *n > 0);
/// futures::executor::block_on(async {
///     assert_eq!(positive.run(5).await, (true, 5));
///     assert_eq!(positive.run(-1).await, (false, -1));
/// });
/// ```
///
/// Without annotations, the context's type comes from the call:
///
/// ```
/// use kompoz_core::{rule, rule_fn, Combinator};
///
/// let positive = rule(async |n| *n > 0);
/// let even = rule_fn(|n| {
///     let even = *n % 2 == 0;
///     async move { even }
/// });
/// let check = positive & even;
/// assert_eq!(futures::executor::block_on(check.run(4u32)), (true, 4));
/// ```
pub fn rule<C, F>(check: F) -> Rule<F>
where
    F: AsyncFn(&C) -> bool,
{
    Rule { check }
}

impl<C, F> Combinator<C> for Rule<F>
where
    F: AsyncFn(&C) -> bool,
{
    async fn run(&self, ctx: C) -> (bool, C) {
        let ok = (self.check)(&ctx).await;
        (ok, ctx)
    }
}

impl<F> fmt::Debug for Rule<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Rule")
    }
}

/// A predicate over the context from an ordinary closure, built by
/// [`rule_fn`].
#[derive(Clone, Copy)]
pub struct RuleFn<F> {
    check: F,
}

/// A rule from an ordinary closure that returns a future: `check(&ctx)`
/// reads what it needs from the context and returns a future that owns it.
///
/// [`rule`]'s async closures are the shortest to write; this form names its
/// future as a plain type, so a leaf that captures references (a
/// `&'static str`, a `&Client` of a longer-lived scope) keeps the call's
/// future `Send`, and the whole stack can be `tokio::spawn`ed, where an
/// async closure's future runs into "implementation of `Send` is not general
/// enough". The way to spawn is [`spawnable!`](crate::spawnable!) and
/// `run_send` (its docs say why that is preferred to the `Arc` below); a
/// `rule_fn` whose future is `Send + 'static` is itself a
/// [`SendCombinator`], the part a generic spawnable policy takes.
///
/// The closure's parameter needs no annotation where the context's type is
/// known from elsewhere: `rule_fn(|id| ..)` passed to a function taking
/// `impl Combinator<u32>` compiles. Annotated, it borrows: `|id: &u32|`.
///
/// # Examples
///
/// ```
/// use kompoz_core::{rule_fn, Combinator};
///
/// struct Request { path: String }
/// static ALLOWED: &str = "/api/";
///
/// let allowed = rule_fn(|r: &Request| {
///     let path = r.path.clone();
///     async move { path.starts_with(ALLOWED) }
/// });
/// let (ok, _) = futures::executor::block_on(allowed.run(Request { path: "/api/users".into() }));
/// assert!(ok);
/// ```
///
/// The `Send` story: a stack over a `rule_fn` leaf that captures a
/// reference can be moved to another thread and run there (here `spawn`
/// stands for `tokio::spawn`'s bounds)...
///
/// ```
/// use core::future::Future;
/// use std::sync::Arc;
/// use std::time::Duration;
/// use kompoz_core::{rule_fn, ClockExt, Combinator, ManualClock};
///
/// fn spawn<F: Future + Send + 'static>(_: F) {}
///
/// let service: &'static str = "api";
/// let check = rule_fn(move |n: &u32| {
///     let n = *n;
///     async move { service.len() as u32 > n }
/// });
/// let clock = ManualClock::new();
/// let stack = Arc::new(clock.limited(clock.with_timeout(check, Duration::from_secs(1))?, 4)?);
/// spawn(async move { stack.run(1).await });
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
///
/// ...where the same leaf as an async closure cannot (the compiler says
/// "implementation of `Send` is not general enough"):
///
/// ```compile_fail
/// use core::future::Future;
/// use std::sync::Arc;
/// use std::time::Duration;
/// use kompoz_core::{rule, ClockExt, Combinator, ManualClock};
///
/// fn spawn<F: Future + Send + 'static>(_: F) {}
///
/// let service: &'static str = "api";
/// let check = rule(async move |n: &u32| service.len() as u32 > *n);
/// let clock = ManualClock::new();
/// let stack = Arc::new(clock.limited(clock.with_timeout(check, Duration::from_secs(1))?, 4)?);
/// spawn(async move { stack.run(1).await });
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
pub fn rule_fn<C, F, Fut>(check: F) -> RuleFn<F>
where
    F: Fn(&C) -> Fut,
    Fut: Future<Output = bool>,
{
    RuleFn { check }
}

impl<C, F, Fut> Combinator<C> for RuleFn<F>
where
    F: Fn(&C) -> Fut,
    Fut: Future<Output = bool>,
{
    // An `async move` block: the future's auto traits are those of `Fut`
    // and `C`.
    #[allow(clippy::manual_async_fn)]
    fn run(&self, ctx: C) -> impl Future<Output = (bool, C)> {
        async move {
            let ok = (self.check)(&ctx).await;
            (ok, ctx)
        }
    }
}

/// A `rule_fn` leaf whose future is `Send + 'static` can be passed where a
/// [`SendCombinator`] is asked for (a part of a generic, spawnable policy).
/// `run_send` calls the closure at once and returns its future with the
/// context.
impl<C, F, Fut> SendCombinator<C> for RuleFn<F>
where
    C: Send + 'static,
    F: Fn(&C) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    fn run_send(&self, ctx: C) -> impl Future<Output = (bool, C)> + Send + 'static {
        let check = (self.check)(&ctx);
        async move { (check.await, ctx) }
    }
}

impl<F> fmt::Debug for RuleFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RuleFn")
    }
}

/// A family of rules with parameters, built by [`rule_args`] (kompoz's `@rule_args`).
#[derive(Clone, Copy)]
pub struct RuleArgs<F> {
    check: F,
}

/// A parameterised rule: `check(ctx, args)`; [`RuleArgs::with`] binds the
/// arguments and gives a combinator.
///
/// # Examples
///
/// ```
/// use kompoz_core::{rule_args, Combinator};
///
/// struct User { age: u32 }
///
/// let older_than = rule_args(async |u: &User, min: &u32| u.age > *min);
/// let adult = older_than.with(17);
/// let senior = older_than.with(64);
///
/// futures::executor::block_on(async {
///     assert!(adult.run(User { age: 30 }).await.0);
///     assert!(!senior.run(User { age: 30 }).await.0);
/// });
/// ```
pub fn rule_args<C, A, F>(check: F) -> RuleArgs<F>
where
    F: AsyncFn(&C, &A) -> bool,
{
    RuleArgs { check }
}

impl<F: Clone> RuleArgs<F> {
    /// The rule with `args` bound.
    pub fn with<A>(&self, args: A) -> RuleWith<F, A> {
        RuleWith {
            check: self.check.clone(),
            args,
        }
    }
}

impl<F> fmt::Debug for RuleArgs<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RuleArgs")
    }
}

/// A parameterised rule with its arguments bound; see [`rule_args`].
#[derive(Clone, Copy)]
pub struct RuleWith<F, A> {
    check: F,
    args: A,
}

impl<F, A> RuleWith<F, A> {
    /// The bound arguments.
    pub fn args(&self) -> &A {
        &self.args
    }
}

impl<C, A, F> Combinator<C> for RuleWith<F, A>
where
    F: AsyncFn(&C, &A) -> bool,
{
    async fn run(&self, ctx: C) -> (bool, C) {
        let ok = (self.check)(&ctx, &self.args).await;
        (ok, ctx)
    }
}

impl<F, A: fmt::Debug> fmt::Debug for RuleWith<F, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleWith")
            .field("args", &self.args)
            .finish()
    }
}

crate::impl_ops!([F] Rule<F>);
crate::impl_ops!([F] RuleFn<F>);
crate::impl_ops!([F, A] RuleWith<F, A>);
