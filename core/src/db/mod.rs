//! Key records and the transaction they are written in: the storage layer of the state
//! machine, below the series engine and the dispatch.
//!
//! The keyspace lives in [`Space::Keys`]: each user key maps to a record
//! `[RECORD_VERSION, kind, payload...]`. Strings keep their value as the payload; a series
//! keeps its metadata (see `crate::ts`). Beside the records, in [`Space::Meta`]: deadlines
//! ([`expiry`]), WATCH versions ([`version`]) and cluster-wide state ([`meta`]). [`Tx`] holds
//! an entry's (or a round's) changes until they become one atomic batch.
//!
//! Layering: imports `cmd` (its vocabulary: typed writes, `MetaWrite`, series limits) and
//! `store`; never `ts`, `state` or `node`, which build on it.

pub mod expiry;
pub mod glob;
pub mod meta;
mod tx;
pub mod version;

use crate::store::{Space, StoreError};

pub use tx::{Changes, Touched, Tx, Typed};

/// Version of the key record layout; a record with another version is refused, not guessed.
pub const RECORD_VERSION: u8 = 1;

/// The type of value a key holds, as stored in its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    String = 1,
    Series = 2,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::String),
            2 => Some(Self::Series),
            _ => None,
        }
    }

    /// The name `TYPE` replies with (RedisTimeSeries calls its type `TSDB-TYPE`).
    pub fn type_name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Series => "TSDB-TYPE",
        }
    }
}

/// A decoded key record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub kind: Kind,
    pub payload: Vec<u8>,
}

impl Record {
    /// The record's header, for a caller that appends the payload itself.
    pub fn header(kind: Kind) -> Vec<u8> {
        vec![RECORD_VERSION, kind as u8]
    }

    /// [`Record::encode`] into `buf`, when it fits: no allocation for a short value.
    pub fn encode_in<'b>(kind: Kind, payload: &[u8], buf: &'b mut [u8]) -> Option<&'b [u8]> {
        let out = buf.get_mut(..payload.len() + 2)?;
        out[0] = RECORD_VERSION;
        out[1] = kind as u8;
        out[2..].copy_from_slice(payload);
        Some(out)
    }

    pub fn encode(kind: Kind, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(payload.len() + 2);
        out.push(RECORD_VERSION);
        out.push(kind as u8);
        out.extend_from_slice(payload);
        out
    }

    pub fn decode(raw: Vec<u8>) -> Result<Self, StoreError> {
        let corrupt = |detail: &str| StoreError::Corrupt {
            space: Space::Keys,
            detail: detail.into(),
        };
        match raw.as_slice() {
            [RECORD_VERSION, kind, ..] => {
                let kind = Kind::from_byte(*kind).ok_or_else(|| corrupt("unknown key kind"))?;
                let mut payload = raw;
                payload.drain(..2);
                Ok(Self { kind, payload })
            }
            [] | [_] => Err(corrupt("truncated key record")),
            _ => Err(corrupt("unknown key record version")),
        }
    }
}
