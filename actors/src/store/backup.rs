//! Copies of a node's SQLite database: `backup_sqlite` snapshots a live database while its node
//! keeps serving, `inspect_sqlite` says whether a file is a Confab database of a migration version
//! this build knows, and `restore_sqlite` puts a checked copy in place of a stopped node's file.
//!
//! The snapshot is `VACUUM INTO` over a connection of its own: in WAL mode it is one read
//! transaction, so it sees every commit made before it began (every acknowledged message) and
//! none made during it, and never blocks the node's writer. It never writes the live file, and
//! never overwrites an existing file. PostgreSQL is backed up with its own tools (README,
//! "Backups").

use crate::error::{Error, Result};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Row};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a Confab SQLite database holds, as read from one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbSummary {
    /// The newest migration applied to it.
    pub version: i64,
    /// The newest migration this build knows.
    pub newest_known: i64,
    pub users: i64,
    pub rooms: i64,
    pub messages: i64,
}

/// What `restore_sqlite` did.
#[derive(Debug, Clone)]
pub struct Restored {
    pub summary: DbSummary,
    /// Where the database it replaced now is (with its `-wal` and `-shm` files), if there was one.
    pub previous: Option<PathBuf>,
}

/// Copies the database at `db` (live or not) into a new file `out`, consistently, then checks
/// the copy. The copy is written beside `out` and renamed into place only once checked, so `out`
/// is either a whole, checked backup or absent.
pub async fn backup_sqlite(db: &Path, out: &Path) -> Result<DbSummary> {
    if !db.is_file() {
        return Err(Error::Invalid(format!("there is no database at {}", db.display())));
    }
    if out.exists() {
        return Err(Error::Invalid(format!("{} exists; a backup never overwrites a file", out.display())));
    }
    let partial = sibling(out, "partial");
    let made = async {
        let mut conn = open(db, false).await?;
        // A read transaction of its own on the live file: the node's writer carries on meanwhile.
        let copied = sqlx::query("VACUUM INTO $1").bind(path_text(&partial)?).execute(&mut conn).await;
        let _ = conn.close().await;
        copied?;
        sync_file(&partial)?;
        let summary = inspect_sqlite(&partial).await?;
        std::fs::rename(&partial, out).map_err(|e| io("naming the backup", out, e))?;
        sync_dir(out);
        Ok::<_, Error>(summary)
    }
    .await;
    if made.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    made
}

/// Checks that `file` is an intact Confab SQLite database whose every applied migration is one
/// of this build's (an older one is fine: a node migrates it on start), and summarises it.
pub async fn inspect_sqlite(file: &Path) -> Result<DbSummary> {
    if !file.is_file() {
        return Err(Error::Invalid(format!("there is no file {}", file.display())));
    }
    let not_ours = |why: String| Error::Invalid(format!("{} is not a Confab database: {why}", file.display()));
    let mut conn = open(file, true).await.map_err(|e| not_ours(e.to_string()))?;
    let summary = async {
        let check: String = sqlx::query("PRAGMA quick_check")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| not_ours(e.as_database_error().map_or_else(|| e.to_string(), |d| d.message().to_owned())))?
            .get(0);
        if check != "ok" {
            return Err(Error::Invalid(format!("{} is damaged: {check}", file.display())));
        }
        let applied = sqlx::query("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .map_err(|_| not_ours("it has no Confab migrations".into()))?;
        let known = &confab_schemas::SQLITE_MIGRATOR.migrations;
        let newest_known = known.iter().map(|m| m.version).max().unwrap_or(0);
        let mut version = 0;
        for row in &applied {
            let (v, checksum, success): (i64, Vec<u8>, bool) = (row.get(0), row.get(1), row.get(2));
            let Some(ours) = known.iter().find(|m| m.version == v) else {
                return Err(Error::Invalid(format!(
                    "{} is at migration {v}, which this build of confab does not know (it knows up to \
                     {newest_known}): restore it with the confab that made it",
                    file.display()
                )));
            };
            if *ours.checksum != *checksum || !success {
                return Err(not_ours(format!("its migration {v} is not Confab's ({})", ours.description)));
            }
            version = v;
        }
        if version == 0 {
            return Err(not_ours("it has no Confab migrations".into()));
        }
        let users: i64 = sqlx::query("SELECT COUNT(*) FROM users").fetch_one(&mut conn).await?.get(0);
        let rooms: i64 = sqlx::query("SELECT COUNT(*) FROM rooms").fetch_one(&mut conn).await?.get(0);
        let messages: i64 = sqlx::query("SELECT COUNT(*) FROM messages").fetch_one(&mut conn).await?.get(0);
        Ok::<_, Error>(DbSummary { version, newest_known, users, rooms, messages })
    }
    .await;
    let _ = conn.close().await;
    summary
}

/// Puts the backup `backup` in place as the database `db`, after checking it
/// (`inspect_sqlite`). The caller makes sure no node uses `db`. The database it replaces, with
/// its `-wal` and `-shm` files, is kept beside it as `<db>.before-restore-<time>`.
pub async fn restore_sqlite(backup: &Path, db: &Path) -> Result<Restored> {
    let summary = inspect_sqlite(backup).await?;
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
    }
    let incoming = sibling(db, "restoring");
    std::fs::copy(backup, &incoming).map_err(|e| io("copying the backup to", &incoming, e))?;
    let placed = async {
        sync_file(&incoming)?;
        // The copy, not only the original, must read back whole.
        inspect_sqlite(&incoming).await?;
        let previous = if db.exists() {
            let stamp = confab_schemas::now_ms() / 1000;
            let kept = with_suffix(db, &format!(".before-restore-{stamp}"));
            // The WAL first: a database file without its WAL is older but whole; the other way
            // round, SQLite would apply a WAL to a file it does not belong to.
            for side in ["-wal", "-shm"] {
                let from = with_suffix(db, side);
                if from.exists() {
                    let to = with_suffix(&kept, side);
                    std::fs::rename(&from, &to).map_err(|e| io("moving aside", &from, e))?;
                }
            }
            std::fs::rename(db, &kept).map_err(|e| io("moving aside", db, e))?;
            Some(kept)
        } else {
            None
        };
        std::fs::rename(&incoming, db).map_err(|e| io("putting the backup in place as", db, e))?;
        sync_dir(db);
        Ok::<_, Error>(Restored { summary, previous })
    }
    .await;
    if placed.is_err() {
        let _ = std::fs::remove_file(&incoming);
    }
    placed
}

async fn open(file: &Path, read_only: bool) -> Result<SqliteConnection> {
    let opts = SqliteConnectOptions::new()
        .filename(file)
        .create_if_missing(false)
        .read_only(read_only)
        .busy_timeout(Duration::from_secs(30));
    Ok(SqliteConnection::connect_with(&opts).await?)
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// A hidden file beside `path` for work in progress, unique to this process.
fn sibling(path: &Path, what: &str) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.{what}-{}", std::process::id()))
}

fn path_text(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| Error::Invalid(format!("{} is not a UTF-8 path", path.display())))
}

fn sync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(|e| io("syncing", path, e))
}

/// Makes a rename in `path`'s directory durable (best effort: not every file system allows it).
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Invalid(format!("{what} {}: {e}", path.display()))
}
