//! The binary's command line: help, bad configuration, a data directory already in use.

use std::process::Command;

use tickdb_tests::terminal::Terminal;
use tickdb_tests::{Server, binary};

#[test]
fn help_explains_every_option() {
    let out = Command::new(binary()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--config",
        "--port",
        "--bind",
        "--data-dir",
        "--node-id",
        "--max-connections",
        "--idle-timeout",
        "--requirepass",
        "--block-cache-mb",
        "--cluster-nodes",
        "--cluster-port",
        "--cluster-id",
        "--heartbeat-ms",
        "--election-timeout-ms",
        "--request-timeout-ms",
        "RUST_LOG",
    ] {
        assert!(help.contains(opt), "--help does not mention {opt}:\n{help}");
    }
}

#[test]
fn bad_config_fails_fast_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tickdb.toml");
    std::fs::write(&cfg, "prot = 6379\n").unwrap();
    let out = Command::new(binary())
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown field") && err.contains("prot"),
        "{err}"
    );

    let out = Command::new(binary())
        .args(["--port", "notaport"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value"));
}

#[test]
fn a_bad_cluster_configuration_fails_fast_naming_the_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let members = "1=127.0.0.1:6379@5555,2=127.0.0.1:6380@5556";
    for (args, expected) in [
        (
            vec!["--node-id", "3", "--cluster-nodes", members],
            "does not list this node's own id 3",
        ),
        (
            vec![
                "--cluster-nodes",
                "1=127.0.0.1:6379@5555,1=127.0.0.1:6380@5556",
            ],
            "lists node id 1 twice",
        ),
        (
            vec!["--cluster-nodes", "1=127.0.0.1:6379/5555"],
            "expected ID=IP:PORT@CPORT",
        ),
        (
            vec!["--cluster-nodes", members, "--cluster-port", "5556"],
            "cluster_port is 5556",
        ),
        (vec!["--node-id", "one"], "invalid value"),
    ] {
        let out = Command::new(binary())
            .args(&args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[test]
fn a_data_directory_in_use_is_refused() {
    let server = Server::start(&[]);
    let out = Command::new(binary())
        .arg("--port")
        .arg(tickdb_tests::free_port().to_string())
        .arg("--data-dir")
        .arg(&server.data_dir)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a second process must not open the same data directory"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("opening the store") && err.to_lowercase().contains("lock"),
        "{err}"
    );
}

/// What a person does first: starts redis-cli, sees the prompt and the argument hints, runs
/// string, time-series and transaction commands, and quits, in RESP2 and RESP3.
#[test]
fn interactive_redis_cli_shows_hints_runs_commands_and_exits() {
    let server = Server::start(&[]);
    for (flag, proto) in [("", "2"), ("-3", "3")] {
        let term = Terminal::start(&format!("redis-cli {flag} -p {}", server.port));
        let prompt = format!("127.0.0.1:{}>", server.port);
        term.wait_for(&prompt);
        // Hints come from COMMAND DOCS: typing a command name shows its arguments.
        term.type_text("TS.ADD ");
        let screen = term.wait_for("key timestamp value");
        assert!(screen.contains("[RETENTION retentionPeriod]"), "{screen}");
        term.type_text(&format!("tick{proto} 1000 1.5"));
        term.enter();
        term.wait_for("(integer) 1000");
        term.type_text("SET ");
        term.wait_for("key value [NX|XX]");
        term.type_text(&format!("greeting{proto} hello"));
        term.enter();
        term.wait_for("OK");
        term.run(&format!("GET greeting{proto}"), "\"hello\"");
        term.run(&format!("TS.GET tick{proto}"), "1) (integer) 1000");
        term.run("MULTI", "OK");
        term.run(&format!("INCR counter{proto}"), "QUEUED");
        term.run(&format!("TS.ADD tick{proto} 2000 2"), "QUEUED");
        let screen = term.run("EXEC", "2) (integer) 2000");
        assert!(screen.contains("1) (integer) 1"), "{screen}");
        term.run("HELP TS.RANGE", "fromTimestamp toTimestamp");
        term.type_text("QUIT");
        term.enter();
        let screen = term.wait_for("EXITED");
        assert!(
            screen.contains("EXITED 0"),
            "redis-cli {flag} did not exit cleanly:\n{screen}"
        );
        assert!(!screen.contains("Assertion"), "{screen}");
    }
}

/// `echo CMD | redis-cli`: redis-cli reads COMMAND DOCS first here too.
#[test]
fn redis_cli_reading_commands_from_a_pipe() {
    let server = Server::start(&[]);
    let sh = |input: &str, flags: &str| {
        tickdb_tests::run(Command::new("sh").arg("-c").arg(format!(
            "printf '{input}' | redis-cli {flags} -p {}",
            server.port
        )))
    };
    assert_eq!(sh("PING\\n", "").trim(), "PONG");
    assert_eq!(sh("PING\\n", "-3").trim(), "PONG");
    let out = sh("TS.ADD s 1 2\\nTS.GET s\\nSET a b\\nGET a\\n", "");
    assert_eq!(
        out.trim().lines().collect::<Vec<_>>(),
        ["1", "1", "2", "OK", "b"]
    );
}

/// The replies redis-cli and redis-py read when they connect, compared byte for byte with
/// what Redis 7 sends (captured from Debian's redis-server 7.0.15).
#[test]
fn connect_time_replies_have_redis_types() {
    use std::io::{Read as _, Write as _};
    let server = Server::start(&[]);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .unwrap();
    let mut call = |req: &str| -> Vec<u8> {
        let args: Vec<&[u8]> = req.split(' ').map(str::as_bytes).collect();
        let mut out = Vec::new();
        tickdb_core::resp::encode_request(&args, &mut out);
        s.write_all(&out).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        let deadline = std::time::Instant::now() + tickdb_tests::terminal::SCREEN_TIMEOUT;
        // Read until the reply stops growing.
        while std::time::Instant::now() < deadline {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) if !got.is_empty() => break,
                Err(_) => {}
            }
        }
        got
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let get_args = "$9\r\narguments\r\n*1\r\n*6\r\n$4\r\nname\r\n$3\r\nkey\r\n$4\r\ntype\r\n$3\r\nkey\r\n$14\r\nkey_spec_index\r\n:0\r\n";
    let docs = text(&call("COMMAND DOCS get"));
    assert!(
        docs.starts_with("*2\r\n$3\r\nget\r\n*8\r\n$7\r\nsummary\r\n$"),
        "{docs:?}"
    );
    assert!(docs.ends_with(get_args), "{docs:?}");
    let docs = text(&call("COMMAND DOCS mget"));
    assert!(
        docs.ends_with("$5\r\nflags\r\n*1\r\n+multiple\r\n"),
        "{docs:?}"
    );
    let info = text(&call("COMMAND INFO get"));
    assert_eq!(
        info,
        "*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*1\r\n+@string\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*1\r\n+RO\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n"
    );
    let count = text(&call("COMMAND COUNT"));
    assert!(
        count.starts_with(':') && count.ends_with("\r\n"),
        "{count:?}"
    );
    let hello = text(&call("HELLO 2"));
    assert!(
        hello.starts_with("*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n8.10.0\r\n$5\r\nproto\r\n:2\r\n$2\r\nid\r\n:"),
        "{hello:?}"
    );
    assert!(
        hello.ends_with("$7\r\nmodules\r\n*1\r\n*8\r\n$4\r\nname\r\n$10\r\ntimeseries\r\n$3\r\nver\r\n:81000\r\n$4\r\npath\r\n$7\r\nbuiltin\r\n$4\r\nargs\r\n*0\r\n"),
        "{hello:?}"
    );
    assert_eq!(
        text(&call("CONFIG GET appendonly")),
        "*2\r\n$10\r\nappendonly\r\n$3\r\nyes\r\n"
    );
    let info = text(&call("INFO server"));
    assert!(
        info.starts_with('$') && info.contains("\r\n# Server\r\nredis_version:8.10.0\r\n"),
        "{info:?}"
    );
    assert!(
        info.contains("\r\narch_bits:64\r\n") && info.contains("\r\nos:Linux "),
        "{info:?}"
    );
    assert_eq!(
        text(&call("MODULE LIST")),
        "*1\r\n*8\r\n$4\r\nname\r\n$10\r\ntimeseries\r\n$3\r\nver\r\n:81000\r\n$4\r\npath\r\n$7\r\nbuiltin\r\n$4\r\nargs\r\n*0\r\n"
    );
    // RESP3: maps, sets and verbatim text where Redis sends them.
    let hello = text(&call("HELLO 3"));
    assert!(hello.starts_with("%7\r\n$6\r\nserver\r\n"), "{hello:?}");
    let docs = text(&call("COMMAND DOCS get"));
    assert!(
        docs.starts_with("%1\r\n$3\r\nget\r\n%4\r\n$7\r\nsummary\r\n$"),
        "{docs:?}"
    );
    assert!(
        docs.ends_with("$9\r\narguments\r\n*1\r\n%3\r\n$4\r\nname\r\n$3\r\nkey\r\n$4\r\ntype\r\n$3\r\nkey\r\n$14\r\nkey_spec_index\r\n:0\r\n"),
        "{docs:?}"
    );
    let info = text(&call("COMMAND INFO get"));
    assert!(
        info.starts_with("*1\r\n*10\r\n$3\r\nget\r\n:2\r\n~2\r\n+readonly\r\n+fast\r\n"),
        "{info:?}"
    );
    assert!(
        info.contains("~1\r\n%3\r\n$5\r\nflags\r\n~1\r\n+RO\r\n$12\r\nbegin_search\r\n%2\r\n"),
        "{info:?}"
    );
    assert_eq!(
        text(&call("CONFIG GET appendonly")),
        "%1\r\n$10\r\nappendonly\r\n$3\r\nyes\r\n"
    );
    assert!(text(&call("INFO server")).starts_with("="), "verbatim text");
    assert!(
        text(&call("MODULE LIST")).starts_with("*1\r\n%4\r\n$4\r\nname\r\n$10\r\ntimeseries\r\n"),
    );
}
