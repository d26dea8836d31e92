//! HTTP connector against a local axum server: records location, every pagination style,
//! authentication, retries, errors.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use workspace::connectors::{
    open_destination, open_source, test_connection, ConnectionSpec, ConnectionType,
    ConnectorContext, ConnectorError, DestinationSpec, Record, SourceSpec, WriteMode, BATCH_SIZE,
};

/// These tests reach services on this machine, which an operator allows explicitly.
fn local_services() -> std::sync::Arc<workspace::EgressPolicy> {
    std::sync::Arc::new(
        workspace::EgressPolicy::from_allow_list("127.0.0.0/8,::1").expect("allow list"),
    )
}

const TOTAL: usize = 250;

#[derive(Clone, Default)]
struct Server {
    hits: Arc<Mutex<HashMap<String, usize>>>,
    /// Query strings received, per path.
    queries: Arc<Mutex<Vec<String>>>,
    flaky: Arc<AtomicUsize>,
}

impl Server {
    fn hit(&self, path: &str) -> usize {
        let mut hits = self.hits.lock().unwrap();
        let n = hits.entry(path.to_string()).or_default();
        *n += 1;
        *n
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

fn item(i: usize) -> Value {
    json!({"id": i, "customer": {"id": i * 10, "name": format!("c{i}")}, "tags": ["t"]})
}

fn slice(start: usize, size: usize) -> Vec<Value> {
    (start..(start + size).min(TOTAL)).map(item).collect()
}

fn num(query: &HashMap<String, String>, key: &str, default: usize) -> usize {
    query
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn start() -> (String, Server) {
    let server = Server::default();
    let app = Router::new()
        .route("/", get(|| async { Json(json!({"data": [item(1), item(2)]})) }))
        .route("/plain", get(|| async { Json(json!([item(1), item(2), item(3)])) }))
        .route(
            "/wrapped",
            get(|| async {
                Json(json!({"meta": {"total": 2}, "data": {"items": [item(1), item(2)]}, "other": [1]}))
            }),
        )
        .route(
            "/first_array",
            get(|| async { Json(json!({"count": 2, "results": [item(1), item(2)], "zzz": [9]})) }),
        )
        .route("/single", get(|| async { Json(json!({"id": 7, "a": {"b": true}})) }))
        .route(
            "/paged",
            get(
                |State(s): State<Server>, Query(q): Query<HashMap<String, String>>, raw: axum::extract::RawQuery| async move {
                    s.hit("/paged");
                    s.queries.lock().unwrap().push(raw.0.unwrap_or_default());
                    let page = num(&q, "page", 1);
                    let size = num(&q, "per_page", 30);
                    Json(json!({"items": slice((page - 1) * size, size)}))
                },
            ),
        )
        .route(
            "/offset",
            get(|State(s): State<Server>, Query(q): Query<HashMap<String, String>>| async move {
                s.hit("/offset");
                let offset = num(&q, "skip", 0);
                let size = num(&q, "take", 10);
                Json(json!({"items": slice(offset, size)}))
            }),
        )
        .route(
            "/cursor",
            get(|State(s): State<Server>, Query(q): Query<HashMap<String, String>>| async move {
                s.hit("/cursor");
                let start = num(&q, "starting_after", 0);
                let data = slice(start, 100);
                let next = if start + 100 < TOTAL {
                    json!((start + 100).to_string())
                } else {
                    Value::Null
                };
                Json(json!({"data": data, "meta": {"next_cursor": next}}))
            }),
        )
        .route(
            "/cursor_loop",
            get(|| async { Json(json!({"data": [item(1)], "next": "same"})) }),
        )
        .route(
            "/link",
            get(|State(s): State<Server>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>| async move {
                s.hit("/link");
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer tok") {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                let page = num(&q, "page", 1);
                let data = slice((page - 1) * 100, 100);
                let mut response = Json(json!(data)).into_response();
                if page * 100 < TOTAL {
                    let link = format!(
                        "</link?state=all&page=1>; rel=\"first\", </link?state=all&page={}>; rel=\"next\"",
                        page + 1
                    );
                    response.headers_mut().insert("link", link.parse().unwrap());
                }
                response
            }),
        )
        .route(
            "/bearer",
            get(|headers: HeaderMap| async move {
                match headers.get("authorization").and_then(|v| v.to_str().ok()) {
                    Some("Bearer tok") => Json(json!([{"ok": true}])).into_response(),
                    _ => (StatusCode::UNAUTHORIZED, "{\"error\":\"bad token\"}").into_response(),
                }
            }),
        )
        .route(
            "/basic",
            get(|headers: HeaderMap| async move {
                // etl:p@ss word
                match headers.get("authorization").and_then(|v| v.to_str().ok()) {
                    Some("Basic ZXRsOnBAc3Mgd29yZA==") => Json(json!([{"ok": true}])).into_response(),
                    _ => StatusCode::UNAUTHORIZED.into_response(),
                }
            }),
        )
        .route(
            "/header",
            get(|headers: HeaderMap| async move {
                match headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
                    Some("abc123") => Json(json!([{"ok": true}])).into_response(),
                    _ => StatusCode::FORBIDDEN.into_response(),
                }
            }),
        )
        .route(
            "/flaky",
            get(|State(s): State<Server>| async move {
                let n = s.flaky.fetch_add(1, Ordering::SeqCst);
                match n {
                    0 => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "slow down").into_response(),
                    1 => (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response(),
                    _ => Json(json!([item(1)])).into_response(),
                }
            }),
        )
        .route(
            "/broken",
            get(|State(s): State<Server>| async move {
                s.hit("/broken");
                (StatusCode::INTERNAL_SERVER_ERROR, "boom")
            }),
        )
        .route(
            "/missing",
            get(|State(s): State<Server>| async move {
                s.hit("/missing");
                (StatusCode::NOT_FOUND, "{\"error\":\"no such endpoint\"}")
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Json(json!([]))
            }),
        )
        .route("/html", get(|| async { "<html>hello</html>" }))
        .route(
            "/redirect_to",
            get(|Query(q): Query<HashMap<String, String>>| async move {
                let port = q.get("port").cloned().unwrap_or_default();
                let to = format!("http://127.0.0.1:{port}/steal");
                (StatusCode::FOUND, [("location", to)])
            }),
        )
        .route(
            "/hop_in",
            get(|| async { (StatusCode::FOUND, [("location", "/plain")]) }),
        )
        .route(
            // The same server under another name: another origin.
            "/hop_out",
            get(|headers: HeaderMap| async move {
                let host = headers
                    .get("host")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .replace("127.0.0.1", "localhost");
                (StatusCode::FOUND, [("location", format!("http://{host}/plain"))])
            }),
        )
        .route(
            "/paged_broken",
            get(|Query(q): Query<HashMap<String, String>>| async move {
                let page = num(&q, "page", 1);
                if page >= 2 {
                    return (StatusCode::BAD_REQUEST, "bad page").into_response();
                }
                Json(json!(slice(0, 100))).into_response()
            }),
        )
        .route(
            "/big",
            get(|| async { Json(json!({"data": (0..2500).map(item).collect::<Vec<_>>()})) }),
        )
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{address}"), server)
}

fn http(base: &str, params: &[(&str, &str)]) -> ConnectionSpec {
    let mut map: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    map.insert("url".into(), base.to_string());
    ConnectionSpec {
        name: "api".into(),
        kind: ConnectionType::Http,
        params: map,
    }
}

fn ctx() -> ConnectorContext {
    ConnectorContext::new(std::env::temp_dir(), local_services())
}

async fn read(conn: &ConnectionSpec, resource: &str) -> Result<Vec<Record>, ConnectorError> {
    let mut source = open_source(conn, &SourceSpec::Resource(resource.into()), &ctx()).await?;
    let mut all = Vec::new();
    while let Some(batch) = source.next_batch().await? {
        assert!(!batch.is_empty() && batch.len() <= BATCH_SIZE);
        all.extend(batch);
    }
    Ok(all)
}

fn ids(records: &[Record]) -> Vec<u64> {
    records.iter().filter_map(|r| r["id"].as_u64()).collect()
}

#[tokio::test]
async fn records_are_found_and_flattened() {
    let (base, _) = start().await;
    let conn = http(&base, &[]);
    let rows = read(&conn, "/plain").await.unwrap();
    assert_eq!(ids(&rows), [1, 2, 3]);
    assert_eq!(rows[0]["customer.id"], json!(10));
    assert_eq!(rows[0]["customer.name"], json!("c1"));
    assert_eq!(rows[0]["tags"], json!("[\"t\"]"));

    // The first array-valued field, in document order.
    assert_eq!(ids(&read(&conn, "first_array").await.unwrap()), [1, 2]);
    // An object without arrays is one record.
    let rows = read(&conn, "/single").await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["a.b"], json!(true));
    // records= picks a nested array.
    let conn = http(&base, &[("records", "data.items")]);
    assert_eq!(ids(&read(&conn, "/wrapped").await.unwrap()), [1, 2]);
    let err = read(&http(&base, &[("records", "nope.items")]), "/wrapped")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nope.items"), "{err}");
    // Large pages are split into batches.
    let conn = http(&base, &[("records", "data")]);
    let mut source = open_source(&conn, &SourceSpec::Resource("/big".into()), &ctx())
        .await
        .unwrap();
    let mut sizes = Vec::new();
    while let Some(batch) = source.next_batch().await.unwrap() {
        sizes.push(batch.len());
    }
    assert_eq!(sizes, [1000, 1000, 500]);
}

#[tokio::test]
async fn page_pagination_with_query_strings() {
    let (base, server) = start().await;
    let conn = http(&base, &[("pagination", "page"), ("page_size", "100")]);
    let rows = read(&conn, "/paged?status=open").await.unwrap();
    assert_eq!(rows.len(), TOTAL);
    assert_eq!(ids(&rows), (0..TOTAL as u64).collect::<Vec<_>>());
    assert_eq!(server.hits("/paged"), 3);
    let queries = server.queries.lock().unwrap().clone();
    assert_eq!(queries[0], "status=open&page=1&per_page=100");
    assert_eq!(queries[2], "status=open&page=3&per_page=100");

    // Exactly divisible: the empty page after the last full one stops the run.
    let conn = http(&base, &[("pagination", "page"), ("page_size", "50")]);
    assert_eq!(read(&conn, "/paged").await.unwrap().len(), TOTAL);
    assert_eq!(server.hits("/paged"), 3 + 6);
}

#[tokio::test]
async fn offset_pagination() {
    let (base, server) = start().await;
    let conn = http(
        &base,
        &[
            ("pagination", "offset"),
            ("offset_param", "skip"),
            ("size_param", "take"),
            ("page_size", "60"),
        ],
    );
    let rows = read(&conn, "/offset").await.unwrap();
    assert_eq!(ids(&rows), (0..TOTAL as u64).collect::<Vec<_>>());
    assert_eq!(server.hits("/offset"), 5);
}

#[tokio::test]
async fn cursor_pagination() {
    let (base, server) = start().await;
    let conn = http(
        &base,
        &[
            ("pagination", "cursor"),
            ("cursor_path", "meta.next_cursor"),
            ("cursor_param", "starting_after"),
            ("records", "data"),
        ],
    );
    let rows = read(&conn, "/cursor").await.unwrap();
    assert_eq!(ids(&rows), (0..TOTAL as u64).collect::<Vec<_>>());
    assert_eq!(server.hits("/cursor"), 3);

    // A cursor that never changes is caught.
    let conn = http(&base, &[("pagination", "cursor"), ("cursor_path", "next")]);
    let err = read(&conn, "/cursor_loop").await.unwrap_err();
    assert!(err.to_string().contains("looping"), "{err}");
}

#[tokio::test]
async fn link_pagination_sends_auth_on_every_page() {
    let (base, server) = start().await;
    let conn = http(
        &base,
        &[("pagination", "link"), ("auth", "bearer"), ("token", "tok")],
    );
    let rows = read(&conn, "/link?state=all").await.unwrap();
    assert_eq!(ids(&rows), (0..TOTAL as u64).collect::<Vec<_>>());
    assert_eq!(server.hits("/link"), 3);
}

#[tokio::test]
async fn authentication() {
    let (base, _) = start().await;
    let ok = |rows: Vec<Record>| rows.len() == 1 && rows[0]["ok"] == json!(true);
    assert!(ok(read(
        &http(&base, &[("auth", "bearer"), ("token", "tok")]),
        "/bearer"
    )
    .await
    .unwrap()));
    let err = read(
        &http(&base, &[("auth", "bearer"), ("token", "wrong")]),
        "/bearer",
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConnectorError::Remote(_)));
    assert!(text.contains("401") && text.contains("bad token"), "{text}");
    assert!(!text.contains("wrong"), "{text}");

