//! Parallel AND / OR: [`parallel_and`](fn@crate::parallel_and) and
//! [`parallel_or`](fn@crate::parallel_or) over many children of one type,
//! [`parallel_and!`](crate::parallel_and!) and
//! [`parallel_or!`](crate::parallel_or!) over a few of different types.
//!
//! The children run concurrently inside the one future the call returns: it
//! polls each child in turn, so nothing is spawned and the combinators work
//! on every executor and without `std`. Cancelling a child is dropping its
//! future.
//!
//! A call of the function forms allocates: one `Vec` and one boxed future per child (a child's
//! future is `!Unpin` and its type unnameable, and pinning it in place would
//! take `unsafe`). Every wake-up polls every child still running, so a wake
//! costs O(children); these combinators are meant for a handful of children,
//! as in kompoz.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::future::{Future, poll_fn};
use core::pin::Pin;
use core::task::Poll;

use crate::{Combinator, ConfigError};

mod tuple;
pub use tuple::{AllOf, AnyOf};

/// All children, run concurrently on clones of one context: passes if every
/// child passes. Built by [`parallel_and`].
///
/// The result carries the *original* context (the children's contexts are
/// dropped), as in kompoz. Without [`fail_fast`](Self::fail_fast) (the
/// default) every child runs to completion; with it, the first failure ends
/// the call and drops the children still running.
///
/// Children are of one type; for children of different types use
/// [`parallel_and!`](crate::parallel_and!) (flat, unboxed).
#[derive(Clone)]
pub struct ParallelAnd<T> {
    children: Vec<T>,
    fail_fast: bool,
}

/// Runs every child concurrently on a clone of the context; passes if all
/// pass. Returns `(all ok, original ctx)` (kompoz's `parallel_and`).
///
/// # Errors
///
/// An empty list of children.
///
/// # Examples
///
/// ```
/// use kompoz_core::{parallel_and, rule, Combinator};
///
/// let checks = parallel_and([
///     rule(async |n: &u32| *n > 0).boxed_local(),
///     rule(async |n: &u32| *n < 100).boxed_local(),
///     rule(async |n: &u32| n % 2 == 0).boxed_local(),
/// ])?
/// .fail_fast(true);
///
/// futures::executor::block_on(async {
///     assert_eq!(checks.run(42).await, (true, 42));
///     assert_eq!(checks.run(7).await, (false, 7));
/// });
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
pub fn parallel_and<T>(
    children: impl IntoIterator<Item = T>,
) -> Result<ParallelAnd<T>, ConfigError> {
    let children = non_empty(children)?;
    Ok(ParallelAnd {
        children,
        fail_fast: false,
    })
}

impl<T> ParallelAnd<T> {
    /// With `true`, the first child to fail ends the call at once and the
    /// others are dropped (cancelled). Default `false`: every child runs to
    /// completion.
    pub fn fail_fast(mut self, fail_fast: bool) -> Self {
        self.fail_fast = fail_fast;
        self
    }

    /// The children.
    pub fn children(&self) -> &[T] {
        &self.children
    }

    /// The children, by value.
    pub fn into_children(self) -> Vec<T> {
        self.children
    }
}

impl<C: Clone, T: Combinator<C>> Combinator<C> for ParallelAnd<T> {
    async fn run(&self, ctx: C) -> (bool, C) {
        // The closure owns the children and the verdict: nothing of this
        // future's own state is borrowed across the await.
        let mut running = start(&self.children, &ctx);
        let mut all_ok = true;
        let fail_fast = self.fail_fast;
        let all_ok = poll_fn(move |cx| {
            let mut pending = false;
            for slot in running.iter_mut() {
                let Some(child) = slot else { continue };
                match child.as_mut().poll(cx) {
                    Poll::Ready((ok, _)) => {
                        *slot = None;
                        if !ok {
                            all_ok = false;
                            if fail_fast {
                                return Poll::Ready(false);
                            }
                        }
                    }
                    Poll::Pending => pending = true,
                }
            }
            if pending {
                Poll::Pending
            } else {
                Poll::Ready(all_ok)
            }
        })
        // The children still running (only after a fail-fast) are cancelled
        // with the closure, here, before the verdict is handed back.
        .await;
        (all_ok, ctx)
    }
}

