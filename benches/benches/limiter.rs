//! Concurrency limit: an uncontended acquire + run + release on one thread,
//! and two threads contending for a single permit, kompoz against tokio's
//! `Semaphore`, async-lock's `Semaphore` and tower's `ConcurrencyLimit`.
//! (Tasks waiting on a runtime: `limiter_runtime.rs`.)

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use kompoz_benches::{poll_once, sink, spin_on, tower_once, tower_spin, two_threads};
use kompoz_tokio::{Combinator, Limited, TokioClock};
use tower::limit::ConcurrencyLimit;
use tower::service_fn;

/// Permits in the uncontended runs: a typical pool size, never exhausted by
/// one caller.
const POOL: usize = 10;

fn peer_inner(x: u64) -> std::future::Ready<Result<u64, ()>> {
    std::future::ready(Ok(x))
}

fn kompoz_inner() -> impl Combinator<u64> + Send + Sync {
    kompoz_tokio::rule(async |x: &u64| *x != 0)
}

fn kompoz_limited(permits: usize) -> Limited<impl Combinator<u64> + Send + Sync, TokioClock> {
    kompoz_tokio::limited(kompoz_inner(), permits).expect("kompoz config")
}

fn tower_limit(
    permits: usize,
) -> ConcurrencyLimit<impl tower::Service<u64, Response = u64, Error = ()> + Clone> {
    ConcurrencyLimit::new(service_fn(peer_inner), permits)
}

fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("limiter_uncontended");

    let inner = kompoz_inner();
    g.bench_function("direct", |b| b.iter(|| poll_once(inner.run(black_box(1)))));

    let kz = kompoz_limited(POOL);
    g.bench_function("kompoz", |b| b.iter(|| poll_once(kz.run(black_box(1)))));
    assert_eq!(kz.available(), POOL, "kompoz must give every permit back");

    let tokio_sem = tokio::sync::Semaphore::new(POOL);
    g.bench_function("tokio", |b| {
        b.iter(|| {
            poll_once(async {
                let _permit = tokio_sem.acquire().await.expect("open semaphore");
                peer_inner(black_box(1)).await
            })
        })
    });

    let lock_sem = async_lock::Semaphore::new(POOL);
    g.bench_function("async-lock", |b| {
        b.iter(|| {
            poll_once(async {
                let _guard = lock_sem.acquire().await;
                peer_inner(black_box(1)).await
            })
        })
    });

    let mut tw = tower_limit(POOL);
    g.bench_function("tower", |b| b.iter(|| tower_once(&mut tw, black_box(1))));

    g.finish();
}

/// Two threads, one permit: every call contends with the other thread's.
fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("limiter_contended_2threads");

    let kz = Arc::new(kompoz_limited(1));
    let mut states = [kz.clone(), kz.clone()];
    g.bench_function("kompoz", |b| {
        b.iter_custom(|n| two_threads(n, &mut states, |kz| sink(spin_on(kz.run(black_box(1))))))
    });
    assert_eq!(kz.available(), 1, "kompoz must give the permit back");

    let tokio_sem = Arc::new(tokio::sync::Semaphore::new(1));
    let mut states = [tokio_sem.clone(), tokio_sem.clone()];
    g.bench_function("tokio", |b| {
        b.iter_custom(|n| {
            two_threads(n, &mut states, |sem| {
                sink(spin_on(async {
                    let _permit = sem.acquire().await.expect("open semaphore");
                    peer_inner(black_box(1)).await
                }))
            })
        })
    });

    let lock_sem = Arc::new(async_lock::Semaphore::new(1));
    let mut states = [lock_sem.clone(), lock_sem.clone()];
    g.bench_function("async-lock", |b| {
        b.iter_custom(|n| {
            two_threads(n, &mut states, |sem| {
                sink(spin_on(async {
                    let _guard = sem.acquire().await;
                    peer_inner(black_box(1)).await
                }))
            })
        })
    });

    let tw = tower_limit(1);
    let mut states = [tw.clone(), tw.clone()];
    g.bench_function("tower", |b| {
        b.iter_custom(|n| two_threads(n, &mut states, |tw| sink(tower_spin(tw, black_box(1)))))
    });

    g.finish();
}

fn benches(c: &mut Criterion) {
    uncontended(c);
    contended(c);
}

criterion_group! {
    name = group;
    config = kompoz_benches::criterion();
    targets = benches
}
criterion_main!(group);
