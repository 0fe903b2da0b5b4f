//! Decimal value column: values that are exact decimals at some scale `s` are stored as integer
//! mantissas `m` with `value == m as f64 / 10^s`, bit for bit.
//!
//! A price on a 0.01 tick (`123.45`) has a noisy binary mantissa, so XOR compresses it poorly;
//! its decimal mantissa moves by a few units per sample. The mantissas are coded as zigzag
//! deltas or delta-of-deltas (whichever is smaller for the chunk), each an Exp-Golomb code of a
//! per-chunk order. The first mantissa is coded as a delta from zero.
//!
//! Representability is decided by reconstruction: the encoder computes the value the decoder
//! will produce and keeps the scale only if every value comes back with identical bits. NaN,
//! infinities and -0.0 never do (a zero mantissa decodes to +0.0).

use super::bits::{self, BitReader, BitWriter, MAX_EXP_GOLOMB_ORDER};
use super::{ChunkError, Sample};

/// The largest decimal scale (digits after the point) the encoder tries and the decoder accepts.
pub const MAX_DECIMAL_SCALE: u8 = 9;

/// The largest mantissa magnitude, `2^50`.
///
/// Below it, `(m / 10^s) * 10^s` computed in `f64` is within `|m| * 2^-52 <= 0.25` of `m`, so
/// the encoder recovers exactly the mantissa the decoder started from: every chunk the decoder
/// accepts re-encodes as Decimal. Larger mantissas fall back to Gorilla.
pub const MAX_DECIMAL_MANTISSA: i64 = 1 << 50;

const MANTISSA_RANGE: std::ops::RangeInclusive<i64> = -MAX_DECIMAL_MANTISSA..=MAX_DECIMAL_MANTISSA;

/// `10^s` for every scale; all exact in `f64`.
const POW10: [f64; MAX_DECIMAL_SCALE as usize + 1] =
    [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/// The value a mantissa at a scale decodes to. Division, not multiplication by `10^-s`: it is
/// correctly rounded, so `12345 / 100` is the same `f64` as the literal `123.45`.
fn value_of(mantissa: i64, scale: u8) -> f64 {
    debug_assert!(MANTISSA_RANGE.contains(&mantissa));
    // |mantissa| <= 2^50 < 2^53, so the conversion is exact.
    mantissa as f64 / POW10[usize::from(scale)]
}

/// The mantissa of `value` at `scale`, if it decodes back to the same bits.
fn mantissa_at(value: f64, scale: u8) -> Option<i64> {
    let scaled = (value * POW10[usize::from(scale)]).round();
    if scaled.is_nan() || scaled.abs() > MAX_DECIMAL_MANTISSA as f64 {
        return None;
    }
    // Integral and in range, so the cast is exact.
    let mantissa = scaled as i64;
    (value_of(mantissa, scale).to_bits() == value.to_bits()).then_some(mantissa)
}

/// The smallest scale at which every value is an exact decimal, with the mantissas.
pub(super) fn mantissas(samples: &[Sample]) -> Option<(u8, Vec<i64>)> {
    let mut scale = 0u8;
    let mut out = Vec::with_capacity(samples.len());
    // Each restart strictly raises the scale, so this runs at most MAX_DECIMAL_SCALE + 1 times.
    'search: loop {
        out.clear();
        for s in samples {
            if let Some(m) = mantissa_at(s.value, scale) {
                out.push(m);
                continue;
            }
            // Every scale up to this one fails for some value seen so far.
            scale = (scale + 1..=MAX_DECIMAL_SCALE).find(|&c| mantissa_at(s.value, c).is_some())?;
            continue 'search;
        }
        return Some((scale, out));
    }
}

/// How the mantissas are coded; one header byte: bit 7 set for delta-of-delta, bits 0-5 the
/// Exp-Golomb order, bit 6 zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct MantissaScheme {
    pub(super) delta_of_delta: bool,
    pub(super) order: u32,
}

const DOD_FLAG: u8 = 0x80;
const ORDER_MASK: u8 = 0x3F;