/// Children run concurrently on clones of one context: passes as soon as one
/// passes. Built by [`parallel_or`].
///
/// On success the result carries the context of the first child that
/// passed (the winner's, as a sequential `|` would); when all fail, the
/// *original* context. With [`cancel_on_success`](Self::cancel_on_success)
/// (the default) the other children are dropped when one passes; without it
/// they run to completion before the call returns, and their verdicts no
/// longer matter.
///
/// Children are of one type; for children of different types use
/// [`parallel_or!`](crate::parallel_or!) (flat, unboxed).
#[derive(Clone)]
pub struct ParallelOr<T> {
    children: Vec<T>,
    cancel_on_success: bool,
}

/// Runs every child concurrently on a clone of the context; passes at the
/// first child that passes (kompoz's `parallel_or`). Returns `(true, winner's
/// ctx)`, or `(false, original ctx)` when all fail.
///
/// # Errors
///
/// An empty list of children.
///
/// # Examples
///
/// ```
/// use kompoz_core::{parallel_or, transform, rule, Combinator};
///
/// // Ask three mirrors; the first that has the item wins.
/// let mirror = |id: u32| transform(async move |(item, _): (u32, u32)| (item, id))
///     >> rule(async move |(item, _): &(u32, u32)| item % id == 0);
/// let any = parallel_or([mirror(2), mirror(3), mirror(5)])?;
///
/// futures::executor::block_on(async {
///     assert_eq!(any.run((9, 0)).await, (true, (9, 3)));
///     assert_eq!(any.run((7, 0)).await, (false, (7, 0)));
/// });
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
pub fn parallel_or<T>(children: impl IntoIterator<Item = T>) -> Result<ParallelOr<T>, ConfigError> {
    let children = non_empty(children)?;
    Ok(ParallelOr {
        children,
        cancel_on_success: true,
    })
}

impl<T> ParallelOr<T> {
    /// With `true` (the default), the other children are dropped (cancelled)
    /// as soon as one passes; with `false` they run to completion before the
    /// call returns.
    pub fn cancel_on_success(mut self, cancel_on_success: bool) -> Self {
        self.cancel_on_success = cancel_on_success;
        self
    }

    /// The children.
    pub fn children(&self) -> &[T] {
        &self.children
    }

    /// The children, by value.
    pub fn into_children(self) -> Vec<T> {
        self.children
    }
}

impl<C: Clone, T: Combinator<C>> Combinator<C> for ParallelOr<T> {
    async fn run(&self, ctx: C) -> (bool, C) {
        let mut running = start(&self.children, &ctx);
        let mut winner = None;
        let cancel_on_success = self.cancel_on_success;
        let winner = poll_fn(move |cx| {
            let mut pending = false;
            for slot in running.iter_mut() {
                let Some(child) = slot else { continue };
                match child.as_mut().poll(cx) {
                    Poll::Ready((ok, child_ctx)) => {
                        *slot = None;
                        if ok && winner.is_none() {
                            winner = Some(child_ctx);
                            if cancel_on_success {
                                return Poll::Ready(winner.take());
                            }
                        }
                    }
                    Poll::Pending => pending = true,
                }
            }
            if pending {
                Poll::Pending
            } else {
                Poll::Ready(winner.take())
            }
        })
        .await;
        match winner {
            Some(winner) => (true, winner),
            None => (false, ctx),
        }
    }
}

/// One boxed, pinned future per child, each on its own clone of `ctx`;
/// `None` once a child has finished (or been cancelled).
#[allow(clippy::type_complexity)]
fn start<'a, C: Clone, T: Combinator<C>>(
    children: &'a [T],
    ctx: &C,
) -> Vec<Option<Pin<Box<impl Future<Output = (bool, C)> + use<'a, C, T>>>>> {
    children
        .iter()
        .map(|child| Some(Box::pin(child.run(ctx.clone()))))
        .collect()
}

fn non_empty<T>(children: impl IntoIterator<Item = T>) -> Result<Vec<T>, ConfigError> {
    let children: Vec<T> = children.into_iter().collect();
    if children.is_empty() {
        return Err(ConfigError::invalid(
            "children",
            [(); 0],
            "at least one child",
        ));
    }
    Ok(children)
}

impl<T> fmt::Debug for ParallelAnd<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParallelAnd")
            .field("children", &self.children.len())
            .field("fail_fast", &self.fail_fast)
            .finish()
    }
}

impl<T> fmt::Debug for ParallelOr<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParallelOr")
            .field("children", &self.children.len())
            .field("cancel_on_success", &self.cancel_on_success)
            .finish()
    }
}

crate::impl_ops!([T] ParallelAnd<T>);
crate::impl_ops!([T] ParallelOr<T>);
