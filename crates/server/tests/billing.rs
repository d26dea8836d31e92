//! Billing over HTTP: caps refuse billed work before any upstream call, allowance then wallet,
//! own keys (tenant, global, server — checked at the upstream), month rollover, and the
//! concurrency proof that simultaneous requests never overspend.

mod common;

use std::time::Duration;

use common::upstream::{Reply, Upstream};
use common::{eventually, read_sse, Data, Server};
use serde_json::{json, Value};

const SERVER_KEY: &str = "sk-server-key-aaaaaaaaaaaa";
const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// The settings of a server on the scripted upstream.
fn settings<'a>(upstream: &'a Upstream, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("OPENAI_API_KEY", SERVER_KEY),
        ("OPENAI_BASE_URL", upstream.base_url.as_str()),
        ("INTEGRATOR_MODEL", "gpt-4.1"),
        ("INTEGRATOR_MASTER_KEY", MASTER_KEY),
    ];
    env.extend_from_slice(extra);
    env
}

async fn start(upstream: &Upstream, data: &Data, extra: &[(&str, &str)]) -> Server {
    Server::start(data, &settings(upstream, extra)).await
}

fn cap_body() -> Value {
    json!({"success": false, "error": "AI usage cap exceeded", "code": "cap_exceeded"})
}

#[tokio::test]
async fn spent_budgets_refuse_billed_work_before_any_upstream_call() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = start(&upstream, &data, &[]).await;
    let key = data.user_with_allowance("broke", "0").await;

    let (status, body) = server.post("/chat", &key, &json!({"message": "hi"})).await;
    assert_eq!((status, body), (200, cap_body()));
    let session = server.post("/sessions", &key, &json!({})).await.1["session_id"]
        .as_str()
        .expect("id")
        .to_string();
    let (status, body) = server
        .post(
            &format!("/sessions/{session}/chat"),
            &key,
            &json!({"message": "hi"}),
        )
        .await;
    assert_eq!((status, body), (200, cap_body()));
    let (events, raw) = read_sse(
        server
            .stream("/chat/stream", &key, &json!({"message": "hi"}))
            .await,
    )
    .await;
    let last = events.last().expect("events");
    assert_eq!(last["type"], "error", "{raw}");
    assert_eq!(last["message"], "AI usage cap exceeded");
    assert_eq!(last["retryable"], false);
    assert_eq!(last["code"], "cap_exceeded");
    assert!(
        upstream.requests().is_empty(),
        "refused before any upstream call"
    );
    let (_, messages) = server
        .get(&format!("/sessions/{session}/messages"), &key)
        .await;
    assert_eq!(messages, json!([]), "a refused message is not stored");

    let (status, body) = server
        .tool(&key, "search_knowledge_base", json!({"query": "billing"}))
        .await;
    assert_eq!(
        (status, body["success"].as_bool()),
        (200, Some(true)),
        "free tools are never capped"
    );

    data.cli_ok(&["wallet", "top-up", "broke", "1"]).await;
    upstream.push([Reply::text(&["Now it works."])]);
    let (_, body) = server.post("/chat", &key, &json!({"message": "hi"})).await;
    assert_eq!(body["response"], "Now it works.", "{body}");
}

