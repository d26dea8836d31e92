//! `serve`: builds the application, shows the first start's key and the address, and runs
//! it until SIGTERM or Ctrl-C.

use crate::config::Config;
use crate::startup::Application;

/// Runs the server with this configuration.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    let base_url = format!("http://{}", app.addr());
    if let Some(key) = app.bootstrap_key() {
        println!("Created tenant 'default' and super-admin 'admin@localhost'.");
        println!("Admin API key (shown once, store it now): {key}");
        println!("Try it:");
        println!(
            "  curl -s {base_url}/rest/v1/ai-agent/api/tools -H \"Authorization: Bearer {key}\""
        );
    }
    if let Some(link) = app.first_sign_in_link() {
        println!("Set a console password (link valid for an hour): {link}");
    }
    println!("Integrator Agent listening on {base_url}");
    println!("Console: {base_url}/console");
    app.run_until_stopped(shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
