//! Regressions of issue 11, one per defect: panicking user code must not
//! wedge a breaker, lose or reorder its events, or free a probe slot twice;
//! configured extremes must not switch a limit off or stop a back-off from
//! growing. Each test failed before its fix.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Context;
use std::time::Duration;

use futures::task::noop_waker;
use kompoz_core::{
    Backoff, Breaker, CircuitState, Clock, Combinator, ManualClock, RateLimit, RateLimited, Retry,
    SlidingWindow, circuit_breaker::BreakerEvent, rule,
};
use kompoz_tests::block_on_manual;
use kompoz_tests::sweep::{SCRIPTED, panics};

const MS: Duration = Duration::from_millis(1);

/// A hand-written combinator whose `run` panics before it returns a future.
struct PanicsInRun;

impl<C> Combinator<C> for PanicsInRun {
    fn run(&self, _ctx: C) -> impl Future<Output = (bool, C)> {
        std::panic::panic_any(SCRIPTED);
        #[allow(unreachable_code)]
        std::future::pending()
    }
}

fn trip(clock: &ManualClock, breaker: &Breaker<ManualClock>) {
    let failing = breaker.guard(rule(async |_: &u32| false));
    block_on_manual(clock, failing.run(0));
    assert_eq!(breaker.state(), CircuitState::Open);
}

fn passes(clock: &ManualClock, breaker: &Breaker<ManualClock>) -> bool {
    let passing = breaker.guard(rule(async |_: &u32| true));
    block_on_manual(clock, passing.run(0)).0
}

// 1. An inner `run` that panics before returning its future.
#[test]
fn a_run_that_panics_synchronously_is_a_failure_and_frees_the_probe_slot() {
    let clock = ManualClock::new();
    let breaker = Breaker::builder(clock.clone())
        .failure_threshold(1)
        .recovery_timeout(10 * MS)
        .build()
        .unwrap();
    let guarded = breaker.guard(PanicsInRun);
    // CLOSED: counted as a failure, which trips the breaker (threshold 1).
    assert!(panics(&clock, guarded.run(1u32)));
    let stats = breaker.stats();
    assert_eq!(stats.failure_count, 1, "{stats:?}");
    assert_eq!(stats.state, CircuitState::Open);
    // HALF_OPEN: the probe panics; the slot is not kept.
    clock.advance(10 * MS);
    assert!(panics(&clock, guarded.run(2u32)));
    let stats = breaker.stats();
    assert_eq!(stats.state, CircuitState::Open, "{stats:?}");
    assert_eq!(stats.half_open_in_flight, 0);
    clock.advance(10 * MS);
    assert!(passes(&clock, &breaker), "stuck: {:?}", breaker.stats());
    assert_eq!(breaker.state(), CircuitState::Closed);
}

type Log = Arc<Mutex<Vec<BreakerEvent>>>;

fn state_changes(log: &Log) -> Vec<(CircuitState, CircuitState)> {
    log.lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            BreakerEvent::StateChange { from, to } => Some((*from, *to)),
            _ => None,
        })
        .collect()
}

// 2a. `on_state_change` panicking on OPEN -> HALF_OPEN.
#[test]
fn a_state_change_callback_panicking_on_half_open_leaves_no_probe_slot_taken() {
    let clock = ManualClock::new();
    let armed = Arc::new(AtomicBool::new(true));
    let log: Log = Arc::default();
    let (a, l) = (Arc::clone(&armed), Arc::clone(&log));
    let breaker = Breaker::builder(clock.clone())
        .failure_threshold(1)
        .recovery_timeout(10 * MS)
        .on_state_change(move |_, to, _| {
            if to == CircuitState::HalfOpen && a.swap(false, Ordering::SeqCst) {
                std::panic::panic_any(SCRIPTED);
            }
        })
        .on_event(move |e| l.lock().unwrap().push(e.clone()))
        .build()
        .unwrap();
    trip(&clock, &breaker);
    clock.advance(10 * MS);
    let passing = breaker.guard(rule(async |_: &u32| true));
    assert!(panics(&clock, passing.run(1)), "the panic was swallowed");
    let stats = breaker.stats();
    assert_eq!(
        stats.half_open_in_flight, 0,
        "a probe slot leaked: {stats:?}"
    );
    // The transition's event was delivered despite the callback's panic.
    assert!(
        state_changes(&log).contains(&(CircuitState::Open, CircuitState::HalfOpen)),
        "{:?}",
        log.lock().unwrap()
    );
    assert!(passes(&clock, &breaker), "stuck: {:?}", breaker.stats());
    assert_eq!(breaker.state(), CircuitState::Closed);
}

