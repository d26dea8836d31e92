//! `http` connections: JSON records from a REST API (see `docs/connection-http.md` and
//! `docs/rest-pagination.md`).
//!
//! A source GETs `url` + the flow's resource path (which may carry its own query string), pulls
//! the records array out of each response (`records=`), flattens every record, and follows the
//! configured pagination. Pages are fetched one at a time as the flow asks for batches, so only
//! one page is held in memory.
//!
//! Choices the docs leave open:
//! - Pagination parameters replace parameters of the same name already in the resource's query
//!   string (`/orders?per_page=10` with `pagination=page` sends `per_page=<page_size>`), so the
//!   short-page stop rule always matches what was asked for.
//! - `cursor` and `link` pagination stop at an empty page as well as at a missing cursor/link;
//!   a cursor or link seen before fails the run (the API is looping).
//! - A `Link: rel="next"` URL on another host than `url` is refused when the connection sends
//!   credentials (`auth`, headers), so secrets never leave for a host the user did not name.
//! - Redirects (at most 10) are followed by the connector itself, every hop checked by the
//!   egress policy (`crate::egress`) like the first request; a redirect to another host is not
//!   followed when the connection sends credentials: the run fails with the 3xx status instead.
//!   Every host name is resolved and checked before the request, and the client connects only
//!   to the addresses that were checked.
//! - `Retry-After` is honoured in seconds (up to 5 minutes); otherwise the backoff is 0.5 s,
//!   1 s, 2 s, … up to 30 s. Timeouts count as connection errors and are retried.
//! - A `records=` path that ends at `null` gives an empty page; a path that is missing fails
//!   (a wrong path should not look like an empty API). A path that ends at an object gives
//!   that object as one record.
//! - A response body is limited to 256 MiB, and a run to 100,000 pages.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, LINK, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

use super::spec::{Connection, HttpAuth, Pagination};
use super::{ConnectionSpec, ConnectorContext, ConnectorError, Record, Source, BATCH_SIZE};
use crate::egress::{EgressPolicy, PinnedResolver};
use crate::flatten::flatten;

/// A run stops with an error after this many pages.
pub const MAX_PAGES: u64 = 100_000;
/// The largest response body read.
pub const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Redirects followed for one request.
const MAX_REDIRECTS: usize = 10;

/// A checked `http` connection.
#[derive(Clone)]
struct HttpConfig {
    name: String,
    base: Url,
    headers: HeaderMap,
    /// Whether requests carry credentials (auth or custom headers).
    sends_credentials: bool,
    records: Option<Vec<String>>,
    pagination: Pagination,
    retries: u32,
    client: reqwest::Client,
    egress: Arc<EgressPolicy>,
    resolver: Arc<PinnedResolver>,
}

