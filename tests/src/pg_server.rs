//! A private PostgreSQL server for tests that stop or restart the database under a node: `initdb`
//! into a temp dir and `pg_ctl` on a free port of 127.0.0.1, run as the `postgres` user when the
//! test runs as root (PostgreSQL refuses root). Never the shared server other tests use. Stopped
//! (immediately) and removed on drop.

use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

pub struct PgServer {
    dir: TempDir,
    /// The `bin` folder of the newest PostgreSQL installed.
    bin: PathBuf,
    pub port: u16,
    /// Run the server's commands as the `postgres` user.
    as_postgres: bool,
}

impl PgServer {
    /// Initialises and starts a server; `Err` says why the machine cannot run one (no
    /// PostgreSQL binaries, or `initdb` failed).
    pub fn start() -> Result<PgServer, String> {
        let bin = newest_bin().ok_or("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let as_postgres = is_root();
        if as_postgres {
            run("chown", &["-R", "postgres:postgres", &path(dir.path())])?;
        }
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
        let server = PgServer { dir, bin, port, as_postgres };
        let data = server.data();
        server.pg("initdb", &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])?;
        server.start_again()?;
        Ok(server)
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl stop -m fast`: sessions are ended, the server shuts down cleanly, and the port is
    /// closed until `start_again`.
    pub fn stop(&self) -> Result<(), String> {
        self.pg("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "-t", "60", "stop"])
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn start_again(&self) -> Result<(), String> {
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, path(self.dir.path()));
        let log = path(&self.dir.path().join("server.log"));
        self.pg("pg_ctl", &["-D", &self.data(), "-l", &log, "-o", &opts, "-w", "-t", "60", "start"])
    }

    /// `pg_ctl restart -m fast`.
    pub fn restart(&self) -> Result<(), String> {
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, path(self.dir.path()));
        let log = path(&self.dir.path().join("server.log"));
        self.pg("pg_ctl", &["-D", &self.data(), "-l", &log, "-o", &opts, "-m", "fast", "-w", "-t", "60", "restart"])
    }

    fn data(&self) -> String {
        path(&self.dir.path().join("data"))
    }

    /// Runs one of the server's programs (as `postgres` when needed).
    fn pg(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let exe = path(&self.bin.join(program));
        if self.as_postgres {
            let mut all = vec!["-u", "postgres", "--", exe.as_str()];
            all.extend_from_slice(args);
            run("runuser", &all)
        } else {
            run(&exe, args)
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self.pg("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// `/usr/lib/postgresql/<newest version>/bin`, if any.
fn newest_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}
