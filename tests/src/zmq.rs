//! ZeroMQ DEALER clients and the checks every ZeroMQ endpoint under test must pass, shared by
//! the tests against the real binary and those against an in-process node.

use std::time::Duration;

use bytes::Bytes;
use tickdb_core::resp;
use zeromq::prelude::*;
use zeromq::util::PeerIdentity;
use zeromq::{DealerSocket, SocketOptions, ZmqMessage};

use crate::REPLY_TIMEOUT;

/// A request as an array of bulk strings.
pub fn request(args: &[&str]) -> Vec<u8> {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let mut out = Vec::new();
    resp::encode_request(&args, &mut out);
    out
}

/// A DEALER socket that sends one RESP payload per message and checks the reply's framing.
pub struct Dealer {
    socket: DealerSocket,
    /// Whether messages carry the empty delimiter frame before the payload.
    delimiter: bool,
}

impl Dealer {
    /// A DEALER with an identity chosen by the ROUTER, sending the delimiter frame.
    pub async fn connect(endpoint: &str) -> Self {
        Self::connect_with(endpoint, DealerSocket::new()).await
    }

    /// A DEALER with its own routing identity.
    pub async fn with_identity(endpoint: &str, identity: &str) -> Self {
        let mut options = SocketOptions::default();
        options.peer_identity(identity.parse::<PeerIdentity>().expect("a valid identity"));
        Self::connect_with(endpoint, DealerSocket::with_options(options)).await
    }

    async fn connect_with(endpoint: &str, mut socket: DealerSocket) -> Self {
        tokio::time::timeout(REPLY_TIMEOUT, socket.connect(endpoint))
            .await
            .expect("DEALER connect timed out")
            .expect("DEALER connect");
        Self {
            socket,
            delimiter: true,
        }
    }

    /// Sends bare `[payload]` messages from now on, and expects bare replies.
    pub fn without_delimiter(mut self) -> Self {
        self.delimiter = false;
        self
    }

    pub async fn send(&mut self, payload: &[u8]) {
        let mut message = ZmqMessage::from(Bytes::new());
        let payload = Bytes::copy_from_slice(payload);
        if self.delimiter {
            message.push_back(payload);
        } else {
            message = ZmqMessage::from(payload);
        }
        self.socket.send(message).await.expect("DEALER send");
    }

    /// The next reply's payload, after checking it is framed like the requests.
    pub async fn recv(&mut self) -> Vec<u8> {
        let message = tokio::time::timeout(REPLY_TIMEOUT, self.socket.recv())
            .await
            .expect("no reply within the timeout")
            .expect("DEALER recv");
        let mut frames = message.into_vec();
        if self.delimiter {
            assert_eq!(frames.len(), 2, "reply frames: {frames:?}");
            assert!(frames[0].is_empty(), "the delimiter frame: {frames:?}");
        } else {
            assert_eq!(frames.len(), 1, "reply frames: {frames:?}");
        }
        frames.pop().map(|f| f.to_vec()).unwrap_or_default()
    }

    /// Whether no reply arrives within `wait`.
    pub async fn silent_for(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.socket.recv())
            .await
            .is_err()
    }

    /// Sends one payload and returns the reply payload.
    pub async fn call(&mut self, payload: &[u8]) -> Vec<u8> {
        self.send(payload).await;
        self.recv().await
    }

    /// Sends one command and returns its reply.
    pub async fn cmd(&mut self, args: &[&str]) -> Vec<u8> {
        self.call(&request(args)).await
    }

    /// The client id the server gives this DEALER now.
    pub async fn client_id(&mut self) -> i64 {
        let reply = self.cmd(&["CLIENT", "ID"]).await;
        let text = String::from_utf8(reply).expect("ASCII");
        let digits = text
            .strip_prefix(':')
            .and_then(|t| t.strip_suffix("\r\n"))
            .unwrap_or_else(|| panic!("CLIENT ID reply {text:?}"));
        digits.parse().expect("an integer")
    }
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts a reply payload equals `expected`, showing both as text on failure.
pub fn assert_reply(got: &[u8], expected: &[u8]) {
    assert_eq!(show(got), show(expected));
}

