//! Command-level tests of the engine through `state::Db` (replies as RESP3/RESP2 frames) and a
//! model-based property test against a `BTreeMap`, with restarts and crashes.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;

use crate::UnixMillis;
use crate::cmd::{Command, parse};
use crate::db::Tx;
use crate::resp::{Frame, Protocol};
use crate::state::Db;
use crate::store::{MemStore, Space, Store, StoreRead};

use super::engine::load;
use super::store::check_series;

struct Harness {
    db: Db,
    store: MemStore,
    proto: Protocol,
    unix: u64,
}

impl Harness {
    fn new() -> Self {
        Self {
            db: Db::default(),
            store: MemStore::new(),
            proto: Protocol::Resp3,
            unix: 1_000_000,
        }
    }

    fn run(&mut self, line: &str) -> Frame {
        self.run_args(&crate::cmd::test_args(line))
    }

    fn run_args(&mut self, args: &[Bytes]) -> Frame {
        match parse(args) {
            Err(e) => Frame::error(e.to_string()),
            Ok(Command::Write(w)) => {
                let mut tx = Tx::new(&self.store);
                let reply = self.db.apply(&mut tx, &w, UnixMillis(self.unix)).unwrap();
                let batch = tx.into_batch();
                self.store.write(batch).unwrap();
                reply
            }
            Ok(Command::Read(r)) => self.db.read(&self.store, &r, self.proto).unwrap(),
            Ok(other) => panic!("not a data command: {other:?}"),
        }
    }

    fn reopen(&mut self) {
        self.db = Db::open(&self.store).unwrap();
    }

    fn check(&self, key: &str) {
        let meta = load(&self.store, key.as_bytes()).unwrap().unwrap();
        check_series(&self.store, &meta).unwrap();
    }
}

fn int(n: i64) -> Frame {
    Frame::Integer(n)
}

fn s(ts: i64, v: f64) -> Frame {
    Frame::Array(vec![int(ts), Frame::Double(v)])
}

fn bulk(x: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(x.as_bytes()))
}

fn err(x: &str) -> Frame {
    Frame::error(x)
}

fn arr(v: Vec<Frame>) -> Frame {
    Frame::Array(v)
}

