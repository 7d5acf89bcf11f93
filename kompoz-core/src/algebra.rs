//! Composition: `&`, `|`, `!`, `>>` and if/else, with kompoz's semantics.
//!
//! Each operator builds a small struct; its future runs the parts in turn on
//! the context threaded through them, so no step allocates. Operators are
//! implemented for every combinator type of this crate (and for a user's own
//! types with [`impl_ops!`](crate::impl_ops!)); the same shapes are available
//! as methods on [`Combinator`].

use core::future::Future;

use crate::Combinator;

/// `a & b`: passes if both pass. `b` runs only if `a` passed, on the
/// context `a` returned.
///
/// # Examples
///
/// ```
/// use kompoz_core::{rule, Combinator};
///
/// let both = rule(async |n: &i32| *n > 0) & rule(async |n: &i32| *n < 10);
/// futures::executor::block_on(async {
///     assert!(both.run(5).await.0);
///     assert!(!both.run(50).await.0);
/// });
/// ```
#[derive(Clone, Copy, Debug)]
pub struct And<A, B> {
    left: A,
    right: B,
}

impl<A, B> And<A, B> {
    /// `left & right`.
    pub fn new(left: A, right: B) -> Self {
        And { left, right }
    }
}

impl<C, A: Combinator<C>, B: Combinator<C>> Combinator<C> for And<A, B> {
    fn run(&self, ctx: C) -> impl Future<Output = (bool, C)> {
        async move {
            let (ok, ctx) = self.left.run(ctx).await;
            if !ok {
                return (false, ctx);
            }
            self.right.run(ctx).await
        }
    }
}

/// `a | b`: passes if either passes. `b` runs only if `a` failed, on the
/// context `a` returned.
///
/// # Examples
///
/// ```
/// use kompoz_core::{rule, Combinator};
///
/// let either = rule(async |n: &i32| *n < 0) | rule(async |n: &i32| *n > 10);
/// futures::executor::block_on(async {
///     assert!(either.run(-5).await.0);
///     assert!(!either.run(5).await.0);
/// });
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Or<A, B> {
    left: A,
    right: B,
}

impl<A, B> Or<A, B> {
    /// `left | right`.
    pub fn new(left: A, right: B) -> Self {
        Or { left, right }
    }
}

impl<C, A: Combinator<C>, B: Combinator<C>> Combinator<C> for Or<A, B> {
    fn run(&self, ctx: C) -> impl Future<Output = (bool, C)> {
        async move {
            let (ok, ctx) = self.left.run(ctx).await;
            if ok {
                return (true, ctx);
            }
            self.right.run(ctx).await
        }
    }
}

/// `!a`: inverts the verdict; the context passes through.
///
/// # Examples
///
/// ```
/// use kompoz_core::{rule, Combinator};
///
/// let not_zero = !rule(async |n: &i32| *n == 0);
/// futures::executor::block_on(async {
///     assert_eq!(not_zero.run(3).await, (true, 3));
/// });
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Not<A> {
    inner: A,
}

impl<A> Not<A> {
    /// `!inner`.
    pub fn new(inner: A) -> Self {
        Not { inner }
    }
}

/// `!inner` as a function, for types without the operator.
pub fn not<A>(inner: A) -> Not<A> {
    Not::new(inner)
}

impl<C, A: Combinator<C>> Combinator<C> for Not<A> {
    fn run(&self, ctx: C) -> impl Future<Output = (bool, C)> {
        async move {
            let (ok, ctx) = self.inner.run(ctx).await;
            (!ok, ctx)
        }
    }
}

/// `a >> b`: runs `a`, then `b` on the context `a` returned, whatever `a`'s
/// verdict; `b`'s verdict stands.
///
/// # Examples
///
/// ```
/// use kompoz_core::{rule, transform, Combinator};
///
/// let seq = rule(async |n: &i32| *n > 100) >> transform(async |n: i32| n + 1);
/// futures::executor::block_on(async {
///     assert_eq!(seq.run(1).await, (true, 2));
/// });
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Then<A, B> {
    first: A,
    second: B,
}

impl<A, B> Then<A, B> {
    /// `first >> second`.
    pub fn new(first: A, second: B) -> Self {
        Then { first, second }
    }
}

