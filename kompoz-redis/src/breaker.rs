//! [`SharedBreaker`]: one circuit breaker for a fleet, its state kept in one
//! Redis key, each replica working from a cached view.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use kompoz_core::call::{CircuitOpen, Error};
use kompoz_core::circuit_breaker::OwnedBreakerPermit;
use kompoz_core::{Breaker, CircuitState, Clock, Combinator, ConfigError, Instant};
use kompoz_tokio::TokioClock;
use redis::Script;
use tokio::sync::{mpsc, oneshot};

use crate::connection::CommandError;
use crate::fallback::{EventFn, Health};
use crate::layer::Held;
use crate::{Fallback, Redis, RedisEvent, SetupError, SharedBreakerLayer};

mod script;
mod view;

use script::{BREAKER_LUA, Remote, Reply, Verdict};
use view::View;

/// How often a replica syncs its view with Redis, unless told otherwise:
/// 100 ms.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(100);
/// How long a probe slot stays taken without an outcome before the fleet
/// takes it back, unless told otherwise: 30 s.
pub const DEFAULT_PROBE_LEASE: Duration = Duration::from_secs(30);

/// How long a breaker's key outlives its last use (every sync refreshes it).
const KEY_TTL_MS: u64 = 24 * 60 * 60 * 1000;
/// A view older than this many staleness bounds is not trusted on the
/// CLOSED path: the call asks Redis (one round trip) instead.
const STALE_AFTER_BOUNDS: u32 = 3;
/// Durations kept in the key are microseconds below 2^52, exact in Lua's
/// doubles.
const MAX_DURATION_US: u128 = 1 << 52;

/// A circuit breaker shared by every replica that uses the same Redis key:
/// a trip in one opens the circuit in all, and half-open probes are limited
/// fleet-wide.
///
/// The policy is the reference's: `failure_threshold` consecutive failures
/// (fleet-wide: a success anywhere ends the streak) open the circuit for
/// `recovery_timeout`; then HALF_OPEN admits at most `half_open_max_calls`
/// probes across the fleet, closes after that many successes, and reopens on
/// a failure. Every change starts a new generation, and an outcome reported
/// with an older generation is ignored (a slow failure from before a trip or
/// a reset counts for nothing).
///
/// # What costs a round trip
///
/// State, generation, open deadline and counters live in one Redis hash; a
/// Lua script moves them, on the server's clock. Each replica keeps a cached
/// view that a background task refreshes every
/// [`sync_interval`](SharedBreakerBuilder::sync_interval):
///
/// - a CLOSED call is admitted from the view (one atomic load) and a success
///   reports nothing, unless the fleet has a failure streak going (then the
///   success ends it: one round trip);
/// - an OPEN call before the deadline is refused from the view;
/// - a failure, a probe (admission and outcome) and a call after the open
///   deadline make one round trip each.
///
/// **Staleness bound**: while the sync task runs and is not held up, another
/// replica's change reaches this one's view within
/// `sync_interval + command_timeout` (the first sync that starts after the
/// change ends within that; a sync queued behind this replica's own reports
/// can take longer, but every report's answer refreshes the view too); the
/// replica that makes a change sees it at once. Until then, calls here
/// follow the older view: a replica may admit CLOSED calls for up to that
/// long after another tripped the circuit.
///
/// The bound is also enforced on the CLOSED path: a view older than three
/// bounds is not trusted, and the call asks Redis (one round trip, which
/// refreshes the view) or, if that fails, goes to the fallback. So a replica
/// whose sync task died (see *Runtime*) or is stuck never admits from a
/// frozen view for longer than three bounds.
///
/// # When Redis fails
///
/// A failed or timed-out sync switches the breaker to its [`Fallback`]: a
/// local breaker with the same settings (the default), or refusing every
/// call. The local breaker starts from what this replica knew: if the view
/// was OPEN, calls are refused until the view's deadline, and only then
/// does the local breaker (fresh, CLOSED) decide. Syncs go on at the same
/// interval; the first that succeeds switches back (the local breaker's
/// state is not carried over to the fleet). Both switches are
/// [`RedisEvent`]s and show in [`stats`](SharedBreaker::stats). Outcomes
/// that cannot be reported are counted in `reports_lost`.
///
/// # Runtime
///
/// Tokio: the sync task is spawned on the runtime that builds the breaker,
/// and ends when the last handle is dropped, or when that runtime shuts
/// down. In the second case the end shows as
/// [`RedisEvent::SyncStopped`] and in
/// [`stats`](SharedBreaker::stats)`().sync_task_running`; the view is then
/// refreshed only by calls (above), and the connection built on that
/// runtime is gone too, so the fallback serves: build the breaker (and its
/// [`Redis`]) on the runtime that serves the calls. Calls made outside any
/// tokio runtime never panic: a decision that needs Redis goes to the
/// fallback.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use kompoz_redis::{Redis, SharedBreaker};
///
/// # async fn fetch() -> Result<String, std::io::Error> { Ok(String::new()) }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = kompoz_redis::test_server::RedisServer::start()?;
/// # let url = server.url(); // e.g. "redis://127.0.0.1:6379/"
/// let redis = Redis::connect(&url).await?;
/// let breaker = SharedBreaker::builder(&redis, "upstream:breaker")
///     .failure_threshold(5)
///     .recovery_timeout(Duration::from_secs(30))
///     .build()
///     .await?;
///
/// let body = breaker.call(|| fetch()).await?;
/// # let _ = body;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SharedBreaker {
    inner: Arc<Inner>,
}

