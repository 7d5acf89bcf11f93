//! Composition: `&`, `|`, `!`, `>>` and if/else, with kompoz's semantics.
//!
//! Each operator builds a small struct; its future runs the parts in turn on
//! the context threaded through them, so no step allocates. Operators are
//! implemented for every combinator type of this crate (and for a user's own
//! types with [`impl_ops!`](crate::impl_ops!)); the same shapes are available
//! as methods on [`Combinator`].

use crate::Combinator;

/// `a & b & …`: passes if every part passes. Parts run in order on the
/// context threaded through them; the first failure stops the chain (the
/// parts after it never run).
///
/// A chain is flat: `a & b & c` is `And<(A, B, C)>`, not `And<(And<(A, B)>, C)>`,
/// so its future is one state machine over up to 32 parts, however long the
/// chain is written. Past 32 parts a new level starts, so chains of any
/// length compile within the compiler's default recursion limit.
///
/// # Examples
///
/// ```
/// use kompoz_core::{rule, Combinator, algebra::And};
///
/// let all: And<(_, _, _)> =
///     rule(async |n: &i32| *n > 0) & rule(async |n: &i32| *n < 10) & rule(async |n: &i32| n % 2 == 1);
/// futures::executor::block_on(async {
///     assert!(all.run(5).await.0);
///     assert!(!all.run(50).await.0);
/// });
/// ```
#[derive(Clone, Copy, Debug)]
pub struct And<T> {
    parts: T,
}

impl<A, B> And<(A, B)> {
    /// `left & right`.
    pub fn new(left: A, right: B) -> Self {
        And {
            parts: (left, right),
        }
    }
}

impl<T> And<T> {
    /// The parts, as a tuple.
    pub fn parts(&self) -> &T {
        &self.parts
    }

    /// The parts, as a tuple, by value.
    pub fn into_parts(self) -> T {
        self.parts
    }
}

/// `a | b | …`: passes if any part passes. Parts run in order on the context
/// threaded through them; the first success stops the chain. Flat, like
/// [`And`].
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
pub struct Or<T> {
    parts: T,
}

impl<A, B> Or<(A, B)> {
    /// `left | right`.
    pub fn new(left: A, right: B) -> Self {
        Or {
            parts: (left, right),
        }
    }
}

impl<T> Or<T> {
    /// The parts, as a tuple.
    pub fn parts(&self) -> &T {
        &self.parts
    }

    /// The parts, as a tuple, by value.
    pub fn into_parts(self) -> T {
        self.parts
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
    async fn run(&self, ctx: C) -> (bool, C) {
        let (ok, ctx) = self.inner.run(ctx).await;
        (!ok, ctx)
    }
}

/// `a >> b >> …`: runs every part in order on the context threaded through
/// them, whatever the verdicts; the last part's verdict stands. Flat, like
/// [`And`].
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
pub struct Then<T> {
    parts: T,
}

impl<A, B> Then<(A, B)> {
    /// `first >> second`.
    pub fn new(first: A, second: B) -> Self {
        Then {
            parts: (first, second),
        }
    }
}

impl<T> Then<T> {
    /// The parts, as a tuple.
    pub fn parts(&self) -> &T {
        &self.parts
    }

