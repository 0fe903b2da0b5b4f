//! The pure event-queue simulator: N Raft nodes over a faulty network, clients, and checkers.
//!
//! One ChaCha PRNG seeded from [`SimConfig::seed`] decides everything (delays, loss,
//! duplication, partitions, crashes, drift, workload), and events are ordered by (simulated
//! time, insertion sequence), so a seed replays byte for byte: the trace hash proves it.

use std::collections::{BTreeMap, BTreeSet};

use tickdb_core::raft::{
    ConfChange, Entry, EntryKind, LogIndex, Membership, Message, NodeId, PlantedBugs, ProposeError,
    Raft, RaftConfig, RaftOutput, Role, Term,
};
use tickdb_core::store::{Space, StoreRead};

use crate::checker::{self, HistOp, Outcome, Verdict};
use crate::kv::{self, Command, OpKind};
use crate::nodesim::NodeSim;
use crate::store::SimStore;
use crate::world::{FaultKind, Faults, MS, World, fnv, impl_sim_event};

const CLUSTER_ID: u64 = 0x7469_636b;
/// Hard bound on processed events per run (every loop in a test driver has a bound).
pub(crate) const MAX_EVENTS: u64 = 20_000_000;
/// A client gives up on a request after this long and records its outcome as unknown.
const CLIENT_TIMEOUT_MS: u64 = 2_000;
/// Chance that a newly elected leader is crashed within 3 ms (before its first entries spread).
const NEW_LEADER_CRASH_PCT: u64 = 10;
/// Clients issue no new operations in the last this-many ms of a run.
const CLIENT_STOP_BEFORE_END_MS: u64 = CLIENT_TIMEOUT_MS + 1_000;
/// After faults stop, a leader must be elected and clients must succeed within this bound.
pub const LIVENESS_BOUND_MS: u64 = 10_000;

/// A bug planted in the Raft code under test (needs tickdb-core's `planted-bugs` feature).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    CountUnsyncedSelf,
    VoteWithoutPersist,
    CommitOldTerm,
    /// A snapshot install leaves already-committed entries queued, so they apply twice.
    ApplyUnderSnapshot,
    /// Not in Raft: every node's disk acknowledges fsync without making anything durable.
    FsyncLies,
}

impl std::str::FromStr for Bug {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "count-unsynced-self" => Ok(Self::CountUnsyncedSelf),
            "vote-without-persist" => Ok(Self::VoteWithoutPersist),
            "commit-old-term" => Ok(Self::CommitOldTerm),
            "apply-under-snapshot" => Ok(Self::ApplyUnderSnapshot),
            "fsync-lies" => Ok(Self::FsyncLies),
            _ => Err(format!("unknown bug {s}")),
        }
    }
}

impl Bug {
    /// The core's knobs for `bug` (all off for `None`).
    pub(crate) fn planted(bug: Option<Self>) -> PlantedBugs {
        let mut b = PlantedBugs::default();
        match bug {
            Some(Self::CountUnsyncedSelf) => b.count_unsynced_self = true,
            Some(Self::VoteWithoutPersist) => b.vote_without_persist = true,
            Some(Self::CommitOldTerm) => b.commit_old_term = true,
            Some(Self::ApplyUnderSnapshot) => b.apply_under_snapshot = true,
            Some(Self::FsyncLies) | None => {}
        }
        b
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::CountUnsyncedSelf => "count-unsynced-self",
            Self::VoteWithoutPersist => "vote-without-persist",
            Self::CommitOldTerm => "commit-old-term",
            Self::ApplyUnderSnapshot => "apply-under-snapshot",
            Self::FsyncLies => "fsync-lies",
        }
    }
}

/// What the simulator drives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Bare `Raft` nodes with a toy KV state machine, checked from the inside.
    #[default]
    Raft,
    /// Real `tickdb_core::node::Node`s driven through their sans-IO interface by RESP clients.
    Node,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "raft" => Ok(Self::Raft),
            "node" => Ok(Self::Node),
            _ => Err(format!("unknown mode {s} (raft, node)")),
        }
    }
}

/// One simulation run's parameters.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub mode: Mode,
    pub seed: u64,
    pub nodes: u64,
    pub clients: u32,
    pub keys: u8,
    /// Simulated time with faults, then the same machinery heals and runs quietly.
    pub fault_ms: u64,
    pub quiet_ms: u64,
    pub faults: Faults,
    pub bug: Option<Bug>,
    /// Run the direct protocol checks (durable majority at commit, durable votes, leader
    /// completeness, commit permanence). Off, only the end-to-end checks remain (election
    /// safety, committed entries, log matching, convergence, linearizability, liveness): used
    /// to measure what those catch on their own.
    pub direct_checks: bool,
    /// How the nodes sync (default: [`Syncs::for_seed`]).
    pub syncs: Syncs,
}

/// How a run's nodes sync their stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syncs {
    /// Inside `flush` / `poll_output`, as a node over a store without a `Syncer` does.
    Inline,
    /// Asked for with `Output::Sync` and completed later, as the production driver runs them
    /// on RocksDB (`Node::pipeline_syncs`).
    Pipelined,
}

impl Syncs {
    /// The default for a seed: pipelined in three runs of four.
    pub const fn for_seed(seed: u64) -> Self {
        if seed.is_multiple_of(4) {
            Self::Inline
        } else {
            Self::Pipelined
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Inline => "inline",
            Self::Pipelined => "pipelined",
        }
    }
}

