//! Raft's records in the store: key layout and versioned postcard encoding.
//!
//! Every value is one format version byte followed by the postcard encoding of the record, so a
//! later build can refuse (rather than misread) a format it does not know.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::message::SnapshotMeta;
use super::{Entry, LogIndex, Membership, NodeId, Term};
use crate::store::{Space, StoreError, StoreRead, WriteBatch};

/// The record format this build writes and reads.
const RECORD_VERSION: u8 = 1;

/// Term and vote: must be durable before a vote is granted.
pub(super) const KEY_HARD_STATE: &[u8] = b"hard_state";
/// The log base: index, term and membership just before the first entry in `Space::Log`.
pub(super) const KEY_LOG_BASE: &[u8] = b"log_base";
/// The state machine's applied index, written by the owner with each applied entry.
const KEY_APPLIED: &[u8] = b"applied";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct HardState {
    pub(super) term: Term,
    pub(super) vote: Option<NodeId>,
}

/// The point the log starts after: a snapshot or compaction point (index 0 for a new log).
pub(super) type LogBase = SnapshotMeta;

pub(super) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    encode_into(value, Vec::with_capacity(32))
}

/// Encodes `value` after the version byte into `out` (empty, sized by the caller so that a
/// large entry is not copied from buffer to buffer as it grows).
fn encode_into<T: Serialize>(value: &T, mut out: Vec<u8>) -> Vec<u8> {
    debug_assert!(out.is_empty());
    out.push(RECORD_VERSION);
    // Serializing an in-memory record into a Vec cannot fail (see message::to_bytes).
    postcard::to_extend(value, out).expect("postcard into a Vec cannot fail")
}

pub(super) fn decode<T: DeserializeOwned>(space: Space, bytes: &[u8]) -> Result<T, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt { space, detail };
    match bytes.split_first() {
        Some((&RECORD_VERSION, body)) => {
            postcard::from_bytes(body).map_err(|e| corrupt(format!("raft record: {e}")))
        }
        Some((v, _)) => Err(corrupt(format!("unknown raft record version {v}"))),
        None => Err(corrupt("empty raft record".into())),
    }
}

pub(super) fn read<T: DeserializeOwned>(
    store: &impl StoreRead,
    key: &[u8],
) -> Result<Option<T>, StoreError> {
    store
        .get(Space::Raft, key)?
        .map(|b| decode(Space::Raft, &b))
        .transpose()
}

pub(super) fn log_key(index: LogIndex) -> [u8; 8] {
    index.0.to_be_bytes()
}

pub(super) fn put_entry(batch: &mut WriteBatch, entry: &Entry) {
    // Entries are bounded by the message limit, so the hint fits a usize.
    let sized = Vec::with_capacity(usize::try_from(entry.size_hint()).unwrap_or(0));
    batch.put(Space::Log, log_key(entry.index), encode_into(entry, sized));
}

pub(super) fn read_entry(
    store: &impl StoreRead,
    index: LogIndex,
) -> Result<Option<Entry>, StoreError> {
    let Some(bytes) = store.get(Space::Log, &log_key(index))? else {
        return Ok(None);
    };
    let entry: Entry = decode(Space::Log, &bytes)?;
    if entry.index != index {
        return Err(StoreError::Corrupt {
            space: Space::Log,
            detail: format!("entry at {} claims index {}", index.0, entry.index.0),
        });
    }
    Ok(Some(entry))
}

/// The last entry in the log, if any.
pub(super) fn last_entry(store: &impl StoreRead) -> Result<Option<Entry>, StoreError> {
    let Some(kv) = store.scan(Space::Log, b"", None, true).next() else {
        return Ok(None);
    };
    let (_, value) = kv?;
    decode(Space::Log, &value).map(Some)
}

/// Adds "the state machine has applied everything up to `index`" to the owner's batch, which
/// must also hold that entry's state changes so both survive a crash together or not at all.
pub fn record_applied(batch: &mut WriteBatch, index: LogIndex) {
    batch.put(Space::Raft, KEY_APPLIED, encode(&index));
}

/// Whether `batch` records an applied index (a checkpoint or a snapshot install).
pub fn records_applied(batch: &WriteBatch) -> bool {
    batch.ops().iter().any(|op| {
        matches!(op, crate::store::Op::Put { space: Space::Raft, key, .. } if key == KEY_APPLIED)
    })
}

/// The applied index recorded with [`record_applied`] (zero if none).
pub fn applied_index(store: &impl StoreRead) -> Result<LogIndex, StoreError> {
    Ok(read(store, KEY_APPLIED)?.unwrap_or_default())
}

/// Membership in effect for a fresh log base.
pub(super) fn initial_base(voters: &std::collections::BTreeSet<NodeId>) -> LogBase {
    LogBase {
        index: LogIndex(0),
        term: Term(0),
        membership: Membership {
            voters: voters.clone(),
            learners: Default::default(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::EntryKind;
    use crate::store::{MemStore, Store};

    #[test]
    fn records_round_trip_and_reject_unknown_versions() {
        let hs = HardState {
            term: Term(5),
            vote: Some(NodeId(2)),
        };
        let bytes = encode(&hs);
        assert_eq!(bytes[0], RECORD_VERSION);
        assert_eq!(decode::<HardState>(Space::Raft, &bytes).unwrap(), hs);
        let mut bad = bytes.clone();
        bad[0] = 0;
        assert!(decode::<HardState>(Space::Raft, &bad).is_err());
        assert!(decode::<HardState>(Space::Raft, &[]).is_err());
    }

    #[test]
    fn entries_are_keyed_in_index_order_and_applied_is_recorded() {
        let mut store = MemStore::new();
        let mut batch = WriteBatch::new();
        for i in [2u64, 1, 300] {
            put_entry(
                &mut batch,
                &Entry {
                    term: Term(1),
                    index: LogIndex(i),
                    kind: EntryKind::Noop,
                },
            );
        }
        record_applied(&mut batch, LogIndex(2));
        store.write(batch).unwrap();
        assert_eq!(last_entry(&store).unwrap().unwrap().index, LogIndex(300));
        assert_eq!(
            read_entry(&store, LogIndex(1)).unwrap().unwrap().index,
            LogIndex(1)
        );
        assert!(read_entry(&store, LogIndex(3)).unwrap().is_none());
        assert_eq!(applied_index(&store).unwrap(), LogIndex(2));
    }

    /// The stored form of log entries and the hard state, pinned: a reordered enum variant or
    /// a changed field type must not silently change what a data directory holds.
    #[test]
    #[rustfmt::skip]
    fn records_golden_bytes() {
        let entry = |kind| Entry { term: Term(2), index: LogIndex(300), kind };
        // term, index (varint 300), kind (variant, then its payload)
        assert_eq!(encode(&entry(EntryKind::Noop)), [RECORD_VERSION, 2, 172, 2, 0]);
        let normal = entry(EntryKind::Normal(vec![7, 8, 9]));
        assert_eq!(encode(&normal), [RECORD_VERSION, 2, 172, 2, 1, 3, 7, 8, 9]);
        assert_eq!(decode::<Entry>(Space::Log, &encode(&normal)).unwrap(), normal);
        let hs = HardState { term: Term(5), vote: Some(NodeId(2)) };
        assert_eq!(encode(&hs), [RECORD_VERSION, 5, 1, 2]);
    }
}
