//! tickdb-io: the real adapters around the sans-IO core.
//!
//! The async node driver (generic over the store), the RESP-over-TCP endpoint, the
//! RESP-over-ZeroMQ endpoint (a ROUTER socket for DEALER clients), and — with the
//! `rocksdb` feature — the RocksDB implementation of core's `Store` port. Everything that reads
//! a clock or touches a socket or a file lives here, never in `tickdb-core`.

pub mod driver;
pub mod tcp;
pub mod zmq;

pub use driver::{NodeHandle, channel, run_node};
