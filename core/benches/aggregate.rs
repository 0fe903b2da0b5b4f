//! Range aggregation throughput: `cargo bench -p tickdb-core --bench aggregate`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tickdb_core::ts::aggregate::{AggSpec, Aggregator, BucketTimestamp, aggregate};

const SAMPLES: u64 = 1_000_000;

fn samples() -> impl Iterator<Item = (u64, f64)> + Clone {
    (0..SAMPLES).map(|i| (1_700_000_000_000 + i * 10, (i % 1000) as f64 * 0.25))
}

fn spec(aggregators: Vec<Aggregator>, bucket_ms: u64) -> AggSpec {
    AggSpec {
        aggregators,
        bucket_ms,
        align: 0,
        bucket_ts: BucketTimestamp::Start,
        empty: false,
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("aggregate");
    g.throughput(Throughput::Elements(SAMPLES));
    g.sample_size(10);
    let ohlc = Aggregator::parse_list(b"first,max,min,last").expect("valid aggregators");
    let seven = Aggregator::parse_list(b"first,max,min,last,avg,std.s,twa").expect("valid");
    for (name, sp) in [
        ("avg_1min", spec(vec![Aggregator::Avg], 60_000)),
        ("ohlc_1min", spec(ohlc, 60_000)),
        ("seven_1s", spec(seven, 1_000)),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| aggregate(samples(), &sp, (0, u64::MAX), false).expect("aggregates"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
