//! The future of an admitted call: the inner combinator's future and the
//! drop guard that tells the breaker how the call ended.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use crate::{Clock, Combinator};

use super::permit::{Call, Stage};
use super::raw::{Shared, Ticket};
use super::{CircuitBreaker, FailurePredicate};

impl<I, K: Clock, P, H> CircuitBreaker<I, K, P, H> {
    /// Starts a call the breaker admitted with `ticket`.
    #[inline]
    pub(super) fn start<'a, C>(
        &'a self,
        shared: &'a Shared<K>,
        ticket: Ticket,
        ctx: C,
    ) -> Admitted<'a, impl Future<Output = (bool, C)>, K, P>
    where
        I: Combinator<C>,
    {
        // The guard owns the ticket before the inner `run` is called
        // (fields are evaluated in the order written, and one already
        // built is dropped if a later one panics): a `run` that panics
        // before returning its future counts as the call's failure.
        let mut admitted = Admitted {
            call: Call {
                shared,
                ticket,
                stage: Stage::Polling,
            },
            inner: self.inner.run(ctx),
            predicate: &self.predicate,
        };
        admitted.call.stage = Stage::Suspended;
        admitted
    }
}

pin_project_lite::pin_project! {
    /// An admitted call: the inner future and its drop guard, owned together
    /// (no borrow of the enclosing future's own state is held across an
    /// await, so the future is sound under Miri's aliasing models too).
    pub(super) struct Admitted<'a, F, K: Clock, P> {
        #[pin]
        inner: F,
        // Dropped after `inner`, so a cancelled inner future is gone before
        // the breaker hears of the cancellation.
        call: Call<&'a Shared<K>>,
        predicate: &'a P,
    }
}

impl<C, F, K, P> Future for Admitted<'_, F, K, P>
where
    F: Future<Output = (bool, C)>,
    K: Clock,
    P: FailurePredicate<C>,
{
    type Output = (bool, C);

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(bool, C)> {
        let this = self.project();
        // The stage tells a drop during the inner poll (the inner
        // combinator panicked, even while another task on this thread
        // unwinds) from a drop between polls (the call was cancelled).
        this.call.stage = Stage::Polling;
        let poll = this.inner.poll(cx);
        this.call.stage = Stage::Suspended;
        let Poll::Ready((ok, ctx)) = poll else {
            return Poll::Pending;
        };
        // A panicking predicate leaves the call `Suspended`: no outcome, a
        // probe's slot given back.
        let failure = this.predicate.is_failure(ok, &ctx);
        this.call.finish(failure);
        Poll::Ready((ok, ctx))
    }
}
