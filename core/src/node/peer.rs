//! What nodes say to each other: Raft messages and forwarded client requests, in one versioned
//! envelope.
//!
//! Wire layout: postcard of [`PeerEnvelope`]: version byte, cluster id, sender, receiver, body;
//! with a cluster secret configured, followed by a 32-byte HMAC-SHA256 tag of those bytes
//! keyed with the secret. The receiver treats the bytes as untrusted: anything that does not
//! decode, lacks a valid tag (when a secret is set), names another cluster or another
//! receiver, or claims a sender other than the one the transport saw is dropped (and counted
//! against the peer in the failure detector), never a panic.
//!
//! The tag authenticates the sender and the content. It does not stop a replay of a captured
//! message by someone on the cluster network (no per-message nonce): keep the cluster port on
//! a private network even with a secret.

use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::UnixMillis;
use crate::cmd::ClusterCmd;
use crate::raft::{self, NodeId};

/// The envelope format this build writes and the only one it reads. 2: a forward's reply
/// carries the forwarding process's session.
pub const PEER_WIRE_VERSION: u8 = 2;

/// Upper bound on the encoded log entry of one write ([`crate::node::log::LogEntry`]). Entries
/// travel in AppendEntries messages (up to `max_bytes_per_append` plus one entry) and in
/// forwarded requests, and both must stay under the cluster mesh's message limit (16 MiB by
/// default), or replication of that entry would stall forever.
pub const MAX_ENTRY_BYTES: usize = 4 << 20;

/// A follower sends what it buffered for one connection once the buffer reaches this many
/// bytes; with one more item of at most [`MAX_ENTRY_BYTES`] a forward stays under the mesh
/// limit.
pub const FORWARD_BUFFER_BYTES: usize = 4 << 20;

/// Largest reply a leader sends back for a forwarded request; a larger one is replaced by an
/// error that says to read from the leader or with `READONLY`.
pub const MAX_FORWARD_REPLY_BYTES: usize = 8 << 20;

/// Length of the authentication tag appended when a cluster secret is configured.
pub const TAG_BYTES: usize = 32;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length (long ones are hashed first): this cannot fail.
    HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length")
}

/// One message between nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PeerBody {
    /// Consensus traffic.
    Raft(raft::Message),
    /// Requests a follower's client sent, for the leader to execute in order and answer with
    /// one [`PeerBody::ForwardReply`].
    Forward {
        id: u64,
        /// The sending process's incarnation: with `id`, names the forward uniquely so the
        /// leader runs a duplicated message once.
        session: u64,
        /// 2 or 3: the client's protocol, so reads are shaped as the client expects.
        protocol: u8,
        items: Vec<ForwardItem>,
    },
    /// The replies to a [`PeerBody::Forward`], in item order, each one RESP3-encoded frame.
    /// `session` is the forward's: a follower restarted since numbers its forwards from zero
    /// again, and must not take a reply meant for its previous incarnation for its own.
    ForwardReply {
        id: u64,
        session: u64,
        #[serde(with = "crate::wire::byte_vecs")]
        replies: Vec<Vec<u8>>,
    },
}

/// One forwarded request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ForwardItem {
    /// A write, already parsed and stamped by the follower: an encoded
    /// [`crate::node::log::LogEntry`] the leader validates and proposes as it is. `count`:
    /// reply with the number of commands that did not fail (BATCH_FLUSH).
    Write {
        #[serde(with = "serde_bytes")]
        entry: Vec<u8>,
        count: bool,
    },
    /// A linearizable read: the request's arguments, name first.
    Read { args: Vec<Bytes>, unix: UnixMillis },
    /// A cluster administration command sent to a follower (`CLUSTER FAILOVER`: hand the
    /// sender the leadership; `ADDNODE`, `FORGET`: membership changes).
    Cluster(ClusterCmd),
}

