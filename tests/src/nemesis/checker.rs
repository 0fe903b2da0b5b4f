//! Checkers over a client history and the cluster's final state. Each returns the violations
//! it found, as sentences; an empty list is a pass.
//!
//! - [`check_series`]: every acknowledged `TS.ADD` is present with its value; nothing is
//!   present that was never attempted or that failed definitely.
//! - [`check_counters`]: each counter ends within `[acked, acked + unknown]` INCRs, and the
//!   acknowledged replies are unique and increase in real-time order.
//! - [`check_registers`]: every GET read a value some SET attempted and did not definitely
//!   fail, and each key's SET/GET history is linearizable ([`linearizable`], a Wing–Gong
//!   search in Lowe's form, as Porcupine does it) where a write of unknown outcome may or may
//!   not have taken effect.
//! - [`check_replicas`]: every replica holds the same data at the same applied index.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::history::{Call, NEVER, Op, Outcome, Reply};

/// `TS.ADD`: `finals` maps each series to its samples `(timestamp, value)` as read at the end.
pub fn check_series(ops: &[Op], finals: &BTreeMap<String, Vec<(i64, f64)>>) -> Vec<String> {
    let mut bad = Vec::new();
    // (key, ts) -> (value, outcome label)
    let mut attempted: HashMap<(&str, i64), (i64, &Op)> = HashMap::new();
    for op in ops {
        let Call::TsAdd { key, ts, value } = &op.call else {
            continue;
        };
        if attempted.insert((key, *ts), (*value, op)).is_some() {
            bad.push(format!(
                "the workload reused timestamp {ts} on {key}: the check needs unique ones"
            ));
        }
    }
    for (&(key, ts), &(value, op)) in &attempted {
        let present = finals
            .get(key)
            .and_then(|samples| samples.iter().find(|(t, _)| *t == ts));
        match (&op.outcome, present) {
            (Outcome::Ok(_), None) => bad.push(format!(
                "acknowledged sample lost: TS.ADD {key} {ts} {value} (client {}, acked at {} us)",
                op.client, op.complete_us
            )),
            (Outcome::Ok(_) | Outcome::Unknown(_), Some(&(_, v))) if v != value as f64 => bad.push(
                format!("sample {key} {ts} holds {v}, but the only write of it was {value}"),
            ),
            (Outcome::Failed(why), Some(_)) => bad.push(format!(
                "sample {key} {ts} is present, but its TS.ADD failed definitely ({why})"
            )),
            _ => {}
        }
    }
    for (key, samples) in finals {
        for &(ts, v) in samples {
            if !attempted.contains_key(&(key.as_str(), ts)) {
                bad.push(format!(
                    "sample {key} {ts} = {v} is present but was never written"
                ));
            }
        }
        let mut sorted: Vec<i64> = samples.iter().map(|(t, _)| *t).collect();
        sorted.dedup();
        if sorted.len() != samples.len() {
            bad.push(format!("series {key} lists a timestamp twice"));
        }
    }
    bad.sort();
    bad
}

