//! Samples in the store: the head, sealed chunks, merging, deleting, retention and reading.
//!
//! Invariants (checked by [`check_series`] in tests): every sealed chunk and every head run
//! holds samples with strictly increasing timestamps, is keyed by its first timestamp, and
//! does not overlap the others; every head sample is later than `sealed_end`; the counters in
//! [`SeriesMeta`] equal what the store holds; `last` is the sample with the largest timestamp.
//!
//! # Head runs
//!
//! The head is a sequence of runs, each one record `[RUN_VERSION, (ts: u64, value bits: u64)
//! big-endian per sample...]` keyed by its first timestamp. An in-order sample extends the run
//! that holds the series' newest sample (when it has fewer than `RUN_SAMPLES_MAX` samples) if
//! the transaction holds that run, not yet written to the store; a duplicate of the newest
//! sample is merged into it in place. A node's apply rounds write into the changes its
//! write-back layer holds since the last checkpoint ([`crate::writeback::WriteBack::round`]),
//! so the samples a series takes between two checkpoints cost the store one record, not one
//! key each; a sample after a checkpoint starts a new run (rewriting a written run would write
//! it again).
//! A head value of exactly 8 bytes is one sample in the layout before runs (the value's bits,
//! the timestamp in the key): still read, never written.

use crate::chunk::{self, Sample};
use crate::cmd::CommandError;
use crate::cmd::series::DupPolicy;
use crate::db::Tx;
use crate::store::{KeyValue, Space, StoreError, StoreRead};

use super::TsError;
use super::meta::{SeriesMeta, keys};

/// Bytes of a sealed chunk record before the encoded chunk: the end timestamp.
const CHUNK_HEADER: usize = 8;

fn corrupt(detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        space: Space::Chunks,
        detail: detail.into(),
    }
}

/// A decoded sealed-chunk record.
fn decode_chunk(value: &[u8]) -> Result<Vec<Sample>, StoreError> {
    let mut samples = Vec::new();
    decode_chunk_into(value, &mut samples)?;
    Ok(samples)
}

/// A sealed-chunk record decoded into `out`, replacing what it held: a scan decodes all its
/// chunks into one buffer.
fn decode_chunk_into(value: &[u8], out: &mut Vec<Sample>) -> Result<(), StoreError> {
    let body = value
        .get(CHUNK_HEADER..)
        .ok_or_else(|| corrupt("truncated chunk record"))?;
    chunk::decode_into(body, out).map_err(|e| corrupt(e.to_string()))
}

fn chunk_end(value: &[u8]) -> Result<u64, StoreError> {
    let end: [u8; 8] = value
        .get(..CHUNK_HEADER)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt("truncated chunk record"))?;
    Ok(u64::from_be_bytes(end))
}

fn chunk_count(value: &[u8]) -> Result<u64, StoreError> {
    let body = value
        .get(CHUNK_HEADER..)
        .ok_or_else(|| corrupt("truncated chunk record"))?;
    chunk::sample_count(body)
        .map(u64::from)
        .map_err(|e| corrupt(e.to_string()))
}

/// Version byte of a head run record; a run with another version is refused.
pub const RUN_VERSION: u8 = 1;
/// Bytes of one sample in a head run.
const RUN_SAMPLE: usize = 16;
/// The most samples an in-order append puts in one run; a longer run stops taking appends,
/// and an out-of-order insert splits a run of twice this. Bounds what rewriting a run for an
/// out-of-order sample costs (4 KiB) whatever the series' chunk size.
const RUN_SAMPLES_MAX: usize = 256;
/// The length of a head value written before runs: one sample's value bits.
const LEGACY_HEAD_VALUE: usize = 8;

fn head_value(v: &[u8]) -> Result<f64, StoreError> {
    let b: [u8; 8] = v.try_into().map_err(|_| corrupt("bad head sample"))?;
    Ok(f64::from_bits(u64::from_be_bytes(b)))
}

fn run_sample(s: Sample) -> [u8; RUN_SAMPLE] {
    let mut out = [0; RUN_SAMPLE];
    out[..8].copy_from_slice(&s.ts.to_be_bytes());
    out[8..].copy_from_slice(&s.value.to_bits().to_be_bytes());
    out
}

