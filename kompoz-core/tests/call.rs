//! The call API under `ManualClock` (and Miri): refusals retried on request
//! wait until they may pass, configuration errors name their parameter,
//! and the layers print.

use core::time::Duration;
use std::sync::Mutex;

use kompoz_core::call::Error;
use kompoz_core::{CircuitState, Clock, ClockExt, ConfigError, ManualClock, RateLimit, Registry};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn a_refusal_retried_on_request_waits_until_it_may_pass() {
    let clock = ManualClock::new();
    let breaker = clock
        .shared_breaker()
        .failure_threshold(1)
        .recovery_timeout(ms(100))
        .build()
        .unwrap();
    let delays = Mutex::new(Vec::new());
    let policy = clock
        .policy()
        .retry(3)
        .unwrap()
        .fixed(ms(1))
        .retry_error_if(|_: &Error<&str>| true)
        .on_retry(|attempt, delay, error: &Error<&str>| {
            delays
                .lock()
                .unwrap()
                .push((attempt, delay, error.is_refusal()));
        })
        .breaker(&breaker);
    let mut attempt = 0;
    let out = clock.block_on(policy.call(|| {
        attempt += 1;
        let first = attempt == 1;
        async move { if first { Err("down") } else { Ok(attempt) } }
    }));
    // Attempt 1 failed and opened the breaker; attempt 2 was refused and
    // waited for the recovery; attempt 3 was the probe, and passed.
    assert_eq!(
        out.unwrap(),
        2,
        "the refused attempt never ran the operation"
    );
    assert_eq!(
        *delays.lock().unwrap(),
        [(1, ms(1), false), (2, ms(99), true)]
    );
    assert_eq!(clock.now().as_duration(), ms(100));
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[test]
fn a_rate_limit_refusal_retried_on_request_waits_for_the_next_slot() {
    let clock = ManualClock::new();
    let policy = clock
        .policy()
        .retry(2)
        .unwrap()
        .retry_error_if(|e: &Error<()>| matches!(e, Error::RateLimited(_)))
        .rate_limit_to(RateLimit::new(1, ms(250)).unwrap())
        .reject_when_full();
    assert!(
        clock
            .block_on(policy.call(|| async { Ok::<_, ()>(()) }))
            .is_ok()
    );
    assert!(
        clock
            .block_on(policy.call(|| async { Ok::<_, ()>(()) }))
            .is_ok()
    );
    assert_eq!(clock.now().as_duration(), ms(250));
}

#[test]
fn bad_settings_name_their_parameter_and_value() {
    let clock = ManualClock::new();
    let err = clock.policy().timeout(Duration::ZERO).unwrap_err();
    assert_eq!(err.parameter(), "timeout");
    assert!(err.to_string().contains("0ns"), "{err}");
    let err = clock.policy().retry(0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid `max_attempts`: 0 (expected at least 1)"
    );
    let err = clock.policy().limit_to(0).unwrap_err();
    assert_eq!(err.parameter(), "max_concurrent");
    let registry = Registry::new();
    // The registry keeps a name while a pool of that name is in use.
    let _first = clock.policy().limit_named_in(4, "api", &registry).unwrap();
    let err = clock
        .policy()
        .limit_named_in(5, "api", &registry)
        .unwrap_err();
    assert!(matches!(err, ConfigError::NameConflict { .. }), "{err}");
}

#[test]
fn a_policy_prints_its_layers() {
    let clock = ManualClock::new();
    let breaker = clock.shared_breaker().build().unwrap();
    let policy = clock
        .policy()
        .limit_to(2)
        .unwrap()
        .retry(3)
        .unwrap()
        .breaker(&breaker)
        .timeout(ms(5))
        .unwrap();
    let printed = format!("{policy:?}");
    for layer in ["LimitLayer", "RetryLayer", "BreakerLayer", "TimeoutLayer"] {
        assert!(printed.contains(layer), "{printed}");
    }
    assert_eq!(policy.layers().inner().duration(), ms(5));
    assert_eq!(
        policy.layers().outer().inner().breaker().state(),
        CircuitState::Closed
    );
}

#[test]
fn an_empty_policy_calls_once() {
    let clock = ManualClock::new();
    let policy = clock.policy();
    let mut calls = 0;
    let out = clock.block_on(policy.call(|| {
        calls += 1;
        async { Err::<(), _>("no") }
    }));
    assert!(matches!(out, Err(Error::Inner("no"))));
    assert_eq!(calls, 1);
}

/// An operation whose closure panics before it returns a future.
fn panics_in_closure() -> core::future::Ready<Result<(), &'static str>> {
    panic!("the closure panicked")
}

