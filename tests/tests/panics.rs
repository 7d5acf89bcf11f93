//! The panic sweep: every user hook panics at every point it is reached,
//! and nothing leaks (`cancellation.rs` sweeps the cancellation points).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::join;
use kompoz_core::{
    Breaker, CircuitState, ClockExt, Combinator, LimitMode, ManualClock, RateLimit, Registry,
    parallel_and, parallel_or, rule,
};
use kompoz_tests::sweep::{End, Probe, Script, all_quiet, guarded, panics, probe, quiet};

const MS: Duration = Duration::from_millis(1);

// ============================================== panics in every user hook
//
// Each test first runs a scenario cleanly to count how often every hook is
// reached, then runs it again once per hit, panicking there: the inner
// combinator (inside `run` before it returns its future, at its first poll,
// after each yield, after its sleep), failure predicates, `on_state_change`,
// `on_event`, `on_timeout`, `on_retry`, `stop_if`. After each run: the panic
// reached the caller, permits and probe slots are all back, the panic was
// counted as documented, and no event was lost or reordered.

use kompoz_core::{circuit_breaker::BreakerEvent, timeout::TimeoutOutcome};
use kompoz_tests::sweep::PanicAt;
use std::sync::Mutex;

/// Panic points swept by the tests below, for the summary line.
static PANIC_POINTS: AtomicUsize = AtomicUsize::new(0);

fn report_panics(name: &str, points: usize) {
    assert!(points > 0, "{name}: no panic point was reached");
    let total = PANIC_POINTS.fetch_add(points, Ordering::SeqCst) + points;
    println!("panic sweep {name}: {points} panic points; {total} so far in this run");
}

/// Where the breaker walk panics.
#[derive(Clone, Copy, Debug)]
enum BreakerHook {
    /// Inner call `call` (counting calls that started) follows `script`.
    Inner { call: usize, script: Script },
    /// The failure predicate's hit `n`.
    Predicate(usize),
    /// `on_state_change`'s hit `n`.
    StateChange(usize),
    /// `on_event`'s hit `n`.
    Event(usize),
}

/// How often each hook was reached in a clean walk.
#[derive(Debug)]
struct WalkHits {
    inner: usize,
    predicate: usize,
    state_change: usize,
    event: usize,
}

const WALK_SLEEP: Duration = MS;

/// The walk's inner calls: three failures (two trip it, the first probe
/// fails), then passes (the second probe closes it).
fn walk_script(i: usize) -> Script {
    Script::new(1, WALK_SLEEP, if i < 3 { End::Fail } else { End::Pass })
}

type Transitions = Arc<Mutex<Vec<(CircuitState, CircuitState)>>>;

/// The listeners' view is consistent with the breaker: every transition was
/// told to both listeners once and in order (a chain from CLOSED to the
/// current state), every outcome and rejection counted in `stats()` was
/// reported, and each trip or close comes right after the outcome that
/// caused it.
fn check_events(breaker: &Breaker<ManualClock>, events: &[BreakerEvent], callbacks: &Transitions) {
    let changes: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            BreakerEvent::StateChange { from, to } => Some((*from, *to)),
            _ => None,
        })
        .collect();
    assert_eq!(
        changes,
        *callbacks.lock().unwrap(),
        "on_state_change and on_event disagree"
    );
    let mut state = CircuitState::Closed;
    for &(from, to) in &changes {
        assert_eq!(from, state, "transitions out of order: {changes:?}");
        state = to;
    }
    let stats = breaker.stats();
    assert_eq!(
        state, stats.state,
        "the last transition told is not the state"
    );
    let count = |f: fn(&BreakerEvent) -> bool| events.iter().filter(|e| f(e)).count() as u64;
    assert_eq!(
        count(|e| matches!(e, BreakerEvent::Failure { .. })),
        stats.failure_count
    );
    assert_eq!(
        count(|e| matches!(e, BreakerEvent::Success { .. })),
        stats.success_count
    );
    assert_eq!(
        count(|e| matches!(e, BreakerEvent::Rejected { .. })),
        stats.rejected_count
    );
    assert_eq!(
        count(|e| matches!(e, BreakerEvent::SlowCall { .. })),
        stats.slow_call_count
    );
    for (i, e) in events.iter().enumerate() {
        let BreakerEvent::StateChange { from, to } = e else {
            continue;
        };
        let cause = i.checked_sub(1).map(|j| &events[j]);
        match (from, to) {
            (CircuitState::Closed | CircuitState::HalfOpen, CircuitState::Open) => assert!(
                matches!(
                    cause,
                    Some(BreakerEvent::Failure { .. } | BreakerEvent::SlowCall { .. })
                ),
                "a trip not right after its failure: {events:?}"
            ),
            (CircuitState::HalfOpen, CircuitState::Closed) => assert!(
                matches!(cause, Some(BreakerEvent::Success { .. })),
                "a close not right after its success: {events:?}"
            ),
            _ => {}
        }
    }
}

