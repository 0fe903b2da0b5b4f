//! Raft messages and their wire envelope.
//!
//! On the wire every message is a postcard-encoded [`Envelope`]: a version byte, the cluster id
//! (so two clusters sharing a network never mix), sender, receiver, term and the payload. The
//! decoder treats its input as untrusted: any malformed input is a [`DecodeError`], never a panic.

use serde::{Deserialize, Serialize};

use super::{Entry, LogIndex, Membership, NodeId, Term};
use crate::store::Space;

/// The envelope format this build writes and the only one it reads.
pub const WIRE_VERSION: u8 = 1;

/// Upper bound on an encoded message; larger inputs are refused before decoding.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// A Raft message. Every variant carries the sender's term.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// "Would you vote for me in `term`?" sent before incrementing the term; the receiver
    /// changes no state (seed message LEADER_ELECTION, first phase).
    PreVote {
        term: Term,
        last_log_index: LogIndex,
        last_log_term: Term,
    },
    /// Answer to [`Message::PreVote`]; `term` is the asked term when granted, else the
    /// responder's own term.
    PreVoteResponse { term: Term, granted: bool },
    /// A candidate asks for a vote in `term` (LEADER_ELECTION). `transfer` marks an election
    /// started by [`Message::TimeoutNow`], which may override a follower's leader lease.
    RequestVote {
        term: Term,
        last_log_index: LogIndex,
        last_log_term: Term,
        transfer: bool,
    },
    /// Answer to [`Message::RequestVote`], sent only after the vote is durable.
    RequestVoteResponse { term: Term, granted: bool },
    /// Replicate entries after `(prev_index, prev_term)`; `commit` is the leader's commit index
    /// (DATA_SYNC). Batched and pipelined.
    AppendEntries {
        term: Term,
        prev_index: LogIndex,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: LogIndex,
    },
    /// Answer to [`Message::AppendEntries`]. On success `index` is the follower's durable match
    /// index; on rejection `index` is the rejected `prev_index` and `hint` says where to retry.
    AppendResponse {
        term: Term,
        success: bool,
        index: LogIndex,
        hint: Option<ConflictHint>,
    },
    /// The leader's heartbeat (HEARTBEAT): keeps followers from starting elections, carries the
    /// commit index (never above the follower's known match) and a sequence number used to
    /// confirm leadership for ReadIndex.
    Heartbeat {
        term: Term,
        commit: LogIndex,
        seq: u64,
    },
    /// Answer to [`Message::Heartbeat`], echoing its `seq`.
    HeartbeatResponse { term: Term, seq: u64 },
    /// One chunk of a state snapshot for a follower whose next entry the leader compacted away
    /// (DATA_SYNC for a replica that fell behind the log).
    InstallSnapshot {
        term: Term,
        meta: SnapshotMeta,
        /// Position of this chunk in the transfer; chunks must arrive in order from zero.
        chunk: u32,
        /// Key-value pairs of the state spaces, in space then key order.
        #[serde(with = "crate::wire::tagged_pairs")]
        data: Vec<(StateSpace, Vec<u8>, Vec<u8>)>,
        /// The last chunk.
        done: bool,
    },
    /// Answer to [`Message::InstallSnapshot`]: the next chunk wanted, or `done` once the snapshot
    /// is installed and durable.
    InstallSnapshotResponse {
        term: Term,
        snapshot_index: LogIndex,
        next_chunk: u32,
        done: bool,
    },
    /// Leadership transfer: the target should start an election at once.
    TimeoutNow { term: Term },
}

/// The state-machine spaces a snapshot carries (the wire form of [`Space::STATE`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StateSpace {
    Keys,
    Chunks,
    Labels,
    /// Added after the first three: postcard tags by position, so it goes last.
    Meta,
}

impl StateSpace {
    pub const fn space(self) -> Space {
        match self {
            Self::Keys => Space::Keys,
            Self::Chunks => Space::Chunks,
            Self::Labels => Space::Labels,
            Self::Meta => Space::Meta,
        }
    }
}

/// Where a follower's log diverges, so the leader can skip a whole term per round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictHint {
    /// The term of the follower's entry at the rejected index, if it has one.
    pub term: Option<Term>,
    /// The first index of `term` in the follower's log, or its last index + 1 when `term` is
    /// `None`.
    pub index: LogIndex,
}

/// What a snapshot covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub index: LogIndex,
    pub term: Term,
    pub membership: Membership,
}

impl Message {
    /// The sender's term.
    pub fn term(&self) -> Term {
        match self {
            Self::PreVote { term, .. }
            | Self::PreVoteResponse { term, .. }
            | Self::RequestVote { term, .. }
            | Self::RequestVoteResponse { term, .. }
            | Self::AppendEntries { term, .. }
            | Self::AppendResponse { term, .. }
            | Self::Heartbeat { term, .. }
            | Self::HeartbeatResponse { term, .. }
            | Self::InstallSnapshot { term, .. }
            | Self::InstallSnapshotResponse { term, .. }
            | Self::TimeoutNow { term } => *term,
        }
    }

    /// Encodes this message in an envelope from `from` to `to` in cluster `cluster_id`.
    pub fn to_bytes(&self, cluster_id: u64, from: NodeId, to: NodeId) -> Vec<u8> {
        let env = EnvelopeRef {
            version: WIRE_VERSION,
            cluster_id,
            from,
            to,
            term: self.term(),
            payload: self,
        };
        // Serializing an in-memory value into a Vec cannot fail: postcard only fails on
        // unsupported types (none here) or a full fixed buffer (a Vec grows).
        let bytes = postcard::to_allocvec(&env).expect("postcard into a Vec cannot fail");
        assert!(
            bytes.len() <= MAX_MESSAGE_BYTES,
            "message over the wire limit"
        );
        bytes
    }

