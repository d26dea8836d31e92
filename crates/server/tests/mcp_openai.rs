//! The agent over two standard protocols: MCP (Streamable HTTP at `/mcp`) and OpenAI's chat
//! completions (`/v1`). These speak the wire format by hand to pin what the SDKs rely on —
//! authentication, version negotiation, sessions kept to their users and shared by replicas,
//! context and sessions, OpenAI's error shapes. The SDKs themselves are driven by the Python
//! tests (clients/tests/test_mcp.py, test_openai_compat.py).

mod common;

use common::upstream::{Reply, Upstream};
use common::{Data, Server};
use serde_json::{json, Value};

fn settings(upstream: &Upstream) -> Vec<(&str, &str)> {
    vec![
        ("OPENAI_API_KEY", "sk-test-key"),
        ("OPENAI_BASE_URL", upstream.base_url.as_str()),
        ("INTEGRATOR_LLM_RETRY_BASE_MS", "10"),
    ]
}

/// An MCP client speaking JSON-RPC over Streamable HTTP.
struct Mcp<'a> {
    server: &'a Server,
    key: String,
    session: Option<String>,
    version: String,
    next_id: u64,
}

impl<'a> Mcp<'a> {
    fn new(server: &'a Server, key: &str) -> Mcp<'a> {
        Mcp {
            server,
            key: key.to_string(),
            session: None,
            version: "2025-11-25".into(),
            next_id: 1,
        }
    }

    async fn send(&self, message: &Value) -> reqwest::Response {
        let mut request = self
            .server
            .client
            .post(self.server.url("/mcp"))
            .bearer_auth(&self.key)
            .header("Accept", "application/json, text/event-stream")
            .json(message);
        // After `initialize`, every request names its session and the negotiated revision.
        if let Some(session) = &self.session {
            request = request
                .header("Mcp-Session-Id", session)
                .header("MCP-Protocol-Version", &self.version);
        }
        request.send().await.expect("POST /mcp")
    }

    /// Sends a request; answers the HTTP status and its JSON-RPC response (`Null` if none).
    async fn request(&mut self, method: &str, params: Value) -> (u16, Value) {
        let id = self.next_id;
        self.next_id += 1;
        let response = self
            .send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        let answer = messages(&body)
            .into_iter()
            .find(|m| m["id"] == id)
            .unwrap_or(Value::Null);
        (status, answer)
    }

    /// `initialize` + `notifications/initialized`; answers the negotiated version.
    async fn initialize(&mut self, version: &str) -> String {
        let response = self
            .send(
                &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                    "protocolVersion": version,
                    "capabilities": {},
                    "clientInfo": {"name": "wire-test", "version": "1"}
                }}),
            )
            .await;
        assert_eq!(response.status(), 200, "initialize {version}");
        self.session = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        assert!(self.session.is_some(), "a session id is given");
        let body = response.text().await.unwrap_or_default();
        let result = messages(&body)
            .into_iter()
            .next()
            .expect("initialize answer");
        let negotiated = result["result"]["protocolVersion"]
            .as_str()
            .expect("protocolVersion")
            .to_string();
        self.version = negotiated.clone();
        let response = self
            .send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(response.status(), 202);
        negotiated
    }
}

/// The JSON-RPC messages of a response body: SSE `data:` lines, or one JSON document.
fn messages(body: &str) -> Vec<Value> {
    if let Ok(value) = serde_json::from_str::<Value>(body) {
        return vec![value];
    }
    body.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str(data.trim()).ok())
        .collect()
}

#[tokio::test]
async fn mcp_needs_an_api_key_and_says_how_to_send_it() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}});
    for key in [None, Some("not-a-key")] {
        let mut request = server
            .client
            .post(server.url("/mcp"))
            .header("Accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.expect("POST");
        assert_eq!(response.status(), 401);
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(challenge.starts_with("Bearer "), "{challenge}");
        let body: Value = response.json().await.expect("JSON");
        let expected = if key.is_some() {
            "invalid_api_key"
        } else {
            "missing_api_key"
        };
        assert_eq!(body["code"], expected);
    }
}

