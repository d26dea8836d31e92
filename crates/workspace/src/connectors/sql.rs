//! `postgres` and `sqlite` connections (see `docs/connection-postgres.md`,
//! `docs/connection-sqlite.md` and `docs/write-modes.md`).
//!
//! **Reading.** A table (`SELECT * FROM "table"`) or a query (`SELECT …` / `WITH …`, run as a
//! subquery so only one statement can run). Rows are streamed by a task that owns the
//! connection and hands over batches of [`BATCH_SIZE`] through a small channel, so a large
//! table never sits in memory. PostgreSQL reads run in a `READ ONLY` transaction and SQLite
//! files are opened read-only. Values:
//! - PostgreSQL rows are converted by the server with `row_to_json`: integers, floats and
//!   `numeric` become JSON numbers (`NaN`/`Infinity` become text), booleans stay booleans,
//!   dates and timestamps become ISO 8601 text (`timestamptz` with its offset, in UTC, i.e.
//!   RFC 3339), `bytea` becomes base64 text, and `json`/`jsonb`, arrays and composite values are
//!   kept as compact JSON text (not flattened). Very large `numeric` values are read as
//!   floating point.
//! - SQLite values keep their storage class (integer, real, text; blobs as base64); integers in
//!   a column declared `BOOLEAN` are read back as booleans.
//!
//! **Writing.** One transaction per run (SQLite: `BEGIN IMMEDIATE`). A missing table is created
//! from the first batch: a column whose values are all integers is `BIGINT` (SQLite
//! `INTEGER`), integers and floats `DOUBLE PRECISION` (`REAL`), all booleans `BOOLEAN` (SQLite
//! stores 0/1 in a `BOOLEAN` column, which reads back as booleans), anything else — text,
//! mixed kinds, columns that are null in the whole first batch — `TEXT`. For `upsert` the table
//! gets a `UNIQUE` constraint on the key columns.
//!
//! Columns that appear in a later batch are added (`ALTER TABLE … ADD COLUMN`, type inferred
//! from that batch) only to a table this run created. A table that already existed is never
//! altered, as the docs promise: a record with a column the table lacks fails the run with an
//! error naming the columns (use `map=`). Likewise `upsert` into an existing table without a
//! primary key or unique index on exactly the key columns fails before anything is written,
//! with the `CREATE UNIQUE INDEX` statement that would fix it.
//!
//! PostgreSQL data goes in with `COPY … FROM STDIN (FORMAT csv)`, the server parsing every
//! value into the column's type (so a wrong value fails the run and nothing is kept);
//! `upsert` copies into a temporary staging table and runs
//! `INSERT … SELECT … ON CONFLICT (key) DO UPDATE`. SQLite uses multi-row `INSERT`s with bound
//! parameters, at most 32,766 per statement. Within a batch, several records with the same
//! key are reduced to the last one before an upsert.
//!
//! **SQLite files** written by a flow are switched to WAL journaling (when no other connection
//! is reading at that moment), so a flow from one table to another of the same file does not
//! block itself; the writer also gets a 64 MiB page cache.
//!
//! **Names.** Table names may contain letters, digits, `_`, `-` and `.`; in PostgreSQL
//! `schema.table` names a table in a schema, in SQLite the dot is part of the table name. Every
//! identifier is double-quoted, so column names from the data (`customer.id`, `First Name`)
//! are kept as they are; PostgreSQL column names longer than 63 bytes are refused (the server
//! would truncate them).

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgDatabaseError};
use sqlx::{Column, Connection, Executor, Statement, TypeInfo};
use tokio::sync::mpsc;

use super::spec::Connection as Spec;
use super::sqlite::{self, Access, SqliteFile, SqliteHandle};
use super::{
    ConnectionSpec, ConnectorContext, ConnectorError, Destination, DestinationSpec, Record,
    RunMarker, Source, SourceSpec, WriteMode, BATCH_SIZE, MARKER_TABLE,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// SQLite's default limit on bound parameters per statement.
const SQLITE_MAX_PARAMS: usize = 32_766;
/// PostgreSQL's limit on identifier length, in bytes.
const PG_MAX_IDENTIFIER: usize = 63;
const STAGING_TABLE: &str = "pg_temp.\"integrator_upsert_stage\"";

// ---------------------------------------------------------------------------------------------
// Names and errors

/// Double-quotes an identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Postgres,
    Sqlite,
}

