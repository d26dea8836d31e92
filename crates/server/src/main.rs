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
    let store = store::Store::connect(&config.database_target()).await?;
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

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
