//! Multi-node tests on a virtual clock: a tiny in-process network that delivers messages in
//! FIFO order, with cut links and crashes. The simulator (tickdb-sim) randomizes all of this.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::*;
use crate::Instant;
use crate::store::{MemStore, Space, Store, StoreRead, WriteBatch};
use crate::test_modes::{in_pipelined, pipelined};

struct Node {
    raft: Raft,
    store: MemStore,
    applied: Vec<Entry>,
    reads: Vec<(u64, LogIndex)>,
    failed_reads: Vec<u64>,
    snapshots: Vec<LogIndex>,
    up: bool,
    /// The pipelined sync asked for and not completed: (upto, the store's write mark).
    sync_running: Option<(u64, u64)>,
}

/// A Raft node, pipelining its syncs under [`in_pipelined`]: each sync it asks for completes
/// only at its next drain (after the messages delivered meanwhile were handled and written)
/// or once the network is quiet, so its writes and promises interleave with later ones as
/// under the real driver.
fn new_raft(cfg: RaftConfig, store: &MemStore, seed: u64, now: Instant) -> Raft {
    let mut raft = Raft::new(cfg, store, seed, now).unwrap();
    if pipelined() {
        raft.pipeline_syncs();
    }
    raft
}

struct Cluster {
    nodes: BTreeMap<NodeId, Node>,
    net: VecDeque<(NodeId, NodeId, Message)>,
    cut: BTreeSet<(NodeId, NodeId)>,
    now: Instant,
    voters: BTreeSet<NodeId>,
    compact: bool,
}

fn config(id: u64, voters: &BTreeSet<NodeId>, compact: bool) -> RaftConfig {
    let mut c = RaftConfig::new(NodeId(id), voters.clone());
    if compact {
        // Small enough that tests compact and stream multi-chunk snapshots.
        c.log_compaction_threshold = 50;
        c.log_compaction_bytes = 0;
        c.snapshot_chunk_bytes = 64;
    } else {
        c.log_compaction_threshold = 0;
        c.log_compaction_bytes = 0;
        c.log_compaction_eager = false;
    }
    c
}

impl Cluster {
    fn new(n: u64) -> Self {
        Self::with_compaction(n, false)
    }

    fn with_compaction(n: u64, compact: bool) -> Self {
        let voters: BTreeSet<NodeId> = (1..=n).map(NodeId).collect();
        let mut nodes = BTreeMap::new();
        for id in 1..=n {
            let store = MemStore::new();
            let raft = new_raft(config(id, &voters, compact), &store, id, Instant::ZERO);
            nodes.insert(
                NodeId(id),
                Node {
                    raft,
                    store,
                    applied: Vec::new(),
                    reads: Vec::new(),
                    failed_reads: Vec::new(),
                    snapshots: Vec::new(),
                    up: true,
                    sync_running: None,
                },
            );
        }
        Self {
            nodes,
            net: VecDeque::new(),
            cut: BTreeSet::new(),
            now: Instant::ZERO,
            voters,
            compact,
        }
    }

    fn add_node(&mut self, id: u64) {
        let store = MemStore::new();
        let cfg = config(id, &self.voters, self.compact);
        let raft = new_raft(cfg, &store, id, self.now);
        self.nodes.insert(
            NodeId(id),
            Node {
                raft,
                store,
                applied: Vec::new(),
                reads: Vec::new(),
                failed_reads: Vec::new(),
                snapshots: Vec::new(),
                up: true,
                sync_running: None,
            },
        );
    }

    /// Flushes a node and moves its outputs onto the network and its logs. A pipelined sync
    /// asked for at an earlier drain completes first.
    fn drain(&mut self, id: NodeId) {
        let now = self.now;
        let node = self.nodes.get_mut(&id).unwrap();
        if let Some((upto, mark)) = node.sync_running.take() {
            node.store.sync_through(mark);
            node.raft.synced(upto);
        }
        node.raft.flush(&mut node.store, now).unwrap();
        while let Some(out) = node.raft.poll_output() {
            match out {
                RaftOutput::Send { to, msg } => self.net.push_back((id, to, msg)),
                RaftOutput::Apply(e) => {
                    let mut b = WriteBatch::new();
                    if let EntryKind::Normal(d) = &e.kind {
                        b.put(Space::Keys, d.clone(), e.index.0.to_be_bytes().to_vec());
                    }
                    record_applied(&mut b, e.index);
                    node.store.write(b).unwrap();
                    node.applied.push(e);
                }
                RaftOutput::ReadReady { ctx, index } => node.reads.push((ctx, index)),
                RaftOutput::ReadFailed { ctx } => node.failed_reads.push(ctx),
                RaftOutput::SnapshotInstalled { index } => node.snapshots.push(index),
                RaftOutput::LeaderChanged { .. } => {}
                RaftOutput::Sync { upto } => {
                    assert!(node.sync_running.is_none(), "two syncs at once");
                    node.sync_running = Some((upto, node.store.write_count()));
                }
            }
        }
        node.raft.check_invariants();
    }

