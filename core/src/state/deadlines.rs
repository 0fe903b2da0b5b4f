//! The expiry commands (`EXPIRE` and friends, `PERSIST`, `SET` with a TTL, `GETEX`, `TTL`
//! and friends) and the deletion of expired keys, on [`Db`]: they keep its deadline count in
//! step with the deadline records of [`crate::db::expiry`], which says how deadlines are
//! stored and how reads hide expired keys.

use bytes::Bytes;

use super::Db;
use crate::UnixMillis;
use crate::cmd::ts::{MAddItem, TsWrite};
use crate::cmd::{ExpireCond, SetCond, TtlOpt, When, WriteCmd};
use crate::db::Tx;
use crate::db::expiry::{clear, clear_all, count, deadline, set};
use crate::resp::Frame;
use crate::store::{Space, StoreError, StoreRead};

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
            TsWrite::Batch(samples) => samples.iter().map(|(k, ..)| k).collect(),
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
