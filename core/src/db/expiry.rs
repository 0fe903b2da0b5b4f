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

use bytes::Bytes;

use super::{Db, Tx};
use crate::UnixMillis;
use crate::cmd::ts::{MAddItem, TsWrite};
use crate::cmd::{ExpireCond, SetCond, TtlOpt, When, WriteCmd};
use crate::resp::Frame;
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
pub(super) fn set<S: StoreRead>(tx: &mut Tx<'_, S>, key: &[u8], at: u64, old: Option<u64>) {
    if let Some(old) = old {
        tx.delete(Space::Meta, at_key(old, key));
    }
    tx.put(Space::Meta, own_key(key), at.to_be_bytes().to_vec());
    tx.put(Space::Meta, at_key(at, key), Vec::new());
}

/// Removes `key`'s deadline `old`.
pub(super) fn clear<S: StoreRead>(tx: &mut Tx<'_, S>, key: &[u8], old: u64) {
    tx.delete(Space::Meta, own_key(key));
    tx.delete(Space::Meta, at_key(old, key));
}

/// Removes every deadline (FLUSHALL).
pub(super) fn clear_all<S: StoreRead>(tx: &mut Tx<'_, S>) {
    tx.delete_range(Space::Meta, OWN_PREFIX.to_vec(), OWN_END.to_vec());
    tx.delete_range(Space::Meta, AT_PREFIX.to_vec(), AT_END.to_vec());
}

