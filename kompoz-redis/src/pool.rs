//! [`SharedPool`]: a concurrency limit for a fleet, kept as expiring leases
//! in Redis.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use kompoz_core::call::{Error, PoolFull};
use kompoz_core::limiter::OwnedSemaphorePermit;
use kompoz_core::{Combinator, ConfigError, LimitMode, Semaphore};
use redis::Script;
use tokio::sync::{mpsc, oneshot};

use crate::connection::CommandError;
use crate::fallback::{EventFn, Health};
use crate::{Fallback, Redis, RedisEvent, SetupError, SharedLimitLayer};

/// How long a lease lasts without renewal, unless told otherwise: 30 s.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// How often a waiting call asks again whether a lease is free, unless told
/// otherwise: 10 ms.
pub const DEFAULT_POLL_EVERY: Duration = Duration::from_millis(10);

const KEY_TTL_MS: u64 = 24 * 60 * 60 * 1000;
const MAX_DURATION_US: u128 = 1 << 52;

/// The pool on the server. `KEYS[1]`: the leases, a sorted set of lease id
/// by expiry (µs of `TIME`); `KEYS[2]`: the configuration, a hash. Every
/// operation first drops the leases that expired (their holders died or
/// hung). `ARGV`: op, max, lease_us, ttl_ms, then lease ids.
///
/// Replies: `{"granted", held}`, `{"full", held, us_until_first_expiry}`,
/// `{"released"}`, `{"renewed", count}`, `{"registered", replica_number}`, or
/// `{"conflict", max, lease_us}` (the key holds another pool).
const POOL_LUA: &str = r"
local have = redis.call('HMGET', KEYS[2], 'max', 'lease_us')
if have[1] and (have[1] ~= ARGV[2] or have[2] ~= ARGV[3]) then
  return {'conflict', have[1], have[2] or ''}
end
if not have[1] and redis.call('EXISTS', KEYS[2]) == 1 then
  return {'conflict', 'a key of another kind (not a pool)', ''}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local lease = tonumber(ARGV[3])
local until_ = string.format('%.0f', now + lease)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
redis.call('HSET', KEYS[2], 'max', ARGV[2], 'lease_us', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
local op = ARGV[1]
local reply
if op == 'acquire' then
  local held = redis.call('ZCARD', KEYS[1])
  if held < tonumber(ARGV[2]) then
    redis.call('ZADD', KEYS[1], until_, ARGV[5])
    reply = {'granted', held + 1}
  else
    local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    reply = {'full', held, string.format('%.0f', tonumber(first[2]) - now)}
  end
elseif op == 'release' then
  redis.call('ZREM', KEYS[1], ARGV[5])
  reply = {'released'}
elseif op == 'renew' then
  local renewed = 0
  for i = 5, #ARGV do
    renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', until_, ARGV[i])
  end
  reply = {'renewed', renewed}
else
  reply = {'registered', redis.call('HINCRBY', KEYS[2], 'replicas', 1)}
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], math.ceil(lease / 1000) + tonumber(ARGV[4]))
end
return reply
";

