//! The node: connections, the request path and the write path, as a sans-IO state machine.
//!
//! # Drive rule
//!
//! After every `handle_*` call — or after a batch of them, which lets many writes share one
//! sync (group commit) — drain [`Node::poll_output`] until it returns `None`, then wait for the
//! next input or for [`Node::poll_timeout`]. `poll_output` is where the node syncs the store
//! when writes wait for it: no reply that acknowledges a write leaves before its entry is
//! durable.
//!
//! # Ordering
//!
//! Replies on one connection come in request order. Consecutive writes from a connection go
//! into the log at once (the log orders them); any other request behind a pending write waits
//! until that write has applied, so a pipelined `SET k v` / `GET k` reads its own write.

mod info;
pub mod log;

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::cmd::{self, Command, CommandError, ConnCmd, WriteCmd};
use crate::db::{Db, Tx};
use crate::raft::NodeId;
use crate::resp::{Frame, Protocol};
use crate::store::{Store, StoreError};
use crate::{Instant, UnixMillis};

use log::{LogEntry, SoloLog};

/// A client connection, named by the driver; unique for the node's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// How a client reaches the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnKind {
    /// RESP over TCP.
    Tcp,
    /// RESP over a ZeroMQ ROUTER socket (one client per DEALER identity).
    Zmq,
}

/// What the driver tells the node.
#[derive(Clone, Debug)]
pub enum Input {
    /// A client connected.
    Connect {
        conn: ConnId,
        kind: ConnKind,
        addr: String,
    },
    /// One decoded request (arguments, name first) and its size on the wire.
    Request {
        conn: ConnId,
        args: Vec<Bytes>,
        wire_bytes: u64,
        unix: UnixMillis,
    },
    /// The client's bytes did not decode; the node answers `-ERR {error}` after the replies
    /// already owed to it, then closes the connection.
    ProtocolError { conn: ConnId, error: String },
    /// The client went away (or the driver closed it); replies owed to it are dropped.
    Disconnect { conn: ConnId },
    /// Bytes another node of the cluster sent this one (one mesh message, undecoded: the node
    /// treats them as untrusted). `from` is the sender the transport saw.
    Peer { from: NodeId, bytes: Bytes },
}

/// What the node asks the driver to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send `frame` to the client, encoded in `protocol`.
    Reply {
        conn: ConnId,
        frame: Frame,
        protocol: Protocol,
    },
    /// Close the connection once the replies before this output are sent.
    Close { conn: ConnId },
    /// Deliver `bytes` to cluster node `to` (best effort: the node retries what matters).
    Send { to: NodeId, bytes: Vec<u8> },
}

/// A member of the cluster and where to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: NodeId,
    /// Where clients reach it (`host:port`), reported by CLUSTER NODES / SLOTS / SHARDS.
    pub client_addr: String,
    /// Its cluster (mesh) port, reported by CLUSTER NODES as `@cport`.
    pub cluster_port: u16,
}

/// The node's place in its cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// This node's id: unique in the cluster, never reused for another machine.
    pub id: NodeId,
    /// Tells clusters apart on a shared network: messages with another id are dropped.
    pub cluster_id: u64,
    /// Every node of the cluster, this one included. They are the voters of a brand-new
    /// cluster; once the store holds a membership, that membership wins.
    pub members: Vec<Member>,
    /// Seeds the election timer jitter (distinct per node; the simulator passes its own).
    pub seed: u64,
    /// Raft timing: heartbeat interval and election timeout range, in ms.
    pub heartbeat_ms: u64,
    pub election_timeout_ms: (u64, u64),
    /// How long a forwarded request or a write whose leader stepped down may wait before the
    /// client is told its outcome is unknown.
    pub request_timeout_ms: u64,
}

impl ClusterConfig {
    /// A single node with id 1: a cluster of one that commits what it alone has synced.
    pub fn single() -> Self {
        Self {
            id: NodeId(1),
            cluster_id: 0,
            members: vec![Member {
                id: NodeId(1),
                client_addr: "127.0.0.1:6379".into(),
                cluster_port: 0,
            }],
            seed: 1,
            heartbeat_ms: 100,
            election_timeout_ms: (1000, 2000),
            request_timeout_ms: 10_000,
        }
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self::single()
    }
}

