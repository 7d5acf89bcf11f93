//! The circuit breaker's policies on a `ManualClock`, against
//! hand-computed expectations: rate windows, slow calls, back-off and
//! jitter, forced states, the failure predicate, events and timestamps.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kompoz_core::{
    CircuitBreaker, CircuitState, Clock, Combinator, Instant, ManualClock, SlidingWindow,
    circuit_breaker::BreakerEvent,
};

mod support;
use support::breaker::*;
use support::ms;

// ------------------------------------------------------------- policies

#[test]
fn count_window_trips_at_the_failure_rate() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = builder(&service)
        .failure_rate(50.0)
        .sliding_window(SlidingWindow::Count(4))
        .minimum_calls(4)
        .build()
        .unwrap();
    // S S S F: 1/4 = 25 %.
    call_all(&clock, &protected, &[pass(), pass(), pass(), fail()]);
    assert_eq!(protected.state(), CircuitState::Closed);
    let window = protected.stats().window.unwrap();
    assert_eq!((window.calls, window.failures), (4, 1));
    assert_eq!(window.failure_rate(), 25.0);
    // Window S S F F: 2/4 = 50 % trips (at or above the threshold).
    call_all(&clock, &protected, &[fail()]);
    assert_eq!(protected.state(), CircuitState::Open);
    // The consecutive policy is off with a failure rate: 2 in a row did not
    // trip before, and 5 in a row are not needed.
    assert_eq!(protected.stats().failure_count, 2);
}

#[test]
fn the_rate_waits_for_minimum_calls() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = builder(&service)
        .failure_rate(50.0)
        .sliding_window(SlidingWindow::Count(10))
        .minimum_calls(5)
        .build()
        .unwrap();
    call_all(&clock, &protected, &[fail(); 4]);
    assert_eq!(protected.state(), CircuitState::Closed, "4 calls < 5");
    call_all(&clock, &protected, &[pass()]);
    assert_eq!(protected.state(), CircuitState::Open, "4/5 = 80 %");
}

#[test]
fn failure_rate_and_an_explicit_threshold_both_apply() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = builder(&service)
        .failure_rate(90.0)
        .minimum_calls(50)
        .failure_threshold(3)
        .build()
        .unwrap();
    call_all(&clock, &protected, &[fail(); 3]);
    assert_eq!(protected.state(), CircuitState::Open);
}

#[test]
fn time_window_forgets_old_calls() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    // 10 s in 5 buckets of 2 s; trip at 50 % of at least 3 calls.
    let protected = builder(&service)
        .failure_rate(50.0)
        .sliding_window(SlidingWindow::Time {
            duration: secs(10),
            buckets: 5,
        })
        .minimum_calls(3)
        .build()
        .unwrap();
    call_all(&clock, &protected, &[fail()]); // t = 0
    clock.advance(secs(1));
    call_all(&clock, &protected, &[fail()]); // t = 1: 2 calls < 3
    assert_eq!(protected.state(), CircuitState::Closed);
    clock.advance(secs(11));
    // t = 12: the window holds slices [2, 7); both failures (slice 0) are out.
    assert_eq!(protected.stats().window.unwrap().calls, 0);
    call_all(&clock, &protected, &[pass()]);
    assert_eq!(
        protected.state(),
        CircuitState::Closed,
        "with the old failures this would be 2/3"
    );
    call_all(&clock, &protected, &[fail()]);
    assert_eq!(
        protected.state(),
        CircuitState::Closed,
        "1/2: too few calls"
    );
    call_all(&clock, &protected, &[fail()]);
    assert_eq!(protected.state(), CircuitState::Open, "2/3 = 67 %");
}

#[test]
fn slow_calls_trip_at_the_slow_call_rate() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let events = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&events);
    let protected = builder(&service)
        .slow_calls(secs(1), 50.0)
        .sliding_window(SlidingWindow::Count(4))
        .minimum_calls(4)
        .on_event(move |e| log.lock().unwrap().push(e.clone()))
        .build()
        .unwrap();
    let calls = [after(2_000, pass()), after(100, pass()), after(999, pass())];
    call_all(&clock, &protected, &calls);
    assert_eq!(protected.state(), CircuitState::Closed);
    assert_eq!(protected.stats().slow_call_count, 1);
    call_all(&clock, &protected, &[after(1_000, pass())]); // exactly the threshold: slow
    assert_eq!(protected.state(), CircuitState::Open, "2/4 slow = 50 %");
    let stats = protected.stats();
    assert_eq!((stats.slow_call_count, stats.failure_count), (2, 0));
    let slow: Vec<_> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            BreakerEvent::SlowCall { elapsed } => Some(*elapsed),
            _ => None,
        })
        .collect();
    assert_eq!(slow, [secs(2), secs(1)]);
}

