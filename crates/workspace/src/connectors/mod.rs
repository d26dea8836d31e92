//! Connectors: stream records out of a source and into a destination, in batches, never
//! holding a whole data set in memory.
//!
//! A record is a flat JSON object (see `crate::flatten`): nested objects become `a.b` columns,
//! arrays become JSON text. Sources yield batches of at most `BATCH_SIZE` records. A
//! destination writes everything inside one transaction (databases) or to a temporary file
//! renamed at the end (files), so a failed run leaves the destination as it was.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use crate::egress::EgressPolicy;

pub mod file;
pub mod http;
pub mod spec;
pub mod sql;
pub mod sqlite;
pub(crate) mod tenant_files;

/// One row: column name → value (strings, numbers, booleans, null; never nested).
pub type Record = serde_json::Map<String, serde_json::Value>;

/// Records per batch.
pub const BATCH_SIZE: usize = 1000;

/// Connection types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionType {
    Http,
    Postgres,
    Sqlite,
    File,
}

impl ConnectionType {
    /// The name used in commands and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionType::Http => "http",
            ConnectionType::Postgres => "postgres",
            ConnectionType::Sqlite => "sqlite",
            ConnectionType::File => "file",
        }
    }

    /// Parses a type name.
    pub fn parse(text: &str) -> Option<ConnectionType> {
        match text {
            "http" => Some(ConnectionType::Http),
            "postgres" => Some(ConnectionType::Postgres),
            "sqlite" => Some(ConnectionType::Sqlite),
            "file" => Some(ConnectionType::File),
            _ => None,
        }
    }
}

/// A connection with its parameters decrypted (secrets in clear, in memory only).
#[derive(Clone)]
pub struct ConnectionSpec {
    pub name: String,
    pub kind: ConnectionType,
    /// `key=value` parameters as given in `create connection` (e.g. `url`, `header.X-Api-Key`,
    /// `records`, `pagination`, `path`, `format`, `password`).
    pub params: BTreeMap<String, String>,
}

impl std::fmt::Debug for ConnectionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// What to read from a source connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// http: an endpoint path appended to the connection URL; databases: a table; file: a file name.
    Resource(String),
    /// databases only: a SELECT query.
    Query(String),
}

/// How a destination is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    Append,
    Replace,
    Upsert,
}

impl WriteMode {
    /// The name used in commands and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteMode::Append => "append",
            WriteMode::Replace => "replace",
            WriteMode::Upsert => "upsert",
        }
    }

    /// Parses a mode name.
    pub fn parse(text: &str) -> Option<WriteMode> {
        match text {
            "append" => Some(WriteMode::Append),
            "replace" => Some(WriteMode::Replace),
            "upsert" => Some(WriteMode::Upsert),
            _ => None,
        }
    }
}

/// Where a destination writes and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationSpec {
    /// A table (databases) or a file name (file connections).
    pub target: String,
    pub mode: WriteMode,
    /// Key columns for upsert.
    pub key: Vec<String>,
}

/// What connectors need from their surroundings.
#[derive(Debug, Clone)]
pub struct ConnectorContext {
    /// The tenant's own folder: relative paths of sqlite and file connections live here, and
    /// no path may leave it.
    pub tenant_dir: PathBuf,
    /// The network addresses connections may reach.
    pub egress: Arc<EgressPolicy>,
}

impl ConnectorContext {
    /// A context for a tenant folder under a policy.
    pub fn new(tenant_dir: impl Into<PathBuf>, egress: Arc<EgressPolicy>) -> ConnectorContext {
        ConnectorContext {
            tenant_dir: tenant_dir.into(),
            egress,
        }
    }

    #[cfg(test)]
    pub(crate) fn for_tests(tenant_dir: &std::path::Path) -> ConnectorContext {
        ConnectorContext::new(tenant_dir, Arc::new(EgressPolicy::default()))
    }
}

/// Why a connector failed. Messages name the connection and never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// A parameter is missing or invalid.
    #[error("{0}")]
    Config(String),
    /// The remote system failed or refused.
    #[error("{0}")]
    Remote(String),
    /// Data that cannot be read or written as asked.
    #[error("{0}")]
    Data(String),
}

/// A stream of record batches.
#[async_trait]
pub trait Source: Send {
    /// The next batch, or `None` at the end.
    async fn next_batch(&mut self) -> Result<Option<Vec<Record>>, ConnectorError>;

    /// Lines for the run's log about what was read since the last call (e.g. one per page
    /// an http source requested); never secrets.
    fn take_log(&mut self) -> Vec<String> {
        Vec::new()
    }

    /// Pages (requests) fetched so far, for sources that fetch pages.
    fn pages_fetched(&self) -> u64 {
        0
    }
}

