//! The semaphore's FIFO queue of waiters: a doubly linked list threaded
//! through a slab, so that a waiter is queued, handed a permit or removed on
//! cancellation in O(1), without `unsafe` and without an allocation per
//! waiter once the slab has grown.
//!
//! Each waiter draws a *ticket* when it is queued; tickets increase along
//! the list. A release grants the head and frees its slot at once, and the
//! semaphore publishes the granted ticket in an atomic: a woken waiter learns
//! that it holds a permit from that atomic alone (its ticket is at most the
//! last one granted), without taking the lock again. A slot index is
//! therefore only meaningful to its future while the future's ticket has not
//! been granted, which the future checks under the lock before touching it.

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
    ticket: usize,
    prev: usize,
    next: usize,
}

/// Whether the waiter holding `ticket` has been granted a permit, given the
/// last ticket granted. Tickets wrap around and the signed distance decides,
/// which holds while fewer than `usize::MAX / 2` hand-offs happen between a
/// waiter's grant and its next poll or drop. On 64-bit targets that cannot
/// happen; on 32-bit targets it would take 2^31 hand-offs while one granted
/// task is never polled (an executor that stopped polling it), after which
/// that waiter could misread its grant. Documented, not guarded: a guard
/// would cost every hand-off a wider atomic on those targets.
#[inline]
pub(crate) fn is_granted(last_granted: usize, ticket: usize) -> bool {
    (last_granted.wrapping_sub(ticket) as isize) >= 0
}

/// Waiters in arrival order.
#[derive(Debug)]
pub(crate) struct Waiters {
    slots: Vec<Slot>,
    head: usize,
    tail: usize,
    free: usize,
    /// Queued waiters (every occupied slot).
    queued: usize,
    /// The ticket the next queued waiter draws.
    next_ticket: usize,
}

/// A slab that grew past this many slots during a burst is given back to
/// the allocator once it empties.
const SHRINK_ABOVE: usize = 256;

impl Waiters {
    /// An empty queue whose first waiter draws the ticket after `last_granted`.
    pub(crate) const fn new(last_granted: usize) -> Self {
        Waiters {
            slots: Vec::new(),
            head: NIL,
            tail: NIL,
            free: NIL,
            queued: 0,
            next_ticket: last_granted.wrapping_add(1),
        }
    }

    /// How many waiters are queued.
    pub(crate) fn len(&self) -> usize {
        self.queued
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Queues a waiter at the tail; returns its slot and its ticket.
    pub(crate) fn push(&mut self, waker: Waker) -> (usize, usize) {
        let ticket = self.next_ticket;
        self.next_ticket = ticket.wrapping_add(1);
        let node = Node {
            waker: Some(waker),
            ticket,
            prev: self.tail,
            next: NIL,
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
        (index, ticket)
    }

    /// Takes the head out of the queue and frees its slot; returns its
    /// ticket (now granted) and its waker. `None` if nobody is queued.
    pub(crate) fn grant_head(&mut self) -> Option<(usize, Option<Waker>)> {
        let node = self.remove(self.head)?;
        Some((node.ticket, node.waker))
    }

    /// Stores the waker to wake when the waiter in `index` is granted.
    /// `index` must be a queued waiter's (its ticket not granted).
    pub(crate) fn set_waker(&mut self, index: usize, waker: &Waker) {
        if let Some(node) = self.node_mut(index) {
            match &mut node.waker {
                Some(w) => w.clone_from(waker),
                None => node.waker = Some(waker.clone()),
            }
        }
    }

    /// Takes a waiter that gave up out of the queue. `index` must be a
    /// queued waiter's (its ticket not granted).
    pub(crate) fn cancel(&mut self, index: usize) {
        self.remove(index);
    }

    fn node_mut(&mut self, index: usize) -> Option<&mut Node> {
        match self.slots.get_mut(index) {
            Some(Slot::Occupied(node)) => Some(node),
            _ => None,
        }
    }

    /// Unlinks the node in `index` and frees its slot. `None` if the slot
    /// is vacant.
    fn remove(&mut self, index: usize) -> Option<Node> {
        let vacant = Slot::Vacant {
            next_free: self.free,
        };
        let slot = self.slots.get_mut(index)?;
        if matches!(slot, Slot::Vacant { .. }) {
            return None;
        }
        let Slot::Occupied(node) = core::mem::replace(slot, vacant) else {
            return None;
        };
        match self.node_mut(node.prev) {
            Some(p) => p.next = node.next,
            None => self.head = node.next,
        }
        match self.node_mut(node.next) {
            Some(n) => n.prev = node.prev,
            None => self.tail = node.prev,
        }
        self.free = index;
        self.queued -= 1;
        if self.queued == 0 {
            self.slots.clear();
            self.free = NIL;
            self.head = NIL;
            self.tail = NIL;
            if self.slots.capacity() > SHRINK_ABOVE {
                self.slots.shrink_to(SHRINK_ABOVE / 4);
            }
        }
        Some(node)
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
        let mut w = Waiters::new(0);
        let (_, a) = w.push(waker());
        let (b_index, b) = w.push(waker());
        let (_, c) = w.push(waker());
        assert_eq!(w.len(), 3);
        assert!(a < b && b < c, "tickets increase along the queue");
        w.cancel(b_index);
        let (granted, _) = w.grant_head().expect("a is queued");
        assert_eq!(granted, a);
        assert!(is_granted(granted, a) && !is_granted(granted, c));
        let (granted, _) = w.grant_head().expect("c is queued");
        assert_eq!(granted, c, "the cancelled b is skipped");
        assert!(w.grant_head().is_none());
        assert!(w.is_empty());
        // Slots are reused after the slab empties.
        let (d, _) = w.push(waker());
        assert_eq!(d, 0);
        w.cancel(d);
        assert!(w.is_empty());
    }

    #[test]
    fn removing_head_and_tail_keeps_the_list_whole() {
        let mut w = Waiters::new(0);
        let ids: Vec<(usize, usize)> = (0..5).map(|_| w.push(waker())).collect();
        w.cancel(ids[0].0);
        w.cancel(ids[4].0);
        let e = w.push(waker()); // reuses a freed slot, goes to the tail
        for expected in [ids[1], ids[2], ids[3], e] {
            let (granted, _) = w.grant_head().expect("queued");
            assert_eq!(granted, expected.1, "slot {} is next in line", expected.0);
        }
        assert!(w.grant_head().is_none());
    }

    #[test]
    fn tickets_compare_across_the_wrap() {
        let mut w = Waiters::new(usize::MAX - 1);
        let (_, a) = w.push(waker());
        let (_, b) = w.push(waker());
        assert_eq!((a, b), (usize::MAX, 0));
        assert!(!is_granted(usize::MAX - 1, a));
        assert!(is_granted(a, a) && !is_granted(a, b));
        assert!(is_granted(b, a) && is_granted(b, b));
    }
}
