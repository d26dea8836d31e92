//! The trust boundary, attacked the way a hostile tenant would (issue 23): a plain `user` key
//! tries to reach the server's own database, files and endpoints through the workspace, and
//! the front door is flooded with idle sockets and wrong keys. Each attack is refused with a
//! clear error, and nothing is read, written or minted.

mod common;

use std::time::Duration;

use common::{eventually, Data, Server, ALLOW_LOCAL_SERVICES};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Runs a workspace command; returns (success, text shown to the caller).
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

async fn must_work(server: &Server, key: &str, command: &str) -> String {
    let (ok, text) = host(server, key, command).await;
    assert!(ok, "{command}: {text}");
    text
}

async fn must_fail(server: &Server, key: &str, command: &str) -> String {
    let (ok, text) = host(server, key, command).await;
    assert!(!ok, "{command} was allowed: {text}");
    text
}

#[tokio::test]
async fn sqlite_queries_cannot_reach_the_servers_database_or_write_outside() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let admin = server.admin_key().to_string();
    let key = data
        .user_with_key("acme", "mallory@acme.test", "user")
        .await;
    // Another tenant's secret, in the server's own database.
    let (status, _) = server
        .post(
            "/chat",
            &admin,
            &json!({"message": "the launch code is 0000-SECRET"}),
        )
        .await;
    assert_eq!(status, 200);

    must_work(
        &server,
        &key,
        "create connection lake type=sqlite path=lake.db",
    )
    .await;
    must_work(
        &server,
        &key,
        "create connection seed type=file path=in format=csv",
    )
    .await;
    let inbox = data.tenant_dir("acme").await.join("in");
    std::fs::create_dir_all(&inbox).expect("inbox");
    std::fs::write(inbox.join("t.csv"), "x\n1\n").expect("csv");
    must_work(&server, &key, "create flow fill from=seed:t.csv to=lake:t").await;
    must_work(&server, &key, "run flow fill").await;

    let database = data.path().join("integrator.db");
    let written = data.path().join("stolen.db");
    let attacks = [
        format!(
            "SELECT 1 AS x WHERE 0); ATTACH '{}' AS s; CREATE TEMP VIEW v AS SELECT * FROM s.messages; \
             SELECT * FROM v; SELECT * FROM (SELECT 1 AS x WHERE 0",
            database.display()
        ),
        format!("SELECT 1; VACUUM INTO '{}'", written.display()),
        "SELECT * FROM pragma_database_list".to_string(),
        "SELECT load_extension('/tmp/x')".to_string(),
    ];
    for (i, attack) in attacks.iter().enumerate() {
        let quoted = attack.replace('"', "\\\"");
        must_work(
            &server,
            &key,
            &format!("create flow steal{i} from=lake query=\"{quoted}\" to=seed:out{i}.csv"),
        )
        .await;
        let text = must_fail(&server, &key, &format!("run flow steal{i}")).await;
        assert!(!text.contains("SECRET"), "{attack}: {text}");
        assert!(
            !text.contains(&data.path().display().to_string()),
            "{attack} disclosed the data dir: {text}"
        );
        let shown = must_work(&server, &key, &format!("list runs steal{i}")).await;
        assert!(!shown.contains("SECRET"), "{shown}");
    }
    assert!(
        !written.exists(),
        "VACUUM INTO wrote outside the tenant folder"
    );
    assert_eq!(
        std::fs::read_dir(&inbox)
            .expect("inbox")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("out"))
            .count(),
        0,
        "nothing was exported"
    );
}

