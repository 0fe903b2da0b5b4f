//! The state machine's writes held in memory between checkpoints (write-back).
//!
//! Applying a log entry used to write its changes, with the applied index, to the store: one
//! store write per drive round, with every series record and head run it touched. But the
//! Raft log is already a durable record of every applied entry, so the state only has to reach
//! the store often enough for the log behind it to be compacted. [`WriteBack`] wraps the
//! store: an apply round's transaction ([`WriteBack::round`]) writes into changes held in
//! memory ([`Changes`]), every read sees them on top of the store, and
//! [`WriteBack::checkpoint`] writes all of them with their applied index as one atomic batch.
//!
//! What holds at every moment, crash or not:
//! - The store holds exactly the state at its stored applied index (the checkpoint): the
//!   state and that index are only ever written together, by a checkpoint or a snapshot
//!   install.
//! - Reads through `WriteBack` ([`StoreRead`]) see the state at [`WriteBack::applied`]; the
//!   stored applied index ([`crate::raft::applied_index`] through `WriteBack`, which reads
//!   the store) is the checkpoint's, and is what Raft may compact the log up to once synced.
//!   So after a crash the node reopens at the checkpoint and applies the committed entries
//!   after it again from the log: nothing applied twice, nothing lost.
//! - A batch written directly to a state space replaces the whole state (a snapshot install)
//!   and carries its own applied index: the changes held are discarded with it.
//! - Reads of user keys that the changes held miss go through a [`ReadCache`] of the store's
//!   records, which mirrors the store: a checkpoint updates the keys it caches, anything else
//!   that changes the state empties it (`read_cache`).

use crate::db::{Changes, Tx};
use crate::raft::{self, LogIndex};
use crate::read_cache::{Cached, READ_CACHE_BYTES, ReadCache};
use crate::store::{Op, ScanIter, Space, Store, StoreError, StoreRead, WriteBatch};

/// When [`WriteBack::checkpoint_due`] says a checkpoint is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// After this many applied entries held in memory.
    pub entries: u64,
    /// Once the changes held take about this many bytes.
    pub bytes: usize,
    /// Once the entries applied since the checkpoint hold this many bytes of commands: what
    /// a restart replays, and the log that cannot be compacted meanwhile. A few large entries
    /// (a `TS.MADD` of 10,000 samples is ~300 KB) reach it long before `entries`. It also
    /// bounds RocksDB's WAL, which is not compressed, and with it the directory's peak.
    pub log_bytes: u64,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self {
            entries: 32_768,
            bytes: 32 << 20,
            log_bytes: 8 << 20,
        }
    }
}

/// Range deletions held before a checkpoint is due regardless of size: each read checks
/// every one of them.
const RANGES_MAX: usize = 256;

/// Spaces the state machine writes (everything but Raft's log and hard state).
fn is_state(space: Space) -> bool {
    !matches!(space, Space::Log | Space::Raft)
}

/// A store whose state-machine writes are held in memory until the next checkpoint.
pub struct WriteBack<S> {
    inner: S,
    changes: Changes,
    /// The applied index of the state `changes` bring the store to; `None` when nothing is
    /// held (the store's own applied index is current).
    applied: Option<LogIndex>,
    /// The store's applied index (the last checkpoint's).
    stored: LogIndex,
    /// Entries applied since the last checkpoint, and the bytes of their commands.
    entries: u64,
    entry_bytes: u64,
    policy: CheckpointPolicy,
    checkpoints: u64,
    /// A round's transaction was opened ([`WriteBack::round`]) and not ended: what is held
    /// may hold part of its entries' changes, which must never reach the store.
    round_open: bool,
    /// The store's user-key records, for reads that miss `changes`.
    cache: ReadCache,
}

impl<S: Store> WriteBack<S> {
    pub fn new(inner: S, policy: CheckpointPolicy) -> Result<Self, StoreError> {
        let stored = raft::applied_index(&inner)?;
        Ok(Self {
            inner,
            changes: Changes::new(),
            applied: None,
            stored,
            entries: 0,
            entry_bytes: 0,
            policy,
            checkpoints: 0,
            round_open: false,
            cache: ReadCache::new(0, READ_CACHE_BYTES),
        })
    }

