//! Node mode: the simulator drives real [`Node`]s (the sans-IO server: RESP commands,
//! forwarding, group commit, ReadIndex, the database and the time series engine), each over a
//! crash-semantics [`SimStore`], on the same faulty network, clock drift and fault schedule as
//! raft mode ([`World`]).
//!
//! Clients hold one connection each to a random node and send one command at a time: `SET`,
//! `INCR` and `GET` on a few keys, `TS.ADD` (unique timestamps) and `TS.RANGE s - +` on a few
//! series. A reply maps to an outcome: a result, failed (`TRYAGAIN`, `CLUSTERDOWN`: not
//! executed) or unknown (`TIMEOUT`, the client's own timeout, a lost connection); after a
//! failure the client reconnects to another node. A crash drops the node without draining it
//! (outputs not yet polled are lost, and so are unsynced writes, or a torn prefix of them is
//! kept) and a restart opens a new `Node` on the same store. Membership changes go through
//! the nodes as an operator's would: a spare (a fresh id and store, started `joining`) is
//! added with `CLUSTER ADDNODE`, members (the leader too) leave with `CLUSTER FORGET`, and a
//! node whose removal committed is retired for good; the replies must be `+OK` or a
//! documented refusal.
//!
//! Checks: election safety from `INFO replication` probes; per-key linearizability of the
//! KV history; for the time series, no sample that was never sent or whose add failed, every
//! acknowledged add visible to every later `TS.RANGE`, and ranges never lose a sample an
//! earlier-completed range saw; at the end (after faults stop) a leader within
//! [`LIVENESS_BOUND_MS`], every member of the final membership applied the leader's commit
//! index, every member's `READONLY` reads equal the leader's linearizable ones, and every
//! acknowledged write is there.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::{Bytes, BytesMut};
use tickdb_core::UnixMillis;
use tickdb_core::node::peer::{self, PeerBody};
use tickdb_core::node::{ClusterConfig, ConnId, ConnKind, Input, Member, Node, NodeConfig, Output};
use tickdb_core::raft::{LogIndex, Membership, Message, NodeId, Role, applied_index};
use tickdb_core::resp::{self, Frame, Limits};
use tickdb_core::store::{ScanIter, Space, StoreError, StoreRead};

use crate::checker::{self, HistOp, Outcome, Verdict};
use crate::kv::OpKind;
use crate::sim::{Bug, LIVENESS_BOUND_MS, MAX_EVENTS, Report, SimConfig, Syncs};
use crate::store::SimStore;
use crate::world::{FaultKind, MS, World, impl_sim_event};

/// A client gives up on a request after this long (the outcome is then unknown).
/// The cluster secret every simulated node shares: exercises message authentication.
const SECRET: &[u8] = b"tickdb-sim";
const CLIENT_TIMEOUT_MS: u64 = 3_000;
/// The nodes' own bound on forwarded requests and uncommitted writes (answered `TIMEOUT`).
const REQUEST_TIMEOUT_MS: u64 = 2_000;
/// Clients issue nothing in the last this-many ms before the end, so the end state is quiet.
const CLIENT_STOP_BEFORE_END_MS: u64 = CLIENT_TIMEOUT_MS + 1_000;
/// How often the simulator asks every node `INFO replication` (election safety, liveness).
const PROBE_EVERY_MS: u64 = 100;
/// Time the final reads get to complete (the leader's need a heartbeat round).
const FINAL_READS_MS: u64 = 2_000;
/// Chance that a newly elected leader is crashed within 3 ms (before its first entries spread).
const NEW_LEADER_CRASH_PCT: u64 = 10;
const CLUSTER_ID: u64 = 0x7469_636b;
/// Chance that a membership fault sends a second command at once, to another member: the
/// cluster refuses it while the first is in progress (or applies it if the first committed).
const RECONFIG_DOUBLE_PCT: u64 = 25;
/// Time series per run (keys come from [`SimConfig::keys`]).
const SERIES: u8 = 2;
/// Connection ids at and above this are the simulator's own (probes, faults, final reads).
const ADMIN_CONN_BASE: u64 = 1 << 40;
/// The wall clock the nodes see, at simulated time zero.
const UNIX_BASE_MS: u64 = 1_700_000_000_000;
/// Chance that the driver is slow to drain a node, and how slow at most: inputs arriving
/// meanwhile pile into one batch (production feeds everything queued before it drains).
const SLOW_DRAIN_PCT: u64 = 10;
const SLOW_DRAIN_MS: u64 = 30;
/// A paused node (SIGSTOP) stays stopped this long plus up to the spread: from no effect
/// to well past an election timeout.
const PAUSE_MIN_MS: u64 = 20;
const PAUSE_SPREAD_MS: u64 = 3_000;
/// The production driver's bound on inputs fed before a drain.
const INPUT_BATCH_MAX: usize = tickdb_io::driver::INPUT_BATCH_MAX;
/// Log compaction thresholds a run draws from: small ones make lagging followers (a restart,
/// a partition, a pause) catch up from snapshots, installed while requests and appends are
/// in flight. Snapshot chunk sizes likewise: small ones spread a transfer over many messages.
const COMPACTION_ENTRIES: [u64; 4] = [8, 25, 100, 10_000];
const SNAPSHOT_CHUNK_BYTES: [u64; 3] = [200, 4096, 1 << 20];
/// Checkpoint intervals (applied entries held in memory before the state is written): a run
/// draws one from its seed (not from the world's generator, so earlier seeds replay as they
/// did). Crashes land between checkpoints, so restarts replay the log after one.
const CHECKPOINT_ENTRIES: [u64; 4] = [1, 3, 16, 4_096];
/// Most outputs one drain may produce before the run counts as a livelock.
const MAX_OUTPUTS_PER_DRAIN: usize = 1_000_000;

/// The simulator's own connections on each node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Admin {
    Probe = 0,
    Fault = 1,
    Final = 2,
    /// `CLUSTER ADDNODE` / `FORGET`: their replies are checked (see [`ReconfigCmd`]).
    Reconfig = 3,
}

/// A membership command the simulator sent, awaiting its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReconfigCmd {
    AddNode(NodeId),
    Forget(NodeId),
}

impl ReconfigCmd {
    /// The prefix of the node's own refusals of this command.
    fn refusal(self) -> &'static str {
        match self {
            Self::AddNode(_) => "ERR CLUSTER ADDNODE",
            Self::Forget(_) => "ERR CLUSTER FORGET",
        }
    }
}

fn admin_conn(node: NodeId, which: Admin) -> ConnId {
    ConnId(ADMIN_CONN_BASE + node.0 * 4 + which as u64)
}

/// One client operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Kv {
        key: u8,
        op: OpKind,
    },
    TsAdd {
        series: u8,
        ts: u64,
        value: u64,
    },
    TsRange {
        series: u8,
    },
    /// `n` BATCH_SETs to `series` at `ts`, `ts + step`, ..., each with the value `3 ts + 1`,
    /// then BATCH_FLUSH, pipelined in one packet.
    TsBatch {
        series: u8,
        ts: u64,
        n: u8,
        step: u64,
    },
}

/// The value a client writes with the sample at `ts` (a TS.ADD's or a BATCH_SET's).
fn sample_value(ts: u64) -> u64 {
    ts * 3 + 1
}

impl Op {
    /// The timestamps of a [`Op::TsBatch`]'s samples.
    fn batch_stamps(ts: u64, n: u8, step: u64) -> impl Iterator<Item = u64> {
        (0..u64::from(n)).map(move |k| ts + k * step)
    }

    /// The requests the operation sends, pipelined.
    fn requests(self) -> Vec<Vec<Bytes>> {
        let words = |w: Vec<String>| w.into_iter().map(Bytes::from).collect::<Vec<_>>();
        if let Self::TsBatch {
            series,
            ts,
            n,
            step,
        } = self
        {
            let mut out: Vec<Vec<Bytes>> = Self::batch_stamps(ts, n, step)
                .map(|t| {
                    words(vec![
                        "BATCH_SET".into(),
                        format!("s{series}"),
                        sample_value(t).to_string(),
                        t.to_string(),
                    ])
                })
                .collect();
            out.push(words(vec!["BATCH_FLUSH".into()]));
            return out;
        }
        vec![words(self.words())]
    }

    fn words(self) -> Vec<String> {
        match self {
            Self::Kv { key, op } => match op {
                OpKind::Set(v) => vec!["SET".into(), format!("k{key}"), v.to_string()],
                OpKind::Incr => vec!["INCR".into(), format!("k{key}")],
                OpKind::Get => vec!["GET".into(), format!("k{key}")],
            },
            Self::TsAdd { series, ts, value } => vec![
                "TS.ADD".into(),
                format!("s{series}"),
                ts.to_string(),
                value.to_string(),
            ],
            Self::TsRange { series } => {
                vec![
                    "TS.RANGE".into(),
                    format!("s{series}"),
                    "-".into(),
                    "+".into(),
                ]
            }
            Self::TsBatch { .. } => unreachable!("a batch is several requests"),
        }
    }
}

/// A client's pipelined requests as the endpoints hand them to the node: their RESP bytes,
/// arrived in one read, decoded into packed inputs by the decoder the server runs.
fn client_inputs(conn: ConnId, requests: &[Vec<Bytes>], unix: UnixMillis) -> Vec<Input> {
    let mut wire = Vec::new();
    for args in requests {
        let words: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
        resp::encode_request(&words, &mut wire);
    }
    let mut buf = BytesMut::from(&wire[..]);
    let mut packed = Vec::new();
    let read = resp::decode_packed_from(&mut buf, &Limits::default(), usize::MAX, &mut packed);
    assert!(
        read == Ok(requests.len()) && buf.is_empty(),
        "a client's requests decode as sent: {requests:?}"
    );
    packed
        .into_iter()
        .map(|requests| Input::Requests {
            conn,
            requests,
            unix,
        })
        .collect()
}

