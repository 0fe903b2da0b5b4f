//! The log entry: what one client write (or one BATCH_FLUSH, or one MULTI/EXEC transaction)
//! puts in the replicated log.
//!
//! A write becomes a [`LogEntry`], encoded into a Raft entry. The leader appends it without a
//! sync; one sync covers every entry appended in a drive round (group commit), and it applies
//! and answers once a majority holds it durably. With one node a majority is one.
//!
//! The first byte of an entry is its format version and says which kind it is: version 1 is a
//! [`LogEntry`] (writes), version 2 a [`TxnEntry`] (a transaction: watched keys, then writes
//! and reads in order). Both stay decodable; [`Decoded::decode`] dispatches on the byte.
//!
//! Version 3 is a group ([`GroupBuilder`]): the leader puts the writes of several clients
//! that one drive round proposes into one Raft entry, so a round of 800 single-sample writes
//! costs the log one record, not 800. Each member is a version 1 or 2 entry and applies, and
//! is answered, as if it were an entry of its own at the group's index (its WATCH versions
//! included); a group is never a member, and followers never forward one.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::UnixMillis;
use crate::cmd::WriteCmd;
use crate::store::{Space, StoreError};

/// Format version of [`LogEntry`]; an entry with another version is refused, not guessed.
pub const ENTRY_VERSION: u8 = 1;

/// Format version of [`TxnEntry`].
pub const TXN_ENTRY_VERSION: u8 = 2;

/// Format version of a group entry ([`GroupBuilder`]).
pub const GROUP_ENTRY_VERSION: u8 = 3;

/// One group entry of `members` ([`GroupBuilder`]'s bytes), for the tests.
#[cfg(test)]
pub fn encode_group(members: &[Vec<u8>]) -> Vec<u8> {
    let bytes = members.iter().map(Vec::len).sum();
    let mut group = GroupBuilder::new(members.len(), bytes);
    for m in members {
        group.push(m);
    }
    group.finish()
}

/// Writes one entry holding several members (each an encoded [`LogEntry`] or [`TxnEntry`]),
/// in order, into one buffer of the group's size:
/// `[3, count: u32 BE, (length: u32 BE, member bytes)...]`.
pub struct GroupBuilder {
    out: Vec<u8>,
    left: usize,
}

impl GroupBuilder {
    /// A group of `count` members of `bytes` bytes in all.
    pub fn new(count: usize, bytes: usize) -> Self {
        let mut out = Vec::with_capacity(GROUP_HEADER + GROUP_MEMBER_OVERHEAD * count + bytes);
        out.push(GROUP_ENTRY_VERSION);
        out.extend_from_slice(&u32_len(count).to_be_bytes());
        Self { out, left: count }
    }

    pub fn push(&mut self, member: &[u8]) {
        self.left = self
            .left
            .checked_sub(1)
            .expect("no more members than announced");
        self.out
            .extend_from_slice(&u32_len(member.len()).to_be_bytes());
        self.out.extend_from_slice(member);
    }

    pub fn finish(self) -> Vec<u8> {
        assert_eq!(self.left, 0, "as many members as announced");
        self.out
    }
}

/// Bytes of a group entry before its members.
pub const GROUP_HEADER: usize = 5;

/// Bytes a member adds to a group beyond its own.
pub const GROUP_MEMBER_OVERHEAD: usize = 4;

fn u32_len(n: usize) -> u32 {
    // Entries are bounded far below 4 GiB (peer::MAX_ENTRY_BYTES).
    u32::try_from(n).expect("a log entry is under 4 GiB")
}

/// The members of a group entry, in order; `None` when `bytes` is not a group. A truncated
/// or overlong group, or a group inside a group, is corrupt.
pub fn group_members(bytes: &[u8]) -> Option<Result<Vec<&[u8]>, StoreError>> {
    if bytes.first() != Some(&GROUP_ENTRY_VERSION) {
        return None;
    }
    Some(split_group(bytes))
}

