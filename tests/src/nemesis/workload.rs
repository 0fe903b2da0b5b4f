//! The client threads: each runs a seeded mix of TS.ADD, INCR, SET and GET against nodes it
//! picks at random, one request at a time, and records every operation.
//!
//! - `TS.ADD s:K ts n`: `ts` is unique in the run (`n * clients + client + 1`), so every
//!   sample has exactly one writer and its presence says whether that write took effect.
//! - `INCR ctr:K` on a few counters.
//! - `SET reg:K c{client}-{n}` (unique values) and `GET reg:K` on a few registers.
//!
//! Replies map to outcomes: the expected reply is `ok`; `CLUSTERDOWN`/`TRYAGAIN` are
//! definite failures (the server promises the write was not applied); `TIMEOUT`, a broken
//! connection or no reply in time are `unknown`. Any other reply is unexpected: recorded as
//! unknown and reported, and it fails the run.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tickdb_core::resp::Frame;

use super::Rng;
use super::history::{Call, NEVER, Op, Outcome, Reply};
use crate::Client;

/// Keys per kind.
pub const SERIES: usize = 3;
pub const COUNTERS: usize = 3;
pub const REGISTERS: usize = 4;

/// How long a client waits for one reply: above the server's request timeout (a write that
/// cannot commit is answered `TIMEOUT` by then), so a wait this long means a lost node.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A client moves to another node after this many operations, to spread load over leader and
/// followers (followers forward).
const OPS_PER_CONNECTION: u64 = 64;
/// Bound on one client's operations (far above what a run does).
const MAX_OPS: u64 = 10_000_000;

pub fn series_key(k: usize) -> String {
    format!("s:{k}")
}

pub fn counter_key(k: usize) -> String {
    format!("ctr:{k}")
}

pub fn register_key(k: usize) -> String {
    format!("reg:{k}")
}

/// What the client threads share.
#[derive(Clone)]
pub struct Shared {
    pub start: Instant,
    pub stop: Arc<AtomicBool>,
    /// Acknowledged writes so far (progress, for the liveness check).
    pub acked_writes: Arc<AtomicU64>,
    /// Replies that fit no rule above.
    pub unexpected: Arc<Mutex<Vec<String>>>,
}

impl Shared {
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            stop: Arc::new(AtomicBool::new(false)),
            acked_writes: Arc::new(AtomicU64::new(0)),
            unexpected: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
}

/// The next call of client `client`, whose `n`th operation it is.
fn choose(rng: &mut Rng, client: usize, clients: usize, n: u64) -> Call {
    let roll = rng.below(100);
    if roll < 35 {
        Call::TsAdd {
            key: series_key(rng.below(SERIES as u64) as usize),
            ts: (n * clients as u64 + client as u64 + 1) as i64,
            value: n as i64,
        }
    } else if roll < 55 {
        Call::Incr {
            key: counter_key(rng.below(COUNTERS as u64) as usize),
        }
    } else if roll < 80 {
        Call::Set {
            key: register_key(rng.below(REGISTERS as u64) as usize),
            value: format!("c{client}-{n}"),
        }
    } else {
        Call::Get {
            key: register_key(rng.below(REGISTERS as u64) as usize),
        }
    }
}

fn args(call: &Call) -> Vec<String> {
    match call {
        Call::TsAdd { key, ts, value } => {
            vec![
                "TS.ADD".into(),
                key.clone(),
                ts.to_string(),
                value.to_string(),
            ]
        }
        Call::Incr { key } => vec!["INCR".into(), key.clone()],
        Call::Set { key, value } => vec!["SET".into(), key.clone(), value.clone()],
        Call::Get { key } => vec!["GET".into(), key.clone()],
    }
}

/// The outcome of `call` given what came back; `Err` text for an unexpected reply.
pub fn classify(call: &Call, reply: &Result<Frame, String>) -> Result<Outcome, String> {
    let frame = match reply {
        Err(e) => return Ok(Outcome::Unknown(e.clone())),
        Ok(f) => f,
    };
    if let Frame::Error(msg) = frame {
        let msg = String::from_utf8_lossy(msg).into_owned();
        let code = msg.split_whitespace().next().unwrap_or("");
        return match code {
            "TIMEOUT" => Ok(Outcome::Unknown(msg)),
            "CLUSTERDOWN" | "TRYAGAIN" => Ok(Outcome::Failed(msg)),
            // Timestamps are unique in the run: a duplicate means this very write was applied
            // before, and the reply came from applying it again.
            _ if matches!(call, Call::TsAdd { .. }) && msg.contains("DUPLICATE_POLICY") => {
                Err(format!(
                    "{call:?} was refused as a duplicate: the write was applied twice (-{msg})"
                ))
            }
            _ => Err(format!("{} -> -{msg}", call.name())),
        };
    }
    let reply = match (call, frame) {
        (Call::TsAdd { ts, .. }, Frame::Integer(t)) if t == ts => Reply::Int(*t),
        (Call::Incr { .. }, Frame::Integer(n)) => Reply::Int(*n),
        (Call::Set { .. }, f) if *f == Frame::ok() => Reply::Done,
        (Call::Get { .. }, Frame::Bulk(b)) => {
            Reply::Value(Some(String::from_utf8_lossy(b).into_owned()))
        }
        (Call::Get { .. }, Frame::Null) => Reply::Value(None),
        (call, other) => return Err(format!("{} -> {other:?}", call.name())),
    };
    Ok(Outcome::Ok(reply))
}

