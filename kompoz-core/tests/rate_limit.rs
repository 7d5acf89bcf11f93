//! Rate limits under `ManualClock`: exact slot times, burst, modes, shared
//! names, cancellation, and long runs without spurious rejections.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::future::join_all;
mod support;
use support::ms;

use kompoz_core::{
    Clock, Combinator, ConfigError, Instant, LimitMode, ManualClock, RateLimit, RateLimited,
    Registry, limiter::LimitOutcome, rule,
};

fn poll_once<F: Future>(fut: &mut std::pin::Pin<Box<F>>) -> Poll<F::Output> {
    fut.as_mut().poll(&mut Context::from_waker(Waker::noop()))
}

fn at_ms(list: &[u64]) -> Vec<Instant> {
    list.iter()
        .map(|&m| Instant::from_duration(ms(m)))
        .collect()
}

/// A passing inner combinator that records when it ran.
type Starts = Rc<RefCell<Vec<Instant>>>;

fn recording(clock: &ManualClock) -> (impl Combinator<u32> + use<>, Starts) {
    let starts = Rc::new(RefCell::new(Vec::new()));
    let seen = Rc::clone(&starts);
    let clock = clock.clone();
    let inner = rule(async move |_: &u32| {
        seen.borrow_mut().push(clock.now());
        true
    });
    (inner, starts)
}

#[test]
fn n_calls_per_period_and_the_next_waits_exactly_for_its_slot() {
    let clock = ManualClock::new();
    let (inner, starts) = recording(&clock);
    let limited = RateLimited::new(inner, RateLimit::per_second(5).unwrap(), clock.clone());
    let results = clock.block_on(join_all((0..6).map(|i| limited.run(i))));
    assert!(results.iter().all(|(ok, _)| *ok));
    assert_eq!(
        *starts.borrow(),
        at_ms(&[0, 200, 400, 600, 800, 1000]),
        "5 calls within the first second, evenly spaced; the 6th at 1 s"
    );
    assert_eq!(limited.rejected(), 0);
}

#[test]
fn burst_lets_calls_through_at_once_then_refills_one_interval_at_a_time() {
    let clock = ManualClock::new();
    let (inner, starts) = recording(&clock);
    let limit = RateLimit::with_burst(10, Duration::from_secs(1), 5).unwrap();
    let limited = RateLimited::new(inner, limit, clock.clone());
    clock.block_on(join_all((0..7).map(|i| limited.run(i))));
    assert_eq!(*starts.borrow(), at_ms(&[0, 0, 0, 0, 0, 100, 200]));

    // A long quiet spell refills the burst, but no further.
    clock.advance(Duration::from_secs(10));
    starts.borrow_mut().clear();
    clock.block_on(join_all((0..6).map(|i| limited.run(i))));
    assert_eq!(
        *starts.borrow(),
        at_ms(&[10_200, 10_200, 10_200, 10_200, 10_200, 10_300])
    );
}

#[test]
fn reject_mode_turns_away_calls_over_the_rate_without_running_them() {
    let clock = ManualClock::new();
    let (inner, starts) = recording(&clock);
    let limit = RateLimit::with_burst(1, Duration::from_secs(1), 3).unwrap();
    let limited = RateLimited::new(inner, limit, clock.clone()).reject_when_full();
    assert_eq!(limited.mode(), LimitMode::Reject);
    let outcomes = clock.block_on(join_all((0..4).map(|i| limited.run_with_outcome(i))));
    assert_eq!(
        outcomes,
        vec![
            (LimitOutcome::Ran(true), 0),
            (LimitOutcome::Ran(true), 1),
            (LimitOutcome::Ran(true), 2),
            (LimitOutcome::Rejected, 3),
        ]
    );
    assert_eq!(starts.borrow().len(), 3, "the rejected call never ran");
    assert_eq!(limited.rejected(), 1);
    assert_eq!(clock.now(), Instant::ZERO, "nothing waited");

    clock.advance(ms(999));
    assert_eq!(
        clock.block_on(limited.run(5)),
        (false, 5),
        "the slot is not due yet"
    );
    clock.advance(ms(1));
    assert_eq!(
        clock.block_on(limited.run(6)),
        (true, 6),
        "exactly at its slot"
    );
    assert_eq!(clock.block_on(limited.run(7)), (false, 7));
    assert_eq!(limited.rejected(), 3);
}