impl MantissaScheme {
    pub(super) fn to_byte(self) -> u8 {
        assert!(self.order <= MAX_EXP_GOLOMB_ORDER);
        // order <= 63 fits in six bits.
        let order = self.order as u8;
        if self.delta_of_delta {
            DOD_FLAG | order
        } else {
            order
        }
    }

    pub(super) fn from_byte(byte: u8) -> Result<Self, ChunkError> {
        if byte & !(DOD_FLAG | ORDER_MASK) != 0 {
            return Err(ChunkError::UnknownMantissaScheme(byte));
        }
        Ok(Self {
            delta_of_delta: byte & DOD_FLAG != 0,
            order: u32::from(byte & ORDER_MASK),
        })
    }
}

/// Checks a scale byte from a header.
pub(super) fn scale_from_byte(byte: u8) -> Result<u8, ChunkError> {
    if byte > MAX_DECIMAL_SCALE {
        return Err(ChunkError::BadDecimalScale(byte));
    }
    Ok(byte)
}

/// Zigzag residuals: deltas, or delta-of-deltas after a first delta from zero.
fn residuals(mantissas: &[i64], delta_of_delta: bool) -> Vec<u64> {
    let mut prev_m = 0i64;
    let mut prev_d = 0i64;
    mantissas
        .iter()
        .enumerate()
        .map(|(i, &m)| {
            // |m| <= 2^50, so deltas and their differences fit in i64.
            let d = m - prev_m;
            prev_m = m;
            if !delta_of_delta {
                return bits::zigzag(d);
            }
            let r = d - prev_d;
            // The first mantissa is a delta from zero, not a trend to continue.
            prev_d = if i == 0 { 0 } else { d };
            bits::zigzag(r)
        })
        .collect()
}

/// Picks the smaller mantissa coding; returns it, its residuals and its size in bits.
pub(super) fn choose(mantissas: &[i64]) -> (MantissaScheme, Vec<u64>, u64) {
    let [delta, dod] = [false, true].map(|delta_of_delta| {
        let res = residuals(mantissas, delta_of_delta);
        let (order, cost) = bits::best_exp_golomb_order(&res);
        let scheme = MantissaScheme {
            delta_of_delta,
            order,
        };
        (scheme, res, cost)
    });
    if dod.2 < delta.2 { dod } else { delta }
}

/// Writes residuals chosen by [`choose`].
pub(super) fn write(w: &mut BitWriter, residuals: &[u64], scheme: MantissaScheme) {
    for &r in residuals {
        w.write_exp_golomb(r, scheme.order);
    }
}

/// Sets the values of the samples in `out` (their timestamps are read already).
pub(super) fn read(
    r: &mut BitReader<'_>,
    out: &mut [Sample],
    scale: u8,
    scheme: MantissaScheme,
) -> Result<(), ChunkError> {
    r.in_registers(|r| read_values(r, out, scale, scheme))
}

fn read_values(
    r: &mut BitReader<'_>,
    out: &mut [Sample],
    scale: u8,
    scheme: MantissaScheme,
) -> Result<(), ChunkError> {
    let Some((head, rest)) = out.split_first_mut() else {
        return Ok(());
    };
    let order = scheme.order;
    // As in `value_of`, with the divisor looked up once per chunk.
    let pow = POW10[usize::from(scale)];
    // As in `residuals`: the first mantissa is a delta from zero and starts no trend.
    let mut m = step(0, bits::unzigzag(r.read_exp_golomb(order)?))?;
    head.value = m as f64 / pow;
    if scheme.delta_of_delta {
        let mut d = 0i64;
        for s in rest {
            d = d
                .checked_add(bits::unzigzag(r.read_exp_golomb(order)?))
                .ok_or(ChunkError::MantissaOutOfRange)?;
            m = step(m, d)?;
            s.value = m as f64 / pow;
        }
    } else {
        for s in rest {
            m = step(m, bits::unzigzag(r.read_exp_golomb(order)?))?;
            s.value = m as f64 / pow;
        }
    }
    Ok(())
}

