//! Transactions: `MULTI`, `EXEC`, `DISCARD`, `WATCH`, `UNWATCH`, with Redis's semantics.
//!
//! Between `MULTI` and `EXEC` a connection's commands are checked and queued (`+QUEUED`). A
//! command Redis refuses when queuing (unknown, wrong arity, not allowed in a transaction)
//! is answered with its error and makes `EXEC` answer `-EXECABORT`; one that would fail when
//! it runs (a bad number, a syntax error) is queued as its error and answered in its place in
//! EXEC's array, as Redis does.
//!
//! `EXEC` turns the queue into one log entry ([`TxnEntry`]): it commits and applies atomically
//! on every replica, reads included, in order, so a read sees the writes queued before it. A
//! follower forwards the entry to the leader as a unit, like any write. `WATCH` captures each
//! key's version (the log index that last modified it, see [`crate::db::version`]) from the
//! state this node has applied; the entry carries them and every replica decides the same way
//! when it applies: if any watched key's version changed, nothing runs and EXEC answers nil.
//! A node that lags the leader captures older versions, which can only make EXEC abort, never
//! run over a change.
//!
//! Connection commands inside a transaction: PING, ECHO, TIME (the entry's clock) and UNWATCH
//! run in it; the others (INFO, CLIENT, CONFIG ...) describe one node, not the replicated
//! state, and are refused when queued.

use bytes::Bytes;

use super::log::{Decoded, TxnEntry, TxnOp};
use super::pubsub::Notes;
use super::write::ReplyShape;
use super::{ConnId, Node, peer};
use crate::UnixMillis;
use crate::cmd::{self, Command, CommandError, ConnCmd};
use crate::db::{Tx, version};
use crate::raft::LogIndex;
use crate::resp::{Frame, Protocol};
use crate::state::Db;
use crate::store::{Store, StoreError, StoreRead};

/// Most commands one transaction may queue; more make EXEC abort.
pub(super) const MULTI_COMMANDS_MAX: usize = 100_000;

/// Most argument bytes one transaction may queue: its entry must fit one log entry.
pub(super) const MULTI_BYTES_MAX: usize = peer::MAX_ENTRY_BYTES;

/// Most keys a connection may WATCH at once.
pub(super) const WATCH_KEYS_MAX: usize = 10_000;

/// A connection's transaction state.
#[derive(Debug, Default)]
pub(super) struct ConnTxn {
    /// Inside MULTI: what EXEC will run.
    multi: Option<Queue>,
    /// Keys watched and their versions when watched (until EXEC, DISCARD or UNWATCH).
    watched: Vec<(Bytes, u64)>,
}

impl ConnTxn {
    /// Whether the connection is between MULTI and EXEC/DISCARD.
    pub(super) fn queuing(&self) -> bool {
        self.multi.is_some()
    }

    /// CLIENT LIST's `multi=`: commands queued, or -1 outside MULTI.
    pub(super) fn queued(&self) -> i64 {
        self.multi
            .as_ref()
            .map_or(-1, |q| i64::try_from(q.ops.len()).unwrap_or(i64::MAX))
    }

    /// CLIENT LIST's `watch=`.
    pub(super) fn watched(&self) -> usize {
        self.watched.len()
    }
}

#[derive(Debug, Default)]
struct Queue {
    ops: Vec<TxnOp>,
    bytes: usize,
    /// A command was refused while queuing: EXEC answers EXECABORT.
    dirty: bool,
}

/// Commands that act on the transaction itself instead of being queued.
pub(super) fn is_control(name: &[u8]) -> bool {
    ["exec", "discard", "multi", "watch", "quit", "reset"]
        .iter()
        .any(|c| name.eq_ignore_ascii_case(c.as_bytes()))
}

fn exec_abort() -> Frame {
    Frame::error("EXECABORT Transaction discarded because of previous errors.")
}

