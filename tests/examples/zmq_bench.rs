//! Requests per second over ZeroMQ (DEALER clients) and over TCP, the same workload on the same
//! server in one run: 1 and 50 clients, one request per round trip or 16 pipelined, for SET and
//! GET. Each client runs a closed loop (send, wait for all replies, repeat).
//!
//! Then samples per second, for issue 10's "BATCH_SET/BATCH_FLUSH and the ZeroMQ endpoint at
//! least as fast as TS.MADD over TCP": 4 clients, each with its own 250 series (1,000 in all),
//! sending per round trip either 8 `TS.MADD`s of 100 samples (the ingest bench's shape) or 800
//! `BATCH_SET`s and one `BATCH_FLUSH`, over each transport. Every series' timestamps increase,
//! and every reply is checked (a `TS.MADD` element or `BATCH_FLUSH` count that is not all
//! samples stored fails the run).
//!
//! With `TICKDB_PID` set to the server's process id, the ingest table also gives the server's
//! CPU time per sample (and this client's, always): which side a gap between transports is on.
//! `ZMQ_BENCH_INGEST_ONLY=1` skips the request table; `ZMQ_BENCH_CELL` runs one ingest cell
//! (`bench/ingest_paths.sh`).
//!
//! Run against a running tickdb (`bench/zmq_bench.sh` starts one):
//! `cargo run --release -p tickdb-tests --example zmq_bench -- tcp://127.0.0.1:7379 127.0.0.1:6379 [seconds]`

use std::time::{Duration, Instant};

use tickdb_core::resp::{self, Frame, Limits};
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

/// Counts the complete replies at the start of `buf`; returns (count, bytes used). Every
/// reply, and every element of an array reply, must be a success; a `BATCH_FLUSH` count must
/// be [`BATCH_SAMPLES`].
fn count_replies(buf: &[u8]) -> (usize, usize) {
    let (mut n, mut pos) = (0, 0);
    while let Ok(Some((frame, used))) = resp::decode(&buf[pos..], &Limits::default()) {
        assert!(!frame.is_error(), "error reply: {frame:?}");
        match &frame {
            Frame::Array(items) => {
                assert!(
                    !items.iter().any(Frame::is_error),
                    "error element: {frame:?}"
                );
            }
            Frame::Integer(stored) => {
                assert_eq!(
                    *stored, BATCH_SAMPLES as i64,
                    "BATCH_FLUSH stored every sample"
                );
            }
            _ => {}
        }
        n += 1;
        pos += used;
    }
    (n, pos)
}

/// Samples per `TS.MADD`, `TS.MADD`s per round trip, series per client.
const MADD_SAMPLES: u64 = 100;
const MADD_IN_FLIGHT: usize = 8;
const SERIES_PER_CLIENT: u64 = 250;
/// `BATCH_SET`s per `BATCH_FLUSH` (one round trip): as many samples as the `TS.MADD` round trip.
const BATCH_SAMPLES: usize = MADD_SAMPLES as usize * MADD_IN_FLIGHT;
const BASE_TS: u64 = 1_700_000_000_000;

/// The sample ingest workloads.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ingest {
    Madd,
    Batch,
}

/// The key of sample `seq` of client `c` in cell `cell`, and its timestamp (each series' next
/// sample is `SERIES_PER_CLIENT` ms later).
fn sample(cell: &str, c: usize, seq: u64) -> (String, String) {
    (
        format!("{cell}:{c}:{}", seq % SERIES_PER_CLIENT),
        (BASE_TS + seq).to_string(),
    )
}

