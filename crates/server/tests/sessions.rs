//! Sessions: persistence, the 20-message window, listing and deletion, isolation between
//! users and tenants, serialised concurrent turns, stop and disconnect, crashes mid-stream.

mod common;

use std::time::Duration;

use common::upstream::{Reply, Upstream};
use common::{eventually, read_sse, tokens, Data, Server};
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::{json, Value};

/// The settings of a server on the scripted upstream.
fn settings(upstream: &Upstream) -> [(&str, &str); 3] {
    [
        ("OPENAI_API_KEY", "sk-test-key"),
        ("OPENAI_BASE_URL", upstream.base_url.as_str()),
        ("INTEGRATOR_LLM_RETRY_BASE_MS", "10"),
    ]
}

async fn start(upstream: &Upstream, data: &Data) -> Server {
    Server::start(data, &settings(upstream)).await
}

/// Reads a streamed response into `raw` until it holds at least `tokens` token events.
async fn read_until_tokens<S, B>(body: &mut S, raw: &mut String, tokens: usize)
where
    S: futures::Stream<Item = reqwest::Result<B>> + Unpin,
    B: AsRef<[u8]>,
{
    while raw.matches("\"type\":\"token\"").count() < tokens {
        let chunk = body.next().await.expect("more").expect("bytes");
        raw.push_str(&String::from_utf8_lossy(chunk.as_ref()));
    }
}

async fn new_session(server: &Server, key: &str) -> String {
    let (status, body) = server.post("/sessions", key, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["created"], true);
    body["session_id"].as_str().expect("id").to_string()
}

