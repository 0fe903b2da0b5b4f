//! Elections and roles: PreVote and votes asked for, granted and counted, the hard state
//! (term and vote) persisted, becoming follower, candidate or leader, CheckQuorum and the
//! leader lease.

use super::durability::Held;
use super::node::{R, Raft, Role};
use super::storage::{self, HardState};
use super::{EntryKind, LogIndex, Message, NodeId, ProposeError, RaftOutput, Term};
use crate::store::{Space, Store, StoreError, WriteBatch};

impl Raft {
    /// PreVote first when configured, else straight to an election.
    pub(super) fn start_campaign(&mut self, store: &mut impl Store) -> R {
        if self.cfg.pre_vote {
            self.start_pre_vote(store)
        } else {
            self.start_election(store, false)
        }
    }

    pub(super) fn in_leader_lease(&self) -> bool {
        if !self.cfg.check_quorum {
            return false;
        }
        if self.role == Role::Leader {
            return true;
        }
        self.leader.is_some()
            && self
                .last_leader_contact
                .is_some_and(|t| self.now.saturating_since(t) < self.election_min())
    }

    pub(super) fn log_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term, self.last_index)
    }

    fn persist_hard_state(&mut self, store: &mut impl Store) -> R {
        let mut batch = WriteBatch::new();
        let hs = HardState {
            term: self.term,
            vote: self.vote,
        };
        batch.put(Space::Raft, storage::KEY_HARD_STATE, storage::encode(&hs));
        store.write(batch)?;
        self.wrote();
        Ok(())
    }

    // ----- roles ------------------------------------------------------------------------------

    pub(super) fn become_follower(
        &mut self,
        store: &mut impl Store,
        term: Term,
        leader: Option<NodeId>,
    ) -> R {
        if term > self.term {
            self.term = term;
            self.vote = None;
            self.persist_hard_state(store)?;
        }
        if self.role == Role::Leader {
            self.fail_reads();
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        self.progress.clear();
        self.transfer = None;
        self.reset_election_deadline();
        Ok(())
    }

    fn start_pre_vote(&mut self, store: &mut impl Store) -> R {
        if self.role == Role::Leader {
            self.fail_reads();
        }
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes.clear();
        self.votes.insert(self.cfg.id, true);
        let msg = Message::PreVote {
            term: Term(self.term.0 + 1),
            last_log_index: self.last_index,
            last_log_term: self.last_term,
        };
        for id in self.other_voters() {
            self.send(id, msg.clone());
        }
        self.tally_votes(store)
    }

    pub(super) fn start_election(&mut self, store: &mut impl Store, transfer: bool) -> R {
        if self.role == Role::Leader {
            self.fail_reads();
        }
        self.role = Role::Candidate;
        self.term = Term(self.term.0 + 1);
        self.vote = Some(self.cfg.id);
        self.leader = None;
        self.progress.clear();
        self.transfer = None;
        self.persist_hard_state(store)?;
        self.votes.clear();
        // The self-vote counts only once it is durable (released by flush).
        self.hold(Held::SelfVote(self.term));
        self.reset_election_deadline();
        let msg = Message::RequestVote {
            term: self.term,
            last_log_index: self.last_index,
            last_log_term: self.last_term,
            transfer,
        };
        for id in self.other_voters() {
            self.send(id, msg.clone());
        }
        Ok(())
    }

    pub(super) fn tally_votes(&mut self, store: &mut impl Store) -> R {
        let voters = &self.membership().voters;
        let quorum = self.membership().quorum();
        let granted = voters
            .iter()
            .filter(|v| self.votes.get(v) == Some(&true))
            .count();
        let rejected = voters
            .iter()
            .filter(|v| self.votes.get(v) == Some(&false))
            .count();
        if granted >= quorum {
            match self.role {
                Role::PreCandidate => self.start_election(store, false)?,
                Role::Candidate => self.become_leader(store)?,
                Role::Follower | Role::Leader => {}
            }
        } else if rejected >= quorum {
            self.become_follower(store, self.term, None)?;
        }
        Ok(())
    }

    fn become_leader(&mut self, store: &mut impl Store) -> R {
        assert_eq!(self.role, Role::Candidate);
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id);
        self.votes.clear();
        self.self_match = LogIndex(0);
        self.progress.clear();
        self.sync_progress_set();
        self.heartbeat_deadline = self.now;
        self.quorum_deadline = self.now.saturating_add(self.election_min());
        self.term_start = self.last_index.next();
        self.append_as_leader(store, EntryKind::Noop)
            .map_err(|e| match e {
                ProposeError::Store(s) => StoreError::Engine(s),
                other => unreachable!("a fresh leader's noop cannot fail with {other}"),
            })?;
        Ok(())
    }

    fn other_voters(&self) -> Vec<NodeId> {
        self.membership()
            .voters
            .iter()
            .copied()
            .filter(|id| *id != self.cfg.id)
            .collect()
    }

    pub(super) fn check_quorum(&mut self, store: &mut impl Store) -> R {
        let voters = self.membership().voters.clone();
        let mut active = usize::from(voters.contains(&self.cfg.id));
        for (id, p) in &mut self.progress {
            if voters.contains(id) && p.recent_active {
                active += 1;
            }
            p.recent_active = false;
        }
        if active < self.membership().quorum() {
            self.become_follower(store, self.term, None)?;
        }
        Ok(())
    }

    pub(super) fn emit_leader_change(&mut self) {
        let now = (self.leader, self.term);
        if now != self.emitted_leader {
            self.emitted_leader = now;
            self.out.push_back(RaftOutput::LeaderChanged {
                leader: self.leader,
                term: self.term,
            });
        }
    }

    // ----- receiving --------------------------------------------------------------------------

    pub(super) fn accept_leader(&mut self, store: &mut impl Store, from: NodeId) -> R {
        if self.role != Role::Follower || self.leader != Some(from) {
            assert_ne!(
                self.role,
                Role::Leader,
                "two leaders in term {}",
                self.term.0
            );
            self.become_follower(store, self.term, Some(from))?;
        }
        self.last_leader_contact = Some(self.now);
        self.reset_election_deadline();
        Ok(())
    }

    pub(super) fn on_request_vote(
        &mut self,
        store: &mut impl Store,
        from: NodeId,
        term: Term,
        last_log_index: LogIndex,
        last_log_term: Term,
        transfer: bool,
    ) -> R {
        if !transfer && self.in_leader_lease() {
            return Ok(());
        }
        if term > self.term {
            self.become_follower(store, term, None)?;
        }
        if term < self.term {
            let reply = Message::RequestVoteResponse {
                term: self.term,
                granted: false,
            };
            self.send(from, reply);
            return Ok(());
        }
        let can_vote = self.vote.is_none_or(|v| v == from);
        let granted = can_vote && self.log_up_to_date(last_log_index, last_log_term);
        let reply = Message::RequestVoteResponse {
            term: self.term,
            granted,
        };
        if granted {
            self.vote = Some(from);
            self.persist_hard_state(store)?;
            self.reset_election_deadline();
            if self.is_bug_vote_without_persist() {
                self.send(from, reply);
            } else {
                self.send_held(from, reply);
            }
        } else {
            self.send(from, reply);
        }
        Ok(())
    }

    pub(super) fn on_vote_response(
        &mut self,
        store: &mut impl Store,
        from: NodeId,
        term: Term,
        granted: bool,
        pre: bool,
    ) -> R {
        let expected = if pre {
            (Role::PreCandidate, Term(self.term.0 + 1))
        } else {
            (Role::Candidate, self.term)
        };
        if (self.role, term) != expected {
            return Ok(());
        }
        self.votes.insert(from, granted);
        self.tally_votes(store)
    }
}
