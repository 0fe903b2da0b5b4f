//! Commands: the table, and parsing a request's arguments into a typed [`Command`].
//!
//! Parsing checks the name, the arity and every option and number, so a request that parses
//! can only fail later for reasons of state (a wrong type, an overflow), never of syntax.
//! Writes parse into [`WriteCmd`], the serializable form that goes into the replicated log.
//!
//! Layering: the command language is the vocabulary every layer above it shares (typed
//! commands, [`CommandError`], [`MetaWrite`], [`series`] limits and the duplicate policy,
//! keyspace-notification flags), so it imports only `resp`: never `db`, `ts`, `state` or
//! `node`.

pub mod args;
mod docs;
mod error;
pub(crate) mod notify;
pub mod series;
pub mod table;
pub mod ts;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::resp::PackedRequest;

pub use error::CommandError;
pub use table::{COMMANDS, CommandSpec, lookup};

use args::{Args, float, int, is, uint};

/// A parsed request.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Answered by the node from connection and server state.
    Conn(ConnCmd),
    /// Reads the state machine.
    Read(ReadCmd),
    /// Changes the state machine through the log.
    Write(WriteCmd),
    /// `BATCH_SET key value ts`: buffered on the connection.
    BatchSet { key: Bytes, value: f64, ts: u64 },
    /// `BATCH_FLUSH`: the buffer as one atomic log entry.
    BatchFlush,
}

/// Connection and server commands.
#[derive(Clone, Debug, PartialEq)]
pub enum ConnCmd {
    Ping(Option<Bytes>),
    Echo(Bytes),
    Time,
    Quit,
    Reset,
    Hello {
        protover: Option<i64>,
        auth: Option<(Bytes, Bytes)>,
        setname: Option<Bytes>,
    },
    Auth {
        user: Option<Bytes>,
        password: Bytes,
    },
    Select(i64),
    ClientId,
    ClientSetName(Bytes),
    ClientGetName,
    ClientSetInfo,
    ClientList,
    ClientInfo,
    Info(Vec<Bytes>),
    ConfigGet(Vec<Bytes>),
    /// `CONFIG SET name value [name value ...]`, names lower-cased.
    ConfigSet(Vec<(String, Bytes)>),
    ConfigResetStat,
    CommandAll,
    CommandCount,
    CommandInfo(Vec<Bytes>),
    CommandDocs(Vec<Bytes>),
    CommandGetKeys(Vec<Bytes>),
    CommandList,
    /// `MODULE LIST`: the built-in time-series engine, as RedisTimeSeries reports itself.
    ModuleList,
    DbSize,
    ClusterInfo,
    Cluster(ClusterCmd),
    ReadOnly,
    ReadWrite,
    /// `MULTI`, `EXEC`, `DISCARD`, `WATCH key ...`, `UNWATCH`: transactions.
    Multi,
    Exec,
    Discard,
    Watch(Vec<Bytes>),
    Unwatch,
    /// SUBSCRIBE (false) / PSUBSCRIBE (true) and their arguments.
    Subscribe {
        patterns: bool,
        names: Vec<Bytes>,
    },
    /// UNSUBSCRIBE (false) / PUNSUBSCRIBE (true); no names: all of them.
    Unsubscribe {
        patterns: bool,
        names: Vec<Bytes>,
    },
    /// PUBSUB CHANNELS [pattern].
    PubSubChannels(Option<Bytes>),
    /// PUBSUB NUMSUB [channel ...].
    PubSubNumSub(Vec<Bytes>),
    /// PUBSUB NUMPAT.
    PubSubNumPat,
}

/// `CLUSTER` subcommands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterCmd {
    Info,
    MyId,
    Nodes,
    Slots,
    Shards,
    /// Sent to a follower: make it the leader. `force` (FORCE / TAKEOVER): start an election
    /// at once instead of asking the leader to hand over.
    Failover {
        force: bool,
    },
    /// NODE_JOIN: record where node `id` is reached and add it as a learner; the leader promotes
    /// it to voter once it has caught up.
    AddNode {
        id: u64,
        client_addr: String,
        cluster_port: u16,
    },
    /// NODE_LEAVE: remove node `id` (the leader too: it steps down once the change commits).
    Forget {
        id: u64,
    },
}

/// Reads of the state machine.
#[derive(Clone, Debug, PartialEq)]
pub enum ReadCmd {
    Get(Bytes),
    MGet(Vec<Bytes>),
    Exists(Vec<Bytes>),
    Type(Bytes),
    StrLen(Bytes),
    Keys(Bytes),
    Scan {
        cursor: u64,
        pattern: Option<Bytes>,
        count: u64,
        kind: Option<Bytes>,
    },
    /// `TS.*` reads and `TSDB_GET`.
    Ts(ts::TsRead),
    /// TTL / PTTL (`ms`) and EXPIRETIME / PEXPIRETIME (`absolute`).
    Ttl {
        key: Bytes,
        ms: bool,
        absolute: bool,
    },
}

