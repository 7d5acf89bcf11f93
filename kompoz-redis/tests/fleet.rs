//! Several replicas — tasks, connections and OS processes — share one rate
//! limit and one breaker through a real `redis-server`.
//!
//! Child processes are this test binary run again with a role (see
//! `support::Replica`): the `replica` test below plays it.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kompoz_core::{CircuitState, RateLimit};
use kompoz_redis::{Redis, RedisEvent, SharedBreaker, SharedRateLimiter};
use support::Replica;

const ENTRY: &str = "replica";

/// A budget that does not refill during a test: 100 calls, then one more
/// per 864 s (100 a day). Every admission beyond the first 100 needs that
/// much elapsed time, so the count is exact whatever the machine's speed.
fn day_budget() -> RateLimit {
    RateLimit::with_burst(100, Duration::from_secs(86_400), 100).unwrap()
}

/// The most a limit can admit in `elapsed`: the burst, plus one per
/// emission interval, plus one for the interval's rounding up to a
/// microsecond.
fn most_admitted(limit: RateLimit, elapsed: Duration) -> u64 {
    let interval = limit.emission_interval().as_micros();
    u64::from(limit.burst()) + u64::try_from(elapsed.as_micros() / interval).unwrap() + 1
}

fn unix_micros() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros(),
    )
    .unwrap()
}

/// Hammers `limiter.check()` from `tasks` tasks until each saw `refusals`
/// refusals (or `until` passed); returns the admitted count.
async fn hammer(
    limiters: &[SharedRateLimiter],
    tasks: usize,
    refusals: u64,
    until: Option<Instant>,
    pause: Duration,
) -> u64 {
    let admitted = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for limiter in limiters {
        for _ in 0..tasks {
            let limiter = limiter.clone();
            let admitted = Arc::clone(&admitted);
            handles.push(tokio::spawn(async move {
                let mut refused = 0;
                loop {
                    if until.is_some_and(|t| Instant::now() >= t)
                        || (until.is_none() && refused >= refusals)
                    {
                        break;
                    }
                    match limiter.check().await {
                        Ok(()) => admitted.fetch_add(1, Ordering::Relaxed),
                        Err(_) => {
                            refused += 1;
                            0
                        }
                    };
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                }
            }));
        }
    }
    for handle in handles {
        handle.await.unwrap();
    }
    admitted.load(Ordering::Relaxed)
}

