//! The simulated state machine: a tiny KV store of `i64` values in `Space::Keys`, with commands
//! SET, INCR and GET encoded in Normal log entries (GET is served through ReadIndex instead).

use anyhow::{Context, bail};
use tickdb_core::raft::{self, LogIndex};
use tickdb_core::store::{Space, Store, StoreError, StoreRead, WriteBatch};

/// A client operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    Set(i64),
    Incr,
    Get,
}

/// A command as it travels in a log entry: which client request it answers and what it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command {
    pub client: u32,
    pub req: u64,
    pub key: u8,
    pub op: OpKind,
}

const ENCODED_LEN: usize = 1 + 4 + 8 + 1 + 8;

impl Command {
    pub fn encode(&self) -> Vec<u8> {
        let (tag, value) = match self.op {
            OpKind::Set(v) => (1u8, v),
            OpKind::Incr => (2, 0),
            OpKind::Get => (3, 0),
        };
        let mut out = Vec::with_capacity(ENCODED_LEN);
        out.push(tag);
        out.extend_from_slice(&self.client.to_be_bytes());
        out.extend_from_slice(&self.req.to_be_bytes());
        out.push(self.key);
        out.extend_from_slice(&value.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> anyhow::Result<Self> {
        if bytes.len() != ENCODED_LEN {
            bail!("command of {} bytes", bytes.len());
        }
        let u32_at = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_be_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        let value = i64::from_be_bytes(bytes[14..22].try_into().context("value")?);
        let op = match bytes[0] {
            1 => OpKind::Set(value),
            2 => OpKind::Incr,
            3 => OpKind::Get,
            t => bail!("unknown command tag {t}"),
        };
        Ok(Self {
            client: u32_at(1),
            req: u64_at(5),
            key: bytes[13],
            op,
        })
    }
}

/// Reads a key's value.
pub(crate) fn get(store: &impl StoreRead, key: u8) -> Result<Option<i64>, StoreError> {
    let Some(v) = store.get(Space::Keys, &[key])? else {
        return Ok(None);
    };
    let arr: [u8; 8] = v.as_slice().try_into().map_err(|_| StoreError::Corrupt {
        space: Space::Keys,
        detail: "value is not 8 bytes".into(),
    })?;
    Ok(Some(i64::from_be_bytes(arr)))
}

/// Applies one committed entry in one batch (state + applied index); returns the command's
/// result (the value after the operation) for a Normal entry.
pub(crate) fn apply(
    store: &mut impl Store,
    index: LogIndex,
    cmd: Option<&Command>,
) -> Result<Option<i64>, StoreError> {
    let mut batch = WriteBatch::new();
    let mut result = None;
    if let Some(cmd) = cmd {
        let cur = get(store, cmd.key)?;
        let new = match cmd.op {
            OpKind::Set(v) => Some(v),
            OpKind::Incr => Some(cur.unwrap_or(0) + 1),
            OpKind::Get => cur,
        };
        if let Some(v) = new {
            batch.put(Space::Keys, vec![cmd.key], v.to_be_bytes().to_vec());
        }
        result = new;
    }
    raft::record_applied(&mut batch, index);
    store.write(batch)?;
    Ok(result)
}

/// Every key and value, for comparing replicas.
pub(crate) fn dump(store: &impl StoreRead) -> Vec<(Vec<u8>, Vec<u8>)> {
    store
        .scan(Space::Keys, b"", None, false)
        .filter_map(Result::ok)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip() {
        for op in [OpKind::Set(-5), OpKind::Incr, OpKind::Get] {
            let c = Command {
                client: 3,
                req: 99,
                key: 2,
                op,
            };
            assert_eq!(Command::decode(&c.encode()).unwrap(), c);
        }
        assert!(Command::decode(b"short").is_err());
    }
}
