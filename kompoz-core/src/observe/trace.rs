//! Events as `tracing` events, with static targets (`kompoz::<layer>`).

use tracing::{Level, event as ev};

use super::Event;
use crate::circuit_breaker::BreakerEvent;

/// Emits `event` under the layer's target, at the level the module's table
/// gives, with `name` and the event's fields.
pub(super) fn event(name: &str, event: &Event) {
    match event {
        Event::TimedOut { after } => {
            ev!(target: "kompoz::timeout", Level::DEBUG, name, after = ?after, "timed out");
        }
        Event::PoolWaited { waited } => {
            ev!(target: "kompoz::limit", Level::TRACE, name, waited = ?waited, "waited for a permit");
        }
        Event::PoolRefused { waited } => {
            ev!(target: "kompoz::limit", Level::DEBUG, name, waited = ?waited, "pool full, call refused");
        }
        Event::RateWaited { waited } => {
            ev!(target: "kompoz::rate_limit", Level::TRACE, name, waited = ?waited, "waited for a rate slot");
        }
        Event::RateRefused { retry_at } => {
            ev!(target: "kompoz::rate_limit", Level::DEBUG, name, retry_at = ?retry_at.as_duration(), "over the rate, call refused");
        }
        Event::Retry {
            attempt,
            delay,
            error,
        } => {
            ev!(target: "kompoz::retry", Level::DEBUG, name, attempt, delay = ?delay, error, "attempt failed, retrying");
        }
        Event::Breaker(e) => match e {
            BreakerEvent::StateChange { from, to } => {
                ev!(target: "kompoz::breaker", Level::INFO, name, from = ?from, to = ?to, "circuit state changed");
            }
            BreakerEvent::Rejected { state } => {
                ev!(target: "kompoz::breaker", Level::DEBUG, name, state = ?state, "call rejected");
            }
            BreakerEvent::SlowCall { elapsed } => {
                ev!(target: "kompoz::breaker", Level::DEBUG, name, elapsed = ?elapsed, "slow call");
            }
            BreakerEvent::Success { elapsed } => {
                ev!(target: "kompoz::breaker", Level::TRACE, name, elapsed = ?elapsed, "success");
            }
            BreakerEvent::Failure { elapsed } => {
                ev!(target: "kompoz::breaker", Level::TRACE, name, elapsed = ?elapsed, "failure");
            }
            BreakerEvent::Stale => {
                ev!(target: "kompoz::breaker", Level::DEBUG, name, "stale result ignored");
            }
        },
    }
}
