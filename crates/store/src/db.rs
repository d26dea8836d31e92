//! Connecting to the database, applying migrations, and handing writes to the writer.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use crate::in_flight::{InFlight, LocalReservations};
use crate::write::{self, Arg, SqliteWriter};
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

/// What differs between the two databases, in one place: where writes run, where the money
/// set aside for calls in flight is kept (`crate::in_flight`), and how other replicas are
/// reached.
#[derive(Clone)]
enum Engine {
    /// One server on an SQLite file: writes go to the writer thread (`crate::write`);
    /// reservations are held in this process.
    Sqlite {
        writer: SqliteWriter,
        reservations: std::sync::Arc<LocalReservations>,
    },
    /// Replicas on PostgreSQL: each write is a pooled transaction; reservations are rows held
    /// by `holder` (this process); `url` opens the connections that listen for notifications.
    Postgres {
        url: String,
        holder: std::sync::Arc<str>,
    },
}

/// The handle to the database: cheap to clone, safe to share between tasks.
#[derive(Clone)]
pub struct Store {
    /// Connections for reads (and, on PostgreSQL, writes).
    pub(crate) pool: AnyPool,
    engine: Engine,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
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
                (sqlite_url(path), Backend::Sqlite)
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
        let engine = match target {
            DatabaseTarget::Sqlite(path) => Engine::Sqlite {
                writer: write::start_sqlite_writer(path)?,
                reservations: std::sync::Arc::new(LocalReservations::default()),
            },
            DatabaseTarget::Postgres(url) => Engine::Postgres {
                url: url.clone(),
                // Each process is its own holder: a new one after a restart.
                holder: crate::new_id().into(),
            },
        };
        Ok(Store { pool, engine })
    }

    /// The PostgreSQL URL this store connects to (`None` on SQLite).
    pub(crate) fn postgres_url(&self) -> Option<&str> {
        match &self.engine {
            Engine::Postgres { url, .. } => Some(url),
            Engine::Sqlite { .. } => None,
        }
    }

    /// Where the money set aside for calls in flight is kept.
    pub(crate) fn in_flight(&self) -> InFlight {
        match &self.engine {
            Engine::Sqlite { reservations, .. } => InFlight::Local(reservations.clone()),
            Engine::Postgres { holder, .. } => InFlight::Rows {
                holder: holder.clone(),
            },
        }
    }

    /// Sends `payload` to every replica listening on `channel` (PostgreSQL `NOTIFY`; nothing
    /// on SQLite, where one server runs).
    pub(crate) async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        if let Engine::Postgres { .. } = self.engine {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// The payloads sent on `channel`, as they arrive (PostgreSQL only: `None` on SQLite).
    /// The stream ends when the listening connection fails for good.
    pub(crate) async fn listen(
        &self,
        channel: &'static str,
    ) -> Result<Option<futures::stream::BoxStream<'static, String>>, StoreError> {
        let Some(url) = self.postgres_url() else {
            return Ok(None);
        };
        let mut listener = sqlx::postgres::PgListener::connect(url).await?;
        listener.listen(channel).await?;
        let payloads = futures::stream::unfold(listener, move |mut listener| async move {
            match listener.recv().await {
                Ok(notification) => Some((notification.payload().to_string(), listener)),
                Err(error) => {
                    tracing::warn!(%error, channel, "stopped listening");
                    None
                }
            }
        });
        Ok(Some(Box::pin(payloads)))
    }

    /// Which engine this store runs on.
    pub fn backend(&self) -> Backend {
        match self.engine {
            Engine::Sqlite { .. } => Backend::Sqlite,
            Engine::Postgres { .. } => Backend::Postgres,
        }
    }

    /// Runs a write job in one transaction and returns its result once committed.
    ///
    /// A job may await only its own transaction's statements: it runs inside the writer's
    /// group commit on SQLite, where anything else it waited for would hold every other
    /// write.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        job: impl write::Job<T>,
    ) -> Result<T, StoreError> {
        match &self.engine {
            Engine::Sqlite { writer, .. } => writer.run(job).await,
            Engine::Postgres { .. } => write::run_pooled(&self.pool, job).await,
        }
    }

    /// Runs one writing statement as a job of its own; returns the number of rows changed.
    pub(crate) async fn execute(&self, sql: &str, args: Vec<Arg>) -> Result<u64, StoreError> {
        let sql = sql.to_string();
        self.write(move |tx| Box::pin(async move { tx.execute(&sql, args).await }))
            .await
    }

    /// Closes every pooled connection (used at shutdown so SQLite checkpoints its WAL).
    pub async fn close(&self) {
        if let Engine::Sqlite { writer, .. } = &self.engine {
            writer.close().await;
        }
        self.pool.close().await;
    }
}

async fn migrate(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    crate::migrations::migrator(backend)
        .await?
        .run(pool)
        .await?;
    Ok(())
}

