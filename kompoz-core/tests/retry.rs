//! Retry under `ManualClock`: exact delays, attempt counts, early stop, hooks,
//! cancellation.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Waker};
use std::time::Duration;

mod support;
use support::ms;

use kompoz_core::{
    Backoff, Clock, Combinator, ConfigError, Instant, Jitter, ManualClock, Retry, rule, transform,
};

/// An inner combinator that records when each attempt starts and passes on
/// attempt `pass_on` (counted from 1; 0 = never).
fn recording(
    clock: &ManualClock,
    pass_on: u32,
) -> (impl Combinator<u32> + use<>, Rc<RefCell<Vec<Instant>>>) {
    let starts = Rc::new(RefCell::new(Vec::new()));
    let seen = Rc::clone(&starts);
    let clock = clock.clone();
    let inner = rule(async move |_: &u32| {
        seen.borrow_mut().push(clock.now());
        seen.borrow().len() as u32 == pass_on
    });
    (inner, starts)
}

/// What the `on_retry` hook saw: `(attempt, delay)` per call.
type HookLog = Rc<RefCell<Vec<(u32, Duration)>>>;

fn hook_log() -> (HookLog, impl Fn(u32, Duration) + Clone) {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = Rc::clone(&log);
    (log, move |attempt, delay| {
        l.borrow_mut().push((attempt, delay))
    })
}

fn at(ms_list: &[u64]) -> Vec<Instant> {
    ms_list
        .iter()
        .map(|&m| Instant::from_duration(ms(m)))
        .collect()
}

#[test]
fn fixed_delay_sequence_and_attempt_count() {
    let clock = ManualClock::new();
    let (inner, starts) = recording(&clock, 0);
    let (log, hook) = hook_log();
    let r = Retry::new(inner, 4, clock.clone())
        .unwrap()
        .fixed(ms(50))
        .on_retry(hook);
    let info = clock.block_on(r.run_with_info(9));
    assert!(!info.ok);
    assert_eq!(info.attempts, 4);
    assert!(!info.stopped_early);
    assert_eq!(info.ctx, 9);
    assert_eq!(*starts.borrow(), at(&[0, 50, 100, 150]));
    assert_eq!(*log.borrow(), vec![(1, ms(50)), (2, ms(50)), (3, ms(50))]);
    // No wait after the last attempt.
    assert_eq!(clock.now(), Instant::from_duration(ms(150)));
}

#[test]
fn exponential_delay_sequence_is_capped() {
    let clock = ManualClock::new();
    let (inner, starts) = recording(&clock, 0);
    let (log, hook) = hook_log();
    let r = Retry::new(inner, 7, clock.clone())
        .unwrap()
        .backoff(Backoff::exponential(ms(100), 2.0, ms(1000)).unwrap())
        .on_retry(hook);
    assert!(!clock.block_on(r.run(0)).0);
    let delays: Vec<Duration> = log.borrow().iter().map(|&(_, d)| d).collect();
    assert_eq!(
        delays,
        [100, 200, 400, 800, 1000, 1000].map(ms).to_vec(),
        "base·2ⁿ, capped at max_delay"
    );
    assert_eq!(*starts.borrow(), at(&[0, 100, 300, 700, 1500, 2500, 3500]));
}

#[test]
fn exponential_with_a_fractional_factor() {
    let clock = ManualClock::new();
    let (inner, _) = recording(&clock, 0);
    let (log, hook) = hook_log();
    let r = Retry::new(inner, 5, clock.clone())
        .unwrap()
        .backoff(Backoff::exponential(ms(100), 1.5, ms(300)).unwrap())
        .on_retry(hook);
    clock.block_on(r.run(0));
    let delays: Vec<Duration> = log.borrow().iter().map(|&(_, d)| d).collect();
    assert_eq!(delays, [100, 150, 225, 300].map(ms).to_vec());
}

#[test]
fn stops_at_the_first_success_with_its_context() {
    let clock = ManualClock::new();
    let runs = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&runs);
    // Each attempt tags the context with its number; the third passes.
    let inner = transform(async move |c: (u32, u32)| {
        let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
        (c.0, n)
    }) >> rule(async |c: &(u32, u32)| c.1 == 3);
    let (log, hook) = hook_log();
    let r = Retry::new(inner, 10, clock.clone())
        .unwrap()
        .fixed(ms(10))
        .on_retry(hook);
    let info = clock.block_on(r.run_with_info((7, 0)));
    assert!(info.ok);
    assert_eq!(info.attempts, 3);
    assert_eq!(info.ctx, (7, 3), "the passing attempt's context");
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert_eq!(log.borrow().len(), 2);
}

