//! Node tests on a virtual clock and an in-memory store with crash semantics.

use bytes::Bytes;

use super::write::{Members, group_proposals};
use super::*;
use crate::cmd::test_args as args;
use crate::store::{FailingStore, MemStore};

struct Harness {
    node: Node<MemStore>,
    now: Instant,
}

fn bulk(s: &str) -> Frame {
    Frame::bulk(Bytes::copy_from_slice(s.as_bytes()))
}

impl Harness {
    fn new(config: NodeConfig) -> Self {
        Self::on(config, MemStore::new())
    }

    fn on(config: NodeConfig, store: MemStore) -> Self {
        let now = Instant::from_millis(1);
        Self {
            node: Node::new(config, store, now).unwrap(),
            now,
        }
    }

    fn connect(&mut self, id: u64) {
        let input = Input::Connect {
            conn: ConnId(id),
            kind: ConnKind::Tcp,
            addr: format!("127.0.0.1:{id}"),
        };
        self.node.handle_input(self.now, input);
        self.node.check_invariants();
    }

    /// A node with the keyspace events of `classes` on, client 1 to run commands and client 2
    /// subscribed to `channel`.
    fn watching(classes: &str, channel: &str) -> Self {
        let mut h = Self::new(NodeConfig::default());
        h.connect(1);
        h.connect(2);
        let config = format!("CONFIG SET notify-keyspace-events {classes}");
        assert_eq!(h.call(1, &config), Frame::ok());
        h.send(2, &format!("SUBSCRIBE {channel}"));
        let _ = h.drain();
        h
    }

    fn send(&mut self, id: u64, line: &str) {
        let input = Input::Request {
            conn: ConnId(id),
            args: args(line),
            wire_bytes: 10,
            unix: UnixMillis(1_700_000_000_123),
        };
        self.node.handle_input(self.now, input);
        self.node.check_invariants();
    }

    fn drain(&mut self) -> Vec<Output> {
        // A run of `+OK`s as its replies one by one, so the tests read them as any other
        // replies (`oks_to_one_connection_are_one_output` holds the run itself).
        let outs = std::iter::from_fn(|| self.node.poll_output())
            .take(1_000_000)
            .flat_map(Output::expand_oks)
            .collect();
        self.node.check_invariants();
        outs
    }

    /// Sends one request and returns its one reply frame.
    fn call(&mut self, id: u64, line: &str) -> Frame {
        self.send(id, line);
        let outs = self.drain();
        assert_eq!(outs.len(), 1, "{line}: {outs:?}");
        match outs.into_iter().next() {
            Some(Output::Reply { frame, .. }) => frame,
            other => panic!("{line}: {other:?}"),
        }
    }
}

fn replies(outs: &[Output], id: u64) -> Vec<Frame> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Reply { conn, frame, .. } if conn.0 == id => Some(frame.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn pipelined_write_then_read_sees_the_write_in_order() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    h.send(1, "SET k v1");
    h.send(1, "GET k");
    h.send(1, "SET k v2");
    h.send(1, "INCR n");
    h.send(1, "GET k");
    let outs = h.drain();
    assert_eq!(
        replies(&outs, 1),
        vec![
            Frame::ok(),
            bulk("v1"),
            Frame::ok(),
            Frame::Integer(1),
            bulk("v2")
        ]
    );
}

#[test]
fn writes_from_many_connections_share_one_sync() {
    let mut h = Harness::new(NodeConfig::default());
    for id in 1..=20 {
        h.connect(id);
        h.send(id, &format!("SET key{id} {id}"));
    }
    let syncs_before = h.node.store().sync_count();
    let writes_before = h.node.store().write_count();
    let outs = h.drain();
    assert_eq!(outs.len(), 20);
    assert_eq!(
        h.node.store().sync_count() - syncs_before,
        1,
        "group commit: one sync for 20 writes"
    );
    assert_eq!(
        h.node.store().write_count() - writes_before,
        1,
        "one store write appends the 20 log entries; applying them writes nothing until a \
         checkpoint (the log is their durable record)"
    );
}

#[test]
fn no_acknowledgement_before_sync_and_acknowledged_writes_survive_a_crash() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    assert_eq!(h.call(1, "SET a 1"), Frame::ok());
    h.send(1, "SET b 2");
    // Crash before the driver drained outputs: `b` was never acknowledged.
    let mut store = h.node.store().clone();
    store.crash();
    let mut h = Harness::on(NodeConfig::default(), store);
    h.connect(1);
    assert_eq!(h.call(1, "GET a"), bulk("1"));
    assert_eq!(h.call(1, "GET b"), Frame::Null);
    assert_eq!(h.call(1, "DBSIZE"), Frame::Integer(1));
}

#[test]
fn entries_synced_but_not_applied_are_applied_on_restart() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    h.send(1, "SET a 1");
    h.send(1, "INCR n");
    // Make the log durable without applying (as if the process died right after the sync).
    h.node.propose_round();
    h.node.raft.flush(&mut h.node.store, h.now).unwrap();
    let mut store = h.node.store().clone();
    store.crash();
    let mut h = Harness::on(NodeConfig::default(), store);
    h.connect(1);
    assert_eq!(h.call(1, "GET a"), bulk("1"));
    assert_eq!(h.call(1, "GET n"), bulk("1"));
    assert_eq!(
        h.call(1, "INCR n"),
        Frame::Integer(2),
        "the replayed entry applies exactly once"
    );
}

/// Between checkpoints a crash replays the log after the last one; a clean stop
/// (`Node::sync`) writes a checkpoint, makes it durable and compacts the log behind it, so the
/// next start has nothing to replay and the store holds the state once.
#[test]
fn held_state_replays_after_a_crash_and_a_clean_stop_leaves_no_log() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    for i in 1..=5 {
        assert_eq!(h.call(1, "INCR n"), Frame::Integer(i));
    }
    let applied = h.node.applied;
    assert!(
        h.node.store.checkpointed() < applied,
        "the applied state is held, not yet written"
    );
    let mut crashed = h.node.store().clone();
    crashed.crash();
    let mut r = Harness::on(NodeConfig::default(), crashed);
    r.connect(1);
    assert_eq!(r.call(1, "INCR n"), Frame::Integer(6), "replayed once each");

    h.node.sync().unwrap();
    let status = h.node.raft.status();
    assert_eq!(h.node.store.checkpointed(), applied);
    assert_eq!(
        status.snapshot_index, applied,
        "the log is compacted behind it"
    );
    let mut stopped = h.node.store().clone();
    stopped.crash();
    assert_eq!(
        crate::store::StoreRead::scan(&stopped, crate::store::Space::Log, b"", None, false).count(),
        0,
        "no log entry is left to replay"
    );
    let mut h = Harness::on(NodeConfig::default(), stopped);
    h.connect(1);
    assert_eq!(h.call(1, "INCR n"), Frame::Integer(6));
}

#[test]
fn hello_switches_protocol_and_reports_the_server() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    h.send(1, "HELLO 3 SETNAME app");
    let outs = h.drain();
    let Output::Reply {
        frame: Frame::Map(fields),
        protocol,
        ..
    } = &outs[0]
    else {
        panic!("{outs:?}")
    };
    assert_eq!(*protocol, Protocol::Resp3);
    assert!(fields.contains(&(Frame::text("proto"), Frame::Integer(3))));
    assert_eq!(h.call(1, "CLIENT GETNAME"), bulk("app"));
    assert_eq!(
        h.call(1, "HELLO 4"),
        Frame::error("NOPROTO unsupported protocol version")
    );
}

#[test]
fn requirepass_gates_commands_until_auth() {
    let config = NodeConfig {
        requirepass: Some(Bytes::from_static(b"s3cret")),
        ..NodeConfig::default()
    };
    let mut h = Harness::new(config);
    h.connect(1);
    assert_eq!(
        h.call(1, "GET k"),
        Frame::error("NOAUTH Authentication required.")
    );
    assert_eq!(
        h.call(1, "AUTH wrong"),
        Frame::error("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(h.call(1, "AUTH default s3cret"), Frame::ok());
    assert_eq!(h.call(1, "GET k"), Frame::Null);
}

#[test]
fn max_clients_refuses_with_redis_error_and_closes() {
    let mut h = Harness::new(NodeConfig {
        max_clients: 1,
        ..NodeConfig::default()
    });
    h.connect(1);
    h.connect(2);
    let outs = h.drain();
    assert_eq!(
        replies(&outs, 2),
        vec![Frame::error("ERR max number of clients reached")]
    );
    assert_eq!(outs.last(), Some(&Output::Close { conn: ConnId(2) }));
    assert_eq!(h.call(1, "PING"), Frame::simple("PONG"));
}

#[test]
fn protocol_error_comes_after_owed_replies_then_closes() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    h.send(1, "SET a 1");
    h.node.handle_input(
        h.now,
        Input::ProtocolError {
            conn: ConnId(1),
            error: "Protocol error: invalid bulk length".into(),
        },
    );
    h.send(1, "GET a");
    let outs = h.drain();
    assert_eq!(
        outs,
        vec![
            Output::Reply {
                conn: ConnId(1),
                frame: Frame::ok(),
                protocol: Protocol::Resp2
            },
            Output::Reply {
                conn: ConnId(1),
                frame: Frame::error("ERR Protocol error: invalid bulk length"),
                protocol: Protocol::Resp2
            },
            Output::Close { conn: ConnId(1) },
        ]
    );
}

#[test]
fn quit_replies_ok_then_closes_and_ignores_the_rest() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    h.send(1, "QUIT");
    h.send(1, "PING");
    let outs = h.drain();
    assert_eq!(
        outs,
        vec![
            Output::Reply {
                conn: ConnId(1),
                frame: Frame::ok(),
                protocol: Protocol::Resp2
            },
            Output::Close { conn: ConnId(1) },
        ]
    );
}

