//! The cancellation and panic sweep: for every combinator, a call is dropped
//! after 1, 2, 3, … polls (until it completes), and after each drop nothing
//! may have leaked: permits all free, no waiter queued, no probe slot held,
//! no inner future alive, no sleep registered, counters consistent. The
//! same with the inner combinator panicking (after an await point). Every
//! user hook panicking at every point it is reached: `panics.rs`.
//!
//! Each test prints how many cancellation points it swept
//! (`cargo test -p kompoz-tests --test cancellation -- --nocapture`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::join;
use kompoz_core::{
    Backoff, Breaker, CircuitState, Clock, ClockExt, Combinator, LimitMode, ManualClock, RateLimit,
    Registry, parallel_and, parallel_or, rule,
};
use kompoz_tests::sweep::{
    End, Probe, ProbeFailed, ProbeStats, Script, SweepReport, panics, sweep,
};

const MS: Duration = Duration::from_millis(1);

/// Cancellation points swept by every test in this file, for the summary line.
static SWEPT: AtomicUsize = AtomicUsize::new(0);

fn report(name: &str, r: SweepReport) {
    assert!(
        r.dropped > 0,
        "{name}: the call completed at its first poll, nothing was swept"
    );
    let total = SWEPT.fetch_add(r.dropped, Ordering::SeqCst) + r.dropped;
    println!(
        "sweep {name}: dropped at {} points (completes in {} polls); {total} so far in this run",
        r.dropped, r.polls_to_complete
    );
}

use kompoz_tests::sweep::{all_quiet, guarded, probe, quiet};

// ------------------------------------------------------------------ timeout

#[test]
fn timeout_completing_in_time() {
    let r = sweep(
        || {
            let clock = ManualClock::new();
            let p = probe(&clock, 5 * MS, End::Pass);
            let stats = p.stats();
            let t = Arc::new(clock.with_timeout(p, 10 * MS).unwrap());
            let t2 = Arc::clone(&t);
            (clock.clone(), (clock, stats, t), async move {
                t2.run(1u32).await
            })
        },
        |(clock, stats, t), _| {
            quiet(clock, stats);
            assert_eq!(t.timeouts(), 0);
            assert_eq!(stats.passed() + stats.cancelled(), stats.started());
        },
    );
    report("timeout (in time)", r);
}

#[test]
fn timeout_timing_out() {
    let r = sweep(
        || {
            let clock = ManualClock::new();
            let p = probe(&clock, Duration::from_secs(60), End::Pass);
            let stats = p.stats();
            let t = Arc::new(clock.with_timeout(p, 10 * MS).unwrap());
            let t2 = Arc::clone(&t);
            let fut = async move {
                let out = t2.run(1u32).await;
                assert_eq!(out, (false, 1));
            };
            (clock.clone(), (clock, stats, t), fut)
        },
        |(clock, stats, t), _| {
            quiet(clock, stats);
            assert_eq!(stats.passed(), 0);
            assert!(t.timeouts() <= 1);
        },
    );
    report("timeout (timing out)", r);
}

#[test]
fn timeout_inner_panics() {
    for yields in 0..3 {
        let clock = ManualClock::new();
        let p = Probe::constant(clock.clone(), Script::new(yields, MS, End::Panic));
        let stats = p.stats();
        let t = clock.with_timeout(p, 10 * MS).unwrap();
        assert!(panics(&clock, t.run(())));
        quiet(&clock, &stats);
        assert_eq!((stats.panicked(), t.timeouts()), (1, 0));
    }
}

// ------------------------------------------------------------------ limiter

/// Two calls on one permit (the second waits, is rejected, or waits a
/// bounded time, by `mode`), dropped at every point.
fn limiter_sweep(name: &str, mode: LimitMode, inner_sleep: Duration) {
    let r = sweep(
        || {
            let clock = ManualClock::new();
            let p = probe(&clock, inner_sleep, End::Pass);
            let stats = p.stats();
            let l = Arc::new(clock.limited(p, 1).unwrap().with_mode(mode));
            let l2 = Arc::clone(&l);
            let fut = async move { join(l2.run(1u32), l2.run(2u32)).await };
            (clock.clone(), (clock, stats, l), fut)
        },
        |(clock, stats, l), _| {
            quiet(clock, stats);
            assert_eq!(l.available(), 1, "a permit leaked");
            assert_eq!(l.waiting(), 0, "a waiter stayed queued");
            assert_eq!(l.in_flight(), 0);
            // Every call that was let in ran the inner combinator.
            assert!(stats.started() + l.rejected() as usize <= 2);
        },
    );
    report(name, r);
}

#[test]
fn limiter_wait() {
    limiter_sweep("limiter Wait", LimitMode::Wait, 5 * MS);
}

#[test]
fn limiter_reject() {
    limiter_sweep("limiter Reject", LimitMode::Reject, 5 * MS);
}

