//! Time series (the RedisTimeSeries `TS.*` surface) on compressed chunks in the store.
//!
//! [`aggregate`] buckets samples for `AGGREGATION` and compaction rules, [`filter`] parses and
//! evaluates `FILTER` label expressions, [`groupby`] implements `GROUPBY label REDUCE reducer`:
//! those three are pure. [`engine`] applies the write commands inside the state machine's
//! transaction, [`query`] answers the reads, [`store`] keeps samples in chunks, [`index`] keeps
//! the label index, [`meta`] defines the series record and every binary key.
//!
//! Layering: the series engine works inside the transaction of [`crate::db`] on the key records
//! it defines, and imports `db`, `cmd`, `chunk` and `store`; never `state` (the dispatch that
//! calls [`engine::apply`] and [`query::read`]) or `node`.
//!
//! # Storage layout
//!
//! All integers in keys are big-endian so that byte order is numeric order.
//!
//! | space | key | value |
//! | --- | --- | --- |
//! | `Keys` | user key | `[RECORD_VERSION, Kind::Series, stamp: u64, META_VERSION, postcard(SeriesMeta)]` (the stamp: the log index that wrote it, see `crate::db::version`): id, retention, chunk size, encoding asked for, duplicate policy, IGNORE thresholds, labels, rules, source key, newest sample, counters |
//! | `Chunks` | `id:u64, 0x00, start:u64` | a sealed chunk: `end:u64` then [`crate::chunk`] bytes (Gorilla or decimal, whichever is smaller) |
//! | `Chunks` | `id:u64, 0x01, ts:u64` | a head run starting at `ts`: `[RUN_VERSION, (ts:u64, value f64 bits:u64)...]`, big-endian (an 8-byte value is one sample written before runs: read, never written) |
//! | `Labels` | `0x00` | the next series id (`u64`); ids are never reused |
//! | `Labels` | `0x01, len:u32, label, len:u32, value, id:u64` | the series key (inverted index entry) |
//!
//! The length prefixes make index keys unambiguous for any bytes in labels and values, and
//! let a scan enumerate one label's values or skip from one label name to the next.
//!
//! # The head
//!
//! Every acknowledged sample must be in the store when its entry's batch is written (the log
//! entry itself is deleted once applied), but rewriting a compressed head chunk per sample
//! would write O(chunk) bytes per sample. So the newest samples are stored uncompressed in
//! *runs* (see [`store`]): the in-order samples one apply round adds to a series extend one
//! run record, written once when the round's transaction becomes its batch (the transaction
//! keeps only each key's final value), so a round costs a series one run and one series
//! record however many samples it brings. A later round starts a new run rather than
//! rewriting an older one. When the head holds [`meta::SeriesMeta::head_capacity`] samples it
//! is sealed in the same transaction: compressed into one chunk record, runs deleted.
//! Samples later than the newest sealed timestamp go to the head (an out-of-order one is
//! merged into the run that covers it); older ones are merged into the sealed chunk covering
//! them (decode, merge by policy, re-encode, split when over twice the head capacity).
//!
//! There is no in-memory copy of the head: it is read from the store (the block cache in
//! production), so `state::Db` carries no series state that could drift from the store after a
//! crash or a snapshot install. Every read and write sees exactly what is stored.
//!
//! # Retention
//!
//! Relative to the series' newest timestamp: samples older than `newest - retention` are
//! refused on write ("ERR TSDB: Timestamp is older than retention"), hidden from reads, and
//! removed a whole sealed chunk at a time when a newer sample moves the cutoff past a chunk's
//! end.
//!
//! # Compaction rules
//!
//! A destination bucket is computed when the source's newest sample moves past it (the bucket
//! holding the newest sample stays open; `LATEST` computes it on the fly). A sample that lands
//! in, or a deletion that touches, an already closed bucket recomputes that bucket from the
//! source's samples. Rules may chain (the destination feeds its own rules in the same
//! transaction), cycles are refused, chains are at most [`meta::RULE_CHAIN_DEPTH_MAX`] long,
//! and `TS.CREATERULE` over a source with data fills the destination from it at once.

pub mod aggregate;
pub mod engine;
pub mod filter;
pub mod groupby;
pub mod index;
pub mod meta;
pub mod query;
pub mod store;

use crate::cmd::CommandError;
use crate::store::StoreError;

/// Why a time-series command did not complete: the client's request (an error reply), or the
/// store (the entry must not be acknowledged).
#[derive(Debug, thiserror::Error)]
pub enum TsError {
    /// Refused for the client: replied as an error.
    #[error("{0}")]
    Command(#[from] CommandError),
    /// The store failed or holds corrupt data.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A refused aggregation is the client's request: its text is the error reply.
impl From<aggregate::AggError> for TsError {
    fn from(e: aggregate::AggError) -> Self {
        Self::Command(CommandError::other(e.to_string()))
    }
}

#[cfg(test)]
mod tests;
