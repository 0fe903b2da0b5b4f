//! The `TS.*` write commands: series lifecycle, samples, compaction rules.
//!
//! Everything runs inside the entry's [`Tx`]: a command either changes the store completely or,
//! when it replies with an error, changes nothing it would not have changed anyway (MADD's
//! elements succeed or fail one by one, as documented).

use std::sync::Arc;

use bytes::Bytes;

use crate::UnixMillis;
use crate::chunk::Sample;
use crate::cmd::CommandError;
use crate::cmd::series::DupPolicy;
use crate::cmd::ts::{MAddItem, SeriesOpts, TsWrite};
use crate::db::meta::SeriesDefaults;
use crate::db::{Kind, Record, Tx, Typed};
use crate::resp::Frame;
use crate::store::{Space, StoreError, StoreRead};

use super::TsError;
use super::aggregate::{AggSpec, Aggregation, Aggregator, BucketTimestamp, bucket_start};
use super::index;
use super::meta::{RULE_CHAIN_DEPTH_MAX, RULES_PER_SERIES_MAX, Rule, SeriesMeta};
use super::store::{self as samples, Upserted};

fn tsdb(msg: &str) -> TsError {
    TsError::Command(CommandError::other(format!("ERR TSDB: {msg}")))
}

fn no_key() -> TsError {
    tsdb("the key does not exist")
}

/// A series' metadata, `None` when the key does not exist or is not a series.
pub fn load(r: &impl StoreRead, key: &[u8]) -> Result<Option<SeriesMeta>, StoreError> {
    series_or_none(lookup(r, key))
}

/// A lookup's series; `None` for a key that holds something else.
fn series_or_none(
    found: Result<Option<SeriesMeta>, TsError>,
) -> Result<Option<SeriesMeta>, StoreError> {
    match found {
        Ok(m) => Ok(m),
        Err(TsError::Store(e)) => Err(e),
        Err(TsError::Command(_)) => Ok(None),
    }
}

/// A series' metadata; WRONGTYPE when the key holds something else.
pub fn lookup(r: &impl StoreRead, key: &[u8]) -> Result<Option<SeriesMeta>, TsError> {
    let Some(raw) = r.get(Space::Keys, key)? else {
        return Ok(None);
    };
    let rec = Record::decode(raw)?;
    if rec.kind != Kind::Series {
        return Err(TsError::Command(CommandError::WrongType));
    }
    Ok(Some(SeriesMeta::decode(&rec.payload)?))
}

/// A series record held decoded by the apply round that writes it ([`Tx::put_typed`]): the
/// samples of a round read and rewrite it without decoding or encoding it each time.
/// The stamp is the log index of the entry that wrote it (its WATCH version, see `db::version`).
#[derive(Clone, Debug)]
struct SeriesRecord(SeriesMeta, u64);

impl Typed for SeriesRecord {
    fn encode(&self) -> Vec<u8> {
        self.0.encode_after(Record::header(Kind::Series, self.1))
    }

    fn len_hint(&self) -> usize {
        self.0.encoded_len_hint()
    }

    fn clone_box(&self) -> Box<dyn Typed> {
        Box::new(self.clone())
    }
}

fn save<S: StoreRead>(tx: &mut Tx<'_, S>, key: &[u8], meta: SeriesMeta) {
    let stamp = tx.stamp();
    tx.put_typed(Space::Keys, key, SeriesRecord(meta, stamp));
}

