//! Rate limits on every runtime, and each runtime crate's `rate_limited`.
//!
//! On the real-time runtimes the budgets are per minute where a call must be
//! turned away (nothing refills during the test), and only lower bounds on
//! time are asserted where calls wait (a sleep never ends early).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::{Either, join_all, select};
use kompoz_core::{
    Clock, ClockExt, Combinator, Instant, RateLimit, Registry, limiter::LimitOutcome, rule,
};
use kompoz_tests::support::ms;

/// A passing inner combinator that records when it started.
fn recording<K: Clock>(clock: &K) -> (impl Combinator<u32> + use<K>, Arc<Mutex<Vec<Instant>>>) {
    let starts = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&starts);
    let clock = clock.clone();
    let inner = rule(async move |_: &u32| {
        seen.lock().unwrap().push(clock.now());
        true
    });
    (inner, starts)
}

async fn n_calls_pass_and_the_next_is_rejected<K: Clock>(clock: K) {
    let (inner, starts) = recording(&clock);
    let limit = RateLimit::with_burst(3, Duration::from_secs(60), 3).unwrap();
    let limited = clock.rate_limited(inner, limit).reject_when_full();
    let outcomes = join_all((0..4).map(|i| limited.run_with_outcome(i))).await;
    let ran = outcomes
        .iter()
        .filter(|(o, _)| *o == LimitOutcome::Ran(true))
        .count();
    assert_eq!(ran, 3);
    assert_eq!(
        outcomes[3],
        (LimitOutcome::Rejected, 3),
        "the 4th is over the budget"
    );
    assert_eq!(
        starts.lock().unwrap().len(),
        3,
        "a rejected call never runs"
    );
    assert_eq!(limited.rejected(), 1);
}

async fn waiting_calls_run_no_earlier_than_their_slots<K: Clock>(clock: K) {
    let (inner, starts) = recording(&clock);
    let limit = RateLimit::new(1, ms(20)).unwrap();
    let limited = clock.rate_limited(inner, limit);
    let begin = clock.now();
    let results = join_all((0..4).map(|i| limited.run(i))).await;
    assert!(results.iter().all(|(ok, _)| *ok));
    let starts = starts.lock().unwrap();
    assert_eq!(starts.len(), 4);
    for (k, s) in starts.iter().enumerate() {
        assert!(
            s.duration_since(begin) >= ms(20 * k as u64),
            "call {k} ran at {:?}, before its slot",
            s.duration_since(begin)
        );
    }
}

async fn wait_at_most_rejects_a_far_slot_at_once<K: Clock>(clock: K) {
    let (inner, starts) = recording(&clock);
    let limited = clock
        .rate_limited(inner, RateLimit::per_minute(1).unwrap())
        .wait_at_most(ms(20));
    assert_eq!(limited.run(1).await, (true, 1));
    // The next slot is a minute away: rejected without waiting for it.
    assert_eq!(
        limited.run_with_outcome(2).await,
        (LimitOutcome::Rejected, 2)
    );
    assert_eq!(starts.lock().unwrap().len(), 1);
}

async fn a_shared_name_shares_the_budget<K: Clock + Send + Sync + 'static>(clock: K) {
    let registry = Registry::new();
    let limit = RateLimit::with_burst(2, Duration::from_secs(60), 2).unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let make = || {
        let c = Arc::clone(&calls);
        let inner = rule(async move |_: &u32| {
            c.fetch_add(1, Ordering::SeqCst);
            true
        });
        clock
            .rate_limited_named_in(inner, limit, "api", &registry)
            .unwrap()
            .reject_when_full()
    };
    let (a, b) = (make(), make());
    assert!(a.run(1).await.0);
    assert!(b.run(2).await.0);
    assert!(!a.run(3).await.0);
    assert!(!b.run(4).await.0);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(a.rejected() + b.rejected(), 2);
}

async fn dropping_a_waiting_call_cancels_it<K: Clock>(clock: K) {
    let ran = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&ran);
    let inner = rule(async move |_: &u32| {
        r.fetch_add(1, Ordering::SeqCst);
        true
    });
    let limited = clock.rate_limited(inner, RateLimit::per_minute(1).unwrap());
    assert!(limited.run(1).await.0);
    let waiting = Box::pin(limited.run(2)); // its slot is a minute away
    match select(waiting, Box::pin(clock.sleep(ms(20)))).await {
        Either::Left(_) => panic!("ran before its slot"),
        Either::Right(((), waiting)) => drop(waiting),
    }
    clock.sleep(ms(5)).await;
    assert_eq!(ran.load(Ordering::SeqCst), 1, "the dropped call never ran");
}

