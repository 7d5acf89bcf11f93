//! The breaker's state ([`CircuitState`]) and the word that packs it, with
//! everything the lock-free paths need, into one `AtomicU64`.

use core::fmt;

/// Where a circuit breaker stands.
///
/// `Display` prints the reference's names (`CLOSED`, `OPEN`, `HALF_OPEN`), so
/// `println!("Circuit {old} -> {new}")` reads as kompoz's callback does.
///
/// A breaker forced open by hand reports [`Open`](CircuitState::Open), one
/// forced closed reports [`Closed`](CircuitState::Closed); tell them apart
/// from automatic states with `is_forced()`.
///
/// # Examples
///
/// ```
/// use kompoz_core::CircuitState;
///
/// assert_eq!(CircuitState::HalfOpen.to_string(), "HALF_OPEN");
/// assert_eq!(format!("{:?}", CircuitState::Open), "Open");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CircuitState {
    /// Normal operation: calls pass through and outcomes are recorded.
    Closed,
    /// Tripped: calls are rejected at once with `(false, ctx)`; the inner
    /// combinator does not run.
    Open,
    /// Testing recovery: a limited number of probe calls are admitted.
    HalfOpen,
}

impl CircuitState {
    /// The reference's name: `"CLOSED"`, `"OPEN"` or `"HALF_OPEN"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "CLOSED",
            CircuitState::Open => "OPEN",
            CircuitState::HalfOpen => "HALF_OPEN",
        }
    }
}

impl fmt::Display for CircuitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Who is in charge of the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The policies move the state.
    Auto,
    /// `force_open()`: rejects every call, never probes.
    ForcedOpen,
    /// `force_closed()`: admits every call, records outcomes, never trips.
    ForcedClosed,
}

/// The packed state word.
///
/// ```text
/// bits  0..16  failure streak (CLOSED) / probes in flight (HALF_OPEN)
/// bits 16..32  probe successes (HALF_OPEN)
/// bits 32..34  state
/// bits 34..36  mode
/// bits 36..64  generation (28 bits, wrapping)
/// ```
///
/// Every state change bumps the generation and zeroes both counters, so a
/// call that captured the word at admission can tell, with one load, whether
/// its result still belongs to the state it was admitted in.
///
/// The generation wraps after 2²⁸ state changes. A call that stays in
/// flight across exactly a multiple of 2²⁸ of them, and ends in a period of
/// the same kind (CLOSED, or HALF_OPEN for a probe), is taken for a call of
/// that period: its one outcome counts there. Wider generations would cost
/// the counters' bits or a second word per ticket and a second load per
/// admission on the hot path; the bounded effect (one outcome, never a
/// leak) is documented on `CircuitBreaker` instead.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word(pub(crate) u64);

/// A [`Word`] decoded: each state with the counters it keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum View {
    /// Consecutive failures so far.
    Closed {
        failure_streak: u32,
    },
    Open,
    /// Probes admitted and not yet finished, and probe successes so far.
    HalfOpen {
        in_flight: u32,
        successes: u32,
    },
}

/// The largest value either 16-bit counter holds; also the largest
/// `failure_threshold` and `half_open_max_calls` a breaker accepts.
pub(crate) const COUNTER_MAX: u32 = 0xFFFF;

const STATE_SHIFT: u32 = 32;
const MODE_SHIFT: u32 = 34;
const GEN_SHIFT: u32 = 36;
const GEN_MASK: u64 = (1 << 28) - 1;

impl Word {
    /// CLOSED, automatic, generation 0, counters zero.
    pub(crate) const INITIAL: Word = Word(0);

    pub(crate) fn state(self) -> CircuitState {
        match (self.0 >> STATE_SHIFT) & 0b11 {
            0 => CircuitState::Closed,
            1 => CircuitState::Open,
            _ => CircuitState::HalfOpen,
        }
    }

    pub(crate) fn mode(self) -> Mode {
        match (self.0 >> MODE_SHIFT) & 0b11 {
            0 => Mode::Auto,
            1 => Mode::ForcedOpen,
            _ => Mode::ForcedClosed,
        }
    }

    pub(crate) fn generation(self) -> u32 {
        ((self.0 >> GEN_SHIFT) & GEN_MASK) as u32
    }

    /// Whether a call admitted in `generation` while `state` held belongs
    /// to this word's period. The state is checked too, although a
    /// generation names one state, because the generation wraps (see the
    /// type's docs): a wrapped generation must at least not pass a CLOSED
    /// outcome off as a probe's, or the reverse.
    ///
    /// One masked compare, as cheap as the generation's alone.
    #[inline]
    pub(crate) fn admitted(self, generation: u32, state: CircuitState) -> bool {
        const MASK: u64 = (GEN_MASK << GEN_SHIFT) | (0b11 << STATE_SHIFT);
        let expected = (u64::from(generation) << GEN_SHIFT) | (state_bits(state) << STATE_SHIFT);
        self.0 & MASK == expected
    }

