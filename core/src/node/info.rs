//! INFO and CLUSTER_INFO text.

use std::fmt::Write as _;

use bytes::Bytes;

use super::{Node, REDIS_COMPAT_VERSION, TIMESERIES_VERSION, VERSION};
use crate::resp::Frame;
use crate::store::Store;

/// Sections INFO prints by default, in order (Redis's order, for the sections tickdb has).
const DEFAULT_SECTIONS: [&str; 8] = [
    "server",
    "clients",
    "stats",
    "persistence",
    "replication",
    "modules",
    "cluster",
    "keyspace",
];

/// The name RedisTimeSeries registers, which clients look for in `MODULE LIST` and INFO.
pub(super) const TIMESERIES_MODULE: &str = "timeseries";

/// What `MODULE LIST` and HELLO report as the module's path: the engine is built in.
const TIMESERIES_PATH: &str = "builtin";

/// The `MODULE LIST` reply: one entry per module, a map (a flat array in RESP2) of name, ver,
/// path and args, with bulk-string keys as Redis sends them.
pub(super) fn module_list() -> Frame {
    let key = |k: &'static str| Frame::bulk(Bytes::from_static(k.as_bytes()));
    Frame::Array(vec![Frame::Map(vec![
        (key("name"), key(TIMESERIES_MODULE)),
        (key("ver"), Frame::Integer(TIMESERIES_VERSION)),
        (key("path"), key(TIMESERIES_PATH)),
        (key("args"), Frame::Array(Vec::new())),
    ])])
}

/// The `os` INFO field when the binary did not report one (core cannot ask the kernel).
fn os_fallback() -> String {
    let os = std::env::consts::OS;
    let mut name = os.to_string();
    if let Some(first) = name.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    format!("{name} {}", std::env::consts::ARCH)
}

impl<S: Store> Node<S> {
    /// The text of `INFO [section ...]`: `all`, `everything` and `default` as in Redis.
    pub(super) fn info(&self, sections: &[Bytes]) -> String {
        let wanted: Vec<String> = sections
            .iter()
            .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
            .collect();
        let all = wanted.is_empty()
            || wanted
                .iter()
                .any(|w| matches!(w.as_str(), "all" | "everything" | "default"));
        let mut out = String::new();
        for section in DEFAULT_SECTIONS {
            if !all && !wanted.iter().any(|w| w == section) {
                continue;
            }
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            self.info_section(section, &mut out);
        }
        out
    }

    fn info_section(&self, section: &str, out: &mut String) {
        let title = format!("{}{}", section[..1].to_ascii_uppercase(), &section[1..]);
        let _ = write!(out, "# {title}\r\n");
        let mut line = |k: &str, v: &dyn std::fmt::Display| {
            let _ = write!(out, "{k}:{v}\r\n");
        };
        let s = &self.stats;
        match section {
            "server" => {
                line("redis_version", &REDIS_COMPAT_VERSION);
                line("tickdb_version", &VERSION);
                let mode = if self.sole_voter() {
                    "standalone"
                } else {
                    "cluster"
                };
                line("redis_mode", &mode);
                let os = self
                    .config
                    .server_info
                    .iter()
                    .find(|(k, _)| k == "os")
                    .map_or_else(os_fallback, |(_, v)| v.clone());
                line("os", &os);
                line("arch_bits", &usize::BITS);
                line("node_id", &self.config.node_id);
                let uptime = self.now.saturating_since(self.started).as_secs();
                line("uptime_in_seconds", &uptime);
                line("uptime_in_days", &(uptime / 86_400));
                for (k, v) in self.config.server_info.iter().filter(|(k, _)| k != "os") {
                    line(k, v);
                }
            }
            "clients" => {
                line("connected_clients", &self.client_count());
                line("maxclients", &self.config.max_clients);
                line("blocked_clients", &self.blocked.len());
                let blocked = self.conns.values().filter(|c| c.writes > 0).count();
                line("clients_waiting_on_writes", &blocked);
                let batch: usize = self.conns.values().map(|c| c.batch.len()).sum();
                line("batch_buffered_samples", &batch);
            }
            "stats" => {
                line("total_connections_received", &s.connections_received);
                line("total_commands_processed", &s.commands);
                line("total_net_input_bytes", &s.net_input_bytes);
                line("total_net_output_bytes", &s.net_output_bytes);
                line("rejected_connections", &s.rejected_connections);
                line("total_error_replies", &s.error_replies);
                line("total_writes_applied", &s.writes_applied);
                line("total_syncs", &self.raft.sync_count());
                line("total_forwards_sent", &s.forwards_sent);
                line("total_forwards_served", &s.forwards_served);
                line("total_cluster_messages_in", &s.peer_messages_in);
                line("total_cluster_messages_out", &s.peer_messages_out);
                line("total_cluster_bytes_in", &s.peer_bytes_in);
                line("total_cluster_bytes_out", &s.peer_bytes_out);
                line("total_peer_messages_dropped", &s.peer_messages_dropped);
                let (channels, patterns) = self.pubsub.totals();
                line("pubsub_channels", &channels);
                line("pubsub_patterns", &patterns);
                line("total_pubsub_messages_delivered", &s.pubsub_messages);
                line("expired_keys", &self.db.expired_count());
            }
            "persistence" => {
                line("loading", &0);
                line("rdb_bgsave_in_progress", &0);
                line("rdb_last_bgsave_status", &"ok");
                line("aof_enabled", &1);
                line("aof_rewrite_in_progress", &0);
                line("storage_engine", &"rocksdb");
                line(
                    "storage_status",
                    &if self.failed.is_some() {
                        "failed"
                    } else {
                        "ok"
                    },
                );
                line("log_last_index", &self.raft.last_index().0);
                line("log_applied_index", &self.applied.0);
                line("checkpoint_applied_index", &self.store.checkpointed().0);
                line("checkpoints", &self.store.checkpoints());
                line("state_held_bytes", &self.store.held_bytes());
                line("read_cache_bytes", &self.store.read_cache_bytes());
            }
            "replication" => self.replication_info(&mut line),
            "modules" => line(
                "module",
                &format!(
                    "name={TIMESERIES_MODULE},ver={TIMESERIES_VERSION},api=1,filters=0,usedby=[],using=[],options=[]"
                ),
            ),
            "cluster" => {
                line("cluster_enabled", &u8::from(!self.sole_voter()));
            }
            "keyspace" => {
                let keys = self.db.key_count();
                if keys > 0 {
                    let expires = self.db.deadline_count();
                    line("db0", &format!("keys={keys},expires={expires},avg_ttl=0"));
                }
            }
            _ => {}
        }
    }
}
