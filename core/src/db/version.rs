//! Key versions for `WATCH`: the log index of the entry that last modified each user key.
//!
//! A transaction's `EXEC` carries each watched key with the version it had when the client
//! watched it; applying the transaction compares them with the versions now, on every replica
//! alike, because versions are state machine data written in the same atomic batch as the
//! writes that change them (so they survive restarts and travel in snapshots).
//!
//! Where they are kept:
//! - an existing key's version is the stamp in its record (`[2, kind, stamp, payload]`, see
//!   [`super::Record`]): every record an entry writes carries the entry's index
//!   ([`Tx::begin_entry`]), so a write costs no record beside its own;
//! - a record of version 1 (written before records carried stamps) has its version in
//!   [`Space::Meta`] `watch/<key>` -> the index (u64 big-endian), as it had then; the record
//!   is deleted with its key, and a key written again carries a stamp instead;
//! - `watch-deleted` -> the index of the last entry that deleted a key (or flushed): the
//!   version of every key that does not exist;
//! - `watch-all` -> the index of the last entry that modified keys it cannot name
//!   (`TS.MDEL ... FILTER`): a floor under every version.
//!
//! A key's version is `max(own or deleted, all)`. Every modification of a key raises it to the
//! modifying entry's index, higher than any version before, so "equal" means "not modified
//! since". A change that does not rewrite the key's record (a deadline set or removed) writes
//! it again under the new stamp. Deleting any key also changes the version of every missing
//! key, and `TS.MDEL` that of every key: such a WATCH aborts more often than Redis's would
//! (clients retry), never less.

use super::Record;
use super::tx::{Deleted, Tx};
use crate::cmd::WriteCmd;
use crate::cmd::ts::TsWrite;
use crate::store::{Space, StoreError, StoreRead};

const OWN_PREFIX: &[u8] = b"watch/";
/// The first key after every `watch/` key (`'/' + 1 == '0'`).
const OWN_END: &[u8] = b"watch0";
const DELETED: &[u8] = b"watch-deleted";
const ALL: &[u8] = b"watch-all";

fn own_key(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(OWN_PREFIX.len() + key.len());
    k.extend_from_slice(OWN_PREFIX);
    k.extend_from_slice(key);
    k
}

fn index_at(r: &impl StoreRead, key: &[u8]) -> Result<Option<u64>, StoreError> {
    let Some(raw) = r.get(Space::Meta, key)? else {
        return Ok(None);
    };
    let bytes = <[u8; 8]>::try_from(raw.as_slice()).map_err(|_| StoreError::Corrupt {
        space: Space::Meta,
        detail: "key version is not 8 bytes".into(),
    })?;
    Ok(Some(u64::from_be_bytes(bytes)))
}

/// The version of `key` in the state `r` holds (see the module docs).
pub fn key_version(r: &impl StoreRead, key: &[u8]) -> Result<u64, StoreError> {
    let stamp = match r.get(Space::Keys, key)? {
        Some(raw) => Record::parse_header(&raw)?.1,
        None => None,
    };
    let own = match stamp {
        Some(v) => v,
        // Missing, or a record of version 1: its `watch/` record, if it has one.
        None => match index_at(r, &own_key(key))? {
            Some(v) => v,
            None => index_at(r, DELETED)?.unwrap_or(0),
        },
    };
    Ok(own.max(index_at(r, ALL)?.unwrap_or(0)))
}

/// Whether every watched key still has the version captured by WATCH.
pub fn unchanged<S: StoreRead>(
    tx: &Tx<'_, S>,
    watched: &[(bytes::Bytes, u64)],
) -> Result<bool, StoreError> {
    for (key, version) in watched {
        if key_version(tx, key)? != *version {
            return Ok(false);
        }
    }
    Ok(true)
}

/// What an entry's commands modified beyond the key records they wrote and the keys they
/// deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Modified {
    /// Keys whose change does not rewrite their record (a deadline); a key listed twice is
    /// stamped once (the second finds the stamp).
    keys: Vec<Vec<u8>>,
    /// Every key, deleted (`FLUSHALL`).
    flushed: bool,
    /// Keys the command cannot name (`TS.MDEL ... FILTER`).
    unnamed: bool,
}