#[tokio::test]
async fn mcp_negotiates_the_current_revision_and_the_two_before_it() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    for version in ["2025-11-25", "2025-06-18", "2025-03-26"] {
        let mut mcp = Mcp::new(&server, server.admin_key());
        assert_eq!(mcp.initialize(version).await, version);
        let (status, tools) = mcp.request("tools/list", json!({})).await;
        assert_eq!(status, 200);
        assert_eq!(tools["result"]["tools"].as_array().map(Vec::len), Some(7));
    }
    // A revision from the future gets the newest one spoken.
    let mut mcp = Mcp::new(&server, server.admin_key());
    assert_eq!(mcp.initialize("2099-01-01").await, "2025-11-25");
}

#[tokio::test]
async fn mcp_tools_carry_their_schemas_and_hints() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let mut mcp = Mcp::new(&server, server.admin_key());
    mcp.initialize("2025-11-25").await;
    let (_, answer) = mcp.request("tools/list", json!({})).await;
    let tools = answer["result"]["tools"].as_array().expect("tools").clone();
    let tool = |name: &str| {
        tools
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("{name} is listed"))
            .clone()
    };
    let (_, rest) = server.get("/tools", server.admin_key()).await;
    for listed in rest["tools"].as_array().expect("REST tools") {
        let name = listed["name"].as_str().expect("name");
        assert_eq!(tool(name)["inputSchema"], listed["parameters"], "{name}");
    }
    for read_only in [
        "search_knowledge_base",
        "search_templates",
        "host_list_commands",
    ] {
        assert_eq!(tool(read_only)["annotations"]["readOnlyHint"], true);
    }
    assert_eq!(tool("host_cli")["annotations"]["destructiveHint"], true);
    assert_eq!(
        tool("ask_agent")["inputSchema"]["required"],
        json!(["message"])
    );
}

#[tokio::test]
async fn an_mcp_session_is_its_users_only() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let other_key = data.user_with_key("other", "eve@other.test", "admin").await;
    let mut mcp = Mcp::new(&server, server.admin_key());
    mcp.initialize("2025-11-25").await;
    let mut thief = Mcp::new(&server, &other_key);
    thief.session = mcp.session.clone();
    let (status, _) = thief.request("tools/list", json!({})).await;
    assert_eq!(status, 404, "another user's session is unknown to them");
    let (status, _) = mcp.request("tools/list", json!({})).await;
    assert_eq!(status, 200, "the owner's session still works");
    // Another user can't end it either; its owner can.
    for (key, expected) in [(other_key.as_str(), 404), (server.admin_key(), 204)] {
        let response = server
            .client
            .delete(server.url("/mcp"))
            .bearer_auth(key)
            .header("Mcp-Session-Id", mcp.session.clone().unwrap_or_default())
            .header("MCP-Protocol-Version", "2025-11-25")
            .send()
            .await
            .expect("DELETE");
        assert_eq!(response.status(), expected);
    }
    let (status, _) = mcp.request("tools/list", json!({})).await;
    assert_eq!(status, 404, "an ended session is gone");
}

