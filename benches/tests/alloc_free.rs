//! After construction and a warm-up, the hot paths allocate nothing: a call
//! through a CLOSED breaker (successes and failures), an uncontended limiter,
//! a limiter call that waits in the queue for its permit,
//! a rate-limit check (admitted and rejected), a timeout on tokio around a
//! ready inner step, and the three composed; the primitives a call API is
//! built from: breaker permits (borrowed and owned, recorded, dropped and
//! refused), owned pool permits (taken at once and waited for) and the
//! rate-limit handle's `check` and reservations; and the call API: a
//! policy's call through limit ∘ retry ∘ breaker ∘ timeout (passing,
//! retried, and failing with the operation's own error), `Breaker::call`,
//! and a refusal.
//!
//! `allocation-counter` replaces the global allocator in this test binary
//! only, and counts per thread, so tests running in parallel do not disturb
//! each other's counts.

use std::time::Duration;

use kompoz_benches::poll_once;
use kompoz_tokio::{CircuitState, Combinator, RateLimit};

const CALLS: u64 = 1_000;

/// Heap allocations made by `calls` calls of `call`, after `warm_up` of them
/// outside the count (first-use growth is construction, not the hot path).
fn allocations<T>(mut call: impl FnMut(u64) -> T) -> u64 {
    for i in 0..CALLS {
        std::hint::black_box(call(i));
    }
    allocation_counter::measure(|| {
        for i in 0..CALLS {
            std::hint::black_box(call(i));
        }
    })
    .count_total
}

fn inner() -> impl Combinator<u64> + Clone {
    kompoz_tokio::rule(async |x: &u64| *x % 4 != 0)
}

#[test]
fn the_counter_sees_an_allocation() {
    let counted = allocations(Box::new);
    assert_eq!(counted, CALLS, "one Box per call must be counted");
}

#[test]
fn closed_breaker_calls_do_not_allocate() {
    // Every fourth call fails: three failures never come in a row, so the
    // breaker records failures and successes and stays CLOSED.
    let breaker = kompoz_tokio::circuit_breaker(inner())
        .failure_threshold(3)
        .build()
        .expect("config");
    assert_eq!(allocations(|i| poll_once(breaker.run(i))), 0);
    assert_eq!(breaker.state(), CircuitState::Closed);
    let stats = breaker.stats();
    assert_eq!(stats.failure_count, 2 * CALLS / 4);
    assert_eq!(stats.success_count, 2 * CALLS * 3 / 4);
}

#[test]
fn uncontended_limiter_calls_do_not_allocate() {
    let limited = kompoz_tokio::limited(inner(), 4).expect("config");
    assert_eq!(allocations(|i| poll_once(limited.run(i))), 0);
    assert_eq!(limited.available(), 4, "every permit was given back");
}

#[test]
fn a_limiter_call_that_waits_for_its_permit_does_not_allocate() {
    // One permit, held by hand: each call queues (pending), the permit is
    // released to it, and it runs. The queue's slab grows once, in the
    // warm-up; waiting itself allocates nothing.
    let limited = kompoz_tokio::limited(inner(), 1).expect("config");
    let waited = allocations(|i| {
        let held = limited.pool().try_acquire().expect("the permit is free");
        let mut call = std::pin::pin!(limited.run(i));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(call.as_mut().poll(&mut cx).is_pending(), "queued");
        drop(held);
        match call.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => panic!("the permit was handed over"),
        }
    });
    assert_eq!(waited, 0);
    assert_eq!(limited.available(), 1, "the permit was given back");
    assert_eq!(limited.pool().waiting(), 0);
}

