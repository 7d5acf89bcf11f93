//! The demo's story, on a schedule a fifth of the length: the breaker opens
//! during the outage, spares the service most calls while it is down, and
//! closes again after the recovery; the pool is whole at the end.
//!
//! Real sockets and real time (the service is a TCP server on loopback).
//! Every phase lasts at least 600 ms while the breaker reacts within a few
//! calls (tens of milliseconds), so the assertions hold with a wide margin.

#[path = "../examples/demo/scenario.rs"]
#[allow(dead_code)]
mod scenario;
#[path = "../examples/demo/service.rs"]
#[allow(dead_code)]
mod service;

use kompoz_tokio::CircuitState;
use service::{Phase, Schedule};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_during_the_outage_and_closes_after_recovery() {
    let schedule = Schedule::short();
    let down_at = schedule.start_of(Phase::Down).unwrap();
    let up_at = schedule.start_of(Phase::Recovering).unwrap();
    let settings = scenario::Settings::for_schedule(schedule);

    let mut out = Vec::new();
    let report = scenario::run(settings, &mut out, false).await.unwrap();
    let printed = String::from_utf8(out).unwrap();
    println!("{printed}");

    let open_during_outage = report
        .transitions
        .iter()
        .any(|t| t.to == CircuitState::Open && t.at >= down_at && t.at < up_at)
        || report
            .transitions
            .iter()
            .rev()
            .find(|t| t.at < down_at)
            .is_some_and(|t| t.to == CircuitState::Open);
    assert!(
        open_during_outage,
        "breaker never open during the outage: {:?}",
        report.transitions
    );

    let down = report.phase(Phase::Down);
    assert!(down.sent > 0);
    assert!(
        down.breaker_rejected * 2 > down.sent,
        "the breaker spared only {} of {} calls while the service was down",
        down.breaker_rejected,
        down.sent
    );

    assert!(
        report
            .transitions
            .iter()
            .any(|t| t.to == CircuitState::Closed && t.at >= up_at),
        "breaker never closed after the recovery: {:?}",
        report.transitions
    );
    assert_eq!(report.final_state, CircuitState::Closed);

    let healthy = report.phase(Phase::Healthy);
    assert!(
        healthy.sent > 0 && healthy.ok * 10 >= healthy.sent * 9,
        "healthy phase: {healthy:?}"
    );
    assert_eq!(report.pool_available, report.pool_size, "permits leaked");

    assert!(printed.contains("Summary") && printed.contains("recovery noticed"));
}
