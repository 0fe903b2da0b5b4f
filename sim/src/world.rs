//! What both simulation modes share: the seeded PRNG, the event queue ordered by (simulated
//! time, insertion sequence), the trace hash, per-node clock drift, the faulty cluster network
//! (partitions, loss, duplication, long delays) and the fault schedule.
//!
//! Every random decision goes through [`World`]'s one ChaCha PRNG, in an order fixed by the
//! events, so a seed replays exactly; the trace hash folds in every processed event to prove it.

use std::collections::{BTreeMap, BTreeSet};

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use tickdb_core::Instant;
use tickdb_core::raft::NodeId;

use crate::sim::SimConfig;

/// One simulated millisecond, in nanoseconds.
pub(crate) const MS: u64 = 1_000_000;

/// The first fault comes this long after the start (a leader usually exists by then).
const FIRST_FAULT_MS: u64 = 500;

/// Which faults the run injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faults {
    /// Message loss and long delays (reordering).
    pub network: bool,
    /// Message duplication (on by default with `network`; `-duplicate` turns it off).
    pub duplicate: bool,
    /// Symmetric, one-way and bridge partitions, isolating the leader.
    pub partitions: bool,
    /// Crashes losing unsynced writes (or keeping a torn prefix) and restarts.
    pub crashes: bool,
    /// Per-node clock drift.
    pub drift: bool,
    /// Leadership transfers and (raft mode) membership changes.
    pub reconfig: bool,
    /// Node mode: a process stopped (SIGSTOP) for a while, its inputs piling up, then fed
    /// to it in one batch when it resumes, as the driver does.
    pub pauses: bool,
}

impl Faults {
    pub const ALL: Self = Self {
        network: true,
        duplicate: true,
        partitions: true,
        crashes: true,
        drift: true,
        reconfig: true,
        pauses: true,
    };
    pub const NONE: Self = Self {
        network: false,
        duplicate: false,
        partitions: false,
        crashes: false,
        drift: false,
        reconfig: false,
        pauses: false,
    };

    /// Parses a comma-separated list, left to right: `all`, `none`, `network` (loss, delays
    /// and duplication), `duplicate`, `partitions`, `crashes`, `drift`, `reconfig`, `pauses`;
    /// `-name` turns one off again (`all,-duplicate`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut f = Self::NONE;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (on, name) = match part.strip_prefix('-') {
                Some(name) => (false, name),
                None => (true, part),
            };
            match name {
                "all" if on => f = Self::ALL,
                "none" if on => f = Self::NONE,
                "network" => {
                    f.network = on;
                    f.duplicate = on;
                }
                "duplicate" => f.duplicate = on,
                "partitions" => f.partitions = on,
                "crashes" => f.crashes = on,
                "drift" => f.drift = on,
                "reconfig" => f.reconfig = on,
                "pauses" => f.pauses = on,
                other => return Err(format!("unknown fault {other}")),
            }
        }
        Ok(f)
    }

    /// The `--faults` argument that parses back to `self`.
    pub(crate) fn arg(self) -> String {
        let mut parts = Vec::new();
        for (on, name) in [
            (self.network, "network"),
            (self.network && !self.duplicate, "-duplicate"),
            (!self.network && self.duplicate, "duplicate"),
            (self.partitions, "partitions"),
            (self.crashes, "crashes"),
            (self.drift, "drift"),
            (self.reconfig, "reconfig"),
            (self.pauses, "pauses"),
        ] {
            if on {
                parts.push(name);
            }
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(",")
        }
    }

    /// Whether anything is injected besides drift (which needs no fault events).
    pub(crate) const fn any_events(self) -> bool {
        self.network
            || self.duplicate
            || self.partitions
            || self.crashes
            || self.reconfig
            || self.pauses
    }
}

/// What the next fault event does; the network faults are already applied by
/// [`World::roll_fault`], the others are the caller's to carry out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FaultKind {
    Crash,
    Partition,
    /// Every partition healed (done).
    ClearPartitions,
    /// New loss and duplication rates (done).
    Network,
    Transfer,
    Membership,
    /// Node mode: stop a process for a while (SIGSTOP), then resume it.
    Pause,
    /// The roll picked a fault this run does not inject.
    Nothing,
}

