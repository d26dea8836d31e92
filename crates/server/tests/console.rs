//! The web console over HTTP: passwords and sign-in links, cookie sessions that end on every
//! replica, the sign-in throttle, CSRF and same-origin locks, escaping, and who may reach
//! what. (The browser walks the same pages in `clients/tests/test_console.py`.)

mod common;

use common::console::{get, post, set_password, sign_in};
use common::{Data, Server};

const PASSWORD: &str = "correct horse battery staple";

#[tokio::test]
async fn the_root_leads_to_the_console_and_its_pages_are_locked_down() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let root = get(&server, "/", None).await;
    assert_eq!(root.status, 303);
    assert_eq!(root.location(), "/console");
    let console = get(&server, "/console", None).await;
    assert_eq!(console.status, 303);
    assert_eq!(console.location(), "/console/sign-in");
    let sign_in = get(&server, "/console/sign-in", None).await;
    assert_eq!(sign_in.status, 200);
    for label in ["Email", "Password", "Sign in"] {
        assert!(sign_in.body.contains(label), "{label}");
    }
    let csp = sign_in.headers["content-security-policy"]
        .to_str()
        .expect("csp");
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(sign_in.headers["cache-control"], "no-store");
    assert!(!sign_in.body.contains("<script>"), "no inline script");
    let asset = get(&server, "/console/assets/console.js", None).await;
    assert_eq!(asset.status, 200);
    assert!(asset.headers["content-type"]
        .to_str()
        .expect("type")
        .starts_with("text/javascript"));
    assert_eq!(
        get(&server, "/console/assets/../Cargo.toml", None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn sessions_start_with_a_password_and_end_on_every_replica() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    set_password(&data, &server, "admin@localhost", PASSWORD).await;

    let wrong = post(
        &server,
        "/console/sign-in",
        None,
        &[
            ("email", "admin@localhost"),
            ("password", "not the password"),
        ],
        None,
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("The email or the password is wrong."));
    assert!(wrong.session_cookie().is_none());

    let signed = post(
        &server,
        "/console/sign-in",
        None,
        &[("email", "admin@localhost"), ("password", PASSWORD)],
        None,
    )
    .await;
    let cookie = signed.session_cookie().expect("cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/;", "Max-Age="] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain http without a public https URL"
    );
    let token = sign_in(&server, "admin@localhost", PASSWORD).await;
    let dashboard = get(&server, "/console", Some(&token)).await;
    assert_eq!(dashboard.status, 200);
    assert!(dashboard.body.contains("AI Agent dashboard"));
    // The database keeps only a hash of the token.
    let stored = data
        .query_text("SELECT token_hash FROM console_sessions LIMIT 1")
        .await;
    assert!(!stored.is_empty() && stored != token);

    // Another replica on the same database knows the session, and forgets it at sign-out.
    let replica_data = data.replica();
    let replica = match &replica_data {
        Some(replica_data) => Some(Server::start(replica_data, &[]).await),
        None => None,
    };
    if let Some(replica) = &replica {
        assert_eq!(get(replica, "/console", Some(&token)).await.status, 200);
    }
    let out = post(
        &server,
        "/console/sign-out",
        Some(&token),
        &[("csrf", &dashboard.csrf())],
        None,
    )
    .await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location(), "/console/sign-in");
    assert_eq!(get(&server, "/console", Some(&token)).await.status, 303);
    if let Some(replica) = &replica {
        let after = get(replica, "/console", Some(&token)).await;
        assert_eq!(after.status, 303);
        assert_eq!(after.location(), "/console/sign-in");
    }
}

#[tokio::test]
async fn an_https_public_url_makes_the_cookie_secure() {
    let data = Data::new().await;
    let server = Server::start(
        &data,
        &[("INTEGRATOR_PUBLIC_URL", "https://agent.example.com")],
    )
    .await;
    set_password(&data, &server, "admin@localhost", PASSWORD).await;
    let signed = post(
        &server,
        "/console/sign-in",
        None,
        &[("email", "admin@localhost"), ("password", PASSWORD)],
        None,
    )
    .await;
    assert!(signed
        .session_cookie()
        .expect("cookie")
        .contains("; Secure"));
}