struct Inner {
    redis: Redis,
    key: Arc<str>,
    settings: Settings,
    /// `ARGV` 2..=5: threshold, recovery_us, half_open, lease_us.
    args: [String; 4],
    script: Script,
    view: View,
    health: Health,
    fallback: Option<Breaker<TokioClock>>,
    reports: mpsc::UnboundedSender<Report>,
    rejected: AtomicU64,
    fallback_calls: AtomicU64,
    syncs: AtomicU64,
    reports_lost: AtomicU64,
    /// Whether the sync task runs (it ends with the runtime that built the
    /// breaker).
    worker_running: AtomicBool,
    /// When the sync task last went round its loop (`TokioClock` nanos).
    worker_beat: AtomicU64,
    /// `STALE_AFTER_BOUNDS` staleness bounds, in nanoseconds.
    stale_after_ns: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Settings {
    failure_threshold: u32,
    recovery_timeout: Duration,
    half_open_max_calls: u32,
    probe_lease: Duration,
    sync_interval: Duration,
}

/// An outcome on its way to Redis.
struct Report {
    op: &'static str,
    generation: u64,
    done: Option<oneshot::Sender<()>>,
}

impl SharedBreaker {
    /// A builder for the breaker under the Redis key `key`, with the
    /// reference's defaults (5 failures, 30 s, 1 probe).
    pub fn builder(redis: &Redis, key: &str) -> SharedBreakerBuilder {
        SharedBreakerBuilder {
            redis: redis.clone(),
            key: key.to_owned(),
            settings: Settings {
                failure_threshold: kompoz_core::circuit_breaker::DEFAULT_FAILURE_THRESHOLD,
                recovery_timeout: kompoz_core::circuit_breaker::DEFAULT_RECOVERY_TIMEOUT,
                half_open_max_calls: kompoz_core::circuit_breaker::DEFAULT_HALF_OPEN_MAX_CALLS,
                probe_lease: DEFAULT_PROBE_LEASE,
                sync_interval: DEFAULT_SYNC_INTERVAL,
            },
            fallback: Fallback::Local,
            on_event: None,
        }
    }

    /// The Redis key holding the state.
    pub fn key(&self) -> &str {
        &self.inner.key
    }

    /// The state as this replica sees it: its cached view of the shared
    /// state, or, while the fallback serves, the local breaker's state
    /// ([`Fallback::Local`]) or OPEN ([`Fallback::Refuse`]).
    pub fn state(&self) -> CircuitState {
        let inner = &self.inner;
        if inner.health.in_fallback() {
            if let Some(view) = inner.open_from_view() {
                return view.state;
            }
            return match &inner.fallback {
                Some(local) => local.state(),
                None => CircuitState::Open,
            };
        }
        inner.view.load().state
    }

    /// Whether calls go to the fallback now.
    pub fn in_fallback(&self) -> bool {
        self.inner.health.in_fallback()
    }