#[test]
fn every_attempt_starts_from_the_original_context() {
    let clock = ManualClock::new();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = Rc::clone(&seen);
    // Each attempt "damages" its context before failing.
    let inner = transform(async move |mut v: Vec<u32>| {
        s.borrow_mut().push(v.clone());
        v.push(99);
        v
    }) >> rule(async |_: &Vec<u32>| false);
    let r = Retry::new(inner, 3, clock.clone()).unwrap();
    let (ok, ctx) = clock.block_on(r.run(vec![1]));
    assert!(!ok);
    assert_eq!(*seen.borrow(), vec![vec![1], vec![1], vec![1]]);
    assert_eq!(ctx, vec![1, 99], "the last attempt's context comes back");
}

#[test]
fn stop_if_ends_retries_early() {
    let clock = ManualClock::new();
    let runs = Rc::new(AtomicU32::new(0));
    let r2 = Rc::clone(&runs);
    // Attempt 2 reports a permanent error (odd context).
    let inner = transform(async move |_: u32| r2.fetch_add(1, Ordering::SeqCst) + 1)
        >> rule(async |_: &u32| false);
    let (log, hook) = hook_log();
    let r = Retry::new(inner, 10, clock.clone())
        .unwrap()
        .fixed(ms(5))
        .on_retry(hook)
        .stop_if(|n: &u32| *n == 2);
    let info = clock.block_on(r.run_with_info(0));
    assert!(!info.ok);
    assert!(info.stopped_early);
    assert_eq!(info.attempts, 2);
    assert_eq!(info.ctx, 2);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(*log.borrow(), vec![(1, ms(5))], "no hook when giving up");
    assert_eq!(clock.now(), Instant::from_duration(ms(5)));
}

#[test]
fn a_single_attempt_never_waits_or_calls_the_hook() {
    let clock = ManualClock::new();
    let (inner, starts) = recording(&clock, 0);
    let (log, hook) = hook_log();
    let r = Retry::new(inner, 1, clock.clone())
        .unwrap()
        .fixed(ms(50))
        .on_retry(hook);
    let info = clock.block_on(r.run_with_info(1));
    assert_eq!((info.ok, info.attempts), (false, 1));
    assert_eq!(starts.borrow().len(), 1);
    assert!(log.borrow().is_empty());
    assert_eq!(clock.now(), Instant::ZERO);
}

#[test]
fn dropping_mid_sleep_cancels_the_wait_and_later_attempts() {
    let clock = ManualClock::new();
    let (inner, starts) = recording(&clock, 0);
    let r = Retry::new(inner, 5, clock.clone()).unwrap().fixed(ms(100));
    {
        let mut fut = Box::pin(r.run(0));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(starts.borrow().len(), 1);
        assert_eq!(clock.pending_sleeps(), 1, "waiting before attempt 2");
    }
    assert_eq!(clock.pending_sleeps(), 0, "the wait was cancelled");
    clock.advance(Duration::from_secs(10));
    assert_eq!(starts.borrow().len(), 1, "no attempt after the drop");
}

#[test]
fn dropping_mid_attempt_drops_the_attempt() {
    let clock = ManualClock::new();
    let finished = Rc::new(AtomicU32::new(0));
    let f = Rc::clone(&finished);
    let k = clock.clone();
    let slow = rule(async move |_: &u32| {
        k.sleep(Duration::from_secs(60)).await;
        f.fetch_add(1, Ordering::SeqCst);
        false
    });
    let r = Retry::new(slow, 3, clock.clone()).unwrap();
    {
        let mut fut = Box::pin(r.run(0));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(clock.pending_sleeps(), 1);
    }
    assert_eq!(clock.pending_sleeps(), 0);
    assert_eq!(finished.load(Ordering::SeqCst), 0);
}