/// Applies a `TS.*` write. `keys` is the Db's key count, kept in step; `defaults` are the
/// cluster-wide options of a series created here.
pub fn apply<S: StoreRead>(
    tx: &mut Tx<'_, S>,
    keys: &mut u64,
    defaults: &SeriesDefaults,
    cmd: &TsWrite,
    unix: UnixMillis,
) -> Result<Frame, StoreError> {
    let mut e = Engine { tx, keys, defaults };
    let result = match cmd {
        TsWrite::Create { key, opts } => e.create(key, opts).map(|_| Frame::ok()),
        TsWrite::Alter { key, opts } => e.alter(key, opts).map(|()| Frame::ok()),
        TsWrite::Add {
            key,
            ts,
            value,
            opts,
            on_duplicate,
        } => e
            .add(key, ts.unwrap_or(unix.0), *value, opts, *on_duplicate)
            .map(ts_frame),
        TsWrite::MAdd(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (key, ts, value) in items {
                out.push(e.madd_one(key, ts.unwrap_or(unix.0), *value)?);
            }
            Ok(Frame::Array(out))
        }
        TsWrite::MAddPartial(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(match item {
                    MAddItem::Sample(key, ts, value) => {
                        e.madd_one(key, ts.unwrap_or(unix.0), *value)?
                    }
                    MAddItem::Refused(msg) => Frame::error(msg.clone()),
                });
            }
            Ok(Frame::Array(out))
        }
        TsWrite::IncrBy { key, by, ts, opts } => e
            .incr_by(key, *by, ts.unwrap_or(unix.0), opts)
            .map(ts_frame),
        TsWrite::Del { key, from, to } => e.del(key, *from, *to).map(count_frame),
        TsWrite::CreateRule {
            src,
            dst,
            aggregator,
            bucket_ms,
            align_ms,
        } => {
            let rule = Rule {
                dest: dst.clone(),
                aggregator: aggregator.clone(),
                bucket_ms: *bucket_ms,
                align_ms: *align_ms,
            };
            e.create_rule(src, rule).map(|()| Frame::ok())
        }
        TsWrite::DeleteRule { src, dst } => e.delete_rule(src, dst).map(|()| Frame::ok()),
        TsWrite::MDel { from, to, filter } => e.mdel(*from, *to, filter).map(count_frame),
        TsWrite::SeedSet { key, ts, value } => e
            .add(key, *ts, *value, &SeriesOpts::default(), None)
            .map(|_| Frame::ok()),
        TsWrite::Batch(samples) => {
            let mut out = Vec::with_capacity(samples.len());
            for (key, ts, value) in samples {
                let result = e.add(key, *ts, *value, &SeriesOpts::default(), None);
                out.push(match result {
                    Ok(_) => Frame::ok(),
                    Err(TsError::Command(c)) => Frame::error(c.to_string()),
                    Err(TsError::Store(s)) => return Err(s),
                });
            }
            Ok(Frame::Array(out))
        }
    };
    match result {
        Ok(f) => Ok(f),
        Err(TsError::Command(c)) => Ok(Frame::error(c.to_string())),
        Err(TsError::Store(s)) => Err(s),
    }
}

fn ts_frame(ts: u64) -> Frame {
    Frame::Integer(i64::try_from(ts).unwrap_or(i64::MAX))
}

