//! The async node driver: one task owns the sans-IO [`Node`] and follows its drive rule.
//!
//! Endpoints (TCP, ZeroMQ) send [`DriverMsg`]s into a bounded channel; the task feeds every
//! message already queued into the node before it drains the node's outputs, so all writes that
//! arrived together share one sync (group commit). Replies go to each connection's bounded
//! queue; a client whose queue is full is too slow to keep up and is disconnected rather than
//! letting its replies grow without bound.
//!
//! In a cluster ([`run_cluster_node`]) the task also owns the peer transport (the ZeroMQ
//! [`Mesh`] in production; any [`PeerTransport`] through [`run_cluster_node_with`], e.g. the
//! simulator's turmoil TCP links): each inbound peer message becomes an [`Input::Peer`] fed in
//! the same batch as client input (so replication traffic and client writes share one drain
//! and one sync), and each [`Output::Send`] is queued on the transport without waiting. The
//! transport is best effort by contract (Raft retransmits), so a message it refuses (full
//! queue, unknown peer, oversized) is logged at debug, counted in
//! [`NodeHandle::mesh_sends_dropped`] and otherwise ignored. The driver never looks inside a
//! peer payload.
//!
//! Syncs are pipelined when the store hands out a [`tickdb_core::store::Syncer`] (RocksDB's
//! does): the node asks for each with [`Output::Sync`] and goes on while it runs on a thread of
//! its own ([`crate::syncs`]); the completion is fed back as [`Input::Synced`] before anything
//! else. A store without one is synced inline, blocking the task. Apart from that thread only
//! `tokio` primitives are used, and a store in memory is synced in a task instead, so the same
//! driver runs under turmoil's simulated runtime.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tickdb_core::node::{ConnId, ConnKind, Input, Node, Output};
use tickdb_core::raft::NodeId;
use tickdb_core::resp::{Frame, Protocol};
use tickdb_core::store::Store;
use tickdb_core::{Instant, UnixMillis};
use tokio::sync::{mpsc, watch};

use crate::mesh::{Mesh, MeshReceiver};
use crate::syncs::Syncs;

/// The outbound half of a cluster transport, owned by the node task. The inbound half is a
/// `mpsc::Receiver<(u64, Vec<u8>)>` of (sender id, message) that the transport's own tasks
/// fill; it closes when the transport can no longer receive.
///
/// Neither method may wait: they run inside the node task, between the node's outputs.
pub trait PeerTransport {
    /// Why a message was not queued; only logged.
    type Error: std::fmt::Display;

    /// Queues `bytes` for member `to` (best effort: no delivery guarantee, may drop).
    fn send(&self, to: NodeId, bytes: Vec<u8>) -> Result<(), Self::Error>;

    /// Member `id` is reached at `addr` (`host:cluster_port`) from now on, or (`None`) is no
    /// longer a member. Called for this node's own id too; implementations ignore that.
    fn set_member(&mut self, id: NodeId, addr: Option<&str>);
}

impl PeerTransport for Mesh {
    type Error = crate::mesh::MeshError;

    fn send(&self, to: NodeId, bytes: Vec<u8>) -> Result<(), Self::Error> {
        Self::send(self, to.0, bytes)
    }

    fn set_member(&mut self, id: NodeId, addr: Option<&str>) {
        if id.0 == self.node_id() {
            return;
        }
        let Some(addr) = addr else {
            self.remove_peer(id.0);
            return;
        };
        match addr.parse::<std::net::SocketAddr>() {
            Ok(addr) => {
                if let Err(e) = self.set_peer(id.0, addr) {
                    tracing::warn!(peer = id.0, %addr, error = %e, "cannot link to a cluster member");
                }
            }
            Err(e) => {
                tracing::warn!(peer = id.0, addr, error = %e, "a cluster member's address is not IP:PORT");
            }
        }
    }
}

/// Most messages fed into the node before its outputs are drained; bounds the latency one
/// busy loop iteration adds to replies.
pub const INPUT_BATCH_MAX: usize = 4096;

/// Capacity of the channel from endpoints to the node task.
pub const INPUT_QUEUE: usize = 65_536;

/// What the node task sends a connection.
#[derive(Debug)]
pub enum ConnOut {
    Reply(Frame, Protocol),
    /// Consecutive replies to one connection from one drain, in order: one message (one
    /// channel push and one wake-up of the writer) for a pipeline's replies.
    Replies(Vec<(Frame, Protocol)>),
    /// That many `+OK` replies in a row ([`Output::Oks`]).
    Oks(u32),
    /// A pub/sub message (or confirmation): written like a reply; its bytes count against
    /// [`PUBSUB_OUTPUT_MAX_BYTES`] until the writer takes it off the queue.
    Push(Frame, Protocol, PushBytes),
    /// Close after the replies before this one.
    Close,
}

/// Most bytes of pub/sub messages queued for one client, like Redis's hard
/// `client-output-buffer-limit pubsub 32mb`: a subscriber that does not read is disconnected
/// rather than buffered without bound. (Replies are bounded by count as well, by the queue.)
pub const PUBSUB_OUTPUT_MAX_BYTES: u64 = 32 * 1024 * 1024;

/// The size of one queued push message, given back to its connection's count when the writer
/// has taken it (dropped it).
#[derive(Debug)]
pub struct PushBytes {
    queued: Arc<AtomicU64>,
    size: u64,
}

impl Drop for PushBytes {
    fn drop(&mut self) {
        self.queued.fetch_sub(self.size, Ordering::Relaxed);
    }
}