fn args(words: &[&str]) -> Vec<Bytes> {
    words
        .iter()
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect()
}

#[derive(Debug)]
enum Ev {
    Deliver {
        from: NodeId,
        to: NodeId,
        bytes: Vec<u8>,
    },
    Timer {
        node: NodeId,
        inc: u64,
    },
    /// The driver drains the node (group commit: inputs since the last drain share a sync).
    Drain {
        node: NodeId,
        inc: u64,
    },
    /// The pipelined sync the node asked for (`upto`) completes; it covers the store's writes
    /// up to `mark`, made before the driver took the request.
    SyncDone {
        node: NodeId,
        inc: u64,
        upto: u64,
        mark: u64,
    },
    /// A client's request reaches a node (`connect`: on a new connection).
    Request {
        client: u32,
        node: NodeId,
        conn: ConnId,
        connect: bool,
        requests: Vec<Vec<Bytes>>,
    },
    Reply {
        client: u32,
        conn: ConnId,
        frame: Frame,
    },
    /// The connection broke (`refused`: it was never established).
    ConnLost {
        client: u32,
        conn: ConnId,
        refused: bool,
    },
    ClientTimeout {
        client: u32,
        req: u64,
    },
    ClientNext {
        client: u32,
    },
    Fault,
    Restart {
        node: NodeId,
    },
    /// SIGCONT for a paused node.
    Resume {
        node: NodeId,
        inc: u64,
    },
    /// Crash a leader of `term` that was just elected.
    Crash {
        node: NodeId,
        term: u64,
    },
    Probe,
    Heal,
    End,
    FinalCheck,
}

impl_sim_event!(Ev);

struct SimNode {
    node: Option<Node<SimStore>>,
    /// The store while the node is down.
    store: Option<SimStore>,
    /// Incarnation: bumped at every crash and start, so stale timers and drains are ignored.
    inc: u64,
    drain_scheduled: bool,
    timer_at: Option<u64>,
    /// The members it is configured with (the store's membership wins once it has one).
    config_members: Vec<Member>,
    /// It was started to join a running cluster (`ClusterConfig::joining`).
    joining: bool,
    /// Removed from the cluster for good (its removal committed): stopped, its store gone,
    /// never restarted; its id is never used again.
    retired: bool,
    /// Stopped (SIGSTOP): inputs wait in `inbox`, no timer fires, nothing drains, it answers
    /// no probe; at the resume the driver feeds the inbox in batches, draining after each.
    paused: bool,
    inbox: Vec<Input>,
    /// Snapshot installs this incarnation reported so far.
    snapshots_seen: u64,
    /// The highest commit index of this incarnation checked for durability on a majority.
    durable_checked: u64,
    /// Its membership at the end of its last drain as leader (`None`: it was not leading).
    led_with: Option<Membership>,
}

impl SimNode {
    /// A node not started yet.
    fn new(store: SimStore, config_members: Vec<Member>, joining: bool) -> Self {
        Self {
            node: None,
            store: Some(store),
            inc: 0,
            drain_scheduled: false,
            timer_at: None,
            config_members,
            joining,
            retired: false,
            paused: false,
            inbox: Vec::new(),
            durable_checked: 0,
            led_with: None,
            snapshots_seen: 0,
        }
    }
}

struct Pending {
    req: u64,
    op: Op,
    invoke: u64,
    /// The `+OK`s a [`Op::TsBatch`]'s BATCH_SETs got so far.
    acks: u8,
}

struct Client {
    id: u32,
    conn: Option<(NodeId, ConnId)>,
    current: Option<Pending>,
    req: u64,
    /// Makes SET values unique per run.
    sets: i64,
    /// The last TS.ADD timestamp this client used (each is unique and increasing).
    last_ts: u64,
}

/// A TS.ADD and what its client learned.
#[derive(Clone, Copy, Debug)]
struct TsAdd {
    series: u8,
    ts: u64,
    value: u64,
    invoke: u64,
    complete: u64,
    outcome: Outcome,
}

/// A completed TS.RANGE: the samples it returned.
#[derive(Clone, Debug)]
struct TsRange {
    series: u8,
    invoke: u64,
    complete: u64,
    samples: BTreeMap<u64, u64>,
}

/// The fields of an `INFO replication` reply this simulator reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Repl {
    leader: bool,
    term: u64,
    commit: u64,
    applied: u64,
    last: u64,
}

/// The members a node's latest configuration holds (`raft_voters`, `raft_learners`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Config {
    voters: BTreeSet<NodeId>,
    learners: BTreeSet<NodeId>,
}

impl Config {
    fn members(&self) -> BTreeSet<NodeId> {
        self.voters.union(&self.learners).copied().collect()
    }
}

type Check = Result<(), String>;

/// A node's final reads: every key's value, every series' samples (timestamp -> value).
type FinalReads = (Vec<Option<i64>>, Vec<BTreeMap<u64, u64>>);

/// One node-mode run.
pub(crate) struct NodeSim {
    cfg: SimConfig,
    w: World<Ev>,
    nodes: BTreeMap<NodeId, SimNode>,
    clients: Vec<Client>,
    /// Client connections: conn -> (client, node).
    conns: BTreeMap<ConnId, (u32, NodeId)>,
    /// When the last reply scheduled on each client connection arrives: a connection's
    /// replies arrive in order, as TCP delivers them.
    reply_at: BTreeMap<ConnId, u64>,
    next_conn: u64,
    /// Replies on the simulator's own connections.
    admin: BTreeMap<ConnId, Vec<Frame>>,
    history: Vec<HistOp>,
    adds: Vec<TsAdd>,
    ranges: Vec<TsRange>,
    leaders_by_term: BTreeMap<u64, NodeId>,
    /// Terms whose leader was seen sending AppendEntries.
    new_terms: BTreeSet<u64>,
    healed: bool,
    leader_after_heal: Option<u64>,
    /// A leader crashed at this time in this term: the next leader's election is timed.
    leader_crash_at: Option<(u64, u64)>,
    /// The leader and its commit index when the final reads were sent.
    final_leader: Option<(NodeId, u64)>,
    final_sent_at: u64,
    /// The next fresh node id: a node removed from the cluster never comes back under its
    /// id, so every spare is a new id with a new store.
    next_id: u64,
    /// A started node waiting to be added (`joining`), not yet seen in a leader's membership.
    spare: Option<NodeId>,
    /// Nodes seen in some leader's membership: once one is out of a leader's committed
    /// membership it is retired.
    ever_member: BTreeSet<NodeId>,
    /// Members out of a leader's latest membership: (that leader, its term, its last index
    /// then). Once that leader's commit index reaches that index, the removal is committed.
    leaving: BTreeMap<NodeId, (NodeId, u64, u64)>,
    /// Membership commands sent on each node's reconfig connection, oldest first.
    reconfig_sent: BTreeMap<NodeId, VecDeque<ReconfigCmd>>,
    /// No new membership command before this time unless the last one was answered.
    reconfig_busy_until: u64,
    /// The members at the end (the final reads go to them).
    final_members: Vec<NodeId>,
    /// Clients that completed an operation invoked after faults stopped.
    ok_after_heal: BTreeSet<u32>,
    /// The first operation invoked after the liveness bound whose outcome is unknown.
    late_unknown: Option<(u32, Op, u64)>,
    /// This run's Raft log compaction threshold and snapshot chunk size.
    compaction_entries: u64,
    snapshot_chunk_bytes: u64,
    report: Report,
}

impl NodeSim {
    pub(crate) fn new(cfg: SimConfig) -> Self {
        let mut w = World::new(cfg.seed, cfg.faults);
        let mut nodes = BTreeMap::new();
        let mut members = Vec::new();
        for i in 1..=cfg.nodes {
            let id = NodeId(i);
            w.add_node(id);
            members.push(member(id));
            nodes.insert(
                id,
                SimNode::new(SimStore::with_bug(cfg.bug), Vec::new(), false),
            );
        }
        for n in nodes.values_mut() {
            n.config_members.clone_from(&members);
        }
        let next_id = cfg.nodes + 1;
        let compaction_entries =
            COMPACTION_ENTRIES[w.rand(COMPACTION_ENTRIES.len() as u64) as usize];
        let snapshot_chunk_bytes =
            SNAPSHOT_CHUNK_BYTES[w.rand(SNAPSHOT_CHUNK_BYTES.len() as u64) as usize];
        let clients = (0..cfg.clients)
            .map(|id| Client {
                id,
                conn: None,
                current: None,
                req: 0,
                sets: 0,
                last_ts: 0,
            })
            .collect();
        let report = Report {
            seed: cfg.seed,
            ..Report::default()
        };
        Self {
            cfg,
            w,
            nodes,
            clients,
            conns: BTreeMap::new(),
            reply_at: BTreeMap::new(),
            next_conn: 1,
            admin: BTreeMap::new(),
            history: Vec::new(),
            adds: Vec::new(),
            ranges: Vec::new(),
            leaders_by_term: BTreeMap::new(),
            new_terms: BTreeSet::new(),
            healed: false,
            leader_after_heal: None,
            leader_crash_at: None,
            final_leader: None,
            final_sent_at: 0,
            next_id,
            spare: None,
            ever_member: BTreeSet::new(),
            leaving: BTreeMap::new(),
            reconfig_sent: BTreeMap::new(),
            reconfig_busy_until: 0,
            final_members: Vec::new(),
            ok_after_heal: BTreeSet::new(),
            late_unknown: None,
            compaction_entries,
            snapshot_chunk_bytes,
            report,
        }
    }

