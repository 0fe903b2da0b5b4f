//! A write transaction over the store: reads see the transaction's own writes, and everything
//! it changed is handed back as one [`WriteBatch`], so a log entry applies atomically whatever
//! it holds (one `SET`, or a whole `BATCH_FLUSH`).
//!
//! The batch holds each key's final state only: a key written many times in one transaction
//! (a series record updated by every sample of an apply round) costs the store one put, not
//! one per write. Range deletions come first in the batch, then the surviving point changes.
//!
//! A value may be held in typed form ([`Typed`], [`Tx::put_typed`]): a series record that
//! every sample of a round rewrites is then neither decoded nor encoded per sample, only
//! encoded when something reads its bytes or a batch writes it.

use std::any::Any;
use std::collections::BTreeSet;
use std::fmt;
use std::iter::Peekable;
use std::ops::{Bound, Deref, DerefMut, Range};
use std::sync::{Arc, OnceLock};

use crate::store::{KeyValue, ScanIter, Space, StoreError, StoreRead, WriteBatch};

/// A value held decoded. Its bytes are [`Typed::encode`]'s, exactly what a put of them would
/// hold: every reader that asks for bytes gets those.
pub trait Typed: Any + Send + Sync + fmt::Debug {
    /// The stored bytes of this value.
    fn encode(&self) -> Vec<u8>;
    /// About the length of [`Typed::encode`]'s bytes, for the memory estimate of what is
    /// held; the same for the same value.
    fn len_hint(&self) -> usize;
    fn clone_box(&self) -> Box<dyn Typed>;
}

/// A held value: bytes, or a typed value with its bytes encoded on first read.
enum Value {
    Bytes(Vec<u8>),
    Typed {
        value: Box<dyn Typed>,
        bytes: OnceLock<Vec<u8>>,
    },
}

impl Value {
    fn typed(value: Box<dyn Typed>) -> Self {
        Self::Typed {
            value,
            bytes: OnceLock::new(),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Bytes(b) => b,
            Self::Typed { value, bytes } => bytes.get_or_init(|| value.encode()),
        }
    }

    fn into_bytes(self) -> Vec<u8> {
        match self {
            Self::Bytes(b) => b,
            Self::Typed { value, bytes } => bytes.into_inner().unwrap_or_else(|| value.encode()),
        }
    }

    /// The length [`Changes::bytes`] counts: the same for a value as long as it is held.
    fn len(&self) -> usize {
        match self {
            Self::Bytes(b) => b.len(),
            Self::Typed { value, .. } => value.len_hint(),
        }
    }
}

impl Clone for Value {
    fn clone(&self) -> Self {
        match self {
            Self::Bytes(b) => Self::Bytes(b.clone()),
            Self::Typed { value, bytes } => Self::Typed {
                value: value.clone_box(),
                bytes: bytes.clone(),
            },
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bytes(b) => f.debug_tuple("Bytes").field(b).finish(),
            Self::Typed { value, .. } => f.debug_tuple("Typed").field(value).finish(),
        }
    }
}

/// Lets `change` edit `p`'s value in place unless it is a deletion or the range deletion
/// `range_seq` came after it; returns whether `change` changed it, which makes it the newest
/// change (`seq`). `bytes` is the estimate of what is held, kept in step.
fn edit_pending(
    p: &mut Pending,
    range_seq: Option<u64>,
    seq: &mut u64,
    bytes: &mut usize,
    change: impl FnOnce(&mut Vec<u8>) -> bool,
) -> bool {
    if range_seq.is_some_and(|r| r > p.seq) {
        return false;
    }
    let Some(v) = p.value.as_mut() else {
        return false;
    };
    let before = v.len();
    let changed = match v {
        Value::Bytes(b) => change(b),
        // A typed value is edited on a copy of its bytes and becomes them only when `change`
        // changed them: an edit that declines (an INCR that meets a series record) leaves it
        // held decoded.
        Value::Typed { .. } => {
            let mut copy = v.as_bytes().to_vec();
            let changed = change(&mut copy);
            if changed {
                *v = Value::Bytes(copy);
            }
            changed
        }
    };
    *bytes = *bytes - before + v.len();
    if changed {
        *seq += 1;
        p.seq = *seq;
    }
    changed
}

/// A pending change to one key.
#[derive(Clone, Debug)]
struct Pending {
    /// `None`: deleted.
    value: Option<Value>,
    /// Order of the change within the transaction, to compare with range deletions.
    seq: u64,
}

#[derive(Clone, Debug)]
struct RangeDelete {
    space: Space,
    start: Vec<u8>,
    end: Vec<u8>,
    seq: u64,
}

/// The sequence number of the newest of `ranges` covering `key`, if any.
fn newest_range(ranges: &[RangeDelete], space: Space, key: &[u8]) -> Option<u64> {
    ranges
        .iter()
        .filter(|r| r.space == space && r.start.as_slice() <= key && key < r.end.as_slice())
        .map(|r| r.seq)
        .max()
}

/// The held changes of one space, by key. `clippy.toml` keeps `HashMap` out of the core for its
/// per-process iteration order; this one is seeded by the node ([`Changes::with_seed`]) and
/// never iterated: every ordered walk goes through [`Held::order`].
#[allow(clippy::disallowed_types)]
type KeyMap = std::collections::HashMap<Arc<[u8]>, Pending, foldhash::fast::FixedState>;

/// The greatest key of `order` in `[start, end)` (`start < end`).
fn last_in<'o>(order: &'o BTreeSet<Arc<[u8]>>, start: &[u8], end: &[u8]) -> Option<&'o Arc<[u8]>> {
    order
        .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
        .next_back()
}

/// The changes held to one space: each key's newest change found by one hash lookup (what
/// every sample of a write does to its series record, head run and WATCH version), and the
/// keys in order for ranges, scans and batches.
#[derive(Clone, Debug, Default)]
struct Held {
    /// The newest change to each key.
    values: KeyMap,
    /// Every key of `values`, in order (the same allocations).
    order: BTreeSet<Arc<[u8]>>,
}

impl Held {
    fn with_seed(seed: u64) -> Self {
        Self {
            values: KeyMap::with_hasher(foldhash::fast::FixedState::with_seed(seed)),
            order: BTreeSet::new(),
        }
    }

    fn pending(&self, key: &[u8]) -> &Pending {
        self.values.get(key).expect("every ordered key is held")
    }
}

