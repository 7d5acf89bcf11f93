//! The call API on every runtime: a typed refusal from each layer, values
//! and errors that are neither `Clone` nor `Copy`, classification,
//! refusals not retried, retry hooks, panics, and one breaker shared by the
//! algebra and a policy.
//!
//! On the real-time runtimes a behaviour only ever waits for the short side
//! of a comparison (an operation of 60 s against a timeout of 20 ms).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use kompoz_core::call::Error;
use kompoz_core::{
    Breaker, CircuitState, Clock, ClockExt, Combinator, RateLimit, Semaphore, rule_fn,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// An error that is neither `Clone` nor `Copy` (an `io::Error` inside).
#[derive(Debug)]
struct FetchError {
    url: String,
    cause: std::io::Error,
}

/// A value that is neither `Clone` nor `Copy`.
#[derive(Debug, PartialEq)]
struct Page {
    body: String,
}

fn fetch_error(url: &str) -> FetchError {
    FetchError {
        url: url.into(),
        cause: std::io::Error::other("connection reset"),
    }
}

/// An operation that fails `failures` times, then returns a page; counts
/// its attempts.
fn flaky(
    failures: u32,
) -> (
    Arc<AtomicU32>,
    impl FnMut() -> std::future::Ready<Result<Page, FetchError>>,
) {
    let attempts = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&attempts);
    (attempts, move || {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        std::future::ready(if n < failures {
            Err(fetch_error("http://svc/"))
        } else {
            Ok(Page {
                body: format!("attempt {}", n + 1),
            })
        })
    })
}

async fn the_value_and_the_error_need_not_be_clone<K: Clock>(clock: K) {
    let policy = clock.policy().retry(3).unwrap().timeout(ms(20)).unwrap();
    let (attempts, op) = flaky(2);
    let page = policy.call(op).await.unwrap();
    assert_eq!(
        page,
        Page {
            body: "attempt 3".into()
        }
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 3);

    let (attempts, op) = flaky(u32::MAX);
    match policy.call(op).await {
        Err(Error::Inner(FetchError { url, cause })) => {
            assert_eq!(url, "http://svc/");
            assert_eq!(cause.kind(), std::io::ErrorKind::Other);
        }
        other => panic!("expected the last attempt's own error, got {other:?}"),
    }
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
}

