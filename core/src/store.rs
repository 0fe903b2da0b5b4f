//! The storage port. The core owns this trait; `tickdb-io` implements it on RocksDB and this
//! module implements it in memory with crash semantics for tests and simulation.
//!
//! A store is an ordered key-value map per [`Space`] (a RocksDB column family) with atomic
//! multi-space write batches, range scans in both directions, an explicit [`Store::sync`], and
//! point-in-time snapshots. Writes become visible to reads at once; they survive a crash only
//! after `sync` returns. A batch is atomic across crashes: after a crash the store holds a
//! prefix of the batches written, never part of one.
//!
//! A store may also hand out a [`Syncer`]: a handle that syncs it from another thread while
//! its owner keeps writing (the pipelined sync, [`crate::node::Output::Sync`]).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

/// The key spaces of the store (RocksDB column families).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Space {
    /// Replicated log entries, keyed by big-endian log index.
    Log,
    /// Consensus state (term, vote, membership) and the state machine's applied index.
    Raft,
    /// The keyspace: one record per user key (a string value or a series' metadata).
    Keys,
    /// Compressed sample chunks, keyed by (series id, chunk start).
    Chunks,
    /// The label inverted index: (label, value, series id).
    Labels,
    /// Cluster-wide state outside the keyspace: member addresses and settings changed with
    /// `CONFIG SET` (CONFIG_UPDATE), replicated through the log like any write.
    Meta,
}

impl Space {
    /// Every space, in a fixed order.
    pub const ALL: [Self; 6] = [
        Self::Log,
        Self::Raft,
        Self::Keys,
        Self::Chunks,
        Self::Labels,
        Self::Meta,
    ];

    /// The position of this space in [`Space::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The column family name on disk. Never change one: it is part of the on-disk format.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Raft => "raft",
            Self::Keys => "keys",
            Self::Chunks => "chunks",
            Self::Labels => "labels",
            Self::Meta => "meta",
        }
    }

    /// Spaces that make up the state machine (what a snapshot carries).
    pub const STATE: [Self; 4] = [Self::Keys, Self::Chunks, Self::Labels, Self::Meta];

    /// Spaces that hold user data (what `FLUSHALL` empties).
    pub const KEYSPACE: [Self; 3] = [Self::Keys, Self::Chunks, Self::Labels];
}

/// One change in a [`WriteBatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put {
        space: Space,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        space: Space,
        key: Vec<u8>,
    },
    /// Deletes every key `k` with `start <= k < end`.
    DeleteRange {
        space: Space,
        start: Vec<u8>,
        end: Vec<u8>,
    },
}

/// Changes applied atomically by [`Store::write`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<Op>,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, space: Space, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(Op::Put {
            space,
            key: key.into(),
            value: value.into(),
        });
    }

    pub fn delete(&mut self, space: Space, key: impl Into<Vec<u8>>) {
        self.ops.push(Op::Delete {
            space,
            key: key.into(),
        });
    }

    pub fn delete_range(
        &mut self,
        space: Space,
        start: impl Into<Vec<u8>>,
        end: impl Into<Vec<u8>>,
    ) {
        self.ops.push(Op::DeleteRange {
            space,
            start: start.into(),
            end: end.into(),
        });
    }

    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Appends `other`'s changes after this batch's.
    pub fn extend(&mut self, other: Self) {
        self.ops.extend(other.ops);
    }
}

/// A failure of the storage engine underneath (disk full, corruption, I/O error).
///
/// The node cannot tell whether such a write happened, so it treats one as fatal for the
/// operation and reports it; it never acknowledges a write whose sync failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine reported an error; the text is the engine's.
    #[error("storage error: {0}")]
    Engine(String),
    /// Stored bytes did not decode as the record they should be.
    #[error("corrupt record in {space:?}: {detail}")]
    Corrupt { space: Space, detail: String },
}

/// One entry from a scan: key and value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// An iterator over a scan's entries.
pub type ScanIter<'a> = Box<dyn Iterator<Item = Result<KeyValue, StoreError>> + 'a>;

