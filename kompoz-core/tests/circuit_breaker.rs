//! The circuit breaker on a `ManualClock`: the reference's scenarios and
//! bad input. Hardening (cancelled, timed-out and panicking probes, stale
//! results) is in `breaker_hardening.rs`, the policies against
//! hand-computed expectations in `breaker_policies.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kompoz_core::{
    Breaker, CircuitBreakerBuilder, CircuitState, Combinator, ConfigError, ManualClock,
    SlidingWindow,
};

mod support;
use support::breaker::*;

// ---------------------------------------------------- the reference's scenarios

#[test]
fn closed_passes_calls_through() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = builder(&service).build().unwrap();
    assert_eq!(run(&clock, protected.run(pass())), (true, pass()));
    assert_eq!(run(&clock, protected.run(fail())), (false, fail()));
    assert_eq!(service.runs(), 2);
    assert_eq!(protected.state(), CircuitState::Closed);
}

#[test]
fn threshold_three_with_five_failures_runs_the_inner_three_times() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = builder(&service).failure_threshold(3).build().unwrap();
    let verdicts = call_all(&clock, &protected, &[fail(); 5]);
    assert_eq!(verdicts, [false; 5]);
    assert_eq!(service.runs(), 3);
    assert_eq!(protected.state(), CircuitState::Open);
    let stats = protected.stats();
    assert_eq!((stats.failure_count, stats.rejected_count), (3, 2));
}

#[test]
fn a_success_resets_the_consecutive_count() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = builder(&service).failure_threshold(3).build().unwrap();
    call_all(
        &clock,
        &protected,
        &[fail(), fail(), pass(), fail(), fail()],
    );
    assert_eq!(protected.state(), CircuitState::Closed);
    assert_eq!(protected.stats().consecutive_failures, 2);
    call_all(&clock, &protected, &[fail()]);
    assert_eq!(protected.state(), CircuitState::Open);
}

#[test]
fn open_rejects_without_running_the_inner() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = builder(&service).failure_threshold(1).build().unwrap();
    run(&clock, protected.run(fail()));
    let runs = service.runs();
    for _ in 0..10 {
        assert_eq!(run(&clock, protected.run(pass())), (false, pass()));
    }
    assert_eq!(service.runs(), runs);
    assert_eq!(protected.stats().rejected_count, 10);
}

#[test]
fn after_the_recovery_timeout_a_failing_probe_reopens_and_a_passing_one_closes() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = builder(&service)
        .failure_threshold(2)
        .recovery_timeout(secs(30))
        .build()
        .unwrap();
    call_all(&clock, &protected, &[fail(), fail()]);
    assert_eq!(protected.stats().open_until, Some(at_ms(30_000)));

    clock.advance(secs(29));
    assert!(!run(&clock, protected.run(pass())).0, "not yet");
    assert_eq!(service.runs(), 2);

    clock.advance(secs(1));
    assert!(!run(&clock, protected.run(fail())).0);
    assert_eq!(service.runs(), 3, "the probe ran");
    assert_eq!(
        protected.state(),
        CircuitState::Open,
        "a failed probe reopens"
    );
    assert_eq!(
        protected.stats().open_until,
        Some(at_ms(60_000)),
        "and restarts the recovery timeout"
    );

    clock.advance(secs(30));
    assert!(run(&clock, protected.run(pass())).0);
    assert_eq!(protected.state(), CircuitState::Closed);
    assert_eq!(protected.stats().consecutive_opens, 0);
}

#[test]
fn the_callback_sees_every_transition_once_with_the_new_state_in_place() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let protected = Arc::new(Mutex::new(None::<Breaker<ManualClock>>));
    let me = Arc::clone(&protected);
    let guarded = builder(&service)
        .failure_threshold(2)
        .recovery_timeout(secs(5))
        .on_state_change(move |old, new, stats| {
            // No lock is held: the callback may read the breaker.
            let breaker = me.lock().unwrap().clone().unwrap();
            assert_eq!(breaker.state(), new);
            assert_eq!(breaker.stats().state, new);
            assert_eq!(stats.state, new);
            log.lock().unwrap().push((old, new));
        })
        .build()
        .unwrap();
    *protected.lock().unwrap() = Some(guarded.breaker().clone());

    call_all(&clock, &guarded, &[fail(), fail(), pass()]);
    clock.advance(secs(5));
    call_all(&clock, &guarded, &[fail()]);
    clock.advance(secs(5));
    call_all(&clock, &guarded, &[pass()]);
    guarded.reset(); // CLOSED -> CLOSED is no transition

    use CircuitState::*;
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (Closed, Open),
            (Open, HalfOpen),
            (HalfOpen, Open),
            (Open, HalfOpen),
            (HalfOpen, Closed)
        ]
    );
}

#[test]
fn the_callback_may_reset_the_breaker() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let slot = Arc::new(Mutex::new(None::<Breaker<ManualClock>>));
    let me = Arc::clone(&slot);
    let protected = builder(&service)
        .failure_threshold(1)
        .on_state_change(move |_, new, _| {
            if new == CircuitState::Open {
                me.lock().unwrap().clone().unwrap().reset();
            }
        })
        .build()
        .unwrap();
    *slot.lock().unwrap() = Some(protected.breaker().clone());
    run(&clock, protected.run(fail()));
    assert_eq!(protected.state(), CircuitState::Closed);
}

