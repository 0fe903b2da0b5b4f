//! Both RESP decoders on arbitrary bytes: no panic, a consumed count within the buffer, the
//! same answer for the consumed prefix alone and "need more" for anything shorter, and every
//! decoded value survives encode → decode unchanged (RESP3, and RESP2 after lowering).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tickdb_core::resp::{self, Frame, Limits, Protocol};

fuzz_target!(|data: &[u8]| {
    let tiny = Limits {
        max_bulk_len: 8,
        max_array_len: 4,
        max_depth: 3,
        max_inline_len: 16,
    };
    for limits in [Limits::default(), tiny] {
        check_decode(data, &limits);
        check_decode_request(data, &limits);
    }
});

fn encoded(frame: &Frame, protocol: Protocol) -> Vec<u8> {
    let mut out = Vec::new();
    resp::encode(frame, protocol, &mut out);
    out
}

/// Decodes `bytes`, which must be exactly one value.
fn decode_whole(bytes: &[u8]) -> Frame {
    match resp::decode(bytes, &Limits::default()) {
        Ok(Some((frame, used))) if used == bytes.len() => frame,
        other => panic!("re-decoding {bytes:?} gave {other:?}"),
    }
}

fn check_decode(data: &[u8], limits: &Limits) {
    let Ok(Some((frame, used))) = resp::decode(data, limits) else {
        return;
    };
    assert!(used > 0 && used <= data.len());
    match resp::decode(&data[..used], limits) {
        Ok(Some((again, n))) => {
            assert_eq!(n, used);
            assert!(again.same_as(&frame), "{again:?} != {frame:?}");
        }
        other => panic!("the consumed prefix alone gave {other:?}"),
    }
    assert_eq!(resp::decode(&data[..used - 1], limits), Ok(None));

    let resp3 = encoded(&frame, Protocol::Resp3);
    let back = decode_whole(&resp3);
    assert!(back.same_as(&resp3_view(&frame)), "{back:?} != {frame:?}");
    assert_eq!(encoded(&back, Protocol::Resp3), resp3);

    // Lowering is idempotent: what RESP2 wrote reads back to frames that write the same bytes.
    let resp2 = encoded(&frame, Protocol::Resp2);
    assert_eq!(encoded(&decode_whole(&resp2), Protocol::Resp2), resp2);
}

fn check_decode_request(data: &[u8], limits: &Limits) {
    // The TCP path's decoder (every complete request of a read, their arguments sliced from
    // shared copies) agrees with decoding one request after the other, and takes exactly those
    // requests' bytes out of its buffer.
    let mut expected = Vec::new();
    let mut rest = data;
    let expected_end = loop {
        match resp::decode_request(rest, limits) {
            Ok(Some((args, used))) => {
                expected.push((args, used));
                rest = &rest[used..];
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    let mut buf = bytes::BytesMut::from(data);
    let mut got = Vec::new();
    assert_eq!(
        resp::decode_requests_from(&mut buf, limits, usize::MAX, &mut got),
        expected_end
    );
    assert!(got == expected);
    assert_eq!(&buf[..], rest);

    // The server's packed form of the same: the same requests (the empty ones left out, as
    // an endpoint skips them), the same outcome, the same bytes left.
    let mut buf = bytes::BytesMut::from(data);
    let mut packed = Vec::new();
    let read = resp::decode_packed_from(&mut buf, limits, usize::MAX, &mut packed);
    assert_eq!(read.as_ref().err(), expected_end.as_ref().err());
    if let Ok(n) = read {
        assert_eq!(n, expected.len());
    }
    let unpacked: Vec<(Vec<bytes::Bytes>, usize)> = packed
        .iter()
        .flat_map(|p| p.iter())
        .map(|r| (r.to_args(), r.wire_bytes() as usize))
        .collect();
    let nonempty: Vec<_> = expected.iter().filter(|(a, _)| !a.is_empty()).cloned().collect();
    assert!(unpacked == nonempty);
    assert_eq!(&buf[..], rest);

    let Ok(Some((args, used))) = resp::decode_request(data, limits) else {
        return;
    };
    assert!(used > 0 && used <= data.len());
    assert_eq!(
        resp::decode_request(&data[..used], limits),
        Ok(Some((args.clone(), used)))
    );
    assert_eq!(resp::decode_request(&data[..used - 1], limits), Ok(None));

    let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
    let mut out = Vec::new();
    resp::encode_request(&refs, &mut out);
    assert_eq!(
        resp::decode_request(&out, &Limits::default()),
        Ok(Some((args, out.len())))
    );
}

/// What RESP3 cannot tell apart: both nulls are `_`.
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