#[test]
fn wait_at_most_waits_only_for_a_slot_within_the_bound() {
    let clock = ManualClock::new();
    let (inner, starts) = recording(&clock);
    let limit = RateLimit::per_second(1).unwrap();
    let short = RateLimited::new(inner, limit, clock.clone()).wait_at_most(ms(500));
    assert!(clock.block_on(short.run(0)).0);
    // The next slot is 1 s away: rejected at once, not after 500 ms in vain.
    assert_eq!(
        clock.block_on(short.run_with_outcome(1)),
        (LimitOutcome::Rejected, 1)
    );
    assert_eq!(clock.now(), Instant::ZERO);

    clock.advance(ms(600)); // the slot is now 400 ms away
    assert!(clock.block_on(short.run(2)).0);
    assert_eq!(
        *starts.borrow(),
        at_ms(&[0, 1000]),
        "waited exactly for its slot"
    );
    assert_eq!(short.rejected(), 1);
}

#[test]
fn a_shared_name_shares_the_budget() {
    let registry = Registry::new();
    let clock = ManualClock::new();
    let limit = RateLimit::with_burst(2, Duration::from_secs(1), 2).unwrap();
    let (a_inner, a_starts) = recording(&clock);
    let (b_inner, b_starts) = recording(&clock);
    let a = RateLimited::named(a_inner, limit, "api", &registry, clock.clone())
        .unwrap()
        .reject_when_full();
    let b = RateLimited::named(b_inner, limit, "api", &registry, clock.clone())
        .unwrap()
        .reject_when_full();
    assert_eq!(a.name(), Some("api"));
    assert_eq!(registry.rate_limit_names(), vec!["api".to_string()]);
    assert!(clock.block_on(a.run(1)).0);
    assert!(clock.block_on(b.run(2)).0);
    assert!(
        !clock.block_on(a.run(3)).0,
        "two calls spent the shared budget"
    );
    assert!(!clock.block_on(b.run(4)).0);
    assert_eq!((a_starts.borrow().len(), b_starts.borrow().len()), (1, 1));

    // Another name has a budget of its own; a pool may use the same name.
    let (c_inner, _) = recording(&clock);
    let c = RateLimited::named(c_inner, limit, "other", &registry, clock.clone())
        .unwrap()
        .reject_when_full();
    assert!(clock.block_on(c.run(5)).0);
    assert!(registry.pool("api", 3).is_ok());
}