fn info_field(info: &Frame, name: &str) -> Frame {
    let Frame::Map(fields) = info else {
        panic!("{info:?}")
    };
    fields
        .iter()
        .find(|(k, _)| *k == Frame::Simple(Bytes::copy_from_slice(name.as_bytes())))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn create_add_get_range_and_documented_errors() {
    let mut h = Harness::new();
    assert_eq!(h.run("TS.CREATE t RETENTION 0 LABELS sym A"), Frame::ok());
    assert_eq!(h.run("TS.CREATE t"), err("ERR TSDB: key already exists"));
    assert_eq!(h.run("TS.ADD t 10 1.5"), int(10));
    assert_eq!(h.run("TS.ADD t * 2"), int(1_000_000));
    assert_eq!(
        h.run("TS.ADD t 10 9"),
        err(
            "ERR TSDB: Error at upsert, update is not supported when DUPLICATE_POLICY is set to BLOCK mode"
        )
    );
    assert_eq!(h.run("TS.ADD t 10 9 ON_DUPLICATE SUM"), int(10));
    assert_eq!(h.run("TS.GET t"), s(1_000_000, 2.0));
    assert_eq!(
        h.run("TS.RANGE t - +"),
        arr(vec![s(10, 10.5), s(1_000_000, 2.0)])
    );
    assert_eq!(
        h.run("TS.REVRANGE t - + COUNT 1"),
        arr(vec![s(1_000_000, 2.0)])
    );
    assert_eq!(
        h.run("TS.RANGE nope - +"),
        err("ERR TSDB: the key does not exist")
    );
    assert_eq!(
        h.run("TS.GET nope"),
        err("ERR TSDB: the key does not exist")
    );
    h.run("SET str x");
    assert_eq!(
        h.run("TS.ADD str 1 1"),
        err("WRONGTYPE Operation against a key holding the wrong kind of value")
    );
    assert_eq!(h.run("TYPE t"), Frame::simple("TSDB-TYPE"));
    assert_eq!(h.run("TS.CREATE e"), Frame::ok());
    assert_eq!(h.run("TS.GET e"), arr(vec![]));
    h.check("t");
}

#[test]
fn resp2_replies_use_strings_and_pair_arrays() {
    let mut h = Harness::new();
    h.proto = Protocol::Resp2;
    h.run("TS.ADD t 1 2.5 LABELS a 1");
    assert_eq!(
        h.run("TS.RANGE t - +"),
        arr(vec![arr(vec![int(1), Frame::simple("2.5")])])
    );
    assert_eq!(
        h.run("TS.MGET WITHLABELS FILTER a=1"),
        arr(vec![arr(vec![
            bulk("t"),
            arr(vec![arr(vec![bulk("a"), bulk("1")])]),
            arr(vec![int(1), Frame::simple("2.5")]),
        ])])
    );
    let Frame::Array(info) = h.run("TS.INFO t") else {
        panic!()
    };
    assert_eq!(info[0], Frame::simple("totalSamples"));
    assert_eq!(info[1], int(1));
    let labels_at = info
        .iter()
        .position(|f| *f == Frame::simple("labels"))
        .unwrap();
    assert_eq!(
        info[labels_at + 1],
        arr(vec![arr(vec![bulk("a"), bulk("1")])])
    );
}

#[test]
fn duplicate_policies_merge() {
    let mut h = Harness::new();
    for (policy, want) in [
        ("FIRST", 1.0),
        ("LAST", 5.0),
        ("MIN", 1.0),
        ("MAX", 5.0),
        ("SUM", 6.0),
    ] {
        let key = format!("d{policy}");
        h.run(&format!(
            "TS.CREATE {key} DUPLICATE_POLICY {policy} CHUNK_SIZE 48"
        ));
        // Fill and seal a chunk so the duplicate lands in a sealed chunk too.
        for ts in 1..=5 {
            h.run(&format!("TS.ADD {key} {ts} 1"));
        }
        h.run(&format!("TS.ADD {key} 2 5"));
        assert_eq!(
            h.run(&format!("TS.RANGE {key} 2 2")),
            arr(vec![s(2, want)]),
            "{policy}"
        );
        h.check(&key);
    }
}

#[test]
fn sealing_out_of_order_and_delete_keep_invariants() {
    let mut h = Harness::new();
    h.run("TS.CREATE t CHUNK_SIZE 48");
    for ts in (0..40).map(|i| i * 10) {
        h.run(&format!("TS.ADD t {ts} {ts}"));
    }
    h.check("t");
    let info = h.run("TS.INFO t");
    assert_eq!(info_field(&info, "totalSamples"), int(40));
    let Frame::Integer(chunks) = info_field(&info, "chunkCount") else {
        panic!()
    };
    assert!(chunks >= 10, "{chunks}");
    // Out of order into sealed chunks, before the first chunk, and between samples.
    assert_eq!(h.run("TS.ADD t 5 0.5"), int(5));
    assert_eq!(h.run("TS.ADD t 395 1"), int(395));
    h.run("TS.ALTER t DUPLICATE_POLICY LAST");
    h.run("TS.ADD t 0 -1");
    h.check("t");
    assert_eq!(
        h.run("TS.RANGE t 0 10"),
        arr(vec![s(0, -1.0), s(5, 0.5), s(10, 10.0)])
    );
    assert_eq!(h.run("TS.DEL t 5 100"), int(11));
    h.check("t");
    assert_eq!(
        h.run("TS.RANGE t 0 120"),
        arr(vec![s(0, -1.0), s(110, 110.0), s(120, 120.0)])
    );
    assert_eq!(h.run("TS.DEL t 300 +"), int(11));
    h.check("t");
    assert_eq!(h.run("TS.GET t"), s(290, 290.0));
    h.reopen();
    assert_eq!(h.run("TS.GET t"), s(290, 290.0));
}

#[test]
fn retention_refuses_old_samples_and_trims_chunks() {
    let mut h = Harness::new();
    h.run("TS.CREATE t RETENTION 100 CHUNK_SIZE 48");
    for ts in 0..50 {
        h.run(&format!("TS.ADD t {} 1", ts * 10));
    }
    assert_eq!(
        h.run("TS.ADD t 100 1"),
        err("ERR TSDB: Timestamp is older than retention")
    );
    let Frame::Array(rows) = h.run("TS.RANGE t - +") else {
        panic!()
    };
    assert_eq!(rows.len(), 11, "samples 390..=490 stay visible");
    let info = h.run("TS.INFO t");
    let Frame::Integer(total) = info_field(&info, "totalSamples") else {
        panic!()
    };
    assert!(total < 20, "whole chunks were trimmed: {total}");
    h.check("t");
}

#[test]
fn ignore_drops_close_samples() {
    let mut h = Harness::new();
    h.run("TS.CREATE t DUPLICATE_POLICY LAST IGNORE 10 0.5");
    assert_eq!(h.run("TS.ADD t 100 1"), int(100));
    assert_eq!(h.run("TS.ADD t 105 1.2"), int(100));
    assert_eq!(h.run("TS.ADD t 105 2"), int(105));
    assert_eq!(h.run("TS.RANGE t - +"), arr(vec![s(100, 1.0), s(105, 2.0)]));
}

#[test]
fn incrby_decrby_madd() {
    let mut h = Harness::new();
    assert_eq!(h.run("TS.INCRBY c 5 TIMESTAMP 10"), int(10));
    assert_eq!(h.run("TS.INCRBY c 2 TIMESTAMP 10"), int(10));
    assert_eq!(h.run("TS.DECRBY c 1 TIMESTAMP 20"), int(20));
    assert_eq!(
        h.run("TS.INCRBY c 1 TIMESTAMP 5"),
        err("ERR TSDB: timestamp must be equal to or higher than the maximum existing timestamp")
    );
    assert_eq!(h.run("TS.RANGE c - +"), arr(vec![s(10, 7.0), s(20, 6.0)]));
    assert_eq!(
        h.run("TS.MADD c 30 1 nope 1 1 c 20 3"),
        arr(vec![
            int(30),
            err("ERR TSDB: the key does not exist"),
            err(
                "ERR TSDB: Error at upsert, update is not supported when DUPLICATE_POLICY is set to BLOCK mode"
            ),
        ])
    );
}

#[test]
fn compaction_rules_chain_backfill_and_refuse_cycles() {
    let mut h = Harness::new();
    h.run("TS.CREATE src");
    for ts in 0..25 {
        h.run(&format!("TS.ADD src {ts} {ts}"));
    }
    h.run("TS.CREATE m10");
    h.run("TS.CREATE m20");
    assert_eq!(
        h.run("TS.CREATERULE src m10 AGGREGATION sum 10"),
        Frame::ok()
    );
    // Backfilled from existing samples: buckets 0 and 10 are closed, 20 is open.
    assert_eq!(
        h.run("TS.RANGE m10 - +"),
        arr(vec![s(0, 45.0), s(10, 145.0)])
    );
    assert_eq!(
        h.run("TS.RANGE m10 - + LATEST"),
        arr(vec![s(0, 45.0), s(10, 145.0), s(20, 110.0)])
    );
    assert_eq!(
        h.run("TS.CREATERULE m10 m20 AGGREGATION max 20"),
        Frame::ok()
    );
    // m10's newest sample (10) is in m20's open bucket [0, 20).
    assert_eq!(h.run("TS.RANGE m20 - +"), arr(vec![]));
    assert_eq!(h.run("TS.RANGE m20 - + LATEST"), arr(vec![s(0, 145.0)]));
    assert_eq!(
        h.run("TS.CREATERULE m20 src AGGREGATION max 20"),
        err("ERR TSDB: the compaction rule would create a cycle")
    );
    assert_eq!(
        h.run("TS.CREATERULE src m10 AGGREGATION max 20"),
        err("ERR TSDB: the destination key already has a src rule")
    );
    assert_eq!(
        h.run("TS.CREATERULE src src AGGREGATION max 20"),
        err("ERR TSDB: the source key and destination key should be different")
    );
    // A new sample closes src's bucket 20, which closes m20's bucket 0 down the chain.
    h.run("TS.ADD src 31 1");
    assert_eq!(h.run("TS.GET m10"), s(20, 110.0));
    assert_eq!(h.run("TS.GET m20"), s(0, 145.0));
    h.run("TS.ADD src 45 1");
    assert_eq!(h.run("TS.GET m10"), s(30, 1.0));
    // An out-of-order sample in a closed bucket recomputes it.
    h.run("TS.ADD src 25 0.5 ON_DUPLICATE SUM");
    assert_eq!(h.run("TS.RANGE m10 20 20"), arr(vec![s(20, 110.5)]));
    assert_eq!(h.run("TS.RANGE m20 20 20"), arr(vec![]));
    assert_eq!(h.run("TS.GET m20 LATEST"), s(20, 110.5));
    h.run("TS.ADD src 61 1");
    assert_eq!(h.run("TS.RANGE m20 20 20"), arr(vec![s(20, 110.5)]));
    // Deleting source samples recomputes the closed buckets.
    assert_eq!(h.run("TS.DEL src 0 9"), int(10));
    assert_eq!(h.run("TS.RANGE m10 0 0"), arr(vec![]));
    let info = h.run("TS.INFO m10");
    assert_eq!(info_field(&info, "sourceKey"), bulk("src"));
    assert_eq!(h.run("TS.DELETERULE src m10"), Frame::ok());
    assert_eq!(
        h.run("TS.DELETERULE src m10"),
        err("ERR TSDB: compaction rule does not exist")
    );
    assert_eq!(info_field(&h.run("TS.INFO m10"), "sourceKey"), Frame::Null);
    for k in ["src", "m10", "m20"] {
        h.check(k);
    }
}

#[test]
fn multi_series_queries_and_label_discovery() {
    let mut h = Harness::new();
    h.run("TS.CREATE a LABELS type stock sym A");
    h.run("TS.CREATE b LABELS type stock sym B");
    h.run("TS.CREATE c LABELS type fx");
    for (k, ts, v) in [
        ("a", 1, 1.0),
        ("a", 2, 3.0),
        ("b", 1, 10.0),
        ("b", 2, 30.0),
        ("c", 1, 7.0),
    ] {
        h.run(&format!("TS.ADD {k} {ts} {v}"));
    }
    assert_eq!(
        h.run("TS.QUERYINDEX type=stock"),
        Frame::Set(vec![bulk("a"), bulk("b")])
    );
    assert_eq!(
        h.run("TS.QUERYINDEX type=(stock,fx) sym!=A"),
        Frame::Set(vec![bulk("b"), bulk("c")])
    );
    assert_eq!(h.run("TS.QUERYINDEX type=stock sym="), Frame::Set(vec![]));
    assert_eq!(
        h.run("TS.MGET SELECTED_LABELS sym FILTER type=stock"),
        Frame::Map(vec![
            (
                bulk("a"),
                arr(vec![Frame::Map(vec![(bulk("sym"), bulk("A"))]), s(2, 3.0)])
            ),
            (
                bulk("b"),
                arr(vec![Frame::Map(vec![(bulk("sym"), bulk("B"))]), s(2, 30.0)])
            ),
        ])
    );
    let no_aggs = Frame::Map(vec![(Frame::simple("aggregators"), arr(vec![]))]);
    assert_eq!(
        h.run("TS.MREVRANGE - + FILTER sym=A"),
        Frame::Map(vec![(
            bulk("a"),
            arr(vec![
                Frame::Map(vec![]),
                no_aggs,
                arr(vec![s(2, 3.0), s(1, 1.0)])
            ])
        )])
    );
    let Frame::Map(groups) =
        h.run("TS.MRANGE - + WITHLABELS FILTER type=stock GROUPBY type REDUCE sum")
    else {
        panic!()
    };
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].0, bulk("type=stock"));
    let Frame::Array(parts) = &groups[0].1 else {
        panic!()
    };
    // RESP3 as RedisTimeSeries sends it: [labels, {reducers}, {sources}, samples] (this
    // asserted tickdb's earlier merged [labels, {reducers, sources}, samples]).
    assert_eq!(parts.len(), 4);
    assert_eq!(parts[3], arr(vec![s(1, 11.0), s(2, 33.0)]));
    assert_eq!(
        h.run("TS.QUERYLABELS LABELS"),
        Frame::Set(vec![bulk("sym"), bulk("type")])
    );
    assert_eq!(
        h.run("TS.QUERYLABELS VALUES type"),
        Frame::Set(vec![bulk("fx"), bulk("stock")])
    );
    assert_eq!(
        h.run("TS.QUERYLABELS VALUES sym FILTER type=stock sym!=B"),
        Frame::Set(vec![bulk("A")])
    );
    assert_eq!(
        h.run("TS.QUERYLABELS LABELS FILTER type=fx"),
        Frame::Set(vec![bulk("type")])
    );
    assert_eq!(h.run("TS.QUERYLABELS NAMES"), err("ERR syntax error"));
    assert_eq!(h.run("TS.MDEL 2 2 FILTER type=stock"), int(2));
    assert_eq!(h.run("TS.GET a"), s(1, 1.0));
    // Re-labelling moves index entries.
    h.run("TS.ALTER c LABELS type stock");
    assert_eq!(
        h.run("TS.QUERYINDEX type=stock"),
        Frame::Set(vec![bulk("a"), bulk("b"), bulk("c")])
    );
    assert_eq!(
        h.run("TS.QUERYLABELS VALUES type"),
        Frame::Set(vec![bulk("stock")])
    );
}

