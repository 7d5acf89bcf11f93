//! One policy written once, generic over the clock and over its part, whose
//! calls are spawned on multi-threaded runtimes: `K: SendClock`, parts put
//! in with `.send_part()`, and `spawnable!` inside the generic function
//! (the README's "One policy, every runtime"). That the function compiles at
//! all is the compile-time half; the tests spawn its calls and read the
//! breaker that was passed in.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use kompoz_core::prelude::*;
use kompoz_core::{ManualClock, Registry};

/// Every layer that takes time, over two generic parts: retry, timeout, a
/// shared breaker, a named pool, a rate limit, the algebra and a parallel
/// AND.
fn policy<K: SendClock>(
    clock: &K,
    breaker: &Breaker<K>,
    registry: &Registry,
    check: impl SendCombinator<u32>,
    audit: impl SendCombinator<u32>,
) -> Result<impl SendCombinator<u32>, ConfigError> {
    let retried = clock
        .retry(check.send_part(), 3)?
        .fixed(Duration::from_millis(1));
    let timed = clock.with_timeout(retried, Duration::from_secs(5))?;
    let limited = clock.limited_named_in(breaker.guard(timed), 4, "spawn_generic", registry)?;
    let rated = clock.rate_limited(limited, RateLimit::per_second(1_000_000)?);
    let both = parallel_and!(rated, audit.send_part() & rule_fn(|_: &u32| async { true }));
    Ok(spawnable!(both))
}

/// A service the test steers, as a `rule_fn` leaf (a `SendCombinator` as it is).
fn service(up: &Arc<AtomicBool>, calls: &Arc<AtomicU32>) -> impl SendCombinator<u32> + use<> {
    let (up, calls) = (Arc::clone(up), Arc::clone(calls));
    rule_fn(move |_: &u32| {
        calls.fetch_add(1, Ordering::SeqCst);
        let up = up.load(Ordering::SeqCst);
        async move { up }
    })
}

/// A composed part, made a `SendCombinator` with `spawnable!`.
fn audit() -> impl SendCombinator<u32> {
    spawnable!(
        rule_fn(|n: &u32| {
            let n = *n;
            async move { n < 1000 }
        }) & transform_fn(|n: u32| async move { n })
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generic_policy_spawns_on_tokio_and_its_breaker_is_observable() {
    let clock = kompoz_tokio::TokioClock;
    let breaker = clock.shared_breaker().failure_threshold(2).build().unwrap();
    let (up, calls) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicU32::new(0)));
    let registry = Registry::new();
    let api = policy(&clock, &breaker, &registry, service(&up, &calls), audit()).unwrap();

    let handles: Vec<_> = (0..8u32).map(|id| tokio::spawn(api.run_send(id))).collect();
    for (id, handle) in (0..8u32).zip(handles) {
        assert_eq!(handle.await.unwrap(), (true, id));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 8);

    up.store(false, Ordering::SeqCst);
    for id in 0..2u32 {
        assert_eq!(tokio::spawn(api.run_send(id)).await.unwrap(), (false, id));
    }
    assert_eq!(breaker.state(), CircuitState::Open);
    assert_eq!(calls.load(Ordering::SeqCst), 8 + 2 * 3);
}

#[test]
fn a_generic_policy_spawns_on_smol() {
    let clock = kompoz_smol::SmolClock;
    let breaker = clock.shared_breaker().build().unwrap();
    let (up, calls) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicU32::new(0)));
    let registry = Registry::new();
    let api = policy(&clock, &breaker, &registry, service(&up, &calls), audit()).unwrap();
    let ex = smol::Executor::new();
    let verdicts = std::thread::scope(|s| {
        let (stop, shutdown) = smol::channel::unbounded::<()>();
        s.spawn(|| smol::block_on(ex.run(async move { shutdown.recv().await })));
        let tasks: Vec<_> = (0..8u32).map(|id| ex.spawn(api.run_send(id))).collect();
        let verdicts = smol::block_on(ex.run(async {
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await);
            }
            out
        }));
        drop(stop);
        verdicts
    });
    assert_eq!(verdicts, (0..8u32).map(|id| (true, id)).collect::<Vec<_>>());
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[test]
fn a_generic_policy_runs_on_another_thread_under_manual_clock() {
    let clock = ManualClock::new();
    let breaker = clock
        .shared_breaker()
        .failure_threshold(1)
        .recovery_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let (up, calls) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU32::new(0)),
    );
    let registry = Registry::new();
    let api = policy(&clock, &breaker, &registry, service(&up, &calls), audit()).unwrap();

    let (call, runner) = (api.run_send(1), clock.clone());
    let verdict = std::thread::spawn(move || runner.block_on(call))
        .join()
        .unwrap();
    assert_eq!(verdict, (false, 1));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(breaker.state(), CircuitState::Open);

    up.store(true, Ordering::SeqCst);
    clock.advance(Duration::from_secs(30));
    let (call, runner) = (api.run_send(2), clock.clone());
    let verdict = std::thread::spawn(move || runner.block_on(call))
        .join()
        .unwrap();
    assert_eq!(verdict, (true, 2));
    assert_eq!(breaker.state(), CircuitState::Closed);
}

/// Every clock the project ships is a `SendClock` (its docs say so).
#[test]
fn every_shipped_clock_is_a_send_clock() {
    fn send_clock<K: SendClock>(_: &K) {}
    send_clock(&kompoz_tokio::TokioClock);
    send_clock(&kompoz_smol::SmolClock);
    send_clock(&kompoz_async_std::AsyncStdClock);
    send_clock(&kompoz_core::FuturesTimerClock);
    send_clock(&ManualClock::new());
}