/// A head run record; `samples` are non-empty and strictly increasing (asserted: the decoder
/// refuses anything else).
fn encode_run(samples: &[Sample]) -> Vec<u8> {
    assert!(!samples.is_empty(), "a head run is never empty");
    let mut out = Vec::with_capacity(1 + samples.len() * RUN_SAMPLE);
    out.push(RUN_VERSION);
    for (i, s) in samples.iter().enumerate() {
        assert!(
            i == 0 || samples[i - 1].ts < s.ts,
            "head run timestamps increase"
        );
        out.extend_from_slice(&run_sample(*s));
    }
    out
}

/// The samples of the head record stored under `key`: a run, or one sample written before
/// runs.
fn decode_run(key: &[u8], value: &[u8]) -> Result<Vec<Sample>, StoreError> {
    let first = keys::ts_of(key).ok_or_else(|| corrupt("bad head key"))?;
    if value.len() == LEGACY_HEAD_VALUE {
        return Ok(vec![Sample {
            ts: first,
            value: head_value(value)?,
        }]);
    }
    let body = match value.split_first() {
        Some((&RUN_VERSION, body)) => body,
        Some((v, _)) => return Err(corrupt(format!("unknown head run version {v}"))),
        None => return Err(corrupt("empty head record")),
    };
    if body.is_empty() || body.len() % RUN_SAMPLE != 0 {
        return Err(corrupt("truncated head run"));
    }
    let mut out: Vec<Sample> = Vec::with_capacity(body.len() / RUN_SAMPLE);
    for c in body.chunks_exact(RUN_SAMPLE) {
        let (t, v) = c.split_at(8);
        let ts = u64::from_be_bytes(t.try_into().map_err(|_| corrupt("head run sample"))?);
        let bits = u64::from_be_bytes(v.try_into().map_err(|_| corrupt("head run sample"))?);
        if out.last().is_some_and(|p| p.ts >= ts) {
            return Err(corrupt("head run timestamps not increasing"));
        }
        out.push(Sample {
            ts,
            value: f64::from_bits(bits),
        });
    }
    if out[0].ts != first {
        return Err(corrupt("head run key is not its first timestamp"));
    }
    Ok(out)
}

/// The timestamp of a run record's last sample and its sample count, if `value` is a run in
/// this version's format.
fn run_tail(value: &[u8]) -> Option<(u64, usize)> {
    let body = value.strip_prefix(&[RUN_VERSION])?;
    if body.is_empty() || body.len() % RUN_SAMPLE != 0 {
        return None;
    }
    let at = body.len() - RUN_SAMPLE;
    let last = u64::from_be_bytes(body.get(at..at + 8)?.try_into().ok()?);
    Some((last, body.len() / RUN_SAMPLE))
}

fn put_run<S: StoreRead>(tx: &mut Tx<'_, S>, id: u64, samples: &[Sample]) {
    tx.put(
        Space::Chunks,
        keys::head(id, samples[0].ts),
        encode_run(samples),
    );
}

/// Writes `samples` as one sealed chunk; returns the record's length.
fn put_chunk<S: StoreRead>(tx: &mut Tx<'_, S>, id: u64, samples: &[Sample]) -> u64 {
    assert!(!samples.is_empty(), "a sealed chunk is never empty");
    let start = samples[0].ts;
    let end = samples[samples.len() - 1].ts;
    let mut value = end.to_be_bytes().to_vec();
    value.extend_from_slice(&chunk::encode(samples));
    let len = value.len() as u64;
    tx.put(Space::Chunks, keys::sealed(id, start), value);
    len
}

/// The scan bounds `[start, end)` over a series' sealed chunks that can hold samples in
/// `[from, to]`: from the chunk covering `from` (or the first chunk) to past the last chunk
/// starting at or before `to`.
fn sealed_range(
    r: &impl StoreRead,
    id: u64,
    from: u64,
    to: u64,
) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
    let prefix = keys::sealed_prefix(id);
    let end = if to == u64::MAX {
        keys::prefix_end(&prefix)
    } else {
        keys::sealed(id, to + 1)
    };
    let start = match chunk_for(r, id, from)? {
        Some((k, _)) => k,
        None => prefix,
    };
    Ok((start, end))
}