#[test]
fn a_slow_probe_reopens_under_a_slow_call_policy() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = builder(&service)
        .slow_calls(secs(1), 100.0)
        .sliding_window(SlidingWindow::Count(2))
        .recovery_timeout(secs(10))
        .build()
        .unwrap();
    call_all(
        &clock,
        &protected,
        &[after(1_500, pass()), after(1_500, pass())],
    );
    assert_eq!(protected.state(), CircuitState::Open);
    clock.advance(secs(10));
    call_all(&clock, &protected, &[after(5_000, pass())]);
    assert_eq!(protected.state(), CircuitState::Open, "slow probe");
    clock.advance(secs(10));
    call_all(&clock, &protected, &[after(10, pass())]);
    assert_eq!(protected.state(), CircuitState::Closed);
    assert_eq!(
        protected.stats().window.unwrap().calls,
        0,
        "cleared on close"
    );
}

/// Trips `protected`, and checks the open period by probing just before and
/// at its end; the probe fails (`fail_probe`) or passes.
fn open_period(clock: &ManualClock, protected: &Protected, fail_probe: bool) -> Duration {
    let opened = clock.now();
    let until = protected.stats().open_until.expect("open");
    let period = until.duration_since(opened);
    clock.advance(period - ms(1));
    assert!(
        !run(clock, protected.run(pass())).0,
        "rejected before the end"
    );
    clock.advance(ms(1));
    let probe = if fail_probe { fail() } else { pass() };
    run(clock, protected.run(probe));
    period
}

#[test]
fn open_periods_grow_exponentially_up_to_the_cap() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = builder(&service)
        .failure_threshold(1)
        .recovery_timeout(secs(10))
        .backoff(2.0, secs(35))
        .build()
        .unwrap();
    assert_eq!(protected.stats().next_open_duration, secs(10));
    run(&clock, protected.run(fail()));
    let periods: Vec<_> = (0..4)
        .map(|_| open_period(&clock, &protected, true))
        .collect();
    assert_eq!(periods, [secs(10), secs(20), secs(35), secs(35)]);
    assert_eq!(protected.stats().consecutive_opens, 5);
    open_period(&clock, &protected, false);
    assert_eq!(protected.state(), CircuitState::Closed);
    assert_eq!(
        protected.stats().next_open_duration,
        secs(10),
        "closing starts over"
    );
    run(&clock, protected.run(fail()));
    assert_eq!(open_period(&clock, &protected, false), secs(10));
}

#[test]
fn jitter_spreads_open_periods_reproducibly() {
    let periods = |seed: u64| {
        let clock = ManualClock::new();
        let service = Service::new(&clock);
        let protected = builder(&service)
            .failure_threshold(1)
            .recovery_timeout(secs(100))
            .jitter_fraction(0.2)
            .jitter_seed(seed)
            .build()
            .unwrap();
        run(&clock, protected.run(fail()));
        (0..20)
            .map(|_| open_period(&clock, &protected, true))
            .collect::<Vec<_>>()
    };
    let a = periods(7);
    assert_eq!(a, periods(7), "same seed, same periods");
    assert_ne!(a, periods(8));
    assert!(
        a.iter().all(|p| (secs(80)..=secs(120)).contains(p)),
        "{a:?}"
    );
    assert!(a.iter().any(|p| *p < secs(100)) && a.iter().any(|p| *p > secs(100)));
}

#[test]
fn jitter_stays_under_the_backoff_cap() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = builder(&service)
        .failure_threshold(1)
        .recovery_timeout(secs(10))
        .backoff(10.0, secs(20))
        .jitter_fraction(1.0)
        .jitter_seed(3)
        .build()
        .unwrap();
    run(&clock, protected.run(fail()));
    for _ in 0..10 {
        assert!(open_period(&clock, &protected, true) <= secs(20));
    }
}

#[test]
fn force_open_isolates_until_reset() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = builder(&service).recovery_timeout(secs(1)).build().unwrap();
    let mut in_flight = Box::pin(protected.run(after(5_000, fail())));
    start(&mut in_flight);
    protected.force_open();
    assert_eq!(protected.state(), CircuitState::Open);
    assert!(protected.is_forced() && protected.stats().forced);
    assert_eq!(protected.stats().open_until, None);
    clock.advance(secs(3600));
    assert!(!run(&clock, protected.run(pass())).0, "never probes");
    run(&clock, &mut in_flight);
    assert_eq!(protected.stats().failure_count, 0, "admitted before: stale");
    protected.reset();
    assert!(!protected.is_forced());
    assert!(run(&clock, protected.run(pass())).0);
    assert_eq!(service.runs(), 2);
}

