//! Concurrency limit under contention on a runtime: 64 tasks on a two-worker
//! tokio runtime through 4 permits, each call awaited and each caller holding
//! its permit across one yield, so most acquisitions wait and are woken by a
//! release through the runtime's scheduler. kompoz's limiter (and its
//! semaphore used directly) against tokio's and async-lock's semaphores.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use kompoz_benches::sink;
use kompoz_tokio::Combinator;

/// Tasks in the runtime group: many more than permits, so most acquisitions
/// wait in the queue and are woken by a release.
const TASKS: u64 = 64;
/// Permits in the runtime group.
const RUNTIME_POOL: usize = 4;

/// Runs `iters` acquisitions split over [`TASKS`] tasks spawned on `rt`,
/// each made by `call`, and returns the wall time scaled to `iters` calls.
fn tasks_on<S, F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, state: &S, call: F) -> Duration
where
    S: Clone + Send + 'static,
    F: Fn(S) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let per_task = iters.div_ceil(TASKS);
    let elapsed = rt.block_on(async {
        let began = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let state = state.clone();
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        call(state.clone()).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("benchmark task panicked");
        }
        began.elapsed()
    });
    elapsed.mul_f64(iters as f64 / (per_task * TASKS) as f64)
}

/// The inner step of the runtime group: pending once (a yield to the
/// scheduler), so a permit is held across a suspension.
async fn yield_once(x: u64) -> bool {
    tokio::task::yield_now().await;
    x != 0
}

/// 64 tasks on a two-worker runtime through 4 permits, each holding its
/// permit across one yield: acquisitions wait, and releases wake them
/// through the runtime's scheduler.
fn contended_runtime(c: &mut Criterion) {
    let mut g = c.benchmark_group("limiter_contended_runtime");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime");

    let inner = Arc::new(kompoz_tokio::rule(async |x: &u64| yield_once(*x).await));
    g.bench_function("direct", |b| {
        b.iter_custom(|n| {
            tasks_on(&rt, n, &inner, |inner| async move {
                sink(inner.run(black_box(1)).await)
            })
        })
    });

    let kz = Arc::new(
        kompoz_tokio::limited(
            kompoz_tokio::rule(async |x: &u64| yield_once(*x).await),
            RUNTIME_POOL,
        )
        .expect("kompoz config"),
    );
    g.bench_function("kompoz", |b| {
        b.iter_custom(|n| {
            tasks_on(
                &rt,
                n,
                &kz,
                |kz| async move { sink(kz.run(black_box(1)).await) },
            )
        })
    });
    assert_eq!(
        kz.available(),
        RUNTIME_POOL,
        "kompoz must give every permit back"
    );

    let kz_sem = Arc::new(kompoz_tokio::Semaphore::new(RUNTIME_POOL).expect("kompoz config"));
    g.bench_function("kompoz (Semaphore)", |b| {
        b.iter_custom(|n| {
            tasks_on(&rt, n, &kz_sem, |sem| async move {
                let _permit = sem.acquire().await;
                sink(yield_once(black_box(1)).await)
            })
        })
    });

    let tokio_sem = Arc::new(tokio::sync::Semaphore::new(RUNTIME_POOL));
    g.bench_function("tokio", |b| {
        b.iter_custom(|n| {
            tasks_on(&rt, n, &tokio_sem, |sem| async move {
                let _permit = sem.acquire().await.expect("open semaphore");
                sink(yield_once(black_box(1)).await)
            })
        })
    });

    let lock_sem = Arc::new(async_lock::Semaphore::new(RUNTIME_POOL));
    g.bench_function("async-lock", |b| {
        b.iter_custom(|n| {
            tasks_on(&rt, n, &lock_sem, |sem| async move {
                let _guard = sem.acquire().await;
                sink(yield_once(black_box(1)).await)
            })
        })
    });

    g.finish();
}

criterion_group! {
    name = group;
    config = kompoz_benches::criterion();
    targets = contended_runtime
}
criterion_main!(group);
