//! The real-cluster fault suite ("nemesis"): three `tickdb` processes as three hosts in network
//! namespaces, a seeded nemesis (kill -9, SIGSTOP, isolation, partitions, one-way cuts, a
//! bridge), client threads recording every operation, and checkers over the history and the
//! final state. See `docs/nemesis.md`.
//!
//! Two processes: [`outer`] (the test) makes the namespaces ([`netns`]), re-executes the test
//! binary inside the client namespace to run [`inner`] (nodes, clients, nemesis, checks), and
//! removes the namespaces whatever happens. The clients must live in that namespace: it holds
//! the only route to the nodes' addresses.
//!
//! Settings come from the environment: `TICKDB_NEMESIS_SECONDS` (default 60),
//! `TICKDB_NEMESIS_SEED` (default: drawn and printed), `TICKDB_NEMESIS_CLIENTS` (8),
//! `TICKDB_NEMESIS_COMPACTION` (Raft log compaction threshold in entries, default 200 so
//! snapshots install often), `TICKDB_NEMESIS_KEEP=1` (keep the run directory even on a pass),
//! `TICKDB_NEMESIS_SKIP=1` (skip, loudly, where namespaces cannot be made; refused when
//! `CI=true`).

pub mod checker;
pub mod faults;
pub mod history;
pub mod netns;
pub mod workload;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tickdb_core::resp::Frame;

use crate::Client;
use crate::cluster::{Cluster, Host, Ports, is_error_with};
use history::{Call, Op};

/// SplitMix64: the suite's only source of randomness, seeded.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi);
        lo + self.below(hi - lo + 1)
    }
}

/// Nodes in the cluster.
pub const NODES: usize = 3;
/// Ports inside each node's namespace (every node has its own address, so they can be equal).
const PORTS: Ports = Ports {
    client: 6379,
    cluster: 5555,
};
/// Raft timing: as the loopback cluster tests.
const HEARTBEAT_MS: u64 = 50;
const ELECTION_TIMEOUT_MS: &str = "300-600";
const REQUEST_TIMEOUT_MS: u64 = 2_000;
/// Bound on electing a leader at the start and after healing.
const ELECTION: Duration = Duration::from_secs(30);
/// After healing, the cluster must acknowledge this many writes within [`RECOVERY`].
const RECOVERY_WRITES: u64 = 50;
const RECOVERY: Duration = Duration::from_secs(30);
/// Bound on the replicas reaching the same applied index after the clients stop.
const CONVERGENCE: Duration = Duration::from_secs(60);
/// Step budget of the linearizability search, per key.
const LIN_BUDGET: u64 = 50_000_000;
/// The client id of the final reads.
const FINAL_CLIENT: usize = 1_000;

/// The environment variable that tells a re-executed test binary it is the inner run.
const INNER_ENV: &str = "TICKDB_NEMESIS_INNER";

/// One run's settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub seconds: u64,
    pub seed: u64,
    pub clients: usize,
    pub compaction: u64,
    /// Nodes run with `--pipelined-sync=true` on odd seeds and `=false` on even ones (a
    /// cluster's default is true), so each mode gets half the runs and a replay of a seed
    /// runs the same one.
    pub pipelined_sync: bool,
    pub keep: bool,
}

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    Some(
        text.parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
    )
}

impl Settings {
    pub fn from_env() -> Self {
        let seed = env_u64("TICKDB_NEMESIS_SEED").unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            Rng::new(nanos ^ u64::from(std::process::id())).next_u64() % 1_000_000_000
        });
        Self {
            seconds: env_u64("TICKDB_NEMESIS_SECONDS").unwrap_or(60),
            seed,
            clients: env_u64("TICKDB_NEMESIS_CLIENTS").unwrap_or(8) as usize,
            compaction: env_u64("TICKDB_NEMESIS_COMPACTION").unwrap_or(200),
            pipelined_sync: !seed.is_multiple_of(2),
            keep: std::env::var("TICKDB_NEMESIS_KEEP").is_ok_and(|v| v == "1"),
        }
    }

    /// How the nodes sync, for the banner.
    pub fn sync_mode(&self) -> &'static str {
        if self.pipelined_sync {
            "pipelined"
        } else {
            "inline"
        }
    }

    /// The command that replays this run.
    pub fn replay(&self) -> String {
        format!(
            "make nemesis SECONDS={} SEED={}  (or: TICKDB_NEMESIS_SECONDS={} \
             TICKDB_NEMESIS_SEED={} TICKDB_NEMESIS_CLIENTS={} TICKDB_NEMESIS_COMPACTION={} \
             cargo test --release -p tickdb-tests --test nemesis -- --nocapture)",
            self.seconds, self.seed, self.seconds, self.seed, self.clients, self.compaction
        )
    }

    fn export(&self, cmd: &mut Command) {
        cmd.env("TICKDB_NEMESIS_SECONDS", self.seconds.to_string())
            .env("TICKDB_NEMESIS_SEED", self.seed.to_string())
            .env("TICKDB_NEMESIS_CLIENTS", self.clients.to_string())
            .env("TICKDB_NEMESIS_COMPACTION", self.compaction.to_string());
    }
}