fn split_group(bytes: &[u8]) -> Result<Vec<&[u8]>, StoreError> {
    fn take<'b>(rest: &mut &'b [u8], n: usize) -> Result<&'b [u8], StoreError> {
        if rest.len() < n {
            return Err(corrupt("truncated group entry".into()));
        }
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Ok(head)
    }
    fn len(rest: &mut &[u8]) -> Result<usize, StoreError> {
        let b: [u8; 4] = take(rest, 4)?.try_into().expect("four bytes");
        Ok(u32::from_be_bytes(b) as usize)
    }
    let mut rest = &bytes[1..];
    let count = len(&mut rest)?;
    // Each member takes at least its length prefix: a count beyond that is a lie.
    if count > rest.len() / GROUP_MEMBER_OVERHEAD {
        return Err(corrupt(format!("group entry claims {count} members")));
    }
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        let n = len(&mut rest)?;
        let member = take(&mut rest, n)?;
        if member.first() == Some(&GROUP_ENTRY_VERSION) {
            return Err(corrupt("a group entry inside a group entry".into()));
        }
        members.push(member);
    }
    if !rest.is_empty() {
        return Err(corrupt(
            "bytes after the last member of a group entry".into(),
        ));
    }
    Ok(members)
}

/// A `MULTI` ... `EXEC` transaction as one log entry. Every replica applies it atomically:
/// first the `WATCH` check (each key's version must still be the one captured), then the
/// operations in order, reads included, so a read sees the writes queued before it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TxnEntry {
    pub version: u8,
    pub unix: UnixMillis,
    /// The client's protocol (2 or 3): reads whose RESP2 shape is not the lowering of their
    /// RESP3 shape (`TS.*`) are built for it.
    pub protocol: u8,
    /// Watched keys and the version each had when the client watched it.
    pub watch: Vec<(Bytes, u64)>,
    pub ops: Vec<TxnOp>,
}

/// One queued command of a transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TxnOp {
    Write(WriteCmd),
    /// A read, or a connection command whose reply is the same everywhere (PING, ECHO, TIME,
    /// UNWATCH): its arguments, name first, parsed again when it applies.
    Read(Vec<Bytes>),
    /// A command refused when it was queued for a reason Redis finds only when it runs (a bad
    /// number, a syntax error): its error reply, in its place in EXEC's array.
    Error(String),
}

impl TxnEntry {
    pub fn new(unix: UnixMillis, protocol: u8, watch: Vec<(Bytes, u64)>, ops: Vec<TxnOp>) -> Self {
        Self {
            version: TXN_ENTRY_VERSION,
            unix,
            protocol,
            watch,
            ops,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // The decoder dispatches on the first byte.
        assert_eq!(self.version, TXN_ENTRY_VERSION);
        // Serializing plain owned data into a Vec cannot fail.
        postcard::to_allocvec(self).expect("transaction entry serializes")
    }
}

/// A decoded log entry of either kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded {
    Writes(LogEntry),
    Txn(TxnEntry),
}

impl Decoded {
    /// The bytes this entry is logged as (the node's tests check kept proposals against
    /// them; production encodes each kind where it builds it).
    #[cfg(test)]
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Writes(e) => e.encode(),
            Self::Txn(t) => t.encode(),
        }
    }

    /// Decodes an entry of any known version; anything else is refused as corrupt.
    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        match bytes.first() {
            Some(&TXN_ENTRY_VERSION) => postcard::from_bytes(bytes)
                .map(Self::Txn)
                .map_err(|e| corrupt(e.to_string())),
            _ => LogEntry::decode(bytes).map(Self::Writes),
        }
    }
}

fn corrupt(detail: String) -> StoreError {
    StoreError::Corrupt {
        space: Space::Log,
        detail,
    }
}

/// One log entry: the writes it applies atomically, with the wall-clock time the proposer
/// stamped into it so every replica resolves `*` timestamps alike.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub version: u8,
    pub unix: UnixMillis,
    pub cmds: Vec<WriteCmd>,
}

