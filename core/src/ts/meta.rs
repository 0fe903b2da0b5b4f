//! A series' metadata record and the binary keys of its data and index entries.
//!
//! The record is the `Kind::Series` payload of the series' key in [`Space::Keys`]:
//! `[META_VERSION, postcard(SeriesMeta)]`. See the module docs of [`crate::ts`] for the layout
//! of chunks, head samples and index entries that the functions here build.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::cmd::series::{CHUNK_SIZE_DEFAULT, DupPolicy};
use crate::store::{Space, StoreError};

/// Version of the [`SeriesMeta`] layout; a record with another version is refused.
pub const META_VERSION: u8 = 1;

/// The most compaction rules one source series feeds.
pub const RULES_PER_SERIES_MAX: usize = 64;
/// The deepest chain of compaction rules (source -> dest -> dest of dest ...).
pub const RULE_CHAIN_DEPTH_MAX: usize = 8;

/// A compaction rule: this series feeds `dest` with one aggregate per bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub dest: Bytes,
    /// Lower-case aggregator name (`avg`, `std.p`, ...), validated when the rule was created.
    pub aggregator: String,
    pub bucket_ms: u64,
    pub align_ms: u64,
}

/// Everything tickdb knows about a series except its samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesMeta {
    /// Numeric id: the prefix of its chunks and index entries. Never reused.
    pub id: u64,
    /// 0: keep every sample.
    pub retention_ms: u64,
    pub chunk_size: u64,
    /// `ENCODING UNCOMPRESSED` was asked for; chunks are compressed anyway (reported as asked).
    pub uncompressed: bool,
    /// `None`: not set on the series (BLOCK applies).
    pub duplicate_policy: Option<DupPolicy>,
    pub ignore_max_time_diff: u64,
    pub ignore_max_val_diff: f64,
    /// Labels, rules and source: shared by every copy of the record (the write path copies it
    /// per sample), changed copy-on-write ([`SeriesMeta::info_mut`]).
    #[serde(with = "inline_arc")]
    pub info: Arc<SeriesInfo>,
    /// The sample with the largest timestamp.
    pub last: Option<(u64, f64)>,
    /// Largest timestamp held in a sealed chunk; samples after it go to the head.
    pub sealed_end: Option<u64>,
    pub total_samples: u64,
    pub head_samples: u64,
    pub chunk_count: u64,
    /// Bytes of sealed chunk records (header and compressed samples).
    pub chunk_bytes: u64,
    /// Not stored: where the apply path last started a head run.
    #[serde(skip)]
    pub open_run: RunHint,
}

/// The parts of a series only TS.CREATE, TS.ALTER and the rule commands change. Encoded in
/// place of its fields (postcard writes a struct's fields back to back, nothing around them):
/// the record's bytes are those of `labels`, `rules` and `source` as fields of [`SeriesMeta`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesInfo {
    pub labels: Vec<(Bytes, Bytes)>,
    pub rules: Vec<Rule>,
    /// Set when this series is the destination of a rule.
    pub source: Option<Bytes>,
}

/// An `Arc<T>` encoded as the `T` it holds (serde's `rc` feature, for one field).
mod inline_arc {
    use super::{Arc, Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<T: Serialize, S: Serializer>(
        v: &Arc<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        T::serialize(v, s)
    }

    pub(super) fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Arc<T>, D::Error> {
        T::deserialize(d).map(Arc::new)
    }
}

/// The first timestamp of the head run the apply path started last for a series, kept while
/// its record is held decoded (`ts::engine`): a guess that `ts::store` checks (the run must be
/// held and end with the series' newest sample) before it appends there instead of searching.
/// Never stored, and no part of a series' value: every two hints compare equal.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunHint(pub Option<u64>);

impl PartialEq for RunHint {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl SeriesMeta {
    pub fn new(id: u64) -> Self {
        Self {
            id,
            retention_ms: 0,
            chunk_size: CHUNK_SIZE_DEFAULT,
            uncompressed: false,
            duplicate_policy: None,
            ignore_max_time_diff: 0,
            ignore_max_val_diff: 0.0,
            info: Arc::default(),
            last: None,
            sealed_end: None,
            total_samples: 0,
            head_samples: 0,
            chunk_count: 0,
            chunk_bytes: 0,
            open_run: RunHint(None),
        }
    }

