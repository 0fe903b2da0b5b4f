//! The RocksDB implementation of core's [`Store`] port.
//!
//! One column family per [`Space`], named by [`Space::name`]. A core [`WriteBatch`] becomes one
//! RocksDB write batch, so it is atomic across column families and across crashes (the WAL
//! records the whole batch or none of it). Writes do not sync; [`Store::sync`] makes every
//! earlier write durable with one `FlushWAL(sync = true)`, which is what lets the driver
//! group-commit many batches behind one fsync.
//!
//! What this module does not do: it never retries, never interprets keys or values, and never
//! decides when to sync (the node does, before it acknowledges anything).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType,
    DBRecoveryMode, FlushOptions, IteratorMode, Options, ReadOptions, WriteOptions,
    checkpoint::Checkpoint,
};
use tickdb_core::store::{Op, ScanIter, Space, Store, StoreError, StoreRead, Syncer, WriteBatch};

/// Default shared block cache: enough for the index/filter blocks and the hot chunks of a
/// modest node; operators raise it on big machines.
pub const BLOCK_CACHE_BYTES_DEFAULT: usize = 64 << 20;
/// Default limit on open SST files. Unbounded (-1) is RocksDB's fastest setting but can exhaust
/// a default `ulimit -n` of 1024 that the node also needs for client sockets.
pub const MAX_OPEN_FILES_DEFAULT: i32 = 512;
/// Bloom filter density for point lookups: 10 bits per key gives about 1% false positives.
const BLOOM_BITS_PER_KEY: f64 = 10.0;
/// The most bytes of live WAL files before RocksDB flushes the column families that pin the
/// oldest one. Every apply round writes the Raft and Log spaces, whose memtables fill slowly,
/// so without a limit a WAL file stays live until the busiest memtable of all fills, and the
/// WAL (default limit: four times every memtable) outgrows the compressed data itself.
const WAL_TOTAL_BYTES_MAX: u64 = 64 << 20;
/// Where snapshot checkpoints live, inside the database directory so that hard links work
/// (same filesystem). RocksDB ignores names it does not recognise.
const SNAPSHOT_DIR: &str = "snapshots";

/// Tuning knobs for [`RocksStore::open`].
#[derive(Clone, Debug)]
pub struct RocksOptions {
    /// Size of the LRU block cache shared by every column family (and by snapshots).
    pub block_cache_bytes: usize,
    /// RocksDB's `max_open_files`; -1 keeps every SST open.
    pub max_open_files: i32,
    /// Hand the driver a [`Syncer`] ([`Store::syncer`]), so it syncs on a thread of its own
    /// while the node goes on writing (pipelined syncs); off, the node syncs inline.
    pub pipelined_sync: bool,
}

impl Default for RocksOptions {
    fn default() -> Self {
        Self {
            block_cache_bytes: BLOCK_CACHE_BYTES_DEFAULT,
            max_open_files: MAX_OPEN_FILES_DEFAULT,
            pipelined_sync: false,
        }
    }
}

/// A [`Store`] on a RocksDB database directory.
pub struct RocksStore {
    /// Shared with the [`Syncer`] the driver syncs on from its own thread.
    db: Arc<DB>,
    path: PathBuf,
    options: RocksOptions,
    cache: Cache,
    write_options: WriteOptions,
    /// For every point read: made once, where `get_cf` makes and frees one per read (about
    /// 500 instructions and two allocations of a GET's 6,400).
    read_options: ReadOptions,
    /// Names the next snapshot's checkpoint directory. Atomic because `snapshot` takes `&self`;
    /// leftovers from earlier runs are removed at open, so names never collide.
    next_snapshot: AtomicU64,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn engine(context: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Engine(format!("{context}: {err}"))
}

/// Database-wide options.
fn db_options(options: &RocksOptions) -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_max_open_files(options.max_open_files);
    // Writes go into RocksDB's own WAL buffer and reach the OS only on `sync()` (FlushWAL),
    // so a batch costs no syscall and a process crash loses exactly the unsynced writes,
    // matching the port's contract (and making the kill test exercise `sync`). RocksDB still
    // flushes the buffer by itself when it fills or when the WAL file switches.
    opts.set_manual_wal_flush(true);
    // After a crash keep the longest consistent prefix of the WAL: a torn tail loses whole
    // unsynced batches, never part of one (what MemStore::crash_keeping models).
    opts.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
    opts.set_max_total_wal_size(WAL_TOTAL_BYTES_MAX);
    // The WAL holds every Raft log entry since the last flush (and each checkpoint batch):
    // while loading, most of the directory. It is not compressed: zstd on the WAL was 11% of
    // the server's instructions per `TS.ADD -P 16` (each round's record is compressed and
    // flushed on its own, so the entropy tables are built per record). Commands compress
    // about 3x, so the WAL is bounded instead by checkpointing every 8 MiB of commands
    // (`CheckpointPolicy::log_bytes`): a 10 M-sample load's WAL peaked at 8.8 MiB, the
    // directory at 1.6x its stopped size (docs/benchmarks.md, "Session 11"). Not with
    // recycled WAL files (`recycle_log_file_num`): they keep a spent WAL file around, which
    // put that peak at 3x for +6% on `TS.ADD -P 1`.
    // Info logs: keep a few, bounded, so a long-running node does not fill its disk with them.
    opts.set_keep_log_file_num(4);
    opts.set_max_log_file_size(16 << 20);
    opts
}

