//! Operations: health, metrics, OpenAPI and the docs page; downloads; start-up validation;
//! restarts.

mod common;

use common::{Data, Server};
use serde_json::json;

#[tokio::test]
async fn health_needs_no_key_and_reports_the_database() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let response = server
        .client
        .get(server.url("/health"))
        .send()
        .await
        .expect("get");
    let (status, body) = common::status_and_json(response).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    let expected = if data.database_url().is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(body["database"], expected);
    assert!(
        body["indexed_documents"].as_u64().unwrap_or(0) >= 45,
        "{body}"
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_and_tool_executions() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    server.get("/tools", server.admin_key()).await;
    server.get("/tools", "wrong").await;
    server
        .tool(
            server.admin_key(),
            "search_knowledge_base",
            json!({"query": "flows"}),
        )
        .await;
    let text = server.metrics_text().await;
    assert!(text.contains("http_requests_total{route=\"/rest/v1/ai-agent/api/tools\",method=\"GET\",status=\"200\"} 1"), "{text}");
    assert!(text.contains("status=\"401\""), "{text}");
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains("tool_executions_total{tool=\"search_knowledge_base\",status=\"ok\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn openapi_covers_every_endpoint_and_docs_render_it() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let response = server
        .client
        .get(server.url("/openapi.json"))
        .send()
        .await
        .expect("get");
    let (status, document) = common::status_and_json(response).await;
    assert_eq!(status, 200);
    assert!(document["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.")));
    let paths = document["paths"].as_object().expect("paths");
    for path in [
        "/rest/v1/ai-agent/api/tools",
        "/rest/v1/ai-agent/api/tools/{tool_name}/execute",
        "/health",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/downloads",
        "/downloads/",
        "/downloads/{file}",
        "/rest/v1/ai-agent/api/chat",
        "/rest/v1/ai-agent/api/chat/stream",
        "/rest/v1/ai-agent/api/sessions",
        "/rest/v1/ai-agent/api/sessions/{session_id}",
        "/rest/v1/ai-agent/api/sessions/{session_id}/chat",
        "/rest/v1/ai-agent/api/sessions/{session_id}/chat/stream",
        "/rest/v1/ai-agent/api/sessions/{session_id}/messages",
        "/rest/v1/ai-agent/api/sessions/{session_id}/stop",
        "/rest/v1/ai-agent/api/usage",
        "/rest/v1/ai-agent/api-key",
        "/rest/v1/ai-agent/api-key/delete",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from the OpenAPI document"
        );
    }
    let html = server
        .client
        .get(server.url("/docs"))
        .send()
        .await
        .expect("get");
    assert!(html.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("text/html"));
    let html = html.text().await.expect("text");
    assert!(
        html.contains("/rest/v1/ai-agent/api/tools/{tool_name}/execute"),
        "{html}"
    );
    assert!(html.contains("ToolList"));
}

#[tokio::test]
async fn bad_settings_stop_the_server_with_a_message_naming_them() {
    let data = Data::new().await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_integrator-agent"))
        .args(["serve", "--data-dir"])
        .arg(data.path())
        .env("INTEGRATOR_BODY_LIMIT", "a lot")
        .output()
        .await
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("INTEGRATOR_BODY_LIMIT"), "{stderr}");
}

/// The embedded database serves one server process: a second server on the same data dir is
/// refused with a message saying so (several servers share PostgreSQL instead), and the data
/// dir is free again once the first has stopped.
#[tokio::test]
async fn a_second_server_on_the_same_embedded_data_is_refused() {
    let data = Data::new().await;
    if data.on_postgres() {
        return; // Replicas on PostgreSQL are the supported way to run several servers.
    }
    let first = Server::start(&data, &[]).await;
    let second = tokio::process::Command::new(env!("CARGO_BIN_EXE_integrator-agent"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env_remove("INTEGRATOR_DATABASE_URL")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), second)
        .await
        .expect("the second server exits instead of serving")
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("another Integrator Agent server is running")
            && stderr.contains("PostgreSQL"),
        "{stderr}"
    );
    let health = |server: &Server| server.client.get(server.url("/health")).send();
    let status = health(&first).await.expect("health").status();
    assert_eq!(status, 200, "the first server runs on");
    first.stop().await;
    let again = Server::start(&data, &[]).await;
    assert_eq!(health(&again).await.expect("health").status(), 200);
}

