//! The modes shared by the pool ([`Limited`](crate::Limited)) and the rate
//! limit ([`RateLimited`](crate::RateLimited)): wait, reject, or wait a
//! bounded time; what a call's outcome was; and [`Admission`], the mode and
//! rejection count both keep, with the methods both expose.

use core::time::Duration;

#[cfg(doc)]
use crate::Limited;
use crate::sync::{AtomicU64, Ordering};

/// What a [`Limited`] does with a call when its pool is full (the bulkhead
/// mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum LimitMode {
    /// Wait for a permit, however long it takes (the default, as kompoz).
    #[default]
    Wait,
    /// Reject the call at once: it returns `(false, ctx)` without running
    /// the inner combinator.
    Reject,
    /// Wait at most this long for a permit, then reject the call. A zero
    /// bound waits not at all: the limiters read it as [`Reject`](Self::Reject).
    WaitAtMost(Duration),
}

impl LimitMode {
    /// The longest a call may wait, in nanoseconds (`u64::MAX`: no bound).
    fn max_wait_nanos(self) -> u64 {
        match self {
            LimitMode::Wait => u64::MAX,
            LimitMode::Reject => 0,
            LimitMode::WaitAtMost(bound) => crate::clock::duration_to_nanos(bound),
        }
    }

    /// `self`, with a zero bound read as "do not wait": waiting at most no
    /// time is rejecting at once.
    pub(crate) fn normalized(self) -> Self {
        match self {
            LimitMode::WaitAtMost(bound) if bound.is_zero() => LimitMode::Reject,
            mode => mode,
        }
    }
}

/// What happened to one call through a [`Limited`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LimitOutcome {
    /// The call got a permit and the inner combinator returned this verdict.
    Ran(bool),
    /// The call got no permit (see [`LimitMode`]) and the inner combinator
    /// did not run.
    Rejected,
}

impl LimitOutcome {
    /// Whether the call was rejected.
    pub fn is_rejected(self) -> bool {
        self == LimitOutcome::Rejected
    }

    /// The verdict the call returned: the inner verdict, `false` if rejected.
    pub fn passed(self) -> bool {
        self == LimitOutcome::Ran(true)
    }
}

/// What a call does when it cannot go in at once, and how many calls were
/// refused: the part of a [`Limited`](crate::Limited) and a
/// [`RateLimited`](crate::RateLimited) that is the same in both.
#[derive(Debug)]
pub(crate) struct Admission {
    mode: LimitMode,
    /// `mode`'s longest wait, kept so that a rate-limited call reads one
    /// word instead of matching the mode.
    max_wait_nanos: u64,
    rejected: AtomicU64,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            mode: LimitMode::Wait,
            max_wait_nanos: LimitMode::Wait.max_wait_nanos(),
            rejected: AtomicU64::new(0),
        }
    }
}

impl Admission {
    #[inline]
    pub(crate) fn mode(&self) -> LimitMode {
        self.mode
    }

    #[inline]
    pub(crate) fn set_mode(&mut self, mode: LimitMode) {
        self.mode = mode.normalized();
        self.max_wait_nanos = self.mode.max_wait_nanos();
    }

    /// The longest a call may wait, in nanoseconds (`u64::MAX`: no bound).
    #[inline]
    pub(crate) fn max_wait_nanos(&self) -> u64 {
        self.max_wait_nanos
    }

    #[inline]
    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Counts one refused call.
    #[inline]
    pub(crate) fn reject(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }
}

/// The mode setters and the rejection count, for a type with an
/// `admission: Admission` field; each type writes its own docs (what
/// "full" means differs), the bodies are these.
macro_rules! admission_methods {
    (
        $(#[$reject:meta])* reject_when_full;
        $(#[$wait:meta])* wait_at_most;
        $(#[$with:meta])* with_mode;
        $(#[$mode:meta])* mode;
        $(#[$rejected:meta])* rejected;
    ) => {
        $(#[$reject])*
        pub fn reject_when_full(self) -> Self {
            self.with_mode($crate::LimitMode::Reject)
        }

        $(#[$wait])*
        pub fn wait_at_most(self, bound: core::time::Duration) -> Self {
            self.with_mode($crate::LimitMode::WaitAtMost(bound))
        }

        $(#[$with])*
        pub fn with_mode(mut self, mode: $crate::LimitMode) -> Self {
            self.admission.set_mode(mode);
            self
        }

        $(#[$mode])*
        pub fn mode(&self) -> $crate::LimitMode {
            self.admission.mode()
        }

        $(#[$rejected])*
        pub fn rejected(&self) -> u64 {
            self.admission.rejected()
        }
    };
}
pub(crate) use admission_methods;
