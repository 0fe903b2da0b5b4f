//! The write path, from proposals to replies: a client's write is encoded once and proposed
//! (leader) or forwarded (follower); each drive round's proposals go into the log together,
//! consecutive ones grouped into one entry (group commit); committed entries (and snapshots
//! from the leader) are applied to the state machine, and the clients waiting for them are
//! answered.

use super::conn::Kind;
use super::log::{self, Decoded, LogEntry};
use super::peer::{self, ForwardItem};
use super::waiters::Waiter;
use super::{ConnId, Node, cluster_down, not_leader, pubsub, txn};
use crate::UnixMillis;
use crate::cmd::WriteCmd;
use crate::raft::{Entry, EntryKind, LogIndex, ProposeError, Term};
use crate::resp::Frame;
use crate::state::Db;
use crate::store::{Store, StoreError};
use crate::writeback::WriteBack;

#[derive(Clone, Copy, Debug)]
pub(super) enum ReplyShape {
    /// The reply of the entry's one command.
    Single,
    /// BATCH_FLUSH: the number of samples that did not fail, a command's elements counted
    /// one by one when it replies with an array ([`crate::cmd::ts::TsWrite::Batch`]).
    Count,
}

/// A write waiting for the next drive round to be proposed with the others (group commit).
#[derive(Debug)]
pub(super) struct Proposal {
    pub(super) conn: ConnId,
    pub(super) entry: Vec<u8>,
    pub(super) shape: ReplyShape,
    /// `entry` decoded, when this node has it at hand (it encoded it, or checked a forward).
    pub(super) decoded: Option<Decoded>,
}

impl Proposal {
    /// Whom to answer, and the bytes to log.
    fn split(self) -> (Waiter, Vec<u8>) {
        let waiter = Waiter {
            conn: self.conn,
            shape: self.shape,
            decoded: self.decoded,
        };
        (waiter, self.entry)
    }
}

impl<S: Store> Node<S> {
    /// A write from a client: encoded once, checked against the entry limit, then proposed
    /// (leader) or forwarded (follower).
    pub(super) fn write(
        &mut self,
        conn: ConnId,
        cmds: Vec<WriteCmd>,
        shape: ReplyShape,
        unix: UnixMillis,
    ) {
        let decoded = LogEntry::new(unix, cmds);
        let entry = decoded.encode();
        self.submit_write(conn, entry, shape, Some(Decoded::Writes(decoded)));
    }

    /// Proposes (leader) or forwards (follower) the encoded `entry`; `decoded` is what it
    /// decodes to, kept for the apply when this node proposes it.
    pub(super) fn submit_write(
        &mut self,
        conn: ConnId,
        entry: Vec<u8>,
        shape: ReplyShape,
        decoded: Option<Decoded>,
    ) {
        if entry.len() > peer::MAX_ENTRY_BYTES {
            let msg = format!(
                "ERR write of {} bytes exceeds the limit of one replicated log entry ({} bytes)",
                entry.len(),
                peer::MAX_ENTRY_BYTES
            );
            return self.reply(conn, Frame::error(msg));
        }
        let leader = self.is_leader();
        let known = self.raft.leader();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if leader {
            c.writes += 1;
            self.proposals.push(Proposal {
                conn,
                entry,
                shape,
                decoded,
            });
        } else if c.remote.is_some() {
            self.reply(conn, not_leader());
        } else if known.is_some() {
            c.writes += 1;
            let count = matches!(shape, ReplyShape::Count);
            self.buffer_forward(conn, ForwardItem::Write { entry, count });
        } else {
            self.reply(conn, cluster_down());
        }
    }

    /// Proposes every write of this round in one store write (group commit), several
    /// clients' writes to an entry ([`log::GroupBuilder`]) up to the entry size limit.
    pub(super) fn propose_round(&mut self) {
        let (entries, who) = group_proposals(&mut self.proposals);
        match self.raft.propose_many(&mut self.store, self.now, entries) {
            Ok((first, term)) => {
                let deadline = self.now.saturating_add(self.request_timeout());
                let mut lost = Vec::new();
                for (i, members) in who.into_iter().enumerate() {
                    let index = first.0 + i as u64;
                    self.waiters
                        .propose(index, term, deadline, members, &mut lost);
                }
                // Their entries were overwritten by a later leader's log: never applied.
                for old in lost {
                    self.answer(old.conn, Kind::Write, write_lost());
                }
            }
            Err(ProposeError::NotLeader { .. }) => {
                for w in who.into_iter().flatten() {
                    self.answer(w.conn, Kind::Write, not_leader());
                }
            }
            Err(e) => {
                let frame = self.storage_failed(StoreError::Engine(e.to_string()));
                for w in who.into_iter().flatten() {
                    self.answer(w.conn, Kind::Write, frame.clone());
                }
                self.fail_all(&frame);
            }
        }
    }

