//! Resumable streams: every event of a turn has an id (`TURN:SEQ`); `GET
//! /sessions/{id}/stream` replays the events after `Last-Event-ID` (or `?after=`) and follows
//! the turn live to its end, on this server or — on PostgreSQL — on another replica; a client
//! may let its turn run on without it (`"on_disconnect": "continue"`).

mod common;

use std::time::Duration;

use common::upstream::{Reply, Upstream};
use common::{Data, Server};
use futures::StreamExt;
use serde_json::{json, Value};

fn settings(upstream: &Upstream) -> Vec<(&str, &str)> {
    vec![
        ("OPENAI_API_KEY", "sk-test-key"),
        ("OPENAI_BASE_URL", upstream.base_url.as_str()),
        ("INTEGRATOR_LLM_RETRY_BASE_MS", "10"),
    ]
}

/// One SSE event: its id and its JSON.
#[derive(Debug, Clone)]
struct Sse {
    id: String,
    data: Value,
}

/// The complete events in `raw` (blocks ended by a blank line); comments skipped.
fn parse(raw: &str) -> Vec<Sse> {
    let complete = match raw.rfind("\n\n") {
        Some(end) => &raw[..end],
        None => "",
    };
    complete
        .split("\n\n")
        .filter_map(|block| {
            let id = block
                .lines()
                .find_map(|l| l.strip_prefix("id:"))
                .map(|v| v.trim().to_string());
            let data = block
                .lines()
                .find_map(|l| l.strip_prefix("data:"))
                .map(|v| serde_json::from_str(v.trim()).expect("event JSON"))?;
            Some(Sse {
                id: id.expect("every event has an id"),
                data,
            })
        })
        .collect()
}

fn text(events: &[Sse]) -> String {
    events
        .iter()
        .filter(|e| e.data["type"] == "token")
        .filter_map(|e| e.data["content"].as_str())
        .collect()
}

fn seq(id: &str) -> u64 {
    id.rsplit_once(':')
        .and_then(|(_, n)| n.parse().ok())
        .expect("TURN:SEQ")
}

/// A long answer: `count` tokens `w0 `, `w1 `, … one every `delay`.
fn long_answer(upstream: &Upstream, count: usize, delay: Duration) -> String {
    let words: Vec<String> = (0..count).map(|n| format!("w{n} ")).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    upstream.push([Reply::slow_text(&words, delay)]);
    words.concat()
}

