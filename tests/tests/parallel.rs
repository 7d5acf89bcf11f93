//! `parallel_and` / `parallel_or` on every runtime: kompoz's scenarios.
//!
//! On the real-time runtimes a test only ever waits for the short side
//! (children that would take 60 s are the ones that must be dropped), and
//! concurrency is shown by what the children see, not by timing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use kompoz_core::{Clock, ClockExt, Combinator, Registry, parallel_and, parallel_or};
use kompoz_tests::support::ms;

/// Counters shared by the children of one test.
#[derive(Default)]
struct Seen {
    started: AtomicU32,
    finished: AtomicU32,
    /// The sum over finished children of `started` at their finish.
    started_at_finish: AtomicU32,
}

/// A child that sleeps `delay`, appends `tag` to the context and returns
/// `verdict`.
struct Child<K> {
    clock: K,
    delay: Duration,
    verdict: bool,
    tag: u32,
    seen: Arc<Seen>,
}

fn child<K: Clock>(
    clock: &K,
    seen: &Arc<Seen>,
    delay: Duration,
    verdict: bool,
    tag: u32,
) -> Child<K> {
    Child {
        clock: clock.clone(),
        delay,
        verdict,
        tag,
        seen: Arc::clone(seen),
    }
}

impl<K: Clock> Combinator<Vec<u32>> for Child<K> {
    async fn run(&self, mut ctx: Vec<u32>) -> (bool, Vec<u32>) {
        self.seen.started.fetch_add(1, Ordering::SeqCst);
        self.clock.sleep(self.delay).await;
        let started = self.seen.started.load(Ordering::SeqCst);
        self.seen
            .started_at_finish
            .fetch_add(started, Ordering::SeqCst);
        self.seen.finished.fetch_add(1, Ordering::SeqCst);
        ctx.push(self.tag);
        (self.verdict, ctx)
    }
}

async fn first_success_wins<K: Clock>(clock: K) {
    let seen = Arc::<Seen>::default();
    let any = parallel_or([
        child(&clock, &seen, ms(1), false, 1),
        child(&clock, &seen, ms(20), true, 2),
        child(&clock, &seen, Duration::from_secs(60), true, 3),
    ])
    .unwrap();
    assert_eq!(
        any.run(vec![0]).await,
        (true, vec![0, 2]),
        "the winner's context"
    );
    assert_eq!(
        seen.finished.load(Ordering::SeqCst),
        2,
        "the 60 s child was dropped"
    );
}

async fn all_fail_returns_false_and_the_original_context<K: Clock>(clock: K) {
    let seen = Arc::<Seen>::default();
    let any =
        parallel_or((1..=3).map(|t| child(&clock, &seen, ms(u64::from(t)), false, t))).unwrap();
    assert_eq!(any.run(vec![9]).await, (false, vec![9]));
    assert_eq!(seen.finished.load(Ordering::SeqCst), 3);

    let all =
        parallel_and((1..=3).map(|t| child(&clock, &seen, ms(u64::from(t)), true, t))).unwrap();
    assert_eq!(
        all.run(vec![9]).await,
        (true, vec![9]),
        "parallel_and hands back the original"
    );
}

async fn children_run_concurrently<K: Clock>(clock: K) {
    // Three 100 ms children: every one is already started when the first
    // finishes. Run one after the other, the first would see only itself.
    let seen = Arc::<Seen>::default();
    let all = parallel_and((1..=3).map(|t| child(&clock, &seen, ms(100), true, t))).unwrap();
    assert!(all.run(vec![]).await.0);
    assert_eq!(seen.finished.load(Ordering::SeqCst), 3);
    assert_eq!(
        seen.started_at_finish.load(Ordering::SeqCst),
        9,
        "each saw all 3 started"
    );
}

async fn fail_fast_drops_the_slow_child<K: Clock>(clock: K) {
    let seen = Arc::<Seen>::default();
    let all = parallel_and([
        child(&clock, &seen, ms(5), false, 1),
        child(&clock, &seen, Duration::from_secs(60), true, 2),
    ])
    .unwrap()
    .fail_fast(true);
    assert_eq!(all.run(vec![]).await, (false, vec![]));
    assert_eq!(seen.started.load(Ordering::SeqCst), 2);
    assert_eq!(
        seen.finished.load(Ordering::SeqCst),
        1,
        "the slow child never completes"
    );
}

async fn without_fail_fast_every_child_completes<K: Clock>(clock: K) {
    let seen = Arc::<Seen>::default();
    let all = parallel_and([
        child(&clock, &seen, ms(1), false, 1),
        child(&clock, &seen, ms(20), true, 2),
    ])
    .unwrap();
    assert_eq!(all.run(vec![]).await, (false, vec![]));
    assert_eq!(seen.finished.load(Ordering::SeqCst), 2);
}

