//! The admin commands: accounts, keys and knowledge-base imports, run against the same
//! database as the server (while it runs or not).

/// Prints a line to standard output, inside a function answering `anyhow::Result`; when the
/// reader went away (`… | head`), the command ends with [`ClosedPipe`], which `main` treats as
/// a quiet success.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*).map_err(crate::admin::output_error)?;
    }};
}

/// The reader of the command's output went away: nothing more to say.
#[derive(Debug, thiserror::Error)]
#[error("the output's reader went away")]
pub struct ClosedPipe;

/// A write error of the command's output; a closed pipe becomes [`ClosedPipe`].
pub(crate) fn output_error(error: std::io::Error) -> anyhow::Error {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        anyhow::Error::new(ClosedPipe)
    } else {
        anyhow::Error::new(error).context("cannot write the output")
    }
}

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use store::{ArticleFormat, NewArticle, NewTenant, NewUser, Store, Tenant, TenantChanges};

use crate::cli::{
    parse_duration_millis, KbCommand, KeyCommand, TenantCommand, UserCommand, WalletCommand,
};
use crate::config::Config;

fn parse_allowance(allowance: Option<&str>) -> anyhow::Result<Option<i64>> {
    allowance
        .map(|a| store::parse_usd(a).map_err(|e| anyhow::anyhow!("--allowance: {e}")))
        .transpose()
}

/// `tenant create|set`.
pub async fn tenant(store: &Store, config: &Config, command: TenantCommand) -> anyhow::Result<()> {
    let (said, tenant) = match command {
        TenantCommand::List => {
            let tenants = store.list_tenants().await?;
            out!(
                "{:<24} {:<13} {:>12} {:<9} {:>5}",
                "tenant",
                "tier",
                "allowance",
                "AI",
                "users"
            );
            for tenant in tenants {
                let users = store.tenant_users(&tenant.id).await?.len();
                out!(
                    "{:<24} {:<13} {:>12} {:<9} {:>5}",
                    tenant.name,
                    tenant.tier.to_string(),
                    allowance_shown(&tenant),
                    ai_shown(&tenant),
                    users
                );
            }
            return Ok(());
        }
        TenantCommand::Folder { name } => {
            let tenant = store.tenant_by_name(&name).await?;
            let folder = workspace::tenant_folder(&config.data_dir, &tenant.id);
            std::fs::create_dir_all(&folder)?;
            let folder = folder.canonicalize().unwrap_or(folder);
            out!("{}", folder.display());
            return Ok(());
        }
        TenantCommand::Create {
            name,
            tier,
            allowance,
            ai_disabled,
        } => {
            let new = NewTenant {
                name,
                tier: tier.parse().map_err(anyhow::Error::msg)?,
                allowance_micros: parse_allowance(allowance.as_deref())?,
                ai_enabled: !ai_disabled,
            };
            (
                "Created tenant".to_string(),
                store.create_tenant(&new).await?,
            )
        }
        TenantCommand::Set {
            name,
            tier,
            allowance,
            ai_enabled,
            ai_disabled,
        } => {
            if tier.is_none() && allowance.is_none() && !ai_enabled && !ai_disabled {
                bail!(
                    "nothing to change for tenant '{name}': give --tier, --allowance, \
                     --ai-enabled or --ai-disabled"
                );
            }
            let changes = TenantChanges {
                tier: tier
                    .map(|t| t.parse())
                    .transpose()
                    .map_err(anyhow::Error::msg)?,
                allowance_micros: parse_allowance(allowance.as_deref())?,
                ai_enabled: match (ai_enabled, ai_disabled) {
                    (true, _) => Some(true),
                    (_, true) => Some(false),
                    _ => None,
                },
            };
            let tenant = store.update_tenant(&name, &changes, OPERATOR).await?;
            ("Updated tenant".to_string(), tenant)
        }
        TenantCommand::Rename { name, new_name } => {
            let tenant = store.rename_tenant(&name, &new_name).await?;
            (format!("Renamed tenant '{name}' to"), tenant)
        }
    };
    out!(
        "{said} {} (tier {}, allowance {}, AI {})",
        tenant.name,
        tenant.tier,
        allowance_shown(&tenant),
        ai_shown(&tenant)
    );
    Ok(())
}