#[test]
fn info_and_command_introspection() {
    let mut h = Harness::new(NodeConfig {
        node_id: "n1".into(),
        ..NodeConfig::default()
    });
    h.connect(1);
    h.call(1, "SET a 1");
    let Frame::Verbatim { text, .. } = h.call(1, "INFO") else {
        panic!()
    };
    let text = String::from_utf8(text.to_vec()).unwrap();
    for needle in [
        "redis_version:8.10.0",
        "arch_bits:64",
        "\r\nos:",
        "# Modules\r\nmodule:name=timeseries,ver=81000,api=1,filters=0,usedby=[],using=[],options=[]\r\n",
        "connected_clients:1",
        "total_commands_processed:2",
        "rdb_bgsave_in_progress:0",
        "db0:keys=1",
    ] {
        assert!(text.contains(needle), "INFO lacks {needle}: {text}");
    }
    assert_eq!(
        h.call(1, "COMMAND COUNT"),
        Frame::Integer(cmd::COMMANDS.len() as i64)
    );
    assert_eq!(
        h.call(1, "COMMAND GETKEYS MSET a 1 b 2"),
        Frame::Array(vec![bulk("a"), bulk("b")])
    );
    assert_eq!(
        h.call(1, "COMMAND GETKEYS PING"),
        Frame::error("ERR The command has no key arguments")
    );
    let Frame::Array(info) = h.call(1, "COMMAND INFO get nosuch") else {
        panic!()
    };
    assert_eq!(info[1], Frame::NullArray);
    let Frame::Array(get) = &info[0] else {
        panic!()
    };
    assert_eq!(get[1], Frame::Integer(2));
}

#[test]
fn client_that_pipelines_without_reading_is_bounded() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    h.send(1, "SET a 1");
    for _ in 0..DEFERRED_MAX_PER_CONN {
        h.send(1, "GET a");
    }
    h.send(1, "GET a");
    let outs = h.drain();
    assert!(
        matches!(outs.first(), Some(Output::Close { .. })),
        "closed once the bound is passed"
    );
}

#[test]
fn a_failed_sync_acknowledges_nothing_and_stops_writes_without_hanging() {
    let now = Instant::from_millis(1);
    let mut node = Node::new(NodeConfig::default(), FailingStore::default(), now).unwrap();
    let unix = UnixMillis(1);
    node.handle_input(
        now,
        Input::Connect {
            conn: ConnId(1),
            kind: ConnKind::Tcp,
            addr: "a".into(),
        },
    );
    let req = |line: &str| Input::Request {
        conn: ConnId(1),
        args: args(line),
        wire_bytes: 1,
        unix,
    };
    node.handle_input(now, req("SET a 1"));
    assert!(std::iter::from_fn(|| node.poll_output()).take(10).count() == 1);
    node.store.inner_mut().fail_syncs = true;
    // A read pipelined behind the failing write must still be answered, in order.
    node.handle_input(now, req("SET b 2"));
    node.handle_input(now, req("GET a"));
    node.handle_input(now, req("INCR n"));
    let outs: Vec<Output> = std::iter::from_fn(|| node.poll_output())
        .take(100)
        .collect();
    assert_eq!(
        outs.len(),
        3,
        "one reply per request, then poll_output ends: {outs:?}"
    );
    for out in &outs {
        let Output::Reply {
            frame: Frame::Error(e),
            ..
        } = out
        else {
            panic!("{out:?}")
        };
        assert!(
            String::from_utf8_lossy(e).contains("No space left on device"),
            "{out:?}"
        );
    }
    node.handle_input(now, req("PING"));
    assert_eq!(
        node.poll_output(),
        Some(Output::Reply {
            conn: ConnId(1),
            frame: Frame::simple("PONG"),
            protocol: Protocol::Resp2
        })
    );
    assert_eq!(node.poll_output(), None);
}

/// A run of `+OK`s to one connection is one output, whichever command answered them; a reply
/// to another connection, or any other reply, between two `+OK`s ends the run. Expanded, the
/// outputs are the replies one by one, in order.
#[test]
fn oks_to_one_connection_are_one_output() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    h.connect(2);
    let script = [
        (1, "BATCH_SET k 1 1"),
        (1, "BATCH_SET k 1 2"),
        (1, "BATCH_SET k 1 3"),
        (2, "BATCH_SET j 1 1"),
        (1, "BATCH_SET k 1 4"),
        (1, "PING"),
        (1, "BATCH_SET k 1 5"),
        (1, "BATCH_SET k 1 6"),
        (1, "BATCH_SET k 1 oops"),
        (1, "BATCH_SET k 1 7"),
    ];
    for (conn, line) in script {
        h.send(conn, line);
    }
    let outs: Vec<Output> = std::iter::from_fn(|| h.node.poll_output()).collect();
    let reply = |conn, frame| Output::Reply {
        conn: ConnId(conn),
        frame,
        protocol: Protocol::Resp2,
    };
    let oks = |count| Output::Oks {
        conn: ConnId(1),
        count,
    };
    assert!(
        matches!(&outs[..], [
            o1, o2, o3, o4, o5, Output::Reply { frame: Frame::Error(_), .. }, o7,
        ] if *o1 == oks(3) && *o2 == reply(2, Frame::ok()) && *o3 == reply(1, Frame::ok())
            && *o4 == reply(1, Frame::simple("PONG")) && *o5 == oks(2)
            && *o7 == reply(1, Frame::ok())),
        "{outs:?}"
    );
    let expanded: Vec<Output> = outs.into_iter().flat_map(Output::expand_oks).collect();
    assert_eq!(expanded.len(), 10);
    assert_eq!(
        &expanded[..4],
        [
            reply(1, Frame::ok()),
            reply(1, Frame::ok()),
            reply(1, Frame::ok()),
            reply(2, Frame::ok())
        ]
    );
    assert_eq!(
        &expanded[6..8],
        [reply(1, Frame::ok()), reply(1, Frame::ok())]
    );
}

#[test]
fn batch_set_buffer_is_bounded_and_reset_drops_it() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    for i in 0..BATCH_MAX_SAMPLES {
        let input = Input::Request {
            conn: ConnId(1),
            args: args(&format!("BATCH_SET k 1.5 {i}")),
            wire_bytes: 1,
            unix: UnixMillis(1),
        };
        h.node.handle_input(h.now, input);
    }
    assert_eq!(
        std::iter::from_fn(|| h.node.poll_output()).collect::<Vec<_>>(),
        [Output::Oks {
            conn: ConnId(1),
            count: BATCH_MAX_SAMPLES as u32
        }],
        "every buffered sample is acknowledged, in one run of +OKs"
    );
    let Frame::Error(e) = h.call(1, "BATCH_SET k 1.5 0") else {
        panic!("the full buffer refuses")
    };
    assert!(
        String::from_utf8_lossy(&e).contains("BATCH_SET buffer is full"),
        "{e:?}"
    );
    assert_eq!(h.call(1, "RESET"), Frame::simple("RESET"));
    assert_eq!(
        h.call(1, "BATCH_FLUSH"),
        Frame::Integer(0),
        "RESET dropped the buffer"
    );
    assert_eq!(
        h.call(1, "BATCH_SET k 1.5 7"),
        Frame::ok(),
        "room again after RESET"
    );
}

