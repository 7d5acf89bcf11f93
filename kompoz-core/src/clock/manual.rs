//! Virtual time for deterministic tests.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{Clock, Instant};

/// A [`Clock`] whose time moves only when told to.
///
/// Time starts at [`Instant::ZERO`] and moves forward by [`advance`](Self::advance)
/// or [`advance_to`](Self::advance_to). Sleeps complete exactly when their
/// deadline is reached; those that become due in one step are woken in
/// deadline order (ties in the order they were first polled). Clones share
/// one timeline, and a `ManualClock` may be used from many tasks and threads.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use futures::FutureExt;
/// use kompoz_core::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let mut sleep = Box::pin(clock.sleep(Duration::from_secs(5)));
///
/// assert!((&mut sleep).now_or_never().is_none());
/// clock.advance(Duration::from_secs(4));
/// assert!((&mut sleep).now_or_never().is_none()); // not before its deadline
/// clock.advance(Duration::from_secs(1));
/// assert!(sleep.now_or_never().is_some());
/// assert_eq!(clock.now().as_duration(), Duration::from_secs(5));
/// ```
#[derive(Clone, Default)]
pub struct ManualClock {
    shared: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    now: Instant,
    next_id: u64,
    /// Registered sleepers by `(deadline, registration order)`.
    sleepers: BTreeMap<(Instant, u64), Waker>,
}

impl ManualClock {
    /// A new timeline starting at [`Instant::ZERO`].
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement, so a panic elsewhere
        // while the lock was held leaves nothing half-done.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves time forward by `by` and wakes every sleep that is now due.
    pub fn advance(&self, by: Duration) {
        let target = self.now() + by;
        self.advance_to(target);
    }

    /// Moves time forward to `instant` (no-op if it is not later than now) and
    /// wakes every sleep that is now due, in deadline order.
    pub fn advance_to(&self, instant: Instant) {
        let due: Vec<Waker> = {
            let mut state = self.lock();
            if instant > state.now {
                state.now = instant;
            }
            let now = state.now;
            let later = state.sleepers.split_off(&(now, u64::MAX));
            core::mem::replace(&mut state.sleepers, later)
                .into_values()
                .collect()
        };
        // Woken outside the lock: a waker may poll (and so lock) right away.
        for waker in due {
            waker.wake();
        }
    }

    /// The earliest deadline among pending sleeps, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.lock()
            .sleepers
            .keys()
            .next()
            .map(|&(deadline, _)| deadline)
    }

    /// Advances to the earliest pending deadline and wakes what is due there.
    /// Returns that deadline, or `None` (time unchanged) if nothing is sleeping.
    pub fn advance_to_next_deadline(&self) -> Option<Instant> {
        let next = self.next_deadline()?;
        self.advance_to(next);
        Some(next)
    }

    /// How many sleeps are registered and not yet due (dropped sleeps deregister).
    pub fn pending_sleeps(&self) -> usize {
        self.lock().sleepers.len()
    }

    /// Runs `fut` to completion on this thread, moving time as tokio's
    /// paused clock does: whenever the future is pending and nothing has
    /// woken it, time jumps to the earliest pending sleep's deadline.
    ///
    /// So a test reads as straight-line async code, and its waits take no
    /// real time:
    ///
    /// ```
    /// use core::time::Duration;
    /// use kompoz_core::{ClockExt, rule, Clock, Combinator, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let slow = rule({
    ///     let clock = clock.clone();
    ///     async move |_: &u32| { clock.sleep(Duration::from_secs(60)).await; true }
    /// });
    /// let check = clock.with_timeout(slow, Duration::from_secs(5))?;
    ///
    /// assert_eq!(clock.block_on(check.run(7)), (false, 7));
    /// assert_eq!(clock.now().as_duration(), Duration::from_secs(5));
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    ///
    /// # Panics
    ///
    /// If the future stays pending with no sleep pending on this clock and
    /// nothing (from another thread) wakes it for 10 seconds of real time:
    /// it can never finish, and a test should fail rather than hang.
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        let mut fut = core::pin::pin!(fut);
        let signal = Arc::new(ThreadSignal {
            woken: AtomicBool::new(false),
            thread: std::thread::current(),
        });
        let waker = Waker::from(Arc::clone(&signal));
        let mut cx = Context::from_waker(&waker);
        loop {
            signal.woken.store(false, Ordering::Release);
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
            if signal.woken.load(Ordering::Acquire) || self.advance_to_next_deadline().is_some() {
                continue;
            }
            let started = std::time::Instant::now();
            while !signal.woken.load(Ordering::Acquire) {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "ManualClock::block_on: the future is pending, nothing sleeps on the clock, \
                     and nothing woke it for 10 s"
                );
                std::thread::park_timeout(Duration::from_millis(10));
            }
        }
    }
}

/// Wakes [`ManualClock::block_on`]'s thread.
struct ThreadSignal {
    woken: AtomicBool,
    thread: std::thread::Thread,
}

impl std::task::Wake for ThreadSignal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("ManualClock")
            .field("now", &state.now)
            .field("pending_sleeps", &state.sleepers.len())
            .finish()
    }
}

impl Clock for ManualClock {
    type Sleep = ManualSleep;

    fn now(&self) -> Instant {
        self.lock().now
    }

    fn sleep(&self, duration: Duration) -> ManualSleep {
        let deadline = self.now() + duration;
        ManualSleep {
            clock: self.clone(),
            deadline,
            key: None,
        }
    }
}

/// The future returned by [`ManualClock::sleep`].
#[must_use = "futures do nothing unless polled"]
pub struct ManualSleep {
    clock: ManualClock,
    deadline: Instant,
    /// Our slot in the sleeper map once registered.
    key: Option<(Instant, u64)>,
}

impl ManualSleep {
    /// When this sleep completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl fmt::Debug for ManualSleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualSleep")
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut state = this.clock.lock();
        if state.now >= this.deadline {
            if let Some(key) = this.key.take() {
                state.sleepers.remove(&key);
            }
            return Poll::Ready(());
        }
        let key = match this.key {
            Some(key) => key,
            None => {
                let key = (this.deadline, state.next_id);
                state.next_id += 1;
                this.key = Some(key);
                key
            }
        };
        // Re-inserted on every pending poll: `advance_to` removes due entries,
        // and the task may have moved to another waker.
        match state.sleepers.get_mut(&key) {
            Some(waker) => waker.clone_from(cx.waker()),
            None => {
                state.sleepers.insert(key, cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.clock.lock().sleepers.remove(&key);
        }
    }
}
