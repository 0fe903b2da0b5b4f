//! The state machine: what a committed log entry does to the data, and how reads see it.
//!
//! Applying is deterministic: the same entries in the same order give the same store contents
//! and the same replies on every replica. An entry applies inside one [`Tx`], so its changes
//! (and the applied index the caller adds) reach the store as one atomic batch.
//!
//! This is the dispatch: [`Db`] answers the string and key commands itself, over the key
//! records of [`crate::db`], and hands `TS.*` to the series engine ([`crate::ts`]).
//!
//! Layering: imports `db`, `ts`, `cmd` and `store`; only `node` (and tests) import it.

mod deadlines;

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::UnixMillis;
use crate::cmd::ts::TsWrite;
use crate::cmd::{CommandError, ReadCmd, SetCond, WriteCmd, args};
use crate::db::{Kind, Record, Tx, expiry, glob, meta};
use crate::resp::{Frame, Protocol};
use crate::store::{Space, StoreError, StoreRead};

/// The largest string value, as Redis's `proto-max-bulk-len` default.
pub const STRING_MAX_BYTES: usize = 512 * 1024 * 1024;

/// How many SCAN continuations a node remembers; the oldest is forgotten first.
pub const SCAN_CURSORS_MAX: usize = 4096;

/// Reads a key's record through any reader.
fn record(
    get: impl FnOnce(&[u8]) -> Result<Option<Vec<u8>>, StoreError>,
    key: &[u8],
) -> Result<Option<Record>, StoreError> {
    get(key)?.map(Record::decode).transpose()
}

/// INCR/DECR of a string this round's transaction holds: parsed and rewritten in place, one
/// lookup and no copy (a counter's INCR was ~1,200 instructions, most of them copies). `None`,
/// changing nothing, when the key is not held as a string holding an integer whose sum fits:
/// the general path then decides, and gives any error.
fn incr_held<S: StoreRead>(tx: &mut Tx<'_, S>, key: &[u8], by: i64) -> Option<i64> {
    let stamp = tx.stamp();
    let mut new = None;
    tx.edit_if(Space::Keys, key, |raw| {
        let Ok((Kind::String, _, header)) = Record::parse_header(raw) else {
            return false;
        };
        let Some(sum) = args::int(&raw[header..])
            .ok()
            .and_then(|n| n.checked_add(by))
        else {
            return false;
        };
        raw.clear();
        Record::put_header(raw, Kind::String, stamp);
        crate::resp::put_i64(raw, sum);
        new = Some(sum);
        true
    });
    new
}

/// The state machine's in-memory state: counts and caches rebuilt from the store at start.
#[derive(Debug, Default)]
pub struct Db {
    /// Number of user keys (DBSIZE), kept in step with every apply.
    keys: u64,
    /// SCAN continuations: cursor id -> the key to resume from. Node-local (reads are not
    /// replicated), bounded by [`SCAN_CURSORS_MAX`].
    scan_cursors: BTreeMap<u64, Vec<u8>>,
    next_cursor: u64,
    /// Cluster-wide state (member addresses, replicated settings).
    meta: meta::Meta,
    /// Keys with a deadline (see [`expiry`]); none: no expiry checks at all.
    volatile: u64,
    /// The Unix time (ms) reads compare deadlines against, set by the node before each read.
    read_now: u64,
    /// Keys deleted at their deadline since start (INFO `expired_keys`; node-local).
    expired: u64,
}

impl Db {
    /// Rebuilds the in-memory state from the store.
    pub fn open(store: &impl StoreRead) -> Result<Self, StoreError> {
        let mut keys = 0;
        for kv in store.scan(Space::Keys, b"", None, false) {
            kv?;
            keys += 1;
        }
        Ok(Self {
            keys,
            volatile: expiry::count(store)?,
            meta: meta::Meta::open(store)?,
            ..Self::default()
        })
    }

    /// Cluster-wide state: member addresses and replicated settings.
    pub fn meta(&self) -> &meta::Meta {
        &self.meta
    }

    pub fn key_count(&self) -> u64 {
        self.keys
    }

