//! Blocking reads: `TS.READ key ts BLOCK ms min_count`.
//!
//! A blocked client waits on the node it is connected to, without a task or a thread: the node
//! keeps what it waits for, its deadline (a stored timer, reported by `poll_timeout`), and the
//! version of its key ([`version::key_version`], the log index that last modified the key).
//! Whenever the state machine applies entries (or installs a snapshot), each key with waiters is
//! checked once: a changed version re-evaluates that key's waiters, so a client wakes in the
//! drive round that applied the samples it waited for, on a leader and on a follower alike.
//!
//! The first evaluation reads what a plain read on the connection would: the leader confirms
//! its leadership first (ReadIndex) unless it is the only voter; a follower reads its own state
//! (with or without `READONLY`: the wait happens here, on the samples this node applies). The
//! cursor's sentinels are resolved then, once. While a client waits nothing else on its
//! connection runs, so replies stay in order; a disconnect drops the wait.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;

use super::conn::Kind;
use super::reads::ReadVia;
use super::{ConnId, Node};
use crate::Instant;
use crate::cmd::ReadCmd;
use crate::cmd::ts::{ReadFrom, TsRead};
use crate::db::version;
use crate::raft::LogIndex;
use crate::resp::{Frame, Protocol};
use crate::store::Store;
use crate::ts::TsError;
use crate::ts::query::{self, ReadRows};

/// Most clients one node keeps blocked at once; more are refused (documented in
/// docs/architecture.md's limits). Each costs a few key-version reads per applied batch.
pub const BLOCKED_MAX: usize = 10_000;

/// One blocked `TS.READ`.
#[derive(Clone, Debug)]
struct Waiting {
    key: Bytes,
    /// The resolved cursor.
    from: u64,
    min_count: u64,
    max_count: Option<u64>,
    deadline: Option<Instant>,
    /// The key's version when last evaluated.
    version: u64,
    /// The key existed when last evaluated: its removal ends the wait with an empty reply.
    existed: bool,
}

/// The node's blocked clients.
#[derive(Debug, Default)]
pub(super) struct Blocked {
    waiting: BTreeMap<ConnId, Waiting>,
    by_key: BTreeMap<Bytes, BTreeSet<ConnId>>,
    deadlines: BTreeSet<(Instant, ConnId)>,
    /// The applied index the waiters were last checked at.
    checked: LogIndex,
}

