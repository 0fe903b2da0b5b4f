//! The real driver and RESP endpoint on turmoil's simulated network: three nodes, clients that
//! speak RESP, and partitions, crashes, bounces and held links. Every run is bounded in
//! simulated time and seeded; a failure names its seed.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use tickdb_core::resp::Frame;
use tickdb_sim::turmoil_harness::{
    ClientError, Harness, HarnessConfig, RespClient, info_field, node_name,
};

const NODES: [u64; 3] = [1, 2, 3];

/// How long a cluster may take to elect a leader or converge after faults stop.
const SETTLE: Duration = Duration::from_secs(20);

/// What a write's reply says about it.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    /// `+OK`: must be readable from now on.
    Acked,
    /// Refused before it could apply (TRYAGAIN, CLUSTERDOWN, ...).
    Refused(String),
    /// TIMEOUT reply or no reply: may or may not have applied.
    Unknown(String),
}

/// Writes observed by a client, by key: (value, outcome).
type History = Rc<RefCell<BTreeMap<String, (String, Outcome)>>>;

fn err_text(frame: &Frame) -> String {
    match frame {
        Frame::Error(b) | Frame::BulkError(b) => String::from_utf8_lossy(b).into_owned(),
        other => format!("{other:?}"),
    }
}

/// A connection to one node, reopened after any failure.
struct Conn {
    id: u64,
    client: Option<RespClient>,
}

impl Conn {
    fn new(id: u64) -> Self {
        Self { id, client: None }
    }

    async fn call(&mut self, args: &[&[u8]]) -> Result<Frame, ClientError> {
        if self.client.is_none() {
            let mut c = RespClient::connect(self.id).await?;
            // Followers answer reads from their own state: convergence checks need that.
            c.call(&[b"READONLY"]).await?;
            self.client = Some(c);
        }
        let Some(client) = self.client.as_mut() else {
            unreachable!("connected above")
        };
        let reply = client.call(args).await;
        if reply.is_err() {
            self.client = None;
        }
        reply
    }

    async fn set(&mut self, key: &str, value: &str) -> Outcome {
        match self.call(&[b"SET", key.as_bytes(), value.as_bytes()]).await {
            Ok(f) if f == Frame::ok() => Outcome::Acked,
            Ok(f) => {
                let text = err_text(&f);
                if text.starts_with("TIMEOUT") {
                    Outcome::Unknown(text)
                } else {
                    Outcome::Refused(text)
                }
            }
            Err(e) => Outcome::Unknown(e.to_string()),
        }
    }

    async fn role(&mut self) -> Option<(String, u64)> {
        let info = self.call(&[b"INFO", b"replication"]).await.ok()?;
        let role = info_field(&info, "raft_role")?;
        let leader = info_field(&info, "raft_leader_id")?.parse().ok()?;
        Some((role, leader))
    }
}

