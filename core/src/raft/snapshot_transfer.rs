//! Snapshots between nodes: the leader streams its state to a follower whose next entries
//! were compacted away, chunk by chunk; the follower stages the chunks and installs them in
//! one batch (the store side of both is in `snapshot`).

use super::message::{SnapshotMeta, StateSpace};
use super::node::{R, Raft, Role};
use super::snapshot::{self, Cursor};
use super::storage;
use super::{LogIndex, Message, NodeId, RaftOutput};
use crate::store::{Space, Store, StoreError, StoreRead, WriteBatch};

/// A snapshot being streamed to one follower.
pub(super) struct SnapSend {
    /// The leader's point-in-time view the chunks are read from.
    pub(super) view: Box<dyn StoreRead + Send>,
    pub(super) meta: SnapshotMeta,
    pub(super) chunk: u32,
    /// Where the current chunk starts and where the next one starts.
    pub(super) start: Cursor,
    pub(super) end: Cursor,
}

impl std::fmt::Debug for SnapSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapSend")
            .field("meta", &self.meta)
            .field("chunk", &self.chunk)
            .finish_non_exhaustive()
    }
}

impl Raft {
    pub(super) fn start_snapshot(&mut self, store: &mut impl Store, to: NodeId) -> R {
        // The newest applied state, not an older checkpoint: the follower needs less log.
        store.write_back()?;
        let view = store.snapshot()?;
        let index = storage::applied_index(&view)?.max(self.base.index);
        let term = self
            .term_at(store, index)?
            .ok_or_else(|| StoreError::Corrupt {
                space: Space::Log,
                detail: format!("no term for snapshot index {}", index.0),
            })?;
        let meta = SnapshotMeta {
            index,
            term,
            membership: self.membership_at(index).clone(),
        };
        let Some(p) = self.progress.get_mut(&to) else {
            return Ok(());
        };
        p.snap = Some(SnapSend {
            view: Box::new(view),
            meta,
            chunk: 0,
            start: Cursor::default(),
            end: Cursor::default(),
        });
        p.inflight.clear();
        p.last_ack = self.now;
        self.send_snapshot_chunk(to)
    }

    /// (Re)sends the current chunk of the snapshot in flight to `to`.
    pub(super) fn send_snapshot_chunk(&mut self, to: NodeId) -> R {
        let term = self.term;
        let max = self.cfg.snapshot_chunk_bytes;
        let Some(snap) = self.progress.get_mut(&to).and_then(|p| p.snap.as_mut()) else {
            return Ok(());
        };
        let (data, end, done) = snapshot::read_chunk(snap.view.as_ref(), &snap.start, max)?;
        snap.end = end;
        let msg = Message::InstallSnapshot {
            term,
            meta: snap.meta.clone(),
            chunk: snap.chunk,
            data,
            done,
        };
        self.send(to, msg);
        Ok(())
    }

    pub(super) fn on_snapshot_response(
        &mut self,
        store: &mut impl Store,
        from: NodeId,
        index: LogIndex,
        next_chunk: u32,
        done: bool,
    ) -> R {
        if self.role != Role::Leader {
            return Ok(());
        }
        let now = self.now;
        let Some(p) = self.progress.get_mut(&from) else {
            return Ok(());
        };
        p.recent_active = true;
        let Some(snap) = p.snap.as_mut() else {
            return Ok(());
        };
        if snap.meta.index != index {
            return Ok(()); // an answer about an earlier transfer
        }
        p.last_ack = now;
        if done {
            p.snap = None;
            p.matched = p.matched.max(index);
            p.next = p.matched.next();
            p.probing = true;
            p.inflight.clear();
            self.maybe_commit(store)?;
            return self.send_append(store, from);
        }
        if next_chunk == snap.chunk + 1 {
            snap.start = snap.end.clone();
            snap.chunk = next_chunk;
        } else if next_chunk == snap.chunk {
            return Ok(()); // a duplicate; the stall timer resends the chunk if it was lost
        } else {
            // The follower is somewhere this leader cannot seek to: start over.
            snap.start = Cursor::default();
            snap.chunk = 0;
        }
        self.send_snapshot_chunk(from)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_install_snapshot(
        &mut self,
        store: &mut impl Store,
        from: NodeId,
        meta: SnapshotMeta,
        chunk: u32,
        data: Vec<(StateSpace, Vec<u8>, Vec<u8>)>,
        done: bool,
    ) -> R {
        let reply = |term, next_chunk, done| Message::InstallSnapshotResponse {
            term,
            snapshot_index: meta.index,
            next_chunk,
            done,
        };
        if meta.index <= self.commit {
            // Already have all of it through the log; acknowledge once that log is durable.
            self.receiving = None;
            let msg = reply(self.term, 0, true);
            self.send_held(from, msg);
            return Ok(());
        }
        // Chunk 0 always (re)starts a transfer: the leader restarts when it lost track.
        let expected = match &self.receiving {
            Some((m, n)) if *m == meta && chunk != 0 => *n,
            _ => 0,
        };
        if chunk != expected {
            let msg = reply(self.term, expected, false);
            self.send(from, msg);
            return Ok(());
        }
        let mut batch = WriteBatch::new();
        if chunk == 0 {
            snapshot::clear_staging(&mut batch);
        }
        snapshot::stage(&mut batch, &data);
        store.write(batch)?;
        if !done {
            self.receiving = Some((meta.clone(), chunk + 1));
            let msg = reply(self.term, chunk + 1, false);
            self.send(from, msg);
            return Ok(());
        }
        self.receiving = None;
        self.install_staged(store, &meta)?;
        let msg = reply(self.term, chunk + 1, true);
        self.send_held(from, msg);
        Ok(())
    }

    /// Replaces state, log base, log and applied index with the staged snapshot, atomically.
    fn install_staged(&mut self, store: &mut impl Store, meta: &SnapshotMeta) -> R {
        assert!(
            meta.index > self.commit,
            "installing a snapshot behind the commit index"
        );
        let keep_suffix = self.term_at(store, meta.index)? == Some(meta.term);
        let mut batch = WriteBatch::new();
        snapshot::promote_staging(store, &mut batch)?;
        let log_end = if keep_suffix {
            meta.index.next()
        } else {
            self.last_index.next()
        };
        batch.delete_range(
            Space::Log,
            storage::log_key(LogIndex(0)),
            storage::log_key(log_end),
        );
        batch.put(Space::Raft, storage::KEY_LOG_BASE, storage::encode(meta));
        storage::record_applied(&mut batch, meta.index);
        store.write(batch)?;
        self.wrote();
        self.base = meta.clone();
        if keep_suffix {
            self.configs = self.configs.split_off(&meta.index.next());
            self.cache_compacted(meta.index);
        } else {
            self.clear_cache();
            self.last_index = meta.index;
            self.last_term = meta.term;
            self.configs.clear();
        }
        self.commit = meta.index;
        self.applied = meta.index;
        // The snapshot supersedes every entry at or below its index, whatever was queued
        // before it: entries committed earlier in this drive round and handed out for applying
        // are already in the state it carries. Applying them again on top of it would apply
        // them twice (an INCR counted twice) and move the stored applied index backwards.
        if !self.is_bug_apply_under_snapshot() {
            self.out
                .retain(|o| !matches!(o, RaftOutput::Apply(e) if e.index <= meta.index));
        }
        self.out
            .push_back(RaftOutput::SnapshotInstalled { index: meta.index });
        Ok(())
    }
}
