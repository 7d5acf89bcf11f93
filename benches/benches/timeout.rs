//! Timeout on tokio around an inner future that is ready at once: kompoz's
//! `with_timeout` on `TokioClock` against `tokio::time::timeout` (and tower's
//! `Timeout` for reference). Each call is polled once inside a current-thread
//! runtime's context, so a timer is available to whoever wants one.
//!
//! The armed case (inner pending once) is in `timeout_armed.rs`: a binary of
//! its own, so that its code does not change how this one is compiled.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use kompoz_benches::{poll_once, tokio_runtime, tower_once};
use kompoz_tokio::Combinator;
use tower::service_fn;
use tower::timeout::Timeout;

const LIMIT: Duration = Duration::from_secs(1);

fn ok_inner(x: u64) -> std::future::Ready<Result<u64, std::convert::Infallible>> {
    std::future::ready(Ok(x))
}

fn benches(c: &mut Criterion) {
    let rt = tokio_runtime();
    let _in_runtime = rt.enter();
    let mut g = c.benchmark_group("timeout_ready");

    let inner = kompoz_tokio::rule(async |x: &u64| *x != 0);
    g.bench_function("direct", |b| b.iter(|| poll_once(inner.run(black_box(1)))));

    let kz = kompoz_tokio::with_timeout(inner, LIMIT).expect("kompoz config");
    g.bench_function("kompoz", |b| b.iter(|| poll_once(kz.run(black_box(1)))));

    g.bench_function("tokio", |b| {
        b.iter(|| poll_once(tokio::time::timeout(LIMIT, ok_inner(black_box(1)))))
    });

    let mut tw = Timeout::new(service_fn(ok_inner), LIMIT);
    g.bench_function("tower", |b| b.iter(|| tower_once(&mut tw, black_box(1))));

    g.finish();
}

criterion_group! {
    name = group;
    config = kompoz_benches::criterion();
    targets = benches
}
criterion_main!(group);
