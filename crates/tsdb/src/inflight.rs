//! Appends whose samples are in the head but whose WAL record may not be written yet.
//!
//! An append applies its samples to the head before it logs them. A concurrent request
//! repeating one of those samples sees it as an accepted duplicate and logs nothing for
//! it, so before acknowledging it must wait until every append that could have put the
//! sample there has written its record ([`Inflight::wait_before`]), and then until the
//! WAL has made that record durable.

use std::collections::BTreeSet;

use parking_lot::{Condvar, Mutex};

#[derive(Debug, Default)]
struct State {
    next: u64,
    pending: BTreeSet<u64>,
}

/// Tickets of the appends in progress.
#[derive(Debug, Default)]
pub(crate) struct Inflight {
    state: Mutex<State>,
    done: Condvar,
}

/// One append in progress; ends (waking waiters) when dropped.
#[derive(Debug)]
pub(crate) struct Ticket<'a> {
    inflight: &'a Inflight,
    id: Option<u64>,
}

impl Inflight {
    /// Registers an append; call before it touches the head.
    pub(crate) fn begin(&self) -> Ticket<'_> {
        let mut state = self.state.lock();
        let id = state.next;
        state.next = state.next.wrapping_add(1);
        state.pending.insert(id);
        Ticket {
            inflight: self,
            id: Some(id),
        }
    }

    /// Tickets below this were handed out before the call.
    pub(crate) fn horizon(&self) -> u64 {
        self.state.lock().next
    }

    /// Blocks until no append with a ticket below `horizon` is in progress.
    pub(crate) fn wait_before(&self, horizon: u64) {
        let mut state = self.state.lock();
        while state.pending.first().is_some_and(|first| *first < horizon) {
            self.done.wait(&mut state);
        }
    }

    fn end(&self, id: u64) {
        self.state.lock().pending.remove(&id);
        self.done.notify_all();
    }
}

impl Ticket<'_> {
    /// Ends the append now (its record is written or it failed).
    pub(crate) fn end(&mut self) {
        if let Some(id) = self.id.take() {
            self.inflight.end(id);
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_only_for_older_tickets() {
        let inflight = Inflight::default();
        let mut first = inflight.begin();
        let horizon = inflight.horizon();
        let _later = inflight.begin();
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| inflight.wait_before(horizon));
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!waiter.is_finished());
            first.end();
            waiter.join().unwrap();
        });
    }
}
