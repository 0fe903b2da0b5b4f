//! Byte vectors inside postcard records and messages.
//!
//! serde serializes a `Vec<u8>` as a sequence, one `u8` at a time; postcard writes that as a
//! length and the bytes, the same as `serialize_bytes`, but spends about ten instructions a
//! byte getting there. Fields that carry bytes (log entries, forwarded entries, snapshot chunks,
//! forwarded replies) use `serde_bytes` or the helpers here instead: one length and one copy,
//! and the same bytes on disk and on the wire (the golden-bytes tests of `raft::storage`,
//! `raft::message` and `node::peer` pin them).

use serde::de::{Deserialize, Deserializer};
use serde::ser::Serializer;
use serde_bytes::{ByteBuf, Bytes};

/// `Vec<Vec<u8>>` as a sequence of byte strings.
pub(crate) mod byte_vecs {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|b| Bytes::new(b)))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let v = Vec::<ByteBuf>::deserialize(d)?;
        Ok(v.into_iter().map(ByteBuf::into_vec).collect())
    }
}

/// `Vec<(T, Vec<u8>, Vec<u8>)>` (a tag with a key and a value) as a sequence of triples whose
/// two byte vectors are byte strings.
pub(crate) mod tagged_pairs {
    use serde::Serialize;

    use super::*;

    /// A tag, a key and a value.
    type Tagged<T> = (T, Vec<u8>, Vec<u8>);

    pub(crate) fn serialize<T: Serialize, S: Serializer>(
        v: &[Tagged<T>],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|(t, k, v)| (t, Bytes::new(k), Bytes::new(v))))
    }

    pub(crate) fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<Tagged<T>>, D::Error> {
        let v = Vec::<(T, ByteBuf, ByteBuf)>::deserialize(d)?;
        Ok(v.into_iter()
            .map(|(t, k, v)| (t, k.into_vec(), v.into_vec()))
            .collect())
    }
}
