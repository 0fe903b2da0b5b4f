//! A reference decoder for tests: the chunk body read one bit at a time, straight from the
//! format description in `mod.rs`, with none of the fast decoder's buffering, in-place column
//! filling or split loops. The fast decoder must agree with it on every input, samples bit for
//! bit and errors variant for variant; so must the fast bit reader with [`Bits`].
//!
//! It shares only the header parsing ([`parse_header`]) with the fast decoder.

use super::decimal::MAX_DECIMAL_MANTISSA;
use super::{ChunkError, Sample, TsScheme, ValueScheme, parse_header};

/// The delta-of-delta buckets' payload widths, after prefixes `10`, `110`, `1110`, `11110`.
const DOD_PAYLOAD_BITS: [u32; 4] = [5, 9, 17, 32];

/// A bit-at-a-time reader over a byte slice.
pub(super) struct Bits<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Bits<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub(super) fn bit(&mut self) -> Result<bool, ChunkError> {
        let byte = self.bytes.get(self.pos / 8).ok_or(ChunkError::Truncated)?;
        let bit = byte >> (7 - self.pos % 8) & 1 == 1;
        self.pos += 1;
        Ok(bit)
    }

    pub(super) fn bits(&mut self, n: u32) -> Result<u64, ChunkError> {
        let mut v = 0u64;
        for _ in 0..n {
            v = v << 1 | u64::from(self.bit()?);
        }
        Ok(v)
    }

    /// Ones up to `max`, and the zero after them when there are fewer.
    pub(super) fn ones(&mut self, max: u32) -> Result<u32, ChunkError> {
        let mut n = 0;
        while n < max && self.bit()? {
            n += 1;
        }
        Ok(n)
    }

    /// `z` zeros, a one, then `z + k` more bits: the code of that number minus `2^k`. A code
    /// for more than `u64::MAX` is malformed, and so is a zero run longer than any `u64` needs.
    pub(super) fn exp_golomb(&mut self, k: u32) -> Result<u64, ChunkError> {
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros + k + 1 > 65 {
                return Err(ChunkError::BadExpGolomb);
            }
        }
        let rest = self.bits(zeros + k)?;
        let x = (1u128 << (zeros + k)) + u128::from(rest) - (1u128 << k);
        u64::try_from(x).map_err(|_| ChunkError::BadExpGolomb)
    }

    pub(super) fn position(&self) -> u64 {
        self.pos as u64
    }

    /// Zero bits to the byte boundary, then nothing.
    pub(super) fn finish(mut self) -> Result<(), ChunkError> {
        while !self.pos.is_multiple_of(8) {
            if self.bit()? {
                return Err(ChunkError::NonZeroPadding);
            }
        }
        match self.bytes.len() - self.pos / 8 {
            0 => Ok(()),
            extra => Err(ChunkError::TrailingBytes {
                extra: extra as u64,
            }),
        }
    }
}

/// Decodes a chunk, slowly.
pub(super) fn decode(bytes: &[u8]) -> Result<Vec<Sample>, ChunkError> {
    let Some(h) = parse_header(bytes)? else {
        return Ok(Vec::new());
    };
    let mut r = Bits::new(h.body);
    let mut out = vec![Sample {
        ts: h.first_ts,
        value: 0.0,
    }];
    let mut prev_delta = 0i128;
    for _ in 1..h.count {
        let delta = match h.ts_scheme {
            TsScheme::Delta { order } => i128::from(r.exp_golomb(order)?) + 1,
            TsScheme::DeltaOfDelta => match r.ones(5)? {
                0 => prev_delta,
                5 => i128::from(r.bits(64)?),
                n => {
                    let width = DOD_PAYLOAD_BITS[n as usize - 1];
                    let raw = i128::from(r.bits(width)?);
                    // Two's complement in `width` bits.
                    let dod = if raw >= 1 << (width - 1) {
                        raw - (1 << width)
                    } else {
                        raw
                    };
                    prev_delta + dod
                }
            },
        };
        if delta < 1 {
            return Err(ChunkError::TimestampNotIncreasing);
        }
        let last = out[out.len() - 1].ts;
        let ts =
            u64::try_from(i128::from(last) + delta).map_err(|_| ChunkError::TimestampOverflow)?;
        out.push(Sample { ts, value: 0.0 });
        prev_delta = delta;
    }
    match h.values {
        ValueScheme::Gorilla => gorilla(&mut r, &mut out)?,
        ValueScheme::Decimal { scale, scheme } => {
            let mut m = 0i128;
            let mut d = 0i128;
            for (i, s) in out.iter_mut().enumerate() {
                let u = r.exp_golomb(scheme.order)?;
                // Zigzag: 0, -1, 1, -2, 2, ...
                let residual = if u.is_multiple_of(2) {
                    i128::from(u / 2)
                } else {
                    -i128::from(u / 2) - 1
                };
                // The first mantissa is a delta from zero; delta-of-delta starts after it.
                d = if scheme.delta_of_delta && i > 0 {
                    d + residual
                } else {
                    residual
                };
                if i == 0 {
                    m = d;
                    d = 0;
                } else {
                    m += d;
                }
                if m.abs() > i128::from(MAX_DECIMAL_MANTISSA) {
                    return Err(ChunkError::MantissaOutOfRange);
                }
                s.value = m as f64 / 10f64.powi(i32::from(scale));
            }
        }
    }
    r.finish()?;
    Ok(out)
}