    /// Admits a call or refuses it. CLOSED: from the cached view, no round
    /// trip. OPEN before its deadline: refused from the view. Otherwise one
    /// round trip decides (a probe slot, fleet-wide).
    ///
    /// The permit reports the call's outcome
    /// ([`success`](SharedBreakerPermit::success),
    /// [`failure`](SharedBreakerPermit::failure),
    /// [`finish`](SharedBreakerPermit::finish)); dropped without one, the
    /// call counts as cancelled (a probe slot is given back).
    ///
    /// Cancel-safe: dropped while a probe slot is being granted, the slot is
    /// given back when the grant arrives.
    ///
    /// # Errors
    ///
    /// [`CircuitOpen`]: OPEN (with the end of the open period, on
    /// [`TokioClock`]'s timeline), or HALF_OPEN with every probe slot taken
    /// (no `retry_at`).
    pub async fn acquire(&self) -> Result<SharedBreakerPermit, CircuitOpen> {
        let inner = &self.inner;
        if inner.health.in_fallback() {
            return self.acquire_fallback();
        }
        let view = inner.view.load();
        let now = TokioClock.now();
        // A view older than the bound (the sync task is gone, or stuck) is
        // not trusted: Redis decides, in one round trip that refreshes it.
        let fresh = inner.view.synced_since(Instant::from_nanos(
            now.as_nanos().saturating_sub(inner.stale_after_ns),
        ));
        match view.state {
            _ if !fresh => {
                inner.worker_alive(now);
            }
            CircuitState::Closed => {
                return Ok(self.permit(Kind::Closed {
                    generation: view.generation,
                }));
            }
            CircuitState::Open if now < view.open_until => {
                inner.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(CircuitOpen::new(CircuitState::Open, Some(view.open_until)));
            }
            CircuitState::HalfOpen if view.probes_full => {
                inner.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(CircuitOpen::new(CircuitState::HalfOpen, None));
            }
            _ => {}
        }
        // The grant runs on its own task: if this call is dropped while it
        // is on the way, the task gives a granted probe slot back.
        // Outside a tokio runtime there is no task to ask Redis with: the
        // fallback decides.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return self.acquire_fallback();
        };
        let (tx, rx) = oneshot::channel();
        let task = Arc::clone(inner);
        runtime.spawn(async move {
            let result = task.op("acquire", 0).await;
            if let Err(Ok((Verdict::Probe, remote))) = tx.send(result) {
                task.send(Report {
                    op: "cancel",
                    generation: remote.generation,
                    done: None,
                });
            }
        });
        match rx.await {
            Ok(Ok((Verdict::Closed, remote))) => Ok(self.permit(Kind::Closed {
                generation: remote.generation,
            })),
            Ok(Ok((Verdict::Probe, remote))) => Ok(self.permit(Kind::Probe {
                generation: remote.generation,
            })),
            Ok(Ok((_, remote))) => {
                inner.rejected.fetch_add(1, Ordering::Relaxed);
                if remote.state == CircuitState::HalfOpen {
                    inner.view.probes_taken(remote.generation);
                    Err(CircuitOpen::new(CircuitState::HalfOpen, None))
                } else {
                    Err(CircuitOpen::new(
                        CircuitState::Open,
                        Some(TokioClock.now() + remote.open_for),
                    ))
                }
            }
            Ok(Err(err)) => {
                inner.redis_failed(&err);
                self.acquire_fallback()
            }
            // The task ended without an answer (its runtime is shutting
            // down): no shared decision, so the fallback decides.
            Err(_) => self.acquire_fallback(),
        }
    }

    fn acquire_fallback(&self) -> Result<SharedBreakerPermit, CircuitOpen> {
        let inner = &self.inner;
        inner.fallback_calls.fetch_add(1, Ordering::Relaxed);
        // The fleet's circuit was OPEN when Redis went away: it stays OPEN
        // here until the deadline this replica knew; then the local
        // breaker decides.
        if let Some(view) = inner.open_from_view() {
            inner.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(CircuitOpen::new(CircuitState::Open, Some(view.open_until)));
        }
        match &inner.fallback {
            Some(local) => local
                .try_acquire_owned()
                .map(|permit| self.permit(Kind::Local(permit))),
            None => Err(CircuitOpen::new(CircuitState::Open, None)),
        }
    }