/// The next mantissa, if it stays within [`MAX_DECIMAL_MANTISSA`].
#[inline]
fn step(m: i64, d: i64) -> Result<i64, ChunkError> {
    match m.checked_add(d) {
        Some(next) if MANTISSA_RANGE.contains(&next) => Ok(next),
        _ => Err(ChunkError::MantissaOutOfRange),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(values: &[f64]) -> Vec<Sample> {
        values
            .iter()
            .enumerate()
            .map(|(i, &value)| Sample {
                ts: i as u64,
                value,
            })
            .collect()
    }

    #[test]
    fn finds_the_smallest_scale() {
        assert_eq!(
            mantissas(&samples(&[123.45, 100.0, -0.5])),
            Some((2, vec![12345, 10000, -50]))
        );
        assert_eq!(
            mantissas(&samples(&[1.0, 2.0, -3.0])),
            Some((0, vec![1, 2, -3]))
        );
        assert_eq!(mantissas(&samples(&[])), Some((0, vec![])));
        assert_eq!(mantissas(&samples(&[0.000_000_001])), Some((9, vec![1])));
        // 0.1 + 0.2 is not the decimal 0.3.
        assert_eq!(mantissas(&samples(&[0.1 + 0.2])), None);
    }

    #[test]
    fn unrepresentable_values() {
        for v in [
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            1e-10,
            (MAX_DECIMAL_MANTISSA + 1) as f64,
            std::f64::consts::PI,
        ] {
            assert_eq!(mantissas(&samples(&[1.0, v])), None, "{v:?}");
        }
        assert_eq!(
            mantissas(&samples(&[MAX_DECIMAL_MANTISSA as f64])),
            Some((0, vec![MAX_DECIMAL_MANTISSA]))
        );
    }

    #[test]
    fn every_mantissa_in_range_re_encodes_at_its_scale() {
        // The bound that makes decode-then-encode total: spot-check the extremes at every scale.
        for scale in 0..=MAX_DECIMAL_SCALE {
            for m in [
                MAX_DECIMAL_MANTISSA,
                MAX_DECIMAL_MANTISSA - 1,
                -MAX_DECIMAL_MANTISSA,
                (1 << 49) + 12345,
                999_999_999,
                1,
                -7,
            ] {
                assert_eq!(
                    mantissa_at(value_of(m, scale), scale),
                    Some(m),
                    "{m} / 10^{scale}"
                );
            }
        }
    }

    #[test]
    fn scheme_byte_round_trips_and_rejects_reserved_bit() {
        for (delta_of_delta, order) in [(false, 0), (true, 0), (true, 63), (false, 17)] {
            let scheme = MantissaScheme {
                delta_of_delta,
                order,
            };
            assert_eq!(MantissaScheme::from_byte(scheme.to_byte()), Ok(scheme));
        }
        assert_eq!(
            MantissaScheme::from_byte(0x40),
            Err(ChunkError::UnknownMantissaScheme(0x40))
        );
        assert_eq!(scale_from_byte(10), Err(ChunkError::BadDecimalScale(10)));
    }

    #[test]
    fn trend_prefers_delta_of_delta_and_walk_prefers_delta() {
        let trend: Vec<i64> = (0..1000).map(|i| 10_000 + 3 * i).collect();
        assert!(choose(&trend).0.delta_of_delta);
        let walk: Vec<i64> = (0..1000).map(|i| 10_000 + [0, 1, 0, -1][i % 4]).collect();
        assert!(!choose(&walk).0.delta_of_delta);
    }

    #[test]
    fn decoder_rejects_out_of_range_mantissas() {
        let scheme = MantissaScheme {
            delta_of_delta: false,
            order: 0,
        };
        for first in [MAX_DECIMAL_MANTISSA + 1, i64::MIN, i64::MAX] {
            let mut w = BitWriter::new(Vec::new());
            w.write_exp_golomb(bits::zigzag(first), 0);
            let bytes = w.finish();
            let mut out = [Sample { ts: 0, value: 0.0 }];
            assert_eq!(
                read(&mut BitReader::new(&bytes), &mut out, 2, scheme),
                Err(ChunkError::MantissaOutOfRange)
            );
        }
    }
}