/// Reads: implemented by a live store and by its snapshots.
pub trait StoreRead {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Entries with `start <= key < end` (`end: None` means no upper bound), ascending, or
    /// descending when `reverse`.
    fn scan(&self, space: Space, start: &[u8], end: Option<&[u8]>, reverse: bool) -> ScanIter<'_>;
}

/// The storage port.
pub trait Store: StoreRead {
    /// A consistent point-in-time view that later writes do not change.
    type Snapshot: StoreRead + Send + 'static;

    /// Applies `batch` atomically. Visible to reads at once; durable only after [`Store::sync`].
    fn write(&mut self, batch: WriteBatch) -> Result<(), StoreError>;

    /// Makes every write so far durable.
    fn sync(&mut self) -> Result<(), StoreError>;

    fn snapshot(&self) -> Result<Self::Snapshot, StoreError>;

    /// Writes the state a store layer holds in memory only (the node's
    /// [`crate::writeback::WriteBack`]) to the store, so the next [`Store::snapshot`] is
    /// current. Plain stores hold nothing there.
    fn write_back(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// A handle that syncs this store beside its owner's writes, or `None` when it can only
    /// sync inline ([`Store::sync`]). A driver with one runs the node's syncs on it
    /// ([`crate::node::Node::pipeline_syncs`]).
    fn syncer(&self) -> Option<Arc<dyn Syncer>> {
        None
    }
}

/// Syncs a store from another thread (or task) while its owner keeps writing to it.
///
/// The contract: [`Syncer::mark`] is called on the owner's thread when the owner asks for a
/// sync, and [`Syncer::sync_through`] with that mark then makes durable every write made before the
/// mark (it may make later ones durable too). The owner treats only the writes before it asked
/// as covered. At most one sync runs at a time.
pub trait Syncer: Send + Sync {
    /// Marks what the next sync must cover: every write made so far.
    fn mark(&self) -> u64;

    /// Makes durable every write made before `mark`. May block for as long as the disk takes.
    fn sync_through(&self, mark: u64) -> Result<(), StoreError>;

    /// Whether [`Syncer::sync_through`] blocks its thread (a real disk): the driver then runs it on a
    /// thread of its own. `false` for a store in memory (the turmoil harness's), which the
    /// driver syncs in a task of its runtime so a simulation stays deterministic.
    fn blocks(&self) -> bool {
        true
    }
}

type Spaces = BTreeMap<Space, BTreeMap<Vec<u8>, Vec<u8>>>;

/// An in-memory [`Store`] with crash semantics: [`MemStore::crash`] forgets every write since
/// the last [`Store::sync`] (or keeps a prefix of those batches, as a torn WAL would).
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    /// What reads see: durable state plus unsynced batches.
    live: Spaces,
    /// What survives a crash.
    durable: Spaces,
    /// Batches written since the last sync, oldest first.
    unsynced: Vec<WriteBatch>,
    /// Counters for tests: how many syncs and batch writes happened.
    syncs: u64,
    writes: u64,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates a crash that loses all unsynced writes.
    pub fn crash(&mut self) {
        self.crash_keeping(0);
    }

    /// Simulates a crash after which the first `keep` unsynced batches survive (a torn WAL
    /// keeps a prefix of batches, never part of one). `keep` beyond the count keeps them all.
    pub fn crash_keeping(&mut self, keep: usize) {
        let kept: Vec<WriteBatch> = self.unsynced.drain(..).take(keep).collect();
        for batch in &kept {
            apply(&mut self.durable, batch);
        }
        self.live = self.durable.clone();
    }

    /// How many batches were written since the last sync.
    pub fn unsynced_batches(&self) -> usize {
        self.unsynced.len()
    }

    pub fn sync_count(&self) -> u64 {
        self.syncs
    }

    pub fn write_count(&self) -> u64 {
        self.writes
    }

