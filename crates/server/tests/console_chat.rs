//! The console's chat panel over HTTP: the API answers the console's own pages (session cookie
//! plus its CSRF token, never the cookie alone), the pages list, rename and delete a person's
//! chats and no one else's, the form works without script, answers are rendered Markdown with
//! markup defused, and the own OpenAI key is set where the role allows. (The browser side is
//! `clients/tests/test_console_chat.py`.)

mod common;

use common::console::{get, post, set_password, sign_in};
use common::upstream::{Reply, Upstream};
use common::{Data, Server};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery staple";

fn settings(upstream: &Upstream) -> Vec<(&str, &str)> {
    vec![
        ("OPENAI_API_KEY", "sk-server-key"),
        ("OPENAI_BASE_URL", upstream.base_url.as_str()),
        ("INTEGRATOR_LLM_RETRY_BASE_MS", "10"),
    ]
}

async fn signed_in_admin(data: &Data, server: &Server) -> String {
    set_password(data, server, "admin@localhost", PASSWORD).await;
    sign_in(server, "admin@localhost", PASSWORD).await
}

/// A JSON request to the API as the console's page makes it: cookie, and optionally the
/// CSRF header.
async fn api_as_console(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    session: &str,
    csrf: Option<&str>,
    body: Option<Value>,
) -> (u16, String) {
    let mut request = server
        .client
        .request(method, server.api(path))
        .header("Cookie", format!("ia_session={session}"));
    if let Some(csrf) = csrf {
        request = request.header("X-CSRF-Token", csrf);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// Makes a chat with "New chat"; returns its id.
async fn new_chat(server: &Server, session: &str, csrf: &str) -> String {
    let made = post(
        server,
        "/console/chat/new",
        Some(session),
        &[("csrf", csrf)],
        None,
    )
    .await;
    assert_eq!(made.status, 303, "{}", made.body);
    made.location()
        .strip_prefix("/console/chat/")
        .expect("a chat")
        .to_string()
}

#[tokio::test]
async fn the_api_answers_the_console_with_its_cookie_and_csrf_token_only() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = Server::start(&data, &settings(&upstream)).await;
    let session = signed_in_admin(&data, &server).await;
    let page = get(&server, "/console/chat", Some(&session)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = page.csrf();
    let chat = new_chat(&server, &session, &csrf).await;

    // The cookie alone (what another site's page could make a browser send) is not enough.
    let (status, body) = api_as_console(
        &server,
        reqwest::Method::GET,
        "/sessions",
        &session,
        None,
        None,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = api_as_console(
        &server,
        reqwest::Method::GET,
        "/sessions",
        &session,
        Some("not-the-token"),
        None,
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = api_as_console(
        &server,
        reqwest::Method::GET,
        "/sessions",
        &session,
        Some(&csrf),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&chat),
        "the console's chat is the user's session"
    );

    // The stream, with tool details: each tool_start/tool_end pair carries its call.
    upstream.push([
        Reply::tool_calls(&[(
            "call_7",
            "search_knowledge_base",
            json!({"query": "rest connection"}),
        )]),
        Reply::text(&["Use ", "a connection."]),
    ]);
    let (status, raw) = api_as_console(
        &server,
        reqwest::Method::POST,
        &format!("/sessions/{chat}/chat/stream"),
        &session,
        Some(&csrf),
        Some(json!({"message": "how?", "tool_details": true, "on_disconnect": "continue"})),
    )
    .await;
    assert_eq!(status, 200, "{raw}");
    let events = common::parse_sse(&raw);
    let start = events
        .iter()
        .find(|e| e["type"] == "tool_start")
        .expect("tool_start");
    assert_eq!(start["call_id"], "call_7");
    assert_eq!(start["arguments"]["query"], "rest connection");
    let end = events
        .iter()
        .find(|e| e["type"] == "tool_end")
        .expect("tool_end");
    assert_eq!(end["call_id"], "call_7");
    assert!(end["result"].as_str().is_some_and(|r| !r.is_empty()));
    // Without tool_details the events are the seeds' own.
    upstream.push([
        Reply::tool_calls(&[("c", "search_knowledge_base", json!({"query": "x"}))]),
        Reply::text(&["ok"]),
    ]);
    let (_, raw) = api_as_console(
        &server,
        reqwest::Method::POST,
        &format!("/sessions/{chat}/chat/stream"),
        &session,
        Some(&csrf),
        Some(json!({"message": "again"})),
    )
    .await;
    let events = common::parse_sse(&raw);
    let start = events
        .iter()
        .find(|e| e["type"] == "tool_start")
        .expect("tool_start");
    assert_eq!(
        start.as_object().map(|o| o.len()),
        Some(3),
        "type, tool, message: {start}"
    );

    // Usage made through the console is the user's, recorded without an API key.
    let (_, usage) = server.get("/usage", server.admin_key()).await;
    assert!(
        usage["user"]["prompt_tokens"].as_i64().unwrap_or(0) > 0,
        "{usage}"
    );
}

#[tokio::test]
async fn chats_are_listed_renamed_deleted_and_answered_without_script() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = Server::start(&data, &settings(&upstream)).await;
    let session = signed_in_admin(&data, &server).await;
    let csrf = get(&server, "/console/chat", Some(&session)).await.csrf();
    let chat = new_chat(&server, &session, &csrf).await;

    upstream.push([Reply::text(&[
        "# Steps\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n",
        "<script>alert(1)</script> [x](javascript:alert(2))",
    ])]);
    let sent = post(
        &server,
        &format!("/console/chat/{chat}/send"),
        Some(&session),
        &[("csrf", &csrf), ("message", "make a table")],
        None,
    )
    .await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    let page = get(&server, &format!("/console/chat/{chat}"), Some(&session)).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<h1>Steps</h1>"), "{}", page.body);
    assert!(page.body.contains("<table>"));
    assert!(!page.body.contains("<script>alert(1)"));
    assert!(page.body.contains("&lt;script&gt;alert(1)"));
    assert!(!page.body.contains("javascript:alert(2)\""));
    assert!(page.body.contains("data-running=\"false\""));
    assert!(
        page.body.contains("tokens · $"),
        "the last turn's usage: {}",
        page.body
    );
    let answer = get(
        &server,
        &format!("/console/chat/{chat}/answer"),
        Some(&session),
    )
    .await;
    assert!(answer
        .body
        .starts_with("<div class=\"bubble md\"><h1>Steps</h1>"));

    let renamed = post(
        &server,
        &format!("/console/chat/{chat}/rename"),
        Some(&session),
        &[("csrf", &csrf), ("title", "Tables <b>demo</b>")],
        None,
    )
    .await;
    assert_eq!(renamed.status, 303);
    let list = get(&server, &format!("/console/chat/{chat}"), Some(&session)).await;
    assert!(
        list.body.contains("Tables &#60;b&#62;demo&#60;/b&#62;"),
        "{}",
        list.body
    );
    let empty = post(
        &server,
        &format!("/console/chat/{chat}/rename"),
        Some(&session),
        &[("csrf", &csrf), ("title", "  ")],
        None,
    )
    .await;
    assert_eq!(empty.status, 400);

    // Someone else's chat is not found: pages, answer, rename, delete, send.
    data.user_with_key("acme", "other@acme.test", "admin").await;
    set_password(&data, &server, "other@acme.test", "other password!").await;
    let other = sign_in(&server, "other@acme.test", "other password!").await;
    let other_csrf = get(&server, "/console/chat", Some(&other)).await.csrf();
    assert_eq!(
        get(&server, &format!("/console/chat/{chat}"), Some(&other))
            .await
            .status,
        404
    );
    assert_eq!(
        get(
            &server,
            &format!("/console/chat/{chat}/answer"),
            Some(&other)
        )
        .await
        .status,
        404
    );
    for action in ["rename", "delete", "send"] {
        let refused = post(
            &server,
            &format!("/console/chat/{chat}/{action}"),
            Some(&other),
            &[("csrf", &other_csrf), ("title", "mine"), ("message", "hi")],
            None,
        )
        .await;
        assert_eq!(refused.status, 404, "{action}");
    }

    let deleted = post(
        &server,
        &format!("/console/chat/{chat}/delete"),
        Some(&session),
        &[("csrf", &csrf)],
        None,
    )
    .await;
    assert_eq!(deleted.status, 303);
    assert_eq!(
        get(&server, &format!("/console/chat/{chat}"), Some(&session))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn the_own_key_is_set_where_the_role_allows_and_then_used() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = Server::start(&data, &settings(&upstream)).await;
    data.user_with_key("acme", "admin@acme.test", "admin").await;
    data.user_with_key("acme", "user@acme.test", "user").await;
    set_password(&data, &server, "admin@acme.test", "admin password!").await;
    set_password(&data, &server, "user@acme.test", "user password!!").await;

    let user = sign_in(&server, "user@acme.test", "user password!!").await;
    let panel = get(&server, "/console/chat?settings=1", Some(&user)).await;
    assert!(panel.body.contains("Only admins (for their tenant)"));
    assert!(!panel.body.contains("Save key"));
    let refused = post(
        &server,
        "/console/own-key",
        Some(&user),
        &[("csrf", &panel.csrf()), ("api_key", "sk-user-key-0000")],
        None,
    )
    .await;
    assert_eq!(refused.status, 403);

    let admin = sign_in(&server, "admin@acme.test", "admin password!").await;
    let panel = get(&server, "/console/chat?settings=1", Some(&admin)).await;
    assert!(panel.body.contains("(for this tenant)"));
    let bad = post(
        &server,
        "/console/own-key",
        Some(&admin),
        &[("csrf", &panel.csrf()), ("api_key", "no")],
        None,
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("look like an API key"), "{}", bad.body);
    let set = post(
        &server,
        "/console/own-key",
        Some(&admin),
        &[("csrf", &panel.csrf()), ("api_key", "sk-tenant-own-9876")],
        None,
    )
    .await;
    assert_eq!(set.status, 303, "{}", set.body);
    let panel = get(&server, "/console/chat?settings=1", Some(&admin)).await;
    assert!(panel.body.contains("sk-…9876"), "masked");
    assert!(!panel.body.contains("sk-tenant-own-9876"));

    // The user's next chat in the tenant goes out with the tenant's key.
    let csrf = get(&server, "/console/chat", Some(&user)).await.csrf();
    let chat = new_chat(&server, &user, &csrf).await;
    upstream.push([Reply::text(&["paid by the tenant"])]);
    post(
        &server,
        &format!("/console/chat/{chat}/send"),
        Some(&user),
        &[("csrf", &csrf), ("message", "whose key?")],
        None,
    )
    .await;
    let seen = upstream.requests();
    assert_eq!(
        seen.last().and_then(|r| r.authorization.clone()).as_deref(),
        Some("Bearer sk-tenant-own-9876")
    );
    let audit = get(&server, "/console/audit", Some(&admin)).await;
    assert!(audit.body.contains("own LLM key set"), "{}", audit.body);

    let removed = post(
        &server,
        "/console/own-key/delete",
        Some(&admin),
        &[("csrf", &panel.csrf())],
        None,
    )
    .await;
    assert_eq!(removed.status, 303);
    let panel = get(&server, "/console/chat?settings=1", Some(&admin)).await;
    assert!(panel.body.contains("No own key is set"));
}
