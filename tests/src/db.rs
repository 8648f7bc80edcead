//! A fresh database per test: SQLite in a temp dir, or, when `CONFAB_TEST_DATABASE_URL` points at
//! a PostgreSQL server, a new database created there and dropped when the test ends.

use sqlx::Connection;
use tempfile::TempDir;

pub struct TestDb {
    pub dir: TempDir,
    pub url: String,
    /// (server URL, database name) of a PostgreSQL database to drop at the end.
    pg: Option<(String, String)>,
}

impl TestDb {
    /// PostgreSQL when `CONFAB_TEST_DATABASE_URL` is set, else SQLite.
    pub async fn create() -> TestDb {
        match Self::postgres().await {
            Some(db) => db,
            None => Self::sqlite(),
        }
    }

    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("confab.db").display());
        TestDb { dir, url, pg: None }
    }

    /// A fresh database on the server of `CONFAB_TEST_DATABASE_URL`, if that is set.
    pub async fn postgres() -> Option<TestDb> {
        let server = std::env::var("CONFAB_TEST_DATABASE_URL").ok().filter(|u| u.starts_with("postgres"))?;
        Some(Self::postgres_at(&server).await)
    }

    /// A fresh database on the PostgreSQL server at `server`.
    pub async fn postgres_at(server: &str) -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let name = format!("confab_test_{}_{}", std::process::id(), rand::random::<u32>());
        let mut conn = sqlx::PgConnection::connect(server)
            .await
            .unwrap_or_else(|e| panic!("connect to PostgreSQL at {server}: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create database");
        let url = with_database(server, &name);
        TestDb { dir, url, pg: Some((server.to_owned(), name)) }
    }

    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.pg.take() else { return };
        // Drop runs outside async: use a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&server).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
                }
            });
        })
        .join();
    }
}

/// `server` with its database path replaced by `name`.
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (server, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..].find('/').map(|i| scheme_end + i).unwrap_or(base.len());
    format!("{}/{name}{query}", &base[..host_end])
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_database() {
        assert_eq!(
            super::with_database("postgres://root@127.0.0.1:5432/test", "x"),
            "postgres://root@127.0.0.1:5432/x"
        );
        assert_eq!(super::with_database("postgres://h/test?sslmode=disable", "x"), "postgres://h/x?sslmode=disable");
        assert_eq!(super::with_database("postgres://h", "x"), "postgres://h/x");
    }
}
