//! The circuit breaker on a `ManualClock`, hardened: cancelled, timed-out
//! and panicking probes, stale results, one breaker over several
//! combinators.

use std::panic::{AssertUnwindSafe, catch_unwind};

use futures::FutureExt;
use kompoz_core::{Breaker, CircuitState, Clock, Combinator, ManualClock};

mod support;
use support::breaker::*;

// ------------------------------------------------------------- hardening

/// Opens a threshold-1 breaker whose recovery (10 s) has just passed.
fn tripped(service: &Service, half_open_max_calls: u32) -> Protected {
    let protected = builder(service)
        .failure_threshold(1)
        .recovery_timeout(secs(10))
        .half_open_max_calls(half_open_max_calls)
        .build()
        .unwrap();
    run(&service.clock, protected.run(fail()));
    service.clock.advance(secs(10));
    protected
}

#[test]
fn a_cancelled_probe_gives_its_slot_back() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = tripped(&service, 1);
    let mut probe = Box::pin(protected.run(after(60_000, pass())));
    start(&mut probe);
    assert_eq!(protected.state(), CircuitState::HalfOpen);
    assert_eq!(protected.stats().half_open_in_flight, 1);
    assert!(!run(&clock, protected.run(pass())).0, "slot taken");
    drop(probe);
    assert_eq!(protected.stats().half_open_in_flight, 0);
    assert_eq!(protected.state(), CircuitState::HalfOpen);
    assert!(run(&clock, protected.run(pass())).0, "a new probe runs");
    assert_eq!(protected.state(), CircuitState::Closed);
    // The cancelled probe had no outcome.
    assert_eq!(protected.stats().success_count, 1);
}

#[test]
fn a_probe_whose_failure_predicate_panics_gives_its_slot_back() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = builder(&service)
        .failure_threshold(1)
        .recovery_timeout(secs(10))
        .failure_if(|ok: bool, call: &Call| {
            assert!(call.delay_ms != 7, "the predicate panicked");
            !ok
        })
        .build()
        .unwrap();
    run(&clock, protected.run(fail()));
    clock.advance(secs(10));
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        run(&clock, protected.run(after(7, pass())))
    }));
    assert!(panicked.is_err());
    // No outcome for the probe, and its slot is free again.
    assert_eq!(protected.state(), CircuitState::HalfOpen);
    assert_eq!(protected.stats().half_open_in_flight, 0);
    assert!(run(&clock, protected.run(pass())).0, "a new probe runs");
    assert_eq!(protected.state(), CircuitState::Closed);
}

#[test]
fn a_probe_timed_out_from_outside_gives_its_slot_back() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = tripped(&service, 1);
    // An outer timeout: the probe (60 s) against 1 s; the loser is dropped.
    let timed_out = run(&clock, async {
        futures::select_biased! {
            _ = protected.run(after(60_000, pass())).fuse() => false,
            _ = clock.sleep(secs(1)).fuse() => true,
        }
    });
    assert!(timed_out);
    assert_eq!(protected.stats().half_open_in_flight, 0);
    assert!(run(&clock, protected.run(pass())).0);
    assert_eq!(protected.state(), CircuitState::Closed);
}

#[test]
fn a_panicking_probe_counts_as_a_failure_and_frees_its_slot() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = tripped(&service, 1);
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        run(
            &clock,
            protected.run(Call {
                panic: true,
                ..pass()
            }),
        )
    }));
    assert!(panicked.is_err());
    assert_eq!(
        protected.state(),
        CircuitState::Open,
        "a panic is a failure"
    );
    assert_eq!(protected.stats().failure_count, 2);
    clock.advance(secs(10));
    assert!(run(&clock, protected.run(pass())).0, "a new probe runs");
    assert_eq!(protected.state(), CircuitState::Closed);
}

