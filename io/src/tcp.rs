//! RESP over TCP: the listener and one task pair (reader, writer) per connection.
//!
//! The connection code is generic over the stream's halves ([`AsyncRead`], [`AsyncWrite`]) and
//! the accept loop over a [`Listener`], so the simulator serves turmoil's simulated TCP with
//! exactly the code production runs; [`serve`] is that loop on a tokio [`TcpListener`].
//!
//! The reader decodes requests incrementally and forwards each to the node task; the writer
//! encodes every reply that is ready into one buffer and writes it with one call, so pipelined
//! requests are answered with few syscalls.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use tickdb_core::node::{ConnId, ConnKind, Input};
use tickdb_core::resp::{self, Limits};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot, watch};

use crate::driver::{
    ConnOut, DriverMsg, INPUTS_PER_MSG_MAX, NodeHandle, ReplyReceiver, reply_queue,
};

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

/// A source of client connections: each accepted one as its read half, its write half and
/// the peer's address (for CLIENT LIST and logs). `accept` need not return a `Send` future:
/// [`serve_on`] is `Send` exactly when the listener's is (tokio's is; turmoil's hosts run
/// single-threaded and need not be).
pub trait Listener {
    type Read: AsyncRead + Unpin + Send + 'static;
    type Write: AsyncWrite + Unpin + Send + 'static;

    fn accept(&self) -> impl Future<Output = io::Result<(Self::Read, Self::Write, String)>>;
}

impl Listener for TcpListener {
    type Read = OwnedReadHalf;
    type Write = OwnedWriteHalf;

    async fn accept(&self) -> io::Result<(OwnedReadHalf, OwnedWriteHalf, String)> {
        let (stream, peer) = Self::accept(self).await?;
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        Ok((rd, wr, peer.to_string()))
    }
}

/// Accepts clients until `shutdown` turns true. Every connection task holds a clone of `done`,
/// so the caller learns that all of them have finished when its receiver yields `None`.
pub async fn serve(
    listener: TcpListener,
    node: NodeHandle,
    config: TcpConfig,
    shutdown: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    serve_on(listener, node, config, shutdown, done).await;
}

