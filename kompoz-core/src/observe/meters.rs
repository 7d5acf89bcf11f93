//! Events as metrics, through the `metrics` facade.
//!
//! Each layer keeps the handles it has registered, one per kind of report,
//! so a report after the first is an atomic update with no allocation.

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

use super::{Event, state_value};
use crate::circuit_breaker::{BreakerEvent, CircuitState};

const OUTCOMES: usize = 10;

#[derive(Default)]
pub(super) struct Meters {
    calls: [OnceLock<Counter>; OUTCOMES],
    transitions: [OnceLock<Counter>; 3],
    state: OnceLock<Gauge>,
    wait: OnceLock<Histogram>,
    delay: OnceLock<Histogram>,
    duration: OnceLock<Histogram>,
}

fn slot(kind: &str) -> usize {
    match kind {
        "timed_out" => 0,
        "waited" => 1,
        "refused" => 2,
        "retried" => 3,
        "success" => 4,
        "failure" => 5,
        "slow" => 6,
        "rejected" => 7,
        "stale" => 8,
        _ => 9,
    }
}

fn state_label(state: CircuitState) -> &'static str {
    match state {
        CircuitState::Closed => "closed",
        CircuitState::HalfOpen => "half_open",
        CircuitState::Open => "open",
    }
}

impl Meters {
    pub(super) fn record(&self, name: &str, event: &Event) {
        let layer = event.layer().as_str();
        let kind = event.kind();
        if kind != "state_change" {
            self.calls[slot(kind)]
                .get_or_init(|| {
                    counter!("kompoz_calls_total", "layer" => layer, "name" => std::string::String::from(name), "outcome" => kind)
                })
                .increment(1);
        }
        match event {
            Event::PoolWaited { waited } | Event::RateWaited { waited } => self
                .wait
                .get_or_init(|| histogram!("kompoz_wait_seconds", "layer" => layer, "name" => std::string::String::from(name)))
                .record(waited.as_secs_f64()),
            Event::Retry { delay, .. } => self
                .delay
                .get_or_init(|| histogram!("kompoz_retry_delay_seconds", "name" => std::string::String::from(name)))
                .record(delay.as_secs_f64()),
            Event::Breaker(BreakerEvent::Success { elapsed } | BreakerEvent::Failure { elapsed }) => self
                .duration
                .get_or_init(|| histogram!("kompoz_call_duration_seconds", "name" => std::string::String::from(name)))
                .record(elapsed.as_secs_f64()),
            Event::Breaker(BreakerEvent::StateChange { to, .. }) => {
                self.transitions[usize::from(state_value(*to))]
                    .get_or_init(|| {
                        counter!("kompoz_breaker_transitions_total", "name" => std::string::String::from(name), "to" => state_label(*to))
                    })
                    .increment(1);
                self.state
                    .get_or_init(|| gauge!("kompoz_breaker_state", "name" => std::string::String::from(name)))
                    .set(f64::from(state_value(*to)));
            }
            _ => {}
        }
    }
}