async fn a_timeout_refuses_with_timed_out_and_its_duration<K: Clock>(clock: K) {
    let policy = clock.policy().timeout(ms(20)).unwrap();
    let k = clock.clone();
    let out = policy
        .call(|| {
            let sleep = k.sleep(Duration::from_secs(60));
            async move {
                sleep.await;
                Ok::<_, FetchError>(Page {
                    body: "late".into(),
                })
            }
        })
        .await;
    match out {
        Err(Error::TimedOut(t)) => assert_eq!(t.after(), ms(20)),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

async fn an_open_breaker_refuses_with_circuit_open<K: Clock>(clock: K) {
    let breaker = clock.shared_breaker().failure_threshold(2).build().unwrap();
    let policy = clock.policy().breaker(&breaker);
    let (attempts, mut op) = flaky(u32::MAX);
    for _ in 0..2 {
        assert!(matches!(policy.call(&mut op).await, Err(Error::Inner(_))));
    }
    match policy.call(&mut op).await {
        Err(Error::CircuitOpen(open)) => assert_eq!(open.state(), CircuitState::Open),
        other => panic!("expected an open circuit, got {other:?}"),
    }
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        2,
        "the refused call never ran"
    );
    // The one-layer form refuses alike.
    assert!(matches!(
        breaker.call(&mut op).await,
        Err(Error::CircuitOpen(_))
    ));
}

async fn a_full_pool_refuses_with_pool_full<K: Clock>(clock: K) {
    let pool = Arc::new(Semaphore::new(1).unwrap());
    let rejecting = clock.policy().limit(&pool).reject_when_full();
    let bounded = clock.policy().limit(&pool).wait_at_most(ms(20));
    let held = pool.try_acquire().unwrap();
    let (attempts, mut op) = flaky(0);
    match rejecting.call(&mut op).await {
        Err(Error::PoolFull(full)) => assert_eq!(full.waited(), Duration::ZERO),
        other => panic!("expected a full pool, got {other:?}"),
    }
    match bounded.call(&mut op).await {
        Err(Error::PoolFull(full)) => assert_eq!(full.waited(), ms(20)),
        other => panic!("expected a full pool after the bound, got {other:?}"),
    }
    assert_eq!(attempts.load(Ordering::SeqCst), 0);
    assert_eq!(pool.waiting(), 0, "the bounded waiter left the queue");
    drop(held);
    assert!(bounded.call(&mut op).await.is_ok());
    assert_eq!(pool.available(), 1);
}

async fn a_rate_limit_refuses_with_rate_limited_and_the_next_slot<K: Clock>(clock: K) {
    let limiter = clock.rate_limiter(RateLimit::with_burst(1, Duration::from_secs(60), 1).unwrap());
    let rejecting = clock.policy().rate_limit(&limiter).reject_when_full();
    let bounded = clock.policy().rate_limit(&limiter).wait_at_most(ms(20));
    let (attempts, mut op) = flaky(0);
    let start = clock.now();
    assert!(rejecting.call(&mut op).await.is_ok());
    for policy in [&rejecting, &bounded] {
        match policy.call(&mut op).await {
            Err(Error::RateLimited(limited)) => {
                assert!(limited.retry_at() >= start + Duration::from_secs(60));
                assert!(limited.retry_at() <= clock.now() + Duration::from_secs(60));
            }
            other => panic!("expected a rate limit, got {other:?}"),
        }
    }
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
    // The budget is the algebra's too: its combinator is refused alike.
    let guarded = limiter
        .guard(rule_fn(|_: &u32| async { true }))
        .reject_when_full();
    assert_eq!(guarded.run(1).await, (false, 1));
}

async fn a_waiting_rate_limit_spaces_calls<K: Clock>(clock: K) {
    let limiter = clock.rate_limiter(RateLimit::new(1, ms(10)).unwrap());
    let policy = clock.policy().rate_limit(&limiter);
    let (attempts, mut op) = flaky(0);
    let start = clock.now();
    for _ in 0..3 {
        assert!(policy.call(&mut op).await.is_ok());
    }
    assert!(clock.now().duration_since(start) >= ms(20));
    assert!(limiter.call(&mut op).await.is_ok());
    assert!(clock.now().duration_since(start) >= ms(30));
    assert_eq!(attempts.load(Ordering::SeqCst), 4);
}

async fn refusals_are_not_retried_unless_asked<K: Clock>(clock: K) {
    let breaker = clock.shared_breaker().failure_threshold(1).build().unwrap();
    breaker.force_open();
    let attempts = AtomicU32::new(0);
    let policy = clock.policy().retry(5).unwrap().breaker(&breaker);
    let refused = policy
        .call(|| {
            attempts.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, FetchError>(()) }
        })
        .await;
    assert!(matches!(refused, Err(Error::CircuitOpen(_))));
    assert_eq!(
        breaker.stats().rejected_count,
        1,
        "one attempt, refused, not retried"
    );

    // Asked for: every attempt is tried (and refused: the breaker is forced open).
    let asked = clock
        .policy()
        .retry(3)
        .unwrap()
        .retry_error_if(|e: &Error<FetchError>| e.is_refusal())
        .breaker(&breaker);
    let refused = asked.call(|| async { Ok::<_, FetchError>(()) }).await;
    assert!(matches!(refused, Err(Error::CircuitOpen(_))));
    assert_eq!(breaker.stats().rejected_count, 4);
    assert_eq!(attempts.load(Ordering::SeqCst), 0);
}

