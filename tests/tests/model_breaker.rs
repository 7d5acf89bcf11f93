//! Model-based property test of the circuit breaker: a small reference model
//! (written from the documented semantics, not from the code) and the real
//! breaker get the same random sequence of operations — calls that succeed,
//! fail or panic at once, calls that stay in flight and later finish, panic
//! or are cancelled, clock advances, `reset`, `force_open`, `force_closed` —
//! and after every step the admit/reject decision, the state and the stats
//! must agree. Two policies: consecutive failures (the reference's), and a
//! failure rate over a count window.
//!
//! Cases: `PROPTEST_CASES` (default 256; `.ci/run` uses 500 and `.ci/long`
//! 10,000). Shrunk failures are kept under `proptest-regressions/` and
//! replayed first.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use kompoz_core::{
    Breaker, CircuitBreaker, CircuitState, ClockExt, Combinator, ManualClock, SlidingWindow,
    circuit_breaker::NotOk,
};
use kompoz_tests::sweep::{SCRIPTED, quiet_scripted_panics};
use proptest::prelude::*;

const RECOVERY_MS: u64 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Pass,
    Fail,
    Panic,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    /// A call that ends at once.
    Call(End),
    /// A call that is admitted (or not) now and stays in flight.
    Begin,
    /// The `k`-th call in flight (mod their number) ends.
    Finish(usize, End),
    /// The `k`-th call in flight is dropped.
    Cancel(usize),
    Advance(u64),
    Reset,
    ForceOpen,
    ForceClosed,
}

fn op() -> impl Strategy<Value = Op> {
    let end = prop_oneof![4 => Just(End::Pass), 4 => Just(End::Fail), 1 => Just(End::Panic)];
    prop_oneof![
        8 => end.clone().prop_map(Op::Call),
        3 => Just(Op::Begin),
        3 => (any::<usize>(), end).prop_map(|(k, e)| Op::Finish(k, e)),
        2 => any::<usize>().prop_map(Op::Cancel),
        3 => (0..2 * RECOVERY_MS).prop_map(Op::Advance),
        1 => Just(Op::Reset),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::ForceClosed),
    ]
}

#[derive(Clone, Copy, Debug)]
enum Policy {
    Consecutive {
        threshold: u32,
    },
    /// Failure rate in percent over the last `window` calls, from `minimum`.
    Rate {
        percent: u32,
        window: u32,
        minimum: u32,
    },
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        (1u32..5).prop_map(|threshold| Policy::Consecutive { threshold }),
        (1u32..=100, 1u32..8)
            .prop_flat_map(|(percent, window)| (Just(percent), Just(window), 1..=window))
            .prop_map(|(percent, window, minimum)| Policy::Rate {
                percent,
                window,
                minimum
            }),
    ]
}

// ---------------------------------------------------------------- the model

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Auto,
    ForcedOpen,
    ForcedClosed,
}

#[derive(Clone, Copy, Debug)]
struct Ticket {
    generation: u64,
    probe: bool,
}

#[derive(Debug)]
struct Model {
    policy: Policy,
    probes: u32,
    state: CircuitState,
    mode: Mode,
    generation: u64,
    now: u64,
    open_until: u64,
    streak: u32,
    in_flight: u32,
    probe_successes: u32,
    window: VecDeque<bool>,
    successes: u64,
    failures: u64,
    rejected: u64,
}

impl Model {
    fn new(policy: Policy, probes: u32) -> Model {
        Model {
            policy,
            probes,
            state: CircuitState::Closed,
            mode: Mode::Auto,
            generation: 0,
            now: 0,
            open_until: 0,
            streak: 0,
            in_flight: 0,
            probe_successes: 0,
            window: VecDeque::new(),
            successes: 0,
            failures: 0,
            rejected: 0,
        }
    }

    /// A new state: a new generation, its counters zero.
    fn enter(&mut self, state: CircuitState, mode: Mode) {
        self.state = state;
        self.mode = mode;
        self.generation += 1;
        self.streak = 0;
        self.in_flight = 0;
        self.probe_successes = 0;
        if state == CircuitState::Closed {
            self.window.clear();
        }
    }

    fn trip(&mut self) {
        self.open_until = self.now + RECOVERY_MS;
        self.enter(CircuitState::Open, Mode::Auto);
    }