#[tokio::test]
async fn restart_with_the_same_data_keeps_accounts_tickets_and_index() {
    let data = Data::new().await;
    let server = Server::start_process(&data, &[]).await;
    let key = server.admin_key().to_string();
    server
        .tool(
            &key,
            "create_support_ticket",
            json!({"subject": "Gryphon connector crashes", "description": "Every run."}),
        )
        .await;
    server.stop().await;

    let server = Server::start_process(&data, &[]).await;
    assert!(
        server.admin_key.is_none(),
        "no second bootstrap on a database with accounts"
    );
    assert_eq!(
        server.get("/tools", &key).await.0,
        200,
        "the key still works"
    );
    let (_, body) = server
        .tool(
            &key,
            "search_knowledge_base",
            json!({"query": "gryphon connector"}),
        )
        .await;
    assert!(
        body["result"]
            .as_str()
            .unwrap_or_default()
            .contains("Gryphon connector crashes"),
        "{body}"
    );
    server.kill().await;

    let server = Server::start_process(&data, &[]).await;
    assert_eq!(
        server.get("/tools", &key).await.0,
        200,
        "survives kill -9 too"
    );
}

#[tokio::test]
async fn client_scripts_are_downloadable() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let index = server
        .client
        .get(server.url("/downloads"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    for (file, content_type, starts) in [
        ("etlworks_agent.py", "text/x-python", "#!"),
        ("etlworks-agent.sh", "text/x-shellscript", "#!"),
        ("etlworks-agent.ps1", "text/plain", ""),
        ("langchain_tool.py", "text/x-python", ""),
        ("crewai_tool.py", "text/x-python", ""),
        ("autogen_tool.py", "text/x-python", ""),
    ] {
        assert!(index.contains(&format!("/downloads/{file}")), "{index}");
        let response = server
            .client
            .get(server.url(&format!("/downloads/{file}")))
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 200, "{file}");
        let header = response.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .to_string();
        assert!(header.starts_with(content_type), "{file}: {header}");
        let body = response.text().await.expect("text");
        assert!(body.starts_with(starts) && body.len() > 500, "{file}");
    }
    let response = server
        .client
        .get(server.url("/downloads/../Cargo.toml"))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 404);
    let (status, body) = common::status_and_json(
        server
            .client
            .get(server.url("/downloads/nope.py"))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
}

/// The files `/downloads/` lists, in its order.
const DOWNLOADS: [&str; 6] = [
    "etlworks_agent.py",
    "etlworks-agent.sh",
    "etlworks-agent.ps1",
    "langchain_tool.py",
    "crewai_tool.py",
    "autogen_tool.py",
];

