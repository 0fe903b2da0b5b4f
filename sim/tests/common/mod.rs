//! Test drivers shared by the raft-mode and node-mode tests.

use tickdb_sim::{Report, SimConfig, run_seed};

/// Runs `cfg` and fails with its replay command on a violation.
pub(crate) fn assert_clean(cfg: &SimConfig) -> Report {
    let r = run_seed(cfg);
    if let Some(v) = &r.violation {
        panic!(
            "seed {} violated: {v}\nreplay: {}",
            cfg.seed,
            cfg.replay_command()
        );
    }
    assert!(r.ops_ok > 0, "seed {} completed no operations", cfg.seed);
    assert!(r.committed > 0);
    r
}

/// The same seed replays to the same trace (3 and 5 nodes), and different seeds differ.
pub(crate) fn assert_replays(cfg: impl Fn(u64, u64) -> SimConfig) {
    for seed in [3u64, 42] {
        for nodes in [3, 5] {
            let a = run_seed(&cfg(seed, nodes));
            let b = run_seed(&cfg(seed, nodes));
            assert_eq!(a.trace_hash, b.trace_hash, "seed {seed} nodes {nodes}");
            assert_eq!(a.events, b.events);
            assert_eq!(a.ops_ok, b.ops_ok);
            assert_eq!(a.election_ms, b.election_ms);
        }
    }
    let a = run_seed(&cfg(1, 3));
    let b = run_seed(&cfg(2, 3));
    assert_ne!(a.trace_hash, b.trace_hash);
}

/// Runs seeds from 0 until one reports a violation; returns how many it took.
pub(crate) fn seeds_to_catch(what: &str, cfg: impl Fn(u64) -> SimConfig, max_seeds: u64) -> u64 {
    for seed in 0..max_seeds {
        if let Some(v) = run_seed(&cfg(seed)).violation {
            println!("{what}: caught by seed {seed} ({} seeds): {v}", seed + 1);
            return seed + 1;
        }
    }
    panic!("{what} survived {max_seeds} seeds");
}

/// A run without faults: clean, no timeouts, no crashes, and plenty done.
pub(crate) fn assert_fault_free(cfg: &SimConfig) {
    let r = run_seed(cfg);
    assert_eq!(r.violation, None);
    assert_eq!(r.ops_unknown, 0, "no faults, so no timeouts");
    assert_eq!(r.crashes, 0);
    assert!(r.ops_ok > 1000, "only {} ops", r.ops_ok);
}