/// CLOSED (two failures trip it) → OPEN (a call is rejected) → HALF_OPEN
/// (the probe fails) → OPEN → HALF_OPEN (the probe passes) → CLOSED (one
/// more call), with `hook` panicking. With `slow`, a slow-call policy times
/// every call and a slow probe reopens the circuit, so `SlowCall` events
/// are reached too.
fn breaker_walk(slow: bool, hook: Option<BreakerHook>) -> WalkHits {
    let clock = ManualClock::new();
    let pick = |n: fn(BreakerHook) -> Option<usize>| match hook.and_then(n) {
        Some(n) => PanicAt::on(n),
        None => PanicAt::never(),
    };
    let predicate = pick(|h| match h {
        BreakerHook::Predicate(n) => Some(n),
        _ => None,
    });
    let state_change = pick(|h| match h {
        BreakerHook::StateChange(n) => Some(n),
        _ => None,
    });
    let event = pick(|h| match h {
        BreakerHook::Event(n) => Some(n),
        _ => None,
    });
    let events = Arc::new(Mutex::new(Vec::new()));
    let callbacks: Transitions = Arc::default();
    let (ev, log, sc, calls) = (
        event.clone(),
        Arc::clone(&events),
        state_change.clone(),
        Arc::clone(&callbacks),
    );
    let mut builder = clock
        .shared_breaker()
        .failure_threshold(2)
        .recovery_timeout(10 * MS)
        .on_state_change(move |from, to, _| {
            calls.lock().unwrap().push((from, to));
            sc.hit();
        })
        .on_event(move |e| {
            log.lock().unwrap().push(e.clone());
            ev.hit();
        });
    if slow {
        builder = builder.slow_calls(WALK_SLEEP, 100.0);
    }
    let breaker = builder.build().unwrap();
    let p = Probe::new(clock.clone(), move |i| match hook {
        Some(BreakerHook::Inner { call, script }) if call == i => script,
        _ => walk_script(i),
    });
    let stats = p.stats();
    let pred = predicate.clone();
    let guarded = breaker.guard(p).failure_if(move |ok: bool, _: &u32| {
        pred.hit();
        !ok
    });
    let fired = || predicate.fired() || state_change.fired() || event.fired();

    enum Step {
        Run,
        Wait,
    }
    let steps = [
        Step::Run,
        Step::Run,
        Step::Run,
        Step::Wait,
        Step::Run,
        Step::Wait,
        Step::Run,
        Step::Run,
    ];
    for (n, step) in steps.iter().enumerate() {
        let Step::Run = step else {
            clock.advance(10 * MS);
            continue;
        };
        let before = breaker.stats();
        let (started, inner_panics) = (stats.started(), stats.panicked());
        let (fired_before, predicate_before) = (fired(), predicate.fired());
        let panicked = panics(&clock, guarded.run(n as u32));
        let after = breaker.stats();
        let inner_panicked = stats.panicked() > inner_panics;
        let hook_fired = inner_panicked || fired() != fired_before;
        let context = format!("{hook:?}, slow={slow}, step {n}: {after:?}");
        assert_eq!(
            panicked, hook_fired,
            "the panic did not propagate: {context}"
        );
        quiet(&clock, &stats);
        assert_eq!(
            after.half_open_in_flight, 0,
            "a probe slot leaked: {context}"
        );
        let counted = (
            after.failure_count - before.failure_count,
            after.success_count - before.success_count,
            after.rejected_count - before.rejected_count,
        );
        if inner_panicked {
            assert_eq!(counted, (1, 0, 0), "an inner panic is a failure: {context}");
        } else if predicate.fired() != predicate_before {
            assert_eq!(
                counted,
                (0, 0, 0),
                "a predicate's panic is no outcome: {context}"
            );
        } else if stats.started() > started {
            assert_eq!(counted.0 + counted.1, 1, "the outcome was lost: {context}");
        } else if !(panicked && counted == (0, 0, 0)) {
            // Not admitted: rejected, or a panic while being admitted (the
            // probe slot given back, no outcome).
            assert_eq!(counted, (0, 0, 1), "{context}");
        }
        check_events(&breaker, &events.lock().unwrap(), &callbacks);
    }
    let hits = WalkHits {
        inner: stats.started(),
        predicate: predicate.hits(),
        state_change: state_change.hits(),
        event: event.hits(),
    };
    // Whatever happened, the breaker recovers. (A hook whose hit the walk
    // did not reach may fire on the way: then once more.)
    clock.advance(10 * MS);
    let check = breaker.guard(rule(async |_: &u32| true));
    let fired_before = fired();
    if panics(&clock, check.run(0)) {
        assert!(fired() && !fired_before, "a panic out of nowhere");
    }
    let (ok, _) = kompoz_tests::block_on_manual(&clock, check.run(0));
    assert!(ok, "stuck after {hook:?}: {:?}", breaker.stats());
    check_events(&breaker, &events.lock().unwrap(), &callbacks);
    hits
}

