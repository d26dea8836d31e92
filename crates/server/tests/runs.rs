//! Flow runs belong to the server (issue 24): a caller that goes away never leaves a run stuck,
//! a run shows its progress while it goes, `cancel run` stops it with the destination left
//! unchanged, the outcome is recorded exactly once (also after a crash right after the
//! destination committed), and programs read the workspace as JSON.

mod common;

use std::time::Duration;

use axum::extract::Query;
use axum::routing::get;
use axum::{Json, Router};
use common::{eventually, Data, Server, ALLOW_LOCAL_SERVICES};
use serde_json::{json, Value};

const PG: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(serde::Deserialize)]
struct Page {
    page: Option<u64>,
}

/// `/slow`: 6 pages of 2 records, 400 ms each. `/endless`: pages for ever, 300 ms each.
async fn start_api() -> String {
    let app = Router::new()
        .route(
            "/slow",
            get(|Query(page): Query<Page>| async move {
                tokio::time::sleep(Duration::from_millis(400)).await;
                let page = page.page.unwrap_or(1);
                let data: Vec<Value> = if page <= 6 {
                    (0..2).map(|i| json!({"id": page * 10 + i})).collect()
                } else {
                    Vec::new()
                };
                Json(json!({"data": data}))
            }),
        )
        .route(
            "/endless",
            get(|Query(page): Query<Page>| async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let page = page.page.unwrap_or(1);
                Json(json!({"data": [{"id": page * 10}, {"id": page * 10 + 1}]}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn host(server: &Server, key: &str, command: &str) -> (bool, String) {
    let (status, body) = server
        .tool(key, "host_cli", json!({"command": command}))
        .await;
    assert_eq!(status, 200, "{command}: {body}");
    let text = body["result"]
        .as_str()
        .or(body["error"].as_str())
        .unwrap_or_default()
        .to_string();
    (body["success"] == true, text)
}

async fn ok(server: &Server, key: &str, command: &str) -> String {
    let (ok, text) = host(server, key, command).await;
    assert!(ok, "{command}: {text}");
    text
}

/// The run id in "Run 17 of flow …".
fn run_id(text: &str) -> i64 {
    text.split_whitespace()
        .skip_while(|w| *w != "Run")
        .nth(1)
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no run id in {text}"))
}

async fn run_status(server: &Server, key: &str, id: i64) -> Value {
    let (status, body) = server.get(&format!("/workspace/runs/{id}"), key).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn wait_for_status(server: &Server, key: &str, id: i64, wanted: &str) -> Value {
    eventually(60, || async {
        let run = run_status(server, key, id).await;
        (run["status"] == wanted).then_some(run)
    })
    .await
    .unwrap_or_else(|| panic!("run {id} did not become {wanted}"))
}

async fn sqlite_tables(data: &Data, file: &str) -> Vec<String> {
    let path = data.tenant_dir("default").await.join(file);
    if !path.exists() {
        return Vec::new();
    }
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open sqlite");
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY name",
    )
    .fetch_all(&pool)
    .await
    .expect("tables");
    pool.close().await;
    names
}

#[tokio::test]
async fn a_caller_that_goes_away_never_leaves_a_run_stuck() {
    let api = start_api().await;
    let data = Data::new().await;
    let server = Server::start(&data, &[ALLOW_LOCAL_SERVICES]).await;
    let key = server.admin_key().to_string();
    ok(
        &server,
        &key,
        &format!(
            "create connection api type=http url={api} records=data pagination=page page_size=2"
        ),
    )
    .await;
    ok(
        &server,
        &key,
        "create connection lake type=sqlite path=lake.db",
    )
    .await;
    ok(
        &server,
        &key,
        "create flow slow from=api:/slow to=lake:slow",
    )
    .await;

    // A client that gives up after a second, as a proxy timeout would.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .expect("client");
    let gave_up = impatient
        .post(server.api("/tools/host_cli/execute"))
        .bearer_auth(&key)
        .json(&json!({"command": "run flow slow"}))
        .send()
        .await;
    assert!(gave_up.is_err(), "the client timed out");

    // The run goes on, and shows its progress within two seconds.
    let progress = eventually(2, || async {
        let (status, page) = server.get("/workspace/runs?flow=slow", &key).await;
        assert_eq!(status, 200, "{page}");
        let run = page["items"][0].clone();
        (run["status"] == "running" && run["pages_fetched"].as_i64() >= Some(1)).then_some(run)
    })
    .await
    .expect("progress is visible while the run goes");
    assert!(progress["step"].is_string(), "{progress}");
    let id = progress["id"].as_i64().expect("id");
    let shown = ok(&server, &key, &format!("show run {id}")).await;
    assert!(shown.contains("rows read so far"), "{shown}");
    assert!(
        shown.contains("page 1: GET"),
        "log lines as they happen: {shown}"
    );
    let finished = wait_for_status(&server, &key, id, "succeeded").await;
    assert_eq!(finished["rows_written"], 12, "{finished}");

    // An SSE chat that ran the flow and was closed while the tool ran: the run is not tied
    // to it either.
    let mut stream = server
        .stream(
            "/chat/stream",
            &key,
            &json!({"message": "run flow slow wait=60"}),
        )
        .await;
    let mut seen = String::new();
    while !seen.contains("\"tool_start\"") {
        match tokio::time::timeout(Duration::from_secs(10), stream.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("the stream ended before the tool started: {other:?} {seen}"),
        }
    }
    let second = eventually(10, || async {
        let (_, page) = server.get("/workspace/runs?flow=slow", &key).await;
        let run = page["items"][0].clone();
        (run["id"].as_i64() != Some(id)).then_some(run)
    })
    .await
    .expect("the chat started a run");
    drop(stream);
    let second_id = second["id"].as_i64().expect("id");
    wait_for_status(&server, &key, second_id, "succeeded").await;

    // And the flow runs again; a bounded wait answers with the id while it goes.
    let started = ok(&server, &key, "run flow slow wait=1").await;
    assert!(started.contains("is still running"), "{started}");
    assert!(started.contains("show run"), "{started}");
    let third = run_id(&started);
    let (ok_again, busy) = host(&server, &key, "run flow slow wait=0").await;
    assert!(!ok_again && busy.contains("already running"), "{busy}");
    ok(&server, &key, &format!("cancel run {third}")).await;
    wait_for_status(&server, &key, third, "cancelled").await;
}

#[tokio::test]
async fn cancel_stops_http_to_sqlite_and_leaves_the_destination_unchanged() {
    let api = start_api().await;
    let data = Data::new().await;
    let server = Server::start(&data, &[ALLOW_LOCAL_SERVICES]).await;
    let key = server.admin_key().to_string();
    let viewer = data
        .user_with_key("default", "watcher@acme.test", "viewer")
        .await;
    ok(
        &server,
        &key,
        &format!(
            "create connection api type=http url={api} records=data pagination=page page_size=2"
        ),
    )
    .await;
    ok(
        &server,
        &key,
        "create connection lake type=sqlite path=lake.db",
    )
    .await;
    ok(
        &server,
        &key,
        "create flow forever from=api:/endless to=lake:forever",
    )
    .await;
    let started = ok(&server, &key, "run flow forever wait=0").await;
    let id = run_id(&started);
    eventually(10, || async {
        let run = run_status(&server, &key, id).await;
        (run["rows_read"].as_i64() >= Some(4)).then_some(())
    })
    .await
    .expect("the run reads pages");

    let (allowed, refused) = host(&server, &viewer, &format!("cancel run {id}")).await;
    assert!(!allowed, "a viewer may not cancel: {refused}");
    let cancelled = ok(&server, &key, &format!("cancel run {id}")).await;
    assert!(cancelled.contains("Cancelled run"), "{cancelled}");
    let run = run_status(&server, &key, id).await;
    assert_eq!(run["status"], "cancelled", "{run}");
    assert_eq!(run["rows_written"], 0, "{run}");
    assert!(
        run["error"]
            .as_str()
            .is_some_and(|e| e.contains("admin@localhost")),
        "who cancelled it: {run}"
    );
    assert!(
        sqlite_tables(&data, "lake.db").await.is_empty(),
        "nothing was written"
    );
    let (again, text) = host(&server, &key, &format!("cancel run {id}")).await;
    assert!(!again && text.contains("not running"), "{text}");
    // The flow is free again.
    let next = run_id(&ok(&server, &key, "run flow forever wait=0").await);
    ok(&server, &key, &format!("cancel run {next}")).await;
}

#[tokio::test]
async fn cancel_stops_file_to_postgres_and_postgres_to_file() {
    let data = Data::new().await;
    let server = Server::start(&data, &[ALLOW_LOCAL_SERVICES]).await;
    let key = server.admin_key().to_string();
    let schema = format!("runs_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(PG)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .expect("schema");
    for statement in [
        format!("CREATE TABLE {schema}.kept (id BIGINT)"),
        format!("INSERT INTO {schema}.kept VALUES (1), (2)"),
    ] {
        sqlx::query(&statement).execute(&pool).await.expect("setup");
    }
    let url = format!("{PG}?options=-c%20search_path%3D{schema}");
    ok(
        &server,
        &key,
        &format!("create connection wh type=postgres url=\"{url}\""),
    )
    .await;
    ok(
        &server,
        &key,
        "create connection files type=file path=io format=csv",
    )
    .await;
    let folder = data.tenant_dir("default").await.join("io");
    std::fs::create_dir_all(&folder).expect("folder");
    std::fs::write(folder.join("in.csv"), "id\n7\n8\n").expect("csv");
    std::fs::write(folder.join("out.csv"), "id\nbefore\n").expect("csv");

    // file → postgres, held at the destination's lock (the table is locked by another
    // session): the run waits, says so, and a cancel stops it with the table unchanged.
    ok(
        &server,
        &key,
        "create flow load from=files:in.csv to=wh:kept mode=replace",
    )
    .await;
    let mut locker = pool.begin().await.expect("begin");
    sqlx::query(&format!(
        "LOCK TABLE {schema}.kept IN ACCESS EXCLUSIVE MODE"
    ))
    .execute(&mut *locker)
    .await
    .expect("lock");
    let id = run_id(&ok(&server, &key, "run flow load wait=0").await);
    eventually(10, || async {
        let run = run_status(&server, &key, id).await;
        (run["step"] == "waiting for the destination database lock").then_some(())
    })
    .await
    .expect("the wait on the lock is shown as such");
    let cancelled = ok(&server, &key, &format!("cancel run {id}")).await;
    assert!(cancelled.contains("Cancelled"), "{cancelled}");
    locker.rollback().await.expect("unlock");
    let kept: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {schema}.kept"))
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(kept, 2, "replace did not empty the table");

    // postgres → file, a slow query: cancelled mid-stream, the file is as it was.
    ok(
        &server,
        &key,
        "create flow export from=wh query=\"SELECT g AS id, pg_sleep(0.005) AS s FROM generate_series(1, 100000) AS g\" to=files:out.csv mode=replace",
    )
    .await;
    let id = run_id(&ok(&server, &key, "run flow export wait=0").await);
    eventually(10, || async {
        let run = run_status(&server, &key, id).await;
        (run["step"]
            .as_str()
            .is_some_and(|s| s.starts_with("reading")))
        .then_some(())
    })
    .await
    .expect("the export reads its query");
    let cancelled = ok(&server, &key, &format!("cancel run {id}")).await;
    assert!(cancelled.contains("Cancelled"), "{cancelled}");
    assert_eq!(
        std::fs::read_to_string(folder.join("out.csv")).expect("csv"),
        "id\nbefore\n"
    );
    let leftovers: Vec<String> = std::fs::read_dir(&folder)
        .expect("folder")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary file is left: {leftovers:?}"
    );
    let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await;
    pool.close().await;
}

#[tokio::test]
async fn a_crash_right_after_the_commit_is_recorded_as_succeeded() {
    let data = Data::new().await;
    let master = (
        "INTEGRATOR_MASTER_KEY",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    );
    let crashing = Server::start_process(
        &data,
        &[master, ("INTEGRATOR_TEST_CRASH_AFTER_COMMIT", "1")],
    )
    .await;
    let key = crashing.admin_key().to_string();
    ok(
        &crashing,
        &key,
        "create connection files type=file path=io format=csv",
    )
    .await;
    ok(
        &crashing,
        &key,
        "create connection lake type=sqlite path=lake.db",
    )
    .await;
    let folder = data.tenant_dir("default").await.join("io");
    std::fs::create_dir_all(&folder).expect("folder");
    std::fs::write(folder.join("in.csv"), "id,name\n1,a\n2,b\n3,c\n").expect("csv");
    ok(
        &crashing,
        &key,
        "create flow load from=files:in.csv to=lake:loaded mode=append",
    )
    .await;
    ok(
        &crashing,
        &key,
        "create flow export from=lake:loaded to=files:out.csv",
    )
    .await;
    // The server dies between the destination's commit and the run's record.
    let (_, answer) = crashing
        .client
        .post(crashing.api("/tools/host_cli/execute"))
        .bearer_auth(&key)
        .json(&json!({"command": "run flow load"}))
        .send()
        .await
        .map(|_| (true, String::new()))
        .unwrap_or((false, String::new()));
    assert!(answer.is_empty());
    crashing.kill().await;

    // The server restarted on its data dir settles the run from its marker.
    let server = Server::start_process(&data, &[master]).await;
    let run = eventually(40, || async {
        let (_, page) = server.get("/workspace/runs?flow=load", &key).await;
        let run = page["items"][0].clone();
        (run["status"] != "running").then_some(run)
    })
    .await
    .expect("the run is settled");
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["rows_written"], 3, "{run}");
    let id = run["id"].as_i64().expect("id");
    let detail = run_status(&server, &key, id).await;
    let log = detail["log"].to_string();
    assert!(log.contains("marker"), "{log}");
    // A retry would have duplicated the rows; the flow runs on from the truth.
    let rows: i64 = {
        let path = data.tenant_dir("default").await.join("lake.db");
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("open");
        let n = sqlx::query_scalar("SELECT count(*) FROM loaded")
            .fetch_one(&pool)
            .await
            .expect("count");
        pool.close().await;
        n
    };
    assert_eq!(rows, 3);
    // A file output committed before a crash is settled the same way, and its marker
    // file is cleaned up.
    server.stop().await;
    let crashing = Server::start_process(
        &data,
        &[master, ("INTEGRATOR_TEST_CRASH_AFTER_COMMIT", "1")],
    )
    .await;
    let _ = crashing
        .client
        .post(crashing.api("/tools/host_cli/execute"))
        .bearer_auth(&key)
        .json(&json!({"command": "run flow export"}))
        .send()
        .await;
    crashing.kill().await;
    let server = Server::start_process(&data, &[master]).await;
    let run = eventually(40, || async {
        let (_, page) = server.get("/workspace/runs?flow=export", &key).await;
        let run = page["items"][0].clone();
        (run["status"] != "running").then_some(run)
    })
    .await
    .expect("the export is settled");
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(folder.join("out.csv").exists());
    let hidden: Vec<String> = std::fs::read_dir(&folder)
        .expect("folder")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

#[tokio::test]
async fn the_workspace_reads_as_json_with_pages_roles_and_tenants() {
    let api = start_api().await;
    let data = Data::new().await;
    let server = Server::start(&data, &[ALLOW_LOCAL_SERVICES]).await;
    let key = server.admin_key().to_string();
    let viewer = data
        .user_with_key("default", "viewer@acme.test", "viewer")
        .await;
    let other = data.user_with_key("globex", "x@globex.test", "admin").await;
    ok(
        &server,
        &key,
        &format!(
            "create connection api type=http url=\"{api}?api_key=SECRET-123456\" records=data"
        ),
    )
    .await;
    ok(
        &server,
        &key,
        "create connection lake type=sqlite path=lake.db",
    )
    .await;
    ok(&server, &key, "create flow a from=api:/slow to=lake:a").await;
    ok(
        &server,
        &key,
        "create flow b from=api:/slow to=lake:b mode=upsert key=id",
    )
    .await;
    ok(&server, &key, "schedule flow b every=1h").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let done = ok(&server, &key, "run flow a").await;
        ids.push(run_id(&done));
    }

    // Runs, newest first, a page at a time.
    let (status, first) = server.get("/workspace/runs?flow=a&limit=2", &viewer).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(first["items"][0]["id"], ids[2]);
    assert_eq!(first["has_more"], true);
    let cursor = first["next_cursor"].as_str().expect("cursor");
    let (_, second) = server
        .get(
            &format!("/workspace/runs?flow=a&limit=2&cursor={cursor}"),
            &viewer,
        )
        .await;
    assert_eq!(second["items"][0]["id"], ids[0]);
    assert_eq!(second["has_more"], false);
    assert!(second["next_cursor"].is_null());
    let run = run_status(&server, &viewer, ids[0]).await;
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["started_by"], "admin@localhost");
    assert!(
        run["log"].as_array().is_some_and(|l| !l.is_empty()),
        "{run}"
    );

    // Flows, connections (masked) and schedules.
    let (_, flows) = server.get("/workspace/flows?limit=1", &viewer).await;
    assert_eq!(flows["items"][0]["name"], "a");
    assert_eq!(flows["has_more"], true);
    let (_, flow) = server.get("/workspace/flows/b", &viewer).await;
    assert_eq!(flow["mode"], "upsert");
    assert_eq!(flow["key"], json!(["id"]));
    assert_eq!(flow["schedule"]["every_seconds"], 3600);
    let (_, connections) = server.get("/workspace/connections", &viewer).await;
    let text = connections.to_string();
    assert!(!text.contains("SECRET-123456"), "{text}");
    assert!(text.contains("api_key=***"), "{text}");
    let (_, connection) = server.get("/workspace/connections/lake", &viewer).await;
    assert_eq!(connection["type"], "sqlite");
    let (_, schedules) = server.get("/workspace/schedules", &viewer).await;
    assert_eq!(schedules["items"][0]["flow"], "b");

    // Another tenant sees none of it; bad input is a clear 400.
    let (status, _) = server
        .get(&format!("/workspace/runs/{}", ids[0]), &other)
        .await;
    assert_eq!(status, 404);
    let (status, _) = server.get("/workspace/flows/a", &other).await;
    assert_eq!(status, 404);
    let (_, empty) = server.get("/workspace/runs", &other).await;
    assert_eq!(empty["items"], json!([]));
    for bad in [
        "/workspace/runs?limit=0",
        "/workspace/runs?limit=x",
        "/workspace/runs?cursor=abc",
    ] {
        let (status, body) = server.get(bad, &viewer).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

/// The `text` transcripts of a doc page: each `> command` with the lines it printed.
fn transcripts(doc: &str) -> Vec<(String, Vec<String>)> {
    let mut found: Vec<(String, Vec<String>)> = Vec::new();
    let mut inside = false;
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            inside = line.trim() == "```text";
            continue;
        }
        if !inside {
            continue;
        }
        match line.strip_prefix("> ") {
            Some(command) => found.push((command.to_string(), Vec::new())),
            None => {
                if let Some((_, expected)) = found.last_mut() {
                    expected.push(line.to_string());
                }
            }
        }
    }
    found
}

/// Whether `actual` reads as `expected`, where a line `…` stands for any lines and `…`
/// inside a line for any text.
fn reads_as(expected: &[String], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if first.trim() == "…" => {
            (0..=actual.len()).any(|skip| reads_as(rest, &actual[skip..]))
        }
        Some((first, rest)) => actual
            .split_first()
            .is_some_and(|(line, more)| line_reads_as(first, line) && reads_as(rest, more)),
    }
}

fn line_reads_as(expected: &str, actual: &str) -> bool {
    let parts: Vec<&str> = expected.trim_end().split('…').collect();
    let actual = actual.trim_end();
    let mut rest = actual;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(after) = rest.strip_prefix(part) else {
                return false;
            };
            rest = after;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else {
                return false;
            };
            rest = &rest[at + part.len()..];
        }
    }
    rest.is_empty()
}

