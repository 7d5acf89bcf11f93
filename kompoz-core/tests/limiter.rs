//! The fair semaphore, the limiter and the registry, step by step: each test
//! polls futures by hand (or on a `ManualClock`), so every interleaving it
//! checks is the one it wrote.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

mod support;

use futures::FutureExt;
use kompoz_core::{
    Clock, Combinator, ConfigError, LimitMode, Limited, ManualClock, Registry, Semaphore,
    limiter::LimitOutcome, limiter::SemaphorePermit, rule,
};
use support::{CountingWaker, Rng, poll_once};

#[test]
fn waiters_are_admitted_in_arrival_order() {
    let pool = Semaphore::new(1).unwrap();
    let held = pool.try_acquire().unwrap();
    let mut queue: Vec<_> = (0..5).map(|_| pool.acquire()).collect();
    for waiter in &mut queue {
        assert!(poll_once(waiter).is_pending());
    }
    assert_eq!(pool.waiting(), 5);

    let mut held = Some(held);
    for i in 0..5 {
        drop(held.take());
        // Later waiters are still pending, even when polled first.
        for later in queue[i + 1..].iter_mut().rev() {
            assert!(poll_once(later).is_pending());
        }
        match poll_once(&mut queue[i]) {
            Poll::Ready(permit) => held = Some(permit),
            Poll::Pending => panic!("waiter {i} was next in line"),
        }
    }
    drop(held);
    drop(queue);
    assert_eq!(pool.available(), 1);
    assert_eq!(pool.waiting(), 0);
}

