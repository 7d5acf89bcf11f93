//! `limited`'s semantics on every runtime, the reference guide's limiter
//! examples as written, and a multi-thread stress test.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{Either, select};
use kompoz_core::{Clock, ClockExt, Combinator, Registry, limiter::LimitOutcome, rule, transform};
use kompoz_tests::support::Rng;

/// Counts the calls inside, their peak, and the calls that finished.
#[derive(Default)]
struct Gauge {
    inside: AtomicUsize,
    peak: AtomicUsize,
    started: AtomicUsize,
    finished: AtomicUsize,
    order: Mutex<Vec<u32>>,
}

impl Gauge {
    fn enter(&self, id: u32) {
        let now = self.inside.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        self.started.fetch_add(1, Ordering::SeqCst);
        self.order.lock().unwrap().push(id);
    }
    fn leave(&self) {
        self.inside.fetch_sub(1, Ordering::SeqCst);
        self.finished.fetch_add(1, Ordering::SeqCst);
    }
    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

/// Leaves the gauge when dropped, so a cancelled call leaves it too.
struct Inside<'a>(&'a Gauge);
impl Drop for Inside<'_> {
    fn drop(&mut self) {
        self.0.inside.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A call that takes `latency` on `clock` and reports to `gauge`.
fn api_call<'g, K: Clock>(
    clock: &K,
    gauge: &'g Gauge,
    latency: Duration,
) -> impl Combinator<u32> + use<'g, K> {
    let clock = clock.clone();
    rule(async move |id: &u32| {
        gauge.enter(*id);
        clock.sleep(latency).await;
        gauge.leave();
        true
    })
}

async fn ten_calls_through_limited_3_never_see_more_than_3_inside<K: Clock>(clock: K) {
    let gauge = Gauge::default();
    let limited_api = clock
        .limited(api_call(&clock, &gauge, Duration::from_millis(2)), 3)
        .unwrap();
    let results = futures::future::join_all((0..10).map(|id| limited_api.run(id))).await;
    assert!(results.iter().all(|(ok, _)| *ok));
    assert_eq!(gauge.finished.load(Ordering::SeqCst), 10);
    assert_eq!(gauge.peak(), 3);
    assert_eq!(limited_api.available(), 3);
    assert_eq!(limited_api.waiting(), 0);
}

async fn two_limiters_named_alike_share_one_pool<K: Clock>(clock: K) {
    let registry = Registry::new();
    let gauge = Gauge::default();
    let latency = Duration::from_millis(2);
    let check_a = clock
        .limited_named_in(api_call(&clock, &gauge, latency), 2, "api_pool", &registry)
        .unwrap();
    let check_b = clock
        .limited_named_in(api_call(&clock, &gauge, latency), 2, "api_pool", &registry)
        .unwrap();
    let calls = (0..12u32).map(|id| {
        let (a, b) = (&check_a, &check_b);
        async move {
            if id % 2 == 0 {
                a.run(id).await
            } else {
                b.run(id).await
            }
        }
    });
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(|(ok, _)| *ok));
    assert_eq!(gauge.peak(), 2, "2 slots shared by both limiters");
    assert_eq!(check_a.available(), 2);

    let err = clock
        .limited_named_in(api_call(&clock, &gauge, latency), 3, "api_pool", &registry)
        .err()
        .expect("capacity conflict");
    assert_eq!(
        err.to_string(),
        "name \"api_pool\" is already registered with `max_concurrent` = 2, but 3 was requested"
    );
}

async fn waiters_are_admitted_in_arrival_order<K: Clock>(clock: K) {
    let gauge = Gauge::default();
    let limiter = clock
        .limited(api_call(&clock, &gauge, Duration::from_millis(1)), 1)
        .unwrap();
    // `join_all` polls its futures in order, so call `i` arrives i-th.
    futures::future::join_all((0..12).map(|id| limiter.run(id))).await;
    assert_eq!(*gauge.order.lock().unwrap(), (0..12).collect::<Vec<_>>());
}

