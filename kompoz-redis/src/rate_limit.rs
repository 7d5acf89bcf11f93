//! [`SharedRateLimiter`]: one GCRA budget for a fleet, kept in one Redis key.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kompoz_core::call::{Error, RateLimitExceeded};
use kompoz_core::rate_limit::OwnedRateReservation;
use kompoz_core::{Clock, Combinator, ConfigError, LimitMode, RateLimit, RateLimiter};
use kompoz_tokio::TokioClock;
use redis::Script;
use tokio::sync::oneshot;

use crate::connection::CommandError;
use crate::fallback::{EventFn, Health};
use crate::{Fallback, Redis, RedisEvent, SetupError, SharedRateLimitLayer};

/// How long a key outlives its last use: a day past the end of the
/// bookkeeping it holds (its configuration stays, so a reused name with
/// another configuration is still caught).
const KEY_TTL_MS: u64 = 24 * 60 * 60 * 1000;

/// The most bookkeeping a shared limit may run ahead of the server's clock,
/// in microseconds: 2^52, so that every time the script computes is an exact
/// integer in Lua's doubles (about 142 years).
const MAX_SPAN_US: u128 = 1 << 52;

/// The GCRA step, on the server: one key, one round trip, the server's
/// clock. Times are microseconds of `TIME`; a result is
/// `{"admitted", wait, new_tat, old_tat}`, `{"rejected", wait}` or
/// `{"conflict", rate, period_ns, burst}` (the key holds another limit).
/// `ARGV`: rate, period_ns, burst, interval_us, tolerance_us, max_wait_us
/// (-1: no bound; -2: only register the configuration), ttl_ms.
const GCRA_LUA: &str = r"
local key = KEYS[1]
local have = redis.call('HMGET', key, 'rate', 'period_ns', 'burst', 'tat')
if have[1] and (have[1] ~= ARGV[1] or have[2] ~= ARGV[2] or have[3] ~= ARGV[3]) then
  return {'conflict', have[1], have[2] or '', have[3] or ''}
end
if not have[1] and redis.call('EXISTS', key) == 1 then
  return {'conflict', 'a key of another kind (not a rate limit)', '', ''}
end
local max_wait = tonumber(ARGV[6])
if max_wait == -2 then
  redis.call('HSET', key, 'rate', ARGV[1], 'period_ns', ARGV[2], 'burst', ARGV[3])
  if redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, ARGV[7]) end
  return {'registered'}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(have[4] or '0')
local start = math.max(now, tat - tonumber(ARGV[5]))
local wait = start - now
if max_wait >= 0 and wait > max_wait then
  return {'rejected', string.format('%.0f', wait)}
end
local new = math.max(tat, now) + tonumber(ARGV[4])
redis.call('HSET', key, 'rate', ARGV[1], 'period_ns', ARGV[2], 'burst', ARGV[3],
  'tat', string.format('%.0f', new))
redis.call('PEXPIRE', key, math.ceil((new - now) / 1000) + tonumber(ARGV[7]))
return {'admitted', string.format('%.0f', wait), string.format('%.0f', new),
  string.format('%.0f', tat)}
";

/// Gives a reserved slot back if no later one was reserved since (the
/// local limiter's `cancel`, on the server). `ARGV`: the TAT the
/// reservation set, the one it replaced.
const CANCEL_LUA: &str = r"
if redis.call('HGET', KEYS[1], 'tat') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'tat', ARGV[2])
  return 1
end
return 0
";

