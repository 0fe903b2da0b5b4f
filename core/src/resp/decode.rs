//! Incremental RESP decoding: [`decode`] reads any RESP2 or RESP3 value (clients, tests,
//! replies); [`decode_request`] reads what a client sends a server, with Redis's rules.
//!
//! Both take the bytes received so far and return `Ok(None)` while those hold no complete value;
//! the caller keeps the bytes, appends what arrives next and calls again from the start. A value
//! is consumed whole or not at all. An error means the stream cannot be resynchronised: the
//! server replies `-ERR {error}` and closes the connection, as Redis does.
//!
//! Guarantees, all relied on by the server and checked by the tests:
//! - The outcome does not depend on how the stream was split: a value is decoded the same way
//!   whether its bytes arrive at once or one by one, and once a prefix is an error every longer
//!   buffer is the same error. Length limits therefore look at positions in the stream, never at
//!   how much happens to be buffered.
//! - Nothing is allocated according to a length the peer claims before the bytes behind it have
//!   arrived: a `*1000000` header reserves room only for as many elements as the buffered bytes
//!   can hold.
//! - The consumed count never exceeds `buf.len()`, and no input panics.
//!
//! Where Redis is lax this decoder is strict, because a byte that Redis skips unread is a sign
//! the stream is out of step: a bulk payload must be followed by `\r\n` (Redis skips two bytes
//! without looking) and a count line must end in `\r\n` (Redis only looks for the `\r`).
//!
//! Both decoders restart from the beginning on every call, so a value that arrives in many
//! pieces costs a re-scan of its headers per call (never of bulk payloads, which are skipped by
//! length). [`decode_request`] copies the arguments of a large request only once it is
//! complete; [`decode`] (used by clients, not on the server's hot path) rebuilds a partial
//! value on every call.

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

use super::Frame;
use super::packed::Packed;

/// Redis's `proto-max-bulk-len` default: 512 MiB.
const DEFAULT_MAX_BULK_LEN: u64 = 512 * 1024 * 1024;
/// Redis's historical multibulk limit (1024 * 1024 elements).
const DEFAULT_MAX_ARRAY_LEN: u64 = 1024 * 1024;
/// Deep enough for any reply tickdb builds, shallow enough for the recursive decoder's stack.
const DEFAULT_MAX_DEPTH: u32 = 128;
/// Redis's `PROTO_INLINE_MAX_SIZE`: 64 KiB.
const DEFAULT_MAX_INLINE_LEN: usize = 64 * 1024;

/// The smallest encoding of a request argument, `$0\r\n\r\n`: bounds the capacity reserved for
/// a request array by the bytes actually buffered.
const MIN_BULK_ENCODED_LEN: usize = 6;
/// The smallest encoding of a request array that has an argument, `*1\r\n$0\r\n\r\n`.
const MIN_REQUEST_ENCODED_LEN: usize = 10;
/// The smallest encoding of any value, `_\r\n` or `:1\r\n`'s prefix: bounds the capacity
/// reserved for an aggregate by the bytes actually buffered.
const MIN_FRAME_ENCODED_LEN: usize = 3;

/// A request array with more arguments than this is checked for completeness before any
/// argument is copied. Decoding restarts from the start of the buffer on every call, so without
/// this a large `MSET` arriving in many reads would be copied again on every read; small
/// requests skip the extra pass, which would only slow the common case.
const DRY_RUN_MIN_ARGS: usize = 64;

/// Bounds on what a peer may make the decoders hold or wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest bulk string (also a bulk error or verbatim string) accepted, in bytes; longer
    /// is `invalid bulk length`. Default 512 MiB, Redis's `proto-max-bulk-len`.
    pub max_bulk_len: u64,
    /// The most elements in an array, set or push, or pairs in a map or attribute; more is
    /// `invalid multibulk length`. Default 1024 * 1024, Redis's historical multibulk limit.
    pub max_array_len: u64,
    /// The deepest nesting of aggregates [`decode`] accepts; a top-level array is at depth 1, so
    /// 0 rejects every aggregate. Deeper is `nesting too deep`. Default 128. The decoder
    /// recurses once per level, so keep this small enough for the caller's stack.
    pub max_depth: u32,
    /// The longest line accepted, in bytes before its line ending, counting the type byte: an
    /// inline command, a `*` or `$` count, or a RESP3 simple line. More bytes without a line
    /// ending is `too big inline request`, `too big mbulk count string`, `too big bulk count
    /// string` or `too big line`, whenever they arrive. Default 64 KiB, Redis's
    /// `PROTO_INLINE_MAX_SIZE`.
    pub max_inline_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bulk_len: DEFAULT_MAX_BULK_LEN,
            max_array_len: DEFAULT_MAX_ARRAY_LEN,
            max_depth: DEFAULT_MAX_DEPTH,
            max_inline_len: DEFAULT_MAX_INLINE_LEN,
        }
    }
}

/// Why a byte stream is not RESP. The text is what Redis sends after `-ERR `, so a server
/// replies `-ERR {error}` and closes the connection; the variants only [`decode`] raises (for
/// RESP3 values a request never contains) follow the same style.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A `*` count that is not an integer (Redis's `string2ll` rules: no `+`, no leading zeros),
    /// is above [`Limits::max_array_len`], does not end in `\r\n`, or, in [`decode`], a
    /// negative count other than `*-1` or a negative `%`, `~`, `>` or `|` count.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// A `$` length that is not an integer, is negative (in a request; [`decode`] reads `$-1` as
    /// null), is above [`Limits::max_bulk_len`] or does not end in `\r\n`; also a bad `!` or `=`
    /// length in [`decode`].
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// An element of a request array that is not a bulk string; holds the type byte found.
    /// Shown like Redis's `%c`, except that `\r` and `\n` show as a space (Redis's error
    /// sanitising) and a non-ASCII byte as `?` (the text must be UTF-8).
    #[error("Protocol error: expected '$', got '{}'", shown(*.0))]
    ExpectedBulk(u8),
    /// An inline command with a quote that is not closed, or a closing quote followed by
    /// something other than whitespace.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// An inline command longer than [`Limits::max_inline_len`].
    #[error("Protocol error: too big inline request")]
    TooBigInlineRequest,
    /// A `*` count line (or a RESP3 aggregate count) longer than [`Limits::max_inline_len`].
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    /// A `$` length line (or `!`, `=` length) longer than [`Limits::max_inline_len`].
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    /// A bulk payload not followed by `\r\n`. Redis skips these two bytes without looking; a
    /// stream that has anything else there is out of step, so tickdb refuses it.
    #[error("Protocol error: expected CRLF after bulk data")]
    MissingBulkTerminator,
    /// A RESP3 simple line (`+`, `-`, `:`, `,`, `#`, `(`, `_`) with a `\n` that is not preceded
    /// by `\r`, or a `\r` not followed by `\n`.
    #[error("Protocol error: invalid line ending")]
    InvalidLineEnding,
    /// A RESP3 simple line longer than [`Limits::max_inline_len`].
    #[error("Protocol error: too big line")]
    TooBigLine,
    /// A value that starts with a byte that is no RESP type, shown like
    /// [`ProtocolError::ExpectedBulk`]. Includes `;` and `.`, which only occur in streamed
    /// values.
    #[error("Protocol error: invalid type byte '{}'", shown(*.0))]
    InvalidTypeByte(u8),
    /// A `:` integer that is not `[+-]digits` or does not fit an `i64`.
    #[error("Protocol error: invalid integer")]
    InvalidInteger,
    /// A `,` double that does not parse (`inf`, `-inf` and `nan` do).
    #[error("Protocol error: invalid double")]
    InvalidDouble,
    /// A `#` boolean other than `#t` or `#f`.
    #[error("Protocol error: invalid boolean")]
    InvalidBoolean,
    /// A `(` big number that is not `[+-]digits`.
    #[error("Protocol error: invalid big number")]
    InvalidBigNumber,
    /// A `_` null with something between `_` and `\r\n`.
    #[error("Protocol error: invalid null")]
    InvalidNull,
    /// An `=` verbatim string whose body does not start with a three-byte format and `:`.
    #[error("Protocol error: invalid verbatim string")]
    InvalidVerbatim,
    /// Aggregates nested deeper than [`Limits::max_depth`].
    #[error("Protocol error: nesting too deep")]
    NestingTooDeep,
    /// A RESP3 streamed string or aggregate (`$?`, `*?`, `%?`, `~?`, `>?`): no Redis reply
    /// tickdb talks to uses them, and buffering an unbounded stream needs state this stateless
    /// decoder does not keep.
    #[error("Protocol error: streamed types are not supported")]
    StreamedNotSupported,
}

/// A type byte as Redis's `%c` prints it, after its reply sanitising, and kept UTF-8.
fn shown(b: u8) -> char {
    match b {
        b'\r' | b'\n' => ' ',
        0..0x80 => char::from(b),
        _ => '?',
    }
}

/// Why a decoder stopped before producing a value.
enum Stop {
    /// The buffer ends before the value does.
    Incomplete,
    /// The buffer holds something that is not RESP.
    Invalid(ProtocolError),
}

impl From<ProtocolError> for Stop {
    fn from(e: ProtocolError) -> Self {
        Self::Invalid(e)
    }
}

type Step<T> = Result<T, Stop>;

fn finish<T>(step: Step<T>, pos: usize, buf: &[u8]) -> Result<Option<(T, usize)>, ProtocolError> {
    match step {
        Ok(value) => {
            assert!(pos <= buf.len(), "consumed past the buffer");
            Ok(Some((value, pos)))
        }
        Err(Stop::Incomplete) => Ok(None),
        Err(Stop::Invalid(e)) => Err(e),
    }
}

