//! The node's cluster side: messages from peers, forwarding a follower's requests to the leader
//! and running them there, leadership transfer, and the `CLUSTER` commands.
//!
//! # Forwarding
//!
//! A follower buffers the writes (and, on connections without `READONLY`, the reads) a client
//! sends and ships them to the leader in one [`PeerBody::Forward`] per connection, at most one
//! in flight per connection so the client's order survives a reordering network or a leader
//! change. The leader runs the items on an internal connection, exactly as it runs its own
//! clients' requests (group commit, ReadIndex), and answers with one
//! [`PeerBody::ForwardReply`]; the follower hands each reply to the waiting client. A forward
//! unanswered within the request timeout is answered `-TIMEOUT` (the outcome is unknown).

use std::fmt::Write as _;

use bytes::Bytes;

use super::conn::{Conn, Deferred, Kind};
use super::peer::{self, ForwardItem, PeerBody};
use super::write::ReplyShape;
use super::{
    ConnId, ConnKind, Node, Output, REMOTE_CONN_BASE, REMOTE_MAX, cluster_down, not_leader,
};
use crate::cmd::{ClusterCmd, MetaWrite, WriteCmd};
use crate::raft::{ConfChange, NodeId, PeerState, Role};
use crate::resp::{self, Frame, Protocol};
use crate::store::Store;
use crate::{Instant, UnixMillis};

/// Redis Cluster's slot count: tickdb is one shard holding every slot.
const SLOTS: i64 = 16384;

/// The leader's side of one forwarded message: the replies gathered so far.
#[derive(Debug)]
pub(super) struct Remote {
    pub(super) from: NodeId,
    pub(super) id: u64,
    /// The forwarding process's session, echoed in the reply.
    pub(super) session: u64,
    pub(super) expected: usize,
    pub(super) replies: Vec<Vec<u8>>,
}

/// A follower's forward in flight.
#[derive(Debug)]
pub(super) struct Forward {
    conn: ConnId,
    pub(super) to: NodeId,
    /// Per item: whether it counts as a write (else a read).
    writes: Vec<bool>,
    pub(super) deadline: Instant,
}

impl<S: Store> Node<S> {
    pub(super) fn send_peer(&mut self, to: NodeId, body: PeerBody) {
        let c = &self.config.cluster;
        let bytes = peer::encode(c.cluster_id, c.secret.as_deref(), c.id, to, body);
        self.stats.peer_messages_out += 1;
        self.stats.peer_bytes_out += bytes.len() as u64;
        self.outputs.push_back(Output::Send { to, bytes });
    }

    pub(super) fn peer_input(&mut self, from: NodeId, bytes: &[u8]) {
        self.stats.peer_messages_in += 1;
        self.stats.peer_bytes_in += bytes.len() as u64;
        let c = &self.config.cluster;
        let body = match peer::decode(bytes, c.cluster_id, c.secret.as_deref(), c.id, from) {
            Ok(body) => body,
            Err(e) => {
                self.stats.peer_messages_dropped += 1;
                tracing::debug!(from = from.0, error = %e, "dropped a peer message");
                self.raft.report_peer_error(from);
                return;
            }
        };
        if self.failed.is_some() {
            return;
        }
        match body {
            PeerBody::Raft(msg) => {
                if let Err(e) = self
                    .raft
                    .handle_message(&mut self.store, self.now, from, msg)
                {
                    self.fail(e);
                }
            }
            PeerBody::Forward {
                id,
                session,
                protocol,
                items,
            } => {
                let window = self.forwards_seen.entry(from).or_default();
                if window.first_time(session, id) {
                    self.forwarded(from, id, session, protocol, items);
                } else {
                    tracing::debug!(from = from.0, id, "dropped a duplicated forward");
                }
            }
            PeerBody::ForwardReply {
                id,
                session,
                replies,
            } => {
                // A reply to this process's forward, not to one its previous incarnation
                // sent under the same id before a restart.
                if session == self.config.cluster.seed
                    && self.forwards.get(&id).is_some_and(|f| f.to == from)
                {
                    self.forward_done(id, replies);
                }
            }
        }
    }