impl<C, A: Combinator<C>, B: Combinator<C>> Combinator<C> for Then<A, B> {
    fn run(&self, ctx: C) -> impl Future<Output = (bool, C)> {
        async move {
            let (_, ctx) = self.first.run(ctx).await;
            self.second.run(ctx).await
        }
    }
}

/// `cond.if_else(then, otherwise)`: runs `cond`, then exactly one branch on
/// the context `cond` returned; the branch's verdict stands.
///
/// # Examples
///
/// ```
/// use kompoz_core::{rule, transform, Combinator};
///
/// let clamp = rule(async |n: &i32| *n > 10)
///     .if_else(transform(async |_n: i32| 10), transform(async |n: i32| n));
/// futures::executor::block_on(async {
///     assert_eq!(clamp.run(42).await, (true, 10));
///     assert_eq!(clamp.run(7).await, (true, 7));
/// });
/// ```
#[derive(Clone, Copy, Debug)]
pub struct IfElse<Cond, T, E> {
    cond: Cond,
    then: T,
    otherwise: E,
}

impl<Cond, T, E> IfElse<Cond, T, E> {
    /// `if cond { then } else { otherwise }`.
    pub fn new(cond: Cond, then: T, otherwise: E) -> Self {
        IfElse {
            cond,
            then,
            otherwise,
        }
    }
}

impl<C, Cond, T, E> Combinator<C> for IfElse<Cond, T, E>
where
    Cond: Combinator<C>,
    T: Combinator<C>,
    E: Combinator<C>,
{
    fn run(&self, ctx: C) -> impl Future<Output = (bool, C)> {
        async move {
            let (ok, ctx) = self.cond.run(ctx).await;
            if ok {
                self.then.run(ctx).await
            } else {
                self.otherwise.run(ctx).await
            }
        }
    }
}

/// Implements `&`, `|`, `!` and `>>` for a combinator type.
///
/// Rust's orphan rule keeps this crate from implementing the operators for
/// every `T: Combinator<C>`, so each type opts in. Give the type's generic
/// parameters in brackets (lifetimes first), then the type.
///
/// # Examples
///
/// ```
/// use core::future::Future;
/// use kompoz_core::{impl_ops, rule, Combinator};
///
/// struct IsEven;
/// impl Combinator<u32> for IsEven {
///     fn run(&self, n: u32) -> impl Future<Output = (bool, u32)> {
///         async move { (n % 2 == 0, n) }
///     }
/// }
/// impl_ops!([] IsEven);
///
/// let check = IsEven & rule(async |n: &u32| *n > 2);
/// assert_eq!(futures::executor::block_on(check.run(4)), (true, 4));
/// ```
#[macro_export]
macro_rules! impl_ops {
    ([] $ty:ty) => {
        $crate::impl_ops!(@impl [] $ty);
    };
    ([$($gen:tt)+] $ty:ty) => {
        $crate::impl_ops!(@impl [$($gen)+ ,] $ty);
    };
    (@impl [$($gen:tt)*] $ty:ty) => {
        impl<$($gen)* __Rhs> ::core::ops::BitAnd<__Rhs> for $ty {
            type Output = $crate::And<Self, __Rhs>;
            fn bitand(self, rhs: __Rhs) -> Self::Output {
                $crate::And::new(self, rhs)
            }
        }
        impl<$($gen)* __Rhs> ::core::ops::BitOr<__Rhs> for $ty {
            type Output = $crate::Or<Self, __Rhs>;
            fn bitor(self, rhs: __Rhs) -> Self::Output {
                $crate::Or::new(self, rhs)
            }
        }
        impl<$($gen)* __Rhs> ::core::ops::Shr<__Rhs> for $ty {
            type Output = $crate::Then<Self, __Rhs>;
            fn shr(self, rhs: __Rhs) -> Self::Output {
                $crate::Then::new(self, rhs)
            }
        }
        impl<$($gen)*> ::core::ops::Not for $ty {
            type Output = $crate::Not<Self>;
            fn not(self) -> Self::Output {
                $crate::Not::new(self)
            }
        }
    };
}

crate::impl_ops!([A, B] And<A, B>);
crate::impl_ops!([A, B] Or<A, B>);
crate::impl_ops!([A] Not<A>);
crate::impl_ops!([A, B] Then<A, B>);
crate::impl_ops!([Cond, T, E] IfElse<Cond, T, E>);