/// The sealed chunk record holding `ts` or, if none does, the nearest one to merge `ts` into:
/// the chunk with the greatest start `<= ts`, else the first chunk.
fn chunk_for(r: &impl StoreRead, id: u64, ts: u64) -> Result<Option<KeyValue>, StoreError> {
    let prefix = keys::sealed_prefix(id);
    let upto = keys::sealed(id, ts.saturating_add(1));
    let before = if ts == u64::MAX {
        r.scan(
            Space::Chunks,
            &prefix,
            Some(&keys::prefix_end(&prefix)),
            true,
        )
        .next()
    } else {
        r.scan(Space::Chunks, &prefix, Some(&upto), true).next()
    };
    if let Some(kv) = before {
        return kv.map(Some);
    }
    r.scan(
        Space::Chunks,
        &prefix,
        Some(&keys::prefix_end(&prefix)),
        false,
    )
    .next()
    .transpose()
}

/// What an upsert did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Upserted {
    /// A new timestamp.
    Added,
    /// An existing timestamp now holds this value.
    Merged(f64),
}

/// Inserts or merges one sample, sealing the head and trimming by retention as needed.
/// The caller saves `meta`.
pub fn upsert<S: StoreRead>(
    tx: &mut Tx<'_, S>,
    meta: &mut SeriesMeta,
    ts: u64,
    value: f64,
    policy: DupPolicy,
) -> Result<Upserted, TsError> {
    if meta.retention_cutoff().is_some_and(|c| ts < c) {
        return Err(TsError::Command(CommandError::other(
            "ERR TSDB: Timestamp is older than retention",
        )));
    }
    let outcome = if meta.sealed_end.is_none_or(|e| ts > e) {
        upsert_head(tx, meta, Sample { ts, value }, policy)?
    } else {
        merge_into_chunk(tx, meta, ts, value, policy)?
    };
    let stored = match outcome {
        Upserted::Added => value,
        Upserted::Merged(v) => v,
    };
    let advanced = meta.last.is_none_or(|(l, _)| ts > l);
    if meta.last.is_none_or(|(l, _)| ts >= l) {
        meta.last = Some((ts, stored));
    }
    if meta.head_samples >= meta.head_capacity() {
        seal(tx, meta)?;
    }
    if advanced {
        trim(tx, meta)?;
    }
    Ok(outcome)
}