#[test]
fn module_list_and_hello_name_the_timeseries_module() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    let module = Frame::Map(vec![
        (bulk("name"), bulk("timeseries")),
        (bulk("ver"), Frame::Integer(TIMESERIES_VERSION)),
        (bulk("path"), bulk("builtin")),
        (bulk("args"), Frame::Array(vec![])),
    ]);
    assert_eq!(h.call(1, "MODULE LIST"), Frame::Array(vec![module.clone()]));
    let Frame::Map(hello) = h.call(1, "HELLO 3") else {
        panic!()
    };
    assert!(hello.contains(&(bulk("modules"), Frame::Array(vec![module]))));
    assert!(hello.contains(&(bulk("version"), bulk(REDIS_COMPAT_VERSION))));
    assert_eq!(
        h.call(1, "MODULE FOO"),
        Frame::error("ERR unknown subcommand 'FOO'. Try MODULE HELP.")
    );
}

#[test]
fn multi_exec_queues_then_applies_in_order_with_reads() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    assert_eq!(h.call(1, "EXEC"), Frame::error("ERR EXEC without MULTI"));
    assert_eq!(
        h.call(1, "DISCARD"),
        Frame::error("ERR DISCARD without MULTI")
    );
    assert_eq!(h.call(1, "MULTI"), Frame::ok());
    assert_eq!(
        h.call(1, "MULTI"),
        Frame::error("ERR MULTI calls can not be nested")
    );
    assert_eq!(
        h.call(1, "WATCH k"),
        Frame::error("ERR WATCH inside MULTI is not allowed")
    );
    for line in [
        "SET a 1",
        "INCRBY a x",
        "GET a",
        "INCR a",
        "TS.ADD s 10 1.5",
        "TS.RANGE s - +",
        "PING",
        "ECHO hi",
    ] {
        assert_eq!(h.call(1, line), Frame::simple("QUEUED"), "{line}");
    }
    assert_eq!(
        h.call(1, "EXEC"),
        Frame::Array(vec![
            Frame::ok(),
            Frame::error("ERR value is not an integer or out of range"),
            bulk("1"),
            Frame::Integer(2),
            Frame::Integer(10),
            // RESP2 connection: the value as RedisTimeSeries sends it there.
            Frame::Array(vec![Frame::Array(vec![
                Frame::Integer(10),
                Frame::simple("1.5")
            ])]),
            Frame::simple("PONG"),
            bulk("hi"),
        ])
    );
    assert_eq!(h.call(1, "GET a"), bulk("2"));
    // An empty transaction answers an empty array.
    assert_eq!(h.call(1, "MULTI"), Frame::ok());
    assert_eq!(h.call(1, "EXEC"), Frame::Array(vec![]));
}

#[test]
fn queue_time_errors_abort_exec_and_discard_drops_the_queue() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    assert_eq!(h.call(1, "MULTI"), Frame::ok());
    assert_eq!(h.call(1, "SET a 1"), Frame::simple("QUEUED"));
    assert_eq!(
        h.call(1, "NOSUCH x"),
        Frame::error("ERR unknown command 'NOSUCH', with args beginning with: 'x' ")
    );
    assert_eq!(
        h.call(1, "GET"),
        Frame::error("ERR wrong number of arguments for 'get' command")
    );
    assert!(
        h.call(1, "CLIENT ID").is_error(),
        "node-local commands are refused"
    );
    assert_eq!(
        h.call(1, "EXEC"),
        Frame::error("EXECABORT Transaction discarded because of previous errors.")
    );
    assert_eq!(h.call(1, "GET a"), Frame::Null, "nothing ran");
    assert_eq!(h.call(1, "MULTI"), Frame::ok());
    assert_eq!(h.call(1, "SET a 1"), Frame::simple("QUEUED"));
    assert_eq!(h.call(1, "DISCARD"), Frame::ok());
    assert_eq!(h.call(1, "GET a"), Frame::Null);
    assert_eq!(h.call(1, "EXEC"), Frame::error("ERR EXEC without MULTI"));
}

#[test]
fn a_watched_key_changed_by_another_client_makes_exec_answer_nil() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    h.connect(2);
    h.call(1, "SET k 1");
    assert_eq!(h.call(1, "WATCH k other"), Frame::ok());
    assert_eq!(h.call(2, "SET k 2"), Frame::ok());
    assert_eq!(h.call(1, "MULTI"), Frame::ok());
    assert_eq!(h.call(1, "SET k 3"), Frame::simple("QUEUED"));
    assert_eq!(h.call(1, "EXEC"), Frame::NullArray);
    assert_eq!(h.call(1, "GET k"), bulk("2"), "the aborted SET did not run");
    // EXEC unwatched everything: the same transaction now runs.
    assert_eq!(h.call(1, "MULTI"), Frame::ok());
    assert_eq!(h.call(1, "SET k 3"), Frame::simple("QUEUED"));
    assert_eq!(h.call(1, "EXEC"), Frame::Array(vec![Frame::ok()]));
    assert_eq!(h.call(1, "WATCH a b"), Frame::ok());
    assert_eq!(h.call(1, "MULTI"), Frame::ok());
    assert_eq!(h.call(1, "GET a"), Frame::simple("QUEUED"));
    let Frame::Verbatim { text, .. } = h.call(2, "CLIENT LIST") else {
        panic!()
    };
    let text = String::from_utf8_lossy(&text).into_owned();
    assert!(
        text.contains(" flags=x db=0 sub=0 psub=0 ssub=0 multi=1 watch=2 "),
        "{text}"
    );
    assert_eq!(h.call(1, "DISCARD"), Frame::ok());
    // Unchanged watched keys (and a write to an unwatched one) let it run.
    assert_eq!(h.call(1, "WATCH k"), Frame::ok());
    assert_eq!(h.call(2, "SET unrelated 1"), Frame::ok());
    assert_eq!(h.call(1, "MULTI"), Frame::ok());
    assert_eq!(h.call(1, "GET k"), Frame::simple("QUEUED"));
    assert_eq!(h.call(1, "EXEC"), Frame::Array(vec![bulk("3")]));
    // UNWATCH forgets; a series changed through TS.ADD counts as a change.
    h.call(1, "TS.ADD s 1 1");
    assert_eq!(h.call(1, "WATCH s"), Frame::ok());
    assert_eq!(h.call(1, "UNWATCH"), Frame::ok());
    h.call(2, "TS.ADD s 2 2");
    assert_eq!(h.call(1, "MULTI"), Frame::ok());
    assert_eq!(h.call(1, "TS.GET s"), Frame::simple("QUEUED"));
    assert!(matches!(h.call(1, "EXEC"), Frame::Array(_)));
    assert_eq!(h.call(1, "WATCH s"), Frame::ok());
    h.call(2, "TS.ADD s 3 3");
    assert_eq!(h.call(1, "MULTI"), Frame::ok());
    assert_eq!(h.call(1, "TS.GET s"), Frame::simple("QUEUED"));
    assert_eq!(h.call(1, "EXEC"), Frame::NullArray);
    // A watched key deleted, or a missing one created, counts too.
    assert_eq!(h.call(1, "WATCH k nope"), Frame::ok());
    h.call(2, "SET nope 1");
    assert_eq!(h.call(1, "MULTI"), Frame::ok());
    assert_eq!(h.call(1, "EXEC"), Frame::NullArray);
}

#[test]
fn a_transaction_is_one_log_entry_and_survives_a_restart() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    let before = h.node.raft.last_index();
    h.send(1, "MULTI");
    for i in 0..10 {
        h.send(1, &format!("SET k{i} {i}"));
    }
    h.send(1, "EXEC");
    let outs = h.drain();
    let last = replies(&outs, 1).pop().unwrap();
    let Frame::Array(items) = last else { panic!() };
    assert_eq!(items.len(), 10);
    assert_eq!(h.node.raft.last_index().0, before.0 + 1, "one entry");
    let store = h.node.into_store();
    let mut h = Harness::on(NodeConfig::default(), store);
    h.connect(1);
    assert_eq!(h.call(1, "GET k9"), bulk("9"));
    assert_eq!(h.call(1, "DBSIZE"), Frame::Integer(10));
}

/// PING with a message, ECHO and TIME answer alike in and out of a transaction; TIME is the
/// request's wall clock (1_700_000_000_123 ms) as seconds and microseconds.
#[test]
fn ping_echo_and_time_answer_alike_in_and_out_of_a_transaction() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    let time = Frame::Array(vec![Frame::text("1700000000"), Frame::text("123000")]);
    assert_eq!(h.call(1, "PING hey"), bulk("hey"));
    assert_eq!(h.call(1, "ECHO hi"), bulk("hi"));
    assert_eq!(h.call(1, "TIME"), time);
    assert_eq!(h.call(1, "MULTI"), Frame::ok());
    for line in ["PING hey", "ECHO hi", "TIME"] {
        assert_eq!(h.call(1, line), Frame::simple("QUEUED"), "{line}");
    }
    assert_eq!(
        h.call(1, "EXEC"),
        Frame::Array(vec![bulk("hey"), bulk("hi"), time])
    );
}

