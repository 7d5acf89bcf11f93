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

use std::sync::Mutex as StdMutex;
use std::time::Duration;

use kompoz_core::{
    CircuitBreaker, CircuitState, Clock, Combinator, Instant, RateLimit, RateLimited, Registry,
    Semaphore, limiter::LimitOutcome,
};
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

/// A hand-off is seen by the woken waiter through the published ticket,
/// without the waiter list's lock: what the holder wrote before releasing
/// (a relaxed store, ordered only by the hand-off itself) is visible to the
/// waiter once it has the permit.
#[test]
fn semaphore_handoff_publishes_the_holders_writes() {
    loom::model(|| {
        let pool = Arc::new(Semaphore::new(1).unwrap());
        let data = Arc::new(AtomicUsize::new(0));
        let held = pool.try_acquire().unwrap();
        let waiter = {
            let (pool, data) = (Arc::clone(&pool), Arc::clone(&data));
            thread::spawn(move || {
                let permit = block_on(pool.acquire());
                assert_eq!(data.load(Ordering::Relaxed), 1, "the holder's write");
                drop(permit);
            })
        };
        data.store(1, Ordering::Relaxed);
        drop(held);
        waiter.join().unwrap();
        assert_eq!(pool.available(), 1);
        assert_eq!(pool.waiting(), 0);
    });
}