/// Scripts the upstream's next answer as a long one: a hundred tokens `{prefix}0 `,
/// `{prefix}1 `, …, one every 50 ms. Returns the whole answer.
fn push_long_answer(upstream: &Upstream, prefix: &str) -> String {
    let many: Vec<String> = (0..100).map(|n| format!("{prefix}{n} ")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    upstream.push([Reply::slow_text(&many, Duration::from_millis(50))]);
    many.concat()
}

/// Streams a message to a session and reads the answer up to its first `tokens` tokens;
/// returns the rest of the stream and what was read.
async fn stream_until_tokens(
    server: &Server,
    key: &str,
    session: &str,
    message: &str,
    tokens: usize,
) -> (BoxStream<'static, reqwest::Result<Vec<u8>>>, String) {
    let response = server
        .stream(
            &format!("/sessions/{session}/chat/stream"),
            key,
            &json!({"message": message}),
        )
        .await;
    let mut body = response
        .bytes_stream()
        .map(|chunk| chunk.map(|bytes| bytes.to_vec()))
        .boxed();
    let mut raw = String::new();
    read_until_tokens(&mut body, &mut raw, tokens).await;
    (body, raw)
}

/// Sends a message to a session with `POST …/chat` in a task of its own; the task ends with
/// the answer's status and body.
fn chat_in_background(
    server: &Server,
    key: &str,
    session: &str,
    body: Value,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let client = reqwest::Client::new();
    let url = server.api(&format!("/sessions/{session}/chat"));
    let key = key.to_string();
    tokio::spawn(async move {
        let response = client
            .post(url)
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .expect("POST");
        common::status_and_json(response).await
    })
}

#[tokio::test]
async fn the_context_is_the_system_prompt_and_the_last_twenty_messages() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = start(&upstream, &data).await;
    let key = server.admin_key();
    let session = new_session(&server, key).await;
    for n in 1..=12 {
        upstream.push([Reply::text(&[&format!("answer {n}")])]);
        let (_, body) = server
            .post(
                &format!("/sessions/{session}/chat"),
                key,
                &json!({"message": format!("question {n}")}),
            )
            .await;
        assert_eq!(body["response"], format!("answer {n}"));
    }
    upstream.push([Reply::text(&["answer 13"])]);
    server
        .post(
            &format!("/sessions/{session}/chat"),
            key,
            &json!({"message": "question 13"}),
        )
        .await;
    let last = upstream.requests().pop().expect("request").body;
    let messages = last["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 21, "system + 20 stored messages");
    assert_eq!(messages[0]["role"], "system");
    assert_eq!(
        messages[1],
        json!({"role": "assistant", "content": "answer 3"})
    );
    assert_eq!(
        messages[20],
        json!({"role": "user", "content": "question 13"})
    );

    let (_, history) = server
        .get(&format!("/sessions/{session}/messages"), key)
        .await;
    assert_eq!(
        history.as_array().map(Vec::len),
        Some(26),
        "all messages are kept"
    );
}

#[tokio::test]
async fn sessions_are_listed_newest_first_paginated_and_deleted() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = start(&upstream, &data).await;
    let key = server.admin_key();
    let first = new_session(&server, key).await;
    server
        .post(
            &format!("/sessions/{first}/chat"),
            key,
            &json!({"message": "How do I create a REST connection?"}),
        )
        .await;
    let second = new_session(&server, key).await;
    server
        .post(
            &format!("/sessions/{second}/chat"),
            key,
            &json!({"message": "Now schedule it"}),
        )
        .await;
    let empty = new_session(&server, key).await;

    let (status, list) = server.get("/sessions", key).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list["sessions"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["session_id"].as_str())
        .collect();
    assert_eq!(ids, [empty.as_str(), second.as_str(), first.as_str()]);
    assert_eq!(list["sessions"][1]["title"], "Now schedule it");
    assert_eq!(list["sessions"][1]["message_count"], 2);
    assert_eq!(list["sessions"][0]["title"], Value::Null);
    assert!(list["sessions"][0]["created_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    let (_, page) = server.get("/sessions?limit=1&offset=1", key).await;
    assert_eq!(page["sessions"][0]["session_id"], second.as_str());
    assert_eq!(
        (page["limit"].as_i64(), page["offset"].as_i64()),
        (Some(1), Some(1))
    );
    for bad in [
        "/sessions?limit=0",
        "/sessions?limit=abc",
        "/sessions?offset=-1",
    ] {
        let (status, body) = server.get(bad, key).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    let response = server
        .client
        .delete(server.api(&format!("/sessions/{first}")))
        .bearer_auth(key)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), 200);
    assert_eq!(
        server
            .get(&format!("/sessions/{first}/messages"), key)
            .await
            .0,
        404
    );
    let (status, body) = server
        .post(
            &format!("/sessions/{first}/chat"),
            key,
            &json!({"message": "hi"}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn other_users_and_tenants_get_404_like_a_missing_session() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = start(&upstream, &data).await;
    let owner = data.user_with_key("acme", "owner@acme.test", "user").await;
    let colleague = data
        .user_with_key("acme", "colleague@acme.test", "admin")
        .await;
    let stranger = data.user_with_key("globex", "x@globex.test", "admin").await;
    let session = new_session(&server, &owner).await;
    server
        .post(
            &format!("/sessions/{session}/chat"),
            &owner,
            &json!({"message": "private"}),
        )
        .await;

    for key in [&colleague, &stranger] {
        assert_eq!(
            server
                .get(&format!("/sessions/{session}/messages"), key)
                .await
                .0,
            404
        );
        assert_eq!(
            server
                .post(
                    &format!("/sessions/{session}/chat"),
                    key,
                    &json!({"message": "x"})
                )
                .await
                .0,
            404
        );
        assert_eq!(
            server
                .stream(
                    &format!("/sessions/{session}/chat/stream"),
                    key,
                    &json!({"message": "x"})
                )
                .await
                .status(),
            404
        );
        assert_eq!(
            server
                .post(&format!("/sessions/{session}/stop"), key, &json!({}))
                .await
                .0,
            404
        );
        let deleted = server
            .client
            .delete(server.api(&format!("/sessions/{session}")))
            .bearer_auth(key)
            .send()
            .await
            .expect("delete");
        assert_eq!(deleted.status(), 404);
        let (_, list) = server.get("/sessions", key).await;
        assert!(!list.to_string().contains(&session), "{list}");
    }
    for bogus in [
        "not-a-uuid",
        "00000000-0000-0000-0000-000000000000",
        "%27%20OR%201=1",
    ] {
        let (status, body) = server
            .get(&format!("/sessions/{bogus}/messages"), &owner)
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("not_found")),
            "{bogus}"
        );
    }
    let (_, history) = server
        .get(&format!("/sessions/{session}/messages"), &owner)
        .await;
    assert_eq!(
        history.as_array().map(Vec::len),
        Some(2),
        "the owner still has it all"
    );
}

#[tokio::test]
async fn concurrent_messages_to_one_session_do_not_interleave() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = start(&upstream, &data).await;
    let key = server.admin_key().to_string();
    let session = new_session(&server, &key).await;
    upstream.push([
        Reply::slow_text(&["first ", "answer"], Duration::from_millis(150)),
        Reply::slow_text(&["second ", "answer"], Duration::from_millis(150)),
    ]);
    let path = format!("/sessions/{session}/chat");
    let (one, two) = (json!({"message": "one"}), json!({"message": "two"}));
    let (a, b) = tokio::join!(
        server.post(&path, &key, &one),
        server.post(&path, &key, &two)
    );
    assert_eq!(a.0, 200);
    assert_eq!(b.0, 200);
    let (_, history) = server
        .get(&format!("/sessions/{session}/messages"), &key)
        .await;
    let roles: Vec<&str> = history
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert_eq!(
        roles,
        ["user", "assistant", "user", "assistant"],
        "{history}"
    );
    let requests = upstream.requests();
    let second_request = &requests[1].body["messages"];
    assert_eq!(
        second_request.as_array().map(Vec::len),
        Some(4),
        "the second turn saw the whole first one: {second_request}"
    );
}

