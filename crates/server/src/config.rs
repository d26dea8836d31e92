//! Configuration: defaults, then an optional TOML file, then the environment, then
//! command-line flags — validated once at start with messages that name the bad setting.
//!
//! Every setting is declared once, in [`SETTINGS`]: its key in the TOML file, its environment
//! variable and its kind. The file and the environment are merged into one TOML table
//! (environment wins), which serde turns into [`Layered`]; [`Config`] is built from that with
//! the defaults (the agent's from `AgentSettings::default()`) and the range checks. Secrets are
//! [`Secret`]s, so `Debug` of the configuration never prints them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use store::DatabaseTarget;

/// A setting that cannot be used, named as the operator wrote it.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting}: {problem}")]
pub struct ConfigError {
    pub setting: String,
    pub problem: String,
}

fn bad(setting: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.to_string(),
        problem: problem.into(),
    }
}

pub use store::Secret;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Prices and allowances, in micro-dollars.
#[derive(Debug, Clone)]
pub struct BillingSettings {
    pub prices: billing::PriceTable,
    pub allowances: billing::Allowances,
    /// Shifts the billing clock (for testing month rollovers); zero in production.
    pub clock_offset_ms: i64,
    /// How long a crashed replica's calls in flight keep their money set aside.
    pub reservation_hold: Duration,
}

/// Zendesk credentials, all three present.
#[derive(Debug, Clone)]
pub struct ZendeskSettings {
    pub base_url: String,
    pub email: String,
    pub api_token: Secret,
}

/// Every setting of the server and the admin CLI.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// `postgres://…` for shared state (`None`: SQLite in the data dir).
    pub database_url: Option<Secret>,
    pub openai_api_key: Option<Secret>,
    pub openai_base_url: String,
    pub model: String,
    pub master_key: Option<Secret>,
    pub body_limit: usize,
    pub auth_cache_seconds: u64,
    pub kb_sync_seconds: u64,
    pub max_steps: u32,
    pub llm_retries: u32,
    pub llm_retry_base_ms: u64,
    pub llm_connect_timeout_seconds: u64,
    pub llm_read_timeout_seconds: u64,
    pub sse_keepalive_seconds: u64,
    /// How long a turn's events stay available, after it ended, to clients that rejoin its
    /// stream (`GET /sessions/{id}/stream`).
    pub stream_retention_seconds: u64,
    pub billing: BillingSettings,
    pub zendesk: Option<ZendeskSettings>,
    pub log_format: LogFormat,
    /// What tenants' connections may reach besides public addresses
    /// (`INTEGRATOR_EGRESS_ALLOW`); the server's own endpoints are added at start.
    pub egress: workspace::EgressPolicy,
    /// Open client connections at most (`None`: derived from the open-files limit at start).
    pub max_connections: Option<usize>,
    /// How long a connection may take to send a complete request head, whether it is new or
    /// idle between kept-alive requests.
    pub request_head_timeout: Duration,
    /// Failed authentications a client address may make per minute before it gets 429.
    pub auth_failures_per_minute: u32,
    /// The address people reach the server at (`https://integrator.example.com`), for links
    /// the server prints and the console's secure cookies; `None`: `http://` + `addr`.
    pub public_url: Option<String>,
}

/// What a setting's environment variable holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Number,
}

/// One setting: its key in the TOML file (dotted inside a table), its environment variable.
struct Setting {
    key: &'static str,
    env: &'static str,
    kind: Kind,
}

const fn text(key: &'static str, env: &'static str) -> Setting {
    Setting {
        key,
        env,
        kind: Kind::Text,
    }
}

const fn number(key: &'static str, env: &'static str) -> Setting {
    Setting {
        key,
        env,
        kind: Kind::Number,
    }
}

