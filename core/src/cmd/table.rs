//! The command table: name, arity, flags and key positions of every command tickdb serves.
//!
//! It answers `COMMAND`, `COMMAND INFO`, `COMMAND DOCS`, `COMMAND COUNT` and `COMMAND GETKEYS`.
//! Cluster-aware clients (redis-py's `RedisCluster`, go-redis) route requests by the key
//! positions given here, so they must be right for every command.

use bytes::Bytes;

use crate::resp::Frame;

/// One command's static description, in Redis's `COMMAND` terms.
#[derive(Clone, Copy, Debug)]
pub struct CommandSpec {
    /// Lower-case name as clients send it (case-insensitive on the wire).
    pub name: &'static str,
    /// Number of arguments including the name; negative means "at least -arity".
    pub arity: i32,
    pub flags: &'static [&'static str],
    /// Position of the first key (0: no keys).
    pub first_key: i32,
    /// Position of the last key; -1 means the last argument.
    pub last_key: i32,
    /// Step between keys (2 for `MSET k v k v`).
    pub step: i32,
    pub group: &'static str,
    pub since: &'static str,
    pub summary: &'static str,
}

const fn spec(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    keys: (i32, i32, i32),
    group: &'static str,
    since: &'static str,
    summary: &'static str,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key: keys.0,
        last_key: keys.1,
        step: keys.2,
        group,
        since,
        summary,
    }
}

const NO_KEYS: (i32, i32, i32) = (0, 0, 0);
const ONE_KEY: (i32, i32, i32) = (1, 1, 1);
const ALL_KEYS: (i32, i32, i32) = (1, -1, 1);

const R: &[&str] = &["readonly", "fast"];
const R_SLOW: &[&str] = &["readonly"];
const W: &[&str] = &["write", "denyoom", "fast"];
const W_SLOW: &[&str] = &["write"];
const CONN: &[&str] = &["fast", "stale", "loading"];
const ADMIN: &[&str] = &["admin", "noscript", "loading", "stale"];