async fn new_session(server: &Server, key: &str) -> String {
    let (status, body) = server.post("/sessions", key, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    body["session_id"].as_str().expect("id").to_string()
}

/// Streams a message and reads until `tokens` token events arrived; then drops the
/// connection. Returns the events read.
async fn read_then_leave(
    server: &Server,
    key: &str,
    session: &str,
    body: Value,
    tokens: usize,
) -> Vec<Sse> {
    let response = server
        .stream(&format!("/sessions/{session}/chat/stream"), key, &body)
        .await;
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut raw = String::new();
    loop {
        let events = parse(&raw);
        if events.iter().filter(|e| e.data["type"] == "token").count() >= tokens {
            return events;
        }
        let chunk = stream.next().await.expect("more").expect("bytes");
        raw.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// `GET /sessions/{id}/stream` with an optional `Last-Event-ID` and query.
async fn rejoin(
    server: &Server,
    key: &str,
    session: &str,
    last_event_id: Option<&str>,
    query: &str,
) -> (u16, String) {
    let mut request = server
        .client
        .get(server.api(&format!("/sessions/{session}/stream{query}")))
        .bearer_auth(key);
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    let response = request.send().await.expect("GET stream");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// The events' ids are `TURN:1`, `TURN:2`, … of one turn.
fn assert_numbered(events: &[Sse], from: u64) {
    let turn = events[0]
        .id
        .rsplit_once(':')
        .expect("TURN:SEQ")
        .0
        .to_string();
    for (i, event) in events.iter().enumerate() {
        assert_eq!(
            event.id,
            format!("{turn}:{}", from + i as u64),
            "{events:?}"
        );
    }
}

#[tokio::test]
async fn a_rejoin_replays_exactly_the_missed_events_then_follows_live() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = Server::start(&data, &settings(&upstream)).await;
    let key = server.admin_key();
    let session = new_session(&server, key).await;
    let answer = long_answer(&upstream, 40, Duration::from_millis(40));

    let first = read_then_leave(
        &server,
        key,
        &session,
        json!({"message": "tell me a long story", "on_disconnect": "continue"}),
        5,
    )
    .await;
    assert_eq!(first[0].data["type"], "session");
    assert_numbered(&first, 1);
    let last_id = first.last().expect("events").id.clone();

    // The turn went on without its client; the rejoin gets the rest, from the next event.
    let (status, raw) = rejoin(&server, key, &session, Some(&last_id), "").await;
    assert_eq!(status, 200, "{raw}");
    let rest = parse(&raw);
    assert_eq!(
        seq(&rest[0].id),
        seq(&last_id) + 1,
        "nothing twice, nothing lost"
    );
    assert_numbered(&rest, seq(&last_id) + 1);
    assert_eq!(rest.last().expect("events").data["type"], "end");
    let whole = format!("{}{}", text(&first), text(&rest));
    assert_eq!(whole, answer);

    // The answer was stored whole; `?after=N` (a bare number) replays the same turn again.
    let (_, messages) = server
        .get(&format!("/sessions/{session}/messages"), key)
        .await;
    assert_eq!(messages[1]["content"], answer);
    assert!(messages[1].get("interrupted").is_none());
    let (status, raw) = rejoin(&server, key, &session, None, "?after=0").await;
    assert_eq!(status, 200);
    let replay = parse(&raw);
    assert_eq!(replay.len() as u64, seq(&last_id) + rest.len() as u64);
    assert_eq!(text(&replay), answer);
    // `?after` wins over the header.
    let (_, raw) = rejoin(&server, key, &session, Some(&last_id), "?after=1").await;
    assert_eq!(seq(&parse(&raw)[0].id), 2);
}

#[tokio::test]
async fn without_continue_a_client_that_leaves_still_stops_its_turn() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = Server::start(&data, &settings(&upstream)).await;
    let key = server.admin_key();
    let session = new_session(&server, key).await;
    let answer = long_answer(&upstream, 60, Duration::from_millis(30));
    let first = read_then_leave(&server, key, &session, json!({"message": "go"}), 3).await;
    let (status, raw) = rejoin(&server, key, &session, Some(&first[2].id), "").await;
    assert_eq!(status, 200);
    let rest = parse(&raw);
    assert_eq!(rest.last().expect("events").data["type"], "end");
    let whole = format!("{}{}", text(&first), text(&rest));
    assert!(whole.len() < answer.len(), "the turn was cancelled");
    let (_, messages) = server
        .get(&format!("/sessions/{session}/messages"), key)
        .await;
    assert_eq!(messages[1]["interrupted"], true);
}

#[tokio::test]
async fn rejoins_are_checked() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = Server::start(&data, &settings(&upstream)).await;
    let key = server.admin_key();
    let session = new_session(&server, key).await;

    let (status, body) = rejoin(&server, key, &session, None, "").await;
    assert_eq!(status, 404, "{body}");
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["code"], "no_turn");

    for bad in ["?after=x", "?after=-1", "?after=abc:3"] {
        let (status, body) = rejoin(&server, key, &session, None, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        let body: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(body["code"], "invalid_field");
        assert_eq!(body["field"], "after");
    }
    let (status, body) = rejoin(&server, key, &session, Some("nonsense"), "").await;
    assert_eq!(status, 400);
    assert!(body.contains("Last-Event-ID"));

    let (status, body) = server
        .post(
            &format!("/sessions/{session}/chat"),
            key,
            &json!({"message": "hi", "on_disconnect": "later"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["field"], "on_disconnect");

    // Someone else's session is not found, whether a turn ran in it or not.
    upstream.push([Reply::text(&["hello"])]);
    let (status, _) = server
        .post(
            &format!("/sessions/{session}/chat"),
            key,
            &json!({"message": "hi"}),
        )
        .await;
    assert_eq!(status, 200);
    let other = data
        .user_with_key("other", "other@example.com", "admin")
        .await;
    let (status, body) = rejoin(&server, &other, &session, None, "").await;
    assert_eq!(status, 404);
    assert!(body.contains("\"not_found\""), "{body}");
    // A turn id of another session is not found in this one.
    let (status, raw) = rejoin(&server, key, &session, None, "").await;
    assert_eq!(status, 200);
    let events = parse(&raw);
    assert_eq!(text(&events), "hello");
    let own = new_session(&server, &other).await;
    let (status, body) = rejoin(&server, &other, &own, Some(&events[0].id), "").await;
    assert_eq!(status, 404);
    assert!(body.contains("no_turn"));
}

#[tokio::test]
async fn events_are_forgotten_after_the_retention() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let mut env = settings(&upstream);
    env.push(("INTEGRATOR_STREAM_RETENTION_SECONDS", "0"));
    let server = Server::start(&data, &env).await;
    let key = server.admin_key();
    let session = new_session(&server, key).await;
    upstream.push([Reply::text(&["short"])]);
    let (status, _) = server
        .post(
            &format!("/sessions/{session}/chat"),
            key,
            &json!({"message": "hi"}),
        )
        .await;
    assert_eq!(status, 200);
    // (On PostgreSQL the database copy is finished a moment after the turn.)
    let gone = common::eventually(5, || async {
        let (status, body) = rejoin(&server, key, &session, None, "").await;
        (status == 404 && body.contains("no_turn")).then_some(())
    })
    .await;
    assert!(gone.is_some(), "the turn's events are still kept");
}

#[tokio::test]
async fn a_turn_running_on_another_replica_is_rejoined_there() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let Some(replica_data) = data.replica() else {
        return; // one SQLite server has no other replica
    };
    let server = Server::start(&data, &settings(&upstream)).await;
    let key = server.admin_key().to_string();
    let other = Server::start(&replica_data, &settings(&upstream)).await;
    let session = new_session(&server, &key).await;
    let answer = long_answer(&upstream, 30, Duration::from_millis(60));

    let first = read_then_leave(
        &server,
        &key,
        &session,
        json!({"message": "a long one", "on_disconnect": "continue"}),
        4,
    )
    .await;
    let last_id = first.last().expect("events").id.clone();
    // Mid-turn, on the other replica: the missed events, then the rest as it is written.
    let (status, raw) = rejoin(&other, &key, &session, Some(&last_id), "").await;
    assert_eq!(status, 200, "{raw}");
    let rest = parse(&raw);
    assert_numbered(&rest, seq(&last_id) + 1);
    assert_eq!(rest.last().expect("events").data["type"], "end");
    assert_eq!(format!("{}{}", text(&first), text(&rest)), answer);

    // After the end, the other replica replays the whole turn from the database.
    let (status, raw) = rejoin(&other, &key, &session, None, "").await;
    assert_eq!(status, 200);
    let replay = parse(&raw);
    assert_numbered(&replay, 1);
    assert_eq!(text(&replay), answer);
}
