//! The shared breaker's state machine, generations, probes and faces,
//! against a real `redis-server` (several handles with their own
//! connections play the replicas).

mod support;

use std::time::{Duration, Instant};

use kompoz_core::call::Error;
use kompoz_core::{CircuitState, Combinator, ConfigError, rule};
use kompoz_redis::test_server::RedisServer;
use kompoz_redis::{Redis, SetupError, SharedBreaker, SharedBreakerBuilder};

async fn replica(server: &RedisServer, key: &str) -> SharedBreakerBuilder {
    let redis = Redis::connect(&server.url()).await.unwrap();
    SharedBreaker::builder(&redis, key)
}

async fn fail(breaker: &SharedBreaker) {
    let _ = breaker.call(|| async { Err::<(), _>("down") }).await;
}

/// Waits (up to 10 s) for `breaker.acquire()` to hand out a probe.
async fn probe(breaker: &SharedBreaker) -> kompoz_redis::SharedBreakerPermit {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(permit) = breaker.acquire().await {
            assert!(permit.is_probe(), "admitted, but not as a probe");
            return permit;
        }
        assert!(Instant::now() < deadline, "no probe was handed out");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn evalsha_calls(server: &RedisServer) -> u64 {
    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut raw)
        .await
        .unwrap();
    let calls = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(&format!("cmdstat_{name}:calls=")))
            .and_then(|rest| rest.split(',').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    calls("evalsha") + calls("eval")
}