/// `PING`, inline `PING` without a line ending, `SET`, `GET`, a missing key.
pub async fn check_ping_set_get(endpoint: &str) {
    let mut d = Dealer::connect(endpoint).await;
    assert_reply(&d.cmd(&["PING"]).await, b"+PONG\r\n");
    assert_reply(&d.call(b"PING").await, b"+PONG\r\n");
    assert_reply(&d.cmd(&["SET", "zmq:basic", "v1"]).await, b"+OK\r\n");
    assert_reply(&d.cmd(&["GET", "zmq:basic"]).await, b"$2\r\nv1\r\n");
    assert_reply(&d.cmd(&["GET", "zmq:missing"]).await, b"$-1\r\n");
}

/// Several requests in one message get one reply message with their replies in order; several
/// messages sent before reading are answered in order.
pub async fn check_pipelined(endpoint: &str) {
    let mut d = Dealer::connect(endpoint).await;
    let mut payload = Vec::new();
    for args in [
        &["SET", "zmq:p1", "a"][..],
        &["SET", "zmq:p2", "bb"],
        &["GET", "zmq:p1"],
        &["INCR", "zmq:n"],
        &["GET", "zmq:p2"],
        &["PING"],
    ] {
        payload.extend_from_slice(&request(args));
    }
    assert_reply(
        &d.call(&payload).await,
        b"+OK\r\n+OK\r\n$1\r\na\r\n:1\r\n$2\r\nbb\r\n+PONG\r\n",
    );
    // More requests in one message than the endpoint hands the node at once: every reply, in
    // order, in one message.
    let (mut payload, mut want) = (Vec::new(), Vec::new());
    for i in 1..=2500 {
        payload.extend_from_slice(&request(&["INCR", "zmq:big"]));
        want.extend_from_slice(format!(":{i}\r\n").as_bytes());
    }
    payload.extend_from_slice(&request(&["GET", "zmq:big"]));
    want.extend_from_slice(b"$4\r\n2500\r\n");
    assert_reply(&d.call(&payload).await, &want);
    for i in 0..20 {
        d.send(&request(&["INCR", "zmq:n"])).await;
        d.send(format!("ECHO m{i}").as_bytes()).await;
    }
    for i in 0..20 {
        assert_reply(&d.recv().await, format!(":{}\r\n", i + 2).as_bytes());
        let echo = format!("m{i}");
        assert_reply(
            &d.recv().await,
            format!("${}\r\n{echo}\r\n", echo.len()).as_bytes(),
        );
    }
    // Messages of 1, 2, ... 20 BATCH_SETs sent before reading: the node answers the
    // `+OK`s of messages it takes together as one run, which the endpoint shares out, each
    // message getting its own.
    let mut ts = 0;
    for k in 1..=20 {
        let mut payload = Vec::new();
        for _ in 0..k {
            ts += 1;
            payload.extend_from_slice(&request(&[
                "BATCH_SET",
                "zmq:batch",
                "1.5",
                &ts.to_string(),
            ]));
        }
        d.send(&payload).await;
    }
    d.send(&request(&["BATCH_FLUSH"])).await;
    for k in 1..=20 {
        assert_reply(&d.recv().await, "+OK\r\n".repeat(k).as_bytes());
    }
    assert_reply(&d.recv().await, format!(":{ts}\r\n").as_bytes());
}

/// `HELLO 3` switches this client, and only this one, to RESP3.
pub async fn check_hello3(endpoint: &str) {
    let mut d = Dealer::connect(endpoint).await;
    let mut other = Dealer::connect(endpoint).await;
    let hello = d.cmd(&["HELLO", "3"]).await;
    assert!(hello.starts_with(b"%7\r\n"), "HELLO 3: {}", show(&hello));
    assert!(
        hello.windows(13).any(|w| w == b"$5\r\nproto\r\n:3"),
        "{}",
        show(&hello)
    );
    assert_reply(&d.cmd(&["GET", "zmq:hello:missing"]).await, b"_\r\n");
    assert_reply(&other.cmd(&["GET", "zmq:hello:missing"]).await, b"$-1\r\n");
    assert_reply(&d.cmd(&["GET", "zmq:hello:missing"]).await, b"_\r\n");
}

