//! The price of sharing: one rate-limit check through Redis on loopback (one
//! round trip, one Lua script) against the local check, and a shared
//! breaker's CLOSED admission (the cached view, no round trip) against the
//! local breaker's.
//!
//! Starts its own `redis-server`; without one installed, the shared
//! benchmarks are skipped with a message and the local ones still run.
//!
//! `cargo bench -p kompoz-redis --bench shared_check`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use kompoz_core::{Breaker, RateLimit, RateLimiter};
use kompoz_redis::test_server::RedisServer;
use kompoz_redis::{Redis, SharedBreaker, SharedRateLimiter};
use kompoz_tokio::TokioClock;

/// Far above what one bench thread can use: every check is admitted, and
/// the figure is the admitted path's cost (a refusal costs the same trip).
fn limit() -> RateLimit {
    RateLimit::with_burst(1_000_000, Duration::from_secs(1), 1_000_000).expect("limit")
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("shared_vs_local");

    let local = RateLimiter::new(limit(), TokioClock);
    g.bench_function("rate check, local", |b| {
        b.iter(|| black_box(&local).check().is_ok())
    });
    let local_breaker = Breaker::builder(TokioClock).build().expect("breaker");
    g.bench_function("breaker admission (CLOSED), local", |b| {
        b.iter(|| black_box(&local_breaker).try_acquire().map(|p| p.success()))
    });

    if !RedisServer::installed() {
        eprintln!("redis-server is not installed: skipping the shared benchmarks");
        g.finish();
        return;
    }
    let server = RedisServer::start().expect("redis-server");
    let (shared, breaker) = runtime.block_on(async {
        let redis = Redis::connect(&server.url()).await.expect("connect");
        let shared = SharedRateLimiter::builder(&redis, "bench:rate", limit())
            .reject_when_full()
            .build()
            .await
            .expect("limiter");
        let breaker = SharedBreaker::builder(&redis, "bench:breaker")
            .build()
            .await
            .expect("breaker");
        (shared, breaker)
    });
    // What `block_on` itself costs, to subtract from the shared figures.
    g.bench_function("block_on of a ready future (baseline)", |b| {
        b.iter(|| runtime.block_on(black_box(async { 1 })))
    });
    g.bench_function("rate check, shared (Redis on loopback)", |b| {
        b.iter(|| runtime.block_on(black_box(&shared).check()).is_ok())
    });
    g.bench_function("breaker admission (CLOSED), shared (cached view)", |b| {
        b.iter(|| {
            runtime
                .block_on(black_box(&breaker).acquire())
                .map(|p| p.success())
        })
    });
    g.finish();
    let stats = shared.stats();
    assert_eq!(
        stats.fallback_admitted + stats.fallback_rejected,
        0,
        "Redis served every check"
    );
}

criterion_group! {
    name = group;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(group);
