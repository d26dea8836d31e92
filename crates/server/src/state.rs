//! The shared state of the HTTP handlers: one cheap-to-clone `AppState`.

use std::net::SocketAddr;
use std::sync::Arc;

use agent::{Agent, KnowledgeService, ToolRegistry};
use axum::body::Bytes;
use metrics_exporter_prometheus::PrometheusHandle;
use store::Store;

use crate::auth::{Authenticator, FailureThrottle};
use crate::config::Config;

/// Everything a request handler may need.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub auth: Arc<Authenticator>,
    pub tools: Arc<ToolRegistry>,
    pub agent: Arc<Agent>,
    pub billing: Arc<billing::Billing>,
    pub knowledge: Arc<KnowledgeService>,
    pub workspace: Arc<workspace::Workspace>,
    pub metrics: Option<PrometheusHandle>,
    /// `GET /tools` never changes while the process runs: serialised once.
    pub tools_json: Bytes,
    pub openapi_json: Bytes,
    pub docs_html: Bytes,
    /// Failed console sign-ins per client address.
    pub(crate) console_sign_ins: Arc<FailureThrottle>,
    /// The address this server listens on (links it prints when no public URL is set).
    pub listening: SocketAddr,
    /// Client connections open now.
    pub(crate) connections: crate::listener::OpenConnections,
    /// Cancelled when the server stops: long-lived streams (MCP's) end.
    pub(crate) stopping: tokio_util::sync::CancellationToken,
}