/// A DEALER that sends bare `[payload]` messages gets bare replies.
pub async fn check_no_delimiter(endpoint: &str) {
    let mut d = Dealer::connect(endpoint).await.without_delimiter();
    assert_reply(&d.cmd(&["PING"]).await, b"+PONG\r\n");
    let mut payload = request(&["SET", "zmq:nodelim", "x"]);
    payload.extend_from_slice(&request(&["GET", "zmq:nodelim"]));
    assert_reply(&d.call(&payload).await, b"+OK\r\n$1\r\nx\r\n");
}

/// `clients` DEALERs at once, each writing and reading its own keys, pipelined and not; each
/// must receive exactly its own replies.
pub async fn check_concurrent_dealers(endpoint: &str, clients: usize) {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let endpoint = endpoint.to_string();
        tasks.push(tokio::spawn(async move {
            let mut d = Dealer::connect(&endpoint).await;
            for i in 0..10 {
                let key = format!("zmq:conc:{c}:{i}");
                let value = format!("value-{c}-{i}");
                assert_reply(&d.cmd(&["SET", &key, &value]).await, b"+OK\r\n");
                let reply = d.cmd(&["GET", &key]).await;
                assert_reply(
                    &reply,
                    format!("${}\r\n{value}\r\n", value.len()).as_bytes(),
                );
                let mut payload = request(&["APPEND", &key, "!"]);
                payload.extend_from_slice(&request(&["GET", &key]));
                payload.extend_from_slice(format!("ECHO client-{c}").as_bytes());
                let expected = format!(
                    ":{}\r\n${}\r\n{value}!\r\n${}\r\nclient-{c}\r\n",
                    value.len() + 1,
                    value.len() + 1,
                    format!("client-{c}").len()
                );
                assert_reply(&d.call(&payload).await, expected.as_bytes());
            }
            assert!(
                d.silent_for(Duration::from_millis(50)).await,
                "a reply nobody asked for"
            );
        }));
    }
    for t in tasks {
        t.await.expect("a DEALER task failed");
    }
}

/// Undecodable bytes: the good requests before them are answered, then `-ERR Protocol error`,
/// in one reply; the identity then starts a fresh client; another DEALER is unaffected.
pub async fn check_malformed(endpoint: &str) {
    let mut bad = Dealer::with_identity(endpoint, "zmq-malformed").await;
    let mut good = Dealer::connect(endpoint).await;
    assert!(good.cmd(&["HELLO", "3"]).await.starts_with(b"%7\r\n"));
    assert!(bad.cmd(&["HELLO", "3"]).await.starts_with(b"%7\r\n"));
    let first_id = bad.client_id().await;

    assert_reply(
        &bad.call(b"*1\r\nx\r\n").await,
        b"-ERR Protocol error: expected '$', got 'x'\r\n",
    );
    assert_reply(
        &bad.call(b"PING\r\n*1\r\n$4\r\nPI").await,
        b"+PONG\r\n-ERR Protocol error: incomplete request at the end of the message\r\n",
    );
    // A fresh client: RESP2 again, a new id.
    assert_reply(
        &bad.cmd(&["GET", "zmq:malformed:missing"]).await,
        b"$-1\r\n",
    );
    assert_ne!(bad.client_id().await, first_id);

    assert_reply(&good.cmd(&["GET", "zmq:malformed:missing"]).await, b"_\r\n");
    assert_reply(&good.cmd(&["PING"]).await, b"+PONG\r\n");
}

/// The DEALER shows in `CLIENT LIST` as a ZeroMQ client with its identity; `QUIT` ends the
/// client and the identity's next message starts a new one.
pub async fn check_client_list_and_quit(endpoint: &str) {
    let mut d = Dealer::with_identity(endpoint, "zmq-listed").await;
    let id = d.client_id().await;
    let list = show(&d.cmd(&["CLIENT", "LIST"]).await);
    let line = list
        .lines()
        .find(|l| l.contains(&format!("id={id} ")))
        .unwrap_or_else(|| panic!("client {id} not in CLIENT LIST: {list}"));
    // "zmq-listed" in hex.
    assert!(line.contains("addr=zmq:7a6d712d6c6973746564 "), "{line}");
    assert!(line.contains("transport=zmq"), "{line}");
    assert_reply(&d.cmd(&["QUIT"]).await, b"+OK\r\n");
    assert_ne!(d.client_id().await, id);
}