impl std::str::FromStr for Syncs {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "inline" => Ok(Self::Inline),
            "pipelined" => Ok(Self::Pipelined),
            _ => Err(format!("unknown sync mode {s} (inline, pipelined)")),
        }
    }
}

impl SimConfig {
    pub fn new(seed: u64, nodes: u64) -> Self {
        Self {
            mode: Mode::Raft,
            seed,
            nodes,
            clients: 3,
            keys: 3,
            fault_ms: 20_000,
            quiet_ms: 15_000,
            faults: Faults::ALL,
            bug: None,
            direct_checks: true,
            syncs: Syncs::for_seed(seed),
        }
    }

    /// A node-mode run (four clients).
    pub fn node(seed: u64, nodes: u64) -> Self {
        Self {
            mode: Mode::Node,
            clients: 4,
            ..Self::new(seed, nodes)
        }
    }

    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        let mut cmd = format!(
            "cargo run -p tickdb-sim --release -- --seed {} --nodes {}",
            self.seed, self.nodes
        );
        if self.mode == Mode::Node {
            cmd.push_str(" --mode node");
        }
        if self.faults != Faults::ALL {
            cmd.push_str(&format!(" --faults {}", self.faults.arg()));
        }
        if let Some(bug) = self.bug {
            cmd.push_str(&format!(" --bug {}", bug.name()));
        }
        if !self.direct_checks {
            cmd.push_str(" --no-direct-checks");
        }
        if self.syncs != Syncs::for_seed(self.seed) {
            cmd.push_str(&format!(" --syncs {}", self.syncs.name()));
        }
        let defaults = Self::new(self.seed, self.nodes);
        if self.fault_ms != defaults.fault_ms {
            cmd.push_str(&format!(" --fault-ms {}", self.fault_ms));
        }
        if self.quiet_ms != defaults.quiet_ms {
            cmd.push_str(&format!(" --quiet-ms {}", self.quiet_ms));
        }
        cmd
    }
}

/// What a run did and found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub trace_hash: u64,
    pub events: u64,
    pub sim_ms: u64,
    pub ops_ok: u64,
    pub ops_failed: u64,
    pub ops_unknown: u64,
    pub faults: u64,
    pub crashes: u64,
    /// Node mode: processes stopped for a while (SIGSTOP) and resumed.
    pub pauses: u64,
    pub committed: u64,
    /// Snapshots installed on followers.
    pub snapshots: u64,
    /// Simulated ms from a leader crash until some node became leader in a later term.
    pub election_ms: Vec<u64>,
    /// Node mode: `CLUSTER ADDNODE` / `CLUSTER FORGET` commands answered `+OK`.
    pub nodes_added: u64,
    pub nodes_forgotten: u64,
    /// Node mode: membership commands refused (a documented refusal, not a violation).
    pub reconfig_refused: u64,
    /// Node mode: nodes stopped for good once their removal committed.
    pub nodes_retired: u64,
    pub inconclusive: bool,
    pub violation: Option<String>,
}

#[derive(Clone, Debug)]
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
    Flush {
        node: NodeId,
        inc: u64,
    },
    /// The pipelined sync `node` asked for completes.
    SyncDone {
        node: NodeId,
        inc: u64,
    },
    Request {
        node: NodeId,
        cmd: Command,
    },
    Response {
        client: u32,
        req: u64,
        outcome: Outcome,
        hint: Option<NodeId>,
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
    Crash {
        node: NodeId,
    },
    Heal,
    End,
}

impl_sim_event!(Ev);

struct SimNode {
    id: NodeId,
    raft: Option<Raft>,
    store: SimStore,
    inc: u64,
    flush_scheduled: bool,
    timer_at: Option<u64>,
    /// The pipelined sync running: (upto, the store's write mark when it started).
    sync_running: Option<(u64, u64)>,
    /// Writes proposed here and not yet answered: index -> command.
    pending: BTreeMap<LogIndex, Command>,
    /// Reads registered with ReadIndex: ctx -> command.
    reads: BTreeMap<u64, Command>,
    /// Confirmed reads waiting for the applied index.
    ready: Vec<(LogIndex, Command)>,
    applied: LogIndex,
}

struct Client {
    id: u32,
    req: u64,
    current: Option<(Command, u64)>,
    hint: Option<NodeId>,
}

/// Violations end the run with a message; `Err` carries it.
type Check = Result<(), String>;

/// One simulation.
pub struct Sim {
    cfg: SimConfig,
    w: World<Ev>,
    nodes: BTreeMap<NodeId, SimNode>,
    clients: Vec<Client>,
    /// The committed log as first applied by any node; every apply must agree with it.
    committed: Vec<Entry>,
    leaders_by_term: BTreeMap<Term, NodeId>,
    history: Vec<HistOp>,
    report: Report,
    healed: bool,
    /// When a leader first existed after faults stopped.
    leader_after_heal: Option<u64>,
    leader_crash_at: Option<(u64, Term)>,
    next_read_ctx: u64,
    initial_voters: BTreeSet<NodeId>,
    /// Per-run replication limits (entries per append, appends in flight, compaction
    /// threshold), drawn from the seed so runs cover one-entry appends, stop-and-wait, large
    /// pipelined batches, frequent compaction with snapshot transfers, and none.
    limits: (u32, u32, u64),
}

