//! SQL connectors: every scenario runs on SQLite (temp files) and, when `TEST_DATABASE_URL` is
//! set, on PostgreSQL in a fresh schema per test (dropped afterwards).

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sqlx::Connection;
use workspace::connectors::{
    open_destination, open_source, test_connection, ConnectionSpec, ConnectionType,
    ConnectorContext, ConnectorError, DestinationSpec, Record, SourceSpec, WriteMode, BATCH_SIZE,
};

/// These tests reach services on this machine, which an operator allows explicitly.
fn local_services() -> std::sync::Arc<workspace::EgressPolicy> {
    std::sync::Arc::new(
        workspace::EgressPolicy::from_allow_list("127.0.0.0/8,::1").expect("allow list"),
    )
}

/// One database for one test.
struct TestDb {
    conn: ConnectionSpec,
    ctx: ConnectorContext,
    _dir: tempfile::TempDir,
    /// PostgreSQL: the admin URL and the schema to drop.
    pg: Option<(String, String)>,
}

impl TestDb {
    fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        TestDb {
            conn: ConnectionSpec {
                name: "lake".into(),
                kind: ConnectionType::Sqlite,
                params: BTreeMap::from([("path".to_string(), "marts/lake.db".to_string())]),
            },
            ctx: ConnectorContext::new(dir.path().to_path_buf(), local_services()),
            _dir: dir,
            pg: None,
        }
    }

    async fn postgres(test: &str) -> Option<TestDb> {
        let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
            eprintln!("note: TEST_DATABASE_URL is not set; skipping the PostgreSQL part of {test}");
            return None;
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let schema = format!("conn_{test}_{}_{nanos}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(&url).await.expect("connect");
        sqlx::raw_sql(&format!("CREATE SCHEMA \"{schema}\""))
            .execute(&mut admin)
            .await
            .expect("create schema");
        admin.close().await.ok();
        let separator = if url.contains('?') { '&' } else { '?' };
        let dir = tempfile::tempdir().expect("tempdir");
        Some(TestDb {
            conn: ConnectionSpec {
                name: "wh".into(),
                kind: ConnectionType::Postgres,
                params: BTreeMap::from([(
                    "url".to_string(),
                    format!("{url}{separator}options=-c%20search_path%3D{schema}"),
                )]),
            },
            ctx: ConnectorContext::new(dir.path().to_path_buf(), local_services()),
            _dir: dir,
            pg: Some((url, schema)),
        })
    }

    async fn cleanup(self) {
        drop_schema(self.pg.clone()).await;
    }

    fn is_pg(&self) -> bool {
        self.pg.is_some()
    }

    /// Runs statements directly (setup of existing tables).
    async fn exec(&self, sql: &str) {
        match &self.pg {
            Some((url, schema)) => {
                let mut pg = sqlx::PgConnection::connect(url).await.expect("connect");
                sqlx::raw_sql(&format!("SET search_path TO \"{schema}\"; {sql}"))
                    .execute(&mut pg)
                    .await
                    .expect("exec");
                pg.close().await.ok();
            }
            None => {
                let path = self.ctx.tenant_dir.join("marts/lake.db");
                std::fs::create_dir_all(self.ctx.tenant_dir.join("marts")).expect("mkdir");
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true);
                let mut db = sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .expect("open");
                sqlx::raw_sql(sql).execute(&mut db).await.expect("exec");
                db.close().await.ok();
            }
        }
    }

    async fn write(
        &self,
        table: &str,
        mode: WriteMode,
        key: &[&str],
        batches: &[Vec<Record>],
    ) -> Result<u64, ConnectorError> {
        let spec = DestinationSpec {
            target: table.into(),
            mode,
            key: key.iter().map(|k| k.to_string()).collect(),
        };
        let mut destination = open_destination(&self.conn, &spec, &self.ctx).await?;
        let mut written = 0;
        for batch in batches {
            match destination.write_batch(batch).await {
                Ok(n) => written += n,
                Err(error) => {
                    destination.rollback().await?;
                    return Err(error);
                }
            }
        }
        destination.commit().await?;
        Ok(written)
    }

    async fn query(&self, sql: &str) -> Result<Vec<Record>, ConnectorError> {
        self.read(SourceSpec::Query(sql.into())).await
    }

    async fn read(&self, source: SourceSpec) -> Result<Vec<Record>, ConnectorError> {
        let mut source = open_source(&self.conn, &source, &self.ctx).await?;
        let mut all = Vec::new();
        while let Some(batch) = source.next_batch().await? {
            assert!(!batch.is_empty() && batch.len() <= BATCH_SIZE);
            all.extend(batch);
        }
        Ok(all)
    }
}

