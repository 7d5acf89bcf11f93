//! `parallel_and` / `parallel_or` under `ManualClock`: kompoz's scenarios
//! with exact clock times.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Waker};
use std::time::Duration;

mod support;
use support::ms;

use kompoz_core::{
    BoxCombinator, Clock, Combinator, Instant, ManualClock, boxed, parallel_and, parallel_or,
};

/// A child that sleeps `delay`, then tags the context with `tag`, counts its
/// completion, and returns `verdict`.
struct Child {
    clock: ManualClock,
    delay: Duration,
    verdict: bool,
    tag: u32,
    done: Arc<AtomicU32>,
}

fn child(clock: &ManualClock, delay_ms: u64, verdict: bool, tag: u32) -> (Child, Arc<AtomicU32>) {
    let done = Arc::new(AtomicU32::new(0));
    let c = Child {
        clock: clock.clone(),
        delay: ms(delay_ms),
        verdict,
        tag,
        done: Arc::clone(&done),
    };
    (c, done)
}

impl Combinator<Vec<u32>> for Child {
    async fn run(&self, mut ctx: Vec<u32>) -> (bool, Vec<u32>) {
        self.clock.sleep(self.delay).await;
        self.done.fetch_add(1, Ordering::SeqCst);
        ctx.push(self.tag);
        (self.verdict, ctx)
    }
}

fn elapsed(clock: &ManualClock) -> Duration {
    clock.now().as_duration()
}

#[test]
fn children_run_concurrently() {
    let clock = ManualClock::new();
    let kids: Vec<_> = (1..=3).map(|t| child(&clock, 100, true, t)).collect();
    let dones: Vec<_> = kids.iter().map(|(_, d)| Arc::clone(d)).collect();
    let all = parallel_and(kids.into_iter().map(|(c, _)| c)).unwrap();
    assert_eq!(clock.block_on(all.run(vec![0])), (true, vec![0]));
    assert_eq!(
        elapsed(&clock),
        ms(100),
        "three 100 ms children take 100 ms, not 300"
    );
    assert!(dones.iter().all(|d| d.load(Ordering::SeqCst) == 1));

    let clock = ManualClock::new();
    let any = parallel_or((1..=3).map(|t| child(&clock, 100, t == 3, t).0)).unwrap();
    assert_eq!(clock.block_on(any.run(vec![0])), (true, vec![0, 3]));
    assert_eq!(elapsed(&clock), ms(100));
}

#[test]
fn parallel_and_returns_the_original_context() {
    let clock = ManualClock::new();
    let all = parallel_and([child(&clock, 10, true, 1).0, child(&clock, 20, true, 2).0]).unwrap();
    assert_eq!(clock.block_on(all.run(vec![7])), (true, vec![7]));
    let all = parallel_and([child(&clock, 10, true, 1).0, child(&clock, 20, false, 2).0]).unwrap();
    assert_eq!(clock.block_on(all.run(vec![7])), (false, vec![7]));
}

#[test]
fn fail_fast_drops_the_slow_child() {
    let clock = ManualClock::new();
    let (fast_fail, _) = child(&clock, 10, false, 1);
    let (slow, slow_done) = child(&clock, 1000, true, 2);
    let all = parallel_and([fast_fail, slow]).unwrap().fail_fast(true);
    assert_eq!(clock.block_on(all.run(vec![])), (false, vec![]));
    assert_eq!(elapsed(&clock), ms(10), "returns at the failure");
    assert_eq!(clock.pending_sleeps(), 0, "the slow child's sleep is gone");
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        slow_done.load(Ordering::SeqCst),
        0,
        "the slow child never completes"
    );
}

#[test]
fn without_fail_fast_every_child_completes() {
    let clock = ManualClock::new();
    let (fast_fail, _) = child(&clock, 10, false, 1);
    let (slow, slow_done) = child(&clock, 1000, true, 2);
    let all = parallel_and([fast_fail, slow]).unwrap();
    assert_eq!(clock.block_on(all.run(vec![])), (false, vec![]));
    assert_eq!(slow_done.load(Ordering::SeqCst), 1);
    assert_eq!(elapsed(&clock), ms(1000));
}

