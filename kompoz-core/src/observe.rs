//! Names and events on every layer, and what the `tracing` and `metrics`
//! features make of them.
//!
//! Each call-API layer takes a name (`.name("payments")`, the setting of the
//! layer just added) and a subscriber (`.on_event(|name, event| ..)`), and
//! so do the algebra's [`Timeout`](crate::Timeout) and
//! [`Retry`](crate::Retry). A layer added with `limit_named(_in)`, or over
//! a `RateLimiter::named` budget, carries that name (a pool passed with
//! `.limit(&pool)` does not: a `Semaphore` has no name). A breaker named on
//! its builder reports by itself; do not also pass it a
//! [`breaker_reporter`], or each event is reported twice. The
//! breaker reports through its own `on_event` ([`BreakerEvent`]); turn its
//! events into the same shape with [`Event::Breaker`] and [`breaker_reporter`].
//!
//! Nothing is built when nobody listens: with no subscriber and the features
//! off, each place that could report is one branch on a path that is already
//! the slow one (a refusal, a wait, a retry, a timeout). A call that passes
//! straight through reports nothing.
//!
//! # Events
//!
//! | layer (`tracing` target) | [`Event`] | when | `tracing` level |
//! |---|---|---|---|
//! | timeout (`kompoz::timeout`) | [`TimedOut`](Event::TimedOut) `{ after }` | an attempt was dropped after `after` | DEBUG |
//! | limit (`kompoz::limit`) | [`PoolWaited`](Event::PoolWaited) `{ waited }` | a call got a permit after waiting | TRACE |
//! | limit | [`PoolRefused`](Event::PoolRefused) `{ waited }` | a call was refused (`waited` 0 when rejecting at once) | DEBUG |
//! | rate limit (`kompoz::rate_limit`) | [`RateWaited`](Event::RateWaited) `{ waited }` | a call waited for its slot | TRACE |
//! | rate limit | [`RateRefused`](Event::RateRefused) `{ retry_at }` | a call over the rate was refused | DEBUG |
//! | retry (`kompoz::retry`) | [`Retry`](Event::Retry) `{ attempt, delay, error }` | attempt `attempt` failed with an error of kind `error`; the next one follows after `delay` | DEBUG |
//! | breaker (`kompoz::breaker`) | [`Breaker`](Event::Breaker)`(`[`StateChange`](BreakerEvent::StateChange)`)` | the circuit moved | INFO |
//! | breaker | `Breaker(Rejected)` | a call was refused | DEBUG |
//! | breaker | `Breaker(SlowCall)` | a call took at least the slow-call threshold | DEBUG |
//! | breaker | `Breaker(Stale)` | a result was ignored: the state it was admitted in had ended | DEBUG |
//! | breaker | `Breaker(Success)`, `Breaker(Failure)` | a call's outcome, with its duration | TRACE |
//!
//! Levels: a state change is what an operator wants in the log by default
//! (INFO); refusals, timeouts and retries happen per call and in bursts, so
//! they stay at DEBUG; per-call outcomes and waits are TRACE. Every event
//! carries the fields `name` (the layer's name, empty when unnamed) and its
//! own fields by the names above. The library only emits: it never installs a
//! subscriber.
//!
//! # Metrics
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `kompoz_calls_total` | counter | `layer`, `name`, `outcome` | calls that met this outcome at this layer: `outcome` is the event's [`kind`](Event::kind) (`timed_out`, `waited`, `refused`, `retried`, `success`, `failure`, `slow`, `rejected`, `stale`) |
//! | `kompoz_breaker_transitions_total` | counter | `name`, `to` | state changes of the breaker, by the state entered |
//! | `kompoz_breaker_state` | gauge | `name` | the breaker's state: 0 closed, 1 half-open, 2 open |
//! | `kompoz_wait_seconds` | histogram | `layer`, `name` | how long a call waited for a permit or a rate slot |
//! | `kompoz_retry_delay_seconds` | histogram | `name` | the delay before each retry |
//! | `kompoz_call_duration_seconds` | histogram | `name` | how long a call through a breaker took (success or failure) |
//!
//! Labels stay low-cardinality: `layer` and `outcome` are fixed words and
//! `name` is what the application chose. The handles are registered with the
//! recorder at a layer's first report of each kind, so install the recorder
//! before the first call.

use alloc::sync::Arc;
use core::fmt;
use core::time::Duration;

use crate::Instant;
use crate::call::Error;
use crate::circuit_breaker::{BreakerEvent, CircuitState};

#[cfg(feature = "metrics")]
mod meters;
#[cfg(feature = "tracing")]
mod trace;

/// Which kind of layer reported an [`Event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LayerKind {
    /// A timeout.
    Timeout,
    /// A concurrency limit (a pool).
    Limit,
    /// A rate limit.
    RateLimit,
    /// A retry.
    Retry,
    /// A circuit breaker.
    Breaker,
}

