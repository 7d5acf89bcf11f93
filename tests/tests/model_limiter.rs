//! Model-based property test of the concurrency limiter: a reference model
//! of a fair semaphore (a count and a FIFO queue) and the real pool, shared
//! by a waiting limiter and a rejecting one, get the same random sequence of
//! calls that start, finish (passing, failing or panicking) or are cancelled
//! while running or while queued. After every step — with every live call
//! polled once, as an executor would — the free permits, the queue length,
//! which calls were admitted or rejected, and the order in which the inner
//! combinator started must agree.
//!
//! Cases: `PROPTEST_CASES` (default 256; `.ci/run` uses 500, `.ci/long`
//! 10,000).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use kompoz_core::{Combinator, Limited, ManualClock, Semaphore, limiter::LimitOutcome};
use kompoz_tests::sweep::{SCRIPTED, quiet_scripted_panics};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Pass,
    Fail,
    Panic,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    /// A call through the waiting limiter (`true`) or the rejecting one.
    Begin { waits: bool },
    /// The `k`-th running call ends.
    Finish(usize, End),
    /// The `k`-th live call (running or queued) is dropped.
    Cancel(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let end = prop_oneof![3 => Just(End::Pass), 1 => Just(End::Fail), 1 => Just(End::Panic)];
    prop_oneof![
        4 => any::<bool>().prop_map(|waits| Op::Begin { waits }),
        3 => (any::<usize>(), end).prop_map(|(k, e)| Op::Finish(k, e)),
        2 => any::<usize>().prop_map(Op::Cancel),
    ]
}

/// The inner combinator: records the order calls start in; call `id` ends
/// as `plan[id]` says, once it says.
#[derive(Clone, Default)]
struct Planned {
    plan: Arc<Mutex<HashMap<u64, End>>>,
    started: Arc<Mutex<Vec<u64>>>,
}

impl Combinator<u64> for Planned {
    async fn run(&self, id: u64) -> (bool, u64) {
        self.started.lock().unwrap().push(id);
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

type Call<'a> = Pin<Box<dyn Future<Output = (LimitOutcome, u64)> + 'a>>;

#[derive(Debug, Default)]
struct Model {
    available: usize,
    queue: VecDeque<u64>,
    running: Vec<u64>,
    started: Vec<u64>,
    rejected: u64,
}

impl Model {
    fn release(&mut self) {
        match self.queue.pop_front() {
            Some(next) => {
                self.running.push(next);
                self.started.push(next);
            }
            None => self.available += 1,
        }
    }
}

fn run_case(capacity: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    quiet_scripted_panics();
    let clock = ManualClock::new();
    let pool = Arc::new(Semaphore::new(capacity).unwrap());
    let inner = Planned::default();
    let waiting = Limited::with_pool(inner.clone(), Arc::clone(&pool), clock.clone());
    let rejecting =
        Limited::with_pool(inner.clone(), Arc::clone(&pool), clock.clone()).reject_when_full();
    let mut model = Model {
        available: capacity,
        ..Model::default()
    };
    let mut live: Vec<(u64, Call<'_>)> = Vec::new();
    let mut cx = Context::from_waker(Waker::noop());
    for (id, (step, op)) in (0u64..).zip(ops.iter().enumerate()) {
        match *op {
            Op::Begin { waits } => {
                let limiter = if waits { &waiting } else { &rejecting };
                live.push((id, Box::pin(limiter.run_with_outcome(id))));
                if model.available > 0 && model.queue.is_empty() {
                    model.available -= 1;
                    model.running.push(id);
                    model.started.push(id);
                } else if waits {
                    model.queue.push_back(id);
                } else {
                    model.rejected += 1;
                }
            }
            Op::Finish(k, end) if !model.running.is_empty() => {
                let id = model.running.remove(k % model.running.len());
                inner.plan.lock().unwrap().insert(id, end);
                model.release();
            }
            Op::Cancel(k) if !live.is_empty() => {
                let (id, call) = live.remove(k % live.len());
                drop(call);
                if let Some(i) = model.running.iter().position(|&r| r == id) {
                    model.running.remove(i);
                    model.release();
                } else if let Some(i) = model.queue.iter().position(|&q| q == id) {
                    model.queue.remove(i);
                }
            }
            Op::Finish(..) | Op::Cancel(_) => {}
        }
        // Poll every live call once; drop those that completed.
        let mut still = Vec::new();
        for (id, mut call) in live.drain(..) {
            match catch_unwind(AssertUnwindSafe(|| call.as_mut().poll(&mut cx))) {
                Ok(Poll::Pending) => still.push((id, call)),
                Ok(Poll::Ready((outcome, _))) => {
                    let end = inner.plan.lock().unwrap().get(&id).copied();
                    match end {
                        Some(End::Pass) => prop_assert_eq!(outcome, LimitOutcome::Ran(true)),
                        Some(End::Fail) => prop_assert_eq!(outcome, LimitOutcome::Ran(false)),
                        _ => prop_assert_eq!(outcome, LimitOutcome::Rejected, "call {}", id),
                    }
                }
                Err(_) => {
                    let end = inner.plan.lock().unwrap().get(&id).copied();
                    prop_assert_eq!(end, Some(End::Panic));
                }
            }
        }
        live = still;
        let ctx = || format!("after step {step} ({op:?}): model {model:?}, pool {pool:?}");
        prop_assert_eq!(pool.available(), model.available, "available {}", ctx());
        prop_assert_eq!(pool.waiting(), model.queue.len(), "waiting {}", ctx());
        prop_assert_eq!(
            &*inner.started.lock().unwrap(),
            &model.started,
            "start order (FIFO) {}",
            ctx()
        );
        prop_assert_eq!(rejecting.rejected(), model.rejected, "rejections {}", ctx());
    }
    // Dropping everything still live gives every permit back.
    live.clear();
    prop_assert_eq!((pool.available(), pool.waiting()), (capacity, 0));
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
    fn limiter_agrees_with_its_model(
        capacity in 1usize..4,
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        run_case(capacity, &ops)?;
    }
}
