//! `with_timeout`'s semantics on every runtime, and the reference guide's
//! timeout examples as written, on the runtime crates.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use kompoz_core::{Clock, ClockExt, Combinator, rule, timeout::TimeoutOutcome, transform};

/// Pending once (waking itself), then ready: a call that really suspends
/// without depending on time.
fn yield_now() -> impl Future<Output = ()> {
    let mut yielded = false;
    std::future::poll_fn(move |cx: &mut Context<'_>| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
}

#[derive(Clone, Debug, PartialEq)]
struct Ctx {
    id: u32,
    timed_out: bool,
    answer: Option<bool>,
}

impl Ctx {
    fn new(id: u32) -> Self {
        Ctx {
            id,
            timed_out: false,
            answer: None,
        }
    }
}

/// An API whose answer takes `latency` on `clock`.
fn api_check<K: Clock>(clock: &K, latency: Duration) -> impl Combinator<Ctx> + use<K> {
    let clock = clock.clone();
    transform(async move |mut ctx: Ctx| {
        clock.sleep(latency).await;
        ctx.answer = Some(ctx.id > 0);
        ctx
    })
}

async fn a_call_that_finishes_in_time_returns_the_inner_result<K: Clock>(clock: K) {
    let check = clock
        .with_timeout(
            api_check(&clock, Duration::from_millis(1)),
            Duration::from_secs(60),
        )
        .unwrap();
    let (outcome, ctx) = check.run_with_outcome(Ctx::new(3)).await;
    assert_eq!(outcome, TimeoutOutcome::Completed(true));
    assert_eq!(ctx.answer, Some(true));
    assert_eq!(check.timeouts(), 0);
}

async fn a_slow_call_returns_false_with_its_starting_context<K: Clock>(clock: K) {
    let check = clock
        .with_timeout(
            api_check(&clock, Duration::from_secs(60)),
            Duration::from_millis(20),
        )
        .unwrap();
    let (ok, ctx) = check.run(Ctx::new(3)).await;
    assert!(!ok);
    assert_eq!(ctx, Ctx::new(3), "the context the call started with");
    assert_eq!(check.timeouts(), 1);
    let (outcome, _) = check.run_with_outcome(Ctx::new(4)).await;
    assert!(outcome.is_timed_out());
    assert_eq!(check.timeouts(), 2);
}

async fn on_timeout_transforms_the_returned_context<K: Clock>(clock: K) {
    fn handle_timeout(mut ctx: Ctx) -> Ctx {
        ctx.timed_out = true;
        ctx
    }
    let check = clock
        .with_timeout(
            api_check(&clock, Duration::from_secs(60)),
            Duration::from_millis(20),
        )
        .unwrap()
        .on_timeout(handle_timeout);
    let (ok, ctx) = check.run(Ctx::new(1)).await;
    assert!(!ok);
    assert!(ctx.timed_out);
    assert_eq!(ctx.answer, None);
}

async fn concurrent_calls_each_observe_their_own_outcome<K: Clock>(clock: K) {
    // Even ids answer after a yield, odd ids after a minute; one wrapper
    // serves them all at once.
    let c = clock.clone();
    let inner = transform(async move |mut ctx: Ctx| {
        if ctx.id % 2 == 1 {
            c.sleep(Duration::from_secs(60)).await;
        } else {
            yield_now().await;
        }
        ctx.answer = Some(true);
        ctx
    });
    let check = clock
        .with_timeout(inner, Duration::from_millis(20))
        .unwrap();
    let outcomes =
        futures::future::join_all((0..10).map(|id| check.run_with_outcome(Ctx::new(id)))).await;
    for (outcome, ctx) in outcomes {
        if ctx.id % 2 == 1 {
            assert_eq!(outcome, TimeoutOutcome::TimedOut, "{ctx:?}");
            assert_eq!(ctx.answer, None);
        } else {
            assert_eq!(outcome, TimeoutOutcome::Completed(true), "{ctx:?}");
            assert_eq!(ctx.answer, Some(true));
        }
    }
    assert_eq!(check.timeouts(), 5);
}

async fn a_timed_out_call_drops_the_inner_future_and_its_permit<K: Clock>(clock: K) {
    let dropped = Arc::new(AtomicBool::new(false));
    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let (c, d) = (clock.clone(), dropped.clone());
    let slow = rule(async move |_: &u32| {
        let _alive = Flag(d.clone());
        c.sleep(Duration::from_secs(60)).await;
        true
    });
    let limited = clock.limited(slow, 1).unwrap();
    let check = clock
        .with_timeout(&limited, Duration::from_millis(20))
        .unwrap();
    assert_eq!(check.run(1).await, (false, 1));
    assert!(dropped.load(Ordering::SeqCst));
    assert_eq!(limited.available(), 1);
    assert_eq!(limited.in_flight(), 0);
}

async fn a_zero_timeout_is_a_configuration_error<K: Clock>(clock: K) {
    let err = clock
        .with_timeout(rule(async |_: &u32| true), Duration::ZERO)
        .unwrap_err();
    assert_eq!(err.parameter(), "timeout");
    assert!(err.to_string().contains("0ns"), "{err}");
}

async fn timeouts_compose_with_the_algebra<K: Clock>(clock: K) {
    let fallback_runs = Arc::new(AtomicUsize::new(0));
    let runs = fallback_runs.clone();
    let check = clock
        .with_timeout(
            api_check(&clock, Duration::from_secs(60)),
            Duration::from_millis(20),
        )
        .unwrap()
        | transform(async move |mut ctx: Ctx| {
            runs.fetch_add(1, Ordering::SeqCst);
            ctx.answer = Some(false);
            ctx
        });
    let (ok, ctx) = check.run(Ctx::new(1)).await;
    assert!(ok);
    assert_eq!(ctx.answer, Some(false));
    assert_eq!(fallback_runs.load(Ordering::SeqCst), 1);
}

kompoz_tests::cross_runtime!(
    a_call_that_finishes_in_time_returns_the_inner_result,
    a_slow_call_returns_false_with_its_starting_context,
    on_timeout_transforms_the_returned_context,
    concurrent_calls_each_observe_their_own_outcome,
    a_timed_out_call_drops_the_inner_future_and_its_permit,
    a_zero_timeout_is_a_configuration_error,
    timeouts_compose_with_the_algebra,
);

/// The reference guide's Timeout section, line for line, with each runtime
/// crate's `with_timeout`. `$sleep` is the runtime's sleep (the fake API).
macro_rules! reference_examples {
    ($krate:ident, $sleep:path) => {
        async fn reference_timeout_examples() -> Result<(), kompoz_core::ConfigError> {
            use $krate::{Combinator, rule, with_timeout};

            #[derive(Clone, Debug)]
            struct Ctx {
                id: u32,
                timed_out: bool,
            }
            struct Api;
            impl Api {
                async fn check(&self, id: u32) -> bool {
                    $sleep(Duration::from_secs(60)).await;
                    id > 0
                }
            }
            let api = Api;
            let ctx = Ctx {
                id: 7,
                timed_out: false,
            };

            let slow_api_check = rule(async |ctx: &Ctx| api.check(ctx.id).await);

            // Timeout after 5 seconds (20 ms here: real time on some runtimes)
            let result = with_timeout(&slow_api_check, Duration::from_millis(20))?
                .run(ctx.clone())
                .await;
            assert!(!result.0);

            // With custom timeout handler
            fn handle_timeout(mut ctx: Ctx) -> Ctx {
                ctx.timed_out = true;
                ctx
            }

            let result = with_timeout(&slow_api_check, Duration::from_millis(20))?
                .on_timeout(handle_timeout)
                .run(ctx)
                .await;
            assert!(!result.0 && result.1.timed_out);

            let err = with_timeout(&slow_api_check, Duration::ZERO).unwrap_err();
            assert_eq!(err.parameter(), "timeout");
            Ok(())
        }
    };
}

mod reference_on_tokio {
    use super::*;
    reference_examples!(kompoz_tokio, tokio::time::sleep);

    #[tokio::test(start_paused = true)]
    async fn reference_examples_translate_line_for_line() {
        reference_timeout_examples().await.unwrap();
    }
}

mod reference_on_async_std {
    use super::*;
    reference_examples!(kompoz_async_std, ::async_std::task::sleep);

    #[test]
    fn reference_examples_translate_line_for_line() {
        ::async_std::task::block_on(reference_timeout_examples()).unwrap();
    }
}

mod reference_on_smol {
    use super::*;
    async fn sleep(d: Duration) {
        ::smol::Timer::after(d).await;
    }
    reference_examples!(kompoz_smol, sleep);

    #[test]
    fn reference_examples_translate_line_for_line() {
        ::smol::block_on(reference_timeout_examples()).unwrap();
    }
}

mod reference_on_futures_timer {
    use super::*;
    async fn sleep(d: Duration) {
        kompoz_core::FuturesTimerClock.sleep(d).await;
    }
    mod krate {
        pub(super) use kompoz_core::futures_timer::*;
        pub(super) use kompoz_core::{Combinator, rule};
    }
    use krate as kompoz_futures_timer;
    reference_examples!(kompoz_futures_timer, sleep);

    #[test]
    fn reference_examples_translate_line_for_line() {
        futures::executor::block_on(reference_timeout_examples()).unwrap();
    }
}

/// A timeout over a future that is pending forever still resolves: the
/// `Pin` juggling in the wrapper is exercised with a `!Unpin` inner future.
#[tokio::test(start_paused = true)]
async fn a_never_ready_inner_call_times_out() {
    let never = rule(async |_: &u32| std::future::pending::<bool>().await);
    let check = kompoz_tokio::with_timeout(never, Duration::from_secs(5)).unwrap();
    let start = tokio::time::Instant::now();
    assert_eq!(check.run(1).await, (false, 1));
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    let boxed: Pin<Box<dyn Future<Output = (bool, u32)> + Send + '_>> = Box::pin(check.run(2));
    assert_eq!(boxed.await, (false, 2));
}

/// A timeout over a shared limiter is `Send + Sync` and spawns from an `Arc`
/// on a multi-thread runtime; every spawned call times out on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_over_a_limiter_spawns_across_threads() {
    let slow = rule(async |_: &u32| {
        tokio::time::sleep(Duration::from_secs(60)).await;
        true
    });
    let registry = kompoz_core::Registry::new();
    let limited = kompoz_tokio::limited_named_in(slow, 2, "spawned", &registry).unwrap();
    let check = Arc::new(kompoz_tokio::with_timeout(limited, Duration::from_millis(20)).unwrap());
    let calls: Vec<_> = (0..8)
        .map(|n| {
            let check = Arc::clone(&check);
            tokio::spawn(async move { check.run_with_outcome(n).await })
        })
        .collect();
    for (n, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap(), (TimeoutOutcome::TimedOut, n as u32));
    }
    assert_eq!(check.timeouts(), 8);
    assert_eq!(check.get_ref().available(), 2);
    assert_eq!(check.get_ref().waiting(), 0);
}