/// Every setting that the environment can give, once.
const SETTINGS: &[Setting] = &[
    text("addr", "INTEGRATOR_ADDR"),
    text("data_dir", "INTEGRATOR_DATA_DIR"),
    text("database_url", "INTEGRATOR_DATABASE_URL"),
    text("openai_api_key", "OPENAI_API_KEY"),
    text("openai_base_url", "OPENAI_BASE_URL"),
    text("model", "INTEGRATOR_MODEL"),
    text("master_key", "INTEGRATOR_MASTER_KEY"),
    number("body_limit", "INTEGRATOR_BODY_LIMIT"),
    number("auth_cache_seconds", "INTEGRATOR_AUTH_CACHE_SECONDS"),
    number("kb_sync_seconds", "INTEGRATOR_KB_SYNC_SECONDS"),
    number("max_steps", "INTEGRATOR_MAX_STEPS"),
    number("llm_retries", "INTEGRATOR_LLM_RETRIES"),
    number("llm_retry_base_ms", "INTEGRATOR_LLM_RETRY_BASE_MS"),
    number(
        "llm_connect_timeout_seconds",
        "INTEGRATOR_LLM_CONNECT_TIMEOUT_SECONDS",
    ),
    number(
        "llm_read_timeout_seconds",
        "INTEGRATOR_LLM_READ_TIMEOUT_SECONDS",
    ),
    number("sse_keepalive_seconds", "INTEGRATOR_SSE_KEEPALIVE_SECONDS"),
    number(
        "stream_retention_seconds",
        "INTEGRATOR_STREAM_RETENTION_SECONDS",
    ),
    text("zendesk_subdomain", "INTEGRATOR_ZENDESK_SUBDOMAIN"),
    text("zendesk_url", "INTEGRATOR_ZENDESK_URL"),
    text("zendesk_email", "INTEGRATOR_ZENDESK_EMAIL"),
    text("zendesk_api_token", "INTEGRATOR_ZENDESK_API_TOKEN"),
    text("log_format", "INTEGRATOR_LOG_FORMAT"),
    text("egress_allow", "INTEGRATOR_EGRESS_ALLOW"),
    text("public_url", "INTEGRATOR_PUBLIC_URL"),
    number("max_connections", "INTEGRATOR_MAX_CONNECTIONS"),
    number(
        "request_head_timeout_seconds",
        "INTEGRATOR_REQUEST_HEAD_TIMEOUT_SECONDS",
    ),
    number(
        "auth_failures_per_minute",
        "INTEGRATOR_AUTH_FAILURES_PER_MINUTE",
    ),
    text("billing.tool_call_usd", "INTEGRATOR_TOOL_PRICE_USD"),
    text(
        "billing.allowance_free_usd",
        "INTEGRATOR_ALLOWANCE_FREE_USD",
    ),
    text(
        "billing.allowance_standard_usd",
        "INTEGRATOR_ALLOWANCE_STANDARD_USD",
    ),
    text(
        "billing.allowance_professional_usd",
        "INTEGRATOR_ALLOWANCE_PROFESSIONAL_USD",
    ),
    number(
        "billing.reservation_hold_seconds",
        "INTEGRATOR_RESERVATION_HOLD_SECONDS",
    ),
    number(
        "billing.clock_offset_days",
        "INTEGRATOR_BILLING_CLOCK_OFFSET_DAYS",
    ),
];

/// The name of a setting in messages: its TOML key and its environment variable.
fn named(key: &str) -> String {
    match SETTINGS.iter().find(|s| s.key == key) {
        Some(setting) => format!("{key} ({})", setting.env),
        None => key.to_string(),
    }
}

/// A model's price in the TOML file, in USD per 1M tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePrice {
    input_usd: String,
    output_usd: String,
}

/// The `[billing]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LayeredBilling {
    tool_call_usd: Option<String>,
    default_model: Option<FilePrice>,
    #[serde(default)]
    models: std::collections::BTreeMap<String, FilePrice>,
    allowance_free_usd: Option<String>,
    allowance_standard_usd: Option<String>,
    allowance_professional_usd: Option<String>,
    reservation_hold_seconds: Option<u64>,
    /// Environment only (`INTEGRATOR_BILLING_CLOCK_OFFSET_DAYS`), for tests of month rollovers.
    clock_offset_days: Option<i64>,
}

