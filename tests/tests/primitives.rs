//! The primitives under a call API, on every runtime: breaker permits
//! (outcomes, cancellation, a panic between acquire and record), owned pool
//! permits (FIFO with borrowed ones, across spawned tasks) and the
//! rate-limit handle (`check`'s earliest admission, reservations given back).
//!
//! On the real-time runtimes, instants are asserted between two clock
//! readings taken around the step that fixed them (never with a margin),
//! and a test only waits for the short side (a 10 ms recovery, a 5 ms sleep
//! against a slot a minute away).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{Either, select};
use kompoz_core::circuit_breaker::BreakerOutcome;
use kompoz_core::{
    Breaker, CircuitState, Clock, ClockExt, Combinator, RateLimit, Semaphore, SendClock, rule,
};
use kompoz_tests::support::ms;
use kompoz_tests::sweep::{SCRIPTED, YieldNow, quiet_scripted_panics};

fn breaker<K: Clock>(clock: &K, threshold: u32) -> Breaker<K> {
    clock
        .shared_breaker()
        .failure_threshold(threshold)
        .recovery_timeout(ms(10))
        .build()
        .unwrap()
}

async fn breaker_permits_count_outcomes_and_drops_count_nothing<K: Clock>(clock: K) {
    let b = breaker(&clock, 2);
    let guarded = b.guard(rule(async |_: &u32| true));
    b.try_acquire().unwrap().failure();
    drop(b.try_acquire().unwrap()); // cancelled: no outcome
    let owned = b.try_acquire_owned().unwrap();
    YieldNow(false).await; // the permit lives across an await
    owned.success(); // ends the streak
    assert!(guarded.run(1).await.0); // the combinator draws on the same breaker
    b.try_acquire().unwrap().record(true);
    let stats = b.stats();
    assert_eq!((stats.success_count, stats.failure_count), (2, 2));
    assert_eq!(b.state(), CircuitState::Closed, "one failure in a row");
    b.try_acquire().unwrap().failure();
    assert_eq!(b.state(), CircuitState::Open);
    assert_eq!(
        guarded.run_with_outcome(2).await,
        (BreakerOutcome::Rejected, 2)
    );
}

async fn a_probe_permit_dropped_or_unwound_gives_its_slot_back<K: Clock>(clock: K) {
    quiet_scripted_panics();
    let b = breaker(&clock, 1);
    let before = clock.now();
    b.try_acquire().unwrap().failure();
    let after = clock.now();
    let refused = b.try_acquire().unwrap_err();
    assert_eq!(refused.state(), CircuitState::Open);
    let retry_at = refused.retry_at().expect("an automatic open period ends");
    assert!(
        before + ms(10) <= retry_at && retry_at <= after + ms(10),
        "the open deadline is the trip's time plus the recovery timeout"
    );

    clock.sleep(ms(10)).await;
    // A runtime's timer may wake a little before its clock reads the
    // deadline: wait out the remainder rather than assume the two agree.
    let probe = loop {
        match b.try_acquire() {
            Ok(probe) => break probe,
            Err(refused) => {
                assert_eq!(refused.state(), CircuitState::Open);
                clock.sleep(ms(1)).await;
            }
        }
    };
    assert!(probe.is_probe());
    assert!(b.try_acquire().is_err(), "the only probe slot is taken");
    drop(probe);
    assert_eq!(b.stats().half_open_in_flight, 0);

    // A panic between acquire and record, after an await point.
    let unwound = async {
        let _probe = b.try_acquire_owned().unwrap();
        YieldNow(false).await;
        std::panic::panic_any(SCRIPTED);
    };
    assert!(
        std::panic::AssertUnwindSafe(unwound)
            .catch_unwind()
            .await
            .is_err()
    );
    assert_eq!(b.stats().half_open_in_flight, 0);
    assert_eq!(b.state(), CircuitState::HalfOpen);
    assert_eq!(b.stats().failure_count, 1, "cancelled probes count nothing");
    b.try_acquire().unwrap().success();
    assert_eq!(b.state(), CircuitState::Closed);
}

async fn owned_pool_permits_wait_in_line_with_borrowed_ones<K: Clock>(_clock: K) {
    let pool = Arc::new(Semaphore::new(1).unwrap());
    let order = Mutex::new(Vec::new());
    let held = pool.try_acquire_owned().unwrap();
    let borrowed = |id: u32| {
        let (pool, order) = (&pool, &order);
        async move {
            let permit = pool.acquire().await;
            order.lock().unwrap().push(id);
            YieldNow(false).await;
            drop(permit);
        }
    };
    let owned = |id: u32| {
        let (pool, order) = (&pool, &order);
        async move {
            let permit = pool.acquire_owned().await;
            order.lock().unwrap().push(id);
            YieldNow(false).await;
            drop(permit);
        }
    };
    // All four queue (polled in order) before the held permit is released.
    futures::join!(borrowed(1), owned(2), borrowed(3), owned(4), async {
        drop(held)
    });
    assert_eq!(*order.lock().unwrap(), [1, 2, 3, 4]);
    assert_eq!((pool.available(), pool.waiting()), (1, 0));
}