    fn admit(&mut self) -> Option<Ticket> {
        let ticket = |m: &Model, probe| {
            Some(Ticket {
                generation: m.generation,
                probe,
            })
        };
        match self.state {
            CircuitState::Closed => ticket(self, false),
            CircuitState::HalfOpen if self.in_flight < self.probes => {
                self.in_flight += 1;
                ticket(self, true)
            }
            CircuitState::Open if self.mode == Mode::Auto && self.now >= self.open_until => {
                self.enter(CircuitState::HalfOpen, Mode::Auto);
                self.in_flight = 1;
                ticket(self, true)
            }
            _ => {
                self.rejected += 1;
                None
            }
        }
    }

    fn complete(&mut self, t: Ticket, failure: bool) {
        if t.generation != self.generation {
            return; // a result from a state that is over
        }
        if failure {
            self.failures += 1;
        } else {
            self.successes += 1;
        }
        if t.probe {
            if failure {
                self.trip();
            } else {
                self.probe_successes += 1;
                if self.probe_successes >= self.probes {
                    self.enter(CircuitState::Closed, Mode::Auto);
                } else {
                    self.in_flight = self.in_flight.saturating_sub(1);
                }
            }
            return;
        }
        let mut trip = false;
        if let Policy::Rate {
            percent,
            window,
            minimum,
        } = self.policy
        {
            if self.window.len() == window as usize {
                self.window.pop_front();
            }
            self.window.push_back(failure);
            let calls = self.window.len() as u32;
            let failed = self.window.iter().filter(|&&f| f).count() as u32;
            trip = calls >= minimum && failed * 100 >= percent * calls;
        }
        if self.mode == Mode::ForcedClosed {
            return;
        }
        if failure {
            self.streak += 1;
            if let Policy::Consecutive { threshold } = self.policy {
                trip |= self.streak >= threshold;
            }
        } else {
            self.streak = 0;
        }
        if trip {
            self.trip();
        }
    }

    fn cancel(&mut self, t: Ticket) {
        if t.probe
            && t.generation == self.generation
            && self.state == CircuitState::HalfOpen
            && self.in_flight > 0
        {
            self.in_flight -= 1;
        }
    }
}

// ---------------------------------------------------------- the real thing

/// The inner combinator: call `id` ends as `plan[id]` says, once it says.
#[derive(Clone, Default)]
struct Planned {
    plan: Arc<Mutex<HashMap<u64, End>>>,
}

impl Combinator<u64> for Planned {
    async fn run(&self, id: u64) -> (bool, u64) {
        let plan = Arc::clone(&self.plan);
        let end = std::future::poll_fn(|_| match plan.lock().unwrap().get(&id) {
            Some(&end) => Poll::Ready(end),
            None => Poll::Pending,
        })
        .await;
        match end {
            End::Pass => (true, id),
            End::Fail => (false, id),
            End::Panic => std::panic::panic_any(SCRIPTED),
        }
    }
}

type Call<'a> = Pin<Box<dyn Future<Output = (bool, u64)> + 'a>>;

/// Polls once; `Err` if it panicked.
fn poll(call: &mut Call<'_>) -> Result<Poll<(bool, u64)>, ()> {
    let mut cx = Context::from_waker(Waker::noop());
    catch_unwind(AssertUnwindSafe(|| call.as_mut().poll(&mut cx))).map_err(drop)
}

fn build(policy: Policy, probes: u32, clock: &ManualClock) -> Breaker<ManualClock> {
    let b = clock
        .shared_breaker()
        .recovery_timeout(Duration::from_millis(RECOVERY_MS))
        .half_open_max_calls(probes);
    match policy {
        Policy::Consecutive { threshold } => b.failure_threshold(threshold),
        Policy::Rate {
            percent,
            window,
            minimum,
        } => b
            .failure_rate(f64::from(percent))
            .sliding_window(SlidingWindow::Count(window))
            .minimum_calls(minimum),
    }
    .build()
    .unwrap()
}

