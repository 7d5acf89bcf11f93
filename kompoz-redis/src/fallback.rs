//! What happens when Redis does not answer: [`Fallback`], the
//! [`RedisEvent`]s that report it, and the bookkeeping that decides when to
//! try Redis again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kompoz_core::{CircuitState, Clock, Instant};
use kompoz_tokio::TokioClock;

use crate::connection::CommandError;

/// What a shared limiter or breaker does while Redis does not answer (an
/// error, or no answer within the command timeout).
///
/// Whichever is chosen, a call never fails *because of* Redis and never
/// waits longer than the command timeout for it; the switch is reported by
/// [`RedisEvent::FallbackStarted`] / [`RedisEvent::FallbackEnded`] and shows
/// in the stats. While in fallback, Redis is tried again at most once per
/// retry interval (`retry_redis_every` on the builders), so a dead server
/// costs one timeout per interval, not one per call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fallback {
    /// Fail open: each replica goes on with a local limiter or breaker of
    /// its own (a local limit admits its quota per replica, so the fleet
    /// may admit up to N times the shared quota: give the limiter a smaller
    /// `fallback_limit` to stay under it).
    #[default]
    Local,
    /// Fail closed: every call is refused (a rate-limit or circuit-open
    /// refusal) until Redis answers again.
    Refuse,
}

/// Something a shared limiter or breaker reports to its `on_event`
/// subscriber.
///
/// Delivered on the task that noticed it (a call, or the breaker's sync
/// task), after the bookkeeping is done; keep the subscriber short.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisEvent {
    /// Redis failed; calls now go to the [`Fallback`].
    FallbackStarted {
        /// The Redis key of the limiter or breaker.
        key: Arc<str>,
        /// What failed.
        reason: String,
    },
    /// Redis answered again; calls use the shared state again.
    FallbackEnded {
        /// The Redis key of the limiter or breaker.
        key: Arc<str>,
        /// How long the fallback served.
        after: Duration,
    },
    /// The shared breaker's sync task ended while the breaker is still in
    /// use: the runtime that built the breaker shut down. From then on the
    /// view is refreshed only by calls (a call that finds it older than
    /// three staleness bounds asks Redis), and outcomes that would have been
    /// queued to Redis are counted in `reports_lost`.
    SyncStopped {
        /// The Redis key of the breaker.
        key: Arc<str>,
    },
    /// This replica saw the shared breaker change state (its own
    /// transition, or another replica's, seen at a sync).
    StateChange {
        /// The Redis key of the breaker.
        key: Arc<str>,
        /// The state before.
        from: CircuitState,
        /// The state now.
        to: CircuitState,
        /// The shared generation now.
        generation: u64,
    },
}

pub(crate) type EventFn = dyn Fn(&RedisEvent) + Send + Sync;

/// Whether Redis is answering for one limiter or breaker, and when to try
/// it again if not.
pub(crate) struct Health {
    key: Arc<str>,
    degraded: AtomicBool,
    /// While degraded: the instant (on `TokioClock`) before which calls go
    /// straight to the fallback.
    next_try: AtomicU64,
    retry_every: Duration,
    since: Mutex<Option<Instant>>,
    redis_errors: AtomicU64,
    events: Option<Arc<EventFn>>,
}

impl Health {
    pub(crate) fn new(key: Arc<str>, retry_every: Duration, events: Option<Arc<EventFn>>) -> Self {
        Health {
            key,
            degraded: AtomicBool::new(false),
            next_try: AtomicU64::new(0),
            retry_every,
            since: Mutex::new(None),
            redis_errors: AtomicU64::new(0),
            events,
        }
    }

    /// Whether this call should ask Redis: always while Redis answers; while
    /// it does not, one call per retry interval (the others go to the
    /// fallback at once).
    pub(crate) fn use_redis(&self) -> bool {
        if !self.degraded.load(Ordering::Acquire) {
            return true;
        }
        let now = TokioClock.now();
        let next = self.next_try.load(Ordering::Acquire);
        now.as_nanos() >= next
            && self
                .next_try
                .compare_exchange(
                    next,
                    (now + self.retry_every).as_nanos(),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Whether calls go to the fallback now.
    pub(crate) fn in_fallback(&self) -> bool {
        self.degraded.load(Ordering::Acquire)
    }

    /// When Redis will be tried again (for a refusal's `retry_at`).
    pub(crate) fn next_try(&self) -> Instant {
        let next = Instant::from_nanos(self.next_try.load(Ordering::Acquire));
        next.max(TokioClock.now())
    }

    /// Redis errors seen so far.
    pub(crate) fn redis_errors(&self) -> u64 {
        self.redis_errors.load(Ordering::Relaxed)
    }

    /// A command failed: the fallback serves until the next try. Returns
    /// whether this failure started a fallback episode.
    pub(crate) fn failed(&self, err: &CommandError) -> bool {
        self.redis_errors.fetch_add(1, Ordering::Relaxed);
        let now = TokioClock.now();
        self.next_try
            .store((now + self.retry_every).as_nanos(), Ordering::Release);
        let started = !self.degraded.swap(true, Ordering::AcqRel);
        if started {
            *self.since.lock().unwrap_or_else(PoisonError::into_inner) = Some(now);
            self.emit(|| RedisEvent::FallbackStarted {
                key: Arc::clone(&self.key),
                reason: err.to_string(),
            });
        }
        started
    }

    /// A command succeeded: the shared state serves again.
    pub(crate) fn answered(&self) {
        if self.degraded.load(Ordering::Acquire) && self.degraded.swap(false, Ordering::AcqRel) {
            let since = self
                .since
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
                .unwrap_or_else(|| TokioClock.now());
            self.emit(|| RedisEvent::FallbackEnded {
                key: Arc::clone(&self.key),
                after: TokioClock.now() - since,
            });
        }
    }

    pub(crate) fn emit(&self, event: impl FnOnce() -> RedisEvent) {
        if let Some(subscriber) = &self.events {
            subscriber(&event());
        }
    }
}
