//! The primitives a call API (and integrations) build on: breaker permits,
//! owned pool permits and the rate-limit handle, step by step on a
//! `ManualClock` and with hand-polled futures.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

mod support;
use support::poll_once;

use kompoz_core::call::{CircuitOpen, Error, RateLimitExceeded};
use kompoz_core::circuit_breaker::BreakerOutcome;
use kompoz_core::limiter::{AcquireOwned, OwnedSemaphorePermit};
use kompoz_core::rate_limit::OwnedRateReservation;
use kompoz_core::{
    Breaker, CircuitState, Clock, ClockExt, Combinator, ConfigError, Instant, ManualClock,
    OwnedBreakerPermit, RateLimit, Registry, Semaphore, rule,
};

fn breaker(clock: &ManualClock, threshold: u32, probes: u32) -> Breaker<ManualClock> {
    clock
        .shared_breaker()
        .failure_threshold(threshold)
        .half_open_max_calls(probes)
        .recovery_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn assert_send_sync_static<T: Send + Sync + 'static>() {}
fn assert_unpin_send_static<T: Unpin + Send + 'static>() {}

#[test]
fn the_owned_types_are_static_and_thread_safe() {
    assert_send_sync_static::<OwnedBreakerPermit<ManualClock>>();
    assert_send_sync_static::<OwnedSemaphorePermit>();
    assert_unpin_send_static::<AcquireOwned>();
    assert_send_sync_static::<OwnedRateReservation<ManualClock>>();
    assert_send_sync_static::<Error<std::io::Error>>();
    fn assert_send_static<T: Send + 'static>() {}
    assert_send_static::<kompoz_core::rate_limit::OwnedRateWait<ManualClock>>();
}

#[test]
fn permit_outcomes_count_and_a_dropped_permit_counts_nothing() {
    let clock = ManualClock::new();
    let b = breaker(&clock, 3, 1);
    b.try_acquire().unwrap().success();
    b.try_acquire().unwrap().failure();
    b.try_acquire().unwrap().record(true);
    drop(b.try_acquire().unwrap());
    let stats = b.stats();
    assert_eq!(
        (
            stats.success_count,
            stats.failure_count,
            stats.consecutive_failures
        ),
        (1, 2, 2)
    );
    assert_eq!(b.state(), CircuitState::Closed);
    b.try_acquire().unwrap().failure();
    assert_eq!(b.state(), CircuitState::Open);
}

#[test]
fn refusals_say_when_to_come_back() {
    let clock = ManualClock::new();
    clock.advance(Duration::from_secs(1));
    let b = breaker(&clock, 1, 1);
    b.try_acquire().unwrap().failure();
    let open = b.try_acquire().unwrap_err();
    assert_eq!(
        open,
        CircuitOpen::new(
            CircuitState::Open,
            Some(Instant::from_nanos(11_000_000_000))
        )
    );
    assert_eq!(open.retry_at(), b.stats().open_until);
    assert_eq!(b.stats().rejected_count, 1);

    // Half-open with its only probe slot taken: no deadline to give.
    clock.advance(Duration::from_secs(10));
    let probe = b.try_acquire().unwrap();
    assert!(probe.is_probe());
    assert_eq!(
        b.try_acquire().unwrap_err(),
        CircuitOpen::new(CircuitState::HalfOpen, None)
    );
    probe.success();
    assert_eq!(b.state(), CircuitState::Closed);

    // Forced open: it stays open until told otherwise.
    b.force_open();
    assert_eq!(b.try_acquire().unwrap_err().retry_at(), None);
    let as_error: Error<()> = b.try_acquire().unwrap_err().into();
    assert!(as_error.is_refusal() && as_error.retry_at().is_none());
}

#[test]
fn a_dropped_probe_permit_gives_its_slot_back() {
    let clock = ManualClock::new();
    let b = breaker(&clock, 1, 1);
    b.try_acquire().unwrap().failure();
    clock.advance(Duration::from_secs(10));
    let probe = b.try_acquire().unwrap();
    assert_eq!(b.stats().half_open_in_flight, 1);
    drop(probe);
    assert_eq!(b.stats().half_open_in_flight, 0);
    assert_eq!(b.state(), CircuitState::HalfOpen);
    // The slot is free again: the next probe decides.
    b.try_acquire().unwrap().failure();
    assert_eq!(b.state(), CircuitState::Open);
    assert_eq!(b.stats().failure_count, 2);
}

#[test]
fn a_panic_between_acquire_and_record_leaks_no_probe_slot() {
    let clock = ManualClock::new();
    let b = breaker(&clock, 1, 1);
    b.try_acquire().unwrap().failure();
    clock.advance(Duration::from_secs(10));
    let owned = catch_unwind(AssertUnwindSafe(|| {
        let _permit = b.try_acquire_owned().unwrap();
        panic!("the call panicked");
    }));
    assert!(owned.is_err());
    let borrowed = catch_unwind(AssertUnwindSafe(|| {
        let _permit = b.try_acquire().unwrap();
        panic!("the call panicked");
    }));
    assert!(borrowed.is_err());
    assert_eq!(b.stats().half_open_in_flight, 0);
    assert_eq!(
        b.stats().failure_count,
        1,
        "a cancelled call counts nothing"
    );
    b.try_acquire().unwrap().success();
    assert_eq!(b.state(), CircuitState::Closed);
}

#[test]
fn a_permit_from_before_a_reset_is_ignored() {
    let clock = ManualClock::new();
    let b = breaker(&clock, 1, 1);
    let old = b.try_acquire_owned().unwrap();
    b.reset();
    old.failure();
    assert_eq!(b.state(), CircuitState::Closed);
    assert_eq!(b.stats().failure_count, 0);
}

#[test]
fn an_owned_permit_records_from_another_thread() {
    let clock = ManualClock::new();
    let b = breaker(&clock, 1, 1);
    let permit = b.try_acquire_owned().unwrap();
    std::thread::spawn(move || permit.failure()).join().unwrap();
    assert_eq!(b.state(), CircuitState::Open);
}

#[test]
fn run_with_outcome_and_the_rejection_hook() {
    let clock = ManualClock::new();
    let hooked = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&hooked);
    let api = clock
        .circuit_breaker(rule(async |n: &u32| *n > 0))
        .failure_threshold(1)
        .on_rejected(move |n: u32| {
            seen.fetch_add(1, Ordering::SeqCst);
            n + 100
        })
        .build()
        .unwrap();
    assert_eq!(
        clock.block_on(api.run_with_outcome(1)),
        (BreakerOutcome::Ran(true), 1)
    );
    assert_eq!(
        clock.block_on(api.run_with_outcome(0)),
        (BreakerOutcome::Ran(false), 0)
    );
    assert_eq!(
        clock.block_on(api.run_with_outcome(2)),
        (BreakerOutcome::Rejected, 102)
    );
    assert_eq!(clock.block_on(api.run(3)), (false, 103));
    assert_eq!(hooked.load(Ordering::SeqCst), 2);
    assert!(BreakerOutcome::Rejected.is_rejected() && !BreakerOutcome::Rejected.passed());
}