    /// Applies one write command inside `tx`. State errors (WRONGTYPE, overflow) are replies;
    /// a store failure is an `Err` and the entry must not be acknowledged.
    pub fn apply<S: StoreRead>(
        &mut self,
        tx: &mut Tx<'_, S>,
        cmd: &WriteCmd,
        unix: UnixMillis,
    ) -> Result<Frame, StoreError> {
        let reply = match cmd {
            WriteCmd::Set {
                key,
                value,
                cond,
                get,
            } => {
                // One read of the record: whether it exists, its kind and (for GET) its value;
                // without GET, its header is read in place (no copy of the value).
                let (old, kind) = if *get {
                    let old = record(|k| tx.get(Space::Keys, k), key)?;
                    let kind = old.as_ref().map(|r| r.kind);
                    (old, kind)
                } else {
                    let header = tx.peek(Space::Keys, key, |raw| raw.map(Record::parse_header))?;
                    (None, header.transpose()?.map(|(kind, _, _)| kind))
                };
                if *get && kind.is_some_and(|k| k != Kind::String) {
                    return Ok(Frame::error(CommandError::WrongType.to_string()));
                }
                let allowed = match cond {
                    None => true,
                    Some(SetCond::Nx) => kind.is_none(),
                    Some(SetCond::Xx) => kind.is_some(),
                };
                if allowed {
                    match kind {
                        // A string is overwritten in place; SET drops its deadline.
                        Some(Kind::String) => {
                            self.drop_deadline(tx, key)?;
                        }
                        // SET replaces a key of any type; a series takes its samples with it.
                        Some(Kind::Series) => {
                            self.delete_key(tx, key)?;
                        }
                        None => {}
                    }
                    self.put_string(tx, key, value, kind == Some(Kind::String));
                }
                match (get, allowed) {
                    (true, _) => old.map_or(Frame::Null, |r| Frame::Bulk(Bytes::from(r.payload))),
                    (false, true) => Frame::ok(),
                    (false, false) => Frame::Null,
                }
            }
            WriteCmd::SetNx { key, value } => {
                if tx.contains(Space::Keys, key)? {
                    Frame::Integer(0)
                } else {
                    self.put_string(tx, key, value, false);
                    Frame::Integer(1)
                }
            }
            WriteCmd::GetSet { key, value } => match self.string(tx, key)? {
                Err(e) => Frame::error(e.to_string()),
                Ok(old) => {
                    // GETSET discards the deadline, as in Redis.
                    self.drop_deadline(tx, key)?;
                    self.put_string(tx, key, value, old.is_some());
                    old.map_or(Frame::Null, Frame::Bulk)
                }
            },
            WriteCmd::GetDel(key) => match self.string(tx, key)? {
                Err(e) => Frame::error(e.to_string()),
                Ok(None) => Frame::Null,
                Ok(Some(old)) => {
                    self.delete_key(tx, key)?;
                    Frame::Bulk(old)
                }
            },
            WriteCmd::MSet(pairs) => {
                for (key, value) in pairs {
                    if tx.contains(Space::Keys, key)? {
                        self.delete_key(tx, key)?;
                    }
                    self.put_string(tx, key, value, false);
                }
                Frame::ok()
            }
            WriteCmd::Del(keys) => {
                let mut n = 0;
                for key in keys {
                    if self.delete_key(tx, key)? {
                        n += 1;
                    }
                }
                Frame::Integer(n)
            }
            WriteCmd::IncrBy { key, by } => self.incr_by(tx, key, *by)?,
            WriteCmd::IncrByFloat { key, by } => self.incr_by_float(tx, key, *by)?,
            WriteCmd::Append { key, value } => match self.string(tx, key)? {
                Err(e) => Frame::error(e.to_string()),
                Ok(old) => {
                    let exists = old.is_some();
                    let mut new = old.map(|b| b.to_vec()).unwrap_or_default();
                    if new.len() + value.len() > STRING_MAX_BYTES {
                        return Ok(Frame::error(
                            "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
                        ));
                    }
                    new.extend_from_slice(value);
                    let len = new.len();
                    self.put_string(tx, key, &new, exists);
                    Frame::Integer(i64::try_from(len).unwrap_or(i64::MAX))
                }
            },
            WriteCmd::BatchAdd { key, ts, value } => {
                let add = TsWrite::SeedSet {
                    key: key.clone(),
                    ts: *ts,
                    value: *value,
                };
                crate::ts::engine::apply(tx, &mut self.keys, &self.meta.defaults, &add, unix)?
            }
            WriteCmd::Ts(t) => {
                crate::ts::engine::apply(tx, &mut self.keys, &self.meta.defaults, t, unix)?
            }
            WriteCmd::Meta(w) => self.meta.apply(tx, w),
            // No state: the node delivers the message when the entry applies and replaces
            // this count with its own subscribers' (see `node::pubsub`).
            WriteCmd::Publish { .. } => Frame::Integer(0),
            WriteCmd::Expire { .. }
            | WriteCmd::Persist(_)
            | WriteCmd::SetTtl { .. }
            | WriteCmd::GetEx { .. }
            | WriteCmd::ExpireDue(_) => self.apply_expiry(tx, cmd, unix)?,
            WriteCmd::Flush => {
                for space in Space::KEYSPACE {
                    tx.clear(space)?;
                }
                self.clear_deadlines(tx);
                self.keys = 0;
                Frame::ok()
            }
        };
        Ok(reply)
    }

