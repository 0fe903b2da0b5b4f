//! RESP over ZeroMQ: a ROUTER socket whose DEALER peers are clients of the node, beside TCP.
//!
//! # Framing
//!
//! A DEALER sends `["", payload]` (the ROUTER sees `[identity, "", payload]`) or, if it does not
//! add the empty delimiter frame, `[payload]`; the reply mirrors the request: `[identity, "",
//! reply]` or `[identity, reply]`. Frames after the first payload frame are appended to it. The
//! payload holds zero or more RESP requests, pipelined; an inline command at the very end of the
//! payload needs no line ending, since the message boundary ends it (`PING` works as well as
//! `PING\r\n`).
//!
//! # The reply rule
//!
//! Every message gets exactly one reply message, whose payload is the replies to all of its
//! requests, in order, concatenated (empty when the message held no request). It is sent once
//! the last of those replies is in: writes wait for their sync, so the endpoint does not answer
//! request by request. Messages from one identity are answered in the order they arrived.
//! Exceptions, each logged:
//! - A payload that does not decode: the requests before the bad bytes are answered, followed by
//!   `-ERR Protocol error: ...` in the same reply message; the identity's client is then reset
//!   (its protocol version, name and `BATCH_SET` buffer are dropped), so its next message starts
//!   a fresh client. Messages it sent before that reset was seen may be answered first.
//! - A message larger than [`ZmqConfig::message_max`] is answered with `-ERR` without being
//!   decoded; the client keeps its state (ZeroMQ's framing is intact, unlike a broken stream).
//! - When the node closes a client (`QUIT`, too many pipelined requests, max clients reached, or
//!   a client too slow to read), the message being answered gets the replies it has; messages
//!   that reached the closed client behind it are not run and are answered `-ERR this client was
//!   closed ...: send it again`. After `QUIT` the identity's next message starts a fresh
//!   client; after the other closes, the first message may still meet the closed client.
//! - More than [`ZmqConfig::in_flight_max`] unanswered messages from one identity: the extra
//!   message is refused at once with `-ERR`, ahead of the replies still owed.
//!
//! # Clients
//!
//! Each DEALER identity is one client of the node ([`ConnKind::Zmq`], address
//! `zmq:<identity in hex>`), created by its first message and forgotten when its peer
//! disconnects or after [`ZmqConfig::idle_timeout`] without a message and with nothing owed.
//!
//! # Tasks
//!
//! One task owns the socket's receive half: it decodes each message, tells the identity's
//! client task how many replies to collect, and forwards the requests to the node. Each client
//! task owns a clone of the send half, collects the node's replies for its identity and sends
//! the reply messages, so a slow DEALER holds up only its own task. Its reply queue is bounded;
//! when the DEALER does not read, the node's driver finds that queue full and disconnects the
//! client rather than buffering without bound.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tickdb_core::node::{ConnId, ConnKind, Input};
use tickdb_core::resp::{self, Frame, Limits, Packed, PackedRequest, Protocol};
use tokio::sync::{mpsc, watch};
use zeromq::prelude::*;
use zeromq::{RouterRecvHalf, RouterSendHalf, RouterSocket, SocketEvent, ZmqMessage};

use crate::driver::{
    ConnOut, DriverMsg, NodeHandle, NodeStopped, ReplyReceiver, ReplySender, reply_queue,
};

/// Default for [`ZmqConfig::message_max`]: 64 MiB. The socket has already received the whole
/// message when it is checked, so this bounds the work and memory a message costs the node, not
/// the socket's read buffer.
pub const MESSAGE_MAX_DEFAULT: usize = 64 * 1024 * 1024;

/// Default for [`ZmqConfig::in_flight_max`]; as many as the replies a client may have queued.
pub const IN_FLIGHT_MAX_DEFAULT: usize = 65_536;

/// How long a refusal may wait for the peer's send queue before it is dropped: a peer that has
/// that many messages unanswered is usually not reading, and each refusal holds a task.
const REFUSAL_SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// How often idle clients and peer disconnections are looked for, at most.
const SWEEP_INTERVAL_MAX: Duration = Duration::from_secs(1);