/// Static facts about the server that the node reports (INFO, CONFIG GET, HELLO).
#[derive(Clone, Debug, Default)]
pub struct NodeConfig {
    /// The node's name in INFO and CLUSTER_INFO.
    pub node_id: String,
    /// The cluster this node belongs to ([`ClusterConfig::single`] for a standalone node).
    pub cluster: ClusterConfig,
    /// Password clients must give with AUTH / HELLO AUTH; `None`: no authentication.
    pub requirepass: Option<Bytes>,
    /// Clients beyond this get `-ERR max number of clients reached`.
    pub max_clients: u64,
    /// Settings reported by `CONFIG GET` and `INFO`, as (name, value).
    pub settings: Vec<(String, String)>,
    /// Facts for `INFO server` (process id, ports, executable), as (name, value).
    pub server_info: Vec<(String, String)>,
}

/// Most requests a connection may have waiting behind a pending write before the node closes
/// it; bounds memory for a client that pipelines without reading replies.
pub const DEFERRED_MAX_PER_CONN: usize = 100_000;

/// Most samples a connection may buffer with `BATCH_SET` before `BATCH_FLUSH`.
pub const BATCH_MAX_SAMPLES: usize = 1_000_000;

/// The version of Redis whose protocol and command semantics tickdb follows.
pub const REDIS_COMPAT_VERSION: &str = "7.4.0";

/// tickdb's own version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug)]
struct Conn {
    kind: ConnKind,
    addr: String,
    name: Option<Bytes>,
    lib_name: Option<Bytes>,
    lib_ver: Option<Bytes>,
    protocol: Protocol,
    authenticated: bool,
    readonly: bool,
    created: Instant,
    last_active: Instant,
    last_cmd: &'static str,
    /// Writes in the log not yet applied.
    outstanding: u64,
    /// Requests waiting for the outstanding writes to apply, in order.
    deferred: VecDeque<Deferred>,
    /// Samples buffered by BATCH_SET: (key, timestamp, value).
    batch: Vec<(Bytes, u64, f64)>,
    /// QUIT or a protocol error: nothing more is read or answered after the pending replies.
    closing: bool,
}

#[derive(Debug)]
enum Deferred {
    Request { args: Vec<Bytes>, unix: UnixMillis },
    ProtocolError(String),
}

/// Whom to answer when a log entry applies.
#[derive(Debug)]
struct Waiter {
    conn: ConnId,
    shape: ReplyShape,
}

#[derive(Debug)]
enum ReplyShape {
    /// The reply of the entry's one command.
    Single,
    /// BATCH_FLUSH: the number of commands that did not fail.
    Count,
}

/// Counters for INFO stats.
#[derive(Debug, Default, Clone)]
struct Stats {
    connections_received: u64,
    rejected_connections: u64,
    commands: u64,
    error_replies: u64,
    net_input_bytes: u64,
    net_output_bytes: u64,
    writes_applied: u64,
    syncs: u64,
}