#[test]
fn breaker_panics_in_every_hook_in_every_state() {
    for slow in [false, true] {
        let clean = breaker_walk(slow, None);
        let mut hooks = Vec::new();
        for call in 0..clean.inner {
            for script in Script::panics_at_every_point(1, WALK_SLEEP) {
                hooks.push(BreakerHook::Inner { call, script });
            }
        }
        hooks.extend((0..clean.predicate).map(BreakerHook::Predicate));
        hooks.extend((0..clean.state_change).map(BreakerHook::StateChange));
        hooks.extend((0..clean.event).map(BreakerHook::Event));
        for &hook in &hooks {
            breaker_walk(slow, Some(hook));
        }
        report_panics(
            &format!("breaker walk (slow policy: {slow}) {clean:?}"),
            hooks.len(),
        );
    }
}

/// A breaker in HALF_OPEN guarding a limiter: a probe panicking at every
/// point gives both its probe slot and its permit back, and reopens.
#[test]
fn breaker_over_limiter_probe_panics_at_every_point() {
    let scripts = Script::panics_at_every_point(2, MS);
    for &script in &scripts {
        let clock = ManualClock::new();
        let (breaker, p) = guarded(
            &clock,
            1,
            move |i| if i < 2 { Script::FAIL } else { script },
        );
        let stats = p.stats();
        let limited = clock.limited(p, 1).unwrap();
        let pool = Arc::clone(limited.pool());
        let g = breaker.guard(limited);
        kompoz_tests::block_on_manual(&clock, async {
            g.run(0u32).await;
            g.run(0u32).await;
        });
        clock.advance(10 * MS);
        assert!(panics(&clock, g.run(1u32)), "{script:?}");
        quiet(&clock, &stats);
        assert_eq!((pool.available(), pool.waiting()), (1, 0), "{script:?}");
        let s = breaker.stats();
        assert_eq!(
            (s.state, s.half_open_in_flight),
            (CircuitState::Open, 0),
            "{script:?}"
        );
        assert_eq!(s.failure_count, 3, "the probe's panic is its failure");
    }
    report_panics("breaker over limiter (HALF_OPEN probe)", scripts.len());
}

