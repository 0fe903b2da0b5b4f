//! A private network of network namespaces for the fault suite: one namespace per node and a
//! "client" namespace that holds the bridge joining them and runs the test's clients.
//!
//! ```text
//!   <prefix>c (clients, bridge br0 10.213.0.254/24)
//!      ├── veth p1 ── eth0 10.213.0.1  in <prefix>n1
//!      ├── veth p2 ── eth0 10.213.0.2  in <prefix>n2
//!      └── veth p3 ── eth0 10.213.0.3  in <prefix>n3
//! ```
//!
//! Every address exists only inside these namespaces, so no packet can leave for another
//! host, and concurrent runs (distinct prefixes) cannot see each other. Faults are applied
//! with nftables inside a node's namespace (drop what arrives from a peer: a one-way cut;
//! both ways: a partition) or by taking a node's link down (isolated from peers and clients).
//!
//! Everything is removed by [`Net::teardown`] (also on drop and on panic); namespaces left
//! behind by a run that was killed are removed by [`remove_stale`] at the next start.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};

/// Every namespace of the suite starts with this.
pub const PREFIX: &str = "tdbnem";
/// The private subnet, 10.213.0.0/24; nodes are .1 .. .N, the bridge .254.
const SUBNET: [u8; 3] = [10, 213, 0];
const BRIDGE_HOST: u8 = 254;
/// The nftables table each node namespace filters its input with.
const TABLE: &str = "tdbnemesis";

/// Why the network could not be made (no root, no `ip`, no `nft`, a kernel without netns).
#[derive(Debug)]
pub struct NetError(pub String);

impl std::fmt::Display for NetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Runs `program args`, `Err` with its output when it fails.
fn run(program: &str, args: &[&str]) -> Result<(), NetError> {
    run_with_input(program, args, None)
}

