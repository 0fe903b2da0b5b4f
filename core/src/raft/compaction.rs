//! Log compaction: dropping the entries behind the durable applied index, eagerly at each
//! new durable checkpoint (keeping what followers in contact still need) or once the count
//! and byte thresholds are reached.

use std::time::Duration;

use super::node::{R, Raft, Role};
use super::storage::{self, LogBase};
use super::{LogIndex, NodeId};
use crate::store::{Space, Store, StoreError, WriteBatch};

impl Raft {
    /// Drops log entries behind the durable applied index: as soon as a new durable
    /// checkpoint makes them redundant, except those a follower in contact still needs, and
    /// all of them once enough have piled up whatever followers need (the thresholds bound
    /// the log kept for a lagging follower, which then catches up from a snapshot).
    pub(super) fn maybe_compact(&mut self, store: &mut impl Store) -> R {
        let threshold = self.cfg.log_compaction_threshold;
        let target = self.durable_applied.min(self.applied);
        let by_count = threshold > 0 && target.0 >= self.base.index.0.saturating_add(threshold);
        let by_bytes = self.cfg.log_compaction_bytes > 0
            && self.bytes_since_compaction >= self.cfg.log_compaction_bytes
            && target > self.base.index;
        if by_count || by_bytes {
            return self.compact_to(store, target);
        }
        // Once per durable checkpoint: a follower that held compaction back is looked at again
        // at the next one (so a slow follower does not make every round a compaction).
        if !self.cfg.log_compaction_eager || target <= self.eager_checked {
            return Ok(());
        }
        self.eager_checked = target;
        let target = target.min(self.followers_need());
        if target <= self.base.index {
            return Ok(());
        }
        self.compact_to(store, target)
    }

    /// The last log index every follower the leader is in contact with has, so that it can go
    /// on from the log rather than from a snapshot (the largest index when none needs any: not
    /// the leader, or no follower heard from within an election timeout). A follower being
    /// sent a snapshot needs the entries after the snapshot's index.
    fn followers_need(&self) -> LogIndex {
        if self.role != Role::Leader {
            return LogIndex(u64::MAX);
        }
        let recent = Duration::from_millis(self.cfg.election_timeout_ms_max);
        let in_contact = |id: &NodeId| {
            self.contacts
                .get(id)
                .and_then(|c| c.last_heard)
                .is_some_and(|t| self.now.saturating_since(t) < recent)
        };
        self.progress
            .iter()
            .filter(|(id, _)| **id != self.cfg.id && in_contact(id))
            .map(|(_, p)| p.snap.as_ref().map_or(p.matched, |s| s.meta.index))
            .min()
            .unwrap_or(LogIndex(u64::MAX))
    }

    /// Compacts the log up to the applied index the store holds, whatever the thresholds:
    /// the caller has just synced it (a clean stop, so the directory it leaves holds the
    /// state, not also the log of it).
    pub fn compact_to_durable(&mut self, store: &mut impl Store) -> R {
        let stored = storage::applied_index(store)?;
        self.durable_applied = self.durable_applied.max(stored);
        let target = self.durable_applied.min(self.applied);
        if target <= self.base.index {
            return Ok(());
        }
        self.compact_to(store, target)
    }

    /// Drops the log entries up to `target` (applied and durable in the state).
    fn compact_to(&mut self, store: &mut impl Store, target: LogIndex) -> R {
        self.bytes_since_compaction = 0;
        let term = self
            .term_at(store, target)?
            .ok_or_else(|| StoreError::Corrupt {
                space: Space::Log,
                detail: format!("no term for applied index {}", target.0),
            })?;
        let base = LogBase {
            index: target,
            term,
            membership: self.membership_at(target).clone(),
        };
        let mut batch = WriteBatch::new();
        batch.delete_range(
            Space::Log,
            storage::log_key(LogIndex(0)),
            storage::log_key(target.next()),
        );
        batch.put(Space::Raft, storage::KEY_LOG_BASE, storage::encode(&base));
        // No sync needed: losing this batch leaves the old base and the entries, still valid.
        store.write(batch)?;
        self.configs = self.configs.split_off(&target.next());
        self.cache_compacted(target);
        self.base = base;
        Ok(())
    }
}