    /// Queues an item for the leader on a follower's connection; counted by the caller.
    pub(super) fn buffer_forward(&mut self, conn: ConnId, item: ForwardItem) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.fwd_bytes += item.size_hint();
            c.fwd.push(item);
            self.fwd_dirty.insert(conn);
        }
    }

    /// Sends each connection's buffered items to the leader, one forward per connection.
    pub(super) fn send_forwards(&mut self) {
        let leader = self.raft.leader().filter(|l| *l != self.raft.id());
        let protocol_of = |c: &Conn| if c.protocol == Protocol::Resp3 { 3 } else { 2 };
        for conn in std::mem::take(&mut self.fwd_dirty) {
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            if c.fwd_inflight.is_some() || c.fwd.is_empty() {
                continue;
            }
            let items = std::mem::take(&mut c.fwd);
            c.fwd_bytes = 0;
            let writes: Vec<bool> = items
                .iter()
                .map(|i| !matches!(i, ForwardItem::Read { .. }))
                .collect();
            let Some(to) = leader else {
                // The leader went away (or this node leads now) before the items left: they
                // were never executed, so the client may retry them.
                let frame = if self.is_leader() {
                    not_leader()
                } else {
                    cluster_down()
                };
                for w in writes {
                    let kind = if w { Kind::Write } else { Kind::Read };
                    self.answer(conn, kind, frame.clone());
                }
                continue;
            };
            let id = self.next_forward;
            self.next_forward += 1;
            c.fwd_inflight = Some(id);
            let protocol = protocol_of(c);
            let deadline = self.now.saturating_add(self.request_timeout());
            self.forwards.insert(
                id,
                Forward {
                    conn,
                    to,
                    writes,
                    deadline,
                },
            );
            self.stats.forwards_sent += 1;
            let session = self.config.cluster.seed;
            self.send_peer(
                to,
                PeerBody::Forward {
                    id,
                    session,
                    protocol,
                    items,
                },
            );
        }
    }

    /// A forward came back (or timed out: `replies` empty): answers its items in order.
    pub(super) fn forward_done(&mut self, id: u64, replies: Vec<Vec<u8>>) {
        let Some(f) = self.forwards.remove(&id) else {
            return;
        };
        if let Some(c) = self.conns.get_mut(&f.conn) {
            c.fwd_inflight = None;
        }
        let mut replies = replies.into_iter();
        for write in f.writes {
            let frame = match replies.next() {
                Some(bytes) => match resp::decode(&bytes, &resp::Limits::default()) {
                    Ok(Some((frame, _))) => frame,
                    _ => Frame::error("ERR the leader sent a reply that does not decode"),
                },
                None if write => Frame::error(
                    "TIMEOUT the leader did not answer in time: the write may or may not have been applied",
                ),
                None => Frame::error("TIMEOUT the leader did not answer the read in time; retry"),
            };
            let kind = if write { Kind::Write } else { Kind::Read };
            self.answer(f.conn, kind, frame);
        }
        // The connection may have more buffered behind this forward; `answer` queued the
        // requests deferred behind it.
        if self.conns.get(&f.conn).is_some_and(|c| !c.fwd.is_empty()) {
            self.fwd_dirty.insert(f.conn);
        }
    }

    /// Leader: runs a follower's forwarded items on an internal connection, in order.
    fn forwarded(
        &mut self,
        from: NodeId,
        id: u64,
        session: u64,
        protocol: u8,
        items: Vec<ForwardItem>,
    ) {
        if items.is_empty() {
            return self.send_peer(
                from,
                PeerBody::ForwardReply {
                    id,
                    session,
                    replies: Vec::new(),
                },
            );
        }
        if self.remotes >= REMOTE_MAX || !self.is_leader() {
            let frame = if self.is_leader() {
                Frame::error("TRYAGAIN the leader has too many forwarded requests in flight")
            } else {
                not_leader()
            };
            let mut bytes = Vec::new();
            resp::encode(&frame, Protocol::Resp3, &mut bytes);
            let replies = vec![bytes; items.len()];
            let reply = PeerBody::ForwardReply {
                id,
                session,
                replies,
            };
            return self.send_peer(from, reply);
        }
        self.stats.forwards_served += 1;
        let conn = ConnId(REMOTE_CONN_BASE + self.next_remote);
        self.next_remote += 1;
        let mut c = Conn::new(ConnKind::Tcp, format!("node-{}", from.0), true, self.now);
        c.protocol = if protocol == 3 {
            Protocol::Resp3
        } else {
            Protocol::Resp2
        };
        c.remote = Some(Remote {
            from,
            id,
            session,
            expected: items.len(),
            replies: Vec::with_capacity(items.len()),
        });
        for item in items {
            c.deferred.push_back(match item {
                ForwardItem::Write { entry, count } => Deferred::Write { entry, count },
                ForwardItem::Read { args, unix } => Deferred::Request { args, unix },
                ForwardItem::Cluster(cmd) => Deferred::Cluster { cmd, from },
            });
        }
        self.conns.insert(conn, c);
        self.remotes += 1;
        self.resume(conn);
    }

    /// Leader: a write a follower forwarded. The entry is untrusted bytes: it is decoded before
    /// it is proposed, so nothing that would fail to apply reaches the log.
    pub(super) fn forwarded_write(&mut self, conn: ConnId, entry: Vec<u8>, count: bool) {
        let decoded = match super::log::Decoded::decode(&entry) {
            Ok(d) => d,
            Err(e) => return self.reply(conn, Frame::error(format!("ERR forwarded write: {e}"))),
        };
        let shape = if count {
            ReplyShape::Count
        } else {
            ReplyShape::Single
        };
        self.submit_write(conn, entry, shape, Some(decoded));
    }

    /// Leader: hands the leadership to follower `to`.
    pub(super) fn failover_to(&mut self, conn: ConnId, to: NodeId) {
        let frame = match self.raft.transfer_leadership(&mut self.store, self.now, to) {
            Ok(()) => {
                tracing::info!(to = to.0, "transferring the leadership");
                Frame::ok()
            }
            Err(e) => Frame::error(format!("ERR failover to node {}: {e}", to.0)),
        };
        self.reply(conn, frame);
    }

    pub(super) fn cluster_command(
        &mut self,
        conn: ConnId,
        cmd: ClusterCmd,
        unix: UnixMillis,
    ) -> Option<Frame> {
        Some(match cmd {
            ClusterCmd::Info => Frame::Verbatim {
                format: *b"txt",
                text: Bytes::from(self.cluster_info_text()),
            },
            ClusterCmd::MyId => Frame::bulk(Bytes::from(node_name(self.raft.id()))),
            ClusterCmd::Nodes => Frame::Verbatim {
                format: *b"txt",
                text: Bytes::from(self.cluster_nodes()),
            },
            ClusterCmd::Slots => self.cluster_slots(),
            ClusterCmd::Shards => self.cluster_shards(),
            ClusterCmd::Failover { force: true } => {
                if self.is_leader() {
                    return Some(Frame::error(
                        "ERR You should send CLUSTER FAILOVER to a replica",
                    ));
                }
                // Redis's FORCE / TAKEOVER: do not wait for the leader; campaign now. PreVote
                // still refuses while a majority hears from a live leader.
                match self.raft.campaign(&mut self.store, self.now) {
                    Ok(()) => Frame::ok(),
                    Err(e) => self.storage_failed(e),
                }
            }
            cmd @ (ClusterCmd::Failover { force: false }
            | ClusterCmd::AddNode { .. }
            | ClusterCmd::Forget { .. }) => {
                self.cluster_admin(conn, cmd, None, unix);
                return None;
            }
        })
    }

    /// A command that changes the cluster: runs on the leader (`from`: the follower that
    /// forwarded it), is forwarded from a follower, and answers `conn` either way.
    pub(super) fn cluster_admin(
        &mut self,
        conn: ConnId,
        cmd: ClusterCmd,
        from: Option<NodeId>,
        unix: UnixMillis,
    ) {
        if !self.is_leader() {
            let remote = self.conns.get(&conn).is_some_and(|c| c.remote.is_some());
            if remote {
                return self.reply(conn, not_leader());
            }
            if self.raft.leader().is_none() {
                return self.reply(conn, cluster_down());
            }
            if let Some(c) = self.conns.get_mut(&conn) {
                c.writes += 1;
            }
            return self.buffer_forward(conn, ForwardItem::Cluster(cmd));
        }
        match cmd {
            ClusterCmd::Failover { .. } => match from {
                Some(to) => self.failover_to(conn, to),
                None => self.reply(
                    conn,
                    Frame::error("ERR You should send CLUSTER FAILOVER to a replica"),
                ),
            },
            ClusterCmd::AddNode {
                id,
                client_addr,
                cluster_port,
            } => {
                let change = ConfChange::AddLearner(NodeId(id));
                if let Err(e) = self
                    .raft
                    .propose_conf_change(&mut self.store, self.now, change)
                {
                    return self.reply(conn, Frame::error(format!("ERR CLUSTER ADDNODE: {e}")));
                }
                tracing::info!(id, %client_addr, cluster_port, "adding a node as a learner");
                let w = MetaWrite::SetMember {
                    id,
                    client_addr,
                    cluster_port,
                };
                self.write(conn, vec![WriteCmd::Meta(w)], ReplyShape::Single, unix);
            }
            ClusterCmd::Forget { id } => {
                // The address record goes first and carries the reply: when the leader
                // removes itself it may step down before any later entry commits.
                let change = ConfChange::Remove(NodeId(id));
                if let Err(e) = self.raft.check_conf_change(&change) {
                    return self.reply(conn, Frame::error(format!("ERR CLUSTER FORGET: {e}")));
                }
                tracing::info!(id, "removing a node from the cluster");
                let w = MetaWrite::ForgetMember { id };
                self.write(conn, vec![WriteCmd::Meta(w)], ReplyShape::Single, unix);
                self.propose_round();
                if let Err(e) = self
                    .raft
                    .propose_conf_change(&mut self.store, self.now, change)
                {
                    tracing::error!(id, error = %e, "removing a node after its record went");
                }
            }
            ClusterCmd::Info
            | ClusterCmd::MyId
            | ClusterCmd::Nodes
            | ClusterCmd::Slots
            | ClusterCmd::Shards => self.reply(conn, Frame::error("ERR not a cluster change")),
        }
    }

    /// Leader: promotes learners that have caught up with the commit index (one change at a
    /// time; refused changes are retried at the next timer).
    pub(super) fn promote_caught_up_learners(&mut self) {
        if !self.is_leader() {
            return;
        }
        let commit = self.raft.commit_index();
        let ready: Vec<NodeId> = self
            .raft
            .peers()
            .into_iter()
            .filter(|p| !p.voter && p.match_index >= commit && p.match_index.0 > 0)
            .map(|p| p.id)
            .collect();
        for id in ready {
            let change = ConfChange::Promote(id);
            if self
                .raft
                .propose_conf_change(&mut self.store, self.now, change)
                .is_ok()
            {
                tracing::info!(id = id.0, "promoting a caught-up learner to voter");
            }
        }
    }

    /// Where member `id` is reached: (host, client port, cluster port); the replicated
    /// record wins over the config, `("?", 0, 0)` when neither knows it.
    pub(super) fn member_addr(&self, id: NodeId) -> (String, u16, u16) {
        let split = |client_addr: &str, cport: u16| {
            let (host, port) = client_addr
                .rsplit_once(':')
                .map_or((client_addr, "0"), |(h, p)| (h, p));
            (host.to_string(), port.parse().unwrap_or(0), cport)
        };
        if let Some(m) = self.db.meta().members.get(&id.0) {
            return split(&m.client_addr, m.cluster_port);
        }
        self.config
            .cluster
            .members
            .iter()
            .find(|m| m.id == id)
            .map_or((String::from("?"), 0, 0), |m| {
                split(&m.client_addr, m.cluster_port)
            })
    }

    /// Every member, leader first, as (id, is the leader, state as this node sees it).
    fn members_view(&self) -> Vec<(NodeId, bool, PeerState)> {
        let leader = self.raft.leader();
        let me = self.raft.id();
        let mut out = vec![(me, leader == Some(me), PeerState::Connected)];
        for p in self.raft.peers() {
            out.push((p.id, leader == Some(p.id), p.state));
        }
        out.sort_by_key(|(id, is_leader, _)| (!is_leader, *id));
        out
    }

    pub(super) fn cluster_info_text(&self) -> String {
        let st = self.raft.status();
        let ok = st.leader.is_some();
        let mut out = String::new();
        let mut line = |k: &str, v: &dyn std::fmt::Display| {
            let _ = write!(out, "{k}:{v}\r\n");
        };
        line("cluster_state", &if ok { "ok" } else { "fail" });
        let assigned = if ok { SLOTS } else { 0 };
        line("cluster_slots_assigned", &assigned);
        line("cluster_slots_ok", &assigned);
        line("cluster_slots_pfail", &0);
        line("cluster_slots_fail", &0);
        line("cluster_known_nodes", &st.membership.members().len());
        line("cluster_size", &1);
        line("cluster_current_epoch", &st.term.0);
        line("cluster_my_epoch", &st.term.0);
        line("node_id", &st.id.0);
        line("role", &role_name(st.role));
        line("leader_id", &st.leader.map_or(0, |l| l.0));
        line("term", &st.term.0);
        line("commit_index", &st.commit.0);
        line("applied_index", &self.applied.0);
        line("last_index", &st.last_index.0);
        line("snapshot_index", &st.snapshot_index.0);
        line("voters", &join_ids(st.membership.voters.iter()));
        line("learners", &join_ids(st.membership.learners.iter()));
        out
    }

    /// `CLUSTER NODES`: Redis's line format, one shard owning every slot; node ids are the
    /// numeric ids as 40 hex digits.
    fn cluster_nodes(&self) -> String {
        let me = self.raft.id();
        let leader = self.raft.leader();
        let term = self.raft.term().0;
        let peers = self.raft.peers();
        let mut out = String::new();
        for (id, is_leader, state) in self.members_view() {
            let (host, port, cport) = self.member_addr(id);
            let mut flags = Vec::new();
            if id == me {
                flags.push("myself");
            }
            flags.push(if is_leader { "master" } else { "slave" });
            if matches!(state, PeerState::Disconnected | PeerState::Error) {
                flags.push("fail?");
            }
            let master = match (is_leader, leader) {
                (false, Some(l)) => node_name(l),
                _ => "-".into(),
            };
            let pong = peers
                .iter()
                .find(|p| p.id == id)
                .and_then(|p| p.last_contact)
                .map_or(0, |t| self.now.saturating_since(t).as_millis());
            let link = if matches!(state, PeerState::Connected) {
                "connected"
            } else {
                "disconnected"
            };
            let slots = if is_leader { " 0-16383" } else { "" };
            let _ = writeln!(
                out,
                "{} {host}:{port}@{cport} {} {master} 0 {pong} {term} {link}{slots}",
                node_name(id),
                flags.join(","),
            );
        }
        out
    }

    /// `CLUSTER SLOTS`: every slot on the leader, the followers as its replicas. Empty while no
    /// leader is known.
    fn cluster_slots(&self) -> Frame {
        if self.raft.leader().is_none() {
            return Frame::Array(Vec::new());
        }
        let mut entry = vec![Frame::Integer(0), Frame::Integer(SLOTS - 1)];
        for (id, _, _) in self.members_view() {
            let (host, port, _) = self.member_addr(id);
            entry.push(Frame::Array(vec![
                Frame::bulk(Bytes::from(host)),
                Frame::Integer(i64::from(port)),
                Frame::bulk(Bytes::from(node_name(id))),
                Frame::Array(Vec::new()),
            ]));
        }
        Frame::Array(vec![Frame::Array(entry)])
    }

    /// `CLUSTER SHARDS`: one shard with every slot.
    fn cluster_shards(&self) -> Frame {
        let applied = i64::try_from(self.applied.0).unwrap_or(i64::MAX);
        let nodes = self
            .members_view()
            .into_iter()
            .map(|(id, is_leader, state)| {
                let (host, port, _) = self.member_addr(id);
                let health = if matches!(state, PeerState::Connected) {
                    "online"
                } else {
                    "fail"
                };
                Frame::Map(vec![
                    (Frame::text("id"), Frame::bulk(Bytes::from(node_name(id)))),
                    (Frame::text("port"), Frame::Integer(i64::from(port))),
                    (Frame::text("ip"), Frame::bulk(Bytes::from(host.clone()))),
                    (Frame::text("endpoint"), Frame::bulk(Bytes::from(host))),
                    (
                        Frame::text("role"),
                        Frame::text(if is_leader { "master" } else { "replica" }),
                    ),
                    (Frame::text("replication-offset"), Frame::Integer(applied)),
                    (Frame::text("health"), Frame::text(health)),
                ])
            })
            .collect();
        Frame::Array(vec![Frame::Map(vec![
            (
                Frame::text("slots"),
                Frame::Array(vec![Frame::Integer(0), Frame::Integer(SLOTS - 1)]),
            ),
            (Frame::text("nodes"), Frame::Array(nodes)),
        ])])
    }

    /// `INFO replication`: Redis's fields (role master/slave) and the Raft state behind them.
    pub(super) fn replication_info(&self, line: &mut dyn FnMut(&str, &dyn std::fmt::Display)) {
        let st = self.raft.status();
        let peers = self.raft.peers();
        if st.role == Role::Leader {
            line("role", &"master");
            let followers = &peers;
            let online = followers
                .iter()
                .filter(|p| p.state == PeerState::Connected)
                .count();
            line("connected_slaves", &online);
            for (i, p) in followers.iter().enumerate() {
                let (host, port, _) = self.member_addr(p.id);
                let lag = p
                    .last_contact
                    .map_or(-1, |t| self.now.saturating_since(t).as_secs() as i64);
                let state = if p.state == PeerState::Connected {
                    "online"
                } else {
                    "offline"
                };
                line(
                    &format!("slave{i}"),
                    &format!(
                        "ip={host},port={port},state={state},offset={},lag={lag}",
                        p.match_index.0
                    ),
                );
            }
            line("master_repl_offset", &st.commit.0);
        } else {
            line("role", &"slave");
            let (host, port) = match st.leader {
                Some(l) => {
                    let (h, p, _) = self.member_addr(l);
                    (h, p)
                }
                None => ("?".into(), 0),
            };
            line("master_host", &host);
            line("master_port", &port);
            let link = st
                .leader
                .and_then(|l| peers.iter().find(|p| p.id == l))
                .filter(|p| p.state == PeerState::Connected);
            line(
                "master_link_status",
                &if link.is_some() { "up" } else { "down" },
            );
            let ago = st
                .leader
                .and_then(|l| peers.iter().find(|p| p.id == l))
                .and_then(|p| p.last_contact)
                .map_or(-1, |t| self.now.saturating_since(t).as_secs() as i64);
            line("master_last_io_seconds_ago", &ago);
            line("slave_repl_offset", &self.applied.0);
            line("slave_read_only", &1);
            line("connected_slaves", &0);
            line("master_repl_offset", &st.commit.0);
        }
        line("raft_node_id", &st.id.0);
        line("raft_role", &role_name(st.role));
        line("raft_term", &st.term.0);
        line("raft_leader_id", &st.leader.map_or(0, |l| l.0));
        line("raft_commit_index", &st.commit.0);
        line("raft_applied_index", &self.applied.0);
        line("raft_last_index", &st.last_index.0);
        line("raft_snapshot_index", &st.snapshot_index.0);
        line("raft_snapshots_installed", &self.stats.snapshots_installed);
        line("raft_voters", &join_ids(st.membership.voters.iter()));
        line("raft_learners", &join_ids(st.membership.learners.iter()));
        for (i, p) in peers.iter().enumerate() {
            let contact = p
                .last_contact
                .map_or(-1, |t| self.now.saturating_since(t).as_millis() as i64);
            line(
                &format!("raft_peer{i}"),
                &format!(
                    "id={},voter={},state={},last_contact_ms={contact},match_index={},next_index={}",
                    p.id.0,
                    u8::from(p.voter),
                    peer_state_name(p.state),
                    p.match_index.0,
                    p.next_index.0,
                ),
            );
        }
    }
}

