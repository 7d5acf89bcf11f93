//! The cancellation and panic sweep's harness.
//!
//! [`sweep`] builds a fresh case (a [`ManualClock`], the state to check, and
//! a future over it) for `n = 1, 2, 3, …`, polls the future `n` times, drops
//! it, and runs the invariant check; it stops at the first `n` within which
//! the future completes (that run is checked as well). Between two polls,
//! time jumps to the next pending sleep's deadline when nothing woke the
//! future, so every await point of a timer-driven future is reached.
//!
//! [`Probe`] is the inner combinator the sweeps wrap: it counts the calls
//! that started, finished and panicked, and how many of its futures are
//! alive, so "nothing leaked" includes "no inner future outlived the outer
//! one".

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::task::{Context, Poll};
use std::time::Duration;

use kompoz_core::{Breaker, Clock, ClockExt, Combinator, ManualClock};

pub use crate::support::CountingWaker;

/// What a sweep covered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SweepReport {
    /// Cancellation points swept: runs dropped after 1, 2, … polls.
    pub dropped: usize,
    /// Polls the undisturbed future needed to complete.
    pub polls_to_complete: usize,
}

/// Polls `fut` at most `limit` times, advancing `clock` to its next deadline
/// whenever the future is pending and was not woken. Returns the output if it
/// completed within `limit` polls, and the number of polls made.
///
/// # Panics
///
/// If the future stalls: pending, not woken, and no sleep pending.
pub fn poll_n<F: Future>(
    clock: &ManualClock,
    fut: Pin<&mut F>,
    limit: usize,
) -> (Option<F::Output>, usize) {
    let (wakes, waker) = CountingWaker::new();
    let mut cx = Context::from_waker(&waker);
    let mut fut = fut;
    for polls in 1..=limit {
        let before = wakes.wakes();
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return (Some(out), polls);
        }
        if polls < limit && wakes.wakes() == before {
            // Pending and not woken: only time can move it on. With no sleep
            // pending either it would never complete: fail, not sweep forever.
            assert!(
                clock.advance_to_next_deadline().is_some(),
                "future stalled after {polls} polls: pending, not woken, no sleep pending"
            );
        }
    }
    (None, limit)
}

/// The cancellation sweep (see the module docs).
///
/// `setup` builds a fresh `(clock, state, future)`; `check(&state, polls)` is
/// called after the future was dropped after `polls` polls (or completed in
/// `polls` polls, for the last run) and must assert that nothing leaked.
///
/// # Panics
///
/// If the future needs more than 10,000 polls, or stalls (see [`poll_n`]).
pub fn sweep<S, St, F, K>(mut setup: S, mut check: K) -> SweepReport
where
    S: FnMut() -> (ManualClock, St, F),
    F: Future,
    K: FnMut(&St, usize),
{
    const MAX_POLLS: usize = 10_000;
    for n in 1..=MAX_POLLS {
        let (clock, state, fut) = setup();
        let completed = {
            let mut fut = pin!(fut);
            let (out, polls) = poll_n(&clock, fut.as_mut(), n);
            out.map(|_| polls)
        }; // the future is dropped here, pending or not
        check(&state, n);
        if let Some(polls) = completed {
            return SweepReport {
                dropped: n - 1,
                polls_to_complete: polls,
            };
        }
    }
    panic!("the future did not complete within {MAX_POLLS} polls");
}

/// Runs `fut` to completion (advancing `clock` as [`block_on_manual`](crate::block_on_manual))
/// and returns whether it panicked.
///
/// The [`Probe`]'s scripted panics are not printed (a process-wide panic hook
/// filters them out; every other panic is reported as usual).
pub fn panics<F: Future>(clock: &ManualClock, fut: F) -> bool {
    quiet_scripted_panics();
    catch_unwind(AssertUnwindSafe(|| crate::block_on_manual(clock, fut))).is_err()
}

/// The payload of a scripted panic; [`quiet_scripted_panics`] keeps it off stderr.
pub const SCRIPTED: &str = "probe panicked as scripted";

/// Installs (once) a panic hook that stays silent for [`Probe`]'s scripted
/// panics and hands every other panic to the previous hook.
pub fn quiet_scripted_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&SCRIPTED) {
                previous(info);
            }
        }));
    });
}