#[tokio::test]
async fn cost_comes_from_the_allowance_first_then_the_wallet() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = start(&upstream, &data, &[]).await;
    data.cli_ok(&[
        "tenant",
        "create",
        "acme",
        "--tier",
        "standard",
        "--allowance",
        "0.001",
    ])
    .await;
    data.cli_ok(&[
        "user",
        "create",
        "admin@acme.test",
        "--tenant",
        "acme",
        "--role",
        "admin",
    ])
    .await;
    data.cli_ok(&[
        "user",
        "create",
        "dev@acme.test",
        "--tenant",
        "acme",
        "--role",
        "user",
    ])
    .await;
    let admin = data.cli_ok(&["key", "create", "admin@acme.test"]).await;
    let dev = data.cli_ok(&["key", "create", "dev@acme.test"]).await;
    let out = data.cli_ok(&["wallet", "top-up", "acme", "0.05"]).await;
    assert!(out.contains("balance $0.05"), "{out}");

    // gpt-4.1: $2 per 1M input, $8 per 1M output → 100 + 50 tokens cost $0.0006 a call.
    for _ in 0..3 {
        upstream.push([Reply::text_with_usage(&["ok"], 100, 50)]);
        let (_, body) = server
            .post(
                "/chat",
                &dev,
                &json!({"message": "hi", "include_tools": false}),
            )
            .await;
        assert_eq!(body["response"], "ok", "{body}");
    }
    let (status, usage) = server.get("/usage", &dev).await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["allowance_usd"], 0.001);
    assert_eq!(usage["allowance_used_usd"], 0.001);
    assert_eq!(usage["allowance_left_usd"], 0.0);
    assert_eq!(
        usage["wallet_usd"], 0.0492,
        "0.0018 spent, 0.001 of it from the allowance: {usage}"
    );
    assert_eq!(usage["user"]["email"], "dev@acme.test");
    assert_eq!(usage["user"]["cost_usd"], 0.0018);
    assert_eq!(
        usage["tenant"]["by_model"]["gpt-4.1"],
        json!({"prompt_tokens": 300, "completion_tokens": 150, "cost_usd": 0.0018})
    );
    assert_eq!(usage["own_key_active"], false);
    assert!(
        usage["tenant"].get("users").is_none(),
        "only admins see each user"
    );
    let (_, admin_view) = server.get("/usage", &admin).await;
    assert_eq!(
        admin_view["tenant"]["users"][0]["email"], "dev@acme.test",
        "{admin_view}"
    );

    let printed = data.cli_ok(&["usage", "--tenant", "acme"]).await;
    assert!(
        printed.contains("gpt-4.1")
            && printed.contains("dev@acme.test")
            && printed.contains("wallet $0.0492")
            && printed.contains("total $0.0018"),
        "{printed}"
    );
}