/// A rate limit shared by every replica that uses the same Redis key: one
/// budget for the fleet, enforced by GCRA on the server.
///
/// Each check is one `EVALSHA` of a Lua script over one hash key: it reads
/// the server's clock (`TIME`: replicas' clocks disagree, the server's is
/// the one they share), decides, and moves the key's theoretical arrival
/// time, atomically. The configuration ([`RateLimit`]) is stored in the key:
/// a limiter built for a key that holds another limit is refused
/// ([`ConfigError::NameConflict`], naming the first setting that differs).
/// Times are whole microseconds (`TIME`'s unit): the emission interval is
/// rounded *up* to a microsecond, so the limit is never exceeded.
///
/// Modes are the local limiter's ([`LimitMode`]): wait for the reserved
/// slot (the default), reject at once, or wait at most a bound. A call
/// dropped while waiting gives its slot back if no later slot was reserved
/// since (a background command, as the local limiter's `cancel`).
///
/// When Redis fails, the [`Fallback`] serves: by default a local
/// [`RateLimiter`] with the same limit (or
/// [`fallback_limit`](SharedRateLimiterBuilder::fallback_limit)); with
/// [`Fallback::Refuse`], a refusal whose `retry_at` is the next time Redis
/// will be tried.
///
/// The handle is cheap to clone; clones share the connection, the stats and
/// the fallback.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use kompoz_core::RateLimit;
/// use kompoz_redis::{Redis, SharedRateLimiter};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = kompoz_redis::test_server::RedisServer::start()?;
/// # let url = server.url(); // e.g. "redis://127.0.0.1:6379/"
/// let redis = Redis::connect(&url).await?;
/// // 2 calls a minute for the whole fleet, both at once if need be.
/// let limit = RateLimit::with_burst(2, Duration::from_secs(60), 2)?;
/// let limiter = SharedRateLimiter::builder(&redis, "upstream:rate", limit)
///     .reject_when_full()
///     .build()
///     .await?;
///
/// assert!(limiter.check().await.is_ok());
/// let body = limiter.call(|| async { Ok::<_, std::io::Error>("reply") }).await?;
/// assert_eq!(body, "reply");
/// match limiter.check().await {
///     Ok(()) => unreachable!("the budget of 2 is spent"),
///     Err(refused) => println!("over the fleet's rate; next slot at {:?}", refused.retry_at()),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SharedRateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    redis: Redis,
    key: Arc<str>,
    limit: RateLimit,
    /// `ARGV` 1..=5 of the script: rate, period_ns, burst, interval_us,
    /// tolerance_us.
    args: [String; 5],
    mode: LimitMode,
    fallback: Option<RateLimiter<TokioClock>>,
    health: Health,
    script: Script,
    cancel: Script,
    admitted: AtomicU64,
    rejected: AtomicU64,
    fallback_admitted: AtomicU64,
    fallback_rejected: AtomicU64,
}

/// What one check decided.
enum Decision {
    /// Admitted now.
    Now,
    /// A shared slot `wait` from now; the TATs to give it back if unused.
    Shared {
        wait: Duration,
        rollback: (String, String),
    },
    /// A slot of the local fallback, to wait for.
    Local(OwnedRateReservation<TokioClock>),
    Rejected(RateLimitExceeded),
}

impl SharedRateLimiter {
    /// A builder for the limit `limit` under the Redis key `key`.
    pub fn builder(redis: &Redis, key: &str, limit: RateLimit) -> SharedRateLimiterBuilder {
        SharedRateLimiterBuilder {
            redis: redis.clone(),
            key: key.to_owned(),
            limit,
            mode: LimitMode::Wait,
            fallback: Fallback::Local,
            fallback_limit: None,
            retry_every: DEFAULT_RETRY_EVERY,
            on_event: None,
        }
    }

    /// The Redis key holding the budget.
    pub fn key(&self) -> &str {
        &self.inner.key
    }

    /// The shared limit.
    pub fn limit(&self) -> RateLimit {
        self.inner.limit
    }

    /// What a call over the rate does.
    pub fn mode(&self) -> LimitMode {
        self.inner.mode
    }

    /// Admits a call now, or says when the earliest one would be admitted;
    /// never waits (whatever the mode). One round trip to Redis, or none
    /// while the fallback serves.
    ///
    /// # Errors
    ///
    /// [`RateLimitExceeded`] with the earliest admission instant (on
    /// [`TokioClock`]'s timeline).
    pub async fn check(&self) -> Result<(), RateLimitExceeded> {
        match self.decide(Some(Duration::ZERO)).await {
            Decision::Rejected(refused) => Err(refused),
            _ => Ok(()),
        }
    }

