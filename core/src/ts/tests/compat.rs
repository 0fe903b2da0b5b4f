//! RedisTimeSeries behaviours tickdb once differed on, each asserted against the redis.io
//! command page (Redis 8.10) it comes from.

use super::*;

fn row(ts: i64, v: &[f64]) -> Frame {
    let mut out = vec![int(ts)];
    out.extend(v.iter().map(|x| Frame::Double(*x)));
    arr(out)
}

fn simple(x: &'static str) -> Frame {
    Frame::simple(x)
}

/// The stock:A series of the TS.RANGE "Align aggregation buckets" example.
fn stock_a(h: &mut Harness) {
    h.run("TS.CREATE stock:A LABELS type stock name A");
    h.run("TS.MADD stock:A 1000 100 stock:A 1010 110 stock:A 1020 120");
    h.run("TS.MADD stock:A 2000 200 stock:A 2010 210 stock:A 2020 220");
    h.run("TS.MADD stock:A 3000 300 stock:A 3010 310 stock:A 3020 320");
}

#[test]
fn buckets_align_to_the_epoch_by_default() {
    let mut h = Harness::new();
    for (ts, v) in [(1020, 1.0), (1040, 2.0), (1060, 3.0), (1100, 4.0)] {
        h.run(&format!("TS.ADD s {ts} {v}"));
    }
    // Issue 11: 1000, 1050, 1100 (RedisTimeSeries), not 1020/1070 (the query's start).
    assert_eq!(
        h.run("TS.RANGE s 1020 1100 AGGREGATION avg 50"),
        arr(vec![s(1000, 1.5), s(1050, 3.0), s(1100, 4.0)])
    );
    assert_eq!(
        h.run("TS.RANGE s 1020 1100 AGGREGATION min,max,countAll 50"),
        arr(vec![
            row(1000, &[1.0, 2.0, 2.0]),
            row(1050, &[3.0, 3.0, 1.0]),
            row(1100, &[4.0, 4.0, 1.0])
        ])
    );
    assert_eq!(
        h.run("TS.REVRANGE s 1020 1100 AGGREGATION count 50"),
        arr(vec![s(1100, 1.0), s(1050, 1.0), s(1000, 2.0)])
    );
    // ALIGN start aligns to the explicit start, ALIGN end to the explicit end.
    assert_eq!(
        h.run("TS.RANGE s 1020 1100 ALIGN start AGGREGATION avg 50"),
        arr(vec![s(1020, 2.0), s(1070, 4.0)])
    );
    assert_eq!(
        h.run("TS.RANGE s 1020 1110 ALIGN + AGGREGATION count 50"),
        arr(vec![s(1010, 2.0), s(1060, 2.0)])
    );
    assert_eq!(
        h.run("TS.RANGE s - + ALIGN start AGGREGATION avg 50"),
        err("ERR TSDB: start alignment can only be used with explicit start timestamp")
    );
}

#[test]
fn docs_align_examples() {
    let mut h = Harness::new();
    stock_a(&mut h);
    let min = |rows: &[(i64, f64)]| arr(rows.iter().map(|(t, v)| s(*t, *v)).collect());
    assert_eq!(
        h.run("TS.RANGE stock:A - + AGGREGATION min 20"),
        min(&[
            (1000, 100.0),
            (1020, 120.0),
            (2000, 200.0),
            (2020, 220.0),
            (3000, 300.0),
            (3020, 320.0)
        ])
    );
    assert_eq!(
        h.run("TS.RANGE stock:A - + ALIGN 10 AGGREGATION min 20"),
        min(&[
            (990, 100.0),
            (1010, 110.0),
            (1990, 200.0),
            (2010, 210.0),
            (2990, 300.0),
            (3010, 310.0)
        ])
    );
    assert_eq!(
        h.run("TS.RANGE stock:A 5 + ALIGN - AGGREGATION min 20"),
        min(&[
            (985, 100.0),
            (1005, 110.0),
            (1985, 200.0),
            (2005, 210.0),
            (2985, 300.0),
            (3005, 310.0)
        ])
    );
}

