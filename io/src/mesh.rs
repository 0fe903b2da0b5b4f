//! The cluster mesh: opaque, addressed byte messages between the nodes of one cluster over
//! ZeroMQ (the pure-Rust `zeromq` crate on tokio).
//!
//! Topology (DESIGN.md): every node binds one ROUTER on its cluster port and keeps one DEALER
//! per peer, connected to that peer's ROUTER. A node only ever *sends* on its DEALERs and only
//! ever *receives* on its ROUTER, so each direction of a pair of nodes is one TCP connection
//! and an addressed message can never be round-robined to the wrong node.
//!
//! What this module does not do: it does not interpret payloads (the envelope with term,
//! cluster id and authentication is the caller's), does not retransmit (Raft does), and does
//! not promise delivery: a message is dropped, counted and logged when its peer's bounded
//! queue is full, and the messages queued when a connection breaks may be lost.
//!
//! # Wire layout
//!
//! One mesh message is one two-frame ZMTP 3 message from a DEALER:
//!
//! ```text
//! frame 0, header (17 bytes): version: u8 = 1 | from: u64 big-endian | to: u64 big-endian
//! frame 1, payload: the caller's bytes, at most `max_message_bytes`
//! ```
//!
//! The DEALER's ZMTP routing identity is `"<node id>.<incarnation>.<connection>"` in ASCII
//! (never starting with a zero byte, which ZMTP reserves). The ROUTER prepends it as frame 0
//! on receipt. The receiver accepts a message only if the identity's node id, the header's
//! `from` and a configured peer all agree and the header's `to` is its own id; anything else
//! (a misconfigured address pointing at the wrong node, a stranger on the port) is dropped and
//! counted in [`MeshStats`]. So `from` is what the sender's connection said at handshake,
//! cross-checked against the header; it is not authenticated (the envelope's cluster secret
//! is what authenticates).
//!
//! The identity is unique per connection, not just per node: the `zeromq` ROUTER keeps one
//! entry per identity, and when a node reconnects before the ROUTER noticed the old
//! connection's death, a shared identity would let the old connection's late disconnect
//! remove the new one.
//!
//! # Reconnection
//!
//! The `zeromq` crate's DEALER does not reconnect after its peer goes away (its `connect`
//! retries only until the first connection, and a broken connection is simply removed), so
//! each peer link is a task that owns its DEALER and, when the connection breaks (seen by
//! the socket monitor, a failed send, or the end of the inbound stream), drops it and
//! connects a fresh one with a bounded exponential backoff.
//!
//! # Known limit of the `zeromq` crate
//!
//! Its decoder has no maximum message size (libzmq's `ZMQ_MAXMSGSIZE`): a frame header can
//! announce any length and the reader reserves that much memory before this module can
//! refuse it. Oversized payloads are refused on send and dropped on receipt, but the cluster
//! port must not be reachable by untrusted hosts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use zeromq::util::PeerIdentity;
use zeromq::{
    DealerSocket, Endpoint, RouterSocket, Socket, SocketEvent, SocketOptions, SocketRecv,
    SocketSend, ZmqMessage,
};

/// Version byte of the mesh header; bumped when the layout changes.
const WIRE_VERSION: u8 = 1;
/// Header frame length: version + from + to.
const HEADER_BYTES: usize = 1 + 8 + 8;
/// Default payload limit: a full AppendEntries batch or an InstallSnapshot chunk fits.
pub const MAX_MESSAGE_BYTES_DEFAULT: u32 = 16 << 20;
/// Default per-peer send queue, in messages. Raft keeps a bounded window of messages in
/// flight per peer, so a full queue means the peer is gone or far behind.
pub const SEND_QUEUE_PER_PEER_DEFAULT: u32 = 1024;
/// Default inbound queue towards the node, in messages (all peers together).
pub const RECV_QUEUE_DEFAULT: u32 = 4096;
/// First reconnect delay; doubled after each failure up to the maximum.
const RECONNECT_DELAY_MIN: Duration = Duration::from_millis(50);
/// Cap on the reconnect delay: a restarted peer is reached within about this long.
const RECONNECT_DELAY_MAX: Duration = Duration::from_secs(1);
/// How long one connect attempt (TCP + ZMTP handshake) may take before it is retried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Configuration for [`Mesh::start`].
#[derive(Clone, Debug)]
pub struct MeshConfig {
    pub node_id: u64,
    /// The cluster port this node's ROUTER binds.
    pub bind: SocketAddr,
    /// Every other node: id and the address of its ROUTER.
    pub peers: Vec<(u64, SocketAddr)>,
    /// Largest payload sent or accepted.
    pub max_message_bytes: u32,
    /// Messages queued per peer before `send` drops.
    pub send_queue_per_peer: u32,
    /// Messages received and not yet taken by the node before the mesh stops reading.
    pub recv_queue: u32,
}