    /// Admits a call by the limiter's [`LimitMode`]: waits for its slot
    /// (the default), or refuses at once when the slot is further off than
    /// the mode allows. Cancel-safe: dropped while waiting, the slot is
    /// given back where possible. Dropped while the decision itself is on
    /// its way (the script's round trip, on the caller's task), a slot the
    /// server granted is not given back: the fleet then admits one call
    /// less than it could, never one more.
    ///
    /// # Errors
    ///
    /// [`RateLimitExceeded`] when the mode refuses to wait that long.
    pub async fn acquire(&self) -> Result<(), RateLimitExceeded> {
        let max_wait = match self.inner.mode {
            LimitMode::Wait => None,
            LimitMode::Reject => Some(Duration::ZERO),
            LimitMode::WaitAtMost(bound) => Some(bound),
        };
        match self.decide(max_wait).await {
            Decision::Now => Ok(()),
            Decision::Shared { wait, rollback } => {
                let pending = PendingSlot {
                    limiter: self,
                    rollback: Some(rollback),
                };
                tokio::time::sleep(wait).await;
                pending.spent();
                Ok(())
            }
            Decision::Local(reservation) => {
                reservation.wait().await;
                Ok(())
            }
            Decision::Rejected(refused) => Err(refused),
        }
    }