#[test]
fn aggregation_ohlc_and_options() {
    let mut h = Harness::new();
    for (ts, v) in [(0, 5.0), (3, 9.0), (6, 1.0), (9, 4.0), (12, 7.0), (25, 2.0)] {
        h.run(&format!("TS.ADD p {ts} {v}"));
    }
    let row = |ts: i64, v: &[f64]| {
        let mut out = vec![int(ts)];
        out.extend(v.iter().map(|x| Frame::Double(*x)));
        arr(out)
    };
    assert_eq!(
        h.run("TS.RANGE p - + AGGREGATION first,max,min,last 10"),
        arr(vec![
            row(0, &[5.0, 9.0, 1.0, 4.0]),
            row(10, &[7.0, 7.0, 7.0, 7.0]),
            row(20, &[2.0, 2.0, 2.0, 2.0]),
        ])
    );
    assert_eq!(
        h.run("TS.REVRANGE p - + AGGREGATION count 10 COUNT 2"),
        arr(vec![s(20, 1.0), s(10, 1.0)])
    );
    assert_eq!(
        h.run("TS.RANGE p - + FILTER_BY_VALUE 4 8 FILTER_BY_TS 0 9 12 25"),
        arr(vec![s(0, 5.0), s(9, 4.0), s(12, 7.0)])
    );
    assert_eq!(
        h.run("TS.RANGE p 0 29 AGGREGATION sum 10 BUCKETTIMESTAMP end"),
        arr(vec![s(10, 19.0), s(20, 7.0), s(30, 2.0)])
    );
}

