//! Raw RESP over TCP against the real binary: inline commands, pipelining, RESP3, bad input.

use tickdb_core::resp::Frame;
use tickdb_tests::{Server, bulk, err};

#[test]
fn inline_ping_and_pipelined_batches() {
    let server = Server::start(&[]);
    let mut c = server.client();
    c.send_raw(b"PING\r\n");
    assert_eq!(c.read(), Some(Frame::simple("PONG")));
    c.send_raw(b"ECHO \"hello world\"\n");
    assert_eq!(c.read(), Some(bulk("hello world")));

    let mut batch = Vec::new();
    for i in 0..500 {
        batch.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n$5\r\nk{i:04}\r\n${}\r\n{i}\r\n",
                i.to_string().len()
            )
            .as_bytes(),
        );
        batch.extend_from_slice(format!("*2\r\n$3\r\nGET\r\n$5\r\nk{i:04}\r\n").as_bytes());
    }
    c.send_raw(&batch);
    for i in 0..500 {
        assert_eq!(c.read(), Some(Frame::ok()), "SET {i}");
        assert_eq!(
            c.read(),
            Some(bulk(&i.to_string())),
            "GET {i} after its SET in the same pipeline"
        );
    }
    assert_eq!(c.call(&["DBSIZE"]), Frame::Integer(500));

    // Short inline requests, thousands to a read (more than the reader hands the node in one
    // message): every reply, in order.
    let mut batch = Vec::new();
    for _ in 0..3000 {
        batch.extend_from_slice(b"INCR n\r\n");
    }
    batch.extend_from_slice(b"GET n\r\n");
    c.send_raw(&batch);
    for i in 1..=3000 {
        assert_eq!(c.read(), Some(Frame::Integer(i)), "INCR {i}");
    }
    assert_eq!(c.read(), Some(bulk("3000")));
}

/// `--threads 1` (everything on one thread) and `--threads 2` (two workers) serve the same:
/// pipelines in order, blocking reads woken by another client's write, the setting reported.
/// Both are named, so both run whatever the default picks on this machine.
#[test]
fn one_thread_serves_pipelines_and_blocked_clients() {
    serves_pipelines_and_blocked_clients("1");
}

#[test]
fn two_workers_serve_pipelines_and_blocked_clients() {
    serves_pipelines_and_blocked_clients("2");
}

fn serves_pipelines_and_blocked_clients(threads: &str) {
    let server = Server::start(&["--threads", threads]);
    let mut c = server.client();
    assert_eq!(
        c.call(&["CONFIG", "GET", "threads"]),
        Frame::Array(vec![bulk("threads"), bulk(threads)])
    );
    let mut batch = Vec::new();
    for i in 0..2000 {
        batch.extend_from_slice(format!("TS.ADD s {} {i}\r\n", i + 1).as_bytes());
    }
    c.send_raw(&batch);
    for i in 0..2000 {
        assert_eq!(c.read(), Some(Frame::Integer(i + 1)), "TS.ADD {i}");
    }
    let mut reader = server.client();
    reader.send_raw(b"TS.READ s $ BLOCK 5000 1\r\n");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(c.call(&["TS.ADD", "s", "5000", "7"]), Frame::Integer(5000));
    let woken = reader.read().expect("the blocked reader is answered");
    assert!(format!("{woken:?}").contains("5000"), "{woken:?}");
    let newest = c.call(&["TS.GET", "s"]);
    assert!(
        matches!(&newest, Frame::Array(a) if a.first() == Some(&Frame::Integer(5000))),
        "{newest:?}"
    );
}

#[test]
fn resp3_after_hello_3() {
    let server = Server::start(&[]);
    let mut c = server.client();
    let Frame::Map(hello) = c.call(&["HELLO", "3"]) else {
        panic!("HELLO 3 replies with a map")
    };
    assert!(hello.contains(&(bulk("proto"), Frame::Integer(3))));
    assert_eq!(c.call(&["GET", "missing"]), Frame::Null);
    assert_eq!(c.call(&["INCRBYFLOAT", "f", "1.5"]), bulk("1.5"));
    let Frame::Map(cfg) = c.call(&["CONFIG", "GET", "appendonly"]) else {
        panic!("RESP3 CONFIG GET is a map")
    };
    assert_eq!(cfg, vec![(bulk("appendonly"), bulk("yes"))]);
    // A RESP2 client on the same server still gets RESP2 shapes.
    let mut c2 = server.client();
    assert_eq!(
        c2.call(&["CONFIG", "GET", "appendonly"]),
        Frame::Array(vec![bulk("appendonly"), bulk("yes")])
    );
    assert_eq!(c2.call(&["GET", "missing"]), Frame::Null);
}