/// Decodes one RESP2 or RESP3 value from the start of `buf`.
///
/// Returns `Ok(None)` when `buf` holds no complete value yet, otherwise the value and the number
/// of bytes it took. `$-1` and `_` decode to [`Frame::Null`], `*-1` to [`Frame::NullArray`],
/// and `|` attributes to a [`Frame::Attribute`] wrapping the value that follows them. Streamed
/// RESP3 strings and aggregates (`$?`, `*?`, ...) are refused with
/// [`ProtocolError::StreamedNotSupported`].
///
/// Integers accept an optional `+` and leading zeros, as the RESP3 grammar allows; lengths and
/// counts follow Redis's stricter `string2ll`.
pub fn decode(buf: &[u8], limits: &Limits) -> Result<Option<(Frame, usize)>, ProtocolError> {
    let mut reader = Reader {
        buf,
        pos: 0,
        limits,
    };
    let step = reader.frame(0);
    finish(step, reader.pos, buf)
}

/// Decodes one client request from the start of `buf`, as Redis's `processMultibulkBuffer` and
/// `processInlineBuffer` do.
///
/// A request starting with `*` must be an array of bulk strings; `*0` and `*-1` (any count
/// `<= 0`, as in Redis) are empty requests. Anything else is an inline command: a line ending
/// in `\n` (optionally `\r\n`), split into arguments by Redis's `sdssplitargs` rules. An empty
/// or blank line is an empty request. Callers skip empty requests, as Redis does.
///
/// Returns `Ok(None)` when `buf` holds no complete request yet, otherwise the arguments and the
/// number of bytes the request took.
pub fn decode_request(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(Vec<Bytes>, usize)>, ProtocolError> {
    match buf.first() {
        None => Ok(None),
        Some(b'*') => {
            let mut reader = Reader {
                buf,
                pos: 0,
                limits,
            };
            let step = reader.request();
            finish(step, reader.pos, buf)
        }
        Some(_) => inline_request(buf, limits),
    }
}

/// The most bytes of requests that share one copy in [`decode_requests_from`]. A request
/// larger than this gets a copy of its own.
pub const SHARED_COPY_MAX: usize = 16 * 1024;

/// A decoded request: its arguments and the number of bytes it took.
pub type Request = (Vec<Bytes>, usize);

/// [`decode_request`] for every complete request at the start of `buf`: takes their bytes out
/// of `buf` and appends each to `out`, its arguments slices of a copy of the bytes.
///
/// Consecutive requests share one copy of at most [`SHARED_COPY_MAX`] bytes (a larger request
/// has one of its own), so a pipelined read of small requests costs one allocation and copy,
/// not one per request or per argument (a `TS.MADD` of 100 samples has 301). An argument kept
/// long (a subscribed channel, say) holds on to at most that copy, never to the read buffer.
///
/// It stops once `out` holds `max` requests (the caller hands them on and calls again, so what
/// one call holds is bounded by a count, not only by the buffer). What follows the last
/// request taken (an incomplete one, or more past `max`) stays in `buf`. A malformed request
/// is an error after the requests before it were appended; `buf` then still holds it.
pub fn decode_requests_from(
    buf: &mut BytesMut,
    limits: &Limits,
    max: usize,
    out: &mut Vec<Request>,
) -> Result<(), ProtocolError> {
    decode_requests_with(buf, limits, max, out, true)
}

/// [`decode_requests_from`] into [`Packed`] requests, the server's way: the requests of one
/// shared copy are one `Packed` (an inline request one of its own), in order. It stops after
/// `max` requests read by this call (empty ones included, which it leaves out), and returns
/// how many it read: `max` means there may be more in `buf`. Takes the same bytes out of
/// `buf` and fails the same way.
pub fn decode_packed_from(
    buf: &mut BytesMut,
    limits: &Limits,
    max: usize,
    out: &mut Vec<Packed>,
) -> Result<usize, ProtocolError> {
    let mut sink = PackedSink { out, held: 0 };
    decode_requests_with(buf, limits, max, &mut sink, true)?;
    Ok(sink.held)
}

/// Where [`decode_requests_with`] puts the requests it reads.
trait Sink {
    /// Requests put so far (empty ones included), for the caller's `max`.
    fn held(&self) -> usize;

    /// An inline request: its arguments (maybe none) and the bytes it took.
    fn inline(&mut self, args: Vec<Bytes>, used: usize);

    /// The requests that share `copy`: `ends` holds, per request, the index past its last
    /// argument in `ranges` and the byte past its end in `copy`, both exclusive; its
    /// arguments are ranges of `copy`. Removes those requests' ranges from the front of
    /// `ranges` (what follows belongs to the next copy).
    fn shared(&mut self, copy: Bytes, ranges: &mut Vec<Range<usize>>, ends: &[(usize, usize)]);
}

impl Sink for Vec<Request> {
    fn held(&self) -> usize {
        self.len()
    }

    fn inline(&mut self, args: Vec<Bytes>, used: usize) {
        self.push((args, used));
    }

    fn shared(&mut self, copy: Bytes, ranges: &mut Vec<Range<usize>>, ends: &[(usize, usize)]) {
        let (mut first_range, mut first_byte) = (0, 0);
        for &(end_range, end_byte) in ends {
            let args = ranges[first_range..end_range]
                .iter()
                .map(|r| copy.slice(r.clone()))
                .collect();
            self.push((args, end_byte - first_byte));
            (first_range, first_byte) = (end_range, end_byte);
        }
        ranges.drain(..first_range);
    }
}

/// The [`Sink`] of [`decode_packed_from`].
struct PackedSink<'a> {
    out: &'a mut Vec<Packed>,
    held: usize,
}

impl Sink for PackedSink<'_> {
    fn held(&self) -> usize {
        self.held
    }

    fn inline(&mut self, args: Vec<Bytes>, used: usize) {
        self.held += 1;
        if !args.is_empty() {
            self.out
                .push(Packed::from_requests([(&args[..], used as u64)]));
        }
    }

    fn shared(&mut self, copy: Bytes, ranges: &mut Vec<Range<usize>>, ends: &[(usize, usize)]) {
        self.held += ends.len();
        let packed = Packed::from_ranges(copy, ranges, ends, 0);
        if !packed.is_empty() {
            self.out.push(packed);
        }
        ranges.drain(..ends.last().map_or(0, |e| e.0));
    }
}

/// [`decode_packed_from`] for a whole message already held (a ZeroMQ payload): takes the
/// requests off the front of `payload` as slices of it, without copying, and leaves what
/// follows the last complete one (an incomplete request, or an inline command that the
/// message's end ends). Returns how many requests it read.
pub fn decode_packed_message(
    payload: &mut Bytes,
    limits: &Limits,
    out: &mut Vec<Packed>,
) -> Result<usize, ProtocolError> {
    let mut sink = PackedSink { out, held: 0 };
    decode_requests_with(payload, limits, usize::MAX, &mut sink, true)?;
    Ok(sink.held)
}

/// The bytes [`decode_requests_with`] reads requests from, taken off the front as they are
/// read.
trait Source: std::ops::Deref<Target = [u8]> {
    /// The first `n` bytes as `Bytes`, taken off the front.
    fn take(&mut self, n: usize) -> Bytes;

    /// Drops the first `n` bytes.
    fn skip(&mut self, n: usize);
}

/// A connection's read buffer: what is taken is copied out, so an argument kept long never
/// holds on to the buffer.
impl Source for BytesMut {
    fn take(&mut self, n: usize) -> Bytes {
        let copy = Bytes::copy_from_slice(&self[..n]);
        self.advance(n);
        copy
    }

    fn skip(&mut self, n: usize) {
        self.advance(n);
    }
}

/// A whole message: what is taken is a slice of it, no copy.
impl Source for Bytes {
    fn take(&mut self, n: usize) -> Bytes {
        self.split_to(n)
    }

    fn skip(&mut self, n: usize) {
        self.advance(n);
    }
}

