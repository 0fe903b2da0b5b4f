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
    h.proto = Protocol::Resp2;
    assert_eq!(h.run("TS.MRANGE 1 50 EXCLUDEEMPTY FILTER s=1"), arr(vec![]));
}
