//! Commit and apply: the leader's commit rule (a majority of durable matches, in its own
//! term), committed entries handed out for applying in log order, and a leader removed from
//! the voters stepping down once its removal is committed.

use super::node::{R, Raft, Role};
use super::{LogIndex, RaftOutput};
use crate::store::Store;

impl Raft {
    pub(super) fn maybe_commit(&mut self, store: &mut impl Store) -> R {
        if self.role != Role::Leader {
            return Ok(());
        }
        let membership = self.membership().clone();
        let mut matches: Vec<LogIndex> = membership
            .voters
            .iter()
            .map(|id| {
                if *id == self.cfg.id {
                    self.self_match
                } else {
                    self.progress.get(id).map_or(LogIndex(0), |p| p.matched)
                }
            })
            .collect();
        matches.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = matches[membership.quorum() - 1];
        if candidate <= self.commit {
            return Ok(());
        }
        let current = self.term_at(store, candidate)? == Some(self.term);
        if current || self.is_bug_commit_old_term() {
            self.advance_commit(store, candidate)?;
        }
        Ok(())
    }

    pub(super) fn advance_commit(&mut self, store: &mut impl Store, commit: LogIndex) -> R {
        assert!(commit <= self.last_index);
        if commit <= self.commit {
            return Ok(());
        }
        self.commit = commit;
        while self.applied < self.commit {
            let e = self.entry(store, self.applied.next())?;
            self.applied = e.index;
            self.out.push_back(RaftOutput::Apply(e));
        }
        // A leader removed from the voters steps down once the change is committed.
        let removed = !self.membership().voters.contains(&self.cfg.id);
        let settled = self.configs.range(self.commit.next()..).next().is_none();
        if self.role == Role::Leader && removed && settled {
            self.become_follower(store, self.term, None)?;
        }
        self.release_reads();
        Ok(())
    }
}
