//! The async node driver: one task owns the sans-IO [`Node`] and follows its drive rule.
//!
//! Endpoints (TCP, ZeroMQ) send [`DriverMsg`]s into a bounded channel; the task feeds every
//! message already queued into the node before it drains the node's outputs, so all writes that
//! arrived together share one sync (group commit). Replies go to each connection's bounded
//! queue; a client whose queue is full is too slow to keep up and is disconnected rather than
//! letting its replies grow without bound.
//!
//! Only `tokio` primitives are used (no threads, no `spawn_blocking`), so the same driver runs
//! under turmoil's simulated runtime. The store's `sync` blocks the task while it runs.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tickdb_core::node::{ConnId, ConnKind, Input, Node, Output};
use tickdb_core::resp::{Frame, Protocol};
use tickdb_core::store::Store;
use tickdb_core::{Instant, UnixMillis};
use tokio::sync::{mpsc, watch};

/// Most messages fed into the node before its outputs are drained; bounds the latency one
/// busy loop iteration adds to replies.
pub const INPUT_BATCH_MAX: usize = 4096;

/// Capacity of the channel from endpoints to the node task.
pub const INPUT_QUEUE: usize = 65_536;

/// What the node task sends a connection.
#[derive(Debug)]
pub enum ConnOut {
    Reply(Frame, Protocol),
    /// Close after the replies before this one.
    Close,
}

/// What endpoints send the node task.
#[derive(Debug)]
pub enum DriverMsg {
    /// A new client and the queue its replies go to.
    Connect {
        conn: ConnId,
        kind: ConnKind,
        addr: String,
        replies: mpsc::Sender<ConnOut>,
    },
    Input(Input),
}

/// A cloneable handle endpoints use to reach the node task.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    tx: mpsc::Sender<DriverMsg>,
    next_conn: Arc<AtomicU64>,
    bytes_out: Arc<AtomicU64>,
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

    /// Counts bytes written to clients for INFO.
    pub fn count_bytes_out(&self, n: u64) {
        self.bytes_out.fetch_add(n, Ordering::Relaxed);
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
        clock: Clock::new(),
    };
    (handle, rx)
}

/// Runs the node until `shutdown` turns true (or every handle is dropped), then finishes the
/// work in flight, syncs the store and returns the node.
pub async fn run_node<S: Store>(
    mut node: Node<S>,
    handle: NodeHandle,
    mut rx: mpsc::Receiver<DriverMsg>,
    mut shutdown: watch::Receiver<bool>,
) -> Node<S> {
    let clock = handle.clock;
    let bytes_out = Arc::clone(&handle.bytes_out);
    drop(handle);
    let mut conns: HashMap<ConnId, mpsc::Sender<ConnOut>> = HashMap::new();
    loop {
        let deadline = node.poll_timeout();
        let msg = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            msg = rx.recv() => match msg {
                Some(msg) => Some(msg),
                None => break,
            },
            () = sleep_until(clock, deadline) => None,
        };
        let now = clock.now();
        match msg {
            None => node.handle_timeout(now),
            Some(msg) => {
                feed(&mut node, &mut conns, now, msg);
                for _ in 1..INPUT_BATCH_MAX {
                    let Ok(msg) = rx.try_recv() else { break };
                    feed(&mut node, &mut conns, now, msg);
                }
            }
        }
        node.add_bytes_out(bytes_out.swap(0, Ordering::Relaxed));
        drain(&mut node, &mut conns);
    }
    drain(&mut node, &mut conns);
    if let Err(e) = node.sync() {
        tracing::error!(error = %e, "final sync failed");
    }
    node
}

async fn sleep_until(clock: Clock, deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(clock.to_tokio(at)).await,
        None => std::future::pending().await,
    }
}

fn feed<S: Store>(
    node: &mut Node<S>,
    conns: &mut HashMap<ConnId, mpsc::Sender<ConnOut>>,
    now: Instant,
    msg: DriverMsg,
) {
    match msg {
        DriverMsg::Connect {
            conn,
            kind,
            addr,
            replies,
        } => {
            conns.insert(conn, replies);
            node.handle_input(now, Input::Connect { conn, kind, addr });
        }
        DriverMsg::Input(input) => {
            if let Input::Disconnect { conn } = &input {
                conns.remove(conn);
            }
            node.handle_input(now, input);
        }
    }
}

fn drain<S: Store>(node: &mut Node<S>, conns: &mut HashMap<ConnId, mpsc::Sender<ConnOut>>) {
    while let Some(out) = node.poll_output() {
        let (conn, msg) = match out {
            Output::Reply {
                conn,
                frame,
                protocol,
            } => (conn, ConnOut::Reply(frame, protocol)),
            Output::Close { conn } => (conn, ConnOut::Close),
            // The cluster mesh is not wired into the driver yet.
            Output::Send { .. } | Output::Member { .. } => continue,
        };
        let closing = matches!(msg, ConnOut::Close);
        let Some(tx) = conns.get(&conn) else { continue };
        match tx.try_send(msg) {
            Ok(()) if closing => {
                conns.remove(&conn);
            }
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(
                    conn = conn.0,
                    "client output buffer full: disconnecting a slow client"
                );
                conns.remove(&conn);
                node.handle_input(Instant::ZERO, Input::Disconnect { conn });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                conns.remove(&conn);
            }
        }
    }
}
