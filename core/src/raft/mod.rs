//! Raft consensus as a sans-IO state machine.
//!
//! This module contains no networking code, reads no clock and draws no OS randomness: time
//! enters as [`Instant`] values, randomness as a seed, storage through the [`Store`] port, and
//! work leaves as [`RaftOutput`] values. The protocol is Raft (Ongaro & Ousterhout) with PreVote
//! and CheckQuorum, pipelined batched AppendEntries with fast conflict backtracking, ReadIndex
//! and single-server membership changes with learners.
//!
//! # Drive rule
//!
//! After a batch of `handle_*`/`propose`/`read_index` calls, call [`Raft::flush`] (which syncs
//! the store at most once and releases outputs that promise durable state), then drain
//! [`Raft::poll_output`] until it returns `None`, then wait for the next input or
//! [`Raft::poll_timeout`]. Outputs that promise durability (a vote granted, an append
//! acknowledged, the leader counting its own entry toward a majority) never leave before the
//! `flush` that synced them: many proposals share one sync (group commit). Draining
//! `poll_output` before `flush` is also fine: it only ever holds outputs that promise nothing
//! unsynced (which is how a leader sends AppendEntries before its own sync).
//!
//! # What lives where in the store
//!
//! - [`Space::Log`]: one record per entry keyed by the big-endian index.
//! - [`Space::Raft`]: hard state (term, vote), the log base (the index, term and membership at
//!   the start of the log), the state machine's applied index written by the owner with
//!   [`record_applied`] in the same batch as the entry's state changes, and a staging area for
//!   a snapshot being received.
//!
//! The protocol, message table, timing defaults and failure model are in `docs/cluster.md`.
//!
//! Every record starts with a format version byte and is postcard-encoded.
//!
//! [`Instant`]: crate::Instant
//! [`Store`]: crate::store::Store
//! [`Space::Log`]: crate::store::Space::Log
//! [`Space::Raft`]: crate::store::Space::Raft

mod commit;
mod compaction;
mod durability;
mod election;
mod log;
mod membership;
mod message;
mod node;
mod reads;
mod replication;
mod snapshot;
mod snapshot_transfer;
mod storage;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub use message::{
    ConflictHint, DecodeError, Envelope, MAX_MESSAGE_BYTES, Message, SnapshotMeta, StateSpace,
    WIRE_VERSION,
};
pub use node::{PeerInfo, PeerState, Raft, Role, Status};
pub use storage::{applied_index, record_applied, records_applied};

use crate::store::StoreError;

/// A node's identity in the cluster. Never reused for a different machine.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct NodeId(pub u64);

/// A Raft term: a logical clock that increases with every election.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Term(pub u64);

/// A position in the replicated log; the first entry has index 1, index 0 means "none".
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogIndex(pub u64);

impl LogIndex {
    /// The next index. Overflow is impossible in practice (2^64 entries) and checked in release.
    pub const fn next(self) -> Self {
        Self(self.0 + 1)
    }

    /// The previous index, saturating at zero.
    pub const fn prev(self) -> Self {
        Self(self.0.saturating_sub(1))
    }
}

/// Who votes and who only receives the log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Nodes whose votes and acknowledgements count toward a majority.
    pub voters: BTreeSet<NodeId>,
    /// Nodes that receive the log but do not vote (catching up before promotion).
    pub learners: BTreeSet<NodeId>,
}

impl Membership {
    /// Every member, voter or learner.
    pub fn members(&self) -> BTreeSet<NodeId> {
        self.voters.union(&self.learners).copied().collect()
    }

    /// How many voters make a majority.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Applies a change, or says why it cannot apply.
    fn apply(&self, change: &ConfChange) -> Result<Self, ProposeError> {
        let mut next = self.clone();
        match *change {
            ConfChange::AddLearner(id) => {
                if self.voters.contains(&id) || !next.learners.insert(id) {
                    return Err(ProposeError::BadConfChange("already a member"));
                }
            }
            ConfChange::Promote(id) => {
                if !next.learners.remove(&id) {
                    return Err(ProposeError::BadConfChange("not a learner"));
                }
                next.voters.insert(id);
            }
            ConfChange::Remove(id) => {
                if !next.voters.remove(&id) && !next.learners.remove(&id) {
                    return Err(ProposeError::BadConfChange("not a member"));
                }
                if next.voters.is_empty() {
                    return Err(ProposeError::BadConfChange("would remove the last voter"));
                }
            }
        }
        Ok(next)
    }
}

