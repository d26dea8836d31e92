//! The workspace end to end: a local HTTP API paged into SQLite and PostgreSQL (upsert, replace,
//! append), files both ways, schedules across a restart, roles, tenants, injection attempts,
//! failing runs, templates.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use common::{eventually, Data, Server, ALLOW_LOCAL_SERVICES};
use serde_json::{json, Value};

#[derive(Clone, Default)]
struct Api {
    broken_calls: Arc<AtomicUsize>,
}

#[derive(serde::Deserialize)]
struct Page {
    page: Option<usize>,
    per_page: Option<usize>,
}

/// Five orders with nested customers, served two per page.
async fn orders(Query(page): Query<Page>) -> Json<Value> {
    let all: Vec<Value> = (1..=5)
        .map(|id| json!({"id": id, "total": id as f64 * 10.5, "paid": id % 2 == 0, "customer": {"name": format!("Customer {id}"), "tier": "gold"}, "tags": ["a", "b"]}))
        .collect();
    let size = page.per_page.unwrap_or(100);
    let start = (page.page.unwrap_or(1) - 1) * size;
    let items: Vec<Value> = all.into_iter().skip(start).take(size).collect();
    Json(json!({"data": items}))
}

/// Page 1 works, page 2 fails: a run that breaks half way.
async fn broken(State(api): State<Api>, Query(page): Query<Page>) -> impl IntoResponse {
    api.broken_calls.fetch_add(1, Ordering::SeqCst);
    if page.page.unwrap_or(1) == 1 {
        (
            StatusCode::OK,
            Json(json!({"data": [{"id": 100, "total": 1.0}, {"id": 101, "total": 2.0}]})),
        )
            .into_response()
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response()
    }
}

async fn start_api() -> String {
    let app = Router::new()
        .route(
            "/",
            get(|| async { Json(json!({"service": "orders api"})) }),
        )
        .route("/orders", get(orders))
        .route("/broken", get(broken))
        .route(
            "/stuck",
            get(|| async {
                tokio::time::sleep(std::time::Duration::from_secs(120)).await;
                Json(json!({"data": []}))
            }),
        )
        .with_state(Api::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn cli(server: &Server, key: &str, command: &str) -> Value {
    let (status, body) = server
        .tool(key, "host_cli", json!({"command": command}))
        .await;
    assert_eq!(status, 200, "{command}: {body}");
    body
}

async fn ok(server: &Server, key: &str, command: &str) -> String {
    let body = cli(server, key, command).await;
    assert_eq!(body["success"], true, "{command}: {body}");
    body["result"].as_str().unwrap_or_default().to_string()
}

async fn sqlite_count(data: &Data, file: &str, table: &str) -> i64 {
    let path = data.tenant_dir("default").await.join(file);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open sqlite");
    let count: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{table}\""))
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    count
}

const PG: &str = "postgres://postgres@127.0.0.1:5432/test";

async fn pg_schema() -> (String, String) {
    let schema = format!("ws_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(PG)
        .await
        .expect("connect to PostgreSQL on 127.0.0.1:5432");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .expect("schema");
    pool.close().await;
    let url = format!("{PG}?options=-c%20search_path%3D{schema}");
    (schema, url)
}

async fn pg_count(schema: &str, table: &str) -> i64 {
    let pool = sqlx::PgPool::connect(PG).await.expect("connect");
    let count: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {schema}.\"{table}\""))
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    count
}