#[tokio::test]
async fn failed_sign_ins_are_throttled() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    set_password(&data, &server, "admin@localhost", PASSWORD).await;
    for _ in 0..10 {
        let wrong = post(
            &server,
            "/console/sign-in",
            None,
            &[
                ("email", "admin@localhost"),
                ("password", "guess guess guess"),
            ],
            None,
        )
        .await;
        assert_eq!(wrong.status, 401);
    }
    let throttled = post(
        &server,
        "/console/sign-in",
        None,
        &[("email", "admin@localhost"), ("password", PASSWORD)],
        None,
    )
    .await;
    assert_eq!(throttled.status, 429);
    assert!(throttled.body.contains("Too many failed sign-ins"));
    assert!(throttled.session_cookie().is_none());
}

#[tokio::test]
async fn forms_need_the_session_token_and_the_same_origin() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    set_password(&data, &server, "admin@localhost", PASSWORD).await;
    let token = sign_in(&server, "admin@localhost", PASSWORD).await;
    let users = get(&server, "/console/users", Some(&token)).await;
    let csrf = users.csrf();
    let add = |email: &'static str, csrf: String, origin: Option<String>| {
        let server = &server;
        let token = token.clone();
        async move {
            post(
                server,
                "/console/users",
                Some(&token),
                &[("csrf", &csrf), ("email", email), ("role", "admin")],
                origin.as_deref(),
            )
            .await
        }
    };
    let forged = add("forged@example.com", "guess".into(), None).await;
    assert_eq!(forged.status, 403);
    let cross = add(
        "cross@example.com",
        csrf.clone(),
        Some("http://evil.example".into()),
    )
    .await;
    assert_eq!(cross.status, 403);
    assert!(cross.body.contains("another site"));
    let null_origin = add("null@example.com", csrf.clone(), Some("null".into())).await;
    assert_eq!(null_origin.status, 403);
    let count = data
        .query_i64("SELECT COUNT(*) FROM users WHERE email LIKE '%example.com'")
        .await;
    assert_eq!(count, 0, "nothing was written");

    let real = add("real@example.com", csrf, Some(server.base.clone())).await;
    assert_eq!(real.status, 200, "{}", real.body);
    assert!(real.body.contains("real@example.com"));
    let audited = data
        .query_i64(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'user created' \
             AND target = 'real@example.com' AND actor = 'admin@localhost'",
        )
        .await;
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn keys_made_in_the_console_work_until_revoked_and_markup_stays_text() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    set_password(&data, &server, "admin@localhost", PASSWORD).await;
    data.cli_ok(&[
        "user",
        "create",
        "dev@example.com",
        "--tenant",
        "default",
        "--role",
        "user",
    ])
    .await;
    let token = sign_in(&server, "admin@localhost", PASSWORD).await;
    let id = data
        .query_text("SELECT id FROM users WHERE email = 'dev@example.com'")
        .await;
    let edit = get(&server, &format!("/console/users/{id}"), Some(&token)).await;
    assert!(edit.body.contains("Generate API Key"));
    let label = "<script>alert(1)</script>";
    let made = post(
        &server,
        &format!("/console/users/{id}/keys"),
        Some(&token),
        &[
            ("csrf", &edit.csrf()),
            ("label", label),
            ("expiration", "date"),
            ("expires_on", "2099-01-31"),
        ],
        None,
    )
    .await;
    assert_eq!(made.status, 200, "{}", made.body);
    assert_eq!(made.headers["cache-control"], "no-store");
    assert!(made.body.contains("It expires on 2099-01-31"));
    assert!(!made.body.contains(label));
    assert!(
        made.body.contains("&#60;script&#62;alert(1)"),
        "{}",
        made.body
    );
    let key = made
        .body
        .split("id=\"new-key\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the key")
        .trim()
        .to_string();
    let (status, body) = server.get("/tools", &key).await;
    assert_eq!(status, 200, "{body}");

    // `key list` shows it labelled; a date in the past is refused with a reason.
    let listed = data.cli_ok(&["key", "list", "dev@example.com"]).await;
    assert!(
        listed.contains("active") && listed.contains("alert(1)"),
        "{listed}"
    );
    let past = post(
        &server,
        &format!("/console/users/{id}/keys"),
        Some(&token),
        &[
            ("csrf", &edit.csrf()),
            ("expiration", "date"),
            ("expires_on", "2001-01-01"),
        ],
        None,
    )
    .await;
    assert_eq!(past.status, 400, "{}", past.body);
    assert!(past.body.contains("must be in the future"));

    let key_id = data
        .query_text(&format!(
            "SELECT id FROM api_keys WHERE user_id = '{id}' AND revoked_at IS NULL"
        ))
        .await;
    let revoke = format!("/console/users/{id}/keys/{key_id}/revoke");
    let ask = post(
        &server,
        &revoke,
        Some(&token),
        &[("csrf", &edit.csrf())],
        None,
    )
    .await;
    assert_eq!(ask.status, 200);
    assert!(ask.body.contains("role=\"alertdialog\""), "asks first");
    let (status, _) = server.get("/tools", &key).await;
    assert_eq!(status, 200, "not revoked before confirming");
    let done = post(
        &server,
        &revoke,
        Some(&token),
        &[("csrf", &edit.csrf()), ("confirmed", "yes")],
        None,
    )
    .await;
    assert!(done.status == 200 || done.status == 303, "{}", done.status);
    let (status, _) = server.get("/tools", &key).await;
    assert_eq!(status, 401);
    let audit = get(&server, "/console/audit", Some(&token)).await;
    assert!(audit.body.contains("key generated") && audit.body.contains("key revoked"));
    assert!(!audit.body.contains(label));
}