/// A tickdb node.
pub struct Node<S: Store> {
    config: NodeConfig,
    store: S,
    db: Db,
    log: SoloLog,
    conns: BTreeMap<ConnId, Conn>,
    waiters: BTreeMap<u64, Waiter>,
    outputs: VecDeque<Output>,
    stats: Stats,
    started: Instant,
    now: Instant,
    /// Set when the store failed: the node can no longer tell what is durable, so it refuses
    /// every command until restarted.
    failed: Option<String>,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<S: Store> Node<S> {
    /// Opens the node on `store`, applying any committed entries the last run did not apply.
    pub fn new(config: NodeConfig, mut store: S, now: Instant) -> Result<Self, NodeError> {
        let mut db = Db::open(&store)?;
        let mut log = SoloLog::open(&store)?;
        let entries: Vec<(u64, LogEntry)> = std::iter::from_fn(|| log.next_committed()).collect();
        if !entries.is_empty() {
            apply_entries(&mut db, &mut store, &entries)?;
            store.sync()?;
            tracing::info!(
                replayed = entries.len(),
                applied = log.applied(),
                "applied log entries left by the last run"
            );
        }
        Ok(Self {
            config,
            store,
            db,
            log,
            conns: BTreeMap::new(),
            waiters: BTreeMap::new(),
            outputs: VecDeque::new(),
            stats: Stats::default(),
            started: now,
            now,
            failed: None,
        })
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Counts bytes the driver wrote to clients (INFO `total_net_output_bytes`).
    pub fn add_bytes_out(&mut self, n: u64) {
        self.stats.net_output_bytes += n;
    }

    /// The next deadline the driver must call [`Node::handle_timeout`] at. The single node has
    /// no timers yet; the cluster's heartbeats and elections will.
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Spurious calls are no-ops.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// Makes everything written so far durable (for a clean shutdown).
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.store.sync()
    }

    pub fn handle_input(&mut self, now: Instant, input: Input) {
        self.now = self.now.max(now);
        match input {
            Input::Connect { conn, kind, addr } => self.connect(conn, kind, addr),
            Input::Request {
                conn,
                args,
                wire_bytes,
                unix,
            } => {
                self.stats.net_input_bytes += wire_bytes;
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                if c.closing {
                    return;
                }
                c.last_active = self.now;
                if !c.deferred.is_empty() || (c.outstanding > 0 && !is_log_write(&args)) {
                    if c.deferred.len() >= DEFERRED_MAX_PER_CONN {
                        tracing::warn!(
                            conn = conn.0,
                            "closing a client that pipelines without reading replies"
                        );
                        c.closing = true;
                        c.deferred.clear();
                        self.outputs.push_back(Output::Close { conn });
                        return;
                    }
                    c.deferred.push_back(Deferred::Request { args, unix });
                    return;
                }
                self.request(conn, args, unix);
            }
            Input::ProtocolError { conn, error } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                if c.outstanding > 0 || !c.deferred.is_empty() {
                    c.deferred.push_back(Deferred::ProtocolError(error));
                } else {
                    self.protocol_error(conn, error);
                }
            }
            Input::Disconnect { conn } => {
                self.conns.remove(&conn);
            }
            Input::Peer { .. } => {}
        }
    }