async fn cancelled_calls_give_their_permits_back<K: Clock>(clock: K) {
    let gauge = Gauge::default();
    let c = clock.clone();
    let g = &gauge;
    let inner = transform(async move |(id, latency_ms): (u32, u64)| {
        g.enter(id);
        let _inside = Inside(g);
        c.sleep(Duration::from_millis(latency_ms)).await;
        g.finished.fetch_add(1, Ordering::SeqCst);
        (id, latency_ms)
    });
    let limiter = clock.limited(inner, 3).unwrap();
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    // Each call races its own deadline: dropped while waiting, while
    // running, or not at all, depending on where it stands.
    let calls = (0..40u32).map(|id| {
        let latency = rng.below(6);
        let cancel_after = Duration::from_millis(rng.below(8));
        let limiter = &limiter;
        let clock = clock.clone();
        async move {
            let call = pin!(limiter.run((id, latency)));
            let deadline = pin!(clock.sleep(cancel_after));
            // Half the calls look at their deadline first, so a waiter can
            // be dropped right after a permit was handed to it, unseen.
            if id % 2 == 0 {
                matches!(select(call, deadline).await, Either::Left(_))
            } else {
                matches!(select(deadline, call).await, Either::Right(_))
            }
        }
    });
    let completed = futures::future::join_all(calls)
        .await
        .into_iter()
        .filter(|done| *done)
        .count();
    assert_eq!(gauge.finished.load(Ordering::SeqCst), completed);
    assert_eq!(gauge.inside.load(Ordering::SeqCst), 0);
    assert!(gauge.peak() <= 3);
    assert_eq!(limiter.available(), 3, "permits whole after cancellations");
    assert_eq!(limiter.waiting(), 0);
    assert_eq!(limiter.in_flight(), 0);
}

async fn a_timed_out_waiter_leaves_the_queue<K: Clock>(clock: K) {
    let gauge = Gauge::default();
    let limiter = clock
        .limited(api_call(&clock, &gauge, Duration::from_secs(60)), 1)
        .unwrap();
    let waiter = clock
        .with_timeout(&limiter, Duration::from_millis(20))
        .unwrap();
    let holder = Box::pin(limiter.run(0));
    let timed = Box::pin(waiter.run(1));
    match select(holder, timed).await {
        Either::Right(((ok, ctx), holder)) => {
            assert!(!ok && ctx == 1);
            assert_eq!(limiter.waiting(), 0, "the timed-out waiter left the queue");
            assert_eq!(limiter.in_flight(), 1, "the holder still runs");
            drop(holder);
        }
        Either::Left(_) => panic!("the holder takes a minute"),
    }
    assert_eq!(limiter.available(), 1);
    assert_eq!(gauge.started.load(Ordering::SeqCst), 1);
    assert_eq!(waiter.timeouts(), 1);
}

async fn reject_when_full_never_runs_the_inner_combinator<K: Clock>(clock: K) {
    let gauge = Gauge::default();
    let limiter = clock
        .limited(api_call(&clock, &gauge, Duration::from_secs(60)), 2)
        .unwrap()
        .reject_when_full();
    let holders = Box::pin(futures::future::join(limiter.run(0), limiter.run(1)));
    let rejected = Box::pin(async {
        futures::future::join_all((2..6).map(|id| limiter.run_with_outcome(id))).await
    });
    match select(holders, rejected).await {
        Either::Right((outcomes, holders)) => {
            drop(holders);
            for (outcome, _) in outcomes {
                assert_eq!(outcome, LimitOutcome::Rejected);
            }
        }
        Either::Left(_) => panic!("the holders take a minute"),
    }
    assert_eq!(gauge.started.load(Ordering::SeqCst), 2);
    assert_eq!(limiter.rejected(), 4);
    assert_eq!(limiter.available(), 2);
}

