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
    /// Applying the schema migrations failed.
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Maps a unique-constraint violation to `Conflict(what)`, leaving other errors as they are.
    pub(crate) fn conflict_on_unique(err: sqlx::Error, what: &str) -> StoreError {
        if let sqlx::Error::Database(db) = &err {
            if db.is_unique_violation() {
                return StoreError::Conflict(what.to_string());
            }
        }
        StoreError::Database(err)
    }
}