#[test]
fn bad_input_gets_redis_errors_and_other_clients_are_unaffected() {
    let server = Server::start(&[]);
    let mut healthy = server.client();
    assert_eq!(healthy.call(&["SET", "k", "v"]), Frame::ok());

    let cases: &[(&[u8], &str)] = &[
        (b"*abc\r\n", "ERR Protocol error: invalid multibulk length"),
        (
            b"*99999999\r\n",
            "ERR Protocol error: invalid multibulk length",
        ),
        (b"*1\r\n$-3\r\n", "ERR Protocol error: invalid bulk length"),
        (
            b"*1\r\n$999999999999\r\n",
            "ERR Protocol error: invalid bulk length",
        ),
        (b"*2\r\n:1\r\n", "ERR Protocol error: expected '$', got ':'"),
        (
            b"SET \"unbalanced\r\n",
            "ERR Protocol error: unbalanced quotes in request",
        ),
    ];
    for (bytes, expect) in cases {
        let mut c = server.client();
        c.send_raw(bytes);
        assert_eq!(
            c.read(),
            Some(err(expect)),
            "for {:?}",
            String::from_utf8_lossy(bytes)
        );
        assert!(
            c.is_closed(),
            "the connection closes after a protocol error"
        );
    }

    // Like Redis, a multibulk count <= 0 is an empty request, not an error.
    let mut c = server.client();
    c.send_raw(b"*-5\r\n*0\r\nPING\r\n");
    assert_eq!(c.read(), Some(Frame::simple("PONG")));

    let mut c = server.client();
    assert_eq!(
        c.call(&["NOSUCH", "a"]),
        err("ERR unknown command 'NOSUCH', with args beginning with: 'a' ")
    );
    assert_eq!(
        c.call(&["GET"]),
        err("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(c.call(&["SET", "n", "abc"]), Frame::ok());
    assert_eq!(
        c.call(&["INCR", "n"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        c.call(&["INCRBY", "n", "1x"]),
        err("ERR value is not an integer or out of range")
    );
    // Errors are answers, not disconnects.
    assert_eq!(c.call(&["PING"]), Frame::simple("PONG"));
    assert_eq!(healthy.call(&["GET", "k"]), bulk("v"));

    let mut c = server.client();
    c.send_raw(&vec![b'x'; 70 * 1024]);
    assert_eq!(
        c.read(),
        Some(err("ERR Protocol error: too big inline request"))
    );
    assert_eq!(healthy.call(&["GET", "k"]), bulk("v"));
}

#[test]
fn max_connections_and_graceful_shutdown() {
    let mut server = Server::start(&["--max-connections", "2"]);
    // The start-up probe's connection is closed, but the server may not have counted it gone
    // yet, nor even seen it arrive (each accepted connection announces itself from its own
    // task, so the probe may register after `a`); with at most two slots, `a` fits either way.
    // Wait until the server has seen both connections and `a` is the only client left before
    // taking the second slot.
    let mut a = server.client();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let Frame::Bulk(info) = a.call(&["INFO", "all"]) else {
            panic!("INFO answers a bulk string")
        };
        let info = String::from_utf8_lossy(&info);
        if info.contains("connected_clients:1\r\n")
            && info.contains("total_connections_received:2\r\n")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the probe connection was never counted gone: {info:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut b = server.client();
    assert_eq!(a.call(&["PING"]), Frame::simple("PONG"));
    assert_eq!(b.call(&["PING"]), Frame::simple("PONG"));
    let mut c = server.client();
    assert_eq!(c.read(), Some(err("ERR max number of clients reached")));
    assert!(c.is_closed());
    assert_eq!(a.call(&["SET", "kept", "yes"]), Frame::ok());
    drop(b);

    let status = server.terminate();
    assert!(status.success(), "SIGTERM exits 0, got {status}");
    assert!(server.log().contains("stopped cleanly"), "{}", server.log());
    server.restart();
    assert_eq!(server.client().call(&["GET", "kept"]), bulk("yes"));
}

#[test]
fn requirepass_protects_the_server() {
    let server = Server::start(&["--requirepass", "hunter2"]);
    let mut c = server.client();
    assert_eq!(
        c.call(&["SET", "a", "1"]),
        err("NOAUTH Authentication required.")
    );
    assert_eq!(
        c.call(&["AUTH", "nope"]),
        err("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(c.call(&["AUTH", "hunter2"]), Frame::ok());
    assert_eq!(c.call(&["SET", "a", "1"]), Frame::ok());
}

#[test]
fn idle_clients_are_disconnected_and_active_ones_are_not() {
    let server = Server::start(&["--idle-timeout", "1"]);
    let mut idle = server.client();
    let mut active = server.client();
    assert_eq!(idle.call(&["PING"]), Frame::simple("PONG"));
    for _ in 0..6 {
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(active.call(&["PING"]), Frame::simple("PONG"));
    }
    assert!(
        idle.is_closed(),
        "a client silent for longer than --idle-timeout is closed"
    );
    assert_eq!(active.call(&["PING"]), Frame::simple("PONG"));
}