    pub(crate) fn run(mut self) -> Report {
        if let Err(v) = self.run_inner() {
            self.report.violation = Some(v);
        }
        self.report.trace_hash = self.w.hash;
        self.report.sim_ms = self.w.now / MS;
        self.report
    }

    fn run_inner(&mut self) -> Check {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.start_node(id)?;
        }
        self.w.schedule_run(&self.cfg);
        self.w.schedule(PROBE_EVERY_MS * MS, Ev::Probe);
        for _ in 0..MAX_EVENTS {
            let ev = self.w.next_event()?;
            self.report.events += 1;
            if matches!(ev, Ev::FinalCheck) {
                return self.final_check();
            }
            self.handle(ev)?;
        }
        Err("event bound exceeded".into())
    }

    fn handle(&mut self, ev: Ev) -> Check {
        match ev {
            Ev::Deliver { from, to, bytes } => {
                let bytes = Bytes::from(bytes);
                self.feed(to, Input::Peer { from, bytes });
                Ok(())
            }
            Ev::Timer { node, inc } => {
                let now = self.w.local_now(node);
                let n = self.nodes.get_mut(&node).expect("node exists");
                if n.inc != inc {
                    return Ok(());
                }
                n.timer_at = None;
                if n.paused {
                    return Ok(()); // the resume drains and re-arms the timer
                }
                let Some(node_ref) = n.node.as_mut() else {
                    return Ok(());
                };
                node_ref.handle_timeout(now);
                node_ref.check_invariants();
                self.touch(node);
                Ok(())
            }
            Ev::Drain { node, inc } => {
                let n = self.nodes.get_mut(&node).expect("node exists");
                if n.inc != inc {
                    return Ok(());
                }
                n.drain_scheduled = false;
                if n.paused {
                    return Ok(()); // the resume drains
                }
                self.drain(node)
            }
            Ev::SyncDone {
                node,
                inc,
                upto,
                mark,
            } => {
                let n = self.nodes.get_mut(&node).expect("node exists");
                if n.inc != inc {
                    return Ok(()); // it crashed meanwhile: the sync never completed
                }
                let Some(node_ref) = n.node.as_mut() else {
                    return Ok(());
                };
                // A stopped process's fsync still completes in the kernel; the driver hears of
                // it when the process resumes.
                node_ref.store_mut().sync_through(mark);
                self.feed(node, Input::Synced { upto, error: None });
                Ok(())
            }
            Ev::Request {
                client,
                node,
                conn,
                connect,
                requests,
            } => self.request(client, node, conn, connect, requests),
            Ev::Reply {
                client,
                conn,
                frame,
            } => self.reply(client, conn, &frame),
            Ev::ConnLost {
                client,
                conn,
                refused,
            } => {
                let c = &mut self.clients[client as usize];
                if c.conn.is_some_and(|(_, cc)| cc == conn) {
                    c.conn = None;
                    let outcome = if refused {
                        Outcome::Failed
                    } else {
                        Outcome::Unknown
                    };
                    self.complete(client, outcome, None);
                }
                Ok(())
            }
            Ev::ClientTimeout { client, req } => {
                let c = &self.clients[client as usize];
                if c.current.as_ref().is_some_and(|p| p.req == req) {
                    self.complete(client, Outcome::Unknown, None);
                }
                Ok(())
            }
            Ev::ClientNext { client } => {
                self.client_next(client);
                Ok(())
            }
            Ev::Fault => self.fault(),
            Ev::Restart { node } => {
                let n = &self.nodes[&node];
                if n.node.is_none() && !n.retired {
                    self.start_node(node)?;
                }
                Ok(())
            }
            Ev::Crash { node, term } => {
                if !self.healed && self.nodes[&node].node.is_some() {
                    self.leader_crash_at = Some((self.w.now, term));
                    self.crash(node);
                }
                Ok(())
            }
            Ev::Resume { node, inc } => {
                if self.nodes[&node].inc == inc {
                    self.resume(node)?;
                }
                Ok(())
            }
            Ev::Probe => self.probe(),
            Ev::Heal => self.heal(),
            Ev::End => self.end(),
            Ev::FinalCheck => unreachable!("handled by the loop"),
        }
    }

    // ----- nodes ----------------------------------------------------------------------------

    fn node_mut(&mut self, id: NodeId) -> Option<&mut Node<SimStore>> {
        self.nodes.get_mut(&id).and_then(|n| n.node.as_mut())
    }

    /// Running: started and not paused.
    fn up(&self, id: NodeId) -> bool {
        self.nodes[&id].node.is_some() && !self.nodes[&id].paused
    }

    /// Hands `input` to node `id` as the driver does: fed now and drained a little later
    /// (with whatever else arrives meanwhile); held until the resume while it is paused;
    /// dropped while it is down.
    fn feed(&mut self, id: NodeId, input: Input) {
        let now = self.w.local_now(id);
        let n = self.nodes.get_mut(&id).expect("node exists");
        let Some(node) = n.node.as_mut() else {
            return;
        };
        if n.paused {
            n.inbox.push(input);
            return;
        }
        node.handle_input(now, input);
        node.check_invariants();
        self.touch(id);
    }

    /// SIGSTOP: the node takes no input, fires no timer, drains nothing until resumed.
    fn pause(&mut self) -> Check {
        let repls = self.repls()?;
        let up: Vec<NodeId> = repls.keys().copied().collect();
        let leader = Self::leader_of(&repls).map(|(id, _)| id);
        let Some(victim) = self.w.crash_victim(&up, leader) else {
            self.report.faults -= 1;
            return Ok(());
        };
        let n = self.nodes.get_mut(&victim).expect("node exists");
        n.paused = true;
        let inc = n.inc;
        self.report.pauses += 1;
        let at = self.w.now + PAUSE_MIN_MS * MS + self.w.rand(PAUSE_SPREAD_MS * MS);
        self.w.schedule(at, Ev::Resume { node: victim, inc });
        Ok(())
    }

    /// SIGCONT: the driver feeds everything that queued up meanwhile, a batch at a time, and
    /// drains after each batch, as `io::driver` does.
    fn resume(&mut self, id: NodeId) -> Check {
        let n = self.nodes.get_mut(&id).expect("node exists");
        if !n.paused {
            return Ok(());
        }
        n.paused = false;
        let mut inbox = std::mem::take(&mut n.inbox).into_iter().peekable();
        let now = self.w.local_now(id);
        while inbox.peek().is_some() {
            let Some(node) = self.node_mut(id) else {
                return Ok(());
            };
            // Counted as the driver counts them (packed requests one each).
            let mut fed = 0;
            while fed < INPUT_BATCH_MAX {
                let Some(input) = inbox.next() else { break };
                fed += input.count();
                node.handle_input(now, input);
                node.check_invariants();
            }
            self.drain(id)?;
        }
        self.touch(id);
        Ok(())
    }

    fn start_node(&mut self, id: NodeId) -> Check {
        let seed = self.w.next_u64();
        let now = self.w.local_now(id);
        let n = &self.nodes[&id];
        assert!(!n.retired, "a retired node is never restarted");
        let config = NodeConfig {
            node_id: format!("node-{}", id.0),
            cluster: ClusterConfig {
                id,
                cluster_id: CLUSTER_ID,
                members: n.config_members.clone(),
                seed,
                heartbeat_ms: 100,
                election_timeout_ms: (1000, 2000),
                request_timeout_ms: REQUEST_TIMEOUT_MS,
                joining: n.joining,
                // Exercises message authentication on every message.
                secret: Some(SECRET.to_vec()),
                compaction_entries: Some(self.compaction_entries),
                snapshot_chunk_bytes: Some(self.snapshot_chunk_bytes),
                checkpoint_entries: Some(
                    CHECKPOINT_ENTRIES[(self.cfg.seed % CHECKPOINT_ENTRIES.len() as u64) as usize],
                ),
                bugs: Bug::planted(self.cfg.bug),
            },
            ..NodeConfig::default()
        };
        let n = self.nodes.get_mut(&id).expect("node exists");
        let store = n.store.take().expect("a down node keeps its store");
        let mut node =
            Node::new(config, store, now).map_err(|e| format!("node {} start: {e}", id.0))?;
        if self.cfg.syncs == Syncs::Pipelined {
            node.pipeline_syncs();
        }
        for which in [Admin::Probe, Admin::Fault, Admin::Final, Admin::Reconfig] {
            let conn = admin_conn(id, which);
            let addr = format!("sim:{}", conn.0);
            let kind = ConnKind::Tcp;
            node.handle_input(now, Input::Connect { conn, kind, addr });
            self.admin.remove(&conn);
        }
        node.check_invariants();
        n.node = Some(node);
        n.inc += 1;
        n.paused = false;
        n.inbox.clear();
        n.snapshots_seen = 0;
        n.durable_checked = 0;
        n.led_with = None;
        self.reconfig_sent.remove(&id);
        n.drain_scheduled = false;
        n.timer_at = None;
        self.touch(id);
        Ok(())
    }

    /// The node took an input: the driver drains it a little later, so inputs arriving
    /// meanwhile share one sync and a crash may land before it.
    fn touch(&mut self, id: NodeId) {
        let n = &self.nodes[&id];
        if n.drain_scheduled || n.node.is_none() {
            return;
        }
        let inc = n.inc;
        // Mostly the driver drains within a couple of ms; now and then it is slow (a busy
        // core, a long sync), and many inputs pile into one batch.
        let delay = if self.w.chance(SLOW_DRAIN_PCT) {
            self.w.rand(SLOW_DRAIN_MS * MS)
        } else {
            self.w.rand(2 * MS)
        };
        let at = self.w.now + 100_000 + delay;
        self.nodes
            .get_mut(&id)
            .expect("node exists")
            .drain_scheduled = true;
        self.w.schedule(at, Ev::Drain { node: id, inc });
    }

    /// Drains the node's outputs (it syncs in there, or asks for a pipelined sync), routes
    /// them, and arms its timer.
    fn drain(&mut self, id: NodeId) -> Check {
        let mut outputs = Vec::new();
        let mut sync = None;
        let commit_before;
        let deadline = {
            let Some(node) = self.node_mut(id) else {
                return Ok(());
            };
            commit_before = node.raft_status().commit;
            while let Some(o) = node.poll_output() {
                if let Output::Sync { upto } = o {
                    // The driver marks the store as it takes the request, then goes on
                    // draining (and the node writing) while the sync runs.
                    if sync.is_some() {
                        return Err(format!("node {} asked for two syncs at once", id.0));
                    }
                    sync = Some((upto, node.store().write_count()));
                    continue;
                }
                outputs.push(o);
                if outputs.len() > MAX_OUTPUTS_PER_DRAIN {
                    return Err(format!("node {} never stops producing outputs", id.0));
                }
            }
            node.check_invariants();
            let installed = node.snapshots_installed();
            let n = self.nodes.get_mut(&id).expect("node exists");
            self.report.snapshots += installed - n.snapshots_seen;
            n.snapshots_seen = installed;
            let node = n.node.as_ref().expect("drained it");
            node.poll_timeout()
        };
        if let Some((upto, mark)) = sync {
            let inc = self.nodes[&id].inc;
            let at = self.w.now + self.w.sync_latency();
            let ev = Ev::SyncDone {
                node: id,
                inc,
                upto,
                mark,
            };
            self.w.schedule(at, ev);
        }
        if self.cfg.direct_checks {
            self.check_durable_commit(id, commit_before)?;
        }
        for o in outputs {
            self.route(id, o)?;
        }
        if let Some(d) = deadline {
            let at = self.w.global(id, d);
            let n = self.nodes.get_mut(&id).expect("node exists");
            if n.timer_at.is_none_or(|t| at < t) {
                n.timer_at = Some(at);
                let inc = n.inc;
                self.w.schedule(at, Ev::Timer { node: id, inc });
            }
        }
        Ok(())
    }

    /// Durability before promise, checked directly (as the Raft-only simulation does at each
    /// commit): whatever a leader has committed, a majority of its voters hold in what a crash
    /// right now would leave them, as that entry in their log or inside their durable state.
    /// A leader acknowledges a write only once it is committed, so this is what each
    /// acknowledgement stands on. The majority is of the voters the commit was counted
    /// among: the leader's membership now, or the one it had at the previous drain when a
    /// membership change was appended during this one (after the commit advanced). A leader
    /// elected during this drain is checked above the commit index it had before it (which it
    /// learned from an earlier leader, who counted it among the voters of its time).
    fn check_durable_commit(&mut self, id: NodeId, commit_before: LogIndex) -> Check {
        let Some(node) = self.nodes[&id].node.as_ref() else {
            return Ok(());
        };
        let st = node.raft_status();
        if st.role != Role::Leader {
            self.nodes.get_mut(&id).expect("node exists").led_with = None;
            return Ok(());
        }
        let n = &self.nodes[&id];
        let previous = n.led_with.clone();
        let checked = match previous {
            Some(_) => n.durable_checked,
            None => n.durable_checked.max(commit_before.0),
        };
        if st.commit.0 > checked {
            let key = st.commit.0.to_be_bytes();
            // An entry compacted here already was durable when that happened.
            if let Some(entry) = node
                .store()
                .get(Space::Log, &key)
                .map_err(|e| e.to_string())?
            {
                let now = self.durable_quorum(&st.membership, st.commit, &entry)?;
                let before = match &previous {
                    Some(m) if *m != st.membership => {
                        Some(self.durable_quorum(m, st.commit, &entry)?)
                    }
                    _ => None,
                };
                if let (Err(e), None | Some(Err(_))) = (&now, &before) {
                    return Err(format!(
                        "leader {} committed index {} held durably by {e}",
                        id.0, st.commit.0
                    ));
                }
            }
        }
        let n = self.nodes.get_mut(&id).expect("node exists");
        n.durable_checked = st.commit.0;
        n.led_with = Some(st.membership);
        Ok(())
    }

    /// Whether a majority of `members`' voters hold `entry` at `index` durably (in the log, or
    /// applied in the durable state); `Err` says who holds it how.
    fn durable_quorum(
        &self,
        members: &Membership,
        index: LogIndex,
        entry: &[u8],
    ) -> Result<Result<(), String>, String> {
        let key = index.0.to_be_bytes();
        let mut durable = 0;
        let mut seen = Vec::new();
        for v in &members.voters {
            let n = &self.nodes[v];
            let Some(store) = n.node.as_ref().map(Node::store).or(n.store.as_ref()) else {
                seen.push(format!("{} retired", v.0));
                continue;
            };
            let in_log = store
                .durable_get(Space::Log, &key)
                .map_err(|e| e.to_string())?
                .is_some_and(|b| b == entry);
            let applied = applied_index(&Durable(store)).map_err(|e| e.to_string())?;
            if in_log || applied >= index {
                durable += 1;
            }
            seen.push(format!(
                "{} {}",
                v.0,
                if in_log {
                    "in its durable log".to_string()
                } else {
                    format!("not (durable applied index {})", applied.0)
                }
            ));
        }
        if durable >= members.quorum() {
            Ok(Ok(()))
        } else {
            Ok(Err(format!(
                "only {durable} of {} voters: {}",
                members.voters.len(),
                seen.join(", ")
            )))
        }
    }

    /// The client learns (a client-link delay from now) that `conn` broke, or (`refused`)
    /// was never established.
    fn lose_conn(&mut self, client: u32, conn: ConnId, refused: bool) {
        let at = self.client_delay();
        let ev = Ev::ConnLost {
            client,
            conn,
            refused,
        };
        self.w.schedule(at, ev);
    }

    fn client_delay(&mut self) -> u64 {
        self.w.now + 100_000 + self.w.rand(MS)
    }

    fn route(&mut self, id: NodeId, o: Output) -> Check {
        match o {
            // Each `+OK` of the run as a reply of its own, as a client sees it: its own
            // delay, never before the reply ahead of it.
            Output::Oks { .. } => {
                for reply in o.expand_oks() {
                    self.route(id, reply)?;
                }
            }
            Output::Send { to, bytes } => {
                if !self.nodes.contains_key(&to) || to == id {
                    return Err(format!("node {} sent to unknown node {}", id.0, to.0));
                }
                let body = peer::decode(&bytes, CLUSTER_ID, Some(SECRET), to, id)
                    .map_err(|e| format!("node {} sent an undecodable message: {e}", id.0))?;
                if let PeerBody::Raft(Message::AppendEntries { term, .. }) = body {
                    self.leads(id, term.0)?;
                }
                for at in self.w.transmit(id, to) {
                    let bytes = bytes.clone();
                    self.w.schedule(
                        at,
                        Ev::Deliver {
                            from: id,
                            to,
                            bytes,
                        },
                    );
                }
            }
            Output::Reply { conn, frame, .. } => {
                if conn == admin_conn(id, Admin::Reconfig) {
                    self.reconfig_reply(id, &frame)?;
                } else if conn.0 >= ADMIN_CONN_BASE {
                    self.admin.entry(conn).or_default().push(frame);
                } else if let Some(&(client, _)) = self.conns.get(&conn) {
                    // Never before a reply sent ahead of it on the connection.
                    let after = self.reply_at.get(&conn).map_or(0, |t| t + 1);
                    let at = self.client_delay().max(after);
                    self.reply_at.insert(conn, at);
                    self.w.schedule(
                        at,
                        Ev::Reply {
                            client,
                            conn,
                            frame,
                        },
                    );
                }
            }
            Output::Close { conn } => {
                if let Some((client, _)) = self.conns.remove(&conn) {
                    self.reply_at.remove(&conn);
                    self.lose_conn(client, conn, false);
                }
            }
            // Every simulated node reaches every other: addresses do not matter here.
            Output::Member { .. } => {}
            Output::Sync { .. } => unreachable!("taken in drain"),
        }
        Ok(())
    }

    /// Sends `words` on one of the simulator's connections now and drains the node: for
    /// commands the node answers locally (INFO), the reply is then in `self.admin`.
    fn admin_call(&mut self, id: NodeId, which: Admin, words: &[&str]) -> Result<Frame, String> {
        let conn = admin_conn(id, which);
        self.admin.remove(&conn);
        self.admin_send(id, which, words);
        self.drain(id)?;
        self.admin
            .remove(&conn)
            .and_then(|mut v| v.pop())
            .ok_or_else(|| format!("node {} did not answer {words:?} at once", id.0))
    }

    fn admin_send(&mut self, id: NodeId, which: Admin, words: &[&str]) {
        let conn = admin_conn(id, which);
        for input in client_inputs(conn, &[args(words)], self.unix_now()) {
            self.feed(id, input);
        }
    }

    fn unix_now(&self) -> UnixMillis {
        UnixMillis(UNIX_BASE_MS + self.w.now / MS)
    }

    /// The text of `INFO replication` of an up node, or `None` when it is down or paused.
    fn replication_text(&mut self, id: NodeId) -> Result<Option<String>, String> {
        if !self.up(id) {
            return Ok(None);
        }
        let frame = self.admin_call(id, Admin::Probe, &["INFO", "replication"])?;
        match &frame {
            Frame::Verbatim { text, .. } | Frame::Bulk(text) => {
                Ok(Some(String::from_utf8_lossy(text).into_owned()))
            }
            other => Err(format!("node {} INFO answered {other:?}", id.0)),
        }
    }

    /// `INFO replication` of an up node.
    fn repl(&mut self, id: NodeId) -> Result<Option<Repl>, String> {
        let Some(text) = self.replication_text(id)? else {
            return Ok(None);
        };
        let num = |name: &str| -> Result<u64, String> {
            info_field(&text, id, name)?
                .parse()
                .map_err(|_| format!("node {} INFO {name} is not a number", id.0))
        };
        Ok(Some(Repl {
            leader: info_field(&text, id, "raft_role")? == "leader",
            term: num("raft_term")?,
            commit: num("raft_commit_index")?,
            applied: num("raft_applied_index")?,
            last: num("raft_last_index")?,
        }))
    }

    /// The latest membership `id` knows (`INFO replication`), or `None` when it is down.
    fn config(&mut self, id: NodeId) -> Result<Option<Config>, String> {
        let Some(text) = self.replication_text(id)? else {
            return Ok(None);
        };
        let ids = |name: &str| -> Result<BTreeSet<NodeId>, String> {
            let list = info_field(&text, id, name)?;
            list.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().map(NodeId))
                .collect::<Result<_, _>>()
                .map_err(|_| format!("node {} INFO {name} is not a list of ids: {list}", id.0))
        };
        Ok(Some(Config {
            voters: ids("raft_voters")?,
            learners: ids("raft_learners")?,
        }))
    }

    /// Every up node's replication state.
    fn repls(&mut self) -> Result<BTreeMap<NodeId, Repl>, String> {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        let mut out = BTreeMap::new();
        for id in ids {
            if let Some(r) = self.repl(id)? {
                out.insert(id, r);
            }
        }
        Ok(out)
    }

    /// The leader of the highest term among the nodes that believe they lead.
    fn leader_of(repls: &BTreeMap<NodeId, Repl>) -> Option<(NodeId, Repl)> {
        repls
            .iter()
            .filter(|(_, r)| r.leader)
            .max_by_key(|(_, r)| r.term)
            .map(|(id, r)| (*id, *r))
    }

    /// `id` sent AppendEntries in `term`, so it leads that term: election safety on every
    /// message, and a new leader may be crashed at once (before its first entries spread).
    fn leads(&mut self, id: NodeId, term: u64) -> Check {
        let prev = *self.leaders_by_term.entry(term).or_insert(id);
        if prev != id {
            return Err(format!(
                "two leaders in term {term}: {} and {}",
                prev.0, id.0
            ));
        }
        if self.new_terms.insert(term) {
            if let Some((at, t)) = self.leader_crash_at
                && term > t
            {
                self.report.election_ms.push((self.w.now - at) / MS);
                self.leader_crash_at = None;
            }
            if self.cfg.faults.crashes && !self.healed && self.w.chance(NEW_LEADER_CRASH_PCT) {
                let at = self.w.now + self.w.rand(3 * MS);
                self.w.schedule(at, Ev::Crash { node: id, term });
            }
        }
        Ok(())
    }

    /// Election safety (sampled, with the roles nodes report), the first leader after the
    /// heal.
    fn probe(&mut self) -> Check {
        let repls = self.repls()?;
        for (id, r) in &repls {
            if !r.leader {
                continue;
            }
            let prev = *self.leaders_by_term.entry(r.term).or_insert(*id);
            if prev != *id {
                return Err(format!(
                    "two leaders in term {}: {} and {}",
                    r.term, prev.0, id.0
                ));
            }
        }
        if Self::leader_of(&repls).is_some() && self.healed && self.leader_after_heal.is_none() {
            self.leader_after_heal = Some(self.w.now);
        }
        if let Some((leader, lr)) = Self::leader_of(&repls) {
            self.track_membership(leader, lr)?;
        }
        if self.final_leader.is_none() {
            self.w.schedule(self.w.now + PROBE_EVERY_MS * MS, Ev::Probe);
        }
        Ok(())
    }

    // ----- clients --------------------------------------------------------------------------

    fn client_next(&mut self, c: u32) {
        let ci = c as usize;
        let stop =
            (self.cfg.fault_ms + self.cfg.quiet_ms).saturating_sub(CLIENT_STOP_BEFORE_END_MS);
        if self.clients[ci].current.is_some() || self.w.now >= stop * MS {
            return;
        }
        let key = self.w.rand(u64::from(self.cfg.keys)) as u8;
        let series = self.w.rand(u64::from(SERIES)) as u8;
        let op = match self.w.rand(100) {
            0..=24 => Op::Kv {
                key,
                op: OpKind::Get,
            },
            25..=39 => Op::Kv {
                key,
                op: OpKind::Incr,
            },
            40..=54 => {
                let client = &mut self.clients[ci];
                client.sets += 1;
                let v = i64::from(client.id + 1) * 1_000_000_000 + client.sets;
                Op::Kv {
                    key,
                    op: OpKind::Set(v),
                }
            }
            55..=84 => {
                // Unique across clients (the low bits name the client), increasing per client.
                let clients = u64::from(self.cfg.clients);
                let batch = self.w.chance(33).then(|| 1 + self.w.rand(8) as u8);
                let client = &mut self.clients[ci];
                let ts = (self.w.now / MS * clients + u64::from(client.id))
                    .max(client.last_ts + clients);
                match batch {
                    None => {
                        client.last_ts = ts;
                        Op::TsAdd {
                            series,
                            ts,
                            value: sample_value(ts),
                        }
                    }
                    Some(n) => {
                        client.last_ts = ts + u64::from(n - 1) * clients;
                        Op::TsBatch {
                            series,
                            ts,
                            n,
                            step: clients,
                        }
                    }
                }
            }
            _ => Op::TsRange { series },
        };
        // Now and then a client moves to another node on its own.
        if self.clients[ci].conn.is_some() && self.w.chance(5) {
            self.drop_conn(c);
        }
        let (node, conn, connect) = match self.clients[ci].conn {
            Some((node, conn)) => (node, conn, false),
            None => {
                // Any node not retired: a spare once it is a member, sometimes before (then
                // it has no leader and refuses).
                let targets: Vec<NodeId> = self
                    .nodes
                    .iter()
                    .filter(|(_, n)| !n.retired)
                    .map(|(id, _)| *id)
                    .collect();
                let node = self.w.pick(&targets);
                let conn = ConnId(self.next_conn);
                self.next_conn += 1;
                self.clients[ci].conn = Some((node, conn));
                (node, conn, true)
            }
        };
        let client = &mut self.clients[ci];
        client.req += 1;
        let req = client.req;
        client.current = Some(Pending {
            req,
            op,
            invoke: self.w.now,
            acks: 0,
        });
        let at = self.client_delay();
        let requests = op.requests();
        self.w.schedule(
            at,
            Ev::Request {
                client: c,
                node,
                conn,
                connect,
                requests,
            },
        );
        self.w.schedule(
            self.w.now + CLIENT_TIMEOUT_MS * MS,
            Ev::ClientTimeout { client: c, req },
        );
    }

    fn request(
        &mut self,
        client: u32,
        node: NodeId,
        conn: ConnId,
        connect: bool,
        requests: Vec<Vec<Bytes>>,
    ) -> Check {
        let unix = self.unix_now();
        if self.nodes[&node].node.is_none() {
            if connect {
                self.lose_conn(client, conn, true);
            }
            return Ok(()); // an old connection: its loss was reported at the crash
        }
        if connect {
            self.conns.insert(conn, (client, node));
            let addr = format!("client-{client}");
            let kind = ConnKind::Tcp;
            self.feed(node, Input::Connect { conn, kind, addr });
        } else if !self.conns.contains_key(&conn) {
            return Ok(());
        }
        for input in client_inputs(conn, &requests, unix) {
            self.feed(node, input);
        }
        Ok(())
    }

    /// The client closes its connection (to reconnect elsewhere).
    fn drop_conn(&mut self, c: u32) {
        let Some((node, conn)) = self.clients[c as usize].conn.take() else {
            return;
        };
        self.reply_at.remove(&conn);
        if self.conns.remove(&conn).is_some() {
            self.feed(node, Input::Disconnect { conn });
        }
    }

    fn reply(&mut self, c: u32, conn: ConnId, frame: &Frame) -> Check {
        let client = &self.clients[c as usize];
        if client.conn.is_none_or(|(_, cc)| cc != conn) {
            return Ok(()); // for a connection the client already gave up on
        }
        let Some(p) = client.current.as_ref() else {
            return Err(format!(
                "client {c} got a reply it did not ask for: {frame:?}"
            ));
        };
        let op = p.op;
        // A batch's BATCH_SETs are each answered +OK; its BATCH_FLUSH's count completes it.
        if let Op::TsBatch { n, .. } = op
            && p.acks < n
        {
            if !matches!(frame, Frame::Simple(s) if s.as_ref() == b"OK") {
                return Err(format!("client {c} {op:?}: a BATCH_SET answered {frame:?}"));
            }
            if let Some(p) = self.clients[c as usize].current.as_mut() {
                p.acks += 1;
            }
            return Ok(());
        }
        if let Frame::Error(text) = frame {
            let text = String::from_utf8_lossy(text);
            if matches!(op, Op::TsRange { .. }) && text == "ERR TSDB: the key does not exist" {
                // No add has created the series yet: an empty range.
                self.complete(c, Outcome::Ok(None), Some(Reply::Samples(BTreeMap::new())));
                return Ok(());
            }
            let outcome = if text.starts_with("TRYAGAIN") || text.starts_with("CLUSTERDOWN") {
                Outcome::Failed
            } else if text.starts_with("TIMEOUT") {
                Outcome::Unknown
            } else {
                return Err(format!("client {c} {op:?}: unexpected error reply: {text}"));
            };
            self.complete(c, outcome, None);
            return Ok(());
        }
        let bad = || format!("client {c} {op:?}: unexpected reply {frame:?}");
        let result = match (op, frame) {
            (
                Op::Kv {
                    op: OpKind::Set(v), ..
                },
                Frame::Simple(s),
            ) if s.as_ref() == b"OK" => Reply::Value(Some(v)),
            (
                Op::Kv {
                    op: OpKind::Incr, ..
                },
                Frame::Integer(n),
            ) => Reply::Value(Some(*n)),
            (
                Op::Kv {
                    op: OpKind::Get, ..
                },
                Frame::Null,
            ) => Reply::Value(None),
            (
                Op::Kv {
                    op: OpKind::Get, ..
                },
                Frame::Bulk(b),
            ) => Reply::Value(Some(parse_int(b).ok_or_else(bad)?)),
            (Op::TsAdd { ts, .. }, Frame::Integer(n)) if u64::try_from(*n) == Ok(ts) => {
                Reply::Value(None)
            }
            (Op::TsRange { .. }, f) => Reply::Samples(parse_samples(f).ok_or_else(bad)?),
            // Every sample's timestamp is new: all of them are stored.
            (Op::TsBatch { n, .. }, Frame::Integer(k)) if *k == i64::from(n) => Reply::Value(None),
            _ => return Err(bad()),
        };
        self.complete(c, Outcome::Ok(None), Some(result));
        Ok(())
    }

    /// Records the client's current operation with its outcome and schedules its next one.
    fn complete(&mut self, c: u32, outcome: Outcome, result: Option<Reply>) {
        let ci = c as usize;
        let Some(p) = self.clients[ci].current.take() else {
            return;
        };
        match outcome {
            Outcome::Ok(_) => self.report.ops_ok += 1,
            Outcome::Failed => self.report.ops_failed += 1,
            Outcome::Unknown => self.report.ops_unknown += 1,
        }
        if !matches!(outcome, Outcome::Ok(_)) {
            self.drop_conn(c);
        }
        let now = self.w.now;
        let heal_at = self.cfg.fault_ms * MS;
        if matches!(outcome, Outcome::Ok(_)) && p.invoke >= heal_at {
            self.ok_after_heal.insert(c);
        }
        let settled = heal_at + LIVENESS_BOUND_MS * MS;
        if outcome == Outcome::Unknown && p.invoke >= settled && self.late_unknown.is_none() {
            self.late_unknown = Some((c, p.op, p.invoke));
        }
        match (p.op, result) {
            (Op::Kv { key, op }, result) => {
                let outcome = match result {
                    Some(Reply::Value(v)) => Outcome::Ok(v),
                    _ => outcome,
                };
                self.history.push(HistOp {
                    client: c,
                    key,
                    op,
                    invoke: p.invoke,
                    complete: now,
                    outcome,
                });
            }
            (Op::TsAdd { series, ts, value }, _) => self.adds.push(TsAdd {
                series,
                ts,
                value,
                invoke: p.invoke,
                complete: now,
                outcome,
            }),
            (Op::TsRange { series }, Some(Reply::Samples(samples))) => {
                self.ranges.push(TsRange {
                    series,
                    invoke: p.invoke,
                    complete: now,
                    samples,
                });
            }
            (Op::TsRange { .. }, _) => {}
            (
                Op::TsBatch {
                    series,
                    ts,
                    n,
                    step,
                },
                _,
            ) => {
                for ts in Op::batch_stamps(ts, n, step) {
                    self.adds.push(TsAdd {
                        series,
                        ts,
                        value: sample_value(ts),
                        invoke: p.invoke,
                        complete: now,
                        outcome,
                    });
                }
            }
        }
        let think = self.w.rand(50 * MS);
        self.w
            .schedule(self.w.now + think, Ev::ClientNext { client: c });
    }

    // ----- faults ---------------------------------------------------------------------------

    fn fault(&mut self) -> Check {
        if self.healed {
            return Ok(());
        }
        self.report.faults += 1;
        match self.w.roll_fault() {
            FaultKind::Crash => {
                let repls = self.repls()?;
                let up: Vec<NodeId> = repls.keys().copied().collect();
                let leader = Self::leader_of(&repls);
                if let Some(victim) = self.w.crash_victim(&up, leader.map(|(id, _)| id)) {
                    if let Some((l, r)) = leader
                        && l == victim
                    {
                        self.leader_crash_at = Some((self.w.now, r.term));
                    }
                    self.crash(victim);
                }
            }
            FaultKind::Partition => {
                let repls = self.repls()?;
                let ids: Vec<NodeId> = self
                    .nodes
                    .iter()
                    .filter(|(_, n)| !n.retired)
                    .map(|(id, _)| *id)
                    .collect();
                let leader = Self::leader_of(&repls).map(|(id, _)| id);
                self.w.partition(&ids, leader);
            }
            FaultKind::ClearPartitions | FaultKind::Network => {}
            FaultKind::Transfer => {
                // CLUSTER FAILOVER on a random follower (FORCE half the time).
                let repls = self.repls()?;
                let followers: Vec<NodeId> = repls
                    .iter()
                    .filter(|(_, r)| !r.leader)
                    .map(|(id, _)| *id)
                    .collect();
                if followers.is_empty() {
                    self.report.faults -= 1;
                } else {
                    let to = self.w.pick(&followers);
                    let words: &[&str] = if self.w.chance(50) {
                        &["CLUSTER", "FAILOVER", "FORCE"]
                    } else {
                        &["CLUSTER", "FAILOVER"]
                    };
                    self.admin_send(to, Admin::Fault, words);
                }
            }
            FaultKind::Membership => {
                if !self.membership_change()? {
                    self.report.faults -= 1;
                }
            }
            FaultKind::Pause => self.pause()?,
            FaultKind::Nothing => self.report.faults -= 1,
        }
        let next = self.w.fault_gap();
        self.w.schedule(self.w.now + next, Ev::Fault);
        Ok(())
    }

    /// Drops the node without draining it (its unpolled outputs are lost), crashes its store
    /// (unsynced writes lost, or a torn prefix kept), breaks its connections, and schedules
    /// its restart.
    fn crash(&mut self, victim: NodeId) {
        let Some(node) = self.nodes.get_mut(&victim).and_then(|n| n.node.take()) else {
            return;
        };
        let mut store = node.into_store();
        let keep = self.w.crash_keep(store.unsynced_batches());
        store.crash_keeping(keep);
        let n = self.nodes.get_mut(&victim).expect("node exists");
        n.store = Some(store);
        n.inc += 1;
        n.drain_scheduled = false;
        n.timer_at = None;
        n.paused = false;
        n.inbox.clear();
        self.reconfig_sent.remove(&victim);
        self.break_conns(victim);
        self.report.crashes += 1;
        let at = self.w.now + 200 * MS + self.w.rand(3000 * MS);
        self.w.schedule(at, Ev::Restart { node: victim });
    }

    /// The node's clients learn their connections broke.
    fn break_conns(&mut self, victim: NodeId) {
        let lost: Vec<(ConnId, u32)> = self
            .conns
            .iter()
            .filter(|(_, (_, node))| *node == victim)
            .map(|(conn, (client, _))| (*conn, *client))
            .collect();
        for (conn, client) in lost {
            self.conns.remove(&conn);
            self.reply_at.remove(&conn);
            self.lose_conn(client, conn, false);
        }
    }

    // ----- membership -----------------------------------------------------------------------

    /// The reconfig fault, driven through `CLUSTER ADDNODE` / `FORGET` like an operator would:
    /// with N members, a spare (a fresh id and store, started `joining`) is added (the leader
    /// promotes it once caught up); with more, a member (the leader a quarter of the time) is
    /// forgotten. The command goes to a random member that is up (followers forward it);
    /// now and then a second one follows at once. Returns whether a command was sent.
    fn membership_change(&mut self) -> Result<bool, String> {
        if self.w.now < self.reconfig_busy_until {
            return Ok(false);
        }
        let repls = self.repls()?;
        let Some((leader, _)) = Self::leader_of(&repls) else {
            return Ok(false);
        };
        let config = self.config(leader)?.ok_or("the leader is up")?;
        let members = config.members();
        let up: Vec<NodeId> = members
            .iter()
            .copied()
            .filter(|id| repls.contains_key(id))
            .collect();
        // A leader that removed itself is out of its own latest membership, and the rest may
        // all be down.
        if up.is_empty() {
            return Ok(false);
        }
        // With N members or fewer, add the spare (starting one if there is none); else forget.
        let add = if members.len() as u64 > self.cfg.nodes {
            None
        } else {
            Some(match self.spare {
                Some(s) => s,
                None => self.new_spare(&members)?,
            })
        };
        let all: Vec<NodeId> = members.iter().copied().collect();
        let sends = if self.w.chance(RECONFIG_DOUBLE_PCT) {
            2
        } else {
            1
        };
        for _ in 0..sends {
            let to = self.w.pick(&up);
            let cmd = match add {
                Some(spare) => ReconfigCmd::AddNode(spare),
                None if self.w.chance(25) => ReconfigCmd::Forget(leader),
                None => ReconfigCmd::Forget(self.w.pick(&all)),
            };
            self.reconfig_send(to, cmd);
        }
        Ok(true)
    }

    fn reconfig_send(&mut self, to: NodeId, cmd: ReconfigCmd) {
        let words = match cmd {
            ReconfigCmd::AddNode(id) => vec![
                "CLUSTER".to_string(),
                "ADDNODE".into(),
                id.0.to_string(),
                format!("{}@16379", client_addr(id)),
            ],
            ReconfigCmd::Forget(id) => vec!["CLUSTER".into(), "FORGET".into(), id.0.to_string()],
        };
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        self.reconfig_sent.entry(to).or_default().push_back(cmd);
        self.reconfig_busy_until = self.w.now + CLIENT_TIMEOUT_MS * MS;
        self.admin_send(to, Admin::Reconfig, &words);
    }

    /// Starts a spare: a fresh id and store, `joining` with the current members and itself.
    fn new_spare(&mut self, members: &BTreeSet<NodeId>) -> Result<NodeId, String> {
        let id = NodeId(self.next_id);
        self.next_id += 1;
        self.w.add_node(id);
        let mut config_members: Vec<Member> = members.iter().map(|m| member(*m)).collect();
        config_members.push(member(id));
        self.nodes.insert(
            id,
            SimNode::new(SimStore::with_bug(self.cfg.bug), config_members, true),
        );
        self.spare = Some(id);
        self.start_node(id)?;
        Ok(id)
    }

    /// A reply on `id`'s reconfig connection: `+OK` or a documented refusal.
    fn reconfig_reply(&mut self, id: NodeId, frame: &Frame) -> Check {
        let Some(cmd) = self
            .reconfig_sent
            .get_mut(&id)
            .and_then(VecDeque::pop_front)
        else {
            return Err(format!(
                "node {} answered a membership command never sent: {frame:?}",
                id.0
            ));
        };
        self.reconfig_busy_until = 0;
        match frame {
            Frame::Simple(s) if s.as_ref() == b"OK" => match cmd {
                ReconfigCmd::AddNode(_) => self.report.nodes_added += 1,
                ReconfigCmd::Forget(_) => self.report.nodes_forgotten += 1,
            },
            Frame::Error(e)
                if [cmd.refusal(), "TRYAGAIN", "CLUSTERDOWN", "TIMEOUT"]
                    .iter()
                    .any(|p| e.starts_with(p.as_bytes())) =>
            {
                self.report.reconfig_refused += 1;
            }
            other => {
                return Err(format!("node {} answered {cmd:?} with {other:?}", id.0));
            }
        }
        Ok(())
    }

    /// Follows the membership of `leader` (probed): a spare that shows up is no longer
    /// spare; a node out of the leader's membership is retired once that membership commits.
    fn track_membership(&mut self, leader: NodeId, lr: Repl) -> Check {
        // A deposed leader that has not heard of its successor (crashed, or cut off) still
        // reports its own, older membership as committed: a node added since is not gone.
        // Only a leader of the newest term any node has led in speaks for the cluster.
        if self
            .leaders_by_term
            .keys()
            .next_back()
            .is_some_and(|&newest| newest > lr.term)
        {
            return Ok(());
        }
        let config = self.config(leader)?.ok_or("the leader is up")?;
        let members = config.members();
        self.ever_member.extend(members.iter().copied());
        if self.spare.is_some_and(|s| members.contains(&s)) {
            self.spare = None;
        }
        let gone: Vec<NodeId> = self
            .ever_member
            .iter()
            .copied()
            .filter(|id| !members.contains(id) && !self.nodes[id].retired)
            .collect();
        self.leaving.retain(|id, _| gone.contains(id));
        for id in gone {
            match self.leaving.get(&id) {
                // The leader's log does not change within its term: its membership then was
                // at or before that index, so it is committed now.
                Some(&(l, term, last)) if l == leader && term == lr.term => {
                    if lr.commit >= last {
                        self.retire(id);
                    }
                }
                _ => {
                    self.leaving.insert(id, (leader, lr.term, lr.last));
                }
            }
        }
        Ok(())
    }

    /// Stops a node whose removal committed, for good: its store is dropped, its clients'
    /// connections break, and its id is never used again.
    fn retire(&mut self, id: NodeId) {
        self.leaving.remove(&id);
        let n = self.nodes.get_mut(&id).expect("node exists");
        n.node = None;
        n.store = None;
        n.retired = true;
        n.inc += 1;
        self.report.nodes_retired += 1;
        n.drain_scheduled = false;
        n.timer_at = None;
        self.reconfig_sent.remove(&id);
        self.break_conns(id);
    }

    fn heal(&mut self) -> Check {
        self.healed = true;
        self.w.heal_network();
        let paused: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.paused)
            .map(|(id, _)| *id)
            .collect();
        for id in paused {
            self.resume(id)?;
        }
        let down: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.node.is_none() && !n.retired)
            .map(|(id, _)| *id)
            .collect();
        for id in down {
            self.start_node(id)?;
        }
        Ok(())
    }

    // ----- the end --------------------------------------------------------------------------

    /// Liveness and convergence once the cluster has been quiet, then the final reads.
    fn end(&mut self) -> Check {
        let repls = self.repls()?;
        let Some((leader, lr)) = Self::leader_of(&repls) else {
            return Err(format!(
                "liveness: no leader {} ms after faults stopped: {repls:?}",
                self.cfg.quiet_ms
            ));
        };
        let heal_at = self.cfg.fault_ms * MS;
        let elected = self.leader_after_heal.unwrap_or(u64::MAX);
        if elected.saturating_sub(heal_at) > LIVENESS_BOUND_MS * MS {
            return Err(format!(
                "liveness: no leader within {LIVENESS_BOUND_MS} ms after faults stopped"
            ));
        }
        // Every member of the final membership (not the initial nodes) is up and converged.
        let config = self.config(leader)?.ok_or("the leader is up")?;
        // A retired node can come back as a learner: an ADDNODE for it still in flight (a
        // forward the leader runs late, its outcome already unknown to the operator) re-adds
        // its id after its removal committed. Its process and store are gone, so it never
        // catches up, is never promoted and holds nothing: a dead learner, not a member to
        // check (seed 9135: an ADDNODE sent twice, the first lost in a leader change).
        let members: Vec<NodeId> = config
            .members()
            .into_iter()
            .filter(|id| !(self.nodes[id].retired && config.learners.contains(id)))
            .collect();
        for id in &members {
            let Some(r) = repls.get(id) else {
                return Err(format!("member {} down at the end ({config:?})", id.0));
            };
            if r.applied != lr.commit || r.commit != lr.commit {
                return Err(format!(
                    "convergence: node {} at commit {} applied {}, leader {} at commit {}",
                    id.0, r.commit, r.applied, leader.0, lr.commit
                ));
            }
        }
        // Once a leader has had the bound to settle, no request may go unanswered.
        if let Some((client, op, invoke)) = self.late_unknown {
            return Err(format!(
                "liveness: client {client} {op:?} at {} ms timed out after faults stopped",
                invoke / MS
            ));
        }
        for c in &self.clients {
            if !self.ok_after_heal.contains(&c.id) {
                return Err(format!(
                    "liveness: client {} completed nothing after faults stopped",
                    c.id
                ));
            }
        }
        self.report.committed = lr.commit;
        // Final reads on every member: READONLY ones on followers, linearizable on the leader.
        self.final_members.clone_from(&members);
        for id in members {
            self.admin.remove(&admin_conn(id, Admin::Final));
            self.admin_send(id, Admin::Final, &["READONLY"]);
            for key in 0..self.cfg.keys {
                self.admin_send(id, Admin::Final, &["GET", &format!("k{key}")]);
            }
            for s in 0..SERIES {
                self.admin_send(id, Admin::Final, &["TS.RANGE", &format!("s{s}"), "-", "+"]);
            }
        }
        self.final_leader = Some((leader, lr.commit));
        self.final_sent_at = self.w.now;
        self.w
            .schedule(self.w.now + FINAL_READS_MS * MS, Ev::FinalCheck);
        Ok(())
    }

    fn final_check(&mut self) -> Check {
        let (leader, commit) = self.final_leader.expect("end ran");
        let keys = usize::from(self.cfg.keys);
        let mut finals: BTreeMap<NodeId, FinalReads> = BTreeMap::new();
        let ids = self.final_members.clone();
        for id in &ids {
            let frames = self
                .admin
                .remove(&admin_conn(*id, Admin::Final))
                .unwrap_or_default();
            if frames.len() != 1 + keys + usize::from(SERIES) {
                return Err(format!(
                    "liveness: node {} answered {} of {} final reads in {FINAL_READS_MS} ms: {frames:?}",
                    id.0,
                    frames.len(),
                    1 + keys + usize::from(SERIES)
                ));
            }
            let bad = |f: &Frame| format!("node {} final read answered {f:?}", id.0);
            let mut values = Vec::new();
            for f in &frames[1..=keys] {
                values.push(match f {
                    Frame::Null => None,
                    Frame::Bulk(b) => Some(parse_int(b).ok_or_else(|| bad(f))?),
                    other => return Err(bad(other)),
                });
            }
            let mut series = Vec::new();
            for f in &frames[1 + keys..] {
                series.push(match f {
                    Frame::Error(e) if e.as_ref() == b"ERR TSDB: the key does not exist" => {
                        BTreeMap::new()
                    }
                    f => parse_samples(f).ok_or_else(|| bad(f))?,
                });
            }
            finals.insert(*id, (values, series));
        }
        // Nothing may have committed since: the final reads all saw the same state.
        for id in &ids {
            let r = self.repl(*id)?.ok_or("node down during the final reads")?;
            if r.applied != commit {
                return Err(format!(
                    "node {} applied {} during the final reads (commit was {commit})",
                    id.0, r.applied
                ));
            }
        }
        let (lvalues, lseries) = finals[&leader].clone();
        for (id, f) in &finals {
            if f.0 != lvalues || f.1 != lseries {
                return Err(format!(
                    "convergence: node {} reads {:?} where leader {} reads {:?}",
                    id.0,
                    f,
                    leader.0,
                    (&lvalues, &lseries)
                ));
            }
        }
        // The leader's final reads are linearizable: part of the history, after everything.
        for (key, v) in lvalues.iter().enumerate() {
            self.history.push(HistOp {
                client: u32::MAX,
                key: key as u8,
                op: OpKind::Get,
                invoke: self.final_sent_at,
                complete: self.w.now,
                outcome: Outcome::Ok(*v),
            });
        }
        for (s, samples) in lseries.into_iter().enumerate() {
            self.ranges.push(TsRange {
                series: s as u8,
                invoke: self.final_sent_at,
                complete: self.w.now,
                samples,
            });
        }
        check_series(&self.adds, &self.ranges)?;
        match checker::check(&self.history) {
            Verdict::Linearizable => Ok(()),
            Verdict::Inconclusive => {
                self.report.inconclusive = true;
                Ok(())
            }
            Verdict::Violation { key, detail } => {
                Err(format!("history not linearizable for key k{key}: {detail}"))
            }
        }
    }
}