/// Every command, sorted by name (`COMMAND` lists them in this order; a unit test checks it).
pub static COMMANDS: &[CommandSpec] = &[
    spec(
        "append",
        3,
        W,
        ONE_KEY,
        "string",
        "2.0.0",
        "Appends a string to the value of a key. Creates the key if it doesn't exist.",
    ),
    spec(
        "auth",
        -2,
        &["noscript", "loading", "stale", "fast", "no-auth"],
        NO_KEYS,
        "connection",
        "1.0.0",
        "Authenticates the connection.",
    ),
    spec(
        "batch_flush",
        1,
        W_SLOW,
        NO_KEYS,
        "tickdb",
        "0.1.0",
        "Applies the connection's BATCH_SET buffer as one atomic write and replies with the count.",
    ),
    spec(
        "batch_set",
        4,
        &["fast"],
        ONE_KEY,
        "tickdb",
        "0.1.0",
        "Buffers a sample (key value timestamp) on the connection until BATCH_FLUSH.",
    ),
    spec(
        "client",
        -2,
        &["noscript", "loading", "stale"],
        NO_KEYS,
        "connection",
        "2.4.0",
        "A container for client connection commands.",
    ),
    spec(
        "cluster",
        -2,
        &["loading", "stale"],
        NO_KEYS,
        "cluster",
        "3.0.0",
        "CLUSTER INFO | MYID | NODES | SLOTS | SHARDS | FAILOVER [FORCE|TAKEOVER] | ADDNODE id host:port@cport | FORGET id: the Raft cluster seen as one Redis Cluster shard owning every slot.",
    ),
    spec(
        "cluster_info",
        1,
        CONN,
        NO_KEYS,
        "tickdb",
        "0.1.0",
        "Returns the node's cluster state as INFO-style text (seed dialect).",
    ),
    spec(
        "command",
        -1,
        &["loading", "stale"],
        NO_KEYS,
        "server",
        "2.8.13",
        "Returns detailed information about all commands.",
    ),
    spec(
        "config",
        -2,
        ADMIN,
        NO_KEYS,
        "server",
        "2.0.0",
        "A container for server configuration commands.",
    ),
    spec(
        "dbsize",
        1,
        R,
        NO_KEYS,
        "server",
        "1.0.0",
        "Returns the number of keys in the database.",
    ),
    spec(
        "decr",
        2,
        W,
        ONE_KEY,
        "string",
        "1.0.0",
        "Decrements the integer value of a key by one.",
    ),
    spec(
        "decrby",
        3,
        W,
        ONE_KEY,
        "string",
        "1.0.0",
        "Decrements a number from the integer value of a key.",
    ),
    spec(
        "del",
        -2,
        W_SLOW,
        ALL_KEYS,
        "generic",
        "1.0.0",
        "Deletes one or more keys.",
    ),
    spec(
        "discard",
        1,
        &["noscript", "loading", "stale", "fast", "allow_busy"],
        NO_KEYS,
        "transactions",
        "2.0.0",
        "Discards a transaction.",
    ),
    spec(
        "echo",
        2,
        CONN,
        NO_KEYS,
        "connection",
        "1.0.0",
        "Returns the given string.",
    ),
    spec(
        "exec",
        1,
        &["noscript", "loading", "stale", "skip_slowlog"],
        NO_KEYS,
        "transactions",
        "1.2.0",
        "Executes all commands in a transaction.",
    ),
    spec(
        "exists",
        -2,
        R,
        ALL_KEYS,
        "generic",
        "1.0.0",
        "Determines whether one or more keys exist.",
    ),
    spec(
        "expire",
        -3,
        &["write", "fast"],
        ONE_KEY,
        "generic",
        "1.0.0",
        "Sets the expiration time of a key in seconds.",
    ),
    spec(
        "expireat",
        -3,
        &["write", "fast"],
        ONE_KEY,
        "generic",
        "1.2.0",
        "Sets the expiration time of a key to a Unix timestamp.",
    ),
    spec(
        "expiretime",
        2,
        R,
        ONE_KEY,
        "generic",
        "7.0.0",
        "Returns the expiration time of a key as a Unix timestamp.",
    ),
    spec(
        "flushall",
        -1,
        &["write"],
        NO_KEYS,
        "server",
        "1.0.0",
        "Removes all keys from all databases.",
    ),
    spec(
        "flushdb",
        -1,
        &["write"],
        NO_KEYS,
        "server",
        "1.0.0",
        "Remove all keys from the current database.",
    ),
    spec(
        "get",
        2,
        R,
        ONE_KEY,
        "string",
        "1.0.0",
        "Returns the string value of a key.",
    ),
    spec(
        "getdel",
        2,
        &["write", "fast"],
        ONE_KEY,
        "string",
        "6.2.0",
        "Returns the string value of a key after deleting the key.",
    ),
    spec(
        "getex",
        -2,
        &["write", "fast"],
        ONE_KEY,
        "string",
        "6.2.0",
        "Returns the string value of a key after setting its expiration time.",
    ),
    spec(
        "getset",
        3,
        W,
        ONE_KEY,
        "string",
        "1.0.0",
        "Returns the previous string value of a key after setting it to a new value.",
    ),
    spec(
        "hello",
        -1,
        &["noscript", "loading", "stale", "fast", "no-auth"],
        NO_KEYS,
        "connection",
        "6.0.0",
        "Handshakes with the server: protocol version, authentication, client name.",
    ),
    spec(
        "incr",
        2,
        W,
        ONE_KEY,
        "string",
        "1.0.0",
        "Increments the integer value of a key by one.",
    ),
    spec(
        "incrby",
        3,
        W,
        ONE_KEY,
        "string",
        "1.0.0",
        "Increments the integer value of a key by a number.",
    ),
    spec(
        "incrbyfloat",
        3,
        W,
        ONE_KEY,
        "string",
        "2.6.0",
        "Increment the floating point value of a key by a number.",
    ),
    spec(
        "info",
        -1,
        &["loading", "stale"],
        NO_KEYS,
        "server",
        "1.0.0",
        "Returns information and statistics about the server.",
    ),
    spec(
        "keys",
        2,
        R_SLOW,
        NO_KEYS,
        "generic",
        "1.0.0",
        "Returns all key names that match a pattern.",
    ),
    spec(
        "mget",
        -2,
        R,
        ALL_KEYS,
        "string",
        "1.0.0",
        "Atomically returns the string values of one or more keys.",
    ),
    spec(
        "module",
        -2,
        &[],
        NO_KEYS,
        "server",
        "4.0.0",
        "A container for module commands.",
    ),
    spec(
        "mset",
        -3,
        &["write", "denyoom"],
        (1, -1, 2),
        "string",
        "1.0.1",
        "Atomically creates or modifies the string values of one or more keys.",
    ),
    spec(
        "multi",
        1,
        &["noscript", "loading", "stale", "fast", "allow_busy"],
        NO_KEYS,
        "transactions",
        "1.2.0",
        "Starts a transaction.",
    ),
    spec(
        "persist",
        2,
        &["write", "fast"],
        ONE_KEY,
        "generic",
        "2.2.0",
        "Removes the expiration time of a key.",
    ),
    spec(
        "pexpire",
        -3,
        &["write", "fast"],
        ONE_KEY,
        "generic",
        "2.6.0",
        "Sets the expiration time of a key in milliseconds.",
    ),
    spec(
        "pexpireat",
        -3,
        &["write", "fast"],
        ONE_KEY,
        "generic",
        "2.6.0",
        "Sets the expiration time of a key to a Unix milliseconds timestamp.",
    ),
    spec(
        "pexpiretime",
        2,
        R,
        ONE_KEY,
        "generic",
        "7.0.0",
        "Returns the expiration time of a key as a Unix milliseconds timestamp.",
    ),
    spec(
        "ping",
        -1,
        CONN,
        NO_KEYS,
        "connection",
        "1.0.0",
        "Returns the server's liveliness response.",
    ),
    spec(
        "psubscribe",
        -2,
        &["pubsub", "noscript", "loading", "stale"],
        NO_KEYS,
        "pubsub",
        "2.0.0",
        "Listens for messages published to channels that match one or more patterns.",
    ),
    spec(
        "pttl",
        2,
        R,
        ONE_KEY,
        "generic",
        "2.6.0",
        "Returns the expiration time in milliseconds of a key.",
    ),
    spec(
        "publish",
        3,
        &["pubsub", "loading", "stale", "fast", "may_replicate"],
        NO_KEYS,
        "pubsub",
        "2.0.0",
        "Posts a message to a channel.",
    ),
    spec(
        "pubsub",
        -2,
        &[],
        NO_KEYS,
        "pubsub",
        "2.8.0",
        "A container for Pub/Sub commands.",
    ),
    spec(
        "punsubscribe",
        -1,
        &["pubsub", "noscript", "loading", "stale"],
        NO_KEYS,
        "pubsub",
        "2.0.0",
        "Stops listening to messages published to channels that match one or more patterns.",
    ),
    spec(
        "quit",
        -1,
        &["noscript", "loading", "stale", "fast", "no-auth"],
        NO_KEYS,
        "connection",
        "1.0.0",
        "Closes the connection.",
    ),
    spec(
        "readonly",
        1,
        CONN,
        NO_KEYS,
        "cluster",
        "3.0.0",
        "Enables stale reads from a replica on this connection.",
    ),
    spec(
        "readwrite",
        1,
        CONN,
        NO_KEYS,
        "cluster",
        "3.0.0",
        "Disables stale reads on this connection (the default).",
    ),
    spec(
        "reset",
        1,
        &["noscript", "loading", "stale", "fast", "no-auth"],
        NO_KEYS,
        "connection",
        "6.2.0",
        "Resets the connection.",
    ),
    spec(
        "scan",
        -2,
        R_SLOW,
        NO_KEYS,
        "generic",
        "2.8.0",
        "Iterates over the key names in the database.",
    ),
    spec(
        "select",
        2,
        CONN,
        NO_KEYS,
        "connection",
        "1.0.0",
        "Changes the selected database (only database 0 exists).",
    ),
    spec(
        "set",
        -3,
        &["write", "denyoom"],
        ONE_KEY,
        "string",
        "1.0.0",
        "Sets the string value of a key. The key is created if it doesn't exist.",
    ),
    spec(
        "setnx",
        3,
        W,
        ONE_KEY,
        "string",
        "1.0.0",
        "Set the string value of a key only when the key doesn't exist.",
    ),
    spec(
        "strlen",
        2,
        R,
        ONE_KEY,
        "string",
        "2.2.0",
        "Returns the length of a string value.",
    ),
    spec(
        "subscribe",
        -2,
        &["pubsub", "noscript", "loading", "stale"],
        NO_KEYS,
        "pubsub",
        "2.0.0",
        "Listens for messages published to channels.",
    ),
    spec(
        "time",
        1,
        CONN,
        NO_KEYS,
        "server",
        "2.6.0",
        "Returns the server time.",
    ),
    spec(
        "ts.add",
        -4,
        W,
        ONE_KEY,
        "timeseries",
        "1.0.0",
        "Appends a sample to a time series (creating it if needed).",
    ),
    spec(
        "ts.alter",
        -2,
        W,
        ONE_KEY,
        "timeseries",
        "1.0.0",
        "Updates the retention, chunk size, duplicate policy, IGNORE thresholds and labels of an existing time series.",
    ),
    spec(
        "ts.create",
        -2,
        W,
        ONE_KEY,
        "timeseries",
        "1.0.0",
        "Creates a new time series.",
    ),
    spec(
        "ts.createrule",
        -6,
        W_SLOW,
        (1, 2, 1),
        "timeseries",
        "1.0.0",
        "Creates a compaction rule from a source series into a destination series (computing it from existing samples).",
    ),
    spec(
        "ts.decrby",
        -3,
        W,
        ONE_KEY,
        "timeseries",
        "1.0.0",
        "Decreases the value of the sample with the maximum existing timestamp, or creates a new sample with a value equal to the value of the sample with the maximum existing timestamp with a given decrement.",
    ),
    spec(
        "ts.del",
        4,
        W_SLOW,
        ONE_KEY,
        "timeseries",
        "1.0.0",
        "Deletes all samples between two timestamps for a given time series.",
    ),
    spec(
        "ts.deleterule",
        3,
        W,
        (1, 2, 1),
        "timeseries",
        "1.0.0",
        "Deletes a compaction rule.",
    ),
    spec(
        "ts.get",
        -2,
        R,
        ONE_KEY,
        "timeseries",
        "1.0.0",
        "Gets the sample with the highest timestamp from a given time series.",
    ),
    spec(
        "ts.incrby",
        -3,
        W,
        ONE_KEY,
        "timeseries",
        "1.0.0",
        "Increases the value of the sample with the maximum existing timestamp, or creates a new sample with a value equal to the value of the sample with the maximum existing timestamp with a given increment.",
    ),
    spec(
        "ts.info",
        -2,
        R,
        ONE_KEY,
        "timeseries",
        "1.0.0",
        "Returns information and statistics for a time series.",
    ),
    spec(
        "ts.madd",
        -4,
        W,
        (1, -1, 3),
        "timeseries",
        "1.0.0",
        "Appends new samples to one or more existing time series.",
    ),
    spec(
        "ts.mdel",
        -5,
        W_SLOW,
        NO_KEYS,
        "timeseries",
        "0.1.0",
        "Deletes the samples between two timestamps of every time series matching a filter (tickdb).",
    ),
    spec(
        "ts.mget",
        -3,
        R,
        NO_KEYS,
        "timeseries",
        "1.0.0",
        "Gets the sample with the highest timestamp from each time series matching a specific filter.",
    ),
    spec(
        "ts.mrange",
        -5,
        R_SLOW,
        NO_KEYS,
        "timeseries",
        "1.0.0",
        "Queries a range across multiple time series by filters in forward direction.",
    ),
    spec(
        "ts.mrevrange",
        -5,
        R_SLOW,
        NO_KEYS,
        "timeseries",
        "1.0.0",
        "Queries a range across multiple time-series by filters in reverse direction.",
    ),
    spec(
        "ts.nrange",
        -5,
        &["readonly", "movablekeys"],
        NO_KEYS,
        "timeseries",
        "8.10.0",
        "Queries a range across an explicit list of time series in forward direction, grouped by timestamp.",
    ),
    spec(
        "ts.nrevrange",
        -5,
        &["readonly", "movablekeys"],
        NO_KEYS,
        "timeseries",
        "8.10.0",
        "Queries a range across an explicit list of time series in reverse direction, grouped by timestamp.",
    ),
    spec(
        "ts.queryindex",
        -2,
        R_SLOW,
        NO_KEYS,
        "timeseries",
        "1.0.0",
        "Gets all time series keys matching a filter list.",
    ),
    spec(
        "ts.querylabels",
        -2,
        R_SLOW,
        NO_KEYS,
        "timeseries",
        "0.1.0",
        "Lists the label names, or the values of one label, of the series matching a filter.",
    ),
    spec(
        "ts.range",
        -4,
        R_SLOW,
        ONE_KEY,
        "timeseries",
        "1.0.0",
        "Queries a range in forward direction.",
    ),
    spec(
        "ts.read",
        -3,
        &["readonly", "blocking"],
        ONE_KEY,
        "timeseries",
        "8.10.0",
        "Reads the oldest samples at or after a timestamp; with BLOCK, waits until enough exist.",
    ),
    spec(
        "ts.revrange",
        -4,
        R_SLOW,
        ONE_KEY,
        "timeseries",
        "1.0.0",
        "Queries a range in reverse direction.",
    ),
    spec(
        "tsdb_get",
        4,
        R_SLOW,
        ONE_KEY,
        "tickdb",
        "0.1.0",
        "Returns the samples of a series between two timestamps (seed dialect).",
    ),
    spec(
        "tsdb_set",
        4,
        W,
        ONE_KEY,
        "tickdb",
        "0.1.0",
        "Adds a sample (key timestamp value) to a series (seed dialect).",
    ),
    spec(
        "ttl",
        2,
        R,
        ONE_KEY,
        "generic",
        "1.0.0",
        "Returns the expiration time in seconds of a key.",
    ),
    spec(
        "type",
        2,
        R,
        ONE_KEY,
        "generic",
        "1.0.0",
        "Determines the type of value stored at a key.",
    ),
    spec(
        "unlink",
        -2,
        W,
        ALL_KEYS,
        "generic",
        "4.0.0",
        "Deletes one or more keys.",
    ),
    spec(
        "unsubscribe",
        -1,
        &["pubsub", "noscript", "loading", "stale"],
        NO_KEYS,
        "pubsub",
        "2.0.0",
        "Stops listening to messages posted to channels.",
    ),
    spec(
        "unwatch",
        1,
        &["noscript", "loading", "stale", "fast", "allow_busy"],
        NO_KEYS,
        "transactions",
        "2.2.0",
        "Forgets about watched keys of a transaction.",
    ),
    spec(
        "watch",
        -2,
        &["noscript", "loading", "stale", "fast", "allow_busy"],
        ALL_KEYS,
        "transactions",
        "2.2.0",
        "Monitors changes to keys to determine the execution of a transaction.",
    ),
];

