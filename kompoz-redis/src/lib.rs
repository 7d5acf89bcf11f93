//! # kompoz-redis
//!
//! kompoz's rate limit and circuit breaker, shared by every replica of a
//! service through one Redis server: one budget and one breaker for the
//! fleet, with a local fallback when Redis fails.
//!
//! - [`SharedRateLimiter`]: GCRA in one Redis key, one Lua script and one
//!   round trip per check, on the server's clock (`TIME`: the replicas'
//!   clocks disagree); the same [`RateLimit`](kompoz_core::RateLimit) and
//!   [`LimitMode`](kompoz_core::LimitMode) (wait, reject, bounded wait) as
//!   the local limiter.
//! - [`SharedBreaker`]: state, generation, open deadline and counters in one
//!   Redis hash; a trip in one replica opens the circuit in all, probes are
//!   limited fleet-wide, stale generations' outcomes are ignored. A CLOSED
//!   call makes no round trip: it reads a cached view synced every
//!   `sync_interval` (staleness bound: `sync_interval + command_timeout`).
//! - [`SharedPool`]: at most N calls at once across the fleet, as leases
//!   in a Redis sorted set that the holder renews and that expire when it
//!   dies, so a crashed replica never takes capacity for longer than a lease.
//! - When Redis fails: every command has a timeout ([`RedisBuilder::command_timeout`]),
//!   the connection re-establishes itself, and a [`Fallback`] serves — a
//!   local limiter or breaker (fail open) or refusal (fail closed) — shown in
//!   the stats and reported as [`RedisEvent`]s. Nothing panics when called
//!   inside a tokio runtime with its timers enabled (see *Runtime*).
//!
//! All have the primitives' shape (`check`/`acquire` returning
//! [`RateLimitExceeded`](kompoz_core::call::RateLimitExceeded) or
//! [`CircuitOpen`](kompoz_core::call::CircuitOpen), a breaker permit with
//! `success`/`failure`/drop-as-cancel, a pool permit released on drop), and
//! take part in both faces of kompoz:
//!
//! - **the call API**: each is a [`Layer`](kompoz_core::call::Layer)
//!   ([`SharedRateLimitLayer`], [`SharedBreakerLayer`], [`SharedLimitLayer`]),
//!   added to a [`Policy`](kompoz_core::call::Policy) by
//!   [`SharedPolicyExt`]'s `.shared_rate_limit(&l)`, `.shared_breaker(&b)`
//!   and `.shared_limit(&p)` beside the local layers, with the same typed
//!   refusals (see the example below); `call(|| fut)` is a policy of that
//!   one layer;
//! - **the algebra**: `guard(inner)` is a
//!   [`Combinator`](kompoz_core::Combinator).
//!
//! The shared breaker classifies as the local breaker layer does
//! ([`SharedBreakerLayer::failure_if_err`], [`SharedBreakerLayer::failure_if_ok`]);
//! an operation that panics is a failure; a refusal from a layer inside, or
//! a dropped call, counts nothing and gives a probe slot back.
//!
//! ## Runtime
//!
//! Tokio only: the `redis` crate's reconnecting `ConnectionManager` runs on
//! tokio, and so do the breaker's sync task and the command timeouts, so
//! every call must run inside a tokio runtime (either flavor; the breaker's
//! sync task lives on the runtime that built it). async-std and smol users
//! can run a small tokio runtime beside theirs, and must make the calls in
//! its context ([`Handle::enter`](tokio::runtime::Handle::enter) or
//! `block_on`), with its timers enabled (`enable_time` or `enable_all`):
//! outside a runtime, or without timers, [`Redis::connect`] and the
//! limiter's and pool's commands panic as tokio's timers do. The breaker's
//! admission from its view needs no runtime, and a decision that needs
//! Redis goes to its fallback there. Local instants (a refusal's
//! `retry_at`) are on [`TokioClock`](kompoz_tokio::TokioClock)'s timeline.
//!
//! ## Example
//!
//! ```
//! use std::time::Duration;
//! use kompoz_core::RateLimit;
//! use kompoz_redis::{Redis, SharedBreaker, SharedPolicyExt, SharedRateLimiter};
//!
//! # async fn fetch() -> Result<String, std::io::Error> { Ok(String::new()) }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = kompoz_redis::test_server::RedisServer::start()?;
//! # let url = server.url(); // e.g. "redis://127.0.0.1:6379/"
//! let redis = Redis::connect(&url).await?;
//! // 100 calls a second for the whole fleet, waiting at most 50 ms for a slot.
//! let rate = SharedRateLimiter::builder(&redis, "payments:rate", RateLimit::per_second(100)?)
//!     .wait_at_most(Duration::from_millis(50))
//!     .build()
//!     .await?;
//! let breaker = SharedBreaker::builder(&redis, "payments:breaker")
//!     .failure_threshold(5)
//!     .build()
//!     .await?;
//!
//! let policy = kompoz_tokio::policy()
//!     .shared_rate_limit(&rate)
//!     .retry(3)?
//!     .shared_breaker(&breaker)
//!     .timeout(Duration::from_secs(2))?;
//! let body = policy.call(|| fetch()).await?;
//! # let _ = body;
//! # Ok(())
//! # }
//! ```
//!
//! ## Tests against a real server
//!
//! [`test_server::RedisServer`] starts a throwaway `redis-server` on a free
//! loopback port; this crate's tests, example and benchmark use it.

#![doc(test(attr(deny(warnings))))]

mod breaker;
mod connection;
mod error;
mod fallback;
mod layer;
mod pool;
mod rate_limit;
pub mod test_server;

pub use breaker::{
    DEFAULT_PROBE_LEASE, DEFAULT_SYNC_INTERVAL, SharedBreaker, SharedBreakerBuilder,
    SharedBreakerPermit, SharedBreakerStats, SharedCircuitBreaker,
};
pub use connection::{DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, Redis, RedisBuilder};
pub use error::SetupError;
pub use fallback::{Fallback, RedisEvent};
pub use layer::{SharedBreakerLayer, SharedLimitLayer, SharedPolicyExt, SharedRateLimitLayer};
pub use pool::{
    DEFAULT_LEASE, DEFAULT_POLL_EVERY, SharedLimited, SharedPool, SharedPoolBuilder,
    SharedPoolPermit, SharedPoolStats,
};
pub use rate_limit::{
    DEFAULT_RETRY_EVERY, SharedRateLimitStats, SharedRateLimited, SharedRateLimiter,
    SharedRateLimiterBuilder,
};