/// Changes to a store that are not in it yet: each key's newest value (or deletion) and the
/// range deletions, in order. A [`Tx`] holds those of one transaction; the node's
/// [`crate::writeback::WriteBack`] holds those of every applied entry since the last
/// checkpoint. Reading through them onto a store ([`Changes::get`], [`Changes::scan`]) gives
/// what applying them would leave.
///
/// Keys are found by hash: the hasher's seed ([`Changes::with_seed`]) is the node's, drawn at
/// start, so a client cannot choose keys that collide. Nothing depends on the hash order
/// (ranges, scans and batches go through the ordered keys), so every replica does the same.
#[derive(Clone, Debug)]
pub struct Changes {
    /// The changes to each space, indexed by [`Space::index`].
    overlay: [Held; Space::ALL.len()],
    /// Range deletions, oldest first.
    ranges: Vec<RangeDelete>,
    seq: u64,
    /// Bytes of keys and values held (an estimate of the memory they take).
    bytes: usize,
    seed: u64,
}

impl Default for Changes {
    fn default() -> Self {
        Self::with_seed(0)
    }
}

impl Changes {
    /// Changes whose key hashes are seeded with 0: for transactions whose keys a client does
    /// not choose by the thousand (tests, tools). A node's held changes use
    /// [`Changes::with_seed`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Empty changes hashing keys with `seed`.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            overlay: std::array::from_fn(|_| Held::with_seed(seed)),
            ranges: Vec::new(),
            seq: 0,
            bytes: 0,
            seed,
        }
    }

    /// Empty changes with the same hash seed as these.
    pub fn empty_like(&self) -> Self {
        Self::with_seed(self.seed)
    }

    fn held(&self, space: Space) -> &Held {
        &self.overlay[space.index()]
    }

    fn held_mut(&mut self, space: Space) -> &mut Held {
        &mut self.overlay[space.index()]
    }

    pub fn is_empty(&self) -> bool {
        self.overlay.iter().all(|h| h.values.is_empty()) && self.ranges.is_empty()
    }

    /// Bytes of the keys and values held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Range deletions held.
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The sequence number of the newest range deletion covering `key`, if any.
    fn deleted_at(&self, space: Space, key: &[u8]) -> Option<u64> {
        newest_range(&self.ranges, space, key)
    }

    /// What these changes say about `key`: `Some(Some(value))` written, `Some(None)` deleted,
    /// `None` untouched (the store underneath decides).
    pub fn lookup(&self, space: Space, key: &[u8]) -> Option<Option<&[u8]>> {
        self.lookup_value(space, key)
            .map(|v| v.map(Value::as_bytes))
    }

    fn lookup_value(&self, space: Space, key: &[u8]) -> Option<Option<&Value>> {
        let pending = self.held(space).values.get(key);
        let range_seq = self.deleted_at(space, key);
        match (pending, range_seq) {
            (Some(p), Some(r)) if r > p.seq => Some(None),
            (Some(p), _) => Some(p.value.as_ref()),
            (None, Some(_)) => Some(None),
            (None, None) => None,
        }
    }

    /// `key`'s value if these changes hold it in typed form as a `T` (and it was not deleted
    /// since); `None` says nothing about the key otherwise.
    pub fn typed<T: Typed>(&self, space: Space, key: &[u8]) -> Option<&T> {
        match self.lookup_value(space, key)?? {
            Value::Typed { value, .. } => (&**value as &dyn Any).downcast_ref::<T>(),
            Value::Bytes(_) => None,
        }
    }

    /// Writes `value` in typed form: the same as a put of its bytes, which are encoded only
    /// when read or written out. A key held already is changed in place (no copy of the key).
    ///
    /// Not through [`Changes::replace_held`]: a value handed to a closure that may not be
    /// called is moved in and out of an `Option`, and a series record is moved per sample
    /// (each move a `memcpy` of the record, 4 of 470 instructions a TS.ADD).
    pub fn put_typed<T: Typed>(&mut self, space: Space, key: &[u8], value: T) {
        let Some(p) = self.overlay[space.index()].values.get_mut(key) else {
            self.insert(space, key.to_vec(), Some(Value::typed(Box::new(value))));
            return;
        };
        let before = p.value.as_ref().map_or(0, Value::len);
        if let Some(Value::Typed { value: old, bytes }) = &mut p.value
            && let Some(t) = (&mut **old as &mut dyn Any).downcast_mut::<T>()
        {
            *t = value;
            *bytes = OnceLock::new();
        } else {
            p.value = Some(Value::typed(Box::new(value)));
        }
        let after = p.value.as_ref().map_or(0, Value::len);
        // As `replace_held`: the newest change, after any range deletion.
        self.seq += 1;
        p.seq = self.seq;
        self.bytes = self.bytes - before + after;
    }

    /// A put of a copy of `value` that changes a key held already in place (no copy of the
    /// key, its value's buffer reused).
    pub fn put_ref(&mut self, space: Space, key: &[u8], value: &[u8]) {
        let replaced = self.replace_held(space, key, |held| match held {
            Some(Value::Bytes(b)) => {
                b.clear();
                b.extend_from_slice(value);
            }
            v => *v = Some(Value::Bytes(value.to_vec())),
        });
        if !replaced {
            self.put(space, key.to_vec(), value.to_vec());
        }
    }

    /// Changes the held entry of `key` (whatever it holds: the change is the newest, after
    /// any range deletion) with `change`; `false`, calling nothing, when none is held.
    fn replace_held(
        &mut self,
        space: Space,
        key: &[u8],
        change: impl FnOnce(&mut Option<Value>),
    ) -> bool {
        let Some(p) = self.overlay[space.index()].values.get_mut(key) else {
            return false;
        };
        let before = p.value.as_ref().map_or(0, Value::len);
        change(&mut p.value);
        let after = p.value.as_ref().map_or(0, Value::len);
        self.seq += 1;
        p.seq = self.seq;
        self.bytes = self.bytes - before + after;
        true
    }

    /// `key`'s value read through these changes onto `store`.
    pub fn get(
        &self,
        store: &impl StoreRead,
        space: Space,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match self.lookup(space, key) {
            Some(v) => Ok(v.map(<[u8]>::to_vec)),
            None => store.get(space, key),
        }
    }

    fn insert(&mut self, space: Space, key: Vec<u8>, value: Option<Value>) {
        let seq = self.next_seq();
        self.insert_pending(space, key, Pending { value, seq });
    }

    /// Records `p` as `key`'s newest change, keeping [`Changes::bytes`] in step.
    fn insert_pending(&mut self, space: Space, key: Vec<u8>, p: Pending) {
        let len = |p: &Pending| p.value.as_ref().map_or(0, Value::len);
        let added = len(&p);
        let held = self.held_mut(space);
        // A new key counts once: both maps share its allocation.
        let removed = match held.values.get_mut(key.as_slice()) {
            Some(old) => len(&std::mem::replace(old, p)),
            None => {
                let key_len = key.len();
                let key: Arc<[u8]> = key.into();
                held.order.insert(Arc::clone(&key));
                held.values.insert(key, p);
                self.bytes += key_len;
                0
            }
        };
        self.bytes = self.bytes + added - removed;
    }

    /// Records a range deletion, keeping [`Changes::bytes`] in step.
    fn push_range(&mut self, r: RangeDelete) {
        self.bytes += r.start.len() + r.end.len();
        self.ranges.push(r);
    }

    pub fn put(&mut self, space: Space, key: Vec<u8>, value: Vec<u8>) {
        self.insert(space, key, Some(Value::Bytes(value)));
    }

    pub fn delete(&mut self, space: Space, key: Vec<u8>) {
        self.insert(space, key, None);
    }

    /// Deletes every key `k` with `start <= k < end`.
    pub fn delete_range(&mut self, space: Space, start: Vec<u8>, end: Vec<u8>) {
        if start >= end {
            return;
        }
        let seq = self.next_seq();
        self.push_range(RangeDelete {
            space,
            start,
            end,
            seq,
        });
    }

    /// One batch that leaves the store as applying every change in order would: the range
    /// deletions, then each key's newest change unless a later range deletion covers it.
    pub fn into_batch(self) -> WriteBatch {
        let Self {
            overlay, ranges, ..
        } = self;
        let mut batch = WriteBatch::new();
        for r in &ranges {
            batch.delete_range(r.space, r.start.clone(), r.end.clone());
        }
        for (space, held) in Space::ALL.into_iter().zip(overlay) {
            let Held { mut values, order } = held;
            for key in order {
                let p = values.remove(&key).expect("every ordered key is held");
                if newest_range(&ranges, space, &key).is_some_and(|r| r > p.seq) {
                    continue;
                }
                let key = key.to_vec();
                match p.value {
                    Some(v) => batch.put(space, key, v.into_bytes()),
                    None => batch.delete(space, key),
                }
            }
        }
        batch
    }

    /// The greatest key in `[start, end)` written here and still held (not deleted since),
    /// with its value: what [`Changes::edit_last_written`] edits (the tests hold it to that).
    #[cfg(test)]
    pub fn last_written(&self, space: Space, start: &[u8], end: &[u8]) -> Option<(&[u8], &[u8])> {
        if start >= end {
            return None;
        }
        let held = self.held(space);
        let key = last_in(&held.order, start, end)?;
        let p = held.pending(key);
        let value = p.value.as_ref()?.as_bytes();
        if self.deleted_at(space, key).is_some_and(|r| r > p.seq) {
            return None;
        }
        Some((key, value))
    }

    /// Lets `change` edit in place the value of a key written here and still held; it returns
    /// whether it changed the value. `false`, calling nothing, when there is no such value.
    pub fn edit_if(
        &mut self,
        space: Space,
        key: &[u8],
        change: impl FnOnce(&mut Vec<u8>) -> bool,
    ) -> bool {
        let range_seq = self.deleted_at(space, key);
        let Some(p) = self.overlay[space.index()].values.get_mut(key) else {
            return false;
        };
        edit_pending(p, range_seq, &mut self.seq, &mut self.bytes, change)
    }

    /// Lets `change` edit in place the value of the greatest key in `[start, end)` written here
    /// and still held, as [`Changes::last_written`] finds it; `change` returns whether it
    /// changed it. One search, where finding the key and then editing it would take two.
    pub fn edit_last_written(
        &mut self,
        space: Space,
        start: &[u8],
        end: &[u8],
        change: impl FnOnce(&mut Vec<u8>) -> bool,
    ) -> bool {
        if start >= end {
            return false;
        }
        let Held { values, order } = &mut self.overlay[space.index()];
        let Some(key) = last_in(order, start, end) else {
            return false;
        };
        let range_seq = newest_range(&self.ranges, space, key);
        let p = values.get_mut(key).expect("every ordered key is held");
        edit_pending(p, range_seq, &mut self.seq, &mut self.bytes, change)
    }

    /// The greatest key of `space` held here (written or deleted), for [`Tx::clear`].
    fn last_key(&self, space: Space) -> Option<&[u8]> {
        self.held(space).order.last().map(|k| &**k)
    }

    /// Entries with `start <= key < end` of `store` with these changes applied, ascending or
    /// descending.
    pub fn scan<'t>(
        &'t self,
        store: &'t impl StoreRead,
        space: Space,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
    ) -> ScanIter<'t> {
        if end.is_some_and(|end| start >= end) {
            // An empty range (BTreeMap ranges panic on reversed bounds).
            return Box::new(std::iter::empty());
        }
        let stored = store.scan(space, start, end, reverse);
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        // Lazily: a reverse scan that stops after a few entries (the newest samples) must not
        // copy every change held in its range first.
        let held = self.held(space);
        let range = held.order.range::<[u8], _>((Bound::Included(start), upper));
        let owned = move |k: &Arc<[u8]>| {
            let p = held.pending(k);
            let hidden = self.deleted_at(space, k).is_some_and(|r| r > p.seq);
            let value = p.value.as_ref().filter(|_| !hidden);
            (k.to_vec(), value.map(|v| v.as_bytes().to_vec()))
        };
        let pending: PendingIter<'t> = if reverse {
            Box::new(range.rev().map(owned))
        } else {
            Box::new(range.map(owned))
        };
        Box::new(Merge {
            stored: stored.peekable(),
            pending: pending.peekable(),
            reverse,
            changes: self,
            space,
        })
    }
}