#[test]
fn deleting_a_series_removes_everything() {
    let mut h = Harness::new();
    h.run("TS.CREATE a CHUNK_SIZE 48 LABELS x 1");
    h.run("TS.CREATE d");
    h.run("TS.CREATERULE a d AGGREGATION avg 10");
    for ts in 0..20 {
        h.run(&format!("TS.ADD a {ts} 1"));
    }
    assert_eq!(h.run("DEL a"), int(1));
    assert_eq!(h.run("TS.QUERYINDEX x=1"), Frame::Set(vec![]));
    assert_eq!(info_field(&h.run("TS.INFO d"), "sourceKey"), Frame::Null);
    // Only d's own samples (one closed bucket) remain in the chunk space.
    let d = load(&h.store, b"d").unwrap().unwrap();
    let left = h.store.scan(Space::Chunks, b"", None, false).count() as u64;
    assert_eq!(left, d.head_samples + d.chunk_count);
    h.run("TS.ADD b 1 1 LABELS y 2");
    assert_eq!(h.run("SET b v"), Frame::ok());
    assert_eq!(h.run("TS.QUERYLABELS LABELS"), Frame::Set(vec![]));
    assert_eq!(h.run("FLUSHDB"), Frame::ok());
    assert_eq!(h.store.scan(Space::Chunks, b"", None, false).count(), 0);
    assert_eq!(h.db.key_count(), 0);
}

#[test]
fn seed_dialect_runs_on_the_engine() {
    let mut h = Harness::new();
    assert_eq!(h.run("TSDB_SET s 10 1.5"), Frame::ok());
    assert_eq!(h.run("TSDB_SET s 20 2.5"), Frame::ok());
    assert_eq!(h.run("TSDB_GET s 0 15"), arr(vec![s(10, 1.5)]));
    assert_eq!(h.run("TSDB_GET nope 0 15"), arr(vec![]));
    let mut tx = Tx::new(&h.store);
    let add = crate::cmd::WriteCmd::BatchAdd {
        key: "s".into(),
        ts: 30,
        value: 3.0,
    };
    assert_eq!(
        h.db.apply(&mut tx, &add, UnixMillis(0)).unwrap(),
        Frame::ok()
    );
    let batch = tx.into_batch();
    h.store.write(batch).unwrap();
    assert_eq!(h.run("TS.GET s"), s(30, 3.0));
}

#[test]
fn command_table_key_positions() {
    use crate::cmd::lookup;
    let madd = lookup(b"TS.MADD").unwrap();
    assert_eq!(madd.key_positions(7), vec![1, 4]);
    assert_eq!(
        lookup(b"ts.createrule").unwrap().key_positions(6),
        vec![1, 2]
    );
    for keyless in [
        "ts.mget",
        "ts.mrange",
        "ts.mrevrange",
        "ts.queryindex",
        "ts.mdel",
    ] {
        assert!(
            lookup(keyless.as_bytes())
                .unwrap()
                .key_positions(6)
                .is_empty()
        );
    }
    assert!(lookup(b"ts.add").unwrap().is_write());
    assert!(!lookup(b"ts.range").unwrap().is_write());
}

/// One step of the model test.
#[derive(Clone, Debug)]
enum Op {
    Add(u8, u64, i32),
    /// TS.ADDs applied in one transaction, as one apply round applies its entries.
    AddRound(Vec<(u8, u64, i32)>),
    MAdd(Vec<(u8, u64, i32)>),
    Del(u8, u64, u64),
    Range(u8, u64, u64),
    /// `TS.REVRANGE key from to COUNT n`: the newest `n`, read from the newest end.
    RevCount(u8, u64, u64, u64),
    Agg(u8, u64),
    Restart,
    /// Sync (or not), then crash: unsynced writes are lost.
    Crash(bool),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u8..3;
    let ts = 0u64..300;
    prop_oneof![
        6 => (key.clone(), ts.clone(), -50i32..50).prop_map(|(k, t, v)| Op::Add(k, t, v)),
        2 => prop::collection::vec((key.clone(), ts.clone(), -50i32..50), 1..8).prop_map(Op::MAdd),
        2 => prop::collection::vec((key.clone(), ts.clone(), -50i32..50), 1..12)
            .prop_map(Op::AddRound),
        1 => (key.clone(), ts.clone(), ts.clone()).prop_map(|(k, a, b)| Op::Del(k, a.min(b), a.max(b))),
        2 => (key.clone(), ts.clone(), ts.clone()).prop_map(|(k, a, b)| Op::Range(k, a.min(b), a.max(b))),
        2 => (key.clone(), ts.clone(), ts.clone(), 1u64..40)
            .prop_map(|(k, a, b, n)| Op::RevCount(k, a.min(b), a.max(b), n)),
        1 => (key.clone(), 1u64..50).prop_map(|(k, b)| Op::Agg(k, b)),
        1 => Just(Op::Restart),
        1 => any::<bool>().prop_map(Op::Crash),
    ]
}

type Model = BTreeMap<u8, BTreeMap<u64, f64>>;

fn model_rows(m: &Model, k: u8, from: u64, to: u64) -> Frame {
    let rows = m
        .get(&k)
        .into_iter()
        .flat_map(|s| s.range(from..=to))
        .map(|(t, v)| s(i64::try_from(*t).unwrap(), *v))
        .collect();
    arr(rows)
}

