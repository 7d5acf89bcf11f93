//! Configured extremes, per combinator: 1 ns, `Duration::MAX`, `u32::MAX`
//! (or the largest capacity), and rates that do not divide evenly. Each is
//! either refused at construction with a `ConfigError` naming the parameter
//! and value, or works as documented: a saturated duration means "as good
//! as forever", never "no limit". Everything runs on a `ManualClock`, so even
//! a 584-year wait costs nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join;
use kompoz_core::{
    Backoff, Breaker, CircuitState, Clock, Combinator, ConfigError, Instant, Jitter, Limited,
    ManualClock, RateLimit, RateLimited, Retry, Semaphore, SlidingWindow, Timeout,
    limiter::LimitOutcome, parallel_and, parallel_or, rule, timeout::TimeoutOutcome,
};
use kompoz_tests::block_on_manual;

const NS: Duration = Duration::from_nanos(1);
const MS: Duration = Duration::from_millis(1);
const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

fn refused<T>(result: Result<T, ConfigError>, parameter: &str, value: &str) {
    let Err(err) = result else {
        panic!("`{parameter}` = {value} was accepted")
    };
    assert_eq!(err.parameter(), parameter, "{err}");
    assert!(
        err.to_string().contains(value),
        "{err} does not show {value}"
    );
}

/// An inner combinator that sleeps `d` on `clock`, then passes.
fn sleeper(
    clock: &ManualClock,
    d: Duration,
) -> kompoz_core::leaf::Rule<impl AsyncFn(&u32) -> bool + use<>> {
    let clock = clock.clone();
    rule(async move |_: &u32| {
        clock.sleep(d).await;
        true
    })
}

#[test]
fn timeout_extremes() {
    // 1 ns: a call that is ready at once still completes (no timer exists
    // before the first poll); one that waits at all times out.
    let clock = ManualClock::new();
    let t = Timeout::new(rule(async |_: &u32| true), NS, clock.clone()).unwrap();
    assert_eq!(block_on_manual(&clock, t.run(1)), (true, 1));
    let t = Timeout::new(sleeper(&clock, NS), NS, clock.clone()).unwrap();
    let (outcome, _) = block_on_manual(&clock, t.run_with_outcome(1));
    // The inner sleep and the timeout end at the same instant; either way
    // nothing is left behind.
    assert!(matches!(
        outcome,
        TimeoutOutcome::TimedOut | TimeoutOutcome::Completed(true)
    ));
    let t = Timeout::new(sleeper(&clock, MS), NS, clock.clone()).unwrap();
    assert_eq!(
        block_on_manual(&clock, t.run_with_outcome(1)).0,
        TimeoutOutcome::TimedOut
    );
    assert_eq!(clock.pending_sleeps(), 0);
    // Duration::MAX: as good as no timeout, a century-long call completes.
    let clock = ManualClock::new();
    let t = Timeout::new(sleeper(&clock, 100 * YEAR), Duration::MAX, clock.clone()).unwrap();
    assert_eq!(
        block_on_manual(&clock, t.run_with_outcome(1)).0,
        TimeoutOutcome::Completed(true)
    );
    assert_eq!((t.timeouts(), clock.pending_sleeps()), (0, 0));
}

#[test]
fn limiter_extremes() {
    // The largest capacity: calls run, every permit comes back.
    let clock = ManualClock::new();
    let l = Limited::new(sleeper(&clock, MS), Semaphore::MAX_PERMITS, clock.clone()).unwrap();
    let (a, b) = block_on_manual(&clock, join(l.run(1), l.run(2)));
    assert!(a.0 && b.0);
    assert_eq!(l.available(), Semaphore::MAX_PERMITS);
    refused(
        Limited::new(
            sleeper(&clock, MS),
            Semaphore::MAX_PERMITS + 1,
            clock.clone(),
        ),
        "max_concurrent",
        &(Semaphore::MAX_PERMITS + 1).to_string(),
    );
    // wait_at_most(1 ns): the second call gives up after 1 ns.
    let l = Limited::new(sleeper(&clock, MS), 1, clock.clone())
        .unwrap()
        .wait_at_most(NS);
    let ((a, _), (b, _)) =
        block_on_manual(&clock, join(l.run_with_outcome(1), l.run_with_outcome(2)));
    assert_eq!((a, b), (LimitOutcome::Ran(true), LimitOutcome::Rejected));
    assert_eq!((l.available(), l.waiting()), (1, 0));
    // wait_at_most(Duration::MAX): waits as long as it takes.
    let clock = ManualClock::new();
    let l = Limited::new(sleeper(&clock, 100 * YEAR), 1, clock.clone())
        .unwrap()
        .wait_at_most(Duration::MAX);
    let ((a, _), (b, _)) =
        block_on_manual(&clock, join(l.run_with_outcome(1), l.run_with_outcome(2)));
    assert_eq!((a, b), (LimitOutcome::Ran(true), LimitOutcome::Ran(true)));
    assert_eq!(
        (l.available(), l.waiting(), clock.pending_sleeps()),
        (1, 0, 0)
    );
}

