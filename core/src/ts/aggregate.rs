//! Bucketed aggregation: `AGGREGATION` of `TS.RANGE`/`TS.REVRANGE`/`TS.MRANGE` and the
//! incremental form behind `TS.CREATERULE` compaction rules.
//!
//! # Semantics (redis.io `TS.RANGE` page)
//!
//! - Buckets are `[start, start + bucket_ms)`. Bucket starts are `align % bucket_ms` plus a
//!   multiple of `bucket_ms` (so `align = 0` gives multiples of `bucket_ms`); the first bucket
//!   start is `<=` the first sample. `ALIGN start|-|end|+` are resolved to a number by the caller.
//!   Starts are computed in `i128`: a bucket may start before 0 (timestamp 5 with align 10 and
//!   bucket 20 lives in `[-10, 10)`) or end after `u64::MAX`; the *reported* timestamp is clamped
//!   into `0..=u64::MAX` (the docs are silent; a negative timestamp cannot be replied).
//! - `BUCKETTIMESTAMP`: `start` (default), `end` (`start + bucket_ms`), `mid`
//!   (`start + bucket_ms / 2`, rounded down).
//! - Aggregators: `avg sum min max range(max-min) count first last std.p std.s var.p var.s twa`.
//!   Several may be asked at once (`first,max,min,last` → OHLC); each row then carries one value
//!   per aggregator, in the order given.
//! - `var.s`/`std.s` of a single value is `0` (the docs are silent; division by `n - 1 = 0` is
//!   avoided rather than replying NaN). Variance uses Welford's update (stable in one pass); `sum`
//!   and `avg` use plain f64 addition (no compensation), like a naive left fold.
//! - `twa`: the time-weighted average over the bucket's timeframe `[start, start + bucket_ms]`:
//!   the integral of the piecewise-linear curve through the samples divided by the width. At each
//!   edge the curve is linearly interpolated between the bucket's outer sample and the neighbour
//!   outside the bucket (the last sample before `start`, the first sample at or after the end).
//!   Without a neighbour on a side the window stops at the bucket's outermost sample on that
//!   side; a bucket with one sample and no neighbours averages to that sample's value.
//! - `EMPTY`: empty buckets are reported too, with `0` for `sum`/`count`, for `last` the value of
//!   the last sample before the bucket's start, for `twa` the average over the bucket's
//!   timeframe of the line through the last sample before and the first sample after the bucket,
//!   and NaN for everything else (and for `last`/`twa` when the neighbour is missing). As the
//!   docs say, no bucket is reported that ends before the series' earliest sample or starts
//!   after its latest: empty buckets fill the query range only on the sides where the caller
//!   passed a neighbour sample outside the range (see below), otherwise only between the first
//!   and the last non-empty bucket.
//! - NaN input values: `TS.ADD` rejects NaN and infinities (redis.io `TS.ADD`), so none should
//!   reach us. If one does it is skipped, as if the sample did not exist (our choice).
//!
//! # Neighbour samples
//!
//! [`aggregate`] takes every sample the caller has in time order and a `range`; samples outside
//! `range` are never aggregated. The last sample before `range.0` and the first after `range.1`
//! are used as neighbours (for `twa` edges and for `EMPTY`), so the engine should read one sample
//! past each end of the range when it can. A neighbour is only used for a bucket edge it really
//! lies beyond; a sample outside the range but inside the first or last bucket is ignored.
//!
//! # Limits
//!
//! [`MAX_EMPTY_BUCKETS`] bounds the rows `EMPTY` may invent per query; [`MAX_AGGREGATORS`] bounds
//! the aggregators per query.

use std::cmp::Ordering;

use crate::chunk;

/// The most empty buckets `EMPTY` may add to one query's reply (a 1 ms bucket over a decade is
/// 3e11 rows: refused rather than built).
pub const MAX_EMPTY_BUCKETS: u64 = 10_000_000;
/// The most aggregators one `AGGREGATION` may list.
pub const MAX_AGGREGATORS: usize = 16;

/// Why an aggregation request was refused. `Display` is the reply text after `-`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AggError {
    /// The aggregator name is not one of the documented ones.
    #[error("ERR TSDB: Unknown aggregation type")]
    UnknownAggregator,
    /// `bucketDuration` was 0.
    #[error("ERR TSDB: bucketDuration must be greater than zero")]
    ZeroBucket,
    /// No aggregator, or more than [`MAX_AGGREGATORS`].
    #[error("ERR TSDB: wrong number of aggregators")]
    AggregatorCount,
    /// `EMPTY` would add more than [`MAX_EMPTY_BUCKETS`] rows.
    #[error("ERR TSDB: query would report more than {MAX_EMPTY_BUCKETS} empty buckets")]
    TooManyEmptyBuckets,
    /// A compaction accumulator got a sample older than its open bucket.
    #[error("ERR TSDB: sample is older than the open compaction bucket")]
    OutOfOrder,
}

/// One aggregation function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Aggregator {
    /// Arithmetic mean.
    Avg,
    /// Sum.
    Sum,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Maximum minus minimum.
    Range,
    /// Number of (non-NaN) values.
    Count,
    /// Number of NaN values (Redis 8.6).
    CountNan,
    /// Number of values, NaN or not (Redis 8.6).
    CountAll,
    /// Value with the lowest timestamp.
    First,
    /// Value with the highest timestamp.
    Last,
    /// Population standard deviation.
    StdP,
    /// Sample standard deviation.
    StdS,
    /// Population variance.
    VarP,
    /// Sample variance.
    VarS,
    /// Time-weighted average over the bucket's timeframe.
    Twa,
}

impl Aggregator {
    /// Every aggregator, in documentation order.
    pub const ALL: [Self; 15] = [
        Self::Avg,
        Self::Sum,
        Self::Min,
        Self::Max,
        Self::Range,
        Self::Count,
        Self::CountNan,
        Self::CountAll,
        Self::First,
        Self::Last,
        Self::StdP,
        Self::StdS,
        Self::VarP,
        Self::VarS,
        Self::Twa,
    ];

    /// Parses a name, case-insensitively (`avg`, `STD.P`, ...).
    pub fn parse(name: &[u8]) -> Result<Self, AggError> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().as_bytes().eq_ignore_ascii_case(name))
            .ok_or(AggError::UnknownAggregator)
    }

    /// Parses a comma-separated list (`first,max,min,last`), at most [`MAX_AGGREGATORS`].
    pub fn parse_list(names: &[u8]) -> Result<Vec<Self>, AggError> {
        let mut out = Vec::new();
        for name in names.split(|&b| b == b',') {
            if out.len() == MAX_AGGREGATORS {
                return Err(AggError::AggregatorCount);
            }
            out.push(Self::parse(name)?);
        }
        Ok(out)
    }

    /// The lowercase name used in replies (`TS.INFO` rules, `__reducer__`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Avg => "avg",
            Self::Sum => "sum",
            Self::Min => "min",
            Self::Max => "max",
            Self::Range => "range",
            Self::Count => "count",
            Self::CountNan => "countnan",
            Self::CountAll => "countall",
            Self::First => "first",
            Self::Last => "last",
            Self::StdP => "std.p",
            Self::StdS => "std.s",
            Self::VarP => "var.p",
            Self::VarS => "var.s",
            Self::Twa => "twa",
        }
    }

    /// The value `EMPTY` reports for an empty bucket `[start, end)`, given the last sample
    /// before it and the first sample after it.
    fn empty_value(
        self,
        start: i128,
        end: i128,
        prev: Option<Sample>,
        next: Option<Sample>,
    ) -> f64 {
        let prev = prev.filter(|p| i128::from(p.0) < start);
        let next = next.filter(|n| i128::from(n.0) >= end);
        match self {
            Self::Sum | Self::Count | Self::CountNan | Self::CountAll => 0.0,
            Self::Last => prev.map_or(f64::NAN, |p| p.1),
            Self::Twa => match (prev, next) {
                // The mean of a line over [start, end] is its value at the midpoint.
                (Some(p), Some(n)) => interpolate2(p, n, start + end, 2),
                _ => f64::NAN,
            },
            _ => f64::NAN,
        }
    }
}