async fn drop_schema(pg: Option<(String, String)>) {
    if let Some((url, schema)) = pg {
        if let Ok(mut admin) = sqlx::PgConnection::connect(&url).await {
            let _ = sqlx::raw_sql(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                .execute(&mut admin)
                .await;
            admin.close().await.ok();
        }
    }
}

fn rec(value: Value) -> Record {
    workspace::flatten::flatten(value)
}

fn column(rows: &[Record], name: &str) -> Vec<Value> {
    rows.iter()
        .map(|r| r.get(name).cloned().unwrap_or(Value::Null))
        .collect()
}

/// Runs a scenario on PostgreSQL when configured, in its own schema, dropped even when the
/// scenario panics.
macro_rules! on_postgres {
    ($postgres:ident, $scenario:ident) => {
        #[tokio::test]
        async fn $postgres() {
            if let Some(db) = TestDb::postgres(stringify!($scenario)).await {
                use futures::FutureExt as _;
                let outcome = std::panic::AssertUnwindSafe($scenario(&db))
                    .catch_unwind()
                    .await;
                db.cleanup().await;
                if let Err(panic) = outcome {
                    std::panic::resume_unwind(panic);
                }
            }
        }
    };
}

/// Runs a scenario on SQLite and, when configured, on PostgreSQL.
macro_rules! on_both {
    ($sqlite:ident, $postgres:ident, $scenario:ident) => {
        #[tokio::test]
        async fn $sqlite() {
            let db = TestDb::sqlite();
            $scenario(&db).await;
            db.cleanup().await;
        }

        on_postgres!($postgres, $scenario);
    };
}

async fn creates_tables_with_inferred_types(db: &TestDb) {
    let batch = vec![
        rec(
            json!({"id": 1, "customer": {"id": 10, "name": "A"}, "total": 9.5, "paid": true, "tags": ["x"], "note": null}),
        ),
        rec(
            json!({"id": 2, "customer": {"id": 11, "name": "B"}, "total": 3, "paid": false, "tags": [], "note": null}),
        ),
    ];
    assert_eq!(
        db.write("orders", WriteMode::Append, &[], &[batch])
            .await
            .unwrap(),
        2
    );
    let rows = db
        .query(r#"SELECT id, "customer.id", "customer.name", total, paid, tags, note FROM orders ORDER BY id"#)
        .await
        .unwrap();
    assert_eq!(column(&rows, "id"), [json!(1), json!(2)]);
    assert_eq!(column(&rows, "customer.id"), [json!(10), json!(11)]);
    assert_eq!(column(&rows, "customer.name"), [json!("A"), json!("B")]);
    assert_eq!(column(&rows, "total"), [json!(9.5), json!(3.0)]);
    assert_eq!(column(&rows, "paid"), [json!(true), json!(false)]);
    assert_eq!(column(&rows, "tags"), [json!(r#"["x"]"#), json!("[]")]);
    assert_eq!(column(&rows, "note"), [Value::Null, Value::Null]);

    // Reading the whole table keeps the column order of the table.
    let rows = db
        .read(SourceSpec::Resource("orders".into()))
        .await
        .unwrap();
    let names: Vec<&str> = rows[0].keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "id",
            "customer.id",
            "customer.name",
            "total",
            "paid",
            "tags",
            "note"
        ]
    );

    // The declared types.
    let types = if db.is_pg() {
        db.query("SELECT column_name::text AS name, data_type::text AS type FROM information_schema.columns WHERE table_name = 'orders' AND table_schema = current_schema() ORDER BY ordinal_position").await.unwrap()
    } else {
        db.query("SELECT name, type FROM pragma_table_info('orders')")
            .await
            .unwrap()
    };
    let expected = if db.is_pg() {
        [
            "bigint",
            "bigint",
            "text",
            "double precision",
            "boolean",
            "text",
            "text",
        ]
    } else {
        [
            "INTEGER", "INTEGER", "TEXT", "REAL", "BOOLEAN", "TEXT", "TEXT",
        ]
    };
    assert_eq!(
        column(&types, "type"),
        expected.iter().map(|t| json!(t)).collect::<Vec<_>>()
    );
}
on_both!(
    sqlite_creates_tables_with_inferred_types,
    postgres_creates_tables_with_inferred_types,
    creates_tables_with_inferred_types
);

async fn upsert_twice_gives_no_duplicates(db: &TestDb) {
    let first = vec![
        rec(json!({"id": 1, "status": "new", "n": 1})),
        rec(json!({"id": 2, "status": "new", "n": 2})),
        rec(json!({"id": 3, "status": "new", "n": 3})),
    ];
    db.write(
        "orders",
        WriteMode::Upsert,
        &["id"],
        std::slice::from_ref(&first),
    )
    .await
    .unwrap();
    db.write("orders", WriteMode::Upsert, &["id"], &[first])
        .await
        .unwrap();
    let second = vec![
        rec(json!({"id": 2, "status": "paid", "n": 20})),
        rec(json!({"id": 4, "status": "new", "n": 4})),
        // The same key twice in one batch: the last wins.
        rec(json!({"id": 4, "status": "shipped", "n": 40})),
    ];
    db.write("orders", WriteMode::Upsert, &["id"], &[second])
        .await
        .unwrap();
    let rows = db
        .query("SELECT id, status, n FROM orders ORDER BY id")
        .await
        .unwrap();
    assert_eq!(
        column(&rows, "id"),
        [json!(1), json!(2), json!(3), json!(4)]
    );
    assert_eq!(
        column(&rows, "status"),
        [json!("new"), json!("paid"), json!("new"), json!("shipped")]
    );
    assert_eq!(
        column(&rows, "n"),
        [json!(1), json!(20), json!(3), json!(40)]
    );

    // Composite keys.
    let lines = vec![
        rec(json!({"order_id": 1, "line_no": 1, "qty": 1})),
        rec(json!({"order_id": 1, "line_no": 2, "qty": 1})),
    ];
    db.write(
        "lines",
        WriteMode::Upsert,
        &["order_id", "line_no"],
        &[lines],
    )
    .await
    .unwrap();
    let update = vec![rec(json!({"order_id": 1, "line_no": 2, "qty": 5}))];
    db.write(
        "lines",
        WriteMode::Upsert,
        &["order_id", "line_no"],
        &[update],
    )
    .await
    .unwrap();
    let rows = db
        .query("SELECT qty FROM lines ORDER BY line_no")
        .await
        .unwrap();
    assert_eq!(column(&rows, "qty"), [json!(1), json!(5)]);

    // Upsert needs a key.
    let err = db
        .write("orders", WriteMode::Upsert, &[], &[vec![]])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("key"), "{err}");
}
on_both!(
    sqlite_upsert_twice_gives_no_duplicates,
    postgres_upsert_twice_gives_no_duplicates,
    upsert_twice_gives_no_duplicates
);

async fn replace_and_append(db: &TestDb) {
    let three: Vec<Record> = (1..=3).map(|i| rec(json!({"id": i}))).collect();
    db.write("t", WriteMode::Append, &[], std::slice::from_ref(&three))
        .await
        .unwrap();
    db.write("t", WriteMode::Append, &[], &[three])
        .await
        .unwrap();
    assert_eq!(db.query("SELECT id FROM t").await.unwrap().len(), 6);
    db.write(
        "t",
        WriteMode::Replace,
        &[],
        &[vec![rec(json!({"id": 9})), rec(json!({"id": 8}))]],
    )
    .await
    .unwrap();
    let rows = db.query("SELECT id FROM t ORDER BY id").await.unwrap();
    assert_eq!(column(&rows, "id"), [json!(8), json!(9)]);
    // Replace with no rows empties the table.
    db.write("t", WriteMode::Replace, &[], &[]).await.unwrap();
    assert!(db.query("SELECT id FROM t").await.unwrap().is_empty());
}
on_both!(
    sqlite_replace_and_append,
    postgres_replace_and_append,
    replace_and_append
);

async fn failed_runs_roll_back(db: &TestDb) {
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        .await;
    db.write(
        "t",
        WriteMode::Append,
        &[],
        &[vec![rec(json!({"id": 1, "name": "kept"}))]],
    )
    .await
    .unwrap();
    let good: Vec<Record> = (10..20)
        .map(|i| rec(json!({"id": i, "name": "new"})))
        .collect();

    // A key violation in the second batch.
    let duplicate = vec![rec(json!({"id": 10, "name": "dup"}))];
    for mode in [WriteMode::Append, WriteMode::Replace] {
        let err = db
            .write("t", mode, &[], &[good.clone(), duplicate.clone()])
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectorError::Data(_)), "{err}");
        let rows = db.query("SELECT id, name FROM t").await.unwrap();
        assert_eq!(column(&rows, "name"), [json!("kept")], "{mode:?}");
    }

    if db.is_pg() {
        // A value of the wrong type for an INTEGER column.
        let wrong = vec![rec(json!({"id": "abc", "name": "x"}))];
        let err = db
            .write("t", WriteMode::Replace, &[], &[good.clone(), wrong])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("abc"), "{err}");
        let rows = db.query("SELECT name FROM t").await.unwrap();
        assert_eq!(column(&rows, "name"), [json!("kept")]);
    }

    // A destination dropped without commit leaves nothing either.
    let spec = DestinationSpec {
        target: "t".into(),
        mode: WriteMode::Replace,
        key: vec![],
    };
    let mut destination = open_destination(&db.conn, &spec, &db.ctx).await.unwrap();
    destination.write_batch(&good).await.unwrap();
    destination.rollback().await.unwrap();
    let mut destination = open_destination(&db.conn, &spec, &db.ctx).await.unwrap();
    destination.write_batch(&good).await.unwrap();
    drop(destination);
    let rows = db.query("SELECT name FROM t").await.unwrap();
    assert_eq!(column(&rows, "name"), [json!("kept")]);

    // A table created by a failed run does not remain.
    let err = db
        .write(
            "fresh",
            WriteMode::Append,
            &[],
            &[
                vec![rec(json!({"id": 1}))],
                vec![rec(json!({"id": "x", "": 1}))],
            ],
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("empty name"), "{err}");
    assert!(db.read(SourceSpec::Resource("fresh".into())).await.is_err());
}
on_both!(
    sqlite_failed_runs_roll_back,
    postgres_failed_runs_roll_back,
    failed_runs_roll_back
);