#[tokio::test]
async fn a_paged_rest_api_moves_into_sqlite_and_postgres_with_every_write_mode() {
    let api = start_api().await;
    let data = Data::new().await;
    let server = Server::start(&data, &[ALLOW_LOCAL_SERVICES]).await;
    let key = server.admin_key();
    ok(
        &server,
        key,
        &format!(
            "create connection api type=http url={api} records=data pagination=page page_size=2"
        ),
    )
    .await;
    ok(
        &server,
        key,
        "create connection lake type=sqlite path=lake.db",
    )
    .await;
    ok(
        &server,
        key,
        "create flow orders from=api:/orders to=lake:orders mode=upsert key=id",
    )
    .await;
    let run = ok(&server, key, "run flow orders").await;
    assert!(
        run.contains("succeeded: 5 rows read, 5 rows written"),
        "{run}"
    );
    ok(&server, key, "run flow orders").await;
    assert_eq!(
        sqlite_count(&data, "lake.db", "orders").await,
        5,
        "upsert twice: no duplicates"
    );

    ok(
        &server,
        key,
        "create flow appended from=api:/orders to=lake:log mode=append",
    )
    .await;
    ok(&server, key, "run flow appended").await;
    ok(&server, key, "run flow appended").await;
    assert_eq!(
        sqlite_count(&data, "lake.db", "log").await,
        10,
        "append adds"
    );
    ok(
        &server,
        key,
        "create flow replaced from=api:/orders to=lake:log mode=replace",
    )
    .await;
    ok(&server, key, "run flow replaced").await;
    assert_eq!(
        sqlite_count(&data, "lake.db", "log").await,
        5,
        "replace empties first"
    );

    let (schema, url) = pg_schema().await;
    ok(
        &server,
        key,
        &format!("create connection wh type=postgres url=\"{url}\""),
    )
    .await;
    let tested = ok(&server, key, "test connection wh").await;
    assert!(tested.contains("works"), "{tested}");
    ok(&server, key, "create flow to_pg from=api:/orders to=wh:orders mode=upsert key=id map=\"id,customer.name:customer_name,total\"").await;
    ok(&server, key, "run flow to_pg").await;
    ok(&server, key, "run flow to_pg").await;
    assert_eq!(
        pg_count(&schema, "orders").await,
        5,
        "upsert into PostgreSQL twice: no duplicates"
    );
    ok(
        &server,
        key,
        "create flow pg_append from=api:/orders to=wh:events mode=append",
    )
    .await;
    ok(&server, key, "run flow pg_append").await;
    ok(&server, key, "run flow pg_append").await;
    assert_eq!(pg_count(&schema, "events").await, 10);
    ok(
        &server,
        key,
        "create flow pg_replace from=api:/orders to=wh:events mode=replace",
    )
    .await;
    ok(&server, key, "run flow pg_replace").await;
    assert_eq!(pg_count(&schema, "events").await, 5);

    let runs = ok(&server, key, "list runs to_pg").await;
    assert!(
        runs.contains("succeeded") && runs.lines().count() >= 4,
        "{runs}"
    );
    let run_id = runs
        .lines()
        .nth(3)
        .and_then(|l| l.split_whitespace().next())
        .expect("a run id")
        .to_string();
    let shown = ok(&server, key, &format!("show run {run_id}")).await;
    assert!(
        shown.contains("rows written: 5") && shown.contains("log:"),
        "{shown}"
    );
    // One log line per page requested: 2 + 2 + 1 records (the short page is the last).
    for page in 1..=3 {
        assert!(
            shown.contains(&format!("page {page}: GET ")),
            "page {page} is not in the run log: {shown}"
        );
    }
    assert!(shown.contains("with 2 records"), "{shown}");
    let listed = ok(&server, key, "list connections").await;
    assert!(
        listed.contains("api") && listed.contains("postgres"),
        "{listed}"
    );
}

