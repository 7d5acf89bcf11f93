//! The cancellation and panic sweep: for every combinator, a call is dropped
//! after 1, 2, 3, … polls (until it completes), and after each drop nothing
//! may have leaked: permits all free, no waiter queued, no probe slot held,
//! no inner future alive, no sleep registered, counters consistent. The
//! same with the inner combinator panicking (after an await point).
//!
//! Each test prints how many cancellation points it swept
//! (`cargo test -p kompoz-tests --test cancellation -- --nocapture`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::join;
use kompoz_core::{
    Combinator, LimitMode, Limited, ManualClock, Registry, Retry, Timeout, parallel_and,
    parallel_or,
};
use kompoz_tests::sweep::{End, Probe, ProbeStats, Script, SweepReport, panics, sweep};

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

/// A probe that yields twice, sleeps `sleep`, then ends as `end`.
fn probe(clock: &ManualClock, sleep: Duration, end: End) -> Probe<ManualClock> {
    Probe::constant(clock.clone(), Script::new(2, sleep, end))
}

/// Nothing alive inside, no timer left behind.
fn quiet(clock: &ManualClock, probe: &ProbeStats) {
    assert_eq!(probe.live(), 0, "an inner future outlived the call");
    assert_eq!(clock.pending_sleeps(), 0, "a sleep outlived the call");
}

// ------------------------------------------------------------------ timeout

#[test]
fn timeout_completing_in_time() {
    let r = sweep(
        || {
            let clock = ManualClock::new();
            let p = probe(&clock, 5 * MS, End::Pass);
            let stats = p.stats();
            let t = Arc::new(Timeout::new(p, 10 * MS, clock.clone()).unwrap());
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
            let t = Arc::new(Timeout::new(p, 10 * MS, clock.clone()).unwrap());
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
        let t = Timeout::new(p, 10 * MS, clock.clone()).unwrap();
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
            let l = Arc::new(
                Limited::new(p, 1, clock.clone())
                    .unwrap()
                    .mode(mode)
                    .unwrap(),
            );
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
                Limited::named(p.clone(), 2, "db", &registry, clock.clone())
                    .unwrap()
                    .mode(mode)
                    .unwrap()
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
            let l = Limited::new(p, 1, clock.clone())
                .unwrap()
                .mode(mode)
                .unwrap();
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
    let l = Limited::new(p, 1, clock.clone()).unwrap();
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
            let retry = Arc::new(Retry::new(p, 3, clock.clone()).unwrap().fixed(2 * MS));
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
                Retry::new(p, 4, clock.clone())
                    .unwrap()
                    .exponential(MS, 2.0, 5 * MS)
                    .unwrap(),
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
        let retry = Retry::new(p, 3, clock.clone()).unwrap().fixed(MS);
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

fn all_quiet(clock: &ManualClock, ps: &[Arc<ProbeStats>]) {
    for s in ps {
        quiet(clock, s);
    }
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
            let retry = Retry::new(p, 3, clock.clone()).unwrap().fixed(MS);
            let limited = Limited::new(retry, 1, clock.clone()).unwrap();
            let pool = Arc::clone(limited.pool());
            let t = Arc::new(Timeout::new(limited, 30 * MS, clock.clone()).unwrap());
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