/// Checks a table name and returns it quoted (`schema.table` → `"schema"."table"` in
/// PostgreSQL).
fn table_sql(engine: Engine, name: &str) -> Result<String, ConnectorError> {
    let name = name.trim();
    let refuse = |why: &str| {
        ConnectorError::Config(format!(
            "`{name}` is not a valid table name: {why} (use letters, digits, `_`, `-` and `.`)"
        ))
    };
    if name.is_empty() {
        return Err(refuse("it is empty"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(refuse(&format!("it contains {c:?}")));
    }
    match engine {
        Engine::Postgres => {
            let parts: Vec<&str> = name.split('.').collect();
            if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
                return Err(refuse("use `table` or `schema.table`"));
            }
            if parts.iter().any(|p| p.len() > PG_MAX_IDENTIFIER) {
                return Err(refuse("PostgreSQL names are at most 63 bytes"));
            }
            Ok(parts.iter().map(|p| quote(p)).collect::<Vec<_>>().join("."))
        }
        Engine::Sqlite => {
            if name.starts_with("sqlite_") {
                return Err(refuse("names starting with sqlite_ are reserved"));
            }
            Ok(quote(name))
        }
    }
}

fn check_column(engine: Engine, name: &str) -> Result<(), ConnectorError> {
    if name.is_empty() {
        return Err(ConnectorError::Data(
            "a record has a field with an empty name; use map= to name it".into(),
        ));
    }
    if name.contains('\0') {
        return Err(ConnectorError::Data(format!(
            "the field name {name:?} contains a NUL character"
        )));
    }
    if engine == Engine::Postgres && name.len() > PG_MAX_IDENTIFIER {
        return Err(ConnectorError::Data(format!(
            "the column name `{name}` is longer than PostgreSQL's 63 bytes; rename it with map="
        )));
    }
    Ok(())
}

/// The database's own message, with PostgreSQL's detail, hint and context.
fn db_error(context: &str, error: sqlx::Error) -> ConnectorError {
    match &error {
        sqlx::Error::Database(db) => {
            let mut text = format!("{context}: {}", db.message());
            if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
                if let Some(detail) = pg.detail() {
                    text.push_str(&format!(" ({detail})"));
                }
                if let Some(hint) = pg.hint() {
                    text.push_str(&format!("; hint: {hint}"));
                }
                if let Some(place) = pg.r#where() {
                    let place = place.lines().next().unwrap_or(place);
                    text.push_str(&format!(" [{place}]"));
                }
            }
            ConnectorError::Data(text)
        }
        sqlx::Error::Io(io) => ConnectorError::Remote(format!("{context}: {io}")),
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            ConnectorError::Remote(format!("{context}: the connection is not available"))
        }
        other => ConnectorError::Remote(format!("{context}: {other}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Connecting

struct PgTarget {
    options: PgConnectOptions,
    /// `user@host:port/db`, no password.
    shown: String,
}

fn pg_target(conn: &ConnectionSpec) -> Result<PgTarget, ConnectorError> {
    let Spec::Postgres(spec) = Spec::parse(conn)? else {
        return Err(ConnectorError::Config(format!(
            "connection {} is not a postgres connection",
            conn.name
        )));
    };
    let url = spec.url.expose();
    let mut options = PgConnectOptions::from_str(url).map_err(|_| {
        ConnectorError::Config(format!(
            "connection {}: url is not a valid PostgreSQL URL (postgres://USER@HOST:PORT/DATABASE[?sslmode=require])",
            conn.name
        ))
    })?;
    if let Some(password) = &spec.password {
        options = options.password(password.expose());
    } else if !url_has_password(url) {
        // Never a password from the server's own ~/.pgpass: the tenant gives its own.
        options = options.password("");
    }
    options = options.application_name("integrator-agent");
    let database = options
        .get_database()
        .unwrap_or(options.get_username())
        .to_string();
    let shown = format!(
        "{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        database
    );
    Ok(PgTarget { options, shown })
}

/// Whether a `postgres://` URL carries a password in its user info.
fn url_has_password(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| u.password().is_some())
}

/// Connects to the address the egress policy checked: the host is resolved and every address
/// checked first, then the connection goes to the first of them (with `sslmode=verify-full`
/// the name is kept, for the certificate check; the addresses were checked just before).
async fn pg_connect(
    target: &PgTarget,
    ctx: &ConnectorContext,
) -> Result<PgConnection, ConnectorError> {
    let context = || format!("cannot connect to PostgreSQL at {}", target.shown);
    if let Some(socket) = target.options.get_socket() {
        return Err(ConnectorError::Config(format!(
            "{}: Unix sockets ({}) cannot be reached from a workspace; give a host name in the URL",
            context(),
            socket.display()
        )));
    }
    let host = target.options.get_host().to_string();
    let addrs = ctx
        .egress
        .resolve(&host, target.options.get_port())
        .await
        .map_err(|e| ConnectorError::Remote(format!("{}: {e}", context())))?;
    let mut options = target.options.clone();
    if !matches!(
        options.get_ssl_mode(),
        sqlx::postgres::PgSslMode::VerifyFull
    ) {
        if let Some(first) = addrs.first() {
            options = options.host(&first.ip().to_string());
        }
    }
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(error)) => Err(match db_error(&context(), error) {
            ConnectorError::Data(text) => ConnectorError::Remote(text),
            other => other,
        }),
        Err(_) => Err(ConnectorError::Remote(format!(
            "{}: no answer within {}s",
            context(),
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Sources

type BatchResult = Result<Vec<Record>, ConnectorError>;

/// Rows of a table or query, streamed by a task that owns the connection.
pub struct SqlSource {
    receiver: mpsc::Receiver<BatchResult>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SqlSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[async_trait]
impl Source for SqlSource {
    async fn next_batch(&mut self) -> Result<Option<Vec<Record>>, ConnectorError> {
        match self.receiver.recv().await {
            Some(Ok(batch)) => Ok(Some(batch)),
            Some(Err(error)) => Err(error),
            None => Ok(None),
        }
    }
}

/// A read-only query: one `SELECT` or `WITH` statement, trailing semicolons removed.
fn check_query(query: &str) -> Result<String, ConnectorError> {
    let query = query
        .trim()
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace());
    let first_word: String = query
        .trim_start_matches(|c: char| c == '(' || c.is_whitespace())
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_lowercase();
    if first_word != "select" && first_word != "with" {
        return Err(ConnectorError::Config(
            "query= must be a read-only SELECT statement (SELECT … or WITH … SELECT …)".into(),
        ));
    }
    Ok(query.to_string())
}

fn inner_select(engine: Engine, source: &SourceSpec) -> Result<String, ConnectorError> {
    match source {
        SourceSpec::Resource(table) => Ok(format!("SELECT * FROM {}", table_sql(engine, table)?)),
        SourceSpec::Query(query) => check_query(query),
    }
}

/// Opens a PostgreSQL table or query for reading.
pub async fn open_postgres_source(
    conn: &ConnectionSpec,
    source: &SourceSpec,
    ctx: &ConnectorContext,
) -> Result<SqlSource, ConnectorError> {
    let inner = inner_select(Engine::Postgres, source)?;
    let target = pg_target(conn)?;
    let mut pg = pg_connect(&target, ctx).await?;
    (&mut pg)
        .execute("BEGIN READ ONLY")
        .await
        .map_err(|e| db_error("cannot start a read-only transaction", e))?;
    let what = describe_source(source);
    let columns: Vec<(String, String)> = {
        let statement = (&mut pg)
            .prepare(&inner)
            .await
            .map_err(|e| db_error(&format!("cannot read {what}"), e))?;
        statement
            .columns()
            .iter()
            .map(|c| (c.name().to_string(), c.type_info().name().to_string()))
            .collect()
    };
    // Columns whose whole-number values must stay floating point (row_to_json prints 3.0 as 3).
    let float_columns: HashSet<String> = columns
        .iter()
        .filter(|(_, kind)| matches!(kind.as_str(), "FLOAT4" | "FLOAT8" | "NUMERIC"))
        .map(|(name, _)| name.clone())
        .collect();
    let names: HashSet<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    let has_bytea = columns.iter().any(|(_, t)| t == "BYTEA");
    let select = if has_bytea && names.len() == columns.len() {
        let list: Vec<String> = columns
            .iter()
            .map(|(name, kind)| {
                if kind == "BYTEA" {
                    format!(
                        "translate(encode(q.{n}, 'base64'), E'\\n', '') AS {n}",
                        n = quote(name)
                    )
                } else {
                    format!("q.{}", quote(name))
                }
            })
            .collect();
        format!(
            "SELECT row_to_json(r)::text FROM (SELECT {} FROM ({inner}) AS q) AS r",
            list.join(", ")
        )
    } else {
        format!("SELECT row_to_json(q)::text FROM ({inner}) AS q")
    };

    let (sender, receiver) = mpsc::channel::<BatchResult>(2);
    let task = tokio::spawn(pump_postgres(pg, select, what, float_columns, sender));
    Ok(SqlSource { receiver, task })
}

/// Streams the rows of `select` (one JSON text per row) into `sender`, then ends the
/// read-only transaction.
async fn pump_postgres(
    mut pg: PgConnection,
    select: String,
    what: String,
    float_columns: HashSet<String>,
    sender: mpsc::Sender<BatchResult>,
) {
    if let Err(error) = stream_postgres(&mut pg, &select, &what, &float_columns, &sender).await {
        let _ = sender.send(Err(error)).await;
    }
    let _ = (&mut pg).execute("COMMIT").await;
    let _ = pg.close().await;
}

async fn stream_postgres(
    pg: &mut PgConnection,
    select: &str,
    what: &str,
    float_columns: &HashSet<String>,
    sender: &mpsc::Sender<BatchResult>,
) -> Result<(), ConnectorError> {
    let mut rows = sqlx::query_scalar::<_, String>(select).fetch(pg);
    let mut batch = Vec::with_capacity(BATCH_SIZE);
    while let Some(text) = rows
        .try_next()
        .await
        .map_err(|e| db_error(&format!("reading {what} failed"), e))?
    {
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            ConnectorError::Data(format!(
                "reading {what}: a row could not be converted ({e})"
            ))
        })?;
        batch.push(pg_record(value, float_columns));
        if batch.len() >= BATCH_SIZE {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_SIZE));
            if sender.send(Ok(full)).await.is_err() {
                return Ok(());
            }
        }
    }
    if !batch.is_empty() {
        let _ = sender.send(Ok(batch)).await;
    }
    Ok(())
}

