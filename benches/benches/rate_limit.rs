//! Rate limit check: one admission decision, kompoz against governor's direct
//! (un-keyed) limiter. The quota is far above what the run can use, so every
//! check is admitted and the figure is the admitted path's cost.

use std::hint::black_box;
use std::num::NonZeroU32;

use criterion::{Criterion, criterion_group, criterion_main};
use governor::{Quota, RateLimiter};
use kompoz_benches::poll_once;
use kompoz_tokio::{Combinator, FastClock, RateLimit, RateLimited, TokioClock};

/// One permit per nanosecond: never exhausted by a single thread.
const PER_SECOND: u32 = 1_000_000_000;

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("rate_limit_check");

    let inner = kompoz_tokio::rule(async |x: &u64| *x != 0);
    g.bench_function("direct", |b| b.iter(|| poll_once(inner.run(black_box(1)))));

    // The same quota as governor's `per_second(n)`: n per second, bursts of n.
    let limit = RateLimit::per_second(PER_SECOND)
        .and_then(|l| l.burst(PER_SECOND))
        .expect("kompoz config");
    let kz = kompoz_tokio::rate_limited(inner, limit).reject_when_full();
    g.bench_function("kompoz", |b| b.iter(|| poll_once(kz.run(black_box(1)))));
    assert_eq!(kz.rejected(), 0, "kompoz must admit every call");

    // The same limiter reading the CPU's counter instead of the OS clock.
    let fast = RateLimited::new(inner, limit, FastClock::new(TokioClock)).reject_when_full();
    g.bench_function("kompoz (FastClock)", |b| {
        b.iter(|| poll_once(fast.run(black_box(1))))
    });
    assert_eq!(fast.rejected(), 0, "kompoz must admit every call");

    let gov = RateLimiter::direct(Quota::per_second(
        NonZeroU32::new(PER_SECOND).expect("non-zero"),
    ));
    g.bench_function("governor", |b| b.iter(|| black_box(&gov).check().is_ok()));
    assert!(gov.check().is_ok(), "governor must admit");

    g.finish();
}

criterion_group! {
    name = group;
    config = kompoz_benches::criterion();
    targets = benches
}
criterion_main!(group);