/// [`decode_requests_from`] from any [`Source`] into any [`Sink`], with `fast`: try
/// [`fast_request`] on each request before the general reader. Without it, the tests'
/// reference for the fast path.
fn decode_requests_with(
    buf: &mut impl Source,
    limits: &Limits,
    max: usize,
    out: &mut impl Sink,
    fast: bool,
) -> Result<(), ProtocolError> {
    // The arguments of the requests of one copy, as ranges of `buf`, and each request's end:
    // (its last range, its last byte), both exclusive. Reserved once for what is buffered, not
    // grown push by push (the reallocations cost more than the parsing of a small pipeline).
    let mut ranges: Vec<Range<usize>> = Vec::new();
    let mut ends: Vec<(usize, usize)> = Vec::new();
    let mut carried: Option<usize> = None;
    loop {
        if out.held() >= max {
            return Ok(());
        }
        match buf.first() {
            None => return Ok(()),
            Some(b'*') => {}
            Some(_) => {
                let Some((args, used)) = inline_request(buf, limits)? else {
                    return Ok(());
                };
                buf.skip(used);
                out.inline(args, used);
                continue;
            }
        }
        if ranges.capacity() == 0 {
            let buffered = buf.len().min(SHARED_COPY_MAX);
            ranges.reserve(buffered / MIN_BULK_ENCODED_LEN);
            ends.reserve((buffered / MIN_REQUEST_ENCODED_LEN).min(max - out.held()));
        }
        ends.clear();
        let mut pos = 0;
        // A request read last turn that did not fit that turn's copy leads this one, its
        // ranges already at the front of `ranges`: it is not read twice.
        match carried.take() {
            Some(used) => {
                pos = used;
                ends.push((ranges.len(), pos));
            }
            None => ranges.clear(),
        }
        let mut carry = None;
        let mut failed = None;
        while buf.get(pos) == Some(&b'*') && out.held() + ends.len() < max {
            let before = ranges.len();
            let found = match fast.then(|| fast_request(buf, pos, limits, &mut ranges)) {
                Some(Some(used)) => Ok(Some(used)),
                _ => {
                    ranges.truncate(before);
                    general_request(buf, pos, limits, &mut ranges)
                }
            };
            match found {
                Ok(Some(used)) if ends.is_empty() || pos + used <= SHARED_COPY_MAX => {
                    pos += used;
                    ends.push((ranges.len(), pos));
                }
                Ok(Some(used)) => {
                    // Read, but past this copy's size: the next copy starts with it.
                    carry = Some((before, used));
                    break;
                }
                Ok(None) => {
                    ranges.truncate(before);
                    break;
                }
                Err(e) => {
                    ranges.truncate(before);
                    failed = Some(e);
                    break;
                }
            }
        }
        if !ends.is_empty() {
            let copy = buf.take(pos);
            // Takes the ranges of these requests from the front of `ranges`.
            out.shared(copy, &mut ranges, &ends);
        }
        if let Some((from, used)) = carry {
            // Its ranges, now at the front, made relative to the buffer as advanced.
            debug_assert_eq!(
                from,
                ends.last().map_or(0, |e| e.0),
                "a carried request's ranges"
            );
            for r in &mut ranges {
                *r = r.start - pos..r.end - pos;
            }
            carried = Some(used);
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if pos == 0 {
            // The first request is incomplete.
            return Ok(());
        }
        // Otherwise the next request did not fit the copy, is incomplete, or is inline: the
        // next turn takes it, or stops there.
    }
}

/// The request array at `buf[pos..]` read by the general [`Reader`]: its arguments' ranges
/// (of `buf`) pushed to `ranges` and its length, `None` if incomplete. After `None` or an error,
/// `ranges` may hold some of its arguments.
fn general_request(
    buf: &[u8],
    pos: usize,
    limits: &Limits,
    ranges: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, ProtocolError> {
    let mut reader = Reader {
        buf: &buf[pos..],
        pos: 0,
        limits,
    };
    // The sink pushes each argument's range; the Vec<()> it returns allocates nothing.
    // The sink only notes ranges, so a request still arriving costs no copy: no dry run.
    let step = reader.request_with(false, |arg| {
        let start = arg.as_ptr() as usize - buf.as_ptr() as usize;
        ranges.push(start..start + arg.len());
    });
    Ok(finish(step, reader.pos, &buf[pos..])?.map(|(_, used)| used))
}

/// The common request, read in one pass: `*` and a positive count, then that many bulk
/// strings, each `$`, its length and `\r\n`, all complete and within `limits`. Pushes its
/// arguments' ranges (of `buf`) to `ranges` and returns its length. Anything else (incomplete,
/// malformed, `*0`, a leading zero, a line ending elsewhere) is `None`, maybe after pushing some
/// ranges, and goes to [`general_request`]: whatever this accepts, that reads the same way
/// (each check below names the general one it stands for).
// Not inlined: in the caller's frame its loop ran out of registers (measured under callgrind).
#[inline(never)]
fn fast_request(
    buf: &[u8],
    pos: usize,
    limits: &Limits,
    ranges: &mut Vec<Range<usize>>,
) -> Option<usize> {
    // count_line finds the `\r` only within the line limit, so with a limit of 1 or 2 even the
    // one- and two-digit headers below could be too long.
    if limits.max_inline_len <= 2 {
        return None;
    }
    // 18 digits cannot overflow.
    let max_digits = (limits.max_inline_len - 1).min(18);
    let (n, mut at) = match *buf.get(pos..)? {
        [b'*', d @ b'1'..=b'9', b'\r', b'\n', ..] => (u64::from(d - b'0'), pos + 4),
        _ => short_count(buf, pos, b'*', max_digits)?,
    };
    // checked_aggregate_len; `n <= 0` is the empty request, left to the general path.
    if n == 0 || n > limits.max_array_len {
        return None;
    }
    for _ in 0..n {
        // Most arguments are shorter than 100 bytes: their header is matched at once.
        let (len, start) = match *buf.get(at..)? {
            [b'$', d @ b'0'..=b'9', b'\r', b'\n', ..] => (u64::from(d - b'0'), at + 4),
            [b'$', d @ b'1'..=b'9', e @ b'0'..=b'9', b'\r', b'\n', ..] => {
                (u64::from(d - b'0') * 10 + u64::from(e - b'0'), at + 5)
            }
            _ => short_count(buf, at, b'$', max_digits)?,
        };
        // checked_blob_len.
        if len > limits.max_bulk_len {
            return None;
        }
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        // payload: the `\r\n` after the bytes.
        let [b'\r', b'\n', ..] = buf.get(end..)? else {
            return None;
        };
        ranges.push(start..end);
        at = end + 2;
    }
    Some(at - pos)
}

/// A count line at `buf[at]` in the shape both [`Reader::count_line`] and [`string2ll`]
/// accept without question: `kind`, 1 to `max_digits` (at most 18) digits without a leading
/// zero (or `0` alone), and `\r\n`. Returns the count and where the next value starts.
// Inlined: a call per argument cost more than the parsing (measured under callgrind).
#[inline(always)]
fn short_count(buf: &[u8], at: usize, kind: u8, max_digits: usize) -> Option<(u64, usize)> {
    let [first, digits @ ..] = buf.get(at..)? else {
        return None;
    };
    if *first != kind {
        return None;
    }
    let mut i = 0;
    let mut n: u64 = 0;
    // The byte after the digits is loaded once, for the digit test and as the `\r`.
    let after = loop {
        let c = *digits.get(i)?;
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break c;
        }
        // More digits than allowed: the general path judges them (a line of digits is read
        // no further than this, however long it is).
        if i == max_digits {
            return None;
        }
        // At most 18 digits: no overflow.
        n = n * 10 + u64::from(d);
        i += 1;
    };
    // `i` in 1..=max_digits, and string2ll refuses a leading zero.
    if after != b'\r' || i == 0 || (i > 1 && digits[0] == b'0') {
        return None;
    }
    if digits.get(i + 1) != Some(&b'\n') {
        return None;
    }
    Some((n, at + i + 3))
}

/// A cursor over the buffered bytes. Every method either advances `pos` past what it read and
/// returns it, or stops; after a stop `pos` is meaningless.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    limits: &'a Limits,
}

/// A count line, found but not yet judged: Redis looks at the type byte only after the line
/// ending has arrived, and so does this decoder, so that the same bytes give the same error.
struct CountLine<'a> {
    /// The bytes between the type byte and `\r`.
    digits: &'a [u8],
    /// Whether the `\r` is followed by `\n`.
    lf: bool,
    /// Where the next value starts.
    next: usize,
}