#[tokio::test]
async fn mcp_resources_page_through_the_docs_and_templates() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let mut mcp = Mcp::new(&server, server.admin_key());
    mcp.initialize("2025-11-25").await;
    let mut uris = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let params = match &cursor {
            Some(cursor) => json!({"cursor": cursor}),
            None => json!({}),
        };
        let (_, page) = mcp.request("resources/list", params).await;
        pages += 1;
        for resource in page["result"]["resources"].as_array().expect("resources") {
            uris.push(resource["uri"].as_str().expect("uri").to_string());
        }
        match page["result"]["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert!(pages > 1, "more than one page");
    let unique: std::collections::BTreeSet<_> = uris.iter().collect();
    assert_eq!(unique.len(), uris.len(), "no resource twice");
    assert!(uris.contains(&"integrator://docs/connection-http.md".to_string()));
    assert!(uris
        .iter()
        .any(|u| u.starts_with("integrator://templates/")));

    let (_, read) = mcp
        .request(
            "resources/read",
            json!({"uri": "integrator://docs/connection-http.md"}),
        )
        .await;
    let text = read["result"]["contents"][0]["text"]
        .as_str()
        .expect("text");
    assert_eq!(text, include_str!("../../../docs/connection-http.md"));
    for bad in [
        "integrator://docs/../../etc/passwd",
        "integrator://templates/999999",
        "file:///etc/passwd",
    ] {
        let (_, read) = mcp.request("resources/read", json!({"uri": bad})).await;
        assert!(
            read["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(bad)),
            "{read}"
        );
    }
    let (_, page) = mcp
        .request("resources/list", json!({"cursor": "bogus"}))
        .await;
    assert_eq!(page["error"]["code"], -32602);
}

#[tokio::test]
async fn ask_agent_reports_progress_and_shares_its_session_with_rest() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = Server::start(&data, &settings(&upstream)).await;
    let key = server.admin_key().to_string();
    upstream.push([
        Reply::tool_calls(&[("c1", "search_knowledge_base", json!({"query": "http"}))]),
        Reply::text(&["Use an ", "http connection."]),
    ]);
    let mut mcp = Mcp::new(&server, &key);
    mcp.initialize("2025-11-25").await;
    let id = mcp.next_id;
    mcp.next_id += 1;
    let response = mcp
        .send(
            &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
                "name": "ask_agent",
                "arguments": {"message": "how do I read an API?"},
                "_meta": {"progressToken": "p"}
            }}),
        )
        .await;
    let body = response.text().await.expect("body");
    let all = messages(&body);
    let progress: Vec<String> = all
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| {
            m["params"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        progress.first().map(String::as_str),
        Some("phase: thinking")
    );
    assert!(
        progress.contains(&"tool_start: search_knowledge_base".to_string()),
        "{progress:?}"
    );
    assert!(
        progress.contains(&"tool_end: search_knowledge_base".to_string()),
        "{progress:?}"
    );
    let streamed: String = progress
        .iter()
        .filter_map(|p| p.strip_prefix("text: "))
        .collect();
    assert_eq!(streamed, "Use an http connection.");
    let result = &all.iter().find(|m| m["id"] == id).expect("the result")["result"];
    assert_eq!(result["isError"], false);
    assert_eq!(result["content"][0]["text"], "Use an http connection.");
    let structured = &result["structuredContent"];
    assert_eq!(structured["tools_used"], json!(["search_knowledge_base"]));
    let session = structured["session_id"]
        .as_str()
        .expect("session id")
        .to_string();

    // The REST API sees the same session, and ask_agent continues it.
    let (status, history) = server
        .get(&format!("/sessions/{session}/messages"), &key)
        .await;
    assert_eq!(status, 200);
    assert_eq!(history.as_array().map(Vec::len), Some(2));
    upstream.push([Reply::text(&["Again."])]);
    let (_, answer) = mcp
        .request("tools/call", json!({"name": "ask_agent", "arguments": {"message": "and again?", "session_id": session}}))
        .await;
    assert_eq!(
        answer["result"]["structuredContent"]["session_id"],
        session.as_str()
    );
    let sent = upstream.requests().last().expect("a request").body["messages"].clone();
    let users = sent
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["role"] == "user")
        .count();
    assert_eq!(users, 2, "the second turn saw the first: {sent}");
}

#[tokio::test]
async fn ask_agent_on_a_capped_tenant_is_an_error_result() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = Server::start(&data, &settings(&upstream)).await;
    let key = data.user_with_allowance("broke", "0").await;
    let mut mcp = Mcp::new(&server, &key);
    mcp.initialize("2025-11-25").await;
    let (_, answer) = mcp
        .request(
            "tools/call",
            json!({"name": "ask_agent", "arguments": {"message": "hello"}}),
        )
        .await;
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.starts_with("cap_exceeded: "), "{text}");
    assert!(upstream.requests().is_empty(), "nothing reached the model");
}