/// When a key expires, as a command gives it (milliseconds); resolved against the log entry's
/// time when it applies, so every replica computes the same deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum When {
    /// This many milliseconds after the entry's time (EXPIRE, PEXPIRE, EX, PX).
    In(i64),
    /// At this Unix time in milliseconds (EXPIREAT, PEXPIREAT, EXAT, PXAT).
    At(i64),
}

/// EXPIRE's condition on the current deadline (Redis 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpireCond {
    /// Only if the key has no deadline.
    Nx,
    /// Only if it has one.
    Xx,
    /// Only if the new one is later (no deadline counts as infinitely late).
    Gt,
    /// Only if the new one is earlier.
    Lt,
}

/// What SET and GETEX do to a key's deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TtlOpt {
    /// KEEPTTL: keep the current one.
    Keep,
    /// GETEX PERSIST: remove it.
    Persist,
    /// EX, PX, EXAT, PXAT.
    Set(When),
}

/// `SET`'s existence condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetCond {
    /// Only if the key does not exist.
    Nx,
    /// Only if the key exists.
    Xx,
}

/// A state change, as it is stored in the replicated log and applied on every replica.
///
/// Every field is resolved before the entry is written (no `*` timestamps, no defaults taken
/// from local state), so applying it is deterministic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WriteCmd {
    Set {
        key: Bytes,
        value: Bytes,
        cond: Option<SetCond>,
        get: bool,
    },
    SetNx {
        key: Bytes,
        value: Bytes,
    },
    GetSet {
        key: Bytes,
        value: Bytes,
    },
    GetDel(Bytes),
    MSet(Vec<(Bytes, Bytes)>),
    Del(Vec<Bytes>),
    IncrBy {
        key: Bytes,
        by: i64,
    },
    IncrByFloat {
        key: Bytes,
        by: f64,
    },
    Append {
        key: Bytes,
        value: Bytes,
    },
    /// FLUSHDB / FLUSHALL.
    Flush,
    /// One `BATCH_SET` sample, applied with `TS.ADD` semantics when `BATCH_FLUSH` commits the
    /// connection's buffer.
    BatchAdd {
        key: Bytes,
        ts: u64,
        value: f64,
    },
    /// `TS.*` writes and `TSDB_SET`.
    Ts(ts::TsWrite),
    /// Cluster-wide state: member addresses, `CONFIG SET` of a cluster-wide setting.
    Meta(MetaWrite),
    /// PUBLISH: changes no state; every node delivers the message to its own subscribers
    /// when it applies the entry, so it reaches every node of the cluster once. (Appended
    /// last: postcard numbers variants in order, so older entries still decode.)
    Publish {
        channel: Bytes,
        message: Bytes,
    },
    /// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT. `name` is the command's, for its error text.
    Expire {
        key: Bytes,
        when: When,
        cond: Option<ExpireCond>,
        name: String,
    },
    /// PERSIST.
    Persist(Bytes),
    /// SET with EX, PX, EXAT, PXAT or KEEPTTL (a plain SET stays [`WriteCmd::Set`], which
    /// removes any deadline, as Redis's does).
    SetTtl {
        key: Bytes,
        value: Bytes,
        cond: Option<SetCond>,
        get: bool,
        ttl: TtlOpt,
    },
    /// GETEX key [EX|PX|EXAT|PXAT|PERSIST].
    GetEx {
        key: Bytes,
        ttl: Option<TtlOpt>,
    },
    /// The leader's active expiry: delete each key whose deadline is still the one given and
    /// has passed at the entry's time.
    ExpireDue(Vec<(Bytes, u64)>),
}

/// A change to cluster-wide state, as it goes into the log (applied by `db::meta`, which
/// also names and validates the settings `Config` may carry).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MetaWrite {
    SetMember {
        id: u64,
        client_addr: String,
        cluster_port: u16,
    },
    ForgetMember {
        id: u64,
    },
    /// A validated cluster-wide setting (`CONFIG SET` of one of `db::meta::SETTINGS`).
    Config {
        name: String,
        value: String,
    },
}

/// The most keys `SCAN` returns per call whatever `COUNT` asks, so one call stays bounded.
pub const SCAN_COUNT_MAX: u64 = 100_000;

/// Parses a request (name first) into a command.
pub fn parse(args: &[Bytes]) -> Result<Command, CommandError> {
    parse_as(args.first().and_then(|name| lookup(name)), args)
}