impl<S: Store> Node<S> {
    /// Queues a request of a connection inside MULTI and answers `+QUEUED` or the error.
    pub(super) fn queue_in_multi(&mut self, conn: ConnId, args: Vec<Bytes>) {
        let reply = match queued_op(&args) {
            Ok(op) => {
                let size: usize = args.iter().map(|a| a.len() + 8).sum();
                let Some(q) = self.conns.get_mut(&conn).and_then(|c| c.txn.multi.as_mut()) else {
                    return;
                };
                if q.ops.len() >= MULTI_COMMANDS_MAX || q.bytes + size > MULTI_BYTES_MAX {
                    q.dirty = true;
                    Frame::error(format!(
                        "ERR transaction too large (at most {MULTI_COMMANDS_MAX} commands and {MULTI_BYTES_MAX} bytes): it will be discarded"
                    ))
                } else {
                    q.bytes += size;
                    q.ops.push(op);
                    Frame::simple("QUEUED")
                }
            }
            Err(e) => {
                if let Some(q) = self.conns.get_mut(&conn).and_then(|c| c.txn.multi.as_mut()) {
                    q.dirty = true;
                }
                Frame::error(e.to_string())
            }
        };
        self.reply(conn, reply);
    }

    pub(super) fn multi(&mut self, conn: ConnId) -> Frame {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Frame::Null;
        };
        if c.txn.multi.is_some() {
            return Frame::error("ERR MULTI calls can not be nested");
        }
        c.txn.multi = Some(Queue::default());
        Frame::ok()
    }

    pub(super) fn discard(&mut self, conn: ConnId) -> Frame {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Frame::Null;
        };
        if c.txn.multi.take().is_none() {
            return Frame::error("ERR DISCARD without MULTI");
        }
        c.txn.watched.clear();
        Frame::ok()
    }

    pub(super) fn unwatch(&mut self, conn: ConnId) -> Frame {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.txn.watched.clear();
        }
        Frame::ok()
    }

    /// WATCH: records each key's version in the state this node has applied.
    pub(super) fn watch(&mut self, conn: ConnId, keys: Vec<Bytes>) -> Frame {
        let Some(c) = self.conns.get(&conn) else {
            return Frame::Null;
        };
        if c.txn.multi.is_some() {
            return Frame::error("ERR WATCH inside MULTI is not allowed");
        }
        let fresh: Vec<&Bytes> = keys
            .iter()
            .filter(|k| !c.txn.watched.iter().any(|(w, _)| w == *k))
            .collect();
        if c.txn.watched.len() + fresh.len() > WATCH_KEYS_MAX {
            return Frame::error(format!(
                "ERR too many watched keys (at most {WATCH_KEYS_MAX} per connection)"
            ));
        }
        let mut versions = Vec::with_capacity(fresh.len());
        for key in fresh {
            match version::key_version(&self.store, key) {
                Ok(v) => versions.push((key.clone(), v)),
                Err(e) => return self.storage_failed(e),
            }
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.txn.watched.extend(versions);
        }
        Frame::ok()
    }

    /// EXEC: answers at once when there is nothing to decide, else proposes the transaction
    /// as one log entry (or forwards it) and answers when it applies.
    pub(super) fn exec(&mut self, conn: ConnId, unix: UnixMillis) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(queue) = c.txn.multi.take() else {
            return self.reply(conn, Frame::error("ERR EXEC without MULTI"));
        };
        let watched = std::mem::take(&mut c.txn.watched);
        let protocol = if c.protocol == Protocol::Resp3 { 3 } else { 2 };
        if queue.dirty {
            return self.reply(conn, exec_abort());
        }
        if let Some(why) = &self.failed {
            let msg = format!("ERR tickdb storage failure, restart the node: {why}");
            return self.reply(conn, Frame::error(msg));
        }
        if queue.ops.is_empty() && watched.is_empty() {
            return self.reply(conn, Frame::Array(Vec::new()));
        }
        let decoded = TxnEntry::new(unix, protocol, watched, queue.ops);
        let entry = decoded.encode();
        self.submit_write(conn, entry, ReplyShape::Single, Some(Decoded::Txn(decoded)));
    }
}

/// What a request inside MULTI becomes, or the error that aborts the transaction.
fn queued_op(args: &[Bytes]) -> Result<TxnOp, CommandError> {
    let Some(name) = args.first() else {
        return Err(CommandError::Syntax);
    };
    let Some(spec) = cmd::lookup(name) else {
        return Err(CommandError::unknown_command(name, &args[1..]));
    };
    if !spec.arity_ok(args.len()) {
        return Err(CommandError::WrongArity(spec.name.to_owned()));
    }
    Ok(match cmd::parse(args) {
        Err(e) => TxnOp::Error(e.to_string()),
        Ok(Command::Write(w)) => TxnOp::Write(w),
        Ok(Command::Read(r)) if super::blocking::blocking(&r).is_some() => {
            return Err(CommandError::other(
                "ERR TS.READ with BLOCK is not allowed inside a transaction: send it outside MULTI",
            ));
        }
        Ok(
            Command::Read(_)
            | Command::Conn(ConnCmd::Ping(_) | ConnCmd::Echo(_) | ConnCmd::Time | ConnCmd::Unwatch),
        ) => TxnOp::Read(args.to_vec()),
        Ok(_) => {
            return Err(CommandError::other(format!(
                "ERR '{}' is not allowed inside a transaction on tickdb: it describes one node, not the replicated data; send it outside MULTI",
                spec.name
            )));
        }
    })
}