impl Sim {
    pub fn new(cfg: SimConfig) -> Self {
        let mut w = World::new(cfg.seed, cfg.faults);
        let limits = (
            [1, 2, 4, 256][(w.next_u64() % 4) as usize],
            [1, 2, 16][(w.next_u64() % 3) as usize],
            [0, 20, 100, 400][(w.next_u64() % 4) as usize],
        );
        // One spare node beyond the initial voters, for membership changes.
        let initial_voters: BTreeSet<NodeId> = (1..=cfg.nodes).map(NodeId).collect();
        let mut nodes = BTreeMap::new();
        for i in 1..=cfg.nodes + 1 {
            let id = NodeId(i);
            w.add_node(id);
            nodes.insert(
                id,
                SimNode {
                    id,
                    raft: None,
                    store: SimStore::with_bug(cfg.bug),
                    inc: 0,
                    flush_scheduled: false,
                    timer_at: None,
                    sync_running: None,
                    pending: BTreeMap::new(),
                    reads: BTreeMap::new(),
                    ready: Vec::new(),
                    applied: LogIndex(0),
                },
            );
        }
        let clients = (0..cfg.clients)
            .map(|id| Client {
                id,
                req: 0,
                current: None,
                hint: None,
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
            committed: Vec::new(),
            leaders_by_term: BTreeMap::new(),
            history: Vec::new(),
            report,
            healed: false,
            leader_after_heal: None,
            leader_crash_at: None,
            next_read_ctx: 1,
            initial_voters,
            limits,
        }
    }

    fn raft_config(&self, id: NodeId) -> RaftConfig {
        let mut c = RaftConfig::new(id, self.initial_voters.clone());
        c.max_entries_per_append = self.limits.0;
        c.max_inflight_appends = self.limits.1;
        c.log_compaction_threshold = self.limits.2;
        // A quarter of the runs never compact (threshold 0, and no compaction behind each
        // durable apply either), as production would with both triggers off: long logs keep
        // old-term entries around for elections to fight over (Figure 8 of the Raft paper,
        // which the planted `commit-old-term` bug needs). The rest compact eagerly, as
        // production does by default.
        c.log_compaction_eager = self.limits.2 != 0;
        c.snapshot_chunk_bytes = 16;
        c.bugs = Bug::planted(self.cfg.bug);
        c
    }

    /// Runs to the end and returns the report (with a violation, if any).
    pub fn run(mut self) -> Report {
        match self.run_inner() {
            Ok(()) => {}
            Err(v) => self.report.violation = Some(v),
        }
        self.report.trace_hash = self.w.hash;
        self.report.sim_ms = self.w.now / MS;
        self.report
    }

    fn run_inner(&mut self) -> Check {
        for id in self.initial_voters.clone() {
            self.start_node(id)?;
        }
        // The spare node starts too; it is not a member until added.
        let spare = NodeId(self.cfg.nodes + 1);
        self.start_node(spare)?;
        self.w.schedule_run(&self.cfg);
        for _ in 0..MAX_EVENTS {
            let ev = self.w.next_event()?;
            self.report.events += 1;
            if matches!(ev, Ev::End) {
                return self.finish();
            }
            self.handle(ev)?;
        }
        Err("event bound exceeded".into())
    }

    fn start_node(&mut self, id: NodeId) -> Check {
        let seed = self.w.next_u64();
        let cfg = self.raft_config(id);
        let now = self.w.local_now(id);
        let node = self.nodes.get_mut(&id).expect("node exists");
        let mut raft = Raft::new(cfg, &node.store, seed, now).map_err(|e| format!("start: {e}"))?;
        if self.cfg.syncs == Syncs::Pipelined {
            raft.pipeline_syncs();
        }
        node.applied = raft.status().applied;
        node.sync_running = None;
        node.raft = Some(raft);
        node.inc += 1;
        node.flush_scheduled = false;
        node.timer_at = None;
        self.after_step(id)
    }

    fn handle(&mut self, ev: Ev) -> Check {
        match ev {
            Ev::Deliver { from, to, bytes } => self.deliver(from, to, &bytes),
            Ev::Timer { node, inc } => {
                let now = self.w.local_now(node);
                let n = self.nodes.get_mut(&node).expect("node exists");
                if n.inc != inc {
                    return Ok(());
                }
                n.timer_at = None;
                let Some(raft) = n.raft.as_mut() else {
                    return Ok(());
                };
                raft.handle_timeout(&mut n.store, now)
                    .map_err(|e| format!("timeout: {e}"))?;
                self.after_step(node)
            }
            Ev::Flush { node, inc } => {
                let now = self.w.local_now(node);
                let n = self.nodes.get_mut(&node).expect("node exists");
                if n.inc != inc {
                    return Ok(());
                }
                n.flush_scheduled = false;
                let Some(raft) = n.raft.as_mut() else {
                    return Ok(());
                };
                raft.flush(&mut n.store, now)
                    .map_err(|e| format!("flush: {e}"))?;
                self.after_step(node)
            }
            Ev::SyncDone { node, inc } => {
                let n = self.nodes.get_mut(&node).expect("node exists");
                if n.inc != inc {
                    return Ok(()); // it crashed meanwhile: the sync never completed
                }
                let Some(raft) = n.raft.as_mut() else {
                    return Ok(());
                };
                let (upto, mark) = n.sync_running.take().expect("a sync was running");
                n.store.sync_through(mark);
                raft.synced(upto);
                self.after_step(node)
            }
            Ev::Request { node, cmd } => self.request(node, cmd),
            Ev::Response {
                client,
                req,
                outcome,
                hint,
            } => {
                self.response(client, req, outcome, hint);
                Ok(())
            }
            Ev::ClientTimeout { client, req } => {
                self.response(client, req, Outcome::Unknown, None);
                Ok(())
            }
            Ev::ClientNext { client } => {
                self.client_next(client);
                Ok(())
            }
            Ev::Fault => self.fault(),
            Ev::Restart { node } => self.restart(node),
            Ev::Crash { node } => self.crash(node),
            Ev::Heal => self.heal(),
            Ev::End => unreachable!("handled by the loop"),
        }
    }

    fn deliver(&mut self, from: NodeId, to: NodeId, bytes: &[u8]) -> Check {
        let env =
            Message::from_bytes(bytes).map_err(|e| format!("own message undecodable: {e}"))?;
        if env.to != to || env.from != from || env.cluster_id != CLUSTER_ID {
            return Err("misrouted message".into());
        }
        let now = self.w.local_now(to);
        let n = self.nodes.get_mut(&to).expect("node exists");
        let Some(raft) = n.raft.as_mut() else {
            return Ok(());
        };
        raft.handle_message(&mut n.store, now, from, env.payload)
            .map_err(|e| format!("handle_message: {e}"))?;
        self.after_step(to)
    }

    /// After any call into a node: check it, move its outputs, schedule its flush and timer.
    fn after_step(&mut self, id: NodeId) -> Check {
        let mut outputs = Vec::new();
        let (role, term, deadline, unsynced) = {
            let n = self.nodes.get_mut(&id).expect("node exists");
            let Some(raft) = n.raft.as_mut() else {
                return Ok(());
            };
            raft.check_invariants();
            while let Some(o) = raft.poll_output() {
                if let RaftOutput::Sync { upto } = o {
                    // The driver marks the store as it takes the output.
                    assert!(n.sync_running.is_none(), "two syncs at once");
                    n.sync_running = Some((upto, n.store.write_count()));
                    let at = self.w.now + self.w.sync_latency();
                    let inc = n.inc;
                    self.w.schedule(at, Ev::SyncDone { node: id, inc });
                    continue;
                }
                outputs.push(o);
            }
            (
                raft.role(),
                raft.term(),
                raft.poll_timeout(),
                n.store.unsynced_batches() > 0,
            )
        };
        if role == Role::Leader {
            if self.healed && self.leader_after_heal.is_none() {
                self.leader_after_heal = Some(self.w.now);
            }
            if !self.leaders_by_term.contains_key(&term) {
                if self.cfg.direct_checks {
                    self.check_new_leader(id, term)?;
                }
                // A nasty moment: the new leader dies before its first entries spread.
                if self.cfg.faults.crashes && !self.healed && self.w.chance(NEW_LEADER_CRASH_PCT) {
                    let at = self.w.now + self.w.rand(3 * MS);
                    self.w.schedule(at, Ev::Crash { node: id });
                }
            }
            let prev = *self.leaders_by_term.entry(term).or_insert(id);
            if prev != id {
                return Err(format!(
                    "two leaders in term {}: {} and {}",
                    term.0, prev.0, id.0
                ));
            }
            if let Some((_, t)) = self.leader_crash_at
                && term > t
            {
                let (at, _) = self.leader_crash_at.take().expect("checked");
                self.report.election_ms.push((self.w.now - at) / MS);
            }
        }
        for o in outputs {
            self.output(id, o)?;
        }
        // Model fsync latency: the owner batches work and syncs a little later, so crashes can
        // land between a write and its sync.
        let inc = self.nodes[&id].inc;
        // Held outputs need a flush even when nothing is unsynced, so one is always scheduled.
        let _ = unsynced;
        if !self.nodes[&id].flush_scheduled {
            let at = self.w.now + 100_000 + self.w.rand(2 * MS);
            self.nodes
                .get_mut(&id)
                .expect("node exists")
                .flush_scheduled = true;
            self.w.schedule(at, Ev::Flush { node: id, inc });
        }
        if let Some(d) = deadline {
            let at = self.w.global(id, d).max(self.w.now);
            let n = self.nodes.get_mut(&id).expect("node exists");
            if n.timer_at.is_none_or(|t| at < t) {
                n.timer_at = Some(at);
                self.w.schedule(at, Ev::Timer { node: id, inc });
            }
        }
        Ok(())
    }

    fn output(&mut self, id: NodeId, o: RaftOutput) -> Check {
        match o {
            RaftOutput::Send { to, msg } => {
                let bytes = msg.to_bytes(CLUSTER_ID, id, to);
                self.send(id, to, bytes);
            }
            RaftOutput::Apply(entry) => self.apply(id, entry)?,
            RaftOutput::ReadReady { ctx, index } => {
                let n = self.nodes.get_mut(&id).expect("node exists");
                if let Some(cmd) = n.reads.remove(&ctx) {
                    n.ready.push((index, cmd));
                }
                self.serve_reads(id)?;
            }
            RaftOutput::ReadFailed { ctx } => {
                let n = self.nodes.get_mut(&id).expect("node exists");
                if let Some(cmd) = n.reads.remove(&ctx) {
                    let leader = n.raft.as_ref().and_then(Raft::leader);
                    self.reply(cmd, Outcome::Failed, leader);
                }
            }
            RaftOutput::SnapshotInstalled { index } => {
                // The owner reloads its caches; this state machine has none but its applied index.
                self.report.snapshots += 1;
                let n = self.nodes.get_mut(&id).expect("node exists");
                n.applied = index;
                self.serve_reads(id)?;
            }
            RaftOutput::LeaderChanged { .. } => {}
            RaftOutput::Sync { .. } => unreachable!("taken in after_step"),
        }
        Ok(())
    }

    fn send(&mut self, from: NodeId, to: NodeId, bytes: Vec<u8>) {
        for at in self.w.transmit(from, to) {
            let ev = Ev::Deliver {
                from,
                to,
                bytes: bytes.clone(),
            };
            self.w.schedule(at, ev);
        }
    }

    fn apply(&mut self, id: NodeId, entry: Entry) -> Check {
        // Committed entries never change and every node applies the same sequence.
        let i = usize::try_from(entry.index.0).map_err(|_| "index overflow")?;
        if i == 0 || i > self.committed.len() + 1 {
            return Err(format!("node {} applied index {} out of order", id.0, i));
        }
        if i <= self.committed.len() {
            if self.committed[i - 1] != entry {
                return Err(format!(
                    "node {} applied {:?} at {} but {:?} was committed there",
                    id.0,
                    entry,
                    i,
                    self.committed[i - 1]
                ));
            }
        } else {
            if self.cfg.direct_checks {
                self.check_durable_majority(id, &entry)?;
            }
            self.committed.push(entry.clone());
            self.report.committed = self.committed.len() as u64;
        }
        let cmd = match &entry.kind {
            EntryKind::Normal(data) => Some(Command::decode(data).map_err(|e| e.to_string())?),
            EntryKind::Noop | EntryKind::Config(_) => None,
        };
        let n = self.nodes.get_mut(&id).expect("node exists");
        if entry.index != n.applied.next() {
            return Err(format!("node {} skipped applies", id.0));
        }
        let result = kv::apply(&mut n.store, entry.index, cmd.as_ref())
            .map_err(|e| format!("apply: {e}"))?;
        n.applied = entry.index;
        if let Some(mine) = n.pending.remove(&entry.index)
            && Some(mine) == cmd
        {
            self.reply(mine, Outcome::Ok(result), Some(id));
        }
        self.serve_reads(id)
    }

    fn serve_reads(&mut self, id: NodeId) -> Check {
        let n = self.nodes.get_mut(&id).expect("node exists");
        let applied = n.applied;
        let (now_ready, later): (Vec<_>, Vec<_>) =
            n.ready.drain(..).partition(|(idx, _)| *idx <= applied);
        n.ready = later;
        let mut answers = Vec::new();
        for (_, cmd) in now_ready {
            let v = kv::get(&n.store, cmd.key).map_err(|e| e.to_string())?;
            answers.push((cmd, v));
        }
        for (cmd, v) in answers {
            self.reply(cmd, Outcome::Ok(v), Some(id));
        }
        Ok(())
    }

    fn reply(&mut self, cmd: Command, outcome: Outcome, hint: Option<NodeId>) {
        let at = self.w.now + 100_000 + self.w.rand(MS);
        let ev = Ev::Response {
            client: cmd.client,
            req: cmd.req,
            outcome,
            hint,
        };
        self.w.schedule(at, ev);
    }

    fn request(&mut self, id: NodeId, cmd: Command) -> Check {
        let now = self.w.local_now(id);
        let n = self.nodes.get_mut(&id).expect("node exists");
        let Some(raft) = n.raft.as_mut() else {
            return Ok(()); // the node is down: the client times out
        };
        match cmd.op {
            OpKind::Get => {
                let ctx = self.next_read_ctx;
                self.next_read_ctx += 1;
                n.reads.insert(ctx, cmd);
                raft.read_index(now, ctx);
            }
            OpKind::Set(_) | OpKind::Incr => match raft.propose(&mut n.store, now, cmd.encode()) {
                Ok(index) => {
                    n.pending.insert(index, cmd);
                }
                Err(ProposeError::NotLeader { leader }) => {
                    self.reply(cmd, Outcome::Failed, leader);
                }
                Err(e) => return Err(format!("propose: {e}")),
            },
        }
        self.after_step(id)
    }

    fn client_next(&mut self, c: u32) {
        let ci = c as usize;
        // Clients stop a little before the end so the final convergence check is exact.
        let stop =
            (self.cfg.fault_ms + self.cfg.quiet_ms).saturating_sub(CLIENT_STOP_BEFORE_END_MS);
        if self.clients[ci].current.is_some() || self.w.now >= stop * MS {
            return;
        }
        let key = self.w.rand(u64::from(self.cfg.keys)) as u8;
        let op = match self.w.rand(10) {
            0..=3 => OpKind::Get,
            4..=6 => OpKind::Incr,
            _ => OpKind::Set(self.w.rand(1_000_000) as i64),
        };
        let member_count = self.cfg.nodes + 1;
        let explore = self.w.chance(10);
        let node = match self.clients[ci].hint {
            Some(h) if !explore => h,
            _ => NodeId(1 + self.w.rand(member_count)),
        };
        let client = &mut self.clients[ci];
        client.req += 1;
        let cmd = Command {
            client: client.id,
            req: client.req,
            key,
            op,
        };
        client.current = Some((cmd, self.w.now));
        let at = self.w.now + 100_000 + self.w.rand(MS);
        self.w.schedule(at, Ev::Request { node, cmd });
        self.w.schedule(
            self.w.now + CLIENT_TIMEOUT_MS * MS,
            Ev::ClientTimeout {
                client: c,
                req: cmd.req,
            },
        );
    }

    fn response(&mut self, c: u32, req: u64, outcome: Outcome, hint: Option<NodeId>) {
        let ci = c as usize;
        let Some((cmd, invoke)) = self.clients[ci].current else {
            return;
        };
        if cmd.req != req {
            return; // a late answer to a request the client already gave up on
        }
        self.clients[ci].current = None;
        match outcome {
            Outcome::Ok(_) => self.report.ops_ok += 1,
            Outcome::Failed => self.report.ops_failed += 1,
            Outcome::Unknown => self.report.ops_unknown += 1,
        }
        if outcome != Outcome::Unknown {
            self.clients[ci].hint = hint;
        } else {
            self.clients[ci].hint = None;
        }
        self.history.push(HistOp {
            client: c,
            key: cmd.key,
            op: cmd.op,
            invoke,
            complete: self.w.now,
            outcome,
        });
        let think = self.w.rand(50 * MS);
        self.w
            .schedule(self.w.now + think, Ev::ClientNext { client: c });
    }

    // ----- faults ---------------------------------------------------------------------------

    fn current_leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .filter_map(|n| n.raft.as_ref())
            .filter(|r| r.role() == Role::Leader)
            .max_by_key(|r| r.term())
            .map(Raft::id)
    }

