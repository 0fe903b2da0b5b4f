//! Pub/sub and keyspace notifications through the real binary: raw RESP, redis-cli and
//! redis-py (RESP2 and RESP3), a slow subscriber, and a three-node cluster where subscribers
//! on every node see every event once, also across a leader change.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tickdb_core::resp::Frame;
use tickdb_tests::cluster::Cluster;
use tickdb_tests::{Client, Server, bulk, err, run_python};

fn push(items: &[&str]) -> Frame {
    Frame::Array(items.iter().map(|s| bulk(s)).collect())
}

fn confirm(kind: &str, name: &str, count: i64) -> Frame {
    Frame::Array(vec![bulk(kind), bulk(name), Frame::Integer(count)])
}

#[test]
fn raw_resp2_subscribe_publish_and_subscribed_mode() {
    let server = Server::start(&[]);
    let mut sub = server.client();
    let mut publ = server.client();
    sub.send(&["SUBSCRIBE", "a", "b"]);
    assert_eq!(sub.read(), Some(confirm("subscribe", "a", 1)));
    assert_eq!(sub.read(), Some(confirm("subscribe", "b", 2)));
    assert_eq!(
        sub.call(&["PSUBSCRIBE", "t?ck"]),
        confirm("psubscribe", "t?ck", 3)
    );
    assert_eq!(publ.call(&["PUBLISH", "a", "one"]), Frame::Integer(1));
    assert_eq!(publ.call(&["PUBLISH", "tick", "two"]), Frame::Integer(1));
    assert_eq!(publ.call(&["PUBLISH", "nobody", "x"]), Frame::Integer(0));
    assert_eq!(sub.read(), Some(push(&["message", "a", "one"])));
    assert_eq!(sub.read(), Some(push(&["pmessage", "t?ck", "tick", "two"])));
    assert_eq!(
        sub.call(&["SET", "k", "v"]),
        err(
            "ERR Can't execute 'set': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
        )
    );
    assert_eq!(sub.call(&["PING"]), push(&["pong", ""]));
    assert_eq!(
        publ.call(&["PUBSUB", "NUMSUB", "a", "b", "c"]),
        Frame::Array(vec![
            bulk("a"),
            Frame::Integer(1),
            bulk("b"),
            Frame::Integer(1),
            bulk("c"),
            Frame::Integer(0)
        ])
    );
    assert_eq!(publ.call(&["PUBSUB", "NUMPAT"]), Frame::Integer(1));
    sub.send(&["UNSUBSCRIBE"]);
    assert_eq!(sub.read(), Some(confirm("unsubscribe", "a", 2)));
    assert_eq!(sub.read(), Some(confirm("unsubscribe", "b", 1)));
    // Still subscribed to a pattern: still in subscribed mode.
    assert!(sub.call(&["GET", "k"]).is_error());
    assert_eq!(
        sub.call(&["PUNSUBSCRIBE"]),
        confirm("punsubscribe", "t?ck", 0)
    );
    assert_eq!(sub.call(&["GET", "k"]), Frame::Null);
    assert_eq!(publ.call(&["PUBSUB", "CHANNELS"]), Frame::Array(Vec::new()));
}