fn run_with_input(program: &str, args: &[&str], input: Option<&str>) -> Result<(), NetError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NetError(format!("{program} {}: {e}", args.join(" "))))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| NetError(format!("{program}: writing its input: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NetError(format!("{program}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(NetError(format!(
        "`{program} {}` failed ({}): {}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )))
}

/// The namespaces of one run.
#[derive(Debug)]
pub struct Net {
    prefix: String,
    nodes: usize,
    torn_down: bool,
}

impl Net {
    /// Makes the namespaces, the bridge, one veth per node and an empty filter per node.
    /// On failure whatever was made is removed again.
    pub fn create(prefix: &str, nodes: usize) -> Result<Self, NetError> {
        assert!(nodes > 0 && nodes < usize::from(BRIDGE_HOST));
        assert!(prefix.starts_with(PREFIX), "{prefix}");
        // Interface names are per namespace; namespace names must be unique on the machine.
        let net = Self {
            prefix: prefix.to_string(),
            nodes,
            torn_down: false,
        };
        // On an error `net` is dropped, which removes what was made.
        net.build()?;
        Ok(net)
    }

    /// The namespaces another process made and will remove (dropping this removes nothing).
    pub fn attach(prefix: &str, nodes: usize) -> Self {
        Self {
            prefix: prefix.to_string(),
            nodes,
            torn_down: true,
        }
    }

    fn build(&self) -> Result<(), NetError> {
        let c = self.client_ns();
        run("ip", &["netns", "add", &c])?;
        run("ip", &["-n", &c, "link", "set", "lo", "up"])?;
        run("ip", &["-n", &c, "link", "add", "br0", "type", "bridge"])?;
        let bridge = format!("{}/24", Self::addr(BRIDGE_HOST));
        run("ip", &["-n", &c, "addr", "add", &bridge, "dev", "br0"])?;
        run("ip", &["-n", &c, "link", "set", "br0", "up"])?;
        for i in 0..self.nodes {
            let ns = self.node_ns(i);
            let port = format!("p{}", i + 1);
            run("ip", &["netns", "add", &ns])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
            run(
                "ip",
                &[
                    "-n", &c, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                    "netns", &ns,
                ],
            )?;
            run("ip", &["-n", &c, "link", "set", &port, "master", "br0"])?;
            run("ip", &["-n", &c, "link", "set", &port, "up"])?;
            let addr = format!("{}/24", self.node_ip(i));
            run("ip", &["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
            let table = format!(
                "table inet {TABLE} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n  }}\n}}\n"
            );
            run_with_input(
                "ip",
                &["netns", "exec", &ns, "nft", "-f", "-"],
                Some(&table),
            )?;
        }
        Ok(())
    }

    fn addr(host: u8) -> Ipv4Addr {
        Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], host)
    }

    /// The namespace holding the bridge, where the clients run.
    pub fn client_ns(&self) -> String {
        format!("{}c", self.prefix)
    }

    /// Node `i`'s namespace.
    pub fn node_ns(&self, i: usize) -> String {
        format!("{}n{}", self.prefix, i + 1)
    }

    /// Node `i`'s address (inside its namespace).
    pub fn node_ip(&self, i: usize) -> IpAddr {
        IpAddr::V4(Self::addr(u8::try_from(i + 1).expect("few nodes")))
    }

    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Removes the namespaces, killing whatever still runs in them. Idempotent.
    pub fn teardown(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        let names: Vec<String> = (0..self.nodes)
            .map(|i| self.node_ns(i))
            .chain([self.client_ns()])
            .collect();
        for ns in &names {
            remove_ns(ns);
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// SIGKILLs every process in `ns` and deletes it (veths inside go with it).
fn remove_ns(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if pid.parse::<u32>().is_ok() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
    }
    // A process may take a moment to die and release the namespace; deletion unmounts it
    // either way.
    let _ = Command::new("ip")
        .args(["netns", "del", ns])
        .stderr(Stdio::null())
        .status();
}

/// Removes namespaces of earlier runs whose process is gone (a run killed before its
/// teardown). Namespaces are named `<PREFIX><pid>...`.
pub fn remove_stale() -> Vec<String> {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let alive = pid
            .parse::<u32>()
            .is_ok_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            remove_ns(name);
            removed.push(name.to_string());
        }
    }
    removed
}

/// The network faults of the nemesis, applied to a running [`Net`] by name (the namespaces
/// may belong to the parent process when the clients run in a re-executed child).
#[derive(Clone, Debug)]
pub struct Filter {
    prefix: String,
    nodes: usize,
}

impl Filter {
    pub fn new(prefix: &str, nodes: usize) -> Self {
        Self {
            prefix: prefix.to_string(),
            nodes,
        }
    }

    fn node_ns(&self, i: usize) -> String {
        format!("{}n{}", self.prefix, i + 1)
    }

    fn client_ns(&self) -> String {
        format!("{}c", self.prefix)
    }

    /// Drops at each node `to` every packet from the nodes in `drops[to]` (replacing what was
    /// dropped before). Clients (the bridge address) always get through.
    pub fn set_drops(&self, drops: &[Vec<usize>]) -> Result<(), NetError> {
        assert_eq!(drops.len(), self.nodes);
        for (to, from) in drops.iter().enumerate() {
            let mut script = format!("flush chain inet {TABLE} input\n");
            if !from.is_empty() {
                let set: Vec<String> = from
                    .iter()
                    .map(|&f| {
                        assert_ne!(f, to, "a node never drops its own packets");
                        Net::addr(u8::try_from(f + 1).expect("few nodes")).to_string()
                    })
                    .collect();
                script.push_str(&format!(
                    "add rule inet {TABLE} input ip saddr {{ {} }} drop\n",
                    set.join(", ")
                ));
            }
            let ns = self.node_ns(to);
            run_with_input(
                "ip",
                &["netns", "exec", &ns, "nft", "-f", "-"],
                Some(&script),
            )?;
        }
        Ok(())
    }

    /// Takes node `i`'s link to the bridge down (`up: false`) or up again: down, it reaches
    /// nobody, peers nor clients.
    pub fn set_link(&self, i: usize, up: bool) -> Result<(), NetError> {
        let port = format!("p{}", i + 1);
        let state = if up { "up" } else { "down" };
        run(
            "ip",
            &["-n", &self.client_ns(), "link", "set", &port, state],
        )
    }

    /// Every link up, nothing dropped.
    pub fn heal(&self) -> Result<(), NetError> {
        for i in 0..self.nodes {
            self.set_link(i, true)?;
        }
        self.set_drops(&vec![Vec::new(); self.nodes])
    }
}
