//! `sqlite` connections on a guarded connection (see `docs/connection-sqlite.md` and
//! `docs/security.md`).
//!
//! A tenant's SQL is hostile input, and SQLite can reach far beyond one file from SQL:
//! `ATTACH` opens any file the server can read, `VACUUM INTO` writes one anywhere, `PRAGMA`s
//! disclose paths and change the engine. So every connection opened here is guarded:
//! - opened without URI names, refusing a symbolic link as the file itself
//!   (`SQLITE_OPEN_NOFOLLOW`; links inside the path are refused when the path is resolved),
//!   with attaching disabled (`SQLITE_LIMIT_ATTACHED` 0), defensive mode on and the schema
//!   untrusted (functions with side effects cannot run from views or triggers);
//! - an **authorizer**, consulted by SQLite for every action of every statement it compiles,
//!   denies everything that is not needed: a source may only read (no `ATTACH`/`DETACH`,
//!   `PRAGMA` statements, transactions, writes, schema changes, or pragma tables other than
//!   the harmless column and index listings); a destination may in addition create, alter and
//!   write exactly the flow's table;
//! - a source query must be exactly one read-only statement: anything after its first `;`
//!   other than comments is refused, and the compiled statement must not write.
//!
//! rusqlite runs on blocking threads; async callers reach a connection through
//! [`SqliteHandle`]. A source streams its rows from one blocking task and stops (interrupting
//! the query) when the reader goes away.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::spec::Connection as Spec;
use super::tenant_files::resolve_in_tenant;
use super::{
    ConnectionSpec, ConnectorContext, ConnectorError, Record, Source, BATCH_SIZE, MARKER_TABLE,
};

const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// How many virtual-machine steps a source query runs between checks of its reader.
const PROGRESS_STEPS: i32 = 10_000;

/// Pragma tables a statement may read: column and index listings, nothing that shows paths
/// or changes settings.
const READABLE_PRAGMA_TABLES: &[&str] = &[
    "pragma_table_info",
    "pragma_table_xinfo",
    "pragma_index_list",
    "pragma_index_info",
    "pragma_index_xinfo",
    "pragma_foreign_key_list",
];

/// Functions no statement may call, even where SQLite would refuse them anyway.
const FORBIDDEN_FUNCTIONS: &[&str] = &[
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
    "sqlite_dbpage",
];

/// A tenant's SQLite file, resolved inside the tenant's folder.
pub(crate) struct SqliteFile {
    path: PathBuf,
    /// The `path` parameter as given, for messages.
    pub(crate) shown: String,
}

impl SqliteFile {
    /// Whether the file exists (a file not yet written has no runs in it).
    pub(crate) fn exists(&self) -> bool {
        self.path.is_file()
    }

    pub(crate) fn of(
        conn: &ConnectionSpec,
        ctx: &ConnectorContext,
    ) -> Result<SqliteFile, ConnectorError> {
        let Spec::Sqlite(spec) = Spec::parse(conn)? else {
            return Err(ConnectorError::Config(format!(
                "connection {} is not a sqlite connection",
                conn.name
            )));
        };
        let path = resolve_in_tenant(ctx, &spec.path, &conn.name)?;
        Ok(SqliteFile {
            path,
            shown: spec.path,
        })
    }
}

/// What a guarded connection may do.
#[derive(Debug, Clone)]
pub(crate) enum Access {
    /// Read anything in the file; change nothing.
    Read,
    /// Also create, alter and write this one table (compared without case, as SQLite does).
    WriteTable(String),
}