/// How a bucket's timestamp is reported (`BUCKETTIMESTAMP`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BucketTimestamp {
    /// The bucket's start (`-`, `start`; the default).
    #[default]
    Start,
    /// The bucket's end, `start + bucket_ms` (`+`, `end`).
    End,
    /// `start + bucket_ms / 2`, rounded down (`~`, `mid`).
    Mid,
}

impl BucketTimestamp {
    /// Parses `-`/`start`, `+`/`end`, `~`/`mid` (case-insensitive); `None` otherwise.
    pub fn parse(arg: &[u8]) -> Option<Self> {
        let is = |s: &str| arg.eq_ignore_ascii_case(s.as_bytes());
        if is("-") || is("start") {
            Some(Self::Start)
        } else if is("+") || is("end") {
            Some(Self::End)
        } else if is("~") || is("mid") {
            Some(Self::Mid)
        } else {
            None
        }
    }
}

/// A parsed `[ALIGN a] AGGREGATION aggs bucket [BUCKETTIMESTAMP bt] [EMPTY]` clause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AggSpec {
    /// One or more aggregators; each row carries one value per aggregator, in this order.
    pub aggregators: Vec<Aggregator>,
    /// Bucket width in milliseconds; must be > 0.
    pub bucket_ms: u64,
    /// Alignment timestamp: bucket starts are `align % bucket_ms` modulo `bucket_ms`.
    pub align: u64,
    /// Which timestamp of a bucket is reported.
    pub bucket_ts: BucketTimestamp,
    /// Report empty buckets too (`EMPTY`).
    pub empty: bool,
}

impl AggSpec {
    /// Checks the invariants [`aggregate`] relies on.
    pub fn validate(&self) -> Result<(), AggError> {
        if self.bucket_ms == 0 {
            return Err(AggError::ZeroBucket);
        }
        if self.aggregators.is_empty() || self.aggregators.len() > MAX_AGGREGATORS {
            return Err(AggError::AggregatorCount);
        }
        Ok(())
    }
}

/// `(timestamp_ms, value)`.
type Sample = (u64, f64);

/// The start of the bucket holding `ts`: the largest `align % bucket + k * bucket <= ts`.
pub fn bucket_start(ts: u64, bucket_ms: u64, align: u64) -> i128 {
    assert!(bucket_ms > 0, "bucket width is validated before use");
    let width = i128::from(bucket_ms);
    let rem = i128::from(align % bucket_ms);
    let k = (i128::from(ts) - rem).div_euclid(width);
    rem + k * width
}

/// The reported timestamp of the bucket starting at `start`, clamped into `u64`.
pub fn report_ts(start: i128, bucket_ms: u64, mode: BucketTimestamp) -> u64 {
    let width = i128::from(bucket_ms);
    let t = match mode {
        BucketTimestamp::Start => start,
        BucketTimestamp::End => start + width,
        BucketTimestamp::Mid => start + width / 2,
    };
    clamp_u64(t)
}

fn clamp_u64(t: i128) -> u64 {
    u64::try_from(t.max(0)).unwrap_or(u64::MAX)
}

/// Value at time `num / den` of the line through `a` and `b` (`a.0 < b.0`). The time is a
/// fraction so that a midpoint needs no rounding.
fn interpolate2(a: Sample, b: Sample, num: i128, den: i128) -> f64 {
    debug_assert!(a.0 < b.0);
    let span = (i128::from(b.0) - i128::from(a.0)) as f64;
    let off = (num - den * i128::from(a.0)) as f64 / den as f64;
    a.1 + (b.1 - a.1) * (off / span)
}

fn interpolate(a: Sample, b: Sample, t: i128) -> f64 {
    interpolate2(a, b, t, 1)
}

/// Running count, sum, extremes and Welford mean / squared deviations of a set of values: what
/// every aggregator but first, last and twa is a function of. Shared by buckets ([`Stats`]) and
/// cross-series reducers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Moments {
    pub(crate) count: u64,
    pub(crate) sum: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    mean: f64,
    m2: f64,
    /// Whether `mean` and `m2` are kept: only the variance aggregators read them, and their
    /// update (a division per value) was most of an `avg` aggregation's per-sample cost.
    spread: bool,
}

impl Moments {
    pub(crate) fn new(value: f64) -> Self {
        Self::keeping(value, true)
    }

    /// Moments of one value, keeping the variance's terms when `spread`.
    pub(crate) fn keeping(value: f64, spread: bool) -> Self {
        Self {
            count: 1,
            sum: value,
            min: value,
            max: value,
            mean: value,
            m2: 0.0,
            spread,
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, value: f64) {
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        if self.spread {
            let delta = value - self.mean;
            self.mean += delta / self.count as f64;
            self.m2 += delta * (value - self.mean);
        }
    }

    pub(crate) fn var_p(&self) -> f64 {
        debug_assert!(self.spread, "variance of moments that do not keep it");
        (self.m2 / self.count as f64).max(0.0)
    }

    pub(crate) fn var_s(&self) -> f64 {
        debug_assert!(self.spread, "variance of moments that do not keep it");
        if self.count < 2 {
            0.0
        } else {
            (self.m2 / (self.count - 1) as f64).max(0.0)
        }
    }

    /// The value of a moment-based aggregator; `None` for first, last, twa and the NaN counts
    /// (moments only ever see non-NaN values).
    pub(crate) fn value(&self, agg: Aggregator) -> Option<f64> {
        Some(match agg {
            Aggregator::Avg => self.sum / self.count as f64,
            Aggregator::Sum => self.sum,
            Aggregator::Min => self.min,
            Aggregator::Max => self.max,
            Aggregator::Range => self.max - self.min,
            Aggregator::Count => self.count as f64,
            Aggregator::StdP => self.var_p().sqrt(),
            Aggregator::StdS => self.var_s().sqrt(),
            Aggregator::VarP => self.var_p(),
            Aggregator::VarS => self.var_s(),
            Aggregator::First
            | Aggregator::Last
            | Aggregator::Twa
            | Aggregator::CountNan
            | Aggregator::CountAll => return None,
        })
    }
}

/// What a bucket keeps beyond count, sum, extremes, first and last: only what its
/// aggregators read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Need {
    /// The variance terms (`std.p`, `std.s`, `var.p`, `var.s`).
    spread: bool,
    /// The trapezoid area (`twa`).
    area: bool,
}

impl Need {
    pub(crate) fn of(aggregators: &[Aggregator]) -> Self {
        let any = |f: fn(&Aggregator) -> bool| aggregators.iter().any(f);
        Self {
            spread: any(|a| {
                matches!(
                    a,
                    Aggregator::StdP | Aggregator::StdS | Aggregator::VarP | Aggregator::VarS
                )
            }),
            area: any(|a| matches!(a, Aggregator::Twa)),
        }
    }
}

/// Running statistics of one bucket; every aggregator is a function of these.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Stats {
    pub(crate) m: Moments,
    first: Sample,
    last: Sample,
    /// Trapezoid area between consecutive samples of the bucket, in value·ms (when
    /// `area_kept`).
    area: f64,
    area_kept: bool,
}