/// The seeds' dialect: `BATCH_SET` is buffered per client and answered `+OK`.
pub async fn check_batch_set(endpoint: &str) {
    let mut d = Dealer::connect(endpoint).await;
    assert_reply(
        &d.cmd(&["BATCH_SET", "zmq:AAPL", "187.5", "1700000000000"])
            .await,
        b"+OK\r\n",
    );
    let list = show(&d.cmd(&["CLIENT", "INFO"]).await);
    assert!(list.contains("batch=1"), "{list}");
}

/// The seeds' dialect end to end: `BATCH_SET` + `BATCH_FLUSH`, `TSDB_SET`, `TSDB_GET`. Needs
/// the time-series engine.
pub async fn check_seed_dialect(endpoint: &str) {
    let mut d = Dealer::connect(endpoint).await;
    let mut payload = Vec::new();
    for (ts, value) in [("1700000000000", "187.5"), ("1700000001000", "187.75")] {
        payload.extend_from_slice(&request(&["BATCH_SET", "zmq:seed:AAPL", value, ts]));
    }
    payload.extend_from_slice(&request(&["BATCH_FLUSH"]));
    assert_reply(&d.call(&payload).await, b"+OK\r\n+OK\r\n:2\r\n");
    let set = show(
        &d.cmd(&["TSDB_SET", "zmq:seed:AAPL", "1700000002000", "188"])
            .await,
    );
    assert!(
        set == "+OK\r\n" || set == ":1700000002000\r\n",
        "TSDB_SET: {set}"
    );
    let got = show(
        &d.cmd(&[
            "TSDB_GET",
            "zmq:seed:AAPL",
            "1700000000000",
            "1700000002000",
        ])
        .await,
    );
    assert!(got.starts_with('*'), "TSDB_GET: {got}");
    for needle in ["1700000000000", "187.5", "1700000001000", "187.75", "188"] {
        assert!(got.contains(needle), "TSDB_GET lacks {needle}: {got}");
    }
}

/// A node on an in-memory store serving RESP over ZeroMQ and TCP inside this process: the
/// endpoints under test without the RocksDB build.
pub struct InProc {
    /// `tcp://127.0.0.1:<port>` of the ROUTER.
    pub zmq: String,
    /// The TCP endpoint's address.
    pub tcp: std::net::SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
}

impl InProc {
    pub async fn start(config: tickdb_io::zmq::ZmqConfig) -> Self {
        Self::start_with(tickdb_core::node::NodeConfig::default(), config).await
    }

    pub async fn start_with(
        node_config: tickdb_core::node::NodeConfig,
        config: tickdb_io::zmq::ZmqConfig,
    ) -> Self {
        use tickdb_core::node::Node;
        use tickdb_core::store::MemStore;
        let (handle, rx) = tickdb_io::channel();
        let node = Node::new(node_config, MemStore::new(), handle.now()).expect("node");
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let (done_tx, _done_rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(tickdb_io::run_node(
            node,
            handle.clone(),
            rx,
            stop_rx.clone(),
        ));
        let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let (socket, zmq_addr) = tickdb_io::zmq::bind(any).await.expect("bind the ROUTER");
        tokio::spawn(tickdb_io::zmq::serve(
            socket,
            handle.clone(),
            config,
            stop_rx.clone(),
            done_tx.clone(),
        ));
        let listener = tokio::net::TcpListener::bind(any).await.expect("bind TCP");
        let tcp = listener.local_addr().expect("TCP address");
        let tcp_config = tickdb_io::tcp::TcpConfig::default();
        tokio::spawn(tickdb_io::tcp::serve(
            listener, handle, tcp_config, stop_rx, done_tx,
        ));
        Self {
            zmq: format!("tcp://{zmq_addr}"),
            tcp,
            stop,
        }
    }
}

impl Drop for InProc {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
