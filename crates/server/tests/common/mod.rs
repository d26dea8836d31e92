//! Test support: starts the real `integrator-agent` binary on a random port against a fresh
//! data dir (and a fresh PostgreSQL schema when `TEST_DATABASE_URL` is set), runs its admin
//! CLI against the same data, and speaks HTTP to it like a client.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const API: &str = "/rest/v1/ai-agent/api";

/// What a test that uses services on this machine (a local API, PostgreSQL as a connector
/// target) allows, as an operator would: loopback, and the PostgreSQL server named with its
/// port (it is also the server's own database when the suite runs on PostgreSQL).
pub const ALLOW_LOCAL_SERVICES: (&str, &str) = (
    "INTEGRATOR_EGRESS_ALLOW",
    "127.0.0.0/8,::1,127.0.0.1:5432,localhost:5432",
);

/// A PostgreSQL schema of its own for one test, dropped when the test ends.
struct PostgresSchema {
    admin_url: String,
    name: String,
}

impl PostgresSchema {
    async fn create(admin_url: &str) -> PostgresSchema {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let pool = sqlx::PgPool::connect(admin_url)
            .await
            .expect("connect to TEST_DATABASE_URL");
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&pool)
            .await
            .expect("create schema");
        pool.close().await;
        PostgresSchema {
            admin_url: admin_url.to_string(),
            name,
        }
    }

    fn url(&self) -> String {
        let separator = if self.admin_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!(
            "{}{separator}options=-c%20search_path%3D{}",
            self.admin_url, self.name
        )
    }
}

impl Drop for PostgresSchema {
    fn drop(&mut self) {
        let url = self.admin_url.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(pool) = sqlx::PgPool::connect(&url).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA {name} CASCADE"))
                        .execute(&pool)
                        .await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}

/// The data a server runs on: a data dir and, optionally, a PostgreSQL schema.
pub struct Data {
    pub dir: tempfile::TempDir,
    postgres: Option<std::sync::Arc<PostgresSchema>>,
}

impl Data {
    /// Fresh, empty data.
    pub async fn new() -> Data {
        let postgres = match std::env::var("TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => {
                Some(std::sync::Arc::new(PostgresSchema::create(&url).await))
            }
            _ => None,
        };
        Data {
            dir: tempfile::tempdir().expect("temp dir"),
            postgres,
        }
    }

    /// The database URL the server uses, if not SQLite.
    pub fn database_url(&self) -> Option<String> {
        self.postgres.as_ref().map(|schema| schema.url())
    }

    /// Whether the suite runs on PostgreSQL (`TEST_DATABASE_URL` set).
    pub fn on_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// A second data dir on the same PostgreSQL database: another replica's view. On SQLite
    /// there is nothing to share, so it is `None`.
    pub fn replica(&self) -> Option<Data> {
        let postgres = self.postgres.clone()?;
        Some(Data {
            dir: tempfile::tempdir().expect("temp dir"),
            postgres: Some(postgres),
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs an admin command against this data; returns (success, stdout, stderr).
    pub async fn cli(&self, args: &[&str]) -> (bool, String, String) {
        // Only `serve` creates a database; tests that prepare accounts before the first start
        // make it as a first start would.
        if self.database_url().is_none() {
            let path = self.path().join("integrator.db");
            if !path.exists() {
                let store = store::Store::connect(&store::DatabaseTarget::Sqlite(path))
                    .await
                    .expect("create the test database");
                store.close().await;
            }
        }
        let mut command = Command::new(env!("CARGO_BIN_EXE_integrator-agent"));
        command.args(args).arg("--data-dir").arg(self.path());
        if let Some(url) = self.database_url() {
            command.arg("--database-url").arg(url);
        }
        command
            .env_remove("INTEGRATOR_DATABASE_URL")
            .env("RUST_LOG", "warn");
        let output = command.output().await.expect("run the CLI");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).trim().to_string(),
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        )
    }

    /// Runs an admin command that must succeed; returns its stdout.
    pub async fn cli_ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.cli(args).await;
        assert!(ok, "integrator-agent {args:?} failed: {stderr}");
        stdout
    }

    /// Creates a tenant with this monthly allowance (USD) and a `user` in it,
    /// `dev@<tenant>.test`; returns the user's key.
    pub async fn user_with_allowance(&self, tenant: &str, allowance: &str) -> String {
        self.cli_ok(&["tenant", "create", tenant, "--allowance", allowance])
            .await;
        let email = format!("dev@{tenant}.test");
        self.cli_ok(&[
            "user", "create", &email, "--tenant", tenant, "--role", "user",
        ])
        .await;
        self.cli_ok(&["key", "create", &email]).await
    }

