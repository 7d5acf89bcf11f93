//! Shared helpers for the kompoz benchmarks: the minimal executors every
//! group drives its futures with, the two-thread harness, and one criterion
//! configuration for all groups.
//!
//! Every contender in a group is driven the same way, so a figure is the
//! wrapper's own cost and not an executor's: a future whose inner step is
//! ready at once is polled exactly once with a no-op waker ([`poll_once`]).
//! Tower services get the same treatment through `ready()` and `call()`, each
//! polled once.

use std::future::Future;
use std::pin::pin;
use std::sync::Barrier;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::Criterion;

/// Polls `fut` once with a no-op waker and returns its output.
///
/// # Panics
///
/// If the future is pending: every benchmarked call wraps an inner step that
/// is ready at once, so a pending poll means the wrapper did something a
/// benchmark must not hide (waited, slept, queued).
#[inline(always)]
pub fn poll_once<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("benchmarked future was pending on its first poll"),
    }
}

/// Drives `fut` to completion by polling it in a spin loop with a no-op
/// waker: the executor for contended runs, where a call may have to wait for
/// another thread to release what it holds. No parking (only a yield after a
/// run of spins), so the figure is the primitive's hand-over cost and not the
/// OS scheduler's.
#[inline(always)]
pub fn spin_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    let mut spins = 0u32;
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        // On two cores shared with the OS, the thread this one waits for may
        // have been preempted: after a short spin, let it run.
        spins += 1;
        if spins % 64 == 0 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Runs `iters` calls split over two threads, each with one of `states`
/// (typically a clone of one shared breaker or limiter, plus whatever the
/// call needs), and returns the wall time from a common start to the last
/// thread's end: criterion then reports wall time per call, the inverse of
/// two-thread throughput. The states outlive the run, so a counter in them
/// carries over from one sample to the next.
pub fn two_threads<S, F>(iters: u64, states: &mut [S; 2], call: F) -> Duration
where
    S: Send,
    F: Fn(&mut S) + Sync,
{
    let per_thread = iters.div_ceil(2);
    let start = Barrier::new(3);
    let [first, second] = states;
    std::thread::scope(|scope| {
        let handles = [first, second].map(|state| {
            let start = &start;
            let call = &call;
            scope.spawn(move || {
                start.wait();
                for _ in 0..per_thread {
                    call(state);
                }
            })
        });
        start.wait();
        let began = Instant::now();
        for handle in handles {
            handle.join().expect("benchmark thread panicked");
        }
        began.elapsed()
    })
}

/// The criterion settings every group uses: short enough that the whole suite
/// runs in a few minutes on two cores, long enough for stable medians of
/// nanosecond-scale calls.
pub fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .configure_from_args()
}

/// A current-thread tokio runtime with the time driver, for the groups that
/// need a timer in context (enter it with `rt.enter()`).
pub fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime")
}

/// One request through a tower service the way a caller makes it:
/// `ready()` polled once, then `call()` and its future polled once.
#[inline(always)]
pub fn tower_once<S, R>(svc: &mut S, req: R) -> Result<S::Response, S::Error>
where
    S: tower::Service<R>,
{
    use tower::ServiceExt;
    poll_once(svc.ready())?;
    poll_once(svc.call(req))
}

/// [`tower_once`] for contended runs: readiness and the call are spun on
/// until they complete.
#[inline(always)]
pub fn tower_spin<S, R>(svc: &mut S, req: R) -> Result<S::Response, S::Error>
where
    S: tower::Service<R>,
{
    use tower::ServiceExt;
    spin_on(svc.ready())?;
    spin_on(svc.call(req))
}

/// Consumes a call's result so the optimiser must compute it.
#[inline(always)]
pub fn sink<T>(result: T) {
    std::hint::black_box(result);
}
