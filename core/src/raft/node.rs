//! The Raft node: roles, timers, elections, replication, commit, reads and membership.
//!
//! Durability before promise: every store write here goes out without a sync and is counted
//! (`writes`); an output that promises durable state waits in `held` with the count at the
//! time, until a sync that covers that count has completed. [`Raft::flush`] syncs inline, or,
//! once [`Raft::pipeline_syncs`] was called, asks its owner for one with [`RaftOutput::Sync`]
//! and goes on while it runs; [`Raft::synced`] reports its completion.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use super::message::{ConflictHint, SnapshotMeta, StateSpace};
use super::snapshot::{self, Cursor};
use super::storage::{self, HardState, LogBase};
use super::{
    ConfChange, Entry, EntryKind, LogIndex, Membership, Message, NodeId, ProposeError, RaftConfig,
    RaftError, RaftOutput, Term,
};
use crate::Instant;
use crate::store::{Space, Store, StoreError, StoreRead, WriteBatch};

/// A node's role in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Follower,
    /// Asking for pre-votes; the term is not incremented yet.
    PreCandidate,
    Candidate,
    Leader,
}

/// Failure-detector view of a peer (the seed design's node states).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// Never sent to nor heard from.
    Unknown,
    /// Sent to, never heard from.
    Connecting,
    /// Heard from within the minimum election timeout.
    Connected,
    /// Heard from once, but not within the minimum election timeout.
    Disconnected,
    /// The owner reported undecodable or misaddressed bytes from it since its last good message.
    Error,
}

/// One peer as this node sees it, for `CLUSTER NODES`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub id: NodeId,
    pub voter: bool,
    pub state: PeerState,
    pub last_contact: Option<Instant>,
    /// Leader only: highest index known replicated (durably) on the peer.
    pub match_index: LogIndex,
    /// Leader only: next index to send.
    pub next_index: LogIndex,
}

/// A summary for `INFO replication`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub id: NodeId,
    pub role: Role,
    pub term: Term,
    pub leader: Option<NodeId>,
    pub commit: LogIndex,
    pub applied: LogIndex,
    pub last_index: LogIndex,
    /// The log starts after this index (the last snapshot or compaction point).
    pub snapshot_index: LogIndex,
    pub membership: Membership,
}

/// A snapshot being streamed to one follower.
struct SnapSend {
    /// The leader's point-in-time view the chunks are read from.
    view: Box<dyn StoreRead + Send>,
    meta: SnapshotMeta,
    chunk: u32,
    /// Where the current chunk starts and where the next one starts.
    start: Cursor,
    end: Cursor,
}

impl std::fmt::Debug for SnapSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapSend")
            .field("meta", &self.meta)
            .field("chunk", &self.chunk)
            .finish_non_exhaustive()
    }
}

/// Leader-side replication state of one peer.
#[derive(Debug)]
struct Progress {
    next: LogIndex,
    matched: LogIndex,
    /// Last index of each AppendEntries in flight, oldest first.
    inflight: VecDeque<LogIndex>,
    /// Probing: one append at a time until the follower's log position is known.
    probing: bool,
    /// Heard from since the last CheckQuorum round.
    recent_active: bool,
    /// When the follower last acknowledged anything, to retransmit lost appends.
    last_ack: Instant,
    /// Highest heartbeat sequence it echoed.
    hb_seq_acked: u64,
    /// The snapshot being sent because its next entry was compacted away.
    snap: Option<SnapSend>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Contact {
    last_heard: Option<Instant>,
    last_sent: Option<Instant>,
    error: bool,
}

/// An output or action waiting for a sync.
#[derive(Clone, Debug)]
enum Held {
    Output(RaftOutput),
    /// The leader's own log is durable up to this index in this term.
    SelfAck(Term, LogIndex),
    /// The candidate's vote for itself in this term is durable.
    SelfVote(Term),
}

#[derive(Clone, Copy, Debug)]
struct PendingRead {
    ctx: u64,
    index: LogIndex,
    seq: u64,
}

/// Bound on flush rounds: a round can create work for one more (a vote that makes a leader
/// whose Noop needs a sync), never more than a few.
const MAX_FLUSH_ROUNDS: u32 = 4;

/// A Raft node. See the module docs for the drive rule.
#[derive(Debug)]
pub struct Raft {
    cfg: RaftConfig,
    rng: ChaCha8Rng,
    now: Instant,
    role: Role,
    term: Term,
    vote: Option<NodeId>,
    leader: Option<NodeId>,
    base: LogBase,
    last_index: LogIndex,
    last_term: Term,
    commit: LogIndex,
    applied: LogIndex,
    /// Membership from each config entry in the log after `base`.
    configs: BTreeMap<LogIndex, Membership>,
    election_deadline: Instant,
    heartbeat_deadline: Instant,
    quorum_deadline: Instant,
    last_leader_contact: Option<Instant>,
    votes: BTreeMap<NodeId, bool>,
    progress: BTreeMap<NodeId, Progress>,
    contacts: BTreeMap<NodeId, Contact>,
    self_match: LogIndex,
    term_start: LogIndex,
    /// Store writes that back a promise, made so far (log entries, hard state, snapshot
    /// installs; not compactions, whose loss leaves the log still valid).
    writes: u64,
    /// The write count the latest sync started with covers (inline: the latest sync's).
    sync_started: u64,
    /// The write count the latest completed sync covers: what a crash cannot undo.
    synced: u64,
    /// Pipelined syncs: [`RaftOutput::Sync`] asks the owner for each one.
    pipelined: bool,
    /// The pipelined sync running: the write count it covers and the store's applied index
    /// when it started (durable once it completes).
    sync_in_flight: Option<(u64, LogIndex)>,
    /// Outputs waiting for a sync, each with the write count it waits for, in order.
    held: VecDeque<(u64, Held)>,
    out: VecDeque<RaftOutput>,
    emitted_leader: (Option<NodeId>, Term),
    hb_seq: u64,
    reads: VecDeque<PendingRead>,
    read_broadcast_owed: bool,
    transfer: Option<(NodeId, Instant)>,
    /// Follower: the snapshot being received and the next chunk expected.
    receiving: Option<(SnapshotMeta, u32)>,
    /// The owner's applied index as of the last sync (what a crash cannot undo).
    durable_applied: LogIndex,
    /// Store syncs so far (INFO `total_syncs`).
    syncs: u64,
    /// Approximate bytes of entries appended since the last compaction.
    bytes_since_compaction: u64,
    /// The durable applied index eager compaction last looked at ([`Raft::maybe_compact`]).
    eager_checked: LogIndex,
    /// The newest entries, in memory: applying and replicating them needs no store read and
    /// decode. A contiguous run ending at `last_index`, bounded by [`ENTRY_CACHE_BYTES`].
    cache: VecDeque<Entry>,
    cache_bytes: u64,
}

/// Bytes of recent entries kept in memory ([`Raft`]'s `cache`).
const ENTRY_CACHE_BYTES: u64 = 32 << 20;

type R<T = ()> = Result<T, StoreError>;

impl Raft {
    /// Loads term, vote, log bounds and membership from the store.
    pub fn new(
        config: RaftConfig,
        store: &impl StoreRead,
        seed: u64,
        now: Instant,
    ) -> Result<Self, RaftError> {
        config.validate()?;
        let hs: HardState = storage::read(store, storage::KEY_HARD_STATE)?.unwrap_or_default();
        let base = match storage::read::<LogBase>(store, storage::KEY_LOG_BASE)? {
            Some(base) => base,
            None if config.initial_voters.is_empty() => return Err(RaftError::NoMembership),
            None => storage::initial_base(&config.initial_voters),
        };
        let (last_index, last_term) = match storage::last_entry(store)? {
            Some(e) if e.index > base.index => (e.index, e.term),
            _ => (base.index, base.term),
        };
        let mut configs = BTreeMap::new();
        let mut membership = base.membership.clone();
        let start = storage::log_key(base.index.next());
        for kv in store.scan(Space::Log, &start, None, false) {
            let (_, bytes) = kv?;
            let entry: Entry = storage::decode(Space::Log, &bytes)?;
            if let EntryKind::Config(change) = &entry.kind {
                // As in `write_entries`: a change that does not apply is skipped. A node that
                // joined took the members it was given (the current ones) as its base, so the
                // changes in the log from before it joined may not apply to it; it rebuilds
                // exactly the memberships it tracked before the restart.
                if let Ok(m) = membership.apply(change) {
                    membership = m;
                    configs.insert(entry.index, membership.clone());
                }
            }
        }
        let applied = storage::applied_index(store)?.max(base.index);
        let mut raft = Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            now,
            role: Role::Follower,
            term: hs.term,
            vote: hs.vote,
            leader: None,
            base,
            last_index,
            last_term,
            commit: applied,
            applied,
            configs,
            election_deadline: now,
            heartbeat_deadline: now,
            quorum_deadline: now,
            last_leader_contact: None,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            contacts: BTreeMap::new(),
            self_match: LogIndex(0),
            term_start: LogIndex(0),
            writes: 0,
            sync_started: 0,
            synced: 0,
            pipelined: false,
            sync_in_flight: None,
            held: VecDeque::new(),
            out: VecDeque::new(),
            emitted_leader: (None, hs.term),
            hb_seq: 0,
            reads: VecDeque::new(),
            read_broadcast_owed: false,
            transfer: None,
            receiving: None,
            durable_applied: applied,
            syncs: 0,
            bytes_since_compaction: 0,
            eager_checked: applied,
            cache: VecDeque::new(),
            cache_bytes: 0,
            cfg: config,
        };
        assert!(raft.applied <= raft.last_index, "applied beyond the log");
        raft.reset_election_deadline();
        raft.check_invariants();
        Ok(raft)
    }