/// A concurrency limit shared by every replica that uses the same Redis
/// key: at most `max_concurrent` calls run at once across the fleet.
///
/// Each admitted call holds a *lease* in Redis: a member of a sorted set,
/// scored by its expiry on the server's clock. The replica renews its
/// leases in the background every `lease / 3`; a holder that dies (or loses
/// Redis for longer than a lease) stops renewing, and its leases expire, so
/// the fleet never loses capacity for longer than one lease. Admission is one
/// round trip; the release is one more, in the background.
///
/// A call over the limit is refused at once ([`LimitMode::Reject`]) or asks
/// again every [`poll_every`](SharedPoolBuilder::poll_every) until it gets a
/// lease (the default [`LimitMode::Wait`]) or its bound passes
/// ([`LimitMode::WaitAtMost`]). Waiting calls are not queued in order
/// across the fleet (unlike the local FIFO pool): whoever asks first after a
/// release gets the lease.
///
/// When Redis fails, the [`Fallback`] serves: a local pool of the same size
/// (or [`fallback_max`](SharedPoolBuilder::fallback_max)) for each replica,
/// or refusal.
///
/// # Examples
///
/// ```
/// use kompoz_core::call::Error;
/// use kompoz_redis::{Redis, SharedPool};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = kompoz_redis::test_server::RedisServer::start()?;
/// # let url = server.url(); // e.g. "redis://127.0.0.1:6379/"
/// let redis = Redis::connect(&url).await?;
/// let pool = SharedPool::builder(&redis, "reports:pool", 1)
///     .reject_when_full()
///     .build()
///     .await?;
///
/// let held = pool.acquire().await?;
/// // The fleet's only slot is taken: the next call is refused.
/// let refused = pool.call(|| async { Ok::<_, ()>("report") }).await;
/// assert!(matches!(refused, Err(Error::PoolFull(_))));
/// drop(held); // released in the background
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SharedPool {
    inner: Arc<Inner>,
}

struct Inner {
    redis: Redis,
    key: Arc<str>,
    config_key: String,
    max: u32,
    lease: Duration,
    mode: LimitMode,
    poll_every: Duration,
    /// `ARGV` 2..=4: max, lease_us, ttl_ms.
    args: [String; 3],
    script: Script,
    health: Health,
    fallback: Option<Arc<Semaphore>>,
    /// The lease ids this replica holds, renewed in the background.
    held: Mutex<HashSet<String>>,
    releases: mpsc::UnboundedSender<String>,
    id_prefix: String,
    next_id: AtomicU64,
    acquired: AtomicU64,
    rejected: AtomicU64,
    fallback_acquired: AtomicU64,
    fallback_rejected: AtomicU64,
    leases_lost: AtomicU64,
}

enum Answer {
    Granted,
    Full,
}

impl SharedPool {
    /// A builder for a pool of `max_concurrent` leases under the Redis key
    /// `key` (the configuration lives in `key:config`).
    pub fn builder(redis: &Redis, key: &str, max_concurrent: u32) -> SharedPoolBuilder {
        SharedPoolBuilder {
            redis: redis.clone(),
            key: key.to_owned(),
            max: max_concurrent,
            lease: DEFAULT_LEASE,
            mode: LimitMode::Wait,
            poll_every: DEFAULT_POLL_EVERY,
            fallback: Fallback::Local,
            fallback_max: None,
            retry_every: crate::DEFAULT_RETRY_EVERY,
            on_event: None,
        }
    }

    /// The Redis key holding the leases.
    pub fn key(&self) -> &str {
        &self.inner.key
    }

    /// The fleet's limit.
    pub fn max_concurrent(&self) -> u32 {
        self.inner.max
    }

    /// Whether calls go to the fallback now.
    pub fn in_fallback(&self) -> bool {
        self.inner.health.in_fallback()
    }

    /// Takes a lease by the pool's [`LimitMode`]. The permit gives it back
    /// when dropped. Cancel-safe: dropped while a lease is being granted,
    /// the lease is given back when the grant arrives.
    ///
    /// # Errors
    ///
    /// [`PoolFull`] (with how long the call waited) when the mode gives up.
    pub async fn acquire(&self) -> Result<SharedPoolPermit, PoolFull> {
        let inner = &self.inner;
        let started = tokio::time::Instant::now();
        let bound = match inner.mode {
            LimitMode::Wait => None,
            LimitMode::Reject => Some(Duration::ZERO),
            LimitMode::WaitAtMost(bound) => Some(bound),
        };
        loop {
            if !inner.health.use_redis() {
                return self.acquire_fallback(bound).await;
            }
            let id = format!(
                "{}:{}",
                inner.id_prefix,
                inner.next_id.fetch_add(1, Ordering::Relaxed)
            );
            match self.grant(&id).await {
                Ok(Answer::Granted) => {
                    inner.acquired.fetch_add(1, Ordering::Relaxed);
                    return Ok(SharedPoolPermit {
                        pool: self.clone(),
                        lease: Lease::Shared(id),
                    });
                }
                Ok(Answer::Full) => {
                    let waited = started.elapsed();
                    let left = bound.map(|b| b.saturating_sub(waited));
                    if left.is_some_and(|left| left.is_zero()) {
                        inner.rejected.fetch_add(1, Ordering::Relaxed);
                        return Err(PoolFull::new(waited));
                    }
                    let pause = left.map_or(inner.poll_every, |l| l.min(inner.poll_every));
                    tokio::time::sleep(pause).await;
                }
                Err(err) => {
                    inner.health.failed(&err);
                    let left = bound.map(|b| b.saturating_sub(started.elapsed()));
                    return self.acquire_fallback(left).await;
                }
            }
        }
    }

