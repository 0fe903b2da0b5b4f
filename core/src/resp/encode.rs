//! RESP encoding into a caller-supplied buffer: [`encode`] for replies in either protocol,
//! [`encode_request`] for what a client sends.
//!
//! Replies are built in their RESP3 form and lowered for a RESP2 connection as [`Frame`]
//! documents. The encoder never fails and never allocates beyond growing `out`: integers and
//! lengths are written digit by digit, doubles through a stack buffer.
//!
//! Simple strings, simple errors and big numbers are lines, so a `\r` or `\n` inside one would
//! break the stream: the encoder replaces each with a space, as Redis does for error replies
//! (error texts often quote client input, so this is not only a programming error). Bulk
//! payloads are binary-safe and written as they are.

use std::fmt::{self, Write as _};

use super::decode::is_big_number;
use super::{Frame, Protocol};

/// The two decimal digits of every number below 100, so integers are written two digits per
/// division.
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Longest decimal `u64`: 18446744073709551615.
const U64_MAX_DIGITS: usize = 20;

/// Room for any double this module formats: at most 17 significant digits, a sign, a point and
/// either up to 4 leading zeros (`0.0001...`, the smallest written without an exponent) or an
/// exponent of up to `e-324`; 24 bytes at most.
const DOUBLE_MAX_LEN: usize = 32;

/// Below this magnitude doubles are written with an exponent (`1e-5`), as Rust's `Debug` does.
const DOUBLE_PLAIN_MIN: f64 = 1e-4;
/// From this magnitude doubles are written with an exponent (`1e16`), as Rust's `Debug` does;
/// below it the plain form is short.
const DOUBLE_PLAIN_MAX: f64 = 1e16;
/// Integral doubles below 2^53 are exact as `i64` and take the integer writer.
const DOUBLE_EXACT_INT_MAX: f64 = 9_007_199_254_740_992.0;

/// Appends `frame` to `out` in `protocol`.
///
/// RESP3 writes every type natively, [`Frame::Null`] and [`Frame::NullArray`] both as `_`.
/// RESP2 lowers: map to a flat array `k1 v1 k2 v2 ...`, set and push to arrays, double to a
/// bulk string, boolean to `:1`/`:0`, big number to a bulk string, verbatim to a bulk string of
/// its text, bulk error to a simple error, attribute to just its value, null to `$-1` and null
/// array to `*-1`.
///
/// Doubles are written as Redis does: integral values as integers (`1`), others in the
/// shortest form that reads back to the same value (`1.5`, `1e-7`), and `inf`, `-inf`, `nan`.
/// `count` `+OK` replies in a row, as `count` [`encode`]s of [`Frame::ok`] give them in
/// either protocol.
pub fn encode_oks(count: u32, out: &mut Vec<u8>) {
    const OK: &[u8] = b"+OK\r\n";
    let count = count as usize;
    out.reserve(OK.len() * count);
    for _ in 0..count {
        out.extend_from_slice(OK);
    }
}