    // ----- public API -----------------------------------------------------------------------

    /// Appends a command to the log (leader only) and returns its index.
    pub fn propose(
        &mut self,
        store: &mut impl Store,
        now: Instant,
        data: Vec<u8>,
    ) -> Result<LogIndex, ProposeError> {
        self.now = now;
        self.append_as_leader(store, EntryKind::Normal(data))
    }

    /// Appends several commands (leader only) in one store write and one round of appends to
    /// the followers; returns the index of the first and the term they were appended in. The
    /// owner proposes every request of a drive round at once this way (group commit).
    pub fn propose_many(
        &mut self,
        store: &mut impl Store,
        now: Instant,
        data: Vec<Vec<u8>>,
    ) -> Result<(LogIndex, Term), ProposeError> {
        self.now = now;
        self.append_all(store, data.into_iter().map(EntryKind::Normal).collect())
    }

    /// Starts an election now instead of at the election timeout (a voter that is not the
    /// leader). A node that is the only voter calls it at start, so a single node leads at
    /// once rather than after a timeout.
    pub fn campaign(&mut self, store: &mut impl Store, now: Instant) -> R {
        self.now = now;
        if self.role == Role::Leader || !self.membership().voters.contains(&self.cfg.id) {
            return Ok(());
        }
        self.reset_election_deadline();
        self.start_campaign(store)?;
        self.emit_leader_change();
        Ok(())
    }

    /// PreVote first when configured, else straight to an election.
    fn start_campaign(&mut self, store: &mut impl Store) -> R {
        if self.cfg.pre_vote {
            self.start_pre_vote(store)
        } else {
            self.start_election(store, false)
        }
    }

    /// Store syncs this node has made.
    pub fn sync_count(&self) -> u64 {
        self.syncs
    }

    /// Whether [`Raft::flush`] has work: a sync owed that can start, held outputs a
    /// completed sync covers, or a read round.
    pub fn needs_flush(&self) -> bool {
        (self.sync_owed() && self.sync_in_flight.is_none())
            || self.held.front().is_some_and(|(w, _)| *w <= self.synced)
            || self.read_broadcast_owed
    }

    /// A write that backs a promise has not been covered by a sync started yet.
    fn sync_owed(&self) -> bool {
        self.writes > self.sync_started
    }

    /// From now on [`Raft::flush`] does not sync: it emits [`RaftOutput::Sync`] when a sync is
    /// owed and none is running, and keeps the outputs that wait for it until the owner
    /// reports it done with [`Raft::synced`]. Meanwhile the node goes on taking messages and
    /// writing (unsynced), so the next sync starts as soon as this one ends and covers
    /// everything written while it ran: group commit whose group is as large as the sync is
    /// slow.
    pub fn pipeline_syncs(&mut self) {
        self.pipelined = true;
    }

    /// Whether a pipelined sync ([`RaftOutput::Sync`]) was asked for and not reported done.
    pub fn sync_running(&self) -> bool {
        self.sync_in_flight.is_some()
    }

    /// The sync [`RaftOutput::Sync`] asked for, up to `upto`, has completed: every store write
    /// made before it was asked for is durable. Call [`Raft::flush`] next, which releases
    /// what waited for it.
    ///
    /// # Panics
    /// When no sync up to `upto` is running: the owner reported one it was never asked for.
    pub fn synced(&mut self, upto: u64) {
        match self.sync_in_flight.take() {
            Some((started, applied)) if started == upto => {
                self.synced = upto;
                self.syncs += 1;
                self.durable_applied = self.durable_applied.max(applied);
            }
            other => panic!("sync up to {upto} reported done while {other:?} was running"),
        }
    }

    /// Counts a store write that backs a promise: outputs held from now on wait for a sync
    /// that covers it.
    fn wrote(&mut self) {
        self.writes += 1;
    }

    /// Holds `h` until a sync covers every write made so far.
    fn hold(&mut self, h: Held) {
        self.held.push_back((self.writes, h));
    }

    /// Proposes a single-server membership change; refused while another is uncommitted.
    pub fn propose_conf_change(
        &mut self,
        store: &mut impl Store,
        now: Instant,
        change: ConfChange,
    ) -> Result<LogIndex, ProposeError> {
        self.now = now;
        self.check_conf_change(&change)?;
        self.append_as_leader(store, EntryKind::Config(change))
    }