    /// Runs the operation `make()` once the limit admits it (by the mode,
    /// as [`acquire`](Self::acquire)): a policy of this limiter's
    /// [`layer`](Self::layer) alone.
    ///
    /// # Errors
    ///
    /// [`Error::RateLimited`] when refused (the operation never started),
    /// [`Error::Inner`] with the operation's own error.
    pub async fn call<T, E, F, Fut>(&self, make: F) -> Result<T, Error<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        kompoz_tokio::policy().layer(self.layer()).call(make).await
    }

    /// This limit as a layer of the call API.
    pub fn layer(&self) -> SharedRateLimitLayer {
        SharedRateLimitLayer::new(self)
    }

    /// Guards the combinator `inner` with this limit (the algebra's face):
    /// a refused call returns `(false, ctx)` without running it.
    pub fn guard<A>(&self, inner: A) -> SharedRateLimited<A> {
        SharedRateLimited {
            inner,
            limiter: self.clone(),
        }
    }

    /// A snapshot of what this handle (and its clones) did.
    pub fn stats(&self) -> SharedRateLimitStats {
        let inner = &self.inner;
        SharedRateLimitStats {
            admitted: inner.admitted.load(Ordering::Relaxed),
            rejected: inner.rejected.load(Ordering::Relaxed),
            fallback_admitted: inner.fallback_admitted.load(Ordering::Relaxed),
            fallback_rejected: inner.fallback_rejected.load(Ordering::Relaxed),
            redis_errors: inner.health.redis_errors(),
            in_fallback: inner.health.in_fallback(),
        }
    }

    /// Whether calls go to the fallback now (Redis failed and has not
    /// answered since).
    pub fn in_fallback(&self) -> bool {
        self.inner.health.in_fallback()
    }

    async fn decide(&self, max_wait: Option<Duration>) -> Decision {
        let inner = &self.inner;
        if inner.health.use_redis() {
            match self.decide_shared(max_wait).await {
                Ok(decision) => {
                    inner.health.answered();
                    let counter = match decision {
                        Decision::Rejected(_) => &inner.rejected,
                        _ => &inner.admitted,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    return decision;
                }
                Err(err) => {
                    inner.health.failed(&err);
                }
            }
        }
        let decision = self.decide_locally(max_wait);
        let counter = match decision {
            Decision::Rejected(_) => &inner.fallback_rejected,
            _ => &inner.fallback_admitted,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        decision
    }

    async fn decide_shared(&self, max_wait: Option<Duration>) -> Result<Decision, CommandError> {
        let inner = &self.inner;
        let max_wait_us = match max_wait {
            None => "-1".to_owned(),
            Some(bound) => micros_floor(bound).to_string(),
        };
        let mut args = inner.args.to_vec();
        args.push(max_wait_us);
        args.push(KEY_TTL_MS.to_string());
        // The script runs on its own task: if this call is dropped while
        // the answer is on the way, the task gives an admitted slot back.
        let (tx, rx) = oneshot::channel();
        let task = Arc::clone(inner);
        tokio::spawn(async move {
            let reply = task
                .redis
                .run::<Vec<String>>(&task.script, &task.key, &args)
                .await;
            if let Err(Ok(reply)) = tx.send(reply) {
                if let (Some("admitted"), Some(new), Some(old)) = (
                    reply.first().map(String::as_str),
                    reply.get(2),
                    reply.get(3),
                ) {
                    let _ = task
                        .redis
                        .run::<i64>(&task.cancel, &task.key, &[new.clone(), old.clone()])
                        .await;
                }
            }
        });
        let reply = match rx.await {
            Ok(reply) => reply?,
            // The task ended without an answer (its runtime is shutting
            // down): treated as Redis not answering.
            Err(_) => return Err(CommandError::TimedOut(inner.redis.command_timeout())),
        };
        let micros = |i: usize| reply.get(i).and_then(|s| s.parse::<u64>().ok());
        match reply.first().map(String::as_str) {
            Some("admitted") => {
                let wait = Duration::from_micros(micros(1).unwrap_or(0));
                Ok(match (reply.get(2), reply.get(3)) {
                    (Some(new), Some(old)) if !wait.is_zero() => Decision::Shared {
                        wait,
                        rollback: (new.clone(), old.clone()),
                    },
                    _ => Decision::Now,
                })
            }
            Some("rejected") => {
                let wait = Duration::from_micros(micros(1).unwrap_or(0));
                Ok(Decision::Rejected(RateLimitExceeded::new(
                    TokioClock.now() + wait,
                )))
            }
            Some("conflict") => Err(CommandError::Conflict(conflict(
                &inner.key,
                inner.limit,
                &reply,
            ))),
            _ => Err(CommandError::Reply(format!("{reply:?}"))),
        }
    }

    fn decide_locally(&self, max_wait: Option<Duration>) -> Decision {
        match &self.inner.fallback {
            Some(local) => {
                let result = match max_wait {
                    Some(Duration::ZERO) => local.check().map(|()| Decision::Now),
                    bound => local
                        .reserve_owned(bound.unwrap_or(Duration::MAX))
                        .map(Decision::Local),
                };
                result.unwrap_or_else(Decision::Rejected)
            }
            None => Decision::Rejected(RateLimitExceeded::new(self.inner.health.next_try())),
        }
    }
}

/// A shared slot being waited for: dropped before it comes (the call was
/// cancelled), it is given back on the server if nothing was reserved after
/// it.
struct PendingSlot<'a> {
    limiter: &'a SharedRateLimiter,
    rollback: Option<(String, String)>,
}

impl PendingSlot<'_> {
    fn spent(mut self) {
        self.rollback = None;
    }
}

impl Drop for PendingSlot<'_> {
    fn drop(&mut self) {
        let Some((new, old)) = self.rollback.take() else {
            return;
        };
        // Only inside a runtime (a drop outside one gives nothing back: the
        // slot stays spent, which never exceeds the limit).
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let inner = Arc::clone(&self.limiter.inner);
            runtime.spawn(async move {
                let _ = inner
                    .redis
                    .run::<i64>(&inner.cancel, &inner.key, &[new, old])
                    .await;
            });
        }
    }
}