    let basic = http(
        &base,
        &[
            ("auth", "basic"),
            ("username", "etl"),
            ("password", "p@ss word"),
        ],
    );
    assert!(ok(read(&basic, "/basic").await.unwrap()));
    let header = http(&base, &[("header.X-API-Key", "abc123")]);
    assert!(ok(read(&header, "/header").await.unwrap()));
    assert!(read(&http(&base, &[]), "/header").await.is_err());
}

#[tokio::test]
async fn retries_on_429_and_5xx_honouring_retry_after() {
    let (base, server) = start().await;
    let started = Instant::now();
    let rows = read(&http(&base, &[]), "/flaky").await.unwrap();
    assert_eq!(ids(&rows), [1]);
    assert_eq!(server.flaky.load(Ordering::SeqCst), 3);
    // Retry-After: 1 then the first backoff (0.5 s).
    assert!(started.elapsed() >= Duration::from_millis(1400));

    // The run log hears of every retry and of the page that finally answered.
    server.flaky.store(0, Ordering::SeqCst);
    let mut source = open_source(
        &http(&base, &[]),
        &SourceSpec::Resource("/flaky".into()),
        &ctx(),
    )
    .await
    .unwrap();
    while source.next_batch().await.unwrap().is_some() {}
    let log = source.take_log();
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(
        log[0].starts_with("page 1: GET ")
            && log[0].contains("429")
            && log[0].ends_with("retrying (1/3)"),
        "{log:?}"
    );
    assert!(log[1].ends_with("retrying (2/3)"), "{log:?}");
    assert!(log[2].ends_with("with 1 record"), "{log:?}");

    // 5xx that never recovers: retries, then fails naming the status and body.
    let err = read(&http(&base, &[("retries", "1")]), "/broken")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("500") && err.to_string().contains("boom"),
        "{err}"
    );
    assert_eq!(server.hits("/broken"), 2);

    // Other 4xx are not retried.
    let err = read(&http(&base, &[]), "/missing").await.unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    assert_eq!(server.hits("/missing"), 1);

    // A failing page in the middle fails the run.
    let conn = http(&base, &[("pagination", "page")]);
    let err = read(&conn, "/paged_broken").await.unwrap_err();
    assert!(err.to_string().contains("page=2"), "{err}");
}