impl Modified {
    /// Notes what `cmd` modifies that the records it writes may not show.
    pub fn note(&mut self, cmd: &WriteCmd) {
        match cmd {
            WriteCmd::Flush => self.flushed = true,
            WriteCmd::Ts(TsWrite::MDel { .. }) => self.unnamed = true,
            // A changed deadline changes the key without rewriting its record (Redis's
            // EXPIRE and PERSIST make a WATCH on the key fail too). `TS.DEL` rewrites the
            // series record (its counters), so its stamp changes with it.
            WriteCmd::Expire { key, .. }
            | WriteCmd::Persist(key)
            | WriteCmd::GetEx { key, ttl: Some(_) } => {
                self.keys.push(key.to_vec());
            }
            _ => {}
        }
    }
}

/// Records what the entry begun with [`Tx::begin_entry`] modified beyond the records it
/// wrote (which carry its stamp already): the keys it deleted, and `extra`. Called once per
/// entry, after its commands.
///
/// # Panics
/// When no entry was begun: a record written with stamp 0 would compare equal to a version
/// taken before any write.
pub fn record<S: StoreRead>(tx: &mut Tx<'_, S>, extra: Modified) -> Result<(), StoreError> {
    assert!(tx.stamp() > 0, "an entry's writes carry its log index");
    if !tx.deleted_any() && extra == Modified::default() {
        // Most entries only write records, which carry the stamp already.
        return Ok(());
    }
    let deleted = tx.take_deleted();
    let done = record_changes(tx, &deleted, extra);
    tx.give_back_deleted(deleted);
    done
}

fn record_changes<S: StoreRead>(
    tx: &mut Tx<'_, S>,
    deleted: &Deleted,
    extra: Modified,
) -> Result<(), StoreError> {
    let stamp = tx.stamp().to_be_bytes();
    if deleted.all || extra.flushed {
        // Every version-1 record goes with its key; keys written after the flush in this
        // entry carry its stamp.
        tx.delete_range(Space::Meta, OWN_PREFIX.to_vec(), OWN_END.to_vec());
        tx.put(Space::Meta, DELETED.to_vec(), stamp.to_vec());
    } else {
        if extra.unnamed {
            tx.put(Space::Meta, ALL.to_vec(), stamp.to_vec());
        }
        // A key deleted and written again within the entry exists at its end: its record
        // carries the stamp.
        let mut any_gone = false;
        for key in deleted.keys() {
            if tx.get(Space::Keys, key)?.is_none() {
                any_gone = true;
                tx.delete(Space::Meta, own_key(key));
            }
        }
        if any_gone {
            tx.put(Space::Meta, DELETED.to_vec(), stamp.to_vec());
        }
    }
    for key in &extra.keys {
        restamp(tx, key)?;
    }
    Ok(())
}

