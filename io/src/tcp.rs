//! RESP over TCP: the listener and one task pair (reader, writer) per connection.
//!
//! The reader decodes requests incrementally and forwards each to the node task; the writer
//! encodes every reply that is ready into one buffer and writes it with one call, so pipelined
//! requests are answered with few syscalls.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tickdb_core::node::{ConnId, ConnKind, Input};
use tickdb_core::resp::{self, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use crate::driver::{ConnOut, DriverMsg, NodeHandle};

/// Settings of the TCP endpoint.
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// Close a client that sent nothing for this long; `None` never does.
    pub idle_timeout: Option<Duration>,
    /// RESP decoding limits (bulk length, array length, nesting, inline size).
    pub limits: Limits,
    /// Most bytes of one incomplete request a client may hold in its query buffer, like
    /// Redis's `client-query-buffer-limit`.
    pub query_buffer_max: usize,
    /// Most replies queued for one client before it counts as too slow and is disconnected.
    pub output_queue_max: usize,
}

impl Default for TcpConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Some(Duration::from_secs(300)),
            limits: Limits::default(),
            query_buffer_max: 1024 * 1024 * 1024,
            output_queue_max: 65_536,
        }
    }
}

/// Flush the writer's buffer once it holds this much, even if more replies are ready.
const WRITE_CHUNK: usize = 64 * 1024;

/// Read at least this much at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Accepts clients until `shutdown` turns true. Every connection task holds a clone of `done`,
/// so the caller learns that all of them have finished when its receiver yields `None`.
pub async fn serve(
    listener: TcpListener,
    node: NodeHandle,
    config: TcpConfig,
    shutdown: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    let mut stop = shutdown.clone();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let task = Connection {
                    node: node.clone(),
                    config: config.clone(),
                    shutdown: shutdown.clone(),
                    _done: done.clone(),
                };
                tokio::spawn(task.run(stream, peer));
            }
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

struct Connection {
    node: NodeHandle,
    config: TcpConfig,
    shutdown: watch::Receiver<bool>,
    /// Dropped when the connection ends; see [`serve`].
    _done: mpsc::Sender<()>,
}

impl Connection {
    async fn run(self, stream: TcpStream, peer: SocketAddr) {
        let Self {
            node,
            config,
            shutdown,
            _done,
        } = self;
        connection(stream, peer, node, config, shutdown).await;
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    node: NodeHandle,
    config: TcpConfig,
    shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let conn = node.conn_id();
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel(config.output_queue_max);
    let connect = DriverMsg::Connect {
        conn,
        kind: ConnKind::Tcp,
        addr: peer.to_string(),
        replies: tx,
    };
    if node.send(connect).await.is_err() {
        return;
    }
    tracing::debug!(conn = conn.0, %peer, "client connected");
    let (closed_tx, closed_rx) = oneshot::channel();
    let writer = tokio::spawn(write_loop(wr, rx, node.clone(), closed_tx));
    read_loop(rd, conn, &node, &config, closed_rx, shutdown).await;
    let _ = node
        .send(DriverMsg::Input(Input::Disconnect { conn }))
        .await;
    let _ = writer.await;
    tracing::debug!(conn = conn.0, "client disconnected");
}

async fn read_loop(
    mut rd: OwnedReadHalf,
    conn: ConnId,
    node: &NodeHandle,
    config: &TcpConfig,
    mut closed: oneshot::Receiver<()>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        buf.reserve(READ_CHUNK);
        let read = async {
            match config.idle_timeout {
                Some(idle) => tokio::time::timeout(idle, rd.read_buf(&mut buf)).await.ok(),
                None => Some(rd.read_buf(&mut buf).await),
            }
        };
        let n = tokio::select! {
            biased;
            _ = &mut closed => return,
            _ = shutdown.wait_for(|stop| *stop) => return,
            n = read => n,
        };
        match n {
            None => {
                tracing::debug!(conn = conn.0, "closing idle client");
                return;
            }
            Some(Ok(0)) | Some(Err(_)) => return,
            Some(Ok(_)) => {}
        }
        loop {
            match resp::decode_request(&buf, &config.limits) {
                Ok(Some((args, used))) => {
                    buf.advance(used);
                    if args.is_empty() {
                        continue;
                    }
                    let unix = node.unix_now();
                    let input = Input::Request {
                        conn,
                        args,
                        wire_bytes: used as u64,
                        unix,
                    };
                    if node.send(DriverMsg::Input(input)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => {
                    if buf.len() > config.query_buffer_max {
                        let error = "Protocol error: query buffer limit exceeded".to_string();
                        let _ = node
                            .send(DriverMsg::Input(Input::ProtocolError { conn, error }))
                            .await;
                        return wait_closed(closed).await;
                    }
                    break;
                }
                Err(e) => {
                    tracing::debug!(conn = conn.0, error = %e, "protocol error");
                    let input = Input::ProtocolError {
                        conn,
                        error: e.to_string(),
                    };
                    let _ = node.send(DriverMsg::Input(input)).await;
                    return wait_closed(closed).await;
                }
            }
        }
    }
}

/// After a protocol error the reader stops reading and waits for the writer to deliver the
/// error reply and close.
async fn wait_closed(closed: oneshot::Receiver<()>) {
    let _ = tokio::time::timeout(Duration::from_secs(10), closed).await;
}

async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<ConnOut>,
    node: NodeHandle,
    closed: oneshot::Sender<()>,
) {
    let mut buf = Vec::with_capacity(WRITE_CHUNK);
    let mut close = false;
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                ConnOut::Reply(frame, protocol) => resp::encode(&frame, protocol, &mut buf),
                ConnOut::Close => {
                    close = true;
                    break;
                }
            }
            if buf.len() >= WRITE_CHUNK {
                break;
            }
            next = rx.try_recv().ok();
        }
        if !buf.is_empty() {
            if wr.write_all(&buf).await.is_err() {
                break;
            }
            node.count_bytes_out(buf.len() as u64);
            buf.clear();
        }
        if close {
            break;
        }
    }
    let _ = wr.shutdown().await;
    let _ = closed.send(());
}
