//! The error type of every repository function.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named object does not exist (or is not visible to the caller).
    #[error("{0} not found")]
    NotFound(String),
    /// A unique name or key is already taken.
    #[error("{0} already exists")]
    Conflict(String),
    /// A value the caller gave is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The database refused or failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The SQLite writer refused or failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A write's transaction could not commit.
    #[error("database error: the write could not be committed: {0}")]
    Commit(String),
    /// The database writer is gone (the store was closed, or a write job panicked).
    #[error("database error: the database writer has stopped")]
    WriterStopped,
    /// Applying the schema migrations failed.
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Whether the database refused a row because a unique key was taken.
    pub(crate) fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => db.is_unique_violation(),
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(failure, _)) => matches!(
                failure.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ),
            _ => false,
        }
    }

    /// Maps a unique-constraint violation to `Conflict(what)`, leaving other errors as they are.
    pub(crate) fn conflict_on_unique(self, what: &str) -> StoreError {
        if self.is_unique_violation() {
            StoreError::Conflict(what.to_string())
        } else {
            self
        }
    }
}