/// The authorizer's verdict on one action.
fn authorize(access: &Access, context: &AuthContext<'_>) -> Authorization {
    let allowed = match (&context.action, access) {
        (AuthAction::Select | AuthAction::Recursive, _) => true,
        (AuthAction::Read { table_name, .. }, _) => readable(table_name),
        // Table-valued pragma functions (`pragma_table_info('t')`) are authorized as pragmas.
        (AuthAction::Pragma { pragma_name, .. }, _) => {
            readable(&format!("pragma_{}", pragma_name.to_ascii_lowercase()))
        }
        (AuthAction::Function { function_name }, _) => !FORBIDDEN_FUNCTIONS
            .iter()
            .any(|f| f.eq_ignore_ascii_case(function_name)),
        (AuthAction::Transaction { .. } | AuthAction::Savepoint { .. }, Access::WriteTable(_)) => {
            true
        }
        (
            AuthAction::Insert { table_name }
            | AuthAction::Delete { table_name }
            | AuthAction::Update { table_name, .. },
            Access::WriteTable(table),
        ) => writable(table, table_name) || is_schema_table(table_name),
        (AuthAction::CreateTable { table_name }, Access::WriteTable(table)) => {
            writable(table, table_name)
        }
        (AuthAction::CreateIndex { table_name, .. }, Access::WriteTable(table)) => {
            writable(table, table_name)
        }
        (AuthAction::AlterTable { table_name, .. }, Access::WriteTable(table)) => {
            table_name.eq_ignore_ascii_case(table)
        }
        _ => false,
    };
    if allowed {
        Authorization::Allow
    } else {
        Authorization::Deny
    }
}

/// A destination writes its flow's table and the run markers (`_integrator_runs`).
fn writable(flow_table: &str, table: &str) -> bool {
    table.eq_ignore_ascii_case(flow_table) || table.eq_ignore_ascii_case(MARKER_TABLE)
}

fn is_schema_table(name: &str) -> bool {
    ["sqlite_master", "sqlite_schema"]
        .iter()
        .any(|t| t.eq_ignore_ascii_case(name))
}

fn readable(table: &str) -> bool {
    let lower = table.to_ascii_lowercase();
    if lower.starts_with("pragma_") {
        return READABLE_PRAGMA_TABLES.contains(&lower.as_str());
    }
    !matches!(lower.as_str(), "sqlite_dbpage" | "sqlite_stmt" | "dbstat")
}

/// Opens a guarded connection (blocking).
fn open_guarded(file: &SqliteFile, access: &Access) -> Result<Connection, ConnectorError> {
    let write = matches!(access, Access::WriteTable(_));
    if write {
        if let Some(parent) = file.path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                ConnectorError::Data(format!("cannot create the folder of {}: {e}", file.shown))
            })?;
        }
    } else if !file.path.is_file() {
        return Err(ConnectorError::Data(format!(
            "SQLite file {} does not exist (it is created when a flow first writes to it)",
            file.shown
        )));
    }
    // No SQLITE_OPEN_URI: a name is always a file name, never `file:…?vfs=…`.
    let mut flags = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    flags |= if write {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    };
    let context = format!("cannot open SQLite file {}", file.shown);
    let db =
        Connection::open_with_flags(&file.path, flags).map_err(|e| sqlite_error(&context, e))?;
    db.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0);
    for (setting, on) in [
        (rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true),
        (
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER,
            false,
        ),
    ] {
        db.set_db_config(setting, on)
            .map_err(|e| sqlite_error(&context, e))?;
    }
    // Functions with side effects may not run from views or triggers of the file.
    db.pragma_update(None, "trusted_schema", false)
        .and_then(|()| db.busy_timeout(BUSY_TIMEOUT))
        .map_err(|e| sqlite_error(&context, e))?;
    if write {
        // WAL, so a reader of the same file (a flow from one table to another of the same
        // file) never blocks this writer for long, or the reverse. Switching needs a moment
        // without other connections: when another is reading, stay as the file is (no wait).
        // A larger cache delays spilling to the file, which needs the lock readers hold.
        let _ = db.busy_timeout(Duration::ZERO);
        let _ = db.pragma_update(None, "journal_mode", "WAL");
        db.busy_timeout(BUSY_TIMEOUT)
            .and_then(|()| db.pragma_update(None, "cache_size", -65536))
            .map_err(|e| sqlite_error(&format!("cannot set up SQLite file {}", file.shown), e))?;
    }
    // Installed last: the settings above are the server's own statements.
    let access = access.clone();
    db.authorizer(Some(move |context: AuthContext<'_>| {
        authorize(&access, &context)
    }));
    Ok(db)
}

/// SQLite's message, with the reason an authorizer refusal means.
fn sqlite_error(context: &str, error: rusqlite::Error) -> ConnectorError {
    let text = match &error {
        rusqlite::Error::SqliteFailure(failure, message)
            if failure.code == rusqlite::ErrorCode::AuthorizationForStatementDenied =>
        {
            format!(
                "{context}: {} (workspace SQL may only read, and flows only write their own table: ATTACH, PRAGMA, VACUUM and schema changes are refused)",
                message.as_deref().unwrap_or("not authorized")
            )
        }
        rusqlite::Error::SqliteFailure(_, Some(message)) => format!("{context}: {message}"),
        other => format!("{context}: {other}"),
    };
    ConnectorError::Data(text)
}