// TS.READ and its blocking form (node/blocking.rs).

impl Harness {
    /// Moves the clock `ms` ahead and fires the node's timers if due.
    fn advance(&mut self, ms: u64) -> Vec<Output> {
        self.now = self.now.saturating_add(Duration::from_millis(ms));
        if self.node.poll_timeout().is_some_and(|t| t <= self.now) {
            self.node.handle_timeout(self.now);
        }
        self.drain()
    }
}

/// `[[ts, value], ...]` as RESP2 sends samples.
fn samples(rows: &[(i64, &'static str)]) -> Frame {
    Frame::Array(
        rows.iter()
            .map(|(ts, v)| Frame::Array(vec![Frame::Integer(*ts), Frame::simple(v)]))
            .collect(),
    )
}

/// A node with a writer (conn 9) and a reader (conn 1), series `s` holding `stamps`.
fn reader_and(stamps: &[u64]) -> Harness {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(9);
    h.connect(1);
    series_with(&mut h, "s", stamps);
    h
}

fn series_with(h: &mut Harness, key: &str, stamps: &[u64]) {
    for ts in stamps {
        let reply = h.call(9, &format!("TS.ADD {key} {ts} {}", ts / 100));
        assert_eq!(reply, Frame::Integer(*ts as i64));
    }
}

#[test]
fn ts_read_without_block_answers_at_once_with_the_oldest_samples_at_the_cursor() {
    let mut h = reader_and(&[100, 200, 300]);
    let all = samples(&[(100, "1"), (200, "2"), (300, "3")]);
    assert_eq!(h.call(1, "TS.READ s 0"), all);
    assert_eq!(h.call(1, "TS.READ s -"), all);
    assert_eq!(
        h.call(1, "TS.READ s 200"),
        samples(&[(200, "2"), (300, "3")])
    );
    assert_eq!(h.call(1, "TS.READ s +"), samples(&[(300, "3")]));
    assert_eq!(h.call(1, "TS.READ s $"), samples(&[]));
    assert_eq!(
        h.call(1, "TS.READ s - MAX_COUNT 2"),
        samples(&[(100, "1"), (200, "2")])
    );
    assert_eq!(h.call(1, "TS.READ s 301"), samples(&[]));
    assert_eq!(h.call(1, "TS.READ missing 0"), samples(&[]));
    // A sample older than the earliest moves `-` with it.
    series_with(&mut h, "s", &[50]);
    assert_eq!(h.call(1, "TS.READ s - MAX_COUNT 1"), samples(&[(50, "0")]));
    assert_eq!(h.call(1, "SET str x"), Frame::ok());
    assert!(matches!(h.call(1, "TS.READ str 0"), Frame::Error(e) if e.starts_with(b"WRONGTYPE")));
}

#[test]
fn ts_read_refuses_malformed_arguments() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    let arity = "ERR wrong number of arguments for 'ts.read' command";
    for (line, want) in [
        ("TS.READ s", arity),
        ("TS.READ s 0 BLOCK 10", arity),
        ("TS.READ s 0 MAX_COUNT", arity),
        ("TS.READ s 0 extra", arity),
        ("TS.READ s 0 MAX_COUNT 1 MAX_COUNT 2", arity),
        (
            "TS.READ s -1",
            "ERR TSDB: invalid timestamp, must be a nonnegative integer",
        ),
        (
            "TS.READ s x",
            "ERR TSDB: invalid timestamp, must be a nonnegative integer",
        ),
        (
            "TS.READ s 0 BLOCK -1 1",
            "ERR TSDB: invalid BLOCK milliseconds, must be a nonnegative integer",
        ),
        (
            "TS.READ s 0 BLOCK 10 0",
            "ERR TSDB: invalid min_count, must be a positive integer",
        ),
        (
            "TS.READ s 0 MAX_COUNT 0",
            "ERR TSDB: invalid MAX_COUNT, must be a positive integer",
        ),
        (
            "TS.READ s 0 MAX_COUNT 2 BLOCK 10 3",
            "ERR TSDB: min_count must not be greater than MAX_COUNT",
        ),
    ] {
        assert_eq!(h.call(1, line), Frame::error(want), "{line}");
    }
    // Blocking is refused inside a transaction (at queue time: EXEC aborts).
    assert_eq!(h.call(1, "MULTI"), Frame::ok());
    assert!(matches!(
        h.call(1, "TS.READ s 0 BLOCK 10 1"),
        Frame::Error(_)
    ));
    assert!(matches!(h.call(1, "EXEC"), Frame::Error(e) if e.starts_with(b"EXECABORT")));
}

#[test]
fn a_blocked_ts_read_wakes_when_enough_samples_apply_and_holds_later_replies_back() {
    let mut h = reader_and(&[100]);
    h.send(1, "TS.READ s $ BLOCK 0 2 MAX_COUNT 5");
    h.send(1, "PING");
    assert!(
        replies(&h.drain(), 1).is_empty(),
        "blocked, PING waits behind it"
    );
    assert_eq!(h.node.blocked.len(), 1);
    // Waiting without a limit: time alone does not answer it.
    assert!(replies(&h.advance(60_000), 1).is_empty());
    // One sample is not enough; a write to another key does not wake it either.
    series_with(&mut h, "s", &[200]);
    series_with(&mut h, "other", &[1]);
    assert!(replies(&h.drain(), 1).is_empty());
    h.send(9, "TS.ADD s 300 3");
    let outs = h.drain();
    assert_eq!(replies(&outs, 9), vec![Frame::Integer(300)]);
    assert_eq!(
        replies(&outs, 1),
        vec![samples(&[(200, "2"), (300, "3")]), Frame::simple("PONG")],
        "woken in the round that applied the sample, PING answered after it"
    );
    assert_eq!(h.node.blocked.len(), 0);
}

#[test]
fn a_blocked_ts_read_times_out_with_what_qualifies() {
    let mut h = reader_and(&[100, 200, 300]);
    // Enough at once: no wait.
    assert_eq!(
        h.call(1, "TS.READ s 0 BLOCK 1000 1 MAX_COUNT 1"),
        samples(&[(100, "1")])
    );
    h.send(1, "TS.READ s 101 BLOCK 100 10");
    assert!(replies(&h.drain(), 1).is_empty());
    assert!(replies(&h.advance(99), 1).is_empty());
    assert_eq!(
        replies(&h.advance(1), 1),
        vec![samples(&[(200, "2"), (300, "3")])],
        "partial flush at the deadline"
    );
    h.send(1, "TS.READ s 301 BLOCK 100 1");
    assert!(replies(&h.drain(), 1).is_empty());
    assert_eq!(replies(&h.advance(100), 1), vec![samples(&[])]);
    // Missing at the deadline: empty too.
    h.send(1, "TS.READ nothing 0 BLOCK 50 1");
    assert_eq!(replies(&h.advance(50), 1), vec![samples(&[])]);
    assert_eq!(h.node.blocked.len(), 0);
    assert_eq!(h.node.poll_timeout(), h.node.raft.poll_timeout());
}

#[test]
fn a_blocked_ts_read_ends_empty_when_its_key_is_removed_and_waits_for_a_missing_one() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(9);
    h.connect(1);
    h.connect(2);
    series_with(&mut h, "s", &[100]);
    h.send(1, "TS.READ s 101 BLOCK 0 1");
    h.send(2, "TS.READ later 0 BLOCK 0 1");
    assert!(h.drain().is_empty());
    // Creating the missing key without samples does not answer; removing `s` does.
    assert_eq!(h.call(9, "TS.CREATE later"), Frame::ok());
    h.send(9, "DEL s");
    let outs = h.drain();
    assert_eq!(replies(&outs, 1), vec![samples(&[])]);
    assert!(replies(&outs, 2).is_empty());
    h.send(9, "TS.ADD later 5 1");
    let outs = h.drain();
    assert_eq!(replies(&outs, 2), vec![samples(&[(5, "1")])]);
}

#[test]
fn a_client_that_disconnects_while_blocked_leaves_nothing_behind() {
    let mut h = reader_and(&[]);
    h.send(1, "TS.READ s 0 BLOCK 1000 1");
    h.send(1, "PING");
    assert!(h.drain().is_empty());
    assert_eq!(h.node.blocked.len(), 1);
    h.node
        .handle_input(h.now, Input::Disconnect { conn: ConnId(1) });
    h.node.check_invariants();
    assert_eq!(h.node.blocked.len(), 0);
    assert_eq!(h.node.poll_timeout(), h.node.raft.poll_timeout());
    // A later write and the old deadline answer nobody.
    series_with(&mut h, "s", &[1]);
    assert!(replies(&h.advance(2000), 1).is_empty());
}