/// Runs client `client` until `shared.stop`; returns its operations.
pub fn client(
    client: usize,
    clients: usize,
    nodes: Vec<SocketAddr>,
    seed: u64,
    shared: Shared,
) -> Vec<Op> {
    let mut rng = Rng::new(seed ^ (client as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut ops = Vec::new();
    let mut conn: Option<(usize, Client, u64)> = None;
    for n in 0..MAX_OPS {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let (node, c, used) = match conn.as_mut() {
            Some((node, c, used)) => (*node, c, used),
            None => {
                let node = rng.below(nodes.len() as u64) as usize;
                match Client::try_connect_to(nodes[node], CONNECT_TIMEOUT) {
                    Ok(c) => {
                        conn = Some((node, c, 0));
                        continue;
                    }
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                }
            }
        };
        *used += 1;
        let call = choose(&mut rng, client, clients, n);
        let args = args(&call);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let invoke_us = shared.now_us();
        let reply = c.call_within(&args, CALL_TIMEOUT);
        let mut complete_us = shared.now_us();
        let outcome = match classify(&call, &reply) {
            Ok(o) => o,
            Err(unexpected) => {
                shared
                    .unexpected
                    .lock()
                    .expect("no client panicked")
                    .push(format!("client {client} node {}: {unexpected}", node + 1));
                Outcome::Unknown(format!("unexpected: {unexpected}"))
            }
        };
        let mut drop_conn = reply.is_err() || *used >= OPS_PER_CONNECTION;
        match &outcome {
            Outcome::Ok(_) if call.is_write() => {
                shared.acked_writes.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Ok(_) => {}
            Outcome::Unknown(_) => complete_us = NEVER,
            Outcome::Failed(_) => {
                // No leader here: back off, and try another node next time.
                drop_conn = true;
                std::thread::sleep(Duration::from_millis(20 + rng.below(30)));
            }
        }
        ops.push(Op {
            client,
            node,
            call,
            invoke_us,
            complete_us,
            outcome,
        });
        if drop_conn {
            conn = None;
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn replies_map_to_outcomes() {
        let set = Call::Set {
            key: "k".into(),
            value: "v".into(),
        };
        let err = |s: &str| Ok(Frame::Error(Bytes::copy_from_slice(s.as_bytes())));
        assert_eq!(
            classify(&set, &Ok(Frame::ok())),
            Ok(Outcome::Ok(Reply::Done))
        );
        assert!(matches!(
            classify(&set, &err("TIMEOUT the write was not committed in time")),
            Ok(Outcome::Unknown(_))
        ));
        assert!(matches!(
            classify(&set, &err("CLUSTERDOWN no leader")),
            Ok(Outcome::Failed(_))
        ));
        assert!(matches!(
            classify(&set, &err("TRYAGAIN lost")),
            Ok(Outcome::Failed(_))
        ));
        assert!(matches!(
            classify(&set, &Err("connection closed".into())),
            Ok(Outcome::Unknown(_))
        ));
        assert!(classify(&set, &err("ERR something")).is_err());
        let add = Call::TsAdd {
            key: "s".into(),
            ts: 5,
            value: 1,
        };
        assert_eq!(
            classify(&add, &Ok(Frame::Integer(5))),
            Ok(Outcome::Ok(Reply::Int(5)))
        );
        assert!(classify(&add, &Ok(Frame::Integer(6))).is_err());
        let get = Call::Get { key: "k".into() };
        assert_eq!(
            classify(&get, &Ok(Frame::Null)),
            Ok(Outcome::Ok(Reply::Value(None)))
        );
    }

    #[test]
    fn timestamps_are_unique_across_clients() {
        let mut seen = std::collections::HashSet::new();
        for client in 0..8 {
            let mut rng = Rng::new(client as u64);
            for n in 0..500 {
                if let Call::TsAdd { ts, .. } = choose(&mut rng, client, 8, n) {
                    assert!(seen.insert(ts), "timestamp {ts} twice");
                }
            }
        }
        assert!(seen.len() > 1000);
    }
}