    /// A key's string value: `Ok(Err(WrongType))` when it holds something else.
    fn string<S: StoreRead>(
        &self,
        tx: &Tx<'_, S>,
        key: &[u8],
    ) -> Result<Result<Option<Bytes>, CommandError>, StoreError> {
        Ok(match record(|k| tx.get(Space::Keys, k), key)? {
            None => Ok(None),
            Some(Record {
                kind: Kind::String,
                payload,
                ..
            }) => Ok(Some(Bytes::from(payload))),
            Some(_) => Err(CommandError::WrongType),
        })
    }

    fn put_string<S: StoreRead>(
        &mut self,
        tx: &mut Tx<'_, S>,
        key: &[u8],
        value: &[u8],
        existed: bool,
    ) {
        if !existed {
            self.keys += 1;
        }
        // A short record is built on the stack, and a key held already takes it into the
        // buffer it has (`put_ref`): a counter's INCR allocates nothing here.
        let mut short = [0u8; 64];
        let stamp = tx.stamp();
        if let Some(record) = Record::encode_in(Kind::String, stamp, value, &mut short) {
            tx.put_ref(Space::Keys, key, record);
        } else {
            tx.put_ref(
                Space::Keys,
                key,
                &Record::encode(Kind::String, stamp, value),
            );
        }
    }

    /// Deletes a key of any kind; returns whether it existed.
    pub fn delete_key<S: StoreRead>(
        &mut self,
        tx: &mut Tx<'_, S>,
        key: &[u8],
    ) -> Result<bool, StoreError> {
        let Some(rec) = record(|k| tx.get(Space::Keys, k), key)? else {
            return Ok(false);
        };
        match rec.kind {
            Kind::String => {}
            Kind::Series => crate::ts::engine::drop_series(tx, key, &rec.payload)?,
        }
        tx.delete(Space::Keys, key.to_vec());
        self.keys = self.keys.saturating_sub(1);
        self.drop_deadline(tx, key)?;
        Ok(true)
    }

    fn incr_by<S: StoreRead>(
        &mut self,
        tx: &mut Tx<'_, S>,
        key: &[u8],
        by: i64,
    ) -> Result<Frame, StoreError> {
        if let Some(new) = incr_held(tx, key, by) {
            return Ok(Frame::Integer(new));
        }
        let old = match self.string(tx, key)? {
            Err(e) => return Ok(Frame::error(e.to_string())),
            Ok(v) => v,
        };
        let current = match &old {
            None => 0,
            Some(v) => match args::int(v) {
                Ok(n) => n,
                Err(e) => return Ok(Frame::error(e.to_string())),
            },
        };
        let Some(new) = current.checked_add(by) else {
            return Ok(Frame::error(CommandError::Overflow.to_string()));
        };
        self.put_string(tx, key, new.to_string().as_bytes(), old.is_some());
        Ok(Frame::Integer(new))
    }

    fn incr_by_float<S: StoreRead>(
        &mut self,
        tx: &mut Tx<'_, S>,
        key: &[u8],
        by: f64,
    ) -> Result<Frame, StoreError> {
        let old = match self.string(tx, key)? {
            Err(e) => return Ok(Frame::error(e.to_string())),
            Ok(v) => v,
        };
        let current = match &old {
            None => 0.0,
            Some(v) => match args::float(v) {
                Ok(n) => n,
                Err(e) => return Ok(Frame::error(e.to_string())),
            },
        };
        let new = current + by;
        if !new.is_finite() {
            return Ok(Frame::error("ERR increment would produce NaN or Infinity"));
        }
        let text = args::format_float(new);
        self.put_string(tx, key, text.as_bytes(), old.is_some());
        Ok(Frame::text(text))
    }