#[test]
fn combinator_calls_and_permits_share_one_breaker() {
    let clock = ManualClock::new();
    let b = breaker(&clock, 2, 1);
    let guarded = b.guard(rule(async |_: &()| false));
    clock.block_on(guarded.run(()));
    b.try_acquire().unwrap().failure();
    assert_eq!(b.state(), CircuitState::Open);
}

#[test]
fn owned_acquires_wait_in_the_same_queue_as_borrowed_ones() {
    let pool = Arc::new(Semaphore::new(1).unwrap());
    let held = pool.try_acquire_owned().unwrap();
    assert!(pool.try_acquire_owned().is_none());
    let mut first = pool.acquire();
    let mut second = pool.acquire_owned();
    let mut third = pool.acquire();
    assert!(poll_once(&mut first).is_pending());
    assert!(poll_once(&mut second).is_pending());
    assert!(poll_once(&mut third).is_pending());
    assert_eq!(pool.waiting(), 3);

    drop(held);
    assert!(poll_once(&mut third).is_pending());
    assert!(poll_once(&mut second).is_pending());
    let Poll::Ready(p1) = poll_once(&mut first) else {
        panic!("first in line")
    };
    drop(p1);
    assert!(poll_once(&mut third).is_pending());
    let Poll::Ready(p2) = poll_once(&mut second) else {
        panic!("second in line")
    };
    assert!(Arc::ptr_eq(p2.semaphore(), &pool));
    // Polled again after completing, it stays pending and holds nothing.
    assert!(poll_once(&mut second).is_pending());
    drop(p2);
    assert!(poll_once(&mut third).is_ready());
    drop(third);
    assert_eq!(pool.available(), 1);
}

#[test]
fn a_dropped_owned_acquire_leaves_the_queue_or_passes_its_permit_on() {
    let pool = Arc::new(Semaphore::new(1).unwrap());
    let held = pool.try_acquire_owned().unwrap();
    let mut leaving = pool.acquire_owned();
    let mut granted = pool.acquire_owned();
    let mut next = pool.acquire_owned();
    for fut in [&mut leaving, &mut granted, &mut next] {
        assert!(poll_once(fut).is_pending());
    }
    drop(leaving); // queued, never granted: leaves the queue
    assert_eq!(pool.waiting(), 2);
    drop(held); // handed to `granted`, which never sees it
    drop(granted); // passes it on to `next`
    let Poll::Ready(permit) = poll_once(&mut next) else {
        panic!("the permit was passed on")
    };
    assert_eq!(pool.available(), 0);
    drop(permit);
    drop(next);
    assert_eq!((pool.available(), pool.waiting()), (1, 0));
}

#[test]
fn an_owned_acquire_completes_on_another_thread() {
    let pool = Arc::new(Semaphore::new(1).unwrap());
    let held = pool.try_acquire_owned().unwrap();
    let waiting = pool.acquire_owned();
    let task = std::thread::spawn(move || futures::executor::block_on(waiting));
    drop(held);
    let permit = task.join().unwrap();
    assert_eq!(pool.available(), 0);
    drop(permit);
    assert_eq!(pool.available(), 1);
}

