//! A multi-process cluster of real `tickdb` binaries on 127.0.0.1 for end-to-end tests.
//!
//! [`Cluster::start`] picks free ports (client, cluster mesh) for every node, gives each node
//! its own temporary data directory and starts them with fast Raft timing so elections take
//! well under a second. Nodes can be crashed ([`Cluster::kill9`]), restarted on the same ports
//! and data ([`Cluster::restart`]), and paused ([`Cluster::pause`], SIGSTOP: a partition as the
//! others see it, without losing any state) and resumed ([`Cluster::resume`]). Everything is
//! killed when the cluster is dropped.
//!
//! Who leads is asked of the nodes themselves through `INFO replication` (`role`,
//! `raft_leader_id`, `raft_term`); every wait is bounded.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tickdb_core::resp::Frame;

use crate::{Client, Server, free_ports};

/// Raft timing for tests: fast elections, still far above a loopback round trip.
pub const HEARTBEAT_MS: u64 = 50;
pub const ELECTION_TIMEOUT_MS: (u64, u64) = (300, 600);
/// How long a write may wait for a leader before the client hears its outcome is unknown.
pub const REQUEST_TIMEOUT_MS: u64 = 2_000;

/// How long a probe (INFO to one node) may take; a paused or dying node must not stall it.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One node's ports.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub client: u16,
    pub cluster: u16,
}

/// What a node says about replication in `INFO replication`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replication {
    /// `master` or `slave`.
    pub role: String,
    pub term: u64,
    /// 0 when the node knows no leader.
    pub leader_id: u64,
    /// Every `key:value` line, for messages.
    pub fields: BTreeMap<String, String>,
}

/// Where and how one node of [`Cluster::start_hosts`] runs.
#[derive(Clone, Debug)]
pub struct Host {
    /// The command the binary runs under, e.g. `ip netns exec NS`.
    pub launcher: Vec<String>,
    /// Its address, which it binds and the others reach it at.
    pub ip: IpAddr,
    pub ports: Ports,
    /// Its data directory (kept by the caller); its log is beside it.
    pub data_dir: PathBuf,
}

/// A cluster of `tickdb` processes; node `i` has id `i + 1`.
pub struct Cluster {
    nodes: Vec<Server>,
    ports: Vec<Ports>,
    paused: Vec<bool>,
}

/// Node `i`'s runtime: the first node runs two workers, the others the default (one thread on
/// a machine of at most 2 cores, like this one), so every cluster test, the fault suite
/// included, runs both of tickdb's runtimes side by side.
fn runtime_flags(i: usize) -> Vec<String> {
    if i == 0 {
        vec!["--threads".into(), "2".into()]
    } else {
        Vec::new()
    }
}

impl Cluster {
    /// Starts `n` nodes and returns once each accepts clients (not once a leader is elected:
    /// see [`Cluster::wait_leader`]).
    pub fn start(n: usize) -> Self {
        Self::start_with(n, &[])
    }

    /// [`Cluster::start`] with extra flags for every node.
    pub fn start_with(n: usize, extra: &[&str]) -> Self {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Self::start_each(n, |_| extra.clone())
    }