/// Adds or merges a sample later than `sealed_end` into the head's runs.
fn upsert_head<S: StoreRead>(
    tx: &mut Tx<'_, S>,
    meta: &mut SeriesMeta,
    sample: Sample,
    policy: DupPolicy,
) -> Result<Upserted, TsError> {
    let id = meta.id;
    let ts = sample.ts;
    // The newest sample, when it is in the head, and the run that ends with it when the
    // transaction holds it (not yet in the store: new samples at or after the newest are
    // edited into that run in place; on a node the transaction holds everything since the last
    // checkpoint, so a series costs the store one record per checkpoint).
    let newest = meta
        .last
        .filter(|(l, _)| meta.sealed_end.is_none_or(|e| *l > e));
    let hint = meta.open_run.0;
    // Edits the open run: the last run held, if it ends with the newest sample (runs do not
    // overlap, so a held run that ends with it is that one).
    let floor = head_floor(meta);
    let edit_open_run = |tx: &mut Tx<'_, S>, change: &mut dyn FnMut(&mut Vec<u8>, usize)| {
        let Some((l, _)) = newest else {
            return false;
        };
        let mut at_newest = |v: &mut Vec<u8>| match run_tail(v) {
            Some((last, count)) if last == l => {
                change(v, count);
                true
            }
            _ => false,
        };
        // The run this series started last, found by its key when the hint still holds;
        // else the last run held, found by a range search.
        // (Keys built only when needed: this runs for every sample.)
        let hinted = |first| keys::head_array(id, first);
        hint.is_some_and(|first| tx.edit_if(Space::Chunks, &hinted(first), &mut at_newest))
            || tx.edit_last_written(
                Space::Chunks,
                &keys::head(id, floor),
                &keys::prefix_end(&keys::head_prefix(id)),
                at_newest,
            )
    };
    if meta.last.is_none_or(|(l, _)| ts > l) {
        let mut full = false;
        let extended = edit_open_run(tx, &mut |v, count| {
            full = count >= RUN_SAMPLES_MAX;
            if !full {
                v.extend_from_slice(&run_sample(sample));
            }
        });
        if !extended || full {
            put_run(tx, id, &[sample]);
            meta.open_run.0 = Some(sample.ts);
        }
        meta.head_samples += 1;
        meta.total_samples += 1;
        return Ok(Upserted::Added);
    }
    if let Some((l, stored)) = newest
        && ts == l
    {
        // A duplicate of the newest sample (common with `*` timestamps): its value is the
        // last 8 bytes of the open run.
        let mut merged = None;
        edit_open_run(tx, &mut |v, _| {
            let m = policy.merge(stored, sample.value);
            if let Ok(m) = m {
                let at = v.len() - 8;
                v[at..].copy_from_slice(&m.to_bits().to_be_bytes());
            }
            merged = Some(m);
        });
        if let Some(m) = merged {
            return Ok(Upserted::Merged(m?));
        }
    }
    // Out of order: the run with the greatest start <= ts holds ts or takes it (a run keeps
    // its first timestamp, so its key; it cannot reach the next run, which starts after ts).
    let upto = keys::head(id, ts.saturating_add(1));
    let found = tx
        .scan(Space::Chunks, &keys::head(id, floor), Some(&upto), true)
        .next()
        .transpose()?;
    let Some((key, record)) = found else {
        put_run(tx, id, &[sample]);
        meta.head_samples += 1;
        meta.total_samples += 1;
        return Ok(Upserted::Added);
    };
    let mut run = decode_run(&key, &record)?;
    let outcome = match run.binary_search_by_key(&ts, |s| s.ts) {
        Ok(i) => {
            let merged = policy.merge(run[i].value, sample.value)?;
            run[i].value = merged;
            Upserted::Merged(merged)
        }
        Err(i) => {
            run.insert(i, sample);
            meta.head_samples += 1;
            meta.total_samples += 1;
            Upserted::Added
        }
    };
    if run.len() > 2 * RUN_SAMPLES_MAX {
        // The first part keeps the key; the rest starts a run of its own.
        let rest = run.split_off(RUN_SAMPLES_MAX);
        put_run(tx, id, &rest);
    }
    tx.put(Space::Chunks, key, encode_run(&run));
    Ok(outcome)
}

fn merge_into_chunk<S: StoreRead>(
    tx: &mut Tx<'_, S>,
    meta: &mut SeriesMeta,
    ts: u64,
    value: f64,
    policy: DupPolicy,
) -> Result<Upserted, TsError> {
    let id = meta.id;
    let Some((key, record)) = chunk_for(tx, id, ts)? else {
        unreachable_sealed_end(meta);
        return Err(TsError::Store(corrupt("sealed_end set but no chunk")));
    };
    let mut samples = decode_chunk(&record)?;
    let outcome = match samples.binary_search_by_key(&ts, |s| s.ts) {
        Ok(i) => {
            let merged = policy.merge(samples[i].value, value)?;
            samples[i].value = merged;
            Upserted::Merged(merged)
        }
        Err(i) => {
            samples.insert(i, Sample { ts, value });
            meta.total_samples += 1;
            Upserted::Added
        }
    };
    tx.delete(Space::Chunks, key);
    meta.chunk_bytes -= record.len() as u64;
    meta.chunk_count -= 1;
    let split_at = usize::try_from(meta.head_capacity() * 2).unwrap_or(usize::MAX);
    for part in samples.chunks(split_at.max(1)) {
        meta.chunk_bytes += put_chunk(tx, id, part);
        meta.chunk_count += 1;
    }
    Ok(outcome)
}

/// A meta whose `sealed_end` is set with no chunk in the store is our own broken invariant.
fn unreachable_sealed_end(meta: &SeriesMeta) {
    debug_assert!(
        meta.chunk_count == 0,
        "sealed_end set, chunks counted, none found"
    );
}

