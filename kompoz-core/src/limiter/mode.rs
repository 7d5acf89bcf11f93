//! The modes shared by the pool ([`Limited`](crate::Limited)) and the rate
//! limit ([`RateLimited`](crate::RateLimited)): wait, reject, or wait a
//! bounded time; what a call's outcome was; and [`Admission`], the mode and
//! rejection count both keep, with the methods both expose.

use core::time::Duration;

#[cfg(doc)]
use crate::Limited;
use crate::observe::{Event, Observer};
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
    /// The longest a call may wait (`Duration::MAX`: no bound).
    pub(crate) fn max_wait(self) -> Duration {
        match self {
            LimitMode::Wait => Duration::MAX,
            LimitMode::Reject => Duration::ZERO,
            LimitMode::WaitAtMost(bound) => bound,
        }
    }

    /// [`max_wait`](Self::max_wait) in nanoseconds (`u64::MAX`: no bound).
    fn max_wait_nanos(self) -> u64 {
        crate::clock::duration_to_nanos(self.max_wait())
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
    /// The name and subscriber the refusals and waits are reported to.
    observer: Observer,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            mode: LimitMode::Wait,
            max_wait_nanos: LimitMode::Wait.max_wait_nanos(),
            rejected: AtomicU64::new(0),
            observer: Observer::new(),
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

    /// Counts one refused call and reports the event `make` builds.
    #[inline]
    pub(crate) fn reject(&self, make: impl FnOnce() -> Event) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        self.observer.emit(make);
    }

    /// Where waits are reported.
    #[inline]
    pub(crate) fn observer(&self) -> &Observer {
        &self.observer
    }

    pub(crate) fn observer_mut(&mut self) -> &mut Observer {
        &mut self.observer
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

        /// Names this limiter in its events, `tracing` events and metrics
        /// (see [`observe`](crate::observe)). One built by name already
        /// reports under that name (what [`name`](Self::name) returns).
        pub fn report_as(mut self, name: &str) -> Self {
            self.admission.observer_mut().set_name(name);
            self
        }

        /// Calls `subscriber(name, &event)` for each refusal and each wait
        /// (see [`Event`](crate::observe::Event)).
        pub fn on_event<F>(mut self, subscriber: F) -> Self
        where
            F: Fn(&str, &$crate::observe::Event) + Send + Sync + 'static,
        {
            self.admission.observer_mut().set_subscriber(subscriber);
            self
        }
    };
}
pub(crate) use admission_methods;
