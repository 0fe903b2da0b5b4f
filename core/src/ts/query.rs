//! The `TS.*` reads and their replies, in RESP2 and RESP3 shapes as documented.
//!
//! RESP3 replies use maps and doubles; RESP2 replies carry sample values as simple strings and
//! labels as arrays of `[name, value]` pairs, which is not what the encoder's automatic
//! lowering of a RESP3 frame would give, so replies are built per protocol here.

use std::sync::Arc;

use bytes::Bytes;

use crate::cmd::CommandError;
use crate::cmd::args::format_float;
use crate::cmd::series::DupPolicy;
use crate::cmd::ts::{AggQuery, Align, BucketTs, Cursor, LabelSel, RangeQuery, TsRead};
use crate::resp::{Frame, Protocol};
use crate::store::{StoreError, StoreRead};

use super::TsError;
use super::aggregate::{AggSpec, Aggregation, Aggregator, BucketTimestamp, aggregate};
use super::engine::{compute_buckets, each_with_neighbours, load, lookup};
use super::groupby::{Reducer, SeriesRows, group};
use super::index;
use super::meta::SeriesMeta;
use super::store as samples;

/// The most raw samples one range query returns without COUNT (per series).
pub const RANGE_SAMPLES_MAX: usize = 1_000_000;

fn tsdb(msg: &str) -> TsError {
    TsError::Command(CommandError::other(format!("ERR TSDB: {msg}")))
}

/// Runs a `TS.*` read; command errors are error replies, store failures are `Err`.
pub fn read(r: &impl StoreRead, cmd: &TsRead, proto: Protocol) -> Result<Frame, StoreError> {
    match run(r, cmd, proto) {
        Ok(f) => Ok(f),
        Err(TsError::Command(c)) => Ok(Frame::error(c.to_string())),
        Err(TsError::Store(s)) => Err(s),
    }
}

fn run(r: &impl StoreRead, cmd: &TsRead, p: Protocol) -> Result<Frame, TsError> {
    match cmd {
        TsRead::Get { key, latest } => {
            let meta = existing(r, key)?;
            Ok(match newest(r, key, &meta, *latest)? {
                Some((ts, v)) => row(ts, &[v], p),
                None => Frame::Array(Vec::new()),
            })
        }
        TsRead::MGet {
            latest,
            labels,
            filter,
        } => {
            let selected = index::select(r, filter)?.map_err(TsError::Command)?;
            let mut out = Vec::with_capacity(selected.len());
            for (key, meta) in selected {
                let sample = match newest(r, &key, &meta, *latest)? {
                    Some((ts, v)) => row(ts, &[v], p),
                    None => Frame::Array(Vec::new()),
                };
                out.push((key, vec![label_frame(&meta, labels, p), sample]));
            }
            Ok(keyed(out, p))
        }
        TsRead::Range {
            key,
            reverse,
            query,
        } => {
            let meta = existing(r, key)?;
            let rows = range_rows(r, key, &meta, query, *reverse)?;
            Ok(rows_frame(&rows, p))
        }
        TsRead::MRange {
            reverse,
            query,
            labels,
            filter,
            group_by,
            exclude_empty,
        } => {
            let m = MRange {
                reverse: *reverse,
                query,
                labels,
                filter,
                exclude_empty: *exclude_empty,
            };
            match group_by {
                None => mrange(r, &m, p),
                Some((label, reducer)) => mrange_grouped(r, &m, label, reducer, p),
            }
        }
        TsRead::NRange {
            keys,
            reverse,
            query,
            per_key,
        } => nrange(r, keys, *reverse, query, per_key, p),
        TsRead::QueryIndex(filter) => {
            let selected = index::select(r, filter)?.map_err(TsError::Command)?;
            let keys = selected.into_iter().map(|(k, _)| Frame::Bulk(k)).collect();
            Ok(match p {
                Protocol::Resp3 => Frame::Set(keys),
                Protocol::Resp2 => Frame::Array(keys),
            })
        }
        TsRead::Info { key } => {
            let meta = existing(r, key)?;
            info(r, &meta, p)
        }
        TsRead::QueryLabels { label, filter } => {
            let found = match filter {
                None => index::label_values(r, label.as_deref())?,
                Some(f) => {
                    let selected = index::select(r, f)?.map_err(TsError::Command)?;
                    let mut set = std::collections::BTreeSet::new();
                    for (_, meta) in selected {
                        for (n, v) in Arc::unwrap_or_clone(meta.info).labels {
                            match label {
                                None => set.insert(n),
                                Some(l) if *l == n => set.insert(v),
                                Some(_) => false,
                            };
                        }
                    }
                    set.into_iter().collect()
                }
            };
            let items = found.into_iter().map(Frame::Bulk).collect();
            Ok(match p {
                Protocol::Resp3 => Frame::Set(items),
                Protocol::Resp2 => Frame::Array(items),
            })
        }
        TsRead::SeedGet { key, from, to } => {
            let Some(meta) = lookup(r, key)? else {
                return Ok(Frame::Array(Vec::new()));
            };
            let rows = range_rows(r, key, &meta, &plain_range(*from, *to, None), false)?;
            Ok(rows_frame(&rows, p))
        }
        TsRead::Read(q) => {
            let from = resolve_cursor(r, &q.key, q.cursor)?;
            Ok(match read_from(r, &q.key, from, q.max_count)? {
                Some(rows) => rows_frame(&rows, p),
                None => Frame::Array(Vec::new()),
            })
        }
    }
}

