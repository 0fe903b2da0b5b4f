//! `COMMAND DOCS`: each command's summary, group and argument tree, in the types Redis sends.
//!
//! redis-cli reads `COMMAND DOCS` as soon as it starts interactively (and for `echo CMD |
//! redis-cli`) and asserts on the type of every element: map keys and string values are bulk
//! strings, argument flags are simple strings, argument lists are arrays. Its hints (the grey
//! text after a typed command name) are rendered from the `arguments` tree.
//!
//! The argument trees are written here in the syntax Redis's documentation uses and parsed
//! into the tree `COMMAND DOCS` sends:
//!
//! - `name` is a value argument of type string; `name:type` names the type (`key`, `integer`,
//!   `double`, `pattern`, `unix-time`, `string`).
//! - An UPPERCASE word is a token: alone, a `pure-token`; followed by one value in the same
//!   group, that value's `token`; followed by several, a `block` with that token.
//! - `[...]` is optional, `(a|b)` and `[a|b]` are alternatives (`oneof`), a trailing `...`
//!   repeats (`multiple`).

use bytes::Bytes;

use super::table::CommandSpec;
use crate::resp::Frame;

/// Argument syntax per command (lower-case name), in the notation described above. A command
/// without an entry takes no arguments.
const SYNTAX: &[(&str, &str)] = &[
    ("append", "key:key value"),
    ("auth", "[username] password"),
    ("batch_set", "key:key value:double timestamp:integer"),
    ("dbsize", ""),
    ("decr", "key:key"),
    ("decrby", "key:key decrement:integer"),
    ("del", "key:key..."),
    ("echo", "message"),
    ("exists", "key:key..."),
    ("expire", "key:key seconds:integer [NX|XX|GT|LT]"),
    (
        "expireat",
        "key:key unix-time-seconds:unix-time [NX|XX|GT|LT]",
    ),
    ("expiretime", "key:key"),
    ("flushall", "[ASYNC|SYNC]"),
    ("flushdb", "[ASYNC|SYNC]"),
    ("get", "key:key"),
    ("getdel", "key:key"),
    (
        "getex",
        "key:key [EX seconds:integer|PX milliseconds:integer|EXAT unix-time-seconds:unix-time|PXAT unix-time-milliseconds:unix-time|PERSIST]",
    ),
    ("getset", "key:key value"),
    (
        "hello",
        "[protover:integer [AUTH username password] [SETNAME clientname]]",
    ),
    ("incr", "key:key"),
    ("incrby", "key:key increment:integer"),
    ("incrbyfloat", "key:key increment:double"),
    ("info", "[section...]"),
    ("keys", "pattern:pattern"),
    ("mget", "key:key..."),
    ("mset", "(key:key value)..."),
    ("persist", "key:key"),
    ("pexpire", "key:key milliseconds:integer [NX|XX|GT|LT]"),
    (
        "pexpireat",
        "key:key unix-time-milliseconds:unix-time [NX|XX|GT|LT]",
    ),
    ("pexpiretime", "key:key"),
    ("ping", "[message]"),
    ("psubscribe", "pattern:pattern..."),
    ("pttl", "key:key"),
    ("publish", "channel message"),
    ("punsubscribe", "[pattern:pattern...]"),
    (
        "scan",
        "cursor:integer [MATCH pattern:pattern] [COUNT count:integer] [TYPE type]",
    ),
    ("select", "index:integer"),
    (
        "set",
        "key:key value [NX|XX] [GET] [EX seconds:integer|PX milliseconds:integer|EXAT unix-time-seconds:unix-time|PXAT unix-time-milliseconds:unix-time|KEEPTTL]",
    ),
    ("setnx", "key:key value"),
    ("strlen", "key:key"),
    ("subscribe", "channel..."),
    (
        "ts.add",
        "key:key timestamp value:double [RETENTION retentionPeriod:integer] [ENCODING (COMPRESSED|UNCOMPRESSED)] [CHUNK_SIZE size:integer] [DUPLICATE_POLICY policy] [ON_DUPLICATE policy_ovr] [IGNORE ignoreMaxTimediff:integer ignoreMaxValDiff:double] [LABELS (label value)...]",
    ),
    (
        "ts.alter",
        "key:key [RETENTION retentionPeriod:integer] [CHUNK_SIZE size:integer] [DUPLICATE_POLICY policy] [IGNORE ignoreMaxTimediff:integer ignoreMaxValDiff:double] [LABELS (label value)...]",
    ),
    (
        "ts.create",
        "key:key [RETENTION retentionPeriod:integer] [ENCODING (COMPRESSED|UNCOMPRESSED)] [CHUNK_SIZE size:integer] [DUPLICATE_POLICY policy] [IGNORE ignoreMaxTimediff:integer ignoreMaxValDiff:double] [LABELS (label value)...]",
    ),
    (
        "ts.createrule",
        "sourceKey:key destKey:key AGGREGATION aggregator bucketDuration:integer [alignTimestamp:integer]",
    ),
    (
        "ts.decrby",
        "key:key subtrahend:double [TIMESTAMP timestamp] [RETENTION retentionPeriod:integer] [ENCODING (COMPRESSED|UNCOMPRESSED)] [CHUNK_SIZE size:integer] [DUPLICATE_POLICY policy] [IGNORE ignoreMaxTimediff:integer ignoreMaxValDiff:double] [LABELS (label value)...]",
    ),
    ("ts.del", "key:key fromTimestamp toTimestamp"),
    ("ts.deleterule", "sourceKey:key destKey:key"),
    ("ts.get", "key:key [LATEST]"),
    (
        "ts.incrby",
        "key:key addend:double [TIMESTAMP timestamp] [RETENTION retentionPeriod:integer] [ENCODING (COMPRESSED|UNCOMPRESSED)] [CHUNK_SIZE size:integer] [DUPLICATE_POLICY policy] [IGNORE ignoreMaxTimediff:integer ignoreMaxValDiff:double] [LABELS (label value)...]",
    ),
    ("ts.info", "key:key [DEBUG]"),
    ("ts.madd", "(key:key timestamp value:double)..."),
    ("ts.mdel", "fromTimestamp toTimestamp FILTER filterExpr..."),
    (
        "ts.mget",
        "[LATEST] [WITHLABELS|SELECTED_LABELS label...] FILTER filterExpr...",
    ),
    (
        "ts.mrange",
        "fromTimestamp toTimestamp [LATEST] [FILTER_BY_TS ts...] [FILTER_BY_VALUE min:double max:double] [WITHLABELS|SELECTED_LABELS label...] [COUNT count:integer] [[ALIGN align] AGGREGATION aggregator bucketDuration:integer [BUCKETTIMESTAMP bt] [EMPTY]] FILTER filterExpr... [GROUPBY label REDUCE reducer]",
    ),
    (
        "ts.mrevrange",
        "fromTimestamp toTimestamp [LATEST] [FILTER_BY_TS ts...] [FILTER_BY_VALUE min:double max:double] [WITHLABELS|SELECTED_LABELS label...] [COUNT count:integer] [[ALIGN align] AGGREGATION aggregator bucketDuration:integer [BUCKETTIMESTAMP bt] [EMPTY]] FILTER filterExpr... [GROUPBY label REDUCE reducer]",
    ),
    ("ts.queryindex", "filterExpr..."),
    (
        "ts.querylabels",
        "(LABELS|VALUES label) [FILTER filterExpr...]",
    ),
    (
        "ts.range",
        "key:key fromTimestamp toTimestamp [LATEST] [FILTER_BY_TS ts...] [FILTER_BY_VALUE min:double max:double] [COUNT count:integer] [[ALIGN align] AGGREGATION aggregator bucketDuration:integer [BUCKETTIMESTAMP bt] [EMPTY]]",
    ),
    (
        "ts.read",
        "key:key timestamp [BLOCK milliseconds:integer min_count:integer] [MAX_COUNT max_count:integer]",
    ),
    (
        "ts.revrange",
        "key:key fromTimestamp toTimestamp [LATEST] [FILTER_BY_TS ts...] [FILTER_BY_VALUE min:double max:double] [COUNT count:integer] [[ALIGN align] AGGREGATION aggregator bucketDuration:integer [BUCKETTIMESTAMP bt] [EMPTY]]",
    ),
    (
        "tsdb_get",
        "key:key fromTimestamp:integer toTimestamp:integer",
    ),
    ("tsdb_set", "key:key timestamp:integer value:double"),
    ("ttl", "key:key"),
    ("type", "key:key"),
    ("unlink", "key:key..."),
    ("unsubscribe", "[channel...]"),
    ("watch", "key:key..."),
];