#[tokio::test]
async fn timeouts_connection_errors_and_bad_bodies() {
    let (base, _) = start().await;
    let started = Instant::now();
    let err = read(
        &http(&base, &[("timeout", "300ms"), ("retries", "0")]),
        "/slow",
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));

    let err = read(&http(&base, &[]), "/html").await.unwrap_err();
    assert!(matches!(err, ConnectorError::Data(_)));
    assert!(err.to_string().contains("not JSON"), "{err}");

    // Nothing listens on port 1; credentials in the URL never show.
    let err = read(
        &http(
            "http://user:hunter2@127.0.0.1:1/api?api_key=s3cret",
            &[("retries", "0")],
        ),
        "/x",
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConnectorError::Remote(_)), "{text}");
    assert!(text.contains("127.0.0.1:1/api/x"), "{text}");
    assert!(
        !text.contains("hunter2") && !text.contains("s3cret"),
        "{text}"
    );
}

#[tokio::test]
async fn configuration_errors() {
    let (base, _) = start().await;
    for params in [
        vec![("auth", "bearer")],
        vec![("auth", "digest")],
        vec![("pagination", "cursor")],
        vec![("pagination", "pages")],
        vec![("timeout", "soon")],
        vec![("retries", "-1")],
        vec![("page_size", "0")],
    ] {
        let err = read(&http(&base, &params), "/plain").await.unwrap_err();
        assert!(
            matches!(err, ConnectorError::Config(_)),
            "{params:?}: {err}"
        );
    }
    let err = read(&http("not a url", &[]), "/plain").await.unwrap_err();
    assert!(matches!(err, ConnectorError::Config(_)));
    let spec = DestinationSpec {
        target: "x".into(),
        mode: WriteMode::Append,
        key: vec![],
    };
    let err = open_destination(&http(&base, &[]), &spec, &ctx())
        .await
        .err()
        .unwrap();
    assert_eq!(err.to_string(), "http connections can only be read");
    let err = open_source(
        &http(&base, &[]),
        &SourceSpec::Query("SELECT 1".into()),
        &ctx(),
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(err, ConnectorError::Config(_)));
}