    /// [`Cluster::start`] with `extra(i)` as extra flags for node `i`.
    pub fn start_each(n: usize, extra: impl Fn(usize) -> Vec<String>) -> Self {
        assert!(n > 0);
        let picked = free_ports(2 * n);
        let ports: Vec<Ports> = picked
            .chunks(2)
            .map(|p| Ports {
                client: p[0],
                cluster: p[1],
            })
            .collect();
        let members = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}=127.0.0.1:{}@{}", i + 1, p.client, p.cluster))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut args: Vec<String> = [
                    "--node-id",
                    &(i + 1).to_string(),
                    "--cluster-nodes",
                    &members,
                    "--cluster-port",
                    &p.cluster.to_string(),
                    "--cluster-id",
                    "tickdb-test",
                    "--heartbeat-ms",
                    &HEARTBEAT_MS.to_string(),
                    "--election-timeout-ms",
                    &format!("{}-{}", ELECTION_TIMEOUT_MS.0, ELECTION_TIMEOUT_MS.1),
                    "--request-timeout-ms",
                    &REQUEST_TIMEOUT_MS.to_string(),
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                args.extend(runtime_flags(i));
                args.extend(extra(i));
                Server::start_on(p.client, &args)
            })
            .collect();
        Self {
            nodes,
            ports,
            paused: vec![false; n],
        }
    }

    /// Starts one node per host (each bound to its own address, e.g. in its own network
    /// namespace), with `extra` flags for every node.
    pub fn start_hosts(hosts: &[Host], extra: &[String]) -> Self {
        assert!(!hosts.is_empty());
        let members = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| format!("{}={}:{}@{}", i + 1, h.ip, h.ports.client, h.ports.cluster))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let mut args: Vec<String> = vec![
                    "--node-id".into(),
                    (i + 1).to_string(),
                    "--bind".into(),
                    h.ip.to_string(),
                    "--cluster-nodes".into(),
                    members.clone(),
                    "--cluster-port".into(),
                    h.ports.cluster.to_string(),
                ];
                args.extend(runtime_flags(i));
                args.extend(extra.iter().cloned());
                Server::start_under(&h.launcher, h.ip, h.ports.client, h.data_dir.clone(), &args)
            })
            .collect();
        Self {
            nodes,
            ports: hosts.iter().map(|h| h.ports).collect(),
            paused: vec![false; hosts.len()],
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s id in the cluster.
    pub fn id(&self, i: usize) -> u64 {
        i as u64 + 1
    }

    pub fn ports(&self, i: usize) -> Ports {
        self.ports[i]
    }

    /// Node `i`'s process.
    pub fn node(&self, i: usize) -> &Server {
        &self.nodes[i]
    }

    /// A client of node `i`.
    pub fn client(&self, i: usize) -> Client {
        self.nodes[i].client()
    }

    /// Whether node `i` runs and is not paused: it should answer.
    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].is_running() && !self.paused[i]
    }

    /// The nodes that run and are not paused.
    pub fn up(&self) -> Vec<usize> {
        (0..self.len()).filter(|&i| self.is_up(i)).collect()
    }

    /// SIGKILL node `i`.
    pub fn kill9(&mut self, i: usize) {
        self.nodes[i].kill9();
        self.paused[i] = false;
    }

    /// Starts node `i` again (killing it first if it runs) on its ports and data.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].restart();
        self.paused[i] = false;
    }

    /// SIGSTOP node `i`: to the others it is partitioned away, its state intact.
    pub fn pause(&mut self, i: usize) {
        self.nodes[i].signal("STOP");
        self.paused[i] = true;
    }

    /// SIGCONT node `i` after [`Cluster::pause`].
    pub fn resume(&mut self, i: usize) {
        self.nodes[i].signal("CONT");
        self.paused[i] = false;
    }

    /// What node `i` says in `INFO replication`, or why it did not answer.
    pub fn replication(&self, i: usize) -> Result<Replication, String> {
        let mut c = Client::try_connect_to(self.nodes[i].addr(), PROBE_TIMEOUT)
            .map_err(|e| format!("connect: {e}"))?;
        let text = match c.call_within(&["INFO", "replication"], PROBE_TIMEOUT)? {
            Frame::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
            Frame::Verbatim { text, .. } => String::from_utf8_lossy(&text).into_owned(),
            other => return Err(format!("INFO replied {other:?}")),
        };
        Ok(parse_replication(&text))
    }

    /// The node that leads with the agreement of every node that is up: it says
    /// `role:master`, and every node up names it in `raft_leader_id`. `None` while an
    /// election is under way or some node has not heard of the winner yet.
    pub fn leader(&self) -> Option<usize> {
        let up = self.up();
        let reports: Vec<(usize, Replication)> = up
            .iter()
            .filter_map(|&i| self.replication(i).ok().map(|r| (i, r)))
            .collect();
        if reports.len() < up.len() {
            return None;
        }
        let (leader, _) = reports
            .iter()
            .filter(|(_, r)| r.role == "master")
            .max_by_key(|(_, r)| r.term)?;
        let id = self.id(*leader);
        reports
            .iter()
            .all(|(_, r)| r.leader_id == id)
            .then_some(*leader)
    }

    /// Polls [`Cluster::leader`] until one is agreed on; panics with every node's view and
    /// log tail after `timeout`.
    pub fn wait_leader(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(leader) = self.leader() {
                return leader;
            }
            if Instant::now() > deadline {
                panic!(
                    "no leader agreed on within {timeout:?}:\n{}",
                    self.describe()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every node's replication view and the tail of its log, for failure messages.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for i in 0..self.len() {
            let view = if self.is_up(i) {
                match self.replication(i) {
                    Ok(r) => format!("{:?}", r.fields),
                    Err(e) => e,
                }
            } else if self.nodes[i].is_running() {
                "paused".into()
            } else {
                "down".into()
            };
            out.push_str(&format!("--- node {} ({view})\n", self.id(i)));
            let log = self.nodes[i].log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            // A stopped process dies of SIGKILL too; Server's drop does that.
            self.nodes[i].kill9();
        }
    }
}

/// Parses `key:value` lines of an INFO section.
pub fn parse_replication(text: &str) -> Replication {
    let fields: BTreeMap<String, String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let number = |k: &str| fields.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
    Replication {
        role: fields.get("role").cloned().unwrap_or_default(),
        term: number("raft_term"),
        leader_id: number("raft_leader_id"),
        fields,
    }
}

/// Whether `frame` is an error reply whose code is one of `codes` (e.g. "CLUSTERDOWN").
pub fn is_error_with(frame: &Frame, codes: &[&str]) -> bool {
    match frame {
        Frame::Error(msg) => codes.iter().any(|c| msg.starts_with(c.as_bytes())),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_info_parses() {
        let r = parse_replication(
            "# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nraft_term:7\r\nraft_leader_id:2\r\n",
        );
        assert_eq!(r.role, "slave");
        assert_eq!((r.term, r.leader_id), (7, 2));
        assert_eq!(r.fields["master_host"], "127.0.0.1");
        assert_eq!(parse_replication("role:master\r\n").leader_id, 0);
    }

    #[test]
    fn error_codes_match_by_prefix() {
        let e = Frame::Error(bytes::Bytes::from_static(b"CLUSTERDOWN no leader"));
        assert!(is_error_with(&e, &["TRYAGAIN", "CLUSTERDOWN"]));
        assert!(!is_error_with(&e, &["TRYAGAIN"]));
        assert!(!is_error_with(&Frame::ok(), &["OK"]));
    }
}