    /// The next output. Syncs the store first when writes wait for it (group commit).
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        loop {
            if let Some(out) = self.outputs.pop_front() {
                return Some(out);
            }
            if !self.log.sync_owed() && !self.log.has_committed() {
                return None;
            }
            self.commit();
        }
    }

    fn connect(&mut self, conn: ConnId, kind: ConnKind, addr: String) {
        self.stats.connections_received += 1;
        let max = self.config.max_clients;
        if max > 0 && self.conns.len() as u64 >= max {
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
        let c = Conn {
            kind,
            addr,
            name: None,
            lib_name: None,
            lib_ver: None,
            protocol: Protocol::Resp2,
            authenticated,
            readonly: false,
            created: self.now,
            last_active: self.now,
            last_cmd: "NULL",
            outstanding: 0,
            deferred: VecDeque::new(),
            batch: Vec::new(),
            closing: false,
        };
        self.conns.insert(conn, c);
    }

    fn reply(&mut self, conn: ConnId, frame: Frame) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if frame.is_error() {
            self.stats.error_replies += 1;
        }
        self.outputs.push_back(Output::Reply {
            conn,
            frame,
            protocol: c.protocol,
        });
    }

    fn protocol_error(&mut self, conn: ConnId, error: String) {
        self.reply(conn, Frame::error(format!("ERR {error}")));
        if let Some(c) = self.conns.get_mut(&conn) {
            c.closing = true;
        }
        self.outputs.push_back(Output::Close { conn });
    }

    /// Executes one request now (the connection has nothing pending ahead of it).
    fn request(&mut self, conn: ConnId, args: Vec<Bytes>, unix: UnixMillis) {
        self.stats.commands += 1;
        if args.is_empty() {
            return;
        }
        let parsed = cmd::parse(&args);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.last_cmd = match &parsed {
            Ok(_) => cmd::lookup(&args[0]).map_or("NULL", |s| s.name),
            Err(_) => "NULL",
        };
        let cmd = match parsed {
            Ok(cmd) => cmd,
            Err(e) => return self.reply(conn, Frame::error(e.to_string())),
        };
        if !c.authenticated && !allowed_before_auth(&cmd) {
            return self.reply(conn, Frame::error(CommandError::NoAuth.to_string()));
        }
        if let Some(why) = self
            .failed
            .as_ref()
            .filter(|_| !matches!(cmd, Command::Conn(_)))
        {
            let msg = format!("ERR tickdb storage failure, restart the node: {why}");
            return self.reply(conn, Frame::error(msg));
        }
        match cmd {
            Command::Conn(cc) => self.conn_command(conn, cc, unix),
            Command::Read(r) => {
                let protocol = self
                    .conns
                    .get(&conn)
                    .map_or(Protocol::Resp2, |c| c.protocol);
                let reply = match self.db.read(&self.store, &r, protocol) {
                    Ok(frame) => frame,
                    Err(e) => self.storage_failed(e),
                };
                self.reply(conn, reply);
            }
            Command::Write(w) => self.propose(conn, vec![w], ReplyShape::Single, unix),
            Command::BatchSet { key, value, ts } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                if c.batch.len() >= BATCH_MAX_SAMPLES {
                    let msg = format!(
                        "ERR BATCH_SET buffer is full ({BATCH_MAX_SAMPLES} samples): send BATCH_FLUSH"
                    );
                    return self.reply(conn, Frame::error(msg));
                }
                c.batch.push((key, ts, value));
                self.reply(conn, Frame::ok());
            }
            Command::BatchFlush => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                let samples = std::mem::take(&mut c.batch);
                if samples.is_empty() {
                    return self.reply(conn, Frame::Integer(0));
                }
                let cmds = samples
                    .into_iter()
                    .map(|(key, ts, value)| WriteCmd::BatchAdd { key, ts, value });
                self.propose(conn, cmds.collect(), ReplyShape::Count, unix);
            }
        }
    }

    fn propose(&mut self, conn: ConnId, cmds: Vec<WriteCmd>, shape: ReplyShape, unix: UnixMillis) {
        let index = self.log.propose(LogEntry::new(unix, cmds));
        self.waiters.insert(index, Waiter { conn, shape });
        if let Some(c) = self.conns.get_mut(&conn) {
            c.outstanding += 1;
        }
    }

    /// Syncs, applies every committed entry, answers the waiting clients, then runs requests
    /// that were waiting behind those writes.
    fn commit(&mut self) {
        if let Err(e) = self.log.flush(&mut self.store) {
            self.log.abandon_unsynced();
            let frame = self.storage_failed(e);
            let mut resumed = Vec::new();
            for (_, w) in std::mem::take(&mut self.waiters) {
                self.answer_write(w.conn, frame.clone(), &mut resumed);
            }
            for conn in resumed {
                self.resume(conn);
            }
            return;
        }
        self.stats.syncs += 1;
        let entries: Vec<(u64, LogEntry)> =
            std::iter::from_fn(|| self.log.next_committed()).collect();
        let applied = match apply_entries(&mut self.db, &mut self.store, &entries) {
            Ok(replies) => replies,
            Err(e) => {
                let frame = self.storage_failed(e);
                entries.iter().map(|_| vec![frame.clone()]).collect()
            }
        };
        let mut resumed = Vec::new();
        for ((index, _), replies) in entries.iter().zip(applied) {
            self.stats.writes_applied += 1;
            let Some(waiter) = self.waiters.remove(index) else {
                continue;
            };
            let frame = match waiter.shape {
                ReplyShape::Single => replies.into_iter().next().unwrap_or(Frame::Null),
                ReplyShape::Count => {
                    let ok = replies.iter().filter(|f| !f.is_error()).count();
                    Frame::Integer(i64::try_from(ok).unwrap_or(i64::MAX))
                }
            };
            self.answer_write(waiter.conn, frame, &mut resumed);
        }
        for conn in resumed {
            self.resume(conn);
        }
    }

    /// Answers one of a connection's pending writes; notes the connection in `resumed` when it
    /// has no write pending any more and requests wait behind them.
    fn answer_write(&mut self, conn: ConnId, frame: Frame, resumed: &mut Vec<ConnId>) {
        self.reply(conn, frame);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.outstanding -= 1;
            if c.outstanding == 0 && !c.deferred.is_empty() {
                resumed.push(conn);
            }
        }
    }

    /// Runs a connection's deferred requests until one of them waits on a write again.
    fn resume(&mut self, conn: ConnId) {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            let next_is_write = match c.deferred.front() {
                None => return,
                Some(Deferred::Request { args, .. }) => is_log_write(args),
                Some(Deferred::ProtocolError(_)) => false,
            };
            if c.outstanding > 0 && !next_is_write {
                return;
            }
            let Some(next) = c.deferred.pop_front() else {
                return;
            };
            match next {
                Deferred::Request { args, unix } => self.request(conn, args, unix),
                Deferred::ProtocolError(e) => return self.protocol_error(conn, e),
            }
        }
    }

    /// Records a storage failure and returns the error reply for it.
    fn storage_failed(&mut self, e: StoreError) -> Frame {
        tracing::error!(error = %e, "storage failure: refusing commands until restart");
        let msg = e.to_string();
        self.failed.get_or_insert(msg.clone());
        Frame::error(format!(
            "ERR tickdb storage failure, restart the node: {msg}"
        ))
    }

    fn conn_command(&mut self, conn: ConnId, cmd: ConnCmd, unix: UnixMillis) {
        let reply = match cmd {
            ConnCmd::Ping(None) => match self.conns.get(&conn).map(|c| c.protocol) {
                Some(_) => Frame::simple("PONG"),
                None => return,
            },
            ConnCmd::Ping(Some(msg)) | ConnCmd::Echo(msg) => Frame::Bulk(msg),
            ConnCmd::Time => {
                let micros = unix.0.saturating_mul(1000);
                Frame::Array(vec![
                    Frame::text((micros / 1_000_000).to_string()),
                    Frame::text((micros % 1_000_000).to_string()),
                ])
            }
            ConnCmd::Quit => {
                self.reply(conn, Frame::ok());
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.closing = true;
                }
                self.outputs.push_back(Output::Close { conn });
                return;
            }
            ConnCmd::Reset => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.protocol = Protocol::Resp2;
                    c.name = None;
                    c.readonly = false;
                    c.batch.clear();
                    c.authenticated = self.config.requirepass.is_none();
                }
                Frame::simple("RESET")
            }
            ConnCmd::Hello {
                protover,
                auth,
                setname,
            } => self.hello(conn, protover, auth, setname),
            ConnCmd::Auth { user, password } => self.auth(conn, user.as_deref(), &password),
            ConnCmd::Select(0) => Frame::ok(),
            ConnCmd::Select(_) => Frame::error("ERR DB index is out of range"),
            ConnCmd::ClientId => Frame::Integer(i64::try_from(conn.0).unwrap_or(i64::MAX)),
            ConnCmd::ClientSetName(name) => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.name = (!name.is_empty()).then_some(name);
                }
                Frame::ok()
            }
            ConnCmd::ClientGetName => self
                .conns
                .get(&conn)
                .and_then(|c| c.name.clone())
                .map_or(Frame::Null, Frame::Bulk),
            ConnCmd::ClientSetInfo => Frame::ok(),
            ConnCmd::ClientList => {
                let lines: String = self
                    .conns
                    .keys()
                    .map(|&id| self.client_line(id) + "\n")
                    .collect();
                Frame::Verbatim {
                    format: *b"txt",
                    text: Bytes::from(lines),
                }
            }
            ConnCmd::ClientInfo => Frame::Verbatim {
                format: *b"txt",
                text: Bytes::from(self.client_line(conn) + "\n"),
            },
            ConnCmd::Info(sections) => Frame::Verbatim {
                format: *b"txt",
                text: Bytes::from(self.info(&sections)),
            },
            ConnCmd::ConfigGet(patterns) => self.config_get(&patterns),
            ConnCmd::ConfigSet => Frame::error(
                "ERR CONFIG SET is not supported: change tickdb's settings in its config file or flags and restart",
            ),
            ConnCmd::ConfigResetStat => {
                self.stats = Stats::default();
                Frame::ok()
            }
            ConnCmd::CommandAll => {
                Frame::Array(cmd::COMMANDS.iter().map(|s| s.info_frame()).collect())
            }
            ConnCmd::CommandCount => Frame::Integer(cmd::COMMANDS.len() as i64),
            ConnCmd::CommandList => Frame::Array(
                cmd::COMMANDS
                    .iter()
                    .map(|s| Frame::bulk(Bytes::from_static(s.name.as_bytes())))
                    .collect(),
            ),
            ConnCmd::CommandInfo(names) => {
                if names.is_empty() {
                    Frame::Array(cmd::COMMANDS.iter().map(|s| s.info_frame()).collect())
                } else {
                    Frame::Array(
                        names
                            .iter()
                            .map(|n| cmd::lookup(n).map_or(Frame::NullArray, |s| s.info_frame()))
                            .collect(),
                    )
                }
            }
            ConnCmd::CommandDocs(names) => {
                let specs: Vec<_> = if names.is_empty() {
                    cmd::COMMANDS.iter().collect()
                } else {
                    names.iter().filter_map(|n| cmd::lookup(n)).collect()
                };
                Frame::Map(
                    specs
                        .into_iter()
                        .map(|s| {
                            (
                                Frame::bulk(Bytes::from_static(s.name.as_bytes())),
                                s.docs_frame(),
                            )
                        })
                        .collect(),
                )
            }
            ConnCmd::CommandGetKeys(args) => getkeys(&args),
            ConnCmd::DbSize => {
                Frame::Integer(i64::try_from(self.db.key_count()).unwrap_or(i64::MAX))
            }
            ConnCmd::ClusterInfo => Frame::Verbatim {
                format: *b"txt",
                text: Bytes::from(self.cluster_info()),
            },
            ConnCmd::ReadOnly | ConnCmd::ReadWrite => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.readonly = matches!(cmd, ConnCmd::ReadOnly);
                }
                Frame::ok()
            }
        };
        self.reply(conn, reply);
    }

    fn hello(
        &mut self,
        conn: ConnId,
        protover: Option<i64>,
        auth: Option<(Bytes, Bytes)>,
        setname: Option<Bytes>,
    ) -> Frame {
        let protocol = match protover {
            None => None,
            Some(2) => Some(Protocol::Resp2),
            Some(3) => Some(Protocol::Resp3),
            Some(_) => return Frame::error("NOPROTO unsupported protocol version"),
        };
        if let Some((user, pass)) = auth {
            let reply = self.auth(conn, Some(&user), &pass);
            if reply.is_error() {
                return reply;
            }
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return Frame::Null;
        };
        if !c.authenticated {
            return Frame::error(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
            );
        }
        if let Some(p) = protocol {
            c.protocol = p;
        }
        if let Some(name) = setname {
            c.name = (!name.is_empty()).then_some(name);
        }
        let proto = if c.protocol == Protocol::Resp3 { 3 } else { 2 };
        Frame::Map(vec![
            (Frame::text("server"), Frame::text("redis")),
            (Frame::text("version"), Frame::text(REDIS_COMPAT_VERSION)),
            (Frame::text("proto"), Frame::Integer(proto)),
            (
                Frame::text("id"),
                Frame::Integer(i64::try_from(conn.0).unwrap_or(i64::MAX)),
            ),
            (Frame::text("mode"), Frame::text("standalone")),
            (Frame::text("role"), Frame::text("master")),
            (Frame::text("modules"), Frame::Array(Vec::new())),
        ])
    }

    fn auth(&mut self, conn: ConnId, user: Option<&[u8]>, password: &[u8]) -> Frame {
        let Some(required) = &self.config.requirepass else {
            return Frame::error(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            );
        };
        let user_ok = user.is_none_or(|u| u == b"default");
        // Compare in time independent of where the first difference is.
        let pass_ok = required.len() == password.len()
            && required
                .iter()
                .zip(password)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if user_ok && pass_ok {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.authenticated = true;
            }
            Frame::ok()
        } else {
            Frame::error("WRONGPASS invalid username-password pair or user is disabled.")
        }
    }

    fn config_get(&self, patterns: &[Bytes]) -> Frame {
        let mut pairs = Vec::new();
        for (name, value) in &self.config.settings {
            if patterns
                .iter()
                .any(|p| crate::db::glob::matches(&p.to_ascii_lowercase(), name.as_bytes()))
            {
                pairs.push((Frame::text(name.clone()), Frame::text(value.clone())));
            }
        }
        Frame::Map(pairs)
    }

    fn client_line(&self, id: ConnId) -> String {
        let Some(c) = self.conns.get(&id) else {
            return String::new();
        };
        let text = |b: &Option<Bytes>| {
            b.as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        let age = self.now.saturating_since(c.created).as_secs();
        let idle = self.now.saturating_since(c.last_active).as_secs();
        let kind = match c.kind {
            ConnKind::Tcp => "tcp",
            ConnKind::Zmq => "zmq",
        };
        let flags = if c.readonly { "r" } else { "N" };
        let resp = if c.protocol == Protocol::Resp3 { 3 } else { 2 };
        format!(
            "id={} addr={} laddr= fd=-1 name={} age={age} idle={idle} flags={flags} db=0 sub=0 psub=0 ssub=0 multi=-1 watch=0 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll={} omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={resp} lib-name={} lib-ver={} transport={kind} pending-writes={} batch={}",
            id.0,
            c.addr,
            text(&c.name),
            c.deferred.len(),
            c.last_cmd,
            text(&c.lib_name),
            text(&c.lib_ver),
            c.outstanding,
            c.batch.len(),
        )
    }
}

