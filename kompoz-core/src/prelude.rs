//! The names most code needs, for a glob import: `use kompoz_core::prelude::*;`.
//!
//! The traits ([`Combinator`], [`Clock`], [`ClockExt`], [`SendCombinator`],
//! [`SendClock`]), the leaves and composition functions, the values that
//! configure the combinators, and [`Breaker`] (the handle that
//! `shared_breaker()` builds and a policy takes to guard its calls). It
//! leaves out the combinator types themselves and everything named like an
//! item of a runtime (`Instant`, `Timeout`, `Semaphore`, `ManualClock`,
//! `timeout`, `sleep`), so it can sit beside `use tokio::time::*;` or
//! `use tokio::sync::*;` without an ambiguity. The runtime crates' preludes
//! add their clock and the constructors on it.

pub use crate::{
    Backoff, Breaker, CircuitState, Clock, ClockExt, Combinator, ConfigError, Jitter, LimitMode,
    RateLimit, SendClock, SendCombinator, SlidingWindow, not, parallel_and, parallel_or, rule,
    rule_args, rule_fn, spawnable, transform, transform_fn, try_transform,
};