impl Blocked {
    /// Clients waiting now (INFO `blocked_clients`).
    pub(super) fn len(&self) -> usize {
        self.waiting.len()
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    fn insert(&mut self, conn: ConnId, w: Waiting) {
        self.by_key.entry(w.key.clone()).or_default().insert(conn);
        if let Some(d) = w.deadline {
            self.deadlines.insert((d, conn));
        }
        self.waiting.insert(conn, w);
    }

    fn remove(&mut self, conn: ConnId) -> Option<Waiting> {
        let w = self.waiting.remove(&conn)?;
        if let Some(set) = self.by_key.get_mut(&w.key) {
            set.remove(&conn);
            if set.is_empty() {
                self.by_key.remove(&w.key);
            }
        }
        if let Some(d) = w.deadline {
            self.deadlines.remove(&(d, conn));
        }
        Some(w)
    }

    pub(super) fn check_invariants(&self) {
        assert!(
            self.waiting.len() <= BLOCKED_MAX,
            "more blocked clients than the limit"
        );
        let indexed: usize = self.by_key.values().map(BTreeSet::len).sum();
        assert_eq!(
            indexed,
            self.waiting.len(),
            "every waiter is indexed by its key once"
        );
        for (d, conn) in &self.deadlines {
            assert_eq!(
                self.waiting.get(conn).and_then(|w| w.deadline),
                Some(*d),
                "a deadline of a client that does not wait for it"
            );
        }
    }
}

/// The blocking form of a read, if it is one.
pub(super) fn blocking(r: &ReadCmd) -> Option<&ReadFrom> {
    match r {
        ReadCmd::Ts(TsRead::Read(q)) if q.block.is_some() => Some(q),
        _ => None,
    }
}

/// Whether a request blocks (decided before it parses, for ordering: it waits for everything
/// before it on its connection, and everything after it waits for its reply).
pub(super) fn blocks(args: &[Bytes]) -> bool {
    args.len() > 3
        && args[0].eq_ignore_ascii_case(b"ts.read")
        && args[3..].iter().any(|a| a.eq_ignore_ascii_case(b"BLOCK"))
}

/// What one evaluation of a waiter decided.
enum Verdict {
    Reply(Frame),
    Wait { version: u64, existed: bool },
}

impl<S: Store> Node<S> {
    /// Starts a `TS.READ ... BLOCK` on `conn`: nothing before it is pending (it orders as
    /// [`Kind::Other`]). Marks the connection blocked until it is answered.
    pub(super) fn blocking_read(&mut self, conn: ConnId, r: ReadCmd) {
        if self.blocked.len() >= BLOCKED_MAX {
            let msg = format!(
                "ERR too many blocked clients on this node (at most {BLOCKED_MAX}); retry later or read without BLOCK"
            );
            return self.reply(conn, Frame::error(msg));
        }
        let multi_voter_leader = self.is_leader() && !self.sole_voter();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.blocked = true;
        if multi_voter_leader && c.remote.is_none() {
            c.reads += 1;
            c.reads_via = ReadVia::ReadIndex;
            let ctx = self.next_read;
            self.next_read += 1;
            self.reads.insert(ctx, (conn, r));
            self.raft.read_index(self.now, ctx);
        } else {
            self.start_wait(conn, &r, false);
        }
    }

    /// The first evaluation: answers at once if enough samples qualify (or the connection is
    /// a leader's internal one, which never waits), else waits. `pending`: counted as a read
    /// in flight (the ReadIndex path).
    pub(super) fn start_wait(&mut self, conn: ConnId, r: &ReadCmd, pending: bool) {
        let Some(q) = blocking(r) else { return };
        let Some(block) = q.block else { return };
        if pending && let Some(c) = self.conns.get_mut(&conn) {
            c.reads = c.reads.saturating_sub(1);
        }
        let from = match query::resolve_cursor(&self.store, &q.key, q.cursor) {
            Ok(from) => from,
            Err(e) => {
                let frame = self.ts_error(e);
                return self.unblock(conn, frame);
            }
        };
        // A leader's internal connection (a forward) never waits: it answers at once.
        let remote = self.conns.get(&conn).is_none_or(|c| c.remote.is_some());
        let mut w = Waiting {
            key: q.key.clone(),
            from,
            min_count: block.min_count,
            max_count: q.max_count,
            deadline: (block.ms > 0)
                .then(|| self.now.saturating_add(Duration::from_millis(block.ms))),
            version: 0,
            existed: false,
        };
        match self.evaluate(conn, &w, remote) {
            Verdict::Reply(frame) => self.unblock(conn, frame),
            Verdict::Wait { version, existed } => {
                w.version = version;
                w.existed = existed;
                self.blocked.insert(conn, w);
            }
        }
    }

    /// Reads what `w` waits for: the reply if enough samples qualify (or `flush`: whatever
    /// qualifies), the key was removed, or it failed; else the key's version to wait past.
    fn evaluate(&mut self, conn: ConnId, w: &Waiting, flush: bool) -> Verdict {
        let protocol = self
            .conns
            .get(&conn)
            .map_or(Protocol::Resp2, |c| c.protocol);
        let version = match version::key_version(&self.store, &w.key) {
            Ok(v) => v,
            Err(e) => return Verdict::Reply(self.storage_failed(e)),
        };
        // Count first (at most min_count samples), so a long wait does not re-read a long
        // history on every wake; the reply is read only once it is due.
        let limit = if flush {
            w.max_count
        } else {
            Some(w.min_count)
        };
        let rows: ReadRows = match query::read_from(&self.store, &w.key, w.from, limit) {
            Ok(rows) => rows,
            Err(e) => return Verdict::Reply(self.ts_error(e)),
        };
        let enough = rows.as_ref().is_some_and(|r| r.len() as u64 >= w.min_count);
        match rows {
            None if flush || w.existed => Verdict::Reply(Frame::Array(Vec::new())),
            Some(rows) if flush => Verdict::Reply(query::read_reply(&rows, protocol)),
            Some(_) if enough => self.evaluate(conn, w, true),
            rows => Verdict::Wait {
                version,
                existed: rows.is_some(),
            },
        }
    }