async fn limiters(url: &str, key: &str, limit: RateLimit, count: usize) -> Vec<SharedRateLimiter> {
    let mut out = Vec::new();
    for _ in 0..count {
        // A connection each: as separate replicas would have.
        let redis = Redis::connect(url).await.unwrap();
        out.push(
            SharedRateLimiter::builder(&redis, key, limit)
                .reject_when_full()
                .build()
                .await
                .unwrap(),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limiters_in_many_tasks_share_one_budget() {
    let server = support::server();
    let limit = day_budget();
    let fleet = limiters(&server.url(), "tasks:rate", limit, 3).await;
    let started = Instant::now();
    let admitted = hammer(&fleet, 4, 20, None, Duration::ZERO).await;
    let most = most_admitted(limit, started.elapsed()) - 1;
    assert!(
        (100..=most).contains(&admitted),
        "admitted {admitted}, expected 100 (at most {most})"
    );
    let shared: u64 = fleet.iter().map(|l| l.stats().admitted).sum();
    assert_eq!(shared, admitted);
    assert!(fleet.iter().all(|l| l.stats().fallback_admitted == 0));
}

#[test]
fn three_processes_share_one_budget() {
    let server = support::server();
    let mut replicas: Vec<_> = (0..3)
        .map(|_| Replica::spawn(ENTRY, "budget", &server.url(), "procs:rate"))
        .collect();
    for replica in &mut replicas {
        assert_eq!(replica.next(), "ready");
    }
    let started = Instant::now();
    for replica in &mut replicas {
        replica.tell("go");
    }
    let admitted: Vec<u64> = replicas
        .iter_mut()
        .map(|r| Replica::field(&r.next(), "admitted"))
        .collect();
    let elapsed = started.elapsed();
    for replica in replicas {
        replica.finish();
    }
    let total: u64 = admitted.iter().sum();
    let most = most_admitted(day_budget(), elapsed) - 1;
    println!("three processes admitted {admitted:?} = {total} of a budget of 100");
    assert!(
        (100..=most).contains(&total),
        "admitted {total}, expected 100 (at most {most})"
    );
}

#[test]
fn three_processes_never_exceed_a_refilling_rate() {
    let server = support::server();
    let limit = refill_limit();
    let mut replicas: Vec<_> = (0..3)
        .map(|_| Replica::spawn(ENTRY, "refill", &server.url(), "procs:refill"))
        .collect();
    for replica in &mut replicas {
        assert_eq!(replica.next(), "ready");
    }
    let started = Instant::now();
    for replica in &mut replicas {
        replica.tell("go");
    }
    let admitted: Vec<u64> = replicas
        .iter_mut()
        .map(|r| Replica::field(&r.next(), "admitted"))
        .collect();
    let elapsed = started.elapsed();
    for replica in replicas {
        replica.finish();
    }
    let total: u64 = admitted.iter().sum();
    let most = most_admitted(limit, elapsed);
    // The bound is exact (the server admits no more); how close the fleet
    // comes to it depends on how fast the replicas ask, so it is reported,
    // not asserted.
    println!(
        "three processes admitted {admitted:?} = {total} in {elapsed:?}; the limit allows at most {most} ({:.1} %)",
        total as f64 * 100.0 / most as f64
    );
    assert!(total <= most, "admitted {total}, at most {most} allowed");
    assert!(total > 0);
}

/// 20 a second with a burst of 5: the burst absorbs a replica's scheduling
/// delays, so the fleet takes (nearly) every slot.
fn refill_limit() -> RateLimit {
    RateLimit::with_burst(20, Duration::from_secs(1), 5).unwrap()
}

#[test]
fn a_trip_in_one_process_reaches_another_within_the_staleness_bound() {
    let server = support::server();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let breaker = runtime.block_on(async {
        let redis = Redis::connect(&server.url()).await.unwrap();
        trip_breaker(&redis, "procs:breaker").await
    });
    let mut watcher = Replica::spawn(ENTRY, "watch", &server.url(), "procs:breaker");
    assert_eq!(watcher.next(), "ready");
    // Trip at an arbitrary point of the watcher's sync period, so that the
    // lag printed below samples the whole range (nothing is asserted on it).
    let phase = u64::from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos(),
    );
    std::thread::sleep(Duration::from_millis(phase % 100));
    runtime.block_on(async {
        for _ in 0..3 {
            let _ = breaker.call(|| async { Err::<(), _>("down") }).await;
        }
    });
    // The replica that trips the circuit sees it at once.
    assert_eq!(breaker.state(), CircuitState::Open);
    watcher.tell(&format!("tripped {}", unix_micros()));
    let seen = watcher.next();
    watcher.finish();
    let before = Replica::field(&seen, "syncs_before");
    let at = Replica::field(&seen, "syncs_at");
    let lag = Duration::from_micros(Replica::field(&seen, "lag_us"));
    println!(
        "the other process saw the trip after {lag:?} (bound {:?}), at its sync #{} after the news",
        breaker.staleness_bound(),
        at + 1 - before
    );
    // At most the sync in flight when the news came (it may have read the
    // state before the trip), then the next one, which cannot have.
    assert!(
        at <= before + 1,
        "seen at sync {at}, news at {before}: {seen}"
    );
}

async fn trip_breaker(redis: &Redis, key: &str) -> SharedBreaker {
    SharedBreaker::builder(redis, key)
        .failure_threshold(3)
        .recovery_timeout(Duration::from_secs(3600))
        .build()
        .await
        .unwrap()
}

#[test]
fn half_open_probes_are_limited_across_processes() {
    let server = support::server();
    let key = "procs:probes";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut replicas: Vec<_> = (0..3)
        .map(|_| Replica::spawn(ENTRY, "probe", &server.url(), key))
        .collect();
    for replica in &mut replicas {
        assert_eq!(replica.next(), "ready");
    }
    runtime.block_on(async {
        let redis = Redis::connect(&server.url()).await.unwrap();
        let breaker = probe_breaker(&redis, key).await;
        let _ = breaker.call(|| async { Err::<(), _>("down") }).await;
        assert_eq!(breaker.state(), CircuitState::Open);
    });
    for replica in &mut replicas {
        replica.tell("go");
    }
    let reports: Vec<String> = replicas.iter_mut().map(Replica::next).collect();
    for replica in &mut replicas {
        replica.tell("done");
    }
    for replica in replicas {
        replica.finish();
    }
    let probes: u64 = reports.iter().map(|r| Replica::field(r, "probes")).sum();
    let refused: u64 = reports.iter().map(|r| Replica::field(r, "refused")).sum();
    println!("probes across 3 processes x 4 tasks: {reports:?}");
    assert_eq!(
        probes, 2,
        "half_open_max_calls is 2 for the fleet: {reports:?}"
    );
    assert_eq!(refused, 10);
}

async fn probe_breaker(redis: &Redis, key: &str) -> SharedBreaker {
    SharedBreaker::builder(redis, key)
        .failure_threshold(1)
        .recovery_timeout(Duration::from_millis(300))
        .half_open_max_calls(2)
        .probe_lease(Duration::from_secs(3600))
        .build()
        .await
        .unwrap()
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
        match role.as_str() {
            "budget" => {
                let fleet = limiters(&url, &key, day_budget(), 2).await;
                support::report("ready");
                assert_eq!(support::wait_for_parent(), "go");
                let admitted = hammer(&fleet, 3, 20, None, Duration::ZERO).await;
                support::report(&format!("admitted={admitted}"));
            }
            "refill" => {
                let fleet = limiters(&url, &key, refill_limit(), 2).await;
                support::report("ready");
                assert_eq!(support::wait_for_parent(), "go");
                let until = Instant::now() + Duration::from_millis(1500);
                let admitted = hammer(&fleet, 3, 0, Some(until), Duration::from_millis(2)).await;
                support::report(&format!("admitted={admitted}"));
            }
            "watch" => watch(&url, &key).await,
            "probe" => probe(&url, &key).await,
            other => panic!("unknown role {other}"),
        }
    });
}

