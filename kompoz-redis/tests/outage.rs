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
type Subscriber = dyn Fn(&RedisEvent) + Send + Sync;

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

/// Redis fails while the shared circuit is OPEN: the fallback keeps it OPEN
/// until the deadline this replica knew, instead of starting CLOSED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_failure_during_an_outage_keeps_the_circuit_open() {
    let mut server = support::server();
    let redis = Redis::builder(&server.url())
        .command_timeout(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let breaker = SharedBreaker::builder(&redis, "outage:blip")
        .failure_threshold(1)
        .recovery_timeout(Duration::from_secs(60))
        .sync_interval(Duration::from_millis(10))
        .build()
        .await
        .unwrap();
    breaker.acquire().await.unwrap().finish(true).await;
    assert_eq!(breaker.state(), CircuitState::Open);
    server.stop();
    eventually("the fallback serves", async || breaker.in_fallback()).await;
    let refused = breaker.acquire().await;
    assert!(
        refused.is_err(),
        "the fallback admitted a call the fleet had refused for 60 s"
    );
    assert_eq!(breaker.state(), CircuitState::Open);
    let retry_at = refused.unwrap_err().retry_at();
    assert!(retry_at.is_some(), "the refusal names the known deadline");
}

/// Each outage starts the local fallback breaker afresh: a trip it saw in an
/// earlier outage must not refuse calls in a later one, while the fleet's
/// circuit is CLOSED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_outage_starts_the_fallback_breaker_afresh() {
    let mut server = support::server();
    let redis = Redis::builder(&server.url())
        .command_timeout(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let breaker = SharedBreaker::builder(&redis, "outage:twice")
        .failure_threshold(1)
        .recovery_timeout(Duration::from_secs(3600))
        .sync_interval(Duration::from_millis(10))
        .build()
        .await
        .unwrap();
    server.stop();
    eventually("the first fallback serves", async || breaker.in_fallback()).await;
    let failed = breaker.call(|| async { Err::<(), _>("boom") }).await;
    assert!(matches!(failed, Err(kompoz_core::Error::Inner("boom"))));
    assert_eq!(
        breaker.state(),
        CircuitState::Open,
        "the local breaker tripped"
    );

    server.restart().unwrap();
    eventually("Redis serves again", async || !breaker.in_fallback()).await;
    assert_eq!(
        breaker.state(),
        CircuitState::Closed,
        "the fleet never tripped"
    );

    server.stop();
    eventually("the second fallback serves", async || breaker.in_fallback()).await;
    let healthy = breaker.call(|| async { Ok::<_, &str>(7) }).await;
    assert_eq!(
        healthy.ok(),
        Some(7),
        "the first outage's trip refused a call in the second"
    );
}

/// The runtime that built the breaker ends (its sync task with it): the
/// view's age is checked on the CLOSED path, so a call on another runtime
/// refreshes it from Redis and sees the fleet's trip; the task's end shows
/// in the stats and as an event.
#[test]
fn a_replica_whose_sync_task_died_still_sees_a_trip() {
    let server = support::server();
    let url = server.url();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    };
    let (events, on_event) = recorder();
    let build = |on_event: Option<Box<Subscriber>>| {
        let url = url.clone();
        async move {
            let redis = Redis::connect(&url).await.unwrap();
            let mut builder = SharedBreaker::builder(&redis, "outage:orphan")
                .failure_threshold(1)
                .recovery_timeout(Duration::from_secs(60))
                .sync_interval(Duration::from_millis(20));
            if let Some(on_event) = on_event {
                builder = builder.on_event(on_event);
            }
            builder.build().await.unwrap()
        }
    };
    let setup = runtime();
    let orphan = setup.block_on(build(Some(Box::new(on_event))));
    assert!(orphan.stats().sync_task_running);
    drop(setup);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while orphan.stats().sync_task_running {
        assert!(
            std::time::Instant::now() < deadline,
            "the sync task's end never showed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        count(&events, |e| matches!(e, RedisEvent::SyncStopped { .. })),
        1
    );
    runtime().block_on(async {
        let other = build(None).await;
        other.acquire().await.unwrap().finish(true).await;
        assert_eq!(other.state(), CircuitState::Open);
        // Past the bound (three times it), the view is not trusted.
        tokio::time::sleep(orphan.staleness_bound() * 3 + Duration::from_millis(20)).await;
        // The orphan's connection died with its runtime too, so the round
        // trip fails and the fallback decides, visibly; before, the frozen
        // CLOSED view admitted the call as a shared one.
        let admitted = orphan.acquire().await;
        let stats = orphan.stats();
        assert!(
            admitted.is_err() || admitted.as_ref().is_ok_and(|p| p.is_fallback()),
            "admitted from a view older than the bound: {admitted:?} {stats:?}"
        );
        assert!(stats.in_fallback && !stats.sync_task_running, "{stats:?}");
        assert_eq!(
            count(&events, |e| matches!(e, RedisEvent::FallbackStarted { .. })),
            1
        );
    });
}

/// Another redis-server takes the port between `stop` and `restart`: the
/// restart says so instead of adopting the other server.
#[test]
fn a_restart_does_not_adopt_another_server_on_its_port() {
    let mut ours = support::server();
    let port = ours.port();
    ours.stop();
    let mut foreign = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the other server answers (a plain PING on the socket).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the other server never listened"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let restarted = ours.restart();
    let _ = foreign.kill();
    let _ = foreign.wait();
    let err = restarted.expect_err("restart adopted another process's server");
    assert!(err.to_string().contains("another redis-server"), "{err}");
}

/// A breaker and a rate limiter given one key name: the second refuses to
/// build instead of sharing (and corrupting) the first one's hash.
#[tokio::test]
async fn a_breaker_and_a_limiter_on_one_key_is_a_conflict() {
    let server = support::server();
    let redis = Redis::connect(&server.url()).await.unwrap();
    let _breaker = SharedBreaker::builder(&redis, "same:b")
        .build()
        .await
        .unwrap();
    let limiter = SharedRateLimiter::builder(&redis, "same:b", budget())
        .build()
        .await;
    let err = limiter.expect_err("a limiter built on a breaker's key");
    assert!(
        matches!(
            err,
            SetupError::Config(kompoz_core::ConfigError::NameConflict { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("another kind"), "{err}");

    let _limiter = SharedRateLimiter::builder(&redis, "same:l", budget())
        .build()
        .await
        .unwrap();
    let breaker = SharedBreaker::builder(&redis, "same:l").build().await;
    let err = breaker.expect_err("a breaker built on a limiter's key");
    assert!(err.to_string().contains("another kind"), "{err}");
}
