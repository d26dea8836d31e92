//! Who is calling: the authenticated user, its tenant and role.

use store::Role;

/// The caller of an API request, as established by its API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub user_id: String,
    pub email: String,
    pub role: Role,
    pub tenant_id: String,
    pub tenant_name: String,
}

impl Principal {
    /// The caller as the workspace sees it: its tenant, role and email.
    pub fn actor(&self) -> workspace::Actor {
        workspace::Actor {
            tenant_id: self.tenant_id.clone(),
            tenant_name: self.tenant_name.clone(),
            role: self.role,
            by: self.email.clone(),
        }
    }
}