#[test]
fn first_success_wins_and_the_others_are_cancelled() {
    let clock = ManualClock::new();
    let (fail_first, fail_done) = child(&clock, 10, false, 1);
    let (win, _) = child(&clock, 50, true, 2);
    let (late, late_done) = child(&clock, 500, true, 3);
    let any = parallel_or([fail_first, win, late]).unwrap();
    assert_eq!(
        clock.block_on(any.run(vec![0])),
        (true, vec![0, 2]),
        "the winner's context"
    );
    assert_eq!(elapsed(&clock), ms(50));
    assert_eq!(fail_done.load(Ordering::SeqCst), 1);
    assert_eq!(clock.pending_sleeps(), 0);
    clock.advance(Duration::from_secs(1));
    assert_eq!(late_done.load(Ordering::SeqCst), 0, "cancelled on success");
}

#[test]
fn without_cancel_on_success_the_others_complete_first() {
    let clock = ManualClock::new();
    let (win, _) = child(&clock, 50, true, 2);
    let (late, late_done) = child(&clock, 500, true, 3);
    let (late_fail, late_fail_done) = child(&clock, 300, false, 4);
    let any = parallel_or([win, late, late_fail])
        .unwrap()
        .cancel_on_success(false);
    assert_eq!(
        clock.block_on(any.run(vec![0])),
        (true, vec![0, 2]),
        "still the first winner"
    );
    assert_eq!(elapsed(&clock), ms(500));
    assert_eq!(late_done.load(Ordering::SeqCst), 1);
    assert_eq!(late_fail_done.load(Ordering::SeqCst), 1);
}

#[test]
fn all_fail_returns_false_and_the_original_context() {
    let clock = ManualClock::new();
    let any = parallel_or((1..=3).map(|t| child(&clock, 10 * u64::from(t), false, t).0)).unwrap();
    assert_eq!(clock.block_on(any.run(vec![9])), (false, vec![9]));
    assert_eq!(elapsed(&clock), ms(30));
}

#[test]
fn a_single_child_works() {
    let clock = ManualClock::new();
    for verdict in [true, false] {
        let all = parallel_and([child(&clock, 10, verdict, 1).0]).unwrap();
        assert_eq!(clock.block_on(all.run(vec![])), (verdict, vec![]));
        let any = parallel_or([child(&clock, 10, verdict, 1).0]).unwrap();
        let expected = if verdict { vec![1] } else { vec![] };
        assert_eq!(clock.block_on(any.run(vec![])), (verdict, expected));
    }
}

#[test]
fn an_empty_child_list_is_refused() {
    let err = parallel_and(Vec::<Child>::new()).unwrap_err();
    assert_eq!(err.parameter(), "children");
    assert_eq!(
        err.to_string(),
        "invalid `children`: [] (expected at least one child)"
    );
    assert_eq!(
        parallel_or(Vec::<Child>::new()).unwrap_err().parameter(),
        "children"
    );
}

#[test]
fn dropping_the_call_cancels_every_child() {
    let clock = ManualClock::new();
    let kids: Vec<_> = (1..=3).map(|t| child(&clock, 100, true, t)).collect();
    let dones: Vec<_> = kids.iter().map(|(_, d)| Arc::clone(d)).collect();
    let all = parallel_and(kids.into_iter().map(|(c, _)| c)).unwrap();
    {
        let mut fut = Box::pin(all.run(vec![]));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(clock.pending_sleeps(), 3);
    }
    assert_eq!(clock.pending_sleeps(), 0);
    clock.advance(Duration::from_secs(1));
    assert!(dones.iter().all(|d| d.load(Ordering::SeqCst) == 0));
}

#[test]
fn heterogeneous_children_through_boxing_and_operators() {
    let clock = ManualClock::new();
    let k = clock.clone();
    let slow_yes: BoxCombinator<Vec<u32>> = boxed!(kompoz_core::rule(async move |_: &Vec<u32>| {
        k.sleep(ms(20)).await;
        true
    }));
    let quick_no: BoxCombinator<Vec<u32>> =
        boxed!(kompoz_core::rule(async |v: &Vec<u32>| v.is_empty()));
    let either = parallel_or([slow_yes, quick_no]).unwrap();
    // Composes with the algebra like any combinator.
    let check = either & kompoz_core::rule(async |v: &Vec<u32>| v.len() == 1);
    assert_eq!(clock.block_on(check.run(vec![5])), (true, vec![5]));
    assert_eq!(clock.now(), Instant::from_duration(ms(20)));
}

#[test]
fn parallel_futures_are_send_when_children_are() {
    fn assert_send<T: Send>(_: &T) {}
    let clock = ManualClock::new();
    let all = parallel_and([child(&clock, 1, true, 1).0]).unwrap();
    assert_send(&all.run(vec![]));
    let any = parallel_or([child(&clock, 1, true, 1).0]).unwrap();
    assert_send(&any.run(vec![]));
}

