//! Composition: timeout ∘ limiter ∘ breaker around an inner step that is
//! ready at once, kompoz against the same stack in tower + tower-resilience.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use kompoz_benches::{poll_once, tokio_runtime, tower_once};
use kompoz_tokio::Combinator;
use tower::{ServiceBuilder, service_fn};
use tower_resilience::circuitbreaker::CircuitBreakerLayer;

const LIMIT: Duration = Duration::from_secs(1);
const POOL: usize = 10;

fn ok_inner(x: u64) -> std::future::Ready<Result<u64, std::io::Error>> {
    std::future::ready(Ok(x))
}

fn benches(c: &mut Criterion) {
    let rt = tokio_runtime();
    let _in_runtime = rt.enter();
    let mut g = c.benchmark_group("composition");

    let inner = kompoz_tokio::rule(async |x: &u64| *x != 0);
    g.bench_function("direct", |b| b.iter(|| poll_once(inner.run(black_box(1)))));

    let breaker = kompoz_tokio::circuit_breaker(inner)
        .failure_threshold(5)
        .recovery_timeout(Duration::from_secs(30))
        .build()
        .expect("kompoz config");
    let limited = kompoz_tokio::limited(breaker, POOL).expect("kompoz config");
    let kz = kompoz_tokio::with_timeout(limited, LIMIT).expect("kompoz config");
    g.bench_function("kompoz", |b| b.iter(|| poll_once(kz.run(black_box(1)))));

    let breaker = CircuitBreakerLayer::builder()
        .consecutive_failures(5)
        .wait_duration_in_open(Duration::from_secs(30))
        .build()
        .expect("tower-resilience config");
    let mut tw = ServiceBuilder::new()
        .timeout(LIMIT)
        .concurrency_limit(POOL)
        .layer(breaker)
        .service(service_fn(ok_inner));
    g.bench_function("tower", |b| b.iter(|| tower_once(&mut tw, black_box(1))));

    g.finish();
}

criterion_group! {
    name = group;
    config = kompoz_benches::criterion();
    targets = benches
}
criterion_main!(group);