/// The API the docs' transcripts use: `/v1/orders` (five orders, paged) and `/v1/history`
/// (pages for ever, 600 ms each).
async fn documented_api() -> String {
    let app = Router::new()
        .route(
            "/v1/orders",
            get(|Query(page): Query<DocPage>| async move {
                let size = page.per_page.unwrap_or(100);
                let start = (page.page.unwrap_or(1) - 1) * size;
                let data: Vec<Value> = (1..=5u64)
                    .skip(start as usize)
                    .take(size as usize)
                    .map(|id| json!({"id": id, "total": id * 10}))
                    .collect();
                Json(json!({"data": data}))
            }),
        )
        .route(
            "/v1/history",
            get(|Query(page): Query<DocPage>| async move {
                tokio::time::sleep(Duration::from_millis(600)).await;
                let page = page.page.unwrap_or(1);
                Json(json!({"data": [{"id": page * 10}, {"id": page * 10 + 1}]}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[derive(serde::Deserialize)]
struct DocPage {
    page: Option<u64>,
    per_page: Option<u64>,
}

/// Runs a page's transcripts in order on a fresh server (after `setup`) and checks each
/// command printed what the page shows.
async fn check_transcripts(page: &str, setup: &[&str]) {
    const DOCUMENTED_API: &str = "https://api.example.com";
    let path = format!("{}/../../docs/{page}", env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(&path).expect("the doc page");
    let steps = transcripts(&doc);
    assert!(!steps.is_empty(), "{page} has transcripts");
    let api = documented_api().await;
    let data = Data::new().await;
    let server = Server::start(&data, &[ALLOW_LOCAL_SERVICES]).await;
    let key = server.admin_key().to_string();
    for command in setup {
        ok(&server, &key, &command.replace(DOCUMENTED_API, &api)).await;
    }
    for (command, expected) in steps {
        let (_, printed) = host(&server, &key, &command.replace(DOCUMENTED_API, &api)).await;
        let printed = printed.replace(&api, DOCUMENTED_API);
        let lines: Vec<&str> = printed.lines().collect();
        assert!(
            reads_as(&expected, &lines),
            "{page}: `{command}` printed\n{printed}\n\nbut the page shows\n{}",
            expected.join("\n")
        );
    }
}

#[tokio::test]
async fn the_documented_run_commands_print_what_the_docs_show() {
    check_transcripts("running-flows-run-history.md", &[]).await;
    check_transcripts(
        "workspace-commands.md",
        &[
            "create connection api type=http url=https://api.example.com/v1 records=data pagination=page page_size=2",
            "create connection lake type=sqlite path=lake.db",
            "create flow orders from=api:/orders to=lake:orders mode=replace",
            "create flow history from=api:/history to=lake:history",
        ],
    )
    .await;
}

#[test]
fn transcripts_match_with_wildcards() {
    let expected: Vec<String> = ["a …", "…", "z"].iter().map(|s| s.to_string()).collect();
    assert!(reads_as(&expected, &["a 1", "x", "y", "z"]));
    assert!(reads_as(&expected, &["a 1", "z"]));
    assert!(!reads_as(&expected, &["b 1", "z"]));
    assert!(line_reads_as(
        "Run … in ….",
        "Run 1 of flow 'x' succeeded in 3 ms."
    ));
    assert!(!line_reads_as("Run … in ….", "Run 1 failed"));
}