impl ConnOut {
    /// How many replies (or pushes, or closes) this message holds: what it counts against its
    /// queue's bound.
    fn count(&self) -> usize {
        match self {
            Self::Replies(replies) => replies.len(),
            Self::Oks(count) => *count as usize,
            _ => 1,
        }
    }
}

/// A connection's reply queue, bounded by the replies in it rather than by messages (one
/// message may hold a pipeline's replies): an unbounded channel beside a count the sender
/// checks and the receiver gives back. Made by [`reply_queue`].
#[derive(Debug)]
pub struct ReplySender {
    tx: mpsc::UnboundedSender<ConnOut>,
    queued: Arc<AtomicUsize>,
    max: usize,
}

/// Why [`ReplySender::try_send`] did not queue a message.
#[derive(Debug, PartialEq, Eq)]
pub enum ReplyQueueError {
    /// More than the bound would be queued: the client does not read its replies.
    Full,
    /// The connection's writer has gone.
    Closed,
}

impl ReplySender {
    /// Queues `msg` unless that would put more than the bound in the queue. Only the node task
    /// sends, so the check and the count cannot race another sender; the writer only takes.
    pub fn try_send(&self, msg: ConnOut) -> Result<(), ReplyQueueError> {
        let n = msg.count();
        if self.queued.load(Ordering::Relaxed) + n > self.max {
            return Err(ReplyQueueError::Full);
        }
        self.queued.fetch_add(n, Ordering::Relaxed);
        self.tx.send(msg).map_err(|_| ReplyQueueError::Closed)
    }
}

/// The connection's end of its reply queue.
#[derive(Debug)]
pub struct ReplyReceiver {
    rx: mpsc::UnboundedReceiver<ConnOut>,
    queued: Arc<AtomicUsize>,
}

impl ReplyReceiver {
    /// The next message, once there is one; None when the node task has let the queue go.
    pub async fn recv(&mut self) -> Option<ConnOut> {
        let msg = self.rx.recv().await?;
        self.taken(&msg);
        Some(msg)
    }

    /// The next message if one is queued.
    pub fn try_recv(&mut self) -> Option<ConnOut> {
        let msg = self.rx.try_recv().ok()?;
        self.taken(&msg);
        Some(msg)
    }

    fn taken(&self, msg: &ConnOut) {
        self.queued.fetch_sub(msg.count(), Ordering::Relaxed);
    }
}

/// A connection's reply queue holding at most `max` replies (at least one).
pub fn reply_queue(max: usize) -> (ReplySender, ReplyReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let tx = ReplySender {
        tx,
        queued: Arc::clone(&queued),
        max: max.max(1),
    };
    (tx, ReplyReceiver { rx, queued })
}

/// A connection's reply queue and the push bytes in it.
#[derive(Debug)]
struct ConnQueue {
    tx: ReplySender,
    push_bytes: Arc<AtomicU64>,
}

/// By connection id. The ids are the driver's own (a counter), so no client picks what collides:
/// foldhash instead of SipHash, which was 140 instructions of every request (a reply's lookup).
type Conns = HashMap<ConnId, ConnQueue, foldhash::fast::FixedState>;

/// About the bytes `frame` takes encoded: its payloads plus a little per element.
fn push_size(frame: &Frame) -> u64 {
    match frame {
        Frame::Push(items) | Frame::Array(items) => items.iter().map(push_size).sum::<u64>() + 16,
        Frame::Bulk(b) | Frame::Simple(b) | Frame::Error(b) => b.len() as u64 + 16,
        _ => 16,
    }
}

/// What endpoints send the node task.
#[derive(Debug)]
pub enum DriverMsg {
    /// A new client and the queue its replies go to.
    Connect {
        conn: ConnId,
        kind: ConnKind,
        addr: String,
        replies: ReplySender,
    },
    Input(Input),
    /// The requests decoded from one read of a connection, in order: one message (one
    /// channel slot and one wake-up of the node task) for a pipeline of them.
    Inputs(Vec<Input>),
}

/// Inputs an endpoint sends in one [`DriverMsg::Inputs`] at most, counted by
/// [`Input::count`] (packed requests one each), so that one message cannot make a drive round
/// much longer than [`INPUT_BATCH_MAX`] allows.
pub const INPUTS_PER_MSG_MAX: usize = 1024;

impl DriverMsg {
    /// The inputs in `batch` as one message (a lone input as [`DriverMsg::Input`]), leaving
    /// `batch` empty.
    ///
    /// # Panics
    /// If `batch` is empty.
    pub fn batch(batch: &mut Vec<Input>) -> Self {
        assert!(!batch.is_empty(), "a batch of no inputs");
        if batch.len() == 1 {
            Self::Input(batch.pop().expect("one input"))
        } else {
            Self::Inputs(std::mem::take(batch))
        }
    }
}

/// A cloneable handle endpoints use to reach the node task.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    tx: mpsc::Sender<DriverMsg>,
    next_conn: Arc<AtomicU64>,
    bytes_out: Arc<AtomicU64>,
    mesh_dropped: Arc<AtomicU64>,
    clock: Clock,
}