/// Per-space options; every space shares `cache`.
fn space_options(space: Space, cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    // Index and filter blocks compete for the same memory budget instead of growing outside it.
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    let mut opts = Options::default();
    // Fast codec on the upper levels, which are rewritten often by compaction.
    opts.set_compression_type(DBCompressionType::Lz4);
    match space {
        Space::Keys => {
            // Every command looks its key up by name, and many lookups miss (TS.CREATE, EXISTS):
            // a full (not block-based) bloom filter skips the SSTs that cannot hold the key.
            table.set_bloom_filter(BLOOM_BITS_PER_KEY, false);
            table.set_whole_key_filtering(true);
        }
        Space::Chunks => {
            // Most of the data by far, written once and read rarely: the bottommost level, where
            // ~90% of it settles, gets ZSTD for the best ratio; Gorilla chunks still compress
            // (repeated headers, zero runs in slowly moving values).
            opts.set_bottommost_compression_type(DBCompressionType::Zstd);
        }
        // Log: append-only and deleted by range after compaction, read by scans. Raft and Meta:
        // a few keys. Labels: read by prefix scans. None of them is served by a bloom filter.
        Space::Log | Space::Raft | Space::Labels | Space::Meta => {}
    }
    opts.set_block_based_table_factory(&table);
    opts
}

fn column_families(cache: &Cache) -> Vec<ColumnFamilyDescriptor> {
    Space::ALL
        .iter()
        .map(|&space| ColumnFamilyDescriptor::new(space.name(), space_options(space, cache)))
        .collect()
}

fn open_error(path: &Path, err: &rocksdb::Error) -> StoreError {
    let text = err.to_string();
    if text.contains("LOCK") {
        // RocksDB's text ("While lock file: .../LOCK: Resource temporarily unavailable") does
        // not say what to do about it.
        StoreError::Engine(format!(
            "opening {}: the database is in use by another process ({text})",
            path.display()
        ))
    } else {
        engine(&format!("opening {}", path.display()), text)
    }
}

