//! The node: connections, the request path and the write path, as a sans-IO state machine.
//!
//! The top of the core: it drives `raft`, applies committed entries through `state::Db` inside
//! the `writeback` layer's transactions, and may import every other module; none of them
//! imports it.
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
//!
//! # Layout
//!
//! This module holds the node, its construction, the input dispatch, timers and invariants;
//! its jobs live in submodules: `conn` (connections, request ordering, replies), `conn_cmd`
//! (connection and server commands), `reads` (the read path), `write` (the write path, from
//! proposals to replies, and applying committed entries), `cluster` (peers, forwarding,
//! CLUSTER commands), and `blocking`, `expire`, `info`, `pubsub`, `txn`, `waiters`.

mod batch;
mod blocking;
mod cluster;
mod conn;
mod conn_cmd;
mod expire;
mod info;
pub mod log;
mod packed;
pub mod peer;
mod pubsub;
mod reads;
mod txn;
mod waiters;
mod write;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;

use crate::cmd::{self, Command, CommandError, ConnCmd, ReadCmd};
use crate::raft::{self, Entry, LogIndex, NodeId, Raft, RaftConfig, RaftOutput, Role};
use crate::resp::{Frame, Packed, Protocol};
use crate::state::Db;
use crate::store::{Store, StoreError};
use crate::writeback::{CheckpointPolicy, WriteBack};
use crate::{Instant, UnixMillis};

use cluster::Forward;
use conn::{Conn, Deferred, Kind, kind};
pub use expire::{EXPIRE_BATCH_MAX, EXPIRE_TICK_MS};
use peer::PeerBody;
pub use pubsub::SUBSCRIPTIONS_MAX_PER_CONN;
use waiters::Waiters;
use write::{Proposal, ReplyShape, unknown_outcome};

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
    /// Requests decoded together ([`crate::resp::decode_packed_from`]), in order: the same as
    /// an [`Input::Request`] each, at less cost. What the endpoints send.
    Requests {
        conn: ConnId,
        requests: Packed,
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
    /// The sync [`Output::Sync`]`{ upto }` asked for completed (`error: None`: every store
    /// write made before the output was taken is durable) or failed (the node then refuses
    /// everything, as after any storage failure).
    Synced { upto: u64, error: Option<String> },
}

impl Input {
    /// How many inputs this counts as where a driver bounds what it feeds before a drain:
    /// its requests when packed, otherwise one.
    pub fn count(&self) -> usize {
        match self {
            Self::Requests { requests, .. } => requests.len(),
            _ => 1,
        }
    }
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
    /// Send the client `count` (at least 2) `+OK` replies in a row: what that many
    /// [`Output::Reply`]s of [`Frame::ok`] would send, in either protocol. A run of `+OK`s to
    /// one connection among the outputs (a pipeline of `BATCH_SET`s, of `SET`s answered by one
    /// sync) is one output, not one per reply; [`Output::expand_oks`] gives them one by one.
    Oks { conn: ConnId, count: u32 },
    /// Close the connection once the replies before this output are sent.
    Close { conn: ConnId },
    /// Deliver `bytes` to cluster node `to` (best effort: the node retries what matters).
    Send { to: NodeId, bytes: Vec<u8> },
    /// Cluster member `id` is reached at `addr` (`host:cluster_port`) from now on, or (`None`)
    /// is no longer a member: the driver connects or disconnects its transport.
    Member { id: NodeId, addr: Option<String> },
    /// Pipelined syncs only ([`Node::pipeline_syncs`]): make every store write made so far
    /// durable (a [`crate::store::Syncer`] marked now, then synced beside the node's further
    /// writes) and feed [`Input::Synced`] with the same `upto` when it is done. The node asks
    /// for the next one only after that.
    Sync { upto: u64 },
}

impl Output {
    /// Whether this is a `+OK` reply to `conn`.
    fn is_ok_to(&self, conn: ConnId) -> bool {
        matches!(self, Self::Reply { conn: c, frame, .. } if *c == conn && frame.is_ok())
    }

