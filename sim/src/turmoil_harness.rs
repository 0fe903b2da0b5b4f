//! The turmoil harness: the real async driver ([`tickdb_io::run_cluster_node_with`]) and the
//! real RESP endpoint ([`tickdb_io::tcp::serve_on`]) on turmoil's simulated network.
//!
//! Each node is a turmoil host running, on its own single-threaded simulated runtime:
//! - the production node task over a [`SharedStore`], a [`MemStore`] that outlives the host so
//!   `crash`/`bounce` restart the node on what it had synced (unsynced writes are lost);
//! - the production RESP connection code on a turmoil `TcpListener` ([`SimListener`]);
//! - [`TurmoilPeers`], a small cluster transport over turmoil TCP standing in for the ZeroMQ
//!   mesh (turmoil simulates TCP, not ZeroMQ): length-prefixed frames, bounded in size, with
//!   pings so a link that a partition silently stalled is noticed and redialled.
//!
//! Clients ([`RespClient`]) are turmoil clients speaking RESP with bounded timeouts. Time is
//! turmoil's (tokio's paused clock, advanced by `sim.step`); every random choice comes from
//! turmoil's seeded RNG, so a run is a function of [`HarnessConfig::seed`]. The one thing the
//! simulation does not control is the wall clock the driver stamps requests with
//! (`NodeHandle::unix_now`), which only matters for commands that use the current time.

use std::collections::BTreeMap;
use std::io;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tickdb_core::node::{ClusterConfig, Member, Node, NodeConfig};
use tickdb_core::raft::NodeId;
use tickdb_core::resp::{self, Frame, Limits};
use tickdb_core::store::{
    MemSnapshot, MemStore, ScanIter, Space, Store, StoreError, StoreRead, Syncer, WriteBatch,
};
use tickdb_io::PeerTransport;
use tickdb_io::tcp::{Listener, TcpConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use turmoil::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use turmoil::net::{TcpListener, TcpStream};

/// Port of every node's RESP endpoint.
pub const CLIENT_PORT: u16 = 6379;

/// Port of every node's cluster transport.
pub const CLUSTER_PORT: u16 = 7000;

/// Largest peer message a link carries; a bigger one is refused by the sender and, if it
/// arrives anyway, ends the connection. The same bound as the production mesh.
pub const MAX_FRAME_BYTES: u32 = tickdb_io::MAX_MESSAGE_BYTES_DEFAULT;

/// Messages queued per peer while its link is busy or down; beyond this they are dropped
/// (Raft retransmits).
pub const PEER_QUEUE: usize = 1024;

/// Messages received from all peers not yet taken by the node task.
pub const INBOUND_QUEUE: usize = 4096;

/// An idle link sends a ping this often; the receiver answers each with one byte.
const PING_INTERVAL: Duration = Duration::from_millis(100);

/// A link that heard nothing for this long is dead (a partition drops segments silently and
/// turmoil never retransmits, so such a stream would stall forever): both ends close it.
const LINK_IDLE: Duration = Duration::from_secs(1);

/// How long one connection attempt may take (a held SYN waits until released).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Pause between a failed connection and the next attempt.
const RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// How long a [`RespClient`] waits to connect or for one reply.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The turmoil host name of node `id`.
pub fn node_name(id: u64) -> String {
    format!("n{id}")
}

/// A [`MemStore`] shared between a host's incarnations, so it survives `sim.crash`/`bounce`.
/// [`SharedStore::crash`] forgets unsynced writes, as a power loss would.
#[derive(Clone, Debug, Default)]
pub struct SharedStore {
    store: Arc<Mutex<MemStore>>,
    /// Hands the driver a [`Syncer`], so it pipelines the node's syncs (`--pipelined-sync`).
    pipelined: bool,
}

impl SharedStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store whose syncs the driver pipelines, as RocksDB's with `--pipelined-sync`.
    pub fn pipelined() -> Self {
        Self {
            pipelined: true,
            ..Self::default()
        }
    }

    /// Loses every write since the last sync.
    pub fn crash(&self) {
        self.lock().crash();
    }

    /// How many times the store was synced (all incarnations).
    pub fn sync_count(&self) -> u64 {
        self.lock().sync_count()
    }

    fn lock(&self) -> MutexGuard<'_, MemStore> {
        // A panic while holding the lock already failed the simulation; the data is still
        // what the last completed call left, which is all a post-mortem needs.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl StoreRead for SharedStore {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.lock().get(space, key)
    }

    /// Copies the range out: the entries cannot borrow from behind the lock.
    fn scan(&self, space: Space, start: &[u8], end: Option<&[u8]>, reverse: bool) -> ScanIter<'_> {
        let entries: Vec<_> = self.lock().scan(space, start, end, reverse).collect();
        Box::new(entries.into_iter())
    }
}