impl RocksStore {
    /// Opens (creating if missing) the database in `path` with one column family per space.
    pub fn open(path: &Path, options: RocksOptions) -> Result<Self, StoreError> {
        let cache = Cache::new_lru_cache(options.block_cache_bytes);
        let db = DB::open_cf_descriptors(&db_options(&options), path, column_families(&cache))
            .map_err(|e| open_error(path, &e))?;
        // Snapshots that were open when the previous process died are garbage now; only
        // remove them once we hold the database LOCK, so a second process cannot delete a
        // running node's snapshots.
        let snapshots = path.join(SNAPSHOT_DIR);
        if snapshots.exists() {
            fs::remove_dir_all(&snapshots).map_err(|e| engine("removing old snapshots", e))?;
        }
        let mut write_options = WriteOptions::default();
        write_options.set_sync(false);
        write_options.disable_wal(false);
        Ok(Self {
            db: Arc::new(db),
            path: path.to_path_buf(),
            options,
            cache,
            write_options,
            read_options: ReadOptions::default(),
            next_snapshot: AtomicU64::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the store after a clean stop: every memtable is flushed to SST files, so no WAL
    /// holds anything a restart must replay and RocksDB deletes the WAL files. Without this
    /// the data directory keeps, until the next start, a WAL with every write since the last
    /// flush, Raft log entries included (several times the size of the compressed samples).
    /// A crash skips it; recovery replays the WAL as always.
    pub fn close(self) -> Result<(), StoreError> {
        let mut flush = FlushOptions::default();
        flush.set_wait(true);
        let cfs: Vec<&ColumnFamily> = Space::ALL.iter().map(|s| cf(&self.db, *s)).collect();
        self.db
            .flush_cfs_opt(&cfs, &flush)
            .map_err(|e| engine("flush at close", e))?;
        // The log compacted at the clean stop and the head runs sealed into chunks are
        // deleted, but their bytes stay in SST files until a compaction rewrites them: do it
        // now, so the stopped directory holds about the compressed chunks.
        for space in [Space::Log, Space::Chunks, Space::Keys] {
            self.db
                .compact_range_cf(cf(&self.db, space), None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }
}

fn cf(db: &DB, space: Space) -> &ColumnFamily {
    // Every space's column family is opened (created if missing) in `open`/`snapshot`, so a
    // missing handle is our own broken invariant.
    db.cf_handle(space.name())
        .expect("every space has a column family")
}

fn read_get(
    db: &DB,
    read: &ReadOptions,
    space: Space,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    db.get_cf_opt(cf(db, space), key, read)
        .map_err(|e| engine(&format!("get in {}", space.name()), e))
}

fn read_scan<'a>(
    db: &'a DB,
    space: Space,
    start: &[u8],
    end: Option<&[u8]>,
    reverse: bool,
) -> ScanIter<'a> {
    if end.is_some_and(|end| end <= start) {
        return Box::new(std::iter::empty());
    }
    let mut read = ReadOptions::default();
    // With both bounds set, SeekToFirst lands on the first key >= start and SeekToLast on the
    // last key < end, so the two directions need nothing else.
    read.set_iterate_lower_bound(start.to_vec());
    if let Some(end) = end {
        read.set_iterate_upper_bound(end.to_vec());
    }
    let mode = if reverse {
        IteratorMode::End
    } else {
        IteratorMode::Start
    };
    let iter = db.iterator_cf_opt(cf(db, space), read, mode);
    Box::new(iter.map(move |item| {
        item.map(|(k, v)| (k.into_vec(), v.into_vec()))
            .map_err(|e| engine(&format!("scan in {}", space.name()), e))
    }))
}

fn to_rocks_batch(db: &DB, batch: &WriteBatch) -> rocksdb::WriteBatch {
    let mut out = rocksdb::WriteBatch::default();
    for op in batch.ops() {
        match op {
            Op::Put { space, key, value } => out.put_cf(cf(db, *space), key, value),
            Op::Delete { space, key } => out.delete_cf(cf(db, *space), key),
            // An empty or inverted range deletes nothing (as in MemStore); RocksDB may reject
            // an inverted one, so it is not passed on.
            Op::DeleteRange { space, start, end } if start < end => {
                out.delete_range_cf(cf(db, *space), start, end);
            }
            Op::DeleteRange { .. } => {}
        }
    }
    out
}

/// Whether `batch` range-deletes Raft log entries: a compaction behind a durable checkpoint
/// (or, rarely, a follower truncating a conflicting suffix).
fn drops_log(batch: &WriteBatch) -> bool {
    batch
        .ops()
        .iter()
        .any(|op| matches!(op, Op::DeleteRange { space: Space::Log, start, end } if start < end))
}

impl RocksStore {
    /// Starts a flush of every memtable (without waiting for it) once the log behind a
    /// checkpoint was deleted. The WAL files hold every log entry since the oldest unflushed
    /// memtable, and the log's memtable is written every round: without a flush they stay
    /// until `max_total_wal_size`, and a flush that comes before the deletion writes the dead
    /// entries into SST files that only a compaction removes. Flushed now, the deleted entries
    /// are dropped on the way (the tombstone covers them in the same memtable), the checkpoint
    /// batch becomes SSTs, and every WAL file before this point can go. RocksDB syncs the closed
    /// WAL files before it records a flush, so a crash cannot keep a flushed column family's
    /// half of a batch without the rest.
    fn flush_behind_log_compaction(&self) -> Result<(), StoreError> {
        let mut flush = FlushOptions::default();
        flush.set_wait(false);
        let cfs: Vec<&ColumnFamily> = Space::ALL.iter().map(|s| cf(&self.db, *s)).collect();
        self.db
            .flush_cfs_opt(&cfs, &flush)
            .map_err(|e| engine("flush behind log compaction", e))
    }
}

/// Syncs a [`RocksStore`] from another thread ([`Store::syncer`]).
struct RocksSyncer(Arc<DB>);

impl Syncer for RocksSyncer {
    /// Nothing to mark: a sync covers every write made before it is called, which is after the
    /// node asked for it.
    fn mark(&self) -> u64 {
        0
    }

    fn sync_through(&self, _mark: u64) -> Result<(), StoreError> {
        self.0.flush_wal(true).map_err(|e| engine("sync", e))
    }
}

impl StoreRead for RocksStore {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        read_get(&self.db, &self.read_options, space, key)
    }

    fn scan(&self, space: Space, start: &[u8], end: Option<&[u8]>, reverse: bool) -> ScanIter<'_> {
        read_scan(&self.db, space, start, end, reverse)
    }
}

impl Store for RocksStore {
    type Snapshot = RocksSnapshot;