/// One round trip of `w` for client `c` from sample `seq`: the payload, its reply count and
/// its samples.
fn ingest_round(w: Ingest, cell: &str, c: usize, seq: u64) -> (Vec<u8>, usize, u64) {
    let mut payload = Vec::new();
    match w {
        Ingest::Madd => {
            for k in 0..MADD_IN_FLIGHT as u64 {
                let mut args = vec!["TS.MADD".to_string()];
                for j in 0..MADD_SAMPLES {
                    let (key, ts) = sample(cell, c, seq + k * MADD_SAMPLES + j);
                    args.extend([key, ts, "100.25".into()]);
                }
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                payload.extend_from_slice(&request(&args));
            }
            (payload, MADD_IN_FLIGHT, BATCH_SAMPLES as u64)
        }
        Ingest::Batch => {
            for j in 0..BATCH_SAMPLES as u64 {
                let (key, ts) = sample(cell, c, seq + j);
                payload.extend_from_slice(&request(&["BATCH_SET", &key, "100.25", &ts]));
            }
            payload.extend_from_slice(&request(&["BATCH_FLUSH"]));
            (payload, BATCH_SAMPLES + 1, BATCH_SAMPLES as u64)
        }
    }
}

/// Creates every client's series of cell `cell` (`TS.MADD` needs them; `BATCH_SET` creates).
async fn create_series(tcp: &str, cell: &str, clients: usize) {
    let mut s = TcpStream::connect(tcp).await.expect("connect over TCP");
    let mut payload = Vec::new();
    for c in 0..clients {
        for i in 0..SERIES_PER_CLIENT {
            payload.extend_from_slice(&request(&["TS.CREATE", &format!("{cell}:{c}:{i}")]));
        }
    }
    let want = clients * SERIES_PER_CLIENT as usize;
    s.write_all(&payload).await.expect("write");
    read_replies(&mut s, &mut Vec::new(), want).await;
}