impl HttpConfig {
    fn from_spec(
        conn: &ConnectionSpec,
        ctx: &ConnectorContext,
    ) -> Result<HttpConfig, ConnectorError> {
        let Connection::Http(spec) = Connection::parse(conn)? else {
            return Err(ConnectorError::Config(format!(
                "connection {} is not an http connection",
                conn.name
            )));
        };
        let name = conn.name.clone();
        let config_err =
            |message: String| ConnectorError::Config(format!("connection {name}: {message}"));
        let sensitive = |text: &str| {
            let mut value = HeaderValue::from_str(text)
                .map_err(|_| config_err("a header value is not valid".into()))?;
            value.set_sensitive(true);
            Ok::<HeaderValue, ConnectorError>(value)
        };
        let mut headers = HeaderMap::new();
        for (header, value) in &spec.headers {
            headers.append(header.clone(), sensitive(value.expose())?);
        }
        match &spec.auth {
            HttpAuth::None => {}
            HttpAuth::Bearer(token) => {
                headers.insert(
                    AUTHORIZATION,
                    sensitive(&format!("Bearer {}", token.expose()))?,
                );
            }
            HttpAuth::Basic { username, password } => {
                use base64::Engine as _;
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()));
                headers.insert(AUTHORIZATION, sensitive(&format!("Basic {encoded}"))?);
            }
        }
        let timeout = spec.timeout;

        // Redirects are followed by `get_once`, each hop checked like the first request; names
        // resolve only to the addresses the egress policy checked; no proxy from the
        // environment sits between the policy and the address.
        let resolver = Arc::new(PinnedResolver::default());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(resolver.clone())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("integrator-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| config_err(format!("cannot build the HTTP client: {e}")))?;

        Ok(HttpConfig {
            name,
            base: spec.url.clone(),
            headers,
            sends_credentials: spec.sends_credentials(),
            records: spec.records.clone(),
            pagination: spec.pagination.clone(),
            retries: spec.retries,
            client,
            egress: ctx.egress.clone(),
            resolver,
        })
    }

    /// Checks the host of `url` with the egress policy and pins the checked addresses for the
    /// client's next connection to it.
    async fn admit(&self, url: &Url, shown: &str) -> Result<(), ConnectorError> {
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Err(ConnectorError::Config(format!(
                "GET {shown}: the URL has no host"
            )));
        };
        let addrs = self
            .egress
            .resolve(host, port)
            .await
            .map_err(|e| ConnectorError::Remote(format!("GET {shown}: {e}")))?;
        if matches!(url.host(), Some(url::Host::Domain(_))) {
            self.resolver.pin(host, addrs);
        }
        Ok(())
    }

    /// The base URL with the resource path and query appended.
    fn resource_url(&self, resource: &str) -> Result<Url, ConnectorError> {
        let resource = resource.trim();
        if resource.contains("://") || resource.starts_with("//") {
            return Err(ConnectorError::Config(format!(
                "connection {}: the resource must be a path such as /orders, not a full URL",
                self.name
            )));
        }
        let resource = resource.split('#').next().unwrap_or("");
        let (path, query) = match resource.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (resource, None),
        };
        let mut url = self.base.clone();
        url.set_fragment(None);
        let path = path.trim_start_matches('/');
        if !path.is_empty() {
            let joined = format!("{}/{}", self.base.path().trim_end_matches('/'), path);
            url.set_path(&joined);
        }
        let query = match (
            self.base.query().filter(|q| !q.is_empty()),
            query.filter(|q| !q.is_empty()),
        ) {
            (Some(a), Some(b)) => Some(format!("{a}&{b}")),
            (Some(a), None) => Some(a.to_string()),
            (None, Some(b)) => Some(b.to_string()),
            (None, None) => None,
        };
        url.set_query(query.as_deref());
        Ok(url)
    }

    /// GETs one URL, retrying on 429, 5xx and connection errors; `on_retry` hears why each
    /// retry happens.
    async fn get(
        &self,
        url: &Url,
        mut on_retry: impl FnMut(String) + Send,
    ) -> Result<Page, ConnectorError> {
        let shown = redact(url);
        let mut attempt: u32 = 0;
        loop {
            let outcome = self.get_once(url, &shown).await;
            let (wait, reason) = match outcome {
                Attempt::Done(page) => return Ok(page),
                Attempt::Fail(error) => return Err(error),
                Attempt::Retry { wait, reason } => (wait, reason),
            };
            if attempt >= self.retries {
                let tries = if self.retries == 0 {
                    String::new()
                } else {
                    format!(" (after {} retries)", self.retries)
                };
                return Err(ConnectorError::Remote(format!(
                    "GET {shown} {reason}{tries}"
                )));
            }
            let backoff = BACKOFF_START
                .saturating_mul(2u32.saturating_pow(attempt))
                .min(BACKOFF_MAX);
            let wait = wait.map(|w| w.min(MAX_RETRY_AFTER)).unwrap_or(backoff);
            tracing::debug!(url = %shown, %reason, wait_ms = wait.as_millis() as u64, "retrying");
            on_retry(format!(
                "{reason}, retrying ({}/{})",
                attempt + 1,
                self.retries
            ));
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn get_once(&self, url: &Url, shown: &str) -> Attempt {
        let mut current = url.clone();
        let mut redirects = 0;
        let response = loop {
            if let Err(refused) = self.admit(&current, shown).await {
                return Attempt::Fail(refused);
            }
            let mut request = self
                .client
                .get(current.clone())
                .headers(self.headers.clone());
            if !self.headers.contains_key(reqwest::header::ACCEPT) {
                request = request.header(reqwest::header::ACCEPT, "application/json");
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(error) => {
                    let reason = describe_reqwest_error(&error);
                    return if error.is_builder() {
                        Attempt::Fail(ConnectorError::Config(format!("GET {shown}: {reason}")))
                    } else {
                        Attempt::Retry {
                            wait: None,
                            reason: format!("failed: {reason}"),
                        }
                    };
                }
            };
            match self.redirect_target(&response, url) {
                Some(next) if redirects < MAX_REDIRECTS => {
                    redirects += 1;
                    current = next;
                }
                Some(_) => {
                    return Attempt::Fail(ConnectorError::Remote(format!(
                        "GET {shown}: more than {MAX_REDIRECTS} redirects"
                    )))
                }
                None => break response,
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        if !status.is_success() {
            let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
            let wait = retry_after(&headers);
            let body = read_body(response, 2048).await.unwrap_or_default();
            let snippet = body_snippet(&body);
            let reason = if snippet.is_empty() {
                format!("answered {status}")
            } else {
                format!("answered {status}: {snippet}")
            };
            return if retryable {
                Attempt::Retry { wait, reason }
            } else {
                Attempt::Fail(ConnectorError::Remote(format!("GET {shown} {reason}")))
            };
        }
        let body = match read_body(response, MAX_BODY_BYTES).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                return Attempt::Fail(ConnectorError::Data(format!(
                    "GET {shown}: the response is larger than {} MiB",
                    MAX_BODY_BYTES / (1024 * 1024)
                )))
            }
            Err(BodyError::Read(reason)) => {
                return Attempt::Retry {
                    wait: None,
                    reason: format!("failed while reading the response: {reason}"),
                }
            }
        };
        Attempt::Done(Page {
            status,
            headers,
            body,
        })
    }
}

impl HttpConfig {
    /// Where a redirect response leads, when it is to be followed: http(s) only, and to
    /// another origin than the request's only when the connection sends no credentials.
    fn redirect_target(&self, response: &reqwest::Response, first: &Url) -> Option<Url> {
        if !response.status().is_redirection() {
            return None;
        }
        let location = response.headers().get(reqwest::header::LOCATION)?;
        let next = response.url().join(location.to_str().ok()?).ok()?;
        if !matches!(next.scheme(), "http" | "https") {
            return None;
        }
        if next.origin() != first.origin() && self.sends_credentials {
            return None;
        }
        Some(next)
    }
}

/// One successful response.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

enum Attempt {
    Done(Page),
    Retry {
        wait: Option<Duration>,
        reason: String,
    },
    Fail(ConnectorError),
}

enum BodyError {
    TooLarge,
    Read(String),
}

async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    if limit < MAX_BODY_BYTES {
                        // An error body: the start is enough.
                        let room = limit.saturating_sub(body.len());
                        body.extend_from_slice(&chunk[..room.min(chunk.len())]);
                        return Ok(body);
                    }
                    return Err(BodyError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(error) => return Err(BodyError::Read(describe_reqwest_error(&error))),
        }
    }
}