#[test]
fn blocked_clients_are_bounded_per_node() {
    let mut h = Harness::new(NodeConfig::default());
    for id in 1..=BLOCKED_MAX as u64 {
        h.connect(id);
        h.send(id, "TS.READ s 0 BLOCK 0 1");
    }
    assert!(h.drain().is_empty());
    let next = BLOCKED_MAX as u64 + 1;
    h.connect(next);
    let refused = h.call(next, "TS.READ s 0 BLOCK 0 1");
    assert!(
        matches!(&refused, Frame::Error(e) if e.starts_with(b"ERR too many blocked clients")),
        "{refused:?}"
    );
    // The refused connection is not held: it goes on.
    assert_eq!(h.call(next, "PING"), Frame::simple("PONG"));
    // One write wakes them all.
    h.connect(0);
    h.send(0, "TS.ADD s 1 1");
    let outs = h.drain();
    assert_eq!(outs.len(), BLOCKED_MAX + 1);
    assert_eq!(h.node.blocked.len(), 0);
}

fn push(items: &[&str]) -> Frame {
    Frame::Push(items.iter().map(|s| bulk(s)).collect())
}

fn confirm(kind: &str, name: &str, count: i64) -> Frame {
    Frame::Push(vec![bulk(kind), bulk(name), Frame::Integer(count)])
}

#[test]
fn subscribers_get_published_messages_and_publish_counts_them() {
    let mut h = Harness::new(NodeConfig::default());
    for id in 1..=3 {
        h.connect(id);
    }
    h.send(1, "SUBSCRIBE news ticks");
    assert_eq!(
        replies(&h.drain(), 1),
        vec![
            confirm("subscribe", "news", 1),
            confirm("subscribe", "ticks", 2)
        ]
    );
    h.send(2, "PSUBSCRIBE n*");
    assert_eq!(replies(&h.drain(), 2), vec![confirm("psubscribe", "n*", 1)]);
    h.send(3, "PUBLISH news hello");
    let outs = h.drain();
    assert_eq!(replies(&outs, 1), vec![push(&["message", "news", "hello"])]);
    assert_eq!(
        replies(&outs, 2),
        vec![push(&["pmessage", "n*", "news", "hello"])]
    );
    assert_eq!(replies(&outs, 3), vec![Frame::Integer(2)]);
    h.send(3, "PUBLISH nobody x");
    let outs = h.drain();
    assert_eq!(
        replies(&outs, 2),
        vec![push(&["pmessage", "n*", "nobody", "x"])]
    );
    assert_eq!(replies(&outs, 3), vec![Frame::Integer(1)]);
    assert_eq!(h.call(3, "PUBLISH other x"), Frame::Integer(0));
    assert_eq!(h.call(3, "PUBSUB NUMPAT"), Frame::Integer(1));
    assert_eq!(
        h.call(3, "PUBSUB NUMSUB news x"),
        Frame::Array(vec![
            bulk("news"),
            Frame::Integer(1),
            bulk("x"),
            Frame::Integer(0)
        ])
    );
    assert_eq!(
        h.call(3, "PUBSUB CHANNELS t*"),
        Frame::Array(vec![bulk("ticks")])
    );
    h.send(1, "UNSUBSCRIBE");
    assert_eq!(
        replies(&h.drain(), 1),
        vec![
            confirm("unsubscribe", "news", 1),
            confirm("unsubscribe", "ticks", 0)
        ]
    );
    h.send(1, "UNSUBSCRIBE");
    assert_eq!(
        replies(&h.drain(), 1),
        vec![Frame::Push(vec![
            bulk("unsubscribe"),
            Frame::Null,
            Frame::Integer(0)
        ])]
    );
    // A client that leaves takes its subscriptions with it.
    h.node
        .handle_input(h.now, Input::Disconnect { conn: ConnId(2) });
    h.node.check_invariants();
    assert_eq!(h.call(3, "PUBSUB NUMPAT"), Frame::Integer(0));
}

#[test]
fn resp2_subscribed_connection_only_runs_subscribe_commands() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    h.send(1, "SUBSCRIBE ch");
    let _ = h.drain();
    assert_eq!(
        h.call(1, "GET k"),
        Frame::error(
            "ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
        )
    );
    assert_eq!(
        h.call(1, "PING"),
        Frame::Array(vec![bulk("pong"), bulk("")])
    );
    assert_eq!(
        h.call(1, "PING hi"),
        Frame::Array(vec![bulk("pong"), bulk("hi")])
    );
    assert_eq!(h.call(1, "RESET"), Frame::simple("RESET"));
    assert_eq!(h.call(1, "PING"), Frame::simple("PONG"));
    assert_eq!(h.call(1, "GET k"), Frame::Null);
}

#[test]
fn resp3_subscribed_connection_runs_any_command_and_gets_pushes() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    let _ = h.call(1, "HELLO 3");
    h.send(1, "SUBSCRIBE ch");
    let outs = h.drain();
    assert!(matches!(
        &outs[..],
        [Output::Reply {
            protocol: Protocol::Resp3,
            frame: Frame::Push(_),
            ..
        }]
    ));
    assert_eq!(h.call(1, "PING"), Frame::simple("PONG"));
    h.send(1, "PUBLISH ch m");
    assert_eq!(
        replies(&h.drain(), 1),
        vec![push(&["message", "ch", "m"]), Frame::Integer(1)]
    );
}

#[test]
fn keyspace_notifications_follow_the_configured_classes() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    h.connect(2);
    h.send(1, "PSUBSCRIBE __key*__:*");
    let _ = h.drain();
    // Off by default.
    assert_eq!(h.call(2, "SET a 1"), Frame::ok());
    assert_eq!(
        h.call(2, "CONFIG SET notify-keyspace-events KEA"),
        Frame::ok()
    );
    assert_eq!(
        h.call(2, "CONFIG GET notify-keyspace-events"),
        Frame::Map(vec![(
            Frame::text("notify-keyspace-events"),
            Frame::text("AKE")
        )])
    );
    let ev = |ch: &str, msg: &str| push(&["pmessage", "__key*__:*", ch, msg]);
    h.send(2, "SET a 2");
    assert_eq!(
        replies(&h.drain(), 1),
        vec![ev("__keyspace@0__:a", "set"), ev("__keyevent@0__:set", "a")]
    );
    h.send(2, "DEL a missing");
    assert_eq!(
        replies(&h.drain(), 1),
        vec![ev("__keyspace@0__:a", "del"), ev("__keyevent@0__:del", "a")]
    );
    h.send(2, "TS.ADD s 1000 1.5");
    h.send(2, "TS.INCRBY s 1 TIMESTAMP 2000");
    h.send(2, "TS.DECRBY s 1 TIMESTAMP 3000");
    h.send(2, "INCRBY n 3");
    h.send(2, "SET x 1 NX");
    h.send(2, "SET x 1 NX");
    let outs = h.drain();
    let events: Vec<Frame> = replies(&outs, 1)
        .into_iter()
        .filter(|f| match f {
            Frame::Push(items) => {
                matches!(items.get(2), Some(Frame::Bulk(b)) if b.starts_with(b"__keyevent"))
            }
            _ => false,
        })
        .collect();
    assert_eq!(
        events,
        vec![
            ev("__keyevent@0__:ts.add", "s"),
            ev("__keyevent@0__:ts.incrby", "s"),
            ev("__keyevent@0__:ts.decrby", "s"),
            ev("__keyevent@0__:incrby", "n"),
            ev("__keyevent@0__:set", "x"),
        ]
    );
    // Only the module class, only key events.
    assert_eq!(
        h.call(2, "CONFIG SET notify-keyspace-events Ed"),
        Frame::ok()
    );
    h.send(2, "SET a 3");
    h.send(2, "TS.CREATE t");
    h.send(2, "TS.CREATERULE s t AGGREGATION avg 10");
    assert_eq!(
        replies(&h.drain(), 1),
        vec![
            ev("__keyevent@0__:ts.create", "t"),
            ev("__keyevent@0__:ts.createrule:src", "s"),
            ev("__keyevent@0__:ts.createrule:dest", "t"),
        ]
    );
    assert!(h.call(2, "CONFIG SET notify-keyspace-events Kw").is_error());
}

#[test]
fn publish_inside_a_transaction_counts_its_receivers() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    h.connect(2);
    h.send(1, "SUBSCRIBE ch");
    let _ = h.drain();
    assert_eq!(h.call(2, "MULTI"), Frame::ok());
    assert_eq!(h.call(2, "PUBLISH ch a"), Frame::simple("QUEUED"));
    assert_eq!(h.call(2, "SET k v"), Frame::simple("QUEUED"));
    h.send(2, "EXEC");
    let outs = h.drain();
    assert_eq!(replies(&outs, 1), vec![push(&["message", "ch", "a"])]);
    assert_eq!(
        replies(&outs, 2),
        vec![Frame::Array(vec![Frame::Integer(1), Frame::ok()])]
    );
}

