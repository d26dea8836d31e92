//! Composition: configuration → store → services → router, bound to a port
//! ([`Application::build`]), then served until a shutdown signal
//! ([`Application::run_until_stopped`]). `serve` and the in-process test app both build it
//! this way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agent::tools::{
    CreateSupportTicket, HostCli, HostListCommands, ImportTemplate, SearchKnowledgeBase,
    SearchTemplates,
};
use agent::{
    Agent, AgentSettings, KnowledgeService, ModelResolver, ProviderSettings, ToolRegistry,
    ZendeskClient, ZendeskConfig,
};
use anyhow::Context;
use axum::body::Bytes;
use billing::{Billing, BillingClock};
use store::Store;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use workspace::{TemplateCatalog, Workspace};

use crate::auth::Authenticator;
use crate::config::Config;
use crate::state::AppState;

/// How long a shutdown waits for chat turns and flow runs in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// A built server: bound to its port, its services and background tasks running, not yet
/// answering requests.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    limits: crate::listener::Limits,
    /// The admin key made on the first start of an empty database (shown once).
    bootstrap_key: Option<String>,
    /// The console sign-in link made with it (valid for an hour).
    first_sign_in_link: Option<String>,
    background: Vec<JoinHandle<()>>,
    _data_lock: Option<crate::data_lock::DataDirLock>,
}