    /// This output as the outputs it stands for: an [`Self::Oks`] as its `+OK` replies one
    /// by one (in RESP2, which encodes `+OK` as RESP3 does), anything else as itself.
    pub fn expand_oks(self) -> impl Iterator<Item = Self> {
        let (single, oks) = match self {
            Self::Oks { conn, count } => (None, Some((conn, count))),
            other => (Some(other), None),
        };
        let oks = oks.into_iter().flat_map(|(conn, count)| {
            (0..count).map(move |_| Self::Reply {
                conn,
                frame: Frame::ok(),
                protocol: Protocol::Resp2,
            })
        });
        single.into_iter().chain(oks)
    }
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
    /// This node joins an existing cluster (`members` lists the current ones and itself): it
    /// starts as a non-voter and waits for the leader to add it (`CLUSTER ADDNODE`).
    pub joining: bool,
    /// Shared secret that authenticates cluster messages (HMAC-SHA256); `None`: unauthenticated
    /// (the cluster port must then be reachable only by the members).
    pub secret: Option<Vec<u8>>,
    /// The most Raft log entries kept behind the durable checkpoint for a lagging follower
    /// (default: [`raft::RaftConfig`]'s 65,536; the log behind a checkpoint goes at once when
    /// every follower in contact has it). Small values make a lagging follower need a
    /// snapshot after a few writes: the simulator and the fault suite use them so snapshots
    /// install often, while requests and appends are in flight.
    pub compaction_entries: Option<u64>,
    /// Bytes per InstallSnapshot chunk (default 1 MiB); small values make a snapshot take
    /// several chunks, so faults land in the middle of a transfer.
    pub snapshot_chunk_bytes: Option<u64>,
    /// Write the applied state to the store (a checkpoint, see [`crate::writeback`]) after
    /// this many applied entries (default: 32,768, or half the compaction threshold when that
    /// is lower, since the log is compacted only behind a checkpoint).
    pub checkpoint_entries: Option<u64>,
    /// Bugs to plant in this node's Raft, so the simulator can prove its checkers fail.
    #[cfg(feature = "planted-bugs")]
    pub bugs: raft::PlantedBugs,
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
            joining: false,
            secret: None,
            compaction_entries: None,
            snapshot_chunk_bytes: None,
            checkpoint_entries: None,
            #[cfg(feature = "planted-bugs")]
            bugs: raft::PlantedBugs::default(),
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

pub use blocking::BLOCKED_MAX;

/// Most samples a connection may buffer with `BATCH_SET` before `BATCH_FLUSH`.
/// Bounded so that a full buffer fits one replicated log entry ([`peer::MAX_ENTRY_BYTES`]) with
/// keys of up to about 20 bytes.
pub const BATCH_MAX_SAMPLES: usize = 100_000;
/// Samples of room a connection keeps for its next BATCH_SET batch after a flush (48 KiB).
const BATCH_ROOM_KEPT: usize = 1024;

/// The version of Redis whose protocol and command semantics tickdb follows: the Redis that
/// ships the RedisTimeSeries of [`TIMESERIES_VERSION`] (Redis 8.10). INFO and HELLO report it;
/// docs/commands.md says why no higher.
pub const REDIS_COMPAT_VERSION: &str = "8.10.0";

/// The RedisTimeSeries version whose command surface tickdb implements, as modules report it
/// (`major * 10000 + minor * 100 + patch`; Redis 8 numbers its bundled modules after itself:
/// 8.10.0). Clients gate features on it (redis-py's tests read it from INFO's `# Modules`).
/// 8.10's surface is complete with TS.READ; docs/commands.md lists the differences that remain
/// on purpose.
pub const TIMESERIES_VERSION: i64 = 81000;

/// tickdb's own version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

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
    /// Snapshots from the leader installed since start (INFO `raft_snapshots_installed`).
    snapshots_installed: u64,
    forwards_sent: u64,
    forwards_served: u64,
    peer_messages_dropped: u64,
    peer_messages_in: u64,
    peer_messages_out: u64,
    peer_bytes_in: u64,
    peer_bytes_out: u64,
    /// Pub/sub messages delivered to this node's clients.
    pubsub_messages: u64,
}

/// Most forwarded messages a leader runs at once; more are answered `-TRYAGAIN`.
pub const REMOTE_MAX: usize = 10_000;

/// Connection ids at and above this are the leader's internal connections for forwarded
/// requests; drivers number client connections from 1 up.
const REMOTE_CONN_BASE: u64 = 1 << 62;