/// The harness's requests carry this wall-clock stamp.
const T0: u64 = 1_700_000_000_123;

#[test]
fn expire_ttl_persist_and_set_options_follow_redis() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    assert_eq!(h.call(1, "TTL k"), Frame::Integer(-2));
    assert_eq!(h.call(1, "SET k v EX 10"), Frame::ok());
    assert_eq!(h.call(1, "TTL k"), Frame::Integer(10));
    assert_eq!(h.call(1, "PTTL k"), Frame::Integer(10_000));
    assert_eq!(
        h.call(1, "PEXPIRETIME k"),
        Frame::Integer((T0 + 10_000) as i64)
    );
    assert_eq!(
        h.call(1, "EXPIRETIME k"),
        Frame::Integer(((T0 + 10_000) / 1000) as i64)
    );
    assert_eq!(h.call(1, "EXPIRE k 20 NX"), Frame::Integer(0));
    assert_eq!(h.call(1, "EXPIRE k 5 GT"), Frame::Integer(0));
    assert_eq!(h.call(1, "EXPIRE k 5 LT"), Frame::Integer(1));
    assert_eq!(h.call(1, "TTL k"), Frame::Integer(5));
    assert_eq!(h.call(1, "SET k v2 KEEPTTL"), Frame::ok());
    assert_eq!(h.call(1, "TTL k"), Frame::Integer(5));
    assert_eq!(h.call(1, "INCR n"), Frame::Integer(1));
    assert_eq!(h.call(1, "PEXPIRE n 1500 XX"), Frame::Integer(0));
    assert_eq!(h.call(1, "PEXPIRE n 1500"), Frame::Integer(1));
    assert_eq!(h.call(1, "INCR n"), Frame::Integer(2));
    assert_eq!(
        h.call(1, "TTL n"),
        Frame::Integer(2),
        "INCR keeps the deadline"
    );
    assert_eq!(h.call(1, "PERSIST n"), Frame::Integer(1));
    assert_eq!(h.call(1, "PERSIST n"), Frame::Integer(0));
    assert_eq!(h.call(1, "TTL n"), Frame::Integer(-1));
    assert_eq!(h.call(1, "SET k v3"), Frame::ok());
    assert_eq!(
        h.call(1, "TTL k"),
        Frame::Integer(-1),
        "SET drops the deadline"
    );
    assert_eq!(h.call(1, "GETEX k PX 2500"), bulk("v3"));
    assert_eq!(h.call(1, "PTTL k"), Frame::Integer(2500));
    assert_eq!(h.call(1, "GETEX k PERSIST"), bulk("v3"));
    assert_eq!(h.call(1, "TTL k"), Frame::Integer(-1));
    assert_eq!(h.call(1, "EXPIRE missing 10"), Frame::Integer(0));
    // A deadline already passed deletes the key.
    assert_eq!(h.call(1, "EXPIRE k -1"), Frame::Integer(1));
    assert_eq!(h.call(1, "EXISTS k"), Frame::Integer(0));
    assert_eq!(
        h.call(1, "EXPIRE n 10 NX XX"),
        Frame::error("ERR NX and XX, GT or LT options at the same time are not compatible")
    );
    assert_eq!(
        h.call(1, "SET k v EX 0"),
        Frame::error("ERR invalid expire time in 'set' command")
    );
    assert_eq!(
        h.call(1, "SET k v EX 1 PX 1"),
        Frame::error("ERR syntax error")
    );
    // Series expire like any key.
    assert_eq!(h.call(1, "TS.ADD s 1000 1"), Frame::Integer(1000));
    assert_eq!(h.call(1, "EXPIRE s 100"), Frame::Integer(1));
    assert_eq!(h.call(1, "TTL s"), Frame::Integer(100));
}

#[test]
fn expired_keys_are_hidden_then_deleted_through_the_log_with_an_event() {
    let mut h = Harness::watching("Ex", "__keyevent@0__:expired");
    assert_eq!(h.call(1, "SET a 1 PX 500"), Frame::ok());
    assert_eq!(
        h.call(1, "TS.ADD s 1000 1 LABELS k v"),
        Frame::Integer(1000)
    );
    assert_eq!(h.call(1, "PEXPIRE s 500"), Frame::Integer(1));
    assert_eq!(h.call(1, "SET keep 1"), Frame::ok());
    // 600 ms later, before the leader's expiry runs: every read hides them.
    h.now = h.now.saturating_add(Duration::from_millis(600));
    assert_eq!(h.call(1, "GET a"), Frame::Null);
    assert_eq!(h.call(1, "EXISTS a s keep"), Frame::Integer(1));
    assert_eq!(h.call(1, "TTL a"), Frame::Integer(-2));
    assert_eq!(h.call(1, "KEYS *"), Frame::Array(vec![bulk("keep")]));
    assert!(h.call(1, "TS.GET s").is_error(), "the series is gone");
    assert_eq!(h.call(1, "TS.QUERYINDEX k=v"), Frame::Array(Vec::new()));
    assert_eq!(h.call(1, "DBSIZE"), Frame::Integer(3));
    // The leader's timer proposes their deletion; every replica applies it.
    h.node.handle_timeout(h.now);
    let outs = h.drain();
    assert_eq!(
        replies(&outs, 2),
        vec![
            push(&["message", "__keyevent@0__:expired", "a"]),
            push(&["message", "__keyevent@0__:expired", "s"]),
        ]
    );
    assert_eq!(h.call(1, "DBSIZE"), Frame::Integer(1));
    let Frame::Verbatim { text, .. } = h.call(1, "INFO stats") else {
        panic!("INFO")
    };
    assert!(
        String::from_utf8_lossy(&text).contains("expired_keys:2"),
        "{text:?}"
    );
    // A write to a key past its deadline finds it gone (and reports it expired).
    assert_eq!(h.call(1, "SET c 5 PX 100"), Frame::ok());
    // The write's entry carries its request's wall-clock stamp, past the deadline.
    h.node.handle_input(
        h.now,
        Input::Request {
            conn: ConnId(1),
            args: args("INCR c"),
            wire_bytes: 10,
            unix: UnixMillis(T0 + 1000),
        },
    );
    let outs = h.drain();
    assert_eq!(replies(&outs, 1), vec![Frame::Integer(1)]);
    assert_eq!(
        replies(&outs, 2),
        vec![push(&["message", "__keyevent@0__:expired", "c"])]
    );
    assert_eq!(h.call(1, "TTL c"), Frame::Integer(-1));
}

#[test]
fn deadlines_survive_a_restart() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    assert_eq!(h.call(1, "SET a 1 EX 100"), Frame::ok());
    let store = std::mem::replace(
        &mut h.node,
        Node::new(NodeConfig::default(), MemStore::new(), h.now).unwrap(),
    )
    .into_store();
    let mut h = Harness::on(NodeConfig::default(), store);
    h.connect(1);
    assert_eq!(h.call(1, "TTL a"), Frame::Integer(100));
    assert_eq!(h.call(1, "PERSIST a"), Frame::Integer(1));
}

#[test]
fn expire_makes_a_watch_on_the_key_fail() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    h.connect(2);
    assert_eq!(h.call(1, "SET k v"), Frame::ok());
    assert_eq!(h.call(1, "WATCH k"), Frame::ok());
    assert_eq!(h.call(2, "EXPIRE k 100"), Frame::Integer(1));
    assert_eq!(h.call(1, "MULTI"), Frame::ok());
    assert_eq!(h.call(1, "TTL k"), Frame::simple("QUEUED"));
    assert_eq!(h.call(1, "EXEC"), Frame::NullArray);
    assert_eq!(h.call(1, "MULTI"), Frame::ok());
    assert_eq!(h.call(1, "TTL k"), Frame::simple("QUEUED"));
    assert_eq!(h.call(1, "PERSIST k"), Frame::simple("QUEUED"));
    assert_eq!(
        h.call(1, "EXEC"),
        Frame::Array(vec![Frame::Integer(100), Frame::Integer(1)])
    );
}