#[test]
fn limiter_wait_at_most_gets_in() {
    limiter_sweep(
        "limiter WaitAtMost (gets in)",
        LimitMode::WaitAtMost(10 * MS),
        5 * MS,
    );
}

#[test]
fn limiter_wait_at_most_gives_up() {
    limiter_sweep(
        "limiter WaitAtMost (gives up)",
        LimitMode::WaitAtMost(3 * MS),
        5 * MS,
    );
}

/// Three limiters share one named pool of two permits; five calls.
#[test]
fn limiter_named_pool_shared() {
    let r = sweep(
        || {
            let clock = ManualClock::new();
            let registry = Registry::new();
            let p = probe(&clock, 5 * MS, End::Pass);
            let stats = p.stats();
            let ls: Vec<_> = [
                LimitMode::Wait,
                LimitMode::Reject,
                LimitMode::WaitAtMost(7 * MS),
            ]
            .into_iter()
            .map(|mode| {
                clock
                    .limited_named_in(p.clone(), 2, "db", &registry)
                    .unwrap()
                    .with_mode(mode)
            })
            .collect();
            let ls = Arc::new(ls);
            let l2 = Arc::clone(&ls);
            let fut = async move {
                futures::future::join_all((0..5u32).map(|i| l2[i as usize % 3].run(i))).await
            };
            (clock.clone(), (clock, stats, ls), fut)
        },
        |(clock, stats, ls), _| {
            quiet(clock, stats);
            let pool = ls[0].pool();
            assert_eq!(
                (pool.available(), pool.waiting()),
                (2, 0),
                "the shared pool leaked"
            );
        },
    );
    report("limiter named pool", r);
}

#[test]
fn limiter_inner_panics() {
    for mode in [
        LimitMode::Wait,
        LimitMode::Reject,
        LimitMode::WaitAtMost(10 * MS),
    ] {
        for yields in 0..3 {
            let clock = ManualClock::new();
            let p = Probe::constant(clock.clone(), Script::new(yields, MS, End::Panic));
            let stats = p.stats();
            let l = clock.limited(p, 1).unwrap().with_mode(mode);
            assert!(panics(&clock, l.run(())));
            quiet(&clock, &stats);
            assert_eq!(
                (l.available(), l.waiting()),
                (1, 0),
                "{mode:?}: a panic leaked the permit"
            );
            // And the limiter still works.
            let p2 = l.pool().try_acquire();
            assert!(p2.is_some());
        }
    }
}

/// A panic in one call while another waits for its permit: the waiter gets
/// the permit during the unwind... and is then dropped with the whole future.
#[test]
fn limiter_panic_with_a_waiter() {
    let clock = ManualClock::new();
    let p = Probe::new(clock.clone(), |i| {
        if i == 0 {
            Script::new(1, MS, End::Panic)
        } else {
            Script::new(0, MS, End::Pass)
        }
    });
    let stats = p.stats();
    let l = clock.limited(p, 1).unwrap();
    assert!(panics(&clock, join(l.run(1), l.run(2))));
    quiet(&clock, &stats);
    assert_eq!((l.available(), l.waiting()), (1, 0));
}

// -------------------------------------------------------------------- retry

#[test]
fn retry_fails_twice_then_passes() {
    let r = sweep(
        || {
            let clock = ManualClock::new();
            let p = Probe::new(clock.clone(), |i| {
                Script::new(1, MS, if i < 2 { End::Fail } else { End::Pass })
            });
            let stats = p.stats();
            let retry = Arc::new(clock.retry(p, 3).unwrap().fixed(2 * MS));
            let r2 = Arc::clone(&retry);
            let fut = async move {
                assert_eq!(r2.run(7u32).await, (true, 7));
            };
            (clock.clone(), (clock, stats), fut)
        },
        |(clock, stats), _| {
            quiet(clock, stats);
            assert!(stats.started() <= 3);
            assert_eq!(
                stats.passed() + stats.failed() + stats.cancelled(),
                stats.started()
            );
        },
    );
    report("retry", r);
}

#[test]
fn retry_exponential_all_fail() {
    let r = sweep(
        || {
            let clock = ManualClock::new();
            let p = probe(&clock, MS, End::Fail);
            let stats = p.stats();
            let retry = Arc::new(
                clock
                    .retry(p, 4)
                    .unwrap()
                    .backoff(Backoff::exponential(MS, 2.0, 5 * MS).unwrap()),
            );
            let r2 = Arc::clone(&retry);
            let fut = async move {
                assert_eq!(r2.run(7u32).await, (false, 7));
            };
            (clock.clone(), (clock, stats), fut)
        },
        |(clock, stats), _| quiet(clock, stats),
    );
    report("retry (exponential, all fail)", r);
}

#[test]
fn retry_inner_panics() {
    for at_call in 0..3 {
        let clock = ManualClock::new();
        let p = Probe::new(clock.clone(), move |i| {
            Script::new(1, MS, if i == at_call { End::Panic } else { End::Fail })
        });
        let stats = p.stats();
        let retry = clock.retry(p, 3).unwrap().fixed(MS);
        assert!(panics(&clock, retry.run(())));
        quiet(&clock, &stats);
        assert_eq!(stats.started(), at_call + 1);
    }
}