impl MeshConfig {
    /// A configuration with the default limits.
    pub fn new(node_id: u64, bind: SocketAddr, peers: Vec<(u64, SocketAddr)>) -> Self {
        Self {
            node_id,
            bind,
            peers,
            max_message_bytes: MAX_MESSAGE_BYTES_DEFAULT,
            send_queue_per_peer: SEND_QUEUE_PER_PEER_DEFAULT,
            recv_queue: RECV_QUEUE_DEFAULT,
        }
    }
}

/// Why the mesh could not start or could not take a message.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// The configuration is unusable (our operator's mistake, reported at start).
    #[error("invalid mesh configuration: {0}")]
    Config(String),
    /// Binding the cluster port failed (in use, no permission, bad address).
    #[error("binding cluster port {addr}: {detail}")]
    Bind { addr: SocketAddr, detail: String },
    /// `send` to a node that is not a configured peer.
    #[error("unknown peer {0}")]
    UnknownPeer(u64),
    /// `send` of a payload above `max_message_bytes`; nothing was queued.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: u32 },
    /// The peer's send queue is full; the message was dropped (and counted).
    #[error("send queue to peer {0} is full, message dropped")]
    QueueFull(u64),
}

/// What the transport knows about the link to one peer, for the failure detector and
/// `INFO`/`CLUSTER INFO`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Our DEALER to the peer's ROUTER is connected (ZMTP handshake done, not yet broken).
    pub outbound_connected: bool,
    /// Connections from the peer's DEALER to our ROUTER currently open.
    pub inbound_connections: u64,
    pub messages_out: u64,
    pub bytes_out: u64,
    pub messages_in: u64,
    pub bytes_in: u64,
    /// Messages dropped because the send queue was full.
    pub dropped_queue_full: u64,
    /// Messages queued but lost because the connection broke while sending them.
    pub dropped_send_failed: u64,
    /// Successful connects of our DEALER (the first one included).
    pub connects: u64,
}

/// Counters not tied to a configured peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeshStats {
    pub links: BTreeMap<u64, LinkStats>,
    /// Inbound messages dropped: unknown sender, bad header, wrong recipient, oversized.
    pub rejected_in: u64,
}

#[derive(Debug, Default)]
struct LinkCounters {
    outbound_connected: AtomicBool,
    inbound_connections: AtomicU64,
    messages_out: AtomicU64,
    bytes_out: AtomicU64,
    messages_in: AtomicU64,
    bytes_in: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_send_failed: AtomicU64,
    connects: AtomicU64,
}

impl LinkCounters {
    fn read(&self) -> LinkStats {
        LinkStats {
            outbound_connected: self.outbound_connected.load(Ordering::Relaxed),
            inbound_connections: self.inbound_connections.load(Ordering::Relaxed),
            messages_out: self.messages_out.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            messages_in: self.messages_in.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            dropped_queue_full: self.dropped_queue_full.load(Ordering::Relaxed),
            dropped_send_failed: self.dropped_send_failed.load(Ordering::Relaxed),
            connects: self.connects.load(Ordering::Relaxed),
        }
    }
}

/// A zeromq socket's event stream (connects, accepts, disconnects).
type Monitor = futures::channel::mpsc::Receiver<SocketEvent>;

/// The receiving end: `(from, payload)` in arrival order per peer.
pub type MeshReceiver = mpsc::Receiver<(u64, Vec<u8>)>;

