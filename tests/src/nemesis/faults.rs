//! The nemesis: one fault at a time, chosen by a seeded generator, held for a while, healed,
//! then a quiet gap.
//!
//! The seed fixes the sequence of fault kinds, hold times, gaps and random picks; which node
//! leads when a fault aims at "the leader" is asked of the cluster at that moment, so a rerun
//! of a seed repeats the schedule, not the cluster's timing (real processes, real clocks).

use std::fmt;
use std::time::{Duration, Instant};

use super::Rng;
use super::netns::Filter;
use crate::cluster::Cluster;

/// The kinds of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// kill -9 a random node, restart it when the fault heals.
    KillRestart,
    /// kill -9 the leader, restart it when the fault heals.
    KillLeader,
    /// SIGSTOP a random node, SIGCONT when the fault heals.
    Pause,
    /// SIGSTOP the leader.
    PauseLeader,
    /// A random node's link down: it reaches neither its peers nor the clients.
    IsolateNode,
    /// The leader's link down.
    IsolateLeader,
    /// The leader cut from both peers (both ways) while clients still reach every node: the
    /// old leader keeps taking requests it can no longer commit.
    SplitLeader,
    /// Packets from one node to another dropped, the other direction intact (half the time
    /// from the leader).
    OneWay,
    /// Two nodes cut from each other, both still connected to the third (the bridge).
    Bridge,
}

impl Kind {
    pub const ALL: [Self; 9] = [
        Self::KillRestart,
        Self::KillLeader,
        Self::Pause,
        Self::PauseLeader,
        Self::IsolateNode,
        Self::IsolateLeader,
        Self::SplitLeader,
        Self::OneWay,
        Self::Bridge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::KillRestart => "kill-restart",
            Self::KillLeader => "kill-leader",
            Self::Pause => "pause",
            Self::PauseLeader => "pause-leader",
            Self::IsolateNode => "isolate-node",
            Self::IsolateLeader => "isolate-leader",
            Self::SplitLeader => "split-leader",
            Self::OneWay => "one-way",
            Self::Bridge => "bridge",
        }
    }
}

/// How long a fault is held, and the quiet gap after it, in milliseconds.
pub const HOLD_MS: (u64, u64) = (500, 3_000);
pub const GAP_MS: (u64, u64) = (200, 1_200);

/// A fault as it happened.
#[derive(Clone, Debug)]
pub struct Fault {
    pub kind: Kind,
    /// What it hit, e.g. "node 2" or "1 -/-> 3".
    pub target: String,
    /// The leader when it began, if the cluster agreed on one.
    pub leader: Option<usize>,
    pub start_us: u64,
    pub end_us: u64,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\t{}\t{}\t{}\t{}",
            self.start_us,
            self.end_us,
            self.kind.name(),
            self.target,
            self.leader.map_or("-".to_string(), |l| (l + 1).to_string())
        )
    }
}

/// How to undo a fault in force.
enum Undo {
    Restart(usize),
    Resume(usize),
    LinkUp(usize),
    Filters,
}

/// The node that says it leads with the highest term, if any answers so.
pub fn leader(cluster: &Cluster) -> Option<usize> {
    cluster
        .up()
        .into_iter()
        .filter_map(|i| cluster.replication(i).ok().map(|r| (i, r)))
        .filter(|(_, r)| r.role == "master")
        .max_by_key(|(_, r)| r.term)
        .map(|(i, _)| i)
}