pub(crate) fn fnv(hash: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *hash ^= u64::from(*b);
        *hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
}

/// What the shared event loop needs of a simulation mode's event type.
pub(crate) trait SimEvent: std::fmt::Debug + Sized {
    const FAULT: Self;
    const HEAL: Self;
    const END: Self;
    fn client_next(client: u32) -> Self;
    /// A cluster message (traced by its bytes, not its debug form).
    fn message(&self) -> Option<(NodeId, NodeId, &[u8])>;
}

/// Implements [`SimEvent`] for an event enum with the variants `Deliver { from, to, bytes }`,
/// `ClientNext { client }`, `Fault`, `Heal` and `End`.
macro_rules! impl_sim_event {
    ($ev:ident) => {
        impl $crate::world::SimEvent for $ev {
            const FAULT: Self = Self::Fault;
            const HEAL: Self = Self::Heal;
            const END: Self = Self::End;

            fn client_next(client: u32) -> Self {
                Self::ClientNext { client }
            }

            fn message(&self) -> Option<(NodeId, NodeId, &[u8])> {
                match self {
                    Self::Deliver { from, to, bytes } => Some((*from, *to, bytes)),
                    _ => None,
                }
            }
        }
    };
}
pub(crate) use impl_sim_event;

/// The PRNG, the clock, the event queue and the cluster network of one run.
pub(crate) struct World<E> {
    rng: ChaCha8Rng,
    /// Global simulated time, ns.
    pub(crate) now: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), E>,
    pub(crate) hash: u64,
    faults: Faults,
    /// Directed links that drop everything.
    blocked: BTreeSet<(NodeId, NodeId)>,
    loss_pct: u64,
    dup_pct: u64,
    drift_ppm: BTreeMap<NodeId, i64>,
}

