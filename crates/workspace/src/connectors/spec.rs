//! The parameters of each connection type, parsed once into a typed [`Connection`]: which
//! parameters a type takes, which it needs, what their values must be. `create connection` and
//! `set connection` check with this parser (values still holding `{{PLACEHOLDER}}`s are
//! checked once filled), and every connector opens from its typed spec. Secret values are
//! [`store::Secret`]s, so `Debug` never prints them.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::HeaderName;
use store::Secret;
use url::Url;

use super::file::FileFormat;
use super::{ConnectionSpec, ConnectionType, ConnectorError};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u32 = 3;
const MAX_RETRIES: u32 = 20;
const DEFAULT_PAGE_SIZE: u64 = 100;

/// A connection's parameters, checked and typed.
#[derive(Debug, Clone)]
pub enum Connection {
    Http(Box<HttpConnection>),
    Postgres(PostgresConnection),
    Sqlite(SqliteConnection),
    File(FileConnection),
}

/// An `http` connection (see `docs/connection-http.md`).
#[derive(Debug, Clone)]
pub struct HttpConnection {
    /// The base URL (http or https, with a host); it may carry credentials.
    pub url: Url,
    /// `header.NAME=VALUE` parameters.
    pub headers: Vec<(HeaderName, Secret)>,
    pub auth: HttpAuth,
    /// Where the records are in a response (`records=data.items`).
    pub records: Option<Vec<String>>,
    pub pagination: Pagination,
    /// Per request.
    pub timeout: Duration,
    /// Retries of 429, 5xx and connection errors.
    pub retries: u32,
}

impl HttpConnection {
    /// Whether requests carry credentials (auth, headers or user info in the URL): then they
    /// never follow a redirect or a `Link` to another host.
    pub fn sends_credentials(&self) -> bool {
        !self.headers.is_empty()
            || !self.url.username().is_empty()
            || !matches!(self.auth, HttpAuth::None)
    }
}

/// How an `http` connection authenticates.
#[derive(Debug, Clone)]
pub enum HttpAuth {
    None,
    Bearer(Secret),
    Basic { username: String, password: Secret },
}

/// How pages of an `http` resource are requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pagination {
    None,
    Page {
        page_param: String,
        size_param: String,
        page_size: u64,
    },
    Offset {
        offset_param: String,
        size_param: String,
        page_size: u64,
    },
    Cursor {
        cursor_param: String,
        cursor_path: Vec<String>,
    },
    Link,
}

/// A `postgres` connection.
#[derive(Debug, Clone)]
pub struct PostgresConnection {
    /// `postgres://USER@HOST:PORT/DATABASE[?options]`; a password in it is a secret too.
    pub url: Secret,
    pub password: Option<Secret>,
}

/// A `sqlite` connection: a file inside the tenant's folder.
#[derive(Debug, Clone)]
pub struct SqliteConnection {
    /// As given (relative to the tenant's folder).
    pub path: String,
}

/// A `file` connection: a folder of CSV, JSON or NDJSON files inside the tenant's folder.
#[derive(Debug, Clone)]
pub struct FileConnection {
    /// As given (relative to the tenant's folder).
    pub path: String,
    pub format: FileFormat,
}

/// Parameters each connection type accepts (besides `header.*` for http).
fn allowed(kind: ConnectionType) -> &'static [&'static str] {
    match kind {
        ConnectionType::Http => &[
            "url",
            "auth",
            "token",
            "username",
            "password",
            "records",
            "pagination",
            "page_param",
            "size_param",
            "page_size",
            "offset_param",
            "cursor_param",
            "cursor_path",
            "timeout",
            "retries",
        ],
        ConnectionType::Postgres => &["url", "password"],
        ConnectionType::Sqlite => &["path"],
        ConnectionType::File => &["path", "format"],
    }
}

fn required(kind: ConnectionType) -> &'static [&'static str] {
    match kind {
        ConnectionType::Http | ConnectionType::Postgres => &["url"],
        ConnectionType::Sqlite => &["path"],
        ConnectionType::File => &["path", "format"],
    }
}

/// A value that parses for `key`, standing in for a `{{PLACEHOLDER}}` while checking.
fn stand_in(kind: ConnectionType, key: &str) -> &'static str {
    match (kind, key) {
        (ConnectionType::Http, "url") => "https://placeholder.invalid/",
        (ConnectionType::Postgres, "url") => "postgres://placeholder@placeholder.invalid/db",
        (_, "page_size" | "retries") => "1",
        (_, "timeout") => "30s",
        (_, "format") => "csv",
        (_, "auth") => "none",
        (_, "pagination") => "none",
        _ => "placeholder",
    }
}

impl Connection {
    /// Parses a connection whose placeholders are all filled.
    pub fn parse(spec: &ConnectionSpec) -> Result<Connection, ConnectorError> {
        parse(spec.kind, &spec.params).map_err(|problem| {
            ConnectorError::Config(format!("connection {}: {problem}", spec.name))
        })
    }