    fn all_ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    fn fault(&mut self) -> Check {
        if self.healed {
            return Ok(());
        }
        self.report.faults += 1;
        match self.w.roll_fault() {
            FaultKind::Crash => {
                let up: Vec<NodeId> = self
                    .nodes
                    .values()
                    .filter(|n| n.raft.is_some())
                    .map(|n| n.id)
                    .collect();
                if let Some(victim) = self.w.crash_victim(&up, self.current_leader()) {
                    self.crash(victim)?;
                }
            }
            FaultKind::Partition => {
                let ids = self.all_ids();
                let leader = self.current_leader();
                self.w.partition(&ids, leader);
            }
            FaultKind::ClearPartitions | FaultKind::Network => {}
            FaultKind::Transfer => self.transfer()?,
            FaultKind::Membership => self.membership_change()?,
            // Raft mode steps bare Raft nodes: there is no driver batch to stall.
            FaultKind::Pause | FaultKind::Nothing => self.report.faults -= 1,
        }
        let next = self.w.fault_gap();
        self.w.schedule(self.w.now + next, Ev::Fault);
        Ok(())
    }

    /// Crashes `victim` (losing its unsynced writes, or keeping a torn prefix of them) and
    /// schedules its restart.
    fn crash(&mut self, victim: NodeId) -> Check {
        if self.nodes[&victim].raft.is_none() || self.healed {
            return Ok(());
        }
        let leader = self.current_leader();
        let keep = self
            .w
            .crash_keep(self.nodes[&victim].store.unsynced_batches());
        if Some(victim) == leader {
            let term = self.nodes[&victim]
                .raft
                .as_ref()
                .map_or(Term(0), Raft::term);
            self.leader_crash_at = Some((self.w.now, term));
        }
        let n = self.nodes.get_mut(&victim).expect("node exists");
        n.raft = None;
        n.store.crash_keeping(keep);
        n.pending.clear();
        n.reads.clear();
        n.ready.clear();
        n.inc += 1;
        self.report.crashes += 1;
        let at = self.w.now + 200 * MS + self.w.rand(3000 * MS);
        self.w.schedule(at, Ev::Restart { node: victim });
        Ok(())
    }