#[tokio::test]
async fn own_keys_are_scoped_masked_encrypted_and_bypass_caps() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = start(&upstream, &data, &[]).await;
    let super_admin = server.admin_key().to_string();
    data.cli_ok(&["tenant", "create", "acme", "--allowance", "0"])
        .await;
    data.cli_ok(&[
        "user",
        "create",
        "admin@acme.test",
        "--tenant",
        "acme",
        "--role",
        "admin",
    ])
    .await;
    data.cli_ok(&[
        "user",
        "create",
        "dev@acme.test",
        "--tenant",
        "acme",
        "--role",
        "user",
    ])
    .await;
    let admin = data.cli_ok(&["key", "create", "admin@acme.test"]).await;
    let dev = data.cli_ok(&["key", "create", "dev@acme.test"]).await;
    let other = data.user_with_key("globex", "x@globex.test", "user").await;
    let tenant_key = "sk-tenant-acme-secret-1234";
    let global_key = "sk-global-secret-5678";

    // A role refusal is application-level, as for tools: 200, `permission_denied` — also
    // before the body is looked at.
    for body in [
        json!({"api_key": tenant_key}),
        json!({"api_key": "sk-x"}),
        json!({}),
    ] {
        let (status, refused) = set(&server, &dev, body).await;
        assert_eq!(
            (
                status,
                refused["success"].as_bool(),
                refused["code"].as_str()
            ),
            (200, Some(false), Some("permission_denied")),
            "{refused}"
        );
        assert!(
            refused["error"]
                .as_str()
                .unwrap_or_default()
                .contains("admin"),
            "{refused}"
        );
    }

    let (status, body) = set(&server, &admin, json!({})).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("api_key")));
    let (status, body) = set(&server, &admin, json!({"api_key": tenant_key})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "tenant");
    assert_eq!(body["masked"], "sk-…1234");
    assert!(!body.to_string().contains("acme-secret"));
    let (status, body) = set(&server, &super_admin, json!({"api_key": global_key})).await;
    assert_eq!((status, body["scope"].as_str()), (200, Some("global")));

    assert_eq!(
        get(&server, &dev).await,
        json!({"configured": true, "scope": "tenant", "masked": "sk-…1234"})
    );
    assert_eq!(
        get(&server, &other).await,
        json!({"configured": true, "scope": "global", "masked": "sk-…5678"})
    );

    upstream.push([Reply::text(&["tenant"]), Reply::text(&["global"])]);
    let (_, body) = server
        .post(
            "/chat",
            &dev,
            &json!({"message": "hi", "include_tools": false}),
        )
        .await;
    assert_eq!(
        body["response"], "tenant",
        "own keys bypass the zero allowance: {body}"
    );
    server
        .post(
            "/chat",
            &other,
            &json!({"message": "hi", "include_tools": false}),
        )
        .await;
    let auth: Vec<Option<String>> = upstream
        .requests()
        .into_iter()
        .map(|r| r.authorization)
        .collect();
    assert_eq!(
        auth,
        [
            Some(format!("Bearer {tenant_key}")),
            Some(format!("Bearer {global_key}"))
        ]
    );
    let (_, usage) = server.get("/usage", &dev).await;
    assert_eq!(usage["own_key_active"], true);
    assert!(
        usage["tenant"]["own_key_cost_usd"].as_f64().unwrap_or(0.0) > 0.0,
        "{usage}"
    );
    assert_eq!(
        usage["allowance_used_usd"], 0.0,
        "own-key usage is not charged: {usage}"
    );

    // Restart: the keys still decrypt with the same master key.
    server.stop().await;
    let server = start(&upstream, &data, &[]).await;
    upstream.push([Reply::text(&["again"])]);
    server
        .post(
            "/chat",
            &dev,
            &json!({"message": "hi", "include_tools": false}),
        )
        .await;
    assert_eq!(
        upstream
            .requests()
            .last()
            .and_then(|r| r.authorization.clone()),
        Some(format!("Bearer {tenant_key}"))
    );

    let (status, body) = delete(&server, &dev).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (200, Some("permission_denied")),
        "{body}"
    );
    let (_, body) = delete(&server, &admin).await;
    assert_eq!(
        (body["deleted"].as_bool(), body["scope"].as_str()),
        (Some(true), Some("tenant"))
    );
    delete(&server, &super_admin).await;
    assert_eq!(get(&server, &dev).await, json!({"configured": false}));
    let (_, body) = server.post("/chat", &dev, &json!({"message": "hi"})).await;
    assert_eq!(
        body,
        cap_body(),
        "back to managed billing, capped at zero allowance"
    );

    // The keys appear nowhere in the data dir or the logs.
    let mut leaks = Vec::new();
    for entry in walk(data.path()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        for secret in ["acme-secret", "global-secret"] {
            if text.contains(secret) {
                leaks.push(format!("{} contains {secret}", entry.display()));
            }
        }
    }
    assert!(leaks.is_empty(), "{leaks:?}");
}

async fn set(server: &Server, key: &str, value: Value) -> (u16, Value) {
    let request = server
        .client
        .post(format!("{}/rest/v1/ai-agent/api-key", server.base))
        .bearer_auth(key)
        .json(&value);
    common::status_and_json(request.send().await.expect("post")).await
}

async fn get(server: &Server, key: &str) -> Value {
    let request = server
        .client
        .get(format!("{}/rest/v1/ai-agent/api-key", server.base))
        .bearer_auth(key);
    common::status_and_json(request.send().await.expect("get"))
        .await
        .1
}