#[test]
fn subscribe_is_refused_on_zeromq_and_inside_multi() {
    let mut h = Harness::new(NodeConfig::default());
    let input = Input::Connect {
        conn: ConnId(1),
        kind: ConnKind::Zmq,
        addr: "zmq".into(),
    };
    h.node.handle_input(h.now, input);
    assert_eq!(
        h.call(1, "SUBSCRIBE ch"),
        Frame::error(
            "ERR SUBSCRIBE is not available on the ZeroMQ endpoint: subscribe over RESP on TCP"
        )
    );
    assert_eq!(h.call(1, "PUBLISH ch m"), Frame::Integer(0));
    h.connect(2);
    assert_eq!(h.call(2, "MULTI"), Frame::ok());
    assert!(h.call(2, "SUBSCRIBE ch").is_error());
    assert_eq!(
        h.call(2, "EXEC"),
        Frame::error("EXECABORT Transaction discarded because of previous errors.")
    );
    assert_eq!(
        h.call(2, "PUBSUB NUMSUB ch"),
        Frame::Array(vec![bulk("ch"), Frame::Integer(0)])
    );
}

/// Expiry against a model: random SET (with and without PX), PEXPIRE, PERSIST, DEL, GET and
/// PTTL on a few keys, the clock moving forward and the leader's timer firing, and restarts;
/// every reply must be what a map of (value, deadline) says at that time.
#[test]
fn expiry_matches_a_model_through_time_and_restarts() {
    use std::collections::BTreeMap;
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    let mut t = T0;
    let mut model: BTreeMap<String, (String, Option<u64>)> = BTreeMap::new();
    let (mut expired, mut restarts, mut hits) = (0, 0, 0);
    let call = |h: &mut Harness, t: u64, line: &str| -> Frame {
        h.node.handle_input(
            h.now,
            Input::Request {
                conn: ConnId(1),
                args: args(line),
                wire_bytes: 10,
                unix: UnixMillis(t),
            },
        );
        let outs = h.drain();
        let mut r = replies(&outs, 1);
        assert_eq!(r.len(), 1, "{line}: {outs:?}");
        r.remove(0)
    };
    for step in 0..3000 {
        // Drop what the model says has expired.
        let before = model.len();
        model.retain(|_, (_, d)| d.is_none_or(|d| d > t));
        expired += before - model.len();
        let key = format!("k{}", next(4));
        let d = 1 + next(400);
        let line = match next(8) {
            0 => format!("SET {key} v{step}"),
            1 => format!("SET {key} v{step} PX {d}"),
            2 => format!("PEXPIRE {key} {d}"),
            3 => format!("PERSIST {key}"),
            4 => format!("DEL {key}"),
            5 => format!("GET {key}"),
            6 => format!("PTTL {key}"),
            _ => {
                let dt = next(300);
                t += dt;
                h.now = h.now.saturating_add(Duration::from_millis(dt));
                h.node.handle_timeout(h.now);
                let _ = h.drain();
                if next(20) == 0 {
                    let store = std::mem::replace(
                        &mut h.node,
                        Node::new(NodeConfig::default(), MemStore::new(), h.now).unwrap(),
                    )
                    .into_store();
                    // The monotonic clock goes on from where it was: the restarted node
                    // replays the log after its checkpoint, and the entries' times it sees
                    // there are anchored at this instant.
                    let now = h.now;
                    h = Harness {
                        node: Node::new(NodeConfig::default(), store, now).unwrap(),
                        now,
                    };
                    h.connect(1);
                    restarts += 1;
                }
                continue;
            }
        };
        let got = call(&mut h, t, &line);
        let words: Vec<&str> = line.split(' ').collect();
        let want = match words[0] {
            "SET" => {
                let deadline = (words.len() == 5).then(|| t + d);
                model.insert(key.clone(), (words[2].to_string(), deadline));
                Frame::ok()
            }
            "PEXPIRE" => match model.get_mut(&key) {
                Some(entry) => {
                    entry.1 = Some(t + d);
                    Frame::Integer(1)
                }
                None => Frame::Integer(0),
            },
            "PERSIST" => match model.get_mut(&key) {
                Some(entry) if entry.1.is_some() => {
                    entry.1 = None;
                    Frame::Integer(1)
                }
                _ => Frame::Integer(0),
            },
            "DEL" => Frame::Integer(i64::from(model.remove(&key).is_some())),
            "GET" => model.get(&key).map_or(Frame::Null, |(v, _)| {
                hits += 1;
                bulk(v)
            }),
            _ => match model.get(&key) {
                None => Frame::Integer(-2),
                Some((_, None)) => Frame::Integer(-1),
                Some((_, Some(d))) => Frame::Integer((d - t) as i64),
            },
        };
        assert_eq!(got, want, "step {step} at t={}: {line}", t - T0);
    }
    assert!(
        expired > 100 && restarts > 5 && hits > 100,
        "{expired} {restarts} {hits}"
    );
}

#[test]
fn one_rounds_writes_from_several_clients_share_one_log_entry_and_each_gets_its_own_reply() {
    let mut h = Harness::new(NodeConfig::default());
    for id in 1..=4 {
        h.connect(id);
    }
    h.call(1, "SET w 0");
    h.call(1, "SET s abc");
    assert_eq!(h.call(4, "WATCH w"), Frame::ok());
    assert_eq!(h.call(4, "MULTI"), Frame::ok());
    assert_eq!(h.call(4, "GET w"), Frame::simple("QUEUED"));
    let before = h.node.raft.last_index();
    // One round: a write, an error reply, a write to the watched key, then the transaction,
    // which must see that write (same entry, earlier member) and abort.
    h.send(1, "INCR n");
    h.send(2, "INCR s");
    h.send(3, "SET w changed");
    h.send(4, "EXEC");
    let outs = h.drain();
    assert_eq!(
        h.node.raft.last_index(),
        before.next(),
        "four clients' writes, one log entry"
    );
    assert_eq!(replies(&outs, 1), vec![Frame::Integer(1)]);
    assert!(replies(&outs, 2)[0].is_error(), "{outs:?}");
    assert_eq!(replies(&outs, 3), vec![Frame::ok()]);
    assert_eq!(replies(&outs, 4), vec![Frame::NullArray]);
    // The group survives a crash: replayed member by member from the log.
    let mut store = h.node.into_store();
    store.crash();
    let mut h = Harness::on(NodeConfig::default(), store);
    h.connect(1);
    assert_eq!(h.call(1, "GET n"), bulk("1"));
    assert_eq!(h.call(1, "GET w"), bulk("changed"));
}

#[test]
fn a_round_is_grouped_into_entries_within_the_entry_size_limit() {
    let proposal = |conn: u64, len: usize| Proposal {
        conn: ConnId(conn),
        entry: vec![log::ENTRY_VERSION; len],
        shape: ReplyShape::Single,
        decoded: None,
    };
    let big = 3 * peer::MAX_ENTRY_BYTES / 8;
    let (entries, who) = group_proposals(&mut vec![
        proposal(1, big),
        proposal(2, big),
        proposal(3, big),
        proposal(4, 10),
        proposal(5, peer::MAX_ENTRY_BYTES),
    ]);
    let conns = |w: &Members| w.iter().map(|w| w.conn.0).collect::<Vec<_>>();
    assert_eq!(
        who.iter().map(conns).collect::<Vec<_>>(),
        vec![vec![1, 2], vec![3, 4], vec![5]],
        "a third big write starts a new entry; one at the limit stays alone"
    );
    for (entry, w) in entries.iter().zip(&who) {
        assert!(entry.len() <= peer::MAX_ENTRY_BYTES, "{}", entry.len());
        match log::group_members(entry) {
            Some(members) => assert_eq!(members.unwrap().len(), w.len()),
            None => assert_eq!(w.len(), 1, "only a lone write is a plain entry"),
        }
    }
    assert_eq!(
        entries[2].len(),
        peer::MAX_ENTRY_BYTES,
        "a lone write is not wrapped"
    );
    let (entries, who) = group_proposals(&mut Vec::new());
    assert!(entries.is_empty() && who.is_empty());
}

/// The sync a pipelined node asked for, from one drain's outputs.
fn sync_asked(outs: &[Output]) -> Option<u64> {
    outs.iter().find_map(|o| match o {
        Output::Sync { upto } => Some(*upto),
        _ => None,
    })
}

/// A pipelined sync that fails fails the node like any storage error: the write it covered
/// is answered with the error, never `+OK`, and every later write is refused.
#[test]
fn a_failed_pipelined_sync_acknowledges_nothing_it_covered() {
    let mut h = Harness::new(NodeConfig::default());
    h.node.pipeline_syncs();
    h.connect(1);
    // The single node elected itself, synced inline, while it started.
    assert_eq!(sync_asked(&h.drain()), None, "nothing to sync yet");
    h.send(1, "SET k v");
    let outs = h.drain();
    let upto = sync_asked(&outs).expect("the SET's sync asked for");
    assert!(
        replies(&outs, 1).is_empty(),
        "acknowledged before its sync: {outs:?}"
    );
    let failed = Input::Synced {
        upto,
        error: Some("No space left on device".into()),
    };
    h.node.handle_input(h.now, failed);
    let outs = h.drain();
    match &replies(&outs, 1)[..] {
        [Frame::Error(e)] => {
            let text = String::from_utf8_lossy(e);
            assert!(text.contains("No space left on device"), "{text}");
        }
        other => panic!("the covered write must fail: {other:?}"),
    }
    let refused = h.call(1, "SET k2 v");
    assert!(
        refused.is_error(),
        "a write after a failed sync: {refused:?}"
    );
    assert_eq!(
        h.call(1, "PING"),
        Frame::Simple(Bytes::from_static(b"PONG"))
    );
}