#[test]
fn limiter_panics_at_every_point() {
    let mut points = 0;
    for mode in [
        LimitMode::Wait,
        LimitMode::Reject,
        LimitMode::WaitAtMost(10 * MS),
    ] {
        // The call holding the permit panics, or the one that waited for it.
        for panicking in 0..2 {
            for script in Script::panics_at_every_point(2, MS) {
                let clock = ManualClock::new();
                let p = Probe::new(clock.clone(), move |i| {
                    if i == panicking {
                        script
                    } else {
                        Script::new(2, MS, End::Pass)
                    }
                });
                let stats = p.stats();
                let l = clock.limited(p, 1).unwrap().with_mode(mode);
                // Rejected at once, the second call never runs its inner combinator.
                let reached = panicking == 0 || mode != LimitMode::Reject;
                let panicked = panics(&clock, join(l.run(1u32), l.run(2u32)));
                assert_eq!(panicked, stats.panicked() == 1, "{mode:?} {script:?}");
                assert!(
                    panicked || !reached,
                    "{mode:?} {script:?}: the panic was lost"
                );
                quiet(&clock, &stats);
                assert_eq!(
                    (l.available(), l.waiting(), l.in_flight()),
                    (1, 0, 0),
                    "{mode:?} {script:?}"
                );
                points += 1;
            }
        }
    }
    report_panics("limiter", points);
}

#[test]
fn rate_limiter_panics_at_every_point() {
    let scripts = Script::panics_at_every_point(2, MS);
    for &script in &scripts {
        let clock = ManualClock::new();
        let registry = Registry::new();
        let limit = RateLimit::new(1, 10 * MS).unwrap();
        let p = Probe::constant(clock.clone(), script);
        let stats = p.stats();
        let swept = clock
            .rate_limited_named_in(p, limit, "r", &registry)
            .unwrap();
        let checker = clock
            .rate_limited_named_in(rule(async |_: &u32| true), limit, "r", &registry)
            .unwrap()
            .reject_when_full();
        assert!(panics(&clock, swept.run(1u32)), "{script:?}");
        quiet(&clock, &stats);
        // The slot of a call that started is spent however it ended...
        assert!(
            kompoz_tests::block_on_manual(&clock, checker.run_with_outcome(2))
                .0
                .is_rejected(),
            "{script:?}: a panicking call's slot was refunded"
        );
        // ...and only that one: the next comes on time.
        clock.advance(10 * MS);
        assert!(
            kompoz_tests::block_on_manual(&clock, checker.run(3)).0,
            "{script:?}"
        );
    }
    report_panics("rate limiter", scripts.len());
}

#[test]
fn timeout_panics_at_every_point() {
    let scripts = Script::panics_at_every_point(2, MS);
    for &script in &scripts {
        let clock = ManualClock::new();
        let p = Probe::constant(clock.clone(), script);
        let stats = p.stats();
        let t = clock.with_timeout(p, 10 * MS).unwrap();
        assert!(panics(&clock, t.run(1u32)), "{script:?}");
        quiet(&clock, &stats);
        assert_eq!((stats.panicked(), t.timeouts()), (1, 0));
    }
    // `on_timeout` panicking: the timeout is counted, nothing is left behind.
    let clock = ManualClock::new();
    let p = probe(&clock, Duration::from_secs(60), End::Pass);
    let stats = p.stats();
    let hook = PanicAt::on(0);
    let h = hook.clone();
    let t = clock
        .with_timeout(p, 10 * MS)
        .unwrap()
        .on_timeout(move |ctx: u32| {
            h.hit();
            ctx
        });
    assert!(panics(&clock, t.run_with_outcome(1u32)));
    quiet(&clock, &stats);
    assert_eq!((hook.hits(), t.timeouts()), (1, 1));
    // And the next call is unaffected.
    let c2 = clock.clone();
    let (outcome, _) = kompoz_tests::block_on_manual(&clock, async move {
        let out = t.run_with_outcome(2u32).await;
        drop(c2);
        out
    });
    assert_eq!(outcome, TimeoutOutcome::TimedOut);
    report_panics("timeout (inner, on_timeout)", scripts.len() + 1);
}

