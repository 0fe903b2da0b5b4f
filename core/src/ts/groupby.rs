//! `GROUPBY label REDUCE reducer` of `TS.MRANGE`/`TS.MREVRANGE`.
//!
//! # Semantics (redis.io `TS.MRANGE` page)
//!
//! - Series are grouped by the value of `label`; series without the label are left out.
//! - Within a group, samples with the same timestamp are reduced to one; a timestamp present in
//!   only some series reduces over those. When `AGGREGATION` is also given, the engine
//!   aggregates each series first and passes the aggregated rows here.
//! - Reducers: `avg sum min max range count std.p std.s var.p var.s`, each over the non-NaN
//!   values only (the docs list no `first`/`last`/`twa` reducer). When every value at a
//!   timestamp is NaN (e.g. `EMPTY` buckets), `count` is 0 and every other reducer gives NaN
//!   (our choice; the docs are silent). `std.s`/`var.s` of one value is 0, as in [`aggregate`].
//! - A group is named `label=value`; its reply labels are `(label, value)`, `("__reducer__",
//!   reducer name)` and `("__source__", source keys joined by ",")` — [`GroupRows::reply_labels`]
//!   (with `WITHLABELS`; the engine picks what `SELECTED_LABELS` asks for).
//! - Groups are ordered by label value, bytewise (the docs' examples are consistent with it).
//!   Source keys keep the order the series were passed in; the engine should pass them sorted
//!   by key. Samples come out oldest first, or newest first with `reverse` (`TS.MREVRANGE`).
//!
//! [`aggregate`]: super::aggregate

use std::collections::BTreeMap;

use super::aggregate::{AggError, Aggregator, Moments};

/// The reducer names the docs allow after `REDUCE`.
const REDUCERS: [Aggregator; 12] = [
    Aggregator::Avg,
    Aggregator::Sum,
    Aggregator::Min,
    Aggregator::Max,
    Aggregator::Range,
    Aggregator::Count,
    Aggregator::CountNan,
    Aggregator::CountAll,
    Aggregator::StdP,
    Aggregator::StdS,
    Aggregator::VarP,
    Aggregator::VarS,
];

/// A `REDUCE` function: the subset of [`Aggregator`]s that makes sense across series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reducer(Aggregator);

impl Reducer {
    /// Parses a reducer name, case-insensitively.
    pub fn parse(name: &[u8]) -> Result<Self, AggError> {
        let agg = Aggregator::parse(name)?;
        Self::try_from(agg)
    }

    /// The lowercase name, as reported in `__reducer__`.
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// The underlying aggregation function.
    pub fn aggregator(self) -> Aggregator {
        self.0
    }

    /// Reduces the values at one timestamp, ignoring NaN.
    pub fn reduce(self, values: impl IntoIterator<Item = f64>) -> f64 {
        let mut acc = NonNan::default();
        values.into_iter().for_each(|v| acc.push(v));
        acc.value(self.0)
    }
}

impl TryFrom<Aggregator> for Reducer {
    type Error = AggError;

    fn try_from(agg: Aggregator) -> Result<Self, AggError> {
        if REDUCERS.contains(&agg) {
            Ok(Self(agg))
        } else {
            Err(AggError::UnknownAggregator)
        }
    }
}

/// Moments over the non-NaN values at one timestamp (none yet: `None`), and how many NaN
/// values there were (for `countNaN`/`countAll`).
#[derive(Clone, Copy, Debug, Default)]
struct NonNan {
    moments: Option<Moments>,
    nan: u64,
}

impl NonNan {
    fn push(&mut self, v: f64) {
        if v.is_nan() {
            self.nan += 1;
            return;
        }
        match &mut self.moments {
            Some(m) => m.push(v),
            None => self.moments = Some(Moments::new(v)),
        }
    }

    fn value(&self, agg: Aggregator) -> f64 {
        let count = self.moments.map_or(0, |m| m.count);
        match (agg, &self.moments) {
            (Aggregator::CountNan, _) => self.nan as f64,
            (Aggregator::CountAll, _) => (self.nan + count) as f64,
            (Aggregator::Count, None) => 0.0,
            (_, None) => f64::NAN,
            // Reducer::try_from admits only moment-based reducers and the NaN counts.
            (_, Some(m)) => m.value(agg).unwrap_or(f64::NAN),
        }
    }
}

/// One series' rows as the engine read (and maybe aggregated) them.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesRows {
    /// The series key.
    pub key: Vec<u8>,
    /// Its labels, names unique.
    pub labels: Vec<(Vec<u8>, Vec<u8>)>,
    /// Its rows, in strictly monotonic timestamp order (either direction).
    pub samples: Vec<(u64, f64)>,
}

