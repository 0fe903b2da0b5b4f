//! The `tickdb` binary: reads the configuration, opens the store, starts the node task, the
//! cluster mesh (when `cluster_nodes` is set) and the client endpoints, and shuts down cleanly
//! on SIGINT or SIGTERM (stop accepting, finish the writes in flight, sync, exit 0).

mod config;

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;
use tickdb_core::node::{ClusterConfig, Member, Node, NodeConfig};

/// mimalloc, not the system allocator: the request path allocates and frees many small
/// buffers, which glibc's malloc made a quarter of the server's CPU (see the workspace
/// manifest).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tickdb_core::raft::NodeId;
use tickdb_io::tcp::{self, TcpConfig};
use tickdb_io::zmq::{self, ZmqConfig};
use tickdb_io::{Mesh, MeshConfig, RocksOptions, RocksStore};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use config::{Config, Flags};

/// How long shutdown waits for connections to deliver their last replies.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = Config::load(flags)?;
    // 1: every task on this thread; n: n workers; 0: chosen by the machine's cores.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = config::runtime_threads(config.threads, cores);
    let mut builder = match threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    if threads > 1 {
        builder.worker_threads(threads);
    }
    tracing::info!(
        threads,
        setting = config.threads,
        cores,
        "runtime: {}",
        if threads == 1 {
            "one thread for clients and the node".to_string()
        } else {
            format!("{threads} workers for clients and the node")
        }
    );
    let runtime = builder.enable_all().build()?;
    runtime.block_on(run(config))
}