#[test]
fn retry_panics_in_every_hook_at_every_point() {
    const ATTEMPTS: usize = 3;
    let mut points = 0;
    for at_call in 0..ATTEMPTS {
        for script in Script::panics_at_every_point(1, MS) {
            let clock = ManualClock::new();
            let p = Probe::new(clock.clone(), move |i| {
                if i == at_call {
                    script
                } else {
                    Script::new(1, MS, End::Fail)
                }
            });
            let stats = p.stats();
            let retry = clock.retry(p, ATTEMPTS as u32).unwrap().fixed(MS);
            assert!(panics(&clock, retry.run(())), "{at_call} {script:?}");
            quiet(&clock, &stats);
            assert_eq!(stats.started(), at_call + 1, "retried after a panic");
            points += 1;
        }
    }
    // `on_retry` and `stop_if`: reached after each failed attempt but the
    // last (`stop_if` after every failed one but the last).
    for hit in 0..ATTEMPTS - 1 {
        for in_stop_if in [false, true] {
            let clock = ManualClock::new();
            let p = Probe::constant(clock.clone(), Script::new(1, MS, End::Fail));
            let stats = p.stats();
            let hook = PanicAt::on(hit);
            let (h1, h2) = (hook.clone(), hook.clone());
            let retry = clock
                .retry(p, ATTEMPTS as u32)
                .unwrap()
                .fixed(MS)
                .on_retry(move |_, _| {
                    if !in_stop_if {
                        h1.hit();
                    }
                })
                .stop_if(move |_: &()| {
                    if in_stop_if {
                        h2.hit();
                    }
                    false
                });
            assert!(
                panics(&clock, retry.run(())),
                "hit {hit} stop_if={in_stop_if}"
            );
            quiet(&clock, &stats);
            assert_eq!(
                stats.started(),
                hit + 1,
                "an attempt ran after the hook panicked"
            );
            points += 1;
        }
    }
    report_panics("retry (inner, on_retry, stop_if)", points);
}

#[test]
fn parallel_child_panics_at_every_point() {
    let mut points = 0;
    for panicking in 0..3 {
        for script in Script::panics_at_every_point(1, MS) {
            let clock = ManualClock::new();
            let ps: Vec<_> = (0..3)
                .map(|i| {
                    let s = if i == panicking {
                        script
                    } else {
                        Script::new(i, (i as u32 + 1) * MS, End::Pass)
                    };
                    Probe::constant(clock.clone(), s)
                })
                .collect();
            let stats: Vec<_> = ps.iter().map(Probe::stats).collect();
            for fail_fast in [false, true] {
                let and = parallel_and(ps.clone()).unwrap().fail_fast(fail_fast);
                assert!(panics(&clock, and.run(1u32)), "{panicking} {script:?}");
                all_quiet(&clock, &stats);
                points += 1;
            }
            for cancel in [false, true] {
                let or = parallel_or(ps.clone()).unwrap().cancel_on_success(cancel);
                let panicked = panics(&clock, or.run(1u32));
                all_quiet(&clock, &stats);
                // With `cancel_on_success`, a faster child's pass may cancel
                // the panicking one first; otherwise the panic is reached.
                assert!(panicked || cancel, "{panicking} {script:?}");
                points += 1;
            }
        }
    }
    report_panics("parallel and/or", points);
}

