//! Stress: many calls through a composed stack — timeout ∘ shared limiter ∘
//! breaker ∘ retry — over a flaky inner (random latency, failures, panics),
//! with random cancellation by the caller, on tokio's multi-thread runtime
//! and on smol with several executor threads.
//!
//! Invariants at the end: every permit back, no waiter queued, no probe slot
//! held, the breaker not stuck (a call gets through), and every call
//! accounted for exactly once: success, failure, timeout, rejection (by the
//! limiter or the breaker), panic or cancellation, with each layer's own
//! counters agreeing with what the callers saw.
//!
//! `STRESS_CALLS` sets the number of calls per runtime (default 200,000;
//! the nightly-style run in `.ci/long` uses 1,000,000):
//! `STRESS_CALLS=1000000 cargo test --release -p kompoz-tests --test stress -- --nocapture`.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use futures::FutureExt;
use kompoz_core::{
    Breaker, CircuitBreaker, CircuitState, Clock, ClockExt, Combinator, LimitMode, Limited,
    Registry, Retry, Timeout, circuit_breaker::NotOk, timeout::TimeoutOutcome,
};
use kompoz_tests::sweep::{SCRIPTED, YieldNow, quiet_scripted_panics};

/// Tasks calling at once; the pool is smaller, so callers queue and bounce.
const TASKS: u64 = 48;
const POOL: usize = 16;

