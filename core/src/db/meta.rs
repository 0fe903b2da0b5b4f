//! Cluster-wide state beside the keyspace, in [`Space::Meta`]: where each member can be reached
//! (NODE_JOIN / NODE_LEAVE record it) and the settings changed with `CONFIG SET`
//! (CONFIG_UPDATE). Both change only through the log, so every replica holds the same values,
//! and both travel in snapshots. `FLUSHALL` does not touch them.
//!
//! Records: `member/<id: u64 big-endian>` -> postcard [`MemberRecord`];
//! `config/<name>` -> the value as UTF-8 text.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Tx;
use crate::cmd::series::{CHUNK_SIZE_DEFAULT, CHUNK_SIZE_MAX, CHUNK_SIZE_MIN, DupPolicy};
use crate::cmd::{MetaWrite, notify};
use crate::resp::Frame;
use crate::store::{Space, StoreError, StoreRead};

const MEMBER_PREFIX: &[u8] = b"member/";
const CONFIG_PREFIX: &[u8] = b"config/";

/// The first key after every key that starts with `prefix` (whose last byte is not 0xff).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        assert!(*last < u8::MAX, "prefix ends in 0xff");
        *last += 1;
    }
    end
}

/// Where a member is reached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// `host:port` of its RESP endpoint; its cluster endpoint is the same host.
    pub client_addr: String,
    pub cluster_port: u16,
}

/// Defaults for series created without the matching option (TS.CREATE, or TS.ADD creating the
/// series), from the cluster-wide `ts-*` settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesDefaults {
    pub retention_ms: u64,
    pub chunk_size: u64,
    pub duplicate_policy: Option<DupPolicy>,
    pub ignore_max_time_diff: u64,
    pub ignore_max_val_diff: f64,
}

impl Default for SeriesDefaults {
    fn default() -> Self {
        Self {
            retention_ms: 0,
            chunk_size: CHUNK_SIZE_DEFAULT,
            duplicate_policy: None,
            ignore_max_time_diff: 0,
            ignore_max_val_diff: 0.0,
        }
    }
}

/// The settings `CONFIG SET` changes cluster-wide, with their defaults (RedisTimeSeries' names
/// and meanings).
pub const SETTINGS: [(&str, &str); 6] = [
    ("ts-retention-policy", "0"),
    ("ts-chunk-size-bytes", "4096"),
    ("ts-duplicate-policy", "block"),
    ("ts-ignore-max-time-diff", "0"),
    ("ts-ignore-max-val-diff", "0"),
    // Redis's keyspace notifications (`crate::node` delivers them): cluster-wide here so a
    // subscriber on any node sees the same events.
    ("notify-keyspace-events", ""),
];

/// Whether `name` is a cluster-wide setting.
pub fn is_setting(name: &str) -> bool {
    SETTINGS.iter().any(|(n, _)| *n == name)
}

/// Checks a value for a cluster-wide setting; returns it in canonical form or the error reply.
pub fn validate(name: &str, value: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(value).map_err(|_| invalid(name, "not UTF-8"))?;
    let int = || {
        text.parse::<u64>()
            .map_err(|_| invalid(name, "must be a non-negative integer"))
    };
    match name {
        "ts-retention-policy" | "ts-ignore-max-time-diff" => Ok(int()?.to_string()),
        "ts-chunk-size-bytes" => {
            let n = int()?;
            if !(CHUNK_SIZE_MIN..=CHUNK_SIZE_MAX).contains(&n) || n % 8 != 0 {
                return Err(invalid(
                    name,
                    &format!("must be a multiple of 8 in [{CHUNK_SIZE_MIN}, {CHUNK_SIZE_MAX}]"),
                ));
            }
            Ok(n.to_string())
        }
        "ts-duplicate-policy" => DupPolicy::parse(value)
            .map(|p| p.name().to_string())
            .ok_or_else(|| invalid(name, "must be block, first, last, min, max or sum")),
        "notify-keyspace-events" => notify::notify_flags(value)
            .map(notify::notify_flags_text)
            .ok_or_else(|| {
                invalid(
                    name,
                    "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.",
                )
            }),
        "ts-ignore-max-val-diff" => match text.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(v.to_string()),
            _ => Err(invalid(name, "must be a non-negative number")),
        },
        _ => Err(format!(
            "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
        )),
    }
}

fn invalid(name: &str, why: &str) -> String {
    format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {why}")
}

/// The cluster-wide state, cached from [`Space::Meta`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Meta {
    pub members: BTreeMap<u64, MemberRecord>,
    /// Settings changed from their defaults.
    pub settings: BTreeMap<String, String>,
    pub defaults: SeriesDefaults,
}

