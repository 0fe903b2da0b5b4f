//! A three-node cluster of real processes: writes through any node, a leader killed mid-stream
//! losing no acknowledged write, a majority down never acknowledging and never hanging, time
//! series through a follower, a paused leader replaced and rejoining.
//!
//! Reply contract under test: a follower forwards writes and plain reads to the leader and
//! answers on the client's connection; `READONLY` makes a follower connection serve local
//! (possibly stale) reads; with no known leader a client gets `-CLUSTERDOWN ...`; a write whose
//! outcome is unknown gets `-TIMEOUT ...` or `-TRYAGAIN ...`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tickdb_core::resp::Frame;
use tickdb_tests::cluster::{Cluster, ELECTION_TIMEOUT_MS, is_error_with};
use tickdb_tests::{Client, bulk};

/// Bound on electing a leader: the election timeout is 300-600 ms, so this allows for many
/// split votes and a slow, shared machine.
const ELECTION: Duration = Duration::from_secs(15);
/// Bound on a follower's (or restarted node's) copy catching up.
const CATCH_UP: Duration = Duration::from_secs(30);
/// Bound on one write's reply: the request timeout is 2 s.
const WRITE_REPLY: Duration = Duration::from_secs(15);
/// The error codes a write may get when the cluster cannot (or could not confirm to) commit it.
const UNAVAILABLE: &[&str] = &["CLUSTERDOWN", "TRYAGAIN", "TIMEOUT"];

fn sample(ts: i64, v: &str) -> Frame {
    Frame::Array(vec![
        Frame::Integer(ts),
        Frame::Simple(Bytes::copy_from_slice(v.as_bytes())),
    ])
}

/// Node indexes other than `leader`.
fn followers(cluster: &Cluster, leader: usize) -> Vec<usize> {
    (0..cluster.len()).filter(|&i| i != leader).collect()
}

/// A client of node `i` in READONLY mode (serves its local, possibly stale, copy).
fn readonly_client(cluster: &Cluster, i: usize) -> Client {
    let mut c = cluster.client(i);
    assert_eq!(c.call(&["READONLY"]), Frame::ok(), "READONLY on node {i}");
    c
}