impl Stats {
    pub(crate) fn new(ts: u64, value: f64, need: Need) -> Self {
        Self {
            m: Moments::keeping(value, need.spread),
            first: (ts, value),
            last: (ts, value),
            area: 0.0,
            area_kept: need.area,
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, ts: u64, value: f64) {
        debug_assert!(ts >= self.last.0, "samples arrive in time order");
        self.m.push(value);
        if self.area_kept {
            self.area += (value + self.last.1) / 2.0 * (ts - self.last.0) as f64;
        }
        self.last = (ts, value);
    }

    /// The value of `agg` for the bucket `[start, end)`, with the neighbours outside it.
    fn value(
        &self,
        agg: Aggregator,
        start: i128,
        end: i128,
        prev: Option<Sample>,
        next: Option<Sample>,
    ) -> f64 {
        match agg {
            Aggregator::First => self.first.1,
            Aggregator::Last => self.last.1,
            Aggregator::Twa => self.twa(start, end, prev, next),
            _ => self.m.value(agg).unwrap_or(f64::NAN),
        }
    }

    fn twa(&self, start: i128, end: i128, prev: Option<Sample>, next: Option<Sample>) -> f64 {
        debug_assert!(
            self.area_kept,
            "twa of a bucket that does not keep its area"
        );
        let mut area = self.area;
        let mut lo = i128::from(self.first.0);
        let mut hi = i128::from(self.last.0);
        if let Some(p) = prev.filter(|p| i128::from(p.0) < start) {
            let edge = interpolate(p, self.first, start);
            area += (edge + self.first.1) / 2.0 * (lo - start) as f64;
            lo = start;
        }
        if let Some(n) = next.filter(|n| i128::from(n.0) >= end) {
            let edge = interpolate(self.last, n, end);
            area += (self.last.1 + edge) / 2.0 * (end - hi) as f64;
            hi = end;
        }
        match hi.cmp(&lo) {
            Ordering::Greater => area / (hi - lo) as f64,
            // One instant: the curve is a point (several samples at one timestamp: their mean).
            _ => self.m.sum / self.m.count as f64,
        }
    }
}

/// One bucket's samples: statistics of its non-NaN values (`None`: only NaN so far) and the
/// number of NaN values. NaN samples count for `countNaN`/`countAll` only.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Bucket {
    stats: Option<Stats>,
    nan: u64,
    /// The newest timestamp pushed, NaN or not.
    last_ts: u64,
    need: Need,
}

impl Bucket {
    pub(crate) fn new(ts: u64, value: f64, need: Need) -> Self {
        let mut b = Self {
            stats: None,
            nan: 0,
            last_ts: ts,
            need,
        };
        b.push(ts, value);
        b
    }

    #[inline]
    pub(crate) fn push(&mut self, ts: u64, value: f64) {
        debug_assert!(ts >= self.last_ts, "samples arrive in time order");
        self.last_ts = ts;
        if value.is_nan() {
            self.nan += 1;
            return;
        }
        match &mut self.stats {
            Some(s) => s.push(ts, value),
            None => self.stats = Some(Stats::new(ts, value, self.need)),
        }
    }

    /// The first and last non-NaN samples.
    fn first(&self) -> Option<Sample> {
        self.stats.map(|s| s.first)
    }

    fn last(&self) -> Option<Sample> {
        self.stats.map(|s| s.last)
    }

    /// The value of `agg` for the bucket `[start, end)`, with the (non-NaN) neighbours outside
    /// it. A bucket of NaN values only has count 0 and NaN for every other non-NaN aggregator
    /// (as the documented reducers do; the aggregator table is silent).
    fn value(
        &self,
        agg: Aggregator,
        start: i128,
        end: i128,
        prev: Option<Sample>,
        next: Option<Sample>,
    ) -> f64 {
        match (agg, &self.stats) {
            (Aggregator::CountNan, _) => self.nan as f64,
            (Aggregator::CountAll, s) => (self.nan + s.map_or(0, |s| s.m.count)) as f64,
            (Aggregator::Count, None) => 0.0,
            (_, None) => f64::NAN,
            (_, Some(s)) => s.value(agg, start, end, prev, next),
        }
    }
}

/// One bucket after the scan.
struct Closed {
    start: i128,
    first: Option<Sample>,
    last: Option<Sample>,
    values: Vec<f64>,
}

/// Aggregates `samples` into buckets per `spec`, over the inclusive `range`.
///
/// `samples` must be in ascending timestamp order. Samples outside `range` are not aggregated;
/// the last one before `range.0` and the first one after `range.1` serve as neighbours (see the
/// module docs), so pass them when available. Rows are `(reported timestamp, one value per
/// aggregator)`, oldest first, or newest first with `reverse` (`TS.REVRANGE`). `COUNT` is the
/// caller's: truncate the result.
pub fn aggregate<I>(
    samples: I,
    spec: &AggSpec,
    range: (u64, u64),
    reverse: bool,
) -> Result<Vec<(u64, Vec<f64>)>, AggError>
where
    I: IntoIterator<Item = (u64, f64)>,
{
    let mut aggregation = Aggregation::new(spec, range)?;
    for (ts, value) in samples {
        if !aggregation.push(ts, value) {
            break;
        }
    }
    aggregation.finish(reverse)
}

/// [`aggregate`] fed one sample at a time, so a range query folds samples as it decodes them
/// instead of collecting them first (a 1,000,000-sample `Vec` was 13% of an aggregated
/// `TS.RANGE`).
#[derive(Debug)]
pub struct Aggregation<'a> {
    spec: &'a AggSpec,
    range: (u64, u64),
    need: Need,
    /// The last non-NaN sample before the range, and the first after it: the neighbours.
    before: Option<Sample>,
    after: Option<Sample>,
    /// The buckets closed so far, oldest first.
    closed: Vec<(i128, Bucket)>,
    /// The bucket the newest sample went to.
    open: Option<Open>,
}

/// The bucket samples go to, with the timestamps `[lo, hi]` that go to it: its own, clamped
/// into `u64` and into the range, so most samples are placed with two comparisons (computing
/// `bucket_start`'s 128-bit division for each was a quarter of a 1M-sample aggregation).
#[derive(Debug)]
struct Open {
    start: i128,
    lo: u64,
    hi: u64,
    bucket: Bucket,
}

impl Open {
    /// Pushes the samples at the start of `run` that go to this bucket; returns how many. The
    /// bucket is folded in a copy that stays in registers: through `&mut self` every sample's
    /// count, sum and extremes made a round trip through memory (with the call per sample, a
    /// fifth of an aggregated 1M-sample `TS.RANGE` in `perf`).
    fn fold(&mut self, run: &[chunk::Sample]) -> usize {
        let mut bucket = self.bucket;
        let mut n = 0;
        for s in run {
            if s.ts < self.lo || s.ts > self.hi {
                break;
            }
            bucket.push(s.ts, s.value);
            n += 1;
        }
        self.bucket = bucket;
        n
    }
}

impl<'a> Aggregation<'a> {
    /// An aggregation per `spec` over the inclusive `range`; refuses a spec that does not
    /// validate.
    pub fn new(spec: &'a AggSpec, range: (u64, u64)) -> Result<Self, AggError> {
        spec.validate()?;
        Ok(Self {
            spec,
            range,
            need: Need::of(&spec.aggregators),
            before: None,
            after: None,
            closed: Vec::new(),
            open: None,
        })
    }

