//! A thread of its own for the writer's transactions.
//!
//! A commit is several round trips to the database. Run as a task of the node's runtime, each
//! round trip's continuation would queue behind whatever that runtime is busy with (thousands of
//! socket tasks woken by one fan-out), so a commit of a few milliseconds took tens. Here every
//! commit runs on a dedicated thread with a current-thread runtime, so between round trips it
//! waits only for the operating system's scheduler. Jobs run one at a time, in order.

use std::future::Future;
use std::pin::Pin;
use tokio::sync::{mpsc, oneshot};

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The handle of the commit thread; the thread ends when the last handle is dropped.
#[derive(Clone)]
pub struct CommitThread {
    jobs: mpsc::UnboundedSender<Job>,
}

impl CommitThread {
    /// Starts the thread `name` at nice value `nice` (0: unchanged; see `crate::priority`).
    pub fn start(name: &str, nice: i32) -> std::io::Result<CommitThread> {
        let (jobs, mut rx) = mpsc::unbounded_channel::<Job>();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new().name(name.to_owned()).spawn(move || {
            crate::priority::set_current(nice, "commit");
            // Waiting in the runtime (not in a blocking receive) keeps its I/O driver turning for
            // database connections it created, whoever uses them.
            rt.block_on(async move {
                while let Some(job) = rx.recv().await {
                    job.await;
                }
            });
        })?;
        Ok(CommitThread { jobs })
    }

    /// Runs `fut` on the commit thread. It runs to completion even if the answer is no longer
    /// awaited (a killed writer's last transaction still finishes).
    pub fn run<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> oneshot::Receiver<T> {
        let (tx, rx) = oneshot::channel();
        let _ = self.jobs.send(Box::pin(async move {
            let _ = tx.send(fut.await);
        }));
        rx
    }
}