#[tokio::test]
async fn an_mcp_session_begun_on_one_replica_goes_on_on_another() {
    let data = Data::new().await;
    let Some(replica_data) = data.replica() else {
        return; // one SQLite server has no other replica
    };
    let first = Server::start(&data, &[]).await;
    let second = Server::start(&replica_data, &[]).await;
    let key = first.admin_key().to_string();
    let mut mcp = Mcp::new(&first, &key);
    mcp.initialize("2025-06-18").await;
    let session = mcp.session.clone();
    let mut elsewhere = Mcp::new(&second, &key);
    elsewhere.session = session;
    elsewhere.version = "2025-06-18".into();
    let (status, answer) = elsewhere
        .request(
            "tools/call",
            json!({"name": "search_knowledge_base", "arguments": {"query": "schedules"}}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    // Still its user's only, there too.
    let other_key = replica_data
        .user_with_key("other", "eve@other.test", "admin")
        .await;
    let mut thief = Mcp::new(&second, &other_key);
    thief.session = mcp.session.clone();
    let (status, _) = thief.request("tools/list", json!({})).await;
    assert_eq!(status, 404);
}

/// SSE events as (id, JSON-RPC message) pairs; events without a message (retry hints) are left out.
fn sse_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter_map(|event| {
            let mut id = String::new();
            let mut data = String::new();
            for line in event.lines() {
                if let Some(value) = line.strip_prefix("id:") {
                    id = value.trim().to_string();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push_str(value.trim());
                }
            }
            let message = serde_json::from_str(&data).ok()?;
            Some((id, message))
        })
        .collect()
}

/// The streamed answer text in progress notifications.
fn streamed_text(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(_, m)| m["method"] == "notifications/progress")
        .filter_map(|(_, m)| m["params"]["message"].as_str()?.strip_prefix("text: "))
        .collect()
}

/// Resumes a stream where `last_event_id` left it: the events after it, to the answer.
async fn resume(server: &Server, key: &str, mcp: &Mcp<'_>, last_event_id: &str) -> (u16, String) {
    let response = server
        .client
        .get(server.url("/mcp"))
        .bearer_auth(key)
        .header("Accept", "text/event-stream")
        .header("Mcp-Session-Id", mcp.session.as_deref().unwrap_or_default())
        .header("MCP-Protocol-Version", &mcp.version)
        .header("Last-Event-ID", last_event_id)
        .send()
        .await
        .expect("GET /mcp");
    let status = response.status().as_u16();
    let body = tokio::time::timeout(std::time::Duration::from_secs(30), response.text())
        .await
        .expect("the resumed stream ends with the answer")
        .unwrap_or_default();
    (status, body)
}

/// A client whose `ask_agent` stream broke mid-answer resumes it with `Last-Event-ID` — on
/// the same server, and on another replica — and gets every event after the last one it had,
/// through to the answer, once. Another user who learnt the id gets nothing.
#[tokio::test]
async fn a_broken_mcp_stream_resumes_after_the_last_event() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = Server::start(&data, &settings(&upstream)).await;
    let replica_data = data.replica();
    let replica = match &replica_data {
        Some(replica_data) => Some(Server::start(replica_data, &settings(&upstream)).await),
        None => None,
    };
    let key = server.admin_key().to_string();
    let words: Vec<String> = (0..30).map(|n| format!("w{n} ")).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let everything = words.concat();
    for _ in 0..2 {
        upstream.push([Reply::slow_text(
            &words,
            std::time::Duration::from_millis(30),
        )]);
    }
    let mut mcp = Mcp::new(&server, &key);
    mcp.initialize("2025-11-25").await;
    let thief_key = data.user_with_key("other", "eve@other.test", "admin").await;
    let mut thief = Mcp::new(&server, &thief_key);
    thief.initialize("2025-11-25").await;

    for (round, resumer) in [Some(&server), replica.as_ref()].into_iter().enumerate() {
        let Some(resumer) = resumer else { continue };
        let id = 100 + round as u64;
        let mut response = mcp
            .send(
                &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
                    "name": "ask_agent",
                    "arguments": {"message": "a long one"},
                    "_meta": {"progressToken": "p"}
                }}),
            )
            .await;
        // Read until a few words have come, then the connection breaks.
        let mut before = String::new();
        while streamed_text(&sse_events(&before)).len() < 8 {
            let chunk = response.chunk().await.expect("a chunk").expect("more");
            before.push_str(&String::from_utf8_lossy(&chunk));
        }
        drop(response);
        let before: Vec<(String, Value)> =
            sse_events(before.rsplit_once("\n\n").map_or("", |(done, _)| done));
        let (last_id, _) = before.last().expect("an event").clone();
        assert!(!last_id.is_empty(), "events carry ids");

        // Another user, in a session of their own, who learnt the id: nothing.
        let (status, body) = resume(resumer, &thief_key, &thief, &last_id).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            sse_events(&body).is_empty(),
            "another user's stream: {body}"
        );

        let (status, body) = resume(resumer, &key, &mcp, &last_id).await;
        assert_eq!(status, 200, "{body}");
        let after = sse_events(&body);
        let answer = &after
            .iter()
            .find(|(_, m)| m["id"] == id)
            .expect("the answer")
            .1;
        assert_eq!(answer["result"]["content"][0]["text"], everything.as_str());
        assert_eq!(
            format!("{}{}", streamed_text(&before), streamed_text(&after)),
            everything,
            "each piece once, in order"
        );
        assert!(
            after
                .iter()
                .all(|(event_id, _)| event_id != &last_id && !event_id.is_empty()),
            "only events after the last one"
        );

        // Resuming from the last event gives nothing more, and at once.
        let (final_id, _) = after.last().expect("an event").clone();
        let (status, body) = resume(resumer, &key, &mcp, &final_id).await;
        assert_eq!(status, 200);
        assert!(sse_events(&body).is_empty(), "{body}");
    }

    // An id that names no stored event, or another stream, replays nothing.
    for forged in [
        "1.not-a-stream",
        "0.x",
        "garbage",
        "999999999.00000000-0000-4000-8000-000000000000",
    ] {
        let (status, body) = resume(&server, &key, &mcp, forged).await;
        assert_eq!(status, 200, "{forged}");
        assert!(sse_events(&body).is_empty(), "{forged}: {body}");
    }
}