/// Where a transaction's writes go: changes of its own, handed back at the end, or changes it
/// writes into and leaves there (a node's apply round writes straight into what its write-back
/// layer holds, [`crate::writeback::WriteBack::round`]).
enum Buffer<'a> {
    Own(Box<Changes>),
    Held(&'a mut Changes),
}

impl Deref for Buffer<'_> {
    type Target = Changes;

    fn deref(&self) -> &Changes {
        match self {
            Buffer::Own(c) => c,
            Buffer::Held(c) => c,
        }
    }
}

impl DerefMut for Buffer<'_> {
    fn deref_mut(&mut self) -> &mut Changes {
        match self {
            Buffer::Own(c) => c,
            Buffer::Held(c) => c,
        }
    }
}

/// Reads through to `store`, buffers writes.
pub struct Tx<'a, S: StoreRead> {
    store: &'a S,
    changes: Buffer<'a>,
    /// The log index of the entry being applied ([`Tx::begin_entry`]): the stamp of every key
    /// record it writes, which is the key's WATCH version.
    stamp: u64,
    /// User keys ([`Space::Keys`]) deleted since [`Tx::begin_entry`]: WATCH's versions of
    /// missing keys change with them (a written key carries its version in its record).
    deleted: Deleted,
}

/// The user keys a stretch of a transaction deleted (some may exist again by its end); a range
/// deletion sets `all` instead.
///
/// Most entries delete nothing, or one key, so deletions are listed as they come, the same
/// key in a row once, and made unique when taken. The keys sit back to back in one buffer that
/// the transaction reuses entry after entry ([`Tx::give_back_deleted`]): no allocation per
/// entry.
#[derive(Clone, Debug, Default)]
pub struct Deleted {
    /// The keys, back to back.
    bytes: Vec<u8>,
    /// Per key: its range in `bytes` and a hash of it (so that making the list unique
    /// compares numbers, not keys).
    keys: Vec<(Range<usize>, u64)>,
    /// A range of user keys was deleted (FLUSHALL): treat every key as modified.
    pub all: bool,
}

