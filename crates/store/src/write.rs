//! How changes reach the database. Every write is a job: an async closure over a [`WriteTx`]
//! that runs inside one transaction and is answered only once that transaction committed.
//!
//! On PostgreSQL a job runs on a pooled connection, like any query. On SQLite, which has one
//! write lock per database, jobs go to a single writer thread that owns the only writing
//! connection. Its statements run right there, without a hop between threads each (as every
//! statement through sqlx's SQLite driver takes), and the jobs that queued up meanwhile commit
//! together (group commit), each in a savepoint of its own: a job that fails leaves no trace
//! and does not disturb the others.
//!
//! SQL is written once for both engines with `$N` placeholders (SQLite reads them as `?N`).

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::future::BoxFuture;
use sqlx::{AnyPool, Column, Row as _};
use tokio::sync::{mpsc, oneshot};

use crate::db::Backend;
use crate::StoreError;

/// One bound value. Nulls carry their type: PostgreSQL refuses a text null for a number.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Arg {
    fn from(value: i64) -> Arg {
        Arg::Int(Some(value))
    }
}

impl From<Option<i64>> for Arg {
    fn from(value: Option<i64>) -> Arg {
        Arg::Int(value)
    }
}

impl From<bool> for Arg {
    fn from(value: bool) -> Arg {
        Arg::Int(Some(i64::from(value)))
    }
}

impl From<&str> for Arg {
    fn from(value: &str) -> Arg {
        Arg::Text(Some(value.to_string()))
    }
}

impl From<String> for Arg {
    fn from(value: String) -> Arg {
        Arg::Text(Some(value))
    }
}

impl From<&String> for Arg {
    fn from(value: &String) -> Arg {
        Arg::Text(Some(value.clone()))
    }
}

impl From<Option<String>> for Arg {
    fn from(value: Option<String>) -> Arg {
        Arg::Text(value)
    }
}

impl From<Option<&str>> for Arg {
    fn from(value: Option<&str>) -> Arg {
        Arg::Text(value.map(str::to_string))
    }
}

/// The arguments of one statement: `args![a, b, c]`.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        vec![$($crate::write::Arg::from($value)),*]
    };
}
pub(crate) use args;

/// One value read inside a write job.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

/// A row read inside a write job; columns by position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row(Vec<Cell>);

impl Row {
    fn cell(&self, column: usize) -> Result<&Cell, StoreError> {
        self.0
            .get(column)
            .ok_or_else(|| StoreError::Invalid(format!("no column {column} in the row")))
    }

    /// An integer column that may be null.
    pub fn opt_int(&self, column: usize) -> Result<Option<i64>, StoreError> {
        match self.cell(column)? {
            Cell::Null => Ok(None),
            Cell::Int(value) => Ok(Some(*value)),
            other => Err(StoreError::Invalid(format!(
                "column {column} is not an integer: {other:?}"
            ))),
        }
    }

    /// An integer column.
    pub fn int(&self, column: usize) -> Result<i64, StoreError> {
        self.opt_int(column)?
            .ok_or_else(|| StoreError::Invalid(format!("column {column} is null")))
    }

    /// A text column that may be null.
    pub fn opt_text(&self, column: usize) -> Result<Option<String>, StoreError> {
        match self.cell(column)? {
            Cell::Null => Ok(None),
            Cell::Text(value) => Ok(Some(value.clone())),
            other => Err(StoreError::Invalid(format!(
                "column {column} is not text: {other:?}"
            ))),
        }
    }

    /// A text column.
    pub fn text(&self, column: usize) -> Result<String, StoreError> {
        self.opt_text(column)?
            .ok_or_else(|| StoreError::Invalid(format!("column {column} is null")))
    }
}

/// The statements a write job may run, inside its transaction.
#[async_trait]
pub(crate) trait WriteTx: Send {
    /// Runs a statement; returns the number of rows it changed.
    async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64, StoreError>;
    /// Runs a query; returns its rows.
    async fn fetch_all(&mut self, sql: &str, args: Vec<Arg>) -> Result<Vec<Row>, StoreError>;
    /// Which engine the transaction runs on (for the few statements that differ).
    fn backend(&self) -> Backend;

    /// Runs an `INSERT … RETURNING id` into a table whose integer `id` the database assigns;
    /// returns that id. (SQLite runs the statement without the clause and reads the row id it
    /// assigned: no result table to fill for one number.)
    async fn insert_returning_id(&mut self, sql: &str, args: Vec<Arg>) -> Result<i64, StoreError> {
        self.fetch_optional(sql, args)
            .await?
            .ok_or_else(|| StoreError::Invalid("the insert returned no id".into()))?
            .int(0)
    }

