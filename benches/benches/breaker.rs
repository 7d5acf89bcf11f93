//! Circuit breaker: the CLOSED path (success and failure calls, one thread and
//! two threads on one shared breaker) and the OPEN path (the rejection cost),
//! kompoz against failsafe, recloser and tower-resilience.
//!
//! Policies are as close as each peer allows: consecutive failures where the
//! peer has them (kompoz, failsafe, tower-resilience), recloser's count window
//! where it has only that. Success groups use the reference's policy (open
//! after 5 failures in a row, 30 s recovery).
//!
//! Failure groups must keep every breaker CLOSED while each call records a
//! failure: thresholds are set as high as each breaker accepts (kompoz's
//! streak counter holds 65,535) and every contender makes one success call
//! per [`FAILURE_RUN`] failures, which ends the streak. That success costs
//! every contender the same and adds 1/`FAILURE_RUN` of it per call.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use failsafe::futures::CircuitBreaker as _;
use kompoz_benches::{poll_once, sink, spin_on, tower_once, tower_spin, two_threads};
use kompoz_tokio::{CircuitState, Combinator, FastClock, TokioClock};
use tower::service_fn;
use tower_resilience::circuitbreaker::CircuitBreakerLayer;

const HOUR: Duration = Duration::from_secs(3600);
const RECOVERY: Duration = Duration::from_secs(30);

/// Calls per thread for each success that ends a failure streak: small
/// enough that two threads' interleaved failures (2 × 20,000) stay below
/// kompoz's largest threshold.
const FAILURE_RUN: u64 = 20_000;
/// The highest consecutive-failure threshold kompoz accepts.
const KOMPOZ_MAX_THRESHOLD: u32 = 65_535;

type Inner = fn(u64) -> std::future::Ready<Result<u64, ()>>;

/// The peers' inner step: succeeds for a non-zero input, fails for 0.
fn peer_inner(x: u64) -> std::future::Ready<Result<u64, ()>> {
    std::future::ready(if x == 0 { Err(()) } else { Ok(x) })
}

/// kompoz's inner step, the same decision as [`peer_inner`].
fn kompoz_inner() -> impl Combinator<u64> + Clone + Send + Sync {
    kompoz_tokio::rule(async |x: &u64| *x != 0)
}

/// The input of call number `i`: 1 (a success) for success groups; for
/// failure groups 0 (a failure), except one success per [`FAILURE_RUN`].
#[inline(always)]
fn input(ok: bool, i: &mut u64) -> u64 {
    if ok {
        return 1;
    }
    *i += 1;
    u64::from(*i % FAILURE_RUN == 0)
}

fn kompoz_breaker(
    threshold: u32,
    count_successes: bool,
) -> kompoz_tokio::CircuitBreaker<impl Combinator<u64> + Clone + Send + Sync, TokioClock> {
    kompoz_tokio::circuit_breaker(kompoz_inner())
        .failure_threshold(threshold)
        .recovery_timeout(RECOVERY)
        .count_successes(count_successes)
        .build()
        .expect("kompoz config")
}

/// The row of kompoz built with `count_successes(false)` (success groups
/// only): `success_count` stays 0, which saves the one atomic add of a
/// healthy success. The "kompoz" row is the default configuration.
const KOMPOZ_UNCOUNTED: &str = "kompoz (count_successes(false))";

/// The row of kompoz on [`FastClock`] (`now()` from the CPU's counter)
/// around `TokioClock`; the "kompoz" row reads tokio's clock.
const KOMPOZ_FAST_CLOCK: &str = "kompoz (FastClock)";

fn failsafe_breaker(
    threshold: u32,
) -> impl failsafe::futures::CircuitBreaker + Clone + Send + Sync {
    failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::consecutive_failures(
            threshold,
            failsafe::backoff::constant(RECOVERY),
        ))
        .build()
}

/// recloser has only a failure-rate window: open at `error_rate` over the
/// last `window` calls.
fn recloser_breaker(error_rate: f32, window: usize) -> recloser::AsyncRecloser {
    recloser::Recloser::custom()
        .error_rate(error_rate)
        .closed_len(window)
        .open_wait(RECOVERY)
        .build()
        .into()
}

fn tower_breaker(
    k: usize,
) -> impl tower::Service<u64, Response = u64, Error = impl std::fmt::Debug> + Clone + Send {
    CircuitBreakerLayer::builder()
        .consecutive_failures(k)
        .wait_duration_in_open(RECOVERY)
        .build()
        .expect("tower-resilience config")
        .layer_fn(service_fn(peer_inner as Inner))
}

