//! The shared limit, breaker and pool as layers of the call API, in a
//! stack with the local retry and timeout, against a real `redis-server`:
//! typed refusals, refusals not retried, classification, a panic counted
//! as a failure, and calls dropped at every await point leaking nothing.

mod support;

use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::Poll;
use std::time::Duration;

use futures::FutureExt;
use kompoz_core::call::{Error, Layer, Operation};
use kompoz_core::{CircuitState, Combinator, RateLimit, rule};
use kompoz_redis::test_server::RedisServer;
use kompoz_redis::{Redis, SharedBreaker, SharedPolicyExt, SharedPool, SharedRateLimiter};
use kompoz_tokio::policy;
use redis::aio::MultiplexedConnection;
use support::eventually;

/// A connection whose commands may take a second on a loaded machine: a
/// command timing out would send the handles to their fallback, which
/// these tests are not about.
async fn connect(server: &RedisServer) -> Redis {
    Redis::builder(&server.url())
        .command_timeout(Duration::from_secs(1))
        .connect()
        .await
        .unwrap()
}

/// A connection of the test's own, to read the shared state.
async fn raw(server: &RedisServer) -> MultiplexedConnection {
    let client = redis::Client::open(server.url()).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

async fn hget(conn: &mut MultiplexedConnection, key: &str, field: &str) -> Option<u64> {
    let value: Option<String> = redis::cmd("HGET")
        .arg(key)
        .arg(field)
        .query_async(conn)
        .await
        .unwrap();
    value.map(|v| v.parse().unwrap())
}

async fn leases(conn: &mut MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("ZCARD")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap()
}

/// Counts the attempts an operation starts.
#[derive(Clone, Default)]
struct Started(Arc<AtomicU32>);

impl Started {
    fn op<T: Clone>(
        &self,
        result: Result<T, &'static str>,
    ) -> impl FnMut() -> std::future::Ready<Result<T, &'static str>> {
        let started = self.clone();
        move || {
            started.0.fetch_add(1, Ordering::SeqCst);
            std::future::ready(result.clone())
        }
    }

    fn get(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn a_stack_refuses_with_each_shared_layers_typed_error() {
    let server = support::server();
    let redis = connect(&server).await;
    let rate = SharedRateLimiter::builder(
        &redis,
        "stack:rate",
        RateLimit::with_burst(1, Duration::from_secs(3600), 2).unwrap(),
    )
    .reject_when_full()
    .build()
    .await
    .unwrap();
    let breaker = SharedBreaker::builder(&redis, "stack:breaker")
        .failure_threshold(1)
        .recovery_timeout(Duration::from_secs(3600))
        .build()
        .await
        .unwrap();
    let pool = SharedPool::builder(&redis, "stack:pool", 1)
        .reject_when_full()
        .build()
        .await
        .unwrap();
    let policy = policy()
        .shared_limit(&pool)
        .shared_rate_limit(&rate)
        .retry(3)
        .unwrap()
        .shared_breaker(&breaker)
        .timeout(Duration::from_millis(50))
        .unwrap();
    let started = Started::default();

    // Through every layer: the first of the two rate slots.
    assert_eq!(policy.call(started.op(Ok(1))).await.unwrap(), 1);

    // The fleet's only lease is held elsewhere: the pool refuses, before
    // the rate limit is asked.
    let lease = pool.acquire().await.unwrap();
    let full = policy.call(started.op(Ok(2))).await;
    assert!(matches!(full, Err(Error::PoolFull(_))), "{full:?}");
    drop(lease);
    eventually("the lease comes back", async || {
        pool.call(|| async { Ok::<_, ()>(()) }).await.is_ok()
    })
    .await;

    // An attempt that times out is a failure of the breaker (threshold 1):
    // the retry's second attempt is refused by the open circuit, and that
    // refusal is not retried.
    let before = started.get();
    let open = policy
        .call(|| {
            started.0.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<Result<(), &str>>()
        })
        .await;
    match open {
        Err(Error::CircuitOpen(refused)) => assert_eq!(refused.state(), CircuitState::Open),
        other => panic!("expected CircuitOpen, got {other:?}"),
    }
    assert_eq!(started.get() - before, 1, "the refusal was retried");
    assert_eq!(breaker.state(), CircuitState::Open);
    assert_eq!(breaker.stats().rejected, 1);

    // Two rate slots spent: the limit refuses, with when to come back.
    let before = started.get();
    let limited = policy.call(started.op(Ok(3))).await;
    match limited {
        Err(Error::RateLimited(refused)) => {
            assert!(refused.retry_at() > kompoz_core::Clock::now(&kompoz_tokio::TokioClock));
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(started.get(), before);
}

#[tokio::test]
async fn a_retry_does_not_retry_a_shared_refusal_by_default() {
    let server = support::server();
    let redis = connect(&server).await;
    let started = Started::default();

    let rate = SharedRateLimiter::builder(&redis, "retry:rate", RateLimit::per_minute(1).unwrap())
        .reject_when_full()
        .build()
        .await
        .unwrap();
    let limited = policy().retry(5).unwrap().shared_rate_limit(&rate);
    assert!(limited.call(started.op(Ok(()))).await.is_ok());
    let refused = limited.call(started.op(Ok(()))).await;
    assert!(matches!(refused, Err(Error::RateLimited(_))), "{refused:?}");
    assert_eq!(rate.stats().rejected, 1, "the rate refusal was retried");

    let pool = SharedPool::builder(&redis, "retry:pool", 1)
        .reject_when_full()
        .build()
        .await
        .unwrap();
    let _lease = pool.acquire().await.unwrap();
    let pooled = policy().retry(5).unwrap().shared_limit(&pool);
    let refused = pooled.call(started.op(Ok(()))).await;
    assert!(matches!(refused, Err(Error::PoolFull(_))), "{refused:?}");
    assert_eq!(pool.stats().rejected, 1, "the pool refusal was retried");

    let breaker = SharedBreaker::builder(&redis, "retry:breaker")
        .failure_threshold(1)
        .recovery_timeout(Duration::from_secs(3600))
        .build()
        .await
        .unwrap();
    let _ = breaker.call(|| async { Err::<(), _>("down") }).await;
    let guarded = policy().retry(5).unwrap().shared_breaker(&breaker);
    let refused = guarded.call(started.op(Ok(()))).await;
    assert!(matches!(refused, Err(Error::CircuitOpen(_))), "{refused:?}");
    assert_eq!(
        breaker.stats().rejected,
        1,
        "the breaker refusal was retried"
    );

    assert_eq!(started.get(), 1, "only the first admitted call ran");
}

#[derive(Debug)]
enum DbError {
    Unavailable,
    Conflict,
}

#[tokio::test]
async fn the_shared_breaker_layer_classifies_as_the_local_one() {
    let server = support::server();
    let redis = connect(&server).await;
    let breaker = SharedBreaker::builder(&redis, "classify")
        .failure_threshold(2)
        .build()
        .await
        .unwrap();
    let policy = policy().layer(
        breaker
            .layer()
            .failure_if_err(|e: &DbError| matches!(e, DbError::Unavailable))
            .failure_if_ok(|body: &&str| body.is_empty()),
    );

    // Conflicts are the caller's problem: not failures.
    for _ in 0..3 {
        let out = policy
            .call(|| async { Err::<&str, _>(DbError::Conflict) })
            .await;
        assert!(matches!(out, Err(Error::Inner(DbError::Conflict))));
    }
    assert_eq!(breaker.state(), CircuitState::Closed);
    // An empty body is a failure, and still returned.
    assert_eq!(
        policy
            .call(|| async { Ok::<_, DbError>("") })
            .await
            .unwrap(),
        ""
    );
    assert_eq!(breaker.state(), CircuitState::Closed);
    let down = policy
        .call(|| async { Err::<&str, _>(DbError::Unavailable) })
        .await;
    assert!(matches!(down, Err(Error::Inner(DbError::Unavailable))));
    // Two failures in a row: the reporting replica sees the trip at once.
    assert_eq!(breaker.state(), CircuitState::Open);
    let refused = policy.call(|| async { Ok::<_, DbError>("body") }).await;
    assert!(matches!(refused, Err(Error::CircuitOpen(_))));
}

async fn tripped_by_a_panic(breaker: &SharedBreaker, what: &str) {
    eventually(what, async || breaker.state() == CircuitState::Open).await;
}

#[tokio::test]
async fn a_panic_in_the_operation_is_a_failure() {
    let server = support::server();
    let redis = connect(&server).await;
    let breaker = async |key: &str| {
        SharedBreaker::builder(&redis, key)
            .failure_threshold(1)
            .recovery_timeout(Duration::from_millis(20))
            .build()
            .await
            .unwrap()
    };

    // `call`.
    let called = breaker("panic:call").await;
    let caught = AssertUnwindSafe(called.call(|| async {
        panic!("the operation panics");
        #[allow(unreachable_code)]
        Ok::<(), ()>(())
    }))
    .catch_unwind()
    .await;
    assert!(caught.is_err());
    tripped_by_a_panic(&called, "a panic in `call` opens the breaker").await;

    // The algebra's `guard`.
    let guarded = breaker("panic:guard").await;
    let combinator = guarded.guard(rule(async |_: &()| -> bool { panic!("the rule panics") }));
    assert!(
        AssertUnwindSafe(combinator.run(()))
            .catch_unwind()
            .await
            .is_err()
    );
    tripped_by_a_panic(&guarded, "a panic in `guard` opens the breaker").await;

    // The layer in a stack, with a timeout inside and a retry outside: the
    // panic unwinds through every layer.
    let layered = breaker("panic:layer").await;
    let policy = policy()
        .retry(3)
        .unwrap()
        .shared_breaker(&layered)
        .timeout(Duration::from_secs(1))
        .unwrap();
    let caught = AssertUnwindSafe(policy.call(|| async {
        tokio::task::yield_now().await;
        panic!("the operation panics after a yield");
        #[allow(unreachable_code)]
        Ok::<(), ()>(())
    }))
    .catch_unwind()
    .await;
    assert!(caught.is_err());
    tripped_by_a_panic(&layered, "a panic in a policy opens the breaker").await;

    // A half-open probe that panics is a failed probe (OPEN again, a new
    // generation), not a cancelled one (which would stay HALF_OPEN).
    let probe = || async {
        loop {
            match layered.acquire().await {
                Ok(permit) => {
                    assert!(permit.is_probe());
                    return permit;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    };
    drop(probe().await); // a cancelled probe: HALF_OPEN, its slot back
    let generation = layered.stats().generation;
    let mut raw = raw(&server).await;
    eventually("the cancelled probe's slot comes back", async || {
        hget(&mut raw, "panic:layer", "probes").await == Some(0)
    })
    .await;
    let caught = AssertUnwindSafe(policy.call(|| async {
        panic!("the probe panics");
        #[allow(unreachable_code)]
        Ok::<(), ()>(())
    }))
    .catch_unwind()
    .await;
    assert!(caught.is_err());
    eventually("the panicked probe reopens the breaker", async || {
        hget(&mut raw, "panic:layer", "state").await == Some(1)
            && hget(&mut raw, "panic:layer", "gen").await > Some(generation)
    })
    .await;
}

/// Waits until every command that the tasks of `redis`'s handles have
/// sent so far has run on the server: lets the spawned tasks run, then
/// sends one more command on the same connection (Redis runs one
/// connection's commands in order). Without it, a check after a drop
/// could read the state before a dropped call's grant reached the server.
async fn settle(redis: &Redis) {
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    SharedRateLimiter::builder(redis, "settle", RateLimit::per_second(1).unwrap())
        .build()
        .await
        .unwrap();
}

/// Polls `call` until it has returned `Pending` `pendings + 1` times, then
/// drops it; `Some` if it finished first.
async fn drop_after<F: Future>(pendings: usize, call: F) -> Option<F::Output> {
    let mut call = pin!(call);
    let mut seen = 0;
    poll_fn(|cx| match call.as_mut().poll(cx) {
        Poll::Ready(out) => Poll::Ready(Some(out)),
        Poll::Pending if seen == pendings => Poll::Ready(None),
        Poll::Pending => {
            seen += 1;
            Poll::Pending
        }
    })
    .await
}

/// An operation with an await point of its own.
fn yielding(
    started: &Started,
) -> impl FnMut() -> std::pin::Pin<Box<dyn Future<Output = Result<(), &'static str>> + Send>> {
    let started = started.clone();
    move || {
        started.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {
            tokio::task::yield_now().await;
            Ok(())
        })
    }
}

/// A layer of the test's own, marking that the layers outside it let the
/// call through.
struct Mark(Arc<AtomicBool>);

impl<T, E> Layer<T, E> for Mark {
    async fn call<O>(&self, mut op: O) -> Result<T, Error<E>>
    where
        O: Operation<Output = T, Error = E>,
    {
        self.0.store(true, Ordering::SeqCst);
        op.invoke().await
    }
}

const SWEEP_LIMIT: usize = 200;
const INTERVAL: Duration = Duration::from_millis(20);

/// A limiter whose next slot is `INTERVAL` away, and the TAT it holds.
async fn spent_rate(
    redis: &Redis,
    raw: &mut MultiplexedConnection,
    key: &str,
) -> (SharedRateLimiter, u64) {
    let rate =
        SharedRateLimiter::builder(redis, key, RateLimit::with_burst(1, INTERVAL, 1).unwrap())
            .build()
            .await
            .unwrap();
    rate.check().await.unwrap();
    let tat = hget(raw, key, "tat").await.unwrap();
    (rate, tat)
}

/// A breaker whose next call is a half-open probe (the only one), and its
/// generation while OPEN.
async fn half_open(
    redis: &Redis,
    raw: &mut MultiplexedConnection,
    key: &str,
) -> (SharedBreaker, u64) {
    let breaker = SharedBreaker::builder(redis, key)
        .failure_threshold(1)
        .recovery_timeout(Duration::from_millis(1))
        .build()
        .await
        .unwrap();
    let _ = breaker.call(|| async { Err::<(), _>("down") }).await;
    let generation = hget(raw, key, "gen").await.unwrap();
    tokio::time::sleep(Duration::from_millis(3)).await;
    (breaker, generation)
}

/// What a dropped call may leave: no probe slot taken, and no failure
/// counted (the breaker did not trip again).
async fn breaker_clean(raw: &mut MultiplexedConnection, key: &str, open_generation: u64) {
    eventually("the probe slot comes back", async || {
        hget(raw, key, "probes").await == Some(0)
    })
    .await;
    // OPEN in a later generation would be a failure reported; HALF_OPEN
    // (or CLOSED, by a success reported before the drop) is not.
    let generation = hget(raw, key, "gen").await.unwrap();
    let state = hget(raw, key, "state").await.unwrap();
    assert!(
        state != 1 || generation == open_generation,
        "{key}: a dropped call counted as a failure (state {state}, generation {generation})"
    );
}

/// Calls through a fresh stack for k = 0, 1, …, each call dropped after
/// it has returned `Pending` k + 1 times, until one finishes: `one` makes
/// the call with `drop_after(k, ..)`, checks what a dropped call left
/// behind, and says whether the call finished (after at least
/// `min_drops` drops, or it never waited where the sweep means it to).
async fn sweep(
    what: &str,
    min_drops: usize,
    mut one: impl AsyncFnMut(&Redis, &mut MultiplexedConnection, usize) -> bool,
) {
    let server = support::server();
    let redis = connect(&server).await;
    let mut raw = raw(&server).await;
    for k in 0..SWEEP_LIMIT {
        if one(&redis, &mut raw, k).await {
            assert!(k >= min_drops, "{what}: the call never waited");
            eprintln!("{what}: finished after {k} drops");
            return;
        }
    }
    panic!("{what}: the call never finished");
}

#[tokio::test]
async fn a_rate_layer_call_dropped_anywhere_gives_its_slot_back() {
    sweep("rate", 2, async |redis, raw, k| {
        let key = format!("sweep:rate:{k}");
        let (rate, tat) = spent_rate(redis, raw, &key).await;
        let started = Started::default();
        let stack = policy().shared_rate_limit(&rate);
        if let Some(out) = drop_after(k, stack.call(yielding(&started))).await {
            out.unwrap();
            return true;
        }
        settle(redis).await;
        if started.get() == 0 {
            eventually("the slot is given back", async || {
                hget(raw, &key, "tat").await == Some(tat)
            })
            .await;
        }
        false
    })
    .await;
}

#[tokio::test]
async fn a_pool_layer_call_dropped_anywhere_gives_its_lease_back() {
    sweep("pool", 2, async |redis, raw, k| {
        let key = format!("sweep:pool:{k}");
        let pool = SharedPool::builder(redis, &key, 1)
            .poll_every(Duration::from_millis(2))
            .build()
            .await
            .unwrap();
        // The lease is taken: the call waits for it.
        let holder = pool.acquire().await.unwrap();
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            drop(holder);
        });
        let started = Started::default();
        let stack = policy().shared_limit(&pool);
        let done = drop_after(k, stack.call(yielding(&started))).await;
        release.await.unwrap();
        settle(redis).await;
        eventually("every lease comes back", async || {
            leases(raw, &key).await == 0
        })
        .await;
        done.map(Result::unwrap).is_some()
    })
    .await;
}

#[tokio::test]
async fn a_breaker_layer_call_dropped_anywhere_gives_its_probe_slot_back() {
    sweep("breaker", 1, async |redis, raw, k| {
        let key = format!("sweep:breaker:{k}");
        let (breaker, open_generation) = half_open(redis, raw, &key).await;
        let started = Started::default();
        let stack = policy().shared_breaker(&breaker);
        if let Some(out) = drop_after(k, stack.call(yielding(&started))).await {
            out.unwrap();
            assert_eq!(breaker.state(), CircuitState::Closed, "the probe closed it");
            return true;
        }
        settle(redis).await;
        breaker_clean(raw, &key, open_generation).await;
        false
    })
    .await;
}

/// The server's clock, in µs.
async fn server_now(conn: &mut MultiplexedConnection) -> u64 {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(conn).await.unwrap();
    secs * 1_000_000 + micros
}

#[tokio::test]
async fn a_full_stack_call_dropped_anywhere_leaks_nothing() {
    let interval_us = u64::try_from(INTERVAL.as_micros()).unwrap();
    sweep("stack", 3, async |redis, raw, k| {
        let pool_key = format!("sweep:stack:{k}:pool");
        let rate_key = format!("sweep:stack:{k}:rate");
        let breaker_key = format!("sweep:stack:{k}:breaker");
        let pool = SharedPool::builder(redis, &pool_key, 1)
            .build()
            .await
            .unwrap();
        let (rate, tat) = spent_rate(redis, raw, &rate_key).await;
        let (breaker, open_generation) = half_open(redis, raw, &breaker_key).await;
        // A layer of the test's own marks that the rate limit admitted it.
        let admitted = Arc::new(AtomicBool::new(false));
        let stack = policy()
            .shared_limit(&pool)
            .shared_rate_limit(&rate)
            .layer(Mark(Arc::clone(&admitted)))
            .retry(3)
            .unwrap()
            .shared_breaker(&breaker)
            .timeout(Duration::from_secs(5))
            .unwrap();
        let started = Started::default();
        let done = drop_after(k, stack.call(yielding(&started))).await;
        settle(redis).await;
        eventually("every lease comes back", async || {
            leases(raw, &pool_key).await == 0
        })
        .await;
        breaker_clean(raw, &breaker_key, open_generation).await;
        if admitted.load(Ordering::SeqCst) {
            // Admitted: its one slot is spent (one: no later than a slot
            // taken now).
            let spent = hget(raw, &rate_key, "tat").await.unwrap();
            let bound = tat.max(server_now(raw).await) + interval_us;
            assert!(spent > tat && spent <= bound, "{spent} vs {tat}..{bound}");
        } else {
            eventually("the rate slot is given back", async || {
                hget(raw, &rate_key, "tat").await == Some(tat)
            })
            .await;
        }
        let Some(out) = done else {
            return false;
        };
        out.unwrap();
        assert_eq!(started.get(), 1);
        assert_eq!(breaker.state(), CircuitState::Closed);
        true
    })
    .await;
}