    /// The labels, rules and source to change: copied first if another record shares them.
    pub fn info_mut(&mut self) -> &mut SeriesInfo {
        Arc::make_mut(&mut self.info)
    }

    pub fn encode(&self) -> Vec<u8> {
        self.encode_after(Vec::with_capacity(self.encoded_len_hint()))
    }

    /// Appends the record (`[META_VERSION, postcard(self)]`) to `out`, e.g. after a key
    /// record's header, without an intermediate copy.
    pub fn encode_after(&self, mut out: Vec<u8>) -> Vec<u8> {
        out.reserve(self.encoded_len_hint());
        out.push(META_VERSION);
        // Serializing plain data into a Vec cannot fail.
        postcard::to_extend(self, out).expect("postcard encodes plain data")
    }

    /// At least the encoded length, so encoding allocates once: fixed fields take at most 10
    /// bytes each as varints, a byte string its length plus a 5-byte length prefix.
    pub(crate) fn encoded_len_hint(&self) -> usize {
        let bytes = |b: &[u8]| b.len() + 5;
        let info = &*self.info;
        let labels: usize = info.labels.iter().map(|(n, v)| bytes(n) + bytes(v)).sum();
        let rules: usize = info
            .rules
            .iter()
            .map(|r| bytes(&r.dest) + bytes(r.aggregator.as_bytes()) + 20)
            .sum();
        let source = info.source.as_ref().map_or(1, |s| bytes(s) + 1);
        1 + 20 * 10 + 10 + labels + rules + source
    }

    pub fn decode(payload: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            space: Space::Keys,
            detail,
        };
        match payload.split_first() {
            Some((&META_VERSION, body)) => {
                postcard::from_bytes(body).map_err(|e| corrupt(format!("series record: {e}")))
            }
            Some((v, _)) => Err(corrupt(format!("unknown series record version {v}"))),
            None => Err(corrupt("empty series record".into())),
        }
    }

    /// How many head samples make the head full: a chunk of `chunk_size` bytes holds about
    /// that many samples at the 16 bytes an uncompressed sample takes (so a sealed chunk is
    /// typically far smaller than `chunk_size`).
    pub fn head_capacity(&self) -> u64 {
        (self.chunk_size / 16).clamp(2, u64::from(crate::chunk::MAX_SAMPLES_PER_CHUNK) / 2)
    }

    /// The oldest timestamp retention keeps visible, if retention applies.
    pub fn retention_cutoff(&self) -> Option<u64> {
        match (self.retention_ms, self.last) {
            (0, _) | (_, None) => None,
            (r, Some((last, _))) => Some(last.saturating_sub(r)),
        }
    }

    pub fn label(&self, name: &[u8]) -> Option<&Bytes> {
        self.info
            .labels
            .iter()
            .find(|(n, _)| n.as_ref() == name)
            .map(|(_, v)| v)
    }
}

/// Keys in [`Space::Chunks`] and [`Space::Labels`].
pub mod keys {
    /// Chunk-space tag of a sealed chunk.
    const SEALED: u8 = 0;
    /// Chunk-space tag of a head sample.
    const HEAD: u8 = 1;
    /// Label-space tag of the series id counter.
    pub const NEXT_ID: &[u8] = &[0];
    /// Label-space tag of index entries.
    const INDEX: u8 = 1;

    fn series_tag(id: u64, tag: u8) -> Vec<u8> {
        let mut k = Vec::with_capacity(17);
        k.extend_from_slice(&id.to_be_bytes());
        k.push(tag);
        k
    }

    pub fn sealed(id: u64, start: u64) -> Vec<u8> {
        let mut k = series_tag(id, SEALED);
        k.extend_from_slice(&start.to_be_bytes());
        k
    }

    pub fn sealed_prefix(id: u64) -> Vec<u8> {
        series_tag(id, SEALED)
    }

