//! The agent over HTTP against a scripted OpenAI-compatible upstream: SSE events and their
//! order, the JSON fold, tools, the step limit, prompts, retries and errors.

mod common;

use std::time::Duration;

use common::upstream::{Reply, Upstream};
use common::{parse_sse, read_sse, tokens, types, Data, Server};
use serde_json::{json, Value};

const SERVER_KEY: &str = "sk-test-server-key-0123456789";

/// The settings of a server on the scripted upstream.
fn settings<'a>(upstream: &'a Upstream, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("OPENAI_API_KEY", SERVER_KEY),
        ("OPENAI_BASE_URL", upstream.base_url.as_str()),
        ("INTEGRATOR_MODEL", "gpt-test"),
        ("INTEGRATOR_LLM_RETRY_BASE_MS", "10"),
    ];
    env.extend_from_slice(extra);
    env
}

async fn start(upstream: &Upstream, extra: &[(&str, &str)]) -> (Data, Server) {
    let data = Data::new().await;
    let server = Server::start(&data, &settings(upstream, extra)).await;
    (data, server)
}

fn search_call() -> Reply {
    Reply::tool_calls(&[(
        "call_1",
        "search_knowledge_base",
        json!({"query": "daily sync REST to PostgreSQL"}),
    )])
}

#[tokio::test]
async fn stream_sends_every_event_in_order_and_tokens_equal_the_stored_message() {
    let upstream = Upstream::start().await;
    upstream.push([
        search_call(),
        Reply::text(&["To ", "set up ", "a daily ", "sync..."]),
    ]);
    let (_data, server) = start(&upstream, &[]).await;
    let response = server
        .stream(
            "/chat/stream",
            server.admin_key(),
            &json!({"message": "How do I set up a daily sync from a REST API to PostgreSQL?"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("text/event-stream"));
    let (events, raw) = read_sse(response).await;
    assert!(raw.starts_with("data: {\"type\":\"session\""), "{raw}");
    assert_eq!(
        types(&events),
        [
            "session",
            "phase",
            "usage",
            "tool_start",
            "tool_end",
            "phase",
            "phase",
            "token",
            "token",
            "token",
            "token",
            "usage",
            "end"
        ],
        "{raw}"
    );
    assert_eq!(
        events[1],
        json!({"type": "phase", "phase": "thinking", "message": "Reviewing your request..."})
    );
    assert_eq!(
        events[3],
        json!({"type": "tool_start", "tool": "search_knowledge_base", "message": "Searching the knowledge base..."})
    );
    assert_eq!(
        events[4],
        json!({"type": "tool_end", "tool": "search_knowledge_base"})
    );
    assert_eq!(events[5]["phase"], "analyzing");
    assert_eq!(events[6]["phase"], "preparing");
    assert_eq!(
        events[11],
        json!({"type": "usage", "prompt_tokens": 100, "completion_tokens": 4, "model": "gpt-test"})
    );

    let session_id = events[0]["session_id"].as_str().expect("session id");
    let (status, messages) = server
        .get(
            &format!("/sessions/{session_id}/messages"),
            server.admin_key(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        messages,
        json!([
            {"role": "user", "content": "How do I set up a daily sync from a REST API to PostgreSQL?"},
            {"role": "assistant", "content": tokens(&events)},
        ])
    );
    assert_eq!(tokens(&events), "To set up a daily sync...");

    let requests = upstream.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(
            request.authorization.as_deref(),
            Some(format!("Bearer {SERVER_KEY}").as_str())
        );
        assert_eq!(request.body["model"], "gpt-test");
        assert_eq!(request.body["stream"], true);
        assert_eq!(request.body["stream_options"]["include_usage"], true);
        assert!(request.body["tools"].as_array().is_some_and(|t| t
            .iter()
            .any(|t| t["function"]["name"] == "search_knowledge_base")));
    }
    let second = requests[1].body["messages"].as_array().expect("messages");
    let assistant = &second[second.len() - 2];
    assert_eq!(
        assistant["tool_calls"][0]["function"]["arguments"],
        json!({"query": "daily sync REST to PostgreSQL"}).to_string(),
        "fragments reassembled"
    );
    let tool = &second[second.len() - 1];
    assert_eq!(tool["role"], "tool");
    assert_eq!(tool["tool_call_id"], "call_1");
    assert!(
        tool["content"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Based on the knowledge base:"),
        "{tool}"
    );
}

/// A model that writes a sentence before calling tools: the sentence streams and is stored
/// with the answer, stays in the model's context beside its tool calls, and the final answer
/// is announced by `preparing` again after `analyzing`.
#[tokio::test]
async fn text_written_beside_tool_calls_stays_in_the_context() {
    let upstream = Upstream::start().await;
    upstream.push([
        Reply::text_then_tool_calls(
            &["Let me ", "look that up. "],
            &[(
                "call_1",
                "search_knowledge_base",
                json!({"query": "daily sync"}),
            )],
        ),
        Reply::text(&["Use ", "a schedule."]),
    ]);
    let (_data, server) = start(&upstream, &[]).await;
    let response = server
        .stream(
            "/chat/stream",
            server.admin_key(),
            &json!({"message": "How do I sync daily?"}),
        )
        .await;
    let (events, raw) = read_sse(response).await;
    assert_eq!(
        types(&events),
        [
            "session",
            "phase",
            "phase",
            "token",
            "token",
            "usage",
            "tool_start",
            "tool_end",
            "phase",
            "phase",
            "token",
            "token",
            "usage",
            "end"
        ],
        "{raw}"
    );
    let phases: Vec<&str> = events.iter().filter_map(|e| e["phase"].as_str()).collect();
    assert_eq!(
        phases,
        ["thinking", "preparing", "analyzing", "preparing"],
        "{raw}"
    );
    assert_eq!(tokens(&events), "Let me look that up. Use a schedule.");
    let second = upstream.requests()[1].body["messages"].clone();
    let second = second.as_array().expect("messages");
    let assistant = &second[second.len() - 2];
    assert_eq!(assistant["role"], "assistant", "{assistant}");
    assert_eq!(assistant["content"], "Let me look that up. ", "{assistant}");
    assert_eq!(
        assistant["tool_calls"][0]["function"]["name"],
        "search_knowledge_base"
    );
    let session_id = events[0]["session_id"].as_str().expect("session id");
    let (_, messages) = server
        .get(
            &format!("/sessions/{session_id}/messages"),
            server.admin_key(),
        )
        .await;
    assert_eq!(messages[1]["content"], tokens(&events));
}

#[tokio::test]
async fn chat_folds_the_same_events_into_json() {
    let upstream = Upstream::start().await;
    upstream.push([
        Reply::tool_calls(&[
            (
                "call_a",
                "search_knowledge_base",
                json!({"query": "schedules"}),
            ),
            (
                "call_b",
                "search_templates",
                json!({"query": "REST API to PostgreSQL"}),
            ),
        ]),
        Reply::text(&["Use ", "template 1."]),
    ]);
    let (_data, server) = start(&upstream, &[]).await;
    let (status, body) = server
        .post(
            "/chat",
            server.admin_key(),
            &json!({"message": "Set up a sync"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response"], "Use template 1.");
    assert_eq!(
        body["tools_used"],
        json!(["search_knowledge_base", "search_templates"])
    );
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 300, "completion_tokens": 22, "model": "gpt-test"})
    );
    assert!(body.get("error").is_none());
    let session_id = body["session_id"].as_str().expect("id");
    let (status, follow_up) = server
        .post(
            &format!("/sessions/{session_id}/chat"),
            server.admin_key(),
            &json!({"message": "thanks"}),
        )
        .await;
    assert_eq!(
        status, 200,
        "the transient session can be continued: {follow_up}"
    );
    assert_eq!(follow_up["session_id"], session_id);
    assert!(
        follow_up.get("tools_used").is_none(),
        "omitted when no tools ran: {follow_up}"
    );
}

#[tokio::test]
async fn the_step_limit_forces_an_answer_without_tools() {
    let upstream = Upstream::start().await;
    upstream.push([search_call(), search_call(), Reply::text(&["Done."])]);
    let (_data, server) = start(&upstream, &[("INTEGRATOR_MAX_STEPS", "2")]).await;
    let (_, body) = server
        .post(
            "/chat",
            server.admin_key(),
            &json!({"message": "loop forever"}),
        )
        .await;
    assert_eq!(
        body["response"], "",
        "the second (last) step got the tool-call reply but had no tools: {body}"
    );
    let requests = upstream.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[0].body.get("tools").is_some());
    assert!(
        requests[1].body.get("tools").is_none(),
        "the last step offers no tools"
    );
}

#[tokio::test]
async fn include_tools_false_and_system_prompt_override() {
    let upstream = Upstream::start().await;
    upstream.push([Reply::text(&["Hi."])]);
    let (_data, server) = start(&upstream, &[]).await;
    let (_, body) = server
        .post("/chat", server.admin_key(), &json!({"message": "hello", "include_tools": false, "system_prompt": "You are a pirate."}))
        .await;
    assert_eq!(body["response"], "Hi.");
    let request = &upstream.requests()[0].body;
    assert!(request.get("tools").is_none(), "{request}");
    assert_eq!(
        request["messages"][0],
        json!({"role": "system", "content": "You are a pirate."})
    );
    assert_eq!(
        request["messages"][1],
        json!({"role": "user", "content": "hello"})
    );
}

#[tokio::test]
async fn chat_bodies_are_validated() {
    let upstream = Upstream::start().await;
    let (_data, server) = start(&upstream, &[]).await;
    for (body, code, field) in [
        (json!({}), "missing_field", "message"),
        (json!({"message": ""}), "invalid_field", "message"),
        (json!({"message": 5}), "invalid_field", "message"),
        (
            json!({"message": "x", "include_tools": "yes"}),
            "invalid_field",
            "include_tools",
        ),
        (
            json!({"message": "x", "system_prompt": ["a"]}),
            "invalid_field",
            "system_prompt",
        ),
    ] {
        for path in ["/chat", "/chat/stream"] {
            let (status, error) = server.post(path, server.admin_key(), &body).await;
            assert_eq!(status, 400, "{path} {body}: {error}");
            assert_eq!(
                (error["code"].as_str(), error["field"].as_str()),
                (Some(code), Some(field)),
                "{error}"
            );
        }
    }
    assert!(upstream.requests().is_empty(), "nothing reached the model");
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_before_the_first_token() {
    let upstream = Upstream::start().await;
    upstream.push([
        Reply::status(500, "boom"),
        Reply::Status {
            status: 429,
            message: "slow down".into(),
            retry_after: Some(0),
        },
        Reply::text(&["Recovered."]),
    ]);
    let (_data, server) = start(&upstream, &[]).await;
    let (_, body) = server
        .post("/chat", server.admin_key(), &json!({"message": "hi"}))
        .await;
    assert_eq!(body["response"], "Recovered.", "{body}");
    assert_eq!(upstream.requests().len(), 3);
}

#[tokio::test]
async fn exhausted_retries_end_with_a_retryable_error_and_no_answer_stored() {
    let upstream = Upstream::start().await;
    upstream.push((0..4).map(|_| Reply::status(503, "overloaded")));
    let (_data, server) = start(&upstream, &[]).await;
    let response = server
        .stream(
            "/chat/stream",
            server.admin_key(),
            &json!({"message": "hi"}),
        )
        .await;
    let (events, raw) = read_sse(response).await;
    let last = events.last().expect("events");
    assert_eq!(last["type"], "error", "{raw}");
    assert_eq!(last["retryable"], true);
    assert!(
        !types(&events).contains(&"end".to_string()),
        "an error closes the stream without end"
    );
    assert_eq!(upstream.requests().len(), 4, "one call and three retries");
    let session_id = events[0]["session_id"].as_str().expect("id");
    let (_, messages) = server
        .get(
            &format!("/sessions/{session_id}/messages"),
            server.admin_key(),
        )
        .await;
    assert_eq!(
        messages,
        json!([{"role": "user", "content": "hi"}]),
        "the user message is kept, no half answer"
    );
}

/// The `error` of a `/chat` answer to "hi" (a failed turn is still a 200).
async fn chat_error(server: &Server) -> String {
    let (status, body) = server
        .post("/chat", server.admin_key(), &json!({"message": "hi"}))
        .await;
    assert_eq!(status, 200, "{body}");
    body["error"].as_str().expect("error field").to_string()
}

#[tokio::test]
async fn upstream_refusals_are_not_retried_and_never_leak_the_key() {
    let upstream = Upstream::start().await;
    upstream.push([Reply::status(
        401,
        &format!("Incorrect API key provided: {SERVER_KEY}"),
    )]);
    let data = Data::new().await;
    // Its own process, so that its log can be read.
    let server = Server::start_process(&data, &settings(&upstream, &[])).await;
    let error = chat_error(&server).await;
    assert!(error.contains("401"), "{error}");
    assert!(!error.contains("0123456789"), "key leaked: {error}");
    assert!(
        !server.log().contains("0123456789"),
        "key leaked into the log"
    );
    assert_eq!(upstream.requests().len(), 1);
}

#[tokio::test]
async fn a_redirecting_provider_is_reported_with_its_target_not_followed() {
    let upstream = Upstream::start().await;
    // Back to the same address: a client following redirects would call the model twice.
    let location = format!("{}/chat/completions", upstream.base_url);
    upstream.push([Reply::redirect(307, &location)]);
    let (_data, server) = start(&upstream, &[]).await;
    let error = chat_error(&server).await;
    assert!(
        error.contains("307") && error.contains(&location) && error.contains("OPENAI_BASE_URL"),
        "{error}"
    );
    assert_eq!(
        upstream.requests().len(),
        1,
        "the redirect was not followed"
    );
}

/// Streams a turn whose model stream fails after `expected` was sent: checks that the tokens
/// are `expected` and the last event a retryable `error`; returns the events, the raw stream
/// and the assistant message stored for the turn.
async fn partial_answer_then_retryable_error(
    server: &Server,
    expected: &str,
) -> (Vec<Value>, String, Value) {
    let (events, raw) = read_sse(
        server
            .stream(
                "/chat/stream",
                server.admin_key(),
                &json!({"message": "hi"}),
            )
            .await,
    )
    .await;
    assert_eq!(tokens(&events), expected, "{raw}");
    let last = events.last().expect("events");
    assert_eq!(
        (last["type"].as_str(), last["retryable"].as_bool()),
        (Some("error"), Some(true)),
        "{raw}"
    );
    let session_id = events[0]["session_id"].as_str().expect("id");
    let (_, messages) = server
        .get(
            &format!("/sessions/{session_id}/messages"),
            server.admin_key(),
        )
        .await;
    let stored = messages[1].clone();
    (events, raw, stored)
}

#[tokio::test]
async fn a_stream_cut_off_without_a_finish_reason_or_done_is_an_error_not_an_answer() {
    let upstream = Upstream::start().await;
    upstream.push([Reply::cut_off_after(&["Hello ", "from "])]);
    let (_data, server) = start(&upstream, &[]).await;
    let (events, raw, stored) = partial_answer_then_retryable_error(&server, "Hello from ").await;
    assert!(
        !events.iter().any(|e| e["type"] == "end"),
        "no end after a cut-off stream: {raw}"
    );
    assert_eq!(
        stored,
        json!({"role": "assistant", "content": "Hello from ", "interrupted": true})
    );

    // Cut off before any token: retried like a broken connection, and the retry answers.
    upstream.push([Reply::cut_off_after(&[]), Reply::text(&["Whole."])]);
    let (status, body) = server
        .post("/chat", server.admin_key(), &json!({"message": "again"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response"], "Whole.", "{body}");
    assert!(body.get("error").is_none(), "{body}");
}

#[tokio::test]
async fn a_complete_answer_whose_body_ends_without_done_is_an_answer() {
    let upstream = Upstream::start().await;
    upstream.push([Reply::text_without_done(&["All ", "there."])]);
    let (_data, server) = start(&upstream, &[]).await;
    let (status, body) = server
        .post("/chat", server.admin_key(), &json!({"message": "hi"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response"], "All there.", "{body}");
    assert!(body.get("error").is_none(), "{body}");
    assert_eq!(upstream.requests().len(), 1, "not retried");
}

#[tokio::test]
async fn a_stream_that_breaks_after_tokens_reports_a_retryable_error_and_keeps_the_partial_answer()
{
    let upstream = Upstream::start().await;
    upstream.push([Reply::broken_after(&["Half ", "an "])]);
    let (_data, server) = start(&upstream, &[]).await;
    let (_, _, stored) = partial_answer_then_retryable_error(&server, "Half an ").await;
    assert_eq!(
        upstream.requests().len(),
        1,
        "no retry once tokens reached the client"
    );
    assert_eq!(
        stored,
        json!({"role": "assistant", "content": "Half an ", "interrupted": true})
    );
}

#[tokio::test]
async fn keep_alive_comments_fill_long_silences() {
    let upstream = Upstream::start().await;
    upstream.push([Reply::slow_text(&["late"], Duration::from_millis(1200))]);
    let (_data, server) = start(&upstream, &[("INTEGRATOR_SSE_KEEPALIVE_SECONDS", "1")]).await;
    let (events, raw) = read_sse(
        server
            .stream(
                "/chat/stream",
                server.admin_key(),
                &json!({"message": "hi"}),
            )
            .await,
    )
    .await;
    assert!(raw.contains(": keep-alive\n\n"), "{raw}");
    assert_eq!(tokens(&events), "late");
    assert_eq!(parse_sse(&raw).len(), events.len());
}

/// What a raw HTTP/1.1 client reads, one `read` at a time, until the server closes.
async fn raw_reads(server: &Server, path: &str, body: &Value) -> Vec<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = server.base.trim_start_matches("http://").to_string();
    let mut socket = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let body = body.to_string();
    let request = format!(
        "POST {}{path} HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        common::API,
        server.admin_key(),
        body.len()
    );
    socket.write_all(request.as_bytes()).await.expect("send");
    let mut reads = Vec::new();
    let mut buffer = vec![0u8; 65536];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(30), socket.read(&mut buffer))
            .await
            .expect("the stream goes on")
            .expect("read");
        if read == 0 {
            return reads;
        }
        reads.push(String::from_utf8_lossy(&buffer[..read]).into_owned());
    }
}

#[tokio::test]
async fn the_response_head_leaves_with_the_first_events_and_the_last_chunk_with_end() {
    let upstream = Upstream::start().await;
    upstream.push([Reply::slow_text(
        &["one ", "two"],
        Duration::from_millis(300),
    )]);
    let (_data, server) = start(&upstream, &[]).await;
    let reads = raw_reads(
        &server,
        "/chat/stream",
        &json!({"message": "hi", "include_tools": false}),
    )
    .await;
    // One write carries the head and `session`: the client hears nothing before the session
    // exists, then both at once.
    let first = &reads[0];
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{reads:?}");
    assert!(first.contains("text/event-stream"), "{reads:?}");
    assert!(first.contains(r#""type":"session""#), "{reads:?}");
    assert!(!first.contains(r#""type":"token""#), "{reads:?}");
    // The stream's closing chunk travels with `end`, not in a write of its own.
    let last = reads.last().expect("reads");
    assert!(last.contains(r#""type":"end""#), "{reads:?}");
    assert!(last.ends_with("0\r\n\r\n"), "{reads:?}");
}

#[tokio::test]
async fn the_builtin_responder_answers_without_any_key() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let (status, body) = server
        .post(
            "/chat",
            server.admin_key(),
            &json!({"message": "How do I set up a daily sync from a REST API to PostgreSQL?"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["usage"]["model"], "builtin");
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap_or(0) > 0);
    assert!(body["usage"]["completion_tokens"].as_u64().unwrap_or(0) > 0);
    assert_eq!(body["tools_used"], json!(["search_knowledge_base"]));
    let response = body["response"].as_str().expect("text");
    assert!(response.contains("REST API"), "{response}");
    assert!(response.contains("docs/"), "links to sources: {response}");

    let (events, _) = read_sse(
        server
            .stream(
                "/chat/stream",
                server.admin_key(),
                &json!({"message": "Is there a template for CSV files?"}),
            )
            .await,
    )
    .await;
    let kinds = types(&events);
    assert_eq!(
        &kinds[..5],
        ["session", "phase", "usage", "tool_start", "tool_end"]
    );
    assert_eq!(events[3]["tool"], "search_templates");
    assert_eq!(kinds.last().map(String::as_str), Some("end"));
    let session_id = events[0]["session_id"].as_str().expect("id");
    let (_, messages) = server
        .get(
            &format!("/sessions/{session_id}/messages"),
            server.admin_key(),
        )
        .await;
    assert_eq!(
        messages[1]["content"].as_str(),
        Some(tokens(&events).as_str())
    );

    // A workspace instruction runs as that command through host_cli.
    let (status, created) = server
        .tool(
            server.admin_key(),
            "host_cli",
            json!({"command": "create connection lake type=sqlite path=lake.db"}),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let (_, shown) = server
        .post(
            "/chat",
            server.admin_key(),
            &json!({"message": "Please show connection lake."}),
        )
        .await;
    assert_eq!(shown["tools_used"], json!(["host_cli"]), "{shown}");
    let text = shown["response"].as_str().unwrap_or_default();
    assert!(text.contains("lake") && text.contains("sqlite"), "{text}");

    let (_, plain) = server
        .post(
            "/chat",
            server.admin_key(),
            &json!({"message": "hello", "include_tools": false}),
        )
        .await;
    assert!(plain.get("tools_used").is_none());
    assert!(
        plain["response"]
            .as_str()
            .unwrap_or_default()
            .contains("builtin responder"),
        "{plain}"
    );
}

#[allow(dead_code)]
fn unused(_: Value) {}