#[tokio::test]
async fn files_move_both_ways_and_never_leave_the_tenant_folder() {
    let api = start_api().await;
    let data = Data::new().await;
    let server = Server::start(&data, &[ALLOW_LOCAL_SERVICES]).await;
    let key = server.admin_key();
    ok(
        &server,
        key,
        &format!("create connection api type=http url={api} records=data"),
    )
    .await;
    ok(
        &server,
        key,
        "create connection lake type=sqlite path=lake.db",
    )
    .await;
    for format in ["csv", "json", "ndjson"] {
        ok(
            &server,
            key,
            &format!("create connection out_{format} type=file path=exports format={format}"),
        )
        .await;
        ok(&server, key, &format!("create flow export_{format} from=api:/orders to=out_{format}:orders.{format} mode=replace")).await;
        let run = ok(&server, key, &format!("run flow export_{format}")).await;
        assert!(run.contains("5 rows written"), "{run}");
        assert!(data
            .tenant_dir("default")
            .await
            .join(format!("exports/orders.{format}"))
            .exists());
        ok(&server, key, &format!("create flow import_{format} from=out_{format}:orders.{format} to=lake:from_{format} mode=replace")).await;
        let run = ok(&server, key, &format!("run flow import_{format}")).await;
        assert!(
            run.contains("5 rows read, 5 rows written"),
            "{format}: {run}"
        );
        assert_eq!(
            sqlite_count(&data, "lake.db", &format!("from_{format}")).await,
            5
        );
    }
    let csv = std::fs::read_to_string(data.tenant_dir("default").await.join("exports/orders.csv"))
        .expect("csv");
    assert!(
        csv.lines()
            .next()
            .unwrap_or_default()
            .contains("customer.name"),
        "flattened columns: {csv}"
    );

    for (command, expected) in [
        (
            "create connection evil type=sqlite path=../../escape.db",
            "relative",
        ),
        (
            "create connection evil type=file path=/etc format=csv",
            "relative",
        ),
        (
            "create flow evil from=api:/orders to=out_csv:../../escape.csv",
            "must not contain",
        ),
    ] {
        let body = cli(&server, key, command).await;
        assert_eq!(body["success"], false, "{command}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains(expected),
            "{command}: {body}"
        );
    }
}

#[tokio::test]
async fn a_failing_run_leaves_the_destination_unchanged_and_records_the_error() {
    let api = start_api().await;
    let data = Data::new().await;
    let server = Server::start(&data, &[ALLOW_LOCAL_SERVICES]).await;
    let key = server.admin_key();
    ok(&server, key, &format!("create connection api type=http url={api} records=data pagination=page page_size=2 retries=0")).await;
    ok(
        &server,
        key,
        "create connection lake type=sqlite path=lake.db",
    )
    .await;
    ok(
        &server,
        key,
        "create flow good from=api:/orders to=lake:orders mode=replace",
    )
    .await;
    ok(&server, key, "run flow good").await;
    ok(
        &server,
        key,
        "create flow bad from=api:/broken to=lake:orders mode=replace",
    )
    .await;
    let body = cli(&server, key, "run flow bad").await;
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["code"], "tool_failed");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("failed"),
        "{body}"
    );
    assert_eq!(
        sqlite_count(&data, "lake.db", "orders").await,
        5,
        "the replace was rolled back"
    );
    let runs = ok(&server, key, "list runs bad").await;
    assert!(runs.contains("failed"), "{runs}");
    let run_id = runs
        .lines()
        .find(|line| line.contains("failed"))
        .and_then(|line| line.split_whitespace().next())
        .expect("the failed run's id")
        .to_string();
    let shown = ok(&server, key, &format!("show run {run_id}")).await;
    assert!(
        shown.contains("page 1: GET")
            && shown
                .lines()
                .any(|line| line.contains("page 2: GET") && line.ends_with("failed")),
        "the run log names the page that failed: {shown}"
    );
}

