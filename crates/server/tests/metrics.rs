//! `/metrics` after everyday work: a chat, a tool call and a flow run leave the metrics the
//! operations page lists. (A test binary of its own: the recorder is one per process, and the
//! counts of other tests would mix with these.)

mod common;

use common::upstream::{Reply, Upstream};
use common::{Data, Server};
use serde_json::json;

#[tokio::test]
async fn a_chat_a_tool_call_and_a_flow_run_show_in_the_metrics() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = Server::start(
        &data,
        &[
            ("OPENAI_API_KEY", "sk-test-key"),
            ("OPENAI_BASE_URL", upstream.base_url.as_str()),
            ("INTEGRATOR_MODEL", "gpt-4.1"),
        ],
    )
    .await;
    let key = server.admin_key().to_string();

    // A streamed chat in which the agent calls a tool.
    upstream.push([
        Reply::tool_calls(&[("c1", "search_knowledge_base", json!({"query": "flows"}))]),
        Reply::text_with_usage(&["Done."], 120, 3),
    ]);
    let response = server
        .stream(
            "/chat/stream",
            &key,
            &json!({"message": "how do flows work?"}),
        )
        .await;
    let (events, _) = common::read_sse(response).await;
    assert_eq!(
        common::types(&events).last().map(String::as_str),
        Some("end")
    );
    // A direct tool call, and a flow run (file to file).
    let (_, answer) = server
        .tool(
            &key,
            "host_cli",
            json!({"command": "create connection files type=file path=io format=csv"}),
        )
        .await;
    assert_eq!(answer["success"], true, "{answer}");
    let folder = data.tenant_dir("default").await.join("io");
    std::fs::create_dir_all(&folder).expect("folder");
    std::fs::write(folder.join("in.csv"), "id\n1\n2\n3\n").expect("csv");
    for command in [
        "create flow copy from=files:in.csv to=files:out.csv mode=replace",
        "run flow copy",
    ] {
        let (_, answer) = server
            .tool(&key, "host_cli", json!({"command": command}))
            .await;
        assert_eq!(answer["success"], true, "{command}: {answer}");
    }

    let text = server.metrics_text().await;
    for expected in [
        "sse_streams_open",
        "agent_turns_total{outcome=\"answered\"}",
        "agent_turn_duration_seconds_bucket",
        "llm_requests_total{model=\"gpt-4.1\",outcome=\"ok\"} 2",
        "llm_request_duration_seconds_bucket{model=\"gpt-4.1\"",
        "llm_tokens_total{model=\"gpt-4.1\",direction=\"prompt\"}",
        "llm_tokens_total{model=\"gpt-4.1\",direction=\"completion\"}",
        "tool_executions_total{tool=\"search_knowledge_base\",status=\"ok\"}",
        "tool_executions_total{tool=\"host_cli\",status=\"ok\"}",
        "billing_refusals_total{what=\"turn\"}",
        "flow_runs_total{outcome=\"succeeded\"} 1",
        "flow_run_duration_seconds_bucket",
        "flow_rows_total{direction=\"read\"} 3",
        "flow_rows_total{direction=\"written\"} 3",
        "scheduler_firings_total{outcome=\"started\"}",
        "knowledge_documents",
        "knowledge_last_sync_timestamp_seconds",
        "db_write_queue_depth",
        "db_commit_duration_seconds_bucket",
    ] {
        assert!(
            text.contains(expected),
            "/metrics lacks {expected}:\n{text}"
        );
    }
}