impl Application {
    /// Builds the server for this configuration: opens (and migrates) the database, settles
    /// what an earlier process left, wires the services and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let data_lock = match config.database_url {
            None => Some(crate::data_lock::lock_data_dir(&config.data_dir)?),
            Some(_) => None,
        };
        let store = Store::connect(&config.database_target())
            .await
            .context("cannot open the database")?;
        let master_key = config.master_key().context("cannot load the master key")?;
        if config.database_url.is_some() && config.master_key.is_none() {
            tracing::warn!(
                "INTEGRATOR_MASTER_KEY is not set: this replica encrypts own OpenAI keys with the master.key \
                 of its own data dir, which other replicas cannot read; give every replica the same \
                 INTEGRATOR_MASTER_KEY"
            );
        }
        refuse_unsafe_tenant_names(&store).await?;
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.addr))?;
        let addr = listener.local_addr()?;
        let bootstrap_key = store.bootstrap_if_empty().await?.map(|issued| issued.key);
        // With the first key comes a link with which the super-admin sets a console password.
        let first_sign_in_link = match bootstrap_key {
            Some(_) => {
                let token = store
                    .create_sign_in_link(
                        store::BOOTSTRAP_ADMIN_EMAIL,
                        crate::console::SIGN_IN_LINK_TTL_MS,
                        "first start",
                    )
                    .await?;
                Some(crate::console::sign_in_link(&config.base_url(addr), &token))
            }
            None => None,
        };
        let catalog = Arc::new(TemplateCatalog::shipped()?);
        let knowledge = Arc::new(
            KnowledgeService::open(
                &config.index_dir(),
                store.clone(),
                &catalog,
                &crate::corpus::shipped_docs(),
            )
            .await
            .context("cannot open the search index")?,
        );
        if store.backend() == store::Backend::Sqlite {
            // Only one server runs on an SQLite data dir (`data_lock`), so session leases still set
            // and reservations still recorded were left by an earlier process.
            store.release_all_session_leases().await?;
            store.release_all_reservations().await?;
        }
        let zendesk = config.zendesk.as_ref().map(|z| {
            ZendeskClient::new(ZendeskConfig {
                base_url: z.base_url.clone(),
                email: z.email.clone(),
                api_token: z.api_token.expose().to_string(),
            })
        });
        // Tenants' connections never reach this server or its database unless the operator
        // names them in INTEGRATOR_EGRESS_ALLOW.
        let egress = config
            .egress
            .clone()
            .with_listen_address(addr)
            .with_database_endpoints(&config.database_endpoints().await);
        let workspace = Arc::new(Workspace::new(
            store.clone(),
            master_key.clone(),
            catalog.clone(),
            config.data_dir.clone(),
            egress,
        ));
        let moved = workspace
            .adopt_folders_named_by_tenant(&store.list_tenants().await?)
            .context("cannot move tenant folders to their new names")?;
        if moved > 0 {
            tracing::info!(moved, "moved tenant folders to folders named by tenant id");
        }
        // Runs an earlier process on this data dir left `running` are settled from their
        // markers in the destinations (on SQLite, the only server, then every flow is freed).
        let settled = workspace.settle_runs_left_by_the_last_stop().await?;
        if settled > 0 {
            tracing::warn!(settled, "settled flow runs interrupted by the last stop");
        }
        if store.backend() == store::Backend::Sqlite {
            store.release_all_flow_leases().await?;
        }
        let billing = Arc::new(
            Billing::new(
                store.clone(),
                config.billing.prices.clone(),
                config.billing.allowances,
                BillingClock::shifted(config.billing.clock_offset_ms),
                master_key,
            )
            .with_own_key_cache(Duration::from_secs(config.auth_cache_seconds))
            .with_reservation_hold(config.billing.reservation_hold),
        );
        let mut tools = ToolRegistry::new(billing.clone());
        tools
            .register(Arc::new(SearchKnowledgeBase::new(knowledge.clone())))
            .map_err(anyhow::Error::msg)?;
        tools
            .register(Arc::new(SearchTemplates::new(
                knowledge.clone(),
                catalog.clone(),
            )))
            .map_err(anyhow::Error::msg)?;
        tools
            .register(Arc::new(CreateSupportTicket::new(
                store.clone(),
                knowledge.clone(),
                zendesk,
            )))
            .map_err(anyhow::Error::msg)?;

        tools
            .register(Arc::new(HostListCommands))
            .map_err(anyhow::Error::msg)?;
        tools
            .register(Arc::new(HostCli::new(workspace.clone())))
            .map_err(anyhow::Error::msg)?;
        tools
            .register(Arc::new(ImportTemplate::new(workspace.clone())))
            .map_err(anyhow::Error::msg)?;
        let tools = Arc::new(tools);
        let models = ModelResolver::new(
            ProviderSettings {
                base_url: config.openai_base_url.clone(),
                model: config.model.clone(),
                server_key: config
                    .openai_api_key
                    .as_ref()
                    .map(|k| k.expose().to_string()),
                connect_timeout: Duration::from_secs(config.llm_connect_timeout_seconds),
                read_timeout: Duration::from_secs(config.llm_read_timeout_seconds),
            },
            billing.clone(),
        );
        let agent = Arc::new(Agent::new(
            store.clone(),
            tools.clone(),
            models,
            billing.clone(),
            AgentSettings {
                max_steps: config.max_steps,
                retries: config.llm_retries,
                retry_base: Duration::from_millis(config.llm_retry_base_ms),
                stream_retention: Duration::from_secs(config.stream_retention_seconds),
                ..AgentSettings::default()
            },
        ));

        let mut background = vec![tokio::spawn(agent.clone().follow_stop_requests())];
        background.push(tokio::spawn(agent.clone().forget_old_turn_events()));
        background.push({
            let billing = billing.clone();
            tokio::spawn(async move { billing.keep_reservations_alive().await })
        });

        let auth = Arc::new(Authenticator::new(
            store.clone(),
            Duration::from_secs(config.auth_cache_seconds),
            config.auth_failures_per_minute,
        ));
        background.push(tokio::spawn(auth.clone().follow_access_changes()));
        let openapi = crate::openapi::document();
        let state = AppState {
            auth,
            tools_json: Bytes::from(crate::routes::tools::tools_json(&tools)),
            tools,
            agent,
            billing,
            knowledge: knowledge.clone(),
            workspace: workspace.clone(),
            metrics: crate::metrics::install_recorder(),
            openapi_json: Bytes::from(serde_json::to_vec(&openapi)?),
            docs_html: Bytes::from(crate::reference::render(&openapi)),
            store: store.clone(),
            config: Arc::new(config.clone()),
            console_sign_ins: Arc::new(crate::auth::FailureThrottle::new(
                crate::console::SIGN_IN_ATTEMPTS_PER_MINUTE,
            )),
            listening: addr,
            connections: crate::listener::OpenConnections::default(),
            stopping: tokio_util::sync::CancellationToken::new(),
        };

        let sync_every = Duration::from_secs(config.kb_sync_seconds);
        background.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(sync_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let started = std::time::Instant::now();
                match knowledge.sync().await {
                    Ok(_) => {
                        metrics::histogram!("knowledge_sync_duration_seconds")
                            .record(started.elapsed().as_secs_f64());
                        metrics::gauge!("knowledge_documents").set(knowledge.len() as f64);
                        // Sync lag: time() - knowledge_last_sync_timestamp_seconds.
                        metrics::gauge!("knowledge_last_sync_timestamp_seconds")
                            .set(store::now_millis() as f64 / 1000.0);
                    }
                    Err(e) => {
                        metrics::counter!("knowledge_sync_failures_total").increment(1);
                        tracing::warn!(error = %e, "knowledge base sync failed; retrying");
                    }
                }
            }
        }));

        let scheduled = workspace.clone();
        background.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = scheduled.fire_due_schedules().await {
                    tracing::warn!(error = %e, "the scheduler could not read the schedules; retrying");
                }
            }
        }));

        let limits = crate::listener::Limits {
            max_connections: crate::listener::connection_cap(config.max_connections),
            request_head_timeout: config.request_head_timeout,
        };
        Ok(Application {
            listener,
            addr,
            state,
            limits,
            bootstrap_key,
            first_sign_in_link,
            background,
            _data_lock: data_lock,
        })
    }

    /// The address it listens on (the port is the real one when the configuration said 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin API key created on this first start of an empty database, if this was one.
    pub fn bootstrap_key(&self) -> Option<&str> {
        self.bootstrap_key.as_deref()
    }

    /// The console link with which the super-admin sets a password, on a first start.
    pub fn first_sign_in_link(&self) -> Option<&str> {
        self.first_sign_in_link.as_deref()
    }

    /// Answers requests until `shutdown` completes; then stops taking requests, lets those
    /// in flight, chat turns and flow runs finish (each for at most 30 s), stops the
    /// background tasks and closes the database.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        tracing::info!(addr = %self.addr, max_connections = self.limits.max_connections, "listening");
        let state = self.state;
        let stopping = state.stopping.clone();
        let shutdown = async move {
            shutdown.await;
            stopping.cancel();
        };
        crate::listener::serve(
            self.listener,
            crate::routes::router(state.clone()),
            crate::routes::overflow_router(state.clone()),
            self.limits,
            state.connections.clone(),
            shutdown,
        )
        .await;
        let (turns, runs) = tokio::join!(
            state.agent.finish_turns(SHUTDOWN_GRACE),
            state.workspace.finish_runs(SHUTDOWN_GRACE)
        );
        if !turns || !runs {
            tracing::warn!(
                turns_ended = turns,
                runs_ended = runs,
                "stopped before every turn or run ended; runs are settled at the next start"
            );
        }
        for task in self.background {
            task.abort();
        }
        state.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Tenant names became slugs; a name from an earlier version that could mean a path or does
/// not fit is refused here, with the command that fixes it.
async fn refuse_unsafe_tenant_names(store: &Store) -> anyhow::Result<()> {
    let unsafe_names: Vec<String> = store
        .list_tenants()
        .await?
        .into_iter()
        .map(|t| t.name)
        .filter(|name| !store::is_valid_tenant_name(name))
        .collect();
    if let Some(first) = unsafe_names.first() {
        anyhow::bail!(
            "tenant name(s) {} are no longer accepted: tenant names are 1-63 lowercase letters, \
             digits or '-'. Rename each with the server stopped, e.g. \
             `integrator-agent tenant rename '{first}' NEW-NAME` (same --data-dir/--database-url), \
             then start again",
            unsafe_names
                .iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}
