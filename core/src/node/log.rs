//! The single-node replicated log: the write path the cluster reuses.
//!
//! A write becomes a [`LogEntry`] appended to [`Space::Log`] without a sync; the node syncs once
//! for every entry appended since the last sync (group commit) and only then applies them and
//! answers. With one node a majority is one: this log commits what its own sync made durable.
//! Raft replaces who must hold an entry before it commits, not this path.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::UnixMillis;
use crate::cmd::WriteCmd;
use crate::store::{Space, Store, StoreError, StoreRead, WriteBatch};

/// Format version of [`LogEntry`]; an entry with another version is refused, not guessed.
pub const ENTRY_VERSION: u8 = 1;

/// Key of the applied index in [`Space::Raft`].
const APPLIED_KEY: &[u8] = b"applied";

/// One log entry: the writes it applies atomically, with the wall-clock time the proposer
/// stamped into it so every replica resolves `*` timestamps alike.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub version: u8,
    pub unix: UnixMillis,
    pub cmds: Vec<WriteCmd>,
}

impl LogEntry {
    pub fn new(unix: UnixMillis, cmds: Vec<WriteCmd>) -> Self {
        Self {
            version: ENTRY_VERSION,
            unix,
            cmds,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain owned data into a Vec cannot fail.
        postcard::to_allocvec(self).expect("log entry serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            space: Space::Log,
            detail,
        };
        if bytes.first() != Some(&ENTRY_VERSION) {
            return Err(corrupt(format!(
                "log entry version {:?} is not {ENTRY_VERSION}",
                bytes.first()
            )));
        }
        postcard::from_bytes(bytes).map_err(|e| corrupt(e.to_string()))
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Records in `batch` that the state machine has applied entries `first..=last`; the log
/// entries themselves are deleted in the same batch, so the two can never disagree after a
/// crash.
pub fn record_applied(batch: &mut WriteBatch, first: u64, last: u64) {
    assert!(first <= last, "applied range {first}..={last} is empty");
    batch.put(
        Space::Raft,
        APPLIED_KEY.to_vec(),
        last.to_be_bytes().to_vec(),
    );
    batch.delete_range(
        Space::Log,
        index_key(first).to_vec(),
        index_key(last + 1).to_vec(),
    );
}

/// The log of a single node.
#[derive(Debug)]
pub struct SoloLog {
    last_index: u64,
    applied: u64,
    /// Entries appended but not yet synced.
    unsynced: u64,
    /// Those entries, written to the store in one batch by the next flush.
    unwritten: WriteBatch,
    /// Entries durable and committed but not yet handed out for applying.
    committed: VecDeque<(u64, LogEntry)>,
}

impl SoloLog {
    /// Opens the log: entries after the applied index are durable (or at least present) and
    /// were never applied, so they are committed and come out of the next [`SoloLog::flush`].
    pub fn open(store: &impl StoreRead) -> Result<Self, StoreError> {
        let applied = match store.get(Space::Raft, APPLIED_KEY)? {
            None => 0,
            Some(v) => {
                u64::from_be_bytes(v.as_slice().try_into().map_err(|_| StoreError::Corrupt {
                    space: Space::Raft,
                    detail: "applied index is not 8 bytes".into(),
                })?)
            }
        };
        let mut committed = VecDeque::new();
        let mut last_index = applied;
        for kv in store.scan(Space::Log, &index_key(applied + 1), None, false) {
            let (k, v) = kv?;
            let index =
                u64::from_be_bytes(k.as_slice().try_into().map_err(|_| StoreError::Corrupt {
                    space: Space::Log,
                    detail: "log key is not 8 bytes".into(),
                })?);
            assert!(index > last_index, "log scan returned keys out of order");
            committed.push_back((index, LogEntry::decode(&v)?));
            last_index = index;
        }
        Ok(Self {
            last_index,
            applied,
            unsynced: 0,
            unwritten: WriteBatch::new(),
            committed,
        })
    }

    /// Appends an entry and returns its index. It reaches the store, with every entry appended
    /// since, in one batch at the next [`SoloLog::flush`]: nothing is acknowledged before that.
    pub fn propose(&mut self, entry: LogEntry) -> u64 {
        let index = self.last_index + 1;
        self.unwritten
            .put(Space::Log, index_key(index).to_vec(), entry.encode());
        self.last_index = index;
        self.unsynced += 1;
        self.committed.push_back((index, entry));
        index
    }

    /// Whether entries wait for a sync.
    pub fn sync_owed(&self) -> bool {
        self.unsynced > 0
    }

    /// Whether committed entries wait to be applied.
    pub fn has_committed(&self) -> bool {
        self.unsynced == 0 && !self.committed.is_empty()
    }

    /// Makes every appended entry durable with one write and one sync. Afterwards they are
    /// committed.
    pub fn flush(&mut self, store: &mut impl Store) -> Result<(), StoreError> {
        if self.unsynced > 0 {
            store.write(std::mem::take(&mut self.unwritten))?;
            store.sync()?;
            self.unsynced = 0;
        }
        Ok(())
    }

    /// Forgets every entry the last failed flush could not make durable. None of them was
    /// acknowledged; the node stops taking writes after a storage failure, so whether they
    /// reached the disk is settled by the log replay at the next start.
    pub fn abandon_unsynced(&mut self) {
        let keep = self
            .committed
            .len()
            .saturating_sub(usize::try_from(self.unsynced).unwrap_or(usize::MAX));
        self.committed.truncate(keep);
        self.unwritten = WriteBatch::new();
        self.unsynced = 0;
    }

    /// The next committed entry to apply, if the last flush made it durable.
    pub fn next_committed(&mut self) -> Option<(u64, LogEntry)> {
        if self.unsynced > 0 {
            return None;
        }
        let (index, entry) = self.committed.pop_front()?;
        assert_eq!(
            index,
            self.applied + 1,
            "entries apply in log order without gaps"
        );
        self.applied = index;
        Some((index, entry))
    }

    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    pub fn applied(&self) -> u64 {
        self.applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;

    fn entry(n: u8) -> LogEntry {
        LogEntry::new(
            UnixMillis(u64::from(n)),
            vec![WriteCmd::Del(vec![vec![n].into()])],
        )
    }

    #[test]
    fn group_commit_syncs_once_and_applies_in_order() {
        let mut store = MemStore::new();
        let mut log = SoloLog::open(&store).unwrap();
        for n in 1..=3 {
            assert_eq!(log.propose(entry(n)), u64::from(n));
        }
        assert!(log.sync_owed());
        assert!(
            log.next_committed().is_none(),
            "nothing commits before the sync"
        );
        log.flush(&mut store).unwrap();
        assert_eq!(store.sync_count(), 1);
        assert_eq!(
            store.write_count(),
            1,
            "the three entries reach the store in one batch"
        );
        let order: Vec<u64> = std::iter::from_fn(|| log.next_committed())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(order, vec![1, 2, 3]);
    }

    #[test]
    fn unapplied_entries_replay_after_restart_and_applied_ones_do_not() {
        let mut store = MemStore::new();
        let mut log = SoloLog::open(&store).unwrap();
        log.propose(entry(1));
        log.propose(entry(2));
        log.flush(&mut store).unwrap();
        let (i, _) = log.next_committed().unwrap();
        let mut batch = WriteBatch::new();
        record_applied(&mut batch, i, i);
        store.write(batch).unwrap();
        store.sync().unwrap();
        log.propose(entry(3));
        log.flush(&mut store).unwrap();
        log.propose(entry(4));
        store.crash();
        let mut log = SoloLog::open(&store).unwrap();
        assert_eq!(log.applied(), 1);
        let (i, e) = log.next_committed().unwrap();
        assert_eq!((i, e), (2, entry(2)));
        assert_eq!(log.next_committed().map(|(i, _)| i), Some(3));
        assert!(
            log.next_committed().is_none(),
            "entry 4 was never flushed, never acknowledged"
        );
        assert_eq!(log.propose(entry(5)), 4);
    }

    #[test]
    fn refuses_entries_of_another_version() {
        let mut bytes = entry(1).encode();
        bytes[0] = 99;
        assert!(LogEntry::decode(&bytes).is_err());
        assert!(LogEntry::decode(&[]).is_err());
    }
}