/// Thresholds per contender: the reference's for success groups, the
/// highest each accepts for failure groups (recloser: a rate it never reaches).
struct Policy {
    kompoz: u32,
    failsafe: u32,
    recloser_rate: f32,
    tower: usize,
}

fn policy(ok: bool) -> Policy {
    if ok {
        Policy {
            kompoz: 5,
            failsafe: 5,
            recloser_rate: 0.5,
            tower: 5,
        }
    } else {
        Policy {
            kompoz: KOMPOZ_MAX_THRESHOLD,
            failsafe: u32::MAX,
            recloser_rate: 1.5,
            tower: usize::MAX,
        }
    }
}

/// The CLOSED path on one thread; `ok` picks success or failure calls.
fn closed(c: &mut Criterion, name: &str, ok: bool) {
    let p = policy(ok);
    let mut g = c.benchmark_group(name);

    let inner = kompoz_inner();
    // Each contender's call counter lives across criterion's invocations of
    // the routine, so the failure streak is broken every FAILURE_RUN calls.
    let mut i = 0;
    g.bench_function("direct", |b| {
        b.iter(|| poll_once(inner.run(black_box(input(ok, &mut i)))))
    });

    let kz = kompoz_breaker(p.kompoz, true);
    let mut i = 0;
    g.bench_function("kompoz", |b| {
        b.iter(|| poll_once(kz.run(black_box(input(ok, &mut i)))))
    });
    assert_eq!(
        kz.state(),
        CircuitState::Closed,
        "kompoz must still be closed"
    );

    if ok {
        let kz = kompoz_breaker(p.kompoz, false);
        let mut i = 0;
        g.bench_function(KOMPOZ_UNCOUNTED, |b| {
            b.iter(|| poll_once(kz.run(black_box(input(ok, &mut i)))))
        });
        assert_eq!(kz.stats().success_count, 0, "kompoz must not count");
    }

    let fs = failsafe_breaker(p.failsafe);
    let mut i = 0;
    g.bench_function("failsafe", |b| {
        b.iter(|| poll_once(fs.call(peer_inner(black_box(input(ok, &mut i))))))
    });
    assert!(fs.is_call_permitted(), "failsafe must still be closed");

    let rc = recloser_breaker(p.recloser_rate, 100);
    let mut i = 0;
    g.bench_function("recloser", |b| {
        b.iter(|| poll_once(rc.call(peer_inner(black_box(input(ok, &mut i))))))
    });

    let mut tr = tower_breaker(p.tower);
    let mut i = 0;
    g.bench_function("tower-resilience", |b| {
        b.iter(|| tower_once(&mut tr, black_box(input(ok, &mut i))))
    });

    g.finish();
}

/// The CLOSED path with two threads calling one shared breaker.
fn closed_two_threads(c: &mut Criterion, name: &str, ok: bool) {
    let p = policy(ok);
    let mut g = c.benchmark_group(name);

    let inner = kompoz_inner();
    let mut states = [0, 0];
    g.bench_function("direct", |b| {
        b.iter_custom(|n| {
            two_threads(n, &mut states, |i| {
                sink(spin_on(inner.run(black_box(input(ok, i)))))
            })
        })
    });

    let kz = Arc::new(kompoz_breaker(p.kompoz, true));
    let mut states = [(kz.clone(), 0), (kz.clone(), 0)];
    g.bench_function("kompoz", |b| {
        b.iter_custom(|n| {
            two_threads(n, &mut states, |(kz, i)| {
                sink(spin_on(kz.run(black_box(input(ok, i)))))
            })
        })
    });
    assert_eq!(
        kz.state(),
        CircuitState::Closed,
        "kompoz must still be closed"
    );

    if ok {
        let kz = Arc::new(kompoz_breaker(p.kompoz, false));
        let mut states = [(kz.clone(), 0), (kz.clone(), 0)];
        g.bench_function(KOMPOZ_UNCOUNTED, |b| {
            b.iter_custom(|n| {
                two_threads(n, &mut states, |(kz, i)| {
                    sink(spin_on(kz.run(black_box(input(ok, i)))))
                })
            })
        });
        assert_eq!(kz.stats().success_count, 0, "kompoz must not count");
    }

    let fs = failsafe_breaker(p.failsafe);
    let mut states = [(fs.clone(), 0), (fs.clone(), 0)];
    g.bench_function("failsafe", |b| {
        b.iter_custom(|n| {
            two_threads(n, &mut states, |(fs, i)| {
                sink(spin_on(fs.call(peer_inner(black_box(input(ok, i))))))
            })
        })
    });

    let rc = recloser_breaker(p.recloser_rate, 100);
    let mut states = [(rc.clone(), 0), (rc.clone(), 0)];
    g.bench_function("recloser", |b| {
        b.iter_custom(|n| {
            two_threads(n, &mut states, |(rc, i)| {
                sink(spin_on(rc.call(peer_inner(black_box(input(ok, i))))))
            })
        })
    });

    let tr = tower_breaker(p.tower);
    let mut states = [(tr.clone(), 0), (tr.clone(), 0)];
    g.bench_function("tower-resilience", |b| {
        b.iter_custom(|n| {
            two_threads(n, &mut states, |(tr, i)| {
                sink(tower_spin(tr, black_box(input(ok, i))))
            })
        })
    });

    g.finish();
}