impl<'a> Reader<'a> {
    /// Finds the count line of the value whose type byte is at `pos`.
    fn count_line(&self, too_big: ProtocolError) -> Step<CountLine<'a>> {
        let start = self.pos + 1;
        let rest = self.buf.get(start..).unwrap_or_default();
        let window = &rest[..rest.len().min(self.limits.max_inline_len)];
        match window.iter().position(|&b| b == b'\r') {
            Some(cr) => match rest.get(cr + 1) {
                Some(&after) => Ok(CountLine {
                    digits: &window[..cr],
                    lf: after == b'\n',
                    next: start + cr + 2,
                }),
                None => Err(Stop::Incomplete),
            },
            None if rest.len() >= self.limits.max_inline_len => Err(too_big.into()),
            None => Err(Stop::Incomplete),
        }
    }

    /// Reads a count line and parses it with Redis's `string2ll` rules; `?` (streamed) is
    /// refused.
    fn count(&mut self, too_big: ProtocolError, invalid: ProtocolError) -> Step<i64> {
        let line = self.count_line(too_big)?;
        if line.lf && line.digits == b"?" {
            return Err(ProtocolError::StreamedNotSupported.into());
        }
        let n = string2ll(line.digits).filter(|_| line.lf).ok_or(invalid)?;
        self.pos = line.next;
        Ok(n)
    }

    /// Reads a blob length: `0..=max_bulk_len`.
    fn blob_len(&mut self) -> Step<usize> {
        let n = self.count(
            ProtocolError::TooBigBulkCount,
            ProtocolError::InvalidBulkLength,
        )?;
        self.checked_blob_len(n)
    }

    fn checked_blob_len(&self, n: i64) -> Step<usize> {
        u64::try_from(n)
            .ok()
            .filter(|&n| n <= self.limits.max_bulk_len)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| ProtocolError::InvalidBulkLength.into())
    }

    /// Reads an aggregate count: `0..=max_array_len`.
    fn aggregate_len(&mut self) -> Step<usize> {
        let n = self.count(
            ProtocolError::TooBigMultibulkCount,
            ProtocolError::InvalidMultibulkLength,
        )?;
        self.checked_aggregate_len(n)
    }

    fn checked_aggregate_len(&self, n: i64) -> Step<usize> {
        u64::try_from(n)
            .ok()
            .filter(|&n| n <= self.limits.max_array_len)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| ProtocolError::InvalidMultibulkLength.into())
    }

    /// Reads `len` payload bytes and the `\r\n` after them.
    fn payload(&mut self, len: usize) -> Step<&'a [u8]> {
        let end = self.pos.checked_add(len).ok_or(Stop::Incomplete)?;
        let Some(terminator) = self.buf.get(end..end.saturating_add(2)) else {
            return Err(Stop::Incomplete);
        };
        if terminator.len() < 2 {
            return Err(Stop::Incomplete);
        }
        if terminator != b"\r\n" {
            return Err(ProtocolError::MissingBulkTerminator.into());
        }
        let data = &self.buf[self.pos..end];
        self.pos = end + 2;
        Ok(data)
    }

    /// Reads a RESP3 simple line after the type byte at `pos`: the bytes up to `\r\n`, which
    /// must hold neither `\r` nor `\n`.
    fn simple_line(&mut self) -> Step<&'a [u8]> {
        let start = self.pos + 1;
        let rest = self.buf.get(start..).unwrap_or_default();
        let window = &rest[..rest.len().min(self.limits.max_inline_len)];
        match window.iter().position(|&b| b == b'\r' || b == b'\n') {
            Some(end) if window[end] == b'\n' => Err(ProtocolError::InvalidLineEnding.into()),
            Some(cr) => match rest.get(cr + 1) {
                Some(b'\n') => {
                    self.pos = start + cr + 2;
                    Ok(&window[..cr])
                }
                Some(_) => Err(ProtocolError::InvalidLineEnding.into()),
                None => Err(Stop::Incomplete),
            },
            None if rest.len() >= self.limits.max_inline_len => {
                Err(ProtocolError::TooBigLine.into())
            }
            None => Err(Stop::Incomplete),
        }
    }

    /// Reads a request array: `*` has been seen at `pos`.
    fn request(&mut self) -> Step<Vec<Bytes>> {
        self.request_with(true, Bytes::copy_from_slice)
    }

    /// A request's arguments, each made by `arg` from its bytes in the buffer. `copies`: `arg`
    /// copies the bytes, so a large request is first checked complete ([`DRY_RUN_MIN_ARGS`]);
    /// a sink that only notes where the arguments are skips that second pass (it was a quarter
    /// of decoding a `TS.MADD` of 100 samples).
    fn request_with<T>(
        &mut self,
        copies: bool,
        mut arg: impl FnMut(&'a [u8]) -> T,
    ) -> Step<Vec<T>> {
        // Not `count`: Redis has no streamed requests, so `*?` is just an invalid length.
        let line = self.count_line(ProtocolError::TooBigMultibulkCount)?;
        let n = string2ll(line.digits)
            .filter(|_| line.lf)
            .ok_or(ProtocolError::InvalidMultibulkLength)?;
        self.pos = line.next;
        if n <= 0 {
            return Ok(Vec::new());
        }
        let n = self.checked_aggregate_len(n)?;
        if copies && n > DRY_RUN_MIN_ARGS {
            // See DRY_RUN_MIN_ARGS: copy nothing until the whole request is here.
            let mut dry = Reader {
                buf: self.buf,
                pos: self.pos,
                limits: self.limits,
            };
            dry.request_args(n, |_| {})?;
        }
        let buffered = self.buf.len() - self.pos;
        let mut args = Vec::with_capacity(n.min(buffered / MIN_BULK_ENCODED_LEN));
        self.request_args(n, |a| args.push(arg(a)))?;
        Ok(args)
    }

    /// Reads `n` bulk strings of a request array, handing each payload to `sink`.
    fn request_args(&mut self, n: usize, mut sink: impl FnMut(&'a [u8])) -> Step<()> {
        for _ in 0..n {
            if let Some((len, header)) = short_bulk_header(&self.buf[self.pos..]) {
                // What count_line would see: the `\r` within the line length limit.
                let fits = header - 3 < self.limits.max_inline_len;
                if let Ok(len) = self.checked_blob_len(len)
                    && fits
                {
                    self.pos += header;
                    sink(self.payload(len)?);
                    continue;
                }
            }
            let line = self.count_line(ProtocolError::TooBigBulkCount)?;
            let kind = self.buf[self.pos];
            if kind != b'$' {
                return Err(ProtocolError::ExpectedBulk(kind).into());
            }
            let len = string2ll(line.digits)
                .filter(|_| line.lf)
                .ok_or(ProtocolError::InvalidBulkLength)?;
            let len = self.checked_blob_len(len)?;
            self.pos = line.next;
            sink(self.payload(len)?);
        }
        Ok(())
    }

    /// Reads any value at `pos`, nested inside `depth` aggregates.
    fn frame(&mut self, depth: u32) -> Step<Frame> {
        let Some(&kind) = self.buf.get(self.pos) else {
            return Err(Stop::Incomplete);
        };
        Ok(match kind {
            b'+' => Frame::Simple(Bytes::copy_from_slice(self.simple_line()?)),
            b'-' => Frame::Error(Bytes::copy_from_slice(self.simple_line()?)),
            b':' => Frame::Integer(parse_integer(self.simple_line()?)?),
            b'$' => self.bulk()?,
            b'*' => self.array(depth)?,
            b'%' => Frame::Map(self.pairs(depth)?),
            b'~' => Frame::Set(self.elements(depth)?),
            b'>' => Frame::Push(self.elements(depth)?),
            b'|' => {
                let attributes = self.pairs(depth)?;
                let value = Box::new(self.frame(depth + 1)?);
                Frame::Attribute { attributes, value }
            }
            b',' => Frame::Double(parse_double(self.simple_line()?)?),
            b'#' => match self.simple_line()? {
                b"t" => Frame::Boolean(true),
                b"f" => Frame::Boolean(false),
                _ => return Err(ProtocolError::InvalidBoolean.into()),
            },
            b'(' => {
                let digits = self.simple_line()?;
                if !is_big_number(digits) {
                    return Err(ProtocolError::InvalidBigNumber.into());
                }
                Frame::BigNumber(Bytes::copy_from_slice(digits))
            }
            b'=' => self.verbatim()?,
            b'!' => {
                let len = self.blob_len()?;
                Frame::BulkError(Bytes::copy_from_slice(self.payload(len)?))
            }
            b'_' => {
                if !self.simple_line()?.is_empty() {
                    return Err(ProtocolError::InvalidNull.into());
                }
                Frame::Null
            }
            other => return Err(ProtocolError::InvalidTypeByte(other).into()),
        })
    }

    fn bulk(&mut self) -> Step<Frame> {
        let n = self.count(
            ProtocolError::TooBigBulkCount,
            ProtocolError::InvalidBulkLength,
        )?;
        if n == -1 {
            return Ok(Frame::Null);
        }
        let len = self.checked_blob_len(n)?;
        Ok(Frame::Bulk(Bytes::copy_from_slice(self.payload(len)?)))
    }

    fn verbatim(&mut self) -> Step<Frame> {
        let len = self.blob_len()?;
        let body = self.payload(len)?;
        match body {
            [a, b, c, b':', text @ ..] => Ok(Frame::Verbatim {
                format: [*a, *b, *c],
                text: Bytes::copy_from_slice(text),
            }),
            _ => Err(ProtocolError::InvalidVerbatim.into()),
        }
    }

    fn array(&mut self, depth: u32) -> Step<Frame> {
        let n = self.count(
            ProtocolError::TooBigMultibulkCount,
            ProtocolError::InvalidMultibulkLength,
        )?;
        if n == -1 {
            return Ok(Frame::NullArray);
        }
        let n = self.checked_aggregate_len(n)?;
        Ok(Frame::Array(self.children(n, depth)?))
    }

    /// Reads a `~` or `>` aggregate.
    fn elements(&mut self, depth: u32) -> Step<Vec<Frame>> {
        let n = self.aggregate_len()?;
        self.children(n, depth)
    }

    fn children(&mut self, n: usize, depth: u32) -> Step<Vec<Frame>> {
        if depth >= self.limits.max_depth {
            return Err(ProtocolError::NestingTooDeep.into());
        }
        let buffered = self.buf.len() - self.pos;
        let mut items = Vec::with_capacity(n.min(buffered / MIN_FRAME_ENCODED_LEN));
        for _ in 0..n {
            items.push(self.frame(depth + 1)?);
        }
        Ok(items)
    }

    /// Reads a `%` or `|` aggregate: a count of pairs, then the pairs.
    fn pairs(&mut self, depth: u32) -> Step<Vec<(Frame, Frame)>> {
        let n = self.aggregate_len()?;
        if depth >= self.limits.max_depth {
            return Err(ProtocolError::NestingTooDeep.into());
        }
        let buffered = self.buf.len() - self.pos;
        let mut pairs = Vec::with_capacity(n.min(buffered / (2 * MIN_FRAME_ENCODED_LEN)));
        for _ in 0..n {
            let key = self.frame(depth + 1)?;
            let value = self.frame(depth + 1)?;
            pairs.push((key, value));
        }
        Ok(pairs)
    }
}

/// Redis's `string2ll`: an optional `-`, then `0` alone or digits without a leading zero, in
/// range for `i64`; nothing else (no `+`, no spaces, no `-0`).
fn string2ll(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s {
        [b'0'] => return Some(0),
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    accumulate(digits, negative)
}

/// Sums decimal `digits` (at least one, all `0..=9`) into an `i64`, negated if `negative`;
/// `None` on anything else or overflow. Accumulates on the negative side so `i64::MIN` fits.
fn accumulate(digits: &[u8], negative: bool) -> Option<i64> {
    if digits.is_empty() {
        return None;
    }
    let mut acc: i64 = 0;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        acc = acc.checked_mul(10)?.checked_sub(i64::from(d))?;
    }
    if negative {
        Some(acc)
    } else {
        acc.checked_neg()
    }
}

/// The common bulk string header, `$` and one to four digits (no leading zero) and `\r\n`, read
/// at once: its length and its size. Anything else (longer, malformed, incomplete) is `None`
/// and goes the general way, which gives the same result for these bytes.
fn short_bulk_header(b: &[u8]) -> Option<(i64, usize)> {
    // Indexes, not an iterator chain: this runs once per argument of every request.
    let digit = |i: usize| b.get(i).map(|c| c.wrapping_sub(b'0')).filter(|&d| d <= 9);
    if b.first() != Some(&b'$') {
        return None;
    }
    let first = digit(1)?;
    let mut len = i64::from(first);
    let mut i = 2;
    while let Some(d) = digit(i) {
        if i == 5 || first == 0 {
            // A fifth digit, or a leading zero (string2ll refuses it).
            return None;
        }
        len = len * 10 + i64::from(d);
        i += 1;
    }
    (b.get(i) == Some(&b'\r') && b.get(i + 1) == Some(&b'\n')).then_some((len, i + 2))
}

/// A RESP3 integer: `[+-]digits`, leading zeros allowed.
fn parse_integer(line: &[u8]) -> Result<i64, ProtocolError> {
    let parsed = match line {
        [b'-', digits @ ..] => accumulate(digits, true),
        [b'+', digits @ ..] => accumulate(digits, false),
        digits => accumulate(digits, false),
    };
    parsed.ok_or(ProtocolError::InvalidInteger)
}

/// A RESP3 double: anything Rust's `f64::from_str` reads, which covers the RESP3 grammar and
/// `inf`, `-inf`, `nan` in any case.
fn parse_double(line: &[u8]) -> Result<f64, ProtocolError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or(ProtocolError::InvalidDouble)
}