pub fn encode(frame: &Frame, protocol: Protocol, out: &mut Vec<u8>) {
    let resp3 = protocol == Protocol::Resp3;
    match frame {
        Frame::Simple(s) => put_line(out, b'+', s),
        Frame::Error(s) => put_line(out, b'-', s),
        Frame::Integer(n) => {
            out.push(b':');
            put_i64(out, *n);
            out.extend_from_slice(b"\r\n");
        }
        Frame::Bulk(b) => put_blob(out, b'$', b),
        Frame::Null if resp3 => out.extend_from_slice(b"_\r\n"),
        Frame::Null => out.extend_from_slice(b"$-1\r\n"),
        Frame::NullArray if resp3 => out.extend_from_slice(b"_\r\n"),
        Frame::NullArray => out.extend_from_slice(b"*-1\r\n"),
        Frame::Array(items) => put_aggregate(out, b'*', items, protocol),
        Frame::Set(items) => put_aggregate(out, if resp3 { b'~' } else { b'*' }, items, protocol),
        Frame::Push(items) => put_aggregate(out, if resp3 { b'>' } else { b'*' }, items, protocol),
        Frame::Map(pairs) if resp3 => put_pairs(out, b'%', pairs, protocol),
        Frame::Map(pairs) => {
            put_header(out, b'*', 2 * pairs.len());
            put_pair_items(out, pairs, protocol);
        }
        Frame::Double(v) => {
            let text = DoubleText::new(*v);
            if resp3 {
                put_line(out, b',', text.as_bytes());
            } else {
                put_blob(out, b'$', text.as_bytes());
            }
        }
        Frame::Boolean(b) if resp3 => out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
        Frame::Boolean(b) => out.extend_from_slice(if *b { b":1\r\n" } else { b":0\r\n" }),
        Frame::BigNumber(digits) => {
            // Pairs with the decoder, which refuses anything else.
            debug_assert!(
                is_big_number(digits),
                "big number {digits:?} is not [+-]digits"
            );
            if resp3 {
                put_line(out, b'(', digits);
            } else {
                put_blob(out, b'$', digits);
            }
        }
        Frame::Verbatim { format, text } if resp3 => {
            put_header(out, b'=', format.len() + 1 + text.len());
            out.extend_from_slice(format);
            out.push(b':');
            out.extend_from_slice(text);
            out.extend_from_slice(b"\r\n");
        }
        Frame::Verbatim { text, .. } => put_blob(out, b'$', text),
        Frame::BulkError(e) if resp3 => put_blob(out, b'!', e),
        Frame::BulkError(e) => put_line(out, b'-', e),
        Frame::Attribute { attributes, value } => {
            if resp3 {
                put_pairs(out, b'|', attributes, protocol);
            }
            encode(value, protocol, out);
        }
    }
}

/// Appends a client request: an array of bulk strings, the form every client sends.
pub fn encode_request(args: &[&[u8]], out: &mut Vec<u8>) {
    // Each argument needs at most `$`, its length's digits and two line endings beyond its bytes.
    let overhead = 1 + U64_MAX_DIGITS + 4;
    out.reserve(1 + U64_MAX_DIGITS + 2 + args.iter().map(|a| a.len() + overhead).sum::<usize>());
    put_header(out, b'*', args.len());
    for arg in args {
        put_blob(out, b'$', arg);
    }
}

/// Writes `kind`, then `s` with `\r` and `\n` replaced by spaces, then `\r\n`.
fn put_line(out: &mut Vec<u8>, kind: u8, s: &[u8]) {
    out.push(kind);
    if s.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend(
            s.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    } else {
        out.extend_from_slice(s);
    }
    out.extend_from_slice(b"\r\n");
}

