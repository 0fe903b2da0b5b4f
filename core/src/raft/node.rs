//! The Raft node: its state and construction, the public entry points (proposals, messages,
//! timers, outputs, status) and the dispatch of messages to the jobs below, and its local
//! invariants.
//!
//! # Layout
//!
//! Each job of the node lives in a sibling module with its own `impl Raft` block:
//! `election` (roles, PreVote, votes, CheckQuorum), `replication` (the leader's appends and
//! heartbeats, the follower's append handling, leadership transfer), `commit` (the commit
//! rule and handing out committed entries), `reads` (ReadIndex), `snapshot_transfer`
//! (snapshots sent and installed), `log` (reading and writing entries, the entry cache),
//! `compaction` (dropping the log behind the durable applied index), `membership`
//! (single-server changes) and `durability` (writes, syncs and the outputs held for them).
//!
//! Public methods that belong to one job live with it: `flush`, `pipeline_syncs`, `synced`,
//! `sync_running`, `needs_flush` and `sync_count` in `durability`, `read_index` in `reads`,
//! `compact_to_durable` in `compaction`, and `propose_conf_change`, `check_conf_change` and
//! `membership` in `membership`.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use super::durability::Held;
use super::message::SnapshotMeta;
use super::reads::PendingRead;
use super::replication::Progress;
use super::storage::{self, HardState, LogBase};
use super::{
    Entry, EntryKind, LogIndex, Membership, Message, NodeId, ProposeError, RaftConfig, RaftError,
    RaftOutput, Term,
};
use crate::Instant;
use crate::store::{Space, Store, StoreError, StoreRead};

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

#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Contact {
    pub(super) last_heard: Option<Instant>,
    pub(super) last_sent: Option<Instant>,
    pub(super) error: bool,
}

/// A Raft node. See the module docs for the drive rule.
#[derive(Debug)]
pub struct Raft {
    pub(super) cfg: RaftConfig,
    pub(super) rng: ChaCha8Rng,
    pub(super) now: Instant,
    pub(super) role: Role,
    pub(super) term: Term,
    pub(super) vote: Option<NodeId>,
    pub(super) leader: Option<NodeId>,
    pub(super) base: LogBase,
    pub(super) last_index: LogIndex,
    pub(super) last_term: Term,
    pub(super) commit: LogIndex,
    pub(super) applied: LogIndex,
    /// Membership from each config entry in the log after `base`.
    pub(super) configs: BTreeMap<LogIndex, Membership>,
    pub(super) election_deadline: Instant,
    pub(super) heartbeat_deadline: Instant,
    pub(super) quorum_deadline: Instant,
    pub(super) last_leader_contact: Option<Instant>,
    pub(super) votes: BTreeMap<NodeId, bool>,
    pub(super) progress: BTreeMap<NodeId, Progress>,
    pub(super) contacts: BTreeMap<NodeId, Contact>,
    pub(super) self_match: LogIndex,
    pub(super) term_start: LogIndex,
    /// Store writes that back a promise, made so far (log entries, hard state, snapshot
    /// installs; not compactions, whose loss leaves the log still valid).
    pub(super) writes: u64,
    /// The write count the latest sync started with covers (inline: the latest sync's).
    pub(super) sync_started: u64,
    /// The write count the latest completed sync covers: what a crash cannot undo.
    pub(super) synced: u64,
    /// Pipelined syncs: [`RaftOutput::Sync`] asks the owner for each one.
    pub(super) pipelined: bool,
    /// The pipelined sync running: the write count it covers and the store's applied index
    /// when it started (durable once it completes).
    pub(super) sync_in_flight: Option<(u64, LogIndex)>,
    /// Outputs waiting for a sync, each with the write count it waits for, in order.
    pub(super) held: VecDeque<(u64, Held)>,
    pub(super) out: VecDeque<RaftOutput>,
    pub(super) emitted_leader: (Option<NodeId>, Term),
    pub(super) hb_seq: u64,
    pub(super) reads: VecDeque<PendingRead>,
    pub(super) read_broadcast_owed: bool,
    pub(super) transfer: Option<(NodeId, Instant)>,
    /// Follower: the snapshot being received and the next chunk expected.
    pub(super) receiving: Option<(SnapshotMeta, u32)>,
    /// The owner's applied index as of the last sync (what a crash cannot undo).
    pub(super) durable_applied: LogIndex,
    /// Store syncs so far (INFO `total_syncs`).
    pub(super) syncs: u64,
    /// Approximate bytes of entries appended since the last compaction.
    pub(super) bytes_since_compaction: u64,
    /// The durable applied index eager compaction last looked at ([`Raft::maybe_compact`]).
    pub(super) eager_checked: LogIndex,
    /// The newest entries, in memory: applying and replicating them needs no store read and
    /// decode. A contiguous run ending at `last_index`, bounded by
    /// [`ENTRY_CACHE_BYTES`](super::log::ENTRY_CACHE_BYTES).
    pub(super) cache: VecDeque<Entry>,
    pub(super) cache_bytes: u64,
}

pub(super) type R<T = ()> = Result<T, StoreError>;

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

    pub(super) fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.cfg.heartbeat_interval_ms)
    }

    pub(super) fn election_min(&self) -> Duration {
        Duration::from_millis(self.cfg.election_timeout_ms_min)
    }

    pub(super) fn reset_election_deadline(&mut self) {
        let span = self.cfg.election_timeout_ms_max - self.cfg.election_timeout_ms_min;
        let ms = self.cfg.election_timeout_ms_min + self.rng.next_u64() % span;
        self.election_deadline = self.now.saturating_add(Duration::from_millis(ms));
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

    // ----- planted bugs -----------------------------------------------------------------------

    #[cfg(feature = "planted-bugs")]
    pub(super) fn is_bug_count_unsynced_self(&self) -> bool {
        self.cfg.bugs.count_unsynced_self
    }
    #[cfg(not(feature = "planted-bugs"))]
    pub(super) fn is_bug_count_unsynced_self(&self) -> bool {
        false
    }
    #[cfg(feature = "planted-bugs")]
    pub(super) fn is_bug_vote_without_persist(&self) -> bool {
        self.cfg.bugs.vote_without_persist
    }
    #[cfg(not(feature = "planted-bugs"))]
    pub(super) fn is_bug_vote_without_persist(&self) -> bool {
        false
    }
    #[cfg(feature = "planted-bugs")]
    pub(super) fn is_bug_commit_old_term(&self) -> bool {
        self.cfg.bugs.commit_old_term
    }
    #[cfg(not(feature = "planted-bugs"))]
    pub(super) fn is_bug_commit_old_term(&self) -> bool {
        false
    }
    #[cfg(feature = "planted-bugs")]
    pub(super) fn is_bug_apply_under_snapshot(&self) -> bool {
        self.cfg.bugs.apply_under_snapshot
    }
    #[cfg(not(feature = "planted-bugs"))]
    pub(super) fn is_bug_apply_under_snapshot(&self) -> bool {
        false
    }
}
