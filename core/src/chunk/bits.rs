//! MSB-first bit streams and the integer codes the chunk encodings share.
//!
//! The writer cannot fail. The reader never panics and never reads past its slice: running out
//! of bits is [`ChunkError::Truncated`]. Exp-Golomb codes carry their own length, so a corrupt
//! length prefix is [`ChunkError::BadExpGolomb`], not an overlong read.

use super::ChunkError;

/// The largest Exp-Golomb order a chunk may declare: the order is stored in six bits.
pub(super) const MAX_EXP_GOLOMB_ORDER: u32 = 63;

/// Appends bits most-significant first to a byte vector.
#[derive(Debug, Default)]
pub(super) struct BitWriter {
    out: Vec<u8>,
    /// Pending bits, right-aligned; fewer than 64 between calls.
    acc: u64,
    pending: u32,
}

impl BitWriter {
    /// A writer that appends to `out` (which already holds the chunk header).
    pub(super) fn new(out: Vec<u8>) -> Self {
        Self {
            out,
            acc: 0,
            pending: 0,
        }
    }

    /// Writes `u` as an Exp-Golomb code of order `k`: `z` zero bits, then `u + 2^k` in `z + k + 1`
    /// bits. Every `u64` is representable; the longest code is 129 bits.
    pub(super) fn write_exp_golomb(&mut self, u: u64, k: u32) {
        assert!(k <= MAX_EXP_GOLOMB_ORDER);
        match u.checked_add(1u64 << k) {
            Some(x) => {
                let width = 64 - x.leading_zeros(); // in k+1..=64
                let zeros = width - 1 - k;
                if zeros + width <= 64 {
                    // The zeros are the high bits of one field.
                    self.write_bits(x, zeros + width);
                } else {
                    self.write_bits(0, zeros);
                    self.write_bits(x, width);
                }
            }
            None => {
                // u + 2^k has 65 bits: the leading one above a 64-bit remainder.
                self.write_bits(0, 64 - k);
                self.write_bits(1, 1);
                self.write_bits(u.wrapping_add(1u64 << k), 64);
            }
        }
    }

    /// Pads the last byte with zero bits and returns the bytes.
    pub(super) fn finish(mut self) -> Vec<u8> {
        let bytes = self.pending.div_ceil(8);
        let padded = self.acc << (bytes * 8 - self.pending);
        // Only the low `bytes` bytes of `padded` hold bits; bytes <= 8.
        let word = padded.to_be_bytes();
        self.out.extend_from_slice(&word[8 - bytes as usize..]);
        self.out
    }
}

/// Where bit fields go: a [`BitWriter`], or a [`BitCounter`] that only sizes them.
pub(super) trait BitSink {
    /// Writes the low `n` bits of `value`, most significant first.
    fn write_bits(&mut self, value: u64, n: u32);

    /// Writes `hi` in `hi_bits` then `lo` in `lo_bits`.
    fn write_pair(&mut self, hi: u64, hi_bits: u32, lo: u64, lo_bits: u32) {
        self.write_bits(hi, hi_bits);
        self.write_bits(lo, lo_bits);
    }

    fn write_bit(&mut self, bit: bool) {
        self.write_bits(u64::from(bit), 1);
    }
}

/// Counts the bits an encoder would write, so encodings can be compared before writing one.
#[derive(Debug, Default)]
pub(super) struct BitCounter {
    pub(super) bits: u64,
}

impl BitSink for BitCounter {
    fn write_bits(&mut self, _value: u64, n: u32) {
        self.bits += u64::from(n);
    }
}