/// A single-server membership change (Ongaro's dissertation, §4.1): one at a time, so any two
/// majorities of the old and new configurations overlap without joint consensus.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfChange {
    /// Start replicating to a new node that does not vote yet.
    AddLearner(NodeId),
    /// Make a caught-up learner a voter.
    Promote(NodeId),
    /// Remove a voter or learner (possibly the leader itself, which steps down once committed).
    Remove(NodeId),
}

/// What a log entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// Appended by every new leader at the start of its term so it can commit earlier entries.
    Noop,
    /// An opaque command for the state machine.
    Normal(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A membership change; it takes effect as soon as it is in a node's log.
    Config(ConfChange),
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub term: Term,
    pub index: LogIndex,
    pub kind: EntryKind,
}

impl Entry {
    /// An estimate of the encoded size (at least it for a normal entry), for batching limits
    /// and buffers.
    fn size_hint(&self) -> u64 {
        let payload = match &self.kind {
            EntryKind::Noop | EntryKind::Config(_) => 0,
            EntryKind::Normal(data) => data.len() as u64,
        };
        payload + 24
    }
}

/// Runtime knobs that plant known bugs, so tests can show the simulator catches them.
/// Only compiled with the `planted-bugs` feature; every knob defaults to off, and with every knob
/// off the behaviour is identical to a build without the feature.
#[cfg(feature = "planted-bugs")]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlantedBugs {
    /// The leader counts its own entry toward a majority before syncing it.
    pub count_unsynced_self: bool,
    /// A vote is granted (the response released) before the vote is synced.
    pub vote_without_persist: bool,
    /// The leader commits entries of earlier terms by counting replicas (Figure 8 of the paper).
    pub commit_old_term: bool,
    /// A snapshot install leaves the committed entries already handed out for applying in the
    /// output queue, so the owner applies them again on top of the snapshot that holds them
    /// (the double apply found by the real-cluster fault suite).
    pub apply_under_snapshot: bool,
}

/// Configuration of one Raft node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftConfig {
    pub id: NodeId,
    /// The voters of a brand-new cluster; used only when the store holds no membership yet.
    pub initial_voters: BTreeSet<NodeId>,
    /// How often a leader sends heartbeats. Default 100 ms: a tenth of the minimum election
    /// timeout, so several heartbeats may be lost before followers suspect the leader.
    pub heartbeat_interval_ms: u64,
    /// Election timeouts are drawn uniformly from [min, max). Defaults 1000/2000 ms: well above
    /// a LAN round trip plus an fsync (so no spurious elections under load), wide enough that
    /// two candidates rarely time out together.
    pub election_timeout_ms_min: u64,
    pub election_timeout_ms_max: u64,
    /// AppendEntries messages in flight per follower. Default 16: enough to fill a LAN pipe
    /// without unbounded memory when a follower is slow.
    pub max_inflight_appends: u32,
    /// Entries per AppendEntries. Default 256.
    pub max_entries_per_append: u32,
    /// Payload bytes per AppendEntries (at least one entry is always sent). Default 1 MiB.
    pub max_bytes_per_append: u64,
    /// Bytes of state per InstallSnapshot chunk. Default 1 MiB.
    pub snapshot_chunk_bytes: u64,
    /// Compact the log once this many entries sit behind the durable applied index, whatever
    /// followers need (see `log_compaction_eager`). Default 65 536. Zero disables this trigger.
    pub log_compaction_threshold: u64,
    /// Also compact once this many bytes of entries were appended since the last compaction
    /// (a few large entries, e.g. 4 MiB BATCH_FLUSHes, must not pin gigabytes of log).
    /// Default 64 MiB. Zero disables this trigger.
    pub log_compaction_bytes: u64,
    /// Compact the log behind each new durable checkpoint at once, keeping only what a
    /// follower in contact still needs, instead of waiting for the thresholds above (which
    /// still bound what is kept for a lagging one). Default true: the log behind a checkpoint
    /// is dead weight on disk (in a RocksDB store, WAL and SST bytes until compacted).
    pub log_compaction_eager: bool,
    /// Run a PreVote round before incrementing the term. Default true: a node returning from a
    /// partition cannot force an election.
    pub pre_vote: bool,
    /// Leaders step down after an election timeout without hearing from a majority, and
    /// followers ignore vote requests while they hear from a leader. Default true.
    pub check_quorum: bool,
    #[cfg(feature = "planted-bugs")]
    pub bugs: PlantedBugs,
}

