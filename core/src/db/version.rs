//! Key versions for `WATCH`: the log index of the entry that last modified each user key.
//!
//! A transaction's `EXEC` carries each watched key with the version it had when the client
//! watched it; applying the transaction compares them with the versions now, on every replica
//! alike, because versions are state machine data written in the same atomic batch as the
//! writes that change them (so they survive restarts and travel in snapshots).
//!
//! Records in [`Space::Meta`]:
//! - `watch/<key>` -> the index (u64 big-endian) of the entry that last wrote the key, for keys
//!   that exist (so there are at most as many records as keys);
//! - `watch-deleted` -> the index of the last entry that deleted a key (or flushed): the
//!   version of every key that does not exist;
//! - `watch-all` -> the index of the last entry that modified keys it cannot name
//!   (`TS.MDEL ... FILTER`): a floor under every version.
//!
//! A key's version is `max(own or deleted, all)`. Every modification of a key raises it to the
//! modifying entry's index, higher than any version before, so "equal" means "not modified
//! since". Deleting any key also changes the version of every missing key, and `TS.MDEL` that
//! of every key: such a WATCH aborts more often than Redis's would (clients retry), never less.

use std::collections::BTreeSet;

use super::tx::{Touched, Tx};
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
    own_key_into(&mut k, key);
    k
}

/// Makes `buf` the record key of `key`'s version (reusing its allocation).
fn own_key_into(buf: &mut Vec<u8>, key: &[u8]) {
    buf.clear();
    buf.extend_from_slice(OWN_PREFIX);
    buf.extend_from_slice(key);
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
    let own = match index_at(r, &own_key(key))? {
        Some(v) => v,
        None => index_at(r, DELETED)?.unwrap_or(0),
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

/// What an entry's commands modified beyond the user keys the transaction saw written
/// ([`Tx::take_touched`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Modified {
    /// Keys whose change may not rewrite their record (`TS.DEL` of samples).
    keys: BTreeSet<Vec<u8>>,
    /// Every key, deleted (`FLUSHALL`).
    flushed: bool,
    /// Keys the command cannot name (`TS.MDEL ... FILTER`).
    unnamed: bool,
}

impl Modified {
    /// Notes what `cmd` modifies that the transaction's writes may not show.
    pub fn note(&mut self, cmd: &WriteCmd) {
        match cmd {
            WriteCmd::Flush => self.flushed = true,
            WriteCmd::Ts(TsWrite::MDel { .. }) => self.unnamed = true,
            // A changed deadline changes the key without rewriting its record (Redis's
            // EXPIRE and PERSIST make a WATCH on the key fail too).
            WriteCmd::Ts(TsWrite::Del { key, .. })
            | WriteCmd::Expire { key, .. }
            | WriteCmd::Persist(key)
            | WriteCmd::GetEx { key, ttl: Some(_) } => {
                self.keys.insert(key.to_vec());
            }
            _ => {}
        }
    }
}

/// Records the versions of what the entry at log index `index` modified: the user keys
/// written in `tx` since the last call, and `extra`. Called once per entry, after its
/// commands (they all share the index), so a key costs one record per entry however often
/// the entry writes it.
pub fn record<S: StoreRead>(
    tx: &mut Tx<'_, S>,
    extra: Modified,
    index: u64,
) -> Result<(), StoreError> {
    let touched = tx.take_touched();
    let done = record_touched(tx, &touched, extra, index);
    tx.give_back_touched(touched);
    done
}

fn record_touched<S: StoreRead>(
    tx: &mut Tx<'_, S>,
    touched: &Touched,
    extra: Modified,
    index: u64,
) -> Result<(), StoreError> {
    let stamp = index.to_be_bytes();
    if touched.all || extra.flushed {
        tx.delete_range(Space::Meta, OWN_PREFIX.to_vec(), OWN_END.to_vec());
        tx.put(Space::Meta, DELETED.to_vec(), stamp.to_vec());
        // Keys the entry wrote after the flush exist again.
        let written = touched.keys().map(|(k, _)| k);
        for key in written.chain(extra.keys.iter().map(Vec::as_slice)) {
            if tx.get(Space::Keys, key)?.is_some() {
                tx.put(Space::Meta, own_key(key), stamp.to_vec());
            }
        }
        return Ok(());
    }
    if extra.unnamed {
        tx.put(Space::Meta, ALL.to_vec(), stamp.to_vec());
    }
    let mut deleted = false;
    // A written key's last change says whether it exists (no read of its record); the
    // commands' extra keys are read.
    let written = touched.keys().map(|(k, e)| (k, Some(e)));
    // One buffer for every record key: most entries write one key.
    let mut own = Vec::with_capacity(OWN_PREFIX.len() + 32);
    for (key, exists) in written.chain(extra.keys.iter().map(|k| (k.as_slice(), None))) {
        let exists = match exists {
            Some(e) => e,
            None => tx.get(Space::Keys, key)?.is_some(),
        };
        if exists {
            // A key written again since the last checkpoint has its record held: changed in
            // place.
            own_key_into(&mut own, key);
            tx.put_ref(Space::Meta, &own, &stamp);
        } else {
            tx.delete(Space::Meta, own_key(key));
            deleted = true;
        }
    }
    if deleted {
        tx.put(Space::Meta, DELETED.to_vec(), stamp.to_vec());
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
    use crate::store::{MemStore, Store};

    /// Applies `line` as the entry at `index` (`;` separates the commands of one entry).
    fn write(db: &mut Db, store: &mut MemStore, line: &str, index: u64) -> Frame {
        let mut tx = Tx::new(&*store);
        let mut extra = Modified::default();
        let mut reply = Frame::Null;
        for cmd in line.split(';') {
            let Ok(Command::Write(w)) = parse(&test_args(cmd)) else {
                panic!("not a write: {cmd}")
            };
            extra.note(&w);
            reply = db.apply(&mut tx, &w, UnixMillis(1)).unwrap();
        }
        record(&mut tx, extra, index).unwrap();
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
        // Written after a flush in the same entry: the key keeps its own record.
        write(&mut db, &mut store, "FLUSHALL;SET y 1", 13);
        assert_eq!(key_version(&store, b"y").unwrap(), 13);
        assert!(store.get(Space::Meta, &own_key(b"y")).unwrap().is_some());
        assert!(store.get(Space::Meta, &own_key(b"x")).unwrap().is_none());
    }
}
