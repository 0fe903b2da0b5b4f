//! tickdb-io: the real adapters around the sans-IO core.
//!
//! Everything that reads a clock or touches a socket or a file lives here, never in
//! `tickdb-core`:
//! - [`driver`]: the async node task, generic over the store, that follows the core's drive rule
//!   and, in a cluster, carries the node's peer messages over the [`Mesh`] (or any
//!   [`PeerTransport`], e.g. the simulator's).
//! - [`tcp`]: RESP over TCP (any byte stream: the simulator serves turmoil's TCP with it).
//! - [`zmq`]: RESP over a ZeroMQ ROUTER socket for DEALER clients.
//! - [`RocksStore`] (feature `rocksdb`): core's storage port on RocksDB.
//! - [`Mesh`]: the ZeroMQ cluster transport, one ROUTER per node and one DEALER per peer.
//! - `syncs`: the node's pipelined syncs, on a thread of their own beside the node task.

pub mod driver;
mod mesh;
#[cfg(feature = "rocksdb")]
mod rocks;
mod syncs;
pub mod tcp;
pub mod zmq;

pub use driver::{
    NodeHandle, PeerTransport, channel, run_cluster_node, run_cluster_node_with, run_node,
};
pub use mesh::{
    LinkStats, MAX_MESSAGE_BYTES_DEFAULT, Mesh, MeshConfig, MeshError, MeshReceiver, MeshStats,
    RECV_QUEUE_DEFAULT, SEND_QUEUE_PER_PEER_DEFAULT,
};
#[cfg(feature = "rocksdb")]
pub use rocks::{
    BLOCK_CACHE_BYTES_DEFAULT, MAX_OPEN_FILES_DEFAULT, RocksOptions, RocksSnapshot, RocksStore,
};