    /// Applies the committed entries collected from Raft in one transaction, held in memory
    /// with the applied index until the next checkpoint, then answers their clients.
    pub(super) fn apply_collected(&mut self) {
        if self.to_apply.is_empty() || self.failed.is_some() {
            return;
        }
        let entries = std::mem::take(&mut self.to_apply);
        assert_eq!(
            entries[0].index,
            self.applied.next(),
            "entries apply in log order right after the applied index"
        );
        let mut notes = pubsub::Notes::new(&self.db, !self.pubsub.is_empty());
        let proposed = |index: LogIndex, term: Term, member: u32| {
            self.waiters.take_decoded(index.0, term, member)
        };
        let applied = match apply_entries(
            &mut self.db,
            &mut self.store,
            &entries,
            &mut notes,
            proposed,
        ) {
            Ok(replies) => replies,
            Err(e) => {
                let frame = self.storage_failed(e);
                self.fail_all(&frame);
                return;
            }
        };
        if notes.unix.0 > 0 {
            self.note_unix(notes.unix);
        }
        // Notes are in order: each applied entry (or member of a group) takes the run of them
        // that is its own.
        let mut pending = notes.out.as_slice();
        for (k, item) in applied.into_iter().enumerate() {
            let entry = &entries[item.entry];
            self.applied = entry.index;
            let mut replies = item.replies;
            let own = pending.iter().take_while(|n| n.entry == k).count();
            if own > 0 {
                self.deliver_notes(&pending[..own], replies.as_mut());
                pending = &pending[own..];
            }
            let Some(mut replies) = replies else { continue };
            self.stats.writes_applied += 1;
            let Some((term, waiter)) = self.waiters.take(entry.index.0, item.member) else {
                continue;
            };
            let frame = if term != entry.term {
                write_lost()
            } else {
                match waiter.shape {
                    ReplyShape::Single => match replies.iter().position(Frame::is_error) {
                        Some(i) => replies.swap_remove(i),
                        None => replies.into_iter().next().unwrap_or(Frame::Null),
                    },
                    ReplyShape::Count => {
                        let ok: usize = replies.iter().map(samples_ok).sum();
                        Frame::Integer(i64::try_from(ok).unwrap_or(i64::MAX))
                    }
                }
            };
            self.answer(waiter.conn, Kind::Write, frame);
        }
        self.announce_members();
        // Waiters at indexes that applied as no-ops or config changes lost their entry.
        for w in self.waiters.take_through(self.applied.0) {
            self.answer(w.conn, Kind::Write, write_lost());
        }
    }

    pub(super) fn snapshot_installed(&mut self, index: LogIndex) {
        tracing::info!(index = index.0, "installed a snapshot from the leader");
        assert!(
            index > self.applied,
            "a snapshot at {} installed behind the applied index {}",
            index.0,
            self.applied.0
        );
        assert!(
            self.to_apply.is_empty(),
            "entries applied before the snapshot"
        );
        self.stats.snapshots_installed += 1;
        match Db::open(&self.store) {
            Ok(db) => self.db = db,
            Err(e) => {
                let frame = self.storage_failed(e);
                self.fail_all(&frame);
                return;
            }
        }
        self.applied = index;
        self.announce_members();
        for w in self.waiters.take_through(index.0) {
            let frame = unknown_outcome("was overtaken by a snapshot from the leader");
            self.answer(w.conn, Kind::Write, frame);
        }
    }
}

/// Who waits for each member of one proposed entry, in member order, with the member decoded
/// when the proposal had it.
pub(super) type Members = Vec<Waiter>;

/// The round's proposals as log entries: consecutive writes share a group entry
/// ([`log::GroupBuilder`]) while it stays within the entry size limit; a lone write stays a
/// plain entry. Returns the entries and, per entry, who waits for each member.
///
/// Takes the proposals out of `proposals`, which keeps its capacity for the next round; each
/// group is written into one buffer of its size.
pub(super) fn group_proposals(proposals: &mut Vec<Proposal>) -> (Vec<Vec<u8>>, Vec<Members>) {
    // Runs of proposals that fit one entry: their count and the bytes of their commands.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut size = 0;
    for p in proposals.iter() {
        let add = log::GROUP_MEMBER_OVERHEAD + p.entry.len();
        match runs.last_mut() {
            Some((count, bytes)) if size + add <= peer::MAX_ENTRY_BYTES => {
                *count += 1;
                *bytes += p.entry.len();
            }
            _ => {
                size = log::GROUP_HEADER;
                runs.push((1, p.entry.len()));
            }
        }
        size += add;
    }
    let mut entries = Vec::with_capacity(runs.len());
    let mut who = Vec::with_capacity(runs.len());
    let mut taken = proposals.drain(..);
    for (count, bytes) in runs {
        let mut members = Members::with_capacity(count);
        let mut run = taken.by_ref().take(count);
        let entry = if count == 1 {
            let p = run.next().expect("a run has its proposals");
            let (waiter, entry) = p.split();
            members.push(waiter);
            entry
        } else {
            let mut group = log::GroupBuilder::new(count, bytes);
            for p in run {
                group.push(&p.entry);
                members.push(p.split().0);
            }
            group.finish()
        };
        entries.push(entry);
        who.push(members);
    }
    (entries, who)
}