/// [`serve`] on any [`Listener`].
pub async fn serve_on<L: Listener>(
    listener: L,
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
            Ok((rd, wr, peer)) => {
                let node = node.clone();
                let (config, shutdown, done) = (config.clone(), shutdown.clone(), done.clone());
                tokio::spawn(async move {
                    connection(rd, wr, peer, node, config, shutdown).await;
                    // Dropped only now: see the doc comment.
                    drop(done);
                });
            }
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves one client over `rd`/`wr` until it leaves, the node closes it or `shutdown`.
async fn connection<R, W>(
    rd: R,
    wr: W,
    peer: String,
    node: NodeHandle,
    config: TcpConfig,
    shutdown: watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let conn = node.conn_id();
    let (tx, rx) = reply_queue(config.output_queue_max);
    let connect = DriverMsg::Connect {
        conn,
        kind: ConnKind::Tcp,
        addr: peer.clone(),
        replies: tx,
    };
    if node.send(connect).await.is_err() {
        return;
    }
    tracing::debug!(conn = conn.0, %peer, "client connected");
    let (closed_tx, closed_rx) = oneshot::channel();
    let owed = Arc::new(Owed::default());
    let writer = tokio::spawn(write_loop(wr, rx, node.clone(), closed_tx, owed.clone()));
    read_loop(rd, conn, &node, &config, closed_rx, shutdown, &owed).await;
    let _ = node
        .send(DriverMsg::Input(Input::Disconnect { conn }))
        .await;
    let _ = writer.await;
    tracing::debug!(conn = conn.0, "client disconnected");
}

/// Requests a connection sent the node minus replies written back: a client still owed a reply
/// (one blocked in `TS.READ ... BLOCK`) is not idle, as Redis exempts blocked clients from its
/// `timeout`. Pushes that answer no request saturate it at 0.
#[derive(Debug, Default)]
struct Owed(AtomicU64);

impl Owed {
    fn requests(&self, n: usize) {
        self.0.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// `n` replies written.
    fn replies(&self, n: usize) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |owed| {
                Some(owed.saturating_sub(n as u64))
            });
    }

    fn any(&self) -> bool {
        self.0.load(Ordering::Relaxed) > 0
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut rd: R,
    conn: ConnId,
    node: &NodeHandle,
    config: &TcpConfig,
    mut closed: oneshot::Receiver<()>,
    mut shutdown: watch::Receiver<bool>,
    owed: &Owed,
) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    // The requests of one read, decoded (kept for its capacity).
    let mut requests = Vec::new();
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
            None if owed.any() => continue,
            None => {
                tracing::debug!(conn = conn.0, "closing idle client");
                return;
            }
            Some(Ok(0)) | Some(Err(_)) => return,
            Some(Ok(_)) => {}
        }
        // Every request of this read goes to the node in one message, stamped with one
        // wall-clock reading.
        let unix = node.unix_now();
        // At most a message's worth of requests at a time: decode, hand over, decode again
        // while that filled it.
        let decoded = loop {
            let decoded = resp::decode_packed_from(
                &mut buf,
                &config.limits,
                INPUTS_PER_MSG_MAX,
                &mut requests,
            );
            let full = matches!(decoded, Ok(read) if read >= INPUTS_PER_MSG_MAX);
            let mut batch = Vec::with_capacity(requests.len());
            for packed in requests.drain(..) {
                owed.requests(packed.len());
                let input = Input::Requests {
                    conn,
                    requests: packed,
                    unix,
                };
                batch.push(input);
            }
            if node.send_inputs(&mut batch).await.is_err() {
                return;
            }
            if decoded.is_err() || !full {
                break decoded;
            }
        };
        let error = match decoded {
            Err(e) => {
                tracing::debug!(conn = conn.0, error = %e, "protocol error");
                e.to_string()
            }
            Ok(_) if buf.len() > config.query_buffer_max => {
                "Protocol error: query buffer limit exceeded".to_string()
            }
            Ok(_) => continue,
        };
        let _ = node
            .send(DriverMsg::Input(Input::ProtocolError { conn, error }))
            .await;
        return wait_closed(closed).await;
    }
}

/// After a protocol error the reader stops reading and waits for the writer to deliver the
/// error reply and close.
async fn wait_closed(closed: oneshot::Receiver<()>) {
    let _ = tokio::time::timeout(Duration::from_secs(10), closed).await;
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: ReplyReceiver,
    node: NodeHandle,
    closed: oneshot::Sender<()>,
    owed: Arc<Owed>,
) {
    let mut buf = Vec::with_capacity(WRITE_CHUNK);
    let mut close = false;
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                ConnOut::Reply(frame, protocol) => {
                    resp::encode(&frame, protocol, &mut buf);
                    owed.replies(1);
                }
                ConnOut::Replies(replies) => {
                    for (frame, protocol) in &replies {
                        resp::encode(frame, *protocol, &mut buf);
                    }
                    owed.replies(replies.len());
                }
                ConnOut::Oks(count) => {
                    resp::encode_oks(count, &mut buf);
                    owed.replies(count as usize);
                }
                ConnOut::Push(frame, protocol, _) => {
                    resp::encode(&frame, protocol, &mut buf);
                }
                ConnOut::Close => {
                    close = true;
                    break;
                }
            }
            if buf.len() >= WRITE_CHUNK {
                break;
            }
            next = rx.try_recv();
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

#[cfg(test)]
mod tests {
    use tickdb_core::node::{Node, NodeConfig};
    use tickdb_core::resp::{Frame, encode_request};
    use tickdb_core::store::MemStore;

    use super::*;
    use crate::driver::{channel, run_node};