/// A range with no filter and no aggregation.
fn plain_range(from: u64, to: u64, count: Option<u64>) -> RangeQuery {
    RangeQuery {
        from,
        to,
        latest: false,
        filter_by_ts: None,
        filter_by_value: None,
        count,
        aggregation: None,
    }
}

/// What `TS.READ` finds: up to `limit` samples with a timestamp at or after the cursor, oldest
/// first; `None` for a missing key.
pub type ReadRows = Option<Vec<(u64, Vec<f64>)>>;

/// `TS.READ`'s sentinels resolved against the series as it is now (redis.io: `-` the earliest
/// sample, `+` the latest, `$` one past the latest; 0 for an empty or missing series).
pub fn resolve_cursor(r: &impl StoreRead, key: &[u8], cursor: Cursor) -> Result<u64, TsError> {
    if let Cursor::At(ts) = cursor {
        return Ok(ts);
    }
    let Some(meta) = lookup(r, key)? else {
        return Ok(0);
    };
    let Some((last, _)) = meta.last else {
        return Ok(0);
    };
    Ok(match cursor {
        Cursor::At(ts) => ts,
        Cursor::Latest => last,
        Cursor::New => last.saturating_add(1),
        Cursor::Earliest => {
            let mut first = last;
            samples::scan_samples(r, &meta, 0, u64::MAX, |ts, _| {
                first = ts;
                false
            })?;
            first
        }
    })
}

/// The oldest samples (at most `limit`) with a timestamp at or after `from`.
pub fn read_from(
    r: &impl StoreRead,
    key: &[u8],
    from: u64,
    limit: Option<u64>,
) -> Result<ReadRows, TsError> {
    let Some(meta) = lookup(r, key)? else {
        return Ok(None);
    };
    let q = plain_range(from, u64::MAX, limit);
    range_rows(r, key, &meta, &q, false).map(Some)
}

/// `TS.READ`'s reply: `[timestamp, value]` pairs, as `TS.RANGE` sends them.
pub fn read_reply(rows: &[(u64, Vec<f64>)], p: Protocol) -> Frame {
    rows_frame(rows, p)
}

fn existing(r: &impl StoreRead, key: &[u8]) -> Result<SeriesMeta, TsError> {
    lookup(r, key)?.ok_or_else(|| tsdb("the key does not exist"))
}

/// A sample value: a double in RESP3, a simple string in RESP2 (as RedisTimeSeries replies).
fn value(v: f64, p: Protocol) -> Frame {
    match p {
        Protocol::Resp3 => Frame::Double(v),
        Protocol::Resp2 => Frame::Simple(Bytes::from(if v.is_nan() {
            "nan".to_string()
        } else if v.is_infinite() {
            if v > 0.0 { "inf" } else { "-inf" }.to_string()
        } else {
            format_float(v)
        })),
    }
}