async fn classification_predicates_decide_failures_and_retries<K: Clock>(clock: K) {
    #[derive(Debug)]
    enum ApiError {
        Unavailable,
        NotFound,
    }
    let breaker = clock.shared_breaker().failure_threshold(2).build().unwrap();
    let attempts = AtomicU32::new(0);
    let policy = clock
        .policy()
        .retry(3)
        .unwrap()
        .retry_if(|e: &ApiError| matches!(e, ApiError::Unavailable))
        .breaker(&breaker)
        .failure_if_err(|e: &ApiError| matches!(e, ApiError::Unavailable))
        .failure_if_ok(|page: &Page| page.body.is_empty());
    let call = |result: fn() -> Result<Page, ApiError>| {
        let attempts = &attempts;
        policy.call(move || {
            attempts.fetch_add(1, Ordering::SeqCst);
            std::future::ready(result())
        })
    };

    // NotFound: not retried, not a failure.
    for _ in 0..3 {
        assert!(matches!(
            call(|| Err(ApiError::NotFound)).await,
            Err(Error::Inner(ApiError::NotFound))
        ));
    }
    assert_eq!(attempts.swap(0, Ordering::SeqCst), 3);
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(breaker.stats().failure_count, 0);

    // An empty page is returned, but counts as a failure: one more opens the breaker.
    assert_eq!(
        call(|| Ok(Page {
            body: String::new()
        }))
        .await
        .unwrap()
        .body,
        ""
    );
    assert_eq!(breaker.stats().failure_count, 1);

    // Unavailable is retried and is a failure: the second failure opens the
    // breaker, and the third attempt is refused.
    assert!(matches!(
        call(|| Err(ApiError::Unavailable)).await,
        Err(Error::CircuitOpen(_))
    ));
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(breaker.state(), CircuitState::Open);
}

async fn timeouts_inside_the_breaker_are_failures_and_are_retried<K: Clock>(clock: K) {
    let breaker = clock.shared_breaker().failure_threshold(3).build().unwrap();
    let log = Mutex::new(Vec::new());
    let policy = clock
        .policy()
        .retry(2)
        .unwrap()
        .fixed(ms(5))
        .on_retry(|attempt, delay, error: &Error<FetchError>| {
            log.lock()
                .unwrap()
                .push((attempt, delay, error.to_string()));
        })
        .breaker(&breaker)
        .timeout(ms(20))
        .unwrap();
    let k = clock.clone();
    let out = policy
        .call(|| {
            let sleep = k.sleep(Duration::from_secs(60));
            async move {
                sleep.await;
                Ok::<_, FetchError>(())
            }
        })
        .await;
    assert!(matches!(out, Err(Error::TimedOut(_))));
    assert_eq!(breaker.stats().failure_count, 2);
    let log = log.into_inner().unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].0, log[0].1), (1, ms(5)));
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fetching {}: {}", self.url, self.cause)
    }
}

impl std::error::Error for FetchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

async fn one_breaker_guards_a_combinator_and_a_policy<K: Clock>(clock: K) {
    let breaker: Breaker<K> = clock.shared_breaker().failure_threshold(2).build().unwrap();
    let check = breaker.guard(rule_fn(|n: &u32| {
        let even = *n % 2 == 0;
        async move { even }
    }));
    let policy = clock.policy().breaker(&breaker);

    // One failure from each face opens the one breaker.
    assert_eq!(check.run(1).await, (false, 1));
    assert!(matches!(
        policy
            .call(|| async { Err::<(), _>(fetch_error("x")) })
            .await,
        Err(Error::Inner(_))
    ));
    assert_eq!(breaker.state(), CircuitState::Open);
    // Both faces are refused now.
    assert_eq!(check.run(2).await, (false, 2));
    assert!(matches!(
        policy.call(|| async { Ok::<_, FetchError>(()) }).await,
        Err(Error::CircuitOpen(_))
    ));
    assert_eq!(breaker.stats().rejected_count, 2);
}

