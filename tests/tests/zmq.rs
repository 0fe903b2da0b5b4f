//! RESP over ZeroMQ against the real binary: `--zmq-port`, DEALERs from the `zeromq` crate and
//! from libzmq (pyzmq), beside TCP on the same node.

use std::path::PathBuf;
use std::process::Command;

use tickdb_tests::zmq::{self, Dealer};
use tickdb_tests::{Server, bulk, free_port, run};

/// A server with its ZeroMQ endpoint on a free port, and that endpoint.
fn server() -> (Server, String) {
    let port = free_port();
    let s = Server::start(&["--zmq-port", &port.to_string()]);
    (s, format!("tcp://127.0.0.1:{port}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[test]
fn zeromq_crate_dealers() {
    let (_s, endpoint) = server();
    runtime().block_on(async {
        zmq::check_ping_set_get(&endpoint).await;
        zmq::check_pipelined(&endpoint).await;
        zmq::check_hello3(&endpoint).await;
        zmq::check_no_delimiter(&endpoint).await;
        zmq::check_malformed(&endpoint).await;
        zmq::check_client_list_and_quit(&endpoint).await;
        zmq::check_batch_set(&endpoint).await;
    });
}

#[test]
fn fifty_concurrent_dealers() {
    let (_s, endpoint) = server();
    runtime().block_on(zmq::check_concurrent_dealers(&endpoint, 50));
}

#[test]
fn seed_dialect() {
    let (_s, endpoint) = server();
    runtime().block_on(zmq::check_seed_dialect(&endpoint));
}

#[test]
fn pyzmq_dealer_interoperates() {
    let (_s, endpoint) = server();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/zmq_dealer.py");
    let out = run(Command::new("python3").arg(script).arg(&endpoint));
    assert!(out.contains("all pyzmq checks passed"), "{out}");
}

/// ZeroMQ and TCP clients share one node: writes through one are read through the other, and
/// INFO counts the ZeroMQ client and its bytes.
#[test]
fn zeromq_and_tcp_share_the_node() {
    let (s, endpoint) = server();
    let mut tcp = s.client();
    runtime().block_on(async {
        let mut d = Dealer::connect(&endpoint).await;
        zmq::assert_reply(&d.cmd(&["SET", "shared", "from-zmq"]).await, b"+OK\r\n");
        assert_eq!(tcp.call(&["GET", "shared"]), bulk("from-zmq"));
        assert_eq!(
            tcp.call(&["SET", "shared", "from-tcp"]),
            tickdb_core::resp::Frame::ok()
        );
        zmq::assert_reply(&d.cmd(&["GET", "shared"]).await, b"$8\r\nfrom-tcp\r\n");
        let info = String::from_utf8(d.cmd(&["INFO", "clients"]).await).expect("text");
        assert!(info.contains("connected_clients:2"), "{info}");
        let config = String::from_utf8(d.cmd(&["CONFIG", "GET", "zmq-port"]).await).unwrap();
        let port = endpoint.rsplit(':').next().unwrap();
        assert!(config.contains(&format!("\r\n{port}\r\n")), "{config}");
    });
}

#[test]
fn zmq_port_zero_disables_the_endpoint() {
    let s = Server::start(&["--zmq-port", "0"]);
    let mut c = s.client();
    let config = c.call(&["CONFIG", "GET", "zmq-port"]);
    assert_eq!(
        config,
        tickdb_core::resp::Frame::Array(vec![bulk("zmq-port"), bulk("0")])
    );
    let info = c.call(&["INFO", "server"]);
    let tickdb_core::resp::Frame::Bulk(text) = info else {
        panic!("INFO reply {info:?}");
    };
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains("zmq_port:0\r\n"), "{text}");
}

/// MULTI ... EXEC through a DEALER: the identity is the connection, so its queue and WATCHed
/// keys live between messages; the transaction applies as one entry.
#[test]
fn transactions_through_the_zeromq_endpoint() {
    let (s, endpoint) = server();
    let mut tcp = s.client();
    runtime().block_on(async {
        let mut d = Dealer::connect(&endpoint).await;
        zmq::assert_reply(&d.cmd(&["MULTI"]).await, b"+OK\r\n");
        zmq::assert_reply(&d.cmd(&["SET", "zk", "1"]).await, b"+QUEUED\r\n");
        zmq::assert_reply(&d.cmd(&["INCR", "zk"]).await, b"+QUEUED\r\n");
        zmq::assert_reply(&d.cmd(&["TS.ADD", "zs", "5", "1"]).await, b"+QUEUED\r\n");
        zmq::assert_reply(&d.cmd(&["GET", "zk"]).await, b"+QUEUED\r\n");
        zmq::assert_reply(
            &d.cmd(&["EXEC"]).await,
            b"*4\r\n+OK\r\n:2\r\n:5\r\n$1\r\n2\r\n",
        );
        // WATCH across messages; a TCP client's write aborts the DEALER's EXEC.
        zmq::assert_reply(&d.cmd(&["WATCH", "zk"]).await, b"+OK\r\n");
        assert_eq!(
            tcp.call(&["SET", "zk", "9"]),
            tickdb_core::resp::Frame::ok()
        );
        zmq::assert_reply(&d.cmd(&["MULTI"]).await, b"+OK\r\n");
        zmq::assert_reply(&d.cmd(&["SET", "zk", "0"]).await, b"+QUEUED\r\n");
        zmq::assert_reply(&d.cmd(&["EXEC"]).await, b"*-1\r\n");
        zmq::assert_reply(&d.cmd(&["GET", "zk"]).await, b"$1\r\n9\r\n");
        zmq::assert_reply(&d.cmd(&["MULTI"]).await, b"+OK\r\n");
        zmq::assert_reply(
            &d.cmd(&["NOSUCH"]).await,
            b"-ERR unknown command 'NOSUCH', with args beginning with: \r\n",
        );
        zmq::assert_reply(
            &d.cmd(&["EXEC"]).await,
            b"-EXECABORT Transaction discarded because of previous errors.\r\n",
        );
    });
}
