//! Cluster tests: several real nodes over in-memory stores, their messages carried by a tiny
//! deterministic network that can cut links, on a virtual clock.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use super::*;
use crate::cmd::test_args as args;
use crate::resp::encode;
use crate::store::MemStore;
use crate::test_modes::{in_pipelined, pipelined};

const STEP_MS: u64 = 5;

/// Starts a node, pipelining its syncs under [`in_pipelined`], as the production driver runs
/// a cluster's nodes: a sync a node asks for completes at the start of the next settle round,
/// after the messages delivered meanwhile were handled (and written, unsynced).
fn start(cfg: NodeConfig, store: MemStore, now: Instant) -> Result<Node<MemStore>, NodeError> {
    let mut node = Node::new(cfg, store, now)?;
    if pipelined() {
        node.pipeline_syncs();
    }
    Ok(node)
}

struct Net {
    nodes: Vec<Option<Node<MemStore>>>,
    stores: Vec<MemStore>,
    now: Instant,
    queue: VecDeque<(usize, usize, Vec<u8>)>,
    /// Links cut (from, to), by node index.
    cut: BTreeSet<(usize, usize)>,
    replies: BTreeMap<(usize, u64), VecDeque<Frame>>,
    /// Deliver every message twice.
    duplicate: bool,
    /// Links (from, to) whose messages are held in `held` instead of delivered.
    hold: BTreeSet<(usize, usize)>,
    held: Vec<(usize, usize, Vec<u8>)>,
    /// Pipelined syncs asked for and not completed, by node index: (upto, store write mark).
    syncs: BTreeMap<usize, (u64, u64)>,
}

fn cluster_config(n: usize, i: usize) -> ClusterConfig {
    let mut c = ClusterConfig::single();
    c.id = NodeId(i as u64 + 1);
    c.cluster_id = 7;
    c.members = (0..n)
        .map(|j| Member {
            id: NodeId(j as u64 + 1),
            client_addr: format!("127.0.0.1:{}", 7000 + j),
            cluster_port: 8000 + j as u16,
        })
        .collect();
    c.seed = 100 + i as u64;
    c.heartbeat_ms = 50;
    c.election_timeout_ms = (300, 600);
    c.request_timeout_ms = 2_000;
    c.secret = Some(b"test-secret".to_vec());
    c
}

fn node_config(n: usize, i: usize) -> NodeConfig {
    NodeConfig {
        node_id: format!("n{}", i + 1),
        cluster: cluster_config(n, i),
        ..NodeConfig::default()
    }
}