async fn run(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let db_path = config.data_dir.join("db");
    let options = RocksOptions {
        block_cache_bytes: usize::try_from(config.block_cache_mb.saturating_mul(1 << 20))
            .unwrap_or(usize::MAX),
        pipelined_sync: config.pipelined_sync,
        ..RocksOptions::default()
    };
    let store = RocksStore::open(&db_path, options)
        .with_context(|| format!("opening the store in {}", db_path.display()))?;

    // ZeroMQ first: once TCP accepts (what scripts wait for), every endpoint is up.
    let zmq_socket = match config.zmq_port {
        Some(port) => Some(zmq::bind(SocketAddr::new(config.bind_addr, port)).await?),
        None => None,
    };
    let zmq_local = zmq_socket.as_ref().map(|(_, local)| *local);

    let addr = SocketAddr::new(config.bind_addr, config.port);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let local = listener.local_addr()?;

    // The mesh before TCP too, so a port clash fails the start rather than a later election.
    let mesh = match &config.cluster {
        Some(cluster) => {
            let bind = SocketAddr::new(config.bind_addr, cluster.cluster_port);
            let peers = cluster
                .members
                .iter()
                .filter(|m| m.id != config.node_id)
                .map(|m| (m.id, m.cluster_addr()))
                .collect();
            let mesh_config = MeshConfig::new(config.node_id, bind, peers);
            Some(
                Mesh::start(mesh_config)
                    .await
                    .context("starting the cluster mesh")?,
            )
        }
        None => None,
    };

    let (handle, rx) = tickdb_io::channel();
    let node_config = NodeConfig {
        node_id: config.node_id.to_string(),
        cluster: cluster_config(&config),
        requirepass: config.requirepass.clone().map(Into::into),
        max_clients: config.max_connections,
        settings: config.settings(),
        server_info: vec![
            ("os".into(), os_name()),
            ("process_id".into(), std::process::id().to_string()),
            ("tcp_port".into(), local.port().to_string()),
            (
                "zmq_port".into(),
                zmq_local.map_or(0, |a| a.port()).to_string(),
            ),
            (
                "executable".into(),
                std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            (
                "config_file".into(),
                config
                    .config_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            ("data_dir".into(), config.data_dir.display().to_string()),
            (
                "cluster_port".into(),
                config
                    .cluster
                    .as_ref()
                    .map_or(0, |c| c.cluster_port)
                    .to_string(),
            ),
        ],
    };
    let node = Node::new(node_config, store, handle.now()).context("starting the node")?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let node_task = match mesh {
        Some((mesh, peers)) => tokio::spawn(tickdb_io::run_cluster_node(
            node,
            handle.clone(),
            rx,
            stop_rx.clone(),
            mesh,
            peers,
        )),
        None => tokio::spawn(tickdb_io::run_node(
            node,
            handle.clone(),
            rx,
            stop_rx.clone(),
        )),
    };
    let tcp_config = TcpConfig {
        idle_timeout: config.idle_timeout,
        ..TcpConfig::default()
    };
    let zmq_task = zmq_socket.map(|(socket, _)| {
        let zmq_config = ZmqConfig {
            idle_timeout: config.idle_timeout,
            message_max: config.zmq_message_max,
            ..ZmqConfig::default()
        };
        tokio::spawn(zmq::serve(
            socket,
            handle.clone(),
            zmq_config,
            stop_rx.clone(),
            done_tx.clone(),
        ))
    });
    let tcp_task = tokio::spawn(tcp::serve(listener, handle, tcp_config, stop_rx, done_tx));
    tracing::info!(
        %local,
        zmq = %zmq_local.map_or_else(|| "off".to_string(), |a| format!("tcp://{a}")),
        data_dir = %config.data_dir.display(),
        node_id = config.node_id,
        cluster = %config
            .cluster
            .as_ref()
            .map_or_else(|| "off".to_string(), |c| format!("{} nodes, cluster port {}", c.members.len(), c.cluster_port)),
        version = env!("CARGO_PKG_VERSION"),
        "tickdb ready to accept connections"
    );

    let signal = shutdown_signal().await?;
    tracing::info!(
        signal,
        "shutting down: no new clients, finishing writes in flight"
    );
    let _ = stop_tx.send(true);
    let _ = tcp_task.await;
    if let Some(task) = zmq_task {
        let _ = task.await;
    }
    let node = node_task.await.context("node task panicked")?;
    if tokio::time::timeout(SHUTDOWN_GRACE, done_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!("some clients did not finish within the grace period");
    }
    // Flushing the memtables leaves no WAL to replay at the next start (and no WAL-sized
    // data directory in between).
    if let Err(e) = node.into_store().close() {
        tracing::warn!(error = %e, "could not flush the store at shutdown; the next start replays its WAL");
    }
    tracing::info!("tickdb stopped cleanly");
    Ok(())
}

/// The node's place in its cluster; a standalone node is a cluster of one.
fn cluster_config(config: &Config) -> ClusterConfig {
    let members = match &config.cluster {
        Some(cluster) => cluster
            .members
            .iter()
            .map(|m| Member {
                id: NodeId(m.id),
                client_addr: m.client.to_string(),
                cluster_port: m.cluster_port,
            })
            .collect(),
        None => vec![Member {
            id: NodeId(config.node_id),
            client_addr: SocketAddr::new(config.bind_addr, config.port).to_string(),
            cluster_port: 0,
        }],
    };
    // Field by field on the defaults: builds that unify the planted-bugs feature add a field.
    let mut c = ClusterConfig::single();
    c.id = NodeId(config.node_id);
    c.cluster_id = config.cluster_id;
    c.members = members;
    c.seed = seed(config.node_id);
    c.heartbeat_ms = config.heartbeat_ms;
    c.election_timeout_ms = config.election_timeout_ms;
    c.request_timeout_ms = config.request_timeout_ms;
    c.joining = config.cluster_join;
    c.secret = config.cluster_secret.clone().map(String::into_bytes);
    c.compaction_entries = config.raft_compaction_entries;
    c
}

/// Seeds the node's election jitter: distinct per node and per start, so nodes restarted
/// together do not time out in lockstep. std's `RandomState` is keyed from OS randomness;
/// the node id and the time are mixed in as well.
fn seed(node_id: u64) -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u64(node_id);
    h.write_u32(std::process::id());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    h.write_u128(now.as_nanos());
    h.finish()
}

async fn shutdown_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

/// The `os` INFO field as Redis reports it: kernel name, release and machine (`uname -srm`).
fn os_name() -> String {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/proc/sys/kernel/{f}"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let (name, release) = (read("ostype"), read("osrelease"));
    if name.is_empty() {
        return format!("{} {}", std::env::consts::OS, std::env::consts::ARCH);
    }
    format!("{name} {release} {}", std::env::consts::ARCH)
}
