//! How a call's outcome is judged ([`FailurePredicate`], [`NotOk`]) and
//! reported ([`BreakerOutcome`]), and what a refused call does with its
//! context ([`RejectedHook`]).

#[cfg(doc)]
use super::CircuitBreaker;

/// Decides whether a call's outcome counts as a failure for the breaker.
///
/// Implemented by [`NotOk`] (the default: `ok == false` is a failure) and by
/// every `Fn(bool, &C) -> bool`.
pub trait FailurePredicate<C> {
    /// Whether the outcome `(ok, ctx)` is a failure.
    fn is_failure(&self, ok: bool, ctx: &C) -> bool;
}

/// The default [`FailurePredicate`]: a call that returns `ok == false` failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NotOk;

impl<C> FailurePredicate<C> for NotOk {
    #[inline]
    fn is_failure(&self, ok: bool, _: &C) -> bool {
        !ok
    }
}

impl<C, F: Fn(bool, &C) -> bool> FailurePredicate<C> for F {
    fn is_failure(&self, ok: bool, ctx: &C) -> bool {
        self(ok, ctx)
    }
}

/// What happened to one call through a [`CircuitBreaker`], from
/// [`run_with_outcome`](CircuitBreaker::run_with_outcome).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BreakerOutcome {
    /// The breaker admitted the call and the inner combinator returned this
    /// verdict.
    Ran(bool),
    /// The breaker refused the call (open, or half-open with every probe
    /// slot taken); the inner combinator did not run.
    Rejected,
}

impl BreakerOutcome {
    /// Whether the breaker refused the call.
    pub fn is_rejected(self) -> bool {
        self == BreakerOutcome::Rejected
    }

    /// The verdict the call returned: the inner verdict, `false` if rejected.
    pub fn passed(self) -> bool {
        self == BreakerOutcome::Ran(true)
    }
}

/// What a [`CircuitBreaker`] does with the context of a call it refused.
///
/// Implemented by `()` (hand the context back unchanged) and by every
/// `Fn(C) -> C`; set with [`on_rejected`](CircuitBreaker::on_rejected).
pub trait RejectedHook<C> {
    /// Turns the context of a refused call into the one it returns.
    fn on_rejected(&self, ctx: C) -> C;
}

impl<C> RejectedHook<C> for () {
    #[inline]
    fn on_rejected(&self, ctx: C) -> C {
        ctx
    }
}

impl<C, F: Fn(C) -> C> RejectedHook<C> for F {
    fn on_rejected(&self, ctx: C) -> C {
        self(ctx)
    }
}