    /// One grant attempt, on its own task: if this call is dropped while it
    /// is on the way, the task releases a lease it was granted.
    async fn grant(&self, id: &str) -> Result<Answer, CommandError> {
        let (tx, rx) = oneshot::channel();
        let task = Arc::clone(&self.inner);
        let lease = id.to_owned();
        tokio::spawn(async move {
            let result = task.op("acquire", std::slice::from_ref(&lease)).await;
            let granted = matches!(result.as_deref().map(first), Ok(Some("granted")));
            if granted {
                task.held
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(lease.clone());
            }
            if tx.send(result).is_err() && granted {
                task.release(lease);
            }
        });
        let reply = match rx.await {
            Ok(reply) => reply?,
            Err(_) => return Err(CommandError::TimedOut(self.inner.redis.command_timeout())),
        };
        match first(&reply) {
            Some("granted") => Ok(Answer::Granted),
            Some("full") => Ok(Answer::Full),
            _ => Err(CommandError::Reply(format!("{reply:?}"))),
        }
    }

    async fn acquire_fallback(
        &self,
        bound: Option<Duration>,
    ) -> Result<SharedPoolPermit, PoolFull> {
        let inner = &self.inner;
        let Some(local) = &inner.fallback else {
            inner.fallback_rejected.fetch_add(1, Ordering::Relaxed);
            return Err(PoolFull::new(Duration::ZERO));
        };
        let started = tokio::time::Instant::now();
        let permit = match bound {
            Some(bound) if bound.is_zero() => local.try_acquire_owned(),
            Some(bound) => tokio::time::timeout(bound, local.acquire_owned())
                .await
                .ok(),
            None => Some(local.acquire_owned().await),
        };
        match permit {
            Some(permit) => {
                inner.fallback_acquired.fetch_add(1, Ordering::Relaxed);
                Ok(SharedPoolPermit {
                    pool: self.clone(),
                    lease: Lease::Local(permit),
                })
            }
            None => {
                inner.fallback_rejected.fetch_add(1, Ordering::Relaxed);
                Err(PoolFull::new(started.elapsed()))
            }
        }
    }

    /// Runs the operation `make()` holding a lease (taken by the mode, as
    /// [`acquire`](Self::acquire)); the lease is given back when it ends:
    /// a policy of this pool's [`layer`](Self::layer) alone.
    ///
    /// # Errors
    ///
    /// [`Error::PoolFull`] when no lease came (the operation never started),
    /// [`Error::Inner`] with the operation's own error.
    pub async fn call<T, E, F, Fut>(&self, make: F) -> Result<T, Error<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        kompoz_tokio::policy().layer(self.layer()).call(make).await
    }

    /// This pool as a layer of the call API.
    pub fn layer(&self) -> SharedLimitLayer {
        SharedLimitLayer::new(self)
    }

    /// Guards the combinator `inner` (the algebra's face): a call that gets
    /// no lease returns `(false, ctx)` without running it.
    pub fn guard<A>(&self, inner: A) -> SharedLimited<A> {
        SharedLimited {
            inner,
            pool: self.clone(),
        }
    }

    /// A snapshot of what this handle (and its clones) did.
    pub fn stats(&self) -> SharedPoolStats {
        let inner = &self.inner;
        SharedPoolStats {
            acquired: inner.acquired.load(Ordering::Relaxed),
            rejected: inner.rejected.load(Ordering::Relaxed),
            fallback_acquired: inner.fallback_acquired.load(Ordering::Relaxed),
            fallback_rejected: inner.fallback_rejected.load(Ordering::Relaxed),
            held: inner
                .held
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .len(),
            leases_lost: inner.leases_lost.load(Ordering::Relaxed),
            redis_errors: inner.health.redis_errors(),
            in_fallback: inner.health.in_fallback(),
        }
    }
}