// ----------------------------------------------------------------- parallel

/// Three children of different speeds and verdicts.
fn children(clock: &ManualClock, ends: [End; 3]) -> (Vec<Probe<ManualClock>>, Arc<ProbeStats>) {
    let ps: Vec<_> = ends
        .iter()
        .enumerate()
        .map(|(i, &end)| Probe::constant(clock.clone(), Script::new(i, (i as u32 + 1) * MS, end)))
        .collect();
    // One shared counter set is easier to check: wrap each child's stats in
    // a sum by checking all three.
    let stats = ps[0].stats();
    (ps, stats)
}

#[test]
fn parallel_and_sweeps() {
    for fail_fast in [false, true] {
        for ends in [[End::Pass; 3], [End::Pass, End::Fail, End::Pass]] {
            let r = sweep(
                || {
                    let clock = ManualClock::new();
                    let (ps, _) = children(&clock, ends);
                    let stats: Vec<_> = ps.iter().map(Probe::stats).collect();
                    let c = Arc::new(parallel_and(ps).unwrap().fail_fast(fail_fast));
                    let c2 = Arc::clone(&c);
                    let fut = async move { c2.run(5u32).await };
                    (clock.clone(), (clock, stats), fut)
                },
                |(clock, stats), _| all_quiet(clock, stats),
            );
            report(&format!("parallel_and fail_fast={fail_fast} {ends:?}"), r);
        }
    }
}

#[test]
fn parallel_or_sweeps() {
    for cancel in [false, true] {
        for ends in [[End::Fail; 3], [End::Fail, End::Pass, End::Pass]] {
            let r = sweep(
                || {
                    let clock = ManualClock::new();
                    let (ps, _) = children(&clock, ends);
                    let stats: Vec<_> = ps.iter().map(Probe::stats).collect();
                    let c = Arc::new(parallel_or(ps).unwrap().cancel_on_success(cancel));
                    let c2 = Arc::clone(&c);
                    let fut = async move { c2.run(5u32).await };
                    (clock.clone(), (clock, stats), fut)
                },
                |(clock, stats), _| all_quiet(clock, stats),
            );
            report(
                &format!("parallel_or cancel_on_success={cancel} {ends:?}"),
                r,
            );
        }
    }
}

#[test]
fn parallel_child_panics() {
    for panicking in 0..3 {
        let mut ends = [End::Pass; 3];
        ends[panicking] = End::Panic;
        let clock = ManualClock::new();
        let (ps, _) = children(&clock, ends);
        let stats: Vec<_> = ps.iter().map(Probe::stats).collect();
        let and = parallel_and(ps.clone()).unwrap();
        assert!(panics(&clock, and.run(1u32)));
        all_quiet(&clock, &stats);
        let or = parallel_or(ps).unwrap().cancel_on_success(false);
        assert!(panics(&clock, or.run(1u32)));
        all_quiet(&clock, &stats);
    }
}

// ---------------------------------------------------------------- composed

/// timeout ∘ limiter ∘ retry, dropped at every point.
#[test]
fn composed_timeout_limiter_retry() {
    let r = sweep(
        || {
            let clock = ManualClock::new();
            let p = Probe::new(clock.clone(), |i| {
                Script::new(1, 2 * MS, if i % 3 == 2 { End::Pass } else { End::Fail })
            });
            let stats = p.stats();
            let retry = clock.retry(p, 3).unwrap().fixed(MS);
            let limited = clock.limited(retry, 1).unwrap();
            let pool = Arc::clone(limited.pool());
            let t = Arc::new(clock.with_timeout(limited, 30 * MS).unwrap());
            let t2 = Arc::clone(&t);
            let fut = async move { join(t2.run(1u32), t2.run(2u32)).await };
            (clock.clone(), (clock, stats, pool), fut)
        },
        |(clock, stats, pool), _| {
            quiet(clock, stats);
            assert_eq!((pool.available(), pool.waiting()), (1, 0));
        },
    );
    report("timeout ∘ limiter ∘ retry", r);
}

// ------------------------------------------------------------------ breaker

/// The breaker holds no probe slot and still admits a call: in HALF_OPEN
/// the next call is a probe, in CLOSED it runs, in OPEN it is due soon.
fn breaker_not_stuck(clock: &ManualClock, breaker: &Breaker<ManualClock>) {
    let stats = breaker.stats();
    assert_eq!(
        stats.half_open_in_flight, 0,
        "a probe slot leaked: {stats:?}"
    );
    if stats.state == CircuitState::Open {
        clock.advance(10 * MS);
    }
    let check = breaker.guard(rule(async |_: &u32| true));
    let (ok, _) = kompoz_tests::block_on_manual(clock, check.run(0));
    assert!(ok, "the breaker is stuck: {:?}", breaker.stats());
}

