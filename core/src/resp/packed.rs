//! Requests decoded together, packed: the arguments of a stretch of pipelined requests are
//! ranges of one shared buffer.
//!
//! A `Vec<Bytes>` per request costs an allocation, and a reference count taken and dropped per
//! argument, whether or not the command keeps an argument. A [`Packed`] holds the requests of
//! one shared copy in three allocations, however many there are, and hands out arguments as
//! slices: a command that keeps an argument (a `BATCH_SET` key) takes a `Bytes` of it, the
//! rest only read it. The server's endpoints decode into it
//! ([`super::decode_packed_from`]); [`Packed::from_requests`] packs requests that were not
//! decoded (tests, the simulator, inline commands).

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

/// Requests in order, their arguments ranges of one buffer. Never holds an empty request
/// (Redis skips those, and so does the decoder).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Packed {
    buf: Bytes,
    /// Every argument of every request, in order, as a range of `buf`.
    args: Vec<Range<usize>>,
    /// Each request's end, the index past its last argument in `args`, and the bytes it took
    /// on the wire.
    ends: Vec<(usize, u64)>,
    /// The bytes all the requests took on the wire.
    wire_bytes: u64,
}

impl Packed {
    /// Packs requests given as arguments (each non-empty) and their size on the wire into
    /// one new buffer.
    ///
    /// # Panics
    /// If a request has no argument.
    pub fn from_requests<'a>(requests: impl IntoIterator<Item = (&'a [Bytes], u64)>) -> Self {
        let mut buf = BytesMut::new();
        let mut args = Vec::new();
        let mut ends = Vec::new();
        let mut wire = 0;
        for (request, wire_bytes) in requests {
            assert!(!request.is_empty(), "packing an empty request");
            for arg in request {
                let start = buf.len();
                buf.put_slice(arg);
                args.push(start..buf.len());
            }
            wire += wire_bytes;
            ends.push((args.len(), wire_bytes));
        }
        Self {
            buf: buf.freeze(),
            args,
            ends,
            wire_bytes: wire,
        }
    }

    /// Packs the requests `ends` delimits, whose arguments are `args[..last]`, ranges of
    /// `buf`; `ends` holds (index past the last argument, end byte) per request, both
    /// exclusive, and the first request starts at byte `start`. Empty requests are left
    /// out, and their bytes with them (as an endpoint skips them).
    pub(super) fn from_ranges(
        buf: Bytes,
        args: &[Range<usize>],
        ends: &[(usize, usize)],
        start: usize,
    ) -> Self {
        let last = ends.last().map_or(0, |e| e.0);
        let mut packed = Self {
            buf,
            args: args[..last].to_vec(),
            ends: Vec::with_capacity(ends.len()),
            wire_bytes: 0,
        };
        let (mut prev_arg, mut prev_byte) = (0, start);
        for &(end, byte) in ends {
            if end > prev_arg {
                let wire = (byte - prev_byte) as u64;
                packed.ends.push((end, wire));
                packed.wire_bytes += wire;
            }
            (prev_arg, prev_byte) = (end, byte);
        }
        packed
    }

    /// The number of requests.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The bytes all the requests took on the wire.
    pub fn wire_bytes(&self) -> u64 {
        self.wire_bytes
    }

    /// The requests in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = PackedRequest<'_>> {
        (0..self.ends.len()).map(|i| {
            let first = i.checked_sub(1).map_or(0, |j| self.ends[j].0);
            let (last, wire_bytes) = self.ends[i];
            PackedRequest {
                buf: &self.buf,
                args: &self.args[first..last],
                wire_bytes,
            }
        })
    }
}

/// One request of a [`Packed`]: at least one argument, the command's name first.
#[derive(Clone, Copy, Debug)]
pub struct PackedRequest<'a> {
    buf: &'a Bytes,
    args: &'a [Range<usize>],
    wire_bytes: u64,
}

impl<'a> PackedRequest<'a> {
    /// The number of arguments, the name included (at least 1).
    pub fn len(&self) -> usize {
        self.args.len()
    }

    /// Never true: a packed request has its name.
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }

    /// Argument `i` (0 is the name).
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn arg(&self, i: usize) -> &'a [u8] {
        &self.buf[self.args[i].clone()]
    }

    /// Argument `i` as `Bytes` sharing the packed buffer (for an argument kept).
    pub fn arg_bytes(&self, i: usize) -> Bytes {
        self.buf.slice(self.args[i].clone())
    }

    /// Every argument as `Bytes`: the request as [`super::decode_request`] gives it.
    pub fn to_args(&self) -> Vec<Bytes> {
        self.args
            .iter()
            .map(|r| self.buf.slice(r.clone()))
            .collect()
    }

    /// The bytes the request took on the wire.
    pub fn wire_bytes(&self) -> u64 {
        self.wire_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_reads_back_requests() {
        let a = [
            Bytes::from_static(b"SET"),
            Bytes::from_static(b"k"),
            Bytes::new(),
        ];
        let b = [Bytes::from_static(b"PING")];
        let packed = Packed::from_requests([(&a[..], 20), (&b[..], 14)]);
        assert_eq!(packed.len(), 2);
        assert_eq!(packed.wire_bytes(), 34);
        let got: Vec<(Vec<Bytes>, u64)> = packed
            .iter()
            .map(|r| (r.to_args(), r.wire_bytes()))
            .collect();
        assert_eq!(got, vec![(a.to_vec(), 20), (b.to_vec(), 14)]);
        let first = packed.iter().next().unwrap();
        assert_eq!(first.len(), 3);
        assert_eq!(first.arg(1), b"k");
        assert_eq!(first.arg(2), b"");
        assert_eq!(first.arg_bytes(0), Bytes::from_static(b"SET"));
    }

    #[test]
    fn ranges_skip_empty_requests_and_count_from_the_start() {
        let buf = Bytes::from_static(b"..GETkPING");
        // Requests: GET k (bytes 2..6), an empty one (6..8), PING (8..10).
        let args = [2..5, 5..6, 6..10];
        let ends = [(2, 6), (2, 8), (3, 10)];
        let packed = Packed::from_ranges(buf, &args, &ends, 2);
        let got: Vec<(Vec<Bytes>, u64)> = packed
            .iter()
            .map(|r| (r.to_args(), r.wire_bytes()))
            .collect();
        let want = vec![
            (
                vec![Bytes::from_static(b"GET"), Bytes::from_static(b"k")],
                4,
            ),
            (vec![Bytes::from_static(b"PING")], 2),
        ];
        assert_eq!(got, want);
        assert_eq!(packed.wire_bytes(), 6);
    }
}