async fn a_panicking_predicate_leaks_nothing<K: Clock>(clock: K) {
    let breaker = clock
        .shared_breaker()
        .failure_threshold(1)
        .recovery_timeout(ms(1))
        .build()
        .unwrap();
    let pool = Arc::new(Semaphore::new(1).unwrap());
    let policy = clock
        .policy()
        .limit(&pool)
        .breaker(&breaker)
        .failure_if_err(|_: &FetchError| -> bool { panic!("predicate bug") });
    let panicked = AssertUnwindSafe(policy.call(|| async { Err::<(), _>(fetch_error("x")) }))
        .catch_unwind()
        .await;
    assert!(
        panicked.is_err(),
        "the predicate's panic reaches the caller"
    );
    assert_eq!(pool.available(), 1, "the permit was given back");
    assert_eq!(breaker.stats().failure_count, 0, "nothing was counted");
    assert_eq!(breaker.state(), CircuitState::Closed);
    // Retry predicates alike.
    let retrying = clock
        .policy()
        .limit(&pool)
        .retry(3)
        .unwrap()
        .retry_if(|_: &FetchError| -> bool { panic!("predicate bug") });
    let panicked = AssertUnwindSafe(retrying.call(|| async { Err::<(), _>(fetch_error("x")) }))
        .catch_unwind()
        .await;
    assert!(panicked.is_err());
    assert_eq!(pool.available(), 1);
}

async fn a_panicking_probe_predicate_gives_its_slot_back<K: Clock>(clock: K) {
    let breaker = clock
        .shared_breaker()
        .failure_threshold(1)
        .recovery_timeout(ms(1))
        .build()
        .unwrap();
    let panicky = clock
        .policy()
        .breaker(&breaker)
        .failure_if_ok(|_: &u32| -> bool { panic!("predicate bug") });
    let plain = clock.policy().breaker(&breaker);
    assert!(
        plain
            .call(|| async { Err::<u32, _>(fetch_error("x")) })
            .await
            .is_err()
    );
    assert_eq!(breaker.state(), CircuitState::Open);
    clock.sleep(ms(2)).await; // past the recovery timeout
    let panicked = AssertUnwindSafe(panicky.call(|| async { Ok::<u32, FetchError>(1) }))
        .catch_unwind()
        .await;
    assert!(panicked.is_err());
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    assert_eq!(
        breaker.stats().half_open_in_flight,
        0,
        "the probe slot came back"
    );
    // So the next probe is admitted, and closes the breaker.
    assert_eq!(
        plain
            .call(|| async { Ok::<u32, FetchError>(2) })
            .await
            .unwrap(),
        2
    );
    assert_eq!(breaker.state(), CircuitState::Closed);
}

async fn a_panicking_operation_is_a_failure_and_releases_its_permit<K: Clock>(clock: K) {
    let breaker = clock.shared_breaker().failure_threshold(5).build().unwrap();
    let pool = Arc::new(Semaphore::new(1).unwrap());
    let policy = clock.policy().limit(&pool).breaker(&breaker);
    fn boom() -> Result<(), FetchError> {
        panic!("operation bug")
    }
    let panicked = AssertUnwindSafe(policy.call(|| async { boom() }))
        .catch_unwind()
        .await;
    assert!(panicked.is_err());
    assert_eq!(pool.available(), 1);
    assert_eq!(
        breaker.stats().failure_count,
        1,
        "a panic is the operation's failure"
    );
}

// ------------------------------------------------------------- layer order
// What the call module's layer-order guide says each other order means.

async fn a_timeout_outside_the_retry_bounds_the_whole_call<K: Clock>(clock: K) {
    let policy = clock
        .policy()
        .timeout(ms(50))
        .unwrap()
        .retry(10)
        .unwrap()
        .fixed(ms(20));
    let (attempts, op) = flaky(u32::MAX);
    let start = clock.now();
    assert!(matches!(policy.call(op).await, Err(Error::TimedOut(_))));
    assert!(clock.now().duration_since(start) >= ms(50));
    assert!(
        attempts.load(Ordering::SeqCst) < 10,
        "the deadline cut the retries short"
    );
}

