//! The shared breaker: [`Breaker`], its state machine and its bookkeeping.
//!
//! # How the state is kept
//!
//! One `AtomicU64` (see [`Word`]) holds the state, who controls it, a
//! generation and the counters of the current state. Paths that stay within
//! a state are lock-free:
//!
//! - CLOSED admission is one load; a success is one more load plus a relaxed
//!   add to the success counter (a CAS only when it ends a failure streak);
//!   a failure is one load, a relaxed add and one CAS. No clock is read on a
//!   success, nor on a failure other than the first of a streak and the one
//!   that trips the circuit (see `last_failure_time`).
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
use alloc::sync::Arc;
use core::fmt;
use core::ops::Deref;
use core::time::Duration;

use crate::call::CircuitOpen;
use crate::clock::duration_to_nanos;
use crate::sync::{AtomicU64, Mutex, Ordering};
use crate::{Clock, Instant};

use super::config::{Config, EventFn, StateChangeFn};
use super::notify::{Caught, Note, Notes};
use super::state::{Mode, Word};
use super::window::Window;
use super::{
    BreakerBuilder, BreakerEvent, BreakerPermit, CircuitBreaker, CircuitBreakerStats, CircuitState,
    NotOk, OwnedBreakerPermit,
};

/// A circuit breaker's state, shareable by several combinators.
///
/// One `Breaker` can [`guard`](Breaker::guard) any number of combinators:
/// their outcomes feed one state machine, and when it opens all of them are
/// rejected, as one connection pool guards several endpoints of the same
/// service. Cloning a `Breaker` gives another handle to the same state.
/// [`circuit_breaker`](crate::CircuitBreaker::builder) builds a breaker for
/// a single combinator.
///
/// One state means one health: share a breaker only between calls to the
/// same dependency. Two routes to services of different health behind one
/// breaker mix their outcomes, and with the default consecutive-failure
/// policy ([`failure_threshold`](BreakerBuilder::failure_threshold)) every
/// success on the healthy route ends the failing route's streak, so the
/// circuit may never open. Give each dependency its own breaker, or, if
/// one must be shared, judge it by a rate over a window
/// ([`failure_rate`](BreakerBuilder::failure_rate) with a
/// [`sliding_window`](BreakerBuilder::sliding_window)), which a minority of
/// successes does not reset:
///
/// ```
/// use kompoz_core::{CircuitState, ClockExt, ManualClock, SlidingWindow};
///
/// let clock = ManualClock::new();
/// let streak = clock.shared_breaker().failure_threshold(3).build()?;
/// let rate = clock
///     .shared_breaker()
///     .failure_rate(50.0)
///     .sliding_window(SlidingWindow::Count(10))
///     .minimum_calls(6)
///     .build()?;
/// for breaker in [&streak, &rate] {
///     // `/users` fails twice, `/health` passes, `/users` fails twice more.
///     for ok in [false, false, true, false, false, true] {
///         let _ = clock.block_on(breaker.call(|| async move { if ok { Ok(()) } else { Err(()) } }));
///     }
/// }
/// assert_eq!(streak.state(), CircuitState::Closed); // never 3 in a row
/// assert_eq!(rate.state(), CircuitState::Open); // 4 failures in 6 calls
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
///
/// Code that makes its calls itself (a future returning `Result`, a tower
/// service) asks the same breaker for a permit per call with
/// [`try_acquire`](Self::try_acquire) (or
/// [`try_acquire_owned`](Self::try_acquire_owned)) and records the outcome
/// on it; a refusal is a [`CircuitOpen`](crate::call::CircuitOpen) saying
/// when a call may pass again. Permits and guarded combinators feed one
/// state machine.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::{ClockExt, rule, CircuitState, Combinator, ManualClock};
///
/// let clock = ManualClock::new();
/// let service = clock.shared_breaker()
///     .failure_threshold(2)
///     .recovery_timeout(Duration::from_secs(10))
///     .build()?;
/// let read = service.guard(rule(async |id: &u32| *id != 0));
/// let write = service.guard(rule(async |_: &u32| false));
///
/// futures::executor::block_on(async {
///     assert!(!write.run(1).await.0);
///     assert!(!write.run(2).await.0);            // two failures in a row: open
///     assert_eq!(service.state(), CircuitState::Open);
///     assert_eq!(read.run(7).await, (false, 7)); // `read` is rejected too
///
///     clock.advance(Duration::from_secs(10));
///     assert!(read.run(7).await.0);               // the probe passes: closed
///     assert_eq!(service.state(), CircuitState::Closed);
/// });
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
pub struct Breaker<K> {
    shared: Arc<Shared<K>>,
}

