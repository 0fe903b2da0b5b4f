//! Configuration: defaults, then a TOML file, then command-line flags, each overriding the one
//! before.

use std::net::IpAddr;
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
    /// This node's name in INFO and CLUSTER_INFO [default: node-<port>].
    #[arg(long)]
    pub(crate) node_id: Option<String>,
    /// Most clients connected at once; more get "-ERR max number of clients reached"
    /// [default: 10000].
    #[arg(long)]
    pub(crate) max_connections: Option<u64>,
    /// Seconds a client may stay silent before it is disconnected; 0 never [default: 300].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) idle_timeout: Option<u64>,
    /// Password clients must give with AUTH or HELLO AUTH (user "default").
    #[arg(long, env = "TICKDB_REQUIREPASS", hide_env_values = true)]
    pub(crate) requirepass: Option<String>,
    /// RocksDB block cache size in MiB [default: 256].
    #[arg(long, value_name = "MIB")]
    pub(crate) block_cache_mb: Option<u64>,
    /// Port of the ZeroMQ ROUTER socket for DEALER clients (RESP in each message), on the same
    /// address as TCP; 0 disables it [default: 7379].
    #[arg(long)]
    pub(crate) zmq_port: Option<u16>,
    /// Largest ZeroMQ request message in bytes; larger ones are refused with an error
    /// [default: 67108864 (64 MiB)].
    #[arg(long, value_name = "BYTES")]
    pub(crate) zmq_message_max: Option<u64>,
}

/// The settings in a TOML config file; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub(crate) port: Option<u16>,
    pub(crate) bind_addr: Option<IpAddr>,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) node_id: Option<String>,
    pub(crate) max_connections: Option<u64>,
    pub(crate) idle_timeout: Option<u64>,
    pub(crate) requirepass: Option<String>,
    pub(crate) block_cache_mb: Option<u64>,
    pub(crate) zmq_port: Option<u16>,
    pub(crate) zmq_message_max: Option<u64>,
}

/// Default ZeroMQ client port.
pub(crate) const ZMQ_PORT_DEFAULT: u16 = 7379;

/// The resolved configuration.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) port: u16,
    pub(crate) bind_addr: IpAddr,
    pub(crate) data_dir: PathBuf,
    pub(crate) node_id: String,
    pub(crate) max_connections: u64,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) requirepass: Option<String>,
    pub(crate) block_cache_mb: u64,
    /// `None`: no ZeroMQ endpoint.
    pub(crate) zmq_port: Option<u16>,
    pub(crate) zmq_message_max: usize,
    pub(crate) config_file: Option<PathBuf>,
}

impl Config {
    pub(crate) fn load(flags: Flags) -> anyhow::Result<Self> {
        let file = match &flags.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let port = flags.port.or(file.port).unwrap_or(6379);
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
            node_id: flags
                .node_id
                .or(file.node_id)
                .unwrap_or_else(|| format!("node-{port}")),
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
        };
        anyhow::ensure!(
            config.max_connections > 0,
            "max_connections must be at least 1"
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
            ("node-id".into(), self.node_id.clone()),
            ("block-cache-mb".into(), self.block_cache_mb.to_string()),
            ("zmq-port".into(), self.zmq_port.unwrap_or(0).to_string()),
            ("zmq-message-max".into(), self.zmq_message_max.to_string()),
        ]
    }
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
        assert_eq!(c.node_id, "node-7001");
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
}
