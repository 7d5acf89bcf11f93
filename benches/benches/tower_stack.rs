//! kompoz-tower: timeout ∘ limit ∘ breaker as tower layers, per request,
//! against the same stack in tower + tower-resilience. Both around the same
//! `service_fn` leaf that answers at once; no network.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use kompoz_benches::{tokio_runtime, tower_once};
use kompoz_tokio::{ClockExt, TokioClock};
use kompoz_tower::{CircuitBreakerLayer, ServiceBuilderExt};
use tower::{ServiceBuilder, service_fn};

const LIMIT: Duration = Duration::from_secs(1);
const POOL: usize = 10;

fn leaf(x: u64) -> std::future::Ready<Result<u64, std::io::Error>> {
    std::future::ready(Ok(x))
}

fn benches(c: &mut Criterion) {
    let rt = tokio_runtime();
    let _in_runtime = rt.enter();
    let mut g = c.benchmark_group("tower_stack");

    let mut direct = service_fn(leaf);
    g.bench_function("direct", |b| {
        b.iter(|| tower_once(&mut direct, black_box(1)))
    });

    let clock = TokioClock::new();
    let breaker = clock
        .shared_breaker()
        .failure_threshold(5)
        .recovery_timeout(Duration::from_secs(30))
        .build()
        .expect("kompoz config");
    let mut kz = ServiceBuilder::new()
        .with_timeout(LIMIT, clock)
        .expect("kompoz config")
        .limited(POOL)
        .expect("kompoz config")
        .layer(CircuitBreakerLayer::new(&breaker))
        .service(service_fn(leaf));
    g.bench_function("kompoz", |b| b.iter(|| tower_once(&mut kz, black_box(1))));

    let breaker = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .consecutive_failures(5)
        .wait_duration_in_open(Duration::from_secs(30))
        .build()
        .expect("tower-resilience config");
    let mut tw = ServiceBuilder::new()
        .timeout(LIMIT)
        .concurrency_limit(POOL)
        .layer(breaker)
        .service(service_fn(leaf));
    g.bench_function("tower", |b| b.iter(|| tower_once(&mut tw, black_box(1))));

    g.finish();
}

criterion_group! {
    name = group;
    config = kompoz_benches::criterion();
    targets = benches
}
criterion_main!(group);
