//! Pub/sub: `SUBSCRIBE`, `PSUBSCRIBE`, `UNSUBSCRIBE`, `PUNSUBSCRIBE`, `PUBLISH`, `PUBSUB`, and
//! keyspace notifications, with Redis's reply shapes.
//!
//! Subscriptions belong to one node: a client subscribes on the node it is connected to, and
//! that node delivers to it. Messages come from the log: `PUBLISH` is a log entry that changes
//! no state, and keyspace notifications describe what an entry's writes did. Every node
//! applies every committed entry once, in log order, and delivers what the entry produced to
//! its own subscribers when it applies it, so a subscriber on any node sees each message once,
//! in the same order as every other subscriber, and nothing from an entry that never
//! committed. A node that catches up by installing a snapshot skips the entries the snapshot
//! covers: its subscribers miss their messages (Redis's replicas after a full sync do too).
//!
//! Deliveries are `Output::Reply` frames of type push (RESP3 `>`, an array in RESP2) sent
//! outside the request/reply order, as Redis sends them. The driver queues them with the
//! connection's replies, so a subscriber that does not read fills its bounded queue and is
//! disconnected (Redis's `client-output-buffer-limit pubsub`), never buffered without bound.
//!
//! In RESP2 a connection with a subscription only accepts (P)SUBSCRIBE, (P)UNSUBSCRIBE, PING,
//! QUIT and RESET, and PING answers `["pong", msg]`; in RESP3 every command stays allowed.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::{ConnId, ConnKind, Node, Output};
use crate::UnixMillis;
use crate::cmd::notify::{EXPIRED, GENERIC, KEYEVENT, KEYSPACE, MODULE, STRING, notify_flags};
use crate::cmd::ts::{MAddItem, TsWrite};
use crate::cmd::{SetCond, TtlOpt, When, WriteCmd};
use crate::db::{Tx, glob};
use crate::resp::{Frame, Protocol};
use crate::state::Db;
use crate::store::{Space, Store, StoreError, StoreRead};

/// Most channels plus patterns one connection may subscribe to.
pub const SUBSCRIPTIONS_MAX_PER_CONN: usize = 100_000;

/// One connection's subscriptions.
#[derive(Debug, Default)]
struct Subs {
    channels: BTreeSet<Bytes>,
    patterns: BTreeSet<Bytes>,
}

impl Subs {
    fn set(&mut self, patterns: bool) -> &mut BTreeSet<Bytes> {
        if patterns {
            &mut self.patterns
        } else {
            &mut self.channels
        }
    }

    fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }
}

/// This node's subscriptions, by channel, by pattern and by connection.
#[derive(Debug, Default)]
pub(super) struct PubSub {
    channels: BTreeMap<Bytes, BTreeSet<ConnId>>,
    patterns: BTreeMap<Bytes, BTreeSet<ConnId>>,
    conns: BTreeMap<ConnId, Subs>,
}

