//! The clients waiting for the writes this node proposed: one slot per proposed log entry, in
//! index order, holding the clients of its members (one for a plain entry, one per write for a
//! group entry).
//!
//! An entry's members share its term and deadline, so they are kept once per entry; a round
//! of 340 grouped writes costs one slot, not 340 inserts and removals in an ordered map (which
//! took 6% of the server's instructions under `TS.ADD -P 16`).

use std::collections::VecDeque;

use super::ConnId;
use super::log::Decoded;
use super::write::ReplyShape;
use crate::Instant;
use crate::raft::Term;

/// One client waiting for one member of an entry.
#[derive(Debug)]
pub(super) struct Waiter {
    pub(super) conn: ConnId,
    pub(super) shape: ReplyShape,
    /// The member as proposed, which its apply takes instead of decoding the logged bytes: the
    /// entry at this index in this term is the one this node proposed (one entry per index
    /// and term), and its bytes decode to exactly this.
    pub(super) decoded: Option<Decoded>,
}

#[derive(Debug)]
struct Slot {
    index: u64,
    /// The term the entry was proposed in: if another entry lands at its index, it was lost.
    term: Term,
    /// After this its clients are told the outcome is unknown.
    deadline: Instant,
    /// By member; `None` once answered.
    members: Vec<Option<Waiter>>,
    /// Members not yet answered.
    left: usize,
}

/// The waiting clients, by log index and member.
#[derive(Debug, Default)]
pub(super) struct Waiters {
    /// In increasing index order, none empty.
    slots: VecDeque<Slot>,
}

impl Waiters {
    /// Adds the members of the entry proposed at `index` in `term`. Slots at or after `index`
    /// held entries this node's log no longer has (a later leader overwrote them and this node
    /// now appends at `index`): their clients go to `lost`.
    pub(super) fn propose(
        &mut self,
        index: u64,
        term: Term,
        deadline: Instant,
        members: Vec<Waiter>,
        lost: &mut Vec<Waiter>,
    ) {
        while self.slots.back().is_some_and(|s| s.index >= index) {
            let slot = self.slots.pop_back().expect("checked");
            lost.extend(slot.members.into_iter().flatten());
        }
        if members.is_empty() {
            return;
        }
        self.slots.push_back(Slot {
            index,
            term,
            deadline,
            left: members.len(),
            members: members.into_iter().map(Some).collect(),
        });
    }

    /// The lowest index anyone waits for.
    pub(super) fn first_index(&self) -> Option<u64> {
        self.slots.front().map(|s| s.index)
    }

    /// The deadline of the lowest index. Deadlines mostly grow with the index, so it is
    /// usually the earliest (see `Node::poll_timeout`).
    pub(super) fn first_deadline(&self) -> Option<Instant> {
        self.slots.front().map(|s| s.deadline)
    }

    fn position(&self, index: u64) -> Option<usize> {
        self.slots.binary_search_by_key(&index, |s| s.index).ok()
    }

    fn find(&mut self, index: u64) -> Option<&mut Slot> {
        let at = self.position(index)?;
        self.slots.get_mut(at)
    }

    /// Takes the decoded form of `member` of the entry at `index`, if this node proposed that
    /// very entry (same index and term) and still has it.
    pub(super) fn take_decoded(&mut self, index: u64, term: Term, member: u32) -> Option<Decoded> {
        let slot = self.find(index).filter(|s| s.term == term)?;
        let waiter = slot.members.get_mut(member as usize)?.as_mut()?;
        waiter.decoded.take()
    }

    /// Removes the client of `member` of the entry at `index`, with the term it was proposed
    /// in. Slots before `index` stay (see [`Waiters::take_through`]).
    pub(super) fn take(&mut self, index: u64, member: u32) -> Option<(Term, Waiter)> {
        let at = self.position(index)?;
        let slot = &mut self.slots[at];
        let waiter = slot.members.get_mut(member as usize)?.take()?;
        slot.left -= 1;
        let term = slot.term;
        if slot.left == 0 {
            // Applied in order, so an emptied slot is nearly always the first.
            self.slots.remove(at);
        }
        Some((term, waiter))
    }

    /// Removes every client of an entry at or before `index`.
    pub(super) fn take_through(&mut self, index: u64) -> Vec<Waiter> {
        let mut out = Vec::new();
        while self.slots.front().is_some_and(|s| s.index <= index) {
            let slot = self.slots.pop_front().expect("checked");
            out.extend(slot.members.into_iter().flatten());
        }
        out
    }