/// Where clients reach node `id` (the simulator ignores addresses: every node reaches every
/// other).
fn client_addr(id: NodeId) -> String {
    format!("10.0.0.{}:6379", id.0)
}

fn member(id: NodeId) -> Member {
    Member {
        id,
        client_addr: client_addr(id),
        cluster_port: 16379,
    }
}

/// What a successful reply carried.
enum Reply {
    /// SET, INCR, GET: the value after the operation; TS.ADD: nothing.
    Value(Option<i64>),
    /// TS.RANGE: timestamp -> value.
    Samples(BTreeMap<u64, u64>),
}

fn parse_int(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// A TS.RANGE reply: `[[ts, value], ...]` with integral values (RESP2 strings or doubles).
fn parse_samples(f: &Frame) -> Option<BTreeMap<u64, u64>> {
    let Frame::Array(items) = f else {
        return None;
    };
    let mut out = BTreeMap::new();
    for item in items {
        let Frame::Array(pair) = item else {
            return None;
        };
        let [Frame::Integer(ts), value] = pair.as_slice() else {
            return None;
        };
        let v: f64 = match value {
            Frame::Double(d) => *d,
            Frame::Bulk(b) | Frame::Simple(b) => std::str::from_utf8(b).ok()?.parse().ok()?,
            _ => return None,
        };
        if v.fract() != 0.0 || v < 0.0 {
            return None;
        }
        out.insert(u64::try_from(*ts).ok()?, v as u64);
    }
    Some(out)
}

/// The time series checks over the whole history (the final ranges included):
/// - every sample was sent by a TS.ADD that did not fail, with that value, and invoked before
///   the range completed;
/// - a range contains every sample of every range that completed before it was invoked, and
///   every acknowledged add that completed before it was invoked (linearizable reads; the
///   final ranges thus hold every acknowledged add).
fn check_series(adds: &[TsAdd], ranges: &[TsRange]) -> Check {
    let sent: BTreeMap<(u8, u64), &TsAdd> = adds.iter().map(|a| ((a.series, a.ts), a)).collect();
    for r in ranges {
        for (&ts, &v) in &r.samples {
            let Some(a) = sent.get(&(r.series, ts)) else {
                return Err(format!(
                    "TS.RANGE s{} at {} ms returned ts {ts}, which no client sent",
                    r.series,
                    r.complete / MS
                ));
            };
            if a.value != v || a.outcome == Outcome::Failed || a.invoke > r.complete {
                return Err(format!(
                    "TS.RANGE s{} [{} ms .. {} ms] returned ({ts}, {v}) from {a:?}",
                    r.series,
                    r.invoke / MS,
                    r.complete / MS
                ));
            }
        }
    }
    for series in 0..SERIES {
        // (completion time, sample) of everything a later range must contain.
        let mut known: Vec<(u64, u64, &str)> = adds
            .iter()
            .filter(|a| a.series == series && matches!(a.outcome, Outcome::Ok(_)))
            .map(|a| (a.complete, a.ts, "acknowledged add"))
            .collect();
        for r in ranges.iter().filter(|r| r.series == series) {
            known.extend(
                r.samples
                    .keys()
                    .map(|ts| (r.complete, *ts, "earlier range")),
            );
        }
        known.sort_unstable();
        let mut rs: Vec<&TsRange> = ranges.iter().filter(|r| r.series == series).collect();
        rs.sort_by_key(|r| r.invoke);
        let mut must: BTreeMap<u64, (u64, &str)> = BTreeMap::new();
        let mut next = 0;
        for r in rs {
            while let Some(&(at, ts, why)) = known.get(next)
                && at < r.invoke
            {
                must.entry(ts).or_insert((at, why));
                next += 1;
            }
            if let Some((ts, (at, why))) = must.iter().find(|(ts, _)| !r.samples.contains_key(ts)) {
                return Err(format!(
                    "TS.RANGE s{series} [{} ms .. {} ms] lacks ts {ts}, seen by an {why} \
                     completed at {} ms",
                    r.invoke / MS,
                    r.complete / MS,
                    at / MS
                ));
            }
        }
    }
    Ok(())
}

/// The value of `name` in an INFO text of node `id`.
fn info_field<'t>(text: &'t str, id: NodeId, name: &str) -> Result<&'t str, String> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
        .ok_or_else(|| format!("node {} INFO lacks {name}", id.0))
}

