//! The read path: a read is served from the local state at once (the only voter, or a
//! `READONLY` follower), after a ReadIndex round confirms the leader's leadership and the state
//! has applied the confirmed index, or forwarded to the leader.

use bytes::Bytes;

use super::conn::Kind;
use super::peer::ForwardItem;
use super::{ConnId, Node, blocking, cluster_down, not_leader};
use crate::UnixMillis;
use crate::cmd::ReadCmd;
use crate::resp::{Frame, Protocol};
use crate::store::Store;

/// Where a connection's pending reads wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReadVia {
    /// This node leads and confirms its leadership with a heartbeat round (ReadIndex).
    ReadIndex,
    /// Forwarded to the leader.
    Forward,
}

/// How this node can serve a read for a connection right now.
enum ReadPath {
    /// From the local state at once: the only voter, or a follower read on a `READONLY`
    /// connection (possibly stale).
    Local,
    Via(ReadVia),
    /// Not at all: the error to answer.
    Refuse(Frame),
}

impl<S: Store> Node<S> {
    /// How a read on `conn` would be served now (`None`: refused).
    pub(super) fn read_via(&self, conn: ConnId) -> Option<ReadVia> {
        match self.read_path(conn) {
            ReadPath::Via(v) => Some(v),
            ReadPath::Local | ReadPath::Refuse(_) => None,
        }
    }

    fn read_path(&self, conn: ConnId) -> ReadPath {
        let Some(c) = self.conns.get(&conn) else {
            return ReadPath::Refuse(Frame::Null);
        };
        if self.is_leader() {
            // The only voter cannot be deposed without its knowledge: its state is current.
            return if self.sole_voter() && c.reads == 0 {
                ReadPath::Local
            } else {
                ReadPath::Via(ReadVia::ReadIndex)
            };
        }
        if c.remote.is_some() {
            return ReadPath::Refuse(not_leader());
        }
        if c.readonly {
            return ReadPath::Local;
        }
        match self.raft.leader() {
            Some(_) => ReadPath::Via(ReadVia::Forward),
            None => ReadPath::Refuse(cluster_down()),
        }
    }

    pub(super) fn read(&mut self, conn: ConnId, r: ReadCmd, args: Vec<Bytes>, unix: UnixMillis) {
        match self.read_path(conn) {
            ReadPath::Local => self.serve_read(conn, &r, false),
            ReadPath::Refuse(frame) => self.reply(conn, frame),
            ReadPath::Via(via) => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                c.reads += 1;
                c.reads_via = via;
                match via {
                    ReadVia::ReadIndex => {
                        let ctx = self.next_read;
                        self.next_read += 1;
                        self.reads.insert(ctx, (conn, r));
                        self.raft.read_index(self.now, ctx);
                    }
                    ReadVia::Forward => self.buffer_forward(conn, ForwardItem::Read { args, unix }),
                }
            }
        }
    }

    /// Answers a read from the local state; `pending`: it was counted as a pending read.
    fn serve_read(&mut self, conn: ConnId, r: &ReadCmd, pending: bool) {
        if blocking::blocking(r).is_some() {
            return self.start_wait(conn, r, pending);
        }
        let protocol = self
            .conns
            .get(&conn)
            .map_or(Protocol::Resp2, |c| c.protocol);
        self.db.set_read_time(self.unix_now());
        let reply = match self.db.read(&self.store, r, protocol) {
            Ok(frame) => frame,
            Err(e) => self.storage_failed(e),
        };
        if pending {
            self.answer(conn, Kind::Read, reply);
        } else {
            self.reply(conn, reply);
        }
    }

    pub(super) fn serve_ready_reads(&mut self) {
        while let Some(&(index, ctx)) = self.reads_ready.front() {
            if index > self.applied {
                break;
            }
            self.reads_ready.pop_front();
            if let Some((conn, r)) = self.reads.remove(&ctx) {
                self.serve_read(conn, &r, true);
            }
        }
    }
}