/// The file and the environment merged: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Layered {
    addr: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<Secret>,
    openai_api_key: Option<Secret>,
    openai_base_url: Option<String>,
    model: Option<String>,
    master_key: Option<Secret>,
    body_limit: Option<u64>,
    auth_cache_seconds: Option<u64>,
    kb_sync_seconds: Option<u64>,
    max_steps: Option<u64>,
    llm_retries: Option<u64>,
    llm_retry_base_ms: Option<u64>,
    llm_connect_timeout_seconds: Option<u64>,
    llm_read_timeout_seconds: Option<u64>,
    sse_keepalive_seconds: Option<u64>,
    stream_retention_seconds: Option<u64>,
    zendesk_subdomain: Option<String>,
    zendesk_email: Option<String>,
    zendesk_api_token: Option<Secret>,
    zendesk_url: Option<String>,
    log_format: Option<String>,
    egress_allow: Option<String>,
    public_url: Option<String>,
    max_connections: Option<u64>,
    request_head_timeout_seconds: Option<u64>,
    auth_failures_per_minute: Option<u64>,
    #[serde(default)]
    billing: LayeredBilling,
}

/// Values given on the command line; they win over everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub addr: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
}

/// Where settings come from besides the file: the process environment in production, a map
/// in tests.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

/// The TOML file's table, or an empty one.
fn file_table(path: Option<&Path>) -> Result<toml::Table, ConfigError> {
    let Some(path) = path else {
        return Ok(toml::Table::new());
    };
    let setting = format!("--config {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| bad(&setting, e.to_string()))?;
    text.parse::<toml::Table>()
        .map_err(|e| bad(&setting, e.to_string()))
}

/// Puts the environment's settings into `table`, over what the file said.
fn merge_environment(table: &mut toml::Table, env: &dyn Environment) -> Result<(), ConfigError> {
    for setting in SETTINGS {
        let Some(raw) = env.var(setting.env) else {
            continue;
        };
        let value = match setting.kind {
            Kind::Text => toml::Value::String(raw),
            Kind::Number => raw
                .trim()
                .parse::<i64>()
                .map(toml::Value::Integer)
                .map_err(|_| {
                    bad(
                        &named(setting.key),
                        format!("'{raw}' is not a whole number"),
                    )
                })?,
        };
        let mut target = &mut *table;
        let mut parts = setting.key.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                target.insert(part.to_string(), value.clone());
            } else {
                let inner = target
                    .entry(part.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                match inner {
                    toml::Value::Table(inner) => target = inner,
                    _ => return Err(bad(part, "must be a table")),
                }
            }
        }
    }
    Ok(())
}

/// A whole number in a range, or the default.
fn ranged(
    key: &str,
    value: Option<u64>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let value = value.unwrap_or(default);
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(bad(
            &named(key),
            format!("{value} is outside {}..={}", range.start(), range.end()),
        ))
    }
}

