//! The generic cell rate algorithm (GCRA), as governor uses it: one atomic
//! word, the "theoretical arrival time" (TAT), and no background task.
//!
//! With emission interval `T` (one call's share of the period) and tolerance
//! `τ = T·(burst − 1)`, a call at time `t` conforms when `TAT − τ ≤ t`; it then
//! moves the TAT to `max(TAT, t) + T`. A waiting call reserves the first slot
//! that conforms, `max(t, TAT − τ)`, by moving the TAT the same way, and
//! sleeps until that slot: waiters are served in reservation order.

use alloc::boxed::Box;
use alloc::string::String;
use core::any::Any;
use core::fmt;

use super::RateLimit;
use crate::Clock;
use crate::sync::{AtomicU64, Ordering};

/// The shared state of one rate limit.
pub(crate) struct Gcra {
    /// The theoretical arrival time, in nanoseconds of the clock's instants.
    tat: AtomicU64,
    interval: u64,
    tolerance: u64,
    limit: RateLimit,
    /// For named limits: the clock of the first limiter that registered the
    /// name. The TAT is on that clock's timeline, and clocks can differ in
    /// origin (each `ManualClock::new()` starts at zero; only the `std`-based
    /// clocks share one timeline, see `clock.rs`), so every limiter sharing
    /// the name reads this clock.
    named_clock: Option<NamedClock>,
}

pub(crate) struct NamedClock {
    pub(crate) clock: Box<dyn Any + Send + Sync>,
    pub(crate) type_name: &'static str,
    /// The name the limit is registered under.
    pub(crate) name: String,
}

/// A reserved slot that has not started yet.
#[derive(Debug)]
pub(crate) struct Reservation {
    /// How long until the slot, from the clock reading used to reserve it.
    pub(crate) wait: u64,
    /// When the slot starts, in nanoseconds of the clock's instants.
    pub(crate) start: u64,
    /// The TAT this reservation set.
    tat: u64,
    /// The TAT it replaced.
    previous: u64,
}

impl Gcra {
    pub(crate) fn new(limit: RateLimit, named_clock: Option<NamedClock>) -> Self {
        let interval = limit.interval_nanos();
        Gcra {
            tat: AtomicU64::new(0),
            interval,
            // Fits: `RateLimit` refuses `interval × burst` beyond `u64::MAX / 2`.
            tolerance: interval.saturating_mul(u64::from(limit.burst()) - 1),
            limit,
            named_clock,
        }
    }

    pub(crate) fn limit(&self) -> RateLimit {
        self.limit
    }

    pub(crate) fn named_clock(&self) -> Option<&NamedClock> {
        self.named_clock.as_ref()
    }

    /// Reserves the next slot if it starts within `max_wait` nanoseconds;
    /// otherwise reserves nothing and returns when the next slot starts
    /// (`u64::MAX` when no slot is left in the clock's range).
    ///
    /// One clock read and one compare-and-swap when uncontended. The TAT is
    /// loaded *before* the clock is read, so the reading is never older than
    /// the one the TAT's writer used (given a monotonic clock, which the
    /// [`Clock`] contract requires): a stale reading could only make a call
    /// wait or be rejected spuriously. The TAT never wraps: it saturates at
    /// `u64::MAX` (only a clock some 292 years past its origin gets there,
    /// see [`RateLimit`]), and a saturated TAT refuses every later call. It
    /// must not stop moving and admit them all instead.
    #[inline]
    pub(crate) fn reserve<K: Clock>(&self, clock: &K, max_wait: u64) -> Result<Reservation, u64> {
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let now = clock.now().as_nanos();
            let start = now.max(tat.saturating_sub(self.tolerance));
            let wait = start - now;
            if tat == u64::MAX {
                return Err(u64::MAX); // no slot left in the clock's range
            }
            if wait > max_wait {
                return Err(start);
            }
            let next = tat.max(now).saturating_add(self.interval);
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Ok(Reservation {
                        wait,
                        start,
                        tat: next,
                        previous: tat,
                    });
                }
                Err(current) => tat = current,
            }
        }
    }

    /// Gives back a reservation whose caller stopped waiting, if no later
    /// reservation was made since (then the TAT is still the one it set).
    /// Otherwise the slot stays spent: later callers already sleep until
    /// their own slots, and moving them is not possible.
    ///
    /// The rollback restores the TAT exactly, even where the reservation's
    /// TAT saturated (subtracting an interval from a saturated TAT would
    /// move it back further than it had moved forward).
    pub(crate) fn cancel(&self, reservation: &Reservation) {
        let _ = self.tat.compare_exchange(
            reservation.tat,
            reservation.previous,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
}

impl fmt::Debug for Gcra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gcra")
            .field("limit", &self.limit)
            .field("tat", &self.tat.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