/// The first field of a reply.
fn first(reply: &[String]) -> Option<&str> {
    reply.first().map(String::as_str)
}

impl Inner {
    async fn op(&self, op: &str, ids: &[String]) -> Result<Vec<String>, CommandError> {
        let mut args = Vec::with_capacity(4 + ids.len());
        args.push(op.to_owned());
        args.extend(self.args.iter().cloned());
        args.extend(ids.iter().cloned());
        let reply: Vec<String> = self
            .redis
            .run_keys(&self.script, &[&self.key, &self.config_key], &args)
            .await?;
        if first(&reply) == Some("conflict") {
            return Err(CommandError::Conflict(conflict(
                &self.key, self.max, self.lease, &reply,
            )));
        }
        self.health.answered();
        Ok(reply)
    }

    fn release(&self, id: String) {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        // The worker gone (its runtime shut down): the lease expires.
        let _ = self.releases.send(id);
    }

    async fn renew(&self) {
        let ids: Vec<String> = self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        if ids.is_empty() {
            return;
        }
        match self.op("renew", &ids).await {
            Ok(reply) => {
                let renewed = reply.get(1).and_then(|n| n.parse::<usize>().ok());
                let lost = ids.len().saturating_sub(renewed.unwrap_or(ids.len()));
                self.leases_lost
                    .fetch_add(u64::try_from(lost).unwrap_or(u64::MAX), Ordering::Relaxed);
            }
            Err(err) => {
                self.health.failed(&err);
            }
        }
    }
}

/// The pool's background task: releases leases, and renews the held ones
/// every `lease / 3`. Ends when the last handle is dropped.
async fn run_worker(
    inner: Weak<Inner>,
    mut releases: mpsc::UnboundedReceiver<String>,
    renew: Duration,
) {
    let mut ticker = tokio::time::interval(renew);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            id = releases.recv() => {
                let (Some(id), Some(inner)) = (id, inner.upgrade()) else { return };
                if let Err(err) = inner.op("release", &[id]).await {
                    inner.health.failed(&err);
                }
            }
            _ = ticker.tick() => {
                let Some(inner) = inner.upgrade() else { return };
                inner.renew().await;
            }
        }
    }
}

fn conflict(key: &str, max: u32, lease: Duration, reply: &[String]) -> ConfigError {
    let have = |i: usize| reply.get(i).cloned().unwrap_or_default();
    if have(1) != max.to_string() {
        ConfigError::name_conflict(key, "max_concurrent", Raw(have(1)), max)
    } else {
        let existing = have(2)
            .parse::<u64>()
            .map(|us| format!("{:?}", Duration::from_micros(us)))
            .unwrap_or_else(|_| have(2));
        ConfigError::name_conflict(key, "lease", Raw(existing), lease)
    }
}

struct Raw(String);

impl fmt::Debug for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SharedPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedPool")
            .field("key", &self.inner.key)
            .field("max_concurrent", &self.inner.max)
            .field("lease", &self.inner.lease)
            .field("mode", &self.inner.mode)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