#[test]
fn many_attempts_never_overflow_a_delay() {
    // tokio-retry's "too exponential" bug: large attempt numbers overflowed.
    let clock = ManualClock::new();
    let (inner, _) = recording(&clock, 0);
    let (log, hook) = hook_log();
    let r = Retry::new(inner, 1000, clock.clone())
        .unwrap()
        .backoff(
            Backoff::exponential(Duration::from_nanos(1), 10.0, Duration::from_secs(3600)).unwrap(),
        )
        .on_retry(hook);
    clock.block_on(r.run(0));
    let log = log.borrow();
    assert_eq!(log.len(), 999);
    assert!(log.windows(2).all(|w| w[0].1 <= w[1].1), "non-decreasing");
    assert_eq!(log.last().unwrap().1, Duration::from_secs(3600));

    // No cap at all (Duration::MAX) saturates instead of wrapping.
    let clock = ManualClock::new();
    let (inner, _) = recording(&clock, 0);
    let (log, hook) = hook_log();
    let r = Retry::new(inner, 200, clock.clone())
        .unwrap()
        .backoff(Backoff::exponential(Duration::from_secs(1), f64::MAX, Duration::MAX).unwrap())
        .on_retry(hook);
    clock.block_on(r.run(0));
    let log = log.borrow();
    assert_eq!(log[0].1, Duration::from_secs(1));
    assert!(
        log[1..]
            .iter()
            .all(|&(_, d)| d == Duration::from_nanos(u64::MAX))
    );
}

#[test]
fn full_jitter_is_bounded_and_reproducible_with_a_seed() {
    let delays = |seed: u64| {
        let clock = ManualClock::new();
        let (inner, _) = recording(&clock, 0);
        let (log, hook) = hook_log();
        let r = Retry::new(inner, 30, clock.clone())
            .unwrap()
            .backoff(Backoff::exponential(ms(100), 2.0, ms(2000)).unwrap())
            .jitter(Jitter::Full)
            .jitter_seed(seed)
            .on_retry(hook);
        clock.block_on(r.run(0));
        let total = clock.now().as_duration();
        let log = log.borrow().iter().map(|&(_, d)| d).collect::<Vec<_>>();
        assert_eq!(
            log.iter().sum::<Duration>(),
            total,
            "the clock waited what the hook saw"
        );
        log
    };
    let a = delays(7);
    let b = delays(7);
    let c = delays(8);
    assert_eq!(a, b, "same seed, same delays");
    assert_ne!(a, c, "another seed, other delays");
    let caps = [100, 200, 400, 800, 1600].map(ms);
    for (i, d) in a.iter().enumerate() {
        let cap = caps.get(i).copied().unwrap_or(ms(2000));
        assert!(*d <= cap, "delay {i} = {d:?} above {cap:?}");
    }
    // Spread over the range, not stuck at one end.
    assert!(a.iter().any(|d| *d < ms(1000)) && a.iter().any(|d| *d > ms(1000)));
}

#[test]
fn additive_jitter_adds_up_to_its_bound() {
    let clock = ManualClock::new();
    let (inner, _) = recording(&clock, 0);
    let (log, hook) = hook_log();
    let r = Retry::new(inner, 50, clock.clone())
        .unwrap()
        .fixed(ms(100))
        .jitter(Jitter::Additive(ms(10)))
        .jitter_seed(1)
        .on_retry(hook);
    clock.block_on(r.run(0));
    let log = log.borrow();
    assert!(log.iter().all(|&(_, d)| d >= ms(100) && d <= ms(110)));
    assert!(log.iter().any(|&(_, d)| d != log[0].1), "the jitter varies");
}

#[test]
fn bad_configuration_is_refused_with_parameter_and_value() {
    let clock = ManualClock::new();
    let inner = || rule(async |_: &u32| true);

    let err = Retry::new(inner(), 0, clock.clone()).unwrap_err();
    assert_eq!(err.parameter(), "max_attempts");
    assert_eq!(
        err.to_string(),
        "invalid `max_attempts`: 0 (expected at least 1)"
    );

    let err = Backoff::exponential(ms(10), 0.5, ms(100)).unwrap_err();
    assert_eq!(err.parameter(), "factor");
    assert!(err.to_string().contains("0.5"), "{err}");

    for bad in [f64::NAN, f64::INFINITY, -2.0] {
        assert_eq!(
            Backoff::exponential(ms(10), bad, ms(100))
                .unwrap_err()
                .parameter(),
            "factor"
        );
    }

    let err = Backoff::exponential(ms(100), 2.0, ms(50)).unwrap_err();
    assert!(
        matches!(
            &err,
            ConfigError::Invalid { parameter: "max_delay", value, .. } if value == "50ms"
        ),
        "{err:?}"
    );

    // A factor of exactly 1 and max == base are fine (a constant delay).
    assert!(Backoff::exponential(ms(100), 1.0, ms(100)).is_ok());
}