async fn columns_of_existing_and_new_tables(db: &TestDb) {
    // New columns in a later batch of a table this run creates are added.
    db.write(
        "grow",
        WriteMode::Append,
        &[],
        &[
            vec![rec(json!({"id": 1}))],
            vec![rec(json!({"id": 2, "extra": 2.5, "more": "m"}))],
        ],
    )
    .await
    .unwrap();
    let rows = db
        .query("SELECT id, extra, more FROM grow ORDER BY id")
        .await
        .unwrap();
    assert_eq!(column(&rows, "extra"), [Value::Null, json!(2.5)]);
    assert_eq!(column(&rows, "more"), [Value::Null, json!("m")]);

    // An existing table is never altered.
    let err = db
        .write(
            "grow",
            WriteMode::Append,
            &[],
            &[vec![rec(json!({"id": 3, "surprise": 1}))]],
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("surprise"), "{err}");
    assert!(err.to_string().contains("map="), "{err}");
    assert_eq!(db.query("SELECT id FROM grow").await.unwrap().len(), 2);

    // Upsert into an existing table without a unique index on the key: a clear error.
    let err = db
        .write(
            "grow",
            WriteMode::Upsert,
            &["id"],
            &[vec![rec(json!({"id": 1}))]],
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("CREATE UNIQUE INDEX"), "{err}");
    db.exec("CREATE UNIQUE INDEX grow_id ON grow (id)").await;
    db.write(
        "grow",
        WriteMode::Upsert,
        &["id"],
        &[vec![rec(json!({"id": 1, "more": "updated"}))]],
    )
    .await
    .unwrap();
    let rows = db
        .query("SELECT more FROM grow WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(column(&rows, "more"), [json!("updated")]);

    // An upsert key missing from the records of a new table.
    let err = db
        .write(
            "nokey",
            WriteMode::Upsert,
            &["id"],
            &[vec![rec(json!({"name": "x"}))]],
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("key"), "{err}");
}
on_both!(
    sqlite_columns_of_existing_and_new_tables,
    postgres_columns_of_existing_and_new_tables,
    columns_of_existing_and_new_tables
);

async fn large_runs_are_batched(db: &TestDb) {
    // 40 columns × 1,000 rows is more bound parameters than SQLite allows in one statement.
    let batch = |start: i64| -> Vec<Record> {
        (start..start + 1000)
            .map(|i| {
                let mut record = Record::new();
                record.insert("id".into(), json!(i));
                for c in 0..39 {
                    record.insert(format!("c{c}"), json!(format!("v{i}-{c}")));
                }
                record
            })
            .collect()
    };
    let batches: Vec<Vec<Record>> = (0..3).map(|b| batch(b * 1000)).collect();
    assert_eq!(
        db.write("wide", WriteMode::Upsert, &["id"], &batches)
            .await
            .unwrap(),
        3000
    );
    db.write("wide", WriteMode::Upsert, &["id"], &batches[1..2])
        .await
        .unwrap();
    let mut source = open_source(&db.conn, &SourceSpec::Resource("wide".into()), &db.ctx)
        .await
        .unwrap();
    let mut sizes = Vec::new();
    while let Some(batch) = source.next_batch().await.unwrap() {
        sizes.push(batch.len());
    }
    assert_eq!(sizes, [1000, 1000, 1000]);
    let rows = db
        .query("SELECT count(*) AS n, count(DISTINCT id) AS d FROM wide")
        .await
        .unwrap();
    assert_eq!(rows[0]["n"], json!(3000));
    assert_eq!(rows[0]["d"], json!(3000));
}
on_both!(
    sqlite_large_runs_are_batched,
    postgres_large_runs_are_batched,
    large_runs_are_batched
);

async fn sources_are_read_only(db: &TestDb) {
    db.write("t", WriteMode::Append, &[], &[vec![rec(json!({"id": 1}))]])
        .await
        .unwrap();
    for query in ["DELETE FROM t", "DROP TABLE t", "UPDATE t SET id = 2"] {
        let err = db.query(query).await.unwrap_err();
        assert!(matches!(err, ConnectorError::Config(_)), "{query}: {err}");
    }
    // A second statement after a SELECT does not run.
    assert!(db.query("SELECT 1 AS x; DROP TABLE t").await.is_err());
    // Writing from inside a WITH is refused by the database.
    let sneaky = "WITH d AS (DELETE FROM t RETURNING id) SELECT * FROM d";
    assert!(db.query(sneaky).await.is_err());
    assert_eq!(db.query("SELECT id FROM t").await.unwrap().len(), 1);
    // Trailing semicolons and WITH queries are fine.
    let rows = db
        .query("WITH a AS (SELECT id FROM t) SELECT id FROM a;")
        .await
        .unwrap();
    assert_eq!(column(&rows, "id"), [json!(1)]);
    // Bad table names are refused before reaching the database.
    for name in ["t; DROP TABLE t", "a b", "x\"y"] {
        let err = db
            .read(SourceSpec::Resource(name.into()))
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectorError::Config(_)), "{name}");
    }
    let err = db
        .read(SourceSpec::Resource("missing".into()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}
on_both!(
    sqlite_sources_are_read_only,
    postgres_sources_are_read_only,
    sources_are_read_only
);

async fn test_connection_reports(db: &TestDb) {
    let text = test_connection(&db.conn, &db.ctx).await.unwrap();
    if db.is_pg() {
        assert!(text.starts_with("connected to PostgreSQL "), "{text}");
    } else {
        assert!(text.contains("does not exist yet"), "{text}");
        db.write("t", WriteMode::Append, &[], &[vec![rec(json!({"id": 1}))]])
            .await
            .unwrap();
        let text = test_connection(&db.conn, &db.ctx).await.unwrap();
        assert!(text.contains("1 table"), "{text}");
    }
}
on_both!(
    sqlite_test_connection_reports,
    postgres_test_connection_reports,
    test_connection_reports
);

#[tokio::test]
async fn sqlite_paths_stay_in_the_tenant_folder() {
    let root = tempfile::tempdir().unwrap();
    let tenant = root.path().join("t");
    std::fs::create_dir_all(&tenant).unwrap();
    let ctx = ConnectorContext::new(tenant.clone(), local_services());
    let outside = root.path().join("other.db").to_string_lossy().into_owned();
    for path in [
        "../other.db",
        "/tmp/x.db",
        "a/../../other.db",
        outside.as_str(),
    ] {
        let conn = ConnectionSpec {
            name: "lake".into(),
            kind: ConnectionType::Sqlite,
            params: BTreeMap::from([("path".to_string(), path.to_string())]),
        };
        let spec = DestinationSpec {
            target: "t".into(),
            mode: WriteMode::Append,
            key: vec![],
        };
        let err = open_destination(&conn, &spec, &ctx).await.err().unwrap();
        assert!(matches!(err, ConnectorError::Config(_)), "{path}");
        assert!(err.to_string().contains("refused"), "{err}");
        let err = test_connection(&conn, &ctx).await.unwrap_err();
        assert!(matches!(err, ConnectorError::Config(_)), "{path}");
    }
    assert!(!root.path().join("other.db").exists());
    // Reading a file that does not exist does not create it.
    let conn = ConnectionSpec {
        name: "lake".into(),
        kind: ConnectionType::Sqlite,
        params: BTreeMap::from([("path".to_string(), "none.db".to_string())]),
    };
    let err = open_source(&conn, &SourceSpec::Resource("t".into()), &ctx)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!tenant.join("none.db").exists());
}