enum Lease {
    Shared(String),
    /// Held only to be dropped: the local permit goes back with it.
    Local(#[allow(dead_code)] OwnedSemaphorePermit),
}

/// A lease of a [`SharedPool`] (or a permit of its local fallback), given
/// back when dropped.
pub struct SharedPoolPermit {
    pool: SharedPool,
    lease: Lease,
}

impl SharedPoolPermit {
    /// Whether the local fallback pool gave this permit.
    pub fn is_fallback(&self) -> bool {
        matches!(self.lease, Lease::Local(_))
    }
}

impl Drop for SharedPoolPermit {
    fn drop(&mut self) {
        if let Lease::Shared(id) = &mut self.lease {
            self.pool.inner.release(std::mem::take(id));
        }
    }
}

impl fmt::Debug for SharedPoolPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedPoolPermit")
            .field("key", &self.pool.inner.key)
            .field("fallback", &self.is_fallback())
            .finish()
    }
}

/// What a [`SharedPool`] (all clones of one handle) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedPoolStats {
    /// Leases taken.
    pub acquired: u64,
    /// Calls that got no lease.
    pub rejected: u64,
    /// Permits given by the fallback while Redis failed.
    pub fallback_acquired: u64,
    /// Calls the fallback refused.
    pub fallback_rejected: u64,
    /// Leases this replica holds now.
    pub held: usize,
    /// Held leases that a renewal found expired (the replica lost Redis
    /// for longer than a lease; the fleet may briefly run more calls).
    pub leases_lost: u64,
    /// Redis commands that failed or timed out.
    pub redis_errors: u64,
    /// Whether the fallback serves now.
    pub in_fallback: bool,
}

/// Configures a [`SharedPool`]; [`build`](Self::build) validates, registers
/// the configuration and starts the renewal task.
#[must_use = "a builder limits nothing until `.build().await?`"]
pub struct SharedPoolBuilder {
    redis: Redis,
    key: String,
    max: u32,
    lease: Duration,
    mode: LimitMode,
    poll_every: Duration,
    fallback: Fallback,
    fallback_max: Option<u32>,
    retry_every: Duration,
    on_event: Option<Arc<EventFn>>,
}

impl SharedPoolBuilder {
    /// How long a lease lasts unless renewed (the replica renews its leases
    /// every third of this): the longest a dead holder keeps its slot.
    /// Default [`DEFAULT_LEASE`]; from 1 ms to 2^52 µs.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Refuses a call at once when the fleet's pool is full.
    pub fn reject_when_full(self) -> Self {
        self.mode(LimitMode::Reject)
    }

    /// Lets a call wait at most `bound` for a lease.
    pub fn wait_at_most(self, bound: Duration) -> Self {
        self.mode(LimitMode::WaitAtMost(bound))
    }

    /// What a call does when the pool is full (default [`LimitMode::Wait`]).
    pub fn mode(mut self, mode: LimitMode) -> Self {
        self.mode = match mode {
            LimitMode::WaitAtMost(bound) if bound.is_zero() => LimitMode::Reject,
            other => other,
        };
        self
    }

    /// How often a waiting call asks again (default [`DEFAULT_POLL_EVERY`];
    /// must be greater than zero).
    pub fn poll_every(mut self, every: Duration) -> Self {
        self.poll_every = every;
        self
    }

    /// What serves while Redis fails (default [`Fallback::Local`]).
    pub fn fallback(mut self, fallback: Fallback) -> Self {
        self.fallback = fallback;
        self
    }

    /// The local pool's size for each replica while Redis fails, with
    /// [`Fallback::Local`] (default: the fleet's `max_concurrent`).
    pub fn fallback_max(mut self, max: u32) -> Self {
        self.fallback_max = Some(max);
        self
    }

    /// While Redis fails, how often one call tries it again (default
    /// [`DEFAULT_RETRY_EVERY`](crate::DEFAULT_RETRY_EVERY)).
    pub fn retry_redis_every(mut self, every: Duration) -> Self {
        self.retry_every = every;
        self
    }

    /// Subscribes to [`RedisEvent`]s (the fallback starting and ending).
    pub fn on_event<F>(mut self, subscriber: F) -> Self
    where
        F: Fn(&RedisEvent) + Send + Sync + 'static,
    {
        self.on_event = Some(Arc::new(subscriber));
        self
    }

