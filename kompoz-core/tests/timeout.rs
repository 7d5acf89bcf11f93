//! `Timeout` on a `ManualClock`, step by step.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use futures::FutureExt;
mod support;
use support::poll_once;

use kompoz_core::{
    Clock, Combinator, Instant, Limited, ManualClock, Timeout, clock::ManualSleep, rule,
    timeout::TimeoutOutcome, transform,
};

/// A `ManualClock` that counts how often it is read and asked for a timer.
#[derive(Clone, Default)]
struct CountingClock {
    inner: ManualClock,
    reads: Arc<AtomicUsize>,
    sleeps: Arc<AtomicUsize>,
}

impl Clock for CountingClock {
    type Sleep = ManualSleep;
    fn now(&self) -> Instant {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.now()
    }
    fn sleep(&self, duration: Duration) -> ManualSleep {
        self.sleeps.fetch_add(1, Ordering::SeqCst);
        self.inner.sleep(duration)
    }
}

/// Sets its flag when dropped: tells when the inner future is gone.
struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn sleeper(clock: &ManualClock, secs: u64) -> impl Combinator<u32> + use<> {
    let clock = clock.clone();
    transform(async move |n: u32| {
        clock.sleep(Duration::from_secs(secs)).await;
        n + 100
    })
}

#[test]
fn a_call_ready_at_once_neither_reads_the_clock_nor_arms_a_timer() {
    let clock = CountingClock::default();
    let check = Timeout::new(
        rule(async |n: &u32| *n > 1),
        Duration::from_secs(5),
        clock.clone(),
    )
    .unwrap();
    assert_eq!(check.run(3).now_or_never(), Some((true, 3)));
    assert_eq!(check.run(0).now_or_never(), Some((false, 0)));
    assert_eq!(clock.reads.load(Ordering::SeqCst), 0);
    assert_eq!(clock.sleeps.load(Ordering::SeqCst), 0);
    assert_eq!(check.timeouts(), 0);
}

#[test]
fn a_call_that_finishes_in_time_returns_the_inner_result() {
    let clock = ManualClock::new();
    let check = Timeout::new(sleeper(&clock, 3), Duration::from_secs(5), clock.clone()).unwrap();
    let mut call = Box::pin(check.run_with_outcome(1));
    assert!(poll_once(&mut call).is_pending());
    clock.advance(Duration::from_secs(3));
    assert_eq!(
        poll_once(&mut call),
        Poll::Ready((TimeoutOutcome::Completed(true), 101))
    );
    assert_eq!(
        clock.pending_sleeps(),
        0,
        "the timer was dropped with the call"
    );
    assert_eq!(check.timeouts(), 0);
}

#[test]
fn a_slow_call_is_dropped_and_returns_the_starting_context() {
    let clock = ManualClock::new();
    let dropped = Arc::new(AtomicBool::new(false));
    let seen_dropped_in_hook = Arc::new(AtomicBool::new(false));
    let (d, c) = (dropped.clone(), clock.clone());
    let inner = transform(async move |n: u32| {
        let _guard = DropFlag(d.clone());
        c.sleep(Duration::from_secs(60)).await;
        n + 100
    });
    let seen = seen_dropped_in_hook.clone();
    let flag = dropped.clone();
    let check = Timeout::new(inner, Duration::from_secs(5), clock.clone())
        .unwrap()
        .on_timeout(move |n: u32| {
            seen.store(flag.load(Ordering::SeqCst), Ordering::SeqCst);
            n + 1_000
        });
    let mut call = Box::pin(check.run_with_outcome(7));
    assert!(poll_once(&mut call).is_pending());
    clock.advance(Duration::from_millis(4_999));
    assert!(poll_once(&mut call).is_pending(), "not before the deadline");
    assert!(!dropped.load(Ordering::SeqCst));
    clock.advance(Duration::from_millis(1));
    assert_eq!(
        poll_once(&mut call),
        Poll::Ready((TimeoutOutcome::TimedOut, 1_007))
    );
    assert!(dropped.load(Ordering::SeqCst));
    assert!(
        seen_dropped_in_hook.load(Ordering::SeqCst),
        "the inner future is dropped before on_timeout runs"
    );
    assert_eq!(check.timeouts(), 1);
    assert_eq!(clock.pending_sleeps(), 0);
}

#[test]
fn on_timeout_does_not_run_for_calls_that_complete() {
    let clock = ManualClock::new();
    let hook_runs = Arc::new(AtomicUsize::new(0));
    let runs = hook_runs.clone();
    let check = Timeout::new(sleeper(&clock, 1), Duration::from_secs(5), clock.clone())
        .unwrap()
        .on_timeout(move |n: u32| {
            runs.fetch_add(1, Ordering::SeqCst);
            n
        });
    let mut call = Box::pin(check.run(1));
    assert!(poll_once(&mut call).is_pending());
    clock.advance(Duration::from_secs(1));
    assert_eq!(poll_once(&mut call), Poll::Ready((true, 101)));
    assert_eq!(hook_runs.load(Ordering::SeqCst), 0);
}