    /// Runs a query; returns its first row, if any.
    async fn fetch_optional(
        &mut self,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.fetch_all(sql, args).await?.into_iter().next())
    }
}

/// A write job waiting or running: counted in `db_write_queue_depth` while it lives.
struct QueuedWrite;

impl QueuedWrite {
    fn new() -> QueuedWrite {
        metrics::gauge!("db_write_queue_depth").increment(1.0);
        QueuedWrite
    }
}

impl Drop for QueuedWrite {
    fn drop(&mut self) {
        metrics::gauge!("db_write_queue_depth").decrement(1.0);
    }
}

/// The SQLite writer thread's queue: every write job of the process goes through it.
#[derive(Clone)]
pub(crate) struct SqliteWriter(mpsc::UnboundedSender<QueuedJob>);

/// A write job: runs with the transaction, returns what the caller gets.
pub(crate) trait Job<T>:
    for<'t> FnOnce(&'t mut dyn WriteTx) -> BoxFuture<'t, Result<T, StoreError>> + Send + 'static
{
}

impl<T, F> Job<T> for F where
    F: for<'t> FnOnce(&'t mut dyn WriteTx) -> BoxFuture<'t, Result<T, StoreError>> + Send + 'static
{
}

/// Runs a job in a transaction of its own on a pooled connection (PostgreSQL) and returns its
/// result once committed. A job that fails changes nothing.
pub(crate) async fn run_pooled<T: Send + 'static>(
    pool: &AnyPool,
    job: impl Job<T>,
) -> Result<T, StoreError> {
    let _queued = QueuedWrite::new();
    let started = std::time::Instant::now();
    let mut tx = PoolTx {
        tx: pool.begin().await?,
    };
    let value = job(&mut tx).await?;
    tx.tx.commit().await?;
    metrics::histogram!("db_commit_duration_seconds").record(started.elapsed().as_secs_f64());
    Ok(value)
}

impl SqliteWriter {
    /// Runs a job in a savepoint of the writer thread's group commit and returns its result
    /// once committed. A job that fails changes nothing.
    pub(crate) async fn run<T: Send + 'static>(&self, job: impl Job<T>) -> Result<T, StoreError> {
        let _queued = QueuedWrite::new();
        let (answer, answered) = oneshot::channel();
        let slot = Arc::new(Mutex::new(None::<Result<T, StoreError>>));
        let filled = slot.clone();
        let run: RunJob = Box::new(move |tx: &mut SqliteTx<'_>| {
            let result = futures::executor::block_on(job(tx));
            let succeeded = result.is_ok();
            *lock(&filled) = Some(result);
            succeeded
        });
        let deliver: Delivery = Box::new(move |committed: Result<(), String>| {
            let result = match (committed, lock(&slot).take()) {
                (Ok(()), Some(result)) => result,
                (Err(_), Some(Err(error))) => Err(error),
                (Err(reason), _) => Err(StoreError::Commit(reason)),
                (Ok(()), None) => Err(StoreError::WriterStopped),
            };
            let _ = answer.send(result);
        });
        self.0
            .send(QueuedJob::Run { run, deliver })
            .map_err(|_| StoreError::WriterStopped)?;
        answered.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Stops the writer thread after the jobs queued so far (SQLite checkpoints its WAL as
    /// the connection closes).
    pub(crate) async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.0.send(QueuedJob::Close(done)).is_ok() {
            let _ = closed.await;
        }
    }
}

struct PoolTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    args: Vec<Arg>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for arg in args {
        query = match arg {
            Arg::Int(value) => query.bind(value),
            Arg::Text(value) => query.bind(value),
        };
    }
    query
}

fn row_from_any(row: &sqlx::any::AnyRow) -> Row {
    Row(row
        .columns()
        .iter()
        .map(|column| {
            let at = column.ordinal();
            if let Ok(value) = row.try_get::<Option<i64>, _>(at) {
                value.map_or(Cell::Null, Cell::Int)
            } else if let Ok(value) = row.try_get::<Option<String>, _>(at) {
                value.map_or(Cell::Null, Cell::Text)
            } else if let Ok(value) = row.try_get::<Option<f64>, _>(at) {
                value.map_or(Cell::Null, Cell::Real)
            } else if let Ok(value) = row.try_get::<Option<bool>, _>(at) {
                value.map_or(Cell::Null, |b| Cell::Int(i64::from(b)))
            } else {
                Cell::Null
            }
        })
        .collect())
}