/// Settings of the ZeroMQ endpoint.
#[derive(Clone, Debug)]
pub struct ZmqConfig {
    /// Forget a client that sent nothing for this long and is owed nothing; `None` never does.
    pub idle_timeout: Option<Duration>,
    /// RESP decoding limits (bulk length, array length, nesting, inline size).
    pub limits: Limits,
    /// Largest message payload accepted, in bytes; larger ones are refused with `-ERR`.
    pub message_max: usize,
    /// Most unanswered messages one identity may have; more are refused with `-ERR`.
    pub in_flight_max: usize,
    /// Most replies queued for one client before it counts as too slow and is disconnected.
    pub output_queue_max: usize,
}

impl Default for ZmqConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Some(Duration::from_secs(300)),
            limits: Limits::default(),
            message_max: MESSAGE_MAX_DEFAULT,
            in_flight_max: IN_FLIGHT_MAX_DEFAULT,
            output_queue_max: 65_536,
        }
    }
}

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The TCP address could not be bound (in use, not permitted, no such interface).
    #[error("binding {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The ZeroMQ socket refused the bound listener.
    #[error("starting the ZeroMQ ROUTER on {addr}: {source}")]
    Router {
        addr: SocketAddr,
        source: zeromq::ZmqError,
    },
}

/// A ROUTER socket bound to `addr` (port 0 picks a free one), and the address it is bound to.
pub async fn bind(addr: SocketAddr) -> Result<(RouterSocket, SocketAddr), BindError> {
    // Binding the std listener ourselves reports the port actually bound and a plain io error.
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| BindError::Listen { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| BindError::Listen { addr, source })?;
    let mut socket = RouterSocket::new();
    socket
        .bind_listener(listener)
        .await
        .map_err(|source| BindError::Router {
            addr: local,
            source,
        })?;
    Ok((socket, local))
}