// ------------------------------------------------------------------------------ OpenAI /v1

async fn get_json(server: &Server, path: &str, key: &str) -> (u16, Value) {
    let response = server
        .client
        .get(server.url(path))
        .bearer_auth(key)
        .send()
        .await
        .expect("GET");
    common::status_and_json(response).await
}

async fn completion(
    server: &Server,
    key: &str,
    body: Value,
    session: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = server
        .client
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body);
    if let Some(session) = session {
        request = request.header("X-Session-Id", session);
    }
    let response = request.send().await.expect("POST");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn earlier_messages_are_context_and_a_named_session_replaces_them() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = Server::start(&data, &settings(&upstream)).await;
    let key = server.admin_key().to_string();
    upstream.push([Reply::text(&["Blue."])]);
    let (status, headers, body) = completion(
        &server,
        &key,
        json!({"model": "integrator-agent", "messages": [
            {"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": "My favourite colour is blue."},
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": [{"type": "text", "text": "What is my favourite colour?"}]}
        ]}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["choices"][0]["message"]["content"], "Blue.");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    let session = answer["session_id"]
        .as_str()
        .expect("session id")
        .to_string();
    assert_eq!(
        headers.get("x-session-id").and_then(|v| v.to_str().ok()),
        Some(session.as_str())
    );
    let sent = upstream.requests()[0].body["messages"].clone();
    let roles: Vec<&str> = sent
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert!(
        sent[0]["content"]
            .as_str()
            .is_some_and(|s| s.ends_with("Answer in one word.")),
        "the caller's instructions follow the agent's"
    );
    assert_eq!(sent[1]["content"], "My favourite colour is blue.");

    // Naming the session: its stored history is the context; earlier request messages are not.
    upstream.push([Reply::text(&["Still blue."])]);
    let (status, _, body) = completion(
        &server,
        &key,
        json!({"model": "integrator-agent", "messages": [
            {"role": "user", "content": "ignored"},
            {"role": "user", "content": "And now?"}
        ]}),
        Some(&session),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let sent = upstream.requests()[1].body["messages"].clone();
    let texts: Vec<&str> = sent
        .as_array()
        .expect("messages")
        .iter()
        .skip(1)
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(texts, ["What is my favourite colour?", "Blue.", "And now?"]);
    // Another user's session, or none at all, is not found.
    let other_key = data.user_with_key("other", "eve@other.test", "admin").await;
    let (status, _, body) = completion(
        &server,
        &other_key,
        json!({"model": "integrator-agent", "messages": [{"role": "user", "content": "hi"}]}),
        Some(&session),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let error: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(error["error"]["code"], "not_found");
}

#[tokio::test]
async fn a_streamed_completion_has_openais_exact_shape() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = Server::start(&data, &settings(&upstream)).await;
    let key = server.admin_key().to_string();
    upstream.push([
        Reply::tool_calls(&[("c1", "search_knowledge_base", json!({"query": "x"}))]),
        Reply::text_with_usage(&["Hel", "lo"], 120, 2),
    ]);
    let (status, headers, raw) = completion(
        &server,
        &key,
        json!({"model": "integrator-agent", "stream": true, "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": "hi"}]}),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    assert!(
        raw.contains(": tool_start search_knowledge_base\n\n"),
        "{raw}"
    );
    assert!(raw.ends_with("data: [DONE]\n\n"), "{raw}");
    let chunks: Vec<Value> = raw
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("chunk JSON"))
        .collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk" && c["model"] == "integrator-agent"));
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"]["completion_tokens"].as_u64().map(|n| n >= 2),
        Some(true)
    );
    assert_eq!(
        usage["usage"]["total_tokens"].as_u64(),
        Some(
            usage["usage"]["prompt_tokens"].as_u64().unwrap_or(0)
                + usage["usage"]["completion_tokens"].as_u64().unwrap_or(0)
        )
    );
}

