//! The admin command line as an operator meets it: listing tenants and users, changing a
//! role, disabling a user, refusing to make a database where there is none, saying when there
//! is nothing to change, and ending quietly when its reader goes away.

mod common;

use std::process::Stdio;

use common::{Data, Server};

#[tokio::test]
async fn an_operator_lists_and_changes_users() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let key = data.user_with_key("acme", "dev@acme.test", "user").await;

    let tenants = data.cli_ok(&["tenant", "list"]).await;
    let acme = tenants
        .lines()
        .find(|l| l.starts_with("acme "))
        .expect("acme is listed");
    assert!(
        acme.contains("enabled") && acme.trim_end().ends_with('1'),
        "{acme}"
    );
    let users = data.cli_ok(&["user", "list", "--tenant", "acme"]).await;
    let dev = users
        .lines()
        .find(|l| l.starts_with("dev@acme.test"))
        .expect("dev is listed");
    assert!(dev.contains(" user ") && dev.contains("allowed"), "{dev}");
    assert!(
        !users.contains("admin@localhost"),
        "only acme's users: {users}"
    );

    let said = data
        .cli_ok(&["user", "set-role", "dev@acme.test", "viewer"])
        .await;
    assert_eq!(said, "dev@acme.test is now viewer");
    let said = data.cli_ok(&["user", "disable", "dev@acme.test"]).await;
    assert!(said.contains("revoked 1 key(s)"), "{said}");
    let (status, body) = common::eventually(10, || async {
        let (status, body) = server.get("/tools", &key).await;
        (status == 401).then_some((status, body))
    })
    .await
    .expect("the disabled user's key stops working");
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
    let users = data.cli_ok(&["user", "list"]).await;
    assert!(
        users.lines().any(|l| l.starts_with("dev@acme.test")
            && l.contains("viewer")
            && l.contains("disabled")),
        "{users}"
    );
    data.cli_ok(&["user", "enable", "dev@acme.test"]).await;
    let key = data.cli_ok(&["key", "create", "dev@acme.test"]).await;
    let (status, _) = server.get("/tools", &key).await;
    assert_eq!(status, 200, "enabled again with a new key");
}

#[tokio::test]
async fn commands_say_what_is_wrong() {
    let data = Data::new().await;
    let _server = Server::start(&data, &[]).await;
    data.cli_ok(&["tenant", "create", "acme"]).await;
    let (ok, _, stderr) = data.cli(&["tenant", "set", "acme"]).await;
    assert!(!ok);
    assert!(
        stderr.contains("nothing to change for tenant 'acme'"),
        "{stderr}"
    );
    let (ok, _, stderr) = data
        .cli(&["user", "set-role", "nobody@x.test", "admin"])
        .await;
    assert!(!ok && stderr.contains("nobody@x.test"), "{stderr}");
    let (ok, _, stderr) = data
        .cli(&["host", "--tenant", "acme", "list runs nosuchflow"])
        .await;
    assert!(!ok);
    assert!(
        stderr.contains("flow 'nosuchflow' does not exist"),
        "{stderr}"
    );
    let (ok, _, stderr) = data.cli(&["host", "--tenant", "acme", "frobnicate"]).await;
    assert!(!ok);
    let unknown = "unknown command 'frobnicate'";
    assert_eq!(stderr.matches(unknown).count(), 1, "said once: {stderr}");
}

#[tokio::test]
async fn only_serve_creates_a_database() {
    let data = Data::new().await;
    if data.on_postgres() {
        return; // a PostgreSQL database is the operator's to create
    }
    let empty = tempfile::tempdir().expect("temp dir");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_integrator-agent"))
        .args(["user", "list"])
        .current_dir(empty.path())
        .env_remove("INTEGRATOR_DATA_DIR")
        .env_remove("INTEGRATOR_DATABASE_URL")
        .output()
        .await
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let looked_at = empty.path().join("data").join("integrator.db");
    assert!(
        stderr.contains(&looked_at.display().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("--data-dir"), "{stderr}");
    assert!(
        std::fs::read_dir(empty.path())
            .expect("dir")
            .next()
            .is_none(),
        "nothing was created"
    );
}

#[tokio::test]
async fn a_reader_that_goes_away_ends_the_command_quietly() {
    let data = Data::new().await;
    let _server = Server::start(&data, &[]).await;
    data.cli_ok(&["tenant", "create", "acme"]).await;
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_integrator-agent"));
    command
        .args(["host", "--tenant", "acme", "list commands"])
        .arg("--data-dir")
        .arg(data.path());
    if let Some(url) = data.database_url() {
        command.arg("--database-url").arg(url);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Like `| head -0`: the reader is gone before the command writes.
    drop(child.stdout.take());
    let output = child.wait_with_output().await.expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(output.status.success(), "{stderr}");
}
