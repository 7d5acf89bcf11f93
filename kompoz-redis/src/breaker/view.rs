//! A replica's cached view of the shared breaker: what a CLOSED call reads
//! instead of asking Redis.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use kompoz_core::{CircuitState, Instant};

use super::script::Remote;

const STATE_MASK: u64 = 0b11;
/// The fleet has a failure streak going: a success must report to end it.
const STREAK: u64 = 1 << 2;
/// HALF_OPEN with every probe slot taken, as of the last answer.
const PROBES_FULL: u64 = 1 << 3;
const GENERATION_SHIFT: u32 = 8;

/// One word (state, flags, generation) read with one atomic load on the
/// CLOSED path, and the end of the open period beside it (written before
/// the word, as the core breaker does, so a reader of an OPEN word sees
/// that period's deadline or a later one's).
pub(super) struct View {
    word: AtomicU64,
    open_until: AtomicU64,
    /// When the view last took on an answer (`TokioClock` nanos; 0: never),
    /// read on the CLOSED path to check the view's age.
    synced_at: AtomicU64,
    /// Updates are serialised, and ordered by the server's clock: a reply
    /// older than the view applied last is dropped (a sync and a call's
    /// round trip can finish in either order).
    last: Mutex<Last>,
}

struct Last {
    server_now_us: u64,
    synced_at: Option<Instant>,
}

/// What a call reads.
#[derive(Clone, Copy, Debug)]
pub(super) struct Snapshot {
    pub(super) state: CircuitState,
    pub(super) generation: u64,
    pub(super) streak: bool,
    pub(super) probes_full: bool,
    pub(super) open_until: Instant,
}

/// A state change the view took on.
#[derive(Clone, Copy, Debug)]
pub(super) struct Change {
    pub(super) from: CircuitState,
    pub(super) to: CircuitState,
    pub(super) generation: u64,
}

fn state_bits(state: CircuitState) -> u64 {
    match state {
        CircuitState::Closed => 0,
        CircuitState::Open => 1,
        _ => 2,
    }
}

fn state_of(bits: u64) -> CircuitState {
    match bits & STATE_MASK {
        0 => CircuitState::Closed,
        1 => CircuitState::Open,
        _ => CircuitState::HalfOpen,
    }
}

impl View {
    pub(super) fn new() -> Self {
        View {
            word: AtomicU64::new(0),
            open_until: AtomicU64::new(0),
            synced_at: AtomicU64::new(0),
            last: Mutex::new(Last {
                server_now_us: 0,
                synced_at: None,
            }),
        }
    }

    #[inline]
    pub(super) fn load(&self) -> Snapshot {
        let word = self.word.load(Ordering::Acquire);
        Snapshot {
            state: state_of(word),
            generation: word >> GENERATION_SHIFT,
            streak: word & STREAK != 0,
            probes_full: word & PROBES_FULL != 0,
            open_until: Instant::from_nanos(self.open_until.load(Ordering::Acquire)),
        }
    }

    /// When the view last took on an answer from Redis.
    pub(super) fn synced_at(&self) -> Option<Instant> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .synced_at
    }

    /// Whether the view took on an answer since `since` (one atomic load).
    #[inline]
    pub(super) fn synced_since(&self, since: Instant) -> bool {
        self.synced_at.load(Ordering::Acquire) >= since.as_nanos()
    }

    /// Takes on `remote`, received at `received` (local time), unless a
    /// newer answer was applied already. Says which state change that made.
    pub(super) fn apply(
        &self,
        remote: &Remote,
        received: Instant,
        half_open_max_calls: u32,
    ) -> Option<Change> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        // A restarted server's clock reads on (it is the host's); its state
        // starts afresh, which the new answer brings.
        if remote.now_us < last.server_now_us {
            return None;
        }
        last.server_now_us = remote.now_us;
        last.synced_at = Some(received);
        self.synced_at.store(received.as_nanos(), Ordering::Release);
        let mut word = state_bits(remote.state) | (remote.generation << GENERATION_SHIFT);
        if remote.failures > 0 {
            word |= STREAK;
        }
        if remote.state == CircuitState::HalfOpen && remote.probes >= half_open_max_calls {
            word |= PROBES_FULL;
        }
        self.open_until
            .store((received + remote.open_for).as_nanos(), Ordering::Release);
        let before = self.word.swap(word, Ordering::AcqRel);
        let from = state_of(before);
        // Between two answers the fleet may have gone round (CLOSED, OPEN,
        // HALF_OPEN, CLOSED): only a change this replica sees is reported.
        (from != remote.state).then_some(Change {
            from,
            to: remote.state,
            generation: remote.generation,
        })
    }

    /// Marks the probe slots as all taken (a probe was refused), until the
    /// next answer says otherwise.
    pub(super) fn probes_taken(&self, generation: u64) {
        let _ = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                (state_of(word) == CircuitState::HalfOpen && word >> GENERATION_SHIFT == generation)
                    .then_some(word | PROBES_FULL)
            });
    }
}