    /// Takes the next sample, in ascending timestamp order. Returns `false` once it holds the
    /// first non-NaN sample after the range: it ignores everything after that, and the caller
    /// can stop reading.
    #[inline]
    pub fn push(&mut self, ts: u64, value: f64) -> bool {
        if let Some(o) = &mut self.open
            && o.lo <= ts
            && ts <= o.hi
        {
            o.bucket.push(ts, value);
            return true;
        }
        self.push_outside(ts, value)
    }

    /// [`Self::push`] for a run of samples in ascending timestamp order: the samples that
    /// fall in the open bucket are folded in one loop.
    pub fn push_all(&mut self, mut run: &[chunk::Sample]) -> bool {
        while let Some(first) = run.first() {
            let folded = self.open.as_mut().map_or(0, |o| o.fold(run));
            if folded > 0 {
                run = &run[folded..];
                continue;
            }
            if !self.push_outside(first.ts, first.value) {
                return false;
            }
            run = &run[1..];
        }
        true
    }

    /// A sample outside the open bucket: a neighbour, or the first of a new bucket.
    fn push_outside(&mut self, ts: u64, value: f64) -> bool {
        if self.after.is_some() {
            return false;
        }
        if ts < self.range.0 {
            // Neighbours are non-NaN samples: twa and EMPTY ignore NaN values.
            if !value.is_nan() {
                self.before = Some((ts, value));
            }
            return true;
        }
        if ts > self.range.1 {
            if value.is_nan() {
                return true;
            }
            self.after = Some((ts, value));
            // Nothing more goes to a bucket.
            self.close_open();
            return false;
        }
        let start = bucket_start(ts, self.spec.bucket_ms, self.spec.align);
        let end = start + i128::from(self.spec.bucket_ms);
        // ts is in the range and in [start, end), so lo <= ts <= hi.
        let opened = Open {
            start,
            lo: clamp_u64(start).max(self.range.0),
            hi: clamp_u64(end - 1).min(self.range.1),
            bucket: Bucket::new(ts, value, self.need),
        };
        self.close_open();
        self.open = Some(opened);
        true
    }

    fn close_open(&mut self) {
        if let Some(o) = self.open.take() {
            self.closed.push((o.start, o.bucket));
        }
    }

    /// The rows, oldest first or newest first with `reverse`.
    pub fn finish(mut self, reverse: bool) -> Result<Vec<(u64, Vec<f64>)>, AggError> {
        let spec = self.spec;
        let width = i128::from(spec.bucket_ms);
        let (before, after) = (self.before, self.after);
        self.close_open();
        let buckets = std::mem::take(&mut self.closed);
        // The next non-NaN sample after each bucket, found from the end.
        let mut next_of = vec![after; buckets.len()];
        for i in (0..buckets.len().saturating_sub(1)).rev() {
            next_of[i] = buckets[i + 1].1.first().or(next_of[i + 1]);
        }
        let mut prev = before;
        let mut closed: Vec<Closed> = Vec::with_capacity(buckets.len());
        for ((start, b), next) in buckets.into_iter().zip(next_of) {
            let values = spec
                .aggregators
                .iter()
                .map(|&a| b.value(a, start, start + width, prev, next))
                .collect();
            closed.push(Closed {
                start,
                first: b.first(),
                last: b.last(),
                values,
            });
            prev = b.last().or(prev);
        }
        let rows = if spec.empty {
            fill_empty(closed, spec, self.range, before, after)?
        } else {
            closed.into_iter().map(|c| (c.start, c.values)).collect()
        };
        let mut out: Vec<(u64, Vec<f64>)> = rows
            .into_iter()
            .map(|(start, values)| (report_ts(start, spec.bucket_ms, spec.bucket_ts), values))
            .collect();
        if reverse {
            out.reverse();
        }
        Ok(out)
    }
}

/// Interleaves empty buckets between (and, where neighbours say the series goes on, around) the
/// non-empty ones.
fn fill_empty(
    closed: Vec<Closed>,
    spec: &AggSpec,
    range: (u64, u64),
    before: Option<Sample>,
    after: Option<Sample>,
) -> Result<Vec<(i128, Vec<f64>)>, AggError> {
    let width = i128::from(spec.bucket_ms);
    let lo = match (before, closed.first()) {
        (Some(_), _) => bucket_start(range.0, spec.bucket_ms, spec.align),
        (None, Some(c)) => c.start,
        (None, None) => return Ok(Vec::new()),
    };
    let hi = match (after, closed.last()) {
        (Some(_), _) => bucket_start(range.1, spec.bucket_ms, spec.align),
        (None, Some(c)) => c.start,
        (None, None) => return Ok(Vec::new()),
    };
    if hi < lo {
        return Ok(Vec::new());
    }
    let total = (hi - lo) / width + 1;
    let empties = total - closed.len() as i128;
    if empties > i128::from(MAX_EMPTY_BUCKETS) {
        return Err(AggError::TooManyEmptyBuckets);
    }
    // The first non-NaN sample at or after each row (a row of NaN only has none of its own).
    let mut next_first = vec![after; closed.len() + 1];
    for (i, c) in closed.iter().enumerate().rev() {
        next_first[i] = c.first.or(next_first[i + 1]);
    }
    let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    let mut prev = before;
    let mut index = 0;
    let mut rows = closed.into_iter().peekable();
    let mut start = lo;
    while start <= hi {
        match rows.peek() {
            Some(c) if c.start == start => {
                let c = rows.next().expect("peeked");
                index += 1;
                prev = c.last.or(prev);
                out.push((c.start, c.values));
            }
            _ => {
                let next = next_first[index];
                let values = spec
                    .aggregators
                    .iter()
                    .map(|a| a.empty_value(start, start + width, prev, next))
                    .collect();
                out.push((start, values));
            }
        }
        start += width;
    }
    debug_assert!(
        rows.next().is_none(),
        "every non-empty bucket lies in [lo, hi]"
    );
    Ok(out)
}

/// The incremental form for a compaction rule (`TS.CREATERULE`): one aggregator, samples pushed
/// in time order, one finished `(bucket start, value)` emitted when a sample opens a later
/// bucket. The bucket start is reported clamped into `u64` (a bucket may start before 0).
///
/// The open bucket is kept in memory only; after a restart the engine rebuilds it by replaying
/// the source samples of the open bucket (plus the last sample before it, for `twa`).
#[derive(Clone, Debug, PartialEq)]
pub struct Accumulator {
    aggregator: Aggregator,
    /// What its buckets keep for `aggregator`.
    need: Need,
    bucket_ms: u64,
    align: u64,
    open: Option<(i128, Bucket)>,
    /// The last sample of the previously closed bucket: the left neighbour for `twa`.
    prev: Option<Sample>,
}

impl Accumulator {
    /// A rule aggregating into buckets of `bucket_ms` aligned to `align`.
    pub fn new(aggregator: Aggregator, bucket_ms: u64, align: u64) -> Result<Self, AggError> {
        if bucket_ms == 0 {
            return Err(AggError::ZeroBucket);
        }
        Ok(Self {
            aggregator,
            need: Need::of(&[aggregator]),
            bucket_ms,
            align,
            open: None,
            prev: None,
        })
    }

    /// The rule's aggregator.
    pub fn aggregator(&self) -> Aggregator {
        self.aggregator
    }

    /// Seeds the left neighbour used by `twa` (the last source sample before the open bucket),
    /// e.g. when rebuilding after a restart. Only valid before the first [`Self::push`].
    pub fn set_prev(&mut self, ts: u64, value: f64) {
        debug_assert!(
            self.open.is_none(),
            "seed the neighbour before pushing samples"
        );
        self.prev = Some((ts, value));
    }

