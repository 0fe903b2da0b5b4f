//! tickdb-tests: helpers to run the real `tickdb` binary and talk raw RESP to it.
//!
//! The binary is found next to the test executable's `deps/` folder (the same target
//! directory), or at `$TICKDB_BIN`. `make test` builds it first.

pub mod cluster;
pub mod nemesis;
pub mod terminal;
pub mod zmq;

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tickdb_core::resp::{self, Frame, Limits};

/// How long a server may take to start accepting connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a test waits for one reply before failing.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The tickdb binary under test.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TICKDB_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let bin = dir.join("tickdb");
    assert!(
        bin.exists(),
        "{} not found: build it first (`make test` does: cargo build --release -p tickdb-server)",
        bin.display()
    );
    bin
}

/// A free TCP port on 127.0.0.1 (free when asked; the server binds it right after).
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct free TCP ports on 127.0.0.1 (all held until every one is picked), from below
/// Linux's ephemeral range (32768-60999). A port bound to 0 and released can be handed out at
/// once as the local port of any outgoing connection of a test running beside (a client, a
/// cluster peer dialling out), and the server's own bind then fails (seen in CI: "binding
/// cluster port 127.0.0.1:42415: Address already in use"). A port in 10000-31999 is only ever
/// taken by an explicit bind. Each test process starts at its own offset and never hands out
/// a port twice; a port something else holds is skipped.
pub fn free_ports(n: usize) -> Vec<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 10_000;
    const SPAN: u32 = 22_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    let mut held = Vec::with_capacity(n);
    let mut ports = Vec::with_capacity(n);
    while ports.len() < n {
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(
            k < SPAN,
            "every test port below the ephemeral range was handed out"
        );
        let port = u16::try_from(FIRST + (start + k) % SPAN).expect("below 32000");
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(listener);
            ports.push(port);
        }
    }
    ports
}

/// A running tickdb process with its own port and data directory; killed on drop.
pub struct Server {
    child: Option<Child>,
    /// The address clients connect to: 127.0.0.1, or the node's address in its network
    /// namespace.
    pub host: IpAddr,
    pub port: u16,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    extra: Vec<String>,
    /// A command the binary runs under (e.g. `ip netns exec NS`); empty: run it directly.
    launcher: Vec<String>,
}

impl Server {
    /// Starts tickdb on a free port with a fresh temporary data directory.
    pub fn start(extra: &[&str]) -> Self {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Self::start_on(free_port(), &extra)
    }