#[test]
fn a_retry_over_send_parts_is_send_and_sync() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    let r = Retry::new(rule(async |n: &u32| *n > 0), 3, ManualClock::new())
        .unwrap()
        .backoff(Backoff::exponential(ms(1), 2.0, ms(10)).unwrap())
        .on_retry(|_, _| {})
        .stop_if(|_: &u32| false);
    assert_send_sync(&r);
    assert_send(&r.run(1));
    let r = r & rule(async |n: &u32| *n < 10);
    assert!(futures::executor::block_on(r.run(3)).0);
}

#[test]
fn backoff_delay_follows_the_documented_rounding_and_cap() {
    // 1 ns × 1.5ⁿ, rounded down: 1, 1, 2, 3, 5, 7, 11 (as `Backoff::exponential` documents).
    let b = Backoff::exponential(Duration::from_nanos(1), 1.5, Duration::from_nanos(10)).unwrap();
    let waits: Vec<u128> = (1..=8).map(|n| b.delay(n).as_nanos()).collect();
    assert_eq!(waits, [1, 1, 2, 3, 5, 7, 10, 10]);
    assert_eq!(b.delay(0), b.delay(1));
    assert_eq!(b.delay(u32::MAX).as_nanos(), 10);
}

/// `Backoff::delay` against the step-by-step schedule it must equal (the
/// loop it used to run for every call), for many attempts and settings,
/// factor 1 included; and a huge attempt number with factor 1 and no real
/// cap, which used to walk every attempt, returns at once.
#[test]
fn backoff_delay_equals_the_stepwise_schedule() {
    /// The schedule, one multiplication per attempt, as `Retry` walks it.
    fn stepwise(base: Duration, factor: f64, max: Duration, attempts: u32) -> Vec<u64> {
        let max = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        let mut current = u64::try_from(base.as_nanos()).unwrap_or(u64::MAX);
        let mut exact = current as f64;
        let mut out = vec![current];
        for _ in 1..attempts {
            if current < max {
                exact *= factor;
                current = if exact >= max as f64 {
                    max
                } else {
                    (exact as u64).clamp(current, max)
                };
            }
            out.push(current);
        }
        out
    }
    let attempts = if cfg!(miri) { 40 } else { 3_000 };
    let ns = Duration::from_nanos;
    for (base, factor, max) in [
        (ns(1), 1.0, ns(10)),
        (ns(7), 1.0, Duration::MAX),
        (ns(1), 1.5, ns(10)),
        (ms(1), 1.01, Duration::MAX),
        (ms(100), 1.1, Duration::from_secs(3600)),
        (ns(3), 2.0, Duration::MAX),
        (ms(100), 2.0, ms(10_000)),
        (ns(123_456_789), 3.7, Duration::MAX),
    ] {
        let b = Backoff::exponential(base, factor, max).unwrap();
        let expected = stepwise(base, factor, max, attempts);
        for (n, &want) in (1..=attempts).zip(&expected) {
            assert_eq!(b.delay(n).as_nanos(), u128::from(want), "{b:?} attempt {n}");
        }
    }
    let flat = Backoff::exponential(ms(5), 1.0, Duration::MAX).unwrap();
    assert_eq!(flat.delay(u32::MAX), ms(5));
    let grows = Backoff::exponential(ms(1), 1.01, Duration::MAX).unwrap();
    assert_eq!(grows.delay(u32::MAX).as_nanos(), u128::from(u64::MAX));
}

/// Clones of a jittered policy (one per client, say) must not retry in
/// lock-step: each clone draws its own stream.
#[test]
fn cloned_jittered_policies_draw_their_own_delays() {
    use std::sync::Mutex;

    use kompoz_core::ClockExt;
    use kompoz_core::call::Error;

    let clock = ManualClock::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&log);
    let policy = clock
        .policy()
        .retry(4)
        .unwrap()
        .backoff(Backoff::exponential(ms(100), 2.0, ms(10_000)).unwrap())
        .jitter(Jitter::Full)
        .on_retry(move |_, delay: Duration, _: &Error<()>| seen.lock().unwrap().push(delay));
    let mut per_clone = Vec::new();
    for clone in (0..3).map(|_| policy.clone()) {
        log.lock().unwrap().clear();
        let _ = clock.block_on(clone.call(|| async { Err::<(), ()>(()) }));
        per_clone.push(log.lock().unwrap().clone());
    }
    assert_eq!(per_clone[0].len(), 3);
    assert_ne!(per_clone[0], per_clone[1]);
    assert_ne!(per_clone[1], per_clone[2]);
}