/// Serves DEALER clients on `socket` until `shutdown` turns true. Every client task holds a
/// clone of `done`, so the caller learns that all of them have finished when its receiver
/// yields `None`.
pub async fn serve(
    mut socket: RouterSocket,
    node: NodeHandle,
    config: ZmqConfig,
    shutdown: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    let mut monitor = socket.monitor();
    let (sender, mut receiver) = socket.split();
    let mut next_event = move || monitor.try_recv().ok();
    let mut router = Router {
        node,
        config,
        sender,
        clients: HashMap::new(),
        done,
    };
    let sweep_every = router
        .config
        .idle_timeout
        .map_or(SWEEP_INTERVAL_MAX, |idle| {
            (idle / 2).min(SWEEP_INTERVAL_MAX)
        })
        .max(Duration::from_millis(10));
    let mut sweep = tokio::time::interval(sweep_every);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop = shutdown;
    loop {
        let received = tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => break,
            _ = sweep.tick() => {
                router.sweep(&mut next_event);
                continue;
            }
            received = recv(&mut receiver) => received,
        };
        match received {
            Ok(message) => {
                if router.dispatch(message).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "ZeroMQ receive failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    // Dropping every client's expectation queue lets each client task deliver what it owes
    // and end.
    router.clients.clear();
}

async fn recv(receiver: &mut RouterRecvHalf) -> zeromq::ZmqResult<ZmqMessage> {
    receiver.recv().await
}

/// The socket task's state.
struct Router {
    node: NodeHandle,
    config: ZmqConfig,
    sender: RouterSendHalf,
    /// By identity.
    clients: HashMap<Bytes, ClientEntry>,
    done: mpsc::Sender<()>,
}

/// The socket task's view of one client.
struct ClientEntry {
    conn: ConnId,
    expects: mpsc::Sender<Expect>,
    /// Messages received and not yet answered; the client task decrements it.
    in_flight: Arc<AtomicUsize>,
    /// The node's reply queue for this client, until the node is told about it.
    replies: Option<ReplySender>,
    last_seen: tokio::time::Instant,
}

/// What a client task must send for one received message.
#[derive(Debug)]
struct Expect {
    /// Replies the node owes for the message.
    replies: u64,
    /// Whether the reply carries the empty delimiter frame.
    delimiter: bool,
    /// Bytes the endpoint itself appends after the node's replies (a refusal).
    tail: Option<Bytes>,
}

impl Router {
    /// Handles one message; fails only when the node has stopped.
    async fn dispatch(&mut self, message: ZmqMessage) -> Result<(), NodeStopped> {
        let Some(parsed) = Parsed::from_frames(message.into_vecdeque()) else {
            return Ok(());
        };
        let Parsed {
            identity,
            delimiter,
            payload,
        } = parsed;
        if payload.len() > self.config.message_max {
            tracing::debug!(len = payload.len(), "refusing an oversized ZeroMQ message");
            let error = format!(
                "-ERR message of {} bytes is larger than the limit of {} bytes\r\n",
                payload.len(),
                self.config.message_max
            );
            let expect = Expect {
                replies: 0,
                delimiter,
                tail: Some(Bytes::from(error)),
            };
            return self.expect(&identity, expect).await.map(|_| ());
        }
        let decoded = decode_payload(payload.clone(), &self.config.limits);
        let error_replies = u64::from(decoded.error.is_some());
        let expect = Expect {
            replies: decoded.count() as u64 + error_replies,
            delimiter,
            tail: None,
        };
        let Some(conn) = self.expect(&identity, expect).await? else {
            return Ok(());
        };
        // The node closes the client after QUIT; forgetting it now, rather than when its task
        // sees the close, makes the identity's next message start a fresh client for sure.
        // A payload without a `q` holds no QUIT: one vectorised scan of its bytes rather than
        // a look at every request, most payloads' case (it was 1% of the server's time in a
        // BATCH_SET load).
        let quits = memchr::memchr2(b'q', b'Q', &payload).is_some()
            && decoded
                .requests
                .iter()
                .flat_map(Packed::iter)
                .any(|r| is_quit(&r));
        // The message's requests go to the node in order, up to `INPUTS_PER_MSG_MAX` per
        // driver message.
        let unix = self.node.unix_now();
        let mut batch = Vec::new();
        for requests in decoded.requests {
            let input = Input::Requests {
                conn,
                requests,
                unix,
            };
            self.node.push_input(&mut batch, input).await?;
        }
        self.node.send_inputs(&mut batch).await?;
        if quits {
            self.clients.remove(&identity);
        }
        if let Some(error) = decoded.error {
            tracing::debug!(conn = conn.0, %error, "protocol error from a ZeroMQ client");
            // The node answers the error and closes this client; the identity's next message
            // starts a fresh one.
            self.clients.remove(&identity);
            let input = Input::ProtocolError { conn, error };
            self.node.send(DriverMsg::Input(input)).await?;
        }
        Ok(())
    }

    /// Queues `expect` with the identity's client (created if needed) and makes sure the node
    /// knows the client. Returns the client's id, or `None` when the message was refused.
    async fn expect(
        &mut self,
        identity: &Bytes,
        expect: Expect,
    ) -> Result<Option<ConnId>, NodeStopped> {
        let now = tokio::time::Instant::now();
        let mut expect = expect;
        // A client whose task has ended (the node closed it) is replaced, once.
        for _ in 0..2 {
            let entry = match self.clients.entry(identity.clone()) {
                Entry::Occupied(o) => o.into_mut(),
                Entry::Vacant(v) => v.insert(spawn_client(
                    identity.clone(),
                    &self.node,
                    &self.sender,
                    &self.config,
                    &self.done,
                )),
            };
            entry.last_seen = now;
            entry.in_flight.fetch_add(1, Ordering::Relaxed);
            match entry.expects.try_send(expect) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Closed(back)) => {
                    self.clients.remove(identity);
                    expect = back;
                    continue;
                }
                Err(mpsc::error::TrySendError::Full(back)) => {
                    entry.in_flight.fetch_sub(1, Ordering::Relaxed);
                    tracing::warn!(
                        conn = entry.conn.0,
                        "ZeroMQ client has too many unanswered messages: refusing one"
                    );
                    self.refuse_now(identity.clone(), back.delimiter);
                    return Ok(None);
                }
            }
            // The expectation is queued before the node can answer anything for this message,
            // so the client task always knows which message a reply belongs to.
            let conn = entry.conn;
            if let Some(replies) = entry.replies.take() {
                let connect = DriverMsg::Connect {
                    conn,
                    kind: ConnKind::Zmq,
                    addr: client_addr(identity),
                    replies,
                };
                self.node.send(connect).await?;
                tracing::debug!(conn = conn.0, identity = %hex(identity), "ZeroMQ client");
            }
            return Ok(Some(conn));
        }
        // A client task ends before its first message only when the node has stopped.
        Err(NodeStopped)
    }

    /// Answers a refused message at once, from a task of its own so the receive loop never
    /// waits on one peer.
    fn refuse_now(&self, identity: Bytes, delimiter: bool) {
        let mut sender = self.sender.clone();
        let node = self.node.clone();
        let payload = Bytes::from_static(b"-ERR too many unanswered messages from this client\r\n");
        tokio::spawn(async move {
            let len = payload.len() as u64;
            let send = sender.send(reply_message(identity, delimiter, payload));
            if let Ok(Ok(())) = tokio::time::timeout(REFUSAL_SEND_TIMEOUT, send).await {
                node.count_bytes_out(len);
            }
        });
    }

    /// Forgets clients whose peer disconnected, whose task ended, or that stayed idle owing
    /// nothing for the idle timeout. Their tasks deliver what is still owed, then end.
    fn sweep(&mut self, next_event: &mut impl FnMut() -> Option<SocketEvent>) {
        // Bounded: the monitor queue holds at most 1024 events, and events that did not fit
        // were dropped by the socket; the idle timeout catches those clients.
        for _ in 0..MONITOR_EVENTS_PER_SWEEP {
            let Some(event) = next_event() else { break };
            if let SocketEvent::Disconnected(peer) = event {
                let identity = Bytes::copy_from_slice(peer.as_ref());
                if let Some(entry) = self.clients.remove(&identity) {
                    tracing::debug!(conn = entry.conn.0, "ZeroMQ peer disconnected");
                }
            }
        }
        let now = tokio::time::Instant::now();
        let idle = self.config.idle_timeout;
        self.clients.retain(|_, entry| {
            if entry.expects.is_closed() {
                return false;
            }
            let idle_for = now.saturating_duration_since(entry.last_seen);
            let forget = idle.is_some_and(|idle| idle_for >= idle)
                && entry.in_flight.load(Ordering::Relaxed) == 0;
            if forget {
                tracing::debug!(conn = entry.conn.0, "forgetting an idle ZeroMQ client");
            }
            !forget
        });
    }
}