impl<K> Clone for Breaker<K> {
    fn clone(&self) -> Self {
        Breaker {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K> Breaker<K> {
    /// A builder with the reference's defaults and time from `clock`.
    pub fn builder(clock: K) -> BreakerBuilder<K> {
        BreakerBuilder::new(clock)
    }

    /// Guards `inner` with this breaker. Outcomes count as failures when
    /// `ok == false`; see [`CircuitBreaker::failure_if`] to change that.
    pub fn guard<I>(&self, inner: I) -> CircuitBreaker<I, K, NotOk> {
        CircuitBreaker::from_parts(inner, self.clone(), NotOk)
    }

    pub(crate) fn from_parts(
        config: Config,
        clock: K,
        on_state_change: Option<Box<StateChangeFn>>,
        on_event: Option<Box<EventFn>>,
    ) -> Self {
        let window = config.rates.map(|r| Window::new(r.window));
        let timed = config.slow_nanos.is_some() || on_event.is_some();
        let end_time_always =
            config.exact_success_time || timed || window.as_ref().is_some_and(Window::needs_time);
        Breaker {
            shared: Arc::new(Shared {
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
            }),
        }
    }

    pub(crate) fn shared(&self) -> &Shared<K> {
        &self.shared
    }

    /// Whether `self` and `other` are handles to the same breaker.
    pub fn same_as(&self, other: &Breaker<K>) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl<K: Clock> Breaker<K> {
    /// The current state (the reference's `state` property).
    ///
    /// An OPEN circuit whose recovery timeout has passed still reports
    /// `Open` until a call arrives and becomes the probe.
    pub fn state(&self) -> CircuitState {
        self.shared.load().state()
    }

    /// Asks for permission to make one call: a [`BreakerPermit`] that
    /// records the call's outcome, or the refusal, saying when a call may
    /// pass again.
    ///
    /// This is what the combinator does around each call, for code that
    /// makes its calls itself (a `Result`-returning future, a tower
    /// service). Admission costs what the combinator's does: one atomic load
    /// when CLOSED.
    ///
    /// # Errors
    ///
    /// [`CircuitOpen`] when the circuit is open (its
    /// [`retry_at`](CircuitOpen::retry_at) is the end of the open period, or
    /// `None` if it was forced open) or half-open with every probe slot taken
    /// (`retry_at` `None`). The refusal is counted in
    /// [`stats().rejected_count`](CircuitBreakerStats::rejected_count) and
    /// reported to `on_event`, as the combinator's are.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz_core::{ClockExt, CircuitState, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let breaker = clock.shared_breaker()
    ///     .failure_threshold(1)
    ///     .recovery_timeout(Duration::from_secs(5))
    ///     .build()?;
    /// breaker.try_acquire()?.failure(); // opens
    ///
    /// let refused = breaker.try_acquire().unwrap_err();
    /// assert_eq!(refused.retry_at().map(|t| t.as_duration()), Some(Duration::from_secs(5)));
    ///
    /// clock.advance(Duration::from_secs(5));
    /// let probe = breaker.try_acquire()?;
    /// assert!(probe.is_probe());
    /// drop(probe); // cancelled: the probe slot is given back
    /// assert_eq!(breaker.state(), CircuitState::HalfOpen);
    /// breaker.try_acquire()?.success(); // the next probe closes it
    /// assert_eq!(breaker.state(), CircuitState::Closed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Result<BreakerPermit<'_, K>, CircuitOpen> {
        let ticket = self.shared.acquire()?;
        Ok(BreakerPermit::new(&self.shared, ticket))
    }

    /// As [`try_acquire`](Self::try_acquire), with a permit that holds a
    /// handle to the breaker: `'static` when `K` is, `Send` when `K` is
    /// `Send + Sync`, for a call that outlives the borrow (a spawned task,
    /// a tower response future).
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire).
    ///
    /// # Examples
    ///
    /// ```
    /// use kompoz_core::{ClockExt, ManualClock};
    ///
    /// let breaker = ManualClock::new().shared_breaker().build()?;
    /// let permit = breaker.try_acquire_owned()?;
    /// let call = std::thread::spawn(move || {
    ///     let failed = false; // the call's outcome
    ///     permit.record(failed);
    /// });
    /// call.join().unwrap();
    /// assert_eq!(breaker.stats().success_count, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_acquire_owned(&self) -> Result<OwnedBreakerPermit<K>, CircuitOpen> {
        let ticket = self.shared.acquire()?;
        Ok(OwnedBreakerPermit::new(Arc::clone(&self.shared), ticket))
    }

    /// Whether the state was set by hand with [`force_open`](Self::force_open)
    /// or [`force_closed`](Self::force_closed) (and not yet [`reset`](Self::reset)).
    pub fn is_forced(&self) -> bool {
        self.shared.load().mode() != Mode::Auto
    }

    /// A snapshot of the bookkeeping (the reference's `get_stats()`).
    pub fn stats(&self) -> CircuitBreakerStats {
        self.shared.stats()
    }

    /// Closes the circuit by hand and starts afresh: counts, window and
    /// back-off are cleared, a forced state is lifted, and calls admitted
    /// before the reset no longer count.
    pub fn reset(&self) {
        self.shared
            .set_by_hand(CircuitState::Closed, Mode::Auto, true);
    }

    /// Opens the circuit by hand and keeps it open (isolation): every call is
    /// rejected and no probe is let through until [`reset`](Self::reset) or
    /// [`force_closed`](Self::force_closed). `state()` reports `Open` and
    /// [`is_forced`](Self::is_forced) `true`; `on_state_change` fires only if
    /// the state was not `Open` already. Calls admitted before no longer count.
    pub fn force_open(&self) {
        self.shared
            .set_by_hand(CircuitState::Open, Mode::ForcedOpen, false);
    }

    /// Closes the circuit by hand and keeps it closed (disabled, record
    /// only): every call runs, outcomes are counted, kept in the window and
    /// reported as events, but nothing trips it until [`reset`](Self::reset)
    /// or [`force_open`](Self::force_open). `state()` reports `Closed` and
    /// [`is_forced`](Self::is_forced) `true`.
    pub fn force_closed(&self) {
        self.shared
            .set_by_hand(CircuitState::Closed, Mode::ForcedClosed, false);
    }
}

impl<K: fmt::Debug> fmt::Debug for Breaker<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = Word(self.shared.word.load(Ordering::Acquire));
        f.debug_struct("Breaker")
            .field("state", &word.state())
            .field("mode", &word.mode())
            .field("config", &self.shared.config)
            .field("clock", &self.shared.clock)
            .finish_non_exhaustive()
    }
}

