//! Configuration: defaults, then a TOML file, then command-line flags, each overriding the one
//! before.
//!
//! A node is standalone unless `cluster_nodes` lists the cluster's members; then it must list
//! this node's own id, and this node's own entry must agree with `port` and `cluster_port`
//! (when those are given; when not, they are taken from the entry). Every mistake is an error
//! at start, naming the offending setting.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use serde::Deserialize;

/// tickdb: a time-series database for market data that speaks the Redis protocol.
///
/// With no arguments it runs a single node on 127.0.0.1:6379 with its data in ./data.
/// Settings come from defaults, then the TOML file given with --config, then these flags.
/// Logs go to stderr, filtered by RUST_LOG (default "info"; e.g. RUST_LOG=tickdb=debug).
#[derive(Debug, Parser)]
#[command(name = "tickdb", version, about, long_about)]
pub(crate) struct Flags {
    /// TOML config file; its keys are the long flag names with '_' for '-' (e.g. data_dir).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// TCP port for RESP clients [default: 6379].
    #[arg(long, short = 'p')]
    pub(crate) port: Option<u16>,
    /// Address to listen on [default: 127.0.0.1]. Use 0.0.0.0 only behind a firewall, with
    /// --requirepass.
    #[arg(long = "bind", value_name = "ADDR")]
    pub(crate) bind_addr: Option<IpAddr>,
    /// Directory holding the node's data (created if missing) [default: ./data].
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// This node's numeric id, unique in its cluster and never reused for another machine
    /// (shown by INFO, CLUSTER MYID) [default: 1].
    #[arg(long, value_name = "N")]
    pub(crate) node_id: Option<u64>,
    /// Most clients connected at once; more get "-ERR max number of clients reached"
    /// [default: 10000].
    #[arg(long)]
    pub(crate) max_connections: Option<u64>,
    /// Seconds a client may stay silent, owed no reply, before it is disconnected (a client
    /// blocked in TS.READ ... BLOCK is not idle); 0 never [default: 300].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) idle_timeout: Option<u64>,
    /// Password clients must give with AUTH or HELLO AUTH (user "default").
    #[arg(long, env = "TICKDB_REQUIREPASS", hide_env_values = true)]
    pub(crate) requirepass: Option<String>,
    /// RocksDB block cache size in MiB [default: 256].
    #[arg(long, value_name = "MIB")]
    pub(crate) block_cache_mb: Option<u64>,
    /// Threads that serve clients and run the node: 1 everything on one thread (no
    /// hand-offs between threads), n > 1 that many workers, 0 (the default) one thread on a
    /// machine of at most 2 cores and one worker per core on a bigger one (docs/operations.md,
    /// "Threads") [default: 0].
    #[arg(long, value_name = "N")]
    pub(crate) threads: Option<usize>,
    /// Sync the store on a thread of its own while the node goes on taking and writing
    /// requests, instead of on the node's thread (docs/operations.md, "Syncs"). Default: on
    /// in a cluster (measured faster), off for a standalone node (measured slower for small
    /// requests). `--pipelined-sync` alone means true.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub(crate) pipelined_sync: Option<bool>,
    /// Port of the ZeroMQ ROUTER socket for DEALER clients (RESP in each message), on the same
    /// address as TCP; 0 disables it [default: 7379].
    #[arg(long)]
    pub(crate) zmq_port: Option<u16>,
    /// Largest ZeroMQ request message in bytes; larger ones are refused with an error
    /// [default: 67108864 (64 MiB)].
    #[arg(long, value_name = "BYTES")]
    pub(crate) zmq_message_max: Option<u64>,
    /// Every member of the cluster, this node included, as comma-separated ID=IP:PORT@CPORT
    /// (PORT for clients, CPORT the cluster port, 5555 if "@CPORT" is left out), e.g.
    /// "1=127.0.0.1:6379@5555,2=127.0.0.1:6380@5556,3=127.0.0.1:6381@5557". Absent: a
    /// standalone node that talks to no peer.
    #[arg(long, value_name = "MEMBERS")]
    pub(crate) cluster_nodes: Option<String>,
    /// Port of the cluster mesh (ZeroMQ, node to node), on the --bind address; only used in a
    /// cluster, and must equal this node's CPORT in --cluster-nodes [default: that CPORT].
    /// Likewise --port defaults to, and must equal, this node's PORT there.
    #[arg(long)]
    pub(crate) cluster_port: Option<u16>,
    /// Name of the cluster; messages from nodes configured with another name are dropped
    /// [default: tickdb].
    #[arg(long, value_name = "NAME")]
    pub(crate) cluster_id: Option<String>,
    /// Raft heartbeat interval in milliseconds [default: 100].
    #[arg(long, value_name = "MS")]
    pub(crate) heartbeat_ms: Option<u64>,
    /// Raft election timeout range in milliseconds, MIN-MAX: a follower that hears no leader
    /// for a random time in the range starts an election [default: 1000-2000].
    #[arg(long, value_name = "MIN-MAX")]
    pub(crate) election_timeout_ms: Option<String>,
    /// Milliseconds a write forwarded to the leader, or caught in a leader change, may wait
    /// before the client gets a TIMEOUT/TRYAGAIN error (its outcome unknown) [default: 10000].
    #[arg(long, value_name = "MS")]
    pub(crate) request_timeout_ms: Option<u64>,
    /// Shared secret that authenticates messages between the nodes (HMAC-SHA256); the same on
    /// every node. Without it the cluster port must be reachable only by the members.
    #[arg(long, env = "TICKDB_CLUSTER_SECRET", hide_env_values = true)]
    pub(crate) cluster_secret: Option<String>,
    /// Join an existing cluster: --cluster-nodes lists its current members and this node;
    /// the node does not vote until the leader adds it (CLUSTER ADDNODE on the leader).
    #[arg(long)]
    pub(crate) cluster_join: bool,
    /// Keep at most this many Raft log entries behind the durable checkpoint for a lagging
    /// follower (the log behind it goes at once when every follower in contact has it); a
    /// follower behind the compacted log catches up from a snapshot. Small values make
    /// snapshots install often (the fault suite uses them); 0 disables this bound by entry
    /// count [default: 65536].
    #[arg(long, value_name = "N")]
    pub(crate) raft_compaction_entries: Option<u64>,
}