/// Reads until `want` complete replies arrived on `s`.
async fn read_replies(s: &mut TcpStream, buf: &mut Vec<u8>, want: usize) {
    let mut got = 0;
    while got < want {
        let mut chunk = [0u8; 16 * 1024];
        let n = s.read(&mut chunk).await.expect("read");
        assert!(n > 0, "server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
        let (replies, used) = count_replies(buf);
        buf.drain(..used);
        got += replies;
    }
}

/// CPU time (user + system) a process has used so far, in seconds: `/proc/<pid>/stat`'s
/// utime and stime, in clock ticks of 1/100 s (Linux's `USER_HZ`). None where it is unreadable.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// What one ingest cell measured: samples per second, and the server's and this client's CPU
/// microseconds per sample (the server's only when `TICKDB_PID` names it).
struct IngestRate {
    samples_per_sec: f64,
    server_us: Option<f64>,
    client_us: Option<f64>,
}

/// Samples per second of `w` over transport `t` (at `target`), `clients` closed loops.
async fn ingest_cell(
    t: Transport,
    target: &str,
    tcp: &str,
    w: Ingest,
    cell: &str,
    clients: usize,
    secs: f64,
) -> IngestRate {
    if w == Ingest::Madd {
        create_series(tcp, cell, clients).await;
    }
    let server = std::env::var("TICKDB_PID").ok();
    let server_before = server.as_deref().and_then(cpu_seconds);
    let client_before = cpu_seconds("self");
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (target, cell) = (target.to_string(), cell.to_string());
        tasks.push(tokio::spawn(async move {
            let mut seq = 0u64;
            match t {
                Transport::Zmq => {
                    let mut d = Dealer::connect(&target).await;
                    while Instant::now() < end {
                        let (payload, replies, samples) = ingest_round(w, &cell, c, seq);
                        let reply = d.call(&payload).await;
                        assert_eq!(count_replies(&reply), (replies, reply.len()));
                        seq += samples;
                    }
                }
                Transport::Tcp => {
                    let mut s = TcpStream::connect(&target).await.expect("connect over TCP");
                    s.set_nodelay(true).expect("nodelay");
                    let mut buf = Vec::new();
                    while Instant::now() < end {
                        let (payload, replies, samples) = ingest_round(w, &cell, c, seq);
                        s.write_all(&payload).await.expect("write");
                        read_replies(&mut s, &mut buf, replies).await;
                        seq += samples;
                    }
                }
            }
            seq
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("client task");
    }
    let elapsed = start.elapsed().as_secs_f64();
    let per_sample = |before: Option<f64>, after: Option<f64>| {
        Some((after? - before?) * 1e6 / total.max(1) as f64)
    };
    IngestRate {
        samples_per_sec: total as f64 / elapsed,
        server_us: per_sample(server_before, server.as_deref().and_then(cpu_seconds)),
        client_us: per_sample(client_before, cpu_seconds("self")),
    }
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
        read_replies(&mut s, &mut buf, pipeline).await;
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

/// `ZMQ_BENCH_CELL=madd:tcp` (or `madd:zmq`, `batch:tcp`, `batch:zmq`): runs that one ingest
/// cell and prints one line of `name=value` fields, for `bench/ingest_paths.sh`, which gives
/// every cell a fresh server (cells run one after another on one server pay for the earlier
/// cells' flushes and compactions).
async fn one_ingest_cell(only: &str, zmq: &str, tcp: &str, secs: f64) {
    let (w, t) = match only {
        "madd:tcp" => (Ingest::Madd, Transport::Tcp),
        "madd:zmq" => (Ingest::Madd, Transport::Zmq),
        "batch:tcp" => (Ingest::Batch, Transport::Tcp),
        "batch:zmq" => (Ingest::Batch, Transport::Zmq),
        other => panic!("ZMQ_BENCH_CELL={other}: one of madd:tcp madd:zmq batch:tcp batch:zmq"),
    };
    let target = match t {
        Transport::Zmq => zmq,
        Transport::Tcp => tcp,
    };
    let cell = format!("zb{}:{w:?}:{t:?}", std::process::id());
    let r = ingest_cell(t, target, tcp, w, &cell, 4, secs).await;
    let us = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.3}"));
    println!(
        "cell={only} rate={:.0} server_us={} client_us={}",
        r.samples_per_sec,
        us(r.server_us),
        us(r.client_us)
    );
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
    if let Ok(only) = std::env::var("ZMQ_BENCH_CELL") {
        return one_ingest_cell(&only, &zmq, &tcp, secs).await;
    }
    let requests = std::env::var_os("ZMQ_BENCH_INGEST_ONLY").is_none();
    if requests {
        println!("| command | clients | pipeline | ZeroMQ req/s | TCP req/s | ZeroMQ / TCP |");
        println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    }
    for name in ["SET", "GET"].into_iter().filter(|_| requests) {
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
    println!();
    println!(
        "| samples/s, 4 clients, 1,000 series | ZeroMQ | TCP | ZeroMQ / TCP TS.MADD | TCP / TCP TS.MADD | server CPU µs/sample, ZeroMQ / TCP | client CPU µs/sample, ZeroMQ / TCP |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let us = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.2}"));
    let run = std::process::id();
    let mut madd_tcp = 0.0;
    for (w, label) in [
        (Ingest::Madd, "8 TS.MADD of 100 samples per round trip"),
        (Ingest::Batch, "800 BATCH_SET + BATCH_FLUSH per round trip"),
    ] {
        let zc = format!("zb{run}:{w:?}:zmq");
        let tc = format!("zb{run}:{w:?}:tcp");
        let z = ingest_cell(Transport::Zmq, &zmq, &tcp, w, &zc, 4, secs).await;
        let t = ingest_cell(Transport::Tcp, &tcp, &tcp, w, &tc, 4, secs).await;
        if w == Ingest::Madd {
            madd_tcp = t.samples_per_sec;
        }
        println!(
            "| {label} | {:.0} | {:.0} | {:.2} | {:.2} | {} / {} | {} / {} |",
            z.samples_per_sec,
            t.samples_per_sec,
            z.samples_per_sec / madd_tcp,
            t.samples_per_sec / madd_tcp,
            us(z.server_us),
            us(t.server_us),
            us(z.client_us),
            us(t.client_us),
        );
    }
}
