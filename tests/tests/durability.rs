//! Acknowledged writes survive `kill -9`.

use tickdb_core::resp::Frame;
use tickdb_tests::{Server, bulk, kill9_mid_stream};

#[test]
fn every_acknowledged_write_survives_kill_9() {
    acknowledged_writes_survive_kill_9(&[]);
}

/// The same with the store synced on a thread of its own while the node goes on writing.
#[test]
fn every_acknowledged_write_survives_kill_9_with_pipelined_syncs() {
    acknowledged_writes_survive_kill_9(&["--pipelined-sync"]);
}

fn acknowledged_writes_survive_kill_9(extra: &[&str]) {
    const KEYS: usize = 10_000;
    const WRITERS: usize = 4;
    let key = |w: usize, i: usize| i * WRITERS + w;
    let mut server = Server::start(extra);
    let acked = kill9_mid_stream(
        &mut server,
        WRITERS,
        KEYS / WRITERS,
        KEYS / 3,
        |_, _| {},
        move |w, i, c| {
            let k = key(w, i);
            c.try_call(&["SET", &format!("key:{k}"), &format!("value:{k}")]) == Some(Frame::ok())
        },
    );

    server.restart();
    let mut c = server.client();
    let mode = if extra.contains(&"--pipelined-sync") {
        "yes"
    } else {
        "no"
    };
    assert_eq!(
        c.call(&["CONFIG", "GET", "pipelined-sync"]),
        Frame::Array(vec![bulk("pipelined-sync"), bulk(mode)])
    );
    for &(w, i) in &acked {
        let k = key(w, i);
        assert_eq!(
            c.call(&["GET", &format!("key:{k}")]),
            bulk(&format!("value:{k}")),
            "acknowledged key:{k} lost"
        );
    }
    let Frame::Integer(n) = c.call(&["DBSIZE"]) else {
        panic!("DBSIZE is an integer")
    };
    assert!(
        n as usize >= acked.len(),
        "DBSIZE {n} < {} acknowledged",
        acked.len()
    );
}