impl RaftConfig {
    /// The defaults described on each field, for node `id` in a cluster of `voters`.
    pub fn new(id: NodeId, initial_voters: BTreeSet<NodeId>) -> Self {
        Self {
            id,
            initial_voters,
            heartbeat_interval_ms: 100,
            election_timeout_ms_min: 1000,
            election_timeout_ms_max: 2000,
            max_inflight_appends: 16,
            max_entries_per_append: 256,
            max_bytes_per_append: 1 << 20,
            snapshot_chunk_bytes: 1 << 20,
            log_compaction_threshold: 65_536,
            log_compaction_bytes: 64 << 20,
            log_compaction_eager: true,
            pre_vote: true,
            check_quorum: true,
            #[cfg(feature = "planted-bugs")]
            bugs: PlantedBugs::default(),
        }
    }

    fn validate(&self) -> Result<(), RaftError> {
        let ok = self.heartbeat_interval_ms > 0
            && self.election_timeout_ms_min > self.heartbeat_interval_ms
            && self.election_timeout_ms_max > self.election_timeout_ms_min
            && self.max_inflight_appends > 0
            && self.max_entries_per_append > 0
            && self.max_bytes_per_append > 0
            && self.snapshot_chunk_bytes > 0;
        if ok {
            Ok(())
        } else {
            Err(RaftError::BadConfig)
        }
    }
}

/// Why a Raft node could not start or continue.
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    /// The storage engine failed or held a record that does not decode.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration's timing or limits are inconsistent (e.g. election timeout not above
    /// the heartbeat interval).
    #[error("invalid raft configuration")]
    BadConfig,
    /// The store holds no membership and the configuration gives no initial voters.
    #[error("no membership in the store and no initial voters configured")]
    NoMembership,
}

/// Why a proposal was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Only the leader accepts proposals; `leader` is the one this node knows of, if any.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    /// A membership change is already in progress.
    #[error("a membership change is already in progress")]
    ConfChangeInProgress,
    /// The membership change does not fit the current membership.
    #[error("invalid membership change: {0}")]
    BadConfChange(&'static str),
    /// The leadership transfer target is not a voter or is this node.
    #[error("invalid leadership transfer target")]
    BadTransferTarget,
    /// Writing the entry to the store failed.
    #[error("storage error: {0}")]
    Store(String),
}

/// Work the owner must do, drained with [`Raft::poll_output`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RaftOutput {
    /// Deliver `msg` to node `to` (best effort: Raft retries what matters).
    Send { to: NodeId, msg: Message },
    /// A committed entry, in log order, each once per process lifetime. Apply it with one
    /// write batch that also calls [`record_applied`].
    Apply(Entry),
    /// The known leader or the term changed.
    LeaderChanged { leader: Option<NodeId>, term: Term },
    /// A linearizable read registered with [`Raft::read_index`] may be served once the applied
    /// index reaches `index`.
    ReadReady { ctx: u64, index: LogIndex },
    /// The read could not be confirmed (leadership lost); retry elsewhere.
    ReadFailed { ctx: u64 },
    /// The state spaces were replaced by a snapshot up to `index`: reload in-memory caches.
    SnapshotInstalled { index: LogIndex },
    /// Pipelined syncs only ([`Raft::pipeline_syncs`]): make every store write made so far
    /// durable, beside further writes, and report it with [`Raft::synced`]`(upto)` when done.
    /// Never asked for again before that report.
    Sync { upto: u64 },
}

#[cfg(test)]
mod tests;