    fn permit(&self, kind: Kind) -> SharedBreakerPermit {
        SharedBreakerPermit {
            breaker: self.clone(),
            kind: Some(kind),
        }
    }

    /// Runs the operation `make()` if the breaker admits it, and reports its
    /// outcome (an `Err` or a panic is a failure) before returning: a
    /// policy of this breaker's [`layer`](Self::layer) alone. For another
    /// classification, or more layers, use a
    /// [`Policy`](kompoz_core::call::Policy) with
    /// [`SharedPolicyExt`](crate::SharedPolicyExt).
    ///
    /// # Errors
    ///
    /// [`Error::CircuitOpen`] when refused (the operation never started),
    /// [`Error::Inner`] with the operation's own error.
    pub async fn call<T, E, F, Fut>(&self, make: F) -> Result<T, Error<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        kompoz_tokio::policy().layer(self.layer()).call(make).await
    }

    /// This breaker as a layer of the call API, with the default
    /// classification (tune it with
    /// [`failure_if_err`](SharedBreakerLayer::failure_if_err) and
    /// [`failure_if_ok`](SharedBreakerLayer::failure_if_ok)).
    pub fn layer(&self) -> SharedBreakerLayer {
        SharedBreakerLayer::new(self)
    }

    /// Guards the combinator `inner` (the algebra's face): a refused call
    /// returns `(false, ctx)` without running it; `ok == false` or a panic
    /// is a failure.
    pub fn guard<I>(&self, inner: I) -> SharedCircuitBreaker<I> {
        SharedCircuitBreaker {
            inner,
            breaker: self.clone(),
        }
    }

    /// Closes the circuit for the whole fleet and starts a new generation.
    ///
    /// # Errors
    ///
    /// When Redis does not answer (or the key holds another configuration).
    pub async fn reset(&self) -> Result<(), SetupError> {
        self.inner
            .op("reset", 0)
            .await
            .map(|_| ())
            .map_err(|err| err.into_setup(self.inner.redis.address(), "resetting the breaker"))
    }

    /// Syncs the cached view with Redis now (the background task does this
    /// every `sync_interval`).
    ///
    /// # Errors
    ///
    /// When Redis does not answer; the fallback then serves.
    pub async fn sync(&self) -> Result<(), SetupError> {
        self.inner
            .sync()
            .await
            .map_err(|err| err.into_setup(self.inner.redis.address(), "syncing the breaker"))
    }

    /// A snapshot of this replica's view and bookkeeping.
    pub fn stats(&self) -> SharedBreakerStats {
        let inner = &self.inner;
        let view = inner.view.load();
        SharedBreakerStats {
            state: self.state(),
            generation: view.generation,
            in_fallback: inner.health.in_fallback(),
            rejected: inner.rejected.load(Ordering::Relaxed),
            fallback_calls: inner.fallback_calls.load(Ordering::Relaxed),
            redis_errors: inner.health.redis_errors(),
            syncs: inner.syncs.load(Ordering::Relaxed),
            reports_lost: inner.reports_lost.load(Ordering::Relaxed),
            sync_task_running: inner.worker_alive(TokioClock.now()),
            since_sync: inner
                .view
                .synced_at()
                .map(|at| TokioClock.now().duration_since(at)),
        }
    }

    /// The bound on how old this replica's view of another replica's change
    /// can be: `sync_interval + command_timeout`.
    pub fn staleness_bound(&self) -> Duration {
        self.inner.settings.sync_interval + self.inner.redis.command_timeout()
    }
}

impl Inner {
    /// A Redis command failed. A new fallback episode starts the local
    /// breaker afresh: what it learned in an earlier outage says nothing
    /// about the upstream now (the fleet's OPEN circuit is kept by the view,
    /// see `acquire_fallback`).
    fn redis_failed(&self, err: &CommandError) {
        if let (true, Some(local)) = (self.health.failed(err), &self.fallback) {
            local.reset();
        }
    }

    /// Whether the sync task runs: it has not ended, and went round its
    /// loop within three staleness bounds (each of its round trips ends
    /// within one). Marks it stopped otherwise.
    fn worker_alive(&self, now: Instant) -> bool {
        if !self.worker_running.load(Ordering::Acquire) {
            return false;
        }
        let beat = self.worker_beat.load(Ordering::Acquire);
        if now.as_nanos().saturating_sub(beat) <= self.stale_after_ns {
            return true;
        }
        self.worker_stopped();
        false
    }

