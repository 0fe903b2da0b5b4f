//! The compressed sample chunk: an immutable run of `(timestamp ms, f64)` samples with strictly
//! increasing timestamps, stored as one record in [`crate::store::Space::Chunks`].
//!
//! [`encode`] tries every [`Encoding`] and keeps the smallest; [`decode`] accepts any bytes and
//! either returns the samples bit for bit or a [`ChunkError`]. It never panics, allocates at
//! most [`MAX_SAMPLES_PER_CHUNK`] samples and never more than the input length can justify, and
//! everything it returns re-encodes: timestamps strictly increase and Decimal values stay in
//! range. This module does not split series into chunks, merge out-of-order samples or know
//! about keys; the series engine does.
//!
//! # Byte layout (format version 1)
//!
//! Integers in the header are little-endian.
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 1 | format version, [`FORMAT_VERSION`]; any other value is refused |
//! | 1 | 1 | encoding: `1` Gorilla, `2` Decimal |
//! | 2 | 4 | sample count `n`, at most [`MAX_SAMPLES_PER_CHUNK`] |
//! | | | *when `n == 0` the chunk ends here* |
//! | 6 | 8 | first timestamp |
//! | 14 | 1 | timestamp scheme: `0x00` delta-of-delta buckets, `0x80 \| k` delta Exp-Golomb order `k` |
//! | 15 | 1 | Decimal only: scale `s`, `0..=`[`MAX_DECIMAL_SCALE`] |
//! | 16 | 1 | Decimal only: mantissa scheme: bit 7 delta-of-delta, bits 0-5 Exp-Golomb order |
//!
//! The body follows: one bit stream, most significant bit first, zero-padded to a whole byte,
//! with nothing after it. It holds the timestamp column (`n - 1` timestamps after the first),
//! then the value column (`n` values).
//!
//! **Timestamps.** Delta-of-delta `D = delta - previous delta`, the first delta taken against
//! a previous delta of zero: `0` for `D = 0`; `10` + 5-bit, `110` + 9-bit, `1110` + 17-bit,
//! `11110` + 32-bit two's complement `D`; `11111` + the 64-bit delta itself. Or each
//! `delta - 1` as an Exp-Golomb code of order `k`: `z` zeros, then `delta - 1 + 2^k` in
//! `z + k + 1` bits.
//!
//! **Gorilla values** (Pelkonen et al., VLDB 2015): the first value's 64 bits; then per value
//! `0` if its bits equal the previous value's, `10` + the XOR's bits inside the previous window,
//! or `11` + 5-bit leading-zero count + 6-bit length (64 as 0) + that many bits of XOR.
//!
//! **Decimal values**: `value == m as f64 / 10^s` exactly, `|m| <=` [`MAX_DECIMAL_MANTISSA`].
//! Per sample the zigzag of the mantissa's delta (or delta-of-delta after a first delta) as an
//! Exp-Golomb code of the header's order; the first mantissa is a delta from zero.

mod bits;

/// Signed to unsigned with small magnitudes small: also how postcard writes signed integers.
pub(crate) use bits::zigzag;
mod decimal;
mod gorilla;
mod timestamps;

#[cfg(test)]
mod reference;
#[cfg(test)]
mod synth;

pub use decimal::{MAX_DECIMAL_MANTISSA, MAX_DECIMAL_SCALE};

use bits::{BitCounter, BitReader, BitWriter};
use decimal::MantissaScheme;
use timestamps::TsScheme;

/// The chunk format version written in byte 0 of every chunk.
pub const FORMAT_VERSION: u8 = 1;

/// The most samples one chunk may hold; [`encode`] asserts it, [`decode`] refuses more.
pub const MAX_SAMPLES_PER_CHUNK: u32 = 65_536;

/// Header bytes before the count: version, encoding, count.
const PREFIX_LEN: usize = 6;
/// Header bytes of a non-empty chunk before any encoding-specific bytes.
const HEADER_LEN: usize = PREFIX_LEN + 8 + 1;
/// Decimal's extra header bytes: scale, mantissa scheme.
const DECIMAL_HEADER_LEN: usize = 2;
/// The fewest body bits a sample after the first can take: one timestamp bit, one value bit.
const MIN_BITS_PER_SAMPLE: u64 = 2;

