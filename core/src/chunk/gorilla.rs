//! Gorilla value column (Pelkonen et al., VLDB 2015, section 4.1.2): each value is XOR'd with
//! the one before it and only the meaningful bits of the XOR are stored.
//!
//! - The first value: its 64 raw bits.
//! - `0`: the XOR is zero (same bits as the previous value).
//! - `10`: the meaningful bits fit in the previous window (at least as many leading and trailing
//!   zeros); the window's bits follow.
//! - `11`: a new window: 5 bits of leading-zero count (capped at 31), 6 bits of meaningful
//!   length (64 stored as 0), then the meaningful bits.
//!
//! Works on raw bit patterns, so NaN payloads, -0.0, infinities and subnormals are exact.
//! The encoder deviates from the paper in one way the format allows: it opens a new window when
//! that is cheaper than reusing an oversized old one.

use super::bits::{BitReader, BitSink};
use super::{ChunkError, Sample};

/// Widest leading-zero count the 5-bit field holds.
const MAX_LEADING: u32 = 31;
/// Bits of a new-window header after the `11` control bits.
const WINDOW_HEADER_BITS: u32 = 5 + 6;

/// A run of meaningful bits: `leading` zeros above, `len` meaningful bits, zeros below.
#[derive(Clone, Copy, Debug)]
struct Window {
    leading: u32,
    len: u32,
}

impl Window {
    fn trailing(self) -> u32 {
        64 - self.leading - self.len
    }
}

/// Writes the values of `samples`.
pub(super) fn write(w: &mut impl BitSink, samples: &[Sample]) {
    let Some(first) = samples.first() else {
        return;
    };
    let mut prev = first.value.to_bits();
    w.write_bits(prev, 64);
    let mut window: Option<Window> = None;
    for s in &samples[1..] {
        let bits = s.value.to_bits();
        let xor = bits ^ prev;
        prev = bits;
        if xor == 0 {
            w.write_bit(false);
            continue;
        }
        let leading = xor.leading_zeros().min(MAX_LEADING);
        let trailing = xor.trailing_zeros();
        let fresh = Window {
            leading,
            len: 64 - leading - trailing,
        };
        let reuse = window.filter(|old| {
            old.leading <= leading
                && old.trailing() <= trailing
                && old.len <= WINDOW_HEADER_BITS + fresh.len
        });
        match reuse {
            Some(old) => w.write_pair(0b10, 2, xor >> old.trailing(), old.len),
            None => {
                // A length of 64 is stored as 0: a non-zero XOR has at least one bit.
                let header =
                    (0b11 << 11) | u64::from(fresh.leading) << 6 | u64::from(fresh.len % 64);
                w.write_pair(header, 2 + WINDOW_HEADER_BITS, xor >> trailing, fresh.len);
                window = Some(fresh);
            }
        }
    }
}

/// Reads values into the `count` samples already in `out` (timestamps set, values not).
pub(super) fn read(r: &mut BitReader<'_>, out: &mut [Sample]) -> Result<(), ChunkError> {
    r.in_registers(|r| read_values(r, out))
}

fn read_values(r: &mut BitReader<'_>, out: &mut [Sample]) -> Result<(), ChunkError> {
    let Some((first, rest)) = out.split_first_mut() else {
        return Ok(());
    };
    let mut prev = r.read_bits(64)?;
    first.value = f64::from_bits(prev);
    let mut window: Option<Window> = None;
    for s in rest {
        if r.read_bit()? {
            let win = if r.read_bit()? {
                let leading = r.read_bits(5)? as u32; // five bits: fits
                let len = match r.read_bits(6)? as u32 {
                    0 => 64,
                    n => n,
                };
                if leading + len > 64 {
                    return Err(ChunkError::BadXorWindow { leading, len });
                }
                let fresh = Window { leading, len };
                window = Some(fresh);
                fresh
            } else {
                window.ok_or(ChunkError::XorWindowMissing)?
            };
            let meaningful = r.read_bits(win.len)?;
            // trailing < 64 because len >= 1.
            prev ^= meaningful << win.trailing();
        }
        s.value = f64::from_bits(prev);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::bits::BitWriter;

    fn values(vs: &[u64]) -> Vec<Sample> {
        vs.iter()
            .enumerate()
            .map(|(i, &bits)| Sample {
                ts: i as u64,
                value: f64::from_bits(bits),
            })
            .collect()
    }

    fn round_trip(vs: &[u64]) -> (Vec<u64>, usize) {
        let s = values(vs);
        let mut w = BitWriter::new(Vec::new());
        write(&mut w, &s);
        let bytes = w.finish();
        let mut out: Vec<Sample> = vs.iter().map(|_| Sample { ts: 0, value: 0.0 }).collect();
        let mut r = BitReader::new(&bytes);
        read(&mut r, &mut out).expect("own encoding decodes");
        r.finish().expect("no trailing bits");
        (out.iter().map(|s| s.value.to_bits()).collect(), bytes.len())
    }

    #[test]
    fn special_values_are_bit_exact() {
        let vs = [
            f64::NAN.to_bits(),
            0x7FF0_0000_0000_0001, // signalling NaN payload
            0xFFF8_DEAD_BEEF_0001, // negative quiet NaN with payload
            (-0.0f64).to_bits(),
            0.0f64.to_bits(),
            f64::INFINITY.to_bits(),
            f64::NEG_INFINITY.to_bits(),
            1, // smallest subnormal
            0x000F_FFFF_FFFF_FFFF,
            f64::MIN_POSITIVE.to_bits(),
            f64::MAX.to_bits(),
            0,
            u64::MAX,
            0,
        ];
        assert_eq!(round_trip(&vs).0, vs);
    }

    #[test]
    fn repeated_values_cost_one_bit() {
        let vs = vec![42.5f64.to_bits(); 801];
        // 64 bits for the first, 800 bits for the rest: exactly 108 bytes.
        assert_eq!(round_trip(&vs), (vs.clone(), 108));
    }

    #[test]
    fn window_is_reused_when_it_fits() {
        // XORs 0b1100 << 50 then 0b0100 << 50: the second fits the first window.
        let vs = [0, 0b1100 << 50, 0b1000 << 50];
        let (out, len) = round_trip(&vs);
        assert_eq!(out, vs);
        // 64 + (2 + 11 + 2) + (2 + 2) = 83 bits.
        assert_eq!(len, 11);
    }

    #[test]
    fn decoder_rejects_bad_windows() {
        // First value, then '11', leading 31, len 40: 71 > 64.
        let mut w = BitWriter::new(Vec::new());
        w.write_bits(0, 64);
        w.write_bits(0b11, 2);
        w.write_bits(31, 5);
        w.write_bits(40, 6);
        w.write_bits(0, 40);
        let bytes = w.finish();
        let mut out = [Sample { ts: 0, value: 0.0 }; 2];
        assert_eq!(
            read(&mut BitReader::new(&bytes), &mut out),
            Err(ChunkError::BadXorWindow {
                leading: 31,
                len: 40
            })
        );

        // '10' before any window was opened.
        let mut w = BitWriter::new(Vec::new());
        w.write_bits(0, 64);
        w.write_bits(0b10, 2);
        let bytes = w.finish();
        assert_eq!(
            read(&mut BitReader::new(&bytes), &mut out),
            Err(ChunkError::XorWindowMissing)
        );
    }
}