/// The first 300 characters of a body, on one line.
fn body_snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = one_line.trim();
    let mut out: String = trimmed.chars().take(300).collect();
    if trimmed.chars().count() > 300 {
        out.push('…');
    }
    out
}

/// `Retry-After` in seconds (the HTTP-date form is ignored: the backoff applies).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?;
    let seconds: u64 = text.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

/// The error and its causes, without the URL (which may hold credentials).
fn describe_reqwest_error(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        "could not connect".to_string()
    } else {
        String::new()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !cause_text.is_empty() && !text.contains(&cause_text) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    if text.is_empty() {
        text = "request failed".to_string();
    }
    text
}

/// A URL safe to show: its secrets masked (`crate::redaction`).
pub(crate) fn redact(url: &Url) -> String {
    crate::redaction::mask_url(url)
}

/// A dot path as a JSON pointer (`data.items.0` → `/data/items/0`).
fn pointer(path: &[String]) -> String {
    path.iter()
        .map(|part| format!("/{}", part.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// The value at a dot path (array items by index).
fn lookup<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    value.pointer(&pointer(path))
}

/// The value at a dot path, mutably.
fn lookup_mut<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    value.pointer_mut(&pointer(path))
}

/// The records of one response body, as the docs describe.
fn extract_records(
    body: Value,
    path: Option<&[String]>,
    shown: &str,
) -> Result<Vec<Value>, ConnectorError> {
    if let Some(path) = path {
        let joined = path.join(".");
        let mut body = body;
        let found = lookup_mut(&mut body, path).map(Value::take).ok_or_else(|| {
            ConnectorError::Data(format!(
                "GET {shown}: the response has no `{joined}` (records={joined}); check the records= path"
            ))
        })?;
        return match found {
            Value::Array(items) => Ok(items),
            Value::Null => Ok(Vec::new()),
            found @ Value::Object(_) => Ok(vec![found]),
            _ => Err(ConnectorError::Data(format!(
                "GET {shown}: `{joined}` in the response is not an array of records"
            ))),
        };
    }
    match body {
        Value::Array(items) => Ok(items),
        Value::Object(map) => {
            if map.values().any(Value::is_array) {
                Ok(map
                    .into_iter()
                    .find_map(|(_, value)| match value {
                        Value::Array(items) => Some(items),
                        _ => None,
                    })
                    .unwrap_or_default())
            } else {
                Ok(vec![Value::Object(map)])
            }
        }
        Value::Null => Ok(Vec::new()),
        _ => Err(ConnectorError::Data(format!(
            "GET {shown}: the response is not a JSON object or array"
        ))),
    }
}

fn parse_json(page: &Page, shown: &str) -> Result<Value, ConnectorError> {
    serde_json::from_slice(&page.body).map_err(|e| {
        ConnectorError::Data(format!(
            "GET {shown} answered {} but the body is not JSON ({e}): {}",
            page.status,
            body_snippet(&page.body[..page.body.len().min(300)])
        ))
    })
}

/// The `rel="next"` target of the `Link` headers, resolved against the current URL.
fn next_link(headers: &HeaderMap, current: &Url) -> Option<Url> {
    for value in headers.get_all(LINK) {
        let Ok(text) = value.to_str() else {
            continue;
        };
        for entry in split_link_entries(text) {
            let entry = entry.trim();
            let Some(rest) = entry.strip_prefix('<') else {
                continue;
            };
            let Some((target, params)) = rest.split_once('>') else {
                continue;
            };
            let is_next = params.split(';').any(|param| {
                let Some((key, value)) = param.split_once('=') else {
                    return false;
                };
                key.trim().eq_ignore_ascii_case("rel")
                    && value
                        .trim()
                        .trim_matches('"')
                        .split_whitespace()
                        .any(|rel| rel.eq_ignore_ascii_case("next"))
            });
            if is_next {
                return current.join(target.trim()).ok();
            }
        }
    }
    None
}

/// Splits a `Link` header value at the commas between entries (not inside `<…>` or quotes).
fn split_link_entries(text: &str) -> Vec<&str> {
    let mut entries = Vec::new();
    let (mut in_angle, mut in_quote, mut start) = (false, false, 0);
    for (i, c) in text.char_indices() {
        match c {
            '<' if !in_quote => in_angle = true,
            '>' if !in_quote => in_angle = false,
            '"' if !in_angle => in_quote = !in_quote,
            ',' if !in_angle && !in_quote => {
                entries.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    entries.push(&text[start..]);
    entries
}

/// `url` with `params` set, replacing parameters of the same names.
fn with_params(url: &Url, params: &[(&str, String)]) -> Url {
    let mut out = url.clone();
    if params.is_empty() {
        return out;
    }
    let collides = url
        .query_pairs()
        .any(|(k, _)| params.iter().any(|(name, _)| *name == k));
    if collides {
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !params.iter().any(|(name, _)| *name == k))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        out.set_query(None);
        let mut query = out.query_pairs_mut();
        query.extend_pairs(kept);
        query.extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
    } else {
        out.query_pairs_mut()
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
    }
    out
}

/// Reads an `http` resource page by page.
pub struct HttpSource {
    config: HttpConfig,
    /// The resource URL without pagination parameters.
    start: Url,
    /// The next URL to fetch, or `None` when the last page has been read.
    next: Option<Url>,
    /// Pages fetched so far.
    pages: u64,
    /// Page number or offset of the next request.
    position: u64,
    seen: HashSet<String>,
    buffer: VecDeque<Record>,
    /// Lines for the run log: one per page requested.
    log: Vec<String>,
}

impl HttpSource {
    /// Checks the connection's parameters; nothing is requested until the first batch.
    pub fn open(
        conn: &ConnectionSpec,
        resource: &str,
        ctx: &ConnectorContext,
    ) -> Result<HttpSource, ConnectorError> {
        let config = HttpConfig::from_spec(conn, ctx)?;
        let start = config.resource_url(resource)?;
        let (next, position) = match &config.pagination {
            Pagination::Page {
                page_param,
                size_param,
                page_size,
            } => (
                with_params(
                    &start,
                    &[
                        (page_param, "1".to_string()),
                        (size_param, page_size.to_string()),
                    ],
                ),
                1,
            ),
            Pagination::Offset {
                offset_param,
                size_param,
                page_size,
            } => (
                with_params(
                    &start,
                    &[
                        (offset_param, "0".to_string()),
                        (size_param, page_size.to_string()),
                    ],
                ),
                0,
            ),
            _ => (start.clone(), 0),
        };
        Ok(HttpSource {
            config,
            start,
            next: Some(next),
            pages: 0,
            position,
            seen: HashSet::new(),
            buffer: VecDeque::new(),
            log: Vec::new(),
        })
    }

    /// Fetches the page at `url`, queues its records and works out the next URL.
    async fn fetch(&mut self, url: Url) -> Result<(), ConnectorError> {
        self.pages += 1;
        let shown = redact(&url);
        if self.pages > MAX_PAGES {
            return Err(ConnectorError::Data(format!(
                "stopped after {MAX_PAGES} pages at GET {shown}: the API keeps returning pages; check the pagination settings"
            )));
        }
        tracing::debug!(connection = %self.config.name, page = self.pages, url = %shown, "GET");
        let number = self.pages;
        let log = &mut self.log;
        let fetched = self
            .config
            .get(&url, |why| {
                log.push(format!("page {number}: GET {shown} {why}"))
            })
            .await;
        let page = match fetched {
            Ok(page) => page,
            Err(error) => {
                self.log.push(format!("page {number}: GET {shown} failed"));
                return Err(error);
            }
        };
        let status = page.status;
        let body = match parse_json(&page, &shown) {
            Ok(body) => body,
            Err(error) => {
                self.log.push(format!(
                    "page {number}: GET {shown} answered {status}, not JSON"
                ));
                return Err(error);
            }
        };

        // Where to go next (decided before the body is consumed).
        let next_cursor = match &self.config.pagination {
            Pagination::Cursor { cursor_path, .. } => match lookup(&body, cursor_path) {
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            },
            _ => None,
        };
        let records = extract_records(body, self.config.records.as_deref(), &shown)?;
        let count = records.len() as u64;
        let noun = if count == 1 { "record" } else { "records" };
        self.log.push(format!(
            "page {number}: GET {shown} answered {status} with {count} {noun}"
        ));

        self.next = match &self.config.pagination {
            Pagination::None => None,
            Pagination::Page {
                page_param,
                size_param,
                page_size,
            } => {
                if count == 0 || count < *page_size {
                    None
                } else {
                    self.position += 1;
                    Some(with_params(
                        &self.start,
                        &[
                            (page_param, self.position.to_string()),
                            (size_param, page_size.to_string()),
                        ],
                    ))
                }
            }
            Pagination::Offset {
                offset_param,
                size_param,
                page_size,
            } => {
                if count == 0 || count < *page_size {
                    None
                } else {
                    self.position += page_size;
                    Some(with_params(
                        &self.start,
                        &[
                            (offset_param, self.position.to_string()),
                            (size_param, page_size.to_string()),
                        ],
                    ))
                }
            }
            Pagination::Cursor { cursor_param, .. } => match next_cursor {
                Some(cursor) if count > 0 => {
                    if !self.seen.insert(cursor.clone()) {
                        return Err(ConnectorError::Data(format!(
                            "GET {shown} returned a cursor already seen; the API is looping (check cursor_path)"
                        )));
                    }
                    Some(with_params(&self.start, &[(cursor_param, cursor)]))
                }
                _ => None,
            },
            Pagination::Link => match next_link(&page.headers, &url) {
                Some(next) if count > 0 => {
                    if next.origin() != self.config.base.origin() && self.config.sends_credentials {
                        return Err(ConnectorError::Remote(format!(
                            "GET {shown}: the Link header points to another host ({}); credentials are only sent to {}",
                            next.host_str().unwrap_or("?"),
                            self.config.base.host_str().unwrap_or("?")
                        )));
                    }
                    self.seen.insert(url.to_string());
                    if self.seen.contains(next.as_str()) {
                        return Err(ConnectorError::Data(format!(
                            "GET {shown}: the Link header points to a page already read; the API is looping"
                        )));
                    }
                    Some(next)
                }
                _ => None,
            },
        };
        self.buffer.extend(records.into_iter().map(flatten));
        Ok(())
    }
}

#[async_trait]
impl Source for HttpSource {
    async fn next_batch(&mut self) -> Result<Option<Vec<Record>>, ConnectorError> {
        loop {
            if !self.buffer.is_empty() {
                let take = self.buffer.len().min(BATCH_SIZE);
                return Ok(Some(self.buffer.drain(..take).collect()));
            }
            let Some(url) = self.next.take() else {
                return Ok(None);
            };
            self.fetch(url).await?;
        }
    }

    fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    fn pages_fetched(&self) -> u64 {
        self.pages
    }
}

/// `test connection` for http: GETs the base URL with the configured headers and auth.
pub async fn test(conn: &ConnectionSpec, ctx: &ConnectorContext) -> Result<String, ConnectorError> {
    let config = HttpConfig::from_spec(conn, ctx)?;
    let url = config.resource_url("")?;
    let shown = redact(&url);
    let page = config.get(&url, |_| {}).await?;
    let status = page.status;
    match serde_json::from_slice::<Value>(&page.body) {
        Ok(body) => match extract_records(body, config.records.as_deref(), &shown) {
            Ok(records) => {
                let n = records.len();
                let noun = if n == 1 { "record" } else { "records" };
                Ok(format!("GET {shown} answered {status} with {n} {noun}"))
            }
            Err(error) => Ok(format!("GET {shown} answered {status}; {error}")),
        },
        Err(_) => Ok(format!(
            "GET {shown} answered {status} (the body is not JSON; test a real endpoint by running a flow)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::spec::dot_path;
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn ctx() -> ConnectorContext {
        ConnectorContext::for_tests(&std::env::temp_dir())
    }

    fn spec(params: &[(&str, &str)]) -> ConnectionSpec {
        ConnectionSpec {
            name: "api".into(),
            kind: super::super::ConnectionType::Http,
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn resource_urls_and_paging_parameters() {
        let config =
            HttpConfig::from_spec(&spec(&[("url", "https://api.example.com/v1/")]), &ctx())
                .unwrap();
        let url = config.resource_url("/orders?status=open").unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.example.com/v1/orders?status=open"
        );
        let paged = with_params(&url, &[("page", "1".into()), ("per_page", "100".into())]);
        assert_eq!(
            paged.as_str(),
            "https://api.example.com/v1/orders?status=open&page=1&per_page=100"
        );
        let plain = config.resource_url("orders").unwrap();
        let paged = with_params(&plain, &[("page", "2".into())]);
        assert_eq!(paged.as_str(), "https://api.example.com/v1/orders?page=2");
        let replaced = with_params(
            &config.resource_url("/o?per_page=5&a=b").unwrap(),
            &[("per_page", "100".into())],
        );
        assert_eq!(
            replaced.as_str(),
            "https://api.example.com/v1/o?a=b&per_page=100"
        );
        assert!(config.resource_url("https://evil.example.com/x").is_err());
    }

    #[test]
    fn redaction() {
        let url = Url::parse("https://user:pw@h.example.com/x?api_key=s3cret&page=2").unwrap();
        let shown = redact(&url);
        assert!(
            !shown.contains("s3cret") && !shown.contains("pw"),
            "{shown}"
        );
        assert!(shown.contains("page=2"));
    }

    #[test]
    fn link_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            LINK,
            HeaderValue::from_static(
                r#"<https://a.example.com/x?page=1>; rel="prev", <https://a.example.com/x?page=3>; rel="next last""#,
            ),
        );
        let current = Url::parse("https://a.example.com/x?page=2").unwrap();
        assert_eq!(
            next_link(&headers, &current).unwrap().as_str(),
            "https://a.example.com/x?page=3"
        );
        headers.insert(LINK, HeaderValue::from_static(r#"</x?page=9>; rel=next"#));
        assert_eq!(
            next_link(&headers, &current).unwrap().as_str(),
            "https://a.example.com/x?page=9"
        );
        headers.insert(
            LINK,
            HeaderValue::from_static(r#"</x?page=1>; rel="first""#),
        );
        assert!(next_link(&headers, &current).is_none());
    }

    #[test]
    fn records_location() {
        let body = json!({"meta": {"total": 2}, "data": {"items": [{"id": 1}, {"id": 2}]}});
        let path = dot_path("data.items");
        assert_eq!(
            extract_records(body.clone(), Some(&path), "u")
                .unwrap()
                .len(),
            2
        );
        assert!(extract_records(body, Some(&dot_path("nope")), "u").is_err());
        let body = json!({"count": 1, "results": [{"id": 1}], "other": []});
        assert_eq!(
            extract_records(body, None, "u").unwrap(),
            vec![json!({"id": 1})]
        );
        let body = json!({"id": 7});
        assert_eq!(
            extract_records(body, None, "u").unwrap(),
            vec![json!({"id": 7})]
        );
        assert_eq!(extract_records(json!([1, 2]), None, "u").unwrap().len(), 2);
    }

    #[test]
    fn config_errors() {
        assert!(HttpConfig::from_spec(&spec(&[]), &ctx()).is_err());
        assert!(HttpConfig::from_spec(&spec(&[("url", "ftp://x")]), &ctx()).is_err());
        assert!(
            HttpConfig::from_spec(&spec(&[("url", "http://x"), ("auth", "bearer")]), &ctx())
                .is_err()
        );
        assert!(HttpConfig::from_spec(
            &spec(&[("url", "http://x"), ("pagination", "cursor")]),
            &ctx()
        )
        .is_err());
        assert!(
            HttpConfig::from_spec(&spec(&[("url", "http://x"), ("timeout", "soon")]), &ctx())
                .is_err()
        );
        let err = HttpConfig::from_spec(
            &spec(&[
                ("url", "http://x"),
                ("auth", "basic"),
                ("header.Bad Name", "v"),
            ]),
            &ctx(),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("Bad Name"));
    }
}
