//! Recording an admitted call's outcome: counting it, moving the failure
//! streak and the probes, and what the listeners are to hear of it.

use core::time::Duration;

use crate::clock::duration_to_nanos;
use crate::sync::{MutexGuard, Ordering};
use crate::{Clock, Instant};

use super::notify::Caught;
use super::raw::{Locked, Shared, Ticket};
use super::state::{Mode, View, Word};
use super::window::Window;
use super::{BreakerEvent, CircuitState};

/// The clock, read at most once per completion and only if needed, and
/// what the completion's events report.
struct LazyNow<'a, K> {
    clock: &'a K,
    now: Option<Instant>,
    /// How long the call took (zero when calls are not timed).
    elapsed: Duration,
    /// The accepted outcome `(failure, slow)`, kept for a subscriber.
    told: Option<(bool, bool)>,
}

/// What a completion leaves for the listeners: its own outcome's events
/// (delivered by the calling thread) and any queued state changes.
#[derive(Clone, Copy, Debug)]
#[must_use]
pub(crate) struct Pending {
    /// `(failure, slow, elapsed)` of an accepted outcome, if `on_event` listens.
    outcome: Option<(bool, bool, Duration)>,
    /// The result was ignored as stale, and `on_event` listens.
    stale: bool,
}

/// What recording an outcome did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Recorded {
    /// The call belonged to a state that has ended: ignored entirely.
    Stale,
    /// Counted in the current state (which it may have ended).
    Counted,
}

/// What one more failure does to the CLOSED failure streak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Streak {
    /// The state changed meanwhile: nothing to count.
    Stale,
    /// One more consecutive failure, below the threshold.
    Counted,
    /// The circuit must open (the caller holds or takes the lock).
    Trips,
}

impl<K: Clock> LazyNow<'_, K> {
    fn get(&mut self) -> Instant {
        *self.now.get_or_insert_with(|| self.clock.now())
    }
}

impl<K: Clock> Shared<K> {
    /// Records the outcome of an admitted call. No user code runs here:
    /// `Some` means listeners may have something to hear, which the caller
    /// delivers with [`deliver`](Self::deliver) once it has marked the call
    /// settled, so that a listener's panic finds nothing left to undo.
    #[inline]
    pub(crate) fn complete(&self, ticket: Ticket, failure: bool) -> Option<Pending> {
        // The healthy CLOSED success, inline: exactly what `complete_slow` does for it when nothing reads the
        // clock, keeps a window or listens.
        if !failure && self.fast_success && !ticket.probe() {
            let word = self.load();
            if word.generation() == ticket.generation() && word.failure_streak() == 0 {
                if self.count_successes {
                    self.successes.fetch_add(1, Ordering::Relaxed);
                }
                return None;
            }
        }
        let pending = self.complete_slow(ticket, failure);
        self.listens.then_some(pending)
    }

    /// Tells the listeners what a completion left (after `complete`
    /// returned `Some`): the call's own outcome events first, delivered by
    /// this thread, then the queued state changes. Outcome events are never
    /// queued, so one caller never delivers other callers' events and its
    /// cost stays bounded by its own.
    pub(crate) fn deliver(&self, pending: Pending) {
        let mut caught = Caught::new();
        if let Some((failure, slow, elapsed)) = pending.outcome {
            caught.run(|| {
                self.deliver_event(&match failure {
                    true => BreakerEvent::Failure { elapsed },
                    false => BreakerEvent::Success { elapsed },
                })
            });
            if slow {
                caught.run(|| self.deliver_event(&BreakerEvent::SlowCall { elapsed }));
            }
        }
        if pending.stale {
            caught.run(|| self.deliver_event(&BreakerEvent::Stale));
        }
        self.drain_listened();
        caught.resume();
    }

    #[inline(never)]
    fn complete_slow(&self, ticket: Ticket, failure: bool) -> Pending {
        let mut now = LazyNow {
            clock: &self.clock,
            now: None,
            elapsed: Duration::ZERO,
            told: None,
        };
        if self.end_time_always {
            now.get();
        }
        if self.timed {
            now.elapsed = now.get() - Instant::from_nanos(ticket.start_nanos);
        }
        let slow = self
            .config
            .slow_nanos
            .is_some_and(|threshold| self.timed && duration_to_nanos(now.elapsed) >= threshold);
        let outcome = if ticket.probe() {
            self.complete_probe(ticket.generation(), failure, slow, &mut now)
        } else {
            self.complete_closed(ticket.generation(), failure, slow, &mut now)
        };
        if let (Recorded::Counted, true) = (outcome, failure) {
            self.stamp_failure(&mut now);
        }
        let stale = outcome == Recorded::Stale;
        if stale {
            self.stale.fetch_add(1, Ordering::Relaxed);
        }
        Pending {
            outcome: now.told.map(|(failure, slow)| (failure, slow, now.elapsed)),
            stale: stale && self.on_event.is_some(),
        }
    }

