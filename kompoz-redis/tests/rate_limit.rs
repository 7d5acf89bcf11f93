//! The shared rate limit's modes, faces and configuration checks, against a
//! real `redis-server`.

mod support;

use std::time::{Duration, Instant};

use kompoz_core::call::Error;
use kompoz_core::{Clock, Combinator, ConfigError, LimitMode, RateLimit, rule};
use kompoz_redis::{Redis, SetupError, SharedRateLimiter};
use kompoz_tokio::TokioClock;

async fn connect(server: &kompoz_redis::test_server::RedisServer) -> Redis {
    Redis::connect(&server.url()).await.unwrap()
}

#[tokio::test]
async fn wait_mode_spaces_calls_by_the_servers_clock() {
    let server = support::server();
    let redis = connect(&server).await;
    let interval = Duration::from_millis(40);
    let limiter = SharedRateLimiter::builder(
        &redis,
        "wait",
        RateLimit::new(25, Duration::from_secs(1)).unwrap(),
    )
    .build()
    .await
    .unwrap();
    assert_eq!(limiter.mode(), LimitMode::Wait);
    let started = Instant::now();
    let calls = (0..5).map(|_| limiter.acquire());
    for result in futures::future::join_all(calls).await {
        assert!(result.is_ok());
    }
    // Five slots 40 ms apart: the last is at least 4 intervals after the
    // first. A lower bound only: the server cannot hand slots out sooner.
    assert!(started.elapsed() >= interval * 4 - Duration::from_millis(1));
    assert_eq!(limiter.stats().admitted, 5);
}

#[tokio::test]
async fn bounded_wait_refuses_a_slot_beyond_the_bound_and_says_when() {
    let server = support::server();
    let redis = connect(&server).await;
    let limiter = SharedRateLimiter::builder(&redis, "bounded", RateLimit::per_minute(1).unwrap())
        .wait_at_most(Duration::from_millis(10))
        .build()
        .await
        .unwrap();
    assert!(limiter.acquire().await.is_ok());
    let before = TokioClock.now();
    let refused = limiter.acquire().await.unwrap_err();
    // The next slot is a minute after the first, less the time since.
    let until = refused.retry_at() - before;
    assert!(
        until > Duration::from_secs(50) && until <= Duration::from_secs(61),
        "{until:?}"
    );
    assert_eq!(limiter.stats().rejected, 1);
}

#[tokio::test]
async fn a_cancelled_wait_gives_its_slot_back() {
    let server = support::server();
    let redis = connect(&server).await;
    let limit = RateLimit::per_minute(1).unwrap();
    let waiting = SharedRateLimiter::builder(&redis, "cancel", limit)
        .build()
        .await
        .unwrap();
    let probe = SharedRateLimiter::builder(&redis, "cancel", limit)
        .reject_when_full()
        .build()
        .await
        .unwrap();
    waiting.acquire().await.unwrap(); // the slot at once; the next in a minute
    // A second call reserves the slot a minute away, then is dropped.
    assert!(
        tokio::time::timeout(Duration::from_millis(50), waiting.acquire())
            .await
            .is_err()
    );
    // The rollback runs in the background: once it has, the next free slot
    // is again a minute after the first, not two.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let refused = probe.check().await.unwrap_err();
        if refused.retry_at() - TokioClock.now() <= Duration::from_secs(61) {
            break;
        }
        assert!(Instant::now() < deadline, "the slot was never given back");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn the_call_api_and_the_algebra_share_one_budget() {
    let server = support::server();
    let redis = connect(&server).await;
    let limiter = SharedRateLimiter::builder(
        &redis,
        "faces",
        RateLimit::with_burst(1, Duration::from_secs(3600), 2).unwrap(),
    )
    .reject_when_full()
    .build()
    .await
    .unwrap();
    let guarded = limiter.guard(rule(async |n: &u32| *n > 0));
    assert_eq!(guarded.run(7).await, (true, 7));
    let value = limiter.call(|| async { Ok::<_, String>("reply") }).await;
    assert_eq!(value.unwrap(), "reply");
    // The budget of two is spent: both faces are refused now.
    assert_eq!(guarded.run(8).await, (false, 8));
    let refused = limiter.call(|| async { Ok::<_, String>("never") }).await;
    assert!(matches!(refused, Err(Error::RateLimited(_))));
    // The operation's own error comes back as `Inner`.
    let other = SharedRateLimiter::builder(&redis, "faces:2", RateLimit::per_second(10).unwrap())
        .build()
        .await
        .unwrap();
    let failed = other.call(|| async { Err::<(), _>("boom") }).await;
    assert!(matches!(failed, Err(Error::Inner("boom"))));
}

#[tokio::test]
async fn a_key_holding_another_limit_is_refused_by_name() {
    let server = support::server();
    let redis = connect(&server).await;
    let limit = RateLimit::with_burst(10, Duration::from_secs(1), 5).unwrap();
    SharedRateLimiter::builder(&redis, "api", limit)
        .build()
        .await
        .unwrap();
    // The same configuration again is fine.
    SharedRateLimiter::builder(&redis, "api", limit)
        .build()
        .await
        .unwrap();

    let conflict = |limit| {
        let redis = redis.clone();
        async move {
            match SharedRateLimiter::builder(&redis, "api", limit)
                .build()
                .await
            {
                Err(SetupError::Config(err @ ConfigError::NameConflict { .. })) => err,
                other => panic!("expected a name conflict, got {other:?}"),
            }
        }
    };
    let err = conflict(RateLimit::with_burst(20, Duration::from_secs(1), 5).unwrap()).await;
    assert_eq!(
        err.to_string(),
        "name \"api\" is already registered with `rate` = 10, but 20 was requested"
    );
    let err = conflict(RateLimit::with_burst(10, Duration::from_secs(2), 5).unwrap()).await;
    assert_eq!(
        err.to_string(),
        "name \"api\" is already registered with `period` = 1s, but 2s was requested"
    );
    let err = conflict(RateLimit::with_burst(10, Duration::from_secs(1), 1).unwrap()).await;
    assert_eq!(err.parameter(), "burst");
}

#[tokio::test]
async fn limits_redis_cannot_keep_are_refused_at_construction() {
    let server = support::server();
    let redis = connect(&server).await;
    let build = |key: &'static str, limit: RateLimit| {
        let redis = redis.clone();
        async move { SharedRateLimiter::builder(&redis, key, limit).build().await }
    };
    // Two calls per microsecond: Redis's TIME counts microseconds.
    let err = build("fast", RateLimit::new(2, Duration::from_micros(1)).unwrap())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid `rate`: 2 (expected at most one call per microsecond"),
        "{err}"
    );
    let err = build("", RateLimit::per_second(1).unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid `key`: \"\" (expected a non-empty Redis key)"
    );
    let err = SharedRateLimiter::builder(&redis, "k", RateLimit::per_second(1).unwrap())
        .retry_redis_every(Duration::ZERO)
        .build()
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with("invalid `retry_redis_every`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_key_of_another_type_is_a_clear_error() {
    let server = support::server();
    let redis = connect(&server).await;
    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("SET")
        .arg("taken")
        .arg("a string")
        .query_async::<()>(&mut raw)
        .await
        .unwrap();
    let err = SharedRateLimiter::builder(&redis, "taken", RateLimit::per_second(1).unwrap())
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, SetupError::Redis { .. }), "{err:?}");
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
}