/// The reply to a message that reached a client the node had already closed.
const CLOSED_REFUSAL: &[u8] =
    b"-ERR this client was closed (QUIT or an error) before the message arrived: send it again\r\n";

/// Most monitor events handled per sweep.
const MONITOR_EVENTS_PER_SWEEP: usize = 4096;

fn spawn_client(
    identity: Bytes,
    node: &NodeHandle,
    sender: &RouterSendHalf,
    config: &ZmqConfig,
    done: &mpsc::Sender<()>,
) -> ClientEntry {
    let conn = node.conn_id();
    let (expects_tx, expects_rx) = mpsc::channel(config.in_flight_max.max(1));
    let (replies_tx, replies_rx) = reply_queue(config.output_queue_max);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let task = ClientTask {
        identity,
        conn,
        node: node.clone(),
        sender: sender.clone(),
        expects: expects_rx,
        replies: replies_rx,
        in_flight: Arc::clone(&in_flight),
        _done: done.clone(),
    };
    tokio::spawn(task.run());
    ClientEntry {
        conn,
        expects: expects_tx,
        in_flight,
        replies: Some(replies_tx),
        last_seen: tokio::time::Instant::now(),
    }
}

/// One client's task: collects the node's replies per message and sends the reply messages.
struct ClientTask {
    identity: Bytes,
    conn: ConnId,
    node: NodeHandle,
    sender: RouterSendHalf,
    expects: mpsc::Receiver<Expect>,
    replies: ReplyReceiver,
    in_flight: Arc<AtomicUsize>,
    /// Dropped when the task ends; see [`serve`].
    _done: mpsc::Sender<()>,
}