#[tokio::test]
async fn connections_cannot_reach_the_server_itself_or_private_addresses() {
    let data = Data::new().await;
    // Even with loopback opened for local services, the server's own address stays refused.
    let server = Server::start(&data, &[("INTEGRATOR_EGRESS_ALLOW", "127.0.0.0/8")]).await;
    let key = data
        .user_with_key("acme", "mallory@acme.test", "user")
        .await;
    let port = server
        .base
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_string();
    for (name, url) in [
        ("own", server.base.clone()),
        ("own_by_name", format!("http://localhost:{port}")),
        ("metadata", "http://169.254.169.254/latest".to_string()),
        ("private", "http://10.1.2.3".to_string()),
    ] {
        must_work(
            &server,
            &key,
            &format!("create connection {name} type=http url={url}"),
        )
        .await;
        let text = must_fail(&server, &key, &format!("test connection {name}")).await;
        assert!(text.contains("INTEGRATOR_EGRESS_ALLOW"), "{name}: {text}");
    }
    let text = must_fail(&server, &key, "test connection own").await;
    assert!(text.contains("own listening address"), "{text}");
    // A flow fails the same way, and its run says so.
    must_work(
        &server,
        &key,
        "create connection lake type=sqlite path=lake.db",
    )
    .await;
    must_work(
        &server,
        &key,
        "create flow scrape from=own:/metrics to=lake:m",
    )
    .await;
    let text = must_fail(&server, &key, "run flow scrape").await;
    assert!(text.contains("own listening address"), "{text}");
    assert!(!text.contains("# TYPE"), "nothing was read: {text}");

    // The server's own database (PostgreSQL runs) may not be reached to mint a key either.
    if let Some(url) = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        let keys_before = data.query_i64("SELECT COUNT(*) FROM api_keys").await;
        must_work(
            &server,
            &key,
            &format!("create connection db type=postgres url=\"{url}\""),
        )
        .await;
        let text = must_fail(&server, &key, "test connection db").await;
        assert!(text.contains("own database"), "{text}");
        assert_eq!(
            data.query_i64("SELECT COUNT(*) FROM api_keys").await,
            keys_before
        );
    }
}

#[tokio::test]
async fn tenant_names_are_slugs_and_folders_are_named_by_id() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    for name in ["..", ".", "a/b", "Acme", "a_b", "_x", ""] {
        let (ok, _, stderr) = data.cli(&["tenant", "create", name]).await;
        assert!(!ok, "tenant {name:?} was created");
        assert!(stderr.contains("lowercase"), "{name}: {stderr}");
    }
    let key = data.user_with_key("acme", "ops@acme.test", "user").await;
    must_work(
        &server,
        &key,
        "create connection out type=file path=exports format=csv",
    )
    .await;
    must_work(
        &server,
        &key,
        "create connection lake type=sqlite path=lake.db",
    )
    .await;
    must_work(
        &server,
        &key,
        "create flow f from=lake query=\"SELECT 1 AS one\" to=out:one.csv",
    )
    .await;
    let text = must_fail(&server, &key, "run flow f").await;
    assert!(text.contains("does not exist"), "{text}");
    let dir = data.tenant_dir("acme").await;
    assert!(!data.path().join("tenants/acme").exists());
    server.stop().await;

    // A name of an earlier version that could mean a path refuses the start, and says how
    // to fix it; after the rename the server starts and the tenant keeps its folder.
    data.execute_sql("UPDATE tenants SET name = '..' WHERE name = 'acme'")
        .await;
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_integrator-agent"));
    command
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env_remove("INTEGRATOR_DATABASE_URL")
        .kill_on_drop(true);
    if let Some(url) = data.database_url() {
        command.arg("--database-url").arg(url);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("the server refuses at once")
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("'..'") && stderr.contains("tenant rename"),
        "{stderr}"
    );
    data.cli_ok(&["tenant", "rename", "..", "acme-corp"]).await;
    let server = Server::start(&data, &[]).await;
    assert_eq!(data.tenant_dir("acme-corp").await, dir);
    must_work(&server, &key, "list connections").await;
}

#[cfg(unix)]
#[tokio::test]
async fn links_in_a_tenant_folder_are_not_followed() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let key = data
        .user_with_key("acme", "mallory@acme.test", "user")
        .await;
    must_work(
        &server,
        &key,
        "create connection inbox type=file path=in format=csv",
    )
    .await;
    must_work(
        &server,
        &key,
        "create connection lake type=sqlite path=lake.db",
    )
    .await;
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("passwd"), "user,hash\nroot,TOPSECRET\n").expect("write");
    let inbox = data.tenant_dir("acme").await.join("in");
    std::fs::create_dir_all(&inbox).expect("inbox");
    std::os::unix::fs::symlink(outside.path().join("passwd"), inbox.join("pw.csv")).expect("link");
    must_work(&server, &key, "create flow pw from=inbox:pw.csv to=lake:pw").await;
    let text = must_fail(&server, &key, "run flow pw").await;
    assert!(text.contains("symbolic link"), "{text}");
    assert!(!text.contains("TOPSECRET"), "{text}");
}