/// A tenant's allowance as the CLI shows it: an amount, or the tier's.
fn allowance_shown(tenant: &Tenant) -> String {
    tenant
        .allowance_micros
        .map(store::format_usd)
        .unwrap_or_else(|| "of the tier".to_string())
}

/// Whether a tenant may use the AI, as the CLI shows it.
fn ai_shown(tenant: &Tenant) -> &'static str {
    if tenant.ai_enabled {
        "enabled"
    } else {
        "disabled"
    }
}

/// `user create`.
pub async fn user(store: &Store, config: &Config, command: UserCommand) -> anyhow::Result<()> {
    let (email, tenant, role, no_api_access) = match command {
        UserCommand::Create {
            email,
            tenant,
            role,
            no_api_access,
        } => (email, tenant, role, no_api_access),
        UserCommand::List { tenant } => {
            let tenants = match tenant {
                Some(name) => vec![store.tenant_by_name(&name).await?],
                None => store.list_tenants().await?,
            };
            let now = store::now_millis();
            out!(
                "{:<32} {:<20} {:<12} {:<10} {:>11}",
                "email",
                "tenant",
                "role",
                "API",
                "active keys"
            );
            for tenant in tenants {
                for user in store.tenant_users(&tenant.id).await? {
                    let active = store
                        .user_keys(&user.id)
                        .await?
                        .iter()
                        .filter(|key| key.status(now) == "active")
                        .count();
                    out!(
                        "{:<32} {:<20} {:<12} {:<10} {:>11}",
                        user.email,
                        tenant.name,
                        user.role.as_str(),
                        if user.api_access {
                            "allowed"
                        } else {
                            "disabled"
                        },
                        active
                    );
                }
            }
            return Ok(());
        }
        UserCommand::SetRole { email, role } => {
            let user = store.user_by_email(&email).await?;
            let role: store::Role = role.parse().map_err(anyhow::Error::msg)?;
            let user = store
                .update_user(&user.id, role, user.api_access, OPERATOR)
                .await?;
            out!("{} is now {}", user.email, user.role.as_str());
            return Ok(());
        }
        UserCommand::Disable { email } => {
            let user = store.user_by_email(&email).await?;
            store
                .update_user(&user.id, user.role, false, OPERATOR)
                .await?;
            let revoked = store.revoke_api_keys(&email, OPERATOR).await?;
            out!("Disabled API access of {email}; revoked {revoked} key(s)");
            return Ok(());
        }
        UserCommand::Enable { email } => {
            let user = store.user_by_email(&email).await?;
            store
                .update_user(&user.id, user.role, true, OPERATOR)
                .await?;
            out!("Enabled API access of {email}; issue a key with `key create {email}`");
            return Ok(());
        }
        UserCommand::SetPassword { email } => {
            let password = read_password(&format!("New console password for {email}: "))?;
            if let Some(problem) = crate::console::password::weakness(&password) {
                bail!("{problem}");
            }
            let hash = crate::console::password::hash(&password).await?;
            store.set_password_hash(&email, &hash, OPERATOR).await?;
            out!("Set the console password of {email}");
            return Ok(());
        }
        UserCommand::SignInLink { email } => {
            let token = store
                .create_sign_in_link(&email, crate::console::SIGN_IN_LINK_TTL_MS, OPERATOR)
                .await?;
            out!(
                "{}",
                crate::console::sign_in_link(&config.base_url(config.addr), &token)
            );
            return Ok(());
        }
    };
    let user = store
        .create_user(
            &NewUser {
                tenant_name: tenant.clone(),
                email,
                role: role.parse().map_err(anyhow::Error::msg)?,
                api_access: !no_api_access,
            },
            OPERATOR,
        )
        .await?;
    out!(
        "Created user {} ({}) in tenant {tenant}{}",
        user.email,
        user.role,
        if user.api_access {
            ""
        } else {
            " without API access"
        }
    );
    Ok(())
}