/// The subcommands of container commands: (container, subcommand, summary, syntax).
const SUBCOMMANDS: &[(&str, &str, &str, &str)] = &[
    (
        "client",
        "getname",
        "Returns the name of the connection.",
        "",
    ),
    (
        "client",
        "id",
        "Returns the unique client ID of the connection.",
        "",
    ),
    (
        "client",
        "info",
        "Returns information about the connection.",
        "",
    ),
    ("client", "list", "Lists open connections.", ""),
    (
        "client",
        "setinfo",
        "Sets information specific to the client or connection.",
        "(LIB-NAME libname|LIB-VER libver)",
    ),
    (
        "client",
        "setname",
        "Sets the connection name.",
        "connection-name",
    ),
    (
        "cluster",
        "addnode",
        "Adds a node to the cluster as a learner (tickdb).",
        "id:integer address",
    ),
    (
        "cluster",
        "failover",
        "Hands the leadership to this follower.",
        "[FORCE|TAKEOVER]",
    ),
    (
        "cluster",
        "forget",
        "Removes a node from the cluster.",
        "node-id",
    ),
    (
        "cluster",
        "info",
        "Returns information about the state of a node.",
        "",
    ),
    ("cluster", "myid", "Returns the ID of a node.", ""),
    (
        "cluster",
        "nodes",
        "Returns the cluster configuration for a node.",
        "",
    ),
    (
        "cluster",
        "shards",
        "Returns the mapping of cluster slots to shards.",
        "",
    ),
    (
        "cluster",
        "slots",
        "Returns the mapping of cluster slots to nodes.",
        "",
    ),
    ("command", "count", "Returns a count of commands.", ""),
    (
        "command",
        "docs",
        "Returns documentary information about one, multiple or all commands.",
        "[command-name...]",
    ),
    (
        "command",
        "getkeys",
        "Extracts the key names from an arbitrary command.",
        "command [arg...]",
    ),
    (
        "command",
        "info",
        "Returns information about one, multiple or all commands.",
        "[command-name...]",
    ),
    ("command", "list", "Returns a list of command names.", ""),
    (
        "config",
        "get",
        "Returns the effective values of configuration parameters.",
        "parameter...",
    ),
    ("config", "resetstat", "Resets the server's statistics.", ""),
    (
        "config",
        "set",
        "Sets configuration parameters in-flight.",
        "(parameter value)...",
    ),
    ("module", "list", "Returns all loaded modules.", ""),
    (
        "pubsub",
        "channels",
        "Returns the active channels.",
        "[pattern:pattern]",
    ),
    (
        "pubsub",
        "numpat",
        "Returns a count of unique pattern subscriptions.",
        "",
    ),
    (
        "pubsub",
        "numsub",
        "Returns a count of subscribers to channels.",
        "[channel...]",
    ),
];

