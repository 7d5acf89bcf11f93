//! Three processes share one rate limit and one circuit breaker through
//! Redis, and the fleet's timeline is printed.
//!
//! ```text
//! cargo run -p kompoz-redis --example fleet
//! KOMPOZ_REDIS_URL=redis://127.0.0.1:6379/ cargo run -p kompoz-redis --example fleet
//! ```
//!
//! Without `KOMPOZ_REDIS_URL` it starts its own `redis-server` on a free
//! loopback port. Each replica calls a pretend upstream as fast as the
//! shared limit (20 calls a second for the fleet) lets it; the upstream is
//! down from 1.0 s to 2.0 s. The fleet's breaker (3 failures in a row,
//! 500 ms open, 1 probe) trips once for all replicas, and one probe for the
//! whole fleet finds the upstream back.
//!
//! It checks what it prints and exits non-zero otherwise: in every full
//! second the fleet admitted at most the quota (+1: the limit runs on the
//! server's clock in µs, the timeline on the replicas' ms), and every
//! replica saw the breaker open.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kompoz_core::RateLimit;
use kompoz_redis::test_server::RedisServer;
use kompoz_redis::{Redis, RedisEvent, SharedBreaker, SharedRateLimiter};

const REPLICAS: usize = 3;
const RUN_MS: i64 = 3_500;
const DOWN_MS: (i64, i64) = (1_000, 2_000);
const QUOTA_PER_SECOND: u32 = 20;

type Failure = Box<dyn std::error::Error>;

/// The replica processes: killed and reaped on every way out of `fleet`.
struct Replicas(Vec<Child>);

impl Drop for Replicas {
    fn drop(&mut self) {
        for child in &mut self.0 {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

fn unix_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("in range")
}

fn main() -> Result<(), Failure> {
    match std::env::var("KOMPOZ_FLEET_REPLICA") {
        Ok(name) => replica(&name),
        Err(_) => fleet(),
    }
}

/// The parent: starts the replicas, merges their lines into one timeline.
fn fleet() -> Result<(), Failure> {
    let (_server, url) = match std::env::var("KOMPOZ_REDIS_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let server = RedisServer::start()?;
            let url = server.url();
            (Some(server), url)
        }
    };
    println!("redis: {url}");
    println!(
        "fleet: {REPLICAS} processes; one limit of {QUOTA_PER_SECOND}/s; one breaker \
         (3 failures, 500 ms open, 1 probe); the upstream is down {}-{} ms\n",
        DOWN_MS.0, DOWN_MS.1
    );
    let start = unix_ms() + 500; // time for the replicas to connect
    let mut children = Replicas(Vec::new());
    for n in 1..=REPLICAS {
        children.0.push(
            Command::new(std::env::current_exe()?)
                .env("KOMPOZ_FLEET_REPLICA", format!("replica-{n}"))
                .env("KOMPOZ_FLEET_URL", &url)
                .env("KOMPOZ_FLEET_START", start.to_string())
                .stdout(Stdio::piped())
                .spawn()?,
        );
    }
    let mut lines: Vec<(i64, String)> = Vec::new();
    for child in &mut children.0 {
        let stdout = child.stdout.take().ok_or("no stdout")?;
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            let (t, rest) = line.split_once(' ').unwrap_or(("0", &line));
            lines.push((t.parse().unwrap_or(0), rest.to_owned()));
        }
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("a replica failed: {status}").into());
        }
    }
    drop(children);
    // Stable: a replica's lines of the same millisecond keep their order.
    lines.sort_by_key(|(t, _)| *t);

    println!("timeline (ms since the start):");
    let mut admitted: BTreeMap<i64, u32> = BTreeMap::new();
    let mut opened: Vec<(i64, &str)> = Vec::new();
    for (t, line) in &lines {
        if line.contains(": call ") {
            *admitted.entry(t.div_euclid(1000)).or_default() += 1;
        }
        if line.ends_with("CLOSED -> OPEN") {
            opened.push((*t, line));
        }
        println!("{t:>6}  {line}");
    }
    println!(
        "\ncalls admitted by the shared limit, fleet-wide (quota {QUOTA_PER_SECOND} a second):"
    );
    for (second, count) in &admitted {
        println!("  second {second}: {count}");
    }
    if let Some((first, _)) = opened.first() {
        println!(
            "\nthe trip as each replica saw it (staleness bound: 100 ms sync + 50 ms command timeout):"
        );
        for (t, line) in &opened {
            println!("  +{:>3} ms  {line}", t - first);
        }
    }
    check(&admitted, &opened)
}

