//! The state machine's share of ingest: apply rounds of `TS.MADD` (32 commands of 100
//! samples across 1,000 series, one transaction and one store batch per round, as the node
//! applies a round of committed entries) to an in-memory store.
//! `cargo bench -p tickdb-core --bench ingest`.

use std::cell::Cell;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tickdb_core::UnixMillis;
use tickdb_core::cmd::{Command, WriteCmd, parse};
use tickdb_core::db::{Db, Tx};
use tickdb_core::store::{MemStore, Store};

const SERIES: u64 = 1_000;
const COMMANDS_PER_ROUND: u64 = 32;
const SAMPLES_PER_COMMAND: u64 = 100;
const BASE_TS: u64 = 1_700_000_000_000;

fn write(args: Vec<String>) -> WriteCmd {
    let args: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
    match parse(&args) {
        Ok(Command::Write(w)) => w,
        other => panic!("not a write: {other:?}"),
    }
}

fn apply_round(db: &mut Db, store: &mut MemStore, cmds: &[WriteCmd]) {
    let mut tx = Tx::new(&*store);
    for cmd in cmds {
        db.apply(&mut tx, cmd, UnixMillis(0)).expect("applies");
    }
    let batch = tx.into_batch();
    store.write(batch).expect("writes");
    store.sync().expect("syncs");
}

/// The next round's commands; `next` is the running sample number.
fn round(next: &Cell<u64>) -> Vec<WriteCmd> {
    (0..COMMANDS_PER_ROUND)
        .map(|_| {
            let mut args = vec!["TS.MADD".to_string()];
            for _ in 0..SAMPLES_PER_COMMAND {
                let n = next.get();
                next.set(n + 1);
                args.push(format!("bench:{}", n % SERIES));
                args.push((BASE_TS + n).to_string());
                args.push(((n % 997) as f64 * 0.01).to_string());
            }
            write(args)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut store = MemStore::new();
    let mut db = Db::default();
    let creates: Vec<WriteCmd> = (0..SERIES)
        .map(|i| {
            write(vec![
                "TS.CREATE".into(),
                format!("bench:{i}"),
                "LABELS".into(),
                "sym".into(),
                format!("S{i}"),
                "venue".into(),
                "XNAS".into(),
            ])
        })
        .collect();
    apply_round(&mut db, &mut store, &creates);
    let next = Cell::new(0);
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(
        COMMANDS_PER_ROUND * SAMPLES_PER_COMMAND,
    ));
    g.sample_size(20);
    g.bench_function("madd_round_32x100_over_1000_series", |b| {
        b.iter_batched(
            || round(&next),
            |cmds| apply_round(&mut db, &mut store, &cmds),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