/// Where runs keep their logs and history: `<target>/nemesis-runs/`.
fn runs_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .map_or_else(std::env::temp_dir, Path::to_path_buf)
        .join("nemesis-runs")
}

/// Writes to the process's stderr directly: the test harness captures `eprintln!` of a
/// passing test, and these lines must be seen.
fn loud(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Says loudly that the suite cannot run here; fails unless skipping is allowed.
fn unavailable(why: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let skip = std::env::var("TICKDB_NEMESIS_SKIP").is_ok_and(|v| v == "1");
    let banner = "!".repeat(78);
    loud(&format!(
        "\n{banner}\n!! NEMESIS FAULT SUITE NOT RUN: cannot make network namespaces.\n!! {why}\n\
         !! It needs root (or CAP_NET_ADMIN), iproute2 (`ip netns`) and nftables (`nft`).\n{banner}\n"
    ));
    if ci {
        panic!("CI=true: the fault suite must run in CI: {why}");
    }
    if !skip {
        panic!(
            "the fault suite cannot run: {why}. On a machine that cannot make network \
             namespaces, set TICKDB_NEMESIS_SKIP=1 to skip it (never in CI)"
        );
    }
    loud(&format!("!! TICKDB_NEMESIS_SKIP=1: skipped.\n{banner}\n"));
}

/// The test: makes the namespaces, runs `inner_test` of this test binary inside the client
/// namespace, removes the namespaces, and fails with the seed, the replay command and the
/// kept run directory when the inner run failed.
pub fn outer(inner_test: &str) {
    let settings = Settings::from_env();
    for name in netns::remove_stale() {
        loud(&format!(
            "nemesis: removed the stale namespace {name} of an earlier run"
        ));
    }
    let prefix = format!("{}{}", netns::PREFIX, std::process::id());
    let mut net = match netns::Net::create(&prefix, NODES) {
        Ok(net) => net,
        Err(e) => return unavailable(&e.0),
    };
    let dir = runs_dir().join(format!("seed-{}-pid-{}", settings.seed, std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the run directory");
    loud(&format!(
        "nemesis: seed {} for {} s, {} clients, compaction every {} entries, {} syncs; run directory {}",
        settings.seed,
        settings.seconds,
        settings.clients,
        settings.compaction,
        settings.sync_mode(),
        dir.display()
    ));
    let exe = std::env::current_exe().expect("test executable path");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &net.client_ns()])
        .arg(&exe)
        .args([
            inner_test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INNER_ENV, &prefix)
        .env("TICKDB_NEMESIS_DIR", &dir);
    settings.export(&mut cmd);
    let mut child = cmd
        .spawn()
        .expect("run the inner test in the client namespace");
    // Bounded: the run, recovery, convergence and checking, with room for a slow machine.
    let deadline = Instant::now() + Duration::from_secs(settings.seconds + 600);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the inner run") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    net.teardown();
    match status {
        Some(s) if s.success() => {
            if !settings.keep {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        other => panic!(
            "nemesis run FAILED ({}): seed {}\n  replay: {}\n  logs and history kept in {}",
            other.map_or_else(|| "timed out".to_string(), |s| s.to_string()),
            settings.seed,
            settings.replay(),
            dir.display()
        ),
    }
}

/// Whether this process is the inner run (re-executed by [`outer`]).
pub fn is_inner() -> bool {
    std::env::var_os(INNER_ENV).is_some()
}

/// The inner run, inside the client namespace: panics with every violation found.
pub fn inner() {
    let prefix = std::env::var(INNER_ENV).expect("run by nemesis::outer");
    let dir = PathBuf::from(std::env::var("TICKDB_NEMESIS_DIR").expect("run by nemesis::outer"));
    let settings = Settings::from_env();
    let report = run(&settings, &prefix, &dir);
    let _ = std::fs::write(dir.join("report.txt"), &report.text);
    println!("{}", report.text);
    if !report.violations.is_empty() {
        panic!(
            "nemesis: {} violation(s), seed {}:\n  {}\n  replay: {}\n  logs and history: {}",
            report.violations.len(),
            settings.seed,
            report.violations.join("\n  "),
            settings.replay(),
            dir.display()
        );
    }
}

/// What a run found.
pub struct Report {
    pub text: String,
    pub violations: Vec<String>,
}

fn run(s: &Settings, prefix: &str, dir: &Path) -> Report {
    let net = netns::Net::attach(prefix, NODES);
    let filter = netns::Filter::new(prefix, NODES);
    let hosts: Vec<Host> = (0..NODES)
        .map(|i| {
            let node_dir = dir.join(format!("n{}", i + 1));
            std::fs::create_dir_all(&node_dir).expect("node directory");
            Host {
                launcher: vec!["ip".into(), "netns".into(), "exec".into(), net.node_ns(i)],
                ip: net.node_ip(i),
                ports: PORTS,
                data_dir: node_dir.join("data"),
            }
        })
        .collect();
    let extra: Vec<String> = [
        "--cluster-id",
        "tickdb-nemesis",
        "--heartbeat-ms",
        &HEARTBEAT_MS.to_string(),
        "--election-timeout-ms",
        ELECTION_TIMEOUT_MS,
        "--request-timeout-ms",
        &REQUEST_TIMEOUT_MS.to_string(),
        "--raft-compaction-entries",
        &s.compaction.to_string(),
    ]
    .iter()
    .map(|a| a.to_string())
    .chain([format!("--pipelined-sync={}", s.pipelined_sync)])
    .collect();
    let mut cluster = Cluster::start_hosts(&hosts, &extra);
    cluster.wait_leader(ELECTION);
    let addrs: Vec<SocketAddr> = (0..NODES).map(|i| cluster.node(i).addr()).collect();

    let start = Instant::now();
    let shared = workload::Shared::new(start);
    let threads: Vec<_> = (0..s.clients)
        .map(|c| {
            let (addrs, shared, clients, seed) = (addrs.clone(), shared.clone(), s.clients, s.seed);
            std::thread::spawn(move || workload::client(c, clients, addrs, seed, shared))
        })
        .collect();
    let until = start + Duration::from_secs(s.seconds);
    let faults = faults::run(&mut cluster, &filter, s.seed, start, until);
    let healed_us = shared.now_us();
    // Heal whatever an error left behind, then the cluster must serve writes again.
    let _ = filter.heal();
    let mut violations = Vec::new();
    let faults = faults.unwrap_or_else(|e| {
        violations.push(format!("the nemesis failed to apply a fault: {e}"));
        Vec::new()
    });
    let acked_at_heal = shared.acked_writes.load(Ordering::Relaxed);
    let recovered = wait_until(RECOVERY, || {
        shared.acked_writes.load(Ordering::Relaxed) >= acked_at_heal + RECOVERY_WRITES
    });
    if !recovered {
        violations.push(format!(
            "liveness: fewer than {RECOVERY_WRITES} writes acknowledged within {RECOVERY:?} \
             of healing every fault\n{}",
            cluster.describe()
        ));
    }
    shared.stop.store(true, Ordering::Relaxed);
    let mut ops: Vec<Op> = Vec::new();
    for t in threads {
        ops.extend(t.join().expect("client thread"));
    }
    let end_us = shared.now_us();
    let unexpected = shared.unexpected.lock().expect("clients done").clone();
    for u in unexpected.iter().take(20) {
        violations.push(format!("unexpected reply: {u}"));
    }

    // The final state, read through the leader (linearizable reads).
    let finals = final_state(&cluster, &shared);
    match &finals {
        Ok(f) => ops.extend(f.register_reads.iter().cloned()),
        Err(e) => violations.push(format!("final reads failed: {e}\n{}", cluster.describe())),
    }
    write_file(dir, "history.tsv", &history::render(&ops));
    let faults_text: String =
        std::iter::once("# start_us\tend_us\tkind\ttarget\tleader\n".to_string())
            .chain(faults.iter().map(|f| format!("{f}\n")))
            .collect();
    write_file(dir, "faults.tsv", &faults_text);

    if let Ok(f) = &finals {
        violations.extend(checker::check_series(&ops, &f.series));
        violations.extend(checker::check_counters(&ops, &f.counters));
    }
    let lin_started = Instant::now();
    violations.extend(checker::check_registers(&ops, LIN_BUDGET));
    let register_ops = ops
        .iter()
        .filter(|o| matches!(o.call, Call::Set { .. } | Call::Get { .. }) && !o.is_failed())
        .count();
    let lin = format!(
        "linearizability: {register_ops} SET/GET operations over {} registers searched in {:.2} s",
        workload::REGISTERS,
        lin_started.elapsed().as_secs_f64()
    );
    let replicas = replica_dumps(&cluster);
    match &replicas {
        Ok(dumps) => violations.extend(checker::check_replicas(dumps)),
        Err(e) => violations.push(format!("replicas: {e}\n{}", cluster.describe())),
    }
    let snapshots = count_in_logs(&cluster, "installed a snapshot from the leader");
    let text = summary(
        s,
        &faults,
        &ops,
        healed_us,
        end_us,
        &snapshots,
        &replicas,
        &lin,
        &violations,
    );
    Report { text, violations }
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write_file(dir: &Path, name: &str, text: &str) {
    if let Err(e) = std::fs::write(dir.join(name), text) {
        eprintln!("nemesis: could not write {name}: {e}");
    }
}

/// The end state as the leader reports it.
struct Finals {
    series: BTreeMap<String, Vec<(i64, f64)>>,
    counters: BTreeMap<String, i64>,
    /// One GET per register, recorded as operations of [`FINAL_CLIENT`].
    register_reads: Vec<Op>,
}

/// Sends `args` to whichever node leads, retrying (bounded) through leader changes.
fn call_leader(cluster: &Cluster, args: &[&str]) -> Result<(usize, Frame, u64, u64), String> {
    call_leader_timed(cluster, args, Instant::now())
}

fn call_leader_timed(
    cluster: &Cluster,
    args: &[&str],
    start: Instant,
) -> Result<(usize, Frame, u64, u64), String> {
    let mut last = String::from("no leader");
    for _ in 0..100 {
        if let Some(l) = faults::leader(cluster) {
            let us = |t: Instant| t.saturating_duration_since(start).as_micros() as u64;
            if let Ok(mut c) =
                Client::try_connect_to(cluster.node(l).addr(), workload::CALL_TIMEOUT)
            {
                let invoke = us(Instant::now());
                match c.call_within(args, workload::CALL_TIMEOUT) {
                    Ok(f) if is_error_with(&f, &["CLUSTERDOWN", "TRYAGAIN", "TIMEOUT"]) => {
                        last = format!("{f:?}");
                    }
                    Ok(f) => return Ok((l, f, invoke, us(Instant::now()))),
                    Err(e) => last = e,
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("{args:?}: {last}"))
}

fn final_state(cluster: &Cluster, shared: &workload::Shared) -> Result<Finals, String> {
    let mut series = BTreeMap::new();
    for k in 0..workload::SERIES {
        let key = workload::series_key(k);
        let samples = match call_leader(cluster, &["TS.RANGE", &key, "-", "+"])? {
            // Never created: every TS.ADD to it failed (the checker then wants none acked).
            (_, Frame::Error(e), _, _) if e.windows(14).any(|w| w == b"does not exist") => {
                Vec::new()
            }
            (_, f, _, _) => parse_range(&f)?,
        };
        series.insert(key, samples);
    }
    let mut counters = BTreeMap::new();
    for k in 0..workload::COUNTERS {
        let key = workload::counter_key(k);
        let (_, f, _, _) = call_leader(cluster, &["GET", &key])?;
        let n = match f {
            Frame::Null => 0,
            Frame::Bulk(b) => String::from_utf8_lossy(&b)
                .parse()
                .map_err(|_| format!("{key} holds {b:?}"))?,
            other => return Err(format!("GET {key} -> {other:?}")),
        };
        counters.insert(key, n);
    }
    let mut register_reads = Vec::new();
    for k in 0..workload::REGISTERS {
        let key = workload::register_key(k);
        let (node, f, invoke_us, complete_us) =
            call_leader_timed(cluster, &["GET", &key], shared.start)?;
        let call = Call::Get { key: key.clone() };
        let outcome = workload::classify(&call, &Ok(f)).map_err(|e| format!("final {e}"))?;
        register_reads.push(Op {
            client: FINAL_CLIENT,
            node,
            call,
            invoke_us,
            complete_us,
            outcome,
        });
    }
    Ok(Finals {
        series,
        counters,
        register_reads,
    })
}

/// `TS.RANGE` reply: `[[ts, value], ...]`.
fn parse_range(f: &Frame) -> Result<Vec<(i64, f64)>, String> {
    let Frame::Array(items) = f else {
        return Err(format!("TS.RANGE -> {f:?}"));
    };
    items
        .iter()
        .map(|item| match item {
            Frame::Array(pair) if pair.len() == 2 => {
                let ts = match &pair[0] {
                    Frame::Integer(t) => *t,
                    other => return Err(format!("sample timestamp {other:?}")),
                };
                let v = match &pair[1] {
                    Frame::Simple(b) | Frame::Bulk(b) => String::from_utf8_lossy(b)
                        .parse()
                        .map_err(|_| format!("sample value {b:?}"))?,
                    Frame::Double(d) => *d,
                    other => return Err(format!("sample value {other:?}")),
                };
                Ok((ts, v))
            }
            other => Err(format!("sample {other:?}")),
        })
        .collect()
}

fn applied_index(cluster: &Cluster, i: usize) -> Result<u64, String> {
    let r = cluster.replication(i)?;
    r.fields
        .get("raft_applied_index")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("node {} reports no raft_applied_index", i + 1))
}

/// Node `i`'s copy of every key of the workload, read locally (READONLY).
fn dump(cluster: &Cluster, i: usize) -> Result<String, String> {
    let mut c = Client::try_connect_to(cluster.node(i).addr(), workload::CALL_TIMEOUT)
        .map_err(|e| e.to_string())?;
    let mut call = |args: &[&str]| c.call_within(args, workload::CALL_TIMEOUT);
    if call(&["READONLY"])? != Frame::ok() {
        return Err("READONLY refused".into());
    }
    let mut out = String::new();
    let _ = writeln!(out, "dbsize {:?}", call(&["DBSIZE"])?);
    for k in 0..workload::SERIES {
        let key = workload::series_key(k);
        let _ = writeln!(out, "{key} {:?}", call(&["TS.RANGE", &key, "-", "+"])?);
    }
    for k in 0..workload::COUNTERS {
        let key = workload::counter_key(k);
        let _ = writeln!(out, "{key} {:?}", call(&["GET", &key])?);
    }
    for k in 0..workload::REGISTERS {
        let key = workload::register_key(k);
        let _ = writeln!(out, "{key} {:?}", call(&["GET", &key])?);
    }
    Ok(out)
}

/// Every node's dump, taken while all report the same applied index before and after it.
fn replica_dumps(cluster: &Cluster) -> Result<Vec<(usize, u64, String)>, String> {
    let deadline = Instant::now() + CONVERGENCE;
    let mut last = String::new();
    while Instant::now() < deadline {
        let before: Result<Vec<u64>, String> = (0..cluster.len())
            .map(|i| applied_index(cluster, i))
            .collect();
        match before {
            Ok(b) if b.windows(2).all(|w| w[0] == w[1]) => {
                let dumps: Result<Vec<String>, String> =
                    (0..cluster.len()).map(|i| dump(cluster, i)).collect();
                let after: Result<Vec<u64>, String> = (0..cluster.len())
                    .map(|i| applied_index(cluster, i))
                    .collect();
                match (dumps, after) {
                    (Ok(d), Ok(a)) if a == b => {
                        return Ok(d
                            .into_iter()
                            .enumerate()
                            .map(|(i, d)| (i, b[i], d))
                            .collect());
                    }
                    (Err(e), _) | (_, Err(e)) => last = e,
                    _ => last = "the applied index moved during the dump".into(),
                }
            }
            Ok(b) => last = format!("applied indexes differ: {b:?}"),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!(
        "the replicas did not reach one applied index within {CONVERGENCE:?}: {last}"
    ))
}

/// Lines containing `needle` in each node's log.
fn count_in_logs(cluster: &Cluster, needle: &str) -> Vec<usize> {
    (0..cluster.len())
        .map(|i| cluster.node(i).log().matches(needle).count())
        .collect()
}

/// The acknowledged writes' completion times, sorted.
fn ack_times(ops: &[Op]) -> Vec<u64> {
    let mut t: Vec<u64> = ops
        .iter()
        .filter(|o| o.call.is_write() && o.is_ok() && o.client != FINAL_CLIENT)
        .map(|o| o.complete_us)
        .collect();
    t.sort_unstable();
    t
}

/// The longest time without an acknowledged write in `[0, until_us]`, and when it began.
fn longest_gap(acks: &[u64], until_us: u64) -> (u64, u64) {
    let mut best = (0, 0);
    let mut prev = 0;
    for &t in acks.iter().chain([until_us].iter()) {
        let t = t.min(until_us);
        if t.saturating_sub(prev) > best.0 {
            best = (t - prev, prev);
        }
        prev = prev.max(t);
    }
    best
}

#[allow(clippy::too_many_arguments)]
fn summary(
    s: &Settings,
    faults: &[faults::Fault],
    ops: &[Op],
    healed_us: u64,
    end_us: u64,
    snapshots: &[usize],
    replicas: &Result<Vec<(usize, u64, String)>, String>,
    lin: &str,
    violations: &[String],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "=== nemesis: seed {} | {} s of faults | {} clients | compaction every {} entries | {} syncs",
        s.seed,
        s.seconds,
        s.clients,
        s.compaction,
        s.sync_mode()
    );
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for f in faults {
        *by_kind.entry(f.kind.name()).or_default() += 1;
    }
    let kinds: Vec<String> = by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(out, "faults: {} ({})", faults.len(), kinds.join(", "));
    let client_ops: Vec<&Op> = ops.iter().filter(|o| o.client != FINAL_CLIENT).collect();
    let count = |f: &dyn Fn(&Op) -> bool| client_ops.iter().filter(|o| f(o)).count();
    let _ = writeln!(
        out,
        "operations: {} (ok {}, failed {}, unknown {})",
        client_ops.len(),
        count(&|o| o.is_ok()),
        count(&|o| o.is_failed()),
        count(&|o| o.is_unknown())
    );
    for name in ["TS.ADD", "INCR", "SET", "GET"] {
        let of = |f: &dyn Fn(&Op) -> bool| count(&|o| o.call.name() == name && f(o));
        let _ = writeln!(
            out,
            "  {name:<7} ok {:>6}  failed {:>5}  unknown {:>4}",
            of(&|o| o.is_ok()),
            of(&|o| o.is_failed()),
            of(&|o| o.is_unknown())
        );
    }
    let acks = ack_times(ops);
    let seconds = end_us.div_ceil(1_000_000).max(1);
    let live_seconds = (0..seconds)
        .filter(|&sec| {
            let lo = sec * 1_000_000;
            let i = acks.partition_point(|&t| t < lo);
            acks.get(i).is_some_and(|&t| t < lo + 1_000_000)
        })
        .count();
    let (gap, gap_at) = longest_gap(&acks, healed_us);
    let ok_share = 100.0 * count(&|o| o.is_ok()) as f64 / client_ops.len().max(1) as f64;
    let _ = writeln!(
        out,
        "availability: {ok_share:.1}% of operations ok; {live_seconds} of {seconds} seconds saw an \
         acknowledged write; longest window without one (under faults): {:.2} s from {:.2} s",
        gap as f64 / 1e6,
        gap_at as f64 / 1e6
    );
    let _ = writeln!(out, "snapshots installed per node: {snapshots:?}");
    let _ = writeln!(out, "{lin}");
    if let Ok(dumps) = replicas {
        let applied: Vec<u64> = dumps.iter().map(|d| d.1).collect();
        let _ = writeln!(out, "replicas compared at applied index {applied:?}");
    }
    if violations.is_empty() {
        let _ = writeln!(out, "checks: all passed");
    } else {
        let _ = writeln!(out, "checks: {} VIOLATION(S)", violations.len());
        for v in violations {
            let _ = writeln!(out, "  - {v}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rng_is_seeded_and_bounded() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let xs: Vec<u64> = (0..100).map(|_| a.range(3, 5)).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.range(3, 5)).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|x| (3..=5).contains(x)));
        assert!(xs.contains(&3) && xs.contains(&5));
        assert_ne!(Rng::new(8).next_u64(), Rng::new(7).next_u64());
    }

    #[test]
    fn the_longest_gap_counts_the_edges() {
        assert_eq!(longest_gap(&[], 10), (10, 0));
        assert_eq!(longest_gap(&[2, 3, 9], 10), (6, 3));
        assert_eq!(longest_gap(&[7, 8], 10), (7, 0));
    }

    #[test]
    fn ranges_parse() {
        let f = Frame::Array(vec![Frame::Array(vec![
            Frame::Integer(5),
            Frame::Simple(bytes::Bytes::from_static(b"2")),
        ])]);
        assert_eq!(parse_range(&f), Ok(vec![(5, 2.0)]));
        assert!(parse_range(&Frame::Integer(1)).is_err());
    }
}