/// Most runtime threads `--threads` may ask for.
const THREADS_MAX: usize = 1024;

/// The runtime threads to start for the `--threads` setting on a machine of `cores` cores:
/// the setting, or for 0, one thread on up to 2 cores and one per core above that. On 2 cores
/// one thread measured faster for single requests and reads (`TS.ADD -P 1` +27%, `SET -P 1`
/// +19%, `GET -P 16` +49%) and about even for pipelined writes (`SET -P 16` +4%, `TS.ADD -P
/// 16` −3%, `TS.MADD` −7%): with the clients on the same cores, a second worker mostly adds
/// hand-offs (docs/benchmarks.md, "Session 12").
pub(crate) fn runtime_threads(setting: usize, cores: usize) -> usize {
    match setting {
        0 if cores <= 2 => 1,
        0 => cores,
        n => n,
    }
}

/// The settings in a TOML config file; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub(crate) port: Option<u16>,
    pub(crate) bind_addr: Option<IpAddr>,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) node_id: Option<u64>,
    pub(crate) max_connections: Option<u64>,
    pub(crate) idle_timeout: Option<u64>,
    pub(crate) requirepass: Option<String>,
    pub(crate) block_cache_mb: Option<u64>,
    pub(crate) threads: Option<usize>,
    pub(crate) pipelined_sync: Option<bool>,
    pub(crate) zmq_port: Option<u16>,
    pub(crate) zmq_message_max: Option<u64>,
    pub(crate) cluster_nodes: Option<String>,
    pub(crate) cluster_port: Option<u16>,
    pub(crate) cluster_id: Option<String>,
    pub(crate) heartbeat_ms: Option<u64>,
    pub(crate) election_timeout_ms: Option<String>,
    pub(crate) request_timeout_ms: Option<u64>,
    pub(crate) cluster_secret: Option<String>,
    pub(crate) cluster_join: Option<bool>,
    pub(crate) raft_compaction_entries: Option<u64>,
}

/// Default ZeroMQ client port.
pub(crate) const ZMQ_PORT_DEFAULT: u16 = 7379;
/// Default client port.
pub(crate) const PORT_DEFAULT: u16 = 6379;
/// Default cluster (mesh) port when `cluster_nodes` does not say.
pub(crate) const CLUSTER_PORT_DEFAULT: u16 = 5555;
/// Default cluster name, hashed into the cluster id every message carries.
pub(crate) const CLUSTER_ID_DEFAULT: &str = "tickdb";

/// One member of the cluster, as `cluster_nodes` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemberSpec {
    pub(crate) id: u64,
    /// Where clients reach it.
    pub(crate) client: SocketAddr,
    /// Its cluster (mesh) port, on the client address's IP.
    pub(crate) cluster_port: u16,
}

impl MemberSpec {
    /// Where its mesh ROUTER listens.
    pub(crate) fn cluster_addr(&self) -> SocketAddr {
        SocketAddr::new(self.client.ip(), self.cluster_port)
    }
}

