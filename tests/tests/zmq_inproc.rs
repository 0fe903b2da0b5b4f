//! The ZeroMQ endpoint against a node on an in-memory store in this process: every check the
//! binary runs, plus the ones that need settings of their own (idle timeout, message limit),
//! libzmq interoperability (pyzmq) and the documented examples.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tickdb_io::zmq::ZmqConfig;
use tickdb_tests::run;
use tickdb_tests::zmq::{self, Dealer, InProc, assert_reply, request};

async fn server() -> InProc {
    InProc::start(ZmqConfig::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_set_get() {
    zmq::check_ping_set_get(&server().await.zmq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined() {
    zmq::check_pipelined(&server().await.zmq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello3() {
    zmq::check_hello3(&server().await.zmq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_delimiter() {
    zmq::check_no_delimiter(&server().await.zmq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_dealers() {
    zmq::check_concurrent_dealers(&server().await.zmq, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed() {
    zmq::check_malformed(&server().await.zmq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_list_and_quit() {
    zmq::check_client_list_and_quit(&server().await.zmq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_set() {
    zmq::check_batch_set(&server().await.zmq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_dialect() {
    zmq::check_seed_dialect(&server().await.zmq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_is_refused_and_the_client_kept() {
    let config = ZmqConfig {
        message_max: 1024,
        ..ZmqConfig::default()
    };
    let s = InProc::start(config).await;
    let mut d = Dealer::connect(&s.zmq).await;
    let mut other = Dealer::connect(&s.zmq).await;
    assert!(d.cmd(&["HELLO", "3"]).await.starts_with(b"%7\r\n"));
    let id = d.client_id().await;
    let big = "x".repeat(2000);
    let set = request(&["SET", "zmq:big", &big]);
    let expected = format!(
        "-ERR message of {} bytes is larger than the limit of 1024 bytes\r\n",
        set.len()
    );
    assert_reply(&d.call(&set).await, expected.as_bytes());
    // Same client, still RESP3; the big value was not written.
    assert_eq!(d.client_id().await, id);
    assert_reply(&d.cmd(&["GET", "zmq:big"]).await, b"_\r\n");
    assert_reply(&other.cmd(&["PING"]).await, b"+PONG\r\n");
}

/// The ids of the ZeroMQ clients the server lists.
async fn zmq_client_ids(d: &mut Dealer) -> Vec<i64> {
    let list = String::from_utf8(d.cmd(&["CLIENT", "LIST"]).await).expect("text");
    list.lines()
        .filter(|l| l.contains("transport=zmq"))
        .filter_map(|l| l.split_once("id=")?.1.split(' ').next()?.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_are_forgotten() {
    let config = ZmqConfig {
        idle_timeout: Some(Duration::from_millis(300)),
        ..ZmqConfig::default()
    };
    let s = InProc::start(config).await;
    let mut d = Dealer::connect(&s.zmq).await;
    let first = d.client_id().await;
    assert_eq!(d.client_id().await, first);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = d.client_id().await;
    assert_ne!(second, first, "an idle client was kept");
    assert_eq!(zmq_client_ids(&mut d).await, [second]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnected_dealer_is_forgotten() {
    let s = server().await;
    let mut watcher = Dealer::connect(&s.zmq).await;
    let watcher_id = watcher.client_id().await;
    let mut gone = Dealer::connect(&s.zmq).await;
    let gone_id = gone.client_id().await;
    assert!(zmq_client_ids(&mut watcher).await.contains(&gone_id));
    drop(gone);
    let mut ids = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ids = zmq_client_ids(&mut watcher).await;
        if !ids.contains(&gone_id) {
            break;
        }
    }
    assert_eq!(ids, [watcher_id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dealer_that_never_reads_does_not_disturb_others() {
    let s = server().await;
    let mut flood = Dealer::connect(&s.zmq).await;
    let value = "v".repeat(1000);
    let mut payload = Vec::new();
    for _ in 0..100 {
        payload.extend_from_slice(&request(&["ECHO", &value]));
    }
    for _ in 0..200 {
        flood.send(&payload).await;
    }
    drop(flood);
    let mut d = Dealer::connect(&s.zmq).await;
    for i in 0..50 {
        assert_reply(
            &d.cmd(&["ECHO", &i.to_string()]).await,
            format!("${}\r\n{i}\r\n", i.to_string().len()).as_bytes(),
        );
    }
}

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyzmq_dealer_interoperates() {
    let s = server().await;
    let script = repo_file("python/zmq_dealer.py");
    let endpoint = s.zmq.clone();
    let out =
        tokio::task::spawn_blocking(move || run(Command::new("python3").arg(script).arg(endpoint)))
            .await
            .expect("python run");
    assert!(out.contains("all pyzmq checks passed"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_doc_example_runs() {
    let s = server().await;
    let script = repo_file("python/zmq_example.py");
    let endpoint = s.zmq.clone();
    let out =
        tokio::task::spawn_blocking(move || run(Command::new("python3").arg(script).arg(endpoint)))
            .await
            .expect("python run");
    assert_eq!(
        out,
        "PING -> +PONG\nSET -> +OK\nGET -> b'$5\\r\\nworld\\r\\n'\n\
         pipelined -> b'+OK\\r\\n:2\\r\\n$1\\r\\n2\\r\\n'\n"
    );
}

/// The documented Rust example, built by `cargo test` (or `cargo build --examples`).
fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let target = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target directory");
    let bin = target.join("examples").join(name);
    assert!(
        bin.exists(),
        "{} not found: build it with `cargo build --release -p tickdb-tests --examples`",
        bin.display()
    );
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_doc_example_runs() {
    let s = server().await;
    let bin = example_binary("zmq_client");
    let endpoint = s.zmq.clone();
    let out = tokio::task::spawn_blocking(move || run(Command::new(bin).arg(endpoint)))
        .await
        .expect("example run");
    assert_eq!(
        out,
        "PING -> b\"+PONG\\r\\n\"\nSET -> b\"+OK\\r\\n\"\nGET -> b\"$5\\r\\nworld\\r\\n\"\n\
         pipelined -> b\"+OK\\r\\n:2\\r\\n$1\\r\\n2\\r\\n\"\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_message_gets_an_empty_reply_in_order() {
    let s = server().await;
    let mut d = Dealer::connect(&s.zmq).await;
    d.send(&request(&["SET", "zmq:order", "1"])).await;
    d.send(b"").await;
    d.send(b"\r\n").await;
    d.send(b"GET zmq:order").await;
    assert_reply(&d.recv().await, b"+OK\r\n");
    assert_reply(&d.recv().await, b"");
    assert_reply(&d.recv().await, b"");
    assert_reply(&d.recv().await, b"$1\r\n1\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_error_behind_a_write_comes_after_the_writes_reply() {
    let s = server().await;
    let mut d = Dealer::connect(&s.zmq).await;
    let mut payload = request(&["SET", "zmq:pe", "1"]);
    payload.extend_from_slice(&request(&["INCR", "zmq:pe"]));
    payload.extend_from_slice(b"*1\r\n$-5\r\n");
    assert_reply(
        &d.call(&payload).await,
        b"+OK\r\n:2\r\n-ERR Protocol error: invalid bulk length\r\n",
    );
    assert_reply(&d.cmd(&["GET", "zmq:pe"]).await, b"$1\r\n2\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_is_answered_every_time() {
    let node_config = tickdb_core::node::NodeConfig {
        max_clients: 1,
        ..Default::default()
    };
    let s = InProc::start_with(node_config, ZmqConfig::default()).await;
    let mut first = Dealer::connect(&s.zmq).await;
    assert_reply(&first.cmd(&["PING"]).await, b"+PONG\r\n");
    let mut second = Dealer::connect(&s.zmq).await;
    for _ in 0..20 {
        let reply = String::from_utf8(second.cmd(&["PING"]).await).expect("text");
        assert!(
            reply == "-ERR max number of clients reached\r\n"
                || reply.starts_with("-ERR this client was closed"),
            "{reply}"
        );
    }
    assert_reply(&first.cmd(&["PING"]).await, b"+PONG\r\n");
}

#[test]
fn docs_show_the_examples_the_tests_run() {
    let doc = std::fs::read_to_string(repo_file("../docs/zmq.md")).expect("docs/zmq.md");
    for example in ["python/zmq_example.py", "examples/zmq_client.rs"] {
        let code = std::fs::read_to_string(repo_file(example)).expect("example file");
        assert!(
            doc.contains(&code),
            "docs/zmq.md does not show {example} as it is"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_messages_in_flight_are_answered_in_order() {
    let s = server().await;
    let mut tasks = Vec::new();
    for c in 0..4 {
        let endpoint = s.zmq.clone();
        tasks.push(tokio::spawn(async move {
            let mut d = Dealer::connect(&endpoint).await;
            let key = format!("zmq:flight:{c}");
            for i in 0..2000 {
                if i % 3 == 0 {
                    d.send(&request(&["INCR", &key])).await;
                } else {
                    d.send(format!("ECHO {i}").as_bytes()).await;
                }
            }
            let mut n = 0;
            for i in 0..2000 {
                let expected = if i % 3 == 0 {
                    n += 1;
                    format!(":{n}\r\n")
                } else {
                    format!("${}\r\n{i}\r\n", i.to_string().len())
                };
                assert_reply(&d.recv().await, expected.as_bytes());
            }
        }));
    }
    for t in tasks {
        t.await.expect("a DEALER task failed");
    }
}