/// `COMMAND DOCS`' entry for `spec`.
pub(super) fn docs_frame(spec: &CommandSpec) -> Frame {
    let syntax = SYNTAX
        .iter()
        .find(|(n, _)| *n == spec.name)
        .map_or("", |(_, s)| s);
    let mut pairs = vec![
        (key("summary"), Frame::text(spec.summary)),
        (key("since"), Frame::text(spec.since)),
        (key("group"), Frame::text(spec.group)),
    ];
    let keyed = spec.first_key > 0;
    let args = arguments(syntax, keyed);
    if !args.is_empty() {
        pairs.push((key("arguments"), Frame::Array(args)));
    }
    let subs: Vec<(Frame, Frame)> = SUBCOMMANDS
        .iter()
        .filter(|(c, ..)| *c == spec.name)
        .map(|(c, sub, summary, syntax)| {
            let mut doc = vec![
                (key("summary"), Frame::text(*summary)),
                (key("since"), Frame::text(spec.since)),
                (key("group"), Frame::text(spec.group)),
            ];
            let args = arguments(syntax, false);
            if !args.is_empty() {
                doc.push((key("arguments"), Frame::Array(args)));
            }
            (Frame::text(format!("{c}|{sub}")), Frame::Map(doc))
        })
        .collect();
    if !subs.is_empty() {
        pairs.push((key("subcommands"), Frame::Map(subs)));
    }
    Frame::Map(pairs)
}

/// Map keys are bulk strings in Redis's replies (redis-cli asserts it).
fn key(name: &'static str) -> Frame {
    Frame::bulk(Bytes::from_static(name.as_bytes()))
}

