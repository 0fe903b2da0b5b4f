//! The real-cluster fault suite: three `tickdb` processes in network namespaces under a seeded
//! nemesis, with client histories checked (see `tickdb_tests::nemesis` and docs/nemesis.md).
//!
//! `nemesis` is the test; it re-runs this binary's `nemesis_inner` inside the client network
//! namespace it made. About 60 s by default (`make test`); `make nemesis SECONDS=N SEED=S`
//! for a long or replayed run.

use tickdb_tests::nemesis;

#[test]
fn nemesis() {
    nemesis::outer("nemesis_inner");
}

/// Run only by `nemesis`, inside the namespaces it made.
#[test]
#[ignore = "run by the `nemesis` test inside its client network namespace"]
fn nemesis_inner() {
    assert!(
        nemesis::is_inner(),
        "run by the `nemesis` test (it makes the network namespaces first)"
    );
    nemesis::inner();
}
