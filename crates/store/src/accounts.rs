//! Tenants and users.

use std::fmt;
use std::str::FromStr;

use sqlx::Row;

use crate::write::args;
use crate::{new_id, now_millis, Micros, Store, StoreError};

/// A subscription tier: decides the default monthly allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Free,
    Standard,
    Professional,
}

impl Tier {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Standard => "standard",
            Tier::Professional => "professional",
        }
    }
}

impl FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "free" => Ok(Tier::Free),
            "standard" => Ok(Tier::Standard),
            "professional" => Ok(Tier::Professional),
            other => Err(format!(
                "unknown tier '{other}' (expected free, standard or professional)"
            )),
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Viewer,
    User,
    Admin,
    SuperAdmin,
}

impl Role {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::SuperAdmin => "super_admin",
            Role::Admin => "admin",
            Role::User => "user",
            Role::Viewer => "viewer",
        }
    }

    /// Whether this role may create, change, run or delete workspace objects.
    pub fn can_modify_workspace(self) -> bool {
        self >= Role::User
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "super_admin" => Ok(Role::SuperAdmin),
            "admin" => Ok(Role::Admin),
            "user" => Ok(Role::User),
            "viewer" => Ok(Role::Viewer),
            other => Err(format!(
                "unknown role '{other}' (expected super_admin, admin, user or viewer)"
            )),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A customer organisation: every other object belongs to exactly one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub tier: Tier,
    /// Overrides the tier's monthly allowance when set.
    pub allowance_micros: Option<Micros>,
    pub ai_enabled: bool,
    pub wallet_micros: Micros,
    pub created_at: i64,
}

/// The fields of a tenant to create.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub name: String,
    pub tier: Tier,
    pub allowance_micros: Option<Micros>,
    pub ai_enabled: bool,
}

/// Changes to a tenant; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TenantChanges {
    pub tier: Option<Tier>,
    pub allowance_micros: Option<Micros>,
    pub ai_enabled: Option<bool>,
}

impl TenantChanges {
    /// The changes in words, for the audit log.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(tier) = self.tier {
            parts.push(format!("tier {}", tier.as_str()));
        }
        if let Some(allowance) = self.allowance_micros {
            parts.push(format!("allowance {}", crate::format_usd(allowance)));
        }
        if let Some(enabled) = self.ai_enabled {
            parts.push(format!(
                "AI {}",
                if enabled { "enabled" } else { "disabled" }
            ));
        }
        parts.join(", ")
    }
}

/// A person or service account inside a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub role: Role,
    pub api_access: bool,
    pub created_at: i64,
}

/// The fields of a user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub tenant_name: String,
    pub email: String,
    pub role: Role,
    pub api_access: bool,
}

fn tenant_from_row(row: &sqlx::any::AnyRow) -> Result<Tenant, StoreError> {
    let tier: String = row.try_get("tier")?;
    Ok(Tenant {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        tier: tier.parse().map_err(StoreError::Invalid)?,
        allowance_micros: row.try_get("allowance_micros")?,
        ai_enabled: row.try_get::<i64, _>("ai_enabled")? != 0,
        wallet_micros: row.try_get("wallet_micros")?,
        created_at: row.try_get("created_at")?,
    })
}

fn user_from_row(row: &sqlx::any::AnyRow) -> Result<User, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        email: row.try_get("email")?,
        role: role.parse().map_err(StoreError::Invalid)?,
        api_access: row.try_get::<i64, _>("api_access")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

/// Whether `name` is a valid tenant name: a slug (`[a-z0-9][a-z0-9-]{0,62}`), so it can be
/// typed on a command line and can never mean a path (`.`, `..`, `/`).
pub fn is_valid_tenant_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn check_tenant_name(name: &str) -> Result<(), StoreError> {
    if is_valid_tenant_name(name) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "tenant name '{name}' must be 1-63 lowercase letters, digits or '-', starting with a letter or digit"
        )))
    }
}

/// Validates an email address enough to catch typos such as a missing '@'.
fn check_email(email: &str) -> Result<(), StoreError> {
    let ok = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email.chars().any(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "'{email}' is not an email address"
        )))
    }
}

const TENANT_COLUMNS: &str =
    "id, name, tier, allowance_micros, ai_enabled, wallet_micros, created_at";
const USER_COLUMNS: &str = "id, tenant_id, email, role, api_access, created_at";

impl Store {
    /// Creates a tenant; its name must be unused.
    pub async fn create_tenant(&self, new: &NewTenant) -> Result<Tenant, StoreError> {
        check_tenant_name(&new.name)?;
        let tenant = Tenant {
            id: new_id(),
            name: new.name.clone(),
            tier: new.tier,
            allowance_micros: new.allowance_micros,
            ai_enabled: new.ai_enabled,
            wallet_micros: 0,
            created_at: now_millis(),
        };
        let values = args![
            &tenant.id,
            &tenant.name,
            tenant.tier.as_str(),
            tenant.allowance_micros,
            tenant.ai_enabled,
            tenant.created_at
        ];
        self.execute("INSERT INTO tenants (id, name, tier, allowance_micros, ai_enabled, wallet_micros, created_at) \
                     VALUES ($1, $2, $3, $4, $5, 0, $6)", values).await
        .map_err(|e| e.conflict_on_unique(&format!("tenant '{}'", new.name)))?;
        Ok(tenant)
    }

