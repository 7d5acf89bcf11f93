//! The futures that wait for a [`Semaphore`]'s permit in arrival order,
//! and the waiting logic they share.

use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use super::{ONE, OwnedSemaphorePermit, QUEUED, Semaphore, SemaphorePermit};
use crate::limiter::waiters::is_granted;
use crate::sync::Ordering;

/// Where a waiting future ([`Acquire`], [`AcquireOwned`]) stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Not polled yet.
    Start,
    /// Queued in this slot of the waiter list, with this ticket.
    Queued { index: usize, ticket: usize },
    /// Returned its permit.
    Done,
}

/// The waiting logic both acquire futures share: they differ only in how
/// they hold the semaphore.
#[derive(Debug)]
pub(super) struct Waiter {
    slot: Slot,
}

impl Waiter {
    pub(super) const fn new() -> Self {
        Waiter { slot: Slot::Start }
    }

    fn is_queued(&self) -> bool {
        matches!(self.slot, Slot::Queued { .. })
    }

    /// `Ready` once this waiter holds a permit of `semaphore` (which its
    /// future then wraps, without a step that could fail in between).
    fn poll_acquire(&mut self, semaphore: &Semaphore, cx: &mut Context<'_>) -> Poll<()> {
        match self.slot {
            Slot::Start => {
                if semaphore.try_take() {
                    self.slot = Slot::Done;
                    return Poll::Ready(());
                }
                let mut waiters = semaphore.waiters.lock();
                let mut state = semaphore.state.load(Ordering::Relaxed);
                loop {
                    if state & QUEUED != 0 {
                        break; // others are queued: line up behind them
                    }
                    let next = if state >= ONE {
                        state - ONE // a permit came free, nobody queued
                    } else {
                        QUEUED
                    };
                    match semaphore.state.compare_exchange_weak(
                        state,
                        next,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) if next == QUEUED => break,
                        Ok(_) => {
                            self.slot = Slot::Done;
                            return Poll::Ready(());
                        }
                        Err(actual) => state = actual,
                    }
                }
                let (index, ticket) = waiters.push(cx.waker().clone());
                self.slot = Slot::Queued { index, ticket };
                Poll::Pending
            }
            Slot::Queued { index, ticket } => {
                // Woken by a hand-off: the grant is visible without the lock.
                if is_granted(semaphore.granted.load(Ordering::Acquire), ticket) {
                    self.slot = Slot::Done;
                    return Poll::Ready(());
                }
                let mut waiters = semaphore.waiters.lock();
                // Under the lock `granted` cannot move: either the permit
                // came meanwhile or the slot is still ours.
                if is_granted(semaphore.granted.load(Ordering::Acquire), ticket) {
                    self.slot = Slot::Done;
                    return Poll::Ready(());
                }
                waiters.set_waker(index, cx.waker());
                Poll::Pending
            }
            // Polled after completion: the permit was already returned.
            Slot::Done => Poll::Pending,
        }
    }

    /// The waiting future is dropped: leave the queue, or pass on a permit
    /// handed to it that it never saw.
    fn leave(&self, semaphore: &Semaphore) {
        let Slot::Queued { index, ticket } = self.slot else {
            return;
        };
        let waker = {
            let mut waiters = semaphore.waiters.lock();
            if is_granted(semaphore.granted.load(Ordering::Acquire), ticket) {
                // Handed a permit we will never use: pass it on.
                semaphore.release_locked(&mut waiters)
            } else {
                waiters.cancel(index);
                if waiters.is_empty() {
                    semaphore.state.fetch_and(!QUEUED, Ordering::Release);
                }
                None
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The future returned by [`Semaphore::acquire`].
///
/// Dropping it before it completes leaves the queue; if a permit was handed
/// to it in the meantime, the permit goes to the next waiter.
#[must_use = "futures do nothing unless polled"]
pub struct Acquire<'a> {
    pub(super) semaphore: &'a Semaphore,
    pub(super) waiter: Waiter,
}

impl<'a> Future for Acquire<'a> {
    type Output = SemaphorePermit<'a>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<SemaphorePermit<'a>> {
        let this = self.get_mut();
        let semaphore = this.semaphore;
        this.waiter
            .poll_acquire(semaphore, cx)
            .map(|()| SemaphorePermit { semaphore })
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        self.waiter.leave(self.semaphore);
    }
}

impl fmt::Debug for Acquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("semaphore", self.semaphore)
            .field("queued", &self.waiter.is_queued())
            .finish()
    }
}

/// The future returned by [`Semaphore::acquire_owned`]: `Unpin + Send +
/// 'static`.
///
/// Dropping it before it completes leaves the queue; if a permit was handed
/// to it in the meantime, the permit goes to the next waiter. Polled again
/// after it completed, it stays pending.
#[must_use = "futures do nothing unless polled"]
pub struct AcquireOwned {
    /// Moved into the permit on completion.
    pub(super) semaphore: Option<Arc<Semaphore>>,
    pub(super) waiter: Waiter,
}

impl Future for AcquireOwned {
    type Output = OwnedSemaphorePermit;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<OwnedSemaphorePermit> {
        let this = self.get_mut();
        let Some(semaphore) = &this.semaphore else {
            return Poll::Pending;
        };
        match this.waiter.poll_acquire(semaphore, cx) {
            Poll::Ready(()) => match this.semaphore.take() {
                Some(semaphore) => Poll::Ready(OwnedSemaphorePermit { semaphore }),
                None => Poll::Pending,
            },
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for AcquireOwned {
    fn drop(&mut self) {
        if let Some(semaphore) = &self.semaphore {
            self.waiter.leave(semaphore);
        }
    }
}

impl fmt::Debug for AcquireOwned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireOwned")
            .field("semaphore", &self.semaphore)
            .field("queued", &self.waiter.is_queued())
            .finish()
    }
}
