//! Nodes as separate processes of the `confab-test-node` binary, for tests that SIGKILL or
//! SIGTERM a node. The process is killed when the handle drops.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct NodeProcess {
    pub child: Child,
    pub base: String,
    pub ws_url: String,
    /// Every line the node wrote to stdout (its log) so far.
    pub stdout: Arc<Mutex<Vec<String>>>,
}

impl NodeProcess {
    /// Starts `bin serve` on a free port of 127.0.0.1 and waits until it answers `/readyz`.
    pub async fn spawn(bin: &str, data_dir: &Path, database_url: &str, extra: &[&str]) -> NodeProcess {
        NodeProcess::spawn_via(&[], bin, data_dir, database_url, extra).await
    }

    /// `spawn`, through `wrapper` (a command that execs the rest of its arguments, such as
    /// `setpriv …`; empty: none), so the node process has the wrapper's pid.
    pub async fn spawn_via(
        wrapper: &[&str],
        bin: &str,
        data_dir: &Path,
        database_url: &str,
        extra: &[&str],
    ) -> NodeProcess {
        NodeProcess::spawn_at(free_port(), wrapper, bin, data_dir, database_url, extra).await
    }

    /// `spawn_via` on a given HTTP port (a node restarted where its clients knew it).
    pub async fn spawn_at(
        port: u16,
        wrapper: &[&str],
        bin: &str,
        data_dir: &Path,
        database_url: &str,
        extra: &[&str],
    ) -> NodeProcess {
        let mut command = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let mut child = command
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--database-url")
            .arg(database_url)
            .args(["--rate-burst", "100000", "--rate-per-sec", "100000"])
            .args(["--signups-per-ip-per-hour", "0", "--rooms-per-user-per-hour", "0"])
            .args(extra)
            .env("CONFAB_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn node process");
        // The node logs to stdout: both streams go to the test's output, marked with the port,
        // and stdout is kept for tests that read the log.
        let stdout = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            let kept = stdout.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    eprintln!("[node {port}] {line}");
                    kept.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            });
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    eprintln!("[node {port}] {line}");
                }
            });
        }
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        crate::eventually("the node process to be ready", || {
            let http = http.clone();
            let url = format!("{base}/readyz");
            async move { http.get(url).send().await.ok().filter(|r| r.status() == 200).map(|_| ()) }
        })
        .await;
        NodeProcess { child, ws_url: format!("ws://127.0.0.1:{port}/ws"), base, stdout }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub async fn kill9(&mut self) {
        self.child.start_kill().expect("kill");
        let _ = self.child.wait().await;
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Resident memory of the process now (`VmRSS` of `/proc/<pid>/status`), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS line");
        kb * 1024
    }

    /// SIGSTOP: the process stops answering anything (its sockets stay open) until `resume`.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// SIGCONT after `pause`.
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        // `unsafe` is forbidden in the workspace, so send the signal with kill(1).
        let ok = std::process::Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status();
        assert!(ok.is_ok_and(|s| s.success()), "kill -{name}");
    }

    /// SIGTERM, and the exit code once it exits (within 30 s).
    pub async fn terminate(&mut self) -> Option<i32> {
        let pid = self.child.id().expect("running") as i32;
        // `unsafe` is forbidden in the workspace, so send the signal with kill(1).
        let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("exits in time")
            .expect("wait");
        status.code()
    }
}

/// A port that was free a moment ago (the process binds it itself).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}
