//! The layers' `poll_ready` / `call` contract, in process on a
//! `ManualClock`: what each decides where, and what a service or a future
//! dropped at each point gives back.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::FutureExt;
use kompoz_core::call::Error;
use kompoz_core::{Backoff, CircuitState, ClockExt, ManualClock, RateLimit};
use kompoz_tower::{Attempts, LimitLayer, RateLimitLayer, RetryLayer, ServiceBuilderExt};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

/// A leaf that counts its calls and fails when `fail` says so.
fn leaf(
    calls: &Arc<AtomicU32>,
    fail: bool,
) -> impl Service<u32, Response = u32, Error = io::Error, Future: Send> + Clone + Send {
    let calls = calls.clone();
    service_fn(move |n: u32| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if fail {
                Err(io::Error::other("down"))
            } else {
                Ok(n)
            }
        }
    })
}

#[test]
fn an_open_breaker_fails_fast_without_waiting_for_the_limit_below_it() {
    let clock = ManualClock::new();
    let breaker = clock.shared_breaker().build().unwrap();
    let limit = LimitLayer::new(1).unwrap();
    let pool = limit.pool().clone();
    let calls = Arc::new(AtomicU32::new(0));
    let mut api = ServiceBuilder::new()
        .circuit_breaker(&breaker)
        .layer(limit)
        .service(leaf(&calls, false));
    let _busy = pool.try_acquire_owned().unwrap(); // the limit is saturated

    // Closed: the request waits for the limit in `poll_ready`.
    assert!(api.ready().now_or_never().is_none());
    assert_eq!(pool.waiting(), 1);
    drop(api);
    assert_eq!(pool.waiting(), 0); // the dropped service left the queue

    // Open: `poll_ready` is ready at once and does not queue; `call` refuses.
    breaker.force_open();
    let mut api = ServiceBuilder::new()
        .circuit_breaker(&breaker)
        .layer(LimitLayer::with_pool(pool.clone()))
        .service(leaf(&calls, false));
    let ready = api
        .ready()
        .now_or_never()
        .expect("an open breaker is ready at once");
    assert!(ready.is_ok());
    assert_eq!(pool.waiting(), 0);
    let refused = api.call(1).now_or_never().unwrap().unwrap_err();
    assert!(matches!(refused, Error::CircuitOpen(open) if open.state() == CircuitState::Open));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn retry_admits_every_attempt_afresh_and_does_not_retry_a_refusal() {
    let clock = ManualClock::new();
    let breaker = clock.shared_breaker().failure_threshold(2).build().unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let policy = Attempts::new(5)
        .unwrap()
        .backoff(Backoff::fixed(Duration::from_millis(10)));
    let api = ServiceBuilder::new()
        .with_retry(policy, clock.clone())
        .circuit_breaker(&breaker)
        .service(leaf(&calls, true));

    // Two attempts fail and open the breaker; the third is refused by it,
    // and that refusal ends the retries.
    let err = clock.block_on(api.oneshot(1)).unwrap_err();
    assert!(matches!(err, Error::CircuitOpen(_)), "{err:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(breaker.state(), CircuitState::Open);
}

#[test]
fn retry_gives_up_with_the_last_inner_error_after_max_attempts() {
    let clock = ManualClock::new();
    let calls = Arc::new(AtomicU32::new(0));
    let api = RetryLayer::new(Attempts::new(3).unwrap(), clock.clone()).layer(leaf(&calls, true));
    let err = clock.block_on(api.oneshot(1)).unwrap_err();
    assert_eq!(err.inner().unwrap().to_string(), "down");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[test]
fn a_retry_dropped_during_its_backoff_cancels_the_wait() {
    let clock = ManualClock::new();
    let calls = Arc::new(AtomicU32::new(0));
    let policy = Attempts::new(3)
        .unwrap()
        .backoff(Backoff::fixed(Duration::from_secs(1)));
    let api = RetryLayer::new(policy, clock.clone()).layer(leaf(&calls, true));
    let mut call = Box::pin(api.oneshot(1));
    assert!(call.as_mut().now_or_never().is_none());
    assert_eq!(
        (calls.load(Ordering::SeqCst), clock.pending_sleeps()),
        (1, 1)
    );
    drop(call);
    assert_eq!(clock.pending_sleeps(), 0);
}

#[test]
fn a_service_readied_then_dropped_gives_back_its_permit_and_holds_no_probe_or_rate_slot() {
    let clock = ManualClock::new();
    let breaker = clock
        .shared_breaker()
        .failure_threshold(1)
        .recovery_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let limiter = clock.rate_limiter(RateLimit::per_second(1).unwrap());
    let limit = LimitLayer::new(1).unwrap();
    let pool = limit.pool().clone();
    let calls = Arc::new(AtomicU32::new(0));
    let stack = |fail| {
        ServiceBuilder::new()
            .rate_limited(&limiter)
            .layer(limit.clone())
            .circuit_breaker(&breaker)
            .service(leaf(&calls, fail))
    };

    // One failure opens the breaker; after the recovery timeout it will probe.
    assert!(clock.block_on(stack(true).oneshot(1)).is_err());
    assert_eq!(breaker.state(), CircuitState::Open);
    clock.advance(Duration::from_secs(1));

    // Readied: the pool permit is held (backpressure); the probe slot and the
    // rate slot are only taken by `call`...
    let mut readied = stack(false);
    assert!(readied.ready().now_or_never().unwrap().is_ok());
    assert_eq!(pool.available(), 0);
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    let mut other = stack(false);
    assert!(other.ready().now_or_never().is_none()); // queued at the pool
    drop(other);
    // ...and dropped before `call`, the permit comes back.
    drop(readied);
    assert_eq!(pool.available(), 1);
    assert!(limiter.check().is_ok(), "the rate slot is still free");
    clock.advance(Duration::from_secs(1));
    assert_eq!(clock.block_on(stack(false).oneshot(7)).unwrap(), 7); // the probe
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[test]
fn the_rate_limit_waits_in_poll_ready_within_its_bound() {
    let clock = ManualClock::new();
    let limiter = clock.rate_limiter(RateLimit::per_second(1).unwrap());
    let calls = Arc::new(AtomicU32::new(0));
    let layer = RateLimitLayer::new(&limiter).wait_at_most(Duration::from_secs(1));
    let mut first = layer.layer(leaf(&calls, false));
    let mut second = layer.layer(leaf(&calls, false));
    let mut third = layer.layer(leaf(&calls, false));

    assert!(first.ready().now_or_never().unwrap().is_ok());
    assert_eq!(first.call(1).now_or_never().unwrap().unwrap(), 1);
    // The next slot is 1 s away: within the bound, `poll_ready` waits for it.
    assert!(second.ready().now_or_never().is_none());
    // The one after is 2 s away: refused at once, in `call`.
    assert!(third.ready().now_or_never().unwrap().is_ok());
    assert!(matches!(
        third.call(3).now_or_never().unwrap(),
        Err(Error::RateLimited(_))
    ));
    clock.advance(Duration::from_secs(1));
    assert!(second.ready().now_or_never().unwrap().is_ok());
    assert_eq!(second.call(2).now_or_never().unwrap().unwrap(), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn zero_settings_are_refused_naming_the_parameter() {
    let clock = ManualClock::new();
    assert_eq!(
        LimitLayer::new(0).unwrap_err().parameter(),
        "max_concurrent"
    );
    assert_eq!(
        kompoz_tower::TimeoutLayer::new(Duration::ZERO, clock)
            .unwrap_err()
            .parameter(),
        "timeout"
    );
    assert_eq!(Attempts::new(0).unwrap_err().parameter(), "max_attempts");
    let err = ServiceBuilder::new().limited(0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid `max_concurrent`: 0 (expected at least 1 and at most usize::MAX / 2)"
    );
}

#[test]
fn a_panicking_response_future_is_a_breaker_failure_and_leaks_no_probe_slot() {
    let clock = ManualClock::new();
    let breaker = clock
        .shared_breaker()
        .failure_threshold(1)
        .recovery_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let panicking = || {
        ServiceBuilder::new()
            .circuit_breaker(&breaker)
            .service(service_fn(|_: u32| async {
                panic!("the upstream client panicked");
                #[allow(unreachable_code)]
                Ok::<u32, io::Error>(0)
            }))
    };
    let call = |api| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            futures::executor::block_on(ServiceExt::<u32>::oneshot(api, 1))
        }))
    };

    assert!(call(panicking()).is_err());
    assert_eq!(
        breaker.state(),
        CircuitState::Open,
        "the panic counted as a failure"
    );

    // A probe that panics reopens the circuit and gives its slot back.
    clock.advance(Duration::from_secs(1));
    assert!(call(panicking()).is_err());
    assert_eq!(breaker.state(), CircuitState::Open);
    clock.advance(Duration::from_secs(1));
    let calls = Arc::new(AtomicU32::new(0));
    let healthy = ServiceBuilder::new()
        .circuit_breaker(&breaker)
        .service(leaf(&calls, false));
    assert_eq!(clock.block_on(healthy.oneshot(5)).unwrap(), 5);
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[test]
fn requests_queued_at_the_limit_are_refused_once_the_breaker_opened() {
    let clock = ManualClock::new();
    let breaker = clock.shared_breaker().failure_threshold(1).build().unwrap();
    let limit = LimitLayer::new(1).unwrap();
    let pool = limit.pool().clone();
    let calls = Arc::new(AtomicU32::new(0));
    let api = ServiceBuilder::new()
        .circuit_breaker(&breaker)
        .layer(limit)
        .service(leaf(&calls, false));
    let busy = pool.try_acquire_owned().unwrap(); // the limit is saturated

    // Ten requests queue at the limit while the circuit is CLOSED.
    let mut queued: Vec<_> = (0..10).map(|_| Box::pin(api.clone().oneshot(1))).collect();
    for call in &mut queued {
        assert!(call.as_mut().now_or_never().is_none());
    }
    assert_eq!(pool.waiting(), 10);

    // Elsewhere, the upstream fails and the circuit opens; then the pool frees.
    breaker.try_acquire().unwrap().failure();
    assert_eq!(breaker.state(), CircuitState::Open);
    drop(busy);

    // Each queued request is refused by the open breaker, none reaches the leaf.
    for call in queued {
        let refused = clock.block_on(call).unwrap_err();
        assert!(matches!(refused, Error::CircuitOpen(_)), "{refused:?}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(pool.available(), 1);
}

#[test]
fn a_service_readied_but_not_called_holds_no_probe_slot_nor_rate_slot() {
    let clock = ManualClock::new();
    let breaker = clock
        .shared_breaker()
        .failure_threshold(1)
        .half_open_max_calls(1)
        .recovery_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let limiter = clock.rate_limiter(RateLimit::with_burst(1, Duration::from_secs(60), 2).unwrap());
    let calls = Arc::new(AtomicU32::new(0));
    let stack = |fail| {
        ServiceBuilder::new()
            .rate_limited(&limiter)
            .circuit_breaker(&breaker)
            .service(leaf(&calls, fail))
    };
    assert!(clock.block_on(stack(true).oneshot(1)).is_err()); // opens
    clock.advance(Duration::from_secs(1));

    // A balancer keeps a readied service idle in its ready set.
    let mut idle = stack(false);
    assert!(idle.ready().now_or_never().unwrap().is_ok());
    // The probe slot and the rate's last slot are still there for a real request.
    assert_eq!(clock.block_on(stack(false).oneshot(7)).unwrap(), 7);
    assert_eq!(breaker.state(), CircuitState::Closed);
    // The idle service, called at last, is admitted (or refused) then.
    assert!(matches!(
        idle.call(8).now_or_never().unwrap(),
        Err(Error::RateLimited(_))
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn a_refusal_seen_in_poll_ready_is_decided_again_by_the_next_poll_ready() {
    let clock = ManualClock::new();
    let calls = Arc::new(AtomicU32::new(0));

    // Limit, reject mode: full, then a permit frees.
    let limit = LimitLayer::new(1).unwrap().reject_when_full();
    let pool = limit.pool().clone();
    let mut api = limit.layer(leaf(&calls, false));
    let busy = pool.try_acquire_owned().unwrap();
    assert!(api.ready().now_or_never().unwrap().is_ok()); // ready to refuse
    drop(busy);
    assert!(api.ready().now_or_never().unwrap().is_ok()); // decided again
    assert_eq!(api.call(1).now_or_never().unwrap().unwrap(), 1);

    // Breaker: open, then past its recovery timeout.
    let breaker = clock
        .shared_breaker()
        .recovery_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let mut api = kompoz_tower::CircuitBreakerLayer::new(&breaker).layer(leaf(&calls, false));
    breaker.try_acquire().unwrap().failure();
    breaker.try_acquire().unwrap().failure();
    breaker.try_acquire().unwrap().failure();
    breaker.try_acquire().unwrap().failure();
    breaker.try_acquire().unwrap().failure();
    assert_eq!(breaker.state(), CircuitState::Open);
    assert!(api.ready().now_or_never().unwrap().is_ok()); // ready to refuse
    clock.advance(Duration::from_secs(1));
    assert!(api.ready().now_or_never().unwrap().is_ok());
    assert_eq!(api.call(2).now_or_never().unwrap().unwrap(), 2);

    // Rate limit, reject mode: the slot comes back with time.
    let limiter = clock.rate_limiter(RateLimit::per_second(1).unwrap());
    let mut api = RateLimitLayer::new(&limiter).layer(leaf(&calls, false));
    limiter.check().unwrap();
    assert!(api.ready().now_or_never().unwrap().is_ok()); // ready to refuse
    clock.advance(Duration::from_secs(1));
    assert!(api.ready().now_or_never().unwrap().is_ok());
    assert_eq!(api.call(3).now_or_never().unwrap().unwrap(), 3);
}