fn describe_source(source: &SourceSpec) -> String {
    match source {
        SourceSpec::Resource(table) => format!("table {table}"),
        SourceSpec::Query(_) => "the query".to_string(),
    }
}

/// A `row_to_json` object as a record: nested values (json, arrays, composites) as JSON text,
/// numbers of floating-point and numeric columns as floats.
fn pg_record(value: Value, float_columns: &HashSet<String>) -> Record {
    match value {
        Value::Object(map) => map
            .into_iter()
            .map(|(key, value)| {
                let value = match value {
                    nested @ (Value::Array(_) | Value::Object(_)) => {
                        Value::String(nested.to_string())
                    }
                    Value::Number(n) if !n.is_f64() && float_columns.contains(&key) => n
                        .as_f64()
                        .and_then(serde_json::Number::from_f64)
                        .map(Value::Number)
                        .unwrap_or(Value::Number(n)),
                    scalar => scalar,
                };
                (key, value)
            })
            .collect(),
        other => crate::flatten::flatten(other),
    }
}

/// Opens a SQLite table or query for reading, on a guarded read-only connection.
pub async fn open_sqlite_source(
    conn: &ConnectionSpec,
    source: &SourceSpec,
    ctx: &ConnectorContext,
) -> Result<sqlite::SqliteSource, ConnectorError> {
    let select = inner_select(Engine::Sqlite, source)?;
    let file = SqliteFile::of(conn, ctx)?;
    sqlite::open_source(file, select, describe_source(source)).await
}

// ---------------------------------------------------------------------------------------------
// Destinations

/// Inferred column types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColType {
    Integer,
    Float,
    Boolean,
    Text,
}

impl ColType {
    fn sql(self, engine: Engine) -> &'static str {
        match (self, engine) {
            (ColType::Integer, Engine::Postgres) => "BIGINT",
            (ColType::Integer, Engine::Sqlite) => "INTEGER",
            (ColType::Float, Engine::Postgres) => "DOUBLE PRECISION",
            (ColType::Float, Engine::Sqlite) => "REAL",
            (ColType::Boolean, _) => "BOOLEAN",
            (ColType::Text, _) => "TEXT",
        }
    }
}

/// The type of `column` from its non-null values in `records`.
fn infer_type(records: &[Record], column: &str) -> ColType {
    let mut kind: Option<ColType> = None;
    for value in records.iter().filter_map(|r| r.get(column)) {
        let this = match value {
            Value::Null => continue,
            Value::Bool(_) => ColType::Boolean,
            Value::Number(n) if n.is_i64() => ColType::Integer,
            Value::Number(_) => ColType::Float,
            _ => return ColType::Text,
        };
        kind = Some(match (kind, this) {
            (None, t) => t,
            (Some(a), b) if a == b => a,
            (Some(ColType::Integer), ColType::Float) | (Some(ColType::Float), ColType::Integer) => {
                ColType::Float
            }
            _ => return ColType::Text,
        });
    }
    kind.unwrap_or(ColType::Text)
}

/// The columns of a batch, in first-seen order.
fn batch_columns(records: &[Record]) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut columns: Vec<String> = Vec::new();
    for record in records {
        if in_column_order(record, &columns) {
            continue;
        }
        for key in record.keys() {
            if seen.insert(key.as_str()) {
                columns.push(key.clone());
            }
        }
    }
    columns
}