#[tokio::test]
async fn secrets_in_urls_are_sealed_and_masked_everywhere() {
    let data = Data::new().await;
    let server = Server::start(&data, &[ALLOW_LOCAL_SERVICES]).await;
    let key = data.user_with_key("acme", "ops@acme.test", "user").await;
    // An API that answers 401 with the URL it got, as some do.
    let api = {
        use axum::routing::get;
        let app = axum::Router::new().fallback(get(|uri: axum::http::Uri| async move {
            (
                axum::http::StatusCode::UNAUTHORIZED,
                format!("bad key in {uri}"),
            )
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    };
    must_work(
        &server,
        &key,
        &format!(
            "create connection api type=http url=\"{api}/v1?api_key=KEY-0123456789&page_size=5\""
        ),
    )
    .await;
    must_work(
        &server,
        &key,
        "create connection wh type=postgres url=\"postgres://etl@db.example.com/x?password=PW-0123456789\"",
    )
    .await;
    must_work(
        &server,
        &key,
        "create connection lake type=sqlite path=lake.db",
    )
    .await;
    must_work(
        &server,
        &key,
        "create flow f from=api:/orders to=lake:orders",
    )
    .await;
    let failed = must_fail(&server, &key, "run flow f").await;
    let listed = must_work(&server, &key, "list connections").await;
    let shown_api = must_work(&server, &key, "show connection api").await;
    let shown_wh = must_work(&server, &key, "show connection wh").await;
    let runs = must_work(&server, &key, "list runs f").await;
    let run = must_work(&server, &key, "show run 1").await;
    for text in [&failed, &listed, &shown_api, &shown_wh, &runs, &run] {
        assert!(!text.contains("KEY-0123456789"), "{text}");
        assert!(!text.contains("PW-0123456789"), "{text}");
    }
    assert!(shown_api.contains("api_key=***"), "{shown_api}");
    assert!(shown_api.contains("page_size=5"), "{shown_api}");
    assert!(shown_wh.contains("password=***"), "{shown_wh}");
    // At rest, both URLs are sealed, not in the plain parameters.
    for name in ["api", "wh"] {
        let plain = data
            .query_text(&format!(
                "SELECT params FROM ws_connections WHERE name = '{name}'"
            ))
            .await;
        assert!(!plain.contains("0123456789"), "{name}: {plain}");
    }
}

#[tokio::test]
async fn slow_clients_are_closed_after_the_head_timeout() {
    let data = Data::new().await;
    let server = Server::start(&data, &[("INTEGRATOR_REQUEST_HEAD_TIMEOUT_SECONDS", "1")]).await;
    let address = server.base.trim_start_matches("http://").to_string();
    // A socket that never sends a complete head is closed after the timeout.
    let mut slow = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let mut buffer = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut buffer))
        .await
        .expect("the server closes a slow client");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
}

#[tokio::test]
async fn idle_sockets_cannot_take_the_server_down() {
    let data = Data::new().await;
    // Idle sockets are held for a minute here, so the cap stays reached while it is checked.
    let server = Server::start(
        &data,
        &[
            ("INTEGRATOR_MAX_CONNECTIONS", "16"),
            ("INTEGRATOR_REQUEST_HEAD_TIMEOUT_SECONDS", "60"),
        ],
    )
    .await;
    let key = server.admin_key().to_string();
    let address = server.base.trim_start_matches("http://").to_string();

    // Fill every slot with idle sockets (plus some): health still answers, the API says 503.
    let mut idle = Vec::new();
    for _ in 0..24 {
        idle.push(
            tokio::net::TcpStream::connect(&address)
                .await
                .expect("connect"),
        );
    }
    // Once every slot is taken, the API says so.
    eventually(10, || async {
        let answer = reqwest::Client::new()
            .get(server.api("/tools"))
            .bearer_auth(&key)
            .send()
            .await
            .ok()?;
        (answer.status() == 503).then_some(())
    })
    .await
    .expect("the cap is reached");
    let health = reqwest::Client::new()
        .get(server.url("/health"))
        .send()
        .await
        .expect("health at the cap");
    assert_eq!(health.status(), 200);
    let busy = reqwest::Client::new()
        .get(server.api("/tools"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("tools at the cap");
    assert_eq!(busy.status(), 503);
    assert!(busy.headers().contains_key("retry-after"));
    let body: Value = busy.json().await.expect("json");
    assert_eq!(body["code"], "server_busy");

    // When the idle sockets leave (or time out), the API answers again.
    drop(idle);
    let back = eventually(15, || async {
        let (status, _) = server.get("/tools", &key).await;
        (status == 200).then_some(())
    })
    .await;
    assert!(back.is_some(), "the API answers again");
}

#[tokio::test]
async fn wrong_keys_are_throttled_and_all_look_alike() {
    let data = Data::new().await;
    let server = Server::start(&data, &[("INTEGRATOR_AUTH_FAILURES_PER_MINUTE", "5")]).await;
    let good = server.admin_key().to_string();
    // A valid key used before the flood keeps working through it.
    assert_eq!(server.get("/tools", &good).await.0, 200);

    let revoked = data.user_with_key("acme", "gone@acme.test", "user").await;
    data.cli_ok(&["key", "revoke", "gone@acme.test"]).await;
    data.user_with_key("acme", "temp@acme.test", "user").await;
    let expired = data
        .cli_ok(&["key", "create", "temp@acme.test", "--expires-in", "1s"])
        .await;
    // Past its expiry (polling would count failures against the throttle under test).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let unknown = "A".repeat(256);

    let mut bodies = Vec::new();
    for wrong in [&unknown, &revoked, &expired] {
        let response = server
            .client
            .get(server.api("/tools"))
            .bearer_auth(wrong)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 401);
        assert_eq!(
            response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer")
        );
        // Alike but for the request's own id.
        let mut body: serde_json::Value = response.json().await.expect("body");
        assert!(body["request_id"].is_string(), "{body}");
        body["request_id"] = serde_json::Value::Null;
        bodies.push(body.to_string());
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]), "{bodies:?}");
    assert!(
        bodies[0].contains("Invalid or expired API key"),
        "{}",
        bodies[0]
    );

    // Two more failures use the budget of five; then 429 with Retry-After, no lookup.
    for _ in 0..2 {
        assert_eq!(server.get("/tools", &unknown).await.0, 401);
    }
    let response = server
        .client
        .get(server.api("/tools"))
        .bearer_auth(&unknown)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], "too_many_failed_attempts");
    // The valid key is not slowed.
    assert_eq!(server.get("/tools", &good).await.0, 200);
}