    /// Adds one sample. Returns the finished previous bucket when `ts` opens a later one.
    /// NaN values count for `countNaN`/`countAll` only; a NaN that opens a later bucket is not
    /// used as the closed bucket's right neighbour for `twa` (the engine's rule refresh uses
    /// [`aggregate`], which looks further). A sample older than the open bucket is refused:
    /// re-aggregating a closed bucket is the engine's job (it re-reads the source range).
    pub fn push(&mut self, ts: u64, value: f64) -> Result<Option<(u64, f64)>, AggError> {
        let start = bucket_start(ts, self.bucket_ms, self.align);
        match &mut self.open {
            Some((s, b)) if *s == start => {
                if ts < b.last_ts {
                    return Err(AggError::OutOfOrder);
                }
                b.push(ts, value);
                Ok(None)
            }
            Some((s, _)) if start < *s => Err(AggError::OutOfOrder),
            Some((s, b)) => {
                let (s, b) = (*s, *b);
                let end = s + i128::from(self.bucket_ms);
                let next = Some((ts, value)).filter(|n| !n.1.is_nan());
                let v = b.value(self.aggregator, s, end, self.prev, next);
                self.prev = b.last().or(self.prev);
                self.open = Some((start, Bucket::new(ts, value, self.need)));
                Ok(Some((clamp_u64(s), v)))
            }
            None => {
                self.open = Some((start, Bucket::new(ts, value, self.need)));
                Ok(None)
            }
        }
    }

