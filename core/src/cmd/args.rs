//! Parsing of individual arguments: numbers, keywords, option lists.

use bytes::Bytes;

use super::CommandError;

/// Parses a RESP integer argument the way Redis's `string2ll` does: optional `-`, digits, no
/// spaces, no `+`, no leading zeros except "0" itself, within `i64`.
///
/// One pass over the bytes: a sample's timestamp is one of these, and `str::parse` after a
/// UTF-8 check and a digit check cost about 400 instructions for 13 digits.
pub fn int(arg: &[u8]) -> Result<i64, CommandError> {
    let (negative, digits) = match arg {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, arg),
    };
    // 19 digits hold every i64; a 20th (no leading zero) is beyond it.
    if digits.is_empty() || digits.len() > 19 || (digits.len() > 1 && digits[0] == b'0') {
        return Err(CommandError::NotInteger);
    }
    // At most 19 digits: below 10^19 < 2^64, no overflow. Eight at a time where they are (a
    // millisecond timestamp has 13), then one at a time.
    let mut n = 0u64;
    let mut eights = digits.chunks_exact(8);
    for chunk in &mut eights {
        let chunk: [u8; 8] = chunk.try_into().expect("chunks of eight");
        n = n * 100_000_000 + eight_digits(chunk).ok_or(CommandError::NotInteger)?;
    }
    for &b in eights.remainder() {
        if !b.is_ascii_digit() {
            return Err(CommandError::NotInteger);
        }
        n = n * 10 + u64::from(b - b'0');
    }
    match (negative, i64::try_from(n)) {
        (false, Ok(v)) => Ok(v),
        (true, Ok(v)) => Ok(-v),
        (true, Err(_)) if n == i64::MIN.unsigned_abs() => Ok(i64::MIN),
        _ => Err(CommandError::NotInteger),
    }
}

/// Eight ASCII digits as their number, or None if one is not a digit: the eight bytes as one
/// word, checked and combined in pairs, then fours, then the eight (no loop per digit).
fn eight_digits(chunk: [u8; 8]) -> Option<u64> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let v = u64::from_le_bytes(chunk);
    // A digit is 0x30..=0x39: high nibble 3, and adding 6 keeps it so.
    if v & (0xF0 * ONES) != 0x30 * ONES || (v + 0x06 * ONES) & (0xF0 * ONES) != 0x30 * ONES {
        return None;
    }
    // Byte 0 holds the first (most significant) digit.
    let v = v - 0x30 * ONES;
    let v = (v.wrapping_mul(10) + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    let v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some((v.wrapping_mul(10_000) + (v >> 32)) & 0xFFFF_FFFF)
}

/// A non-negative integer argument.
pub fn uint(arg: &[u8]) -> Result<u64, CommandError> {
    let n = int(arg)?;
    u64::try_from(n).map_err(|_| CommandError::NotInteger)
}

/// Parses a float argument like Redis's `string2ld`: decimal or exponent notation, `inf`,
/// `-inf`; never NaN; no surrounding spaces.
pub fn float(arg: &[u8]) -> Result<f64, CommandError> {
    // Most arguments are plain decimals (a BATCH_SET value, an INCRBYFLOAT step): the sample
    // parser reads those in one pass, and every number it accepts reads the same here.
    if let Some(v) = super::ts::sample_value(arg).filter(|v| v.is_finite()) {
        return Ok(v);
    }
    let text = std::str::from_utf8(arg).map_err(|_| CommandError::NotFloat)?;
    if text.is_empty() || text.trim() != text {
        return Err(CommandError::NotFloat);
    }
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let v = if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
        if text.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        }
    } else {
        // Rust accepts "nan" and "infinity" spellings we already handled; refuse the rest.
        if text
            .bytes()
            .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E')
        {
            return Err(CommandError::NotFloat);
        }
        text.parse::<f64>().map_err(|_| CommandError::NotFloat)?
    };
    if v.is_nan() {
        return Err(CommandError::NotFloat);
    }
    Ok(v)
}

/// Whether `arg` equals the ASCII keyword `kw` (given in upper case), ignoring case.
pub fn is(arg: &[u8], kw: &str) -> bool {
    arg.eq_ignore_ascii_case(kw.as_bytes())
}

/// Formats a float the way Redis replies with one (INCRBYFLOAT): shortest round-trip decimal,
/// no exponent, integral values without a fraction.
pub fn format_float(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e17 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// An argument cursor for option lists.
pub struct Args<'a> {
    args: &'a [Bytes],
    pos: usize,
}

impl<'a> Args<'a> {
    /// Starts after the command name (and any fixed arguments already taken).
    pub fn new(args: &'a [Bytes], pos: usize) -> Self {
        Self { args, pos }
    }