/// A mistake in the cluster settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ClusterConfigError {
    #[error(
        "cluster_nodes entry {entry:?}: expected ID=IP:PORT@CPORT (e.g. 1=127.0.0.1:6379@5555): {why}"
    )]
    Syntax { entry: String, why: String },
    #[error("cluster_nodes is empty")]
    Empty,
    #[error("cluster_nodes: node id 0 is reserved; ids start at 1")]
    ZeroId,
    #[error("cluster_nodes lists node id {0} twice")]
    DuplicateId(u64),
    #[error("cluster_nodes: nodes {0} and {1} share the address {2}")]
    DuplicateAddr(u64, u64, SocketAddr),
    #[error("cluster_nodes does not list this node's own id {0} (set with node_id)")]
    OwnIdMissing(u64),
    #[error("cluster_port is {flag} but cluster_nodes gives this node ({id}) cluster port {entry}")]
    ClusterPortMismatch { id: u64, flag: u16, entry: u16 },
    #[error("port is {flag} but cluster_nodes gives this node ({id}) client port {entry}")]
    PortMismatch { id: u64, flag: u16, entry: u16 },
    #[error("election_timeout_ms {0:?}: expected MIN-MAX in milliseconds with 0 < MIN < MAX")]
    ElectionTimeout(String),
    #[error(
        "heartbeat_ms {heartbeat} must be positive and below the election timeout's minimum {min}"
    )]
    Heartbeat { heartbeat: u64, min: u64 },
    #[error("request_timeout_ms must be positive")]
    RequestTimeout,
    #[error("cluster_join needs cluster_nodes: the current members and this node")]
    JoinWithoutMembers,
}

/// Parses `cluster_nodes`: `ID=IP:PORT@CPORT` entries separated by commas (spaces allowed
/// around them; `@CPORT` may be left out for [`CLUSTER_PORT_DEFAULT`]), checked for duplicate
/// ids and addresses. Sorted by id.
pub(crate) fn parse_cluster_nodes(text: &str) -> Result<Vec<MemberSpec>, ClusterConfigError> {
    let mut members: BTreeMap<u64, MemberSpec> = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let syntax = |why: &str| ClusterConfigError::Syntax {
            entry: entry.to_string(),
            why: why.to_string(),
        };
        let (id, rest) = entry.split_once('=').ok_or_else(|| syntax("no '='"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| syntax("the id is not a number"))?;
        let (client, cport) = match rest.rsplit_once('@') {
            Some((client, cport)) => (client, Some(cport)),
            None => (rest, None),
        };
        let client: SocketAddr = client
            .trim()
            .parse()
            .map_err(|_| syntax("IP:PORT is not an IP address and port"))?;
        let cluster_port: u16 = match cport {
            Some(cport) => cport
                .trim()
                .parse()
                .map_err(|_| syntax("CPORT is not a port number"))?,
            None => CLUSTER_PORT_DEFAULT,
        };
        if client.port() == 0 || cluster_port == 0 {
            return Err(syntax("ports must be nonzero"));
        }
        if id == 0 {
            return Err(ClusterConfigError::ZeroId);
        }
        let member = MemberSpec {
            id,
            client,
            cluster_port,
        };
        if members.insert(id, member).is_some() {
            return Err(ClusterConfigError::DuplicateId(id));
        }
    }
    if members.is_empty() {
        return Err(ClusterConfigError::Empty);
    }
    let mut seen: BTreeMap<SocketAddr, u64> = BTreeMap::new();
    for m in members.values() {
        for addr in [m.client, m.cluster_addr()] {
            if let Some(other) = seen.insert(addr, m.id) {
                return Err(ClusterConfigError::DuplicateAddr(other, m.id, addr));
            }
        }
    }
    Ok(members.into_values().collect())
}

/// Parses `MIN-MAX` milliseconds, `0 < MIN < MAX`.
pub(crate) fn parse_election_timeout(text: &str) -> Result<(u64, u64), ClusterConfigError> {
    let bad = || ClusterConfigError::ElectionTimeout(text.to_string());
    let (min, max) = text.split_once('-').ok_or_else(bad)?;
    let min: u64 = min.trim().parse().map_err(|_| bad())?;
    let max: u64 = max.trim().parse().map_err(|_| bad())?;
    if min == 0 || min >= max {
        return Err(bad());
    }
    Ok((min, max))
}