/// The error for a key that holds another limit, naming the first setting
/// that differs.
fn conflict(key: &str, limit: RateLimit, reply: &[String]) -> ConfigError {
    let have = |i: usize| reply.get(i).cloned().unwrap_or_default();
    let rate = limit.rate().to_string();
    let period = limit.period().as_nanos().to_string();
    if have(1) != rate {
        ConfigError::name_conflict(key, "rate", Raw(have(1)), Raw(rate))
    } else if have(2) != period {
        let existing = have(2)
            .parse::<u64>()
            .map(|ns| format!("{:?}", Duration::from_nanos(ns)))
            .unwrap_or_else(|_| have(2));
        ConfigError::name_conflict(key, "period", Raw(existing), limit.period())
    } else {
        ConfigError::name_conflict(key, "burst", Raw(have(3)), limit.burst())
    }
}

/// Shows a string without quotes in a `ConfigError` (values there are
/// formatted with `Debug`).
struct Raw(String);

impl fmt::Debug for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn micros_floor(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2)
}

/// How often, while Redis fails, one call tries it again (the others use
/// the fallback at once), unless told otherwise: 500 ms.
pub const DEFAULT_RETRY_EVERY: Duration = Duration::from_millis(500);

/// Configures a [`SharedRateLimiter`];
/// [`build`](SharedRateLimiterBuilder::build) validates and registers the
/// configuration with Redis.
#[must_use = "a builder limits nothing until `.build().await?`"]
pub struct SharedRateLimiterBuilder {
    redis: Redis,
    key: String,
    limit: RateLimit,
    mode: LimitMode,
    fallback: Fallback,
    fallback_limit: Option<RateLimit>,
    retry_every: Duration,
    on_event: Option<Arc<EventFn>>,
}

impl SharedRateLimiterBuilder {
    /// Refuses a call over the rate at once ([`LimitMode::Reject`]).
    pub fn reject_when_full(self) -> Self {
        self.mode(LimitMode::Reject)
    }

    /// Lets a call over the rate wait for its slot if it comes within
    /// `bound`, refuses it at once otherwise ([`LimitMode::WaitAtMost`]).
    pub fn wait_at_most(self, bound: Duration) -> Self {
        self.mode(LimitMode::WaitAtMost(bound))
    }

    /// What a call over the rate does (default [`LimitMode::Wait`]).
    pub fn mode(mut self, mode: LimitMode) -> Self {
        self.mode = match mode {
            LimitMode::WaitAtMost(bound) if bound.is_zero() => LimitMode::Reject,
            other => other,
        };
        self
    }

    /// What serves while Redis fails (default [`Fallback::Local`]).
    pub fn fallback(mut self, fallback: Fallback) -> Self {
        self.fallback = fallback;
        self
    }

    /// The local limit that serves each replica while Redis fails, with
    /// [`Fallback::Local`] (default: the shared limit itself; the shared
    /// quota divided by the number of replicas keeps the fleet under it).
    pub fn fallback_limit(mut self, limit: RateLimit) -> Self {
        self.fallback_limit = Some(limit);
        self
    }

    /// While Redis fails, how often one call tries it again (default
    /// [`DEFAULT_RETRY_EVERY`]; must be greater than zero).
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