async fn check_names_the_earliest_admission<K: Clock>(clock: K) {
    let limiter = clock.rate_limiter(RateLimit::new(1, Duration::from_secs(60)).unwrap());
    let before = clock.now();
    limiter.check().unwrap();
    let after = clock.now();
    let refused = limiter.check().unwrap_err();
    let next = refused.retry_at();
    assert!(before + Duration::from_secs(60) <= next && next <= after + Duration::from_secs(60));

    // A reservation gets exactly that slot; dropped unused, it gives it back.
    let slot = limiter.reserve(Duration::from_secs(120)).unwrap();
    assert_eq!(slot.ready_at(), next);
    drop(slot);
    let slot = limiter.reserve_owned(Duration::from_secs(120)).unwrap();
    assert_eq!(slot.ready_at(), next, "the dropped reservation's slot");
    assert_eq!(
        limiter
            .reserve(Duration::from_secs(1))
            .unwrap_err()
            .retry_at(),
        next + Duration::from_secs(60),
        "the slot after the one reserved"
    );
    drop(slot);
    assert_eq!(limiter.check().unwrap_err().retry_at(), next);
}

async fn a_wait_dropped_before_its_slot_gives_the_slot_back<K: Clock>(clock: K) {
    let limiter = clock.rate_limiter(RateLimit::new(1, Duration::from_secs(60)).unwrap());
    limiter.check().unwrap();
    let slot = limiter.reserve_owned(Duration::from_secs(120)).unwrap();
    let ready_at = slot.ready_at();
    let wait = Box::pin(slot.wait());
    match select(wait, Box::pin(clock.sleep(ms(5)))).await {
        Either::Left(_) => panic!("the slot is a minute away"),
        Either::Right(((), wait)) => drop(wait),
    }
    let again = limiter.reserve(Duration::from_secs(120)).unwrap();
    assert_eq!(again.ready_at(), ready_at);
}

async fn a_waited_reservation_starts_no_earlier_than_its_slot<K: Clock>(clock: K) {
    let limiter = clock.rate_limiter(RateLimit::new(1, ms(20)).unwrap());
    let api = limiter.guard(rule(async |_: &u32| true)).reject_when_full();
    assert!(api.run(0).await.0);
    let slot = limiter.reserve(Duration::from_secs(1)).unwrap();
    let ready_at = slot.ready_at();
    slot.wait().await;
    assert!(clock.now() >= ready_at);
    // The waited slot is spent: the next is one interval later (unless
    // this task was held up past it).
    match limiter.check() {
        Err(refused) => assert_eq!(refused.retry_at(), ready_at + ms(20)),
        Ok(()) => assert!(clock.now() >= ready_at + ms(20)),
    }
}

kompoz_tests::cross_runtime!(
    breaker_permits_count_outcomes_and_drops_count_nothing,
    a_probe_permit_dropped_or_unwound_gives_its_slot_back,
    owned_pool_permits_wait_in_line_with_borrowed_ones,
    check_names_the_earliest_admission,
    a_wait_dropped_before_its_slot_gives_the_slot_back,
    a_waited_reservation_starts_no_earlier_than_its_slot,
);

// ------------------------------------------------------- across spawned tasks

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Owned permits of all three kinds, moved into tasks the runtime spawns
/// (and runs on its worker threads where it has them).
async fn owned_permits_cross_spawned_tasks<K: SendClock>(clock: K, spawn: impl Fn(Task) -> Task) {
    // A pool of 2 and 16 tasks: never more than 2 inside.
    let pool = Arc::new(Semaphore::new(2).unwrap());
    let (inside, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let handles: Vec<Task> = (0..16)
        .map(|_| {
            let (pool, inside, peak, clock) = (
                Arc::clone(&pool),
                Arc::clone(&inside),
                Arc::clone(&peak),
                clock.clone(),
            );
            spawn(Box::pin(async move {
                let permit = pool.acquire_owned().await;
                peak.fetch_max(inside.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                clock.sleep(ms(1)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                drop(permit);
            }))
        })
        .collect();
    futures::future::join_all(handles).await;
    assert!(peak.load(Ordering::SeqCst) <= 2);
    assert_eq!((pool.available(), pool.waiting()), (2, 0));

    // A breaker permit taken here, recorded there.
    let b = breaker(&clock, 1);
    let permit = b.try_acquire_owned().unwrap();
    spawn(Box::pin(async move { permit.failure() })).await;
    assert_eq!(b.state(), CircuitState::Open);

    // A probe permit dropped in another task gives its slot back.
    clock.sleep(ms(10)).await;
    let probe = b.try_acquire_owned().unwrap();
    spawn(Box::pin(async move { drop(probe) })).await;
    assert_eq!(b.stats().half_open_in_flight, 0);

    // A reservation waited for there is spent here.
    let limiter = clock.rate_limiter(RateLimit::per_minute(1).unwrap());
    let slot = limiter.reserve_owned(Duration::ZERO).unwrap();
    spawn(Box::pin(slot.wait())).await;
    assert!(limiter.check().is_err());
}

#[test]
fn owned_permits_cross_spawned_tasks_on_tokio() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(owned_permits_cross_spawned_tasks(
            kompoz_tokio::TokioClock::new(),
            |task| Box::pin(async move { tokio::spawn(task).await.unwrap() }),
        ));
}

#[test]
fn owned_permits_cross_spawned_tasks_on_smol() {
    ::smol::block_on(owned_permits_cross_spawned_tasks(
        kompoz_smol::SmolClock::new(),
        |task| Box::pin(::smol::spawn(task)),
    ));
}

#[test]
fn owned_permits_cross_spawned_tasks_on_async_std() {
    ::async_std::task::block_on(owned_permits_cross_spawned_tasks(
        kompoz_async_std::AsyncStdClock::new(),
        |task| Box::pin(::async_std::task::spawn(task)),
    ));
}
