//! The series vocabulary the `TS.*` parser and the series engine share: the duplicate policy
//! and the documented bounds of a series' options.
//!
//! It lives in the command layer because the parser validates against it; `ts` stores it in
//! the series record and `db::meta` in the cluster-wide defaults, both importing it from here.
//! Imports nothing from `db`, `ts`, `state` or `node`.

use serde::{Deserialize, Serialize};

use super::CommandError;

/// Default `CHUNK_SIZE` in bytes, as RedisTimeSeries documents it.
pub const CHUNK_SIZE_DEFAULT: u64 = 4096;
/// The documented bounds of `CHUNK_SIZE` (a multiple of 8 in between).
pub const CHUNK_SIZE_MIN: u64 = 48;
pub const CHUNK_SIZE_MAX: u64 = 1_048_576;

/// The most labels one series carries.
pub const LABELS_PER_SERIES_MAX: usize = 128;
/// The longest label name or value, in bytes.
pub const LABEL_BYTES_MAX: usize = 1024;

/// What happens when a sample arrives for a timestamp the series already holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DupPolicy {
    Block,
    First,
    Last,
    Min,
    Max,
    Sum,
}

impl DupPolicy {
    pub fn parse(arg: &[u8]) -> Option<Self> {
        let all = [
            ("BLOCK", Self::Block),
            ("FIRST", Self::First),
            ("LAST", Self::Last),
            ("MIN", Self::Min),
            ("MAX", Self::Max),
            ("SUM", Self::Sum),
        ];
        all.iter()
            .find(|(n, _)| arg.eq_ignore_ascii_case(n.as_bytes()))
            .map(|(_, p)| *p)
    }

    /// The lower-case name TS.INFO reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::First => "first",
            Self::Last => "last",
            Self::Min => "min",
            Self::Max => "max",
            Self::Sum => "sum",
        }
    }

    /// The value to keep when `new` arrives for a timestamp holding `old`, or the error reply:
    /// BLOCK refuses every duplicate, and MIN/MAX/SUM refuse when exactly one of the two values
    /// is NaN (redis.io TS.ADD, Redis 8.6; the wording of that error is ours).
    pub fn merge(self, old: f64, new: f64) -> Result<f64, CommandError> {
        if matches!(self, Self::Min | Self::Max | Self::Sum) && old.is_nan() != new.is_nan() {
            return Err(CommandError::other(format!(
                "ERR TSDB: cannot apply DUPLICATE_POLICY {} to a NaN and a number",
                self.name().to_ascii_uppercase()
            )));
        }
        Ok(match self {
            Self::Block => {
                return Err(CommandError::other(
                    "ERR TSDB: Error at upsert, update is not supported when DUPLICATE_POLICY \
                     is set to BLOCK mode",
                ));
            }
            Self::First => old,
            Self::Last => new,
            Self::Min => {
                if new < old {
                    new
                } else {
                    old
                }
            }
            Self::Max => {
                if new > old {
                    new
                } else {
                    old
                }
            }
            Self::Sum => old + new,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_merge() {
        assert_eq!(DupPolicy::Sum.merge(1.0, 2.0), Ok(3.0));
        assert_eq!(DupPolicy::Min.merge(1.0, 2.0), Ok(1.0));
        assert_eq!(DupPolicy::First.merge(1.0, 2.0), Ok(1.0));
        assert!(DupPolicy::Block.merge(1.0, 2.0).is_err());
        // Redis 8.6: MIN/MAX/SUM refuse a NaN against a number, not NaN against NaN.
        for p in [DupPolicy::Min, DupPolicy::Max, DupPolicy::Sum] {
            assert!(p.merge(f64::NAN, 1.0).is_err());
            assert!(p.merge(1.0, f64::NAN).is_err());
            assert!(p.merge(f64::NAN, f64::NAN).unwrap().is_nan());
        }
        assert!(DupPolicy::Last.merge(1.0, f64::NAN).unwrap().is_nan());
        assert_eq!(DupPolicy::First.merge(1.0, f64::NAN), Ok(1.0));
    }
}
