//! Retry's semantics on every runtime, and each runtime crate's `retry`.
//!
//! On the real-time runtimes only lower bounds on time are asserted (a sleep
//! never ends early); exact delays are asserted through the `on_retry` hook,
//! which reports the configured delays whatever the scheduler does.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{Either, select};
use kompoz_core::{Backoff, Clock, ClockExt, Combinator, Jitter, rule, transform};
use kompoz_tests::support::ms;

/// An inner combinator that yields to the clock, then passes from attempt
/// `pass_from` on (counted from 1; 0 = never). Also returns its run count.
fn flaky<K: Clock>(clock: &K, pass_from: u32) -> (impl Combinator<u32> + use<K>, Arc<AtomicU32>) {
    let runs = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&runs);
    let clock = clock.clone();
    let inner = rule(async move |_: &u32| {
        let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
        clock.sleep(Duration::from_micros(100)).await;
        pass_from != 0 && n >= pass_from
    });
    (inner, runs)
}

type Log = Arc<Mutex<Vec<(u32, Duration)>>>;

fn hook() -> (Log, impl Fn(u32, Duration) + Send + Sync) {
    let log: Log = Arc::default();
    let l = Arc::clone(&log);
    (log, move |attempt, delay| {
        l.lock().unwrap().push((attempt, delay))
    })
}

async fn retries_until_success_with_fixed_delays<K: Clock>(clock: K) {
    let (inner, runs) = flaky(&clock, 3);
    let (log, hook) = hook();
    let r = clock.retry(inner, 5).unwrap().fixed(ms(20)).on_retry(hook);
    let start = clock.now();
    let info = r.run_with_info(7).await;
    assert!(info.ok);
    assert_eq!((info.ctx, info.attempts), (7, 3));
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert_eq!(*log.lock().unwrap(), vec![(1, ms(20)), (2, ms(20))]);
    assert!(clock.now().duration_since(start) >= ms(40));
}

async fn exponential_delays_double_up_to_the_cap<K: Clock>(clock: K) {
    let (inner, runs) = flaky(&clock, 0);
    let (log, hook) = hook();
    let r = clock
        .retry(inner, 6)
        .unwrap()
        .backoff(Backoff::exponential(ms(5), 2.0, ms(20)).unwrap())
        .on_retry(hook);
    let start = clock.now();
    assert_eq!(r.run(1).await, (false, 1));
    assert_eq!(runs.load(Ordering::SeqCst), 6);
    let delays: Vec<_> = log.lock().unwrap().iter().map(|&(_, d)| d).collect();
    assert_eq!(delays, [5, 10, 20, 20, 20].map(ms).to_vec());
    assert!(clock.now().duration_since(start) >= ms(75));
}

async fn each_attempt_starts_from_the_original_context<K: Clock>(clock: K) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let k = clock.clone();
    let inner = transform(async move |n: u32| {
        s.lock().unwrap().push(n);
        k.sleep(Duration::from_micros(100)).await;
        n + 100
    }) >> rule(async |_: &u32| false);
    let r = clock.retry(inner, 3).unwrap().fixed(ms(1));
    assert_eq!(r.run(5).await, (false, 105), "the last attempt's context");
    assert_eq!(*seen.lock().unwrap(), vec![5, 5, 5]);
}

async fn stop_if_gives_up_early<K: Clock>(clock: K) {
    let (inner, runs) = flaky(&clock, 0);
    let r = clock
        .retry(inner, 10)
        .unwrap()
        .fixed(ms(1))
        .stop_if(|n: &u32| *n == 42);
    let info = r.run_with_info(42).await;
    assert!(!info.ok && info.stopped_early);
    assert_eq!(info.attempts, 1);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

async fn dropping_a_retry_mid_sleep_stops_it<K: Clock>(clock: K) {
    let (inner, runs) = flaky(&clock, 0);
    let r = clock
        .retry(inner, 5)
        .unwrap()
        .fixed(Duration::from_secs(60));
    let call = Box::pin(r.run(0));
    match select(call, Box::pin(clock.sleep(ms(20)))).await {
        Either::Left(_) => panic!("the retry cannot finish before its 60 s wait"),
        Either::Right(((), call)) => drop(call),
    }
    clock.sleep(ms(20)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "no attempt after the drop");
}

async fn seeded_jitter_is_reproducible_and_bounded<K: Clock>(clock: K) {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (inner, _) = flaky(&clock, 0);
        let (log, hook) = hook();
        let r = clock
            .retry(inner, 6)
            .unwrap()
            .backoff(Backoff::exponential(ms(2), 2.0, ms(8)).unwrap())
            .jitter(Jitter::Full)
            .jitter_seed(99)
            .on_retry(hook);
        r.run(0).await;
        let delays: Vec<_> = log.lock().unwrap().iter().map(|&(_, d)| d).collect();
        runs.push(delays);
    }
    assert_eq!(runs[0], runs[1]);
    for (d, cap) in runs[0].iter().zip([2, 4, 8, 8, 8].map(ms)) {
        assert!(*d <= cap, "{d:?} above {cap:?}");
    }
}

async fn zero_attempts_is_a_configuration_error<K: Clock>(clock: K) {
    let (inner, _) = flaky(&clock, 0);
    let Err(err) = clock.retry(inner, 0) else {
        panic!("zero attempts accepted")
    };
    assert_eq!(
        err.to_string(),
        "invalid `max_attempts`: 0 (expected at least 1)"
    );
}

kompoz_tests::cross_runtime!(
    retries_until_success_with_fixed_delays,
    exponential_delays_double_up_to_the_cap,
    each_attempt_starts_from_the_original_context,
    stop_if_gives_up_early,
    dropping_a_retry_mid_sleep_stops_it,
    seeded_jitter_is_reproducible_and_bounded,
    zero_attempts_is_a_configuration_error,
);

/// Each runtime crate's `retry(inner, max_attempts)`, on its clock (real
/// time here, so only the outcome is checked).
macro_rules! runtime_retry {
    ($($retry:ident)::+) => {{
        let runs = Arc::new(AtomicU32::new(0));
        let seen = Arc::clone(&runs);
        let inner = rule(async move |_: &u32| seen.fetch_add(1, Ordering::SeqCst) >= 1);
        let r = $($retry)::+(inner, 3).unwrap().fixed(ms(5));
        assert_eq!(r.run(1).await, (true, 1));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!($($retry)::+(rule(async |_: &u32| true), 0).is_err());
    }};
}

#[tokio::test(start_paused = true)]
async fn tokio_retry_waits_exactly_the_backoff() {
    let start = tokio::time::Instant::now();
    let runs = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&runs);
    let inner = rule(async move |_: &u32| seen.fetch_add(1, Ordering::SeqCst) >= 2);
    let r = kompoz_tokio::retry(inner, 5)
        .unwrap()
        .backoff(Backoff::exponential(ms(100), 2.0, ms(1000)).unwrap());
    assert_eq!(r.run(1).await, (true, 1));
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert_eq!(
        start.elapsed(),
        ms(300),
        "paused time: exactly 100 ms + 200 ms"
    );
}

#[test]
fn async_std_retry() {
    ::async_std::task::block_on(async { runtime_retry!(kompoz_async_std::retry) });
}

#[test]
fn smol_retry() {
    ::smol::block_on(async { runtime_retry!(kompoz_smol::retry) });
}

#[test]
fn futures_timer_retry() {
    futures::executor::block_on(async { runtime_retry!(kompoz_core::futures_timer::retry) });
}
