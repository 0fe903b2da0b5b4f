//! The user keys' records as the store holds them, for reads that miss the changes held in
//! memory ([`crate::writeback::WriteBack`]).
//!
//! A `GET` of a key not written since the last checkpoint was a RocksDB point read, about 1,900
//! of its 6,300 instructions however often the key was read: RocksDB's fixed cost per `Get`,
//! not I/O. This cache answers it with a hash lookup, missing keys included (`None`).
//!
//! It mirrors the store exactly, or holds nothing: the store's state only changes through
//! `WriteBack`, which updates the keys a checkpoint writes that are cached and empties the
//! cache on any other change (a snapshot install, a range deletion). So a read through it is
//! the read of the store, and nothing a client sees depends on whether it was cached.
//!
//! Bounded: at most [`READ_CACHE_BYTES`] of keys and values; when an entry would pass that,
//! the cache empties and fills again (no eviction order to keep, nothing random). Values over
//! [`VALUE_BYTES_MAX`] are not cached.

use std::cell::RefCell;

use crate::store::{Op, ScanIter, Space, StoreError, StoreRead};

/// Most bytes of keys and values (with a fixed charge per entry) the cache holds.
pub const READ_CACHE_BYTES: usize = 16 << 20;

/// Larger values are read from the store each time: a few big strings would push out
/// thousands of small records.
pub const VALUE_BYTES_MAX: usize = 4096;

/// What an entry costs beyond its key and value: the map's slot and two allocations.
const ENTRY_OVERHEAD: usize = 64;

/// `clippy.toml` keeps `HashMap` out of the core for its per-process iteration order; this
/// one is seeded by the node and iterated only by [`ReadCache::check`], whose assertions do
/// not depend on the order (it empties whole, so no eviction depends on it either).
#[allow(clippy::disallowed_types)]
type Map = std::collections::HashMap<Box<[u8]>, Option<Box<[u8]>>, foldhash::fast::FixedState>;

pub struct ReadCache {
    map: RefCell<Map>,
    bytes: std::cell::Cell<usize>,
    budget: usize,
}

impl ReadCache {
    /// An empty cache whose keys are hashed with `seed` (drawn by the node, so that clients
    /// cannot pick keys that collide).
    pub fn new(seed: u64, budget: usize) -> Self {
        Self {
            map: RefCell::new(Map::with_hasher(foldhash::fast::FixedState::with_seed(
                seed,
            ))),
            bytes: std::cell::Cell::new(0),
            budget,
        }
    }

    /// Bytes held, as counted against the budget.
    pub fn bytes(&self) -> usize {
        self.bytes.get()
    }

    pub fn len(&self) -> usize {
        self.map.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        self.map.get_mut().clear();
        self.bytes.set(0);
    }

    /// `store`'s record of `key`, from the cache or read (and then cached).
    pub fn get(&self, store: &impl StoreRead, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.map.borrow().get(key) {
            return Ok(v.as_deref().map(<[u8]>::to_vec));
        }
        let value = store.get(Space::Keys, key)?;
        if value.as_ref().is_none_or(|v| v.len() <= VALUE_BYTES_MAX) {
            self.insert(key, value.as_deref());
        }
        Ok(value)
    }

    fn insert(&self, key: &[u8], value: Option<&[u8]>) {
        let cost = ENTRY_OVERHEAD + key.len() + value.map_or(0, <[u8]>::len);
        if cost > self.budget {
            return;
        }
        let mut map = self.map.borrow_mut();
        if self.bytes.get() + cost > self.budget {
            map.clear();
            self.bytes.set(0);
        }
        map.insert(key.into(), value.map(Into::into));
        self.bytes.set(self.bytes.get() + cost);
    }

    /// Asserts that every entry is what `store` holds (the simulators call this after every
    /// drain: their caches are small).
    pub fn check(&self, store: &impl StoreRead) {
        let mut bytes = 0;
        for (key, value) in self.map.borrow().iter() {
            let stored = store.get(Space::Keys, key).expect("the store reads");
            assert_eq!(
                stored.as_deref(),
                value.as_deref(),
                "the read cache's record of {key:?} is not the store's"
            );
            bytes += ENTRY_OVERHEAD + key.len() + value.as_ref().map_or(0, |v| v.len());
        }
        assert_eq!(bytes, self.bytes.get(), "the read cache counts its bytes");
    }

