//! Client histories and a per-key linearizability checker (Wing & Gong's search with Lowe's
//! memoization of (linearized set, state) pairs).
//!
//! An operation whose outcome is unknown (the client timed out, the node crashed) may or may
//! not have taken effect: the search may linearize it anywhere after its invocation, or never.
//! Failed operations (refused by a non-leader) never happened and are left out.

use std::collections::{BTreeMap, HashSet};

use crate::kv::OpKind;

/// What the client learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Completed with this result (the value after SET/INCR, the value read by GET).
    Ok(Option<i64>),
    /// Definitely did not happen.
    Failed,
    /// May or may not have happened.
    Unknown,
}

/// One client operation in the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistOp {
    pub client: u32,
    pub key: u8,
    pub op: OpKind,
    /// Simulated nanoseconds.
    pub invoke: u64,
    pub complete: u64,
    pub outcome: Outcome,
}

/// Search steps allowed per key before the check gives up as inconclusive.
pub(crate) const MAX_SEARCH_STEPS: u64 = 2_000_000;

/// The result of checking one history.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// The search budget ran out (counted, not a failure).
    Inconclusive,
    /// No linearization exists for this key.
    Violation {
        key: u8,
        detail: String,
    },
}

/// Checks every key of `history` independently (linearizability is compositional).
pub fn check(history: &[HistOp]) -> Verdict {
    let mut by_key: BTreeMap<u8, Vec<HistOp>> = BTreeMap::new();
    for op in history {
        let keep = match (op.op, op.outcome) {
            (_, Outcome::Failed) | (OpKind::Get, Outcome::Unknown) => false,
            (_, Outcome::Ok(_)) | (_, Outcome::Unknown) => true,
        };
        if keep {
            by_key.entry(op.key).or_default().push(*op);
        }
    }
    let mut inconclusive = false;
    for (key, mut ops) in by_key {
        ops.sort_by_key(|o| (o.invoke, o.complete));
        match check_key(&ops) {
            Some(true) => {}
            Some(false) => {
                return Verdict::Violation {
                    key,
                    detail: describe(&ops),
                };
            }
            None => inconclusive = true,
        }
    }
    if inconclusive {
        Verdict::Inconclusive
    } else {
        Verdict::Linearizable
    }
}

fn describe(ops: &[HistOp]) -> String {
    let tail = ops.len().saturating_sub(12);
    let lines: Vec<String> = ops[tail..]
        .iter()
        .map(|o| {
            format!(
                "  client {} {:?} [{} ms .. {} ms] -> {:?}",
                o.client,
                o.op,
                o.invoke / 1_000_000,
                o.complete / 1_000_000,
                o.outcome
            )
        })
        .collect();
    format!(
        "last {} of {} ops:\n{}",
        ops.len() - tail,
        ops.len(),
        lines.join("\n")
    )
}

/// The state after `op`, or `None` if `op` cannot happen in `state` with its observed result.
fn step(state: Option<i64>, op: &HistOp) -> Option<Option<i64>> {
    let next = match op.op {
        OpKind::Set(v) => Some(v),
        OpKind::Incr => Some(state.unwrap_or(0) + 1),
        OpKind::Get => state,
    };
    match op.outcome {
        Outcome::Ok(r) if r != next => None,
        _ => Some(next),
    }
}

struct Search<'a> {
    ops: &'a [HistOp],
    done: Vec<u64>,
    seen: HashSet<(Vec<u64>, Option<i64>)>,
    steps: u64,
}

impl Search<'_> {
    fn is_done(&self, i: usize) -> bool {
        self.done[i / 64] & (1 << (i % 64)) != 0
    }

    fn flip(&mut self, i: usize) {
        self.done[i / 64] ^= 1 << (i % 64);
    }

    /// `Some(found)`, or `None` when the budget ran out.
    fn run(&mut self, state: Option<i64>, remaining_ok: usize) -> Option<bool> {
        if remaining_ok == 0 {
            return Some(true);
        }
        self.steps += 1;
        if self.steps > MAX_SEARCH_STEPS {
            return None;
        }
        if !self.seen.insert((self.done.clone(), state)) {
            return Some(false);
        }
        // Only operations invoked before the earliest pending completion can go next.
        let horizon = (0..self.ops.len())
            .filter(|&i| !self.is_done(i) && matches!(self.ops[i].outcome, Outcome::Ok(_)))
            .map(|i| self.ops[i].complete)
            .min()
            .unwrap_or(u64::MAX);
        for i in 0..self.ops.len() {
            let op = self.ops[i];
            if op.invoke > horizon {
                break;
            }
            if self.is_done(i) {
                continue;
            }
            let Some(next) = step(state, &op) else {
                continue;
            };
            let ok = usize::from(matches!(op.outcome, Outcome::Ok(_)));
            self.flip(i);
            let found = self.run(next, remaining_ok - ok);
            self.flip(i);
            match found {
                Some(true) => return Some(true),
                None => return None,
                Some(false) => {}
            }
        }
        Some(false)
    }
}

fn check_key(ops: &[HistOp]) -> Option<bool> {
    let remaining_ok = ops
        .iter()
        .filter(|o| matches!(o.outcome, Outcome::Ok(_)))
        .count();
    let mut search = Search {
        ops,
        done: vec![0; ops.len().div_ceil(64)],
        seen: HashSet::new(),
        steps: 0,
    };
    search.run(None, remaining_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: u32, op: OpKind, invoke: u64, complete: u64, outcome: Outcome) -> HistOp {
        HistOp {
            client,
            key: 0,
            op,
            invoke,
            complete,
            outcome,
        }
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let h = [
            op(1, OpKind::Set(5), 0, 1, Outcome::Ok(Some(5))),
            op(1, OpKind::Incr, 2, 3, Outcome::Ok(Some(6))),
            op(2, OpKind::Get, 4, 5, Outcome::Ok(Some(6))),
        ];
        assert_eq!(check(&h), Verdict::Linearizable);
    }

    #[test]
    fn stale_read_is_a_violation() {
        let h = [
            op(1, OpKind::Set(5), 0, 1, Outcome::Ok(Some(5))),
            op(1, OpKind::Set(7), 2, 3, Outcome::Ok(Some(7))),
            op(2, OpKind::Get, 4, 5, Outcome::Ok(Some(5))),
        ];
        assert!(matches!(check(&h), Verdict::Violation { .. }));
    }

    #[test]
    fn lost_acknowledged_write_is_a_violation() {
        let h = [
            op(1, OpKind::Incr, 0, 1, Outcome::Ok(Some(1))),
            op(2, OpKind::Get, 4, 5, Outcome::Ok(None)),
        ];
        assert!(matches!(check(&h), Verdict::Violation { .. }));
    }

    #[test]
    fn unknown_writes_may_or_may_not_happen_and_concurrency_allows_reordering() {
        let h = [
            op(1, OpKind::Set(1), 0, 0, Outcome::Unknown),
            op(2, OpKind::Get, 10, 11, Outcome::Ok(None)),
            op(3, OpKind::Get, 12, 13, Outcome::Ok(Some(1))),
            op(2, OpKind::Incr, 20, 30, Outcome::Ok(Some(2))),
            op(3, OpKind::Get, 21, 22, Outcome::Ok(Some(1))),
            op(1, OpKind::Set(9), 40, 0, Outcome::Failed),
        ];
        assert_eq!(check(&h), Verdict::Linearizable);
    }
}
