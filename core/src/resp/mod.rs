//! RESP2 and RESP3: the value model, an incremental decoder and an encoder.
//!
//! [`decode_request`] is the server's request reader (Redis's multibulk and inline rules),
//! [`decode`] reads any value (clients, tests), [`encode`] writes replies in either protocol and
//! [`encode_request`] writes requests. The decoders are pure functions of the buffered bytes;
//! the caller owns the buffer and drops the consumed prefix.

mod decode;
mod encode;
mod frame;
mod packed;

pub use decode::{
    Limits, ProtocolError, Request, SHARED_COPY_MAX, decode, decode_packed_from,
    decode_packed_message, decode_request, decode_requests_from,
};
pub use encode::{encode, encode_oks, encode_request, put_i64};
pub use frame::{Frame, Protocol};
pub use packed::{Packed, PackedRequest};

#[cfg(test)]
mod tests {
    //! Codec properties: encoding then decoding, in one piece or split anywhere.

    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;

    /// Line payloads: no `\r` or `\n`, which the encoder would replace.
    fn line() -> impl Strategy<Value = Bytes> {
        prop::collection::vec(
            any::<u8>().prop_filter("line break", |b| *b != b'\r' && *b != b'\n'),
            0..12,
        )
        .prop_map(Bytes::from)
    }

