//! Connecting to the database, applying migrations, and handing writes to the writer.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use crate::in_flight::{InFlight, LocalReservations};
use crate::write::{self, Arg, Writer};
use crate::StoreError;

/// Which database the state lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// An SQLite file (the embedded default, under the data dir).
    Sqlite(PathBuf),
    /// A PostgreSQL URL shared by several replicas.
    Postgres(String),
}

/// The database engine behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The handle to the database: cheap to clone, safe to share between tasks.
#[derive(Clone)]
pub struct Store {
    /// Connections for reads.
    pub(crate) pool: AnyPool,
    /// Where writes run (see `crate::write`).
    writer: Writer,
    backend: Backend,
    /// The PostgreSQL URL, for connections of their own (notifications).
    postgres_url: Option<String>,
    /// Where the money set aside for calls in flight is kept (see `crate::in_flight`).
    pub(crate) in_flight: InFlight,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Store {
    /// Opens (creating when missing) the database and applies every pending migration.
    pub async fn connect(target: &DatabaseTarget) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (url, backend) = match target {
            DatabaseTarget::Sqlite(path) => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        StoreError::Invalid(format!("cannot create {}: {e}", parent.display()))
                    })?;
                }
                (
                    format!("sqlite://{}?mode=rwc", path.display()),
                    Backend::Sqlite,
                )
            }
            DatabaseTarget::Postgres(url) => (url.clone(), Backend::Postgres),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = match backend {
            Backend::Sqlite => sqlite_pool(8).connect_with(options).await?,
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(options)
                    .await?
            }
        };
        migrate(&pool, backend).await?;
        let writer = match target {
            DatabaseTarget::Sqlite(path) => write::start_sqlite_writer(path)?,
            DatabaseTarget::Postgres(_) => Writer::Pool(pool.clone()),
        };
        let in_flight = match backend {
            Backend::Postgres => InFlight::Rows,
            Backend::Sqlite => InFlight::Local(std::sync::Arc::new(LocalReservations::default())),
        };
        Ok(Store {
            pool,
            writer,
            backend,
            in_flight,
            postgres_url: match target {
                DatabaseTarget::Postgres(url) => Some(url.clone()),
                DatabaseTarget::Sqlite(_) => None,
            },
        })
    }

    /// The PostgreSQL URL this store connects to (`None` on SQLite).
    pub(crate) fn postgres_url(&self) -> Option<&str> {
        self.postgres_url.as_deref()
    }

    /// Which engine this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs a write job in one transaction and returns its result once committed.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        job: impl write::Job<T>,
    ) -> Result<T, StoreError> {
        self.writer.run(job).await
    }

    /// Runs one writing statement as a job of its own; returns the number of rows changed.
    pub(crate) async fn execute(&self, sql: &str, args: Vec<Arg>) -> Result<u64, StoreError> {
        let sql = sql.to_string();
        self.write(move |tx| Box::pin(async move { tx.execute(&sql, args).await }))
            .await
    }

    /// Closes every pooled connection (used at shutdown so SQLite checkpoints its WAL).
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

async fn migrate(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    match backend {
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
        Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(pool).await?,
    }
    Ok(())
}

/// A pool of SQLite connections in WAL mode with a busy timeout (for other processes, such as
/// the admin CLI, that write to the same file).
fn sqlite_pool(connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(30))
        // A local file does not drop connections: pinging each one before use only doubles
        // the round trips to SQLite's worker threads.
        .test_before_acquire(false)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                )
                .await?;
                Ok(())
            })
        })
}

impl Store {
    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