/// Whether `s` is a RESP3 big number: `[+-]digits`. The encoder asserts this too.
pub(super) fn is_big_number(s: &[u8]) -> bool {
    let digits = match s {
        [b'-' | b'+', rest @ ..] => rest,
        _ => s,
    };
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// Decodes an inline command (`buf` does not start with `*`).
fn inline_request(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(Vec<Bytes>, usize)>, ProtocolError> {
    // A line may hold `max_inline_len` bytes before its `\n`, wherever the reads split it.
    let window = &buf[..buf.len().min(limits.max_inline_len.saturating_add(1))];
    let Some(newline) = window.iter().position(|&b| b == b'\n') else {
        if buf.len() > limits.max_inline_len {
            return Err(ProtocolError::TooBigInlineRequest);
        }
        return Ok(None);
    };
    let mut line = &buf[..newline];
    if let [rest @ .., b'\r'] = line {
        line = rest;
    }
    // Redis splits the line as a C string, so a NUL byte ends it.
    if let Some(nul) = line.iter().position(|&b| b == 0) {
        line = &line[..nul];
    }
    let args = split_args(line)?;
    Ok(Some((args, newline + 1)))
}

/// C's `isspace` in the C locale, which `sdssplitargs` skips between arguments.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Redis's `sdssplitargs`: arguments separated by whitespace; `"double quotes"` with `\n`,
/// `\r`, `\t`, `\b`, `\a`, `\xHH` and `\<any>` escapes, `'single quotes'` with `\'`; a quote
/// may start inside an argument (`a"b c"` is `ab c`), but a closing quote must be followed by
/// whitespace or the end. `line` holds no NUL byte, so the end of the slice plays the NUL's role.
fn split_args(line: &[u8]) -> Result<Vec<Bytes>, ProtocolError> {
    let at = |i: usize| line.get(i).copied();
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while at(i).is_some_and(is_c_space) {
            i += 1;
        }
        if i >= line.len() {
            return Ok(args);
        }
        let mut arg = Vec::new();
        let mut quote = None;
        loop {
            let Some(c) = at(i) else {
                if quote.is_some() {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                break;
            };
            match quote {
                Some(b'"') => match (c, at(i + 1)) {
                    (b'\\', Some(b'x')) => {
                        match (at(i + 2).and_then(hex_value), at(i + 3).and_then(hex_value)) {
                            (Some(hi), Some(lo)) => {
                                arg.push(hi * 16 + lo);
                                i += 3;
                            }
                            _ => {
                                arg.push(b'x');
                                i += 1;
                            }
                        }
                    }
                    (b'\\', Some(escaped)) => {
                        arg.push(match escaped {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                        i += 1;
                    }
                    (b'"', next) => {
                        closing_quote(next)?;
                        i += 1;
                        break;
                    }
                    _ => arg.push(c),
                },
                Some(_) => match (c, at(i + 1)) {
                    (b'\\', Some(b'\'')) => {
                        arg.push(b'\'');
                        i += 1;
                    }
                    (b'\'', next) => {
                        closing_quote(next)?;
                        i += 1;
                        break;
                    }
                    _ => arg.push(c),
                },
                None => match c {
                    b' ' | b'\n' | b'\r' | b'\t' => {
                        i += 1;
                        break;
                    }
                    b'"' | b'\'' => quote = Some(c),
                    _ => arg.push(c),
                },
            }
            i += 1;
        }
        args.push(Bytes::from(arg));
    }
}

/// A closing quote must be followed by whitespace or the end of the line.
fn closing_quote(next: Option<u8>) -> Result<(), ProtocolError> {
    match next {
        Some(b) if !is_c_space(b) => Err(ProtocolError::UnbalancedQuotes),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// Decodes `input` whole with default limits, asserting it takes every byte.
    fn one(input: &[u8]) -> Frame {
        let (frame, used) = decode(input, &Limits::default()).unwrap().unwrap();
        assert_eq!(used, input.len(), "{input:?}");
        frame
    }

    fn err(input: &[u8]) -> String {
        decode(input, &Limits::default()).unwrap_err().to_string()
    }

    fn request(input: &[u8]) -> Vec<Bytes> {
        let (args, used) = decode_request(input, &Limits::default()).unwrap().unwrap();
        assert_eq!(used, input.len(), "{input:?}");
        args
    }

    #[test]
    fn decoding_from_a_buffer_matches_decoding_a_slice_and_takes_only_the_request() {
        let inputs: [&[u8]; 8] = [
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*1\r\n$4\r\nPING\r\n",
            b"PING a \"b c\"\r\nGET x\r\n",
            b"*0\r\n*1\r\n$4\r\nPING\r\n",
            b"*2\r\n$3\r\nGET\r\n$1\r\n",
            b"*2\r\n$3\r\nGET\r\n",
            b"*1\r\n:5\r\n",
            b"*-1\r\n",
            b"",
        ];
        for input in inputs {
            check_batch_decoder(input);
        }
        // Past the shared copy's size: requests of many copies, and one larger than a copy.
        let mut many = Vec::new();
        for i in 0..2_000 {
            many.extend_from_slice(format!("*2\r\n$3\r\nGET\r\n$5\r\nk{i:04}\r\n").as_bytes());
        }
        let big = "x".repeat(SHARED_COPY_MAX + 10);
        many.extend_from_slice(
            format!("*2\r\n$4\r\nECHO\r\n${}\r\n{big}\r\n", big.len()).as_bytes(),
        );
        // Requests of about 6 KB (a TS.MADD of 100 samples) that cross the copies' bounds.
        for i in 0..9 {
            let arg = format!("{i}").repeat(2_000 + i * 37);
            many.extend_from_slice(
                format!("*3\r\n$4\r\nECHO\r\n${}\r\n{arg}\r\n$1\r\nz\r\n", arg.len()).as_bytes(),
            );
        }
        many.extend_from_slice(b"PING\r\n*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1");
        check_batch_decoder(&many);
        many.extend_from_slice(b"\r\nk\r\n*1\r\n:1\r\n*1\r\n$4\r\nPING\r\n");
        check_batch_decoder(&many);
    }

    /// [`decode_requests_from`] takes out of its buffer exactly the requests that
    /// [`decode_request`] finds one after the other, and stops where it stops (at an
    /// incomplete request, or with its error after the requests before it).
    fn check_batch_decoder(input: &[u8]) {
        let limits = Limits::default();
        let mut expected = Vec::new();
        let mut rest = input;
        let expected_end = loop {
            match decode_request(rest, &limits) {
                Ok(Some((args, used))) => {
                    expected.push((args, used));
                    rest = &rest[used..];
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        let mut buf = BytesMut::from(input);
        let mut got = Vec::new();
        let end = decode_requests_from(&mut buf, &limits, usize::MAX, &mut got);
        assert_eq!(end, expected_end, "{input:?}");
        assert!(got == expected, "{input:?}");
        assert_eq!(&buf[..], rest, "exactly the requests were taken: {input:?}");
        // At most `max` at a time, called again until done: the same requests and end.
        for max in [1, 2, 7] {
            let mut buf = BytesMut::from(input);
            let mut got = Vec::new();
            let end = loop {
                let before = got.len();
                let end = decode_requests_from(&mut buf, &limits, got.len() + max, &mut got);
                assert!(got.len() - before <= max, "{input:?}");
                if end.is_err() || got.len() - before < max {
                    break end;
                }
            };
            assert_eq!(end, expected_end, "max {max}: {input:?}");
            assert!(got == expected, "max {max}: {input:?}");
            assert_eq!(&buf[..], rest, "max {max}: {input:?}");
        }
    }

    fn request_err(input: &[u8]) -> String {
        decode_request(input, &Limits::default())
            .unwrap_err()
            .to_string()
    }

    fn args(list: &[&str]) -> Vec<Bytes> {
        list.iter().map(|s| b(s)).collect()
    }

    #[test]
    fn decodes_every_resp2_type() {
        assert_eq!(one(b"+OK\r\n"), Frame::Simple(b("OK")));
        assert_eq!(one(b"+\r\n"), Frame::Simple(b("")));
        assert_eq!(one(b"-ERR bad thing\r\n"), Frame::Error(b("ERR bad thing")));
        assert_eq!(one(b":42\r\n"), Frame::Integer(42));
        assert_eq!(one(b":-42\r\n"), Frame::Integer(-42));
        assert_eq!(one(b":+7\r\n"), Frame::Integer(7));
        assert_eq!(one(b":007\r\n"), Frame::Integer(7));
        assert_eq!(one(b":9223372036854775807\r\n"), Frame::Integer(i64::MAX));
        assert_eq!(one(b":-9223372036854775808\r\n"), Frame::Integer(i64::MIN));
        assert_eq!(one(b"$5\r\nhello\r\n"), Frame::Bulk(b("hello")));
        assert_eq!(one(b"$0\r\n\r\n"), Frame::Bulk(b("")));
        assert_eq!(one(b"$4\r\na\r\nb\r\n"), Frame::Bulk(b("a\r\nb")));
        assert_eq!(one(b"$-1\r\n"), Frame::Null);
        assert_eq!(one(b"*-1\r\n"), Frame::NullArray);
        assert_eq!(one(b"*0\r\n"), Frame::Array(vec![]));
        assert_eq!(
            one(b"*3\r\n:1\r\n$1\r\nx\r\n*1\r\n+y\r\n"),
            Frame::Array(vec![
                Frame::Integer(1),
                Frame::Bulk(b("x")),
                Frame::Array(vec![Frame::Simple(b("y"))]),
            ])
        );
    }

    #[test]
    fn decodes_every_resp3_type() {
        assert_eq!(one(b"_\r\n"), Frame::Null);
        assert_eq!(one(b"#t\r\n"), Frame::Boolean(true));
        assert_eq!(one(b"#f\r\n"), Frame::Boolean(false));
        assert_eq!(one(b",1.5\r\n"), Frame::Double(1.5));
        assert_eq!(one(b",-2\r\n"), Frame::Double(-2.0));
        assert_eq!(one(b",1.5e3\r\n"), Frame::Double(1500.0));
        assert_eq!(one(b",inf\r\n"), Frame::Double(f64::INFINITY));
        assert_eq!(one(b",-inf\r\n"), Frame::Double(f64::NEG_INFINITY));
        assert!(matches!(one(b",nan\r\n"), Frame::Double(v) if v.is_nan()));
        assert_eq!(
            one(b"(3492890328409238509324850943850943825024385\r\n"),
            Frame::BigNumber(b("3492890328409238509324850943850943825024385"))
        );
        assert_eq!(one(b"(-12\r\n"), Frame::BigNumber(b("-12")));
        assert_eq!(
            one(b"=15\r\ntxt:Some string\r\n"),
            Frame::Verbatim {
                format: *b"txt",
                text: b("Some string")
            }
        );
        assert_eq!(
            one(b"=4\r\nmkd:\r\n"),
            Frame::Verbatim {
                format: *b"mkd",
                text: b("")
            }
        );
        assert_eq!(
            one(b"!21\r\nSYNTAX invalid syntax\r\n"),
            Frame::BulkError(b("SYNTAX invalid syntax"))
        );
        assert_eq!(
            one(b"%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n"),
            Frame::Map(vec![
                (Frame::Simple(b("first")), Frame::Integer(1)),
                (Frame::Simple(b("second")), Frame::Integer(2)),
            ])
        );
        assert_eq!(
            one(b"~2\r\n+a\r\n#t\r\n"),
            Frame::Set(vec![Frame::Simple(b("a")), Frame::Boolean(true)])
        );
        assert_eq!(
            one(b">2\r\n+message\r\n$2\r\nhi\r\n"),
            Frame::Push(vec![Frame::Simple(b("message")), Frame::Bulk(b("hi"))])
        );
        assert_eq!(
            one(b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*1\r\n:2039123\r\n"),
            Frame::Attribute {
                attributes: vec![(
                    Frame::Simple(b("key-popularity")),
                    Frame::Map(vec![(Frame::Bulk(b("a")), Frame::Double(0.19))]),
                )],
                value: Box::new(Frame::Array(vec![Frame::Integer(2039123)])),
            }
        );
        // An attribute inside an aggregate annotates the element and is not counted.
        assert_eq!(
            one(b"*2\r\n|1\r\n+ttl\r\n:3\r\n:1\r\n:2\r\n"),
            Frame::Array(vec![
                Frame::Attribute {
                    attributes: vec![(Frame::Simple(b("ttl")), Frame::Integer(3))],
                    value: Box::new(Frame::Integer(1)),
                },
                Frame::Integer(2),
            ])
        );
    }

    #[test]
    fn reports_consumed_bytes_of_the_first_frame_only() {
        let input = b"+OK\r\n:1\r\n";
        assert_eq!(
            decode(input, &Limits::default()).unwrap(),
            Some((Frame::Simple(b("OK")), 5))
        );
        assert_eq!(
            decode_request(b"*1\r\n$4\r\nPING\r\nPING\r\n", &Limits::default()).unwrap(),
            Some((args(&["PING"]), 14))
        );
    }

    #[test]
    fn every_proper_prefix_needs_more_bytes() {
        let frames: &[&[u8]] = &[
            b"+OK\r\n",
            b"$5\r\nhello\r\n",
            b"*2\r\n:1\r\n%1\r\n_\r\n,1.5\r\n",
            b"=8\r\ntxt:abcd\r\n",
            b"|1\r\n+a\r\n+b\r\n#t\r\n",
        ];
        for frame in frames {
            for end in 0..frame.len() {
                assert_eq!(
                    decode(&frame[..end], &Limits::default()),
                    Ok(None),
                    "{frame:?}"
                );
            }
        }
        let requests: &[&[u8]] = &[b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", b"PING\r\n", b"\r\n"];
        for req in requests {
            for end in 0..req.len() {
                assert_eq!(
                    decode_request(&req[..end], &Limits::default()),
                    Ok(None),
                    "{req:?}"
                );
            }
        }
    }

    #[test]
    fn general_decoder_errors() {
        assert_eq!(err(b"*x\r\n"), "Protocol error: invalid multibulk length");
        assert_eq!(err(b"*-2\r\n"), "Protocol error: invalid multibulk length");
        assert_eq!(err(b"%-1\r\n"), "Protocol error: invalid multibulk length");
        assert_eq!(
            err(b"*01\r\n:1\r\n"),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(err(b"*1\rx"), "Protocol error: invalid multibulk length");
        assert_eq!(err(b"$-2\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(err(b"$+1\r\nx\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(err(b"!-1\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(
            err(b"$1\r\nabc"),
            "Protocol error: expected CRLF after bulk data"
        );
        assert_eq!(err(b"+a\nb\r\n"), "Protocol error: invalid line ending");
        assert_eq!(err(b"+a\rb\r\n"), "Protocol error: invalid line ending");
        assert_eq!(err(b"x\r\n"), "Protocol error: invalid type byte 'x'");
        assert_eq!(err(b"\n"), "Protocol error: invalid type byte ' '");
        assert_eq!(err(b"\xff"), "Protocol error: invalid type byte '?'");
        assert_eq!(err(b":1.5\r\n"), "Protocol error: invalid integer");
        assert_eq!(err(b":\r\n"), "Protocol error: invalid integer");
        assert_eq!(err(b":-\r\n"), "Protocol error: invalid integer");
        assert_eq!(
            err(b":9223372036854775808\r\n"),
            "Protocol error: invalid integer"
        );
        assert_eq!(err(b",1.5x\r\n"), "Protocol error: invalid double");
        assert_eq!(err(b",\r\n"), "Protocol error: invalid double");
        assert_eq!(err(b"#x\r\n"), "Protocol error: invalid boolean");
        assert_eq!(err(b"#true\r\n"), "Protocol error: invalid boolean");
        assert_eq!(err(b"(12a\r\n"), "Protocol error: invalid big number");
        assert_eq!(err(b"(\r\n"), "Protocol error: invalid big number");
        assert_eq!(err(b"_x\r\n"), "Protocol error: invalid null");
        assert_eq!(
            err(b"=3\r\ntxt\r\n"),
            "Protocol error: invalid verbatim string"
        );
        assert_eq!(
            err(b"=5\r\ntxt;a\r\n"),
            "Protocol error: invalid verbatim string"
        );
        assert_eq!(
            err(b"$?\r\n"),
            "Protocol error: streamed types are not supported"
        );
        assert_eq!(
            err(b"*?\r\n"),
            "Protocol error: streamed types are not supported"
        );
        assert_eq!(
            err(b"%?\r\n"),
            "Protocol error: streamed types are not supported"
        );
        assert_eq!(
            err(b";4\r\nabcd\r\n"),
            "Protocol error: invalid type byte ';'"
        );
    }

    #[test]
    fn general_decoder_enforces_limits() {
        let limits = Limits {
            max_bulk_len: 3,
            max_array_len: 2,
            max_depth: 2,
            max_inline_len: 8,
        };
        let check = |input: &[u8]| decode(input, &limits).map_err(|e| e.to_string());
        assert!(check(b"$3\r\nabc\r\n").unwrap().is_some());
        assert_eq!(
            check(b"$4\r\n").unwrap_err(),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            check(b"!4\r\n").unwrap_err(),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            check(b"=8\r\n").unwrap_err(),
            "Protocol error: invalid bulk length"
        );
        assert!(check(b"*2\r\n:1\r\n:2\r\n").unwrap().is_some());
        assert_eq!(
            check(b"*3\r\n").unwrap_err(),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(
            check(b"%3\r\n").unwrap_err(),
            "Protocol error: invalid multibulk length"
        );
        assert!(check(b"*1\r\n*0\r\n").unwrap().is_some());
        assert_eq!(
            check(b"*1\r\n*1\r\n*0\r\n").unwrap_err(),
            "Protocol error: nesting too deep"
        );
        assert_eq!(
            check(b"|1\r\n:1\r\n:1\r\n|1\r\n:1\r\n:1\r\n*0\r\n").unwrap_err(),
            "Protocol error: nesting too deep"
        );
        // Eight bytes of line, counting the type byte, as Redis counts.
        assert_eq!(check(b"+1234567"), Ok(None));
        assert_eq!(
            check(b"+1234567\r\n").unwrap(),
            Some((Frame::Simple(b("1234567")), 10))
        );
        assert_eq!(
            check(b"+12345678").unwrap_err(),
            "Protocol error: too big line"
        );
        assert_eq!(
            check(b"+12345678\r\n").unwrap_err(),
            "Protocol error: too big line"
        );
        assert_eq!(check(b"$0000000"), Ok(None));
        assert_eq!(
            check(b"$00000000").unwrap_err(),
            "Protocol error: too big bulk count string"
        );
        assert_eq!(
            check(b"*00000000").unwrap_err(),
            "Protocol error: too big mbulk count string"
        );
        let flat = Limits {
            max_depth: 0,
            ..Limits::default()
        };
        assert_eq!(decode(b"*0\r\n", &flat), Err(ProtocolError::NestingTooDeep));
        assert_eq!(decode(b":1\r\n", &flat), Ok(Some((Frame::Integer(1), 4))));
    }

    #[test]
    fn decodes_multibulk_requests() {
        assert_eq!(
            request(b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n"),
            args(&["SET", "key", "va\r\nl"])
        );
        assert_eq!(request(b"*1\r\n$0\r\n\r\n"), args(&[""]));
        assert_eq!(request(b"*0\r\n"), args(&[]));
        assert_eq!(request(b"*-1\r\n"), args(&[]));
        assert_eq!(request(b"*-5\r\n"), args(&[]));
        // RESP3 clients send requests the same way.
        assert_eq!(
            request(b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n"),
            args(&["HELLO", "3"])
        );
    }

    #[test]
    fn multibulk_request_errors_match_redis() {
        assert_eq!(
            request_err(b"*x\r\n"),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(
            request_err(b"*?\r\n"),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(
            request_err(b"*+1\r\n"),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(
            request_err(b"*1 \r\n"),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(
            request_err(b"*99999999999999999999\r\n"),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(
            request_err(b"*1048577\r\n"),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(
            request_err(b"*1\r\n:1\r\n"),
            "Protocol error: expected '$', got ':'"
        );
        assert_eq!(
            request_err(b"*1\r\nx\r\n"),
            "Protocol error: expected '$', got 'x'"
        );
        assert_eq!(
            request_err(b"*1\r\n\n\r\n"),
            "Protocol error: expected '$', got ' '"
        );
        assert_eq!(
            request_err(b"*1\r\n$-1\r\n"),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            request_err(b"*1\r\n$x\r\n"),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            request_err(b"*1\r\n$?\r\n"),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            request_err(b"*1\r\n$1\rx"),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            request_err(b"*1\r\n$536870913\r\n"),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            request_err(b"*1\r\n$1\r\nab\r\n"),
            "Protocol error: expected CRLF after bulk data"
        );
        // Like Redis, the type byte is judged once its line has arrived.
        let limits = Limits::default();
        assert_eq!(decode_request(b"*1\r\nxyz", &limits), Ok(None));
    }

    #[test]
    fn request_count_lines_are_bounded() {
        let limits = Limits {
            max_inline_len: 4,
            ..Limits::default()
        };
        assert_eq!(decode_request(b"*123", &limits), Ok(None));
        assert_eq!(
            decode_request(b"*1234", &limits),
            Err(ProtocolError::TooBigMultibulkCount)
        );
        assert_eq!(
            decode_request(b"*1234\r\n", &limits),
            Err(ProtocolError::TooBigMultibulkCount)
        );
        assert_eq!(
            decode_request(b"*1\r\n$1234", &limits),
            Err(ProtocolError::TooBigBulkCount)
        );
        assert_eq!(
            ProtocolError::TooBigMultibulkCount.to_string(),
            "Protocol error: too big mbulk count string"
        );
        assert_eq!(
            ProtocolError::TooBigBulkCount.to_string(),
            "Protocol error: too big bulk count string"
        );
        // The default is Redis's 64 KiB.
        let mut garbage = b"*".to_vec();
        garbage.resize(64 * 1024 + 1, b'1');
        assert_eq!(
            decode_request(&garbage, &Limits::default()),
            Err(ProtocolError::TooBigMultibulkCount)
        );
        assert_eq!(
            decode_request(&garbage[..64 * 1024], &Limits::default()),
            Ok(None)
        );
    }

    #[test]
    fn request_limits() {
        let limits = Limits {
            max_bulk_len: 3,
            max_array_len: 2,
            ..Limits::default()
        };
        assert_eq!(
            decode_request(b"*2\r\n$3\r\nabc\r\n$0\r\n\r\n", &limits),
            Ok(Some((args(&["abc", ""]), 19)))
        );
        assert_eq!(
            decode_request(b"*3\r\n", &limits),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(
            decode_request(b"*1\r\n$4\r\n", &limits),
            Err(ProtocolError::InvalidBulkLength)
        );
    }

    #[test]
    fn large_requests_decode_only_when_complete() {
        let words: Vec<String> = (0..DRY_RUN_MIN_ARGS * 2)
            .map(|i| format!("arg{i}"))
            .collect();
        let refs: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
        let mut input = Vec::new();
        super::super::encode_request(&refs, &mut input);
        for end in 0..input.len() {
            assert_eq!(
                decode_request(&input[..end], &Limits::default()),
                Ok(None),
                "{end}"
            );
        }
        let expected: Vec<Bytes> = words.iter().map(|w| b(w)).collect();
        assert_eq!(request(&input), expected);
        // An error late in a large request is found by the dry run, with the same text.
        let late = input.iter().rposition(|&c| c == b'$').unwrap();
        input[late] = b'+';
        assert_eq!(request_err(&input), "Protocol error: expected '$', got '+'");
    }

    #[test]
    fn huge_claims_do_not_reserve_memory() {
        // A million elements promised, two bytes buffered: the decoder waits without reserving
        // a million slots (a reservation that large would show up as a slow test under Miri
        // and as RSS in production; here it just must not fail or panic).
        assert_eq!(
            decode_request(b"*1048576\r\n$5", &Limits::default()),
            Ok(None)
        );
        assert_eq!(decode(b"*1048576\r\n:1\r\n", &Limits::default()), Ok(None));
        assert_eq!(decode(b"$536870912\r\nab", &Limits::default()), Ok(None));
    }

    #[test]
    fn decodes_inline_commands() {
        assert_eq!(request(b"PING\r\n"), args(&["PING"]));
        assert_eq!(request(b"PING\n"), args(&["PING"]));
        assert_eq!(request(b"SET  k\tv \r\n"), args(&["SET", "k", "v"]));
        assert_eq!(request(b"\r\n"), args(&[]));
        assert_eq!(request(b"\n"), args(&[]));
        assert_eq!(request(b"   \t\r\n"), args(&[]));
        assert_eq!(request(b"a\rb\r\n"), args(&["a", "b"]));
        // \v and \f separate arguments only where blanks are skipped, as in sdssplitargs.
        assert_eq!(request(b"\x0ba\x0bb\n"), args(&["a\x0bb"]));
        // A NUL ends the line, as C strings do in Redis.
        assert_eq!(request(b"GET k\0junk\r\n"), args(&["GET", "k"]));
        assert_eq!(
            decode_request(b"PING\r\nPING\r\n", &Limits::default()),
            Ok(Some((args(&["PING"]), 6)))
        );
    }

    #[test]
    fn inline_quoting_follows_sdssplitargs() {
        assert_eq!(
            request(b"SET \"a b\" 'c d'\n"),
            args(&["SET", "a b", "c d"])
        );
        assert_eq!(
            request(b"\"\\n\\r\\t\\b\\a\\\\\\\"\\q\"\n"),
            args(&["\n\r\t\x08\x07\\\"q"])
        );
        assert_eq!(
            decode_request(b"\"\\x41\\xfF\\x4\\xzz\"\n", &Limits::default())
                .unwrap()
                .unwrap()
                .0,
            vec![Bytes::from_static(b"A\xffx4xzz")]
        );
        assert_eq!(request(b"'it\\'s' 'a\\b'\n"), args(&["it's", "a\\b"]));
        assert_eq!(request(b"a\"b c\"\n"), args(&["ab c"]));
        assert_eq!(request(b"\"\" ''\n"), args(&["", ""]));
        assert_eq!(request(b"\"a\"\t\"b\"\r\n"), args(&["a", "b"]));
        assert_eq!(request(b"'\"' \"'\"\n"), args(&["\"", "'"]));
    }

    #[test]
    fn inline_quoting_errors() {
        for bad in [
            &b"\"abc\n"[..],
            b"'abc\n",
            b"\"abc\"def\n",
            b"'abc'def\n",
            b"\"abc\\\"\n",
            b"\"a\0\"\n",
        ] {
            assert_eq!(
                request_err(bad),
                "Protocol error: unbalanced quotes in request",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn inline_length_limit() {
        let limits = Limits {
            max_inline_len: 4,
            ..Limits::default()
        };
        assert_eq!(decode_request(b"ECHO", &limits), Ok(None));
        assert_eq!(
            decode_request(b"ECHO\n", &limits),
            Ok(Some((args(&["ECHO"]), 5)))
        );
        assert_eq!(
            decode_request(b"ECHO ", &limits),
            Err(ProtocolError::TooBigInlineRequest)
        );
        assert_eq!(
            decode_request(b"ECHO\r\n", &limits),
            Err(ProtocolError::TooBigInlineRequest)
        );
        assert_eq!(
            ProtocolError::TooBigInlineRequest.to_string(),
            "Protocol error: too big inline request"
        );
        let mut long = vec![b'a'; 64 * 1024 + 1];
        assert_eq!(
            decode_request(&long, &Limits::default()),
            Err(ProtocolError::TooBigInlineRequest)
        );
        long.truncate(64 * 1024);
        assert_eq!(decode_request(&long, &Limits::default()), Ok(None));
        long.push(b'\n');
        assert_eq!(
            decode_request(&long, &Limits::default())
                .unwrap()
                .unwrap()
                .1,
            long.len()
        );
    }

    /// The fast bulk header read accepts only what the general one does, with the same length.
    #[test]
    fn short_bulk_headers_agree_with_string2ll() {
        let alphabet = b"019-\r\n";
        let mut tried = 0;
        for n in 0..=6u32 {
            for mut code in 0..alphabet.len().pow(n) {
                let mut line = vec![b'$'];
                for _ in 0..n {
                    line.push(alphabet[code % alphabet.len()]);
                    code /= alphabet.len();
                }
                tried += 1;
                let Some((len, header)) = short_bulk_header(&line) else {
                    continue;
                };
                assert_eq!(&line[header - 2..header], b"\r\n", "{line:?}");
                let digits = &line[1..header - 2];
                assert!(!digits.contains(&b'\r'), "{line:?}");
                assert_eq!(string2ll(digits), Some(len), "{line:?}");
            }
        }
        assert!(tried > 50_000);
        assert_eq!(short_bulk_header(b"$1234\r\n"), Some((1234, 7)));
        assert_eq!(short_bulk_header(b"$12345\r\n"), None);
        assert_eq!(short_bulk_header(b"$0\r\n"), Some((0, 4)));
    }

    #[test]
    fn string2ll_matches_redis() {
        assert_eq!(string2ll(b"0"), Some(0));
        assert_eq!(string2ll(b"12"), Some(12));
        assert_eq!(string2ll(b"-12"), Some(-12));
        assert_eq!(string2ll(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(string2ll(b"9223372036854775807"), Some(i64::MAX));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"00",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"9223372036854775808",
        ] {
            assert_eq!(string2ll(bad), None, "{bad:?}");
        }
    }

    /// Byte soup biased towards RESP: type bytes, digits, line endings, quotes.
    fn resp_soup() -> impl Strategy<Value = Vec<u8>> {
        let token = prop_oneof![
            Just(b"\r\n".to_vec()),
            Just(b"*".to_vec()),
            Just(b"$".to_vec()),
            Just(b"-1".to_vec()),
            Just(b"?".to_vec()),
            Just(b"\"".to_vec()),
            Just(b"'".to_vec()),
            Just(b"\\x".to_vec()),
            prop::sample::select(b"+-:$*%~>|,#(=!_ \n\r\\".to_vec()).prop_map(|c| vec![c]),
            (0u8..=9).prop_map(|d| vec![b'0' + d]),
            any::<u8>().prop_map(|c| vec![c]),
        ];
        prop::collection::vec(token, 0..64).prop_map(|tokens| tokens.concat())
    }

    /// Every call's outcome with the requests and buffered bytes after it, all the requests,
    /// and what is left in the buffer.
    type Fed = (
        Vec<(Result<(), ProtocolError>, usize, usize)>,
        Vec<Request>,
        BytesMut,
    );

    /// Feeds `input` to [`decode_requests_with`] in the pieces `cuts` make, calling it until it
    /// stops short of `max` requests after each piece, and stopping at the first error: every
    /// call's outcome, the requests, and what is left in the buffer.
    fn feed_batches(input: &[u8], cuts: &[usize], limits: &Limits, max: usize, fast: bool) -> Fed {
        let mut ends: Vec<usize> = cuts.iter().map(|&c| c % (input.len() + 1)).collect();
        ends.push(input.len());
        ends.sort_unstable();
        let mut buf = BytesMut::new();
        let (mut calls, mut out, mut fed) = (Vec::new(), Vec::new(), 0);
        for end in ends {
            buf.extend_from_slice(&input[fed..end]);
            fed = end;
            loop {
                let before = out.len();
                let result = decode_requests_with(
                    &mut buf,
                    limits,
                    before.saturating_add(max),
                    &mut out,
                    fast,
                );
                let failed = result.is_err();
                calls.push((result, out.len(), buf.len()));
                if failed {
                    return (calls, out, buf);
                }
                if out.len() - before < max {
                    break;
                }
            }
        }
        (calls, out, buf)
    }

    /// [`feed_batches`] through [`decode_packed_from`], its requests unpacked, each with the
    /// bytes it took.
    fn feed_packed(input: &[u8], cuts: &[usize], limits: &Limits, max: usize) -> Fed {
        let mut ends: Vec<usize> = cuts.iter().map(|&c| c % (input.len() + 1)).collect();
        ends.push(input.len());
        ends.sort_unstable();
        let mut buf = BytesMut::new();
        let (mut calls, mut out, mut fed) = (Vec::new(), Vec::new(), 0);
        let mut held = 0;
        for end in ends {
            buf.extend_from_slice(&input[fed..end]);
            fed = end;
            loop {
                let mut packed = Vec::new();
                let mut sink = PackedSink {
                    out: &mut packed,
                    held: 0,
                };
                let result = decode_requests_with(&mut buf, limits, max, &mut sink, true);
                let took = sink.held;
                held += took;
                for p in &packed {
                    assert!(!p.is_empty(), "an empty Packed");
                    out.extend(p.iter().map(|r| (r.to_args(), r.wire_bytes() as usize)));
                }
                let failed = result.is_err();
                calls.push((result, held, buf.len()));
                if failed {
                    return (calls, out, buf);
                }
                if took < max {
                    break;
                }
            }
        }
        (calls, out, buf)
    }

    /// The fast path decides every input as the general reader alone does, call by call, and
    /// packed requests are the same requests.
    fn check_fast_path(input: &[u8], cuts: &[usize], limits: &Limits, max: usize) {
        let fast = feed_batches(input, cuts, limits, max, true);
        let general = feed_batches(input, cuts, limits, max, false);
        assert!(fast == general, "{input:?} {cuts:?} {limits:?} {max}");
        // Packed: the same calls, and the requests without the empty ones.
        let (calls, requests, rest) = feed_packed(input, cuts, limits, max);
        let want: Vec<Request> = fast.1.into_iter().filter(|r| !r.0.is_empty()).collect();
        assert!(
            calls == fast.0,
            "calls: {input:?} {cuts:?} {limits:?} {max}"
        );
        assert!(
            requests == want,
            "requests: {input:?} {cuts:?} {limits:?} {max}"
        );
        assert!(
            rest == general.2,
            "left: {input:?} {cuts:?} {limits:?} {max}"
        );
        // A whole message, taken without copies: the requests, outcome and rest of a read
        // buffer that held all of it.
        let mut message = Bytes::copy_from_slice(input);
        let mut packed = Vec::new();
        let read = decode_packed_message(&mut message, limits, &mut packed);
        let whole = feed_batches(input, &[], limits, usize::MAX, true);
        let whole_requests: Vec<Request> =
            whole.1.into_iter().filter(|r| !r.0.is_empty()).collect();
        let got: Vec<Request> = packed
            .iter()
            .flat_map(Packed::iter)
            .map(|r| (r.to_args(), r.wire_bytes() as usize))
            .collect();
        assert!(got == whole_requests, "message: {input:?} {limits:?}");
        assert_eq!(read.is_err(), whole.0.last().is_some_and(|c| c.0.is_err()));
        assert!(
            message[..] == whole.2[..],
            "message rest: {input:?} {limits:?}"
        );
    }

    #[test]
    fn fast_path_edge_cases_match_the_general_path() {
        let long = format!("*1\r\n${}\r\n{}\r\n", 300, "x".repeat(300));
        let inputs: [&[u8]; 22] = [
            b"*1\r\n$0\r\n\r\n",
            b"*1\r\n$00\r\n\r\n",
            b"*1\r\n$01\r\nx\r\n",
            b"*01\r\n$1\r\nx\r\n",
            b"*0\r\n*1\r\n$1\r\nx\r\n",
            b"*-1\r\n",
            b"*1\r\n$-1\r\n",
            b"*1\r\n$1\rx\r\n",
            b"*1\r\n$1\r\nxy\r\n",
            b"*1\r\n$1\r\nx\rz",
            b"*1\r\n:1\r\n",
            b"*2\r\n$1\r\nx\r\n",
            b"*10\r\n$1\r\nx\r\n",
            b"*1\r\n$12\r\n123456789012\r\n",
            b"*1\r\n$999999999999999999\r\n",
            b"*1\r\n$9999999999999999999\r\n",
            b"*1\r\n$99999999999999999999\r\n",
            b"*999999999999999999\r\n",
            b"*1\r\n$1234\r\n",
            b"*1\r\n$3\r\nabc\r\nPING\r\n*1\r\n$1\r\nx\r\n",
            b"*1 \r\n$1\r\nx\r\n",
            long.as_bytes(),
        ];
        let mut all = vec![Limits::default()];
        for max_inline_len in 0..=5 {
            for max_bulk_len in [0, 1, 2, 12, 299, 300] {
                for max_array_len in [0, 1, 2, 10] {
                    all.push(Limits {
                        max_bulk_len,
                        max_array_len,
                        max_depth: 1,
                        max_inline_len,
                    });
                }
            }
        }
        for input in inputs {
            for limits in &all {
                for cut in 0..=input.len() {
                    check_fast_path(input, &[cut], limits, 1);
                    check_fast_path(input, &[cut], limits, usize::MAX);
                }
            }
        }
    }

    /// Pipelines of requests as clients send them (arguments up to three-digit lengths), an
    /// occasional inline command, and sometimes one byte overwritten.
    fn pipeline() -> impl Strategy<Value = Vec<u8>> {
        let arg = prop_oneof![
            4 => prop::collection::vec(any::<u8>(), 0..20),
            1 => prop::collection::vec(any::<u8>(), 90..300),
        ];
        let request = prop_oneof![
            8 => prop::collection::vec(arg, 0..12).prop_map(|args| {
                let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
                let mut out = Vec::new();
                super::super::encode_request(&refs, &mut out);
                out
            }),
            1 => Just(b"PING\r\n".to_vec()),
        ];
        let corrupt = prop::collection::vec(
            (
                any::<usize>(),
                prop::sample::select(b"*$\r\n0129-x".to_vec()),
            ),
            0..3,
        );
        (prop::collection::vec(request, 0..20), corrupt).prop_map(|(requests, corrupt)| {
            let mut input = requests.concat();
            for (at, byte) in corrupt {
                if !input.is_empty() {
                    let at = at % input.len();
                    input[at] = byte;
                }
            }
            input
        })
    }

    fn any_limits() -> impl Strategy<Value = Limits> {
        let default = Limits::default();
        prop_oneof![
            Just(default),
            (prop_oneof![0u64..24, 88u64..304], 0u64..16, 0usize..8).prop_map(
                move |(bulk, array, inline)| Limits {
                    max_bulk_len: bulk,
                    max_array_len: array,
                    max_inline_len: inline,
                    ..default
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            input in prop_oneof![prop::collection::vec(any::<u8>(), 0..256), resp_soup()],
            tiny in any::<bool>(),
        ) {
            let limits = if tiny {
                Limits { max_bulk_len: 4, max_array_len: 3, max_depth: 2, max_inline_len: 6 }
            } else {
                Limits::default()
            };
            if let Ok(Some((_, used))) = decode(&input, &limits) {
                prop_assert!(used > 0 && used <= input.len());
            }
            if let Ok(Some((_, used))) = decode_request(&input, &limits) {
                prop_assert!(used > 0 && used <= input.len());
            }
        }

        /// Extending a buffer never changes a decision already made: a value stays the same
        /// value, an error the same error.
        #[test]
        fn decisions_are_stable_under_extension(input in resp_soup(), more in resp_soup()) {
            let limits = Limits::default();
            let mut longer = input.clone();
            longer.extend_from_slice(&more);
            match decode(&input, &limits) {
                Ok(None) => {}
                Ok(Some((frame, used))) => {
                    let (again, used_again) = decode(&longer, &limits).unwrap().unwrap();
                    prop_assert_eq!(used, used_again);
                    // Compare encodings so that NaN equals NaN.
                    prop_assert_eq!(format!("{frame:?}"), format!("{again:?}"));
                }
                Err(e) => prop_assert_eq!(decode(&longer, &limits), Err(e)),
            }
            match decode_request(&input, &limits) {
                Ok(None) => {}
                result => prop_assert_eq!(decode_request(&longer, &limits), result),
            }
        }

    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// The fast path and the general reader take the same requests, stop at the same
        /// places and fail with the same errors, however the stream is split.
        #[test]
        fn fast_path_matches_the_general_path(
            input in prop_oneof![
                3 => pipeline(),
                1 => resp_soup(),
                1 => prop::collection::vec(any::<u8>(), 0..256),
            ],
            cuts in prop::collection::vec(any::<usize>(), 0..6),
            limits in any_limits(),
            max in prop_oneof![Just(usize::MAX), 1usize..20],
        ) {
            check_fast_path(&input, &cuts, &limits, max);
        }
    }
}
