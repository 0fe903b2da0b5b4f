//! A write transaction over the store: reads see the transaction's own writes, and everything
//! it changed is handed back as one [`WriteBatch`], so a log entry applies atomically whatever
//! it holds (one `SET`, or a whole `BATCH_FLUSH`).
//!
//! The batch holds each key's final state only: a key written many times in one transaction
//! (a series record updated by every sample of an apply round) costs the store one put, not
//! one per write. Range deletions come first in the batch, then the surviving point changes.

use std::collections::{BTreeMap, BTreeSet};
use std::iter::Peekable;
use std::ops::Bound;

use crate::store::{KeyValue, ScanIter, Space, StoreError, StoreRead, WriteBatch};

/// A pending change to one key.
#[derive(Clone, Debug)]
struct Pending {
    /// `None`: deleted.
    value: Option<Vec<u8>>,
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

/// Reads through to `store`, buffers writes.
pub struct Tx<'a, S: StoreRead> {
    store: &'a S,
    /// The newest change to each key written in this transaction, per space (so lookups and
    /// ranges borrow the caller's key instead of allocating one).
    overlay: BTreeMap<Space, BTreeMap<Vec<u8>, Pending>>,
    /// Range deletions, oldest first.
    ranges: Vec<RangeDelete>,
    seq: u64,
    /// User keys ([`Space::Keys`]) written or deleted since the last [`Tx::take_touched`]:
    /// what a command modified, for WATCH's key versions.
    touched: Touched,
}

/// The user keys a stretch of a transaction modified.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Touched {
    pub keys: BTreeSet<Vec<u8>>,
    /// A range of user keys was deleted (FLUSHALL): treat every key as modified.
    pub all: bool,
}

impl<'a, S: StoreRead> Tx<'a, S> {
    pub fn new(store: &'a S) -> Self {
        Self {
            store,
            overlay: BTreeMap::new(),
            ranges: Vec::new(),
            seq: 0,
            touched: Touched::default(),
        }
    }

    /// The user keys modified since the last call (and forgets them).
    pub fn take_touched(&mut self) -> Touched {
        std::mem::take(&mut self.touched)
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
        for (space, key, p) in overlay
            .into_iter()
            .flat_map(|(space, keys)| keys.into_iter().map(move |(k, p)| (space, k, p)))
        {
            if newest_range(&ranges, space, &key).is_some_and(|r| r > p.seq) {
                continue;
            }
            match p.value {
                Some(v) => batch.put(space, key, v),
                None => batch.delete(space, key),
            }
        }
        batch
    }

    pub fn is_empty(&self) -> bool {
        self.overlay.values().all(BTreeMap::is_empty) && self.ranges.is_empty()
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The sequence number of the newest range deletion covering `key`, if any.
    fn deleted_at(&self, space: Space, key: &[u8]) -> Option<u64> {
        newest_range(&self.ranges, space, key)
    }

    pub fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let pending = self.overlay.get(&space).and_then(|m| m.get(key));
        let range_seq = self.deleted_at(space, key);
        match (pending, range_seq) {
            (Some(p), Some(r)) if r > p.seq => Ok(None),
            (Some(p), _) => Ok(p.value.clone()),
            (None, Some(_)) => Ok(None),
            (None, None) => self.store.get(space, key),
        }
    }

    /// Records a change to a user key for [`Tx::take_touched`].
    fn touch(&mut self, space: Space, key: &[u8]) {
        // A series record is rewritten by every sample: no copy of a key already recorded.
        if space == Space::Keys && !self.touched.keys.contains(key) {
            self.touched.keys.insert(key.to_vec());
        }
    }

    pub fn put(&mut self, space: Space, key: Vec<u8>, value: Vec<u8>) {
        self.touch(space, &key);
        let seq = self.next_seq();
        self.overlay.entry(space).or_default().insert(
            key,
            Pending {
                value: Some(value),
                seq,
            },
        );
    }

    pub fn delete(&mut self, space: Space, key: Vec<u8>) {
        self.touch(space, &key);
        let seq = self.next_seq();
        self.overlay
            .entry(space)
            .or_default()
            .insert(key, Pending { value: None, seq });
    }

    /// The greatest key in `[start, end)` this transaction wrote and still holds (not deleted
    /// since), with its value: a record the transaction may extend in place.
    pub fn last_written(&self, space: Space, start: &[u8], end: &[u8]) -> Option<(&[u8], &[u8])> {
        if start >= end {
            return None;
        }
        let (key, p) = self
            .overlay
            .get(&space)?
            .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
            .next_back()?;
        let value = p.value.as_deref()?;
        if self.deleted_at(space, key).is_some_and(|r| r > p.seq) {
            return None;
        }
        Some((key, value))
    }

    /// Changes in place the value of a key this transaction wrote and still holds (appends a
    /// sample to a record, say): the same as a `put` of the changed value, without copying it.
    /// Returns `false`, calling nothing, when the transaction holds no value for the key.
    pub fn edit(&mut self, space: Space, key: &[u8], change: impl FnOnce(&mut Vec<u8>)) -> bool {
        let range_seq = self.deleted_at(space, key);
        let Some(p) = self.overlay.get_mut(&space).and_then(|m| m.get_mut(key)) else {
            return false;
        };
        if range_seq.is_some_and(|r| r > p.seq) {
            return false;
        }
        let Some(v) = p.value.as_mut() else {
            return false;
        };
        change(v);
        self.seq += 1;
        p.seq = self.seq;
        self.touch(space, key);
        true
    }

    /// Deletes every key `k` with `start <= k < end`.
    pub fn delete_range(&mut self, space: Space, start: Vec<u8>, end: Vec<u8>) {
        if start >= end {
            return;
        }
        if space == Space::Keys {
            self.touched.all = true;
        }
        let seq = self.next_seq();
        self.ranges.push(RangeDelete {
            space,
            start,
            end,
            seq,
        });
    }

    /// Deletes every key of `space`.
    pub fn clear(&mut self, space: Space) -> Result<(), StoreError> {
        let last_stored = self
            .store
            .scan(space, b"", None, true)
            .next()
            .transpose()?
            .map(|kv| kv.0);
        let last_pending = self
            .overlay
            .get(&space)
            .and_then(|m| m.keys().next_back())
            .cloned();
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
        let stored = self.store.scan(space, start, end, reverse);
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        let mut pending: Vec<(Vec<u8>, Option<Vec<u8>>)> = self
            .overlay
            .get(&space)
            .into_iter()
            .flat_map(|m| m.range::<[u8], _>((Bound::Included(start), upper)))
            .map(|(k, p)| {
                let hidden = self.deleted_at(space, k).is_some_and(|r| r > p.seq);
                (k.clone(), if hidden { None } else { p.value.clone() })
            })
            .collect();
        if reverse {
            pending.reverse();
        }
        Box::new(Merge {
            stored: stored.peekable(),
            pending: pending.into_iter().peekable(),
            reverse,
            tx: self,
            space,
        })
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

/// Merges a store scan with a transaction's pending changes; pending wins on equal keys.
struct Merge<'t, 'a, S: StoreRead, P: Iterator<Item = (Vec<u8>, Option<Vec<u8>>)>> {
    stored: Peekable<ScanIter<'t>>,
    pending: Peekable<P>,
    reverse: bool,
    tx: &'t Tx<'a, S>,
    space: Space,
}

impl<S: StoreRead, P: Iterator<Item = (Vec<u8>, Option<Vec<u8>>)>> Iterator
    for Merge<'_, '_, S, P>
{
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
                if self.tx.deleted_at(self.space, &k).is_none() {
                    return Some(Ok((k, v)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
}