    /// The value of the open (possibly partial) bucket, for `LATEST`: `(bucket start, value)`.
    pub fn current(&self) -> Option<(u64, f64)> {
        let (s, b) = self.open.as_ref()?;
        let end = s + i128::from(self.bucket_ms);
        Some((
            clamp_u64(*s),
            b.value(self.aggregator, *s, end, self.prev, None),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn spec(aggs: &[Aggregator], bucket_ms: u64, align: u64) -> AggSpec {
        AggSpec {
            aggregators: aggs.to_vec(),
            bucket_ms,
            align,
            bucket_ts: BucketTimestamp::Start,
            empty: false,
        }
    }

    /// Single-aggregator rows as `(ts, value)`.
    fn run(samples: &[Sample], spec: &AggSpec, range: (u64, u64)) -> Vec<(u64, f64)> {
        aggregate(samples.iter().copied(), spec, range, false)
            .unwrap()
            .into_iter()
            .map(|(t, v)| {
                assert_eq!(v.len(), 1);
                (t, v[0])
            })
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
    }

    fn assert_rows(got: &[(u64, f64)], want: &[(u64, f64)]) {
        assert_eq!(got.len(), want.len(), "got {got:?} want {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.0, w.0, "got {got:?} want {want:?}");
            assert!(close(g.1, w.1), "got {got:?} want {want:?}");
        }
    }

    #[test]
    fn parse_names_case_insensitively() {
        for a in Aggregator::ALL {
            assert_eq!(Aggregator::parse(a.name().as_bytes()), Ok(a));
            assert_eq!(Aggregator::parse(a.name().to_uppercase().as_bytes()), Ok(a));
        }
        assert_eq!(
            Aggregator::parse(b"median"),
            Err(AggError::UnknownAggregator)
        );
        assert_eq!(Aggregator::parse(b""), Err(AggError::UnknownAggregator));
        assert_eq!(
            Aggregator::parse_list(b"FIRST,max,Min,last"),
            Ok(vec![
                Aggregator::First,
                Aggregator::Max,
                Aggregator::Min,
                Aggregator::Last
            ])
        );
        assert_eq!(
            Aggregator::parse_list(b"avg,"),
            Err(AggError::UnknownAggregator)
        );
        let many = vec!["avg"; MAX_AGGREGATORS + 1].join(",");
        assert_eq!(
            Aggregator::parse_list(many.as_bytes()),
            Err(AggError::AggregatorCount)
        );
        assert_eq!(BucketTimestamp::parse(b"~"), Some(BucketTimestamp::Mid));
        assert_eq!(BucketTimestamp::parse(b"END"), Some(BucketTimestamp::End));
        assert_eq!(BucketTimestamp::parse(b"-"), Some(BucketTimestamp::Start));
        assert_eq!(BucketTimestamp::parse(b"middle"), None);
    }

    #[test]
    fn zero_bucket_and_no_aggregator_are_refused() {
        assert_eq!(
            aggregate([(1, 1.0)], &spec(&[Aggregator::Avg], 0, 0), (0, 10), false),
            Err(AggError::ZeroBucket)
        );
        assert_eq!(
            aggregate([(1, 1.0)], &spec(&[], 10, 0), (0, 10), false),
            Err(AggError::AggregatorCount)
        );
        assert_eq!(
            Accumulator::new(Aggregator::Avg, 0, 0),
            Err(AggError::ZeroBucket)
        );
    }

    /// redis.io time series page, "Bucket alignment": sensor3, min over 25 ms.
    #[test]
    fn docs_bucket_alignment_example() {
        let s: Vec<Sample> = (1..=7).map(|i| (i * 10, (i * 1000) as f64)).collect();
        let rows = run(&s, &spec(&[Aggregator::Min], 25, 0), (10, 70));
        assert_rows(&rows, &[(0, 1000.0), (25, 3000.0), (50, 5000.0)]);
        let rows = run(&s, &spec(&[Aggregator::Min], 25, 10), (10, 70));
        assert_rows(&rows, &[(10, 1000.0), (35, 4000.0), (60, 6000.0)]);
    }

    /// redis.io `TS.RANGE`, "Align aggregation buckets": ALIGN 10 and ALIGN - (from = 5).
    #[test]
    fn docs_stock_alignment_example() {
        let mut s = Vec::new();
        for base in [1000u64, 2000, 3000] {
            for i in 0..3 {
                s.push((base + 10 * i, (base / 10 + 10 * i) as f64));
            }
        }
        let rows = run(&s, &spec(&[Aggregator::Min], 20, 10), (0, u64::MAX));
        let want = [(990, 100.0), (1010, 110.0), (1990, 200.0), (2010, 210.0)];
        assert_rows(&rows[..4], &want);
        assert_rows(&rows[4..], &[(2990, 300.0), (3010, 310.0)]);
        let rows = run(&s, &spec(&[Aggregator::Min], 20, 5), (5, u64::MAX));
        assert_eq!(
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            [985, 1005, 1985, 2005, 2985, 3005]
        );
    }

    /// redis.io time series page: `TS.RANGE rg:2 - + AGGREGATION avg 2`.
    #[test]
    fn docs_rain_gauge_avg() {
        let s = [(0, 1.8), (1, 2.1), (2, 2.3), (3, 1.9), (4, 1.78)];
        let rows = run(&s, &spec(&[Aggregator::Avg], 2, 0), (0, u64::MAX));
        assert_rows(&rows, &[(0, 1.95), (2, 2.1), (4, 1.78)]);
    }

    #[test]
    fn every_aggregator_on_one_bucket() {
        let s: Vec<Sample> = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]
            .into_iter()
            .enumerate()
            .map(|(i, v)| (100 + i as u64, v))
            .collect();
        let want = [
            (Aggregator::Avg, 5.0),
            (Aggregator::Sum, 40.0),
            (Aggregator::Min, 2.0),
            (Aggregator::Max, 9.0),
            (Aggregator::Range, 7.0),
            (Aggregator::Count, 8.0),
            (Aggregator::First, 2.0),
            (Aggregator::Last, 9.0),
            (Aggregator::VarP, 4.0),
            (Aggregator::StdP, 2.0),
            (Aggregator::VarS, 32.0 / 7.0),
            (Aggregator::StdS, (32.0f64 / 7.0).sqrt()),
            // Trapezoids over 100..=107: (3 + 4 + 4 + 4.5 + 5 + 6 + 8) / 7.
            (Aggregator::Twa, 34.5 / 7.0),
        ];
        let aggs: Vec<Aggregator> = want.iter().map(|w| w.0).collect();
        let rows = aggregate(s.iter().copied(), &spec(&aggs, 1000, 0), (0, 1000), false).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, 0);
        for ((agg, w), got) in want.iter().zip(&rows[0].1) {
            assert!(close(*got, *w), "{agg:?}: got {got} want {w}");
        }
    }

    #[test]
    fn one_sample_variance_is_zero() {
        for agg in [
            Aggregator::VarS,
            Aggregator::StdS,
            Aggregator::VarP,
            Aggregator::StdP,
        ] {
            assert_rows(
                &run(&[(3, 7.5)], &spec(&[agg], 10, 0), (0, 10)),
                &[(0, 0.0)],
            );
        }
        assert_rows(
            &run(&[(3, 7.5)], &spec(&[Aggregator::Twa], 10, 0), (0, 10)),
            &[(0, 7.5)],
        );
    }

    #[test]
    fn bucket_timestamp_modes() {
        let s = [(13, 1.0), (27, 2.0)];
        let mut sp = spec(&[Aggregator::Sum], 10, 0);
        assert_rows(&run(&s, &sp, (0, 100)), &[(10, 1.0), (20, 2.0)]);
        sp.bucket_ts = BucketTimestamp::End;
        assert_rows(&run(&s, &sp, (0, 100)), &[(20, 1.0), (30, 2.0)]);
        sp.bucket_ts = BucketTimestamp::Mid;
        assert_rows(&run(&s, &sp, (0, 100)), &[(15, 1.0), (25, 2.0)]);
        sp.bucket_ms = 5; // mid of [10, 15) is 12.5, rounded down
        assert_rows(&run(&s, &sp, (0, 100)), &[(12, 1.0), (27, 2.0)]);
    }

    #[test]
    fn reverse_gives_newest_first() {
        let s = [(1, 1.0), (11, 2.0), (21, 3.0)];
        let rows = aggregate(s, &spec(&[Aggregator::Last], 10, 0), (0, 100), true).unwrap();
        assert_eq!(rows, vec![(20, vec![3.0]), (10, vec![2.0]), (0, vec![1.0])]);
    }

    #[test]
    fn samples_outside_the_range_are_not_aggregated() {
        let s = [(1, 100.0), (5, 1.0), (9, 2.0), (15, 100.0)];
        assert_rows(
            &run(&s, &spec(&[Aggregator::Sum], 10, 0), (5, 14)),
            &[(0, 3.0)],
        );
        assert!(run(&s, &spec(&[Aggregator::Sum], 10, 0), (10, 5)).is_empty());
    }

    #[test]
    fn several_aggregators_make_candles() {
        let s = [
            (0, 10.0),
            (1, 12.0),
            (2, 9.0),
            (3, 11.0),
            (10, 11.0),
            (14, 15.0),
        ];
        let aggs = Aggregator::parse_list(b"first,max,min,last").unwrap();
        let rows = aggregate(s, &spec(&aggs, 10, 0), (0, 100), false).unwrap();
        assert_eq!(
            rows,
            vec![
                (0, vec![10.0, 12.0, 9.0, 11.0]),
                (10, vec![11.0, 15.0, 11.0, 15.0])
            ]
        );
    }

    #[test]
    fn twa_interpolates_at_bucket_edges() {
        // Neighbours (5, 0) and (25, 6) lie outside the range: they only shape the edges.
        let s = [(5, 0.0), (12, 2.0), (16, 4.0), (25, 6.0)];
        let left = 2.0 * 5.0 / 7.0; // line (5,0)-(12,2) at 10
        let right = 4.0 + 2.0 * 4.0 / 9.0; // line (16,4)-(25,6) at 20
        let area = (left + 2.0) / 2.0 * 2.0 + 3.0 * 4.0 + (4.0 + right) / 2.0 * 4.0;
        let rows = run(&s, &spec(&[Aggregator::Twa], 10, 0), (10, 19));
        assert_rows(&rows, &[(10, area / 10.0)]);
        // Without neighbours the window is the samples' own span.
        let rows = run(&s[1..3], &spec(&[Aggregator::Twa], 10, 0), (10, 19));
        assert_rows(&rows, &[(10, 3.0)]);
        // A neighbour inside the bucket (outside the range) is not an edge neighbour.
        let s = [(11, 100.0), (12, 2.0), (16, 4.0)];
        assert_rows(
            &run(&s, &spec(&[Aggregator::Twa], 10, 0), (12, 19)),
            &[(10, 3.0)],
        );
    }

    #[test]
    fn empty_buckets_between_samples() {
        let s = [(0, 1.0), (35, 4.0)];
        let mut sp = spec(&Aggregator::ALL, 10, 0);
        sp.empty = true;
        let rows = aggregate(s, &sp, (0, 100), false).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            [0, 10, 20, 30]
        );
        let col = |agg: Aggregator| -> Vec<f64> {
            let i = Aggregator::ALL.iter().position(|a| *a == agg).unwrap();
            rows.iter().map(|r| r.1[i]).collect()
        };
        let nan = f64::NAN;
        let check = |got: Vec<f64>, want: [f64; 4]| {
            assert!(
                got.iter().zip(want).all(|(g, w)| close(*g, w)),
                "{got:?} vs {want:?}"
            );
        };
        check(col(Aggregator::Sum), [1.0, 0.0, 0.0, 4.0]);
        check(col(Aggregator::Count), [1.0, 0.0, 0.0, 1.0]);
        check(col(Aggregator::Last), [1.0, 1.0, 1.0, 4.0]);
        check(col(Aggregator::Avg), [1.0, nan, nan, 4.0]);
        check(col(Aggregator::First), [1.0, nan, nan, 4.0]);
        check(col(Aggregator::VarS), [0.0, nan, nan, 0.0]);
        // Line (0,1)-(35,4) averaged over [10,20] and [20,30]: its value at 15 and at 25.
        let line = |t: f64| 1.0 + 3.0 * t / 35.0;
        let twa = col(Aggregator::Twa);
        assert!(
            close(twa[1], line(15.0)) && close(twa[2], line(25.0)),
            "{twa:?}"
        );
    }