impl Config {
    /// Loads and validates the configuration.
    pub fn load(overrides: &Overrides, env: &dyn Environment) -> Result<Config, ConfigError> {
        let mut table = file_table(overrides.config_file.as_deref())?;
        merge_environment(&mut table, env)?;
        let source = overrides
            .config_file
            .as_ref()
            .map(|p| format!("--config {} or the environment", p.display()))
            .unwrap_or_else(|| "the environment".to_string());
        let layered: Layered = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| bad(&source, e.to_string()))?;
        Config::from_layered(layered, overrides)
    }

    fn from_layered(layered: Layered, overrides: &Overrides) -> Result<Config, ConfigError> {
        let agent = agent::AgentSettings::default();
        let addr_text = overrides
            .addr
            .clone()
            .or(layered.addr)
            .unwrap_or_else(|| "127.0.0.1:8080".to_string());
        let addr: SocketAddr = addr_text.parse().map_err(|_| {
            bad(
                "addr (INTEGRATOR_ADDR, --addr)",
                format!("'{addr_text}' is not a socket address such as 127.0.0.1:8080"),
            )
        })?;
        let data_dir = overrides
            .data_dir
            .clone()
            .or(layered.data_dir)
            .unwrap_or_else(|| PathBuf::from("./data"));
        let database_url = overrides
            .database_url
            .clone()
            .map(Secret::new)
            .or(layered.database_url);
        if let Some(url) = &database_url {
            let url = url.expose();
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(bad(
                    "database_url (INTEGRATOR_DATABASE_URL, --database-url)",
                    "must be a postgres:// URL (leave it unset for the embedded SQLite database)",
                ));
            }
        }
        let openai_base_url = layered
            .openai_base_url
            .unwrap_or_else(|| "https://api.openai.com/v1".to_string());
        if !(openai_base_url.starts_with("http://") || openai_base_url.starts_with("https://")) {
            return Err(bad(
                &named("openai_base_url"),
                format!("'{openai_base_url}' must start with http:// or https://"),
            ));
        }
        if let Some(key) = &layered.master_key {
            store::MasterKey::from_base64(key.expose())
                .map_err(|e| bad(&named("master_key"), e.to_string()))?;
        }
        let body_limit = ranged(
            "body_limit",
            layered.body_limit,
            1024 * 1024,
            1024..=64 * 1024 * 1024,
        )?;
        let auth_cache_seconds =
            ranged("auth_cache_seconds", layered.auth_cache_seconds, 5, 0..=60).map_err(|e| {
                ConfigError {
                    problem: format!("{} (revoked keys must stop working quickly)", e.problem),
                    ..e
                }
            })?;
        let kb_sync_seconds = ranged("kb_sync_seconds", layered.kb_sync_seconds, 2, 1..=u64::MAX)?;
        let max_steps = ranged(
            "max_steps",
            layered.max_steps,
            u64::from(agent.max_steps),
            1..=50,
        )?;
        let llm_retries = ranged(
            "llm_retries",
            layered.llm_retries,
            u64::from(agent.retries),
            0..=10,
        )?;
        let llm_retry_base_ms = ranged(
            "llm_retry_base_ms",
            layered.llm_retry_base_ms,
            agent.retry_base.as_millis() as u64,
            1..=60_000,
        )?;
        let llm_connect_timeout_seconds = ranged(
            "llm_connect_timeout_seconds",
            layered.llm_connect_timeout_seconds,
            10,
            1..=300,
        )?;
        let llm_read_timeout_seconds = ranged(
            "llm_read_timeout_seconds",
            layered.llm_read_timeout_seconds,
            120,
            1..=3600,
        )?;
        let sse_keepalive_seconds = ranged(
            "sse_keepalive_seconds",
            layered.sse_keepalive_seconds,
            15,
            1..=300,
        )?;
        let stream_retention_seconds = ranged(
            "stream_retention_seconds",
            layered.stream_retention_seconds,
            300,
            0..=86_400,
        )?;
        let hold_seconds = ranged(
            "billing.reservation_hold_seconds",
            layered.billing.reservation_hold_seconds,
            billing::DEFAULT_RESERVATION_HOLD.as_secs(),
            3..=600,
        )?;
        let billing = billing_settings(layered.billing, Duration::from_secs(hold_seconds))?;
        let zendesk = zendesk_settings(
            layered.zendesk_subdomain,
            layered.zendesk_url,
            layered.zendesk_email,
            layered.zendesk_api_token,
        )?;
        let log_format = match layered.log_format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(bad(
                    &named("log_format"),
                    format!("'{other}' is not text or json"),
                ))
            }
        };
        let egress = workspace::EgressPolicy::from_allow_list(
            layered.egress_allow.as_deref().unwrap_or_default(),
        )
        .map_err(|e| bad(&named("egress_allow"), e.to_string()))?;
        let max_connections = match layered.max_connections {
            None => None,
            Some(n) => Some(ranged("max_connections", Some(n), n, 16..=10_000_000)? as usize),
        };
        let request_head_timeout = ranged(
            "request_head_timeout_seconds",
            layered.request_head_timeout_seconds,
            20,
            1..=600,
        )?;
        let auth_failures_per_minute = ranged(
            "auth_failures_per_minute",
            layered.auth_failures_per_minute,
            30,
            1..=100_000,
        )?;
        let public_url = match layered.public_url {
            None => None,
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                Some(url.trim_end_matches('/').to_string())
            }
            Some(url) => {
                return Err(bad(
                    &named("public_url"),
                    format!("'{url}' must start with http:// or https://"),
                ))
            }
        };
        Ok(Config {
            addr,
            data_dir,
            database_url,
            openai_api_key: layered.openai_api_key,
            openai_base_url,
            model: layered.model.unwrap_or_else(|| "gpt-4.1".to_string()),
            master_key: layered.master_key,
            body_limit: body_limit as usize,
            auth_cache_seconds,
            kb_sync_seconds,
            max_steps: max_steps as u32,
            llm_retries: llm_retries as u32,
            llm_retry_base_ms,
            llm_connect_timeout_seconds,
            llm_read_timeout_seconds,
            sse_keepalive_seconds,
            stream_retention_seconds,
            billing,
            zendesk,
            log_format,
            egress,
            max_connections,
            request_head_timeout: Duration::from_secs(request_head_timeout),
            auth_failures_per_minute: auth_failures_per_minute as u32,
            public_url,
        })
    }

    /// The database all state lives in.
    pub fn database_target(&self) -> DatabaseTarget {
        match &self.database_url {
            Some(url) => DatabaseTarget::Postgres(url.expose().to_string()),
            None => DatabaseTarget::Sqlite(self.data_dir.join("integrator.db")),
        }
    }

    /// The addresses of the server's own PostgreSQL database (none on SQLite), which tenants'
    /// connections may not reach unless the operator names them.
    pub async fn database_endpoints(&self) -> Vec<SocketAddr> {
        match &self.database_url {
            Some(url) => workspace::egress::database_endpoints(url.expose()).await,
            None => Vec::new(),
        }
    }

    /// The address people reach the server at: `public_url`, or `http://` + the address it
    /// listens on (`listening` when the configured port was 0).
    pub fn base_url(&self, listening: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            // A server on every interface is reached, from this machine, on localhost.
            None if listening.ip().is_unspecified() => {
                format!("http://localhost:{}", listening.port())
            }
            None => format!("http://{listening}"),
        }
    }

    /// Where this process keeps its search index.
    pub fn index_dir(&self) -> PathBuf {
        self.data_dir.join("index")
    }

    /// Loads the master key from the setting, or from (creating) `master.key` in the data dir.
    pub fn master_key(&self) -> Result<store::MasterKey, store::SecretError> {
        match &self.master_key {
            Some(text) => store::MasterKey::from_base64(text.expose()),
            None => store::MasterKey::load_or_create(&self.data_dir.join("master.key")),
        }
    }
}