/// The URL of an SQLite file, created when missing.
fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TurnStart;

    /// The SQLite migrations up to `version`, as a database of that release had them.
    async fn migrated_to(path: &std::path::Path, version: i64) -> AnyPool {
        sqlx::any::install_default_drivers();
        let options = AnyConnectOptions::from_str(&sqlite_url(path)).expect("url");
        let pool = sqlite_pool(1).connect_with(options).await.expect("pool");
        let mut migrator = crate::migrations::migrator(Backend::Sqlite)
            .await
            .expect("migrations");
        migrator.migrations = migrator
            .migrations
            .iter()
            .filter(|m| m.version <= version)
            .cloned()
            .collect::<Vec<_>>()
            .into();
        migrator.run(&pool).await.expect("old migrations");
        pool
    }

    #[tokio::test]
    async fn rebuilding_sessions_messages_and_ledger_keeps_every_row() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("old.db");
        let old = migrated_to(&path, 6).await;
        for sql in [
            "INSERT INTO tenants (id, name, tier, created_at) VALUES ('t1', 'acme', 'pro', 1)",
            "INSERT INTO users (id, tenant_id, email, role, created_at) VALUES ('u1', 't1', 'a@acme.test', 'admin', 1)",
            "INSERT INTO sessions (id, tenant_id, user_id, title, created_at, updated_at) VALUES ('s1', 't1', 'u1', 'hello', 10, 20)",
            "INSERT INTO sessions (id, tenant_id, user_id, title, created_at, updated_at) VALUES ('s2', 't1', 'u1', NULL, 30, 30)",
            "INSERT INTO messages (session_id, role, content, created_at) VALUES ('s1', 'user', 'hello', 10)",
            "INSERT INTO messages (session_id, role, content, interrupted, created_at) VALUES ('s1', 'assistant', 'hi th', 1, 20)",
            "INSERT INTO messages (session_id, role, content, created_at) VALUES ('s2', 'user', 'other', 30)",
            "INSERT INTO usage_ledger (id, tenant_id, user_id, session_id, kind, item, prompt_tokens, completion_tokens, cost_micros, usage_type, month, created_at) \
             VALUES ('l1', 't1', 'u1', 's1', 'llm', 'gpt-4.1', 12, 3, 450, 'managed', '2026-12', 20)",
        ] {
            sqlx::query(sql).execute(&old).await.expect(sql);
        }
        old.close().await;

        let store = Store::connect(&DatabaseTarget::Sqlite(path))
            .await
            .expect("migrated");

        let sessions = store.list_sessions("u1", 10, 0).await.expect("sessions");
        let ids: Vec<&str> = sessions.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["s2", "s1"]);
        assert_eq!(sessions[1].title.as_deref(), Some("hello"));
        assert_eq!(sessions[1].message_count, 2);

        // A new message comes after the migrated ones.
        let started = store
            .begin_turn("s1", None, "and again", 60_000, 20, None)
            .await
            .expect("turn");
        let TurnStart::Started { history, .. } = started else {
            panic!("not started: {started:?}");
        };
        let contents: Vec<&str> = history.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(contents, ["hello", "hi th", "and again"]);
        assert!(history[1].interrupted);

        let ledger: i64 = sqlx::query_scalar(
            "SELECT cost_micros FROM usage_ledger WHERE id = 'l1' AND session_id = 's1'",
        )
        .fetch_one(&store.pool)
        .await
        .expect("ledger row");
        assert_eq!(ledger, 450);

        // Deleting a session takes its messages, and only its own; the foreign key now points at
        // the rebuilt sessions table.
        store.delete_session("s1", "u1").await.expect("deleted");
        let left: Vec<String> = sqlx::query_scalar("SELECT content FROM messages ORDER BY id")
            .fetch_all(&store.pool)
            .await
            .expect("messages");
        assert_eq!(left, ["other"]);
        sqlx::query("INSERT INTO messages (session_id, role, content, created_at) VALUES ('gone', 'user', 'x', 1)")
            .execute(&store.pool)
            .await
            .expect_err("a message needs its session");

        let schema: Vec<String> = sqlx::query_scalar(
            "SELECT sql FROM sqlite_master WHERE name IN ('sessions', 'usage_ledger', 'messages') ORDER BY name",
        )
        .fetch_all(&store.pool)
        .await
        .expect("schema");
        assert!(
            schema[0].contains("REFERENCES \"sessions\"")
                || schema[0].contains("REFERENCES sessions"),
            "{}",
            schema[0]
        );
        assert!(!schema[0].contains("AUTOINCREMENT"), "{}", schema[0]);
        assert!(schema[1].ends_with("WITHOUT ROWID"), "{}", schema[1]);
        assert!(schema[2].ends_with("WITHOUT ROWID"), "{}", schema[2]);
        store.close().await;
    }
}