    pub fn head(id: u64, ts: u64) -> Vec<u8> {
        let mut k = series_tag(id, HEAD);
        k.extend_from_slice(&ts.to_be_bytes());
        k
    }

    /// [`head`] without an allocation, for a lookup.
    pub fn head_array(id: u64, ts: u64) -> [u8; 17] {
        let mut k = [0; 17];
        k[..8].copy_from_slice(&id.to_be_bytes());
        k[8] = HEAD;
        k[9..].copy_from_slice(&ts.to_be_bytes());
        k
    }

    pub fn head_prefix(id: u64) -> Vec<u8> {
        series_tag(id, HEAD)
    }

    /// Everything of series `id`: `[start, end)`.
    pub fn series_range(id: u64) -> (Vec<u8>, Vec<u8>) {
        (series_tag(id, 0), series_tag(id, u8::MAX))
    }

    /// The timestamp at the end of a sealed or head key.
    pub fn ts_of(key: &[u8]) -> Option<u64> {
        let tail: [u8; 8] = key.get(9..17)?.try_into().ok()?;
        Some(u64::from_be_bytes(tail))
    }

    fn push_field(k: &mut Vec<u8>, field: &[u8]) {
        let len = u32::try_from(field.len()).expect("label length is bounded");
        k.extend_from_slice(&len.to_be_bytes());
        k.extend_from_slice(field);
    }

    /// Entries of label `name` (any value).
    pub fn label_prefix(name: &[u8]) -> Vec<u8> {
        let mut k = vec![INDEX];
        push_field(&mut k, name);
        k
    }

    /// Entries of `name=value`.
    pub fn pair_prefix(name: &[u8], value: &[u8]) -> Vec<u8> {
        let mut k = label_prefix(name);
        push_field(&mut k, value);
        k
    }

    pub fn index(name: &[u8], value: &[u8], id: u64) -> Vec<u8> {
        let mut k = pair_prefix(name, value);
        k.extend_from_slice(&id.to_be_bytes());
        k
    }

    /// The whole index: `[start, end)`.
    pub fn index_range() -> (Vec<u8>, Vec<u8>) {
        (vec![INDEX], vec![INDEX + 1])
    }

    /// Splits an index key into (name, value, id).
    pub fn parse_index(key: &[u8]) -> Option<(&[u8], &[u8], u64)> {
        let rest = key.strip_prefix(&[INDEX])?;
        let (name, rest) = field(rest)?;
        let (value, rest) = field(rest)?;
        let id: [u8; 8] = rest.try_into().ok()?;
        Some((name, value, u64::from_be_bytes(id)))
    }

    fn field(b: &[u8]) -> Option<(&[u8], &[u8])> {
        let len: [u8; 4] = b.get(..4)?.try_into().ok()?;
        let len = usize::try_from(u32::from_be_bytes(len)).ok()?;
        let f = b.get(4..4 + len)?;
        Some((f, &b[4 + len..]))
    }

    /// The smallest key greater than every key starting with `prefix`.
    pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
        let mut end = prefix.to_vec();
        while let Some(last) = end.pop() {
            if last < u8::MAX {
                end.push(last + 1);
                return end;
            }
        }
        vec![u8::MAX; prefix.len() + 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips_and_refuses_other_versions() {
        let mut m = SeriesMeta::new(7);
        m.info_mut()
            .labels
            .push(("a".into(), Bytes::from_static(&[0, 255])));
        m.last = Some((5, -0.0));
        let enc = m.encode();
        assert_eq!(SeriesMeta::decode(&enc).unwrap(), m);
        assert!(enc.len() <= m.encoded_len_hint(), "one allocation");
        assert_eq!(m.encode_after(vec![7, 8])[2..], enc[..]);
        let mut bad = enc.clone();
        bad[0] = 9;
        assert!(SeriesMeta::decode(&bad).is_err());
    }

    /// [`SeriesMeta`] as it was before labels, rules and source moved into [`SeriesInfo`]: the
    /// record's bytes must not change.
    #[derive(Serialize)]
    struct FlatMeta<'a> {
        id: u64,
        retention_ms: u64,
        chunk_size: u64,
        uncompressed: bool,
        duplicate_policy: Option<DupPolicy>,
        ignore_max_time_diff: u64,
        ignore_max_val_diff: f64,
        labels: &'a [(Bytes, Bytes)],
        rules: &'a [Rule],
        source: &'a Option<Bytes>,
        last: Option<(u64, f64)>,
        sealed_end: Option<u64>,
        total_samples: u64,
        head_samples: u64,
        chunk_count: u64,
        chunk_bytes: u64,
    }