    /// The parts, as a tuple, by value.
    pub fn into_parts(self) -> T {
        self.parts
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
    async fn run(&self, ctx: C) -> (bool, C) {
        let (ok, ctx) = self.cond.run(ctx).await;
        if ok {
            self.then.run(ctx).await
        } else {
            self.otherwise.run(ctx).await
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
        $crate::impl_ops!(@ops [] $ty; bitand bitor shr not);
    };
    ([$($gen:tt)+] $ty:ty) => {
        $crate::impl_ops!(@ops [$($gen)+ ,] $ty; bitand bitor shr not);
    };
    (@ops $gens:tt $ty:ty; $($op:ident)*) => {
        $( $crate::impl_ops!(@$op $gens $ty); )*
    };
    (@bitand [$($gen:tt)*] $ty:ty) => {
        impl<$($gen)* __Rhs> ::core::ops::BitAnd<__Rhs> for $ty {
            type Output = $crate::algebra::And<(Self, __Rhs)>;
            fn bitand(self, rhs: __Rhs) -> Self::Output {
                $crate::algebra::And::new(self, rhs)
            }
        }
    };
    (@bitor [$($gen:tt)*] $ty:ty) => {
        impl<$($gen)* __Rhs> ::core::ops::BitOr<__Rhs> for $ty {
            type Output = $crate::algebra::Or<(Self, __Rhs)>;
            fn bitor(self, rhs: __Rhs) -> Self::Output {
                $crate::algebra::Or::new(self, rhs)
            }
        }
    };
    (@shr [$($gen:tt)*] $ty:ty) => {
        impl<$($gen)* __Rhs> ::core::ops::Shr<__Rhs> for $ty {
            type Output = $crate::algebra::Then<(Self, __Rhs)>;
            fn shr(self, rhs: __Rhs) -> Self::Output {
                $crate::algebra::Then::new(self, rhs)
            }
        }
    };
    (@not [$($gen:tt)*] $ty:ty) => {
        impl<$($gen)*> ::core::ops::Not for $ty {
            type Output = $crate::algebra::Not<Self>;
            fn not(self) -> Self::Output {
                $crate::algebra::Not::new(self)
            }
        }
    };
}

/// Implements, for every tuple arity from 2 to 32, the chains' `Combinator`
/// impls and the operator that appends to a chain of the same kind.
macro_rules! chains {
    // Walks the list of type names, growing the tuple by one each step.
    (@walk [$($done:ident $idx:tt)*] [$next:ident $nidx:tt $($rest:tt)*]) => {
        chains!(@arity $($done $idx)* $next $nidx);
        chains!(@append [$($done $idx)*] $next $nidx);
        chains!(@walk [$($done $idx)* $next $nidx] [$($rest)*]);
    };
    (@walk [$($done:ident $idx:tt)*] []) => {
        chains!(@nest $($done $idx)*);
    };
    // `Combinator` for chains of this arity.
    (@arity $first:ident $fidx:tt $($t:ident $idx:tt)+) => {
        impl<C, $first: Combinator<C>, $($t: Combinator<C>),+> Combinator<C> for And<($first, $($t,)+)> {
            async fn run(&self, ctx: C) -> (bool, C) {
                let (ok, ctx) = self.parts.$fidx.run(ctx).await;
                if !ok {
                    return (false, ctx);
                }
                $(
                    let (ok, ctx) = self.parts.$idx.run(ctx).await;
                    if !ok {
                        return (false, ctx);
                    }
                )+
                (true, ctx)
            }
        }
        impl<C, $first: Combinator<C>, $($t: Combinator<C>),+> Combinator<C> for Or<($first, $($t,)+)> {
            async fn run(&self, ctx: C) -> (bool, C) {
                let (ok, ctx) = self.parts.$fidx.run(ctx).await;
                if ok {
                    return (true, ctx);
                }
                $(
                    let (ok, ctx) = self.parts.$idx.run(ctx).await;
                    if ok {
                        return (true, ctx);
                    }
                )+
                (false, ctx)
            }
        }
        impl<C, $first: Combinator<C>, $($t: Combinator<C>),+> Combinator<C> for Then<($first, $($t,)+)> {
            async fn run(&self, ctx: C) -> (bool, C) {
                let (ok, ctx) = self.parts.$fidx.run(ctx).await;
                $(
                    let (ok, ctx) = {
                        let _ = ok;
                        self.parts.$idx.run(ctx).await
                    };
                )+
                (ok, ctx)
            }
        }
        crate::impl_ops!(@ops [$first, $($t,)+] And<($first, $($t,)+)>; bitor shr not);
        crate::impl_ops!(@ops [$first, $($t,)+] Or<($first, $($t,)+)>; bitand shr not);
        crate::impl_ops!(@ops [$first, $($t,)+] Then<($first, $($t,)+)>; bitand bitor not);
    };
    (@arity $first:ident $fidx:tt) => {};
    // `chain op rhs` appends when the chain is below the maximum.
    (@append [$($t:ident $idx:tt)*] $next:ident $nidx:tt) => {
        chains!(@append_op [$($t $idx)*] And BitAnd bitand);
        chains!(@append_op [$($t $idx)*] Or BitOr bitor);
        chains!(@append_op [$($t $idx)*] Then Shr shr);
    };
    (@append_op [] $kind:ident $op:ident $method:ident) => {};
    (@append_op [$first:ident $fidx:tt] $kind:ident $op:ident $method:ident) => {};
    (@append_op [$($t:ident $idx:tt)+] $kind:ident $op:ident $method:ident) => {
        impl<$($t,)+ __Rhs> ::core::ops::$op<__Rhs> for $kind<($($t,)+)> {
            type Output = $kind<($($t,)+ __Rhs)>;
            fn $method(self, rhs: __Rhs) -> Self::Output {
                $kind {
                    parts: ($(self.parts.$idx,)+ rhs),
                }
            }
        }
    };
    // A full chain starts a new level: `full op rhs` is `(full, rhs)`.
    (@nest $($t:ident $idx:tt)+) => {
        impl<$($t,)+ __Rhs> ::core::ops::BitAnd<__Rhs> for And<($($t,)+)> {
            type Output = And<(Self, __Rhs)>;
            fn bitand(self, rhs: __Rhs) -> Self::Output {
                And::new(self, rhs)
            }
        }
        impl<$($t,)+ __Rhs> ::core::ops::BitOr<__Rhs> for Or<($($t,)+)> {
            type Output = Or<(Self, __Rhs)>;
            fn bitor(self, rhs: __Rhs) -> Self::Output {
                Or::new(self, rhs)
            }
        }
        impl<$($t,)+ __Rhs> ::core::ops::Shr<__Rhs> for Then<($($t,)+)> {
            type Output = Then<(Self, __Rhs)>;
            fn shr(self, rhs: __Rhs) -> Self::Output {
                Then::new(self, rhs)
            }
        }
    };
}

chains!(@walk [] [
    T0 0 T1 1 T2 2 T3 3 T4 4 T5 5 T6 6 T7 7 T8 8 T9 9 T10 10 T11 11 T12 12 T13 13 T14 14 T15 15
    T16 16 T17 17 T18 18 T19 19 T20 20 T21 21 T22 22 T23 23 T24 24 T25 25 T26 26 T27 27 T28 28
    T29 29 T30 30 T31 31
]);

crate::impl_ops!([A] Not<A>);
crate::impl_ops!([Cond, T, E] IfElse<Cond, T, E>);
