//! Time series (the RedisTimeSeries `TS.*` surface): pure query building blocks.
//!
//! [`aggregate`] buckets samples for `AGGREGATION` and compaction rules, [`filter`] parses and
//! evaluates `FILTER` label expressions, [`groupby`] implements `GROUPBY label REDUCE reducer`.
//! Everything here is pure: no storage, no clocks, no allocation per sample.

pub mod aggregate;
pub mod filter;
pub mod groupby;