    /// Whether [`Raft::propose_conf_change`] would accept `change` now (it changes nothing).
    pub fn check_conf_change(&self, change: &ConfChange) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if self.configs.range(self.commit.next()..).next().is_some() {
            return Err(ProposeError::ConfChangeInProgress);
        }
        self.membership().apply(change)?;
        if let ConfChange::Promote(id) = *change {
            let caught_up = self
                .progress
                .get(&id)
                .is_some_and(|p| p.matched >= self.commit);
            if !caught_up {
                return Err(ProposeError::BadConfChange("learner has not caught up"));
            }
        }
        Ok(())
    }

    /// Hands leadership to `to` once its log is up to date (TimeoutNow). Aborted after an
    /// election timeout.
    pub fn transfer_leadership(
        &mut self,
        store: &mut impl Store,
        now: Instant,
        to: NodeId,
    ) -> Result<(), ProposeError> {
        self.now = now;
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if to == self.cfg.id || !self.membership().voters.contains(&to) {
            return Err(ProposeError::BadTransferTarget);
        }
        let deadline = now.saturating_add(self.election_min());
        self.transfer = Some((to, deadline));
        self.maybe_send_timeout_now(to);
        self.send_append(store, to)
            .map_err(|e| ProposeError::Store(e.to_string()))?;
        Ok(())
    }

    /// Registers a linearizable read; answered by `ReadReady` once a heartbeat round confirms
    /// leadership, or `ReadFailed`.
    pub fn read_index(&mut self, now: Instant, ctx: u64) {
        self.now = now;
        if self.role != Role::Leader {
            self.out.push_back(RaftOutput::ReadFailed { ctx });
            return;
        }
        // Reading at least at the term's first entry makes sure everything committed by earlier
        // leaders is applied before the read is served.
        let index = self.commit.max(self.term_start);
        let seq = self.hb_seq + 1;
        self.reads.push_back(PendingRead { ctx, index, seq });
        self.read_broadcast_owed = true;
        self.release_reads();
    }

    /// Handles one message from a peer.
    pub fn handle_message(
        &mut self,
        store: &mut impl Store,
        now: Instant,
        from: NodeId,
        msg: Message,
    ) -> R {
        self.now = now;
        if from == self.cfg.id {
            return Ok(());
        }
        // Only members get a failure-detector entry, so spoofed ids cannot grow the map.
        if self.is_member(from) {
            let contact = self.contacts.entry(from).or_default();
            contact.last_heard = Some(now);
            contact.error = false;
        }
        self.step(store, from, msg)?;
        self.emit_leader_change();
        Ok(())
    }

    /// Tells the failure detector that bytes from `peer` did not decode.
    pub fn report_peer_error(&mut self, peer: NodeId) {
        if self.is_member(peer) {
            self.contacts.entry(peer).or_default().error = true;
        }
    }

    fn is_member(&self, id: NodeId) -> bool {
        let m = self.membership();
        m.voters.contains(&id) || m.learners.contains(&id)
    }

    /// Fires due timers. Calls before a deadline do nothing.
    pub fn handle_timeout(&mut self, store: &mut impl Store, now: Instant) -> R {
        self.now = now;
        if self.role == Role::Leader {
            if now >= self.heartbeat_deadline {
                self.heartbeat_deadline = now.saturating_add(self.heartbeat());
                self.broadcast_heartbeat();
                self.retransmit_stalled(store)?;
            }
            if let Some((_, deadline)) = self.transfer
                && now >= deadline
            {
                self.transfer = None;
            }
            if self.cfg.check_quorum && now >= self.quorum_deadline {
                self.quorum_deadline = now.saturating_add(self.election_min());
                self.check_quorum(store)?;
            }
        } else if now >= self.election_deadline {
            self.reset_election_deadline();
            if self.membership().voters.contains(&self.cfg.id) {
                self.start_campaign(store)?;
            }
        }
        self.emit_leader_change();
        Ok(())
    }

    /// The next deadline at which [`Raft::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.role == Role::Leader {
            let mut t = self.heartbeat_deadline;
            if self.cfg.check_quorum {
                t = t.min(self.quorum_deadline);
            }
            if let Some((_, deadline)) = self.transfer {
                t = t.min(deadline);
            }
            Some(t)
        } else {
            Some(self.election_deadline)
        }
    }

    /// Syncs the store once if anything written since the last sync backs a promise, then
    /// releases the held outputs a completed sync covers. Pipelined
    /// ([`Raft::pipeline_syncs`]), it asks for the sync with [`RaftOutput::Sync`] instead,
    /// when none is running, and releases only what completed syncs cover.
    pub fn flush(&mut self, store: &mut impl Store, now: Instant) -> R {
        self.now = now;
        for _ in 0..MAX_FLUSH_ROUNDS {
            if self.read_broadcast_owed && self.role == Role::Leader {
                self.broadcast_heartbeat();
            }
            self.read_broadcast_owed = false;
            if self.sync_owed() && !self.pipelined {
                let stored_applied = storage::applied_index(store)?;
                store.sync()?;
                self.syncs += 1;
                self.sync_started = self.writes;
                self.synced = self.writes;
                self.durable_applied = self.durable_applied.max(stored_applied);
            }
            if !self.release_synced(store)? {
                break;
            }
        }
        // Asked for after the releases, so the writes they made (a new leader's first entry)
        // ride on this sync rather than wait for the next.
        if self.pipelined && self.sync_owed() && self.sync_in_flight.is_none() {
            let stored_applied = storage::applied_index(store)?;
            self.sync_in_flight = Some((self.writes, stored_applied));
            self.sync_started = self.writes;
            self.out.push_back(RaftOutput::Sync { upto: self.writes });
        }
        self.maybe_compact(store)?;
        self.emit_leader_change();
        Ok(())
    }

    /// Releases the held outputs that completed syncs cover, oldest first; whether there
    /// were any.
    fn release_synced(&mut self, store: &mut impl Store) -> Result<bool, StoreError> {
        let mut any = false;
        while self.held.front().is_some_and(|(w, _)| *w <= self.synced) {
            let (_, h) = self.held.pop_front().expect("checked");
            self.release(store, h)?;
            any = true;
        }
        Ok(any)
    }

    /// Drops log entries behind the durable applied index: as soon as a new durable
    /// checkpoint makes them redundant, except those a follower in contact still needs, and
    /// all of them once enough have piled up whatever followers need (the thresholds bound
    /// the log kept for a lagging follower, which then catches up from a snapshot).
    fn maybe_compact(&mut self, store: &mut impl Store) -> R {
        let threshold = self.cfg.log_compaction_threshold;
        let target = self.durable_applied.min(self.applied);
        let by_count = threshold > 0 && target.0 >= self.base.index.0.saturating_add(threshold);
        let by_bytes = self.cfg.log_compaction_bytes > 0
            && self.bytes_since_compaction >= self.cfg.log_compaction_bytes
            && target > self.base.index;
        if by_count || by_bytes {
            return self.compact_to(store, target);
        }
        // Once per durable checkpoint: a follower that held compaction back is looked at again
        // at the next one (so a slow follower does not make every round a compaction).
        if !self.cfg.log_compaction_eager || target <= self.eager_checked {
            return Ok(());
        }
        self.eager_checked = target;
        let target = target.min(self.followers_need());
        if target <= self.base.index {
            return Ok(());
        }
        self.compact_to(store, target)
    }

    /// The last log index every follower the leader is in contact with has, so that it can go
    /// on from the log rather than from a snapshot (the largest index when none needs any: not
    /// the leader, or no follower heard from within an election timeout). A follower being
    /// sent a snapshot needs the entries after the snapshot's index.
    fn followers_need(&self) -> LogIndex {
        if self.role != Role::Leader {
            return LogIndex(u64::MAX);
        }
        let recent = Duration::from_millis(self.cfg.election_timeout_ms_max);
        let in_contact = |id: &NodeId| {
            self.contacts
                .get(id)
                .and_then(|c| c.last_heard)
                .is_some_and(|t| self.now.saturating_since(t) < recent)
        };
        self.progress
            .iter()
            .filter(|(id, _)| **id != self.cfg.id && in_contact(id))
            .map(|(_, p)| p.snap.as_ref().map_or(p.matched, |s| s.meta.index))
            .min()
            .unwrap_or(LogIndex(u64::MAX))
    }

    /// Compacts the log up to the applied index the store holds, whatever the thresholds:
    /// the caller has just synced it (a clean stop, so the directory it leaves holds the
    /// state, not also the log of it).
    pub fn compact_to_durable(&mut self, store: &mut impl Store) -> R {
        let stored = storage::applied_index(store)?;
        self.durable_applied = self.durable_applied.max(stored);
        let target = self.durable_applied.min(self.applied);
        if target <= self.base.index {
            return Ok(());
        }
        self.compact_to(store, target)
    }

    /// Drops the log entries up to `target` (applied and durable in the state).
    fn compact_to(&mut self, store: &mut impl Store, target: LogIndex) -> R {
        self.bytes_since_compaction = 0;
        let term = self
            .term_at(store, target)?
            .ok_or_else(|| StoreError::Corrupt {
                space: Space::Log,
                detail: format!("no term for applied index {}", target.0),
            })?;
        let base = LogBase {
            index: target,
            term,
            membership: self.membership_at(target).clone(),
        };
        let mut batch = WriteBatch::new();
        batch.delete_range(
            Space::Log,
            storage::log_key(LogIndex(0)),
            storage::log_key(target.next()),
        );
        batch.put(Space::Raft, storage::KEY_LOG_BASE, storage::encode(&base));
        // No sync needed: losing this batch leaves the old base and the entries, still valid.
        store.write(batch)?;
        self.configs = self.configs.split_off(&target.next());
        self.cache_compacted(target);
        self.base = base;
        Ok(())
    }

    /// The membership in effect at `index` (at or after the log base).
    fn membership_at(&self, index: LogIndex) -> &Membership {
        self.configs
            .range(..=index)
            .next_back()
            .map_or(&self.base.membership, |(_, m)| m)
    }

    /// The next output, if any.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<RaftOutput> {
        self.out.pop_front()
    }

    /// Whether outputs are waiting for [`Raft::poll_output`].
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn term(&self) -> Term {
        self.term
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    pub fn commit_index(&self) -> LogIndex {
        self.commit
    }

    pub fn last_index(&self) -> LogIndex {
        self.last_index
    }

    /// The membership in effect (the latest config entry in the log).
    pub fn membership(&self) -> &Membership {
        self.configs
            .values()
            .next_back()
            .unwrap_or(&self.base.membership)
    }

    pub fn status(&self) -> Status {
        Status {
            id: self.cfg.id,
            role: self.role,
            term: self.term,
            leader: self.leader,
            commit: self.commit,
            applied: self.applied,
            last_index: self.last_index,
            snapshot_index: self.base.index,
            membership: self.membership().clone(),
        }
    }

    /// Every other member as the failure detector sees it.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let membership = self.membership();
        let alive = self.election_min();
        membership
            .members()
            .into_iter()
            .filter(|id| *id != self.cfg.id)
            .map(|id| {
                let c = self.contacts.get(&id).copied().unwrap_or_default();
                let state = match (c.error, c.last_heard, c.last_sent) {
                    (true, _, _) => PeerState::Error,
                    (false, Some(t), _) if self.now.saturating_since(t) < alive => {
                        PeerState::Connected
                    }
                    (false, Some(_), _) => PeerState::Disconnected,
                    (false, None, Some(_)) => PeerState::Connecting,
                    (false, None, None) => PeerState::Unknown,
                };
                let p = self.progress.get(&id);
                PeerInfo {
                    id,
                    voter: membership.voters.contains(&id),
                    state,
                    last_contact: c.last_heard,
                    match_index: p.map_or(LogIndex(0), |p| p.matched),
                    next_index: p.map_or(LogIndex(0), |p| p.next),
                }
            })
            .collect()
    }

    /// Asserts local invariants; tests and the simulator call it after every step.
    pub fn check_invariants(&self) {
        // Durability before promise: a sync covers only writes made before it started, one
        // runs at a time, and what waits for one waits for every write before it was held.
        assert!(
            self.synced <= self.sync_started && self.sync_started <= self.writes,
            "synced {} started {} written {}",
            self.synced,
            self.sync_started,
            self.writes
        );
        match self.sync_in_flight {
            Some((upto, _)) => {
                assert!(
                    self.pipelined,
                    "a pipelined sync running while syncs are inline"
                );
                assert_eq!(
                    upto, self.sync_started,
                    "the running sync is the latest started"
                );
                assert!(upto > self.synced, "a running sync covers nothing new");
            }
            None => assert_eq!(
                self.synced, self.sync_started,
                "a started sync neither running nor completed"
            ),
        }
        let mut prev = 0;
        for (w, _) in &self.held {
            assert!(*w >= prev && *w <= self.writes, "held outputs out of order");
            prev = *w;
        }
        assert!(self.commit <= self.last_index, "commit beyond the log");
        assert!(self.applied <= self.commit, "applied beyond commit");
        assert!(self.base.index <= self.applied, "log base beyond applied");
        assert!(
            self.base.index <= self.last_index,
            "log base beyond the log"
        );
        assert!(self.last_term <= self.term || self.last_index == self.base.index);
        if let (Some(first), Some(last)) = (self.cache.front(), self.cache.back()) {
            assert_eq!(
                last.index, self.last_index,
                "the entry cache ends at the log's end"
            );
            assert!(
                first.index > self.base.index,
                "no compacted entry in the cache"
            );
            assert_eq!(
                last.index.0 - first.index.0 + 1,
                self.cache.len() as u64,
                "the entry cache is contiguous"
            );
        }
        match self.role {
            Role::Leader => {
                assert_eq!(self.leader, Some(self.cfg.id), "leader must know itself");
                assert_eq!(self.vote, Some(self.cfg.id), "leader voted for itself");
                assert!(self.self_match <= self.last_index);
                for p in self.progress.values() {
                    assert!(p.matched < p.next, "match below next");
                    assert!(p.next <= self.last_index.next(), "next beyond the log");
                    assert!(p.inflight.len() <= self.cfg.max_inflight_appends as usize);
                }
            }
            Role::Candidate => {
                assert_eq!(self.vote, Some(self.cfg.id), "candidate voted for itself");
                assert_eq!(self.leader, None);
            }
            Role::PreCandidate => assert_eq!(self.leader, None),
            Role::Follower => assert_ne!(self.leader, Some(self.cfg.id)),
        }
        if let Some((&idx, _)) = self.configs.iter().next() {
            assert!(idx > self.base.index && idx <= self.last_index);
        }
        // Entries handed out for applying and not yet taken: above the log base (a snapshot
        // or compaction point is state that already holds everything at or below it), in
        // order without gaps, ending at the applied index.
        let mut queued = self.out.iter().filter_map(|o| match o {
            RaftOutput::Apply(e) => Some(e.index),
            _ => None,
        });
        if let Some(first) = queued.next() {
            assert!(
                first > self.base.index,
                "an entry under the log base queued to apply"
            );
            let last = queued.try_fold(first, |prev, i| (i == prev.next()).then_some(i));
            assert_eq!(
                last,
                Some(self.applied),
                "queued entries run up to the applied index"
            );
        }
    }

    // ----- helpers: time ----------------------------------------------------------------------

    fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.cfg.heartbeat_interval_ms)
    }

    fn election_min(&self) -> Duration {
        Duration::from_millis(self.cfg.election_timeout_ms_min)
    }

    fn reset_election_deadline(&mut self) {
        let span = self.cfg.election_timeout_ms_max - self.cfg.election_timeout_ms_min;
        let ms = self.cfg.election_timeout_ms_min + self.rng.next_u64() % span;
        self.election_deadline = self.now.saturating_add(Duration::from_millis(ms));
    }

    fn in_leader_lease(&self) -> bool {
        if !self.cfg.check_quorum {
            return false;
        }
        if self.role == Role::Leader {
            return true;
        }
        self.leader.is_some()
            && self
                .last_leader_contact
                .is_some_and(|t| self.now.saturating_since(t) < self.election_min())
    }

    // ----- helpers: log -----------------------------------------------------------------------

    fn term_at(&self, store: &impl StoreRead, index: LogIndex) -> R<Option<Term>> {
        if index == self.base.index {
            return Ok(Some(self.base.term));
        }
        if index < self.base.index || index > self.last_index {
            return Ok(None);
        }
        if index == self.last_index {
            return Ok(Some(self.last_term));
        }
        if let Some(e) = self.cached(index) {
            return Ok(Some(e.term));
        }
        let entry = storage::read_entry(store, index)?.ok_or_else(|| StoreError::Corrupt {
            space: Space::Log,
            detail: format!("missing entry {}", index.0),
        })?;
        Ok(Some(entry.term))
    }

    fn entry(&self, store: &impl StoreRead, index: LogIndex) -> R<Entry> {
        if let Some(e) = self.cached(index) {
            return Ok(e.clone());
        }
        storage::read_entry(store, index)?.ok_or_else(|| StoreError::Corrupt {
            space: Space::Log,
            detail: format!("missing entry {}", index.0),
        })
    }

    fn cached(&self, index: LogIndex) -> Option<&Entry> {
        let first = self.cache.front()?.index;
        let e = self
            .cache
            .get(usize::try_from(index.0.checked_sub(first.0)?).ok()?)?;
        debug_assert_eq!(e.index, index, "the cache is contiguous");
        Some(e)
    }

    /// Keeps `entries` (just written after any truncation) at the end of the cache.
    fn cache_appended(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        // Drop what the new entries overwrite, or everything if they do not follow on.
        while self.cache.back().is_some_and(|e| e.index >= first.index) {
            let e = self.cache.pop_back().expect("checked");
            self.cache_bytes -= e.size_hint();
        }
        if self
            .cache
            .back()
            .is_some_and(|e| e.index.next() != first.index)
        {
            self.clear_cache();
        }
        for e in entries {
            self.cache_bytes += e.size_hint();
            self.cache.push_back(e.clone());
        }
        while self.cache_bytes > ENTRY_CACHE_BYTES {
            let Some(e) = self.cache.pop_front() else {
                break;
            };
            self.cache_bytes -= e.size_hint();
        }
    }

    /// Forgets cached entries at or before `index` (compacted away).
    fn cache_compacted(&mut self, index: LogIndex) {
        while self.cache.front().is_some_and(|e| e.index <= index) {
            let e = self.cache.pop_front().expect("checked");
            self.cache_bytes -= e.size_hint();
        }
    }

    fn clear_cache(&mut self) {
        self.cache.clear();
        self.cache_bytes = 0;
    }

    fn log_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term, self.last_index)
    }

    fn persist_hard_state(&mut self, store: &mut impl Store) -> R {
        let mut batch = WriteBatch::new();
        let hs = HardState {
            term: self.term,
            vote: self.vote,
        };
        batch.put(Space::Raft, storage::KEY_HARD_STATE, storage::encode(&hs));
        store.write(batch)?;
        self.wrote();
        Ok(())
    }

    /// Writes `entries` (contiguous, starting at or below last+1), truncating a conflicting
    /// suffix first.
    fn write_entries(&mut self, store: &mut impl Store, entries: &[Entry]) -> R {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        assert!(first.index > self.commit, "overwriting committed entries");
        assert!(first.index <= self.last_index.next(), "gap in the log");
        let mut batch = WriteBatch::new();
        if first.index <= self.last_index {
            batch.delete_range(
                Space::Log,
                storage::log_key(first.index),
                storage::log_key(self.last_index.next()),
            );
            self.configs.split_off(&first.index);
        }
        for e in entries {
            self.bytes_since_compaction += e.size_hint();
            storage::put_entry(&mut batch, e);
            if let EntryKind::Config(change) = &e.kind {
                // A leader only appends changes that apply; a follower trusts its leader's log.
                if let Ok(m) = self.membership().apply(change) {
                    self.configs.insert(e.index, m);
                }
            }
        }
        store.write(batch)?;
        self.wrote();
        self.cache_appended(entries);
        let last = entries.last().map_or(first, |e| e);
        self.last_index = last.index;
        self.last_term = last.term;
        self.self_match = self.self_match.min(self.last_index);
        if self.role == Role::Leader {
            self.sync_progress_set();
        }
        Ok(())
    }

    fn append_as_leader(
        &mut self,
        store: &mut impl Store,
        kind: EntryKind,
    ) -> Result<LogIndex, ProposeError> {
        self.append_all(store, vec![kind]).map(|(index, _)| index)
    }

    /// Appends entries of `kinds` (leader only) in one store write and one round of appends
    /// to the followers; returns the first index and the term.
    fn append_all(
        &mut self,
        store: &mut impl Store,
        kinds: Vec<EntryKind>,
    ) -> Result<(LogIndex, Term), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        let first = self.last_index.next();
        let term = self.term;
        if kinds.is_empty() {
            return Ok((first, term));
        }
        let entries: Vec<Entry> = kinds
            .into_iter()
            .enumerate()
            .map(|(i, kind)| Entry {
                term,
                index: LogIndex(first.0 + i as u64),
                kind,
            })
            .collect();
        let last = entries.last().map_or(first, |e| e.index);
        self.write_entries(store, &entries)
            .map_err(|e| ProposeError::Store(e.to_string()))?;
        self.ack_self(last);
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for id in peers {
            self.send_append(store, id)
                .map_err(|e| ProposeError::Store(e.to_string()))?;
        }
        if self.is_bug_count_unsynced_self() {
            self.maybe_commit(store)
                .map_err(|e| ProposeError::Store(e.to_string()))?;
        }
        Ok((first, term))
    }

    fn ack_self(&mut self, index: LogIndex) {
        if self.is_bug_count_unsynced_self() {
            self.self_match = self.self_match.max(index);
        } else {
            self.hold(Held::SelfAck(self.term, index));
        }
    }

    // ----- roles ------------------------------------------------------------------------------

    fn become_follower(&mut self, store: &mut impl Store, term: Term, leader: Option<NodeId>) -> R {
        if term > self.term {
            self.term = term;
            self.vote = None;
            self.persist_hard_state(store)?;
        }
        if self.role == Role::Leader {
            self.fail_reads();
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        self.progress.clear();
        self.transfer = None;
        self.reset_election_deadline();
        Ok(())
    }

    fn start_pre_vote(&mut self, store: &mut impl Store) -> R {
        if self.role == Role::Leader {
            self.fail_reads();
        }
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes.clear();
        self.votes.insert(self.cfg.id, true);
        let msg = Message::PreVote {
            term: Term(self.term.0 + 1),
            last_log_index: self.last_index,
            last_log_term: self.last_term,
        };
        for id in self.other_voters() {
            self.send(id, msg.clone());
        }
        self.tally_votes(store)
    }

    fn start_election(&mut self, store: &mut impl Store, transfer: bool) -> R {
        if self.role == Role::Leader {
            self.fail_reads();
        }
        self.role = Role::Candidate;
        self.term = Term(self.term.0 + 1);
        self.vote = Some(self.cfg.id);
        self.leader = None;
        self.progress.clear();
        self.transfer = None;
        self.persist_hard_state(store)?;
        self.votes.clear();
        // The self-vote counts only once it is durable (released by flush).
        self.hold(Held::SelfVote(self.term));
        self.reset_election_deadline();
        let msg = Message::RequestVote {
            term: self.term,
            last_log_index: self.last_index,
            last_log_term: self.last_term,
            transfer,
        };
        for id in self.other_voters() {
            self.send(id, msg.clone());
        }
        Ok(())
    }

    fn tally_votes(&mut self, store: &mut impl Store) -> R {
        let voters = &self.membership().voters;
        let quorum = self.membership().quorum();
        let granted = voters
            .iter()
            .filter(|v| self.votes.get(v) == Some(&true))
            .count();
        let rejected = voters
            .iter()
            .filter(|v| self.votes.get(v) == Some(&false))
            .count();
        if granted >= quorum {
            match self.role {
                Role::PreCandidate => self.start_election(store, false)?,
                Role::Candidate => self.become_leader(store)?,
                Role::Follower | Role::Leader => {}
            }
        } else if rejected >= quorum {
            self.become_follower(store, self.term, None)?;
        }
        Ok(())
    }

    fn become_leader(&mut self, store: &mut impl Store) -> R {
        assert_eq!(self.role, Role::Candidate);
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id);
        self.votes.clear();
        self.self_match = LogIndex(0);
        self.progress.clear();
        self.sync_progress_set();
        self.heartbeat_deadline = self.now;
        self.quorum_deadline = self.now.saturating_add(self.election_min());
        self.term_start = self.last_index.next();
        self.append_as_leader(store, EntryKind::Noop)
            .map_err(|e| match e {
                ProposeError::Store(s) => StoreError::Engine(s),
                other => unreachable!("a fresh leader's noop cannot fail with {other}"),
            })?;
        Ok(())
    }

    /// Makes `progress` hold exactly the other members.
    fn sync_progress_set(&mut self) {
        let members = self.membership().members();
        self.progress
            .retain(|id, _| members.contains(id) && *id != self.cfg.id);
        for id in members {
            if id != self.cfg.id && !self.progress.contains_key(&id) {
                self.progress.insert(
                    id,
                    Progress {
                        next: self.last_index.next(),
                        matched: LogIndex(0),
                        inflight: VecDeque::new(),
                        probing: true,
                        recent_active: true,
                        last_ack: self.now,
                        hb_seq_acked: 0,
                        snap: None,
                    },
                );
            }
        }
    }

    fn other_voters(&self) -> Vec<NodeId> {
        self.membership()
            .voters
            .iter()
            .copied()
            .filter(|id| *id != self.cfg.id)
            .collect()
    }

    fn check_quorum(&mut self, store: &mut impl Store) -> R {
        let voters = self.membership().voters.clone();
        let mut active = usize::from(voters.contains(&self.cfg.id));
        for (id, p) in &mut self.progress {
            if voters.contains(id) && p.recent_active {
                active += 1;
            }
            p.recent_active = false;
        }
        if active < self.membership().quorum() {
            self.become_follower(store, self.term, None)?;
        }
        Ok(())
    }

    fn emit_leader_change(&mut self) {
        let now = (self.leader, self.term);
        if now != self.emitted_leader {
            self.emitted_leader = now;
            self.out.push_back(RaftOutput::LeaderChanged {
                leader: self.leader,
                term: self.term,
            });
        }
    }

    // ----- sending ----------------------------------------------------------------------------

    fn send(&mut self, to: NodeId, msg: Message) {
        if self.is_member(to) {
            self.contacts.entry(to).or_default().last_sent = Some(self.now);
        }
        self.out.push_back(RaftOutput::Send { to, msg });
    }

    fn send_held(&mut self, to: NodeId, msg: Message) {
        self.hold(Held::Output(RaftOutput::Send { to, msg }));
    }

    /// Sends the next batch of entries to `to` if the in-flight window allows.
    fn send_append(&mut self, store: &mut impl Store, to: NodeId) -> R {
        let Some(p) = self.progress.get(&to) else {
            return Ok(());
        };
        let window = if p.probing {
            1
        } else {
            self.cfg.max_inflight_appends as usize
        };
        if p.snap.is_some() || p.inflight.len() >= window || p.next > self.last_index {
            return Ok(());
        }
        let next = p.next;
        if next == LogIndex(1) && p.matched == LogIndex(0) && self.applied.0 > 0 {
            // A member with an empty log joined after the cluster started: it cannot know the
            // membership at the start of the log, so replaying the log's membership changes
            // would be guesswork. A snapshot carries the exact membership at its index.
            if !self.membership().voters.contains(&to) {
                return self.start_snapshot(store, to);
            }
        }
        let prev_index = next.prev();
        let Some(prev_term) = self.term_at(store, prev_index)? else {
            // The entries it needs were compacted away: send the state instead.
            return self.start_snapshot(store, to);
        };
        let mut entries = Vec::new();
        let mut bytes = 0u64;
        let mut i = next;
        while i <= self.last_index && entries.len() < self.cfg.max_entries_per_append as usize {
            let e = self.entry(store, i)?;
            bytes += e.size_hint();
            if !entries.is_empty() && bytes > self.cfg.max_bytes_per_append {
                break;
            }
            entries.push(e);
            i = i.next();
        }
        let last_sent = i.prev();
        let p = self.progress.get_mut(&to).expect("checked above");
        p.inflight.push_back(last_sent);
        if !p.probing {
            p.next = last_sent.next();
        }
        let msg = Message::AppendEntries {
            term: self.term,
            prev_index,
            prev_term,
            entries,
            commit: self.commit,
        };
        self.send(to, msg);
        Ok(())
    }

    fn start_snapshot(&mut self, store: &mut impl Store, to: NodeId) -> R {
        // The newest applied state, not an older checkpoint: the follower needs less log.
        store.write_back()?;
        let view = store.snapshot()?;
        let index = storage::applied_index(&view)?.max(self.base.index);
        let term = self
            .term_at(store, index)?
            .ok_or_else(|| StoreError::Corrupt {
                space: Space::Log,
                detail: format!("no term for snapshot index {}", index.0),
            })?;
        let meta = SnapshotMeta {
            index,
            term,
            membership: self.membership_at(index).clone(),
        };
        let Some(p) = self.progress.get_mut(&to) else {
            return Ok(());
        };
        p.snap = Some(SnapSend {
            view: Box::new(view),
            meta,
            chunk: 0,
            start: Cursor::default(),
            end: Cursor::default(),
        });
        p.inflight.clear();
        p.last_ack = self.now;
        self.send_snapshot_chunk(to)
    }

    /// (Re)sends the current chunk of the snapshot in flight to `to`.
    fn send_snapshot_chunk(&mut self, to: NodeId) -> R {
        let term = self.term;
        let max = self.cfg.snapshot_chunk_bytes;
        let Some(snap) = self.progress.get_mut(&to).and_then(|p| p.snap.as_mut()) else {
            return Ok(());
        };
        let (data, end, done) = snapshot::read_chunk(snap.view.as_ref(), &snap.start, max)?;
        snap.end = end;
        let msg = Message::InstallSnapshot {
            term,
            meta: snap.meta.clone(),
            chunk: snap.chunk,
            data,
            done,
        };
        self.send(to, msg);
        Ok(())
    }

    fn on_snapshot_response(
        &mut self,
        store: &mut impl Store,
        from: NodeId,
        index: LogIndex,
        next_chunk: u32,
        done: bool,
    ) -> R {
        if self.role != Role::Leader {
            return Ok(());
        }
        let now = self.now;
        let Some(p) = self.progress.get_mut(&from) else {
            return Ok(());
        };
        p.recent_active = true;
        let Some(snap) = p.snap.as_mut() else {
            return Ok(());
        };
        if snap.meta.index != index {
            return Ok(()); // an answer about an earlier transfer
        }
        p.last_ack = now;
        if done {
            p.snap = None;
            p.matched = p.matched.max(index);
            p.next = p.matched.next();
            p.probing = true;
            p.inflight.clear();
            self.maybe_commit(store)?;
            return self.send_append(store, from);
        }
        if next_chunk == snap.chunk + 1 {
            snap.start = snap.end.clone();
            snap.chunk = next_chunk;
        } else if next_chunk == snap.chunk {
            return Ok(()); // a duplicate; the stall timer resends the chunk if it was lost
        } else {
            // The follower is somewhere this leader cannot seek to: start over.
            snap.start = Cursor::default();
            snap.chunk = 0;
        }
        self.send_snapshot_chunk(from)
    }

    #[allow(clippy::too_many_arguments)]
    fn on_install_snapshot(
        &mut self,
        store: &mut impl Store,
        from: NodeId,
        meta: SnapshotMeta,
        chunk: u32,
        data: Vec<(StateSpace, Vec<u8>, Vec<u8>)>,
        done: bool,
    ) -> R {
        let reply = |term, next_chunk, done| Message::InstallSnapshotResponse {
            term,
            snapshot_index: meta.index,
            next_chunk,
            done,
        };
        if meta.index <= self.commit {
            // Already have all of it through the log; acknowledge once that log is durable.
            self.receiving = None;
            let msg = reply(self.term, 0, true);
            self.send_held(from, msg);
            return Ok(());
        }
        // Chunk 0 always (re)starts a transfer: the leader restarts when it lost track.
        let expected = match &self.receiving {
            Some((m, n)) if *m == meta && chunk != 0 => *n,
            _ => 0,
        };
        if chunk != expected {
            let msg = reply(self.term, expected, false);
            self.send(from, msg);
            return Ok(());
        }
        let mut batch = WriteBatch::new();
        if chunk == 0 {
            snapshot::clear_staging(&mut batch);
        }
        snapshot::stage(&mut batch, &data);
        store.write(batch)?;
        if !done {
            self.receiving = Some((meta.clone(), chunk + 1));
            let msg = reply(self.term, chunk + 1, false);
            self.send(from, msg);
            return Ok(());
        }
        self.receiving = None;
        self.install_staged(store, &meta)?;
        let msg = reply(self.term, chunk + 1, true);
        self.send_held(from, msg);
        Ok(())
    }

    /// Replaces state, log base, log and applied index with the staged snapshot, atomically.
    fn install_staged(&mut self, store: &mut impl Store, meta: &SnapshotMeta) -> R {
        assert!(
            meta.index > self.commit,
            "installing a snapshot behind the commit index"
        );
        let keep_suffix = self.term_at(store, meta.index)? == Some(meta.term);
        let mut batch = WriteBatch::new();
        snapshot::promote_staging(store, &mut batch)?;
        let log_end = if keep_suffix {
            meta.index.next()
        } else {
            self.last_index.next()
        };
        batch.delete_range(
            Space::Log,
            storage::log_key(LogIndex(0)),
            storage::log_key(log_end),
        );
        batch.put(Space::Raft, storage::KEY_LOG_BASE, storage::encode(meta));
        storage::record_applied(&mut batch, meta.index);
        store.write(batch)?;
        self.wrote();
        self.base = meta.clone();
        if keep_suffix {
            self.configs = self.configs.split_off(&meta.index.next());
            self.cache_compacted(meta.index);
        } else {
            self.clear_cache();
            self.last_index = meta.index;
            self.last_term = meta.term;
            self.configs.clear();
        }
        self.commit = meta.index;
        self.applied = meta.index;
        // The snapshot supersedes every entry at or below its index, whatever was queued
        // before it: entries committed earlier in this drive round and handed out for applying
        // are already in the state it carries. Applying them again on top of it would apply
        // them twice (an INCR counted twice) and move the stored applied index backwards.
        if !self.is_bug_apply_under_snapshot() {
            self.out
                .retain(|o| !matches!(o, RaftOutput::Apply(e) if e.index <= meta.index));
        }
        self.out
            .push_back(RaftOutput::SnapshotInstalled { index: meta.index });
        Ok(())
    }

    fn broadcast_heartbeat(&mut self) {
        self.hb_seq += 1;
        let targets: Vec<(NodeId, LogIndex)> = self
            .progress
            .iter()
            .map(|(id, p)| (*id, p.matched))
            .collect();
        for (id, matched) in targets {
            let msg = Message::Heartbeat {
                term: self.term,
                commit: self.commit.min(matched),
                seq: self.hb_seq,
            };
            self.send(id, msg);
        }
        self.release_reads();
    }

    /// An append or its answer was lost: after two heartbeat intervals without an
    /// acknowledgement, fall back to probing from the known match.
    fn retransmit_stalled(&mut self, store: &mut impl Store) -> R {
        let stall = self.heartbeat() * 2;
        let mut stalled = Vec::new();
        let mut resend = Vec::new();
        for (id, p) in &mut self.progress {
            let behind = p.matched < self.last_index;
            if p.snap.is_some() {
                if self.now.saturating_since(p.last_ack) >= stall {
                    p.last_ack = self.now;
                    resend.push(*id);
                }
                continue;
            }
            if behind && self.now.saturating_since(p.last_ack) >= stall {
                p.probing = true;
                p.inflight.clear();
                p.next = p.matched.next();
                p.last_ack = self.now;
                stalled.push(*id);
            }
        }
        for id in stalled {
            self.send_append(store, id)?;
        }
        for id in resend {
            self.send_snapshot_chunk(id)?;
        }
        Ok(())
    }

    fn maybe_send_timeout_now(&mut self, to: NodeId) {
        let Some((target, _)) = self.transfer else {
            return;
        };
        if target != to {
            return;
        }
        if self
            .progress
            .get(&to)
            .is_some_and(|p| p.matched == self.last_index)
        {
            self.send(to, Message::TimeoutNow { term: self.term });
        }
    }

    // ----- receiving --------------------------------------------------------------------------

    fn step(&mut self, store: &mut impl Store, from: NodeId, msg: Message) -> R {
        let term = msg.term();
        match msg {
            Message::PreVote {
                term,
                last_log_index,
                last_log_term,
            } => {
                if self.in_leader_lease() {
                    return Ok(());
                }
                let granted =
                    term > self.term && self.log_up_to_date(last_log_index, last_log_term);
                let term = if granted { term } else { self.term };
                self.send(from, Message::PreVoteResponse { term, granted });
                Ok(())
            }
            Message::RequestVote {
                term,
                last_log_index,
                last_log_term,
                transfer,
            } => self.on_request_vote(store, from, term, last_log_index, last_log_term, transfer),
            _ if term > self.term => {
                if let Message::PreVoteResponse { granted: true, .. } = msg {
                    return self.on_vote_response(store, from, term, true, true);
                }
                let leader = match msg {
                    Message::AppendEntries { .. }
                    | Message::Heartbeat { .. }
                    | Message::InstallSnapshot { .. } => Some(from),
                    _ => None,
                };
                self.become_follower(store, term, leader)?;
                self.step_current(store, from, msg)
            }
            _ if term < self.term => {
                // Tell a stale leader about the newer term so it steps down; drop the rest.
                match msg {
                    Message::AppendEntries { .. } | Message::Heartbeat { .. } => {
                        let reply = Message::AppendResponse {
                            term: self.term,
                            success: false,
                            index: LogIndex(0),
                            hint: None,
                        };
                        self.send(from, reply);
                    }
                    _ => {}
                }
                Ok(())
            }
            _ => self.step_current(store, from, msg),
        }
    }

    /// A message whose term equals ours (after any step-down).
    fn step_current(&mut self, store: &mut impl Store, from: NodeId, msg: Message) -> R {
        match msg {
            Message::PreVote { .. } | Message::RequestVote { .. } => {
                unreachable!("handled in step")
            }
            Message::PreVoteResponse { term, granted } => {
                self.on_vote_response(store, from, term, granted, true)
            }
            Message::RequestVoteResponse { term, granted } => {
                self.on_vote_response(store, from, term, granted, false)
            }
            Message::AppendEntries {
                prev_index,
                prev_term,
                entries,
                commit,
                ..
            } => {
                self.accept_leader(store, from)?;
                self.on_append(store, from, prev_index, prev_term, entries, commit)
            }
            Message::Heartbeat { commit, seq, .. } => {
                self.accept_leader(store, from)?;
                if commit > self.commit {
                    self.advance_commit(store, commit.min(self.last_index))?;
                }
                self.send(
                    from,
                    Message::HeartbeatResponse {
                        term: self.term,
                        seq,
                    },
                );
                Ok(())
            }
            Message::AppendResponse {
                success,
                index,
                hint,
                ..
            } => self.on_append_response(store, from, success, index, hint),
            Message::HeartbeatResponse { seq, .. } => {
                if self.role != Role::Leader {
                    return Ok(());
                }
                let behind = if let Some(p) = self.progress.get_mut(&from) {
                    p.recent_active = true;
                    p.hb_seq_acked = p.hb_seq_acked.max(seq);
                    if p.probing {
                        p.inflight.clear();
                    }
                    p.matched < self.last_index
                } else {
                    false
                };
                self.release_reads();
                if behind {
                    self.send_append(store, from)?;
                }
                Ok(())
            }
            Message::TimeoutNow { .. } => {
                if self.role != Role::Leader && self.membership().voters.contains(&self.cfg.id) {
                    self.start_election(store, true)?;
                }
                Ok(())
            }
            Message::InstallSnapshot {
                meta,
                chunk,
                data,
                done,
                ..
            } => {
                self.accept_leader(store, from)?;
                self.on_install_snapshot(store, from, meta, chunk, data, done)
            }
            Message::InstallSnapshotResponse {
                snapshot_index,
                next_chunk,
                done,
                ..
            } => self.on_snapshot_response(store, from, snapshot_index, next_chunk, done),
        }
    }

    fn accept_leader(&mut self, store: &mut impl Store, from: NodeId) -> R {
        if self.role != Role::Follower || self.leader != Some(from) {
            assert_ne!(
                self.role,
                Role::Leader,
                "two leaders in term {}",
                self.term.0
            );
            self.become_follower(store, self.term, Some(from))?;
        }
        self.last_leader_contact = Some(self.now);
        self.reset_election_deadline();
        Ok(())
    }

    fn on_request_vote(
        &mut self,
        store: &mut impl Store,
        from: NodeId,
        term: Term,
        last_log_index: LogIndex,
        last_log_term: Term,
        transfer: bool,
    ) -> R {
        if !transfer && self.in_leader_lease() {
            return Ok(());
        }
        if term > self.term {
            self.become_follower(store, term, None)?;
        }
        if term < self.term {
            let reply = Message::RequestVoteResponse {
                term: self.term,
                granted: false,
            };
            self.send(from, reply);
            return Ok(());
        }
        let can_vote = self.vote.is_none_or(|v| v == from);
        let granted = can_vote && self.log_up_to_date(last_log_index, last_log_term);
        let reply = Message::RequestVoteResponse {
            term: self.term,
            granted,
        };
        if granted {
            self.vote = Some(from);
            self.persist_hard_state(store)?;
            self.reset_election_deadline();
            if self.is_bug_vote_without_persist() {
                self.send(from, reply);
            } else {
                self.send_held(from, reply);
            }
        } else {
            self.send(from, reply);
        }
        Ok(())
    }

    fn on_vote_response(
        &mut self,
        store: &mut impl Store,
        from: NodeId,
        term: Term,
        granted: bool,
        pre: bool,
    ) -> R {
        let expected = if pre {
            (Role::PreCandidate, Term(self.term.0 + 1))
        } else {
            (Role::Candidate, self.term)
        };
        if (self.role, term) != expected {
            return Ok(());
        }
        self.votes.insert(from, granted);
        self.tally_votes(store)
    }

    #[allow(clippy::too_many_arguments)]
    fn on_append(
        &mut self,
        store: &mut impl Store,
        from: NodeId,
        prev_index: LogIndex,
        prev_term: Term,
        entries: Vec<Entry>,
        leader_commit: LogIndex,
    ) -> R {
        if prev_index < self.commit {
            // Everything up to our commit matches the leader already; skip that part.
            let skip = (self.commit.0 - prev_index.0) as usize;
            if skip >= entries.len() {
                let reply = self.append_ok(self.commit);
                self.send_held(from, reply);
                return Ok(());
            }
            let prev = entries[skip - 1].clone();
            let rest = entries[skip..].to_vec();
            return self.on_append(store, from, prev.index, prev.term, rest, leader_commit);
        }
        let ours = self.term_at(store, prev_index)?;
        if ours != Some(prev_term) {
            let hint = self.conflict_hint(store, prev_index, ours)?;
            let reply = Message::AppendResponse {
                term: self.term,
                success: false,
                index: prev_index,
                hint: Some(hint),
            };
            self.send(from, reply);
            return Ok(());
        }
        let mut first_new = None;
        for (i, e) in entries.iter().enumerate() {
            if self.term_at(store, e.index)? != Some(e.term) {
                first_new = Some(i);
                break;
            }
        }
        let last_new = LogIndex(prev_index.0 + entries.len() as u64);
        if let Some(i) = first_new {
            self.write_entries(store, &entries[i..])?;
        }
        let commit = leader_commit.min(last_new);
        if commit > self.commit {
            self.advance_commit(store, commit)?;
        }
        let reply = self.append_ok(last_new);
        self.send_held(from, reply);
        Ok(())
    }

    fn append_ok(&self, index: LogIndex) -> Message {
        Message::AppendResponse {
            term: self.term,
            success: true,
            index,
            hint: None,
        }
    }

    fn conflict_hint(
        &self,
        store: &impl StoreRead,
        prev_index: LogIndex,
        ours: Option<Term>,
    ) -> R<ConflictHint> {
        let Some(t) = ours else {
            return Ok(ConflictHint {
                term: None,
                index: self.last_index.next().min(prev_index),
            });
        };
        // Walk back to the first entry of that term, never below the commit index (which
        // matches the leader).
        let mut i = prev_index;
        while i > self.commit.next() && i.prev() > self.base.index {
            if self.term_at(store, i.prev())? != Some(t) {
                break;
            }
            i = i.prev();
        }
        Ok(ConflictHint {
            term: Some(t),
            index: i,
        })
    }

    fn on_append_response(
        &mut self,
        store: &mut impl Store,
        from: NodeId,
        success: bool,
        index: LogIndex,
        hint: Option<ConflictHint>,
    ) -> R {
        if self.role != Role::Leader {
            return Ok(());
        }
        let last_index = self.last_index;
        let Some(p) = self.progress.get_mut(&from) else {
            return Ok(());
        };
        p.recent_active = true;
        if success {
            if index > p.matched {
                p.matched = index.min(last_index);
                p.last_ack = self.now;
            }
            p.next = p.next.max(p.matched.next());
            p.inflight.retain(|i| *i > index);
            p.probing = false;
            self.maybe_commit(store)?;
            self.maybe_send_timeout_now(from);
        } else {
            if index < p.matched || hint.is_none() {
                return Ok(()); // stale rejection
            }
            let hint = hint.expect("checked above");
            p.last_ack = self.now;
            let mut next = hint.index;
            if let Some(t) = hint.term
                && let Some(i) = self.last_index_of_term(store, t, index)?
            {
                next = i.next();
            }
            let p = self.progress.get_mut(&from).expect("checked above");
            p.next = next.max(p.matched.next()).min(index.max(p.matched.next()));
            p.probing = true;
            p.inflight.clear();
        }
        self.send_append(store, from)
    }

    /// The last index at or below `upto` whose term is `t`, if the leader has one.
    fn last_index_of_term(
        &self,
        store: &impl StoreRead,
        t: Term,
        upto: LogIndex,
    ) -> R<Option<LogIndex>> {
        let mut i = upto.min(self.last_index);
        while i > self.base.index {
            match self.term_at(store, i)? {
                Some(x) if x == t => return Ok(Some(i)),
                Some(x) if x < t => return Ok(None),
                _ => i = i.prev(),
            }
        }
        Ok(None)
    }

    // ----- commit and apply -------------------------------------------------------------------

    fn maybe_commit(&mut self, store: &mut impl Store) -> R {
        if self.role != Role::Leader {
            return Ok(());
        }
        let membership = self.membership().clone();
        let mut matches: Vec<LogIndex> = membership
            .voters
            .iter()
            .map(|id| {
                if *id == self.cfg.id {
                    self.self_match
                } else {
                    self.progress.get(id).map_or(LogIndex(0), |p| p.matched)
                }
            })
            .collect();
        matches.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = matches[membership.quorum() - 1];
        if candidate <= self.commit {
            return Ok(());
        }
        let current = self.term_at(store, candidate)? == Some(self.term);
        if current || self.is_bug_commit_old_term() {
            self.advance_commit(store, candidate)?;
        }
        Ok(())
    }

    fn advance_commit(&mut self, store: &mut impl Store, commit: LogIndex) -> R {
        assert!(commit <= self.last_index);
        if commit <= self.commit {
            return Ok(());
        }
        self.commit = commit;
        while self.applied < self.commit {
            let e = self.entry(store, self.applied.next())?;
            self.applied = e.index;
            self.out.push_back(RaftOutput::Apply(e));
        }
        // A leader removed from the voters steps down once the change is committed.
        let removed = !self.membership().voters.contains(&self.cfg.id);
        let settled = self.configs.range(self.commit.next()..).next().is_none();
        if self.role == Role::Leader && removed && settled {
            self.become_follower(store, self.term, None)?;
        }
        self.release_reads();
        Ok(())
    }

    fn release(&mut self, store: &mut impl Store, h: Held) -> R {
        match h {
            Held::Output(o) => self.out.push_back(o),
            Held::SelfAck(term, index) => {
                if self.role == Role::Leader && term == self.term && index <= self.last_index {
                    self.self_match = self.self_match.max(index);
                    self.maybe_commit(store)?;
                }
            }
            Held::SelfVote(term) => {
                if self.role == Role::Candidate && term == self.term {
                    self.votes.insert(self.cfg.id, true);
                    self.tally_votes(store)?;
                }
            }
        }
        Ok(())
    }

    // ----- reads ------------------------------------------------------------------------------

    fn release_reads(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let membership = self.membership().clone();
        while let Some(r) = self.reads.front().copied() {
            let acks = membership
                .voters
                .iter()
                .filter(|id| {
                    **id == self.cfg.id
                        || self
                            .progress
                            .get(id)
                            .is_some_and(|p| p.hb_seq_acked >= r.seq)
                })
                .count();
            if acks < membership.quorum() || r.seq > self.hb_seq {
                break;
            }
            self.reads.pop_front();
            self.out.push_back(RaftOutput::ReadReady {
                ctx: r.ctx,
                index: r.index,
            });
        }
    }

    fn fail_reads(&mut self) {
        for r in self.reads.drain(..) {
            self.out.push_back(RaftOutput::ReadFailed { ctx: r.ctx });
        }
    }

    // ----- planted bugs -----------------------------------------------------------------------

    #[cfg(feature = "planted-bugs")]
    fn is_bug_count_unsynced_self(&self) -> bool {
        self.cfg.bugs.count_unsynced_self
    }
    #[cfg(not(feature = "planted-bugs"))]
    fn is_bug_count_unsynced_self(&self) -> bool {
        false
    }
    #[cfg(feature = "planted-bugs")]
    fn is_bug_vote_without_persist(&self) -> bool {
        self.cfg.bugs.vote_without_persist
    }
    #[cfg(not(feature = "planted-bugs"))]
    fn is_bug_vote_without_persist(&self) -> bool {
        false
    }
    #[cfg(feature = "planted-bugs")]
    fn is_bug_commit_old_term(&self) -> bool {
        self.cfg.bugs.commit_old_term
    }
    #[cfg(not(feature = "planted-bugs"))]
    fn is_bug_commit_old_term(&self) -> bool {
        false
    }
    #[cfg(feature = "planted-bugs")]
    fn is_bug_apply_under_snapshot(&self) -> bool {
        self.cfg.bugs.apply_under_snapshot
    }
    #[cfg(not(feature = "planted-bugs"))]
    fn is_bug_apply_under_snapshot(&self) -> bool {
        false
    }
}
