//! `ManualClock`: wake-up order, no early wake-ups, many sleepers across threads.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use kompoz_core::{Clock, Instant, ManualClock};

/// A waker that records its label in a shared log when woken.
struct Recorder {
    label: u64,
    log: Arc<Mutex<Vec<u64>>>,
}

impl Wake for Recorder {
    fn wake(self: Arc<Self>) {
        self.log.lock().unwrap().push(self.label);
    }
}

fn poll_once<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(waker))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn due_sleeps_wake_in_deadline_order() {
    let clock = ManualClock::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    // Registered out of order; two share a deadline (ties keep registration order).
    let mut sleeps: Vec<_> = [30, 10, 20, 10, 40]
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            let mut s = Box::pin(clock.sleep(ms(d)));
            let waker = Waker::from(Arc::new(Recorder {
                label: i as u64,
                log: Arc::clone(&log),
            }));
            assert!(poll_once(&mut s, &waker).is_pending());
            s
        })
        .collect();
    assert_eq!(clock.pending_sleeps(), 5);
    assert_eq!(clock.next_deadline(), Some(Instant::from_nanos(10_000_000)));

    clock.advance(ms(35));
    assert_eq!(
        *log.lock().unwrap(),
        vec![1, 3, 2, 0],
        "deadline order, ties by registration"
    );
    assert_eq!(clock.pending_sleeps(), 1);

    let noop = Waker::noop();
    for s in &mut sleeps[..4] {
        assert!(poll_once(s, noop).is_ready());
    }
    assert!(poll_once(&mut sleeps[4], noop).is_pending());
}

#[test]
fn no_wake_up_before_the_deadline() {
    let clock = ManualClock::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let waker = Waker::from(Arc::new(Recorder {
        label: 7,
        log: Arc::clone(&log),
    }));
    let mut s = Box::pin(clock.sleep(Duration::from_secs(1)));
    assert!(poll_once(&mut s, &waker).is_pending());

    clock.advance(Duration::from_secs(1) - Duration::from_nanos(1));
    assert!(log.lock().unwrap().is_empty());
    assert!(poll_once(&mut s, &waker).is_pending());

    clock.advance(Duration::from_nanos(1));
    assert_eq!(*log.lock().unwrap(), vec![7]);
    assert!(poll_once(&mut s, &waker).is_ready());
}

#[test]
fn a_zero_sleep_is_ready_at_once_and_time_never_goes_back() {
    let clock = ManualClock::new();
    assert!(poll_once(&mut Box::pin(clock.sleep(Duration::ZERO)), Waker::noop()).is_ready());
    clock.advance(ms(5));
    clock.advance_to(Instant::from_nanos(1)); // earlier: ignored
    assert_eq!(clock.now(), Instant::from_nanos(5_000_000));
    assert_eq!(clock.advance_to_next_deadline(), None);
}

#[test]
fn dropped_sleeps_deregister() {
    let clock = ManualClock::new();
    let mut s = Box::pin(clock.sleep(ms(10)));
    assert!(poll_once(&mut s, Waker::noop()).is_pending());
    assert_eq!(clock.pending_sleeps(), 1);
    drop(s);
    assert_eq!(clock.pending_sleeps(), 0);
    assert_eq!(clock.next_deadline(), None);
}

#[test]
fn clones_share_one_timeline() {
    let a = ManualClock::new();
    let b = a.clone();
    b.advance(ms(3));
    assert_eq!(a.now(), b.now());
    assert_eq!(a.now().as_duration(), ms(3));
}

#[test]
fn many_sleepers_across_threads() {
    const THREADS: usize = 8;
    const SLEEPS: u64 = 25;
    let clock = ManualClock::new();
    let finished = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(THREADS + 1));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let clock = clock.clone();
            let finished = Arc::clone(&finished);
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                futures::executor::block_on(async {
                    for i in 0..SLEEPS {
                        let d = ms(1 + (t as u64 * 7 + i * 3) % 5);
                        let before = clock.now();
                        clock.sleep(d).await;
                        assert!(clock.now() >= before + d, "woke before its deadline");
                    }
                });
                finished.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    start.wait();
    // Drive time forward until every thread is done; each step is 1 ms of
    // virtual time, so every sleep needs several steps.
    let mut steps = 0u32;
    while finished.load(Ordering::SeqCst) < THREADS {
        clock.advance(ms(1));
        std::thread::yield_now();
        steps += 1;
        assert!(steps < 10_000_000, "sleepers never finished");
    }
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(clock.pending_sleeps(), 0);
}