struct PeerLink {
    addr: SocketAddr,
    queue: mpsc::Sender<Bytes>,
    counters: Arc<LinkCounters>,
    task: JoinHandle<()>,
}

/// The peers the ROUTER accepts messages from, shared with the inbound tasks so members can
/// join and leave while the mesh runs.
type PeerSet = Arc<std::sync::RwLock<BTreeMap<u64, Arc<LinkCounters>>>>;

fn peers_read(set: &PeerSet) -> std::sync::RwLockReadGuard<'_, BTreeMap<u64, Arc<LinkCounters>>> {
    // A panic while holding the lock cannot leave the map half-updated (single inserts and
    // removes), so a poisoned lock is still usable.
    set.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running mesh. Dropping it closes every socket and stops every task.
pub struct Mesh {
    node_id: u64,
    local_addr: SocketAddr,
    max_message_bytes: u32,
    links: BTreeMap<u64, PeerLink>,
    peers: PeerSet,
    incarnation: u64,
    send_queue_per_peer: u32,
    rejected_in: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh")
            .field("node_id", &self.node_id)
            .field("local_addr", &self.local_addr)
            .field("peers", &self.links.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        // Aborting drops each task's socket: the ROUTER's listener stops and every
        // connection closes, so a new mesh can bind the same port at once.
        for task in &self.tasks {
            task.abort();
        }
        for link in self.links.values() {
            link.task.abort();
        }
    }
}

fn validate(config: &MeshConfig) -> Result<(), MeshError> {
    let invalid = |s: String| Err(MeshError::Config(s));
    if config.max_message_bytes == 0 {
        return invalid("max_message_bytes must be positive".into());
    }
    if config.send_queue_per_peer == 0 || config.recv_queue == 0 {
        return invalid("queue sizes must be positive".into());
    }
    let mut seen = BTreeMap::new();
    for &(id, addr) in &config.peers {
        if id == config.node_id {
            return invalid(format!("peer list contains this node's own id {id}"));
        }
        if seen.insert(id, addr).is_some() {
            return invalid(format!("peer {id} is listed twice"));
        }
    }
    Ok(())
}