#[test]
fn a_newcomer_never_overtakes_a_woken_waiter() {
    let pool = Semaphore::new(1).unwrap();
    let held = pool.try_acquire().unwrap();
    let (wakes, waker) = CountingWaker::new();
    let mut waiter = pool.acquire();
    assert!(
        Pin::new(&mut waiter)
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    drop(held);
    assert_eq!(wakes.wakes(), 1, "release wakes the head");
    // The permit was handed to the waiter: a caller arriving before the
    // waiter runs finds none.
    assert_eq!(pool.available(), 0);
    assert!(pool.try_acquire().is_none());
    let mut newcomer = pool.acquire();
    assert!(poll_once(&mut newcomer).is_pending());
    let permit = match poll_once(&mut waiter) {
        Poll::Ready(p) => p,
        Poll::Pending => panic!("the woken waiter holds the permit"),
    };
    drop(permit);
    assert!(poll_once(&mut newcomer).is_ready());
}

#[test]
fn a_waiter_dropped_while_queued_leaves_the_queue() {
    let pool = Semaphore::new(1).unwrap();
    let held = pool.try_acquire().unwrap();
    let mut a = pool.acquire();
    let mut b = pool.acquire();
    let mut c = pool.acquire();
    for w in [&mut a, &mut b, &mut c] {
        assert!(poll_once(w).is_pending());
    }
    drop(b);
    assert_eq!(pool.waiting(), 2);
    drop(a);
    assert_eq!(pool.waiting(), 1);
    drop(held);
    assert!(poll_once(&mut c).is_ready());
    assert_eq!(pool.waiting(), 0);
    assert_eq!(pool.available(), 1);

    // Dropping the last waiter reopens the lock-free path.
    let held = pool.try_acquire().unwrap();
    let mut d = pool.acquire();
    assert!(poll_once(&mut d).is_pending());
    drop(d);
    drop(held);
    assert!(pool.try_acquire().is_some(), "no waiter left: fast path");
}

#[test]
fn a_waiter_dropped_after_being_handed_a_permit_passes_it_on() {
    let pool = Semaphore::new(1).unwrap();
    let held = pool.try_acquire().unwrap();
    let mut a = pool.acquire();
    let (wakes_b, waker_b) = CountingWaker::new();
    let mut b = pool.acquire();
    assert!(poll_once(&mut a).is_pending());
    assert!(
        Pin::new(&mut b)
            .poll(&mut Context::from_waker(&waker_b))
            .is_pending()
    );
    drop(held); // handed to `a`
    assert_eq!(wakes_b.wakes(), 0);
    drop(a); // `a` never saw it: `b` gets it
    assert_eq!(wakes_b.wakes(), 1);
    assert!(poll_once(&mut b).is_ready());

    // `b`'s permit was dropped with the poll result; with nobody behind it,
    // it went back to the count.
    assert_eq!(pool.available(), 1);
    assert!(pool.try_acquire().is_some());
}

#[test]
fn a_rewoken_waiter_is_woken_through_its_latest_waker() {
    let pool = Semaphore::new(1).unwrap();
    let held = pool.try_acquire().unwrap();
    let (first_wakes, first) = CountingWaker::new();
    let (second_wakes, second) = CountingWaker::new();
    let mut waiter = pool.acquire();
    let _ = Pin::new(&mut waiter).poll(&mut Context::from_waker(&first));
    let _ = Pin::new(&mut waiter).poll(&mut Context::from_waker(&second));
    drop(held);
    assert_eq!(first_wakes.wakes(), 0);
    assert_eq!(second_wakes.wakes(), 1);
}

#[test]
fn zero_and_huge_capacities_are_refused() {
    let err = Semaphore::new(0).unwrap_err();
    assert_eq!(err.parameter(), "permits");
    assert!(Semaphore::new(Semaphore::MAX_PERMITS + 1).is_err());
    let big = Semaphore::new(Semaphore::MAX_PERMITS).unwrap();
    assert_eq!(big.available(), Semaphore::MAX_PERMITS);
    let p = big.try_acquire().unwrap();
    drop(p);
    assert_eq!(big.available(), Semaphore::MAX_PERMITS);
}

enum Task<'a> {
    Waiting {
        fut: kompoz_core::limiter::Acquire<'a>,
        queued_at: u64,
    },
    Holding(#[allow(dead_code)] SemaphorePermit<'a>),
}

/// Random acquires, polls, cancellations and releases against a model: the
/// permits held never exceed the capacity, a newcomer never gets a permit
/// while others wait, waiters are served in arrival order, and the permits
/// are whole at the end.
#[test]
fn random_operations_keep_permits_whole_and_order_fifo() {
    for seed in 1..=40u64 {
        let capacity = 1 + (seed as usize % 4);
        let pool = Semaphore::new(capacity).unwrap();
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut tasks: Vec<Task<'_>> = Vec::new();
        let mut arrivals = 0u64;
        for _ in 0..2_000 {
            match rng.below(5) {
                // A new caller.
                0 | 1 => {
                    let queue_before = pool.waiting();
                    let mut fut = pool.acquire();
                    arrivals += 1;
                    match poll_once(&mut fut) {
                        Poll::Ready(permit) => {
                            assert_eq!(queue_before, 0, "seed {seed}: newcomer barged");
                            tasks.push(Task::Holding(permit));
                        }
                        Poll::Pending => tasks.push(Task::Waiting {
                            fut,
                            queued_at: arrivals,
                        }),
                    }
                }
                // Poll a random task.
                2 => {
                    if tasks.is_empty() {
                        continue;
                    }
                    let i = rng.below(tasks.len() as u64) as usize;
                    let Task::Waiting { fut, queued_at } = &mut tasks[i] else {
                        continue;
                    };
                    let queued_at = *queued_at;
                    let Poll::Ready(permit) = poll_once(fut) else {
                        continue;
                    };
                    tasks[i] = Task::Holding(permit);
                    // Grants go in arrival order: everyone who queued
                    // earlier (and is still there) holds a permit too.
                    for other in tasks.iter_mut() {
                        if let Task::Waiting {
                            fut,
                            queued_at: earlier,
                        } = other
                            && *earlier < queued_at
                        {
                            let earlier = *earlier;
                            match poll_once(fut) {
                                Poll::Ready(permit) => *other = Task::Holding(permit),
                                Poll::Pending => panic!(
                                    "seed {seed}: waiter {queued_at} served before {earlier}"
                                ),
                            }
                        }
                    }
                }
                // Cancel or complete a random task.
                _ => {
                    if !tasks.is_empty() {
                        let i = rng.below(tasks.len() as u64) as usize;
                        drop(tasks.swap_remove(i));
                    }
                }
            }
            let holding = tasks
                .iter()
                .filter(|t| matches!(t, Task::Holding(_)))
                .count();
            assert!(holding <= capacity, "seed {seed}: {holding} > {capacity}");
            assert!(holding + pool.available() <= capacity);
        }
        drop(tasks);
        assert_eq!(pool.available(), capacity, "seed {seed}: permits lost");
        assert_eq!(pool.waiting(), 0);
    }
}

#[test]
fn semaphore_holds_across_threads() {
    let pool = Arc::new(Semaphore::new(3).unwrap());
    let inside = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (pool, inside, peak) = (pool.clone(), inside.clone(), peak.clone());
            std::thread::spawn(move || {
                for i in 0..5_000 {
                    let permit = if i % 3 == 0 {
                        match pool.try_acquire() {
                            Some(p) => p,
                            None => continue,
                        }
                    } else {
                        futures::executor::block_on(pool.acquire())
                    };
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::hint::spin_loop();
                    inside.fetch_sub(1, Ordering::SeqCst);
                    drop(permit);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(peak.load(Ordering::SeqCst) <= 3);
    assert_eq!(pool.available(), 3);
    assert_eq!(pool.waiting(), 0);
}

// ---- the limiter -------------------------------------------------------

fn pending_rule(runs: Arc<AtomicUsize>) -> impl Combinator<u32> {
    rule(async move |_: &u32| {
        runs.fetch_add(1, Ordering::SeqCst);
        futures::future::pending::<()>().await;
        true
    })
}

#[test]
fn limiter_reports_in_flight_waiting_and_available() {
    let runs = Arc::new(AtomicUsize::new(0));
    let limiter = Limited::new(pending_rule(runs.clone()), 2, ManualClock::new()).unwrap();
    let mut calls: Vec<_> = (0..5).map(|n| Box::pin(limiter.run(n))).collect();
    for call in &mut calls {
        assert!(poll_once(call).is_pending());
    }
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(limiter.in_flight(), 2);
    assert_eq!(limiter.available(), 0);
    assert_eq!(limiter.waiting(), 3);
    assert_eq!(limiter.max_concurrent(), 2);

    // Cancel one running call: the next in line starts on its next poll.
    drop(calls.remove(0));
    assert_eq!(limiter.waiting(), 2);
    for call in &mut calls {
        assert!(poll_once(call).is_pending());
    }
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    // Cancel a waiting one.
    drop(calls.pop());
    assert_eq!(limiter.waiting(), 1);
    drop(calls);
    assert_eq!(limiter.in_flight(), 0);
    assert_eq!(limiter.available(), 2);
    assert_eq!(limiter.waiting(), 0);
    assert_eq!(limiter.rejected(), 0);
}

#[test]
fn a_panicking_inner_combinator_gives_its_permit_back() {
    let limiter = Limited::new(
        rule(async |n: &u32| {
            assert!(*n != 13, "unlucky");
            true
        }),
        1,
        ManualClock::new(),
    )
    .unwrap();
    let result = futures::executor::block_on(AssertUnwindSafe(limiter.run(13)).catch_unwind());
    assert!(result.is_err());
    assert_eq!(limiter.available(), 1);
    assert_eq!(futures::executor::block_on(limiter.run(1)), (true, 1));
}

#[test]
fn reject_when_full_rejects_without_running_the_inner_combinator() {
    let runs = Arc::new(AtomicUsize::new(0));
    let limiter = Limited::new(pending_rule(runs.clone()), 1, ManualClock::new())
        .unwrap()
        .reject_when_full();
    assert_eq!(limiter.mode(), LimitMode::Reject);
    let mut running = Box::pin(limiter.run(1));
    assert!(poll_once(&mut running).is_pending());
    for n in 2..5 {
        let out = limiter.run_with_outcome(n).now_or_never();
        assert_eq!(out, Some((LimitOutcome::Rejected, n)));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(limiter.rejected(), 3);
    drop(running);
    assert_eq!(limiter.available(), 1);
}

#[test]
fn reject_mode_does_not_overtake_queued_waiters_of_the_same_pool() {
    let registry = Registry::new();
    let waits = Limited::named(
        rule(async |_: &u32| true),
        1,
        "p",
        &registry,
        ManualClock::new(),
    )
    .unwrap();
    let rejects = Limited::named(
        rule(async |_: &u32| true),
        1,
        "p",
        &registry,
        ManualClock::new(),
    )
    .unwrap()
    .reject_when_full();
    let held = waits.pool().try_acquire().unwrap();
    let mut queued = Box::pin(waits.run(1));
    assert!(poll_once(&mut queued).is_pending());
    drop(held); // handed to `queued`
    assert_eq!(
        rejects.run_with_outcome(2).now_or_never(),
        Some((LimitOutcome::Rejected, 2))
    );
    assert_eq!(poll_once(&mut queued), Poll::Ready((true, 1)));
    assert_eq!(rejects.run(3).now_or_never(), Some((true, 3)));
}

#[test]
fn bounded_wait_rejects_after_the_bound_and_leaves_the_queue() {
    let clock = ManualClock::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let limiter = Limited::new(pending_rule(runs.clone()), 1, clock.clone())
        .unwrap()
        .wait_at_most(Duration::from_secs(2));
    let mut holder = Box::pin(limiter.run(0));
    assert!(poll_once(&mut holder).is_pending());
    // Held at once: no timer was armed for the holder.
    assert_eq!(clock.pending_sleeps(), 0);

    let mut waiter = Box::pin(limiter.run_with_outcome(1));
    assert!(poll_once(&mut waiter).is_pending());
    assert_eq!(limiter.waiting(), 1);
    clock.advance(Duration::from_millis(1_999));
    assert!(poll_once(&mut waiter).is_pending(), "not before the bound");
    clock.advance(Duration::from_millis(1));
    assert_eq!(
        poll_once(&mut waiter),
        Poll::Ready((LimitOutcome::Rejected, 1))
    );
    assert_eq!(limiter.waiting(), 0);
    assert_eq!(limiter.rejected(), 1);
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    // A waiter whose permit comes within the bound runs.
    let mut lucky = Box::pin(limiter.run_with_outcome(2));
    assert!(poll_once(&mut lucky).is_pending());
    clock.advance(Duration::from_secs(1));
    drop(holder);
    assert!(poll_once(&mut lucky).is_pending()); // now running the (pending) inner
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    clock.advance(Duration::from_secs(5));
    assert!(
        poll_once(&mut lucky).is_pending(),
        "the bound only covers waiting"
    );
    assert_eq!(clock.pending_sleeps(), 0, "the wait's timer is gone");
    drop(lucky);
    assert_eq!(limiter.available(), 1);
}

#[test]
fn bad_limiter_configuration_is_refused_with_the_parameter_and_value() {
    let r = || rule(async |_: &u32| true);
    let err = Limited::new(r(), 0, ManualClock::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid `max_concurrent`: 0 (expected at least 1 and at most usize::MAX / 2)"
    );
    // Waiting at most no time is rejecting when full, and says so.
    let limiter = Limited::new(r(), 1, ManualClock::new())
        .unwrap()
        .wait_at_most(Duration::ZERO);
    assert_eq!(limiter.mode(), LimitMode::Reject);
    let limiter = limiter.with_mode(LimitMode::WaitAtMost(Duration::ZERO));
    assert_eq!(limiter.mode(), LimitMode::Reject);
    futures::executor::block_on(async {
        let _busy = limiter.pool().acquire().await;
        assert_eq!(
            limiter.run_with_outcome(1).await,
            (LimitOutcome::Rejected, 1)
        );
    });

    let registry = Registry::new();
    let err = Limited::named(r(), 3, "", &registry, ManualClock::new()).unwrap_err();
    assert_eq!(err.parameter(), "name");
    assert!(err.to_string().contains("non-empty"), "{err}");
    let err = Limited::named(r(), 0, "p", &registry, ManualClock::new()).unwrap_err();
    assert_eq!(err.parameter(), "max_concurrent");
    let err: &dyn std::error::Error = &err;
    assert!(err.source().is_none());
}

// ---- the registry ------------------------------------------------------

#[test]
fn a_name_shares_one_pool_and_refuses_another_capacity() {
    let registry = Registry::new();
    let r = || rule(async |_: &u32| true);
    let a = Limited::named(r(), 10, "api_pool", &registry, ManualClock::new()).unwrap();
    let b = Limited::named(r(), 10, "api_pool", &registry, ManualClock::new()).unwrap();
    assert!(Arc::ptr_eq(a.pool(), b.pool()));
    assert_eq!(a.name(), Some("api_pool"));

    let err = Limited::named(r(), 5, "api_pool", &registry, ManualClock::new()).unwrap_err();
    assert_eq!(
        err,
        ConfigError::name_conflict("api_pool", "max_concurrent", 10usize, 5usize)
    );
    let message = err.to_string();
    assert!(
        message.contains("api_pool") && message.contains("10") && message.contains('5'),
        "{message}"
    );

    let other = Limited::named(r(), 5, "db_pool", &registry, ManualClock::new()).unwrap();
    assert!(!Arc::ptr_eq(a.pool(), other.pool()));
    assert_eq!(registry.pool_names(), ["api_pool", "db_pool"]);

    // Registries are isolated from each other.
    let elsewhere = Registry::new();
    let c = Limited::named(r(), 5, "api_pool", &elsewhere, ManualClock::new()).unwrap();
    assert_eq!(c.max_concurrent(), 5);
}

#[test]
fn a_name_is_free_again_once_nothing_uses_it() {
    let registry = Registry::new();
    let r = || rule(async |_: &u32| true);
    let a = Limited::named(r(), 2, "short_lived", &registry, ManualClock::new()).unwrap();
    assert!(registry.existing_pool("short_lived").is_some());
    drop(a);
    assert!(registry.existing_pool("short_lived").is_none());
    assert!(registry.pool_names().is_empty());
    let b = Limited::named(r(), 7, "short_lived", &registry, ManualClock::new()).unwrap();
    assert_eq!(b.max_concurrent(), 7);
    // Many short-lived names do not pile up.
    for i in 0..1_000 {
        let _ = registry.pool(&format!("tenant-{i}"), 1).unwrap();
    }
    assert_eq!(registry.pool_names(), ["short_lived"]);
}

#[test]
fn the_global_registry_shares_across_limiters() {
    let r = || rule(async |_: &u32| true);
    let name = "kompoz-core-tests-global";
    let a = Limited::named(r(), 3, name, Registry::global(), ManualClock::new()).unwrap();
    let b = Limited::named(r(), 3, name, Registry::global(), ManualClock::new()).unwrap();
    assert!(Arc::ptr_eq(a.pool(), b.pool()));
    assert!(Registry::global().pool_names().contains(&name.to_string()));
}

#[test]
fn two_limiters_on_one_name_never_exceed_the_capacity_together() {
    let clock = ManualClock::new();
    let registry = Registry::new();
    let inside = AtomicUsize::new(0);
    let peak = AtomicUsize::new(0);
    let work = || {
        let clock = clock.clone();
        let (inside, peak) = (&inside, &peak);
        rule(async move |_: &u32| {
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            clock.sleep(Duration::from_millis(10)).await;
            inside.fetch_sub(1, Ordering::SeqCst);
            true
        })
    };
    let a = Limited::named(work(), 2, "shared", &registry, clock.clone()).unwrap();
    let b = Limited::named(work(), 2, "shared", &registry, clock.clone()).unwrap();
    let calls = futures::future::join_all((0..12u32).map(|n| {
        let (a, b) = (&a, &b);
        async move {
            if n % 2 == 0 {
                a.run(n).await
            } else {
                b.run(n).await
            }
        }
    }));
    let mut calls = Box::pin(calls);
    let results = loop {
        if let Poll::Ready(r) = poll_once(&mut calls) {
            break r;
        }
        clock.advance_to_next_deadline().expect("stalled");
    };
    assert!(results.iter().all(|(ok, _)| *ok));
    assert_eq!(peak.load(Ordering::SeqCst), 2);
    assert_eq!(clock.now().as_duration(), Duration::from_millis(60));
    assert_eq!(a.available(), 2);
}