async fn delete(server: &Server, key: &str) -> (u16, Value) {
    let request = server
        .client
        .post(format!("{}/rest/v1/ai-agent/api-key/delete", server.base))
        .bearer_auth(key);
    common::status_and_json(request.send().await.expect("delete")).await
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn the_allowance_resets_at_the_start_of_each_month() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = start(&upstream, &data, &[]).await;
    let dev = data.user_with_allowance("acme", "0.0006").await;
    upstream.push([Reply::text_with_usage(&["ok"], 100, 50)]);
    server
        .post(
            "/chat",
            &dev,
            &json!({"message": "hi", "include_tools": false}),
        )
        .await;
    let (_, body) = server
        .post(
            "/chat",
            &dev,
            &json!({"message": "hi", "include_tools": false}),
        )
        .await;
    assert_eq!(body, cap_body());
    let (_, usage) = server.get("/usage", &dev).await;
    let this_month = usage["month"].as_str().expect("month").to_string();
    server.stop().await;

    let server = start(
        &upstream,
        &data,
        &[("INTEGRATOR_BILLING_CLOCK_OFFSET_DAYS", "32")],
    )
    .await;
    let (_, usage) = server.get("/usage", &dev).await;
    assert_ne!(usage["month"], this_month.as_str());
    assert_eq!(usage["allowance_left_usd"], 0.0006, "{usage}");
    assert_eq!(usage["tenant"]["cost_usd"], 0.0);
    upstream.push([Reply::text(&["new month"])]);
    let (_, body) = server
        .post(
            "/chat",
            &dev,
            &json!({"message": "hi", "include_tools": false}),
        )
        .await;
    assert_eq!(body["response"], "new month", "{body}");
}

/// Many concurrent billed calls at an almost empty wallet: each reserves its estimate before
/// calling the model, so together they overspend by at most one reservation — on SQLite with
/// one server, and on PostgreSQL with two server processes sharing the database. (Without
/// reservations all twenty would see money left and be paid.)
#[tokio::test]
async fn concurrent_requests_never_overspend() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let first = start(&upstream, &data, &[]).await;
    let replica_data = data.replica();
    let second = match &replica_data {
        Some(replica) => Some(start(&upstream, replica, &[]).await),
        None => None,
    };
    let key = data.user_with_allowance("thin", "0").await;
    data.cli_ok(&["wallet", "top-up", "thin", "0.03"]).await;
    // Each answer costs 100 × $2/1M + 1000 × $8/1M = $0.0082 and reserves a little more
    // (its prompt plus 1,024 completion tokens): the wallet pays for three, a fourth may start
    // while something is left.
    upstream.push((0..40).map(|_| Reply::text_with_usage(&["paid"], 100, 1000)));

    let servers: Vec<&Server> = std::iter::once(&first).chain(second.as_ref()).collect();
    let body = json!({"message": "hi", "include_tools": false});
    let calls = (0..20).map(|n| {
        let server = servers[n % servers.len()];
        let (key, body) = (key.clone(), body.clone());
        async move { server.post("/chat", &key, &body).await.1 }
    });
    let answers = futures::future::join_all(calls).await;
    let paid = answers.iter().filter(|a| a["response"] == "paid").count();
    let refused = answers.iter().filter(|a| **a == cap_body()).count();
    assert_eq!(paid + refused, 20, "{answers:?}");
    assert!(
        (3..=4).contains(&paid),
        "{paid} answers paid from a wallet that covers 3"
    );
    let (_, usage) = first.get("/usage", &key).await;
    let wallet = usage["wallet_usd"].as_f64().expect("wallet");
    assert!(wallet > -0.0082, "overspent by more than one call: {usage}");
    assert_eq!(
        upstream.requests().len(),
        paid,
        "refused requests never reached the upstream"
    );
}