#[test]
fn check_names_the_exact_earliest_admission() {
    let clock = ManualClock::new();
    clock.advance(Duration::from_millis(7));
    // 4 per second, burst 2: slots 250 ms apart once the burst is spent.
    let limiter = clock.rate_limiter(RateLimit::with_burst(4, Duration::from_secs(1), 2).unwrap());
    limiter.check().unwrap();
    limiter.check().unwrap();
    let refused = limiter.check().unwrap_err();
    assert_eq!(
        refused,
        RateLimitExceeded::new(Instant::from_nanos(257_000_000))
    );
    // A nanosecond early is still too early; on time is admitted.
    clock.advance_to(Instant::from_nanos(256_999_999));
    assert_eq!(limiter.check().unwrap_err().retry_at(), refused.retry_at());
    clock.advance_to(refused.retry_at());
    limiter.check().unwrap();
    assert_eq!(
        limiter.check().unwrap_err().retry_at(),
        Instant::from_nanos(507_000_000)
    );
}

#[test]
fn a_dropped_reservation_gives_its_slot_back_unless_a_later_one_was_made() {
    let clock = ManualClock::new();
    let limiter = clock.rate_limiter(RateLimit::per_second(10).unwrap());
    limiter.check().unwrap();
    let a = limiter.reserve(Duration::from_secs(1)).unwrap();
    assert_eq!(a.ready_at(), Instant::from_nanos(100_000_000));
    drop(a);
    let a = limiter.reserve(Duration::from_secs(1)).unwrap();
    assert_eq!(a.ready_at(), Instant::from_nanos(100_000_000), "given back");
    let b = limiter.reserve_owned(Duration::from_secs(1)).unwrap();
    assert_eq!(b.ready_at(), Instant::from_nanos(200_000_000));
    drop(a); // a later slot is reserved: this one stays spent
    drop(b); // the last: given back
    let c = limiter.reserve(Duration::from_secs(1)).unwrap();
    assert_eq!(c.ready_at(), Instant::from_nanos(200_000_000));
    c.commit();
    assert_eq!(
        limiter.reserve(Duration::ZERO).unwrap_err().retry_at(),
        Instant::from_nanos(300_000_000)
    );
}

#[test]
fn waiting_for_a_reservation_sleeps_until_its_slot_and_spends_it() {
    let clock = ManualClock::new();
    let limiter = clock.rate_limiter(RateLimit::per_second(2).unwrap());
    limiter.check().unwrap();
    let slot = limiter.reserve(Duration::from_secs(1)).unwrap();
    let ready = slot.ready_at();
    clock.block_on(slot.wait());
    assert_eq!(clock.now(), ready);
    assert_eq!(
        limiter.check().unwrap_err().retry_at(),
        Instant::from_nanos(1_000_000_000)
    );
}

#[test]
fn a_wait_dropped_before_its_slot_gives_the_slot_back() {
    let clock = ManualClock::new();
    let limiter = clock.rate_limiter(RateLimit::per_second(2).unwrap());
    limiter.check().unwrap();
    let slot = limiter.reserve_owned(Duration::from_secs(1)).unwrap();
    {
        let mut wait = pin!(slot.wait());
        assert!(
            wait.as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_pending()
        );
        assert_eq!(clock.pending_sleeps(), 1);
    }
    assert_eq!(clock.pending_sleeps(), 0);
    let again = limiter.reserve(Duration::from_secs(1)).unwrap();
    assert_eq!(again.ready_at(), Instant::from_nanos(500_000_000));
}

#[test]
fn a_guard_and_hand_made_calls_share_one_budget() {
    let clock = ManualClock::new();
    let limiter = clock.rate_limiter(RateLimit::per_second(1).unwrap());
    let api = limiter.guard(rule(async |_: &()| true)).reject_when_full();
    assert!(api.limiter().same_as(&limiter));
    assert!(clock.block_on(api.run(())).0);
    assert!(limiter.check().is_err());
    clock.advance(Duration::from_secs(1));
    limiter.check().unwrap();
    assert!(!clock.block_on(api.run(())).0);
    assert_eq!(api.rejected(), 1);
}

#[test]
fn named_budgets_are_shared_with_rate_limited_named() -> Result<(), ConfigError> {
    let clock = ManualClock::new();
    let registry = Registry::new();
    let limit = RateLimit::per_minute(1)?;
    let budget = clock.rate_limiter_named_in(limit, "api", &registry)?;
    let api = clock
        .rate_limited_named_in(rule(async |_: &()| true), limit, "api", &registry)?
        .reject_when_full();
    assert_eq!(budget.name(), Some("api"));
    assert_eq!(api.name(), Some("api"));
    assert!(api.limiter().same_as(&budget));
    budget.check().unwrap();
    assert!(!clock.block_on(api.run(())).0);
    let err = clock
        .rate_limiter_named_in(RateLimit::per_minute(2)?, "api", &registry)
        .unwrap_err();
    assert_eq!(err.parameter(), "rate");
    assert!(clock.rate_limiter_named_in(limit, "", &registry).is_err());
    Ok(())
}