fn text(f: &Frame) -> String {
    match f {
        Frame::Bulk(b) | Frame::Simple(b) | Frame::Error(b) => String::from_utf8_lossy(b).into(),
        Frame::Verbatim { text, .. } => String::from_utf8_lossy(text).into(),
        Frame::Integer(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

impl Net {
    fn new(n: usize) -> Self {
        let now = Instant::from_millis(1);
        let nodes = (0..n)
            .map(|i| Some(start(node_config(n, i), MemStore::new(), now).unwrap()))
            .collect();
        Self {
            nodes,
            stores: vec![MemStore::new(); n],
            now,
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            replies: BTreeMap::new(),
            duplicate: false,
            hold: BTreeSet::new(),
            held: Vec::new(),
            syncs: BTreeMap::new(),
        }
    }

    /// `n` nodes that compact their logs after 20 entries and send snapshots in 256-byte
    /// chunks, so a follower that misses a few writes catches up from a snapshot.
    fn compacting(n: usize) -> Self {
        let mut net = Self::new(n);
        for i in 0..n {
            let mut cfg = node_config(n, i);
            cfg.cluster.compaction_entries = Some(20);
            cfg.cluster.snapshot_chunk_bytes = Some(256);
            net.nodes[i] = Some(start(cfg, MemStore::new(), net.now).unwrap());
        }
        net
    }

    /// Elects a leader and cuts one follower off from both other nodes, leaving the leader a
    /// majority with the third: what the leader writes now, the follower misses.
    /// Returns (leader, the cut-off follower).
    fn cut_off_a_follower(&mut self) -> (usize, usize) {
        let leader = self.wait_leader();
        let lagging = (leader + 1) % 3;
        self.isolate(lagging);
        let other = (leader + 2) % 3;
        self.cut.remove(&(leader, other));
        self.cut.remove(&(other, leader));
        (leader, lagging)
    }

    /// Writes 60 keys through `conn` on `leader`, enough for a compacting cluster's leader to
    /// take a snapshot past index 40 (so a follower cut off before must catch up from it).
    fn write_past_a_snapshot(&mut self, leader: usize, conn: u64) {
        for i in 0..60 {
            assert_eq!(
                self.call(leader, conn, &format!("SET k{i} {i}")),
                Frame::ok()
            );
        }
        assert!(self.node(leader).raft.status().snapshot_index.0 >= 40);
    }

    fn node(&mut self, i: usize) -> &mut Node<MemStore> {
        self.nodes[i].as_mut().expect("node is up")
    }

    /// Moves every output and message until the cluster is quiet at the current instant.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            for i in 0..self.nodes.len() {
                let Some(node) = self.nodes[i].as_mut() else {
                    continue;
                };
                node.check_invariants();
                if let Some((upto, mark)) = self.syncs.remove(&i) {
                    node.store_mut().sync_through(mark);
                    let synced = Input::Synced { upto, error: None };
                    node.handle_input(self.now, synced);
                }
                while let Some(outs) = node.poll_output() {
                    for out in outs.expand_oks() {
                        match out {
                            Output::Send { to, bytes } => {
                                self.queue.push_back((i, to.0 as usize - 1, bytes));
                            }
                            Output::Reply { conn, frame, .. } => {
                                self.replies
                                    .entry((i, conn.0))
                                    .or_default()
                                    .push_back(frame);
                            }
                            Output::Close { .. } | Output::Member { .. } | Output::Oks { .. } => {}
                            Output::Sync { upto } => {
                                let mark = node.store().write_count();
                                let running = self.syncs.insert(i, (upto, mark));
                                assert!(running.is_none(), "two syncs at once");
                            }
                        }
                    }
                }
                node.check_invariants();
            }
            if self.queue.is_empty() && self.syncs.is_empty() {
                return;
            }
            for (from, to, bytes) in std::mem::take(&mut self.queue) {
                if self.cut.contains(&(from, to)) {
                    continue;
                }
                if self.hold.contains(&(from, to)) {
                    self.held.push((from, to, bytes));
                    continue;
                }
                let now = self.now;
                if let Some(node) = self.nodes[to].as_mut() {
                    let from = NodeId(from as u64 + 1);
                    let bytes = Bytes::from(bytes);
                    if self.duplicate {
                        let copy = bytes.clone();
                        node.handle_input(now, Input::Peer { from, bytes: copy });
                    }
                    node.handle_input(now, Input::Peer { from, bytes });
                    node.check_invariants();
                }
            }
        }
        panic!("the cluster never settled");
    }

    /// Advances the clock by `ms`, firing timers as they come due.
    fn advance(&mut self, ms: u64) {
        for _ in 0..ms.div_ceil(STEP_MS) {
            self.now = self.now.saturating_add(Duration::from_millis(STEP_MS));
            let now = self.now;
            for node in self.nodes.iter_mut().flatten() {
                if node.poll_timeout().is_some_and(|t| t <= now) {
                    node.handle_timeout(now);
                }
            }
            self.settle();
        }
    }

    fn leader(&self) -> Option<usize> {
        let leaders: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].as_ref().is_some_and(Node::is_leader))
            .collect();
        match leaders.as_slice() {
            [] => None,
            [one] => Some(*one),
            // Two may think they lead for a moment (an old one cut off); the newest term wins.
            many => many
                .iter()
                .copied()
                .max_by_key(|&i| self.nodes[i].as_ref().map(|n| n.raft.term())),
        }
    }

    fn wait_leader(&mut self) -> usize {
        for _ in 0..400 {
            if let Some(l) = self.leader() {
                return l;
            }
            self.advance(10);
        }
        panic!("no leader elected within 4 s");
    }

    fn connect(&mut self, i: usize, conn: u64) {
        let now = self.now;
        self.node(i).handle_input(
            now,
            Input::Connect {
                conn: ConnId(conn),
                kind: ConnKind::Tcp,
                addr: format!("client-{conn}"),
            },
        );
    }

    fn send(&mut self, i: usize, conn: u64, line: &str) {
        let now = self.now;
        let input = Input::Request {
            conn: ConnId(conn),
            args: args(line),
            wire_bytes: 1,
            unix: UnixMillis(1_700_000_000_000),
        };
        self.node(i).handle_input(now, input);
    }

    /// The next reply on (node, conn), advancing time up to `max_ms` for it.
    fn reply(&mut self, i: usize, conn: u64, max_ms: u64) -> Frame {
        self.settle();
        for _ in 0..=max_ms / STEP_MS {
            if let Some(f) = self
                .replies
                .get_mut(&(i, conn))
                .and_then(VecDeque::pop_front)
            {
                return f;
            }
            self.advance(STEP_MS);
        }
        panic!("no reply on node {i} conn {conn} within {max_ms} ms");
    }

    fn call(&mut self, i: usize, conn: u64, line: &str) -> Frame {
        self.send(i, conn, line);
        self.reply(i, conn, 5_000)
    }

    /// Cuts node `i` off from every other node, both ways.
    fn isolate(&mut self, i: usize) {
        for j in 0..self.nodes.len() {
            if j != i {
                self.cut.insert((i, j));
                self.cut.insert((j, i));
            }
        }
    }

    fn crash(&mut self, i: usize) {
        let node = self.nodes[i].take().expect("node is up");
        self.syncs.remove(&i);
        let mut store = node.store().clone();
        store.crash();
        self.stores[i] = store;
    }

    fn restart(&mut self, i: usize) {
        let n = self.nodes.len();
        let store = std::mem::take(&mut self.stores[i]);
        self.nodes[i] = Some(start(node_config(n, i), store, self.now).unwrap());
    }
}

fn bulk(s: &str) -> Frame {
    Frame::bulk(Bytes::copy_from_slice(s.as_bytes()))
}

#[test]
fn a_write_through_a_follower_is_forwarded_acknowledged_and_replicated() {
    let mut net = Net::new(3);
    let leader = net.wait_leader();
    let follower = (leader + 1) % 3;
    net.connect(follower, 1);
    assert_eq!(net.call(follower, 1, "SET a 1"), Frame::ok());
    assert_eq!(
        net.call(follower, 1, "GET a"),
        bulk("1"),
        "a linearizable read through the follower sees the write"
    );
    net.connect(leader, 2);
    assert_eq!(net.call(leader, 2, "INCR a"), Frame::Integer(2));
    // A READONLY read is served locally; the follower catches up within a heartbeat or two.
    let other = (leader + 2) % 3;
    net.connect(other, 3);
    assert_eq!(net.call(other, 3, "READONLY"), Frame::ok());
    net.advance(200);
    assert_eq!(net.call(other, 3, "GET a"), bulk("2"));
    let info = text(&net.call(follower, 1, "INFO replication"));
    assert!(info.contains("role:slave"), "{info}");
    assert!(
        info.contains(&format!("raft_leader_id:{}", leader + 1)),
        "{info}"
    );
    assert!(info.contains("master_link_status:up"), "{info}");
    let info = text(&net.call(leader, 2, "INFO replication"));
    assert!(info.contains("role:master"), "{info}");
    assert!(info.contains("connected_slaves:2"), "{info}");
}

#[test]
fn a_pipeline_on_a_follower_is_answered_in_order() {
    let mut net = Net::new(3);
    let leader = net.wait_leader();
    let f = (leader + 1) % 3;
    net.connect(f, 1);
    for line in [
        "SET k 1",
        "GET k",
        "INCR k",
        "INCR k",
        "GET k",
        "PING",
        "TS.ADD s 10 1.5",
        "TS.ADD s 20 2.5",
        "TS.RANGE s - +",
    ] {
        net.send(f, 1, line);
    }
    let got: Vec<Frame> = (0..9).map(|_| net.reply(f, 1, 5_000)).collect();
    assert_eq!(
        got[..6],
        [
            Frame::ok(),
            bulk("1"),
            Frame::Integer(2),
            Frame::Integer(3),
            bulk("3"),
            Frame::simple("PONG")
        ]
    );
    assert_eq!(got[6..8], [Frame::Integer(10), Frame::Integer(20)]);
    let Frame::Array(samples) = &got[8] else {
        panic!("{:?}", got[8])
    };
    assert_eq!(samples.len(), 2, "{samples:?}");
}