/// A message being answered.
#[derive(Debug)]
struct Pending {
    expect: Expect,
    /// Replies encoded into `payload` so far.
    got: u64,
    payload: Vec<u8>,
}

impl Pending {
    fn new(expect: Expect) -> Self {
        Self {
            expect,
            got: 0,
            payload: Vec::new(),
        }
    }

    fn complete(&self) -> bool {
        self.got >= self.expect.replies
    }
}

impl ClientTask {
    async fn run(mut self) {
        let mut pending: VecDeque<Pending> = VecDeque::new();
        let mut expecting = true;
        loop {
            while pending.front().is_some_and(Pending::complete) {
                if let Some(done) = pending.pop_front() {
                    self.answer(done).await;
                }
            }
            if !expecting && pending.is_empty() {
                break;
            }
            // Expectations first, so replies mostly find their message already pending; see
            // `owner` for the rest.
            let out = tokio::select! {
                biased;
                expect = self.expects.recv(), if expecting => {
                    match expect {
                        Some(expect) => pending.push_back(Pending::new(expect)),
                        None => expecting = false,
                    }
                    continue;
                }
                out = self.replies.recv() => out,
            };
            match out {
                // Pushes do not happen here: the node refuses SUBSCRIBE on ZeroMQ clients.
                Some(ConnOut::Reply(frame, protocol) | ConnOut::Push(frame, protocol, _)) => {
                    self.take_reply(&mut pending, &frame, protocol).await;
                }
                Some(ConnOut::Replies(replies)) => {
                    let shared = self.share(&mut pending, replies.len(), |payload, now| {
                        for (frame, protocol) in &replies[now] {
                            resp::encode(frame, *protocol, payload);
                        }
                    });
                    for (frame, protocol) in &replies[shared..] {
                        self.take_reply(&mut pending, frame, *protocol).await;
                    }
                }
                Some(ConnOut::Oks(count)) => {
                    let count = count as usize;
                    let shared = self.share(&mut pending, count, |payload, now| {
                        resp::encode_oks(now.len() as u32, payload);
                    });
                    for _ in shared..count {
                        self.take_reply(&mut pending, &Frame::ok(), Protocol::Resp2)
                            .await;
                    }
                }
                // The node closed the client, or the driver dropped it as too slow.
                Some(ConnOut::Close) | None => {
                    self.closed(pending).await;
                    break;
                }
            }
        }
        let _ = self
            .node
            .send(DriverMsg::Input(Input::Disconnect { conn: self.conn }))
            .await;
    }

    /// Shares `n` replies from the node out over the messages they answer, in order, each
    /// message its share at once (its owner found once, not per reply): `write` encodes the
    /// replies of a range into a message's payload. Returns how many found a message (the
    /// rest go through [`Self::take_reply`]).
    fn share(
        &mut self,
        pending: &mut VecDeque<Pending>,
        n: usize,
        mut write: impl FnMut(&mut Vec<u8>, std::ops::Range<usize>),
    ) -> usize {
        let mut shared = 0;
        while let Some(p) = self.owner(pending).filter(|_| shared < n) {
            let owed = usize::try_from(p.expect.replies - p.got).unwrap_or(usize::MAX);
            let now = owed.min(n - shared);
            write(&mut p.payload, shared..shared + now);
            p.got += now as u64;
            shared += now;
        }
        shared
    }