async fn without_cancel_on_success_every_child_completes<K: Clock>(clock: K) {
    let seen = Arc::<Seen>::default();
    let any = parallel_or([
        child(&clock, &seen, ms(1), true, 1),
        child(&clock, &seen, ms(20), false, 2),
    ])
    .unwrap()
    .cancel_on_success(false);
    assert_eq!(any.run(vec![]).await, (true, vec![1]));
    assert_eq!(seen.finished.load(Ordering::SeqCst), 2);
}

async fn a_single_child_works<K: Clock>(clock: K) {
    let seen = Arc::<Seen>::default();
    for verdict in [true, false] {
        let all = parallel_and([child(&clock, &seen, ms(1), verdict, 1)]).unwrap();
        assert_eq!(all.run(vec![]).await, (verdict, vec![]));
        let any = parallel_or([child(&clock, &seen, ms(1), verdict, 1)]).unwrap();
        let expected = if verdict { vec![1] } else { vec![] };
        assert_eq!(any.run(vec![]).await, (verdict, expected));
    }
}

async fn an_empty_child_list_is_a_configuration_error<K: Clock>(_clock: K) {
    let err = parallel_and(Vec::<Child<K>>::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid `children`: [] (expected at least one child)"
    );
    assert_eq!(
        parallel_or(Vec::<Child<K>>::new()).unwrap_err().parameter(),
        "children"
    );
}

/// Counts the calls inside at once, and the peak.
#[derive(Default)]
struct Inside {
    now: AtomicUsize,
    peak: AtomicUsize,
    calls: AtomicUsize,
}

struct Busy<K> {
    clock: K,
    inside: Arc<Inside>,
}

impl<K: Clock> Combinator<u32> for Busy<K> {
    async fn run(&self, ctx: u32) -> (bool, u32) {
        let n = self.inside.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.inside.peak.fetch_max(n, Ordering::SeqCst);
        self.clock.sleep(ms(10)).await;
        self.inside.now.fetch_sub(1, Ordering::SeqCst);
        self.inside.calls.fetch_add(1, Ordering::SeqCst);
        (true, ctx)
    }
}

async fn limiters_named_alike_inside_parallel_and_share_their_capacity<K: Clock>(clock: K) {
    let registry = Registry::new();
    let inside = Arc::<Inside>::default();
    let children = (0..6).map(|_| {
        let busy = Busy {
            clock: clock.clone(),
            inside: Arc::clone(&inside),
        };
        clock
            .limited_named_in(busy, 2, "shared_pool", &registry)
            .unwrap()
    });
    let all = parallel_and(children.collect::<Vec<_>>()).unwrap();
    assert_eq!(all.run(1).await, (true, 1));
    assert_eq!(inside.calls.load(Ordering::SeqCst), 6);
    assert_eq!(
        inside.peak.load(Ordering::SeqCst),
        2,
        "six limiters named alike never let more than 2 in at once"
    );
}

kompoz_tests::cross_runtime!(
    first_success_wins,
    all_fail_returns_false_and_the_original_context,
    children_run_concurrently,
    fail_fast_drops_the_slow_child,
    without_fail_fast_every_child_completes,
    without_cancel_on_success_every_child_completes,
    a_single_child_works,
    an_empty_child_list_is_a_configuration_error,
    limiters_named_alike_inside_parallel_and_share_their_capacity,
);

/// Under paused time the concurrency is visible on the clock: three 100 ms
/// children take 100 ms, not 300.
#[tokio::test(start_paused = true)]
async fn three_100ms_children_take_100ms_of_clock_time() {
    let clock = kompoz_tokio::TokioClock::new();
    let seen = Arc::<Seen>::default();
    let start = tokio::time::Instant::now();
    let all = parallel_and((1..=3).map(|t| child(&clock, &seen, ms(100), true, t))).unwrap();
    assert!(all.run(vec![]).await.0);
    assert_eq!(start.elapsed(), ms(100));
    let any = parallel_or((1..=3).map(|t| child(&clock, &seen, ms(100), t == 3, t))).unwrap();
    assert!(any.run(vec![]).await.0);
    assert_eq!(start.elapsed(), ms(200));
}

/// A parallel combinator over `Send` children can be spawned on a
/// multi-threaded runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_combinators_spawn_on_a_multi_thread_runtime() {
    let clock = kompoz_tokio::TokioClock::new();
    let seen = Arc::<Seen>::default();
    let all =
        Arc::new(parallel_and((1..=3).map(|t| child(&clock, &seen, ms(1), true, t))).unwrap());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let all = Arc::clone(&all);
            tokio::spawn(async move { all.run(vec![i]).await })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.await.unwrap(), (true, vec![i as u32]));
    }
    assert_eq!(seen.finished.load(Ordering::SeqCst), 12);
}
