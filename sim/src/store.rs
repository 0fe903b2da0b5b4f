//! The simulated node's store: a [`MemStore`] (crash semantics) that can lie about fsync, and
//! answers "what would survive a crash right now?" for the checkers.

use crate::sim::Bug;
use tickdb_core::store::{
    MemSnapshot, MemStore, ScanIter, Space, Store, StoreError, StoreRead, WriteBatch,
};

#[derive(Debug, Default)]
pub(crate) struct SimStore {
    inner: MemStore,
    /// A planted environment bug: `sync` reports success and makes nothing durable (a disk
    /// that lies about fsync), so a crash loses writes the node was promised were durable.
    pub(crate) lying_sync: bool,
}

impl SimStore {
    /// A fresh store, lying about fsync under [`Bug::FsyncLies`].
    pub(crate) fn with_bug(bug: Option<Bug>) -> Self {
        Self {
            lying_sync: bug == Some(Bug::FsyncLies),
            ..Self::default()
        }
    }

    /// Crashes, keeping the first `keep` unsynced batches (a torn WAL).
    pub(crate) fn crash_keeping(&mut self, keep: usize) {
        self.inner.crash_keeping(keep);
    }

    pub(crate) fn unsynced_batches(&self) -> usize {
        self.inner.unsynced_batches()
    }

    /// What a pipelined sync marks when it starts ([`MemStore::write_count`]).
    pub(crate) fn write_count(&self) -> u64 {
        self.inner.write_count()
    }

    /// Completes a pipelined sync that started at `mark`: the writes before it are durable,
    /// the ones since are not (unless the disk lies).
    pub(crate) fn sync_through(&mut self, mark: u64) {
        if !self.lying_sync {
            self.inner.sync_through(mark);
        }
    }

    /// The value a crash right now would leave at `key`.
    pub(crate) fn durable_get(
        &self,
        space: Space,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.inner.durable_get(space, key))
    }
}

impl StoreRead for SimStore {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(space, key)
    }

    fn scan(&self, space: Space, start: &[u8], end: Option<&[u8]>, reverse: bool) -> ScanIter<'_> {
        self.inner.scan(space, start, end, reverse)
    }
}

impl Store for SimStore {
    type Snapshot = MemSnapshot;

    fn write(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        self.inner.write(batch)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        if self.lying_sync {
            return Ok(());
        }
        self.inner.sync()
    }

    fn snapshot(&self) -> Result<MemSnapshot, StoreError> {
        self.inner.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_get_matches_a_real_crash() {
        let mut s = SimStore::default();
        let mut b = WriteBatch::new();
        b.put(Space::Log, b"a".to_vec(), b"1".to_vec());
        b.put(Space::Log, b"b".to_vec(), b"1".to_vec());
        s.write(b).unwrap();
        s.sync().unwrap();
        let mut b = WriteBatch::new();
        b.put(Space::Log, b"a".to_vec(), b"2".to_vec());
        b.delete_range(Space::Log, b"b".to_vec(), b"z".to_vec());
        b.put(Space::Log, b"c".to_vec(), b"3".to_vec());
        s.write(b).unwrap();
        assert_eq!(
            s.durable_get(Space::Log, b"a").unwrap(),
            Some(b"1".to_vec())
        );
        assert_eq!(
            s.durable_get(Space::Log, b"b").unwrap(),
            Some(b"1".to_vec())
        );
        assert_eq!(s.durable_get(Space::Log, b"c").unwrap(), None);
        // A pipelined sync marked before the second batch leaves it undurable.
        s.sync_through(1);
        assert_eq!(s.durable_get(Space::Log, b"c").unwrap(), None);
        s.crash_keeping(0);
        assert_eq!(s.get(Space::Log, b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.get(Space::Log, b"b").unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.get(Space::Log, b"c").unwrap(), None);
    }
}