impl LayerKind {
    /// The `layer` label: `timeout`, `limit`, `rate_limit`, `retry`, `breaker`.
    pub const fn as_str(self) -> &'static str {
        match self {
            LayerKind::Timeout => "timeout",
            LayerKind::Limit => "limit",
            LayerKind::RateLimit => "rate_limit",
            LayerKind::Retry => "retry",
            LayerKind::Breaker => "breaker",
        }
    }

    /// The `tracing` target: `kompoz::timeout`, `kompoz::limit`, ...
    pub const fn target(self) -> &'static str {
        match self {
            LayerKind::Timeout => "kompoz::timeout",
            LayerKind::Limit => "kompoz::limit",
            LayerKind::RateLimit => "kompoz::rate_limit",
            LayerKind::Retry => "kompoz::retry",
            LayerKind::Breaker => "kompoz::breaker",
        }
    }
}

impl fmt::Display for LayerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which kind of error failed an attempt, as [`Event::Retry`] reports it.
pub const fn error_kind<E>(error: &Error<E>) -> &'static str {
    match error {
        Error::Inner(_) => "inner",
        Error::CircuitOpen(_) => "circuit_open",
        Error::PoolFull(_) => "pool_full",
        Error::RateLimited(_) => "rate_limited",
        Error::TimedOut(_) => "timed_out",
    }
}

/// One thing that happened in a layer. See the [module](self) for when
/// each is reported, at which `tracing` level and in which metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A timeout dropped an attempt still pending after `after`.
    TimedOut {
        /// The timeout's duration.
        after: Duration,
    },
    /// A call waited `waited` for a pool's permit, and got it.
    PoolWaited {
        /// How long it waited.
        waited: Duration,
    },
    /// A pool refused a call (`waited` is zero when it rejects at once, the
    /// bound when it waited at most that).
    PoolRefused {
        /// How long it waited before the refusal.
        waited: Duration,
    },
    /// A call waited `waited` for its rate-limit slot.
    RateWaited {
        /// How long it waited.
        waited: Duration,
    },
    /// A rate limit refused a call.
    RateRefused {
        /// The earliest instant a call would be admitted.
        retry_at: Instant,
    },
    /// An attempt failed and will be tried again after `delay`.
    Retry {
        /// The attempt that failed (1 for the first).
        attempt: u32,
        /// The delay before the next attempt.
        delay: Duration,
        /// The kind of its error ([`error_kind`] in the call API; `failed`
        /// in the algebra, whose attempts fail without an error value); the
        /// error itself goes to the retry's typed hook (`on_retry`).
        error: &'static str,
    },
    /// A breaker's event.
    Breaker(BreakerEvent),
}

impl Event {
    /// The kind of layer that reports it.
    pub const fn layer(&self) -> LayerKind {
        match self {
            Event::TimedOut { .. } => LayerKind::Timeout,
            Event::PoolWaited { .. } | Event::PoolRefused { .. } => LayerKind::Limit,
            Event::RateWaited { .. } | Event::RateRefused { .. } => LayerKind::RateLimit,
            Event::Retry { .. } => LayerKind::Retry,
            Event::Breaker(_) => LayerKind::Breaker,
        }
    }

    /// A word for the event: the `outcome` label of `kompoz_calls_total`
    /// (`timed_out`, `waited`, `refused`, `retried`, `success`, `failure`,
    /// `slow`, `rejected`, `stale`), or `state_change` for a breaker's
    /// transition (counted in `kompoz_breaker_transitions_total` instead).
    pub const fn kind(&self) -> &'static str {
        match self {
            Event::TimedOut { .. } => "timed_out",
            Event::PoolWaited { .. } | Event::RateWaited { .. } => "waited",
            Event::PoolRefused { .. } | Event::RateRefused { .. } => "refused",
            Event::Retry { .. } => "retried",
            Event::Breaker(e) => match e {
                BreakerEvent::Success { .. } => "success",
                BreakerEvent::Failure { .. } => "failure",
                BreakerEvent::SlowCall { .. } => "slow",
                BreakerEvent::Rejected { .. } => "rejected",
                BreakerEvent::StateChange { .. } => "state_change",
                BreakerEvent::Stale => "stale",
            },
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::TimedOut { after } => write!(f, "timed out after {after:?}"),
            Event::PoolWaited { waited } => write!(f, "waited {waited:?} for a permit"),
            Event::PoolRefused { waited } => write!(f, "pool full (waited {waited:?})"),
            Event::RateWaited { waited } => write!(f, "waited {waited:?} for a rate slot"),
            Event::RateRefused { retry_at } => write!(f, "rate limited until {retry_at:?}"),
            Event::Retry {
                attempt,
                delay,
                error,
            } => write!(
                f,
                "attempt {attempt} failed ({error}), retrying in {delay:?}"
            ),
            Event::Breaker(e) => match e {
                BreakerEvent::Success { elapsed } => write!(f, "success in {elapsed:?}"),
                BreakerEvent::Failure { elapsed } => write!(f, "failure in {elapsed:?}"),
                BreakerEvent::SlowCall { elapsed } => write!(f, "slow call: {elapsed:?}"),
                BreakerEvent::Rejected { state } => write!(f, "rejected ({state:?})"),
                BreakerEvent::StateChange { from, to } => write!(f, "{from:?} -> {to:?}"),
                BreakerEvent::Stale => f.write_str("stale result ignored"),
            },
        }
    }
}