    /// The word decoded: the state with the counters it keeps, by name.
    /// The logic reads the word through this; the hot paths use the
    /// accessors below, which compile to the same masks.
    #[inline]
    pub(crate) fn view(self) -> View {
        match self.state() {
            CircuitState::Closed => View::Closed {
                failure_streak: self.low(),
            },
            CircuitState::Open => View::Open,
            CircuitState::HalfOpen => View::HalfOpen {
                in_flight: self.low(),
                successes: self.high(),
            },
        }
    }

    /// The CLOSED failure streak (meaningful in a CLOSED word only; checked
    /// through the generation by its callers).
    #[inline]
    pub(crate) fn failure_streak(self) -> u32 {
        self.low()
    }

    /// This CLOSED word with another failure streak.
    pub(crate) fn with_failure_streak(self, streak: u32) -> Word {
        self.with_low(streak)
    }

    /// This HALF_OPEN word with other probe counters.
    pub(crate) fn with_probes(self, in_flight: u32, successes: u32) -> Word {
        self.with_low(in_flight).with_high(successes)
    }

    fn low(self) -> u32 {
        (self.0 & 0xFFFF) as u32
    }

    fn high(self) -> u32 {
        ((self.0 >> 16) & 0xFFFF) as u32
    }

    fn with_low(self, low: u32) -> Word {
        Word((self.0 & !0xFFFF) | u64::from(low.min(COUNTER_MAX)))
    }

    fn with_high(self, high: u32) -> Word {
        Word((self.0 & !(0xFFFF << 16)) | (u64::from(high.min(COUNTER_MAX)) << 16))
    }

    /// The word of the next state: generation + 1, counters zero.
    pub(crate) fn next(self, state: CircuitState, mode: Mode) -> Word {
        let generation = (u64::from(self.generation()) + 1) & GEN_MASK;
        let state = state_bits(state);
        let mode = match mode {
            Mode::Auto => 0,
            Mode::ForcedOpen => 1,
            Mode::ForcedClosed => 2,
        };
        Word((generation << GEN_SHIFT) | (mode << MODE_SHIFT) | (state << STATE_SHIFT))
    }
}

/// A state's two bits in the word.
const fn state_bits(state: CircuitState) -> u64 {
    match state {
        CircuitState::Closed => 0,
        CircuitState::Open => 1,
        CircuitState::HalfOpen => 2,
    }
}

impl fmt::Debug for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Word")
            .field("state", &self.state())
            .field("mode", &self.mode())
            .field("generation", &self.generation())
            .field("view", &self.view())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let w = Word::INITIAL.next(CircuitState::HalfOpen, Mode::ForcedClosed);
        assert_eq!(w.state(), CircuitState::HalfOpen);
        assert_eq!(w.mode(), Mode::ForcedClosed);
        assert_eq!(w.generation(), 1);
        let w = w.with_probes(7, COUNTER_MAX);
        assert_eq!(
            w.view(),
            View::HalfOpen {
                in_flight: 7,
                successes: COUNTER_MAX
            }
        );
        assert_eq!(w.state(), CircuitState::HalfOpen);
        assert_eq!(
            w.with_probes(COUNTER_MAX + 5, 0).view(),
            View::HalfOpen {
                in_flight: COUNTER_MAX,
                successes: 0
            }
        );
    }

    #[test]
    fn admitted_matches_generation_and_state_but_not_mode_or_counters() {
        let w = Word(GEN_MASK << GEN_SHIFT)
            .next(CircuitState::HalfOpen, Mode::ForcedClosed)
            .with_probes(3, 2);
        assert!(w.admitted(0, CircuitState::HalfOpen));
        assert!(!w.admitted(0, CircuitState::Closed));
        assert!(!w.admitted(1, CircuitState::HalfOpen));
        let c = Word::INITIAL.next(CircuitState::Closed, Mode::Auto);
        assert!(c.admitted(1, CircuitState::Closed));
        assert!(!c.admitted(1, CircuitState::HalfOpen));
    }

    #[test]
    fn generation_wraps_and_next_zeroes_counters() {
        let w = Word(GEN_MASK << GEN_SHIFT);
        assert_eq!(u64::from(w.generation()), GEN_MASK);
        let n = w.with_probes(3, 1).next(CircuitState::Open, Mode::Auto);
        assert_eq!(n.generation(), 0);
        assert_eq!(n.with_probes(0, 0), n);
        assert_eq!(n.state(), CircuitState::Open);
        assert_eq!(n.mode(), Mode::Auto);
    }
}