/// Applies one committed entry of either kind at log index `index`; the replies of its
/// commands (a transaction has one: EXEC's array, or nil when a watched key changed).
pub(super) fn apply_entry<S: StoreRead>(
    db: &mut Db,
    tx: &mut Tx<'_, S>,
    decoded: &Decoded,
    index: LogIndex,
    notes: &mut Notes,
) -> Result<Vec<Frame>, StoreError> {
    // The records this entry writes carry its index: their keys' WATCH versions.
    tx.begin_entry(index.0);
    let mut modified = version::Modified::default();
    let replies = match decoded {
        Decoded::Writes(entry) => {
            notes.unix = notes.unix.max(entry.unix);
            let mut replies = Vec::with_capacity(entry.cmds.len());
            for (i, cmd) in entry.cmds.iter().enumerate() {
                modified.note(cmd);
                let expired = db.expire_stale(tx, cmd, entry.unix)?;
                notes.expired(&expired);
                let before = notes.before(tx, cmd)?;
                let reply = db.apply(tx, cmd, entry.unix)?;
                notes.after(db, cmd, &reply, &before, (i, None), entry.unix);
                replies.push(reply);
            }
            replies
        }
        Decoded::Txn(t) => vec![apply_txn(db, tx, t, &mut modified, notes)?],
    };
    version::record(tx, modified)?;
    Ok(replies)
}

fn apply_txn<S: StoreRead>(
    db: &mut Db,
    tx: &mut Tx<'_, S>,
    t: &TxnEntry,
    modified: &mut version::Modified,
    notes: &mut Notes,
) -> Result<Frame, StoreError> {
    notes.unix = notes.unix.max(t.unix);
    if !version::unchanged(tx, &t.watch)? {
        return Ok(Frame::NullArray);
    }
    let protocol = if t.protocol == 3 {
        Protocol::Resp3
    } else {
        Protocol::Resp2
    };
    let mut replies = Vec::with_capacity(t.ops.len());
    for (j, op) in t.ops.iter().enumerate() {
        replies.push(match op {
            TxnOp::Write(w) => {
                modified.note(w);
                let expired = db.expire_stale(tx, w, t.unix)?;
                notes.expired(&expired);
                let before = notes.before(tx, w)?;
                let reply = db.apply(tx, w, t.unix)?;
                notes.after(db, w, &reply, &before, (0, Some(j)), t.unix);
                reply
            }
            TxnOp::Error(e) => Frame::error(e.clone()),
            TxnOp::Read(args) => match cmd::parse(args) {
                Ok(Command::Read(r)) => {
                    db.set_read_time(t.unix);
                    db.read(&*tx, &r, protocol)?
                }
                Ok(Command::Conn(c)) => conn_op(c, t.unix),
                Ok(_) => Frame::error("ERR not a read"),
                Err(e) => Frame::error(e.to_string()),
            },
        });
    }
    Ok(Frame::Array(replies))
}

/// The connection commands a transaction runs: their replies do not depend on the node. A
/// connection outside a transaction gets the same replies (`Node::conn_command`).
pub(super) fn conn_op(c: ConnCmd, unix: UnixMillis) -> Frame {
    match c {
        ConnCmd::Ping(None) => Frame::simple("PONG"),
        ConnCmd::Ping(Some(msg)) | ConnCmd::Echo(msg) => Frame::Bulk(msg),
        ConnCmd::Time => {
            let micros = unix.0.saturating_mul(1000);
            Frame::Array(vec![
                Frame::text((micros / 1_000_000).to_string()),
                Frame::text((micros % 1_000_000).to_string()),
            ])
        }
        ConnCmd::Unwatch => Frame::ok(),
        _ => Frame::error("ERR not allowed inside a transaction"),
    }
}
