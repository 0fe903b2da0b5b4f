//! tickdb-sim: deterministic simulation of tickdb's Raft core.
//!
//! The pure simulator ([`Sim`]) runs N `tickdb_core::raft::Raft` nodes, each over its own
//! crash-semantics `MemStore` with a small KV state machine, on an event queue ordered by
//! simulated time. One seeded ChaCha PRNG decides every delay, loss, duplication, partition,
//! crash, clock drift, leadership transfer, membership change and client operation, so a seed
//! replays exactly (same trace hash). Checkers run after every step and at the end: one leader
//! per term, log matching, committed entries never change, every node applies the same
//! sequence, replicas converge, per-key linearizability of client histories (acknowledged writes
//! included), and liveness once faults stop. No tokio, no threads, no clocks.
//!
//! Node mode ([`Mode::Node`]) drives real `tickdb_core::node::Node`s instead, through their
//! sans-IO interface, with RESP clients running SET/INCR/GET and TS.ADD/TS.RANGE, on the same
//! network, faults and PRNG (`world.rs`).

mod checker;
mod kv;
mod nodesim;
mod sim;
mod store;
pub mod turmoil_harness;
mod world;

pub use checker::{HistOp, Outcome, Verdict, check as check_linearizable};
pub use kv::{Command, OpKind};
pub use sim::{Bug, LIVENESS_BOUND_MS, Mode, Report, Sim, SimConfig, Syncs, run_seed};
pub use world::Faults;