fn calls() -> u64 {
    std::env::var("STRESS_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

/// SplitMix64: the call's random draws come from its own number.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Default)]
struct Counts {
    // What the callers saw.
    ok: AtomicU64,
    not_ok: AtomicU64,
    timed_out: AtomicU64,
    panicked: AtomicU64,
    cancelled: AtomicU64,
    // What the innermost layers saw.
    inner_runs: AtomicU64,
    inner_panics: AtomicU64,
    retry_true: AtomicU64,
    retry_false: AtomicU64,
    // Transitions reported by the breaker.
    opened: AtomicU64,
    closed: AtomicU64,
}

/// The flaky service. The context is the call's number; each attempt draws
/// from it and the global attempt count. In a "bad phase" (3 ms in every 50
/// on the clock) nearly every attempt fails, so the breaker trips, probes
/// and recovers many times.
#[derive(Clone)]
struct Flaky<K> {
    clock: K,
    counts: Arc<Counts>,
}

impl<K: Clock> Combinator<u64> for Flaky<K> {
    async fn run(&self, call: u64) -> (bool, u64) {
        let attempt = self.counts.inner_runs.fetch_add(1, Ordering::Relaxed);
        let r = mix(call ^ attempt.rotate_left(32));
        // Phases follow the clock, so all tasks share them: 3 ms in every 50.
        let bad_phase = self.clock.now().as_nanos() / 1_000_000 % 50 < 3;
        match r % 10_000 {
            0..2 => {
                self.counts.inner_panics.fetch_add(1, Ordering::Relaxed);
                std::panic::panic_any(SCRIPTED);
            }
            // Slow: longer than the timeout.
            2..7 => self.clock.sleep(Duration::from_millis(20)).await,
            // A little latency.
            7..30 => self.clock.sleep(Duration::from_micros(200)).await,
            30..3000 => YieldNow(false).await,
            _ => {}
        }
        let fail_per_10k = if bad_phase { 9_900 } else { 1_500 };
        ((r >> 20) % 10_000 >= fail_per_10k, call)
    }
}

/// Counts the verdicts that come out of the retry layer.
#[derive(Clone)]
struct Tally<A> {
    inner: A,
    counts: Arc<Counts>,
}

impl<A: Combinator<u64>> Combinator<u64> for Tally<A> {
    async fn run(&self, call: u64) -> (bool, u64) {
        let (ok, call) = self.inner.run(call).await;
        let counter = if ok {
            &self.counts.retry_true
        } else {
            &self.counts.retry_false
        };
        counter.fetch_add(1, Ordering::Relaxed);
        (ok, call)
    }
}

type Stack<K> = Timeout<Limited<CircuitBreaker<Tally<Retry<Flaky<K>, K>>, K, NotOk>, K>, K>;

struct Rig<K> {
    stacks: Vec<Stack<K>>,
    breaker: Breaker<K>,
    counts: Arc<Counts>,
    clock: K,
}

/// Two stacks sharing one named pool and one breaker: one waits for a
/// permit at most 1 ms, the other as long as its timeout allows.
fn rig<K: Clock + Send + Sync + 'static>(clock: K) -> Rig<K> {
    let counts = Arc::new(Counts::default());
    let registry = Registry::new();
    let breaker = clock
        .shared_breaker()
        .failure_threshold(8)
        .recovery_timeout(Duration::from_millis(2))
        .half_open_max_calls(3)
        .on_state_change({
            let counts = Arc::clone(&counts);
            move |_, to, _| {
                let counter = match to {
                    CircuitState::Open => &counts.opened,
                    _ => &counts.closed,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })
        .build()
        .unwrap();
    let stack = |mode: LimitMode| {
        let flaky = Flaky {
            clock: clock.clone(),
            counts: Arc::clone(&counts),
        };
        let retry = clock.retry(flaky, 3).unwrap();
        let tally = Tally {
            inner: retry,
            counts: Arc::clone(&counts),
        };
        let guarded = breaker.guard(tally);
        let limited = clock
            .limited_named_in(guarded, POOL, "stress", &registry)
            .unwrap()
            .with_mode(mode);
        clock
            .with_timeout(limited, Duration::from_millis(5))
            .unwrap()
    };
    Rig {
        stacks: vec![
            stack(LimitMode::WaitAtMost(Duration::from_millis(1))),
            stack(LimitMode::Wait),
        ],
        breaker,
        counts,
        clock,
    }
}

/// One task's share of the calls.
async fn worker<K: Clock>(rig: Arc<Rig<K>>, task: u64, per_task: u64) {
    for i in 0..per_task {
        let call = task * per_task + i;
        let stack = &rig.stacks[(call % 2) as usize];
        let counts = &rig.counts;
        let fut = AssertUnwindSafe(stack.run_with_outcome(call)).catch_unwind();
        let mut fut = pin!(fut);
        // One call in 50 is abandoned by its caller after a first poll.
        let outcome = if mix(call ^ 0xC0FFEE) % 50 == 0 {
            let polled = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
            match polled {
                Poll::Ready(outcome) => Some(outcome),
                Poll::Pending => None,
            }
        } else {
            Some(fut.await)
        };
        let counter = match outcome {
            None => &counts.cancelled,
            Some(Err(_)) => &counts.panicked,
            Some(Ok((TimeoutOutcome::TimedOut, _))) => &counts.timed_out,
            Some(Ok((TimeoutOutcome::Completed(true), _))) => &counts.ok,
            Some(Ok((TimeoutOutcome::Completed(false), _))) => &counts.not_ok,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The invariants, after every task is done.
async fn check<K: Clock>(rig: &Rig<K>, total: u64, started: Instant) {
    let c = &rig.counts;
    let load = |a: &AtomicU64| a.load(Ordering::SeqCst);
    let (ok, not_ok, timed_out, panicked, cancelled) = (
        load(&c.ok),
        load(&c.not_ok),
        load(&c.timed_out),
        load(&c.panicked),
        load(&c.cancelled),
    );
    let limiter_rejected: u64 = rig.stacks.iter().map(|s| s.get_ref().rejected()).sum();
    let timeouts: u64 = rig.stacks.iter().map(|s| s.timeouts()).sum();
    let stats = rig.breaker.stats();
    println!(
        "stress: {total} calls in {:?}: {ok} ok, {not_ok} not ok ({limiter_rejected} rejected by the \
         limiter, {} by the breaker, {} failed after retries), {timed_out} timed out, \
         {panicked} panicked, {cancelled} cancelled by the caller; {} inner runs; the breaker \
         opened {} times, ended {:?}",
        started.elapsed(),
        stats.rejected_count,
        load(&c.retry_false),
        load(&c.inner_runs),
        load(&c.opened),
        stats.state,
    );
    // Every call accounted for exactly once.
    assert_eq!(ok + not_ok + timed_out + panicked + cancelled, total);
    // ... and each layer agrees with what the callers saw.
    assert_eq!(timed_out, timeouts, "timeouts seen vs counted");
    assert_eq!(panicked, load(&c.inner_panics), "every panic surfaced once");
    assert_eq!(ok, load(&c.retry_true), "successes seen vs produced");
    assert_eq!(
        not_ok,
        limiter_rejected + stats.rejected_count + load(&c.retry_false),
        "each failure is a limiter rejection, a breaker rejection or a failed retry"
    );
    assert!(
        load(&c.opened) > 0,
        "the bad phases never tripped the breaker"
    );
    // Permits whole, nobody queued.
    let pool = rig.stacks[0].get_ref().pool();
    assert_eq!(
        (pool.available(), pool.waiting()),
        (POOL, 0),
        "the pool leaked"
    );
    // The breaker holds no probe slot and is not stuck.
    assert_eq!(
        stats.half_open_in_flight, 0,
        "a probe slot leaked: {stats:?}"
    );
    let probe = rig.breaker.guard(kompoz_core::rule(async |_: &u64| true));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if probe.run(0).await.0 && rig.breaker.state() == CircuitState::Closed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the breaker is stuck: {:?}",
            rig.breaker.stats()
        );
        rig.clock.sleep(Duration::from_millis(1)).await;
    }
}

#[test]
fn stress_tokio_multi_thread() {
    quiet_scripted_panics();
    let total = calls() / TASKS * TASKS;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let rig = Arc::new(rig(kompoz_tokio::TokioClock::new()));
        let started = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| tokio::spawn(worker(Arc::clone(&rig), t, total / TASKS)))
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        check(&rig, total, started).await;
    });
}

#[test]
fn stress_smol_executor_threads() {
    quiet_scripted_panics();
    let total = calls() / TASKS * TASKS;
    let ex = Arc::new(smol::Executor::new());
    let (stop, until_stopped) = smol::channel::unbounded::<()>();
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let (ex, until_stopped) = (Arc::clone(&ex), until_stopped.clone());
            std::thread::spawn(move || smol::future::block_on(ex.run(until_stopped.recv())))
        })
        .collect();
    smol::future::block_on(async {
        let rig = Arc::new(rig(kompoz_smol::SmolClock::new()));
        let started = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| ex.spawn(worker(Arc::clone(&rig), t, total / TASKS)))
            .collect();
        for t in tasks {
            t.await;
        }
        check(&rig, total, started).await;
    });
    drop(stop);
    for t in threads {
        let _ = t.join().unwrap();
    }
}
