//! The binary's command line: help, bad configuration, a data directory already in use.

use std::process::Command;

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
