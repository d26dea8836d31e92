//! Configuration: defaults, then an optional TOML file, then the environment, then
//! command-line flags — validated once at start with messages that name the bad setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    pub reservation_hold: std::time::Duration,
}

/// A model's price in the TOML file, in USD per 1M tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePrice {
    input_usd: String,
    output_usd: String,
}

/// The `[billing]` table of the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBilling {
    tool_call_usd: Option<String>,
    default_model: Option<FilePrice>,
    #[serde(default)]
    models: std::collections::BTreeMap<String, FilePrice>,
    allowance_free_usd: Option<String>,
    allowance_standard_usd: Option<String>,
    allowance_professional_usd: Option<String>,
    reservation_hold_seconds: Option<u64>,
}

/// Zendesk credentials, all three present.
#[derive(Clone)]
pub struct ZendeskSettings {
    pub base_url: String,
    pub email: String,
    pub api_token: String,
}

/// Every setting of the server and the admin CLI.
#[derive(Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub openai_api_key: Option<String>,
    pub openai_base_url: String,
    pub model: String,
    pub master_key: Option<String>,
    pub body_limit: usize,
    pub auth_cache_seconds: u64,
    pub kb_sync_seconds: u64,
    pub max_steps: u32,
    pub llm_retries: u32,
    pub llm_retry_base_ms: u64,
    pub llm_connect_timeout_seconds: u64,
    pub llm_read_timeout_seconds: u64,
    pub sse_keepalive_seconds: u64,
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
    pub request_head_timeout: std::time::Duration,
    /// Failed authentications a client address may make per minute before it gets 429.
    pub auth_failures_per_minute: u32,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("data_dir", &self.data_dir)
            .field(
                "database",
                &self.database_url.as_ref().map(|_| "postgres (url hidden)"),
            )
            .field(
                "openai_api_key",
                &self.openai_api_key.as_ref().map(|_| "***"),
            )
            .field("openai_base_url", &self.openai_base_url)
            .field("model", &self.model)
            .field("body_limit", &self.body_limit)
            .finish_non_exhaustive()
    }
}

/// The TOML file's keys; every one optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    addr: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    openai_api_key: Option<String>,
    openai_base_url: Option<String>,
    model: Option<String>,
    master_key: Option<String>,
    body_limit: Option<u64>,
    auth_cache_seconds: Option<u64>,
    kb_sync_seconds: Option<u64>,
    max_steps: Option<u64>,
    llm_retries: Option<u64>,
    llm_retry_base_ms: Option<u64>,
    llm_connect_timeout_seconds: Option<u64>,
    llm_read_timeout_seconds: Option<u64>,
    sse_keepalive_seconds: Option<u64>,
    zendesk_subdomain: Option<String>,
    zendesk_email: Option<String>,
    zendesk_api_token: Option<String>,
    zendesk_url: Option<String>,
    log_format: Option<String>,
    egress_allow: Option<String>,
    max_connections: Option<u64>,
    request_head_timeout_seconds: Option<u64>,
    auth_failures_per_minute: Option<u64>,
    #[serde(default)]
    billing: FileBilling,
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