/// Rounds of internal work `Node::new` runs to elect a single node and replay its log.
const STARTUP_ROUNDS: u32 = 64;

/// A tickdb node.
pub struct Node<S: Store> {
    config: NodeConfig,
    /// The store, with the state applied since the last checkpoint held in memory.
    store: WriteBack<S>,
    db: Db,
    raft: Raft,
    /// The index the state machine has applied (the raft entries and snapshots).
    applied: LogIndex,
    conns: BTreeMap<ConnId, Conn>,
    remotes: usize,
    next_remote: u64,
    proposals: Vec<Proposal>,
    /// Whom to answer when a proposed entry (or a member of a group entry) applies.
    waiters: Waiters,
    /// Reads registered with ReadIndex (by context) and the ones confirmed, waiting to apply.
    reads: BTreeMap<u64, (ConnId, ReadCmd)>,
    reads_ready: VecDeque<(LogIndex, u64)>,
    next_read: u64,
    /// Connections with forwards to send.
    fwd_dirty: BTreeSet<ConnId>,
    forwards: BTreeMap<u64, Forward>,
    next_forward: u64,
    /// Leader: the forwards seen per follower, so a duplicated message runs once.
    forwards_seen: BTreeMap<NodeId, cluster::ForwardWindow>,
    /// Committed entries collected from Raft, applied together.
    to_apply: Vec<Entry>,
    /// Connections whose deferred requests may be able to run.
    to_resume: Vec<ConnId>,
    /// Clients waiting in `TS.READ ... BLOCK`.
    blocked: blocking::Blocked,
    /// The member addresses the driver was told (`Output::Member`), starting from the config.
    announced: BTreeMap<NodeId, String>,
    /// This node's clients' channel and pattern subscriptions.
    pubsub: pubsub::PubSub,
    /// The latest client request's wall-clock stamp and when it came (see `expire`).
    clock: Option<(UnixMillis, Instant)>,
    /// When the leader next looks for expired keys.
    next_expire: Instant,
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
    #[error(transparent)]
    Raft(#[from] raft::RaftError),
    #[error("invalid cluster configuration: {0}")]
    Config(String),
}

impl<S: Store> Node<S> {
    /// Opens the node on `store`. A node that is its cluster's only voter elects itself and
    /// applies the committed entries the last run did not apply before this returns.
    pub fn new(config: NodeConfig, store: S, now: Instant) -> Result<Self, NodeError> {
        let cluster = &config.cluster;
        let mut voters: BTreeSet<NodeId> = cluster.members.iter().map(|m| m.id).collect();
        if !voters.contains(&cluster.id) {
            return Err(NodeError::Config(format!(
                "node {} is not among the cluster members",
                cluster.id.0
            )));
        }
        if voters.len() != cluster.members.len() {
            return Err(NodeError::Config("duplicate member ids".into()));
        }
        if cluster.joining {
            voters.remove(&cluster.id);
            if voters.is_empty() {
                return Err(NodeError::Config(
                    "a joining node needs the existing members".into(),
                ));
            }
        }
        let mut rc = RaftConfig::new(cluster.id, voters);
        rc.heartbeat_interval_ms = cluster.heartbeat_ms;
        (rc.election_timeout_ms_min, rc.election_timeout_ms_max) = cluster.election_timeout_ms;
        if let Some(n) = cluster.compaction_entries {
            rc.log_compaction_threshold = n;
        }
        if let Some(n) = cluster.snapshot_chunk_bytes {
            rc.snapshot_chunk_bytes = n;
        }
        #[cfg(feature = "planted-bugs")]
        {
            rc.bugs = cluster.bugs.clone();
        }
        let policy = CheckpointPolicy {
            entries: cluster.checkpoint_entries.unwrap_or_else(|| {
                let half = rc.log_compaction_threshold / 2;
                CheckpointPolicy::default().entries.min(half.max(1))
            }),
            ..CheckpointPolicy::default()
        };
        // The held changes' key hashes get their own seed, not the election jitter's.
        let hash_seed = cluster.seed.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15;
        let store = WriteBack::new(store, policy)?.with_hash_seed(hash_seed);
        let raft = Raft::new(rc, &store, cluster.seed, now)?;
        let db = Db::open(&store)?;
        let applied = raft.status().applied;
        let announced = config
            .cluster
            .members
            .iter()
            .filter(|m| m.id != config.cluster.id)
            .map(|m| (m.id, cluster_addr(&m.client_addr, m.cluster_port)))
            .collect();
        let mut node = Self {
            config,
            store,
            db,
            raft,
            applied,
            conns: BTreeMap::new(),
            remotes: 0,
            next_remote: 0,
            proposals: Vec::new(),
            waiters: Waiters::default(),
            reads: BTreeMap::new(),
            reads_ready: VecDeque::new(),
            next_read: 0,
            fwd_dirty: BTreeSet::new(),
            forwards: BTreeMap::new(),
            next_forward: 0,
            forwards_seen: BTreeMap::new(),
            to_apply: Vec::new(),
            to_resume: Vec::new(),
            blocked: blocking::Blocked::default(),
            announced,
            pubsub: pubsub::PubSub::default(),
            clock: None,
            next_expire: now,
            outputs: VecDeque::new(),
            stats: Stats::default(),
            started: now,
            now,
            failed: None,
        };
        node.announce_members();
        if node.sole_voter() {
            node.raft.campaign(&mut node.store, now)?;
            for _ in 0..STARTUP_ROUNDS {
                if !node.step() {
                    break;
                }
            }
            if let Some(why) = &node.failed {
                return Err(NodeError::Store(StoreError::Engine(why.clone())));
            }
            if node.applied > applied {
                tracing::info!(
                    from = applied.0,
                    to = node.applied.0,
                    "applied log entries left by the last run"
                );
            }
        }
        Ok(node)
    }