async fn bounded_wait_rejects_after_the_bound<K: Clock>(clock: K) {
    let gauge = Gauge::default();
    let limiter = clock
        .limited(api_call(&clock, &gauge, Duration::from_secs(60)), 1)
        .unwrap()
        .wait_at_most(Duration::from_millis(20));
    let holder = Box::pin(limiter.run(0));
    let late = Box::pin(limiter.run_with_outcome(1));
    match select(holder, late).await {
        Either::Right(((outcome, ctx), holder)) => {
            drop(holder);
            assert_eq!((outcome, ctx), (LimitOutcome::Rejected, 1));
            assert_eq!(limiter.waiting(), 0);
        }
        Either::Left(_) => panic!("the holder takes a minute"),
    }
    assert_eq!(gauge.started.load(Ordering::SeqCst), 1);
    assert_eq!(limiter.rejected(), 1);
    assert_eq!(limiter.available(), 1);
}

async fn bad_configuration_is_refused<K: Clock>(clock: K) {
    let r = || rule(async |_: &u32| true);
    let err = clock.limited(r(), 0).unwrap_err();
    assert_eq!(err.parameter(), "max_concurrent");
    assert!(err.to_string().contains(": 0 "), "{err}");
    let err = clock
        .limited_named_in(r(), 1, "", &Registry::new())
        .unwrap_err();
    assert_eq!(err.parameter(), "name");
}

kompoz_tests::cross_runtime!(
    ten_calls_through_limited_3_never_see_more_than_3_inside,
    two_limiters_named_alike_share_one_pool,
    waiters_are_admitted_in_arrival_order,
    cancelled_calls_give_their_permits_back,
    a_timed_out_waiter_leaves_the_queue,
    reject_when_full_never_runs_the_inner_combinator,
    bounded_wait_rejects_after_the_bound,
    bad_configuration_is_refused,
);

/// The reference guide's "Concurrency Limiting" and "Shared Semaphores"
/// sections, line for line, with each runtime crate's `limited` and
/// `limited_named` (on the process-wide registry).
macro_rules! reference_examples {
    ($krate:ident, $pool:literal) => {
        async fn reference_limiter_examples() -> Result<(), kompoz_core::ConfigError> {
            use $krate::{Combinator, limited, limited_named, rule};

            let gauge = Gauge::default();
            let api_check = rule(async |id: &u32| {
                gauge.enter(*id);
                let _inside = Inside(&gauge);
                for _ in 0..3 {
                    yield_now().await;
                }
                true
            });
            let many_contexts = 0..20;

            // Max 5 concurrent API calls
            let limited_api = limited(&api_check, 5)?;

            // Run many tasks, but only 5 at a time
            let results =
                futures::future::join_all(many_contexts.map(|ctx| limited_api.run(ctx))).await;
            assert!(results.iter().all(|(ok, _)| *ok));
            assert_eq!(gauge.peak(), 5);

            let (api_check_a, api_check_b) = (&api_check, &api_check);

            // Shared limit across multiple combinators
            let check_a = limited_named(api_check_a, 10, $pool)?;
            let check_b = limited_named(api_check_b, 10, $pool)?;
            // check_a and check_b share the same 10-slot semaphore
            assert!(Arc::ptr_eq(check_a.pool(), check_b.pool()));
            assert_eq!(check_b.name(), Some($pool));

            let err = limited_named(&api_check, 5, $pool).unwrap_err();
            assert!(err.to_string().contains($pool), "{err}");
            assert!(limited(&api_check, 0).is_err());
            Ok(())
        }
    };
}

/// Pending once (waking itself), then ready.
fn yield_now() -> impl Future<Output = ()> {
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
}

mod reference_on_tokio {
    use super::*;
    reference_examples!(kompoz_tokio, "reference_api_pool_tokio");

    #[tokio::test]
    async fn reference_examples_translate_line_for_line() {
        reference_limiter_examples().await.unwrap();
    }
}

mod reference_on_async_std {
    use super::*;
    reference_examples!(kompoz_async_std, "reference_api_pool_async_std");

    #[test]
    fn reference_examples_translate_line_for_line() {
        ::async_std::task::block_on(reference_limiter_examples()).unwrap();
    }
}

