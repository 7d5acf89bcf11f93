//! The breaker's raw state machine: the memory layout ([`Shared`]),
//! admission and transitions.
//!
//! # How the state is kept
//!
//! One `AtomicU64` (see [`Word`]) holds the state, who controls it, a
//! generation and the counters of the current state. Paths that stay within
//! a state are lock-free:
//!
//! - CLOSED: what admission and outcomes cost is stated once, under
//!   *Speed* on `CircuitBreaker`; a success CASes the word only when it
//!   ends a failure streak.
//! - OPEN rejection is one load, one clock read and a relaxed add.
//! - HALF_OPEN admission is one CAS taking a probe slot.
//!
//! Every *change* of state happens under `locked`, which also guards what
//! only the rarer paths touch (the sliding window, the trip count, the
//! jitter generator). Because the generation moves only under that lock, a
//! holder can trust a generation it has read; lock-free writers only ever
//! CAS counters within a state, which a transition's CAS loop absorbs.
//!
//! The open deadline lives beside the word: it is written under the lock
//! *before* the CAS that publishes OPEN, so a caller that loads an OPEN word
//! (acquire) sees the deadline of that open period or of a later one (in
//! which case its word is stale and the lock path rechecks).

use alloc::boxed::Box;
use core::ops::Deref;

use crate::call::CircuitOpen;
use crate::rng;
use crate::sync::{AtomicU64, Mutex, Ordering};
use crate::{Clock, Instant};

use super::config::{Config, EventFn, StateChangeFn};
use super::notify::{Caught, Notes};
use super::state::{Mode, View, Word};
use super::window::Window;
use super::{BreakerEvent, CircuitState};

/// `last_*` timestamps are stored as nanoseconds + 1; this means "never".
/// (The + 1 saturates: a stamp at the clock's very last instant, `u64::MAX`
/// ns, reads back one nanosecond early.)
pub(super) const NEVER: u64 = 0;

/// Keeps a hot atomic on a cache line of its own.
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct Padded<T>(pub(super) T);

impl<T> Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

pub(crate) struct Shared<K> {
    pub(super) word: Padded<AtomicU64>,
    /// Written on every CLOSED success: kept off the word's cache line so
    /// that admissions (loads of the word) on other cores stay cheap.
    pub(super) successes: Padded<AtomicU64>,
    pub(super) failures: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) slow_calls: AtomicU64,
    pub(super) last_failure: AtomicU64,
    pub(super) last_success: AtomicU64,
    /// Nanoseconds on `clock` at which the current OPEN period ends.
    pub(super) open_until: AtomicU64,
    pub(super) locked: Mutex<Locked>,
    /// Notifications not yet delivered (see `notify.rs`). Locked after
    /// `locked` when both are held, never before.
    pub(super) notes: Mutex<Notes>,
    /// Someone listens: `on_state_change` or `on_event` is set.
    pub(super) listens: bool,
    /// Calls are timed: a slow-call policy or an event subscriber.
    pub(super) timed: bool,
    /// Every completion reads the clock anyway.
    pub(super) end_time_always: bool,
    /// A CLOSED success with no failure streak needs only a counter bump.
    pub(super) fast_success: bool,
    /// `success_count` is kept (the default).
    pub(super) count_successes: bool,
    pub(super) config: Config,
    pub(super) clock: K,
    pub(super) on_state_change: Option<Box<StateChangeFn>>,
    pub(super) on_event: Option<Box<EventFn>>,
}

/// What the slow paths share, under the lock.
pub(super) struct Locked {
    pub(super) window: Option<Window>,
    /// Trips since the circuit last closed (the back-off level).
    pub(super) trips: u32,
    /// SplitMix64 state for jitter.
    pub(super) rng: u64,
}

/// An admitted call: which state (generation) it belongs to, whether it is
/// a probe, and when it started (meaningful only when calls are timed).
///
/// Plain integers, so moving it through the call's future is two register
/// moves, not a byte-wise copy of padded fields.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket {
    pub(super) start_nanos: u64,
    /// The generation, with [`PROBE`] set for a half-open probe.
    pub(super) tag: u32,
}

pub(super) const PROBE: u32 = 1 << 31;

impl Ticket {
    pub(crate) fn generation(self) -> u32 {
        self.tag & !PROBE
    }

    pub(crate) fn probe(self) -> bool {
        self.tag & PROBE != 0
    }
}