    pub fn next_arg(&mut self) -> Option<&'a Bytes> {
        let arg = self.args.get(self.pos)?;
        self.pos += 1;
        Some(arg)
    }

    /// The next argument, or a syntax error if there is none.
    pub fn value(&mut self) -> Result<&'a Bytes, CommandError> {
        self.next_arg().ok_or(CommandError::Syntax)
    }

    pub fn peek(&self) -> Option<&'a Bytes> {
        self.args.get(self.pos)
    }

    pub fn remaining(&self) -> &'a [Bytes] {
        &self.args[self.pos.min(self.args.len())..]
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.args.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_like_redis() {
        assert_eq!(int(b"42").unwrap(), 42);
        assert_eq!(int(b"-9223372036854775808").unwrap(), i64::MIN);
        for bad in [
            &b""[..],
            b"+1",
            b" 1",
            b"1 ",
            b"01",
            b"9223372036854775808",
            b"1.0",
            b"-",
            b"abc",
        ] {
            assert_eq!(int(bad), Err(CommandError::NotInteger), "{:?}", bad);
        }
        assert_eq!(int(b"0").unwrap(), 0);
    }

    #[test]
    fn floats_like_redis() {
        assert_eq!(float(b"1.5").unwrap(), 1.5);
        assert_eq!(float(b"-2e3").unwrap(), -2000.0);
        assert_eq!(float(b"inf").unwrap(), f64::INFINITY);
        for bad in [&b"nan"[..], b"", b" 1", b"1x", b"0x10"] {
            assert_eq!(float(bad), Err(CommandError::NotFloat), "{:?}", bad);
        }
        assert_eq!(format_float(3.0), "3");
        assert_eq!(format_float(10.5), "10.5");
        assert_eq!(format_float(0.1 + 0.2), "0.30000000000000004");
    }

    /// The parsers as they were before their one-pass rewrites (session 12): `str::parse`
    /// after the same checks. The rewrites must read every input as these do.
    mod reference {
        use super::super::CommandError;

        pub(super) fn int(arg: &[u8]) -> Result<i64, CommandError> {
            let text = std::str::from_utf8(arg).map_err(|_| CommandError::NotInteger)?;
            let digits = text.strip_prefix('-').unwrap_or(text);
            let leading_zero = digits.len() > 1 && digits.starts_with('0');
            if digits.is_empty() || leading_zero || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(CommandError::NotInteger);
            }
            text.parse::<i64>().map_err(|_| CommandError::NotInteger)
        }

        pub(super) fn float(arg: &[u8]) -> Result<f64, CommandError> {
            let text = std::str::from_utf8(arg).map_err(|_| CommandError::NotFloat)?;
            if text.is_empty() || text.trim() != text {
                return Err(CommandError::NotFloat);
            }
            let v = match text.to_ascii_lowercase().as_str() {
                "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
                "-inf" | "-infinity" => f64::NEG_INFINITY,
                _ => {
                    if text
                        .bytes()
                        .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E')
                    {
                        return Err(CommandError::NotFloat);
                    }
                    text.parse::<f64>().map_err(|_| CommandError::NotFloat)?
                }
            };
            if v.is_nan() {
                return Err(CommandError::NotFloat);
            }
            Ok(v)
        }
    }

    #[test]
    fn numbers_at_the_edges_read_as_the_reference_reads_them() {
        for text in [
            "-0",
            "0",
            "-",
            "--1",
            "-01",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "-9223372036854775809",
            "18446744073709551616",
            "99999999999999999999",
            "00",
            "+0",
            "1e400",
            "-1e400",
            "INF",
            "+Infinity",
            "-iNf",
            "+-inf",
            "nan",
            "-nan",
            "1.",
            ".5",
            "+.5",
            "5e",
            "1e+",
            "1_0",
            "1e5",
            "0.1",
            "-0.0",
            "4.9e-324",
            "1.7976931348623157e308",
            "12345678901234567890.5",
        ] {
            let b = text.as_bytes();
            assert_eq!(int(b), reference::int(b), "int {text:?}");
            assert_eq!(
                float(b).map(f64::to_bits),
                reference::float(b).map(f64::to_bits),
                "float {text:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn integers_read_as_the_reference_reads_them(
            text in "-?[0-9]{0,21}|[-+ 0-9a-z.]{0,8}",
            v in proptest::prelude::any::<i64>(),
        ) {
            proptest::prop_assert_eq!(int(text.as_bytes()), reference::int(text.as_bytes()));
            let v_text = v.to_string();
            proptest::prop_assert_eq!(int(v_text.as_bytes()), Ok(v));
        }

        #[test]
        fn floats_read_as_the_reference_reads_them(
            text in "[-+]?[0-9]{0,20}(\\.[0-9]{0,20})?([eE][-+]?[0-9]{0,4})?|[-+ 0-9a-zA-Z.]{0,10}",
            v in proptest::prelude::any::<f64>(),
        ) {
            let b = text.as_bytes();
            proptest::prop_assert_eq!(float(b).map(f64::to_bits), reference::float(b).map(f64::to_bits));
            let v_text = v.to_string();
            let b = v_text.as_bytes();
            proptest::prop_assert_eq!(float(b).map(f64::to_bits), reference::float(b).map(f64::to_bits));
        }
    }
}
