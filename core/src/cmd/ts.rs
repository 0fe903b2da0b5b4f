//! Parsing of the `TS.*` commands and the seed dialect's `TSDB_SET`/`TSDB_GET` into typed
//! commands, with RedisTimeSeries' documented option syntax and `ERR TSDB: ...` error texts.
//!
//! Parsing validates everything that does not depend on state (numbers, keywords, option
//! combinations, aggregator names, FILTER syntax), so the engine only refuses for reasons of
//! state (a missing key, a BLOCK duplicate, retention).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::args::{Args, float, int, is};
use super::series::{
    CHUNK_SIZE_MAX, CHUNK_SIZE_MIN, DupPolicy, LABEL_BYTES_MAX, LABELS_PER_SERIES_MAX,
};
use super::{Command, CommandError, ReadCmd, WriteCmd};

/// The most samples one `TS.MADD` may carry.
pub const MADD_SAMPLES_MAX: usize = 100_000;
/// The most timestamps `FILTER_BY_TS` accepts (RedisTimeSeries documents 128).
pub const FILTER_BY_TS_MAX: usize = 128;
/// The most `FILTER` expressions one query carries.
pub const FILTER_EXPRS_MAX: usize = 256;
/// The most aggregators one `AGGREGATION` may name.
pub const AGGREGATORS_MAX: usize = 16;

/// Aggregator names as RedisTimeSeries documents them (lower case).
pub const AGGREGATORS: &[&str] = &[
    "avg", "sum", "min", "max", "range", "count", "countnan", "countall", "first", "last", "std.p",
    "std.s", "var.p", "var.s", "twa",
];

/// Reducer names after `GROUPBY label REDUCE`, as documented (lower case).
pub const REDUCERS: &[&str] = &[
    "avg", "sum", "min", "max", "range", "count", "countnan", "countall", "std.p", "std.s",
    "var.p", "var.s",
];

fn tsdb(msg: &str) -> CommandError {
    CommandError::other(format!("ERR TSDB: {msg}"))
}

/// Options shared by TS.CREATE, TS.ALTER, TS.ADD, TS.INCRBY and TS.DECRBY; `None`: not given.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesOpts {
    pub retention_ms: Option<u64>,
    pub uncompressed: Option<bool>,
    pub chunk_size: Option<u64>,
    pub duplicate_policy: Option<DupPolicy>,
    pub ignore: Option<(u64, f64)>,
    pub labels: Option<Vec<(Bytes, Bytes)>>,
}

/// A `TS.*` state change, as it goes into the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TsWrite {
    Create {
        key: Bytes,
        opts: SeriesOpts,
    },
    Alter {
        key: Bytes,
        opts: SeriesOpts,
    },
    /// `ts: None` is `*`: the entry's timestamp.
    Add {
        key: Bytes,
        ts: Option<u64>,
        value: f64,
        opts: SeriesOpts,
        on_duplicate: Option<DupPolicy>,
    },
    MAdd(Vec<(Bytes, Option<u64>, f64)>),
    IncrBy {
        key: Bytes,
        by: f64,
        ts: Option<u64>,
        opts: SeriesOpts,
    },
    Del {
        key: Bytes,
        from: u64,
        to: u64,
    },
    CreateRule {
        src: Bytes,
        dst: Bytes,
        aggregator: String,
        bucket_ms: u64,
        align_ms: u64,
    },
    DeleteRule {
        src: Bytes,
        dst: Bytes,
    },
    /// `TS.MDEL from to FILTER ...` (tickdb): the raw FILTER expressions, already validated.
    MDel {
        from: u64,
        to: u64,
        filter: Vec<Bytes>,
    },
    /// `TSDB_SET key ts value`.
    SeedSet {
        key: Bytes,
        ts: u64,
        value: f64,
    },
    /// `TS.MADD` with elements refused at parse time (a bad timestamp or value): each of
    /// those answers with its error, the others are added (redis.io TS.MADD replies per
    /// element). A TS.MADD without such elements stays [`TsWrite::MAdd`]; this variant comes
    /// last so that entries already in a log keep their encoding.
    MAddPartial(Vec<MAddItem>),
    /// `BATCH_FLUSH`: a connection's `BATCH_SET` samples (key, timestamp, value), each
    /// applied as `TSDB_SET` applies one (the series created if missing). Replies per sample
    /// (`+OK` or its error); the client gets the count that did not fail. Comes last, as
    /// [`TsWrite::MAddPartial`] does. Older logs hold a flush as one
    /// [`crate::cmd::WriteCmd::BatchAdd`] per sample, which still applies.
    Batch(Vec<(Bytes, u64, f64)>),
}

/// One element of [`TsWrite::MAddPartial`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MAddItem {
    /// `key timestamp|* value`, as in [`TsWrite::MAdd`].
    Sample(Bytes, Option<u64>, f64),
    /// The element's error reply.
    Refused(String),
}

/// ALIGN of an aggregation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Start,
    End,
    At(u64),
}

/// BUCKETTIMESTAMP of an aggregation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BucketTs {
    Start,
    End,
    Mid,
}

/// `AGGREGATION aggregator[,aggregator...] bucketDuration` with its modifiers.
#[derive(Clone, Debug, PartialEq)]
pub struct AggQuery {
    pub aggregators: Vec<String>,
    pub bucket_ms: u64,
    pub align: Align,
    pub bucket_ts: BucketTs,
    pub empty: bool,
}

/// The options of TS.RANGE / TS.REVRANGE / TS.MRANGE / TS.MREVRANGE.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeQuery {
    pub from: u64,
    pub to: u64,
    pub latest: bool,
    pub filter_by_ts: Option<Vec<u64>>,
    pub filter_by_value: Option<(f64, f64)>,
    pub count: Option<u64>,
    pub aggregation: Option<AggQuery>,
}

/// Which labels a multi-series reply carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LabelSel {
    #[default]
    None,
    All,
    Selected(Vec<Bytes>),
}

/// A `TS.*` read.
#[derive(Clone, Debug, PartialEq)]
pub enum TsRead {
    Get {
        key: Bytes,
        latest: bool,
    },
    MGet {
        latest: bool,
        labels: LabelSel,
        filter: Vec<Bytes>,
    },
    Range {
        key: Bytes,
        reverse: bool,
        query: RangeQuery,
    },
    MRange {
        reverse: bool,
        query: RangeQuery,
        labels: LabelSel,
        filter: Vec<Bytes>,
        /// GROUPBY label REDUCE reducer.
        group_by: Option<(Bytes, String)>,
        /// EXCLUDEEMPTY (Redis 8.10): leave out series with no sample in the range.
        exclude_empty: bool,
    },
    /// `TS.NRANGE`/`TS.NREVRANGE numkeys key... from to [options]` (Redis 8.10): the keys'
    /// rows joined by timestamp. With AGGREGATION, `per_key` holds each key's aggregators.
    NRange {
        keys: Vec<Bytes>,
        reverse: bool,
        query: RangeQuery,
        per_key: Vec<Vec<String>>,
    },
    QueryIndex(Vec<Bytes>),
    Info {
        key: Bytes,
    },
    /// `TS.QUERYLABELS LABELS [FILTER ...]` (label names, `label: None`) or
    /// `TS.QUERYLABELS VALUES label [FILTER ...]` (that label's values); without FILTER over
    /// every indexed series.
    QueryLabels {
        label: Option<Bytes>,
        filter: Option<Vec<Bytes>>,
    },
    /// `TS.READ key timestamp [BLOCK ms min_count] [MAX_COUNT n]` (Redis 8.10): the oldest
    /// samples at or after a cursor; with `block` the node waits for `min_count` of them
    /// (node/blocking.rs).
    Read(ReadFrom),
    /// `TSDB_GET key from to`.
    SeedGet {
        key: Bytes,
        from: u64,
        to: u64,
    },
}