#[test]
fn breaker_closed_calls() {
    let r = sweep(
        || {
            let clock = ManualClock::new();
            let (breaker, p) = guarded(&clock, 1, |i| {
                Script::new(1, MS, if i == 0 { End::Fail } else { End::Pass })
            });
            let stats = p.stats();
            let g = Arc::new(breaker.guard(p));
            let g2 = Arc::clone(&g);
            let fut = async move { join(g2.run(1u32), g2.run(2u32)).await };
            (clock.clone(), (clock, stats, breaker), fut)
        },
        |(clock, stats, breaker), _| {
            quiet(clock, stats);
            let s = breaker.stats();
            assert_eq!(s.state, CircuitState::Closed);
            // Cancelled calls have no outcome; finished ones are counted once.
            assert_eq!(s.success_count as usize, stats.passed());
            assert_eq!(s.failure_count as usize, stats.failed());
            breaker_not_stuck(clock, breaker);
        },
    );
    report("breaker CLOSED", r);
}

/// Through every state: two failures open it, a rejected call, the wait
/// for recovery, a probe in HALF_OPEN that passes and closes it.
#[test]
fn breaker_through_every_state() {
    let r = sweep(
        || {
            let clock = ManualClock::new();
            let (breaker, p) = guarded(&clock, 1, |i| {
                Script::new(1, 2 * MS, if i < 2 { End::Fail } else { End::Pass })
            });
            let stats = p.stats();
            let g = Arc::new(breaker.guard(p));
            let (g2, c2) = (Arc::clone(&g), clock.clone());
            let fut = async move {
                assert!(!g2.run(1u32).await.0);
                assert!(!g2.run(2u32).await.0);
                assert_eq!(g2.state(), CircuitState::Open);
                assert_eq!(g2.run(3u32).await, (false, 3)); // rejected
                c2.sleep(10 * MS).await;
                assert_eq!(g2.run(4u32).await, (true, 4)); // the probe
                assert_eq!(g2.state(), CircuitState::Closed);
            };
            (clock.clone(), (clock, stats, breaker), fut)
        },
        |(clock, stats, breaker), _| {
            quiet(clock, stats);
            breaker_not_stuck(clock, breaker);
        },
    );
    report("breaker CLOSED -> OPEN -> HALF_OPEN -> CLOSED", r);
}

/// Two probes allowed, three callers in HALF_OPEN, dropped at every point.
#[test]
fn breaker_half_open_probes() {
    let r = sweep(
        || {
            let clock = ManualClock::new();
            let (breaker, p) = guarded(&clock, 2, |i| {
                Script::new(i % 3, MS, if i < 2 { End::Fail } else { End::Pass })
            });
            let stats = p.stats();
            let g = Arc::new(breaker.guard(p));
            // Trip it, and let the recovery time pass.
            kompoz_tests::block_on_manual(&clock, async {
                g.run(0u32).await;
                g.run(0u32).await;
            });
            assert_eq!(breaker.state(), CircuitState::Open);
            clock.advance(10 * MS);
            let g2 = Arc::clone(&g);
            let fut = async move {
                futures::future::join3(g2.run(1u32), g2.run(2u32), g2.run(3u32)).await
            };
            (clock.clone(), (clock, stats, breaker), fut)
        },
        |(clock, stats, breaker), _| {
            quiet(clock, stats);
            breaker_not_stuck(clock, breaker);
        },
    );
    report("breaker HALF_OPEN (2 probes, 3 callers)", r);
}

#[test]
fn breaker_inner_panics() {
    // In CLOSED: the panic counts as a failure; the breaker keeps working.
    let clock = ManualClock::new();
    let (breaker, p) = guarded(&clock, 1, |_| Script::new(1, MS, End::Panic));
    let stats = p.stats();
    let g = breaker.guard(p);
    assert!(panics(&clock, g.run(1u32)));
    quiet(&clock, &stats);
    assert_eq!(breaker.stats().failure_count, 1);
    assert_eq!(breaker.state(), CircuitState::Closed);
    // A panicking probe reopens the circuit; it does not stay HALF_OPEN.
    assert!(panics(&clock, g.run(2u32)));
    assert_eq!(breaker.state(), CircuitState::Open);
    clock.advance(10 * MS);
    assert!(panics(&clock, g.run(3u32)));
    assert_eq!(breaker.state(), CircuitState::Open, "{:?}", breaker.stats());
    assert_eq!(breaker.stats().half_open_in_flight, 0);
    breaker_not_stuck(&clock, &breaker);
}