#[test]
fn a_call_finishing_exactly_at_the_deadline_completes() {
    // The inner future is polled before the timer, so a tie goes to the call.
    let clock = ManualClock::new();
    let check = Timeout::new(sleeper(&clock, 5), Duration::from_secs(5), clock.clone()).unwrap();
    let mut call = Box::pin(check.run_with_outcome(1));
    assert!(poll_once(&mut call).is_pending());
    clock.advance(Duration::from_secs(5));
    assert_eq!(
        poll_once(&mut call),
        Poll::Ready((TimeoutOutcome::Completed(true), 101))
    );
}

#[test]
fn the_deadline_counts_from_the_first_poll() {
    let clock = ManualClock::new();
    let check = Timeout::new(sleeper(&clock, 3), Duration::from_secs(5), clock.clone()).unwrap();
    let mut call = Box::pin(check.run_with_outcome(1));
    clock.advance(Duration::from_secs(10)); // built, not yet polled
    assert!(poll_once(&mut call).is_pending());
    clock.advance(Duration::from_secs(3));
    assert_eq!(
        poll_once(&mut call),
        Poll::Ready((TimeoutOutcome::Completed(true), 101))
    );
}

#[test]
fn concurrent_calls_each_see_their_own_outcome() {
    let clock = ManualClock::new();
    let c = clock.clone();
    // Call `n` takes `n` seconds; the timeout is 5 s.
    let inner = transform(async move |n: u32| {
        c.sleep(Duration::from_secs(n.into())).await;
        n
    });
    let check = Timeout::new(inner, Duration::from_millis(5_500), clock.clone()).unwrap();
    let mut calls = Box::pin(futures::future::join_all(
        (0..10).map(|n| check.run_with_outcome(n)),
    ));
    let outcomes = loop {
        if let Poll::Ready(out) = poll_once(&mut calls) {
            break out;
        }
        clock.advance_to_next_deadline().expect("stalled");
    };
    for (n, (outcome, ctx)) in outcomes.into_iter().enumerate() {
        assert_eq!(ctx, n as u32);
        if n <= 5 {
            assert_eq!(outcome, TimeoutOutcome::Completed(true), "call {n}");
        } else {
            assert!(outcome.is_timed_out(), "call {n}");
            assert!(!outcome.passed());
        }
    }
    assert_eq!(check.timeouts(), 4);
    assert_eq!(clock.pending_sleeps(), 0);
}

#[test]
fn a_timed_out_call_gives_back_the_limiter_permit_it_held() {
    let clock = ManualClock::new();
    let limited = Limited::new(sleeper(&clock, 60), 1, clock.clone()).unwrap();
    let check = Timeout::new(&limited, Duration::from_secs(5), clock.clone()).unwrap();
    let mut call = Box::pin(check.run(1));
    assert!(poll_once(&mut call).is_pending());
    assert_eq!(limited.available(), 0);
    clock.advance(Duration::from_secs(5));
    assert_eq!(poll_once(&mut call), Poll::Ready((false, 1)));
    assert_eq!(
        limited.available(),
        1,
        "released at the timeout, not at 60 s"
    );
}

#[test]
fn a_timed_out_waiter_leaves_the_limiter_queue() {
    let clock = ManualClock::new();
    let limited = Limited::new(sleeper(&clock, 60), 1, clock.clone()).unwrap();
    let check = Timeout::new(&limited, Duration::from_secs(5), clock.clone()).unwrap();
    let mut holder = Box::pin(limited.run(0));
    assert!(poll_once(&mut holder).is_pending());
    let mut waiter = Box::pin(check.run(1));
    assert!(poll_once(&mut waiter).is_pending());
    assert_eq!(limited.waiting(), 1);
    clock.advance(Duration::from_secs(5));
    assert_eq!(poll_once(&mut waiter), Poll::Ready((false, 1)));
    assert_eq!(limited.waiting(), 0);
    drop(holder);
    assert_eq!(limited.available(), 1);
}

#[test]
fn a_zero_timeout_is_refused() {
    let err = Timeout::new(
        rule(async |_: &u32| true),
        Duration::ZERO,
        ManualClock::new(),
    )
    .unwrap_err();
    assert_eq!(err.parameter(), "timeout");
    assert_eq!(
        err.to_string(),
        "invalid `timeout`: 0ns (expected a duration greater than zero)"
    );
}

#[test]
fn timeout_composes_with_the_algebra() {
    let clock = ManualClock::new();
    let check = Timeout::new(sleeper(&clock, 60), Duration::from_secs(1), clock.clone()).unwrap()
        | rule(async |n: &u32| *n == 1);
    let mut call = Box::pin(check.run(1));
    assert!(poll_once(&mut call).is_pending());
    clock.advance(Duration::from_secs(1));
    assert_eq!(poll_once(&mut call), Poll::Ready((true, 1)));
}