/// Applies one fault of `kind` and returns how to undo it, with its target.
fn apply(
    kind: Kind,
    cluster: &mut Cluster,
    filter: &Filter,
    rng: &mut Rng,
    leader: Option<usize>,
) -> Result<(Undo, String), String> {
    let n = cluster.len();
    let random = rng.below(n as u64) as usize;
    let node_or_leader = |aim_leader: bool| {
        if aim_leader {
            leader.unwrap_or(random)
        } else {
            random
        }
    };
    let net = |e: super::netns::NetError| e.to_string();
    Ok(match kind {
        Kind::KillRestart | Kind::KillLeader => {
            let i = node_or_leader(kind == Kind::KillLeader);
            cluster.kill9(i);
            (Undo::Restart(i), format!("node {}", i + 1))
        }
        Kind::Pause | Kind::PauseLeader => {
            let i = node_or_leader(kind == Kind::PauseLeader);
            cluster.pause(i);
            (Undo::Resume(i), format!("node {}", i + 1))
        }
        Kind::IsolateNode | Kind::IsolateLeader => {
            let i = node_or_leader(kind == Kind::IsolateLeader);
            filter.set_link(i, false).map_err(net)?;
            (Undo::LinkUp(i), format!("node {}", i + 1))
        }
        Kind::SplitLeader => {
            let i = node_or_leader(true);
            let mut drops = vec![Vec::new(); n];
            for (j, d) in drops.iter_mut().enumerate() {
                if j == i {
                    d.extend((0..n).filter(|&k| k != i));
                } else {
                    d.push(i);
                }
            }
            filter.set_drops(&drops).map_err(net)?;
            (Undo::Filters, format!("node {} | others", i + 1))
        }
        Kind::OneWay => {
            let from = if rng.below(2) == 0 {
                node_or_leader(true)
            } else {
                random
            };
            let to = (from + 1 + rng.below(n as u64 - 1) as usize) % n;
            let mut drops = vec![Vec::new(); n];
            drops[to].push(from);
            filter.set_drops(&drops).map_err(net)?;
            (Undo::Filters, format!("{} -/-> {}", from + 1, to + 1))
        }
        Kind::Bridge => {
            let bridge = random;
            let others: Vec<usize> = (0..n).filter(|&k| k != bridge).collect();
            let (a, b) = (others[0], others[1]);
            let mut drops = vec![Vec::new(); n];
            drops[a].push(b);
            drops[b].push(a);
            filter.set_drops(&drops).map_err(net)?;
            (
                Undo::Filters,
                format!("{} | {} bridged by {}", a + 1, b + 1, bridge + 1),
            )
        }
    })
}

fn undo(undo: Undo, cluster: &mut Cluster, filter: &Filter) -> Result<(), String> {
    match undo {
        Undo::Restart(i) => cluster.restart(i),
        Undo::Resume(i) => cluster.resume(i),
        Undo::LinkUp(i) => filter.set_link(i, true).map_err(|e| e.to_string())?,
        Undo::Filters => filter.heal().map_err(|e| e.to_string())?,
    }
    Ok(())
}

/// Runs faults until `until`, each held for a random time in [`HOLD_MS`] and followed by a
/// gap in [`GAP_MS`]; returns what it did. Everything is healed when it returns.
pub fn run(
    cluster: &mut Cluster,
    filter: &Filter,
    seed: u64,
    start: Instant,
    until: Instant,
) -> Result<Vec<Fault>, String> {
    let mut rng = Rng::new(seed ^ 0xfa17_fa17_fa17_fa17);
    let us = |t: Instant| t.saturating_duration_since(start).as_micros() as u64;
    let mut faults = Vec::new();
    // Bounded: each round sleeps at least the minimum gap.
    let max_rounds =
        until.saturating_duration_since(Instant::now()).as_millis() as u64 / GAP_MS.0 + 1;
    for _ in 0..max_rounds {
        let gap = rng.range(GAP_MS.0, GAP_MS.1);
        std::thread::sleep(Duration::from_millis(gap));
        if Instant::now() >= until {
            break;
        }
        let kind = Kind::ALL[rng.below(Kind::ALL.len() as u64) as usize];
        let hold = rng.range(HOLD_MS.0, HOLD_MS.1);
        let leader = leader(cluster);
        let began = Instant::now();
        let (how, target) = apply(kind, cluster, filter, &mut rng, leader)?;
        std::thread::sleep(Duration::from_millis(hold));
        undo(how, cluster, filter)?;
        let fault = Fault {
            kind,
            target,
            leader,
            start_us: us(began),
            end_us: us(Instant::now()),
        };
        println!(
            "nemesis: {:7.2} s  {:<14} {:<22} held {:.2} s",
            fault.start_us as f64 / 1e6,
            kind.name(),
            fault.target,
            (fault.end_us - fault.start_us) as f64 / 1e6
        );
        faults.push(fault);
    }
    Ok(faults)
}