/// A message that waits for the session's running turn, when the session is deleted meanwhile,
/// is answered 404 like a message to a missing session — not left waiting.
#[tokio::test]
async fn a_message_waiting_for_a_deleted_session_is_answered_404() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = start(&upstream, &data).await;
    let key = server.admin_key().to_string();
    let session = new_session(&server, &key).await;
    push_long_answer(&upstream, "t");
    let (mut body, mut raw) = stream_until_tokens(&server, &key, &session, "long answer", 1).await;
    let waiting = chat_in_background(&server, &key, &session, json!({"message": "and then?"}));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let deleted = reqwest::Client::new()
        .delete(server.api(&format!("/sessions/{session}")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(deleted.status(), 200);
    let (status, answer) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the waiting message is answered")
        .expect("the request task");
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["code"], "not_found", "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains(&session)),
        "{answer}"
    );
    while let Some(chunk) = body.next().await {
        raw.push_str(&String::from_utf8_lossy(&chunk.expect("bytes")));
    }
    let events = common::parse_sse(&raw);
    assert_eq!(
        events.last().map(|e| e["type"].clone()),
        Some(json!("end")),
        "the running turn was stopped: {raw}"
    );
    assert_eq!(
        upstream.requests().len(),
        1,
        "the waiting message reached no model"
    );
    let (status, _) = server
        .get(&format!("/sessions/{session}/messages"), &key)
        .await;
    assert_eq!(status, 404);
}

/// Starts a long answer on `runner`, stops it through `stopper` after the first token, and
/// checks what a stop promises: `stopped: true`, the stream ends with `end`, what was streamed
/// is stored marked interrupted (as `stopper` sees it), and a second stop finds nothing.
async fn stop_mid_stream(upstream: &Upstream, runner: &Server, stopper: &Server) {
    let key = runner.admin_key().to_string();
    let session = new_session(runner, &key).await;
    let whole = push_long_answer(upstream, "t");
    let (mut body, mut raw) = stream_until_tokens(runner, &key, &session, "long answer", 1).await;
    let (status, stopped) = stopper
        .post(&format!("/sessions/{session}/stop"), &key, &json!({}))
        .await;
    assert_eq!(
        (status, stopped["stopped"].as_bool()),
        (200, Some(true)),
        "{stopped}"
    );
    // Read before the rest of the stream: the stop answered once the partial answer was stored.
    let (_, history) = stopper
        .get(&format!("/sessions/{session}/messages"), &key)
        .await;
    while let Some(chunk) = body.next().await {
        raw.push_str(&String::from_utf8_lossy(&chunk.expect("bytes")));
    }
    let events = common::parse_sse(&raw);
    assert_eq!(
        events.last().map(|e| e["type"].clone()),
        Some(json!("end")),
        "{raw}"
    );
    let streamed = tokens(&events);
    assert!(
        !streamed.is_empty() && streamed.len() < whole.len(),
        "the turn stopped early: {streamed}"
    );
    let usage = events
        .iter()
        .find(|e| e["type"] == "usage")
        .unwrap_or_else(|| panic!("the stopped call's usage is reported: {raw}"));
    assert!(
        usage["completion_tokens"].as_u64() > Some(0) && usage["model"] != "",
        "{usage}"
    );
    assert_eq!(
        history[1],
        json!({"role": "assistant", "content": streamed, "interrupted": true})
    );
    assert!(
        eventually(5, || async { (upstream.abandoned() == 1).then_some(()) })
            .await
            .is_some(),
        "the upstream request was dropped"
    );
    let (_, again) = stopper
        .post(&format!("/sessions/{session}/stop"), &key, &json!({}))
        .await;
    assert_eq!(again["stopped"], false, "nothing runs any more");
}

#[tokio::test]
async fn stop_keeps_what_was_generated_and_ends_the_stream() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = start(&upstream, &data).await;
    stop_mid_stream(&upstream, &server, &server).await;
}

