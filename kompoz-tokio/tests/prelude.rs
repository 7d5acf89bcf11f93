//! The prelude sits beside tokio's own glob imports: every name below is
//! tokio's, and would be ambiguous (a compile error) if the prelude also
//! exported it.

use std::sync::Arc;
use std::time::Duration;

use kompoz_tokio::prelude::*;
use tokio::sync::*;
use tokio::time::*;

#[tokio::test(start_paused = true)]
async fn the_prelude_and_tokios_globs_name_nothing_twice() {
    // tokio's `Instant`, `sleep`, `timeout`, `Semaphore`.
    let start = Instant::now();
    sleep(Duration::from_secs(1)).await;
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    let permits = Arc::new(Semaphore::new(1));
    let _permit = permits.clone().acquire_owned().await.unwrap();
    assert!(
        timeout(Duration::from_millis(5), permits.acquire())
            .await
            .is_err()
    );

    // kompoz's constructors, leaves and values, from the prelude.
    let check = with_timeout(rule(async |n: &u32| *n > 0), Duration::from_secs(1)).unwrap();
    let guarded = circuit_breaker(check).failure_threshold(1).build().unwrap();
    assert_eq!(guarded.run(1).await, (true, 1));
    assert_eq!(guarded.run(0).await, (false, 0));
    assert_eq!(guarded.state(), CircuitState::Open);
    let generic = TokioClock.limited(rule(async |_: &u32| true), 2).unwrap();
    assert_eq!(generic.mode(), LimitMode::Wait);
}
