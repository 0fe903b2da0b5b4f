//! Durability before promise: every store write goes out without a sync and is counted
//! (`writes`); an output that promises durable state waits in `held` with the count at the
//! time, until a sync that covers that count has completed. [`Raft::flush`] syncs inline, or,
//! once [`Raft::pipeline_syncs`] was called, asks its owner for one with [`RaftOutput::Sync`]
//! and goes on while it runs; [`Raft::synced`] reports its completion.

use super::node::{R, Raft, Role};
use super::storage;
use super::{LogIndex, RaftOutput, Term};
use crate::Instant;
use crate::store::{Store, StoreError};

/// An output or action waiting for a sync.
#[derive(Clone, Debug)]
pub(super) enum Held {
    Output(RaftOutput),
    /// The leader's own log is durable up to this index in this term.
    SelfAck(Term, LogIndex),
    /// The candidate's vote for itself in this term is durable.
    SelfVote(Term),
}

/// Bound on flush rounds: a round can create work for one more (a vote that makes a leader
/// whose Noop needs a sync), never more than a few.
const MAX_FLUSH_ROUNDS: u32 = 4;

impl Raft {
    /// Store syncs this node has made.
    pub fn sync_count(&self) -> u64 {
        self.syncs
    }

    /// Whether [`Raft::flush`] has work: a sync owed that can start, held outputs a
    /// completed sync covers, or a read round.
    pub fn needs_flush(&self) -> bool {
        (self.sync_owed() && self.sync_in_flight.is_none())
            || self.held.front().is_some_and(|(w, _)| *w <= self.synced)
            || self.read_broadcast_owed
    }

    /// A write that backs a promise has not been covered by a sync started yet.
    fn sync_owed(&self) -> bool {
        self.writes > self.sync_started
    }

    /// From now on [`Raft::flush`] does not sync: it emits [`RaftOutput::Sync`] when a sync is
    /// owed and none is running, and keeps the outputs that wait for it until the owner
    /// reports it done with [`Raft::synced`]. Meanwhile the node goes on taking messages and
    /// writing (unsynced), so the next sync starts as soon as this one ends and covers
    /// everything written while it ran: group commit whose group is as large as the sync is
    /// slow.
    pub fn pipeline_syncs(&mut self) {
        self.pipelined = true;
    }

    /// Whether a pipelined sync ([`RaftOutput::Sync`]) was asked for and not reported done.
    pub fn sync_running(&self) -> bool {
        self.sync_in_flight.is_some()
    }

    /// The sync [`RaftOutput::Sync`] asked for, up to `upto`, has completed: every store write
    /// made before it was asked for is durable. Call [`Raft::flush`] next, which releases
    /// what waited for it.
    ///
    /// # Panics
    /// When no sync up to `upto` is running: the owner reported one it was never asked for.
    pub fn synced(&mut self, upto: u64) {
        match self.sync_in_flight.take() {
            Some((started, applied)) if started == upto => {
                self.synced = upto;
                self.syncs += 1;
                self.durable_applied = self.durable_applied.max(applied);
            }
            other => panic!("sync up to {upto} reported done while {other:?} was running"),
        }
    }

    /// Counts a store write that backs a promise: outputs held from now on wait for a sync
    /// that covers it.
    pub(super) fn wrote(&mut self) {
        self.writes += 1;
    }

    /// Holds `h` until a sync covers every write made so far.
    pub(super) fn hold(&mut self, h: Held) {
        self.held.push_back((self.writes, h));
    }

    /// Syncs the store once if anything written since the last sync backs a promise, then
    /// releases the held outputs a completed sync covers. Pipelined
    /// ([`Raft::pipeline_syncs`]), it asks for the sync with [`RaftOutput::Sync`] instead,
    /// when none is running, and releases only what completed syncs cover.
    pub fn flush(&mut self, store: &mut impl Store, now: Instant) -> R {
        self.now = now;
        for _ in 0..MAX_FLUSH_ROUNDS {
            if self.read_broadcast_owed && self.role == Role::Leader {
                self.broadcast_heartbeat();
            }
            self.read_broadcast_owed = false;
            if self.sync_owed() && !self.pipelined {
                let stored_applied = storage::applied_index(store)?;
                store.sync()?;
                self.syncs += 1;
                self.sync_started = self.writes;
                self.synced = self.writes;
                self.durable_applied = self.durable_applied.max(stored_applied);
            }
            if !self.release_synced(store)? {
                break;
            }
        }
        // Asked for after the releases, so the writes they made (a new leader's first entry)
        // ride on this sync rather than wait for the next.
        if self.pipelined && self.sync_owed() && self.sync_in_flight.is_none() {
            let stored_applied = storage::applied_index(store)?;
            self.sync_in_flight = Some((self.writes, stored_applied));
            self.sync_started = self.writes;
            self.out.push_back(RaftOutput::Sync { upto: self.writes });
        }
        self.maybe_compact(store)?;
        self.emit_leader_change();
        Ok(())
    }

    /// Releases the held outputs that completed syncs cover, oldest first; whether there
    /// were any.
    fn release_synced(&mut self, store: &mut impl Store) -> Result<bool, StoreError> {
        let mut any = false;
        while self.held.front().is_some_and(|(w, _)| *w <= self.synced) {
            let (_, h) = self.held.pop_front().expect("checked");
            self.release(store, h)?;
            any = true;
        }
        Ok(any)
    }

    fn release(&mut self, store: &mut impl Store, h: Held) -> R {
        match h {
            Held::Output(o) => self.out.push_back(o),
            Held::SelfAck(term, index) => {
                if self.role == Role::Leader && term == self.term && index <= self.last_index {
                    self.self_match = self.self_match.max(index);
                    self.maybe_commit(store)?;
                }
            }
            Held::SelfVote(term) => {
                if self.role == Role::Candidate && term == self.term {
                    self.votes.insert(self.cfg.id, true);
                    self.tally_votes(store)?;
                }
            }
        }
        Ok(())
    }
}