async fn a_timeout_outside_the_breaker_is_not_its_failure<K: Clock>(clock: K) {
    let breaker = clock.shared_breaker().failure_threshold(1).build().unwrap();
    let policy = clock.policy().timeout(ms(20)).unwrap().breaker(&breaker);
    let k = clock.clone();
    let out = policy
        .call(|| {
            let sleep = k.sleep(Duration::from_secs(60));
            async move {
                sleep.await;
                Ok::<_, FetchError>(())
            }
        })
        .await;
    assert!(matches!(out, Err(Error::TimedOut(_))));
    let stats = breaker.stats();
    assert_eq!(
        (stats.failure_count, stats.state),
        (0, CircuitState::Closed)
    );
}

async fn a_breaker_outside_the_retry_sees_one_outcome_per_call<K: Clock>(clock: K) {
    let breaker = clock.shared_breaker().failure_threshold(2).build().unwrap();
    let policy = clock.policy().breaker(&breaker).retry(3).unwrap();
    let (attempts, op) = flaky(u32::MAX);
    assert!(matches!(policy.call(op).await, Err(Error::Inner(_))));
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(breaker.stats().failure_count, 1);
    assert_eq!(breaker.state(), CircuitState::Closed);
}

async fn a_limit_inside_the_retry_frees_its_permit_during_back_off<K: Clock>(clock: K) {
    let pool = Arc::new(Semaphore::new(1).unwrap());
    let seen = Mutex::new(Vec::new());
    let hook =
        |_: u32, _: Duration, _: &Error<FetchError>| seen.lock().unwrap().push(pool.available());
    let inside = clock
        .policy()
        .retry(2)
        .unwrap()
        .fixed(ms(5))
        .on_retry(hook)
        .limit(&pool);
    let (_, op) = flaky(u32::MAX);
    assert!(inside.call(op).await.is_err());
    let outside = clock
        .policy()
        .limit(&pool)
        .retry(2)
        .unwrap()
        .fixed(ms(5))
        .on_retry(hook);
    let (_, op) = flaky(u32::MAX);
    assert!(outside.call(op).await.is_err());
    assert_eq!(*seen.lock().unwrap(), [1, 0], "free inside, held outside");
    assert_eq!(pool.available(), 1);
}

async fn a_rate_limit_inside_the_retry_spends_a_slot_per_attempt<K: Clock>(clock: K) {
    let limit = RateLimit::with_burst(2, Duration::from_secs(60), 2).unwrap();
    let inside = clock
        .policy()
        .retry(3)
        .unwrap()
        .rate_limit_to(limit)
        .reject_when_full();
    let (attempts, op) = flaky(u32::MAX);
    // Two attempts spend the burst; the third is refused, and not retried.
    assert!(matches!(inside.call(op).await, Err(Error::RateLimited(_))));
    assert_eq!(attempts.load(Ordering::SeqCst), 2);

    let outside = clock
        .policy()
        .rate_limit_to(limit)
        .reject_when_full()
        .retry(3)
        .unwrap();
    let (attempts, op) = flaky(u32::MAX);
    assert!(matches!(outside.call(op).await, Err(Error::Inner(_))));
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "one slot, three attempts"
    );
}

kompoz_tests::cross_runtime!(
    the_value_and_the_error_need_not_be_clone,
    a_timeout_refuses_with_timed_out_and_its_duration,
    an_open_breaker_refuses_with_circuit_open,
    a_full_pool_refuses_with_pool_full,
    a_rate_limit_refuses_with_rate_limited_and_the_next_slot,
    a_waiting_rate_limit_spaces_calls,
    refusals_are_not_retried_unless_asked,
    classification_predicates_decide_failures_and_retries,
    timeouts_inside_the_breaker_are_failures_and_are_retried,
    one_breaker_guards_a_combinator_and_a_policy,
    a_panicking_predicate_leaks_nothing,
    a_panicking_probe_predicate_gives_its_slot_back,
    a_panicking_operation_is_a_failure_and_releases_its_permit,
    a_timeout_outside_the_retry_bounds_the_whole_call,
    a_timeout_outside_the_breaker_is_not_its_failure,
    a_breaker_outside_the_retry_sees_one_outcome_per_call,
    a_limit_inside_the_retry_frees_its_permit_during_back_off,
    a_rate_limit_inside_the_retry_spends_a_slot_per_attempt,
);