/// 64-bit FNV-1a: a fixed hash (unlike std's, which is seeded per process) so every node
/// derives the same cluster id from the same name.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// The resolved cluster settings of a clustered node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterSettings {
    /// Every member, this node included, sorted by id.
    pub(crate) members: Vec<MemberSpec>,
    /// The mesh port this node binds on `bind_addr`.
    pub(crate) cluster_port: u16,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) port: u16,
    pub(crate) bind_addr: IpAddr,
    pub(crate) data_dir: PathBuf,
    pub(crate) node_id: u64,
    pub(crate) max_connections: u64,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) requirepass: Option<String>,
    pub(crate) block_cache_mb: u64,
    /// Runtime threads as set: 0 chooses by the machine ([`runtime_threads`]), 1 a single
    /// thread for everything, n workers.
    pub(crate) threads: usize,
    /// Syncs run beside the node's writes ([`tickdb_io::RocksOptions::pipelined_sync`]).
    pub(crate) pipelined_sync: bool,
    /// `None`: no ZeroMQ endpoint.
    pub(crate) zmq_port: Option<u16>,
    pub(crate) zmq_message_max: usize,
    pub(crate) config_file: Option<PathBuf>,
    /// `None`: a standalone node, no mesh.
    pub(crate) cluster: Option<ClusterSettings>,
    /// The cluster's name and the id hashed from it.
    pub(crate) cluster_name: String,
    pub(crate) cluster_id: u64,
    pub(crate) heartbeat_ms: u64,
    pub(crate) election_timeout_ms: (u64, u64),
    pub(crate) request_timeout_ms: u64,
    pub(crate) cluster_secret: Option<String>,
    /// This node joins an existing cluster as a non-voter.
    pub(crate) cluster_join: bool,
    /// `None`: Raft's default compaction threshold.
    pub(crate) raft_compaction_entries: Option<u64>,
}

impl Config {
    pub(crate) fn load(flags: Flags) -> anyhow::Result<Self> {
        let file = match &flags.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let node_id = flags.node_id.or(file.node_id).unwrap_or(1);
        anyhow::ensure!(node_id > 0, "node_id 0 is reserved; ids start at 1");
        let explicit_port = flags.port.or(file.port);
        let explicit_cluster_port = flags.cluster_port.or(file.cluster_port);
        let cluster = match flags.cluster_nodes.or(file.cluster_nodes) {
            None => None,
            Some(text) => Some(resolve_cluster(
                node_id,
                &text,
                explicit_port,
                explicit_cluster_port,
            )?),
        };
        let own = cluster
            .as_ref()
            .and_then(|c| c.members.iter().find(|m| m.id == node_id));
        let port = explicit_port
            .or(own.map(|m| m.client.port()))
            .unwrap_or(PORT_DEFAULT);
        let defaults = tickdb_core::node::ClusterConfig::single();
        let heartbeat_ms = flags
            .heartbeat_ms
            .or(file.heartbeat_ms)
            .unwrap_or(defaults.heartbeat_ms);
        let election_timeout_ms = match flags.election_timeout_ms.or(file.election_timeout_ms) {
            Some(text) => parse_election_timeout(&text)?,
            None => defaults.election_timeout_ms,
        };
        if heartbeat_ms == 0 || heartbeat_ms >= election_timeout_ms.0 {
            return Err(ClusterConfigError::Heartbeat {
                heartbeat: heartbeat_ms,
                min: election_timeout_ms.0,
            }
            .into());
        }
        let request_timeout_ms = flags
            .request_timeout_ms
            .or(file.request_timeout_ms)
            .unwrap_or(defaults.request_timeout_ms);
        if request_timeout_ms == 0 {
            return Err(ClusterConfigError::RequestTimeout.into());
        }
        let cluster_name = flags
            .cluster_id
            .or(file.cluster_id)
            .unwrap_or_else(|| CLUSTER_ID_DEFAULT.to_string());
        let idle = flags.idle_timeout.or(file.idle_timeout).unwrap_or(300);
        let config = Self {
            port,
            bind_addr: flags
                .bind_addr
                .or(file.bind_addr)
                .unwrap_or(IpAddr::from([127, 0, 0, 1])),
            data_dir: flags
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./data")),
            node_id,
            max_connections: flags
                .max_connections
                .or(file.max_connections)
                .unwrap_or(10_000),
            idle_timeout: (idle > 0).then(|| Duration::from_secs(idle)),
            requirepass: flags
                .requirepass
                .or(file.requirepass)
                .filter(|p| !p.is_empty()),
            block_cache_mb: flags.block_cache_mb.or(file.block_cache_mb).unwrap_or(256),
            threads: flags.threads.or(file.threads).unwrap_or(0),
            pipelined_sync: flags
                .pipelined_sync
                .or(file.pipelined_sync)
                .unwrap_or(cluster.is_some()),
            zmq_port: Some(flags.zmq_port.or(file.zmq_port).unwrap_or(ZMQ_PORT_DEFAULT))
                .filter(|&p| p != 0),
            zmq_message_max: usize::try_from(
                flags
                    .zmq_message_max
                    .or(file.zmq_message_max)
                    .unwrap_or(tickdb_io::zmq::MESSAGE_MAX_DEFAULT as u64),
            )
            .context("zmq_message_max does not fit this machine's address space")?,
            config_file: flags.config,
            cluster,
            cluster_id: fnv1a64(cluster_name.as_bytes()),
            cluster_name,
            heartbeat_ms,
            election_timeout_ms,
            request_timeout_ms,
            cluster_secret: flags
                .cluster_secret
                .or(file.cluster_secret)
                .filter(|s| !s.is_empty()),
            cluster_join: flags.cluster_join || file.cluster_join.unwrap_or(false),
            raft_compaction_entries: flags
                .raft_compaction_entries
                .or(file.raft_compaction_entries),
        };
        if config.cluster_join && config.cluster.is_none() {
            return Err(ClusterConfigError::JoinWithoutMembers.into());
        }
        anyhow::ensure!(
            config.max_connections > 0,
            "max_connections must be at least 1"
        );
        anyhow::ensure!(
            config.threads <= THREADS_MAX,
            "threads must be at most {THREADS_MAX} (0 = chosen by the machine's cores)"
        );
        Ok(config)
    }