    /// The sync task went round its loop.
    fn beat(&self) {
        self.worker_beat
            .store(TokioClock.now().as_nanos(), Ordering::Release);
        self.worker_running.store(true, Ordering::Release);
    }

    /// The sync task ended (or stopped going round): say so once.
    fn worker_stopped(&self) {
        if self.worker_running.swap(false, Ordering::AcqRel) {
            self.health.emit(|| RedisEvent::SyncStopped {
                key: Arc::clone(&self.key),
            });
        }
    }

    /// The last view, if it was OPEN and its deadline has not passed.
    fn open_from_view(&self) -> Option<view::Snapshot> {
        let view = self.view.load();
        (view.state == CircuitState::Open && TokioClock.now() < view.open_until).then_some(view)
    }

    /// Runs one operation of the script and takes its answer into the view.
    async fn op(
        &self,
        op: &'static str,
        generation: u64,
    ) -> Result<(Verdict, Remote), CommandError> {
        let mut args = Vec::with_capacity(7);
        args.push(op.to_owned());
        args.extend(self.args.iter().cloned());
        args.push(generation.to_string());
        args.push(KEY_TTL_MS.to_string());
        let reply: Vec<String> = self.redis.run(&self.script, &self.key, &args).await?;
        match script::parse(&reply) {
            Some(Reply::Answer(verdict, remote)) => {
                let change =
                    self.view
                        .apply(&remote, TokioClock.now(), self.settings.half_open_max_calls);
                self.health.answered();
                if let Some(change) = change {
                    self.health.emit(|| RedisEvent::StateChange {
                        key: Arc::clone(&self.key),
                        from: change.from,
                        to: change.to,
                        generation: change.generation,
                    });
                }
                Ok((verdict, remote))
            }
            Some(Reply::Conflict(have)) => Err(CommandError::Conflict(conflict(
                &self.key,
                &self.settings,
                &have,
            ))),
            None => Err(CommandError::Reply(format!("{reply:?}"))),
        }
    }

    async fn sync(&self) -> Result<(), CommandError> {
        let result = self.op("sync", 0).await;
        match &result {
            Ok(_) => {
                self.syncs.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => self.redis_failed(err),
        }
        result.map(|_| ())
    }

    fn send(&self, report: Report) {
        if self.reports.send(report).is_err() {
            self.reports_lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn report(&self, report: Report) {
        if self.health.in_fallback() {
            // Not now: the fallback serves, and the sync will tell when
            // Redis is back.
            self.reports_lost.fetch_add(1, Ordering::Relaxed);
        } else if let Err(err) = self.op(report.op, report.generation).await {
            self.reports_lost.fetch_add(1, Ordering::Relaxed);
            self.redis_failed(&err);
        }
        if let Some(done) = report.done {
            let _ = done.send(());
        }
    }
}

/// The background task of one breaker: applies reports in order, and syncs
/// the view every interval. Ends when the last handle is dropped.
async fn run_worker(
    inner: Weak<Inner>,
    mut reports: mpsc::UnboundedReceiver<Report>,
    interval: Duration,
) {
    /// Says, when the task ends with the breaker still in use (its runtime
    /// shut down), that the view is no longer synced in the background.
    struct Running(Weak<Inner>);
    impl Drop for Running {
        fn drop(&mut self) {
            if let Some(inner) = self.0.upgrade() {
                inner.worker_stopped();
            }
        }
    }
    let _running = Running(inner.clone());
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            report = reports.recv() => {
                let (Some(report), Some(inner)) = (report, inner.upgrade()) else { return };
                inner.report(report).await;
                inner.beat();
            }
            _ = ticker.tick() => {
                let Some(inner) = inner.upgrade() else { return };
                inner.beat();
                let _ = inner.sync().await;
            }
        }
    }
}

/// The error for a key that holds another breaker configuration, naming the
/// first setting that differs.
fn conflict(key: &str, settings: &Settings, have: &[String; 3]) -> ConfigError {
    let micros = |s: &str| {
        s.parse::<u64>()
            .map(|us| format!("{:?}", Duration::from_micros(us)))
            .unwrap_or_else(|_| s.to_owned())
    };
    if have[0] != settings.failure_threshold.to_string() {
        ConfigError::name_conflict(
            key,
            "failure_threshold",
            Raw(have[0].clone()),
            settings.failure_threshold,
        )
    } else if have[1] != settings.recovery_timeout.as_micros().to_string() {
        ConfigError::name_conflict(
            key,
            "recovery_timeout",
            Raw(micros(&have[1])),
            settings.recovery_timeout,
        )
    } else {
        ConfigError::name_conflict(
            key,
            "half_open_max_calls",
            Raw(have[2].clone()),
            settings.half_open_max_calls,
        )
    }
}

struct Raw(String);

impl fmt::Debug for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SharedBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBreaker")
            .field("key", &self.inner.key)
            .field("settings", &self.inner.settings)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// How a permit was admitted.
enum Kind {
    /// From the view, in CLOSED, in this generation.
    Closed { generation: u64 },
    /// A fleet-wide probe slot of this generation.
    Probe { generation: u64 },
    /// By the local fallback breaker.
    Local(OwnedBreakerPermit<TokioClock>),
}

/// An admitted call of a [`SharedBreaker`]: report its outcome with
/// [`success`](Self::success), [`failure`](Self::failure),
/// [`record`](Self::record) (queued: no waiting) or
/// [`finish`](Self::finish) (waits until Redis has it). Dropped without an
/// outcome, the call counts as cancelled: nothing is counted, and a probe
/// slot is given back.
pub struct SharedBreakerPermit {
    breaker: SharedBreaker,
    kind: Option<Kind>,
}

impl SharedBreakerPermit {
    /// Whether this call is a half-open probe (one of the fleet's
    /// `half_open_max_calls`).
    pub fn is_probe(&self) -> bool {
        matches!(self.kind, Some(Kind::Probe { .. }))
    }

