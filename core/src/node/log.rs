//! The log entry: what one client write (or one BATCH_FLUSH) puts in the replicated log.
//!
//! A write becomes a [`LogEntry`], encoded into a Raft entry. The leader appends it without a
//! sync; one sync covers every entry appended in a drive round (group commit), and it applies
//! and answers once a majority holds it durably. With one node a majority is one.

use serde::{Deserialize, Serialize};

use crate::UnixMillis;
use crate::cmd::WriteCmd;
use crate::store::{Space, StoreError};

/// Format version of [`LogEntry`]; an entry with another version is refused, not guessed.
pub const ENTRY_VERSION: u8 = 1;

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

    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain owned data into a Vec cannot fail.
        postcard::to_allocvec(self).expect("log entry serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            space: Space::Log,
            detail,
        };
        if bytes.first() != Some(&ENTRY_VERSION) {
            return Err(corrupt(format!(
                "log entry version {:?} is not {ENTRY_VERSION}",
                bytes.first()
            )));
        }
        postcard::from_bytes(bytes).map_err(|e| corrupt(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