#[test]
fn rate_limit_checks_do_not_allocate() {
    let roomy = RateLimit::with_burst(
        1_000_000_000,
        std::time::Duration::from_secs(1),
        1_000_000_000,
    )
    .expect("config");
    let admitted = kompoz_tokio::rate_limited(inner(), roomy).reject_when_full();
    assert_eq!(allocations(|i| poll_once(admitted.run(i))), 0);
    assert_eq!(admitted.rejected(), 0, "every check was admitted");

    let tight = RateLimit::per_minute(1).expect("config");
    let rejecting = kompoz_tokio::rate_limited(inner(), tight).reject_when_full();
    assert_eq!(allocations(|i| poll_once(rejecting.run(i))), 0);
    assert_eq!(
        rejecting.rejected(),
        2 * CALLS - 1,
        "all but the first rejected"
    );
}

#[test]
fn timeout_on_tokio_with_a_ready_inner_does_not_allocate() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _in_runtime = rt.enter();
    let timeout = kompoz_tokio::with_timeout(inner(), Duration::from_secs(1)).expect("config");
    assert_eq!(allocations(|i| poll_once(timeout.run(i))), 0);
    assert_eq!(timeout.timeouts(), 0);
}

#[test]
fn the_composed_stack_does_not_allocate() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _in_runtime = rt.enter();
    let breaker = kompoz_tokio::circuit_breaker(inner())
        .failure_threshold(3)
        .build()
        .expect("config");
    let limited = kompoz_tokio::limited(breaker, 4).expect("config");
    let stack = kompoz_tokio::with_timeout(limited, Duration::from_secs(1)).expect("config");
    assert_eq!(allocations(|i| poll_once(stack.run(i))), 0);
}

#[test]
fn tuple_parallel_calls_do_not_allocate() {
    // Children of different types, unboxed: `parallel_and!` / `parallel_or!`
    // (the iterator forms box one future per child).
    let all = kompoz_tokio::parallel_and!(
        inner(),
        kompoz_tokio::not(inner()),
        kompoz_tokio::rule(async |_: &u64| true)
    );
    assert_eq!(allocations(|i| poll_once(all.run(i))), 0);
    let any = kompoz_tokio::parallel_or!(inner(), kompoz_tokio::not(inner()));
    assert_eq!(allocations(|i| poll_once(any.run(i))), 0);
}

#[test]
fn breaker_permits_do_not_allocate() {
    let breaker = kompoz_tokio::shared_breaker()
        .failure_threshold(3)
        .build()
        .expect("config");
    // Every fourth call fails, one in eight is dropped unrecorded: CLOSED.
    let calls = allocations(|i| match i % 8 {
        0 => breaker.try_acquire().expect("closed").failure(),
        1 => drop(breaker.try_acquire().expect("closed")),
        4 => breaker.try_acquire_owned().expect("closed").record(true),
        5 => breaker.try_acquire_owned().expect("closed").success(),
        _ => breaker.try_acquire().expect("closed").success(),
    });
    assert_eq!(calls, 0);
    assert_eq!(breaker.state(), CircuitState::Closed);

    breaker.force_open();
    let refused = allocations(|_| assert!(breaker.try_acquire().is_err()));
    assert_eq!(
        refused, 0,
        "a refusal (a `CircuitOpen` value) allocates nothing"
    );
}

#[test]
fn owned_pool_permits_do_not_allocate() {
    let pool = std::sync::Arc::new(kompoz_tokio::Semaphore::new(1).expect("config"));
    let taken = allocations(|_| pool.try_acquire_owned().expect("free"));
    assert_eq!(taken, 0);
    // Waited for: queued behind a permit held by hand, handed over on its
    // release. The queue's slab grows once, in the warm-up.
    let waited = allocations(|_| {
        let held = pool.try_acquire().expect("free");
        let mut waiting = pool.acquire_owned();
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(std::pin::Pin::new(&mut waiting).poll(&mut cx).is_pending());
        drop(held);
        match std::pin::Pin::new(&mut waiting).poll(&mut cx) {
            std::task::Poll::Ready(permit) => permit,
            std::task::Poll::Pending => panic!("the permit was handed over"),
        }
    });
    assert_eq!(waited, 0);
    assert_eq!((pool.available(), pool.waiting()), (1, 0));
}