    /// Hashes the keys held with `seed` (drawn by the node at start, so clients cannot pick
    /// keys that collide); [`Changes::new`]'s fixed seed until then.
    #[must_use]
    pub fn with_hash_seed(mut self, seed: u64) -> Self {
        assert!(
            self.changes.is_empty(),
            "the seed is set before anything is held"
        );
        self.changes = Changes::with_seed(seed);
        self.cache = ReadCache::new(seed, READ_CACHE_BYTES);
        self
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The store underneath; writing to it bypasses what is held, and must not change what
    /// it reads (the read cache mirrors it): the simulator uses it to play the disk.
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The store underneath, without what is held: what a crash leaves.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Asserts that every record the read cache holds is the store's.
    pub fn check_read_cache(&self) {
        self.cache.check(&self.inner);
    }

    /// Bytes the read cache holds.
    pub fn read_cache_bytes(&self) -> usize {
        self.cache.bytes()
    }

    /// The applied index of the state reads see.
    pub fn applied(&self) -> LogIndex {
        self.applied.unwrap_or(self.stored)
    }

    /// The applied index the store holds (the last checkpoint's).
    pub fn checkpointed(&self) -> LogIndex {
        self.stored
    }

    /// Bytes of changes held in memory.
    pub fn held_bytes(&self) -> usize {
        self.changes.bytes()
    }

    /// Checkpoints written since start.
    pub fn checkpoints(&self) -> u64 {
        self.checkpoints
    }

    /// A transaction for one apply round that writes straight into the changes held (reads
    /// see the store with them applied): no copy of the round's changes, and a series' head
    /// run held since the last checkpoint takes this round's samples in place. End the round
    /// with [`WriteBack::end_round`]; until then checkpoints are refused, so a round that failed
    /// halfway (the node then refuses everything until restarted) never reaches the store.
    pub fn round(&mut self) -> Tx<'_, S> {
        self.round_open = true;
        Tx::on_held(&self.inner, &mut self.changes)
    }

    /// Ends the round [`WriteBack::round`] opened: what is held is now the state after the
    /// entries up to `applied`; `entries` is how many entries the round applied, `entry_bytes`
    /// the bytes of their commands.
    pub fn end_round(&mut self, applied: LogIndex, entries: u64, entry_bytes: u64) {
        assert!(self.round_open, "ending a round that was not opened");
        assert!(
            applied >= self.applied(),
            "the applied index goes backwards: {} after {}",
            applied.0,
            self.applied().0
        );
        self.round_open = false;
        self.applied = Some(applied);
        self.entries += entries;
        self.entry_bytes += entry_bytes;
    }

    /// Whether what is held has grown past the policy.
    pub fn checkpoint_due(&self) -> bool {
        self.applied.is_some()
            && (self.entries >= self.policy.entries
                || self.entry_bytes >= self.policy.log_bytes
                || self.changes.bytes() >= self.policy.bytes
                || self.changes.range_count() >= RANGES_MAX)
    }

    /// Writes everything held with its applied index as one batch (not synced: until the next
    /// sync a crash may lose it, which leaves the previous checkpoint and the log after it).
    pub fn checkpoint(&mut self) -> Result<(), StoreError> {
        if self.round_open {
            return Err(StoreError::Engine(
                "an apply round failed before it ended: its partial changes are not written".into(),
            ));
        }
        let Some(applied) = self.applied else {
            return Ok(());
        };
        let empty = self.changes.empty_like();
        let mut batch = std::mem::replace(&mut self.changes, empty).into_batch();
        raft::record_applied(&mut batch, applied);
        self.cache.applied(batch.ops());
        if let Err(e) = self.inner.write(batch) {
            // What the store holds now is not known: read it again.
            self.cache.clear();
            return Err(e);
        }
        self.applied = None;
        self.stored = applied;
        self.entries = 0;
        self.entry_bytes = 0;
        self.checkpoints += 1;
        Ok(())
    }
}

impl<S: StoreRead> StoreRead for WriteBack<S> {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if is_state(space) {
            let store = Cached {
                store: &self.inner,
                cache: &self.cache,
            };
            self.changes.get(&store, space, key)
        } else {
            self.inner.get(space, key)
        }
    }

    fn scan(&self, space: Space, start: &[u8], end: Option<&[u8]>, reverse: bool) -> ScanIter<'_> {
        if is_state(space) && !self.changes.is_empty() {
            self.changes.scan(&self.inner, space, start, end, reverse)
        } else {
            self.inner.scan(space, start, end, reverse)
        }
    }
}

impl<S: Store> Store for WriteBack<S> {
    type Snapshot = S::Snapshot;

