//! The one error type of the actors crate.

use thiserror::Error;

/// Everything that can fail in the actors and the store.
#[derive(Debug, Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} already exists")]
    Conflict(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("cache: {0}")]
    Cache(String),
    #[error("actor: {0}")]
    Actor(String),
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// One failure answered to several callers (a read made for all of them).
    #[error("{0}")]
    Shared(std::sync::Arc<Error>),
}

impl Error {
    /// True when a unique constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            Error::Database(sqlx::Error::Database(db)) => db.is_unique_violation(),
            Error::Shared(e) => e.is_unique_violation(),
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