/// [`parse`] for a caller that has already looked the name up (`spec`, `None` for an unknown
/// name): the request path looks each name up once.
pub fn parse_as(
    spec: Option<&'static CommandSpec>,
    args: &[Bytes],
) -> Result<Command, CommandError> {
    let Some(name) = args.first() else {
        return Err(CommandError::Syntax);
    };
    let Some(spec) = spec else {
        return Err(CommandError::unknown_command(name, &args[1..]));
    };
    if !spec.arity_ok(args.len()) {
        return Err(CommandError::WrongArity(spec.name.to_owned()));
    }
    let a = args;
    let cmd = match spec.name {
        "ping" => match a.len() {
            1 => Command::Conn(ConnCmd::Ping(None)),
            2 => Command::Conn(ConnCmd::Ping(Some(a[1].clone()))),
            _ => return Err(CommandError::WrongArity("ping".into())),
        },
        "echo" => Command::Conn(ConnCmd::Echo(a[1].clone())),
        "time" => Command::Conn(ConnCmd::Time),
        "quit" => Command::Conn(ConnCmd::Quit),
        "reset" => Command::Conn(ConnCmd::Reset),
        "hello" => parse_hello(a)?,
        "auth" => match a.len() {
            2 => Command::Conn(ConnCmd::Auth {
                user: None,
                password: a[1].clone(),
            }),
            3 => Command::Conn(ConnCmd::Auth {
                user: Some(a[1].clone()),
                password: a[2].clone(),
            }),
            _ => return Err(CommandError::Syntax),
        },
        "select" => Command::Conn(ConnCmd::Select(int(&a[1])?)),
        "client" => parse_client(a)?,
        "info" => Command::Conn(ConnCmd::Info(a[1..].to_vec())),
        "config" => parse_config(a)?,
        "command" => parse_command(a)?,
        "module" => {
            if !is(&a[1], "LIST") {
                return Err(unknown_sub("module", &a[1]));
            }
            sub_arity("module", "list", a.len() == 2)?;
            Command::Conn(ConnCmd::ModuleList)
        }
        "dbsize" => Command::Conn(ConnCmd::DbSize),
        "cluster_info" => Command::Conn(ConnCmd::ClusterInfo),
        "cluster" => parse_cluster(a)?,
        "multi" => Command::Conn(ConnCmd::Multi),
        "exec" => Command::Conn(ConnCmd::Exec),
        "discard" => Command::Conn(ConnCmd::Discard),
        "watch" => Command::Conn(ConnCmd::Watch(a[1..].to_vec())),
        "unwatch" => Command::Conn(ConnCmd::Unwatch),
        "readonly" => Command::Conn(ConnCmd::ReadOnly),
        "subscribe" | "psubscribe" => Command::Conn(ConnCmd::Subscribe {
            patterns: spec.name == "psubscribe",
            names: a[1..].to_vec(),
        }),
        "unsubscribe" | "punsubscribe" => Command::Conn(ConnCmd::Unsubscribe {
            patterns: spec.name == "punsubscribe",
            names: a[1..].to_vec(),
        }),
        "publish" => Command::Write(WriteCmd::Publish {
            channel: a[1].clone(),
            message: a[2].clone(),
        }),
        "pubsub" => parse_pubsub(a)?,
        "expire" | "pexpire" | "expireat" | "pexpireat" => parse_expire(spec.name, a)?,
        "persist" => Command::Write(WriteCmd::Persist(a[1].clone())),
        "ttl" | "pttl" | "expiretime" | "pexpiretime" => Command::Read(ReadCmd::Ttl {
            key: a[1].clone(),
            ms: spec.name.starts_with('p'),
            absolute: spec.name.ends_with("time"),
        }),
        "getex" => parse_getex(a)?,
        "readwrite" => Command::Conn(ConnCmd::ReadWrite),
        "flushdb" | "flushall" => {
            match a.get(1) {
                None => {}
                Some(m) if a.len() == 2 && (is(m, "ASYNC") || is(m, "SYNC")) => {}
                Some(_) => return Err(CommandError::Syntax),
            }
            Command::Write(WriteCmd::Flush)
        }
        "get" => Command::Read(ReadCmd::Get(a[1].clone())),
        "mget" => Command::Read(ReadCmd::MGet(a[1..].to_vec())),
        "exists" => Command::Read(ReadCmd::Exists(a[1..].to_vec())),
        "type" => Command::Read(ReadCmd::Type(a[1].clone())),
        "strlen" => Command::Read(ReadCmd::StrLen(a[1].clone())),
        "keys" => Command::Read(ReadCmd::Keys(a[1].clone())),
        "scan" => parse_scan(a)?,
        "set" => parse_set(a)?,
        "setnx" => Command::Write(WriteCmd::SetNx {
            key: a[1].clone(),
            value: a[2].clone(),
        }),
        "getset" => Command::Write(WriteCmd::GetSet {
            key: a[1].clone(),
            value: a[2].clone(),
        }),
        "getdel" => Command::Write(WriteCmd::GetDel(a[1].clone())),
        "mset" => {
            if a.len().is_multiple_of(2) {
                return Err(CommandError::WrongArity("mset".into()));
            }
            let pairs = a[1..]
                .chunks_exact(2)
                .map(|kv| (kv[0].clone(), kv[1].clone()));
            Command::Write(WriteCmd::MSet(pairs.collect()))
        }
        "del" | "unlink" => Command::Write(WriteCmd::Del(a[1..].to_vec())),
        "incr" => Command::Write(WriteCmd::IncrBy {
            key: a[1].clone(),
            by: 1,
        }),
        "decr" => Command::Write(WriteCmd::IncrBy {
            key: a[1].clone(),
            by: -1,
        }),
        "incrby" => Command::Write(WriteCmd::IncrBy {
            key: a[1].clone(),
            by: int(&a[2])?,
        }),
        "decrby" => {
            let by = int(&a[2])?;
            let by = by
                .checked_neg()
                .ok_or_else(|| CommandError::other("ERR decrement would overflow"))?;
            Command::Write(WriteCmd::IncrBy {
                key: a[1].clone(),
                by,
            })
        }
        "incrbyfloat" => Command::Write(WriteCmd::IncrByFloat {
            key: a[1].clone(),
            by: float(&a[2])?,
        }),
        "append" => Command::Write(WriteCmd::Append {
            key: a[1].clone(),
            value: a[2].clone(),
        }),
        "batch_set" => {
            let (value, ts) = batch_sample(&a[2], &a[3])?;
            Command::BatchSet {
                key: a[1].clone(),
                value,
                ts,
            }
        }
        "batch_flush" => Command::BatchFlush,
        name if name.starts_with("ts.") || name == "tsdb_set" || name == "tsdb_get" => {
            ts::parse(name, a)?
        }
        other => {
            return Err(CommandError::other(format!(
                "ERR command '{other}' is not implemented yet"
            )));
        }
    };
    Ok(cmd)
}