/// The hash [`Deleted`] groups equal keys by. Fixed, not seeded: it orders a sort, never a
/// table a client could fill with collisions, and equal hashes still compare their keys.
fn key_hash(key: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0).hash_one(key)
}

impl Deleted {
    fn note(&mut self, key: &[u8]) {
        if let Some((last, _)) = self.keys.last()
            && self.bytes[last.clone()] == *key
        {
            return;
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key);
        self.keys.push((start..self.bytes.len(), key_hash(key)));
    }

    /// Each key once. A DEL of many keys lists hundreds: sorting by hash first keeps the
    /// comparisons off the keys' bytes.
    fn order(&mut self) {
        if self.keys.len() > 1 {
            let bytes = &self.bytes;
            self.keys.sort_by(|a, b| {
                a.1.cmp(&b.1)
                    .then_with(|| bytes[a.0.clone()].cmp(&bytes[b.0.clone()]))
            });
            self.keys.dedup_by(|later, kept| {
                later.1 == kept.1 && bytes[later.0.clone()] == bytes[kept.0.clone()]
            });
        }
    }

    /// Each key once, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.keys.iter().map(|(r, _)| &self.bytes[r.clone()])
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.keys.clear();
        self.all = false;
    }
}

impl<'a, S: StoreRead> Tx<'a, S> {
    pub fn new(store: &'a S) -> Self {
        Self {
            store,
            changes: Buffer::Own(Box::default()),
            stamp: 0,
            deleted: Deleted::default(),
        }
    }

    /// A transaction on `held`, changes on top of `store` that it has not written yet: reads
    /// see `store` with `held` and this transaction's writes applied, and the writes go into
    /// `held` and stay there ([`Tx::into_changes`] and [`Tx::into_batch`] are not for it).
    pub fn on_held(store: &'a S, held: &'a mut Changes) -> Self {
        Self {
            store,
            changes: Buffer::Held(held),
            stamp: 0,
            deleted: Deleted::default(),
        }
    }

    /// Starts the entry at log index `stamp`: the key records written from here on carry it,
    /// and the deletions listed are its own.
    pub fn begin_entry(&mut self, stamp: u64) {
        self.stamp = stamp;
        self.deleted.clear();
    }

    /// The log index of the entry being applied (0 before [`Tx::begin_entry`]).
    pub fn stamp(&self) -> u64 {
        self.stamp
    }

    /// Whether a user key (or a range of them) was deleted since [`Tx::begin_entry`].
    pub fn deleted_any(&self) -> bool {
        !self.deleted.keys.is_empty() || self.deleted.all
    }

    /// The user keys deleted since [`Tx::begin_entry`] (and forgets them). Give the list back
    /// ([`Tx::give_back_deleted`]) to have its buffers reused.
    pub fn take_deleted(&mut self) -> Deleted {
        let mut deleted = std::mem::take(&mut self.deleted);
        deleted.order();
        deleted
    }

    /// Returns a list [`Tx::take_deleted`] gave, emptied, for its buffers' reuse.
    pub fn give_back_deleted(&mut self, mut deleted: Deleted) {
        deleted.clear();
        if self.deleted.keys.is_empty() && !self.deleted.all {
            self.deleted = deleted;
        }
    }

    /// One batch that leaves the store as applying every change in order would.
    pub fn into_batch(self) -> WriteBatch {
        self.into_changes().into_batch()
    }

    /// The changes this transaction made.
    ///
    /// # Panics
    /// On a transaction made by [`Tx::on_held`]: its changes are where it wrote them.
    pub fn into_changes(self) -> Changes {
        match self.changes {
            Buffer::Own(c) => *c,
            Buffer::Held(_) => panic!("a transaction on held changes leaves them in place"),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.changes.get(self.store, space, key)
    }

    /// Calls `f` with `key`'s value without copying it when this transaction holds it (a read
    /// of the store underneath still copies).
    pub fn peek<R>(
        &self,
        space: Space,
        key: &[u8],
        f: impl FnOnce(Option<&[u8]>) -> R,
    ) -> Result<R, StoreError> {
        match self.changes.lookup(space, key) {
            Some(held) => Ok(f(held)),
            None => Ok(f(self.store.get(space, key)?.as_deref())),
        }
    }

    /// Whether `key` exists, without copying its value when this transaction holds it.
    pub fn contains(&self, space: Space, key: &[u8]) -> Result<bool, StoreError> {
        self.peek(space, key, |v| v.is_some())
    }

    pub fn put(&mut self, space: Space, key: Vec<u8>, value: Vec<u8>) {
        self.changes.put(space, key, value);
    }

    /// [`Changes::put_ref`].
    pub fn put_ref(&mut self, space: Space, key: &[u8], value: &[u8]) {
        self.changes.put_ref(space, key, value);
    }

    /// [`Changes::edit_last_written`], outside the user keys (whose changes WATCH must see by
    /// name).
    pub fn edit_last_written(
        &mut self,
        space: Space,
        start: &[u8],
        end: &[u8],
        change: impl FnOnce(&mut Vec<u8>) -> bool,
    ) -> bool {
        assert_ne!(space, Space::Keys, "user keys are edited by name");
        self.changes.edit_last_written(space, start, end, change)
    }

    /// A put of `value`'s bytes, held in typed form ([`Changes::put_typed`]).
    pub fn put_typed<T: Typed>(&mut self, space: Space, key: &[u8], value: T) {
        self.changes.put_typed(space, key, value);
    }

    /// `key`'s value if this transaction (or the changes it is on) holds it as a `T`.
    pub fn typed<T: Typed>(&self, space: Space, key: &[u8]) -> Option<&T> {
        self.changes.typed(space, key)
    }

    pub fn delete(&mut self, space: Space, key: Vec<u8>) {
        if space == Space::Keys {
            self.deleted.note(&key);
        }
        self.changes.delete(space, key);
    }

    /// The greatest key in `[start, end)` this transaction wrote and still holds (not deleted
    /// since), with its value: a record the transaction may extend in place.
    #[cfg(test)]
    pub fn last_written(&self, space: Space, start: &[u8], end: &[u8]) -> Option<(&[u8], &[u8])> {
        self.changes.last_written(space, start, end)
    }

    /// Changes in place the value of a key this transaction wrote and still holds (appends a
    /// sample to a record, say): the same as a `put` of the changed value, without copying it.
    /// Returns `false`, calling nothing, when the transaction holds no value for the key.
    #[cfg(test)]
    pub fn edit(&mut self, space: Space, key: &[u8], change: impl FnOnce(&mut Vec<u8>)) -> bool {
        self.edit_if(space, key, |v| {
            change(v);
            true
        })
    }

    /// Changes in place the value of a key this transaction wrote and still holds (the same as
    /// a `put` of the changed value, without copying it), when `change` says it changed it;
    /// `false`, calling nothing, when the transaction holds no value for the key.
    pub fn edit_if(
        &mut self,
        space: Space,
        key: &[u8],
        change: impl FnOnce(&mut Vec<u8>) -> bool,
    ) -> bool {
        self.changes.edit_if(space, key, change)
    }

    /// Deletes every key `k` with `start <= k < end`.
    pub fn delete_range(&mut self, space: Space, start: Vec<u8>, end: Vec<u8>) {
        if start >= end {
            return;
        }
        if space == Space::Keys {
            self.deleted.all = true;
        }
        self.changes.delete_range(space, start, end);
    }

    /// Deletes every key of `space`.
    pub fn clear(&mut self, space: Space) -> Result<(), StoreError> {
        let last_stored = self
            .store
            .scan(space, b"", None, true)
            .next()
            .transpose()?
            .map(|kv| kv.0);
        let last_pending = self.changes.last_key(space).map(<[u8]>::to_vec);
        let Some(last) = last_stored.into_iter().chain(last_pending).max() else {
            return Ok(());
        };
        let mut end = last;
        end.push(0);
        self.delete_range(space, Vec::new(), end);
        Ok(())
    }

    /// Entries with `start <= key < end`, merged from the store and this transaction's
    /// changes, ascending or descending.
    pub fn scan(
        &self,
        space: Space,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
    ) -> ScanIter<'_> {
        self.changes.scan(self.store, space, start, end, reverse)
    }
}

