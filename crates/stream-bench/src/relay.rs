//! The floor: a bare relay built from the server's own HTTP stack (axum + hyper + reqwest on a
//! multi-threaded tokio runtime), run as a process of its own like the server. It takes the
//! same `/chat/stream` request, makes the same streamed upstream call and turns every content
//! chunk into the same `token` SSE event, but does nothing else: no authentication, no
//! database, no billing, no sessions, no turn task. Its overhead over the direct path is what
//! relaying alone costs on this machine, the lowest the server's overhead could go.
//!
//! With a commit file (`--floor-commit`), it also does the least a turn must store before
//! the model is called: the user message, inserted into an SQLite table (WAL,
//! `synchronous = NORMAL`, as the server runs it) by one writer thread that commits the
//! messages queued meanwhile together, and answered once committed.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use axum::Json;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

use crate::client::{LineBuffer, DIRECT_SYSTEM_PROMPT};

/// The argument that makes the benchmark binary run as the relay.
pub const RELAY_ARG: &str = "--relay-to";
/// The argument that gives the relay its commit file.
pub const COMMIT_ARG: &str = "--relay-commit";
const LISTEN_LINE: &str = "relay listening on ";

struct Shared {
    http: reqwest::Client,
    completions_url: String,
    /// The writer thread's queue: a user message to commit, and who waits for the commit.
    commits: Option<mpsc::UnboundedSender<(String, oneshot::Sender<()>)>>,
}

/// Opens the commit file and starts its writer thread.
fn start_writer(
    path: &Path,
) -> Result<mpsc::UnboundedSender<(String, oneshot::Sender<()>)>, String> {
    let conn = rusqlite::Connection::open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
         CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, content TEXT NOT NULL, created_at INTEGER NOT NULL);",
    )
    .map_err(|e| format!("cannot prepare {}: {e}", path.display()))?;
    let (queue, mut jobs) = mpsc::unbounded_channel::<(String, oneshot::Sender<()>)>();
    std::thread::Builder::new()
        .name("floor-writer".into())
        .spawn(move || {
            while let Some(first) = jobs.blocking_recv() {
                let mut group = vec![first];
                while let Ok(job) = jobs.try_recv() {
                    group.push(job);
                }
                let committed = commit(&conn, &group);
                if let Err(e) = &committed {
                    eprintln!("floor writer: {e}");
                }
                for (_, done) in group {
                    if committed.is_ok() {
                        let _ = done.send(());
                    }
                }
            }
        })
        .map_err(|e| format!("cannot start the writer: {e}"))?;
    Ok(queue)
}

fn commit(
    conn: &rusqlite::Connection,
    group: &[(String, oneshot::Sender<()>)],
) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    for (content, _) in group {
        conn.prepare_cached("INSERT INTO messages (content, created_at) VALUES (?1, ?2)")?
            .execute(rusqlite::params![content, now])?;
    }
    conn.execute_batch("COMMIT")
}

/// Runs the relay in front of `upstream_base_url` until the process is killed; prints its
/// address first.
pub fn serve(upstream_base_url: &str, commit_file: Option<&Path>) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("no runtime: {e}"))?;
    let commits = commit_file.map(start_writer).transpose()?;
    runtime.block_on(async {
        let shared = Arc::new(Shared {
            // Configured as the server's model client is.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(1024)
                .build()
                .map_err(|e| format!("no http client: {e}"))?,
            completions_url: format!("{upstream_base_url}/chat/completions"),
            commits,
        });
        let app = axum::Router::new()
            .route("/rest/v1/ai-agent/api/chat/stream", post(chat_stream))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot listen: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("no address: {e}"))?;
        println!("{LISTEN_LINE}http://{addr}");
        // As the server does: no Nagle delay on streamed responses.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app)
            .await
            .map_err(|e| format!("relay stopped: {e}"))
    })
}

async fn chat_stream(State(shared): State<Arc<Shared>>, Json(body): Json<Value>) -> Response {
    let Some(message) = body.get("message").and_then(Value::as_str) else {
        return (StatusCode::BAD_REQUEST, "no message").into_response();
    };
    if let Some(commits) = &shared.commits {
        let (done, committed) = oneshot::channel();
        if commits.send((message.to_string(), done)).is_err() || committed.await.is_err() {
            return (StatusCode::INTERNAL_SERVER_ERROR, "not committed").into_response();
        }
    }
    let request = json!({
        "model": "gpt-bench",
        "messages": [
            {"role": "system", "content": DIRECT_SYSTEM_PROMPT},
            {"role": "user", "content": message},
        ],
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let upstream = match shared
        .http
        .post(&shared.completions_url)
        .bearer_auth("sk-bench")
        .json(&request)
        .send()
        .await
    {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => {
            return (StatusCode::BAD_GATEWAY, response.status().to_string()).into_response()
        }
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let events = upstream
        .bytes_stream()
        .scan(LineBuffer::default(), |lines, chunk| {
            let mut events = Vec::new();
            match chunk {
                Ok(bytes) => lines.push(&bytes, |line| events.extend(event_of(line))),
                Err(e) => events.push(json!({"type": "error", "message": e.to_string()})),
            }
            futures::future::ready(Some(futures::stream::iter(events)))
        })
        .flatten()
        .map(|event| Ok::<_, Infallible>(Event::default().data(event.to_string())));
    Sse::new(events).into_response()
}

/// The event an upstream line becomes, if any: a content chunk is a `token`, `[DONE]` the `end`.
fn event_of(line: &str) -> Option<Value> {
    let data = line.strip_prefix("data:")?.trim();
    if data == "[DONE]" {
        return Some(json!({"type": "end"}));
    }
    let chunk: Value = serde_json::from_str(data).ok()?;
    let content = chunk
        .pointer("/choices/0/delta/content")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())?;
    Some(json!({"type": "token", "content": content}))
}

/// The relay as a child process of the benchmark.
pub struct RelayProcess {
    _child: Child,
    pub pid: u32,
    pub base_url: String,
}

impl RelayProcess {
    /// Starts this binary again as the relay in front of the upstream (committing each user
    /// message to `commit_file` first, when given).
    pub async fn start(
        upstream_base_url: &str,
        commit_file: Option<PathBuf>,
    ) -> Result<RelayProcess, String> {
        let binary = std::env::current_exe().map_err(|e| format!("no own binary: {e}"))?;
        let mut command = Command::new(binary);
        command.args([RELAY_ARG, upstream_base_url]);
        if let Some(file) = &commit_file {
            command.arg(COMMIT_ARG).arg(file);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start the relay: {e}"))?;
        let pid = child.id().ok_or("the relay exited at once")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let base_url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.strip_prefix(LISTEN_LINE) {
                    return Some(rest.trim().to_string());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or("the relay did not print its address")?;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(RelayProcess {
            _child: child,
            pid,
            base_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_content_chunks_into_tokens_and_done_into_end() {
        let token =
            event_of(r#"data: {"choices":[{"index":0,"delta":{"content":"tok1 "}}]}"#).unwrap();
        assert_eq!(token, json!({"type": "token", "content": "tok1 "}));
        assert_eq!(event_of("data: [DONE]"), Some(json!({"type": "end"})));
        assert_eq!(
            event_of(
                r#"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#
            ),
            None
        );
        assert_eq!(event_of(": keep-alive"), None);
    }
}