#[tokio::test]
async fn openai_errors_come_in_openais_shape() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = Server::start(&data, &settings(&upstream)).await;
    let key = server.admin_key().to_string();
    let hi = json!({"model": "integrator-agent", "messages": [{"role": "user", "content": "hi"}]});
    let error = |body: &str| -> Value {
        serde_json::from_str::<Value>(body).expect("JSON")["error"].clone()
    };

    let (status, _, body) = completion(&server, "wrong", hi.clone(), None).await;
    assert_eq!(status, 401);
    assert_eq!(error(&body)["code"], "invalid_api_key");
    let response = server
        .client
        .post(server.url("/v1/chat/completions"))
        .json(&hi)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 401);
    let body = response.text().await.unwrap_or_default();
    assert_eq!(error(&body)["code"], "invalid_api_key");

    let capped = data.user_with_allowance("broke", "0").await;
    for stream in [false, true] {
        let mut body = hi.clone();
        body["stream"] = json!(stream);
        let (status, headers, text) = completion(&server, &capped, body, None).await;
        assert_eq!(status, 429, "{text}");
        assert_eq!(
            headers.get("x-should-retry").and_then(|v| v.to_str().ok()),
            Some("false")
        );
        assert_eq!(error(&text)["type"], "insufficient_quota");
        assert_eq!(error(&text)["code"], "insufficient_quota");
    }

    let bad = [
        (
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
            404,
            "model",
        ),
        (json!({"model": "integrator-agent"}), 400, "messages"),
        (
            json!({"model": "integrator-agent", "messages": []}),
            400,
            "messages",
        ),
        (
            json!({"model": "integrator-agent", "messages": [{"role": "assistant", "content": "hi"}]}),
            400,
            "messages",
        ),
        (
            json!({"model": "integrator-agent", "n": 2, "messages": [{"role": "user", "content": "hi"}]}),
            400,
            "n",
        ),
        (
            json!({"model": "integrator-agent", "tools": [{"type": "function", "function": {"name": "f"}}], "messages": [{"role": "user", "content": "hi"}]}),
            400,
            "tools",
        ),
        (
            json!({"model": "integrator-agent", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}]}),
            400,
            "messages[0].content",
        ),
        (
            json!({"model": "integrator-agent", "messages": [{"role": "tool", "content": "x"}, {"role": "user", "content": "hi"}]}),
            400,
            "messages[0].role",
        ),
    ];
    for (body, expected, param) in bad {
        let (status, _, text) = completion(&server, &key, body.clone(), None).await;
        assert_eq!(status, expected, "{body}: {text}");
        assert_eq!(error(&text)["param"], param, "{body}: {text}");
        assert!(error(&text)["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let (status, _, text) = completion(&server, &key, json!("not an object"), None).await;
    assert_eq!(status, 400, "{text}");
    assert!(
        upstream.requests().is_empty(),
        "no bad request reached the model"
    );

    let (status, models) = get_json(&server, "/v1/models", &key).await;
    assert_eq!(status, 200);
    assert_eq!(models["data"][0]["id"], "integrator-agent");
    let (status, missing) = get_json(&server, "/v1/models/gpt-4o", &key).await;
    assert_eq!(status, 404);
    assert_eq!(missing["error"]["code"], "model_not_found");
}

#[tokio::test]
async fn a_cancelled_ask_agent_stops_its_turn_and_keeps_what_was_written() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = Server::start(&data, &settings(&upstream)).await;
    let key = server.admin_key().to_string();
    let (_, created) = server.post("/sessions", &key, &json!({})).await;
    let session = created["session_id"].as_str().expect("session").to_string();
    let words: Vec<String> = (0..200).map(|n| format!("w{n} ")).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    upstream.push([Reply::slow_text(
        &words,
        std::time::Duration::from_millis(20),
    )]);
    let mut mcp = Mcp::new(&server, &key);
    mcp.initialize("2025-11-25").await;
    let call = json!({"jsonrpc": "2.0", "id": 77, "method": "tools/call", "params": {
        "name": "ask_agent", "arguments": {"message": "a long one", "session_id": session}}});
    let asking = {
        let request = mcp.send(&call);
        async move { request.await.text().await.unwrap_or_default() }
    };
    let cancel = async {
        // Once the turn is writing, the client gives up on the request.
        common::eventually(10, || async {
            let (_, messages) = server
                .get(&format!("/sessions/{session}/messages"), &key)
                .await;
            (upstream.requests().len() == 1 && messages.as_array().is_some_and(|m| !m.is_empty()))
                .then_some(())
        })
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let response = mcp
            .send(
                &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                          "params": {"requestId": 77, "reason": "the user gave up"}}),
            )
            .await;
        assert_eq!(response.status(), 202);
    };
    let (_, ()) = tokio::join!(asking, cancel);
    let stored = common::eventually(10, || async {
        let (_, messages) = server
            .get(&format!("/sessions/{session}/messages"), &key)
            .await;
        let last = messages.as_array()?.last()?.clone();
        (last["role"] == "assistant").then_some(last)
    })
    .await
    .expect("the partial answer is stored");
    assert_eq!(stored["interrupted"], true, "{stored}");
    let written = stored["content"].as_str().unwrap_or_default();
    assert!(
        written.starts_with("w0 ") && written.len() < words.concat().len(),
        "{written}"
    );
}

