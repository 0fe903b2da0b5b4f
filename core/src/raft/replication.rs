//! Log replication: the leader appends entries and sends them to each follower within its
//! in-flight window, with heartbeats, retransmission of stalled appends and TimeoutNow for a
//! leadership transfer; the follower handles AppendEntries and answers with conflict hints
//! the leader backtracks by.

use std::collections::VecDeque;

use super::durability::Held;
use super::message::ConflictHint;
use super::node::{R, Raft, Role};
use super::snapshot_transfer::SnapSend;
use super::{Entry, EntryKind, LogIndex, Message, NodeId, ProposeError, RaftOutput, Term};
use crate::Instant;
use crate::store::{Store, StoreRead};

/// Leader-side replication state of one peer.
#[derive(Debug)]
pub(super) struct Progress {
    pub(super) next: LogIndex,
    pub(super) matched: LogIndex,
    /// Last index of each AppendEntries in flight, oldest first.
    pub(super) inflight: VecDeque<LogIndex>,
    /// Probing: one append at a time until the follower's log position is known.
    pub(super) probing: bool,
    /// Heard from since the last CheckQuorum round.
    pub(super) recent_active: bool,
    /// When the follower last acknowledged anything, to retransmit lost appends.
    pub(super) last_ack: Instant,
    /// Highest heartbeat sequence it echoed.
    pub(super) hb_seq_acked: u64,
    /// The snapshot being sent because its next entry was compacted away.
    pub(super) snap: Option<SnapSend>,
}

impl Raft {
    pub(super) fn append_as_leader(
        &mut self,
        store: &mut impl Store,
        kind: EntryKind,
    ) -> Result<LogIndex, ProposeError> {
        self.append_all(store, vec![kind]).map(|(index, _)| index)
    }