impl Config {
    /// Loads and validates the configuration.
    pub fn load(overrides: &Overrides, env: &dyn Environment) -> Result<Config, ConfigError> {
        let file = match &overrides.config_file {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let text = |env_name: &str, from_file: Option<String>| env.var(env_name).or(from_file);
        let number = |env_name: &str, from_file: Option<u64>| -> Result<Option<u64>, ConfigError> {
            match env.var(env_name) {
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| bad(env_name, format!("'{v}' is not a whole number"))),
                None => Ok(from_file),
            }
        };

        let addr_text = overrides
            .addr
            .clone()
            .or_else(|| text("INTEGRATOR_ADDR", file.addr.clone()))
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
            .or_else(|| env.var("INTEGRATOR_DATA_DIR").map(PathBuf::from))
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./data"));

        let database_url = overrides
            .database_url
            .clone()
            .or_else(|| text("INTEGRATOR_DATABASE_URL", file.database_url.clone()));
        if let Some(url) = &database_url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(bad(
                    "database_url (INTEGRATOR_DATABASE_URL, --database-url)",
                    "must be a postgres:// URL (leave it unset for the embedded SQLite database)",
                ));
            }
        }

        let openai_base_url = text("OPENAI_BASE_URL", file.openai_base_url)
            .unwrap_or_else(|| "https://api.openai.com/v1".to_string());
        if !(openai_base_url.starts_with("http://") || openai_base_url.starts_with("https://")) {
            return Err(bad(
                "openai_base_url (OPENAI_BASE_URL)",
                format!("'{openai_base_url}' must start with http:// or https://"),
            ));
        }

        let master_key = text("INTEGRATOR_MASTER_KEY", file.master_key);
        if let Some(key) = &master_key {
            store::MasterKey::from_base64(key)
                .map_err(|e| bad("master_key (INTEGRATOR_MASTER_KEY)", e.to_string()))?;
        }

        let body_limit = number("INTEGRATOR_BODY_LIMIT", file.body_limit)?.unwrap_or(1024 * 1024);
        if !(1024..=64 * 1024 * 1024).contains(&body_limit) {
            return Err(bad(
                "body_limit (INTEGRATOR_BODY_LIMIT)",
                "must be between 1024 and 67108864 bytes",
            ));
        }
        let auth_cache_seconds =
            number("INTEGRATOR_AUTH_CACHE_SECONDS", file.auth_cache_seconds)?.unwrap_or(5);
        if auth_cache_seconds > 60 {
            return Err(bad(
                "auth_cache_seconds (INTEGRATOR_AUTH_CACHE_SECONDS)",
                "must be at most 60 so that revoked keys stop working quickly",
            ));
        }
        let kb_sync_seconds =
            number("INTEGRATOR_KB_SYNC_SECONDS", file.kb_sync_seconds)?.unwrap_or(2);
        if kb_sync_seconds == 0 {
            return Err(bad(
                "kb_sync_seconds (INTEGRATOR_KB_SYNC_SECONDS)",
                "must be at least 1",
            ));
        }

        let ranged = |env_name: &str,
                      setting: &str,
                      from_file: Option<u64>,
                      default: u64,
                      range: std::ops::RangeInclusive<u64>|
         -> Result<u64, ConfigError> {
            let value = number(env_name, from_file)?.unwrap_or(default);
            if range.contains(&value) {
                Ok(value)
            } else {
                Err(bad(
                    &format!("{setting} ({env_name})"),
                    format!("{value} is outside {}..={}", range.start(), range.end()),
                ))
            }
        };
        let max_steps = ranged(
            "INTEGRATOR_MAX_STEPS",
            "max_steps",
            file.max_steps,
            8,
            1..=50,
        )?;
        let llm_retries = ranged(
            "INTEGRATOR_LLM_RETRIES",
            "llm_retries",
            file.llm_retries,
            3,
            0..=10,
        )?;
        let llm_retry_base_ms = ranged(
            "INTEGRATOR_LLM_RETRY_BASE_MS",
            "llm_retry_base_ms",
            file.llm_retry_base_ms,
            500,
            1..=60_000,
        )?;
        let llm_connect_timeout_seconds = ranged(
            "INTEGRATOR_LLM_CONNECT_TIMEOUT_SECONDS",
            "llm_connect_timeout_seconds",
            file.llm_connect_timeout_seconds,
            10,
            1..=300,
        )?;
        let llm_read_timeout_seconds = ranged(
            "INTEGRATOR_LLM_READ_TIMEOUT_SECONDS",
            "llm_read_timeout_seconds",
            file.llm_read_timeout_seconds,
            120,
            1..=3600,
        )?;
        let sse_keepalive_seconds = ranged(
            "INTEGRATOR_SSE_KEEPALIVE_SECONDS",
            "sse_keepalive_seconds",
            file.sse_keepalive_seconds,
            15,
            1..=300,
        )?;

        let hold_seconds = number(
            "INTEGRATOR_RESERVATION_HOLD_SECONDS",
            file.billing.reservation_hold_seconds,
        )?
        .unwrap_or(billing::DEFAULT_RESERVATION_HOLD.as_secs());
        if !(3..=600).contains(&hold_seconds) {
            return Err(bad(
                "billing.reservation_hold_seconds (INTEGRATOR_RESERVATION_HOLD_SECONDS)",
                "must be between 3 and 600 seconds",
            ));
        }
        let billing = billing_settings(
            env,
            file.billing,
            std::time::Duration::from_secs(hold_seconds),
        )?;

        let zendesk = zendesk_settings(
            text("INTEGRATOR_ZENDESK_SUBDOMAIN", file.zendesk_subdomain),
            text("INTEGRATOR_ZENDESK_URL", file.zendesk_url),
            text("INTEGRATOR_ZENDESK_EMAIL", file.zendesk_email),
            text("INTEGRATOR_ZENDESK_API_TOKEN", file.zendesk_api_token),
        )?;

        let log_format = match text("INTEGRATOR_LOG_FORMAT", file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(bad(
                    "log_format (INTEGRATOR_LOG_FORMAT)",
                    format!("'{other}' is not text or json"),
                ))
            }
        };

        let egress_allow = text("INTEGRATOR_EGRESS_ALLOW", file.egress_allow).unwrap_or_default();
        let egress = workspace::EgressPolicy::from_allow_list(&egress_allow)
            .map_err(|e| bad("egress_allow (INTEGRATOR_EGRESS_ALLOW)", e.to_string()))?;
        let max_connections = match number("INTEGRATOR_MAX_CONNECTIONS", file.max_connections)? {
            None => None,
            Some(n) if (16..=10_000_000).contains(&n) => Some(n as usize),
            Some(n) => {
                return Err(bad(
                    "max_connections (INTEGRATOR_MAX_CONNECTIONS)",
                    format!("{n} is outside 16..=10000000"),
                ))
            }
        };
        let request_head_timeout = ranged(
            "INTEGRATOR_REQUEST_HEAD_TIMEOUT_SECONDS",
            "request_head_timeout_seconds",
            file.request_head_timeout_seconds,
            20,
            1..=600,
        )?;
        let auth_failures_per_minute = ranged(
            "INTEGRATOR_AUTH_FAILURES_PER_MINUTE",
            "auth_failures_per_minute",
            file.auth_failures_per_minute,
            30,
            1..=100_000,
        )?;

        Ok(Config {
            addr,
            data_dir,
            database_url,
            openai_api_key: text("OPENAI_API_KEY", file.openai_api_key),
            openai_base_url,
            model: text("INTEGRATOR_MODEL", file.model).unwrap_or_else(|| "gpt-4.1".to_string()),
            master_key,
            body_limit: body_limit as usize,
            auth_cache_seconds,
            kb_sync_seconds,
            max_steps: max_steps as u32,
            llm_retries: llm_retries as u32,
            llm_retry_base_ms,
            llm_connect_timeout_seconds,
            llm_read_timeout_seconds,
            sse_keepalive_seconds,
            billing,
            zendesk,
            log_format,
            egress,
            max_connections,
            request_head_timeout: std::time::Duration::from_secs(request_head_timeout),
            auth_failures_per_minute: auth_failures_per_minute as u32,
        })
    }

    /// The database all state lives in.
    pub fn database_target(&self) -> DatabaseTarget {
        match &self.database_url {
            Some(url) => DatabaseTarget::Postgres(url.clone()),
            None => DatabaseTarget::Sqlite(self.data_dir.join("integrator.db")),
        }
    }

    /// The addresses of the server's own PostgreSQL database (none on SQLite), which tenants'
    /// connections may not reach unless the operator names them.
    pub async fn database_endpoints(&self) -> Vec<SocketAddr> {
        match &self.database_url {
            Some(url) => workspace::egress::database_endpoints(url).await,
            None => Vec::new(),
        }
    }

    /// Where this process keeps its search index.
    pub fn index_dir(&self) -> PathBuf {
        self.data_dir.join("index")
    }

    /// Loads the master key from the setting, or from (creating) `master.key` in the data dir.
    pub fn master_key(&self) -> Result<store::MasterKey, store::SecretError> {
        match &self.master_key {
            Some(text) => store::MasterKey::from_base64(text),
            None => store::MasterKey::load_or_create(&self.data_dir.join("master.key")),
        }
    }
}