impl<E> World<E> {
    pub(crate) fn new(seed: u64, faults: Faults) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            now: 0,
            seq: 0,
            queue: BTreeMap::new(),
            hash: 0xcbf2_9ce4_8422_2325,
            faults,
            blocked: BTreeSet::new(),
            loss_pct: 0,
            dup_pct: 0,
            drift_ppm: BTreeMap::new(),
        }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Uniform in `0..n`.
    pub(crate) fn rand(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        self.rng.next_u64() % n
    }

    /// How long a pipelined sync takes: mostly an fsync's 0.05-1.5 ms, now and then a disk
    /// that stalls for up to 30 ms while the node goes on writing.
    pub(crate) fn sync_latency(&mut self) -> u64 {
        if self.chance(5) {
            self.rand(30 * MS)
        } else {
            50_000 + self.rand(1_450_000)
        }
    }

    pub(crate) fn chance(&mut self, pct: u64) -> bool {
        self.rand(100) < pct
    }

    /// A uniformly chosen element of a non-empty slice.
    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rand(items.len() as u64) as usize]
    }

    pub(crate) fn schedule(&mut self, at: u64, ev: E) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    /// The next event, advancing the clock to it.
    pub(crate) fn pop(&mut self) -> Option<E> {
        let ((at, _), ev) = self.queue.pop_first()?;
        self.now = at;
        Some(ev)
    }

    /// Folds the current time and `parts` into the trace hash.
    pub(crate) fn trace(&mut self, parts: &[&[u8]]) {
        fnv(&mut self.hash, &self.now.to_le_bytes());
        for p in parts {
            fnv(&mut self.hash, p);
        }
    }

    /// Registers a node, drawing its clock drift (±1%) when the run injects drift.
    pub(crate) fn add_node(&mut self, id: NodeId) {
        let ppm = if self.faults.drift {
            (self.rng.next_u64() % 20_001) as i64 - 10_000
        } else {
            0
        };
        self.drift_ppm.insert(id, ppm);
    }

    /// The node's drifting local clock at global time `t`.
    pub(crate) fn local(&self, id: NodeId, t: u64) -> Instant {
        let ppm = self.drift_ppm[&id];
        let scaled = i128::from(t) * i128::from(1_000_000 + ppm) / 1_000_000;
        Instant::from_nanos(u64::try_from(scaled).unwrap_or(u64::MAX))
    }

    /// The node's local clock now.
    pub(crate) fn local_now(&self, id: NodeId) -> Instant {
        self.local(id, self.now)
    }

    /// The global time at which the node's clock reads `local` (never before now).
    pub(crate) fn global(&self, id: NodeId, local: Instant) -> u64 {
        let ppm = self.drift_ppm[&id];
        let num = i128::from(local.as_nanos()) * 1_000_000;
        let den = i128::from(1_000_000 + ppm);
        let t = (num + den - 1) / den;
        u64::try_from(t).unwrap_or(u64::MAX).max(self.now)
    }

    /// When the copies of a message sent now from `from` to `to` arrive: none when the link is
    /// cut or the message is lost, two when it is duplicated; a few take long (reordering).
    pub(crate) fn transmit(&mut self, from: NodeId, to: NodeId) -> Vec<u64> {
        if self.blocked.contains(&(from, to)) {
            return Vec::new();
        }
        if self.loss_pct > 0 && self.chance(self.loss_pct) {
            return Vec::new();
        }
        let copies = if self.dup_pct > 0 && self.chance(self.dup_pct) {
            2
        } else {
            1
        };
        (0..copies)
            .map(|_| {
                let delay = if self.faults.network && self.chance(5) {
                    5 * MS + self.rand(150 * MS)
                } else {
                    200_000 + self.rand(3 * MS)
                };
                self.now + delay
            })
            .collect()
    }

    /// Faults stop: every link works and nothing is lost or duplicated.
    pub(crate) fn heal_network(&mut self) {
        self.blocked.clear();
        self.loss_pct = 0;
        self.dup_pct = 0;
    }

    /// Rolls the next fault. Network faults are applied here; the rest are returned for the
    /// caller, which then asks [`World::fault_gap`] when the next one comes.
    pub(crate) fn roll_fault(&mut self) -> FaultKind {
        let f = self.faults;
        match self.rand(100) {
            0..=24 if f.crashes => FaultKind::Crash,
            25..=44 if f.partitions => FaultKind::Partition,
            45..=59 => {
                self.blocked.clear();
                FaultKind::ClearPartitions
            }
            60..=74 if f.network || f.duplicate => {
                // Both are drawn either way: the draw order is part of every seed's replay.
                let loss = [0, 1, 5, 20][self.rand(4) as usize];
                let dup = [0, 2, 10][self.rand(3) as usize];
                self.loss_pct = if f.network { loss } else { 0 };
                self.dup_pct = if f.duplicate { dup } else { 0 };
                FaultKind::Network
            }
            75..=84 if f.reconfig => FaultKind::Transfer,
            85..=94 if f.reconfig => FaultKind::Membership,
            95..=99 if f.pauses => FaultKind::Pause,
            _ => FaultKind::Nothing,
        }
    }

    /// Simulated ns until the next fault.
    pub(crate) fn fault_gap(&mut self) -> u64 {
        100 * MS + self.rand(1500 * MS)
    }

    /// Whom a crash fault hits: the leader half the time, else any node that is up.
    pub(crate) fn crash_victim(&mut self, up: &[NodeId], leader: Option<NodeId>) -> Option<NodeId> {
        if up.is_empty() {
            return None;
        }
        Some(match leader {
            Some(l) if self.chance(50) => l,
            _ => self.pick(up),
        })
    }

    /// How many of a crashing node's `unsynced` batches survive: none half the time, else a
    /// random prefix (a torn write-ahead log).
    pub(crate) fn crash_keep(&mut self, unsynced: usize) -> usize {
        if self.chance(50) {
            0
        } else {
            self.rand(unsynced as u64 + 1) as usize
        }
    }

    /// Replaces the partitions with a new one over `ids`: a symmetric random split, the
    /// isolated `leader` (or a random node), some one-way links, or two halves bridged by one
    /// node.
    pub(crate) fn partition(&mut self, ids: &[NodeId], leader: Option<NodeId>) {
        self.blocked.clear();
        match self.rand(4) {
            0 => {
                let side: Vec<bool> = ids
                    .iter()
                    .map(|_| self.rng.next_u64().is_multiple_of(2))
                    .collect();
                for (i, a) in ids.iter().enumerate() {
                    for (j, b) in ids.iter().enumerate() {
                        if side[i] != side[j] {
                            self.blocked.insert((*a, *b));
                        }
                    }
                }
            }
            1 => {
                // The random pick is drawn even when there is a leader: the draw order is
                // part of every seed's replay.
                let any = self.pick(ids);
                let victim = leader.unwrap_or(any);
                for b in ids.iter().filter(|b| **b != victim) {
                    self.cut(victim, *b);
                }
            }
            2 => {
                for _ in 0..1 + self.rand(4) {
                    let a = self.pick(ids);
                    let b = self.pick(ids);
                    if a != b {
                        self.blocked.insert((a, b));
                    }
                }
            }
            _ => {
                let bridge = self.pick(ids);
                let rest: Vec<NodeId> = ids.iter().copied().filter(|i| *i != bridge).collect();
                let half = rest.len() / 2;
                for a in &rest[..half] {
                    for b in &rest[half..] {
                        self.cut(*a, *b);
                    }
                }
            }
        }
    }

    fn cut(&mut self, a: NodeId, b: NodeId) {
        self.blocked.insert((a, b));
        self.blocked.insert((b, a));
    }
}