/// The first head key that can hold a live run. Every head sample is later than
/// `sealed_end`, so scans start there: they skip the keys earlier seals deleted, which a long
/// transaction (a big BATCH_FLUSH) or the store's tombstones would otherwise make every scan
/// walk again. (A run holding `from` may start before it, so scans do not start at `from`;
/// the head is at most one chunk's worth of samples.)
fn head_start(meta: &SeriesMeta) -> Vec<u8> {
    keys::head(meta.id, head_floor(meta))
}

/// The first timestamp the head can hold.
fn head_floor(meta: &SeriesMeta) -> u64 {
    meta.sealed_end.map_or(0, |e| e.saturating_add(1))
}

/// Compresses the head into one sealed chunk and removes the head samples.
pub fn seal<S: StoreRead>(tx: &mut Tx<'_, S>, meta: &mut SeriesMeta) -> Result<(), StoreError> {
    let end = keys::prefix_end(&keys::head_prefix(meta.id));
    let mut samples = Vec::new();
    let mut doomed = Vec::new();
    for kv in tx.scan(Space::Chunks, &head_start(meta), Some(&end), false) {
        let (k, v) = kv?;
        let run = decode_run(&k, &v)?;
        if samples.last().is_some_and(|p: &Sample| p.ts >= run[0].ts) {
            return Err(corrupt("head runs overlap"));
        }
        samples.extend(run);
        doomed.push(k);
    }
    assert_eq!(
        samples.len() as u64,
        meta.head_samples,
        "head count drifted"
    );
    if samples.is_empty() {
        return Ok(());
    }
    meta.chunk_bytes += put_chunk(tx, meta.id, &samples);
    meta.chunk_count += 1;
    meta.sealed_end = Some(samples[samples.len() - 1].ts);
    // Point deletes, not a range delete: a transaction checks every read against each of its
    // range deletes, and a big batch seals many times.
    for k in doomed {
        tx.delete(Space::Chunks, k);
    }
    meta.head_samples = 0;
    Ok(())
}

/// Drops whole sealed chunks that end before the retention cutoff.
fn trim<S: StoreRead>(tx: &mut Tx<'_, S>, meta: &mut SeriesMeta) -> Result<(), StoreError> {
    let Some(cutoff) = meta.retention_cutoff() else {
        return Ok(());
    };
    let prefix = keys::sealed_prefix(meta.id);
    let mut doomed = Vec::new();
    for kv in tx.scan(
        Space::Chunks,
        &prefix,
        Some(&keys::prefix_end(&prefix)),
        false,
    ) {
        let (k, v) = kv?;
        if chunk_end(&v)? >= cutoff {
            break;
        }
        doomed.push((k, v.len() as u64, chunk_count(&v)?));
    }
    for (k, len, n) in doomed {
        tx.delete(Space::Chunks, k);
        meta.chunk_bytes -= len;
        meta.chunk_count -= 1;
        meta.total_samples -= n;
    }
    if meta.chunk_count == 0 {
        meta.sealed_end = None;
    }
    Ok(())
}

