//! The console's workspace and knowledge pages over HTTP: connections (secrets masked, Test),
//! flows (Run now, history), a run's live progress and Cancel, schedules (enable, disable),
//! knowledge search, support tickets (markup stays text) and the template gallery (Import);
//! viewers see every page but no buttons, and their POSTs change nothing. (The browser walks
//! the same pages in `clients/tests/test_console_workspace.py`.)

mod common;

use std::time::Duration;

use axum::extract::Query;
use axum::routing::get;
use axum::{Json, Router};
use common::console::{self, set_password, sign_in, Page};
use common::{eventually, Data, Server, ALLOW_LOCAL_SERVICES};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery staple";
const VIEWER_PASSWORD: &str = "viewer password 1";

// ---------------------------------------------------------------------------------------------
// A local API for flows to read

#[derive(serde::Deserialize)]
struct PageQuery {
    page: Option<u64>,
}

/// `/`: one record (what Test reads). `/items`: three records. `/endless`: pages of two records for ever, 300 ms each.
async fn start_api() -> String {
    let app = Router::new()
        .route("/", get(|| async { Json(json!({"data": [{"id": 0}]})) }))
        .route(
            "/items",
            get(|| async {
                Json(json!({"data": [
                    {"id": 1, "name": "anvil"},
                    {"id": 2, "name": "<b>bold</b>"},
                    {"id": 3, "name": "crate"}
                ]}))
            }),
        )
        .route(
            "/endless",
            get(|Query(page): Query<PageQuery>| async move {
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

// ---------------------------------------------------------------------------------------------
// A browser's part: pages, forms, the session cookie

async fn get_page(server: &Server, path: &str, session: &str) -> Page {
    console::get(server, path, Some(session)).await
}

async fn post_form(server: &Server, path: &str, session: &str, form: &[(&str, &str)]) -> Page {
    console::post(server, path, Some(session), form, Some(&server.base)).await
}

/// The super-admin's session and a viewer's, in the tenant `default`.
async fn admin_and_viewer(data: &Data, server: &Server) -> (String, String) {
    set_password(data, server, "admin@localhost", PASSWORD).await;
    data.cli_ok(&[
        "user",
        "create",
        "viewer@example.com",
        "--tenant",
        "default",
        "--role",
        "viewer",
    ])
    .await;
    set_password(data, server, "viewer@example.com", VIEWER_PASSWORD).await;
    (
        sign_in(server, "admin@localhost", PASSWORD).await,
        sign_in(server, "viewer@example.com", VIEWER_PASSWORD).await,
    )
}

/// Runs a workspace command of the tenant `default` as the operator.
async fn host(data: &Data, command: &str) -> String {
    data.cli_ok(&["host", "--tenant", "default", command]).await
}

/// A connection to the local API (with a secret header), an SQLite lake, a flow with a
/// mapping between them, and its hourly schedule.
async fn workspace_with_a_flow(data: &Data, api: &str) {
    host(
        data,
        &format!(
            "create connection api type=http url={api} records=data header.Authorization=\"Bearer s3cret-token-123\""
        ),
    )
    .await;
    host(data, "create connection lake type=sqlite path=lake.db").await;
    host(
        data,
        "create flow items from=api:/items to=lake:items mode=replace map=\"id,name:title\"",
    )
    .await;
    host(data, "schedule flow items every=1h").await;
}

/// Waits until a run's progress fragment says `status`; returns the fragment.
async fn fragment_once(server: &Server, session: &str, id: &str, status: &str) -> Page {
    let wanted = format!("id=\"run-status\">{status}<");
    eventually(60, || async {
        let page = get_page(server, &format!("/console/runs/{id}/progress"), session).await;
        assert_eq!(page.status, 200, "{}", page.body);
        page.body.contains(&wanted).then_some(page)
    })
    .await
    .unwrap_or_else(|| panic!("run {id} did not become {status}"))
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn everyone_sees_the_workspace_and_only_non_viewers_act() {
    let api = start_api().await;
    let data = Data::new().await;
    let server = Server::start(&data, &[ALLOW_LOCAL_SERVICES]).await;
    let (admin, viewer) = admin_and_viewer(&data, &server).await;
    workspace_with_a_flow(&data, &api).await;

    // The admin: every page, with its buttons; secrets masked.
    let connections = get_page(&server, "/console/connections", &admin).await;
    assert_eq!(connections.status, 200, "{}", connections.body);
    for shown in ["api", "lake", "http", "sqlite", "***", ">Test</button>"] {
        assert!(
            connections.body.contains(shown),
            "{shown}: {}",
            connections.body
        );
    }
    assert!(!connections.body.contains("s3cret-token-123"));
    let flows = get_page(&server, "/console/flows", &admin).await;
    assert_eq!(flows.status, 200);
    for shown in [
        "api:/items",
        "lake:items",
        "replace",
        "id, name → title",
        "every 1h",
        ">Run now</button>",
    ] {
        assert!(flows.body.contains(shown), "{shown}: {}", flows.body);
    }
    let flow = get_page(&server, "/console/flows/items", &admin).await;
    assert_eq!(flow.status, 200);
    assert!(flow.body.contains("Run history") && flow.body.contains("<code>title</code>"));
    let schedules = get_page(&server, "/console/schedules", &admin).await;
    assert!(
        schedules.body.contains(">Disable</button>"),
        "{}",
        schedules.body
    );
    assert!(schedules.body.contains("UTC"));
    let templates = get_page(&server, "/console/templates", &admin).await;
    assert!(templates.body.contains(">Import</button>"));
    for path in ["/console/runs", "/console/knowledge"] {
        assert_eq!(get_page(&server, path, &admin).await.status, 200, "{path}");
    }
    let header = get_page(&server, "/console", &admin).await;
    assert!(header.body.contains(">Workspace</a>") && header.body.contains(">Knowledge</a>"));

    // The viewer: the same pages, no buttons.
    for path in [
        "/console/connections",
        "/console/flows",
        "/console/flows/items",
        "/console/runs",
        "/console/schedules",
        "/console/knowledge",
        "/console/templates",
    ] {
        let page = get_page(&server, path, &viewer).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        for button in [
            ">Test</button>",
            ">Run now</button>",
            ">Disable</button>",
            ">Import</button>",
        ] {
            assert!(
                !page.body.contains(button),
                "{path} shows {button} to a viewer"
            );
        }
    }
    assert!(get_page(&server, "/console/flows", &viewer)
        .await
        .body
        .contains("api:/items"));

    // A viewer's POSTs are refused, with the session's own token too, and change nothing.
    let csrf = get_page(&server, "/console/flows", &viewer).await.csrf();
    let form = [("csrf", csrf.as_str())];
    for path in [
        "/console/flows/items/run",
        "/console/connections/api/test",
        "/console/schedules/items/disable",
        "/console/templates/1/import",
        "/console/runs/1/cancel",
    ] {
        let refused = post_form(&server, path, &viewer, &form).await;
        assert_eq!(refused.status, 403, "{path}: {}", refused.body);
    }
    assert_eq!(data.query_i64("SELECT COUNT(*) FROM ws_runs").await, 0);
    assert_eq!(
        data.query_i64("SELECT COUNT(*) FROM ws_connections").await,
        2
    );
    let listed = host(&data, "list schedules").await;
    assert!(!listed.contains("disabled"), "{listed}");

    // An admin's form without the session's token is refused too.
    let forged = post_form(
        &server,
        "/console/flows/items/run",
        &admin,
        &[("csrf", "guess")],
    )
    .await;
    assert_eq!(forged.status, 403);
    assert_eq!(data.query_i64("SELECT COUNT(*) FROM ws_runs").await, 0);

    // What isn't there is a 404 page.
    for path in [
        "/console/flows/nope",
        "/console/runs/999",
        "/console/runs/abc",
    ] {
        assert_eq!(get_page(&server, path, &admin).await.status, 404, "{path}");
    }
}

#[tokio::test]
async fn test_and_run_now_follow_a_run_to_its_end_and_cancel_stops_one() {
    let api = start_api().await;
    let data = Data::new().await;
    let server = Server::start(&data, &[ALLOW_LOCAL_SERVICES]).await;
    let (admin, _) = admin_and_viewer(&data, &server).await;
    workspace_with_a_flow(&data, &api).await;
    host(
        &data,
        &format!(
            "create connection slow type=http url={api} records=data pagination=page page_size=2"
        ),
    )
    .await;
    host(
        &data,
        "create connection broken type=http url=http://127.0.0.1:9/",
    )
    .await;
    host(
        &data,
        "create flow endless from=slow:/endless to=lake:endless",
    )
    .await;
    let csrf = get_page(&server, "/console/flows", &admin).await.csrf();
    let form = [("csrf", csrf.as_str())];

    // Test: the outcome beside the connection, for one that works and one that doesn't.
    let tested = post_form(&server, "/console/connections/api/test", &admin, &form).await;
    assert_eq!(tested.status, 200, "{}", tested.body);
    assert!(tested.body.contains("works: GET"), "{}", tested.body);
    assert!(tested.body.contains("notice ok result"), "{}", tested.body);
    assert!(!tested.body.contains("s3cret-token-123"));
    let failed = post_form(&server, "/console/connections/broken/test", &admin, &form).await;
    assert_eq!(failed.status, 200);
    assert!(
        failed.body.contains("notice error result"),
        "{}",
        failed.body
    );
    let missing = post_form(&server, "/console/connections/nope/test", &admin, &form).await;
    assert_eq!(missing.status, 404);

    // Run now: a run of the server, whose page polls its progress until it ends.
    let started = post_form(&server, "/console/flows/items/run", &admin, &form).await;
    assert_eq!(started.status, 303, "{}", started.body);
    let id = started
        .location()
        .strip_prefix("/console/runs/")
        .expect("the run's page")
        .to_string();
    let run = get_page(&server, started.location(), &admin).await;
    assert_eq!(run.status, 200);
    assert!(run.body.contains(&format!("Run {id} of flow")));
    let done = fragment_once(&server, &admin, &id, "succeeded").await;
    assert!(
        done.body.contains("id=\"rows-written\">3<"),
        "{}",
        done.body
    );
    assert!(
        !done.body.contains("hx-trigger"),
        "a finished run is not polled"
    );
    assert!(done.body.contains("hx-swap-oob"), "the Cancel button goes");
    assert!(!done.body.contains("<html"), "a fragment, not a page");
    let finished = get_page(&server, &format!("/console/runs/{id}"), &admin).await;
    assert!(!finished.body.contains(">Cancel</button>"));
    assert!(!finished.body.contains("hx-trigger"));
    let history = get_page(&server, "/console/flows/items", &admin).await;
    assert!(history.body.contains(&format!("/console/runs/{id}\"")));
    assert!(history.body.contains("admin@localhost"), "who started it");

    // A long run: progress while it goes, Cancel stops it, the destination is untouched.
    let started = post_form(&server, "/console/flows/endless/run", &admin, &form).await;
    assert_eq!(started.status, 303, "{}", started.body);
    let id = started
        .location()
        .trim_start_matches("/console/runs/")
        .to_string();
    let page = get_page(&server, started.location(), &admin).await;
    assert!(page
        .body
        .contains(&format!("hx-get=\"/console/runs/{id}/progress\"")));
    assert!(page.body.contains("hx-trigger=\"every 1s\""));
    assert!(page.body.contains(">Cancel</button>"));
    eventually(20, || async {
        let fragment = get_page(&server, &format!("/console/runs/{id}/progress"), &admin).await;
        let read = fragment
            .body
            .split("id=\"rows-read\">")
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or(0);
        (read >= 2 && fragment.body.contains("page 1: GET")).then_some(())
    })
    .await
    .expect("the run shows rows and log lines while it goes");
    let again = post_form(&server, "/console/flows/endless/run", &admin, &form).await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(again.body.contains("already running"));
    let cancelled = post_form(
        &server,
        &format!("/console/runs/{id}/cancel"),
        &admin,
        &form,
    )
    .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    let ended = fragment_once(&server, &admin, &id, "cancelled").await;
    assert!(!ended.body.contains("hx-trigger"));
    let twice = post_form(
        &server,
        &format!("/console/runs/{id}/cancel"),
        &admin,
        &form,
    )
    .await;
    assert_eq!(twice.status, 409, "{}", twice.body);
    assert!(twice.body.contains("not running"));
}

#[tokio::test]
async fn schedules_are_disabled_and_enabled_keeping_their_settings() {
    let api = start_api().await;
    let data = Data::new().await;
    let server = Server::start(&data, &[ALLOW_LOCAL_SERVICES]).await;
    let (admin, _) = admin_and_viewer(&data, &server).await;
    workspace_with_a_flow(&data, &api).await;
    let csrf = get_page(&server, "/console/schedules", &admin).await.csrf();
    let form = [("csrf", csrf.as_str())];

    let disabled = post_form(&server, "/console/schedules/items/disable", &admin, &form).await;
    assert_eq!(disabled.status, 200, "{}", disabled.body);
    assert!(
        disabled.body.contains("Disabled the schedule"),
        "{}",
        disabled.body
    );
    assert!(
        disabled.body.contains(">Enable</button>") && !disabled.body.contains(">Disable</button>")
    );
    assert!(disabled.body.contains("every 1h"), "the settings stay");
    // The API and the command language say so too.
    let key = server.admin_key().to_string();
    let (status, page) = server.get("/workspace/schedules", &key).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"][0]["enabled"], false, "{page}");
    assert_eq!(page["items"][0]["next_run_at"], Value::Null);
    assert_eq!(page["items"][0]["every_seconds"], 3600);
    assert!(host(&data, "list schedules").await.contains("disabled"));
    assert!(host(&data, "list flows")
        .await
        .contains("every 1h (disabled)"));
    let flows = get_page(&server, "/console/flows", &admin).await;
    assert!(flows.body.contains("every 1h (disabled)"));

    let again = post_form(&server, "/console/schedules/items/disable", &admin, &form).await;
    assert_eq!(again.status, 200);
    assert!(again.body.contains("already disabled"));

    let before = store_now();
    let enabled = post_form(&server, "/console/schedules/items/enable", &admin, &form).await;
    assert_eq!(enabled.status, 200, "{}", enabled.body);
    assert!(enabled.body.contains("Enabled the schedule"));
    assert!(enabled.body.contains(">Disable</button>"));
    let next = data.query_i64("SELECT next_at FROM ws_schedules").await;
    assert!(
        next >= before + 3_600_000 - 5_000 && next <= store_now() + 3_600_000 + 5_000,
        "the next run is an hour from now: {next}"
    );
    let (_, page) = server.get("/workspace/schedules", &key).await;
    assert_eq!(page["items"][0]["enabled"], true);
    assert!(page["items"][0]["next_run_at"].is_string());

    let unknown = post_form(&server, "/console/schedules/nope/enable", &admin, &form).await;
    assert_eq!(unknown.status, 404);
    let strange = post_form(&server, "/console/schedules/items/pause", &admin, &form).await;
    assert_eq!(strange.status, 404);
    host(&data, "unschedule flow items").await;
    let none = post_form(&server, "/console/schedules/items/enable", &admin, &form).await;
    assert_eq!(none.status, 409, "{}", none.body);
    assert!(none.body.contains("has no schedule"));
}

fn store_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[tokio::test]
async fn tickets_are_made_searched_and_shown_as_text() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let (admin, viewer) = admin_and_viewer(&data, &server).await;
    let outsider = data
        .user_with_key("other", "someone@other.test", "user")
        .await;
    let (status, body) = server
        .tool(
            &outsider,
            "create_support_ticket",
            json!({"subject": "Other tenant's zeppelin", "description": "private"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let page = get_page(&server, "/console/knowledge", &admin).await;
    assert!(page.body.contains("Create support ticket"));
    let csrf = page.csrf();
    let subject = "<script>alert(1)</script> zeppelin sync broken";
    let made = post_form(
        &server,
        "/console/knowledge/tickets",
        &admin,
        &[
            ("csrf", &csrf),
            ("subject", subject),
            (
                "description",
                "The <img src=x onerror=alert(2)> flow fails.",
            ),
            ("priority", "high"),
        ],
    )
    .await;
    assert_eq!(made.status, 200, "{}", made.body);
    assert!(made.body.contains("Created the support ticket"));
    assert!(
        made.body.contains("Support ticket created."),
        "the tool's answer"
    );
    assert!(!made.body.contains("<script>alert(1)"), "{}", made.body);
    assert!(!made.body.contains("<img src=x"));
    assert!(made
        .body
        .contains("&#60;script&#62;alert(1)&#60;/script&#62; zeppelin"));
    assert_eq!(
        data.query_i64("SELECT COUNT(*) FROM tickets WHERE priority = 'high'")
            .await,
        1
    );

    // Listed with its status, searchable at once, never another tenant's.
    let listed = get_page(&server, "/console/knowledge", &viewer).await;
    assert!(listed.body.contains("&#60;script&#62;alert(1)"));
    assert!(listed.body.contains(">open</span>"));
    assert!(!listed.body.contains("Other tenant"));
    let found = get_page(
        &server,
        "/console/knowledge?q=zeppelin&kind=ticket",
        &viewer,
    )
    .await;
    assert_eq!(found.status, 200);
    assert!(
        found.body.contains("zeppelin sync broken</a>"),
        "{}",
        found.body
    );
    assert!(found.body.contains("&#60;script&#62;"), "{}", found.body);
    assert!(!found.body.contains("<script>alert"));
    assert!(!found.body.contains("Other tenant"));
    let docs = get_page(&server, "/console/knowledge?q=pagination", &viewer).await;
    assert!(docs.body.contains(">doc</span>"), "{}", docs.body);
    assert!(
        docs.body.contains("<mark>"),
        "matched words are marked: {}",
        docs.body
    );
    let nothing = get_page(&server, "/console/knowledge?q=qqqxxyyzz", &viewer).await;
    assert!(nothing.body.contains("Nothing found"));

    // A refused form says why and keeps what was typed.
    let empty = post_form(
        &server,
        "/console/knowledge/tickets",
        &admin,
        &[
            ("csrf", &csrf),
            ("subject", "   "),
            ("description", "kept text"),
            ("priority", "normal"),
        ],
    )
    .await;
    assert_eq!(empty.status, 400);
    assert!(empty.body.contains("Give the ticket a subject") && empty.body.contains("kept text"));
    let priority = post_form(
        &server,
        "/console/knowledge/tickets",
        &admin,
        &[
            ("csrf", &csrf),
            ("subject", "s"),
            ("description", "d"),
            ("priority", "panic"),
        ],
    )
    .await;
    assert_eq!(priority.status, 400);
    let stale = post_form(
        &server,
        "/console/knowledge/tickets",
        &admin,
        &[
            ("csrf", "guess"),
            ("subject", "s"),
            ("description", "d"),
            ("priority", "normal"),
        ],
    )
    .await;
    assert_eq!(stale.status, 403);
    assert_eq!(
        data.query_i64("SELECT COUNT(*) FROM tickets").await,
        2,
        "only the two tickets"
    );
}

#[tokio::test]
async fn the_template_gallery_searches_and_imports() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let (admin, _) = admin_and_viewer(&data, &server).await;
    let all = get_page(&server, "/console/templates", &admin).await;
    assert_eq!(all.status, 200);
    let cards = all.body.matches("class=\"card\" id=\"template-").count();
    assert!(cards >= 3, "{cards}");
    let some = get_page(&server, "/console/templates?q=PostgreSQL", &admin).await;
    let found = some.body.matches("class=\"card\" id=\"template-").count();
    assert!(found >= 1 && found <= cards, "{found} of {cards}");

    let csrf = all.csrf();
    let imported = post_form(
        &server,
        "/console/templates/1/import",
        &admin,
        &[("csrf", &csrf), ("mode", "standard")],
    )
    .await;
    assert_eq!(imported.status, 200, "{}", imported.body);
    assert!(
        imported.body.contains("Imported template 1"),
        "{}",
        imported.body
    );
    assert!(data.query_i64("SELECT COUNT(*) FROM ws_connections").await >= 1);
    let flows = data.query_i64("SELECT COUNT(*) FROM ws_flows").await;
    let composer = post_form(
        &server,
        "/console/templates/1/import",
        &admin,
        &[("csrf", &csrf), ("mode", "composer")],
    )
    .await;
    assert_eq!(composer.status, 200, "{}", composer.body);
    assert!(composer.body.contains("composer canvas"));
    assert!(data.query_i64("SELECT COUNT(*) FROM ws_flows").await > flows);
    let missing = post_form(
        &server,
        "/console/templates/9999/import",
        &admin,
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(missing.status, 404);
}