/// Polls node `i` (READONLY) until every `(key, value)` reads back, or panics after `timeout`
/// naming what is missing.
fn wait_readable(cluster: &Cluster, i: usize, pairs: &[(String, String)], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut c = readonly_client(cluster, i);
    let mut pending: Vec<&(String, String)> = pairs.iter().collect();
    loop {
        pending.retain(|(k, v)| c.call(&["GET", k]) != bulk(v));
        if pending.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "node {} still misses {} of {} keys after {timeout:?} (first: {:?})\n{}",
                cluster.id(i),
                pending.len(),
                pairs.len(),
                pending[0],
                cluster.describe()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_write_through_any_node_is_readable_from_every_node() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_leader(ELECTION);

    // One write through each node, leader and followers alike.
    let mut pairs = Vec::new();
    for i in 0..cluster.len() {
        let (k, v) = (format!("via:{i}"), format!("value:{i}"));
        let mut c = cluster.client(i);
        assert_eq!(
            c.call_within(&["SET", &k, &v], WRITE_REPLY),
            Ok(Frame::ok()),
            "SET through node {} (leader is {})\n{}",
            cluster.id(i),
            cluster.id(leader),
            cluster.describe()
        );
        // Read-your-write on the same connection, wherever it went.
        assert_eq!(c.call(&["GET", &k]), bulk(&v), "GET after SET on node {i}");
        pairs.push((k, v));
    }

    // Linearizable reads: on the leader, and forwarded by followers without READONLY; both
    // see every acknowledged write at once.
    for i in 0..cluster.len() {
        let mut c = cluster.client(i);
        for (k, v) in &pairs {
            assert_eq!(c.call(&["GET", k]), bulk(v), "GET {k} on node {i}");
        }
    }
    // Stale reads on followers catch up.
    for f in followers(&cluster, leader) {
        wait_readable(&cluster, f, &pairs, CATCH_UP);
    }

    // Every node names itself differently.
    let ids: std::collections::BTreeSet<Bytes> = (0..cluster.len())
        .map(|i| match cluster.client(i).call(&["CLUSTER", "MYID"]) {
            Frame::Bulk(id) if !id.is_empty() => id,
            other => panic!("CLUSTER MYID on node {i}: {other:?}"),
        })
        .collect();
    assert_eq!(ids.len(), cluster.len(), "CLUSTER MYID: {ids:?}");

    // What the nodes say about the cluster.
    let r = cluster.replication(leader).unwrap();
    assert_eq!(r.role, "master", "{:?}", r.fields);
    assert_eq!(r.leader_id, cluster.id(leader));
    for f in followers(&cluster, leader) {
        let r = cluster.replication(f).unwrap();
        assert_eq!(r.role, "slave", "{:?}", r.fields);
        assert_eq!(r.leader_id, cluster.id(leader));
        assert_eq!(
            r.fields.get("master_host").map(String::as_str),
            Some("127.0.0.1")
        );
        assert_eq!(
            r.fields.get("master_port"),
            Some(&cluster.ports(leader).client.to_string()),
            "{:?}",
            r.fields
        );
        let mut c = cluster.client(f);
        let Frame::Bulk(info) = c.call(&["CLUSTER", "INFO"]) else {
            panic!("CLUSTER INFO is a bulk string");
        };
        let info = String::from_utf8_lossy(&info);
        assert!(info.contains("cluster_state:ok"), "{info}");
    }
}

/// Client threads writing `SET w<writer>:<i> v<writer>:<i>` through chosen nodes, recording
/// what was acknowledged and when. A connection that breaks or times out is replaced.
struct Writers {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(String, String, Instant)>>>,
    /// Replies that were neither +OK nor an "unavailable" error: always a bug.
    unexpected: Arc<Mutex<Vec<String>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Writers {
    fn start(ports: &[u16]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let unexpected = Arc::new(Mutex::new(Vec::new()));
        let threads = ports
            .iter()
            .enumerate()
            .map(|(w, &port)| {
                let (stop, acked, unexpected) = (stop.clone(), acked.clone(), unexpected.clone());
                std::thread::spawn(move || {
                    let mut client: Option<Client> = None;
                    for i in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let Some(c) = client.as_mut() else {
                            client = Client::try_connect(port, WRITE_REPLY).ok();
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        };
                        let (k, v) = (format!("w{w}:{i}"), format!("v{w}:{i}"));
                        match c.call_within(&["SET", &k, &v], WRITE_REPLY) {
                            Ok(f) if f == Frame::ok() => {
                                acked.lock().unwrap().push((k, v, Instant::now()));
                            }
                            Ok(f) if is_error_with(&f, UNAVAILABLE) => {
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            Ok(f) => unexpected.lock().unwrap().push(format!("SET {k}: {f:?}")),
                            Err(_) => client = None,
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            acked,
            unexpected,
            threads,
        }
    }

    /// Acknowledged writes so far after `since`.
    fn acked_since(&self, since: Instant) -> usize {
        let acked = self.acked.lock().unwrap();
        acked.iter().filter(|(_, _, at)| *at > since).count()
    }

    /// Waits until `n` writes were acknowledged after `since`; false on timeout.
    fn wait_acked_since(&self, since: Instant, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.acked_since(since) < n {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Stops the writers; returns the acknowledged `(key, value)`s.
    fn finish(self) -> Vec<(String, String)> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("writer thread");
        }
        let unexpected = self.unexpected.lock().unwrap();
        assert!(unexpected.is_empty(), "unexpected replies: {unexpected:?}");
        let acked = self.acked.lock().unwrap();
        acked
            .iter()
            .map(|(k, v, _)| (k.clone(), v.clone()))
            .collect()
    }
}

#[test]
fn killing_the_leader_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(3);
    let old = cluster.wait_leader(ELECTION);
    let survivors = followers(&cluster, old);
    // Two writers through each survivor: they forward to the leader until it dies.
    let ports: Vec<u16> = survivors
        .iter()
        .flat_map(|&i| [cluster.ports(i).client; 2])
        .collect();
    let writers = Writers::start(&ports);
    let start = Instant::now();
    assert!(
        writers.wait_acked_since(start, 200, Duration::from_secs(30)),
        "only {} writes acknowledged before the kill\n{}",
        writers.acked_since(start),
        cluster.describe()
    );

    cluster.kill9(old);
    let killed = Instant::now();
    let new = cluster.wait_leader(ELECTION);
    let elected_after = killed.elapsed();
    assert_ne!(new, old);
    assert!(
        writers.wait_acked_since(killed, 200, Duration::from_secs(30)),
        "only {} writes acknowledged after the new leader {} was elected\n{}",
        writers.acked_since(killed),
        cluster.id(new),
        cluster.describe()
    );
    let acked = writers.finish();
    eprintln!(
        "new leader {} within {elected_after:?} of the kill; {} writes acknowledged",
        cluster.id(new),
        acked.len()
    );

    // Every acknowledged write is there: read linearizably on the new leader, then on the
    // other survivor's own copy.
    let mut c = cluster.client(new);
    for (k, v) in &acked {
        assert_eq!(c.call(&["GET", k]), bulk(v), "acknowledged {k} lost");
    }
    let other = survivors.iter().copied().find(|&i| i != new).unwrap();
    wait_readable(&cluster, other, &acked, CATCH_UP);

    // The dead node comes back as a follower and catches up.
    cluster.restart(old);
    wait_readable(&cluster, old, &acked, CATCH_UP);
    let leader = cluster.wait_leader(ELECTION);
    let r = cluster.replication(old).unwrap();
    assert_eq!(r.leader_id, cluster.id(leader), "{:?}", r.fields);
}

/// Kills `victims`, then writes through `through`: every reply comes within the bound and is
/// an "unavailable" error, never +OK. Then restarts one victim and sees writes succeed again.
fn majority_down(victims_include_leader: bool) {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_leader(ELECTION);
    let fs = followers(&cluster, leader);
    let (through, victims) = if victims_include_leader {
        (fs[0], [leader, fs[1]])
    } else {
        (leader, [fs[0], fs[1]])
    };
    let mut c = cluster.client(through);
    assert_eq!(
        c.call_within(&["SET", "before", "1"], WRITE_REPLY),
        Ok(Frame::ok())
    );
    for v in victims {
        cluster.kill9(v);
    }

    // Right after the kill (the survivor may not have noticed yet) and well after it (it
    // has stepped down or given up on the leader): never +OK, never silence.
    for (n, pause) in [0u64, 0, 1000, 0].into_iter().enumerate() {
        std::thread::sleep(Duration::from_millis(pause));
        let key = format!("during:{n}");
        let sent = Instant::now();
        let reply = c.call_within(&["SET", &key, "x"], WRITE_REPLY);
        let waited = sent.elapsed();
        match &reply {
            Ok(f) if is_error_with(f, UNAVAILABLE) => {}
            // A connection broken by the survivor is not a hang, but it is not the contract.
            other => panic!(
                "SET {key} with a majority down: {other:?} after {waited:?}\n{}",
                cluster.describe()
            ),
        }
        eprintln!("SET {key} with a majority down: {reply:?} after {waited:?}");
    }

    // A majority again: writes succeed (after an election) within a bound.
    cluster.restart(victims[0]);
    let deadline = Instant::now() + ELECTION + WRITE_REPLY;
    let mut c = cluster.client(through);
    loop {
        match c.call_within(&["SET", "after", "1"], WRITE_REPLY) {
            Ok(f) if f == Frame::ok() => break,
            Ok(f) if is_error_with(&f, UNAVAILABLE) => {}
            other => panic!("SET after recovery: {other:?}\n{}", cluster.describe()),
        }
        assert!(
            Instant::now() < deadline,
            "no write succeeded after a majority came back\n{}",
            cluster.describe()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(c.call(&["GET", "before"]), bulk("1"));
}

#[test]
fn with_the_leader_alone_writes_fail_and_never_hang() {
    majority_down(false);
}

#[test]
fn with_a_follower_alone_writes_fail_and_never_hang() {
    majority_down(true);
}

#[test]
fn ts_add_and_range_through_a_follower() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_leader(ELECTION);
    let fs = followers(&cluster, leader);
    let mut c = cluster.client(fs[0]);
    assert_eq!(
        c.call_within(
            &["TS.CREATE", "px:AAPL", "LABELS", "symbol", "AAPL"],
            WRITE_REPLY
        ),
        Ok(Frame::ok()),
        "{}",
        cluster.describe()
    );
    let mut expected = Vec::new();
    for t in 1..=100i64 {
        let ts = 1_700_000_000_000 + t;
        let v = format!("{t}.5");
        assert_eq!(
            c.call(&["TS.ADD", "px:AAPL", &ts.to_string(), &v]),
            Frame::Integer(ts)
        );
        expected.push(sample(ts, &v));
    }
    let expected = Frame::Array(expected);
    // Through the follower (forwarded), on the leader, then the other follower's own copy.
    assert_eq!(c.call(&["TS.RANGE", "px:AAPL", "-", "+"]), expected);
    assert_eq!(
        cluster
            .client(leader)
            .call(&["TS.RANGE", "px:AAPL", "-", "+"]),
        expected
    );
    let deadline = Instant::now() + CATCH_UP;
    let mut r = readonly_client(&cluster, fs[1]);
    while r.call(&["TS.RANGE", "px:AAPL", "-", "+"]) != expected {
        assert!(
            Instant::now() < deadline,
            "follower {} never caught up\n{}",
            cluster.id(fs[1]),
            cluster.describe()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        c.call(&["TS.MRANGE", "-", "+", "FILTER", "symbol=AAPL"]),
        cluster
            .client(leader)
            .call(&["TS.MRANGE", "-", "+", "FILTER", "symbol=AAPL"])
    );
}

#[test]
fn a_paused_leader_is_replaced_and_rejoins_as_a_follower() {
    let mut cluster = Cluster::start(3);
    let old = cluster.wait_leader(ELECTION);
    let fs = followers(&cluster, old);
    let mut c = cluster.client(fs[0]);
    assert_eq!(
        c.call_within(&["SET", "k", "1"], WRITE_REPLY),
        Ok(Frame::ok())
    );

    cluster.pause(old);
    let new = cluster.wait_leader(ELECTION);
    assert_ne!(new, old);
    assert_eq!(
        c.call_within(&["SET", "k", "2"], WRITE_REPLY),
        Ok(Frame::ok())
    );

    // Back from its "partition" the old leader must not serve its stale term: it follows.
    cluster.resume(old);
    let leader = cluster.wait_leader(ELECTION);
    assert_ne!(
        leader, old,
        "a returning node with an old log cannot win at once"
    );
    let r = cluster.replication(old).unwrap();
    assert_eq!(r.role, "slave", "{:?}", r.fields);
    // Forwarded from the old leader: the newest value.
    assert_eq!(cluster.client(old).call(&["GET", "k"]), bulk("2"));
    wait_readable(&cluster, old, &[("k".into(), "2".into())], CATCH_UP);
}

#[test]
fn a_cluster_with_a_secret_elects_and_replicates() {
    let cluster = Cluster::start_with(3, &["--cluster-secret", "s3cret"]);
    let leader = cluster.wait_leader(ELECTION);
    let f = followers(&cluster, leader)[0];
    let mut c = cluster.client(f);
    assert_eq!(
        c.call_within(&["SET", "k", "v"], WRITE_REPLY),
        Ok(Frame::ok()),
        "{}",
        cluster.describe()
    );
    assert_eq!(cluster.client(leader).call(&["GET", "k"]), bulk("v"));
}

#[test]
fn nodes_with_different_secrets_never_form_a_cluster() {
    let cluster = Cluster::start_each(3, |i| {
        vec!["--cluster-secret".into(), format!("secret-{i}")]
    });
    // Several election timeouts: with every peer message dropped nobody gets a majority.
    std::thread::sleep(Duration::from_millis(ELECTION_TIMEOUT_MS.1 * 5));
    for i in 0..cluster.len() {
        let r = cluster.replication(i).unwrap();
        assert_ne!(
            r.role,
            "master",
            "node {} leads alone: {:?}",
            cluster.id(i),
            r.fields
        );
        let reply = cluster
            .client(i)
            .call_within(&["SET", "k", "v"], WRITE_REPLY);
        assert!(
            matches!(&reply, Ok(f) if is_error_with(f, UNAVAILABLE)),
            "SET on node {}: {reply:?}",
            cluster.id(i)
        );
    }
}

/// A cluster-aware client (redis-py's `RedisCluster`) discovers the one-shard layout from
/// `CLUSTER SLOTS`, writes through the leader, reads from replicas, and uses `r.ts()`.
#[test]
fn redis_py_cluster_client_works() {
    let cluster = Cluster::start(3);
    cluster.wait_leader(ELECTION);
    let ports: Vec<String> = (0..cluster.len())
        .map(|i| cluster.ports(i).client.to_string())
        .collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/redis_py_cluster.py");
    let out = tickdb_tests::run(
        std::process::Command::new("python3")
            .arg(script)
            .env("TICKDB_PORTS", ports.join(",")),
    );
    assert!(
        out.contains("redis-py cluster checks passed"),
        "{out}\n{}",
        cluster.describe()
    );
}

/// Clients on a follower: redis-py's transactional pipelines (each EXEC forwarded to the leader
/// as one entry, WATCH decided where it applies), redis-cli reading commands from a pipe, and
/// every replica holding what the transactions wrote.
#[test]
fn transactions_and_redis_cli_through_a_follower() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_leader(ELECTION);
    let f = followers(&cluster, leader)[0];
    let port = cluster.ports(f).client;
    let out = tickdb_tests::run_python("redis_py_txn.py", port);
    assert!(
        out.contains("transaction and identity checks passed"),
        "{out}"
    );
    let out = tickdb_tests::run(std::process::Command::new("sh").arg("-c").arg(format!(
        "printf 'PING\\nMULTI\\nINCR c\\nINCR c\\nEXEC\\n' | redis-cli -p {port}"
    )));
    assert_eq!(
        out.trim().lines().collect::<Vec<_>>(),
        ["PONG", "OK", "QUEUED", "QUEUED", "1", "2"]
    );
    let pairs = vec![
        ("txn2:a".to_string(), "7".to_string()),
        ("txn3:balance".to_string(), "40".to_string()),
        ("c".to_string(), "2".to_string()),
    ];
    for i in 0..cluster.len() {
        wait_readable(&cluster, i, &pairs, CATCH_UP);
    }
}

/// An interactive redis-cli on a follower: hints, writes forwarded to the leader, a
/// transaction, and a clean exit.
#[test]
fn interactive_redis_cli_on_a_follower() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_leader(ELECTION);
    let f = followers(&cluster, leader)[0];
    let port = cluster.ports(f).client;
    let term = tickdb_tests::terminal::Terminal::start(&format!("redis-cli -p {port}"));
    term.wait_for(&format!("127.0.0.1:{port}>"));
    term.type_text("TS.RANGE ");
    term.wait_for("key fromTimestamp toTimestamp");
    term.type_text("px - +");
    term.enter();
    term.wait_for("ERR TSDB: the key does not exist");
    term.run("TS.ADD px 1000 101.5", "(integer) 1000");
    term.run("SET side buy", "OK");
    term.run("MULTI", "OK");
    term.run("INCR orders", "QUEUED");
    term.run("GET side", "QUEUED");
    let screen = term.run("EXEC", "2) \"buy\"");
    assert!(screen.contains("1) (integer) 1"), "{screen}");
    term.run("INFO replication", "role:slave");
    term.type_text("QUIT");
    term.enter();
    let screen = term.wait_for("EXITED");
    assert!(screen.contains("EXITED 0"), "{screen}");
    wait_readable(
        &cluster,
        leader,
        &[("orders".to_string(), "1".to_string())],
        CATCH_UP,
    );
}
