//! Key deadlines (`EXPIRE` and friends): where they are stored and how reads hide expired keys.
//!
//! A deadline is a Unix time in milliseconds, resolved from the command against the time of
//! the log entry that sets it, so every replica stores the same one. Records in
//! [`Space::Meta`] (replicated state: written in the same atomic batch as the key, so they
//! survive restarts and travel in snapshots; the key's own record is unchanged):
//!
//! - `expire/<key>` -> the deadline, u64 big-endian;
//! - `expire-at/<deadline u64 big-endian><key>` -> empty: the same, ordered by deadline, so
//!   the leader finds the keys due without reading the others.
//!
//! A key is expired at time `t` when its deadline is `<= t`. Expired keys are deleted through
//! the log: the leader proposes [`crate::cmd::WriteCmd::ExpireDue`] for the keys due, and a
//! write that touches an expired key deletes it first, at its entry's time. Between the
//! deadline and that deletion, reads hide the key: [`Unexpired`] answers for a store as if
//! expired keys were gone, at the time the node reads (see `node` for which time that is).
//!
//! This module keeps the records; the commands that set and clear deadlines, and the count of
//! keys that have one, are the dispatch's (`state::Db`, in `state/deadlines.rs`).

use bytes::Bytes;

use super::Tx;
use crate::store::{KeyValue, ScanIter, Space, StoreError, StoreRead};

const OWN_PREFIX: &[u8] = b"expire/";
/// The first key after every `expire/` key (`'/' + 1 == '0'`).
const OWN_END: &[u8] = b"expire0";
const AT_PREFIX: &[u8] = b"expire-at/";
const AT_END: &[u8] = b"expire-at0";

fn own_key(key: &[u8]) -> Vec<u8> {
    [OWN_PREFIX, key].concat()
}

fn at_key(at: u64, key: &[u8]) -> Vec<u8> {
    [AT_PREFIX, &at.to_be_bytes(), key].concat()
}

fn corrupt(detail: &str) -> StoreError {
    StoreError::Corrupt {
        space: Space::Meta,
        detail: detail.into(),
    }
}

/// `key`'s deadline, if it has one.
pub fn deadline(r: &(impl StoreRead + ?Sized), key: &[u8]) -> Result<Option<u64>, StoreError> {
    let Some(raw) = r.get(Space::Meta, &own_key(key))? else {
        return Ok(None);
    };
    let bytes =
        <[u8; 8]>::try_from(raw.as_slice()).map_err(|_| corrupt("deadline is not 8 bytes"))?;
    Ok(Some(u64::from_be_bytes(bytes)))
}

/// Gives `key` the deadline `at` (replacing `old`, its current one).
pub(crate) fn set<S: StoreRead>(tx: &mut Tx<'_, S>, key: &[u8], at: u64, old: Option<u64>) {
    if let Some(old) = old {
        tx.delete(Space::Meta, at_key(old, key));
    }
    tx.put(Space::Meta, own_key(key), at.to_be_bytes().to_vec());
    tx.put(Space::Meta, at_key(at, key), Vec::new());
}

/// Removes `key`'s deadline `old`.
pub(crate) fn clear<S: StoreRead>(tx: &mut Tx<'_, S>, key: &[u8], old: u64) {
    tx.delete(Space::Meta, own_key(key));
    tx.delete(Space::Meta, at_key(old, key));
}

/// Removes every deadline (FLUSHALL).
pub(crate) fn clear_all<S: StoreRead>(tx: &mut Tx<'_, S>) {
    tx.delete_range(Space::Meta, OWN_PREFIX.to_vec(), OWN_END.to_vec());
    tx.delete_range(Space::Meta, AT_PREFIX.to_vec(), AT_END.to_vec());
}

/// How many keys have a deadline.
pub(crate) fn count(r: &impl StoreRead) -> Result<u64, StoreError> {
    let mut n = 0;
    for kv in r.scan(Space::Meta, OWN_PREFIX, Some(OWN_END), false) {
        kv?;
        n += 1;
    }
    Ok(n)
}