    /// Runs a read against the store; `protocol` is the connection's, for replies whose RESP2
    /// shape is not the automatic lowering of their RESP3 shape (`TS.*`).
    /// Answers a read from `store`, where keys expired at the read time do not exist.
    pub fn read(
        &mut self,
        store: &impl StoreRead,
        cmd: &ReadCmd,
        protocol: Protocol,
    ) -> Result<Frame, StoreError> {
        if self.volatile == 0 {
            return self.read_view(store, cmd, protocol);
        }
        let view = expiry::Unexpired {
            inner: store,
            now: self.read_now,
        };
        self.read_view(&view, cmd, protocol)
    }

    fn read_view(
        &mut self,
        store: &impl StoreRead,
        cmd: &ReadCmd,
        protocol: Protocol,
    ) -> Result<Frame, StoreError> {
        let get = |key: &[u8]| record(|k| store.get(Space::Keys, k), key);
        let reply = match cmd {
            ReadCmd::Get(key) => match get(key)? {
                None => Frame::Null,
                Some(Record {
                    kind: Kind::String,
                    payload,
                    ..
                }) => Frame::Bulk(payload.into()),
                Some(_) => Frame::error(CommandError::WrongType.to_string()),
            },
            ReadCmd::MGet(keys) => {
                let mut out = Vec::with_capacity(keys.len());
                for key in keys {
                    out.push(match get(key)? {
                        Some(Record {
                            kind: Kind::String,
                            payload,
                            ..
                        }) => Frame::Bulk(payload.into()),
                        _ => Frame::Null,
                    });
                }
                Frame::Array(out)
            }
            ReadCmd::Exists(keys) => {
                let mut n = 0;
                for key in keys {
                    if store.get(Space::Keys, key)?.is_some() {
                        n += 1;
                    }
                }
                Frame::Integer(n)
            }
            ReadCmd::Type(key) => match get(key)? {
                None => Frame::simple("none"),
                Some(rec) => Frame::simple(rec.kind.type_name()),
            },
            ReadCmd::StrLen(key) => match get(key)? {
                None => Frame::Integer(0),
                Some(Record {
                    kind: Kind::String,
                    payload,
                    ..
                }) => Frame::Integer(i64::try_from(payload.len()).unwrap_or(i64::MAX)),
                Some(_) => Frame::error(CommandError::WrongType.to_string()),
            },
            ReadCmd::Keys(pattern) => {
                let mut out = Vec::new();
                for kv in store.scan(Space::Keys, b"", None, false) {
                    let (k, _) = kv?;
                    if glob::matches(pattern, &k) {
                        out.push(Frame::Bulk(k.into()));
                    }
                }
                Frame::Array(out)
            }
            ReadCmd::Scan {
                cursor,
                pattern,
                count,
                kind,
            } => self.scan(store, *cursor, pattern.as_deref(), *count, kind.as_deref())?,
            ReadCmd::Ts(t) => crate::ts::query::read(store, t, protocol)?,
            ReadCmd::Ttl { key, ms, absolute } => self.ttl(store, key, *ms, *absolute)?,
        };
        Ok(reply)
    }

    fn scan(
        &mut self,
        store: &impl StoreRead,
        cursor: u64,
        pattern: Option<&[u8]>,
        count: u64,
        kind: Option<&[u8]>,
    ) -> Result<Frame, StoreError> {
        let start = if cursor == 0 {
            Vec::new()
        } else {
            match self.scan_cursors.remove(&cursor) {
                Some(k) => k,
                None => return Ok(Frame::error("ERR invalid cursor")),
            }
        };
        let mut keys = Vec::new();
        let mut next = None;
        for (visited, kv) in (0u64..).zip(store.scan(Space::Keys, &start, None, false)) {
            let (k, v) = kv?;
            if visited == count {
                next = Some(k);
                break;
            }
            let kind_ok = match kind {
                None => true,
                Some(want) => Record::decode(v)?
                    .kind
                    .type_name()
                    .as_bytes()
                    .eq_ignore_ascii_case(want),
            };
            if kind_ok && pattern.is_none_or(|p| glob::matches(p, &k)) {
                keys.push(Frame::Bulk(k.into()));
            }
        }
        let next_cursor = match next {
            None => 0,
            Some(resume) => self.remember_cursor(resume),
        };
        Ok(Frame::Array(vec![
            Frame::text(next_cursor.to_string()),
            Frame::Array(keys),
        ]))
    }