#[test]
fn a_panic_while_closed_counts_as_a_failure() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = builder(&service).failure_threshold(1).build().unwrap();
    let call = Call {
        panic: true,
        ..pass()
    };
    assert!(catch_unwind(AssertUnwindSafe(|| run(&clock, protected.run(call)))).is_err());
    assert_eq!(protected.state(), CircuitState::Open);
}

#[test]
fn half_open_admits_exactly_max_calls_of_fifty() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = tripped(&service, 2);
    let before = service.runs();
    let verdicts = run(
        &clock,
        futures::future::join_all((0..50).map(|_| protected.run(after(100, pass())))),
    );
    assert_eq!(service.runs() - before, 2, "exactly two probes ran");
    assert_eq!(service.peak(), 2);
    assert_eq!(verdicts.iter().filter(|&&(ok, _)| ok).count(), 2);
    assert_eq!(protected.stats().rejected_count, 48);
    assert_eq!(
        protected.state(),
        CircuitState::Closed,
        "two successes close it"
    );
}

#[test]
fn half_open_needs_max_calls_successes_and_frees_slots_as_probes_finish() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = tripped(&service, 3);
    call_all(&clock, &protected, &[pass(), pass()]);
    assert_eq!(protected.state(), CircuitState::HalfOpen);
    let stats = protected.stats();
    assert_eq!(
        (stats.half_open_successes, stats.half_open_in_flight),
        (2, 0)
    );
    call_all(&clock, &protected, &[pass()]);
    assert_eq!(protected.state(), CircuitState::Closed);
}

#[test]
fn a_failure_that_began_before_reset_does_not_count_after_it() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = builder(&service).failure_threshold(1).build().unwrap();
    let mut slow = Box::pin(protected.run(after(5_000, fail())));
    start(&mut slow);
    protected.reset();
    assert!(!run(&clock, &mut slow).0);
    assert_eq!(protected.state(), CircuitState::Closed);
    assert_eq!(protected.stats().failure_count, 0);
}

#[test]
fn a_slow_failure_from_before_a_trip_cannot_reopen_the_new_circuit() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = builder(&service)
        .failure_threshold(1)
        .recovery_timeout(secs(1))
        .build()
        .unwrap();
    let mut slow = Box::pin(protected.run(after(60_000, fail())));
    start(&mut slow);
    run(&clock, protected.run(fail())); // trips
    clock.advance(secs(1));
    run(&clock, protected.run(pass())); // probe closes
    assert_eq!(protected.state(), CircuitState::Closed);
    run(&clock, &mut slow);
    assert_eq!(protected.state(), CircuitState::Closed);
    assert_eq!(protected.stats().consecutive_failures, 0);
}

#[test]
fn a_slow_success_from_before_a_trip_cannot_close_the_circuit() {
    let clock = ManualClock::new();
    let service = Service::new(&clock);
    let protected = builder(&service)
        .failure_threshold(1)
        .recovery_timeout(secs(60))
        .build()
        .unwrap();
    let mut slow = Box::pin(protected.run(after(1_000, pass())));
    start(&mut slow);
    run(&clock, protected.run(fail()));
    assert!(run(&clock, &mut slow).0);
    assert_eq!(protected.state(), CircuitState::Open);
}

#[test]
fn one_breaker_guards_several_combinators() {
    let clock = ManualClock::new();
    let reads = Service::new(&clock);
    let writes = Service::new(&clock);
    let breaker = Breaker::builder(clock.clone())
        .failure_threshold(2)
        .build()
        .unwrap();
    let read = breaker.guard(reads.clone());
    let write = breaker.guard(writes.clone());
    run(&clock, read.run(fail()));
    run(&clock, write.run(fail()));
    assert_eq!(breaker.state(), CircuitState::Open);
    assert!(!run(&clock, read.run(pass())).0);
    assert!(!run(&clock, write.run(pass())).0);
    assert_eq!((reads.runs(), writes.runs()), (1, 1));
    assert!(read.breaker().same_as(&breaker));
    read.reset();
    assert_eq!(write.state(), CircuitState::Closed);
}