/// TS.MRANGE's "Calculate average stock price and retrieve maximum average" example, in both
/// protocols, with the RESP3 group layout RedisTimeSeries sends.
#[test]
fn mrange_aggregates_then_reduces() {
    let mut h = Harness::new();
    stock_a(&mut h);
    h.run("TS.CREATE stock:B LABELS type stock name B");
    h.run("TS.MADD stock:B 1000 120 stock:B 1010 110 stock:B 1020 100");
    h.run("TS.MADD stock:B 2000 220 stock:B 2010 210 stock:B 2020 200");
    h.run("TS.MADD stock:B 3000 320 stock:B 3010 310 stock:B 3020 300");
    let q =
        "TS.MRANGE - + WITHLABELS AGGREGATION avg 1000 FILTER type=stock GROUPBY type REDUCE max";
    let samples = arr(vec![s(1000, 110.0), s(2000, 210.0), s(3000, 310.0)]);
    assert_eq!(
        h.run(q),
        Frame::Map(vec![(
            bulk("type=stock"),
            arr(vec![
                Frame::Map(vec![(bulk("type"), bulk("stock"))]),
                Frame::Map(vec![(simple("reducers"), arr(vec![bulk("max")]))]),
                Frame::Map(vec![(
                    simple("sources"),
                    arr(vec![bulk("stock:A"), bulk("stock:B")])
                )]),
                samples.clone(),
            ])
        )])
    );
    h.proto = Protocol::Resp2;
    let pair = |a: &str, b: &str| arr(vec![bulk(a), bulk(b)]);
    let resp2 = |v: f64| Frame::Simple(Bytes::from(v.to_string()));
    assert_eq!(
        h.run(q),
        arr(vec![arr(vec![
            bulk("type=stock"),
            arr(vec![
                pair("type", "stock"),
                pair("__reducer__", "max"),
                pair("__source__", "stock:A,stock:B"),
            ]),
            arr(vec![
                arr(vec![int(1000), resp2(110.0)]),
                arr(vec![int(2000), resp2(210.0)]),
                arr(vec![int(3000), resp2(310.0)]),
            ]),
        ])])
    );
    // SELECTED_LABELS reports a label the whole group shares, null for one it does not.
    h.proto = Protocol::Resp3;
    let Frame::Map(groups) =
        h.run("TS.MRANGE - + SELECTED_LABELS type name FILTER type=stock GROUPBY type REDUCE sum")
    else {
        panic!()
    };
    let Frame::Array(parts) = &groups[0].1 else {
        panic!()
    };
    assert_eq!(
        parts[0],
        Frame::Map(vec![
            (bulk("type"), bulk("stock")),
            (bulk("name"), Frame::Null)
        ])
    );
    // Without labels: an empty map, the reducers and sources maps still there.
    let Frame::Map(groups) = h.run("TS.MREVRANGE - + FILTER type=stock GROUPBY name REDUCE min")
    else {
        panic!()
    };
    assert_eq!(groups.len(), 2);
    let Frame::Array(parts) = &groups[1].1 else {
        panic!()
    };
    assert_eq!(groups[1].0, bulk("name=B"));
    assert_eq!(parts[0], Frame::Map(vec![]));
    assert_eq!(
        parts[2],
        Frame::Map(vec![(simple("sources"), arr(vec![bulk("stock:B")]))])
    );
    let Frame::Array(rows) = &parts[3] else {
        panic!()
    };
    assert_eq!(rows[0], s(3020, 300.0));
}