impl PubSub {
    /// Whether no client of this node subscribes to anything.
    pub(super) fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Channels plus patterns `conn` subscribes to (Redis's subscription count).
    pub(super) fn count(&self, conn: ConnId) -> usize {
        self.conns.get(&conn).map_or(0, Subs::count)
    }

    /// CLIENT LIST's `sub=` and `psub=`.
    pub(super) fn counts(&self, conn: ConnId) -> (usize, usize) {
        self.conns
            .get(&conn)
            .map_or((0, 0), |s| (s.channels.len(), s.patterns.len()))
    }

    /// INFO's `pubsub_channels` and `pubsub_patterns`.
    pub(super) fn totals(&self) -> (usize, usize) {
        (self.channels.len(), self.patterns.len())
    }

    fn index(&mut self, patterns: bool) -> &mut BTreeMap<Bytes, BTreeSet<ConnId>> {
        if patterns {
            &mut self.patterns
        } else {
            &mut self.channels
        }
    }

    fn add(&mut self, conn: ConnId, patterns: bool, name: &Bytes) {
        if self
            .conns
            .entry(conn)
            .or_default()
            .set(patterns)
            .insert(name.clone())
        {
            self.index(patterns)
                .entry(name.clone())
                .or_default()
                .insert(conn);
        }
    }

    fn remove(&mut self, conn: ConnId, patterns: bool, name: &Bytes) {
        let Some(subs) = self.conns.get_mut(&conn) else {
            return;
        };
        if !subs.set(patterns).remove(name) {
            return;
        }
        if subs.count() == 0 {
            self.conns.remove(&conn);
        }
        let index = self.index(patterns);
        if let Some(set) = index.get_mut(name) {
            set.remove(&conn);
            if set.is_empty() {
                index.remove(name);
            }
        }
    }

    /// Forgets every subscription of `conn` (it left, or RESET).
    pub(super) fn drop_conn(&mut self, conn: ConnId) {
        let Some(subs) = self.conns.remove(&conn) else {
            return;
        };
        for (patterns, names) in [(false, subs.channels), (true, subs.patterns)] {
            let index = self.index(patterns);
            for name in names {
                if let Some(set) = index.get_mut(&name) {
                    set.remove(&conn);
                    if set.is_empty() {
                        index.remove(&name);
                    }
                }
            }
        }
    }

    /// Who receives a message on `channel`: `(conn, None)` for channel subscribers, then
    /// `(conn, Some(pattern))` for each matching pattern, as Redis delivers them.
    fn receivers(&self, channel: &[u8]) -> Vec<(ConnId, Option<Bytes>)> {
        let mut out: Vec<(ConnId, Option<Bytes>)> = self
            .channels
            .get(channel)
            .into_iter()
            .flatten()
            .map(|&c| (c, None))
            .collect();
        for (pattern, conns) in &self.patterns {
            if glob::matches(pattern, channel) {
                out.extend(conns.iter().map(|&c| (c, Some(pattern.clone()))));
            }
        }
        out
    }

    /// Each index entry and each connection's sets say the same thing.
    pub(super) fn check_invariants(&self, live: impl Fn(ConnId) -> bool) {
        for (patterns, index) in [(false, &self.channels), (true, &self.patterns)] {
            for (name, conns) in index {
                assert!(!conns.is_empty(), "an indexed name has subscribers");
                for conn in conns {
                    let subs = self.conns.get(conn);
                    let listed = subs.is_some_and(|s| {
                        let set = if patterns { &s.patterns } else { &s.channels };
                        set.contains(name)
                    });
                    assert!(listed, "an index entry is in its connection's set");
                }
            }
        }
        for (conn, subs) in &self.conns {
            assert!(
                subs.count() > 0,
                "a connection without subscriptions is dropped"
            );
            assert!(live(*conn), "subscriptions belong to connected clients");
            assert!(subs.count() <= SUBSCRIPTIONS_MAX_PER_CONN);
        }
    }
}

/// A message an applied entry produced, delivered once its round is durable.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Note {
    /// The entry's position among the round's entries.
    pub(super) entry: usize,
    /// For PUBLISH: where its reply is (command index, and op index inside a transaction),
    /// replaced with the number of clients this node delivered to.
    pub(super) publish: Option<(usize, Option<usize>)>,
    pub(super) channel: Bytes,
    pub(super) message: Bytes,
}

/// Collects the messages of the entries applied in one round (nothing when no client of
/// this node subscribes: they would reach no one).
#[derive(Debug)]
pub(super) struct Notes {
    active: bool,
    /// The keyspace event classes to report, as of the entry being applied.
    flags: u32,
    pub(super) entry: usize,
    pub(super) out: Vec<Note>,
    /// The newest wall-clock stamp among the entries applied (not a message: the node's clock
    /// follows the log's time too, see `expire`).
    pub(super) unix: UnixMillis,
}

/// What a command's notifications need to know from before it ran: which of its keys existed.
#[derive(Debug, Default)]
pub(super) struct Before(Vec<bool>);

impl Notes {
    pub(super) fn new(db: &Db, active: bool) -> Self {
        Self {
            active,
            flags: flags_of(db),
            entry: 0,
            out: Vec::new(),
            unix: UnixMillis(0),
        }
    }

