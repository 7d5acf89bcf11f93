//! STAND-IN for issue-13p's typed error (CONTRACT-13.md); replaced at merge.
#![allow(missing_docs)]

use core::fmt;
use core::time::Duration;

use crate::{CircuitState, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error<E> {
    Inner(E),
    CircuitOpen(CircuitOpen),
    PoolFull(PoolFull),
    RateLimited(RateLimitExceeded),
    TimedOut(TimedOut),
}

impl<E> Error<E> {
    pub fn is_refusal(&self) -> bool {
        !matches!(self, Error::Inner(_))
    }
    pub fn inner(&self) -> Option<&E> {
        match self {
            Error::Inner(e) => Some(e),
            _ => None,
        }
    }
    pub fn into_inner(self) -> Option<E> {
        match self {
            Error::Inner(e) => Some(e),
            _ => None,
        }
    }
    pub fn retry_at(&self) -> Option<Instant> {
        match self {
            Error::CircuitOpen(o) => o.retry_at(),
            Error::RateLimited(r) => Some(r.retry_at()),
            _ => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Inner(e) => e.fmt(f),
            Error::CircuitOpen(o) => write!(f, "circuit {}", o.state()),
            Error::PoolFull(p) => write!(f, "pool full after {:?}", p.waited()),
            Error::RateLimited(r) => write!(f, "rate limited until {:?}", r.retry_at()),
            Error::TimedOut(t) => write!(f, "timed out after {:?}", t.after()),
        }
    }
}

#[cfg(feature = "std")]
impl<E: std::error::Error + 'static> std::error::Error for Error<E> {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CircuitOpen {
    state: CircuitState,
    retry_at: Option<Instant>,
}
impl CircuitOpen {
    pub fn new(state: CircuitState, retry_at: Option<Instant>) -> Self {
        CircuitOpen { state, retry_at }
    }
    pub fn state(&self) -> CircuitState {
        self.state
    }
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolFull {
    waited: Duration,
}
impl PoolFull {
    pub fn new(waited: Duration) -> Self {
        PoolFull { waited }
    }
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitExceeded {
    retry_at: Instant,
}
impl RateLimitExceeded {
    pub fn new(retry_at: Instant) -> Self {
        RateLimitExceeded { retry_at }
    }
    pub fn retry_at(&self) -> Instant {
        self.retry_at
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedOut {
    after: Duration,
}
impl TimedOut {
    pub fn new(after: Duration) -> Self {
        TimedOut { after }
    }
    pub fn after(&self) -> Duration {
        self.after
    }
}

impl<E> From<CircuitOpen> for Error<E> {
    fn from(e: CircuitOpen) -> Self {
        Error::CircuitOpen(e)
    }
}
impl<E> From<PoolFull> for Error<E> {
    fn from(e: PoolFull) -> Self {
        Error::PoolFull(e)
    }
}
impl<E> From<RateLimitExceeded> for Error<E> {
    fn from(e: RateLimitExceeded) -> Self {
        Error::RateLimited(e)
    }
}
impl<E> From<TimedOut> for Error<E> {
    fn from(e: TimedOut) -> Self {
        Error::TimedOut(e)
    }
}

// STAND-IN breaker permit over the breaker's internals.
pub(crate) mod permit_standin {
    use super::CircuitOpen;
    use crate::Clock;
    use crate::circuit_breaker::Breaker;

    pub struct BreakerPermit<'a, K: Clock> {
        pub(crate) breaker: &'a Breaker<K>,
        pub(crate) ticket: Option<crate::circuit_breaker::TicketStandin>,
    }
    impl<K: Clock> Breaker<K> {
        pub fn try_acquire(&self) -> Result<BreakerPermit<'_, K>, CircuitOpen> {
            match self.shared().acquire() {
                Some(t) => Ok(BreakerPermit {
                    breaker: self,
                    ticket: Some(t),
                }),
                None => Err(CircuitOpen::new(self.state(), None)),
            }
        }
    }
    impl<K: Clock> BreakerPermit<'_, K> {
        pub fn record(mut self, failure: bool) {
            let t = self.ticket.take().unwrap();
            let s = self.breaker.shared();
            if let Some(p) = s.complete(t, failure) {
                s.deliver(p)
            }
        }
        pub fn success(self) {
            self.record(false)
        }
        pub fn failure(self) {
            self.record(true)
        }
    }
    impl<K: Clock> Drop for BreakerPermit<'_, K> {
        fn drop(&mut self) {
            if let Some(t) = self.ticket.take() {
                self.breaker.shared().abandon(t)
            }
        }
    }
}