/// Every call gives what it reserved back however it ends — answered, failed upstream, or
/// never settled (a crash): on PostgreSQL a crashed replica's rows hold nothing once expired
/// and are swept by the next settlement; on SQLite (one process, reservations held in it) a
/// restart frees everything. Nothing stays reserved in the database either way.
#[tokio::test]
async fn reservations_are_given_back_however_the_call_ends() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let server = start(&upstream, &data, &[("INTEGRATOR_LLM_RETRIES", "0")]).await;
    let key = data.user_with_allowance("acme", "1").await;
    let held = || async {
        (
            data.query_i64("SELECT reserved_micros FROM tenants WHERE name = 'acme'")
                .await,
            data.query_i64("SELECT COUNT(*) FROM usage_reservations")
                .await,
        )
    };
    let body = json!({"message": "hi", "include_tools": false});

    upstream.push([Reply::text_with_usage(&["paid"], 100, 50)]);
    let (_, answer) = server.post("/chat", &key, &body).await;
    assert_eq!(answer["response"], "paid", "{answer}");
    assert_eq!(
        held().await,
        (0, 0),
        "an answered call settled its reservation"
    );

    upstream.push([Reply::status(500, "upstream down")]);
    let (_, failed) = server.post("/chat", &key, &body).await;
    assert!(failed["error"].is_string(), "{failed}");
    assert_eq!(
        held().await,
        (0, 0),
        "a failed call released its reservation"
    );

    // A crash left a reservation behind, far more than the allowance, long expired.
    data.execute_sql(
        "INSERT INTO usage_reservations (id, tenant_id, amount_micros, expires_at) \
         SELECT 'left-by-a-crash', id, 999000000, 1 FROM tenants WHERE name = 'acme'",
    )
    .await;
    data.execute_sql(
        "UPDATE tenants SET reserved_micros = reserved_micros + 999000000 WHERE name = 'acme'",
    )
    .await;
    let server = if data.on_postgres() {
        server
    } else {
        server.stop().await;
        start(&upstream, &data, &[("INTEGRATOR_LLM_RETRIES", "0")]).await
    };
    upstream.push([Reply::text_with_usage(&["still paid"], 100, 50)]);
    let (_, answer) = server.post("/chat", &key, &body).await;
    assert_eq!(
        answer["response"], "still paid",
        "expired, it holds nothing: {answer}"
    );
    assert_eq!(
        held().await,
        (0, 0),
        "the expired leftover was swept with the settlement"
    );
}

/// A call in flight keeps its money set aside however long it runs (its server renews the
/// reservation), and once the server running it dies the money is free again within one hold
/// (`INTEGRATOR_RESERVATION_HOLD_SECONDS`), not after the longest a call may take. The second
/// half with two replicas on PostgreSQL; on SQLite a restart frees everything at once.
#[tokio::test]
async fn a_dead_replicas_calls_stop_holding_the_budget_within_one_hold() {
    let upstream = Upstream::start().await;
    let data = Data::new().await;
    let hold = [("INTEGRATOR_RESERVATION_HOLD_SECONDS", "3")];
    let runner = Server::start_process(&data, &settings(&upstream, &hold)).await;
    let replica_data = data.replica();
    let replica = match &replica_data {
        Some(replica) => Some(start(&upstream, replica, &hold).await),
        None => None,
    };
    let key = data.user_with_allowance("thin", "0").await;
    // Less than one call's reservation (its prompt plus 1,024 completion tokens, ≈ $0.0083).
    data.cli_ok(&["wallet", "top-up", "thin", "0.005"]).await;
    let tokens: Vec<String> = (0..100).map(|n| format!("t{n} ")).collect();
    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    upstream.push([
        Reply::slow_text(&tokens, Duration::from_millis(100)),
        Reply::text_with_usage(&["paid"], 100, 50),
    ]);
    let body = json!({"message": "hi", "include_tools": false});
    let long_call = {
        let (url, key, body) = (runner.api("/chat"), key.clone(), body.clone());
        tokio::spawn(async move {
            let _ = reqwest::Client::new()
                .post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await;
        })
    };
    assert!(
        eventually(5, || async {
            (upstream.requests().len() == 1).then_some(())
        })
        .await
        .is_some(),
        "the long call reached the model"
    );
    // Longer than the hold: only renewals keep the long call's money set aside.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let other = replica.as_ref().unwrap_or(&runner);
    let (_, refused) = other.post("/chat", &key, &body).await;
    assert_eq!(
        refused,
        cap_body(),
        "the live call's money is still set aside"
    );

    let Some(replica) = replica else {
        long_call.abort();
        return;
    };
    runner.kill().await;
    long_call.abort();
    let paid = eventually(15, || async {
        let (_, answer) = replica.post("/chat", &key, &body).await;
        (answer["response"] == "paid").then_some(answer)
    })
    .await;
    assert!(
        paid.is_some(),
        "the dead replica's reservation stopped holding the budget"
    );
    assert_eq!(
        upstream.requests().len(),
        2,
        "refused calls never reached the model"
    );
}
