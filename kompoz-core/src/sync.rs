//! The synchronisation primitives the combinators use, in one place so that
//! model checking can swap them.
//!
//! - Under `cfg(loom)`, atomics and the mutex are loom's, so
//!   `tests/loom.rs` explores every interleaving of the real code.
//! - With `std`, the mutex is `std::sync::Mutex` (parks instead of spinning).
//! - Without `std`, the mutex is a spin lock; critical sections are a few
//!   instructions long and never await.
//! - On targets without 64-bit atomics (e.g. `thumbv7em-none-eabihf`),
//!   [`AtomicU64`] is a lock around a `u64` with the same API subset.

#![allow(dead_code, unused_imports)]

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

#[cfg(all(not(loom), target_has_atomic = "64"))]
pub(crate) use core::sync::atomic::AtomicU64;

#[cfg(all(not(loom), not(target_has_atomic = "64")))]
pub(crate) use fallback::AtomicU64;

/// A mutex that never reports poisoning: every critical section in this crate
/// leaves its data consistent statement by statement, so a panic elsewhere
/// cannot leave it half-updated.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T> {
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
    #[cfg(all(not(loom), feature = "std"))]
    inner: std::sync::Mutex<T>,
    #[cfg(all(not(loom), not(feature = "std")))]
    inner: spin::Mutex<T>,
}

#[cfg(loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;
#[cfg(all(not(loom), feature = "std"))]
pub(crate) type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;
#[cfg(all(not(loom), not(feature = "std")))]
pub(crate) type MutexGuard<'a, T> = spin::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    #[cfg(not(loom))]
    pub(crate) const fn new(value: T) -> Self {
        #[cfg(feature = "std")]
        let inner = std::sync::Mutex::new(value);
        #[cfg(not(feature = "std"))]
        let inner = spin::Mutex::new(value);
        Mutex { inner }
    }

    #[cfg(loom)]
    pub(crate) fn new(value: T) -> Self {
        Mutex {
            inner: loom::sync::Mutex::new(value),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(any(loom, feature = "std"))]
        {
            self.inner
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }
        #[cfg(all(not(loom), not(feature = "std")))]
        {
            self.inner.lock()
        }
    }
}

#[cfg(all(not(loom), not(target_has_atomic = "64")))]
mod fallback {
    use super::{Mutex, Ordering};

    /// `AtomicU64`'s API subset, over a lock, for targets without 64-bit atomics.
    #[derive(Debug, Default)]
    pub(crate) struct AtomicU64 {
        value: Mutex<u64>,
    }

    impl AtomicU64 {
        pub(crate) const fn new(value: u64) -> Self {
            AtomicU64 {
                value: Mutex::new(value),
            }
        }

        pub(crate) fn load(&self, _: Ordering) -> u64 {
            *self.value.lock()
        }

        pub(crate) fn store(&self, value: u64, _: Ordering) {
            *self.value.lock() = value;
        }

        pub(crate) fn swap(&self, value: u64, _: Ordering) -> u64 {
            core::mem::replace(&mut *self.value.lock(), value)
        }

        pub(crate) fn fetch_add(&self, delta: u64, _: Ordering) -> u64 {
            let mut v = self.value.lock();
            let old = *v;
            *v = old.wrapping_add(delta);
            old
        }

        pub(crate) fn fetch_sub(&self, delta: u64, _: Ordering) -> u64 {
            let mut v = self.value.lock();
            let old = *v;
            *v = old.wrapping_sub(delta);
            old
        }

        pub(crate) fn fetch_max(&self, value: u64, _: Ordering) -> u64 {
            let mut v = self.value.lock();
            let old = *v;
            *v = old.max(value);
            old
        }

        pub(crate) fn compare_exchange(
            &self,
            current: u64,
            new: u64,
            _: Ordering,
            _: Ordering,
        ) -> Result<u64, u64> {
            let mut v = self.value.lock();
            if *v == current {
                *v = new;
                Ok(current)
            } else {
                Err(*v)
            }
        }

        pub(crate) fn compare_exchange_weak(
            &self,
            current: u64,
            new: u64,
            success: Ordering,
            failure: Ordering,
        ) -> Result<u64, u64> {
            self.compare_exchange(current, new, success, failure)
        }
    }
}