// 2b. A subscriber panicking on the failure that trips the breaker.
#[test]
fn a_subscriber_panicking_on_the_tripping_failure_loses_no_state_change() {
    let clock = ManualClock::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log: Log = Arc::default();
    let (s, l) = (Arc::clone(&seen), Arc::clone(&log));
    let breaker = Breaker::builder(clock.clone())
        .failure_threshold(1)
        .on_state_change(move |from, to, _| s.lock().unwrap().push((from, to)))
        .on_event(move |e| {
            l.lock().unwrap().push(e.clone());
            if matches!(e, BreakerEvent::Failure { .. }) {
                std::panic::panic_any(SCRIPTED);
            }
        })
        .build()
        .unwrap();
    let failing = breaker.guard(rule(async |_: &u32| false));
    assert!(panics(&clock, failing.run(0)), "the panic was swallowed");
    assert_eq!(breaker.state(), CircuitState::Open);
    assert_eq!(
        *seen.lock().unwrap(),
        [(CircuitState::Closed, CircuitState::Open)]
    );
    assert_eq!(
        state_changes(&log),
        [(CircuitState::Closed, CircuitState::Open)]
    );
}

// 3. A subscriber panicking on a probe's success.
#[test]
fn a_subscriber_panicking_on_a_probe_success_frees_its_slot_once() {
    let clock = ManualClock::new();
    let armed = Arc::new(AtomicBool::new(false));
    let a = Arc::clone(&armed);
    let breaker = Breaker::builder(clock.clone())
        .failure_threshold(1)
        .recovery_timeout(10 * MS)
        .half_open_max_calls(2)
        .on_event(move |e| {
            if matches!(e, BreakerEvent::Success { .. }) && a.swap(false, Ordering::SeqCst) {
                std::panic::panic_any(SCRIPTED);
            }
        })
        .build()
        .unwrap();
    trip(&clock, &breaker);
    clock.advance(10 * MS);
    // Probe B takes a slot and waits.
    let c = clock.clone();
    let slow = breaker.guard(rule(move |_: &u32| {
        let c = c.clone();
        async move {
            c.sleep(MS).await;
            true
        }
    }));
    let waker = noop_waker();
    let mut b = pin!(slow.run(0));
    assert!(
        b.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    assert_eq!(breaker.stats().half_open_in_flight, 1);
    // Probe A succeeds; the subscriber panics on its success.
    armed.store(true, Ordering::SeqCst);
    let quick = breaker.guard(rule(async |_: &u32| true));
    assert!(panics(&clock, quick.run(1)));
    let stats = breaker.stats();
    assert_eq!(stats.state, CircuitState::HalfOpen);
    assert_eq!(
        (stats.half_open_in_flight, stats.half_open_successes),
        (1, 1),
        "probe A's slot was freed twice: {stats:?}"
    );
    // B still holds its slot: one more probe fits, not two.
    let c = clock.clone();
    let waiting = breaker.guard(rule(move |_: &u32| {
        let c = c.clone();
        async move {
            c.sleep(MS).await;
            true
        }
    }));
    let mut third = pin!(waiting.run(2));
    assert!(
        third
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    assert_eq!(breaker.stats().half_open_in_flight, 2);
    let rejected = block_on_manual(&clock, quick.run(3));
    assert_eq!(rejected, (false, 3), "three probes at once");
}

/// Admitted calls out of `n`, one per `step`, in reject mode.
fn admitted(limit: RateLimit, n: usize, step: Duration) -> usize {
    let clock = ManualClock::new();
    let limited =
        RateLimited::new(rule(async |_: &()| true), limit, clock.clone()).reject_when_full();
    let mut ran = 0;
    for _ in 0..n {
        if block_on_manual(&clock, limited.run(())).0 {
            ran += 1;
        }
        clock.advance(step);
    }
    ran
}

// 4a. A tolerance beyond the clock's range must not switch the limit off.
#[test]
fn a_huge_period_with_a_burst_is_refused_or_still_limits() {
    let year = Duration::from_secs(365 * 24 * 3600);
    for (period, burst) in [(Duration::MAX, 2), (100 * year, 10), (300 * year, 2)] {
        match RateLimit::with_burst(1, period, burst) {
            Err(e) => assert!(
                ["period", "burst"].contains(&e.parameter()),
                "{period:?} x {burst}: {e}"
            ),
            Ok(limit) => {
                let ran = admitted(limit, 10 * burst as usize, MS);
                assert!(ran <= burst as usize, "{period:?} burst {burst}: {ran} ran");
            }
        }
    }
}

// 4b. The emission interval rounds so that the limit is never exceeded.
#[test]
fn a_rounded_emission_interval_never_exceeds_the_rate() {
    for (rate, nanos) in [(2, 3), (3, 4), (7, 10), (1_000, 1_999)] {
        let period = Duration::from_nanos(nanos);
        let limit = RateLimit::new(rate, period).unwrap();
        let steps = 30 * nanos as usize;
        let ran = admitted(limit, steps, Duration::from_nanos(1));
        // `steps` ns hold 30 periods: at most 30 × rate calls, plus the burst.
        assert!(
            ran as u64 <= 30 * u64::from(rate) + 1,
            "{rate} per {nanos} ns: {ran} ran in {steps} ns"
        );
        assert!(limit.emission_interval() * rate >= period);
    }
}

// 5. A callback that resets on OPEN: events in the order of the transitions.
#[test]
fn a_reset_from_the_callback_is_reported_after_the_transition_that_caused_it() {
    let clock = ManualClock::new();
    let slot = Arc::new(Mutex::new(None::<Breaker<ManualClock>>));
    let log: Log = Arc::default();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let (me, l, c) = (Arc::clone(&slot), Arc::clone(&log), Arc::clone(&calls));
    let breaker = Breaker::builder(clock.clone())
        .failure_threshold(1)
        .on_state_change(move |from, to, _| {
            c.lock().unwrap().push((from, to));
            if to == CircuitState::Open {
                me.lock().unwrap().clone().unwrap().reset();
            }
        })
        .on_event(move |e| l.lock().unwrap().push(e.clone()))
        .build()
        .unwrap();
    *slot.lock().unwrap() = Some(breaker.clone());
    let failing = breaker.guard(rule(async |_: &u32| false));
    block_on_manual(&clock, failing.run(0));
    *slot.lock().unwrap() = None; // break the cycle
    let expected = [
        (CircuitState::Closed, CircuitState::Open),
        (CircuitState::Open, CircuitState::Closed),
    ];
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(state_changes(&log), expected);
    assert_eq!(*calls.lock().unwrap(), expected);
}

// 6. The trip decision and the reported rate agree.
#[test]
fn the_trip_decision_agrees_with_the_reported_failure_rate() {
    for (rate, window, failures) in [(100.0 / 3.0, 15, 5), (100.0 / 7.0, 14, 2), (10.0, 30, 3)] {
        let clock = ManualClock::new();
        let breaker = Breaker::builder(clock.clone())
            .failure_rate(rate)
            .sliding_window(SlidingWindow::Count(window))
            .minimum_calls(window)
            .build()
            .unwrap();
        let g = breaker.guard(rule(async |ok: &bool| *ok));
        for i in 0..window {
            block_on_manual(&clock, g.run(i >= failures));
        }
        let stats = breaker.stats();
        let reported = stats.window.unwrap().failure_rate();
        assert!(reported >= rate, "{reported} < {rate}");
        assert_eq!(
            stats.state,
            CircuitState::Open,
            "window reports {reported}% >= {rate}%, yet: {stats:?}"
        );
    }
}

// 7. Exponential growth from a 1 ns base.
#[test]
fn exponential_back_off_grows_from_a_tiny_base() {
    let clock = ManualClock::new();
    let delays = Arc::new(Mutex::new(Vec::new()));
    let d = Arc::clone(&delays);
    let retry = Retry::new(rule(async |_: &()| false), 8, clock.clone())
        .unwrap()
        .backoff(
            Backoff::exponential(Duration::from_nanos(1), 1.5, Duration::from_secs(1)).unwrap(),
        )
        .on_retry(move |_, delay| d.lock().unwrap().push(delay.as_nanos()));
    block_on_manual(&clock, retry.run(()));
    // ⌊1.5ⁿ⌋ ns.
    assert_eq!(*delays.lock().unwrap(), [1, 1, 2, 3, 5, 7, 11]);
}

// Review of the notification queue: a call delivers its own events and never
// another thread's. Before, per-call events were queued behind one drainer,
// so a call that found the queue idle delivered every event other threads
// posted while its subscriber ran: one rejection stalled for seconds under
// load, without bound.
#[test]
fn each_call_delivers_its_own_events_and_never_another_threads() {
    use std::thread;

    const CALLS: usize = 1000;
    let clock = ManualClock::new();
    let other_done = Arc::new(AtomicBool::new(false));
    let first_seen = Arc::new(AtomicBool::new(false));
    let delivered: Arc<Mutex<Vec<thread::ThreadId>>> = Arc::default();
    let (d, done, first) = (delivered.clone(), other_done.clone(), first_seen.clone());
    let breaker = Breaker::builder(clock.clone())
        .on_event(move |e| {
            if !matches!(e, BreakerEvent::Rejected { .. }) {
                return;
            }
            d.lock().unwrap().push(thread::current().id());
            // The first rejection's subscriber waits (bounded) for the other
            // thread to finish all its calls.
            if !first.swap(true, Ordering::SeqCst) {
                for _ in 0..10_000 {
                    if done.load(Ordering::SeqCst) {
                        break;
                    }
                    thread::sleep(Duration::from_millis(1));
                }
            }
        })
        .build()
        .unwrap();
    breaker.force_open();
    let guarded = Arc::new(breaker.guard(rule(async |_: &u32| true)));

    let first_caller = {
        let (guarded, clock) = (guarded.clone(), clock.clone());
        thread::spawn(move || {
            assert!(!block_on_manual(&clock, guarded.run(0)).0);
            thread::current().id()
        })
    };
    while !first_seen.load(Ordering::SeqCst) {
        thread::yield_now();
    }
    let other = {
        let (guarded, clock, done) = (guarded.clone(), clock.clone(), other_done.clone());
        thread::spawn(move || {
            for _ in 0..CALLS {
                assert!(!block_on_manual(&clock, guarded.run(0)).0);
            }
            done.store(true, Ordering::SeqCst);
            thread::current().id()
        })
    };
    let other_id = other.join().unwrap();
    let first_id = first_caller.join().unwrap();
    let delivered = delivered.lock().unwrap();
    let by = |id| delivered.iter().filter(|t| **t == id).count();
    assert_eq!(
        by(first_id),
        1,
        "the first caller delivered other calls' events"
    );
    assert_eq!(by(other_id), CALLS);
}