/// A policy's call is `Send` when its parts are: spawned on tokio's
/// multi-threaded runtime, with a non-`Clone` error.
#[test]
fn a_policy_call_spawns_on_a_multi_thread_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let clock = kompoz_tokio::TokioClock::new();
        let breaker = clock.shared_breaker().build().unwrap();
        let policy = Arc::new(
            clock
                .policy()
                .limit_to(4)
                .unwrap()
                .retry(3)
                .unwrap()
                .fixed(ms(1))
                .on_retry(|_, _, _: &Error<FetchError>| {})
                .breaker(&breaker)
                .failure_if_err(|e: &FetchError| e.cause.kind() != std::io::ErrorKind::NotFound)
                .timeout(Duration::from_secs(5))
                .unwrap(),
        );
        let calls: Vec<_> = (0..8u32)
            .map(|i| {
                let policy = Arc::clone(&policy);
                tokio::spawn(async move {
                    let mut tries = 0;
                    policy
                        .call(|| {
                            tries += 1;
                            let fail = tries < 2;
                            async move {
                                tokio::task::yield_now().await;
                                if fail {
                                    Err(fetch_error("http://svc/"))
                                } else {
                                    Ok(Page {
                                        body: i.to_string(),
                                    })
                                }
                            }
                        })
                        .await
                })
            })
            .collect();
        for (i, call) in calls.into_iter().enumerate() {
            assert_eq!(call.await.unwrap().unwrap().body, i.to_string());
        }
        assert_eq!(breaker.state(), CircuitState::Closed);
    });
}

/// `Send` is not required: an operation holding an `Rc` runs on a
/// single-threaded executor through the same policy.
#[test]
fn a_policy_call_need_not_be_send() {
    let clock = kompoz_core::ManualClock::new();
    let breaker = clock.shared_breaker().build().unwrap();
    let policy = clock
        .policy()
        .retry(2)
        .unwrap()
        .breaker(&breaker)
        .timeout(ms(20))
        .unwrap();
    let shared = std::rc::Rc::new(std::cell::Cell::new(0));
    let out = clock.block_on(policy.call(|| {
        let shared = std::rc::Rc::clone(&shared);
        async move {
            shared.set(shared.get() + 1);
            if shared.get() < 2 {
                Err(fetch_error("x"))
            } else {
                Ok(shared)
            }
        }
    }));
    assert_eq!(out.unwrap().get(), 2);
}

/// The generic function of the `Policy` docs, its type named by an alias:
/// the calls of the policy it builds for `TokioClock` are spawned.
#[test]
fn a_policy_built_by_a_generic_function_spawns() {
    use kompoz_core::call::{
        BreakerLayer, Identity, Policy, RetryIf, RetryLayer, Stack, TimeoutLayer,
    };
    use kompoz_core::{ConfigError, SendClock};

    fn transient(e: &FetchError) -> bool {
        e.cause.kind() != std::io::ErrorKind::NotFound
    }
    type Api<K> = Policy<
        K,
        Stack<
            Stack<
                Stack<Identity, RetryLayer<K, RetryIf<fn(&FetchError) -> bool>>>,
                BreakerLayer<K>,
            >,
            TimeoutLayer<K>,
        >,
    >;
    fn api<K: SendClock>(clock: &K, breaker: &Breaker<K>) -> Result<Api<K>, ConfigError> {
        Ok(clock
            .policy()
            .retry(3)?
            .retry_if(transient as fn(&FetchError) -> bool)
            .breaker(breaker)
            .timeout(Duration::from_secs(5))?)
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let clock = kompoz_tokio::TokioClock::new();
        let breaker = clock.shared_breaker().build().unwrap();
        let api = Arc::new(api(&clock, &breaker).unwrap());
        let (attempts, op) = flaky(1);
        let op = Arc::new(Mutex::new(op));
        let call = tokio::spawn({
            let api = Arc::clone(&api);
            async move { api.call(|| (op.lock().unwrap())()).await }
        });
        assert_eq!(call.await.unwrap().unwrap().body, "attempt 2");
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
    });
}