impl<E: SimEvent> World<E> {
    /// Schedules the run's skeleton: each client's first operation within 100 ms, the first
    /// fault, the heal when faults stop, and the end.
    pub(crate) fn schedule_run(&mut self, cfg: &SimConfig) {
        for c in 0..cfg.clients {
            let at = self.rand(100) * MS;
            self.schedule(at, E::client_next(c));
        }
        if cfg.faults.any_events() {
            self.schedule(FIRST_FAULT_MS * MS, E::FAULT);
        }
        self.schedule(cfg.fault_ms * MS, E::HEAL);
        self.schedule((cfg.fault_ms + cfg.quiet_ms) * MS, E::END);
    }

    /// The next event, folded into the trace hash.
    pub(crate) fn next_event(&mut self) -> Result<E, String> {
        let ev = self.pop().ok_or("event queue ran dry")?;
        match ev.message() {
            Some((from, to, bytes)) => {
                self.trace(&[&[0], &from.0.to_le_bytes(), &to.0.to_le_bytes(), bytes]);
            }
            None => self.trace(&[format!("{ev:?}").as_bytes()]),
        }
        Ok(ev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_pop_in_time_then_insertion_order() {
        let mut w: World<&str> = World::new(1, Faults::NONE);
        w.schedule(5, "b");
        w.schedule(3, "a");
        w.schedule(5, "c");
        assert_eq!(w.pop(), Some("a"));
        assert_eq!(w.now, 3);
        assert_eq!(w.pop(), Some("b"));
        assert_eq!(w.pop(), Some("c"));
        assert_eq!(w.now, 5);
        assert_eq!(w.pop(), None);
    }

    #[test]
    fn drifting_clocks_round_trip() {
        let mut w: World<()> = World::new(7, Faults::ALL);
        let id = NodeId(1);
        w.add_node(id);
        for t in [0, 1, 999_999, 123_456_789_012] {
            // A slow clock reads the same for several ns: the earliest of them is returned.
            let local = w.local(id, t);
            let back = w.global(id, local);
            assert!(back <= t, "t {t}");
            assert_eq!(w.local(id, back), local, "t {t}");
        }
    }

    #[test]
    fn cut_links_drop_everything_until_healed() {
        let mut w: World<()> = World::new(3, Faults::NONE);
        let (a, b) = (NodeId(1), NodeId(2));
        w.cut(a, b);
        assert!(w.transmit(a, b).is_empty());
        assert!(w.transmit(b, a).is_empty());
        w.heal_network();
        assert_eq!(w.transmit(a, b).len(), 1);
    }

    #[test]
    fn faults_parse_back_from_their_argument() {
        for s in [
            "all",
            "none",
            "network,crashes",
            "drift",
            "all,-duplicate",
            "duplicate",
            "pauses",
            "all,-pauses",
        ] {
            let f = Faults::parse(s).unwrap();
            assert_eq!(Faults::parse(&f.arg()).unwrap(), f);
        }
        assert!(Faults::parse("bogus").is_err());
        let f = Faults::parse("all,-duplicate").unwrap();
        assert!(f.network && !f.duplicate && f.crashes);
        assert_eq!(
            f.arg(),
            "network,-duplicate,partitions,crashes,drift,reconfig,pauses"
        );
    }
}