impl Store for SharedStore {
    type Snapshot = MemSnapshot;

    fn write(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        self.lock().write(batch)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.lock().sync()
    }

    fn snapshot(&self) -> Result<MemSnapshot, StoreError> {
        self.lock().snapshot()
    }

    /// When pipelined, the driver syncs this store as it does RocksDB's with
    /// `--pipelined-sync`, in a task of the host's runtime: a crash of the host while one
    /// runs loses what it had not made durable.
    fn syncer(&self) -> Option<Arc<dyn Syncer>> {
        self.pipelined
            .then(|| Arc::new(self.clone()) as Arc<dyn Syncer>)
    }
}

impl Syncer for SharedStore {
    fn mark(&self) -> u64 {
        self.lock().write_count()
    }

    fn sync_through(&self, mark: u64) -> Result<(), StoreError> {
        self.lock().sync_through(mark);
        Ok(())
    }

    fn blocks(&self) -> bool {
        false
    }
}

/// A turmoil `TcpListener` as the RESP endpoint's [`Listener`].
pub struct SimListener(pub TcpListener);

impl Listener for SimListener {
    type Read = OwnedReadHalf;
    type Write = OwnedWriteHalf;

    async fn accept(&self) -> io::Result<(OwnedReadHalf, OwnedWriteHalf, String)> {
        let (stream, peer) = self.0.accept().await?;
        let (rd, wr) = stream.into_split();
        Ok((rd, wr, peer.to_string()))
    }
}

/// Why [`TurmoilPeers`] refused a message (only logged and counted by the driver).
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The node is not a member this transport links to (or left).
    #[error("no link to node {0}")]
    UnknownPeer(u64),
    /// [`PEER_QUEUE`] messages already wait for the link (it is slow, down or redialling).
    #[error("the queue to node {0} is full")]
    QueueFull(u64),
    /// The message exceeds [`MAX_FRAME_BYTES`]; the node produced something no link carries.
    #[error("a {0}-byte message exceeds the frame limit")]
    Oversized(usize),
}

/// The cluster transport over turmoil TCP: one outbound link task per peer (dial, send frames,
/// ping, redial on failure) and one inbound task per accepted connection. Frames are a u32
/// big-endian length and that many bytes; length 0 is a ping. A connection opens with the
/// dialler's node id (u64 big-endian), which the receiver reports as the sender.
#[derive(Debug)]
pub struct TurmoilPeers {
    me: u64,
    links: BTreeMap<u64, PeerLink>,
    accept: JoinHandle<()>,
}

#[derive(Debug)]
struct PeerLink {
    addr: String,
    tx: mpsc::Sender<Vec<u8>>,
    task: JoinHandle<()>,
}

impl Drop for TurmoilPeers {
    fn drop(&mut self) {
        self.accept.abort();
        for link in self.links.values() {
            link.task.abort();
        }
    }
}

