//! The reservations a [`RateLimiter`] hands out, and the futures that wait
//! for their slot: a slot reserved is given back if dropped unused.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};

use super::RateLimiter;
use super::gcra::{Gcra, Reservation};
use crate::{Clock, Instant};

/// A reserved slot, given back on drop unless it was used.
pub(super) struct Reserved {
    reservation: Reservation,
    used: bool,
}

impl Reserved {
    #[inline]
    pub(super) fn new(reservation: Reservation) -> Self {
        Reserved {
            reservation,
            used: false,
        }
    }

    fn ready_at(&self) -> Instant {
        Instant::from_nanos(self.reservation.start)
    }

    /// The sleep until the slot starts, on `clock`; `None` if it is due.
    ///
    /// The waiting futures own this sleep and take no borrow of their own
    /// state across its await (a caller may look at a pending future through
    /// a shared reference between polls; a borrow held across the await
    /// would be invalidated, see `tests/aliasing.rs`).
    fn sleep<K: Clock>(&self, clock: &K) -> Option<K::Sleep> {
        if self.reservation.wait == 0 {
            return None;
        }
        // The time left, from now: the reservation's own wait was measured
        // when it was made.
        let left = self.ready_at() - clock.now();
        (!left.is_zero()).then(|| clock.sleep(left))
    }

    #[inline]
    fn give_back(&mut self, state: &Gcra) {
        if !self.used {
            self.used = true;
            state.cancel(&self.reservation);
        }
    }
}

/// A slot reserved with [`RateLimiter::reserve`]. Start the call at
/// [`ready_at`](Self::ready_at): [`wait`](Self::wait) for it, or
/// [`commit`](Self::commit) to it and wait by other means. Dropped before
/// either, the slot is given back where that is possible (see
/// [`RateLimiter::reserve`]).
#[must_use = "a reservation dropped unused gives its slot back"]
pub struct RateReservation<'a, K: Clock> {
    pub(super) limiter: &'a RateLimiter<K>,
    pub(super) slot: Reserved,
}

impl<'a, K: Clock> RateReservation<'a, K> {
    /// When the reserved slot starts, on the limiter's clock.
    pub fn ready_at(&self) -> Instant {
        self.slot.ready_at()
    }

    /// Sleeps on the limiter's clock until [`ready_at`](Self::ready_at);
    /// the slot is then spent. Dropping the future before it completes gives
    /// the slot back, as dropping the reservation does.
    pub fn wait(self) -> RateWait<'a, K> {
        RateWait {
            sleep: self.slot.sleep(&self.limiter.clock),
            reservation: self,
        }
    }

    /// Keeps the slot without waiting here: the caller starts its call at
    /// [`ready_at`](Self::ready_at) by its own means (or at once, if the slot
    /// was due). The slot is spent.
    #[inline]
    pub fn commit(mut self) {
        self.slot.used = true;
    }

    /// How long the call waits, from the clock reading that reserved it.
    #[inline]
    pub(crate) fn wait_nanos(&self) -> u64 {
        self.slot.reservation.wait
    }
}

impl<K: Clock> Drop for RateReservation<'_, K> {
    #[inline]
    fn drop(&mut self) {
        self.slot.give_back(&self.limiter.state);
    }
}

impl<K: Clock> fmt::Debug for RateReservation<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateReservation")
            .field("ready_at", &self.ready_at())
            .finish_non_exhaustive()
    }
}

/// A slot reserved with [`RateLimiter::reserve_owned`]: a
/// [`RateReservation`] that holds a handle to its budget (`'static` when the
/// clock is, `Send` when the clock is `Send + Sync`).
#[must_use = "a reservation dropped unused gives its slot back"]
pub struct OwnedRateReservation<K: Clock> {
    pub(super) limiter: RateLimiter<K>,
    pub(super) slot: Reserved,
}

impl<K: Clock> OwnedRateReservation<K> {
    /// When the reserved slot starts, on the limiter's clock.
    pub fn ready_at(&self) -> Instant {
        self.slot.ready_at()
    }

    /// Sleeps on the limiter's clock until [`ready_at`](Self::ready_at);
    /// the slot is then spent. Dropping the future before it completes gives
    /// the slot back. The future is `'static` when the clock is, and can be
    /// kept in a field (pinned) and polled by hand.
    pub fn wait(self) -> OwnedRateWait<K> {
        OwnedRateWait {
            sleep: self.slot.sleep(&self.limiter.clock),
            reservation: self,
        }
    }

    /// Keeps the slot without waiting here (see [`RateReservation::commit`]).
    pub fn commit(mut self) {
        self.slot.used = true;
    }

    /// The budget the slot was reserved from.
    pub fn limiter(&self) -> &RateLimiter<K> {
        &self.limiter
    }
}

impl<K: Clock> Drop for OwnedRateReservation<K> {
    fn drop(&mut self) {
        self.slot.give_back(&self.limiter.state);
    }
}

impl<K: Clock> fmt::Debug for OwnedRateReservation<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedRateReservation")
            .field("ready_at", &self.ready_at())
            .finish_non_exhaustive()
    }
}

pin_project_lite::pin_project! {
    /// The future of [`RateReservation::wait`]: sleeps until the slot, then
    /// spends it. Dropped before it completes, it gives the slot back.
    #[must_use = "futures do nothing unless polled"]
    pub struct RateWait<'a, K: Clock> {
        reservation: RateReservation<'a, K>,
        // Owned, not borrowed from the reservation: the future holds no
        // borrow of its own state across a poll (see `Reserved::sleep`).
        #[pin]
        sleep: Option<K::Sleep>,
    }
}

impl<K: Clock> Future for RateWait<'_, K> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        wait_for_slot(this.sleep, &mut this.reservation.slot.used, cx)
    }
}

impl<K: Clock> fmt::Debug for RateWait<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateWait")
            .field("ready_at", &self.reservation.ready_at())
            .field("sleeping", &self.sleep.is_some())
            .finish()
    }
}

pin_project_lite::pin_project! {
    /// The future of [`OwnedRateReservation::wait`]: sleeps until the slot,
    /// then spends it. Dropped before it completes, it gives the slot back.
    /// `'static` when the clock is.
    #[must_use = "futures do nothing unless polled"]
    pub struct OwnedRateWait<K: Clock> {
        reservation: OwnedRateReservation<K>,
        #[pin]
        sleep: Option<K::Sleep>,
    }
}

impl<K: Clock> Future for OwnedRateWait<K> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        wait_for_slot(this.sleep, &mut this.reservation.slot.used, cx)
    }
}

impl<K: Clock> fmt::Debug for OwnedRateWait<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedRateWait")
            .field("ready_at", &self.reservation.ready_at())
            .field("sleeping", &self.sleep.is_some())
            .finish()
    }
}

/// A wait's poll, for both futures: sleeps until the slot, then marks it
/// spent.
#[inline]
fn wait_for_slot<S: Future<Output = ()>>(
    mut sleep: Pin<&mut Option<S>>,
    used: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<()> {
    if let Some(pending) = sleep.as_mut().as_pin_mut() {
        ready!(pending.poll(cx));
        sleep.set(None);
    }
    *used = true; // the slot has come: spent
    Poll::Ready(())
}