/// A guarded connection used from async code: each call runs on a blocking thread.
pub(crate) struct SqliteHandle {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteHandle {
    /// Opens a guarded connection.
    pub(crate) async fn open(
        file: SqliteFile,
        access: Access,
    ) -> Result<SqliteHandle, ConnectorError> {
        let shown = file.shown.clone();
        let conn = tokio::task::spawn_blocking(move || open_guarded(&file, &access))
            .await
            .map_err(|e| ConnectorError::Data(format!("opening {shown} failed: {e}")))??;
        Ok(SqliteHandle {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `work` on the connection, on a blocking thread.
    async fn run<R, F>(&self, context: &str, work: F) -> Result<R, ConnectorError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let conn = self.conn.clone();
        let context_owned = context.to_string();
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().map_err(|_| {
                ConnectorError::Data(format!("{context_owned}: the connection broke"))
            })?;
            work(&conn).map_err(|e| sqlite_error(&context_owned, e))
        })
        .await
        .map_err(|e| ConnectorError::Data(format!("{context}: {e}")))?
    }

    /// Runs statements that return no rows.
    pub(crate) async fn exec(&self, sql: &str, context: &str) -> Result<(), ConnectorError> {
        let sql = sql.to_string();
        self.run(context, move |db| db.execute_batch(&sql)).await
    }

    /// The first column of every row of `sql` as text (null as `None`).
    pub(crate) async fn texts(
        &self,
        sql: &'static str,
        argument: &str,
        context: &str,
    ) -> Result<Vec<Option<String>>, ConnectorError> {
        let argument = argument.to_string();
        self.run(context, move |db| {
            let mut statement = db.prepare(sql)?;
            let rows = statement.query_map([argument], |row| row.get::<_, Option<String>>(0))?;
            rows.collect()
        })
        .await
    }

    /// Closes the connection on a blocking thread (closing may checkpoint the file).
    pub(crate) async fn close(self) {
        let conn = self.conn;
        let _ = tokio::task::spawn_blocking(move || drop(conn)).await;
    }