/// Deletes the samples with `from <= ts <= to`; returns how many.
pub fn delete_range<S: StoreRead>(
    tx: &mut Tx<'_, S>,
    meta: &mut SeriesMeta,
    from: u64,
    to: u64,
) -> Result<u64, StoreError> {
    if from > to {
        return Ok(0);
    }
    let id = meta.id;
    let mut deleted = 0;
    // Head samples.
    let head_end = keys::prefix_end(&keys::head_prefix(id));
    let hi = if to == u64::MAX {
        head_end.clone()
    } else {
        keys::head(id, to + 1)
    };
    let mut runs = Vec::new();
    for kv in tx.scan(Space::Chunks, &head_start(meta), Some(&hi), false) {
        let (k, v) = kv?;
        runs.push((k.clone(), decode_run(&k, &v)?));
    }
    for (k, mut run) in runs {
        let before = run.len();
        run.retain(|s| s.ts < from || s.ts > to);
        let n = (before - run.len()) as u64;
        if n == 0 {
            continue;
        }
        deleted += n;
        meta.head_samples -= n;
        tx.delete(Space::Chunks, k);
        if !run.is_empty() {
            put_run(tx, id, &run);
        }
    }
    // Sealed chunks overlapping [from, to].
    let (start, sealed_hi) = sealed_range(tx, id, from, to)?;
    let mut touched = Vec::new();
    for kv in tx.scan(Space::Chunks, &start, Some(&sealed_hi), false) {
        touched.push(kv?);
    }
    for (k, v) in touched {
        if chunk_end(&v)? < from {
            continue;
        }
        let mut samples = decode_chunk(&v)?;
        let before = samples.len();
        samples.retain(|s| s.ts < from || s.ts > to);
        let n = (before - samples.len()) as u64;
        if n == 0 {
            continue;
        }
        deleted += n;
        tx.delete(Space::Chunks, k);
        meta.chunk_bytes -= v.len() as u64;
        meta.chunk_count -= 1;
        if !samples.is_empty() {
            meta.chunk_bytes += put_chunk(tx, id, &samples);
            meta.chunk_count += 1;
        }
    }
    meta.total_samples -= deleted;
    if deleted > 0 {
        refresh_bounds(tx, meta)?;
    }
    Ok(deleted)
}

/// Recomputes `last` and `sealed_end` from the store after samples were removed.
fn refresh_bounds(r: &impl StoreRead, meta: &mut SeriesMeta) -> Result<(), StoreError> {
    let id = meta.id;
    let prefix = keys::sealed_prefix(id);
    let last_chunk = r
        .scan(
            Space::Chunks,
            &prefix,
            Some(&keys::prefix_end(&prefix)),
            true,
        )
        .next()
        .transpose()?;
    let last_sealed = match &last_chunk {
        Some((_, v)) => decode_chunk(v)?.last().map(|s| (s.ts, s.value)),
        None => None,
    };
    meta.sealed_end = last_sealed.map(|(ts, _)| ts);
    let head = keys::head_prefix(id);
    let last_head = r
        .scan(
            Space::Chunks,
            &head_start(meta),
            Some(&keys::prefix_end(&head)),
            true,
        )
        .next()
        .transpose()?;
    meta.last = match last_head {
        Some((k, v)) => decode_run(&k, &v)?.last().map(|s| (s.ts, s.value)),
        None => last_sealed,
    };
    Ok(())
}

/// Removes every sample of the series.
pub fn delete_all<S: StoreRead>(tx: &mut Tx<'_, S>, id: u64) {
    let (start, end) = keys::series_range(id);
    tx.delete_range(Space::Chunks, start, end);
}

/// The first timestamp the series holds, if any.
pub fn first_ts(r: &impl StoreRead, meta: &SeriesMeta) -> Result<Option<u64>, StoreError> {
    let (start, end) = keys::series_range(meta.id);
    match r.scan(Space::Chunks, &start, Some(&end), false).next() {
        None => Ok(None),
        Some(kv) => {
            let (k, _) = kv?;
            Ok(Some(
                keys::ts_of(&k).ok_or_else(|| corrupt("bad chunk key"))?,
            ))
        }
    }
}

/// The samples with `from <= ts <= to` that retention keeps visible, oldest first.
/// `each` returns `false` to stop.
pub fn scan_samples(
    r: &impl StoreRead,
    meta: &SeriesMeta,
    from: u64,
    to: u64,
    mut each: impl FnMut(u64, f64) -> bool,
) -> Result<(), StoreError> {
    scan_runs(r, meta, from, to, |run| {
        run.iter().all(|s| each(s.ts, s.value))
    })
}