impl BitSink for BitWriter {
    /// Writes the low `n` bits of `value`, most significant first.
    fn write_bits(&mut self, value: u64, n: u32) {
        assert!(n <= 64);
        assert!(n == 64 || value >> n == 0, "value wider than {n} bits");
        let space = 64 - self.pending; // at least 1
        if n < space {
            // n < 64 here, so the shift keeps every pending bit.
            self.acc = (self.acc << n) | value;
            self.pending += n;
            return;
        }
        // Fill the accumulator to 64 bits, flush it, keep the rest of `value`.
        let rest = n - space; // < 64
        let head = value >> rest;
        let full = if space == 64 {
            head
        } else {
            (self.acc << space) | head
        };
        self.out.extend_from_slice(&full.to_be_bytes());
        self.acc = value & low_mask(rest);
        self.pending = rest;
    }

    /// In one step when the fields fit together.
    fn write_pair(&mut self, hi: u64, hi_bits: u32, lo: u64, lo_bits: u32) {
        if hi_bits + lo_bits <= 64 && lo_bits < 64 {
            assert!(lo >> lo_bits == 0, "value wider than {lo_bits} bits");
            self.write_bits((hi << lo_bits) | lo, hi_bits + lo_bits);
        } else {
            self.write_bits(hi, hi_bits);
            self.write_bits(lo, lo_bits);
        }
    }
}

/// The number of bits [`BitWriter::write_exp_golomb`] spends on `u` at order `k`.
pub(super) fn exp_golomb_len(u: u64, k: u32) -> u64 {
    debug_assert!(k <= MAX_EXP_GOLOMB_ORDER);
    let width = u
        .checked_add(1u64 << k)
        .map_or(65, |x| 64 - x.leading_zeros());
    u64::from(2 * width - 1 - k)
}

/// The Exp-Golomb order with the fewest total bits for `values`.
///
/// Computes the exact cost at every order from a histogram of bit widths: for `u` of width
/// `w > k`, `u + 2^k` has width `w` or `w + 1`, and the histogram keeps enough to tell which
/// only approximately, so the histogram picks candidates and an exact pass decides among them.
pub(super) fn best_exp_golomb_order(values: &[u64]) -> (u32, u64) {
    let widths = width_histogram(values);
    // Only widths up to the widest value count, and only orders up to it: from there on every
    // value costs k + 1 bits, which grows with k. (Looking at all 64 orders times 65 widths
    // was 4,160 steps a call, three calls a chunk of 256 samples: the most expensive part of
    // sealing one.)
    let widest = widths.iter().rposition(|&c| c > 0).unwrap_or(0);
    best_order_up_to(
        values,
        &widths[..=widest],
        (widest as u32).min(MAX_EXP_GOLOMB_ORDER),
    )
}

/// How many of `values` have each bit width, 0 to 64.
fn width_histogram(values: &[u64]) -> [u64; 65] {
    let mut widths = [0u64; 65];
    for &u in values {
        widths[(64 - u.leading_zeros()) as usize] += 1;
    }
    widths
}

/// The search of [`best_exp_golomb_order`] over orders `0..=last`, estimating from `widths`
/// (the histogram, or its start: widths past the slice count as empty).
fn best_order_up_to(values: &[u64], widths: &[u64], last: u32) -> (u32, u64) {
    // Approximate cost: width of u + 2^k taken as max(w, k + 1).
    let approx = |k: u32| -> u64 {
        widths
            .iter()
            .enumerate()
            .map(|(w, &count)| {
                let width = (w as u64).max(u64::from(k) + 1);
                count * (2 * width - 1 - u64::from(k))
            })
            .sum()
    };
    // The first of equal costs wins (the order is written into the chunk, so the choice must
    // not change with the bounds).
    let guess = (0..=last).min_by_key(|&k| approx(k)).unwrap_or(0);
    let lo = guess.saturating_sub(1);
    let hi = (guess + 1).min(MAX_EXP_GOLOMB_ORDER);
    let mut best = (lo, u64::MAX);
    for k in lo..=hi {
        let cost = values.iter().map(|&u| exp_golomb_len(u, k)).sum();
        if cost < best.1 {
            best = (k, cost);
        }
    }
    best
}

fn low_mask(n: u32) -> u64 {
    if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
}

