//! kompoz in an application with no async runtime: `futures::executor::block_on`
//! drives the calls, and `futures-timer` (its own timer thread) times them.
//!
//! ```text
//! cargo run -p kompoz-core --features futures-timer --example futures_timer_block_on
//! ```

use std::time::Duration;

use futures::executor::block_on;
use kompoz_core::futures_timer::{
    FuturesTimerClock, circuit_breaker, limited, retry, with_timeout,
};
use kompoz_core::{Clock, Combinator, ConfigError, rule};

fn main() -> Result<(), ConfigError> {
    let clock = FuturesTimerClock;

    // A sensor that is slow on every third read and fails on every fifth.
    let read_sensor = rule(async move |reading: &u32| {
        let delay = if reading % 3 == 0 { 500 } else { 2 };
        clock.sleep(Duration::from_millis(delay)).await;
        reading % 5 != 0
    });

    let guarded = limited(
        circuit_breaker(
            retry(with_timeout(read_sensor, Duration::from_millis(50))?, 2)?
                .fixed(Duration::from_millis(5)),
        )
        .failure_threshold(10)
        .build()?,
        2,
    )?;

    let results = block_on(futures::future::join_all((1..=10).map(|n| guarded.run(n))));
    for (ok, n) in &results {
        println!("reading {n:>2}: {}", if *ok { "ok" } else { "failed" });
    }
    let passed = results.iter().filter(|(ok, _)| *ok).count();
    println!(
        "{passed} of {} readings ok; breaker {}",
        results.len(),
        guarded.get_ref().state()
    );
    // 3, 6 and 9 time out on every attempt; 5 and 10 fail.
    assert_eq!(passed, 5);
    Ok(())
}