/// One group of the reply.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupRows {
    /// `label=value`, the group's reported name.
    pub name: Vec<u8>,
    /// The `GROUPBY` label.
    pub label: Vec<u8>,
    /// The shared value of the label.
    pub value: Vec<u8>,
    /// The reducer.
    pub reducer: Reducer,
    /// Keys of the series in the group, in input order.
    pub sources: Vec<Vec<u8>>,
    /// Labels every series of the group has with the same value, sorted by name: what
    /// `SELECTED_LABELS` may report (a selected label missing here is replied as null).
    pub shared_labels: Vec<(Vec<u8>, Vec<u8>)>,
    /// Reduced rows, oldest first (newest first with `reverse`).
    pub samples: Vec<(u64, f64)>,
}

impl GroupRows {
    /// The labels reported with `WITHLABELS`: the group label, `__reducer__`, `__source__`.
    pub fn reply_labels(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        vec![
            (self.label.clone(), self.value.clone()),
            (
                b"__reducer__".to_vec(),
                self.reducer.name().as_bytes().to_vec(),
            ),
            (b"__source__".to_vec(), self.sources.join(&b","[..])),
        ]
    }
}

/// One group while building.
#[derive(Default)]
struct Group {
    sources: Vec<Vec<u8>>,
    /// Labels shared by every member so far; `None` before the first member.
    shared: Option<Vec<(Vec<u8>, Vec<u8>)>>,
    rows: BTreeMap<u64, NonNan>,
}