/// Bytes of the longest command name (the table test checks every name fits).
const NAME_MAX: usize = 32;

/// Buckets of [`BY_HASH`]: a power of two, a few times the number of commands.
const BUCKETS: usize = 1024;

/// FNV-1a of a lowercased name, reduced to a bucket (fixed: the table is the same in every
/// process).
fn bucket(lower: &[u8]) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for &b in lower {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (h as usize) & (BUCKETS - 1)
}

/// Indexes into [`COMMANDS`] by the bucket of their name: up to `u16::MAX` commands, with
/// names colliding in a bucket chained through `next`.
struct ByHash {
    head: [u16; BUCKETS],
    next: Vec<u16>,
}

const NONE: u16 = u16::MAX;

static BY_HASH: std::sync::OnceLock<ByHash> = std::sync::OnceLock::new();

fn by_hash() -> &'static ByHash {
    BY_HASH.get_or_init(|| {
        let mut t = ByHash {
            head: [NONE; BUCKETS],
            next: vec![NONE; COMMANDS.len()],
        };
        for (i, spec) in COMMANDS.iter().enumerate().rev() {
            let i = u16::try_from(i).expect("fewer than 65,535 commands");
            let b = bucket(spec.name.as_bytes());
            t.next[usize::from(i)] = t.head[b];
            t.head[b] = i;
        }
        t
    })
}