#[test]
fn stats_count_successes_and_failures() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = builder(&service).failure_threshold(10).build().unwrap();
    clock.advance(secs(1));
    call_all(
        &clock,
        &protected,
        &[pass(), fail(), pass(), pass(), fail()],
    );
    let stats = protected.stats();
    assert_eq!(stats.state, CircuitState::Closed);
    assert_eq!((stats.success_count, stats.failure_count), (3, 2));
    assert_eq!(stats.consecutive_failures, 1);
    assert_eq!(stats.last_failure_time, Some(at_ms(1_000)));
    assert_eq!(stats.last_success_time, Some(at_ms(1_000)));
    assert_eq!(stats.half_open_successes, 0);
    assert_eq!(stats.rejected_count, 0);
    assert_eq!(stats.window, None);
}

#[test]
fn reset_closes_and_clears() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = builder(&service).failure_threshold(1).build().unwrap();
    run(&clock, protected.run(fail()));
    run(&clock, protected.run(pass()));
    assert_eq!(protected.state(), CircuitState::Open);
    protected.reset();
    assert_eq!(protected.state(), CircuitState::Closed);
    let stats = protected.stats();
    assert_eq!(
        (
            stats.failure_count,
            stats.rejected_count,
            stats.last_failure_time
        ),
        (0, 0, None)
    );
    assert!(run(&clock, protected.run(pass())).0);
}

#[test]
fn display_uses_the_reference_names() {
    assert_eq!(CircuitState::Closed.to_string(), "CLOSED");
    assert_eq!(CircuitState::Open.to_string(), "OPEN");
    assert_eq!(
        format!("{} -> {}", CircuitState::Closed, CircuitState::HalfOpen),
        "CLOSED -> HALF_OPEN"
    );
}

// ------------------------------------------------------------- bad input

fn refused(b: CircuitBreakerBuilder<Service, ManualClock>) -> ConfigError {
    b.build().expect_err("should be refused")
}

#[test]
fn bad_configuration_is_refused_naming_the_parameter_and_value() {
    let clock = ManualClock::new();
    let s = Service::new(&clock);
    let cases: Vec<(ConfigError, &str, &str)> = vec![
        (
            refused(builder(&s).failure_threshold(0)),
            "failure_threshold",
            "0",
        ),
        (
            refused(builder(&s).failure_threshold(70_000)),
            "failure_threshold",
            "70000",
        ),
        (
            refused(builder(&s).recovery_timeout(Duration::ZERO)),
            "recovery_timeout",
            "0ns",
        ),
        (
            refused(builder(&s).half_open_max_calls(0)),
            "half_open_max_calls",
            "0",
        ),
        (
            refused(builder(&s).failure_rate(0.0)),
            "failure_rate",
            "0.0",
        ),
        (
            refused(builder(&s).failure_rate(100.5)),
            "failure_rate",
            "100.5",
        ),
        (
            refused(builder(&s).failure_rate(f64::NAN)),
            "failure_rate",
            "NaN",
        ),
        (
            refused(builder(&s).slow_calls(Duration::ZERO, 50.0)),
            "slow_call_threshold",
            "0ns",
        ),
        (
            refused(builder(&s).slow_calls(secs(1), -1.0)),
            "slow_call_rate",
            "-1.0",
        ),
        (
            refused(
                builder(&s)
                    .failure_rate(50.0)
                    .sliding_window(SlidingWindow::Count(0)),
            ),
            "sliding_window",
            "Count(0)",
        ),
        (
            refused(
                builder(&s)
                    .failure_rate(50.0)
                    .sliding_window(SlidingWindow::Time {
                        duration: Duration::ZERO,
                        buckets: 1,
                    }),
            ),
            "sliding_window",
            "Time { duration: 0ns, buckets: 1 }",
        ),
        (
            refused(
                builder(&s)
                    .failure_rate(50.0)
                    .sliding_window(SlidingWindow::Time {
                        duration: secs(1),
                        buckets: 0,
                    }),
            ),
            "sliding_window",
            "Time { duration: 1s, buckets: 0 }",
        ),
        (
            refused(
                builder(&s)
                    .failure_rate(50.0)
                    .sliding_window(SlidingWindow::Count(10))
                    .minimum_calls(11),
            ),
            "minimum_calls",
            "11",
        ),
        (
            refused(builder(&s).failure_rate(50.0).minimum_calls(0)),
            "minimum_calls",
            "0",
        ),
        (
            refused(builder(&s).sliding_window(SlidingWindow::Count(10))),
            "sliding_window",
            "Count(10)",
        ),
        (
            refused(builder(&s).backoff(0.5, secs(60))),
            "backoff_factor",
            "0.5",
        ),
        (
            refused(builder(&s).backoff(f64::INFINITY, secs(60))),
            "backoff_factor",
            "inf",
        ),
        (
            refused(
                builder(&s)
                    .recovery_timeout(secs(30))
                    .backoff(2.0, secs(10)),
            ),
            "backoff_max",
            "10s",
        ),
        (
            refused(builder(&s).jitter_fraction(1.5)),
            "jitter_fraction",
            "1.5",
        ),
    ];
    for (err, parameter, value) in cases {
        assert_eq!(err.parameter(), parameter, "{err}");
        match &err {
            ConfigError::Invalid { value: v, .. } => assert_eq!(v, value, "{err}"),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn defaults_are_the_references() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = builder(&service).build().unwrap();
    call_all(&clock, &protected, &[fail(); 4]);
    assert_eq!(protected.state(), CircuitState::Closed);
    call_all(&clock, &protected, &[fail()]);
    assert_eq!(protected.state(), CircuitState::Open, "5 failures");
    assert_eq!(protected.stats().open_until, Some(at_ms(30_000)), "30 s");
    clock.advance(secs(30));
    // One probe at a time.
    let mut probe = Box::pin(protected.run(after(10, pass())));
    start(&mut probe);
    assert!(!run(&clock, protected.run(pass())).0);
    run(&clock, &mut probe);
    assert_eq!(protected.state(), CircuitState::Closed, "1 success closes");
}