impl<K> Shared<K> {
    pub(super) fn new(
        config: Config,
        clock: K,
        on_state_change: Option<Box<StateChangeFn>>,
        on_event: Option<Box<EventFn>>,
    ) -> Self {
        let window = config.rates.map(|r| Window::new(r.window));
        let timed = config.slow_nanos.is_some() || on_event.is_some();
        let end_time_always =
            config.exact_success_time || timed || window.as_ref().is_some_and(Window::needs_time);
        Shared {
            word: Padded(AtomicU64::new(Word::INITIAL.0)),
            successes: Padded(AtomicU64::new(0)),
            failures: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            slow_calls: AtomicU64::new(0),
            last_failure: AtomicU64::new(NEVER),
            last_success: AtomicU64::new(NEVER),
            open_until: AtomicU64::new(0),
            locked: Mutex::new(Locked {
                window,
                trips: 0,
                rng: config.jitter_seed,
            }),
            notes: Mutex::new(Notes::default()),
            listens: on_state_change.is_some() || on_event.is_some(),
            timed,
            end_time_always,
            fast_success: !end_time_always && config.rates.is_none(),
            count_successes: config.count_successes,
            config,
            clock,
            on_state_change,
            on_event,
        }
    }
}

impl<K: Clock> Shared<K> {
    pub(super) fn load(&self) -> Word {
        Word(self.word.load(Ordering::Acquire))
    }

    pub(super) fn cas(&self, current: Word, new: Word) -> Result<(), Word> {
        self.word
            .compare_exchange_weak(current.0, new.0, Ordering::AcqRel, Ordering::Acquire)
            .map(drop)
            .map_err(Word)
    }

    /// Admits a call or rejects it, saying why.
    #[inline]
    pub(crate) fn acquire(&self) -> Result<Ticket, CircuitOpen> {
        let word = self.load();
        if word.state() == CircuitState::Closed && !self.timed {
            return Ok(Ticket {
                start_nanos: 0,
                tag: word.generation(),
            });
        }
        self.acquire_slow(word)
    }

    #[inline(never)]
    pub(super) fn acquire_slow(&self, mut word: Word) -> Result<Ticket, CircuitOpen> {
        loop {
            match word.view() {
                View::Closed { .. } => return Ok(self.ticket(word, false)),
                View::HalfOpen {
                    in_flight,
                    successes,
                } => {
                    if in_flight >= self.config.half_open_max {
                        return Err(self.reject(CircuitState::HalfOpen, None));
                    }
                    match self.cas(word, word.with_probes(in_flight + 1, successes)) {
                        Ok(()) => return Ok(self.ticket(word, true)),
                        Err(current) => word = current,
                    }
                }
                View::Open => {
                    if word.mode() == Mode::ForcedOpen {
                        return Err(self.reject(CircuitState::Open, None));
                    }
                    let until = self.open_until.load(Ordering::Relaxed);
                    if self.clock.now().as_nanos() < until {
                        let retry_at = Some(Instant::from_nanos(until));
                        return Err(self.reject(CircuitState::Open, retry_at));
                    }
                    match self.enter_half_open(word) {
                        Some(ticket) => return Ok(ticket),
                        None => word = self.load(),
                    }
                }
            }
        }
    }

    pub(super) fn ticket(&self, word: Word, probe: bool) -> Ticket {
        Ticket {
            start_nanos: if self.timed {
                self.clock.now().as_nanos()
            } else {
                0
            },
            tag: word.generation() | if probe { PROBE } else { 0 },
        }
    }

    #[cold]
    pub(super) fn reject(&self, state: CircuitState, retry_at: Option<Instant>) -> CircuitOpen {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        if self.on_event.is_some() {
            self.tell_rejected(state);
        }
        CircuitOpen::new(state, retry_at)
    }

    /// Out of line, so that a rejection without a subscriber stays a
    /// counter bump.
    #[inline(never)]
    pub(super) fn tell_rejected(&self, state: CircuitState) {
        // Delivered by this thread, not queued: a rejection's cost stays its
        // own, whatever other threads are doing.
        let mut caught = Caught::new();
        caught.run(|| self.deliver_event(&BreakerEvent::Rejected { state }));
        self.drain();
        caught.resume();
    }