#[async_trait]
impl WriteTx for PoolTx {
    async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64, StoreError> {
        let done = bind_all(sqlx::query(sql), args)
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected())
    }

    async fn fetch_all(&mut self, sql: &str, args: Vec<Arg>) -> Result<Vec<Row>, StoreError> {
        let rows = bind_all(sqlx::query(sql), args)
            .fetch_all(&mut *self.tx)
            .await?;
        Ok(rows.iter().map(row_from_any).collect())
    }

    fn backend(&self) -> Backend {
        Backend::Postgres
    }
}

// ---------------------------------------------------------------------------------------------
// The SQLite writer thread

/// Runs a job (its result type erased: the result waits in a slot); true when it succeeded.
type RunJob = Box<dyn FnOnce(&mut SqliteTx<'_>) -> bool + Send>;
/// Answers the job's caller once the group's transaction ended (`Err`: why it did not commit).
type Delivery = Box<dyn FnOnce(Result<(), String>) + Send>;

/// What the writer thread is asked to do.
pub(crate) enum QueuedJob {
    Run { run: RunJob, deliver: Delivery },
    Close(oneshot::Sender<()>),
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Jobs committed together at most.
const GROUP_LIMIT: usize = 256;

pub(crate) struct SqliteTx<'c> {
    conn: &'c mut rusqlite::Connection,
}

/// Binds `args` to a statement written with `$N` placeholders. SQLite reads `$1` as a
/// parameter *named* "$1" (numbered by first appearance), so each parameter's name says which
/// argument it takes: read from the prepared statement, no name is formatted per call.
fn bind(statement: &mut rusqlite::Statement<'_>, args: &[Arg]) -> Result<(), StoreError> {
    for index in 1..=statement.parameter_count() {
        let number = statement
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|digits| digits.parse::<usize>().ok());
        let Some(arg) = number
            .and_then(|n| n.checked_sub(1))
            .and_then(|n| args.get(n))
        else {
            return Err(StoreError::Invalid(format!(
                "parameter {} of the statement has no argument (placeholders are $1..${})",
                statement.parameter_name(index).unwrap_or("?"),
                args.len()
            )));
        };
        match arg {
            Arg::Int(value) => statement.raw_bind_parameter(index, value)?,
            Arg::Text(value) => statement.raw_bind_parameter(index, value.as_deref())?,
        }
    }
    Ok(())
}

impl SqliteTx<'_> {
    fn run_statement(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64, StoreError> {
        let mut statement = self.conn.prepare_cached(sql)?;
        bind(&mut statement, &args)?;
        Ok(statement.raw_execute()? as u64)
    }

    fn run_query(&mut self, sql: &str, args: Vec<Arg>) -> Result<Vec<Row>, StoreError> {
        use rusqlite::types::ValueRef;
        let mut statement = self.conn.prepare_cached(sql)?;
        let width = statement.column_count();
        bind(&mut statement, &args)?;
        let mut rows = statement.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut cells = Vec::with_capacity(width);
            for column in 0..width {
                cells.push(match row.get_ref(column)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(value) => Cell::Int(value),
                    ValueRef::Real(value) => Cell::Real(value),
                    ValueRef::Text(text) => Cell::Text(String::from_utf8_lossy(text).into_owned()),
                    ValueRef::Blob(bytes) => {
                        Cell::Text(String::from_utf8_lossy(bytes).into_owned())
                    }
                });
            }
            out.push(Row(cells));
        }
        Ok(out)
    }
}

#[async_trait]
impl WriteTx for SqliteTx<'_> {
    async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64, StoreError> {
        self.run_statement(sql, args)
    }

    async fn fetch_all(&mut self, sql: &str, args: Vec<Arg>) -> Result<Vec<Row>, StoreError> {
        self.run_query(sql, args)
    }

    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn insert_returning_id(&mut self, sql: &str, args: Vec<Arg>) -> Result<i64, StoreError> {
        let Some(insert) = sql.trim_end().strip_suffix("RETURNING id") else {
            return Err(StoreError::Invalid(format!(
                "not an INSERT … RETURNING id: {sql}"
            )));
        };
        self.run_statement(insert, args)?;
        Ok(self.conn.last_insert_rowid())
    }
}

