//! Decodes arbitrary bytes as a sample chunk. Whatever decodes must re-encode in the same
//! encoding and decode again to the same samples, bit for bit: the decoder accepts nothing the
//! encoder could not have meant.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tickdb_core::chunk::{self, Sample};

fn bits(samples: &[Sample]) -> Vec<(u64, u64)> {
    samples.iter().map(|s| (s.ts, s.value.to_bits())).collect()
}

fuzz_target!(|data: &[u8]| {
    let header = (chunk::encoding(data), chunk::sample_count(data));
    let Ok(samples) = chunk::decode(data) else {
        return;
    };
    let (Ok(encoding), Ok(count)) = header else {
        panic!("decoded a chunk whose header does not parse: {header:?}");
    };
    assert_eq!(count as usize, samples.len());
    let again = chunk::encode_with(&samples, encoding).expect("decoded samples re-encode");
    let twice = chunk::decode(&again).expect("an encoded chunk decodes");
    assert_eq!(bits(&twice), bits(&samples));
    let best = chunk::decode(&chunk::encode(&samples)).expect("an encoded chunk decodes");
    assert_eq!(bits(&best), bits(&samples));
});
