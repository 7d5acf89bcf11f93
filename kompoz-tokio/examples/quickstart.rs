//! The same small program on every runtime (see `kompoz-smol` and
//! `kompoz-async-std` for its twins): orders approved by a rule chain whose
//! remote fraud check is guarded by a timeout, a circuit breaker and a shared
//! pool.
//!
//! ```text
//! cargo run -p kompoz-tokio --example quickstart
//! ```

use std::time::Duration;

use kompoz_tokio::prelude::*;

#[derive(Clone, Debug)]
struct Order {
    id: u32,
    total: u32,
    approved: bool,
}

#[tokio::main]
async fn main() -> Result<(), ConfigError> {
    let clock = TokioClock::new();

    // A remote fraud check that answers in 5 ms, hangs on order 3, and is
    // down (fails) for orders 7 to 11.
    let fraud_check = rule(async move |order: &Order| {
        let delay = if order.id == 3 { 60_000 } else { 5 };
        clock.sleep(Duration::from_millis(delay)).await;
        !(7..=11).contains(&order.id)
    });

    let guarded = limited_named(
        circuit_breaker(with_timeout(fraud_check, Duration::from_millis(50))?)
            .failure_threshold(3)
            .recovery_timeout(Duration::from_secs(1))
            .on_state_change(|from, to, _stats| println!("    breaker: {from} -> {to}"))
            .build()?,
        4,
        "fraud-service",
    )?;

    let approve = rule(async |order: &Order| order.total > 0)
        & &guarded
        & transform(async |mut order: Order| {
            order.approved = true;
            order
        });

    let orders = (1..=16).map(|id| Order {
        id,
        total: 25 * (id % 6),
        approved: false,
    });
    let results = futures::future::join_all(orders.map(|order| approve.run(order))).await;

    for (ok, order) in &results {
        let verdict = if *ok { "approved" } else { "refused" };
        println!(
            "order {:>2} (total {:>3}): {verdict}",
            order.id, order.total
        );
        assert_eq!(*ok, order.approved);
    }
    let stats = guarded.get_ref().stats();
    println!(
        "fraud checks: {} passed, {} failed or timed out, {} refused by the open breaker; breaker {}",
        stats.success_count,
        stats.failure_count,
        stats.rejected_count,
        guarded.get_ref().state()
    );
    Ok(())
}
