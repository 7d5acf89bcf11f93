//! The cross-runtime behaviour suite's harness, and where each kind of test
//! lives.
//!
//! # One home per kind of test
//!
//! | kind | home | why there |
//! |---|---|---|
//! | loom models | `kompoz-core/tests/loom.rs` | need `--cfg loom`, which swaps the crate's private `sync` |
//! | Miri aliasing checks | `kompoz-core/tests/aliasing.rs` | the Miri step runs kompoz-core's tests only |
//! | size and compile-cost checks | `kompoz-core/tests/future_size.rs` | about the core's types, no runtime |
//! | step-by-step checks of one primitive: hand-polled futures or a `ManualClock`, one thread | `kompoz-core/tests/<primitive>.rs` (the breaker's in `circuit_breaker.rs`, `breaker_hardening.rs`, `breaker_policies.rs`) | deterministic interleavings, and Miri runs every one of them |
//! | unit tests of private pieces (the state word, the rng) | `#[cfg(test)]` in `kompoz-core/src` | need private items |
//! | a behaviour across runtimes | `tests/tests/<combinator>.rs`, through [`cross_runtime!`] | written once, run on every runtime below |
//! | cancellation and panic sweeps | `tests/tests/cancellation.rs`, `tests/tests/panics.rs` | drop or panic at every point, one harness ([`sweep`]) |
//! | property models, stress, extremes, bad input, compile checks | `tests/tests/model_*.rs`, `stress.rs`, `extremes.rs`, `bad_input.rs`, `compile_checks.rs` | heavy or cross-cutting |
//! | integrations | their own crate's `tests/` (`kompoz-tower/tests`) | their dependencies stay there |
//!
//! A test is written in one of these places, not two. Helpers both test
//! crates use (`poll_once`, `ms`, a counting waker, a seeded rng, the
//! breaker tests' fake service) live once, in `kompoz-core/tests/support/`,
//! which this crate includes as [`support`].
//!
//! # The cross-runtime harness
//!
//! Each behaviour is an `async fn(K) where K: Clock` written once in
//! `tests/tests/*.rs`; [`cross_runtime!`] stamps it out as a `#[test]` per
//! runtime:
//!
//! | module | executor | clock |
//! |---|---|---|
//! | `manual` | a single-threaded `block_on` that advances time when the future stalls | [`ManualClock`] |
//! | `tokio_current_thread` | tokio current-thread, time paused (auto-advance) | `TokioClock` |
//! | `tokio_multi_thread` | tokio multi-thread (2 workers), real time | `TokioClock` |
//! | `async_std` | `async_std::task::block_on`, real time | `AsyncStdClock` |
//! | `smol` | `smol::block_on`, real time | `SmolClock` |
//! | `futures_timer` | `futures::executor::block_on`, real time | `FuturesTimerClock` |
//!
//! Behaviours run their concurrency inside one future (`join_all`, `select`),
//! so they need no spawn and run on every executor. On the real-time
//! runtimes a behaviour only ever waits for the short side of a comparison
//! (an inner call of 60 s against a timeout of 20 ms), so nothing depends on
//! scheduling margins; under `manual` and paused tokio the long side costs
//! nothing either.

use std::future::Future;

pub use kompoz_core::ManualClock;

pub mod sweep;

#[path = "../../kompoz-core/tests/support/mod.rs"]
pub mod support;

/// Runs `fut` to completion with `clock` as its time source: see
/// [`ManualClock::block_on`] (time jumps to the next deadline whenever the
/// future stalls).
pub fn block_on_manual<F: Future>(clock: &ManualClock, fut: F) -> F::Output {
    clock.block_on(fut)
}

/// Stamps out behaviours as one `#[test]` per runtime (see the crate docs).
///
/// Each named item must be an `async fn name<K: Clock + ...>(clock: K)`.
#[macro_export]
macro_rules! cross_runtime {
    ($($name:ident),* $(,)?) => {
        mod manual {
            $(
                #[test]
                fn $name() {
                    let clock = $crate::ManualClock::new();
                    $crate::block_on_manual(&clock.clone(), super::$name(clock));
                }
            )*
        }
        mod tokio_current_thread {
            $(
                #[test]
                fn $name() {
                    ::tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .start_paused(true)
                        .build()
                        .unwrap()
                        // The clock is made inside the runtime: made outside,
                        // its origin is real time, later than the paused
                        // timeline's start, and `now()` saturates at zero
                        // until virtual time catches up.
                        .block_on(async { super::$name(::kompoz_tokio::TokioClock::new()).await });
                }
            )*
        }
        mod tokio_multi_thread {
            $(
                #[test]
                fn $name() {
                    ::tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                        .unwrap()
                        .block_on(super::$name(::kompoz_tokio::TokioClock::new()));
                }
            )*
        }
        mod async_std {
            $(
                #[test]
                fn $name() {
                    ::async_std::task::block_on(super::$name(::kompoz_async_std::AsyncStdClock::new()));
                }
            )*
        }
        mod smol {
            $(
                #[test]
                fn $name() {
                    ::smol::block_on(super::$name(::kompoz_smol::SmolClock::new()));
                }
            )*
        }
        mod futures_timer {
            $(
                #[test]
                fn $name() {
                    ::futures::executor::block_on(super::$name(::kompoz_core::FuturesTimerClock));
                }
            )*
        }
    };
}
