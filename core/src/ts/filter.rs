//! `FILTER` label expressions of `TS.MGET`, `TS.MRANGE`/`TS.MREVRANGE` and `TS.QUERYINDEX`.
//!
//! # Semantics (redis.io `TS.MRANGE` / `TS.QUERYINDEX` pages)
//!
//! | expression | a series matches when |
//! | --- | --- |
//! | `label=value` | it has `label` with value `value` |
//! | `label=(v1,v2,...)` | it has `label` with a value in the list |
//! | `label=` | it does not have `label` |
//! | `label!=` | it has `label` |
//! | `label!=value` | it does not have `label` with value `value` (a series without `label` matches) |
//! | `label!=(v1,v2,...)` | it does not have `label` with a value in the list (likewise) |
//!
//! Expressions are conjunctive, and at least one must be `label=value` or `label=(...)`:
//! otherwise [`FilterError::NoPositiveMatcher`]. Whitespace is not allowed in an expression
//! except inside quotes around a value: `x="y y"`, `x='(y y,z z)'`; an unclosed quote is
//! malformed.
//!
//! # Parsing choices where the docs are silent
//!
//! - The expression splits at its first `=`; a `!` right before it makes it a `!=`. So
//!   `a=b=c` is label `a`, value `b=c`, and `a!=b` is always "not equal" (a label cannot end in
//!   `!`). An empty label (`=v`, `!=v`) is malformed.
//! - A value wrapped in matching `"` or `'` is unquoted (once); a list's items may each be
//!   quoted too. A value is a list when it is `(` ... `)` after unquoting; items split at every
//!   `,` (no escaping). So a label value containing `,` is matched by `l=a,b` but cannot be a
//!   list item, and a label value of the form `(...)` cannot be matched at all.
//! - An empty value, quoted or not (`l=`, `l=""`), means "label absent" / "label present".
//!   `l=()` is an empty list: it matches nothing (and counts as the required positive matcher);
//!   `l!=()` matches everything.
//! - Error texts: the docs do not list them; we use `ERR TSDB: please provide at least one
//!   matcher` and `ERR TSDB: failed parsing labels`.
//!
//! [`Filter::index_terms`] gives the positive terms for a label inverted index: the candidate
//! series are the intersection over terms of the union over each term's values; apply
//! [`Filter::matches`] to each candidate for the rest.

/// The most expressions one `FILTER` may hold.
pub const MAX_MATCHERS: usize = 256;
/// The most values one `label=(...)` list may hold.
pub const MAX_LIST_VALUES: usize = 1024;

/// Why a `FILTER` was refused. `Display` is the reply text after `-`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// No `label=value` or `label=(...)` expression.
    #[error("ERR TSDB: please provide at least one matcher")]
    NoPositiveMatcher,
    /// An expression is not of a documented form (no `=`, empty label, stray whitespace).
    #[error("ERR TSDB: failed parsing labels")]
    Malformed,
    /// More than [`MAX_MATCHERS`] expressions or [`MAX_LIST_VALUES`] values in a list.
    #[error("ERR TSDB: too many filter expressions or values")]
    TooLarge,
}

/// One filter expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Matcher {
    /// `label=value` / `label=(v1,...)`: the label is present with one of `values`.
    Equal {
        /// The label name.
        label: Vec<u8>,
        /// Accepted values (one for `label=value`).
        values: Vec<Vec<u8>>,
    },
    /// `label!=value` / `label!=(v1,...)`: the label is absent or has none of `values`.
    NotEqual {
        /// The label name.
        label: Vec<u8>,
        /// Rejected values.
        values: Vec<Vec<u8>>,
    },
    /// `label=`: the label is absent.
    Absent {
        /// The label name.
        label: Vec<u8>,
    },
    /// `label!=`: the label is present, with any value.
    Present {
        /// The label name.
        label: Vec<u8>,
    },
}

