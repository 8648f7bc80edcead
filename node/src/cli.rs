//! The command line of `confab`: parse, then serve (the default) or run a subcommand.

use crate::{NodeConfig, ServeArgs};
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Confab: a real-time chat server, a cluster of actor nodes.
#[derive(Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a node (what `confab` alone does).
    Serve(ServeArgs),
    /// Load generator: a real client of the public protocol (issue 3).
    Bench(crate::bench::BenchArgs),
    /// Administer accounts in the database (create-admin, reset-password, set-role).
    Admin(crate::admin::AdminArgs),
    /// Copy this node's SQLite database to a new file while the node keeps serving.
    Backup(crate::backup::BackupArgs),
    /// Put a backup in place of the SQLite database of a node that is not running.
    Restore(crate::backup::RestoreArgs),
    /// Kill actors on a node started with --enable-chaos (room, session, writer, rooms, sessions).
    Chaos(crate::chaos::ChaosArgs),
    /// Cluster credentials: `confab cluster init` makes the key every node of a cluster needs.
    Cluster(ClusterArgs),
}

#[derive(clap::Args)]
struct ClusterArgs {
    #[command(subcommand)]
    cmd: ClusterCmd,
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Make a new cluster key (32 random bytes) and write it to --out (made readable by its owner
    /// only; an existing file is never overwritten) or print it. Give every node the same file
    /// with --cluster-key-file.
    Init {
        /// The key file to create [default: print the key].
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

/// Runs the command line; the `confab` binary is only this.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let args = match cli.cmd {
        Some(Cmd::Serve(args)) => args,
        Some(Cmd::Bench(args)) => return crate::bench::main(args),
        Some(Cmd::Admin(admin)) => return run_tool("admin", crate::admin::run(admin)),
        Some(Cmd::Backup(args)) => return run_tool("backup", crate::backup::run_backup(args)),
        Some(Cmd::Restore(args)) => return run_tool("restore", crate::backup::run_restore(args)),
        Some(Cmd::Chaos(args)) => return crate::chaos::main(args),
        Some(Cmd::Cluster(args)) => return run_cluster(args),
        None => cli.serve,
    };
    // Before the configuration: its default cap on unauthenticated connections follows the limit.
    let files = raise_open_files();
    let config = match NodeConfig::resolve(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("confab: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let filter = config.log.clone().or_else(|| std::env::var("RUST_LOG").ok()).unwrap_or_else(|| "info".into());
    crate::logs::init(&filter, config.log_format, &config.system.node_id);
    match files {
        Ok((before, after, hard)) => tracing::info!(soft_before = before, soft = after, hard, "open-file limit"),
        Err(e) => tracing::warn!(err = %e, "could not raise the open-file limit"),
    }
    // Before any thread starts: the commit threads are started from this (main) thread.
    confab_actors::priority::init(config.system.writer_nice);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .on_thread_start(confab_actors::priority::set_other_thread)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(serve(config)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("confab: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Raises the soft limit on open files to the hard limit: (soft before, soft now, hard).
fn raise_open_files() -> std::io::Result<(u64, u64, u64)> {
    let (before, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    let after = rlimit::increase_nofile_limit(u64::MAX)?;
    Ok((before, after, hard))
}

/// Handshakes the kernel may hold for `accept` (it clamps this to `net.core.somaxconn`). tokio's
/// default, 1,024, overflows when thousands of clients reconnect at once (a load balancer reload):
/// each handshake dropped then costs its client a retransmission after 1 s, 3 s, 7 s...
const LISTEN_BACKLOG: u32 = 65_535;

async fn serve(config: NodeConfig) -> anyhow::Result<bool> {
    let listener = bind(config.listen).map_err(|e| anyhow::anyhow!("binding {}: {e}", config.listen))?;
    crate::run(config, listener, shutdown_signal()).await
}

/// A listener on `addr` as `TcpListener::bind` makes it (`SO_REUSEADDR`), with `LISTEN_BACKLOG`.
fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

fn run_cluster(args: ClusterArgs) -> std::process::ExitCode {
    let ClusterCmd::Init { out } = args.cmd;
    let text = confab_cluster::key::ClusterKey::generate().to_text();
    let Some(path) = out else {
        print!("{text}");
        return std::process::ExitCode::SUCCESS;
    };
    let written = (|| -> std::io::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    })();
    match written {
        Ok(()) => {
            eprintln!(
                "confab cluster init: wrote a new cluster key to {}; give every node of the cluster this file \
                 with --cluster-key-file, and keep it secret",
                path.display()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("confab cluster init: {}: {e}", path.display());
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs a command that works on the database at the console (`admin`, `backup`, `restore`):
/// warnings only on stderr, the outcome on stdout, exit code 1 with the reason on failure.
fn run_tool(name: &str, command: impl Future<Output = anyhow::Result<()>>) -> std::process::ExitCode {
    tracing_subscriber::fmt().with_env_filter(EnvFilter::new("warn")).with_writer(std::io::stderr).init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("confab {name}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