impl NodeHandle {
    /// A fresh connection id.
    pub fn conn_id(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    /// Sends a message to the node task; fails only when the node has stopped.
    pub async fn send(&self, msg: DriverMsg) -> Result<(), NodeStopped> {
        self.tx.send(msg).await.map_err(|_| NodeStopped)
    }

    /// Adds `input` to `batch`, the requests of one read or message, and sends the batch as
    /// one message once it holds [`INPUTS_PER_MSG_MAX`] (by [`Input::count`]).
    pub async fn push_input(
        &self,
        batch: &mut Vec<Input>,
        input: Input,
    ) -> Result<(), NodeStopped> {
        batch.push(input);
        if batch.iter().map(Input::count).sum::<usize>() >= INPUTS_PER_MSG_MAX {
            self.send_inputs(batch).await?;
        }
        Ok(())
    }

    /// Sends what `batch` holds (nothing when it is empty) as one message, leaving it empty.
    pub async fn send_inputs(&self, batch: &mut Vec<Input>) -> Result<(), NodeStopped> {
        if batch.is_empty() {
            return Ok(());
        }
        self.send(DriverMsg::batch(batch)).await
    }

    /// Counts bytes written to clients for INFO.
    pub fn count_bytes_out(&self, n: u64) {
        self.bytes_out.fetch_add(n, Ordering::Relaxed);
    }

    /// Messages to peers the mesh refused (full queue, unknown peer, oversized) since start.
    pub fn mesh_sends_dropped(&self) -> u64 {
        self.mesh_dropped.load(Ordering::Relaxed)
    }

    /// Wall-clock time for stamping requests.
    pub fn unix_now(&self) -> UnixMillis {
        self.clock.unix_now()
    }

    pub fn now(&self) -> Instant {
        self.clock.now()
    }
}

/// The node task has stopped (shutdown or a fatal error).
#[derive(Debug, thiserror::Error)]
#[error("the node has stopped")]
pub struct NodeStopped;

/// The driver's clocks: tokio's monotonic clock (simulated under turmoil) and the wall clock.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: tokio::time::Instant,
}

impl Clock {
    pub fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Instant {
        let nanos = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        Instant::from_nanos(nanos)
    }