    /// Decodes an envelope from untrusted bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Envelope, DecodeError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        let Some(&version) = bytes.first() else {
            return Err(DecodeError::Malformed("empty input".into()));
        };
        if version != WIRE_VERSION {
            return Err(DecodeError::Version(version));
        }
        let env: Envelope =
            postcard::from_bytes(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if env.term != env.payload.term() {
            return Err(DecodeError::Malformed(
                "envelope term differs from payload".into(),
            ));
        }
        Ok(env)
    }
}

/// A decoded message with its routing header.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Envelope {
    pub version: u8,
    pub cluster_id: u64,
    pub from: NodeId,
    pub to: NodeId,
    pub term: Term,
    pub payload: Message,
}

#[derive(Serialize)]
struct EnvelopeRef<'a> {
    version: u8,
    cluster_id: u64,
    from: NodeId,
    to: NodeId,
    term: Term,
    payload: &'a Message,
}

/// Why bytes from a peer are not a message this node accepts.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The envelope version is not one this build understands (a rolling upgrade mismatch).
    #[error("unsupported message version {0}")]
    Version(u8),
    /// The input is longer than [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// The bytes do not decode as an envelope.
    #[error("malformed message: {0}")]
    Malformed(String),
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::raft::EntryKind;

    fn samples() -> Vec<Message> {
        vec![
            Message::PreVote {
                term: Term(3),
                last_log_index: LogIndex(9),
                last_log_term: Term(2),
            },
            Message::AppendEntries {
                term: Term(4),
                prev_index: LogIndex(1),
                prev_term: Term(1),
                entries: vec![Entry {
                    term: Term(4),
                    index: LogIndex(2),
                    kind: EntryKind::Normal(b"SET k v".to_vec()),
                }],
                commit: LogIndex(1),
            },
            Message::AppendResponse {
                term: Term(4),
                success: false,
                index: LogIndex(7),
                hint: Some(ConflictHint {
                    term: Some(Term(2)),
                    index: LogIndex(5),
                }),
            },
            Message::TimeoutNow { term: Term(8) },
        ]
    }

    #[test]
    fn round_trip_keeps_header_and_payload() {
        for msg in samples() {
            let bytes = msg.to_bytes(77, NodeId(1), NodeId(2));
            let env = Message::from_bytes(&bytes).unwrap();
            assert_eq!(env.version, WIRE_VERSION);
            assert_eq!(env.cluster_id, 77);
            assert_eq!((env.from, env.to), (NodeId(1), NodeId(2)));
            assert_eq!(env.term, msg.term());
            assert_eq!(env.payload, msg);
        }
    }

    #[test]
    fn unknown_version_and_truncation_are_errors() {
        let mut bytes = samples()[0].to_bytes(1, NodeId(1), NodeId(2));
        for cut in 0..bytes.len() {
            assert!(Message::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        bytes[0] = 9;
        assert_eq!(Message::from_bytes(&bytes), Err(DecodeError::Version(9)));
    }

    /// The wire form of the messages that carry bytes, pinned: peers of one version must read
    /// each other's entries and snapshot chunks, whatever the Rust types behind them become.
    #[test]
    #[rustfmt::skip]
    fn golden_bytes() {
        let append = &samples()[1];
        let bytes = append.to_bytes(77, NodeId(1), NodeId(2));
        assert_eq!(Message::from_bytes(&bytes).unwrap().payload, *append);
        assert_eq!(
            bytes,
            [
                WIRE_VERSION, 77, 1, 2, 4, // envelope: cluster, from, to, term
                4, 4, 1, 1, // AppendEntries (variant 4): term, prev index and term
                1, 4, 2, 1, 7, b'S', b'E', b'T', b' ', b'k', b' ', b'v', // one Normal entry
                1, // commit
            ]
        );
        let chunk = Message::InstallSnapshot {
            term: Term(3),
            meta: SnapshotMeta {
                index: LogIndex(9),
                term: Term(2),
                membership: Membership {
                    voters: [NodeId(1), NodeId(2)].into(),
                    learners: [NodeId(3)].into(),
                },
            },
            chunk: 1,
            data: vec![(StateSpace::Meta, b"k".to_vec(), vec![5, 6])],
            done: true,
        };
        let bytes = chunk.to_bytes(77, NodeId(1), NodeId(2));
        // The pairs' own (de)serializer (crate::wire) reads back what it wrote.
        assert_eq!(Message::from_bytes(&bytes).unwrap().payload, chunk);
        assert_eq!(
            bytes,
            [
                WIRE_VERSION, 77, 1, 2, 3, // envelope
                8, 3, // InstallSnapshot (variant 8), term
                9, 2, 2, 1, 2, 1, 3, // meta: index, term, voters {1, 2}, learners {3}
                1, // chunk
                1, 3, 1, b'k', 2, 5, 6, // one pair: Meta (3), key, value
                1, // done
            ]
        );
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Message::from_bytes(&bytes);
        }

        #[test]
        fn decoding_versioned_garbage_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 1..256)) {
            bytes[0] = WIRE_VERSION;
            let _ = Message::from_bytes(&bytes);
        }
    }
}