/// How often the WAL is copied back into the database file (off the writer's path).
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// The WAL size past which the writer empties it between two groups (a busy server's readers
/// may never leave SQLite a moment to start the WAL over by itself).
const WAL_TRUNCATE_AT: u64 = 32 << 20;
/// The size a WAL file is cut back to when SQLite starts it over (`journal_size_limit`).
const WAL_SIZE_LIMIT: u64 = 64 << 20;
/// Groups committed between two looks at the WAL's size.
const GROUPS_BETWEEN_WAL_CHECKS: u32 = 32;

/// Opens the writing connection and starts the writer thread, and beside it the thread that
/// checkpoints the WAL: left to SQLite, the checkpoint would run inside a commit every 1,000
/// pages and hold up the writes of the whole group behind it.
pub(crate) fn start_sqlite_writer(path: &Path) -> Result<SqliteWriter, StoreError> {
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
         PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0; \
         PRAGMA journal_size_limit = {WAL_SIZE_LIMIT};"
    ))?;
    conn.set_prepared_statement_cache_capacity(128);
    let checkpointer = rusqlite::Connection::open(path)?;
    let wal = wal_path(path);
    let (running, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || checkpoint_loop(checkpointer, stopped))
        .map_err(|e| StoreError::Invalid(format!("cannot start the WAL checkpoints: {e}")))?;
    let (queue, jobs) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || {
            writer_loop(conn, jobs, &wal);
            drop(running);
        })
        .map_err(|e| StoreError::Invalid(format!("cannot start the database writer: {e}")))?;
    Ok(SqliteWriter(queue))
}

/// The WAL file of a database file.
fn wal_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    name.into()
}

/// Copies the WAL into the database file every [`CHECKPOINT_EVERY`] until the writer stops.
/// `PASSIVE` never waits for a lock: writers and readers carry on meanwhile. When a pass
/// copied everything, the WAL is emptied (`TRUNCATE`) if that can be done without waiting —
/// at once on an idle server, so an idle server's WAL is empty.
fn checkpoint_loop(conn: rusqlite::Connection, writer_stopped: std::sync::mpsc::Receiver<()>) {
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
        writer_stopped.recv_timeout(CHECKPOINT_EVERY)
    {
        // (busy, frames in the WAL, frames copied)
        let passive = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        });
        match passive {
            Ok((0, frames, copied)) if frames > 0 && copied == frames => {
                // Fails at once (SQLITE_BUSY, no busy timeout here) while anyone writes or
                // reads the WAL: then the next pass tries again.
                let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "a WAL checkpoint failed; the next one retries"),
        }
    }
}

/// Empties the WAL from the writer, between two groups, once it grew past
/// [`WAL_TRUNCATE_AT`]: it waits (the writer's busy timeout) for readers of old snapshots to
/// finish, so the WAL is bounded however busy the server is.
fn bound_wal(conn: &rusqlite::Connection, wal: &Path) {
    let size = std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0);
    if size < WAL_TRUNCATE_AT {
        return;
    }
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
        row.get::<_, i64>(0)
    }) {
        Ok(0) => tracing::debug!(size, "emptied the WAL"),
        Ok(_) => tracing::debug!(size, "the WAL could not be emptied yet (readers); retrying"),
        Err(error) => tracing::warn!(%error, "could not empty the WAL; retrying"),
    }
}