/// Distinguishes this mesh's connections from those of an earlier run of the same node
/// (see the module docs on identities). Wall-clock nanoseconds are enough: it only has to
/// differ between two starts of one node.
fn incarnation() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Mesh {
    /// Binds `config.bind` and starts one link task per peer. Must run inside a tokio runtime.
    pub async fn start(config: MeshConfig) -> Result<(Self, MeshReceiver), MeshError> {
        validate(&config)?;
        let mut router = RouterSocket::new();
        // Before bind, so no early connection escapes the inbound connection count.
        let monitor = router.monitor();
        let endpoint = Endpoint::from_tcp_addr(config.bind).to_string();
        let bound = router.bind(&endpoint).await.map_err(|e| MeshError::Bind {
            addr: config.bind,
            detail: e.to_string(),
        })?;
        let Endpoint::Tcp(_, port) = bound else {
            unreachable!("a tcp:// bind yields a TCP endpoint");
        };
        let local_addr = SocketAddr::new(config.bind.ip(), port);
        Ok(Self::launch(config, router, monitor, local_addr))
    }

    /// Like [`Mesh::start`] on a listener the caller already bound (port 0 in tests, or a
    /// port bound early by the server); `config.bind` is ignored.
    pub async fn start_on(
        config: MeshConfig,
        listener: std::net::TcpListener,
    ) -> Result<(Self, MeshReceiver), MeshError> {
        validate(&config)?;
        let bind_error = |e: &dyn std::fmt::Display| MeshError::Bind {
            addr: config.bind,
            detail: e.to_string(),
        };
        let local_addr = listener.local_addr().map_err(|e| bind_error(&e))?;
        let mut router = RouterSocket::new();
        let monitor = router.monitor();
        router
            .bind_listener(listener)
            .await
            .map_err(|e| bind_error(&e))?;
        Ok(Self::launch(config, router, monitor, local_addr))
    }

    fn launch(
        config: MeshConfig,
        router: RouterSocket,
        monitor: Monitor,
        local_addr: SocketAddr,
    ) -> (Self, MeshReceiver) {
        let (inbound_tx, inbound_rx) = mpsc::channel(config.recv_queue as usize);
        let rejected_in = Arc::new(AtomicU64::new(0));
        let peers = PeerSet::default();
        let inbound = Inbound {
            node_id: config.node_id,
            max_message_bytes: config.max_message_bytes,
            counters: peers.clone(),
            rejected: rejected_in.clone(),
            out: inbound_tx,
        };
        let tasks = vec![
            tokio::spawn(inbound.clone().run_monitor(monitor)),
            tokio::spawn(inbound.run(router)),
        ];
        let mut mesh = Self {
            node_id: config.node_id,
            local_addr,
            max_message_bytes: config.max_message_bytes,
            links: BTreeMap::new(),
            peers,
            incarnation: incarnation(),
            send_queue_per_peer: config.send_queue_per_peer,
            rejected_in,
            tasks,
        };
        for &(peer, addr) in &config.peers {
            mesh.add_link(peer, addr);
        }
        tracing::info!(node = config.node_id, %local_addr, peers = mesh.links.len(), "mesh started");
        (mesh, inbound_rx)
    }

    fn add_link(&mut self, peer: u64, addr: SocketAddr) {
        let (queue, rx) = mpsc::channel(self.send_queue_per_peer as usize);
        let counters = Arc::new(LinkCounters::default());
        let link = Link {
            node_id: self.node_id,
            incarnation: self.incarnation,
            peer,
            endpoint: Endpoint::from_tcp_addr(addr).to_string(),
            queue: rx,
            counters: counters.clone(),
        };
        let task = tokio::spawn(link.run());
        self.peers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(peer, counters.clone());
        self.links.insert(
            peer,
            PeerLink {
                addr,
                queue,
                counters,
                task,
            },
        );
    }

    /// Starts (or moves) the link to member `peer` at `addr` while the mesh runs: a node
    /// joined the cluster or changed address. A no-op when nothing changed.
    pub fn set_peer(&mut self, peer: u64, addr: SocketAddr) -> Result<(), MeshError> {
        if peer == self.node_id {
            return Err(MeshError::Config(format!("peer {peer} is this node")));
        }
        if self.links.get(&peer).is_some_and(|l| l.addr == addr) {
            return Ok(());
        }
        self.remove_peer(peer);
        self.add_link(peer, addr);
        tracing::info!(peer, %addr, "mesh link added");
        Ok(())
    }

    /// Stops the link to `peer` and refuses its messages from now on (it left the cluster).
    pub fn remove_peer(&mut self, peer: u64) {
        if let Some(link) = self.links.remove(&peer) {
            link.task.abort();
            tracing::info!(peer, "mesh link removed");
        }
        self.peers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&peer);
    }

    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// The address the ROUTER is bound to (the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Queues `bytes` for peer `to` without waiting. A full queue drops the message: Raft
    /// retransmits, and blocking the node on one slow peer would stall the whole cluster.
    pub fn send(&self, to: u64, bytes: Vec<u8>) -> Result<(), MeshError> {
        let Some(link) = self.links.get(&to) else {
            return Err(MeshError::UnknownPeer(to));
        };
        if bytes.len() > self.max_message_bytes as usize {
            return Err(MeshError::TooLarge {
                len: bytes.len(),
                max: self.max_message_bytes,
            });
        }
        match link.queue.try_send(Bytes::from(bytes)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                let dropped = link
                    .counters
                    .dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                // Log the 1st, 2nd, 4th, 8th... drop: visible, but a dead peer cannot flood
                // the log.
                if dropped.is_power_of_two() {
                    tracing::warn!(peer = to, dropped, "mesh send queue full, dropping message");
                }
                Err(MeshError::QueueFull(to))
            }
            // The link task only ends when the mesh is dropped, which cannot happen while
            // `&self` is alive.
            Err(mpsc::error::TrySendError::Closed(_)) => {
                unreachable!("peer link task outlives the mesh handle")
            }
        }
    }

    /// Per-peer link state and counters.
    pub fn stats(&self) -> MeshStats {
        MeshStats {
            links: self
                .links
                .iter()
                .map(|(&id, l)| (id, l.counters.read()))
                .collect(),
            rejected_in: self.rejected_in.load(Ordering::Relaxed),
        }
    }
}