proptest! {
    // proptest's default config: 256 cases, PROPTEST_CASES=n sweeps longer.
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn engine_matches_a_btreemap_model(ops in prop::collection::vec(op(), 1..120)) {
        let mut h = Harness::new();
        // Policy SUM: duplicates add up, so the model is exact and order-sensitive.
        let mut live: Model = BTreeMap::new();
        let mut synced: Model = BTreeMap::new();
        // k0 feeds d0 with 25 ms sums from the start; k1 and k2 appear on first TS.ADD.
        h.run("TS.CREATE k0");
        h.run("TS.CREATE d0");
        prop_assert_eq!(h.run("TS.CREATERULE k0 d0 AGGREGATION sum 25"), Frame::ok());
        h.store.sync().unwrap();
        let mut created = [true, false, false];
        let mut synced_created = created;
        for o in ops {
            match o {
                Op::Add(k, t, v) => {
                    let r = h.run(&format!("TS.ADD k{k} {t} {v} ON_DUPLICATE SUM CHUNK_SIZE 64"));
                    prop_assert_eq!(r, int(i64::try_from(t).unwrap()));
                    *live.entry(k).or_default().entry(t).or_insert(0.0) += f64::from(v);
                    created[usize::from(k)] = true;
                }
                Op::AddRound(items) => {
                    let lines: Vec<String> = items
                        .iter()
                        .map(|(k, t, v)| format!("TS.ADD k{k} {t} {v} ON_DUPLICATE SUM CHUNK_SIZE 64"))
                        .collect();
                    one_round(&mut h, &lines);
                    for (k, t, v) in items {
                        *live.entry(k).or_default().entry(t).or_insert(0.0) += f64::from(v);
                        created[usize::from(k)] = true;
                    }
                }
                Op::MAdd(items) => {
                    let mut line = "TS.MADD".to_string();
                    let mut want = Vec::new();
                    let mut next = live.clone();
                    for (k, t, v) in &items {
                        line.push_str(&format!(" k{k} {t} {v}"));
                        if !created[usize::from(*k)] {
                            want.push(err("ERR TSDB: the key does not exist"));
                        } else if next.get(k).is_some_and(|s| s.contains_key(t)) {
                            want.push(err("ERR TSDB: Error at upsert, update is not supported when DUPLICATE_POLICY is set to BLOCK mode"));
                        } else {
                            next.entry(*k).or_default().insert(*t, f64::from(*v));
                            want.push(int(i64::try_from(*t).unwrap()));
                        }
                    }
                    prop_assert_eq!(h.run(&line), arr(want));
                    live = next;
                }
                Op::Del(k, a, b) => {
                    let r = h.run(&format!("TS.DEL k{k} {a} {b}"));
                    if created[usize::from(k)] {
                        let s = live.entry(k).or_default();
                        let doomed: Vec<u64> = s.range(a..=b).map(|(t, _)| *t).collect();
                        for t in &doomed {
                            s.remove(t);
                        }
                        prop_assert_eq!(r, int(i64::try_from(doomed.len()).unwrap()));
                    } else {
                        prop_assert_eq!(r, err("ERR TSDB: the key does not exist"));
                    }
                }
                Op::Range(k, a, b) => {
                    if created[usize::from(k)] {
                        prop_assert_eq!(h.run(&format!("TS.RANGE k{k} {a} {b}")), model_rows(&live, k, a, b));
                    }
                }
                Op::RevCount(k, a, b, n) => {
                    if created[usize::from(k)] {
                        let Frame::Array(mut rows) = model_rows(&live, k, a, b) else {
                            unreachable!("model_rows builds an array")
                        };
                        rows.reverse();
                        rows.truncate(usize::try_from(n).unwrap());
                        let got = h.run(&format!("TS.REVRANGE k{k} {a} {b} COUNT {n}"));
                        prop_assert_eq!(got, arr(rows));
                    }
                }
                Op::Agg(k, bucket) => {
                    if created[usize::from(k)] {
                        let mut sums: BTreeMap<u64, f64> = BTreeMap::new();
                        for (t, v) in live.get(&k).into_iter().flatten() {
                            *sums.entry(t / bucket * bucket).or_insert(0.0) += v;
                        }
                        let want = arr(sums.iter().map(|(t, v)| s(i64::try_from(*t).unwrap(), *v)).collect());
                        prop_assert_eq!(h.run(&format!("TS.RANGE k{k} - + AGGREGATION sum {bucket}")), want);
                    }
                }
                Op::Restart => h.reopen(),
                Op::Crash(sync) => {
                    if sync {
                        h.store.sync().unwrap();
                        synced = live.clone();
                        synced_created = created;
                    }
                    h.store.crash();
                    h.reopen();
                    live = synced.clone();
                    created = synced_created;
                }
            }
            for k in 0..3u8 {
                if created[usize::from(k)] {
                    let meta = load(&h.store, format!("k{k}").as_bytes()).unwrap().unwrap();
                    prop_assert_eq!(check_series(&h.store, &meta), Ok(()));
                }
            }
            // d0 holds the sum of every closed 25 ms bucket of k0 that has samples.
            let src = live.get(&0).cloned().unwrap_or_default();
            let open = src.keys().next_back().map(|l| l / 25 * 25);
            let mut sums: BTreeMap<u64, f64> = BTreeMap::new();
            for (t, v) in &src {
                if open.is_some_and(|o| t / 25 * 25 < o) {
                    *sums.entry(t / 25 * 25).or_insert(0.0) += v;
                }
            }
            let want = arr(sums.iter().map(|(t, v)| s(i64::try_from(*t).unwrap(), *v)).collect());
            prop_assert_eq!(h.run("TS.RANGE d0 - +"), want);
        }
        for k in 0..3u8 {
            if created[usize::from(k)] {
                prop_assert_eq!(h.run(&format!("TS.RANGE k{k} - +")), model_rows(&live, k, 0, u64::MAX));
            }
        }
    }
}

#[test]
fn one_big_batch_applies_in_one_transaction() {
    // A BATCH_FLUSH of many samples is one entry: one Tx that seals many times. This guards
    // against per-sample work growing with the transaction (it would take minutes here).
    let mut h = Harness::new();
    let mut tx = Tx::new(&h.store);
    for i in 0..200_000u64 {
        let add = crate::cmd::WriteCmd::BatchAdd {
            key: if i % 2 == 0 { "x".into() } else { "y".into() },
            ts: i,
            value: (i % 100) as f64 * 0.01,
        };
        assert_eq!(
            h.db.apply(&mut tx, &add, UnixMillis(0)).unwrap(),
            Frame::ok()
        );
    }
    let batch = tx.into_batch();
    h.store.write(batch).unwrap();
    h.check("x");
    h.check("y");
    let info = h.run("TS.INFO x");
    assert_eq!(info_field(&info, "totalSamples"), int(100_000));
    assert_eq!(h.run("TS.GET y"), s(199_999, 0.99));
}

#[test]
fn labels_with_spaces_are_found_by_quoted_filters() {
    let mut h = Harness::new();
    let args = |v: &[&str]| -> Vec<Bytes> {
        v.iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    };
    assert_eq!(
        h.run_args(&args(&["TS.CREATE", "ny", "LABELS", "city", "New York"])),
        Frame::ok()
    );
    assert_eq!(
        h.run_args(&args(&["TS.QUERYINDEX", "city=\"New York\""])),
        Frame::Set(vec![bulk("ny")])
    );
    assert_eq!(
        h.run_args(&args(&["TS.CREATE", "e", "LABELS", "", "x"])),
        err("ERR TSDB: Couldn't parse LABELS")
    );
}