/// The common forms of the hottest writes, read from a packed request without building its
/// argument vector: `SET key value`, `INCR key` and `TS.ADD key ts value [ON_DUPLICATE
/// policy]`, the name in any case. Some((the command's name as the table spells it, the
/// write)) when [`parse_as`] makes `Command::Write` of that write from the same arguments;
/// None for anything else, including the arguments `parse_as` refuses (the caller then
/// parses the request the general way, which gives every error).
pub fn parse_common_write(r: &PackedRequest<'_>) -> Option<(&'static str, WriteCmd)> {
    let name = r.arg(0);
    match r.len() {
        2 if name.eq_ignore_ascii_case(b"incr") => Some((
            "incr",
            WriteCmd::IncrBy {
                key: r.arg_bytes(1),
                by: 1,
            },
        )),
        3 if name.eq_ignore_ascii_case(b"set") => Some((
            "set",
            WriteCmd::Set {
                key: r.arg_bytes(1),
                value: r.arg_bytes(2),
                cond: None,
                get: false,
            },
        )),
        n @ (4 | 6) if name.eq_ignore_ascii_case(b"ts.add") => {
            let on_duplicate = (n == 6).then(|| (r.arg(4), r.arg(5)));
            let write = ts::add_common(r.arg_bytes(1), r.arg(2), r.arg(3), on_duplicate)?;
            Some(("ts.add", WriteCmd::Ts(write)))
        }
        _ => None,
    }
}

/// A `BATCH_SET`'s value and timestamp, from its third and fourth arguments: what the parser
/// and the node's packed path (`node::batch`) both read them with.
pub fn batch_sample(value: &[u8], ts: &[u8]) -> Result<(f64, u64), CommandError> {
    let value = float(value)?;
    let ts = uint(ts).map_err(|_| CommandError::other("ERR TSDB: invalid timestamp"))?;
    Ok((value, ts))
}

fn parse_hello(a: &[Bytes]) -> Result<Command, CommandError> {
    let mut it = Args::new(a, 1);
    let mut protover = None;
    if let Some(v) = it.peek() {
        let n = int(v).map_err(|_| {
            CommandError::other("ERR Protocol version is not an integer or out of range")
        })?;
        protover = Some(n);
        it.next_arg();
    }
    let (mut auth, mut setname) = (None, None);
    while let Some(opt) = it.next_arg() {
        if is(opt, "AUTH") {
            let user = it.value()?.clone();
            let pass = it.value()?.clone();
            auth = Some((user, pass));
        } else if is(opt, "SETNAME") {
            setname = Some(it.value()?.clone());
        } else {
            return Err(CommandError::other(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(opt)
            )));
        }
    }
    Ok(Command::Conn(ConnCmd::Hello {
        protover,
        auth,
        setname,
    }))
}

