//! What the clients did: every operation's invocation, completion and outcome.
//!
//! Times are microseconds since the run started, from one monotonic clock shared by every
//! client thread, so "A completed before B was invoked" is a fact about real time.

use std::fmt::Write as _;

/// A time that never comes: the completion of an operation whose outcome is unknown.
pub const NEVER: u64 = u64::MAX;

/// The operations of the workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `TS.ADD key ts value`: timestamps are unique per run, so each sample has one writer.
    TsAdd { key: String, ts: i64, value: i64 },
    /// `INCR key`.
    Incr { key: String },
    /// `SET key value`, `value` unique per run.
    Set { key: String, value: String },
    /// `GET key`.
    Get { key: String },
}

impl Call {
    pub fn key(&self) -> &str {
        match self {
            Self::TsAdd { key, .. } | Self::Incr { key } | Self::Set { key, .. } => key,
            Self::Get { key } => key,
        }
    }

    pub fn is_write(&self) -> bool {
        !matches!(self, Self::Get { .. })
    }

    /// The command's name, for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Self::TsAdd { .. } => "TS.ADD",
            Self::Incr { .. } => "INCR",
            Self::Set { .. } => "SET",
            Self::Get { .. } => "GET",
        }
    }
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged; for INCR the new value, for GET the value read (`None`: no such key).
    Ok(Reply),
    /// Definitely not applied: the server said so (`CLUSTERDOWN`, `TRYAGAIN`), or a read
    /// that failed (reads change nothing).
    Failed(String),
    /// May or may not have taken effect: `TIMEOUT`, a dropped connection, no reply in time.
    Unknown(String),
}

/// The content of an acknowledged reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Done,
    Int(i64),
    Value(Option<String>),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Ok(_) => "ok",
            Self::Failed(_) => "failed",
            Self::Unknown(_) => "unknown",
        }
    }
}

/// One operation of one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    pub client: usize,
    /// The node the client's connection went to (index), for reports.
    pub node: usize,
    pub call: Call,
    /// Microseconds since the start, just before the request was sent.
    pub invoke_us: u64,
    /// Microseconds since the start, just after the reply arrived; [`NEVER`] when unknown.
    pub complete_us: u64,
    pub outcome: Outcome,
}

impl Op {
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok(_))
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self.outcome, Outcome::Unknown(_))
    }

    pub fn is_failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed(_))
    }
}

/// One line per operation, tab-separated, in invocation order: the history kept on failure.
pub fn render(ops: &[Op]) -> String {
    let mut sorted: Vec<&Op> = ops.iter().collect();
    sorted.sort_by_key(|o| (o.invoke_us, o.client));
    let mut out = String::from("# client\tnode\tinvoke_us\tcomplete_us\tcall\toutcome\tdetail\n");
    for o in sorted {
        let call = match &o.call {
            Call::TsAdd { key, ts, value } => format!("TS.ADD {key} {ts} {value}"),
            Call::Incr { key } => format!("INCR {key}"),
            Call::Set { key, value } => format!("SET {key} {value}"),
            Call::Get { key } => format!("GET {key}"),
        };
        let complete = if o.complete_us == NEVER {
            "-".to_string()
        } else {
            o.complete_us.to_string()
        };
        let detail = match &o.outcome {
            Outcome::Ok(Reply::Done) => "OK".to_string(),
            Outcome::Ok(Reply::Int(n)) => n.to_string(),
            Outcome::Ok(Reply::Value(v)) => v.clone().unwrap_or_else(|| "(nil)".into()),
            Outcome::Failed(why) | Outcome::Unknown(why) => why.clone(),
        };
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{complete}\t{call}\t{}\t{detail}",
            o.client,
            o.node + 1,
            o.invoke_us,
            o.outcome.label()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_lists_ops_in_invocation_order() {
        let op = |client, invoke_us, outcome| Op {
            client,
            node: 0,
            call: Call::Incr { key: "c".into() },
            invoke_us,
            complete_us: NEVER,
            outcome,
        };
        let text = render(&[
            op(1, 20, Outcome::Unknown("TIMEOUT".into())),
            op(0, 10, Outcome::Ok(Reply::Int(1))),
        ]);
        let lines: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("0\t1\t10\t-\tINCR c\tok\t1"), "{text}");
        assert!(lines[1].contains("unknown\tTIMEOUT"), "{text}");
    }
}