    fn blob() -> impl Strategy<Value = Bytes> {
        prop::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from)
    }

    fn leaf() -> impl Strategy<Value = Frame> {
        prop_oneof![
            line().prop_map(Frame::Simple),
            line().prop_map(Frame::Error),
            any::<i64>().prop_map(Frame::Integer),
            blob().prop_map(Frame::Bulk),
            Just(Frame::Null),
            Just(Frame::NullArray),
            any::<f64>().prop_map(Frame::Double),
            prop_oneof![
                Just(f64::NAN),
                Just(f64::INFINITY),
                Just(f64::NEG_INFINITY),
                Just(-0.0)
            ]
            .prop_map(Frame::Double),
            any::<bool>().prop_map(Frame::Boolean),
            "[+-]?[0-9]{1,40}".prop_map(|s| Frame::BigNumber(Bytes::from(s))),
            (any::<[u8; 3]>(), blob()).prop_map(|(format, text)| Frame::Verbatim { format, text }),
            blob().prop_map(Frame::BulkError),
        ]
    }

    fn frame() -> impl Strategy<Value = Frame> {
        leaf().prop_recursive(4, 48, 6, |inner| {
            let pairs = prop::collection::vec((inner.clone(), inner.clone()), 0..4);
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Frame::Array),
                pairs.clone().prop_map(Frame::Map),
                prop::collection::vec(inner.clone(), 0..6).prop_map(Frame::Set),
                prop::collection::vec(inner.clone(), 0..6).prop_map(Frame::Push),
                (pairs, inner).prop_map(|(attributes, value)| Frame::Attribute {
                    attributes,
                    value: Box::new(value),
                }),
            ]
        })
    }

    /// What RESP3 loses: both nulls are `_`.
    fn resp3_view(frame: &Frame) -> Frame {
        let all = |items: &[Frame]| items.iter().map(resp3_view).collect();
        let pairs = |pairs: &[(Frame, Frame)]| {
            pairs
                .iter()
                .map(|(k, v)| (resp3_view(k), resp3_view(v)))
                .collect()
        };
        match frame {
            Frame::NullArray => Frame::Null,
            Frame::Array(items) => Frame::Array(all(items)),
            Frame::Set(items) => Frame::Set(all(items)),
            Frame::Push(items) => Frame::Push(all(items)),
            Frame::Map(p) => Frame::Map(pairs(p)),
            Frame::Attribute { attributes, value } => Frame::Attribute {
                attributes: pairs(attributes),
                value: Box::new(resp3_view(value)),
            },
            other => other.clone(),
        }
    }

    /// The RESP2 lowering `Frame` documents, independently of the encoder (except the text of
    /// a double, which the encoder's own tests pin down).
    fn resp2_view(frame: &Frame) -> Frame {
        let all = |items: &[Frame]| Frame::Array(items.iter().map(resp2_view).collect());
        match frame {
            Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => all(items),
            Frame::Map(pairs) => Frame::Array(
                pairs
                    .iter()
                    .flat_map(|(k, v)| [resp2_view(k), resp2_view(v)])
                    .collect(),
            ),
            Frame::Double(v) => {
                let mut out = Vec::new();
                encode(&Frame::Double(*v), Protocol::Resp3, &mut out);
                Frame::Bulk(Bytes::copy_from_slice(&out[1..out.len() - 2]))
            }
            Frame::Boolean(b) => Frame::Integer(i64::from(*b)),
            Frame::BigNumber(digits) => Frame::Bulk(digits.clone()),
            Frame::Verbatim { text, .. } => Frame::Bulk(text.clone()),
            Frame::BulkError(e) => Frame::Error(Bytes::from(
                e.iter()
                    .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b })
                    .collect::<Vec<_>>(),
            )),
            Frame::Attribute { value, .. } => resp2_view(value),
            other => other.clone(),
        }
    }

    /// Feeds `stream` to a decoder in chunks of the given sizes (cycled), the way a connection
    /// delivers it, and returns what it decoded, in order.
    fn feed_in_chunks<T>(
        stream: &[u8],
        sizes: &[usize],
        decoder: impl Fn(&[u8], &Limits) -> Result<Option<(T, usize)>, ProtocolError>,
    ) -> Vec<T> {
        let limits = Limits::default();
        let mut out = Vec::new();
        let mut buf = Vec::new();
        let mut fed = 0;
        for &size in sizes.iter().cycle() {
            let end = (fed + size).min(stream.len());
            buf.extend_from_slice(&stream[fed..end]);
            fed = end;
            while let Some((item, used)) = decoder(&buf, &limits).unwrap() {
                assert!(used <= buf.len());
                out.push(item);
                buf.drain(..used);
            }
            if fed == stream.len() {
                break;
            }
        }
        assert!(buf.is_empty(), "{} bytes left over", buf.len());
        out
    }

    fn decode_in_chunks(stream: &[u8], sizes: &[usize]) -> Vec<Frame> {
        feed_in_chunks(stream, sizes, decode)
    }

    fn request_in_chunks(stream: &[u8], sizes: &[usize]) -> Vec<Vec<Bytes>> {
        feed_in_chunks(stream, sizes, decode_request)
    }

    /// [`request_in_chunks`] through [`decode_requests_from`], a read buffer's way.
    fn batches_in_chunks(stream: &[u8], sizes: &[usize]) -> Vec<Vec<Bytes>> {
        let limits = Limits::default();
        let mut out = Vec::new();
        let mut buf = bytes::BytesMut::new();
        let mut fed = 0;
        for &size in sizes.iter().cycle() {
            let end = (fed + size).min(stream.len());
            buf.extend_from_slice(&stream[fed..end]);
            fed = end;
            decode_requests_from(&mut buf, &limits, usize::MAX, &mut out).unwrap();
            if fed == stream.len() {
                break;
            }
        }
        assert!(buf.is_empty(), "{} bytes left over", buf.len());
        out.into_iter().map(|(args, _)| args).collect()
    }

    /// Writes `args` as an inline command, every argument double-quoted with `\xHH` escapes
    /// for all but letters and digits, so every byte value crosses the inline path.
    fn inline(args: &[Bytes], out: &mut Vec<u8>) {
        for (i, arg) in args.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.push(b'"');
            for &b in arg {
                if b.is_ascii_alphanumeric() {
                    out.push(b);
                } else {
                    out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
                }
            }
            out.push(b'"');
        }
        out.extend_from_slice(b"\r\n");
    }

    proptest! {
        #[test]
        fn resp3_round_trip(frame in frame()) {
            let mut out = Vec::new();
            encode(&frame, Protocol::Resp3, &mut out);
            let (decoded, used) = decode(&out, &Limits::default()).unwrap().unwrap();
            prop_assert_eq!(used, out.len());
            prop_assert!(decoded.same_as(&resp3_view(&frame)), "{:?} became {:?}", frame, decoded);
        }

        #[test]
        fn resp2_decodes_to_the_lowered_frame(frame in frame()) {
            let mut out = Vec::new();
            encode(&frame, Protocol::Resp2, &mut out);
            let (decoded, used) = decode(&out, &Limits::default()).unwrap().unwrap();
            prop_assert_eq!(used, out.len());
            prop_assert_eq!(decoded, resp2_view(&frame));
        }

        #[test]
        fn pipelined_frames_decode_the_same_however_split(
            frames in prop::collection::vec(frame(), 1..6),
            resp3 in any::<bool>(),
            sizes in prop::collection::vec(1usize..16, 1..8),
        ) {
            let protocol = if resp3 { Protocol::Resp3 } else { Protocol::Resp2 };
            let mut stream = Vec::new();
            for frame in &frames {
                encode(frame, protocol, &mut stream);
            }
            let whole = decode_in_chunks(&stream, &[stream.len()]);
            let split = decode_in_chunks(&stream, &sizes);
            prop_assert_eq!(whole.len(), frames.len());
            prop_assert_eq!(split.len(), frames.len());
            for ((original, a), b) in frames.iter().zip(&whole).zip(&split) {
                let expected = if resp3 { resp3_view(original) } else { resp2_view(original) };
                prop_assert!(a.same_as(&expected), "{:?} became {:?}", original, a);
                prop_assert!(b.same_as(&expected), "{:?} became {:?}", original, b);
            }
        }

        #[test]
        fn pipelined_requests_decode_the_same_however_split(
            requests in prop::collection::vec(
                (prop::collection::vec(blob(), 0..5), any::<bool>()),
                1..6,
            ),
            sizes in prop::collection::vec(1usize..16, 1..8),
        ) {
            let mut stream = Vec::new();
            for (args, as_inline) in &requests {
                if *as_inline {
                    inline(args, &mut stream);
                } else {
                    let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
                    encode_request(&refs, &mut stream);
                }
            }
            let decoded = request_in_chunks(&stream, &sizes);
            let expected: Vec<Vec<Bytes>> = requests.into_iter().map(|(args, _)| args).collect();
            prop_assert_eq!(&decoded, &expected);
            prop_assert_eq!(batches_in_chunks(&stream, &sizes), expected);
        }
    }
}