#[tokio::test]
async fn schedules_run_on_their_interval_and_again_after_a_restart() {
    let api = start_api().await;
    let data = Data::new().await;
    let server = Server::start(&data, &[ALLOW_LOCAL_SERVICES]).await;
    let key = server.admin_key().to_string();
    ok(
        &server,
        &key,
        &format!("create connection api type=http url={api} records=data"),
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
        "create flow ticking from=api:/orders to=lake:ticks mode=append",
    )
    .await;
    let scheduled = ok(&server, &key, "schedule flow ticking every=1s").await;
    assert!(scheduled.contains("every 1s"), "{scheduled}");
    assert!(eventually(20, || async {
        (scheduled_runs(&server, &key).await >= 2).then_some(())
    })
    .await
    .is_some());
    let listed = ok(&server, &key, "list schedules").await;
    assert!(listed.contains("ticking"), "{listed}");
    server.stop().await;
    let before = sqlite_count(&data, "lake.db", "ticks").await;

    let server = Server::start(&data, &[ALLOW_LOCAL_SERVICES]).await;
    assert!(
        eventually(20, || async {
            (sqlite_count(&data, "lake.db", "ticks").await > before).then_some(())
        })
        .await
        .is_some(),
        "the schedule survives the restart"
    );
    ok(&server, &key, "unschedule flow ticking").await;
    let body = cli(&server, &key, "unschedule flow ticking").await;
    assert_eq!(body["success"], false);
}

/// A run whose server is killed mid-run does not stay `running`: the next server on an SQLite
/// data dir records it as failed at start; on PostgreSQL another replica does so once the
/// run's lease has run out, without any restart, and the flow can run again.
#[tokio::test]
async fn a_run_whose_server_is_killed_is_recorded_as_failed() {
    let api = start_api().await;
    let data = Data::new().await;
    // Replicas share the master key that encrypts connection secrets.
    let shared = [
        (
            "INTEGRATOR_MASTER_KEY",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        ),
        ALLOW_LOCAL_SERVICES,
    ];
    let server = Server::start_process(&data, &shared).await;
    let key = server.admin_key().to_string();
    ok(
        &server,
        &key,
        &format!("create connection api type=http url={api} records=data timeout=5m"),
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
        "create flow stuck from=api:/stuck to=lake:stuck mode=append",
    )
    .await;
    let running = {
        let client = reqwest::Client::new();
        let url = server.api("/tools/host_cli/execute");
        let key = key.clone();
        tokio::spawn(async move {
            let _ = client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"command": "run flow stuck"}))
                .send()
                .await;
        })
    };
    assert!(
        eventually(10, || async {
            ok(&server, &key, "list runs stuck")
                .await
                .contains("running")
                .then_some(())
        })
        .await
        .is_some(),
        "the run is in progress"
    );
    let replica = data.replica();
    server.kill().await;
    running.abort();

    let survivor = match &replica {
        Some(replica) => Server::start_process(replica, &shared).await,
        None => Server::start_process(&data, &shared).await,
    };
    let failed = eventually(30, || async {
        let runs = ok(&survivor, &key, "list runs stuck").await;
        runs.contains("failed").then_some(runs)
    })
    .await
    .expect("the killed server's run is recorded as failed");
    assert!(!failed.contains("running"), "{failed}");
    let run_id = failed
        .lines()
        .find(|line| line.contains("failed"))
        .and_then(|line| line.split_whitespace().next())
        .expect("the run's id")
        .to_string();
    let shown = ok(&survivor, &key, &format!("show run {run_id}")).await;
    assert!(
        shown.contains("the server running it stopped during the run"),
        "{shown}"
    );
    let rerun = cli(&survivor, &key, "show flow stuck").await;
    assert!(
        rerun["result"]
            .as_str()
            .unwrap_or_default()
            .contains("failed"),
        "the flow's last run is the failed one: {rerun}"
    );
    let again = {
        let client = reqwest::Client::new();
        let url = survivor.api("/tools/host_cli/execute");
        let key = key.clone();
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"command": "run flow stuck"}))
                .send()
                .await
                .ok()
        })
    };
    assert!(
        eventually(10, || async {
            let runs = ok(&survivor, &key, "list runs stuck").await;
            (runs.contains("running") && runs.contains("failed")).then_some(())
        })
        .await
        .is_some(),
        "the flow runs again"
    );
    again.abort();
}

async fn scheduled_runs(server: &Server, key: &str) -> usize {
    let body = server
        .tool(key, "host_cli", json!({"command": "list runs ticking"}))
        .await
        .1;
    body["result"]
        .as_str()
        .unwrap_or_default()
        .matches("schedule")
        .count()
}