#[tokio::test]
async fn test_connection_reports_status_and_records() {
    let (base, _) = start().await;
    let text = test_connection(&http(&base, &[]), &ctx()).await.unwrap();
    assert_eq!(text, format!("GET {base}/ answered 200 OK with 2 records"));
    let err = test_connection(&http(&format!("{base}/missing"), &[]), &ctx())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
}

#[tokio::test]
async fn redirects_keep_credentials_at_home() {
    let (base, _) = start().await;
    assert_eq!(
        ids(&read(&http(&base, &[]), "/hop_in").await.unwrap()),
        [1, 2, 3]
    );
    // Without credentials a redirect to another host is followed...
    assert_eq!(
        ids(&read(&http(&base, &[]), "/hop_out").await.unwrap()),
        [1, 2, 3]
    );
    // ...with them it is not.
    let conn = http(&base, &[("header.X-API-Key", "abc123")]);
    assert_eq!(ids(&read(&conn, "/hop_in").await.unwrap()), [1, 2, 3]);
    let err = read(&conn, "/hop_out").await.unwrap_err();
    assert!(err.to_string().contains("302"), "{err}");
}

/// A server on this machine that counts what reaches it.
async fn counting_server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = Router::new().fallback(move || {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            Json(json!([{"secret": "internal"}]))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, hits)
}