fn count_frame(n: u64) -> Frame {
    Frame::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Removes a series key's samples, index entries and rule links (DEL, UNLINK, GETDEL...).
pub fn drop_series<S: StoreRead>(
    tx: &mut Tx<'_, S>,
    key: &[u8],
    payload: &[u8],
) -> Result<(), StoreError> {
    let meta = SeriesMeta::decode(payload)?;
    samples::delete_all(tx, meta.id);
    index::remove(tx, &meta);
    if let Some(src) = &meta.info.source
        && let Some(mut s) = load(tx, src)?
    {
        s.info_mut().rules.retain(|r| r.dest.as_ref() != key);
        save(tx, src, s);
    }
    for rule in &meta.info.rules {
        if let Some(mut d) = load(tx, &rule.dest)? {
            d.info_mut().source = None;
            save(tx, &rule.dest, d);
        }
    }
    Ok(())
}

struct Engine<'t, 'a, S: StoreRead> {
    tx: &'t mut Tx<'a, S>,
    keys: &'t mut u64,
    /// Cluster-wide defaults (CONFIG SET ts-*) for options a new series is created without.
    defaults: &'t SeriesDefaults,
}

impl<S: StoreRead> Engine<'_, '_, S> {
    fn lookup(&self, key: &[u8]) -> Result<Option<SeriesMeta>, TsError> {
        if let Some(held) = self.tx.typed::<SeriesRecord>(Space::Keys, key) {
            return Ok(Some(held.0.clone()));
        }
        lookup(&*self.tx, key)
    }

    fn load(&self, key: &[u8]) -> Result<Option<SeriesMeta>, StoreError> {
        series_or_none(self.lookup(key))
    }

    fn existing(&self, key: &[u8]) -> Result<SeriesMeta, TsError> {
        self.lookup(key)?.ok_or_else(no_key)
    }

    fn create(&mut self, key: &Bytes, opts: &SeriesOpts) -> Result<SeriesMeta, TsError> {
        if self.tx.get(Space::Keys, key)?.is_some() {
            return Err(tsdb("key already exists"));
        }
        let mut meta = SeriesMeta::new(index::next_id(self.tx)?);
        let d = self.defaults;
        meta.retention_ms = d.retention_ms;
        meta.chunk_size = d.chunk_size;
        meta.duplicate_policy = d.duplicate_policy;
        meta.ignore_max_time_diff = d.ignore_max_time_diff;
        meta.ignore_max_val_diff = d.ignore_max_val_diff;
        apply_opts(&mut meta, opts);
        if let Some(u) = opts.uncompressed {
            meta.uncompressed = u;
        }
        index::add(self.tx, key, &meta);
        save(self.tx, key, meta.clone());
        *self.keys += 1;
        Ok(meta)
    }

    fn alter(&mut self, key: &Bytes, opts: &SeriesOpts) -> Result<(), TsError> {
        let mut meta = self.existing(key)?;
        if opts.labels.is_some() {
            index::remove(self.tx, &meta);
        }
        apply_opts(&mut meta, opts);
        if opts.labels.is_some() {
            index::add(self.tx, key, &meta);
        }
        if meta.head_samples >= meta.head_capacity() {
            samples::seal(self.tx, &mut meta)?;
        }
        save(self.tx, key, meta);
        Ok(())
    }

    /// One TS.MADD element: its timestamp, or its error reply; a store failure is `Err`.
    fn madd_one(&mut self, key: &Bytes, ts: u64, value: f64) -> Result<Frame, StoreError> {
        let r = match self.lookup(key) {
            Ok(Some(meta)) => self.add_to(key, meta, ts, value, None),
            Ok(None) => Err(no_key()),
            Err(err) => Err(err),
        };
        match r {
            Ok(ts) => Ok(ts_frame(ts)),
            Err(TsError::Command(c)) => Ok(Frame::error(c.to_string())),
            Err(TsError::Store(s)) => Err(s),
        }
    }

    /// TS.ADD (and TSDB_SET, MADD): creates the series if needed; returns the timestamp the
    /// reply reports.
    fn add(
        &mut self,
        key: &Bytes,
        ts: u64,
        value: f64,
        opts: &SeriesOpts,
        on_duplicate: Option<DupPolicy>,
    ) -> Result<u64, TsError> {
        // NaN is a sample value since Redis 8.6; infinities are not (redis.io TS.ADD).
        if value.is_infinite() {
            return Err(tsdb("invalid value"));
        }
        let meta = match self.lookup(key)? {
            Some(m) => m,
            None => self.create(key, opts)?,
        };
        self.add_to(key, meta, ts, value, on_duplicate)
    }

    /// TS.ADD to the series `meta` already loaded for `key`.
    fn add_to(
        &mut self,
        key: &Bytes,
        mut meta: SeriesMeta,
        ts: u64,
        value: f64,
        on_duplicate: Option<DupPolicy>,
    ) -> Result<u64, TsError> {
        // NaN is a sample value since Redis 8.6; infinities are not (redis.io TS.ADD).
        if value.is_infinite() {
            return Err(tsdb("invalid value"));
        }
        let policy = on_duplicate
            .or(meta.duplicate_policy)
            .unwrap_or(DupPolicy::Block);
        if let Some(newest) = ignored(&meta, ts, value, policy) {
            return Ok(newest);
        }
        self.upsert(key, &mut meta, ts, value, policy, 0)?;
        save(self.tx, key, meta);
        Ok(ts)
    }

    fn incr_by(
        &mut self,
        key: &Bytes,
        by: f64,
        ts: u64,
        opts: &SeriesOpts,
    ) -> Result<u64, TsError> {
        let mut meta = match self.lookup(key)? {
            Some(m) => m,
            None => self.create(key, opts)?,
        };
        let base = match meta.last {
            Some((last, _)) if ts < last => {
                return Err(tsdb(
                    "timestamp must be equal to or higher than the maximum existing timestamp",
                ));
            }
            // "An error is returned if the current value at the maximum existing timestamp is
            // NaN" (redis.io TS.INCRBY, Redis 8.6); the wording is ours.
            Some((_, v)) if v.is_nan() => {
                return Err(tsdb("the value at the maximum existing timestamp is NaN"));
            }
            Some((_, v)) => v,
            None => 0.0,
        };
        let value = base + by;
        if !value.is_finite() {
            return Err(tsdb("invalid value"));
        }
        // IGNORE applies to TS.INCRBY/TS.DECRBY too (redis.io TS.INCRBY, notes): the sample
        // they would write is compared with the newest one under the series' policy.
        let policy = meta.duplicate_policy.unwrap_or(DupPolicy::Block);
        if let Some(newest) = ignored(&meta, ts, value, policy) {
            return Ok(newest);
        }
        self.upsert(key, &mut meta, ts, value, DupPolicy::Last, 0)?;
        save(self.tx, key, meta);
        Ok(ts)
    }

    /// Upserts one sample and feeds the series' rules. The caller saves `meta`.
    fn upsert(
        &mut self,
        key: &Bytes,
        meta: &mut SeriesMeta,
        ts: u64,
        value: f64,
        policy: DupPolicy,
        depth: usize,
    ) -> Result<Upserted, TsError> {
        let prev_last = meta.last.map(|l| l.0);
        let done = samples::upsert(self.tx, meta, ts, value, policy)?;
        // The rules outlive `meta`'s changes: a refresh may write the record.
        let info = Arc::clone(&meta.info);
        for rule in &info.rules {
            let Some(range) = buckets_to_refresh(rule, prev_last, ts, meta) else {
                continue;
            };
            self.refresh(key, meta, rule, range, depth)?;
        }
        Ok(done)
    }

    fn del(&mut self, key: &Bytes, from: u64, to: u64) -> Result<u64, TsError> {
        let mut meta = self.existing(key)?;
        let n = self.delete_and_refresh(key, &mut meta, from, to, 0)?;
        save(self.tx, key, meta);
        Ok(n)
    }

    fn delete_and_refresh(
        &mut self,
        key: &Bytes,
        meta: &mut SeriesMeta,
        from: u64,
        to: u64,
        depth: usize,
    ) -> Result<u64, TsError> {
        let old_last = meta.last.map(|l| l.0);
        let n = samples::delete_range(self.tx, meta, from, to)?;
        if n == 0 {
            return Ok(0);
        }
        // The rules outlive `meta`'s changes: a refresh may write the record.
        let info = Arc::clone(&meta.info);
        for rule in &info.rules {
            let mut lo = bucket_lo(rule, from);
            let mut hi = bucket_lo(rule, to).saturating_add(rule.bucket_ms);
            if meta.last.map(|l| l.0) != old_last {
                // The newest sample went: its new bucket is open again, and every bucket after
                // it is empty, so the destination keeps nothing from there on.
                lo = lo.min(meta.last.map_or(0, |(l, _)| bucket_lo(rule, l)));
                hi = u64::MAX;
            }
            self.refresh(key, meta, rule, (lo, hi), depth)?;
        }
        Ok(n)
    }

    /// Recomputes `rule`'s destination over the closed buckets in `[range.0, range.1)` from
    /// the source's samples: the destination's samples there are replaced.
    fn refresh(
        &mut self,
        src_key: &Bytes,
        src: &SeriesMeta,
        rule: &Rule,
        range: (u64, u64),
        depth: usize,
    ) -> Result<(), TsError> {
        assert!(
            depth <= RULE_CHAIN_DEPTH_MAX,
            "rule chains are bounded at creation"
        );
        let Some(mut dest) = self.load(&rule.dest)? else {
            return Ok(());
        };
        if range.0 >= range.1 {
            return Ok(());
        }
        // The destination's samples in the range go; only closed buckets come back (the
        // bucket holding the source's newest sample is open, e.g. again after a TS.DEL).
        let dest_key = rule.dest.clone();
        self.delete_and_refresh(&dest_key, &mut dest, range.0, range.1 - 1, depth + 1)?;
        let open = src.last.map_or(0, |(l, _)| bucket_lo(rule, l));
        let hi = range.1.min(open);
        if range.0 >= hi {
            save(self.tx, &dest_key, dest);
            return Ok(());
        }
        let (lo, hi_incl) = (range.0, hi - 1);
        let rows = compute_buckets(&*self.tx, src, rule, lo, hi_incl)?;
        let _ = src_key;
        for (ts, value) in rows {
            if value.is_nan() {
                continue;
            }
            match self.upsert(&dest_key, &mut dest, ts, value, DupPolicy::Last, depth + 1) {
                Ok(_) => {}
                // Retention of the destination may refuse old buckets: they are simply not kept.
                Err(TsError::Command(_)) => {}
                Err(e) => return Err(e),
            }
        }
        save(self.tx, &dest_key, dest);
        Ok(())
    }

    fn create_rule(&mut self, src_key: &Bytes, rule: Rule) -> Result<(), TsError> {
        if src_key == &rule.dest {
            return Err(tsdb(
                "the source key and destination key should be different",
            ));
        }
        let mut src = self.existing(src_key)?;
        let dest = self.existing(&rule.dest)?;
        if dest.info.source.is_some() || src.info.rules.iter().any(|r| r.dest == rule.dest) {
            return Err(tsdb("the destination key already has a src rule"));
        }
        if src.info.rules.len() >= RULES_PER_SERIES_MAX {
            return Err(tsdb("too many compaction rules on the source"));
        }
        // Chains: refuse a cycle, and bound the chain's length.
        let up = self.depth_up(src_key, &src)?;
        let down = self.depth_down(&rule.dest, &dest, src_key, 0)?;
        if up + 1 + down > RULE_CHAIN_DEPTH_MAX {
            return Err(tsdb("compaction rule chain is too long"));
        }
        let mut dest = dest;
        dest.info_mut().source = Some(src_key.clone());
        save(self.tx, &rule.dest, dest);
        src.info_mut().rules.push(rule.clone());
        save(self.tx, src_key, src.clone());
        // Beyond RedisTimeSeries: existing samples feed the new destination at once.
        // Only the closed buckets: data the destination already holds beyond them stays.
        if let Some((last, _)) = src.last {
            let open = bucket_lo(&rule, last);
            self.refresh(src_key, &src, &rule, (0, open), 0)?;
        }
        Ok(())
    }

    /// How many sources lie above `key` (0 for a series that is no rule's destination).
    fn depth_up(&self, key: &Bytes, meta: &SeriesMeta) -> Result<usize, TsError> {
        let mut depth = 0;
        let mut cur = meta.info.source.clone();
        let mut _at = key.clone();
        while let Some(s) = cur {
            depth += 1;
            if depth > RULE_CHAIN_DEPTH_MAX {
                break;
            }
            cur = self.load(&s)?.and_then(|m| m.info.source.clone());
            _at = s;
        }
        Ok(depth)
    }

    /// The longest rule chain below `key`; a cycle back to `forbidden` is refused.
    fn depth_down(
        &self,
        key: &Bytes,
        meta: &SeriesMeta,
        forbidden: &Bytes,
        level: usize,
    ) -> Result<usize, TsError> {
        if key == forbidden {
            return Err(tsdb("the compaction rule would create a cycle"));
        }
        if level > RULE_CHAIN_DEPTH_MAX {
            return Err(tsdb("compaction rule chain is too long"));
        }
        let mut deepest = 0;
        for r in &meta.info.rules {
            if r.dest == *forbidden {
                return Err(tsdb("the compaction rule would create a cycle"));
            }
            if let Some(m) = self.load(&r.dest)? {
                deepest = deepest.max(1 + self.depth_down(&r.dest, &m, forbidden, level + 1)?);
            }
        }
        Ok(deepest)
    }

    fn delete_rule(&mut self, src_key: &Bytes, dst: &Bytes) -> Result<(), TsError> {
        let mut src = self.existing(src_key)?;
        let mut dest = self.existing(dst)?;
        let before = src.info.rules.len();
        src.info_mut().rules.retain(|r| r.dest != *dst);
        if src.info.rules.len() == before {
            return Err(tsdb("compaction rule does not exist"));
        }
        dest.info_mut().source = None;
        save(self.tx, src_key, src);
        save(self.tx, dst, dest);
        Ok(())
    }

    fn mdel(&mut self, from: u64, to: u64, filter: &[Bytes]) -> Result<u64, TsError> {
        let selected = index::select(&*self.tx, filter)?.map_err(TsError::Command)?;
        let mut total = 0;
        for (key, _) in selected {
            // Reload: deleting from an earlier series may have refreshed this one (a rule).
            let Some(mut meta) = self.load(&key)? else {
                continue;
            };
            total += self.delete_and_refresh(&key, &mut meta, from, to, 0)?;
            save(self.tx, &key, meta);
        }
        Ok(total)
    }
}

/// IGNORE (Redis 8, redis.io TS.CREATE): a sample is dropped when the series is not a
/// compaction, its policy is LAST, the sample is in order, and it is within
/// `ignoreMaxTimeDiff` ms and `ignoreMaxValDiff` of the newest sample. Returns the newest
/// timestamp (the reply) when the sample is dropped.
fn ignored(meta: &SeriesMeta, ts: u64, value: f64, policy: DupPolicy) -> Option<u64> {
    let (last_ts, last_v) = meta.last?;
    let close = ts >= last_ts
        && ts - last_ts <= meta.ignore_max_time_diff
        && (value - last_v).abs() <= meta.ignore_max_val_diff;
    let ignoring = meta.ignore_max_time_diff > 0 || meta.ignore_max_val_diff > 0.0;
    (meta.info.source.is_none() && ignoring && close && policy == DupPolicy::Last)
        .then_some(last_ts)
}

fn apply_opts(meta: &mut SeriesMeta, opts: &SeriesOpts) {
    if let Some(r) = opts.retention_ms {
        meta.retention_ms = r;
    }
    if let Some(c) = opts.chunk_size {
        meta.chunk_size = c;
    }
    if let Some(p) = opts.duplicate_policy {
        meta.duplicate_policy = Some(p);
    }
    if let Some((t, v)) = opts.ignore {
        meta.ignore_max_time_diff = t;
        meta.ignore_max_val_diff = v;
    }
    if let Some(l) = &opts.labels {
        meta.info_mut().labels = l.clone();
    }
}

/// The start of the bucket holding `ts`, clamped to 0 when the bucket starts before 0.
fn bucket_lo(rule: &Rule, ts: u64) -> u64 {
    u64::try_from(bucket_start(ts, rule.bucket_ms, rule.align_ms).max(0)).unwrap_or(u64::MAX)
}

/// Which destination buckets a new sample at `ts` makes stale: the bucket it closes (the one
/// holding the previous newest sample, when `ts` opens a later one) or, for a sample that
/// lands in an already closed bucket, that bucket.
fn buckets_to_refresh(
    rule: &Rule,
    prev_last: Option<u64>,
    ts: u64,
    meta: &SeriesMeta,
) -> Option<(u64, u64)> {
    let last = meta.last?.0;
    let open = bucket_lo(rule, last);
    let b = bucket_lo(rule, ts);
    if b < open {
        return Some((b, b.saturating_add(rule.bucket_ms)));
    }
    let prev = prev_last?;
    let pb = bucket_lo(rule, prev);
    (pb < open).then(|| (pb, pb.saturating_add(rule.bucket_ms)))
}

/// The rule's aggregate per bucket over the source samples with `lo <= ts <= hi`; neighbours
/// outside the range are passed for `twa`.
pub fn compute_buckets(
    r: &impl StoreRead,
    src: &SeriesMeta,
    rule: &Rule,
    lo: u64,
    hi: u64,
) -> Result<Vec<(u64, f64)>, TsError> {
    let aggregator = Aggregator::parse(rule.aggregator.as_bytes()).map_err(|e| {
        TsError::Store(StoreError::Corrupt {
            space: Space::Keys,
            detail: format!("rule aggregator {}: {e}", rule.aggregator),
        })
    })?;
    let spec = AggSpec {
        aggregators: vec![aggregator],
        bucket_ms: rule.bucket_ms,
        align: rule.align_ms,
        bucket_ts: BucketTimestamp::Start,
        empty: false,
    };
    let mut aggregation = Aggregation::new(&spec, (lo, hi))?;
    each_with_neighbours(r, src, lo, hi, |run| aggregation.push_all(run))?;
    let rows = aggregation.finish(false)?;
    Ok(rows
        .into_iter()
        .filter_map(|(ts, v)| v.first().map(|v| (ts, *v)))
        .collect())
}

/// The samples in `[lo, hi]` plus the nearest one on each side (for `twa` and `EMPTY`), in
/// time order and in runs (see [`samples::scan_runs`]), until `each` returns `false`.
pub fn each_with_neighbours(
    r: &impl StoreRead,
    meta: &SeriesMeta,
    lo: u64,
    hi: u64,
    mut each: impl FnMut(&[Sample]) -> bool,
) -> Result<(), StoreError> {
    if let Some((ts, value)) = samples::last_before(r, meta, lo)?
        && !each(&[Sample { ts, value }])
    {
        return Ok(());
    }
    let mut more = true;
    samples::scan_runs(r, meta, lo, hi, |run| {
        more = each(run);
        more
    })?;
    if more && hi < u64::MAX {
        samples::scan_runs(r, meta, hi + 1, u64::MAX, |run| {
            each(&run[..1]);
            false
        })?;
    }
    Ok(())
}