#[test]
fn without_a_leader_requests_get_clusterdown_not_silence() {
    let mut net = Net::new(3);
    net.connect(0, 1);
    let reply = net.call(0, 1, "SET a 1");
    assert!(text(&reply).starts_with("CLUSTERDOWN"), "{reply:?}");
    let reply = net.call(0, 1, "GET a");
    assert!(text(&reply).starts_with("CLUSTERDOWN"), "{reply:?}");
    assert_eq!(net.call(0, 1, "PING"), Frame::simple("PONG"));
    let info = text(&net.call(0, 1, "CLUSTER INFO"));
    assert!(info.contains("cluster_state:fail"), "{info}");
}

#[test]
fn an_isolated_leader_never_acknowledges_and_the_majority_moves_on() {
    let mut net = Net::new(3);
    let old = net.wait_leader();
    net.connect(old, 1);
    assert_eq!(net.call(old, 1, "SET a before"), Frame::ok());
    net.isolate(old);
    net.send(old, 1, "SET a lost");
    let reply = net.reply(old, 1, 5_000);
    assert!(
        text(&reply).starts_with("TIMEOUT") || text(&reply).starts_with("TRYAGAIN"),
        "an isolated leader must not acknowledge: {reply:?}"
    );
    let new = (0..3)
        .find(|&i| i != old && net.nodes[i].as_ref().is_some_and(Node::is_leader))
        .or_else(|| {
            net.advance(2_000);
            (0..3).find(|&i| i != old && net.nodes[i].as_ref().is_some_and(Node::is_leader))
        })
        .expect("the majority elects a new leader");
    let follower = 3 - old - new;
    net.connect(follower, 2);
    assert_eq!(net.call(follower, 2, "GET a"), bulk("before"));
    assert_eq!(net.call(follower, 2, "SET a after"), Frame::ok());
    net.cut.clear();
    net.advance(1_000);
    assert!(!net.node(old).is_leader(), "the old leader stepped down");
    assert_eq!(net.call(old, 1, "GET a"), bulk("after"));
}

#[test]
fn acknowledged_writes_survive_the_leader_crashing_and_it_catches_up_on_restart() {
    let mut net = Net::new(3);
    let old = net.wait_leader();
    let f = (old + 1) % 3;
    net.connect(f, 1);
    for i in 0..20 {
        assert_eq!(net.call(f, 1, &format!("SET k{i} {i}")), Frame::ok());
    }
    net.crash(old);
    net.advance(1_500);
    let new = net.wait_leader();
    assert_ne!(new, old);
    let f = 3 - old - new;
    net.connect(f, 2);
    for i in 0..20 {
        assert_eq!(net.call(f, 2, &format!("GET k{i}")), bulk(&i.to_string()));
    }
    assert_eq!(net.call(f, 2, "SET k20 20"), Frame::ok());
    net.restart(old);
    net.advance(1_000);
    net.connect(old, 3);
    assert_eq!(net.call(old, 3, "READONLY"), Frame::ok());
    assert_eq!(net.call(old, 3, "GET k20"), bulk("20"));
    assert_eq!(net.call(old, 3, "DBSIZE"), Frame::Integer(21));
}

#[test]
fn cluster_failover_hands_the_leadership_to_the_asking_follower() {
    let mut net = Net::new(3);
    let old = net.wait_leader();
    let f = (old + 1) % 3;
    net.connect(f, 1);
    net.connect(old, 2);
    let reply = net.call(old, 2, "CLUSTER FAILOVER");
    assert!(text(&reply).contains("replica"), "{reply:?}");
    assert_eq!(net.call(f, 1, "CLUSTER FAILOVER"), Frame::ok());
    net.advance(500);
    assert_eq!(net.leader(), Some(f));
    assert_eq!(net.call(f, 1, "SET x 1"), Frame::ok());
}

#[test]
fn cluster_commands_describe_one_shard() {
    let mut net = Net::new(3);
    let leader = net.wait_leader();
    net.connect(leader, 1);
    let nodes = text(&net.call(leader, 1, "CLUSTER NODES"));
    assert_eq!(nodes.lines().count(), 3, "{nodes}");
    let first = nodes.lines().next().unwrap_or_default();
    assert!(
        first.contains("myself,master") && first.ends_with("0-16383"),
        "{nodes}"
    );
    assert_eq!(nodes.matches(" slave ").count(), 2, "{nodes}");
    let myid = net.call(leader, 1, "CLUSTER MYID");
    assert_eq!(text(&myid), format!("{:040x}", leader + 1));
    let Frame::Array(slots) = net.call(leader, 1, "CLUSTER SLOTS") else {
        panic!("slots")
    };
    let Frame::Array(range) = &slots[0] else {
        panic!("{slots:?}")
    };
    assert_eq!(
        range.len(),
        2 + 3,
        "range, then the leader and its two replicas"
    );
    assert_eq!(range[1], Frame::Integer(16383));
    let info = text(&net.call(leader, 1, "CLUSTER INFO"));
    assert!(info.contains("cluster_state:ok"), "{info}");
    assert!(info.contains("cluster_known_nodes:3"), "{info}");
    assert!(info.contains("voters:1,2,3"), "{info}");
    let info = text(&net.call(leader, 1, "INFO cluster"));
    assert!(info.contains("cluster_enabled:1"), "{info}");
}

#[test]
fn bytes_that_are_not_a_peer_message_are_dropped_and_counted() {
    let mut net = Net::new(3);
    let leader = net.wait_leader();
    let now = net.now;
    for junk in [&b""[..], b"\x01garbage", b"\x09\x00\x00"] {
        let input = Input::Peer {
            from: NodeId(2),
            bytes: Bytes::copy_from_slice(junk),
        };
        net.node(leader).handle_input(now, input);
    }
    // A well-formed message claiming another sender than the link it came on.
    let spoofed = peer::encode(
        7,
        Some(b"test-secret"),
        NodeId(3),
        NodeId(leader as u64 + 1),
        PeerBody::ForwardReply {
            id: 0,
            session: 0,
            replies: Vec::new(),
        },
    );
    let from = NodeId(if leader == 1 { 1 } else { 2 });
    net.node(leader).handle_input(
        now,
        Input::Peer {
            from,
            bytes: Bytes::from(spoofed),
        },
    );
    assert_eq!(net.node(leader).stats.peer_messages_dropped, 4);
    net.connect(leader, 1);
    assert_eq!(net.call(leader, 1, "SET ok 1"), Frame::ok());
}