/// One sample: a timestamp in milliseconds and a value.
///
/// `PartialEq` compares values as `f64` (NaN unequal to itself); compare `value.to_bits()` for
/// the bit-exact identity the codec guarantees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub ts: u64,
    pub value: f64,
}

/// How a chunk's values are coded; written in the chunk's second byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// XOR of consecutive `f64` bit patterns; represents every value exactly.
    Gorilla,
    /// Integer mantissas at a decimal scale; only for values that are exact decimals.
    Decimal,
}

impl Encoding {
    /// Every encoding, in the order [`encode`] prefers on a tie.
    pub const ALL: [Self; 2] = [Self::Gorilla, Self::Decimal];

    /// The header byte. Never change one: it is part of the stored format.
    const fn byte(self) -> u8 {
        match self {
            Self::Gorilla => 1,
            Self::Decimal => 2,
        }
    }

    fn from_byte(byte: u8) -> Result<Self, ChunkError> {
        Self::ALL
            .into_iter()
            .find(|e| e.byte() == byte)
            .ok_or(ChunkError::UnknownEncoding(byte))
    }
}

/// Why bytes are not a chunk this version can decode. Every variant is a fault of the input
/// (corruption, truncation, or a newer writer), never of the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// The input ends inside the header or the body.
    #[error("chunk truncated")]
    Truncated,
    /// Byte 0 is not [`FORMAT_VERSION`]: written by another version of tickdb.
    #[error("unsupported chunk format version {0}")]
    UnsupportedVersion(u8),
    /// Byte 1 names no [`Encoding`] this version knows.
    #[error("unknown chunk encoding {0}")]
    UnknownEncoding(u8),
    /// The header's sample count exceeds [`MAX_SAMPLES_PER_CHUNK`].
    #[error("chunk claims {0} samples, more than {MAX_SAMPLES_PER_CHUNK}")]
    TooManySamples(u32),
    /// The body is too short to hold the header's sample count even at two bits per sample.
    #[error("chunk claims {count} samples but its body has only {body_bits} bits")]
    CountExceedsBody { count: u32, body_bits: u64 },
    /// The timestamp scheme byte is not one this version knows.
    #[error("unknown timestamp scheme {0:#04x}")]
    UnknownTimestampScheme(u8),
    /// A decoded timestamp is not greater than the one before it.
    #[error("chunk timestamps are not strictly increasing")]
    TimestampNotIncreasing,
    /// A decoded timestamp or delta does not fit in a `u64`.
    #[error("chunk timestamp overflows u64")]
    TimestampOverflow,
    /// A Gorilla XOR window extends past 64 bits.
    #[error("XOR window with {leading} leading zeros and {len} bits exceeds 64 bits")]
    BadXorWindow { leading: u32, len: u32 },
    /// A Gorilla value reuses the previous XOR window before any window was opened.
    #[error("XOR window reused before one was opened")]
    XorWindowMissing,
    /// The Decimal scale byte exceeds [`MAX_DECIMAL_SCALE`].
    #[error("decimal scale {0} exceeds {MAX_DECIMAL_SCALE}")]
    BadDecimalScale(u8),
    /// The Decimal mantissa scheme byte has a reserved bit set.
    #[error("unknown decimal mantissa scheme {0:#04x}")]
    UnknownMantissaScheme(u8),
    /// A decoded Decimal mantissa exceeds [`MAX_DECIMAL_MANTISSA`] in magnitude.
    #[error("decimal mantissa out of range")]
    MantissaOutOfRange,
    /// An Exp-Golomb code is longer than any `u64` needs.
    #[error("malformed Exp-Golomb code")]
    BadExpGolomb,
    /// The bits after the last sample, up to the byte boundary, are not zero.
    #[error("non-zero padding after the last sample")]
    NonZeroPadding,
    /// Whole bytes follow the last sample.
    #[error("{extra} bytes after the last sample")]
    TrailingBytes { extra: u64 },
}

