//! Compile-time guarantees: Send/Sync composition, Rc contexts, dyn compatibility.

use std::rc::Rc;
use std::sync::Arc;

use kompoz_tokio::{Combinator, DynCombinator, LocalBoxCombinator, boxed, rule, transform};

fn assert_send_sync<T: Send + Sync>(_: &T) {}

#[derive(Clone, Debug)]
struct Ctx {
    n: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composed_combinator_of_send_parts_spawns_from_an_arc() {
    let check = Arc::new(
        (rule(async |c: &Ctx| c.n > 1) & !rule(async |c: &Ctx| c.n == 7))
            & transform(async |c: Ctx| Ctx { n: c.n * 2 }),
    );
    assert_send_sync(&check);
    let handles: Vec<_> = (0..8)
        .map(|n| {
            let check = Arc::clone(&check);
            tokio::spawn(async move { check.run(Ctx { n }).await })
        })
        .collect();
    let mut passed = 0;
    for (n, h) in handles.into_iter().enumerate() {
        let (ok, ctx) = h.await.unwrap();
        passed += ok as u32;
        if ok {
            assert_eq!(ctx.n, n as u32 * 2);
        } else {
            assert_eq!(ctx.n, n as u32);
        }
    }
    assert_eq!(passed, 5); // 2..=7 except 7
}

#[test]
fn rc_context_runs_on_a_single_threaded_executor() {
    let check = rule(async |c: &Rc<u32>| **c > 1) & transform(async |c: Rc<u32>| Rc::new(*c + 1));
    let (ok, ctx) = futures::executor::LocalPool::new().run_until(check.run(Rc::new(4)));
    assert!(ok);
    assert_eq!(*ctx, 5);
    let (ok, _) = futures::executor::block_on(check.run(Rc::new(0)));
    assert!(!ok);
}

#[test]
fn boxed_forms_are_dyn_compatible() {
    fn takes_dyn(c: &dyn DynCombinator<u32>) -> (bool, u32) {
        futures::executor::block_on(c.run_boxed(3))
    }
    let r = rule(async |n: &u32| *n == 3);
    assert_eq!(takes_dyn(&r), (true, 3));
    let list: Vec<Box<dyn DynCombinator<u32>>> =
        vec![Box::new(r), Box::new(transform(async |n: u32| n + 1))];
    assert_eq!(futures::executor::block_on(list[1].run_boxed(1)), (true, 2));
    let local: LocalBoxCombinator<'_, u32> =
        (rule(async |n: &u32| *n > 0) | rule(async |n: &u32| *n == 0)).boxed_local();
    assert!(futures::executor::block_on(local.run(0)).0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn box_combinator_spawns() {
    let b = Arc::new(boxed!(
        rule(async |n: &u32| *n > 2) & rule(async |n: &u32| *n < 9)
    ));
    assert_send_sync(&b);
    let b2 = Arc::clone(&b);
    let (ok, n) = tokio::spawn(async move { b2.run(5).await }).await.unwrap();
    assert!(ok && n == 5);
}

/// A four-layer stack over a leaf that captures a reference (the
/// `rule_fn` form) is `tokio::spawn`ed on a multi-thread runtime. With an
/// async-closure leaf the same program is refused ("implementation of
/// `Send` is not general enough"; see `rule_fn`'s compile_fail doctest).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_over_a_leaf_capturing_a_reference_spawns() {
    use kompoz_tokio::prelude::*;
    use std::time::Duration;

    let service: &'static str = "api";
    let check = rule_fn(move |n: &u32| {
        let n = *n;
        async move { service.len() as u32 > n }
    });
    let stack = Arc::new(
        limited(
            circuit_breaker(
                with_timeout(
                    retry(check, 3).unwrap().fixed(Duration::from_millis(1)),
                    Duration::from_secs(1),
                )
                .unwrap(),
            )
            .build()
            .unwrap(),
            4,
        )
        .unwrap(),
    );
    assert_send_sync(&stack);
    let handles: Vec<_> = (0..6u32)
        .map(|n| {
            let stack = Arc::clone(&stack);
            tokio::spawn(async move { stack.run(n).await })
        })
        .collect();
    let mut verdicts = Vec::new();
    for handle in handles {
        verdicts.push(handle.await.unwrap());
    }
    assert_eq!(
        verdicts,
        [
            (true, 0),
            (true, 1),
            (true, 2),
            (false, 3),
            (false, 4),
            (false, 5)
        ]
    );
}

/// `fn build() -> impl SendCombinator<C>`: a four-layer stack returned with
/// its type erased, and its calls spawned on a multi-thread runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_stack_from_spawnable_spawns() {
    use kompoz_tokio::prelude::*;
    use std::time::Duration;

    fn build(service: &'static str) -> Result<impl SendCombinator<u32>, ConfigError> {
        let check = rule_fn(move |n: &u32| {
            let n = *n;
            async move { service.len() as u32 > n }
        });
        let retried = retry(check, 2)?.fixed(Duration::from_millis(1));
        let timed = with_timeout(retried, Duration::from_secs(1))?;
        let guarded = circuit_breaker(timed).failure_threshold(10).build()?;
        Ok(spawnable!(limited(guarded, 4)?))
    }

    let stack = build("api").unwrap();
    assert_send_sync(&stack);
    let handles: Vec<_> = (0..6u32).map(|n| tokio::spawn(stack.run_send(n))).collect();
    let mut verdicts = Vec::new();
    for handle in handles {
        verdicts.push(handle.await.unwrap());
    }
    assert_eq!(
        verdicts,
        [
            (true, 0),
            (true, 1),
            (true, 2),
            (false, 3),
            (false, 4),
            (false, 5)
        ]
    );
    // The same object still composes in the algebra.
    let both = (&stack).and(rule(async |n: &u32| *n == 1));
    assert_eq!(both.run(1).await, (true, 1));
}

/// The hooks' closures need no type annotations: the context's type comes
/// from the inner combinator (`failure_if`, `stop_if`, `on_timeout`).
#[tokio::test(start_paused = true)]
async fn hook_closures_take_the_context_type_from_the_inner_combinator() {
    use kompoz_tokio::prelude::*;
    use std::time::Duration;

    #[derive(Clone, Debug, PartialEq)]
    struct Reply {
        status: u16,
        timed_out: bool,
    }
    let fetch = transform_fn(|mut r: Reply| async move {
        if r.status == 0 {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        r.status += 0;
        r
    });
    let timed = with_timeout(fetch, Duration::from_secs(1))
        .unwrap()
        .on_timeout(|mut r| {
            r.timed_out = true;
            r
        });
    let guarded = circuit_breaker(timed)
        .failure_threshold(1)
        .failure_if(|_ok, r| r.status >= 500 || r.timed_out)
        .build()
        .unwrap();
    let retried = retry(guarded, 3).unwrap().stop_if(|r| r.timed_out);

    let reply = |status| Reply {
        status,
        timed_out: false,
    };
    assert_eq!(retried.run(reply(404)).await, (true, reply(404)));
    assert_eq!(
        retried.get_ref().state(),
        CircuitState::Closed,
        "a 404 is no failure"
    );
    // The verdict stays the inner one; the breaker counts the 503 and opens.
    assert_eq!(retried.run(reply(503)).await, (true, reply(503)));
    assert_eq!(retried.get_ref().state(), CircuitState::Open);
    retried.get_ref().reset();
    // A timeout: the hook marks the context, the predicate counts it, and
    // `stop_if` ends the retries at that attempt.
    let (ok, r) = retried.run(reply(0)).await;
    assert!(!ok && r.timed_out);
    assert_eq!(retried.get_ref().state(), CircuitState::Open);
}
