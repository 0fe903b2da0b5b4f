//! Linearizable reads (ReadIndex): the leader registers a read at its commit index (at least
//! its term's first entry) and releases it once a majority acknowledged a heartbeat round
//! sent after it; every pending read fails when leadership is lost.

use super::node::{Raft, Role};
use super::{LogIndex, RaftOutput};
use crate::Instant;

#[derive(Clone, Copy, Debug)]
pub(super) struct PendingRead {
    pub(super) ctx: u64,
    pub(super) index: LogIndex,
    pub(super) seq: u64,
}

impl Raft {
    /// Registers a linearizable read; answered by `ReadReady` once a heartbeat round confirms
    /// leadership, or `ReadFailed`.
    pub fn read_index(&mut self, now: Instant, ctx: u64) {
        self.now = now;
        if self.role != Role::Leader {
            self.out.push_back(RaftOutput::ReadFailed { ctx });
            return;
        }
        // Reading at least at the term's first entry makes sure everything committed by earlier
        // leaders is applied before the read is served.
        let index = self.commit.max(self.term_start);
        let seq = self.hb_seq + 1;
        self.reads.push_back(PendingRead { ctx, index, seq });
        self.read_broadcast_owed = true;
        self.release_reads();
    }

    pub(super) fn release_reads(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let membership = self.membership().clone();
        while let Some(r) = self.reads.front().copied() {
            let acks = membership
                .voters
                .iter()
                .filter(|id| {
                    **id == self.cfg.id
                        || self
                            .progress
                            .get(id)
                            .is_some_and(|p| p.hb_seq_acked >= r.seq)
                })
                .count();
            if acks < membership.quorum() || r.seq > self.hb_seq {
                break;
            }
            self.reads.pop_front();
            self.out.push_back(RaftOutput::ReadReady {
                ctx: r.ctx,
                index: r.index,
            });
        }
    }

    pub(super) fn fail_reads(&mut self) {
        for r in self.reads.drain(..) {
            self.out.push_back(RaftOutput::ReadFailed { ctx: r.ctx });
        }
    }
}