/// Encodes samples with every encoding that can represent them and returns the smallest.
///
/// # Panics
/// If timestamps are not strictly increasing or there are more than [`MAX_SAMPLES_PER_CHUNK`]
/// samples: both are the caller's invariants.
pub fn encode(samples: &[Sample]) -> Vec<u8> {
    let ts = Timestamps::choose(samples);
    let Some(decimal) = DecimalPlan::new(samples) else {
        return encode_gorilla(samples, &ts);
    };
    // Both sizes are exact, so only the winner is written.
    if decimal.encoded_len(&ts) < gorilla_len(samples, &ts) {
        encode_decimal(samples, &ts, &decimal)
    } else {
        encode_gorilla(samples, &ts)
    }
}

/// Encodes samples with one encoding, or `None` if it cannot represent every value exactly.
///
/// # Panics
/// As [`encode`].
pub fn encode_with(samples: &[Sample], encoding: Encoding) -> Option<Vec<u8>> {
    let ts = Timestamps::choose(samples);
    match encoding {
        Encoding::Gorilla => Some(encode_gorilla(samples, &ts)),
        Encoding::Decimal => {
            let plan = DecimalPlan::new(samples)?;
            Some(encode_decimal(samples, &ts, &plan))
        }
    }
}

/// Decodes a chunk.
pub fn decode(bytes: &[u8]) -> Result<Vec<Sample>, ChunkError> {
    let mut samples = Vec::new();
    decode_into(bytes, &mut samples)?;
    Ok(samples)
}

/// Decodes a chunk into `out`, replacing what it held and reusing its allocation: a reader of
/// many chunks decodes them all into one buffer. On an error `out` is left empty.
pub fn decode_into(bytes: &[u8], out: &mut Vec<Sample>) -> Result<(), ChunkError> {
    out.clear();
    let decoded = decode_body(bytes, out);
    if decoded.is_err() {
        out.clear();
    }
    decoded
}

fn decode_body(bytes: &[u8], out: &mut Vec<Sample>) -> Result<(), ChunkError> {
    let Some(h) = parse_header(bytes)? else {
        return Ok(());
    };
    // count <= MAX_SAMPLES_PER_CHUNK, so this is a bounded allocation. Filling the samples in
    // place, column by column, needs no capacity check per sample.
    out.resize(h.count as usize, Sample { ts: 0, value: 0.0 });
    let mut reader = BitReader::new(h.body);
    timestamps::read(&mut reader, h.first_ts, h.ts_scheme, out)?;
    match h.values {
        ValueScheme::Gorilla => gorilla::read(&mut reader, out)?,
        ValueScheme::Decimal { scale, scheme } => {
            decimal::read(&mut reader, out, scale, scheme)?;
        }
    }
    reader.finish()
}

/// What the header of a non-empty chunk says, and its body.
struct Header<'a> {
    /// At least 1, at most [`MAX_SAMPLES_PER_CHUNK`], and no more than the body can hold.
    count: u32,
    first_ts: u64,
    ts_scheme: TsScheme,
    values: ValueScheme,
    body: &'a [u8],
}

/// The header of a chunk, or `None` for an empty chunk (which is only its prefix).
fn parse_header(bytes: &[u8]) -> Result<Option<Header<'_>>, ChunkError> {
    let (encoding, count) = prefix(bytes)?;
    if count == 0 {
        return match bytes.len() - PREFIX_LEN {
            0 => Ok(None),
            extra => Err(ChunkError::TrailingBytes {
                extra: extra as u64,
            }),
        };
    }
    let header = bytes.get(..HEADER_LEN).ok_or(ChunkError::Truncated)?;
    let first_ts = u64::from_le_bytes(array(&header[PREFIX_LEN..PREFIX_LEN + 8]));
    let ts_scheme = TsScheme::from_byte(header[HEADER_LEN - 1])?;
    let (values, body_start) = match encoding {
        Encoding::Gorilla => (ValueScheme::Gorilla, HEADER_LEN),
        Encoding::Decimal => {
            let extra = bytes
                .get(HEADER_LEN..HEADER_LEN + DECIMAL_HEADER_LEN)
                .ok_or(ChunkError::Truncated)?;
            let scale = decimal::scale_from_byte(extra[0])?;
            let scheme = MantissaScheme::from_byte(extra[1])?;
            (
                ValueScheme::Decimal { scale, scheme },
                HEADER_LEN + DECIMAL_HEADER_LEN,
            )
        }
    };
    let body = &bytes[body_start..];
    let body_bits = body.len() as u64 * 8;
    if u64::from(count - 1) * MIN_BITS_PER_SAMPLE > body_bits {
        return Err(ChunkError::CountExceedsBody { count, body_bits });
    }
    Ok(Some(Header {
        count,
        first_ts,
        ts_scheme,
        values,
        body,
    }))
}