    pub fn unix_now(&self) -> UnixMillis {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        UnixMillis(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
    }

    fn to_tokio(self, at: Instant) -> tokio::time::Instant {
        self.origin + Duration::from_nanos(at.as_nanos())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Creates the channel to a node task; run the task with [`run_node`].
pub fn channel() -> (NodeHandle, mpsc::Receiver<DriverMsg>) {
    let (tx, rx) = mpsc::channel(INPUT_QUEUE);
    let handle = NodeHandle {
        tx,
        next_conn: Arc::new(AtomicU64::new(1)),
        bytes_out: Arc::new(AtomicU64::new(0)),
        mesh_dropped: Arc::new(AtomicU64::new(0)),
        clock: Clock::new(),
    };
    (handle, rx)
}

/// Runs the node until `shutdown` turns true (or every handle is dropped), then finishes the
/// work in flight, syncs the store and returns the node. A standalone node: nothing is sent to
/// or received from peers (an [`Output::Send`] is dropped and counted).
pub async fn run_node<S: Store>(
    node: Node<S>,
    handle: NodeHandle,
    rx: mpsc::Receiver<DriverMsg>,
    shutdown: watch::Receiver<bool>,
) -> Node<S> {
    run::<S, Mesh>(node, handle, rx, shutdown, None).await
}

/// [`run_node`] for a member of a cluster: `mesh` carries the node's [`Output::Send`]s and
/// `peers` (the receiver [`Mesh::start`] returned) its [`Input::Peer`]s. The mesh is dropped
/// (its sockets closed) when the node stops.
pub async fn run_cluster_node<S: Store>(
    node: Node<S>,
    handle: NodeHandle,
    rx: mpsc::Receiver<DriverMsg>,
    shutdown: watch::Receiver<bool>,
    mesh: Mesh,
    peers: MeshReceiver,
) -> Node<S> {
    run_cluster_node_with(node, handle, rx, shutdown, mesh, peers).await
}

/// [`run_cluster_node`] over any [`PeerTransport`]: `transport` carries the node's
/// [`Output::Send`]s and [`Output::Member`]s, `peers` delivers (sender id, message) as
/// [`Input::Peer`]s. The transport is dropped when the node stops.
pub async fn run_cluster_node_with<S: Store, T: PeerTransport>(
    node: Node<S>,
    handle: NodeHandle,
    rx: mpsc::Receiver<DriverMsg>,
    shutdown: watch::Receiver<bool>,
    transport: T,
    peers: mpsc::Receiver<(u64, Vec<u8>)>,
) -> Node<S> {
    let link = PeerLink {
        transport,
        peers: Some(peers),
    };
    run(node, handle, rx, shutdown, Some(link)).await
}

/// The driver's end of the peer transport.
struct PeerLink<T> {
    transport: T,
    /// `None` once the transport's inbound side stopped; sending goes on.
    peers: Option<mpsc::Receiver<(u64, Vec<u8>)>>,
}

/// One wake-up of the node task.
enum Wake {
    /// The pipelined sync completed: (upto, error).
    Synced(u64, Option<String>),
    Msg(DriverMsg),
    Peer(u64, Vec<u8>),
    /// The mesh's inbound side stopped.
    PeersClosed,
    Timeout,
}

async fn run<S: Store, T: PeerTransport>(
    mut node: Node<S>,
    handle: NodeHandle,
    mut rx: mpsc::Receiver<DriverMsg>,
    mut shutdown: watch::Receiver<bool>,
    mut mesh: Option<PeerLink<T>>,
) -> Node<S> {
    let clock = handle.clock;
    let bytes_out = Arc::clone(&handle.bytes_out);
    let dropped = Arc::clone(&handle.mesh_dropped);
    drop(handle);
    let mut conns: Conns = HashMap::default();
    let drain_to = |node: &mut Node<S>,
                    conns: &mut Conns,
                    mesh: &mut Option<PeerLink<T>>,
                    syncs: &mut Syncs| {
        let transport = mesh.as_mut().map(|m| &mut m.transport);
        drain(node, conns, transport, &dropped, syncs);
    };
    let mut syncs = Syncs::new(node.store().syncer());
    if syncs.pipelined() {
        node.pipeline_syncs();
    }
    loop {
        let deadline = node.poll_timeout();
        let peers = mesh.as_mut().and_then(|m| m.peers.as_mut());
        let wake = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            // Before input: under a steady stream of it, later branches may never be chosen,
            // and this one releases every reply waiting for the sync.
            (upto, error) = syncs.done() => Wake::Synced(upto, error),
            msg = rx.recv() => match msg {
                Some(msg) => Wake::Msg(msg),
                None => break,
            },
            peer = recv_peer(peers) => match peer {
                Some((from, bytes)) => Wake::Peer(from, bytes),
                None => Wake::PeersClosed,
            },
            () = sleep_until(clock, deadline) => Wake::Timeout,
        };
        let now = clock.now();
        let timer_fired = matches!(wake, Wake::Timeout);
        match wake {
            Wake::Synced(upto, error) => {
                node.handle_input(now, Input::Synced { upto, error });
                // What arrived while the sync ran joins this drain, so the next sync covers
                // it too (a group as large as when the node synced inline).
                feed_queued(&mut node, &mut conns, now, &mut rx, mesh.as_mut(), 0);
            }
            Wake::Timeout => node.handle_timeout(now),
            Wake::PeersClosed => {
                tracing::error!("the cluster transport stopped receiving; this node is cut off");
                if let Some(m) = mesh.as_mut() {
                    m.peers = None;
                }
            }
            Wake::Msg(msg) => {
                let fed = feed(&mut node, &mut conns, now, msg);
                feed_queued(&mut node, &mut conns, now, &mut rx, mesh.as_mut(), fed);
            }
            Wake::Peer(from, bytes) => {
                feed_peer(&mut node, now, from, bytes);
                feed_queued(&mut node, &mut conns, now, &mut rx, mesh.as_mut(), 1);
            }
        }
        // `biased` prefers input: under a steady stream of it the timer branch may never be
        // chosen, so fire overdue timers here too (heartbeats, CheckQuorum, request
        // timeouts). A call before the deadline is a no-op.
        if !timer_fired && node.poll_timeout().is_some_and(|t| t <= now) {
            node.handle_timeout(now);
        }
        // A sync that completed while the inputs were fed: its replies join this drain.
        if let Some((upto, error)) = syncs.try_done() {
            node.handle_input(now, Input::Synced { upto, error });
        }
        node.add_bytes_out(bytes_out.swap(0, Ordering::Relaxed));
        drain_to(&mut node, &mut conns, &mut mesh, &mut syncs);
    }
    drain_to(&mut node, &mut conns, &mut mesh, &mut syncs);
    // The sync running, and the few that what it releases may ask for (a vote that makes a
    // leader writes its first entry), complete before the clean stop's own sync.
    let mut rounds = 0;
    while syncs.running() {
        let (upto, error) = syncs.done().await;
        node.handle_input(clock.now(), Input::Synced { upto, error });
        rounds += 1;
        if rounds < STOP_SYNC_ROUNDS {
            drain_to(&mut node, &mut conns, &mut mesh, &mut syncs);
        }
    }
    drop(syncs);
    if let Err(e) = node.sync() {
        tracing::error!(error = %e, "final sync failed");
    }
    node
}

/// Drains after pipelined syncs at a stop before the node is left as it is (each drain may ask
/// for one more sync, for what the last one released).
const STOP_SYNC_ROUNDS: u32 = 4;

/// The next peer message, or `None` when the mesh's inbound side has stopped; never ready
/// without a mesh.
async fn recv_peer(peers: Option<&mut mpsc::Receiver<(u64, Vec<u8>)>>) -> Option<(u64, Vec<u8>)> {
    match peers {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Feeds every message already queued, client and peer alike, up to [`INPUT_BATCH_MAX`] in all
/// (`fed` already counted), so they share the drain that follows.
fn feed_queued<S: Store, T>(
    node: &mut Node<S>,
    conns: &mut Conns,
    now: Instant,
    rx: &mut mpsc::Receiver<DriverMsg>,
    mut mesh: Option<&mut PeerLink<T>>,
    mut fed: usize,
) {
    while fed < INPUT_BATCH_MAX {
        let mut progress = false;
        if let Ok(msg) = rx.try_recv() {
            fed += feed(node, conns, now, msg);
            progress = true;
        }
        let peers = mesh.as_mut().and_then(|m| m.peers.as_mut());
        if let Some(Ok((from, bytes))) = peers.map(|p| p.try_recv()) {
            feed_peer(node, now, from, bytes);
            fed += 1;
            progress = true;
        }
        if !progress {
            break;
        }
    }
}

fn feed_peer<S: Store>(node: &mut Node<S>, now: Instant, from: u64, bytes: Vec<u8>) {
    let input = Input::Peer {
        from: NodeId(from),
        bytes: Bytes::from(bytes),
    };
    node.handle_input(now, input);
}

async fn sleep_until(clock: Clock, deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(clock.to_tokio(at)).await,
        None => std::future::pending().await,
    }
}

/// Feeds one message to the node; returns how many inputs it held.
fn feed<S: Store>(node: &mut Node<S>, conns: &mut Conns, now: Instant, msg: DriverMsg) -> usize {
    match msg {
        DriverMsg::Connect {
            conn,
            kind,
            addr,
            replies,
        } => {
            let push_bytes = Arc::default();
            conns.insert(
                conn,
                ConnQueue {
                    tx: replies,
                    push_bytes,
                },
            );
            node.handle_input(now, Input::Connect { conn, kind, addr });
            1
        }
        DriverMsg::Input(input) => {
            let n = input.count();
            feed_input(node, conns, now, input);
            n
        }
        DriverMsg::Inputs(inputs) => {
            let n = inputs.iter().map(Input::count).sum();
            for input in inputs {
                feed_input(node, conns, now, input);
            }
            n
        }
    }
}

fn feed_input<S: Store>(node: &mut Node<S>, conns: &mut Conns, now: Instant, input: Input) {
    if let Input::Disconnect { conn } = &input {
        conns.remove(conn);
    }
    node.handle_input(now, input);
}

fn drain<S: Store, T: PeerTransport>(
    node: &mut Node<S>,
    conns: &mut Conns,
    mut mesh: Option<&mut T>,
    dropped: &AtomicU64,
    syncs: &mut Syncs,
) {
    // Consecutive replies to one connection, sent as one message when another connection's
    // output (or the end of the drain) comes.
    let mut batch = ReplyBatch::default();
    while let Some(out) = node.poll_output() {
        let (conn, msg) = match out {
            Output::Sync { upto } => {
                syncs.start(upto);
                continue;
            }
            Output::Reply {
                conn,
                frame: frame @ Frame::Push(_),
                protocol,
            } => {
                batch.flush(node, conns);
                let Some(q) = conns.get(&conn) else { continue };
                let size = push_size(&frame);
                let queued = Arc::clone(&q.push_bytes);
                if queued.load(Ordering::Relaxed) + size > PUBSUB_OUTPUT_MAX_BYTES {
                    tracing::warn!(
                        conn = conn.0,
                        "pub/sub output buffer over {PUBSUB_OUTPUT_MAX_BYTES} bytes: disconnecting a slow subscriber"
                    );
                    conns.remove(&conn);
                    node.handle_input(Instant::ZERO, Input::Disconnect { conn });
                    continue;
                }
                queued.fetch_add(size, Ordering::Relaxed);
                let bytes = PushBytes { queued, size };
                (conn, ConnOut::Push(frame, protocol, bytes))
            }
            Output::Reply {
                conn,
                frame,
                protocol,
            } => {
                batch.add(node, conns, conn, frame, protocol);
                if !node.output_ready() {
                    // The node works before its next output (it may sync): send what is held.
                    batch.flush(node, conns);
                }
                continue;
            }
            Output::Oks { conn, count } => {
                batch.flush(node, conns);
                (conn, ConnOut::Oks(count))
            }
            Output::Close { conn } => {
                batch.flush(node, conns);
                (conn, ConnOut::Close)
            }
            Output::Send { to, bytes } => {
                send_peer(mesh.as_deref(), to, bytes, dropped);
                continue;
            }
            Output::Member { id, addr } => {
                set_member(mesh.as_deref_mut(), id, addr.as_deref());
                continue;
            }
        };
        deliver(node, conns, conn, msg);
    }
    batch.flush(node, conns);
}

/// Replies to one connection gathered during a drain: the first held alone, so a lone reply
/// (a client sending one request at a time) costs no vector.
#[derive(Default)]
struct ReplyBatch {
    first: Option<(ConnId, Frame, Protocol)>,
    rest: Vec<(Frame, Protocol)>,
}

impl ReplyBatch {
    fn add<S: Store>(
        &mut self,
        node: &mut Node<S>,
        conns: &mut Conns,
        conn: ConnId,
        frame: Frame,
        protocol: Protocol,
    ) {
        match &self.first {
            Some((c, ..)) if *c == conn => self.rest.push((frame, protocol)),
            _ => {
                self.flush(node, conns);
                self.first = Some((conn, frame, protocol));
            }
        }
    }

    fn flush<S: Store>(&mut self, node: &mut Node<S>, conns: &mut Conns) {
        let Some((conn, frame, protocol)) = self.first.take() else {
            return;
        };
        let msg = if self.rest.is_empty() {
            ConnOut::Reply(frame, protocol)
        } else {
            let mut replies = Vec::with_capacity(self.rest.len() + 1);
            replies.push((frame, protocol));
            replies.append(&mut self.rest);
            ConnOut::Replies(replies)
        };
        deliver(node, conns, conn, msg);
    }
}

/// Queues `msg` for `conn`; a client whose queue is full is disconnected.
fn deliver<S: Store>(node: &mut Node<S>, conns: &mut Conns, conn: ConnId, msg: ConnOut) {
    let closing = matches!(msg, ConnOut::Close);
    let Some(tx) = conns.get(&conn).map(|q| &q.tx) else {
        return;
    };
    match tx.try_send(msg) {
        Ok(()) if closing => {
            conns.remove(&conn);
        }
        Ok(()) => {}
        Err(ReplyQueueError::Full) => {
            tracing::warn!(
                conn = conn.0,
                "client output buffer full: disconnecting a slow client"
            );
            conns.remove(&conn);
            node.handle_input(Instant::ZERO, Input::Disconnect { conn });
        }
        Err(ReplyQueueError::Closed) => {
            conns.remove(&conn);
        }
    }
}

/// Points the transport at a member's new cluster address (`addr` is `host:cluster_port`), or
/// stops talking to a member that left (`None`). A standalone node has no transport to update.
fn set_member<T: PeerTransport>(mesh: Option<&mut T>, id: NodeId, addr: Option<&str>) {
    if let Some(mesh) = mesh {
        mesh.set_member(id, addr);
    }
}

/// Queues one message for a peer; never fails the node (see the module docs).
fn send_peer<T: PeerTransport>(mesh: Option<&T>, to: NodeId, bytes: Vec<u8>, dropped: &AtomicU64) {
    let Some(mesh) = mesh else {
        dropped.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            peer = to.0,
            "no cluster transport: message to a peer dropped"
        );
        return;
    };
    if let Err(e) = mesh.send(to, bytes) {
        dropped.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(peer = to.0, error = %e, "message to a peer dropped");
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tickdb_core::node::NodeConfig;
    use tickdb_core::store::{MemStore, StoreRead as _};

    use super::*;
    use crate::mesh::MeshConfig;

    fn loopback() -> std::net::TcpListener {
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port")
    }

    #[tokio::test]
    async fn send_peer_counts_refusals_and_never_fails() {
        let dropped = AtomicU64::new(0);
        send_peer::<Mesh>(None, NodeId(2), vec![1], &dropped);
        assert_eq!(dropped.load(Ordering::Relaxed), 1);

        let listener = loopback();
        let peer_addr: SocketAddr = loopback().local_addr().unwrap();
        let config = MeshConfig::new(1, listener.local_addr().unwrap(), vec![(2, peer_addr)]);
        let (mesh, _peers) = Mesh::start_on(config, listener).await.unwrap();
        send_peer(Some(&mesh), NodeId(2), vec![1, 2, 3], &dropped);
        assert_eq!(dropped.load(Ordering::Relaxed), 1, "a known peer takes it");
        send_peer(Some(&mesh), NodeId(3), vec![1], &dropped);
        assert_eq!(
            dropped.load(Ordering::Relaxed),
            2,
            "an unknown peer is counted"
        );
        let huge = vec![0; crate::MAX_MESSAGE_BYTES_DEFAULT as usize + 1];
        send_peer(Some(&mesh), NodeId(2), huge, &dropped);
        assert_eq!(
            dropped.load(Ordering::Relaxed),
            3,
            "an oversized message is counted"
        );
    }

    /// The bound counts replies, not messages: a batch of three takes three places.
    #[tokio::test]
    async fn a_reply_queue_is_bounded_by_the_replies_in_it() {
        let (tx, mut rx) = reply_queue(4);
        let pong = || (Frame::Simple(Bytes::from_static(b"PONG")), Protocol::Resp2);
        tx.try_send(ConnOut::Replies(vec![pong(), pong(), pong()]))
            .unwrap();
        let (frame, protocol) = pong();
        tx.try_send(ConnOut::Reply(frame, protocol)).unwrap();
        let (frame, protocol) = pong();
        assert_eq!(
            tx.try_send(ConnOut::Reply(frame, protocol)),
            Err(ReplyQueueError::Full),
            "a fifth reply"
        );
        // Taking the batch gives its three places back.
        assert!(matches!(rx.recv().await, Some(ConnOut::Replies(r)) if r.len() == 3));
        tx.try_send(ConnOut::Replies(vec![pong(), pong(), pong()]))
            .unwrap();
        assert_eq!(
            tx.try_send(ConnOut::Close),
            Err(ReplyQueueError::Full),
            "a close counts too"
        );
        drop(rx);
        let (frame, protocol) = pong();
        assert_eq!(
            tx.try_send(ConnOut::Reply(frame, protocol)),
            Err(ReplyQueueError::Full),
            "still full: nothing was taken"
        );
        let (tx, rx) = reply_queue(4);
        drop(rx);
        assert_eq!(tx.try_send(ConnOut::Close), Err(ReplyQueueError::Closed));
    }

    /// A pipeline's replies reach the connection in order, together; a client whose pipeline
    /// would put more replies in its queue than the bound is disconnected.
    #[tokio::test]
    async fn a_pipelines_replies_come_in_order_and_within_the_bound() {
        let (handle, rx) = channel();
        let node = Node::new(NodeConfig::default(), MemStore::new(), handle.now()).unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run_node(node, handle.clone(), rx, stop_rx));
        let pipeline = |conn: ConnId, n: usize| {
            let inputs = (0..n)
                .map(|i| Input::Request {
                    conn,
                    args: vec![Bytes::from_static(b"ECHO"), Bytes::from(format!("m{i}"))],
                    wire_bytes: 16,
                    unix: handle.unix_now(),
                })
                .collect();
            DriverMsg::Inputs(inputs)
        };
        let (conn, mut replies) = connect(&handle).await;
        handle.send(pipeline(conn, 10)).await.unwrap();
        let got = frames(&mut replies, 10).await;
        let want: Vec<Frame> = (0..10)
            .map(|i| Frame::Bulk(Bytes::from(format!("m{i}"))))
            .collect();
        assert_eq!(got, want);
        // `connect` makes a queue of 16: a pipeline of 20 answered in one drain overflows it,
        // and the driver lets the queue go.
        handle.send(pipeline(conn, 20)).await.unwrap();
        let end = tokio::time::timeout(Duration::from_secs(10), replies.recv())
            .await
            .expect("the driver acts on the overflow");
        assert!(end.is_none(), "disconnected, not answered: {end:?}");
        stop_node(&stop, task).await;
    }

    /// Replies held for a batch go out before a push to the same connection that follows them
    /// (a SUBSCRIBE's confirmation after two ECHOs of one pipeline), and the reply after it
    /// comes after it.
    #[tokio::test]
    async fn held_replies_go_out_before_a_push_that_follows_them() {
        let (handle, rx) = channel();
        let node = Node::new(NodeConfig::default(), MemStore::new(), handle.now()).unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run_node(node, handle.clone(), rx, stop_rx));
        let (conn, mut replies) = connect(&handle).await;
        let input = |words: &[&'static str]| Input::Request {
            conn,
            args: words
                .iter()
                .map(|w| Bytes::from_static(w.as_bytes()))
                .collect(),
            wire_bytes: 16,
            unix: handle.unix_now(),
        };
        let pipeline = vec![
            input(&["ECHO", "a"]),
            input(&["ECHO", "b"]),
            input(&["SUBSCRIBE", "ch"]),
            input(&["PING"]),
        ];
        handle.send(DriverMsg::Inputs(pipeline)).await.unwrap();
        let got = frames(&mut replies, 4).await;
        assert_eq!(got[0], Frame::Bulk(Bytes::from_static(b"a")));
        assert_eq!(got[1], Frame::Bulk(Bytes::from_static(b"b")));
        assert!(
            matches!(&got[2], Frame::Push(p) if p.first() == Some(&Frame::Bulk(Bytes::from_static(b"subscribe")))),
            "{:?}",
            got[2]
        );
        // PING while subscribed answers as Redis's does, after the confirmation.
        assert_eq!(
            got[3],
            Frame::Array(vec![
                Frame::Bulk(Bytes::from_static(b"pong")),
                Frame::Bulk(Bytes::new())
            ])
        );
        stop_node(&stop, task).await;
    }

    /// Peer traffic (here bytes no node could decode) shares the loop with clients without
    /// disturbing them, and the node still shuts down cleanly.
    #[tokio::test]
    async fn a_cluster_node_serves_clients_while_peers_send() {
        let (l1, l2) = (loopback(), loopback());
        let (a1, a2) = (l1.local_addr().unwrap(), l2.local_addr().unwrap());
        let (mesh1, peers1) = Mesh::start_on(MeshConfig::new(1, a1, vec![(2, a2)]), l1)
            .await
            .unwrap();
        let (mesh2, _peers2) = Mesh::start_on(MeshConfig::new(2, a2, vec![(1, a1)]), l2)
            .await
            .unwrap();

        let (handle, rx) = channel();
        let node = Node::new(NodeConfig::default(), MemStore::new(), handle.now()).unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run_cluster_node(
            node,
            handle.clone(),
            rx,
            stop_rx,
            mesh1,
            peers1,
        ));
        // Wait until the link is up so the garbage really reaches node 1.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !mesh2.stats().links[&1].outbound_connected {
            assert!(
                tokio::time::Instant::now() < deadline,
                "mesh link never came up"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for i in 0..100u8 {
            mesh2.send(1, vec![i; 64]).unwrap();
        }

        let (conn, mut replies) = connect(&handle).await;
        request(&handle, conn, &["SET", "k", "v"]).await;
        expect_ok(&mut replies, "a reply in time").await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while mesh2.stats().links[&1].messages_out < 100 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "peer messages not sent"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        stop_node(&stop, task).await;
        assert_eq!(handle.mesh_sends_dropped(), 0);
    }

    /// A store whose pipelined sync blocks until the test opens its gate.
    #[derive(Clone, Default)]
    struct GatedStore {
        inner: Arc<std::sync::Mutex<MemStore>>,
        gate: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    }

    impl GatedStore {
        fn open_gate(&self) {
            *self.gate.0.lock().unwrap() = true;
            self.gate.1.notify_all();
        }
    }

    impl tickdb_core::store::StoreRead for GatedStore {
        fn get(
            &self,
            space: tickdb_core::store::Space,
            key: &[u8],
        ) -> Result<Option<Vec<u8>>, tickdb_core::store::StoreError> {
            self.inner.lock().unwrap().get(space, key)
        }

        fn scan(
            &self,
            space: tickdb_core::store::Space,
            start: &[u8],
            end: Option<&[u8]>,
            reverse: bool,
        ) -> tickdb_core::store::ScanIter<'_> {
            let all: Vec<_> = self
                .inner
                .lock()
                .unwrap()
                .scan(space, start, end, reverse)
                .collect();
            Box::new(all.into_iter())
        }
    }