    /// Completes the pipelined syncs running on nodes that are up; whether there were any.
    fn complete_syncs(&mut self) -> bool {
        let running: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.up && n.sync_running.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in &running {
            self.drain(*id);
        }
        !running.is_empty()
    }

    fn deliver_all(&mut self) {
        for _ in 0..100_000 {
            let Some((from, to, msg)) = self.net.pop_front() else {
                if self.complete_syncs() {
                    continue;
                }
                return;
            };
            if self.cut.contains(&(from, to)) {
                continue;
            }
            let now = self.now;
            let Some(node) = self.nodes.get_mut(&to) else {
                continue;
            };
            if !node.up || !self.nodes[&from].up {
                continue;
            }
            let node = self.nodes.get_mut(&to).unwrap();
            node.raft
                .handle_message(&mut node.store, now, from, msg)
                .unwrap();
            self.drain(to);
        }
        panic!("network did not quiesce");
    }

    /// Advances the clock to the next deadline and fires it, then delivers everything.
    fn tick(&mut self) {
        let next = self
            .nodes
            .values()
            .filter(|n| n.up)
            .filter_map(|n| n.raft.poll_timeout())
            .min()
            .unwrap();
        self.now = self.now.max(next);
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            let now = self.now;
            let node = self.nodes.get_mut(&id).unwrap();
            if node.up {
                node.raft.handle_timeout(&mut node.store, now).unwrap();
                self.drain(id);
            }
        }
        self.deliver_all();
    }

    /// Fires due timers, then delivers messages one at a time until one matching `stop` has
    /// been delivered (or the network is empty).
    fn tick_once_until(&mut self, stop: impl Fn(&Message) -> bool) {
        if self.net.is_empty() {
            let next = self
                .nodes
                .values()
                .filter(|n| n.up)
                .filter_map(|n| n.raft.poll_timeout())
                .min()
                .unwrap();
            self.now = self.now.max(next);
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                let now = self.now;
                let node = self.nodes.get_mut(&id).unwrap();
                if node.up {
                    node.raft.handle_timeout(&mut node.store, now).unwrap();
                    self.drain(id);
                }
            }
        }
        for _ in 0..100_000 {
            let Some((from, to, msg)) = self.net.pop_front() else {
                return;
            };
            if self.cut.contains(&(from, to)) || !self.nodes[&to].up || !self.nodes[&from].up {
                continue;
            }
            let hit = stop(&msg);
            let now = self.now;
            let node = self.nodes.get_mut(&to).unwrap();
            node.raft
                .handle_message(&mut node.store, now, from, msg)
                .unwrap();
            self.drain(to);
            if hit {
                return;
            }
        }
    }

    fn run_ms(&mut self, ms: u64) {
        let end = Instant::from_millis(self.now.as_millis() + ms);
        for _ in 0..100_000 {
            if self.now >= end {
                return;
            }
            self.tick();
        }
    }

    fn leaders(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.up && n.raft.role() == Role::Leader)
            .map(|(id, _)| *id)
            .collect()
    }

    fn elect(&mut self) -> NodeId {
        for _ in 0..1000 {
            let leaders = self.leaders();
            if leaders.len() == 1 {
                return leaders[0];
            }
            self.tick();
        }
        panic!("no leader elected");
    }

    fn propose(&mut self, id: NodeId, data: &[u8]) -> LogIndex {
        let now = self.now;
        let node = self.nodes.get_mut(&id).unwrap();
        let idx = node
            .raft
            .propose(&mut node.store, now, data.to_vec())
            .unwrap();
        self.drain(id);
        self.deliver_all();
        idx
    }

    fn isolate(&mut self, id: NodeId) {
        for other in self.nodes.keys().copied().collect::<Vec<_>>() {
            if other != id {
                self.cut.insert((id, other));
                self.cut.insert((other, id));
            }
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    fn crash(&mut self, id: NodeId) {
        self.nodes.get_mut(&id).unwrap().up = false;
    }

    fn restart(&mut self, id: NodeId) {
        let now = self.now;
        let cfg = config(id.0, &self.voters, self.compact);
        let node = self.nodes.get_mut(&id).unwrap();
        node.store.crash();
        node.sync_running = None;
        node.raft = new_raft(cfg, &node.store, id.0 + 100, now);
        node.applied.clear();
        node.up = true;
    }

    fn normal_data(node: &Node) -> Vec<Vec<u8>> {
        node.applied
            .iter()
            .filter_map(|e| match &e.kind {
                EntryKind::Normal(d) => Some(d.clone()),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn three_nodes_elect_one_leader_and_replicate() {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    assert_eq!(c.leaders().len(), 1);
    let idx = c.propose(leader, b"x");
    c.run_ms(300);
    for node in c.nodes.values() {
        assert_eq!(node.raft.commit_index(), idx, "node {:?}", node.raft.id());
        assert_eq!(Cluster::normal_data(node), vec![b"x".to_vec()]);
        assert_eq!(node.raft.leader(), Some(leader));
    }
}

#[test]
fn single_node_commits_with_one_sync_per_batch() {
    let mut c = Cluster::new(1);
    let leader = c.elect();
    let now = c.now;
    let node = c.nodes.get_mut(&leader).unwrap();
    let syncs = node.store.sync_count();
    for i in 0..10u8 {
        node.raft.propose(&mut node.store, now, vec![i]).unwrap();
    }
    // Nothing commits before the sync that makes the entries durable.
    assert!(node.raft.commit_index() < node.raft.last_index());
    c.drain(leader);
    let node = &c.nodes[&leader];
    assert_eq!(node.store.sync_count(), syncs + 1, "group commit: one sync");
    assert_eq!(node.raft.commit_index(), node.raft.last_index());
    assert_eq!(Cluster::normal_data(node).len(), 10);
}

/// Node 2 of two, asked by node 1 for its vote in term 1 (granted, not yet synced).
fn asked_for_a_vote(pipelined: bool) -> (MemStore, Raft, Instant, BTreeSet<NodeId>) {
    let voters: BTreeSet<NodeId> = [NodeId(1), NodeId(2)].into();
    let mut store = MemStore::new();
    let mut raft = Raft::new(config(2, &voters, false), &store, 7, Instant::ZERO).unwrap();
    if pipelined {
        raft.pipeline_syncs();
    }
    let now = Instant::from_millis(5000);
    let req = Message::RequestVote {
        term: Term(1),
        last_log_index: LogIndex(0),
        last_log_term: Term(0),
        transfer: false,
    };
    raft.handle_message(&mut store, now, NodeId(1), req)
        .unwrap();
    (store, raft, now, voters)
}

#[test]
fn vote_and_append_acks_wait_for_flush() {
    let (mut store, mut raft, now, voters) = asked_for_a_vote(false);
    let mut before = Vec::new();
    while let Some(o) = raft.poll_output() {
        before.push(o);
    }
    assert!(
        !before.iter().any(|o| matches!(o, RaftOutput::Send { .. })),
        "vote left before sync: {before:?}"
    );
    assert!(store.unsynced_batches() > 0);
    raft.flush(&mut store, now).unwrap();
    assert_eq!(store.unsynced_batches(), 0);
    let out = raft.poll_output();
    assert!(
        matches!(
            out,
            Some(RaftOutput::Send {
                msg: Message::RequestVoteResponse { granted: true, .. },
                ..
            })
        ),
        "{out:?}"
    );
    // The vote survives a crash.
    store.crash();
    let raft = Raft::new(config(2, &voters, false), &store, 7, now).unwrap();
    assert_eq!(raft.term(), Term(1));
}

#[test]
fn leader_crash_elects_new_leader_and_keeps_committed_entries() {
    let mut c = Cluster::new(5);
    let old = c.elect();
    c.propose(old, b"a");
    c.run_ms(200);
    c.crash(old);
    let new = c.elect();
    assert_ne!(new, old);
    c.propose(new, b"b");
    c.restart(old);
    c.run_ms(3000);
    for node in c.nodes.values() {
        assert_eq!(
            Cluster::normal_data(node),
            vec![b"a".to_vec(), b"b".to_vec()],
            "node {:?}",
            node.raft.id()
        );
    }
}

#[test]
fn prevote_keeps_a_returning_node_from_disrupting_the_leader() {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    let term = c.nodes[&leader].raft.term();
    let loner = *c.nodes.keys().find(|id| **id != leader).unwrap();
    c.isolate(loner);
    c.run_ms(10_000);
    // Without PreVote the loner's term would climb with every timeout.
    assert_eq!(c.nodes[&loner].raft.term(), term);
    c.heal();
    c.run_ms(3000);
    assert_eq!(c.leaders(), vec![leader]);
    assert_eq!(c.nodes[&leader].raft.term(), term);
}

#[test]
fn check_quorum_makes_an_isolated_leader_step_down() {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    c.isolate(leader);
    c.run_ms(2500);
    assert_ne!(c.nodes[&leader].raft.role(), Role::Leader);
    let others: Vec<NodeId> = c.leaders();
    assert_eq!(others.len(), 1);
    assert_ne!(others[0], leader);
}

#[test]
fn lagging_follower_catches_up_with_fast_backtracking() {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    let slow = *c.nodes.keys().find(|id| **id != leader).unwrap();
    c.isolate(slow);
    for i in 0..600u32 {
        c.propose(leader, &i.to_be_bytes());
    }
    c.heal();
    c.run_ms(2000);
    assert_eq!(
        c.nodes[&slow].raft.commit_index(),
        c.nodes[&leader].raft.commit_index()
    );
    assert_eq!(Cluster::normal_data(&c.nodes[&slow]).len(), 600);
}

#[test]
fn read_index_confirms_leadership_and_fails_on_followers() {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    let idx = c.propose(leader, b"w");
    let follower = *c.nodes.keys().find(|id| **id != leader).unwrap();
    let now = c.now;
    c.nodes.get_mut(&leader).unwrap().raft.read_index(now, 42);
    c.nodes.get_mut(&follower).unwrap().raft.read_index(now, 43);
    c.drain(leader);
    c.drain(follower);
    assert!(c.nodes[&leader].reads.is_empty(), "needs a heartbeat round");
    c.deliver_all();
    assert_eq!(c.nodes[&leader].reads, vec![(42, idx)]);
    assert_eq!(c.nodes[&follower].failed_reads, vec![43]);
    // An isolated leader cannot confirm a read; it fails when it steps down.
    c.isolate(leader);
    let now = c.now;
    c.nodes.get_mut(&leader).unwrap().raft.read_index(now, 44);
    c.drain(leader);
    c.run_ms(2500);
    assert_eq!(c.nodes[&leader].reads.len(), 1);
    assert_eq!(c.nodes[&leader].failed_reads, vec![44]);
}

#[test]
fn membership_add_learner_promote_and_remove_leader() {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    let before = c.propose(leader, b"before");
    c.add_node(4);
    let now = c.now;
    let n = c.nodes.get_mut(&leader).unwrap();
    let err = n
        .raft
        .propose_conf_change(&mut n.store, now, ConfChange::Promote(NodeId(4)));
    assert!(matches!(err, Err(ProposeError::BadConfChange(_))));
    n.raft
        .propose_conf_change(&mut n.store, now, ConfChange::AddLearner(NodeId(4)))
        .unwrap();
    let again = n
        .raft
        .propose_conf_change(&mut n.store, now, ConfChange::Remove(NodeId(2)));
    assert_eq!(again, Err(ProposeError::ConfChangeInProgress));
    c.drain(leader);
    c.deliver_all();
    c.run_ms(500);
    // A learner with an empty log starts from a snapshot (it carries the exact membership).
    let learner = &c.nodes[&NodeId(4)];
    assert!(
        learner.snapshots.iter().any(|i| *i >= before),
        "{:?}",
        learner.snapshots
    );
    assert!(learner.raft.status().applied >= before);
    assert!(
        learner.store.get(Space::Keys, b"before").unwrap().is_some(),
        "the snapshot carried the state"
    );
    let now = c.now;
    let n = c.nodes.get_mut(&leader).unwrap();
    n.raft
        .propose_conf_change(&mut n.store, now, ConfChange::Promote(NodeId(4)))
        .unwrap();
    c.drain(leader);
    c.deliver_all();
    c.run_ms(500);
    assert_eq!(c.nodes[&NodeId(4)].raft.membership().voters.len(), 4);
    let now = c.now;
    let n = c.nodes.get_mut(&leader).unwrap();
    n.raft
        .propose_conf_change(&mut n.store, now, ConfChange::Remove(leader))
        .unwrap();
    c.drain(leader);
    c.deliver_all();
    c.run_ms(500);
    assert_ne!(c.nodes[&leader].raft.role(), Role::Leader);
    c.crash(leader);
    let new = c.elect();
    assert_ne!(new, leader);
    c.propose(new, b"after");
    c.run_ms(500);
    assert_eq!(
        Cluster::normal_data(&c.nodes[&NodeId(4)]),
        vec![b"after".to_vec()],
        "entries after its snapshot arrive through the log"
    );
}

#[test]
fn leadership_transfer_hands_over_to_the_target() {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    c.propose(leader, b"x");
    let target = *c.nodes.keys().find(|id| **id != leader).unwrap();
    let now = c.now;
    let n = c.nodes.get_mut(&leader).unwrap();
    n.raft
        .transfer_leadership(&mut n.store, now, target)
        .unwrap();
    c.drain(leader);
    c.deliver_all();
    c.run_ms(300);
    assert_eq!(c.leaders(), vec![target]);
}

#[test]
fn restart_reloads_term_vote_log_and_applied() {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    c.propose(leader, b"a");
    c.run_ms(300);
    let id = *c.nodes.keys().find(|id| **id != leader).unwrap();
    let before = c.nodes[&id].raft.status();
    c.restart(id);
    let after = c.nodes[&id].raft.status();
    assert_eq!(after.term, before.term);
    assert_eq!(after.last_index, before.last_index);
    // The owner's applied index was never synced (nothing owed a sync since), so the restart
    // replays the committed entries once the leader tells it the commit index again.
    assert!(after.applied <= before.applied);
    c.run_ms(300);
    assert_eq!(Cluster::normal_data(&c.nodes[&id]), vec![b"a".to_vec()]);
    assert_eq!(c.nodes[&id].raft.status().applied, before.applied);
}

#[test]
fn config_validation_and_missing_membership() {
    let store = MemStore::new();
    let mut cfg = config(1, &BTreeSet::new(), false);
    assert!(matches!(
        Raft::new(cfg.clone(), &store, 1, Instant::ZERO),
        Err(RaftError::NoMembership)
    ));
    cfg.election_timeout_ms_max = cfg.election_timeout_ms_min;
    assert!(matches!(
        Raft::new(cfg, &store, 1, Instant::ZERO),
        Err(RaftError::BadConfig)
    ));
}

#[test]
fn compacted_leader_catches_a_follower_up_with_a_chunked_snapshot() {
    let mut c = Cluster::with_compaction(3, true);
    let leader = c.elect();
    let slow = *c.nodes.keys().find(|id| **id != leader).unwrap();
    c.isolate(slow);
    for i in 0..300u32 {
        c.propose(leader, &i.to_be_bytes());
    }
    c.run_ms(300);
    let status = c.nodes[&leader].raft.status();
    assert!(
        status.snapshot_index.0 >= 250,
        "leader compacted: {status:?}"
    );
    c.heal();
    c.run_ms(3000);
    let keys = |n: &Node| -> Vec<_> {
        n.store
            .scan(Space::Keys, b"", None, false)
            .map(|kv| kv.unwrap())
            .collect()
    };
    let slow_node = &c.nodes[&slow];
    assert_eq!(slow_node.snapshots.len(), 1, "one snapshot installed");
    assert_eq!(keys(slow_node).len(), 300);
    assert_eq!(keys(slow_node), keys(&c.nodes[&leader]));
    assert_eq!(
        slow_node.raft.commit_index(),
        c.nodes[&leader].raft.commit_index()
    );
    // A restart after the install keeps the snapshot's state and log base.
    c.restart(slow);
    assert!(c.nodes[&slow].raft.status().snapshot_index.0 >= 250);
    c.run_ms(1000);
    assert_eq!(keys(&c.nodes[&slow]), keys(&c.nodes[&leader]));
}

#[test]
fn crash_mid_snapshot_keeps_the_old_state_and_restarts_the_transfer() {
    let mut c = Cluster::with_compaction(3, true);
    let leader = c.elect();
    c.propose(leader, b"early");
    c.run_ms(300);
    let slow = *c.nodes.keys().find(|id| **id != leader).unwrap();
    c.isolate(slow);
    for i in 0..300u32 {
        c.propose(leader, &i.to_be_bytes());
    }
    c.run_ms(300);
    c.heal();
    // Deliver only a few messages: the transfer starts but does not finish.
    let mut chunks = 0;
    for _ in 0..10_000 {
        c.tick_once_until(|m| matches!(m, Message::InstallSnapshot { .. }));
        chunks += 1;
        if chunks > 3 {
            break;
        }
    }
    let before: Vec<_> = c.nodes[&slow]
        .store
        .scan(Space::Keys, b"", None, false)
        .map(|kv| kv.unwrap())
        .collect();
    assert_eq!(before.len(), 1, "old state untouched mid-transfer");
    assert!(
        snapshot::has_staging(&c.nodes[&slow].store).unwrap(),
        "the transfer must be under way"
    );
    c.restart(slow);
    c.run_ms(3000);
    let n = &c.nodes[&slow];
    assert_eq!(
        n.store.scan(Space::Keys, b"", None, false).count(),
        301,
        "transfer restarted and completed"
    );
    assert!(!snapshot::has_staging(&n.store).unwrap());
}

#[test]
fn follower_restarts_a_snapshot_transfer_on_chunk_zero_and_installs_on_done() {
    let voters: BTreeSet<NodeId> = [NodeId(1), NodeId(2)].into();
    let mut store = MemStore::new();
    let mut raft = Raft::new(config(2, &voters, false), &store, 3, Instant::ZERO).unwrap();
    let meta = SnapshotMeta {
        index: LogIndex(10),
        term: Term(1),
        membership: Membership {
            voters: voters.clone(),
            learners: BTreeSet::new(),
        },
    };
    let chunk = |chunk: u32, key: &[u8], done: bool| Message::InstallSnapshot {
        term: Term(1),
        meta: meta.clone(),
        chunk,
        data: vec![(StateSpace::Keys, key.to_vec(), b"v".to_vec())],
        done,
    };
    let now = Instant::from_millis(10);
    let mut answers = Vec::new();
    for msg in [
        chunk(0, b"a", false),
        chunk(1, b"b", false),
        chunk(0, b"a", false),
    ] {
        raft.handle_message(&mut store, now, NodeId(1), msg)
            .unwrap();
        raft.flush(&mut store, now).unwrap();
        while let Some(o) = raft.poll_output() {
            if let RaftOutput::Send {
                msg:
                    Message::InstallSnapshotResponse {
                        next_chunk, done, ..
                    },
                ..
            } = o
            {
                answers.push((next_chunk, done));
            }
        }
    }
    assert_eq!(answers, vec![(1, false), (2, false), (1, false)]);
    // The state is untouched until the last chunk.
    assert_eq!(store.scan(Space::Keys, b"", None, false).count(), 0);
    raft.handle_message(&mut store, now, NodeId(1), chunk(1, b"c", true))
        .unwrap();
    let mut installed = None;
    let mut done = false;
    raft.flush(&mut store, now).unwrap();
    while let Some(o) = raft.poll_output() {
        match o {
            RaftOutput::SnapshotInstalled { index } => installed = Some(index),
            RaftOutput::Send {
                msg: Message::InstallSnapshotResponse { done: d, .. },
                ..
            } => done = d,
            _ => {}
        }
    }
    assert_eq!(installed, Some(LogIndex(10)));
    assert!(done);
    let keys: Vec<Vec<u8>> = store
        .scan(Space::Keys, b"", None, false)
        .map(|kv| kv.unwrap().0)
        .collect();
    assert_eq!(
        keys,
        vec![b"a".to_vec(), b"c".to_vec()],
        "b was from the abandoned attempt"
    );
    assert_eq!(applied_index(&store).unwrap(), LogIndex(10));
    assert_eq!(
        store.unsynced_batches(),
        0,
        "done is only sent after the sync"
    );
    let status = raft.status();
    assert_eq!(
        (status.commit, status.snapshot_index),
        (LogIndex(10), LogIndex(10))
    );
}

#[test]
fn failure_detector_tracks_members_through_its_states() {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    c.run_ms(300);
    let states = |c: &Cluster, id: NodeId| -> Vec<PeerState> {
        c.nodes[&id].raft.peers().iter().map(|p| p.state).collect()
    };
    assert_eq!(states(&c, leader), vec![PeerState::Connected; 2]);
    let victim = *c.nodes.keys().find(|id| **id != leader).unwrap();
    c.crash(victim);
    c.run_ms(1500);
    let view = c.nodes[&leader].raft.peers();
    let p = view.iter().find(|p| p.id == victim).unwrap();
    assert_eq!(p.state, PeerState::Disconnected);
    assert!(p.voter);
    c.nodes
        .get_mut(&leader)
        .unwrap()
        .raft
        .report_peer_error(victim);
    c.nodes
        .get_mut(&leader)
        .unwrap()
        .raft
        .report_peer_error(NodeId(99));
    let view = c.nodes[&leader].raft.peers();
    assert_eq!(view.len(), 2, "non-members are not tracked");
    assert_eq!(
        view.iter().find(|p| p.id == victim).unwrap().state,
        PeerState::Error
    );
}

#[test]
fn a_few_large_entries_trigger_compaction_by_bytes() {
    let mut c = Cluster::new(3);
    for (id, node) in &mut c.nodes {
        // The count trigger stays off: only the bytes appended can compact.
        let mut cfg = config(id.0, &c.voters, false);
        cfg.log_compaction_bytes = 64 << 10;
        node.raft = new_raft(cfg, &node.store, id.0, Instant::ZERO);
    }
    let leader = c.elect();
    for i in 0..20u8 {
        c.propose(leader, &[i; 16 << 10]);
    }
    c.run_ms(300);
    let status = c.nodes[&leader].raft.status();
    assert!(
        status.snapshot_index.0 >= 4,
        "320 KiB appended, compaction every 64 KiB: {status:?}"
    );
    assert!(status.snapshot_index <= status.applied);
}

#[test]
fn eager_compaction_keeps_what_a_follower_in_contact_needs() {
    let mut c = Cluster::new(3);
    for (id, node) in &mut c.nodes {
        // Thresholds off: only eager compaction behind each durable applied index runs.
        let mut cfg = config(id.0, &c.voters, false);
        cfg.log_compaction_eager = true;
        node.raft = new_raft(cfg, &node.store, id.0, Instant::ZERO);
    }
    let leader = c.elect();
    for i in 0..10u8 {
        c.propose(leader, &[i]);
    }
    c.run_ms(300);
    let status = c.nodes[&leader].raft.status();
    assert!(
        status.snapshot_index.0 >= 9,
        "every follower has the entries, so the log behind the applied index went: {status:?}"
    );
    let slow = *c.nodes.keys().find(|id| **id != leader).unwrap();
    let slow_has = c.nodes[&slow].raft.status().last_index;
    c.isolate(slow);
    for i in 10..20u8 {
        c.propose(leader, &[i]);
    }
    let status = c.nodes[&leader].raft.status();
    assert!(
        status.applied.0 >= slow_has.0 + 10,
        "the others commit: {status:?}"
    );
    assert!(
        status.snapshot_index <= slow_has,
        "heard from within an election timeout, {slow:?} still needs the entries after {}: \
         {status:?}",
        slow_has.0
    );
    // Out of contact for longer than an election timeout: the next durable applied index
    // compacts past it, and it catches up from a snapshot.
    c.run_ms(2500);
    c.propose(leader, b"late");
    let status = c.nodes[&leader].raft.status();
    assert!(
        status.snapshot_index > slow_has,
        "compacted past the silent follower: {status:?}"
    );
    c.heal();
    c.run_ms(3000);
    assert_eq!(c.nodes[&slow].snapshots.len(), 1, "one snapshot installed");
    assert_eq!(
        c.nodes[&slow].raft.commit_index(),
        c.nodes[&leader].raft.commit_index()
    );
}

// ----- pipelined syncs -------------------------------------------------------------------------

#[test]
fn pipelined_sync_holds_every_promise_until_it_completes() {
    in_pipelined(single_node_pipelined);
}

fn single_node_pipelined() {
    let mut c = Cluster::new(1);
    let leader = c.elect();
    let now = c.now;
    let node = c.nodes.get_mut(&leader).unwrap();
    node.raft
        .propose(&mut node.store, now, b"a".to_vec())
        .unwrap();
    c.drain(leader);
    let node = c.nodes.get_mut(&leader).unwrap();
    let (upto, _) = node.sync_running.expect("the drain asked for a sync");
    assert_eq!(
        node.raft.commit_index(),
        LogIndex(1),
        "only the noop is committed"
    );
    // While the sync runs the node goes on proposing; no second sync is asked for.
    node.raft
        .propose(&mut node.store, now, b"b".to_vec())
        .unwrap();
    node.raft.flush(&mut node.store, now).unwrap();
    assert!(
        std::iter::from_fn(|| node.raft.poll_output())
            .all(|o| !matches!(o, RaftOutput::Sync { .. })),
        "a second sync while one runs"
    );
    // The sync covers "a" only ("b" was written after it was asked for): "a" commits, and
    // "b" waits for the next sync, which the same drain asks for.
    c.drain(leader);
    let node = &c.nodes[&leader];
    assert_eq!(Cluster::normal_data(node), vec![b"a".to_vec()]);
    let (next, _) = node.sync_running.expect("the next sync was asked for");
    assert!(next > upto);
    // A crash before it completes loses "b" (never acknowledged), never "a".
    c.crash(leader);
    c.restart(leader);
    let leader = c.elect();
    c.run_ms(100);
    let node = &c.nodes[&leader];
    assert_eq!(
        node.raft.last_index(),
        LogIndex(3),
        "noop, a, the new term's noop"
    );
    assert_eq!(node.raft.commit_index(), LogIndex(3));
}

#[test]
fn pipelined_sync_completion_that_was_never_asked_for_panics() {
    let result = std::panic::catch_unwind(|| {
        let voters: BTreeSet<NodeId> = [NodeId(1)].into();
        let store = MemStore::new();
        let mut raft = Raft::new(config(1, &voters, false), &store, 1, Instant::ZERO).unwrap();
        raft.pipeline_syncs();
        raft.synced(1);
    });
    assert!(result.is_err());
}

#[test]
fn pipelined_vote_and_append_acks_wait_for_their_sync() {
    let (mut store, mut raft, now, _) = asked_for_a_vote(true);
    raft.flush(&mut store, now).unwrap();
    let outs: Vec<RaftOutput> = std::iter::from_fn(|| raft.poll_output()).collect();
    let upto = outs
        .iter()
        .find_map(|o| match o {
            RaftOutput::Sync { upto } => Some(*upto),
            _ => None,
        })
        .expect("a sync asked for");
    assert!(
        !outs.iter().any(|o| matches!(o, RaftOutput::Send { .. })),
        "vote left before its sync: {outs:?}"
    );
    let mark = store.write_count();
    // An append arrives while the sync runs: its acknowledgement waits for a later sync.
    let append = Message::AppendEntries {
        term: Term(1),
        prev_index: LogIndex(0),
        prev_term: Term(0),
        entries: vec![Entry {
            term: Term(1),
            index: LogIndex(1),
            kind: EntryKind::Noop,
        }],
        commit: LogIndex(0),
    };
    raft.handle_message(&mut store, now, NodeId(1), append)
        .unwrap();
    raft.flush(&mut store, now).unwrap();
    let outs: Vec<RaftOutput> = std::iter::from_fn(|| raft.poll_output()).collect();
    assert!(
        outs.iter()
            .all(|o| matches!(o, RaftOutput::LeaderChanged { .. })),
        "only news leaves while the sync runs: {outs:?}"
    );
    store.sync_through(mark);
    raft.synced(upto);
    raft.flush(&mut store, now).unwrap();
    let outs: Vec<RaftOutput> = std::iter::from_fn(|| raft.poll_output()).collect();
    assert!(
        matches!(
            outs.first(),
            Some(RaftOutput::Send {
                msg: Message::RequestVoteResponse { granted: true, .. },
                ..
            })
        ),
        "{outs:?}"
    );
    assert!(
        !outs.iter().any(|o| matches!(
            o,
            RaftOutput::Send {
                msg: Message::AppendResponse { .. },
                ..
            }
        )),
        "the append's ack left before the sync that covers it: {outs:?}"
    );
    assert!(
        outs.iter().any(|o| matches!(o, RaftOutput::Sync { .. })),
        "the next sync is asked for: {outs:?}"
    );
    raft.check_invariants();
}

#[test]
fn pipelined_three_nodes_elect_one_leader_and_replicate() {
    in_pipelined(three_nodes_elect_one_leader_and_replicate);
}

#[test]
fn pipelined_leader_crash_elects_new_leader_and_keeps_committed_entries() {
    in_pipelined(leader_crash_elects_new_leader_and_keeps_committed_entries);
}

#[test]
fn pipelined_lagging_follower_catches_up_with_fast_backtracking() {
    in_pipelined(lagging_follower_catches_up_with_fast_backtracking);
}

#[test]
fn pipelined_read_index_confirms_leadership_and_fails_on_followers() {
    in_pipelined(read_index_confirms_leadership_and_fails_on_followers);
}

#[test]
fn pipelined_membership_add_learner_promote_and_remove_leader() {
    in_pipelined(membership_add_learner_promote_and_remove_leader);
}

#[test]
fn pipelined_compacted_leader_catches_a_follower_up_with_a_chunked_snapshot() {
    in_pipelined(compacted_leader_catches_a_follower_up_with_a_chunked_snapshot);
}

#[test]
fn pipelined_crash_mid_snapshot_keeps_the_old_state_and_restarts_the_transfer() {
    in_pipelined(crash_mid_snapshot_keeps_the_old_state_and_restarts_the_transfer);
}

#[test]
fn pipelined_eager_compaction_keeps_what_a_follower_in_contact_needs() {
    in_pipelined(eager_compaction_keeps_what_a_follower_in_contact_needs);
}