/// Applies `lines` (writes) in one transaction, as one apply round does, and returns its batch
/// before writing it.
fn one_round(h: &mut Harness, lines: &[String]) -> crate::store::WriteBatch {
    let mut tx = Tx::new(&h.store);
    for line in lines {
        let Ok(Command::Write(w)) = parse(&crate::cmd::test_args(line)) else {
            panic!("not a write: {line}")
        };
        let reply = h.db.apply(&mut tx, &w, UnixMillis(h.unix)).unwrap();
        assert!(!reply.is_error(), "{line}: {reply:?}");
    }
    let batch = tx.into_batch();
    h.store.write(batch.clone()).unwrap();
    batch
}

/// In one round the series records are held typed and every sample works on a copy that shares
/// the labels, rules and source: a refused sample leaves the record as it was, and a change of
/// labels or rules in the round is the copy's own.
#[test]
fn refused_samples_in_a_round_leave_the_held_record_unchanged() {
    let mut h = Harness::new();
    h.run("TS.CREATE src RETENTION 100 LABELS sym AAPL venue X");
    h.run("TS.CREATE dst LABELS sym AAPL agg sum");
    h.run("TS.CREATERULE src dst AGGREGATION sum 10");
    let mut tx = Tx::new(&h.store);
    let mut apply = |tx: &mut Tx<'_, MemStore>, line: &str| {
        let Ok(Command::Write(w)) = parse(&crate::cmd::test_args(line)) else {
            panic!("not a write: {line}")
        };
        h.db.apply(tx, &w, UnixMillis(h.unix)).unwrap()
    };
    let block = "ERR TSDB: Error at upsert, update is not supported when DUPLICATE_POLICY is set to BLOCK mode";
    let refused = [
        ("TS.ADD src 1005 9", block),
        (
            "TS.ADD src 800 1",
            "ERR TSDB: Timestamp is older than retention",
        ),
        ("TS.MADD src 1005 9", block),
        (
            "TS.INCRBY src 1 TIMESTAMP 1000",
            "ERR TSDB: timestamp must be equal to or higher than the maximum existing timestamp",
        ),
    ];
    for line in ["TS.ADD src 1000 1", "TS.ADD src 1005 2"] {
        assert!(!apply(&mut tx, line).is_error(), "{line}");
    }
    let before = load(&tx, b"src").unwrap().unwrap();
    let dst_before = load(&tx, b"dst").unwrap().unwrap();
    for (line, want) in refused {
        let reply = apply(&mut tx, line);
        let reply = match reply {
            Frame::Array(mut v) => v.remove(0),
            r => r,
        };
        assert_eq!(reply, err(want), "{line}");
        assert_eq!(load(&tx, b"src").unwrap().unwrap(), before, "{line}");
        assert_eq!(load(&tx, b"dst").unwrap().unwrap(), dst_before, "{line}");
    }
    for line in ["TS.ALTER src LABELS sym MSFT", "TS.ADD src 1012 3"] {
        assert!(!apply(&mut tx, line).is_error(), "{line}");
    }
    assert_eq!(apply(&mut tx, "TS.ADD src 1012 5"), err(block));
    let after = load(&tx, b"src").unwrap().unwrap();
    assert_eq!(after.label(b"sym").map(|v| &v[..]), Some(&b"MSFT"[..]));
    assert_eq!(after.label(b"venue"), None);
    assert_eq!(after.info.rules, before.info.rules);
    assert_eq!(before.label(b"sym").map(|v| &v[..]), Some(&b"AAPL"[..]));
    let batch = tx.into_batch();
    h.store.write(batch).unwrap();
    h.check("src");
    h.check("dst");
    assert_eq!(
        h.run("TS.RANGE src - +"),
        arr(vec![s(1000, 1.0), s(1005, 2.0), s(1012, 3.0)])
    );
    assert_eq!(h.run("TS.RANGE dst - +"), arr(vec![s(1000, 3.0)]));
    let info = h.run("TS.INFO dst");
    assert_eq!(info_field(&info, "sourceKey"), bulk("src"));
    assert_eq!(
        h.run("TS.QUERYINDEX sym=MSFT"),
        Frame::Set(vec![bulk("src")]),
        "the index follows the altered labels"
    );
    assert_eq!(
        h.run("TS.QUERYINDEX sym=AAPL"),
        Frame::Set(vec![bulk("dst")])
    );
}

fn chunk_keys(store: &MemStore) -> usize {
    store.scan(Space::Chunks, b"", None, false).count()
}

#[test]
fn one_round_writes_one_record_and_one_head_run_per_series() {
    let mut h = Harness::new();
    h.run("TS.CREATE a");
    h.run("TS.CREATE b");
    let lines: Vec<String> = (0..50u64)
        .flat_map(|i| ["a", "b"].map(|k| format!("TS.ADD {k} {} {i}", 1000 + i)))
        .collect();
    let batch = one_round(&mut h, &lines);
    let puts = |space: Space| {
        batch
            .ops()
            .iter()
            .filter(|op| matches!(op, crate::store::Op::Put { space: s, .. } if *s == space))
            .count()
    };
    assert_eq!(puts(Space::Keys), 2, "one series record each");
    assert_eq!(puts(Space::Chunks), 2, "one head run each");
    assert_eq!(batch.len(), 4);
    h.check("a");
    h.check("b");
    assert_eq!(
        h.run("TS.REVRANGE a - + COUNT 2"),
        arr(vec![s(1049, 49.0), s(1048, 48.0)])
    );
    // A later round starts a run of its own; out-of-order samples merge into the run that
    // covers them.
    let batch = one_round(
        &mut h,
        &[
            "TS.ADD a 2000 1".into(),
            "TS.ADD a 2001 2".into(),
            "TS.ADD a 2001 3 ON_DUPLICATE SUM".into(),
            "TS.ADD a 2001 4 ON_DUPLICATE MAX".into(),
        ],
    );
    assert_eq!(
        batch.len(),
        2,
        "duplicates of the newest sample edit the open run"
    );
    assert_eq!(chunk_keys(&h.store), 3);
    assert_eq!(h.run("TS.GET a"), s(2001, 5.0));
    // A duplicate of the newest sample from an earlier round rewrites that run.
    one_round(&mut h, &["TS.ADD a 2001 1 ON_DUPLICATE SUM".into()]);
    assert_eq!(h.run("TS.RANGE a 2001 2001"), arr(vec![s(2001, 6.0)]));
    assert_eq!(
        h.run("TS.ADD a 2001 1"),
        err(
            "ERR TSDB: Error at upsert, update is not supported when DUPLICATE_POLICY is set to BLOCK mode"
        )
    );
    one_round(
        &mut h,
        &[
            "TS.ADD a 1020 7 ON_DUPLICATE SUM".into(),
            "TS.ADD a 1500 5".into(),
            "TS.ADD a 999 9".into(),
        ],
    );
    h.check("a");
    assert_eq!(
        chunk_keys(&h.store),
        4,
        "999 starts a run, 1500 joins the first"
    );
    assert_eq!(h.run("TS.RANGE a 1020 1020"), arr(vec![s(1020, 27.0)]));
    assert_eq!(
        h.run("TS.RANGE a 1049 2000"),
        arr(vec![s(1049, 49.0), s(1500, 5.0), s(2000, 1.0)])
    );
    assert_eq!(h.run("TS.DEL a 1000 1500"), int(51));
    h.check("a");
    assert_eq!(
        h.run("TS.RANGE a - +"),
        arr(vec![s(999, 9.0), s(2000, 1.0), s(2001, 6.0)])
    );
}

