//! The fleet-wide concurrency pool: leases in Redis, shared by tasks and OS
//! processes, expiring when their holder dies.

mod support;

use support::eventually;

use std::time::Duration;

use kompoz_core::call::Error;
use kompoz_core::{Combinator, ConfigError, rule};
use kompoz_redis::test_server::RedisServer;
use kompoz_redis::{Fallback, Redis, SetupError, SharedPool, SharedPoolBuilder};
use support::Replica;

const ENTRY: &str = "replica";

async fn pool(server: &RedisServer, key: &str, max: u32) -> SharedPoolBuilder {
    let redis = Redis::connect(&server.url()).await.unwrap();
    SharedPool::builder(&redis, key, max)
}

#[test]
fn three_processes_never_run_more_than_the_fleets_limit() {
    let server = support::server();
    let mut replicas: Vec<_> = (0..3)
        .map(|_| Replica::spawn(ENTRY, "busy", &server.url(), "procs:pool"))
        .collect();
    for replica in &mut replicas {
        assert_eq!(replica.next(), "ready");
    }
    for replica in &mut replicas {
        replica.tell("go");
    }
    let reports: Vec<String> = replicas.iter_mut().map(Replica::next).collect();
    for replica in replicas {
        replica.finish();
    }
    let most = reports
        .iter()
        .map(|r| Replica::field(r, "most"))
        .max()
        .unwrap();
    let done: u64 = reports.iter().map(|r| Replica::field(r, "done")).sum();
    println!("3 processes x 4 tasks through a pool of 3: {reports:?}");
    // Every call ran (none lost, none refused: they wait), never more than
    // 3 at once across the fleet.
    assert_eq!(done, 3 * 4 * 5);
    assert!(most <= 3, "{most} calls ran at once: {reports:?}");
    assert!(most >= 1);
}

#[tokio::test]
async fn a_dead_holders_leases_expire_a_live_ones_are_renewed() {
    let server = support::server();
    let mut holder = Replica::spawn(ENTRY, "hold", &server.url(), "dead:pool");
    assert_eq!(holder.next(), "held");
    let pool = pool(&server, "dead:pool", 2)
        .await
        .lease(Duration::from_secs(1))
        .reject_when_full()
        .build()
        .await
        .unwrap();
    // Past one lease: the live holder renewed its two leases.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(pool.acquire().await.is_err(), "the leases were not renewed");
    holder.kill();
    // The crashed holder renews nothing: within a lease, the slots are free.
    eventually("the dead holder's leases expire", async || {
        pool.acquire().await.is_ok()
    })
    .await;
}

#[tokio::test]
async fn a_dropped_permit_gives_its_lease_back() {
    let server = support::server();
    let pool = pool(&server, "drop", 1)
        .await
        .reject_when_full()
        .build()
        .await
        .unwrap();
    let held = pool.acquire().await.unwrap();
    assert_eq!(pool.stats().held, 1);
    assert!(pool.acquire().await.is_err());
    drop(held);
    eventually("the lease comes back", async || {
        pool.acquire().await.is_ok()
    })
    .await;
}

#[tokio::test]
async fn a_bounded_wait_gets_a_lease_released_meanwhile_or_gives_up() {
    let server = support::server();
    let pool = pool(&server, "bounded", 1)
        .await
        .wait_at_most(Duration::from_secs(5))
        .poll_every(Duration::from_millis(5))
        .build()
        .await
        .unwrap();
    let held = pool.acquire().await.unwrap();
    let release = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(held);
    };
    let (waited, ()) = tokio::join!(pool.acquire(), release);
    assert!(waited.is_ok());
    let short = SharedPool::builder(&Redis::connect(&server.url()).await.unwrap(), "bounded", 1)
        .wait_at_most(Duration::from_millis(30))
        .build()
        .await
        .unwrap();
    let refused = short.acquire().await.unwrap_err();
    assert!(refused.waited() >= Duration::from_millis(30));
}