/// Polls `among` until one of them is the leader they all agree on; `None` after [`SETTLE`].
async fn wait_leader(among: &[u64]) -> Option<u64> {
    let deadline = tokio::time::Instant::now() + SETTLE;
    let mut conns: Vec<Conn> = among.iter().map(|&id| Conn::new(id)).collect();
    while tokio::time::Instant::now() < deadline {
        let mut leaders = Vec::new();
        let mut seen = Vec::new();
        for c in &mut conns {
            match c.role().await {
                Some((role, leader)) => {
                    if role == "leader" {
                        leaders.push(c.id);
                    }
                    seen.push(leader);
                }
                None => seen.push(0),
            }
        }
        if let [l] = leaders[..]
            && seen.iter().all(|s| *s == l)
        {
            return Some(l);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Polls every node until each holds every acknowledged write and none of `absent`; the
/// first mismatch after [`SETTLE`] is the error.
async fn converge(history: &History, absent: &[String]) -> Result<(), String> {
    let expected: Vec<(String, String)> = history
        .borrow()
        .iter()
        .filter(|(_, (_, o))| *o == Outcome::Acked)
        .map(|(k, (v, _))| (k.clone(), v.clone()))
        .collect();
    let deadline = tokio::time::Instant::now() + SETTLE;
    let mut conns: Vec<Conn> = NODES.iter().map(|&id| Conn::new(id)).collect();
    'poll: loop {
        let mut mismatch = None;
        'nodes: for c in &mut conns {
            for (k, v) in &expected {
                let got = c.call(&[b"GET", k.as_bytes()]).await;
                if got.as_ref().ok() != Some(&Frame::bulk(v.clone())) {
                    mismatch = Some(format!("node {} GET {k}: {got:?}, want {v}", c.id));
                    break 'nodes;
                }
            }
            for k in absent {
                let got = c.call(&[b"GET", k.as_bytes()]).await;
                if got.as_ref().ok() != Some(&Frame::Null) {
                    mismatch = Some(format!("node {} GET {k}: {got:?}, want nil", c.id));
                    break 'nodes;
                }
            }
        }
        match mismatch {
            None => break 'poll Ok(()),
            Some(m) if tokio::time::Instant::now() >= deadline => break 'poll Err(m),
            Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn acked(history: &History) -> usize {
    history
        .borrow()
        .values()
        .filter(|(_, o)| *o == Outcome::Acked)
        .count()
}

fn others(leader: u64) -> Vec<u64> {
    NODES.iter().copied().filter(|&n| n != leader).collect()
}

/// The test's pinned seed, or `TICKDB_TURMOIL_SEED` to replay or explore another.
fn seed_or(pinned: u64) -> u64 {
    std::env::var("TICKDB_TURMOIL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(pinned)
}

fn replay(seed: u64) -> String {
    format!("TICKDB_TURMOIL_SEED={seed} cargo test -p tickdb-sim --release --test turmoil")
}

/// Runs the harness until its clients finish, failing with the seed on error or overtime.
fn finish(h: &mut Harness, within: Duration) {
    let seed = h.config().seed;
    match h.run_until_clients_done(within) {
        Ok(true) => {}
        Ok(false) => panic!(
            "seed {seed}: clients did not finish within {within:?} simulated\nreplay: {}",
            replay(seed)
        ),
        Err(e) => panic!("seed {seed}: {e}\nreplay: {}", replay(seed)),
    }
}

/// (a) Writes through the leader and both followers are acknowledged and every node ends up
/// holding all of them.
#[test]
fn writes_through_every_node_converge() {
    let seed = seed_or(1);
    let mut h = Harness::new(HarnessConfig::new(seed));
    let history = History::default();
    let hist = Rc::clone(&history);
    h.sim.client("client", async move {
        let leader = wait_leader(&NODES).await.ok_or("no leader elected")?;
        let mut conns: Vec<Conn> = NODES.iter().map(|&id| Conn::new(id)).collect();
        for i in 0..30 {
            let c = &mut conns[i % NODES.len()];
            let (k, v) = (format!("k{i}"), format!("v{i}-via{}", c.id));
            let outcome = c.set(&k, &v).await;
            hist.borrow_mut().insert(k, (v, outcome));
        }
        assert_eq!(acked(&hist), 30, "leader {leader}: {:?}", hist.borrow());
        converge(&hist, &[]).await?;
        Ok(())
    });
    finish(&mut h, Duration::from_secs(60));
    assert_eq!(acked(&history), 30);
}

/// Sim-time-stamped events of a run, to compare two runs of one seed.
type Trace = Rc<RefCell<Vec<String>>>;

fn note(trace: &Trace, event: String) {
    let at = turmoil::sim_elapsed().unwrap_or_default();
    trace.borrow_mut().push(format!("{at:?} {event}"));
}

/// The partition scenario of (b) as one client; returns its history and trace.
fn run_partition(seed: u64) -> (History, Trace) {
    let mut h = Harness::new(HarnessConfig::new(seed));
    let history = History::default();
    let trace = Trace::default();
    let (hist, tr) = (Rc::clone(&history), Rc::clone(&trace));
    h.sim.client("client", async move {
        let old = wait_leader(&NODES).await.ok_or("no leader elected")?;
        note(&tr, format!("leader {old}"));
        let mut conns: BTreeMap<u64, Conn> = NODES.iter().map(|&id| (id, Conn::new(id))).collect();
        for i in 0..5 {
            let (k, v) = (format!("before{i}"), format!("v{i}"));
            let outcome = conns.get_mut(&old).ok_or("conn")?.set(&k, &v).await;
            assert_eq!(outcome, Outcome::Acked, "healthy cluster refused {k}");
            note(&tr, format!("{k} {outcome:?}"));
            hist.borrow_mut().insert(k, (v, outcome));
        }

        let majority = others(old);
        for n in &majority {
            turmoil::partition(node_name(old), node_name(*n));
        }
        // The isolated leader answers writes with an error or not at all, never +OK.
        let mut isolated = Vec::new();
        for i in 0..5 {
            let (k, v) = (format!("isolated{i}"), format!("v{i}"));
            let outcome = conns.get_mut(&old).ok_or("conn")?.set(&k, &v).await;
            assert_ne!(
                outcome,
                Outcome::Acked,
                "isolated node {old} acknowledged {k}"
            );
            if let Outcome::Refused(text) = &outcome {
                assert!(
                    ["TRYAGAIN", "CLUSTERDOWN", "TIMEOUT"]
                        .iter()
                        .any(|p| text.starts_with(p)),
                    "unexpected refusal: {text}"
                );
            }
            note(&tr, format!("{k} {outcome:?}"));
            hist.borrow_mut().insert(k.clone(), (v, outcome));
            isolated.push(k);
        }
        let new = wait_leader(&majority)
            .await
            .ok_or("the majority elected no leader")?;
        assert_ne!(new, old);
        note(&tr, format!("leader {new}"));
        for i in 0..10 {
            let via = majority[i % majority.len()];
            let (k, v) = (format!("during{i}"), format!("v{i}-via{via}"));
            let outcome = conns.get_mut(&via).ok_or("conn")?.set(&k, &v).await;
            assert_eq!(outcome, Outcome::Acked, "majority refused {k}");
            note(&tr, format!("{k} {outcome:?}"));
            hist.borrow_mut().insert(k, (v, outcome));
        }

        for n in &majority {
            turmoil::repair(node_name(old), node_name(*n));
        }
        converge(&hist, &isolated).await?;
        note(&tr, "converged".into());
        Ok(())
    });
    finish(&mut h, Duration::from_secs(90));
    (history, trace)
}

/// (b) The leader is cut off from both followers: the majority elects another leader and
/// takes writes, the isolated node acknowledges none, and after the repair every node holds
/// exactly the acknowledged writes (the isolated node's unacknowledged ones are gone).
#[test]
fn partitioned_leader_never_acknowledges_and_the_majority_goes_on() {
    let (history, _) = run_partition(seed_or(2));
    assert_eq!(acked(&history), 15);
}

/// The same seed yields the same run: every outcome at the same simulated instant.
#[test]
fn a_seed_replays_identically() {
    let seed = seed_or(5);
    let (first, second) = (run_partition(seed).1, run_partition(seed).1);
    assert!(first.borrow().len() > 20, "{:?}", first.borrow());
    assert_eq!(*first.borrow(), *second.borrow(), "seed {seed} diverged");
}

/// (c) A writer keeps writing through every node while the leader crashes and comes back,
/// a follower is bounced (killed and restarted at once), and then all three nodes crash
/// together and restart: every acknowledged write is readable on every node afterwards.
#[test]
fn crash_and_bounce_under_load_keep_acknowledged_writes() {
    let seed = seed_or(3);
    let mut h = Harness::new(HarnessConfig::new(seed));
    let history = History::default();
    let leader = Rc::new(Cell::new(0u64));
    let load_done = Rc::new(Cell::new(false));
    {
        let (hist, leader, load_done) = (
            Rc::clone(&history),
            Rc::clone(&leader),
            Rc::clone(&load_done),
        );
        h.sim.client("writer", async move {
            leader.set(wait_leader(&NODES).await.ok_or("no leader elected")?);
            let mut conns: Vec<Conn> = NODES.iter().map(|&id| Conn::new(id)).collect();
            for i in 0..300 {
                let c = &mut conns[i % NODES.len()];
                let (k, v) = (format!("k{i}"), format!("v{i}"));
                let outcome = c.set(&k, &v).await;
                hist.borrow_mut().insert(k, (v, outcome));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            load_done.set(true);
            Ok(())
        });
    }
    let seed_msg = format!("seed {seed} (replay: {})", replay(seed));
    h.run_for(Duration::from_secs(1)).expect(&seed_msg);
    while leader.get() == 0 {
        h.run_for(Duration::from_millis(100)).expect(&seed_msg);
        assert!(h.sim.elapsed() < SETTLE, "{seed_msg}: no leader");
    }
    let first = leader.get();
    let written_before = acked(&history);
    h.crash(first);
    h.run_for(Duration::from_secs(3)).expect(&seed_msg);
    h.bounce(first);
    h.run_for(Duration::from_secs(2)).expect(&seed_msg);
    let follower = others(first)[0];
    h.bounce(follower);
    h.run_for(Duration::from_secs(2)).expect(&seed_msg);
    // The whole cluster loses power at once: only what each node synced survives, so an
    // acknowledged write that was not durable on a majority would be gone.
    for id in NODES {
        h.crash(id);
    }
    h.run_for(Duration::from_millis(500)).expect(&seed_msg);
    for id in NODES {
        h.bounce(id);
    }
    while !load_done.get() {
        h.run_for(Duration::from_millis(100)).expect(&seed_msg);
        assert!(
            h.sim.elapsed() < Duration::from_secs(100),
            "{seed_msg}: load overran"
        );
    }
    assert!(
        acked(&history) > written_before + 50,
        "{seed_msg}: the cluster acknowledged too little under faults: {:?}",
        history.borrow()
    );

    let hist = Rc::clone(&history);
    h.sim.client("checker", async move {
        converge(&hist, &[]).await?;
        Ok(())
    });
    finish(&mut h, Duration::from_secs(60));
    for id in NODES {
        assert!(h.store(id).sync_count() > 0, "node {id} never synced");
    }
    let (mut refused, mut unknown) = (0, 0);
    for (_, o) in history.borrow().values() {
        match o {
            Outcome::Acked => {}
            Outcome::Refused(_) => refused += 1,
            Outcome::Unknown(_) => unknown += 1,
        }
    }
    eprintln!(
        "seed {seed}: {} acked, {refused} refused, {unknown} unknown, {:?} simulated",
        acked(&history),
        h.sim.elapsed()
    );
}

/// (d) Links held and released (messages delayed, then delivered at once): first one
/// follower's link, then both for longer than an election timeout. No acknowledged write is
/// lost.
#[test]
fn held_links_delay_but_lose_no_acknowledged_write() {
    let seed = seed_or(4);
    let mut h = Harness::new(HarnessConfig::new(seed));
    let history = History::default();
    let hist = Rc::clone(&history);
    h.sim.client("client", async move {
        let leader = wait_leader(&NODES).await.ok_or("no leader elected")?;
        let followers = others(leader);
        let mut conns: Vec<Conn> = NODES.iter().map(|&id| Conn::new(id)).collect();
        let mut i = 0;
        // Writes `n` keys round-robin over the nodes; returns (node, outcome) of each.
        let mut write_some = async |conns: &mut Vec<Conn>, n: usize, tag: &str| {
            let mut outcomes = Vec::new();
            for _ in 0..n {
                let c = &mut conns[i % NODES.len()];
                let (k, v) = (format!("{tag}{i}"), format!("v{i}"));
                let outcome = c.set(&k, &v).await;
                outcomes.push((c.id, outcome.clone()));
                hist.borrow_mut().insert(k, (v, outcome));
                i += 1;
            }
            outcomes
        };

        // One follower's link held: the leader and the other follower still make a
        // majority, so writes through either are acknowledged (the held follower knows no
        // leader and may refuse).
        turmoil::hold(node_name(leader), node_name(followers[0]));
        for (via, outcome) in write_some(&mut conns, 15, "one").await {
            if via != followers[0] {
                assert_eq!(outcome, Outcome::Acked, "majority via {via} refused");
            }
        }
        turmoil::release(node_name(leader), node_name(followers[0]));

        // Both links held past the election timeout: the followers may elect another leader
        // while the old one's messages wait, then arrive stale. Outcomes here may be anything
        // but +OK must still mean durable.
        for f in &followers {
            turmoil::hold(node_name(leader), node_name(*f));
        }
        write_some(&mut conns, 6, "both").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        for f in &followers {
            turmoil::release(node_name(leader), node_name(*f));
        }
        wait_leader(&NODES).await.ok_or("no leader after release")?;
        for (via, outcome) in write_some(&mut conns, 15, "after").await {
            assert_eq!(outcome, Outcome::Acked, "healed cluster refused via {via}");
        }
        converge(&hist, &[]).await?;
        Ok(())
    });
    finish(&mut h, Duration::from_secs(90));
    assert!(acked(&history) >= 25, "{:?}", history.borrow());
}

/// (e) A follower held back (its inbound link from the leader held) while the leader runs
/// past the compaction point, then released: the held appends, heartbeats and snapshot chunks
/// arrive together and the real driver feeds them in one batch, as after a SIGSTOP or a healed
/// partition. It catches up from a snapshot and every INCR counts once on every node (the
/// double apply under a snapshot install lost acknowledged writes and counted twice).
#[test]
fn a_held_back_follower_catches_up_from_a_snapshot_and_counts_once() {
    // Cheap runs; with the fix reverted, seeds 6 and 8 fail (5 and 7 happen not to batch
    // the commit news with the last chunk).
    match std::env::var("TICKDB_TURMOIL_SEED") {
        Ok(_) => held_back_follower(seed_or(0)),
        Err(_) => (5..9).for_each(held_back_follower),
    }
}

fn held_back_follower(seed: u64) {
    let mut h = Harness::new(HarnessConfig::new(seed));
    // (INCRs acknowledged, each node's final count, snapshots the held node installed)
    type Counts = (i64, Vec<i64>, u64);
    let result: Rc<RefCell<Option<Counts>>> = Rc::default();
    let out = Rc::clone(&result);
    let compaction = h.config().compaction_entries;
    h.sim.client("client", async move {
        let leader = wait_leader(&NODES).await.ok_or("no leader elected")?;
        let held = others(leader)[0];
        let mut conn = Conn::new(leader);
        let mut acked = 0i64;
        let mut incr = async |conn: &mut Conn| -> Result<(), String> {
            match conn.call(&[b"INCR", b"n"]).await {
                Ok(Frame::Integer(v)) => {
                    acked += 1;
                    assert_eq!(v, acked, "INCR replies count every acknowledged INCR once");
                    Ok(())
                }
                other => Err(format!("INCR through the healthy majority: {other:?}")),
            }
        };
        for _ in 0..10 {
            incr(&mut conn).await?;
        }
        turmoil::hold(node_name(leader), node_name(held));
        for _ in 0..(3 * compaction) {
            incr(&mut conn).await?;
        }
        turmoil::release(node_name(leader), node_name(held));
        for _ in 0..10 {
            incr(&mut conn).await?;
        }
        // Every node's own copy (READONLY) reaches the count, and never passes it.
        let deadline = tokio::time::Instant::now() + SETTLE;
        let mut finals = Vec::new();
        for id in NODES {
            let mut c = Conn::new(id);
            loop {
                let n = match c.call(&[b"GET", b"n"]).await {
                    Ok(Frame::Bulk(b)) => String::from_utf8_lossy(&b).parse().unwrap_or(-1),
                    _ => -1,
                };
                if n == acked || tokio::time::Instant::now() > deadline {
                    finals.push(n);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let info = Conn::new(held)
            .call(&[b"INFO", b"replication"])
            .await
            .map_err(|e| e.to_string())?;
        let installed = info_field(&info, "raft_snapshots_installed")
            .and_then(|v| v.parse().ok())
            .ok_or("INFO has raft_snapshots_installed")?;
        *out.borrow_mut() = Some((acked, finals, installed));
        Ok(())
    });
    finish(&mut h, Duration::from_secs(90));
    let (acked, finals, installed) = result.borrow_mut().take().expect("the client finished");
    assert_eq!(
        finals,
        vec![acked; 3],
        "seed {seed}: every node counts each INCR once"
    );
    assert!(
        installed >= 1,
        "seed {seed}: the held-back follower caught up without a snapshot"
    );
}
