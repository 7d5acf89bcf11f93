//! The circuit breaker's reference scenarios and hardening, on every runtime,
//! plus multi-thread stress tests.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{Either, join, join_all, select};
use kompoz_core::{
    Breaker, CircuitBreaker, CircuitBreakerBuilder, CircuitState, Clock, ClockExt, Combinator,
    ManualClock, rule,
};
use kompoz_tests::support::ms;

/// What the fake service is asked to do: pass or fail, after a delay.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Call {
    ok: bool,
    delay_ms: u64,
}

const PASS: Call = Call {
    ok: true,
    delay_ms: 0,
};
const FAIL: Call = Call {
    ok: false,
    delay_ms: 0,
};

fn after(delay_ms: u64, call: Call) -> Call {
    Call { delay_ms, ..call }
}

/// Sleeps as each call says and counts its runs.
#[derive(Clone, Debug)]
struct Service<K> {
    clock: K,
    runs: Arc<AtomicUsize>,
}

impl<K: Clock> Service<K> {
    fn new(clock: &K) -> Self {
        Service {
            clock: clock.clone(),
            runs: Arc::default(),
        }
    }
    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

impl<K: Clock> Combinator<Call> for Service<K> {
    #[allow(clippy::manual_async_fn)]
    fn run(&self, call: Call) -> impl Future<Output = (bool, Call)> {
        async move {
            self.runs.fetch_add(1, Ordering::SeqCst);
            if call.delay_ms > 0 {
                self.clock.sleep(ms(call.delay_ms)).await;
            }
            (call.ok, call)
        }
    }
}

fn builder<K: Clock>(service: &Service<K>) -> CircuitBreakerBuilder<Service<K>, K> {
    service.clock.circuit_breaker(service.clone())
}

async fn closed_passes_calls_through<K: Clock>(clock: K) {
    let service = Service::new(&clock);
    let protected = builder(&service).build().unwrap();
    assert_eq!(protected.run(PASS).await, (true, PASS));
    assert_eq!(protected.run(FAIL).await, (false, FAIL));
    assert_eq!(service.runs(), 2);
    assert_eq!(protected.state(), CircuitState::Closed);
}

async fn threshold_three_runs_the_inner_three_times_of_five<K: Clock>(clock: K) {
    let service = Service::new(&clock);
    let protected = builder(&service).failure_threshold(3).build().unwrap();
    for _ in 0..5 {
        assert!(!protected.run(FAIL).await.0);
    }
    assert_eq!(service.runs(), 3);
    assert_eq!(protected.state(), CircuitState::Open);
}

async fn open_rejects_without_running_the_inner<K: Clock>(clock: K) {
    let service = Service::new(&clock);
    let protected = builder(&service)
        .failure_threshold(1)
        .recovery_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    protected.run(FAIL).await;
    for _ in 0..5 {
        assert_eq!(protected.run(PASS).await, (false, PASS));
    }
    assert_eq!(service.runs(), 1);
    assert_eq!(protected.stats().rejected_count, 5);
}

async fn after_recovery_a_failing_probe_reopens_and_a_passing_one_closes<K: Clock>(clock: K) {
    let service = Service::new(&clock);
    let protected = builder(&service)
        .failure_threshold(2)
        .recovery_timeout(ms(20))
        .build()
        .unwrap();
    protected.run(FAIL).await;
    protected.run(FAIL).await;
    assert_eq!(protected.state(), CircuitState::Open);
    // The sleep starts after the circuit opened, so when it ends the
    // recovery timeout has passed on the same clock.
    clock.sleep(ms(20)).await;
    assert!(!protected.run(FAIL).await.0);
    assert_eq!(service.runs(), 3, "the probe ran");
    assert_eq!(protected.state(), CircuitState::Open);
    clock.sleep(ms(20)).await;
    assert!(protected.run(PASS).await.0);
    assert_eq!(protected.state(), CircuitState::Closed);
}

async fn the_callback_sees_closed_to_open<K: Clock>(clock: K) {
    let service = Service::new(&clock);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let protected = builder(&service)
        .failure_threshold(2)
        .on_state_change(move |old, new, stats| {
            log.lock().unwrap().push(format!(
                "Circuit {old} -> {new} ({} failures)",
                stats.failure_count
            ));
        })
        .build()
        .unwrap();
    protected.run(FAIL).await;
    protected.run(FAIL).await;
    protected.run(FAIL).await;
    assert_eq!(
        *seen.lock().unwrap(),
        ["Circuit CLOSED -> OPEN (2 failures)"]
    );
}

async fn stats_count_successes_and_failures<K: Clock>(clock: K) {
    let service = Service::new(&clock);
    let protected = builder(&service).build().unwrap();
    for call in [PASS, FAIL, PASS, FAIL, FAIL, PASS] {
        protected.run(call).await;
    }
    let stats = protected.stats();
    assert_eq!((stats.success_count, stats.failure_count), (3, 3));
    assert_eq!(stats.state, CircuitState::Closed);
    assert!(stats.last_failure_time.is_some());
}

async fn reset_closes<K: Clock>(clock: K) {
    let service = Service::new(&clock);
    let protected = builder(&service).failure_threshold(1).build().unwrap();
    protected.run(FAIL).await;
    assert_eq!(protected.state(), CircuitState::Open);
    protected.reset();
    assert_eq!(protected.state(), CircuitState::Closed);
    assert_eq!(protected.run(PASS).await, (true, PASS));
}

/// Trips a breaker (threshold 1, recovery 20 ms) and waits out the recovery.
async fn tripped<K: Clock>(
    service: &Service<K>,
    half_open_max_calls: u32,
) -> CircuitBreaker<Service<K>, K> {
    let protected = builder(service)
        .failure_threshold(1)
        .recovery_timeout(ms(20))
        .half_open_max_calls(half_open_max_calls)
        .build()
        .unwrap();
    protected.run(FAIL).await;
    service.clock.sleep(ms(20)).await;
    protected
}

async fn half_open_admits_two_of_fifty_concurrent_callers<K: Clock>(clock: K) {
    let service = Service::new(&clock);
    let protected = tripped(&service, 2).await;
    let results = join_all((0..50).map(|_| protected.run(after(30, PASS)))).await;
    assert_eq!(service.runs(), 3, "the trip, then exactly two probes");
    assert_eq!(results.iter().filter(|(ok, _)| *ok).count(), 2);
    assert_eq!(protected.stats().rejected_count, 48);
    assert_eq!(protected.state(), CircuitState::Closed);
}

async fn a_cancelled_probe_gives_its_slot_back<K: Clock>(clock: K) {
    let service = Service::new(&clock);
    let protected = tripped(&service, 1).await;
    // The probe (60 s) loses against 20 ms and is dropped.
    let probe = Box::pin(protected.run(after(60_000, PASS)));
    match select(probe, pin!(clock.sleep(ms(20)))).await {
        Either::Left(_) => panic!("the probe cannot finish first"),
        Either::Right(((), probe)) => drop(probe),
    }
    assert_eq!(protected.state(), CircuitState::HalfOpen);
    assert!(protected.run(PASS).await.0, "a new probe is admitted");
    assert_eq!(protected.state(), CircuitState::Closed);
}

async fn a_failure_that_began_before_reset_does_not_count<K: Clock>(clock: K) {
    let service = Service::new(&clock);
    let protected = builder(&service).failure_threshold(1).build().unwrap();
    // `join` polls the slow call first, so it is admitted before the reset.
    let ((ok, _), ()) = join(protected.run(after(30, FAIL)), async { protected.reset() }).await;
    assert!(!ok);
    assert_eq!(protected.state(), CircuitState::Closed);
    assert_eq!(protected.stats().failure_count, 0);
}

async fn timeouts_inside_the_breaker_count_as_failures<K: Clock>(clock: K) {
    let service = Service::new(&clock);
    let flaky = clock.with_timeout(service.clone(), ms(20)).unwrap();
    let protected = clock
        .circuit_breaker(flaky)
        .failure_threshold(2)
        .recovery_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let hang = after(60_000, PASS);
    assert_eq!(protected.run(hang).await, (false, hang));
    assert_eq!(protected.state(), CircuitState::Closed);
    assert_eq!(protected.run(hang).await, (false, hang));
    assert_eq!(
        protected.state(),
        CircuitState::Open,
        "two timeouts trip it"
    );
    assert_eq!(protected.get_ref().timeouts(), 2);
    assert_eq!(protected.run(PASS).await, (false, PASS));
    assert_eq!(service.runs(), 2, "rejected calls never reach the service");
    assert_eq!(protected.stats().failure_count, 2);
}

async fn one_breaker_guards_several_combinators<K: Clock>(clock: K) {
    let a = Service::new(&clock);
    let b = Service::new(&clock);
    let breaker = clock.shared_breaker().failure_threshold(2).build().unwrap();
    let (guard_a, guard_b) = (breaker.guard(a.clone()), breaker.guard(b.clone()));
    guard_a.run(FAIL).await;
    guard_b.run(FAIL).await;
    assert!(!guard_a.run(PASS).await.0);
    assert!(!guard_b.run(PASS).await.0);
    assert_eq!((a.runs(), b.runs()), (1, 1));
}

kompoz_tests::cross_runtime!(
    closed_passes_calls_through,
    threshold_three_runs_the_inner_three_times_of_five,
    open_rejects_without_running_the_inner,
    after_recovery_a_failing_probe_reopens_and_a_passing_one_closes,
    the_callback_sees_closed_to_open,
    stats_count_successes_and_failures,
    reset_closes,
    half_open_admits_two_of_fifty_concurrent_callers,
    a_cancelled_probe_gives_its_slot_back,
    a_failure_that_began_before_reset_does_not_count,
    timeouts_inside_the_breaker_count_as_failures,
    one_breaker_guards_several_combinators,
);

// ------------------------------------------------- multi-thread stress

/// A service that waits for a gate and counts its runs.
#[derive(Clone, Debug)]
struct Gated {
    gate: Arc<tokio::sync::Semaphore>,
    runs: Arc<AtomicUsize>,
}

impl Combinator<u32> for Gated {
    #[allow(clippy::manual_async_fn)]
    fn run(&self, n: u32) -> impl Future<Output = (bool, u32)> {
        async move {
            self.runs.fetch_add(1, Ordering::SeqCst);
            let _ = self.gate.acquire().await.unwrap();
            (true, n)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn half_open_slots_hold_under_threads() {
    for _ in 0..20 {
        let clock = ManualClock::new();
        let gated = Gated {
            gate: Arc::new(tokio::sync::Semaphore::new(0)),
            runs: Arc::default(),
        };
        let breaker = clock
            .shared_breaker()
            .failure_threshold(1)
            .half_open_max_calls(2)
            .recovery_timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        // Trip it through another guarded combinator, and wait out the recovery.
        breaker.guard(rule(async |_: &u32| false)).run(0).await;
        clock.advance(Duration::from_secs(1));
        let protected = Arc::new(breaker.guard(gated.clone()));

        let start = Arc::new(tokio::sync::Barrier::new(50));
        let tasks: Vec<_> = (0..50)
            .map(|n| {
                let protected = Arc::clone(&protected);
                let start = Arc::clone(&start);
                tokio::spawn(async move {
                    start.wait().await;
                    protected.run(n).await.0
                })
            })
            .collect();
        // 48 rejections return at once; then let the two probes finish.
        // (An admitted probe's task may not have reached its inner call
        // when the 48th rejection is counted: wait for both, so that a
        // third probe, not a slow scheduler, is what the check catches.)
        while protected.stats().rejected_count < 48 || gated.runs.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(gated.runs.load(Ordering::SeqCst), 2);
        gated.gate.add_permits(50);
        let mut passed = 0;
        for t in tasks {
            passed += t.await.unwrap() as usize;
        }
        assert_eq!(passed, 2);
        assert_eq!(protected.state(), CircuitState::Closed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn closed_path_counts_every_outcome_under_threads() {
    let protected = Arc::new(
        ManualClock::new()
            .circuit_breaker(rule(async |n: &u32| n % 3 != 0))
            .failure_threshold(65_535)
            .build()
            .unwrap(),
    );
    let tasks: Vec<_> = (0..8u32)
        .map(|t| {
            let protected = Arc::clone(&protected);
            tokio::spawn(async move {
                for i in 0..5_000u32 {
                    protected.run(t * 5_000 + i).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let stats = protected.stats();
    let failures = (0..40_000u32).filter(|n| n % 3 == 0).count() as u64;
    assert_eq!(stats.failure_count, failures);
    assert_eq!(stats.success_count, 40_000 - failures);
    assert_eq!(stats.state, CircuitState::Closed);
    // Every success reset the streak and no failure follows a failure
    // within a task, so only cross-task interleavings leave a streak, and
    // it is at most the number of tasks.
    assert!(stats.consecutive_failures <= 8);
}

#[test]
fn breaker_futures_are_send_and_breakers_are_send_sync() {
    fn send<T: Send>(_: &T) {}
    fn send_sync<T: Send + Sync>(_: &T) {}
    let protected =
        CircuitBreaker::builder(rule(async |_: &u32| true), kompoz_tokio::TokioClock::new())
            .build()
            .unwrap();
    send_sync(&protected);
    send_sync(protected.breaker());
    send(&protected.run(1));
}

/// The reference's examples with the runtime crates' `circuit_breaker`.
#[tokio::test(start_paused = true)]
async fn the_reference_examples_on_tokio() -> Result<(), kompoz_tokio::ConfigError> {
    use kompoz_tokio::{CircuitBreakerStats, CircuitState, circuit_breaker, rule};

    #[derive(Debug)]
    struct Ctx {
        id: u32,
    }
    async fn api_check(id: u32) -> bool {
        tokio::time::sleep(ms(5)).await;
        id != 0
    }

    let flaky_api = rule(async |ctx: &Ctx| api_check(ctx.id).await);
    let protected = circuit_breaker(flaky_api)
        .failure_threshold(5) // Open after 5 failures
        .recovery_timeout(Duration::from_secs(30)) // Try again after 30 seconds
        .build()?;
    let (ok, result) = protected.run(Ctx { id: 7 }).await;
    assert!(ok);
    assert_eq!(result.id, 7);
    for _ in 0..5 {
        protected.run(Ctx { id: 0 }).await;
    }
    // Check circuit state
    if protected.state() == CircuitState::Open {
        println!("Circuit is open, service likely down");
    }
    assert_eq!(protected.state(), CircuitState::Open);
    // Get detailed stats
    let stats = protected.stats();
    println!("Failures: {}", stats.failure_count);
    assert_eq!(stats.failure_count, 5);

    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(protected.run(Ctx { id: 1 }).await.0);
    assert_eq!(protected.state(), CircuitState::Closed);

    // State Change Callbacks
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let on_state_change =
        move |old_state: CircuitState, new_state: CircuitState, _stats: &CircuitBreakerStats| {
            println!("Circuit {old_state} -> {new_state}");
            log.lock()
                .unwrap()
                .push(format!("Circuit {old_state} -> {new_state}"));
        };
    let protected = circuit_breaker(rule(async |ctx: &Ctx| api_check(ctx.id).await))
        .failure_threshold(5)
        .recovery_timeout(Duration::from_secs(30))
        .on_state_change(on_state_change)
        .build()?;
    for _ in 0..5 {
        protected.run(Ctx { id: 0 }).await;
    }
    assert_eq!(*seen.lock().unwrap(), ["Circuit CLOSED -> OPEN"]);
    Ok(())
}

#[test]
fn shared_breakers_on_smol_and_async_std() {
    let pool = kompoz_smol::shared_breaker()
        .failure_threshold(1)
        .build()
        .unwrap();
    let (a, b) = (
        pool.guard(rule(async |_: &u32| false)),
        pool.guard(rule(async |_: &u32| true)),
    );
    ::smol::block_on(async {
        a.run(1).await;
        assert_eq!(b.run(2).await, (false, 2));
    });
    let protected = kompoz_async_std::circuit_breaker(rule(async |n: &u32| *n > 0))
        .build()
        .unwrap();
    ::async_std::task::block_on(async {
        assert_eq!(protected.run(3).await, (true, 3));
    });
    let protected = kompoz_core::futures_timer::circuit_breaker(rule(async |n: &u32| *n > 0))
        .build()
        .unwrap();
    assert_eq!(futures::executor::block_on(protected.run(0)), (false, 0));
}

// ------------------------------------------------- cancellation sweep

mod sweeps {
    use super::*;
    use kompoz_tests::sweep::{End, Probe, Script, panics, sweep};

    /// A breaker (threshold 1, recovery 10 s, `max` probes) tripped through
    /// another guard, with its recovery timeout just passed.
    fn half_open(clock: &ManualClock, max: u32) -> Breaker<ManualClock> {
        let breaker = clock
            .shared_breaker()
            .failure_threshold(1)
            .recovery_timeout(Duration::from_secs(10))
            .half_open_max_calls(max)
            .build()
            .unwrap();
        kompoz_tests::block_on_manual(clock, breaker.guard(rule(async |_: &u32| false)).run(0));
        clock.advance(Duration::from_secs(10));
        breaker
    }

    #[test]
    fn a_probe_dropped_at_any_point_gives_its_slot_back() {
        let report = sweep(
            || {
                let clock = ManualClock::new();
                let breaker = half_open(&clock, 1);
                let probe = Probe::constant(clock.clone(), Script::new(2, ms(100), End::Pass));
                let stats = probe.stats();
                let guarded = breaker.guard(probe);
                let fut = async move { guarded.run(1u32).await };
                (clock.clone(), (clock, breaker, stats), fut)
            },
            |(clock, breaker, inner), _polls| {
                assert_eq!(inner.live(), 0, "no inner future outlives the call");
                let stats = breaker.stats();
                assert_eq!(stats.half_open_in_flight, 0, "{stats:?}");
                if inner.passed() == 0 {
                    assert_eq!(stats.state, CircuitState::HalfOpen);
                    assert_eq!(stats.success_count, 0, "a cancelled call has no outcome");
                    let next = breaker.guard(rule(async |_: &u32| true));
                    assert!(kompoz_tests::block_on_manual(clock, next.run(2)).0);
                }
                assert_eq!(breaker.state(), CircuitState::Closed);
            },
        );
        assert!(report.dropped >= 3, "{report:?}");
    }

    #[test]
    fn a_closed_call_dropped_at_any_point_leaves_no_trace() {
        let report = sweep(
            || {
                let clock = ManualClock::new();
                let probe = Probe::constant(clock.clone(), Script::new(2, ms(100), End::Fail));
                let stats = probe.stats();
                let protected = clock
                    .circuit_breaker(probe)
                    .failure_threshold(1)
                    .build()
                    .unwrap();
                let breaker = protected.breaker().clone();
                let fut = async move { protected.run(1u32).await };
                (clock, (breaker, stats), fut)
            },
            |(breaker, inner), _polls| {
                assert_eq!(inner.live(), 0);
                let expected = if inner.failed() == 1 {
                    (CircuitState::Open, 1)
                } else {
                    (CircuitState::Closed, 0)
                };
                let stats = breaker.stats();
                assert_eq!((stats.state, stats.failure_count), expected);
            },
        );
        assert!(report.dropped >= 3, "{report:?}");
    }

    #[test]
    fn a_probe_timed_out_by_an_outer_timeout_gives_its_slot_back() {
        let clock = ManualClock::new();
        let breaker = half_open(&clock, 1);
        let probe = Probe::constant(
            clock.clone(),
            Script::new(0, Duration::from_secs(60), End::Pass),
        );
        let inner = probe.stats();
        let outer = clock.with_timeout(breaker.guard(probe), ms(20)).unwrap();
        assert_eq!(
            kompoz_tests::block_on_manual(&clock, outer.run(1u32)),
            (false, 1)
        );
        assert_eq!(outer.timeouts(), 1);
        assert_eq!((inner.live(), inner.cancelled()), (0, 1));
        assert_eq!(breaker.stats().half_open_in_flight, 0);
        // The outer timeout cancelled the probe: no outcome, a new probe runs.
        let next = breaker.guard(rule(async |_: &u32| true));
        assert!(kompoz_tests::block_on_manual(&clock, next.run(2)).0);
        assert_eq!(breaker.state(), CircuitState::Closed);
    }

    #[test]
    fn a_panicking_probe_reopens_and_the_next_probe_runs() {
        let clock = ManualClock::new();
        let breaker = half_open(&clock, 1);
        let probe = Probe::constant(clock.clone(), Script::new(1, ms(5), End::Panic));
        let inner = probe.stats();
        assert!(panics(&clock, breaker.guard(probe).run(1u32)));
        assert_eq!((inner.live(), inner.panicked()), (0, 1));
        let stats = breaker.stats();
        assert_eq!(
            (stats.state, stats.half_open_in_flight),
            (CircuitState::Open, 0)
        );
        clock.advance(Duration::from_secs(10));
        let next = breaker.guard(rule(async |_: &u32| true));
        assert!(kompoz_tests::block_on_manual(&clock, next.run(2)).0);
        assert_eq!(breaker.state(), CircuitState::Closed);
    }
}
