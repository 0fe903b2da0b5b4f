//! Requests per second over ZeroMQ (DEALER clients) and over TCP, the same workload on the same
//! server in one run: 1 and 50 clients, one request per round trip or 16 pipelined, for SET and
//! GET. Each client runs a closed loop (send, wait for all replies, repeat).
//!
//! Run against a running tickdb (`bench/zmq_bench.sh` starts one):
//! `cargo run --release -p tickdb-tests --example zmq_bench -- tcp://127.0.0.1:7379 127.0.0.1:6379 [seconds]`

use std::time::{Duration, Instant};

use tickdb_core::resp::{self, Limits};
use tickdb_tests::zmq::{Dealer, request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Clone, Copy, Debug)]
enum Transport {
    Zmq,
    Tcp,
}

/// One request of the workload for client `c`, iteration `i`.
fn command(name: &str, c: usize, i: u64) -> Vec<u8> {
    let key = format!("bench:{c}:{}", i % 1000);
    match name {
        "SET" => request(&["SET", &key, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]),
        _ => request(&["GET", &key]),
    }
}

/// Counts the complete replies at the start of `buf`; returns (count, bytes used).
fn count_replies(buf: &[u8]) -> (usize, usize) {
    let (mut n, mut pos) = (0, 0);
    while let Ok(Some((frame, used))) = resp::decode(&buf[pos..], &Limits::default()) {
        assert!(!frame.is_error(), "error reply: {frame:?}");
        n += 1;
        pos += used;
    }
    (n, pos)
}

async fn zmq_client(
    endpoint: String,
    name: &'static str,
    c: usize,
    pipeline: usize,
    end: Instant,
) -> u64 {
    let mut d = Dealer::connect(&endpoint).await;
    let mut done = 0u64;
    while Instant::now() < end {
        let mut payload = Vec::new();
        for k in 0..pipeline {
            payload.extend_from_slice(&command(name, c, done + k as u64));
        }
        let reply = d.call(&payload).await;
        let (n, used) = count_replies(&reply);
        assert_eq!((n, used), (pipeline, reply.len()), "one reply per request");
        done += pipeline as u64;
    }
    done
}

async fn tcp_client(
    addr: String,
    name: &'static str,
    c: usize,
    pipeline: usize,
    end: Instant,
) -> u64 {
    let mut s = TcpStream::connect(&addr).await.expect("connect over TCP");
    s.set_nodelay(true).expect("nodelay");
    let mut done = 0u64;
    let mut buf = Vec::with_capacity(64 * 1024);
    while Instant::now() < end {
        let mut payload = Vec::new();
        for k in 0..pipeline {
            payload.extend_from_slice(&command(name, c, done + k as u64));
        }
        s.write_all(&payload).await.expect("write");
        let mut got = 0;
        while got < pipeline {
            let mut chunk = [0u8; 16 * 1024];
            let n = s.read(&mut chunk).await.expect("read");
            assert!(n > 0, "server closed the connection");
            buf.extend_from_slice(&chunk[..n]);
            let (replies, used) = count_replies(&buf);
            buf.drain(..used);
            got += replies;
        }
        done += pipeline as u64;
    }
    done
}

async fn cell(
    t: Transport,
    target: &str,
    name: &'static str,
    clients: usize,
    pipeline: usize,
    secs: f64,
) -> f64 {
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let target = target.to_string();
        tasks.push(match t {
            Transport::Zmq => tokio::spawn(zmq_client(target, name, c, pipeline, end)),
            Transport::Tcp => tokio::spawn(tcp_client(target, name, c, pipeline, end)),
        });
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("client task");
    }
    total as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let zmq = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "tcp://127.0.0.1:7379".into());
    let tcp = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:6379".into());
    let secs: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3.0);
    println!("| command | clients | pipeline | ZeroMQ req/s | TCP req/s | ZeroMQ / TCP |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for name in ["SET", "GET"] {
        for clients in [1, 50] {
            for pipeline in [1, 16] {
                let z = cell(Transport::Zmq, &zmq, name, clients, pipeline, secs).await;
                let t = cell(Transport::Tcp, &tcp, name, clients, pipeline, secs).await;
                println!(
                    "| {name} | {clients} | {pipeline} | {z:.0} | {t:.0} | {:.2} |",
                    z / t
                );
            }
        }
    }
}