type Hook = dyn Fn(&str, &Event) + Send + Sync;

/// A layer's name and subscriber, and what the features report to.
///
/// Every call-API layer holds one; [`Policy::name`](crate::Policy::name)
/// and [`Policy::on_event`](crate::Policy::on_event) set it for the layer
/// just added.
#[derive(Default)]
pub struct Observer {
    name: Option<Arc<str>>,
    hook: Option<Arc<Hook>>,
    // Registered lazily and shared by clones: a policy cloned per task
    // registers each series once, not once per clone.
    #[cfg(feature = "metrics")]
    meters: Arc<meters::Meters>,
}

impl Clone for Observer {
    fn clone(&self) -> Self {
        Observer {
            name: self.name.clone(),
            hook: self.hook.clone(),
            #[cfg(feature = "metrics")]
            meters: Arc::clone(&self.meters),
        }
    }
}

impl Observer {
    /// No name, no subscriber.
    pub fn new() -> Self {
        Self::default()
    }

    /// The name, empty when none was given.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    /// Names the layer (the `name` field and label).
    pub fn set_name(&mut self, name: &str) {
        self.name = Some(Arc::from(name));
        #[cfg(feature = "metrics")]
        {
            // Handles are keyed by name: new name, new handles.
            self.meters = Arc::default();
        }
    }

    /// Calls `subscriber(name, &event)` for each event, after the features'
    /// reports. It runs on the call path: keep it short.
    pub fn set_subscriber<F>(&mut self, subscriber: F)
    where
        F: Fn(&str, &Event) + Send + Sync + 'static,
    {
        self.hook = Some(Arc::new(subscriber));
    }

    /// Whether a report would go anywhere: a subscriber is set or a feature
    /// is on. Events are built only then.
    #[inline(always)]
    pub fn listening(&self) -> bool {
        cfg!(any(feature = "tracing", feature = "metrics")) || self.hook.is_some()
    }

    /// Reports the event `make` builds, if anyone listens.
    #[inline(always)]
    pub fn emit(&self, make: impl FnOnce() -> Event) {
        if self.listening() {
            self.deliver(&make());
        }
    }

    #[inline(never)]
    fn deliver(&self, event: &Event) {
        let name = self.name();
        #[cfg(feature = "tracing")]
        trace::event(name, event);
        #[cfg(feature = "metrics")]
        self.meters.record(name, event);
        if let Some(hook) = &self.hook {
            hook(name, event);
        }
    }
}

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observer")
            .field("name", &self.name())
            .field("subscriber", &self.hook.is_some())
            .finish()
    }
}

/// A breaker subscriber (for `on_event`) that reports its events as
/// [`Event::Breaker`] under `name`: to `tracing` and `metrics` when the
/// features are on, and to `then` (use `|_, _| {}` for nothing more).
///
/// A breaker built with `.name(..)` reports this way by itself when a
/// feature is on.
///
/// # Examples
///
/// ```
/// use kompoz_core::{observe, ClockExt, ManualClock};
///
/// let breaker = ManualClock::new()
///     .shared_breaker()
///     .on_event(observe::breaker_reporter("payments", |name, event| println!("{name}: {event}")))
///     .build()?;
/// # let _ = breaker;
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
pub fn breaker_reporter<F>(name: &str, then: F) -> impl Fn(&BreakerEvent) + Send + Sync + 'static
where
    F: Fn(&str, &Event) + Send + Sync + 'static,
{
    let mut observer = Observer::new();
    observer.set_name(name);
    observer.set_subscriber(then);
    move |event: &BreakerEvent| observer.deliver(&Event::Breaker(event.clone()))
}

type BreakerSubscriber = dyn Fn(&BreakerEvent) + Send + Sync;

/// What a breaker built with `.name(name)` reports through when a feature
/// is on: the features, then the user's own `on_event` subscriber.
#[cfg_attr(not(any(feature = "tracing", feature = "metrics")), allow(dead_code))]
pub(crate) fn named_breaker_events(
    name: &str,
    then: Option<alloc::boxed::Box<BreakerSubscriber>>,
) -> alloc::boxed::Box<BreakerSubscriber> {
    let mut observer = Observer::new();
    observer.set_name(name);
    alloc::boxed::Box::new(move |event: &BreakerEvent| {
        observer.deliver(&Event::Breaker(event.clone()));
        if let Some(then) = &then {
            then(event);
        }
    })
}

/// The `kompoz_breaker_state` gauge's value for `state`: 0 closed, 1
/// half-open, 2 open.
pub const fn state_value(state: CircuitState) -> u8 {
    match state {
        CircuitState::Closed => 0,
        CircuitState::HalfOpen => 1,
        CircuitState::Open => 2,
    }
}

/// Layers that carry an [`Observer`]: each call-API layer. Lets
/// [`Policy::name`](crate::Policy::name) and
/// [`Policy::on_event`](crate::Policy::on_event) set the layer just added.
pub trait Observable {
    /// The layer's observer.
    fn observer_mut(&mut self) -> &mut Observer;
}