fn row(ts: u64, vals: &[f64], p: Protocol) -> Frame {
    let mut out = Vec::with_capacity(vals.len() + 1);
    out.push(Frame::Integer(i64::try_from(ts).unwrap_or(i64::MAX)));
    out.extend(vals.iter().map(|v| value(*v, p)));
    Frame::Array(out)
}

fn rows_frame(rows: &[(u64, Vec<f64>)], p: Protocol) -> Frame {
    Frame::Array(rows.iter().map(|(ts, v)| row(*ts, v, p)).collect())
}

fn pairs_frame(pairs: Vec<(Bytes, Option<Bytes>)>, p: Protocol) -> Frame {
    let v = |x: Option<Bytes>| x.map_or(Frame::Null, Frame::Bulk);
    match p {
        Protocol::Resp3 => Frame::Map(
            pairs
                .into_iter()
                .map(|(n, x)| (Frame::Bulk(n), v(x)))
                .collect(),
        ),
        Protocol::Resp2 => Frame::Array(
            pairs
                .into_iter()
                .map(|(n, x)| Frame::Array(vec![Frame::Bulk(n), v(x)]))
                .collect(),
        ),
    }
}

fn label_frame(meta: &SeriesMeta, sel: &LabelSel, p: Protocol) -> Frame {
    let pairs = match sel {
        LabelSel::None => Vec::new(),
        LabelSel::All => meta
            .info
            .labels
            .iter()
            .map(|(n, v)| (n.clone(), Some(v.clone())))
            .collect(),
        LabelSel::Selected(names) => names
            .iter()
            .map(|n| (n.clone(), meta.label(n).cloned()))
            .collect(),
    };
    pairs_frame(pairs, p)
}

/// Per-series entries: RESP3 a map from key to the entry's parts, RESP2 an array of
/// `[key, parts...]`.
fn keyed(entries: Vec<(Bytes, Vec<Frame>)>, p: Protocol) -> Frame {
    match p {
        Protocol::Resp3 => Frame::Map(
            entries
                .into_iter()
                .map(|(k, parts)| (Frame::Bulk(k), Frame::Array(parts)))
                .collect(),
        ),
        Protocol::Resp2 => Frame::Array(
            entries
                .into_iter()
                .map(|(k, parts)| {
                    let mut v = vec![Frame::Bulk(k)];
                    v.extend(parts);
                    Frame::Array(v)
                })
                .collect(),
        ),
    }
}

/// The newest sample, or with LATEST on a compaction destination the open bucket computed
/// from the source when it is newer.
fn newest(
    r: &impl StoreRead,
    key: &[u8],
    meta: &SeriesMeta,
    latest: bool,
) -> Result<Option<(u64, f64)>, TsError> {
    let stored = meta.last;
    if !latest {
        return Ok(stored);
    }
    let open = open_bucket(r, key, meta)?;
    Ok(match (stored, open) {
        (Some(s), Some(o)) if o.0 > s.0 => Some(o),
        (None, o) => o,
        (s, _) => s,
    })
}

/// For a compaction destination: the value of the source's still-open bucket.
fn open_bucket(
    r: &impl StoreRead,
    key: &[u8],
    meta: &SeriesMeta,
) -> Result<Option<(u64, f64)>, TsError> {
    let Some(src_key) = &meta.info.source else {
        return Ok(None);
    };
    let Some(src) = load(r, src_key)? else {
        return Ok(None);
    };
    let Some(rule) = src.info.rules.iter().find(|x| x.dest.as_ref() == key) else {
        return Ok(None);
    };
    let Some((last, _)) = src.last else {
        return Ok(None);
    };
    let lo = super::aggregate::bucket_start(last, rule.bucket_ms, rule.align_ms).max(0);
    let lo = u64::try_from(lo).unwrap_or(0);
    let rows = compute_buckets(r, &src, rule, lo, last)?;
    Ok(rows.into_iter().next_back())
}

