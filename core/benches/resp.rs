//! RESP codec throughput against redis-protocol 6, the RESP crate redis clients in Rust use.
//!
//! Run: `cargo bench -p tickdb-core --bench resp -- --warm-up-time 1 --measurement-time 3`.
//! Each benchmark decodes (or encodes) one pipelined buffer completely; throughput is in bytes
//! of RESP. The redis-protocol rows are the peer: `decode` copies payloads into owned frames as
//! ours does (the fair comparison); `decode_bytes` slices a shared `Bytes` without copying.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use redis_protocol::resp2::{decode as peer_decode, encode as peer_encode, types::BytesFrame};
use tickdb_core::resp::{self, Frame, Limits, Protocol};

const REQUESTS: usize = 1000;
const REPLIES: usize = 1000;

/// 1000 pipelined `SET key:NNN value` requests, as redis-benchmark sends them.
fn set_requests() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..REQUESTS {
        let key = format!("key:{i:03}");
        resp::encode_request(&[b"SET", key.as_bytes(), b"value"], &mut out);
    }
    out
}

/// A reply stream of mixed RESP2 types, including TS.RANGE-shaped nested arrays.
fn replies() -> Vec<Frame> {
    (0..REPLIES)
        .map(|i| match i % 7 {
            0 => Frame::ok(),
            1 => Frame::Integer(1_700_000_000_000 + i as i64),
            2 => Frame::bulk(format!("value-{i}")),
            3 => Frame::Null,
            4 => Frame::error("ERR TSDB: the key does not exist"),
            5 => Frame::Array(vec![Frame::bulk("a"), Frame::bulk("bb"), Frame::Integer(3)]),
            _ => Frame::Array(
                (0..10)
                    .map(|s| {
                        Frame::Array(vec![
                            Frame::Integer(1_700_000_000_000 + s),
                            Frame::Double(100.25 + s as f64),
                        ])
                    })
                    .collect(),
            ),
        })
        .collect()
}

fn encoded(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    for frame in frames {
        resp::encode(frame, Protocol::Resp2, &mut out);
    }
    out
}

fn decode_requests(c: &mut Criterion) {
    let input = set_requests();
    let shared = Bytes::from(input.clone());
    let limits = Limits::default();
    let mut group = c.benchmark_group("decode_requests");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("tickdb decode_request", |b| {
        b.iter(|| {
            let mut buf = black_box(&input[..]);
            let mut n = 0;
            while let Some((args, used)) = resp::decode_request(buf, &limits).unwrap() {
                n += args.len();
                buf = &buf[used..];
            }
            assert_eq!(n, 3 * REQUESTS);
        });
    });
    group.bench_function("redis-protocol decode", |b| {
        b.iter(|| {
            let mut buf = black_box(&input[..]);
            let mut n = 0;
            while let Some((frame, used)) = peer_decode::decode(buf).unwrap() {
                black_box(frame);
                n += 1;
                buf = &buf[used..];
            }
            assert_eq!(n, REQUESTS);
        });
    });
    group.bench_function("redis-protocol decode_bytes", |b| {
        b.iter(|| {
            let mut buf = black_box(shared.clone());
            let mut n = 0;
            while let Some((frame, used)) = peer_decode::decode_bytes(&buf).unwrap() {
                black_box(frame);
                n += 1;
                buf = buf.slice(used..);
            }
            assert_eq!(n, REQUESTS);
        });
    });
    group.finish();
}

fn decode_replies(c: &mut Criterion) {
    let input = encoded(&replies());
    let shared = Bytes::from(input.clone());
    let limits = Limits::default();
    let mut group = c.benchmark_group("decode_replies");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("tickdb decode", |b| {
        b.iter(|| {
            let mut buf = black_box(&input[..]);
            let mut n = 0;
            while let Some((frame, used)) = resp::decode(buf, &limits).unwrap() {
                black_box(frame);
                n += 1;
                buf = &buf[used..];
            }
            assert_eq!(n, REPLIES);
        });
    });
    group.bench_function("redis-protocol decode", |b| {
        b.iter(|| {
            let mut buf = black_box(&input[..]);
            let mut n = 0;
            while let Some((frame, used)) = peer_decode::decode(buf).unwrap() {
                black_box(frame);
                n += 1;
                buf = &buf[used..];
            }
            assert_eq!(n, REPLIES);
        });
    });
    group.bench_function("redis-protocol decode_bytes", |b| {
        b.iter(|| {
            let mut buf = black_box(shared.clone());
            let mut n = 0;
            while let Some((frame, used)) = peer_decode::decode_bytes(&buf).unwrap() {
                black_box(frame);
                n += 1;
                buf = buf.slice(used..);
            }
            assert_eq!(n, REPLIES);
        });
    });
    group.finish();
}

fn encode_replies(c: &mut Criterion) {
    let frames = replies();
    let expected = encoded(&frames);
    // The peer encodes the same bytes from its own frames, decoded from our output.
    let mut shared = Bytes::from(expected.clone());
    let mut peer_frames: Vec<BytesFrame> = Vec::new();
    while let Some((frame, used)) = peer_decode::decode_bytes(&shared).unwrap() {
        peer_frames.push(frame);
        shared = shared.slice(used..);
    }
    let mut group = c.benchmark_group("encode_replies");
    group.throughput(Throughput::Bytes(expected.len() as u64));
    let mut out = Vec::with_capacity(expected.len());
    group.bench_function("tickdb encode", |b| {
        b.iter(|| {
            out.clear();
            for frame in black_box(&frames) {
                resp::encode(frame, Protocol::Resp2, &mut out);
            }
            assert_eq!(out.len(), expected.len());
        });
    });
    let mut peer_out = BytesMut::with_capacity(expected.len());
    group.bench_function("redis-protocol extend_encode", |b| {
        b.iter(|| {
            peer_out.clear();
            for frame in black_box(&peer_frames) {
                peer_encode::extend_encode(&mut peer_out, frame, false).unwrap();
            }
            assert_eq!(peer_out.len(), expected.len());
        });
    });
    group.finish();
    assert_eq!(&out[..], &expected[..]);
    assert_eq!(&peer_out[..], &expected[..]);
}

criterion_group!(benches, decode_requests, decode_replies, encode_replies);
criterion_main!(benches);