    #[test]
    fn info_encodes_as_the_flat_fields_it_replaced() {
        let mut m = SeriesMeta::new(300);
        m.retention_ms = 86_400_000;
        m.duplicate_policy = Some(DupPolicy::Last);
        m.ignore_max_val_diff = 0.5;
        m.last = Some((1_700_000_000_000, 101.25));
        m.sealed_end = Some(1_699_999_999_000);
        (
            m.total_samples,
            m.head_samples,
            m.chunk_count,
            m.chunk_bytes,
        ) = (900, 12, 4, 5000);
        let info = m.info_mut();
        info.labels = vec![
            ("symbol".into(), "AAPL".into()),
            ("venue".into(), "X".into()),
        ];
        info.rules = vec![Rule {
            dest: "aapl:1m".into(),
            aggregator: "avg".into(),
            bucket_ms: 60_000,
            align_ms: 7,
        }];
        info.source = Some("src".into());
        let flat = FlatMeta {
            id: m.id,
            retention_ms: m.retention_ms,
            chunk_size: m.chunk_size,
            uncompressed: m.uncompressed,
            duplicate_policy: m.duplicate_policy,
            ignore_max_time_diff: m.ignore_max_time_diff,
            ignore_max_val_diff: m.ignore_max_val_diff,
            labels: &m.info.labels,
            rules: &m.info.rules,
            source: &m.info.source,
            last: m.last,
            sealed_end: m.sealed_end,
            total_samples: m.total_samples,
            head_samples: m.head_samples,
            chunk_count: m.chunk_count,
            chunk_bytes: m.chunk_bytes,
        };
        let enc = m.encode();
        assert_eq!(enc[0], META_VERSION);
        assert_eq!(enc[1..], postcard::to_stdvec(&flat).unwrap()[..]);
        assert_eq!(SeriesMeta::decode(&enc).unwrap(), m);
        assert!(enc.len() <= m.encoded_len_hint());
    }

    #[test]
    fn info_changes_copy_on_write() {
        let mut a = SeriesMeta::new(1);
        a.info_mut().labels.push(("symbol".into(), "AAPL".into()));
        let mut b = a.clone();
        assert!(Arc::ptr_eq(&a.info, &b.info), "a copy shares the info");
        b.info_mut().labels[0].1 = "MSFT".into();
        b.info_mut().source = Some("s".into());
        assert_eq!(a.label(b"symbol").map(|v| &v[..]), Some(&b"AAPL"[..]));
        assert_eq!(a.info.source, None);
        assert_eq!(b.label(b"symbol").map(|v| &v[..]), Some(&b"MSFT"[..]));
        assert_ne!(a, b);
    }

    #[test]
    fn index_keys_are_unambiguous() {
        let a = keys::index(b"ab", b"c", 1);
        let b = keys::index(b"a", b"bc", 1);
        assert_ne!(a, b);
        assert_eq!(keys::parse_index(&a), Some((&b"ab"[..], &b"c"[..], 1)));
        assert!(a.starts_with(&keys::label_prefix(b"ab")));
        assert!(!b.starts_with(&keys::label_prefix(b"ab")));
        assert_eq!(keys::prefix_end(&[1, 255]), vec![2]);
    }

    #[test]
    fn head_keys_sort_after_sealed_and_by_time() {
        assert!(keys::sealed(3, u64::MAX) < keys::head(3, 0));
        assert!(keys::head(3, 9) < keys::head(3, 10));
        assert!(keys::head(3, u64::MAX) < keys::sealed(4, 0));
        assert_eq!(keys::head_array(3, 9)[..], keys::head(3, 9)[..]);
        assert_eq!(keys::ts_of(&keys::head(3, 42)), Some(42));
    }
}