/// Groups `series` by `label` and reduces each group's samples per timestamp.
pub fn group(
    series: Vec<SeriesRows>,
    label: &[u8],
    reducer: Reducer,
    reverse: bool,
) -> Vec<GroupRows> {
    let mut groups: BTreeMap<Vec<u8>, Group> = BTreeMap::new();
    for s in series {
        let Some((_, value)) = s.labels.iter().find(|(l, _)| l == label) else {
            continue;
        };
        let g = groups.entry(value.clone()).or_default();
        g.sources.push(s.key);
        match &mut g.shared {
            Some(shared) => shared.retain(|pair| s.labels.contains(pair)),
            None => {
                let mut labels = s.labels;
                labels.sort();
                g.shared = Some(labels);
            }
        }
        for (ts, v) in s.samples {
            g.rows.entry(ts).or_default().push(v);
            // A NaN still opens the timestamp: its row is reported (count 0 / NaN).
        }
    }
    groups
        .into_iter()
        .map(|(value, g)| {
            let mut samples: Vec<(u64, f64)> = g
                .rows
                .into_iter()
                .map(|(ts, m)| (ts, m.value(reducer.0)))
                .collect();
            if reverse {
                samples.reverse();
            }
            let mut name = label.to_vec();
            name.push(b'=');
            name.extend_from_slice(&value);
            GroupRows {
                name,
                label: label.to_vec(),
                value,
                reducer,
                sources: g.sources,
                shared_labels: g.shared.unwrap_or_default(),
                samples,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn series(key: &str, labels: &[(&str, &str)], samples: &[(u64, f64)]) -> SeriesRows {
        SeriesRows {
            key: key.as_bytes().to_vec(),
            labels: labels
                .iter()
                .map(|(l, v)| (l.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
            samples: samples.to_vec(),
        }
    }

    fn wind() -> Vec<SeriesRows> {
        vec![
            series(
                "wind:1",
                &[("country", "uk")],
                &[(1, 12.0), (2, 14.0), (3, 10.0)],
            ),
            series(
                "wind:2",
                &[("country", "uk")],
                &[(1, 18.0), (2, 21.0), (3, 24.0)],
            ),
            series(
                "wind:3",
                &[("country", "us")],
                &[(1, 5.0), (2, 4.0), (3, 8.0)],
            ),
            series(
                "wind:4",
                &[("country", "us")],
                &[(1, 20.0), (2, 25.0), (3, 18.0)],
            ),
            series("other", &[("kind", "x")], &[(1, 1000.0)]),
        ]
    }

    #[test]
    fn reducer_names() {
        for name in [
            "avg", "SUM", "min", "max", "range", "count", "countnan", "countAll", "std.p", "std.s",
            "var.p", "var.s",
        ] {
            let r = Reducer::parse(name.as_bytes()).unwrap();
            assert_eq!(r.name(), name.to_lowercase());
        }
        for name in ["first", "last", "twa", "median"] {
            assert_eq!(
                Reducer::parse(name.as_bytes()),
                Err(AggError::UnknownAggregator)
            );
        }
        assert_eq!(
            Reducer::parse(b"max").unwrap().aggregator(),
            Aggregator::Max
        );
    }

    /// redis.io time series page, "Aggregation across timeseries".
    #[test]
    fn docs_wind_example() {
        let max = group(wind(), b"country", Reducer::parse(b"max").unwrap(), false);
        assert_eq!(max.len(), 2);
        assert_eq!(max[0].name, b"country=uk");
        assert_eq!(max[0].samples, vec![(1, 18.0), (2, 21.0), (3, 24.0)]);
        assert_eq!(max[1].name, b"country=us");
        assert_eq!(max[1].samples, vec![(1, 20.0), (2, 25.0), (3, 18.0)]);
        let avg = group(wind(), b"country", Reducer::parse(b"avg").unwrap(), false);
        assert_eq!(avg[0].samples, vec![(1, 15.0), (2, 17.5), (3, 17.0)]);
        assert_eq!(avg[1].samples, vec![(1, 12.5), (2, 14.5), (3, 13.0)]);
        assert_eq!(avg[1].sources, vec![b"wind:3".to_vec(), b"wind:4".to_vec()]);
    }

    /// redis.io `TS.MRANGE`, "Retrieve maximum stock price per timestamp".
    #[test]
    fn docs_stock_example_labels() {
        let s = vec![
            series(
                "stock:A",
                &[("type", "stock"), ("name", "A")],
                &[(1000, 100.0), (1010, 110.0), (1020, 120.0)],
            ),
            series(
                "stock:B",
                &[("type", "stock"), ("name", "B")],
                &[(1000, 120.0), (1010, 110.0), (1020, 100.0)],
            ),
        ];
        let g = group(s, b"type", Reducer::parse(b"max").unwrap(), true);
        assert_eq!(g.len(), 1);
        assert_eq!(
            g[0].samples,
            vec![(1020, 120.0), (1010, 110.0), (1000, 120.0)]
        );
        let want: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b"type".to_vec(), b"stock".to_vec()),
            (b"__reducer__".to_vec(), b"max".to_vec()),
            (b"__source__".to_vec(), b"stock:A,stock:B".to_vec()),
        ];
        assert_eq!(g[0].reply_labels(), want);
        assert_eq!(
            g[0].shared_labels,
            vec![(b"type".to_vec(), b"stock".to_vec())]
        );
    }

    #[test]
    fn partial_timestamps_and_nan() {
        let s = vec![
            series("a", &[("g", "1")], &[(1, 1.0), (2, f64::NAN), (3, 3.0)]),
            series("b", &[("g", "1")], &[(2, f64::NAN), (3, 5.0), (4, 7.0)]),
        ];
        let count = group(s.clone(), b"g", Reducer::parse(b"count").unwrap(), false);
        assert_eq!(
            count[0].samples,
            vec![(1, 1.0), (2, 0.0), (3, 2.0), (4, 1.0)]
        );
        let sum = group(s.clone(), b"g", Reducer::parse(b"sum").unwrap(), false);
        assert!(sum[0].samples[1].1.is_nan());
        assert_eq!(sum[0].samples[2], (3, 8.0));
        let var = group(s, b"g", Reducer::parse(b"var.s").unwrap(), false);
        assert_eq!(var[0].samples[0], (1, 0.0));
        assert_eq!(var[0].samples[2], (3, 2.0));
    }

    #[test]
    fn reducers_by_hand() {
        let vals = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0, f64::NAN];
        let r = |n: &str| Reducer::parse(n.as_bytes()).unwrap().reduce(vals);
        assert_eq!(r("avg"), 5.0);
        assert_eq!(r("sum"), 40.0);
        assert_eq!(r("min"), 2.0);
        assert_eq!(r("max"), 9.0);
        assert_eq!(r("range"), 7.0);
        assert_eq!(r("count"), 8.0);
        assert_eq!(r("var.p"), 4.0);
        assert_eq!(r("std.p"), 2.0);
        assert!((r("var.s") - 32.0 / 7.0).abs() < 1e-12);
        assert!((r("std.s") - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert!(Reducer::parse(b"min").unwrap().reduce([f64::NAN]).is_nan());
        // Redis 8.6: countNaN counts the NaN values, countAll every value.
        assert_eq!(r("countNaN"), 1.0);
        assert_eq!(r("countall"), 9.0);
        assert_eq!(Reducer::parse(b"count").unwrap().reduce([]), 0.0);
    }

    fn naive(r: Aggregator, vals: &[f64]) -> f64 {
        let nan = vals.iter().filter(|v| v.is_nan()).count() as f64;
        match r {
            Aggregator::CountNan => return nan,
            Aggregator::CountAll => return vals.len() as f64,
            _ => {}
        }
        let vals: Vec<f64> = vals.iter().copied().filter(|v| !v.is_nan()).collect();
        if vals.is_empty() {
            return if r == Aggregator::Count {
                0.0
            } else {
                f64::NAN
            };
        }
        let n = vals.len() as f64;
        let mean = vals.iter().sum::<f64>() / n;
        let ss: f64 = vals.iter().map(|v| (v - mean).powi(2)).sum();
        let max = vals.iter().copied().fold(f64::MIN, f64::max);
        let min = vals.iter().copied().fold(f64::MAX, f64::min);
        let var_s = if vals.len() < 2 { 0.0 } else { ss / (n - 1.0) };
        match r {
            Aggregator::Avg => mean,
            Aggregator::Sum => vals.iter().sum(),
            Aggregator::Min => min,
            Aggregator::Max => max,
            Aggregator::Range => max - min,
            Aggregator::Count => n,
            Aggregator::StdP => (ss / n).sqrt(),
            Aggregator::StdS => var_s.sqrt(),
            Aggregator::VarP => ss / n,
            Aggregator::VarS => var_s,
            _ => unreachable!(),
        }
    }

    proptest! {
        #[test]
        fn group_agrees_with_the_naive_model(
            input in proptest::collection::vec(
                (
                    proptest::option::of(proptest::sample::select(vec!["p", "q", "r"])),
                    proptest::sample::select(vec!["1", "2"]),
                    proptest::collection::btree_map(0u64..20, prop_oneof![9 => (-100i32..100).prop_map(f64::from), 1 => Just(f64::NAN)], 0..8),
                ),
                0..8,
            ),
            reducer in proptest::sample::select(REDUCERS.to_vec()),
            reverse in any::<bool>(),
        ) {
            let rows: Vec<SeriesRows> = input
                .iter()
                .enumerate()
                .map(|(i, (val, other, samples))| {
                    let mut labels = vec![(b"other".to_vec(), other.as_bytes().to_vec())];
                    if let Some(v) = val {
                        labels.push((b"g".to_vec(), v.as_bytes().to_vec()));
                    }
                    let mut samples: Vec<(u64, f64)> = samples.iter().map(|(t, v)| (*t, *v)).collect();
                    if reverse {
                        samples.reverse();
                    }
                    SeriesRows { key: format!("k{i}").into_bytes(), labels, samples }
                })
                .collect();
            let got = group(rows, b"g", Reducer::try_from(reducer).unwrap(), reverse);
            let mut values: Vec<&str> = input.iter().filter_map(|(v, _, _)| *v).collect();
            values.sort_unstable();
            values.dedup();
            prop_assert_eq!(got.len(), values.len());
            for (g, value) in got.iter().zip(&values) {
                prop_assert_eq!(&g.name, &format!("g={value}").into_bytes());
                let members: Vec<usize> =
                    (0..input.len()).filter(|&i| input[i].0 == Some(*value)).collect();
                let keys: Vec<Vec<u8>> = members.iter().map(|i| format!("k{i}").into_bytes()).collect();
                prop_assert_eq!(&g.sources, &keys);
                let mut shared = vec![(b"g".to_vec(), value.as_bytes().to_vec())];
                let other = input[members[0]].1;
                if members.iter().all(|&i| input[i].1 == other) {
                    shared.push((b"other".to_vec(), other.as_bytes().to_vec()));
                }
                prop_assert_eq!(&g.shared_labels, &shared);
                let mut stamps: Vec<u64> =
                    members.iter().flat_map(|&i| input[i].2.keys().copied()).collect();
                stamps.sort_unstable();
                stamps.dedup();
                if reverse {
                    stamps.reverse();
                }
                prop_assert_eq!(g.samples.len(), stamps.len());
                for ((t, v), want_t) in g.samples.iter().zip(&stamps) {
                    prop_assert_eq!(t, want_t);
                    let vals: Vec<f64> =
                        members.iter().filter_map(|&i| input[i].2.get(t).copied()).collect();
                    let want = naive(reducer, &vals);
                    prop_assert!(
                        (v.is_nan() && want.is_nan()) || (v - want).abs() <= 1e-9 * (1.0 + want.abs()),
                        "{} vs {}", v, want
                    );
                }
            }
        }
    }
}