    /// The settings `CONFIG GET` reports, Redis names first where Redis has one.
    pub(crate) fn settings(&self) -> Vec<(String, String)> {
        let dir = self.data_dir.display().to_string();
        vec![
            ("port".into(), self.port.to_string()),
            ("bind".into(), self.bind_addr.to_string()),
            ("dir".into(), dir),
            ("maxclients".into(), self.max_connections.to_string()),
            (
                "timeout".into(),
                self.idle_timeout.map_or(0, |d| d.as_secs()).to_string(),
            ),
            (
                "requirepass".into(),
                if self.requirepass.is_some() {
                    "(set)"
                } else {
                    ""
                }
                .into(),
            ),
            // Every write is durable before it is acknowledged: tickdb behaves like Redis with
            // appendonly yes and appendfsync always, and never writes RDB snapshots.
            ("save".into(), String::new()),
            ("appendonly".into(), "yes".into()),
            ("appendfsync".into(), "always".into()),
            ("databases".into(), "1".into()),
            ("node-id".into(), self.node_id.to_string()),
            ("block-cache-mb".into(), self.block_cache_mb.to_string()),
            ("threads".into(), self.threads.to_string()),
            (
                "pipelined-sync".into(),
                if self.pipelined_sync { "yes" } else { "no" }.into(),
            ),
            ("zmq-port".into(), self.zmq_port.unwrap_or(0).to_string()),
            ("zmq-message-max".into(), self.zmq_message_max.to_string()),
            (
                "cluster-enabled".into(),
                if self.cluster.is_some() { "yes" } else { "no" }.into(),
            ),
            (
                "cluster-port".into(),
                self.cluster
                    .as_ref()
                    .map_or(0, |c| c.cluster_port)
                    .to_string(),
            ),
            ("cluster-nodes".into(), self.cluster_nodes_text()),
            ("cluster-id".into(), self.cluster_name.clone()),
            ("heartbeat-ms".into(), self.heartbeat_ms.to_string()),
            (
                "election-timeout-ms".into(),
                format!(
                    "{}-{}",
                    self.election_timeout_ms.0, self.election_timeout_ms.1
                ),
            ),
            (
                "request-timeout-ms".into(),
                self.request_timeout_ms.to_string(),
            ),
            (
                "raft-compaction-entries".into(),
                self.raft_compaction_entries
                    .map_or_else(|| "default".into(), |n| n.to_string()),
            ),
            (
                "cluster-join".into(),
                if self.cluster_join { "yes" } else { "no" }.into(),
            ),
            (
                "cluster-secret".into(),
                if self.cluster_secret.is_some() {
                    "(set)"
                } else {
                    ""
                }
                .into(),
            ),
        ]
    }