    /// Applies the given changes to the named tenant and returns it as it now is; `actor` is
    /// named in the tenant's audit log, written in the same transaction.
    pub async fn update_tenant(
        &self,
        name: &str,
        changes: &TenantChanges,
        actor: &str,
    ) -> Result<Tenant, StoreError> {
        let tenant = self.tenant_by_name(name).await?;
        let values = args![
            changes.tier.map(Tier::as_str),
            changes.allowance_micros,
            changes.ai_enabled.map(i64::from),
            &tenant.id
        ];
        let detail = changes.describe();
        let (tenant_id, actor, target) = (tenant.id.clone(), actor.to_string(), name.to_string());
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "UPDATE tenants SET tier = COALESCE($1, tier), \
                             allowance_micros = COALESCE($2, allowance_micros), \
                             ai_enabled = COALESCE($3, ai_enabled) WHERE id = $4",
                    values,
                )
                .await?;
                crate::console::audit_in(tx, &tenant_id, &actor, "tenant changed", &target, &detail)
                    .await
            })
        })
        .await?;
        if changes.ai_enabled == Some(false) {
            self.announce_access_change().await?;
        }
        self.tenant_by_id(&tenant.id).await
    }

    /// The tenant with this name.
    pub async fn tenant_by_name(&self, name: &str) -> Result<Tenant, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("tenant '{name}'")))?;
        tenant_from_row(&row)
    }

    /// The tenant with this id.
    pub async fn tenant_by_id(&self, id: &str) -> Result<Tenant, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("tenant {id}")))?;
        tenant_from_row(&row)
    }

    /// Every tenant, by name.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(tenant_from_row).collect()
    }

    /// Renames a tenant (its id, and so everything it owns, stays); the new name must be a
    /// valid, unused name.
    pub async fn rename_tenant(&self, old: &str, new: &str) -> Result<Tenant, StoreError> {
        check_tenant_name(new)?;
        let changed = self
            .execute(
                "UPDATE tenants SET name = $1 WHERE name = $2",
                args![new, old],
            )
            .await
            .map_err(|e| e.conflict_on_unique(&format!("tenant '{new}'")))?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("tenant '{old}'")));
        }
        self.tenant_by_name(new).await
    }

    /// How many tenants exist (zero means the database is new).
    pub async fn tenant_count(&self) -> Result<i64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenants")
            .fetch_one(&self.pool)
            .await?;
        Ok(count)
    }

    /// Creates a user in an existing tenant; the email must be unused across all tenants.
    pub async fn create_user(&self, new: &NewUser, actor: &str) -> Result<User, StoreError> {
        check_email(&new.email)?;
        let tenant = self.tenant_by_name(&new.tenant_name).await?;
        let user = User {
            id: new_id(),
            tenant_id: tenant.id,
            email: new.email.to_lowercase(),
            role: new.role,
            api_access: new.api_access,
            created_at: now_millis(),
        };
        let values = args![
            &user.id,
            &user.tenant_id,
            &user.email,
            user.role.as_str(),
            user.api_access,
            user.created_at
        ];
        let (tenant_id, email, actor) = (
            user.tenant_id.clone(),
            user.email.clone(),
            actor.to_string(),
        );
        let detail = format!(
            "role {}, API access {}",
            user.role.as_str(),
            if user.api_access { "on" } else { "off" }
        );
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO users (id, tenant_id, email, role, api_access, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    values,
                )
                .await?;
                crate::console::audit_in(tx, &tenant_id, &actor, "user created", &email, &detail)
                    .await
            })
        })
        .await
        .map_err(|e| e.conflict_on_unique(&format!("user '{}'", new.email)))?;
        Ok(user)
    }

    /// The user with this id.
    pub async fn user_by_id(&self, id: &str) -> Result<User, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {id}")))?;
        user_from_row(&row)
    }

    /// The user with this email (any case).
    pub async fn user_by_email(&self, email: &str) -> Result<User, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email = $1"
        ))
        .bind(email.to_lowercase())
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("user '{email}'")))?;
        user_from_row(&row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Viewer < Role::User && Role::User < Role::Admin);
        assert!(!Role::Viewer.can_modify_workspace());
        assert!(Role::User.can_modify_workspace());
        assert_eq!("super_admin".parse::<Role>(), Ok(Role::SuperAdmin));
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn names_and_emails_are_checked() {
        assert!(check_tenant_name("acme-corp").is_ok());
        assert!(check_tenant_name("bad name").is_err());
        assert!(check_tenant_name("").is_err());
        assert!(check_email("a@b").is_ok());
        assert!(check_email("nobody").is_err());
    }
}
