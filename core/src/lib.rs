//! tickdb-core: the sans-IO heart of tickdb.
//!
//! This crate contains no networking code, performs no file I/O, never reads a clock and never
//! draws randomness from the operating system. Time enters as [`Instant`] and [`UnixMillis`]
//! values on every call, randomness as a seed in the configuration, storage through the
//! [`store::Store`] port that `tickdb-io` implements on RocksDB and [`store::MemStore`]
//! implements in memory. The same code runs in the production driver, the pure simulator and
//! the turmoil harness; nothing here knows which.
//!
//! Modules depend one way, each only on those before it: the leaves (`store`, `resp`,
//! `chunk`, `wire`, `time`); `cmd`, the command language and its shared vocabulary; `raft` and
//! `read_cache`; `db`, key records and transactions; `writeback`, the checkpoint; `ts`, the
//! series engine; `state`, the state machine's dispatch; and `node` on top
//! (docs/architecture.md, "Layers of the core").

pub mod chunk;
pub mod cmd;
pub mod db;
pub mod node;
pub mod raft;
pub mod read_cache;
pub mod resp;
pub mod state;
pub mod store;
#[cfg(test)]
mod test_modes;
mod time;
pub mod ts;
mod wire;
pub mod writeback;

pub use time::{Instant, UnixMillis};
