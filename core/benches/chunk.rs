//! Chunk codec: bytes per sample and encode/decode throughput on the synthetic series in
//! `src/chunk/synth.rs`.
//!
//! `cargo bench -p tickdb-core --bench chunk -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tickdb_core::chunk::{self, Sample};

// `synth` names `super::Sample`, which this import provides here as `chunk` does in the crate.
#[path = "../src/chunk/synth.rs"]
mod synth;

const SAMPLES_PER_CHUNK: usize = 1000;
/// Chunks (seeds) averaged for the size report.
const SIZE_CHUNKS: u64 = 20;

type Series = (&'static str, fn(u64, usize) -> Vec<Sample>);

const SERIES: [Series; 3] = [
    ("ticks", synth::tick_feed),
    ("sensor_f64", synth::sensor_walk),
    ("sensor_0.01", synth::sensor_decimal),
];

/// Prints bytes per sample (header included) and the encoding `encode` picked.
fn report_sizes() {
    for (name, make) in SERIES {
        let mut bytes = 0;
        let mut picked = Vec::new();
        for seed in 0..SIZE_CHUNKS {
            let encoded = chunk::encode(&make(seed, SAMPLES_PER_CHUNK));
            bytes += encoded.len();
            picked.push(chunk::encoding(&encoded).expect("own encoding"));
        }
        picked.dedup();
        let per_sample = bytes as f64 / (SIZE_CHUNKS as usize * SAMPLES_PER_CHUNK) as f64;
        println!("chunk size {name}: {per_sample:.3} bytes/sample, encoding {picked:?}");
    }
}

fn throughput(c: &mut Criterion) {
    report_sizes();
    // Size is reported for every series; throughput for the tick feed and the float sensor.
    for (name, make) in &SERIES[..2] {
        let samples = make(0, SAMPLES_PER_CHUNK);
        let encoded = chunk::encode(&samples);
        let mut group = c.benchmark_group(format!("chunk/{name}"));
        group.throughput(Throughput::Elements(SAMPLES_PER_CHUNK as u64));
        group.bench_function("encode", |b| b.iter(|| chunk::encode(black_box(&samples))));
        group.bench_function("decode", |b| b.iter(|| chunk::decode(black_box(&encoded))));
        group.finish();
    }
}

criterion_group!(benches, throughput);
criterion_main!(benches);