// --- the tuple forms: `parallel_and!` / `parallel_or!` over children of
// different types, unboxed.

/// A child of another type than `Child`: a rule that passes at once.
fn instant_pass() -> impl Combinator<Vec<u32>> {
    kompoz_core::rule(async |_: &Vec<u32>| true)
}

#[test]
fn tuple_children_of_different_types_run_concurrently() {
    let clock = ManualClock::new();
    let (a, a_done) = child(&clock, 100, true, 1);
    let (b, b_done) = child(&clock, 100, true, 2);
    let all = kompoz_core::parallel_and!(a, instant_pass(), b);
    assert_eq!(clock.block_on(all.run(vec![0])), (true, vec![0]));
    assert_eq!(elapsed(&clock), ms(100), "concurrent, not 200 ms");
    assert_eq!(a_done.load(Ordering::SeqCst), 1);
    assert_eq!(b_done.load(Ordering::SeqCst), 1);
}

#[test]
fn tuple_fail_fast_drops_the_slow_child_and_without_it_all_complete() {
    let clock = ManualClock::new();
    let (fast_fail, _) = child(&clock, 10, false, 1);
    let (slow, slow_done) = child(&clock, 1000, true, 2);
    let all = kompoz_core::parallel_and!(instant_pass(), fast_fail, slow).fail_fast(true);
    assert_eq!(clock.block_on(all.run(vec![])), (false, vec![]));
    assert_eq!(elapsed(&clock), ms(10), "returns at the failure");
    assert_eq!(clock.pending_sleeps(), 0, "the slow child's sleep is gone");
    clock.advance(Duration::from_secs(10));
    assert_eq!(slow_done.load(Ordering::SeqCst), 0, "never completes");

    let clock = ManualClock::new();
    let (fast_fail, _) = child(&clock, 10, false, 1);
    let (slow, slow_done) = child(&clock, 1000, true, 2);
    let all = kompoz_core::parallel_and!(fast_fail, slow);
    assert_eq!(clock.block_on(all.run(vec![])), (false, vec![]));
    assert_eq!(slow_done.load(Ordering::SeqCst), 1);
    assert_eq!(elapsed(&clock), ms(1000));
}

#[test]
fn tuple_or_returns_the_first_winner_and_cancels_or_waits_for_the_others() {
    let clock = ManualClock::new();
    let (fail_first, fail_done) = child(&clock, 10, false, 1);
    let (win, _) = child(&clock, 50, true, 2);
    let (late, late_done) = child(&clock, 500, true, 3);
    let fails = kompoz_core::not(instant_pass());
    let any = kompoz_core::parallel_or!(fails, fail_first, win, late);
    assert_eq!(clock.block_on(any.run(vec![0])), (true, vec![0, 2]));
    assert_eq!(elapsed(&clock), ms(50));
    assert_eq!(fail_done.load(Ordering::SeqCst), 1);
    assert_eq!(clock.pending_sleeps(), 0);
    clock.advance(Duration::from_secs(1));
    assert_eq!(late_done.load(Ordering::SeqCst), 0, "cancelled on success");

    let clock = ManualClock::new();
    let (win, _) = child(&clock, 50, true, 2);
    let (late, late_done) = child(&clock, 500, true, 3);
    let any = kompoz_core::parallel_or!(win, late).cancel_on_success(false);
    assert_eq!(clock.block_on(any.run(vec![0])), (true, vec![0, 2]));
    assert_eq!(elapsed(&clock), ms(500));
    assert_eq!(late_done.load(Ordering::SeqCst), 1);

    let clock = ManualClock::new();
    let (a, _) = child(&clock, 10, false, 1);
    let any = kompoz_core::parallel_or!(a, kompoz_core::not(instant_pass()));
    assert_eq!(
        clock.block_on(any.run(vec![0])),
        (false, vec![0]),
        "the original context"
    );
}

#[test]
fn a_dropped_tuple_call_cancels_every_child() {
    let clock = ManualClock::new();
    let (a, a_done) = child(&clock, 100, true, 1);
    let (b, b_done) = child(&clock, 200, true, 2);
    let all = kompoz_core::parallel_and!(a, b);
    let mut call = Box::pin(all.run(vec![]));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(call.as_mut().poll(&mut cx).is_pending());
    assert_eq!(clock.pending_sleeps(), 2);
    drop(call);
    assert_eq!(clock.pending_sleeps(), 0);
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        a_done.load(Ordering::SeqCst) + b_done.load(Ordering::SeqCst),
        0
    );
}