/// One node of an argument tree.
#[derive(Clone, Debug, PartialEq)]
struct Arg {
    name: String,
    kind: &'static str,
    token: Option<String>,
    optional: bool,
    multiple: bool,
    children: Vec<Self>,
}

impl Arg {
    fn value(word: &str) -> Self {
        let (name, kind) = match word.split_once(':') {
            Some((n, t)) => (n, type_name(t)),
            None => (word, "string"),
        };
        Self::new(name, kind)
    }

    fn new(name: &str, kind: &'static str) -> Self {
        Self {
            name: name.to_string(),
            kind,
            token: None,
            optional: false,
            multiple: false,
            children: Vec::new(),
        }
    }

    fn pure_token(word: &str) -> Self {
        let mut a = Self::new(&word.to_ascii_lowercase(), "pure-token");
        a.token = Some(word.to_string());
        a
    }

    fn frame(&self, keyed: bool) -> Frame {
        let mut pairs = vec![
            (key("name"), Frame::text(self.name.clone())),
            (key("type"), Frame::text(self.kind)),
        ];
        if self.kind == "key" && keyed {
            pairs.push((key("key_spec_index"), Frame::Integer(0)));
        }
        if let Some(t) = &self.token {
            pairs.push((key("token"), Frame::text(t.clone())));
        }
        let flags: Vec<Frame> = [("optional", self.optional), ("multiple", self.multiple)]
            .into_iter()
            .filter(|(_, on)| *on)
            .map(|(f, _)| Frame::Simple(Bytes::from_static(f.as_bytes())))
            .collect();
        if !flags.is_empty() {
            pairs.push((key("flags"), Frame::Set(flags)));
        }
        if !self.children.is_empty() {
            let children = self.children.iter().map(|c| c.frame(keyed)).collect();
            pairs.push((key("arguments"), Frame::Array(children)));
        }
        Frame::Map(pairs)
    }
}

fn type_name(t: &str) -> &'static str {
    match t {
        "key" => "key",
        "integer" => "integer",
        "double" => "double",
        "pattern" => "pattern",
        "unix-time" => "unix-time",
        _ => "string",
    }
}

/// The argument frames of a syntax string (see the module docs).
fn arguments(syntax: &str, keyed: bool) -> Vec<Frame> {
    let tokens = lex(syntax);
    let mut pos = 0;
    let args = parse_seq(&tokens, &mut pos);
    args.iter().map(|a| a.frame(keyed)).collect()
}