#[tokio::test]
async fn a_revocation_reaches_every_replica_within_a_second() {
    let data = Data::new().await;
    let Some(replica_data) = data.replica() else {
        return; // SQLite: one server; the cache expiry covers it (auth tests).
    };
    let shared = [("INTEGRATOR_AUTH_CACHE_SECONDS", "60")];
    let first = Server::start(&data, &shared).await;
    let second = Server::start(&replica_data, &shared).await;
    let key = data.user_with_key("acme", "ops@acme.test", "user").await;
    assert_eq!(first.get("/tools", &key).await.0, 200);
    assert_eq!(second.get("/tools", &key).await.0, 200);
    data.cli_ok(&["key", "revoke", "ops@acme.test"]).await;
    // The keys stay cached for a minute: only the announcement can make this quick.
    let refused = eventually(5, || async {
        let a = first.get("/tools", &key).await.0;
        let b = second.get("/tools", &key).await.0;
        (a == 401 && b == 401).then_some(())
    })
    .await;
    assert!(refused.is_some(), "both replicas refuse the revoked key");
}

#[tokio::test]
async fn oversized_heads_get_json_errors() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let long = format!("/health?{}", "a".repeat(10_000));
    let response = server
        .client
        .get(server.url(&long))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 414);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], "uri_too_long");

    let mut request = server.client.get(server.url("/health"));
    for i in 0..120 {
        request = request.header(format!("x-h{i}"), "v");
    }
    let response = request.send().await.expect("request");
    assert_eq!(response.status(), 431);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], "headers_too_large");
}
