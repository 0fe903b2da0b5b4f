//! Key expiry through the real binary: redis-cli and redis-py (RESP2 and RESP3), deadlines
//! kept across a restart, and a three-node cluster where every node hides and then deletes an
//! expired key at the same log position, each subscriber seeing its `expired` event once.

use std::process::Command;
use std::time::{Duration, Instant};

use tickdb_core::resp::Frame;
use tickdb_tests::cluster::Cluster;
use tickdb_tests::{Client, Server, bulk, run, run_python};

fn cli(server: &Server, args: &[&str]) -> String {
    run(Command::new("redis-cli")
        .arg("-p")
        .arg(server.port.to_string())
        .args(args))
    .trim()
    .to_string()
}

/// Polls `c` with `args` until it answers `want`, or panics after ten seconds.
fn wait_for(c: &mut Client, args: &[&str], want: &Frame) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = c.call(args);
        if got == *want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{args:?}: {got:?}, wanted {want:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn redis_cli_expire_ttl_persist_and_restart() {
    let mut server = Server::start(&[]);
    assert_eq!(cli(&server, &["SET", "session", "abc", "EX", "100"]), "OK");
    assert_eq!(cli(&server, &["TTL", "session"]), "100");
    assert_eq!(cli(&server, &["SET", "short", "x", "PX", "300"]), "OK");
    assert_eq!(cli(&server, &["TTL", "never"]), "-2");
    assert_eq!(cli(&server, &["SET", "plain", "y"]), "OK");
    assert_eq!(cli(&server, &["TTL", "plain"]), "-1");
    assert_eq!(cli(&server, &["EXPIRE", "plain", "10", "XX"]), "0");
    assert_eq!(cli(&server, &["TS.CREATE", "px"]), "OK");
    assert_eq!(cli(&server, &["PEXPIRE", "px", "400"]), "1");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(cli(&server, &["GET", "short"]), "");
    assert_eq!(cli(&server, &["EXISTS", "short", "px", "plain"]), "1");
    let mut c = server.client();
    // The leader's active expiry deletes them through the log.
    wait_for(&mut c, &["DBSIZE"], &Frame::Integer(2));
    // Deadlines are stored with the keys: a restart keeps them.
    server.restart();
    let mut c = server.client();
    let ttl = c.call(&["TTL", "session"]);
    assert!(
        matches!(ttl, Frame::Integer(n) if (95..=100).contains(&n)),
        "{ttl:?}"
    );
    assert_eq!(c.call(&["PERSIST", "session"]), Frame::Integer(1));
    assert_eq!(c.call(&["TTL", "session"]), Frame::Integer(-1));
}

#[test]
fn redis_py_expiry_resp2_and_resp3() {
    let server = Server::start(&[]);
    let out = run_python("redis_py_expiry.py", server.port);
    assert!(
        out.contains("expiry checks passed in RESP2 and RESP3"),
        "{out}"
    );
}

#[test]
fn cluster_nodes_expire_the_same_key_once() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_leader(Duration::from_secs(10));
    let follower = (leader + 1) % 3;
    let mut w = cluster.client(follower);
    assert_eq!(
        w.call(&["CONFIG", "SET", "notify-keyspace-events", "Ex"]),
        Frame::ok()
    );
    let mut subs: Vec<Client> = (0..3).map(|i| cluster.client(i)).collect();
    for s in &mut subs {
        assert_eq!(
            s.call(&["SUBSCRIBE", "__keyevent@0__:expired"]),
            Frame::Array(vec![
                bulk("subscribe"),
                bulk("__keyevent@0__:expired"),
                Frame::Integer(1)
            ])
        );
    }
    assert_eq!(w.call(&["SET", "k", "v", "PX", "1500"]), Frame::ok());
    assert_eq!(w.call(&["SET", "stay", "v"]), Frame::ok());
    let mut readers: Vec<Client> = (0..3)
        .map(|i| {
            let mut c = cluster.client(i);
            assert_eq!(c.call(&["READONLY"]), Frame::ok());
            c
        })
        .collect();
    for (i, r) in readers.iter_mut().enumerate() {
        wait_for(r, &["GET", "k"], &bulk("v"));
        let pttl = r.call(&["PTTL", "k"]);
        assert!(
            matches!(pttl, Frame::Integer(n) if n > 0 && n <= 1500),
            "node {i}: {pttl:?}"
        );
    }
    std::thread::sleep(Duration::from_millis(1600));
    for (i, r) in readers.iter_mut().enumerate() {
        assert_eq!(r.call(&["GET", "k"]), Frame::Null, "node {i} hides it");
        wait_for(r, &["DBSIZE"], &Frame::Integer(1));
    }
    let event = Frame::Array(vec![
        bulk("message"),
        bulk("__keyevent@0__:expired"),
        bulk("k"),
    ]);
    for (i, s) in subs.iter_mut().enumerate() {
        assert_eq!(s.read(), Some(event.clone()), "subscriber on node {i}");
        assert_eq!(
            s.call(&["PING"]),
            Frame::Array(vec![bulk("pong"), bulk("")]),
            "one event on node {i}"
        );
    }
}