/// A call that is merely *dropped* while another future panics (a sibling in
/// a `join`) was cancelled: it has no outcome. The breaker must not count it
/// as a failure (it did not fail), let alone reopen on it.
#[test]
fn breaker_call_dropped_by_a_sibling_panic_is_not_a_failure() {
    let clock = ManualClock::new();
    let (breaker, p) = guarded(&clock, 1, |_| Script::new(0, 5 * MS, End::Pass));
    let g = breaker.guard(p);
    let sibling = async {
        kompoz_tests::sweep::YieldNow(false).await;
        std::panic::panic_any("sibling panicked");
    };
    kompoz_tests::sweep::quiet_scripted_panics();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        kompoz_tests::block_on_manual(&clock, join(g.run(1u32), sibling))
    }));
    assert!(panicked.is_err());
    let s = breaker.stats();
    assert_eq!(
        (s.failure_count, s.success_count),
        (0, 0),
        "a call cancelled by someone else's panic was counted: {s:?}"
    );
}

// --------------------------------------------------------------- rate limit

#[test]
fn rate_limit_modes() {
    for mode in [
        LimitMode::Wait,
        LimitMode::Reject,
        LimitMode::WaitAtMost(15 * MS),
    ] {
        let r = sweep(
            || {
                let clock = ManualClock::new();
                let p = probe(&clock, MS, End::Pass);
                let stats = p.stats();
                let limit = RateLimit::new(1, 10 * MS).unwrap();
                let l = Arc::new(clock.rate_limited(p, limit).with_mode(mode));
                let l2 = Arc::clone(&l);
                let fut = async move {
                    futures::future::join3(l2.run(1u32), l2.run(2u32), l2.run(3u32)).await
                };
                (clock.clone(), (clock, stats, l), fut)
            },
            |(clock, stats, l), _| {
                quiet(clock, stats);
                // Refunds: once the call is gone, and its slots' time has
                // passed, a fresh call is admitted at once.
                clock.advance(40 * MS);
                let fresh = kompoz_tests::block_on_manual(clock, l.run_with_outcome(9u32));
                assert!(!fresh.0.is_rejected());
                assert_eq!(clock.pending_sleeps(), 0);
            },
        );
        report(&format!("rate limit {mode:?}"), r);
    }
}

/// A lone waiter that is cancelled gives its slot back: the next caller is
/// admitted as if the cancelled one had never asked.
#[test]
fn rate_limit_cancelled_waiter_refunds() {
    let r = sweep(
        || {
            let clock = ManualClock::new();
            let p = probe(&clock, Duration::ZERO, End::Pass);
            let stats = p.stats();
            let limit = RateLimit::new(1, 10 * MS).unwrap();
            let l = Arc::new(clock.rate_limited(p, limit));
            // Spend the burst, so the swept call has to wait 10 ms.
            kompoz_tests::block_on_manual(&clock, l.run(0u32));
            let l2 = Arc::clone(&l);
            let fut = async move { l2.run(1u32).await };
            (clock.clone(), (clock, stats, l), fut)
        },
        |(clock, stats, l), _| {
            quiet(clock, stats);
            let start = clock.now();
            kompoz_tests::block_on_manual(clock, l.run(9u32));
            // Whether the swept call ran or was refunded, the next slot is
            // at most one interval after the burst was spent.
            assert!(clock.now().duration_since(start) <= 10 * MS);
        },
    );
    report("rate limit (refund)", r);
}

#[test]
fn rate_limit_inner_panics() {
    let clock = ManualClock::new();
    let p = Probe::constant(clock.clone(), Script::new(1, MS, End::Panic));
    let stats = p.stats();
    let l = clock.rate_limited(p, RateLimit::per_second(5).unwrap());
    assert!(panics(&clock, l.run(1u32)));
    quiet(&clock, &stats);
}

/// The HALF_OPEN form of the same: a probe dropped by a sibling's panic is a
/// cancelled probe (its slot comes back), not a failed one that reopens the
/// circuit for another recovery period.
#[test]
fn breaker_probe_dropped_by_a_sibling_panic_does_not_reopen() {
    let clock = ManualClock::new();
    let (breaker, p) = guarded(&clock, 1, |i| {
        if i < 2 {
            Script::FAIL
        } else {
            Script::new(0, 5 * MS, End::Pass)
        }
    });
    let g = breaker.guard(p);
    kompoz_tests::block_on_manual(&clock, async {
        g.run(0u32).await;
        g.run(0u32).await;
    });
    clock.advance(10 * MS);
    let sibling = async {
        kompoz_tests::sweep::YieldNow(false).await;
        std::panic::panic_any("sibling panicked");
    };
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        kompoz_tests::block_on_manual(&clock, join(g.run(1u32), sibling))
    }));
    assert!(panicked.is_err());
    assert_eq!(
        breaker.state(),
        CircuitState::HalfOpen,
        "a probe cancelled by someone else's panic reopened the circuit: {:?}",
        breaker.stats()
    );
}

// --------------------------------------------- the primitives under calls
//
// The same sweep over code that makes its calls by hand with the
// primitives: breaker permits held across the call, owned pool permits,
// rate-limit reservations waited for.