/// Applies `lines` as one apply round on top of a write-back layer, as the node does.
fn held_round(
    db: &mut Db,
    wb: &mut crate::writeback::WriteBack<MemStore>,
    index: &mut u64,
    lines: &[&str],
) -> Vec<Frame> {
    let mut tx = wb.round();
    let replies = lines
        .iter()
        .map(|line| match parse(&crate::cmd::test_args(line)) {
            Ok(Command::Write(w)) => db.apply(&mut tx, &w, UnixMillis(1_000_000)).unwrap(),
            other => panic!("not a write: {other:?}"),
        })
        .collect();
    drop(tx);
    *index += 1;
    wb.end_round(crate::raft::LogIndex(*index), 1, 0);
    replies
}

#[test]
fn a_run_the_write_back_layer_holds_grows_across_rounds_until_a_checkpoint() {
    use crate::writeback::{CheckpointPolicy, WriteBack};
    let mut wb = WriteBack::new(MemStore::new(), CheckpointPolicy::default()).unwrap();
    let mut db = Db::default();
    let mut index = 0;
    held_round(&mut db, &mut wb, &mut index, &["TS.CREATE a"]);
    for i in 0..10u64 {
        let line = format!("TS.ADD a {} {i}", 1000 + i);
        held_round(&mut db, &mut wb, &mut index, &[&line]);
    }
    assert_eq!(
        chunk_keys(wb.inner()),
        0,
        "nothing written before a checkpoint"
    );
    wb.checkpoint().unwrap();
    assert_eq!(
        chunk_keys(wb.inner()),
        1,
        "ten rounds of one sample each: one run"
    );
    // After a checkpoint the written run stays as it is: the next sample starts a run, and
    // later rounds (a duplicate of the newest sample among them) edit that one while it is held.
    held_round(&mut db, &mut wb, &mut index, &["TS.ADD a 1010 10"]);
    let replies = held_round(
        &mut db,
        &mut wb,
        &mut index,
        &["TS.ADD a 1010 5 ON_DUPLICATE SUM"],
    );
    assert_eq!(replies, vec![Frame::Integer(1010)]);
    held_round(&mut db, &mut wb, &mut index, &["TS.ADD a 1011 1"]);
    let get = parse(&crate::cmd::test_args("TS.GET a")).unwrap();
    let Command::Read(get) = get else {
        panic!("TS.GET reads")
    };
    assert_eq!(db.read(&wb, &get, Protocol::Resp3).unwrap(), s(1011, 1.0));
    wb.checkpoint().unwrap();
    assert_eq!(chunk_keys(wb.inner()), 2);
    let meta = load(wb.inner(), b"a").unwrap().unwrap();
    check_series(wb.inner(), &meta).unwrap();
    let range = parse(&crate::cmd::test_args("TS.RANGE a 1009 +")).unwrap();
    let Command::Read(range) = range else {
        panic!("TS.RANGE reads")
    };
    assert_eq!(
        db.read(wb.inner(), &range, Protocol::Resp3).unwrap(),
        arr(vec![s(1009, 9.0), s(1010, 15.0), s(1011, 1.0)])
    );
}

#[test]
fn head_samples_from_before_runs_are_read_merged_and_sealed() {
    use super::meta::keys;
    use crate::db::{Kind, Record};
    let mut h = Harness::new();
    h.run("TS.CREATE old CHUNK_SIZE 128 DUPLICATE_POLICY SUM");
    // The layout before head runs: one key per sample, the value's bits as its value.
    let mut meta = load(&h.store, b"old").unwrap().unwrap();
    let mut batch = crate::store::WriteBatch::new();
    for t in 1..=3u64 {
        let v = (t as f64).to_bits().to_be_bytes().to_vec();
        batch.put(Space::Chunks, keys::head(meta.id, t * 10), v);
    }
    meta.last = Some((30, 3.0));
    meta.head_samples = 3;
    meta.total_samples = 3;
    batch.put(
        Space::Keys,
        b"old".to_vec(),
        Record::encode(Kind::Series, 1, &meta.encode()),
    );
    h.store.write(batch).unwrap();
    h.reopen();
    h.check("old");
    assert_eq!(
        h.run("TS.REVRANGE old - + COUNT 2"),
        arr(vec![s(30, 3.0), s(20, 2.0)])
    );
    assert_eq!(h.run("TS.ADD old 20 1"), int(20));
    assert_eq!(h.run("TS.ADD old 25 1"), int(25));
    h.check("old");
    assert_eq!(
        h.run("TS.RANGE old - +"),
        arr(vec![s(10, 1.0), s(20, 3.0), s(25, 1.0), s(30, 3.0)])
    );
    // CHUNK_SIZE 128: the head seals at 8 samples, legacy and runs together.
    for t in 31..=34 {
        h.run(&format!("TS.ADD old {t} 0"));
    }
    h.check("old");
    let info = h.run("TS.INFO old");
    assert_eq!(info_field(&info, "totalSamples"), int(8));
    assert_eq!(info_field(&info, "chunkCount"), int(1));
}