fn usd_setting(setting: &str, text: &str) -> Result<i64, ConfigError> {
    store::parse_usd(text).map_err(|problem| bad(setting, problem))
}

fn model_price(setting: &str, price: &FilePrice) -> Result<billing::ModelPrice, ConfigError> {
    Ok(billing::ModelPrice {
        input_per_million: usd_setting(&format!("{setting}.input_usd"), &price.input_usd)?,
        output_per_million: usd_setting(&format!("{setting}.output_usd"), &price.output_usd)?,
    })
}

fn billing_settings(
    file: LayeredBilling,
    reservation_hold: Duration,
) -> Result<BillingSettings, ConfigError> {
    let mut prices = billing::PriceTable::default();
    let mut allowances = billing::Allowances::default();
    if let Some(text) = file.tool_call_usd {
        prices.tool_call = usd_setting(&named("billing.tool_call_usd"), &text)?;
    }
    if let Some(price) = &file.default_model {
        prices.default_model = model_price("billing.default_model", price)?;
    }
    for (model, price) in &file.models {
        prices.set_model(
            model,
            model_price(&format!("billing.models.\"{model}\""), price)?,
        );
    }
    for (key, given, target) in [
        (
            "billing.allowance_free_usd",
            file.allowance_free_usd,
            &mut allowances.free,
        ),
        (
            "billing.allowance_standard_usd",
            file.allowance_standard_usd,
            &mut allowances.standard,
        ),
        (
            "billing.allowance_professional_usd",
            file.allowance_professional_usd,
            &mut allowances.professional,
        ),
    ] {
        if let Some(text) = given {
            *target = usd_setting(&named(key), &text)?;
        }
    }
    let clock_offset_ms = match file.clock_offset_days {
        None => 0,
        Some(days) if days.abs() <= 3660 => days * 86_400_000,
        Some(days) => {
            return Err(bad(
                &named("billing.clock_offset_days"),
                format!("{days} is not within ten years"),
            ))
        }
    };
    Ok(BillingSettings {
        prices,
        allowances,
        clock_offset_ms,
        reservation_hold,
    })
}

