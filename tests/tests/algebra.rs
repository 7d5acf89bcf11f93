//! The combinator algebra's semantics, on every runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kompoz_core::{Clock, Combinator, leaf::Rule, rule, rule_args, transform, try_transform};

/// A rule with a fixed verdict that counts its runs and yields to the clock
/// once, so every step really suspends.
fn counted<K: Clock>(
    clock: &K,
    verdict: bool,
) -> (Rule<impl AsyncFn(&u32) -> bool + use<K>>, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&runs);
    let clock = clock.clone();
    let r = rule(async move |_: &u32| {
        seen.fetch_add(1, Ordering::SeqCst);
        clock.sleep(Duration::from_millis(1)).await;
        verdict
    });
    (r, runs)
}

async fn and_short_circuits_on_failure<K: Clock>(clock: K) {
    let (fail, fail_runs) = counted(&clock, false);
    let (x, x_runs) = counted(&clock, true);
    let both = fail.and(x);
    assert_eq!(both.run(1).await, (false, 1));
    assert_eq!(fail_runs.load(Ordering::SeqCst), 1);
    assert_eq!(
        x_runs.load(Ordering::SeqCst),
        0,
        "in `fail & x`, x never runs"
    );

    let (pass, _) = counted(&clock, true);
    let (y, y_runs) = counted(&clock, false);
    assert_eq!((pass & y).run(2).await, (false, 2));
    assert_eq!(y_runs.load(Ordering::SeqCst), 1);
}

async fn or_short_circuits_on_success<K: Clock>(clock: K) {
    let (ok, ok_runs) = counted(&clock, true);
    let (x, x_runs) = counted(&clock, false);
    assert_eq!((ok | x).run(1).await, (true, 1));
    assert_eq!(ok_runs.load(Ordering::SeqCst), 1);
    assert_eq!(
        x_runs.load(Ordering::SeqCst),
        0,
        "in `ok | x`, x never runs"
    );

    let (fail, _) = counted(&clock, false);
    let (y, y_runs) = counted(&clock, true);
    assert_eq!((fail | y).run(1).await, (true, 1));
    assert_eq!(y_runs.load(Ordering::SeqCst), 1);
}

async fn then_runs_both_and_right_verdict_stands<K: Clock>(clock: K) {
    for (left, right) in [(false, true), (true, false), (false, false), (true, true)] {
        let (a, a_runs) = counted(&clock, left);
        let (b, b_runs) = counted(&clock, right);
        assert_eq!((a >> b).run(7).await, (right, 7));
        assert_eq!(a_runs.load(Ordering::SeqCst), 1);
        assert_eq!(b_runs.load(Ordering::SeqCst), 1);
    }
}

async fn not_inverts<K: Clock>(clock: K) {
    let (a, _) = counted(&clock, true);
    let (b, _) = counted(&clock, false);
    assert_eq!((!a).run(3).await, (false, 3));
    assert_eq!((!b).run(3).await, (true, 3));
}

async fn if_else_runs_exactly_one_branch<K: Clock>(clock: K) {
    for cond_verdict in [true, false] {
        let (cond, _) = counted(&clock, cond_verdict);
        let (then, then_runs) = counted(&clock, true);
        let (otherwise, else_runs) = counted(&clock, false);
        let (ok, _) = cond.if_else(then, otherwise).run(0).await;
        assert_eq!(ok, cond_verdict);
        assert_eq!(then_runs.load(Ordering::SeqCst), usize::from(cond_verdict));
        assert_eq!(else_runs.load(Ordering::SeqCst), usize::from(!cond_verdict));
    }
}

async fn context_threads_through_transforms<K: Clock>(clock: K) {
    let c = clock.clone();
    let add = move |k: u32| {
        let c = c.clone();
        transform(async move |n: u32| {
            c.sleep(Duration::from_millis(1)).await;
            n * 10 + k
        })
    };
    let chain = add(1) & add(2) & (rule(async |n: &u32| *n == 0) | add(3)) >> add(4);
    assert_eq!(chain.run(0).await, (true, 1234));
}

async fn fallible_transform_reports_its_own_error<K: Clock>(clock: K) {
    let c = clock.clone();
    let halve = try_transform(async move |n: &mut u32| {
        c.sleep(Duration::from_millis(1)).await;
        if *n % 2 == 1 {
            return Err(format!("{n} is odd"));
        }
        *n /= 2;
        Ok(())
    });
    // Many calls at once: each sees its own error, none sees another's.
    let calls = (0..20u32).map(|n| halve.try_run(n));
    for (n, (result, ctx)) in (0..20u32).zip(futures::future::join_all(calls).await) {
        if n % 2 == 0 {
            assert_eq!((result, ctx), (Ok(()), n / 2));
        } else {
            assert_eq!((result, ctx), (Err(format!("{n} is odd")), n));
        }
    }
    assert_eq!(halve.run(3).await, (false, 3));
}

async fn parameterised_rules_bind_arguments<K: Clock>(_clock: K) {
    let at_least = rule_args(async |n: &u32, min: &u32| n >= min);
    let check = at_least.with(5) & !at_least.with(10);
    assert!(check.run(7).await.0);
    assert!(!check.run(12).await.0);
    assert!(!check.run(1).await.0);
}

kompoz_tests::cross_runtime!(
    and_short_circuits_on_failure,
    or_short_circuits_on_success,
    then_runs_both_and_right_verdict_stands,
    not_inverts,
    if_else_runs_exactly_one_branch,
    context_threads_through_transforms,
    fallible_transform_reports_its_own_error,
    parameterised_rules_bind_arguments,
);