#[tokio::test]
async fn closed_calls_make_no_round_trip() {
    let server = support::server();
    let breaker = replica(&server, "quiet")
        .await
        .sync_interval(Duration::from_secs(3600))
        .build()
        .await
        .unwrap();
    // The sync task's first sync is immediate; the next is an hour away.
    let deadline = Instant::now() + Duration::from_secs(10);
    while breaker.stats().syncs < 2 {
        assert!(Instant::now() < deadline, "the sync task never synced");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let before = evalsha_calls(&server).await;
    for n in 0..1_000u32 {
        assert_eq!(breaker.call(|| async { Ok::<_, ()>(n) }).await.unwrap(), n);
    }
    let guarded = breaker.guard(rule(async |_: &()| true));
    for _ in 0..1_000 {
        assert!(guarded.run(()).await.0);
    }
    assert_eq!(
        evalsha_calls(&server).await,
        before,
        "a CLOSED call asked Redis"
    );
    // A failure does make one.
    fail(&breaker).await;
    assert_eq!(evalsha_calls(&server).await, before + 1);
}

#[tokio::test]
async fn a_trip_by_one_replica_opens_the_circuit_for_all() {
    let server = support::server();
    let settings = |b: SharedBreakerBuilder| {
        b.failure_threshold(3)
            .recovery_timeout(Duration::from_secs(3600))
    };
    let a = settings(replica(&server, "svc").await)
        .build()
        .await
        .unwrap();
    let b = settings(replica(&server, "svc").await)
        .build()
        .await
        .unwrap();
    for _ in 0..3 {
        fail(&a).await;
    }
    assert_eq!(a.state(), CircuitState::Open);
    b.sync().await.unwrap();
    assert_eq!(b.state(), CircuitState::Open);
    let refused = b.acquire().await.unwrap_err();
    assert_eq!(refused.state(), CircuitState::Open);
    assert!(refused.retry_at().is_some());
    let result = b.call(|| async { Ok::<_, ()>(()) }).await;
    assert!(matches!(result, Err(Error::CircuitOpen(_))));
    assert_eq!(b.stats().rejected, 2);
    // A reset anywhere closes it everywhere.
    b.reset().await.unwrap();
    a.sync().await.unwrap();
    assert_eq!(a.state(), CircuitState::Closed);
}

#[tokio::test]
async fn a_success_anywhere_ends_the_fleets_failure_streak() {
    let server = support::server();
    let a = replica(&server, "streak")
        .await
        .failure_threshold(3)
        .build()
        .await
        .unwrap();
    let b = replica(&server, "streak")
        .await
        .failure_threshold(3)
        .build()
        .await
        .unwrap();
    fail(&a).await;
    fail(&a).await;
    b.sync().await.unwrap(); // b learns of the streak
    b.call(|| async { Ok::<_, ()>(()) }).await.unwrap();
    fail(&a).await;
    fail(&a).await;
    assert_eq!(a.state(), CircuitState::Closed, "the streak was not ended");
    fail(&a).await;
    assert_eq!(a.state(), CircuitState::Open);
}

#[tokio::test]
async fn outcomes_from_an_older_generation_are_ignored() {
    let server = support::server();
    let a = replica(&server, "gen")
        .await
        .failure_threshold(1)
        .build()
        .await
        .unwrap();
    let b = replica(&server, "gen")
        .await
        .failure_threshold(1)
        .build()
        .await
        .unwrap();
    let slow = a.acquire().await.unwrap(); // admitted in generation g
    let admitted_in = slow.generation().unwrap();
    fail(&b).await; // g + 1: open
    b.reset().await.unwrap(); // g + 2: closed
    // The slow call's failure belongs to a circuit that no longer exists.
    slow.finish(true).await;
    assert_eq!(a.state(), CircuitState::Closed);
    b.sync().await.unwrap();
    assert_eq!(b.state(), CircuitState::Closed);
    assert_eq!(b.stats().generation, admitted_in + 2);
}

#[tokio::test]
async fn probes_close_the_circuit_or_reopen_it() {
    let server = support::server();
    let breaker = replica(&server, "recover")
        .await
        .failure_threshold(1)
        .recovery_timeout(Duration::from_millis(100))
        .half_open_max_calls(2)
        .build()
        .await
        .unwrap();
    fail(&breaker).await;
    assert_eq!(breaker.state(), CircuitState::Open);
    // A failed probe reopens it.
    let first = probe(&breaker).await;
    first.finish(true).await;
    assert_eq!(breaker.state(), CircuitState::Open);
    // Two probe successes close it; a third caller is refused meanwhile.
    let first = probe(&breaker).await;
    let second = breaker.acquire().await.unwrap();
    assert!(second.is_probe());
    let refused = breaker.acquire().await.unwrap_err();
    assert_eq!(refused.state(), CircuitState::HalfOpen);
    assert_eq!(refused.retry_at(), None);
    first.finish(false).await;
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    second.finish(false).await;
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[tokio::test]
async fn a_cancelled_probe_gives_its_slot_back() {
    let server = support::server();
    let breaker = replica(&server, "cancel")
        .await
        .failure_threshold(1)
        .recovery_timeout(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    fail(&breaker).await;
    let taken = probe(&breaker).await;
    assert!(breaker.acquire().await.is_err());
    drop(taken); // cancelled: no outcome, the slot goes back
    let again = probe(&breaker).await;
    again.finish(false).await;
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[tokio::test]
async fn a_probe_whose_lease_ran_out_frees_the_slot_and_its_outcome_is_ignored() {
    let server = support::server();
    let settings = |b: SharedBreakerBuilder| {
        b.failure_threshold(1)
            .recovery_timeout(Duration::from_millis(50))
            .probe_lease(Duration::from_millis(100))
    };
    let a = settings(replica(&server, "lease").await)
        .build()
        .await
        .unwrap();
    let b = settings(replica(&server, "lease").await)
        .build()
        .await
        .unwrap();
    fail(&a).await;
    // `a` takes the one probe slot and hangs (a replica that died).
    let hung = probe(&a).await;
    b.sync().await.unwrap();
    // Once the lease runs out, `b` gets the slot, in a new generation.
    let fresh = probe(&b).await;
    assert!(fresh.generation() > hung.generation());
    // The hung probe's failure is stale: it does not reopen the circuit.
    hung.finish(true).await;
    assert_eq!(a.state(), CircuitState::HalfOpen);
    fresh.finish(false).await;
    assert_eq!(b.state(), CircuitState::Closed);
}

#[tokio::test]
async fn the_algebra_face_counts_a_false_verdict_as_a_failure() {
    let server = support::server();
    let breaker = replica(&server, "algebra")
        .await
        .failure_threshold(2)
        .recovery_timeout(Duration::from_secs(3600))
        .build()
        .await
        .unwrap();
    let check = breaker.guard(rule(async |n: &i32| *n > 0));
    assert_eq!(check.run(1).await, (true, 1));
    assert_eq!(check.run(-1).await, (false, -1));
    assert_eq!(check.run(-2).await, (false, -2));
    assert_eq!(breaker.state(), CircuitState::Open);
    assert_eq!(check.run(3).await, (false, 3)); // refused without running
}

#[tokio::test]
async fn a_key_holding_another_breaker_is_refused_by_name() {
    let server = support::server();
    replica(&server, "b")
        .await
        .failure_threshold(3)
        .build()
        .await
        .unwrap();
    let err = replica(&server, "b")
        .await
        .failure_threshold(4)
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(err, SetupError::Config(ConfigError::NameConflict { .. })),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "name \"b\" is already registered with `failure_threshold` = 3, but 4 was requested"
    );
    let err = replica(&server, "b")
        .await
        .failure_threshold(3)
        .recovery_timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "name \"b\" is already registered with `recovery_timeout` = 30s, but 5s was requested"
    );
}

#[tokio::test]
async fn settings_out_of_range_are_refused_by_name() {
    let server = support::server();
    type Setting = fn(SharedBreakerBuilder) -> SharedBreakerBuilder;
    let cases: [(Setting, &str); 5] = [
        (
            |b| b.failure_threshold(0),
            "invalid `failure_threshold`: 0 (expected 1 to 65535)",
        ),
        (
            |b| b.half_open_max_calls(70_000),
            "invalid `half_open_max_calls`: 70000 (expected 1 to 65535)",
        ),
        (
            |b| b.recovery_timeout(Duration::ZERO),
            "invalid `recovery_timeout`: 0ns",
        ),
        (
            |b| b.probe_lease(Duration::from_nanos(10)),
            "invalid `probe_lease`: 10ns",
        ),
        (
            |b| b.sync_interval(Duration::ZERO),
            "invalid `sync_interval`: 0ns",
        ),
    ];
    for (set, message) in cases {
        let err = set(replica(&server, "bad").await)
            .build()
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with(message), "{err} / {message}");
    }
}