    fn restart(&mut self, id: NodeId) -> Check {
        if self.nodes[&id].raft.is_some() {
            return Ok(());
        }
        self.start_node(id)
    }

    fn transfer(&mut self) -> Check {
        let Some(leader) = self.current_leader() else {
            return Ok(());
        };
        let now = self.w.local_now(leader);
        let n = self.nodes.get_mut(&leader).expect("node exists");
        let Some(raft) = n.raft.as_mut() else {
            return Ok(());
        };
        let voters: Vec<NodeId> = raft.membership().voters.iter().copied().collect();
        let target = voters[(self.w.next_u64() % voters.len() as u64) as usize];
        // Refusals (target is self) are fine: the fault just did nothing.
        let _ = raft.transfer_leadership(&mut n.store, now, target);
        self.after_step(leader)
    }

    /// Cycles the spare node through learner -> voter and removes a voter (maybe the leader)
    /// to keep the voter count between N and N+1.
    fn membership_change(&mut self) -> Check {
        let Some(leader) = self.current_leader() else {
            return Ok(());
        };
        let now = self.w.local_now(leader);
        let pick = self.w.next_u64();
        let n = self.nodes.get_mut(&leader).expect("node exists");
        let Some(raft) = n.raft.as_mut() else {
            return Ok(());
        };
        let m = raft.membership().clone();
        let all: Vec<NodeId> = (1..=self.cfg.nodes + 1).map(NodeId).collect();
        let change = if let Some(l) = m.learners.iter().next() {
            ConfChange::Promote(*l)
        } else if m.voters.len() as u64 > self.cfg.nodes {
            let voters: Vec<NodeId> = m.voters.iter().copied().collect();
            ConfChange::Remove(voters[(pick % voters.len() as u64) as usize])
        } else {
            let Some(outsider) = all.into_iter().find(|id| !m.voters.contains(id)) else {
                return Ok(());
            };
            ConfChange::AddLearner(outsider)
        };
        match raft.propose_conf_change(&mut n.store, now, change) {
            Ok(_)
            | Err(ProposeError::ConfChangeInProgress)
            | Err(ProposeError::BadConfChange(_))
            | Err(ProposeError::NotLeader { .. }) => {}
            Err(e) => return Err(format!("conf change: {e}")),
        }
        self.after_step(leader)
    }