/// The rows of one series for a range query: raw samples (one value each) or aggregates.
fn range_rows(
    r: &impl StoreRead,
    key: &[u8],
    meta: &SeriesMeta,
    q: &RangeQuery,
    reverse: bool,
) -> Result<Vec<(u64, Vec<f64>)>, TsError> {
    let filtered = q.filter_by_ts.is_some() || q.filter_by_value.is_some();
    let keep = |ts: u64, v: f64| {
        q.filter_by_ts.as_ref().is_none_or(|l| l.contains(&ts))
            && q.filter_by_value.is_none_or(|(lo, hi)| v >= lo && v <= hi)
    };
    let want = q.count.map(|c| usize::try_from(c).unwrap_or(usize::MAX));
    if let Some(agg) = &q.aggregation
        && !filtered
    {
        // Folded as the chunks decode, with the neighbours outside the range: no sample is
        // collected.
        let spec = agg_spec(agg, q)?;
        let mut aggregation = Aggregation::new(&spec, (q.from, q.to))?;
        each_with_neighbours(r, meta, q.from, q.to, |run| aggregation.push_all(run))?;
        if let Some((ts, v)) = latest_open_bucket(r, key, meta, q)? {
            aggregation.push(ts, v);
        }
        let mut rows = aggregation.finish(reverse)?;
        rows.truncate(want.unwrap_or(usize::MAX));
        return Ok(rows);
    }
    let mut raw: Vec<(u64, f64)> = Vec::new();
    let mut too_many = false;
    let stop_early = q.aggregation.is_none() && !reverse;
    if reverse && q.aggregation.is_none() && want.is_some() {
        // The newest `want` samples, read from the newest end; put back in ascending order
        // for the shared code below.
        samples::scan_samples_rev(r, meta, q.from, q.to, |ts, v| {
            if keep(ts, v) {
                raw.push((ts, v));
            }
            want.is_none_or(|w| raw.len() < w)
        })?;
        raw.reverse();
    } else {
        samples::scan_samples(r, meta, q.from, q.to, |ts, v| {
            if keep(ts, v) {
                raw.push((ts, v));
            }
            if stop_early && want.is_some_and(|w| raw.len() >= w) {
                return false;
            }
            if q.count.is_none() && q.aggregation.is_none() && raw.len() > RANGE_SAMPLES_MAX {
                too_many = true;
                return false;
            }
            true
        })?;
    }
    if too_many {
        return Err(tsdb(&format!(
            "the range holds more than {RANGE_SAMPLES_MAX} samples: use COUNT or AGGREGATION"
        )));
    }
    if let Some((ts, v)) = latest_open_bucket(r, key, meta, q)?
        && keep(ts, v)
    {
        raw.push((ts, v));
    }
    let mut rows: Vec<(u64, Vec<f64>)> = match &q.aggregation {
        None => {
            let mut rows: Vec<_> = raw.into_iter().map(|(t, v)| (t, vec![v])).collect();
            if reverse {
                rows.reverse();
            }
            rows
        }
        Some(agg) => aggregate(raw, &agg_spec(agg, q)?, (q.from, q.to), reverse)?,
    };
    if let Some(w) = want {
        rows.truncate(w);
    }
    Ok(rows)
}

/// With `LATEST` on a compaction destination: the source's open bucket, when it is newer than
/// what the destination holds and inside the query's range.
fn latest_open_bucket(
    r: &impl StoreRead,
    key: &[u8],
    meta: &SeriesMeta,
    q: &RangeQuery,
) -> Result<Option<(u64, f64)>, TsError> {
    if !q.latest {
        return Ok(None);
    }
    Ok(open_bucket(r, key, meta)?
        .filter(|&(ts, _)| meta.last.is_none_or(|(l, _)| ts > l) && ts >= q.from && ts <= q.to))
}

