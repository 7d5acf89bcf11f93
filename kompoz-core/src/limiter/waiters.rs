//! The semaphore's FIFO queue of waiters: a doubly linked list threaded
//! through a slab, so that a waiter is queued, handed a permit or removed on
//! cancellation in O(1), without `unsafe` and without an allocation per
//! waiter once the slab has grown.
//!
//! A slot is owned by exactly one [`Acquire`](super::Acquire) future from
//! `push` until that future calls `free`: a release *unlinks* the head and
//! marks it granted, but leaves the slot allocated, so the future can still
//! find out that it was granted. Slot indices are therefore never reused
//! while their future may look at them.

use alloc::vec::Vec;
use core::task::Waker;

const NIL: usize = usize::MAX;

#[derive(Debug)]
enum Slot {
    Vacant { next_free: usize },
    Occupied(Node),
}

#[derive(Debug)]
struct Node {
    waker: Option<Waker>,
    prev: usize,
    next: usize,
    granted: bool,
}

/// Waiters in arrival order.
#[derive(Debug)]
pub(crate) struct Waiters {
    slots: Vec<Slot>,
    head: usize,
    tail: usize,
    free: usize,
    /// Linked (not yet granted) waiters.
    queued: usize,
    /// Allocated slots: queued waiters plus granted ones not yet collected.
    occupied: usize,
}

/// A slab that grew past this many slots during a burst is given back to
/// the allocator once it empties.
const SHRINK_ABOVE: usize = 256;

impl Waiters {
    pub(crate) const fn new() -> Self {
        Waiters {
            slots: Vec::new(),
            head: NIL,
            tail: NIL,
            free: NIL,
            queued: 0,
            occupied: 0,
        }
    }

    /// How many waiters are queued (granted ones no longer count).
    pub(crate) fn len(&self) -> usize {
        self.queued
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Queues a waiter at the tail; returns its slot.
    pub(crate) fn push(&mut self, waker: Waker) -> usize {
        let node = Node {
            waker: Some(waker),
            prev: self.tail,
            next: NIL,
            granted: false,
        };
        let index = if self.free != NIL {
            let index = self.free;
            if let Slot::Vacant { next_free } = self.slots[index] {
                self.free = next_free;
            }
            self.slots[index] = Slot::Occupied(node);
            index
        } else {
            self.slots.push(Slot::Occupied(node));
            self.slots.len() - 1
        };
        if let Some(tail) = self.node_mut(self.tail) {
            tail.next = index;
        } else {
            self.head = index;
        }
        self.tail = index;
        self.queued += 1;
        self.occupied += 1;
        index
    }

    /// Unlinks the head, marks it granted and returns its waker.
    /// `None` if nobody is queued.
    pub(crate) fn grant_head(&mut self) -> Option<Option<Waker>> {
        let index = self.head;
        self.unlink(index)?;
        let node = self.node_mut(index)?;
        node.granted = true;
        Some(node.waker.take())
    }

    /// Whether the waiter in `index` has been granted a permit.
    pub(crate) fn is_granted(&self, index: usize) -> bool {
        matches!(self.slots.get(index), Some(Slot::Occupied(node)) if node.granted)
    }

    /// Stores the waker to wake when `index` is granted.
    pub(crate) fn set_waker(&mut self, index: usize, waker: &Waker) {
        if let Some(node) = self.node_mut(index) {
            match &mut node.waker {
                Some(w) => w.clone_from(waker),
                None => node.waker = Some(waker.clone()),
            }
        }
    }

    /// Gives the slot back. Returns whether its waiter had been granted a
    /// permit (which the caller then owns); a waiter still queued is unlinked.
    pub(crate) fn free(&mut self, index: usize) -> bool {
        let granted = match self.slots.get(index) {
            Some(Slot::Occupied(node)) => node.granted,
            _ => return false,
        };
        if !granted {
            self.unlink(index);
        }
        self.slots[index] = Slot::Vacant {
            next_free: self.free,
        };
        self.free = index;
        self.occupied -= 1;
        if self.occupied == 0 {
            self.slots.clear();
            self.free = NIL;
            if self.slots.capacity() > SHRINK_ABOVE {
                self.slots.shrink_to(SHRINK_ABOVE / 4);
            }
        }
        granted
    }

    fn node_mut(&mut self, index: usize) -> Option<&mut Node> {
        match self.slots.get_mut(index) {
            Some(Slot::Occupied(node)) => Some(node),
            _ => None,
        }
    }

    /// Takes a queued node out of the list. `None` if `index` is not queued.
    fn unlink(&mut self, index: usize) -> Option<()> {
        let node = self.node_mut(index)?;
        if node.granted {
            return None;
        }
        let (prev, next) = (node.prev, node.next);
        node.prev = NIL;
        node.next = NIL;
        match self.node_mut(prev) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.node_mut(next) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
        self.queued -= 1;
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waker() -> Waker {
        Waker::noop().clone()
    }

    #[test]
    fn grants_in_arrival_order_and_skips_removed() {
        let mut w = Waiters::new();
        let a = w.push(waker());
        let b = w.push(waker());
        let c = w.push(waker());
        assert_eq!(w.len(), 3);
        assert!(!w.free(b), "b was queued, not granted");
        assert!(w.grant_head().is_some());
        assert!(w.is_granted(a) && !w.is_granted(c));
        assert!(w.grant_head().is_some());
        assert!(w.is_granted(c));
        assert!(w.grant_head().is_none());
        assert!(w.free(a) && w.free(c));
        assert_eq!(w.occupied, 0);
        // Slots are reused after the slab empties.
        let d = w.push(waker());
        assert_eq!(d, 0);
        assert!(!w.free(d));
        assert!(w.is_empty());
    }

    #[test]
    fn removing_head_and_tail_keeps_the_list_whole() {
        let mut w = Waiters::new();
        let ids: Vec<usize> = (0..5).map(|_| w.push(waker())).collect();
        w.free(ids[0]);
        w.free(ids[4]);
        let e = w.push(waker()); // reuses a freed slot, goes to the tail
        for expected in [ids[1], ids[2], ids[3], e] {
            assert!(!w.is_granted(expected));
            assert!(w.grant_head().is_some());
            assert!(w.is_granted(expected), "slot {expected} is next in line");
        }
        assert!(w.grant_head().is_none());
    }
}