impl TurmoilPeers {
    /// Binds the cluster port and links to `peers` (id, `host:port`); returns the transport
    /// and the receiver of (sender id, message). Call inside a turmoil host.
    pub async fn start(
        me: u64,
        peers: &[(u64, String)],
    ) -> io::Result<(Self, mpsc::Receiver<(u64, Vec<u8>)>)> {
        let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, CLUSTER_PORT)).await?;
        let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
        let accept = tokio::spawn(accept_peers(listener, inbound_tx));
        let mut transport = Self {
            me,
            links: BTreeMap::new(),
            accept,
        };
        for (id, addr) in peers {
            transport.set_member(NodeId(*id), Some(addr));
        }
        Ok((transport, inbound_rx))
    }
}

impl PeerTransport for TurmoilPeers {
    type Error = PeerError;

    fn send(&self, to: NodeId, bytes: Vec<u8>) -> Result<(), PeerError> {
        if bytes.len() > MAX_FRAME_BYTES as usize {
            return Err(PeerError::Oversized(bytes.len()));
        }
        let link = self.links.get(&to.0).ok_or(PeerError::UnknownPeer(to.0))?;
        link.tx
            .try_send(bytes)
            .map_err(|_| PeerError::QueueFull(to.0))
    }

    fn set_member(&mut self, id: NodeId, addr: Option<&str>) {
        if id.0 == self.me {
            return;
        }
        let Some(addr) = addr else {
            if let Some(link) = self.links.remove(&id.0) {
                link.task.abort();
            }
            return;
        };
        if self.links.get(&id.0).is_some_and(|l| l.addr == addr) {
            return;
        }
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        let task = tokio::spawn(dial(self.me, addr.to_string(), rx));
        let link = PeerLink {
            addr: addr.to_string(),
            tx,
            task,
        };
        if let Some(old) = self.links.insert(id.0, link) {
            old.task.abort();
        }
    }
}

/// Keeps a connection to `addr` up and sends it every queued message, until the transport
/// drops the queue.
async fn dial(me: u64, addr: String, mut queue: mpsc::Receiver<Vec<u8>>) {
    loop {
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr.as_str()));
        if let Ok(Ok(stream)) = connected.await {
            match pump(me, stream, &mut queue).await {
                Pump::QueueClosed => return,
                Pump::LinkFailed => tracing::debug!(%addr, "peer link failed; redialling"),
            }
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}

enum Pump {
    QueueClosed,
    LinkFailed,
}

/// Writes `bytes` as one frame, giving up after [`LINK_IDLE`].
async fn write_frame(wr: &mut OwnedWriteHalf, bytes: &[u8]) -> bool {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    debug_assert!(len <= MAX_FRAME_BYTES, "checked by TurmoilPeers::send");
    let mut frame = Vec::with_capacity(4 + bytes.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(bytes);
    matches!(
        tokio::time::timeout(LINK_IDLE, wr.write_all(&frame)).await,
        Ok(Ok(()))
    )
}

async fn pump(me: u64, stream: TcpStream, queue: &mut mpsc::Receiver<Vec<u8>>) -> Pump {
    let (mut rd, mut wr) = stream.into_split();
    if !matches!(
        tokio::time::timeout(LINK_IDLE, wr.write_all(&me.to_be_bytes())).await,
        Ok(Ok(()))
    ) {
        return Pump::LinkFailed;
    }
    let mut ping = tokio::time::interval(PING_INTERVAL);
    let mut heard = tokio::time::Instant::now();
    let mut pongs = [0u8; 64];
    loop {
        tokio::select! {
            biased;
            n = rd.read(&mut pongs) => match n {
                Ok(n) if n > 0 => heard = tokio::time::Instant::now(),
                _ => return Pump::LinkFailed,
            },
            msg = queue.recv() => {
                let Some(bytes) = msg else { return Pump::QueueClosed };
                if !write_frame(&mut wr, &bytes).await {
                    return Pump::LinkFailed;
                }
            }
            _ = ping.tick() => {
                if heard.elapsed() > LINK_IDLE || !write_frame(&mut wr, &[]).await {
                    return Pump::LinkFailed;
                }
            }
        }
    }
}

async fn accept_peers(listener: TcpListener, inbound: mpsc::Sender<(u64, Vec<u8>)>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(receive(stream, inbound.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "cluster accept failed");
                tokio::time::sleep(RECONNECT_DELAY).await;
            }
        }
    }
}