/// Keeps the last record of each key (records with a null or missing key part are all kept).
fn last_per_key<'a>(records: &'a [Record], key: &[String]) -> Vec<&'a Record> {
    let mut slots: Vec<Option<&Record>> = Vec::with_capacity(records.len());
    let mut index: HashMap<String, usize> = HashMap::new();
    for record in records {
        let parts: Vec<&Value> = key
            .iter()
            .map(|k| record.get(k).unwrap_or(&Value::Null))
            .collect();
        if parts.iter().any(|v| v.is_null()) {
            slots.push(Some(record));
            continue;
        }
        let id = serde_json::to_string(&parts).unwrap_or_default();
        if let Some(previous) = index.insert(id, slots.len()) {
            slots[previous] = None;
        }
        slots.push(Some(record));
    }
    slots.into_iter().flatten().collect()
}

enum Conn {
    Pg(Box<PgConnection>),
    Sqlite(SqliteHandle),
}

/// Writes into a table inside one transaction.
pub struct SqlDestination {
    conn: Option<Conn>,
    engine: Engine,
    table: String,
    table_shown: String,
    mode: WriteMode,
    key: Vec<String>,
    /// The table's columns; `None` while the table does not exist.
    columns: Option<Vec<String>>,
    /// Whether this run created the table (then new columns may be added).
    created: bool,
    /// PostgreSQL upsert: the staging table exists with this many columns.
    staging_columns: Option<usize>,
    /// PostgreSQL append and replace: the `COPY` in progress (it holds the connection).
    copy: Option<CopyStream>,
    /// The run's marker, inserted in the same transaction as the data.
    marker: Option<RunMarker>,
}

/// A `COPY … FROM STDIN` kept open across batches (appends and replaces into PostgreSQL): a
/// task owns the connection and sends on what `write_batch` encodes, so encoding one batch
/// overlaps with sending the one before, and a run costs one `COPY` (per column set) instead
/// of a round trip per batch.
struct CopyStream {
    columns: Vec<String>,
    chunks: mpsc::Sender<Vec<u8>>,
    task: tokio::task::JoinHandle<(Box<PgConnection>, Result<u64, sqlx::Error>)>,
}

impl CopyStream {
    fn start(mut pg: Box<PgConnection>, statement: String, columns: Vec<String>) -> CopyStream {
        let (chunks, mut incoming) = mpsc::channel::<Vec<u8>>(2);
        let task = tokio::spawn(async move {
            let result = async {
                let mut copy = pg.copy_in_raw(&statement).await?;
                while let Some(chunk) = incoming.recv().await {
                    if let Err(error) = copy.send(chunk).await {
                        let _ = copy.abort("sending the rows failed").await;
                        return Err(error);
                    }
                }
                copy.finish().await
            }
            .await;
            (pg, result)
        });
        CopyStream {
            columns,
            chunks,
            task,
        }
    }

    /// Ends the `COPY` (everything sent so far is in) and gives the connection back.
    async fn finish(self) -> (Option<Box<PgConnection>>, Result<u64, sqlx::Error>) {
        drop(self.chunks);
        match self.task.await {
            Ok((pg, result)) => (Some(pg), result),
            Err(error) => (None, Err(sqlx::Error::Protocol(error.to_string()))),
        }
    }
}

/// Opens a PostgreSQL table for writing.
pub async fn open_postgres_destination(
    conn: &ConnectionSpec,
    dest: &DestinationSpec,
    ctx: &ConnectorContext,
) -> Result<SqlDestination, ConnectorError> {
    let table = table_sql(Engine::Postgres, &dest.target)?;
    check_key(Engine::Postgres, dest)?;
    let target = pg_target(conn)?;
    let mut pg = pg_connect(&target, ctx).await?;
    (&mut pg)
        .execute("BEGIN")
        .await
        .map_err(|e| db_error("cannot start a transaction", e))?;
    let mut destination =
        SqlDestination::new(Conn::Pg(Box::new(pg)), Engine::Postgres, table, dest);
    destination.prepare().await?;
    Ok(destination)
}

/// Opens a SQLite table for writing (the file is created when missing).
pub async fn open_sqlite_destination(
    conn: &ConnectionSpec,
    dest: &DestinationSpec,
    ctx: &ConnectorContext,
) -> Result<SqlDestination, ConnectorError> {
    let table = table_sql(Engine::Sqlite, &dest.target)?;
    check_key(Engine::Sqlite, dest)?;
    let file = SqliteFile::of(conn, ctx)?;
    let shown = file.shown.clone();
    let db = SqliteHandle::open(file, Access::WriteTable(dest.target.trim().to_string())).await?;
    db.exec(
        "BEGIN IMMEDIATE",
        &format!("cannot start a transaction on {shown}"),
    )
    .await?;
    let mut destination = SqlDestination::new(Conn::Sqlite(db), Engine::Sqlite, table, dest);
    destination.prepare().await?;
    Ok(destination)
}

fn check_key(engine: Engine, dest: &DestinationSpec) -> Result<(), ConnectorError> {
    if dest.mode == WriteMode::Upsert {
        if dest.key.is_empty() {
            return Err(ConnectorError::Config(
                "mode=upsert needs key= (the column or columns that identify a row)".into(),
            ));
        }
        for key in &dest.key {
            check_column(engine, key).map_err(|e| ConnectorError::Config(e.to_string()))?;
        }
    }
    Ok(())
}

impl SqlDestination {
    fn new(conn: Conn, engine: Engine, table: String, dest: &DestinationSpec) -> SqlDestination {
        SqlDestination {
            conn: Some(conn),
            engine,
            table,
            table_shown: dest.target.trim().to_string(),
            mode: dest.mode,
            key: dest.key.iter().map(|k| k.trim().to_string()).collect(),
            columns: None,
            created: false,
            staging_columns: None,
            copy: None,
            marker: None,
        }
    }