    #[test]
    fn empty_buckets_extend_to_the_range_where_the_series_goes_on() {
        let s = [(0, 1.0), (35, 4.0), (60, 7.0)];
        let mut sp = spec(&[Aggregator::Last, Aggregator::Count], 10, 0);
        sp.empty = true;
        let rows = aggregate(s, &sp, (10, 45), false).unwrap();
        let want = vec![
            (10, vec![1.0, 0.0]),
            (20, vec![1.0, 0.0]),
            (30, vec![4.0, 1.0]),
            (40, vec![4.0, 0.0]),
        ];
        assert_eq!(rows, want);
        // Nothing in range but samples on both sides: every bucket of the range is empty.
        let rows = aggregate([(0, 1.0), (60, 7.0)], &sp, (10, 25), false).unwrap();
        assert_eq!(rows, vec![(10, vec![1.0, 0.0]), (20, vec![1.0, 0.0])]);
        // Only an earlier sample: the series ended before the range, nothing is reported.
        assert!(
            aggregate([(0, 1.0)], &sp, (10, 25), false)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn too_many_empty_buckets_is_an_error() {
        let mut sp = spec(&[Aggregator::Count], 1, 0);
        sp.empty = true;
        let s = [(0, 1.0), (MAX_EMPTY_BUCKETS + 1, 1.0)];
        assert_eq!(
            aggregate(s, &sp, (0, u64::MAX), false).unwrap().len() as u64,
            MAX_EMPTY_BUCKETS + 2
        );
        let s = [(0, 1.0), (MAX_EMPTY_BUCKETS + 2, 1.0)];
        assert_eq!(
            aggregate(s, &sp, (0, u64::MAX), false),
            Err(AggError::TooManyEmptyBuckets)
        );
        let s = [(0, 1.0), (u64::MAX, 1.0)];
        assert_eq!(
            aggregate(s, &sp, (0, u64::MAX), false),
            Err(AggError::TooManyEmptyBuckets)
        );
    }

    #[test]
    fn extreme_timestamps_do_not_panic_and_clamp() {
        let s = [(0, 1.0), (5, 2.0), (u64::MAX - 1, 3.0), (u64::MAX, 4.0)];
        for bucket_ms in [1, 2, 7, u64::MAX / 2, u64::MAX - 1, u64::MAX] {
            for align in [0, 1, 10, u64::MAX - 1, u64::MAX] {
                for bt in [
                    BucketTimestamp::Start,
                    BucketTimestamp::End,
                    BucketTimestamp::Mid,
                ] {
                    for empty in [false, true] {
                        let sp = AggSpec {
                            aggregators: Aggregator::ALL.to_vec(),
                            bucket_ms,
                            align,
                            bucket_ts: bt,
                            empty,
                        };
                        let r = aggregate(s, &sp, (0, u64::MAX), false);
                        if let Ok(rows) = r {
                            assert!(rows.windows(2).all(|w| w[0].0 <= w[1].0));
                        }
                        let mut acc = Accumulator::new(Aggregator::Twa, bucket_ms, align).unwrap();
                        for (t, v) in s {
                            acc.push(t, v).unwrap();
                        }
                        assert!(acc.current().is_some());
                    }
                }
            }
        }
        // Timestamp 5, align 10, bucket 20: the bucket is [-10, 10); its start reports as 0.
        assert_rows(
            &run(&[(5, 2.0)], &spec(&[Aggregator::Sum], 20, 10), (0, 9)),
            &[(0, 2.0)],
        );
        let mut sp = spec(&[Aggregator::Sum], u64::MAX, 0);
        sp.bucket_ts = BucketTimestamp::End;
        assert_rows(
            &run(&[(u64::MAX, 2.0)], &sp, (0, u64::MAX)),
            &[(u64::MAX, 2.0)],
        );
    }

    #[test]
    fn nan_samples_count_only_for_count_nan_and_count_all() {
        // Redis 8.6 (redis.io TS.RANGE): every aggregator works on the non-NaN values,
        // countNaN counts the NaN ones and countAll all of them. Until Redis 8.6 NaN was refused
        // at write time and these rows were skipped; a bucket of NaN only is now reported.
        let s = [(1, 1.0), (2, f64::NAN), (3, 3.0), (12, f64::NAN)];
        let aggs = [
            Aggregator::Count,
            Aggregator::CountNan,
            Aggregator::CountAll,
            Aggregator::Avg,
            Aggregator::Sum,
            Aggregator::Last,
            Aggregator::Twa,
        ];
        let rows = aggregate(s, &spec(&aggs, 10, 0), (0, 19), false).unwrap();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0].0, 0);
        assert_eq!(&rows[0].1[..6], &[2.0, 1.0, 3.0, 2.0, 4.0, 3.0]);
        // twa ignores the NaN: the line from (1,1) to (3,3) averages 2.
        assert!(close(rows[0].1[6], 2.0), "{rows:?}");
        assert_eq!(rows[1].0, 10);
        assert_eq!(&rows[1].1[..3], &[0.0, 1.0, 1.0]);
        assert!(rows[1].1[3..].iter().all(|v| v.is_nan()), "{rows:?}");
        // A NaN is never a neighbour: EMPTY's `last` is the last non-NaN value before.
        let mut sp = spec(&[Aggregator::Last, Aggregator::CountAll], 10, 0);
        sp.empty = true;
        let s = [(1, 1.0), (2, f64::NAN), (25, 5.0)];
        let rows = aggregate(s, &sp, (0, 29), false).unwrap();
        assert_eq!(
            rows,
            vec![
                (0, vec![1.0, 2.0]),
                (10, vec![1.0, 0.0]),
                (20, vec![5.0, 1.0])
            ]
        );
    }

    #[test]
    fn accumulator_emits_closed_buckets() {
        // The compaction example of the redis.io time series page: min over 3 "days".
        let mut acc = Accumulator::new(Aggregator::Min, 3, 0).unwrap();
        assert_eq!(acc.push(0, 75.0), Ok(None));
        assert_eq!(acc.push(1, 77.0), Ok(None));
        assert_eq!(acc.push(2, 78.0), Ok(None));
        assert_eq!(acc.current(), Some((0, 75.0)));
        assert_eq!(acc.push(3, 79.0), Ok(Some((0, 75.0))));
        assert_eq!(acc.current(), Some((3, 79.0)));
        assert_eq!(acc.push(2, 1.0), Err(AggError::OutOfOrder));
        assert_eq!(acc.push(10, 1.0), Ok(Some((3, 79.0))));
        assert_eq!(acc.aggregator(), Aggregator::Min);
    }

    #[test]
    fn accumulator_twa_uses_the_previous_bucket_and_the_crossing_sample() {
        let mut acc = Accumulator::new(Aggregator::Twa, 10, 0).unwrap();
        acc.set_prev(5, 0.0);
        assert_eq!(acc.push(12, 2.0), Ok(None));
        assert_eq!(acc.push(16, 4.0), Ok(None));
        let (start, v) = acc.push(25, 6.0).unwrap().unwrap();
        let left = 2.0 * 5.0 / 7.0;
        let right = 4.0 + 2.0 * 4.0 / 9.0;
        let area = (left + 2.0) / 2.0 * 2.0 + 3.0 * 4.0 + (4.0 + right) / 2.0 * 4.0;
        assert_eq!(start, 10);
        assert!(close(v, area / 10.0), "{v}");
    }

    // ---- model-based tests -------------------------------------------------------------

    fn naive(
        agg: Aggregator,
        bucket: &[Sample],
        start: i128,
        end: i128,
        prev: Option<Sample>,
        next: Option<Sample>,
    ) -> f64 {
        let vals: Vec<f64> = bucket.iter().map(|s| s.1).collect();
        let n = vals.len() as f64;
        let mean = vals.iter().sum::<f64>() / n;
        let ss: f64 = vals.iter().map(|v| (v - mean) * (v - mean)).sum();
        let var_s = if vals.len() < 2 { 0.0 } else { ss / (n - 1.0) };
        let max = vals.iter().copied().fold(f64::MIN, f64::max);
        let min = vals.iter().copied().fold(f64::MAX, f64::min);
        match agg {
            Aggregator::Avg => mean,
            Aggregator::Sum => vals.iter().sum(),
            Aggregator::Min => min,
            Aggregator::Max => max,
            Aggregator::Range => max - min,
            // The model's samples hold no NaN.
            Aggregator::Count | Aggregator::CountAll => n,
            Aggregator::CountNan => 0.0,
            Aggregator::First => vals[0],
            Aggregator::Last => vals[vals.len() - 1],
            Aggregator::StdP => (ss / n).sqrt(),
            Aggregator::StdS => var_s.sqrt(),
            Aggregator::VarP => ss / n,
            Aggregator::VarS => var_s,
            Aggregator::Twa => {
                let line = |a: Sample, b: Sample, t: f64| {
                    a.1 + (b.1 - a.1) * (t - a.0 as f64) / (b.0 as f64 - a.0 as f64)
                };
                let mut pts: Vec<(f64, f64)> = bucket.iter().map(|s| (s.0 as f64, s.1)).collect();
                if let Some(p) = prev.filter(|p| i128::from(p.0) < start) {
                    pts.insert(0, (start as f64, line(p, bucket[0], start as f64)));
                }
                if let Some(q) = next.filter(|q| i128::from(q.0) >= end) {
                    pts.push((end as f64, line(bucket[bucket.len() - 1], q, end as f64)));
                }
                let width = pts[pts.len() - 1].0 - pts[0].0;
                if width == 0.0 {
                    return mean;
                }
                pts.windows(2)
                    .map(|w| (w[0].1 + w[1].1) / 2.0 * (w[1].0 - w[0].0))
                    .sum::<f64>()
                    / width
            }
        }
    }