#[test]
fn redis_cli_subscriber_receives_messages_and_keyspace_events() {
    let server = Server::start(&[]);
    let mut c = server.client();
    assert_eq!(
        c.call(&["CONFIG", "SET", "notify-keyspace-events", "K$d"]),
        Frame::ok()
    );
    let child = Command::new("timeout")
        .args(["5", "redis-cli", "-p", &server.port.to_string()])
        .args(["PSUBSCRIBE", "__keyspace@0__:*", "news"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli");
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.call(&["PUBSUB", "NUMPAT"]) != Frame::Integer(2) {
        assert!(Instant::now() < deadline, "redis-cli did not subscribe");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(c.call(&["SET", "price", "10"]), Frame::ok());
    assert_eq!(
        c.call(&["TS.ADD", "px", "1000", "1.5"]),
        Frame::Integer(1000)
    );
    // `g` is not enabled: no event for DEL.
    assert_eq!(c.call(&["DEL", "price"]), Frame::Integer(1));
    assert_eq!(c.call(&["PUBLISH", "news", "hello"]), Frame::Integer(1));
    let out = child.wait_with_output().expect("redis-cli output");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "psubscribe",
            "__keyspace@0__:*",
            "1",
            "psubscribe",
            "news",
            "2",
            "pmessage",
            "__keyspace@0__:*",
            "__keyspace@0__:price",
            "set",
            "pmessage",
            "__keyspace@0__:*",
            "__keyspace@0__:px",
            "ts.add",
            "pmessage",
            "news",
            "news",
            "hello",
        ],
        "{text}"
    );
}

#[test]
fn redis_py_pubsub_resp2_and_resp3() {
    let server = Server::start(&[]);
    let out = run_python("redis_py_pubsub.py", server.port);
    assert!(
        out.contains("pub/sub checks passed in RESP2 and RESP3"),
        "{out}"
    );
}

#[test]
fn a_subscriber_that_does_not_read_is_disconnected() {
    const MESSAGES: usize = 2048;
    let server = Server::start(&[]);
    let mut slow = server.client();
    assert_eq!(
        slow.call(&["SUBSCRIBE", "flood"]),
        confirm("subscribe", "flood", 1)
    );
    let mut publ = server.client();
    let payload = "x".repeat(64 * 1024);
    // 128 MiB published: more than the 32 MiB pub/sub limit plus what the sockets may hold
    // (Linux grows a receive buffer up to `tcp_rmem`'s maximum, 32 MiB here).
    for _ in 0..MESSAGES {
        publ.send(&["PUBLISH", "flood", &payload]);
    }
    // Each reply counts the clients its message was queued for when it applied; a round that
    // applied many at once queued them all before the driver found the queue over its limit.
    for _ in 0..MESSAGES {
        let reply = publ.read();
        assert!(
            matches!(reply, Some(Frame::Integer(0 | 1))),
            "PUBLISH answered {reply:?}"
        );
    }
    assert_eq!(
        publ.call(&["PUBSUB", "NUMSUB", "flood"]),
        Frame::Array(vec![bulk("flood"), Frame::Integer(0)]),
        "the slow subscriber was dropped"
    );
    // Its connection was closed: reading drains what was sent, then ends.
    let mut frames = 0usize;
    while slow.read().is_some() {
        frames += 1;
    }
    assert!(frames < MESSAGES, "it was dropped before it got them all");
    let info = match publ.call(&["INFO", "clients"]) {
        Frame::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        other => format!("{other:?}"),
    };
    assert!(info.contains("connected_clients:1"), "{info}");
}

/// Subscribes `c` to every key event and channel `ch`, and reads the confirmations.
fn subscribe_all(c: &mut Client) {
    c.send(&["PSUBSCRIBE", "__keyevent@0__:*"]);
    assert_eq!(c.read(), Some(confirm("psubscribe", "__keyevent@0__:*", 1)));
    c.send(&["SUBSCRIBE", "ch"]);
    assert_eq!(c.read(), Some(confirm("subscribe", "ch", 2)));
}

fn key_event(event: &str, key: &str) -> Frame {
    let channel = format!("__keyevent@0__:{event}");
    push(&["pmessage", "__keyevent@0__:*", &channel, key])
}

/// Each subscriber reads exactly `want`, in order, and nothing more (PING's reply comes
/// next).
fn expect_each(subs: &mut [Client], want: &[Frame]) {
    for (i, s) in subs.iter_mut().enumerate() {
        for w in want {
            assert_eq!(s.read().as_ref(), Some(w), "subscriber on node {i}");
        }
        assert_eq!(
            s.call(&["PING"]),
            push(&["pong", ""]),
            "subscriber on node {i}"
        );
    }
}

#[test]
fn cluster_subscribers_on_every_node_see_each_event_once() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_leader(Duration::from_secs(10));
    let follower = (leader + 1) % 3;
    let mut subs: Vec<Client> = (0..3).map(|i| cluster.client(i)).collect();
    for s in &mut subs {
        subscribe_all(s);
    }
    let mut w = cluster.client(follower);
    assert_eq!(
        w.call(&["CONFIG", "SET", "notify-keyspace-events", "E$gd"]),
        Frame::ok()
    );
    // Written through a follower (forwarded) and through the leader.
    assert_eq!(w.call(&["SET", "a", "1"]), Frame::ok());
    assert_eq!(w.call(&["TS.ADD", "s", "1000", "1"]), Frame::Integer(1000));
    assert_eq!(w.call(&["PUBLISH", "ch", "m1"]), Frame::Integer(1));
    let mut l = cluster.client(leader);
    assert_eq!(l.call(&["DEL", "a"]), Frame::Integer(1));
    let want = [
        key_event("set", "a"),
        key_event("ts.add", "s"),
        push(&["message", "ch", "m1"]),
        key_event("del", "a"),
    ];
    expect_each(&mut subs, &want);

    // A leader change: subscribers stay on their nodes and keep receiving, each event once.
    assert_eq!(
        cluster.client(follower).call(&["CLUSTER", "FAILOVER"]),
        Frame::ok()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster.leader() != Some(follower) {
        assert!(Instant::now() < deadline, "{}", cluster.describe());
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut old = cluster.client(leader);
    assert_eq!(
        old.call(&["TS.ADD", "s", "2000", "2"]),
        Frame::Integer(2000)
    );
    assert_eq!(old.call(&["PUBLISH", "ch", "m2"]), Frame::Integer(1));
    expect_each(
        &mut subs,
        &[key_event("ts.add", "s"), push(&["message", "ch", "m2"])],
    );
}