fn agg_spec(agg: &AggQuery, q: &RangeQuery) -> Result<AggSpec, TsError> {
    let aggregators = agg
        .aggregators
        .iter()
        .map(|a| Aggregator::parse(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TsError::Command(CommandError::other(e.to_string())))?;
    Ok(AggSpec {
        aggregators,
        bucket_ms: agg.bucket_ms,
        align: match agg.align {
            Align::Start => q.from,
            Align::End => q.to,
            Align::At(t) => t,
        },
        bucket_ts: match agg.bucket_ts {
            BucketTs::Start => BucketTimestamp::Start,
            BucketTs::End => BucketTimestamp::End,
            BucketTs::Mid => BucketTimestamp::Mid,
        },
        empty: agg.empty,
    })
}

/// A TS.MRANGE / TS.MREVRANGE request without its GROUPBY.
struct MRange<'a> {
    reverse: bool,
    query: &'a RangeQuery,
    labels: &'a LabelSel,
    filter: &'a [Bytes],
    exclude_empty: bool,
}

/// Whether the series has a sample (NaN included) in `[from, to]`: EXCLUDEEMPTY keeps it.
fn has_samples(r: &impl StoreRead, meta: &SeriesMeta, q: &RangeQuery) -> Result<bool, TsError> {
    let mut found = false;
    samples::scan_samples(r, meta, q.from, q.to, |_, _| {
        found = true;
        false
    })?;
    Ok(found)
}

fn mrange(r: &impl StoreRead, m: &MRange<'_>, p: Protocol) -> Result<Frame, TsError> {
    let selected = index::select(r, m.filter)?.map_err(TsError::Command)?;
    let aggregators: Vec<Frame> = m
        .query
        .aggregation
        .iter()
        .flat_map(|a| a.aggregators.iter())
        .map(|a| Frame::Bulk(Bytes::from(a.clone())))
        .collect();
    let mut out = Vec::with_capacity(selected.len());
    for (key, meta) in selected {
        let rows = range_rows(r, &key, &meta, m.query, m.reverse)?;
        // Empty: no sample in the range. EMPTY buckets do not count as samples; a LATEST
        // compaction bucket in the range does (it is a sample of the reply).
        let latest_row = m.query.latest && !rows.is_empty();
        if m.exclude_empty && !latest_row && !has_samples(r, &meta, m.query)? {
            continue;
        }
        let mut parts = vec![label_frame(&meta, m.labels, p)];
        if p == Protocol::Resp3 {
            parts.push(Frame::Map(vec![(
                Frame::simple("aggregators"),
                Frame::Array(aggregators.clone()),
            )]));
        }
        parts.push(rows_frame(&rows, p));
        out.push((key, parts));
    }
    Ok(keyed(out, p))
}