#[tokio::test]
async fn the_egress_policy_is_checked_before_every_request_and_redirect() {
    let (internal, hits) = counting_server().await;
    let public_only = ConnectorContext::new(
        std::env::temp_dir(),
        Arc::new(workspace::EgressPolicy::default()),
    );
    // Loopback, by address or by name, and the cloud metadata address are refused.
    for url in [
        format!("http://{internal}/"),
        format!("http://localhost:{}/", internal.port()),
        format!("http://[::ffff:127.0.0.1]:{}/", internal.port()),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://0.0.0.0:1/".to_string(),
    ] {
        let error = test_connection(&http(&url, &[]), &public_only)
            .await
            .expect_err(&url);
        assert!(
            error.to_string().contains("INTEGRATOR_EGRESS_ALLOW"),
            "{url}: {error}"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached the server");

    // An allowed server that redirects to one that is not: the hop is refused.
    let (base, _) = start().await;
    let allowed_port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    let only_that_one = ConnectorContext::new(
        std::env::temp_dir(),
        Arc::new(
            workspace::EgressPolicy::from_allow_list(&format!("127.0.0.1:{allowed_port}")).unwrap(),
        ),
    );
    let redirect = format!("/redirect_to?port={}", internal.port());
    let mut source = open_source(
        &http(&base, &[]),
        &SourceSpec::Resource(redirect),
        &only_that_one,
    )
    .await
    .unwrap();
    let error = source.next_batch().await.expect_err("redirect hop refused");
    assert!(
        error.to_string().contains("INTEGRATOR_EGRESS_ALLOW"),
        "{error}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the redirect was not followed"
    );
}