    /// Adds one reply from the node to the message it answers.
    async fn take_reply(
        &mut self,
        pending: &mut VecDeque<Pending>,
        frame: &Frame,
        protocol: Protocol,
    ) {
        if let Some(p) = self.owner(pending) {
            resp::encode(frame, protocol, &mut p.payload);
            p.got += 1;
            return;
        }
        // Cannot happen: the expectation is queued before the node hears of the message (or
        // of the client). Delivered anyway, on its own.
        tracing::warn!(conn = self.conn.0, "a ZeroMQ reply nobody expected");
        let mut payload = Vec::new();
        resp::encode(frame, protocol, &mut payload);
        let unasked = Pending {
            expect: Expect {
                replies: 1,
                delimiter: true,
                tail: None,
            },
            got: 1,
            payload,
        };
        self.send(unasked).await;
    }

    /// The message a reply from the node belongs to: the oldest one still owed replies. The
    /// `select!` may have found the expectation queue empty just before the message's
    /// expectation was queued and its reply came; the reply's arrival proves the expectation
    /// is queued by now, so it is fetched here.
    fn owner<'a>(&mut self, pending: &'a mut VecDeque<Pending>) -> Option<&'a mut Pending> {
        let mut index = pending.iter().position(|p| !p.complete());
        // Bounded by the expectation queue's capacity.
        while index.is_none() {
            let Ok(expect) = self.expects.try_recv() else {
                break;
            };
            pending.push_back(Pending::new(expect));
            index = pending.iter().position(|p| !p.complete());
        }
        index.and_then(|i| pending.get_mut(i))
    }

    /// After the node closed the client: the message being answered gets the replies it has;
    /// messages behind it reached the node too late to run, and are told so rather than left
    /// without a reply. Closing the expectation queue first makes the identity's next message
    /// start a fresh client.
    async fn closed(&mut self, mut pending: VecDeque<Pending>) {
        self.expects.close();
        while let Ok(expect) = self.expects.try_recv() {
            pending.push_back(Pending::new(expect));
        }
        if let Some(p) = pending.front()
            && p.got > 0
            && let Some(p) = pending.pop_front()
        {
            self.answer(p).await;
        }
        if !pending.is_empty() {
            tracing::debug!(
                conn = self.conn.0,
                unanswered = pending.len(),
                "ZeroMQ client closed with messages behind the close"
            );
        }
        for p in pending {
            let refused = Pending {
                expect: Expect {
                    replies: 0,
                    delimiter: p.expect.delimiter,
                    tail: Some(Bytes::from_static(CLOSED_REFUSAL)),
                },
                got: 0,
                payload: Vec::new(),
            };
            self.answer(refused).await;
        }
    }

    /// Sends one answered message and counts it off.
    async fn answer(&mut self, p: Pending) {
        self.send(p).await;
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    async fn send(&mut self, p: Pending) {
        let Pending {
            expect,
            mut payload,
            ..
        } = p;
        if let Some(tail) = &expect.tail {
            payload.extend_from_slice(tail);
        }
        let len = payload.len() as u64;
        let message = reply_message(self.identity.clone(), expect.delimiter, payload.into());
        match self.sender.send(message).await {
            Ok(()) => self.node.count_bytes_out(len),
            // The peer has gone: its replies are dropped, not kept.
            Err(e) => tracing::debug!(conn = self.conn.0, error = %e, "dropping a ZeroMQ reply"),
        }
    }
}

fn reply_message(identity: Bytes, delimiter: bool, payload: Bytes) -> ZmqMessage {
    let mut message = ZmqMessage::from(identity);
    if delimiter {
        message.push_back(Bytes::new());
    }
    message.push_back(payload);
    message
}

/// A received message taken apart.
#[derive(Debug, PartialEq, Eq)]
struct Parsed {
    identity: Bytes,
    /// Whether the DEALER sent the empty delimiter frame (and wants it back).
    delimiter: bool,
    payload: Bytes,
}

