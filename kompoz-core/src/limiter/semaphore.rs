//! A fair (FIFO) async semaphore, portable to `no_std` + `alloc`.
//!
//! # Why not `async-lock`
//!
//! `async-lock`'s `Semaphore` wakes a waiter on release but lets any caller
//! that arrives before the woken waiter runs take the permit ("barging"), so
//! waiters are not admitted in arrival order and a steady stream of new
//! callers can starve an old waiter. A concurrency limiter promises FIFO, so
//! this crate has its own semaphore.
//!
//! # Design
//!
//! One atomic word holds the free permits (shifted left by one) and a
//! `QUEUED` bit that is set exactly while the waiter queue is non-empty.
//!
//! - Fast path: with `QUEUED` clear, acquire and release are one CAS on the
//!   word. No lock, no allocation.
//! - While `QUEUED` is set, the fast paths fail and everything happens under
//!   the queue's lock, where the permit count is zero: a release hands its
//!   permit *directly* to the head waiter (so a newcomer can never take it
//!   first), and a newcomer queues behind the others.
//! - A hand-off publishes the granted waiter's ticket in a second atomic
//!   (`granted`, written under the lock): the woken waiter sees its permit
//!   with one load, without taking the lock again (as tokio's semaphore
//!   reads its node's atomic).
//! - A waiter dropped while queued leaves the queue; one dropped after being
//!   handed a permit, before it saw it, passes the permit on.

use alloc::sync::Arc;
use core::fmt;

mod acquire;
mod permit;

use acquire::Waiter;
pub use acquire::{Acquire, AcquireOwned};
pub use permit::{OwnedSemaphorePermit, SemaphorePermit};

use super::waiters::Waiters;
use crate::ConfigError;
use crate::sync::{AtomicUsize, Mutex, Ordering};

/// Set while waiters are queued; free permits are `state >> 1`.
const QUEUED: usize = 1;
/// One permit in the state word.
const ONE: usize = 2;

/// A fair async semaphore: waiters get permits in the order they asked.
///
/// This is the pool behind [`Limited`](crate::Limited) and the named pools of
/// a [`Registry`](crate::Registry); it can also be used on its own, like
/// `async-lock`'s or tokio's semaphore. An uncontended
/// [`acquire`](Self::acquire) + release is one compare-and-swap each, with
/// no lock and no allocation. Waiting is FIFO: once a caller waits, later
/// callers queue behind it, even if a permit comes free in between.
///
/// Dropping an [`Acquire`] future (a cancelled caller) leaves the queue, and
/// dropping a [`SemaphorePermit`] (also during a panic's unwinding) gives the
/// permit back, or to the next waiter.
///
/// # Examples
///
/// ```
/// use kompoz_core::Semaphore;
///
/// let pool = Semaphore::new(2)?;
/// futures::executor::block_on(async {
///     let a = pool.acquire().await;
///     let _b = pool.acquire().await;
///     assert_eq!(pool.available(), 0);
///     assert!(pool.try_acquire().is_none());
///     drop(a);
///     assert!(pool.try_acquire().is_some());
/// });
/// assert_eq!(pool.available(), 2);
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
pub struct Semaphore {
    state: AtomicUsize,
    capacity: usize,
    /// The ticket of the last waiter handed a permit; written under the
    /// `waiters` lock (release), read by woken waiters without it (acquire).
    granted: AtomicUsize,
    waiters: Mutex<Waiters>,
}

impl Semaphore {
    /// The largest number of permits a semaphore can hold.
    pub const MAX_PERMITS: usize = usize::MAX >> 1;

    /// A semaphore with `permits` permits, all free.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for `permits` of zero or above
    /// [`MAX_PERMITS`](Self::MAX_PERMITS).
    pub fn new(permits: usize) -> Result<Self, ConfigError> {
        check_capacity("permits", permits)?;
        Ok(Self::with_valid_capacity(permits))
    }

    /// `permits` must have passed [`check_capacity`].
    pub(crate) fn with_valid_capacity(permits: usize) -> Self {
        Semaphore {
            state: AtomicUsize::new(permits << 1),
            capacity: permits,
            granted: AtomicUsize::new(0),
            waiters: Mutex::new(Waiters::new(0)),
        }
    }

    /// How many permits the semaphore was built with.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Permits free right now (a snapshot).
    pub fn available(&self) -> usize {
        self.state.load(Ordering::Acquire) >> 1
    }

    /// Permits held right now: `capacity() - available()`, including permits
    /// handed to a waiter that has not run yet (a snapshot).
    pub fn in_use(&self) -> usize {
        self.capacity.saturating_sub(self.available())
    }

    /// Callers queued for a permit right now (a snapshot).
    pub fn waiting(&self) -> usize {
        self.waiters.lock().len()
    }