#[test]
fn an_oversized_write_is_refused_before_it_reaches_the_log() {
    let mut net = Net::new(3);
    let leader = net.wait_leader();
    let f = (leader + 1) % 3;
    net.connect(f, 1);
    let big = Bytes::from(vec![b'x'; peer::MAX_ENTRY_BYTES + 1]);
    let now = net.now;
    net.node(f).handle_input(
        now,
        Input::Request {
            conn: ConnId(1),
            args: vec![Bytes::from_static(b"SET"), Bytes::from_static(b"k"), big],
            wire_bytes: 1,
            unix: UnixMillis(1),
        },
    );
    let reply = net.reply(f, 1, 100);
    assert!(text(&reply).contains("exceeds the limit"), "{reply:?}");
    assert_eq!(net.call(f, 1, "EXISTS k"), Frame::Integer(0));
}

#[test]
fn cluster_config_set_replicates_series_defaults() {
    let mut net = Net::new(3);
    let leader = net.wait_leader();
    let f = (leader + 1) % 3;
    net.connect(f, 1);
    let reply = net.call(
        f,
        1,
        "CONFIG SET ts-retention-policy 60000 ts-duplicate-policy LAST",
    );
    assert_eq!(reply, Frame::ok());
    let bad = net.call(f, 1, "CONFIG SET ts-chunk-size-bytes 7");
    assert!(text(&bad).contains("multiple of 8"), "{bad:?}");
    let local = net.call(f, 1, "CONFIG SET maxclients 5");
    assert!(
        text(&local).contains("not a cluster-wide setting"),
        "{local:?}"
    );
    assert_eq!(net.call(f, 1, "TS.ADD s 1000 1"), Frame::Integer(1000));
    assert_eq!(
        net.call(f, 1, "TS.ADD s 1000 2"),
        Frame::Integer(1000),
        "LAST policy"
    );
    net.advance(200);
    for i in 0..3 {
        net.connect(i, 9);
        assert_eq!(net.call(i, 9, "READONLY"), Frame::ok());
        let Frame::Map(pairs) = net.call(i, 9, "CONFIG GET ts-*") else {
            panic!("map")
        };
        assert!(
            pairs.contains(&(Frame::text("ts-retention-policy"), Frame::text("60000"))),
            "node {i}: {pairs:?}"
        );
        let info = format!("{:?}", net.call(i, 9, "TS.INFO s"));
        assert!(info.contains("60000"), "node {i}: {info}");
    }
}

#[test]
fn a_node_joins_as_learner_is_promoted_and_nodes_can_leave() {
    let now = Instant::from_millis(1);
    let mut net = Net::new(3);
    // Node 4 knows the current members and itself, and waits to be added.
    let mut cfg = node_config(4, 3);
    cfg.cluster.joining = true;
    net.nodes
        .push(Some(start(cfg, MemStore::new(), now).unwrap()));
    net.stores.push(MemStore::new());
    let leader = net.wait_leader();
    net.connect(leader, 1);
    for i in 0..30 {
        assert_eq!(net.call(leader, 1, &format!("SET k{i} {i}")), Frame::ok());
    }
    let f = (leader + 1) % 3;
    net.connect(f, 2);
    assert_eq!(
        net.call(f, 2, "CLUSTER ADDNODE 4 127.0.0.1:7003@8003"),
        Frame::ok(),
        "forwarded to the leader"
    );
    net.advance(1_000);
    let info = text(&net.call(leader, 1, "CLUSTER INFO"));
    assert!(
        info.contains("voters:1,2,3,4"),
        "promoted once caught up: {info}"
    );
    net.connect(3, 3);
    // The new node started from a snapshot: it holds the cluster's exact membership, not one
    // rebuilt from the members it was started with.
    assert!(net.node(3).raft.status().snapshot_index.0 > 0);
    let joined = text(&net.call(3, 3, "CLUSTER INFO"));
    assert!(joined.contains("voters:1,2,3,4"), "{joined}");
    assert_eq!(net.call(3, 3, "READONLY"), Frame::ok());
    assert_eq!(net.call(3, 3, "GET k29"), bulk("29"));
    assert_eq!(net.call(3, 3, "SET via4 x"), Frame::ok());
    let again = net.call(leader, 1, "CLUSTER ADDNODE 4 127.0.0.1:7003@8003");
    assert!(text(&again).contains("already a member"), "{again:?}");
    // The leader removes itself: it steps down once the change commits.
    let me = format!("CLUSTER FORGET {}", leader + 1);
    assert_eq!(net.call(leader, 1, &me), Frame::ok());
    net.advance(2_000);
    let new = net.wait_leader();
    assert_ne!(new, leader);
    net.connect(new, 4);
    let info = text(&net.call(new, 4, "CLUSTER INFO"));
    assert!(info.contains("cluster_known_nodes:3"), "{info}");
    let voters = info
        .lines()
        .find_map(|l| l.strip_prefix("voters:"))
        .unwrap_or_default();
    assert_eq!(voters.split(',').count(), 3, "{info}");
    assert!(
        !voters.split(',').any(|v| v == (leader + 1).to_string()),
        "the old leader left: {info}"
    );
    assert_eq!(net.call(new, 4, "GET via4"), bulk("x"));
}

#[test]
fn a_duplicated_forward_runs_once() {
    let mut net = Net::new(3);
    let leader = net.wait_leader();
    net.duplicate = true;
    let f = (leader + 1) % 3;
    net.connect(f, 1);
    for i in 1..=5 {
        assert_eq!(net.call(f, 1, "INCR n"), Frame::Integer(i));
    }
    assert_eq!(net.call(f, 1, "GET n"), bulk("5"));
}