/// Probe slots come back exactly once: while one probe holds a slot, a
/// second probe panics at every point of its call (inner, predicate,
/// listeners, on its success and on its failure); afterwards, if the circuit
/// is still HALF_OPEN, exactly the holder's slot is taken (a slot freed twice
/// would show 0, a leaked one 2), and none once the holder is gone.
#[test]
fn breaker_probe_panics_free_its_slot_exactly_once() {
    /// One run; `hook` panics at its hit `n` (hits counted from the start
    /// of the run). Returns the hits of (inner, predicate, state change,
    /// event) before and after the swept probe.
    fn run(end: End, hook: Option<BreakerHook>) -> ([usize; 4], [usize; 4]) {
        let clock = ManualClock::new();
        let pick = |f: fn(BreakerHook) -> Option<usize>| {
            hook.and_then(f).map_or_else(PanicAt::never, PanicAt::on)
        };
        let predicate = pick(|h| {
            if let BreakerHook::Predicate(n) = h {
                Some(n)
            } else {
                None
            }
        });
        let state_change = pick(|h| {
            if let BreakerHook::StateChange(n) = h {
                Some(n)
            } else {
                None
            }
        });
        let event = pick(|h| {
            if let BreakerHook::Event(n) = h {
                Some(n)
            } else {
                None
            }
        });
        let events = Arc::new(Mutex::new(Vec::new()));
        let callbacks: Transitions = Arc::default();
        let (ev, log, sc, calls) = (
            event.clone(),
            Arc::clone(&events),
            state_change.clone(),
            Arc::clone(&callbacks),
        );
        let breaker = clock
            .shared_breaker()
            .failure_threshold(1)
            .recovery_timeout(10 * MS)
            .half_open_max_calls(2)
            .on_state_change(move |from, to, _| {
                calls.lock().unwrap().push((from, to));
                sc.hit();
            })
            .on_event(move |e| {
                log.lock().unwrap().push(e.clone());
                ev.hit();
            })
            .build()
            .unwrap();
        // Calls: 0 trips it, 1 holds a slot (sleeps an hour), 2 is swept.
        let p = Probe::new(clock.clone(), move |i| match (i, hook) {
            (0, _) => Script::FAIL,
            (1, _) => Script::new(0, Duration::from_secs(3600), End::Pass),
            (_, Some(BreakerHook::Inner { script, .. })) => script,
            _ => Script::new(1, MS, end),
        });
        let stats = p.stats();
        let pred = predicate.clone();
        let g = breaker.guard(p).failure_if(move |ok: bool, _: &u32| {
            pred.hit();
            !ok
        });
        let hits = || {
            [
                stats.started(),
                predicate.hits(),
                state_change.hits(),
                event.hits(),
            ]
        };
        kompoz_tests::block_on_manual(&clock, g.run(0));
        clock.advance(10 * MS);
        let waker = futures::task::noop_waker();
        let mut holder = Box::pin(g.run(1));
        assert!(
            holder
                .as_mut()
                .poll(&mut std::task::Context::from_waker(&waker))
                .is_pending()
        );
        assert_eq!(breaker.stats().half_open_in_flight, 1);
        let before = hits();
        let panicked = panics(&clock, g.run(2));
        let after = hits();
        let fired = hook.is_some()
            && (stats.panicked() > 0 || predicate.fired() || state_change.fired() || event.fired());
        assert_eq!(panicked, fired, "{end:?} {hook:?}");
        let s = breaker.stats();
        if s.state == CircuitState::HalfOpen {
            assert_eq!(
                s.half_open_in_flight, 1,
                "{end:?} {hook:?}: the slots do not add up: {s:?}"
            );
        }
        drop(holder);
        assert_eq!(breaker.stats().half_open_in_flight, 0, "{end:?} {hook:?}");
        check_events(&breaker, &events.lock().unwrap(), &callbacks);
        (before, after)
    }

    let mut points = 0;
    for end in [End::Pass, End::Fail] {
        let (before, after) = run(end, None);
        let mut hooks: Vec<_> = Script::panics_at_every_point(1, MS)
            .into_iter()
            .map(|script| BreakerHook::Inner { call: 2, script })
            .collect();
        hooks.extend((before[1]..after[1]).map(BreakerHook::Predicate));
        hooks.extend((before[2]..after[2]).map(BreakerHook::StateChange));
        hooks.extend((before[3]..after[3]).map(BreakerHook::Event));
        for &hook in &hooks {
            run(end, Some(hook));
        }
        points += hooks.len();
    }
    report_panics("breaker HALF_OPEN probe beside a holder", points);
}