    /// Validates the configuration, and registers it under the key (or
    /// checks that the key holds the same one).
    ///
    /// # Errors
    ///
    /// - [`SetupError::Config`] with [`ConfigError::Invalid`] for an empty
    ///   key, a zero retry interval, or a limit Redis's microseconds cannot
    ///   keep (more than one call per microsecond, or more than 2^52 µs of
    ///   bookkeeping: `burst × period / rate` beyond about 142 years).
    /// - [`SetupError::Config`] with [`ConfigError::NameConflict`] when the
    ///   key holds another limit (naming the first setting that differs).
    /// - [`SetupError::Redis`] / [`SetupError::Unreachable`] when Redis
    ///   does not answer the registration.
    pub async fn build(self) -> Result<SharedRateLimiter, SetupError> {
        if self.key.is_empty() {
            return Err(ConfigError::invalid("key", &self.key, "a non-empty Redis key").into());
        }
        if self.retry_every.is_zero() {
            return Err(ConfigError::invalid(
                "retry_redis_every",
                self.retry_every,
                "a duration greater than zero",
            )
            .into());
        }
        let limit = self.limit;
        let interval_us = limit.emission_interval().as_nanos().div_ceil(1_000);
        if limit.period().as_nanos() < u128::from(limit.rate()) * 1_000 {
            return Err(ConfigError::invalid(
                "rate",
                limit.rate(),
                "at most one call per microsecond of the period for a shared limit (Redis's TIME counts microseconds)",
            )
            .into());
        }
        if interval_us * u128::from(limit.burst()) > MAX_SPAN_US {
            return Err(ConfigError::invalid(
                "period",
                limit.period(),
                "burst × period / rate within 2^52 microseconds (about 142 years) for a shared limit",
            )
            .into());
        }
        let tolerance_us = interval_us * u128::from(limit.burst() - 1);
        let key: Arc<str> = Arc::from(self.key.as_str());
        let fallback = match self.fallback {
            Fallback::Local => Some(RateLimiter::new(
                self.fallback_limit.unwrap_or(limit),
                TokioClock,
            )),
            _ => None,
        };
        let inner = Inner {
            health: Health::new(Arc::clone(&key), self.retry_every, self.on_event),
            redis: self.redis,
            key,
            limit,
            args: [
                limit.rate().to_string(),
                limit.period().as_nanos().to_string(),
                limit.burst().to_string(),
                interval_us.to_string(),
                tolerance_us.to_string(),
            ],
            mode: self.mode,
            fallback,
            script: Script::new(GCRA_LUA),
            cancel: Script::new(CANCEL_LUA),
            admitted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            fallback_admitted: AtomicU64::new(0),
            fallback_rejected: AtomicU64::new(0),
        };
        let mut args = inner.args.to_vec();
        args.push("-2".to_owned());
        args.push(KEY_TTL_MS.to_string());
        let reply: Vec<String> = inner
            .redis
            .run(&inner.script, &inner.key, &args)
            .await
            .map_err(|err| err.into_setup(inner.redis.address(), "registering the rate limit"))?;
        if reply.first().map(String::as_str) == Some("conflict") {
            return Err(conflict(&inner.key, limit, &reply).into());
        }
        Ok(SharedRateLimiter {
            inner: Arc::new(inner),
        })
    }
}

impl fmt::Debug for SharedRateLimiterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRateLimiterBuilder")
            .field("key", &self.key)
            .field("limit", &self.limit)
            .field("mode", &self.mode)
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SharedRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRateLimiter")
            .field("key", &self.inner.key)
            .field("limit", &self.inner.limit)
            .field("mode", &self.inner.mode)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// What a [`SharedRateLimiter`] (all clones of one handle) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedRateLimitStats {
    /// Calls admitted by the shared budget.
    pub admitted: u64,
    /// Calls refused by the shared budget.
    pub rejected: u64,
    /// Calls admitted by the fallback while Redis failed.
    pub fallback_admitted: u64,
    /// Calls refused by the fallback while Redis failed.
    pub fallback_rejected: u64,
    /// Redis commands that failed or timed out.
    pub redis_errors: u64,
    /// Whether the fallback serves now.
    pub in_fallback: bool,
}

/// A combinator guarded by a [`SharedRateLimiter`]; built by
/// [`SharedRateLimiter::guard`].
#[derive(Clone, Debug)]
pub struct SharedRateLimited<A> {
    inner: A,
    limiter: SharedRateLimiter,
}

impl<A> SharedRateLimited<A> {
    /// The limiter.
    pub fn limiter(&self) -> &SharedRateLimiter {
        &self.limiter
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

impl<C, A: Combinator<C>> Combinator<C> for SharedRateLimited<A> {
    async fn run(&self, ctx: C) -> (bool, C) {
        match self.limiter.acquire().await {
            Ok(()) => self.inner.run(ctx).await,
            Err(_) => (false, ctx),
        }
    }
}
