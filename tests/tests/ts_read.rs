//! `TS.READ ... BLOCK` through the real binary: a standalone node and a three-node cluster.
//!
//! Contract under test: a blocked client waits on the node it is connected to without holding
//! anything else up, wakes when enough samples apply there (wherever the write came in), times
//! out with what qualifies, keeps its connection's replies in order, and is forgotten when it
//! disconnects; on a cluster this holds on the leader and on followers (with `READONLY` and
//! without).

use std::time::{Duration, Instant};

use bytes::Bytes;
use tickdb_core::resp::Frame;
use tickdb_tests::cluster::Cluster;
use tickdb_tests::{Client, Server};

fn samples(rows: &[(i64, &str)]) -> Frame {
    Frame::Array(
        rows.iter()
            .map(|(ts, v)| {
                Frame::Array(vec![
                    Frame::Integer(*ts),
                    Frame::Simple(Bytes::copy_from_slice(v.as_bytes())),
                ])
            })
            .collect(),
    )
}

/// `blocked_clients` from `INFO clients`.
fn blocked_clients(c: &mut Client) -> u64 {
    let Frame::Bulk(info) = c.call(&["INFO", "clients"]) else {
        panic!("INFO clients is a bulk string in RESP2")
    };
    let info = String::from_utf8_lossy(&info).into_owned();
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no blocked_clients in {info}"))
}

/// Polls `INFO clients` on `c` until `blocked_clients` is `n`, or panics after 10 s.
fn wait_blocked(c: &mut Client, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = blocked_clients(c);
        if now == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "blocked_clients stayed {now}, not {n}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_blocked_read_wakes_on_enough_samples_and_keeps_replies_in_order() {
    let server = Server::start(&[]);
    let (mut reader, mut writer, mut watcher) = (server.client(), server.client(), server.client());
    assert_eq!(
        writer.call(&["TS.ADD", "s", "100", "1"]),
        Frame::Integer(100)
    );
    reader.send(&["TS.READ", "s", "$", "BLOCK", "0", "2"]);
    reader.send(&["PING"]);
    wait_blocked(&mut watcher, 1);
    // One sample is not enough; it stays blocked, and PING behind it waits.
    assert_eq!(
        writer.call(&["TS.ADD", "s", "200", "2"]),
        Frame::Integer(200)
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(blocked_clients(&mut watcher), 1);
    assert_eq!(
        writer.call(&["TS.MADD", "s", "300", "3", "s", "400", "4"]),
        Frame::Array(vec![Frame::Integer(300), Frame::Integer(400)])
    );
    assert_eq!(
        reader.read(),
        Some(samples(&[(200, "2"), (300, "3"), (400, "4")]))
    );
    assert_eq!(reader.read(), Some(Frame::Simple("PONG".into())));
    assert_eq!(blocked_clients(&mut watcher), 0);
    // RESP3: the same samples with double values.
    assert!(matches!(reader.call(&["HELLO", "3"]), Frame::Map(_)));
    assert_eq!(
        reader.call(&[
            "TS.READ",
            "s",
            "350",
            "BLOCK",
            "1000",
            "1",
            "MAX_COUNT",
            "1"
        ]),
        Frame::Array(vec![Frame::Array(vec![
            Frame::Integer(400),
            Frame::Double(4.0)
        ])])
    );
}

#[test]
fn a_blocked_read_times_out_cleanly_and_a_disconnect_is_forgotten() {
    let server = Server::start(&[]);
    let (mut reader, mut writer) = (server.client(), server.client());
    assert_eq!(
        writer.call(&["TS.ADD", "s", "100", "1"]),
        Frame::Integer(100)
    );
    let started = Instant::now();
    assert_eq!(
        reader.call(&["TS.READ", "s", "0", "BLOCK", "300", "5"]),
        samples(&[(100, "1")]),
        "at the deadline: what qualifies"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        reader.call(&["TS.READ", "s", "101", "BLOCK", "200", "1"]),
        samples(&[])
    );
    // Blocked, then gone: the node forgets it, and a later sample answers nobody.
    let mut gone = server.client();
    gone.send(&["TS.READ", "s", "$", "BLOCK", "0", "1"]);
    wait_blocked(&mut writer, 1);
    drop(gone);
    wait_blocked(&mut writer, 0);
    assert_eq!(
        writer.call(&["TS.ADD", "s", "200", "2"]),
        Frame::Integer(200)
    );
    assert_eq!(writer.call(&["PING"]), Frame::Simple("PONG".into()));
    // Removing the key ends a wait with an empty reply.
    reader.send(&["TS.READ", "s", "$", "BLOCK", "0", "1"]);
    wait_blocked(&mut writer, 1);
    assert_eq!(writer.call(&["DEL", "s"]), Frame::Integer(1));
    assert_eq!(reader.read(), Some(samples(&[])));
}

/// Clients blocked on the leader, on a follower after READONLY and on a follower without it
/// all wake when a write lands through the leader, each on its own node.
#[test]
fn blocked_reads_wake_on_the_leader_and_on_followers() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_leader(Duration::from_secs(15));
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let mut writer = cluster.client(leader);
    assert_eq!(writer.call(&["TS.CREATE", "s"]), Frame::Simple("OK".into()));
    let mut readonly = cluster.client(followers[0]);
    assert_eq!(readonly.call(&["READONLY"]), Frame::Simple("OK".into()));
    let mut waiting = vec![
        (leader, cluster.client(leader)),
        (followers[0], readonly),
        (followers[1], cluster.client(followers[1])),
    ];
    for (_, c) in &mut waiting {
        c.send(&["TS.READ", "s", "$", "BLOCK", "0", "1"]);
        c.send(&["PING"]);
    }
    for (i, _) in &waiting {
        wait_blocked(&mut cluster.client(*i), 1);
    }
    assert_eq!(
        writer.call(&["TS.ADD", "s", "500", "5"]),
        Frame::Integer(500)
    );
    for (i, c) in &mut waiting {
        assert_eq!(c.read(), Some(samples(&[(500, "5")])), "node {i}");
        assert_eq!(c.read(), Some(Frame::Simple("PONG".into())), "node {i}");
    }
    // A follower's blocked read also wakes for a write that came in through the other
    // follower (forwarded to the leader, then replicated).
    let mut c = cluster.client(followers[0]);
    c.send(&["TS.READ", "s", "501", "BLOCK", "10000", "1"]);
    wait_blocked(&mut cluster.client(followers[0]), 1);
    let mut via = cluster.client(followers[1]);
    assert_eq!(via.call(&["TS.ADD", "s", "600", "6"]), Frame::Integer(600));
    assert_eq!(c.read(), Some(samples(&[(600, "6")])));
}