fn lex(syntax: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut chars = syntax.chars().peekable();
    while let Some(c) = chars.next() {
        let flush = |word: &mut String, out: &mut Vec<String>| {
            if !word.is_empty() {
                out.push(std::mem::take(word));
            }
        };
        match c {
            '[' | ']' | '(' | ')' | '|' => {
                flush(&mut word, &mut out);
                out.push(c.to_string());
            }
            '.' if chars.peek() == Some(&'.') => {
                flush(&mut word, &mut out);
                while chars.peek() == Some(&'.') {
                    chars.next();
                }
                out.push("...".into());
            }
            c if c.is_whitespace() => flush(&mut word, &mut out),
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// A sequence of items up to a closing bracket or `|` (not consumed).
fn parse_seq(tokens: &[String], pos: &mut usize) -> Vec<Arg> {
    let mut items = Vec::new();
    while let Some(t) = tokens.get(*pos) {
        let mut item = match t.as_str() {
            "]" | ")" | "|" => break,
            "[" | "(" => {
                *pos += 1;
                let mut group = parse_alternatives(tokens, pos);
                *pos += 1; // the closing bracket
                group.optional = t == "[";
                group
            }
            "..." => {
                *pos += 1;
                continue;
            }
            w if is_token(w) => {
                *pos += 1;
                Arg::pure_token(w)
            }
            w => {
                *pos += 1;
                Arg::value(w)
            }
        };
        if tokens.get(*pos).map(String::as_str) == Some("...") {
            *pos += 1;
            item.multiple = true;
        }
        items.push(item);
    }
    items
}

/// The inside of a bracket: one or more sequences separated by `|`.
fn parse_alternatives(tokens: &[String], pos: &mut usize) -> Arg {
    let mut alternatives = vec![group_of(parse_seq(tokens, pos))];
    while tokens.get(*pos).map(String::as_str) == Some("|") {
        *pos += 1;
        alternatives.push(group_of(parse_seq(tokens, pos)));
    }
    if alternatives.len() == 1 {
        return alternatives.remove(0);
    }
    let name = alternatives
        .iter()
        .map(|a| a.name.as_str())
        .collect::<Vec<_>>()
        .join("-");
    let mut oneof = Arg::new(&name, "oneof");
    oneof.children = alternatives;
    oneof
}

/// One argument for a sequence: itself when alone, a value with its token, or a block.
fn group_of(mut seq: Vec<Arg>) -> Arg {
    if seq.len() == 1 {
        return seq.remove(0);
    }
    let leading_token = seq
        .first()
        .filter(|a| a.kind == "pure-token")
        .and_then(|a| a.token.clone());
    if let Some(token) = leading_token {
        seq.remove(0);
        if seq.len() == 1 && seq[0].token.is_none() {
            let mut value = seq.remove(0);
            value.token = Some(token);
            return value;
        }
        let mut block = Arg::new(&token.to_ascii_lowercase(), "block");
        block.token = Some(token);
        block.children = seq;
        return block;
    }
    let name = seq.first().map_or("args", |a| a.name.as_str()).to_string();
    let mut block = Arg::new(&name, "block");
    block.children = seq;
    block
}

fn is_token(word: &str) -> bool {
    word.chars().any(|c| c.is_ascii_uppercase())
        && word
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::{Protocol, encode};

    fn resp2(frame: &Frame) -> String {
        let mut out = Vec::new();
        encode(frame, Protocol::Resp2, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn get_matches_redis_bytes_in_resp2() {
        // What Redis 7.0 sends for the arguments of `COMMAND DOCS get`.
        let args = arguments("key:key", true);
        assert_eq!(
            resp2(&Frame::Array(args)),
            "*1\r\n*6\r\n$4\r\nname\r\n$3\r\nkey\r\n$4\r\ntype\r\n$3\r\nkey\r\n$14\r\nkey_spec_index\r\n:0\r\n"
        );
    }

    #[test]
    fn tokens_options_and_alternatives_parse_like_redis_docs() {
        let mut pos = 0;
        let tokens = lex("key:key value [NX|XX] [EX seconds:integer] [LABELS (label value)...]");
        let args = parse_seq(&tokens, &mut pos);
        assert_eq!(pos, tokens.len());
        assert_eq!(args.len(), 5);
        assert_eq!(args[2].kind, "oneof");
        assert!(args[2].optional);
        assert_eq!(args[2].children.len(), 2);
        assert_eq!(args[2].children[0].token.as_deref(), Some("NX"));
        assert_eq!(args[3].kind, "integer");
        assert_eq!(args[3].token.as_deref(), Some("EX"));
        assert!(args[3].optional);
        let labels = &args[4];
        assert_eq!(labels.kind, "block");
        assert_eq!(labels.token.as_deref(), Some("LABELS"));
        assert!(labels.optional && labels.multiple);
        assert_eq!(labels.children.len(), 2);
    }

    #[test]
    fn every_syntax_parses_completely() {
        for (name, syntax) in SYNTAX {
            let tokens = lex(syntax);
            let mut pos = 0;
            let args = parse_seq(&tokens, &mut pos);
            assert_eq!(pos, tokens.len(), "{name}: stopped at {pos} of {tokens:?}");
            assert!(syntax.is_empty() || !args.is_empty(), "{name}");
            assert!(crate::cmd::lookup(name.as_bytes()).is_some(), "{name}");
        }
        for (c, sub, ..) in SUBCOMMANDS {
            assert!(crate::cmd::lookup(c.as_bytes()).is_some(), "{c}|{sub}");
        }
    }

    #[test]
    fn map_keys_are_bulk_and_flags_simple() {
        fn check(frame: &Frame) {
            match frame {
                Frame::Map(pairs) => {
                    for (k, v) in pairs {
                        assert!(matches!(k, Frame::Bulk(_)), "map key {k:?}");
                        if k == &key("flags") {
                            let Frame::Set(flags) = v else {
                                panic!("{v:?}")
                            };
                            assert!(flags.iter().all(|f| matches!(f, Frame::Simple(_))));
                        } else {
                            check(v);
                        }
                    }
                }
                Frame::Array(items) => items.iter().for_each(check),
                Frame::Bulk(_) | Frame::Integer(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        for spec in crate::cmd::COMMANDS {
            check(&docs_frame(spec));
        }
    }
}
