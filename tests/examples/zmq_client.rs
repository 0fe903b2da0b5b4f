//! Talk to tickdb over ZeroMQ from Rust with the `zeromq` crate (a DEALER socket).
//!
//! Each message is `["", request]`: the empty delimiter frame, then one or more RESP requests
//! (or inline commands). The reply is `["", replies]`: the replies to all of them, in order.
//!
//! Run: `cargo run --release -p tickdb-tests --example zmq_client -- tcp://127.0.0.1:7379`

use bytes::Bytes;
use zeromq::prelude::*;
use zeromq::{DealerSocket, ZmqMessage};

async fn call(socket: &mut DealerSocket, payload: &'static [u8]) -> anyhow::Result<Bytes> {
    let mut message = ZmqMessage::from(Bytes::new());
    message.push_back(Bytes::from_static(payload));
    socket.send(message).await?;
    let reply = tokio::time::timeout(std::time::Duration::from_secs(10), socket.recv()).await??;
    let mut frames = reply.into_vec();
    anyhow::ensure!(
        frames.len() == 2 && frames[0].is_empty(),
        "bad framing: {frames:?}"
    );
    Ok(frames.remove(1))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tcp://127.0.0.1:7379".into());
    let mut socket = DealerSocket::new();
    socket.connect(&endpoint).await?;

    println!(
        "PING -> {:?}",
        call(&mut socket, b"*1\r\n$4\r\nPING\r\n").await?
    );
    println!("SET -> {:?}", call(&mut socket, b"SET hello world").await?);
    println!("GET -> {:?}", call(&mut socket, b"GET hello").await?);
    // Pipelining: several requests in one message, all their replies in one message.
    let replies = call(&mut socket, b"SET n 1\r\nINCR n\r\nGET n\r\n").await?;
    println!("pipelined -> {replies:?}");
    Ok(())
}