fn header(from: u64, to: u64) -> Bytes {
    let mut h = BytesMut::with_capacity(HEADER_BYTES);
    h.put_u8(WIRE_VERSION);
    h.put_u64(from);
    h.put_u64(to);
    debug_assert_eq!(h.len(), HEADER_BYTES);
    h.freeze()
}

/// `(from, to)` of a header frame, or `None` if it is not a version-1 header.
fn parse_header(frame: &[u8]) -> Option<(u64, u64)> {
    if frame.len() != HEADER_BYTES || frame[0] != WIRE_VERSION {
        return None;
    }
    let from = u64::from_be_bytes(frame[1..9].try_into().ok()?);
    let to = u64::from_be_bytes(frame[9..17].try_into().ok()?);
    Some((from, to))
}

/// The node id in a DEALER identity `"<node>.<incarnation>.<connection>"`.
fn identity_node(identity: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(identity).ok()?;
    text.split('.').next()?.parse().ok()
}

/// The outbound half of one peer link: owns the DEALER and reconnects it.
struct Link {
    node_id: u64,
    incarnation: u64,
    peer: u64,
    endpoint: String,
    queue: mpsc::Receiver<Bytes>,
    counters: Arc<LinkCounters>,
}

impl Link {
    async fn run(mut self) {
        let mut delay = RECONNECT_DELAY_MIN;
        for connection in 0u64.. {
            match self.connect(connection).await {
                Ok((dealer, monitor)) => {
                    delay = RECONNECT_DELAY_MIN;
                    self.counters.connects.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .outbound_connected
                        .store(true, Ordering::Relaxed);
                    tracing::debug!(peer = self.peer, endpoint = %self.endpoint, "mesh link up");
                    let open = self.pump(dealer, monitor).await;
                    self.counters
                        .outbound_connected
                        .store(false, Ordering::Relaxed);
                    if !open {
                        return;
                    }
                    tracing::info!(peer = self.peer, endpoint = %self.endpoint, "mesh link down");
                }
                Err(e) => {
                    tracing::debug!(peer = self.peer, error = %e, "mesh connect failed");
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RECONNECT_DELAY_MAX);
        }
    }

    async fn connect(&self, connection: u64) -> Result<(DealerSocket, Monitor), zeromq::ZmqError> {
        let identity = format!("{}.{:x}.{connection}", self.node_id, self.incarnation);
        let identity: PeerIdentity = identity.parse()?;
        let mut options = SocketOptions::default();
        options.peer_identity(identity);
        options.connect_timeout(CONNECT_TIMEOUT);
        let mut dealer = DealerSocket::with_options(options);
        let monitor = dealer.monitor();
        dealer.connect(&self.endpoint).await?;
        Ok((dealer, monitor))
    }

    /// Sends queued messages until the connection breaks (returns true) or the mesh is
    /// dropped (returns false).
    async fn pump(&mut self, dealer: DealerSocket, mut monitor: Monitor) -> bool {
        let (mut tx, mut rx) = dealer.split();
        let header = header(self.node_id, self.peer);
        loop {
            tokio::select! {
                biased;
                event = monitor.next() => match event {
                    Some(SocketEvent::Disconnected(_)) | None => return true,
                    Some(_) => {}
                },
                // The peer never sends on this connection; polling it is what notices EOF
                // when the peer goes away while we have nothing to send.
                got = rx.recv() => {
                    if got.is_err() {
                        return true;
                    }
                    tracing::debug!(peer = self.peer, "unexpected message on a DEALER, ignored");
                }
                payload = self.queue.recv() => {
                    let Some(payload) = payload else { return false };
                    let len = payload.len() as u64;
                    let mut message = ZmqMessage::from(header.clone());
                    message.push_back(payload);
                    if let Err(e) = tx.send(message).await {
                        self.counters.dropped_send_failed.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(peer = self.peer, error = %e, "mesh send failed");
                        return true;
                    }
                    self.counters.messages_out.fetch_add(1, Ordering::Relaxed);
                    self.counters.bytes_out.fetch_add(len, Ordering::Relaxed);
                }
            }
        }
    }
}

/// The inbound half: the ROUTER, shared by every peer.
#[derive(Clone)]
struct Inbound {
    node_id: u64,
    max_message_bytes: u32,
    counters: PeerSet,
    rejected: Arc<AtomicU64>,
    out: mpsc::Sender<(u64, Vec<u8>)>,
}

impl Inbound {
    async fn run(self, mut router: RouterSocket) {
        loop {
            let message = match router.recv().await {
                Ok(m) => m,
                Err(e) => {
                    // The ROUTER's queue only ends when the socket shuts down.
                    tracing::warn!(error = %e, "mesh ROUTER stopped");
                    return;
                }
            };
            let Some((from, payload)) = self.accept(message) else {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            // Waiting here (rather than dropping) pushes back on the senders through TCP when
            // the node falls behind; their bounded queues then drop.
            if self.out.send((from, payload)).await.is_err() {
                return;
            }
        }
    }

    /// Checks one ROUTER message `[identity, header, payload]`; see the module docs.
    fn accept(&self, message: ZmqMessage) -> Option<(u64, Vec<u8>)> {
        let frames = message.into_vec();
        let [identity, header, payload] = <[Bytes; 3]>::try_from(frames).ok()?;
        let from = identity_node(&identity)?;
        let counters = peers_read(&self.counters).get(&from)?.clone();
        let (header_from, to) = parse_header(&header)?;
        if header_from != from || to != self.node_id {
            tracing::warn!(
                from,
                header_from,
                to,
                "mesh message with mismatched header dropped"
            );
            return None;
        }
        if payload.len() > self.max_message_bytes as usize {
            tracing::warn!(from, len = payload.len(), "oversized mesh message dropped");
            return None;
        }
        counters.messages_in.fetch_add(1, Ordering::Relaxed);
        counters
            .bytes_in
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        Some((from, payload.to_vec()))
    }

    /// Tracks inbound connections per peer from the ROUTER's accept/disconnect events.
    async fn run_monitor(self, mut monitor: Monitor) {
        while let Some(event) = monitor.next().await {
            let (identity, delta): (_, i64) = match &event {
                SocketEvent::Accepted(_, id) => (id, 1),
                SocketEvent::Disconnected(id) => (id, -1),
                _ => continue,
            };
            let counters =
                identity_node(identity).and_then(|n| peers_read(&self.counters).get(&n).cloned());
            let Some(counters) = counters else {
                continue;
            };
            let c = &counters.inbound_connections;
            if delta > 0 {
                c.fetch_add(1, Ordering::Relaxed);
            } else {
                // Saturating: a disconnect may be reported for a handshake we never counted.
                let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_other_versions() {
        let h = header(7, 9);
        assert_eq!(h.len(), HEADER_BYTES);
        assert_eq!(parse_header(&h), Some((7, 9)));
        let mut bad = h.to_vec();
        bad[0] = 2;
        assert_eq!(parse_header(&bad), None);
        assert_eq!(parse_header(&h[..16]), None);
    }

    #[test]
    fn identity_carries_the_node_id() {
        assert_eq!(identity_node(b"42.1a2b.3"), Some(42));
        assert_eq!(identity_node(b"x.1.2"), None);
        assert_eq!(identity_node(&[0, 1, 2]), None);
    }

    #[test]
    fn config_rejects_self_and_duplicate_peers() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut c = MeshConfig::new(1, addr, vec![(1, addr)]);
        assert!(matches!(validate(&c), Err(MeshError::Config(_))));
        c.peers = vec![(2, addr), (2, addr)];
        assert!(matches!(validate(&c), Err(MeshError::Config(_))));
        c.peers = vec![(2, addr), (3, addr)];
        assert!(validate(&c).is_ok());
    }
}