#[test]
fn head_runs_stay_bounded_with_a_big_chunk_size() {
    let mut h = Harness::new();
    h.run("TS.CREATE big CHUNK_SIZE 1048576");
    let lines: Vec<String> = (0..600u64)
        .map(|i| format!("TS.ADD big {} {i}", i * 10))
        .collect();
    one_round(&mut h, &lines);
    // In-order appends stop at 256 samples per run.
    assert_eq!(chunk_keys(&h.store), 3);
    // Out-of-order samples all land in the first run, which splits rather than grow.
    for j in 1..=9u64 {
        let lines: Vec<String> = (0..60u64)
            .map(|i| format!("TS.ADD big {} 0.5", i * 10 + j))
            .collect();
        one_round(&mut h, &lines);
    }
    h.check("big");
    let longest = h
        .store
        .scan(Space::Chunks, b"", None, false)
        .map(|kv| kv.unwrap().1.len())
        .max()
        .unwrap();
    assert!(longest <= 1 + 16 * 512, "a run of {longest} bytes");
    assert!(chunk_keys(&h.store) > 3);
    let info = h.run("TS.INFO big");
    assert_eq!(info_field(&info, "totalSamples"), int(1140));
    assert_eq!(
        h.run("TS.RANGE big 9 11"),
        arr(vec![s(9, 0.5), s(10, 1.0), s(11, 0.5)])
    );
}
/// The RedisTimeSeries command differences of issue 11, each against the redis.io page.
mod compat;

/// `ENCODING UNCOMPRESSED` is reported at the raw size of its samples, so a compressed series
/// reports less memory than an uncompressed one with the same samples (redis-py's
/// `test_uncompressed`) once chunks seal, and never more before.
#[test]
fn uncompressed_series_report_their_raw_size() {
    let mut h = Harness::new();
    h.run("TS.CREATE c");
    h.run("TS.CREATE u ENCODING UNCOMPRESSED");
    let memory = |h: &mut Harness, key: &str| match info_field(
        &h.run(&format!("TS.INFO {key}")),
        "memoryUsage",
    ) {
        Frame::Integer(n) => n,
        other => panic!("{other:?}"),
    };
    for ts in 0..1000 {
        h.run(&format!("TS.ADD c {ts} {ts}"));
        h.run(&format!("TS.ADD u {ts} {ts}"));
        assert!(memory(&mut h, "c") <= memory(&mut h, "u"), "after {ts}");
    }
    let raw = memory(&mut h, "u") - memory(&mut h, "c");
    assert!(raw > 1000 * 8, "{raw}");
}

/// `(timestamp, value bits per aggregator)` of an aggregated range reply (RESP3).
fn agg_rows(reply: &Frame) -> Vec<(i64, Vec<u64>)> {
    let Frame::Array(rows) = reply else {
        panic!("not rows: {reply:?}")
    };
    rows.iter()
        .map(|row| match row {
            Frame::Array(cells) => match cells.split_first() {
                Some((Frame::Integer(ts), values)) => (
                    *ts,
                    values
                        .iter()
                        .map(|v| match v {
                            Frame::Double(v) => v.to_bits(),
                            other => panic!("not a double: {other:?}"),
                        })
                        .collect(),
                ),
                _ => panic!("not a row: {row:?}"),
            },
            _ => panic!("not a row: {row:?}"),
        })
        .collect()
}

proptest! {
    /// An aggregated range folds samples as the store's chunks decode (`Aggregation`), with its
    /// neighbours read from the store; whatever the chunk size (sealed chunks of either
    /// encoding plus head runs), it equals `aggregate` over all the series' samples in memory.
    #[test]
    fn streamed_aggregation_matches_aggregate_over_all_samples(
        points in prop::collection::vec((1u64..400, -3i64..=3), 1..1500),
        decimal in any::<bool>(),
        chunk_size in prop::sample::select(vec![64u64, 256, 4096]),
        (lo, hi) in (-500i64..3000, 0i64..3000),
        aggs in prop::collection::vec(prop::sample::select(super::aggregate::Aggregator::ALL.to_vec()), 1..4),
        bucket in prop_oneof![1u64..50, 50u64..5000],
        align in prop::option::of(0u64..10_000),
        empty in any::<bool>(),
        reverse in any::<bool>(),
        count in prop::option::of(1u64..20),
    ) {
        use super::aggregate::{AggSpec, BucketTimestamp, aggregate};
        let mut h = Harness::new();
        h.run(&format!("TS.CREATE k CHUNK_SIZE {chunk_size}"));
        let (mut ts, mut cents) = (1_000_000u64, 10_000i64);
        let mut samples = Vec::with_capacity(points.len());
        for (gap, step) in points {
            ts += gap;
            cents += step;
            let value = if decimal { cents as f64 / 100.0 } else { cents as f64 * 0.37 };
            samples.push((ts, value));
        }
        for batch in samples.chunks(100) {
            let mut line = "TS.MADD".to_string();
            for (t, v) in batch {
                line.push_str(&format!(" k {t} {v}"));
            }
            h.run(&line);
        }
        h.check("k");
        // The range starts before, inside or after the samples and covers some or all of them.
        let first = samples[0].0;
        let from = first.saturating_add_signed(lo * 100);
        let to = from + u64::try_from(hi).unwrap() * 100;
        let names: Vec<&str> = aggs.iter().map(|a| a.name()).collect();
        let mut line = format!(
            "TS.{} k {from} {to}",
            if reverse { "REVRANGE" } else { "RANGE" }
        );
        if let Some(n) = count {
            line.push_str(&format!(" COUNT {n}"));
        }
        if let Some(a) = align {
            line.push_str(&format!(" ALIGN {a}"));
        }
        line.push_str(&format!(" AGGREGATION {} {bucket}", names.join(",")));
        if empty {
            line.push_str(" EMPTY");
        }
        let spec = AggSpec {
            aggregators: aggs,
            bucket_ms: bucket,
            align: align.unwrap_or(0),
            bucket_ts: BucketTimestamp::Start,
            empty,
        };
        let mut want = aggregate(samples.iter().copied(), &spec, (from, to), reverse).unwrap();
        want.truncate(count.map_or(usize::MAX, |n| usize::try_from(n).unwrap()));
        let want: Vec<(i64, Vec<u64>)> = want
            .into_iter()
            .map(|(t, vs)| (i64::try_from(t).unwrap(), vs.iter().map(|v| v.to_bits()).collect()))
            .collect();
        prop_assert_eq!(agg_rows(&h.run(&line)), want, "{}", line);
    }
}
