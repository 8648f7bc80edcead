//! The scheduling priority of the threads that make chat messages durable.
//!
//! Every message waits for its commit, so a commit that waits for the CPU delays every message of
//! its batch. On a busy node the commit threads (the writer's commit thread and the SQLite
//! connection's worker thread) share the cores with the threads that read sockets and fan out; in
//! the writer benchmark on one core the SQLite thread spent as long waiting in the run queue as
//! running (BENCHMARKS.md, "The commit threads first"). A lower nice value gives them the CPU when
//! they wake. Linux keeps a nice value per thread, so this changes those threads only.
//!
//! Lowering a nice value needs `CAP_SYS_NICE` (or a raised `RLIMIT_NICE`); without it the node
//! logs one warning and runs at the default priority.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// The name (`/proc/<pid>/task/<tid>/comm`, at most 15 bytes) of the writer connection's SQLite
/// thread.
pub const SQLITE_WRITER_THREAD: &str = "sqlite-writer";

/// Gives the calling thread the nice value `nice` (0 leaves it alone).
pub fn set_current(nice: i32, what: &str) {
    if nice != 0 {
        report(imp::set_current(nice), nice, what);
    }
}

/// Gives every thread of this process named `name` the nice value `nice` (0 leaves them alone).
pub fn set_named(name: &str, nice: i32) {
    if nice != 0 {
        report(imp::set_named(name, nice), nice, name);
    }
}

fn report(res: std::io::Result<()>, nice: i32, what: &str) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    match res {
        Ok(()) => tracing::debug!(nice, thread = what, "commit thread priority set"),
        Err(e) if !WARNED.swap(true, Relaxed) => tracing::warn!(
            nice,
            thread = what,
            "could not raise the priority of the commit threads ({e}): commits will wait for the CPU behind \
             the socket threads; give the process CAP_SYS_NICE, or set --writer-nice 0 to silence this"
        ),
        Err(_) => {}
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use rustix::process::{Pid, setpriority_process};
    use std::io;

    pub(super) fn set_current(nice: i32) -> io::Result<()> {
        Ok(setpriority_process(Some(rustix::thread::gettid()), nice)?)
    }

    pub(super) fn set_named(name: &str, nice: i32) -> io::Result<()> {
        let mut found = false;
        for task in std::fs::read_dir("/proc/self/task")? {
            let task = task?;
            // A thread may end between the listing and the read.
            let Ok(comm) = std::fs::read_to_string(task.path().join("comm")) else { continue };
            if comm.trim_end() != name {
                continue;
            }
            let tid = task.file_name().to_str().and_then(|s| s.parse().ok()).and_then(Pid::from_raw);
            if let Some(tid) = tid {
                setpriority_process(Some(tid), nice)?;
                found = true;
            }
        }
        if found { Ok(()) } else { Err(io::Error::new(io::ErrorKind::NotFound, format!("no thread named {name}"))) }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;

    pub(super) fn set_current(_nice: i32) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub(super) fn set_named(_name: &str, _nice: i32) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::imp;

    fn nice_of_current() -> i32 {
        rustix::process::getpriority_process(Some(rustix::thread::gettid())).expect("getpriority")
    }

    #[test]
    fn a_named_thread_gets_the_nice_value_and_its_siblings_do_not() {
        // Raising a nice value (lowering priority) needs no privilege, so this runs anywhere.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel();
        let t = std::thread::Builder::new()
            .name("confab-nice-t".into())
            .spawn(move || {
                // The new thread names itself: the name is there once it runs.
                ready_tx.send(()).expect("ready");
                go_rx.recv().expect("go");
                nice_of_current()
            })
            .expect("spawn");
        ready_rx.recv().expect("the thread runs");
        let before = nice_of_current();
        imp::set_named("confab-nice-t", before + 3).expect("renice the named thread");
        go_tx.send(()).expect("go");
        assert_eq!(t.join().expect("join"), before + 3);
        assert_eq!(nice_of_current(), before, "only the named thread changes");
        let err = imp::set_named("no-such-thread", 1).expect_err("no thread has that name");
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