    /// Checks parameters as `create connection` / `set connection` give them: known names,
    /// the required ones present, values that parse. A value holding a placeholder is checked
    /// once it is filled.
    pub fn check(kind: ConnectionType, params: &BTreeMap<String, String>) -> Result<(), String> {
        let filled: BTreeMap<String, String> = params
            .iter()
            .map(|(key, value)| {
                let value = if value.contains("{{") {
                    stand_in(kind, key).to_string()
                } else {
                    value.clone()
                };
                (key.clone(), value)
            })
            .collect();
        if let Some(path) = filled.get("path") {
            checked_path(path)?;
        }
        parse(kind, &filled).map(|_| ())
    }
}

fn parse(kind: ConnectionType, params: &BTreeMap<String, String>) -> Result<Connection, String> {
    let allowed = allowed(kind);
    for key in params.keys() {
        let known = allowed.contains(&key.as_str())
            || (kind == ConnectionType::Http && key.starts_with("header.") && key.len() > 7);
        if !known {
            return Err(format!(
                "unknown parameter '{key}' for {} connections (expected {}{})",
                kind.as_str(),
                allowed.join(", "),
                if kind == ConnectionType::Http {
                    ", header.NAME"
                } else {
                    ""
                }
            ));
        }
    }
    if let Some(missing) = required(kind).iter().find(|k| !params.contains_key(**k)) {
        return Err(format!("{} connections need {missing}=…", kind.as_str()));
    }
    let param = |key: &str| params.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
    Ok(match kind {
        ConnectionType::Http => Connection::Http(Box::new(parse_http(params, &param)?)),
        ConnectionType::Postgres => {
            let url =
                param("url").ok_or("url= is required (postgres://USER@HOST:PORT/DATABASE)")?;
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(format!(
                    "url='{}' must start with postgres:// (postgres://USER@HOST:PORT/DATABASE)",
                    crate::redaction::mask_url_text(url)
                ));
            }
            Connection::Postgres(PostgresConnection {
                url: Secret::new(url),
                password: param("password").map(Secret::new),
            })
        }
        // Where a path leads is decided when it is opened, inside the tenant's folder
        // (`tenant_files`); `check` refuses the obvious escapes at once.
        ConnectionType::Sqlite => Connection::Sqlite(SqliteConnection {
            path: param("path").unwrap_or_default().to_string(),
        }),
        ConnectionType::File => {
            let path = param("path").unwrap_or_default().to_string();
            let format_text = param("format").unwrap_or_default();
            let format = FileFormat::parse(format_text)
                .ok_or_else(|| format!("format='{format_text}' must be csv, json or ndjson"))?;
            Connection::File(FileConnection { path, format })
        }
    })
}

/// Paths of sqlite and file connections are relative and stay inside the tenant's folder.
fn checked_path(path: &str) -> Result<String, String> {
    let escapes = path.starts_with('/')
        || path.starts_with('\\')
        || path.contains(':')
        || path.split(['/', '\\']).any(|part| part == "..");
    if escapes || path.trim().is_empty() {
        Err(format!(
            "path '{path}' must be relative and stay inside your workspace folder (no '..', no absolute paths)"
        ))
    } else {
        Ok(path.trim().to_string())
    }
}

fn parse_http<'a>(
    params: &'a BTreeMap<String, String>,
    param: &impl Fn(&str) -> Option<&'a str>,
) -> Result<HttpConnection, String> {
    let raw_url = param("url").ok_or("url= is required")?;
    let url = Url::parse(raw_url).map_err(|e| format!("url is not a valid URL ({e})"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "url='{}' must start with http:// or https://",
            crate::redaction::mask_url_text(raw_url)
        ));
    }
    if url.host_str().is_none() {
        return Err("url has no host".into());
    }
    let mut headers = Vec::new();
    for (key, value) in params {
        let Some(header) = key.strip_prefix("header.") else {
            continue;
        };
        let name = HeaderName::from_bytes(header.as_bytes())
            .map_err(|_| format!("`{header}` is not a valid header name"))?;
        if reqwest::header::HeaderValue::from_str(value).is_err() {
            return Err(format!(
                "the value of header.{header} is not a valid header value"
            ));
        }
        headers.push((name, Secret::new(value)));
    }
    let auth = match param("auth").unwrap_or("none") {
        "none" => HttpAuth::None,
        "bearer" => {
            let token = param("token").ok_or("auth=bearer needs token=")?;
            if reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
                return Err("token is not a valid header value".into());
            }
            HttpAuth::Bearer(Secret::new(token))
        }
        "basic" => HttpAuth::Basic {
            username: param("username")
                .ok_or("auth=basic needs username=")?
                .to_string(),
            password: Secret::new(params.get("password").map(String::as_str).unwrap_or("")),
        },
        other => {
            return Err(format!(
                "auth={other} is not supported; use none, bearer or basic"
            ))
        }
    };
    let page_size = match param("page_size") {
        None => DEFAULT_PAGE_SIZE,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| format!("page_size={text} must be a whole number from 1 to 1000000"))?,
    };
    let text_param = |key: &str, default: &str| param(key).unwrap_or(default).to_string();
    let pagination = match param("pagination").unwrap_or("none") {
        "none" => Pagination::None,
        "page" => Pagination::Page {
            page_param: text_param("page_param", "page"),
            size_param: text_param("size_param", "per_page"),
            page_size,
        },
        "offset" => Pagination::Offset {
            offset_param: text_param("offset_param", "offset"),
            size_param: text_param("size_param", "limit"),
            page_size,
        },
        "cursor" => Pagination::Cursor {
            cursor_param: text_param("cursor_param", "cursor"),
            cursor_path: param("cursor_path").map(dot_path).ok_or(
                "pagination=cursor needs cursor_path= (where the next cursor is in the response body, e.g. meta.next_cursor)",
            )?,
        },
        "link" => Pagination::Link,
        other => {
            return Err(format!(
                "pagination={other} is not supported; use none, page, offset, cursor or link"
            ))
        }
    };
    let timeout = match param("timeout") {
        None => DEFAULT_TIMEOUT,
        Some(text) => parse_duration(text)
            .filter(|d| *d >= Duration::from_millis(100) && *d <= Duration::from_secs(3600))
            .ok_or_else(|| {
                format!("timeout={text} must be a duration such as 30s or 2m (at most 1h)")
            })?,
    };
    let retries = match param("retries") {
        None => DEFAULT_RETRIES,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= MAX_RETRIES)
            .ok_or_else(|| {
                format!("retries={text} must be a whole number from 0 to {MAX_RETRIES}")
            })?,
    };
    Ok(HttpConnection {
        url,
        headers,
        auth,
        records: param("records").map(dot_path),
        pagination,
        timeout,
        retries,
    })
}

