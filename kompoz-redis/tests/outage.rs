//! When Redis fails: the fallback takes over, nothing panics or hangs, every
//! call is accounted for, and the shared state resumes when Redis is back.
//! And bad input: an unreachable address, a wrong password.

mod support;

use support::eventually;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kompoz_core::{CircuitState, RateLimit};
use kompoz_redis::test_server::{RedisServer, free_port};
use kompoz_redis::{Fallback, Redis, RedisEvent, SetupError, SharedBreaker, SharedRateLimiter};

type Events = Arc<Mutex<Vec<RedisEvent>>>;

fn recorder() -> (Events, impl Fn(&RedisEvent) + Send + Sync + 'static) {
    let events: Events = Arc::default();
    let sink = Arc::clone(&events);
    (events, move |e: &RedisEvent| {
        sink.lock().unwrap().push(e.clone())
    })
}

fn count(events: &Events, what: fn(&RedisEvent) -> bool) -> usize {
    events.lock().unwrap().iter().filter(|e| what(e)).count()
}

/// 50 calls, then one an hour: a budget a test spends exactly.
fn budget() -> RateLimit {
    RateLimit::with_burst(1, Duration::from_secs(3600), 50).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_run_then_restarted() {
    let mut server = support::server();
    let redis = Redis::builder(&server.url())
        .command_timeout(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let (limiter_events, on_limiter_event) = recorder();
    let limiter = SharedRateLimiter::builder(&redis, "outage:rate", budget())
        .reject_when_full()
        .fallback_limit(RateLimit::with_burst(1, Duration::from_secs(3600), 1_000).unwrap())
        .retry_redis_every(Duration::from_millis(20))
        .on_event(on_limiter_event)
        .build()
        .await
        .unwrap();
    let closed = SharedRateLimiter::builder(&redis, "outage:closed", budget())
        .reject_when_full()
        .fallback(Fallback::Refuse)
        .build()
        .await
        .unwrap();
    let (breaker_events, on_breaker_event) = recorder();
    let breaker = SharedBreaker::builder(&redis, "outage:breaker")
        .failure_threshold(3)
        .recovery_timeout(Duration::from_secs(3600))
        .sync_interval(Duration::from_millis(20))
        .on_event(on_breaker_event)
        .build()
        .await
        .unwrap();
    for _ in 0..5 {
        limiter.check().await.unwrap();
    }
    breaker.call(|| async { Ok::<_, ()>(()) }).await.unwrap();

    server.stop();

    // Tasks keep calling through the outage: each call returns, admitted or
    // refused, none panics or hangs.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (limiter, closed, breaker) = (limiter.clone(), closed.clone(), breaker.clone());
        tasks.push(tokio::spawn(async move {
            let mut answered = 0u64;
            for _ in 0..50 {
                let _ = limiter.check().await;
                let _ = closed.check().await;
                let _ = breaker.call(|| async { Ok::<_, ()>(()) }).await;
                answered += 3;
            }
            answered
        }));
    }
    let mut answered = 0;
    for task in tasks {
        answered += task.await.unwrap();
    }
    assert_eq!(answered, 4 * 50 * 3);
    eventually("the breaker's sync notices", async || breaker.in_fallback()).await;

    let stats = limiter.stats();
    assert!(stats.in_fallback && stats.redis_errors > 0, "{stats:?}");
    assert!(stats.fallback_admitted > 0);
    // Nothing lost: every check is counted once, shared or local.
    assert_eq!(
        stats.admitted + stats.rejected + stats.fallback_admitted + stats.fallback_rejected,
        5 + 200
    );
    // Fail closed: refused, with the next try of Redis as `retry_at`.
    assert!(closed.check().await.is_err());
    assert!(closed.stats().fallback_rejected > 0 && closed.stats().fallback_admitted == 0);
    assert_eq!(
        count(&limiter_events, |e| matches!(
            e,
            RedisEvent::FallbackStarted { .. }
        )),
        1
    );
    // The breaker runs on its local fallback, which trips on its own.
    let permit = breaker.acquire().await.unwrap();
    assert!(permit.is_fallback());
    permit.success();
    for _ in 0..3 {
        let _ = breaker.call(|| async { Err::<(), _>("down") }).await;
    }
    assert_eq!(breaker.state(), CircuitState::Open);
    assert!(breaker.stats().fallback_calls > 0);
    assert_eq!(
        count(&breaker_events, |e| matches!(
            e,
            RedisEvent::FallbackStarted { .. }
        )),
        1
    );

    // Shared admissions from here on spend the restarted server's budget.
    let before = limiter.stats().admitted;
    server.restart().unwrap();

    eventually("the limiter is back on Redis", async || {
        let _ = limiter.check().await;
        !limiter.in_fallback()
    })
    .await;
    eventually("the breaker is back on Redis", async || {
        !breaker.in_fallback()
    })
    .await;
    assert_eq!(
        count(&limiter_events, |e| matches!(
            e,
            RedisEvent::FallbackEnded { .. }
        )),
        1
    );
    assert_eq!(
        count(&breaker_events, |e| matches!(
            e,
            RedisEvent::FallbackEnded { .. }
        )),
        1
    );

    // The shared state resumes (empty: the server kept nothing): a second
    // replica shares the limiter's fresh budget, and sees its breaker.
    let other = Redis::connect(&server.url()).await.unwrap();
    let limiter2 = SharedRateLimiter::builder(&other, "outage:rate", budget())
        .reject_when_full()
        .build()
        .await
        .unwrap();
    let mut refused = 0;
    while refused < 10 {
        for l in [&limiter, &limiter2] {
            if l.check().await.is_err() {
                refused += 1;
            }
        }
    }
    assert_eq!(
        limiter.stats().admitted - before + limiter2.stats().admitted,
        50
    );
    assert_eq!(breaker.state(), CircuitState::Closed);
    let breaker2 = SharedBreaker::builder(&other, "outage:breaker")
        .failure_threshold(3)
        .recovery_timeout(Duration::from_secs(3600))
        .build()
        .await
        .unwrap();
    for _ in 0..3 {
        let _ = breaker.call(|| async { Err::<(), _>("down") }).await;
    }
    breaker2.sync().await.unwrap();
    assert_eq!(breaker2.state(), CircuitState::Open);
}

#[tokio::test]
async fn a_key_reused_with_another_limit_sends_calls_to_the_fallback_and_says_why() {
    let server = support::server();
    let redis = Redis::connect(&server.url()).await.unwrap();
    let (events, on_event) = recorder();
    let limiter = SharedRateLimiter::builder(&redis, "reused", budget())
        .on_event(on_event)
        .build()
        .await
        .unwrap();
    // Someone deletes the key and registers another limit under its name.
    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("DEL")
        .arg("reused")
        .query_async::<()>(&mut raw)
        .await
        .unwrap();
    SharedRateLimiter::builder(&redis, "reused", RateLimit::per_second(7).unwrap())
        .build()
        .await
        .unwrap();
    assert!(limiter.check().await.is_ok()); // the local fallback admits
    assert!(limiter.in_fallback());
    let events = events.lock().unwrap();
    let Some(RedisEvent::FallbackStarted { reason, .. }) = events.first() else {
        panic!("no fallback event: {events:?}");
    };
    assert_eq!(
        reason,
        "name \"reused\" is already registered with `rate` = 7, but 1 was requested"
    );
}

#[tokio::test]
async fn an_unreachable_address_is_a_clear_error() {
    let port = free_port().unwrap();
    let err = Redis::builder(&format!("redis://127.0.0.1:{port}/"))
        .connect_timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, SetupError::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("Redis at 127.0.0.1:{port} is unreachable: ")),
        "{err}"
    );
}