    fn heal(&mut self) -> Check {
        self.healed = true;
        self.w.heal_network();
        let down: Vec<NodeId> = self
            .nodes
            .values()
            .filter(|n| n.raft.is_none())
            .map(|n| n.id)
            .collect();
        for id in down {
            self.start_node(id)?;
        }
        self.check_logs()
    }

    // ----- checks ---------------------------------------------------------------------------

    /// Log matching across every pair of nodes (same index and term => same entry and same
    /// entries before it, compared from the highest log start since compaction drops
    /// prefixes), and every node's log agrees with the committed log up to its commit index.
    fn check_logs(&self) -> Check {
        let mut logs: Vec<(NodeId, LogIndex, Vec<Entry>)> = Vec::new();
        for n in self.nodes.values() {
            let commit = n.raft.as_ref().map_or(LogIndex(0), Raft::commit_index);
            let mut entries = Vec::new();
            for kv in n.store.scan(Space::Log, b"", None, false) {
                let (_, v) = kv.map_err(|e| e.to_string())?;
                let e: Entry = postcard::from_bytes(&v[1..]).map_err(|e| e.to_string())?;
                entries.push(e);
            }
            logs.push((n.id, commit, entries));
        }
        let start = logs
            .iter()
            .filter_map(|(_, _, l)| l.first().map(|e| e.index))
            .max()
            .unwrap_or(LogIndex(0));
        let mut seen: BTreeMap<(LogIndex, Term), u64> = BTreeMap::new();
        for (id, commit, entries) in &logs {
            let mut prefix = 0xcbf2_9ce4_8422_2325u64;
            for e in entries.iter().filter(|e| e.index >= start) {
                fnv(&mut prefix, &e.index.0.to_le_bytes());
                fnv(&mut prefix, &e.term.0.to_le_bytes());
                if let EntryKind::Normal(d) = &e.kind {
                    fnv(&mut prefix, d);
                }
                if let Some(p) = seen.insert((e.index, e.term), prefix)
                    && p != prefix
                {
                    return Err(format!(
                        "log matching: node {} differs at or before index {} term {}",
                        id.0, e.index.0, e.term.0
                    ));
                }
            }
            for e in entries.iter().filter(|e| e.index <= *commit) {
                let Some(c) = self.committed.get(e.index.0 as usize - 1) else {
                    continue; // committed but not yet applied anywhere
                };
                if c != e {
                    return Err(format!(
                        "node {} holds {e:?} at committed index {} where {c:?} was committed",
                        id.0, e.index.0
                    ));
                }
            }
        }
        Ok(())
    }