/// `last_*` timestamps are stored as nanoseconds + 1; this means "never".
/// (The + 1 saturates: a stamp at the clock's very last instant, `u64::MAX`
/// ns, reads back one nanosecond early.)
const NEVER: u64 = 0;

/// Keeps a hot atomic on a cache line of its own.
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct Padded<T>(T);

impl<T> Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

pub(crate) struct Shared<K> {
    word: Padded<AtomicU64>,
    /// Written on every CLOSED success: kept off the word's cache line so
    /// that admissions (loads of the word) on other cores stay cheap.
    successes: Padded<AtomicU64>,
    failures: AtomicU64,
    rejected: AtomicU64,
    slow_calls: AtomicU64,
    last_failure: AtomicU64,
    last_success: AtomicU64,
    /// Nanoseconds on `clock` at which the current OPEN period ends.
    open_until: AtomicU64,
    locked: Mutex<Locked>,
    /// Notifications not yet delivered (see `notify.rs`). Locked after
    /// `locked` when both are held, never before.
    notes: Mutex<Notes>,
    /// Someone listens: `on_state_change` or `on_event` is set.
    listens: bool,
    /// Calls are timed: a slow-call policy or an event subscriber.
    timed: bool,
    /// Every completion reads the clock anyway.
    end_time_always: bool,
    /// A CLOSED success with no failure streak needs only a counter bump.
    fast_success: bool,
    /// `success_count` is kept (the default).
    count_successes: bool,
    config: Config,
    clock: K,
    on_state_change: Option<Box<StateChangeFn>>,
    on_event: Option<Box<EventFn>>,
}

