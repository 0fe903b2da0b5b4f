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

mod blocking;
mod cluster;
mod expire;
mod info;
pub mod log;
pub mod peer;
mod pubsub;
mod txn;
mod waiters;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;

use crate::cmd::{self, ClusterCmd, Command, CommandError, ConnCmd, ReadCmd, WriteCmd};
use crate::db::Db;
use crate::raft::{
    self, Entry, EntryKind, LogIndex, NodeId, ProposeError, Raft, RaftConfig, RaftOutput, Role,
    Term,
};
use crate::resp::{Frame, Protocol, encode};
use crate::store::{Store, StoreError};
use crate::writeback::{CheckpointPolicy, WriteBack};
use crate::{Instant, UnixMillis};

pub use expire::{EXPIRE_BATCH_MAX, EXPIRE_TICK_MS};
use log::{Decoded, LogEntry};
use peer::{ForwardItem, PeerBody};
pub use pubsub::SUBSCRIPTIONS_MAX_PER_CONN;
pub(crate) use pubsub::{notify_flags, notify_flags_text};
use waiters::{Waiter, Waiters};

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
    /// The sync [`Output::Sync`]`{ upto }` asked for completed (`error: None`: every store
    /// write made before the output was taken is durable) or failed (the node then refuses
    /// everything, as after any storage failure).
    Synced { upto: u64, error: Option<String> },
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
    /// Cluster member `id` is reached at `addr` (`host:cluster_port`) from now on, or (`None`)
    /// is no longer a member: the driver connects or disconnects its transport.
    Member { id: NodeId, addr: Option<String> },
    /// Pipelined syncs only ([`Node::pipeline_syncs`]): make every store write made so far
    /// durable (a [`crate::store::Syncer`] marked now, then synced beside the node's further
    /// writes) and feed [`Input::Synced`] with the same `upto` when it is done. The node asks
    /// for the next one only after that.
    Sync { upto: u64 },
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
    /// Writes proposed or forwarded and not yet answered.
    writes: u64,
    /// Reads waiting for a ReadIndex round or a forward, not yet answered.
    reads: u64,
    /// Where those reads wait; another read may join them only on the same path, so replies
    /// keep their order.
    reads_via: ReadVia,
    /// Requests waiting for earlier ones, in order.
    deferred: VecDeque<Deferred>,
    /// Samples buffered by BATCH_SET: (key, timestamp, value).
    batch: Vec<(Bytes, u64, f64)>,
    /// QUIT or a protocol error: nothing more is read or answered after the pending replies.
    closing: bool,
    /// Follower: requests for the leader not sent yet (sent by the next `poll_output`), and
    /// their approximate size.
    fwd: Vec<ForwardItem>,
    fwd_bytes: usize,
    /// Follower: the forward in flight. One at a time per connection keeps its order even if
    /// the network reorders or the leader changes.
    fwd_inflight: Option<u64>,
    /// Leader: set on the internal connection that runs one forwarded message.
    remote: Option<Remote>,
    /// MULTI's queue and WATCHed keys.
    txn: txn::ConnTxn,
    /// A `TS.READ ... BLOCK` runs or waits: nothing behind it runs until it is answered.
    blocked: bool,
}

