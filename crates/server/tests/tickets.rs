//! Support tickets: stored per tenant, searchable at once, isolated between tenants, and
//! created in Zendesk (checked against a local HTTP server) when configured.

mod common;

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use common::{Data, Server};
use serde_json::{json, Value};

#[tokio::test]
async fn tickets_are_searchable_at_once_and_only_by_their_tenant() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let acme = data.user_with_key("acme", "dev@acme.test", "user").await;
    let globex = data
        .user_with_key("globex", "dev@globex.test", "user")
        .await;

    let (status, body) = server
        .tool(&acme, "create_support_ticket", json!({
            "subject": "Warehouse sync fails with quota exhausted",
            "description": "The nightly flow stops with 'quota exhausted' from the zorblax API.",
            "priority": "high"
        }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true, "{body}");
    let result = body["result"].as_str().expect("text");
    assert!(result.contains("Support ticket created"), "{result}");
    assert!(
        result.contains("dev@acme.test"),
        "requester defaults to the caller: {result}"
    );
    assert!(
        !result.contains("Zendesk"),
        "no Zendesk configured: {result}"
    );

    let (_, found) = server
        .tool(
            &acme,
            "search_knowledge_base",
            json!({"query": "zorblax quota"}),
        )
        .await;
    let found = found["result"].as_str().expect("text");
    assert!(found.contains("Warehouse sync fails"), "{found}");
    assert!(found.contains("*ticket*"), "{found}");

    let (_, other) = server
        .tool(
            &globex,
            "search_knowledge_base",
            json!({"query": "zorblax quota"}),
        )
        .await;
    assert!(
        !other["result"]
            .as_str()
            .expect("text")
            .contains("Warehouse sync fails"),
        "{other}"
    );
}

#[derive(Default)]
struct Recorded {
    requests: Vec<(HeaderMap, Value)>,
}

#[tokio::test]
async fn tickets_are_created_in_zendesk_when_configured() {
    let recorded = Arc::new(Mutex::new(Recorded::default()));
    let seen = recorded.clone();
    let app = Router::new().route(
        "/api/v2/tickets.json",
        post(move |headers: HeaderMap, Json(body): Json<Value>| {
            let seen = seen.clone();
            async move {
                seen.lock().expect("lock").requests.push((headers, body));
                (
                    StatusCode::CREATED,
                    Json(json!({"ticket": {"id": 4242, "status": "new"}})),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let zendesk_url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let data = Data::new().await;
    let server = Server::start(
        &data,
        &[
            ("INTEGRATOR_ZENDESK_URL", zendesk_url.as_str()),
            ("INTEGRATOR_ZENDESK_EMAIL", "agent@acme.test"),
            ("INTEGRATOR_ZENDESK_API_TOKEN", "zd-token-123"),
        ],
    )
    .await;
    let (status, body) = server
        .tool(
            server.admin_key(),
            "create_support_ticket",
            json!({
                "subject": "Need help with REST connection",
                "description": "I am getting a 401 error when...",
                "user_email": "user@company.com"
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let result = body["result"].as_str().expect("text");
    assert!(result.contains("Zendesk ticket: #4242"), "{result}");

    let recorded = recorded.lock().expect("lock");
    assert_eq!(recorded.requests.len(), 1);
    let (headers, request) = &recorded.requests[0];
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .expect("basic auth");
    // base64("agent@acme.test/token:zd-token-123")
    assert_eq!(
        authorization,
        "Basic YWdlbnRAYWNtZS50ZXN0L3Rva2VuOnpkLXRva2VuLTEyMw=="
    );
    assert_eq!(
        request["ticket"]["subject"],
        "Need help with REST connection"
    );
    assert_eq!(
        request["ticket"]["comment"]["body"],
        "I am getting a 401 error when..."
    );
    assert_eq!(request["ticket"]["requester"]["email"], "user@company.com");
    assert_eq!(request["ticket"]["priority"], "normal");
}

#[tokio::test]
async fn a_zendesk_outage_keeps_the_local_ticket() {
    let data = Data::new().await;
    let server = Server::start(
        &data,
        &[
            ("INTEGRATOR_ZENDESK_URL", "http://127.0.0.1:9"),
            ("INTEGRATOR_ZENDESK_EMAIL", "agent@acme.test"),
            ("INTEGRATOR_ZENDESK_API_TOKEN", "zd-token-123"),
        ],
    )
    .await;
    let (status, body) = server
        .tool(
            server.admin_key(),
            "create_support_ticket",
            json!({"subject": "Flux capacitor broken", "description": "It stopped."}),
        )
        .await;
    assert_eq!(status, 200);
    let result = body["result"].as_str().expect("text");
    assert!(result.contains("Zendesk: not created"), "{result}");
    assert!(
        !result.contains("zd-token-123"),
        "no secret in output: {result}"
    );
    let (_, found) = server
        .tool(
            server.admin_key(),
            "search_knowledge_base",
            json!({"query": "flux capacitor"}),
        )
        .await;
    assert!(found["result"]
        .as_str()
        .expect("text")
        .contains("Flux capacitor broken"));
}