    /// Takes a permit if one is free and nobody is queued for it; never waits.
    ///
    /// # Examples
    ///
    /// ```
    /// use kompoz_core::Semaphore;
    ///
    /// let pool = Semaphore::new(1)?;
    /// let permit = pool.try_acquire();
    /// assert!(permit.is_some());
    /// assert!(pool.try_acquire().is_none());
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & QUEUED != 0 || state < ONE {
                return None;
            }
            match self.state.compare_exchange_weak(
                state,
                state - ONE,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(SemaphorePermit { semaphore: self }),
                Err(actual) => state = actual,
            }
        }
    }

    /// As [`try_acquire`](Self::try_acquire), with a permit that holds a
    /// handle to the semaphore: `'static`, `Send` and `Sync`, for a permit
    /// kept beyond a borrow (in a spawned task, a tower service's response
    /// future).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kompoz_core::Semaphore;
    ///
    /// let pool = Arc::new(Semaphore::new(1)?);
    /// let permit = pool.try_acquire_owned().expect("a permit is free");
    /// assert!(pool.try_acquire_owned().is_none());
    /// std::thread::spawn(move || drop(permit)).join().unwrap();
    /// assert_eq!(pool.available(), 1);
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    #[inline]
    pub fn try_acquire_owned(self: &Arc<Self>) -> Option<OwnedSemaphorePermit> {
        self.try_take().then(|| OwnedSemaphorePermit {
            semaphore: Arc::clone(self),
        })
    }

    /// Takes a free permit if nobody is queued for it, for a holder other
    /// than a [`SemaphorePermit`] (which the caller then builds).
    #[inline]
    fn try_take(&self) -> bool {
        // The borrowed permit is only a reference: forgetting it leaks
        // nothing and hands its permit to the caller. (The borrowed path
        // keeps its own loop: it returns the permit straight from the CAS.)
        self.try_acquire().map(core::mem::forget).is_some()
    }

    /// Waits for a permit, in arrival order.
    ///
    /// # Examples
    ///
    /// ```
    /// use kompoz_core::Semaphore;
    ///
    /// let pool = Semaphore::new(1)?;
    /// futures::executor::block_on(async {
    ///     let permit = pool.acquire().await;
    ///     assert_eq!(pool.available(), 0);
    ///     drop(permit);
    ///     assert_eq!(pool.available(), 1);
    /// });
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    pub fn acquire(&self) -> Acquire<'_> {
        Acquire {
            semaphore: self,
            waiter: Waiter::new(),
        }
    }

    /// As [`acquire`](Self::acquire), through an `Arc`: the future and its
    /// permit hold a handle to the semaphore, so both are `'static`.
    ///
    /// The future is `Unpin + Send + 'static`: a tower service can keep it
    /// in a field and poll it from `poll_ready` without boxing it. It waits
    /// in the same FIFO queue as [`acquire`](Self::acquire)'s futures and is
    /// cancellation-safe in the same way: dropping it leaves the queue, and
    /// a permit handed to it before it saw it goes to the next waiter.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kompoz_core::Semaphore;
    ///
    /// let pool = Arc::new(Semaphore::new(1)?);
    /// let held = pool.try_acquire_owned().expect("free");
    /// let waiting = pool.acquire_owned(); // 'static: could be spawned
    /// drop(held);
    /// let permit = futures::executor::block_on(waiting);
    /// assert!(Arc::ptr_eq(permit.semaphore(), &pool));
    /// assert_eq!(pool.available(), 0);
    /// drop(permit);
    /// assert_eq!(pool.available(), 1);
    /// # Ok::<(), kompoz_core::ConfigError>(())
    /// ```
    pub fn acquire_owned(self: &Arc<Self>) -> AcquireOwned {
        AcquireOwned {
            semaphore: Some(Arc::clone(self)),
            waiter: Waiter::new(),
        }
    }

    /// Gives one permit back: to the head waiter if any, else to the count.
    #[inline]
    fn release(&self) {
        let mut state = self.state.load(Ordering::Relaxed);
        while state & QUEUED == 0 {
            match self.state.compare_exchange_weak(
                state,
                state + ONE,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => state = actual,
            }
        }
        self.release_slow();
    }

    /// Release while waiters are (or were, a moment ago) queued.
    fn release_slow(&self) {
        let waker = {
            let mut waiters = self.waiters.lock();
            self.release_locked(&mut waiters)
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Under the lock: hands the permit to the head waiter and returns its
    /// waker (to wake after unlocking), or returns the permit to the count.
    fn release_locked(&self, waiters: &mut Waiters) -> Option<core::task::Waker> {
        match waiters.grant_head() {
            Some((ticket, waker)) => {
                // Publishes the grant to the waiter's lock-free check.
                self.granted.store(ticket, Ordering::Release);
                if waiters.is_empty() {
                    self.state.fetch_and(!QUEUED, Ordering::Release);
                }
                waker
            }
            None => {
                // Nobody queued, so `QUEUED` is clear and fast paths may be
                // racing with us: add atomically.
                self.state.fetch_add(ONE, Ordering::Release);
                None
            }
        }
    }
}

/// Refuses a capacity of zero or above [`Semaphore::MAX_PERMITS`].
pub(crate) fn check_capacity(parameter: &'static str, value: usize) -> Result<(), ConfigError> {
    if value == 0 || value > Semaphore::MAX_PERMITS {
        return Err(ConfigError::invalid(
            parameter,
            value,
            "at least 1 and at most usize::MAX / 2",
        ));
    }
    Ok(())
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("capacity", &self.capacity)
            .field("available", &self.available())
            .field("waiting", &self.waiting())
            .finish()
    }
}