    /// Counts an accepted outcome in the totals. A failure's time is
    /// stamped later, by [`stamp_failure`](Self::stamp_failure).
    ///
    /// The outcome is kept for a subscriber here (after the staleness
    /// check); the caller delivers it before any transition it caused.
    #[inline]
    fn count(&self, failure: bool, slow: bool, now: &mut LazyNow<'_, K>) {
        if self.on_event.is_some() {
            now.told = Some((failure, slow));
        }
        if failure {
            self.failures.fetch_add(1, Ordering::Relaxed);
        } else {
            if self.count_successes {
                self.successes.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(now) = now.now {
                self.last_success
                    .store(now.as_nanos().saturating_add(1), Ordering::Relaxed);
            }
        }
        if slow {
            self.slow_calls.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Stamps an accepted failure's time, if the clock was read for it (the
    /// first failure of a streak, a trip, a probe's failure, a forced-closed
    /// circuit's failure, a timed call) or every failure is to be stamped.
    fn stamp_failure(&self, now: &mut LazyNow<'_, K>) {
        let now = match now.now {
            Some(now) => now,
            None if self.config.exact_failure_time => now.get(),
            None => return,
        };
        self.last_failure
            .store(now.as_nanos().saturating_add(1), Ordering::Relaxed);
    }

    fn stamp_success(&self, now: &mut LazyNow<'_, K>) {
        self.last_success
            .store(now.get().as_nanos().saturating_add(1), Ordering::Relaxed);
    }

    fn complete_closed(
        &self,
        generation: u32,
        failure: bool,
        slow: bool,
        now: &mut LazyNow<'_, K>,
    ) -> Recorded {
        let word = self.load();
        if !word.admitted(generation, CircuitState::Closed) {
            return Recorded::Stale;
        }
        if self.locked_closed_path() {
            return self.complete_closed_locked(generation, failure, slow, now);
        }
        self.count(failure, slow, now);
        if self.forced_closed(word, failure, now) {
            return Recorded::Counted;
        }
        if failure {
            if let Streak::Trips = self.failure_streak(word, generation, false, now) {
                let mut locked = self.locked.lock();
                self.closed_failure_locked(&mut locked, generation, false, now);
            }
        } else if word.failure_streak() != 0 {
            self.clear_streak(word, generation, now);
        }
        Recorded::Counted
    }

    /// Whether CLOSED outcomes go through the lock (a sliding window).
    fn locked_closed_path(&self) -> bool {
        self.config.rates.is_some()
    }

    /// Whether the circuit is forced closed: no streak is kept, so every
    /// failure is stamped (the clock read here).
    #[inline(always)]
    fn forced_closed(&self, word: Word, failure: bool, now: &mut LazyNow<'_, K>) -> bool {
        let forced = word.mode() == Mode::ForcedClosed;
        if forced && failure {
            now.get();
        }
        forced
    }

    /// Ends a failure streak: the success that changes something is stamped.
    fn clear_streak(&self, mut word: Word, generation: u32, now: &mut LazyNow<'_, K>) {
        while word.generation() == generation && word.failure_streak() != 0 {
            match self.cas(word, word.with_failure_streak(0)) {
                Ok(()) => {
                    self.stamp_success(now);
                    return;
                }
                Err(actual) => word = actual,
            }
        }
    }

    /// One more consecutive failure, counted with a CAS unless the circuit
    /// is to trip: at the threshold, or when `trip` (a rate policy decided).
    /// Tripping is left to the caller, which must hold the lock.
    #[inline(always)]
    fn failure_streak(
        &self,
        mut word: Word,
        generation: u32,
        trip: bool,
        now: &mut LazyNow<'_, K>,
    ) -> Streak {
        loop {
            if word.generation() != generation {
                return Streak::Stale;
            }
            let streak = word.failure_streak() + 1;
            if trip || self.config.consecutive.is_some_and(|t| streak >= t) {
                return Streak::Trips;
            }
            match self.cas(word, word.with_failure_streak(streak)) {
                Ok(()) => {
                    if streak == 1 {
                        now.get(); // the first failure of a streak is stamped
                    }
                    return Streak::Counted;
                }
                Err(actual) => word = actual,
            }
        }
    }

    /// A CLOSED failure under the lock: counts it in the streak, or opens
    /// the circuit if the streak or `trip` says so.
    fn closed_failure_locked(
        &self,
        locked: &mut Locked,
        generation: u32,
        trip: bool,
        now: &mut LazyNow<'_, K>,
    ) {
        if let Streak::Trips = self.failure_streak(self.load(), generation, trip, now) {
            self.open_locked(locked, now.get());
        }
    }

    /// Takes the lock if the call still belongs to the current period (the
    /// generation cannot move while it is held); `None` if stale.
    fn admitted_locked(
        &self,
        generation: u32,
        state: CircuitState,
    ) -> Option<(MutexGuard<'_, Locked>, Word)> {
        let locked = self.locked.lock();
        let word = self.load();
        word.admitted(generation, state).then_some((locked, word))
    }

    /// CLOSED outcomes when a sliding window is kept: all under the lock.
    fn complete_closed_locked(
        &self,
        generation: u32,
        failure: bool,
        slow: bool,
        now: &mut LazyNow<'_, K>,
    ) -> Recorded {
        let Some((mut locked, word)) = self.admitted_locked(generation, CircuitState::Closed)
        else {
            return Recorded::Stale;
        };
        self.count(failure, slow, now);
        let Some(rates) = self.config.rates else {
            return Recorded::Counted; // not reached: this path is taken with a window
        };
        let time = if locked.window.as_ref().is_some_and(Window::needs_time) {
            now.get()
        } else {
            Instant::ZERO
        };
        let Some(window) = locked.window.as_mut() else {
            return Recorded::Counted; // not reached, as above (already counted)
        };
        window.record(time, failure, slow);
        if self.forced_closed(word, failure, now) {
            return Recorded::Counted;
        }
        let totals = window.totals(time);
        // The very percentages `stats().window` reports, so that the
        // decision and the report cannot disagree by a rounding.
        let over = |measured: f64, rate: Option<f64>| rate.is_some_and(|rate| measured >= rate);
        let trip = totals.calls >= rates.minimum_calls
            && (over(totals.failure_rate(), rates.failure_rate)
                || over(totals.slow_call_rate(), rates.slow_rate));
        if failure {
            self.closed_failure_locked(&mut locked, generation, trip, now);
        } else if trip {
            self.open_locked(&mut locked, now.get());
        } else if word.failure_streak() != 0 {
            self.clear_streak(word, generation, now);
        }
        Recorded::Counted
    }

    /// A probe's outcome: a failure (or a slow call under a slow-call
    /// policy) reopens the circuit; `half_open_max_calls` successes close it.
    fn complete_probe(
        &self,
        generation: u32,
        failure: bool,
        slow: bool,
        now: &mut LazyNow<'_, K>,
    ) -> Recorded {
        let Some((mut locked, mut word)) = self.admitted_locked(generation, CircuitState::HalfOpen)
        else {
            return Recorded::Stale;
        };
        self.count(failure, slow, now);
        let slow_fails = slow && self.config.rates.is_some_and(|r| r.slow_rate.is_some());
        if failure || slow_fails {
            self.open_locked(&mut locked, now.get());
            return Recorded::Counted;
        }
        self.stamp_success(now);
        // The lock holds the generation, so the word stays HALF_OPEN here;
        // only lock-free probe admissions and releases move its counters.
        while let View::HalfOpen {
            in_flight,
            successes,
        } = word.view()
        {
            let successes = successes + 1;
            if successes >= self.config.half_open_max {
                self.close_locked(&mut locked, Mode::Auto);
                return Recorded::Counted;
            }
            let next = word.with_probes(in_flight.saturating_sub(1), successes);
            match self.cas(word, next) {
                Ok(()) => return Recorded::Counted,
                Err(actual) => word = actual,
            }
        }
        Recorded::Counted
    }

    /// A call whose inner combinator panicked: a failure, as an exception
    /// is in resilience4j (a probe's panic reopens the circuit).
    pub(crate) fn inner_panicked(&self, ticket: Ticket) {
        if let Some(pending) = self.complete(ticket, true) {
            self.deliver(pending);
        }
    }
}