/// How many of `n` calls, one every `step`, a reject-mode limiter admits.
fn admitted(limit: RateLimit, n: usize, step: Duration) -> usize {
    let clock = ManualClock::new();
    let l = RateLimited::new(rule(async |_: &()| true), limit, clock.clone()).reject_when_full();
    (0..n)
        .filter(|_| {
            let ran = block_on_manual(&clock, l.run(())).0;
            clock.advance(step);
            ran
        })
        .count()
}

#[test]
fn rate_limit_extremes() {
    // u32::MAX calls per period: above one per nanosecond is refused...
    refused(
        RateLimit::new(u32::MAX, Duration::from_secs(1)),
        "rate",
        "4294967295",
    );
    // ...at or below it, the interval rounds up and the rate holds.
    let limit = RateLimit::new(u32::MAX, Duration::from_secs(5)).unwrap();
    assert_eq!(limit.emission_interval(), 2 * NS); // 1.164… ns, rounded up
    assert!(admitted(limit, 1_000, NS) <= 501);
    // 1 call per ns, the largest burst: the whole burst at once, then one per ns.
    let limit = RateLimit::with_burst(1, NS, u32::MAX).unwrap();
    assert_eq!(admitted(limit, 1_000, Duration::ZERO), 1_000);
    // Duration::MAX: one call per 584 years and more does not fit the clock.
    refused(
        RateLimit::new(1, Duration::MAX),
        "period",
        &format!("{:?}", Duration::MAX),
    );
    // Spread over u32::MAX calls it fits, with a burst of 2 but not 3
    // (burst × interval must stay within 292 years).
    assert!(RateLimit::new(u32::MAX, Duration::MAX).is_ok());
    refused(
        RateLimit::with_burst(u32::MAX, Duration::MAX, 3),
        "burst",
        "3",
    );
    let limit = RateLimit::with_burst(u32::MAX, Duration::MAX, 2).unwrap();
    assert_eq!(
        admitted(limit, 10, YEAR),
        2,
        "two at once, then none for ages"
    );
    // Far ahead on the clock's timeline the limit still holds: near its end
    // a call whose slot does not fit is refused, never admitted for free.
    let clock = ManualClock::new();
    clock.advance_to(Instant::from_nanos(u64::MAX - 3 * YEAR.as_nanos() as u64));
    let l = RateLimited::new(
        rule(async |_: &()| true),
        RateLimit::with_burst(1, YEAR, 2).unwrap(),
        clock.clone(),
    )
    .reject_when_full();
    let ran: Vec<bool> = (0..6)
        .map(|_| {
            let ran = block_on_manual(&clock, l.run(())).0;
            clock.advance(YEAR / 2);
            ran
        })
        .collect();
    // An unbounded timeline would admit 4 of these 6 (t = 0, ½, 1, 2 years);
    // where a slot would pass the clock's end the call is refused instead.
    assert_eq!(ran, [true, true, true, false, false, false]);
    // Rates that round: 3 per 10 ns spaces calls 4 ns apart, never 3.
    let limit = RateLimit::new(3, 10 * NS).unwrap();
    assert_eq!(limit.emission_interval(), 4 * NS);
    assert!(admitted(limit, 1_000, NS) <= 300 + 1);
    let limit = RateLimit::with_burst(3, 10 * NS, 3).unwrap();
    assert!(admitted(limit, 1_000, NS) <= 300 + 3);
}