fn read_file(path: &Path) -> Result<FileSettings, ConfigError> {
    let setting = format!("--config {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| bad(&setting, e.to_string()))?;
    toml::from_str(&text).map_err(|e| bad(&setting, e.to_string()))
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
    env: &dyn Environment,
    file: FileBilling,
    reservation_hold: std::time::Duration,
) -> Result<BillingSettings, ConfigError> {
    let mut prices = billing::PriceTable::default();
    let mut allowances = billing::Allowances::default();
    if let Some(text) = env.var("INTEGRATOR_TOOL_PRICE_USD").or(file.tool_call_usd) {
        prices.tool_call = usd_setting("billing.tool_call_usd (INTEGRATOR_TOOL_PRICE_USD)", &text)?;
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
    for (env_name, from_file, target) in [
        (
            "INTEGRATOR_ALLOWANCE_FREE_USD",
            file.allowance_free_usd,
            &mut allowances.free,
        ),
        (
            "INTEGRATOR_ALLOWANCE_STANDARD_USD",
            file.allowance_standard_usd,
            &mut allowances.standard,
        ),
        (
            "INTEGRATOR_ALLOWANCE_PROFESSIONAL_USD",
            file.allowance_professional_usd,
            &mut allowances.professional,
        ),
    ] {
        if let Some(text) = env.var(env_name).or(from_file) {
            *target = usd_setting(env_name, &text)?;
        }
    }
    let clock_offset_ms = match env.var("INTEGRATOR_BILLING_CLOCK_OFFSET_DAYS") {
        None => 0,
        Some(text) => text
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|days| days.abs() <= 3660)
            .map(|days| days * 86_400_000)
            .ok_or_else(|| {
                bad(
                    "INTEGRATOR_BILLING_CLOCK_OFFSET_DAYS",
                    format!("'{text}' is not a whole number of days"),
                )
            })?,
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
    token: Option<String>,
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