fn agree(m: &Model, b: &Breaker<ManualClock>, step: usize, op: &Op) -> Result<(), TestCaseError> {
    let s = b.stats();
    let ctx = || format!("after step {step} ({op:?}): model {m:?}, real {s:?}");
    prop_assert_eq!(s.state, m.state, "state {}", ctx());
    prop_assert_eq!(s.forced, m.mode != Mode::Auto, "forced {}", ctx());
    prop_assert_eq!(s.success_count, m.successes, "successes {}", ctx());
    prop_assert_eq!(s.failure_count, m.failures, "failures {}", ctx());
    prop_assert_eq!(s.rejected_count, m.rejected, "rejected {}", ctx());
    let streak = if m.state == CircuitState::Closed {
        m.streak
    } else {
        0
    };
    prop_assert_eq!(s.consecutive_failures, streak, "streak {}", ctx());
    if m.state == CircuitState::HalfOpen {
        prop_assert_eq!(s.half_open_in_flight, m.in_flight, "in flight {}", ctx());
        prop_assert_eq!(
            s.half_open_successes,
            m.probe_successes,
            "probe successes {}",
            ctx()
        );
    }
    if let (Policy::Rate { .. }, Some(w)) = (m.policy, s.window) {
        prop_assert_eq!(w.calls as usize, m.window.len(), "window calls {}", ctx());
        let failed = m.window.iter().filter(|&&f| f).count();
        prop_assert_eq!(w.failures as usize, failed, "window failures {}", ctx());
    }
    Ok(())
}

fn run_case(policy: Policy, probes: u32, ops: &[Op]) -> Result<(), TestCaseError> {
    quiet_scripted_panics();
    let clock = ManualClock::new();
    let breaker = build(policy, probes, &clock);
    let inner = Planned::default();
    let guarded: CircuitBreaker<Planned, ManualClock, NotOk> = breaker.guard(inner.clone());
    let mut model = Model::new(policy, probes);
    let mut in_flight: Vec<(Call<'_>, Ticket, u64)> = Vec::new();
    for (id, (step, op)) in (0u64..).zip(ops.iter().enumerate()) {
        match *op {
            Op::Call(end) => {
                inner.plan.lock().unwrap().insert(id, end);
                let mut call: Call<'_> = Box::pin(guarded.run(id));
                let ticket = model.admit();
                match (poll(&mut call), ticket) {
                    (Ok(Poll::Ready((ok, _))), None) => prop_assert!(!ok, "a rejection passed"),
                    (Ok(Poll::Ready((ok, _))), Some(t)) => {
                        prop_assert_eq!(ok, end == End::Pass);
                        model.complete(t, end != End::Pass);
                    }
                    (Err(()), Some(t)) => {
                        prop_assert_eq!(end, End::Panic);
                        model.complete(t, true);
                    }
                    (r, t) => prop_assert!(false, "step {step}: real {r:?}, model {t:?}"),
                }
            }
            Op::Begin => {
                let mut call: Call<'_> = Box::pin(guarded.run(id));
                let ticket = model.admit();
                match (poll(&mut call), ticket) {
                    (Ok(Poll::Ready((false, _))), None) => {}
                    (Ok(Poll::Pending), Some(t)) => in_flight.push((call, t, id)),
                    (r, t) => prop_assert!(false, "step {step}: real {r:?}, model admits {t:?}"),
                }
            }
            Op::Finish(k, end) if !in_flight.is_empty() => {
                let (mut call, t, id) = in_flight.remove(k % in_flight.len());
                inner.plan.lock().unwrap().insert(id, end);
                match poll(&mut call) {
                    Ok(Poll::Ready((ok, _))) => prop_assert_eq!(ok, end == End::Pass),
                    Err(()) => prop_assert_eq!(end, End::Panic),
                    Ok(Poll::Pending) => prop_assert!(false, "a finished call is pending"),
                }
                model.complete(t, end != End::Pass);
            }
            Op::Cancel(k) if !in_flight.is_empty() => {
                let (call, t, _) = in_flight.remove(k % in_flight.len());
                drop(call);
                model.cancel(t);
            }
            Op::Finish(..) | Op::Cancel(_) => {}
            Op::Advance(ms) => {
                clock.advance(Duration::from_millis(ms));
                model.now += ms;
            }
            Op::Reset => {
                breaker.reset();
                model.enter(CircuitState::Closed, Mode::Auto);
                (model.successes, model.failures, model.rejected) = (0, 0, 0);
            }
            Op::ForceOpen => {
                breaker.force_open();
                model.enter(CircuitState::Open, Mode::ForcedOpen);
            }
            Op::ForceClosed => {
                breaker.force_closed();
                model.enter(CircuitState::Closed, Mode::ForcedClosed);
            }
        }
        agree(&model, &breaker, step, op)?;
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn breaker_agrees_with_its_model(
        policy in policy(),
        probes in 1u32..4,
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        run_case(policy, probes, &ops)?;
    }
}
