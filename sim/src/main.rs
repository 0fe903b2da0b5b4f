//! The sweep runner: `cargo run -p tickdb-sim --release -- --seeds 1000 [--nodes 5]
//! [--mode node]`, or replay one seed with `--seed N`.

use std::time::Instant as WallClock;

use anyhow::{Result, bail};
use clap::Parser;
use tickdb_sim::{Bug, Faults, Mode, SimConfig, Syncs, run_seed};

#[derive(Parser, Debug)]
#[command(about = "Deterministic simulation of tickdb: sweep seeds or replay one")]
struct Args {
    /// raft: bare Raft nodes with a toy state machine; node: real server nodes and RESP
    /// clients.
    #[arg(long, default_value = "raft")]
    mode: Mode,
    /// Replay exactly this seed (prints its trace hash).
    #[arg(long)]
    seed: Option<u64>,
    /// Number of seeds to sweep, starting at --first.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// First seed of the sweep.
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Voters in the initial cluster (raft mode adds one spare node for membership changes).
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Comma-separated faults: all, none, network, duplicate, partitions, crashes, drift,
    /// reconfig, pauses; `-name` removes one (`all,-duplicate`).
    #[arg(long, default_value = "all")]
    faults: String,
    /// Plant a known bug: count-unsynced-self, vote-without-persist, commit-old-term,
    /// apply-under-snapshot (Raft), fsync-lies (the simulated disk).
    #[arg(long)]
    bug: Option<Bug>,
    /// Simulated milliseconds with faults (then faults stop and the run continues quietly).
    #[arg(long, default_value_t = 20_000)]
    fault_ms: u64,
    /// Simulated milliseconds after faults stop.
    #[arg(long, default_value_t = 15_000)]
    quiet_ms: u64,
    /// Only end-to-end checks (no direct durability / election-restriction checks).
    #[arg(long)]
    no_direct_checks: bool,
    /// How nodes sync: inline or pipelined (default: pipelined, inline for seeds divisible
    /// by 4).
    #[arg(long)]
    syncs: Option<Syncs>,
    /// Stop at the first violation.
    #[arg(long)]
    stop: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let faults = Faults::parse(&args.faults).map_err(anyhow::Error::msg)?;
    let make = |seed| SimConfig {
        faults,
        bug: args.bug,
        fault_ms: args.fault_ms,
        quiet_ms: args.quiet_ms,
        direct_checks: !args.no_direct_checks,
        syncs: args.syncs.unwrap_or(Syncs::for_seed(seed)),
        ..match args.mode {
            Mode::Raft => SimConfig::new(seed, args.nodes),
            Mode::Node => SimConfig::node(seed, args.nodes),
        }
    };
    let seeds: Vec<u64> = match args.seed {
        Some(s) => vec![s],
        None => (args.first..args.first + args.seeds).collect(),
    };
    let start = WallClock::now();
    let (mut events, mut sim_ms, mut ok, mut failed, mut unknown) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut faults_n, mut crashes, mut inconclusive, mut snapshots) = (0u64, 0u64, 0u64, 0u64);
    let mut pauses = 0u64;
    let (mut added, mut forgotten, mut refused, mut retired) = (0u64, 0u64, 0u64, 0u64);
    let mut elections: Vec<u64> = Vec::new();
    let mut violations = Vec::new();
    for &seed in &seeds {
        let cfg = make(seed);
        let r = run_seed(&cfg);
        if args.seed.is_some() {
            println!("seed {seed}: trace hash {:016x}", r.trace_hash);
        }
        events += r.events;
        sim_ms += r.sim_ms;
        ok += r.ops_ok;
        failed += r.ops_failed;
        unknown += r.ops_unknown;
        faults_n += r.faults;
        crashes += r.crashes;
        pauses += r.pauses;
        snapshots += r.snapshots;
        added += r.nodes_added;
        forgotten += r.nodes_forgotten;
        refused += r.reconfig_refused;
        retired += r.nodes_retired;
        inconclusive += u64::from(r.inconclusive);
        elections.extend(&r.election_ms);
        if let Some(v) = r.violation {
            println!(
                "VIOLATION seed {seed}: {v}\n  replay: {}",
                cfg.replay_command()
            );
            violations.push(seed);
            if args.stop {
                break;
            }
        }
    }
    let wall = start.elapsed().as_secs_f64();
    elections.sort_unstable();
    let pct = |p: usize| {
        elections
            .get((elections.len().saturating_sub(1)) * p / 100)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "mode {:?} seeds {} nodes {} faults {} bug {}",
        args.mode,
        seeds.len(),
        args.nodes,
        args.faults,
        args.bug.map_or("none", Bug::name)
    );
    println!(
        "wall {wall:.1} s, {:.1} seeds/s, {:.0} simulated s per wall s, {events} events",
        seeds.len() as f64 / wall,
        sim_ms as f64 / 1000.0 / wall
    );
    println!(
        "operations checked: {ok} ok, {failed} failed (refused), {unknown} unknown; \
         {inconclusive} seeds with an inconclusive linearizability search"
    );
    println!(
        "faults injected: {faults_n} ({crashes} crashes, {pauses} pauses); \
         {snapshots} snapshots installed"
    );
    if args.mode == Mode::Node {
        println!(
            "membership commands: {added} CLUSTER ADDNODE ok, {forgotten} CLUSTER FORGET ok, \
             {refused} refused; {retired} removed nodes retired"
        );
    }
    println!(
        "election after leader crash ({} samples), simulated ms: min {} p50 {} p90 {} p99 {} max {}",
        elections.len(),
        pct(0),
        pct(50),
        pct(90),
        pct(99),
        pct(100)
    );
    println!("violations: {} {:?}", violations.len(), violations);
    if !violations.is_empty() {
        bail!("{} seeds violated a property", violations.len());
    }
    Ok(())
}