/// How many recent forward ids per peer the leader remembers to drop duplicates; an id older
/// than the newest by more than this is dropped too (its follower gave up on it long ago).
const FORWARD_WINDOW: u64 = 16_384;

/// The forwards a leader has seen from one follower process.
#[derive(Debug, Default)]
pub(super) struct ForwardWindow {
    session: u64,
    newest: u64,
    seen: std::collections::BTreeSet<u64>,
}

impl ForwardWindow {
    /// Whether forward `id` of `session` arrives for the first time (and remembers it).
    fn first_time(&mut self, session: u64, id: u64) -> bool {
        if session != self.session || self.seen.is_empty() {
            // A restarted follower numbers its forwards from zero again.
            *self = Self {
                session,
                newest: id,
                seen: std::collections::BTreeSet::new(),
            };
        }
        if id.saturating_add(FORWARD_WINDOW) <= self.newest || !self.seen.insert(id) {
            return false;
        }
        self.newest = self.newest.max(id);
        let floor = self.newest.saturating_sub(FORWARD_WINDOW);
        while self.seen.first().is_some_and(|&oldest| oldest < floor) {
            self.seen.pop_first();
        }
        true
    }
}

/// A node's name in Redis's cluster commands: its numeric id as 40 hex digits.
fn node_name(id: NodeId) -> String {
    format!("{:040x}", id.0)
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::PreCandidate => "precandidate",
    }
}

fn peer_state_name(state: PeerState) -> &'static str {
    match state {
        PeerState::Unknown => "unknown",
        PeerState::Connecting => "connecting",
        PeerState::Connected => "connected",
        PeerState::Disconnected => "disconnected",
        PeerState::Error => "error",
    }
}

fn join_ids<'a>(ids: impl Iterator<Item = &'a NodeId>) -> String {
    ids.map(|i| i.0.to_string()).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_window_runs_each_forward_once_per_session() {
        let mut w = ForwardWindow::default();
        assert!(w.first_time(1, 0));
        assert!(!w.first_time(1, 0), "duplicate");
        assert!(w.first_time(1, 2));
        assert!(w.first_time(1, 1), "reordered, not a duplicate");
        assert!(!w.first_time(1, 1));
        assert!(w.first_time(1, FORWARD_WINDOW + 10));
        assert!(!w.first_time(1, 3), "too old to tell: dropped");
        assert!(w.first_time(2, 0), "a restarted follower starts over");
        assert!(w.seen.len() <= FORWARD_WINDOW as usize + 1);
    }
}
