//! The call API: limit ∘ retry ∘ breaker ∘ timeout around an operation
//! that is ready at once, through a `Policy` (`kompoz`) and through the
//! same stack in the algebra (`kompoz (algebra)`, the reference: the call
//! API must cost at most 10% more), against what users of the peers write:
//! failsafe's `call` with a tokio semaphore, backon's retry and
//! `tokio::time::timeout`; and tower + tower-resilience.

use std::hint::black_box;
use std::time::Duration;

use backon::{ConstantBuilder, Retryable};
use criterion::{Criterion, criterion_group, criterion_main};
use failsafe::futures::CircuitBreaker as _;
use kompoz_benches::{poll_once, tokio_runtime, tower_once};
use kompoz_tokio::Combinator;
use tower::{ServiceBuilder, service_fn};
use tower_resilience::circuitbreaker::CircuitBreakerLayer;

const LIMIT: Duration = Duration::from_secs(1);
const POOL: usize = 10;
const ATTEMPTS: u32 = 3;
const DELAY: Duration = Duration::from_millis(10);

fn ok_inner(x: u64) -> std::future::Ready<Result<u64, std::io::Error>> {
    std::future::ready(Ok(x))
}

/// The failsafe peer's error: the stack's failures told apart, as the
/// call API's `Error` does.
#[derive(Debug)]
#[allow(dead_code)] // the fields are read only through `Debug`
enum PeerError {
    Inner(std::io::Error),
    TimedOut,
    CircuitOpen,
}

/// tower's retry policy: up to `ATTEMPTS` attempts, on any error.
#[derive(Clone)]
struct Attempts(u32);

impl<E> tower::retry::Policy<u64, u64, E> for Attempts {
    type Future = tokio::time::Sleep;

    fn retry(&mut self, _: &mut u64, result: &mut Result<u64, E>) -> Option<Self::Future> {
        if result.is_ok() || self.0 + 1 >= ATTEMPTS {
            return None;
        }
        self.0 += 1;
        Some(tokio::time::sleep(DELAY))
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

fn benches(c: &mut Criterion) {
    let rt = tokio_runtime();
    let _in_runtime = rt.enter();
    let mut g = c.benchmark_group("call_api");

    g.bench_function("direct", |b| b.iter(|| poll_once(ok_inner(black_box(1)))));

    let breaker = kompoz_tokio::shared_breaker()
        .failure_threshold(5)
        .recovery_timeout(Duration::from_secs(30))
        .build()
        .expect("kompoz config");
    let policy = kompoz_tokio::policy()
        .limit_to(POOL)
        .expect("kompoz config")
        .retry(ATTEMPTS)
        .expect("kompoz config")
        .fixed(DELAY)
        .breaker(&breaker)
        .timeout(LIMIT)
        .expect("kompoz config");
    g.bench_function("kompoz", |b| {
        b.iter(|| {
            let x = black_box(1);
            poll_once(policy.call(|| ok_inner(x)))
        })
    });

    let inner = kompoz_tokio::rule(async |x: &u64| *x != 0);
    let timed = kompoz_tokio::with_timeout(inner, LIMIT).expect("kompoz config");
    let retried = kompoz_tokio::retry(breaker.guard(timed), ATTEMPTS)
        .expect("kompoz config")
        .fixed(DELAY);
    let algebra = kompoz_tokio::limited(retried, POOL).expect("kompoz config");
    g.bench_function("kompoz (algebra)", |b| {
        b.iter(|| poll_once(algebra.run(black_box(1))))
    });

    let fs = failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::consecutive_failures(
            5,
            failsafe::backoff::constant(Duration::from_secs(30)),
        ))
        .build();
    let pool = tokio::sync::Semaphore::new(POOL);
    let retry = ConstantBuilder::default()
        .with_delay(DELAY)
        .with_max_times(ATTEMPTS as usize - 1);
    g.bench_function("failsafe + backon", |b| {
        b.iter(|| {
            let x = black_box(1);
            poll_once(async {
                let _permit = pool.acquire().await.expect("never closed");
                let attempt = || async {
                    let timed = async {
                        match tokio::time::timeout(LIMIT, ok_inner(x)).await {
                            Ok(result) => result.map_err(PeerError::Inner),
                            Err(_) => Err(PeerError::TimedOut),
                        }
                    };
                    match fs.call(timed).await {
                        Ok(v) => Ok(v),
                        Err(failsafe::Error::Inner(e)) => Err(e),
                        Err(failsafe::Error::Rejected) => Err(PeerError::CircuitOpen),
                    }
                };
                attempt
                    .retry(retry)
                    .when(|e| !matches!(e, PeerError::CircuitOpen))
                    .await
            })
        })
    });

    let tr_breaker = CircuitBreakerLayer::builder()
        .consecutive_failures(5)
        .wait_duration_in_open(Duration::from_secs(30))
        .build()
        .expect("tower-resilience config");
    let mut tw = ServiceBuilder::new()
        .concurrency_limit(POOL)
        .retry(Attempts(0))
        .layer(tr_breaker)
        .timeout(LIMIT)
        .service(service_fn(ok_inner));
    g.bench_function("tower", |b| b.iter(|| tower_once(&mut tw, black_box(1))));

    g.finish();
    assert_eq!(breaker.stats().failure_count, 0);
}

criterion_group! {
    name = group;
    config = kompoz_benches::criterion();
    targets = benches
}
criterion_main!(group);