/// What applying one entry, or one member of a group entry, gave.
struct Applied {
    /// Position of the entry in the applied slice.
    entry: usize,
    /// Member of a group entry (0 for a plain entry).
    member: u32,
    /// The replies of its commands (`None` for no-ops and membership changes).
    replies: Option<Vec<Frame>>,
}

/// Applies committed entries, in order, in one transaction whose changes the write-back layer
/// holds with the applied index until the next checkpoint (no store write per drive round:
/// the Raft log, synced before the entries committed, is their durable record); returns what
/// each entry, and each member of a group entry, gave.
///
/// `proposed(index, term, member)` gives the member as this node proposed it, decoded, if it
/// still has it: that saves decoding the bytes it logged.
fn apply_entries<S: Store>(
    db: &mut Db,
    store: &mut WriteBack<S>,
    entries: &[Entry],
    notes: &mut pubsub::Notes,
    mut proposed: impl FnMut(LogIndex, Term, u32) -> Option<Decoded>,
) -> Result<Vec<Applied>, StoreError> {
    let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
        return Ok(Vec::new());
    };
    // Each entry applies exactly once, on the state right after its predecessor: the applied
    // index of the state (held with it, and stored with it at each checkpoint) must be the one
    // before the first entry. A snapshot installed meanwhile, or a replay of entries the state
    // already holds, would break this and apply something twice.
    let stored = store.applied();
    assert_eq!(
        stored.next(),
        first.index,
        "applying entry {} on a state that has applied up to {}",
        first.index.0,
        stored.0
    );
    assert!(
        entries.windows(2).all(|w| w[1].index == w[0].index.next()),
        "entries apply without gaps"
    );
    let mut tx = store.round();
    let mut all = Vec::with_capacity(entries.len());
    let mut bytes = 0;
    for (k, entry) in entries.iter().enumerate() {
        let EntryKind::Normal(data) = &entry.kind else {
            all.push(Applied {
                entry: k,
                member: 0,
                replies: None,
            });
            continue;
        };
        bytes += data.len() as u64;
        let members = match log::group_members(data) {
            Some(members) => members?,
            None => vec![&data[..]],
        };
        for (member, data) in members.into_iter().enumerate() {
            notes.entry = all.len();
            let member = u32::try_from(member).expect("a group's members fit its u32 count");
            let decoded = match proposed(entry.index, entry.term, member) {
                Some(d) => {
                    // The node's own tests check that what it kept is what it logged.
                    #[cfg(test)]
                    assert_eq!(
                        d.encode(),
                        data,
                        "a proposal kept decoded is what was logged"
                    );
                    d
                }
                None => Decoded::decode(data)?,
            };
            let replies = txn::apply_entry(db, &mut tx, &decoded, entry.index, notes)?;
            all.push(Applied {
                entry: k,
                member,
                replies: Some(replies),
            });
        }
    }
    drop(tx);
    store.end_round(last.index, entries.len() as u64, bytes);
    if store.checkpoint_due() {
        store.checkpoint()?;
    }
    Ok(all)
}

fn write_lost() -> Frame {
    Frame::error("TRYAGAIN the write was lost in a leader change and not applied; retry")
}

pub(super) fn unknown_outcome(why: &str) -> Frame {
    Frame::error(format!(
        "TIMEOUT the write {why}: it may or may not have been applied"
    ))
}

/// The samples of a `BATCH_FLUSH` command's reply that did not fail: each element of an array
/// (a [`crate::cmd::ts::TsWrite::Batch`]), or the command itself (an older log's
/// [`WriteCmd::BatchAdd`]).
fn samples_ok(reply: &Frame) -> usize {
    match reply {
        Frame::Array(items) => items.iter().filter(|f| !f.is_error()).count(),
        other => usize::from(!other.is_error()),
    }
}