    /// Whether the local fallback breaker admitted this call.
    pub fn is_fallback(&self) -> bool {
        matches!(self.kind, Some(Kind::Local(_)))
    }

    /// The shared generation the call was admitted in (`None` for the
    /// fallback's calls).
    pub fn generation(&self) -> Option<u64> {
        match self.kind {
            Some(Kind::Closed { generation } | Kind::Probe { generation }) => Some(generation),
            _ => None,
        }
    }

    /// The call succeeded.
    pub fn success(self) {
        self.record(false);
    }

    /// The call failed.
    pub fn failure(self) {
        self.record(true);
    }

    /// The call ended, a failure or not. The report goes to Redis in the
    /// background (in order with this replica's other reports); a CLOSED
    /// success sends none unless the fleet has a failure streak to end.
    pub fn record(mut self, failure: bool) {
        if let Some(report) = self.report(failure) {
            self.breaker.inner.send(report);
        }
    }

    /// As [`record`](Self::record), and waits until Redis has the outcome
    /// (so this replica's view shows any trip it caused). Cancel-safe: the
    /// report is sent whether or not this future is polled to the end.
    pub async fn finish(mut self, failure: bool) {
        if let Some(mut report) = self.report(failure) {
            let (done, wait) = oneshot::channel();
            report.done = Some(done);
            self.breaker.inner.send(report);
            let _ = wait.await;
        }
    }

    fn report(&mut self, failure: bool) -> Option<Report> {
        let op = if failure { "failure" } else { "success" };
        match self.kind.take()? {
            Kind::Local(permit) => {
                permit.record(failure);
                None
            }
            Kind::Closed { generation } => (failure || self.breaker.inner.view.load().streak)
                .then_some(Report {
                    op,
                    generation,
                    done: None,
                }),
            Kind::Probe { generation } => Some(Report {
                op,
                generation,
                done: None,
            }),
        }
    }
}

impl Drop for SharedBreakerPermit {
    fn drop(&mut self) {
        if let Some(Kind::Probe { generation }) = self.kind.take() {
            self.breaker.inner.send(Report {
                op: "cancel",
                generation,
                done: None,
            });
        }
    }
}

impl fmt::Debug for SharedBreakerPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBreakerPermit")
            .field("key", &self.breaker.inner.key)
            .field("probe", &self.is_probe())
            .field("fallback", &self.is_fallback())
            .field("generation", &self.generation())
            .finish()
    }
}