/// A probe that yields twice, sleeps `sleep`, then ends as `end`.
pub fn probe(clock: &ManualClock, sleep: Duration, end: End) -> Probe<ManualClock> {
    Probe::constant(clock.clone(), Script::new(2, sleep, end))
}

/// Nothing alive inside, no timer left behind.
pub fn quiet(clock: &ManualClock, probe: &ProbeStats) {
    assert_eq!(probe.live(), 0, "an inner future outlived the call");
    assert_eq!(clock.pending_sleeps(), 0, "a sleep outlived the call");
}

/// [`quiet`] for each of `probes`.
pub fn all_quiet(clock: &ManualClock, probes: &[Arc<ProbeStats>]) {
    for s in probes {
        quiet(clock, s);
    }
}

/// A breaker (threshold 2, recovery 10 ms, `probes` probes) and a probe
/// inner following `script`.
pub fn guarded(
    clock: &ManualClock,
    probes: u32,
    script: impl Fn(usize) -> Script + Send + Sync + 'static,
) -> (Breaker<ManualClock>, Probe<ManualClock>) {
    let breaker = clock
        .shared_breaker()
        .failure_threshold(2)
        .recovery_timeout(Duration::from_millis(10))
        .half_open_max_calls(probes)
        .build()
        .unwrap();
    (breaker, Probe::new(clock.clone(), script))
}

/// How one call into a [`Probe`] behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Script {
    /// Times the call yields (wakes itself and returns `Pending`) first.
    pub yields: usize,
    /// Then how long it sleeps on the probe's clock (zero: no sleep).
    pub sleep: Duration,
    /// Then how it ends.
    pub end: End,
}

/// How a [`Probe`] call ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// `(true, ctx)`.
    Pass,
    /// `(false, ctx)`.
    Fail,
    /// A panic (in the future, after the yields and the sleep).
    Panic,
    /// A panic inside `run` itself, before it returns a future (the yields
    /// and the sleep are ignored).
    PanicInRun,
}

impl Script {
    /// Passes at once.
    pub const PASS: Script = Script::new(0, Duration::ZERO, End::Pass);
    /// Fails at once.
    pub const FAIL: Script = Script::new(0, Duration::ZERO, End::Fail);

    /// A panic at every point a call can reach, given the yields and sleep
    /// of the calls it replaces: inside `run`, at the first poll, after each
    /// yield, and after the sleep.
    pub fn panics_at_every_point(yields: usize, sleep: Duration) -> Vec<Script> {
        let mut scripts = vec![Script::new(0, Duration::ZERO, End::PanicInRun)];
        scripts.extend((0..=yields).map(|y| Script::new(y, Duration::ZERO, End::Panic)));
        if !sleep.is_zero() {
            scripts.push(Script::new(yields, sleep, End::Panic));
        }
        scripts
    }

    /// A script.
    pub const fn new(yields: usize, sleep: Duration, end: End) -> Script {
        Script { yields, sleep, end }
    }
}

/// What a [`Probe`] counted.
#[derive(Debug, Default)]
pub struct ProbeStats {
    started: AtomicUsize,
    live: AtomicUsize,
    passed: AtomicUsize,
    failed: AtomicUsize,
    panicked: AtomicUsize,
}

impl ProbeStats {
    /// Calls that started running.
    pub fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }
    /// Call futures alive right now (started and not yet dropped).
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
    /// Calls that returned `(true, _)`.
    pub fn passed(&self) -> usize {
        self.passed.load(Ordering::SeqCst)
    }
    /// Calls that returned `(false, _)`.
    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::SeqCst)
    }
    /// Calls that panicked.
    pub fn panicked(&self) -> usize {
        self.panicked.load(Ordering::SeqCst)
    }
    /// Calls that were dropped before they ended.
    pub fn cancelled(&self) -> usize {
        self.started() - self.live() - self.passed() - self.failed() - self.panicked()
    }
}

type ScriptFn = dyn Fn(usize) -> Script + Send + Sync;

/// An inner combinator that follows a [`Script`] per call (chosen by the
/// call's index, from 0) and counts what happened (see [`ProbeStats`]).
#[derive(Clone)]
pub struct Probe<K> {
    clock: K,
    script: Arc<ScriptFn>,
    stats: Arc<ProbeStats>,
}