    /// Durability before promise, checked directly: when an entry is first committed, a
    /// majority of the committing leader's voters must hold it in their *durable* state (what
    /// would survive a crash right now).
    fn check_durable_majority(&self, id: NodeId, entry: &Entry) -> Check {
        let n = &self.nodes[&id];
        let Some(raft) = n.raft.as_ref() else {
            return Ok(());
        };
        if raft.role() != Role::Leader {
            return Ok(());
        }
        let m = raft.membership();
        let key = entry.index.0.to_be_bytes();
        let mut durable = 0;
        for v in &m.voters {
            let held = self.nodes[v]
                .store
                .durable_get(Space::Log, &key)
                .map_err(|e| e.to_string())?
                .and_then(|b| postcard::from_bytes::<Entry>(&b[1..]).ok());
            if held.as_ref() == Some(entry) {
                durable += 1;
            }
        }
        if durable < m.quorum() {
            return Err(format!(
                "leader {} committed index {} held durably by only {durable} of {} voters",
                id.0,
                entry.index.0,
                m.voters.len()
            ));
        }
        self.check_commit_is_permanent(id, entry, m)
    }

    /// A committed entry must be in the log of every future leader: no voter lacking it may be
    /// able to collect a majority of votes from voters whose logs are no more up to date than
    /// its own (the election restriction, §5.4 of the Raft paper). Catches commits of entries
    /// that a majority holds but that a later leader may still overwrite (Figure 8).
    fn check_commit_is_permanent(&self, id: NodeId, entry: &Entry, m: &Membership) -> Check {
        let mut last: BTreeMap<NodeId, (Term, LogIndex)> = BTreeMap::new();
        let mut lacking = Vec::new();
        for v in &m.voters {
            let store = &self.nodes[v].store;
            let tail = match store.scan(Space::Log, b"", None, true).next() {
                Some(kv) => {
                    let (_, b) = kv.map_err(|e| e.to_string())?;
                    let e: Entry = postcard::from_bytes(&b[1..]).map_err(|e| e.to_string())?;
                    (e.term, e.index)
                }
                None => (Term(0), LogIndex(0)),
            };
            last.insert(*v, tail);
            let held = store
                .get(Space::Log, &entry.index.0.to_be_bytes())
                .map_err(|e| e.to_string())?
                .and_then(|b| postcard::from_bytes::<Entry>(&b[1..]).ok());
            let differs = match held {
                Some(e) => e != *entry,
                None => tail.1 < entry.index, // missing above the tail (below: compacted)
            };
            if differs {
                lacking.push(*v);
            }
        }
        for c in lacking {
            let mine = last[&c];
            let electors: Vec<u64> = last
                .iter()
                .filter(|(_, l)| **l <= mine)
                .map(|(v, _)| v.0)
                .collect();
            if electors.len() >= m.quorum() {
                return Err(format!(
                    "leader {} committed {:?} but node {} (log ends at term {} index {}) lacks \
                     it and could be elected by {electors:?}",
                    id.0, entry, c.0, mine.0.0, mine.1.0
                ));
            }
        }
        Ok(())
    }