    /// Starts tickdb on `port` with a fresh temporary data directory.
    pub fn start_on(port: u16, extra: &[String]) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data_dir = tmp.path().join("data");
        let mut s = Self {
            child: None,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port,
            data_dir,
            _tmp: Some(tmp),
            extra: extra.to_vec(),
            launcher: Vec::new(),
        };
        s.spawn();
        s
    }

    /// Starts tickdb under `launcher` (e.g. `["ip", "netns", "exec", "ns1"]`), reachable at
    /// `host:port`, with its data in `data_dir` (kept: the caller owns it) and its log beside
    /// it (`data_dir` with the extension `.log`).
    pub fn start_under(
        launcher: &[String],
        host: IpAddr,
        port: u16,
        data_dir: PathBuf,
        extra: &[String],
    ) -> Self {
        let mut s = Self {
            child: None,
            host,
            port,
            data_dir,
            _tmp: None,
            extra: extra.to_vec(),
            launcher: launcher.to_vec(),
        };
        s.spawn();
        s
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process was started and not killed since (a SIGSTOPped one counts).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Sends `signal` (a name `kill` understands, e.g. "STOP") to the running process.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("server running");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid} failed");
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("server log file");
        let mut cmd = match self.launcher.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(binary());
                cmd
            }
            None => Command::new(binary()),
        };
        let child = cmd
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra)
            // Tests run in parallel: the ZeroMQ endpoint's fixed default port would collide.
            .args(if self.extra.iter().any(|a| a == "--zmq-port") {
                &[][..]
            } else {
                &["--zmq-port", "0"][..]
            })
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn tickdb");
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            let addr = SocketAddr::new(self.host, self.port);
            if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("tickdb exited at start with {status}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "tickdb did not accept connections within {START_TIMEOUT:?}; log:\n{}",
            self.log()
        );
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.with_extension("log")
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Where clients reach it.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// A new raw RESP connection.
    pub fn client(&self) -> Client {
        Client::try_connect_to(self.addr(), REPLY_TIMEOUT).expect("connect to tickdb")
    }

    /// SIGKILL, as a crash.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and waits for the exit (bounded).
    pub fn terminate(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("server running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = c.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!(
                    "tickdb did not exit within 30 s of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the process again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A blocking raw-RESP client.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(port: u16) -> Self {
        Self::try_connect(port, REPLY_TIMEOUT).expect("connect to tickdb")
    }

    /// Connects with `timeout` for the connect and for each later read.
    pub fn try_connect(port: u16, timeout: Duration) -> std::io::Result<Self> {
        Self::try_connect_to(SocketAddr::from(([127, 0, 0, 1], port)), timeout)
    }

    /// [`Client::try_connect`] to any address.
    pub fn try_connect_to(addr: SocketAddr, timeout: Duration) -> std::io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::new(),
        })
    }

    /// Sends a command and waits at most `timeout` for its reply: `Err` says why there is
    /// none (timed out, connection closed). The connection is unusable after a timeout (a
    /// late reply would be read as the next one's).
    pub fn call_within(&mut self, args: &[&str], timeout: Duration) -> Result<Frame, String> {
        self.stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let mut out = Vec::new();
        resp::encode_request(&args, &mut out);
        self.stream.write_all(&out).map_err(|e| e.to_string())?;
        loop {
            if let Some((frame, used)) =
                resp::decode(&self.buf, &Limits::default()).map_err(|e| e.to_string())?
            {
                self.buf.drain(..used);
                return Ok(frame);
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("connection closed".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(format!("no reply within {timeout:?}"));
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to tickdb");
    }

    /// Sends a command as an array of bulk strings.
    pub fn send(&mut self, args: &[&str]) {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let mut out = Vec::new();
        resp::encode_request(&args, &mut out);
        self.send_raw(&out);
    }

    /// Reads one reply; `None` if the server closed the connection first.
    pub fn read(&mut self) -> Option<Frame> {
        loop {
            if let Some((frame, used)) =
                resp::decode(&self.buf, &Limits::default()).expect("server sent valid RESP")
            {
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("reading from tickdb: {e}"),
            }
        }
    }

    /// Sends a command and returns its reply.
    pub fn call(&mut self, args: &[&str]) -> Frame {
        self.send(args);
        self.read().expect("a reply before the connection closed")
    }

    /// Sends a command and returns its reply, or `None` if the server is gone (for tests that
    /// kill it mid-stream).
    pub fn try_call(&mut self, args: &[&str]) -> Option<Frame> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let mut out = Vec::new();
        resp::encode_request(&args, &mut out);
        self.stream.write_all(&out).ok()?;
        self.read()
    }

    /// Whether the server has closed the connection (reads EOF within the timeout).
    pub fn is_closed(&mut self) -> bool {
        self.read().is_none()
    }
}

/// A bulk-string frame, for comparisons.
pub fn bulk(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

/// An error frame, for comparisons.
pub fn err(s: &str) -> Frame {
    Frame::Error(Bytes::copy_from_slice(s.as_bytes()))
}

/// Runs `tests/python/<name>` with `TICKDB_PORT=port` (the node it checks) and returns its
/// stdout, failing on a non-zero exit.
pub fn run_python(name: &str, port: u16) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name);
    run(Command::new("python3")
        .arg(script)
        .env("TICKDB_PORT", port.to_string()))
}

/// Runs an external command (e.g. redis-cli) and returns its stdout, failing on a non-zero exit.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("running {cmd:?}: {e} (is it installed? `make deps` installs it)")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Streams writes from `writers` client threads, SIGKILLs the server once `kill_after` of them
/// have been acknowledged (or 60 s have passed), and returns every acknowledged `(writer, i)`.
///
/// Writer `w` connects, runs `setup(w, client)` once, then calls `write(w, i, client)` for `i`
/// in `0..per_writer` until the server dies or one returns `false`; `write` returns whether the
/// server acknowledged that write. The test then restarts the server and checks that every
/// acknowledged write is there.
pub fn kill9_mid_stream<S, W>(
    server: &mut Server,
    writers: usize,
    per_writer: usize,
    kill_after: usize,
    setup: S,
    write: W,
) -> Vec<(usize, usize)>
where
    S: Fn(usize, &mut Client) + Send + Sync + 'static,
    W: Fn(usize, usize, &mut Client) -> bool + Send + Sync + 'static,
{
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (setup, write) = (Arc::new(setup), Arc::new(write));
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let (acked, stop, port) = (Arc::clone(&acked), Arc::clone(&stop), server.port);
            let (setup, write) = (Arc::clone(&setup), Arc::clone(&write));
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                setup(w, &mut c);
                for i in 0..per_writer {
                    if stop.load(Ordering::Relaxed) || !write(w, i, &mut c) {
                        break;
                    }
                    acked.lock().expect("no writer panicked").push((w, i));
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().expect("no writer panicked").len() < kill_after && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("writer thread");
    }
    let acked = acked.lock().expect("no writer panicked").clone();
    assert!(
        acked.len() >= kill_after,
        "only {} writes acknowledged before the deadline",
        acked.len()
    );
    acked
}
