//! The ZeroMQ mesh over real TCP on 127.0.0.1: addressing, restart, limits.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use tickdb_io::{Mesh, MeshConfig, MeshError, MeshReceiver};
use tokio::time::{Instant, timeout};

/// Upper bound for anything that should happen "soon" on a loaded 2-core machine.
const SOON: Duration = Duration::from_secs(15);

fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind ephemeral port")
}

fn config(node: u64, addrs: &BTreeMap<u64, SocketAddr>) -> MeshConfig {
    let peers = addrs
        .iter()
        .filter(|&(&id, _)| id != node)
        .map(|(&id, &a)| (id, a))
        .collect();
    MeshConfig::new(node, addrs[&node], peers)
}

/// Starts one mesh per id, all on ephemeral ports, all knowing each other.
async fn cluster(ids: &[u64]) -> (BTreeMap<u64, SocketAddr>, Vec<(Mesh, MeshReceiver)>) {
    let listeners: Vec<_> = ids.iter().map(|_| listener()).collect();
    let addrs: BTreeMap<u64, SocketAddr> = ids
        .iter()
        .zip(&listeners)
        .map(|(&id, l)| (id, l.local_addr().unwrap()))
        .collect();
    let mut meshes = Vec::new();
    for (&id, l) in ids.iter().zip(listeners) {
        meshes.push(
            Mesh::start_on(config(id, &addrs), l)
                .await
                .expect("start mesh"),
        );
    }
    (addrs, meshes)
}

