//! The state machine's share of ingest: apply rounds of `TS.MADD` (32 commands of 100
//! samples across 1,000 series) or of single-sample `TS.ADD` (800 commands, what 50 clients
//! pipelining 16 send), one transaction per round held by the write-back layer and
//! checkpointed by its policy, as the node applies a round of committed entries, over an
//! in-memory store. `cargo bench -p tickdb-core --bench ingest`.

use std::cell::Cell;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tickdb_core::UnixMillis;
use tickdb_core::cmd::{Command, WriteCmd, parse};
use tickdb_core::raft::LogIndex;
use tickdb_core::state::Db;
use tickdb_core::store::MemStore;
use tickdb_core::writeback::{CheckpointPolicy, WriteBack};

const SERIES: u64 = 1_000;
const MADD_COMMANDS_PER_ROUND: u64 = 32;
const MADD_SAMPLES: u64 = 100;
const ADD_COMMANDS_PER_ROUND: u64 = 800;
const BASE_TS: u64 = 1_700_000_000_000;

fn write(args: Vec<String>) -> WriteCmd {
    let args: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
    match parse(&args) {
        Ok(Command::Write(w)) => w,
        other => panic!("not a write: {other:?}"),
    }
}

/// Applies one round as the node does: one transaction, held by the write-back layer, a
/// checkpoint when its policy says so.
fn apply_round(db: &mut Db, store: &mut WriteBack<MemStore>, cmds: &[WriteCmd]) {
    let next = LogIndex(store.applied().0 + cmds.len() as u64);
    let mut tx = store.round();
    for cmd in cmds {
        db.apply(&mut tx, cmd, UnixMillis(0)).expect("applies");
    }
    drop(tx);
    store.end_round(next, cmds.len() as u64, 0);
    if store.checkpoint_due() {
        store.checkpoint().expect("checkpoints");
    }
}

/// The next round: `commands` commands of `samples` samples each; `next` is the running
/// sample number.
fn round(next: &Cell<u64>, commands: u64, samples: u64) -> Vec<WriteCmd> {
    (0..commands)
        .map(|_| {
            let mut args = vec![if samples == 1 { "TS.ADD" } else { "TS.MADD" }.to_string()];
            for _ in 0..samples {
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
    let mut store = WriteBack::new(MemStore::new(), CheckpointPolicy::default()).expect("opens");
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
    g.sample_size(20);
    for (name, commands, samples) in [
        (
            "madd_round_32x100_over_1000_series",
            MADD_COMMANDS_PER_ROUND,
            MADD_SAMPLES,
        ),
        (
            "add_round_800x1_over_1000_series",
            ADD_COMMANDS_PER_ROUND,
            1,
        ),
    ] {
        g.throughput(Throughput::Elements(commands * samples));
        g.bench_function(name, |b| {
            b.iter_batched(
                || round(&next, commands, samples),
                |cmds| apply_round(&mut db, &mut store, &cmds),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
