//! Prometheus metrics: the recorder, and the middleware that counts requests by route and
//! status and times them.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process-wide recorder, installed by the first call (servers built in one process, as
/// the tests build them, share it).
pub fn install_recorder() -> Option<PrometheusHandle> {
    static RECORDER: std::sync::OnceLock<Option<PrometheusHandle>> = std::sync::OnceLock::new();
    RECORDER
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), LATENCY_BUCKETS)
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            describe();
            let upkeep = handle.clone();
            // Its own thread: it must outlive the runtime of whoever installed it.
            let _ = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(std::time::Duration::from_secs(5));
                    upkeep.run_upkeep();
                });
            Some(handle)
        })
        .clone()
}

/// Counts and times each routed request.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().as_str().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// What each metric measures (the `# HELP` lines), and the counters and gauges at zero from
/// the start, so that dashboards and alerts find them before the first event.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "http_requests_total",
        "HTTP requests by route, method and status"
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "Time to the response head, by route"
    );
    describe_gauge!("sse_streams_open", "Server-Sent Events streams being sent");
    describe_counter!(
        "agent_turns_total",
        "Agent turns by outcome: answered, cancelled, cap_exceeded, failed"
    );
    describe_histogram!(
        "agent_turn_duration_seconds",
        Unit::Seconds,
        "Agent turns from start to last event, by outcome"
    );
    describe_counter!("llm_requests_total", "Model calls by model and outcome: ok, cancelled, rate_limited, server_error, refused, connection, protocol");
    describe_histogram!(
        "llm_request_duration_seconds",
        Unit::Seconds,
        "Model calls from request to the end of the stream, by model"
    );
    describe_counter!(
        "llm_tokens_total",
        "Tokens read (prompt) and written (completion), by model"
    );
    describe_counter!(
        "llm_retries_total",
        "Model calls retried after a retryable failure, by model"
    );
    describe_counter!(
        "tool_executions_total",
        "Tool calls (direct and by the agent) by tool and status"
    );
    describe_histogram!(
        "tool_execution_duration_seconds",
        Unit::Seconds,
        "Tool calls by tool"
    );
    describe_counter!(
        "billing_refusals_total",
        "Work refused for a spent allowance and wallet: a turn or a billed tool call"
    );
    describe_counter!(
        "flow_runs_total",
        "Flow runs by outcome: succeeded, failed, cancelled"
    );
    describe_histogram!(
        "flow_run_duration_seconds",
        Unit::Seconds,
        "Flow runs by outcome"
    );
    describe_counter!(
        "flow_rows_total",
        "Rows read and written by flow runs (written: succeeded runs)"
    );
    describe_counter!(
        "scheduler_firings_total",
        "Schedules fired: the run started, or not (the flow was busy or gone)"
    );
    describe_histogram!(
        "scheduler_lag_seconds",
        Unit::Seconds,
        "How late a schedule fired after its due time"
    );
    describe_gauge!(
        "knowledge_documents",
        "Documents in the knowledge base's search index"
    );
    describe_gauge!(
        "knowledge_last_sync_timestamp_seconds",
        "When the index last caught up with the database (sync lag: time() minus this)"
    );
    describe_histogram!(
        "knowledge_sync_duration_seconds",
        Unit::Seconds,
        "Knowledge base syncs"
    );
    describe_counter!(
        "knowledge_sync_failures_total",
        "Knowledge base syncs that failed"
    );
    describe_gauge!(
        "db_write_queue_depth",
        "Database write jobs waiting or running"
    );
    describe_histogram!(
        "db_commit_duration_seconds",
        Unit::Seconds,
        "Database write transactions (on SQLite: a group commit)"
    );
    for outcome in ["answered", "cancelled", "cap_exceeded", "failed"] {
        metrics::counter!("agent_turns_total", "outcome" => outcome).increment(0);
    }
    for what in ["turn", "tool_call"] {
        metrics::counter!("billing_refusals_total", "what" => what).increment(0);
    }
    for outcome in ["succeeded", "failed", "cancelled"] {
        metrics::counter!("flow_runs_total", "outcome" => outcome).increment(0);
    }
    for outcome in ["started", "not_started"] {
        metrics::counter!("scheduler_firings_total", "outcome" => outcome).increment(0);
    }
    metrics::counter!("knowledge_sync_failures_total").increment(0);
    metrics::gauge!("sse_streams_open").increment(0.0);
    metrics::gauge!("db_write_queue_depth").increment(0.0);
}