/// Maps signed to unsigned so small magnitudes of either sign get small codes.
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline(always)]
pub(super) fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Reads bits most-significant first from a byte slice.
///
/// The next input bits wait left-aligned in a 64-bit buffer, topped up without a branch on its
/// fill level: one unaligned big-endian load, a shift and an OR (F. Giesen, "Reading bits in
/// far too many ways", variant 4). An Exp-Golomb code is its leading zeros counted in one
/// instruction and one shift; the load for the code after it has its address before this one
/// is decoded, so only the buffer's shifts sit on a column decoder's critical path. Small
/// fields refill only when the buffer runs short, so several share one load.
///
/// The fast paths are inlined into the column decoders' loops, which run on a copy of the
/// reader in registers ([`Self::in_registers`]); the last bytes of the input, fields wider
/// than a refill and malformed codes take cold paths that report the exact error, and take
/// the reader by value so that the copy never has its address taken.
#[derive(Clone, Debug)]
pub(super) struct BitReader<'a> {
    bytes: &'a [u8],
    /// Index of the first byte not counted in `avail`.
    next: usize,
    /// Loaded bits, left-aligned: the top `avail` are the next input bits. The bits below them
    /// are zero or the input bits that follow, which the next refill ORs in again unchanged.
    acc: u64,
    /// At most 63.
    avail: u32,
}

/// Bits the buffer holds after a refill, unless the input ends first: 56 to 63.
const FILL_BITS: u32 = 56;