    fn write(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let rocks = to_rocks_batch(&self.db, &batch);
        self.db
            .write_opt(rocks, &self.write_options)
            .map_err(|e| engine("write", e))?;
        if drops_log(&batch) {
            self.flush_behind_log_compaction()?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        // FlushWAL(sync = true) hands RocksDB's WAL buffer to the OS and then runs SyncWAL,
        // which fdatasyncs every live WAL file (and the WAL directory after a new file was
        // created). Batches already flushed into SSTs are durable through the MANIFEST.
        self.db.flush_wal(true).map_err(|e| engine("sync", e))
    }

    /// `FlushWAL(sync = true)` from the driver's sync thread, beside the node's writes:
    /// RocksDB serialises it with them on its WAL mutex (with `manual_wal_flush` and one write
    /// queue, a WAL append takes the same mutex), so it covers every batch written before it
    /// was called, and batches written while it runs wait for the next one.
    fn syncer(&self) -> Option<Arc<dyn Syncer>> {
        self.options
            .pipelined_sync
            .then(|| Arc::new(RocksSyncer(Arc::clone(&self.db))) as Arc<dyn Syncer>)
    }

    /// A snapshot is a RocksDB checkpoint (hard links to the SSTs plus a fresh MANIFEST) opened
    /// read-only, and deleted when dropped.
    ///
    /// Why not `DB::snapshot()`: rust-rocksdb's `Snapshot<'a>` borrows the `DB`, while the port
    /// needs `Send + 'static` (a snapshot is streamed to a follower while the node keeps
    /// writing), and the crate offers no owned snapshot. Holding the `DB` and a snapshot of it
    /// in one struct would need `unsafe`, which the workspace forbids; a thread that owns both
    /// and streams reads over channels would need one thread per open scan (two interleaved
    /// scans on one serving thread deadlock).
    /// A checkpoint costs a memtable flush (small L0 files) and an open of the copy, which is
    /// fine for the rare InstallSnapshot/compaction use; it must not be used per request.
    fn snapshot(&self) -> Result<RocksSnapshot, StoreError> {
        let root = self.path.join(SNAPSHOT_DIR);
        fs::create_dir_all(&root).map_err(|e| engine("creating snapshot directory", e))?;
        let dir = root.join(
            self.next_snapshot
                .fetch_add(1, Ordering::Relaxed)
                .to_string(),
        );
        let checkpoint = Checkpoint::new(&self.db).map_err(|e| engine("checkpoint", e))?;
        // log_size_for_flush = 0: flush memtables first, so the checkpoint holds every write
        // made so far in SSTs and does not depend on copied WAL files.
        checkpoint
            .create_checkpoint_with_log_size(&dir, 0)
            .map_err(|e| engine("checkpoint", e))?;
        let mut opts = Options::default();
        opts.set_max_open_files(self.options.max_open_files);
        let table_opts = {
            let mut t = BlockBasedOptions::default();
            t.set_block_cache(&self.cache);
            t
        };
        opts.set_block_based_table_factory(&table_opts);
        let names = Space::ALL.iter().map(|s| s.name());
        let db = match DB::open_cf_for_read_only(&opts, &dir, names, false) {
            Ok(db) => db,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(engine("opening snapshot", e));
            }
        };
        Ok(RocksSnapshot {
            db: Some(db),
            dir,
            read_options: ReadOptions::default(),
        })
    }
}

/// A point-in-time, read-only view of a [`RocksStore`]; see [`RocksStore::snapshot`].
pub struct RocksSnapshot {
    /// Always `Some` until drop, which closes the database before deleting its directory.
    db: Option<DB>,
    dir: PathBuf,
    read_options: ReadOptions,
}

impl std::fmt::Debug for RocksSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksSnapshot")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl RocksSnapshot {
    fn db(&self) -> &DB {
        self.db
            .as_ref()
            .expect("the snapshot database is open until drop")
    }
}

impl StoreRead for RocksSnapshot {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        read_get(self.db(), &self.read_options, space, key)
    }

    fn scan(&self, space: Space, start: &[u8], end: Option<&[u8]>, reverse: bool) -> ScanIter<'_> {
        read_scan(self.db(), space, start, end, reverse)
    }
}

impl Drop for RocksSnapshot {
    fn drop(&mut self) {
        drop(self.db.take());
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            // Not fatal: the next open of the store removes leftovers.
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove snapshot");
        }
    }
}
