//! The crate's one random source: SplitMix64, for jitter (the breaker's open
//! periods, retry delays). Statistical quality is ample for spreading delays;
//! it is not a cryptographic source.

use crate::sync::{AtomicU64, Ordering};

/// SplitMix64's increment (the golden ratio, as a 64-bit fraction).
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 over one atomic word: a draw is one `fetch_add` and a few
/// multiplications, shared by concurrent calls without a lock.
#[derive(Debug)]
pub(crate) struct SplitMix {
    state: AtomicU64,
}

impl SplitMix {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix {
            state: AtomicU64::new(seed),
        }
    }

    /// A generator seeded with [`entropy_seed`].
    pub(crate) fn from_entropy() -> Self {
        Self::new(entropy_seed())
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

/// A clone draws its own stream, seeded by one draw of the original: cloned
/// policies must not retry in lock-step, which is what jitter is there to
/// prevent. Clones of a seeded generator stay reproducible.
impl Clone for SplitMix {
    fn clone(&self) -> Self {
        SplitMix::new(self.next_u64())
    }
}

/// One SplitMix64 step on a plain state word, for a generator kept under a
/// lock: the same sequence as [`SplitMix::next_u64`] from the same seed.
pub(crate) fn next_u64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(GOLDEN_GAMMA);
    mix(*state)
}

/// A seed from the process's hash-map randomness (`std`) or, without `std`,
/// from a counter shared by all generators (distinct, not unpredictable:
/// pass a seed where that matters).
pub(crate) fn entropy_seed() -> u64 {
    #[cfg(feature = "std")]
    {
        use std::hash::BuildHasher;
        std::collections::hash_map::RandomState::new().hash_one(GOLDEN_GAMMA)
    }
    #[cfg(not(feature = "std"))]
    {
        static SEEDS: AtomicU64 = AtomicU64::new(0x5EED);
        mix(SEEDS.fetch_add(GOLDEN_GAMMA, Ordering::Relaxed))
    }
}

/// Maps a uniform `u64` onto `[0, 1)` (its top 53 bits).
pub(crate) fn unit(random: u64) -> f64 {
    (random >> 11) as f64 / (1u64 << 53) as f64
}

/// Maps a uniform `u64` onto `[0, bound]` (multiply-shift; the bias is below
/// 2⁻⁶⁴ per value, irrelevant for delays).
pub(crate) fn uniform_inclusive(random: u64, bound: u64) -> u64 {
    ((u128::from(random) * (u128::from(bound) + 1)) >> 64) as u64
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
    fn splitmix_matches_the_reference_sequence() {
        // First outputs of SplitMix64 seeded with 0 (Vigna's reference code).
        let rng = SplitMix::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let mut state = 0;
        assert_eq!(next_u64(&mut state), 0xE220_A839_7B1D_CDAF);
        assert_eq!(next_u64(&mut state), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn uniform_covers_both_ends() {
        assert_eq!(uniform_inclusive(0, 100), 0);
        assert_eq!(uniform_inclusive(u64::MAX, 100), 100);
        assert_eq!(uniform_inclusive(u64::MAX, u64::MAX), u64::MAX);
        assert_eq!(uniform_inclusive(12345, 0), 0);
        assert_eq!(unit(0), 0.0);
        assert!(unit(u64::MAX) < 1.0);
    }
}