impl<K: Clock> Probe<K> {
    /// Every call follows `script`.
    pub fn constant(clock: K, script: Script) -> Self {
        Self::new(clock, move |_| script)
    }

    /// Call `i` (from 0) follows `script(i)`.
    pub fn new(clock: K, script: impl Fn(usize) -> Script + Send + Sync + 'static) -> Self {
        Probe {
            clock,
            script: Arc::new(script),
            stats: Arc::default(),
        }
    }

    /// The counters, shared with every clone.
    pub fn stats(&self) -> Arc<ProbeStats> {
        Arc::clone(&self.stats)
    }

    /// One attempt of the probe as the call API's operation
    /// (`policy.call(|| probe.attempt())`): the same script, ending in
    /// `Ok(())` or `Err(ProbeFailed)`. A script's `PanicInRun` panics in
    /// the closure, before a future exists.
    pub fn attempt(&self) -> impl Future<Output = Result<(), ProbeFailed>> + use<'_, K> {
        let run = self.run(());
        async move {
            match run.await {
                (true, ()) => Ok(()),
                (false, ()) => Err(ProbeFailed),
            }
        }
    }
}

/// The error of a [`Probe`]'s failed [`attempt`](Probe::attempt): neither
/// `Clone` nor `Copy`, as a user's error need not be.
#[derive(Debug, PartialEq, Eq)]
pub struct ProbeFailed;

impl<K> fmt::Debug for Probe<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probe")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Decrements `live` however the call's future goes away.
struct Live(Arc<ProbeStats>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<C, K: Clock> Combinator<C> for Probe<K> {
    fn run(&self, ctx: C) -> impl Future<Output = (bool, C)> {
        let index = self.stats.started.fetch_add(1, Ordering::SeqCst);
        self.stats.live.fetch_add(1, Ordering::SeqCst);
        let live = Live(Arc::clone(&self.stats));
        let script = (self.script)(index);
        if script.end == End::PanicInRun {
            live.0.panicked.fetch_add(1, Ordering::SeqCst);
            std::panic::panic_any(SCRIPTED); // `live` goes with the unwind
        }
        let sleep = (!script.sleep.is_zero()).then(|| self.clock.sleep(script.sleep));
        async move {
            let live = live;
            for _ in 0..script.yields {
                YieldNow(false).await;
            }
            if let Some(sleep) = sleep {
                sleep.await;
            }
            let counter = match script.end {
                End::Pass => &live.0.passed,
                End::Fail => &live.0.failed,
                End::Panic | End::PanicInRun => &live.0.panicked,
            };
            counter.fetch_add(1, Ordering::SeqCst);
            match script.end {
                End::Pass => (true, ctx),
                End::Fail => (false, ctx),
                End::Panic | End::PanicInRun => std::panic::panic_any(SCRIPTED),
            }
        }
    }
}

/// Returns `Pending` once, waking itself: one extra await point.
#[derive(Debug)]
pub struct YieldNow(pub bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// A hook's trigger: counts its hits and panics (with [`SCRIPTED`]) on the
/// chosen one, so a sweep can first count a hook's hits in a clean run and
/// then panic at each of them in turn.
#[derive(Clone, Debug, Default)]
pub struct PanicAt {
    target: Option<usize>,
    hits: Arc<AtomicUsize>,
}

impl PanicAt {
    /// Never panics; only counts.
    pub fn never() -> Self {
        PanicAt::default()
    }

    /// Panics on hit `n` (counting from 0).
    pub fn on(n: usize) -> Self {
        PanicAt {
            target: Some(n),
            hits: Arc::default(),
        }
    }

    /// Counts a hit; panics if it is the chosen one.
    pub fn hit(&self) {
        let n = self.hits.fetch_add(1, Ordering::SeqCst);
        if Some(n) == self.target {
            std::panic::panic_any(SCRIPTED);
        }
    }

    /// Hits so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Whether the chosen hit has happened (the panic was raised).
    pub fn fired(&self) -> bool {
        self.target.is_some_and(|n| self.hits() > n)
    }
}