impl LogEntry {
    pub fn new(unix: UnixMillis, cmds: Vec<WriteCmd>) -> Self {
        Self {
            version: ENTRY_VERSION,
            unix,
            cmds,
        }
    }

    /// The entry's postcard bytes. The commands most writes are (SET, INCRBY, a sample) are
    /// written by hand ([`fast`]): postcard through serde took 450 instructions for a SET.
    /// The bytes are postcard's exactly, so either decodes the other (a proptest checks).
    pub fn encode(&self) -> Vec<u8> {
        let hint = self.cmds.iter().map(fast::size_hint).sum::<usize>();
        let mut out = Vec::with_capacity(16 + hint);
        out.push(self.version);
        fast::varint(&mut out, self.unix.0);
        fast::varint(&mut out, self.cmds.len() as u64);
        for cmd in &self.cmds {
            fast::write_cmd(&mut out, cmd);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        if bytes.first() != Some(&ENTRY_VERSION) {
            return Err(corrupt(format!(
                "log entry version {:?} is not {ENTRY_VERSION}",
                bytes.first()
            )));
        }
        postcard::from_bytes(bytes).map_err(|e| corrupt(e.to_string()))
    }
}

/// Postcard's encoding of the commands most writes are, by hand; every other command goes
/// through postcard itself. Postcard writes a struct or an enum variant's fields in order after
/// the variant's index (a varint), unsigned integers as varints, signed ones zigzagged, `f64`
/// as 8 bytes little-endian, byte strings as a varint length and the bytes, `Option` and
/// `bool` as a byte. The variant indices below are the declaration order of [`WriteCmd`] and
/// [`TsWrite`]; `hand_encoding_is_postcards` checks them and every byte.
mod fast {
    use std::sync::OnceLock;

    use crate::cmd::WriteCmd;
    use crate::cmd::ts::{SeriesOpts, TsWrite};

    const SET: u64 = 0;
    const INCR_BY: u64 = 6;
    const BATCH_ADD: u64 = 10;
    const TS: u64 = 11;
    const TS_ADD: u64 = 2;
    const TS_MADD: u64 = 3;
    const TS_BATCH: u64 = 11;

    pub(super) fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// About the bytes `cmd` takes (exact for the hand-written ones, give or take varint
    /// lengths), so the entry's buffer is sized once.
    pub(super) fn size_hint(cmd: &WriteCmd) -> usize {
        match cmd {
            WriteCmd::Set { key, value, .. } => key.len() + value.len() + 8,
            WriteCmd::Ts(TsWrite::MAdd(items)) => {
                items.iter().map(|(key, ..)| key.len() + 22).sum::<usize>() + 8
            }
            WriteCmd::Ts(TsWrite::Batch(samples)) => {
                samples
                    .iter()
                    .map(|(key, ..)| key.len() + 21)
                    .sum::<usize>()
                    + 8
            }
            _ => 48,
        }
    }

    fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }

    fn opt_u64(out: &mut Vec<u8>, v: Option<u64>) {
        match v {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                varint(out, v);
            }
        }
    }

    fn f64(out: &mut Vec<u8>, v: f64) {
        out.extend_from_slice(&v.to_le_bytes());
    }

    /// Postcard's bytes of `SeriesOpts::default()`: a TS.ADD without options carries them.
    fn default_opts() -> &'static [u8] {
        static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
        BYTES.get_or_init(|| {
            postcard::to_allocvec(&SeriesOpts::default()).expect("default options serialize")
        })
    }

    /// Appends `cmd`'s postcard bytes to `out`.
    pub(super) fn write_cmd(out: &mut Vec<u8>, cmd: &WriteCmd) {
        match cmd {
            WriteCmd::Set {
                key,
                value,
                cond: None,
                get,
            } => {
                varint(out, SET);
                bytes(out, key);
                bytes(out, value);
                out.push(0);
                out.push(u8::from(*get));
            }
            WriteCmd::IncrBy { key, by } => {
                varint(out, INCR_BY);
                bytes(out, key);
                // Zigzagged, as postcard writes signed integers.
                varint(out, crate::chunk::zigzag(*by));
            }
            WriteCmd::BatchAdd { key, ts, value } => {
                varint(out, BATCH_ADD);
                bytes(out, key);
                varint(out, *ts);
                f64(out, *value);
            }
            WriteCmd::Ts(TsWrite::Add {
                key,
                ts,
                value,
                opts,
                on_duplicate,
            }) if *opts == SeriesOpts::default() => {
                varint(out, TS);
                varint(out, TS_ADD);
                bytes(out, key);
                opt_u64(out, *ts);
                f64(out, *value);
                out.extend_from_slice(default_opts());
                match on_duplicate {
                    None => out.push(0),
                    Some(p) => {
                        out.push(1);
                        postcard_into(out, p);
                    }
                }
            }
            WriteCmd::Ts(TsWrite::MAdd(items)) => {
                varint(out, TS);
                varint(out, TS_MADD);
                varint(out, items.len() as u64);
                for (key, ts, value) in items {
                    bytes(out, key);
                    opt_u64(out, *ts);
                    f64(out, *value);
                }
            }
            WriteCmd::Ts(TsWrite::Batch(samples)) => {
                varint(out, TS);
                varint(out, TS_BATCH);
                varint(out, samples.len() as u64);
                for (key, ts, value) in samples {
                    bytes(out, key);
                    varint(out, *ts);
                    f64(out, *value);
                }
            }
            other => postcard_into(out, other),
        }
    }

    fn postcard_into<T: serde::Serialize>(out: &mut Vec<u8>, v: &T) {
        // Serializing plain owned data into a Vec cannot fail.
        let taken = std::mem::take(out);
        *out = postcard::to_extend(v, taken).expect("a log entry serializes");
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::cmd::SetCond;
    use crate::cmd::series::DupPolicy;
    use crate::cmd::ts::{SeriesOpts, TsWrite};

    fn arb_bytes() -> impl Strategy<Value = Bytes> {
        // Up to 300 bytes: lengths of one and of two varint bytes.
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from)
    }

    fn arb_policy() -> impl Strategy<Value = DupPolicy> {
        prop_oneof![
            Just(DupPolicy::Block),
            Just(DupPolicy::First),
            Just(DupPolicy::Last),
            Just(DupPolicy::Min),
            Just(DupPolicy::Max),
            Just(DupPolicy::Sum),
        ]
    }

    /// The commands [`fast`] writes by hand, each also in a shape it leaves to postcard (a SET
    /// with a condition, a TS.ADD with options), and two it never handles.
    fn arb_cmd() -> impl Strategy<Value = WriteCmd> {
        prop_oneof![
            (
                arb_bytes(),
                arb_bytes(),
                proptest::option::of(prop_oneof![Just(SetCond::Nx), Just(SetCond::Xx)]),
                any::<bool>()
            )
                .prop_map(|(key, value, cond, get)| WriteCmd::Set {
                    key,
                    value,
                    cond,
                    get
                }),
            (arb_bytes(), any::<i64>()).prop_map(|(key, by)| WriteCmd::IncrBy { key, by }),
            (arb_bytes(), any::<u64>(), any::<f64>())
                .prop_map(|(key, ts, value)| WriteCmd::BatchAdd { key, ts, value }),
            (
                arb_bytes(),
                proptest::option::of(any::<u64>()),
                any::<f64>(),
                proptest::option::of(any::<u64>()),
                proptest::option::of(arb_policy())
            )
                .prop_map(|(key, ts, value, retention_ms, on_duplicate)| {
                    WriteCmd::Ts(TsWrite::Add {
                        key,
                        ts,
                        value,
                        opts: SeriesOpts {
                            retention_ms,
                            ..SeriesOpts::default()
                        },
                        on_duplicate,
                    })
                }),
            proptest::collection::vec(
                (
                    arb_bytes(),
                    proptest::option::of(any::<u64>()),
                    any::<f64>()
                ),
                0..20
            )
            .prop_map(|items| WriteCmd::Ts(TsWrite::MAdd(items))),
            proptest::collection::vec((arb_bytes(), any::<u64>(), any::<f64>()), 0..20)
                .prop_map(|samples| WriteCmd::Ts(TsWrite::Batch(samples))),
            proptest::collection::vec(arb_bytes(), 0..4).prop_map(WriteCmd::Del),
            Just(WriteCmd::Flush),
        ]
    }

    /// The variant indices [`fast`] writes are the declaration order serde numbers them by.
    #[test]
    fn hand_encoded_variant_indices_are_serdes() {
        let set = WriteCmd::Set {
            key: Bytes::new(),
            value: Bytes::new(),
            cond: None,
            get: false,
        };
        let batch = WriteCmd::BatchAdd {
            key: Bytes::new(),
            ts: 0,
            value: 0.0,
        };
        let madd = WriteCmd::Ts(TsWrite::MAdd(Vec::new()));
        let flush = WriteCmd::Ts(TsWrite::Batch(Vec::new()));
        for (cmd, want) in [
            (set, vec![0u8]),
            (
                WriteCmd::IncrBy {
                    key: Bytes::new(),
                    by: 0,
                },
                vec![6],
            ),
            (batch, vec![10]),
            (madd, vec![11, 3]),
            (flush, vec![11, 11]),
        ] {
            let bytes = postcard::to_allocvec(&cmd).unwrap();
            assert_eq!(bytes[..want.len()], want[..], "{cmd:?}");
        }
    }

    proptest! {
        /// [`LogEntry::encode`] writes postcard's bytes exactly, whichever way it takes.
        #[test]
        fn hand_encoding_is_postcards(
            unix in any::<u64>(),
            cmds in proptest::collection::vec(arb_cmd(), 0..6),
        ) {
            let entry = LogEntry::new(UnixMillis(unix), cmds);
            let bytes = entry.encode();
            prop_assert_eq!(&bytes, &postcard::to_allocvec(&entry).unwrap());
            // Bytes, not entries: a NaN value is not equal to itself.
            prop_assert_eq!(LogEntry::decode(&bytes).unwrap().encode(), bytes);
        }
    }

    proptest! {
        /// Entries come from peers and from disk: any bytes decode or are refused, never panic.
        #[test]
        fn arbitrary_bytes_never_panic(
            version in 0u8..4,
            rest in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut bytes = vec![version];
            bytes.extend(rest);
            let _ = Decoded::decode(&bytes);
            if let Some(Ok(members)) = group_members(&bytes) {
                for m in members {
                    let _ = Decoded::decode(m);
                }
            }
        }

        #[test]
        fn groups_round_trip(sizes in proptest::collection::vec(0usize..40, 1..20)) {
            let members: Vec<Vec<u8>> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    let mut m = vec![ENTRY_VERSION];
                    m.extend((0..n).map(|j| (i + j) as u8));
                    m
                })
                .collect();
            let bytes = encode_group(&members);
            let got = group_members(&bytes).unwrap().unwrap();
            prop_assert_eq!(got, members.iter().map(Vec::as_slice).collect::<Vec<_>>());
            // Any truncation is refused, never misread.
            for cut in 0..bytes.len() {
                prop_assert!(group_members(&bytes[..cut]).is_none_or(|r| r.is_err()));
            }
        }
    }

    fn entry(n: u8) -> LogEntry {
        LogEntry::new(
            UnixMillis(u64::from(n)),
            vec![WriteCmd::Del(vec![vec![n].into()])],
        )
    }

    #[test]
    fn round_trips() {
        assert_eq!(LogEntry::decode(&entry(3).encode()).unwrap(), entry(3));
    }

    #[test]
    fn refuses_entries_of_another_version() {
        let mut bytes = entry(1).encode();
        bytes[0] = 99;
        assert!(LogEntry::decode(&bytes).is_err());
        assert!(LogEntry::decode(&[]).is_err());
        assert!(Decoded::decode(&[]).is_err());
        assert!(Decoded::decode(&[3, 0]).is_err());
        assert!(Decoded::decode(&[TXN_ENTRY_VERSION, 0xff]).is_err());
    }

    /// The bytes a version-1 entry had when transactions were added: old logs must still
    /// decode, so these bytes never change.
    #[test]
    fn writes_entry_golden_bytes() {
        let bytes = entry(3).encode();
        assert_eq!(bytes, [1, 3, 1, 5, 1, 1, 3]);
        assert_eq!(Decoded::decode(&bytes).unwrap(), Decoded::Writes(entry(3)));
    }

    /// A group entry's layout on disk and on the wire.
    #[test]
    fn group_entry_golden_bytes() {
        let members = vec![entry(3).encode(), vec![TXN_ENTRY_VERSION, 9]];
        let bytes = encode_group(&members);
        assert_eq!(
            bytes,
            [
                3, // version
                0, 0, 0, 2, // two members
                0, 0, 0, 7, 1, 3, 1, 5, 1, 1, 3, // entry(3), as in writes_entry_golden_bytes
                0, 0, 0, 2, 2, 9, // a (truncated) transaction entry: members are opaque here
            ]
        );
        let got = group_members(&bytes).unwrap().unwrap();
        assert_eq!(got, vec![&members[0][..], &members[1][..]]);
        assert!(group_members(&entry(3).encode()).is_none(), "not a group");
        // A group is not a plain entry, and a group may not hold a group.
        assert!(Decoded::decode(&bytes).is_err());
        let nested = encode_group(std::slice::from_ref(&bytes));
        assert!(group_members(&nested).unwrap().is_err());
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(group_members(&extra).unwrap().is_err());
        assert!(
            group_members(&[3, 0xff, 0xff, 0xff, 0xff])
                .unwrap()
                .is_err()
        );
    }

    /// A `BATCH_FLUSH` entry's layout: version 1, unix, one command, `Ts` (11), `Batch` (11),
    /// the sample count, then per sample the key, the timestamp as a varint and the value as
    /// 8 bytes little-endian.
    #[test]
    fn batch_flush_entry_golden_bytes() {
        let samples = vec![(Bytes::from_static(b"k"), 300, 1.5)];
        let entry = LogEntry::new(UnixMillis(2), vec![WriteCmd::Ts(TsWrite::Batch(samples))]);
        let bytes = entry.encode();
        let mut want = vec![1, 2, 1, 11, 11, 1, 1, b'k', 0xac, 0x02];
        want.extend_from_slice(&1.5f64.to_le_bytes());
        assert_eq!(bytes, want);
        assert_eq!(LogEntry::decode(&bytes).unwrap(), entry);
    }

    /// A transaction entry's layout on disk and on the wire: version 2, unix, protocol,
    /// watched keys with versions, operations.
    #[test]
    fn transaction_entry_golden_bytes() {
        let t = TxnEntry::new(
            UnixMillis(300),
            3,
            vec![(Bytes::from_static(b"k"), 7)],
            vec![
                TxnOp::Write(WriteCmd::Del(vec![Bytes::from_static(b"a")])),
                TxnOp::Read(vec![Bytes::from_static(b"GET"), Bytes::from_static(b"a")]),
                TxnOp::Error("ERR x".into()),
            ],
        );
        let bytes = t.encode();
        assert_eq!(
            bytes,
            [
                2, // version
                0xac, 0x02, // unix 300 (varint)
                3,    // protocol
                1, 1, b'k', 7, // watch: [("k", 7)]
                3, // three ops
                0, 5, 1, 1, b'a', // Write(Del(["a"]))
                1, 2, 3, b'G', b'E', b'T', 1, b'a', // Read(["GET", "a"])
                2, 5, b'E', b'R', b'R', b' ', b'x', // Error("ERR x")
            ]
        );
        assert_eq!(Decoded::decode(&bytes).unwrap(), Decoded::Txn(t));
        // A version-1 decoder refuses it instead of misreading it.
        assert!(LogEntry::decode(&bytes).is_err());
    }
}
