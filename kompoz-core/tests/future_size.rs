//! Long chains compose without blowing up the future's size or the
//! compiler's recursion limit.
//!
//! `a & b & c` is one flat `And<(A, B, C)>` of up to 32 parts, whose future is
//! a single state machine; a longer chain nests one level per 31 further parts.

use kompoz_core::{Combinator, rule};

macro_rules! chain {
    ($op:tt; $first:expr $(, $rest:expr)*) => { $first $($op $rest)* };
}

#[test]
fn a_chain_of_32_has_a_small_future() {
    let r = || rule(async |n: &u64| *n > 0);
    let one_size = std::mem::size_of_val(&r().run(1));
    let c32 = chain!(&; r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r());
    let size = std::mem::size_of_val(&c32.run(1));
    println!("future size: one rule {one_size} B, chain of 32 `&` {size} B");
    // One state machine: the running part's future, the context, a tag.
    assert!(size <= 4 * one_size, "chain of 32 future is {size} B");
    assert!(futures::executor::block_on(c32.run(1)).0);
    assert!(!futures::executor::block_on(c32.run(0)).0);
}

#[test]
fn chains_of_100_compile_and_keep_their_semantics() {
    let r = || rule(async |n: &u64| *n > 0);
    let and100 = chain!(&; r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r());
    let or100 = chain!(|; r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r());
    let then100 = chain!(>>; r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r(), r());
    let sizes = [
        std::mem::size_of_val(&and100.run(1)),
        std::mem::size_of_val(&or100.run(1)),
        std::mem::size_of_val(&then100.run(1)),
    ];
    println!(
        "future size, chains of 100: `&` {} B, `|` {} B, `>>` {} B",
        sizes[0], sizes[1], sizes[2]
    );
    assert!(sizes.iter().all(|&s| s <= 512), "{sizes:?}");
    futures::executor::block_on(async {
        assert!(and100.run(1).await.0);
        assert!(!and100.run(0).await.0);
        assert!(or100.run(1).await.0);
        assert!(!or100.run(0).await.0);
        assert!(!then100.run(0).await.0);
    });
}

#[test]
fn a_policy_call_is_at_most_half_again_the_same_stack_in_the_algebra() {
    use core::time::Duration;
    use kompoz_core::{ClockExt, ManualClock};

    let clock = ManualClock::new();
    let breaker = clock.shared_breaker().build().unwrap();
    let d = Duration::from_millis(10);
    let policy = clock
        .policy()
        .limit_to(4)
        .unwrap()
        .wait_at_most(d)
        .retry(3)
        .unwrap()
        .fixed(d)
        .breaker(&breaker)
        .timeout(d)
        .unwrap();
    let call = std::mem::size_of_val(&policy.call(|| async { Ok::<u64, ()>(1) }));
    let timed = clock.with_timeout(rule(async |n: &u64| *n > 0), d).unwrap();
    let retried = clock.retry(breaker.guard(timed), 3).unwrap().fixed(d);
    let algebra = clock.limited(retried, 4).unwrap().wait_at_most(d);
    let run = std::mem::size_of_val(&algebra.run(1));
    println!("future size, limit ∘ retry ∘ breaker ∘ timeout: call {call} B, algebra {run} B");
    assert!(call <= run + run / 2, "call {call} B, algebra {run} B");
}