    /// OPEN -> HALF_OPEN, with the caller as the first probe. `None` if the
    /// word moved meanwhile (another caller got there first, or a reset).
    #[cold]
    pub(super) fn enter_half_open(&self, seen: Word) -> Option<Ticket> {
        let entered = {
            let _locked = self.locked.lock();
            // No lock-free path writes an OPEN word, so it is exactly `seen`
            // unless a transition happened.
            let next = seen
                .next(CircuitState::HalfOpen, Mode::Auto)
                .with_probes(1, 0);
            let entered = self.cas_strong(seen, next);
            if entered {
                self.post_transition(CircuitState::Open, CircuitState::HalfOpen);
            }
            entered.then_some(next)
        };
        let ticket = self.ticket(entered?, true);
        // A listener that panics on the transition must not take the probe
        // slot with it: until the ticket is handed over, a guard gives the
        // slot back (no outcome) if the delivery unwinds.
        struct Unclaimed<'a, K: Clock>(&'a Shared<K>, Ticket);
        impl<K: Clock> Drop for Unclaimed<'_, K> {
            fn drop(&mut self) {
                self.0.abandon(self.1);
            }
        }
        let unclaimed = Unclaimed(self, ticket);
        self.drain();
        core::mem::forget(unclaimed);
        Some(ticket)
    }

    pub(super) fn cas_strong(&self, current: Word, new: Word) -> bool {
        self.word
            .compare_exchange(current.0, new.0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Moves to `state` under the lock. Lock-free writers may change the
    /// counters meanwhile but never the generation, so this only loops on
    /// counter updates. Returns the word replaced.
    ///
    /// A change of state is queued for the listeners here, under the lock,
    /// so that they hear of transitions in the order they happened.
    pub(super) fn transition_locked(
        &self,
        _locked: &mut Locked,
        state: CircuitState,
        mode: Mode,
    ) -> Word {
        let mut current = self.load();
        loop {
            match self.cas(current, current.next(state, mode)) {
                Ok(()) => {
                    if current.state() != state {
                        self.post_transition(current.state(), state);
                    }
                    return current;
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Opens (or reopens) the circuit from the current automatic state.
    pub(super) fn open_locked(&self, locked: &mut Locked, now: Instant) {
        let nanos = self.jittered(locked, self.config.open_nanos(locked.trips));
        locked.trips = locked.trips.saturating_add(1);
        // Published by the CAS below (release), read after an acquire load
        // of an OPEN word.
        self.open_until
            .store(now.as_nanos().saturating_add(nanos), Ordering::Relaxed);
        self.transition_locked(locked, CircuitState::Open, Mode::Auto);
    }

    pub(super) fn close_locked(&self, locked: &mut Locked, mode: Mode) -> Word {
        locked.trips = 0;
        if let Some(window) = &mut locked.window {
            window.clear();
        }
        self.transition_locked(locked, CircuitState::Closed, mode)
    }

    pub(super) fn jittered(&self, locked: &mut Locked, nanos: u64) -> u64 {
        let jitter = self.config.jitter;
        if jitter == 0.0 {
            return nanos;
        }
        // One step per open period.
        let unit = rng::unit(rng::next_u64(&mut locked.rng));
        let spread = nanos as f64 * (1.0 + jitter * (2.0 * unit - 1.0));
        let cap = self.config.backoff.map_or(u64::MAX, |(_, max)| max);
        (spread as u64).min(cap)
    }

    /// A call dropped between polls (cancelled, or timed out from outside):
    /// no outcome; a probe gives its slot back.
    pub(crate) fn abandon(&self, ticket: Ticket) {
        if ticket.probe() {
            self.release_probe(ticket.generation());
        }
    }

    /// Gives back a probe slot without an outcome.
    pub(super) fn release_probe(&self, generation: u32) {
        let mut word = self.load();
        while word.generation() == generation {
            let View::HalfOpen {
                in_flight,
                successes,
            } = word.view()
            else {
                return;
            };
            if in_flight == 0 {
                return;
            }
            match self.cas(word, word.with_probes(in_flight - 1, successes)) {
                Ok(()) => return,
                Err(actual) => word = actual,
            }
        }
    }

    pub(super) fn set_by_hand(&self, state: CircuitState, mode: Mode, clear: bool) {
        {
            let mut locked = self.locked.lock();
            match state {
                CircuitState::Open => {
                    locked.trips = 0;
                    self.transition_locked(&mut locked, state, mode);
                }
                _ => {
                    self.close_locked(&mut locked, mode);
                }
            }
            if clear {
                for counter in [
                    &self.failures,
                    &self.rejected,
                    &self.slow_calls,
                    &self.last_failure,
                    &self.last_success,
                ] {
                    counter.store(0, Ordering::Relaxed);
                }
                self.successes.store(0, Ordering::Relaxed);
            }
        }
        self.drain();
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::ManualClock;
    use crate::circuit_breaker::Breaker;

    /// A wrapped generation (simulated: the word is set by hand to a
    /// HALF_OPEN period with the CLOSED ticket's generation) does not pass a
    /// CLOSED outcome off as a probe's: the probe count stays whole.
    #[test]
    pub(super) fn a_wrapped_generation_does_not_mix_closed_and_probe_outcomes() {
        let breaker = Breaker::builder(ManualClock::new())
            .failure_threshold(1)
            .build()
            .unwrap();
        let shared = breaker.shared();
        let closed = shared.acquire().unwrap();
        assert!(!closed.probe());
        assert_eq!(closed.generation(), 0);
        // The last generation's successor: generation 0 again.
        let last = Word(((1 << 28) - 1) << 36);
        let wrapped = last
            .next(CircuitState::HalfOpen, Mode::Auto)
            .with_probes(1, 0);
        assert_eq!(wrapped.generation(), closed.generation());
        assert_eq!(wrapped.state(), CircuitState::HalfOpen);
        shared.word.store(wrapped.0, Ordering::Release);
        // Would count as one more probe in flight. (No listeners: nothing to deliver.)
        assert!(shared.complete(closed, true).is_none());
        assert_eq!(
            shared.load(),
            wrapped,
            "a stale CLOSED failure changed the HALF_OPEN word"
        );
        assert!(shared.complete(closed, false).is_none());
        assert_eq!(shared.load(), wrapped);
        assert_eq!(breaker.stats().failure_count, 0);
    }
}