/// `GROUPBY label REDUCE reducer`: each series is ranged (and aggregated) on its own, then the
/// rows are reduced per timestamp within each group. Reply per group, as RedisTimeSeries sends
/// it: RESP2 `[name, labels, samples]` where WITHLABELS reports the group label,
/// `__reducer__` and `__source__`; RESP3 `name => [labels, {reducers}, {sources}, samples]`
/// where WITHLABELS reports the group label only.
fn mrange_grouped(
    r: &impl StoreRead,
    m: &MRange<'_>,
    label: &Bytes,
    reducer: &str,
    p: Protocol,
) -> Result<Frame, TsError> {
    let selected = index::select(r, m.filter)?.map_err(TsError::Command)?;
    let reducer = Reducer::parse(reducer.as_bytes())
        .map_err(|e| TsError::Command(CommandError::other(e.to_string())))?;
    let mut series = Vec::with_capacity(selected.len());
    for (key, meta) in selected {
        // A series without the label joins no group: skip reading it.
        if meta.label(label).is_none() {
            continue;
        }
        let rows = range_rows(r, &key, &meta, m.query, m.reverse)?;
        series.push(SeriesRows {
            key: key.to_vec(),
            labels: meta
                .info
                .labels
                .iter()
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect(),
            samples: rows
                .into_iter()
                .map(|(t, v)| (t, v.first().copied().unwrap_or(f64::NAN)))
                .collect(),
        });
    }
    let groups = group(series, label, reducer, m.reverse);
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let pairs = |v: Vec<(Vec<u8>, Vec<u8>)>| -> Vec<(Bytes, Option<Bytes>)> {
            v.into_iter()
                .map(|(n, v)| (Bytes::from(n), Some(Bytes::from(v))))
                .collect()
        };
        let shown = match (m.labels, p) {
            (LabelSel::None, _) => Vec::new(),
            (LabelSel::All, Protocol::Resp2) => pairs(g.reply_labels()),
            (LabelSel::All, Protocol::Resp3) => {
                vec![(
                    Bytes::from(g.label.clone()),
                    Some(Bytes::from(g.value.clone())),
                )]
            }
            // A selected label is reported when every series of the group has it with the
            // same value, else null (redis.io TS.MRANGE, return information).
            (LabelSel::Selected(names), _) => names
                .iter()
                .map(|n| {
                    let v = g
                        .shared_labels
                        .iter()
                        .find(|(m, _)| m.as_slice() == n.as_ref())
                        .map(|(_, v)| Bytes::from(v.clone()));
                    (n.clone(), v)
                })
                .collect(),
        };
        let mut parts = vec![pairs_frame(shown, p)];
        if p == Protocol::Resp3 {
            let sources = g
                .sources
                .iter()
                .map(|s| Frame::Bulk(Bytes::from(s.clone())))
                .collect();
            parts.push(Frame::Map(vec![(
                Frame::simple("reducers"),
                Frame::Array(vec![Frame::Bulk(Bytes::from(g.reducer.name()))]),
            )]));
            parts.push(Frame::Map(vec![(
                Frame::simple("sources"),
                Frame::Array(sources),
            )]));
        }
        let rows: Vec<(u64, Vec<f64>)> = g.samples.iter().map(|(t, v)| (*t, vec![*v])).collect();
        parts.push(rows_frame(&rows, p));
        out.push((Bytes::from(g.name), parts));
    }
    Ok(keyed(out, p))
}

/// TS.NRANGE / TS.NREVRANGE (redis.io, Redis 8.10): a TS.RANGE per key, outer-joined by
/// timestamp. Each row is `[ts, [values...]]`, the values concatenated in key order (one per
/// key, or one per aggregator of that key); a key without a sample or bucket there gives NaN.
/// COUNT applies after the join: each key's own rows are cut at COUNT too, which loses nothing
/// (the first COUNT joined timestamps come from the first COUNT of each key).
fn nrange(
    r: &impl StoreRead,
    keys: &[Bytes],
    reverse: bool,
    q: &RangeQuery,
    per_key: &[Vec<String>],
    p: Protocol,
) -> Result<Frame, TsError> {
    let mut metas = Vec::with_capacity(keys.len());
    for key in keys {
        metas.push(existing(r, key)?);
    }
    let widths: Vec<usize> = match &q.aggregation {
        None => vec![1; keys.len()],
        Some(_) => per_key.iter().map(Vec::len).collect(),
    };
    assert_eq!(widths.len(), keys.len(), "one aggregator list per key");
    let total: usize = widths.iter().sum();
    let mut joined: std::collections::BTreeMap<u64, Vec<f64>> = std::collections::BTreeMap::new();
    let mut offset = 0;
    for (i, (key, meta)) in keys.iter().zip(&metas).enumerate() {
        let mut qi = q.clone();
        if let (Some(agg), Some(list)) = (&mut qi.aggregation, per_key.get(i)) {
            agg.aggregators = list.clone();
        }
        for (ts, vals) in range_rows(r, key, meta, &qi, reverse)? {
            let row = joined.entry(ts).or_insert_with(|| vec![f64::NAN; total]);
            for (j, v) in vals.into_iter().take(widths[i]).enumerate() {
                row[offset + j] = v;
            }
        }
        offset += widths[i];
    }
    let want = q
        .count
        .map_or(usize::MAX, |c| usize::try_from(c).unwrap_or(usize::MAX));
    let entry = |(ts, vals): (u64, Vec<f64>)| {
        Frame::Array(vec![
            int(ts),
            Frame::Array(vals.into_iter().map(|v| value(v, p)).collect()),
        ])
    };
    let rows: Vec<Frame> = if reverse {
        joined.into_iter().rev().take(want).map(entry).collect()
    } else {
        joined.into_iter().take(want).map(entry).collect()
    };
    Ok(Frame::Array(rows))
}

