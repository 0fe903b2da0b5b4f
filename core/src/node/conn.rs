//! Client connections: their state, how a request orders against the ones pending on its
//! connection (writes behind writes, reads behind reads on the same path, anything else behind
//! everything), replies, and running the requests that waited once what they waited for is
//! answered.

use std::collections::VecDeque;

use bytes::Bytes;

use super::cluster::Remote;
use super::peer::{self, ForwardItem, PeerBody};
use super::reads::ReadVia;
use super::{ConnId, ConnKind, Node, Output, blocking, txn};
use crate::cmd::{self, ClusterCmd};
use crate::raft::NodeId;
use crate::resp::{Frame, Protocol, encode};
use crate::store::Store;
use crate::{Instant, UnixMillis};

#[derive(Debug)]
pub(super) struct Conn {
    pub(super) kind: ConnKind,
    pub(super) addr: String,
    pub(super) name: Option<Bytes>,
    pub(super) lib_name: Option<Bytes>,
    pub(super) lib_ver: Option<Bytes>,
    pub(super) protocol: Protocol,
    pub(super) authenticated: bool,
    pub(super) readonly: bool,
    pub(super) created: Instant,
    pub(super) last_active: Instant,
    pub(super) last_cmd: &'static str,
    /// Writes proposed or forwarded and not yet answered.
    pub(super) writes: u64,
    /// Reads waiting for a ReadIndex round or a forward, not yet answered.
    pub(super) reads: u64,
    /// Where those reads wait; another read may join them only on the same path, so replies
    /// keep their order.
    pub(super) reads_via: ReadVia,
    /// Requests waiting for earlier ones, in order.
    pub(super) deferred: VecDeque<Deferred>,
    /// Samples buffered by BATCH_SET: (key, timestamp, value).
    pub(super) batch: Vec<(Bytes, u64, f64)>,
    /// QUIT or a protocol error: nothing more is read or answered after the pending replies.
    pub(super) closing: bool,
    /// Follower: requests for the leader not sent yet (sent by the next `poll_output`), and
    /// their approximate size.
    pub(super) fwd: Vec<ForwardItem>,
    pub(super) fwd_bytes: usize,
    /// Follower: the forward in flight. One at a time per connection keeps its order even if
    /// the network reorders or the leader changes.
    pub(super) fwd_inflight: Option<u64>,
    /// Leader: set on the internal connection that runs one forwarded message.
    pub(super) remote: Option<Remote>,
    /// MULTI's queue and WATCHed keys.
    pub(super) txn: txn::ConnTxn,
    /// A `TS.READ ... BLOCK` runs or waits: nothing behind it runs until it is answered.
    pub(super) blocked: bool,
}

impl Conn {
    /// Notes a request it runs now: `name` as the command table spells it (`CLIENT LIST`'s
    /// `cmd`), `now` as its last activity.
    pub(super) fn ran(&mut self, now: Instant, name: &'static str) {
        self.last_active = now;
        self.last_cmd = name;
    }

    pub(super) fn new(kind: ConnKind, addr: String, authenticated: bool, now: Instant) -> Self {
        Self {
            kind,
            addr,
            name: None,
            lib_name: None,
            lib_ver: None,
            protocol: Protocol::Resp2,
            authenticated,
            readonly: false,
            created: now,
            last_active: now,
            last_cmd: "NULL",
            writes: 0,
            reads: 0,
            reads_via: ReadVia::ReadIndex,
            deferred: VecDeque::new(),
            batch: Vec::new(),
            closing: false,
            fwd: Vec::new(),
            fwd_bytes: 0,
            fwd_inflight: None,
            remote: None,
            txn: txn::ConnTxn::default(),
            blocked: false,
        }
    }

    /// Whether a request of `kind` may run now given what is pending ahead of it (the caller
    /// checks `deferred` first). Writes queue behind writes (the log orders them) and reads
    /// behind reads on the same path; anything else waits for everything before it.
    pub(super) fn ready(&self, kind: Kind, path: Option<ReadVia>) -> bool {
        if self.blocked
            || self.fwd_inflight.is_some()
            || self.fwd_bytes >= peer::FORWARD_BUFFER_BYTES
        {
            return false;
        }
        match kind {
            Kind::Write => self.reads == 0,
            Kind::Read => self.writes == 0 && (self.reads == 0 || path == Some(self.reads_via)),
            Kind::Other => self.writes == 0 && self.reads == 0,
        }
    }
}

#[derive(Debug)]
pub(super) enum Deferred {
    Request {
        args: Vec<Bytes>,
        unix: UnixMillis,
    },
    ProtocolError(String),
    /// A forwarded write on a leader's remote connection: an encoded, unvalidated entry.
    Write {
        entry: Vec<u8>,
        count: bool,
    },
    /// A cluster administration command a follower forwarded.
    Cluster {
        cmd: ClusterCmd,
        from: NodeId,
    },
}

impl Deferred {
    fn kind(&self) -> Kind {
        match self {
            Self::Request { args, .. } => kind(args.first().and_then(|n| cmd::lookup(n)), args),
            Self::Write { .. } => Kind::Write,
            Self::ProtocolError(_) | Self::Cluster { .. } => Kind::Other,
        }
    }
}

/// How a request orders against the ones pending before it on its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Goes into the log.
    Write,
    /// Reads the state machine.
    Read,
    /// Connection and server commands, errors, BATCH_SET.
    Other,
}

