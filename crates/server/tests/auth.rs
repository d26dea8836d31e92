//! Authentication as SPEC §2 and the seed's error table: every failure a 401 or 403 JSON body.

mod common;

use common::{eventually, Data, Server};

async fn tools_status(server: &Server, authorization: Option<&str>) -> (u16, serde_json::Value) {
    let mut request = server.client.get(server.api("/tools"));
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    common::status_and_json(request.send().await.expect("request")).await
}

#[tokio::test]
async fn first_start_prints_a_working_admin_key() {
    let data = Data::new().await;
    let server = Server::start_process(&data, &[]).await;
    let key = server.admin_key();
    assert_eq!(key.len(), 256);
    assert!(key.chars().all(|c| c.is_ascii_alphanumeric()));
    let (status, body) = server.get("/tools", key).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn missing_malformed_and_unknown_keys_are_401() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let unknown = format!("Bearer {}", "a".repeat(256));
    let short = "Bearer abc".to_string();
    let basic = format!("Basic {}", "a".repeat(256));
    let symbols = format!("Bearer {}", "-".repeat(256));
    let cases: Vec<(Option<&str>, &str)> = vec![
        (None, "missing_api_key"),
        (Some(""), "invalid_api_key"),
        (Some("Bearer"), "invalid_api_key"),
        (Some(short.as_str()), "invalid_api_key"),
        (Some(basic.as_str()), "invalid_api_key"),
        (Some(symbols.as_str()), "invalid_api_key"),
        (Some(unknown.as_str()), "invalid_api_key"),
    ];
    for (header, code) in cases {
        let (status, body) = tools_status(&server, header).await;
        assert_eq!(status, 401, "{header:?}: {body}");
        assert_eq!(body["code"], code, "{header:?}: {body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
}

#[tokio::test]
async fn revoked_keys_stop_working_within_seconds() {
    let data = Data::new().await;
    let server = Server::start(&data, &[("INTEGRATOR_AUTH_CACHE_SECONDS", "1")]).await;
    let key = data.user_with_key("acme", "ops@acme.test", "user").await;
    assert_eq!(server.get("/tools", &key).await.0, 200);
    let out = data.cli_ok(&["key", "revoke", "ops@acme.test"]).await;
    assert!(out.contains("Revoked 1 key"), "{out}");
    let refused = eventually(15, || async {
        let (status, body) = server.get("/tools", &key).await;
        (status == 401).then_some(body)
    })
    .await
    .expect("the revoked key is refused within the auth cache time");
    // A revoked key looks like any other refused key: a leaked key cannot be confirmed.
    assert_eq!(refused["code"], "invalid_api_key");
    assert_eq!(refused["error"], "Invalid or expired API key");
}

#[tokio::test]
async fn expired_keys_are_401() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    data.user_with_key("acme", "temp@acme.test", "user").await;
    let key = data
        .cli_ok(&["key", "create", "temp@acme.test", "--expires-in", "1s"])
        .await;
    assert_eq!(key.len(), 256, "key create prints only the key");
    let refused = eventually(15, || async {
        let (status, body) = server.get("/tools", &key).await;
        (status == 401).then_some(body)
    })
    .await
    .expect("the key expires");
    assert_eq!(refused["code"], "invalid_api_key");
    assert_eq!(refused["error"], "Invalid or expired API key");
}

#[tokio::test]
async fn ai_disabled_tenants_and_users_without_api_access_are_403() {
    let data = Data::new().await;
    let server = Server::start(&data, &[("INTEGRATOR_AUTH_CACHE_SECONDS", "0")]).await;
    data.cli_ok(&["tenant", "create", "frozen", "--ai-disabled"])
        .await;
    data.cli_ok(&[
        "user",
        "create",
        "a@frozen.test",
        "--tenant",
        "frozen",
        "--role",
        "admin",
    ])
    .await;
    let frozen_key = data.cli_ok(&["key", "create", "a@frozen.test"]).await;
    let (status, body) = server.get("/tools", &frozen_key).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("ai_disabled")),
        "{body}"
    );

    data.cli_ok(&["tenant", "set", "frozen", "--ai-enabled"])
        .await;
    assert_eq!(server.get("/tools", &frozen_key).await.0, 200);

    data.cli_ok(&["tenant", "create", "acme"]).await;
    data.cli_ok(&[
        "user",
        "create",
        "bot@acme.test",
        "--tenant",
        "acme",
        "--role",
        "user",
        "--no-api-access",
    ])
    .await;
    let bot_key = data.cli_ok(&["key", "create", "bot@acme.test"]).await;
    let (status, body) = server.get("/tools", &bot_key).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("api_access_disabled")),
        "{body}"
    );
}

#[tokio::test]
async fn admin_cli_refuses_bad_input_with_clear_messages() {
    let data = Data::new().await;
    data.cli_ok(&[
        "tenant",
        "create",
        "acme",
        "--tier",
        "standard",
        "--allowance",
        "12.50",
    ])
    .await;
    let cases: &[(&[&str], &str)] = &[
        (&["tenant", "create", "acme"], "already exists"),
        (&["tenant", "create", "bad name"], "tenant name"),
        (
            &["tenant", "create", "x", "--allowance", "lots"],
            "--allowance",
        ),
        (&["tenant", "set", "nobody", "--ai-disabled"], "not found"),
        (
            &[
                "user", "create", "a@b.test", "--tenant", "nobody", "--role", "user",
            ],
            "not found",
        ),
        (
            &[
                "user",
                "create",
                "not-an-email",
                "--tenant",
                "acme",
                "--role",
                "user",
            ],
            "email",
        ),
        (&["key", "create", "ghost@acme.test"], "not found"),
        (
            &["key", "create", "ghost@acme.test", "--expires-in", "soon"],
            "--expires-in",
        ),
    ];
    for (args, message) in cases {
        let (ok, stdout, stderr) = data.cli(args).await;
        assert!(!ok, "{args:?} should fail");
        assert!(stdout.is_empty(), "{args:?} printed {stdout}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