/// Reads a password from standard input: without echo on a terminal, a line otherwise.
fn read_password(prompt: &str) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let password = rpassword::prompt_password(prompt)?;
        let again = rpassword::prompt_password("Again: ")?;
        if password != again {
            bail!("the two passwords differ");
        }
        Ok(password)
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

/// Who the audit log names for changes made with this command line.
const OPERATOR: &str = "operator (command line)";

/// `key create|list|revoke`. `create` prints only the key, so scripts can capture it.
pub async fn key(store: &Store, command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Create {
            email,
            expires_in,
            label,
        } => {
            let ttl = expires_in
                .as_deref()
                .map(parse_duration_millis)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--expires-in: {e}"))?;
            let user = store.user_by_email(&email).await?;
            let issued = store
                .issue_api_key(&user.id, label.trim(), ttl, OPERATOR)
                .await?;
            out!("{}", issued.key);
        }
        KeyCommand::List { email } => {
            let user = store.user_by_email(&email).await?;
            let keys = store.user_keys(&user.id).await?;
            if keys.is_empty() {
                out!("{email} has no keys");
            }
            let now = store::now_millis();
            for key in keys {
                out!(
                    "{}  {:<8}  created {}  {}  last used {}  {}",
                    key.id,
                    key.status(now),
                    store::day_of(key.created_at),
                    key.expires_at
                        .map(|at| format!("expires {}", store::day_of(at)))
                        .unwrap_or_else(|| "never expires".into()),
                    key.last_used_at
                        .map(store::day_of)
                        .unwrap_or_else(|| "never".into()),
                    if key.label.is_empty() {
                        String::new()
                    } else {
                        format!("\"{}\"", key.label)
                    }
                );
            }
        }
        KeyCommand::Revoke { email, key: None } => {
            let count = store.revoke_api_keys(&email, OPERATOR).await?;
            out!("Revoked {count} key(s) of {email}");
        }
        KeyCommand::Revoke {
            email,
            key: Some(key_id),
        } => {
            let user = store.user_by_email(&email).await?;
            if store.revoke_api_key(&user.id, &key_id, OPERATOR).await? {
                out!("Revoked key {key_id} of {email}");
            } else {
                bail!("{email} has no active key {key_id} (see `key list {email}`)");
            }
        }
    }
    Ok(())
}

/// `kb import PATH`.
pub async fn kb(store: &Store, command: KbCommand) -> anyhow::Result<()> {
    let KbCommand::Import { path } = command;
    let files = importable_files(&path)?;
    if files.is_empty() {
        bail!(
            "{} holds no .md, .markdown, .html, .htm or .txt files",
            path.display()
        );
    }
    let mut imported = 0;
    for file in &files {
        let text =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let text = String::from_utf8_lossy(&text);
        let Some(article) = to_article(file, &text) else {
            eprintln!("skipped {}: empty", file.display());
            continue;
        };
        store.upsert_article(&article).await?;
        imported += 1;
    }
    out!(
        "Imported {imported} article(s) from {}; running servers index them within seconds",
        path.display()
    );
    Ok(())
}

fn format_of(path: &Path) -> Option<ArticleFormat> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    match extension.as_str() {
        "md" | "markdown" => Some(ArticleFormat::Markdown),
        "html" | "htm" => Some(ArticleFormat::Html),
        "txt" => Some(ArticleFormat::Text),
        _ => None,
    }
}

