//! The threads that write to WebSockets, apart from the runtime the actors and readers run on.
//!
//! A room's fan-out wakes one writer task per member socket. On the actors' runtime those tasks
//! queue in front of everything else: with 2,000 members, a sender's next frame, the writer's
//! answer and the room's next step each waited behind a burst of 2,000 `send()` calls, and the
//! hot room's latency was that queue. Here the writers run on their own threads; the actors'
//! runtime stays responsive, and the OS schedules the two (a woken actor thread preempts a busy
//! writer thread). Writers that fall behind simply find more frames queued, and write them in one
//! call.

use std::future::Future;
use tokio::task::JoinHandle;
use tracing::warn;

/// Where socket writer tasks run: a runtime of their own, or (with 0 threads) the caller's.
pub struct SocketWriters {
    runtime: Option<tokio::runtime::Runtime>,
}

impl SocketWriters {
    /// A runtime of `threads` worker threads; 0 (or a failure to start threads) writes from the
    /// caller's runtime.
    pub fn new(threads: usize) -> SocketWriters {
        if threads == 0 {
            return SocketWriters { runtime: None };
        }
        let built = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("socket-writer")
            .on_thread_start(|| {
                confab_actors::priority::set_other_thread();
                confab_actors::priority::set_current_batch();
            })
            .enable_all()
            .build();
        match built {
            Ok(rt) => SocketWriters { runtime: Some(rt) },
            Err(e) => {
                warn!(err = %e, "socket writer threads could not start; writing from the main runtime");
                SocketWriters { runtime: None }
            }
        }
    }

    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.runtime {
            Some(rt) => rt.spawn(task),
            None => tokio::spawn(task),
        }
    }
}

impl Drop for SocketWriters {
    fn drop(&mut self) {
        // Dropped from async code (the last handler); a blocking shutdown would panic there.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for SocketWriters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketWriters").field("own_runtime", &self.runtime.is_some()).finish()
    }
}