#[test]
fn a_follower_behind_the_compacted_log_catches_up_from_a_snapshot() {
    let mut net = Net::compacting(3);
    let (leader, lagging) = net.cut_off_a_follower();
    net.connect(leader, 1);
    assert_eq!(
        net.call(leader, 1, "CONFIG SET ts-duplicate-policy SUM"),
        Frame::ok()
    );
    for i in 0..100 {
        assert_eq!(net.call(leader, 1, &format!("SET k{i} {i}")), Frame::ok());
        let add = format!("TS.ADD s {} {i}", 1000 + i);
        assert_eq!(net.call(leader, 1, &add), Frame::Integer(1000 + i));
    }
    assert!(
        net.node(leader).raft.status().snapshot_index.0 >= 50,
        "the leader compacted its log"
    );
    net.cut.clear();
    net.advance(2_000);
    net.connect(lagging, 2);
    assert_eq!(net.call(lagging, 2, "READONLY"), Frame::ok());
    assert_eq!(net.call(lagging, 2, "GET k99"), bulk("99"));
    assert_eq!(net.call(lagging, 2, "DBSIZE"), Frame::Integer(101));
    let Frame::Array(samples) = net.call(lagging, 2, "TS.RANGE s - +") else {
        panic!("range")
    };
    assert_eq!(samples.len(), 100);
    // The replicated setting came with the snapshot, and the reloaded state keeps working.
    let Frame::Map(cfg) = net.call(lagging, 2, "CONFIG GET ts-duplicate-policy") else {
        panic!("config")
    };
    assert_eq!(
        cfg,
        vec![(Frame::text("ts-duplicate-policy"), Frame::text("sum"))]
    );
    assert!(net.node(lagging).raft.status().snapshot_index.0 >= 50);
    assert_eq!(net.call(lagging, 2, "READWRITE"), Frame::ok());
    assert_eq!(net.call(lagging, 2, "INCR k99"), Frame::Integer(100));
}

/// A node that joined a cluster whose log already held membership changes restarts: it
/// replays those changes over the members it was given, where the ones from before it joined
/// do not apply, and skips them as it did when they arrived. (It used to refuse to start:
/// "config entry 2 does not apply"; found by the simulator's node mode.)
#[test]
fn a_node_that_joined_after_other_changes_restarts() {
    let joining = |n: usize, i: usize| {
        let mut cfg = node_config(n, i);
        cfg.cluster.joining = true;
        cfg
    };
    let mut net = Net::new(3);
    let now = net.now;
    net.nodes
        .push(Some(start(joining(4, 3), MemStore::new(), now).unwrap()));
    net.stores.push(MemStore::new());
    let leader = net.wait_leader();
    net.connect(leader, 1);
    let add4 = net.call(leader, 1, "CLUSTER ADDNODE 4 127.0.0.1:7003@8003");
    assert_eq!(add4, Frame::ok());
    net.advance(1_000);
    // Node 5 is given the current members (1 to 4): the log's AddLearner(4) and Promote(4)
    // do not apply over them.
    let now = net.now;
    net.nodes
        .push(Some(start(joining(5, 4), MemStore::new(), now).unwrap()));
    net.stores.push(MemStore::new());
    let leader = net.wait_leader();
    net.connect(leader, 2);
    let add5 = net.call(leader, 2, "CLUSTER ADDNODE 5 127.0.0.1:7004@8004");
    assert_eq!(add5, Frame::ok());
    net.advance(1_000);
    let info = text(&net.call(leader, 2, "CLUSTER INFO"));
    assert!(info.contains("voters:1,2,3,4,5"), "{info}");
    net.crash(4);
    let store = std::mem::take(&mut net.stores[4]);
    let now = net.now;
    let restarted = start(joining(5, 4), store, now).expect("the joined node restarts");
    net.nodes[4] = Some(restarted);
    assert_eq!(net.call(leader, 2, "SET after 1"), Frame::ok());
    net.advance(500);
    net.connect(4, 3);
    let info = text(&net.call(4, 3, "CLUSTER INFO"));
    assert!(info.contains("voters:1,2,3,4,5"), "{info}");
    assert_eq!(net.call(4, 3, "READONLY"), Frame::ok());
    assert_eq!(net.call(4, 3, "GET after"), bulk("1"));
}

#[test]
fn a_forward_the_leader_never_answers_times_out_as_unknown() {
    let mut net = Net::new(3);
    let leader = net.wait_leader();
    let f = (leader + 1) % 3;
    net.connect(f, 1);
    assert_eq!(net.call(f, 1, "SET a 1"), Frame::ok());
    // The follower still knows the leader but nothing reaches it any more.
    net.cut.insert((f, leader));
    net.send(f, 1, "SET a 2");
    net.send(f, 1, "PING");
    let reply = net.reply(f, 1, 3_000);
    assert!(
        text(&reply).starts_with("TIMEOUT") && text(&reply).contains("may or may not"),
        "{reply:?}"
    );
    assert_eq!(
        net.reply(f, 1, 100),
        Frame::simple("PONG"),
        "requests behind it run"
    );
}