// ---------------------------------------------------------------- call API

/// The operation panics at every point of a HALF_OPEN probe inside the
/// recommended stack: the permit and the probe slot come back, and the
/// panic is the probe's failure.
#[test]
fn call_probe_panics_at_every_point() {
    let scripts = Script::panics_at_every_point(2, MS);
    for &script in &scripts {
        let clock = ManualClock::new();
        let (breaker, p) = guarded(
            &clock,
            1,
            move |i| if i < 2 { Script::FAIL } else { script },
        );
        let stats = p.stats();
        let pool = Arc::new(kompoz_core::Semaphore::new(1).unwrap());
        let policy = clock
            .policy()
            .limit(&pool)
            .retry(3)
            .unwrap()
            .breaker(&breaker)
            .timeout(20 * MS)
            .unwrap();
        // Two failed attempts open the breaker; the third is refused.
        let refused = kompoz_tests::block_on_manual(&clock, policy.call(|| p.attempt()));
        assert!(
            matches!(refused, Err(kompoz_core::Error::CircuitOpen(_))),
            "{refused:?}"
        );
        clock.advance(10 * MS);
        assert!(panics(&clock, policy.call(|| p.attempt())), "{script:?}");
        quiet(&clock, &stats);
        assert_eq!((pool.available(), pool.waiting()), (1, 0), "{script:?}");
        let s = breaker.stats();
        assert_eq!(
            (s.state, s.half_open_in_flight),
            (CircuitState::Open, 0),
            "{script:?}"
        );
        assert_eq!(s.failure_count, 3, "the probe's panic is its failure");
    }
    report_panics(
        "call: limit ∘ retry ∘ breaker ∘ timeout (HALF_OPEN probe)",
        scripts.len(),
    );
}

/// The same HALF_OPEN probe panicking at every point, `PanicInRun` (in the
/// closure, before a future exists) included, with no timeout inside the
/// breaker: through `policy().breaker(..)` and through `Breaker::call`.
/// The panic is the probe's failure either way.
#[test]
fn call_probe_panics_at_every_point_without_an_inner_timeout() {
    let scripts = Script::panics_at_every_point(2, MS);
    for through_policy in [true, false] {
        for &script in &scripts {
            let clock = ManualClock::new();
            let (breaker, p) = guarded(
                &clock,
                1,
                move |i| if i < 2 { Script::FAIL } else { script },
            );
            let stats = p.stats();
            let policy = clock.policy().breaker(&breaker);
            let call = || {
                let p = &p;
                let breaker = &breaker;
                let policy = &policy;
                async move {
                    if through_policy {
                        policy.call(|| p.attempt()).await
                    } else {
                        breaker.call(|| p.attempt()).await
                    }
                }
            };
            for _ in 0..2 {
                let failed = kompoz_tests::block_on_manual(&clock, call());
                assert!(
                    matches!(
                        failed,
                        Err(kompoz_core::Error::Inner(kompoz_tests::sweep::ProbeFailed))
                    ),
                    "{failed:?}"
                );
            }
            assert_eq!(breaker.state(), CircuitState::Open);
            clock.advance(10 * MS);
            assert!(panics(&clock, call()), "{script:?}");
            quiet(&clock, &stats);
            let s = breaker.stats();
            assert_eq!(
                (s.state, s.half_open_in_flight),
                (CircuitState::Open, 0),
                "{script:?} (policy: {through_policy})"
            );
            assert_eq!(
                s.failure_count, 3,
                "the probe's panic is its failure: {script:?} (policy: {through_policy})"
            );
        }
    }
    report_panics(
        "call: breaker with no inner timeout, and Breaker::call (HALF_OPEN probe)",
        2 * scripts.len(),
    );
}