impl Matcher {
    /// Parses one expression.
    pub fn parse(expr: &[u8]) -> Result<Self, FilterError> {
        let eq = expr
            .iter()
            .position(|&b| b == b'=')
            .ok_or(FilterError::Malformed)?;
        let negated = eq > 0 && expr[eq - 1] == b'!';
        let label = &expr[..if negated { eq - 1 } else { eq }];
        if label.is_empty() || label.iter().any(u8::is_ascii_whitespace) {
            return Err(FilterError::Malformed);
        }
        let raw = &expr[eq + 1..];
        if !well_quoted(raw) {
            return Err(FilterError::Malformed);
        }
        let value = unquote(raw);
        let label = label.to_vec();
        if value.is_empty() {
            return Ok(if negated {
                Self::Present { label }
            } else {
                Self::Absent { label }
            });
        }
        let values = match value.strip_prefix(b"(").and_then(|v| v.strip_suffix(b")")) {
            Some(list) => parse_list(list)?,
            None => vec![value.to_vec()],
        };
        Ok(if negated {
            Self::NotEqual { label, values }
        } else {
            Self::Equal { label, values }
        })
    }

    /// Whether this expression can drive an index lookup (`label=value`, `label=(...)`).
    pub fn is_positive(&self) -> bool {
        matches!(self, Self::Equal { .. })
    }

    /// Whether a series with `labels` satisfies this expression.
    pub fn matches(&self, labels: &[(Vec<u8>, Vec<u8>)]) -> bool {
        let lookup = |label: &[u8]| labels.iter().find(|(l, _)| l == label).map(|(_, v)| v);
        match self {
            Self::Equal { label, values } => lookup(label).is_some_and(|v| values.contains(v)),
            Self::NotEqual { label, values } => !lookup(label).is_some_and(|v| values.contains(v)),
            Self::Absent { label } => lookup(label).is_none(),
            Self::Present { label } => lookup(label).is_some(),
        }
    }
}

/// Whether every quote in `v` is closed and no whitespace stands outside quotes.
fn well_quoted(v: &[u8]) -> bool {
    let mut quote: Option<u8> = None;
    for &b in v {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b.is_ascii_whitespace() => return false,
            None => {}
        }
    }
    quote.is_none()
}

/// Strips one pair of matching quotes around `v`, if any.
fn unquote(v: &[u8]) -> &[u8] {
    match v {
        [q, inner @ .., last] if (*q == b'"' || *q == b'\'') && q == last => inner,
        _ => v,
    }
}

fn parse_list(list: &[u8]) -> Result<Vec<Vec<u8>>, FilterError> {
    if list.is_empty() {
        return Ok(Vec::new());
    }
    let mut values = Vec::new();
    for item in list.split(|&b| b == b',') {
        if values.len() == MAX_LIST_VALUES {
            return Err(FilterError::TooLarge);
        }
        values.push(unquote(item).to_vec());
    }
    Ok(values)
}

/// A conjunction of [`Matcher`]s with at least one positive one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    matchers: Vec<Matcher>,
}

impl Filter {
    /// Parses the arguments after `FILTER`, one expression per argument.
    pub fn parse(args: &[&[u8]]) -> Result<Self, FilterError> {
        if args.len() > MAX_MATCHERS {
            return Err(FilterError::TooLarge);
        }
        let matchers = args
            .iter()
            .map(|a| Matcher::parse(a))
            .collect::<Result<Vec<_>, _>>()?;
        if !matchers.iter().any(Matcher::is_positive) {
            return Err(FilterError::NoPositiveMatcher);
        }
        Ok(Self { matchers })
    }

    /// The expressions, in argument order.
    pub fn matchers(&self) -> &[Matcher] {
        &self.matchers
    }

    /// Whether a series with `labels` (name/value pairs, names unique) satisfies every
    /// expression.
    pub fn matches(&self, labels: &[(Vec<u8>, Vec<u8>)]) -> bool {
        self.matchers.iter().all(|m| m.matches(labels))
    }