/// TS.MRANGE's "Exclude empty time series from the reply" example.
#[test]
fn exclude_empty_leaves_out_series_without_samples_in_range() {
    let mut h = Harness::new();
    for k in ["s", "t", "u"] {
        h.run(&format!("TS.CREATE {k} LABELS s 1 t 1"));
    }
    h.run("TS.MADD s 100 100 t 100 100 s 200 200 t 300 300 s 400 400 t 400 400 u 2000 2000");
    let keys = |f: Frame| -> Vec<Frame> {
        let Frame::Map(m) = f else { panic!("{f:?}") };
        m.into_iter().map(|(k, _)| k).collect()
    };
    assert_eq!(
        keys(h.run("TS.MRANGE - 500 WITHLABELS EXCLUDEEMPTY FILTER s=1")),
        vec![bulk("s"), bulk("t")]
    );
    assert_eq!(
        keys(h.run("TS.MRANGE - 500 WITHLABELS FILTER s=1")),
        vec![bulk("s"), bulk("t"), bulk("u")]
    );
    assert_eq!(
        keys(h.run("TS.MREVRANGE - 500 AGGREGATION min 100 FILTER s=1 EXCLUDEEMPTY")),
        vec![bulk("s"), bulk("t")]
    );
    assert!(keys(h.run("TS.MRANGE 1 50 EXCLUDEEMPTY FILTER s=1")).is_empty());
    // A compaction whose only row is its open bucket: kept with LATEST, empty without.
    h.run("TS.CREATE src");
    h.run("TS.CREATE dst LABELS c 1");
    h.run("TS.CREATERULE src dst AGGREGATION sum 10");
    h.run("TS.MADD src 1 1 src 2 3");
    assert_eq!(
        keys(h.run("TS.MRANGE 0 9 LATEST EXCLUDEEMPTY FILTER c=1")),
        vec![bulk("dst")]
    );
    assert!(keys(h.run("TS.MRANGE 0 9 EXCLUDEEMPTY FILTER c=1")).is_empty());
    h.proto = Protocol::Resp2;
    assert_eq!(h.run("TS.MRANGE 1 50 EXCLUDEEMPTY FILTER s=1"), arr(vec![]));
}

/// Issue 11: a feed with one bad tick must not lose the batch (redis.io TS.MADD replies per
/// element).
#[test]
fn madd_answers_per_element_and_keeps_the_good_samples() {
    let mut h = Harness::new();
    h.run("TS.CREATE a");
    assert_eq!(
        h.run("TS.MADD a 1000 1 a 1001 x a 1002 3"),
        arr(vec![int(1000), err("ERR TSDB: invalid value"), int(1002)])
    );
    assert_eq!(
        h.run("TS.RANGE a - +"),
        arr(vec![s(1000, 1.0), s(1002, 3.0)])
    );
    assert_eq!(
        h.run("TS.MADD a 1003 4 nope 1 1 a -5 1 a * +4"),
        arr(vec![
            int(1003),
            err("ERR TSDB: the key does not exist"),
            err("ERR TSDB: invalid timestamp, must be a nonnegative integer"),
            err("ERR TSDB: invalid value"),
        ])
    );
    assert_eq!(h.run("TS.GET a"), s(1003, 4.0));
    h.check("a");
}

#[test]
fn incrby_takes_creation_options_after_timestamp_and_applies_ignore() {
    let mut h = Harness::new();
    assert_eq!(
        h.run("TS.INCRBY k 1 TIMESTAMP 1000 RETENTION 500 UNCOMPRESSED LABELS a b"),
        int(1000)
    );
    let info = h.run("TS.INFO k");
    assert_eq!(info_field(&info, "retentionTime"), int(500));
    assert_eq!(info_field(&info, "chunkType"), simple("uncompressed"));
    assert_eq!(
        info_field(&info, "labels"),
        Frame::Map(vec![(bulk("a"), bulk("b"))])
    );
    // redis-py's test_incrby_with_insertion_filters: the sample INCRBY would write is
    // dropped when it is within IGNORE of the newest one (policy LAST).
    assert_eq!(
        h.run("TS.INCRBY i 1 TIMESTAMP 1000 DUPLICATE_POLICY last IGNORE 5 10"),
        int(1000)
    );
    assert_eq!(h.run("TS.INCRBY i 3 TIMESTAMP 1000"), int(1000));
    assert_eq!(h.run("TS.RANGE i - +"), arr(vec![s(1000, 1.0)]));
    assert_eq!(h.run("TS.INCRBY i 10.1 TIMESTAMP 1000"), int(1000));
    assert_eq!(h.run("TS.RANGE i - +"), arr(vec![s(1000, 11.1)]));
    // Within both thresholds but later in time: dropped, the reply is the newest timestamp.
    assert_eq!(h.run("TS.DECRBY i 2 TIMESTAMP 1004"), int(1000));
    assert_eq!(h.run("TS.DECRBY i 2 TIMESTAMP 1006"), int(1006));
    assert_eq!(h.run("TS.GET i"), s(1006, 9.1));
    // Not LAST: IGNORE does not apply.
    h.run("TS.INCRBY j 1 TIMESTAMP 1000 IGNORE 5 10");
    assert_eq!(h.run("TS.INCRBY j 1 TIMESTAMP 1001"), int(1001));
    assert_eq!(h.run("TS.GET j"), s(1001, 2.0));
}

