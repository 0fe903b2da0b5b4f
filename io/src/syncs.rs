//! The node's pipelined syncs ([`Output::Sync`](tickdb_core::node::Output::Sync)), run beside
//! the node task.
//!
//! The node asks for a sync and goes on taking, proposing and appending requests while it
//! runs; the replies, votes and acknowledgements that wait for it leave when the node task
//! feeds back [`Input::Synced`](tickdb_core::node::Input::Synced). At most one sync runs at
//! a time (the node asks for the next only after that), so the next one starts as soon as the
//! last ends and covers everything written meanwhile: a group as large as the disk is slow.
//!
//! A store on a real disk ([`Syncer::blocks`]) is synced on a thread of its own, because the
//! sync blocks in `fdatasync`. A store in memory (the turmoil harness's) is synced in a task of
//! the node's runtime, so a simulation stays deterministic.

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use tickdb_core::store::Syncer;
use tokio::sync::mpsc;

/// A completed sync: the `upto` it was asked with, and the error if it failed.
pub(crate) type Done = (u64, Option<String>);

/// Runs the node's syncs when its store hands out a [`Syncer`].
pub(crate) struct Syncs {
    runner: Runner,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    running: bool,
}

enum Runner {
    /// The store syncs inline only: the node never asks.
    Inline,
    /// A thread that blocks in each sync: (upto, mark) in.
    Thread {
        tx: Option<std_mpsc::Sender<(u64, u64)>>,
        join: Option<JoinHandle<()>>,
        syncer: Arc<dyn Syncer>,
    },
    /// A task of the runtime per sync.
    Task(Arc<dyn Syncer>),
}

impl Syncs {
    /// Starts the sync thread when `syncer` blocks.
    pub(crate) fn new(syncer: Option<Arc<dyn Syncer>>) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let runner = match syncer {
            None => Runner::Inline,
            Some(s) if !s.blocks() => Runner::Task(s),
            Some(syncer) => {
                let (tx, rx) = std_mpsc::channel::<(u64, u64)>();
                let on_thread = Arc::clone(&syncer);
                let done = done_tx.clone();
                let join = std::thread::Builder::new()
                    .name("tickdb-sync".into())
                    .spawn(move || {
                        while let Ok((upto, mark)) = rx.recv() {
                            let error = on_thread.sync_through(mark).err().map(|e| e.to_string());
                            if done.send((upto, error)).is_err() {
                                break;
                            }
                        }
                    });
                match join {
                    Ok(join) => Runner::Thread {
                        tx: Some(tx),
                        join: Some(join),
                        syncer,
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot start the sync thread: syncing inline");
                        Runner::Inline
                    }
                }
            }
        };
        Self {
            runner,
            done_tx,
            done_rx,
            running: false,
        }
    }

    /// Whether the node should pipeline its syncs through this runner.
    pub(crate) fn pipelined(&self) -> bool {
        !matches!(self.runner, Runner::Inline)
    }

    /// Whether a sync was started and its completion not taken yet.
    pub(crate) fn running(&self) -> bool {
        self.running
    }

    /// Starts the sync the node asked for with `upto`: marks the store now (every write made
    /// so far is covered), then syncs beside the node task.
    ///
    /// # Panics
    /// When a sync is running already (the node asks for one at a time), or when the store
    /// has no syncer (the node was never told to pipeline).
    pub(crate) fn start(&mut self, upto: u64) {
        assert!(
            !self.running,
            "the node asked for a second sync while one runs"
        );
        self.running = true;
        match &self.runner {
            Runner::Inline => unreachable!("a node that syncs inline asked for a sync"),
            Runner::Thread { tx, syncer, .. } => {
                let mark = syncer.mark();
                let sent = tx.as_ref().is_some_and(|tx| tx.send((upto, mark)).is_ok());
                if !sent {
                    let error = Some("the sync thread stopped".to_string());
                    let _ = self.done_tx.send((upto, error));
                }
            }
            Runner::Task(syncer) => {
                let mark = syncer.mark();
                let syncer = Arc::clone(syncer);
                let done = self.done_tx.clone();
                tokio::spawn(async move {
                    // Completes after the node task has had a turn: writes go on meanwhile.
                    tokio::task::yield_now().await;
                    let error = syncer.sync_through(mark).err().map(|e| e.to_string());
                    let _ = done.send((upto, error));
                });
            }
        }
    }

    /// The running sync's completion, if it has completed.
    pub(crate) fn try_done(&mut self) -> Option<Done> {
        if !self.running {
            return None;
        }
        let done = self.done_rx.try_recv().ok()?;
        self.running = false;
        Some(done)
    }

    /// Waits for the running sync to complete; never ready while none runs.
    pub(crate) async fn done(&mut self) -> Done {
        if !self.running {
            return std::future::pending().await;
        }
        let done = self
            .done_rx
            .recv()
            .await
            .expect("`Syncs` holds a sender, so its channel never closes");
        self.running = false;
        done
    }
}

impl Drop for Syncs {
    /// Stops the sync thread and waits for it, so the store it holds is closed when the node
    /// is handed back (a restart in the same process reopens the same directory).
    fn drop(&mut self) {
        if let Runner::Thread { tx, join, .. } = &mut self.runner {
            drop(tx.take());
            if let Some(join) = join.take()
                && join.join().is_err()
            {
                tracing::error!("the sync thread panicked");
            }
        }
    }
}
