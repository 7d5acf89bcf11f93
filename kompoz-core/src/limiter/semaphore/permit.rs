//! The permits a [`Semaphore`] hands out: given back when dropped.

use alloc::sync::Arc;
use core::fmt;

use super::Semaphore;

/// A permit from a [`Semaphore`]; dropping it gives the permit back (or to
/// the next waiter in line).
#[must_use = "the permit is given back as soon as it is dropped"]
pub struct SemaphorePermit<'a> {
    pub(super) semaphore: &'a Semaphore,
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
    pub(super) semaphore: Arc<Semaphore>,
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