    /// A new leader must hold a durable vote from a majority, and its log must contain every
    /// committed entry (Leader Completeness).
    fn check_new_leader(&self, id: NodeId, term: Term) -> Check {
        let n = &self.nodes[&id];
        let Some(raft) = n.raft.as_ref() else {
            return Ok(());
        };
        let m = raft.membership();
        let mut votes = 0;
        for v in &m.voters {
            let (t, vote) = hard_state(&self.nodes[v].store)?;
            if t > term.0 || (t == term.0 && vote == Some(id.0)) {
                votes += 1;
            }
        }
        if votes < m.quorum() {
            return Err(format!(
                "node {} leads term {} with only {votes} durable votes of {} voters",
                id.0,
                term.0,
                m.voters.len()
            ));
        }
        let base = raft.status().snapshot_index;
        for c in self.committed.iter().filter(|c| c.index > base) {
            let held = n
                .store
                .get(Space::Log, &c.index.0.to_be_bytes())
                .map_err(|e| e.to_string())?
                .and_then(|b| postcard::from_bytes::<Entry>(&b[1..]).ok());
            if held.as_ref() != Some(c) {
                return Err(format!(
                    "leader completeness: new leader {} of term {} lacks committed index {}",
                    id.0, term.0, c.index.0
                ));
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Check {
        self.check_logs()?;
        // Liveness: the cluster healed long ago, so a leader must exist and every node must
        // have converged on it.
        let Some(leader) = self.current_leader() else {
            return Err(format!(
                "liveness: no leader {} ms after faults stopped",
                self.cfg.quiet_ms
            ));
        };
        let leader_node = &self.nodes[&leader];
        let raft = leader_node.raft.as_ref().expect("leader is up");
        let commit = raft.commit_index();
        let members = raft.membership().members();
        let state = kv::dump(&leader_node.store);
        for id in &members {
            let n = &self.nodes[id];
            let Some(r) = n.raft.as_ref() else {
                return Err(format!("node {} down at the end", id.0));
            };
            if r.commit_index() != commit || n.applied != commit {
                let seen_by_leader = raft.peers().into_iter().find(|p| p.id == *id);
                return Err(format!(
                    "liveness: node {} at commit {} applied {}, leader {} at {}; node status \
                     {:?}; leader's view {:?}",
                    id.0,
                    r.commit_index().0,
                    n.applied.0,
                    leader.0,
                    commit.0,
                    r.status(),
                    seen_by_leader
                ));
            }
            if kv::dump(&n.store) != state {
                return Err(format!("node {} state differs from the leader's", id.0));
            }
        }
        let heal_at = self.cfg.fault_ms * MS;
        let elected = self.leader_after_heal.unwrap_or(u64::MAX);
        if elected.saturating_sub(heal_at) > LIVENESS_BOUND_MS * MS {
            return Err(format!(
                "liveness: no leader within {LIVENESS_BOUND_MS} ms after faults stopped"
            ));
        }
        // Once a leader has had the bound to settle, no request may go unanswered.
        let settled = heal_at + LIVENESS_BOUND_MS * MS;
        if let Some(h) = self
            .history
            .iter()
            .find(|h| h.invoke >= settled && h.outcome == Outcome::Unknown)
        {
            return Err(format!(
                "liveness: client {} request at {} ms timed out after faults stopped",
                h.client,
                h.invoke / MS
            ));
        }
        for c in &self.clients {
            let ok_after_heal = self.history.iter().any(|h| {
                h.client == c.id
                    && matches!(h.outcome, Outcome::Ok(_))
                    && h.invoke >= self.cfg.fault_ms * MS
            });
            if !ok_after_heal {
                return Err(format!(
                    "liveness: client {} completed nothing after faults stopped",
                    c.id
                ));
            }
        }
        // Every acknowledged write is visible: end with a read of every key at the leader.
        for key in 0..self.cfg.keys {
            let v = kv::get(&leader_node.store, key).map_err(|e| e.to_string())?;
            self.history.push(HistOp {
                client: u32::MAX,
                key,
                op: OpKind::Get,
                invoke: self.w.now,
                complete: self.w.now + 1,
                outcome: Outcome::Ok(v),
            });
        }
        match checker::check(&self.history) {
            Verdict::Linearizable => Ok(()),
            Verdict::Inconclusive => {
                self.report.inconclusive = true;
                Ok(())
            }
            Verdict::Violation { key, detail } => {
                Err(format!("history not linearizable for key {key}: {detail}"))
            }
        }
    }
}

/// The durable (term, vote). The record is a version byte then postcard of `{ term, vote }`,
/// whose fields are newtypes over u64 (postcard encodes a struct as its fields in order).
fn hard_state(store: &SimStore) -> Result<(u64, Option<u64>), String> {
    let Some(b) = store
        .durable_get(Space::Raft, b"hard_state")
        .map_err(|e| e.to_string())?
    else {
        return Ok((0, None));
    };
    postcard::from_bytes::<(u64, Option<u64>)>(&b[1..]).map_err(|e| e.to_string())
}

/// Runs one seed, turning a panic inside the core (a failed assertion) into a violation.
pub fn run_seed(cfg: &SimConfig) -> Report {
    let run = || match cfg.mode {
        Mode::Raft => Sim::new(cfg.clone()).run(),
        Mode::Node => NodeSim::new(cfg.clone()).run(),
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(report) => report,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_else(|| "panic".into());
            Report {
                seed: cfg.seed,
                violation: Some(format!("panic: {msg}")),
                ..Report::default()
            }
        }
    }
}