#[test]
fn a_name_in_use_with_another_limit_or_clock_is_refused() {
    let registry = Registry::new();
    let clock = ManualClock::new();
    let limit = RateLimit::per_second(10).unwrap();
    let inner = || rule(async |_: &u32| true);
    let _first = RateLimited::named(inner(), limit, "api", &registry, clock.clone()).unwrap();

    let err = RateLimited::named(
        inner(),
        RateLimit::per_second(20).unwrap(),
        "api",
        &registry,
        clock.clone(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "name \"api\" is already registered with `rate` = 10, but 20 was requested"
    );
    let err = RateLimited::named(
        inner(),
        RateLimit::new(10, ms(500)).unwrap(),
        "api",
        &registry,
        clock.clone(),
    )
    .unwrap_err();
    assert_eq!(err.parameter(), "period");
    let err = RateLimited::named(
        inner(),
        RateLimit::with_burst(limit.rate(), limit.period(), 3).unwrap(),
        "api",
        &registry,
        clock.clone(),
    )
    .unwrap_err();
    assert_eq!(err.parameter(), "burst");

    let err = RateLimited::named(inner(), limit, "api", &registry, OtherClock(clock.clone()))
        .unwrap_err();
    assert!(
        matches!(&err, ConfigError::NameConflict { parameter: "clock", requested, .. } if requested.contains("OtherClock")),
        "{err}"
    );
    assert_eq!(
        RateLimited::named(inner(), limit, "", &registry, clock.clone())
            .unwrap_err()
            .parameter(),
        "name"
    );

    // Once every limiter using the name is gone, it can be registered afresh.
    drop(_first);
    assert!(
        RateLimited::named(
            inner(),
            RateLimit::per_second(20).unwrap(),
            "api",
            &registry,
            clock
        )
        .is_ok()
    );
}

/// A second clock type, to share a name across clock types.
#[derive(Clone)]
struct OtherClock(ManualClock);

impl Clock for OtherClock {
    type Sleep = <ManualClock as Clock>::Sleep;
    fn now(&self) -> Instant {
        self.0.now()
    }
    fn sleep(&self, d: Duration) -> Self::Sleep {
        self.0.sleep(d)
    }
}

#[test]
fn limiters_sharing_a_name_read_the_first_limiters_clock() {
    // Runtime clocks of one type can count from different origins; a shared
    // budget must be on one timeline.
    let registry = Registry::new();
    let first_clock = ManualClock::new();
    first_clock.advance(Duration::from_secs(100));
    let late_clock = ManualClock::new(); // another timeline, at 0
    let limit = RateLimit::per_minute(1).unwrap();
    let a = RateLimited::named(
        rule(async |_: &()| true),
        limit,
        "x",
        &registry,
        first_clock.clone(),
    )
    .unwrap()
    .reject_when_full();
    let b = RateLimited::named(
        rule(async |_: &()| true),
        limit,
        "x",
        &registry,
        late_clock.clone(),
    )
    .unwrap()
    .reject_when_full();
    assert!(first_clock.block_on(a.run(())).0);
    assert!(!first_clock.block_on(b.run(())).0);
    first_clock.advance(Duration::from_secs(60));
    assert!(
        first_clock.block_on(b.run(())).0,
        "b reads the first clock: its slot came at 160 s"
    );
}

#[test]
fn a_cancelled_waiter_gives_its_slot_back_when_it_is_the_last() {
    let clock = ManualClock::new();
    let (inner, starts) = recording(&clock);
    let limited = RateLimited::new(inner, RateLimit::per_second(1).unwrap(), clock.clone());
    assert!(clock.block_on(limited.run(0)).0);
    {
        let mut waiting = Box::pin(limited.run(1));
        assert!(poll_once(&mut waiting).is_pending());
        assert_eq!(clock.pending_sleeps(), 1);
    }
    assert_eq!(clock.pending_sleeps(), 0, "the wait was cancelled");
    // The next caller gets the 1 s slot the dropped one had reserved.
    assert!(clock.block_on(limited.run(2)).0);
    assert_eq!(*starts.borrow(), at_ms(&[0, 1000]));
}

#[test]
fn a_cancelled_waiter_with_later_waiters_leaves_its_slot_spent() {
    let clock = ManualClock::new();
    let (inner, starts) = recording(&clock);
    let limited = RateLimited::new(inner, RateLimit::per_second(1).unwrap(), clock.clone());
    assert!(clock.block_on(limited.run(0)).0);
    let mut second = Box::pin(limited.run(1)); // slot at 1 s
    let mut third = Box::pin(limited.run(2)); // slot at 2 s
    assert!(poll_once(&mut second).is_pending());
    assert!(poll_once(&mut third).is_pending());
    drop(second);
    // The third keeps its slot; a fourth comes after it, never before.
    let fourth = limited.run(3);
    let (r3, r4) = clock.block_on(futures::future::join(third, fourth));
    assert!(r3.0 && r4.0);
    assert_eq!(*starts.borrow(), at_ms(&[0, 2000, 3000]));
}

#[test]
fn no_spurious_rejections_over_a_long_run() {
    // 7 per second: an interval of 142_857_142.857… ns, rounded up to
    // 142_857_143 so that the rate is never exceeded. Callers arriving at
    // that interval are never turned away over 100_000 calls (about 4 hours).
    let clock = ManualClock::new();
    let limit = RateLimit::per_second(7).unwrap();
    assert_eq!(limit.emission_interval(), Duration::from_nanos(142_857_143));
    let limited =
        RateLimited::new(rule(async |_: &()| true), limit, clock.clone()).reject_when_full();
    for k in 0..100_000u64 {
        let t = k * 142_857_143;
        clock.advance_to(Instant::from_nanos(t));
        assert!(
            clock.block_on(limited.run(())).0,
            "call {k} at {t} ns rejected"
        );
    }
    assert_eq!(limited.rejected(), 0);
}

#[test]
fn a_long_run_never_exceeds_the_rate() {
    // Callers every 3 ms for 100 s against 7 per second, burst 1: every
    // window of one second holds at most 7 admitted calls.
    let clock = ManualClock::new();
    let limited = RateLimited::new(
        rule(async |_: &()| true),
        RateLimit::per_second(7).unwrap(),
        clock.clone(),
    )
    .reject_when_full();
    let mut admitted = Vec::new();
    for _ in 0..(100_000 / 3) {
        if clock.block_on(limited.run(())).0 {
            admitted.push(clock.now().as_nanos());
        }
        clock.advance(ms(3));
    }
    let interval = 1_000_000_000 / 7;
    assert!(admitted.windows(2).all(|w| w[1] - w[0] >= interval));
    assert!(
        admitted
            .windows(8)
            .all(|w| w[7] - w[0] >= 1_000_000_000 - 7)
    );
    assert!(
        admitted.len() >= 690,
        "the rate is used, not starved: {}",
        admitted.len()
    );
}

#[test]
fn time_near_the_end_of_the_clock_saturates() {
    let clock = ManualClock::new();
    clock.advance_to(Instant::from_nanos(u64::MAX - 10));
    let limited = RateLimited::new(
        rule(async |_: &()| true),
        RateLimit::per_second(1).unwrap(),
        clock.clone(),
    )
    .reject_when_full();
    assert!(clock.block_on(limited.run(())).0);
    assert!(!clock.block_on(limited.run(())).0);
}

#[test]
fn bad_configuration_is_refused_with_parameter_and_value() {
    let err = RateLimit::new(0, Duration::from_secs(1)).unwrap_err();
    assert_eq!(err.to_string(), "invalid `rate`: 0 (expected at least 1)");
    let err = RateLimit::new(5, Duration::ZERO).unwrap_err();
    assert_eq!(err.parameter(), "period");
    assert!(err.to_string().contains("0ns"), "{err}");
    let err = RateLimit::with_burst(5, Duration::from_secs(1), 0).unwrap_err();
    assert_eq!(err.to_string(), "invalid `burst`: 0 (expected at least 1)");
    let err = RateLimit::new(3, Duration::from_nanos(2)).unwrap_err();
    assert_eq!(err.parameter(), "rate");
    assert!(RateLimit::new(2, Duration::from_nanos(2)).is_ok());

    let limited = RateLimited::new(
        rule(async |_: &()| true),
        RateLimit::per_minute(1).unwrap(),
        ManualClock::new(),
    );
    // Waiting at most no time is rejecting at once.
    let limited = limited.wait_at_most(Duration::ZERO);
    assert_eq!(limited.mode(), LimitMode::Reject);
    futures::executor::block_on(async {
        assert!(limited.run(()).await.0);
        assert!(
            !limited.run(()).await.0,
            "over the rate: rejected, not queued"
        );
    });
    assert_eq!(limited.rejected(), 1);
}

#[test]
fn a_rate_limited_combinator_is_send_and_sync_and_composes() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    let limited = RateLimited::new(
        rule(async |n: &u32| *n > 0),
        RateLimit::per_second(10).unwrap(),
        ManualClock::new(),
    );
    assert_send_sync(&limited);
    assert_send(&limited.run(1));
    let both = limited & rule(async |n: &u32| *n < 10);
    assert_eq!(futures::executor::block_on(both.run(3)), (true, 3));
}
