//! Delay arithmetic and the jitter's random source. Delays are whole
//! nanoseconds, grown in `f64` and capped, so no attempt number overflows one.

use core::time::Duration;

use crate::clock::duration_to_nanos;
use crate::sync::{AtomicU64, Ordering};

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

/// Maps a uniform `u64` onto `[0, bound]` (multiply-shift; the bias is below
/// 2⁻⁶⁴ per value, irrelevant for delays).
fn uniform_inclusive(random: u64, bound: u64) -> u64 {
    ((u128::from(random) * (u128::from(bound) + 1)) >> 64) as u64
}

/// SplitMix64 over one atomic word: a draw is one `fetch_add` and a few
/// multiplications, shared by concurrent calls without a lock. Statistical
/// quality is ample for jitter; it is not a cryptographic source.
#[derive(Debug)]
pub(crate) struct SplitMix {
    state: AtomicU64,
}

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl SplitMix {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix {
            state: AtomicU64::new(seed),
        }
    }

    /// A generator seeded from the process's hash-map randomness (`std`) or,
    /// without `std`, from a counter shared by all generators.
    pub(crate) fn from_entropy() -> Self {
        #[cfg(feature = "std")]
        {
            use std::hash::BuildHasher;
            Self::new(std::collections::hash_map::RandomState::new().hash_one(GOLDEN_GAMMA))
        }
        #[cfg(not(feature = "std"))]
        {
            static SEEDS: AtomicU64 = AtomicU64::new(0x5EED);
            Self::new(mix(SEEDS.fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)))
        }
    }

    pub(crate) fn reseed(&self, seed: u64) {
        self.state.store(seed, Ordering::Relaxed);
    }

    pub(crate) fn next_u64(&self) -> u64 {
        mix(self
            .state
            .fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)
            .wrapping_add(GOLDEN_GAMMA))
    }
}

impl Clone for SplitMix {
    fn clone(&self) -> Self {
        SplitMix::new(self.state.load(Ordering::Relaxed))
    }
}

/// SplitMix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
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

    #[test]
    fn splitmix_matches_the_reference_sequence() {
        // First outputs of SplitMix64 seeded with 0 (Vigna's reference code).
        let rng = SplitMix::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn uniform_covers_both_ends() {
        assert_eq!(uniform_inclusive(0, 100), 0);
        assert_eq!(uniform_inclusive(u64::MAX, 100), 100);
        assert_eq!(uniform_inclusive(u64::MAX, u64::MAX), u64::MAX);
        assert_eq!(uniform_inclusive(12345, 0), 0);
    }
}