    /// Makes the writes numbered up to `mark` durable ([`MemStore::write_count`] after the
    /// last of them), and no later one: what a sync that started at `mark` leaves when it
    /// completes while writes go on (the pipelined sync). Writes already durable stay so.
    pub fn sync_through(&mut self, mark: u64) {
        let first_unsynced = self.writes - self.unsynced.len() as u64;
        let n = mark
            .saturating_sub(first_unsynced)
            .min(self.unsynced.len() as u64) as usize;
        for batch in self.unsynced.drain(..n) {
            apply(&mut self.durable, &batch);
        }
        self.syncs += 1;
    }

    /// The value a crash right now would leave at `key` (the last sync's state).
    pub fn durable_get(&self, space: Space, key: &[u8]) -> Option<Vec<u8>> {
        self.durable.get(&space).and_then(|m| m.get(key)).cloned()
    }
}

fn apply(spaces: &mut Spaces, batch: &WriteBatch) {
    for op in batch.ops() {
        match op {
            Op::Put { space, key, value } => {
                spaces
                    .entry(*space)
                    .or_default()
                    .insert(key.clone(), value.clone());
            }
            Op::Delete { space, key } => {
                if let Some(map) = spaces.get_mut(space) {
                    map.remove(key);
                }
            }
            Op::DeleteRange { space, start, end } => {
                if let Some(map) = spaces.get_mut(space).filter(|_| start < end) {
                    let doomed: Vec<Vec<u8>> = map
                        .range(start.clone()..end.clone())
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in doomed {
                        map.remove(&k);
                    }
                }
            }
        }
    }
}

fn scan_map<'a>(
    map: Option<&'a BTreeMap<Vec<u8>, Vec<u8>>>,
    start: &[u8],
    end: Option<&[u8]>,
    reverse: bool,
) -> ScanIter<'a> {
    let Some(map) = map else {
        return Box::new(std::iter::empty());
    };
    if end.is_some_and(|end| end <= start) {
        return Box::new(std::iter::empty());
    }
    let lower = Bound::Included(start.to_vec());
    let upper = end.map_or(Bound::Unbounded, |e| Bound::Excluded(e.to_vec()));
    let range = map
        .range((lower, upper))
        .map(|(k, v)| Ok((k.clone(), v.clone())));
    if reverse {
        Box::new(range.rev())
    } else {
        Box::new(range)
    }
}

impl StoreRead for MemStore {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.live.get(&space).and_then(|m| m.get(key)).cloned())
    }

    fn scan(&self, space: Space, start: &[u8], end: Option<&[u8]>, reverse: bool) -> ScanIter<'_> {
        scan_map(self.live.get(&space), start, end, reverse)
    }
}

impl Store for MemStore {
    type Snapshot = MemSnapshot;

    fn write(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        apply(&mut self.live, &batch);
        self.unsynced.push(batch);
        self.writes += 1;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        for batch in self.unsynced.drain(..) {
            apply(&mut self.durable, &batch);
        }
        self.syncs += 1;
        debug_assert_eq!(self.live, self.durable);
        Ok(())
    }

    fn snapshot(&self) -> Result<MemSnapshot, StoreError> {
        Ok(MemSnapshot {
            spaces: Arc::new(self.live.clone()),
        })
    }
}

/// A point-in-time copy of a [`MemStore`].
#[derive(Clone, Debug)]
pub struct MemSnapshot {
    spaces: Arc<Spaces>,
}

impl StoreRead for MemSnapshot {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.spaces.get(&space).and_then(|m| m.get(key)).cloned())
    }

    fn scan(&self, space: Space, start: &[u8], end: Option<&[u8]>, reverse: bool) -> ScanIter<'_> {
        scan_map(self.spaces.get(&space), start, end, reverse)
    }
}

/// A store whose writes or syncs fail on demand (a full disk, an I/O error), for tests.
#[cfg(test)]
#[derive(Clone, Debug, Default)]
pub(crate) struct FailingStore {
    pub inner: MemStore,
    pub fail_writes: bool,
    pub fail_syncs: bool,
}

#[cfg(test)]
impl StoreRead for FailingStore {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(space, key)
    }

    fn scan(&self, space: Space, start: &[u8], end: Option<&[u8]>, reverse: bool) -> ScanIter<'_> {
        self.inner.scan(space, start, end, reverse)
    }
}

