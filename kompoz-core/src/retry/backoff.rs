//! Delay arithmetic (the random source is `crate::rng`). Delays are whole
//! nanoseconds, grown in `f64` and capped, so no attempt number overflows one.

use core::time::Duration;

use crate::clock::duration_to_nanos;
// `SplitMix` is re-exported for `retry.rs`, which names it through here.
pub(crate) use crate::rng::SplitMix;
use crate::rng::uniform_inclusive;

/// How a retry's delays grow, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Backoff {
    Fixed(u64),
    Exponential { base: u64, factor: f64, max: u64 },
}

impl Backoff {
    /// The delays, starting with the one after the first failure.
    pub(crate) fn delays(self) -> Delays {
        let first = match self {
            Backoff::Fixed(d) => d,
            Backoff::Exponential { base, .. } => base,
        };
        Delays {
            backoff: self,
            exact: first as f64,
            current: first,
        }
    }
}

/// The sequence of a back-off's delays.
///
/// An exponential delay is `base · factorⁿ` computed in `f64` (which `core`
/// multiplies without `std`), rounded down to whole nanoseconds only when
/// it is read: growing from the previous *rounded* delay would keep a 1 ns
/// base at 1 ns under any factor below 2. The sequence never decreases and
/// never exceeds `max`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Delays {
    backoff: Backoff,
    /// The unrounded delay (exponential back-off only).
    exact: f64,
    current: u64,
}

impl Delays {
    /// The current delay, in nanoseconds.
    pub(crate) fn current(&self) -> u64 {
        self.current
    }

    /// Moves on to the next delay.
    pub(crate) fn advance(&mut self) {
        let Backoff::Exponential { factor, max, .. } = self.backoff else {
            return;
        };
        if self.current >= max {
            return;
        }
        self.exact *= factor;
        self.current = if self.exact >= max as f64 {
            max
        } else {
            // `as` rounds down (and saturates); the clamp keeps the sequence
            // non-decreasing whatever `f64` rounding does near 2⁵³ ns.
            (self.exact as u64).clamp(self.current, max)
        };
    }
}

/// Randomises retry delays, so that many clients retrying at once do not
/// retry in lock-step.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use kompoz_core::{rule, Backoff, ClockExt, Jitter, ManualClock};
///
/// let r = ManualClock::new()
///     .retry(rule(async |_: &()| true), 3)?
///     .backoff(Backoff::exponential(Duration::from_millis(100), 2.0, Duration::from_secs(10))?)
///     .jitter(Jitter::Full)
///     .jitter_seed(42); // reproducible delays
/// # let _ = r;
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Jitter {
    /// The delays as configured.
    #[default]
    None,
    /// "Full jitter": each delay is drawn uniformly from `[0, delay]`.
    Full,
    /// kompoz's `jitter`: a uniform draw from `[0, max]` added to each delay
    /// (after the cap of an exponential back-off, so a delay may exceed the
    /// cap by up to `max`).
    Additive(Duration),
}

impl Jitter {
    /// `delay` with this jitter applied.
    pub(crate) fn apply(self, delay: u64, rng: &SplitMix) -> u64 {
        match self {
            Jitter::None => delay,
            Jitter::Full => uniform_inclusive(rng.next_u64(), delay),
            Jitter::Additive(max) => {
                delay.saturating_add(uniform_inclusive(rng.next_u64(), duration_to_nanos(max)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_saturates_at_the_cap_and_never_decreases() {
        let b = Backoff::Exponential {
            base: 1,
            factor: 10.0,
            max: u64::MAX,
        };
        let mut delays = b.delays();
        for _ in 0..10_000 {
            let d = delays.current();
            delays.advance();
            assert!(delays.current() >= d);
        }
        assert_eq!(delays.current(), u64::MAX);
    }
}