#[test]
fn duplicate_policy_reports_block_by_default() {
    let mut h = Harness::new();
    h.run("TS.CREATE a");
    h.run("TS.CREATE b DUPLICATE_POLICY min");
    assert_eq!(
        info_field(&h.run("TS.INFO a"), "duplicatePolicy"),
        simple("block")
    );
    assert_eq!(
        info_field(&h.run("TS.INFO b"), "duplicatePolicy"),
        simple("min")
    );
    h.run("TS.ALTER a DUPLICATE_POLICY sum");
    assert_eq!(
        info_field(&h.run("TS.INFO a"), "duplicatePolicy"),
        simple("sum")
    );
}

/// Redis 8.6 NaN samples (redis.io TS.ADD, TS.RANGE, TS.INCRBY), with redis-py's
/// test_range_with_count_nan_count_all_aggregators.
#[test]
fn nan_samples_and_their_aggregators() {
    let mut h = Harness::new();
    h.run("TS.CREATE t LABELS type temperature");
    assert_eq!(h.run("TS.ADD t 1000 NaN"), int(1000));
    assert_eq!(h.run("TS.ADD t 1003 25"), int(1003));
    assert_eq!(h.run("TS.ADD t 1005 nan"), int(1005));
    assert_eq!(h.run("TS.ADD t 1006 NaN"), int(1006));
    assert_eq!(
        h.run("TS.RANGE t 1000 1006 AGGREGATION countNan 1000"),
        arr(vec![s(1000, 3.0)])
    );
    assert_eq!(
        h.run("TS.REVRANGE t 1000 1006 AGGREGATION countAll 1000"),
        arr(vec![s(1000, 4.0)])
    );
    assert_eq!(
        h.run("TS.RANGE t - + AGGREGATION avg,count,max 1000"),
        arr(vec![row(1000, &[25.0, 1.0, 25.0])])
    );
    // Raw reads report NaN samples (Redis 8.6), RESP3 as a double, RESP2 as "nan".
    let Frame::Array(raw) = h.run("TS.RANGE t - +") else {
        panic!()
    };
    assert_eq!(raw.len(), 4);
    assert!(matches!(&raw[0], Frame::Array(r) if matches!(r[1], Frame::Double(v) if v.is_nan())));
    h.proto = Protocol::Resp2;
    assert_eq!(
        h.run("TS.GET t"),
        arr(vec![int(1006), Frame::Simple(Bytes::from("nan"))])
    );
    h.proto = Protocol::Resp3;
    // Infinities stay refused; NaN against a number under MIN/MAX/SUM is refused.
    assert_eq!(h.run("TS.ADD t 1007 inf"), err("ERR TSDB: invalid value"));
    assert!(h.run("TS.ADD t 1003 NaN ON_DUPLICATE max").is_error());
    assert!(h.run("TS.ADD t 1000 5 ON_DUPLICATE sum").is_error());
    assert!(matches!(
        h.run("TS.ADD t 1000 NaN ON_DUPLICATE sum"),
        Frame::Integer(1000)
    ));
    assert_eq!(h.run("TS.ADD t 1003 1 ON_DUPLICATE sum"), int(1003));
    assert_eq!(h.run("TS.RANGE t 1003 1003"), arr(vec![s(1003, 26.0)]));
    // TS.INCRBY over a NaN newest value is refused.
    assert_eq!(
        h.run("TS.INCRBY t 1"),
        err("ERR TSDB: the value at the maximum existing timestamp is NaN")
    );
    // GROUPBY reduces with countNaN / countAll too.
    h.run("TS.CREATE u LABELS type temperature");
    h.run("TS.MADD u 1000 NaN u 1003 1");
    let Frame::Map(groups) =
        h.run("TS.MRANGE 1000 1003 FILTER type=temperature GROUPBY type REDUCE countNaN")
    else {
        panic!()
    };
    let Frame::Array(parts) = &groups[0].1 else {
        panic!()
    };
    assert_eq!(parts[3], arr(vec![s(1000, 2.0), s(1003, 0.0)]));
    // A compaction rule may count NaN samples (redis.io TS.CREATERULE lists countNaN).
    h.run("TS.CREATE src");
    h.run("TS.CREATE nans");
    assert_eq!(
        h.run("TS.CREATERULE src nans AGGREGATION countNaN 10"),
        Frame::ok()
    );
    h.run("TS.MADD src 1 NaN src 2 NaN src 3 1 src 11 NaN src 21 1");
    assert_eq!(h.run("TS.RANGE nans - +"), arr(vec![s(0, 2.0), s(10, 1.0)]));
    let Frame::Map(rules) = info_field(&h.run("TS.INFO src"), "rules") else {
        panic!()
    };
    assert_eq!(rules[0].1, arr(vec![int(10), simple("COUNTNAN"), int(0)]));
    h.check("t");
    h.reopen();
    assert_eq!(
        h.run("TS.RANGE t 1000 1006 AGGREGATION countNan 1000"),
        arr(vec![s(1000, 3.0)])
    );
}