/// Hostile session ids and names, wherever a client may put them: never another user's data,
/// never a 5xx, and nothing reaches the model.
#[tokio::test]
async fn hostile_session_ids_reach_nothing() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = Server::start(&data, &settings(&upstream)).await;
    let key = server.admin_key().to_string();
    let victim_key = data.user_with_key("victim", "v@victim.test", "admin").await;
    let (_, created) = server.post("/sessions", &victim_key, &json!({})).await;
    let victims = created["session_id"].as_str().expect("session").to_string();
    let hostile = [
        victims.as_str(),
        "' OR '1'='1",
        "x'; DROP TABLE sessions; --",
        "../../../../etc/passwd",
        "%2e%2e%2f",
        "<script>alert(1)</script>",
        "00000000-0000-0000-0000-000000000000",
        "",
    ];
    let mut mcp = Mcp::new(&server, &key);
    mcp.initialize("2025-11-25").await;
    for id in hostile {
        let (status, answer) = mcp
            .request(
                "tools/call",
                json!({"name": "ask_agent", "arguments": {"message": "hi", "session_id": id}}),
            )
            .await;
        assert_eq!(status, 200, "{id}");
        assert_eq!(answer["result"]["isError"], true, "{id}: {answer}");
        let text = answer["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default();
        assert!(text.starts_with("not_found: "), "{id}: {text}");

        let hi = json!({"model": "integrator-agent", "messages": [{"role": "user", "content": "hi"}],
                        "metadata": {"session_id": id}});
        let (status, _, body) = completion(&server, &key, hi.clone(), None).await;
        assert_eq!(status, 404, "{id}: {body}");
        if !id.is_empty() && id.is_ascii() {
            let mut plain = hi.clone();
            plain["metadata"] = json!({});
            let (status, _, body) = completion(&server, &key, plain, Some(id)).await;
            assert_eq!(status, 404, "{id}: {body}");
        }
    }
    assert!(
        upstream.requests().is_empty(),
        "no hostile request reached the model"
    );
    // The victim's session is untouched.
    let (status, messages) = server
        .get(&format!("/sessions/{victims}/messages"), &victim_key)
        .await;
    assert_eq!((status, messages), (200, json!([])));
}