/// Writes `key`'s record again under the entry's stamp, when it exists and does not carry it.
fn restamp<S: StoreRead>(tx: &mut Tx<'_, S>, key: &[u8]) -> Result<(), StoreError> {
    let Some(raw) = tx.get(Space::Keys, key)? else {
        return Ok(());
    };
    if Record::parse_header(&raw)?.1 != Some(tx.stamp()) {
        let again = Record::restamped(&raw, tx.stamp())?;
        tx.put(Space::Keys, key.to_vec(), again);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UnixMillis;
    use crate::cmd::{Command, parse, test_args};
    use crate::resp::Frame;
    use crate::state::Db;
    use crate::store::{MemStore, Store, WriteBatch};

    /// Applies `line` as the entry at `index` (`;` separates the commands of one entry).
    fn write(db: &mut Db, store: &mut MemStore, line: &str, index: u64) -> Frame {
        let mut tx = Tx::new(&*store);
        tx.begin_entry(index);
        let mut extra = Modified::default();
        let mut reply = Frame::Null;
        for cmd in line.split(';') {
            let Ok(Command::Write(w)) = parse(&test_args(cmd)) else {
                panic!("not a write: {cmd}")
            };
            extra.note(&w);
            reply = db.apply(&mut tx, &w, UnixMillis(1)).unwrap();
        }
        record(&mut tx, extra).unwrap();
        let batch = tx.into_batch();
        store.write(batch).unwrap();
        reply
    }

    #[test]
    fn versions_follow_modifications_only() {
        let (mut db, mut store) = (Db::default(), MemStore::new());
        assert_eq!(key_version(&store, b"a").unwrap(), 0);
        write(&mut db, &mut store, "SET a 1", 5);
        assert_eq!(key_version(&store, b"a").unwrap(), 5);
        // A write that changes nothing leaves the version alone.
        assert_eq!(write(&mut db, &mut store, "SET a 2 NX", 6), Frame::Null);
        assert_eq!(key_version(&store, b"a").unwrap(), 5);
        write(&mut db, &mut store, "SET b 1", 7);
        assert_eq!(key_version(&store, b"a").unwrap(), 5);
        assert_eq!(key_version(&store, b"b").unwrap(), 7);
        // Deleting removes the record; a missing key takes the deletion's index.
        write(&mut db, &mut store, "DEL a", 8);
        assert_eq!(key_version(&store, b"a").unwrap(), 8);
        assert_eq!(key_version(&store, b"never").unwrap(), 8);
        assert_eq!(key_version(&store, b"b").unwrap(), 7);
        assert!(store.get(Space::Meta, &own_key(b"a")).unwrap().is_none());
        // A series written through the engine counts too.
        write(&mut db, &mut store, "TS.ADD s 1 1", 9);
        assert_eq!(key_version(&store, b"s").unwrap(), 9);
        write(&mut db, &mut store, "TS.MDEL - + FILTER a=b", 10);
        assert_eq!(key_version(&store, b"b").unwrap(), 10);
        write(&mut db, &mut store, "FLUSHALL", 11);
        assert_eq!(key_version(&store, b"b").unwrap(), 11);
        assert_eq!(key_version(&store, b"s").unwrap(), 11);
        assert!(
            store
                .scan(Space::Meta, OWN_PREFIX, Some(OWN_END), false)
                .next()
                .is_none()
        );
        // One entry that writes a key many times records it once; one created and deleted
        // within an entry counts as deleted.
        write(
            &mut db,
            &mut store,
            "SET x 1;SET x 2;SET x 3;SET gone 1;DEL gone",
            12,
        );
        assert_eq!(key_version(&store, b"x").unwrap(), 12);
        assert_eq!(key_version(&store, b"gone").unwrap(), 12);
        assert!(store.get(Space::Meta, &own_key(b"gone")).unwrap().is_none());
        // Written after a flush in the same entry: the key's record carries the stamp.
        write(&mut db, &mut store, "FLUSHALL;SET y 1", 13);
        assert_eq!(key_version(&store, b"y").unwrap(), 13);
        assert!(store.get(Space::Meta, &own_key(b"y")).unwrap().is_none());
        // A deadline set or removed rewrites the record under the new stamp; a missing key's
        // deadline changes nothing.
        write(&mut db, &mut store, "EXPIRE y 100", 14);
        assert_eq!(key_version(&store, b"y").unwrap(), 14);
        write(&mut db, &mut store, "PERSIST y", 15);
        assert_eq!(key_version(&store, b"y").unwrap(), 15);
        write(&mut db, &mut store, "EXPIRE nope 100", 16);
        assert_eq!(key_version(&store, b"nope").unwrap(), 13);
        assert_eq!(key_version(&store, b"y").unwrap(), 15);
        // Samples deleted from a series change its version with its record.
        write(&mut db, &mut store, "TS.ADD t 5 1", 17);
        write(&mut db, &mut store, "TS.DEL t 0 10", 18);
        assert_eq!(key_version(&store, b"t").unwrap(), 18);
    }

    /// A key record of version 1 (no stamp) keeps the version its `watch/` record held until
    /// the key is written again or deleted.
    #[test]
    fn unstamped_records_keep_their_version_records() {
        let mut store = MemStore::new();
        let mut b = WriteBatch::default();
        b.put(Space::Keys, b"old".to_vec(), vec![1, 1, b'7']);
        b.put(Space::Meta, own_key(b"old"), 4u64.to_be_bytes().to_vec());
        b.put(Space::Keys, b"older".to_vec(), vec![1, 1, b'8']);
        b.put(Space::Meta, DELETED.to_vec(), 2u64.to_be_bytes().to_vec());
        store.write(b).unwrap();
        assert_eq!(key_version(&store, b"old").unwrap(), 4);
        // One with no version record (written before versions were kept) is as old as the
        // last deletion.
        assert_eq!(key_version(&store, b"older").unwrap(), 2);
        let mut db = Db::open(&store).unwrap();
        assert_eq!(write(&mut db, &mut store, "INCR old", 6), Frame::Integer(8));
        assert_eq!(key_version(&store, b"old").unwrap(), 6);
        write(&mut db, &mut store, "DEL old", 7);
        assert!(store.get(Space::Meta, &own_key(b"old")).unwrap().is_none());
        assert_eq!(key_version(&store, b"old").unwrap(), 7);
    }
}
