//! Real clients against the real binary: redis-cli (including --pipe mass insertion) and
//! redis-py in RESP2 and RESP3.

use std::process::Command;

use tickdb_core::resp::Frame;
use tickdb_tests::{Server, bulk, run, run_python};

fn cli(server: &Server) -> Command {
    let mut c = Command::new("redis-cli");
    c.arg("-p").arg(server.port.to_string());
    c
}

#[test]
fn redis_cli_commands_resp2_and_resp3() {
    let server = Server::start(&[]);
    assert_eq!(run(cli(&server).arg("PING")).trim(), "PONG");
    assert_eq!(
        run(cli(&server).args(["SET", "greeting", "hello world"])).trim(),
        "OK"
    );
    assert_eq!(
        run(cli(&server).args(["GET", "greeting"])).trim(),
        "hello world"
    );
    assert_eq!(run(cli(&server).args(["INCRBY", "n", "5"])).trim(), "5");
    let info = run(cli(&server).args(["INFO", "server"]));
    assert!(info.contains("redis_version:"), "{info}");
    // RESP3 (redis-cli -3 sends HELLO 3 first).
    assert_eq!(
        run(cli(&server).args(["-3", "GET", "greeting"])).trim(),
        "hello world"
    );
    let cfg = run(cli(&server).args(["-3", "CONFIG", "GET", "appendonly"]));
    assert!(cfg.contains("appendonly") && cfg.contains("yes"), "{cfg}");
    let err = run(cli(&server).args(["GET"]));
    assert!(
        err.contains("ERR wrong number of arguments for 'get' command"),
        "{err}"
    );
}

#[test]
fn redis_cli_pipe_mass_insertion() {
    let server = Server::start(&[]);
    let mut input = String::new();
    for i in 0..20_000 {
        input.push_str(&format!("SET mass:{i} {i}\r\n"));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mass.txt");
    std::fs::write(&path, input).unwrap();
    let out = run(Command::new("sh").arg("-c").arg(format!(
        "redis-cli -p {} --pipe < {}",
        server.port,
        path.display()
    )));
    assert!(out.contains("errors: 0, replies: 20000"), "{out}");
    let mut c = server.client();
    assert_eq!(c.call(&["DBSIZE"]), Frame::Integer(20_000));
    assert_eq!(c.call(&["GET", "mass:19999"]), bulk("19999"));
}

#[test]
fn redis_py_resp2_and_resp3() {
    let server = Server::start(&[]);
    let out = run_python("redis_py_basic.py", server.port);
    assert!(out.contains("RESP2 and RESP3 checks passed"), "{out}");
}

#[test]
fn redis_py_transactional_pipelines_resp2_and_resp3() {
    let server = Server::start(&[]);
    let out = run_python("redis_py_txn.py", server.port);
    assert!(
        out.contains("transaction and identity checks passed"),
        "{out}"
    );
}