/// What a crash right now would leave in a store, for point reads.
struct Durable<'a>(&'a SimStore);

impl StoreRead for Durable<'_> {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.durable_get(space, key)
    }

    fn scan(&self, _: Space, _: &[u8], _: Option<&[u8]>, _: bool) -> ScanIter<'_> {
        unimplemented!("the durable view serves point reads only")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(ts: u64, invoke: u64, complete: u64, outcome: Outcome) -> TsAdd {
        TsAdd {
            series: 0,
            ts,
            value: ts * 3 + 1,
            invoke,
            complete,
            outcome,
        }
    }

    fn range(invoke: u64, complete: u64, ts: &[u64]) -> TsRange {
        TsRange {
            series: 0,
            invoke,
            complete,
            samples: ts.iter().map(|t| (*t, t * 3 + 1)).collect(),
        }
    }

    #[test]
    fn series_checks_accept_a_consistent_history() {
        let adds = [
            add(1, 0, 10, Outcome::Ok(None)),
            add(2, 5, 50, Outcome::Unknown),
            add(3, 5, 6, Outcome::Failed),
        ];
        // The unknown add shows up only in the later range; concurrent ranges may differ.
        let ranges = [
            range(20, 30, &[1]),
            range(40, 60, &[1, 2]),
            range(70, 80, &[1, 2]),
        ];
        assert_eq!(check_series(&adds, &ranges), Ok(()));
    }

    #[test]
    fn series_checks_catch_lost_phantom_and_failed_samples() {
        let acked = [add(1, 0, 10, Outcome::Ok(None))];
        let lost = check_series(&acked, &[range(20, 30, &[])]);
        assert!(lost.unwrap_err().contains("lacks ts 1"));
        let phantom = check_series(&acked, &[range(20, 30, &[1, 9])]);
        assert!(phantom.unwrap_err().contains("no client sent"));
        let failed = [add(1, 0, 10, Outcome::Failed)];
        assert!(check_series(&failed, &[range(20, 30, &[1])]).is_err());
        // A sample seen once must stay visible to every later range.
        let unknown = [add(1, 0, 10, Outcome::Unknown)];
        let ranges = [range(20, 30, &[1]), range(40, 50, &[])];
        assert!(
            check_series(&unknown, &ranges)
                .unwrap_err()
                .contains("earlier range")
        );
        // A read cannot see a write invoked after it completed.
        let late = [add(1, 100, 110, Outcome::Unknown)];
        assert!(check_series(&late, &[range(20, 30, &[1])]).is_err());
    }

    #[test]
    fn samples_parse_from_resp2_and_resp3_shapes() {
        let pair = |ts: i64, v: Frame| Frame::Array(vec![Frame::Integer(ts), v]);
        let f = Frame::Array(vec![
            pair(5, Frame::bulk(Bytes::from_static(b"16"))),
            pair(7, Frame::Double(22.0)),
        ]);
        let got = parse_samples(&f).unwrap();
        assert_eq!(got, BTreeMap::from([(5, 16), (7, 22)]));
        assert_eq!(parse_samples(&Frame::Null), None);
    }
}