/// What a [`SharedBreaker`] replica saw and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedBreakerStats {
    /// The state as this replica sees it (see [`SharedBreaker::state`]).
    pub state: CircuitState,
    /// The shared generation of the view.
    pub generation: u64,
    /// Whether the fallback serves now.
    pub in_fallback: bool,
    /// Calls this replica refused by the shared state.
    pub rejected: u64,
    /// Calls decided by the fallback.
    pub fallback_calls: u64,
    /// Redis commands that failed or timed out.
    pub redis_errors: u64,
    /// Successful syncs of the view.
    pub syncs: u64,
    /// Outcomes that could not reach Redis (it failed, or the fallback
    /// served when they were sent).
    pub reports_lost: u64,
    /// How old the view is (`None` before the first answer).
    pub since_sync: Option<Duration>,
    /// Whether the background sync task runs. It ends with the runtime that
    /// built the breaker ([`RedisEvent::SyncStopped`]); the view is then
    /// refreshed only by calls that find it older than three staleness
    /// bounds.
    pub sync_task_running: bool,
}

/// Configures a [`SharedBreaker`]; [`build`](Self::build) validates,
/// registers the configuration with Redis and starts the sync task.
#[must_use = "a builder guards nothing until `.build().await?`"]
pub struct SharedBreakerBuilder {
    redis: Redis,
    key: String,
    settings: Settings,
    fallback: Fallback,
    on_event: Option<Arc<EventFn>>,
}

impl SharedBreakerBuilder {
    /// Consecutive failures (fleet-wide) that open the circuit. Default 5,
    /// valid 1 to 65535.
    pub fn failure_threshold(mut self, failures: u32) -> Self {
        self.settings.failure_threshold = failures;
        self
    }

    /// How long the circuit stays OPEN before a probe. Default 30 s; valid
    /// from 1 µs to 2^52 µs (about 142 years).
    pub fn recovery_timeout(mut self, timeout: Duration) -> Self {
        self.settings.recovery_timeout = timeout;
        self
    }

    /// Probes at once in HALF_OPEN, fleet-wide, and the successes that close
    /// the circuit. Default 1, valid 1 to 65535.
    pub fn half_open_max_calls(mut self, calls: u32) -> Self {
        self.settings.half_open_max_calls = calls;
        self
    }

    /// How long a probe slot stays taken without an outcome (its holder
    /// died, or hangs) before the fleet takes the slots back under a new
    /// generation (the late outcome is then ignored). Default
    /// [`DEFAULT_PROBE_LEASE`]; valid from 1 µs to 2^52 µs. Keep probes'
    /// own timeouts under it.
    pub fn probe_lease(mut self, lease: Duration) -> Self {
        self.settings.probe_lease = lease;
        self
    }

    /// How often the view is synced with Redis (see the staleness bound on
    /// [`SharedBreaker`]); also how often Redis is retried while the
    /// fallback serves. Default [`DEFAULT_SYNC_INTERVAL`]; must be greater
    /// than zero.
    pub fn sync_interval(mut self, interval: Duration) -> Self {
        self.settings.sync_interval = interval;
        self
    }

    /// What serves while Redis fails (default [`Fallback::Local`]).
    pub fn fallback(mut self, fallback: Fallback) -> Self {
        self.fallback = fallback;
        self
    }

    /// Subscribes to [`RedisEvent`]s: the state changes this replica sees,
    /// and the fallback starting and ending.
    pub fn on_event<F>(mut self, subscriber: F) -> Self
    where
        F: Fn(&RedisEvent) + Send + Sync + 'static,
    {
        self.on_event = Some(Arc::new(subscriber));
        self
    }