/// A non-streaming chat that is stopped answers with what was generated and with the usage of
/// the stopped call: the same tokens the usage report counts.
#[tokio::test]
async fn a_stopped_chat_answers_its_partial_text_and_usage() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = start(&upstream, &data).await;
    let key = server.admin_key().to_string();
    let session = new_session(&server, &key).await;
    let whole = push_long_answer(&upstream, "t");
    let chat = chat_in_background(
        &server,
        &key,
        &session,
        json!({"message": "long answer", "include_tools": false}),
    );
    assert!(
        eventually(5, || async {
            (upstream.requests().len() == 1).then_some(())
        })
        .await
        .is_some(),
        "the model was called"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, stopped) = server
        .post(&format!("/sessions/{session}/stop"), &key, &json!({}))
        .await;
    assert_eq!(stopped["stopped"], true, "{stopped}");
    let (status, body) = chat.await.expect("the chat answers");
    assert_eq!(status, 200, "{body}");
    let partial = body["response"].as_str().unwrap_or_default();
    assert!(!partial.is_empty() && partial.len() < whole.len(), "{body}");
    let (_, history) = server
        .get(&format!("/sessions/{session}/messages"), &key)
        .await;
    assert_eq!(
        history[1],
        json!({"role": "assistant", "content": partial, "interrupted": true})
    );
    let (_, usage) = server.get("/usage", &key).await;
    let model = body["usage"]["model"].as_str().unwrap_or_default();
    let recorded = &usage["tenant"]["by_model"][model];
    assert!(
        body["usage"]["completion_tokens"].as_u64() > Some(0),
        "{body}"
    );
    assert_eq!(
        (
            &body["usage"]["prompt_tokens"],
            &body["usage"]["completion_tokens"]
        ),
        (&recorded["prompt_tokens"], &recorded["completion_tokens"]),
        "the answer reports what was recorded: {body} {usage}"
    );
}

/// With several replicas, a stop sent to any of them reaches the one that runs the turn
/// (PostgreSQL only: on SQLite there is one server).
#[tokio::test]
async fn stop_reaches_the_replica_that_runs_the_turn() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let Some(replica_data) = data.replica() else {
        return;
    };
    let runner = start(&upstream, &data).await;
    let other = start(&upstream, &replica_data).await;
    stop_mid_stream(&upstream, &runner, &other).await;
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_turn() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = start(&upstream, &data).await;
    let key = server.admin_key().to_string();
    let session = new_session(&server, &key).await;
    push_long_answer(&upstream, "w");
    let (body, _) = stream_until_tokens(&server, &key, &session, "go", 3).await;
    drop(body);
    let history = eventually(10, || async {
        let (_, history) = server
            .get(&format!("/sessions/{session}/messages"), &key)
            .await;
        (history.as_array().map(Vec::len) == Some(2)).then_some(history)
    })
    .await
    .expect("the partial answer is stored");
    assert_eq!(history[1]["interrupted"], true);
    assert!(
        history[1]["content"]
            .as_str()
            .unwrap_or_default()
            .starts_with("w0 w1 w2 "),
        "{history}"
    );
    assert!(
        eventually(5, || async { (upstream.abandoned() == 1).then_some(()) })
            .await
            .is_some(),
        "the upstream request was dropped"
    );
}

#[tokio::test]
async fn a_crash_mid_stream_keeps_the_user_message_and_no_half_answer() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = Server::start_process(&data, &settings(&upstream)).await;
    let key = server.admin_key().to_string();
    let session = new_session(&server, &key).await;
    upstream.push([Reply::slow_text(
        &["a ", "b ", "c ", "d ", "e ", "f "],
        Duration::from_millis(300),
    )]);
    let (body, _) = stream_until_tokens(&server, &key, &session, "survive this", 1).await;
    server.kill().await;
    drop(body);

    let server = start(&upstream, &data).await;
    let (status, history) = server
        .get(&format!("/sessions/{session}/messages"), &key)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        history,
        json!([{"role": "user", "content": "survive this"}])
    );
    upstream.push([Reply::text(&["fine"])]);
    let (_, body) = server
        .post(
            &format!("/sessions/{session}/chat"),
            &key,
            &json!({"message": "again"}),
        )
        .await;
    assert_eq!(
        body["response"], "fine",
        "the session is usable after the crash: {body}"
    );
}

#[tokio::test]
async fn sessions_survive_a_restart() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = start(&upstream, &data).await;
    let key = server.admin_key().to_string();
    let session = new_session(&server, &key).await;
    upstream.push([Reply::text(&["remembered"])]);
    server
        .post(
            &format!("/sessions/{session}/chat"),
            &key,
            &json!({"message": "remember me"}),
        )
        .await;
    server.stop().await;
    let server = start(&upstream, &data).await;
    upstream.push([Reply::text(&["yes"])]);
    let (_, body) = server
        .post(
            &format!("/sessions/{session}/chat"),
            &key,
            &json!({"message": "do you?"}),
        )
        .await;
    assert_eq!(body["response"], "yes");
    let requests = upstream.requests();
    let context = &requests.last().expect("request").body["messages"];
    assert_eq!(
        context[1],
        json!({"role": "user", "content": "remember me"})
    );
    assert_eq!(
        context[2],
        json!({"role": "assistant", "content": "remembered"})
    );
    let (events, _) = read_sse(
        server
            .stream(
                &format!("/sessions/{session}/chat/stream"),
                &key,
                &json!({"message": "3"}),
            )
            .await,
    )
    .await;
    assert_eq!(events[0]["session_id"], session.as_str());
}