#[test]
fn rate_limiter_checks_and_reservations_do_not_allocate() {
    let roomy = RateLimit::with_burst(1_000_000_000, Duration::from_secs(1), 1_000_000_000)
        .expect("config");
    let limiter = kompoz_tokio::rate_limiter(roomy);
    assert_eq!(allocations(|_| assert!(limiter.check().is_ok())), 0);
    let reserved = allocations(|i| {
        let slot = limiter.reserve(Duration::ZERO).expect("roomy");
        if i % 2 == 0 {
            slot.commit()
        } else {
            drop(slot)
        }
    });
    assert_eq!(reserved, 0);

    let tight = kompoz_tokio::rate_limiter(RateLimit::per_minute(1).expect("config"));
    assert!(tight.check().is_ok());
    let refused = allocations(|_| assert!(tight.check().is_err()));
    assert_eq!(refused, 0, "a refusal allocates nothing");
}

#[test]
fn call_api_calls_do_not_allocate() {
    use kompoz_tokio::Error;
    use std::io::{Error as IoError, ErrorKind};

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _in_runtime = rt.enter();
    let breaker = kompoz_tokio::shared_breaker()
        .failure_threshold(65_535)
        .build()
        .expect("config");
    // No back-off: a retried call completes within its first poll too.
    let policy = kompoz_tokio::policy()
        .limit_to(4)
        .expect("config")
        .retry(3)
        .expect("config")
        .breaker(&breaker)
        .timeout(Duration::from_secs(1))
        .expect("config");
    // `io::Error::from(kind)` holds no box: only the stack could allocate.
    let passing =
        allocations(|i| poll_once(policy.call(|| std::future::ready(Ok::<_, IoError>(i)))));
    assert_eq!(passing, 0);
    let retried = allocations(|i| {
        let mut attempt = 0;
        poll_once(policy.call(|| {
            attempt += 1;
            std::future::ready(if attempt < 3 {
                Err(IoError::from(ErrorKind::Other))
            } else {
                Ok(i)
            })
        }))
    });
    assert_eq!(retried, 0);
    let failing = allocations(|_| {
        let out = poll_once(
            policy.call(|| std::future::ready(Err::<u64, _>(IoError::from(ErrorKind::Other)))),
        );
        assert!(matches!(out, Err(Error::Inner(_))));
    });
    assert_eq!(failing, 0);
    let one_layer =
        allocations(|i| poll_once(breaker.call(|| std::future::ready(Ok::<_, IoError>(i)))));
    assert_eq!(one_layer, 0);
    assert_eq!(breaker.state(), CircuitState::Closed);

    let open = kompoz_tokio::shared_breaker().build().expect("config");
    open.force_open();
    let refused = kompoz_tokio::policy()
        .retry(3)
        .expect("config")
        .breaker(&open);
    let refusals = allocations(|i| {
        let out = poll_once(refused.call(|| std::future::ready(Ok::<_, IoError>(i))));
        assert!(matches!(out, Err(Error::CircuitOpen(_))));
    });
    assert_eq!(refusals, 0);

    // The rate-limit layer, admitted and refused.
    let roomy = RateLimit::with_burst(1_000_000_000, Duration::from_secs(1), 1_000_000_000)
        .expect("config");
    let admitted = kompoz_tokio::policy()
        .rate_limit_to(roomy)
        .reject_when_full();
    let admissions =
        allocations(|i| poll_once(admitted.call(|| std::future::ready(Ok::<_, IoError>(i)))));
    assert_eq!(admissions, 0);
    let tight = kompoz_tokio::policy()
        .rate_limit_to(RateLimit::per_minute(1).expect("config"))
        .reject_when_full();
    let limited = allocations(|i| {
        let _ = poll_once(tight.call(|| std::future::ready(Ok::<_, IoError>(i))));
    });
    assert_eq!(limited, 0);
}