#[tokio::test]
async fn viewers_read_only_tenants_isolated_injections_refused() {
    let api = start_api().await;
    let data = Data::new().await;
    let server = Server::start(&data, &[ALLOW_LOCAL_SERVICES]).await;
    let admin = server.admin_key().to_string();
    ok(
        &server,
        &admin,
        &format!(
            "create connection api type=http url={api} header.X-Api-Key=s3cr3t-value records=data"
        ),
    )
    .await;
    let shown = ok(&server, &admin, "show connection api").await;
    assert!(
        shown.contains("header.X-Api-Key = ***") && !shown.contains("s3cr3t"),
        "{shown}"
    );

    data.cli_ok(&[
        "user",
        "create",
        "viewer@localhost",
        "--tenant",
        "default",
        "--role",
        "viewer",
    ])
    .await;
    let viewer = data.cli_ok(&["key", "create", "viewer@localhost"]).await;
    assert!(ok(&server, &viewer, "list connections")
        .await
        .contains("api"));
    assert!(ok(&server, &viewer, "test connection api")
        .await
        .contains("works"));
    for command in [
        "create connection x type=sqlite path=x.db",
        "delete connection api",
        "create flow f from=api:/orders to=api:x",
        "run flow f",
        "schedule flow f every=1h",
    ] {
        let body = cli(&server, &viewer, command).await;
        assert_eq!(
            (body["success"].as_bool(), body["code"].as_str()),
            (Some(false), Some("permission_denied")),
            "{command}: {body}"
        );
    }
    let (_, body) = server
        .tool(&viewer, "import_template", json!({"template_id": 1}))
        .await;
    assert_eq!(body["code"], "permission_denied");
    let (_, body) = server
        .tool(
            &viewer,
            "import_template",
            json!({"template_id": 1, "preview": true}),
        )
        .await;
    assert_eq!(body["success"], true, "viewers may preview: {body}");

    let other = data
        .user_with_key("globex", "ops@globex.test", "admin")
        .await;
    assert!(!ok(&server, &other, "list connections")
        .await
        .contains("api"));
    let body = cli(&server, &other, "show connection api").await;
    assert_eq!(body["success"], false);
    assert!(body["error"]
        .as_str()
        .unwrap_or_default()
        .contains("does not exist"));

    for command in [
        "list connections; rm -rf /",
        "list connections && cat /etc/passwd",
        "show connection $(whoami)",
        "show connection `id`",
        "run flow \"x$(reboot)\"",
        "list flows | sh",
    ] {
        let body = cli(&server, &admin, command).await;
        assert_eq!(
            (body["success"].as_bool(), body["code"].as_str()),
            (Some(false), Some("invalid_command")),
            "{command}: {body}"
        );
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("never run in a shell"),
            "{command}: {body}"
        );
    }
    let body = cli(&server, &admin, "drop table users").await;
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("Valid commands"),
        "{body}"
    );
}

#[tokio::test]
async fn the_printed_fill_in_commands_work_once_the_values_are_put_in() {
    let data = Data::new().await;
    let server = Server::start(&data, &[ALLOW_LOCAL_SERVICES]).await;
    let key = server.admin_key();
    let (_, imported) = server
        .tool(key, "import_template", json!({"template_id": 1}))
        .await;
    assert_eq!(imported["success"], true, "{imported}");
    let text = imported["result"].as_str().unwrap_or_default();
    let commands: Vec<&str> = text
        .lines()
        .filter_map(|line| line.split_once("Fill its placeholders before use: "))
        .map(|(_, command)| command)
        .collect();
    assert_eq!(commands.len(), 2, "one per connection: {text}");
    let values = [
        ("<API_BASE_URL>", "https://api.example.com/v1"),
        ("<API_TOKEN>", "t0ken"),
        ("<PG_USER>", "postgres"),
        ("<PG_HOST>", "127.0.0.1"),
        ("<PG_DATABASE>", "test"),
        ("<PG_PASSWORD>", "s3cret"),
    ];
    for command in commands {
        assert!(!command.contains("KEY="), "{command}");
        let filled = values
            .iter()
            .fold(command.to_string(), |line, (mark, value)| {
                line.replace(mark, value)
            });
        assert!(!filled.contains('<'), "every placeholder named: {command}");
        let done = ok(&server, key, &filled).await;
        assert!(
            done.starts_with("Updated connection") && !done.contains("Fill its placeholders"),
            "{filled} -> {done}"
        );
    }
    let shown = ok(&server, key, "show connection warehouse").await;
    assert!(
        shown.contains("postgres://postgres") && shown.contains("127.0.0.1:5432/test"),
        "{shown}"
    );
    assert!(!shown.contains("{{"), "{shown}");
}