fn writer_loop(
    mut conn: rusqlite::Connection,
    mut jobs: mpsc::UnboundedReceiver<QueuedJob>,
    wal: &Path,
) {
    let mut groups = 0u32;
    let mut close = None;
    while close.is_none() {
        let Some(first) = jobs.blocking_recv() else {
            break;
        };
        let mut group = Vec::new();
        match first {
            QueuedJob::Run { run, deliver } => group.push((run, deliver)),
            QueuedJob::Close(done) => close = Some(done),
        }
        while close.is_none() && group.len() < GROUP_LIMIT {
            match jobs.try_recv() {
                Ok(QueuedJob::Run { run, deliver }) => group.push((run, deliver)),
                Ok(QueuedJob::Close(done)) => close = Some(done),
                Err(_) => break,
            }
        }
        if !group.is_empty() {
            let started = std::time::Instant::now();
            commit_group(&mut conn, group);
            metrics::histogram!("db_commit_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            groups += 1;
            if groups.is_multiple_of(GROUPS_BETWEEN_WAL_CHECKS) {
                bound_wal(&conn, wal);
            }
        }
    }
    drop(conn);
    if let Some(done) = close {
        let _ = done.send(());
    }
}

/// Runs one transaction-control statement, prepared once per connection (not parsed again for
/// every job, as `execute_batch` would).
fn control(conn: &rusqlite::Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.raw_execute().map(|_| ())
}

/// Runs a group of jobs in one transaction and commits it, then answers them. The first job
/// of the transaction runs without a savepoint (rolling the transaction back undoes it alone);
/// every later one in a savepoint of its own, so that its failure undoes only its own writes.
fn commit_group(conn: &mut rusqlite::Connection, group: Vec<(RunJob, Delivery)>) {
    let mut pending: Vec<Delivery> = Vec::with_capacity(group.len());
    let mut open = false;
    for (run, deliver) in group {
        let first = !open;
        if first {
            if let Err(error) = control(conn, "BEGIN IMMEDIATE") {
                deliver(Err(error.to_string()));
                continue;
            }
            open = true;
        } else if let Err(error) = control(conn, "SAVEPOINT job") {
            deliver(Err(error.to_string()));
            continue;
        }
        let succeeded =
            std::panic::catch_unwind(AssertUnwindSafe(|| run(&mut SqliteTx { conn: &mut *conn })))
                .unwrap_or(false);
        if !succeeded && (first || conn.is_autocommit()) {
            // The first job failed: its transaction holds nothing else. Other failures (a full
            // disk, say) may roll the whole transaction back: the jobs before this one are
            // lost as well. Tell them; the rest start a new transaction.
            if !conn.is_autocommit() {
                if let Err(error) = control(conn, "ROLLBACK") {
                    tracing::error!(%error, "could not roll a failed write job back");
                }
            }
            open = false;
            for earlier in pending.drain(..) {
                earlier(Err(
                    "the transaction was rolled back by a later failure".into()
                ));
            }
            deliver(Err("the transaction was rolled back".into()));
            continue;
        }
        let ended = match (first, succeeded) {
            (true, _) => Ok(()),
            (false, true) => control(conn, "RELEASE job"),
            (false, false) => {
                control(conn, "ROLLBACK TO job").and_then(|()| control(conn, "RELEASE job"))
            }
        };
        if let Err(error) = ended {
            tracing::error!(%error, "could not end a write job's savepoint");
        }
        pending.push(deliver);
    }
    if !open {
        return;
    }
    let committed = control(conn, "COMMIT").map_err(|e| e.to_string());
    if committed.is_err() {
        let _ = control(conn, "ROLLBACK");
    }
    for deliver in pending {
        deliver(committed.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer on a database file of its own (kept while the directory lives).
    fn scratch_writer() -> (tempfile::TempDir, SqliteWriter) {
        let dir = tempfile::tempdir().expect("temp dir");
        let writer = start_sqlite_writer(&dir.path().join("scratch.db")).expect("writer");
        (dir, writer)
    }

    async fn count(writer: &SqliteWriter) -> i64 {
        writer
            .run(|tx| {
                Box::pin(async move {
                    tx.fetch_optional("SELECT COUNT(*) FROM t", args![])
                        .await?
                        .map_or(Ok(0), |row| row.int(0))
                })
            })
            .await
            .expect("count")
    }

    #[tokio::test]
    async fn grouped_jobs_commit_alone_fail_alone() {
        let (_dir, writer) = scratch_writer();
        writer
            .run(|tx| {
                Box::pin(async move {
                    tx.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", args![])
                        .await
                })
            })
            .await
            .expect("create");
        // Forty jobs at once (they share commits); every fifth inserts, then hits a duplicate
        // key and fails: its first insert must not stay behind. One panics.
        let jobs = (0..40i64).map(|n| {
            let writer = writer.clone();
            async move {
                writer
                    .run(move |tx| {
                        Box::pin(async move {
                            tx.execute("INSERT INTO t (id, v) VALUES ($1, $2)", args![n, "x"])
                                .await?;
                            if n == 7 {
                                panic!("a job that panics");
                            }
                            if n % 5 == 0 {
                                tx.execute("INSERT INTO t (id, v) VALUES ($1, 'again')", args![n])
                                    .await?;
                            }
                            Ok(n)
                        })
                    })
                    .await
            }
        });
        let results = futures::future::join_all(jobs).await;
        let failed: Vec<usize> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_err())
            .map(|(n, _)| n)
            .collect();
        assert_eq!(failed, [0, 5, 7, 10, 15, 20, 25, 30, 35]);
        assert!(results[1].as_ref().is_ok_and(|n| *n == 1));
        assert_eq!(count(&writer).await, 31, "the failed jobs left nothing");
        writer.close().await;
    }

    #[tokio::test]
    async fn placeholders_bind_by_number_in_any_order() {
        let (_dir, writer) = scratch_writer();
        let row = writer
            .run(|tx| {
                Box::pin(async move {
                    tx.fetch_optional("SELECT $2 || '-' || $1 || '-' || $2", args!["a", "b"])
                        .await
                })
            })
            .await
            .expect("query");
        assert_eq!(
            row.map(|r| r.text(0).unwrap_or_default()),
            Some("b-a-b".into())
        );
        writer.close().await;
    }

    #[tokio::test]
    async fn inserts_return_the_ids_sqlite_assigned() {
        let (_dir, writer) = scratch_writer();
        let ids = writer
            .run(|tx| {
                Box::pin(async move {
                    tx.execute(
                        "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)",
                        args![],
                    )
                    .await?;
                    let mut ids = Vec::new();
                    for v in ["a", "b", "c"] {
                        ids.push(
                            tx.insert_returning_id(
                                "INSERT INTO t (v) VALUES ($1) RETURNING id",
                                args![v],
                            )
                            .await?,
                        );
                    }
                    let last = tx
                        .fetch_optional("SELECT id FROM t WHERE v = 'c'", args![])
                        .await?
                        .map_or(Ok(0), |row| row.int(0))?;
                    Ok((ids, last))
                })
            })
            .await
            .expect("inserts");
        assert_eq!(ids, (vec![1, 2, 3], 3));
        let refused = writer
            .run(|tx| {
                Box::pin(async move {
                    tx.insert_returning_id("INSERT INTO t (v) VALUES ('d')", args![])
                        .await
                })
            })
            .await;
        assert!(
            matches!(refused, Err(StoreError::Invalid(ref m)) if m.contains("RETURNING id")),
            "{refused:?}"
        );
        writer.close().await;
    }

    #[tokio::test]
    async fn a_placeholder_without_an_argument_is_an_error_not_a_null() {
        let (_dir, writer) = scratch_writer();
        let result = writer
            .run(|tx| {
                Box::pin(async move { tx.fetch_optional("SELECT $1, $2", args!["only one"]).await })
            })
            .await;
        assert!(
            matches!(result, Err(StoreError::Invalid(ref m)) if m.contains("$2")),
            "{result:?}"
        );
        writer.close().await;
    }

    /// A busy server's WAL stays bounded: thousands of turn-sized writes while another
    /// connection keeps reading never grow it past the size at which the writer empties it
    /// (plus what a few groups add), and an idle server's WAL is emptied.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_under_load_and_empties_when_idle() {
        let (dir, writer) = scratch_writer();
        let path = dir.path().join("scratch.db");
        writer
            .run(|tx| {
                Box::pin(async move {
                    tx.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", args![])
                        .await
                })
            })
            .await
            .expect("create");
        // A reader that never stops: each of its reads holds a snapshot of the WAL.
        let reading = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let reader = {
            let (reading, path) = (reading.clone(), path.clone());
            std::thread::spawn(move || {
                let conn = rusqlite::Connection::open(&path).expect("reader");
                while reading.load(std::sync::atomic::Ordering::Relaxed) {
                    let _: i64 = conn
                        .query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))
                        .unwrap_or(0);
                }
            })
        };
        let wal = wal_path(&path);
        let page = "x".repeat(24_000);
        let mut largest = 0;
        for n in 0..3_000i64 {
            let value = page.clone();
            writer
                .run(move |tx| {
                    Box::pin(async move {
                        tx.execute("INSERT INTO t (id, v) VALUES ($1, $2)", args![n, value])
                            .await
                    })
                })
                .await
                .expect("insert");
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        }
        reading.store(false, std::sync::atomic::Ordering::Relaxed);
        reader.join().expect("reader");
        // 3,000 writes of ~25 KB: 75 MB through the WAL.
        assert!(
            largest <= WAL_TRUNCATE_AT + (4 << 20),
            "the WAL reached {largest} bytes"
        );
        let idle = tokio::time::Instant::now();
        while std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) > 0 {
            assert!(
                idle.elapsed() < std::time::Duration::from_secs(10),
                "an idle WAL is not emptied"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(count(&writer).await, 3_000);
    }
}
