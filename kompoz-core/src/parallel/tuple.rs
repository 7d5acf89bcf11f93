//! Heterogeneous parallel AND / OR over tuples: [`AllOf`] and [`AnyOf`],
//! built by [`parallel_and!`](crate::parallel_and!) and
//! [`parallel_or!`](crate::parallel_or!).
//!
//! The children's futures sit unboxed in one pinned chain of nodes
//! (`Node<F0, Node<F1, .. End>>`), so a call allocates nothing and the
//! children may be of different types, as the algebra's flat chains.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use crate::Combinator;

/// All children of a tuple, run concurrently on clones of one context:
/// passes if every child passes. Built by
/// [`parallel_and!(a, b, ..)`](crate::parallel_and!).
///
/// The semantics are [`ParallelAnd`](super::ParallelAnd)'s (the original
/// context comes back; [`fail_fast`](Self::fail_fast) ends the call at the
/// first failure), for children of different types, without boxing. Up to
/// 12 children.
#[derive(Clone)]
pub struct AllOf<T> {
    children: T,
    fail_fast: bool,
}

/// Children of a tuple, run concurrently on clones of one context: passes
/// as soon as one passes. Built by [`parallel_or!(a, b, ..)`](crate::parallel_or!).
///
/// The semantics are [`ParallelOr`](super::ParallelOr)'s (the first winner's
/// context comes back, the original one when all fail;
/// [`cancel_on_success`](Self::cancel_on_success) by default), for children
/// of different types, without boxing. Up to 12 children.
#[derive(Clone)]
pub struct AnyOf<T> {
    children: T,
    cancel_on_success: bool,
}

impl<T> AllOf<T> {
    /// Used by [`parallel_and!`](crate::parallel_and!).
    #[doc(hidden)]
    pub fn __new(children: T) -> Self {
        AllOf {
            children,
            fail_fast: false,
        }
    }

    /// With `true`, the first child to fail ends the call at once and the
    /// others are dropped (cancelled). Default `false`.
    pub fn fail_fast(mut self, fail_fast: bool) -> Self {
        self.fail_fast = fail_fast;
        self
    }

    /// The children.
    pub fn children(&self) -> &T {
        &self.children
    }

    /// The children, by value.
    pub fn into_children(self) -> T {
        self.children
    }
}

impl<T> AnyOf<T> {
    /// Used by [`parallel_or!`](crate::parallel_or!).
    #[doc(hidden)]
    pub fn __new(children: T) -> Self {
        AnyOf {
            children,
            cancel_on_success: true,
        }
    }

    /// With `true` (the default), the other children are dropped
    /// (cancelled) as soon as one passes; with `false` they run to
    /// completion before the call returns.
    pub fn cancel_on_success(mut self, cancel_on_success: bool) -> Self {
        self.cancel_on_success = cancel_on_success;
        self
    }

    /// The children.
    pub fn children(&self) -> &T {
        &self.children
    }

    /// The children, by value.
    pub fn into_children(self) -> T {
        self.children
    }
}

/// What the children said so far, and whether the call may end.
struct Tally<C> {
    /// Parallel AND: a child failed. Parallel OR: unused.
    failed: bool,
    /// Parallel OR: the first winner's context.
    winner: Option<C>,
    /// End the call now (fail-fast failure, or a winner to cancel for).
    stop: bool,
    /// `true` for AND's fail-fast, OR's cancel-on-success.
    early: bool,
    /// `true` for OR.
    any: bool,
}

impl<C> Tally<C> {
    fn record(&mut self, ok: bool, ctx: C) {
        if self.any {
            if ok && self.winner.is_none() {
                self.winner = Some(ctx);
                self.stop = self.early;
            }
        } else if !ok {
            self.failed = true;
            self.stop = self.early;
        }
    }
}