    /// Groups in-range samples with a BTreeMap and computes every aggregator directly.
    fn model(all: &[Sample], sp: &AggSpec, range: (u64, u64)) -> Vec<(u64, Vec<f64>)> {
        let w = i128::from(sp.bucket_ms);
        let rem = i128::from(sp.align % sp.bucket_ms);
        let start_of = |t: u64| rem + (i128::from(t) - rem).div_euclid(w) * w;
        let mut buckets: BTreeMap<i128, Vec<usize>> = BTreeMap::new();
        for (i, s) in all.iter().enumerate() {
            if s.0 >= range.0 && s.0 <= range.1 {
                buckets.entry(start_of(s.0)).or_default().push(i);
            }
        }
        let mut rows: BTreeMap<i128, Vec<f64>> = BTreeMap::new();
        for (&start, idx) in &buckets {
            let bucket: Vec<Sample> = idx.iter().map(|&i| all[i]).collect();
            let prev = idx[0].checked_sub(1).map(|i| all[i]);
            let next = all.get(idx[idx.len() - 1] + 1).copied();
            let vals = sp
                .aggregators
                .iter()
                .map(|&a| naive(a, &bucket, start, start + w, prev, next))
                .collect();
            rows.insert(start, vals);
        }
        if sp.empty {
            let before = all.iter().any(|s| s.0 < range.0);
            let after = all.iter().any(|s| s.0 > range.1);
            let lo = if before {
                Some(start_of(range.0))
            } else {
                rows.keys().next().copied()
            };
            let hi = if after {
                Some(start_of(range.1))
            } else {
                rows.keys().last().copied()
            };
            if let (Some(lo), Some(hi)) = (lo, hi) {
                let mut s = lo;
                while s <= hi {
                    rows.entry(s).or_insert_with(|| {
                        // Neighbours come from the range plus the one sample past each end.
                        let visible: Vec<Sample> = all
                            .iter()
                            .copied()
                            .filter(|x| x.0 >= range.0 && x.0 <= range.1)
                            .chain(all.iter().copied().rfind(|x| x.0 < range.0))
                            .chain(all.iter().copied().find(|x| x.0 > range.1))
                            .collect();
                        let prev = visible
                            .iter()
                            .filter(|x| i128::from(x.0) < s)
                            .max_by_key(|x| x.0)
                            .copied();
                        let next = visible
                            .iter()
                            .filter(|x| i128::from(x.0) >= s + w)
                            .min_by_key(|x| x.0)
                            .copied();
                        sp.aggregators
                            .iter()
                            .map(|a| match a {
                                Aggregator::Sum
                                | Aggregator::Count
                                | Aggregator::CountNan
                                | Aggregator::CountAll => 0.0,
                                Aggregator::Last => prev.map_or(f64::NAN, |p| p.1),
                                Aggregator::Twa => match (prev, next) {
                                    (Some(p), Some(q)) => {
                                        let mid = (s as f64) + (w as f64) / 2.0;
                                        p.1 + (q.1 - p.1) * (mid - p.0 as f64)
                                            / (q.0 as f64 - p.0 as f64)
                                    }
                                    _ => f64::NAN,
                                },
                                _ => f64::NAN,
                            })
                            .collect()
                    });
                    s += w;
                }
            }
        }
        rows.into_iter()
            .map(|(s, v)| (report_ts(s, sp.bucket_ms, sp.bucket_ts), v))
            .collect()
    }

    fn arb_samples() -> impl Strategy<Value = Vec<Sample>> {
        proptest::collection::btree_map(0u64..400, -1000i32..1000, 0..60).prop_map(|m| {
            m.into_iter()
                .map(|(t, v)| (t, f64::from(v) / 8.0))
                .collect()
        })
    }

    fn arb_spec() -> impl Strategy<Value = AggSpec> {
        (
            proptest::collection::vec(proptest::sample::select(Aggregator::ALL.to_vec()), 1..4),
            1u64..60,
            0u64..200,
            proptest::sample::select(vec![
                BucketTimestamp::Start,
                BucketTimestamp::End,
                BucketTimestamp::Mid,
            ]),
            any::<bool>(),
        )
            .prop_map(
                |(aggregators, bucket_ms, align, bucket_ts, empty)| AggSpec {
                    aggregators,
                    bucket_ms,
                    align,
                    bucket_ts,
                    empty,
                },
            )
    }

    proptest! {
        #[test]
        fn aggregate_matches_the_naive_model(
            samples in arb_samples(),
            sp in arb_spec(),
            a in 0u64..450,
            b in 0u64..450,
            reverse in any::<bool>(),
        ) {
            let range = (a.min(b), a.max(b));
            let got = aggregate(samples.iter().copied(), &sp, range, reverse).unwrap();
            let mut want = model(&samples, &sp, range);
            if reverse {
                want.reverse();
            }
            prop_assert_eq!(got.len(), want.len(), "got {:?} want {:?}", got, want);
            for (g, w) in got.iter().zip(&want) {
                prop_assert_eq!(g.0, w.0);
                for (x, y) in g.1.iter().zip(&w.1) {
                    prop_assert!(close(*x, *y), "got {:?} want {:?}", got, want);
                }
            }
        }

        #[test]
        fn accumulator_agrees_with_aggregate(
            samples in arb_samples(),
            agg in proptest::sample::select(Aggregator::ALL.to_vec()),
            bucket_ms in 1u64..60,
            align in 0u64..200,
        ) {
            let mut acc = Accumulator::new(agg, bucket_ms, align).unwrap();
            let mut got = Vec::new();
            for &(t, v) in &samples {
                got.extend(acc.push(t, v).unwrap());
            }
            got.extend(acc.current());
            let want = run(&samples, &spec(&[agg], bucket_ms, align), (0, u64::MAX));
            prop_assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                prop_assert_eq!(g.0, w.0);
                prop_assert!(close(g.1, w.1), "got {:?} want {:?}", got, want);
            }
        }

        #[test]
        fn aggregate_never_panics(
            samples in proptest::collection::btree_map(any::<u64>(), -1e6f64..1e6, 0..20),
            bucket_ms in prop_oneof![1u64..10, any::<u64>().prop_map(|b| b.max(1))],
            align in any::<u64>(),
            a in any::<u64>(),
            b in any::<u64>(),
            empty in any::<bool>(),
        ) {
            let sp = AggSpec {
                aggregators: Aggregator::ALL.to_vec(),
                bucket_ms,
                align,
                bucket_ts: BucketTimestamp::Mid,
                empty,
            };
            let _ = aggregate(samples.into_iter(), &sp, (a.min(b), a.max(b)), false);
        }
    }
}