    pub fn store(&self) -> &S {
        self.store.inner()
    }

    /// The store itself, for a simulator that plays the disk under the node (completing a
    /// pipelined sync with `MemStore::sync_through`). Writing through it bypasses the node.
    pub fn store_mut(&mut self) -> &mut S {
        self.store.inner_mut()
    }

    /// Gives the store back without syncing it or writing the state held since the last
    /// checkpoint: what a crash leaves is up to the store (the simulator crashes it, then opens
    /// a new node on it). Call [`Node::sync`] first for a clean stop.
    pub fn into_store(self) -> S {
        self.store.into_inner()
    }

    /// Counts bytes the driver wrote to clients (INFO `total_net_output_bytes`).
    pub fn add_bytes_out(&mut self, n: u64) {
        self.stats.net_output_bytes += n;
    }

    /// The next deadline the driver must call [`Node::handle_timeout`] at: Raft's heartbeats
    /// and elections, and the timeouts of requests in flight.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.failed.is_some() {
            return None;
        }
        let mut t = self.raft.poll_timeout();
        let mut earlier = |d: Instant| t = Some(t.map_or(d, |t| t.min(d)));
        // Deadlines mostly grow with the index and the forward id, so the first is the
        // earliest; after a leader change overwrote indexes it may not be, and a waiter that
        // expired behind it is answered at the next timer (Raft's, at most a heartbeat or an
        // election timeout away) rather than scanned for on every drive round.
        if let Some(d) = self.waiters.first_deadline() {
            earlier(d);
        }
        if let Some((_, f)) = self.forwards.first_key_value() {
            earlier(f.deadline);
        }
        if let Some(d) = self.blocked.next_deadline() {
            earlier(d);
        }
        if let Some(d) = self.expire_timeout() {
            earlier(d);
        }
        t
    }

    /// Fires due timers. Spurious calls are no-ops.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if self.failed.is_some() {
            return;
        }
        if let Err(e) = self.raft.handle_timeout(&mut self.store, self.now) {
            self.fail(e);
            return;
        }
        self.promote_caught_up_learners();
        self.announce_members();
        self.expire_tick();
        for w in self.waiters.take_expired(self.now) {
            self.answer(
                w.conn,
                Kind::Write,
                unknown_outcome("was not committed in time"),
            );
        }
        while let Some((&id, f)) = self.forwards.first_key_value() {
            if f.deadline > self.now {
                break;
            }
            let leader = f.to;
            tracing::warn!(leader = leader.0, "a forwarded request timed out");
            self.forward_done(id, Vec::new());
        }
        self.expire_blocked();
    }

    /// Raft's view of this node: role, term, commit and applied index, membership.
    pub fn raft_status(&self) -> raft::Status {
        self.raft.status()
    }

    /// Snapshots from the leader this node installed since it started.
    pub fn snapshots_installed(&self) -> u64 {
        self.stats.snapshots_installed
    }

    /// Asserts the node's invariants; tests and the simulator call it after every input and
    /// every drain. Reads the store, so it is not for the production hot path.
    pub fn check_invariants(&self) {
        self.raft.check_invariants();
        let raft = self.raft.status();
        assert!(
            self.applied <= raft.applied,
            "the state machine applied {} beyond what Raft handed out ({})",
            self.applied.0,
            raft.applied.0
        );
        assert!(
            self.to_apply.is_empty(),
            "entries collected and left unapplied"
        );
        self.waiters.check_invariants();
        if let Some(index) = self.waiters.first_index() {
            assert!(
                index > self.applied.0,
                "a waiter at an applied index {index}"
            );
        }
        self.check_blocked();
        self.pubsub
            .check_invariants(|conn| self.conns.contains_key(&conn));
        if self.failed.is_some() {
            return;
        }
        self.store.check_read_cache();
        let Ok(stored) = raft::applied_index(&self.store) else {
            return;
        };
        assert_eq!(
            stored,
            self.store.checkpointed(),
            "the store's applied index is the last checkpoint's"
        );
        let state = self.store.applied();
        assert!(
            stored <= state,
            "the checkpoint {} is ahead of the state {}",
            stored.0,
            state.0
        );
        // The log holds every entry after the checkpoint, so a restart can replay them.
        assert!(
            raft.snapshot_index <= stored,
            "the log was compacted to {}, past the checkpoint {}",
            raft.snapshot_index.0,
            stored.0
        );
        // The state reads see is exactly the state at the applied index, except between a
        // snapshot install (written at once) and the drain that takes it, when it is ahead.
        if self.raft.has_output() {
            assert!(
                state >= self.applied,
                "the state's applied index went backwards"
            );
        } else {
            assert_eq!(
                state, self.applied,
                "the state's applied index is the state machine's"
            );
            self.db.check_deadlines(&self.store);
        }
    }

    /// Writes a checkpoint of everything applied, makes it durable and compacts the log
    /// behind it (for a clean shutdown: the next start replays no log, and the directory holds
    /// the state, not also the log of it).
    ///
    /// # Panics
    /// While a pipelined sync ([`Output::Sync`]) is running: wait for it first.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        assert!(
            !self.raft.sync_running(),
            "a clean stop's sync while a pipelined sync runs"
        );
        self.store.checkpoint()?;
        self.store.sync()?;
        // Everything applied is in the synced state now: the log behind it can go (losing
        // this write in a crash leaves the log, still valid).
        self.raft.compact_to_durable(&mut self.store)?;
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
            } => self.request_input(conn, args, wire_bytes, unix),
            Input::Requests {
                conn,
                requests,
                unix,
            } => {
                for request in requests.iter() {
                    if !self.packed_request(conn, &request, unix) {
                        self.request_input(conn, request.to_args(), request.wire_bytes(), unix);
                    }
                }
            }
            Input::ProtocolError { conn, error } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                if !c.deferred.is_empty() || !c.ready(Kind::Other, None) {
                    c.deferred.push_back(Deferred::ProtocolError(error));
                } else {
                    self.protocol_error(conn, error);
                }
            }
            Input::Disconnect { conn } => {
                if self.conns.get(&conn).is_some_and(|c| c.remote.is_none()) {
                    self.conns.remove(&conn);
                    self.drop_blocked(conn);
                    self.pubsub.drop_conn(conn);
                }
            }
            Input::Peer { from, bytes } => self.peer_input(from, &bytes),
            Input::Synced { upto, error } => {
                self.raft.synced(upto);
                if let Some(e) = error {
                    self.fail(StoreError::Engine(format!("sync: {e}")));
                }
            }
        }
    }

    /// A client's request as it arrives: run now, deferred behind what its connection waits
    /// for, or dropped with a closed connection.
    fn request_input(&mut self, conn: ConnId, args: Vec<Bytes>, wire_bytes: u64, unix: UnixMillis) {
        self.stats.net_input_bytes += wire_bytes;
        self.note_unix(unix);
        let spec = args.first().and_then(|name| cmd::lookup(name));
        let k = kind(spec, &args);
        let path = (k == Kind::Read).then(|| self.read_via(conn));
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.closing {
            return;
        }
        c.last_active = self.now;
        if !c.deferred.is_empty() || !c.ready(k, path.flatten()) {
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
        self.request_as(conn, spec, args, unix);
    }

    /// Pipelines the node's syncs from now on: instead of syncing the store itself while it
    /// drains, the node emits [`Output::Sync`] and goes on taking and proposing requests while
    /// the driver syncs; what waits for the sync (replies, votes, acknowledgements) leaves once
    /// [`Input::Synced`] reports it done. A driver calls this when its store hands out a
    /// [`crate::store::Syncer`]; without it the node syncs inline.
    pub fn pipeline_syncs(&mut self) {
        self.raft.pipeline_syncs();
    }

    /// The next output. Runs the node's internal work first when there is some: proposing
    /// the writes of this round, syncing (group commit), applying what committed, answering.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        loop {
            if let Some(out) = self.outputs.pop_front() {
                return Some(out);
            }
            if !self.step() {
                return None;
            }
        }
    }

    /// Whether [`Node::poll_output`] has an output without doing more work first: a driver
    /// that holds outputs back to send them together sends them before the node goes on to
    /// work that may take a while (a sync).
    pub fn output_ready(&self) -> bool {
        !self.outputs.is_empty()
    }

    /// One round of internal work; false when there was none.
    fn step(&mut self) -> bool {
        if self.failed.is_some() {
            return false;
        }
        let mut did = false;
        if !self.proposals.is_empty() {
            did = true;
            self.propose_round();
        }
        if !self.fwd_dirty.is_empty() {
            did = true;
            self.send_forwards();
        }
        if self.raft.needs_flush() {
            did = true;
            if let Err(e) = self.raft.flush(&mut self.store, self.now) {
                self.fail(e);
                return true;
            }
        }
        while let Some(out) = self.raft.poll_output() {
            did = true;
            self.raft_output(out);
        }
        self.apply_collected();
        self.wake_blocked();
        self.serve_ready_reads();
        if !self.to_resume.is_empty() {
            did = true;
            for conn in std::mem::take(&mut self.to_resume) {
                self.resume(conn);
            }
        }
        did
    }

    fn sole_voter(&self) -> bool {
        let voters = &self.raft.membership().voters;
        voters.len() == 1 && voters.contains(&self.raft.id())
    }

    fn is_leader(&self) -> bool {
        self.raft.role() == Role::Leader
    }

    /// Executes one request now (nothing pending on the connection stands in its way).
    fn request(&mut self, conn: ConnId, args: Vec<Bytes>, unix: UnixMillis) {
        let spec = args.first().and_then(|name| cmd::lookup(name));
        self.request_as(conn, spec, args, unix);
    }

    /// [`Node::request`] with the name already looked up (`spec`).
    fn request_as(
        &mut self,
        conn: ConnId,
        spec: Option<&'static cmd::CommandSpec>,
        args: Vec<Bytes>,
        unix: UnixMillis,
    ) {
        self.stats.commands += 1;
        if args.is_empty() {
            return;
        }
        if self.conns.get(&conn).is_some_and(|c| c.txn.queuing()) && !txn::is_control(&args[0]) {
            return self.queue_in_multi(conn, args);
        }
        if let Some(spec) = spec.filter(|s| s.arity_ok(args.len()))
            && !pubsub::allowed_when_subscribed(spec.name)
            && self.in_subscribe_mode(conn)
        {
            return self.reply(conn, pubsub::not_in_subscribe_context(spec.name));
        }
        let parsed = cmd::parse_as(spec, &args);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.last_cmd = match (&parsed, spec) {
            (Ok(_), Some(spec)) => spec.name,
            _ => "NULL",
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
            Command::Read(r) if blocking::blocking(&r).is_some() => self.blocking_read(conn, r),
            Command::Read(r) => self.read(conn, r, args, unix),
            Command::Write(w) => self.write(conn, vec![w], ReplyShape::Single, unix),
            Command::BatchSet { key, value, ts } => self.batch_set(conn, key, value, ts),
            Command::BatchFlush => self.batch_flush(conn, unix),
        }
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.config.cluster.request_timeout_ms)
    }

    fn raft_output(&mut self, out: RaftOutput) {
        if let RaftOutput::Apply(entry) = out {
            self.to_apply.push(entry);
            return;
        }
        // Everything else is ordered after the entries before it.
        self.apply_collected();
        match out {
            RaftOutput::Apply(_) => unreachable!("handled above"),
            RaftOutput::Send { to, msg } => self.send_peer(to, PeerBody::Raft(msg)),
            RaftOutput::LeaderChanged { leader, term } => {
                tracing::info!(
                    leader = leader.map_or(0, |l| l.0),
                    term = term.0,
                    me = self.raft.id().0,
                    "leader changed"
                );
            }
            RaftOutput::ReadReady { ctx, index } => self.reads_ready.push_back((index, ctx)),
            RaftOutput::ReadFailed { ctx } => {
                if let Some((conn, _)) = self.reads.remove(&ctx) {
                    let frame = Frame::error(
                        "TRYAGAIN leadership changed before the read was confirmed; retry",
                    );
                    self.answer(conn, Kind::Read, frame);
                }
            }
            RaftOutput::SnapshotInstalled { index } => self.snapshot_installed(index),
            RaftOutput::Sync { upto } => self.outputs.push_back(Output::Sync { upto }),
        }
    }

    /// Tells the driver which members to keep a link to and where they are: every other
    /// member of the Raft membership whose address is known (replicated, or from the config).
    fn announce_members(&mut self) {
        let me = self.raft.id();
        let now: BTreeMap<NodeId, String> = self
            .raft
            .membership()
            .members()
            .into_iter()
            .filter(|id| *id != me)
            .filter_map(|id| {
                let (host, _, cport) = self.member_addr(id);
                (cport != 0).then(|| (id, format!("{host}:{cport}")))
            })
            .collect();
        if now == self.announced {
            return;
        }
        for (id, addr) in &now {
            if self.announced.get(id) != Some(addr) {
                let (id, addr) = (*id, Some(addr.clone()));
                self.outputs.push_back(Output::Member { id, addr });
            }
        }
        let gone: Vec<NodeId> = self
            .announced
            .keys()
            .filter(|id| !now.contains_key(id))
            .copied()
            .collect();
        for id in gone {
            self.outputs.push_back(Output::Member { id, addr: None });
        }
        self.announced = now;
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

    /// Raft could not write or sync: nothing it promised can be trusted any more.
    fn fail(&mut self, e: StoreError) {
        let frame = self.storage_failed(e);
        self.fail_all(&frame);
    }

    /// Answers everything in flight with `frame` (after a storage failure), then runs what
    /// waited behind it, which the failed node refuses in turn.
    fn fail_all(&mut self, frame: &Frame) {
        for p in std::mem::take(&mut self.proposals) {
            self.answer(p.conn, Kind::Write, frame.clone());
        }
        for w in self.waiters.take_all() {
            self.answer(w.conn, Kind::Write, frame.clone());
        }
        self.reads_ready.clear();
        for (_, (conn, _)) in std::mem::take(&mut self.reads) {
            self.answer(conn, Kind::Read, frame.clone());
        }
        let ids: Vec<u64> = self.forwards.keys().copied().collect();
        for id in ids {
            self.forward_done(id, Vec::new());
        }
        self.fail_blocked(frame);
        self.to_apply.clear();
        for _ in 0..STARTUP_ROUNDS {
            let conns = std::mem::take(&mut self.to_resume);
            if conns.is_empty() {
                break;
            }
            for conn in conns {
                self.resume(conn);
            }
        }
    }
}

/// `host:cluster_port` for a member whose clients use `client_addr` (`host:port`).
fn cluster_addr(client_addr: &str, cluster_port: u16) -> String {
    let host = client_addr.rsplit_once(':').map_or(client_addr, |(h, _)| h);
    format!("{host}:{cluster_port}")
}

fn cluster_down() -> Frame {
    Frame::error(
        "CLUSTERDOWN no leader is known (an election is in progress or a majority is unreachable); retry",
    )
}

fn not_leader() -> Frame {
    Frame::error("TRYAGAIN this node is no longer the leader; retry")
}

fn allowed_before_auth(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::Conn(
            ConnCmd::Auth { .. } | ConnCmd::Hello { .. } | ConnCmd::Quit | ConnCmd::Reset
        )
    )
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod cluster_tests;
