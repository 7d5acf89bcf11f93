//! Delivering a breaker's state changes (`on_state_change` calls and
//! `StateChange` events) in the order they happened, whatever the callbacks
//! do. A call's own events (outcome, slow call, rejection) are not queued:
//! the calling thread delivers them (see `Shared::deliver`), so no thread
//! ever delivers other threads' per-call events.
//!
//! Transitions are queued where they happen (under the breaker's lock, so
//! the queue's order is the order of the transitions) and delivered by one
//! drainer at a time, after the bookkeeping is done and with no lock held.
//! A callback that changes the state itself (`reset()` from
//! `on_state_change`) only queues its note: the drainer already running
//! delivers it after the one in progress, so every listener sees transitions
//! in the order they happened. A thread that finds a drainer at work leaves
//! its notes to it; the drainer's work is bounded by the rate of state
//! changes.
//!
//! With `std`, a panicking callback does not stop the delivery: the other
//! notes are delivered, then the first panic resumes (or, if the thread is
//! already unwinding from another panic, is dropped, since a second panic
//! escaping a drop would abort). Without `std`, a panic ends the drain
//! early; the notes left are delivered by the next drain.

use alloc::collections::VecDeque;

use crate::Clock;
use crate::sync::Mutex;

use super::raw::Shared;
use super::{BreakerEvent, CircuitState};

/// One thing to tell the listeners. Only transitions are queued: a call's
/// own events (its outcome, a rejection) are delivered by the calling
/// thread, so a drainer's work is bounded by the rate of state changes, not
/// by the rate of calls on other threads.
#[derive(Debug)]
pub(crate) enum Note {
    /// A transition: `on_state_change`, then a `StateChange` event.
    StateChange {
        from: CircuitState,
        to: CircuitState,
    },
}

/// The queue and who is draining it.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    queue: VecDeque<Note>,
    draining: bool,
}

impl Notes {
    pub(crate) fn push(&mut self, note: Note) {
        self.queue.push_back(note);
    }

    /// Becomes the drainer, if there is work and no drainer yet.
    pub(crate) fn start(&mut self) -> bool {
        if self.draining || self.queue.is_empty() {
            return false;
        }
        self.draining = true;
        true
    }

    /// The next note, or `None` (and the drainer's role given up).
    pub(crate) fn next(&mut self) -> Option<Note> {
        let note = self.queue.pop_front();
        if note.is_none() {
            self.draining = false;
        }
        note
    }

    /// Gives up the drainer's role with notes left (a callback panicked).
    pub(crate) fn abort(&mut self) {
        self.draining = false;
    }
}

/// The first panic of a drain, held until every note is delivered.
#[cfg(feature = "std")]
pub(crate) struct Caught(Option<alloc::boxed::Box<dyn core::any::Any + Send>>);

#[cfg(feature = "std")]
impl Caught {
    pub(crate) fn new() -> Self {
        Caught(None)
    }

    /// Runs `f`; a panic is kept (the first one) instead of unwinding.
    pub(crate) fn run(&mut self, f: impl FnOnce()) {
        if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            self.0.get_or_insert(payload);
        }
    }

    /// Resumes the kept panic, unless the thread is already unwinding.
    pub(crate) fn resume(self) {
        if let Some(payload) = self.0 {
            if !std::thread::panicking() {
                std::panic::resume_unwind(payload);
            }
        }
    }
}

/// Without `std` there is no catching: a panic unwinds (where the target
/// unwinds at all) through the drain.
#[cfg(not(feature = "std"))]
pub(crate) struct Caught;

#[cfg(not(feature = "std"))]
impl Caught {
    pub(crate) fn new() -> Self {
        Caught
    }

    pub(crate) fn run(&mut self, f: impl FnOnce()) {
        f();
    }

    pub(crate) fn resume(self) {}
}

impl<K: Clock> Shared<K> {
    /// Queues a transition for the listeners (nothing if no one listens).
    pub(super) fn post_transition(&self, from: CircuitState, to: CircuitState) {
        if self.listens {
            self.notes.lock().push(Note::StateChange { from, to });
        }
    }

    /// Delivers the queued notes, in order, unless another drainer is at
    /// work (it will deliver ours). Never called with `locked` held. See
    /// `notify.rs` for what a panicking callback does.
    #[inline]
    pub(super) fn drain(&self) {
        // On every completion: a branch when no one listens.
        if self.listens {
            self.drain_listened();
        }
    }

    #[inline(never)]
    pub(super) fn drain_listened(&self) {
        if !self.notes.lock().start() {
            return;
        }
        // Without `std` a callback's panic unwinds through here: the guard
        // gives up the drainer's role so the next drain delivers the rest.
        struct Draining<'a>(&'a Mutex<Notes>);
        impl Drop for Draining<'_> {
            fn drop(&mut self) {
                self.0.lock().abort();
            }
        }
        let draining = Draining(&self.notes);
        let mut caught = Caught::new();
        loop {
            let next = self.notes.lock().next();
            let Some(note) = next else { break };
            match note {
                Note::StateChange { from, to } => {
                    if let Some(callback) = &self.on_state_change {
                        caught.run(|| callback(from, to, &self.stats()));
                    }
                    caught.run(|| self.deliver_event(&BreakerEvent::StateChange { from, to }));
                }
            }
        }
        // `next` gave up the role already.
        core::mem::forget(draining);
        caught.resume();
    }

    pub(super) fn deliver_event(&self, event: &BreakerEvent) {
        if let Some(subscriber) = &self.on_event {
            subscriber(event);
        }
    }
}