    /// Brings the cache in step with `ops`, which the store has just applied: a cached key
    /// written takes its new value (or leaves, when the value is too large), a deleted one
    /// becomes known to be missing, and a range deletion of user keys empties the cache.
    pub fn applied(&mut self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::Put {
                    space: Space::Keys,
                    key,
                    value,
                } => self.replace(key, Some(value)),
                Op::Delete {
                    space: Space::Keys,
                    key,
                } => self.replace(key, None),
                Op::DeleteRange {
                    space: Space::Keys, ..
                } => return self.clear(),
                Op::Put { .. } | Op::Delete { .. } | Op::DeleteRange { .. } => {}
            }
        }
    }

    /// Replaces `key`'s entry if it has one; keys not cached stay out (a checkpoint writes
    /// every key changed since the last, most of which nobody reads).
    fn replace(&mut self, key: &[u8], value: Option<&[u8]>) {
        let map = self.map.get_mut();
        let Some(old) = map.get_mut(key) else {
            return;
        };
        let old_len = old.as_ref().map_or(0, |v| v.len());
        match value {
            Some(v) if v.len() > VALUE_BYTES_MAX => {
                map.remove(key);
                self.bytes
                    .set(self.bytes.get() - ENTRY_OVERHEAD - key.len() - old_len);
            }
            _ => {
                *old = value.map(Into::into);
                let new_len = value.map_or(0, <[u8]>::len);
                self.bytes.set(self.bytes.get() - old_len + new_len);
            }
        }
    }
}

/// The store with the cache in front of its user keys: what the changes held fall back to.
pub struct Cached<'a, S> {
    pub store: &'a S,
    pub cache: &'a ReadCache,
}

impl<S: StoreRead> StoreRead for Cached<'_, S> {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match space {
            Space::Keys => self.cache.get(self.store, key),
            _ => self.store.get(space, key),
        }
    }

    fn scan(&self, space: Space, start: &[u8], end: Option<&[u8]>, reverse: bool) -> ScanIter<'_> {
        self.store.scan(space, start, end, reverse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemStore, Store, WriteBatch};

    fn put(store: &mut MemStore, key: &[u8], value: &[u8]) -> Vec<Op> {
        let mut batch = WriteBatch::default();
        batch.put(Space::Keys, key.to_vec(), value.to_vec());
        let ops = batch.ops().to_vec();
        store.write(batch).unwrap();
        ops
    }

    #[test]
    fn a_read_through_the_cache_is_a_read_of_the_store() {
        let mut store = MemStore::new();
        let mut cache = ReadCache::new(7, READ_CACHE_BYTES);
        put(&mut store, b"a", b"1");
        assert_eq!(cache.get(&store, b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(cache.get(&store, b"b").unwrap(), None);
        assert_eq!(cache.len(), 2, "hits and misses both cached");
        // Written and applied: both cached keys follow the store.
        let mut ops = put(&mut store, b"a", b"2");
        ops.extend(put(&mut store, b"b", b"3"));
        ops.extend(put(&mut store, b"c", b"4"));
        cache.applied(&ops);
        assert_eq!(cache.len(), 2, "a key nobody read stays out");
        for key in [&b"a"[..], b"b", b"c", b"d"] {
            assert_eq!(
                cache.get(&store, key).unwrap(),
                store.get(Space::Keys, key).unwrap()
            );
        }
        let mut batch = WriteBatch::default();
        batch.delete(Space::Keys, b"a".to_vec());
        let ops = batch.ops().to_vec();
        store.write(batch).unwrap();
        cache.applied(&ops);
        assert_eq!(cache.get(&store, b"a").unwrap(), None);
        let mut batch = WriteBatch::default();
        batch.delete_range(Space::Keys, b"a".to_vec(), b"z".to_vec());
        cache.applied(batch.ops());
        assert!(cache.is_empty(), "a range deletion empties it");
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn the_cache_stays_within_its_budget() {
        let mut store = MemStore::new();
        let budget = 10 * (ENTRY_OVERHEAD + 8);
        let cache = ReadCache::new(1, budget);
        for i in 0..100u32 {
            let key = format!("k{i:07}");
            put(&mut store, key.as_bytes(), b"");
            assert_eq!(cache.get(&store, key.as_bytes()).unwrap(), Some(Vec::new()));
            assert!(cache.bytes() <= budget, "{} > {budget}", cache.bytes());
            assert!(cache.len() <= 10);
        }
        // Too large to cache: read, not kept.
        let big = vec![b'x'; VALUE_BYTES_MAX + 1];
        put(&mut store, b"big", &big);
        let cache = ReadCache::new(1, READ_CACHE_BYTES);
        assert_eq!(cache.get(&store, b"big").unwrap(), Some(big.clone()));
        assert!(cache.is_empty());
    }

    #[test]
    fn a_cached_key_written_too_large_leaves_the_cache() {
        let mut store = MemStore::new();
        let mut cache = ReadCache::new(3, READ_CACHE_BYTES);
        put(&mut store, b"a", b"small");
        cache.get(&store, b"a").unwrap();
        let ops = put(&mut store, b"a", &vec![b'y'; VALUE_BYTES_MAX + 1]);
        cache.applied(&ops);
        assert!(cache.is_empty());
        assert_eq!(cache.bytes(), 0);
    }

    /// The check the simulators run fails on a cache the store moved under.
    #[test]
    #[should_panic(expected = "is not the store's")]
    fn a_stale_entry_fails_the_check() {
        let mut store = MemStore::new();
        let cache = ReadCache::new(5, READ_CACHE_BYTES);
        put(&mut store, b"a", b"1");
        cache.get(&store, b"a").unwrap();
        cache.check(&store);
        put(&mut store, b"a", b"2");
        cache.check(&store);
    }
}