    /// Raft's writes. One that records an applied index or touches the state is a snapshot
    /// install, which replaces the whole state with one at its applied index: what is held is
    /// discarded.
    fn write(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        let replaces_state = raft::records_applied(&batch)
            || batch.ops().iter().any(|op| match op {
                Op::Put { space, .. }
                | Op::Delete { space, .. }
                | Op::DeleteRange { space, .. } => is_state(*space),
            });
        if replaces_state {
            self.cache.clear();
        }
        self.inner.write(batch)?;
        if replaces_state {
            let stored = raft::applied_index(&self.inner)?;
            assert!(
                stored > self.applied(),
                "a write replaced the state at {} with one at {}",
                self.applied().0,
                stored.0
            );
            self.changes = self.changes.empty_like();
            self.round_open = false;
            self.applied = None;
            self.stored = stored;
            self.entries = 0;
            self.entry_bytes = 0;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.inner.sync()
    }

    /// The checkpointed state (a consistent one, at the store's applied index); Raft calls
    /// [`Store::write_back`] first, so a snapshot it sends is current.
    fn snapshot(&self) -> Result<Self::Snapshot, StoreError> {
        self.inner.snapshot()
    }

    fn write_back(&mut self) -> Result<(), StoreError> {
        self.checkpoint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FailingStore, MemStore};

    /// Holds one round that puts `key` = `value`, ending at `applied`.
    fn put<S: Store>(
        wb: &mut WriteBack<S>,
        key: &str,
        value: &str,
        applied: u64,
        entries: u64,
        bytes: u64,
    ) {
        let mut tx = wb.round();
        tx.put(Space::Keys, key.into(), value.into());
        drop(tx);
        wb.end_round(LogIndex(applied), entries, bytes);
    }

    fn keys(s: &impl StoreRead) -> Vec<(String, String)> {
        s.scan(Space::Keys, b"", None, false)
            .map(|kv| {
                let (k, v) = kv.unwrap();
                (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap())
            })
            .collect()
    }

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.into(), v.into())
    }

    #[test]
    fn reads_see_what_is_held_and_a_crash_keeps_the_checkpoint() {
        let mut wb = WriteBack::new(MemStore::new(), CheckpointPolicy::default()).unwrap();
        put(&mut wb, "a", "1", 1, 1, 0);
        put(&mut wb, "b", "2", 2, 1, 0);
        assert_eq!(wb.get(Space::Keys, b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(keys(&wb), [kv("a", "1"), kv("b", "2")]);
        assert_eq!(raft::applied_index(&wb).unwrap(), LogIndex(0), "not stored");
        assert_eq!(wb.applied(), LogIndex(2));
        wb.checkpoint().unwrap();
        wb.sync().unwrap();
        put(&mut wb, "a", "3", 3, 1, 0);
        assert_eq!(keys(&wb), [kv("a", "3"), kv("b", "2")]);
        let mut store = wb.into_inner();
        store.crash();
        assert_eq!(keys(&store), [kv("a", "1"), kv("b", "2")]);
        assert_eq!(raft::applied_index(&store).unwrap(), LogIndex(2));
    }

    /// Reads that miss what is held go through the read cache, which follows the store: a
    /// checkpoint updates the keys it caches, an install or a failed write empties it.
    #[test]
    fn the_read_cache_follows_checkpoints_installs_and_failed_writes() {
        let mut wb = WriteBack::new(FailingStore::default(), CheckpointPolicy::default()).unwrap();
        put(&mut wb, "a", "1", 1, 1, 0);
        wb.checkpoint().unwrap();
        // Nothing held: both reads go to the store, and both are cached (one as missing).
        assert_eq!(wb.get(Space::Keys, b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(wb.get(Space::Keys, b"b").unwrap(), None);
        let cached = wb.read_cache_bytes();
        assert!(cached > 0);
        put(&mut wb, "a", "2", 2, 1, 0);
        put(&mut wb, "b", "3", 3, 1, 0);
        wb.checkpoint().unwrap();
        wb.check_read_cache();
        assert_eq!(wb.get(Space::Keys, b"a").unwrap(), Some(b"2".to_vec()));
        assert_eq!(wb.get(Space::Keys, b"b").unwrap(), Some(b"3".to_vec()));
        assert_eq!(
            wb.read_cache_bytes(),
            cached + 1,
            "b now has a value of one byte"
        );
        // A checkpoint whose write fails leaves the store unknown: the cache empties.
        put(&mut wb, "a", "4", 4, 1, 0);
        wb.inner_mut().fail_writes = true;
        assert!(wb.checkpoint().is_err());
        assert_eq!(wb.read_cache_bytes(), 0);
        wb.inner_mut().fail_writes = false;
        assert_eq!(
            wb.get(Space::Keys, b"a").unwrap(),
            Some(b"2".to_vec()),
            "the store's"
        );
        // An install replaces the state: the cache empties.
        let mut install = WriteBatch::new();
        install.put(Space::Keys, b"a".to_vec(), b"9".to_vec());
        raft::record_applied(&mut install, LogIndex(7));
        wb.write(install).unwrap();
        assert_eq!(wb.read_cache_bytes(), 0);
        assert_eq!(wb.get(Space::Keys, b"a").unwrap(), Some(b"9".to_vec()));
        wb.check_read_cache();
    }

    #[test]
    fn a_snapshot_install_discards_what_is_held() {
        let mut wb = WriteBack::new(MemStore::new(), CheckpointPolicy::default()).unwrap();
        put(&mut wb, "a", "1", 1, 1, 0);
        let mut install = WriteBatch::new();
        install.delete_range(Space::Keys, Vec::new(), vec![0xff]);
        install.put(Space::Keys, b"z".to_vec(), b"9".to_vec());
        raft::record_applied(&mut install, LogIndex(7));
        wb.write(install).unwrap();
        assert_eq!(keys(&wb), [kv("z", "9")]);
        assert_eq!(wb.applied(), LogIndex(7));
        assert_eq!(wb.checkpointed(), LogIndex(7));
    }

    #[test]
    fn checkpoints_fall_due_by_entries_and_bytes() {
        let policy = CheckpointPolicy {
            entries: 3,
            bytes: 100_000,
            log_bytes: 1_000,
        };
        let mut wb = WriteBack::new(MemStore::new(), policy).unwrap();
        assert!(!wb.checkpoint_due());
        put(&mut wb, "a", "1", 1, 2, 10);
        assert!(!wb.checkpoint_due());
        put(&mut wb, "b", "1", 2, 1, 10);
        assert!(wb.checkpoint_due(), "by entries");
        wb.checkpoint().unwrap();
        assert!(!wb.checkpoint_due());
        put(&mut wb, "c", &"x".repeat(100_000), 3, 1, 10);
        assert!(wb.checkpoint_due(), "by bytes held");
        wb.checkpoint().unwrap();
        put(&mut wb, "d", "1", 4, 1, 1_000);
        assert!(wb.checkpoint_due(), "by bytes of commands applied");
        wb.checkpoint().unwrap();
        // Every read checks every range deletion held: they are bounded too.
        let mut tx = wb.round();
        for i in 0..RANGES_MAX {
            tx.delete_range(Space::Keys, vec![b'r', i as u8], vec![b'r', i as u8, 0]);
        }
        drop(tx);
        wb.end_round(LogIndex(5), 1, 0);
        assert!(wb.checkpoint_due(), "by range deletions held");
    }

    #[test]
    fn a_round_writes_into_what_is_held_and_one_that_never_ended_is_never_written() {
        let mut wb = WriteBack::new(MemStore::new(), CheckpointPolicy::default()).unwrap();
        let mut tx = wb.round();
        tx.put(Space::Keys, b"a".to_vec(), b"1".to_vec());
        assert_eq!(tx.get(Space::Keys, b"a").unwrap(), Some(b"1".to_vec()));
        drop(tx);
        wb.end_round(LogIndex(1), 1, 0);
        // The next round reads the last one's writes and edits them in place.
        let mut tx = wb.round();
        assert!(tx.edit(Space::Keys, b"a", |v| v.push(b'2')));
        drop(tx);
        wb.end_round(LogIndex(2), 1, 0);
        assert_eq!(keys(&wb), vec![kv("a", "12")]);
        assert_eq!(keys(wb.inner()), vec![], "held, not written");
        wb.checkpoint().unwrap();
        assert_eq!(keys(wb.inner()), vec![kv("a", "12")]);
        assert_eq!(raft::applied_index(wb.inner()).unwrap(), LogIndex(2));
        // A round that fails halfway is never ended: its writes must not reach the store.
        let mut tx = wb.round();
        tx.put(Space::Keys, b"b".to_vec(), b"half".to_vec());
        drop(tx);
        assert!(wb.checkpoint().is_err());
        assert!(wb.write_back().is_err(), "nor in a snapshot for a follower");
        assert_eq!(keys(wb.inner()), vec![kv("a", "12")]);
        assert_eq!(raft::applied_index(wb.inner()).unwrap(), LogIndex(2));
    }
}