    /// `cluster_nodes` in its canonical form (sorted by id), empty when standalone.
    pub(crate) fn cluster_nodes_text(&self) -> String {
        let Some(cluster) = &self.cluster else {
            return String::new();
        };
        cluster
            .members
            .iter()
            .map(|m| format!("{}={}@{}", m.id, m.client, m.cluster_port))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Parses `cluster_nodes` and checks this node's own entry against the ports it was given.
fn resolve_cluster(
    node_id: u64,
    text: &str,
    port: Option<u16>,
    cluster_port: Option<u16>,
) -> Result<ClusterSettings, ClusterConfigError> {
    let members = parse_cluster_nodes(text)?;
    let own = members
        .iter()
        .find(|m| m.id == node_id)
        .ok_or(ClusterConfigError::OwnIdMissing(node_id))?;
    if let Some(flag) = cluster_port
        && flag != own.cluster_port
    {
        return Err(ClusterConfigError::ClusterPortMismatch {
            id: node_id,
            flag,
            entry: own.cluster_port,
        });
    }
    if let Some(flag) = port
        && flag != own.client.port()
    {
        return Err(ClusterConfigError::PortMismatch {
            id: node_id,
            flag,
            entry: own.client.port(),
        });
    }
    let cluster_port = own.cluster_port;
    Ok(ClusterSettings {
        members,
        cluster_port,
    })
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_override_defaults() {
        let dir = std::env::temp_dir().join(format!("tickdb-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tickdb.toml");
        std::fs::write(
            &path,
            "port = 7000\ndata_dir = \"/tmp/x\"\nidle_timeout = 0\n",
        )
        .unwrap();
        let flags = Flags::parse_from([
            "tickdb",
            "--config",
            path.to_str().unwrap(),
            "--port",
            "7001",
        ]);
        let c = Config::load(flags).unwrap();
        assert_eq!(c.port, 7001);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.idle_timeout, None);
        assert_eq!(c.node_id, 1);
        assert!(c.cluster.is_none());
        assert_eq!(c.max_connections, 10_000);
        assert_eq!(c.zmq_port, Some(ZMQ_PORT_DEFAULT));
        std::fs::write(&path, "zmq_port = 0\nzmq_message_max = 1024\n").unwrap();
        let flags = Flags::parse_from(["tickdb", "--config", path.to_str().unwrap()]);
        let c = Config::load(flags).unwrap();
        assert_eq!(c.zmq_port, None);
        assert_eq!(c.zmq_message_max, 1024);
        let flags = Flags::parse_from([
            "tickdb",
            "--config",
            path.to_str().unwrap(),
            "--zmq-port",
            "7400",
        ]);
        assert_eq!(Config::load(flags).unwrap().zmq_port, Some(7400));
        std::fs::write(&path, "prot = 1\n").unwrap();
        let flags = Flags::parse_from(["tickdb", "--config", path.to_str().unwrap()]);
        let err = format!("{:#}", Config::load(flags).unwrap_err());
        assert!(err.contains("unknown field"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn load(args: &[&str]) -> anyhow::Result<Config> {
        Config::load(Flags::try_parse_from(
            std::iter::once("tickdb").chain(args.iter().copied()),
        )?)
    }

    fn cluster_error(args: &[&str]) -> ClusterConfigError {
        let err = load(args).unwrap_err();
        err.downcast_ref::<ClusterConfigError>()
            .unwrap_or_else(|| panic!("not a cluster error: {err:#}"))
            .clone()
    }

    const THREE: &str = "1=127.0.0.1:6379@5555,2=127.0.0.1:6380@5556,3=127.0.0.1:6381@5557";

    #[test]
    fn cluster_nodes_parse_in_id_order_with_a_default_cport() {
        let m = parse_cluster_nodes(" 3=10.0.0.3:6379@5000 , 1=10.0.0.1:6379,2=[::1]:7000@7001")
            .unwrap();
        assert_eq!(m.iter().map(|m| m.id).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(m[0].client, "10.0.0.1:6379".parse().unwrap());
        assert_eq!(m[0].cluster_port, CLUSTER_PORT_DEFAULT);
        assert_eq!(m[1].cluster_addr(), "[::1]:7001".parse().unwrap());
        assert_eq!(m[2].cluster_port, 5000);
    }

    #[test]
    fn cluster_nodes_syntax_errors_name_the_entry() {
        for bad in [
            "1:127.0.0.1:6379@5555",
            "x=127.0.0.1:6379@5555",
            "1=localhost:6379@5555",
            "1=127.0.0.1@5555",
            "1=127.0.0.1:6379@port",
            "1=127.0.0.1:6379@70000",
            "1=127.0.0.1:0@5555",
        ] {
            let err = parse_cluster_nodes(bad).unwrap_err();
            assert!(
                matches!(&err, ClusterConfigError::Syntax { entry, .. } if entry == bad),
                "{bad}: {err}"
            );
        }
        assert_eq!(parse_cluster_nodes(" , "), Err(ClusterConfigError::Empty));
        assert_eq!(
            parse_cluster_nodes("0=127.0.0.1:6379@5555"),
            Err(ClusterConfigError::ZeroId)
        );
        assert_eq!(
            parse_cluster_nodes("1=127.0.0.1:6379@5555,1=127.0.0.1:6380@5556"),
            Err(ClusterConfigError::DuplicateId(1))
        );
        assert_eq!(
            parse_cluster_nodes("1=127.0.0.1:6379@5555,2=127.0.0.1:6380@5555"),
            Err(ClusterConfigError::DuplicateAddr(
                1,
                2,
                "127.0.0.1:5555".parse().unwrap()
            ))
        );
        assert_eq!(
            parse_cluster_nodes("1=127.0.0.1:6379@5555,2=127.0.0.1:5555@5556"),
            Err(ClusterConfigError::DuplicateAddr(
                1,
                2,
                "127.0.0.1:5555".parse().unwrap()
            ))
        );
    }

    #[test]
    fn a_clustered_node_takes_its_ports_from_its_own_entry() {
        let c = load(&["--node-id", "2", "--cluster-nodes", THREE]).unwrap();
        assert_eq!(c.node_id, 2);
        assert_eq!(c.port, 6380);
        let cluster = c.cluster.as_ref().unwrap();
        assert_eq!(cluster.cluster_port, 5556);
        assert_eq!(cluster.members.len(), 3);
        assert_eq!(c.cluster_nodes_text(), THREE);
        let settings: BTreeMap<_, _> = c.settings().into_iter().collect();
        assert_eq!(settings["node-id"], "2");
        assert_eq!(settings["cluster-enabled"], "yes");
        assert_eq!(settings["cluster-port"], "5556");
        assert_eq!(settings["cluster-nodes"], THREE);
        assert_eq!(settings["cluster-id"], CLUSTER_ID_DEFAULT);
        // Explicit ports that agree with the entry are fine.
        let c = load(&[
            "--node-id",
            "3",
            "--port",
            "6381",
            "--cluster-port",
            "5557",
            "--cluster-nodes",
            THREE,
        ])
        .unwrap();
        assert_eq!((c.port, c.cluster.unwrap().cluster_port), (6381, 5557));
    }

    #[test]
    fn cluster_mistakes_are_refused_at_start() {
        assert_eq!(
            cluster_error(&["--node-id", "4", "--cluster-nodes", THREE]),
            ClusterConfigError::OwnIdMissing(4)
        );
        assert_eq!(
            cluster_error(&["--cluster-nodes", THREE, "--cluster-port", "5556"]),
            ClusterConfigError::ClusterPortMismatch {
                id: 1,
                flag: 5556,
                entry: 5555
            }
        );
        assert_eq!(
            cluster_error(&["--cluster-nodes", THREE, "--port", "6380"]),
            ClusterConfigError::PortMismatch {
                id: 1,
                flag: 6380,
                entry: 6379
            }
        );
        for bad in ["300", "600-300", "0-300", "300-300", "a-b"] {
            assert_eq!(
                cluster_error(&["--election-timeout-ms", bad]),
                ClusterConfigError::ElectionTimeout(bad.into())
            );
        }
        assert_eq!(
            cluster_error(&["--heartbeat-ms", "300", "--election-timeout-ms", "300-600"]),
            ClusterConfigError::Heartbeat {
                heartbeat: 300,
                min: 300
            }
        );
        assert_eq!(
            cluster_error(&["--heartbeat-ms", "0"]),
            ClusterConfigError::Heartbeat {
                heartbeat: 0,
                min: 1000
            }
        );
        assert_eq!(
            cluster_error(&["--request-timeout-ms", "0"]),
            ClusterConfigError::RequestTimeout
        );
        assert_eq!(
            cluster_error(&["--cluster-join"]),
            ClusterConfigError::JoinWithoutMembers
        );
        let c = load(&["--node-id", "3", "--cluster-nodes", THREE, "--cluster-join"]).unwrap();
        assert!(c.cluster_join);
        let err = format!("{:#}", load(&["--node-id", "0"]).unwrap_err());
        assert!(err.contains("node_id 0"), "{err}");
        assert!(load(&["--node-id", "one"]).is_err(), "node ids are numbers");
    }

    #[test]
    fn timing_and_cluster_name_come_from_flags_or_file() {
        let c = load(&[]).unwrap();
        let single = tickdb_core::node::ClusterConfig::single();
        assert_eq!(c.heartbeat_ms, single.heartbeat_ms);
        assert_eq!(c.election_timeout_ms, single.election_timeout_ms);
        assert_eq!(c.request_timeout_ms, single.request_timeout_ms);
        assert_eq!(c.cluster_id, fnv1a64(b"tickdb"));
        assert_eq!(
            c.settings()
                .iter()
                .find(|(k, _)| k == "cluster-enabled")
                .unwrap()
                .1,
            "no"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tickdb.toml");
        std::fs::write(
            &path,
            format!(
                "node_id = 3\ncluster_nodes = \"{THREE}\"\ncluster_id = \"prod\"\n\
                 heartbeat_ms = 50\nelection_timeout_ms = \"300-600\"\nrequest_timeout_ms = 2000\n"
            ),
        )
        .unwrap();
        let c = load(&["--config", path.to_str().unwrap()]).unwrap();
        assert_eq!(c.node_id, 3);
        assert_eq!(c.port, 6381);
        assert_eq!(c.cluster_name, "prod");
        assert_eq!(c.cluster_id, fnv1a64(b"prod"));
        assert_eq!(
            (c.heartbeat_ms, c.election_timeout_ms, c.request_timeout_ms),
            (50, (300, 600), 2000)
        );
        let settings: BTreeMap<_, _> = c.settings().into_iter().collect();
        assert_eq!(settings["election-timeout-ms"], "300-600");
        assert_eq!(settings["heartbeat-ms"], "50");
        assert_eq!(settings["cluster-secret"], "");
        assert_eq!(settings["raft-compaction-entries"], "default");
        let c = load(&["--raft-compaction-entries", "64"]).unwrap();
        assert_eq!(c.raft_compaction_entries, Some(64));
        let settings: BTreeMap<_, _> = c.settings().into_iter().collect();
        assert_eq!(settings["raft-compaction-entries"], "64");
        let c = load(&["--cluster-secret", "s3cret"]).unwrap();
        assert_eq!(c.cluster_secret.as_deref(), Some("s3cret"));
        let settings: BTreeMap<_, _> = c.settings().into_iter().collect();
        assert_eq!(
            settings["cluster-secret"], "(set)",
            "never the secret itself"
        );
    }

    #[test]
    fn threads_default_to_one_on_two_cores_and_one_per_core_above() {
        assert_eq!(runtime_threads(0, 1), 1);
        assert_eq!(runtime_threads(0, 2), 1);
        assert_eq!(runtime_threads(0, 3), 3);
        assert_eq!(runtime_threads(0, 16), 16);
        assert_eq!(runtime_threads(1, 16), 1);
        assert_eq!(runtime_threads(2, 2), 2);
        assert_eq!(runtime_threads(8, 2), 8);
    }

    #[test]
    fn threads_come_from_flags_or_file_up_to_the_limit() {
        let load = |args: &[&str]| {
            let mut argv = vec!["tickdb"];
            argv.extend_from_slice(args);
            Config::load(Flags::parse_from(argv))
        };
        assert_eq!(load(&[]).unwrap().threads, 0);
        assert_eq!(load(&["--threads", "1"]).unwrap().threads, 1);
        assert_eq!(load(&["--threads", "1024"]).unwrap().threads, 1024);
        let err = load(&["--threads", "1025"]).unwrap_err().to_string();
        assert!(err.contains("threads must be at most 1024"), "{err}");
        assert!(Flags::try_parse_from(["tickdb", "--threads", "-1"]).is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "threads = 2\n").unwrap();
        assert_eq!(
            load(&["--config", path.to_str().unwrap()]).unwrap().threads,
            2
        );
        let c = load(&["--config", path.to_str().unwrap(), "--threads", "1"]).unwrap();
        assert_eq!(c.threads, 1);
        assert!(c.settings().contains(&("threads".into(), "1".into())));
    }

    #[test]
    fn pipelined_sync_comes_from_the_flag_or_the_file() {
        let load = |args: &[&str]| {
            let mut argv = vec!["tickdb"];
            argv.extend_from_slice(args);
            Config::load(Flags::parse_from(argv)).unwrap()
        };
        let off = load(&[]);
        assert!(!off.pipelined_sync, "off for a standalone node");
        assert!(
            load(&["--node-id", "2", "--cluster-nodes", THREE]).pipelined_sync,
            "on in a cluster"
        );
        let clustered_off = [
            "--node-id",
            "2",
            "--cluster-nodes",
            THREE,
            "--pipelined-sync=false",
        ];
        assert!(!load(&clustered_off).pipelined_sync);
        assert!(
            off.settings()
                .contains(&("pipelined-sync".into(), "no".into()))
        );
        assert!(load(&["--pipelined-sync"]).pipelined_sync);
        assert!(load(&["--pipelined-sync=true"]).pipelined_sync);
        for bad in ["--pipelined-sync=maybe", "--pipelined-sync=1"] {
            assert!(Flags::try_parse_from(["tickdb", bad]).is_err(), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(&path, "pipelined_sync = true\n").unwrap();
        let on = load(&["--config", path.to_str().unwrap()]);
        assert!(on.pipelined_sync);
        assert!(
            on.settings()
                .contains(&("pipelined-sync".into(), "yes".into()))
        );
        std::fs::write(&path, "pipelined_sync = 1\n").unwrap();
        let err = Config::load(Flags::parse_from([
            "tickdb",
            "--config",
            path.to_str().unwrap(),
        ]));
        assert!(err.is_err(), "not a boolean");
    }

    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        // From the FNV reference test suite (Landon Curt Noll).
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