    /// Validates, registers the configuration under the key (or checks that
    /// the key holds the same one), takes the first view and starts the
    /// sync task on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// - [`SetupError::Config`] with [`ConfigError::Invalid`] for an empty
    ///   key or a setting out of range (named, with its value).
    /// - [`SetupError::Config`] with [`ConfigError::NameConflict`] when the
    ///   key holds another breaker configuration.
    /// - [`SetupError::Redis`] / [`SetupError::Unreachable`] when Redis does
    ///   not answer the registration.
    pub async fn build(self) -> Result<SharedBreaker, SetupError> {
        let settings = self.settings;
        if self.key.is_empty() {
            return Err(ConfigError::invalid("key", &self.key, "a non-empty Redis key").into());
        }
        if !(1..=65_535).contains(&settings.failure_threshold) {
            return Err(ConfigError::invalid(
                "failure_threshold",
                settings.failure_threshold,
                "1 to 65535",
            )
            .into());
        }
        if !(1..=65_535).contains(&settings.half_open_max_calls) {
            return Err(ConfigError::invalid(
                "half_open_max_calls",
                settings.half_open_max_calls,
                "1 to 65535",
            )
            .into());
        }
        for (parameter, value) in [
            ("recovery_timeout", settings.recovery_timeout),
            ("probe_lease", settings.probe_lease),
        ] {
            if value.as_micros() == 0 || value.as_micros() >= MAX_DURATION_US {
                return Err(ConfigError::invalid(
                    parameter,
                    value,
                    "from 1 µs to 2^52 µs (about 142 years)",
                )
                .into());
            }
        }
        if settings.sync_interval.is_zero() {
            return Err(ConfigError::invalid(
                "sync_interval",
                settings.sync_interval,
                "a duration greater than zero",
            )
            .into());
        }
        let fallback = match self.fallback {
            Fallback::Local => Some(
                Breaker::builder(TokioClock)
                    .failure_threshold(settings.failure_threshold)
                    .recovery_timeout(settings.recovery_timeout)
                    .half_open_max_calls(settings.half_open_max_calls)
                    .build()?,
            ),
            _ => None,
        };
        let key: Arc<str> = Arc::from(self.key.as_str());
        let (reports, receiver) = mpsc::unbounded_channel();
        let stale_after_ns = u64::try_from(
            (settings
                .sync_interval
                .saturating_add(self.redis.command_timeout()))
            .checked_mul(STALE_AFTER_BOUNDS)
            .unwrap_or(Duration::MAX)
            .as_nanos(),
        )
        .unwrap_or(u64::MAX);
        let inner = Arc::new(Inner {
            health: Health::new(Arc::clone(&key), settings.sync_interval, self.on_event),
            args: [
                settings.failure_threshold.to_string(),
                settings.recovery_timeout.as_micros().to_string(),
                settings.half_open_max_calls.to_string(),
                settings.probe_lease.as_micros().to_string(),
            ],
            redis: self.redis,
            key,
            settings,
            script: Script::new(BREAKER_LUA),
            view: View::new(),
            fallback,
            reports,
            rejected: AtomicU64::new(0),
            fallback_calls: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            reports_lost: AtomicU64::new(0),
            worker_running: AtomicBool::new(true),
            worker_beat: AtomicU64::new(TokioClock.now().as_nanos()),
            stale_after_ns,
        });
        match inner.op("sync", 0).await {
            Ok(_) => {
                inner.syncs.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => {
                return Err(err.into_setup(inner.redis.address(), "registering the breaker"));
            }
        }
        tokio::spawn(run_worker(
            Arc::downgrade(&inner),
            receiver,
            settings.sync_interval,
        ));
        Ok(SharedBreaker { inner })
    }
}

impl fmt::Debug for SharedBreakerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBreakerBuilder")
            .field("key", &self.key)
            .field("settings", &self.settings)
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}

/// A combinator guarded by a [`SharedBreaker`]; built by
/// [`SharedBreaker::guard`].
#[derive(Clone, Debug)]
pub struct SharedCircuitBreaker<I> {
    inner: I,
    breaker: SharedBreaker,
}

impl<I> SharedCircuitBreaker<I> {
    /// The breaker.
    pub fn breaker(&self) -> &SharedBreaker {
        &self.breaker
    }

    /// The guarded combinator.
    pub fn get_ref(&self) -> &I {
        &self.inner
    }

    /// The guarded combinator, unwrapped.
    pub fn into_inner(self) -> I {
        self.inner
    }
}

impl<C, I: Combinator<C>> Combinator<C> for SharedCircuitBreaker<I> {
    async fn run(&self, ctx: C) -> (bool, C) {
        let Ok(held) = Held::admit(&self.breaker).await else {
            return (false, ctx);
        };
        let ((ok, ctx), permit) = held.run(self.inner.run(ctx)).await;
        if let Some(permit) = permit {
            permit.finish(!ok).await;
        }
        (ok, ctx)
    }
}
