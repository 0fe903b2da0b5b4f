//! Snapshot transfer and log compaction helpers.
//!
//! A snapshot is the state machine's spaces ([`Space::STATE`]) read from a point-in-time
//! [`Store::snapshot`] plus the applied index found in it. The leader streams it in chunks of
//! about `snapshot_chunk_bytes`, stop-and-wait. The follower stages chunks under a prefix in
//! `Space::Raft` and only when the last one arrives replaces its state spaces, log base, log and
//! applied index in ONE write batch: a crash mid-transfer leaves the old state intact (the
//! staging area is wiped on restart and the transfer starts again), so a node never serves half
//! a state. The price is that the final batch holds the whole state in memory.
//!
//! [`Store::snapshot`]: crate::store::Store::snapshot

use super::message::StateSpace;
use crate::store::{Space, StoreError, StoreRead, WriteBatch};

/// Prefix of staged snapshot records in `Space::Raft`: prefix, space tag byte, key.
const STAGING_PREFIX: &[u8] = b"snap/";
/// The first key after every staging key (`'/' + 1 == '0'`).
const STAGING_END: &[u8] = b"snap0";

const SPACES: [StateSpace; 4] = [
    StateSpace::Keys,
    StateSpace::Chunks,
    StateSpace::Labels,
    StateSpace::Meta,
];

/// Where a chunk starts: the space's position in [`SPACES`] and the last key already sent in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Cursor {
    space: usize,
    after: Option<Vec<u8>>,
}

/// One chunk read from `view` starting at `from`, at least one record unless the state is
/// exhausted; returns the records, the cursor after them, and whether the state is exhausted.
#[allow(clippy::type_complexity)]
pub(super) fn read_chunk(
    view: &dyn StoreRead,
    from: &Cursor,
    max_bytes: u64,
) -> Result<(Vec<(StateSpace, Vec<u8>, Vec<u8>)>, Cursor, bool), StoreError> {
    let mut out = Vec::new();
    let mut bytes = 0u64;
    let mut cur = from.clone();
    while cur.space < SPACES.len() {
        let space = SPACES[cur.space];
        let start = match &cur.after {
            Some(k) => {
                let mut s = k.clone();
                s.push(0);
                s
            }
            None => Vec::new(),
        };
        let mut exhausted = true;
        for kv in view.scan(space.space(), &start, None, false) {
            let (k, v) = kv?;
            if !out.is_empty() && bytes + (k.len() + v.len()) as u64 > max_bytes {
                exhausted = false;
                break;
            }
            bytes += (k.len() + v.len()) as u64;
            cur.after = Some(k.clone());
            out.push((space, k, v));
        }
        if !exhausted {
            return Ok((out, cur, false));
        }
        cur = Cursor {
            space: cur.space + 1,
            after: None,
        };
    }
    Ok((out, cur, true))
}

fn staging_key(space: StateSpace, key: &[u8]) -> Vec<u8> {
    let tag = match space {
        StateSpace::Keys => 0u8,
        StateSpace::Chunks => 1,
        StateSpace::Labels => 2,
        StateSpace::Meta => 3,
    };
    let mut k = STAGING_PREFIX.to_vec();
    k.push(tag);
    k.extend_from_slice(key);
    k
}

/// Stages a chunk's records.
pub(super) fn stage(batch: &mut WriteBatch, data: &[(StateSpace, Vec<u8>, Vec<u8>)]) {
    for (space, k, v) in data {
        batch.put(Space::Raft, staging_key(*space, k), v.clone());
    }
}

/// Drops everything staged.
pub(super) fn clear_staging(batch: &mut WriteBatch) {
    batch.delete_range(Space::Raft, STAGING_PREFIX, STAGING_END);
}

/// An exclusive upper bound above every key of `space`, if it has any.
fn end_of(store: &impl StoreRead, space: Space) -> Result<Option<Vec<u8>>, StoreError> {
    match store.scan(space, b"", None, true).next() {
        Some(kv) => {
            let (mut k, _) = kv?;
            k.push(0);
            Ok(Some(k))
        }
        None => Ok(None),
    }
}

/// Adds to `batch`: replace every state space with the staged records, then drop the staging.
pub(super) fn promote_staging(
    store: &impl StoreRead,
    batch: &mut WriteBatch,
) -> Result<(), StoreError> {
    for s in SPACES {
        if let Some(end) = end_of(store, s.space())? {
            batch.delete_range(s.space(), Vec::new(), end);
        }
    }
    for kv in store.scan(Space::Raft, STAGING_PREFIX, Some(STAGING_END), false) {
        let (k, v) = kv?;
        let rest = &k[STAGING_PREFIX.len()..];
        let Some((&tag, key)) = rest.split_first() else {
            continue;
        };
        let space = match tag {
            0 => Space::Keys,
            1 => Space::Chunks,
            2 => Space::Labels,
            3 => Space::Meta,
            _ => {
                return Err(StoreError::Corrupt {
                    space: Space::Raft,
                    detail: format!("staged snapshot record with space tag {tag}"),
                });
            }
        };
        batch.put(space, key.to_vec(), v);
    }
    clear_staging(batch);
    Ok(())
}

/// Whether a half-received snapshot is staged.
#[cfg(test)]
pub(super) fn has_staging(store: &impl StoreRead) -> Result<bool, StoreError> {
    Ok(store
        .scan(Space::Raft, STAGING_PREFIX, Some(STAGING_END), false)
        .next()
        .transpose()?
        .is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemStore, Store};

    fn fill(store: &mut MemStore) {
        let mut b = WriteBatch::new();
        for i in 0..50u8 {
            b.put(Space::Keys, vec![i], vec![i; 10]);
            b.put(Space::Chunks, vec![i, i], vec![1; 30]);
        }
        b.put(Space::Labels, b"l".to_vec(), b"v".to_vec());
        store.write(b).unwrap();
    }

    #[test]
    fn chunks_cover_every_state_record_once_and_staging_promotes_them() {
        let mut src = MemStore::new();
        fill(&mut src);
        let view = src.snapshot().unwrap();
        let mut dst = MemStore::new();
        let mut b = WriteBatch::new();
        b.put(Space::Keys, b"stale".to_vec(), b"x".to_vec());
        dst.write(b).unwrap();
        let mut cur = Cursor::default();
        let mut chunks = 0;
        loop {
            let (data, next, done) = read_chunk(&view, &cur, 100).unwrap();
            assert!(!data.is_empty() || done);
            let mut b = WriteBatch::new();
            stage(&mut b, &data);
            dst.write(b).unwrap();
            cur = next;
            chunks += 1;
            assert!(chunks < 1000, "chunking does not terminate");
            if done {
                break;
            }
        }
        assert!(chunks > 10, "100-byte chunks: got {chunks}");
        assert!(has_staging(&dst).unwrap());
        let mut b = WriteBatch::new();
        promote_staging(&dst, &mut b).unwrap();
        dst.write(b).unwrap();
        assert!(!has_staging(&dst).unwrap());
        for s in Space::STATE {
            let a: Vec<_> = src
                .scan(s, b"", None, false)
                .map(|kv| kv.unwrap())
                .collect();
            let b: Vec<_> = dst
                .scan(s, b"", None, false)
                .map(|kv| kv.unwrap())
                .collect();
            assert_eq!(a, b, "space {s:?}");
        }
    }
}