fn zendesk_settings(
    subdomain: Option<String>,
    url: Option<String>,
    email: Option<String>,
    token: Option<Secret>,
) -> Result<Option<ZendeskSettings>, ConfigError> {
    let base_url = match (subdomain, url) {
        (_, Some(url)) => Some(url),
        (Some(sub), None) => {
            if !sub.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(bad(
                    "zendesk_subdomain (INTEGRATOR_ZENDESK_SUBDOMAIN)",
                    "must be the subdomain only, e.g. acme for acme.zendesk.com",
                ));
            }
            Some(format!("https://{sub}.zendesk.com"))
        }
        (None, None) => None,
    };
    match (base_url, email, token) {
        (None, None, None) => Ok(None),
        (Some(base_url), Some(email), Some(api_token)) => Ok(Some(ZendeskSettings {
            base_url,
            email,
            api_token,
        })),
        (None, _, _) => Err(bad(
            "zendesk_subdomain (INTEGRATOR_ZENDESK_SUBDOMAIN)",
            "is required when a Zendesk email or token is set",
        )),
        (_, None, _) => Err(bad(
            "zendesk_email (INTEGRATOR_ZENDESK_EMAIL)",
            "is required with a Zendesk subdomain: the agent email the API token belongs to",
        )),
        (_, _, None) => Err(bad(
            "zendesk_api_token (INTEGRATOR_ZENDESK_API_TOKEN)",
            "is required with a Zendesk subdomain",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct MapEnvironment(HashMap<&'static str, &'static str>);

    impl Environment for MapEnvironment {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| v.to_string())
        }
    }

    fn load(
        env: &[(&'static str, &'static str)],
        overrides: Overrides,
    ) -> Result<Config, ConfigError> {
        Config::load(&overrides, &MapEnvironment(env.iter().copied().collect()))
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let config = load(&[], Overrides::default()).expect("defaults load");
        assert_eq!(config.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert!(matches!(
            config.database_target(),
            DatabaseTarget::Sqlite(_)
        ));
        assert_eq!(config.model, "gpt-4.1");
        assert_eq!(config.body_limit, 1024 * 1024);
    }

    #[test]
    fn environment_beats_file_and_flags_beat_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "addr = \"127.0.0.1:1000\"\nmodel = \"from-file\"\nbody_limit = 2048\n",
        )
        .expect("write");
        let overrides = Overrides {
            config_file: Some(path.clone()),
            ..Overrides::default()
        };
        let config = load(&[("INTEGRATOR_MODEL", "from-env")], overrides.clone()).expect("load");
        assert_eq!(config.addr.port(), 1000);
        assert_eq!(config.model, "from-env");
        assert_eq!(config.body_limit, 2048);
        let with_flag = Overrides {
            addr: Some("127.0.0.1:2000".into()),
            ..overrides
        };
        let config = load(&[("INTEGRATOR_ADDR", "127.0.0.1:3000")], with_flag).expect("load");
        assert_eq!(config.addr.port(), 2000);
    }

    #[test]
    fn bad_settings_are_named() {
        let cases: &[(&[(&'static str, &'static str)], &str)] = &[
            (&[("INTEGRATOR_ADDR", "nowhere")], "INTEGRATOR_ADDR"),
            (
                &[("INTEGRATOR_BODY_LIMIT", "lots")],
                "INTEGRATOR_BODY_LIMIT",
            ),
            (
                &[("INTEGRATOR_DATABASE_URL", "mysql://x")],
                "INTEGRATOR_DATABASE_URL",
            ),
            (&[("OPENAI_BASE_URL", "ftp://x")], "OPENAI_BASE_URL"),
            (
                &[("INTEGRATOR_MASTER_KEY", "short")],
                "INTEGRATOR_MASTER_KEY",
            ),
            (
                &[("INTEGRATOR_ZENDESK_SUBDOMAIN", "acme")],
                "INTEGRATOR_ZENDESK_EMAIL",
            ),
            (&[("INTEGRATOR_LOG_FORMAT", "xml")], "INTEGRATOR_LOG_FORMAT"),
            (
                &[("INTEGRATOR_EGRESS_ALLOW", "10.0.0.0/99")],
                "INTEGRATOR_EGRESS_ALLOW",
            ),
            (
                &[("INTEGRATOR_MAX_CONNECTIONS", "3")],
                "INTEGRATOR_MAX_CONNECTIONS",
            ),
            (
                &[("INTEGRATOR_RESERVATION_HOLD_SECONDS", "1")],
                "INTEGRATOR_RESERVATION_HOLD_SECONDS",
            ),
        ];
        for (env, named) in cases {
            let error = load(env, Overrides::default()).expect_err("must fail");
            assert!(
                error.to_string().contains(named),
                "{error} should name {named}"
            );
        }
    }

    #[test]
    fn secrets_never_show_in_debug_and_tables_merge_with_the_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "openai_api_key = \"sk-from-file-123\"\n[billing]\ntool_call_usd = \"0.5\"\nreservation_hold_seconds = 30\n",
        )
        .expect("write");
        let config = load(
            &[
                ("INTEGRATOR_TOOL_PRICE_USD", "0.25"),
                ("INTEGRATOR_DATABASE_URL", "postgres://u:pw-secret@h/db"),
                ("INTEGRATOR_ZENDESK_SUBDOMAIN", "acme"),
                ("INTEGRATOR_ZENDESK_EMAIL", "a@acme.test"),
                ("INTEGRATOR_ZENDESK_API_TOKEN", "zd-secret-token"),
            ],
            Overrides {
                config_file: Some(path),
                ..Overrides::default()
            },
        )
        .expect("load");
        assert_eq!(config.billing.prices.tool_call, 250_000);
        assert_eq!(config.billing.reservation_hold.as_secs(), 30);
        assert_eq!(
            config.openai_api_key.as_ref().map(Secret::expose),
            Some("sk-from-file-123")
        );
        let shown = format!("{config:?}");
        for secret in ["sk-from-file-123", "pw-secret", "zd-secret-token"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        // The agent's defaults are the agent's own.
        let defaults = load(&[], Overrides::default()).expect("defaults");
        assert_eq!(
            defaults.max_steps,
            agent::AgentSettings::default().max_steps
        );
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "adress = \"x\"\n").expect("write");
        let error = load(
            &[],
            Overrides {
                config_file: Some(path),
                ..Overrides::default()
            },
        )
        .expect_err("must fail");
        assert!(error.to_string().contains("adress"), "{error}");
    }
}