    /// Removes every client whose deadline is at or before `now`.
    pub(super) fn take_expired(&mut self, now: Instant) -> Vec<Waiter> {
        let mut out = Vec::new();
        self.slots.retain_mut(|s| {
            if s.deadline > now {
                return true;
            }
            out.extend(s.members.drain(..).flatten());
            false
        });
        out
    }

    /// Removes every client.
    pub(super) fn take_all(&mut self) -> Vec<Waiter> {
        self.take_through(u64::MAX)
    }

    /// Asserts the slots' order and counts.
    pub(super) fn check_invariants(&self) {
        let mut prev = None;
        for s in &self.slots {
            assert!(prev < Some(s.index), "waiter slots out of index order");
            prev = Some(s.index);
            let left = s.members.iter().filter(|m| m.is_some()).count();
            assert_eq!(left, s.left, "a waiter slot miscounts its members");
            assert!(left > 0, "an empty waiter slot kept");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(conn: u64) -> Waiter {
        Waiter {
            conn: ConnId(conn),
            shape: ReplyShape::Single,
            decoded: None,
        }
    }

    fn conns(ws: Vec<Waiter>) -> Vec<u64> {
        ws.into_iter().map(|w| w.conn.0).collect()
    }

    #[test]
    fn members_are_taken_one_by_one_and_an_emptied_slot_goes() {
        let mut ws = Waiters::default();
        let mut lost = Vec::new();
        let t = Instant::from_millis(10);
        ws.propose(5, Term(2), t, vec![w(1), w(2)], &mut lost);
        ws.propose(6, Term(2), t, vec![w(3)], &mut lost);
        assert!(lost.is_empty());
        assert_eq!(
            ws.take(5, 1).map(|(t, w)| (t, w.conn.0)),
            Some((Term(2), 2))
        );
        assert!(ws.take(5, 1).is_none(), "taken once");
        assert_eq!(ws.first_index(), Some(5));
        assert_eq!(ws.take(5, 0).map(|(_, w)| w.conn.0), Some(1));
        assert_eq!(ws.first_index(), Some(6));
        assert!(ws.take(4, 0).is_none() && ws.take(6, 9).is_none());
        ws.check_invariants();
    }

    #[test]
    fn a_proposal_at_an_earlier_index_loses_the_slots_from_there() {
        let mut ws = Waiters::default();
        let mut lost = Vec::new();
        let t = Instant::from_millis(10);
        for (i, c) in [(3, 1), (4, 2), (7, 3)] {
            ws.propose(i, Term(1), t, vec![w(c)], &mut lost);
        }
        ws.propose(4, Term(2), t, vec![w(9)], &mut lost);
        assert_eq!(conns(lost), [3, 2]);
        assert_eq!(
            ws.take(4, 0).map(|(t, w)| (t, w.conn.0)),
            Some((Term(2), 9))
        );
        ws.check_invariants();
    }

    #[test]
    fn decoded_copies_are_taken_only_in_the_proposing_term() {
        let mut ws = Waiters::default();
        let mut lost = Vec::new();
        let entry = Decoded::Writes(super::super::log::LogEntry::new(
            crate::UnixMillis(1),
            Vec::new(),
        ));
        let mut member = w(1);
        member.decoded = Some(entry.clone());
        ws.propose(3, Term(4), Instant::from_millis(1), vec![member], &mut lost);
        assert!(ws.take_decoded(3, Term(3), 0).is_none());
        assert_eq!(ws.take_decoded(3, Term(4), 0), Some(entry));
        assert!(ws.take_decoded(3, Term(4), 0).is_none(), "taken once");
    }

    #[test]
    fn expiry_and_take_through_remove_whole_slots() {
        let mut ws = Waiters::default();
        let mut lost = Vec::new();
        ws.propose(1, Term(1), Instant::from_millis(5), vec![w(1)], &mut lost);
        ws.propose(
            2,
            Term(1),
            Instant::from_millis(9),
            vec![w(2), w(3)],
            &mut lost,
        );
        ws.propose(3, Term(1), Instant::from_millis(5), vec![w(4)], &mut lost);
        assert_eq!(conns(ws.take_expired(Instant::from_millis(5))), [1, 4]);
        assert_eq!(ws.first_deadline(), Some(Instant::from_millis(9)));
        assert_eq!(conns(ws.take_through(2)), [2, 3]);
        assert_eq!(ws.first_index(), None);
        ws.check_invariants();
    }
}