#[tokio::test]
async fn the_call_api_and_the_algebra_share_the_pool() {
    let server = support::server();
    let pool = pool(&server, "faces", 1)
        .await
        .reject_when_full()
        .build()
        .await
        .unwrap();
    let guarded = pool.guard(rule(async |n: &u32| *n > 0));
    assert_eq!(guarded.run(1).await, (true, 1));
    let held = pool.acquire().await.unwrap();
    assert_eq!(guarded.run(2).await, (false, 2));
    let refused = pool.call(|| async { Ok::<_, ()>(()) }).await;
    assert!(matches!(refused, Err(Error::PoolFull(_))));
    drop(held);
    eventually("the lease comes back", async || {
        pool.call(|| async { Ok::<_, ()>(()) }).await.is_ok()
    })
    .await;
}

#[tokio::test]
async fn a_key_holding_another_pool_is_refused_by_name() {
    let server = support::server();
    pool(&server, "p", 3).await.build().await.unwrap();
    let err = pool(&server, "p", 4).await.build().await.unwrap_err();
    assert!(
        matches!(err, SetupError::Config(ConfigError::NameConflict { .. })),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "name \"p\" is already registered with `max_concurrent` = 3, but 4 was requested"
    );
    let err = pool(&server, "p", 3)
        .await
        .lease(Duration::from_secs(5))
        .build()
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("name \"p\" is already registered with `lease` = 30s"),
        "{err}"
    );
    let err = pool(&server, "q", 0).await.build().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid `max_concurrent`: 0 (expected at least 1)"
    );
}

#[tokio::test]
async fn without_redis_the_fallback_serves() {
    let mut server = support::server();
    let local = pool(&server, "down", 2)
        .await
        .reject_when_full()
        .fallback_max(1)
        .build()
        .await
        .unwrap();
    let closed = pool(&server, "down", 2)
        .await
        .reject_when_full()
        .fallback(Fallback::Refuse)
        .build()
        .await
        .unwrap();
    server.stop();
    let permit = local.acquire().await.unwrap();
    assert!(permit.is_fallback());
    assert!(local.acquire().await.is_err()); // the local pool holds 1
    assert!(local.in_fallback());
    assert!(closed.acquire().await.is_err());
    assert!(closed.stats().fallback_rejected > 0);
}

/// The child replicas' side. Does nothing in a normal test run.
#[test]
fn replica() {
    let Some((role, url, key)) = support::child_role() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let redis = Redis::connect(&url).await.unwrap();
        match role.as_str() {
            "busy" => {
                let pool = SharedPool::builder(&redis, &key, 3)
                    .poll_every(Duration::from_millis(2))
                    .build()
                    .await
                    .unwrap();
                support::report("ready");
                assert_eq!(support::wait_for_parent(), "go");
                let mut tasks = Vec::new();
                for _ in 0..4 {
                    let (pool, redis_url) = (pool.clone(), url.clone());
                    tasks.push(tokio::spawn(async move {
                        let client = redis::Client::open(redis_url).unwrap();
                        let mut raw = client.get_multiplexed_async_connection().await.unwrap();
                        let mut most = 0;
                        for _ in 0..5 {
                            let _permit = pool.acquire().await.unwrap();
                            let now: u64 = redis::cmd("INCR")
                                .arg("in-flight")
                                .query_async(&mut raw)
                                .await
                                .unwrap();
                            most = most.max(now);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            redis::cmd("DECR")
                                .arg("in-flight")
                                .query_async::<i64>(&mut raw)
                                .await
                                .unwrap();
                        }
                        most
                    }));
                }
                let mut most = 0;
                for task in tasks {
                    most = most.max(task.await.unwrap());
                }
                support::report(&format!("most={most} done=20"));
            }
            "hold" => {
                let pool = SharedPool::builder(&redis, &key, 2)
                    .lease(Duration::from_secs(1))
                    .build()
                    .await
                    .unwrap();
                let a = pool.acquire().await.unwrap();
                let b = pool.acquire().await.unwrap();
                support::report("held");
                // Held until the parent kills this process.
                tokio::time::sleep(Duration::from_secs(3600)).await;
                drop((a, b));
            }
            other => panic!("unknown role {other}"),
        }
    });
}