impl Parsed {
    /// `[identity, "", payload...]` or `[identity, payload...]`; `None` without an identity.
    fn from_frames(mut frames: VecDeque<Bytes>) -> Option<Self> {
        let identity = frames.pop_front()?;
        let delimiter = frames.front().is_some_and(Bytes::is_empty);
        if delimiter {
            frames.pop_front();
        }
        let payload = match frames.len() {
            0 => Bytes::new(),
            1 => frames.pop_front().unwrap_or_default(),
            _ => {
                let mut joined = Vec::with_capacity(frames.iter().map(Bytes::len).sum());
                for frame in &frames {
                    joined.extend_from_slice(frame);
                }
                Bytes::from(joined)
            }
        };
        Some(Self {
            identity,
            delimiter,
            payload,
        })
    }
}

/// A payload split into requests.
#[derive(Debug, Default, PartialEq)]
struct Decoded {
    /// The requests, packed as the TCP endpoint packs them (no empty ones).
    requests: Vec<Packed>,
    /// Why the bytes after the last request do not decode, as the text after `-ERR `.
    error: Option<String>,
}

impl Decoded {
    /// The number of requests.
    fn count(&self) -> usize {
        self.requests.iter().map(Packed::len).sum()
    }
}

/// Decodes every request in `payload`. The message boundary ends the last request: an inline
/// command there needs no line ending, and any other incomplete request is a protocol error.
fn decode_payload(payload: Bytes, limits: &Limits) -> Decoded {
    let mut decoded = Decoded::default();
    // Packed as TCP's requests are, their arguments slices of the payload itself (decoding
    // request by request copied every argument on its own: 301 allocations for a TS.MADD of
    // 100 samples).
    let mut rest = payload;
    match resp::decode_packed_message(&mut rest, limits, &mut decoded.requests) {
        Ok(_) if rest.is_empty() => {}
        Ok(_) => decoded.error = finish_inline(&rest, limits, &mut decoded.requests).err(),
        Err(e) => decoded.error = Some(e.to_string()),
    }
    decoded
}

/// The bytes left at the end of a payload, which need more bytes to decode: an inline command
/// without its line ending is complete, anything else is truncated.
fn finish_inline(rest: &[u8], limits: &Limits, requests: &mut Vec<Packed>) -> Result<(), String> {
    let truncated = || "Protocol error: incomplete request at the end of the message".to_string();
    if rest.first() == Some(&b'*') || rest.contains(&b'\n') {
        return Err(truncated());
    }
    let mut line = Vec::with_capacity(rest.len() + 2);
    line.extend_from_slice(rest);
    line.extend_from_slice(b"\r\n");
    match resp::decode_request(&line, limits) {
        Ok(Some((args, _))) => {
            if !args.is_empty() {
                requests.push(Packed::from_requests([(&args[..], rest.len() as u64)]));
            }
            Ok(())
        }
        Ok(None) => Err(truncated()),
        Err(e) => Err(e.to_string()),
    }
}

fn is_quit(request: &PackedRequest<'_>) -> bool {
    request.len() == 1 && request.arg(0).eq_ignore_ascii_case(b"quit")
}