/// [`scan_samples`] a run at a time: the part of each sealed chunk or head run in the range,
/// never empty, so a caller can fold a chunk's samples in one loop. `each` returns `false` to
/// stop.
pub fn scan_runs(
    r: &impl StoreRead,
    meta: &SeriesMeta,
    from: u64,
    to: u64,
    mut each: impl FnMut(&[Sample]) -> bool,
) -> Result<(), StoreError> {
    let from = from.max(meta.retention_cutoff().unwrap_or(0));
    if from > to {
        return Ok(());
    }
    let id = meta.id;
    let (start, sealed_hi) = sealed_range(r, id, from, to)?;
    let mut decoded = Vec::new();
    for kv in r.scan(Space::Chunks, &start, Some(&sealed_hi), false) {
        let (_, v) = kv?;
        if chunk_end(&v)? < from {
            continue;
        }
        decode_chunk_into(&v, &mut decoded)?;
        let part = within(&decoded, from, to);
        if !part.is_empty() && !each(part) {
            return Ok(());
        }
    }
    let hi = if to == u64::MAX {
        keys::prefix_end(&keys::head_prefix(id))
    } else {
        keys::head(id, to + 1)
    };
    for kv in r.scan(Space::Chunks, &head_start(meta), Some(&hi), false) {
        let (k, v) = kv?;
        let run = decode_run(&k, &v)?;
        let part = within(&run, from, to);
        if !part.is_empty() && !each(part) {
            return Ok(());
        }
        if run.last().is_some_and(|s| s.ts > to) {
            // Every later run is past `to` too.
            return Ok(());
        }
    }
    Ok(())
}

/// The samples of a chunk or run (strictly increasing timestamps) with `from <= ts <= to`.
fn within(samples: &[Sample], from: u64, to: u64) -> &[Sample] {
    let lo = samples.partition_point(|s| s.ts < from);
    let hi = samples.partition_point(|s| s.ts <= to).max(lo);
    &samples[lo..hi]
}