    /// Inserts the run's marker (creating the marker table when missing) in the run's
    /// transaction.
    async fn write_marker(&mut self) -> Result<(), ConnectorError> {
        let Some(marker) = self.marker.clone() else {
            return Ok(());
        };
        let table = marker_table_sql(self.engine, &self.table_shown);
        let context = format!("cannot record the run in {table}");
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {table} (run TEXT PRIMARY KEY, flow TEXT NOT NULL, \
             rows_written BIGINT NOT NULL, committed_at TEXT NOT NULL)"
        );
        self.exec(&create, &context).await?;
        let committed_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let insert = format!(
            "INSERT INTO {table} (run, flow, rows_written, committed_at) VALUES ({}, {}, {}, {})",
            literal(&marker.token),
            literal(&marker.flow),
            marker.rows_written,
            literal(&committed_at)
        );
        self.exec(&insert, &context).await
    }

    /// Ends the `COPY` in progress, if any, so the connection is free for other statements.
    async fn end_copy(&mut self) -> Result<(), ConnectorError> {
        let Some(stream) = self.copy.take() else {
            return Ok(());
        };
        let (pg, result) = stream.finish().await;
        self.conn = pg.map(Conn::Pg);
        result
            .map(|_| ())
            .map_err(|e| db_error(&format!("writing to table {} failed", self.table_shown), e))
    }

    fn same_name(&self, a: &str, b: &str) -> bool {
        match self.engine {
            Engine::Postgres => a == b,
            Engine::Sqlite => a.eq_ignore_ascii_case(b),
        }
    }

    fn has_column(&self, columns: &[String], name: &str) -> bool {
        columns.iter().any(|c| self.same_name(c, name))
    }

    /// Runs one statement without results.
    async fn exec(&mut self, sql: &str, context: &str) -> Result<(), ConnectorError> {
        match self.conn.as_mut() {
            Some(Conn::Pg(pg)) => (&mut **pg)
                .execute(sql)
                .await
                .map(|_| ())
                .map_err(|e| db_error(context, e)),
            Some(Conn::Sqlite(db)) => db.exec(sql, context).await,
            None => Err(ConnectorError::Data("the destination is closed".into())),
        }
    }

    /// Reads the table's shape, checks the upsert key, empties the table for replace.
    async fn prepare(&mut self) -> Result<(), ConnectorError> {
        self.columns = self.table_columns().await?;
        let Some(columns) = self.columns.clone() else {
            return Ok(());
        };
        if self.mode == WriteMode::Upsert {
            let missing: Vec<&String> = self
                .key
                .iter()
                .filter(|k| !self.has_column(&columns, k))
                .collect();
            if !missing.is_empty() {
                return Err(ConnectorError::Data(format!(
                    "table {} has no key column {}",
                    self.table_shown,
                    missing
                        .iter()
                        .map(|k| quote(k))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            let unique_sets = self.unique_column_sets().await?;
            let key_matches = unique_sets.iter().any(|set| {
                set.len() == self.key.len()
                    && self
                        .key
                        .iter()
                        .all(|k| set.iter().any(|c| self.same_name(c, k)))
                    && set
                        .iter()
                        .all(|c| self.key.iter().any(|k| self.same_name(c, k)))
            });
            if !key_matches {
                let key_list: Vec<String> = self.key.iter().map(|k| quote(k)).collect();
                return Err(ConnectorError::Data(format!(
                    "upsert into the existing table {} needs a primary key or unique index on exactly ({}); the table is not altered. Create one first, e.g. CREATE UNIQUE INDEX ON {} ({})",
                    self.table_shown,
                    self.key.join(", "),
                    self.table,
                    key_list.join(", ")
                )));
            }
        }
        if self.mode == WriteMode::Replace {
            let sql = format!("DELETE FROM {}", self.table);
            let context = format!("cannot empty table {}", self.table_shown);
            self.exec(&sql, &context).await?;
        }
        Ok(())
    }

    /// The table's column names, or `None` when it does not exist.
    async fn table_columns(&mut self) -> Result<Option<Vec<String>>, ConnectorError> {
        let context = format!("cannot inspect table {}", self.table_shown);
        match self.conn.as_mut() {
            Some(Conn::Pg(pg)) => {
                let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                    .bind(&self.table)
                    .fetch_one(&mut **pg)
                    .await
                    .map_err(|e| db_error(&context, e))?;
                if !exists {
                    return Ok(None);
                }
                let names: Vec<String> = sqlx::query_scalar(
                    "SELECT attname::text FROM pg_attribute \
                     WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped \
                     ORDER BY attnum",
                )
                .bind(&self.table)
                .fetch_all(&mut **pg)
                .await
                .map_err(|e| db_error(&context, e))?;
                Ok(Some(names))
            }
            Some(Conn::Sqlite(db)) => {
                let name = self.table_shown.as_str();
                let found = db
                    .texts(
                        "SELECT name FROM sqlite_master \
                         WHERE type IN ('table', 'view') AND name = ?1 COLLATE NOCASE",
                        name,
                        &context,
                    )
                    .await?;
                if found.is_empty() {
                    return Ok(None);
                }
                let names = db
                    .texts("SELECT name FROM pragma_table_info(?1)", name, &context)
                    .await?;
                Ok(Some(names.into_iter().flatten().collect()))
            }
            None => Err(ConnectorError::Data("the destination is closed".into())),
        }
    }

    /// Column sets of the table's primary key and unique indexes (not partial, no expressions).
    async fn unique_column_sets(&mut self) -> Result<Vec<Vec<String>>, ConnectorError> {
        let context = format!("cannot inspect the indexes of table {}", self.table_shown);
        match self.conn.as_mut() {
            Some(Conn::Pg(pg)) => {
                let sets: Vec<Vec<String>> = sqlx::query_scalar(
                    "SELECT array_agg(a.attname::text) FROM pg_index i \
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                     WHERE i.indrelid = to_regclass($1) AND i.indisunique \
                       AND i.indpred IS NULL AND i.indexprs IS NULL \
                     GROUP BY i.indexrelid",
                )
                .bind(&self.table)
                .fetch_all(&mut **pg)
                .await
                .map_err(|e| db_error(&context, e))?;
                Ok(sets)
            }
            Some(Conn::Sqlite(db)) => {
                let name = self.table_shown.as_str();
                let mut sets = Vec::new();
                let primary: Vec<String> = db
                    .texts(
                        "SELECT name FROM pragma_table_info(?1) WHERE pk > 0",
                        name,
                        &context,
                    )
                    .await?
                    .into_iter()
                    .flatten()
                    .collect();
                if !primary.is_empty() {
                    sets.push(primary);
                }
                let indexes = db
                    .texts(
                        "SELECT name FROM pragma_index_list(?1) WHERE \"unique\" = 1 AND partial = 0",
                        name,
                        &context,
                    )
                    .await?;
                for index in indexes.into_iter().flatten() {
                    let columns = db
                        .texts("SELECT name FROM pragma_index_info(?1)", &index, &context)
                        .await?;
                    if columns.iter().all(Option::is_some) {
                        sets.push(columns.into_iter().flatten().collect());
                    }
                }
                Ok(sets)
            }
            None => Err(ConnectorError::Data("the destination is closed".into())),
        }
    }

    /// Creates the table, or adds new columns to a table this run created, or refuses.
    async fn ensure_columns(
        &mut self,
        records: &[Record],
        columns: &[String],
    ) -> Result<(), ConnectorError> {
        for column in columns {
            check_column(self.engine, column)?;
        }
        match self.columns.clone() {
            None => {
                if self.mode == WriteMode::Upsert {
                    let missing: Vec<&String> = self
                        .key
                        .iter()
                        .filter(|k| !self.has_column(columns, k))
                        .collect();
                    if !missing.is_empty() {
                        return Err(ConnectorError::Data(format!(
                            "the key column {} is not in the records; key= names columns after mapping",
                            missing.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ")
                        )));
                    }
                }
                let mut definitions: Vec<String> = columns
                    .iter()
                    .map(|c| format!("{} {}", quote(c), infer_type(records, c).sql(self.engine)))
                    .collect();
                if self.mode == WriteMode::Upsert {
                    let key: Vec<String> = self.key.iter().map(|k| quote(k)).collect();
                    definitions.push(format!("UNIQUE ({})", key.join(", ")));
                }
                let sql = format!("CREATE TABLE {} ({})", self.table, definitions.join(", "));
                let context = format!("cannot create table {}", self.table_shown);
                self.exec(&sql, &context).await?;
                self.columns = Some(columns.to_vec());
                self.created = true;
            }
            Some(existing) => {
                let new: Vec<&String> = columns
                    .iter()
                    .filter(|c| !self.has_column(&existing, c))
                    .collect();
                if new.is_empty() {
                    return Ok(());
                }
                if !self.created {
                    let list: Vec<String> = new.iter().map(|c| quote(c)).collect();
                    return Err(ConnectorError::Data(format!(
                        "table {} has no column {}; an existing table is not altered. Add the column(s) to the table, or use map= to write only the columns it has",
                        self.table_shown,
                        list.join(", ")
                    )));
                }
                let mut all = existing;
                for column in new {
                    let sql = format!(
                        "ALTER TABLE {} ADD COLUMN {} {}",
                        self.table,
                        quote(column),
                        infer_type(records, column).sql(self.engine)
                    );
                    let context =
                        format!("cannot add column {column} to table {}", self.table_shown);
                    self.exec(&sql, &context).await?;
                    all.push(column.clone());
                }
                self.columns = Some(all);
            }
        }
        Ok(())
    }

    /// The `ON CONFLICT` clause of an upsert.
    fn conflict_clause(&self, columns: &[String], excluded: &str) -> String {
        let key: Vec<String> = self.key.iter().map(|k| quote(k)).collect();
        let updates: Vec<String> = columns
            .iter()
            .filter(|c| !self.key.iter().any(|k| self.same_name(k, c)))
            .map(|c| format!("{q} = {excluded}.{q}", q = quote(c)))
            .collect();
        if updates.is_empty() {
            format!(" ON CONFLICT ({}) DO NOTHING", key.join(", "))
        } else {
            format!(
                " ON CONFLICT ({}) DO UPDATE SET {}",
                key.join(", "),
                updates.join(", ")
            )
        }
    }

    async fn write_postgres(
        &mut self,
        records: &[&Record],
        columns: &[String],
    ) -> Result<(), ConnectorError> {
        let column_list: Vec<String> = columns.iter().map(|c| quote(c)).collect();
        let column_list = column_list.join(", ");
        let data = copy_csv(records, columns);
        let context = format!("writing to table {} failed", self.table_shown);
        let upsert = self.mode == WriteMode::Upsert;
        if upsert {
            let table_width = self.columns.as_ref().map(Vec::len).unwrap_or(0);
            let sql = match self.staging_columns {
                Some(width) if width == table_width => format!("TRUNCATE {STAGING_TABLE}"),
                Some(_) => format!(
                    "DROP TABLE {STAGING_TABLE}; CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP",
                    STAGING_TABLE.trim_start_matches("pg_temp."),
                    self.table
                ),
                None => format!(
                    "CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP",
                    STAGING_TABLE.trim_start_matches("pg_temp."),
                    self.table
                ),
            };
            self.exec(&sql, &context).await?;
            self.staging_columns = Some(table_width);
        }
        if !upsert {
            if self.copy.is_none() {
                let Some(Conn::Pg(pg)) = self.conn.take() else {
                    return Err(ConnectorError::Data("the destination is closed".into()));
                };
                let statement = format!(
                    "COPY {} ({column_list}) FROM STDIN WITH (FORMAT csv)",
                    self.table
                );
                self.copy = Some(CopyStream::start(pg, statement, columns.to_vec()));
            }
            let sent = match &self.copy {
                Some(stream) => stream.chunks.send(data).await.is_ok(),
                None => false,
            };
            if !sent {
                // The COPY ended early: its error says why.
                self.end_copy().await?;
                return Err(ConnectorError::Data(format!(
                    "writing to table {} stopped",
                    self.table_shown
                )));
            }
            return Ok(());
        }
        let statement =
            format!("COPY {STAGING_TABLE} ({column_list}) FROM STDIN WITH (FORMAT csv)");
        let Some(Conn::Pg(pg)) = self.conn.as_mut() else {
            return Err(ConnectorError::Data("the destination is closed".into()));
        };
        let mut copy = pg
            .copy_in_raw(&statement)
            .await
            .map_err(|e| db_error(&context, e))?;
        if let Err(error) = copy.send(data).await {
            let _ = copy.abort("send failed").await;
            return Err(db_error(&context, error));
        }
        copy.finish().await.map_err(|e| db_error(&context, e))?;
        if upsert {
            let sql = format!(
                "INSERT INTO {} ({column_list}) SELECT {column_list} FROM {STAGING_TABLE}{}",
                self.table,
                self.conflict_clause(columns, "EXCLUDED")
            );
            self.exec(&sql, &context).await?;
        }
        Ok(())
    }

    async fn write_sqlite(
        &mut self,
        records: &[&Record],
        columns: &[String],
    ) -> Result<(), ConnectorError> {
        if columns.len() > SQLITE_MAX_PARAMS {
            return Err(ConnectorError::Data(format!(
                "records have {} columns; SQLite accepts at most {SQLITE_MAX_PARAMS} per statement",
                columns.len()
            )));
        }
        let rows_per_statement = (SQLITE_MAX_PARAMS / columns.len().max(1)).clamp(1, BATCH_SIZE);
        let column_list: Vec<String> = columns.iter().map(|c| quote(c)).collect();
        let placeholders = format!("({})", vec!["?"; columns.len()].join(", "));
        let conflict = if self.mode == WriteMode::Upsert {
            self.conflict_clause(columns, "excluded")
        } else {
            String::new()
        };
        let context = format!("writing to table {} failed", self.table_shown);
        let Some(Conn::Sqlite(db)) = self.conn.as_mut() else {
            return Err(ConnectorError::Data("the destination is closed".into()));
        };
        let statements = records
            .chunks(rows_per_statement)
            .map(|chunk| {
                let sql = format!(
                    "INSERT INTO {} ({}) VALUES {}{}",
                    self.table,
                    column_list.join(", "),
                    vec![placeholders.as_str(); chunk.len()].join(", "),
                    conflict
                );
                let values = chunk
                    .iter()
                    .flat_map(|record| columns.iter().map(|c| sqlite::bind_value(record.get(c))))
                    .collect();
                (sql, values)
            })
            .collect();
        db.execute_all(statements, &context).await
    }

    async fn finish(&mut self, statement: &str) -> Result<(), ConnectorError> {
        let context = format!("{statement} on table {} failed", self.table_shown);
        match self.conn.take() {
            Some(Conn::Pg(mut pg)) => {
                let result = (&mut *pg).execute(statement).await.map(|_| ());
                let _ = pg.close().await;
                result.map_err(|e| db_error(&context, e))
            }
            Some(Conn::Sqlite(db)) => {
                let result = db.exec(statement, &context).await;
                db.close().await;
                result
            }
            None => Ok(()),
        }
    }
}

/// The marker table of a destination table: in the table's schema (PostgreSQL
/// `schema.table`), otherwise unqualified.
fn marker_table_sql(engine: Engine, target: &str) -> String {
    match (engine, target.trim().split_once('.')) {
        (Engine::Postgres, Some((schema, _))) => {
            format!("{}.{}", quote(schema), quote(MARKER_TABLE))
        }
        _ => quote(MARKER_TABLE),
    }
}

/// A text as an SQL string literal (for values the server made: tokens, names, times).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Whether a PostgreSQL run left its marker: `Some(rows written)` when it committed.
pub async fn find_postgres_marker(
    conn: &ConnectionSpec,
    dest: &DestinationSpec,
    token: &str,
    ctx: &ConnectorContext,
) -> Result<Option<i64>, ConnectorError> {
    let target = pg_target(conn)?;
    let mut pg = pg_connect(&target, ctx).await?;
    let table = marker_table_sql(Engine::Postgres, &dest.target);
    let context = format!("cannot read {table}");
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&table)
        .fetch_one(&mut pg)
        .await
        .map_err(|e| db_error(&context, e))?;
    let rows = if exists {
        sqlx::query_scalar::<_, i64>(&format!("SELECT rows_written FROM {table} WHERE run = $1"))
            .bind(token)
            .fetch_optional(&mut pg)
            .await
            .map_err(|e| db_error(&context, e))?
    } else {
        None
    };
    let _ = pg.close().await;
    Ok(rows)
}

/// Whether an SQLite run left its marker: `Some(rows written)` when it committed.
pub async fn find_sqlite_marker(
    conn: &ConnectionSpec,
    token: &str,
    ctx: &ConnectorContext,
) -> Result<Option<i64>, ConnectorError> {
    let file = SqliteFile::of(conn, ctx)?;
    if !file.exists() {
        return Ok(None);
    }
    let db = SqliteHandle::open(file, Access::Read).await?;
    let found = db
        .texts(
            "SELECT CAST(rows_written AS TEXT) FROM sqlite_master AS m, \"_integrator_runs\" AS r \
             WHERE m.type = 'table' AND m.name = '_integrator_runs' AND r.run = ?1",
            token,
            "cannot read the run markers",
        )
        .await;
    db.close().await;
    match found {
        Ok(rows) => Ok(rows
            .into_iter()
            .flatten()
            .next()
            .and_then(|r| r.parse().ok())),
        // No marker table: no run of this server committed into this file.
        Err(error) if error.to_string().contains("no such table") => Ok(None),
        Err(error) => Err(error),
    }
}

/// Records as CSV for `COPY … (FORMAT csv)`: null → unquoted empty, text always quoted.
fn copy_csv(records: &[&Record], columns: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() * columns.len() * 12);
    for record in records {
        // Records of one source nearly always list the batch's columns in its order: then
        // the values are taken in turn instead of looked up by name.
        if in_column_order(record, columns) {
            for (i, value) in record.values().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_csv_value(&mut out, Some(value));
            }
        } else {
            for (i, column) in columns.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_csv_value(&mut out, record.get(column));
            }
        }
        out.push(b'\n');
    }
    out
}

