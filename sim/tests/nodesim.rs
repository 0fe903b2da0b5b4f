//! Node mode: pinned seeds over real `Node`s, replay determinism, and proof that the checkers
//! catch what they claim to.

mod common;

use common::{assert_clean, assert_fault_free, assert_replays, seeds_to_catch};
use tickdb_sim::{Bug, Faults, SimConfig, Syncs, run_seed};

/// Every fault, message duplication included.
fn faults() -> Faults {
    Faults::parse("all").unwrap()
}

fn node(seed: u64, nodes: u64) -> SimConfig {
    SimConfig {
        faults: faults(),
        ..SimConfig::node(seed, nodes)
    }
}

/// Seed 9337 had a follower restarted while the leader still owed its previous incarnation
/// a forward's reply; the new incarnation took that reply (a SET's `OK`) for its own TS.ADD's.
#[test]
fn a_restarted_followers_forwards_get_only_their_own_replies() {
    assert_clean(&node(9337, 3));
}

/// Pinned seeds, which also install snapshots often (small compaction thresholds), pause
/// nodes and feed their queued inputs in one batch, as the driver does after a SIGSTOP.
#[test]
fn pinned_node_seeds_three_nodes() {
    let (mut snapshots, mut pauses) = (0, 0);
    for seed in 0..60 {
        let r = assert_clean(&node(seed, 3));
        snapshots += r.snapshots;
        pauses += r.pauses;
    }
    println!("{snapshots} snapshots installed, {pauses} pauses");
    assert!(
        snapshots >= 60,
        "only {snapshots} snapshots installed in 60 seeds"
    );
    assert!(pauses > 0, "no node was paused");
}

#[test]
fn pinned_node_seeds_five_nodes() {
    for seed in 2000..2015 {
        assert_clean(&node(seed, 5));
    }
}

/// The reconfig fault changes the membership through the nodes: `CLUSTER ADDNODE` and
/// `CLUSTER FORGET` answered `+OK` (so it cannot silently do nothing), and none without it.
#[test]
fn reconfig_adds_and_forgets_nodes() {
    let (mut added, mut forgotten) = (0, 0);
    for seed in 100..108 {
        let r = run_seed(&node(seed, 3));
        assert_eq!(r.violation, None, "seed {seed}");
        added += r.nodes_added;
        forgotten += r.nodes_forgotten;
    }
    assert!(added > 0, "no CLUSTER ADDNODE succeeded");
    assert!(forgotten > 0, "no CLUSTER FORGET succeeded");
    let r = run_seed(&SimConfig {
        faults: Faults::parse("all,-reconfig").unwrap(),
        ..SimConfig::node(100, 3)
    });
    assert_eq!(
        (r.nodes_added, r.nodes_forgotten, r.reconfig_refused),
        (0, 0, 0)
    );
}

#[test]
fn fault_free_node_run_never_times_out() {
    let cfg = SimConfig {
        faults: Faults::NONE,
        ..SimConfig::node(7, 3)
    };
    assert_fault_free(&cfg);
}

#[test]
fn same_node_seed_replays_identically_and_seeds_differ() {
    assert_replays(node);
}

/// Found outside the simulator by the real-cluster fault suite: entries committed in the same
/// drive round in which a snapshot holding them installed were applied again on top of it
/// (a counter counted twice, acknowledged SETs lost). Node mode missed it while it installed
/// no snapshots and rarely batched inputs; with the fix reverted it is caught quickly.
#[test]
fn planted_apply_under_snapshot_is_caught() {
    let cfg = |seed| SimConfig {
        bug: Some(Bug::ApplyUnderSnapshot),
        ..node(seed, 3)
    };
    assert!(seeds_to_catch("apply-under-snapshot", cfg, 100) <= 100);
}

#[test]
fn lying_fsync_is_caught() {
    // Writes acknowledged as durable vanish in crashes: lost acknowledged samples, replicas
    // that cannot converge, or two leaders of one term (forgotten votes).
    let cfg = |seed| SimConfig {
        bug: Some(Bug::FsyncLies),
        ..node(seed, 3)
    };
    assert!(seeds_to_catch("fsync-lies", cfg, 5) <= 5);
}

/// The Raft bugs that release a message or count an entry before its sync cannot show through
/// a `Node` that syncs inline: it syncs inside `poll_output` before it hands out anything, so a
/// seed runs the same with the bug as without.
#[test]
fn inline_syncs_mask_count_unsynced_self() {
    for seed in 0..3 {
        let inline = |bug| SimConfig {
            bug,
            syncs: Syncs::Inline,
            ..node(seed, 3)
        };
        let clean = run_seed(&inline(None));
        let buggy = run_seed(&inline(Some(Bug::CountUnsyncedSelf)));
        assert_eq!(clean.trace_hash, buggy.trace_hash, "seed {seed}");
    }
}

/// Pipelined, the node hands out messages and replies while its sync runs, so a leader that
/// counts its own unsynced entry commits what a majority does not hold durably: the direct
/// check sees it at the drain where it happens.
#[test]
fn pipelined_syncs_expose_count_unsynced_self() {
    let cfg = |seed| SimConfig {
        bug: Some(Bug::CountUnsyncedSelf),
        syncs: Syncs::Pipelined,
        ..node(seed, 3)
    };
    assert!(seeds_to_catch("count-unsynced-self", cfg, 5) <= 5);
}

/// This simulator found that a leader executed every copy of a duplicated
/// `PeerBody::Forward` (a forwarded INCR applied twice, a TS.ADD answered "update is not
/// supported ... BLOCK"). The leader now remembers forward ids per follower session: with only
/// duplication as the fault, every seed is clean.
#[test]
fn duplicated_forwards_are_executed_once() {
    for seed in 0..10 {
        assert_clean(&SimConfig {
            faults: Faults::parse("duplicate").unwrap(),
            ..SimConfig::node(seed, 3)
        });
    }
}

#[test]
fn node_replay_command_names_the_mode_and_faults() {
    assert_eq!(
        node(9, 5).replay_command(),
        "cargo run -p tickdb-sim --release -- --seed 9 --nodes 5 --mode node",
        "the default faults (all) need no flag"
    );
    let quiet = SimConfig {
        faults: Faults::parse("all,-duplicate").unwrap(),
        ..SimConfig::node(9, 5)
    };
    assert_eq!(
        quiet.replay_command(),
        "cargo run -p tickdb-sim --release -- --seed 9 --nodes 5 --mode node --faults \
         network,-duplicate,partitions,crashes,drift,reconfig,pauses"
    );
}