mod reference_on_smol {
    use super::*;
    reference_examples!(kompoz_smol, "reference_api_pool_smol");

    #[test]
    fn reference_examples_translate_line_for_line() {
        ::smol::block_on(reference_limiter_examples()).unwrap();
    }
}

mod reference_on_futures_timer {
    use super::*;
    mod krate {
        pub(super) use kompoz_core::futures_timer::*;
        pub(super) use kompoz_core::{Combinator, rule};
    }
    use krate as kompoz_futures_timer;
    reference_examples!(kompoz_futures_timer, "reference_api_pool_futures_timer");

    #[test]
    fn reference_examples_translate_line_for_line() {
        futures::executor::block_on(reference_limiter_examples()).unwrap();
    }
}

/// 10,000 calls through 8 limiters sharing one name of capacity 4 on tokio's
/// multi-thread runtime, a fifth of them cancelled at random points: the
/// peak inside never exceeds 4, every completed call is counted, and the
/// permits are whole at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stress_shared_pool_with_random_cancellations() {
    const CALLS: u32 = 10_000;
    let gauge = Arc::new(Gauge::default());
    let registry = Registry::new();
    let limiters: Vec<_> = (0..8)
        .map(|_| {
            let g = Arc::clone(&gauge);
            let inner = rule(async move |id: &u32| {
                let now = g.inside.fetch_add(1, Ordering::SeqCst) + 1;
                g.peak.fetch_max(now, Ordering::SeqCst);
                let _inside = Inside(&g);
                for _ in 0..(id % 4) {
                    tokio::task::yield_now().await;
                }
                if id % 97 == 0 {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
                g.finished.fetch_add(1, Ordering::SeqCst);
                true
            });
            Arc::new(kompoz_tokio::limited_named_in(inner, 4, "stress_pool", &registry).unwrap())
        })
        .collect();

    let mut rng = Rng(0xC0FF_EE00_D15E_A5E5);
    let mut handles = Vec::with_capacity(CALLS as usize);
    let mut to_abort = Vec::new();
    for id in 0..CALLS {
        let limiter = Arc::clone(&limiters[(id % 8) as usize]);
        let cancel = rng.below(5) == 0;
        let timeout_us = rng.below(300);
        let handle = tokio::spawn(async move {
            if cancel && id % 4 == 0 {
                // Cancelled by a timeout at a random point.
                tokio::time::timeout(Duration::from_micros(timeout_us), limiter.run(id))
                    .await
                    .is_ok()
            } else if cancel && id % 4 == 2 {
                // The deadline is looked at first: a permit may be handed to
                // the call just before it is dropped.
                tokio::select! {
                    biased;
                    () = tokio::time::sleep(Duration::from_micros(timeout_us)) => false,
                    (ok, _) = limiter.run(id) => ok,
                }
            } else {
                limiter.run(id).await.0
            }
        });
        if cancel && id % 2 == 1 {
            to_abort.push(handles.len());
        }
        handles.push(handle);
        if id % 500 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // Aborted at random points: before starting, while waiting or running.
    for (n, &i) in to_abort.iter().enumerate() {
        if n % 3 == 0 {
            tokio::task::yield_now().await;
        }
        handles[i].abort();
    }
    let mut completed = 0;
    for handle in handles {
        if let Ok(true) = handle.await {
            completed += 1;
        }
    }
    println!(
        "stress: {completed} of {CALLS} completed, peak {}",
        gauge.peak()
    );
    assert!(gauge.peak() <= 4, "peak {}", gauge.peak());
    assert_eq!(gauge.finished.load(Ordering::SeqCst), completed);
    assert!(completed > CALLS as usize / 2, "{completed} completed");
    assert_eq!(gauge.inside.load(Ordering::SeqCst), 0);
    let pool = limiters[0].pool();
    assert_eq!(pool.available(), 4, "permits whole at the end");
    assert_eq!(pool.waiting(), 0);
    for limiter in &limiters {
        assert!(Arc::ptr_eq(limiter.pool(), pool));
    }
}