async fn bad_configuration_is_refused<K: Clock>(_clock: K) {
    assert_eq!(RateLimit::new(0, ms(1)).unwrap_err().parameter(), "rate");
    assert_eq!(
        RateLimit::new(1, Duration::ZERO).unwrap_err().parameter(),
        "period"
    );
    assert_eq!(
        RateLimit::with_burst(1, Duration::from_secs(1), 0)
            .unwrap_err()
            .to_string(),
        "invalid `burst`: 0 (expected at least 1)"
    );
}

kompoz_tests::cross_runtime!(
    n_calls_pass_and_the_next_is_rejected,
    waiting_calls_run_no_earlier_than_their_slots,
    wait_at_most_rejects_a_far_slot_at_once,
    a_shared_name_shares_the_budget,
    dropping_a_waiting_call_cancels_it,
    bad_configuration_is_refused,
);

/// Under paused time the slots are exact: 5 per second, the 6th call at 1 s.
#[tokio::test(start_paused = true)]
async fn tokio_rate_limited_spaces_calls_exactly() {
    let start = tokio::time::Instant::now();
    let starts = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&starts);
    let inner = rule(async move |_: &u32| {
        seen.lock().unwrap().push(start.elapsed());
        true
    });
    let limited = kompoz_tokio::rate_limited(inner, RateLimit::per_second(5).unwrap());
    join_all((0..6).map(|i| limited.run(i))).await;
    assert_eq!(
        *starts.lock().unwrap(),
        [0, 200, 400, 600, 800, 1000].map(ms).to_vec()
    );
}

/// `rate_limited_named` shares a budget through the process-wide registry,
/// even though each limiter's clock counts from its own creation.
#[tokio::test(start_paused = true)]
async fn tokio_rate_limited_named_shares_across_clock_origins() {
    let limit = RateLimit::per_minute(1).unwrap();
    let a = kompoz_tokio::rate_limited_named(
        rule(async |_: &()| true),
        limit,
        "rate_limit_test_origins",
    )
    .unwrap()
    .reject_when_full();
    tokio::time::sleep(Duration::from_secs(30)).await;
    // b's own clock would start at 0 now; it reads a's.
    let b = kompoz_tokio::rate_limited_named(
        rule(async |_: &()| true),
        limit,
        "rate_limit_test_origins",
    )
    .unwrap()
    .reject_when_full();
    assert!(a.run(()).await.0);
    assert!(!b.run(()).await.0);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(b.run(()).await.0, "the slot came a minute after a's call");
    assert!(
        kompoz_tokio::rate_limited_named(
            rule(async |_: &()| true),
            RateLimit::per_minute(2).unwrap(),
            "rate_limit_test_origins"
        )
        .is_err()
    );
}

/// Each runtime crate's `rate_limited` / `rate_limited_named_in`.
macro_rules! runtime_rate_limited {
    ($krate:ident) => {{
        let limit = RateLimit::per_minute(1).unwrap();
        let one = $krate::rate_limited(rule(async |_: &u32| true), limit).reject_when_full();
        assert!(one.run(1).await.0);
        assert!(!one.run(2).await.0);
        let registry = Registry::new();
        let a = $krate::rate_limited_named_in(rule(async |_: &u32| true), limit, "n", &registry)
            .unwrap()
            .reject_when_full();
        let b = $krate::rate_limited_named_in(rule(async |_: &u32| true), limit, "n", &registry)
            .unwrap()
            .reject_when_full();
        assert!(a.run(1).await.0);
        assert!(!b.run(2).await.0);
    }};
}

#[test]
fn async_std_rate_limited() {
    ::async_std::task::block_on(async { runtime_rate_limited!(kompoz_async_std) });
}

#[test]
fn smol_rate_limited() {
    ::smol::block_on(async { runtime_rate_limited!(kompoz_smol) });
}

#[test]
fn futures_timer_rate_limited() {
    use kompoz_core::futures_timer as ft;
    futures::executor::block_on(async { runtime_rate_limited!(ft) });
}

/// Many threads racing for one budget: exactly the burst gets through (the
/// budget refills one call per 36 s, far beyond the test's run time).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_threads_never_exceed_the_budget() {
    let admitted = Arc::new(AtomicUsize::new(0));
    let a = Arc::clone(&admitted);
    let inner = rule(async move |_: &u32| {
        a.fetch_add(1, Ordering::SeqCst);
        true
    });
    let limit = RateLimit::with_burst(100, Duration::from_secs(3600), 100).unwrap();
    let limited = Arc::new(kompoz_tokio::rate_limited(inner, limit).reject_when_full());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let limited = Arc::clone(&limited);
            tokio::spawn(async move {
                for i in 0..1000 {
                    limited.run(i).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(admitted.load(Ordering::SeqCst), 100);
    assert_eq!(limited.rejected(), 8 * 1000 - 100);
}