/// Reads one peer's frames into `inbound` until the connection fails, idles past
/// [`LINK_IDLE`], sends an oversized frame or the node stops receiving.
async fn receive(stream: TcpStream, inbound: mpsc::Sender<(u64, Vec<u8>)>) {
    let (mut rd, mut wr) = stream.into_split();
    let Ok(Ok(from)) = tokio::time::timeout(LINK_IDLE, rd.read_u64()).await else {
        return;
    };
    loop {
        let Ok(Ok(len)) = tokio::time::timeout(LINK_IDLE, rd.read_u32()).await else {
            return;
        };
        if len == 0 {
            if !matches!(
                tokio::time::timeout(LINK_IDLE, wr.write_all(&[1])).await,
                Ok(Ok(()))
            ) {
                return;
            }
            continue;
        }
        if len > MAX_FRAME_BYTES {
            tracing::warn!(from, len, "oversized peer frame; closing the link");
            return;
        }
        let mut bytes = vec![0; len as usize];
        if !matches!(
            tokio::time::timeout(LINK_IDLE, rd.read_exact(&mut bytes)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        match inbound.try_send((from, bytes)) {
            Ok(()) => {}
            // Best effort, like the mesh: Raft retransmits what matters.
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!(from, "inbound peer queue full; message dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

/// The simulated cluster's shape and timing.
#[derive(Clone, Debug)]
pub struct HarnessConfig {
    /// Seeds turmoil's RNG (latencies, ordering) and the nodes' election jitter.
    pub seed: u64,
    pub nodes: u64,
    pub heartbeat_ms: u64,
    pub election_timeout_ms: (u64, u64),
    pub request_timeout_ms: u64,
    /// Each network message takes a random latency up to this.
    pub max_latency: Duration,
    /// Simulated time after which turmoil fails the run.
    pub duration: Duration,
    /// The nodes' Raft log compaction threshold and snapshot chunk size: small, so a node
    /// that was crashed, cut off or held back catches up from a snapshot, as in production
    /// after a long outage.
    pub compaction_entries: u64,
    pub snapshot_chunk_bytes: u64,
    /// Applied entries a node holds in memory before it checkpoints its state: small, so
    /// crashes land between checkpoints and restarts replay the log after one.
    pub checkpoint_entries: u64,
    /// The nodes pipeline their syncs (`--pipelined-sync`): odd seeds, so the pinned tests
    /// cover both modes and a replayed seed runs the same one.
    pub pipelined_sync: bool,
}

impl HarnessConfig {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            nodes: 3,
            heartbeat_ms: 50,
            election_timeout_ms: (300, 600),
            request_timeout_ms: 2_000,
            max_latency: Duration::from_millis(10),
            duration: Duration::from_secs(120),
            compaction_entries: 40,
            snapshot_chunk_bytes: 2048,
            checkpoint_entries: 7,
            pipelined_sync: !seed.is_multiple_of(2),
        }
    }

    fn node_config(&self, id: u64) -> NodeConfig {
        let members = (1..=self.nodes)
            .map(|m| Member {
                id: NodeId(m),
                client_addr: format!("{}:{CLIENT_PORT}", node_name(m)),
                cluster_port: CLUSTER_PORT,
            })
            .collect();
        NodeConfig {
            node_id: id.to_string(),
            cluster: ClusterConfig {
                id: NodeId(id),
                cluster_id: 1,
                members,
                seed: self.seed.wrapping_mul(1_000_003).wrapping_add(id),
                heartbeat_ms: self.heartbeat_ms,
                election_timeout_ms: self.election_timeout_ms,
                request_timeout_ms: self.request_timeout_ms,
                joining: false,
                secret: None,
                compaction_entries: Some(self.compaction_entries),
                snapshot_chunk_bytes: Some(self.snapshot_chunk_bytes),
                checkpoint_entries: Some(self.checkpoint_entries),
                bugs: Default::default(),
            },
            max_clients: 10_000,
            ..NodeConfig::default()
        }
    }
}

/// A turmoil simulation with one host per node (`n1`, `n2`, ...) and their stores.
pub struct Harness {
    /// The simulation: add clients with `sim.client`, drive it with `sim.step`/`sim.run`,
    /// cut links with `sim.partition`/`repair`/`hold`/`release`.
    pub sim: turmoil::Sim<'static>,
    stores: Vec<SharedStore>,
    config: HarnessConfig,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("config", &self.config)
            .field("elapsed", &self.sim.elapsed())
            .finish_non_exhaustive()
    }
}

impl Harness {
    pub fn new(config: HarnessConfig) -> Self {
        let mut sim = turmoil::Builder::new()
            .rng_seed(config.seed)
            .simulation_duration(config.duration)
            .min_message_latency(Duration::from_millis(1))
            .max_message_latency(config.max_latency)
            .build();
        let mut stores = Vec::new();
        for id in 1..=config.nodes {
            let store = if config.pipelined_sync {
                SharedStore::pipelined()
            } else {
                SharedStore::new()
            };
            stores.push(store.clone());
            let node_config = config.node_config(id);
            sim.host(node_name(id), move || {
                run_host(id, node_config.clone(), store.clone())
            });
        }
        Self {
            sim,
            stores,
            config,
        }
    }

    pub fn config(&self) -> &HarnessConfig {
        &self.config
    }

    /// Node `id`'s store. Panics unless `1 <= id <= nodes`: a test naming a node that does
    /// not exist is a broken test.
    pub fn store(&self, id: u64) -> &SharedStore {
        assert!((1..=self.config.nodes).contains(&id), "no node {id}");
        &self.stores[usize::try_from(id - 1).unwrap_or(usize::MAX)]
    }

    /// Kills node `id`'s host and loses its unsynced writes; it stays down until
    /// [`Harness::bounce`].
    pub fn crash(&mut self, id: u64) {
        self.sim.crash(node_name(id));
        self.store(id).crash();
    }

    /// Restarts node `id`'s host (killing it first if it runs): the node starts over on what
    /// its store had synced.
    pub fn bounce(&mut self, id: u64) {
        self.sim.bounce(node_name(id));
    }

    /// Steps the simulation for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) -> turmoil::Result {
        let end = self.sim.elapsed() + d;
        while self.sim.elapsed() < end {
            self.sim.step()?;
        }
        Ok(())
    }

    /// Steps until every client finished (true) or `d` of simulated time passed (false).
    pub fn run_until_clients_done(&mut self, d: Duration) -> turmoil::Result<bool> {
        let end = self.sim.elapsed() + d;
        while self.sim.elapsed() < end {
            if self.sim.step()? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// One incarnation of a node: the software turmoil starts at boot and after each bounce.
async fn run_host(id: u64, config: NodeConfig, store: SharedStore) -> turmoil::Result {
    // Whatever the previous incarnation wrote without syncing died with it.
    store.crash();
    let peers: Vec<(u64, String)> = config
        .cluster
        .members
        .iter()
        .filter(|m| m.id.0 != id)
        .map(|m| (m.id.0, format!("{}:{}", node_name(m.id.0), m.cluster_port)))
        .collect();
    let (handle, rx) = tickdb_io::channel();
    let node = Node::new(config, store, handle.now())?;
    let (transport, inbound) = TurmoilPeers::start(id, &peers).await?;
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, CLIENT_PORT)).await?;
    // Held for the node's life: dropping the sender would stop the driver.
    let (stop, stop_rx) = watch::channel(false);
    let (done_tx, _done_rx) = mpsc::channel::<()>(1);
    let endpoint = tokio::spawn(tickdb_io::tcp::serve_on(
        SimListener(listener),
        handle.clone(),
        TcpConfig::default(),
        stop_rx.clone(),
        done_tx,
    ));
    tickdb_io::run_cluster_node_with(node, handle, rx, stop_rx, transport, inbound).await;
    drop(stop);
    endpoint.abort();
    Ok(())
}

/// Why a [`RespClient`] call failed; after any of these the connection's state is unknown.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, writing or reading failed (refused, reset, ...).
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// No connection or no complete reply within the bound.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The server closed the connection before a complete reply.
    #[error("the server closed the connection")]
    Closed,
    /// The server's bytes did not decode as RESP (a server bug).
    #[error("undecodable reply: {0}")]
    Protocol(String),
}

/// A RESP client on a turmoil TCP connection (use it inside `sim.client`).
#[derive(Debug)]
pub struct RespClient {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    buf: BytesMut,
}

impl RespClient {
    /// Connects to node `id`'s RESP endpoint.
    pub async fn connect(id: u64) -> Result<Self, ClientError> {
        let addr = format!("{}:{CLIENT_PORT}", node_name(id));
        let stream = tokio::time::timeout(CLIENT_TIMEOUT, TcpStream::connect(addr.as_str()))
            .await
            .map_err(|_| ClientError::Timeout(CLIENT_TIMEOUT))??;
        let (rd, wr) = stream.into_split();
        Ok(Self {
            rd,
            wr,
            buf: BytesMut::new(),
        })
    }

    /// Sends one request and waits up to [`CLIENT_TIMEOUT`] for its reply.
    pub async fn call(&mut self, args: &[&[u8]]) -> Result<Frame, ClientError> {
        let mut out = Vec::new();
        resp::encode_request(args, &mut out);
        let exchange = async {
            self.wr.write_all(&out).await?;
            loop {
                if let Some((frame, used)) = resp::decode(&self.buf, &Limits::default())
                    .map_err(|e| ClientError::Protocol(e.to_string()))?
                {
                    self.buf.advance(used);
                    return Ok(frame);
                }
                if self.rd.read_buf(&mut self.buf).await? == 0 {
                    return Err(ClientError::Closed);
                }
            }
        };
        tokio::time::timeout(CLIENT_TIMEOUT, exchange)
            .await
            .map_err(|_| ClientError::Timeout(CLIENT_TIMEOUT))?
    }
}

/// The value of `field` in an INFO reply (`field:value` lines).
pub fn info_field(info: &Frame, field: &str) -> Option<String> {
    let text = match info {
        Frame::Bulk(b) => b.clone(),
        Frame::Verbatim { text, .. } => text.clone(),
        _ => return None,
    };
    let text = String::from_utf8_lossy(&text).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_field_reads_one_line() {
        let info = Frame::bulk("# Replication\r\nraft_role:leader\r\nraft_leader_id:2\r\n");
        assert_eq!(info_field(&info, "raft_role").as_deref(), Some("leader"));
        assert_eq!(info_field(&info, "raft_leader_id").as_deref(), Some("2"));
        assert_eq!(info_field(&info, "raft_term"), None);
        assert_eq!(info_field(&Frame::Null, "raft_role"), None);
    }

    #[test]
    fn shared_store_survives_clones_and_crashes_lose_unsynced() {
        let mut a = SharedStore::new();
        let b = a.clone();
        let mut batch = WriteBatch::new();
        batch.put(Space::Keys, b"k".to_vec(), b"1".to_vec());
        a.write(batch).unwrap();
        a.sync().unwrap();
        let mut batch = WriteBatch::new();
        batch.put(Space::Keys, b"k".to_vec(), b"2".to_vec());
        a.write(batch).unwrap();
        assert_eq!(b.get(Space::Keys, b"k").unwrap(), Some(b"2".to_vec()));
        b.crash();
        assert_eq!(a.get(Space::Keys, b"k").unwrap(), Some(b"1".to_vec()));
        let all: Vec<_> = a.scan(Space::Keys, b"", None, false).collect();
        assert_eq!(all.len(), 1);
    }
}
