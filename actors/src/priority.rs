//! The scheduling priority of the threads that make chat messages durable.
//!
//! Every message waits for its commit, so a commit that waits for the CPU delays every message of
//! its batch. On a busy node the commit threads (the writer's commit thread and the SQLite
//! connection's worker thread) share the cores with the threads that read sockets and fan out; in
//! the writer benchmark on one core the SQLite thread spent as long waiting in the run queue as
//! running (BENCHMARKS.md, "The commit threads first"). A lower nice value gives them the CPU when
//! they wake. Linux keeps a nice value per thread, so this changes those threads only.
//!
//! Lowering a nice value needs `CAP_SYS_NICE` (or a raised `RLIMIT_NICE`). A node without it puts
//! the commit threads ahead the other way round ([`init`]): they keep the process's nice value,
//! and every other thread the node starts gets one that much higher. Raising a nice value needs no
//! privilege, and within the process (which autogroups and cgroups schedule as one group) the gap
//! is the same.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering::Relaxed};

/// The name (`/proc/<pid>/task/<tid>/comm`, at most 15 bytes) of the writer connection's SQLite
/// thread.
pub const SQLITE_WRITER_THREAD: &str = "sqlite-writer";

/// The nice value [`init`] chose for the threads that do not commit.
static OTHERS_NICE: AtomicI32 = AtomicI32::new(0);
/// [`init`] raised the other threads instead of lowering the commit threads.
static RAISE_OTHERS: AtomicBool = AtomicBool::new(false);

/// Decides, once and before the node starts any thread, how its commit threads get ahead of the
/// rest by `-writer_nice` levels (for a value below 0). If this process may lower a nice value,
/// the commit threads are lowered to `writer_nice` ([`set_current`], [`set_named`]). If it may
/// not, they keep the nice value the process started with, and every thread that runs
/// [`set_other_thread`] when it starts (the node's runtimes) gets one `-writer_nice` higher (at
/// most 19). Threads inherit their creator's nice value, so the commit threads must be started
/// from a thread that is not raised (the node's main thread).
pub fn init(writer_nice: i32) {
    if writer_nice >= 0 {
        return;
    }
    // A probe thread: the calling thread's own nice value stays as it is.
    let probe = std::thread::spawn(move || imp::set_current(writer_nice)).join();
    match probe {
        Ok(Ok(())) => {}
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let base = imp::get_current().unwrap_or(0);
            let others = (base - writer_nice).min(19);
            OTHERS_NICE.store(others, Relaxed);
            RAISE_OTHERS.store(true, Relaxed);
            tracing::info!(
                base,
                others,
                "this process may not lower nice values: the commit threads stay at {base} and the other \
                 threads run at {others} (give it CAP_SYS_NICE to lower the commit threads instead, or set \
                 --writer-nice 0 to leave every thread alone)"
            );
        }
        Ok(Err(e)) => report(Err(e), writer_nice, "probe"),
        Err(_) => {}
    }
}

/// Makes the calling thread a batch thread (`SCHED_BATCH`, same nice value): waking it does not
/// preempt the thread that woke it, so it runs when that thread blocks or its time slice ends.
/// For the socket writers: a fan-out or a burst of handshakes wakes one writer task after another,
/// and each wake of an idle writer thread was otherwise two context switches on a shared core.
/// A failure is logged and changes nothing else.
pub fn set_current_batch() {
    if let Err(e) = imp::set_current_batch() {
        tracing::debug!("a socket writer thread stays a normal thread: {e}");
    }
}

/// Gives the calling thread the nice value [`init`] chose for the threads that do not commit;
/// meant for a runtime's `on_thread_start`.
pub fn set_other_thread() {
    if RAISE_OTHERS.load(Relaxed) {
        let nice = OTHERS_NICE.load(Relaxed);
        report(imp::set_current(nice), nice, "other");
    }
}

/// Gives the calling thread the nice value `nice` (0 leaves it alone, and so does a node whose
/// other threads are raised instead; see [`init`]).
pub fn set_current(nice: i32, what: &str) {
    if nice != 0 && !RAISE_OTHERS.load(Relaxed) {
        report(imp::set_current(nice), nice, what);
    }
}

/// Gives every thread of this process named `name` the nice value `nice` (0 leaves them alone, as
/// [`set_current`] does).
pub fn set_named(name: &str, nice: i32) {
    if nice != 0 && !RAISE_OTHERS.load(Relaxed) {
        report(imp::set_named(name, nice), nice, name);
    }
}

fn report(res: std::io::Result<()>, nice: i32, what: &str) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    match res {
        Ok(()) => tracing::debug!(nice, thread = what, "thread priority set"),
        Err(e) if !WARNED.swap(true, Relaxed) => tracing::warn!(
            nice,
            thread = what,
            "could not change the priority of a thread ({e}): commits may wait for the CPU behind the \
             socket threads; set --writer-nice 0 to leave every thread at the default"
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

    pub(super) fn get_current() -> io::Result<i32> {
        Ok(rustix::process::getpriority_process(Some(rustix::thread::gettid()))?)
    }

    pub(super) fn set_current_batch() -> io::Result<()> {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
            set_thread_priority_and_policy, thread_native_id,
        };
        let batch = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
        // The crate sets a normal policy's nice value too, from a 0–99 scale: the point of that
        // scale that is this thread's nice value keeps it.
        let nice = get_current()?;
        let keep = (0..=99u8)
            .filter_map(|p| ThreadPriorityValue::try_from(p).ok().map(ThreadPriority::Crossplatform))
            .find(|p| p.to_posix(batch).ok() == Some(nice))
            .ok_or_else(|| io::Error::other(format!("no priority keeps the nice value {nice}")))?;
        set_thread_priority_and_policy(thread_native_id(), keep, batch).map_err(|e| io::Error::other(format!("{e:?}")))
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

    pub(super) fn get_current() -> io::Result<i32> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub(super) fn set_current_batch() -> io::Result<()> {
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
