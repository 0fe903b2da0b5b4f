//! Seeded synthetic series for compression tests and the `chunk` bench.
//!
//! Shared by the unit tests (as `chunk::synth`) and `benches/chunk.rs` (included by path), so
//! both measure the same data. It names `super::Sample` so it compiles in either place.

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use super::Sample;

/// 2023-11-14T22:13:20Z, a plausible epoch-millisecond start.
const START_MS: u64 = 1_700_000_000_000;

fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    // 53 random bits in [0, 1).
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A trade feed: gaps exponential with a 50 ms mean (at least 1 ms), price a random walk on a
/// 0.01 tick from 100.00: half the trades at the same price, 40% one tick away, 10% two.
pub(super) fn tick_feed(seed: u64, n: usize) -> Vec<Sample> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ts = START_MS;
    let mut cents = 10_000i64;
    (0..n)
        .map(|_| {
            let gap = (-50.0 * (1.0 - uniform(&mut rng)).ln()).round().max(1.0);
            // A gap of at most 50 * ln(2^53) ms fits in u64.
            ts += gap as u64;
            let u = uniform(&mut rng);
            cents += match u {
                u if u < 0.05 => -2,
                u if u < 0.25 => -1,
                u if u < 0.75 => 0,
                u if u < 0.95 => 1,
                _ => 2,
            };
            Sample {
                ts,
                value: cents as f64 / 100.0,
            }
        })
        .collect()
}

/// A gauge scraped every second: a full-precision `f64` random walk from 20.0 with uniform
/// steps in [-0.05, 0.05). Every sample changes in its low mantissa bits.
pub(super) fn sensor_walk(seed: u64, n: usize) -> Vec<Sample> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut value = 20.0;
    (0..n as u64)
        .map(|i| {
            value += (uniform(&mut rng) - 0.5) * 0.1;
            Sample {
                ts: START_MS + i * 1000,
                value,
            }
        })
        .collect()
}

/// [`sensor_walk`] rounded to two decimals, the way a price or a display would show it.
pub(super) fn sensor_decimal(seed: u64, n: usize) -> Vec<Sample> {
    sensor_walk(seed, n)
        .into_iter()
        .map(|s| Sample {
            ts: s.ts,
            value: (s.value * 100.0).round() / 100.0,
        })
        .collect()
}
