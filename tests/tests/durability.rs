//! Acknowledged writes survive `kill -9`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tickdb_core::resp::Frame;
use tickdb_tests::{Client, Server, bulk};

#[test]
fn every_acknowledged_write_survives_kill_9() {
    const KEYS: usize = 10_000;
    const WRITERS: usize = 4;
    let mut server = Server::start(&[]);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for w in 0..WRITERS {
        let (acked, stop, port) = (Arc::clone(&acked), Arc::clone(&stop), server.port);
        threads.push(std::thread::spawn(move || {
            let mut c = Client::connect(port);
            for i in (w..KEYS).step_by(WRITERS) {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let key = format!("key:{i}");
                let value = format!("value:{i}");
                c.send(&["SET", &key, &value]);
                match c.read() {
                    Some(f) if f == Frame::ok() => acked.lock().unwrap().push(i),
                    _ => break,
                }
            }
        }));
    }
    // Let a good part of the stream be acknowledged, then crash the server mid-stream.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < KEYS / 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= KEYS / 3,
        "only {} writes acknowledged before the deadline",
        acked.len()
    );

    server.restart();
    let mut c = server.client();
    for i in &acked {
        assert_eq!(
            c.call(&["GET", &format!("key:{i}")]),
            bulk(&format!("value:{i}")),
            "acknowledged key:{i} lost"
        );
    }
    let Frame::Integer(n) = c.call(&["DBSIZE"]) else {
        panic!()
    };
    assert!(
        n as usize >= acked.len(),
        "DBSIZE {n} < {} acknowledged",
        acked.len()
    );
}
