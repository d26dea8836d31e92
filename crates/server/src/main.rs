//! `integrator-agent`: the server and its admin command line in one binary.

use std::process::ExitCode;

use clap::Parser;
use server::cli::{Cli, Command};
use server::config::{Config, LogFormat, Overrides, ProcessEnvironment};
use server::{admin, serve};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // `… | head`: the reader has what it wanted.
        Err(e) if e.is::<admin::ClosedPipe>() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
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
    init_logging(config.log_format);
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

fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