#[test]
fn breaker_extremes() {
    let clock = ManualClock::new();
    let failing = |b: &Breaker<ManualClock>| b.guard(rule(async |_: &u32| false));
    let passing = |b: &Breaker<ManualClock>| b.guard(rule(async |_: &u32| true));
    // Counts: 1 and 65535 are valid, u32::MAX is refused by name.
    refused(
        Breaker::builder(clock.clone())
            .failure_threshold(u32::MAX)
            .build(),
        "failure_threshold",
        "4294967295",
    );
    refused(
        Breaker::builder(clock.clone())
            .half_open_max_calls(u32::MAX)
            .build(),
        "half_open_max_calls",
        "4294967295",
    );
    refused(
        Breaker::builder(clock.clone())
            .failure_rate(50.0)
            .sliding_window(SlidingWindow::Count(u32::MAX))
            .build(),
        "sliding_window",
        "4294967295",
    );
    let b = Breaker::builder(clock.clone())
        .failure_threshold(65_535)
        .half_open_max_calls(65_535)
        .build()
        .unwrap();
    for _ in 0..1_000 {
        block_on_manual(&clock, failing(&b).run(0));
    }
    assert_eq!(b.stats().consecutive_failures, 1_000);

    // recovery_timeout(1 ns): the next nanosecond brings the probe.
    let b = Breaker::builder(clock.clone())
        .failure_threshold(1)
        .recovery_timeout(NS)
        .build()
        .unwrap();
    block_on_manual(&clock, failing(&b).run(0));
    assert_eq!(b.state(), CircuitState::Open);
    clock.advance(NS);
    assert!(block_on_manual(&clock, passing(&b).run(0)).0);
    assert_eq!(b.state(), CircuitState::Closed);

    // recovery_timeout(Duration::MAX): open for as long as the clock runs.
    let clock = ManualClock::new();
    let b = Breaker::builder(clock.clone())
        .failure_threshold(1)
        .recovery_timeout(Duration::MAX)
        .backoff(f64::MAX, Duration::MAX)
        .jitter_fraction(1.0)
        .jitter_seed(7)
        .build()
        .unwrap();
    block_on_manual(&clock, failing(&b).run(0));
    clock.advance(300 * YEAR);
    assert_eq!(block_on_manual(&clock, passing(&b).run(1)), (false, 1));
    assert_eq!(b.state(), CircuitState::Open);
    assert!(b.stats().next_open_duration >= Duration::from_nanos(u64::MAX / 2));

    // An open period grown by back-off is never shorter than the
    // recovery timeout, even where `f64` cannot hold it exactly.
    let clock = ManualClock::new();
    let recovery = Duration::from_nanos((1 << 60) + 1);
    let b = Breaker::builder(clock.clone())
        .failure_threshold(1)
        .recovery_timeout(recovery)
        .backoff(1.0, Duration::MAX)
        .build()
        .unwrap();
    block_on_manual(&clock, failing(&b).run(0));
    assert_eq!(b.stats().next_open_duration, recovery);
    assert_eq!(
        b.stats().open_until,
        Some(Instant::ZERO.saturating_add(recovery))
    );

    // Slow-call thresholds: 1 ns (any call that takes time is slow) and
    // Duration::MAX (none is).
    for (threshold, slow) in [(NS, 1), (Duration::MAX, 0)] {
        let clock = ManualClock::new();
        let b = Breaker::builder(clock.clone())
            .slow_calls(threshold, 100.0)
            .sliding_window(SlidingWindow::Count(10))
            .build()
            .unwrap();
        block_on_manual(&clock, b.guard(sleeper(&clock, NS)).run(0));
        block_on_manual(&clock, passing(&b).run(0)); // takes no time
        assert_eq!(b.stats().slow_call_count, slow, "{threshold:?}");
    }

    // Time windows: 1 ns in 1 bucket, Duration::MAX in the most buckets.
    for window in [
        SlidingWindow::Time {
            duration: NS,
            buckets: 1,
        },
        SlidingWindow::Time {
            duration: Duration::MAX,
            buckets: 100_000,
        },
    ] {
        let clock = ManualClock::new();
        let b = Breaker::builder(clock.clone())
            .failure_rate(50.0)
            .sliding_window(window)
            .minimum_calls(2)
            .build()
            .unwrap();
        block_on_manual(&clock, failing(&b).run(0));
        block_on_manual(&clock, failing(&b).run(0));
        assert_eq!(b.state(), CircuitState::Open, "{window:?}");
    }
    refused(
        Breaker::builder(clock.clone())
            .failure_rate(50.0)
            .sliding_window(SlidingWindow::Time {
                duration: NS,
                buckets: 2,
            })
            .build(),
        "sliding_window",
        "buckets: 2",
    );
}