/// Looks a command up by name, case-insensitively: the name is lowercased once into a stack
/// buffer and found by hash (every request looks its name up, and a binary search of byte
/// strings was ~6% of the server's CPU under `GET -P 16`).
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut buf = [0u8; NAME_MAX];
    let lower = buf.get_mut(..name.len())?;
    for (l, c) in lower.iter_mut().zip(name) {
        *l = c.to_ascii_lowercase();
    }
    let lower = &*lower;
    let t = by_hash();
    let mut i = t.head[bucket(lower)];
    while i != NONE {
        let spec = &COMMANDS[usize::from(i)];
        if spec.name.as_bytes() == lower {
            return Some(spec);
        }
        i = t.next[usize::from(i)];
    }
    None
}

impl CommandSpec {
    /// Whether `argc` arguments (name included) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = i64::try_from(argc).unwrap_or(i64::MAX);
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    pub fn is_write(&self) -> bool {
        self.flags.contains(&"write")
    }

    /// The positions of the keys in `args` (name at 0), per first/last/step.
    pub fn key_positions(&self, argc: usize) -> Vec<usize> {
        if self.first_key <= 0 || argc == 0 {
            return Vec::new();
        }
        let argc = i64::try_from(argc).unwrap_or(i64::MAX);
        let last = if self.last_key < 0 {
            argc + i64::from(self.last_key)
        } else {
            i64::from(self.last_key).min(argc - 1)
        };
        let step = i64::from(self.step.max(1));
        let mut out = Vec::new();
        let mut pos = i64::from(self.first_key);
        while pos <= last {
            out.push(usize::try_from(pos).unwrap_or(usize::MAX));
            pos += step;
        }
        out
    }