impl<S: Store> Node<S> {
    pub(super) fn connect(&mut self, conn: ConnId, kind: ConnKind, addr: String) {
        self.stats.connections_received += 1;
        let max = self.config.max_clients;
        if max > 0 && self.client_count() as u64 >= max {
            self.stats.rejected_connections += 1;
            let frame = Frame::error("ERR max number of clients reached");
            self.outputs.push_back(Output::Reply {
                conn,
                frame,
                protocol: Protocol::Resp2,
            });
            self.outputs.push_back(Output::Close { conn });
            return;
        }
        let authenticated = self.config.requirepass.is_none();
        self.conns
            .insert(conn, Conn::new(kind, addr, authenticated, self.now));
    }

    /// Client connections (not the leader's internal ones for forwarded requests).
    pub(super) fn client_count(&self) -> usize {
        self.conns.len() - self.remotes
    }

    pub(super) fn reply(&mut self, conn: ConnId, frame: Frame) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if frame.is_error() {
            self.stats.error_replies += 1;
        }
        if let Some(r) = &mut c.remote {
            let mut bytes = Vec::new();
            encode(&frame, Protocol::Resp3, &mut bytes);
            if bytes.len() > peer::MAX_FORWARD_REPLY_BYTES {
                let msg = format!(
                    "ERR reply of {} bytes is too large to forward from the leader: send the read to the leader, or use READONLY on this node",
                    bytes.len()
                );
                bytes = Vec::new();
                encode(&Frame::error(msg), Protocol::Resp3, &mut bytes);
            }
            r.replies.push(bytes);
            if r.replies.len() >= r.expected {
                let (from, id, session) = (r.from, r.id, r.session);
                let replies = std::mem::take(&mut r.replies);
                self.conns.remove(&conn);
                self.remotes -= 1;
                let reply = PeerBody::ForwardReply {
                    id,
                    session,
                    replies,
                };
                self.send_peer(from, reply);
            }
            return;
        }
        if frame.is_ok() {
            let protocol = c.protocol;
            return self.reply_ok(conn, protocol);
        }
        self.outputs.push_back(Output::Reply {
            conn,
            frame,
            protocol: c.protocol,
        });
    }

    /// Queues a `+OK` for `conn`, joined with the `+OK`s queued for it just before into one
    /// [`Output::Oks`]. A reply per `BATCH_SET` (or per `SET` of a pipeline) was one output
    /// to pass through the driver and the connection's writer each: about 7% of the node
    /// thread's time per `BATCH_SET` (docs/benchmarks.md, "Session 16").
    fn reply_ok(&mut self, conn: ConnId, protocol: Protocol) {
        match self.outputs.back_mut() {
            Some(Output::Oks { conn: c, count }) if *c == conn && *count < u32::MAX => {
                *count += 1;
            }
            Some(last @ Output::Reply { .. }) if last.is_ok_to(conn) => {
                *last = Output::Oks { conn, count: 2 };
            }
            _ => self.outputs.push_back(Output::Reply {
                conn,
                frame: Frame::ok(),
                protocol,
            }),
        }
    }

    pub(super) fn protocol_error(&mut self, conn: ConnId, error: String) {
        self.reply(conn, Frame::error(format!("ERR {error}")));
        if let Some(c) = self.conns.get_mut(&conn) {
            c.closing = true;
        }
        self.outputs.push_back(Output::Close { conn });
    }

    /// Answers a pending write or read of a connection and lets the requests behind it run.
    pub(super) fn answer(&mut self, conn: ConnId, kind: Kind, frame: Frame) {
        self.reply(conn, frame);
        if let Some(c) = self.conns.get_mut(&conn) {
            match kind {
                Kind::Write => c.writes = c.writes.saturating_sub(1),
                Kind::Read => {
                    c.reads = c.reads.saturating_sub(1);
                    // Nothing else reads while a TS.READ ... BLOCK runs: this answers its
                    // ReadIndex round (which failed), so it no longer holds the connection.
                    c.blocked = false;
                }
                Kind::Other => {}
            }
            if !c.deferred.is_empty() {
                self.to_resume.push(conn);
            }
        }
    }

    /// Runs a connection's deferred requests until one of them must wait again.
    pub(super) fn resume(&mut self, conn: ConnId) {
        loop {
            let Some(c) = self.conns.get(&conn) else {
                return;
            };
            let Some(front) = c.deferred.front() else {
                return;
            };
            let k = front.kind();
            let path = (k == Kind::Read).then(|| self.read_via(conn)).flatten();
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            if !c.ready(k, path) {
                return;
            }
            let Some(next) = c.deferred.pop_front() else {
                return;
            };
            match next {
                Deferred::Request { args, unix } => self.request(conn, args, unix),
                Deferred::ProtocolError(e) => return self.protocol_error(conn, e),
                Deferred::Write { entry, count } => self.forwarded_write(conn, entry, count),
                Deferred::Cluster { cmd, from } =>
                // Membership records do not read the entry's clock.
                {
                    self.cluster_admin(conn, cmd, Some(from), UnixMillis(0))
                }
            }
        }
    }
}

/// How a request orders against the ones before it (decided from the name alone).
pub(super) fn kind(spec: Option<&cmd::CommandSpec>, args: &[Bytes]) -> Kind {
    match spec {
        // PUBLISH is a log entry too (see `pubsub`), though Redis does not flag it a write.
        Some(s) if s.is_write() || s.name == "publish" => Kind::Write,
        Some(_) if blocking::blocks(args) => Kind::Other,
        // DBSIZE is answered from a local counter like a connection command.
        Some(s) if s.flags.contains(&"readonly") && s.name != "dbsize" => Kind::Read,
        _ => Kind::Other,
    }
}