    impl Store for GatedStore {
        type Snapshot = tickdb_core::store::MemSnapshot;

        fn write(
            &mut self,
            batch: tickdb_core::store::WriteBatch,
        ) -> Result<(), tickdb_core::store::StoreError> {
            self.inner.lock().unwrap().write(batch)
        }

        fn sync(&mut self) -> Result<(), tickdb_core::store::StoreError> {
            self.inner.lock().unwrap().sync()
        }

        fn snapshot(&self) -> Result<Self::Snapshot, tickdb_core::store::StoreError> {
            self.inner.lock().unwrap().snapshot()
        }

        fn syncer(&self) -> Option<Arc<dyn tickdb_core::store::Syncer>> {
            Some(Arc::new(self.clone()))
        }
    }

    impl tickdb_core::store::Syncer for GatedStore {
        fn mark(&self) -> u64 {
            self.inner.lock().unwrap().write_count()
        }

        fn sync_through(&self, mark: u64) -> Result<(), tickdb_core::store::StoreError> {
            let mut open = self.gate.0.lock().unwrap();
            while !*open {
                open = self.gate.1.wait(open).unwrap();
            }
            self.inner.lock().unwrap().sync_through(mark);
            Ok(())
        }
    }

    async fn request(handle: &NodeHandle, conn: ConnId, words: &[&'static str]) {
        let args = words
            .iter()
            .map(|w| Bytes::from_static(w.as_bytes()))
            .collect();
        let input = Input::Request {
            conn,
            args,
            wire_bytes: 16,
            unix: handle.unix_now(),
        };
        handle.send(DriverMsg::Input(input)).await.unwrap();
    }

    /// Stops the node task and waits (up to 10 s) for it to hand the node back.
    async fn stop_node<S: Store>(
        stop: &watch::Sender<bool>,
        task: tokio::task::JoinHandle<Node<S>>,
    ) {
        stop.send(true).unwrap();
        let node = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the node stops in time")
            .expect("the node task did not panic");
        drop(node);
    }

    /// The next `n` frames queued for a connection (replies, batched or not, and pushes), in
    /// order; each within 10 s.
    async fn frames(replies: &mut ReplyReceiver, n: usize) -> Vec<Frame> {
        let mut got = Vec::new();
        while got.len() < n {
            let msg = tokio::time::timeout(Duration::from_secs(10), replies.recv())
                .await
                .expect("the pipeline's replies")
                .expect("the connection stays");
            match msg {
                ConnOut::Reply(f, _) | ConnOut::Push(f, _, _) => got.push(f),
                ConnOut::Replies(r) => got.extend(r.into_iter().map(|(f, _)| f)),
                ConnOut::Oks(count) => got.extend((0..count).map(|_| Frame::ok())),
                ConnOut::Close => panic!("closed after {got:?}"),
            }
        }
        got
    }

    /// Waits (up to 10 s) for the next reply, which must be `+OK`.
    async fn expect_ok(replies: &mut ReplyReceiver, what: &str) {
        let reply = tokio::time::timeout(Duration::from_secs(10), replies.recv())
            .await
            .expect(what);
        assert!(
            matches!(reply, Some(ConnOut::Reply(ref f, _)) if *f == Frame::ok()),
            "{what}: {reply:?}"
        );
    }

    async fn connect(handle: &NodeHandle) -> (ConnId, ReplyReceiver) {
        let conn = handle.conn_id();
        let (replies, rx) = reply_queue(16);
        let msg = DriverMsg::Connect {
            conn,
            kind: ConnKind::Tcp,
            addr: "test".into(),
            replies,
        };
        handle.send(msg).await.unwrap();
        (conn, rx)
    }

    /// The sync runs on its own thread: while it blocks, the node task answers other clients
    /// and takes more writes; the write it covers is acknowledged only once it completes, and
    /// a write made while it ran only after a later sync; the stop waits for the sync running.
    #[tokio::test]
    async fn a_pipelined_sync_blocks_only_the_writes_it_covers() {
        let store = GatedStore::default();
        let (handle, rx) = channel();
        let node = Node::new(NodeConfig::default(), store.clone(), handle.now()).unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run_node(node, handle.clone(), rx, stop_rx));
        // A failed assertion before the gate opens must not leave the sync thread (which the
        // node task's drop joins) blocked for ever.
        struct OpenOnDrop(GatedStore);
        impl Drop for OpenOnDrop {
            fn drop(&mut self) {
                self.0.open_gate();
            }
        }
        let _open = OpenOnDrop(store.clone());
        // The single node's first sync (its election) blocks at the gate; a PING on another
        // connection is answered meanwhile.
        let (writer, mut written) = connect(&handle).await;
        request(&handle, writer, &["SET", "k", "1"]).await;
        let (reader, mut read) = connect(&handle).await;
        request(&handle, reader, &["PING"]).await;
        let pong = tokio::time::timeout(Duration::from_secs(10), read.recv())
            .await
            .expect("a PING answered while the sync blocks");
        assert!(
            matches!(pong, Some(ConnOut::Reply(Frame::Simple(ref s), _)) if s.as_ref() == b"PONG"),
            "{pong:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            written.try_recv().is_none(),
            "a write acknowledged before its sync"
        );
        let set_entry = || {
            let store = store.inner.lock().unwrap();
            let key = 2u64.to_be_bytes(); // after the election's no-op
            let live = store.get(tickdb_core::store::Space::Log, &key).unwrap();
            let durable = store.durable_get(tickdb_core::store::Space::Log, &key);
            (live.is_some(), durable.is_some())
        };
        assert_eq!(
            set_entry(),
            (true, false),
            "the SET is in the log, not yet durable"
        );
        store.open_gate();
        expect_ok(
            &mut written,
            "the write acknowledged once its sync completed",
        )
        .await;
        assert_eq!(set_entry(), (true, true), "the acknowledged SET is durable");
        stop_node(&stop, task).await;
        let store = store.inner.lock().unwrap();
        assert_eq!(store.unsynced_batches(), 0, "the stop synced everything");
    }
}