    /// Appends entries of `kinds` (leader only) in one store write and one round of appends
    /// to the followers; returns the first index and the term.
    pub(super) fn append_all(
        &mut self,
        store: &mut impl Store,
        kinds: Vec<EntryKind>,
    ) -> Result<(LogIndex, Term), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        let first = self.last_index.next();
        let term = self.term;
        if kinds.is_empty() {
            return Ok((first, term));
        }
        let entries: Vec<Entry> = kinds
            .into_iter()
            .enumerate()
            .map(|(i, kind)| Entry {
                term,
                index: LogIndex(first.0 + i as u64),
                kind,
            })
            .collect();
        let last = entries.last().map_or(first, |e| e.index);
        self.write_entries(store, &entries)
            .map_err(|e| ProposeError::Store(e.to_string()))?;
        self.ack_self(last);
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for id in peers {
            self.send_append(store, id)
                .map_err(|e| ProposeError::Store(e.to_string()))?;
        }
        if self.is_bug_count_unsynced_self() {
            self.maybe_commit(store)
                .map_err(|e| ProposeError::Store(e.to_string()))?;
        }
        Ok((first, term))
    }

    fn ack_self(&mut self, index: LogIndex) {
        if self.is_bug_count_unsynced_self() {
            self.self_match = self.self_match.max(index);
        } else {
            self.hold(Held::SelfAck(self.term, index));
        }
    }

    /// Makes `progress` hold exactly the other members.
    pub(super) fn sync_progress_set(&mut self) {
        let members = self.membership().members();
        self.progress
            .retain(|id, _| members.contains(id) && *id != self.cfg.id);
        for id in members {
            if id != self.cfg.id && !self.progress.contains_key(&id) {
                self.progress.insert(
                    id,
                    Progress {
                        next: self.last_index.next(),
                        matched: LogIndex(0),
                        inflight: VecDeque::new(),
                        probing: true,
                        recent_active: true,
                        last_ack: self.now,
                        hb_seq_acked: 0,
                        snap: None,
                    },
                );
            }
        }
    }

    // ----- sending ----------------------------------------------------------------------------

    pub(super) fn send(&mut self, to: NodeId, msg: Message) {
        if self.is_member(to) {
            self.contacts.entry(to).or_default().last_sent = Some(self.now);
        }
        self.out.push_back(RaftOutput::Send { to, msg });
    }

    pub(super) fn send_held(&mut self, to: NodeId, msg: Message) {
        self.hold(Held::Output(RaftOutput::Send { to, msg }));
    }

    /// Sends the next batch of entries to `to` if the in-flight window allows.
    pub(super) fn send_append(&mut self, store: &mut impl Store, to: NodeId) -> R {
        let Some(p) = self.progress.get(&to) else {
            return Ok(());
        };
        let window = if p.probing {
            1
        } else {
            self.cfg.max_inflight_appends as usize
        };
        if p.snap.is_some() || p.inflight.len() >= window || p.next > self.last_index {
            return Ok(());
        }
        let next = p.next;
        if next == LogIndex(1) && p.matched == LogIndex(0) && self.applied.0 > 0 {
            // A member with an empty log joined after the cluster started: it cannot know the
            // membership at the start of the log, so replaying the log's membership changes
            // would be guesswork. A snapshot carries the exact membership at its index.
            if !self.membership().voters.contains(&to) {
                return self.start_snapshot(store, to);
            }
        }
        let prev_index = next.prev();
        let Some(prev_term) = self.term_at(store, prev_index)? else {
            // The entries it needs were compacted away: send the state instead.
            return self.start_snapshot(store, to);
        };
        let mut entries = Vec::new();
        let mut bytes = 0u64;
        let mut i = next;
        while i <= self.last_index && entries.len() < self.cfg.max_entries_per_append as usize {
            let e = self.entry(store, i)?;
            bytes += e.size_hint();
            if !entries.is_empty() && bytes > self.cfg.max_bytes_per_append {
                break;
            }
            entries.push(e);
            i = i.next();
        }
        let last_sent = i.prev();
        let p = self.progress.get_mut(&to).expect("checked above");
        p.inflight.push_back(last_sent);
        if !p.probing {
            p.next = last_sent.next();
        }
        let msg = Message::AppendEntries {
            term: self.term,
            prev_index,
            prev_term,
            entries,
            commit: self.commit,
        };
        self.send(to, msg);
        Ok(())
    }

    pub(super) fn broadcast_heartbeat(&mut self) {
        self.hb_seq += 1;
        let targets: Vec<(NodeId, LogIndex)> = self
            .progress
            .iter()
            .map(|(id, p)| (*id, p.matched))
            .collect();
        for (id, matched) in targets {
            let msg = Message::Heartbeat {
                term: self.term,
                commit: self.commit.min(matched),
                seq: self.hb_seq,
            };
            self.send(id, msg);
        }
        self.release_reads();
    }

    /// An append or its answer was lost: after two heartbeat intervals without an
    /// acknowledgement, fall back to probing from the known match.
    pub(super) fn retransmit_stalled(&mut self, store: &mut impl Store) -> R {
        let stall = self.heartbeat() * 2;
        let mut stalled = Vec::new();
        let mut resend = Vec::new();
        for (id, p) in &mut self.progress {
            let behind = p.matched < self.last_index;
            if p.snap.is_some() {
                if self.now.saturating_since(p.last_ack) >= stall {
                    p.last_ack = self.now;
                    resend.push(*id);
                }
                continue;
            }
            if behind && self.now.saturating_since(p.last_ack) >= stall {
                p.probing = true;
                p.inflight.clear();
                p.next = p.matched.next();
                p.last_ack = self.now;
                stalled.push(*id);
            }
        }
        for id in stalled {
            self.send_append(store, id)?;
        }
        for id in resend {
            self.send_snapshot_chunk(id)?;
        }
        Ok(())
    }

    pub(super) fn maybe_send_timeout_now(&mut self, to: NodeId) {
        let Some((target, _)) = self.transfer else {
            return;
        };
        if target != to {
            return;
        }
        if self
            .progress
            .get(&to)
            .is_some_and(|p| p.matched == self.last_index)
        {
            self.send(to, Message::TimeoutNow { term: self.term });
        }
    }

    // ----- receiving --------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_append(
        &mut self,
        store: &mut impl Store,
        from: NodeId,
        prev_index: LogIndex,
        prev_term: Term,
        entries: Vec<Entry>,
        leader_commit: LogIndex,
    ) -> R {
        if prev_index < self.commit {
            // Everything up to our commit matches the leader already; skip that part.
            let skip = (self.commit.0 - prev_index.0) as usize;
            if skip >= entries.len() {
                let reply = self.append_ok(self.commit);
                self.send_held(from, reply);
                return Ok(());
            }
            let prev = entries[skip - 1].clone();
            let rest = entries[skip..].to_vec();
            return self.on_append(store, from, prev.index, prev.term, rest, leader_commit);
        }
        let ours = self.term_at(store, prev_index)?;
        if ours != Some(prev_term) {
            let hint = self.conflict_hint(store, prev_index, ours)?;
            let reply = Message::AppendResponse {
                term: self.term,
                success: false,
                index: prev_index,
                hint: Some(hint),
            };
            self.send(from, reply);
            return Ok(());
        }
        let mut first_new = None;
        for (i, e) in entries.iter().enumerate() {
            if self.term_at(store, e.index)? != Some(e.term) {
                first_new = Some(i);
                break;
            }
        }
        let last_new = LogIndex(prev_index.0 + entries.len() as u64);
        if let Some(i) = first_new {
            self.write_entries(store, &entries[i..])?;
        }
        let commit = leader_commit.min(last_new);
        if commit > self.commit {
            self.advance_commit(store, commit)?;
        }
        let reply = self.append_ok(last_new);
        self.send_held(from, reply);
        Ok(())
    }

    fn append_ok(&self, index: LogIndex) -> Message {
        Message::AppendResponse {
            term: self.term,
            success: true,
            index,
            hint: None,
        }
    }

    fn conflict_hint(
        &self,
        store: &impl StoreRead,
        prev_index: LogIndex,
        ours: Option<Term>,
    ) -> R<ConflictHint> {
        let Some(t) = ours else {
            return Ok(ConflictHint {
                term: None,
                index: self.last_index.next().min(prev_index),
            });
        };
        // Walk back to the first entry of that term, never below the commit index (which
        // matches the leader).
        let mut i = prev_index;
        while i > self.commit.next() && i.prev() > self.base.index {
            if self.term_at(store, i.prev())? != Some(t) {
                break;
            }
            i = i.prev();
        }
        Ok(ConflictHint {
            term: Some(t),
            index: i,
        })
    }

    pub(super) fn on_append_response(
        &mut self,
        store: &mut impl Store,
        from: NodeId,
        success: bool,
        index: LogIndex,
        hint: Option<ConflictHint>,
    ) -> R {
        if self.role != Role::Leader {
            return Ok(());
        }
        let last_index = self.last_index;
        let Some(p) = self.progress.get_mut(&from) else {
            return Ok(());
        };
        p.recent_active = true;
        if success {
            if index > p.matched {
                p.matched = index.min(last_index);
                p.last_ack = self.now;
            }
            p.next = p.next.max(p.matched.next());
            p.inflight.retain(|i| *i > index);
            p.probing = false;
            self.maybe_commit(store)?;
            self.maybe_send_timeout_now(from);
        } else {
            if index < p.matched || hint.is_none() {
                return Ok(()); // stale rejection
            }
            let hint = hint.expect("checked above");
            p.last_ack = self.now;
            let mut next = hint.index;
            if let Some(t) = hint.term
                && let Some(i) = self.last_index_of_term(store, t, index)?
            {
                next = i.next();
            }
            let p = self.progress.get_mut(&from).expect("checked above");
            p.next = next.max(p.matched.next()).min(index.max(p.matched.next()));
            p.probing = true;
            p.inflight.clear();
        }
        self.send_append(store, from)
    }

    /// The last index at or below `upto` whose term is `t`, if the leader has one.
    fn last_index_of_term(
        &self,
        store: &impl StoreRead,
        t: Term,
        upto: LogIndex,
    ) -> R<Option<LogIndex>> {
        let mut i = upto.min(self.last_index);
        while i > self.base.index {
            match self.term_at(store, i)? {
                Some(x) if x == t => return Ok(Some(i)),
                Some(x) if x < t => return Ok(None),
                _ => i = i.prev(),
            }
        }
        Ok(None)
    }
}