#[tokio::test]
async fn downloads_index_is_html_for_browsers_and_json_for_the_rest() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    // What browsers send: HTML, with and without the trailing slash.
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    for path in ["/downloads/", "/downloads"] {
        let response = server
            .client
            .get(server.url(path))
            .header("accept", browser)
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| {
            response.headers()[name]
                .to_str()
                .unwrap_or_default()
                .to_string()
        };
        assert!(header("content-type").starts_with("text/html"), "{path}");
        assert_eq!(header("vary"), "accept", "{path}");
        let html = response.text().await.expect("text");
        for file in DOWNLOADS {
            assert!(
                html.contains(&format!("href=\"/downloads/{file}\"")),
                "{path}: {html}"
            );
        }
    }
    // What curl, scripts and HTTP libraries send (or nothing), or an explicit preference for
    // JSON: the JSON list.
    let mut sizes = Vec::new();
    for accept in [
        None,
        Some("*/*"),
        Some("application/json"),
        Some("text/html;q=0.5, application/json"),
        Some("text/html;q=0"),
    ] {
        for path in ["/downloads/", "/downloads"] {
            let mut request = server.client.get(server.url(path));
            if let Some(accept) = accept {
                request = request.header("accept", accept);
            }
            let response = request.send().await.expect("get");
            let label = format!("{path} with Accept {accept:?}");
            assert!(
                response.headers()["content-type"]
                    .to_str()
                    .unwrap_or_default()
                    .starts_with("application/json"),
                "{label}"
            );
            let (status, body) = common::status_and_json(response).await;
            assert_eq!(status, 200, "{label}");
            let files = body["files"].as_array().expect("files");
            let names: Vec<&str> = files.iter().filter_map(|f| f["name"].as_str()).collect();
            assert_eq!(names, DOWNLOADS, "{label}");
            for file in files {
                let name = file["name"].as_str().unwrap_or_default();
                assert_eq!(file["url"], json!(format!("/downloads/{name}")), "{label}");
                assert!(file["description"].as_str().is_some_and(|d| !d.is_empty()));
            }
            sizes = files
                .iter()
                .map(|f| {
                    (
                        f["url"].as_str().unwrap_or_default().to_string(),
                        f["size"].as_u64(),
                    )
                })
                .collect();
        }
    }
    // Each listed URL serves the file, of the listed size.
    for (url, size) in sizes {
        let response = server
            .client
            .get(server.url(&url))
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 200, "{url}");
        let body = response.bytes().await.expect("body");
        assert_eq!(Some(body.len() as u64), size, "{url}");
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_errors_quote_it() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let get = |id: Option<&str>| {
        let mut request = server
            .client
            .get(server.api("/sessions/nope/messages"))
            .bearer_auth(server.admin_key());
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        request.send()
    };
    // A new id when the client sends none, in the header and the error body alike.
    let response = get(None).await.expect("get");
    let header = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    let (status, body) = common::status_and_json(response).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "not_found");
    assert_eq!(body["request_id"], header.as_str());
    // The client's own id is kept; one that can't be an id is replaced.
    let response = get(Some("trace-42")).await.expect("get");
    assert_eq!(response.headers()["x-request-id"], "trace-42");
    let (_, body) = common::status_and_json(response).await;
    assert_eq!(body["request_id"], "trace-42");
    let long = "x".repeat(500);
    let response = get(Some(&long)).await.expect("get");
    assert_ne!(response.headers()["x-request-id"], long.as_str());
    // Successes carry the header, their bodies are untouched.
    let response = server
        .client
        .get(server.url("/health"))
        .send()
        .await
        .expect("get");
    assert!(response.headers().contains_key("x-request-id"));
    let (_, body) = common::status_and_json(response).await;
    assert!(body.get("request_id").is_none());
}

/// A stand-in OpenTelemetry collector: records the bodies POSTed to `/v1/traces`.
async fn collector() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>,
) {
    use axum::routing::post;
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let kept = kept.clone();
                async move {
                    let kind = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    kept.lock().expect("lock").push((kind, body.to_vec()));
                    (
                        [("content-type", "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, received)
}

#[tokio::test]
async fn traces_go_to_an_otlp_collector_when_one_is_configured() {
    let (endpoint, received) = collector().await;
    let data = Data::new().await;
    let server = Server::start_process(
        &data,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let key = server.admin_key().to_string();
    let (status, _) = server
        .post(
            "/chat",
            &key,
            &json!({"message": "how do I schedule a flow?"}),
        )
        .await;
    assert_eq!(status, 200);
    let exported = |needle: &[u8]| {
        received
            .lock()
            .expect("lock")
            .iter()
            .any(|(_, body)| body.windows(needle.len()).any(|w| w == needle))
    };
    let seen = common::eventually(20, || async {
        (exported(b"agent turn") && exported(b"tool call") && exported(b"request")).then_some(())
    })
    .await;
    assert!(
        seen.is_some(),
        "the request, its turn and its tool call are exported"
    );
    assert!(exported(b"integrator-agent"), "the service is named");
    let kinds: Vec<String> = received
        .lock()
        .expect("lock")
        .iter()
        .map(|(k, _)| k.clone())
        .collect();
    assert!(
        kinds.iter().all(|k| k == "application/x-protobuf"),
        "{kinds:?}"
    );
    server.stop().await;
}
