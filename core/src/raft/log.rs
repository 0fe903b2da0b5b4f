//! The log: terms and entries read from the store or the in-memory cache of the newest
//! entries, and entries written (truncating a conflicting suffix first).

use super::node::{R, Raft, Role};
use super::storage;
use super::{Entry, EntryKind, LogIndex, Term};
use crate::store::{Space, Store, StoreError, StoreRead, WriteBatch};

/// Bytes of recent entries kept in memory ([`Raft`]'s `cache`).
pub(super) const ENTRY_CACHE_BYTES: u64 = 32 << 20;

impl Raft {
    pub(super) fn term_at(&self, store: &impl StoreRead, index: LogIndex) -> R<Option<Term>> {
        if index == self.base.index {
            return Ok(Some(self.base.term));
        }
        if index < self.base.index || index > self.last_index {
            return Ok(None);
        }
        if index == self.last_index {
            return Ok(Some(self.last_term));
        }
        if let Some(e) = self.cached(index) {
            return Ok(Some(e.term));
        }
        let entry = storage::read_entry(store, index)?.ok_or_else(|| StoreError::Corrupt {
            space: Space::Log,
            detail: format!("missing entry {}", index.0),
        })?;
        Ok(Some(entry.term))
    }

    pub(super) fn entry(&self, store: &impl StoreRead, index: LogIndex) -> R<Entry> {
        if let Some(e) = self.cached(index) {
            return Ok(e.clone());
        }
        storage::read_entry(store, index)?.ok_or_else(|| StoreError::Corrupt {
            space: Space::Log,
            detail: format!("missing entry {}", index.0),
        })
    }

    fn cached(&self, index: LogIndex) -> Option<&Entry> {
        let first = self.cache.front()?.index;
        let e = self
            .cache
            .get(usize::try_from(index.0.checked_sub(first.0)?).ok()?)?;
        debug_assert_eq!(e.index, index, "the cache is contiguous");
        Some(e)
    }

    /// Keeps `entries` (just written after any truncation) at the end of the cache.
    fn cache_appended(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        // Drop what the new entries overwrite, or everything if they do not follow on.
        while self.cache.back().is_some_and(|e| e.index >= first.index) {
            let e = self.cache.pop_back().expect("checked");
            self.cache_bytes -= e.size_hint();
        }
        if self
            .cache
            .back()
            .is_some_and(|e| e.index.next() != first.index)
        {
            self.clear_cache();
        }
        for e in entries {
            self.cache_bytes += e.size_hint();
            self.cache.push_back(e.clone());
        }
        while self.cache_bytes > ENTRY_CACHE_BYTES {
            let Some(e) = self.cache.pop_front() else {
                break;
            };
            self.cache_bytes -= e.size_hint();
        }
    }

    /// Forgets cached entries at or before `index` (compacted away).
    pub(super) fn cache_compacted(&mut self, index: LogIndex) {
        while self.cache.front().is_some_and(|e| e.index <= index) {
            let e = self.cache.pop_front().expect("checked");
            self.cache_bytes -= e.size_hint();
        }
    }

    pub(super) fn clear_cache(&mut self) {
        self.cache.clear();
        self.cache_bytes = 0;
    }

    /// Writes `entries` (contiguous, starting at or below last+1), truncating a conflicting
    /// suffix first.
    pub(super) fn write_entries(&mut self, store: &mut impl Store, entries: &[Entry]) -> R {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        assert!(first.index > self.commit, "overwriting committed entries");
        assert!(first.index <= self.last_index.next(), "gap in the log");
        let mut batch = WriteBatch::new();
        if first.index <= self.last_index {
            batch.delete_range(
                Space::Log,
                storage::log_key(first.index),
                storage::log_key(self.last_index.next()),
            );
            self.configs.split_off(&first.index);
        }
        for e in entries {
            self.bytes_since_compaction += e.size_hint();
            storage::put_entry(&mut batch, e);
            if let EntryKind::Config(change) = &e.kind {
                // A leader only appends changes that apply; a follower trusts its leader's log.
                if let Ok(m) = self.membership().apply(change) {
                    self.configs.insert(e.index, m);
                }
            }
        }
        store.write(batch)?;
        self.wrote();
        self.cache_appended(entries);
        let last = entries.last().map_or(first, |e| e);
        self.last_index = last.index;
        self.last_term = last.term;
        self.self_match = self.self_match.min(self.last_index);
        if self.role == Role::Leader {
            self.sync_progress_set();
        }
        Ok(())
    }
}