/// A call made by hand through a breaker permit: the permit is held across
/// the inner call and records its verdict; refused calls do nothing.
async fn through_permit(breaker: &Breaker<ManualClock>, p: &Probe<ManualClock>, ctx: u32) {
    let Ok(permit) = breaker.try_acquire_owned() else {
        return;
    };
    let (ok, _) = p.run(ctx).await;
    permit.record(!ok);
}

#[test]
fn breaker_permits_closed_and_half_open() {
    for half_open in [false, true] {
        let r = sweep(
            || {
                let clock = ManualClock::new();
                let (breaker, p) = guarded(&clock, 2, move |i| {
                    let fail = if half_open { i < 2 } else { i == 0 };
                    Script::new(i % 3, MS, if fail { End::Fail } else { End::Pass })
                });
                let stats = p.stats();
                if half_open {
                    kompoz_tests::block_on_manual(&clock, async {
                        through_permit(&breaker, &p, 0).await;
                        through_permit(&breaker, &p, 0).await;
                    });
                    assert_eq!(breaker.state(), CircuitState::Open);
                    clock.advance(10 * MS);
                }
                let (b2, p2) = (breaker.clone(), p.clone());
                let fut = async move {
                    futures::future::join3(
                        through_permit(&b2, &p2, 1),
                        through_permit(&b2, &p2, 2),
                        through_permit(&b2, &p2, 3),
                    )
                    .await
                };
                (clock.clone(), (clock, stats, breaker), fut)
            },
            |(clock, stats, breaker), _| {
                quiet(clock, stats);
                let s = breaker.stats();
                // Cancelled calls have no outcome; finished ones count once.
                assert_eq!(s.success_count as usize, stats.passed());
                assert_eq!(s.failure_count as usize, stats.failed());
                breaker_not_stuck(clock, breaker);
            },
        );
        let state = if half_open { "HALF_OPEN" } else { "CLOSED" };
        report(&format!("breaker permits {state} (3 callers)"), r);
    }
}

/// `run_with_outcome` through every state, as `breaker_through_every_state`.
#[test]
fn breaker_run_with_outcome_through_every_state() {
    use kompoz_core::circuit_breaker::BreakerOutcome;
    let r = sweep(
        || {
            let clock = ManualClock::new();
            let (breaker, p) = guarded(&clock, 1, |i| {
                Script::new(1, 2 * MS, if i < 2 { End::Fail } else { End::Pass })
            });
            let stats = p.stats();
            let g = Arc::new(breaker.guard(p).on_rejected(|n: u32| n + 100));
            let (g2, c2) = (Arc::clone(&g), clock.clone());
            let fut = async move {
                assert_eq!(
                    g2.run_with_outcome(1).await,
                    (BreakerOutcome::Ran(false), 1)
                );
                assert_eq!(
                    g2.run_with_outcome(2).await,
                    (BreakerOutcome::Ran(false), 2)
                );
                assert_eq!(
                    g2.run_with_outcome(3).await,
                    (BreakerOutcome::Rejected, 103)
                );
                c2.sleep(10 * MS).await;
                assert_eq!(g2.run_with_outcome(4).await, (BreakerOutcome::Ran(true), 4));
            };
            (clock.clone(), (clock, stats, breaker), fut)
        },
        |(clock, stats, breaker), _| {
            quiet(clock, stats);
            breaker_not_stuck(clock, breaker);
        },
    );
    report(
        "breaker run_with_outcome CLOSED -> OPEN -> HALF_OPEN -> CLOSED",
        r,
    );
}

/// Owned and borrowed acquires of one pool, the permits held across the
/// inner call.
#[test]
fn owned_pool_permits() {
    let r = sweep(
        || {
            let clock = ManualClock::new();
            let p = probe(&clock, MS, End::Pass);
            let stats = p.stats();
            let pool = Arc::new(kompoz_core::Semaphore::new(1).unwrap());
            let (pool2, p2) = (Arc::clone(&pool), p.clone());
            let fut = async move {
                let owned = |ctx: u32| {
                    let (pool, p) = (Arc::clone(&pool2), p2.clone());
                    async move {
                        let permit = pool.acquire_owned().await;
                        p.run(ctx).await;
                        drop(permit);
                    }
                };
                let borrowed = async {
                    let permit = pool2.acquire().await;
                    p2.run(2).await;
                    drop(permit);
                };
                futures::future::join3(owned(1), borrowed, owned(3)).await
            };
            (clock.clone(), (clock, stats, pool), fut)
        },
        |(clock, stats, pool), _| {
            quiet(clock, stats);
            assert_eq!(pool.available(), 1, "a permit leaked");
            assert_eq!(pool.waiting(), 0, "a waiter stayed queued");
        },
    );
    report("owned pool permits (3 callers, 1 permit)", r);
}