/// `INCR`: `finals` maps each counter to its value read at the end (0 if absent).
pub fn check_counters(ops: &[Op], finals: &BTreeMap<String, i64>) -> Vec<String> {
    let mut bad = Vec::new();
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops {
        if let Call::Incr { key } = &op.call {
            by_key.entry(key).or_default().push(op);
        }
    }
    for key in finals.keys() {
        by_key.entry(key).or_default();
    }
    for (key, ops) in by_key {
        let acked = ops.iter().filter(|o| o.is_ok()).count() as i64;
        let unknown = ops.iter().filter(|o| o.is_unknown()).count() as i64;
        let Some(&fin) = finals.get(key) else {
            bad.push(format!("counter {key} was not read at the end"));
            continue;
        };
        if fin < acked || fin > acked + unknown {
            bad.push(format!(
                "counter {key} ends at {fin}, outside [acked {acked}, acked + unknown {}]",
                acked + unknown
            ));
        }
        let mut replies: Vec<(i64, &Op)> = ops
            .iter()
            .filter_map(|o| match o.outcome {
                Outcome::Ok(Reply::Int(n)) => Some((n, *o)),
                _ => None,
            })
            .collect();
        replies.sort_by_key(|(n, o)| (*n, o.invoke_us));
        for w in replies.windows(2) {
            if w[0].0 == w[1].0 {
                bad.push(format!(
                    "counter {key}: two INCRs (clients {} and {}) both got {}",
                    w[0].1.client, w[1].1.client, w[0].0
                ));
            }
        }
        for &(n, _) in &replies {
            if n < 1 || n > acked + unknown {
                bad.push(format!(
                    "counter {key}: an INCR got {n}, outside [1, acked + unknown {}]",
                    acked + unknown
                ));
            }
        }
        // Real-time order: an INCR that completed before another began got a smaller value.
        let mut latest: Option<&Op> = None;
        for &(n, op) in &replies {
            if let Some(l) = latest
                && l.invoke_us > op.complete_us
            {
                bad.push(format!(
                    "counter {key}: INCR got {n} and completed at {} us, before an INCR that \
                     got a smaller value began at {} us",
                    op.complete_us, l.invoke_us
                ));
            }
            if latest.is_none_or(|l| op.invoke_us > l.invoke_us) {
                latest = Some(op);
            }
        }
    }
    bad
}

/// What [`linearizable`] concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No order exists; the operation at whose completion every order failed.
    NotLinearizable {
        stuck_at: usize,
    },
    /// The search gave up after its step budget: neither a pass nor a proof of a violation.
    Inconclusive {
        steps: u64,
    },
}

/// One register operation for [`linearizable`]; values are small ids, 0 is "no value".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegOp {
    pub invoke_us: u64,
    /// [`NEVER`] for a write whose outcome is unknown.
    pub complete_us: u64,
    pub kind: RegKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegKind {
    Write(u32),
    /// The value read; 0: the key did not exist.
    Read(u32),
}

/// Whether a single register's history is linearizable, starting from "no value".
///
/// Lowe's just-in-time form of the Wing–Gong search: walk the events in time order; at an
/// invocation try to linearize that operation now (a read must see the current value); at a
/// completion, the operation must have been linearized already, else undo the last choice.
/// Visited (set of linearized operations, value) pairs are cached (by a 128-bit Zobrist hash
/// of the set) so no configuration is explored twice. A write that never completed (outcome
/// unknown) completes after everything: the search may place it anywhere after its
/// invocation, including at the very end, where it is as good as never applied.
pub fn linearizable(ops: &[RegOp], budget: u64) -> Verdict {
    let n = ops.len();
    if n == 0 {
        return Verdict::Linearizable;
    }
    // Events: 2 per op; list nodes 1..=2n, 0 the head and 2n+1 the tail.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        assert!(
            op.complete_us >= op.invoke_us,
            "op {i} completes before it begins"
        );
        events.push((op.invoke_us, true, i));
        events.push((op.complete_us, false, i));
    }
    // At equal times an invocation comes first: the two overlap, the weaker assumption.
    events.sort_by_key(|&(t, is_call, i)| (t, !is_call, i));
    let (head, tail) = (0usize, 2 * n + 1);
    let mut next: Vec<usize> = (1..=2 * n + 1).chain([tail]).collect();
    let mut prev: Vec<usize> = [head].into_iter().chain(0..=2 * n).collect();
    let mut is_call = vec![false; 2 * n + 2];
    let mut op_of = vec![0usize; 2 * n + 2];
    let mut ret_of = vec![0usize; n];
    for (pos, &(_, call, i)) in events.iter().enumerate() {
        let node = pos + 1;
        is_call[node] = call;
        op_of[node] = i;
        if !call {
            ret_of[i] = node;
        }
    }
    let mut rng = super::Rng::new(0x5eed_0f11_11ea_4b1e);
    let zobrist: Vec<u128> = (0..n)
        .map(|_| (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64()))
        .collect();

    let lift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, e: usize, r: usize| {
        next[prev[e]] = next[e];
        prev[next[e]] = prev[e];
        next[prev[r]] = next[r];
        prev[next[r]] = prev[r];
    };
    let unlift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, e: usize, r: usize| {
        next[prev[r]] = r;
        prev[next[r]] = r;
        next[prev[e]] = e;
        prev[next[e]] = e;
    };

    let mut state = 0u32;
    let mut linearized: u128 = 0;
    let mut stack: Vec<(usize, u32)> = Vec::new();
    let mut cache: HashSet<(u128, u32)> = HashSet::new();
    let mut entry = next[head];
    let mut steps = 0u64;
    while next[head] != tail {
        steps += 1;
        if steps > budget {
            return Verdict::Inconclusive { steps };
        }
        if entry != tail && is_call[entry] {
            let i = op_of[entry];
            let (fits, new_state) = match ops[i].kind {
                RegKind::Write(v) => (true, v),
                RegKind::Read(v) => (v == state, state),
            };
            if fits {
                let set = linearized ^ zobrist[i];
                if cache.insert((set, new_state)) {
                    stack.push((entry, state));
                    state = new_state;
                    linearized = set;
                    lift(&mut next, &mut prev, entry, ret_of[i]);
                    entry = next[head];
                    continue;
                }
            }
            entry = next[entry];
        } else {
            let Some((e, s)) = stack.pop() else {
                let stuck_at = if entry == tail { n - 1 } else { op_of[entry] };
                return Verdict::NotLinearizable { stuck_at };
            };
            let i = op_of[e];
            state = s;
            linearized ^= zobrist[i];
            unlift(&mut next, &mut prev, e, ret_of[i]);
            entry = next[e];
        }
    }
    Verdict::Linearizable
}