#[tokio::test]
async fn viewers_see_their_own_profile_and_admins_only_their_tenant() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    data.user_with_key("acme", "viewer@acme.test", "viewer")
        .await;
    data.user_with_key("acme", "admin@acme.test", "admin").await;
    data.user_with_key("other", "someone@other.test", "user")
        .await;
    set_password(&data, &server, "viewer@acme.test", "viewer password").await;
    set_password(&data, &server, "admin@acme.test", "admin password!").await;

    let viewer = sign_in(&server, "viewer@acme.test", "viewer password").await;
    let dashboard = get(&server, "/console", Some(&viewer)).await;
    assert_eq!(dashboard.status, 200);
    assert!(!dashboard.body.contains("Settings → Users"));
    for path in ["/console/users", "/console/billing", "/console/audit"] {
        assert_eq!(
            get(&server, path, Some(&viewer)).await.status,
            403,
            "{path}"
        );
    }
    let admin_id = data
        .query_text("SELECT id FROM users WHERE email = 'admin@acme.test'")
        .await;
    let grab = post(
        &server,
        &format!("/console/users/{admin_id}/keys"),
        Some(&viewer),
        &[("csrf", &dashboard.csrf()), ("expiration", "never")],
        None,
    )
    .await;
    assert_eq!(grab.status, 403);
    let profile = get(&server, "/console/profile", Some(&viewer)).await;
    assert!(profile.body.contains("viewer@acme.test"));
    assert!(!profile.body.contains("admin@acme.test"));

    let admin = sign_in(&server, "admin@acme.test", "admin password!").await;
    let users = get(&server, "/console/users", Some(&admin)).await;
    assert!(users.body.contains("viewer@acme.test"));
    assert!(!users.body.contains("someone@other.test"));
    assert!(
        !users.body.contains("super_admin"),
        "an admin can't grant super-admin"
    );
    let outsider = data
        .query_text("SELECT id FROM users WHERE email = 'someone@other.test'")
        .await;
    let other = get(&server, &format!("/console/users/{outsider}"), Some(&admin)).await;
    assert_eq!(other.status, 404);
    let switched = get(&server, "/console/tenant?name=other", Some(&admin)).await;
    let after = get(&server, "/console/users", Some(&admin)).await;
    assert!(switched.status == 303 || switched.status == 403);
    assert!(
        !after.body.contains("someone@other.test"),
        "only super-admins switch"
    );
    let keys = data
        .query_i64(&format!(
            "SELECT COUNT(*) FROM api_keys WHERE user_id = '{admin_id}'"
        ))
        .await;
    assert_eq!(keys, 1, "the viewer made no key");
}
