//! The front door: accepts TCP connections and serves HTTP/1.1 on them with limits, so idle or
//! slow clients cannot exhaust the process's file descriptors.
//!
//! - A connection must send a complete request head within `request_head_timeout`, whether
//!   it is new or idle between kept-alive requests; otherwise it is closed.
//! - At most `max_connections` connections are served at once (default: half the open-files
//!   limit, which the server raises to its hard limit at start, less a reserve for the
//!   database, files and outbound connections).
//! - At the cap, a small overflow lane still accepts connections and answers `GET /health`
//!   (so probes keep working) and a JSON 503 with `Retry-After` for everything else, one
//!   request per connection; beyond that, new connections are closed at once.
//! - Shutdown stops accepting, lets requests in flight finish (bounded), then returns.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Connections the overflow lane serves at once.
const OVERFLOW_CONNECTIONS: usize = 64;
/// Headers a request may carry before hyper refuses it (the router refuses more than
/// `crate::request_limits::MAX_HEADERS` with a JSON answer first).
const HYPER_MAX_HEADERS: usize = 256;
/// File descriptors kept for everything but client connections.
const RESERVED_DESCRIPTORS: u64 = 256;
/// How long shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How the front door behaves.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub request_head_timeout: Duration,
}

/// How many client connections are open now (read by handlers that decide, for example,
/// whether a stream's connection is kept for another request).
#[derive(Clone, Default)]
pub struct OpenConnections(Arc<std::sync::atomic::AtomicUsize>);

impl OpenConnections {
    pub fn now(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn opened(&self) -> OpenGuard {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        OpenGuard(self.clone())
    }
}

/// Counts a connection as open until dropped.
struct OpenGuard(OpenConnections);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Raises the open-files limit to its hard limit and derives the connection cap from it:
/// each client connection may come with one outbound connection (a model stream), so half
/// of what is left after a reserve.
pub fn connection_cap(configured: Option<usize>) -> usize {
    let limit = raise_open_files_limit();
    let derived = (limit.saturating_sub(RESERVED_DESCRIPTORS) / 2).clamp(16, 1_000_000) as usize;
    configured.unwrap_or(derived)
}

#[cfg(unix)]
fn raise_open_files_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let current = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: current.maximum,
        maximum: current.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => raised.current.unwrap_or(1 << 20),
        Err(error) => {
            tracing::debug!(%error, "could not raise the open-files limit");
            current.current.unwrap_or(1 << 20)
        }
    }
}

#[cfg(not(unix))]
fn raise_open_files_limit() -> u64 {
    8192
}

/// Serves `app` (and `overflow` at the cap) on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    overflow: Router,
    limits: Limits,
    counted: OpenConnections,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let spare = Arc::new(Semaphore::new(OVERFLOW_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.request_head_timeout)
        .max_headers(HYPER_MAX_HEADERS);
    let mut http_once = http.clone();
    http_once
        .keep_alive(false)
        .header_read_timeout(limits.request_head_timeout.min(Duration::from_secs(5)));
    let mut warned_at_cap = false;
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    if !is_connection_error(&error) {
                        // Out of descriptors or similar: give the process a moment.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Tokens must leave as soon as they are written: no Nagle delay on streamed responses.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let (permit, router, builder) = match open.clone().try_acquire_owned() {
            Ok(permit) => {
                warned_at_cap = false;
                (permit, &app, &http)
            }
            Err(_) => match spare.clone().try_acquire_owned() {
                Ok(permit) => {
                    if !warned_at_cap {
                        tracing::warn!(
                            max_connections = limits.max_connections,
                            "at the connection limit: new connections get 503 (health checks still answer)"
                        );
                        warned_at_cap = true;
                    }
                    (permit, &overflow, &http_once)
                }
                Err(_) => {
                    drop(tcp);
                    continue;
                }
            },
        };
        let service = router
            .clone()
            .map_request(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection =
            builder.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        let open_now = counted.opened();
        tokio::spawn(async move {
            let _open = open_now;
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after the shutdown grace period were cut off");
    }
}

/// Errors of one connection that was reset before it was accepted: nothing to wait for.
fn is_connection_error(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// The address of the client of a request, as the listener recorded it.
pub fn peer_address(extensions: &axum::http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr)
}