/// SET/GET: reads see only values that were written (and not definitely refused), and each
/// key's history is linearizable. `budget` bounds each key's search.
pub fn check_registers(ops: &[Op], budget: u64) -> Vec<String> {
    let mut bad = Vec::new();
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops {
        if matches!(op.call, Call::Set { .. } | Call::Get { .. }) {
            by_key.entry(op.call.key()).or_default().push(op);
        }
    }
    for (key, ops) in by_key {
        let writes: HashMap<&str, &Op> = ops
            .iter()
            .filter_map(|o| match &o.call {
                Call::Set { value, .. } => Some((value.as_str(), *o)),
                _ => None,
            })
            .collect();
        let mut read_values: HashSet<&str> = HashSet::new();
        for o in &ops {
            if let Outcome::Ok(Reply::Value(Some(v))) = &o.outcome {
                read_values.insert(v);
                match writes.get(v.as_str()) {
                    None => bad.push(format!(
                        "{key}: GET (client {}, at {} us) read {v:?}, which no SET wrote",
                        o.client, o.invoke_us
                    )),
                    Some(w) if w.is_failed() => bad.push(format!(
                        "{key}: GET (client {}, at {} us) read {v:?}, whose SET failed \
                         definitely ({})",
                        o.client,
                        o.invoke_us,
                        match &w.outcome {
                            Outcome::Failed(why) => why.as_str(),
                            _ => "",
                        }
                    )),
                    Some(_) => {}
                }
            }
        }
        // Values to small ids; a failed write is not in the history at all, and an unknown
        // write nobody read changes nothing a read could see (leaving it out is exact).
        let mut ids: HashMap<&str, u32> = HashMap::new();
        let mut reg: Vec<RegOp> = Vec::new();
        let mut source: Vec<&Op> = Vec::new();
        for o in &ops {
            let kind = match (&o.call, &o.outcome) {
                (Call::Set { value, .. }, Outcome::Ok(_)) => RegKind::Write(id_of(&mut ids, value)),
                (Call::Set { value, .. }, Outcome::Unknown(_))
                    if read_values.contains(value.as_str()) =>
                {
                    RegKind::Write(id_of(&mut ids, value))
                }
                (Call::Get { .. }, Outcome::Ok(Reply::Value(v))) => {
                    RegKind::Read(v.as_deref().map_or(0, |v| id_of(&mut ids, v)))
                }
                _ => continue,
            };
            let complete_us = if o.is_unknown() { NEVER } else { o.complete_us };
            reg.push(RegOp {
                invoke_us: o.invoke_us,
                complete_us,
                kind,
            });
            source.push(o);
        }
        match linearizable(&reg, budget) {
            Verdict::Linearizable => {}
            Verdict::NotLinearizable { stuck_at } => {
                let o = source[stuck_at];
                bad.push(format!(
                    "{key}: SET/GET history is not linearizable ({} ops); no order explains \
                     {} by client {} ({} us .. {} us) -> {:?}",
                    reg.len(),
                    o.call.name(),
                    o.client,
                    o.invoke_us,
                    o.complete_us,
                    o.outcome
                ));
            }
            Verdict::Inconclusive { steps } => bad.push(format!(
                "{key}: linearizability search gave up after {steps} steps ({} ops): \
                 neither proven nor refuted",
                reg.len()
            )),
        }
    }
    bad
}