/// Where `TS.READ` starts reading: a timestamp or a sentinel the node resolves once, when the
/// command starts (so the cursor stays put while the client waits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// A literal timestamp (inclusive).
    At(u64),
    /// `-`: the earliest sample's timestamp (0 for an empty or missing series).
    Earliest,
    /// `+`: the latest sample's timestamp, inclusive (0 for an empty or missing series).
    Latest,
    /// `$`: one past the latest sample's timestamp (0 for an empty or missing series).
    New,
}

/// `BLOCK milliseconds min_count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// 0: wait without a time limit.
    pub ms: u64,
    /// Positive: the reply goes out once this many samples qualify.
    pub min_count: u64,
}

/// A parsed `TS.READ`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadFrom {
    pub key: Bytes,
    pub cursor: Cursor,
    pub block: Option<Block>,
    /// Positive, at least `min_count`; `None`: as many as qualify (up to the engine's range
    /// limit).
    pub max_count: Option<u64>,
}

/// Parses `TS.READ key timestamp [BLOCK ms min_count] [MAX_COUNT n]` (arity already checked:
/// at least key and timestamp). The options come in either order, each once; a keyword short
/// of its values or a stray token is a wrong-arity error, as redis.io documents.
fn parse_read(a: &[Bytes]) -> Result<TsRead, CommandError> {
    let arity = || CommandError::WrongArity("ts.read".into());
    let cursor = match &a[2][..] {
        b"-" => Cursor::Earliest,
        b"+" => Cursor::Latest,
        b"$" => Cursor::New,
        t => Cursor::At(
            int(t)
                .ok()
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| tsdb("invalid timestamp, must be a nonnegative integer"))?,
        ),
    };
    let positive = |arg: &[u8], what: &str| {
        int(arg)
            .ok()
            .and_then(|n| u64::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| tsdb(&format!("invalid {what}, must be a positive integer")))
    };
    let (mut block, mut max_count) = (None, None);
    let mut pos = 3;
    while pos < a.len() {
        if is(&a[pos], "BLOCK") && block.is_none() {
            let (Some(ms), Some(min)) = (a.get(pos + 1), a.get(pos + 2)) else {
                return Err(arity());
            };
            let ms = int(ms)
                .ok()
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| tsdb("invalid BLOCK milliseconds, must be a nonnegative integer"))?;
            let min_count = positive(min, "min_count")?;
            block = Some(Block { ms, min_count });
            pos += 3;
        } else if is(&a[pos], "MAX_COUNT") && max_count.is_none() {
            let n = a.get(pos + 1).ok_or_else(arity)?;
            max_count = Some(positive(n, "MAX_COUNT")?);
            pos += 2;
        } else {
            return Err(arity());
        }
    }
    if let (Some(b), Some(m)) = (block, max_count)
        && b.min_count > m
    {
        return Err(tsdb("min_count must not be greater than MAX_COUNT"));
    }
    Ok(TsRead::Read(ReadFrom {
        key: a[1].clone(),
        cursor,
        block,
        max_count,
    }))
}

/// Parses a `TS.*`, `TSDB_SET` or `TSDB_GET` request whose name `name` (lower case) has passed
/// the arity check.
pub fn parse(name: &str, a: &[Bytes]) -> Result<Command, CommandError> {
    let w = |t| Ok(Command::Write(WriteCmd::Ts(t)));
    let r = |t| Ok(Command::Read(ReadCmd::Ts(t)));
    match name {
        "ts.create" => w(TsWrite::Create {
            key: a[1].clone(),
            opts: series_opts(a, 2, Allowed::CREATE)?,
        }),
        "ts.alter" => w(TsWrite::Alter {
            key: a[1].clone(),
            opts: series_opts(a, 2, Allowed::ALTER)?,
        }),
        "ts.add" => parse_add(a).and_then(w),
        "ts.madd" => parse_madd(a).and_then(w),
        "ts.incrby" | "ts.decrby" => parse_incr(a, name == "ts.decrby").and_then(w),
        "ts.del" => w(TsWrite::Del {
            key: a[1].clone(),
            from: range_ts(&a[2], 0)?,
            to: range_ts(&a[3], u64::MAX)?,
        }),
        "ts.createrule" => parse_createrule(a).and_then(w),
        "ts.deleterule" => w(TsWrite::DeleteRule {
            src: a[1].clone(),
            dst: a[2].clone(),
        }),
        "ts.mdel" => {
            let from = range_ts(&a[1], 0)?;
            let to = range_ts(&a[2], u64::MAX)?;
            if !is(&a[3], "FILTER") {
                return Err(CommandError::Syntax);
            }
            w(TsWrite::MDel {
                from,
                to,
                filter: filter_exprs(&a[4..])?,
            })
        }
        "tsdb_set" => w(TsWrite::SeedSet {
            key: a[1].clone(),
            ts: timestamp(&a[2])?,
            value: value(&a[3])?,
        }),
        "ts.get" => {
            let latest = match a.get(2) {
                None => false,
                Some(l) if is(l, "LATEST") && a.len() == 3 => true,
                Some(_) => return Err(CommandError::Syntax),
            };
            r(TsRead::Get {
                key: a[1].clone(),
                latest,
            })
        }
        "ts.mget" => parse_mget(a).and_then(r),
        "ts.range" | "ts.revrange" => r(TsRead::Range {
            key: a[1].clone(),
            reverse: name == "ts.revrange",
            query: parse_range(a, 2, None)?.0,
        }),
        "ts.mrange" | "ts.mrevrange" => parse_mrange(a, name == "ts.mrevrange").and_then(r),
        "ts.nrange" | "ts.nrevrange" => parse_nrange(a, name == "ts.nrevrange").and_then(r),
        "ts.read" => parse_read(a).and_then(r),
        "ts.queryindex" => r(TsRead::QueryIndex(filter_exprs(&a[1..])?)),
        "ts.info" => match a.get(2) {
            None => r(TsRead::Info { key: a[1].clone() }),
            Some(d) if is(d, "DEBUG") && a.len() == 3 => r(TsRead::Info { key: a[1].clone() }),
            Some(_) => Err(CommandError::Syntax),
        },
        "ts.querylabels" => parse_querylabels(a).and_then(r),
        "tsdb_get" => r(TsRead::SeedGet {
            key: a[1].clone(),
            from: range_ts(&a[2], 0)?,
            to: range_ts(&a[3], u64::MAX)?,
        }),
        _ => Err(CommandError::other(format!(
            "ERR command '{name}' is not implemented yet"
        ))),
    }
}

