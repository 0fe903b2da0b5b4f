//! The time-series engine through the real binary: redis-py's `r.ts()` in RESP2 and RESP3, the
//! seed dialect over raw RESP, and `kill -9` with samples in flight.

use bytes::Bytes;
use tickdb_core::resp::{self, Frame};
use tickdb_tests::{Client, Server, bulk, err, kill9_mid_stream, run_python};

fn sample(ts: i64, v: &str) -> Frame {
    Frame::Array(vec![
        Frame::Integer(ts),
        Frame::Simple(Bytes::copy_from_slice(v.as_bytes())),
    ])
}

#[test]
fn redis_py_ts_resp2_and_resp3() {
    let server = Server::start(&[]);
    let out = run_python("redis_py_ts.py", server.port);
    assert!(out.contains("RESP2 and RESP3 ts checks passed"), "{out}");
}

#[test]
fn seed_dialect_and_ts_over_raw_resp() {
    let server = Server::start(&[]);
    let mut c = server.client();
    assert_eq!(c.call(&["TSDB_SET", "px", "10", "1.5"]), Frame::ok());
    assert_eq!(c.call(&["TSDB_SET", "px", "20", "2.5"]), Frame::ok());
    assert_eq!(
        c.call(&["TSDB_GET", "px", "0", "15"]),
        Frame::Array(vec![sample(10, "1.5")])
    );
    // BATCH_SET buffers on the connection; BATCH_FLUSH applies and counts the successes.
    for i in 0..100 {
        let ts = (1000 + i).to_string();
        let v = i.to_string();
        assert_eq!(c.call(&["BATCH_SET", "bx", &v, &ts]), Frame::ok());
    }
    assert_eq!(c.call(&["BATCH_FLUSH"]), Frame::Integer(100));
    assert_eq!(c.call(&["TS.GET", "bx"]), sample(1099, "99"));
    // Pipelined in one write, the node answers the +OKs as one run: every one arrives, in
    // order, each where its request was (a PING in the middle of the run, the count last).
    let mut pipeline = Vec::new();
    for i in 0..2000 {
        let (ts, v) = ((5000 + i).to_string(), i.to_string());
        let args: [&[u8]; 4] = [b"BATCH_SET", b"bp", v.as_bytes(), ts.as_bytes()];
        resp::encode_request(&args, &mut pipeline);
        if i == 999 {
            resp::encode_request(&[b"PING".as_slice()], &mut pipeline);
        }
    }
    resp::encode_request(&[b"BATCH_FLUSH".as_slice()], &mut pipeline);
    c.send_raw(&pipeline);
    for i in 0..2000 {
        assert_eq!(c.read(), Some(Frame::ok()), "BATCH_SET {i}");
        if i == 999 {
            assert_eq!(c.read(), Some(Frame::Simple("PONG".into())));
        }
    }
    assert_eq!(c.read(), Some(Frame::Integer(2000)));
    // A duplicate under BLOCK fails alone; the rest of the batch applies.
    c.call(&["BATCH_SET", "bx", "5", "1000"]);
    c.call(&["BATCH_SET", "bx", "5", "2000"]);
    assert_eq!(c.call(&["BATCH_FLUSH"]), Frame::Integer(1));
    assert_eq!(
        c.call(&["TS.ADD", "bx", "1", "x"]),
        err("ERR TSDB: invalid value")
    );
    assert_eq!(c.call(&["TYPE", "bx"]), Frame::Simple("TSDB-TYPE".into()));
    // RESP3: values are doubles, MGET a map.
    c.call(&["HELLO", "3"]);
    assert_eq!(
        c.call(&["TS.RANGE", "px", "-", "+", "COUNT", "1"]),
        Frame::Array(vec![Frame::Array(vec![
            Frame::Integer(10),
            Frame::Double(1.5)
        ])])
    );
    c.call(&["TS.ALTER", "px", "LABELS", "feed", "seed"]);
    assert_eq!(
        c.call(&["TS.MGET", "FILTER", "feed=seed"]),
        Frame::Map(vec![(
            bulk("px"),
            Frame::Array(vec![
                Frame::Map(vec![]),
                Frame::Array(vec![Frame::Integer(20), Frame::Double(2.5)])
            ])
        )])
    );
    assert_eq!(
        c.call(&[
            "COMMAND", "GETKEYS", "TS.MADD", "a", "1", "1", "b", "2", "2"
        ]),
        Frame::Array(vec![bulk("a"), bulk("b")])
    );
}

#[test]
fn every_acknowledged_sample_survives_kill_9() {
    const SAMPLES: usize = 20_000;
    const WRITERS: usize = 4;
    let mut server = Server::start(&[]);
    let setup = |w: usize, c: &mut Client| {
        // Small chunks, so sealing happens many times while samples stream in.
        c.call(&["TS.CREATE", &format!("tick:{w}"), "CHUNK_SIZE", "128"]);
    };
    let write = |w: usize, i: usize, c: &mut Client| {
        let (key, ts, v) = (
            format!("tick:{w}"),
            i.to_string(),
            format!("{}.25", i % 1000),
        );
        c.try_call(&["TS.ADD", &key, &ts, &v]) == Some(Frame::Integer(i as i64))
    };
    let acked = kill9_mid_stream(
        &mut server,
        WRITERS,
        SAMPLES / WRITERS,
        SAMPLES / 3,
        setup,
        write,
    );
    server.restart();
    let mut c = server.client();
    for w in 0..WRITERS {
        let key = format!("tick:{w}");
        let mine: Vec<usize> = acked
            .iter()
            .filter(|(x, _)| *x == w)
            .map(|(_, i)| *i)
            .collect();
        let Some(&last) = mine.last() else { continue };
        let reply = c.try_call(&["TS.RANGE", &key, "0", &last.to_string()]);
        let Some(Frame::Array(rows)) = reply else {
            panic!(
                "TS.RANGE {key} after the restart: {reply:?}; log:\n{}",
                server.log()
            )
        };
        assert_eq!(rows.len(), mine.len(), "{key}: acked samples missing");
        for (row, i) in rows.iter().zip(&mine) {
            assert_eq!(
                *row,
                sample(*i as i64, &format!("{}.25", i % 1000)),
                "{key}"
            );
        }
    }
}