    /// Creates a tenant, a user in it and a key for that user; returns the key.
    pub async fn user_with_key(&self, tenant: &str, email: &str, role: &str) -> String {
        let (ok, _, stderr) = self.cli(&["tenant", "create", tenant]).await;
        assert!(ok || stderr.contains("already exists"), "{stderr}");
        self.cli_ok(&["user", "create", email, "--tenant", tenant, "--role", role])
            .await;
        self.cli_ok(&["key", "create", email]).await
    }
}

/// How a test's server runs.
enum Running {
    /// Built in the test's own process ([`server::startup::Application`]), as most tests do.
    /// (Dropping the shutdown sender stops it too: a test need not stop its server.)
    InProcess {
        shutdown: Option<tokio::sync::oneshot::Sender<()>>,
        thread: std::thread::JoinHandle<()>,
    },
    /// The real binary in a process of its own (for crashes, logs and what it prints).
    Process { child: Child, log_path: PathBuf },
}

/// A running server.
pub struct Server {
    running: Running,
    pub base: String,
    /// The admin key printed at first start (None when the data already had accounts).
    pub admin_key: Option<String>,
    pub client: reqwest::Client,
}

/// Settings for an in-process server: the test's pairs only, never the process environment.
struct TestEnvironment(std::collections::HashMap<String, String>);

impl server::config::Environment for TestEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