/// A transaction reads like a store (its own writes included), so read paths serve both.
impl<S: StoreRead> StoreRead for Tx<'_, S> {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Tx::get(self, space, key)
    }

    fn scan(&self, space: Space, start: &[u8], end: Option<&[u8]>, reverse: bool) -> ScanIter<'_> {
        Tx::scan(self, space, start, end, reverse)
    }
}

/// Pending changes in scan order: key and value (`None`: deleted or hidden by a range).
type PendingIter<'t> = Box<dyn Iterator<Item = (Vec<u8>, Option<Vec<u8>>)> + 't>;

/// Merges a store scan with pending changes; pending wins on equal keys.
struct Merge<'t, P: Iterator<Item = (Vec<u8>, Option<Vec<u8>>)>> {
    stored: Peekable<ScanIter<'t>>,
    pending: Peekable<P>,
    reverse: bool,
    changes: &'t Changes,
    space: Space,
}

impl<P: Iterator<Item = (Vec<u8>, Option<Vec<u8>>)>> Iterator for Merge<'_, P> {
    type Item = Result<KeyValue, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let take_pending = match (self.stored.peek(), self.pending.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) => return self.stored.next(),
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some(Ok((sk, _))), Some((pk, _))) => {
                    if sk == pk {
                        self.stored.next();
                        true
                    } else {
                        (pk < sk) != self.reverse
                    }
                }
            };
            if take_pending {
                let (k, v) = self.pending.next()?;
                if let Some(v) = v {
                    return Some(Ok((k, v)));
                }
            } else {
                let item = self.stored.next()?;
                let Ok((k, v)) = item else { return Some(item) };
                if self.changes.deleted_at(self.space, &k).is_none() {
                    return Some(Ok((k, v)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::store::{MemStore, Store};

    fn store_with(keys: &[&str]) -> MemStore {
        let mut s = MemStore::new();
        let mut b = WriteBatch::new();
        for k in keys {
            b.put(Space::Keys, k.as_bytes().to_vec(), b"s".to_vec());
        }
        s.write(b).unwrap();
        s
    }

    fn scan_keys(tx: &Tx<'_, MemStore>, reverse: bool) -> Vec<String> {
        tx.scan(Space::Keys, b"", None, reverse)
            .map(|kv| {
                let (k, v) = kv.unwrap();
                format!(
                    "{}={}",
                    String::from_utf8(k).unwrap(),
                    String::from_utf8(v).unwrap()
                )
            })
            .collect()
    }

    #[test]
    fn reads_see_own_writes_and_range_deletes() {
        let s = store_with(&["a", "b", "c"]);
        let mut tx = Tx::new(&s);
        tx.put(Space::Keys, b"bb".to_vec(), b"t".to_vec());
        tx.delete(Space::Keys, b"a".to_vec());
        assert_eq!(scan_keys(&tx, false), ["b=s", "bb=t", "c=s"]);
        assert_eq!(scan_keys(&tx, true), ["c=s", "bb=t", "b=s"]);
        tx.delete_range(Space::Keys, b"b".to_vec(), b"c".to_vec());
        assert_eq!(scan_keys(&tx, false), ["c=s"]);
        assert_eq!(tx.get(Space::Keys, b"bb").unwrap(), None);
        tx.put(Space::Keys, b"b".to_vec(), b"u".to_vec());
        assert_eq!(scan_keys(&tx, false), ["b=u", "c=s"]);
        tx.clear(Space::Keys).unwrap();
        assert_eq!(scan_keys(&tx, false), Vec::<String>::new());
        // Empty and reversed ranges are empty, with or without changes in them.
        tx.put(Space::Keys, b"m".to_vec(), b"v".to_vec());
        for (start, end) in [(&b"m"[..], &b"m"[..]), (b"z", b"a")] {
            assert_eq!(tx.scan(Space::Keys, start, Some(end), false).count(), 0);
            assert_eq!(tx.scan(Space::Keys, start, Some(end), true).count(), 0);
        }
    }

    #[test]
    fn batch_holds_each_keys_final_state_once() {
        let mut s = store_with(&["a", "b", "c", "d"]);
        let mut tx = Tx::new(&s);
        for v in ["1", "2", "3"] {
            tx.put(Space::Keys, b"x".to_vec(), v.as_bytes().to_vec());
        }
        // Put then covered by a later range deletion: gone, and not written.
        tx.put(Space::Keys, b"bb".to_vec(), b"t".to_vec());
        tx.delete_range(Space::Keys, b"b".to_vec(), b"c".to_vec());
        // Deleted by a range, then written again: kept.
        tx.delete_range(Space::Keys, b"c".to_vec(), b"d".to_vec());
        tx.put(Space::Keys, b"c".to_vec(), b"new".to_vec());
        tx.delete(Space::Keys, b"d".to_vec());
        let expect = scan_keys(&tx, false);
        assert_eq!(expect, ["a=s", "c=new", "x=3"]);
        let batch = tx.into_batch();
        let puts_of_x = batch
            .ops()
            .iter()
            .filter(|op| matches!(op, crate::store::Op::Put { key, .. } if key == b"x"))
            .count();
        assert_eq!(puts_of_x, 1);
        // Two range deletions, puts of c and x, the delete of d; nothing for bb.
        assert_eq!(batch.len(), 5);
        s.write(batch).unwrap();
        assert_eq!(scan_keys(&Tx::new(&s), false), expect);
    }

    #[test]
    fn edit_changes_only_values_written_here() {
        let mut s = store_with(&["a"]);
        let mut tx = Tx::new(&s);
        assert!(
            !tx.edit(Space::Keys, b"a", |v| v.push(b'x')),
            "stored, not written here"
        );
        tx.put(Space::Keys, b"b".to_vec(), b"1".to_vec());
        tx.put(Space::Keys, b"c".to_vec(), b"1".to_vec());
        assert_eq!(
            tx.last_written(Space::Keys, b"a", b"c"),
            Some((&b"b"[..], &b"1"[..]))
        );
        assert!(tx.edit(Space::Keys, b"b", |v| v.extend_from_slice(b"23")));
        assert_eq!(tx.get(Space::Keys, b"b").unwrap(), Some(b"123".to_vec()));
        tx.delete_range(Space::Keys, b"b".to_vec(), b"c".to_vec());
        assert_eq!(tx.last_written(Space::Keys, b"a", b"c"), None);
        assert!(
            !tx.edit(Space::Keys, b"b", |v| v.push(b'4')),
            "deleted by a range"
        );
        tx.put(Space::Keys, b"b".to_vec(), b"5".to_vec());
        assert!(tx.edit(Space::Keys, b"b", |v| v.push(b'6')));
        s.write(tx.into_batch()).unwrap();
        assert_eq!(s.get(Space::Keys, b"b").unwrap(), Some(b"56".to_vec()));
    }

    #[test]
    fn a_transaction_on_held_changes_reads_as_both_applied_in_order() {
        let mut s = store_with(&["a", "b", "c", "d"]);
        let mut first = Tx::new(&s);
        first.put(Space::Keys, b"e".to_vec(), b"1".to_vec());
        first.delete(Space::Keys, b"a".to_vec());
        first.put(Space::Keys, b"bb".to_vec(), b"1".to_vec());
        let first = first.into_changes();
        // The second round hides the earlier `bb` and the stored `b`, then writes `b` again.
        let second = |tx: &mut Tx<'_, MemStore>| {
            tx.delete_range(Space::Keys, b"b".to_vec(), b"c".to_vec());
            tx.put(Space::Keys, b"b".to_vec(), b"2".to_vec());
            tx.put(Space::Keys, b"e".to_vec(), b"2".to_vec());
            tx.put(Space::Keys, b"a".to_vec(), b"2".to_vec());
        };
        let mut held = first.clone();
        second(&mut Tx::on_held(&s, &mut held));
        let read = |c: &Changes, s: &MemStore| -> Vec<KeyValue> {
            c.scan(s, Space::Keys, b"", None, false)
                .map(Result::unwrap)
                .collect()
        };
        let merged = read(&held, &s);
        s.write(first.into_batch()).unwrap();
        let mut tx = Tx::new(&s);
        second(&mut tx);
        let batch = tx.into_batch();
        s.write(batch).unwrap();
        assert_eq!(merged, read(&Changes::new(), &s));
        // The held changes written as one batch leave the same store.
        let mut fresh = store_with(&["a", "b", "c", "d"]);
        fresh.write(held.into_batch()).unwrap();
        assert_eq!(read(&Changes::new(), &fresh), merged);
        let kv = |k: &str, v: &str| (k.as_bytes().to_vec(), v.as_bytes().to_vec());
        assert_eq!(
            merged,
            [
                kv("a", "2"),
                kv("b", "2"),
                kv("c", "s"),
                kv("d", "s"),
                kv("e", "2")
            ]
        );
    }

    #[test]
    fn batch_replays_to_the_same_state() {
        let mut s = store_with(&["a", "b", "c"]);
        let mut tx = Tx::new(&s);
        tx.delete_range(Space::Keys, b"a".to_vec(), b"c".to_vec());
        tx.put(Space::Keys, b"a".to_vec(), b"new".to_vec());
        let expect = scan_keys(&tx, false);
        let batch = tx.into_batch();
        s.write(batch).unwrap();
        let tx = Tx::new(&s);
        assert_eq!(scan_keys(&tx, false), expect);
    }

    /// A typed value for the tests: its bytes are its decimal digits.
    #[test]
    fn deleted_keys_come_once_and_writes_are_not_listed() {
        let store = MemStore::new();
        let mut tx = Tx::new(&store);
        tx.begin_entry(7);
        assert_eq!(tx.stamp(), 7);
        tx.put(Space::Keys, b"b".to_vec(), b"1".to_vec());
        tx.delete(Space::Keys, b"b".to_vec());
        tx.delete(Space::Keys, b"a".to_vec());
        tx.delete(Space::Meta, b"m".to_vec());
        tx.delete(Space::Keys, b"b".to_vec());
        tx.put(Space::Keys, b"c".to_vec(), b"1".to_vec());
        let deleted = tx.take_deleted();
        let mut keys = deleted.keys().collect::<Vec<_>>();
        keys.sort();
        assert_eq!(keys, [&b"a"[..], &b"b"[..]]);
        assert!(!deleted.all);
        tx.give_back_deleted(deleted);
        assert_eq!(tx.take_deleted().keys().count(), 0, "taken");
        // A list given back is reused empty; a new entry starts a new list.
        tx.delete(Space::Keys, b"d".to_vec());
        tx.begin_entry(8);
        tx.delete(Space::Keys, b"e".to_vec());
        let deleted = tx.take_deleted();
        assert_eq!(deleted.keys().collect::<Vec<_>>(), [&b"e"[..]]);
        tx.delete_range(Space::Keys, b"a".to_vec(), b"z".to_vec());
        assert!(tx.take_deleted().all);
    }

    proptest::proptest! {
        /// However the deletions interleave, each key comes once.
        #[test]
        fn deleted_keys_are_each_key_once(
            keys in proptest::collection::vec("[a-d]{1,3}", 0..200),
        ) {
            let mut deleted = Deleted::default();
            for key in &keys {
                deleted.note(key.as_bytes());
            }
            deleted.order();
            let mut got: Vec<Vec<u8>> = deleted.keys().map(<[u8]>::to_vec).collect();
            got.sort();
            let want: BTreeSet<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
            proptest::prop_assert_eq!(got, want.into_iter().collect::<Vec<_>>());
        }
    }

    #[derive(Clone, Debug, PartialEq)]
    struct Num(u64);

    impl Typed for Num {
        fn encode(&self) -> Vec<u8> {
            self.0.to_string().into_bytes()
        }

        fn len_hint(&self) -> usize {
            20
        }

        fn clone_box(&self) -> Box<dyn Typed> {
            Box::new(self.clone())
        }
    }

    #[test]
    fn a_typed_value_reads_and_writes_as_its_bytes() {
        let s = store_with(&["a", "b"]);
        let mut held = Changes::new();
        let mut tx = Tx::on_held(&s, &mut held);
        tx.put_typed(Space::Keys, b"a", Num(7));
        assert_eq!(tx.typed::<Num>(Space::Keys, b"a"), Some(&Num(7)));
        assert_eq!(
            tx.get(Space::Keys, b"a").unwrap().as_deref(),
            Some(&b"7"[..])
        );
        assert_eq!(scan_keys(&tx, false), ["a=7", "b=s"]);
        // Rewritten in place: the bytes read before are not served again.
        tx.put_typed(Space::Keys, b"a", Num(42));
        assert_eq!(
            tx.get(Space::Keys, b"a").unwrap().as_deref(),
            Some(&b"42"[..])
        );
        assert_eq!(scan_keys(&tx, true), ["b=s", "a=42"]);
        // A put of bytes, or a deletion after it, hides the typed value.
        tx.put(Space::Keys, b"a".to_vec(), b"x".to_vec());
        assert_eq!(tx.typed::<Num>(Space::Keys, b"a"), None);
        tx.put_typed(Space::Keys, b"a", Num(1));
        tx.delete_range(Space::Keys, b"a".to_vec(), b"b".to_vec());
        assert_eq!(tx.typed::<Num>(Space::Keys, b"a"), None);
        assert_eq!(tx.get(Space::Keys, b"a").unwrap(), None);
        // Written again after the range deletion, it is visible and typed again.
        tx.put_typed(Space::Keys, b"a", Num(5));
        assert_eq!(tx.typed::<Num>(Space::Keys, b"a"), Some(&Num(5)));
        // Another type under the key is not this one.
        #[derive(Clone, Debug)]
        struct Other;
        impl Typed for Other {
            fn encode(&self) -> Vec<u8> {
                b"other".to_vec()
            }
            fn len_hint(&self) -> usize {
                5
            }
            fn clone_box(&self) -> Box<dyn Typed> {
                Box::new(Self)
            }
        }
        tx.put_typed(Space::Keys, b"b", Other);
        assert_eq!(tx.typed::<Num>(Space::Keys, b"b"), None);
        tx.put_typed(Space::Keys, b"b", Num(9));
        assert_eq!(tx.typed::<Num>(Space::Keys, b"b"), Some(&Num(9)));
        // An edit that declines sees the bytes and leaves the value typed (an INCR meeting a
        // series record); one that changes them makes it those bytes, no longer typed.
        assert!(!tx.edit_if(Space::Keys, b"b", |v| {
            assert_eq!(v, b"9");
            false
        }));
        assert_eq!(tx.typed::<Num>(Space::Keys, b"b"), Some(&Num(9)));
        assert!(tx.edit(Space::Keys, b"b", |v| v.push(b'9')));
        assert_eq!(tx.typed::<Num>(Space::Keys, b"b"), None);
        assert_eq!(
            tx.get(Space::Keys, b"b").unwrap().as_deref(),
            Some(&b"99"[..])
        );
        drop(tx);
        // The batch holds the bytes; the memory estimate counts each key's value once (and
        // the range deletion's bounds).
        assert_eq!(held.bytes(), (1 + 20) + (1 + 2) + 2);
        let mut s = s;
        s.write(held.into_batch()).unwrap();
        let tx = Tx::new(&s);
        assert_eq!(scan_keys(&tx, false), ["a=5", "b=99"]);
    }

    #[test]
    fn puts_by_reference_and_edits_of_the_last_written_key_change_in_place() {
        let s = store_with(&["a"]);
        let mut held = Changes::new();
        let mut tx = Tx::on_held(&s, &mut held);
        tx.put_ref(Space::Meta, b"v/a", b"1");
        tx.put_ref(Space::Meta, b"v/a", b"22");
        assert_eq!(
            tx.get(Space::Meta, b"v/a").unwrap().as_deref(),
            Some(&b"22"[..])
        );
        tx.delete_range(Space::Meta, b"v/".to_vec(), b"v0".to_vec());
        assert_eq!(tx.get(Space::Meta, b"v/a").unwrap(), None);
        tx.put_ref(Space::Meta, b"v/a", b"3");
        assert_eq!(
            tx.get(Space::Meta, b"v/a").unwrap().as_deref(),
            Some(&b"3"[..])
        );
        // The last written key in a range, edited in place; none when the range holds no
        // written value, or its newest is deleted by a later range deletion.
        tx.put(Space::Chunks, b"r1".to_vec(), b"x".to_vec());
        tx.put(Space::Chunks, b"r2".to_vec(), b"y".to_vec());
        let append = |v: &mut Vec<u8>| {
            v.push(b'+');
            true
        };
        assert!(tx.edit_last_written(Space::Chunks, b"r", b"s", append));
        assert!(!tx.edit_last_written(Space::Chunks, b"r", b"s", |_| false));
        assert!(!tx.edit_last_written(Space::Chunks, b"s", b"t", append));
        assert!(!tx.edit_last_written(Space::Chunks, b"s", b"r", append));
        assert_eq!(
            tx.get(Space::Chunks, b"r2").unwrap().as_deref(),
            Some(&b"y+"[..])
        );
        assert_eq!(
            tx.get(Space::Chunks, b"r1").unwrap().as_deref(),
            Some(&b"x"[..])
        );
        tx.delete_range(Space::Chunks, b"r2".to_vec(), b"r3".to_vec());
        assert!(!tx.edit_last_written(Space::Chunks, b"r", b"s", append));
        drop(tx);
        // Each key's value counted once, at its final length (plus both ranges' bounds).
        let expected = (3 + 1) + (2 + 1) + (2 + 2) + (2 + 2) + (2 + 2);
        assert_eq!(held.bytes(), expected);
        let mut s = s;
        s.write(held.into_batch()).unwrap();
        assert_eq!(
            s.get(Space::Meta, b"v/a").unwrap().as_deref(),
            Some(&b"3"[..])
        );
        assert_eq!(s.get(Space::Chunks, b"r2").unwrap(), None);
        assert_eq!(
            s.get(Space::Chunks, b"r1").unwrap().as_deref(),
            Some(&b"x"[..])
        );
    }

    #[test]
    fn space_index_is_its_place_in_all() {
        // `Changes::into_batch` pairs the held spaces with `Space::ALL` by position.
        for (i, space) in Space::ALL.into_iter().enumerate() {
            assert_eq!(space.index(), i, "{space:?}");
        }
    }

    /// One step of [`held_changes_match_a_model`].
    #[derive(Clone, Debug)]
    enum Op {
        Put(bool, u8, u8),
        PutRef(bool, u8, u8),
        PutTyped(bool, u8, u8),
        Delete(bool, u8),
        DeleteRange(bool, u8, u8),
        /// Appends a byte to a value held here.
        Edit(bool, u8, u8),
        /// Appends a byte to the greatest key held in a range, when it is a value.
        EditLast(bool, u8, u8, u8),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let k = 0u8..12;
        prop_oneof![
            (any::<bool>(), k.clone(), any::<u8>()).prop_map(|(s, k, v)| Op::Put(s, k, v)),
            (any::<bool>(), k.clone(), any::<u8>()).prop_map(|(s, k, v)| Op::PutRef(s, k, v)),
            (any::<bool>(), k.clone(), any::<u8>()).prop_map(|(s, k, v)| Op::PutTyped(s, k, v)),
            (any::<bool>(), k.clone()).prop_map(|(s, k)| Op::Delete(s, k)),
            (any::<bool>(), k.clone(), k.clone()).prop_map(|(s, a, b)| Op::DeleteRange(s, a, b)),
            (any::<bool>(), k.clone(), any::<u8>()).prop_map(|(s, k, v)| Op::Edit(s, k, v)),
            (any::<bool>(), k.clone(), k, any::<u8>())
                .prop_map(|(s, a, b, v)| Op::EditLast(s, a, b, v)),
        ]
    }

    proptest::proptest! {
        /// The held changes, whatever their hash seed, read and write as a plain ordered model
        /// of the same steps: every key's value read through them, ascending and descending
        /// scans, the last key written in a range, and the store after their batch.
        #[test]
        fn held_changes_match_a_model(
            seed in proptest::prelude::any::<u64>(),
            ops in proptest::collection::vec(op(), 0..60),
        ) {
            let space = |chunks: bool| if chunks { Space::Chunks } else { Space::Meta };
            let key = |k: u8| vec![b'k', k];
            let mut store = MemStore::new();
            let mut base = WriteBatch::new();
            for k in (0..12).step_by(3) {
                base.put(Space::Meta, key(k), vec![k]);
                base.put(Space::Chunks, key(k + 1), vec![k]);
            }
            store.write(base).unwrap();
            // The model: the state, and per key whether these changes hold a value of it
            // (a put or an edit since its last deletion) or hold it at all (written or
            // deleted, for the last key in a range).
            let mut state: BTreeMap<(Space, Vec<u8>), Vec<u8>> = Space::ALL
                .into_iter()
                .flat_map(|sp| store.scan(sp, b"", None, false).map(move |kv| {
                    let (k, v) = kv.unwrap();
                    ((sp, k), v)
                }))
                .collect();
            let mut valued: BTreeSet<(Space, Vec<u8>)> = BTreeSet::new();
            let mut written: BTreeSet<(Space, Vec<u8>)> = BTreeSet::new();
            let mut held = Changes::with_seed(seed);
            for op in ops {
                match op {
                    Op::Put(c, k, v) | Op::PutRef(c, k, v) | Op::PutTyped(c, k, v) => {
                        let (sp, key) = (space(c), key(k));
                        match op {
                            Op::Put(..) => held.put(sp, key.clone(), vec![v]),
                            Op::PutRef(..) => held.put_ref(sp, &key, &[v]),
                            _ => held.put_typed(sp, &key, Num(u64::from(v))),
                        }
                        let bytes = match op {
                            Op::PutTyped(..) => v.to_string().into_bytes(),
                            _ => vec![v],
                        };
                        state.insert((sp, key.clone()), bytes);
                        valued.insert((sp, key.clone()));
                        written.insert((sp, key));
                    }
                    Op::Delete(c, k) => {
                        let (sp, key) = (space(c), key(k));
                        held.delete(sp, key.clone());
                        state.remove(&(sp, key.clone()));
                        valued.remove(&(sp, key.clone()));
                        written.insert((sp, key));
                    }
                    Op::DeleteRange(c, a, b) => {
                        let (sp, a, b) = (space(c), key(a), key(b));
                        held.delete_range(sp, a.clone(), b.clone());
                        let gone = |(s, k): &(Space, Vec<u8>)| *s == sp && a <= *k && *k < b;
                        state.retain(|e, _| !gone(e));
                        valued.retain(|e| !gone(e));
                    }
                    Op::Edit(c, k, v) => {
                        let (sp, key) = (space(c), key(k));
                        let edited = held.edit_if(sp, &key, |b| {
                            b.push(v);
                            true
                        });
                        let e = (sp, key);
                        proptest::prop_assert_eq!(edited, valued.contains(&e));
                        if edited {
                            state.get_mut(&e).unwrap().push(v);
                        }
                    }
                    Op::EditLast(c, a, b, v) => {
                        let (sp, a, b) = (space(c), key(a), key(b));
                        let last = (a < b)
                            .then(|| written.range((sp, a.clone())..(sp, b.clone())).next_back())
                            .flatten()
                            .cloned();
                        let expect = last.as_ref().filter(|e| valued.contains(*e));
                        let want = expect.map(|e| (e.1.clone(), state[e].clone()));
                        let got = held.last_written(sp, &a, &b).map(|(k, v)| (k.to_vec(), v.to_vec()));
                        proptest::prop_assert_eq!(&got, &want);
                        let edited = held.edit_last_written(sp, &a, &b, |buf| {
                            buf.push(v);
                            true
                        });
                        proptest::prop_assert_eq!(edited, expect.is_some());
                        if let Some(e) = expect {
                            state.get_mut(e).unwrap().push(v);
                        }
                    }
                }
                for sp in [Space::Meta, Space::Chunks] {
                    let want: Vec<(Vec<u8>, Vec<u8>)> = state
                        .iter()
                        .filter(|((s, _), _)| *s == sp)
                        .map(|((_, k), v)| (k.clone(), v.clone()))
                        .collect();
                    let up: Vec<_> = held.scan(&store, sp, b"", None, false).map(Result::unwrap).collect();
                    let mut down: Vec<_> = held.scan(&store, sp, b"", None, true).map(Result::unwrap).collect();
                    down.reverse();
                    proptest::prop_assert_eq!(&up, &want);
                    proptest::prop_assert_eq!(&down, &want);
                    for k in 0..12 {
                        let got = held.get(&store, sp, &key(k)).unwrap();
                        proptest::prop_assert_eq!(got.as_ref(), state.get(&(sp, key(k))));
                    }
                }
            }
            store.write(held.into_batch()).unwrap();
            for sp in [Space::Meta, Space::Chunks] {
                let after: Vec<_> = store.scan(sp, b"", None, false).map(Result::unwrap).collect();
                let want: Vec<_> = state
                    .iter()
                    .filter(|((s, _), _)| *s == sp)
                    .map(|((_, k), v)| (k.clone(), v.clone()))
                    .collect();
                proptest::prop_assert_eq!(after, want);
            }
        }
    }
}
