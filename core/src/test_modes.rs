//! Test-only: scenarios written once and run with inline and with pipelined syncs.
//!
//! A test harness that builds nodes asks [`pipelined`] and calls `pipeline_syncs` on each
//! node when it says so; a test runs its scenario pipelined through [`in_pipelined`]. Each
//! harness decides when a sync it was asked for completes (see its drain).

use std::cell::Cell;

thread_local! {
    /// Whether nodes built on this test's thread pipeline their syncs.
    static PIPELINED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `scenario` with pipelined syncs (every test runs on a thread of its own).
pub(crate) fn in_pipelined(scenario: fn()) {
    PIPELINED.set(true);
    scenario();
}

/// Whether nodes built now should pipeline their syncs.
pub(crate) fn pipelined() -> bool {
    PIPELINED.get()
}