/// Waits (bounded) until `check` holds for the mesh's stats; the monitor tasks that count
/// connections run asynchronously.
async fn eventually(mesh: &Mesh, what: &str, check: impl Fn(&tickdb_io::MeshStats) -> bool) {
    let started = Instant::now();
    while !check(&mesh.stats()) {
        assert!(started.elapsed() < SOON, "{what}: {:?}", mesh.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn recv(rx: &mut MeshReceiver) -> (u64, Vec<u8>) {
    timeout(SOON, rx.recv())
        .await
        .expect("message within the deadline")
        .expect("mesh alive")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addressed_messages_reach_only_their_recipient_with_sender() {
    const PER_PAIR: u64 = 500;
    let ids = [1u64, 2, 3];
    let (_, mut meshes) = cluster(&ids).await;
    for (mesh, _) in &meshes {
        for &to in &ids {
            if to != mesh.node_id() {
                for k in 0..PER_PAIR {
                    let body = format!("{}->{to}#{k}", mesh.node_id());
                    mesh.send(to, body.into_bytes()).expect("queued");
                }
            }
        }
    }
    for (mesh, rx) in &mut meshes {
        let me = mesh.node_id();
        let mut next: BTreeMap<u64, u64> = BTreeMap::new();
        for _ in 0..PER_PAIR * 2 {
            let (from, bytes) = recv(rx).await;
            let text = String::from_utf8(bytes).unwrap();
            let k = next.entry(from).or_default();
            assert_eq!(
                text,
                format!("{from}->{me}#{k}"),
                "addressing, sender or order"
            );
            *k += 1;
        }
        assert_eq!(next.len(), 2, "both peers heard from");
        // Nothing else arrives: no message meant for another node.
        let extra = timeout(Duration::from_millis(300), rx.recv()).await;
        assert!(extra.is_err(), "unexpected extra message {extra:?}");
        let stats = mesh.stats();
        for (peer, link) in &stats.links {
            assert_eq!(link.messages_in, PER_PAIR, "in from {peer}");
            assert_eq!(link.messages_out, PER_PAIR, "out to {peer}");
            assert!(link.outbound_connected, "link to {peer}");
            assert!(link.bytes_out > 0 && link.bytes_in > 0);
        }
        assert_eq!(stats.rejected_in, 0);
        eventually(mesh, "one inbound connection per peer", |s| {
            s.links.values().all(|l| l.inbound_connections == 1)
        })
        .await;
    }
}

/// Sends `to` a message every 50 ms until `rx` receives one from `from`, within `SOON`.
async fn until_delivered(sender: &Mesh, to: u64, rx: &mut MeshReceiver) -> Duration {
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < SOON,
            "no delivery from {} to {to}",
            sender.node_id()
        );
        // Ignore QueueFull: the link may still be reconnecting.
        let _ = sender.send(to, b"ping".to_vec());
        if let Ok(Some((from, bytes))) = timeout(Duration::from_millis(50), rx.recv()).await {
            assert_eq!(
                (from, bytes.as_slice()),
                (sender.node_id(), b"ping".as_slice())
            );
            return started.elapsed();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_flow_again_after_a_peer_restarts_on_the_same_port() {
    let (addrs, mut meshes) = cluster(&[1, 2]).await;
    let (b, mut b_rx) = meshes.pop().unwrap();
    let (a, mut a_rx) = meshes.pop().unwrap();
    until_delivered(&a, 2, &mut b_rx).await;
    until_delivered(&b, 1, &mut a_rx).await;

    drop(b);
    drop(b_rx);
    // Give A's link time to notice the loss before the peer comes back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !a.stats().links[&2].outbound_connected,
        "A must see the link down"
    );

    let (b2, mut b2_rx) = Mesh::start(config(2, &addrs))
        .await
        .expect("rebind same port");
    let a_to_b = until_delivered(&a, 2, &mut b2_rx).await;
    let b_to_a = until_delivered(&b2, 1, &mut a_rx).await;
    println!("after restart: A->B in {a_to_b:?}, B->A in {b_to_a:?}");
    let link = &a.stats().links[&2];
    assert!(link.connects >= 2, "A reconnected: {link:?}");
    assert!(link.outbound_connected);
    eventually(&a, "B's new connection to A", |s| {
        s.links[&2].inbound_connections == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_refused_on_send_and_dropped_on_receipt() {
    let l1 = listener();
    let l2 = listener();
    let addrs = BTreeMap::from([(1, l1.local_addr().unwrap()), (2, l2.local_addr().unwrap())]);
    let mut c1 = config(1, &addrs);
    c1.max_message_bytes = 1000;
    let mut c2 = config(2, &addrs);
    c2.max_message_bytes = 100;
    let (m1, _rx1) = Mesh::start_on(c1, l1).await.unwrap();
    let (m2, mut rx2) = Mesh::start_on(c2, l2).await.unwrap();

    let err = m2
        .send(1, vec![0; 101])
        .expect_err("over the sender's limit");
    assert!(
        matches!(err, MeshError::TooLarge { len: 101, max: 100 }),
        "{err}"
    );
    assert!(m2.send(1, vec![0; 100]).is_ok(), "at the limit is fine");
    assert!(matches!(m2.send(9, vec![]), Err(MeshError::UnknownPeer(9))));

    // Node 1 allows 1000 bytes, node 2 only 100: node 2 drops the big one, keeps the small.
    m1.send(2, vec![1; 500]).unwrap();
    m1.send(2, vec![2; 50]).unwrap();
    let (from, bytes) = recv(&mut rx2).await;
    assert_eq!((from, bytes), (1, vec![2; 50]));
    assert_eq!(m2.stats().rejected_in, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_instead_of_blocking() {
    // A peer address where nothing listens: the link never connects, the queue only fills.
    let dead = listener().local_addr().unwrap();
    let me = listener();
    let mut c = MeshConfig::new(1, me.local_addr().unwrap(), vec![(2, dead)]);
    c.send_queue_per_peer = 4;
    let (m, _rx) = Mesh::start_on(c, me).await.unwrap();
    let started = std::time::Instant::now();
    let results: Vec<_> = (0..10).map(|i| m.send(2, vec![i; 10])).collect();
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "send must not block"
    );
    // The link takes nothing from its queue until it is connected: exactly 4 fit.
    for r in &results[..4] {
        assert!(r.is_ok(), "{r:?}");
    }
    for r in &results[4..] {
        assert!(matches!(r, Err(MeshError::QueueFull(2))), "{r:?}");
    }
    let link = &m.stats().links[&2];
    assert_eq!(link.dropped_queue_full, 6);
    assert!(!link.outbound_connected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_join_and_leave_while_the_mesh_runs() {
    let (addrs, mut meshes) = cluster(&[1, 2]).await;
    // Node 3 starts knowing 1 and 2; they learn of it later (CLUSTER ADDNODE).
    let l3 = listener();
    let a3 = l3.local_addr().unwrap();
    let mut all = addrs.clone();
    all.insert(3, a3);
    let (m3, mut rx3) = Mesh::start_on(config(3, &all), l3).await.expect("start");
    // Before node 1 knows node 3, it neither sends to nor accepts from it.
    assert!(matches!(
        meshes[0].0.send(3, b"x".to_vec()),
        Err(MeshError::UnknownPeer(3))
    ));
    m3.send(1, b"early".to_vec()).expect("queued");
    eventually(&meshes[0].0, "message from a stranger rejected", |s| {
        s.rejected_in >= 1
    })
    .await;
    meshes[0].0.set_peer(3, a3).expect("add");
    let (mesh1, rx1) = &mut meshes[0];
    until_delivered(mesh1, 3, &mut rx3).await;
    until_delivered(&m3, 1, rx1).await;
    // Let the pings still in flight arrive before node 3 leaves.
    while timeout(Duration::from_millis(300), rx1.recv())
        .await
        .is_ok()
    {}
    // Node 3 leaves: node 1 drops the link and refuses its messages again.
    mesh1.remove_peer(3);
    assert!(matches!(
        mesh1.send(3, b"x".to_vec()),
        Err(MeshError::UnknownPeer(3))
    ));
    let before = mesh1.stats().rejected_in;
    m3.send(1, b"late".to_vec()).expect("queued");
    eventually(mesh1, "message from a removed peer rejected", |s| {
        s.rejected_in > before
    })
    .await;
    let after = timeout(Duration::from_millis(300), rx1.recv()).await;
    assert!(
        after.is_err(),
        "nothing from node 3 once it left: {after:?}"
    );
}
