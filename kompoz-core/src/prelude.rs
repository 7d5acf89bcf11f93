//! The names most code needs, for a glob import: `use kompoz_core::prelude::*;`.
//!
//! The traits ([`Combinator`], [`Clock`], [`ClockExt`]), the leaves and
//! composition functions, and the values that configure the combinators. It
//! leaves out the combinator types themselves and everything named like an
//! item of a runtime (`Instant`, `Timeout`, `Semaphore`, `ManualClock`,
//! `timeout`, `sleep`), so it can sit beside `use tokio::time::*;` or
//! `use tokio::sync::*;` without an ambiguity. The runtime crates' preludes
//! add their clock and the constructors on it.

pub use crate::{
    Backoff, CircuitState, Clock, ClockExt, Combinator, ConfigError, Jitter, LimitMode, RateLimit,
    SendCombinator, SlidingWindow, not, parallel_and, parallel_or, rule, rule_args, rule_fn,
    spawnable, transform, transform_fn, try_transform,
};