    /// Runs statements with their bound values, in order.
    pub(crate) async fn execute_all(
        &self,
        statements: Vec<(String, Vec<SqlValue>)>,
        context: &str,
    ) -> Result<(), ConnectorError> {
        self.run(context, move |db| {
            for (sql, values) in statements {
                let mut statement = db.prepare_cached(&sql)?;
                statement.execute(rusqlite::params_from_iter(values))?;
            }
            Ok(())
        })
        .await
    }
}

/// A record's value as an SQLite value: booleans as 0/1, integers beyond 64 bits as text.
pub(crate) fn bind_value(value: Option<&Value>) -> SqlValue {
    match value {
        None | Some(Value::Null) => SqlValue::Null,
        Some(Value::Bool(b)) => SqlValue::Integer(i64::from(*b)),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                SqlValue::Integer(i)
            } else if n.is_u64() {
                SqlValue::Text(n.to_string())
            } else {
                SqlValue::Real(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Some(Value::String(s)) => SqlValue::Text(s.clone()),
        Some(other) => SqlValue::Text(other.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// Sources

type BatchResult = Result<Vec<Record>, ConnectorError>;

/// Rows of a table or query, streamed from a blocking task that owns the connection.
pub struct SqliteSource {
    receiver: mpsc::Receiver<BatchResult>,
}

#[async_trait::async_trait]
impl Source for SqliteSource {
    async fn next_batch(&mut self) -> Result<Option<Vec<Record>>, ConnectorError> {
        match self.receiver.recv().await {
            Some(Ok(batch)) => Ok(Some(batch)),
            Some(Err(error)) => Err(error),
            None => Ok(None),
        }
    }
}

/// Whether anything but comments, blanks and semicolons follows the first statement of `sql`.
/// SQLite compiles one statement at a time and stops at its `;`; the rest must be empty.
pub(crate) fn has_second_statement(sql: &str) -> bool {
    let bytes = sql.as_bytes();
    let mut i = 0;
    let mut ended = false;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\'' | b'"' | b'`' => {
                if ended {
                    return true;
                }
                let close = c;
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == close {
                        // A doubled quote is a quote inside the literal.
                        if bytes.get(i + 1) == Some(&close) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'[' => {
                if ended {
                    return true;
                }
                while i < bytes.len() && bytes[i] != b']' {
                    i += 1;
                }
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b';' => {
                ended = true;
                i += 1;
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                if ended {
                    return true;
                }
                i += 1;
            }
        }
    }
    false
}

/// Opens `select` on the file for reading: the statement is compiled under the read-only
/// authorizer before this returns, so a refused query fails here, naming the reason.
pub(crate) async fn open_source(
    file: SqliteFile,
    select: String,
    what: String,
) -> Result<SqliteSource, ConnectorError> {
    if has_second_statement(&select) {
        return Err(ConnectorError::Config(
            "query= must be exactly one SELECT statement; nothing may follow its `;`".into(),
        ));
    }
    let (sender, receiver) = mpsc::channel::<BatchResult>(2);
    let (ready, compiled) = oneshot::channel::<Result<(), ConnectorError>>();
    tokio::task::spawn_blocking(move || {
        let db = match open_guarded(&file, &Access::Read) {
            Ok(db) => db,
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        // A reader that went away (a finished or cancelled run) interrupts the query.
        let watched = sender.clone();
        db.progress_handler(PROGRESS_STEPS, Some(move || watched.is_closed()));
        stream_rows(&db, &select, &what, ready, &sender);
    });
    match compiled.await {
        Ok(Ok(())) => Ok(SqliteSource { receiver }),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(ConnectorError::Data(
            "the SQLite reader stopped before it started".into(),
        )),
    }
}

fn stream_rows(
    db: &Connection,
    select: &str,
    what: &str,
    ready: oneshot::Sender<Result<(), ConnectorError>>,
    sender: &mpsc::Sender<BatchResult>,
) {
    let mut statement = match db.prepare(select) {
        Ok(statement) => statement,
        Err(error) => {
            let _ = ready.send(Err(sqlite_error(&format!("cannot read {what}"), error)));
            return;
        }
    };
    if !statement.readonly() {
        let _ = ready.send(Err(ConnectorError::Config(
            "query= must be a read-only SELECT statement".into(),
        )));
        return;
    }
    let _ = ready.send(Ok(()));
    let columns: Vec<(String, bool)> = statement
        .columns()
        .iter()
        .map(|c| {
            let boolean = c
                .decl_type()
                .is_some_and(|t| t.eq_ignore_ascii_case("BOOLEAN"));
            (c.name().to_string(), boolean)
        })
        .collect();
    let failed = |error: rusqlite::Error| {
        let _ = sender.blocking_send(Err(sqlite_error(&format!("reading {what} failed"), error)));
    };
    let mut rows = match statement.query([]) {
        Ok(rows) => rows,
        Err(error) => return failed(error),
    };
    let mut batch = Vec::with_capacity(BATCH_SIZE);
    loop {
        let row = match rows.next() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(_) if sender.is_closed() => return,
            Err(error) => return failed(error),
        };
        let mut record = Record::new();
        for (i, (name, boolean)) in columns.iter().enumerate() {
            let value = match row.get_ref(i) {
                Ok(value) => json_value(value, *boolean),
                Err(error) => return failed(error),
            };
            record.insert(name.clone(), value);
        }
        batch.push(record);
        if batch.len() >= BATCH_SIZE {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_SIZE));
            if sender.blocking_send(Ok(full)).is_err() {
                return;
            }
        }
    }
    // The file is closed (by the caller dropping the connection) right after the last batch;
    // a writer on the same file waits at most for that.
    if !batch.is_empty() {
        let _ = sender.blocking_send(Ok(batch));
    }
}

/// An SQLite value as JSON: storage classes kept, integers of `BOOLEAN` columns as booleans,
/// blobs as base64 text.
fn json_value(value: ValueRef<'_>, boolean: bool) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) if boolean && (n == 0 || n == 1) => Value::Bool(n == 1),
        ValueRef::Integer(n) => Value::from(n),
        ValueRef::Real(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.to_string())),
        ValueRef::Text(bytes) => Value::String(String::from_utf8_lossy(bytes).into_owned()),
        ValueRef::Blob(bytes) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
    }
}

/// `test connection` for SQLite: opens the file read-only when it exists.
pub async fn test(conn: &ConnectionSpec, ctx: &ConnectorContext) -> Result<String, ConnectorError> {
    let file = SqliteFile::of(conn, ctx)?;
    if !file.path.exists() {
        return Ok(format!(
            "SQLite file {} does not exist yet; it is created when a flow first writes to it",
            file.shown
        ));
    }
    if !file.path.is_file() {
        return Err(ConnectorError::Config(format!(
            "connection {}: path {} is not a file",
            conn.name, file.shown
        )));
    }
    let shown = file.shown.clone();
    let handle = SqliteHandle::open(file, Access::Read).await?;
    let context = format!("cannot read SQLite file {shown}");
    let (version, tables) = handle
        .run(&context, |db| {
            let version: String = db.query_row("SELECT sqlite_version()", [], |r| r.get(0))?;
            let tables: i64 = db.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
                [],
                |r| r.get(0),
            )?;
            Ok((version, tables))
        })
        .await?;
    let noun = if tables == 1 { "table" } else { "tables" };
    Ok(format!(
        "opened SQLite {version} database {shown} ({tables} {noun})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_statement_only() {
        assert!(!has_second_statement("SELECT 1"));
        assert!(!has_second_statement("SELECT 1;"));
        assert!(!has_second_statement("SELECT 1; -- done\n ;; /* x */ "));
        assert!(!has_second_statement("SELECT 'a;b', \"c;\" FROM [t;]"));
        assert!(!has_second_statement("SELECT 'it''s; fine'"));
        assert!(has_second_statement("SELECT 1; ATTACH 'x' AS y"));
        assert!(has_second_statement(
            "SELECT 1 AS x WHERE 0); ATTACH '/data/integrator.db' AS s; SELECT 1"
        ));
        assert!(has_second_statement("SELECT 1;VACUUM"));
        assert!(has_second_statement("SELECT 1; 'x'"));
    }

    #[test]
    fn a_destination_may_write_only_its_own_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = SqliteFile {
            path: dir.path().join("lake.db"),
            shown: "lake.db".into(),
        };
        {
            let setup = Connection::open(&file.path).expect("open");
            setup
                .execute_batch("CREATE TABLE other (x); INSERT INTO other VALUES (1);")
                .expect("setup");
        }
        let db = open_guarded(&file, &Access::WriteTable("Orders".into())).expect("open");
        for allowed in [
            "BEGIN IMMEDIATE",
            "CREATE TABLE \"orders\" (id INTEGER, UNIQUE (id))",
            "ALTER TABLE \"orders\" ADD COLUMN name TEXT",
            "INSERT INTO orders (id, name) VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET name = excluded.name",
            "DELETE FROM orders",
            "SELECT name FROM pragma_table_info('orders')",
            "COMMIT",
        ] {
            db.execute_batch(allowed).unwrap_or_else(|e| panic!("{allowed}: {e}"));
        }
        let outside = dir.path().join("copy.db");
        for denied in [
            "INSERT INTO other VALUES (2)".to_string(),
            "DELETE FROM other".to_string(),
            "DROP TABLE other".to_string(),
            "CREATE TABLE elsewhere (x)".to_string(),
            "CREATE TRIGGER t AFTER INSERT ON orders BEGIN DELETE FROM other; END".to_string(),
            "CREATE VIEW v AS SELECT 1".to_string(),
            "PRAGMA writable_schema = 1".to_string(),
            format!("ATTACH '{}' AS a", outside.display()),
            format!("VACUUM INTO '{}'", outside.display()),
            "SELECT * FROM pragma_database_list".to_string(),
        ] {
            assert!(db.execute_batch(&denied).is_err(), "{denied} was allowed");
        }
        assert!(!outside.exists());
        let kept: i64 = db
            .query_row("SELECT count(*) FROM other", [], |r| r.get(0))
            .expect("count");
        assert_eq!(kept, 1);
    }

    #[test]
    fn pragma_tables_are_limited_to_listings() {
        assert!(readable("orders"));
        assert!(readable("pragma_table_info"));
        assert!(readable("PRAGMA_INDEX_LIST"));
        assert!(!readable("pragma_database_list"));
        assert!(!readable("pragma_compile_options"));
        assert!(!readable("sqlite_dbpage"));
    }
}
