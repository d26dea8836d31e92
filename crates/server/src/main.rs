//! `integrator-agent`: the server and its admin command line in one binary.

use std::process::ExitCode;

use clap::Parser;
use opentelemetry_sdk::trace::SdkTracerProvider;
use server::cli::{Cli, Command};
use server::config::{Config, LogFormat, Overrides, ProcessEnvironment};
use server::{admin, serve};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Built before the async runtime: the exporter's HTTP client blocks on a thread of its own.
    let traces = match cli.command {
        Command::Serve { .. } => otlp_traces(),
        _ => None,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli, traces.clone()));
    drop(runtime);
    if let Some(traces) = traces {
        // The spans still in the batch go out before the process ends.
        if let Err(e) = traces.shutdown() {
            eprintln!("warning: the last traces could not be exported: {e}");
        }
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // `… | head`: the reader has what it wanted.
        Err(e) if e.is::<admin::ClosedPipe>() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, traces: Option<SdkTracerProvider>) -> anyhow::Result<()> {
    let overrides = Overrides {
        config_file: cli.global.config,
        addr: match &cli.command {
            Command::Serve { addr } => addr.clone(),
            _ => None,
        },
        data_dir: cli.global.data_dir,
        database_url: cli.global.database_url,
    };
    let config = Config::load(&overrides, &ProcessEnvironment)?;
    init_logging(config.log_format, traces.as_ref());
    if matches!(cli.command, Command::Serve { .. }) {
        return serve::run(config).await;
    }
    // Only `serve` creates a database: a command run elsewhere must not make an empty one.
    let target = config.database_target();
    if let store::DatabaseTarget::Sqlite(path) = &target {
        if !path.exists() {
            anyhow::bail!(
                "no database at {}: only `integrator-agent serve` creates one. Point this command \
                 at the server's data with --data-dir DIR (or INTEGRATOR_DATA_DIR), or at \
                 PostgreSQL with --database-url URL",
                std::path::absolute(path)
                    .unwrap_or_else(|_| path.clone())
                    .display()
            );
        }
    }
    let store = store::Store::connect(&target).await?;
    let outcome = match cli.command {
        Command::Serve { .. } => Ok(()),
        Command::Tenant(command) => admin::tenant(&store, &config, command).await,
        Command::User(command) => admin::user(&store, &config, command).await,
        Command::Key(command) => admin::key(&store, command).await,
        Command::Kb(command) => admin::kb(&store, command).await,
        Command::Wallet(command) => admin::wallet(&store, command).await,
        Command::Usage { tenant } => admin::usage(&store, &config, &tenant).await,
        Command::Host { tenant, command } => admin::host(&store, &config, &tenant, &command).await,
    };
    store.close().await;
    outcome
}

/// What is logged unless `RUST_LOG` says otherwise: this server's own INFO lines, only warnings
/// and errors from its libraries (the search index is chatty), no line per request
/// (`integrator::requests=info` switches those on).
const DEFAULT_LOG_FILTER: &str =
    "warn,server=info,integrator_agent=info,agent=info,store=info,workspace=info,billing=info,kb=info";

/// What is exported as traces when OTLP export is on: the server's spans (requests, agent
/// turns, model and tool calls, flow runs), whatever the log filter.
const TRACE_FILTER: &str =
    "warn,server=info,integrator=info,agent=info,store=info,workspace=info,billing=info,kb=info";

/// The OpenTelemetry trace export (OTLP over HTTP), when the standard variables ask for it:
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), unless
/// `OTEL_SDK_DISABLED=true`. The service is `integrator-agent` unless `OTEL_SERVICE_NAME` says
/// otherwise; the exporter reads the other `OTEL_EXPORTER_OTLP_*` settings (headers, timeout).
fn otlp_traces() -> Option<SdkTracerProvider> {
    use opentelemetry_otlp::WithExportConfig;
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let disabled =
        std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if disabled
        || !(set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    {
        return None;
    }
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
    {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("warning: OpenTelemetry trace export is off: {e}");
            return None;
        }
    };
    let mut resource = opentelemetry_sdk::Resource::builder();
    if !set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name("integrator-agent");
    }
    Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build(),
    )
}

fn init_logging(format: LogFormat, traces: Option<&SdkTracerProvider>) {
    use opentelemetry::trace::TracerProvider as _;
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let logs = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let traces = traces.map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("integrator-agent"))
            .with_filter(EnvFilter::new(TRACE_FILTER))
    });
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(traces)
        .init();
}