/// The encoding named in a chunk's header.
pub fn encoding(bytes: &[u8]) -> Result<Encoding, ChunkError> {
    prefix(bytes).map(|(encoding, _)| encoding)
}

/// The sample count in a chunk's header, without decoding the body.
pub fn sample_count(bytes: &[u8]) -> Result<u32, ChunkError> {
    prefix(bytes).map(|(_, count)| count)
}

/// Checks version, encoding and count, in that order, so a chunk from a newer format is
/// refused as such even when the rest of its header differs.
fn prefix(bytes: &[u8]) -> Result<(Encoding, u32), ChunkError> {
    let &version = bytes.first().ok_or(ChunkError::Truncated)?;
    if version != FORMAT_VERSION {
        return Err(ChunkError::UnsupportedVersion(version));
    }
    let &encoding = bytes.get(1).ok_or(ChunkError::Truncated)?;
    let encoding = Encoding::from_byte(encoding)?;
    let count = bytes.get(2..PREFIX_LEN).ok_or(ChunkError::Truncated)?;
    let count = u32::from_le_bytes(array(count));
    if count > MAX_SAMPLES_PER_CHUNK {
        return Err(ChunkError::TooManySamples(count));
    }
    Ok((encoding, count))
}

/// A fixed-size array from a slice the caller has already cut to that size.
fn array<const N: usize>(slice: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(slice);
    out
}

enum ValueScheme {
    Gorilla,
    Decimal { scale: u8, scheme: MantissaScheme },
}

/// The timestamp column's scheme and size, shared by every encoding.
struct Timestamps {
    scheme: TsScheme,
    bits: u64,
}

impl Timestamps {
    fn choose(samples: &[Sample]) -> Self {
        assert!(
            samples.len() <= MAX_SAMPLES_PER_CHUNK as usize,
            "{} samples exceed MAX_SAMPLES_PER_CHUNK",
            samples.len()
        );
        let (scheme, bits) = timestamps::choose(samples);
        Self { scheme, bits }
    }
}

/// The header shared by every encoding; the caller appends encoding-specific bytes.
fn header(samples: &[Sample], encoding: Encoding, ts: &Timestamps, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    out.push(FORMAT_VERSION);
    out.push(encoding.byte());
    // Asserted against MAX_SAMPLES_PER_CHUNK in Timestamps::choose.
    out.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    if let Some(first) = samples.first() {
        out.extend_from_slice(&first.ts.to_le_bytes());
        out.push(ts.scheme.to_byte());
    }
    out
}

/// The exact length [`encode_gorilla`] produces, without writing it.
fn gorilla_len(samples: &[Sample], ts: &Timestamps) -> usize {
    if samples.is_empty() {
        return PREFIX_LEN;
    }
    let mut values = BitCounter::default();
    gorilla::write(&mut values, samples);
    // Bounded by MAX_SAMPLES_PER_CHUNK samples of at most 69 + 77 bits.
    HEADER_LEN + (ts.bits + values.bits).div_ceil(8) as usize
}

fn encode_gorilla(samples: &[Sample], ts: &Timestamps) -> Vec<u8> {
    // Typical size: the timestamp column plus a few bytes per value.
    let capacity = HEADER_LEN + (ts.bits as usize).div_ceil(8) + samples.len() * 4;
    let out = header(samples, Encoding::Gorilla, ts, capacity);
    if samples.is_empty() {
        return out;
    }
    let mut w = BitWriter::new(out);
    timestamps::write(&mut w, samples, ts.scheme);
    gorilla::write(&mut w, samples);
    w.finish()
}

