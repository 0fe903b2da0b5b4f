//! Active expiry: the leader deletes keys whose deadline has passed, through the log.
//!
//! Every [`EXPIRE_TICK_MS`] the leader reads the deadline index for keys due at its clock and
//! proposes one [`WriteCmd::ExpireDue`] entry for up to [`EXPIRE_BATCH_MAX`] of them, so every
//! replica deletes the same keys at the same log position (and emits `expired`). An entry that
//! finds a key's deadline changed or not yet passed at its own time leaves the key alone, so a
//! duplicate or late entry is harmless. Between a deadline and that entry, reads hide the key
//! (`db::expiry::Unexpired`) and writes delete it first (`Db::expire_stale`).
//!
//! The node has no clock of its own: its time is the newest wall-clock stamp it has seen, on a
//! client request or on a log entry it applied, plus the monotonic time since. That is also
//! the time reads compare deadlines against, so a follower never hides a key later than the
//! stamps in its log say (a leader whose clients all connect to followers still expires keys:
//! their entries carry the time). A node that has seen no stamp yet neither expires nor hides
//! anything.

use std::time::Duration;

use super::log::{Decoded, LogEntry};
use super::write::{Proposal, ReplyShape};
use super::{ConnId, Node};
use crate::cmd::WriteCmd;
use crate::store::Store;
use crate::{Instant, UnixMillis};

/// How often the leader looks for keys past their deadline.
pub const EXPIRE_TICK_MS: u64 = 100;

/// Most keys one active-expiry log entry deletes.
pub const EXPIRE_BATCH_MAX: usize = 1000;

/// The connection the leader's expiry entries are proposed for: no client has it, so their
/// replies go nowhere.
const EXPIRER: ConnId = ConnId(u64::MAX);

impl<S: Store> Node<S> {
    /// Notes a wall-clock stamp (a client request's, or an applied log entry's).
    pub(super) fn note_unix(&mut self, unix: UnixMillis) {
        let now = self.unix_now();
        if unix.0 >= now.0 {
            self.clock = Some((unix, self.now));
        }
    }

    /// The node's wall-clock time: the latest request's stamp plus the time since.
    pub(super) fn unix_now(&self) -> UnixMillis {
        match self.clock {
            None => UnixMillis(0),
            Some((unix, at)) => {
                let since = self.now.saturating_since(at).as_millis();
                UnixMillis(
                    unix.0
                        .saturating_add(u64::try_from(since).unwrap_or(u64::MAX)),
                )
            }
        }
    }

    /// When the leader next looks for expired keys (`None`: it has nothing to look for).
    pub(super) fn expire_timeout(&self) -> Option<Instant> {
        (self.is_leader() && self.db.has_deadlines() && self.clock.is_some())
            .then_some(self.next_expire)
    }

    /// Proposes the deletion of the keys due, if it is time to look.
    pub(super) fn expire_tick(&mut self) {
        if self.expire_timeout().is_none_or(|t| t > self.now) {
            return;
        }
        self.next_expire = self
            .now
            .saturating_add(Duration::from_millis(EXPIRE_TICK_MS));
        let unix = self.unix_now();
        let due = match crate::db::expiry::due(&self.store, unix.0, EXPIRE_BATCH_MAX) {
            Ok(due) => due,
            Err(e) => return self.fail(e),
        };
        if due.is_empty() {
            return;
        }
        let decoded = LogEntry::new(unix, vec![WriteCmd::ExpireDue(due)]);
        self.proposals.push(Proposal {
            conn: EXPIRER,
            entry: decoded.encode(),
            shape: ReplyShape::Single,
            decoded: Some(Decoded::Writes(decoded)),
        });
    }
}