/// The OPEN path: every call is rejected without running the inner step.
fn open(c: &mut Criterion) {
    let mut g = c.benchmark_group("breaker_open");

    let kz = kompoz_tokio::circuit_breaker(kompoz_inner())
        .failure_threshold(5)
        .recovery_timeout(HOUR)
        .build()
        .expect("kompoz config");
    for _ in 0..5 {
        poll_once(kz.run(0));
    }
    assert_eq!(kz.state(), CircuitState::Open, "kompoz must be open");
    g.bench_function("kompoz", |b| b.iter(|| poll_once(kz.run(black_box(1)))));
    assert_eq!(poll_once(kz.run(1)), (false, 1), "kompoz must reject");

    // The same breaker reading the CPU's counter instead of the OS clock.
    let kz = kompoz_tokio::CircuitBreaker::builder(kompoz_inner(), FastClock::new(TokioClock))
        .failure_threshold(5)
        .recovery_timeout(HOUR)
        .build()
        .expect("kompoz config");
    for _ in 0..5 {
        poll_once(kz.run(0));
    }
    assert_eq!(kz.state(), CircuitState::Open, "kompoz must be open");
    g.bench_function(KOMPOZ_FAST_CLOCK, |b| {
        b.iter(|| poll_once(kz.run(black_box(1))))
    });
    assert_eq!(poll_once(kz.run(1)), (false, 1), "kompoz must reject");

    let fs = failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::consecutive_failures(
            5,
            failsafe::backoff::constant(HOUR),
        ))
        .build();
    for _ in 0..5 {
        let _ = poll_once(fs.call(peer_inner(0)));
    }
    assert!(!fs.is_call_permitted(), "failsafe must be open");
    g.bench_function("failsafe", |b| {
        b.iter(|| poll_once(fs.call(peer_inner(black_box(1)))))
    });

    let rc: recloser::AsyncRecloser = recloser::Recloser::custom()
        .error_rate(0.5)
        .closed_len(5)
        .open_wait(HOUR)
        .build()
        .into();
    for _ in 0..6 {
        let _ = poll_once(rc.call(peer_inner(0)));
    }
    assert!(
        matches!(
            poll_once(rc.call(peer_inner(1))),
            Err(recloser::Error::Rejected)
        ),
        "recloser must be open"
    );
    g.bench_function("recloser", |b| {
        b.iter(|| poll_once(rc.call(peer_inner(black_box(1)))))
    });

    let mut tr = CircuitBreakerLayer::builder()
        .consecutive_failures(5)
        .wait_duration_in_open(HOUR)
        .build()
        .expect("tower-resilience config")
        .layer_fn(service_fn(peer_inner as Inner));
    for _ in 0..5 {
        let _ = tower_once(&mut tr, 0);
    }
    assert!(tr.is_open(), "tower-resilience must be open");
    g.bench_function("tower-resilience", |b| {
        b.iter(|| tower_once(&mut tr, black_box(1)))
    });

    g.finish();
}

fn benches(c: &mut Criterion) {
    closed(c, "breaker_closed_success", true);
    closed(c, "breaker_closed_failure", false);
    closed_two_threads(c, "breaker_closed_success_2threads", true);
    closed_two_threads(c, "breaker_closed_failure_2threads", false);
    open(c);
}

criterion_group! {
    name = group;
    config = kompoz_benches::criterion();
    targets = benches
}
criterion_main!(group);