/// Two waiters queued behind the holder on one permit, each incrementing a
/// relaxed counter while it holds the permit: the hand-offs chain (the
/// second waiter is granted by the first one's release, seen lock-free or
/// under the lock), nobody is inside at once, and no increment is lost.
#[test]
fn semaphore_chained_handoffs_keep_mutual_exclusion() {
    loom::model(|| {
        let pool = Arc::new(Semaphore::new(1).unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let held = pool.try_acquire().unwrap();
        let worker = {
            let (pool, count) = (Arc::clone(&pool), Arc::clone(&count));
            move || {
                let permit = block_on(pool.acquire());
                let seen = count.load(Ordering::Relaxed);
                count.store(seen + 1, Ordering::Relaxed);
                drop(permit);
            }
        };
        let a = thread::spawn(worker.clone());
        let b = thread::spawn(worker);
        drop(held);
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(count.load(Ordering::Relaxed), 2, "an increment was lost");
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

/// The same race with owned acquires (the waiting logic both futures
/// share): an owned waiter cancelled while the holder releases passes the
/// permit to the owned waiter behind it.
#[test]
fn semaphore_owned_cancel_races_release_with_second_waiter() {
    loom::model(|| {
        let pool = Arc::new(Semaphore::new(1).unwrap());
        let (taken, go) = (Signal::new(), Signal::new());
        let t = holder(&pool, &taken, &go);
        taken.wait();
        let mut first = pool.acquire_owned();
        assert!(poll_once(&mut first).is_pending());
        let queued = Signal::new();
        let second = {
            let (pool, queued) = (Arc::clone(&pool), Arc::clone(&queued));
            thread::spawn(move || {
                let mut second = pool.acquire_owned();
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

// ------------------------------------------------------------ a loom clock

/// Time that moves only between model steps (set before threads start), and
/// sleeps that never complete but record what they were asked for. Its
/// state is std's, not loom's: it is only written outside the threads, or
/// under a lock that no loom operation happens inside of.
#[derive(Clone, Default)]
struct FrozenClock {
    now: Arc<std::sync::atomic::AtomicU64>,
    sleeps: Arc<StdMutex<Vec<(thread::ThreadId, Duration)>>>,
}

impl FrozenClock {
    fn set(&self, secs: u64) {
        self.now
            .store(secs * 1_000_000_000, std::sync::atomic::Ordering::SeqCst);
    }
    /// The sleeps asked for so far, with the model thread that asked.
    fn sleeps(&self) -> Vec<(thread::ThreadId, Duration)> {
        self.sleeps.lock().unwrap().clone()
    }
    /// The last sleep `thread` asked for.
    fn last_sleep_of(&self, thread: thread::ThreadId) -> Duration {
        let sleeps = self.sleeps();
        sleeps.iter().rev().find(|(t, _)| *t == thread).unwrap().1
    }
}

impl Clock for FrozenClock {
    type Sleep = std::future::Pending<()>;
    fn now(&self) -> Instant {
        Instant::from_nanos(self.now.load(std::sync::atomic::Ordering::SeqCst))
    }
    fn sleep(&self, d: Duration) -> Self::Sleep {
        self.sleeps
            .lock()
            .unwrap()
            .push((thread::current().id(), d));
        std::future::pending()
    }
}

// ------------------------------------------------------------------ breaker

/// The inner combinator of the breaker models: returns the verdict it is
/// given as context, counts calls inside at once (a loom atomic, so the
/// overlap is explored), and optionally yields once first (so a caller can
/// drop it mid-call).
#[derive(Clone)]
struct Inner {
    inside: Arc<AtomicUsize>,
    max_inside: Arc<AtomicUsize>,
    ran: Arc<AtomicUsize>,
    yield_first: bool,
}

impl Inner {
    fn new(yield_first: bool) -> Inner {
        Inner {
            inside: Arc::new(AtomicUsize::new(0)),
            max_inside: Arc::new(AtomicUsize::new(0)),
            ran: Arc::new(AtomicUsize::new(0)),
            yield_first,
        }
    }
}

impl Combinator<bool> for Inner {
    fn run(&self, ok: bool) -> impl Future<Output = (bool, bool)> {
        let this = self.clone();
        async move {
            let n = this.inside.fetch_add(1, Ordering::SeqCst) + 1;
            this.max_inside.fetch_max(n, Ordering::SeqCst);
            this.ran.fetch_add(1, Ordering::SeqCst);
            // Leaves `inside` however the future ends (dropped included).
            struct Out(Arc<AtomicUsize>);
            impl Drop for Out {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::SeqCst);
                }
            }
            let _out = Out(Arc::clone(&this.inside));
            if this.yield_first {
                let mut yielded = false;
                std::future::poll_fn(|cx| {
                    if yielded {
                        Poll::Ready(())
                    } else {
                        yielded = true;
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    }
                })
                .await;
            }
            (ok, ok)
        }
    }
}

/// Transitions seen by `on_state_change`, counted per (from, to).
#[derive(Clone, Default)]
struct Transitions(Arc<StdMutex<Vec<(CircuitState, CircuitState)>>>);

impl Transitions {
    fn count(&self, from: CircuitState, to: CircuitState) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|&&t| t == (from, to))
            .count()
    }
    fn all(&self) -> Vec<(CircuitState, CircuitState)> {
        self.0.lock().unwrap().clone()
    }
}

type Guarded = CircuitBreaker<Inner, FrozenClock>;

/// A breaker that opens after `threshold` failures, recovers after 1 s and
/// admits `probes` probes at once.
fn breaker(
    inner: &Inner,
    clock: &FrozenClock,
    threshold: u32,
    probes: u32,
) -> (Arc<Guarded>, Transitions) {
    let seen = Transitions::default();
    let log = seen.clone();
    let b = CircuitBreaker::builder(inner.clone(), clock.clone())
        .failure_threshold(threshold)
        .recovery_timeout(Duration::from_secs(1))
        .half_open_max_calls(probes)
        .on_state_change(move |from, to, _| log.0.lock().unwrap().push((from, to)))
        .build()
        .unwrap();
    (Arc::new(b), seen)
}

/// Opens `b` with one failing call and moves the clock past recovery.
fn open_and_recover(b: &Guarded, clock: &FrozenClock) {
    assert_eq!(block_on(b.run(false)), (false, false));
    assert_eq!(b.state(), CircuitState::Open);
    clock.set(2);
}

/// Two callers arrive together once recovery is due: one becomes the probe
/// (OPEN -> HALF_OPEN exactly once), the other is rejected or (after the
/// probe closed the circuit) admitted; never two probes at once.
#[test]
fn breaker_half_open_admits_one_probe() {
    loom::model(|| {
        let clock = FrozenClock::default();
        let inner = Inner::new(false);
        let (b, seen) = breaker(&inner, &clock, 1, 1);
        open_and_recover(&b, &clock);
        let b2 = Arc::clone(&b);
        let t = thread::spawn(move || block_on(b2.run(true)).0);
        let mine = block_on(b.run(true)).0;
        let theirs = t.join().unwrap();
        assert!(mine || theirs, "one of them is the probe");
        assert_eq!(
            inner.max_inside.load(Ordering::SeqCst),
            1,
            "two probes at once"
        );
        assert_eq!(seen.count(CircuitState::Open, CircuitState::HalfOpen), 1);
        assert_eq!(seen.count(CircuitState::HalfOpen, CircuitState::Closed), 1);
        assert_eq!(b.state(), CircuitState::Closed);
        let stats = b.stats();
        let ran = inner.ran.load(Ordering::SeqCst) as u64;
        assert_eq!(ran, stats.success_count + stats.failure_count);
        assert_eq!(
            ran + stats.rejected_count,
            3,
            "every call accounted for once"
        );
    });
}

/// Two probes allowed, three callers: at most two inside at once. Three
/// threads make a large model: it is bounded to two preemptions whatever
/// `LOOM_MAX_PREEMPTIONS` says.
#[test]
fn breaker_half_open_two_probes_three_callers() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(2);
    model.check(|| {
        let clock = FrozenClock::default();
        let inner = Inner::new(false);
        let (b, seen) = breaker(&inner, &clock, 1, 2);
        open_and_recover(&b, &clock);
        let spawn = |b: &Arc<Guarded>| {
            let b = Arc::clone(b);
            thread::spawn(move || block_on(b.run(true)).0)
        };
        let (t1, t2) = (spawn(&b), spawn(&b));
        let mine = block_on(b.run(true)).0;
        let oks = [mine, t1.join().unwrap(), t2.join().unwrap()];
        assert!(
            inner.max_inside.load(Ordering::SeqCst) <= 2,
            "three probes at once"
        );
        assert!(oks.iter().filter(|&&ok| ok).count() >= 2);
        assert_eq!(seen.count(CircuitState::Open, CircuitState::HalfOpen), 1);
        assert_eq!(seen.count(CircuitState::HalfOpen, CircuitState::Closed), 1);
        assert_eq!(b.stats().half_open_in_flight, 0);
    });
}

/// Two failures race in CLOSED with a threshold of 2: the circuit opens
/// exactly once and both failures are counted.
#[test]
fn breaker_concurrent_failures_trip_once() {
    loom::model(|| {
        let clock = FrozenClock::default();
        let inner = Inner::new(false);
        let (b, seen) = breaker(&inner, &clock, 2, 1);
        let b2 = Arc::clone(&b);
        let t = thread::spawn(move || block_on(b2.run(false)));
        block_on(b.run(false));
        t.join().unwrap();
        assert_eq!(seen.all(), [(CircuitState::Closed, CircuitState::Open)]);
        assert_eq!(b.state(), CircuitState::Open);
        assert_eq!(b.stats().failure_count, 2);
    });
}

/// A probe is dropped mid-call while another caller arrives: the slot comes
/// back (no stuck HALF_OPEN), and a later call gets through.
#[test]
fn breaker_cancelled_probe_releases_its_slot() {
    loom::model(|| {
        let clock = FrozenClock::default();
        let inner = Inner::new(true);
        let (b, _seen) = breaker(&inner, &clock, 1, 1);
        open_and_recover(&b, &clock);
        let b2 = Arc::clone(&b);
        let t = thread::spawn(move || {
            let mut probe = Box::pin(b2.run(true));
            let first = poll_once(&mut probe);
            drop(probe); // cancelled while inside (or already finished)
            first
        });
        let other = block_on(b.run(true)).0;
        let first = t.join().unwrap();
        let stats = b.stats();
        assert_eq!(
            stats.half_open_in_flight, 0,
            "a probe slot leaked: {stats:?}"
        );
        assert!(first.is_pending() || other || stats.state == CircuitState::Closed);
        // Not stuck: the next call is admitted and closes the circuit.
        assert_eq!(block_on(b.run(true)), (true, true));
        assert_eq!(b.state(), CircuitState::Closed);
    });
}

/// An owned probe permit dropped unrecorded on another thread while a
/// caller asks for a probe: the slot comes back, and the circuit can close.
#[test]
fn breaker_owned_probe_permit_dropped_on_another_thread() {
    loom::model(|| {
        let clock = FrozenClock::default();
        let inner = Inner::new(true);
        let (b, _seen) = breaker(&inner, &clock, 1, 1);
        open_and_recover(&b, &clock);
        let permit = b.breaker().try_acquire_owned().expect("the probe");
        let t = thread::spawn(move || drop(permit));
        let other = b.breaker().try_acquire();
        t.join().unwrap();
        if let Ok(probe) = other {
            probe.success(); // got the slot back in time: closes it
        }
        let stats = b.stats();
        assert_eq!(
            stats.half_open_in_flight, 0,
            "a probe slot leaked: {stats:?}"
        );
        assert_eq!(block_on(b.run(true)), (true, true));
        assert_eq!(b.state(), CircuitState::Closed);
    });
}

/// `reset()` races a failing call that trips the breaker: whatever the
/// order, the callbacks describe the transitions that happened, once each,
/// and the final state agrees with them.
#[test]
fn breaker_reset_races_trip() {
    loom::model(|| {
        let clock = FrozenClock::default();
        let inner = Inner::new(false);
        let (b, seen) = breaker(&inner, &clock, 1, 1);
        let b2 = Arc::clone(&b);
        let t = thread::spawn(move || block_on(b2.run(false)));
        b.reset();
        t.join().unwrap();
        let opened = seen.count(CircuitState::Closed, CircuitState::Open);
        let closed = seen.count(CircuitState::Open, CircuitState::Closed);
        assert!(opened <= 1 && closed <= opened, "{:?}", seen.all());
        let open_now = opened - closed == 1;
        assert_eq!(
            b.state() == CircuitState::Open,
            open_now,
            "{:?}",
            seen.all()
        );
    });
}

// --------------------------------------------------------------- rate limit

/// Two callers race for a burst of one at the same instant: exactly one
/// gets in; with a burst of two, both do and a third is refused.
#[test]
fn rate_limit_word_admits_exactly_the_burst() {
    for burst in [1u32, 2] {
        loom::model(move || {
            let clock = FrozenClock::default();
            let limit = RateLimit::with_burst(1, Duration::from_secs(1), burst).unwrap();
            let inner = Inner::new(false);
            let l = Arc::new(RateLimited::new(inner, limit, clock).reject_when_full());
            let l2 = Arc::clone(&l);
            let t = thread::spawn(move || block_on(l2.run_with_outcome(true)).0);
            let mine = block_on(l.run_with_outcome(true)).0;
            let theirs = t.join().unwrap();
            let ran = [mine, theirs].iter().filter(|o| !o.is_rejected()).count();
            assert_eq!(ran, burst as usize);
            assert!(block_on(l.run_with_outcome(true)).0.is_rejected());
            assert_eq!(l.rejected(), 3 - burst as u64);
        });
    }
}

/// A waiting caller is cancelled (its slot refunded where possible) while
/// another reserves: the refund never hands out a slot that a live waiter
/// holds. The next caller's wait must lie beyond the live waiter's.
#[test]
fn rate_limit_refund_never_steals_a_live_slot() {
    loom::model(|| {
        let clock = FrozenClock::default();
        let limit = RateLimit::per_second(1).unwrap();
        let l = Arc::new(RateLimited::new(Inner::new(false), limit, clock.clone()));
        assert_eq!(
            block_on(l.run_with_outcome(true)).0,
            LimitOutcome::Ran(true)
        ); // burst spent
        let l2 = Arc::clone(&l);
        let canceller = thread::spawn(move || {
            let mut call = Box::pin(l2.run_with_outcome(true));
            assert!(poll_once(&mut call).is_pending(), "waits for the next slot");
            drop(call); // refund
        });
        let l3 = Arc::clone(&l);
        let keeper = thread::spawn(move || {
            let mut call = Box::pin(async move { l3.run_with_outcome(true).await });
            assert!(poll_once(&mut call).is_pending());
            // The live waiter: its slot is the sleep it asked for.
            (call, thread::current().id())
        });
        canceller.join().unwrap();
        let (live, keeper_id) = keeper.join().unwrap();
        let live_wait = clock.last_sleep_of(keeper_id);
        let mut next = Box::pin(l.run_with_outcome(true));
        assert!(poll_once(&mut next).is_pending());
        let next_wait = clock.last_sleep_of(thread::current().id());
        assert!(
            next_wait >= live_wait + Duration::from_secs(1),
            "two live waiters share a slot: {:?}",
            clock.sleeps()
        );
        drop(live);
    });
}