fn int(n: u64) -> Frame {
    Frame::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Raw bytes of one sample as the head stores it: a 17-byte key and an 8-byte value.
const RAW_SAMPLE_BYTES: u64 = 25;

/// Bytes the series occupies: its record, its sealed chunks, and its head samples as stored.
/// A series created `ENCODING UNCOMPRESSED` reports every sample at its raw size: storage
/// compresses sealed chunks anyway, and what the client asked for is the uncompressed cost
/// (RedisTimeSeries reports an uncompressed series as larger than a compressed one).
pub fn memory_usage(meta: &SeriesMeta) -> u64 {
    let record = meta.encode().len() as u64;
    if meta.uncompressed {
        return record + meta.total_samples * RAW_SAMPLE_BYTES;
    }
    record + meta.chunk_bytes + meta.head_samples * RAW_SAMPLE_BYTES
}

fn info(r: &impl StoreRead, meta: &SeriesMeta, p: Protocol) -> Result<Frame, TsError> {
    let first = samples::first_ts(r, meta)?.unwrap_or(0);
    let last = meta.last.map_or(0, |l| l.0);
    let labels = pairs_frame(
        meta.info
            .labels
            .iter()
            .map(|(n, v)| (n.clone(), Some(v.clone())))
            .collect(),
        p,
    );
    let rules = match p {
        Protocol::Resp3 => Frame::Map(
            meta.info
                .rules
                .iter()
                .map(|x| {
                    (
                        Frame::Bulk(x.dest.clone()),
                        Frame::Array(vec![
                            int(x.bucket_ms),
                            Frame::Simple(Bytes::from(x.aggregator.to_ascii_uppercase())),
                            int(x.align_ms),
                        ]),
                    )
                })
                .collect(),
        ),
        Protocol::Resp2 => Frame::Array(
            meta.info
                .rules
                .iter()
                .map(|x| {
                    Frame::Array(vec![
                        Frame::Bulk(x.dest.clone()),
                        int(x.bucket_ms),
                        Frame::Simple(Bytes::from(x.aggregator.to_ascii_uppercase())),
                        int(x.align_ms),
                    ])
                })
                .collect(),
        ),
    };
    let chunk_count = meta.chunk_count + u64::from(meta.head_samples > 0);
    let fields = vec![
        ("totalSamples", int(meta.total_samples)),
        ("memoryUsage", int(memory_usage(meta))),
        ("firstTimestamp", int(first)),
        ("lastTimestamp", int(last)),
        ("retentionTime", int(meta.retention_ms)),
        ("chunkCount", int(chunk_count)),
        ("chunkSize", int(meta.chunk_size)),
        (
            "chunkType",
            Frame::simple(if meta.uncompressed {
                "uncompressed"
            } else {
                "compressed"
            }),
        ),
        // A series created without DUPLICATE_POLICY reports the policy that applies to it,
        // "block", as Redis 8 does (RedisTimeSeries before Redis 8 replied null).
        (
            "duplicatePolicy",
            Frame::simple(meta.duplicate_policy.unwrap_or(DupPolicy::Block).name()),
        ),
        ("labels", labels),
        (
            "sourceKey",
            meta.info.source.clone().map_or(Frame::Null, Frame::Bulk),
        ),
        ("rules", rules),
        ("ignoreMaxTimeDiff", int(meta.ignore_max_time_diff)),
        ("ignoreMaxValDiff", value(meta.ignore_max_val_diff, p)),
    ];
    Ok(match p {
        Protocol::Resp3 => Frame::Map(
            fields
                .into_iter()
                .map(|(k, v)| (Frame::simple(k), v))
                .collect(),
        ),
        Protocol::Resp2 => Frame::Array(
            fields
                .into_iter()
                .flat_map(|(k, v)| [Frame::simple(k), v])
                .collect(),
        ),
    })
}