impl ForwardItem {
    /// Roughly the item's size on the wire, for the forward buffer bound.
    pub fn size_hint(&self) -> usize {
        match self {
            Self::Write { entry, .. } => entry.len() + 8,
            Self::Read { args, .. } => args.iter().map(|a| a.len() + 4).sum::<usize>() + 16,
            Self::Cluster(_) => 64,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct PeerEnvelope {
    version: u8,
    cluster_id: u64,
    from: NodeId,
    to: NodeId,
    body: PeerBody,
}

/// Why bytes from a peer were dropped.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    #[error("unsupported peer message version {0}")]
    Version(u8),
    #[error("malformed peer message: {0}")]
    Malformed(String),
    #[error("message for cluster {got:#x}, this is cluster {want:#x}")]
    OtherCluster { got: u64, want: u64 },
    #[error("message for node {0}")]
    OtherNode(u64),
    #[error("message claims sender {claimed}, the transport saw {seen}")]
    Spoofed { claimed: u64, seen: u64 },
    #[error("message is not authenticated with this cluster's secret")]
    BadTag,
}

/// Encodes `body` from `from` to `to`, tagged with `secret` when there is one.
pub fn encode(
    cluster_id: u64,
    secret: Option<&[u8]>,
    from: NodeId,
    to: NodeId,
    body: PeerBody,
) -> Vec<u8> {
    let env = PeerEnvelope {
        version: PEER_WIRE_VERSION,
        cluster_id,
        from,
        to,
        body,
    };
    // Serializing plain owned data into a Vec cannot fail.
    let mut bytes = postcard::to_allocvec(&env).expect("peer message serializes");
    if let Some(secret) = secret {
        let mut m = mac(secret);
        m.update(&bytes);
        bytes.extend_from_slice(&m.finalize().into_bytes());
    }
    bytes
}

/// Decodes bytes the transport says came from `seen`, for node `me` of cluster `cluster_id`;
/// with a `secret`, only bytes carrying its tag are accepted.
pub fn decode(
    bytes: &[u8],
    cluster_id: u64,
    secret: Option<&[u8]>,
    me: NodeId,
    seen: NodeId,
) -> Result<PeerBody, PeerError> {
    if bytes.len() > raft::MAX_MESSAGE_BYTES {
        return Err(PeerError::Malformed(format!("{} bytes", bytes.len())));
    }
    let bytes = match secret {
        None => bytes,
        Some(secret) => {
            let Some(split) = bytes.len().checked_sub(TAG_BYTES) else {
                return Err(PeerError::BadTag);
            };
            let (body, tag) = bytes.split_at(split);
            let mut m = mac(secret);
            m.update(body);
            // Constant-time comparison.
            m.verify_slice(tag).map_err(|_| PeerError::BadTag)?;
            body
        }
    };
    match bytes.first() {
        Some(&PEER_WIRE_VERSION) => {}
        Some(&v) => return Err(PeerError::Version(v)),
        None => return Err(PeerError::Malformed("empty".into())),
    }
    let env: PeerEnvelope =
        postcard::from_bytes(bytes).map_err(|e| PeerError::Malformed(e.to_string()))?;
    if env.cluster_id != cluster_id {
        return Err(PeerError::OtherCluster {
            got: env.cluster_id,
            want: cluster_id,
        });
    }
    if env.to != me {
        return Err(PeerError::OtherNode(env.to.0));
    }
    if env.from != seen {
        return Err(PeerError::Spoofed {
            claimed: env.from.0,
            seen: seen.0,
        });
    }
    Ok(env.body)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::raft::{LogIndex, Term};

    fn sample() -> PeerBody {
        PeerBody::Forward {
            id: 7,
            session: 11,
            protocol: 3,
            items: vec![
                ForwardItem::Write {
                    entry: vec![1, 2, 3],
                    count: false,
                },
                ForwardItem::Read {
                    args: vec![Bytes::from_static(b"GET"), Bytes::from_static(b"k")],
                    unix: UnixMillis(5),
                },
                ForwardItem::Cluster(ClusterCmd::Forget { id: 3 }),
            ],
        }
    }

    #[test]
    fn round_trips_and_checks_the_header() {
        let bytes = encode(9, None, NodeId(1), NodeId(2), sample());
        assert_eq!(decode(&bytes, 9, None, NodeId(2), NodeId(1)), Ok(sample()));
        assert!(matches!(
            decode(&bytes, 8, None, NodeId(2), NodeId(1)),
            Err(PeerError::OtherCluster { .. })
        ));
        assert_eq!(
            decode(&bytes, 9, None, NodeId(3), NodeId(1)),
            Err(PeerError::OtherNode(2))
        );
        assert!(matches!(
            decode(&bytes, 9, None, NodeId(2), NodeId(3)),
            Err(PeerError::Spoofed { .. })
        ));
        let raft = PeerBody::Raft(raft::Message::Heartbeat {
            term: Term(3),
            commit: LogIndex(4),
            seq: 5,
        });
        let bytes = encode(9, None, NodeId(1), NodeId(2), raft.clone());
        assert_eq!(decode(&bytes, 9, None, NodeId(2), NodeId(1)), Ok(raft));
        let mut bad = bytes;
        for other in [PEER_WIRE_VERSION - 1, PEER_WIRE_VERSION + 1] {
            bad[0] = other;
            assert_eq!(
                decode(&bad, 9, None, NodeId(2), NodeId(1)),
                Err(PeerError::Version(other))
            );
        }
        assert!(decode(&[], 9, None, NodeId(2), NodeId(1)).is_err());
    }

    #[test]
    fn with_a_secret_only_tagged_messages_from_the_same_secret_pass() {
        let secret = Some(&b"s3cret"[..]);
        let bytes = encode(9, secret, NodeId(1), NodeId(2), sample());
        assert_eq!(
            decode(&bytes, 9, secret, NodeId(2), NodeId(1)),
            Ok(sample())
        );
        let other = Some(&b"other"[..]);
        assert_eq!(
            decode(&bytes, 9, other, NodeId(2), NodeId(1)),
            Err(PeerError::BadTag)
        );
        let untagged = encode(9, None, NodeId(1), NodeId(2), sample());
        assert_eq!(
            decode(&untagged, 9, secret, NodeId(2), NodeId(1)),
            Err(PeerError::BadTag)
        );
        for i in [0, bytes.len() / 2, bytes.len() - 1] {
            let mut flipped = bytes.clone();
            flipped[i] ^= 1;
            assert_eq!(
                decode(&flipped, 9, secret, NodeId(2), NodeId(1)),
                Err(PeerError::BadTag),
                "byte {i} flipped"
            );
        }
        assert_eq!(
            decode(&[1], 9, secret, NodeId(2), NodeId(1)),
            Err(PeerError::BadTag)
        );
    }

    /// The wire form of forwards and their replies, pinned: a follower and a leader of one
    /// version must read each other's bytes, whatever the Rust types behind them become.
    #[test]
    #[rustfmt::skip]
    fn golden_bytes() {
        let bytes = encode(9, None, NodeId(1), NodeId(2), sample());
        assert_eq!(decode(&bytes, 9, None, NodeId(2), NodeId(1)), Ok(sample()));
        assert_eq!(
            bytes,
            [
                PEER_WIRE_VERSION, 9, 1, 2, // envelope: cluster, from, to
                1, 7, 11, 3, 3, // Forward (variant 1): id, session, protocol, three items
                0, 3, 1, 2, 3, 0, // Write: entry [1, 2, 3], count false
                1, 2, 3, b'G', b'E', b'T', 1, b'k', 5, // Read: two args, unix 5
                2, 7, 3, // Cluster(Forget { id: 3 })
            ]
        );
        let reply = PeerBody::ForwardReply {
            id: 7,
            session: 11,
            replies: vec![b"+OK\r\n".to_vec(), vec![]],
        };
        let bytes = encode(9, None, NodeId(1), NodeId(2), reply.clone());
        // The replies' own (de)serializer (crate::wire) reads back what it wrote.
        assert_eq!(decode(&bytes, 9, None, NodeId(2), NodeId(1)), Ok(reply));
        assert_eq!(
            bytes,
            [
                PEER_WIRE_VERSION, 9, 1, 2, // envelope
                2, 7, 11, 2, // ForwardReply (variant 2): id, session, two replies
                5, b'+', b'O', b'K', b'\r', b'\n', 0, // "+OK\r\n" and an empty one
            ]
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes, 9, None, NodeId(2), NodeId(1));
        }

        #[test]
        fn truncations_never_panic(cut in 0usize..200) {
            let bytes = encode(9, None, NodeId(1), NodeId(2), sample());
            let _ = decode(&bytes[..cut.min(bytes.len())], 9, None, NodeId(2), NodeId(1));
        }
    }
}
