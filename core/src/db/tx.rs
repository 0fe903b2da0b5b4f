//! A write transaction over the store: reads see the transaction's own writes, and everything
//! it changed is handed back as one [`WriteBatch`], so a log entry applies atomically whatever
//! it holds (one `SET`, or a whole `BATCH_FLUSH`).

use std::collections::{BTreeMap, BTreeSet};
use std::iter::Peekable;

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

/// Reads through to `store`, buffers writes.
pub struct Tx<'a, S: StoreRead> {
    store: &'a S,
    overlay: BTreeMap<(Space, Vec<u8>), Pending>,
    ranges: Vec<RangeDelete>,
    batch: WriteBatch,
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
            batch: WriteBatch::new(),
            seq: 0,
            touched: Touched::default(),
        }
    }

    /// The user keys modified since the last call (and forgets them).
    pub fn take_touched(&mut self) -> Touched {
        std::mem::take(&mut self.touched)
    }

    /// The batch holding every change, in order.
    pub fn into_batch(self) -> WriteBatch {
        self.batch
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The sequence number of the newest range deletion covering `key`, if any.
    fn deleted_at(&self, space: Space, key: &[u8]) -> Option<u64> {
        self.ranges
            .iter()
            .filter(|r| r.space == space && r.start.as_slice() <= key && key < r.end.as_slice())
            .map(|r| r.seq)
            .max()
    }

    pub fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let pending = self.overlay.get(&(space, key.to_vec()));
        let range_seq = self.deleted_at(space, key);
        match (pending, range_seq) {
            (Some(p), Some(r)) if r > p.seq => Ok(None),
            (Some(p), _) => Ok(p.value.clone()),
            (None, Some(_)) => Ok(None),
            (None, None) => self.store.get(space, key),
        }
    }

    pub fn put(&mut self, space: Space, key: Vec<u8>, value: Vec<u8>) {
        if space == Space::Keys {
            self.touched.keys.insert(key.clone());
        }
        let seq = self.next_seq();
        self.batch.put(space, key.clone(), value.clone());
        self.overlay.insert(
            (space, key),
            Pending {
                value: Some(value),
                seq,
            },
        );
    }

    pub fn delete(&mut self, space: Space, key: Vec<u8>) {
        if space == Space::Keys {
            self.touched.keys.insert(key.clone());
        }
        let seq = self.next_seq();
        self.batch.delete(space, key.clone());
        self.overlay
            .insert((space, key), Pending { value: None, seq });
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
        self.batch.delete_range(space, start.clone(), end.clone());
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
            .range((space, Vec::new())..)
            .take_while(|((s, _), _)| *s == space)
            .map(|((_, k), _)| k)
            .last()
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
        let lower = (space, start.to_vec());
        let mut pending: Vec<(Vec<u8>, Option<Vec<u8>>)> = self
            .overlay
            .range(lower..)
            .take_while(|((s, k), _)| *s == space && end.is_none_or(|e| k.as_slice() < e))
            .map(|((_, k), p)| {
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
