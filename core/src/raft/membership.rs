//! Membership: the configuration in effect now and at an index, and single-server changes
//! proposed by the leader.

use super::node::{Raft, Role};
use super::{ConfChange, EntryKind, LogIndex, Membership, NodeId, ProposeError};
use crate::Instant;
use crate::store::Store;

impl Raft {
    /// Proposes a single-server membership change; refused while another is uncommitted.
    pub fn propose_conf_change(
        &mut self,
        store: &mut impl Store,
        now: Instant,
        change: ConfChange,
    ) -> Result<LogIndex, ProposeError> {
        self.now = now;
        self.check_conf_change(&change)?;
        self.append_as_leader(store, EntryKind::Config(change))
    }

    /// Whether [`Raft::propose_conf_change`] would accept `change` now (it changes nothing).
    pub fn check_conf_change(&self, change: &ConfChange) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if self.configs.range(self.commit.next()..).next().is_some() {
            return Err(ProposeError::ConfChangeInProgress);
        }
        self.membership().apply(change)?;
        if let ConfChange::Promote(id) = *change {
            let caught_up = self
                .progress
                .get(&id)
                .is_some_and(|p| p.matched >= self.commit);
            if !caught_up {
                return Err(ProposeError::BadConfChange("learner has not caught up"));
            }
        }
        Ok(())
    }

    pub(super) fn is_member(&self, id: NodeId) -> bool {
        let m = self.membership();
        m.voters.contains(&id) || m.learners.contains(&id)
    }

    /// The membership in effect at `index` (at or after the log base).
    pub(super) fn membership_at(&self, index: LogIndex) -> &Membership {
        self.configs
            .range(..=index)
            .next_back()
            .map_or(&self.base.membership, |(_, m)| m)
    }

    /// The membership in effect (the latest config entry in the log).
    pub fn membership(&self) -> &Membership {
        self.configs
            .values()
            .next_back()
            .unwrap_or(&self.base.membership)
    }
}
