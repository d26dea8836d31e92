//! MCP stream events: kept per stream, read back in order after a given event, never across
//! streams, owned by the user who first claimed the stream, and forgotten by age — the same on SQLite and on PostgreSQL (when
//! `TEST_DATABASE_URL` is set, in a schema of its own).

use sqlx::Connection;
use store::{now_millis, DatabaseTarget, Store};

async fn check(store: &Store) {
    let a = "7d1c2d4e-stream-a";
    let b = "7d1c2d4e-session:common";
    let first = store
        .append_mcp_event(a, "{\"n\":1}")
        .await
        .expect("append");
    let other = store
        .append_mcp_event(b, "{\"n\":\"b\"}")
        .await
        .expect("append");
    let second = store
        .append_mcp_event(a, "{\"n\":2}")
        .await
        .expect("append");
    let third = store
        .append_mcp_event(a, "{\"n\":3}")
        .await
        .expect("append");
    assert!(
        first < other && other < second && second < third,
        "ids increase over all streams"
    );

    let after_first = store.mcp_events_after(a, first, 100).await.expect("read");
    let data: Vec<&str> = after_first.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(data, ["{\"n\":2}", "{\"n\":3}"], "only stream a, in order");
    let page = store.mcp_events_after(a, first, 1).await.expect("read");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, second);
    assert!(store
        .mcp_events_after(a, third, 100)
        .await
        .expect("read")
        .is_empty());

    assert_eq!(
        store.mcp_event(a, second).await.expect("read").as_deref(),
        Some("{\"n\":2}")
    );
    assert_eq!(
        store.mcp_event(b, second).await.expect("read"),
        None,
        "another stream's event"
    );
    assert_eq!(store.mcp_event(a, other).await.expect("read"), None);

    assert_eq!(
        store
            .forget_mcp_events(now_millis() - 60_000)
            .await
            .expect("forget"),
        0
    );
    assert_eq!(
        store
            .forget_mcp_events(now_millis() + 1)
            .await
            .expect("forget"),
        4
    );
    assert_eq!(store.mcp_event(a, second).await.expect("read"), None);
    assert_eq!(
        store.mcp_stream_owner(a).await.expect("owner"),
        None,
        "forgotten too"
    );
}

#[tokio::test]
async fn mcp_events_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::connect(&DatabaseTarget::Sqlite(dir.path().join("events.db")))
        .await
        .expect("open");
    check(&store).await;
    store.close().await;
}

#[tokio::test]
async fn mcp_events_on_postgres() {
    let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
        return;
    };
    let schema = format!("mcp_events_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&url).await.expect("connect");
    for statement in [
        format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
        format!("CREATE SCHEMA {schema}"),
    ] {
        sqlx::query(&statement)
            .execute(&mut admin)
            .await
            .expect("schema");
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{separator}options=-c%20search_path%3D{schema}");
    let store = Store::connect(&DatabaseTarget::Postgres(scoped))
        .await
        .expect("migrate");
    check(&store).await;
    store.close().await;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut admin)
        .await
        .expect("drop");
}