on_postgres!(postgres_values_are_converted, values_are_converted);

async fn values_are_converted(db: &TestDb) {
    db.exec(
        "CREATE TABLE v (i2 smallint, i8 bigint, f4 real, n numeric(12,2), b boolean, t text, \
         ts timestamptz, d date, j jsonb, arr int[], by bytea, u uuid); \
         INSERT INTO v VALUES (1, 9007199254740993, 1.5, 12345.67, true, 'x', \
         '2024-01-02 03:04:05+00', '2024-01-02', '{\"a\": {\"b\": [1]}}', '{1,2}', '\\x010203', \
         'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), \
         (NULL, NULL, 'NaN', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    )
    .await;
    let rows = db.read(SourceSpec::Resource("v".into())).await.unwrap();
    let row = &rows[0];
    assert_eq!(row["i2"], json!(1));
    assert_eq!(row["i8"], json!(9007199254740993i64));
    assert_eq!(row["f4"], json!(1.5));
    assert_eq!(row["n"], json!(12345.67));
    assert_eq!(row["b"], json!(true));
    assert_eq!(row["t"], json!("x"));
    assert_eq!(row["ts"], json!("2024-01-02T03:04:05+00:00"));
    assert_eq!(row["d"], json!("2024-01-02"));
    assert_eq!(row["j"], json!(r#"{"a":{"b":[1]}}"#));
    assert_eq!(row["arr"], json!("[1,2]"));
    assert_eq!(row["by"], json!("AQID"));
    assert_eq!(row["u"], json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
    assert_eq!(rows[1]["f4"], json!("NaN"));
    assert_eq!(rows[1]["i8"], Value::Null);

    // Copy it into a new table and back: the text forms go into typed columns.
    let spec = SourceSpec::Query("SELECT i8, n, ts, j FROM v WHERE i8 IS NOT NULL".into());
    let copied = db.read(spec).await.unwrap();
    db.write("copy", WriteMode::Replace, &[], &[copied])
        .await
        .unwrap();
    db.exec("CREATE TABLE typed (i8 bigint, n numeric, ts timestamptz, j jsonb)")
        .await;
    let again = db.read(SourceSpec::Resource("copy".into())).await.unwrap();
    db.write("typed", WriteMode::Append, &[], &[again])
        .await
        .unwrap();
    let rows = db
        .query("SELECT i8, n, ts, j->'a'->'b' AS jb FROM typed")
        .await
        .unwrap();
    assert_eq!(rows[0]["i8"], json!(9007199254740993i64));
    assert_eq!(rows[0]["ts"], json!("2024-01-02T03:04:05+00:00"));
    assert_eq!(rows[0]["jb"], json!("[1]"));

    // Schema-qualified table names and a password kept apart from the URL.
    let (_, schema) = db.pg.clone().unwrap_or_default();
    let rows = db
        .read(SourceSpec::Resource(format!("{schema}.typed")))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
}

#[tokio::test]
async fn postgres_errors_do_not_show_passwords() {
    let conn = ConnectionSpec {
        name: "wh".into(),
        kind: ConnectionType::Postgres,
        params: BTreeMap::from([
            (
                "url".to_string(),
                "postgres://etl:s3cretInUrl@127.0.0.1:1/db".to_string(),
            ),
            ("password".to_string(), "s3cretParam".to_string()),
        ]),
    };
    let ctx = ConnectorContext::new(std::env::temp_dir(), local_services());
    let err = test_connection(&conn, &ctx).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConnectorError::Remote(_)), "{text}");
    assert!(text.contains("127.0.0.1:1/db"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}

/// A flow from one table to another of the same SQLite file: the reader must not block the
/// writer (the data is larger than SQLite's default page cache).
#[tokio::test]
async fn sqlite_copy_within_one_file() {
    for journal in ["wal", "delete"] {
        let db = TestDb::sqlite();
        let batches: Vec<Vec<Record>> = (0..12)
            .map(|b| {
                (0..1000)
                    .map(|i| {
                        let mut r = Record::new();
                        r.insert("id".into(), json!(b * 1000 + i));
                        for c in 0..5 {
                            r.insert(format!("c{c}"), json!("x".repeat(80)));
                        }
                        r
                    })
                    .collect()
            })
            .collect();
        db.write("a", WriteMode::Append, &[], &batches)
            .await
            .unwrap();
        if journal == "delete" {
            // As a file made by another program, in rollback-journal mode: the reader opens
            // first, so the writer cannot switch the file to WAL.
            db.exec("PRAGMA journal_mode = DELETE").await;
        }
        let copy = async {
            let mut source = open_source(&db.conn, &SourceSpec::Resource("a".into()), &db.ctx)
                .await
                .unwrap();
            let spec = DestinationSpec {
                target: "b".into(),
                mode: WriteMode::Replace,
                key: vec![],
            };
            let mut destination = open_destination(&db.conn, &spec, &db.ctx).await.unwrap();
            while let Some(batch) = source.next_batch().await.unwrap() {
                destination.write_batch(&batch).await.unwrap();
            }
            destination.commit().await.unwrap();
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), copy)
            .await
            .expect("the copy finishes");
        let rows = db.query("SELECT count(*) AS n FROM b").await.unwrap();
        assert_eq!(rows[0]["n"], json!(12000), "{journal}");
        db.cleanup().await;
    }
}

#[tokio::test]
async fn postgres_sslmode_require() {
    let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!("note: TEST_DATABASE_URL is not set; skipping postgres_sslmode_require");
        return;
    };
    let separator = if url.contains('?') { '&' } else { '?' };
    let conn = ConnectionSpec {
        name: "wh".into(),
        kind: ConnectionType::Postgres,
        params: BTreeMap::from([(
            "url".to_string(),
            format!("{url}{separator}sslmode=require"),
        )]),
    };
    let ctx = ConnectorContext::new(std::env::temp_dir(), local_services());
    match test_connection(&conn, &ctx).await {
        Ok(text) => assert!(text.starts_with("connected to PostgreSQL"), "{text}"),
        // A server without TLS refuses clearly; the client side is never the problem.
        Err(err) => assert!(err.to_string().to_lowercase().contains("tls"), "{err}"),
    }
}

// ---------------------------------------------------------------------------------------------
// A tenant's SQL is hostile: it may read its own file and nothing else.

/// A file the tenant must never reach, beside the tenant folder (as the server's own
/// database is).
fn secret_database(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("integrator.db");
    let db = rusqlite::Connection::open(&path).expect("open secret");
    db.execute_batch(
        "CREATE TABLE messages (body TEXT); INSERT INTO messages VALUES ('another tenant''s secret');",
    )
    .expect("fill secret");
    path
}

#[tokio::test]
async fn sqlite_queries_cannot_attach_vacuum_or_read_pragmas() {
    let db = TestDb::sqlite();
    db.write("t", WriteMode::Append, &[], &[vec![rec(json!({"x": 1}))]])
        .await
        .expect("write");
    let data_dir = db.ctx.tenant_dir.clone();
    let secret = secret_database(&data_dir);
    let stolen = data_dir.join("stolen.db");
    let attacks = [
        // The reported attack: close the subquery, attach the server's database, read it.
        format!(
            "SELECT 1 AS x WHERE 0); ATTACH '{}' AS s; CREATE TEMP VIEW v AS SELECT * FROM s.messages; \
             SELECT * FROM v; SELECT * FROM (SELECT 1 AS x WHERE 0",
            secret.display()
        ),
        format!("SELECT 1; ATTACH '{}' AS s", secret.display()),
        format!("SELECT 1; VACUUM INTO '{}'", stolen.display()),
        "SELECT 1;PRAGMA writable_schema = 1".to_string(),
        // One statement, but not a harmless one.
        "SELECT * FROM pragma_database_list".to_string(),
        "SELECT file FROM pragma_database_list".to_string(),
        "SELECT * FROM pragma_compile_options".to_string(),
        "SELECT load_extension('/tmp/evil')".to_string(),
        "WITH x AS (SELECT 1) SELECT * FROM x; DELETE FROM t".to_string(),
    ];
    for attack in &attacks {
        let error = db.query(attack).await.expect_err(attack);
        let text = error.to_string();
        assert!(
            !text.contains("another tenant's secret"),
            "{attack} leaked: {text}"
        );
    }
    // The refusal says why.
    let error = db
        .query(&format!("SELECT 1; ATTACH '{}' AS s", secret.display()))
        .await
        .expect_err("second statement");
    assert!(error.to_string().contains("exactly one"), "{error}");
    let error = db
        .query("SELECT file FROM pragma_database_list")
        .await
        .expect_err("pragma table");
    assert!(
        error.to_string().contains("workspace SQL may only read"),
        "{error}"
    );
    // Nothing was written anywhere, and the tenant's data is as it was.
    assert!(!stolen.exists());
    assert_eq!(
        db.query("SELECT count(*) AS n FROM t").await.unwrap()[0]["n"],
        json!(1)
    );
    // Harmless reads of the file's own tables and their shape still work.
    let columns = db
        .query("SELECT name FROM pragma_table_info('t')")
        .await
        .expect("column listing");
    assert_eq!(columns[0]["name"], json!("x"));
    let rows = db
        .query("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) SELECT i FROM n; -- done")
        .await
        .expect("recursive query");
    assert_eq!(rows.len(), 3);
}

#[cfg(unix)]
#[tokio::test]
async fn sqlite_files_reached_through_links_are_refused() {
    let db = TestDb::sqlite();
    let outside = tempfile::tempdir().expect("tempdir");
    let secret = secret_database(outside.path());
    let marts = db.ctx.tenant_dir.join("marts");
    std::fs::create_dir_all(&marts).expect("mkdir");
    // The file itself is a link, or a folder on its path is.
    std::os::unix::fs::symlink(&secret, marts.join("lake.db")).expect("link file");
    let error = db
        .read(SourceSpec::Resource("messages".into()))
        .await
        .expect_err("linked file");
    assert!(!error.to_string().contains("secret"), "{error}");
    std::fs::remove_file(marts.join("lake.db")).expect("unlink");
    std::fs::remove_dir(&marts).expect("rmdir");
    std::os::unix::fs::symlink(outside.path(), &marts).expect("link folder");
    std::fs::rename(&secret, outside.path().join("lake.db")).expect("rename");
    let error = db
        .read(SourceSpec::Resource("messages".into()))
        .await
        .expect_err("linked folder");
    assert!(error.to_string().contains("symbolic link"), "{error}");
}

#[tokio::test]
async fn postgres_connections_pass_the_egress_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let public_only = ConnectorContext::new(
        dir.path().to_path_buf(),
        std::sync::Arc::new(workspace::EgressPolicy::default()),
    );
    let connection = |url: &str| ConnectionSpec {
        name: "wh".into(),
        kind: ConnectionType::Postgres,
        params: BTreeMap::from([("url".to_string(), url.to_string())]),
    };
    for url in [
        "postgres://postgres@127.0.0.1:5432/test",
        "postgres://postgres@localhost/test",
        "postgres://postgres@[::1]:5432/test",
        "postgres://postgres@169.254.169.254/test",
        "postgres://postgres@10.0.0.1/test",
    ] {
        let error = test_connection(&connection(url), &public_only)
            .await
            .expect_err(url);
        assert!(
            error.to_string().contains("INTEGRATOR_EGRESS_ALLOW"),
            "{url}: {error}"
        );
    }
    // A Unix socket is never a workspace's way in, whatever the policy.
    let error = test_connection(
        &connection("postgres://postgres@localhost/test?host=/var/run/postgresql"),
        &ConnectorContext::new(dir.path().to_path_buf(), local_services()),
    )
    .await
    .expect_err("socket");
    assert!(error.to_string().contains("Unix socket"), "{error}");
    // The server's own database stays refused inside an allowed range unless named.
    let own = workspace::EgressPolicy::from_allow_list("127.0.0.0/8")
        .expect("allow list")
        .with_database_endpoints(&["127.0.0.1:5432".parse().expect("addr")]);
    let error = test_connection(
        &connection("postgres://postgres@127.0.0.1:5432/test"),
        &ConnectorContext::new(dir.path().to_path_buf(), std::sync::Arc::new(own)),
    )
    .await
    .expect_err("own database");
    assert!(error.to_string().contains("own database"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Run markers: committed with the data, so a crash after the commit can be told apart.

async fn markers_commit_with_the_data(db: &TestDb) {
    use workspace::connectors::{find_marker, RunMarker};
    let spec = DestinationSpec {
        target: "marked".into(),
        mode: WriteMode::Append,
        key: vec![],
    };
    // A run that committed leaves its marker…
    let mut destination = open_destination(&db.conn, &spec, &db.ctx).await.unwrap();
    destination
        .write_batch(&[rec(json!({"id": 1})), rec(json!({"id": 2}))])
        .await
        .unwrap();
    destination.set_marker(RunMarker {
        token: "run-committed".into(),
        flow: "f".into(),
        rows_written: 2,
    });
    destination.commit().await.unwrap();
    assert_eq!(
        find_marker(&db.conn, &spec, "run-committed", &db.ctx)
            .await
            .unwrap(),
        Some(2)
    );
    // …a run rolled back leaves none, and nothing else.
    let mut destination = open_destination(&db.conn, &spec, &db.ctx).await.unwrap();
    destination
        .write_batch(&[rec(json!({"id": 3}))])
        .await
        .unwrap();
    destination.set_marker(RunMarker {
        token: "run-rolled-back".into(),
        flow: "f".into(),
        rows_written: 1,
    });
    destination.rollback().await.unwrap();
    assert_eq!(
        find_marker(&db.conn, &spec, "run-rolled-back", &db.ctx)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        find_marker(&db.conn, &spec, "never", &db.ctx)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        db.query("SELECT count(*) AS n FROM marked").await.unwrap()[0]["n"],
        json!(2)
    );
}
on_both!(
    sqlite_markers_commit_with_the_data,
    postgres_markers_commit_with_the_data,
    markers_commit_with_the_data
);