fn put_blob(out: &mut Vec<u8>, kind: u8, data: &[u8]) {
    out.reserve(1 + U64_MAX_DIGITS + 4 + data.len());
    put_header(out, kind, data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

fn put_aggregate(out: &mut Vec<u8>, kind: u8, items: &[Frame], protocol: Protocol) {
    put_header(out, kind, items.len());
    for item in items {
        encode(item, protocol, out);
    }
}

fn put_pairs(out: &mut Vec<u8>, kind: u8, pairs: &[(Frame, Frame)], protocol: Protocol) {
    put_header(out, kind, pairs.len());
    put_pair_items(out, pairs, protocol);
}

fn put_pair_items(out: &mut Vec<u8>, pairs: &[(Frame, Frame)], protocol: Protocol) {
    for (key, value) in pairs {
        encode(key, protocol, out);
        encode(value, protocol, out);
    }
}

/// Writes `kind`, the length `n` and `\r\n`.
fn put_header(out: &mut Vec<u8>, kind: u8, n: usize) {
    out.push(kind);
    // usize is at most 64 bits on every target Rust supports.
    put_u64(out, n as u64);
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal (what `i64::to_string` gives, without its allocation).
pub fn put_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    put_u64(out, n.unsigned_abs());
}

fn put_u64(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; U64_MAX_DIGITS];
    out.extend_from_slice(u64_digits(n, &mut digits));
}

/// Writes `n` in decimal at the end of `digits` and returns the written part.
fn u64_digits(mut n: u64, digits: &mut [u8; U64_MAX_DIGITS]) -> &[u8] {
    let mut start = U64_MAX_DIGITS;
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        start -= 2;
        digits[start..start + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        start -= 2;
        digits[start..start + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        start -= 1;
        digits[start] = b'0' + n as u8;
    }
    &digits[start..]
}

/// Powers of ten up to the most fraction digits [`few_decimals`] tries.
const POW10: [u64; 10] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];

/// Below this, `v * 10^k` is computed closely enough (error far under 0.5) that rounding it
/// finds the integer nearest the exact product.
const DOUBLE_SCALED_MAX: f64 = (1u64 << 50) as f64;

/// Prices and most market data have a few decimals; `std`'s shortest-digits search (Grisu) is
/// the bulk of encoding such a reply. This finds the fewest fraction digits `k` (up to 9) for
/// which an integer `m` gives `m / 10^k == v`, and returns `(|m|, k)`.
///
/// That is the same text as the shortest round trip: IEEE division of two exact operands (`m`
/// below 2^53, `10^k` for `k <= 22`) is correctly rounded, so `m / 10^k == v` holds exactly when
/// the decimal `m * 10^-k` reads back as `v`; below 2^50 no digit of the integer part can be
/// dropped; and `m` rounded from the product is the closest candidate, as `std` picks.
/// Only for the plain-notation range and non-integral `v`.
fn few_decimals(v: f64) -> Option<(u64, usize)> {
    let magnitude = v.abs();
    if !(DOUBLE_PLAIN_MIN..DOUBLE_PLAIN_MAX).contains(&magnitude) {
        return None;
    }
    for (k, &pow) in POW10.iter().enumerate().skip(1) {
        let scale = pow as f64;
        let scaled = magnitude * scale;
        if scaled >= DOUBLE_SCALED_MAX {
            return None;
        }
        let m = scaled.round();
        if m / scale == magnitude {
            // Exact: m is integral and below 2^50.
            return Some((m as u64, k));
        }
    }
    None
}

/// A double formatted on the stack, so its length is known before a RESP2 bulk header.
struct DoubleText {
    bytes: [u8; DOUBLE_MAX_LEN],
    len: usize,
}

impl DoubleText {
    fn new(v: f64) -> Self {
        let mut text = Self {
            bytes: [0; DOUBLE_MAX_LEN],
            len: 0,
        };
        let magnitude = v.abs();
        if v.is_nan() {
            text.push(b"nan");
        } else if v.is_infinite() {
            text.push(if v > 0.0 { &b"inf"[..] } else { &b"-inf"[..] });
        } else if v.fract() == 0.0 && magnitude < DOUBLE_EXACT_INT_MAX {
            // Keeps the sign of -0, as Redis does.
            if v.is_sign_negative() {
                text.push(b"-");
            }
            let mut digits = [0u8; U64_MAX_DIGITS];
            // Exact: an integral double below 2^53 converts to u64 without rounding.
            text.push(u64_digits(magnitude as u64, &mut digits));
        } else if let Some((scaled, fraction_digits)) = few_decimals(v) {
            if v.is_sign_negative() {
                text.push(b"-");
            }
            let pow = POW10[fraction_digits];
            let mut digits = [0u8; U64_MAX_DIGITS];
            text.push(u64_digits(scaled / pow, &mut digits));
            text.push(b".");
            // The fraction, zero-padded on the left: `scaled % pow + pow` has a leading 1.
            let fraction = u64_digits(scaled % pow + pow, &mut digits);
            text.push(&fraction[1..]);
        } else {
            // Shortest round-trip digits; plain in the range where that is short, else with an
            // exponent. DOUBLE_MAX_LEN bounds both forms, so the write cannot run out of room.
            let written = if (DOUBLE_PLAIN_MIN..DOUBLE_PLAIN_MAX).contains(&magnitude) {
                write!(text, "{v}")
            } else {
                write!(text, "{v:e}")
            };
            assert!(
                written.is_ok(),
                "double {v:?} longer than {DOUBLE_MAX_LEN} bytes"
            );
        }
        text
    }

    fn push(&mut self, s: &[u8]) {
        self.bytes[self.len..self.len + s.len()].copy_from_slice(s);
        self.len += s.len();
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl fmt::Write for DoubleText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.len + s.len() > DOUBLE_MAX_LEN {
            return Err(fmt::Error);
        }
        self.push(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;

    fn enc(frame: &Frame, protocol: Protocol) -> String {
        let mut out = Vec::new();
        encode(frame, protocol, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn both(frame: &Frame) -> (String, String) {
        (enc(frame, Protocol::Resp2), enc(frame, Protocol::Resp3))
    }

    fn same(frame: &Frame, expected: &str) {
        assert_eq!(both(frame), (expected.to_owned(), expected.to_owned()));
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn double(v: f64) -> String {
        String::from_utf8(DoubleText::new(v).as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn a_run_of_oks_encodes_as_its_replies_one_by_one() {
        for count in [0, 1, 2, 7] {
            let mut run = Vec::new();
            encode_oks(count, &mut run);
            for protocol in [Protocol::Resp2, Protocol::Resp3] {
                let one_by_one: String = (0..count).map(|_| enc(&Frame::ok(), protocol)).collect();
                assert_eq!(String::from_utf8(run.clone()).unwrap(), one_by_one);
            }
        }
    }

    #[test]
    fn encodes_resp2_types_in_both_protocols() {
        same(&Frame::ok(), "+OK\r\n");
        same(&Frame::error("ERR nope"), "-ERR nope\r\n");
        same(&Frame::Integer(0), ":0\r\n");
        same(&Frame::Integer(-7), ":-7\r\n");
        same(&Frame::Integer(i64::MAX), ":9223372036854775807\r\n");
        same(&Frame::Integer(i64::MIN), ":-9223372036854775808\r\n");
        same(&Frame::bulk("hi\r\n"), "$4\r\nhi\r\n\r\n");
        same(&Frame::bulk(""), "$0\r\n\r\n");
        same(
            &Frame::Array(vec![Frame::Integer(1), Frame::Array(vec![])]),
            "*2\r\n:1\r\n*0\r\n",
        );
    }

    #[test]
    fn nulls() {
        assert_eq!(both(&Frame::Null), ("$-1\r\n".into(), "_\r\n".into()));
        assert_eq!(both(&Frame::NullArray), ("*-1\r\n".into(), "_\r\n".into()));
    }

    #[test]
    fn resp3_types_and_their_resp2_lowering() {
        let map = Frame::Map(vec![
            (Frame::text("a"), Frame::Integer(1)),
            (Frame::text("b"), Frame::Null),
        ]);
        assert_eq!(
            both(&map),
            (
                "*4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n$-1\r\n".into(),
                "%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n_\r\n".into()
            )
        );
        let set = Frame::Set(vec![Frame::Integer(1)]);
        assert_eq!(both(&set), ("*1\r\n:1\r\n".into(), "~1\r\n:1\r\n".into()));
        let push = Frame::Push(vec![Frame::text("message")]);
        assert_eq!(
            both(&push),
            (
                "*1\r\n$7\r\nmessage\r\n".into(),
                ">1\r\n$7\r\nmessage\r\n".into()
            )
        );
        assert_eq!(
            both(&Frame::Double(1.5)),
            ("$3\r\n1.5\r\n".into(), ",1.5\r\n".into())
        );
        assert_eq!(
            both(&Frame::Double(1.0)),
            ("$1\r\n1\r\n".into(), ",1\r\n".into())
        );
        assert_eq!(
            both(&Frame::Double(f64::NEG_INFINITY)),
            ("$4\r\n-inf\r\n".into(), ",-inf\r\n".into())
        );
        assert_eq!(
            both(&Frame::Double(f64::NAN)),
            ("$3\r\nnan\r\n".into(), ",nan\r\n".into())
        );
        assert_eq!(
            both(&Frame::Boolean(true)),
            (":1\r\n".into(), "#t\r\n".into())
        );
        assert_eq!(
            both(&Frame::Boolean(false)),
            (":0\r\n".into(), "#f\r\n".into())
        );
        assert_eq!(
            both(&Frame::BigNumber(b("-123456789012345678901234567890"))),
            (
                "$31\r\n-123456789012345678901234567890\r\n".into(),
                "(-123456789012345678901234567890\r\n".into()
            )
        );
        let verbatim = Frame::Verbatim {
            format: *b"txt",
            text: b("Some string"),
        };
        assert_eq!(
            both(&verbatim),
            (
                "$11\r\nSome string\r\n".into(),
                "=15\r\ntxt:Some string\r\n".into()
            )
        );
        let bulk_error = Frame::BulkError(b("SYNTAX invalid\r\nsyntax"));
        assert_eq!(
            both(&bulk_error),
            (
                "-SYNTAX invalid  syntax\r\n".into(),
                "!22\r\nSYNTAX invalid\r\nsyntax\r\n".into()
            )
        );
        let attribute = Frame::Attribute {
            attributes: vec![(Frame::simple("ttl"), Frame::Integer(3))],
            value: Box::new(Frame::Integer(1)),
        };
        assert_eq!(
            both(&attribute),
            (":1\r\n".into(), "|1\r\n+ttl\r\n:3\r\n:1\r\n".into())
        );
    }

    #[test]
    fn lines_have_line_breaks_replaced_by_spaces() {
        same(&Frame::simple("a\r\nb"), "+a  b\r\n");
        same(
            &Frame::error("ERR unknown command 'x\ny'"),
            "-ERR unknown command 'x y'\r\n",
        );
    }

    #[test]
    fn doubles_are_formatted_like_redis() {
        assert_eq!(double(0.0), "0");
        assert_eq!(double(-0.0), "-0");
        assert_eq!(double(1.0), "1");
        assert_eq!(double(-42.0), "-42");
        assert_eq!(double(9_007_199_254_740_991.0), "9007199254740991");
        assert_eq!(double(1.5), "1.5");
        assert_eq!(double(100.25), "100.25");
        assert_eq!(double(-0.001), "-0.001");
        assert_eq!(double(0.30000000000000004), "0.30000000000000004");
        assert_eq!(double(123456.000001), "123456.000001");
        assert_eq!(few_decimals(123456.000001), Some((123456000001, 6)));
        assert_eq!(few_decimals(1.0 / 3.0), None);
        assert_eq!(double(0.1), "0.1");
        assert_eq!(double(-3.25), "-3.25");
        assert_eq!(double(0.0001), "0.0001");
        assert_eq!(double(0.00001), "1e-5");
        assert_eq!(double(1e16), "1e16");
        assert_eq!(double(1.5e300), "1.5e300");
        assert_eq!(double(f64::MAX), "1.7976931348623157e308");
        assert_eq!(double(f64::MIN_POSITIVE), "2.2250738585072014e-308");
        let subnormal = -f64::MIN_POSITIVE / 3.0;
        assert_eq!(double(subnormal), format!("{subnormal:e}"));
        assert!(double(subnormal).starts_with("-7.4169128616906"));
        assert_eq!(double(5e-324), "5e-324");
        assert_eq!(double(f64::INFINITY), "inf");
        assert_eq!(double(f64::NEG_INFINITY), "-inf");
        assert_eq!(double(-f64::NAN), "nan");
    }

    #[test]
    fn encodes_requests_as_arrays_of_bulks() {
        let mut out = Vec::new();
        encode_request(&[b"SET", b"k", b""], &mut out);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
        out.clear();
        encode_request(&[], &mut out);
        assert_eq!(out, b"*0\r\n");
    }

    #[test]
    fn appends_to_the_buffer() {
        let mut out = b"+OK\r\n".to_vec();
        encode(&Frame::Integer(5), Protocol::Resp2, &mut out);
        assert_eq!(out, b"+OK\r\n:5\r\n");
    }

    proptest! {
        #[test]
        fn integers_match_std(n in any::<i64>()) {
            let mut out = Vec::new();
            put_i64(&mut out, n);
            prop_assert_eq!(out, n.to_string().into_bytes());
        }

        /// Every double reads back to itself (NaN to a NaN) and fits the stack buffer, which
        /// `DoubleText::new` asserts.
        /// The fast path for few decimals writes exactly what the general path would.
        #[test]
        fn few_decimals_match_std(
            m in -10_000_000_000_000i64..10_000_000_000_000,
            k in 0usize..12,
            bits in any::<u64>(),
        ) {
            for v in [m as f64 / 10f64.powi(k as i32), f64::from_bits(bits)] {
                let expected = if v == 0.0 || v.is_nan() || v.is_infinite() {
                    continue;
                } else if (DOUBLE_PLAIN_MIN..DOUBLE_PLAIN_MAX).contains(&v.abs()) {
                    format!("{v}")
                } else {
                    format!("{v:e}")
                };
                prop_assert_eq!(double(v), expected);
            }
        }

        #[test]
        fn doubles_round_trip(bits in any::<u64>()) {
            let v = f64::from_bits(bits);
            let text = double(v);
            let back: f64 = text.parse().unwrap();
            if v.is_nan() {
                prop_assert!(back.is_nan());
            } else {
                prop_assert_eq!(back.to_bits(), v.to_bits(), "{}", text);
            }
        }
    }
}