impl Meta {
    pub fn open(store: &impl StoreRead) -> Result<Self, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            space: Space::Meta,
            detail,
        };
        let mut meta = Self::default();
        // Only this module's records: the space also holds WATCH's key versions (one per key).
        let member_end = prefix_end(MEMBER_PREFIX);
        let config_end = prefix_end(CONFIG_PREFIX);
        let members = store.scan(Space::Meta, MEMBER_PREFIX, Some(&member_end), false);
        let configs = store.scan(Space::Meta, CONFIG_PREFIX, Some(&config_end), false);
        for kv in members.chain(configs) {
            let (k, v) = kv?;
            if let Some(id) = k.strip_prefix(MEMBER_PREFIX) {
                let id = <[u8; 8]>::try_from(id)
                    .map_err(|_| corrupt("member key is not 8 bytes".into()))?;
                let rec: MemberRecord =
                    postcard::from_bytes(&v).map_err(|e| corrupt(e.to_string()))?;
                meta.members.insert(u64::from_be_bytes(id), rec);
            } else if let Some(name) = k.strip_prefix(CONFIG_PREFIX) {
                let name = String::from_utf8_lossy(name).into_owned();
                let value = String::from_utf8(v).map_err(|e| corrupt(e.to_string()))?;
                meta.settings.insert(name, value);
            }
        }
        meta.refresh_defaults();
        Ok(meta)
    }

    /// The value of a cluster-wide setting (its default when never set).
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.settings.get(name).map(String::as_str).or_else(|| {
            SETTINGS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, default)| *default)
        })
    }

    pub fn apply<S: StoreRead>(&mut self, tx: &mut Tx<'_, S>, w: &MetaWrite) -> Frame {
        match w {
            MetaWrite::SetMember {
                id,
                client_addr,
                cluster_port,
            } => {
                let rec = MemberRecord {
                    client_addr: client_addr.clone(),
                    cluster_port: *cluster_port,
                };
                // Plain owned data into a Vec cannot fail.
                let bytes = postcard::to_allocvec(&rec).expect("member record serializes");
                tx.put(Space::Meta, member_key(*id), bytes);
                self.members.insert(*id, rec);
            }
            MetaWrite::ForgetMember { id } => {
                tx.delete(Space::Meta, member_key(*id));
                self.members.remove(id);
            }
            MetaWrite::Config { name, value } => {
                // Validated by the proposer; checked again so a bad entry cannot poison state.
                let value = match validate(name, value.as_bytes()) {
                    Ok(v) => v,
                    Err(e) => return Frame::error(e),
                };
                let mut key = CONFIG_PREFIX.to_vec();
                key.extend_from_slice(name.as_bytes());
                tx.put(Space::Meta, key, value.clone().into_bytes());
                self.settings.insert(name.clone(), value);
                self.refresh_defaults();
            }
        }
        Frame::ok()
    }

    fn refresh_defaults(&mut self) {
        let num = |name: &str| {
            self.setting(name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        self.defaults = SeriesDefaults {
            retention_ms: num("ts-retention-policy"),
            chunk_size: num("ts-chunk-size-bytes").max(CHUNK_SIZE_MIN),
            duplicate_policy: self
                .settings
                .get("ts-duplicate-policy")
                .and_then(|v| DupPolicy::parse(v.as_bytes())),
            ignore_max_time_diff: num("ts-ignore-max-time-diff"),
            ignore_max_val_diff: self
                .setting("ts-ignore-max-val-diff")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0),
        };
    }
}

fn member_key(id: u64) -> Vec<u8> {
    let mut k = MEMBER_PREFIX.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemStore, Store};

    #[test]
    fn settings_validate_apply_and_reload() {
        assert_eq!(validate("ts-duplicate-policy", b"LAST"), Ok("last".into()));
        assert!(validate("ts-chunk-size-bytes", b"100").is_err());
        assert!(validate("ts-chunk-size-bytes", b"40").is_err());
        assert_eq!(validate("ts-chunk-size-bytes", b"128"), Ok("128".into()));
        assert!(validate("ts-retention-policy", b"-1").is_err());
        assert!(validate("ts-ignore-max-val-diff", b"nan").is_err());
        assert!(validate("maxmemory", b"1").is_err());

        let mut store = MemStore::new();
        let mut meta = Meta::open(&store).unwrap();
        assert_eq!(meta.defaults, SeriesDefaults::default());
        let mut tx = Tx::new(&store);
        for (name, value) in [
            ("ts-retention-policy", "60000"),
            ("ts-duplicate-policy", "max"),
        ] {
            let w = MetaWrite::Config {
                name: name.into(),
                value: value.into(),
            };
            assert_eq!(meta.apply(&mut tx, &w), Frame::ok());
        }
        let w = MetaWrite::SetMember {
            id: 4,
            client_addr: "10.0.0.4:6379".into(),
            cluster_port: 5555,
        };
        meta.apply(&mut tx, &w);
        store.write(tx.into_batch()).unwrap();
        assert_eq!(meta.defaults.retention_ms, 60_000);
        assert_eq!(meta.defaults.duplicate_policy, Some(DupPolicy::Max));
        let reloaded = Meta::open(&store).unwrap();
        assert_eq!(reloaded, meta);
        assert_eq!(reloaded.setting("ts-chunk-size-bytes"), Some("4096"));
        assert_eq!(reloaded.members[&4].cluster_port, 5555);
    }
}