/// What the slow paths share, under the lock.
struct Locked {
    window: Option<Window>,
    /// Trips since the circuit last closed (the back-off level).
    trips: u32,
    /// SplitMix64 state for jitter.
    rng: u64,
}

/// An admitted call: which state (generation) it belongs to, whether it is
/// a probe, and when it started (meaningful only when calls are timed).
///
/// Plain integers, so moving it through the call's future is two register
/// moves, not a byte-wise copy of padded fields.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket {
    start_nanos: u64,
    /// The generation, with [`PROBE`] set for a half-open probe.
    tag: u32,
}

const PROBE: u32 = 1 << 31;

impl Ticket {
    pub(crate) fn generation(self) -> u32 {
        self.tag & !PROBE
    }

    pub(crate) fn probe(self) -> bool {
        self.tag & PROBE != 0
    }
}

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
}

impl<K: Clock> LazyNow<'_, K> {
    fn get(&mut self) -> Instant {
        *self.now.get_or_insert_with(|| self.clock.now())
    }
}

impl<K: Clock> Shared<K> {
    fn load(&self) -> Word {
        Word(self.word.load(Ordering::Acquire))
    }

    fn cas(&self, current: Word, new: Word) -> Result<(), Word> {
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
    fn acquire_slow(&self, mut word: Word) -> Result<Ticket, CircuitOpen> {
        loop {
            match word.state() {
                CircuitState::Closed => return Ok(self.ticket(word, false)),
                CircuitState::HalfOpen => {
                    let in_flight = word.low();
                    if in_flight >= self.config.half_open_max {
                        return Err(self.reject(CircuitState::HalfOpen, None));
                    }
                    match self.cas(word, word.with_low(in_flight + 1)) {
                        Ok(()) => return Ok(self.ticket(word, true)),
                        Err(current) => word = current,
                    }
                }
                CircuitState::Open => {
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

    fn ticket(&self, word: Word, probe: bool) -> Ticket {
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
    fn reject(&self, state: CircuitState, retry_at: Option<Instant>) -> CircuitOpen {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        if self.on_event.is_some() {
            self.tell_rejected(state);
        }
        CircuitOpen::new(state, retry_at)
    }

    /// Out of line, so that a rejection without a subscriber stays a
    /// counter bump.
    #[inline(never)]
    fn tell_rejected(&self, state: CircuitState) {
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
    fn enter_half_open(&self, seen: Word) -> Option<Ticket> {
        let entered = {
            let _locked = self.locked.lock();
            // No lock-free path writes an OPEN word, so it is exactly `seen`
            // unless a transition happened.
            let next = seen.next(CircuitState::HalfOpen, Mode::Auto).with_low(1);
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

    fn cas_strong(&self, current: Word, new: Word) -> bool {
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
    fn transition_locked(&self, _locked: &mut Locked, state: CircuitState, mode: Mode) -> Word {
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
    fn open_locked(&self, locked: &mut Locked, now: Instant) {
        let nanos = self.jittered(locked, self.config.open_nanos(locked.trips));
        locked.trips = locked.trips.saturating_add(1);
        // Published by the CAS below (release), read after an acquire load
        // of an OPEN word.
        self.open_until
            .store(now.as_nanos().saturating_add(nanos), Ordering::Relaxed);
        self.transition_locked(locked, CircuitState::Open, Mode::Auto);
    }

    fn close_locked(&self, locked: &mut Locked, mode: Mode) -> Word {
        locked.trips = 0;
        if let Some(window) = &mut locked.window {
            window.clear();
        }
        self.transition_locked(locked, CircuitState::Closed, mode)
    }

    fn jittered(&self, locked: &mut Locked, nanos: u64) -> u64 {
        let jitter = self.config.jitter;
        if jitter == 0.0 {
            return nanos;
        }
        // SplitMix64: one step per open period.
        locked.rng = locked.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = locked.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let unit = (z >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        let spread = nanos as f64 * (1.0 + jitter * (2.0 * unit - 1.0));
        let cap = self.config.backoff.map_or(u64::MAX, |(_, max)| max);
        (spread as u64).min(cap)
    }

    /// Records the outcome of an admitted call. No user code runs here:
    /// `Some` means listeners may have something to hear, which the caller
    /// delivers with [`deliver`](Self::deliver) once it has marked the call
    /// settled, so that a listener's panic finds nothing left to undo.
    #[inline]
    pub(crate) fn complete(&self, ticket: Ticket, failure: bool) -> Option<Pending> {
        // The healthy CLOSED success, inline: one load, one relaxed add.
        // Exactly what `complete_slow` does for it when nothing reads the
        // clock, keeps a window or listens.
        if !failure && self.fast_success && !ticket.probe() {
            let word = self.load();
            if word.generation() == ticket.generation() && word.low() == 0 {
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
        if outcome.is_some() && failure {
            self.stamp_failure(&mut now);
        }
        Pending {
            outcome: now.told.map(|(failure, slow)| (failure, slow, now.elapsed)),
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

    /// `None` if stale (the outcome was ignored).
    fn complete_closed(
        &self,
        generation: u32,
        failure: bool,
        slow: bool,
        now: &mut LazyNow<'_, K>,
    ) -> Option<()> {
        let word = self.load();
        if !word.admitted(generation, CircuitState::Closed) {
            return None;
        }
        if self.locked_closed_path() {
            return self.complete_closed_locked(generation, failure, slow, now);
        }
        self.count(failure, slow, now);
        if word.mode() == Mode::ForcedClosed {
            if failure {
                now.get(); // no streak is kept: stamp every failure
            }
            return Some(());
        }
        if failure {
            self.closed_failure(word, generation, now);
        } else if word.low() != 0 {
            self.clear_streak(word, generation, now);
        }
        Some(())
    }

    /// Whether CLOSED outcomes go through the lock (a sliding window).
    fn locked_closed_path(&self) -> bool {
        self.config.rates.is_some()
    }

    /// Ends a failure streak: the success that changes something is stamped.
    fn clear_streak(&self, mut word: Word, generation: u32, now: &mut LazyNow<'_, K>) {
        while word.generation() == generation && word.low() != 0 {
            match self.cas(word, word.with_low(0)) {
                Ok(()) => {
                    self.stamp_success(now);
                    return;
                }
                Err(actual) => word = actual,
            }
        }
    }

    /// One more consecutive failure; trips under the lock at the threshold.
    fn closed_failure(&self, mut word: Word, generation: u32, now: &mut LazyNow<'_, K>) {
        loop {
            if word.generation() != generation {
                return;
            }
            let streak = word.low() + 1;
            if self.config.consecutive.is_some_and(|t| streak >= t) {
                let mut locked = self.locked.lock();
                return self.closed_failure_locked(&mut locked, generation, false, now);
            }
            match self.cas(word, word.with_low(streak)) {
                Ok(()) => {
                    if streak == 1 {
                        now.get(); // the first failure of a streak is stamped
                    }
                    return;
                }
                Err(actual) => word = actual,
            }
        }
    }

    /// The consecutive-failure update under the lock; `trip` forces a trip
    /// (a rate policy decided). Opens the circuit if either says so.
    fn closed_failure_locked(
        &self,
        locked: &mut Locked,
        generation: u32,
        mut trip: bool,
        now: &mut LazyNow<'_, K>,
    ) {
        let mut word = self.load();
        loop {
            if word.generation() != generation {
                return;
            }
            let streak = word.low() + 1;
            trip |= self.config.consecutive.is_some_and(|t| streak >= t);
            if trip {
                return self.open_locked(locked, now.get());
            }
            match self.cas(word, word.with_low(streak)) {
                Ok(()) => {
                    if streak == 1 {
                        now.get(); // the first failure of a streak is stamped
                    }
                    return;
                }
                Err(actual) => word = actual,
            }
        }
    }

    /// CLOSED outcomes when a sliding window is kept: all under the lock.
    fn complete_closed_locked(
        &self,
        generation: u32,
        failure: bool,
        slow: bool,
        now: &mut LazyNow<'_, K>,
    ) -> Option<()> {
        let mut locked = self.locked.lock();
        let word = self.load();
        if !word.admitted(generation, CircuitState::Closed) {
            return None;
        }
        self.count(failure, slow, now);
        let rates = self.config.rates?;
        let time = if locked.window.as_ref().is_some_and(Window::needs_time) {
            now.get()
        } else {
            Instant::ZERO
        };
        let window = locked.window.as_mut()?;
        window.record(time, failure, slow);
        if word.mode() == Mode::ForcedClosed {
            if failure {
                now.get(); // no streak is kept: stamp every failure
            }
            return Some(());
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
        } else if word.low() != 0 {
            self.clear_streak(word, generation, now);
        }
        Some(())
    }

    /// A probe's outcome: a failure (or a slow call under a slow-call
    /// policy) reopens the circuit; `half_open_max_calls` successes close it.
    fn complete_probe(
        &self,
        generation: u32,
        failure: bool,
        slow: bool,
        now: &mut LazyNow<'_, K>,
    ) -> Option<()> {
        let mut locked = self.locked.lock();
        let mut word = self.load();
        if !word.admitted(generation, CircuitState::HalfOpen) {
            return None;
        }
        self.count(failure, slow, now);
        let slow_fails = slow && self.config.rates.is_some_and(|r| r.slow_rate.is_some());
        if failure || slow_fails {
            self.open_locked(&mut locked, now.get());
            return Some(());
        }
        self.stamp_success(now);
        loop {
            let successes = word.high() + 1;
            if successes >= self.config.half_open_max {
                self.close_locked(&mut locked, Mode::Auto);
                return Some(());
            }
            let next = word
                .with_low(word.low().saturating_sub(1))
                .with_high(successes);
            match self.cas(word, next) {
                Ok(()) => return Some(()),
                Err(actual) => word = actual,
            }
        }
    }

    /// A call whose inner combinator panicked: a failure, as an exception
    /// is in resilience4j (a probe's panic reopens the circuit).
    pub(crate) fn inner_panicked(&self, ticket: Ticket) {
        if let Some(pending) = self.complete(ticket, true) {
            self.deliver(pending);
        }
    }

    /// A call dropped between polls (cancelled, or timed out from outside):
    /// no outcome; a probe gives its slot back.
    pub(crate) fn abandon(&self, ticket: Ticket) {
        if ticket.probe() {
            self.release_probe(ticket.generation());
        }
    }

    /// Gives back a probe slot without an outcome.
    fn release_probe(&self, generation: u32) {
        let mut word = self.load();
        while word.generation() == generation
            && word.state() == CircuitState::HalfOpen
            && word.low() > 0
        {
            match self.cas(word, word.with_low(word.low() - 1)) {
                Ok(()) => return,
                Err(actual) => word = actual,
            }
        }
    }

    fn set_by_hand(&self, state: CircuitState, mode: Mode, clear: bool) {
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

    /// Queues a transition for the listeners (nothing if no one listens).
    fn post_transition(&self, from: CircuitState, to: CircuitState) {
        if self.listens {
            self.notes.lock().push(Note::StateChange { from, to });
        }
    }

    /// Delivers the queued notes, in order, unless another drainer is at
    /// work (it will deliver ours). Never called with `locked` held. See
    /// `notify.rs` for what a panicking callback does.
    #[inline]
    fn drain(&self) {
        // On every completion: a branch when no one listens.
        if self.listens {
            self.drain_listened();
        }
    }

    #[inline(never)]
    fn drain_listened(&self) {
        if !self.notes.lock().start() {
            return;
        }
        // Without `std` a callback's panic unwinds through here: the guard
        // gives up the drainer's role so the next drain delivers the rest.
        struct Draining<'a>(&'a Mutex<Notes>);
        impl Drop for Draining<'_> {
            fn drop(&mut self) {
                self.0.lock().abort();
            }
        }
        let draining = Draining(&self.notes);
        let mut caught = Caught::new();
        loop {
            let next = self.notes.lock().next();
            let Some(note) = next else { break };
            match note {
                Note::StateChange { from, to } => {
                    if let Some(callback) = &self.on_state_change {
                        caught.run(|| callback(from, to, &self.stats()));
                    }
                    caught.run(|| self.deliver_event(&BreakerEvent::StateChange { from, to }));
                }
            }
        }
        // `next` gave up the role already.
        core::mem::forget(draining);
        caught.resume();
    }

    fn deliver_event(&self, event: &BreakerEvent) {
        if let Some(subscriber) = &self.on_event {
            subscriber(event);
        }
    }

    pub(crate) fn stats(&self) -> CircuitBreakerStats {
        let (trips, window) = {
            let locked = self.locked.lock();
            let window = locked.window.as_ref().map(|w| {
                let now = if w.needs_time() {
                    self.clock.now()
                } else {
                    Instant::ZERO
                };
                w.totals(now)
            });
            (locked.trips, window)
        };
        let word = self.load();
        let instant = |stamp: &AtomicU64| match stamp.load(Ordering::Relaxed) {
            NEVER => None,
            nanos => Some(Instant::from_nanos(nanos - 1)),
        };
        let state = word.state();
        let open = state == CircuitState::Open && word.mode() == Mode::Auto;
        let half_open = state == CircuitState::HalfOpen;
        CircuitBreakerStats {
            state,
            forced: word.mode() != Mode::Auto,
            failure_count: self.failures.load(Ordering::Relaxed),
            success_count: self.successes.load(Ordering::Relaxed),
            rejected_count: self.rejected.load(Ordering::Relaxed),
            slow_call_count: self.slow_calls.load(Ordering::Relaxed),
            consecutive_failures: if state == CircuitState::Closed {
                word.low()
            } else {
                0
            },
            half_open_successes: if half_open { word.high() } else { 0 },
            half_open_in_flight: if half_open { word.low() } else { 0 },
            last_failure_time: instant(&self.last_failure),
            last_success_time: instant(&self.last_success),
            open_until: open.then(|| Instant::from_nanos(self.open_until.load(Ordering::Relaxed))),
            next_open_duration: Duration::from_nanos(self.config.open_nanos(trips)),
            consecutive_opens: trips,
            window,
        }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::ManualClock;

    /// A wrapped generation (simulated: the word is set by hand to a
    /// HALF_OPEN period with the CLOSED ticket's generation) does not pass a
    /// CLOSED outcome off as a probe's: the probe count stays whole.
    #[test]
    fn a_wrapped_generation_does_not_mix_closed_and_probe_outcomes() {
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
        let wrapped = last.next(CircuitState::HalfOpen, Mode::Auto).with_low(1);
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
