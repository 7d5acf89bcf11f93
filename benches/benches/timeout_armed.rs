//! Timeout on tokio around an inner future that is pending once: each call
//! awaited in a current-thread runtime, so the timer is armed and then
//! disarmed. kompoz's `with_timeout` on `TokioClock` against
//! `tokio::time::timeout`; the figure of interest is the overhead over the
//! bare call (`direct`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use kompoz_benches::{sink, tokio_runtime};
use kompoz_tokio::Combinator;

const LIMIT: Duration = Duration::from_secs(1);

/// The inner step of the armed group: pending once (a yield to the
/// scheduler), so the timeout arms its timer and disarms it on completion.
async fn yield_once(x: u64) -> bool {
    tokio::task::yield_now().await;
    x != 0
}

/// Runs `iters` awaited calls made by `call` in `rt`; returns the wall time.
fn awaited<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, call: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    rt.block_on(async {
        let began = Instant::now();
        for _ in 0..iters {
            call().await;
        }
        began.elapsed()
    })
}

/// A timeout whose inner call is pending once: each call awaited in a
/// current-thread runtime, the timer armed and disarmed.
fn armed(c: &mut Criterion) {
    let rt = tokio_runtime();
    let mut g = c.benchmark_group("timeout_armed");

    let inner = kompoz_tokio::rule(async |x: &u64| yield_once(*x).await);
    g.bench_function("direct", |b| {
        b.iter_custom(|n| awaited(&rt, n, || async { sink(inner.run(black_box(1)).await) }))
    });

    let kz = kompoz_tokio::with_timeout(inner, LIMIT).expect("kompoz config");
    g.bench_function("kompoz", |b| {
        b.iter_custom(|n| awaited(&rt, n, || async { sink(kz.run(black_box(1)).await) }))
    });
    assert_eq!(kz.timeouts(), 0, "no call may time out");

    g.bench_function("tokio", |b| {
        b.iter_custom(|n| {
            awaited(&rt, n, || async {
                sink(tokio::time::timeout(LIMIT, yield_once(black_box(1))).await)
            })
        })
    });

    g.finish();
}

criterion_group! {
    name = group;
    config = kompoz_benches::criterion();
    targets = armed
}
criterion_main!(group);