/// What Decimal needs to encode a chunk, computed before writing so [`encode`] can compare
/// sizes without writing a chunk it would discard.
struct DecimalPlan {
    scale: u8,
    scheme: MantissaScheme,
    residuals: Vec<u64>,
    bits: u64,
}

impl DecimalPlan {
    fn new(samples: &[Sample]) -> Option<Self> {
        let (scale, mantissas) = decimal::mantissas(samples)?;
        let (scheme, residuals, bits) = decimal::choose(&mantissas);
        Some(Self {
            scale,
            scheme,
            residuals,
            bits,
        })
    }

    fn encoded_len(&self, ts: &Timestamps) -> usize {
        if self.residuals.is_empty() {
            return PREFIX_LEN;
        }
        // Chunk sizes are bounded by MAX_SAMPLES_PER_CHUNK samples of at most 129 + 129 bits.
        HEADER_LEN + DECIMAL_HEADER_LEN + (ts.bits + self.bits).div_ceil(8) as usize
    }
}

fn encode_decimal(samples: &[Sample], ts: &Timestamps, plan: &DecimalPlan) -> Vec<u8> {
    let len = plan.encoded_len(ts);
    let mut out = header(samples, Encoding::Decimal, ts, len);
    if samples.is_empty() {
        return out;
    }
    out.push(plan.scale);
    out.push(plan.scheme.to_byte());
    let mut w = BitWriter::new(out);
    timestamps::write(&mut w, samples, ts.scheme);
    decimal::write(&mut w, &plan.residuals, plan.scheme);
    let out = w.finish();
    assert_eq!(
        out.len(),
        len,
        "decimal size estimate matches what was written"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Samples as (timestamp, value bits): the identity the codec promises.
    pub(super) fn bits_of(samples: &[Sample]) -> Vec<(u64, u64)> {
        samples.iter().map(|s| (s.ts, s.value.to_bits())).collect()
    }

    fn regular(values: &[f64]) -> Vec<Sample> {
        values
            .iter()
            .enumerate()
            .map(|(i, &value)| Sample {
                ts: 1_000 * i as u64,
                value,
            })
            .collect()
    }

    fn assert_round_trip(samples: &[Sample], bytes: &[u8]) {
        let decoded = decode(bytes).expect("own encoding decodes");
        assert_eq!(bits_of(&decoded), bits_of(samples));
        assert_eq!(sample_count(bytes), Ok(samples.len() as u32));
    }

    #[test]
    fn size_estimates_match_what_is_written() {
        for s in [
            synth::tick_feed(4, 700),
            synth::sensor_walk(5, 700),
            regular(&[f64::NAN, 1.0]),
            Vec::new(),
        ] {
            let ts = Timestamps::choose(&s);
            assert_eq!(gorilla_len(&s, &ts), encode_gorilla(&s, &ts).len());
            if let Some(plan) = DecimalPlan::new(&s) {
                // encode_decimal asserts its own estimate.
                assert_eq!(plan.encoded_len(&ts), encode_decimal(&s, &ts, &plan).len());
            }
        }
    }

    #[test]
    fn empty_chunk_is_the_six_byte_prefix() {
        for enc in Encoding::ALL {
            let bytes = encode_with(&[], enc).expect("empty is representable");
            assert_eq!(bytes, [FORMAT_VERSION, enc.byte(), 0, 0, 0, 0]);
            assert_eq!(decode(&bytes), Ok(Vec::new()));
            assert_eq!(encoding(&bytes), Ok(enc));
        }
        assert_eq!(encode(&[]).len(), PREFIX_LEN);
    }

    #[test]
    fn single_sample_round_trips_in_each_encoding() {
        let s = [Sample {
            ts: u64::MAX,
            value: -12.5,
        }];
        for enc in Encoding::ALL {
            let bytes = encode_with(&s, enc).expect("-12.5 is a decimal");
            assert_eq!(encoding(&bytes), Ok(enc));
            assert_round_trip(&s, &bytes);
        }
    }

    #[test]
    fn special_values_pick_gorilla_and_stay_bit_exact() {
        let s = regular(&[
            f64::NAN,
            f64::from_bits(0x7FF0_0000_0000_0001),
            -0.0,
            0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::from_bits(1),
            1.0,
        ]);
        assert_eq!(encode_with(&s, Encoding::Decimal), None);
        let bytes = encode(&s);
        assert_eq!(encoding(&bytes), Ok(Encoding::Gorilla));
        assert_round_trip(&s, &bytes);
    }

    #[test]
    fn decimal_is_refused_for_values_it_cannot_rebuild() {
        for v in [-0.0, f64::NAN, std::f64::consts::PI, 0.1 + 0.2, 1e300] {
            let s = regular(&[1.25, v]);
            assert_eq!(encode_with(&s, Encoding::Decimal), None, "{v:?}");
        }
    }

    #[test]
    fn prices_pick_decimal() {
        let s = regular(&[123.45, 123.46, 123.44, 123.45, 123.45, 123.5, 0.01]);
        let bytes = encode(&s);
        assert_eq!(encoding(&bytes), Ok(Encoding::Decimal));
        assert_eq!(bytes[HEADER_LEN], 2, "scale");
        assert_round_trip(&s, &bytes);
        let gorilla = encode_with(&s, Encoding::Gorilla).expect("always representable");
        assert!(bytes.len() < gorilla.len());
    }

    #[test]
    fn largest_chunk_round_trips_at_the_density_bound() {
        // Constant values on a regular grid: two bits per sample after the first.
        let n = MAX_SAMPLES_PER_CHUNK as usize;
        let s: Vec<Sample> = (0..n as u64)
            .map(|i| Sample { ts: i, value: 7.0 })
            .collect();
        let bytes = encode_with(&s, Encoding::Gorilla).expect("always representable");
        let body_bits = (bytes.len() - HEADER_LEN) as u64 * 8;
        assert!(body_bits < (n as u64 - 1) * MIN_BITS_PER_SAMPLE + 64 + 8 + 13);
        assert_round_trip(&s, &bytes);
        assert_round_trip(&s, &encode(&s));
    }

    #[test]
    #[should_panic(expected = "exceed MAX_SAMPLES_PER_CHUNK")]
    fn encode_asserts_the_sample_limit() {
        let n = MAX_SAMPLES_PER_CHUNK as u64 + 1;
        let s: Vec<Sample> = (0..n).map(|i| Sample { ts: i, value: 0.0 }).collect();
        let _ = encode(&s);
    }

    #[test]
    #[should_panic(expected = "strictly increasing")]
    fn encode_asserts_increasing_timestamps() {
        let s = [Sample { ts: 2, value: 0.0 }, Sample { ts: 1, value: 0.0 }];
        let _ = encode(&s);
    }

    #[test]
    fn header_errors() {
        let good = encode(&regular(&[1.0, 2.0, 3.0]));
        let with = |i: usize, b: u8| {
            let mut bytes = good.clone();
            bytes[i] = b;
            bytes
        };
        assert_eq!(decode(&with(0, 2)), Err(ChunkError::UnsupportedVersion(2)));
        assert_eq!(sample_count(&[0]), Err(ChunkError::UnsupportedVersion(0)));
        assert_eq!(encoding(&with(1, 0)), Err(ChunkError::UnknownEncoding(0)));
        assert_eq!(decode(&with(1, 3)), Err(ChunkError::UnknownEncoding(3)));
        assert_eq!(decode(&[]), Err(ChunkError::Truncated));
        assert_eq!(sample_count(&good[..5]), Err(ChunkError::Truncated));

        let mut too_many = good.clone();
        too_many[2..6].copy_from_slice(&(MAX_SAMPLES_PER_CHUNK + 1).to_le_bytes());
        assert_eq!(
            sample_count(&too_many),
            Err(ChunkError::TooManySamples(MAX_SAMPLES_PER_CHUNK + 1))
        );
        let mut dense = good.clone();
        dense[2..6].copy_from_slice(&MAX_SAMPLES_PER_CHUNK.to_le_bytes());
        assert!(matches!(
            decode(&dense),
            Err(ChunkError::CountExceedsBody {
                count: MAX_SAMPLES_PER_CHUNK,
                ..
            })
        ));

        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            decode(&trailing),
            Err(ChunkError::TrailingBytes { extra: 1 })
        );
        let mut empty_trailing = encode(&[]);
        empty_trailing.push(0);
        assert_eq!(
            decode(&empty_trailing),
            Err(ChunkError::TrailingBytes { extra: 1 })
        );

        assert_eq!(
            decode(&with(HEADER_LEN - 1, 0x40)),
            Err(ChunkError::UnknownTimestampScheme(0x40))
        );
        let decimal = encode(&regular(&[1.5, 2.5]));
        assert_eq!(encoding(&decimal), Ok(Encoding::Decimal));
        let mut bad_scale = decimal.clone();
        bad_scale[HEADER_LEN] = MAX_DECIMAL_SCALE + 1;
        assert_eq!(
            decode(&bad_scale),
            Err(ChunkError::BadDecimalScale(MAX_DECIMAL_SCALE + 1))
        );
    }

    #[test]
    fn every_truncation_of_a_valid_chunk_is_an_error() {
        let chunks = [
            encode(&synth::tick_feed(1, 300)),
            encode_with(&synth::tick_feed(2, 300), Encoding::Gorilla).expect("always"),
            encode(&synth::sensor_walk(3, 50)),
            encode(&regular(&[f64::NAN, -0.0, 5.0])),
            encode(&regular(&[42.0])),
        ];
        for bytes in &chunks {
            let count = sample_count(bytes).expect("valid");
            for len in 0..bytes.len() {
                let cut = &bytes[..len];
                assert!(decode(cut).is_err(), "prefix of {len} bytes decoded");
                // Once the prefix is there, the header alone answers these.
                if len >= PREFIX_LEN {
                    assert_eq!(sample_count(cut), Ok(count));
                    assert_eq!(encoding(cut), encoding(bytes));
                } else {
                    assert!(sample_count(cut).is_err());
                }
            }
            assert!(decode(bytes).is_ok());
        }
    }

    /// Bytes per sample (header included) over `chunks` chunks of `per_chunk` samples.
    fn bytes_per_sample(chunks: u64, per_chunk: usize, make: fn(u64, usize) -> Vec<Sample>) -> f64 {
        let mut bytes = 0;
        for seed in 0..chunks {
            let s = make(seed, per_chunk);
            let chunk = encode(&s);
            assert_round_trip(&s, &chunk);
            bytes += chunk.len();
        }
        bytes as f64 / (chunks as usize * per_chunk) as f64
    }

    /// The compression the format exists for; run with `--nocapture` to see the numbers.
    #[test]
    fn compression_on_synthetic_series() {
        let ticks = bytes_per_sample(20, 1000, synth::tick_feed);
        let sensor = bytes_per_sample(20, 1000, synth::sensor_walk);
        let decimal = bytes_per_sample(20, 1000, synth::sensor_decimal);
        println!(
            "bytes/sample: ticks {ticks:.3}, sensor f64 {sensor:.3}, sensor 0.01 {decimal:.3}"
        );
        // Guards against regressions, a few percent above what version 1 achieves.
        assert!(ticks < 1.3, "tick feed: {ticks} bytes/sample");
        assert!(sensor < 6.6, "sensor walk: {sensor} bytes/sample");
        assert!(decimal < 0.72, "decimal sensor: {decimal} bytes/sample");
    }

    /// Value bits: arbitrary patterns, IEEE specials, and decimals so Decimal gets picked too.
    pub(super) fn value_bits() -> impl Strategy<Value = u64> {
        prop_oneof![
            any::<u64>(),
            prop::sample::select(vec![
                f64::NAN.to_bits(),
                0x7FF0_0000_0000_0001,
                0xFFF8_0000_DEAD_BEEF,
                0.0f64.to_bits(),
                (-0.0f64).to_bits(),
                f64::INFINITY.to_bits(),
                f64::NEG_INFINITY.to_bits(),
                1,
                0x800F_FFFF_FFFF_FFFF,
            ]),
            (-100_000i64..100_000, 0u8..=4)
                .prop_map(|(m, s)| (m as f64 / 10f64.powi(i32::from(s))).to_bits()),
        ]
    }

    fn gap() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(1u64),
            1u64..=1_000,
            1u64..=u64::from(u32::MAX),
            1u64..=u64::MAX
        ]
    }

    /// Strictly increasing samples: gaps are summed until the next one would overflow.
    pub(super) fn series(values: impl Strategy<Value = u64>) -> impl Strategy<Value = Vec<Sample>> {
        (
            prop_oneof![Just(0u64), any::<u64>(), Just(1_700_000_000_000)],
            prop::collection::vec((gap(), values), 0..=2000),
        )
            .prop_map(|(start, points)| {
                let mut ts = start;
                let mut out = Vec::with_capacity(points.len());
                for (i, (gap, bits)) in points.into_iter().enumerate() {
                    if i > 0 {
                        let Some(next) = ts.checked_add(gap) else {
                            break;
                        };
                        ts = next;
                    }
                    out.push(Sample {
                        ts,
                        value: f64::from_bits(bits),
                    });
                }
                out
            })
    }

    /// Decimal-friendly samples: one scale per series, small steps or arbitrary jumps.
    pub(super) fn decimal_series() -> impl Strategy<Value = Vec<Sample>> {
        (0u8..=MAX_DECIMAL_SCALE, series(any::<u64>())).prop_flat_map(|(scale, samples)| {
            let n = samples.len();
            let limit = MAX_DECIMAL_MANTISSA;
            prop::collection::vec(prop_oneof![-3i64..=3, -limit..=limit], n).prop_map(
                move |steps| {
                    let mut m = 0i64;
                    samples
                        .iter()
                        .zip(steps)
                        .map(|(s, step)| {
                            m = (m + step).clamp(-limit, limit);
                            let value = m as f64 / 10f64.powi(i32::from(scale));
                            Sample { ts: s.ts, value }
                        })
                        .collect::<Vec<_>>()
                },
            )
        })
    }

    proptest! {
        #[test]
        fn round_trip_any_samples(samples in series(value_bits())) {
            let bytes = encode(&samples);
            let decoded = decode(&bytes).expect("own encoding decodes");
            prop_assert_eq!(bits_of(&decoded), bits_of(&samples));
            for enc in Encoding::ALL {
                if let Some(bytes) = encode_with(&samples, enc) {
                    prop_assert!(bytes.len() >= encode(&samples).len(), "encode keeps the smallest");
                    let decoded = decode(&bytes).expect("own encoding decodes");
                    prop_assert_eq!(bits_of(&decoded), bits_of(&samples));
                }
            }
        }

        #[test]
        fn decimal_round_trips_when_picked(samples in decimal_series()) {
            let bytes = encode_with(&samples, Encoding::Decimal);
            // Values within MAX_DECIMAL_MANTISSA at a scale <= MAX_DECIMAL_SCALE always fit.
            let bytes = bytes.expect("decimal values are representable");
            let decoded = decode(&bytes).expect("own encoding decodes");
            prop_assert_eq!(bits_of(&decoded), bits_of(&samples));
            let best = encode(&samples);
            if encoding(&best) == Ok(Encoding::Decimal) {
                prop_assert_eq!(bits_of(&decode(&best).expect("decodes")), bits_of(&samples));
            }
        }

        #[test]
        fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
            let _ = sample_count(&bytes);
            let _ = encoding(&bytes);
        }

        /// Arbitrary bytes rarely pass the header; corrupting valid chunks reaches the bodies.
        #[test]
        fn decoded_corruption_re_encodes(
            samples in series(value_bits()),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let mut bytes = encode(&samples);
            for (at, xor) in flips {
                let i = at.index(bytes.len());
                bytes[i] ^= xor;
            }
            if let Ok(decoded) = decode(&bytes) {
                let enc = encoding(&bytes).expect("decoded chunks have a header");
                let again = encode_with(&decoded, enc).expect("decoded values re-encode");
                let twice = decode(&again).expect("own encoding decodes");
                prop_assert_eq!(bits_of(&twice), bits_of(&decoded));
            }
        }
    }
}