#[cfg(test)]
impl Store for FailingStore {
    type Snapshot = MemSnapshot;

    fn write(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        if self.fail_writes {
            return Err(StoreError::Engine("No space left on device".into()));
        }
        self.inner.write(batch)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        if self.fail_syncs {
            return Err(StoreError::Engine("No space left on device".into()));
        }
        self.inner.sync()
    }

    fn snapshot(&self) -> Result<Self::Snapshot, StoreError> {
        self.inner.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(store: &impl StoreRead, space: Space, reverse: bool) -> Vec<Vec<u8>> {
        store
            .scan(space, b"", None, reverse)
            .map(|kv| kv.unwrap().0)
            .collect()
    }

    #[test]
    fn crash_loses_unsynced_batches_whole() {
        let mut s = MemStore::new();
        let mut b = WriteBatch::new();
        b.put(Space::Keys, b"a".to_vec(), b"1".to_vec());
        s.write(b).unwrap();
        s.sync().unwrap();
        let mut b = WriteBatch::new();
        b.put(Space::Keys, b"b".to_vec(), b"2".to_vec());
        b.delete(Space::Keys, b"a".to_vec());
        s.write(b).unwrap();
        assert_eq!(keys(&s, Space::Keys, false), vec![b"b".to_vec()]);
        s.crash();
        assert_eq!(keys(&s, Space::Keys, false), vec![b"a".to_vec()]);
        assert_eq!(s.unsynced_batches(), 0);
    }

    #[test]
    fn torn_crash_keeps_a_prefix_of_batches() {
        let mut s = MemStore::new();
        for k in [b"a", b"b", b"c"] {
            let mut b = WriteBatch::new();
            b.put(Space::Log, k.to_vec(), b"".to_vec());
            s.write(b).unwrap();
        }
        s.crash_keeping(2);
        assert_eq!(
            keys(&s, Space::Log, false),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
    }

    #[test]
    fn sync_through_makes_exactly_the_marked_writes_durable() {
        let mut s = MemStore::new();
        let put = |s: &mut MemStore, k: &[u8]| {
            let mut b = WriteBatch::new();
            b.put(Space::Log, k.to_vec(), b"".to_vec());
            s.write(b).unwrap();
        };
        put(&mut s, b"a");
        let mark = s.write_count();
        put(&mut s, b"b");
        put(&mut s, b"c");
        s.sync_through(mark);
        assert_eq!(s.unsynced_batches(), 2);
        assert_eq!(s.durable_get(Space::Log, b"a"), Some(Vec::new()));
        assert_eq!(s.durable_get(Space::Log, b"b"), None);
        // A mark behind what is already durable changes nothing.
        s.sync_through(0);
        assert_eq!(s.unsynced_batches(), 2);
        let mark = s.write_count() - 1;
        put(&mut s, b"d");
        s.sync_through(mark);
        s.crash();
        assert_eq!(
            keys(&s, Space::Log, false),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
    }

    #[test]
    fn scan_bounds_direction_and_delete_range() {
        let mut s = MemStore::new();
        let mut b = WriteBatch::new();
        for k in [b"a", b"b", b"c", b"d"] {
            b.put(Space::Chunks, k.to_vec(), k.to_vec());
        }
        s.write(b).unwrap();
        let got: Vec<_> = s
            .scan(Space::Chunks, b"b", Some(b"d"), true)
            .map(|kv| kv.unwrap().0)
            .collect();
        assert_eq!(got, vec![b"c".to_vec(), b"b".to_vec()]);
        assert_eq!(s.scan(Space::Chunks, b"c", Some(b"b"), false).count(), 0);
        let snap = s.snapshot().unwrap();
        let mut b = WriteBatch::new();
        b.delete_range(Space::Chunks, b"b".to_vec(), b"d".to_vec());
        s.write(b).unwrap();
        assert_eq!(
            keys(&s, Space::Chunks, false),
            vec![b"a".to_vec(), b"d".to_vec()]
        );
        assert_eq!(
            keys(&snap, Space::Chunks, false).len(),
            4,
            "snapshot must not change"
        );
    }
}