impl<'a> BitReader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            next: 0,
            acc: 0,
            avail: 0,
        }
    }

    /// Runs a decoding loop on a copy of the reader in a local, then stores the copy back.
    ///
    /// Through `&mut self` the loop would keep the reader's fields in memory, and every code
    /// would wait for the buffer to round-trip through a store and a load (in `perf annotate`,
    /// about a third of a tick chunk's decoding); a local that does not escape lives in
    /// registers.
    #[inline(always)]
    pub(super) fn in_registers<T>(&mut self, run: impl FnOnce(&mut Self) -> T) -> T {
        let mut local = self.clone();
        let out = run(&mut local);
        *self = local;
        out
    }

    /// Tops the buffer up to at least [`FILL_BITS`] bits, or to the end of the input.
    #[inline(always)]
    fn fill(&mut self) {
        let Some(word) = self.bytes.get(self.next..self.next + 8) else {
            if self.next < self.bytes.len() {
                // By value, like every cold path: a `&mut self` call would pin the reader to
                // memory in the loops that run on a local copy (`in_registers`).
                *self = self.clone().fill_tail();
            }
            return;
        };
        let mut b = [0u8; 8];
        b.copy_from_slice(word);
        debug_assert!(self.avail < 64);
        // The new bits go right below the loaded ones; as many whole bytes as fit are counted,
        // which leaves avail + 8 * bytes = 56 + avail % 8. avail < 64, so the shift and the
        // subtraction are in range (wrapping only skips the overflow checks).
        self.acc |= u64::from_be_bytes(b).wrapping_shr(self.avail);
        self.next += (63u32.wrapping_sub(self.avail) / 8) as usize;
        self.avail |= FILL_BITS;
    }

    /// [`Self::fill`] with fewer than 8 bytes left, some not loaded yet: the same word, zero
    /// past the end, counting only the bytes that are there.
    #[inline(never)]
    fn fill_tail(mut self) -> Self {
        let len = self.bytes.len();
        let left = len - self.next; // 1..=7
        let word = match len.checked_sub(8).and_then(|at| self.bytes.get(at..)) {
            // The input's last 8 bytes, shifted so that byte `next` comes first.
            Some(last) => {
                let mut b = [0u8; 8];
                b.copy_from_slice(last);
                u64::from_be_bytes(b) << (8 * (8 - left))
            }
            // An input shorter than 8 bytes.
            None => {
                let mut b = [0u8; 8];
                b[..left].copy_from_slice(&self.bytes[self.next..]);
                u64::from_be_bytes(b)
            }
        };
        let take = ((63 - self.avail) as usize / 8).min(left);
        self.acc |= word >> self.avail;
        self.next += take;
        // take <= (63 - avail) / 8, so avail stays below 64.
        self.avail += 8 * take as u32;
        self
    }

    /// Drops `n` of the `avail` loaded bits.
    #[inline(always)]
    fn consume(&mut self, n: u32) {
        debug_assert!(n <= self.avail && self.avail < 64);
        // n <= avail < 64: the shift is in range.
        self.acc = self.acc.wrapping_shl(n);
        self.avail -= n;
    }

    /// Reads `n <= 64` bits as an unsigned integer.
    #[inline(always)]
    pub(super) fn read_bits(&mut self, n: u32) -> Result<u64, ChunkError> {
        assert!(n <= 64);
        if n == 0 || n > FILL_BITS {
            let (reader, value) = self.clone().read_bits_wide(n);
            *self = reader;
            return value;
        }
        // Several small fields often share one refill.
        if n > self.avail {
            self.fill();
            if n > self.avail {
                return Err(ChunkError::Truncated);
            }
        }
        // 1 <= n <= avail <= 63: the shifts are in range.
        let value = self.acc >> (64 - n);
        self.consume(n);
        Ok(value)
    }

    /// [`Self::read_bits`] of nothing or of more bits than one refill loads.
    #[inline(never)]
    fn read_bits_wide(mut self, n: u32) -> (Self, Result<u64, ChunkError>) {
        let value = match n {
            0 => Ok(0),
            n => self
                .read_bits(n - 32)
                .and_then(|hi| Ok((hi << 32) | self.read_bits(32)?)),
        };
        (self, value)
    }

    #[inline(always)]
    pub(super) fn read_bit(&mut self) -> Result<bool, ChunkError> {
        Ok(self.read_bits(1)? == 1)
    }

    /// Counts one bits, at most `max < 64`, and consumes them and the zero that ends them
    /// when there are fewer than `max`: the unary prefixes of the timestamp buckets.
    #[inline(always)]
    pub(super) fn read_ones(&mut self, max: u32) -> Result<u32, ChunkError> {
        debug_assert!(max < 64);
        self.fill();
        // The count may run into bits not yet counted in `avail`; `used` then exceeds it.
        let ones = (!self.acc).leading_zeros().min(max);
        let used = if ones == max { max } else { ones + 1 };
        if used > self.avail {
            return Err(ChunkError::Truncated);
        }
        self.consume(used);
        Ok(ones)
    }

    /// Reads an Exp-Golomb code of order `k` written by [`BitWriter::write_exp_golomb`].
    #[inline(always)]
    pub(super) fn read_exp_golomb(&mut self, k: u32) -> Result<u64, ChunkError> {
        debug_assert!(k <= MAX_EXP_GOLOMB_ORDER);
        self.fill();
        // Fast path: the whole code is loaded, its zeros the high bits of one field. Zeros
        // that run past the loaded bits make `len` exceed `avail`.
        let zeros = self.acc.leading_zeros();
        let len = 2 * zeros + k + 1;
        if len <= self.avail {
            // 1 <= len <= avail < 64: the shifts are in range.
            let x = self.acc.wrapping_shr(64 - len);
            self.consume(len);
            // x has zeros + k + 1 significant bits, so x >= 2^k.
            return Ok(x - (1u64 << k));
        }
        let (reader, value) = self.clone().read_exp_golomb_slow(k);
        *self = reader;
        value
    }

    /// A code longer than the buffer holds, or one that runs past the end of the input.
    #[cold]
    fn read_exp_golomb_slow(mut self, k: u32) -> (Self, Result<u64, ChunkError>) {
        let value = (|| {
            // Width of u + 2^k is at most 65 bits for any u64.
            let zeros = self.read_zeros(65 - 1 - k)?;
            let rest = zeros + k; // bits after the leading one, at most 64
            let low = self.read_bits(rest)?;
            let x = (1u128 << rest) | u128::from(low);
            let u = x - (1u128 << k);
            u64::try_from(u).map_err(|_| ChunkError::BadExpGolomb)
        })();
        (self, value)
    }

    /// Counts zero bits up to and including the first one bit; fails past `max` zeros.
    fn read_zeros(&mut self, max: u32) -> Result<u32, ChunkError> {
        let mut zeros = 0;
        loop {
            self.fill();
            if self.avail == 0 {
                return Err(ChunkError::Truncated);
            }
            // Cap the count at what is loaded: the bits below may be unread zeros.
            let run = self.acc.leading_zeros().min(self.avail);
            zeros += run;
            if zeros > max {
                return Err(ChunkError::BadExpGolomb);
            }
            if run < self.avail {
                // The zeros and the terminating one bit.
                self.consume(run + 1);
                return Ok(zeros);
            }
            self.consume(run);
        }
    }

    /// Bits consumed so far.
    pub(super) fn position_bits(&self) -> u64 {
        self.next as u64 * 8 - u64::from(self.avail)
    }

    /// Checks that only zero padding up to the next byte boundary remains.
    pub(super) fn finish(mut self) -> Result<(), ChunkError> {
        let pad = (8 - self.position_bits() % 8) % 8;
        // pad < 8, so the cast cannot truncate.
        if self.read_bits(pad as u32)? != 0 {
            return Err(ChunkError::NonZeroPadding);
        }
        let consumed = self.position_bits() / 8;
        let extra = self.bytes.len() as u64 - consumed;
        if extra != 0 {
            return Err(ChunkError::TrailingBytes { extra });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bits_round_trip_across_byte_boundaries() {
        let mut w = BitWriter::new(vec![0xAA]);
        w.write_bits(0b101, 3);
        w.write_bits(u64::MAX, 64);
        w.write_bits(0, 0);
        w.write_bit(true);
        w.write_bits(0x1234_5678_9ABC, 48);
        let bytes = w.finish();
        assert_eq!(bytes[0], 0xAA);
        // 3 + 64 + 1 + 48 = 116 bits -> 15 bytes after the prefix byte.
        assert_eq!(bytes.len(), 1 + 15);
        let mut r = BitReader::new(&bytes[1..]);
        assert_eq!(r.read_bits(3), Ok(0b101));
        assert_eq!(r.read_bits(64), Ok(u64::MAX));
        assert_eq!(r.read_bit(), Ok(true));
        assert_eq!(r.read_bits(48), Ok(0x1234_5678_9ABC));
        assert_eq!(r.position_bits(), 116);
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn reader_reports_truncation_and_padding() {
        let mut r = BitReader::new(&[0xFF]);
        assert_eq!(r.read_bits(9), Err(ChunkError::Truncated));
        let mut r = BitReader::new(&[0b1000_0001]);
        assert_eq!(r.read_bit(), Ok(true));
        assert_eq!(r.finish(), Err(ChunkError::NonZeroPadding));
        let mut r = BitReader::new(&[0b1000_0000, 0]);
        assert_eq!(r.read_bit(), Ok(true));
        assert_eq!(r.finish(), Err(ChunkError::TrailingBytes { extra: 1 }));
        assert_eq!(BitReader::new(&[]).read_bit(), Err(ChunkError::Truncated));
    }

    #[test]
    fn exp_golomb_known_codes() {
        // Order 0: 0 -> "1", 1 -> "010", 2 -> "011", 3 -> "00100".
        let mut w = BitWriter::new(Vec::new());
        for u in [0, 1, 2, 3] {
            w.write_exp_golomb(u, 0);
        }
        assert_eq!(w.finish(), vec![0b1010_0110, 0b0100_0000]);
        assert_eq!(exp_golomb_len(0, 0), 1);
        assert_eq!(exp_golomb_len(3, 0), 5);
        assert_eq!(exp_golomb_len(u64::MAX, 0), 129);
        assert_eq!(exp_golomb_len(u64::MAX, 63), 66);
    }

    #[test]
    fn exp_golomb_rejects_overlong_zero_run() {
        // 66 zero bits then a one: wider than any u64 at order 0.
        let mut bytes = vec![0u8; 8];
        bytes.push(0b0010_0000);
        bytes.extend_from_slice(&[0xFF; 9]);
        let mut r = BitReader::new(&bytes);
        assert_eq!(r.read_exp_golomb(0), Err(ChunkError::BadExpGolomb));
        // 64 zeros, then 65 ones: 2^65 - 1 - 1 overflows u64.
        let mut w = BitWriter::new(Vec::new());
        w.write_bits(0, 64);
        w.write_bits(u64::MAX, 64);
        w.write_bit(true);
        let bytes = w.finish();
        assert_eq!(
            BitReader::new(&bytes).read_exp_golomb(0),
            Err(ChunkError::BadExpGolomb)
        );
    }

    #[test]
    fn zigzag_extremes() {
        for v in [0, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(i64::MIN), u64::MAX);
    }

    /// The order search as it was before it stopped at the widest value (session 12): every
    /// order over the whole histogram. The order is written into chunks, so the bounded search
    /// must pick exactly what this picks.
    fn best_order_reference(values: &[u64]) -> (u32, u64) {
        best_order_up_to(values, &width_histogram(values), MAX_EXP_GOLOMB_ORDER)
    }

    #[test]
    fn best_order_picks_what_the_reference_picks_at_the_edges() {
        for values in [
            vec![],
            vec![0],
            vec![0; 10],
            vec![1],
            vec![u64::MAX],
            vec![u64::MAX, 0],
            vec![1 << 62, 1 << 63],
            vec![3, 3, 3, 1 << 40],
        ] {
            assert_eq!(
                best_exp_golomb_order(&values),
                best_order_reference(&values),
                "{values:?}"
            );
        }
    }

    #[test]
    fn best_order_matches_exhaustive_search() {
        let values: Vec<u64> = (0..500u64).map(|i| (i * 7919) % 300).collect();
        let (k, cost) = best_exp_golomb_order(&values);
        let exhaustive = (0..=MAX_EXP_GOLOMB_ORDER)
            .map(|k| values.iter().map(|&u| exp_golomb_len(u, k)).sum::<u64>())
            .min();
        assert_eq!(Some(cost), exhaustive);
        assert_eq!(
            cost,
            values.iter().map(|&u| exp_golomb_len(u, k)).sum::<u64>()
        );
    }

    proptest! {
        #[test]
        fn best_order_picks_what_the_reference_picks(
            values in proptest::collection::vec(
                prop_oneof![0u64..4, 0u64..1000, any::<u64>(), (0u32..64).prop_map(|s| 1u64 << s)],
                0..300,
            )
        ) {
            prop_assert_eq!(best_exp_golomb_order(&values), best_order_reference(&values));
        }

        #[test]
        fn mixed_fields_round_trip(
            fields in proptest::collection::vec((any::<u64>(), 0u32..=64, 0u32..=63, any::<bool>()), 0..200)
        ) {
            let mut w = BitWriter::new(Vec::new());
            let mut expected_bits = 0u64;
            for &(v, n, k, golomb) in &fields {
                if golomb {
                    w.write_exp_golomb(v, k);
                    expected_bits += exp_golomb_len(v, k);
                } else {
                    w.write_bits(v & low_mask(n), n);
                    expected_bits += u64::from(n);
                }
            }
            let bytes = w.finish();
            prop_assert_eq!(bytes.len() as u64, expected_bits.div_ceil(8));
            let mut r = BitReader::new(&bytes);
            for &(v, n, k, golomb) in &fields {
                if golomb {
                    prop_assert_eq!(r.read_exp_golomb(k), Ok(v));
                } else {
                    prop_assert_eq!(r.read_bits(n), Ok(v & low_mask(n)));
                }
            }
            prop_assert_eq!(r.position_bits(), expected_bits);
            prop_assert_eq!(r.finish(), Ok(()));
        }
    }
}