    fn events_on(&self) -> bool {
        self.active && self.flags & (KEYSPACE | KEYEVENT) != 0
    }

    /// Reads what [`Notes::after`] needs that the command's reply does not say.
    pub(super) fn before<S: StoreRead>(
        &self,
        tx: &Tx<'_, S>,
        cmd: &WriteCmd,
    ) -> Result<Before, StoreError> {
        if !self.events_on() {
            return Ok(Before::default());
        }
        let exists = |k: &Bytes| tx.get(Space::Keys, k).map(|v| v.is_some());
        Ok(Before(match cmd {
            WriteCmd::Del(keys) if self.flags & GENERIC != 0 => {
                keys.iter().map(exists).collect::<Result<_, _>>()?
            }
            WriteCmd::Set {
                key,
                cond: Some(_),
                get: true,
                ..
            }
            | WriteCmd::SetTtl {
                key,
                cond: Some(_),
                get: true,
                ..
            } => vec![exists(key)?],
            _ => Vec::new(),
        }))
    }

    /// Notes the messages `cmd` produced, given its reply; `slot` is where the reply is.
    pub(super) fn after(
        &mut self,
        db: &Db,
        cmd: &WriteCmd,
        reply: &Frame,
        before: &Before,
        slot: (usize, Option<usize>),
        unix: UnixMillis,
    ) {
        if let WriteCmd::Meta(_) = cmd {
            self.flags = flags_of(db);
        }
        if !self.active {
            return;
        }
        if let WriteCmd::Publish { channel, message } = cmd {
            self.out.push(Note {
                entry: self.entry,
                publish: Some(slot),
                channel: channel.clone(),
                message: message.clone(),
            });
            return;
        }
        if !self.events_on() || reply.is_error() {
            return;
        }
        if let (WriteCmd::ExpireDue(_), Frame::Array(keys)) = (cmd, reply) {
            for key in keys {
                if let Frame::Bulk(key) = key {
                    self.event(EXPIRED, "expired", key);
                }
            }
            return;
        }
        for (class, event, key) in events(cmd, reply, before, unix) {
            self.event(class, event, key);
        }
    }

    /// Keys deleted because their deadline passed: Redis's `expired` event.
    pub(super) fn expired(&mut self, keys: &[Bytes]) {
        if self.events_on() {
            for key in keys {
                self.event(EXPIRED, "expired", key);
            }
        }
    }

    /// Redis's `notifyKeyspaceEvent`: `__keyspace@0__:key` carries the event,
    /// `__keyevent@0__:event` the key.
    fn event(&mut self, class: u32, event: &'static str, key: &Bytes) {
        if self.flags & class == 0 {
            return;
        }
        let mut note = |channel: Vec<u8>, message: Bytes| {
            self.out.push(Note {
                entry: self.entry,
                publish: None,
                channel: Bytes::from(channel),
                message,
            });
        };
        if self.flags & KEYSPACE != 0 {
            note(
                [b"__keyspace@0__:", &key[..]].concat(),
                Bytes::from_static(event.as_bytes()),
            );
        }
        if self.flags & KEYEVENT != 0 {
            note([b"__keyevent@0__:", event.as_bytes()].concat(), key.clone());
        }
    }
}

fn flags_of(db: &Db) -> u32 {
    db.meta()
        .setting("notify-keyspace-events")
        .and_then(|v| notify_flags(v.as_bytes()))
        .unwrap_or(0)
}