/// The client's address in `CLIENT LIST`.
fn client_addr(identity: &[u8]) -> String {
    format!("zmq:{}", hex(identity))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(parts: &[&'static [u8]]) -> VecDeque<Bytes> {
        parts.iter().map(|p| Bytes::from_static(p)).collect()
    }

    fn args(req: &(Vec<Bytes>, u64)) -> Vec<&[u8]> {
        req.0.iter().map(|a| a.as_ref()).collect()
    }

    fn decode_bytes(payload: &[u8], limits: &Limits) -> Decoded {
        decode_payload(Bytes::copy_from_slice(payload), limits)
    }

    /// Each request's arguments and its size on the wire.
    fn unpacked(d: &Decoded) -> Vec<(Vec<Bytes>, u64)> {
        let requests = d.requests.iter().flat_map(Packed::iter);
        requests.map(|r| (r.to_args(), r.wire_bytes())).collect()
    }

    #[test]
    fn frames_with_and_without_the_delimiter() {
        let with = Parsed::from_frames(frames(&[b"id", b"", b"PING"])).unwrap();
        assert_eq!(with.identity, "id");
        assert!(with.delimiter);
        assert_eq!(with.payload, "PING");

        let without = Parsed::from_frames(frames(&[b"id", b"PING"])).unwrap();
        assert!(!without.delimiter);
        assert_eq!(without.payload, "PING");

        let joined = Parsed::from_frames(frames(&[b"id", b"", b"*1\r\n$4", b"\r\nPING\r\n"]));
        assert_eq!(joined.unwrap().payload, "*1\r\n$4\r\nPING\r\n");

        let empty = Parsed::from_frames(frames(&[b"id", b""])).unwrap();
        assert!(empty.delimiter);
        assert!(empty.payload.is_empty());

        assert_eq!(Parsed::from_frames(VecDeque::new()), None);
    }

    #[test]
    fn pipelined_requests_decode_in_order_with_their_sizes() {
        let payload = b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\nGET k\r\n";
        let d = decode_bytes(payload, &Limits::default());
        assert_eq!(d.error, None);
        assert_eq!(d.count(), 3);
        let d = unpacked(&d);
        assert_eq!(args(&d[0]), [b"PING".as_slice()]);
        assert_eq!(d[0].1, 14);
        assert_eq!(args(&d[1]), [b"SET".as_slice(), b"k", b"v"]);
        assert_eq!(args(&d[2]), [b"GET".as_slice(), b"k"]);
        let total: u64 = d.iter().map(|r| r.1).sum();
        assert_eq!(total, payload.len() as u64);
    }

    #[test]
    fn the_message_boundary_ends_an_inline_command() {
        let d = decode_bytes(b"PING", &Limits::default());
        assert_eq!(d.error, None);
        let d = unpacked(&d);
        assert_eq!(d.len(), 1);
        assert_eq!(args(&d[0]), [b"PING".as_slice()]);
        assert_eq!(d[0].1, 4);

        let d = decode_bytes(b"SET k v\r\nGET k", &Limits::default());
        assert_eq!(d.error, None);
        assert_eq!(d.count(), 2);
    }

    #[test]
    fn blank_payloads_hold_no_request() {
        for payload in [&b""[..], b"\r\n", b"   ", b"*0\r\n"] {
            let d = decode_bytes(payload, &Limits::default());
            assert_eq!(d, Decoded::default(), "{payload:?}");
        }
    }

    #[test]
    fn a_truncated_request_is_a_protocol_error_after_the_good_ones() {
        let d = decode_bytes(b"PING\r\n*2\r\n$3\r\nGET\r\n", &Limits::default());
        assert_eq!(d.count(), 1);
        let error = d.error.unwrap();
        assert!(
            error.starts_with("Protocol error: incomplete request"),
            "{error}"
        );
    }

    #[test]
    fn bad_bytes_are_the_decoders_protocol_error() {
        let d = decode_bytes(b"PING\r\n*1\r\nx\r\n", &Limits::default());
        assert_eq!(d.count(), 1);
        assert_eq!(d.error.unwrap(), "Protocol error: expected '$', got 'x'");

        let d = decode_bytes(b"GET \"k", &Limits::default());
        assert_eq!(d.count(), 0);
        assert_eq!(
            d.error.unwrap(),
            "Protocol error: unbalanced quotes in request"
        );

        let limits = Limits {
            max_inline_len: 8,
            ..Limits::default()
        };
        let d = decode_bytes(b"ECHO 0123456789", &limits);
        assert_eq!(d.error.unwrap(), "Protocol error: too big inline request");
    }

    #[test]
    fn reply_messages_mirror_the_request_framing() {
        let with = reply_message(
            Bytes::from_static(b"id"),
            true,
            Bytes::from_static(b"+OK\r\n"),
        );
        assert_eq!(with.into_vec(), [&b"id"[..], b"", b"+OK\r\n"]);
        let without = reply_message(Bytes::from_static(b"id"), false, Bytes::new());
        assert_eq!(without.into_vec(), [&b"id"[..], b""]);
    }

    #[test]
    fn client_addresses_show_the_identity_in_hex() {
        assert_eq!(client_addr(&[0x00, 0x6b, 0xff]), "zmq:006bff");
    }
}