/// SET reads the key's record once; what it replaces and what it answers stay Redis's.
#[test]
fn set_replaces_any_key_and_keeps_the_key_count() {
    let mut h = Harness::new(NodeConfig::default());
    h.connect(1);
    let err = |s: &str| Frame::error(s.to_string());
    let wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value";
    assert_eq!(h.call(1, "SET s v1"), Frame::ok());
    assert_eq!(h.call(1, "SET s v2"), Frame::ok());
    assert_eq!(h.call(1, "SET s v3 GET"), bulk("v2"));
    assert_eq!(h.call(1, "SET s v4 NX"), Frame::Null);
    assert_eq!(h.call(1, "SET s v4 NX GET"), bulk("v3"));
    assert_eq!(h.call(1, "SET missing v XX"), Frame::Null);
    assert_eq!(h.call(1, "SET missing v XX GET"), Frame::Null);
    assert_eq!(h.call(1, "GET s"), bulk("v3"));
    // A deadline goes with a plain SET.
    assert_eq!(h.call(1, "EXPIRE s 100"), Frame::Integer(1));
    assert_eq!(h.call(1, "SET s v5"), Frame::ok());
    assert_eq!(h.call(1, "TTL s"), Frame::Integer(-1));
    // A series: SET GET refuses it and leaves it; a plain SET replaces it.
    assert_eq!(h.call(1, "TS.ADD ts 1 1.5"), Frame::Integer(1));
    assert_eq!(h.call(1, "DBSIZE"), Frame::Integer(2));
    assert_eq!(h.call(1, "SET ts x GET"), err(wrongtype));
    assert_eq!(h.call(1, "TYPE ts"), Frame::Simple("TSDB-TYPE".into()));
    assert_eq!(h.call(1, "SET ts x"), Frame::ok());
    assert_eq!(h.call(1, "GET ts"), bulk("x"));
    assert_eq!(h.call(1, "DBSIZE"), Frame::Integer(2));
    assert_eq!(h.call(1, "SET new y NX"), Frame::ok());
    assert_eq!(h.call(1, "DBSIZE"), Frame::Integer(3));
}

/// The requests the packed-path tests draw from: `BATCH_SET`s, `TS.ADD`s, `SET`s, `INCR`s and
/// `GET`s well and badly formed, of the fast forms and not, and what changes whether a
/// connection may take one at once (a transaction, subscribed mode, authentication, a write it
/// waits for, RESP3).
const PACKED_SCRIPT: &[&str] = &[
    "BATCH_SET a 1.5 10",
    "BATCH_SET b 2 11",
    "batch_set a 3 12",
    "BATCH_SET a 1.5 10",
    "BATCH_SET a x 13",
    "BATCH_SET a 1 -1",
    "BATCH_SET a 1",
    "BATCH_SET a 1 2 3",
    "BATCH_SET a inf 14",
    "BATCH_FLUSH",
    "TS.ADD a 20 1.5",
    "ts.add b * 2",
    "TS.ADD a 20 2.5 ON_DUPLICATE LAST",
    "TS.ADD a 20 3.5 on_duplicate min",
    "TS.ADD a 20 3.5 ON_DUPLICATE never",
    "TS.ADD a 21 x",
    "TS.ADD a -5 1",
    "TS.ADD a 22 1 RETENTION 100",
    "TS.ADD s 23 1",
    "SET s 2",
    "set n 5",
    "SET s 1 NX",
    "INCR n",
    "incr s",
    "INCR a",
    "GET s",
    "get n",
    "GET a",
    "GET missing",
    "GET",
    "MULTI",
    "EXEC",
    "DISCARD",
    "SUBSCRIBE ch",
    "UNSUBSCRIBE",
    "AUTH secret",
    "AUTH wrong",
    "HELLO 3",
    "HELLO 2",
    "SET s 1",
    "TS.GET a",
    "TS.RANGE b - +",
    "CLIENT INFO",
    "INFO stats",
    "RESET",
];

/// Runs `script` on a fresh node (with the password `secret` when `pass`), each request as an
/// [`Input::Request`] (`packed: None`) or in packed inputs of the sizes `packed` cycles
/// through, all fed before one drain, and returns every output, then another client's
/// `CLIENT LIST`.
fn run_script(script: &[&str], packed: Option<&[usize]>, pass: bool) -> Vec<Output> {
    let config = NodeConfig {
        requirepass: pass.then(|| Bytes::from_static(b"secret")),
        ..NodeConfig::default()
    };
    let mut h = Harness::new(config);
    h.connect(1);
    let unix = UnixMillis(1_700_000_000_123);
    let wire = |line: &str| line.len() as u64 + 2;
    let mut inputs = Vec::new();
    match packed {
        None => {
            for line in script {
                inputs.push(Input::Request {
                    conn: ConnId(1),
                    args: args(line),
                    wire_bytes: wire(line),
                    unix,
                });
            }
        }
        Some(sizes) => {
            let mut rest = script;
            for &size in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (now, later) = rest.split_at(size.clamp(1, rest.len()));
                rest = later;
                let requests: Vec<(Vec<Bytes>, u64)> =
                    now.iter().map(|l| (args(l), wire(l))).collect();
                let requests = Packed::from_requests(requests.iter().map(|(a, w)| (&a[..], *w)));
                inputs.push(Input::Requests {
                    conn: ConnId(1),
                    requests,
                    unix,
                });
            }
        }
    }
    for input in inputs {
        h.node.handle_input(h.now, input);
        h.node.check_invariants();
    }
    let mut outs = h.drain();
    // Another client's view of this one: its last command, buffer and counters.
    h.connect(2);
    if pass {
        h.send(2, "AUTH secret");
    }
    h.send(2, "CLIENT LIST");
    outs.extend(h.drain());
    outs
}

#[test]
fn a_full_batch_buffer_refuses_packed_batch_sets_too() {
    let lines: Vec<String> = (0..=BATCH_MAX_SAMPLES)
        .map(|i| format!("BATCH_SET k 1.5 {i}"))
        .collect();
    let script: Vec<&str> = lines.iter().map(String::as_str).collect();
    let outs = run_script(&script, Some(&[1000]), false);
    let frames = replies(&outs, 1);
    assert_eq!(frames.len(), BATCH_MAX_SAMPLES + 1);
    assert!(
        frames[..BATCH_MAX_SAMPLES]
            .iter()
            .all(|f| *f == Frame::ok())
    );
    let Frame::Error(e) = &frames[BATCH_MAX_SAMPLES] else {
        panic!("the full buffer refuses: {:?}", frames.last())
    };
    assert!(String::from_utf8_lossy(e).contains("BATCH_SET buffer is full"));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Packed requests, taken by a fast path or not, give exactly the outputs the same
    /// requests give one by one: replies, errors, deferrals, `CLIENT INFO` and `INFO`'s
    /// counters.
    #[test]
    fn packed_requests_answer_as_single_ones(
        picks in proptest::collection::vec(0..PACKED_SCRIPT.len(), 1..40),
        sizes in proptest::collection::vec(1usize..8, 1..4),
        pass in proptest::prelude::any::<bool>(),
    ) {
        let script: Vec<&str> = picks.iter().map(|&i| PACKED_SCRIPT[i]).collect();
        let one_by_one = run_script(&script, None, pass);
        let packed = run_script(&script, Some(&sizes), pass);
        proptest::prop_assert_eq!(one_by_one, packed);
    }
}

#[test]
fn a_batch_flush_notifies_each_stored_sample_once() {
    let mut h = Harness::watching("Ed", "__keyevent@0__:ts.add");
    // The third sample repeats the first's timestamp: refused under BLOCK, not notified.
    for line in ["BATCH_SET a 1 10", "BATCH_SET b 2 10", "BATCH_SET a 3 10"] {
        assert_eq!(h.call(1, line), Frame::ok());
    }
    h.send(1, "BATCH_FLUSH");
    let outs = h.drain();
    assert_eq!(replies(&outs, 1), vec![Frame::Integer(2)]);
    let msg = |key: &str| push(&["message", "__keyevent@0__:ts.add", key]);
    assert_eq!(replies(&outs, 2), vec![msg("a"), msg("b")]);
}