    /// After entries applied (or a snapshot installed): re-evaluates the waiters of every key
    /// whose version moved.
    pub(super) fn wake_blocked(&mut self) {
        if self.blocked.waiting.is_empty() || self.applied == self.blocked.checked {
            self.blocked.checked = self.applied;
            return;
        }
        self.blocked.checked = self.applied;
        let keys: Vec<Bytes> = self.blocked.by_key.keys().cloned().collect();
        for key in keys {
            let now = match version::key_version(&self.store, &key) {
                Ok(v) => v,
                Err(e) => {
                    let frame = self.storage_failed(e);
                    return self.fail_blocked(&frame);
                }
            };
            let conns: Vec<ConnId> = self.blocked.by_key[&key].iter().copied().collect();
            for conn in conns {
                let Some(w) = self.blocked.waiting.get(&conn) else {
                    continue;
                };
                if w.version == now {
                    continue;
                }
                let w = w.clone();
                match self.evaluate(conn, &w, false) {
                    Verdict::Reply(frame) => {
                        self.blocked.remove(conn);
                        self.unblock(conn, frame);
                    }
                    Verdict::Wait { version, existed } => {
                        if let Some(w) = self.blocked.waiting.get_mut(&conn) {
                            w.version = version;
                            w.existed = existed;
                        }
                    }
                }
            }
        }
    }

    /// Answers the waiters whose time is up with whatever qualifies now.
    pub(super) fn expire_blocked(&mut self) {
        while let Some(&(deadline, conn)) = self.blocked.deadlines.first() {
            if deadline > self.now {
                break;
            }
            let Some(w) = self.blocked.remove(conn) else {
                continue;
            };
            let frame = match self.evaluate(conn, &w, true) {
                Verdict::Reply(frame) => frame,
                Verdict::Wait { .. } => Frame::Array(Vec::new()),
            };
            self.unblock(conn, frame);
        }
    }

    /// Every waiter is a client connection that is marked blocked (so nothing behind it runs).
    pub(super) fn check_blocked(&self) {
        self.blocked.check_invariants();
        for conn in self.blocked.waiting.keys() {
            let c = self.conns.get(conn);
            assert!(c.is_some(), "a waiter without a connection");
            assert!(
                c.is_some_and(|c| c.blocked),
                "a waiter whose connection is not blocked"
            );
            assert!(
                c.is_some_and(|c| c.remote.is_none()),
                "a leader's internal connection waits"
            );
        }
    }

    /// A blocked client went away: its wait ends without a reply.
    pub(super) fn drop_blocked(&mut self, conn: ConnId) {
        self.blocked.remove(conn);
    }

    /// The store failed: every waiter gets the failure.
    pub(super) fn fail_blocked(&mut self, frame: &Frame) {
        let conns: Vec<ConnId> = self.blocked.waiting.keys().copied().collect();
        for conn in conns {
            self.blocked.remove(conn);
            self.unblock(conn, frame.clone());
        }
    }

    /// Replies to a blocked connection and lets the requests behind it run.
    fn unblock(&mut self, conn: ConnId, frame: Frame) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.blocked = false;
        }
        self.answer(conn, Kind::Other, frame);
    }

    fn ts_error(&mut self, e: TsError) -> Frame {
        match e {
            TsError::Command(c) => Frame::error(c.to_string()),
            TsError::Store(s) => self.storage_failed(s),
        }
    }
}