fn sub_arity(container: &str, sub: &str, ok: bool) -> Result<(), CommandError> {
    if ok {
        Ok(())
    } else {
        Err(CommandError::WrongArity(format!("{container}|{sub}")))
    }
}

fn unknown_sub(container: &str, sub: &[u8]) -> CommandError {
    CommandError::UnknownSubcommand {
        container: container.to_ascii_uppercase(),
        sub: String::from_utf8_lossy(sub).into_owned(),
    }
}

fn parse_client(a: &[Bytes]) -> Result<Command, CommandError> {
    let sub = &a[1];
    let n = a.len();
    let cmd = if is(sub, "ID") {
        sub_arity("client", "id", n == 2)?;
        ConnCmd::ClientId
    } else if is(sub, "SETNAME") {
        sub_arity("client", "setname", n == 3)?;
        if a[2].iter().any(|&b| b <= b' ' || b > b'~') {
            return Err(CommandError::other(
                "ERR Client names cannot contain spaces, newlines or special characters.",
            ));
        }
        ConnCmd::ClientSetName(a[2].clone())
    } else if is(sub, "GETNAME") {
        sub_arity("client", "getname", n == 2)?;
        ConnCmd::ClientGetName
    } else if is(sub, "SETINFO") {
        sub_arity("client", "setinfo", n == 4)?;
        if !(is(&a[2], "LIB-NAME") || is(&a[2], "LIB-VER")) {
            return Err(CommandError::other(format!(
                "ERR Unrecognized option '{}'",
                String::from_utf8_lossy(&a[2])
            )));
        }
        ConnCmd::ClientSetInfo
    } else if is(sub, "LIST") {
        ConnCmd::ClientList
    } else if is(sub, "INFO") {
        sub_arity("client", "info", n == 2)?;
        ConnCmd::ClientInfo
    } else {
        return Err(unknown_sub("client", sub));
    };
    Ok(Command::Conn(cmd))
}

fn parse_config(a: &[Bytes]) -> Result<Command, CommandError> {
    let sub = &a[1];
    let cmd = if is(sub, "GET") {
        sub_arity("config", "get", a.len() >= 3)?;
        ConnCmd::ConfigGet(a[2..].to_vec())
    } else if is(sub, "SET") {
        sub_arity("config", "set", a.len() >= 4 && a.len().is_multiple_of(2))?;
        ConnCmd::ConfigSet(
            a[2..]
                .chunks_exact(2)
                .map(|p| {
                    let name = String::from_utf8_lossy(&p[0]).to_ascii_lowercase();
                    (name, p[1].clone())
                })
                .collect(),
        )
    } else if is(sub, "RESETSTAT") {
        sub_arity("config", "resetstat", a.len() == 2)?;
        ConnCmd::ConfigResetStat
    } else {
        return Err(unknown_sub("config", sub));
    };
    Ok(Command::Conn(cmd))
}

fn parse_pubsub(a: &[Bytes]) -> Result<Command, CommandError> {
    let sub = &a[1];
    let cmd = if is(sub, "CHANNELS") {
        sub_arity("pubsub", "channels", a.len() <= 3)?;
        ConnCmd::PubSubChannels(a.get(2).cloned())
    } else if is(sub, "NUMSUB") {
        ConnCmd::PubSubNumSub(a[2..].to_vec())
    } else if is(sub, "NUMPAT") {
        sub_arity("pubsub", "numpat", a.len() == 2)?;
        ConnCmd::PubSubNumPat
    } else {
        return Err(unknown_sub("pubsub", sub));
    };
    Ok(Command::Conn(cmd))
}