#[test]
fn force_closed_records_but_never_trips() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = builder(&service)
        .failure_rate(50.0)
        .sliding_window(SlidingWindow::Count(4))
        .minimum_calls(1)
        .failure_threshold(1)
        .build()
        .unwrap();
    protected.force_closed();
    assert_eq!(protected.state(), CircuitState::Closed);
    assert!(protected.is_forced());
    call_all(&clock, &protected, &[fail(); 6]);
    assert_eq!(service.runs(), 6);
    assert_eq!(protected.state(), CircuitState::Closed);
    let stats = protected.stats();
    assert_eq!(stats.failure_count, 6);
    assert_eq!(stats.window.unwrap().failure_rate(), 100.0);
    protected.force_open();
    assert_eq!(protected.state(), CircuitState::Open);
    protected.reset();
    call_all(&clock, &protected, &[fail()]);
    assert_eq!(protected.state(), CircuitState::Open, "automatic again");
}

#[test]
fn the_failure_predicate_decides_what_counts() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    // Only slow answers (the context says so) count; `ok == false` does not.
    let protected = builder(&service)
        .failure_threshold(2)
        .failure_if(|_ok: bool, call: &Call| call.delay_ms >= 1_000)
        .build()
        .unwrap();
    assert_eq!(
        run(&clock, protected.run(fail())),
        (false, fail()),
        "verdict kept"
    );
    run(&clock, protected.run(fail()));
    assert_eq!(protected.state(), CircuitState::Closed);
    assert_eq!(protected.stats().success_count, 2);
    run(&clock, protected.run(after(1_000, pass())));
    run(&clock, protected.run(after(2_000, pass())));
    assert_eq!(protected.state(), CircuitState::Open);
}

#[test]
fn events_report_outcomes_rejections_and_transitions_in_order() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let events = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&events);
    let protected = builder(&service)
        .failure_threshold(1)
        .recovery_timeout(secs(1))
        .on_event(move |e| log.lock().unwrap().push(e.clone()))
        .build()
        .unwrap();
    run(&clock, protected.run(after(250, pass())));
    run(&clock, protected.run(fail()));
    run(&clock, protected.run(pass()));
    clock.advance(secs(1));
    let mut probe = Box::pin(protected.run(after(10, pass())));
    start(&mut probe);
    run(&clock, protected.run(pass())); // slot taken
    run(&clock, &mut probe);

    use BreakerEvent::*;
    use CircuitState::*;
    assert_eq!(
        *events.lock().unwrap(),
        [
            Success { elapsed: ms(250) },
            Failure {
                elapsed: Duration::ZERO
            },
            StateChange {
                from: Closed,
                to: Open
            },
            Rejected { state: Open },
            StateChange {
                from: Open,
                to: HalfOpen
            },
            Rejected { state: HalfOpen },
            Success { elapsed: ms(10) },
            StateChange {
                from: HalfOpen,
                to: Closed
            },
        ]
    );
}

#[test]
fn last_success_time_is_stamped_when_it_changes_something_or_when_asked() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let lazy = builder(&service).build().unwrap();
    let exact = builder(&service).exact_success_time(true).build().unwrap();
    for protected in [&lazy, &exact] {
        clock.advance(secs(1));
        run(&clock, protected.run(pass()));
    }
    assert_eq!(
        lazy.stats().last_success_time,
        None,
        "healthy successes read no clock"
    );
    assert_eq!(exact.stats().last_success_time, Some(at_ms(2_000)));
    run(&clock, lazy.run(fail()));
    clock.advance(secs(1));
    run(&clock, lazy.run(pass())); // ends a failure streak: stamped
    assert_eq!(lazy.stats().last_success_time, Some(at_ms(3_000)));
}

/// A `ManualClock` that counts its reads.
#[derive(Clone, Debug)]
struct CountingClock {
    clock: ManualClock,
    reads: Arc<AtomicUsize>,
}