/// Reservations waited for (owned and borrowed), the second behind the
/// first: every slot not started is given back or stays spent, and the
/// budget refills as time passes.
#[test]
fn rate_reservations_waited_for() {
    let r = sweep(
        || {
            let clock = ManualClock::new();
            let p = probe(&clock, Duration::ZERO, End::Pass);
            let stats = p.stats();
            let limiter = clock.rate_limiter(RateLimit::new(1, 10 * MS).unwrap());
            limiter.check().unwrap(); // the burst is spent: both calls wait
            let (l2, p2) = (limiter.clone(), p.clone());
            let fut = async move {
                let owned = async {
                    l2.reserve_owned(Duration::from_secs(1))
                        .unwrap()
                        .wait()
                        .await;
                    p2.run(1u32).await;
                };
                let borrowed = async {
                    l2.reserve(Duration::from_secs(1)).unwrap().wait().await;
                    p2.run(2u32).await;
                };
                join(owned, borrowed).await
            };
            (clock.clone(), (clock, stats, limiter), fut)
        },
        |(clock, stats, limiter), _| {
            quiet(clock, stats);
            let start = clock.now();
            // At most the two slots reserved stay spent.
            let next = match limiter.check() {
                Ok(()) => start,
                Err(refused) => refused.retry_at(),
            };
            assert!(next.duration_since(start) <= 20 * MS, "{next:?}");
            clock.advance(40 * MS);
            assert!(limiter.check().is_ok());
        },
    );
    report("rate-limit reservations waited for", r);
}

/// A listener that panics while a permit records its outcome: the slot is
/// given back exactly once (a second probe's slot stays taken), and the
/// panic reaches the caller.
#[test]
fn permit_record_with_a_panicking_listener_frees_its_slot_once() {
    kompoz_tests::sweep::quiet_scripted_panics();
    for failure in [false, true] {
        let clock = ManualClock::new();
        let breaker = clock
            .shared_breaker()
            .failure_threshold(1)
            .recovery_timeout(10 * MS)
            .half_open_max_calls(2)
            // Panics on the outcome of a call (not on the transitions, so
            // that the probes can be taken).
            .on_event(|e| {
                if matches!(
                    e,
                    kompoz_core::circuit_breaker::BreakerEvent::Success { .. }
                        | kompoz_core::circuit_breaker::BreakerEvent::Failure { .. }
                ) {
                    std::panic::panic_any(kompoz_tests::sweep::SCRIPTED)
                }
            })
            .build()
            .unwrap();
        let trip = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            breaker.try_acquire().unwrap().failure()
        }));
        assert!(trip.is_err(), "the failure event panicked");
        assert_eq!(breaker.state(), CircuitState::Open);
        clock.advance(10 * MS);
        let holder = breaker.try_acquire_owned().unwrap();
        let swept = breaker.try_acquire_owned().unwrap();
        assert_eq!(breaker.stats().half_open_in_flight, 2);
        let recorded =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| swept.record(failure)));
        assert!(recorded.is_err(), "the listener's panic reaches the caller");
        let s = breaker.stats();
        if s.state == CircuitState::HalfOpen {
            assert_eq!(s.half_open_in_flight, 1, "failure {failure}: {s:?}");
        } else {
            assert_eq!(s.state, CircuitState::Open, "a failed probe reopens it");
        }
        drop(holder);
        assert_eq!(breaker.stats().half_open_in_flight, 0);
    }
}

// ----------------------------------------------------------------- call API

/// The call API's recommended stack, limit ∘ retry ∘ breaker ∘ timeout,
/// over a pool of one and the probe as the operation: two calls at once,
/// dropped at every point. Attempts fail twice, then pass; some time out.
#[test]
fn call_policy_limit_retry_breaker_timeout() {
    let r = sweep(
        || {
            let clock = ManualClock::new();
            // A threshold no run reaches: every layer's await points are swept.
            let breaker = clock
                .shared_breaker()
                .failure_threshold(10)
                .build()
                .unwrap();
            let p = Probe::new(clock.clone(), |i| match i % 4 {
                0 | 1 => Script::new(1, 2 * MS, End::Fail),
                2 => Script::new(1, 40 * MS, End::Pass), // times out
                _ => Script::new(2, MS, End::Pass),
            });
            let stats = p.stats();
            let pool = Arc::new(kompoz_core::Semaphore::new(1).unwrap());
            let policy = Arc::new(
                clock
                    .policy()
                    .limit(&pool)
                    .retry(4)
                    .unwrap()
                    .fixed(MS)
                    .breaker(&breaker)
                    .timeout(20 * MS)
                    .unwrap(),
            );
            let fut = async move {
                let call = || policy.call(|| p.attempt());
                join(call(), call()).await
            };
            (clock.clone(), (clock, stats, pool, breaker), fut)
        },
        |(clock, stats, pool, breaker), _| {
            quiet(clock, stats);
            assert_eq!((pool.available(), pool.waiting()), (1, 0));
            let s = breaker.stats();
            // Finished attempts are counted once, a timed-out one as a
            // failure; one dropped with its call is not counted.
            assert_eq!(s.success_count as usize, stats.passed());
            let failures = s.failure_count as usize;
            assert!(
                stats.failed() <= failures && failures <= stats.failed() + stats.cancelled(),
                "{s:?}"
            );
            assert_eq!(s.state, CircuitState::Closed);
        },
    );
    report("call: limit ∘ retry ∘ breaker ∘ timeout", r);
}