fn parse_cluster(a: &[Bytes]) -> Result<Command, CommandError> {
    let sub = &a[1];
    let simple = [
        ("INFO", ClusterCmd::Info),
        ("MYID", ClusterCmd::MyId),
        ("NODES", ClusterCmd::Nodes),
        ("SLOTS", ClusterCmd::Slots),
        ("SHARDS", ClusterCmd::Shards),
    ];
    if let Some((name, cmd)) = simple.into_iter().find(|(n, _)| is(sub, n)) {
        sub_arity("cluster", &name.to_ascii_lowercase(), a.len() == 2)?;
        return Ok(Command::Conn(ConnCmd::Cluster(cmd)));
    }
    if is(sub, "ADDNODE") {
        sub_arity("cluster", "addnode", a.len() == 4)?;
        let id = node_id_arg(&a[2])?;
        let addr = String::from_utf8_lossy(&a[3]).into_owned();
        let bad = || CommandError::other("ERR address must be host:port@cport");
        let (client_addr, cport) = addr.split_once('@').ok_or_else(bad)?;
        let (_, port) = client_addr.rsplit_once(':').ok_or_else(bad)?;
        port.parse::<u16>().map_err(|_| bad())?;
        let cluster_port = cport.parse::<u16>().map_err(|_| bad())?;
        return Ok(Command::Conn(ConnCmd::Cluster(ClusterCmd::AddNode {
            id,
            client_addr: client_addr.to_string(),
            cluster_port,
        })));
    }
    if is(sub, "FORGET") {
        sub_arity("cluster", "forget", a.len() == 3)?;
        let id = node_id_arg(&a[2])?;
        return Ok(Command::Conn(ConnCmd::Cluster(ClusterCmd::Forget { id })));
    }
    if is(sub, "FAILOVER") {
        let force = match a.get(2) {
            None => false,
            Some(m) if a.len() == 3 && (is(m, "FORCE") || is(m, "TAKEOVER")) => true,
            Some(_) => return Err(CommandError::Syntax),
        };
        return Ok(Command::Conn(ConnCmd::Cluster(ClusterCmd::Failover {
            force,
        })));
    }
    Err(unknown_sub("cluster", sub))
}

/// A node id as a decimal number or as the 40 hex digits `CLUSTER NODES` shows.
fn node_id_arg(arg: &[u8]) -> Result<u64, CommandError> {
    let text = std::str::from_utf8(arg).unwrap_or_default();
    let id = if text.len() == 40 {
        u64::from_str_radix(text.trim_start_matches('0'), 16).ok()
    } else {
        text.parse::<u64>().ok()
    };
    id.filter(|&id| id > 0)
        .ok_or_else(|| CommandError::other(format!("ERR Unknown node {text}")))
}

fn parse_command(a: &[Bytes]) -> Result<Command, CommandError> {
    let Some(sub) = a.get(1) else {
        return Ok(Command::Conn(ConnCmd::CommandAll));
    };
    let cmd = if is(sub, "COUNT") {
        sub_arity("command", "count", a.len() == 2)?;
        ConnCmd::CommandCount
    } else if is(sub, "INFO") {
        ConnCmd::CommandInfo(a[2..].to_vec())
    } else if is(sub, "DOCS") {
        ConnCmd::CommandDocs(a[2..].to_vec())
    } else if is(sub, "GETKEYS") {
        sub_arity("command", "getkeys", a.len() >= 3)?;
        ConnCmd::CommandGetKeys(a[2..].to_vec())
    } else if is(sub, "LIST") {
        ConnCmd::CommandList
    } else {
        return Err(unknown_sub("command", sub));
    };
    Ok(Command::Conn(cmd))
}

