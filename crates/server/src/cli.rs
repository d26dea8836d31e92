//! The command line: `serve` and the admin commands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Integrator Agent: an AI agent for data integration over REST and Server-Sent Events.
#[derive(Debug, Parser)]
#[command(name = "integrator-agent", version)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes: they pick the same data as the server uses.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML configuration file (environment variables override it).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory [env: INTEGRATOR_DATA_DIR] [default: ./data].
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL for shared state [env: INTEGRATOR_DATABASE_URL] [default: SQLite in the data dir].
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve {
        /// Address to listen on [env: INTEGRATOR_ADDR] [default: 127.0.0.1:8080].
        #[arg(long)]
        addr: Option<String>,
    },
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Manage the knowledge base.
    #[command(subcommand)]
    Kb(KbCommand),
    /// Manage tenants' wallets.
    #[command(subcommand)]
    Wallet(WalletCommand),
    /// Run one workspace command for a tenant (as its operator), e.g. "list connections".
    Host {
        #[arg(long)]
        tenant: String,
        /// The command, quoted as one argument.
        command: String,
    },
    /// Print a tenant's usage this month.
    Usage {
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum WalletCommand {
    /// Add money (USD) to a tenant's wallet.
    TopUp {
        tenant: String,
        #[arg(value_name = "USD")]
        amount: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// List the tenants: tier, allowance, AI features, users.
    List,
    /// Create a tenant.
    Create {
        name: String,
        #[arg(long, default_value = "free", value_parser = ["free", "standard", "professional"])]
        tier: String,
        /// Monthly free allowance in USD, overriding the tier's.
        #[arg(long, value_name = "USD")]
        allowance: Option<String>,
        /// Create it with AI features disabled.
        #[arg(long)]
        ai_disabled: bool,
    },
    /// Change a tenant.
    Set {
        name: String,
        #[arg(long, value_parser = ["free", "standard", "professional"])]
        tier: Option<String>,
        #[arg(long, value_name = "USD")]
        allowance: Option<String>,
        #[arg(long, conflicts_with = "ai_disabled")]
        ai_enabled: bool,
        #[arg(long)]
        ai_disabled: bool,
    },
    /// Print the folder of a tenant's files (file connections, SQLite connection files).
    Folder { name: String },
    /// Rename a tenant (its users, keys, workspace and usage stay with it).
    Rename {
        name: String,
        /// The new name: lowercase letters, digits and '-'.
        new_name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user in a tenant.
    Create {
        email: String,
        #[arg(long)]
        tenant: String,
        #[arg(long, value_parser = ["super_admin", "admin", "user", "viewer"])]
        role: String,
        /// The user may not use the API.
        #[arg(long)]
        no_api_access: bool,
    },
    /// List users: email, tenant, role, API access, active keys.
    List {
        /// Only the users of this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Change a user's role.
    SetRole {
        email: String,
        #[arg(value_parser = ["super_admin", "admin", "user", "viewer"])]
        role: String,
    },
    /// Take away a user's API access and revoke every key of theirs (the user and their
    /// sessions stay; `user enable` gives access back).
    Disable { email: String },
    /// Give a user API access again (they need a new key: `key create`).
    Enable { email: String },
    /// Set a user's console password, read from standard input (no echo on a terminal).
    SetPassword { email: String },
    /// Print a one-time console link (valid for an hour) with which a user sets a password.
    SignInLink { email: String },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Issue an API key for a user; prints only the key.
    Create {
        email: String,
        /// Lifetime: a whole number followed by s (seconds), m (minutes), h (hours), d (days)
        /// or w (weeks), e.g. 90m, 12h, 30d, 2w (default: never expires).
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        /// A label to tell the key apart (e.g. "CI", "laptop").
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List a user's keys (never the keys themselves): id, label, status, last use.
    List { email: String },
    /// Revoke every key of a user, or only the one with `--key ID`.
    Revoke {
        email: String,
        /// The id of the one key to revoke (from `key list`).
        #[arg(long, value_name = "ID")]
        key: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KbCommand {
    /// Import a Markdown, HTML or text file, or a folder of them; re-importing updates.
    Import { path: PathBuf },
}

/// Parses `90s`, `15m`, `12h`, `30d`, `2w` into milliseconds.
pub fn parse_duration_millis(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let bad = || format!("'{text}' is not a duration such as 90m, 12h, 30d or 2w");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().map_err(|_| bad())?;
    let unit_millis = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return Err(bad()),
    };
    if number == 0 {
        return Err(bad());
    }
    number.checked_mul(unit_millis).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_millis("30d"), Ok(30 * 86_400_000));
        assert_eq!(parse_duration_millis("90m"), Ok(90 * 60_000));
        assert_eq!(parse_duration_millis("2s"), Ok(2_000));
        for bad in ["", "d", "10", "10y", "-1d", "0d"] {
            assert!(parse_duration_millis(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