/// How many keys have a deadline.
pub(super) fn count(r: &impl StoreRead) -> Result<u64, StoreError> {
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

/// The absolute deadline of `when` for an entry at `unix`; `None` when it overflows.
fn resolve(when: When, unix: UnixMillis) -> Option<u64> {
    let at = match when {
        When::In(ms) => i64::try_from(unix.0).ok()?.checked_add(ms)?,
        When::At(ms) => ms,
    };
    // A deadline before 1970 has passed like any other past one.
    Some(u64::try_from(at).unwrap_or(0))
}

fn invalid_time(cmd: &str) -> Frame {
    Frame::error(format!("ERR invalid expire time in '{cmd}' command"))
}

/// The user keys a write touches by name (its rules' destinations and `TS.MDEL`'s series are
/// not named: see docs/commands.md).
fn write_keys(cmd: &WriteCmd) -> Vec<&Bytes> {
    match cmd {
        WriteCmd::Set { key, .. }
        | WriteCmd::SetNx { key, .. }
        | WriteCmd::GetSet { key, .. }
        | WriteCmd::GetDel(key)
        | WriteCmd::IncrBy { key, .. }
        | WriteCmd::IncrByFloat { key, .. }
        | WriteCmd::Append { key, .. }
        | WriteCmd::BatchAdd { key, .. }
        | WriteCmd::Expire { key, .. }
        | WriteCmd::Persist(key)
        | WriteCmd::SetTtl { key, .. }
        | WriteCmd::GetEx { key, .. } => vec![key],
        WriteCmd::MSet(pairs) => pairs.iter().map(|(k, _)| k).collect(),
        WriteCmd::Del(keys) => keys.iter().collect(),
        WriteCmd::Ts(t) => match t {
            TsWrite::Create { key, .. }
            | TsWrite::Alter { key, .. }
            | TsWrite::Add { key, .. }
            | TsWrite::IncrBy { key, .. }
            | TsWrite::Del { key, .. }
            | TsWrite::SeedSet { key, .. } => vec![key],
            TsWrite::MAdd(items) => items.iter().map(|(k, ..)| k).collect(),
            TsWrite::MAddPartial(items) => items
                .iter()
                .filter_map(|i| match i {
                    MAddItem::Sample(k, ..) => Some(k),
                    MAddItem::Refused(_) => None,
                })
                .collect(),
            TsWrite::CreateRule { src, dst, .. } | TsWrite::DeleteRule { src, dst } => {
                vec![src, dst]
            }
            TsWrite::MDel { .. } => Vec::new(),
        },
        WriteCmd::Flush | WriteCmd::Meta(_) | WriteCmd::Publish { .. } | WriteCmd::ExpireDue(_) => {
            Vec::new()
        }
    }
}

impl Db {
    /// Whether any key has a deadline (when none does, reads and writes skip every check).
    pub fn has_deadlines(&self) -> bool {
        self.volatile > 0
    }

    /// Asserts the deadline count matches the records in `store` (tests and simulation).
    pub fn check_deadlines(&self, store: &impl StoreRead) {
        if let Ok(n) = count(store) {
            assert_eq!(self.volatile, n, "the deadline count is the records'");
        }
    }

    /// Keys deleted at their deadline since this node started (INFO `expired_keys`).
    pub fn expired_count(&self) -> u64 {
        self.expired
    }

    /// How many keys have a deadline (INFO keyspace's `expires`).
    pub fn deadline_count(&self) -> u64 {
        self.volatile
    }

    /// Sets the time reads compare deadlines against (the node's clock, see `node`).
    pub fn set_read_time(&mut self, now: UnixMillis) {
        self.read_now = now.0;
    }

    /// Deletes the keys `cmd` names whose deadline has passed at `unix`, before `cmd` runs;
    /// returns them (each an `expired` event).
    pub fn expire_stale<S: StoreRead>(
        &mut self,
        tx: &mut Tx<'_, S>,
        cmd: &WriteCmd,
        unix: UnixMillis,
    ) -> Result<Vec<Bytes>, StoreError> {
        let mut out = Vec::new();
        if self.volatile == 0 {
            return Ok(out);
        }
        for key in write_keys(cmd) {
            if deadline(tx, key)?.is_some_and(|at| at <= unix.0) && self.delete_key(tx, key)? {
                self.expired += 1;
                out.push(key.clone());
            }
        }
        Ok(out)
    }

    /// Removes `key`'s deadline if it has one (the key is being deleted or overwritten).
    pub(super) fn drop_deadline<S: StoreRead>(
        &mut self,
        tx: &mut Tx<'_, S>,
        key: &[u8],
    ) -> Result<bool, StoreError> {
        if self.volatile == 0 {
            return Ok(false);
        }
        let Some(old) = deadline(tx, key)? else {
            return Ok(false);
        };
        clear(tx, key, old);
        self.volatile -= 1;
        Ok(true)
    }

    /// Gives an existing key the deadline `at` (deleting it if `at` has passed at `unix`).
    fn put_deadline<S: StoreRead>(
        &mut self,
        tx: &mut Tx<'_, S>,
        key: &[u8],
        at: u64,
        unix: UnixMillis,
    ) -> Result<(), StoreError> {
        if at <= unix.0 {
            self.delete_key(tx, key)?;
            return Ok(());
        }
        let old = deadline(tx, key)?;
        set(tx, key, at, old);
        if old.is_none() {
            self.volatile += 1;
        }
        Ok(())
    }

    /// FLUSHALL's part: no deadlines remain.
    pub(super) fn clear_deadlines<S: StoreRead>(&mut self, tx: &mut Tx<'_, S>) {
        clear_all(tx);
        self.volatile = 0;
    }

    /// EXPIRE and friends, PERSIST, SET with a TTL option, GETEX, and the leader's active
    /// expiry.
    pub(super) fn apply_expiry<S: StoreRead>(
        &mut self,
        tx: &mut Tx<'_, S>,
        cmd: &WriteCmd,
        unix: UnixMillis,
    ) -> Result<Frame, StoreError> {
        Ok(match cmd {
            WriteCmd::Expire {
                key,
                when,
                cond,
                name,
            } => {
                if tx.get(Space::Keys, key)?.is_none() {
                    return Ok(Frame::Integer(0));
                }
                let Some(at) = resolve(*when, unix) else {
                    return Ok(invalid_time(name));
                };
                let old = deadline(tx, key)?;
                let ok = match cond {
                    None => true,
                    Some(ExpireCond::Nx) => old.is_none(),
                    Some(ExpireCond::Xx) => old.is_some(),
                    Some(ExpireCond::Gt) => old.is_some_and(|o| at > o),
                    Some(ExpireCond::Lt) => old.is_none_or(|o| at < o),
                };
                if ok {
                    self.put_deadline(tx, key, at, unix)?;
                }
                Frame::Integer(i64::from(ok))
            }
            WriteCmd::Persist(key) => {
                let removed = tx.get(Space::Keys, key)?.is_some() && self.drop_deadline(tx, key)?;
                Frame::Integer(i64::from(removed))
            }
            WriteCmd::SetTtl {
                key,
                value,
                cond,
                get,
                ttl,
            } => {
                let exists = tx.get(Space::Keys, key)?.is_some();
                let old = deadline(tx, key)?;
                let at = match ttl {
                    TtlOpt::Set(when) => match resolve(*when, unix) {
                        Some(at) => Some(at),
                        None => return Ok(invalid_time("set")),
                    },
                    TtlOpt::Keep => old,
                    TtlOpt::Persist => None,
                };
                let set = WriteCmd::Set {
                    key: key.clone(),
                    value: value.clone(),
                    cond: *cond,
                    get: *get,
                };
                let reply = self.apply(tx, &set, unix)?;
                let allowed = match cond {
                    None => true,
                    Some(SetCond::Nx) => !exists,
                    Some(SetCond::Xx) => exists,
                };
                if allowed && !reply.is_error() {
                    // SET cleared any deadline when it replaced the key.
                    if let Some(at) = at {
                        self.put_deadline(tx, key, at, unix)?;
                    }
                }
                reply
            }
            WriteCmd::GetEx { key, ttl } => match self.string(tx, key)? {
                Err(e) => Frame::error(e.to_string()),
                Ok(None) => Frame::Null,
                Ok(Some(v)) => {
                    match ttl {
                        None | Some(TtlOpt::Keep) => {}
                        Some(TtlOpt::Persist) => {
                            self.drop_deadline(tx, key)?;
                        }
                        Some(TtlOpt::Set(when)) => match resolve(*when, unix) {
                            Some(at) => self.put_deadline(tx, key, at, unix)?,
                            None => return Ok(invalid_time("getex")),
                        },
                    }
                    Frame::Bulk(v)
                }
            },
            WriteCmd::ExpireDue(items) => {
                let mut gone = Vec::new();
                for (key, at) in items {
                    if *at <= unix.0
                        && deadline(tx, key)? == Some(*at)
                        && self.delete_key(tx, key)?
                    {
                        self.expired += 1;
                        gone.push(Frame::Bulk(key.clone()));
                    }
                }
                Frame::Array(gone)
            }
            _ => Frame::error("ERR not an expiry command"),
        })
    }

    /// TTL, PTTL, EXPIRETIME, PEXPIRETIME on a view that hides expired keys.
    pub(super) fn ttl(
        &self,
        r: &impl StoreRead,
        key: &[u8],
        ms: bool,
        absolute: bool,
    ) -> Result<Frame, StoreError> {
        if r.get(Space::Keys, key)?.is_none() {
            return Ok(Frame::Integer(-2));
        }
        let Some(at) = deadline(r, key)? else {
            return Ok(Frame::Integer(-1));
        };
        let n = match (absolute, ms) {
            (true, true) => at,
            (true, false) => at / 1000,
            (false, true) => at.saturating_sub(self.read_now),
            (false, false) => (at.saturating_sub(self.read_now) + 500) / 1000,
        };
        Ok(Frame::Integer(i64::try_from(n).unwrap_or(i64::MAX)))
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