/// `a.b.c` → `["a", "b", "c"]`.
pub(crate) fn dot_path(text: &str) -> Vec<String> {
    text.split('.')
        .filter(|part| !part.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parses `30s`, `2m`, `1h`, `500ms` or a bare number of seconds.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    if !number.is_finite() || number < 0.0 {
        return None;
    }
    let seconds = match unit.trim() {
        "" | "s" | "sec" | "secs" | "second" | "seconds" => number,
        "ms" => number / 1000.0,
        "m" | "min" | "mins" | "minute" | "minutes" => number * 60.0,
        "h" | "hour" | "hours" => number * 3600.0,
        _ => return None,
    };
    if seconds > 1e9 {
        return None;
    }
    Some(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_type_parses_once_with_its_secrets_typed() {
        let spec = ConnectionSpec {
            name: "api".into(),
            kind: ConnectionType::Http,
            params: params(&[
                ("url", "https://api.example.com/v1"),
                ("auth", "bearer"),
                ("token", "s3cr3t-token"),
                ("header.X-Api-Key", "k3y"),
                ("pagination", "cursor"),
                ("cursor_path", "meta.next"),
                ("timeout", "2m"),
            ]),
        };
        let Ok(Connection::Http(http)) = Connection::parse(&spec) else {
            panic!("http parses");
        };
        assert!(http.sends_credentials());
        assert_eq!(http.timeout, Duration::from_secs(120));
        assert!(matches!(http.pagination, Pagination::Cursor { .. }));
        let shown = format!("{http:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("k3y"),
            "{shown}"
        );

        let file = ConnectionSpec {
            name: "out".into(),
            kind: ConnectionType::File,
            params: params(&[("path", "exports"), ("format", "ndjson")]),
        };
        assert!(matches!(
            Connection::parse(&file),
            Ok(Connection::File(FileConnection {
                format: FileFormat::Ndjson,
                ..
            }))
        ));
    }

    #[test]
    fn checks_name_the_problem_and_wait_for_placeholders() {
        let check = Connection::check;
        assert!(check(ConnectionType::Http, &params(&[("url", "{{API_URL}}")])).is_ok());
        assert!(check(
            ConnectionType::Http,
            &params(&[
                ("url", "https://x"),
                ("auth", "bearer"),
                ("token", "{{TOKEN}}")
            ])
        )
        .is_ok());
        assert!(
            check(ConnectionType::Http, &params(&[("uri", "https://x")]))
                .expect_err("unknown")
                .contains("uri")
        );
        assert!(check(ConnectionType::Http, &params(&[("url", "ftp://x")]))
            .expect_err("scheme")
            .contains("http://"));
        assert!(check(
            ConnectionType::Http,
            &params(&[("url", "https://x"), ("pagination", "cursor")])
        )
        .expect_err("cursor")
        .contains("cursor_path"));
        assert!(check(
            ConnectionType::Http,
            &params(&[("url", "https://x"), ("timeout", "soon")])
        )
        .is_err());
        assert!(check(ConnectionType::Postgres, &params(&[("url", "mysql://x")])).is_err());
        assert!(check(ConnectionType::Sqlite, &params(&[("path", "/etc/passwd")])).is_err());
        assert!(check(
            ConnectionType::File,
            &params(&[("path", "../x"), ("format", "csv")])
        )
        .is_err());
        assert!(check(ConnectionType::File, &params(&[("path", "exports")]))
            .expect_err("format")
            .contains("format"));
        assert!(check(
            ConnectionType::File,
            &params(&[("path", "exports"), ("format", "xml")])
        )
        .is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("-1s"), None);
    }
}