/// The samples with `from <= ts <= to` that retention keeps visible, newest first: the head
/// backwards, then the sealed chunks from the newest, so reading the latest `n` samples
/// decodes only the chunks that hold them. `each` returns `false` to stop.
pub fn scan_samples_rev(
    r: &impl StoreRead,
    meta: &SeriesMeta,
    from: u64,
    to: u64,
    mut each: impl FnMut(u64, f64) -> bool,
) -> Result<(), StoreError> {
    let from = from.max(meta.retention_cutoff().unwrap_or(0));
    if from > to {
        return Ok(());
    }
    let id = meta.id;
    let hi = if to == u64::MAX {
        keys::prefix_end(&keys::head_prefix(id))
    } else {
        keys::head(id, to + 1)
    };
    for kv in r.scan(Space::Chunks, &head_start(meta), Some(&hi), true) {
        let (k, v) = kv?;
        for s in decode_run(&k, &v)?.into_iter().rev() {
            if s.ts < from {
                // Everything older, sealed chunks included, is before `from` too.
                return Ok(());
            }
            if s.ts <= to && !each(s.ts, s.value) {
                return Ok(());
            }
        }
    }
    let (start, sealed_hi) = sealed_range(r, id, from, to)?;
    let mut decoded = Vec::new();
    for kv in r.scan(Space::Chunks, &start, Some(&sealed_hi), true) {
        let (_, v) = kv?;
        if chunk_end(&v)? < from {
            // Chunks do not overlap: every earlier one ends before `from` too.
            break;
        }
        decode_chunk_into(&v, &mut decoded)?;
        for s in decoded.iter().rev() {
            if s.ts >= from && s.ts <= to && !each(s.ts, s.value) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The visible sample with the largest timestamp `< ts`.
pub fn last_before(
    r: &impl StoreRead,
    meta: &SeriesMeta,
    ts: u64,
) -> Result<Option<(u64, f64)>, StoreError> {
    let cutoff = meta.retention_cutoff().unwrap_or(0);
    if ts == 0 || ts <= cutoff {
        return Ok(None);
    }
    let id = meta.id;
    if let Some(kv) = r
        .scan(
            Space::Chunks,
            &head_start(meta),
            Some(&keys::head(id, ts)),
            true,
        )
        .next()
    {
        // The run starts before `ts`, so it holds the answer.
        let (k, v) = kv?;
        let found = decode_run(&k, &v)?
            .into_iter()
            .take_while(|s| s.ts < ts)
            .last()
            .filter(|s| s.ts >= cutoff)
            .map(|s| (s.ts, s.value));
        return Ok(found);
    }
    let Some((_, v)) = chunk_for(r, id, ts - 1)? else {
        return Ok(None);
    };
    let found = decode_chunk(&v)?
        .into_iter()
        .take_while(|s| s.ts < ts)
        .last()
        .filter(|s| s.ts >= cutoff)
        .map(|s| (s.ts, s.value));
    Ok(found)
}

/// Checks the module's invariants against the store; for tests and debug checks.
pub fn check_series(r: &impl StoreRead, meta: &SeriesMeta) -> Result<(), String> {
    let mut prev: Option<u64> = None;
    let (mut chunks, mut bytes, mut total, mut head) = (0, 0, 0, 0);
    let mut last = None;
    let (start, end) = keys::series_range(meta.id);
    let sealed = keys::sealed_prefix(meta.id);
    for kv in r.scan(Space::Chunks, &start, Some(&end), false) {
        let (k, v) = kv.map_err(|e| e.to_string())?;
        if k.starts_with(&sealed) {
            let samples = decode_chunk(&v).map_err(|e| e.to_string())?;
            if keys::ts_of(&k) != samples.first().map(|s| s.ts) {
                return Err("chunk key is not its first timestamp".into());
            }
            if chunk_end(&v).ok() != samples.last().map(|s| s.ts) {
                return Err("chunk end header wrong".into());
            }
            for s in &samples {
                if prev.is_some_and(|p| p >= s.ts) {
                    return Err(format!("timestamps not increasing at {}", s.ts));
                }
                prev = Some(s.ts);
                last = Some((s.ts, s.value));
            }
            chunks += 1;
            bytes += v.len() as u64;
            total += samples.len() as u64;
        } else {
            for s in decode_run(&k, &v).map_err(|e| e.to_string())? {
                if prev.is_some_and(|p| p >= s.ts) {
                    return Err(format!("head sample {} not after earlier data", s.ts));
                }
                prev = Some(s.ts);
                last = Some((s.ts, s.value));
                head += 1;
                total += 1;
            }
        }
    }
    let got = (chunks, bytes, total, head);
    let want = (
        meta.chunk_count,
        meta.chunk_bytes,
        meta.total_samples,
        meta.head_samples,
    );
    if got != want {
        return Err(format!("counters {want:?} but store has {got:?}"));
    }
    if meta.last.map(|l| l.0) != last.map(|l: (u64, f64)| l.0) {
        return Err(format!("last {:?} but store ends at {last:?}", meta.last));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_run_bytes_are_pinned() {
        let samples = [
            Sample { ts: 1, value: 1.5 },
            Sample {
                ts: 0x0102,
                value: -0.0,
            },
        ];
        let enc = encode_run(&samples);
        let mut want = vec![RUN_VERSION];
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
        want.extend_from_slice(&[0x3f, 0xf8, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 2]);
        want.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(enc, want);
        let key = keys::head(9, 1);
        let back = decode_run(&key, &enc).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].value.to_bits(), (-0.0f64).to_bits());
        assert_eq!(run_tail(&enc), Some((0x0102, 2)));
    }

    #[test]
    fn a_head_value_from_before_runs_reads_as_one_sample() {
        let key = keys::head(9, 42);
        let legacy = 2.5f64.to_bits().to_be_bytes();
        let got = decode_run(&key, &legacy).unwrap();
        assert_eq!(got, vec![Sample { ts: 42, value: 2.5 }]);
        assert_eq!(run_tail(&legacy), None, "never edited in place");
    }

    #[test]
    fn bad_head_runs_are_corrupt_not_panics() {
        let key = keys::head(9, 1);
        let good = encode_run(&[Sample { ts: 1, value: 1.0 }, Sample { ts: 2, value: 2.0 }]);
        let mut other_version = good.clone();
        other_version[0] = 2;
        let mut unordered = vec![RUN_VERSION];
        unordered.extend_from_slice(&run_sample(Sample { ts: 1, value: 0.0 }));
        unordered.extend_from_slice(&run_sample(Sample { ts: 1, value: 0.0 }));
        for bad in [
            &[][..],
            &[RUN_VERSION][..],
            &good[..good.len() - 1],
            &other_version[..],
            &unordered[..],
        ] {
            assert!(decode_run(&key, bad).is_err(), "{bad:?}");
        }
        assert!(
            decode_run(&keys::head(9, 2), &good).is_err(),
            "key is not the first timestamp"
        );
    }
}
