//! `confab backup <file>` and `confab restore <file>`: a consistent copy of a node's SQLite
//! database taken while the node serves, and putting one back while no node runs on it; and the
//! lock by which a running node claims its SQLite database (`DbLock`).
//!
//! Both commands take the same `--data-dir` / `--database-url` / `--config` as `serve` and open
//! the database file directly (the node need not answer, nor even run, for a backup). The SQL is
//! in `confab_actors::store::backup`. PostgreSQL is refused with the tools to use instead.

use crate::config::{NodeConfig, ServeArgs};
use anyhow::{Context, bail};
use confab_actors::store::backup;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    /// The backup file to write; it must not exist yet.
    pub file: PathBuf,
    #[command(flatten)]
    pub db: ServeArgs,
}

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// The backup file to put back (made by `confab backup`).
    pub file: PathBuf,
    #[command(flatten)]
    pub db: ServeArgs,
}

/// What an operator is told to use for a PostgreSQL database.
const POSTGRES_TOOLS: &str = "this node's database is PostgreSQL, which confab does not copy itself: use \
                              pg_dump / pg_restore, or base backups with WAL archiving (README, \"Backups\")";

pub async fn run_backup(args: BackupArgs) -> anyhow::Result<()> {
    let config = NodeConfig::resolve(&args.db)?;
    let db = sqlite_path(&config.database_url).with_context(|| POSTGRES_TOOLS)?;
    let summary = backup::backup_sqlite(&db, &args.file).await?;
    println!(
        "backed up {} to {}: migration {}, {} users, {} rooms, {} messages",
        db.display(),
        args.file.display(),
        summary.version,
        summary.users,
        summary.rooms,
        summary.messages
    );
    Ok(())
}

pub async fn run_restore(args: RestoreArgs) -> anyhow::Result<()> {
    let config = NodeConfig::resolve(&args.db)?;
    let db = sqlite_path(&config.database_url).with_context(|| POSTGRES_TOOLS)?;
    // Held until the backup is in place: no node can start on the file meanwhile.
    let _lock = DbLock::take(&db).map_err(|e| match e {
        LockError::Held(_) => anyhow::anyhow!(
            "a confab node is running on {} (it holds {}): stop it first, then restore",
            db.display(),
            lock_path(&db).display()
        ),
        other => anyhow::anyhow!(other),
    })?;
    let restored = backup::restore_sqlite(&args.file, &db).await?;
    let s = &restored.summary;
    println!(
        "restored {} to {}: migration {} (this confab knows up to {}), {} users, {} rooms, {} messages",
        args.file.display(),
        db.display(),
        s.version,
        s.newest_known,
        s.users,
        s.rooms,
        s.messages
    );
    if let Some(previous) = restored.previous {
        println!("the database it replaced is kept as {}", previous.display());
    }
    if let Some(blobs) = local_blobs(&config) {
        println!(
            "attachments on this node live in {}: restore that directory from the same backup run",
            blobs.display()
        );
    }
    Ok(())
}

/// The file of a `sqlite:` database URL (`None` for PostgreSQL).
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    Some(PathBuf::from(path))
}

fn local_blobs(config: &NodeConfig) -> Option<PathBuf> {
    match &config.blob.kind {
        confab_actors::blob::BlobKind::Local { dir } => Some(dir.clone()),
        _ => None,
    }
}

/// The lock file of the SQLite database `db`.
fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    db.with_file_name(name)
}

/// An exclusive claim on a SQLite database file, held by a running node (and by `confab restore`
/// while it works): an advisory lock on `<db>.lock`, released when dropped or when the process
/// dies, however it dies.
#[derive(Debug)]
pub struct DbLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another process holds {0}")]
    Held(PathBuf),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
}

impl DbLock {
    /// Takes the lock of the SQLite database `db`, or says who has it.
    pub fn take(db: &Path) -> Result<DbLock, LockError> {
        let path = lock_path(db);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| LockError::Io(dir.into(), e))?;
        }
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| LockError::Io(path.clone(), e))?;
        match file.try_lock() {
            Ok(()) => Ok(DbLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(LockError::Held(path)),
            Err(TryLockError::Error(e)) => Err(LockError::Io(path, e)),
        }
    }

    /// The lock a node takes on start: its SQLite database's (none for PostgreSQL).
    pub fn for_node(config: &NodeConfig) -> anyhow::Result<Option<DbLock>> {
        let Some(db) = sqlite_path(&config.database_url) else { return Ok(None) };
        match DbLock::take(&db) {
            Ok(lock) => Ok(Some(lock)),
            Err(LockError::Held(path)) => bail!(
                "another confab process is running on the database {} (it holds {}); a SQLite database \
                 serves one node",
                db.display(),
                path.display()
            ),
            Err(e) => Err(e).context("locking the database"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(sqlite_path("sqlite://data/confab.db"), Some("data/confab.db".into()));
        assert_eq!(sqlite_path("sqlite:///tmp/x.db?mode=rwc"), Some("/tmp/x.db".into()));
        assert_eq!(sqlite_path("sqlite:x.db"), Some("x.db".into()));
        assert_eq!(sqlite_path("postgres://h/db"), None);
    }

    #[test]
    fn one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("confab.db");
        let first = DbLock::take(&db).expect("free");
        assert!(matches!(DbLock::take(&db), Err(LockError::Held(_))));
        drop(first);
        DbLock::take(&db).expect("free again");
    }
}