/// Up to `max` keys whose deadline is `<= now`, earliest first, with their deadlines.
pub fn due(r: &impl StoreRead, now: u64, max: usize) -> Result<Vec<(Bytes, u64)>, StoreError> {
    let end = at_key(now.saturating_add(1), b"");
    let mut out = Vec::new();
    for kv in r.scan(Space::Meta, AT_PREFIX, Some(&end), false).take(max) {
        let (k, _) = kv?;
        let rest = &k[AT_PREFIX.len()..];
        let (at, key) = rest
            .split_at_checked(8)
            .ok_or_else(|| corrupt("short expiry index key"))?;
        let at = u64::from_be_bytes(at.try_into().map_err(|_| corrupt("expiry index key"))?);
        out.push((Bytes::copy_from_slice(key), at));
    }
    Ok(out)
}

/// A view of a store in which the keys expired at `now` do not exist: [`Space::Keys`] reads
/// and scans skip them; the other spaces read through.
pub struct Unexpired<'a, S: ?Sized> {
    pub inner: &'a S,
    pub now: u64,
}

impl<S: StoreRead + ?Sized> Unexpired<'_, S> {
    fn expired(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(deadline(self.inner, key)?.is_some_and(|at| at <= self.now))
    }
}

impl<S: StoreRead + ?Sized> StoreRead for Unexpired<'_, S> {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if space == Space::Keys && self.expired(key)? {
            return Ok(None);
        }
        self.inner.get(space, key)
    }

    fn scan(&self, space: Space, start: &[u8], end: Option<&[u8]>, reverse: bool) -> ScanIter<'_> {
        let inner = self.inner.scan(space, start, end, reverse);
        if space != Space::Keys {
            return inner;
        }
        Box::new(
            inner.filter_map(move |kv: Result<KeyValue, StoreError>| match kv {
                Ok((k, v)) => match self.expired(&k) {
                    Ok(true) => None,
                    Ok(false) => Some(Ok((k, v))),
                    Err(e) => Some(Err(e)),
                },
                Err(e) => Some(Err(e)),
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemStore, Store};

    /// The on-disk layout: changing these bytes breaks every data directory with deadlines.
    #[test]
    fn record_layout_is_stable() {
        assert_eq!(own_key(b"k"), b"expire/k".to_vec());
        assert_eq!(
            at_key(0x0102_0304_0506_0708, b"k"),
            b"expire-at/\x01\x02\x03\x04\x05\x06\x07\x08k".to_vec()
        );
        let mut store = MemStore::new();
        let mut tx = Tx::new(&store);
        set(&mut tx, b"k", 1000, None);
        tx.put(Space::Keys, b"k".to_vec(), b"v".to_vec());
        tx.put(Space::Keys, b"j".to_vec(), b"v".to_vec());
        let batch = tx.into_batch();
        store.write(batch).unwrap();
        assert_eq!(
            store.get(Space::Meta, b"expire/k").unwrap(),
            Some(vec![0, 0, 0, 0, 0, 0, 0x03, 0xe8])
        );
        assert_eq!(deadline(&store, b"k").unwrap(), Some(1000));
        assert_eq!(count(&store).unwrap(), 1);
        assert_eq!(due(&store, 999, 10).unwrap(), vec![]);
        assert_eq!(
            due(&store, 1000, 10).unwrap(),
            vec![(Bytes::from_static(b"k"), 1000)]
        );
        let before = Unexpired {
            inner: &store,
            now: 999,
        };
        assert!(before.get(Space::Keys, b"k").unwrap().is_some());
        let after = Unexpired {
            inner: &store,
            now: 1000,
        };
        assert!(after.get(Space::Keys, b"k").unwrap().is_none());
        let keys: Vec<Vec<u8>> = after
            .scan(Space::Keys, b"", None, false)
            .map(|kv| kv.unwrap().0)
            .collect();
        assert_eq!(keys, vec![b"j".to_vec()]);
        let mut tx = Tx::new(&store);
        clear(&mut tx, b"k", 1000);
        let batch = tx.into_batch();
        store.write(batch).unwrap();
        assert_eq!(count(&store).unwrap(), 0);
        assert_eq!(due(&store, u64::MAX, 10).unwrap(), vec![]);
    }
}