impl Server {
    /// Builds a server on `data` in this process, with these settings (environment-variable
    /// names and values), on a free port.
    pub async fn start(data: &Data, env: &[(&str, &str)]) -> Server {
        let mut settings: std::collections::HashMap<String, String> =
            [("INTEGRATOR_KB_SYNC_SECONDS", "1")]
                .iter()
                .chain(env.iter())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        settings.remove("RUST_LOG");
        let overrides = server::config::Overrides {
            addr: Some("127.0.0.1:0".into()),
            data_dir: Some(data.path().to_path_buf()),
            database_url: data.database_url(),
            ..Default::default()
        };
        let config = server::config::Config::load(&overrides, &TestEnvironment(settings))
            .expect("the test's settings load");
        // Its own multi-threaded runtime on a thread of its own, as the binary runs it: the
        // test's runtime (one thread) neither starves it nor shares its blocking waits.
        let (started, ready) = tokio::sync::oneshot::channel();
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime for the server");
            runtime.block_on(async move {
                let app = match server::startup::Application::build(config).await {
                    Ok(app) => app,
                    Err(error) => {
                        let _ = started.send(Err(format!("{error:#}")));
                        return;
                    }
                };
                let _ = started.send(Ok((
                    format!("http://{}", app.addr()),
                    app.bootstrap_key().map(str::to_string),
                )));
                let _ = app
                    .run_until_stopped(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        let (base, admin_key) = match ready.await {
            Ok(Ok(started)) => started,
            Ok(Err(error)) => panic!("the server did not start: {error}"),
            Err(_) => panic!("the server's thread ended before it started"),
        };
        Server {
            running: Running::InProcess {
                shutdown: Some(shutdown),
                thread,
            },
            base,
            admin_key,
            client: reqwest::Client::new(),
        }
    }

    /// Starts the real `integrator-agent serve` in a process of its own on `data`, with extra
    /// environment variables: for tests that kill it, read its log or what it prints.
    pub async fn start_process(data: &Data, env: &[(&str, &str)]) -> Server {
        let log_path = data
            .path()
            .join(format!("server-{}.log", uuid::Uuid::new_v4().simple()));
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_integrator-agent"));
        command
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .env_remove("OPENAI_API_KEY")
            .env_remove("INTEGRATOR_DATABASE_URL")
            .env("RUST_LOG", "info")
            .env("INTEGRATOR_KB_SYNC_SECONDS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        if let Some(url) = data.database_url() {
            command.arg("--database-url").arg(url);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start the server");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut admin_key = None;
        let base = tokio::time::timeout(Duration::from_secs(120), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(key) = line.strip_prefix("Admin API key (shown once, store it now): ") {
                    admin_key = Some(key.trim().to_string());
                }
                if let Some(base) = line.strip_prefix("Integrator Agent listening on ") {
                    return Some(base.trim().to_string());
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        let Some(base) = base else {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("the server did not start:\n{log}");
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Server {
            running: Running::Process { child, log_path },
            base,
            admin_key,
            client: reqwest::Client::new(),
        }
    }

    /// The full URL of a path at the server root.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The full URL of a path under the API base.
    pub fn api(&self, path: &str) -> String {
        format!("{}{API}{path}", self.base)
    }

    pub fn admin_key(&self) -> &str {
        self.admin_key
            .as_deref()
            .expect("a fresh server prints an admin key")
    }

    /// GET an API path with a key; returns (status, JSON body).
    pub async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.api(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("GET");
        status_and_json(response).await
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("text")
    }

    /// POST a JSON body to an API path with a key; returns (status, JSON body).
    pub async fn post(&self, path: &str, key: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.api(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("POST");
        status_and_json(response).await
    }

    /// Executes a tool; returns (status, JSON body).
    pub async fn tool(&self, key: &str, name: &str, arguments: Value) -> (u16, Value) {
        self.post(&format!("/tools/{name}/execute"), key, &arguments)
            .await
    }

    /// The server's log so far (a server started with [`Server::start_process`]).
    pub fn log(&self) -> String {
        match &self.running {
            Running::Process { log_path, .. } => {
                std::fs::read_to_string(log_path).unwrap_or_default()
            }
            Running::InProcess { .. } => panic!("only a server in its own process has a log"),
        }
    }

    /// Stops the server gracefully (SIGTERM to a process) and waits for it to end.
    pub async fn stop(self) {
        match self.running {
            Running::InProcess { shutdown, thread } => {
                if let Some(shutdown) = shutdown {
                    let _ = shutdown.send(());
                }
                let joined = tokio::task::spawn_blocking(move || thread.join());
                let _ = tokio::time::timeout(Duration::from_secs(60), joined).await;
            }
            Running::Process { mut child, .. } => {
                if let Some(pid) = child.id() {
                    let _ = std::process::Command::new("kill")
                        .arg("-TERM")
                        .arg(pid.to_string())
                        .status();
                }
                let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
            }
        }
    }

    /// Kills the server at once (SIGKILL), as a crash would (a server started with
    /// [`Server::start_process`]).
    pub async fn kill(self) {
        match self.running {
            Running::Process { mut child, .. } => {
                let _ = child.kill().await;
            }
            Running::InProcess { .. } => panic!("only a server in its own process can be killed"),
        }
    }
}

/// Splits a response into its status and JSON body (panicking when the body is not JSON).
pub async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text:?}"));
    (status, json)
}

/// Polls `check` until it returns Some, for at most `seconds`.
pub async fn eventually<T, F, Fut>(seconds: u64, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Data {
    async fn pool(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        let url = match self.database_url() {
            Some(url) => url,
            None => format!("sqlite://{}", self.path().join("integrator.db").display()),
        };
        sqlx::AnyPool::connect(&url)
            .await
            .expect("connect to the test database")
    }

    /// Runs one SQL statement directly on the server's database (to simulate failures).
    pub async fn execute_sql(&self, sql: &str) {
        let pool = self.pool().await;
        sqlx::query(sql).execute(&pool).await.expect("execute SQL");
        pool.close().await;
    }

    /// Reads one text value straight from the server's database.
    pub async fn query_text(&self, sql: &str) -> String {
        let pool = self.pool().await;
        let value: String = sqlx::query_scalar(sql)
            .fetch_one(&pool)
            .await
            .expect("query SQL");
        pool.close().await;
        value
    }

    /// The folder of a tenant's files (named by the tenant's id).
    pub async fn tenant_dir(&self, tenant: &str) -> PathBuf {
        let id = self
            .query_text(&format!("SELECT id FROM tenants WHERE name = '{tenant}'"))
            .await;
        self.path().join("tenants").join(id)
    }

    /// Reads one integer straight from the server's database (to check what it keeps).
    pub async fn query_i64(&self, sql: &str) -> i64 {
        let pool = self.pool().await;
        let value: i64 = sqlx::query_scalar(sql)
            .fetch_one(&pool)
            .await
            .expect("query SQL");
        pool.close().await;
        value
    }
}

pub mod console;
pub mod upstream;

/// One parsed SSE event (the JSON of its `data:` line).
pub type SseEvent = Value;

/// Reads a whole SSE response into its events and the raw text.
pub async fn read_sse(response: reqwest::Response) -> (Vec<SseEvent>, String) {
    let raw = response.text().await.unwrap_or_default();
    (parse_sse(&raw), raw)
}

/// Parses `data: {json}` events separated by blank lines; comments are skipped.
pub fn parse_sse(raw: &str) -> Vec<SseEvent> {
    raw.split("\n\n")
        .filter_map(|block| {
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            (!data.is_empty()).then(|| serde_json::from_str(&data.join("\n")).expect("event JSON"))
        })
        .collect()
}

/// The `type`s of a list of events.
pub fn types(events: &[SseEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The concatenated `token` contents.
pub fn tokens(events: &[SseEvent]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "token")
        .filter_map(|e| e["content"].as_str())
        .collect()
}

impl Server {
    /// POSTs to a streaming endpoint and returns the response (to read as SSE).
    pub async fn stream(&self, path: &str, key: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.api(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("POST stream")
    }
}