fn importable_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_file() {
        if format_of(path).is_none() {
            bail!(
                "{} is not a .md, .markdown, .html, .htm or .txt file",
                path.display()
            );
        }
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?
        {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() && format_of(&entry.path()).is_some() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

fn to_article(path: &Path, text: &str) -> Option<NewArticle> {
    if text.trim().is_empty() {
        return None;
    }
    let format = format_of(path)?;
    let (title, body) = match format {
        ArticleFormat::Markdown => kb::markdown_to_title_and_text(text),
        ArticleFormat::Html => kb::html_to_title_and_text(text),
        ArticleFormat::Text => {
            let title = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("Untitled");
            (title.trim().to_string(), text.trim().to_string())
        }
    };
    let source = std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string();
    Some(NewArticle {
        source,
        title,
        body,
        format,
    })
}

/// `wallet top-up TENANT USD`.
pub async fn wallet(store: &Store, command: WalletCommand) -> anyhow::Result<()> {
    let WalletCommand::TopUp { tenant, amount } = command;
    let amount = store::parse_usd(&amount).map_err(|e| anyhow::anyhow!("USD: {e}"))?;
    let balance = store.top_up_wallet(&tenant, amount, OPERATOR).await?;
    out!(
        "Added {} to the wallet of {tenant}; balance {}",
        store::format_usd(amount),
        store::format_usd(balance)
    );
    Ok(())
}

/// `usage --tenant T`: the same report as `GET /usage` for a tenant's admins, as text.
pub async fn usage(store: &Store, config: &Config, tenant_name: &str) -> anyhow::Result<()> {
    let tenant = store.tenant_by_name(tenant_name).await?;
    let billing = billing::Billing::new(
        store.clone(),
        config.billing.prices.clone(),
        config.billing.allowances,
        billing::BillingClock::shifted(config.billing.clock_offset_ms),
        config.master_key()?,
    );
    let report = billing.report(&tenant.id, "", true).await?;
    out!(
        "Usage of tenant {} ({}) in {}",
        tenant.name,
        tenant.tier,
        report.month
    );
    out!(
        "  allowance {}: used {}, left {}; wallet {}",
        dollars(report.allowance_usd),
        dollars(report.allowance_used_usd),
        dollars(report.allowance_left_usd),
        dollars(report.wallet_usd)
    );
    match report.own_key_scope {
        Some(scope) => out!(
            "  own OpenAI key: active ({})",
            serde_json::to_string(&scope)?.trim_matches('"')
        ),
        None => out!("  own OpenAI key: none (managed billing)"),
    }
    let section = &report.tenant;
    out!(
        "  total {} (own key {}), {} prompt + {} completion tokens",
        dollars(section.cost_usd),
        dollars(section.own_key_cost_usd),
        section.prompt_tokens,
        section.completion_tokens
    );
    out!(
        "  {:<32} {:>12} {:>12} {:>12}",
        "model",
        "prompt",
        "completion",
        "cost USD"
    );
    for (model, usage) in &section.by_model {
        out!(
            "  {:<32} {:>12} {:>12} {:>12.6}",
            model,
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cost_usd
        );
    }
    out!("  {:<32} {:>12} {:>12}", "tool", "calls", "cost USD");
    for (tool, usage) in &section.by_tool {
        out!(
            "  {:<32} {:>12} {:>12.6}",
            tool,
            usage.calls,
            usage.cost_usd
        );
    }
    out!("  {:<32} {:>12}", "user", "cost USD");
    for user in section.users.iter().flatten() {
        out!(
            "  {:<32} {:>12.6}",
            user.email.as_deref().unwrap_or("?"),
            user.cost_usd
        );
    }
    Ok(())
}

/// A report's dollar amount as the CLI prints money elsewhere: exact to the micro-dollar
/// (`$0.005`, `$12.50`), never rounded to cents.
fn dollars(usd: f64) -> String {
    store::format_usd((usd * 1_000_000.0).round() as i64)
}

/// `host --tenant T "COMMAND"`: the workspace command language from the command line, run with
/// operator (admin) rights on that tenant and not billed.
pub async fn host(
    store: &Store,
    config: &Config,
    tenant_name: &str,
    line: &str,
) -> anyhow::Result<()> {
    let tenant = store.tenant_by_name(tenant_name).await?;
    let egress = config
        .egress
        .clone()
        .with_database_endpoints(&config.database_endpoints().await);
    let workspace = std::sync::Arc::new(workspace::Workspace::new(
        store.clone(),
        config.master_key()?,
        std::sync::Arc::new(workspace::TemplateCatalog::shipped()?),
        config.data_dir.clone(),
        egress,
    ));
    let actor = workspace::Actor {
        tenant_id: tenant.id,
        tenant_name: tenant.name,
        role: store::Role::Admin,
        by: "operator".into(),
    };
    let output = workspace.execute(&actor, line).await?;
    out!("{output}");
    Ok(())
}