#[test]
fn a_reply_too_large_to_forward_is_refused_with_advice() {
    let mut net = Net::new(3);
    let leader = net.wait_leader();
    net.connect(leader, 1);
    let now = net.now;
    let big = Bytes::from(vec![b'x'; 3 << 20]);
    for key in ["a", "b", "c"] {
        let input = Input::Request {
            conn: ConnId(1),
            args: vec![Bytes::from_static(b"SET"), Bytes::from(key), big.clone()],
            wire_bytes: 1,
            unix: UnixMillis(1),
        };
        net.node(leader).handle_input(now, input);
        assert_eq!(net.reply(leader, 1, 1_000), Frame::ok());
    }
    let f = (leader + 1) % 3;
    net.connect(f, 2);
    let reply = net.call(f, 2, "MGET a b c");
    let t = text(&reply);
    assert!(t.contains("too large to forward"), "{t}");
    let size: usize = t
        .strip_prefix("ERR reply of ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_default();
    assert!(
        size > 9 << 20 && size < (9 << 20) + 100,
        "the message names the reply's real size: {t}"
    );
    assert!(t.contains("READONLY"), "{t}");
    // A forwarded read that fits still works, and READONLY serves the big one locally.
    assert_eq!(net.call(f, 2, "STRLEN a"), Frame::Integer(3 << 20));
    net.advance(200);
    assert_eq!(net.call(f, 2, "READONLY"), Frame::ok());
    let Frame::Array(values) = net.call(f, 2, "MGET a b c") else {
        panic!("mget")
    };
    assert_eq!(values.len(), 3);
}

/// The Raft message in peer bytes sent from node index `from` to `to`.
fn raft_message(from: usize, to: usize, bytes: &[u8]) -> Option<raft::Message> {
    let me = NodeId(to as u64 + 1);
    let seen = NodeId(from as u64 + 1);
    match peer::decode(bytes, 7, Some(b"test-secret"), me, seen) {
        Ok(PeerBody::Raft(msg)) => Some(msg),
        _ => None,
    }
}

impl Net {
    /// Feeds `msgs` to their nodes one after another, then drains: one drive round, as the
    /// production driver feeds every queued message before it drains.
    fn deliver_round(&mut self, msgs: Vec<(usize, usize, Vec<u8>)>) {
        let now = self.now;
        for (from, to, bytes) in msgs {
            let node = self.node(to);
            let from = NodeId(from as u64 + 1);
            node.handle_input(
                now,
                Input::Peer {
                    from,
                    bytes: Bytes::from(bytes),
                },
            );
            node.check_invariants();
        }
        self.settle();
    }

    /// Takes the first held message the predicate picks.
    fn take_held(
        &mut self,
        mut pick: impl FnMut(&raft::Message) -> bool,
    ) -> Option<(usize, usize, Vec<u8>)> {
        let i = self.held.iter().position(|(from, to, bytes)| {
            raft_message(*from, *to, bytes).is_some_and(|m| pick(&m))
        })?;
        Some(self.held.remove(i))
    }
}

/// A follower learns that entries it holds are committed and receives the last chunk of a
/// snapshot that already contains them in one drive round (the driver feeds every queued
/// message before draining: this happens when a paused node resumes or a partition heals).
/// The snapshot supersedes those entries: they must not apply again on top of it. Found by the
/// real-cluster fault suite (a counter one higher on two replicas than on the third); fed one
/// message per round, the old code passed.
#[test]
fn entries_committed_in_the_round_a_snapshot_installs_apply_once() {
    let mut net = Net::compacting(3);
    let leader = net.wait_leader();
    let f = (leader + 1) % 3;
    net.connect(leader, 1);
    assert_eq!(net.call(leader, 1, "INCR n"), Frame::Integer(1));
    net.advance(200);

    // f gets the append of the next INCR, but never the news that it committed.
    net.hold.insert((leader, f));
    assert_eq!(net.call(leader, 1, "INCR n"), Frame::Integer(2));
    let append = net
        .take_held(
            |m| matches!(m, raft::Message::AppendEntries { entries, .. } if !entries.is_empty()),
        )
        .expect("the append of the second INCR");
    net.held.clear();
    net.deliver_round(vec![append]);
    let st = net.node(f).raft.status();
    assert!(
        st.commit < st.last_index,
        "f holds an entry it does not know committed"
    );

    // The leader runs on and compacts its log past everything f has.
    for i in 3..=60 {
        assert_eq!(net.call(leader, 1, "INCR n"), Frame::Integer(i));
        net.held.retain(|(from, to, b)| {
            !matches!(
                raft_message(*from, *to, b),
                Some(raft::Message::Heartbeat { .. })
            )
        });
    }
    assert!(net.node(leader).raft.status().snapshot_index > st.last_index);

    // Walk f through every snapshot chunk but the last (and no heartbeat: its commit index
    // would apply f's entry on its own).
    let last_chunk = loop {
        net.advance(STEP_MS);
        if let Some(done) =
            net.take_held(|m| matches!(m, raft::Message::InstallSnapshot { done: true, .. }))
        {
            break done;
        }
        if let Some(chunk) = net.take_held(|m| matches!(m, raft::Message::InstallSnapshot { .. })) {
            net.deliver_round(vec![chunk]);
        }
        net.held.retain(|(from, to, b)| {
            !matches!(
                raft_message(*from, *to, b),
                Some(raft::Message::Heartbeat { .. })
            )
        });
        assert!(
            net.now.as_millis() < 60_000,
            "the snapshot never reached its last chunk"
        );
    };
    let heartbeat = loop {
        net.advance(STEP_MS);
        if let Some(hb) = net.take_held(|m| matches!(m, raft::Message::Heartbeat { .. })) {
            break hb;
        }
        assert!(net.now.as_millis() < 60_000, "no heartbeat");
    };
    // One round: the heartbeat commits f's entry, the last chunk installs the snapshot.
    net.held.clear();
    net.deliver_round(vec![heartbeat, last_chunk]);
    assert_eq!(net.node(f).snapshots_installed(), 1);

    net.hold.clear();
    net.advance(500);
    net.connect(f, 2);
    assert_eq!(net.call(f, 2, "READONLY"), Frame::ok());
    assert_eq!(
        net.call(f, 2, "GET n"),
        bulk("60"),
        "each INCR applied once on f"
    );
    assert_eq!(net.call(leader, 1, "INCR n"), Frame::Integer(61));
    net.advance(500);
    assert_eq!(net.call(f, 2, "GET n"), bulk("61"));
}

#[test]
fn a_transaction_on_a_follower_is_forwarded_as_one_entry_and_watch_holds() {
    let mut net = Net::new(3);
    let leader = net.wait_leader();
    let f = (leader + 1) % 3;
    net.connect(f, 1);
    net.connect(leader, 2);
    assert_eq!(net.call(f, 1, "SET k 1"), Frame::ok());
    net.advance(200);
    assert_eq!(net.call(f, 1, "WATCH k"), Frame::ok());
    assert_eq!(net.call(f, 1, "MULTI"), Frame::ok());
    for line in ["INCR k", "GET k", "TS.ADD s 5 1"] {
        assert_eq!(net.call(f, 1, line), Frame::simple("QUEUED"));
    }
    assert_eq!(
        net.call(f, 1, "EXEC"),
        Frame::Array(vec![Frame::Integer(2), bulk("2"), Frame::Integer(5)])
    );
    // Another client changes the watched key on the leader: the follower's EXEC aborts.
    assert_eq!(net.call(f, 1, "WATCH k"), Frame::ok());
    assert_eq!(net.call(leader, 2, "SET k 10"), Frame::ok());
    assert_eq!(net.call(f, 1, "MULTI"), Frame::ok());
    assert_eq!(net.call(f, 1, "SET k 99"), Frame::simple("QUEUED"));
    assert_eq!(
        net.call(f, 1, "EXEC"),
        Frame::Null,
        "nil (forwarded replies are RESP3)"
    );
    assert_eq!(net.call(f, 1, "GET k"), bulk("10"));
    // Every replica applied the same transactions.
    let other = (leader + 2) % 3;
    net.connect(other, 3);
    assert_eq!(net.call(other, 3, "READONLY"), Frame::ok());
    net.advance(200);
    assert_eq!(net.call(other, 3, "GET k"), bulk("10"));
    assert_eq!(
        net.call(other, 3, "TS.GET s"),
        Frame::Array(vec![Frame::Integer(5), Frame::simple("1")])
    );
}

/// Key versions are replicated state: a follower that catches up from a snapshot decides a
/// transaction's WATCH exactly as the leader did, and its own WATCH matches the leader's.
#[test]
fn watch_decides_alike_on_a_follower_that_caught_up_from_a_snapshot() {
    let mut net = Net::compacting(3);
    let (leader, lagging) = net.cut_off_a_follower();
    net.connect(leader, 1);
    assert_eq!(net.call(leader, 1, "SET w 1"), Frame::ok());
    net.write_past_a_snapshot(leader, 1);
    // The watched key was last written before the snapshot: its version travels in it.
    assert_eq!(net.call(leader, 1, "WATCH w"), Frame::ok());
    assert_eq!(net.call(leader, 1, "MULTI"), Frame::ok());
    assert_eq!(net.call(leader, 1, "SET w 2"), Frame::simple("QUEUED"));
    assert_eq!(net.call(leader, 1, "EXEC"), Frame::Array(vec![Frame::ok()]));
    net.cut.clear();
    net.advance(2_000);
    net.connect(lagging, 2);
    assert!(net.node(lagging).raft.status().snapshot_index.0 >= 40);
    assert_eq!(net.call(lagging, 2, "READONLY"), Frame::ok());
    assert_eq!(
        net.call(lagging, 2, "GET w"),
        bulk("2"),
        "the follower ran it too"
    );
    // WATCH on the caught-up follower captures the leader's versions: nothing changed, so
    // the forwarded transaction runs.
    assert_eq!(net.call(lagging, 2, "READWRITE"), Frame::ok());
    assert_eq!(net.call(lagging, 2, "WATCH w k5"), Frame::ok());
    assert_eq!(net.call(lagging, 2, "MULTI"), Frame::ok());
    assert_eq!(net.call(lagging, 2, "INCR w"), Frame::simple("QUEUED"));
    assert_eq!(
        net.call(lagging, 2, "EXEC"),
        Frame::Array(vec![Frame::Integer(3)])
    );
}

impl Net {
    /// Whether (node, conn) has no reply waiting.
    fn silent(&self, i: usize, conn: u64) -> bool {
        self.replies.get(&(i, conn)).is_none_or(VecDeque::is_empty)
    }
}

/// `net` once series `s` holds one sample (100, 1) everywhere, and the leader's index.
fn with_a_sample(mut net: Net) -> (Net, usize) {
    let leader = net.wait_leader();
    net.connect(leader, 9);
    assert_eq!(net.call(leader, 9, "TS.ADD s 100 1"), Frame::Integer(100));
    net.advance(200);
    (net, leader)
}

fn one_sample(ts: i64, v: &'static str) -> Frame {
    Frame::Array(vec![Frame::Array(vec![
        Frame::Integer(ts),
        Frame::simple(v),
    ])])
}

/// A client blocked in `TS.READ ... BLOCK` on the leader (through ReadIndex), on a follower
/// after READONLY and on a follower without it waits on its own node and wakes when the write
/// applies there, whichever node took the write; the request behind it is answered after it.
#[test]
fn blocked_ts_reads_wake_on_every_node_when_a_write_applies_there() {
    let (mut net, leader) = with_a_sample(Net::new(3));
    let (f1, f2) = ((leader + 1) % 3, (leader + 2) % 3);
    net.connect(leader, 1);
    net.connect(f1, 2);
    net.connect(f2, 3);
    assert_eq!(net.call(f1, 2, "READONLY"), Frame::ok());
    for (node, conn) in [(leader, 1), (f1, 2), (f2, 3)] {
        net.send(node, conn, "TS.READ s $ BLOCK 0 1");
        net.send(node, conn, "PING");
    }
    net.advance(3_000);
    for (node, conn) in [(leader, 1), (f1, 2), (f2, 3)] {
        assert!(
            net.silent(node, conn),
            "node {node} answered before any sample"
        );
    }
    let total: usize = (0..3).map(|i| net.node(i).blocked.len()).sum();
    assert_eq!(total, 3);
    // The write goes through a follower (forwarded to the leader).
    net.connect(f2, 8);
    assert_eq!(net.call(f2, 8, "TS.ADD s 200 2"), Frame::Integer(200));
    for (node, conn) in [(leader, 1), (f1, 2), (f2, 3)] {
        assert_eq!(
            net.reply(node, conn, 1_000),
            one_sample(200, "2"),
            "node {node}"
        );
        assert_eq!(
            net.reply(node, conn, 1_000),
            Frame::simple("PONG"),
            "node {node}"
        );
    }
    let total: usize = (0..3).map(|i| net.node(i).blocked.len()).sum();
    assert_eq!(total, 0);
}

/// A follower's blocked read times out on its own clock with what it has applied, even with
/// the leader unreachable; and a leader that cannot confirm its leadership answers the blocked
/// read with TRYAGAIN instead of holding the connection.
#[test]
fn blocked_ts_reads_time_out_or_fail_cleanly_when_the_cluster_splits() {
    let (mut net, leader) = with_a_sample(Net::new(3));
    let f = (leader + 1) % 3;
    net.connect(f, 1);
    net.connect(leader, 2);
    net.isolate(leader);
    net.send(f, 1, "TS.READ s 0 BLOCK 500 5");
    net.send(leader, 2, "TS.READ s 0 BLOCK 500 5");
    net.send(leader, 2, "PING");
    assert_eq!(net.reply(f, 1, 1_000), one_sample(100, "1"));
    let failed = net.reply(leader, 2, 10_000);
    assert!(text(&failed).starts_with("TRYAGAIN"), "{failed:?}");
    assert_eq!(net.reply(leader, 2, 1_000), Frame::simple("PONG"));
    assert_eq!(net.node(leader).blocked.len(), 0);
}

/// A follower that catches up from a snapshot (it was cut off while the leader compacted its
/// log) wakes the client blocked on it (an install moves the applied index, and the waiters
/// are checked after it as after an apply).
#[test]
fn a_blocked_ts_read_on_a_follower_wakes_when_a_snapshot_installs() {
    let (mut net, leader) = with_a_sample(Net::compacting(3));
    let f = (leader + 1) % 3;
    net.connect(f, 1);
    net.send(f, 1, "TS.READ s 101 BLOCK 0 3");
    net.settle();
    net.isolate(f);
    for ts in 101..=140 {
        let reply = net.call(leader, 9, &format!("TS.ADD s {ts} 1"));
        assert_eq!(reply, Frame::Integer(ts));
    }
    assert!(net.silent(f, 1), "cut off, the follower has nothing new");
    let before = net.node(f).snapshots_installed();
    net.cut.clear();
    let Frame::Array(rows) = net.reply(f, 1, 5_000) else {
        panic!("not an array")
    };
    assert_eq!(
        rows.len(),
        40,
        "every sample from the cursor on, from the snapshot"
    );
    assert!(
        net.node(f).snapshots_installed() > before,
        "caught up by a snapshot"
    );
}

/// Deadlines are replicated state: a follower that catches up from a snapshot holds the same
/// deadline as the leader, and the leader's active expiry then deletes the key everywhere.
#[test]
fn deadlines_travel_in_snapshots_and_expire_everywhere() {
    let mut net = Net::compacting(3);
    let (leader, lagging) = net.cut_off_a_follower();
    net.connect(leader, 1);
    assert_eq!(net.call(leader, 1, "SET d v PX 5000"), Frame::ok());
    net.write_past_a_snapshot(leader, 1);
    net.cut.clear();
    net.advance(2_000);
    net.connect(lagging, 2);
    assert!(net.node(lagging).raft.status().snapshot_index.0 >= 40);
    assert_eq!(net.call(lagging, 2, "READONLY"), Frame::ok());
    assert_eq!(
        net.call(lagging, 2, "PEXPIRETIME d"),
        Frame::Integer(1_700_000_005_000)
    );
    assert_eq!(net.call(lagging, 2, "GET d"), bulk("v"));
    // Past the deadline: the leader proposes the deletion; every node applies it.
    net.advance(5_000);
    for i in 0..3 {
        net.connect(i, 3);
        assert_eq!(net.call(i, 3, "READONLY"), Frame::ok());
        assert_eq!(net.call(i, 3, "EXISTS d"), Frame::Integer(0), "node {i}");
        assert_eq!(net.call(i, 3, "DBSIZE"), Frame::Integer(60), "node {i}");
    }
}

/// A follower restarted while the leader still owed its previous incarnation a forward's reply
/// numbers its forwards from zero again: that late reply (same id, the old session) must not
/// answer the new request. Found by seed 9337 of the node-mode sweep, where a `TS.ADD` was
/// answered `OK`: the reply to a `SET` forwarded before the restart.
#[test]
fn a_forward_reply_meant_for_an_earlier_incarnation_answers_nothing() {
    let mut net = Net::new(3);
    let leader = net.wait_leader();
    let f = (leader + 1) % 3;
    // The forward never reaches the leader, so only the replies fed below can answer it.
    net.cut.insert((f, leader));
    net.connect(f, 1);
    net.send(f, 1, "TS.ADD s 5 1");
    net.settle();
    let id = *net
        .node(f)
        .forwards
        .keys()
        .next()
        .expect("a forward in flight");
    let own = net.node(f).config.cluster.seed;
    let mut ok = Vec::new();
    encode(&Frame::ok(), Protocol::Resp3, &mut ok);
    let feed = |net: &mut Net, session: u64| {
        let bytes = peer::encode(
            7,
            Some(b"test-secret"),
            NodeId(leader as u64 + 1),
            NodeId(f as u64 + 1),
            PeerBody::ForwardReply {
                id,
                session,
                replies: vec![ok.clone()],
            },
        );
        let now = net.now;
        let from = NodeId(leader as u64 + 1);
        let input = Input::Peer {
            from,
            bytes: Bytes::from(bytes),
        };
        net.node(f).handle_input(now, input);
        net.settle();
    };
    feed(&mut net, own.wrapping_add(1));
    assert!(
        net.silent(f, 1),
        "a reply for another session answered the client"
    );
    feed(&mut net, own);
    assert_eq!(
        net.reply(f, 1, 0),
        Frame::ok(),
        "this session's reply answers it"
    );
}

#[test]
fn pipelined_a_write_through_a_follower_is_forwarded_acknowledged_and_replicated() {
    in_pipelined(a_write_through_a_follower_is_forwarded_acknowledged_and_replicated);
}

#[test]
fn pipelined_an_isolated_leader_never_acknowledges_and_the_majority_moves_on() {
    in_pipelined(an_isolated_leader_never_acknowledges_and_the_majority_moves_on);
}

#[test]
fn pipelined_acknowledged_writes_survive_the_leader_crashing_and_it_catches_up_on_restart() {
    in_pipelined(acknowledged_writes_survive_the_leader_crashing_and_it_catches_up_on_restart);
}

#[test]
fn pipelined_a_node_joins_as_learner_is_promoted_and_nodes_can_leave() {
    in_pipelined(a_node_joins_as_learner_is_promoted_and_nodes_can_leave);
}

#[test]
fn pipelined_a_follower_behind_the_compacted_log_catches_up_from_a_snapshot() {
    in_pipelined(a_follower_behind_the_compacted_log_catches_up_from_a_snapshot);
}

#[test]
fn pipelined_entries_committed_in_the_round_a_snapshot_installs_apply_once() {
    in_pipelined(entries_committed_in_the_round_a_snapshot_installs_apply_once);
}

#[test]
fn pipelined_watch_decides_alike_on_a_follower_that_caught_up_from_a_snapshot() {
    in_pipelined(watch_decides_alike_on_a_follower_that_caught_up_from_a_snapshot);
}

#[test]
fn pipelined_deadlines_travel_in_snapshots_and_expire_everywhere() {
    in_pipelined(deadlines_travel_in_snapshots_and_expire_everywhere);
}