/// A chain of running children.
trait Branches<C> {
    /// Polls every child still running, in order, until the tally says
    /// stop; `true` when none is left running.
    fn poll_all(self: Pin<&mut Self>, cx: &mut Context<'_>, tally: &mut Tally<C>) -> bool;
}

/// The end of a chain.
struct End;

impl<C> Branches<C> for End {
    fn poll_all(self: Pin<&mut Self>, _: &mut Context<'_>, _: &mut Tally<C>) -> bool {
        true
    }
}

pin_project_lite::pin_project! {
    /// One child's future, dropped (cancelled, or done) when it is `None`.
    struct Node<F, R> {
        #[pin]
        head: Option<F>,
        #[pin]
        rest: R,
    }
}

impl<C, F, R> Branches<C> for Node<F, R>
where
    F: Future<Output = (bool, C)>,
    R: Branches<C>,
{
    fn poll_all(self: Pin<&mut Self>, cx: &mut Context<'_>, tally: &mut Tally<C>) -> bool {
        let mut this = self.project();
        let mut finished = true;
        if let Some(child) = this.head.as_mut().as_pin_mut() {
            match child.poll(cx) {
                Poll::Ready((ok, ctx)) => {
                    this.head.set(None);
                    tally.record(ok, ctx);
                    if tally.stop {
                        return true;
                    }
                }
                Poll::Pending => finished = false,
            }
        }
        this.rest.poll_all(cx, tally) && finished
    }
}

pin_project_lite::pin_project! {
    /// The call's future: the chain and its tally, owned together (no
    /// borrow of the enclosing future's state across the await).
    struct Join<R, C> {
        #[pin]
        branches: R,
        tally: Option<Tally<C>>,
    }
}

impl<C, R: Branches<C>> Future for Join<R, C> {
    type Output = Tally<C>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Tally<C>> {
        let this = self.project();
        let Some(tally) = this.tally.as_mut() else {
            return Poll::Pending; // polled after completion: never ready again
        };
        if this.branches.poll_all(cx, tally) || tally.stop {
            Poll::Ready(this.tally.take().expect("checked above"))
        } else {
            Poll::Pending
        }
    }
}

fn join<C, R: Branches<C>>(branches: R, any: bool, early: bool) -> Join<R, C> {
    Join {
        branches,
        tally: Some(Tally {
            failed: false,
            winner: None,
            stop: false,
            early,
            any,
        }),
    }
}

/// `Node(children.i.run(ctx.clone()), ..)` for the listed indices.
macro_rules! chain {
    ($children:expr, $ctx:expr;) => { End };
    ($children:expr, $ctx:expr; $i:tt $($rest:tt)*) => {
        Node {
            head: Some($children.$i.run($ctx.clone())),
            rest: chain!($children, $ctx; $($rest)*),
        }
    };
}

macro_rules! tuples {
    (@walk [$($done:ident $didx:tt)*] []) => {};
    (@walk [$($done:ident $didx:tt)*] [$next:ident $nidx:tt $($rest:tt)*]) => {
        tuples!(@impl $($done $didx)* $next $nidx);
        tuples!(@walk [$($done $didx)* $next $nidx] [$($rest)*]);
    };
    (@impl $($t:ident $idx:tt)+) => {
        impl<C: Clone, $($t: Combinator<C>),+> Combinator<C> for AllOf<($($t,)+)> {
            async fn run(&self, ctx: C) -> (bool, C) {
                let tally = join(chain!(self.children, ctx; $($idx)+), false, self.fail_fast).await;
                (!tally.failed, ctx)
            }
        }
        impl<C: Clone, $($t: Combinator<C>),+> Combinator<C> for AnyOf<($($t,)+)> {
            async fn run(&self, ctx: C) -> (bool, C) {
                let tally = join(chain!(self.children, ctx; $($idx)+), true, self.cancel_on_success).await;
                match tally.winner {
                    Some(winner) => (true, winner),
                    None => (false, ctx),
                }
            }
        }
    };
}

tuples!(@walk [] [T0 0 T1 1 T2 2 T3 3 T4 4 T5 5 T6 6 T7 7 T8 8 T9 9 T10 10 T11 11]);

impl<T> fmt::Debug for AllOf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AllOf")
            .field("fail_fast", &self.fail_fast)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for AnyOf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyOf")
            .field("cancel_on_success", &self.cancel_on_success)
            .finish_non_exhaustive()
    }
}

crate::impl_ops!([T] AllOf<T>);
crate::impl_ops!([T] AnyOf<T>);

/// Runs children of different types concurrently on clones of the context;
/// passes if all pass (kompoz's `parallel_and(a, b, c)`). Flat and unboxed:
/// `parallel_and!(a, b, c)` is an [`AllOf`](crate::parallel::AllOf) over
/// `(A, B, C)`. For many children of one type, use the function
/// [`parallel_and`](fn@crate::parallel_and).
///
/// # Examples
///
/// ```
/// use kompoz_core::{parallel_and, rule, rule_fn, Combinator};
///
/// let checks = parallel_and!(
///     rule(async |n: &u32| *n > 0),
///     rule_fn(|n: &u32| { let even = n % 2 == 0; async move { even } }),
///     !rule(async |n: &u32| *n == 13),
/// )
/// .fail_fast(true);
///
/// futures::executor::block_on(async {
///     assert_eq!(checks.run(42).await, (true, 42));
///     assert_eq!(checks.run(7).await, (false, 7));
/// });
/// ```
#[macro_export]
macro_rules! parallel_and {
    ($($child:expr),+ $(,)?) => {
        $crate::parallel::AllOf::__new(($($child,)+))
    };
}

/// Runs children of different types concurrently on clones of the context;
/// passes at the first that passes, with its context (kompoz's
/// `parallel_or(a, b, c)`). Flat and unboxed: `parallel_or!(a, b, c)` is an
/// [`AnyOf`](crate::parallel::AnyOf) over `(A, B, C)`. For many children of
/// one type, use the function [`parallel_or`](fn@crate::parallel_or).
///
/// # Examples
///
/// ```
/// use kompoz_core::{parallel_or, rule, transform, Combinator};
///
/// let any = parallel_or!(
///     rule(async |n: &u32| *n == 1),
///     transform(async |n: u32| n * 10) >> rule(async |n: &u32| *n == 20),
/// );
///
/// futures::executor::block_on(async {
///     assert_eq!(any.run(2).await, (true, 20)); // the winner's context
///     assert_eq!(any.run(3).await, (false, 3)); // all failed: the original
/// });
/// ```
#[macro_export]
macro_rules! parallel_or {
    ($($child:expr),+ $(,)?) => {
        $crate::parallel::AnyOf::__new(($($child,)+))
    };
}