    fn remember_cursor(&mut self, resume: Vec<u8>) -> u64 {
        while self.scan_cursors.len() >= SCAN_CURSORS_MAX {
            self.scan_cursors.pop_first();
        }
        self.next_cursor += 1;
        if self.next_cursor == 0 {
            self.next_cursor = 1;
        }
        self.scan_cursors.insert(self.next_cursor, resume);
        self.next_cursor
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::{Command, parse};
    use crate::store::{MemStore, Store};

    /// Runs commands against a Db over a MemStore, committing each write's batch.
    struct Harness {
        db: Db,
        store: MemStore,
    }

    impl Harness {
        fn new() -> Self {
            Self {
                db: Db::default(),
                store: MemStore::new(),
            }
        }

        fn run(&mut self, line: &str) -> Frame {
            let args = crate::cmd::test_args(line);
            match parse(&args) {
                Err(e) => Frame::error(e.to_string()),
                Ok(Command::Write(w)) => {
                    let mut tx = Tx::new(&self.store);
                    let reply = self.db.apply(&mut tx, &w, UnixMillis(0)).unwrap();
                    let batch = tx.into_batch();
                    self.store.write(batch).unwrap();
                    reply
                }
                Ok(Command::Read(r)) => self.db.read(&self.store, &r, Protocol::Resp3).unwrap(),
                Ok(other) => panic!("not a data command: {other:?}"),
            }
        }
    }

    fn bulk(s: &str) -> Frame {
        Frame::bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn string_commands_behave_like_redis() {
        let mut h = Harness::new();
        assert_eq!(h.run("SET a 1"), Frame::ok());
        assert_eq!(h.run("GET a"), bulk("1"));
        assert_eq!(h.run("SET a 2 NX"), Frame::Null);
        assert_eq!(h.run("SET b 2 XX"), Frame::Null);
        assert_eq!(h.run("SET a 3 XX GET"), bulk("1"));
        assert_eq!(h.run("INCR a"), Frame::Integer(4));
        assert_eq!(h.run("DECRBY a 10"), Frame::Integer(-6));
        assert_eq!(h.run("INCRBYFLOAT a 0.5"), bulk("-5.5"));
        assert_eq!(
            h.run("INCR a"),
            Frame::error("ERR value is not an integer or out of range")
        );
        assert_eq!(h.run("APPEND s hello"), Frame::Integer(5));
        assert_eq!(h.run("APPEND s !"), Frame::Integer(6));
        assert_eq!(h.run("STRLEN s"), Frame::Integer(6));
        assert_eq!(h.run("SETNX s x"), Frame::Integer(0));
        assert_eq!(h.run("MSET x 1 y 2"), Frame::ok());
        assert_eq!(
            h.run("MGET x nope y"),
            Frame::Array(vec![bulk("1"), Frame::Null, bulk("2")])
        );
        assert_eq!(h.run("EXISTS x x nope"), Frame::Integer(2));
        assert_eq!(h.run("TYPE x"), Frame::simple("string"));
        assert_eq!(h.run("TYPE nope"), Frame::simple("none"));
        assert_eq!(h.db.key_count(), 4);
        assert_eq!(h.run("DEL x y nope"), Frame::Integer(2));
        assert_eq!(h.run("GETDEL s"), bulk("hello!"));
        assert_eq!(h.db.key_count(), 1);
        assert_eq!(h.run("SET big 9223372036854775807"), Frame::ok());
        assert_eq!(
            h.run("INCR big"),
            Frame::error("ERR increment or decrement would overflow")
        );
        assert_eq!(h.run("FLUSHDB"), Frame::ok());
        assert_eq!(h.run("KEYS *"), Frame::Array(vec![]));
        assert_eq!(h.db.key_count(), 0);
    }

    /// The record built on the stack is the one `encode` allocates, up to the buffer's size.
    #[test]
    fn records_encoded_in_a_buffer_match_encode() {
        let mut buf = [0u8; 64];
        for len in 0..=54 {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let short = Record::encode_in(Kind::String, 3, &payload, &mut buf);
            assert_eq!(short, Some(&Record::encode(Kind::String, 3, &payload)[..]));
        }
        assert_eq!(Record::encode_in(Kind::String, 3, &[7; 55], &mut buf), None);
        let mut h = Harness::new();
        h.run("SET k 1");
        h.run(&format!("SET k {}", "x".repeat(100)));
        assert_eq!(h.run("GET k"), Frame::bulk(Bytes::from("x".repeat(100))));
        assert_eq!(h.run("INCR n"), Frame::Integer(1));
        assert_eq!(h.run("INCRBY n 41"), Frame::Integer(42));
    }

    proptest::proptest! {
        /// Writes to keys held since the last checkpoint (edited in place: INCR's fast path,
        /// SET's header peek) answer and store what the same writes committed one by one do.
        #[test]
        fn writes_on_held_keys_match_committed_ones(
            ops in proptest::collection::vec((0..7u8, 0..3u8, -3i64..4), 1..60),
        ) {
            let (mut db_c, mut store_c) = (Db::default(), MemStore::new());
            let (mut db_h, store_h) = (Db::default(), MemStore::new());
            let mut held = crate::db::Changes::new();
            for (i, (op, k, n)) in ops.iter().enumerate() {
                let line = match op {
                    0 => format!("SET k{k} {n}"),
                    1 => format!("INCRBY k{k} {n}"),
                    2 => format!("DEL k{k}"),
                    3 => format!("APPEND k{k} x"),
                    4 => format!("TS.ADD k{k} {} 1", i + 1),
                    5 => format!("SET k{k} 9223372036854775807"),
                    _ => format!("SETNX k{k} {n}"),
                };
                let Ok(Command::Write(w)) = parse(&crate::cmd::test_args(&line)) else {
                    panic!("not a write: {line}")
                };
                let stamp = i as u64 + 1;
                let mut tx = Tx::new(&store_c);
                tx.begin_entry(stamp);
                let want = db_c.apply(&mut tx, &w, UnixMillis(0)).unwrap();
                let batch = tx.into_batch();
                store_c.write(batch).unwrap();
                let mut tx = Tx::on_held(&store_h, &mut held);
                tx.begin_entry(stamp);
                let got = db_h.apply(&mut tx, &w, UnixMillis(0)).unwrap();
                proptest::prop_assert_eq!(got, want, "{}", line);
            }
            let tx = Tx::on_held(&store_h, &mut held);
            for k in 0..3 {
                let key = format!("k{k}");
                proptest::prop_assert_eq!(
                    tx.get(Space::Keys, key.as_bytes()).unwrap(),
                    store_c.get(Space::Keys, key.as_bytes()).unwrap()
                );
            }
            proptest::prop_assert_eq!(db_h.key_count(), db_c.key_count());
        }
    }

    #[test]
    fn key_count_survives_reopen() {
        let mut h = Harness::new();
        h.run("MSET a 1 b 2 c 3");
        h.run("DEL b");
        assert_eq!(Db::open(&h.store).unwrap().key_count(), 2);
    }

    #[test]
    fn scan_visits_every_key_once_with_cursors() {
        let mut h = Harness::new();
        for i in 0..25 {
            h.run(&format!("SET key:{i:02} v"));
        }
        let mut seen = Vec::new();
        let mut cursor = "0".to_string();
        for _ in 0..10 {
            let Frame::Array(parts) = h.run(&format!("SCAN {cursor} MATCH key:* COUNT 7")) else {
                panic!()
            };
            let Frame::Bulk(next) = &parts[0] else {
                panic!()
            };
            let Frame::Array(keys) = &parts[1] else {
                panic!()
            };
            seen.extend(keys.iter().cloned());
            cursor = String::from_utf8(next.to_vec()).unwrap();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(cursor, "0");
        assert_eq!(seen.len(), 25);
        assert_eq!(
            h.run("SCAN 999 COUNT 1"),
            Frame::error("ERR invalid cursor")
        );
    }
}