fn gorilla(r: &mut Bits<'_>, out: &mut [Sample]) -> Result<(), ChunkError> {
    let mut prev = r.bits(64)?;
    let mut window: Option<(u32, u32)> = None;
    for (i, s) in out.iter_mut().enumerate() {
        if i > 0 && r.bit()? {
            let (leading, len) = if r.bit()? {
                let leading = r.bits(5)? as u32;
                let len = match r.bits(6)? as u32 {
                    0 => 64,
                    n => n,
                };
                if leading + len > 64 {
                    return Err(ChunkError::BadXorWindow { leading, len });
                }
                window = Some((leading, len));
                (leading, len)
            } else {
                window.ok_or(ChunkError::XorWindowMissing)?
            };
            prev ^= r.bits(len)? << (64 - leading - len);
        }
        s.value = f64::from_bits(prev);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::bits::BitReader;
    use super::super::tests::{bits_of, decimal_series, series, value_bits};
    use super::super::{Encoding, decode_into, encode, encode_with};
    use super::*;

    /// The fast decoder's answer, through a reused buffer holding garbage from before.
    fn fast(bytes: &[u8]) -> Result<Vec<(u64, u64)>, ChunkError> {
        let mut out = vec![
            Sample {
                ts: 7,
                value: f64::NAN,
            };
            3
        ];
        let got = decode_into(bytes, &mut out).map(|()| bits_of(&out));
        if got.is_err() {
            assert!(out.is_empty(), "a failed decode leaves the buffer empty");
        }
        got
    }

    fn slow(bytes: &[u8]) -> Result<Vec<(u64, u64)>, ChunkError> {
        decode(bytes).map(|s| bits_of(&s))
    }

    /// Every encoding of `samples` that exists, and the one `encode` picks.
    fn encodings(samples: &[Sample]) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Encoding::ALL
            .into_iter()
            .filter_map(|e| encode_with(samples, e))
            .collect();
        out.push(encode(samples));
        out
    }

    fn assert_agree(bytes: &[u8]) {
        assert_eq!(fast(bytes), slow(bytes), "{bytes:02x?}");
    }

    #[test]
    fn agrees_on_edge_series() {
        let at = |ts: &[u64], v: f64| -> Vec<Sample> {
            ts.iter().map(|&ts| Sample { ts, value: v }).collect()
        };
        let cases = [
            Vec::new(),
            at(&[0], 1.5),
            at(&[u64::MAX], -0.0),
            at(&[0, u64::MAX], 2.0),
            at(&[0, 1, u64::MAX - 1, u64::MAX], 3.25),
            at(&[5, 6, 1 << 40, (1 << 40) + 1, 1 << 62], f64::NAN),
            at(&[1, 2, 3], f64::INFINITY),
            (0..300)
                .map(|i| Sample {
                    ts: 1_700_000_000_000 + i * i * 997,
                    // Falls, then rises: negative and positive deltas and delta-of-deltas.
                    value: ((i as i64 - 150).abs() * 7 - 500) as f64 / 100.0,
                })
                .collect(),
            (0..300)
                .map(|i| Sample {
                    ts: i,
                    value: [f64::NAN, f64::NEG_INFINITY, 0.1, -0.0, 1e300][i as usize % 5],
                })
                .collect(),
            (0..100)
                .map(|i| Sample {
                    ts: i * 1000,
                    value: if i % 2 == 0 {
                        MAX_DECIMAL_MANTISSA as f64
                    } else {
                        -MAX_DECIMAL_MANTISSA as f64
                    },
                })
                .collect(),
        ];
        for samples in &cases {
            for bytes in encodings(samples) {
                assert_eq!(fast(&bytes), Ok(bits_of(samples)));
                assert_agree(&bytes);
            }
        }
    }

    /// A header this version accepts over a body of random bits: reaches the column decoders'
    /// error paths far more often than random bytes do.
    fn plausible_chunk() -> impl Strategy<Value = Vec<u8>> {
        let body_byte = prop_oneof![any::<u8>(), Just(0u8), Just(0xFF), 0u8..4];
        (
            prop::sample::select(vec![1u8, 2]),
            1u32..40,
            any::<u64>(),
            prop_oneof![Just(0u8), (0u8..=63).prop_map(|k| 0x80 | k)],
            0u8..=9,
            prop_oneof![0u8..=63, (0u8..=63).prop_map(|k| 0x80 | k)],
            prop::collection::vec(body_byte, 0..120),
        )
            .prop_map(|(enc, count, first, ts, scale, mantissa, body)| {
                let mut out = vec![super::super::FORMAT_VERSION, enc];
                out.extend_from_slice(&count.to_le_bytes());
                out.extend_from_slice(&first.to_le_bytes());
                out.push(ts);
                if enc == 2 {
                    out.push(scale);
                    out.push(mantissa);
                }
                out.extend_from_slice(&body);
                out
            })
    }

    /// Reads for [`BitReader`] and [`Bits`] to agree on.
    #[derive(Clone, Copy, Debug)]
    enum Read {
        Bits(u32),
        Ones(u32),
        ExpGolomb(u32),
    }

    fn reads() -> impl Strategy<Value = Vec<Read>> {
        prop::collection::vec(
            prop_oneof![
                (0u32..=64).prop_map(Read::Bits),
                (1u32..=5).prop_map(Read::Ones),
                (0u32..=63).prop_map(Read::ExpGolomb),
                (0u32..=3).prop_map(Read::ExpGolomb),
            ],
            0..80,
        )
    }

    proptest! {
        #[test]
        fn agrees_on_valid_chunks(samples in series(value_bits())) {
            for bytes in encodings(&samples) {
                prop_assert_eq!(fast(&bytes), Ok(bits_of(&samples)));
                prop_assert_eq!(fast(&bytes), slow(&bytes));
            }
        }

        #[test]
        fn agrees_on_decimal_chunks(samples in decimal_series()) {
            for bytes in encodings(&samples) {
                prop_assert_eq!(fast(&bytes), Ok(bits_of(&samples)));
                prop_assert_eq!(fast(&bytes), slow(&bytes));
            }
        }

        #[test]
        fn agrees_on_corrupted_chunks(
            samples in series(value_bits()),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            for mut bytes in encodings(&samples) {
                let whole = bytes.clone();
                for &(at, xor) in &flips {
                    let i = at.index(bytes.len());
                    bytes[i] ^= xor;
                }
                prop_assert_eq!(fast(&bytes), slow(&bytes));
                let short = &whole[..cut.index(whole.len() + 1)];
                prop_assert_eq!(fast(short), slow(short));
            }
        }

        #[test]
        fn agrees_on_random_bodies(bytes in plausible_chunk()) {
            prop_assert_eq!(fast(&bytes), slow(&bytes));
        }

        #[test]
        fn bit_reader_agrees_with_bit_at_a_time(
            bytes in prop::collection::vec(
                prop_oneof![any::<u8>(), Just(0u8), Just(0xFF), 0u8..4], 0..40),
            reads in reads(),
        ) {
            let mut fast = BitReader::new(&bytes);
            let mut slow = Bits::new(&bytes);
            for read in reads {
                let (f, s) = match read {
                    Read::Bits(n) => (fast.read_bits(n), slow.bits(n)),
                    Read::Ones(max) => (
                        fast.read_ones(max).map(u64::from),
                        slow.ones(max).map(u64::from),
                    ),
                    Read::ExpGolomb(k) => (fast.read_exp_golomb(k), slow.exp_golomb(k)),
                };
                let failed = f.is_err();
                prop_assert_eq!(f, s, "{:?}", read);
                if failed {
                    // Where a reader stands after an error is unspecified.
                    return Ok(());
                }
                prop_assert_eq!(fast.position_bits(), slow.position());
            }
            prop_assert_eq!(fast.finish(), slow.finish());
        }
    }
}
