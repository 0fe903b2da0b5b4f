//! The simulated node's store: a [`MemStore`] (crash semantics) that also remembers the durable
//! value of every key unsynced batches touched, so the checkers can ask "what would survive a
//! crash right now?" without copying the store.

use std::collections::BTreeMap;

use crate::sim::Bug;
use tickdb_core::store::{
    MemSnapshot, MemStore, Op, ScanIter, Space, Store, StoreError, StoreRead, WriteBatch,
};

#[derive(Debug, Default)]
pub(crate) struct SimStore {
    inner: MemStore,
    /// For each key touched by a batch not yet synced: its value before the first such batch,
    /// which is its durable value (an untouched key's live value is its durable value).
    durable_before: BTreeMap<(Space, Vec<u8>), Option<Vec<u8>>>,
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
        self.durable_before.clear();
    }

    pub(crate) fn unsynced_batches(&self) -> usize {
        self.inner.unsynced_batches()
    }

    /// The value a crash right now would leave at `key`.
    pub(crate) fn durable_get(
        &self,
        space: Space,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match self.durable_before.get(&(space, key.to_vec())) {
            Some(before) => Ok(before.clone()),
            None => self.inner.get(space, key),
        }
    }

    fn remember(&mut self, space: Space, key: &[u8]) -> Result<(), StoreError> {
        if !self.durable_before.contains_key(&(space, key.to_vec())) {
            let value = self.inner.get(space, key)?;
            self.durable_before.insert((space, key.to_vec()), value);
        }
        Ok(())
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
        for op in batch.ops() {
            match op {
                Op::Put { space, key, .. } | Op::Delete { space, key } => {
                    self.remember(*space, key)?;
                }
                Op::DeleteRange { space, start, end } => {
                    let keys: Vec<Vec<u8>> = self
                        .inner
                        .scan(*space, start, Some(end), false)
                        .map(|kv| kv.map(|(k, _)| k))
                        .collect::<Result<_, _>>()?;
                    for k in keys {
                        self.remember(*space, &k)?;
                    }
                }
            }
        }
        self.inner.write(batch)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        if self.lying_sync {
            return Ok(());
        }
        self.inner.sync()?;
        self.durable_before.clear();
        Ok(())
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
        s.crash_keeping(0);
        assert_eq!(s.get(Space::Log, b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.get(Space::Log, b"b").unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.get(Space::Log, b"c").unwrap(), None);
    }
}
