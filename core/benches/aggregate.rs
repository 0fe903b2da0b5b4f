//! Range aggregation throughput: `cargo bench -p tickdb-core --bench aggregate`.
//!
//! `avg_1min`, `ohlc_1min`, `seven_1s`: `aggregate` over an iterator of samples.
//! `ticks_decode_avg_1min`: what an aggregated `TS.RANGE` does per sealed chunk without the
//! store: decode 256-sample chunks (the default chunk size's) of a tick feed into one buffer
//! and fold each into an `Aggregation`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tickdb_core::chunk::{self, Sample};
use tickdb_core::ts::aggregate::{AggSpec, Aggregation, Aggregator, BucketTimestamp, aggregate};

// `synth` names `super::Sample`, which the import above provides here as `chunk` does in the
// crate.
#[path = "../src/chunk/synth.rs"]
#[allow(dead_code, reason = "this bench uses the tick feed only")]
mod synth;

/// Samples per sealed chunk at the default `CHUNK_SIZE` of 4096 bytes.
const CHUNK_SAMPLES: usize = 256;

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
    let ticks: Vec<Vec<u8>> = synth::tick_feed(0, SAMPLES as usize)
        .chunks(CHUNK_SAMPLES)
        .map(chunk::encode)
        .collect();
    let avg = spec(vec![Aggregator::Avg], 60_000);
    g.bench_function("ticks_decode_avg_1min", |b| {
        b.iter(|| {
            let mut decoded: Vec<Sample> = Vec::new();
            let mut aggregation = Aggregation::new(&avg, (0, u64::MAX)).expect("valid spec");
            for c in &ticks {
                chunk::decode_into(c, &mut decoded).expect("own encoding decodes");
                aggregation.push_all(&decoded);
            }
            aggregation.finish(false).expect("aggregates")
        })
    });
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