/// The keyspace events of a command that succeeded: (class, event, key), in Redis's and
/// RedisTimeSeries' names.
fn events<'a>(
    cmd: &'a WriteCmd,
    reply: &Frame,
    before: &Before,
    unix: UnixMillis,
) -> Vec<(u32, &'static str, &'a Bytes)> {
    let one = |class, event, key| vec![(class, event, key)];
    match cmd {
        WriteCmd::Set { key, cond, get, .. } if set_done(*cond, *get, reply, before) => {
            one(STRING, "set", key)
        }
        WriteCmd::SetNx { key, .. } if *reply == Frame::Integer(1) => one(STRING, "set", key),
        WriteCmd::GetSet { key, .. } => one(STRING, "set", key),
        WriteCmd::GetDel(key) if *reply != Frame::Null => one(GENERIC, "del", key),
        WriteCmd::MSet(pairs) => pairs.iter().map(|(k, _)| (STRING, "set", k)).collect(),
        WriteCmd::Del(keys) => keys
            .iter()
            .zip(&before.0)
            .filter(|(_, existed)| **existed)
            .map(|(k, _)| (GENERIC, "del", k))
            .collect(),
        WriteCmd::IncrBy { key, .. } => one(STRING, "incrby", key),
        WriteCmd::IncrByFloat { key, .. } => one(STRING, "incrbyfloat", key),
        WriteCmd::Append { key, .. } => one(STRING, "append", key),
        WriteCmd::BatchAdd { key, .. } => one(MODULE, "ts.add", key),
        WriteCmd::Ts(t) => ts_events(t, reply),
        // A deadline already passed deletes the key: Redis reports `del`.
        WriteCmd::Expire { key, when, .. } if *reply == Frame::Integer(1) => {
            let past = match *when {
                When::In(ms) => ms <= 0,
                When::At(ms) => u64::try_from(ms).map_or(true, |at| at <= unix.0),
            };
            one(GENERIC, if past { "del" } else { "expire" }, key)
        }
        WriteCmd::Persist(key) if *reply == Frame::Integer(1) => one(GENERIC, "persist", key),
        WriteCmd::SetTtl {
            key,
            cond,
            get,
            ttl,
            ..
        } if set_done(*cond, *get, reply, before) => {
            let mut out = one(STRING, "set", key);
            if matches!(ttl, TtlOpt::Set(_)) {
                out.push((GENERIC, "expire", key));
            }
            out
        }
        WriteCmd::GetEx { key, ttl } if *reply != Frame::Null => match ttl {
            Some(TtlOpt::Set(_)) => one(GENERIC, "expire", key),
            Some(TtlOpt::Persist) => one(GENERIC, "persist", key),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Whether a SET (that did not fail) wrote its key.
fn set_done(cond: Option<SetCond>, get: bool, reply: &Frame, before: &Before) -> bool {
    match (cond, get) {
        (None, _) => true,
        (Some(_), false) => *reply != Frame::Null,
        (Some(c), true) => {
            let existed = before.0.first().copied().unwrap_or(false);
            existed == (c == SetCond::Xx)
        }
    }
}

/// RedisTimeSeries' events (`RedisModule_NotifyKeyspaceEvent` in its `module.c`).
/// A `ts.add` event for each key whose sample was stored (`ok`, element by element).
fn added<'a>(
    keys: impl Iterator<Item = &'a Bytes>,
    ok: Vec<bool>,
) -> Vec<(u32, &'static str, &'a Bytes)> {
    keys.zip(ok)
        .filter(|(_, ok)| *ok)
        .map(|(k, _)| (MODULE, "ts.add", k))
        .collect()
}

fn ts_events<'a>(t: &'a TsWrite, reply: &Frame) -> Vec<(u32, &'static str, &'a Bytes)> {
    let elements = || match reply {
        Frame::Array(items) => items.iter().map(|f| !f.is_error()).collect(),
        _ => Vec::new(),
    };
    match t {
        TsWrite::Create { key, .. } => vec![(MODULE, "ts.create", key)],
        TsWrite::Alter { key, .. } => vec![(MODULE, "ts.alter", key)],
        TsWrite::Add { key, .. } | TsWrite::SeedSet { key, .. } => vec![(MODULE, "ts.add", key)],
        TsWrite::MAdd(items) => added(items.iter().map(|(k, ..)| k), elements()),
        TsWrite::Batch(samples) => added(samples.iter().map(|(k, ..)| k), elements()),
        TsWrite::MAddPartial(items) => items
            .iter()
            .zip(elements())
            .filter_map(|(item, ok)| match item {
                MAddItem::Sample(k, ..) if ok => Some((MODULE, "ts.add", k)),
                _ => None,
            })
            .collect(),
        // RedisTimeSeries reports these two as generic events.
        TsWrite::IncrBy { key, by, .. } if *by < 0.0 => vec![(GENERIC, "ts.decrby", key)],
        TsWrite::IncrBy { key, .. } => vec![(GENERIC, "ts.incrby", key)],
        TsWrite::Del { key, .. } => vec![(MODULE, "ts.del", key)],
        TsWrite::CreateRule { src, dst, .. } => vec![
            (MODULE, "ts.createrule:src", src),
            (MODULE, "ts.createrule:dest", dst),
        ],
        TsWrite::DeleteRule { src, dst } => vec![
            (MODULE, "ts.deleterule:src", src),
            (MODULE, "ts.deleterule:dest", dst),
        ],
        TsWrite::MDel { .. } => Vec::new(),
    }
}

/// `["subscribe", name, count]` and the like.
fn confirm(kind: &'static str, name: Option<Bytes>, count: usize) -> Frame {
    Frame::Push(vec![
        Frame::bulk(Bytes::from_static(kind.as_bytes())),
        name.map_or(Frame::Null, Frame::Bulk),
        Frame::Integer(i64::try_from(count).unwrap_or(i64::MAX)),
    ])
}

/// The RESP2 error for a command a subscribed connection may not run.
pub(super) fn not_in_subscribe_context(name: &str) -> Frame {
    Frame::error(format!(
        "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    ))
}

/// Commands a RESP2 connection with subscriptions may run.
pub(super) fn allowed_when_subscribed(name: &str) -> bool {
    matches!(
        name,
        "subscribe" | "psubscribe" | "unsubscribe" | "punsubscribe" | "ping" | "quit" | "reset"
    )
}

impl<S: Store> Node<S> {
    /// Whether `conn` is a RESP2 connection in subscribed mode.
    pub(super) fn in_subscribe_mode(&self, conn: ConnId) -> bool {
        self.pubsub.count(conn) > 0
            && self
                .conns
                .get(&conn)
                .is_some_and(|c| c.protocol == Protocol::Resp2)
    }

    /// SUBSCRIBE / PSUBSCRIBE: one confirmation per name, in order.
    pub(super) fn subscribe(&mut self, conn: ConnId, patterns: bool, names: Vec<Bytes>) {
        let kind = if patterns { "psubscribe" } else { "subscribe" };
        if self
            .conns
            .get(&conn)
            .is_some_and(|c| c.kind == ConnKind::Zmq)
        {
            // A DEALER gets one reply message per request message: there is nowhere to put
            // messages it did not ask for.
            let msg = format!(
                "ERR {} is not available on the ZeroMQ endpoint: subscribe over RESP on TCP",
                kind.to_ascii_uppercase()
            );
            return self.reply(conn, Frame::error(msg));
        }
        for name in names {
            if self.pubsub.count(conn) >= SUBSCRIPTIONS_MAX_PER_CONN {
                let msg = format!(
                    "ERR too many subscriptions on this connection (at most {SUBSCRIPTIONS_MAX_PER_CONN} channels and patterns)"
                );
                self.reply(conn, Frame::error(msg));
                return;
            }
            self.pubsub.add(conn, patterns, &name);
            let count = self.pubsub.count(conn);
            self.reply(conn, confirm(kind, Some(name), count));
        }
    }

    /// UNSUBSCRIBE / PUNSUBSCRIBE: one confirmation per name; without names, one per current
    /// subscription of that kind, or one with a nil name when there is none.
    pub(super) fn unsubscribe(&mut self, conn: ConnId, patterns: bool, names: Vec<Bytes>) {
        let kind = if patterns {
            "punsubscribe"
        } else {
            "unsubscribe"
        };
        let names = if names.is_empty() {
            let subs = self.pubsub.conns.get(&conn);
            let all = subs.map(|s| {
                let set = if patterns { &s.patterns } else { &s.channels };
                set.iter().cloned().collect::<Vec<_>>()
            });
            all.unwrap_or_default()
        } else {
            names
        };
        if names.is_empty() {
            let count = self.pubsub.count(conn);
            return self.reply(conn, confirm(kind, None, count));
        }
        for name in names {
            self.pubsub.remove(conn, patterns, &name);
            let count = self.pubsub.count(conn);
            self.reply(conn, confirm(kind, Some(name), count));
        }
    }

    /// PUBSUB CHANNELS [pattern]: the channels with at least one subscriber on this node.
    pub(super) fn pubsub_channels(&self, pattern: Option<&[u8]>) -> Frame {
        Frame::Array(
            self.pubsub
                .channels
                .keys()
                .filter(|ch| pattern.is_none_or(|p| glob::matches(p, ch)))
                .map(|ch| Frame::Bulk(ch.clone()))
                .collect(),
        )
    }

    /// PUBSUB NUMSUB [channel ...]: `[channel, count, ...]`.
    pub(super) fn pubsub_numsub(&self, channels: &[Bytes]) -> Frame {
        let mut out = Vec::with_capacity(channels.len() * 2);
        for ch in channels {
            let n = self.pubsub.channels.get(ch).map_or(0, BTreeSet::len);
            out.push(Frame::Bulk(ch.clone()));
            out.push(Frame::Integer(i64::try_from(n).unwrap_or(i64::MAX)));
        }
        Frame::Array(out)
    }

    /// PUBSUB NUMPAT: distinct patterns subscribed on this node.
    pub(super) fn pubsub_numpat(&self) -> Frame {
        Frame::Integer(i64::try_from(self.pubsub.patterns.len()).unwrap_or(i64::MAX))
    }

    /// Delivers one message to this node's subscribers; returns how many received it.
    pub(super) fn deliver(&mut self, channel: &Bytes, message: &Bytes) -> usize {
        let receivers = self.pubsub.receivers(channel);
        let mut n = 0;
        for (conn, pattern) in receivers {
            let Some(c) = self.conns.get(&conn) else {
                continue;
            };
            if c.closing {
                continue;
            }
            let frame = match pattern {
                None => Frame::Push(vec![
                    Frame::bulk(Bytes::from_static(b"message")),
                    Frame::Bulk(channel.clone()),
                    Frame::Bulk(message.clone()),
                ]),
                Some(p) => Frame::Push(vec![
                    Frame::bulk(Bytes::from_static(b"pmessage")),
                    Frame::Bulk(p),
                    Frame::Bulk(channel.clone()),
                    Frame::Bulk(message.clone()),
                ]),
            };
            n += 1;
            self.outputs.push_back(Output::Reply {
                conn,
                frame,
                protocol: c.protocol,
            });
        }
        self.stats.pubsub_messages += u64::try_from(n).unwrap_or(u64::MAX);
        n
    }

    /// Delivers the messages of one entry, and puts each PUBLISH's receiver count into its
    /// reply.
    pub(super) fn deliver_notes(&mut self, notes: &[Note], replies: Option<&mut Vec<Frame>>) {
        let mut replies = replies;
        for note in notes {
            let n = self.deliver(&note.channel, &note.message);
            let Some((i, op)) = note.publish else {
                continue;
            };
            let count = Frame::Integer(i64::try_from(n).unwrap_or(i64::MAX));
            let slot = replies.as_deref_mut().and_then(|r| r.get_mut(i));
            match (slot, op) {
                (Some(f), None) => *f = count,
                (Some(Frame::Array(items)), Some(j)) => {
                    if let Some(f) = items.get_mut(j) {
                        *f = count;
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_connection_sets_agree() {
        let mut ps = PubSub::default();
        let (a, b) = (ConnId(1), ConnId(2));
        let ch = Bytes::from_static(b"ch");
        let pat = Bytes::from_static(b"c*");
        ps.add(a, false, &ch);
        ps.add(a, false, &ch);
        ps.add(b, true, &pat);
        assert_eq!(ps.count(a), 1);
        assert_eq!(ps.receivers(b"ch"), vec![(a, None), (b, Some(pat.clone()))]);
        assert!(ps.receivers(b"x").is_empty());
        ps.check_invariants(|_| true);
        ps.remove(a, false, &ch);
        ps.drop_conn(b);
        assert!(ps.is_empty());
        assert_eq!(ps.totals(), (0, 0));
        ps.check_invariants(|_| true);
    }
}
