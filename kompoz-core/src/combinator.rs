//! The [`Combinator`] trait: one async step over a context.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::future::Future;

use crate::algebra::{And, IfElse, Or, Then};
use crate::boxed::LocalBoxCombinator;

/// An async step that runs on a context and says whether it passed.
///
/// `run` takes the context by value and hands it back with the verdict as
/// `(ok, ctx)`, exactly as kompoz's `run` returns `(ok, result)`. Combinators
/// compose with `&` ([`And`]), `|` ([`Or`]), `!` ([`Not`](crate::algebra::Not)),
/// `>>` ([`Then`]) and [`if_else`](Combinator::if_else); the same algebra is
/// available as methods for types outside this crate.
///
/// Only combinators that must hand back a context after the inner future was
/// dropped or re-run (timeouts, retries, parallel fan-out) require `C: Clone`.
/// Heavy contexts can be passed as an `Arc`.
///
/// # `Send`
///
/// A composed combinator's future is `Send` exactly when its parts' futures
/// are, so a combinator built from `Send + Sync` parts can be put in an `Arc`
/// and spawned on a multi-threaded runtime, while one over an `Rc` context
/// still runs on a single-threaded executor. Generic code that must spawn
/// should take a [`BoxCombinator`](crate::BoxCombinator) (see
/// [`boxed!`](crate::boxed!)).
///
/// # Examples
///
/// ```
/// use kompoz_core::{rule, transform, Combinator};
///
/// #[derive(Debug)]
/// struct User { age: u32, vip: bool, discount: u32 }
///
/// let adult = rule(async |u: &User| u.age >= 18);
/// let vip = rule(async |u: &User| u.vip);
/// let give_discount = transform(async |mut u: User| { u.discount = 10; u });
///
/// let check = (adult & vip) >> give_discount;
///
/// let (ok, user) = futures::executor::block_on(check.run(User { age: 30, vip: true, discount: 0 }));
/// assert!(ok);
/// assert_eq!(user.discount, 10);
/// ```
/// # Common mistakes
///
/// Where a combinator is expected (a `-> impl Combinator<C>` return type,
/// a bound of a generic function), the compiler names what went wrong. It
/// reports it there, not on the line that built the value: "`X` is not a
/// combinator over `C`" at a function's return type usually means a missing
/// `?` or `.build()?` somewhere in its body, on the line that made `X`.
/// A constructor that validates returns a `Result`, so a missing `?` is
/// refused:
///
/// ```compile_fail,E0277
/// use core::time::Duration;
/// use kompoz_core::{rule, Clock, ClockExt, Combinator};
///
/// fn policy<K: Clock>(clock: &K) -> impl Combinator<u32> {
///     // error: `Result<Timeout<..>, ConfigError>` is not a combinator over `u32`
///     //   = note: constructors that validate return `Result<_, ConfigError>`: add `?`
///     clock.with_timeout(rule(async |n: &u32| *n > 0), Duration::from_secs(1))
/// }
/// ```
///
/// and so is a builder that was not finished with `.build()?`:
///
/// ```compile_fail,E0277
/// use kompoz_core::{rule, Clock, ClockExt, Combinator};
///
/// fn policy<K: Clock>(clock: &K) -> impl Combinator<u32> {
///     // error: `CircuitBreakerBuilder<..>` is not a combinator over `u32`
///     //   = note: builders become combinators with `.build()?`
///     clock.circuit_breaker(rule(async |n: &u32| *n > 0)).failure_threshold(3)
/// }
/// ```
///
/// With both fixed, it compiles:
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::{rule, Clock, ClockExt, Combinator, ConfigError};
///
/// fn policy<K: Clock>(clock: &K) -> Result<impl Combinator<u32>, ConfigError> {
///     let timed = clock.with_timeout(rule(async |n: &u32| *n > 0), Duration::from_secs(1))?;
///     clock.circuit_breaker(timed).failure_threshold(3).build()
/// }
/// # policy(&kompoz_core::ManualClock::new())?;
/// # Ok::<(), ConfigError>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a combinator over `{C}`",
    label = "not a `Combinator<{C}>`",
    note = "reported where a combinator is required (often a `-> impl Combinator<C>` return type); the missing `?` or `.build()?` is usually on the line that built this value",
    note = "constructors that validate return `Result<_, ConfigError>`: add `?` (`with_timeout(inner, d)?`)",
    note = "builders become combinators with `.build()?` (`circuit_breaker(inner).failure_threshold(5).build()?`)",
    note = "leaves come from `rule(async |ctx: &C| -> bool)` and `transform(async |ctx: C| -> C)`"
)]
pub trait Combinator<C> {
    /// Runs the step on `ctx`; resolves to the verdict and the (possibly
    /// transformed) context.
    fn run(&self, ctx: C) -> impl Future<Output = (bool, C)>;

    /// `self & other`: runs `other` only if `self` passes. See [`And`].
    fn and<B>(self, other: B) -> And<(Self, B)>
    where
        Self: Sized,
    {
        And::new(self, other)
    }

    /// `self | other`: runs `other` only if `self` fails. See [`Or`].
    fn or<B>(self, other: B) -> Or<(Self, B)>
    where
        Self: Sized,
    {
        Or::new(self, other)
    }

    /// `self >> other`: runs both; `other`'s verdict stands. See [`Then`].
    fn then<B>(self, other: B) -> Then<(Self, B)>
    where
        Self: Sized,
    {
        Then::new(self, other)
    }

    /// Runs `then` if `self` passes, otherwise `otherwise`. See [`IfElse`].
    fn if_else<T, E>(self, then: T, otherwise: E) -> IfElse<Self, T, E>
    where
        Self: Sized,
    {
        IfElse::new(self, then, otherwise)
    }

    /// Erases the type into a [`LocalBoxCombinator`].
    fn boxed_local<'a>(self) -> LocalBoxCombinator<'a, C>
    where
        Self: Sized + 'a,
        C: 'a,
    {
        LocalBoxCombinator::new(self)
    }
}

impl<C, T: Combinator<C> + ?Sized> Combinator<C> for &T {
    fn run(&self, ctx: C) -> impl Future<Output = (bool, C)> {
        (**self).run(ctx)
    }
}

impl<C, T: Combinator<C> + ?Sized> Combinator<C> for Box<T> {
    fn run(&self, ctx: C) -> impl Future<Output = (bool, C)> {
        (**self).run(ctx)
    }
}

impl<C, T: Combinator<C> + ?Sized> Combinator<C> for Arc<T> {
    fn run(&self, ctx: C) -> impl Future<Output = (bool, C)> {
        (**self).run(ctx)
    }
}

/// `get_ref`, `get_mut` and `into_inner` for a wrapper whose inner
/// combinator is its `inner` field (tower's accessors), documented as "the
/// `$what` combinator".
macro_rules! inner_access {
    ($inner:ty, $what:literal) => {
        #[doc = concat!("The ", $what, " combinator.")]
        pub fn get_ref(&self) -> &$inner {
            &self.inner
        }

        #[doc = concat!("The ", $what, " combinator, mutably.")]
        pub fn get_mut(&mut self) -> &mut $inner {
            &mut self.inner
        }

        #[doc = concat!("The ", $what, " combinator, by value.")]
        pub fn into_inner(self) -> $inner {
            self.inner
        }
    };
}
pub(crate) use inner_access;
