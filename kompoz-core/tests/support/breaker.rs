//! The breaker tests' fake service and helpers (`circuit_breaker.rs`,
//! `breaker_hardening.rs`, `breaker_policies.rs` in kompoz-core/tests).

#![allow(missing_docs, missing_debug_implementations)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Context;
use std::time::Duration;

use futures::FutureExt;
use futures::task::noop_waker;
use kompoz_core::{CircuitBreaker, CircuitBreakerBuilder, Clock, Combinator, Instant, ManualClock};

use super::ms;

/// What the fake service is asked to do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Call {
    pub ok: bool,
    pub delay_ms: u64,
    pub panic: bool,
}

pub fn pass() -> Call {
    Call {
        ok: true,
        delay_ms: 0,
        panic: false,
    }
}

pub fn fail() -> Call {
    Call {
        ok: false,
        ..pass()
    }
}

pub fn after(ms: u64, call: Call) -> Call {
    Call {
        delay_ms: ms,
        ..call
    }
}

/// A service that does what each `Call` says and counts its runs and the
/// most runs at once.
#[derive(Clone, Debug)]
pub struct Service {
    pub clock: ManualClock,
    pub runs: Arc<AtomicUsize>,
    pub running: Arc<AtomicUsize>,
    pub peak: Arc<AtomicUsize>,
}

struct Leave(Arc<AtomicUsize>);
impl Drop for Leave {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Service {
    pub fn new(clock: &ManualClock) -> Self {
        Service {
            clock: clock.clone(),
            runs: Arc::default(),
            running: Arc::default(),
            peak: Arc::default(),
        }
    }
    pub fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

impl Combinator<Call> for Service {
    #[allow(clippy::manual_async_fn)]
    fn run(&self, call: Call) -> impl Future<Output = (bool, Call)> {
        async move {
            self.runs.fetch_add(1, Ordering::SeqCst);
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            let _leave = Leave(Arc::clone(&self.running));
            if call.delay_ms > 0 {
                self.clock.sleep(ms(call.delay_ms)).await;
            }
            assert!(!call.panic, "the service panicked");
            (call.ok, call)
        }
    }
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub fn at_ms(n: u64) -> Instant {
    Instant::from_nanos(n * 1_000_000)
}

/// Runs `fut` to completion, jumping the clock to the next sleep's deadline
/// whenever it is pending.
pub fn run<F: Future>(clock: &ManualClock, fut: F) -> F::Output {
    clock.block_on(fut)
}

/// Polls `fut` once (admitting the call) and hands it back, still running.
pub fn start<F: Future + Unpin>(fut: &mut F) {
    let waker = noop_waker();
    assert!(
        fut.poll_unpin(&mut Context::from_waker(&waker))
            .is_pending(),
        "the call was meant to be in flight"
    );
}

pub fn builder(service: &Service) -> CircuitBreakerBuilder<Service, ManualClock> {
    CircuitBreaker::builder(service.clone(), service.clock.clone())
}

pub type Protected = CircuitBreaker<Service, ManualClock>;

pub fn call_all(clock: &ManualClock, protected: &Protected, calls: &[Call]) -> Vec<bool> {
    calls
        .iter()
        .map(|&c| run(clock, protected.run(c)).0)
        .collect()
}
