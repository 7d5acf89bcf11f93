//! Leaves that check a context: [`rule`] and [`rule_args`].

use core::fmt;

use crate::Combinator;

/// A predicate over the context, built by [`rule`].
#[derive(Clone, Copy)]
pub struct Rule<F> {
    check: F,
}

/// A rule from an async predicate over `&C` (kompoz's `@async_rule`).
///
/// The context passes through unchanged; the verdict is the predicate's.
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
crate::impl_ops!([F, A] RuleWith<F, A>);