#[test]
fn retry_extremes() {
    // u32::MAX attempts: runs until the first pass.
    let clock = ManualClock::new();
    let calls = Arc::new(Mutex::new(0));
    let c = Arc::clone(&calls);
    let r = Retry::new(
        rule(async move |_: &()| {
            let mut n = c.lock().unwrap();
            *n += 1;
            *n == 3
        }),
        u32::MAX,
        clock.clone(),
    )
    .unwrap();
    let info = block_on_manual(&clock, r.run_with_info(()));
    assert_eq!((info.ok, info.attempts), (true, 3));

    // Duration::MAX delays saturate at u64::MAX ns (about 584 years), with
    // additive jitter on top too: no overflow, no panic.
    let clock = ManualClock::new();
    let delays = Arc::new(Mutex::new(Vec::new()));
    let d = Arc::clone(&delays);
    let r = Retry::new(rule(async |_: &()| false), 3, clock.clone())
        .unwrap()
        .fixed(Duration::MAX)
        .jitter(Jitter::Additive(Duration::MAX))
        .jitter_seed(1)
        .on_retry(move |_, delay| d.lock().unwrap().push(delay));
    assert!(!block_on_manual(&clock, r.run(())).0);
    let max = Duration::from_nanos(u64::MAX);
    assert_eq!(*delays.lock().unwrap(), [max, max]);

    // exponential(1 ns, f64::MAX, Duration::MAX): 1 ns, then the cap.
    let clock = ManualClock::new();
    let delays = Arc::new(Mutex::new(Vec::new()));
    let d = Arc::clone(&delays);
    let r = Retry::new(rule(async |_: &()| false), 4, clock.clone())
        .unwrap()
        .backoff(Backoff::exponential(NS, f64::MAX, Duration::MAX).unwrap())
        .on_retry(move |_, delay| d.lock().unwrap().push(delay));
    block_on_manual(&clock, r.run(()));
    assert_eq!(*delays.lock().unwrap(), [NS, max, max]);

    // A factor that rounds: 1 ns × 1.1ⁿ grows, slowly, as promised.
    let clock = ManualClock::new();
    let delays = Arc::new(Mutex::new(Vec::new()));
    let d = Arc::clone(&delays);
    let r = Retry::new(rule(async |_: &()| false), 40, clock.clone())
        .unwrap()
        .backoff(Backoff::exponential(NS, 1.1, MS).unwrap())
        .on_retry(move |_, delay| d.lock().unwrap().push(delay.as_nanos() as u64));
    block_on_manual(&clock, r.run(()));
    let delays = delays.lock().unwrap();
    for (n, &d) in delays.iter().enumerate() {
        let exact = 1.1f64.powi(n as i32);
        assert!(
            d == exact.floor() as u64 || d == exact.floor() as u64 - 1,
            "delay {n}: {d} ns, expected ⌊1.1^{n}⌋ = {exact}"
        );
    }
    assert_eq!(delays.last().copied(), Some(37)); // ⌊1.1³⁸⌋

    refused(
        Backoff::exponential(MS, f64::INFINITY, Duration::MAX),
        "factor",
        "inf",
    );
}

#[test]
fn parallel_has_no_numeric_configuration_beyond_its_children() {
    // The only extreme is the number of children: none is refused, many run.
    refused(
        parallel_and(Vec::<kompoz_core::BoxCombinator<u32>>::new()),
        "children",
        "[]",
    );
    let many: Vec<_> = (0..10_000)
        .map(|i| rule(async move |n: &u32| *n + i > 0))
        .collect();
    let clock = ManualClock::new();
    assert!(block_on_manual(&clock, parallel_and(many).unwrap().run(1)).0);
    let none_pass: Vec<_> = (0..1_000).map(|_| rule(async |_: &u32| false)).collect();
    assert!(!block_on_manual(&clock, parallel_or(none_pass).unwrap().run(1)).0);
}