/// The proof of a run's commit, written into the destination inside the run's own
/// transaction (databases: a row of `_integrator_runs`) or beside its output (files: a hidden
/// marker file, made before the output is renamed into place), so that after a crash between
/// the commit and the run's record the outcome can still be told exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMarker {
    /// Unique per run.
    pub token: String,
    pub flow: String,
    pub rows_written: i64,
}

/// The table of run markers in SQL destinations.
pub const MARKER_TABLE: &str = "_integrator_runs";

/// A transactional sink of record batches.
#[async_trait]
pub trait Destination: Send {
    /// Writes a batch (visible to others only after `commit`).
    async fn write_batch(&mut self, records: &[Record]) -> Result<u64, ConnectorError>;
    /// Makes `commit` also record `marker`, atomically with the data.
    fn set_marker(&mut self, marker: RunMarker);
    /// Makes everything written visible.
    async fn commit(self: Box<Self>) -> Result<(), ConnectorError>;
    /// Discards everything written; the destination is left as it was.
    async fn rollback(self: Box<Self>) -> Result<(), ConnectorError>;
}

// ---------------------------------------------------------------------------------------------
// Dispatch

/// Opens `source` on a connection. Parameters are checked (and databases connected) here;
/// http sources send their first request on the first `next_batch`.
pub async fn open_source(
    conn: &ConnectionSpec,
    source: &SourceSpec,
    ctx: &ConnectorContext,
) -> Result<Box<dyn Source>, ConnectorError> {
    match (conn.kind, source) {
        (ConnectionType::Http, SourceSpec::Resource(resource)) => {
            Ok(Box::new(http::HttpSource::open(conn, resource, ctx)?))
        }
        (ConnectionType::File, SourceSpec::Resource(name)) => {
            Ok(Box::new(file::open_source(conn, name, ctx).await?))
        }
        (ConnectionType::Http | ConnectionType::File, SourceSpec::Query(_)) => {
            Err(ConnectorError::Config(format!(
                "connection {} is a {} connection: query= is only for postgres and sqlite connections",
                conn.name,
                conn.kind.as_str()
            )))
        }
        (ConnectionType::Postgres, _) => Ok(Box::new(
            sql::open_postgres_source(conn, source, ctx).await?,
        )),
        (ConnectionType::Sqlite, _) => {
            Ok(Box::new(sql::open_sqlite_source(conn, source, ctx).await?))
        }
    }
}

/// Opens a destination on a connection; databases start their transaction here.
pub async fn open_destination(
    conn: &ConnectionSpec,
    dest: &DestinationSpec,
    ctx: &ConnectorContext,
) -> Result<Box<dyn Destination>, ConnectorError> {
    match conn.kind {
        ConnectionType::Http => Err(ConnectorError::Config(
            "http connections can only be read".into(),
        )),
        ConnectionType::Postgres => Ok(Box::new(
            sql::open_postgres_destination(conn, dest, ctx).await?,
        )),
        ConnectionType::Sqlite => Ok(Box::new(
            sql::open_sqlite_destination(conn, dest, ctx).await?,
        )),
        ConnectionType::File => Ok(Box::new(file::open_destination(conn, dest, ctx).await?)),
    }
}

/// Looks for a run's marker in its destination: `Some(rows written)` when the run committed,
/// `None` when it did not (a file output that was not renamed into place is removed here).
pub async fn find_marker(
    conn: &ConnectionSpec,
    dest: &DestinationSpec,
    token: &str,
    ctx: &ConnectorContext,
) -> Result<Option<i64>, ConnectorError> {
    match conn.kind {
        ConnectionType::Http => Ok(None),
        ConnectionType::Postgres => sql::find_postgres_marker(conn, dest, token, ctx).await,
        ConnectionType::Sqlite => sql::find_sqlite_marker(conn, token, ctx).await,
        ConnectionType::File => file::find_marker(conn, dest, token, ctx).await,
    }
}

/// Removes what a recorded run no longer needs of its marker (a file output's marker file;
/// database markers stay as the destination's own history of runs).
pub async fn forget_marker(
    conn: &ConnectionSpec,
    dest: &DestinationSpec,
    token: &str,
    ctx: &ConnectorContext,
) {
    if conn.kind == ConnectionType::File {
        file::forget_marker(conn, dest, token, ctx).await;
    }
}

/// Checks that a connection works, without changing anything; returns one line saying what
/// was checked (e.g. "connected to PostgreSQL 15.2 at etl@db:5432/analytics").
pub async fn test_connection(
    conn: &ConnectionSpec,
    ctx: &ConnectorContext,
) -> Result<String, ConnectorError> {
    match conn.kind {
        ConnectionType::Http => http::test(conn, ctx).await,
        ConnectionType::Postgres => sql::test_postgres(conn, ctx).await,
        ConnectionType::Sqlite => sqlite::test(conn, ctx).await,
        ConnectionType::File => file::test(conn, ctx).await,
    }
}
