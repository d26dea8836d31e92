//! The SQLite and PostgreSQL migrations build the same schema: the same tables with the same
//! columns, and, from 0010 on, the same migration numbers. (The PostgreSQL half runs when
//! `TEST_DATABASE_URL` is set, as in CI.)

use std::collections::BTreeSet;
use std::path::Path;

use sqlx::Connection;
use store::{DatabaseTarget, Store};

/// `table.column` for every column of every table the migrations made.
type Columns = BTreeSet<String>;

async fn sqlite_columns() -> Columns {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("schema.db");
    let store = Store::connect(&DatabaseTarget::Sqlite(path.clone()))
        .await
        .expect("migrate SQLite");
    store.close().await;
    let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open");
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.name, p.name FROM sqlite_master AS m, pragma_table_info(m.name) AS p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%'",
    )
    .fetch_all(&mut db)
    .await
    .expect("columns");
    rows.into_iter().map(|(t, c)| format!("{t}.{c}")).collect()
}

async fn postgres_columns(url: &str) -> Columns {
    let schema = format!("schemas_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&mut admin)
        .await
        .expect("drop");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut admin)
        .await
        .expect("create");
    let separator = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{separator}options=-c%20search_path%3D{schema}");
    let store = Store::connect(&DatabaseTarget::Postgres(scoped))
        .await
        .expect("migrate PostgreSQL");
    store.close().await;
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name NOT LIKE '\\_sqlx%'",
    )
    .bind(&schema)
    .fetch_all(&mut admin)
    .await
    .expect("columns");
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut admin)
        .await
        .expect("drop");
    rows.into_iter().map(|(t, c)| format!("{t}.{c}")).collect()
}

#[tokio::test]
async fn both_engines_have_the_same_tables_and_columns() {
    let sqlite = sqlite_columns().await;
    assert!(sqlite.contains("ws_runs.marker"), "{sqlite:?}");
    let Some(url) = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("note: TEST_DATABASE_URL is not set; only the SQLite schema was built");
        return;
    };
    let postgres = postgres_columns(&url).await;
    let only_sqlite: Vec<&String> = sqlite.difference(&postgres).collect();
    let only_postgres: Vec<&String> = postgres.difference(&sqlite).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "only in SQLite: {only_sqlite:?}; only in PostgreSQL: {only_postgres:?}"
    );
}

#[test]
fn new_migrations_have_the_same_number_on_both_engines() {
    let names = |engine: &str| -> BTreeSet<String> {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(engine);
        std::fs::read_dir(folder)
            .expect("migrations")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.as_str() >= "0010")
            .collect()
    };
    assert_eq!(names("sqlite"), names("postgres"));
}