    /// The positive terms `(label, accepted values)`: a matching series has, for every term,
    /// the label with one of the values. Never empty (parse guarantees a positive matcher).
    pub fn index_terms(&self) -> impl Iterator<Item = (&[u8], &[Vec<u8>])> + '_ {
        self.matchers.iter().filter_map(|m| match m {
            Matcher::Equal { label, values } => Some((label.as_slice(), values.as_slice())),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        pairs
            .iter()
            .map(|(l, v)| (l.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    fn m(expr: &str) -> Result<Matcher, FilterError> {
        Matcher::parse(expr.as_bytes())
    }

    fn f(exprs: &[&str]) -> Result<Filter, FilterError> {
        let args: Vec<&[u8]> = exprs.iter().map(|e| e.as_bytes()).collect();
        Filter::parse(&args)
    }

    fn v(items: &[&str]) -> Vec<Vec<u8>> {
        items.iter().map(|i| i.as_bytes().to_vec()).collect()
    }

    #[test]
    fn parses_every_documented_form() {
        let label = b"room".to_vec();
        assert_eq!(
            m("room=study"),
            Ok(Matcher::Equal {
                label: label.clone(),
                values: v(&["study"])
            })
        );
        assert_eq!(
            m("room!=study"),
            Ok(Matcher::NotEqual {
                label: label.clone(),
                values: v(&["study"])
            })
        );
        assert_eq!(
            m("room="),
            Ok(Matcher::Absent {
                label: label.clone()
            })
        );
        assert_eq!(
            m("room!="),
            Ok(Matcher::Present {
                label: label.clone()
            })
        );
        assert_eq!(
            m("room=(study,kitchen)"),
            Ok(Matcher::Equal {
                label: label.clone(),
                values: v(&["study", "kitchen"])
            })
        );
        assert_eq!(
            m("room!=(study,kitchen)"),
            Ok(Matcher::NotEqual {
                label,
                values: v(&["study", "kitchen"])
            })
        );
    }

    #[test]
    fn edge_cases_of_the_syntax() {
        let eq = |l: &str, vals: &[&str]| Matcher::Equal {
            label: l.as_bytes().to_vec(),
            values: v(vals),
        };
        assert_eq!(m("a=b=c"), Ok(eq("a", &["b=c"])));
        assert_eq!(m("a==b"), Ok(eq("a", &["=b"])));
        assert_eq!(m("a=b,c"), Ok(eq("a", &["b,c"])));
        assert_eq!(m("x=\"y y\""), Ok(eq("x", &["y y"])));
        assert_eq!(m("x='(y y,z z)'"), Ok(eq("x", &["y y", "z z"])));
        assert_eq!(m("x=(\"a b\",'c')"), Ok(eq("x", &["a b", "c"])));
        assert_eq!(m("x=(a,,b)"), Ok(eq("x", &["a", "", "b"])));
        assert_eq!(m("x=()"), Ok(eq("x", &[])));
        assert_eq!(
            m("x=\"\""),
            Ok(Matcher::Absent {
                label: b"x".to_vec()
            })
        );
        assert_eq!(m("x=a'b'"), Ok(eq("x", &["a'b'"])));
        for bad in [
            "novalue", "=v", "!=v", "", "a b=c", "a=b c", "a=(b, c)", "x=\"", "x=\"y y",
        ] {
            assert_eq!(m(bad), Err(FilterError::Malformed), "{bad:?}");
        }
        let big = format!("x=({})", vec!["a"; MAX_LIST_VALUES + 1].join(","));
        assert_eq!(m(&big), Err(FilterError::TooLarge));
    }

    #[test]
    fn at_least_one_positive_matcher() {
        assert_eq!(f(&[]), Err(FilterError::NoPositiveMatcher));
        assert_eq!(
            f(&["a!=b", "c=", "d!="]),
            Err(FilterError::NoPositiveMatcher)
        );
        assert_eq!(f(&["a!=(b,c)"]), Err(FilterError::NoPositiveMatcher));
        assert!(f(&["a!=b", "c=d"]).is_ok());
        assert!(f(&["c=(d,e)"]).is_ok());
        assert_eq!(f(&["a=b", "oops"]), Err(FilterError::Malformed));
        let many = vec!["a=b"; MAX_MATCHERS + 1];
        assert_eq!(f(&many), Err(FilterError::TooLarge));
        assert_eq!(
            FilterError::NoPositiveMatcher.to_string(),
            "ERR TSDB: please provide at least one matcher"
        );
        assert!(FilterError::Malformed.to_string().starts_with("ERR TSDB: "));
    }

    #[test]
    fn matching_follows_the_docs_table() {
        let study = labels(&[("type", "temperature"), ("room", "study")]);
        let kitchen = labels(&[("type", "humidity"), ("room", "kitchen")]);
        let bare = labels(&[("type", "temperature")]);
        let cases: [(&[&str], [bool; 3]); 7] = [
            (&["type=temperature", "room=study"], [true, false, false]),
            (&["type=temperature", "room!=study"], [false, false, true]),
            (&["type=temperature", "room="], [false, false, true]),
            (
                &["type=(temperature,humidity)", "room!="],
                [true, true, false],
            ),
            (&["room=(study,kitchen)"], [true, true, false]),
            (
                &["type=(temperature,humidity)", "room!=(study,kitchen)"],
                [false, false, true],
            ),
            (&["type=temperature", "room!=()"], [true, false, true]),
        ];
        for (exprs, want) in cases {
            let filter = f(exprs).unwrap();
            let got = [&study, &kitchen, &bare].map(|l| filter.matches(l));
            assert_eq!(got, want, "{exprs:?}");
        }
        assert!(!f(&["room=()"]).unwrap().matches(&study));
    }

    #[test]
    fn index_terms_are_the_positive_matchers() {
        let filter = f(&["a!=x", "b=y", "c=", "d=(p,q)"]).unwrap();
        let terms: Vec<(&[u8], &[Vec<u8>])> = filter.index_terms().collect();
        assert_eq!(terms.len(), 2);
        assert_eq!(terms[0], (&b"b"[..], &v(&["y"])[..]));
        assert_eq!(terms[1], (&b"d"[..], &v(&["p", "q"])[..]));
        assert_eq!(filter.matchers().len(), 4);
    }

    // ---- model-based tests -------------------------------------------------------------

    #[derive(Clone, Debug)]
    enum Op {
        Eq,
        Ne,
    }

    fn arb_expr() -> impl Strategy<Value = (String, Op, Vec<String>, bool)> {
        let name = proptest::sample::select(vec!["a", "b", "c"]).prop_map(str::to_owned);
        let val = proptest::sample::select(vec!["x", "y", "z"]).prop_map(str::to_owned);
        (
            name,
            prop_oneof![Just(Op::Eq), Just(Op::Ne)],
            proptest::collection::vec(val, 0..3),
            any::<bool>(),
        )
    }

    fn render(e: &(String, Op, Vec<String>, bool)) -> String {
        let op = match e.1 {
            Op::Eq => "=",
            Op::Ne => "!=",
        };
        // A single value may be written bare or as a one-element list.
        let value = match (e.2.len(), e.3) {
            (0, false) => String::new(),
            (1, false) => e.2[0].clone(),
            _ => format!("({})", e.2.join(",")),
        };
        format!("{}{op}{value}", e.0)
    }

    /// The docs table, read literally, over a BTreeMap of labels.
    fn model(e: &(String, Op, Vec<String>, bool), labels: &BTreeMap<String, String>) -> bool {
        let got = labels.get(&e.0);
        let listed = e.3 || !e.2.is_empty();
        match (&e.1, listed) {
            (Op::Eq, false) => got.is_none(),
            (Op::Ne, false) => got.is_some(),
            (Op::Eq, true) => got.is_some_and(|g| e.2.contains(g)),
            (Op::Ne, true) => !got.is_some_and(|g| e.2.contains(g)),
        }
    }

    proptest! {
        #[test]
        fn matches_agrees_with_the_model(
            exprs in proptest::collection::vec(arb_expr(), 1..5),
            series in proptest::collection::btree_map(
                proptest::sample::select(vec!["a", "b", "c"]).prop_map(str::to_owned),
                proptest::sample::select(vec!["x", "y", "z"]).prop_map(str::to_owned),
                0..4,
            ),
        ) {
            let rendered: Vec<String> = exprs.iter().map(render).collect();
            let args: Vec<&[u8]> = rendered.iter().map(|r| r.as_bytes()).collect();
            let positive = exprs.iter().any(|e| matches!(e.1, Op::Eq) && (e.3 || !e.2.is_empty()));
            let labels: Vec<(Vec<u8>, Vec<u8>)> = series
                .iter()
                .map(|(l, v)| (l.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect();
            match Filter::parse(&args) {
                Ok(filter) => {
                    prop_assert!(positive);
                    let want = exprs.iter().all(|e| model(e, &series));
                    prop_assert_eq!(filter.matches(&labels), want, "{:?}", rendered);
                    // The index terms never exclude a matching series.
                    if want {
                        for (l, vals) in filter.index_terms() {
                            let have = labels.iter().find(|(n, _)| n == l).map(|(_, v)| v);
                            prop_assert!(have.is_some_and(|h| vals.contains(h)));
                        }
                    }
                }
                Err(e) => {
                    prop_assert!(!positive);
                    prop_assert_eq!(e, FilterError::NoPositiveMatcher);
                }
            }
        }

        #[test]
        fn parse_never_panics(expr in proptest::collection::vec(any::<u8>(), 0..24)) {
            let _ = Matcher::parse(&expr);
        }
    }
}