impl Conn {
    fn new(kind: ConnKind, addr: String, authenticated: bool, now: Instant) -> Self {
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
    fn ready(&self, kind: Kind, path: Option<ReadVia>) -> bool {
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

/// The leader's side of one forwarded message: the replies gathered so far.
#[derive(Debug)]
struct Remote {
    from: NodeId,
    id: u64,
    /// The forwarding process's session, echoed in the reply.
    session: u64,
    expected: usize,
    replies: Vec<Vec<u8>>,
}

#[derive(Debug)]
enum Deferred {
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
enum Kind {
    /// Goes into the log.
    Write,
    /// Reads the state machine.
    Read,
    /// Connection and server commands, errors, BATCH_SET.
    Other,
}

/// Where a connection's pending reads wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadVia {
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

#[derive(Clone, Copy, Debug)]
enum ReplyShape {
    /// The reply of the entry's one command.
    Single,
    /// BATCH_FLUSH: the number of commands that did not fail.
    Count,
}

/// A write waiting for the next drive round to be proposed with the others (group commit).
#[derive(Debug)]
struct Proposal {
    conn: ConnId,
    entry: Vec<u8>,
    shape: ReplyShape,
    /// `entry` decoded, when this node has it at hand (it encoded it, or checked a forward).
    decoded: Option<Decoded>,
}

impl Proposal {
    /// Whom to answer, and the bytes to log.
    fn split(self) -> (Waiter, Vec<u8>) {
        let waiter = Waiter {
            conn: self.conn,
            shape: self.shape,
            decoded: self.decoded,
        };
        (waiter, self.entry)
    }
}

/// A follower's forward in flight.
#[derive(Debug)]
struct Forward {
    conn: ConnId,
    to: NodeId,
    /// Per item: whether it counts as a write (else a read).
    writes: Vec<bool>,
    deadline: Instant,
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
            } => {
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

    fn connect(&mut self, conn: ConnId, kind: ConnKind, addr: String) {
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
    fn client_count(&self) -> usize {
        self.conns.len() - self.remotes
    }

    fn reply(&mut self, conn: ConnId, frame: Frame) {
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
                self.write(conn, cmds.collect(), ReplyShape::Count, unix);
            }
        }
    }

    /// How a read on `conn` would be served now (`None`: refused).
    fn read_via(&self, conn: ConnId) -> Option<ReadVia> {
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

    fn read(&mut self, conn: ConnId, r: ReadCmd, args: Vec<Bytes>, unix: UnixMillis) {
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

    /// A write from a client: encoded once, checked against the entry limit, then proposed
    /// (leader) or forwarded (follower).
    fn write(&mut self, conn: ConnId, cmds: Vec<WriteCmd>, shape: ReplyShape, unix: UnixMillis) {
        let decoded = LogEntry::new(unix, cmds);
        let entry = decoded.encode();
        self.submit_write(conn, entry, shape, Some(Decoded::Writes(decoded)));
    }

    /// Proposes (leader) or forwards (follower) the encoded `entry`; `decoded` is what it
    /// decodes to, kept for the apply when this node proposes it.
    fn submit_write(
        &mut self,
        conn: ConnId,
        entry: Vec<u8>,
        shape: ReplyShape,
        decoded: Option<Decoded>,
    ) {
        if entry.len() > peer::MAX_ENTRY_BYTES {
            let msg = format!(
                "ERR write of {} bytes exceeds the limit of one replicated log entry ({} bytes)",
                entry.len(),
                peer::MAX_ENTRY_BYTES
            );
            return self.reply(conn, Frame::error(msg));
        }
        let leader = self.is_leader();
        let known = self.raft.leader();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if leader {
            c.writes += 1;
            self.proposals.push(Proposal {
                conn,
                entry,
                shape,
                decoded,
            });
        } else if c.remote.is_some() {
            self.reply(conn, not_leader());
        } else if known.is_some() {
            c.writes += 1;
            let count = matches!(shape, ReplyShape::Count);
            self.buffer_forward(conn, ForwardItem::Write { entry, count });
        } else {
            self.reply(conn, cluster_down());
        }
    }

    /// Proposes every write of this round in one store write (group commit), several
    /// clients' writes to an entry ([`log::GroupBuilder`]) up to the entry size limit.
    fn propose_round(&mut self) {
        let (entries, who) = group_proposals(&mut self.proposals);
        match self.raft.propose_many(&mut self.store, self.now, entries) {
            Ok((first, term)) => {
                let deadline = self.now.saturating_add(self.request_timeout());
                let mut lost = Vec::new();
                for (i, members) in who.into_iter().enumerate() {
                    let index = first.0 + i as u64;
                    self.waiters
                        .propose(index, term, deadline, members, &mut lost);
                }
                // Their entries were overwritten by a later leader's log: never applied.
                for old in lost {
                    self.answer(old.conn, Kind::Write, write_lost());
                }
            }
            Err(ProposeError::NotLeader { .. }) => {
                for w in who.into_iter().flatten() {
                    self.answer(w.conn, Kind::Write, not_leader());
                }
            }
            Err(e) => {
                let frame = self.storage_failed(StoreError::Engine(e.to_string()));
                for w in who.into_iter().flatten() {
                    self.answer(w.conn, Kind::Write, frame.clone());
                }
                self.fail_all(&frame);
            }
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

    /// Applies the committed entries collected from Raft in one transaction, held in memory
    /// with the applied index until the next checkpoint, then answers their clients.
    fn apply_collected(&mut self) {
        if self.to_apply.is_empty() || self.failed.is_some() {
            return;
        }
        let entries = std::mem::take(&mut self.to_apply);
        assert_eq!(
            entries[0].index,
            self.applied.next(),
            "entries apply in log order right after the applied index"
        );
        let mut notes = pubsub::Notes::new(&self.db, !self.pubsub.is_empty());
        let proposed = |index: LogIndex, term: Term, member: u32| {
            self.waiters.take_decoded(index.0, term, member)
        };
        let applied = match apply_entries(
            &mut self.db,
            &mut self.store,
            &entries,
            &mut notes,
            proposed,
        ) {
            Ok(replies) => replies,
            Err(e) => {
                let frame = self.storage_failed(e);
                self.fail_all(&frame);
                return;
            }
        };
        if notes.unix.0 > 0 {
            self.note_unix(notes.unix);
        }
        // Notes are in order: each applied entry (or member of a group) takes the run of them
        // that is its own.
        let mut pending = notes.out.as_slice();
        for (k, item) in applied.into_iter().enumerate() {
            let entry = &entries[item.entry];
            self.applied = entry.index;
            let mut replies = item.replies;
            let own = pending.iter().take_while(|n| n.entry == k).count();
            if own > 0 {
                self.deliver_notes(&pending[..own], replies.as_mut());
                pending = &pending[own..];
            }
            let Some(mut replies) = replies else { continue };
            self.stats.writes_applied += 1;
            let Some((term, waiter)) = self.waiters.take(entry.index.0, item.member) else {
                continue;
            };
            let frame = if term != entry.term {
                write_lost()
            } else {
                match waiter.shape {
                    ReplyShape::Single => match replies.iter().position(Frame::is_error) {
                        Some(i) => replies.swap_remove(i),
                        None => replies.into_iter().next().unwrap_or(Frame::Null),
                    },
                    ReplyShape::Count => {
                        let ok = replies.iter().filter(|f| !f.is_error()).count();
                        Frame::Integer(i64::try_from(ok).unwrap_or(i64::MAX))
                    }
                }
            };
            self.answer(waiter.conn, Kind::Write, frame);
        }
        self.announce_members();
        // Waiters at indexes that applied as no-ops or config changes lost their entry.
        for w in self.waiters.take_through(self.applied.0) {
            self.answer(w.conn, Kind::Write, write_lost());
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

    fn snapshot_installed(&mut self, index: LogIndex) {
        tracing::info!(index = index.0, "installed a snapshot from the leader");
        assert!(
            index > self.applied,
            "a snapshot at {} installed behind the applied index {}",
            index.0,
            self.applied.0
        );
        assert!(
            self.to_apply.is_empty(),
            "entries applied before the snapshot"
        );
        self.stats.snapshots_installed += 1;
        match Db::open(&self.store) {
            Ok(db) => self.db = db,
            Err(e) => {
                let frame = self.storage_failed(e);
                self.fail_all(&frame);
                return;
            }
        }
        self.applied = index;
        self.announce_members();
        for w in self.waiters.take_through(index.0) {
            let frame = unknown_outcome("was overtaken by a snapshot from the leader");
            self.answer(w.conn, Kind::Write, frame);
        }
    }

    fn serve_ready_reads(&mut self) {
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

    /// Answers a pending write or read of a connection and lets the requests behind it run.
    fn answer(&mut self, conn: ConnId, kind: Kind, frame: Frame) {
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
    fn resume(&mut self, conn: ConnId) {
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

    fn conn_command(&mut self, conn: ConnId, cmd: ConnCmd, unix: UnixMillis) {
        let reply = match cmd {
            ConnCmd::Ping(msg) if self.in_subscribe_mode(conn) => Frame::Array(vec![
                Frame::bulk(Bytes::from_static(b"pong")),
                Frame::Bulk(msg.unwrap_or_default()),
            ]),
            ConnCmd::Ping(None) => match self.conns.get(&conn).map(|c| c.protocol) {
                Some(_) => Frame::simple("PONG"),
                None => return,
            },
            c @ (ConnCmd::Ping(Some(_)) | ConnCmd::Echo(_) | ConnCmd::Time) => {
                txn::conn_op(c, unix)
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
                    c.txn = txn::ConnTxn::default();
                    c.authenticated = self.config.requirepass.is_none();
                }
                self.pubsub.drop_conn(conn);
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
                    .iter()
                    .filter(|(_, c)| c.remote.is_none())
                    .map(|(&id, _)| self.client_line(id) + "\n")
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
            ConnCmd::ConfigSet(pairs) => match self.config_set(conn, pairs, unix) {
                Some(frame) => frame,
                None => return,
            },
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
            ConnCmd::ModuleList => info::module_list(),
            ConnCmd::DbSize => {
                Frame::Integer(i64::try_from(self.db.key_count()).unwrap_or(i64::MAX))
            }
            ConnCmd::ClusterInfo => Frame::Verbatim {
                format: *b"txt",
                text: Bytes::from(self.cluster_info_text()),
            },
            ConnCmd::Cluster(cc) => match self.cluster_command(conn, cc, unix) {
                Some(frame) => frame,
                None => return,
            },
            ConnCmd::Multi => self.multi(conn),
            ConnCmd::Exec => return self.exec(conn, unix),
            ConnCmd::Discard => self.discard(conn),
            ConnCmd::Watch(keys) => self.watch(conn, keys),
            ConnCmd::Unwatch => self.unwatch(conn),
            ConnCmd::Subscribe { patterns, names } => {
                return self.subscribe(conn, patterns, names);
            }
            ConnCmd::Unsubscribe { patterns, names } => {
                return self.unsubscribe(conn, patterns, names);
            }
            ConnCmd::PubSubChannels(pattern) => self.pubsub_channels(pattern.as_deref()),
            ConnCmd::PubSubNumSub(channels) => self.pubsub_numsub(&channels),
            ConnCmd::PubSubNumPat => self.pubsub_numpat(),
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
        let mode = if self.sole_voter() {
            "standalone"
        } else {
            "cluster"
        };
        let role = if self.is_leader() {
            "master"
        } else {
            "replica"
        };
        Frame::Map(vec![
            (Frame::text("server"), Frame::text("redis")),
            (Frame::text("version"), Frame::text(REDIS_COMPAT_VERSION)),
            (Frame::text("proto"), Frame::Integer(proto)),
            (
                Frame::text("id"),
                Frame::Integer(i64::try_from(conn.0).unwrap_or(i64::MAX)),
            ),
            (Frame::text("mode"), Frame::text(mode)),
            (Frame::text("role"), Frame::text(role)),
            (Frame::text("modules"), info::module_list()),
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

    /// `CONFIG SET`: cluster-wide settings (CONFIG_UPDATE) go through the log like a write,
    /// so every node applies them; node-local settings come from the config file and flags.
    fn config_set(
        &mut self,
        conn: ConnId,
        pairs: Vec<(String, Bytes)>,
        unix: UnixMillis,
    ) -> Option<Frame> {
        let mut cmds = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            if !crate::db::meta::is_setting(&name) {
                let cluster: Vec<&str> =
                    crate::db::meta::SETTINGS.iter().map(|(n, _)| *n).collect();
                return Some(Frame::error(format!(
                    "ERR CONFIG SET {name}: not a cluster-wide setting; change node settings in the config file or flags and restart (cluster-wide: {})",
                    cluster.join(", ")
                )));
            }
            match crate::db::meta::validate(&name, &value) {
                Ok(value) => cmds.push(WriteCmd::Meta(crate::db::meta::MetaWrite::Config {
                    name,
                    value,
                })),
                Err(e) => return Some(Frame::error(e)),
            }
        }
        self.write(conn, cmds, ReplyShape::Single, unix);
        None
    }

    fn config_get(&self, patterns: &[Bytes]) -> Frame {
        let mut pairs = Vec::new();
        let meta = self.db.meta();
        let cluster = crate::db::meta::SETTINGS.iter().map(|(n, _)| {
            (
                (*n).to_string(),
                meta.setting(n).unwrap_or_default().to_string(),
            )
        });
        for (name, value) in self.config.settings.iter().cloned().chain(cluster) {
            if patterns
                .iter()
                .any(|p| crate::db::glob::matches(&p.to_ascii_lowercase(), name.as_bytes()))
            {
                pairs.push((Frame::text(name), Frame::text(value)));
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
        let flags = match (c.txn.queuing(), c.readonly) {
            (true, _) => "x",
            (false, true) => "r",
            (false, false) => "N",
        };
        let resp = if c.protocol == Protocol::Resp3 { 3 } else { 2 };
        let (sub, psub) = self.pubsub.counts(id);
        let flags = if sub + psub > 0 && flags == "N" {
            "P"
        } else {
            flags
        };
        format!(
            "id={} addr={} laddr= fd=-1 name={} age={age} idle={idle} flags={flags} db=0 sub={sub} psub={psub} ssub=0 multi={} watch={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll={} omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={resp} lib-name={} lib-ver={} transport={kind} pending-writes={} batch={}",
            id.0,
            c.addr,
            text(&c.name),
            c.txn.queued(),
            c.txn.watched(),
            c.deferred.len(),
            c.last_cmd,
            text(&c.lib_name),
            text(&c.lib_ver),
            c.writes + c.reads,
            c.batch.len(),
        )
    }
}

/// Who waits for each member of one proposed entry, in member order, with the member decoded
/// when the proposal had it.
type Members = Vec<Waiter>;

/// The round's proposals as log entries: consecutive writes share a group entry
/// ([`log::GroupBuilder`]) while it stays within the entry size limit; a lone write stays a
/// plain entry. Returns the entries and, per entry, who waits for each member.
///
/// Takes the proposals out of `proposals`, which keeps its capacity for the next round; each
/// group is written into one buffer of its size.
fn group_proposals(proposals: &mut Vec<Proposal>) -> (Vec<Vec<u8>>, Vec<Members>) {
    // Runs of proposals that fit one entry: their count and the bytes of their commands.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut size = 0;
    for p in proposals.iter() {
        let add = log::GROUP_MEMBER_OVERHEAD + p.entry.len();
        match runs.last_mut() {
            Some((count, bytes)) if size + add <= peer::MAX_ENTRY_BYTES => {
                *count += 1;
                *bytes += p.entry.len();
            }
            _ => {
                size = log::GROUP_HEADER;
                runs.push((1, p.entry.len()));
            }
        }
        size += add;
    }
    let mut entries = Vec::with_capacity(runs.len());
    let mut who = Vec::with_capacity(runs.len());
    let mut taken = proposals.drain(..);
    for (count, bytes) in runs {
        let mut members = Members::with_capacity(count);
        let mut run = taken.by_ref().take(count);
        let entry = if count == 1 {
            let p = run.next().expect("a run has its proposals");
            let (waiter, entry) = p.split();
            members.push(waiter);
            entry
        } else {
            let mut group = log::GroupBuilder::new(count, bytes);
            for p in run {
                group.push(&p.entry);
                members.push(p.split().0);
            }
            group.finish()
        };
        entries.push(entry);
        who.push(members);
    }
    (entries, who)
}

/// What applying one entry, or one member of a group entry, gave.
struct Applied {
    /// Position of the entry in the applied slice.
    entry: usize,
    /// Member of a group entry (0 for a plain entry).
    member: u32,
    /// The replies of its commands (`None` for no-ops and membership changes).
    replies: Option<Vec<Frame>>,
}

/// Applies committed entries, in order, in one transaction whose changes the write-back layer
/// holds with the applied index until the next checkpoint (no store write per drive round:
/// the Raft log, synced before the entries committed, is their durable record); returns what
/// each entry, and each member of a group entry, gave.
///
/// `proposed(index, term, member)` gives the member as this node proposed it, decoded, if it
/// still has it: that saves decoding the bytes it logged.
fn apply_entries<S: Store>(
    db: &mut Db,
    store: &mut WriteBack<S>,
    entries: &[Entry],
    notes: &mut pubsub::Notes,
    mut proposed: impl FnMut(LogIndex, Term, u32) -> Option<Decoded>,
) -> Result<Vec<Applied>, StoreError> {
    let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
        return Ok(Vec::new());
    };
    // Each entry applies exactly once, on the state right after its predecessor: the applied
    // index of the state (held with it, and stored with it at each checkpoint) must be the one
    // before the first entry. A snapshot installed meanwhile, or a replay of entries the state
    // already holds, would break this and apply something twice.
    let stored = store.applied();
    assert_eq!(
        stored.next(),
        first.index,
        "applying entry {} on a state that has applied up to {}",
        first.index.0,
        stored.0
    );
    assert!(
        entries.windows(2).all(|w| w[1].index == w[0].index.next()),
        "entries apply without gaps"
    );
    let mut tx = store.round();
    let mut all = Vec::with_capacity(entries.len());
    let mut bytes = 0;
    for (k, entry) in entries.iter().enumerate() {
        let EntryKind::Normal(data) = &entry.kind else {
            all.push(Applied {
                entry: k,
                member: 0,
                replies: None,
            });
            continue;
        };
        bytes += data.len() as u64;
        let members = match log::group_members(data) {
            Some(members) => members?,
            None => vec![&data[..]],
        };
        for (member, data) in members.into_iter().enumerate() {
            notes.entry = all.len();
            let member = u32::try_from(member).expect("a group's members fit its u32 count");
            let decoded = match proposed(entry.index, entry.term, member) {
                Some(d) => {
                    // The node's own tests check that what it kept is what it logged.
                    #[cfg(test)]
                    assert_eq!(
                        d.encode(),
                        data,
                        "a proposal kept decoded is what was logged"
                    );
                    d
                }
                None => Decoded::decode(data)?,
            };
            let replies = txn::apply_entry(db, &mut tx, &decoded, entry.index, notes)?;
            all.push(Applied {
                entry: k,
                member,
                replies: Some(replies),
            });
        }
    }
    drop(tx);
    store.end_round(last.index, entries.len() as u64, bytes);
    if store.checkpoint_due() {
        store.checkpoint()?;
    }
    Ok(all)
}

/// How a request orders against the ones before it (decided from the name alone).
fn kind(spec: Option<&cmd::CommandSpec>, args: &[Bytes]) -> Kind {
    match spec {
        // PUBLISH is a log entry too (see `pubsub`), though Redis does not flag it a write.
        Some(s) if s.is_write() || s.name == "publish" => Kind::Write,
        Some(_) if blocking::blocks(args) => Kind::Other,
        // DBSIZE is answered from a local counter like a connection command.
        Some(s) if s.flags.contains(&"readonly") && s.name != "dbsize" => Kind::Read,
        _ => Kind::Other,
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

fn write_lost() -> Frame {
    Frame::error("TRYAGAIN the write was lost in a leader change and not applied; retry")
}

fn unknown_outcome(why: &str) -> Frame {
    Frame::error(format!(
        "TIMEOUT the write {why}: it may or may not have been applied"
    ))
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

#[cfg(test)]
mod cluster_tests;