impl CountingClock {
    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

impl Clock for CountingClock {
    type Sleep = <ManualClock as Clock>::Sleep;
    fn now(&self) -> Instant {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.clock.now()
    }
    fn sleep(&self, duration: Duration) -> Self::Sleep {
        self.clock.sleep(duration)
    }
}

#[test]
fn last_failure_time_is_stamped_when_it_changes_something_or_when_asked() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let lazy = builder(&service).failure_threshold(3).build().unwrap();
    let exact = builder(&service)
        .failure_threshold(3)
        .exact_failure_time(true)
        .build()
        .unwrap();
    let both = || {
        for protected in [&lazy, &exact] {
            run(&clock, protected.run(fail()));
        }
    };
    let times = || {
        (
            lazy.stats().last_failure_time,
            exact.stats().last_failure_time,
        )
    };
    clock.advance(secs(1));
    both(); // the first failure of a streak is stamped
    assert_eq!(times(), (Some(at_ms(1_000)), Some(at_ms(1_000))));
    clock.advance(secs(1));
    both(); // the streak goes on: only the exact breaker reads the clock
    assert_eq!(times(), (Some(at_ms(1_000)), Some(at_ms(2_000))));
    clock.advance(secs(1));
    both(); // the trip is stamped
    assert_eq!(lazy.state(), CircuitState::Open);
    assert_eq!(times(), (Some(at_ms(3_000)), Some(at_ms(3_000))));

    // A success ends the streak: the next failure starts one and is stamped.
    lazy.reset();
    run(&clock, lazy.run(fail()));
    run(&clock, lazy.run(fail()));
    run(&clock, lazy.run(pass()));
    clock.advance(secs(1));
    run(&clock, lazy.run(fail()));
    assert_eq!(lazy.stats().last_failure_time, Some(at_ms(4_000)));
    assert_eq!(lazy.stats().consecutive_failures, 1);

    // Forced closed keeps no streak: every failure is stamped.
    lazy.force_closed();
    for _ in 0..2 {
        clock.advance(secs(1));
        run(&clock, lazy.run(fail()));
        assert_eq!(lazy.stats().last_failure_time, Some(clock.now()));
    }
}

#[test]
fn closed_failures_read_the_clock_only_when_the_time_is_needed() {
    let counting = CountingClock {
        clock: ManualClock::new(),
        reads: Arc::default(),
    };
    let protected =
        CircuitBreaker::builder(kompoz_core::rule(async |ok: &bool| *ok), counting.clone())
            .failure_threshold(20)
            .build()
            .unwrap();
    let call = |ok: bool| futures::executor::block_on(protected.run(ok));
    call(false); // starts a streak: one read
    assert_eq!(counting.reads(), 1);
    for _ in 0..10 {
        call(false);
    }
    assert_eq!(
        counting.reads(),
        1,
        "a streak's later failures read no clock"
    );
    call(true); // ends it: one read
    for _ in 0..10 {
        call(true);
    }
    assert_eq!(counting.reads(), 2, "healthy successes read no clock");
    for _ in 0..20 {
        call(false);
    }
    assert_eq!(protected.state(), CircuitState::Open);
    assert_eq!(counting.reads(), 4, "the streak's start and the trip");
    assert_eq!(protected.stats().failure_count, 31);

    let exact = CircuitBreaker::builder(kompoz_core::rule(async |ok: &bool| *ok), counting.clone())
        .exact_failure_time(true)
        .build()
        .unwrap();
    let before = counting.reads();
    for _ in 0..3 {
        futures::executor::block_on(exact.run(false));
    }
    assert_eq!(counting.reads() - before, 3, "exact: one read per failure");
}

#[test]
fn count_successes_false_leaves_success_count_at_zero_and_nothing_else() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = builder(&service)
        .failure_threshold(2)
        .recovery_timeout(secs(10))
        .half_open_max_calls(2)
        .count_successes(false)
        .build()
        .unwrap();
    call_all(
        &clock,
        &protected,
        &[pass(), fail(), pass(), fail(), pass()],
    );
    let stats = protected.stats();
    assert_eq!((stats.success_count, stats.failure_count), (0, 2));
    assert_eq!(stats.consecutive_failures, 0, "successes still end streaks");
    assert_eq!(stats.state, CircuitState::Closed);
    call_all(&clock, &protected, &[fail(), fail()]);
    assert_eq!(protected.state(), CircuitState::Open);
    clock.advance(secs(10));
    call_all(&clock, &protected, &[pass()]);
    assert_eq!(protected.stats().half_open_successes, 1);
    call_all(&clock, &protected, &[pass()]);
    assert_eq!(
        protected.state(),
        CircuitState::Closed,
        "probes still close it"
    );
    assert_eq!(protected.stats().success_count, 0);

    let counted = builder(&service).build().unwrap();
    call_all(&clock, &counted, &[pass(), pass()]);
    assert_eq!(counted.stats().success_count, 2, "the default counts");
}