    /// Validates, registers the configuration (or checks the key holds the
    /// same one) and starts the renewal task on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// - [`SetupError::Config`] with [`ConfigError::Invalid`] for an empty
    ///   key or a setting out of range (named, with its value).
    /// - [`SetupError::Config`] with [`ConfigError::NameConflict`] when the
    ///   key holds another pool.
    /// - [`SetupError::Redis`] / [`SetupError::Unreachable`] when Redis does
    ///   not answer the registration.
    pub async fn build(self) -> Result<SharedPool, SetupError> {
        if self.key.is_empty() {
            return Err(ConfigError::invalid("key", &self.key, "a non-empty Redis key").into());
        }
        if self.max == 0 {
            return Err(ConfigError::invalid("max_concurrent", self.max, "at least 1").into());
        }
        if self.lease < Duration::from_millis(1) || self.lease.as_micros() >= MAX_DURATION_US {
            return Err(ConfigError::invalid(
                "lease",
                self.lease,
                "from 1 ms to 2^52 µs (about 142 years)",
            )
            .into());
        }
        for (parameter, value) in [
            ("poll_every", self.poll_every),
            ("retry_redis_every", self.retry_every),
        ] {
            if value.is_zero() {
                return Err(
                    ConfigError::invalid(parameter, value, "a duration greater than zero").into(),
                );
            }
        }
        let fallback = match self.fallback {
            Fallback::Local => {
                let size = self.fallback_max.unwrap_or(self.max);
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                Some(Arc::new(Semaphore::new(size).map_err(|_| {
                    ConfigError::invalid("fallback_max", size, "at least 1")
                })?))
            }
            _ => None,
        };
        let key: Arc<str> = Arc::from(self.key.as_str());
        let (releases, receiver) = mpsc::unbounded_channel();
        let mut inner = Inner {
            health: Health::new(Arc::clone(&key), self.retry_every, self.on_event),
            config_key: format!("{}:config", self.key),
            args: [
                self.max.to_string(),
                self.lease.as_micros().to_string(),
                KEY_TTL_MS.to_string(),
            ],
            redis: self.redis,
            key,
            max: self.max,
            lease: self.lease,
            mode: self.mode,
            poll_every: self.poll_every,
            script: Script::new(POOL_LUA),
            fallback,
            held: Mutex::new(HashSet::new()),
            releases,
            id_prefix: String::new(),
            next_id: AtomicU64::new(0),
            acquired: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            fallback_acquired: AtomicU64::new(0),
            fallback_rejected: AtomicU64::new(0),
            leases_lost: AtomicU64::new(0),
        };
        // A number the server hands out once per handle: lease ids are
        // unique across the fleet without a host name.
        let reply = inner
            .op("register", &[])
            .await
            .map_err(|err| err.into_setup(inner.redis.address(), "registering the pool"))?;
        inner.id_prefix = format!("r{}", reply.get(1).map_or("0", String::as_str));
        let inner = Arc::new(inner);
        tokio::spawn(run_worker(Arc::downgrade(&inner), receiver, self.lease / 3));
        Ok(SharedPool { inner })
    }
}

impl fmt::Debug for SharedPoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedPoolBuilder")
            .field("key", &self.key)
            .field("max_concurrent", &self.max)
            .field("lease", &self.lease)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// A combinator guarded by a [`SharedPool`]; built by [`SharedPool::guard`].
#[derive(Clone, Debug)]
pub struct SharedLimited<A> {
    inner: A,
    pool: SharedPool,
}

impl<A> SharedLimited<A> {
    /// The pool.
    pub fn pool(&self) -> &SharedPool {
        &self.pool
    }

    /// The guarded combinator.
    pub fn get_ref(&self) -> &A {
        &self.inner
    }

    /// The guarded combinator, unwrapped.
    pub fn into_inner(self) -> A {
        self.inner
    }
}

impl<C, A: Combinator<C>> Combinator<C> for SharedLimited<A> {
    async fn run(&self, ctx: C) -> (bool, C) {
        let Ok(_permit) = self.pool.acquire().await else {
            return (false, ctx);
        };
        self.inner.run(ctx).await
    }
}