/// Whether the record has exactly these columns, in this order.
fn in_column_order(record: &Record, columns: &[String]) -> bool {
    record.len() == columns.len()
        && record
            .keys()
            .zip(columns)
            .all(|(key, column)| key == column)
}

fn push_csv_value(out: &mut Vec<u8>, value: Option<&Value>) {
    use std::io::Write as _;
    match value {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        // Writing into a Vec cannot fail.
        Some(Value::Number(n)) => {
            let _ = write!(out, "{n}");
        }
        Some(Value::String(s)) => push_quoted(out, s),
        Some(other) => push_quoted(out, &other.to_string()),
    }
}

fn push_quoted(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    for byte in text.bytes() {
        if byte == b'"' {
            out.push(b'"');
        }
        out.push(byte);
    }
    out.push(b'"');
}

#[async_trait]
impl Destination for SqlDestination {
    async fn write_batch(&mut self, records: &[Record]) -> Result<u64, ConnectorError> {
        if records.is_empty() {
            return Ok(0);
        }
        let columns = batch_columns(records);
        if columns.is_empty() {
            return Err(ConnectorError::Data(
                "the records have no fields to write".into(),
            ));
        }
        if self
            .copy
            .as_ref()
            .is_some_and(|stream| stream.columns != columns)
        {
            self.end_copy().await?;
        }
        self.ensure_columns(records, &columns).await?;
        let rows: Vec<&Record> = if self.mode == WriteMode::Upsert {
            last_per_key(records, &self.key)
        } else {
            records.iter().collect()
        };
        match self.engine {
            Engine::Postgres => self.write_postgres(&rows, &columns).await?,
            Engine::Sqlite => self.write_sqlite(&rows, &columns).await?,
        }
        Ok(records.len() as u64)
    }

