//! Key records and the transaction they are written in: the storage layer of the state
//! machine, below the series engine and the dispatch.
//!
//! The keyspace lives in [`Space::Keys`]: each user key maps to a record
//! `[RECORD_VERSION, kind, stamp: u64 big-endian, payload...]`. The stamp is the log index of
//! the entry that wrote the record: the key's WATCH version ([`version`]). Strings keep their
//! value as the payload; a series keeps its metadata (see `crate::ts`). Records of version 1
//! (`[1, kind, payload...]`, before session 13) are still read; their WATCH version is in a
//! `watch/<key>` record. Beside the records, in [`Space::Meta`]: deadlines ([`expiry`]), the
//! WATCH versions of missing keys ([`version`]) and cluster-wide state ([`meta`]). [`Tx`] holds
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

pub use tx::{Changes, Deleted, Tx, Typed};

/// Version of the key record layout written; 1 (no stamp) is read too, any other is refused.
pub const RECORD_VERSION: u8 = 2;
/// The layout before the stamp: `[1, kind, payload...]`.
const RECORD_VERSION_UNSTAMPED: u8 = 1;
/// Bytes before a stamped record's payload: version, kind, stamp.
pub const RECORD_HEADER_LEN: usize = 10;

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
    /// The log index of the entry that wrote it; `None` for a record of version 1.
    pub stamp: Option<u64>,
    pub payload: Vec<u8>,
}

impl Record {
    /// The header of a record written by the entry at log index `stamp`, for a caller that
    /// appends the payload itself.
    pub fn header(kind: Kind, stamp: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(RECORD_HEADER_LEN);
        Self::put_header(&mut out, kind, stamp);
        out
    }

    /// Appends the header of a record written by the entry at `stamp` to `out`.
    pub fn put_header(out: &mut Vec<u8>, kind: Kind, stamp: u64) {
        out.push(RECORD_VERSION);
        out.push(kind as u8);
        out.extend_from_slice(&stamp.to_be_bytes());
    }

    /// [`Record::encode`] into `buf`, when it fits: no allocation for a short value.
    pub fn encode_in<'b>(
        kind: Kind,
        stamp: u64,
        payload: &[u8],
        buf: &'b mut [u8],
    ) -> Option<&'b [u8]> {
        let out = buf.get_mut(..payload.len() + RECORD_HEADER_LEN)?;
        out[0] = RECORD_VERSION;
        out[1] = kind as u8;
        out[2..RECORD_HEADER_LEN].copy_from_slice(&stamp.to_be_bytes());
        out[RECORD_HEADER_LEN..].copy_from_slice(payload);
        Some(out)
    }

    pub fn encode(kind: Kind, stamp: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Self::header(kind, stamp);
        out.extend_from_slice(payload);
        out
    }

    pub fn decode(raw: Vec<u8>) -> Result<Self, StoreError> {
        let (kind, stamp, header) = Self::parse_header(&raw)?;
        let mut payload = raw;
        payload.drain(..header);
        Ok(Self {
            kind,
            stamp,
            payload,
        })
    }

    /// A record's kind, its stamp (`None` for version 1) and the length of its header.
    pub fn parse_header(raw: &[u8]) -> Result<(Kind, Option<u64>, usize), StoreError> {
        let corrupt = |detail: &str| StoreError::Corrupt {
            space: Space::Keys,
            detail: detail.into(),
        };
        let kind = |b: u8| Kind::from_byte(b).ok_or_else(|| corrupt("unknown key kind"));
        match raw {
            [RECORD_VERSION, k, rest @ ..] => {
                let stamp = rest
                    .first_chunk::<8>()
                    .ok_or_else(|| corrupt("truncated key record"))?;
                Ok((
                    kind(*k)?,
                    Some(u64::from_be_bytes(*stamp)),
                    RECORD_HEADER_LEN,
                ))
            }
            [RECORD_VERSION_UNSTAMPED, k, ..] => Ok((kind(*k)?, None, 2)),
            [] | [_] => Err(corrupt("truncated key record")),
            _ => Err(corrupt("unknown key record version")),
        }
    }

    /// `raw` (a record of either version) written again by the entry at `stamp`: the same
    /// kind and payload under the new stamp.
    pub fn restamped(raw: &[u8], stamp: u64) -> Result<Vec<u8>, StoreError> {
        let (kind, _, header) = Self::parse_header(raw)?;
        Ok(Self::encode(kind, stamp, &raw[header..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored layout, pinned: a reordered field or a changed width fails here.
    #[test]
    fn key_records_golden_bytes() {
        let rec = Record::encode(Kind::String, 0x0102_0304_0506_0708, b"hi");
        assert_eq!(rec, [2, 1, 1, 2, 3, 4, 5, 6, 7, 8, b'h', b'i']);
        assert_eq!(
            Record::header(Kind::Series, 9),
            [2, 2, 0, 0, 0, 0, 0, 0, 0, 9]
        );
        assert_eq!(
            Record::decode(rec).unwrap(),
            Record {
                kind: Kind::String,
                stamp: Some(0x0102_0304_0506_0708),
                payload: b"hi".to_vec(),
            }
        );
    }

    #[test]
    fn unstamped_records_are_still_read_and_restamp_to_the_new_layout() {
        let old = vec![1, 2, 7, 7];
        assert_eq!(
            Record::decode(old.clone()).unwrap(),
            Record {
                kind: Kind::Series,
                stamp: None,
                payload: vec![7, 7],
            }
        );
        assert_eq!(
            Record::restamped(&old, 5).unwrap(),
            [2, 2, 0, 0, 0, 0, 0, 0, 0, 5, 7, 7]
        );
        let new = Record::encode(Kind::String, 3, b"v");
        assert_eq!(
            Record::restamped(&new, 4).unwrap(),
            Record::encode(Kind::String, 4, b"v")
        );
    }

    #[test]
    fn malformed_records_are_corrupt_not_guessed() {
        for raw in [
            &[][..],
            &[2],
            &[2, 1, 0, 0],
            &[3, 1, 0],
            &[2, 9, 0, 0, 0, 0, 0, 0, 0, 0],
            &[1, 9],
        ] {
            assert!(
                matches!(
                    Record::decode(raw.to_vec()),
                    Err(StoreError::Corrupt { .. })
                ),
                "{raw:?}"
            );
        }
    }
}
