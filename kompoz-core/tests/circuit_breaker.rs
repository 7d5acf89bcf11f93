//! The circuit breaker on a `ManualClock`: the reference's scenarios, the
//! hardening (cancelled, timed-out and panicking probes, stale results), the
//! policies against hand-computed expectations, and bad input.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Context;
use std::time::Duration;

use futures::FutureExt;
use futures::task::noop_waker;
mod support;
use support::ms;

use kompoz_core::{
    Breaker, CircuitBreaker, CircuitBreakerBuilder, CircuitState, Clock, Combinator, ConfigError,
    Instant, ManualClock, SlidingWindow, circuit_breaker::BreakerEvent,
};

// ---------------------------------------------------------------- harness

/// What the fake service is asked to do.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Call {
    ok: bool,
    delay_ms: u64,
    panic: bool,
}

fn pass() -> Call {
    Call {
        ok: true,
        delay_ms: 0,
        panic: false,
    }
}

fn fail() -> Call {
    Call {
        ok: false,
        ..pass()
    }
}

fn after(ms: u64, call: Call) -> Call {
    Call {
        delay_ms: ms,
        ..call
    }
}

/// A service that does what each `Call` says and counts its runs and the
/// most runs at once.
#[derive(Clone, Debug)]
struct Service {
    clock: ManualClock,
    runs: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

struct Leave(Arc<AtomicUsize>);
impl Drop for Leave {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Service {
    fn new(clock: &ManualClock) -> Self {
        Service {
            clock: clock.clone(),
            runs: Arc::default(),
            running: Arc::default(),
            peak: Arc::default(),
        }
    }
    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

impl Combinator<Call> for Service {
    #[allow(clippy::manual_async_fn)]
    fn run(&self, call: Call) -> impl Future<Output = (bool, Call)> {
        async move {
            self.runs.fetch_add(1, Ordering::SeqCst);
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            let _leave = Leave(Arc::clone(&self.running));
            if call.delay_ms > 0 {
                self.clock.sleep(ms(call.delay_ms)).await;
            }
            assert!(!call.panic, "the service panicked");
            (call.ok, call)
        }
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn at_ms(n: u64) -> Instant {
    Instant::from_nanos(n * 1_000_000)
}

/// Runs `fut` to completion, jumping the clock to the next sleep's deadline
/// whenever it is pending.
fn run<F: Future>(clock: &ManualClock, fut: F) -> F::Output {
    clock.block_on(fut)
}

/// Polls `fut` once (admitting the call) and hands it back, still running.
fn start<F: Future + Unpin>(fut: &mut F) {
    let waker = noop_waker();
    assert!(
        fut.poll_unpin(&mut Context::from_waker(&waker))
            .is_pending(),
        "the call was meant to be in flight"
    );
}

fn builder(service: &Service) -> CircuitBreakerBuilder<Service, ManualClock> {
    CircuitBreaker::builder(service.clone(), service.clock.clone())
}

type Protected = CircuitBreaker<Service, ManualClock>;

fn call_all(clock: &ManualClock, protected: &Protected, calls: &[Call]) -> Vec<bool> {
    calls
        .iter()
        .map(|&c| run(clock, protected.run(c)).0)
        .collect()
}

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
