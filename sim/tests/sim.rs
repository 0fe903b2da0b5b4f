//! Pinned seeds, replay determinism, and proof that the checkers catch planted bugs.

use tickdb_sim::{Bug, Faults, SimConfig, run_seed};

fn assert_clean(cfg: &SimConfig) {
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
}

#[test]
fn pinned_seeds_three_nodes_all_faults() {
    for seed in 0..24 {
        assert_clean(&SimConfig::new(seed, 3));
    }
}

#[test]
fn pinned_seeds_five_nodes_all_faults() {
    for seed in 1000..1012 {
        assert_clean(&SimConfig::new(seed, 5));
    }
}

#[test]
fn fault_free_run_loses_nothing_and_never_times_out() {
    let cfg = SimConfig {
        faults: Faults::NONE,
        ..SimConfig::new(7, 3)
    };
    let r = run_seed(&cfg);
    assert_eq!(r.violation, None);
    assert_eq!(r.ops_unknown, 0, "no faults, so no timeouts");
    assert_eq!(r.crashes, 0);
    assert!(r.ops_ok > 1000, "only {} ops", r.ops_ok);
}

#[test]
fn same_seed_replays_identically_and_seeds_differ() {
    for seed in [3u64, 42] {
        for nodes in [3, 5] {
            let cfg = SimConfig::new(seed, nodes);
            let a = run_seed(&cfg);
            let b = run_seed(&cfg);
            assert_eq!(a.trace_hash, b.trace_hash, "seed {seed} nodes {nodes}");
            assert_eq!(a.events, b.events);
            assert_eq!(a.ops_ok, b.ops_ok);
            assert_eq!(a.election_ms, b.election_ms);
        }
    }
    let a = run_seed(&SimConfig::new(1, 3));
    let b = run_seed(&SimConfig::new(2, 3));
    assert_ne!(a.trace_hash, b.trace_hash);
}

/// Runs seeds from 0 until one reports a violation; returns how many it took.
fn seeds_to_catch(bug: Bug, nodes: u64, max_seeds: u64) -> u64 {
    for seed in 0..max_seeds {
        let cfg = SimConfig {
            bug: Some(bug),
            ..SimConfig::new(seed, nodes)
        };
        if let Some(v) = run_seed(&cfg).violation {
            println!(
                "{}: caught by seed {seed} ({} seeds): {v}",
                bug.name(),
                seed + 1
            );
            return seed + 1;
        }
    }
    panic!(
        "planted bug {} survived {max_seeds} seeds on {nodes} nodes",
        bug.name()
    );
}

#[test]
fn planted_bug_count_unsynced_self_is_caught() {
    assert!(seeds_to_catch(Bug::CountUnsyncedSelf, 3, 20) <= 20);
    assert!(seeds_to_catch(Bug::CountUnsyncedSelf, 5, 20) <= 20);
}

#[test]
fn planted_bug_vote_without_persist_is_caught() {
    assert!(seeds_to_catch(Bug::VoteWithoutPersist, 3, 20) <= 20);
    assert!(seeds_to_catch(Bug::VoteWithoutPersist, 5, 20) <= 20);
}

#[test]
fn planted_bug_commit_old_term_is_caught() {
    // Figure 8 of the Raft paper needs an old-term entry to reach a majority before the new
    // leader's own entry does, which five voters make far more likely than three.
    assert!(seeds_to_catch(Bug::CommitOldTerm, 5, 60) <= 60);
}

#[test]
fn replay_command_names_every_non_default_knob() {
    let cfg = SimConfig {
        faults: Faults::parse("crashes,network").unwrap(),
        bug: Some(Bug::CommitOldTerm),
        ..SimConfig::new(99, 5)
    };
    assert_eq!(
        cfg.replay_command(),
        "cargo run -p tickdb-sim --release -- --seed 99 --nodes 5 --faults network,crashes \
         --bug commit-old-term"
    );
    assert!(Faults::parse("bogus").is_err());
    let cfg = SimConfig {
        direct_checks: false,
        fault_ms: 5_000,
        ..SimConfig::new(1, 3)
    };
    assert_eq!(
        cfg.replay_command(),
        "cargo run -p tickdb-sim --release -- --seed 1 --nodes 3 --no-direct-checks \
         --fault-ms 5000"
    );
}