/// A sample timestamp: a non-negative integer.
pub fn timestamp(arg: &[u8]) -> Result<u64, CommandError> {
    let n = int(arg).map_err(|_| tsdb("invalid timestamp"))?;
    u64::try_from(n).map_err(|_| tsdb("invalid timestamp, must be a nonnegative integer"))
}

/// A timestamp or `*`.
fn timestamp_or_now(arg: &[u8]) -> Result<Option<u64>, CommandError> {
    if arg == b"*" {
        Ok(None)
    } else {
        timestamp(arg).map(Some)
    }
}

/// A sample value (TS.ADD, TS.MADD, TSDB_SET): see [`sample_value`].
fn value(arg: &[u8]) -> Result<f64, CommandError> {
    sample_value(arg).ok_or_else(|| tsdb("invalid value"))
}

/// Parses a sample value as redis.io TS.ADD documents it: a number in RFC 7159 (JSON) syntax
/// that fits binary64 (`-`? integer part without leading zeros, optional `.digits`, optional
/// exponent), or NaN (Redis 8.6; `nan` in any case). Refused: `+4`, `.5`, `5.`, `01`, `0x10`,
/// `inf` and overflowing values such as `1e400` ("does not accept infinite values").
pub fn sample_value(arg: &[u8]) -> Option<f64> {
    if arg.eq_ignore_ascii_case(b"nan") {
        return Some(f64::NAN);
    }
    // One pass over the digits, accumulating them as an integer for the fast path below
    // (wrapping past 19 digits, where the fast path does not look at it).
    let mut mantissa = 0u64;
    let mut digits = |i: &mut usize| {
        let from = *i;
        while let Some(&b) = arg.get(*i).filter(|b| b.is_ascii_digit()) {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
            *i += 1;
        }
        *i - from
    };
    let negative = arg.first() == Some(&b'-');
    let mut i = usize::from(negative);
    let int = digits(&mut i);
    if int == 0 || (int > 1 && arg[usize::from(negative)] == b'0') {
        return None;
    }
    let mut frac = 0;
    if arg.get(i) == Some(&b'.') {
        i += 1;
        frac = digits(&mut i);
        if frac == 0 {
            return None;
        }
    }
    if i == arg.len() && int + frac <= 15 {
        // Clinger's fast path: the digits as an integer below 10^15 < 2^53 and a power of ten
        // up to 10^15 are both exact doubles, so one division rounds correctly, exactly as
        // the full parser would. Most ticks (prices, sizes) take it.
        let v = mantissa as f64 / POW10[frac];
        return Some(if negative { -v } else { v });
    }
    if matches!(arg.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(arg.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp = arg[i.min(arg.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if exp == 0 {
            return None;
        }
        i += exp;
    }
    if i != arg.len() {
        return None;
    }
    // All ASCII by construction; Rust's parser rounds correctly and overflows to infinity.
    let v: f64 = std::str::from_utf8(arg).ok()?.parse().ok()?;
    v.is_finite().then_some(v)
}

/// 10^0 to 10^15, each an exact double.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// A range bound: `-` (earliest), `+` (latest) or a timestamp.
fn range_ts(arg: &[u8], dash_plus: u64) -> Result<u64, CommandError> {
    match arg {
        b"-" => Ok(0),
        b"+" => Ok(u64::MAX),
        _ => {
            let _ = dash_plus;
            let n = int(arg).map_err(|_| tsdb("invalid timestamp"))?;
            // A negative bound is before every sample.
            Ok(u64::try_from(n).unwrap_or(0))
        }
    }
}

fn nonneg(arg: &[u8], what: &str) -> Result<u64, CommandError> {
    int(arg)
        .ok()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| tsdb(&format!("Couldn't parse {what}")))
}

/// Which series options a command accepts.
#[derive(Clone, Copy)]
struct Allowed {
    encoding: bool,
    on_duplicate: bool,
    timestamp: bool,
}

impl Allowed {
    const CREATE: Self = Self {
        encoding: true,
        on_duplicate: false,
        timestamp: false,
    };
    const ALTER: Self = Self {
        encoding: false,
        on_duplicate: false,
        timestamp: false,
    };
    const ADD: Self = Self {
        encoding: true,
        on_duplicate: true,
        timestamp: false,
    };
    const INCRBY: Self = Self {
        encoding: true,
        on_duplicate: false,
        timestamp: true,
    };
}

/// Series options plus the per-command ones: TS.ADD's ON_DUPLICATE, TS.INCRBY's TIMESTAMP
/// (`Some(None)`: `TIMESTAMP *`).
#[derive(Default)]
struct ParsedOpts {
    opts: SeriesOpts,
    on_duplicate: Option<DupPolicy>,
    timestamp: Option<Option<u64>>,
}

/// Parses series options from `a[start..]`, in any order; LABELS takes the rest.
fn series_opts_dup(
    a: &[Bytes],
    start: usize,
    allowed: Allowed,
) -> Result<ParsedOpts, CommandError> {
    let mut o = SeriesOpts::default();
    let mut on_dup = None;
    let mut timestamp = None;
    let mut it = Args::new(a, start);
    while let Some(opt) = it.next_arg() {
        if is(opt, "TIMESTAMP") && allowed.timestamp {
            let v = it.next_arg().ok_or_else(|| tsdb("invalid timestamp"))?;
            timestamp = Some(timestamp_or_now(v)?);
        } else if is(opt, "UNCOMPRESSED") && allowed.encoding {
            // The pre-ENCODING spelling RedisTimeSeries still accepts.
            o.uncompressed = Some(true);
        } else if is(opt, "RETENTION") {
            let v = it
                .next_arg()
                .ok_or_else(|| tsdb("Couldn't parse RETENTION"))?;
            o.retention_ms = Some(nonneg(v, "RETENTION")?);
        } else if is(opt, "ENCODING") && allowed.encoding {
            let v = it
                .next_arg()
                .ok_or_else(|| tsdb("Couldn't parse ENCODING"))?;
            o.uncompressed = Some(if is(v, "COMPRESSED") {
                false
            } else if is(v, "UNCOMPRESSED") {
                true
            } else {
                return Err(tsdb("unknown encoding"));
            });
        } else if is(opt, "CHUNK_SIZE") {
            let v = it
                .next_arg()
                .ok_or_else(|| tsdb("Couldn't parse CHUNK_SIZE"))?;
            let n = int(v).map_err(|_| tsdb("Couldn't parse CHUNK_SIZE"))?;
            let ok = u64::try_from(n)
                .ok()
                .filter(|n| (CHUNK_SIZE_MIN..=CHUNK_SIZE_MAX).contains(n) && n % 8 == 0);
            o.chunk_size = Some(ok.ok_or_else(|| {
                tsdb("CHUNK_SIZE value must be a multiple of 8 in the range [48 .. 1048576]")
            })?);
        } else if is(opt, "DUPLICATE_POLICY") {
            let v = it
                .next_arg()
                .ok_or_else(|| tsdb("Couldn't parse DUPLICATE_POLICY"))?;
            o.duplicate_policy =
                Some(DupPolicy::parse(v).ok_or_else(|| tsdb("Unknown DUPLICATE_POLICY"))?);
        } else if is(opt, "ON_DUPLICATE") && allowed.on_duplicate {
            let v = it
                .next_arg()
                .ok_or_else(|| tsdb("Couldn't parse ON_DUPLICATE"))?;
            on_dup = Some(DupPolicy::parse(v).ok_or_else(|| tsdb("Unknown ON_DUPLICATE"))?);
        } else if is(opt, "IGNORE") {
            let (t, v) = (it.next_arg(), it.next_arg());
            let (Some(t), Some(v)) = (t, v) else {
                return Err(tsdb("Couldn't parse IGNORE"));
            };
            let t = nonneg(t, "IGNORE max time diff")?;
            let v = float(v)
                .ok()
                .filter(|v| *v >= 0.0)
                .ok_or_else(|| tsdb("Couldn't parse IGNORE max value diff"))?;
            o.ignore = Some((t, v));
        } else if is(opt, "LABELS") {
            // LABELS takes the rest of the arguments.
            let rest = it.remaining();
            if !rest.len().is_multiple_of(2) {
                return Err(tsdb("Couldn't parse LABELS"));
            }
            o.labels = Some(labels(rest)?);
            break;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok(ParsedOpts {
        opts: o,
        on_duplicate: on_dup,
        timestamp,
    })
}

fn series_opts(a: &[Bytes], start: usize, allowed: Allowed) -> Result<SeriesOpts, CommandError> {
    series_opts_dup(a, start, allowed).map(|p| p.opts)
}

fn labels(rest: &[Bytes]) -> Result<Vec<(Bytes, Bytes)>, CommandError> {
    if rest.len() / 2 > LABELS_PER_SERIES_MAX {
        return Err(tsdb(&format!(
            "too many labels (at most {LABELS_PER_SERIES_MAX})"
        )));
    }
    let mut out: Vec<(Bytes, Bytes)> = Vec::with_capacity(rest.len() / 2);
    for pair in rest.chunks_exact(2) {
        let (name, value) = (&pair[0], &pair[1]);
        // Any bytes: FILTER can quote values with spaces, commas or parentheses.
        let bad = |b: &Bytes| b.is_empty() || b.len() > LABEL_BYTES_MAX;
        if bad(name) || bad(value) {
            return Err(tsdb("Couldn't parse LABELS"));
        }
        // A repeated label keeps its last value, like a map.
        out.retain(|(n, _)| n != name);
        out.push((name.clone(), value.clone()));
    }
    Ok(out)
}

fn parse_add(a: &[Bytes]) -> Result<TsWrite, CommandError> {
    let ts = timestamp_or_now(&a[2])?;
    let value = value(&a[3])?;
    let parsed = series_opts_dup(a, 4, Allowed::ADD)?;
    Ok(TsWrite::Add {
        key: a[1].clone(),
        ts,
        value,
        opts: parsed.opts,
        on_duplicate: parsed.on_duplicate,
    })
}

/// `TS.ADD key ts value`, or with `ON_DUPLICATE policy`, from borrowed arguments (the key
/// given owned): what [`parse_add`] makes of the same arguments when it accepts them, None
/// when it would refuse them (the caller then parses them the general way, which gives the
/// error).
pub(super) fn add_common(
    key: Bytes,
    ts: &[u8],
    value: &[u8],
    on_duplicate: Option<(&[u8], &[u8])>,
) -> Option<TsWrite> {
    let on_duplicate = match on_duplicate {
        None => None,
        Some((opt, policy)) if is(opt, "ON_DUPLICATE") => Some(DupPolicy::parse(policy)?),
        Some(_) => return None,
    };
    Some(TsWrite::Add {
        key,
        ts: timestamp_or_now(ts).ok()?,
        value: sample_value(value)?,
        opts: SeriesOpts::default(),
        on_duplicate,
    })
}

fn parse_madd(a: &[Bytes]) -> Result<TsWrite, CommandError> {
    if !(a.len() - 1).is_multiple_of(3) {
        return Err(CommandError::WrongArity("ts.madd".into()));
    }
    if (a.len() - 1) / 3 > MADD_SAMPLES_MAX {
        return Err(tsdb(&format!(
            "TS.MADD takes at most {MADD_SAMPLES_MAX} samples"
        )));
    }
    // A bad timestamp or value fails its element only; arity fails the command (above).
    let items: Vec<MAddItem> = a[1..]
        .chunks_exact(3)
        .map(|t| match (timestamp_or_now(&t[1]), value(&t[2])) {
            (Ok(ts), Ok(v)) => MAddItem::Sample(t[0].clone(), ts, v),
            (Err(e), _) | (_, Err(e)) => MAddItem::Refused(e.to_string()),
        })
        .collect();
    if items.iter().any(|i| matches!(i, MAddItem::Refused(_))) {
        return Ok(TsWrite::MAddPartial(items));
    }
    Ok(TsWrite::MAdd(
        items
            .into_iter()
            .filter_map(|i| match i {
                MAddItem::Sample(k, t, v) => Some((k, t, v)),
                MAddItem::Refused(_) => None,
            })
            .collect(),
    ))
}

/// TS.INCRBY / TS.DECRBY: TIMESTAMP is one of the options, in any order (LABELS last).
fn parse_incr(a: &[Bytes], negate: bool) -> Result<TsWrite, CommandError> {
    // "An error is returned if the addend is NaN" (redis.io TS.INCRBY).
    let by = value(&a[2]).and_then(|v| {
        if v.is_nan() {
            Err(tsdb("invalid value"))
        } else {
            Ok(v)
        }
    })?;
    let parsed = series_opts_dup(a, 3, Allowed::INCRBY)?;
    Ok(TsWrite::IncrBy {
        key: a[1].clone(),
        by: if negate { -by } else { by },
        ts: parsed.timestamp.flatten(),
        opts: parsed.opts,
    })
}

fn aggregator(arg: &[u8]) -> Result<String, CommandError> {
    let lower = String::from_utf8_lossy(arg).to_ascii_lowercase();
    if AGGREGATORS.contains(&lower.as_str()) {
        Ok(lower)
    } else {
        Err(tsdb("Unknown aggregation type"))
    }
}

fn bucket_duration(arg: &[u8]) -> Result<u64, CommandError> {
    let n = int(arg).map_err(|_| tsdb("Couldn't parse AGGREGATION"))?;
    u64::try_from(n)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| tsdb("bucketDuration must be greater than zero"))
}

fn parse_createrule(a: &[Bytes]) -> Result<TsWrite, CommandError> {
    if !is(&a[3], "AGGREGATION") || a.len() > 7 {
        return Err(CommandError::Syntax);
    }
    let aggregator = aggregator(&a[4])?;
    let bucket_ms = bucket_duration(&a[5])?;
    let align_ms = match a.get(6) {
        None => 0,
        Some(t) => timestamp(t)?,
    };
    Ok(TsWrite::CreateRule {
        src: a[1].clone(),
        dst: a[2].clone(),
        aggregator,
        bucket_ms,
        align_ms,
    })
}

/// Validates FILTER expressions: `l=v`, `l!=v`, `l=`, `l!=`, `l=(a,b)`, `l!=(a,b)`; at least
/// one must be a positive match (`l=v` or `l=(a,...)`), as documented.
fn filter_exprs(exprs: &[Bytes]) -> Result<Vec<Bytes>, CommandError> {
    if exprs.is_empty() || exprs.len() > FILTER_EXPRS_MAX {
        return Err(tsdb("invalid filter"));
    }
    let mut positive = false;
    for e in exprs {
        let Some(eq) = e.iter().position(|&c| c == b'=') else {
            return Err(tsdb("failed parsing labels"));
        };
        let negated = eq > 0 && e[eq - 1] == b'!';
        let name_end = if negated { eq - 1 } else { eq };
        if name_end == 0 {
            return Err(tsdb("failed parsing labels"));
        }
        if !negated && eq + 1 < e.len() {
            positive = true;
        }
    }
    if !positive {
        return Err(tsdb("please provide at least one matcher"));
    }
    Ok(exprs.to_vec())
}

/// Every keyword a range command's options may start with (ends a SELECTED_LABELS list).
const RANGE_KEYWORDS: &[&str] = &[
    "LATEST",
    "FILTER_BY_TS",
    "FILTER_BY_VALUE",
    "COUNT",
    "ALIGN",
    "AGGREGATION",
    "BUCKETTIMESTAMP",
    "EMPTY",
    "WITHLABELS",
    "SELECTED_LABELS",
    "EXCLUDEEMPTY",
    "FILTER",
    "GROUPBY",
];

/// The options only multi-series range commands take before FILTER.
#[derive(Debug, Default)]
struct MultiOpts {
    labels: LabelSel,
    exclude_empty: bool,
}

/// Parses range options from `a[start..]`, in any order. For multi-series commands (`multi`)
/// it also takes WITHLABELS/SELECTED_LABELS/EXCLUDEEMPTY, stops at FILTER (or GROUPBY) and
/// returns where it stopped.
fn parse_range(
    a: &[Bytes],
    start: usize,
    multi: Option<&mut MultiOpts>,
) -> Result<(RangeQuery, usize), CommandError> {
    parse_range_n(a, start, multi, 1).map(|(q, pos, _)| (q, pos))
}

/// [`parse_range`] where AGGREGATION takes `specs` aggregator lists (TS.NRANGE: one per key),
/// returned as the third element (the query's `aggregators` hold the first).
fn parse_range_n(
    a: &[Bytes],
    start: usize,
    mut multi: Option<&mut MultiOpts>,
    specs: usize,
) -> Result<(RangeQuery, usize, Vec<Vec<String>>), CommandError> {
    assert!(specs > 0, "a range query aggregates at least one series");
    let mut per_key: Vec<Vec<String>> = Vec::new();
    let from = range_ts(&a[start], 0)?;
    let to = range_ts(&a[start + 1], u64::MAX)?;
    let (open_from, open_to) = (a[start].as_ref() == b"-", a[start + 1].as_ref() == b"+");
    let mut q = RangeQuery {
        from,
        to,
        latest: false,
        filter_by_ts: None,
        filter_by_value: None,
        count: None,
        aggregation: None,
    };
    let mut align = None;
    let mut bucket_ts = None;
    let mut empty = false;
    let mut pos = start + 2;
    while pos < a.len() {
        let opt = &a[pos];
        pos += 1;
        if is(opt, "LATEST") {
            q.latest = true;
        } else if is(opt, "FILTER_BY_TS") {
            let mut list = Vec::new();
            while let Some(t) = a.get(pos) {
                let Ok(t) = int(t) else { break };
                if list.len() == FILTER_BY_TS_MAX {
                    return Err(tsdb("too many FILTER_BY_TS timestamps"));
                }
                list.push(u64::try_from(t).map_err(|_| tsdb("invalid timestamp"))?);
                pos += 1;
            }
            if list.is_empty() {
                return Err(tsdb("FILTER_BY_TS one or more arguments are missing"));
            }
            q.filter_by_ts = Some(list);
        } else if is(opt, "FILTER_BY_VALUE") {
            let (Some(lo), Some(hi)) = (a.get(pos), a.get(pos + 1)) else {
                return Err(tsdb("FILTER_BY_VALUE one or more arguments are missing"));
            };
            let lo = float(lo).map_err(|_| tsdb("Couldn't parse MIN"))?;
            let hi = float(hi).map_err(|_| tsdb("Couldn't parse MAX"))?;
            q.filter_by_value = Some((lo, hi));
            pos += 2;
        } else if is(opt, "COUNT") {
            let n = a.get(pos).ok_or_else(|| tsdb("Couldn't parse COUNT"))?;
            let n = int(n).map_err(|_| tsdb("Couldn't parse COUNT"))?;
            q.count = Some(
                u64::try_from(n)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| tsdb("Invalid COUNT value"))?,
            );
            pos += 1;
        } else if is(opt, "ALIGN") {
            let v = a.get(pos).ok_or_else(|| tsdb("Couldn't parse ALIGN"))?;
            align = Some(if is(v, "START") || v.as_ref() == b"-" {
                if open_from {
                    return Err(tsdb(
                        "start alignment can only be used with explicit start timestamp",
                    ));
                }
                Align::Start
            } else if is(v, "END") || v.as_ref() == b"+" {
                if open_to {
                    return Err(tsdb(
                        "end alignment can only be used with explicit end timestamp",
                    ));
                }
                Align::End
            } else {
                Align::At(timestamp(v).map_err(|_| tsdb("unknown ALIGN parameter"))?)
            });
            pos += 1;
        } else if is(opt, "AGGREGATION") {
            // One aggregator list per series (TS.NRANGE: one per key), then the bucket.
            let (Some(spec_args), Some(bucket)) = (a.get(pos..pos + specs), a.get(pos + specs))
            else {
                return Err(tsdb("Couldn't parse AGGREGATION"));
            };
            per_key.clear();
            for names in spec_args {
                let mut aggregators = Vec::new();
                for n in names.split(|&c| c == b',') {
                    if aggregators.len() == AGGREGATORS_MAX {
                        return Err(tsdb("too many aggregators"));
                    }
                    aggregators.push(aggregator(n)?);
                }
                per_key.push(aggregators);
            }
            q.aggregation = Some(AggQuery {
                aggregators: per_key[0].clone(),
                bucket_ms: bucket_duration(bucket)?,
                align: Align::At(0),
                bucket_ts: BucketTs::Start,
                empty: false,
            });
            pos += specs + 1;
        } else if is(opt, "BUCKETTIMESTAMP") {
            let v = a
                .get(pos)
                .ok_or_else(|| tsdb("Couldn't parse BUCKETTIMESTAMP"))?;
            bucket_ts = Some(match v.as_ref() {
                b"-" => BucketTs::Start,
                b"+" => BucketTs::End,
                b"~" => BucketTs::Mid,
                _ if is(v, "START") => BucketTs::Start,
                _ if is(v, "END") => BucketTs::End,
                _ if is(v, "MID") => BucketTs::Mid,
                _ => return Err(tsdb("unknown BUCKETTIMESTAMP parameter")),
            });
            pos += 1;
        } else if is(opt, "EMPTY") {
            empty = true;
        } else if let Some(m) = multi.as_deref_mut()
            && is(opt, "WITHLABELS")
        {
            if m.labels != LabelSel::None {
                return Err(tsdb("cannot accept WITHLABELS and SELECT_LABELS together"));
            }
            m.labels = LabelSel::All;
        } else if let Some(m) = multi.as_deref_mut()
            && is(opt, "SELECTED_LABELS")
        {
            if m.labels != LabelSel::None {
                return Err(tsdb("cannot accept WITHLABELS and SELECT_LABELS together"));
            }
            let mut names = Vec::new();
            // Names run to the next keyword of the command (a label named like a keyword
            // cannot be selected; RedisTimeSeries reads its options by keyword too).
            while let Some(n) = a.get(pos) {
                if RANGE_KEYWORDS.iter().any(|k| is(n, k)) {
                    break;
                }
                if names.len() == LABELS_PER_SERIES_MAX {
                    return Err(tsdb("too many SELECTED_LABELS"));
                }
                names.push(n.clone());
                pos += 1;
            }
            if names.is_empty() {
                return Err(CommandError::Syntax);
            }
            m.labels = LabelSel::Selected(names);
        } else if let Some(m) = multi.as_deref_mut()
            && is(opt, "EXCLUDEEMPTY")
        {
            m.exclude_empty = true;
        } else if multi.is_some() && (is(opt, "FILTER") || is(opt, "GROUPBY")) {
            pos -= 1;
            break;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    match &mut q.aggregation {
        Some(agg) => {
            // Without ALIGN, buckets are aligned to 0 (the epoch), as documented.
            agg.align = align.unwrap_or(Align::At(0));
            agg.bucket_ts = bucket_ts.unwrap_or(BucketTs::Start);
            agg.empty = empty;
        }
        None if align.is_some() => {
            return Err(tsdb("ALIGN parameter can only be used with AGGREGATION"));
        }
        None if bucket_ts.is_some() || empty => {
            return Err(tsdb("BUCKETTIMESTAMP and EMPTY require AGGREGATION"));
        }
        None => {}
    }
    Ok((q, pos, per_key))
}

fn label_sel(a: &[Bytes], pos: &mut usize) -> Result<LabelSel, CommandError> {
    let mut sel = LabelSel::None;
    while let Some(opt) = a.get(*pos) {
        if is(opt, "WITHLABELS") && sel == LabelSel::None {
            sel = LabelSel::All;
            *pos += 1;
        } else if is(opt, "SELECTED_LABELS") && sel == LabelSel::None {
            *pos += 1;
            let mut names = Vec::new();
            while let Some(n) = a.get(*pos) {
                if is(n, "FILTER") || is(n, "GROUPBY") {
                    break;
                }
                if names.len() == LABELS_PER_SERIES_MAX {
                    return Err(tsdb("too many SELECTED_LABELS"));
                }
                names.push(n.clone());
                *pos += 1;
            }
            if names.is_empty() {
                return Err(CommandError::Syntax);
            }
            sel = LabelSel::Selected(names);
        } else if is(opt, "WITHLABELS") || is(opt, "SELECTED_LABELS") {
            return Err(tsdb("cannot accept WITHLABELS and SELECT_LABELS together"));
        } else {
            break;
        }
    }
    Ok(sel)
}

fn parse_querylabels(a: &[Bytes]) -> Result<TsRead, CommandError> {
    let (label, rest) = if is(&a[1], "LABELS") {
        (None, 2)
    } else if is(&a[1], "VALUES") && a.len() >= 3 {
        (Some(a[2].clone()), 3)
    } else {
        return Err(CommandError::Syntax);
    };
    let filter = match a.get(rest) {
        None => None,
        Some(f) if is(f, "FILTER") => Some(filter_exprs(&a[rest + 1..])?),
        Some(_) => return Err(CommandError::Syntax),
    };
    Ok(TsRead::QueryLabels { label, filter })
}

fn parse_mget(a: &[Bytes]) -> Result<TsRead, CommandError> {
    let mut pos = 1;
    let mut latest = false;
    if a.get(pos).is_some_and(|l| is(l, "LATEST")) {
        latest = true;
        pos += 1;
    }
    let labels = label_sel(a, &mut pos)?;
    if !a.get(pos).is_some_and(|f| is(f, "FILTER")) {
        return Err(tsdb("missing FILTER argument"));
    }
    Ok(TsRead::MGet {
        latest,
        labels,
        filter: filter_exprs(&a[pos + 1..])?,
    })
}

/// The most keys one TS.NRANGE may name.
pub const NRANGE_KEYS_MAX: usize = 1024;

fn parse_nrange(a: &[Bytes], reverse: bool) -> Result<TsRead, CommandError> {
    let n = int(&a[1])
        .ok()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| tsdb("numkeys must be a positive integer"))?;
    if n > NRANGE_KEYS_MAX {
        return Err(tsdb(&format!(
            "TS.NRANGE takes at most {NRANGE_KEYS_MAX} keys"
        )));
    }
    // numkeys keys, then at least the two range bounds.
    if a.len() < 2 + n + 2 {
        return Err(CommandError::WrongArity(
            if reverse { "ts.nrevrange" } else { "ts.nrange" }.into(),
        ));
    }
    let keys = a[2..2 + n].to_vec();
    let (query, pos, per_key) = parse_range_n(a, 2 + n, None, n)?;
    if pos != a.len() {
        return Err(CommandError::Syntax);
    }
    Ok(TsRead::NRange {
        keys,
        reverse,
        query,
        per_key,
    })
}

fn parse_mrange(a: &[Bytes], reverse: bool) -> Result<TsRead, CommandError> {
    let mut multi = MultiOpts::default();
    let (query, mut pos) = parse_range(a, 1, Some(&mut multi))?;
    if !a.get(pos).is_some_and(|f| is(f, "FILTER")) {
        return Err(tsdb("missing FILTER argument"));
    }
    pos += 1;
    // FILTER expressions always hold a '=', so the trailing keywords cannot be one.
    let end = a[pos..]
        .iter()
        .position(|x| is(x, "GROUPBY") || is(x, "EXCLUDEEMPTY"))
        .map_or(a.len(), |p| pos + p);
    let filter = filter_exprs(&a[pos..end])?;
    let mut group_by = None;
    let mut rest = end;
    while let Some(opt) = a.get(rest) {
        if is(opt, "EXCLUDEEMPTY") {
            multi.exclude_empty = true;
            rest += 1;
        } else if is(opt, "GROUPBY") && group_by.is_none() {
            let (Some(label), Some(kw), Some(reducer)) =
                (a.get(rest + 1), a.get(rest + 2), a.get(rest + 3))
            else {
                return Err(tsdb("GROUPBY requires a label and REDUCE reducer"));
            };
            if !is(kw, "REDUCE") {
                return Err(tsdb("GROUPBY requires a label and REDUCE reducer"));
            }
            let reducer = String::from_utf8_lossy(reducer).to_ascii_lowercase();
            if !REDUCERS.contains(&reducer.as_str()) {
                return Err(tsdb("invalid reducer"));
            }
            group_by = Some((label.clone(), reducer));
            rest += 4;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    if group_by.is_some() {
        if multi.exclude_empty {
            return Err(tsdb("EXCLUDEEMPTY cannot be used together with GROUPBY"));
        }
        if query
            .aggregation
            .as_ref()
            .is_some_and(|g| g.aggregators.len() > 1)
        {
            return Err(tsdb(
                "GROUPBY is not allowed when multiple aggregators are specified",
            ));
        }
    }
    Ok(TsRead::MRange {
        reverse,
        query,
        labels: multi.labels,
        filter,
        group_by,
        exclude_empty: multi.exclude_empty,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::{parse as parse_cmd, test_args};

    fn err(s: &str) -> String {
        parse_cmd(&test_args(s)).unwrap_err().to_string()
    }

    #[test]
    fn documented_errors() {
        assert_eq!(err("TS.ADD k x 1"), "ERR TSDB: invalid timestamp");
        assert_eq!(err("TS.ADD k 1 x"), "ERR TSDB: invalid value");
        assert_eq!(
            err("TS.CREATE k DUPLICATE_POLICY nope"),
            "ERR TSDB: Unknown DUPLICATE_POLICY"
        );
        assert_eq!(
            err("TS.CREATE k CHUNK_SIZE 7"),
            "ERR TSDB: CHUNK_SIZE value must be a multiple of 8 in the range [48 .. 1048576]"
        );
        assert_eq!(
            err("TS.CREATE k RETENTION -1"),
            "ERR TSDB: Couldn't parse RETENTION"
        );
        assert_eq!(
            err("TS.CREATE k LABELS a"),
            "ERR TSDB: Couldn't parse LABELS"
        );
        assert_eq!(
            err("TS.RANGE k - + AGGREGATION foo 10"),
            "ERR TSDB: Unknown aggregation type"
        );
        assert_eq!(
            err("TS.RANGE k - + AGGREGATION avg 0"),
            "ERR TSDB: bucketDuration must be greater than zero"
        );
        assert_eq!(
            err("TS.MGET FILTER a!=b"),
            "ERR TSDB: please provide at least one matcher"
        );
        assert_eq!(
            err("TS.MGET LATEST WITHLABELS"),
            "ERR TSDB: missing FILTER argument"
        );
        assert_eq!(
            err("TS.MADD a 1 1 b 2"),
            "ERR wrong number of arguments for 'ts.madd' command"
        );
        assert_eq!(err("TS.ALTER k ENCODING COMPRESSED"), "ERR syntax error");
    }

    /// redis.io TS.ADD: values follow RFC 7159 and fit binary64, no infinities; NaN since
    /// Redis 8.6.
    #[test]
    fn sample_values_as_documented() {
        for (ok, want) in [
            ("4", 4.0),
            ("-4", -4.0),
            ("0", 0.0),
            ("-0.5", -0.5),
            ("1.25e2", 125.0),
            ("1E-2", 0.01),
            ("2e+3", 2000.0),
            ("1e-400", 0.0),
        ] {
            assert_eq!(sample_value(ok.as_bytes()), Some(want), "{ok}");
        }
        for nan in ["NaN", "nan", "NAN"] {
            assert!(
                sample_value(nan.as_bytes()).is_some_and(f64::is_nan),
                "{nan}"
            );
        }
        for bad in [
            "+4", ".5", "5.", "01", "-", "", " 1", "1 ", "0x10", "inf", "-inf", "Infinity",
            "1e400", "1e", "1e+", "--1", "1.2.3", "-nan", "+nan", "١",
        ] {
            assert_eq!(sample_value(bad.as_bytes()), None, "{bad}");
        }
        // The fast path agrees with the full parser bit for bit.
        for text in [
            "187.23",
            "-0",
            "-0.0",
            "0.1",
            "999999999999999",
            "99999999999999.9",
            "0.000000000000001",
            "123456.789012345",
            "1000000000123",
            "-42.5",
        ] {
            let want: f64 = text.parse().unwrap();
            let got = sample_value(text.as_bytes()).unwrap();
            assert_eq!(got.to_bits(), want.to_bits(), "{text}");
        }
        assert_eq!(err("TS.ADD k 1 +4"), "ERR TSDB: invalid value");
        assert_eq!(err("TS.ADD k 1 .5"), "ERR TSDB: invalid value");
        assert_eq!(err("TS.INCRBY k 5."), "ERR TSDB: invalid value");
        assert_eq!(err("TS.INCRBY k NaN"), "ERR TSDB: invalid value");
    }

    /// redis.io TS.MADD replies per element: a bad timestamp or value fails its element only.
    #[test]
    fn madd_refuses_bad_elements_one_by_one() {
        let Command::Write(WriteCmd::Ts(TsWrite::MAddPartial(items))) =
            parse_cmd(&test_args("TS.MADD a 1000 1 a 1001 x a 1002 3 b -1 4")).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            items,
            vec![
                MAddItem::Sample("a".into(), Some(1000), 1.0),
                MAddItem::Refused("ERR TSDB: invalid value".into()),
                MAddItem::Sample("a".into(), Some(1002), 3.0),
                MAddItem::Refused(
                    "ERR TSDB: invalid timestamp, must be a nonnegative integer".into()
                ),
            ]
        );
        // Without a bad element the log entry keeps the MAdd encoding.
        let Command::Write(WriteCmd::Ts(TsWrite::MAdd(items))) =
            parse_cmd(&test_args("TS.MADD a * NaN b 2 2")).unwrap()
        else {
            panic!()
        };
        assert_eq!((items.len(), items[0].1, items[1].2), (2, None, 2.0));
        assert!(items[0].2.is_nan());
        assert_eq!(
            err("TS.MADD a 1 1 b 2"),
            "ERR wrong number of arguments for 'ts.madd' command"
        );
    }

    /// redis.io TS.INCRBY: TIMESTAMP is one option among the creation options, in any order.
    #[test]
    fn incrby_options_in_any_order() {
        let Command::Write(WriteCmd::Ts(TsWrite::IncrBy { by, ts, opts, .. })) = parse_cmd(
            &test_args("TS.INCRBY k 1 TIMESTAMP 1000 RETENTION 500 UNCOMPRESSED LABELS a b"),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!((by, ts), (1.0, Some(1000)));
        assert_eq!(opts.retention_ms, Some(500));
        assert_eq!(opts.uncompressed, Some(true));
        assert_eq!(opts.labels, Some(vec![("a".into(), "b".into())]));
        let Command::Write(WriteCmd::Ts(TsWrite::IncrBy { ts, opts, .. })) = parse_cmd(&test_args(
            "TS.DECRBY k 1 ENCODING COMPRESSED IGNORE 5 1.5 TIMESTAMP * CHUNK_SIZE 128 \
                 DUPLICATE_POLICY last",
        ))
        .unwrap() else {
            panic!()
        };
        assert_eq!(ts, None);
        assert_eq!(
            (opts.uncompressed, opts.ignore, opts.chunk_size),
            (Some(false), Some((5, 1.5)), Some(128))
        );
        assert_eq!(opts.duplicate_policy, Some(DupPolicy::Last));
        // TIMESTAMP inside LABELS is a label, not the option.
        let Command::Write(WriteCmd::Ts(TsWrite::IncrBy { ts, opts, .. })) =
            parse_cmd(&test_args("TS.INCRBY k 1 LABELS TIMESTAMP 5")).unwrap()
        else {
            panic!()
        };
        assert_eq!(ts, None);
        assert_eq!(opts.labels, Some(vec![("TIMESTAMP".into(), "5".into())]));
        assert_eq!(err("TS.INCRBY k 1 ON_DUPLICATE sum"), "ERR syntax error");
        assert_eq!(
            err("TS.INCRBY k 1 TIMESTAMP"),
            "ERR TSDB: invalid timestamp"
        );
    }

    /// redis.io TS.RANGE / TS.MRANGE: `ALIGN start` needs an explicit start (`end` an explicit
    /// end), ALIGN needs AGGREGATION, GROUPBY takes one aggregator, EXCLUDEEMPTY no GROUPBY.
    #[test]
    fn documented_range_option_errors() {
        assert_eq!(
            err("TS.RANGE k - + ALIGN start AGGREGATION avg 10"),
            "ERR TSDB: start alignment can only be used with explicit start timestamp"
        );
        assert_eq!(
            err("TS.REVRANGE k - 100 ALIGN - AGGREGATION avg 10"),
            "ERR TSDB: start alignment can only be used with explicit start timestamp"
        );
        assert_eq!(
            err("TS.MRANGE 0 + ALIGN end AGGREGATION avg 10 FILTER a=1"),
            "ERR TSDB: end alignment can only be used with explicit end timestamp"
        );
        assert_eq!(
            err("TS.RANGE k 0 + ALIGN 5"),
            "ERR TSDB: ALIGN parameter can only be used with AGGREGATION"
        );
        assert_eq!(
            err("TS.MRANGE - + AGGREGATION min,max 10 FILTER a=1 GROUPBY a REDUCE max"),
            "ERR TSDB: GROUPBY is not allowed when multiple aggregators are specified"
        );
        assert_eq!(
            err("TS.MRANGE - + FILTER a=1 GROUPBY a REDUCE max EXCLUDEEMPTY"),
            "ERR TSDB: EXCLUDEEMPTY cannot be used together with GROUPBY"
        );
        assert_eq!(
            err("TS.MRANGE - + FILTER a=1 GROUPBY a REDUCE first"),
            "ERR TSDB: invalid reducer"
        );
        assert_eq!(
            err("TS.MRANGE - + WITHLABELS SELECTED_LABELS a FILTER a=1"),
            "ERR TSDB: cannot accept WITHLABELS and SELECT_LABELS together"
        );
        // The explicit bounds make both alignments valid.
        for ok in [
            "TS.RANGE k 0 100 ALIGN start AGGREGATION avg 10",
            "TS.RANGE k 0 100 ALIGN + AGGREGATION avg 10",
            "TS.MRANGE - + AGGREGATION max 60000 FILTER s=x GROUPBY s REDUCE max",
        ] {
            assert!(parse_cmd(&test_args(ok)).is_ok(), "{ok}");
        }
    }

    #[test]
    fn parses_range_options() {
        let Command::Read(ReadCmd::Ts(TsRead::MRange {
            query,
            labels,
            filter,
            group_by,
            exclude_empty,
            ..
        })) = parse_cmd(&test_args(
            "TS.MRANGE - 100 FILTER_BY_TS 1 2 COUNT 5 AGGREGATION first,max,min,last 60000 \
             ALIGN end BUCKETTIMESTAMP ~ EMPTY SELECTED_LABELS a b FILTER a=1 b!=(x,y) \
             EXCLUDEEMPTY",
        ))
        .unwrap()
        else {
            panic!()
        };
        assert_eq!(query.filter_by_ts, Some(vec![1, 2]));
        assert_eq!(query.count, Some(5));
        let agg = query.aggregation.unwrap();
        assert_eq!(agg.aggregators, ["first", "max", "min", "last"]);
        assert_eq!(
            (agg.bucket_ms, agg.align, agg.bucket_ts, agg.empty),
            (60000, Align::End, BucketTs::Mid, true)
        );
        assert_eq!(labels, LabelSel::Selected(vec!["a".into(), "b".into()]));
        assert_eq!(filter.len(), 2);
        assert!(exclude_empty);
        assert_eq!(group_by, None);
        // redis-py's order: labels before COUNT/AGGREGATION; GROUPBY after the filter.
        let Command::Read(ReadCmd::Ts(TsRead::MRange {
            query,
            labels,
            group_by,
            exclude_empty,
            ..
        })) = parse_cmd(&test_args(
            "TS.MREVRANGE 0 + WITHLABELS COUNT 3 ALIGN start AGGREGATION avg 60000 \
             FILTER a=1 GROUPBY a REDUCE countNaN",
        ))
        .unwrap()
        else {
            panic!()
        };
        assert_eq!((labels, exclude_empty), (LabelSel::All, false));
        // SELECTED_LABELS names run to the next option keyword (redis-py puts COUNT after).
        let Command::Read(ReadCmd::Ts(TsRead::MRange {
            query: q2,
            labels: l2,
            ..
        })) = parse_cmd(&test_args(
            "TS.MRANGE - + SELECTED_LABELS team site COUNT 10 FILTER a=1",
        ))
        .unwrap()
        else {
            panic!()
        };
        assert_eq!(l2, LabelSel::Selected(vec!["team".into(), "site".into()]));
        assert_eq!(q2.count, Some(10));
        assert_eq!(query.count, Some(3));
        assert_eq!(query.aggregation.unwrap().align, Align::Start);
        assert_eq!(group_by, Some(("a".into(), "countnan".into())));
    }

    #[test]
    fn parses_add_and_incr() {
        assert_eq!(
            parse_cmd(&test_args("TS.ADD k * 1.5 ON_DUPLICATE sum LABELS a 1")).unwrap(),
            Command::Write(WriteCmd::Ts(TsWrite::Add {
                key: "k".into(),
                ts: None,
                value: 1.5,
                opts: SeriesOpts {
                    labels: Some(vec![("a".into(), "1".into())]),
                    ..SeriesOpts::default()
                },
                on_duplicate: Some(DupPolicy::Sum),
            }))
        );
        let Command::Write(WriteCmd::Ts(TsWrite::IncrBy { by, ts, opts, .. })) =
            parse_cmd(&test_args("TS.DECRBY k 2 TIMESTAMP 5 RETENTION 10")).unwrap()
        else {
            panic!()
        };
        assert_eq!((by, ts, opts.retention_ms), (-2.0, Some(5), Some(10)));
    }

    mod fast_values {
        use proptest::prelude::*;

        use super::super::sample_value;

        proptest! {
            /// Short decimals take the fast path; every value reads as Rust's parser reads it.
            #[test]
            fn sample_values_read_as_the_full_parser_reads_them(
                negative in any::<bool>(),
                int in 0u64..10_000_000_000_000_000,
                frac in prop::option::of((0u64..1_000_000_000_000_000, 1usize..18)),
            ) {
                let mut text = format!("{}{int}", if negative { "-" } else { "" });
                if let Some((f, width)) = frac {
                    let digits = format!("{f:018}");
                    text.push('.');
                    text.push_str(&digits[18 - width..]);
                }
                let want: f64 = text.parse().unwrap();
                let got = sample_value(text.as_bytes()).unwrap();
                prop_assert_eq!(got.to_bits(), want.to_bits(), "{}", text);
            }
        }
    }
}