/// A breaker taken through every state by one policy's calls.
#[test]
fn call_breaker_through_every_state() {
    let r = sweep(
        || {
            let clock = ManualClock::new();
            let (breaker, p) = guarded(&clock, 1, |i| {
                Script::new(1, 2 * MS, if i < 2 { End::Fail } else { End::Pass })
            });
            let stats = p.stats();
            let policy = clock.policy().breaker(&breaker);
            let (c2, b2) = (clock.clone(), breaker.clone());
            let fut = async move {
                assert_eq!(
                    policy.call(|| p.attempt()).await,
                    Err(kompoz_core::Error::Inner(ProbeFailed))
                );
                assert!(policy.call(|| p.attempt()).await.is_err());
                assert!(matches!(
                    policy.call(|| p.attempt()).await,
                    Err(kompoz_core::Error::CircuitOpen(_))
                ));
                c2.sleep(10 * MS).await;
                assert_eq!(policy.call(|| p.attempt()).await, Ok(())); // the probe
                assert_eq!(b2.state(), CircuitState::Closed);
            };
            (clock.clone(), (clock, stats, breaker), fut)
        },
        |(clock, stats, breaker), _| {
            quiet(clock, stats);
            breaker_not_stuck(clock, breaker);
        },
    );
    report("call: breaker CLOSED -> OPEN -> HALF_OPEN -> CLOSED", r);
}

/// Three calls in HALF_OPEN with two probe slots, dropped at every point,
/// through `Breaker::call`.
#[test]
fn call_breaker_half_open_probes() {
    let r = sweep(
        || {
            let clock = ManualClock::new();
            let (breaker, p) = guarded(&clock, 2, |i| {
                Script::new(i % 3, MS, if i < 2 { End::Fail } else { End::Pass })
            });
            let stats = p.stats();
            kompoz_tests::block_on_manual(&clock, async {
                let _ = breaker.call(|| p.attempt()).await;
                let _ = breaker.call(|| p.attempt()).await;
            });
            assert_eq!(breaker.state(), CircuitState::Open);
            clock.advance(10 * MS);
            let b2 = breaker.clone();
            let fut = async move {
                let call = || b2.call(|| p.attempt());
                futures::future::join3(call(), call(), call()).await
            };
            (clock.clone(), (clock, stats, breaker), fut)
        },
        |(clock, stats, breaker), _| {
            quiet(clock, stats);
            breaker_not_stuck(clock, breaker);
        },
    );
    report("call: breaker HALF_OPEN (2 probes, 3 callers)", r);
}

/// A pool's bounded wait, given up and got in, dropped at every point.
#[test]
fn call_limit_wait_at_most() {
    for bound in [MS, 10 * MS] {
        let r = sweep(
            || {
                let clock = ManualClock::new();
                let p = probe(&clock, 5 * MS, End::Pass);
                let stats = p.stats();
                let pool = Arc::new(kompoz_core::Semaphore::new(1).unwrap());
                let policy = clock.policy().limit(&pool).wait_at_most(bound);
                let fut = async move {
                    let call = || policy.call(|| p.attempt());
                    join(call(), call()).await
                };
                (clock.clone(), (clock, stats, pool), fut)
            },
            |(clock, stats, pool), _| {
                quiet(clock, stats);
                assert_eq!((pool.available(), pool.waiting()), (1, 0));
            },
        );
        report("call: limit wait_at_most", r);
    }
}

/// Three calls through a rate limit of one per 10 ms (they wait for their
/// slots), dropped at every point: nothing waits on, and the budget is
/// spent by at most the calls' own slots.
#[test]
fn call_rate_limit_waits() {
    let r = sweep(
        || {
            let clock = ManualClock::new();
            let p = probe(&clock, MS, End::Pass);
            let stats = p.stats();
            let limiter = clock.rate_limiter(RateLimit::new(1, 10 * MS).unwrap());
            let policy = clock.policy().rate_limit(&limiter);
            let fut = async move {
                let call = || policy.call(|| p.attempt());
                futures::future::join3(call(), call(), call()).await
            };
            (clock.clone(), (clock, stats, limiter), fut)
        },
        |(clock, stats, limiter), _| {
            quiet(clock, stats);
            // At most the three calls' slots are spent (a dropped waiter's
            // slot is given back unless a later one was reserved after it),
            // and the budget still admits calls.
            let next = match limiter.check() {
                Ok(()) => clock.now(),
                Err(refused) => refused.retry_at(),
            };
            assert!(next.as_duration() <= 30 * MS, "next slot at {next:?}");
            clock.advance(30 * MS);
            assert!(limiter.check().is_ok());
        },
    );
    report("call: rate limit waits", r);
}