    /// This command's entry in the reply to `COMMAND` / `COMMAND INFO` (Redis 7 layout, with
    /// Redis's types: flags and categories are simple strings, map keys bulk strings).
    pub fn info_frame(&self) -> Frame {
        let flags = self
            .flags
            .iter()
            .map(|f| Frame::Simple(Bytes::from_static(f.as_bytes())));
        let category = format!("@{}", self.group);
        Frame::Array(vec![
            Frame::bulk(Bytes::from_static(self.name.as_bytes())),
            Frame::Integer(i64::from(self.arity)),
            Frame::Set(flags.collect()),
            Frame::Integer(i64::from(self.first_key)),
            Frame::Integer(i64::from(self.last_key)),
            Frame::Integer(i64::from(self.step)),
            Frame::Set(vec![Frame::Simple(Bytes::from(category))]),
            Frame::Set(Vec::new()),
            Frame::Set(self.key_specs()),
            Frame::Set(Vec::new()),
        ])
    }

    fn key_specs(&self) -> Vec<Frame> {
        if self.first_key <= 0 {
            return Vec::new();
        }
        let rw = if self.is_write() { "RW" } else { "RO" };
        let keystep = Frame::Integer(i64::from(self.step));
        let lastkey = Frame::Integer(if self.last_key < 0 {
            i64::from(self.last_key)
        } else {
            i64::from(self.last_key - self.first_key)
        });
        let key = |k: &'static str| Frame::bulk(Bytes::from_static(k.as_bytes()));
        vec![Frame::Map(vec![
            (
                key("flags"),
                Frame::Set(vec![Frame::Simple(Bytes::from_static(rw.as_bytes()))]),
            ),
            (
                key("begin_search"),
                Frame::Map(vec![
                    (key("type"), key("index")),
                    (
                        key("spec"),
                        Frame::Map(vec![(
                            key("index"),
                            Frame::Integer(i64::from(self.first_key)),
                        )]),
                    ),
                ]),
            ),
            (
                key("find_keys"),
                Frame::Map(vec![
                    (key("type"), key("range")),
                    (
                        key("spec"),
                        Frame::Map(vec![
                            (key("lastkey"), lastkey),
                            (key("keystep"), keystep),
                            (key("limit"), Frame::Integer(0)),
                        ]),
                    ),
                ]),
            ),
        ])]
    }