    /// A node serving on a tokio listener, and what stops it.
    struct Server {
        addr: std::net::SocketAddr,
        stop: watch::Sender<bool>,
        server: tokio::task::JoinHandle<()>,
        done: mpsc::Receiver<()>,
        node: tokio::task::JoinHandle<Node<MemStore>>,
    }

    async fn start(config: TcpConfig) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (handle, rx) = channel();
        let node = Node::new(NodeConfig::default(), MemStore::new(), handle.now()).unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let node = tokio::spawn(run_node(node, handle.clone(), rx, stop_rx.clone()));
        let (done_tx, done) = mpsc::channel::<()>(1);
        let server = tokio::spawn(serve(listener, handle, config, stop_rx, done_tx));
        Server {
            addr,
            stop,
            server,
            done,
            node,
        }
    }

    impl Server {
        async fn shut(mut self) {
            self.stop.send(true).unwrap();
            self.server.await.unwrap();
            assert!(
                self.done.recv().await.is_none(),
                "every connection finished"
            );
            self.node.await.unwrap();
        }
    }

    /// Reads `n` frames (or fewer if the server closes: `None` marks the close).
    async fn frames(stream: &mut tokio::net::TcpStream, n: usize) -> Vec<Option<Frame>> {
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        while frames.len() < n {
            let got = tokio::time::timeout(Duration::from_secs(10), stream.read_buf(&mut buf))
                .await
                .expect("replies in time")
                .unwrap();
            if got == 0 {
                frames.push(None);
                break;
            }
            while let Some((frame, used)) = resp::decode(&buf, &Limits::default()).unwrap() {
                bytes::Buf::advance(&mut buf, used);
                frames.push(Some(frame));
            }
        }
        frames
    }

    async fn send(stream: &mut tokio::net::TcpStream, requests: &[&[&[u8]]]) {
        let mut out = Vec::new();
        for r in requests {
            encode_request(r, &mut out);
        }
        stream.write_all(&out).await.unwrap();
    }

    /// `serve` (the generic accept loop on a tokio listener) still runs as a spawned, `Send`
    /// task and answers a pipelined SET/GET in order.
    #[tokio::test]
    async fn serve_answers_pipelined_requests() {
        let server = start(TcpConfig::default()).await;
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        send(&mut stream, &[&[b"SET", b"k", b"v"], &[b"GET", b"k"]]).await;
        assert_eq!(
            frames(&mut stream, 2).await,
            vec![Some(Frame::ok()), Some(Frame::bulk("v"))]
        );
        drop(stream);
        server.shut().await;
    }

    /// The idle timeout closes a silent client, but not one still owed a reply (blocked in
    /// `TS.READ ... BLOCK`), which is answered when the sample lands.
    #[tokio::test]
    async fn a_blocked_client_is_not_idle() {
        let config = TcpConfig {
            idle_timeout: Some(Duration::from_millis(200)),
            ..TcpConfig::default()
        };
        let server = start(config).await;
        let connect = || tokio::net::TcpStream::connect(server.addr);
        let (mut blocked, mut silent) = (connect().await.unwrap(), connect().await.unwrap());
        send(
            &mut blocked,
            &[&[b"TS.READ", b"s", b"0", b"BLOCK", b"0", b"1"]],
        )
        .await;
        assert_eq!(
            frames(&mut silent, 1).await,
            vec![None],
            "an idle client is closed"
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        let mut writer = connect().await.unwrap();
        send(&mut writer, &[&[b"TS.ADD", b"s", b"7", b"1"]]).await;
        assert_eq!(frames(&mut writer, 1).await, vec![Some(Frame::Integer(7))]);
        let sample = Frame::Array(vec![Frame::Array(vec![
            Frame::Integer(7),
            Frame::simple("1"),
        ])]);
        assert_eq!(frames(&mut blocked, 1).await, vec![Some(sample)]);
        drop((blocked, writer));
        server.shut().await;
    }
}