#[tokio::test]
async fn templates_preview_import_and_compose() {
    let data = Data::new().await;
    let server = Server::start(&data, &[ALLOW_LOCAL_SERVICES]).await;
    let key = server.admin_key();
    let (_, preview) = server
        .tool(
            key,
            "import_template",
            json!({"template_id": 1, "preview": true}),
        )
        .await;
    let text = preview["result"].as_str().unwrap_or_default();
    assert!(
        text.contains("nothing was created") && text.contains("create connection"),
        "{text}"
    );
    assert!(
        ok(&server, key, "list connections")
            .await
            .contains("No connections"),
        "preview creates nothing"
    );

    let (_, imported) = server
        .tool(
            key,
            "import_template",
            json!({"template_id": 1, "mode": "standard"}),
        )
        .await;
    assert_eq!(imported["success"], true, "{imported}");
    let text = imported["result"].as_str().unwrap_or_default();
    assert!(text.contains("Fill in these placeholders"), "{text}");
    let flows = ok(&server, key, "list flows").await;
    assert!(flows.lines().count() >= 3, "{flows}");
    let flow_name = flows
        .lines()
        .nth(3)
        .and_then(|l| l.split_whitespace().next())
        .expect("flow")
        .to_string();
    let body = cli(&server, key, &format!("run flow {flow_name}")).await;
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("placeholders"),
        "{body}"
    );

    let (_, again) = server
        .tool(
            key,
            "import_template",
            json!({"template_id": 1, "mode": "composer"}),
        )
        .await;
    assert_eq!(
        again["success"], true,
        "a second import gets fresh names: {again}"
    );
    let flows = ok(&server, key, "list flows").await;
    let composed = flows
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .find(|n| n.ends_with("_2"))
        .expect("renamed flow")
        .to_string();
    let shown = ok(&server, key, &format!("show flow {composed}")).await;
    assert!(
        shown.contains("canvas (composer)") && shown.contains("source → "),
        "{shown}"
    );

    let (_, missing) = server
        .tool(key, "import_template", json!({"template_id": 999}))
        .await;
    assert_eq!(missing["success"], false);
    let (status, _) = server
        .tool(key, "import_template", json!({"template_id": "one"}))
        .await;
    assert_eq!(status, 400);

    let (_, reference) = server.tool(key, "host_list_commands", json!({})).await;
    assert!(reference["result"]
        .as_str()
        .unwrap_or_default()
        .contains("create flow NAME"));
    let (_, usage) = server.get("/usage", key).await;
    assert_eq!(
        usage["tenant"]["by_tool"]["host_list_commands"]["calls"], 1,
        "billed tools are charged: {usage}"
    );

    let printed = data
        .cli_ok(&["host", "--tenant", "default", "list connections"])
        .await;
    assert!(printed.contains("connection(s)"), "{printed}");
    let (ok_, _, stderr) = data
        .cli(&["host", "--tenant", "default", "list connections; ls"])
        .await;
    assert!(!ok_ && stderr.contains("never run in a shell"), "{stderr}");
}