    fn set_marker(&mut self, marker: RunMarker) {
        self.marker = Some(marker);
    }

    async fn commit(mut self: Box<Self>) -> Result<(), ConnectorError> {
        let ended = match self.end_copy().await {
            Ok(()) => self.write_marker().await,
            Err(error) => Err(error),
        };
        if let Err(error) = ended {
            let _ = self.finish("ROLLBACK").await;
            return Err(error);
        }
        self.finish("COMMIT").await
    }

    async fn rollback(mut self: Box<Self>) -> Result<(), ConnectorError> {
        // Whatever the COPY in progress says, the transaction is rolled back.
        let _ = self.end_copy().await;
        self.finish("ROLLBACK").await
    }
}

// ---------------------------------------------------------------------------------------------
// Tests of connections

/// `test connection` for PostgreSQL: connects and asks for the server version.
pub async fn test_postgres(
    conn: &ConnectionSpec,
    ctx: &ConnectorContext,
) -> Result<String, ConnectorError> {
    let target = pg_target(conn)?;
    let mut pg = pg_connect(&target, ctx).await?;
    let version: String = sqlx::query_scalar("SELECT current_setting('server_version')")
        .fetch_one(&mut pg)
        .await
        .map_err(|e| db_error(&format!("PostgreSQL at {}", target.shown), e))?;
    let _ = pg.close().await;
    let version = version.split_whitespace().next().unwrap_or("").to_string();
    Ok(format!(
        "connected to PostgreSQL {version} at {}",
        target.shown
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn records(values: Vec<Value>) -> Vec<Record> {
        values
            .into_iter()
            .filter_map(|v| v.as_object().cloned())
            .collect()
    }

    #[test]
    fn table_names() {
        assert_eq!(table_sql(Engine::Postgres, "orders").unwrap(), "\"orders\"");
        assert_eq!(
            table_sql(Engine::Postgres, "sales.orders").unwrap(),
            "\"sales\".\"orders\""
        );
        assert_eq!(table_sql(Engine::Sqlite, "a.b").unwrap(), "\"a.b\"");
        assert!(table_sql(Engine::Postgres, "a b").is_err());
        assert!(table_sql(Engine::Postgres, "x\"; DROP TABLE y; --").is_err());
        assert!(table_sql(Engine::Postgres, "a.b.c").is_err());
        assert!(table_sql(Engine::Postgres, "").is_err());
        assert_eq!(quote("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn queries() {
        assert_eq!(check_query(" select 1; ").unwrap(), "select 1");
        assert!(check_query("WITH a AS (SELECT 1) SELECT * FROM a").is_ok());
        assert!(check_query("(SELECT 1)").is_ok());
        assert!(check_query("DELETE FROM t").is_err());
        assert!(check_query("selectivity").is_err());
    }

    #[test]
    fn type_inference() {
        let batch = records(vec![
            json!({"i": 1, "f": 1, "b": true, "t": "x", "n": null, "m": 1}),
            json!({"i": 2, "f": 2.5, "b": false, "t": 3, "n": null, "m": true}),
        ]);
        assert_eq!(infer_type(&batch, "i"), ColType::Integer);
        assert_eq!(infer_type(&batch, "f"), ColType::Float);
        assert_eq!(infer_type(&batch, "b"), ColType::Boolean);
        assert_eq!(infer_type(&batch, "t"), ColType::Text);
        assert_eq!(infer_type(&batch, "n"), ColType::Text);
        assert_eq!(infer_type(&batch, "m"), ColType::Text);
        assert_eq!(infer_type(&batch, "absent"), ColType::Text);
    }

    #[test]
    fn dedupe_keeps_the_last() {
        let batch = records(vec![
            json!({"id": 1, "v": "a"}),
            json!({"id": 2, "v": "b"}),
            json!({"id": 1, "v": "c"}),
            json!({"id": null, "v": "d"}),
            json!({"v": "e"}),
        ]);
        let kept = last_per_key(&batch, &["id".to_string()]);
        let values: Vec<&str> = kept.iter().filter_map(|r| r["v"].as_str()).collect();
        assert_eq!(values, ["b", "c", "d", "e"]);
    }

    #[test]
    fn copy_encoding() {
        let batch = records(vec![
            json!({"a": 1, "b": "x\"y", "c": null, "d": true, "e": ""}),
        ]);
        let refs: Vec<&Record> = batch.iter().collect();
        let columns: Vec<String> = ["a", "b", "c", "d", "e", "z"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            String::from_utf8(copy_csv(&refs, &columns)).unwrap(),
            "1,\"x\"\"y\",,true,\"\",\n"
        );
    }
}