    /// This command's entry in the reply to `COMMAND DOCS`.
    pub fn docs_frame(&self) -> Frame {
        super::docs::docs_frame(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_every_command_in_any_case_and_nothing_else() {
        for spec in COMMANDS {
            let upper = spec.name.to_ascii_uppercase();
            for name in [spec.name.to_string(), upper] {
                let found = lookup(name.as_bytes()).map(|s| s.name);
                assert_eq!(found, Some(spec.name), "{name}");
            }
            let mut longer = spec.name.as_bytes().to_vec();
            longer.push(b'x');
            assert!(lookup(&longer).is_none_or(|s| s.name.as_bytes() == longer));
            assert!(lookup(&spec.name.as_bytes()[1..]).is_none_or(|s| s.name != spec.name));
        }
        for name in [&b""[..], b"gett", b"ts.ad", b"\xff\xfe", &[b'a'; 40]] {
            assert!(lookup(name).is_none(), "{name:?}");
        }
    }

    #[test]
    fn table_is_sorted_and_unique() {
        for pair in COMMANDS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} !< {}",
                pair[0].name,
                pair[1].name
            );
        }
        for spec in COMMANDS {
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            assert!(
                spec.name.len() <= NAME_MAX,
                "{} is too long to look up",
                spec.name
            );
            assert!(std::ptr::eq(
                lookup(spec.name.to_ascii_uppercase().as_bytes()).unwrap(),
                spec
            ));
        }
        assert!(lookup(b"nosuchcommand").is_none());
        assert!(lookup(&[b'a'; NAME_MAX + 1]).is_none());
        assert!(lookup(b"").is_none());
    }

    #[test]
    fn arity_and_key_positions() {
        let get = lookup(b"GET").unwrap();
        assert!(get.arity_ok(2) && !get.arity_ok(1) && !get.arity_ok(3));
        let mset = lookup(b"mset").unwrap();
        assert!(mset.arity_ok(5) && !mset.arity_ok(2));
        assert_eq!(mset.key_positions(5), vec![1, 3]);
        assert_eq!(lookup(b"del").unwrap().key_positions(4), vec![1, 2, 3]);
        assert_eq!(
            lookup(b"ping").unwrap().key_positions(2),
            Vec::<usize>::new()
        );
    }
}