fn id_of<'a>(ids: &mut HashMap<&'a str, u32>, value: &'a str) -> u32 {
    let next = ids.len() as u32 + 1;
    *ids.entry(value).or_insert(next)
}

/// Every replica's dump of its data, taken at the applied index it reports: all must agree.
pub fn check_replicas(dumps: &[(usize, u64, String)]) -> Vec<String> {
    let mut bad = Vec::new();
    let Some((first, applied, base)) = dumps.first() else {
        return vec!["no replica was dumped".into()];
    };
    for (node, a, dump) in &dumps[1..] {
        if a != applied {
            bad.push(format!(
                "node {} dumped at applied index {a}, node {} at {applied}",
                node + 1,
                first + 1
            ));
            continue;
        }
        if dump != base {
            let diff = base
                .lines()
                .zip(dump.lines())
                .find(|(x, y)| x != y)
                .map_or_else(
                    || "one dump is longer".to_string(),
                    |(x, y)| format!("node {}: {x:?}, node {}: {y:?}", first + 1, node + 1),
                );
            bad.push(format!(
                "nodes {} and {} differ at applied index {applied}: {diff}",
                first + 1,
                node + 1
            ));
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: usize, call: Call, invoke_us: u64, complete_us: u64, outcome: Outcome) -> Op {
        Op {
            client,
            node: 0,
            call,
            invoke_us,
            complete_us,
            outcome,
        }
    }

    fn set(client: usize, v: &str, t: (u64, u64), outcome: Outcome) -> Op {
        let call = Call::Set {
            key: "r".into(),
            value: v.into(),
        };
        let done = if matches!(outcome, Outcome::Unknown(_)) {
            NEVER
        } else {
            t.1
        };
        op(client, call, t.0, done, outcome)
    }

    fn get(client: usize, v: Option<&str>, t: (u64, u64)) -> Op {
        let call = Call::Get { key: "r".into() };
        let outcome = Outcome::Ok(Reply::Value(v.map(str::to_string)));
        op(client, call, t.0, t.1, outcome)
    }

    fn ok() -> Outcome {
        Outcome::Ok(Reply::Done)
    }

    fn unknown() -> Outcome {
        Outcome::Unknown("TIMEOUT".into())
    }

    fn failed() -> Outcome {
        Outcome::Failed("CLUSTERDOWN".into())
    }

    const BUDGET: u64 = 1_000_000;

    #[test]
    fn sequential_and_concurrent_register_histories_pass() {
        let h = [
            get(0, None, (0, 1)),
            set(0, "a", (2, 3), ok()),
            get(1, Some("a"), (4, 5)),
            // b and c overlap the reads: either order, each read consistent with one.
            set(0, "b", (6, 20), ok()),
            set(1, "c", (7, 21), ok()),
            get(2, Some("c"), (8, 9)),
            get(2, Some("b"), (10, 11)),
            get(3, Some("b"), (22, 23)),
        ];
        assert_eq!(check_registers(&h, BUDGET), Vec::<String>::new());
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_rejected() {
        let h = [
            set(0, "a", (0, 1), ok()),
            set(0, "b", (2, 3), ok()),
            get(1, Some("a"), (4, 5)),
        ];
        let bad = check_registers(&h, BUDGET);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(bad[0].contains("not linearizable"), "{bad:?}");
    }

    #[test]
    fn a_new_then_old_read_inversion_is_rejected() {
        // b is written concurrently with both reads, but once a read saw b, a later read
        // cannot see a again.
        let h = [
            set(0, "a", (0, 1), ok()),
            set(0, "b", (2, 100), ok()),
            get(1, Some("b"), (10, 11)),
            get(2, Some("a"), (20, 21)),
        ];
        assert!(!check_registers(&h, BUDGET).is_empty());
        // Reversed (old then new) is fine.
        let h = [
            set(0, "a", (0, 1), ok()),
            set(0, "b", (2, 100), ok()),
            get(1, Some("a"), (10, 11)),
            get(2, Some("b"), (20, 21)),
        ];
        assert_eq!(check_registers(&h, BUDGET), Vec::<String>::new());
    }

    #[test]
    fn nil_after_a_completed_write_is_rejected() {
        let h = [set(0, "a", (0, 1), ok()), get(1, None, (2, 3))];
        assert!(!check_registers(&h, BUDGET).is_empty());
    }

    #[test]
    fn unknown_writes_may_or_may_not_take_effect() {
        // Read after it: fine.
        let h = [
            set(0, "a", (0, 1), ok()),
            set(1, "x", (2, 3), unknown()),
            get(2, Some("x"), (50, 51)),
            get(2, Some("x"), (60, 61)),
        ];
        assert_eq!(check_registers(&h, BUDGET), Vec::<String>::new());
        // Never seen: fine too.
        let h = [
            set(0, "a", (0, 1), ok()),
            set(1, "x", (2, 3), unknown()),
            get(2, Some("a"), (50, 51)),
        ];
        assert_eq!(check_registers(&h, BUDGET), Vec::<String>::new());
        // But not before it was invoked.
        let h = [
            set(0, "a", (0, 1), ok()),
            get(2, Some("x"), (5, 6)),
            set(1, "x", (10, 11), unknown()),
        ];
        assert!(!check_registers(&h, BUDGET).is_empty());
        // Nor undone once seen and overwritten by nobody.
        let h = [
            set(0, "a", (0, 1), ok()),
            set(1, "x", (2, 3), unknown()),
            get(2, Some("x"), (50, 51)),
            get(2, Some("a"), (60, 61)),
        ];
        assert!(!check_registers(&h, BUDGET).is_empty());
    }

    #[test]
    fn reads_of_failed_or_unwritten_values_are_rejected() {
        let h = [set(0, "a", (0, 1), failed()), get(1, Some("a"), (2, 3))];
        let bad = check_registers(&h, BUDGET);
        assert!(
            bad.iter().any(|b| b.contains("failed definitely")),
            "{bad:?}"
        );
        let h = [get(1, Some("ghost"), (2, 3))];
        let bad = check_registers(&h, BUDGET);
        assert!(bad.iter().any(|b| b.contains("no SET wrote")), "{bad:?}");
    }

    #[test]
    fn the_search_reports_when_it_gives_up() {
        let h: Vec<RegOp> = (0..50)
            .map(|i| RegOp {
                invoke_us: 0,
                complete_us: 1000,
                kind: RegKind::Write(i + 1),
            })
            .chain([RegOp {
                invoke_us: 2000,
                complete_us: 2001,
                kind: RegKind::Read(999),
            }])
            .collect();
        assert!(matches!(
            linearizable(&h, 100),
            Verdict::Inconclusive { .. }
        ));
    }

    #[test]
    fn many_concurrent_writes_resolve_quickly() {
        // 12 writers overlapping, then a read of one of them: exponential without the cache.
        let mut h: Vec<RegOp> = (0..12)
            .map(|i| RegOp {
                invoke_us: i,
                complete_us: 100 + i,
                kind: RegKind::Write(i as u32 + 1),
            })
            .collect();
        h.push(RegOp {
            invoke_us: 200,
            complete_us: 201,
            kind: RegKind::Read(5),
        });
        assert_eq!(linearizable(&h, 10_000_000), Verdict::Linearizable);
        h.push(RegOp {
            invoke_us: 300,
            complete_us: 301,
            kind: RegKind::Read(6),
        });
        assert!(matches!(
            linearizable(&h, 10_000_000),
            Verdict::NotLinearizable { .. }
        ));
    }

    /// A history made by a real register: `clients` clients one op at a time, each op taking
    /// effect at a random point inside its interval (an unknown write: at such a point or
    /// never); reads return the value at their point. Linearizable by construction.
    fn generated(seed: u64, clients: usize, per_client: usize) -> Vec<Op> {
        let mut rng = super::super::Rng::new(seed);
        // (point, client, op index): build intervals first, then apply effects in point order.
        let mut ops = Vec::new();
        let mut points = Vec::new();
        for c in 0..clients {
            let mut t = rng.below(50);
            for n in 0..per_client {
                let invoke = t;
                let complete = invoke + 1 + rng.below(200);
                let point = invoke + rng.below(complete - invoke + 1);
                let write = rng.below(2) == 0;
                let unknown = write && rng.below(10) == 0;
                let applies = !unknown || rng.below(2) == 0;
                let call = if write {
                    Call::Set {
                        key: "r".into(),
                        value: format!("c{c}-{n}"),
                    }
                } else {
                    Call::Get { key: "r".into() }
                };
                let outcome = if unknown {
                    Outcome::Unknown("TIMEOUT".into())
                } else {
                    Outcome::Ok(Reply::Done)
                };
                let complete_us = if unknown { NEVER } else { complete };
                ops.push(op(c, call, invoke, complete_us, outcome));
                if applies {
                    points.push((point, ops.len() - 1));
                }
                t = complete + 1 + rng.below(20);
            }
        }
        points.sort();
        let mut value: Option<String> = None;
        for (_, i) in points {
            match &ops[i].call {
                Call::Set { value: v, .. } => value = Some(v.clone()),
                Call::Get { .. } => ops[i].outcome = Outcome::Ok(Reply::Value(value.clone())),
                _ => unreachable!(),
            }
        }
        ops
    }

    #[test]
    fn generated_linearizable_histories_pass_and_corrupted_ones_fail() {
        for seed in 0..30 {
            let h = generated(seed, 8, 60);
            assert_eq!(
                check_registers(&h, BUDGET * 10),
                Vec::<String>::new(),
                "seed {seed}"
            );
            // Make one read that saw a value see the value before the previous one instead:
            // usually impossible; when it is a stale read the checker must say so.
            let reads: Vec<usize> = (0..h.len())
                .filter(|&i| matches!(&h[i].outcome, Outcome::Ok(Reply::Value(Some(_)))))
                .collect();
            let mut bad = h.clone();
            let last = *reads.last().expect("some reads");
            bad[last].outcome = Outcome::Ok(Reply::Value(None));
            assert!(
                !check_registers(&bad, BUDGET * 10).is_empty(),
                "seed {seed}: a nil read after values were written passed"
            );
        }
    }

    #[test]
    fn a_long_history_is_checked_within_budget() {
        let h = generated(99, 8, 400);
        let t = std::time::Instant::now();
        assert_eq!(check_registers(&h, 50_000_000), Vec::<String>::new());
        assert!(
            t.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            t.elapsed()
        );
    }

    fn incr(client: usize, t: (u64, u64), outcome: Outcome) -> Op {
        let done = if matches!(outcome, Outcome::Unknown(_)) {
            NEVER
        } else {
            t.1
        };
        op(client, Call::Incr { key: "c".into() }, t.0, done, outcome)
    }

    fn finals(n: i64) -> BTreeMap<String, i64> {
        BTreeMap::from([("c".to_string(), n)])
    }

    #[test]
    fn counters_within_bounds_and_in_order_pass() {
        let h = [
            incr(0, (0, 1), Outcome::Ok(Reply::Int(1))),
            incr(1, (2, 3), unknown()),
            incr(0, (4, 5), failed()),
            incr(2, (6, 7), Outcome::Ok(Reply::Int(3))),
        ];
        assert_eq!(check_counters(&h, &finals(3)), Vec::<String>::new());
        assert_eq!(check_counters(&h, &finals(2)), Vec::<String>::new());
    }

    #[test]
    fn counters_outside_bounds_duplicates_and_inversions_are_rejected() {
        let h = [
            incr(0, (0, 1), Outcome::Ok(Reply::Int(1))),
            incr(1, (2, 3), unknown()),
            incr(2, (6, 7), Outcome::Ok(Reply::Int(2))),
        ];
        // Applied twice: above acked + unknown.
        assert!(!check_counters(&h, &finals(4)).is_empty());
        // An acknowledged increment lost.
        assert!(!check_counters(&h, &finals(1)).is_empty());
        // Two acknowledged INCRs with the same reply.
        let dup = [
            incr(0, (0, 1), Outcome::Ok(Reply::Int(1))),
            incr(1, (2, 3), Outcome::Ok(Reply::Int(1))),
        ];
        let bad = check_counters(&dup, &finals(2));
        assert!(bad.iter().any(|b| b.contains("both got 1")), "{bad:?}");
        // The later INCR got the smaller value.
        let inv = [
            incr(0, (0, 1), Outcome::Ok(Reply::Int(2))),
            incr(1, (5, 6), Outcome::Ok(Reply::Int(1))),
        ];
        let bad = check_counters(&inv, &finals(2));
        assert!(bad.iter().any(|b| b.contains("before an INCR")), "{bad:?}");
        // Not read at the end.
        assert!(!check_counters(&h, &BTreeMap::new()).is_empty());
    }

    fn add(ts: i64, outcome: Outcome) -> Op {
        let call = Call::TsAdd {
            key: "s".into(),
            ts,
            value: ts * 10,
        };
        op(0, call, 0, 1, outcome)
    }

    #[test]
    fn series_checks_catch_lost_phantom_and_failed_samples() {
        let h = [
            add(1, Outcome::Ok(Reply::Int(1))),
            add(2, unknown()),
            add(3, failed()),
        ];
        let good = BTreeMap::from([("s".to_string(), vec![(1, 10.0)])]);
        assert_eq!(check_series(&h, &good), Vec::<String>::new());
        let good = BTreeMap::from([("s".to_string(), vec![(1, 10.0), (2, 20.0)])]);
        assert_eq!(check_series(&h, &good), Vec::<String>::new());
        let lost = BTreeMap::from([("s".to_string(), vec![(2, 20.0)])]);
        assert!(check_series(&h, &lost)[0].contains("lost"));
        let failed = BTreeMap::from([("s".to_string(), vec![(1, 10.0), (3, 30.0)])]);
        assert!(check_series(&h, &failed)[0].contains("failed definitely"));
        let phantom = BTreeMap::from([("s".to_string(), vec![(1, 10.0), (9, 1.0)])]);
        assert!(check_series(&h, &phantom)[0].contains("never written"));
        let wrong = BTreeMap::from([("s".to_string(), vec![(1, 11.0)])]);
        assert!(check_series(&h, &wrong)[0].contains("holds"));
    }

    #[test]
    fn replicas_must_agree_at_equal_applied_index() {
        let same = [(0, 7, "a\nb\n".to_string()), (1, 7, "a\nb\n".to_string())];
        assert!(check_replicas(&same).is_empty());
        let differ = [(0, 7, "a\nb\n".to_string()), (1, 7, "a\nc\n".to_string())];
        assert!(check_replicas(&differ)[0].contains("differ"));
        let behind = [(0, 7, "a\n".to_string()), (1, 6, "a\n".to_string())];
        assert!(check_replicas(&behind)[0].contains("applied index"));
    }
}