/// What the timeline must show; an error (exit code 1) names what it does
/// not.
fn check(admitted: &BTreeMap<i64, u32>, opened: &[(i64, &str)]) -> Result<(), Failure> {
    let full_seconds = RUN_MS / 1000;
    for second in 0..full_seconds {
        let count = admitted.get(&second).copied().unwrap_or(0);
        if count > QUOTA_PER_SECOND + 1 {
            return Err(format!(
                "second {second}: the fleet admitted {count} calls, over the quota of \
                 {QUOTA_PER_SECOND} (+1)"
            )
            .into());
        }
        if count == 0 {
            return Err(format!("second {second}: the fleet admitted no call").into());
        }
    }
    for n in 1..=REPLICAS {
        let who = format!("replica-{n}:");
        if !opened.iter().any(|(_, line)| line.starts_with(&who)) {
            return Err(format!("{who} never saw the breaker open").into());
        }
    }
    println!("\nchecked: at most {QUOTA_PER_SECOND} (+1) a second, and every replica saw the trip");
    Ok(())
}

/// One replica: calls the upstream through the shared limit and breaker
/// until the run ends, printing `<ms since the start> <what happened>`.
fn replica(name: &str) -> Result<(), Failure> {
    let url = std::env::var("KOMPOZ_FLEET_URL")?;
    let start: i64 = std::env::var("KOMPOZ_FLEET_START")?.parse()?;
    let name: Arc<str> = Arc::from(name);
    let since = move || unix_ms() - start;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let redis = Redis::connect(&url).await?;
        let limit = RateLimit::new(QUOTA_PER_SECOND, Duration::from_secs(1))?;
        let rate = SharedRateLimiter::builder(&redis, "fleet:rate", limit)
            .wait_at_most(Duration::from_millis(200))
            .build()
            .await?;
        let who = Arc::clone(&name);
        let breaker = SharedBreaker::builder(&redis, "fleet:breaker")
            .failure_threshold(3)
            .recovery_timeout(Duration::from_millis(500))
            .on_event(move |event| match event {
                RedisEvent::StateChange { from, to, .. } => {
                    println!("{} {who}: breaker {from} -> {to}", since());
                }
                other => println!("{} {who}: {other:?}", since()),
            })
            .build()
            .await?;
        let wait = u64::try_from(start - unix_ms()).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let mut refused = 0;
        while since() < RUN_MS {
            if rate.acquire().await.is_err() {
                continue; // the fleet's budget is spent for now
            }
            let at = since();
            let up = !(DOWN_MS.0..DOWN_MS.1).contains(&at);
            let result = breaker
                .call(|| async move { if up { Ok(()) } else { Err("503") } })
                .await;
            match result {
                Ok(()) => println!("{at} {name}: call ok"),
                Err(err) if err.is_refusal() => {
                    refused += 1;
                    println!("{at} {name}: call refused (breaker {})", breaker.state());
                }
                Err(_) => println!("{at} {name}: call failed (the upstream is down)"),
            }
        }
        let stats = rate.stats();
        println!(
            "{} {name}: done; the shared limit admitted {} of this replica's calls, \
             the breaker refused {refused}; fallback used {} times",
            since(),
            stats.admitted,
            stats.fallback_admitted + stats.fallback_rejected
        );
        Ok::<_, Failure>(())
    })
}