async fn watch(url: &str, key: &str) {
    let redis = Redis::connect(url).await.unwrap();
    let me: Arc<OnceLock<SharedBreaker>> = Arc::new(OnceLock::new());
    let seen: Arc<Mutex<Option<(u64, u64)>>> = Arc::new(Mutex::new(None));
    let (me_in_event, seen_in_event) = (Arc::clone(&me), Arc::clone(&seen));
    let breaker = SharedBreaker::builder(&redis, key)
        .failure_threshold(3)
        .recovery_timeout(Duration::from_secs(3600))
        .on_event(move |event| {
            if let RedisEvent::StateChange {
                to: CircuitState::Open,
                ..
            } = event
            {
                // Runs inside the sync that brought the news, before that
                // sync is counted.
                let syncs = me_in_event.get().map_or(0, |b| b.stats().syncs);
                *seen_in_event.lock().unwrap() = Some((syncs, unix_micros()));
            }
        })
        .build()
        .await
        .unwrap();
    let _ = me.set(breaker.clone());
    support::report("ready");
    let news = tokio::task::spawn_blocking(support::wait_for_parent)
        .await
        .unwrap();
    let before = breaker.stats().syncs;
    let tripped_at: u64 = news
        .strip_prefix("tripped ")
        .and_then(|t| t.parse().ok())
        .expect("tripped <micros>");
    let deadline = Instant::now() + Duration::from_secs(10);
    let (at, when) = loop {
        if let Some(seen) = *seen.lock().unwrap() {
            break seen;
        }
        assert!(Instant::now() < deadline, "the trip never arrived");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    assert_eq!(breaker.state(), CircuitState::Open);
    support::report(&format!(
        "seen syncs_before={before} syncs_at={at} lag_us={}",
        when.saturating_sub(tripped_at)
    ));
}

async fn probe(url: &str, key: &str) {
    let redis = Redis::connect(url).await.unwrap();
    let breaker = probe_breaker(&redis, key).await;
    support::report("ready");
    let go = tokio::task::spawn_blocking(support::wait_for_parent)
        .await
        .unwrap();
    assert_eq!(go, "go");
    // The parent tripped the circuit after this replica's last sync: take
    // the news now rather than within the staleness bound (during which
    // CLOSED calls would still be admitted here, by design).
    breaker.sync().await.unwrap();
    assert_ne!(breaker.state(), CircuitState::Closed);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let breaker = breaker.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                match breaker.acquire().await {
                    Ok(permit) => {
                        assert!(permit.is_probe(), "admitted but not as a probe");
                        return Ok(permit);
                    }
                    Err(refused) if refused.state() == CircuitState::HalfOpen => {
                        return Err(refused);
                    }
                    // Still open: the recovery timeout has not passed.
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }));
    }
    let mut held = Vec::new();
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(permit) => held.push(permit),
            Err(_) => refused += 1,
        }
    }
    support::report(&format!("probes={} refused={refused}", held.len()));
    // Probes are held until every replica has reported.
    let done = tokio::task::spawn_blocking(support::wait_for_parent)
        .await
        .unwrap();
    assert_eq!(done, "done");
    drop(held);
}