#[test]
fn a_closure_panicking_before_its_future_exists_is_a_breaker_failure() {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    let clock = ManualClock::new();
    let one = || {
        clock
            .shared_breaker()
            .failure_threshold(1)
            .recovery_timeout(ms(5))
            .build()
            .unwrap()
    };

    // `Breaker::call`, and a policy with no timeout inside the breaker.
    let alone = one();
    assert!(
        catch_unwind(AssertUnwindSafe(
            || clock.block_on(alone.call(panics_in_closure))
        ))
        .is_err()
    );
    assert_eq!(alone.stats().failure_count, 1);
    assert_eq!(alone.state(), CircuitState::Open);
    let layered = one();
    let policy = clock.policy().breaker(&layered);
    assert!(
        catch_unwind(AssertUnwindSafe(
            || clock.block_on(policy.call(panics_in_closure))
        ))
        .is_err()
    );
    assert_eq!(layered.stats().failure_count, 1);
    assert_eq!(layered.state(), CircuitState::Open);

    // The half-open probe, panicking the same way, reopens the circuit
    // (before the fix it gave its slot back and left it half-open).
    clock.advance(ms(5));
    assert!(
        catch_unwind(AssertUnwindSafe(
            || clock.block_on(policy.call(panics_in_closure))
        ))
        .is_err()
    );
    assert_eq!(layered.state(), CircuitState::Open);
}

/// The documented outcome of a call whose own attempts open the breaker:
/// the refusal of the next attempt, though the operation ran.
#[test]
fn a_call_whose_attempts_open_the_breaker_ends_as_circuit_open() {
    let clock = ManualClock::new();
    let breaker = clock.shared_breaker().failure_threshold(2).build().unwrap();
    let policy = clock.policy().retry(3).unwrap().breaker(&breaker);
    let mut runs = 0;
    let out = clock.block_on(policy.call(|| {
        runs += 1;
        async { Err::<(), _>("down") }
    }));
    assert!(matches!(out, Err(Error::CircuitOpen(_))), "{out:?}");
    assert_eq!(runs, 2, "two attempts ran, the third was refused");
}

/// `Error::Inner` is transparent: its `Display` is the inner error's, so
/// its `source()` is the inner error's source, and a chain walk prints
/// each message once.
#[test]
fn an_inner_error_is_transparent_in_the_source_chain() {
    use std::error::Error as _;
    use std::fmt;

    #[derive(Debug)]
    struct Fetch(std::io::Error);
    impl fmt::Display for Fetch {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("fetching /users")
        }
    }
    impl std::error::Error for Fetch {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    let error: Error<Fetch> = Error::Inner(Fetch(std::io::Error::other("connection reset")));
    let mut chain = vec![error.to_string()];
    let mut next = error.source();
    while let Some(e) = next {
        chain.push(e.to_string());
        next = e.source();
    }
    assert_eq!(chain, ["fetching /users", "connection reset"]);
    let leaf: Error<std::io::Error> = Error::Inner(std::io::Error::other("reset"));
    assert!(leaf.source().is_none());
}

/// The layer-order guide's row for a limit inside a timeout: the wait for
/// a permit counts against the attempt's deadline, and a breaker outside
/// the timeout counts the resulting `TimedOut` as a failure.
#[test]
fn a_limit_inside_a_timeout_turns_queueing_into_a_breaker_failure() {
    let clock = ManualClock::new();
    let breaker = clock.shared_breaker().failure_threshold(1).build().unwrap();
    let policy = clock
        .policy()
        .breaker(&breaker)
        .timeout(ms(10))
        .unwrap()
        .limit_to(1)
        .unwrap();
    let slow = || {
        let sleep = clock.sleep(ms(8));
        async move {
            sleep.await;
            Ok::<_, ()>(())
        }
    };
    let (first, queued) =
        clock.block_on(futures::future::join(policy.call(slow), policy.call(slow)));
    assert_eq!(first, Ok(()));
    assert!(matches!(queued, Err(Error::TimedOut(_))), "{queued:?}");
    assert_eq!(breaker.state(), CircuitState::Open);
}