fn nrow(ts: i64, v: &[f64]) -> Frame {
    arr(vec![
        int(ts),
        arr(v.iter().map(|x| Frame::Double(*x)).collect()),
    ])
}

/// Compares replies with NaN equal to NaN (Frame's PartialEq follows f64's).
fn same(a: &Frame, b: &Frame) -> bool {
    match (a, b) {
        (Frame::Double(x), Frame::Double(y)) => x.to_bits() == y.to_bits() || x == y,
        (Frame::Array(x), Frame::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        _ => a == b,
    }
}

/// The examples of redis.io TS.NRANGE (Redis 8.10) and redis-py's nrange tests.
#[test]
fn nrange_joins_series_by_timestamp() {
    let mut h = Harness::new();
    h.run("TS.CREATE {sensor}:1");
    h.run("TS.CREATE {sensor}:2");
    h.run("TS.MADD {sensor}:1 1000 10 {sensor}:1 2000 12");
    h.run("TS.MADD {sensor}:2 1000 20 {sensor}:2 3000 25");
    let nan = f64::NAN;
    let got = h.run("TS.NRANGE 2 {sensor}:1 {sensor}:2 - +");
    let want = arr(vec![
        nrow(1000, &[10.0, 20.0]),
        nrow(2000, &[12.0, nan]),
        nrow(3000, &[nan, 25.0]),
    ]);
    assert!(same(&got, &want), "{got:?}");
    let got = h.run("TS.NREVRANGE 2 {sensor}:1 {sensor}:2 - + COUNT 2");
    let want = arr(vec![nrow(3000, &[nan, 25.0]), nrow(2000, &[12.0, nan])]);
    assert!(same(&got, &want), "{got:?}");
    assert_eq!(
        h.run("TS.NRANGE 2 {sensor}:1 {sensor}:1 - + COUNT 1"),
        arr(vec![nrow(1000, &[10.0, 10.0])])
    );
    h.run("TS.CREATE {sensor}:3");
    h.run("TS.CREATE {sensor}:4");
    h.run("TS.MADD {sensor}:3 1000 10 {sensor}:3 1100 20 {sensor}:3 2000 30");
    h.run("TS.MADD {sensor}:4 1000 5 {sensor}:4 1100 15 {sensor}:4 2000 25");
    assert_eq!(
        h.run("TS.NRANGE 2 {sensor}:3 {sensor}:4 - + AGGREGATION avg sum 1000"),
        arr(vec![nrow(1000, &[15.0, 20.0]), nrow(2000, &[30.0, 25.0])])
    );
    assert_eq!(
        h.run("TS.NRANGE 2 {sensor}:3 {sensor}:4 - + AGGREGATION avg,max sum 1000"),
        arr(vec![
            nrow(1000, &[15.0, 20.0, 20.0]),
            nrow(2000, &[30.0, 30.0, 25.0])
        ])
    );
    // A bucket only one key has: the other key's values are NaN.
    let got = h.run("TS.NREVRANGE 2 {sensor}:1 {sensor}:2 0 3500 AGGREGATION max,count min 2000");
    let want = arr(vec![
        nrow(2000, &[12.0, 1.0, 25.0]),
        nrow(0, &[10.0, 1.0, 20.0]),
    ]);
    assert!(same(&got, &want), "{got:?}");
    h.proto = Protocol::Resp2;
    let got = h.run("TS.NRANGE 2 {sensor}:1 {sensor}:2 2000 2000");
    let resp2 = |x: &str| Frame::Simple(Bytes::copy_from_slice(x.as_bytes()));
    assert_eq!(
        got,
        arr(vec![arr(vec![
            int(2000),
            arr(vec![resp2("12"), resp2("nan")])
        ])])
    );
    h.proto = Protocol::Resp3;
    h.run("TS.CREATE empty");
    assert_eq!(h.run("TS.NRANGE 1 empty - +"), arr(vec![]));
    assert_eq!(
        h.run("TS.NRANGE 2 {sensor}:1 nope - +"),
        err("ERR TSDB: the key does not exist")
    );
    assert_eq!(
        h.run("TS.NRANGE 2 {sensor}:1 {sensor}:2 - + AGGREGATION max 10"),
        err("ERR TSDB: Couldn't parse AGGREGATION")
    );
    assert_eq!(
        h.run("TS.NRANGE 2 {sensor}:1 {sensor}:2 - + AGGREGATION max 10 10"),
        err("ERR TSDB: Unknown aggregation type")
    );
    assert_eq!(
        h.run("TS.NRANGE 0 {sensor}:1 - +"),
        err("ERR TSDB: numkeys must be a positive integer")
    );
    assert_eq!(
        h.run("TS.NRANGE 3 {sensor}:1 {sensor}:2 - +"),
        err("ERR wrong number of arguments for 'ts.nrange' command")
    );
    assert_eq!(
        h.run("TS.NRANGE 1 {sensor}:1 - + ALIGN start AGGREGATION avg 10"),
        err("ERR TSDB: start alignment can only be used with explicit start timestamp")
    );
}

const WORDS: &[&str] = &[
    "-",
    "+",
    "0",
    "5",
    "1000",
    "1e3",
    "x",
    "NaN",
    "+4",
    "ALIGN",
    "start",
    "end",
    "AGGREGATION",
    "avg",
    "countNaN",
    "max,min",
    "twa",
    "10",
    "BUCKETTIMESTAMP",
    "~",
    "EMPTY",
    "COUNT",
    "FILTER",
    "t=1",
    "GROUPBY",
    "t",
    "REDUCE",
    "sum",
    "EXCLUDEEMPTY",
    "WITHLABELS",
    "SELECTED_LABELS",
    "LATEST",
    "FILTER_BY_TS",
    "FILTER_BY_VALUE",
    "TIMESTAMP",
    "LABELS",
    "UNCOMPRESSED",
    "IGNORE",
    "DUPLICATE_POLICY",
    "last",
    "a",
    "b",
    "2",
    "*",
];

const HEADS: &[&str] = &[
    "TS.RANGE a",
    "TS.REVRANGE b",
    "TS.MRANGE",
    "TS.MREVRANGE",
    "TS.NRANGE 2 a b",
    "TS.NREVRANGE 1 a",
    "TS.MADD",
    "TS.INCRBY a 1",
    "TS.DECRBY c",
    "TS.ADD a",
];

proptest! {
    /// Whatever option soup a client sends, parsing and running it answers (a reply or an
    /// error frame) and never panics; the series stay consistent.
    #[test]
    fn option_soup_never_panics(
        cmds in proptest::collection::vec(
            (0..HEADS.len(), proptest::collection::vec(0..WORDS.len(), 0..12)),
            1..20,
        ),
    ) {
        let mut h = Harness::new();
        h.run("TS.CREATE a DUPLICATE_POLICY last LABELS t 1");
        h.run("TS.CREATE b LABELS t 1");
        h.run("TS.MADD a 0 1 a 5 NaN a 12 3 b 5 2 b 1000 4");
        for (head, words) in cmds {
            let mut line = HEADS[head].to_string();
            for w in words {
                line.push(' ');
                line.push_str(WORDS[w]);
            }
            for proto in [Protocol::Resp2, Protocol::Resp3] {
                h.proto = proto;
                let _ = h.run(&line);
            }
        }
        h.check("a");
        h.check("b");
    }
}