#[tokio::test]
async fn a_wrong_or_missing_password_is_a_clear_error() {
    let server = RedisServer::start_with_password(Some("s3cret")).unwrap();
    let port = server.port();
    let wrong = Redis::connect(&format!("redis://:nope@127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    assert!(matches!(wrong, SetupError::Auth { .. }), "{wrong:?}");
    assert!(
        wrong
            .to_string()
            .starts_with(&format!("Redis at 127.0.0.1:{port} refused authentication")),
        "{wrong}"
    );
    assert!(
        !wrong.to_string().contains("nope"),
        "the password leaked: {wrong}"
    );
    let missing = Redis::connect(&format!("redis://127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    assert!(matches!(missing, SetupError::Auth { .. }), "{missing:?}");
    // The right one works.
    let redis = Redis::connect(&server.url()).await.unwrap();
    let limiter = SharedRateLimiter::builder(&redis, "authed", budget())
        .build()
        .await
        .unwrap();
    limiter.check().await.unwrap();
    assert_eq!(limiter.stats().admitted, 1);
}

#[tokio::test]
async fn bad_connection_settings_are_refused_by_name() {
    let err = Redis::builder("redis://127.0.0.1:1/")
        .command_timeout(Duration::ZERO)
        .connect()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid `command_timeout`: 0ns (expected a duration greater than zero)"
    );
    let err = Redis::connect("http://:pw@example/").await.unwrap_err();
    assert!(matches!(err, SetupError::Config(_)), "{err:?}");
    assert!(
        !err.to_string().contains("pw"),
        "the password leaked: {err}"
    );
}