fn parse_scan(a: &[Bytes]) -> Result<Command, CommandError> {
    let cursor = std::str::from_utf8(&a[1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| CommandError::other("ERR invalid cursor"))?;
    let (mut pattern, mut count, mut kind) = (None, 10, None);
    let mut it = Args::new(a, 2);
    while let Some(opt) = it.next_arg() {
        if is(opt, "MATCH") {
            pattern = Some(it.value()?.clone());
        } else if is(opt, "COUNT") {
            count = uint(it.value()?)?;
            if count == 0 {
                return Err(CommandError::Syntax);
            }
        } else if is(opt, "TYPE") {
            kind = Some(it.value()?.clone());
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok(Command::Read(ReadCmd::Scan {
        cursor,
        pattern,
        count: count.min(SCAN_COUNT_MAX),
        kind,
    }))
}

fn parse_set(a: &[Bytes]) -> Result<Command, CommandError> {
    let (key, value) = (a[1].clone(), a[2].clone());
    let (mut cond, mut get, mut ttl) = (None, false, None);
    let mut i = 3;
    while let Some(opt) = a.get(i) {
        i += 1;
        if is(opt, "NX") && cond.is_none() {
            cond = Some(SetCond::Nx);
        } else if is(opt, "XX") && cond.is_none() {
            cond = Some(SetCond::Xx);
        } else if is(opt, "GET") {
            get = true;
        } else if is(opt, "KEEPTTL") && ttl.is_none() {
            ttl = Some(TtlOpt::Keep);
        } else if let Some(unit) = ttl_unit(opt).filter(|_| ttl.is_none()) {
            let n = a.get(i).ok_or(CommandError::Syntax)?;
            i += 1;
            ttl = Some(TtlOpt::Set(ttl_when(unit, n, "set")?));
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok(Command::Write(match ttl {
        None => WriteCmd::Set {
            key,
            value,
            cond,
            get,
        },
        Some(ttl) => WriteCmd::SetTtl {
            key,
            value,
            cond,
            get,
            ttl,
        },
    }))
}

/// SET's and GETEX's EX, PX, EXAT, PXAT: (milliseconds per unit, absolute).
fn ttl_unit(opt: &[u8]) -> Option<(i64, bool)> {
    [
        ("EX", 1000, false),
        ("PX", 1, false),
        ("EXAT", 1000, true),
        ("PXAT", 1, true),
    ]
    .into_iter()
    .find(|(name, ..)| is(opt, name))
    .map(|(_, ms, abs)| (ms, abs))
}

/// The deadline of an EX/PX/EXAT/PXAT option: a positive integer that fits in milliseconds.
fn ttl_when((per, absolute): (i64, bool), n: &[u8], cmd: &str) -> Result<When, CommandError> {
    let n = int(n)?;
    let invalid = || CommandError::other(format!("ERR invalid expire time in '{cmd}' command"));
    if n <= 0 {
        return Err(invalid());
    }
    let ms = n.checked_mul(per).ok_or_else(invalid)?;
    Ok(if absolute { When::At(ms) } else { When::In(ms) })
}

fn parse_getex(a: &[Bytes]) -> Result<Command, CommandError> {
    let ttl = match &a[2..] {
        [] => None,
        [opt] if is(opt, "PERSIST") => Some(TtlOpt::Persist),
        [opt, n] => match ttl_unit(opt) {
            Some(unit) => Some(TtlOpt::Set(ttl_when(unit, n, "getex")?)),
            None => return Err(CommandError::Syntax),
        },
        _ => return Err(CommandError::Syntax),
    };
    Ok(Command::Write(WriteCmd::GetEx {
        key: a[1].clone(),
        ttl,
    }))
}

fn parse_expire(name: &str, a: &[Bytes]) -> Result<Command, CommandError> {
    let n = int(&a[2])?;
    let per = if name.starts_with('p') { 1 } else { 1000 };
    let invalid = || CommandError::other(format!("ERR invalid expire time in '{name}' command"));
    let ms = n.checked_mul(per).ok_or_else(invalid)?;
    let when = if name.ends_with("at") {
        When::At(ms)
    } else {
        When::In(ms)
    };
    let mut cond = None;
    for opt in &a[3..] {
        let conds = [
            ("NX", ExpireCond::Nx),
            ("XX", ExpireCond::Xx),
            ("GT", ExpireCond::Gt),
            ("LT", ExpireCond::Lt),
        ];
        let Some((_, c)) = conds.into_iter().find(|(n, _)| is(opt, n)) else {
            return Err(CommandError::other(format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(opt)
            )));
        };
        cond = Some(combine(cond, c)?);
    }
    Ok(Command::Write(WriteCmd::Expire {
        key: a[1].clone(),
        when,
        cond,
        name: name.to_string(),
    }))
}

/// EXPIRE's options together, with Redis's errors: NX goes with nothing else, GT not with LT;
/// XX with GT or LT is the comparison (which needs a deadline anyway).
fn combine(prev: Option<ExpireCond>, c: ExpireCond) -> Result<ExpireCond, CommandError> {
    use ExpireCond::{Gt, Lt, Nx, Xx};
    match (prev, c) {
        (None, c) => Ok(c),
        (Some(p), c) if p == c => Ok(c),
        (Some(Nx), _) | (_, Nx) => Err(CommandError::other(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        )),
        (Some(Gt), Lt) | (Some(Lt), Gt) => Err(CommandError::other(
            "ERR GT and LT options at the same time are not compatible",
        )),
        (Some(Xx), c) | (Some(c), Xx) => Ok(c),
        (Some(_), c) => Ok(c),
    }
}

/// Splits a command line on whitespace into request arguments (tests only: no quoting).
#[cfg(test)]
pub(crate) fn test_args(line: &str) -> Vec<Bytes> {
    line.split_whitespace()
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        parse(&test_args(s)).unwrap_err().to_string()
    }

    #[test]
    fn errors_match_redis_texts() {
        assert_eq!(
            err("GET"),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            err("foo a b"),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            err("foo"),
            "ERR unknown command 'foo', with args beginning with: "
        );
        assert_eq!(
            err("INCRBY k x"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(err("INCRBYFLOAT k x"), "ERR value is not a valid float");
        assert_eq!(err("SET k v NX XX"), "ERR syntax error");
        assert_eq!(
            err("CLIENT FOO"),
            "ERR unknown subcommand 'FOO'. Try CLIENT HELP."
        );
        assert_eq!(
            err("CLIENT SETNAME"),
            "ERR wrong number of arguments for 'client|setname' command"
        );
        assert_eq!(
            err("MSET a b c"),
            "ERR wrong number of arguments for 'mset' command"
        );
        assert_eq!(
            err("DECRBY k -9223372036854775808"),
            "ERR decrement would overflow"
        );
    }

    #[test]
    fn parses_typed_commands() {
        assert_eq!(
            parse(&test_args("set k v nx get")).unwrap(),
            Command::Write(WriteCmd::Set {
                key: "k".into(),
                value: "v".into(),
                cond: Some(SetCond::Nx),
                get: true
            })
        );
        assert_eq!(
            parse(&test_args("DECRBY k 5")).unwrap(),
            Command::Write(WriteCmd::IncrBy {
                key: "k".into(),
                by: -5
            })
        );
        assert_eq!(
            parse(&test_args("SCAN 0 MATCH a* COUNT 1000000000 TYPE string")).unwrap(),
            Command::Read(ReadCmd::Scan {
                cursor: 0,
                pattern: Some("a*".into()),
                count: SCAN_COUNT_MAX,
                kind: Some("string".into())
            })
        );
        assert_eq!(
            parse(&test_args("hello 3 SETNAME app")).unwrap(),
            Command::Conn(ConnCmd::Hello {
                protover: Some(3),
                auth: None,
                setname: Some("app".into())
            })
        );
    }

    /// What the common-write proptest draws the name and each following argument from,
    /// `|`-separated: the fast forms' names and others', and for each position values its
    /// parsers accept and refuse (an empty one among them).
    const COMMON_NAMES: &str =
        "SET|set|sEt|INCR|incr|TS.ADD|ts.add|Ts.Add|GET|TS.MADD|SETNX|INCRBY";
    const COMMON_ARGS: [&str; 5] = [
        "k|v|1|",
        "1|10|*|-1|x|01|18446744073709551616|9223372036854775807|1.5|NX",
        "1|1.5|-1|nan|NaN|x|1e400|01|-0||v|10|ON_DUPLICATE",
        "ON_DUPLICATE|on_duplicate|RETENTION|NX|GET|LAST|x|",
        "LAST|last|BLOCK|MIN|SUM|max|FIRST|x|1|",
    ];

    fn pick(tokens: &'static str) -> impl proptest::strategy::Strategy<Value = &'static str> {
        proptest::sample::select(tokens.split('|').collect::<Vec<_>>())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// The packed fast path parses exactly what the general parser does wherever it
        /// answers, and answers for every request of its forms that the parser accepts.
        #[test]
        fn common_writes_parse_as_the_general_parser(
            name in pick(COMMON_NAMES),
            rest in (
                pick(COMMON_ARGS[0]),
                pick(COMMON_ARGS[1]),
                pick(COMMON_ARGS[2]),
                pick(COMMON_ARGS[3]),
                pick(COMMON_ARGS[4]),
            ),
            len in 0usize..=5,
        ) {
            let rest = [rest.0, rest.1, rest.2, rest.3, rest.4];
            let mut args = vec![Bytes::from_static(name.as_bytes())];
            args.extend(rest[..len].iter().map(|t| Bytes::from_static(t.as_bytes())));
            let packed = crate::resp::Packed::from_requests([(&args[..], 0)]);
            let request = packed.iter().next().expect("one request");
            let spec = lookup(&args[0]);
            let general = parse_as(spec, &args);
            let fast = parse_common_write(&request);
            if let Some((table_name, write)) = &fast {
                proptest::prop_assert_eq!(spec.map(|s| s.name), Some(*table_name));
                // Debug, not ==: a NaN sample is the same write though NaN != NaN.
                proptest::prop_assert_eq!(
                    format!("{general:?}"),
                    format!("{:?}", Ok::<_, CommandError>(Command::Write(write.clone())))
                );
            }
            let upper = name.to_ascii_uppercase();
            let fast_form = match (upper.as_str(), args.len()) {
                ("SET", 3) | ("INCR", 2) | ("TS.ADD", 4) => true,
                ("TS.ADD", 6) => is(&args[4], "ON_DUPLICATE"),
                _ => false,
            };
            if fast_form && matches!(general, Ok(Command::Write(_))) {
                proptest::prop_assert!(fast.is_some(), "declined {:?}", args);
            }
            if !fast_form {
                proptest::prop_assert!(fast.is_none(), "took {:?}", args);
            }
        }
    }

    #[test]
    fn write_commands_round_trip_through_postcard() {
        let w = WriteCmd::MSet(vec![
            ("a".into(), "1".into()),
            ("b".into(), Bytes::from_static(&[0, 255])),
        ]);
        let bytes = postcard::to_allocvec(&w).unwrap();
        assert_eq!(postcard::from_bytes::<WriteCmd>(&bytes).unwrap(), w);
    }
}