/// Applies committed entries, in order, in one transaction written as one atomic batch with
/// the applied index (one RocksDB write per commit, not per entry); returns the replies of each
/// entry's commands.
fn apply_entries<S: Store>(
    db: &mut Db,
    store: &mut S,
    entries: &[(u64, LogEntry)],
) -> Result<Vec<Vec<Frame>>, StoreError> {
    let (Some((first, _)), Some((last, _))) = (entries.first(), entries.last()) else {
        return Ok(Vec::new());
    };
    let mut tx = Tx::new(&*store);
    let mut all = Vec::with_capacity(entries.len());
    for (_, entry) in entries {
        let mut replies = Vec::with_capacity(entry.cmds.len());
        for cmd in &entry.cmds {
            replies.push(db.apply(&mut tx, cmd, entry.unix)?);
        }
        all.push(replies);
    }
    let mut batch = tx.into_batch();
    log::record_applied(&mut batch, *first, *last);
    store.write(batch)?;
    Ok(all)
}

/// Whether a request goes into the log (decided from the name alone, before parsing).
fn is_log_write(args: &[Bytes]) -> bool {
    args.first()
        .and_then(|n| cmd::lookup(n))
        .is_some_and(|s| s.is_write() && s.name != "batch_set")
}

fn allowed_before_auth(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::Conn(
            ConnCmd::Auth { .. } | ConnCmd::Hello { .. } | ConnCmd::Quit | ConnCmd::Reset
        )
    )
}

fn getkeys(args: &[Bytes]) -> Frame {
    let Some(name) = args.first() else {
        return Frame::error(CommandError::Syntax.to_string());
    };
    let Some(spec) = cmd::lookup(name) else {
        return Frame::error("ERR Invalid command specified");
    };
    if !spec.arity_ok(args.len()) {
        return Frame::error("ERR Invalid number of arguments specified for command");
    }
    let keys = spec.key_positions(args.len());
    if keys.is_empty() {
        return Frame::error("ERR The command has no key arguments");
    }
    Frame::Array(
        keys.into_iter()
            .filter_map(|i| args.get(i))
            .map(|k| Frame::Bulk(k.clone()))
            .collect(),
    )
}

#[cfg(test)]
mod tests;
