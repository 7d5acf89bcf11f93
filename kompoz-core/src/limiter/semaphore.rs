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
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use super::waiters::{Waiters, is_granted};
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

/// A permit from a [`Semaphore`]; dropping it gives the permit back (or to
/// the next waiter in line).
#[must_use = "the permit is given back as soon as it is dropped"]
pub struct SemaphorePermit<'a> {
    semaphore: &'a Semaphore,
}

impl SemaphorePermit<'_> {
    /// The semaphore this permit belongs to.
    pub fn semaphore(&self) -> &Semaphore {
        self.semaphore
    }
}

impl Drop for SemaphorePermit<'_> {
    #[inline]
    fn drop(&mut self) {
        self.semaphore.release();
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit").finish_non_exhaustive()
    }
}

/// A permit from a [`Semaphore`] held through an `Arc` (see
/// [`Semaphore::try_acquire_owned`] and [`Semaphore::acquire_owned`]);
/// dropping it gives the permit back (or to the next waiter in line).
#[must_use = "the permit is given back as soon as it is dropped"]
pub struct OwnedSemaphorePermit {
    semaphore: Arc<Semaphore>,
}

impl OwnedSemaphorePermit {
    /// The semaphore this permit belongs to.
    pub fn semaphore(&self) -> &Arc<Semaphore> {
        &self.semaphore
    }
}

impl Drop for OwnedSemaphorePermit {
    #[inline]
    fn drop(&mut self) {
        self.semaphore.release();
    }
}

impl fmt::Debug for OwnedSemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSemaphorePermit")
            .finish_non_exhaustive()
    }
}

/// Where a waiting future ([`Acquire`], [`AcquireOwned`]) stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Not polled yet.
    Start,
    /// Queued in this slot of the waiter list, with this ticket.
    Queued { index: usize, ticket: usize },
    /// Returned its permit.
    Done,
}

/// The waiting logic both acquire futures share: they differ only in how
/// they hold the semaphore.
#[derive(Debug)]
struct Waiter {
    slot: Slot,
}

impl Waiter {
    const fn new() -> Self {
        Waiter { slot: Slot::Start }
    }

    fn is_queued(&self) -> bool {
        matches!(self.slot, Slot::Queued { .. })
    }

    /// `Ready` once this waiter holds a permit of `semaphore` (which its
    /// future then wraps, without a step that could fail in between).
    fn poll_acquire(&mut self, semaphore: &Semaphore, cx: &mut Context<'_>) -> Poll<()> {
        match self.slot {
            Slot::Start => {
                if semaphore.try_take() {
                    self.slot = Slot::Done;
                    return Poll::Ready(());
                }
                let mut waiters = semaphore.waiters.lock();
                let mut state = semaphore.state.load(Ordering::Relaxed);
                loop {
                    if state & QUEUED != 0 {
                        break; // others are queued: line up behind them
                    }
                    let next = if state >= ONE {
                        state - ONE // a permit came free, nobody queued
                    } else {
                        QUEUED
                    };
                    match semaphore.state.compare_exchange_weak(
                        state,
                        next,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) if next == QUEUED => break,
                        Ok(_) => {
                            self.slot = Slot::Done;
                            return Poll::Ready(());
                        }
                        Err(actual) => state = actual,
                    }
                }
                let (index, ticket) = waiters.push(cx.waker().clone());
                self.slot = Slot::Queued { index, ticket };
                Poll::Pending
            }
            Slot::Queued { index, ticket } => {
                // Woken by a hand-off: the grant is visible without the lock.
                if is_granted(semaphore.granted.load(Ordering::Acquire), ticket) {
                    self.slot = Slot::Done;
                    return Poll::Ready(());
                }
                let mut waiters = semaphore.waiters.lock();
                // Under the lock `granted` cannot move: either the permit
                // came meanwhile or the slot is still ours.
                if is_granted(semaphore.granted.load(Ordering::Acquire), ticket) {
                    self.slot = Slot::Done;
                    return Poll::Ready(());
                }
                waiters.set_waker(index, cx.waker());
                Poll::Pending
            }
            // Polled after completion: the permit was already returned.
            Slot::Done => Poll::Pending,
        }
    }

    /// The waiting future is dropped: leave the queue, or pass on a permit
    /// handed to it that it never saw.
    fn leave(&self, semaphore: &Semaphore) {
        let Slot::Queued { index, ticket } = self.slot else {
            return;
        };
        let waker = {
            let mut waiters = semaphore.waiters.lock();
            if is_granted(semaphore.granted.load(Ordering::Acquire), ticket) {
                // Handed a permit we will never use: pass it on.
                semaphore.release_locked(&mut waiters)
            } else {
                waiters.cancel(index);
                if waiters.is_empty() {
                    semaphore.state.fetch_and(!QUEUED, Ordering::Release);
                }
                None
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The future returned by [`Semaphore::acquire`].
///
/// Dropping it before it completes leaves the queue; if a permit was handed
/// to it in the meantime, the permit goes to the next waiter.
#[must_use = "futures do nothing unless polled"]
pub struct Acquire<'a> {
    semaphore: &'a Semaphore,
    waiter: Waiter,
}

impl<'a> Future for Acquire<'a> {
    type Output = SemaphorePermit<'a>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<SemaphorePermit<'a>> {
        let this = self.get_mut();
        let semaphore = this.semaphore;
        this.waiter
            .poll_acquire(semaphore, cx)
            .map(|()| SemaphorePermit { semaphore })
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        self.waiter.leave(self.semaphore);
    }
}

impl fmt::Debug for Acquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("semaphore", self.semaphore)
            .field("queued", &self.waiter.is_queued())
            .finish()
    }
}

/// The future returned by [`Semaphore::acquire_owned`]: `Unpin + Send +
/// 'static`.
///
/// Dropping it before it completes leaves the queue; if a permit was handed
/// to it in the meantime, the permit goes to the next waiter. Polled again
/// after it completed, it stays pending.
#[must_use = "futures do nothing unless polled"]
pub struct AcquireOwned {
    /// Moved into the permit on completion.
    semaphore: Option<Arc<Semaphore>>,
    waiter: Waiter,
}

impl Future for AcquireOwned {
    type Output = OwnedSemaphorePermit;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<OwnedSemaphorePermit> {
        let this = self.get_mut();
        let Some(semaphore) = &this.semaphore else {
            return Poll::Pending;
        };
        match this.waiter.poll_acquire(semaphore, cx) {
            Poll::Ready(()) => match this.semaphore.take() {
                Some(semaphore) => Poll::Ready(OwnedSemaphorePermit { semaphore }),
                None => Poll::Pending,
            },
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for AcquireOwned {
    fn drop(&mut self) {
        if let Some(semaphore) = &self.semaphore {
            self.waiter.leave(semaphore);
        }
    }
}

impl fmt::Debug for AcquireOwned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireOwned")
            .field("semaphore", &self.semaphore)
            .field("queued", &self.waiter.is_queued())
            .finish()
    }
}
