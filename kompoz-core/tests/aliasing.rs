//! Aliasing checks for Miri (`cargo +nightly miri test -p kompoz-core --test aliasing`).
//!
//! A caller may look at a pending future through a shared reference between
//! two polls — `futures::select_biased!` does, through
//! `FusedFuture::is_terminated(&self)`. That must not invalidate borrows the
//! future holds of its own state across an await: Miri (Stacked and Tree
//! Borrows) reports the next poll as undefined behaviour if it does.
//! Natively these tests always pass; under Miri they check the combinators'
//! `run` futures. (They caught the breaker's, the timeout's and parallel's
//! futures holding `&mut` to their own Unpin state across an await; fixed in
//! 85e3c9a by futures that own their state.)

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use kompoz_core::{
    Breaker, Clock, Combinator, LimitMode, Limited, ManualClock, RateLimit, RateLimited, Retry,
    Timeout, rule,
};

/// Polls `fut` once, takes a shared reference to it (as `is_terminated`
/// does), then advances `clock` and polls it to completion.
fn poll_peek_finish<F: Future>(clock: &ManualClock, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..5_000 {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        let peek: &F = fut.as_ref().get_ref();
        let _ = core::hint::black_box(peek);
        clock.advance(Duration::from_millis(1));
    }
    panic!("did not complete");
}

fn slow(clock: &ManualClock) -> impl Combinator<u32> + use<> {
    let c = clock.clone();
    rule(async move |_: &u32| {
        c.sleep(Duration::from_millis(2)).await;
        true
    })
}

#[test]
fn breaker_future_survives_a_shared_peek() {
    let clock = ManualClock::new();
    let breaker = Breaker::builder(clock.clone()).build().unwrap();
    let guarded = breaker.guard(slow(&clock));
    assert!(poll_peek_finish(&clock, guarded.run(1)).0);
}

#[test]
fn timeout_future_survives_a_shared_peek() {
    let clock = ManualClock::new();
    let t = Timeout::new(slow(&clock), Duration::from_secs(1), clock.clone()).unwrap();
    assert!(poll_peek_finish(&clock, t.run(1)).0);
}

#[test]
fn limiter_future_survives_a_shared_peek() {
    let clock = ManualClock::new();
    for mode in [
        LimitMode::Wait,
        LimitMode::WaitAtMost(Duration::from_secs(1)),
    ] {
        let l = Limited::new(slow(&clock), 1, clock.clone())
            .unwrap()
            .with_mode(mode);
        let busy = l.pool().try_acquire().unwrap();
        let waiter = async {
            let (out, ()) = futures::join!(l.run(1), async {
                clock.sleep(Duration::from_millis(1)).await;
                drop(busy);
            });
            out
        };
        assert!(poll_peek_finish(&clock, waiter).0, "{mode:?}");
    }
}

#[test]
fn retry_future_survives_a_shared_peek() {
    let clock = ManualClock::new();
    let r = Retry::new(slow(&clock), 2, clock.clone()).unwrap();
    assert!(poll_peek_finish(&clock, r.run(1)).0);
}

#[test]
fn rate_limit_future_survives_a_shared_peek() {
    let clock = ManualClock::new();
    let rl = RateLimited::new(
        slow(&clock),
        RateLimit::per_second(1).unwrap(),
        clock.clone(),
    );
    assert!(poll_peek_finish(&clock, rl.run(1)).0);
    assert!(poll_peek_finish(&clock, rl.run(2)).0); // waits for its slot
}

#[test]
fn parallel_future_survives_a_shared_peek() {
    let clock = ManualClock::new();
    let p = kompoz_core::parallel_and([slow(&clock), slow(&clock)]).unwrap();
    assert!(poll_peek_finish(&clock, p.run(1)).0);
    let p = kompoz_core::parallel_or([slow(&clock), slow(&clock)]).unwrap();
    assert!(poll_peek_finish(&clock, p.run(1)).0);
}

#[test]
fn tuple_parallel_future_survives_a_shared_peek() {
    let clock = ManualClock::new();
    let p = kompoz_core::parallel_and!(slow(&clock), rule(async |n: &u32| *n > 0));
    assert!(poll_peek_finish(&clock, p.run(1)).0);
    let p = kompoz_core::parallel_or!(rule(async |_: &u32| false), slow(&clock));
    assert!(poll_peek_finish(&clock, p.run(1)).0);
}

#[test]
fn breaker_outcome_future_survives_a_shared_peek() {
    let clock = ManualClock::new();
    let breaker = Breaker::builder(clock.clone()).build().unwrap();
    let guarded = breaker.guard(slow(&clock));
    let (outcome, _) = poll_peek_finish(&clock, guarded.run_with_outcome(1));
    assert_eq!(
        outcome,
        kompoz_core::circuit_breaker::BreakerOutcome::Ran(true)
    );
}

#[test]
fn owned_acquire_survives_a_shared_peek() {
    let clock = ManualClock::new();
    let pool = std::sync::Arc::new(kompoz_core::Semaphore::new(1).unwrap());
    let busy = pool.try_acquire_owned().unwrap();
    let waiter = async {
        // `join` (the function): `join!` keeps an `Unpin` future in a way
        // Miri flags on its own, whatever the future.
        let release = async {
            clock.sleep(Duration::from_millis(1)).await;
            drop(busy);
        };
        futures::future::join(pool.acquire_owned(), release).await.0
    };
    drop(poll_peek_finish(&clock, waiter));
    assert_eq!(pool.available(), 1);
}

#[test]
fn rate_reservation_waits_survive_a_shared_peek() {
    use kompoz_core::ClockExt;
    let clock = ManualClock::new();
    let limiter = clock.rate_limiter(RateLimit::per_second(1).unwrap());
    limiter.check().unwrap();
    let slot = limiter.reserve(Duration::from_secs(5)).unwrap();
    poll_peek_finish(&clock, slot.wait());
    let slot = limiter.reserve_owned(Duration::from_secs(5)).unwrap();
    poll_peek_finish(&clock, slot.wait());
    assert_eq!(clock.now().as_duration(), Duration::from_secs(2));
}
